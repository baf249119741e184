/*
 * RAM migration: the "ram" section.  See ram.h.
 */
#include "ram.h"
#include "mapped-ram-csum.h"
#include "mapped-ram-share.h"
#include "page-channels.h"
#include "postcopy.h"
#include "util/bitmap.h"
#include "util/bufferzero.h"
#include "util/cutils.h"
#include "util/error.h"
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

/* ------------------------------------------------------------------ */
/* the "ram" handlers' object                                          */

typedef struct RamBlockState {
    MigrationRAMBlock rb;         /* the host's description */
    size_t index;                 /* in the host's list */
    uint64_t npages;
    unsigned long *bmap;          /* pages still to send this pass */
    unsigned long *file_bmap;     /* mapped-ram: page present in file */
    uint64_t *page_hashes;        /* checksums: per page, stored by the page-channel workers */
    MappedRamHeader hdr;
} RamBlockState;

/* One save, from save_setup to save_cleanup: the migration thread only. */
typedef struct RamSaveState {
    RamBlockState *blocks;
    size_t nblocks;
    size_t cur_block;
    uint64_t cur_page;
    RamEncoder enc;               /* the block list, and the last block for CONTINUE */
    uint64_t dirty_pages;
    /* dirty-pages-rate: pages newly dirtied since period_start_us, as QEMU's (>= 1 s periods) */
    gint64 period_start_us;
    uint64_t period_pages;
    PageChannels *pc;
    MrcTable *csum;               /* built at completion, put after the vmdesc */
} RamSaveState;

typedef struct RamLoadState RamLoadState;

struct RamState {
    /* Immutable */
    const MigrationHostOps *host;
    void *host_opaque;
    /* Set by ram_save_configure() before the save handlers run; read-only after. */
    RamSaveParams sp;
    /* The migration thread only */
    RamSaveState *save;
    /* Set by ram_load_configure() before the incoming thread starts; read-only after. */
    RamLoadParams lp;
    /* The incoming thread only */
    RamLoadState *load;
    /*
     * Shared restore: the fd holding a shared flock() on the file that
     * guest RAM maps (mapped-ram-share.h), or -1.  Set by the incoming
     * thread, closed by ram_state_free() once no thread runs: it lives as
     * long as the mapping.
     */
    int share_lock_fd;
};

void ram_save_configure(RamState *ram, const RamSaveParams *p)
{
    ram->sp = *p;
}

void ram_load_configure(RamState *ram, const RamLoadParams *p)
{
    ram->lp = *p;
}

static size_t host_block_count(RamState *ram)
{
    return ram->host->ram_block_count(ram->host_opaque);
}

static void host_block(RamState *ram, size_t i, MigrationRAMBlock *out)
{
    *out = (MigrationRAMBlock){ 0 };
    ram->host->ram_block_get(ram->host_opaque, i, out);
}

static uint64_t host_sync_dirty(RamState *ram, size_t i, unsigned long *dest)
{
    return ram->host->ram_block_sync_dirty(ram->host_opaque, i, dest);
}

uint64_t ram_state_total(RamState *ram)
{
    uint64_t total = 0;
    for (size_t i = 0; i < host_block_count(ram); i++) {
        MigrationRAMBlock rb;
        host_block(ram, i, &rb);
        total += rb.used_length;
    }
    return total;
}

/* ------------------------------------------------------------------ */
/* save                                                                */

static void publish_remaining(RamState *ram)
{
    stat64_set(&ram->sp.stats->remaining, ram->save->dirty_pages * RAM_PAGE_SIZE);
}

static uint64_t ram_sync_dirty(RamState *ram)
{
    RamSaveState *rs = ram->save;
    uint64_t newly = 0;
    for (size_t i = 0; i < rs->nblocks; i++) {
        newly += host_sync_dirty(ram, rs->blocks[i].index, rs->blocks[i].bmap);
    }
    rs->dirty_pages += newly;
    rs->period_pages += newly;
    gint64 now = g_get_monotonic_time();
    if (now - rs->period_start_us > G_USEC_PER_SEC) {
        stat64_set(&ram->sp.stats->dirty_pages_rate,
                   rs->period_pages * G_USEC_PER_SEC / (now - rs->period_start_us));
        rs->period_pages = 0;
        rs->period_start_us = now;
    }
    stat64_add(&ram->sp.stats->dirty_sync_count, 1);
    stat64_set(&ram->sp.stats->dirty_bytes_last_sync, rs->dirty_pages * RAM_PAGE_SIZE);
    publish_remaining(ram);
    return rs->dirty_pages * RAM_PAGE_SIZE;
}

static bool multifd_sync_point(RamState *ram, QEMUFile *f, bool round_end, GError **errp);
static bool multifd_marker_out(RamState *ram, QEMUFile *f, GError **errp);
static bool ram_eos(RamState *ram, QEMUFile *f, GError **errp);

static void ram_save_cleanup(void *opaque)
{
    RamState *ram = opaque;
    RamSaveState *rs = ram->save;
    if (!rs) {
        return;
    }
    if (rs->pc) {
        page_channels_abort(rs->pc);
        page_channels_free(rs->pc);
    }
    for (size_t i = 0; i < rs->nblocks; i++) {
        g_free(rs->blocks[i].bmap);
        g_free(rs->blocks[i].file_bmap);
        g_free(rs->blocks[i].page_hashes);
    }
    g_free(rs->blocks);
    mrc_table_free(rs->csum);
    ram_encoder_clear(&rs->enc);
    g_free(rs);
    ram->save = NULL;
}

static bool ram_save_setup(QEMUFile *f, void *opaque, GError **errp)
{
    RamState *ram = opaque;
    const RamSaveParams *p = &ram->sp;
    RamSaveState *rs;

    ram_save_cleanup(ram);
    rs = ram->save = g_new0(RamSaveState, 1);
    rs->nblocks = host_block_count(ram);
    rs->blocks = g_new0(RamBlockState, rs->nblocks);
    ram_encoder_init(&rs->enc);

    ram_encode_mem_size(&rs->enc, f, ram_state_total(ram));
    for (size_t i = 0; i < rs->nblocks; i++) {
        RamBlockState *b = &rs->blocks[i];
        host_block(ram, i, &b->rb);
        b->index = i;
        b->npages = b->rb.used_length / RAM_PAGE_SIZE;
        b->bmap = bitmap_new(b->npages);
        /* Everything is sent in the first pass: start from a clean log (sync 1, below). */
        host_sync_dirty(ram, i, b->bmap);
        bitmap_set_range(b->bmap, 0, b->npages);
        rs->dirty_pages += b->npages;
        if (p->mapped_ram) {
            b->file_bmap = bitmap_new(b->npages);
        }
        if (p->mapped_ram && p->checksums) {
            b->page_hashes = g_new(uint64_t, b->npages);
        }
        if (!ram_encode_block(&rs->enc, f, b->rb.idstr, b->rb.used_length,
                              p->mapped_ram ? &b->hdr : NULL, errp)) {
            return false;
        }
    }
    /* as QEMU counts it: the setup's harvest is the first sync (and MIGRATION_PASS 1) */
    stat64_add(&ram->sp.stats->dirty_sync_count, 1);
    rs->period_start_us = g_get_monotonic_time();
    if (!multifd_sync_point(ram, f, true, errp) || !ram_eos(ram, f, errp)) {
        return false;
    }
    if (p->mapped_ram) {
        PageChannelsConfig cfg = {
            .path = p->path,
            .flags = O_WRONLY,
            .channels = p->channels ? p->channels : 1,
            .direct_io = p->direct_io,
            .queue_depth = p->queue_depth,
            .threads = p->threads,
            .detect_zero = p->zero != ZERO_PAGE_DETECTION_NONE,
            .stats = &p->stats->pages,
        };
        rs->pc = page_channels_new(&cfg, errp);
        if (!rs->pc) {
            return false;
        }
    }
    publish_remaining(ram);
    return qemu_file_propagate_error(f, errp);
}

/* Stream format: one record per page. Returns bytes put. */
static uint64_t send_stream_page(RamState *ram, QEMUFile *f, size_t bi, uint64_t page)
{
    RamSaveState *rs = ram->save;
    PageStats *st = &ram->sp.stats->pages;
    RamBlockState *b = &rs->blocks[bi];
    uint8_t *host = b->rb.host + page * RAM_PAGE_SIZE;
    uint64_t before = qemu_file_transferred(f);
    if (ram->sp.zero != ZERO_PAGE_DETECTION_NONE && buffer_is_zero(host, RAM_PAGE_SIZE)) {
        ram_encode_zero_page(&rs->enc, f, bi, page * RAM_PAGE_SIZE);
        stat64_add(&st->zero_pages, 1);
    } else {
        ram_encode_page(&rs->enc, f, bi, page * RAM_PAGE_SIZE, host);
        /* its bytes are the stream's: counted by the QEMUFile, not in st->bytes */
        stat64_add(&st->normal_pages, 1);
    }
    return qemu_file_transferred(f) - before;
}

/*
 * Multifd over sockets: a zero page goes on the main stream as a ZERO
 * record unless the wire lists zero pages in packets; the others go to
 * the channels.  Returns the page bytes handed over, or -1.
 */
static int64_t send_multifd_page(RamState *ram, QEMUFile *f, size_t bi, uint64_t page,
                                 GError **errp)
{
    RamSaveState *rs = ram->save;
    const RamSaveParams *p = &ram->sp;
    RamBlockState *b = &rs->blocks[bi];
    uint8_t *host = b->rb.host + page * RAM_PAGE_SIZE;

    if (!p->wire.zero_in_packets && p->zero != ZERO_PAGE_DETECTION_NONE &&
        buffer_is_zero(host, RAM_PAGE_SIZE)) {
        uint64_t before = qemu_file_transferred(f);
        ram_encode_zero_page(&rs->enc, f, bi, page * RAM_PAGE_SIZE);
        stat64_add(&p->stats->pages.zero_pages, 1);
        return qemu_file_transferred(f) - before;
    }
    if (!multifd_send_queue_page(p->multifd_send, b->rb.idstr, b->rb.host,
                                 page * RAM_PAGE_SIZE, errp)) {
        return -1;
    }
    return RAM_PAGE_SIZE;
}

/*
 * Multifd's sync point before an EOS: every EOS is a marker in the
 * per-section mode; else a pass's end (round_end) gets a MULTIFD_FLUSH.
 */
static bool multifd_sync_point(RamState *ram, QEMUFile *f, bool round_end, GError **errp)
{
    const RamSaveParams *p = &ram->sp;

    if (!p->multifd_send || (!p->wire.sync_per_section && !round_end)) {
        return true;
    }
    if (!multifd_send_sync(p->multifd_send, errp)) {
        return false;
    }
    if (!p->wire.sync_per_section) {
        ram_encode_multifd_flush(f);
        return multifd_marker_out(ram, f, errp);
    }
    return true;
}

/*
 * A marker must not wait in the stream's buffer: the destination's
 * channels stop at their SYNC until it arrives, and once their sockets
 * fill, the next packet would wait for them here, for good.
 */
static bool multifd_marker_out(RamState *ram, QEMUFile *f, GError **errp)
{
    if (ram->sp.multifd_send && !qemu_fflush(f)) {
        return qemu_file_propagate_error(f, errp);
    }
    return true;
}

/* An EOS, which is a marker in the per-section mode. */
static bool ram_eos(RamState *ram, QEMUFile *f, GError **errp)
{
    ram_encode_eos(f);
    return !ram->sp.wire.sync_per_section || multifd_marker_out(ram, f, errp);
}

/*
 * Send dirty pages from the cursor on.  Returns 1 when the pass is
 * complete, 0 when rate-limited (more to do), -1 on error.
 */
static int send_dirty_pages(RamState *ram, QEMUFile *f, bool rate_limit, GError **errp)
{
    RamSaveState *rs = ram->save;
    const RamSaveParams *p = &ram->sp;
    uint64_t batch[PAGE_CHANNELS_MAX_BATCH];
    uint64_t since_check = 0;

    while (rs->cur_block < rs->nblocks) {
        RamBlockState *b = &rs->blocks[rs->cur_block];
        unsigned n = 0;
        uint64_t pg = rs->cur_page;
        while (n < PAGE_CHANNELS_MAX_BATCH) {
            pg = find_next_bit(b->bmap, b->npages, pg);
            if (pg >= b->npages) {
                break;
            }
            clear_bit(pg, b->bmap);
            rs->dirty_pages--;
            if (rs->pc) {
                batch[n++] = pg;
            } else if (p->multifd_send) {
                int64_t sent = send_multifd_page(ram, f, rs->cur_block, pg, errp);
                if (sent < 0) {
                    return -1;
                }
                since_check += sent;
                n++;
            } else {
                since_check += send_stream_page(ram, f, rs->cur_block, pg);
                n++;
            }
            pg++;
        }
        if (rs->pc && n) {
            if (!page_channels_queue_write_hashed(rs->pc, b->rb.idstr, b->rb.host,
                                                  b->hdr.pages_offset, b->file_bmap,
                                                  b->page_hashes, batch, n, errp)) {
                return -1;
            }
            since_check += (uint64_t)n * RAM_PAGE_SIZE;
        }
        publish_remaining(ram);
        if (pg >= b->npages) {
            rs->cur_block++;
            rs->cur_page = 0;
        } else {
            rs->cur_page = pg;
        }
        if (qemu_file_has_error(f)) {
            qemu_file_propagate_error(f, errp);
            return -1;
        }
        if (rate_limit && p->rate_limited && since_check >= 256 * 1024) {
            bool limited = p->rate_limited(p->rate_opaque);
            since_check = 0;
            if (limited) {
                return 0;
            }
        }
    }
    /* pass complete */
    rs->cur_block = 0;
    rs->cur_page = 0;
    return 1;
}

static int ram_save_iterate(QEMUFile *f, void *opaque, GError **errp)
{
    RamState *ram = opaque;
    int r = send_dirty_pages(ram, f, true, errp);
    if (r == 1 && ram->save->pc && !page_channels_sync(ram->save->pc, errp)) {
        r = -1;
    }
    if (r >= 0 && !multifd_sync_point(ram, f, r == 1, errp)) {
        r = -1;
    }
    if (r < 0) {
        ram_encode_eos(f);
    } else if (!ram_eos(ram, f, errp)) {
        r = -1;
    }
    return r;
}

/*
 * From the final bitmaps and page hashes, after the last sync: a page
 * rewritten in a later pass was hashed again when it was written again,
 * and the pages of the last pass were hashed with the VM stopped.
 */
static void build_checksums(RamSaveState *rs)
{
    rs->csum = mrc_table_new();
    for (size_t i = 0; i < rs->nblocks; i++) {
        RamBlockState *b = &rs->blocks[i];
        mrc_block_fill(mrc_table_add_block(rs->csum, b->rb.idstr, b->rb.used_length,
                                           b->hdr.pages_offset),
                       b->file_bmap, b->page_hashes);
    }
}

static bool ram_save_complete(QEMUFile *f, void *opaque, GError **errp)
{
    RamState *ram = opaque;
    RamSaveState *rs = ram->save;
    /*
     * The last pass is a full sweep: pages behind the cursor may be dirty
     * too.  The last iteration may have ended mid-pass (rate-limited) with
     * page writes still queued; a page of that unfinished pass may go
     * again now, maybe on another channel, and its older copy must land
     * first (else a stale page, and a hash that is not the file's): the
     * page channels sync, multifd gets a sync point (per-section mode had
     * one at the last EOS).
     */
    if (rs->pc && !page_channels_sync(rs->pc, errp)) {
        return false;
    }
    if ((rs->cur_block || rs->cur_page) && !ram->sp.wire.sync_per_section) {
        if (!multifd_sync_point(ram, f, true, errp)) {
            return false;
        }
    }
    rs->cur_block = 0;
    rs->cur_page = 0;
    ram_sync_dirty(ram);
    if (send_dirty_pages(ram, f, false, errp) < 0) {
        return false;
    }
    if (rs->pc) {
        bool synced = ram->sp.fsync ? page_channels_fsync(rs->pc, errp)
                                    : page_channels_sync(rs->pc, errp);
        if (!synced) {
            return false;
        }
        if (!qemu_fflush(f)) {
            return qemu_file_propagate_error(f, errp);
        }
        for (size_t i = 0; i < rs->nblocks; i++) {
            RamBlockState *b = &rs->blocks[i];
            if (!mapped_ram_write_bitmap(ram->sp.main_ioc, &b->hdr, b->file_bmap, b->npages,
                                         errp)) {
                return false;
            }
        }
        if (ram->sp.checksums) {
            build_checksums(rs);
        }
    }
    if (!multifd_sync_point(ram, f, true, errp) || !ram_eos(ram, f, errp)) {
        return false;
    }
    qemu_fflush(f);
    return qemu_file_propagate_error(f, errp);
}

static bool ram_save_trailer(QEMUFile *f, void *opaque, GError **errp)
{
    RamSaveState *rs = ((RamState *)opaque)->save;
    if (rs->csum) {
        mrc_table_put(f, rs->csum);
    }
    return qemu_file_propagate_error(f, errp);
}

static uint64_t ram_pending(void *opaque, bool exact)
{
    RamState *ram = opaque;
    if (exact) {
        return ram_sync_dirty(ram);
    }
    return ram->save->dirty_pages * RAM_PAGE_SIZE;
}

/* ------------------------------------------------------------------ */
/* load into the VM                                                    */

/* Guest memory read through a gap of a run: zeroed once the reads are done. */
typedef struct GapRange {
    uint8_t *host;
    size_t len;
} GapRange;

/* One load, from load_setup to load_cleanup: the incoming thread only. */
/* A block whose reads are hashed, checked once they are done. */
typedef struct LoadCheck {
    const MrcBlock *sums;         /* in RamLoadState.csum */
    unsigned long *bmap;
    uint64_t *hashes;             /* per page, stored by the page-channel workers */
} LoadCheck;

struct RamLoadState {
    RamDecoder dec;
    PageChannels *pc;
    MrcLoader csum;               /* the file's checksum table, if checks are on */
    GArray *checks;               /* LoadCheck */
    GArray *zero_after_sync;      /* GapRange: read as part of a run, must be zero */
    GArray *blocks;               /* size_t host block index, index = parse idx */
    PageStats stats;              /* page channels' counters (not reported) */
    bool started;                 /* its START section was loaded */
};

static bool vm_block(void *opaque, QEMUFile *f, unsigned idx, const char *idstr,
                     uint64_t used_length, const MappedRamHeader *hdr, GError **errp);

static MigrationRAMBlock load_block(RamState *ram, unsigned idx)
{
    MigrationRAMBlock rb;
    host_block(ram, g_array_index(ram->load->blocks, size_t, idx), &rb);
    return rb;
}

static uint8_t *vm_page_dest(void *opaque, unsigned idx, uint64_t offset, GError **errp)
{
    return load_block(opaque, idx).host + offset;
}

static bool vm_page(void *opaque, unsigned idx, uint64_t offset, bool zero, GError **errp)
{
    if (zero) {
        uint8_t *host = load_block(opaque, idx).host + offset;
        if (!buffer_is_zero(host, RAM_PAGE_SIZE)) {
            memset(host, 0, RAM_PAGE_SIZE);
        }
    }
    return true;
}

/* A multifd sync marker: the channels' pages up to their SYNC are in guest memory. */
static bool vm_multifd_sync(void *opaque, GError **errp)
{
    RamState *ram = opaque;

    return !ram->lp.multifd_recv || multifd_recv_sync(ram->lp.multifd_recv, errp);
}

static const RamSink vm_sink = {
    .block = vm_block,
    .page_dest = vm_page_dest,
    .page = vm_page,
    .multifd_sync = vm_multifd_sync,
};

bool ram_find_block(void *ram_state, const char *idstr, uint8_t **host, uint64_t *used_length)
{
    RamState *ram = ram_state;

    for (size_t i = 0; i < host_block_count(ram); i++) {
        MigrationRAMBlock rb;
        host_block(ram, i, &rb);
        if (strcmp(rb.idstr, idstr) == 0) {
            *host = rb.host;
            *used_length = rb.used_length;
            return true;
        }
    }
    return false;
}

/*
 * Clear runs of at most LOAD_GAP_PAGES pages are read through, inside the
 * read of the set pages around them, and zeroed once the reads are done
 * (their slots hold holes or stale data).  Guest RAM is in transparent
 * huge pages, so the data pages around a short hole fault its 2 MiB in
 * anyway: reading it costs a zero-fill and a memset, a request of its own
 * costs more.  Measured here (4 GiB mapram-vm, mapped-ram + multifd 4 +
 * direct-io, median of 3): a guest filled page by page, a third of the
 * pages zero, restored in 2.82 s with no gap, 2.27 s with 4 (CPU 2.31 ->
 * 1.49 s) into a -mem-prealloc destination, 13.3 s -> 5.3 s into a fresh
 * one.  Long holes are not worth it: with the bench's guest (holes of 16
 * pages and more) a 16-page gap took 0.65 s instead of 0.49 s (prealloc)
 * and 2.5 s instead of 0.76 s (fresh), a 64-page gap 0.77 s and 0.76 s.
 */
#define LOAD_GAP_PAGES 4
/* One read request at most: 1 MiB, so that a block's reads spread over the workers. */
#define LOAD_RUN_PAGES (MAPPED_RAM_LOAD_BUF_SIZE / RAM_PAGE_SIZE)

/* Pages [from, to) are clear: those this VM wrote must read back as zero. */
static void zero_touched(const MigrationRAMBlock *rb, const unsigned long *touched,
                         uint64_t from, uint64_t to)
{
    for (uint64_t z = find_next_bit(touched, to, from); z < to;
         z = find_next_bit(touched, to, z + 1)) {
        uint8_t *page = rb->host + z * RAM_PAGE_SIZE;
        if (!buffer_is_zero(page, RAM_PAGE_SIZE)) {     /* a zero page stays unwritten */
            memset(page, 0, RAM_PAGE_SIZE);
        }
    }
}

/* The run's gap pages are read, and hold a hole or stale data: zero them after the reads. */
static void note_gaps(RamLoadState *rl, const MappedRamRuns *it, const MappedRamRun *run,
                      const MigrationRAMBlock *rb)
{
    uint64_t pos = run->start, gs, ge;

    while (run->gap_pages && mapped_ram_run_next_gap(it, run, &pos, &gs, &ge)) {
        GapRange g = { rb->host + gs * RAM_PAGE_SIZE, (ge - gs) * RAM_PAGE_SIZE };
        g_array_append_val(rl->zero_after_sync, g);
    }
}

static bool plan_block_reads(RamState *ram, size_t index, const MigrationRAMBlock *rb,
                             const MappedRamHeader *hdr, const unsigned long *bmap,
                             uint64_t npages, uint64_t *hashes, GError **errp)
{
    RamLoadState *rl = ram->load;
    g_autofree unsigned long *touched = bitmap_new(npages);
    MappedRamRuns it;
    MappedRamRun run;
    uint64_t pos = 0;

    /* Pages this VM wrote since it started: only those can be non-zero. */
    host_sync_dirty(ram, index, touched);
    mapped_ram_runs_init(&it, bmap, 0, npages, LOAD_GAP_PAGES, LOAD_RUN_PAGES);
    while (mapped_ram_runs_next(&it, &run)) {
        zero_touched(rb, touched, pos, run.start);
        note_gaps(rl, &it, &run, rb);
        if (!page_channels_queue_read_hashed(rl->pc, rb->host + run.start * RAM_PAGE_SIZE,
                                             (run.end - run.start) * RAM_PAGE_SIZE,
                                             hdr->pages_offset + run.start * RAM_PAGE_SIZE,
                                             hashes ? hashes + run.start : NULL, errp)) {
            return false;
        }
        pos = run.end;
    }
    zero_touched(rb, touched, pos, npages);
    return true;
}

static bool find_host_block(RamState *ram, const char *idstr, size_t *index,
                            MigrationRAMBlock *rb)
{
    for (size_t i = 0; i < host_block_count(ram); i++) {
        host_block(ram, i, rb);
        if (strcmp(rb->idstr, idstr) == 0) {
            *index = i;
            return true;
        }
    }
    return false;
}

/* x-mapped-ram-shared: the block's memory becomes a private mapping of its page region. */
static bool share_block(RamState *ram, QEMUFile *f, const MigrationRAMBlock *rb,
                        const MappedRamHeader *hdr, const unsigned long *bmap, GError **errp)
{
    int fd = io_channel_get_fd(qemu_file_get_ioc(f));

    if (!rb->private_anon) {
        error_setg(errp, "RAM block '%s' is not private anonymous memory (a memory backend "
                   "with share=on, a file or a memfd): x-mapped-ram-shared cannot map the "
                   "migration file over it", rb->idstr);
        return false;
    }
    if (fd < 0) {
        error_setg(errp, "x-mapped-ram-shared needs the migration file's fd");
        return false;
    }
    if (ram->share_lock_fd < 0 && !mapped_ram_share_lock(fd, &ram->share_lock_fd, errp)) {
        return false;
    }
    /* the lock's own open of the file: its SEEK_DATA walk leaves the stream's offset alone */
    return mapped_ram_share_block(ram->share_lock_fd, rb->idstr, rb->host, rb->used_length,
                                  hdr, bmap, errp);
}

static bool vm_block(void *opaque, QEMUFile *f, unsigned idx, const char *idstr,
                     uint64_t used_length, const MappedRamHeader *hdr, GError **errp)
{
    RamState *ram = opaque;
    MigrationRAMBlock rb;
    size_t index;

    if (!find_host_block(ram, idstr, &index, &rb)) {
        error_setg(errp, "Unknown ramblock \"%s\", cannot accept migration", idstr);
        return false;
    }
    if (rb.used_length != used_length) {
        error_setg(errp, "Length mismatch: %s: 0x%llx in != 0x%llx: %s", idstr,
                   (unsigned long long)used_length, (unsigned long long)rb.used_length,
                   g_strerror(EINVAL));
        return false;
    }
    g_assert(idx == ram->load->blocks->len);
    g_array_append_val(ram->load->blocks, index);
    if (!hdr) {
        return true;
    }
    uint64_t npages = used_length / RAM_PAGE_SIZE;
    g_autofree unsigned long *bmap =
        mapped_ram_read_bitmap(qemu_file_get_ioc(f), idstr, hdr, npages, errp);
    if (!bmap) {
        return false;
    }
    if (ram->lp.shared) {
        return share_block(ram, f, &rb, hdr, bmap, errp);
    }
    LoadCheck chk = { 0 };
    /* *sums is NULL when checks are off or the file has no table (QEMU's have none) */
    if (!mrc_loader_block(&ram->load->csum, qemu_file_get_ioc(f), idstr, used_length, hdr,
                          &chk.sums, errp)) {
        return false;
    }
    if (ram->lp.postcopy) {
        return postcopy_load_add_block(ram->lp.postcopy, idstr, rb.host, used_length,
                                       rb.private_anon, hdr->pages_offset,
                                       g_steal_pointer(&bmap), chk.sums, errp);
    }
    if (chk.sums) {
        chk.hashes = g_new(uint64_t, npages);
        chk.bmap = g_steal_pointer(&bmap);
        g_array_append_val(ram->load->checks, chk);
    }
    return plan_block_reads(ram, index, &rb, hdr, chk.bmap ? chk.bmap : bmap, npages,
                            chk.hashes, errp);
}

/* After the reads: every block's runs against the table. */
static bool check_loaded_pages(RamLoadState *rl, GError **errp)
{
    for (guint i = 0; i < rl->checks->len; i++) {
        LoadCheck *c = &g_array_index(rl->checks, LoadCheck, i);
        if (!mrc_check_runs(c->sums, c->bmap, c->hashes, 0,
                            c->sums->used_length / RAM_PAGE_SIZE, errp)) {
            return false;
        }
    }
    return true;
}

static void clear_checks(RamLoadState *rl)
{
    for (guint i = 0; i < rl->checks->len; i++) {
        LoadCheck *c = &g_array_index(rl->checks, LoadCheck, i);
        g_free(c->bmap);
        g_free(c->hashes);
    }
    g_array_set_size(rl->checks, 0);
}

/* A checksum table that its trailer did not lead to fails the load (see mrc_table_check_hidden). */
static bool ram_load_complete(QEMUFile *f, void *opaque, uint64_t eof_end, GError **errp)
{
    RamState *ram = opaque;
    RamLoadState *rl = ram->load;

    return !rl || !eof_end || mrc_loader_eof(&rl->csum, qemu_file_get_ioc(f), eof_end, errp);
}

static void ram_load_cleanup(void *opaque)
{
    RamState *ram = opaque;
    RamLoadState *rl = ram->load;
    if (!rl) {
        return;
    }
    page_channels_free(rl->pc);
    clear_checks(rl);
    g_array_unref(rl->checks);
    mrc_loader_clear(&rl->csum);
    ram_decoder_clear(&rl->dec);
    g_array_unref(rl->zero_after_sync);
    g_array_unref(rl->blocks);
    g_free(rl);
    ram->load = NULL;
}

/* The load's page channels on the migration file. */
static PageChannelsConfig load_channels_config(const RamLoadParams *p, PageStats *stats)
{
    return (PageChannelsConfig){
        .path = p->path,
        .flags = O_RDONLY,
        .channels = p->channels ? p->channels : 1,
        .direct_io = p->direct_io,
        .queue_depth = p->queue_depth,
        .threads = p->threads,
        .stats = stats,
    };
}

static bool ram_load_setup(void *opaque, GError **errp)
{
    RamState *ram = opaque;
    const RamLoadParams *p = &ram->lp;
    RamLoadState *rl;

    ram_load_cleanup(ram);
    rl = ram->load = g_new0(RamLoadState, 1);
    ram_decoder_init(&rl->dec, p->mapped_ram);
    rl->csum.enabled = p->checksums;
    rl->zero_after_sync = g_array_new(FALSE, FALSE, sizeof(GapRange));
    rl->blocks = g_array_new(FALSE, FALSE, sizeof(size_t));
    rl->checks = g_array_new(FALSE, FALSE, sizeof(LoadCheck));
    if (p->mapped_ram && !p->postcopy) {
        PageChannelsConfig cfg = load_channels_config(p, &rl->stats);
        rl->pc = page_channels_new(&cfg, errp);
        if (!rl->pc) {
            return false;
        }
    }
    return true;
}

static bool ram_load_state(QEMUFile *f, void *opaque, const SectionInfo *si, GError **errp)
{
    RamState *ram = opaque;
    RamLoadState *rl = ram->load;
    if (si->type == QEMU_VM_SECTION_START) {
        /*
         * One block list per stream: a second would register the blocks
         * and start an on-demand load's fault thread again, over the
         * first (a source never sends one; a crafted file may).
         */
        if (rl->started) {
            error_setg(errp, "RAM START section seen twice");
            return false;
        }
        /* as QEMU: its RAM stream has been version 4 since 2012, older ones are refused */
        if (si->version_id != RAM_SECTION_VERSION) {
            error_setg(errp, "RAM section version %u is not supported (expected %u)",
                       si->version_id, RAM_SECTION_VERSION);
            return false;
        }
        rl->started = true;
    }
    if (!ram_decode_section(&rl->dec, f, si->type, &vm_sink, ram, errp) ||
        (si->type == QEMU_VM_SECTION_START &&
         !mrc_loader_blocks_end(&rl->csum, rl->dec.block_names->len, errp))) {
        if (rl->pc) {
            page_channels_abort(rl->pc);
        }
        return false;
    }
    if (si->type == QEMU_VM_SECTION_START && ram->lp.mapped_ram && ram->lp.postcopy) {
        /*
         * On demand: no page is read here; the background stream opens
         * its channels once the guest runs (the counters go with them).
         */
        PageChannelsConfig cfg =
            load_channels_config(&ram->lp, postcopy_load_page_stats(ram->lp.postcopy));
        postcopy_load_start(ram->lp.postcopy, &cfg, mrc_loader_take(&rl->csum));
        return true;
    }
    if (si->type == QEMU_VM_SECTION_START && rl->pc) {
        if (!page_channels_sync(rl->pc, errp)) {
            g_prefix_error(errp, "mapped-ram: ");
            return false;
        }
        for (guint i = 0; i < rl->zero_after_sync->len; i++) {
            GapRange *g = &g_array_index(rl->zero_after_sync, GapRange, i);
            memset(g->host, 0, g->len);
        }
        g_array_set_size(rl->zero_after_sync, 0);
        bool ok = check_loaded_pages(rl, errp);
        clear_checks(rl);
        return ok;
    }
    return true;
}

static const SaveVMHandlers ram_handlers = {
    .save_setup = ram_save_setup,
    .save_iterate = ram_save_iterate,
    .save_complete = ram_save_complete,
    .save_trailer = ram_save_trailer,
    .save_cleanup = ram_save_cleanup,
    .pending = ram_pending,
    .load_setup = ram_load_setup,
    .load_state = ram_load_state,
    .load_complete = ram_load_complete,
    .load_cleanup = ram_load_cleanup,
};

RamState *ram_state_new(SaveVMRegistry *r, const MigrationHostOps *host, void *host_opaque)
{
    RamState *ram = g_new0(RamState, 1);
    ram->host = host;
    ram->host_opaque = host_opaque;
    ram->share_lock_fd = -1;
    savevm_register_live(r, "ram", 0, RAM_SECTION_VERSION, &ram_handlers, ram);
    return ram;
}

void ram_state_free(RamState *ram)
{
    if (ram) {
        ram_save_cleanup(ram);
        ram_load_cleanup(ram);
        if (ram->share_lock_fd >= 0) {
            close(ram->share_lock_fd);
        }
        g_free(ram);
    }
}
