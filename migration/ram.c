/*
 * RAM migration: the "ram" section.  See ram.h.
 */
#include "ram.h"
#include "page-channels.h"
#include "system/ramblock.h"
#include "util/bitmap.h"
#include "util/bufferzero.h"
#include "util/cutils.h"
#include "util/error.h"
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

/* ------------------------------------------------------------------ */
/* save                                                                */

typedef struct RamBlockState {
    RAMBlock *rb;
    uint64_t npages;
    unsigned long *bmap;          /* pages still to send this pass */
    unsigned long *file_bmap;     /* mapped-ram: page present in file */
    MappedRamHeader hdr;
} RamBlockState;

/* Owned by the migration thread while a migration runs. */
static struct {
    RamSaveParams p;
    RamBlockState *blocks;
    size_t nblocks;
    size_t cur_block;
    uint64_t cur_page;
    int last_sent_block;
    uint64_t dirty_pages;
    PageChannels *pc;
    bool pc_done;                 /* stats already folded in */
    RamStats stats;
    GMutex stats_lock;            /* stats are read by query-migrate */
} rs;

void ram_save_configure(const RamSaveParams *p)
{
    rs.p = *p;
}

void ram_get_stats(RamStats *st)
{
    g_mutex_lock(&rs.stats_lock);
    *st = rs.stats;
    g_mutex_unlock(&rs.stats_lock);
    if (rs.pc && !rs.pc_done) {
        uint64_t bytes = page_channels_bytes(rs.pc);
        /* QEMU counts page data as multifd-bytes only when multifd is on */
        st->multifd_bytes = rs.p.multifd ? bytes : 0;
        st->page_bytes += bytes;
        st->channel_bytes = bytes;
        st->normal_pages += page_channels_normal_pages(rs.pc);
        st->zero_pages += page_channels_zero_pages(rs.pc);
    }
}

static void stats_update(void)
{
    g_mutex_lock(&rs.stats_lock);
    rs.stats.remaining = rs.dirty_pages * RAM_PAGE_SIZE;
    g_mutex_unlock(&rs.stats_lock);
}

uint64_t ram_sync_dirty(void)
{
    for (size_t i = 0; i < rs.nblocks; i++) {
        rs.dirty_pages += ram_block_sync_dirty_log(rs.blocks[i].rb, rs.blocks[i].bmap);
    }
    g_mutex_lock(&rs.stats_lock);
    rs.stats.dirty_sync_count++;
    g_mutex_unlock(&rs.stats_lock);
    stats_update();
    return rs.dirty_pages * RAM_PAGE_SIZE;
}

static void ram_save_cleanup(void *opaque)
{
    if (rs.pc) {
        RamStats st;
        ram_get_stats(&st);           /* keep the channels' counts for query-migrate */
        page_channels_abort(rs.pc);
        g_mutex_lock(&rs.stats_lock);
        rs.stats = st;
        rs.pc_done = true;
        g_mutex_unlock(&rs.stats_lock);
        page_channels_free(rs.pc);
        rs.pc = NULL;
    }
    for (size_t i = 0; i < rs.nblocks; i++) {
        g_free(rs.blocks[i].bmap);
        g_free(rs.blocks[i].file_bmap);
    }
    g_free(rs.blocks);
    rs.blocks = NULL;
    rs.nblocks = 0;
}

static bool ram_save_setup(QEMUFile *f, void *opaque, GError **errp)
{
    ram_save_cleanup(NULL);
    memset(&rs.stats, 0, sizeof(rs.stats));
    rs.pc_done = false;
    rs.nblocks = ram_block_count();
    rs.blocks = g_new0(RamBlockState, rs.nblocks);
    rs.cur_block = 0;
    rs.cur_page = 0;
    rs.last_sent_block = -1;
    rs.dirty_pages = 0;

    qemu_put_be64(f, ram_bytes_total() | RAM_SAVE_FLAG_MEM_SIZE);
    for (size_t i = 0; i < rs.nblocks; i++) {
        RamBlockState *b = &rs.blocks[i];
        b->rb = ram_block_at(i);
        b->npages = ram_block_pages(b->rb);
        b->bmap = bitmap_new(b->npages);
        /* Everything is sent in the first pass: start from a clean log. */
        ram_block_sync_dirty_log(b->rb, b->bmap);
        bitmap_set_range(b->bmap, 0, b->npages);
        rs.dirty_pages += b->npages;
        qemu_put_counted_string(f, b->rb->idstr);
        qemu_put_be64(f, b->rb->used_length);
        if (rs.p.mapped_ram) {
            b->file_bmap = bitmap_new(b->npages);
            if (!mapped_ram_put_block(f, b->rb->used_length, RAM_PAGE_SIZE, &b->hdr, errp)) {
                return false;
            }
        }
    }
    qemu_put_be64(f, RAM_SAVE_FLAG_EOS);
    if (rs.p.mapped_ram) {
        PageChannelsConfig cfg = {
            .path = rs.p.path,
            .flags = O_WRONLY,
            .channels = rs.p.channels ? rs.p.channels : 1,
            .direct_io = rs.p.direct_io,
            .queue_depth = rs.p.queue_depth,
            .detect_zero = rs.p.zero != ZERO_PAGE_DETECTION_NONE,
        };
        rs.pc = page_channels_new(&cfg, errp);
        if (!rs.pc) {
            return false;
        }
    }
    stats_update();
    return qemu_file_propagate_error(f, errp);
}

static void put_page_header(QEMUFile *f, size_t bi, uint64_t offset, unsigned flags)
{
    if ((int)bi == rs.last_sent_block) {
        qemu_put_be64(f, offset | flags | RAM_SAVE_FLAG_CONTINUE);
    } else {
        qemu_put_be64(f, offset | flags);
        qemu_put_counted_string(f, rs.blocks[bi].rb->idstr);
        rs.last_sent_block = bi;
    }
}

/* Stream format: one record per page. Returns bytes put. */
static uint64_t send_stream_page(QEMUFile *f, size_t bi, uint64_t page)
{
    RamBlockState *b = &rs.blocks[bi];
    uint8_t *host = b->rb->host + page * RAM_PAGE_SIZE;
    uint64_t before = qemu_file_transferred(f);
    if (rs.p.zero != ZERO_PAGE_DETECTION_NONE && buffer_is_zero(host, RAM_PAGE_SIZE)) {
        put_page_header(f, bi, page * RAM_PAGE_SIZE, RAM_SAVE_FLAG_ZERO);
        qemu_put_byte(f, 0);
        rs.stats.zero_pages++;
    } else {
        put_page_header(f, bi, page * RAM_PAGE_SIZE, RAM_SAVE_FLAG_PAGE);
        qemu_put_buffer_async(f, host, RAM_PAGE_SIZE);
        rs.stats.normal_pages++;
        rs.stats.page_bytes += RAM_PAGE_SIZE;
    }
    return qemu_file_transferred(f) - before;
}

/*
 * Send dirty pages from the cursor on.  Returns 1 when the pass is
 * complete, 0 when rate-limited (more to do), -1 on error.
 */
static int send_dirty_pages(QEMUFile *f, bool rate_limit, GError **errp)
{
    uint64_t batch[PAGE_CHANNELS_MAX_BATCH];
    uint64_t since_check = 0;

    while (rs.cur_block < rs.nblocks) {
        RamBlockState *b = &rs.blocks[rs.cur_block];
        unsigned n = 0;
        uint64_t p = rs.cur_page;
        while (n < PAGE_CHANNELS_MAX_BATCH) {
            p = find_next_bit(b->bmap, b->npages, p);
            if (p >= b->npages) {
                break;
            }
            clear_bit(p, b->bmap);
            rs.dirty_pages--;
            if (rs.pc) {
                batch[n++] = p;
            } else {
                since_check += send_stream_page(f, rs.cur_block, p);
                n++;
            }
            p++;
        }
        if (rs.pc && n) {
            if (!page_channels_queue_write(rs.pc, b->rb->idstr, b->rb->host, b->hdr.pages_offset,
                                           b->file_bmap, batch, n, errp)) {
                return -1;
            }
            since_check += (uint64_t)n * RAM_PAGE_SIZE;
        }
        if (p >= b->npages) {
            rs.cur_block++;
            rs.cur_page = 0;
        } else {
            rs.cur_page = p;
        }
        if (qemu_file_has_error(f)) {
            qemu_file_propagate_error(f, errp);
            return -1;
        }
        if (rate_limit && rs.p.rate_limited && since_check >= 256 * 1024) {
            bool limited = rs.p.rate_limited(rs.p.rate_opaque, since_check);
            since_check = 0;
            stats_update();
            if (limited) {
                return 0;
            }
        }
    }
    if (rate_limit && rs.p.rate_limited && since_check) {
        rs.p.rate_limited(rs.p.rate_opaque, since_check);
    }
    /* pass complete */
    rs.cur_block = 0;
    rs.cur_page = 0;
    stats_update();
    return 1;
}

static int ram_save_iterate(QEMUFile *f, void *opaque, GError **errp)
{
    int r = send_dirty_pages(f, true, errp);
    if (r == 1 && rs.pc && !page_channels_sync(rs.pc, errp)) {
        r = -1;
    }
    qemu_put_be64(f, RAM_SAVE_FLAG_EOS);
    return r;
}

static bool ram_save_complete(QEMUFile *f, void *opaque, GError **errp)
{
    /* the last pass is a full sweep: pages behind the cursor may be dirty too */
    rs.cur_block = 0;
    rs.cur_page = 0;
    ram_sync_dirty();
    if (send_dirty_pages(f, false, errp) < 0) {
        return false;
    }
    if (rs.pc) {
        if (!page_channels_sync(rs.pc, errp)) {
            return false;
        }
        if (!qemu_fflush(f)) {
            return qemu_file_propagate_error(f, errp);
        }
        for (size_t i = 0; i < rs.nblocks; i++) {
            RamBlockState *b = &rs.blocks[i];
            if (!mapped_ram_write_bitmap(rs.p.main_ioc, &b->hdr, b->file_bmap, b->npages, errp)) {
                return false;
            }
        }
    }
    qemu_put_be64(f, RAM_SAVE_FLAG_EOS);
    qemu_fflush(f);
    return qemu_file_propagate_error(f, errp);
}

static uint64_t ram_pending(void *opaque, bool exact)
{
    if (exact) {
        return ram_sync_dirty();
    }
    return rs.dirty_pages * RAM_PAGE_SIZE;
}

/* ------------------------------------------------------------------ */
/* load into the VM                                                    */

typedef struct GapPage { RAMBlock *rb; uint64_t page; } GapPage;

/* Owned by the incoming migration thread while loading. */
static struct {
    RamLoadParams p;
    RamParseState ps;
    PageChannels *pc;
    GArray *zero_after_sync;      /* GapPage: read as part of a merged range, must be zero */
    RAMBlock **blocks;            /* index = parse idx */
} rl;

void ram_load_configure(const RamLoadParams *p)
{
    rl.p = *p;
}

static bool vm_block(void *opaque, QEMUFile *f, unsigned idx, const char *idstr,
                     uint64_t used_length, const MappedRamHeader *hdr, GError **errp);

static uint8_t *vm_page_dest(void *opaque, unsigned idx, uint64_t offset, GError **errp)
{
    return rl.blocks[idx]->host + offset;
}

static bool vm_page(void *opaque, unsigned idx, uint64_t offset, bool zero, GError **errp)
{
    if (zero) {
        uint8_t *host = rl.blocks[idx]->host + offset;
        if (!buffer_is_zero(host, RAM_PAGE_SIZE)) {
            memset(host, 0, RAM_PAGE_SIZE);
        }
    }
    return true;
}

static const RamSink vm_sink = {
    .block = vm_block,
    .page_dest = vm_page_dest,
    .page = vm_page,
};

/*
 * Clear runs are not read through on load: a read into guest RAM faults in
 * and zeroes every page it touches, and on a fresh destination the pages
 * of zero runs should stay untouched (first-touch costs more than the
 * extra requests on the hosts we measured; docs/benchmarks.md).
 */
#define LOAD_GAP_PAGES 0

static bool plan_block_reads(RAMBlock *rb, const MappedRamHeader *hdr,
                             const unsigned long *bmap, uint64_t npages, GError **errp)
{
    g_autofree unsigned long *touched = bitmap_new(npages);
    /* Pages this VM wrote since it started: only those can be non-zero. */
    ram_block_sync_dirty_log(rb, touched);

    uint64_t pos = 0;
    while (pos < npages) {
        uint64_t start = find_next_bit(bmap, npages, pos);
        /* clear pages before the run must read back as zero */
        for (uint64_t z = find_next_bit(touched, start, pos); z < start;
             z = find_next_bit(touched, start, z + 1)) {
            memset(rb->host + z * RAM_PAGE_SIZE, 0, RAM_PAGE_SIZE);
        }
        if (start >= npages) {
            break;
        }
        uint64_t end = find_next_zero_bit(bmap, npages, start);
        for (;;) {
            uint64_t next = find_next_bit(bmap, npages, end);
            if (next >= npages || next - end > LOAD_GAP_PAGES) {
                break;
            }
            for (uint64_t g = end; g < next; g++) {
                GapPage gp = { rb, g };
                g_array_append_val(rl.zero_after_sync, gp);
            }
            end = find_next_zero_bit(bmap, npages, next);
        }
        for (uint64_t c = start; c < end; ) {
            uint64_t n = MIN(end - c, MAPPED_RAM_LOAD_BUF_SIZE / RAM_PAGE_SIZE);
            if (!page_channels_queue_read(rl.pc, rb->host + c * RAM_PAGE_SIZE,
                                          n * RAM_PAGE_SIZE,
                                          hdr->pages_offset + c * RAM_PAGE_SIZE, errp)) {
                return false;
            }
            c += n;
        }
        pos = end;
    }
    return true;
}

static bool vm_block(void *opaque, QEMUFile *f, unsigned idx, const char *idstr,
                     uint64_t used_length, const MappedRamHeader *hdr, GError **errp)
{
    RAMBlock *rb = ram_block_by_name(idstr);
    if (!rb) {
        error_setg(errp, "Unknown ramblock \"%s\", cannot accept migration", idstr);
        return false;
    }
    if (rb->used_length != used_length) {
        error_setg(errp, "Length mismatch: %s: 0x%llx in != 0x%llx: %s", idstr,
                   (unsigned long long)used_length, (unsigned long long)rb->used_length,
                   g_strerror(EINVAL));
        return false;
    }
    rl.blocks = g_renew(RAMBlock *, rl.blocks, idx + 1);
    rl.blocks[idx] = rb;
    if (!hdr) {
        return true;
    }
    uint64_t npages = used_length / RAM_PAGE_SIZE;
    g_autofree unsigned long *bmap =
        mapped_ram_read_bitmap(qemu_file_get_ioc(f), idstr, hdr, npages, errp);
    if (!bmap) {
        return false;
    }
    return plan_block_reads(rb, hdr, bmap, npages, errp);
}

static bool ram_load_setup(void *opaque, GError **errp)
{
    ram_parse_state_init(&rl.ps, rl.p.mapped_ram);
    rl.zero_after_sync = g_array_new(FALSE, FALSE, sizeof(GapPage));
    if (rl.p.mapped_ram) {
        PageChannelsConfig cfg = {
            .path = rl.p.path,
            .flags = O_RDONLY,
            .channels = rl.p.channels ? rl.p.channels : 1,
            .direct_io = rl.p.direct_io,
            .queue_depth = rl.p.queue_depth,
        };
        rl.pc = page_channels_new(&cfg, errp);
        if (!rl.pc) {
            return false;
        }
    }
    return true;
}

static bool ram_load_state(QEMUFile *f, void *opaque, const SectionInfo *si, GError **errp)
{
    if (!ram_parse_section(f, si->type, &rl.ps, &vm_sink, NULL, errp)) {
        if (rl.pc) {
            page_channels_abort(rl.pc);
        }
        return false;
    }
    if (si->type == QEMU_VM_SECTION_START && rl.pc) {
        if (!page_channels_sync(rl.pc, errp)) {
            g_prefix_error(errp, "mapped-ram: ");
            return false;
        }
        for (guint i = 0; i < rl.zero_after_sync->len; i++) {
            GapPage *gp = &g_array_index(rl.zero_after_sync, GapPage, i);
            memset(gp->rb->host + gp->page * RAM_PAGE_SIZE, 0, RAM_PAGE_SIZE);
        }
        g_array_set_size(rl.zero_after_sync, 0);
    }
    return true;
}

static void ram_load_cleanup(void *opaque)
{
    if (rl.pc) {
        page_channels_free(rl.pc);
        rl.pc = NULL;
    }
    ram_parse_state_clear(&rl.ps);
    if (rl.zero_after_sync) {
        g_array_unref(rl.zero_after_sync);
        rl.zero_after_sync = NULL;
    }
    g_free(rl.blocks);
    rl.blocks = NULL;
}

static const SaveVMHandlers ram_handlers = {
    .save_setup = ram_save_setup,
    .save_iterate = ram_save_iterate,
    .save_complete = ram_save_complete,
    .save_cleanup = ram_save_cleanup,
    .pending = ram_pending,
    .load_setup = ram_load_setup,
    .load_state = ram_load_state,
    .load_cleanup = ram_load_cleanup,
};

void ram_register(void)
{
    g_mutex_init(&rs.stats_lock);
    register_savevm_live("ram", 0, RAM_SECTION_VERSION, &ram_handlers, NULL);
}
