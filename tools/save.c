/*
 * mapram save: a QEMU migration stream (stdin) -> a mapped-ram file, the
 * file a QEMU with mapped-ram would write for the same state.
 *
 * Sections are re-emitted as they come; the "ram" START gets mapped-ram
 * block headers, its PART/END sections shrink to EOS, and every PAGE
 * record lands in its slot through the page channels (staged in aligned
 * 1 MiB chunks).  A page sent again overwrites its slot; ZERO records (and
 * all-zero PAGEs) clear the bit and leave a hole.  On failure the output is
 * truncated back to the offset, so no file that verify passes is left.
 *
 * --listen URI (tcp: or unix:) receives a migration over sockets instead
 * of stdin; with multifd (--channels N > 1, or any --compression) the
 * page data comes in packets on N more connections, each served by its
 * receive thread (multifd.c), which writes its pages to their slots
 * through an fd of its own: one page-I/O channel per multifd channel.
 */
#include "mapram-tool.h"
#include "../migration/mapped-ram-csum.h"
#include "../migration/mapped-ram-share.h"
#include "../migration/migration-internal.h"
#include "../migration/multifd.h"
#include "../migration/page-channels.h"
#include "../migration/ram-codec.h"
#include "../migration/savevm.h"
#include "util/bitmap.h"
#include "util/bufferzero.h"
#include "util/error.h"
#include "util/osdep.h"
#include "util/thread.h"
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <string.h>
#include <unistd.h>

#define CHUNK_BYTES   (1024 * 1024)
#define CHUNK_PAGES   (CHUNK_BYTES / RAM_PAGE_SIZE)
#define CHUNKS        64

typedef struct OutBlock {
    char *idstr;
    uint64_t npages;
    MappedRamHeader hdr;
    unsigned long *file_bmap;
    unsigned long *inflight;   /* written since the last sync */
    uint64_t *hashes;          /* checksums: per page, stored by the workers as they write
                                  (atomically: see s_multifd_pages) */
} OutBlock;

typedef struct SaveCtx {
    const PageIoOptions *o;
    char *path;
    uint64_t offset;
    QEMUFile *out;
    IOChannel *out_ioc;
    bool created;              /* out_ioc's file did not exist before this save */
    bool locked;               /* the caller holds the file's writer lock: take none */
    PageChannels *pc;
    RamDecoder dec;            /* the input stream's ram section */
    RamEncoder enc;            /* the output's block list */
    bool mapped_in;
    GPtrArray *blocks;         /* OutBlock * */
    uint8_t *chunks[CHUNKS];
    unsigned chunk;            /* current chunk index */
    unsigned used;             /* pages of the current chunk in use */
    PageSeg segs[CHUNK_PAGES]; /* runs staged in the current chunk */
    unsigned nsegs;
    int cur_block;             /* block of the open run, -1 = none */
    uint64_t cur_next;         /* page that would extend the open run */
    uint64_t ram_done;
    Progress *progress;
    MrcTable *csum;            /* built with the bitmaps, put after the vmdesc */
    bool saw_vmdesc;
    bool out_failed;           /* a write of the output failed (page channels included) */
    /* the ram section's START, if any, and whether its END (the bitmaps) came */
    bool ram_started;
    uint32_t ram_section_id;
    bool ram_ended;
    /* --listen with multifd: the receive threads and their fds */
    MultiFDRecv *mr;
    unsigned nchan;
    int *chan_fds;             /* one O_WRONLY fd on the output per channel; immutable */
    QemuMutex lock;            /* the block list, against the receive threads */
    QemuCond blocks_known;
    bool blocks_done;          /* lock: the START block list was read (or the save failed) */
} SaveCtx;

static void out_block_free(gpointer p)
{
    OutBlock *b = p;
    g_free(b->idstr);
    g_free(b->file_bmap);
    g_free(b->inflight);
    g_free(b->hashes);
    g_free(b);
}

static bool sync_all(SaveCtx *c, GError **errp)
{
    if (!page_channels_sync(c->pc, errp)) {
        c->out_failed = true;
        return false;
    }
    for (guint i = 0; i < c->blocks->len; i++) {
        OutBlock *b = g_ptr_array_index(c->blocks, i);
        memset(b->inflight, 0, BITS_TO_LONGS(b->npages) * sizeof(unsigned long));
    }
    c->chunk = 0;
    return true;
}

/* Hand the current chunk's runs to one channel as one job. */
static bool submit_chunk(SaveCtx *c, GError **errp)
{
    c->cur_block = -1;
    if (!c->nsegs) {
        return true;
    }
    bool ok = page_channels_queue_segs(c->pc, true, c->segs, c->nsegs, errp);
    c->nsegs = 0;
    c->used = 0;
    if (!ok) {
        c->out_failed = true;
        return false;
    }
    if (++c->chunk == CHUNKS) {
        return sync_all(c, errp);
    }
    return true;
}

static bool s_mem_size(void *opaque, uint64_t total, GError **errp)
{
    SaveCtx *c = opaque;
    ram_encode_mem_size(&c->enc, c->out, total);
    progress_set_total(c->progress, total);
    return true;
}

static bool s_block(void *opaque, QEMUFile *f, unsigned idx, const char *idstr,
                    uint64_t used_length, const MappedRamHeader *hdr, GError **errp)
{
    SaveCtx *c = opaque;
    if (hdr) {
        error_setg(errp, "the input is already a mapped-ram stream");
        return false;
    }
    OutBlock *b = g_new0(OutBlock, 1);
    b->idstr = g_strdup(idstr);
    b->npages = used_length / RAM_PAGE_SIZE;
    /* the length comes from the stream: a size no host could save is an error, not an abort */
    size_t bmap_bytes = bitmap_size_bytes(b->npages);
    b->file_bmap = g_try_malloc0(bmap_bytes);
    b->inflight = g_try_malloc0(bmap_bytes);
    if (c->o->checksums) {
        b->hashes = g_try_new(uint64_t, b->npages);
    }
    if (!b->file_bmap || !b->inflight || (c->o->checksums && !b->hashes)) {
        error_setg(errp, "RAM block '%s' of 0x%llx bytes: out of memory for its page maps",
                   idstr, (unsigned long long)used_length);
        out_block_free(b);
        return false;
    }
    qemu_mutex_lock(&c->lock);
    g_ptr_array_add(c->blocks, b);
    qemu_mutex_unlock(&c->lock);
    return ram_encode_block(&c->enc, c->out, idstr, used_length, &b->hdr, errp);
}

/* The receive threads may look the blocks up: their list is complete. */
static void blocks_complete(SaveCtx *c)
{
    qemu_mutex_lock(&c->lock);
    c->blocks_done = true;
    qemu_cond_broadcast(&c->blocks_known);
    qemu_mutex_unlock(&c->lock);
}

/* A multifd sync marker: every channel's pages up to its SYNC are written. */
static bool s_multifd_sync(void *opaque, GError **errp)
{
    SaveCtx *c = opaque;

    /* the first marker comes after the block list; pages come after it */
    blocks_complete(c);
    return !c->mr || multifd_recv_sync(c->mr, errp);
}

/* Channel thread: the block a packet names, once the block list is known. */
static OutBlock *wait_block(SaveCtx *c, const char *idstr, GError **errp)
{
    OutBlock *found = NULL;

    qemu_mutex_lock(&c->lock);
    while (!c->blocks_done) {
        qemu_cond_wait(&c->blocks_known, &c->lock);
    }
    for (guint i = 0; i < c->blocks->len && !found; i++) {
        OutBlock *b = g_ptr_array_index(c->blocks, i);
        if (!strcmp(b->idstr, idstr)) {
            found = b;
        }
    }
    qemu_mutex_unlock(&c->lock);
    if (!found) {
        error_setg(errp, "multifd: unknown ram block %s", idstr);
    }
    return found;
}

/*
 * Channel thread: a packet's pages to their slots through the channel's
 * fd; bits set for data, cleared for zero pages (atomically: other
 * channels and the main stream's ZERO records touch the same words).
 *
 * One page can come twice between two markers, in packets of two
 * channels: QEMU 7.2 sends the last page of a full packet again as the
 * first page of the next one (QEMU's multifd_queue_page() rereads the
 * block of a page array it has just handed to a channel, which may have
 * emptied it).  Both copies are written, in either order, and both
 * store the page's hash, so that store is atomic.  The copies differ
 * only if the guest wrote the page between the two reads; then the page
 * is dirty and comes again after the next marker, with its hash, so the
 * file ends with the last bytes and their hash either way.
 */
static bool s_multifd_pages(void *opaque, unsigned ch, const MultiFDPacket *p, uint8_t *data,
                            GError **errp)
{
    SaveCtx *c = opaque;
    OutBlock *b = wait_block(c, p->idstr, errp);

    if (!b) {
        return false;
    }
    for (uint32_t i = 0; i < p->normal_pages + p->zero_pages; i++) {
        uint64_t off = p->offsets[i];
        if (off % RAM_PAGE_SIZE || off / RAM_PAGE_SIZE >= b->npages) {
            error_setg(errp, "multifd: offset too long %" G_GUINT64_FORMAT " (max %"
                       G_GUINT64_FORMAT ")", off, (guint64)(b->npages * RAM_PAGE_SIZE));
            return false;
        }
    }
    /*
     * Runs of data pages whose offsets follow each other go out as one
     * write (a packet holds up to 128 pages, mostly in order): one 4 KiB
     * O_DIRECT pwrite per page took 10-15x the time of the whole save.
     */
    for (uint32_t i = 0; i < p->normal_pages;) {
        uint32_t n = 0;
        while (i + n < p->normal_pages) {
            uint8_t *src = data + (i + n) * RAM_PAGE_SIZE;
            uint64_t page = p->offsets[i + n] / RAM_PAGE_SIZE;
            if (n && p->offsets[i + n] != p->offsets[i] + n * RAM_PAGE_SIZE) {
                break;
            }
            if (buffer_is_zero(src, RAM_PAGE_SIZE)) {
                if (n) {
                    break;                            /* the zero page starts the next round */
                }
                clear_bit_atomic(page, b->file_bmap); /* keep it a hole */
                i++;
                continue;
            }
            if (b->hashes) {
                __atomic_store_n(&b->hashes[page], mrc_page_hash(src), __ATOMIC_RELAXED);
            }
            n++;
        }
        if (!n) {
            continue;
        }
        off_t at = b->hdr.pages_offset + p->offsets[i];
        size_t len = (size_t)n * RAM_PAGE_SIZE;
        ssize_t w = pwrite(c->chan_fds[ch], data + i * RAM_PAGE_SIZE, len, at);
        if (w != (ssize_t)len) {
            error_setg_errno(errp, w < 0 ? errno : ENOSPC,
                             "Unable to write to file at offset 0x%llx", (unsigned long long)at);
            return false;
        }
        for (uint32_t k = 0; k < n; k++) {
            set_bit_atomic(p->offsets[i + k] / RAM_PAGE_SIZE, b->file_bmap);
        }
        i += n;
    }
    for (uint32_t i = p->normal_pages; i < p->normal_pages + p->zero_pages; i++) {
        clear_bit_atomic(p->offsets[i] / RAM_PAGE_SIZE, b->file_bmap);
    }
    return true;
}

static uint8_t *s_page_dest(void *opaque, unsigned idx, uint64_t offset, GError **errp)
{
    SaveCtx *c = opaque;
    OutBlock *b = g_ptr_array_index(c->blocks, idx);
    uint64_t page = offset / RAM_PAGE_SIZE;

    if (test_bit(page, b->inflight)) {
        /* resent before its last write finished: order the two writes */
        if (!submit_chunk(c, errp) || !sync_all(c, errp)) {
            return NULL;
        }
    }
    if (c->used == CHUNK_PAGES && !submit_chunk(c, errp)) {
        return NULL;
    }
    return c->chunks[c->chunk] + c->used * RAM_PAGE_SIZE;
}

static bool s_page(void *opaque, unsigned idx, uint64_t offset, bool zero, GError **errp)
{
    SaveCtx *c = opaque;
    OutBlock *b = g_ptr_array_index(c->blocks, idx);
    uint64_t page = offset / RAM_PAGE_SIZE;
    uint8_t *data = c->chunks[c->chunk] + c->used * RAM_PAGE_SIZE;

    c->ram_done += RAM_PAGE_SIZE;
    progress_update(c->progress, c->ram_done);
    if (!zero && buffer_is_zero(data, RAM_PAGE_SIZE)) {
        zero = true;       /* sent as data but all zero: keep it a hole */
    }
    if (zero) {
        clear_bit_atomic(page, b->file_bmap);
        return true;
    }
    set_bit_atomic(page, b->file_bmap);
    set_bit(page, b->inflight);
    if (c->cur_block == (int)idx && c->cur_next == page && c->nsegs) {
        c->segs[c->nsegs - 1].len += RAM_PAGE_SIZE;
    } else {
        c->segs[c->nsegs++] = (PageSeg) { data, RAM_PAGE_SIZE, b->hdr.pages_offset + offset,
                                          b->hashes ? b->hashes + page : NULL };
        c->cur_block = idx;
    }
    c->cur_next = page + 1;
    c->used++;
    return true;
}

static const RamSink save_sink = {
    .mem_size = s_mem_size, .block = s_block, .page_dest = s_page_dest, .page = s_page,
    .multifd_sync = s_multifd_sync,
};

static bool s_configuration(void *opaque, QEMUFile *f, const StreamConfig *cfg, GError **errp)
{
    SaveCtx *c = opaque;
    StreamConfig oc = *cfg;
    oc.caps = g_ptr_array_new_with_free_func(g_free);
    bool has_shared = false;
    for (guint i = 0; i < cfg->caps->len; i++) {
        const char *cap = g_ptr_array_index(cfg->caps, i);
        if (!strcmp(cap, "mapped-ram")) {
            c->mapped_in = true;
        }
        if (!strcmp(cap, "x-ignore-shared")) {
            has_shared = true;
        }
    }
    if (c->mapped_in) {
        g_ptr_array_unref(oc.caps);
        error_setg(errp, "the input is already a mapped-ram stream");
        return false;
    }
    if (has_shared) {
        g_ptr_array_unref(oc.caps);
        error_setg(errp, "streams saved with x-ignore-shared are not supported");
        return false;
    }
    g_ptr_array_add(oc.caps, g_strdup("mapped-ram"));
    qemu_put_be32(c->out, QEMU_VM_FILE_MAGIC);
    qemu_put_be32(c->out, QEMU_VM_FILE_VERSION);
    savevm_put_configuration(c->out, &oc, NULL);
    g_ptr_array_unref(oc.caps);
    ram_decoder_init(&c->dec, false);
    ram_encoder_init(&c->enc);
    return qemu_file_propagate_error(c->out, errp);
}

static bool write_bitmaps(SaveCtx *c, GError **errp)
{
    if (!submit_chunk(c, errp) || !sync_all(c, errp) || !qemu_fflush(c->out)) {
        return qemu_file_propagate_error(c->out, errp) && false;
    }
    for (guint i = 0; i < c->blocks->len; i++) {
        OutBlock *b = g_ptr_array_index(c->blocks, i);
        if (!mapped_ram_write_bitmap(c->out_ioc, &b->hdr, b->file_bmap, b->npages, errp)) {
            return false;
        }
    }
    if (c->o->checksums) {
        /* after the last sync: a page sent again was hashed again when written again */
        mrc_table_free(c->csum);
        c->csum = mrc_table_new();
        for (guint i = 0; i < c->blocks->len; i++) {
            OutBlock *b = g_ptr_array_index(c->blocks, i);
            mrc_block_fill(mrc_table_add_block(c->csum, b->idstr, b->npages * RAM_PAGE_SIZE,
                                               b->hdr.pages_offset),
                           b->file_bmap, b->hashes);
        }
    }
    return true;
}

static bool s_section(void *opaque, QEMUFile *f, const SectionInfo *si, GError **errp)
{
    SaveCtx *c = opaque;
    if (strcmp(si->idstr, "ram") != 0 || si->type == QEMU_VM_SECTION_FULL) {
        return savevm_copy_unknown_section(f, c->out, si, errp);
    }
    if (si->version_id != RAM_SECTION_VERSION) {
        error_setg(errp, "ram section version %u is not supported (expected 4)",
                   si->version_id);
        return false;
    }
    savevm_put_section_header(c->out, si);
    if (!ram_decode_section(&c->dec, f, si->type, &save_sink, c, errp)) {
        return false;
    }
    if (si->type == QEMU_VM_SECTION_START) {
        blocks_complete(c);
        c->ram_started = true;
        c->ram_section_id = si->section_id;
    }
    if (si->type == QEMU_VM_SECTION_END) {
        if (!write_bitmaps(c, errp)) {
            return false;
        }
        c->ram_ended = true;
    }
    ram_encode_eos(c->out);
    savevm_put_section_footer(c->out, si->section_id);
    return qemu_file_propagate_error(c->out, errp);
}

static bool s_command(void *opaque, QEMUFile *f, uint16_t cmd, const uint8_t *data,
                      uint16_t len, GError **errp)
{
    SaveCtx *c = opaque;
    savevm_put_command(c->out, cmd, data, len);
    return true;
}

/*
 * Every QEMU ends its ram section before the EOF: one that did not was
 * cut or forged, and the bitmaps (written at the END, after the last page
 * writes are synced) would say "all zero".
 */
static bool s_eof(void *opaque, QEMUFile *f, GError **errp)
{
    SaveCtx *c = opaque;

    if (c->ram_started && !c->ram_ended) {
        error_setg(errp, "The stream ended before its ram section (id %u) did: "
                   "its last pages and the end of the save are missing", c->ram_section_id);
        return false;
    }
    qemu_put_byte(c->out, QEMU_VM_EOF);
    return true;
}

static bool s_vmdesc(void *opaque, const char *json, uint32_t len, GError **errp)
{
    SaveCtx *c = opaque;
    savevm_put_vmdesc(c->out, json, len);
    c->saw_vmdesc = true;
    return true;
}

static const StreamVisitor save_visitor = {
    .configuration = s_configuration,
    .section = s_section,
    .command = s_command,
    .eof = s_eof,
    .vmdesc = s_vmdesc,
};

static bool open_output(SaveCtx *c, GError **errp)
{
    /* a file this save creates is removed again if the save fails */
    c->out_ioc = tool_open_output(c->path, &c->created, errp);
    if (c->out_ioc && !c->locked &&
        !mapped_ram_share_lock_writer(c->out_ioc, c->path, errp)) {
        /* a file that backs a running VM is left alone, not even cut */
        g_clear_pointer(&c->out_ioc, io_channel_unref);
        return false;
    }
    if (c->out_ioc) {
        tool_arm_output(c->out_ioc, c->path, c->created, c->offset);
    }
    if (!c->out_ioc || !io_channel_truncate_for_write(c->out_ioc, c->offset, errp) ||
        io_channel_seek(c->out_ioc, c->offset, SEEK_SET, errp) < 0) {
        return false;
    }
    c->out = qemu_file_new_output(c->out_ioc, c->offset);
    PageChannelsConfig cfg = {
        .path = c->path, .flags = O_WRONLY, .channels = c->o->channels ? c->o->channels : 1,
        .direct_io = c->o->direct_io, .queue_depth = c->o->queue_depth,
    };
    c->pc = page_channels_new(&cfg, errp);
    if (!c->pc) {
        return false;
    }
    for (int i = 0; i < CHUNKS; i++) {
        c->chunks[i] = qemu_memalign(4096, CHUNK_BYTES);
    }
    return true;
}

/* --fsync: page fds, then the main one (with its last bytes) on the disk. */
static bool make_durable(SaveCtx *c, GError **errp)
{
    if (!page_channels_fsync(c->pc, errp)) {
        return false;
    }
    for (unsigned i = 0; i < c->nchan; i++) {
        if (fdatasync(c->chan_fds[i]) < 0) {
            error_setg_errno(errp, errno, "Unable to sync '%s' to disk", c->path);
            return false;
        }
    }
    if (!qemu_fflush(c->out)) {
        return qemu_file_propagate_error(c->out, errp);
    }
    return tool_sync_output(c->out_ioc, c->path, errp);
}

/* What --listen accepted: the main connection's and the multifd channels. */
typedef struct ListenInput {
    IOChannel *main;
    IOChannel **chans;         /* nchan, or NULL without multifd */
    unsigned nchan;
    const MultiFDMethod *method;
} ListenInput;

/* A channel failed: stop the main stream, which may wait for bytes that never come. */
static void listen_channel_failed(void *opaque)
{
    io_channel_shutdown(((ListenInput *)opaque)->main, NULL);
}

static bool start_multifd(SaveCtx *c, ListenInput *li, GError **errp)
{
    c->nchan = li->nchan;
    c->chan_fds = g_new(int, li->nchan);
    for (unsigned i = 0; i < li->nchan; i++) {
        c->chan_fds[i] = -1;
    }
    for (unsigned i = 0; i < li->nchan; i++) {
        c->chan_fds[i] = qemu_open(c->path, O_WRONLY | (c->o->direct_io ? O_DIRECT : 0), 0,
                                   errp);
        if (c->chan_fds[i] < 0) {
            return false;
        }
    }
    MultiFDRecvConfig rc = {
        .channels = li->nchan, .method = li->method,
        .pages = s_multifd_pages, .pages_opaque = c,
        .on_error = listen_channel_failed, .error_opaque = li,
    };
    c->mr = multifd_recv_new(&rc, li->chans, errp);
    return c->mr != NULL;
}

static void stop_multifd(SaveCtx *c)
{
    if (c->mr) {
        blocks_complete(c);        /* a thread waiting for the block list gives up */
        multifd_recv_free(c->mr);
        c->mr = NULL;
    }
    for (unsigned i = 0; c->chan_fds && i < c->nchan; i++) {
        if (c->chan_fds[i] >= 0) {
            qemu_close(c->chan_fds[i]);
        }
    }
    g_clear_pointer(&c->chan_fds, g_free);
}

static bool stream_to_mapped(QEMUFile *in, const char *in_name, ListenInput *li,
                             const char *path, uint64_t offset, bool locked,
                             const PageIoOptions *o, GError **errp)
{
    SaveCtx c = { .o = o, .path = g_strdup(path), .offset = offset, .locked = locked,
                  .cur_block = -1 };
    c.blocks = g_ptr_array_new_with_free_func(out_block_free);
    c.progress = progress_new(o->name ? o->name : "mapram save", o->progress);
    qemu_mutex_init(&c.lock);
    qemu_cond_init(&c.blocks_known);
    bool ok = open_output(&c, errp) && (!li || !li->nchan || start_multifd(&c, li, errp));
    if (ok) {
        GError *err = NULL;
        ok = savevm_walk_stream(in, &save_visitor, &c, true, &err);
        /* a channel's failure is the cause; the main stream's is its echo */
        if (!ok && c.mr && multifd_recv_error(c.mr, errp)) {
            g_clear_error(&err);
        } else if (err) {
            /* the side that failed: the output file, or the input when it has a name */
            if (c.out_failed || qemu_file_has_error(c.out)) {
                tool_prefix_file(&err, path);
            } else if (in_name) {
                tool_prefix_file(&err, in_name);
            }
            g_propagate_error(errp, err);
        }
    }
    if (ok && c.csum && c.saw_vmdesc) {
        /*
         * After the vmdesc, where QEMU stops reading.  A stream without a
         * vmdesc gets none: a loader expects a vmdesc or the end there.
         */
        mrc_table_put(c.out, c.csum);
    }
    ok = ok && (!o->fsync || make_durable(&c, errp));
    stop_multifd(&c);
    if (c.pc) {
        if (!ok) {
            page_channels_abort(c.pc);
        }
        page_channels_free(c.pc);
    }
    if (c.out) {
        ok = qemu_fclose(c.out, ok ? errp : NULL) && ok;
    }
    if (c.out_ioc) {
        /*
         * Leave nothing that looks like a valid file.  Best effort, since
         * the error is already being reported; a failing close comes too
         * late for it.
         */
        ok = tool_close_output(c.out_ioc, c.path, c.created, offset, ok, errp);
        io_channel_unref(c.out_ioc);
    }
    for (int i = 0; i < CHUNKS; i++) {
        qemu_vfree(c.chunks[i]);
    }
    progress_finish(c.progress, ok);
    ram_decoder_clear(&c.dec);
    ram_encoder_clear(&c.enc);
    g_ptr_array_unref(c.blocks);
    mrc_table_free(c.csum);
    qemu_cond_destroy(&c.blocks_known);
    qemu_mutex_destroy(&c.lock);
    g_free(c.path);
    return ok;
}

bool mapram_stream_to_mapped(QEMUFile *in, const char *in_name, const char *path,
                             uint64_t offset, bool locked, const PageIoOptions *o, GError **errp)
{
    return stream_to_mapped(in, in_name, NULL, path, offset, locked, o, errp);
}

/*
 * --listen URI: one connection (no multifd), or the main one and
 * channels multifd ones, told apart as a QEMU destination does.
 */
static bool listen_and_save(const char *uri, unsigned channels, const char *compression,
                            const char *path, uint64_t offset, const PageIoOptions *o,
                            GError **errp)
{
    MigAddr addr;
    ListenInput li = { .nchan = channels };
    g_autoptr(IOListener) listener = NULL;
    bool ok = false;

    if (!migration_parse_uri(uri, &addr, errp)) {
        goto out;
    }
    if (addr.kind != TRANSPORT_SOCKET) {
        error_setg(errp, "--listen expects a tcp: or unix: URI, not '%s'", uri);
        goto out;
    }
    if (strcmp(compression, "none") != 0) {
        li.method = multifd_method_find(compression);
        if (!li.method) {
            error_setg(errp, "--compression expects none, zlib or zstd, not '%s'", compression);
            goto out;
        }
    }
    listener = !strcmp(addr.sock_type, "unix")
               ? io_listener_open_unix(addr.path, errp)
               : io_listener_open_tcp(addr.host, addr.port, addr.family, addr.v6only,
                                                      addr.has_to ? addr.to : -1, errp);
    if (!listener) {
        goto out;
    }
    if (!strcmp(addr.sock_type, "unix")) {
        tool_arm_socket(addr.path);
    }
    if (o->progress) {
        /* the line to wait for, and the port a "tcp:HOST:0" listener got */
        for (unsigned i = io_listener_count(listener); i-- > 0;) {
            g_autofree char *where = io_listener_describe(listener, i);
            fprintf(stderr, "mapram save: listening on %s\n", where);
        }
        fflush(stderr);
    }
    if (li.nchan) {
        li.chans = g_new0(IOChannel *, li.nchan);
        li.main = multifd_accept_all(listener, li.nchan, li.chans, NULL, NULL, errp);
    } else {
        li.main = io_listener_accept(listener, errp);
    }
    if (li.main) {
        /* a source with more channels than --channels: its first extra one says so */
        MultiFDWatch *w = li.nchan ? multifd_watch_start(listener, li.nchan, li.main) : NULL;
        QEMUFile *in = qemu_file_new_input(li.main, 0);
        GError *err = NULL, *werr = NULL;
        ok = stream_to_mapped(in, NULL, &li, path, offset, false, o, &err);
        qemu_fclose(in, NULL);
        if (multifd_watch_end(w, &werr)) {
            ok = false;
        }
        if (!ok && werr) {
            g_propagate_error(errp, werr);
            g_clear_error(&err);
        } else if (err) {
            g_propagate_error(errp, err);
        }
    }
    g_clear_pointer(&listener, io_listener_free);
    if (!strcmp(addr.sock_type, "unix")) {
        tool_disarm_socket();
        unlink(addr.path);
    }
out:
    for (unsigned i = 0; li.chans && i < li.nchan; i++) {
        if (li.chans[i]) {
            io_channel_unref(li.chans[i]);
        }
    }
    g_free(li.chans);
    if (li.main) {
        io_channel_unref(li.main);
    }
    mig_addr_clear(&addr);
    return ok;
}

/* save's own options (entries), taken out of argv before the common ones are parsed. */
static bool parse_listen_options(int *argc, char ***argv, GOptionEntry *entries,
                                 GError **errp)
{
    g_autoptr(GOptionContext) ctx = g_option_context_new(NULL);
    g_option_context_set_ignore_unknown_options(ctx, TRUE);
    g_option_context_set_help_enabled(ctx, FALSE);
    g_option_context_add_main_entries(ctx, entries, NULL);
    return g_option_context_parse(ctx, argc, argv, errp);
}

int cmd_save(int argc, char **argv)
{
    PageIoOptions o;
    g_autofree char *path = NULL;
    g_autofree char *listen = NULL;
    g_autofree char *compression = NULL;
    gboolean multifd = FALSE;
    uint64_t offset;
    GError *err = NULL;
    GOptionEntry entries[] = {
        { "listen", 'l', 0, G_OPTION_ARG_STRING, &listen,
          "receive a migration on tcp:HOST:PORT or unix:PATH instead of stdin", "URI" },
        { "multifd", 0, 0, G_OPTION_ARG_NONE, &multifd,
          "with --listen: the source has multifd on, with --channels channels", NULL },
        { "compression", 0, 0, G_OPTION_ARG_STRING, &compression,
          "with --listen: multifd-compression of the source (none, zlib, zstd)", "METHOD" },
        { NULL }
    };
    tool_install_signal_cleanup();
    if (!parse_listen_options(&argc, &argv, entries, &err)) {
        fprintf(stderr, "mapram save: %s\n", err->message);
        g_error_free(err);
        return 2;
    }
    if (!listen && (multifd || compression)) {
        fprintf(stderr, "mapram save: --multifd and --compression go with --listen\n");
        return 2;
    }
    if (compression && strcmp(compression, "none") != 0 && !multifd_method_find(compression)) {
        fprintf(stderr, "mapram save: --compression expects none, zlib or zstd, not '%s'\n",
                compression);
        return 2;
    }
    if (listen) {
        /* multifd as the source has it: --multifd, --compression or --channels */
        for (int i = 1; i < argc; i++) {
            multifd |= g_str_has_prefix(argv[i], "--channels") || !strcmp(argv[i], "-c");
        }
        if (!tool_parse_file_command("save", argc, argv, "FILE[,offset=N]", true, entries, &o,
                                     &path, &offset)) {
            return 2;
        }
        if (!listen_and_save(listen, multifd || compression ? o.channels : 0,
                             compression ? compression : "none", path, offset, &o, &err)) {
            fprintf(stderr, "mapram save: %s\n", err->message);
            g_error_free(err);
            return 1;
        }
        return 0;
    }
    if (!tool_parse_file_command("save", argc, argv,
                                 "FILE[,offset=N] - write the QEMU migration stream on stdin "
                                 "as a mapped-ram file (or, with --listen, a migration "
                                 "received on a socket)",
                                 true, entries, &o, &path, &offset)) {
        return 2;
    }
    struct stat in_st;
    if (fstat(STDIN_FILENO, &in_st) == 0 && S_ISREG(in_st.st_mode) &&
        tool_is_same_file(&in_st, path)) {
        fprintf(stderr, "mapram save: standard input is %s, the file to write\n", path);
        return 2;
    }
    /* QEMU writes through a 64 KiB pipe by default: a larger one saves wakeups */
    fcntl(STDIN_FILENO, F_SETPIPE_SZ, 1024 * 1024);
    g_autoptr(IOChannel) in_ioc = io_channel_file_new_dup(STDIN_FILENO, "stdin", &err);
    QEMUFile *in = in_ioc ? qemu_file_new_input(in_ioc, 0) : NULL;
    bool ok = in && mapram_stream_to_mapped(in, NULL, path, offset, false, &o, &err);
    if (in) {
        qemu_fclose(in, NULL);
    }
    if (!ok) {
        fprintf(stderr, "mapram save: %s\n", err->message);
        g_error_free(err);
        return 1;
    }
    return 0;
}
