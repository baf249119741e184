/*
 * mapram serve: restore a mapped-ram file into a waiting QEMU at once, as
 * the source of a postcopy migration (postcopy reference §2.9).
 *
 * The destination was started with -incoming defer, postcopy-ram on and
 * migrate-incoming unix:PATH (or tcp:).  We connect and send what a QEMU
 * source sends: header and configuration, OPEN_RETURN_PATH, ADVISE, the
 * "ram" START with the block list, then PACKAGED { LISTEN, the device
 * sections, PING, RUN }: the guest runs as soon as its devices are loaded,
 * with none of its memory there yet.  Then one "ram" PART carries every
 * page; the pages the guest faults on are asked for on the return path
 * and jump the queue; END and EOF close the stream, and the destination's
 * SHUT ends the migration.
 *
 * Threads: the main thread sends everything; "serve/rp" reads the return
 * path and queues page requests for it.  The main thread serves the queue
 * between every few background pages, so a request waits for at most
 * what is already in the socket.
 *
 * Every page is sent exactly once (the destination places each with
 * UFFDIO_COPY, which fails on a page already there): `sent` bits,
 * touched by the main thread only.  A request is served with its whole
 * 64-page checksum run (what a fault is read and checked by anyway, and
 * the guest's next faults are likely there); clear pages go as ZERO
 * records, so the guest gets exactly the saved memory.
 */
#include "mapram-tool.h"
#include "chunk-ring.h"
#include "libvirt-image.h"
#include "../migration/mapped-ram-csum.h"
#include "../migration/mapped-ram-share.h"
#include "../migration/migration-internal.h"
#include "../migration/page-channels.h"
#include "../migration/ram-codec.h"
#include "../migration/savevm.h"
#include "util/bitmap.h"
#include "util/cutils.h"
#include "util/error.h"
#include "util/osdep.h"
#include "util/thread.h"
#include <fcntl.h>
#include <inttypes.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* The background push's read-ahead (chunk-ring.h): 16 MiB. */
#define RING_CHUNKS  8
/* Background pages put between two looks at the request queue. */
#define POLL_PAGES   16
/* The PING inside the package: its PONG says the devices are loaded. */
#define SERVE_PING   0x42

typedef struct SBlock {
    char *idstr;
    uint64_t npages;
    MappedRamHeader hdr;
    unsigned long *bmap;        /* the file's: pages with data */
    unsigned long *sent;        /* the main thread's: pages on the wire */
    const MrcBlock *sums;       /* in ServeCtx.csum, or NULL: not checked */
} SBlock;

typedef struct Request {
    unsigned block;
    uint64_t first, n;          /* pages */
} Request;

typedef struct ServeStats {
    uint64_t pages_requested;   /* sent because of a request (with their runs) */
    uint64_t pages_pushed;      /* sent by the background push */
    uint64_t zero_pages;        /* of both, as ZERO records */
    uint64_t requests;          /* REQ_PAGES* received */
    gint64 start_us, run_us, pong_us, end_us;
    uint64_t bytes;             /* on the main connection */
} ServeStats;

typedef struct ServeCtx {
    /* Immutable once connected. */
    const PageIoOptions *o;
    const char *path;           /* for messages */
    uint64_t max_bandwidth;     /* bytes/s of the background push; 0 = no limit */
    GPtrArray *blocks;          /* SBlock * */
    uint64_t total;
    SectionInfo ram_si;         /* the file's ram START */
    bool saw_ram;
    IOChannel *head_ioc;        /* header + configuration, as sent */
    IOChannel *dev_ioc;         /* the device sections, as sent inside the package */
    QEMUFile *head, *devs;
    RamDecoder dec;
    MrcLoader csum;             /* the file's checksum table, unless --no-checksums */

    /* The return-path thread -> the main thread, under lock. */
    QemuMutex lock;
    QemuCond cond;
    GQueue requests;            /* Request * */
    bool rp_done;               /* the thread ended: SHUT, an error, or the end */
    bool got_shut;
    uint32_t shut_value;
    GError *rp_err;
    int pending;                /* atomic: requests queued (a cheap look) */

    /* The main thread's. */
    IOChannel *ioc;
    QEMUFile *out;
    QEMUFile *rp;               /* the return-path thread's, on a dup of the socket */
    RamEncoder enc;
    PageChannels *pc;
    int req_fd;                 /* requests are read here, not behind the queue */
    ChunkRing *ring;            /* the push's; freed after pc */
    uint8_t *req_buf;           /* MRC_RUN_PAGES pages */
    uint64_t req_hashes[MRC_RUN_PAGES];
    uint64_t pushed_bytes;      /* for --max-bandwidth */
    Progress *progress;
    ServeStats st;

    /* --timeout: the stall watch (see stall_thread) */
    unsigned timeout_s;         /* immutable */
    const char *uri;            /* immutable; for messages */
    gint64 rp_seen_us;          /* atomic: the return path's last message */
    int eof_sent;               /* atomic: the whole stream went out */
    int watch_stop;             /* atomic */
    GError *stall_err;          /* lock: why the watch shut the connection */
} ServeCtx;

static void sblock_free(gpointer p)
{
    SBlock *b = p;
    g_free(b->idstr);
    g_free(b->bmap);
    g_free(b->sent);
    g_free(b);
}

/* ---- reading the file ---- */

static bool s_mem_size(void *opaque, uint64_t total, GError **errp)
{
    ((ServeCtx *)opaque)->total = total;
    return true;
}

static bool s_block(void *opaque, QEMUFile *f, unsigned idx, const char *idstr,
                    uint64_t used_length, const MappedRamHeader *hdr, GError **errp)
{
    ServeCtx *c = opaque;
    SBlock *b = g_new0(SBlock, 1);
    b->idstr = g_strdup(idstr);
    b->npages = used_length / RAM_PAGE_SIZE;
    b->hdr = *hdr;
    b->sent = bitmap_new(b->npages);
    b->bmap = mapped_ram_read_bitmap(qemu_file_get_ioc(f), idstr, hdr, b->npages, errp);
    g_ptr_array_add(c->blocks, b);
    if (!b->bmap) {
        return false;
    }
    return mrc_loader_block(&c->csum, qemu_file_get_ioc(f), idstr, used_length, hdr, &b->sums,
                            errp);
}

static const RamSink serve_sink = { .mem_size = s_mem_size, .block = s_block };

static bool s_configuration(void *opaque, QEMUFile *f, const StreamConfig *cfg, GError **errp)
{
    ServeCtx *c = opaque;
    ram_decoder_init(&c->dec, true);
    return tool_put_stream_head(c->head, cfg, c->path, errp);
}

static bool s_section(void *opaque, QEMUFile *f, const SectionInfo *si, GError **errp)
{
    ServeCtx *c = opaque;
    if (!strcmp(si->idstr, "ram") && si->type != QEMU_VM_SECTION_FULL) {
        if (si->type == QEMU_VM_SECTION_START) {
            c->ram_si = *si;
            c->saw_ram = true;
        }
        return ram_decode_section(&c->dec, f, si->type, &serve_sink, c, errp) &&
               (si->type != QEMU_VM_SECTION_START ||
                mrc_loader_blocks_end(&c->csum, c->dec.block_names->len, errp));
    }
    if (si->type != QEMU_VM_SECTION_FULL) {
        error_setg(errp, "section '%s' is iterable: only RAM can be served in postcopy",
                   si->idstr);
        return false;
    }
    return savevm_copy_unknown_section(f, c->devs, si, errp);
}

/* Commands (SWITCHOVER_START) carry no state: a postcopy source sends its own. */
static bool s_command(void *opaque, QEMUFile *f, uint16_t cmd, const uint8_t *data,
                      uint16_t len, GError **errp)
{
    return true;
}

/* A table its trailer did not lead to: refused before anything is served. */
static bool s_eof(void *opaque, QEMUFile *f, GError **errp)
{
    ServeCtx *c = opaque;
    return mrc_loader_eof(&c->csum, qemu_file_get_ioc(f), qemu_file_tell(f), errp);
}

static const StreamVisitor serve_visitor = {
    .configuration = s_configuration,
    .section = s_section,
    .command = s_command,
    .eof = s_eof,
};

static bool read_file(ServeCtx *c, uint64_t offset, GError **errp)
{
    QEMUFile *in = tool_open_input(c->path, offset, errp);
    if (!in) {
        return false;
    }
    /* the vmdesc too, though unused: a file cut inside it is refused as load refuses it */
    bool ok = savevm_walk_stream(in, &serve_visitor, c, true, errp);
    qemu_fclose(in, NULL);
    if (!ok) {
        tool_prefix_file(errp, c->path);
    }
    if (ok && !c->saw_ram) {
        error_setg(errp, "'%s' has no RAM section", c->path);
        return false;
    }
    return ok && qemu_file_propagate_error(c->head, errp) &&
           qemu_file_propagate_error(c->devs, errp);
}

/* ---- the return path ---- */

static bool rp_request(ServeCtx *c, const RpMessage *m, GError **errp)
{
    for (guint i = 0; i < c->blocks->len; i++) {
        SBlock *b = g_ptr_array_index(c->blocks, i);
        if (strcmp(b->idstr, m->idstr)) {
            continue;
        }
        uint64_t blen = b->npages * RAM_PAGE_SIZE;
        if (m->len == 0 || m->start >= blen || m->len > blen - m->start) {
            error_setg(errp, "MIG_RP_MSG_REQ_PAGES request overrun, start=0x%" PRIx64
                       " len=0x%x blocklen=0x%" PRIx64, m->start, m->len, blen);
            return false;
        }
        Request *r = g_new(Request, 1);
        r->block = i;
        r->first = m->start / RAM_PAGE_SIZE;
        r->n = (m->start + m->len + RAM_PAGE_SIZE - 1) / RAM_PAGE_SIZE - r->first;
        qemu_mutex_lock(&c->lock);
        g_queue_push_tail(&c->requests, r);
        c->st.requests++;
        g_atomic_int_inc(&c->pending);
        qemu_cond_broadcast(&c->cond);
        qemu_mutex_unlock(&c->lock);
        return true;
    }
    error_setg(errp, "MIG_RP_MSG_REQ_PAGES has no block '%s'", m->idstr);
    return false;
}

static gpointer rp_thread(gpointer opaque)
{
    ServeCtx *c = opaque;
    RpCodec codec = { { 0 } };
    GError *err = NULL;
    RpMessage m;
    bool shut = false;

    while (!err && !shut) {
        bool got = savevm_get_rp_message(&codec, c->rp, &m, &err);
        __atomic_store_n(&c->rp_seen_us, g_get_monotonic_time(), __ATOMIC_RELEASE);
        if (!got) {
            g_prefix_error(&err, "return path: ");
        } else if (m.type == 0) {
            error_setg(&err, "the destination closed the connection before the end of "
                       "the migration");
        } else if (m.type == MIG_RP_MSG_SHUT) {
            shut = true;
        } else if (m.type == MIG_RP_MSG_PONG && m.value == SERVE_PING) {
            qemu_mutex_lock(&c->lock);
            c->st.pong_us = g_get_monotonic_time();
            qemu_mutex_unlock(&c->lock);
        } else if (m.type == MIG_RP_MSG_REQ_PAGES || m.type == MIG_RP_MSG_REQ_PAGES_ID) {
            if (!rp_request(c, &m, &err)) {
                g_prefix_error(&err, "return path: ");
            }
        }
    }
    if (err) {
        /* the main thread may be blocked writing: stop it */
        io_channel_shutdown(c->ioc, NULL);
    }
    qemu_mutex_lock(&c->lock);
    c->rp_done = true;
    c->got_shut = shut;
    c->shut_value = m.value;
    c->rp_err = err;
    g_atomic_int_inc(&c->pending);   /* wake a look at the queue */
    qemu_cond_broadcast(&c->cond);
    qemu_mutex_unlock(&c->lock);
    return NULL;
}

/* ---- sending pages ---- */

static void put_page(ServeCtx *c, unsigned block, uint64_t p, const uint8_t *data, bool requested)
{
    SBlock *b = g_ptr_array_index(c->blocks, block);
    set_bit(p, b->sent);
    if (data) {
        ram_encode_page(&c->enc, c->out, block, p * RAM_PAGE_SIZE, data);
    } else {
        ram_encode_zero_page(&c->enc, c->out, block, p * RAM_PAGE_SIZE);
        c->st.zero_pages++;
    }
    if (requested) {
        c->st.pages_requested++;
    } else {
        c->st.pages_pushed++;
    }
    progress_update(c->progress, (c->st.pages_requested + c->st.pages_pushed) * RAM_PAGE_SIZE);
}

static bool pread_pages(ServeCtx *c, void *buf, size_t len, uint64_t off, GError **errp)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = pread(c->req_fd, (uint8_t *)buf + done, len - done, off + done);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            error_setg_errno(errp, n < 0 ? errno : EIO, "Unable to read '%s' at offset %" PRIu64,
                             c->path, off + done);
            return false;
        }
        done += n;
    }
    return true;
}

/* The checksum run holding page p of block, read (and checked) now, its unsent pages sent. */
static bool serve_run(ServeCtx *c, unsigned block, uint64_t p, GError **errp)
{
    SBlock *b = g_ptr_array_index(c->blocks, block);
    uint64_t first = p - p % MRC_RUN_PAGES;
    uint64_t n = MIN(MRC_RUN_PAGES, b->npages - first);
    MappedRamRuns it;
    MappedRamRun r;

    mapped_ram_runs_init(&it, b->bmap, first, first + n, 0, MRC_RUN_PAGES);
    while (mapped_ram_runs_next(&it, &r)) {
        uint8_t *dst = c->req_buf + (r.start - first) * RAM_PAGE_SIZE;
        if (!pread_pages(c, dst, (r.end - r.start) * RAM_PAGE_SIZE,
                         b->hdr.pages_offset + r.start * RAM_PAGE_SIZE, errp)) {
            return false;
        }
        if (b->sums) {
            mrc_hash_pages(dst, r.end - r.start, c->req_hashes + (r.start - first));
        }
    }
    if (b->sums && !mrc_check_runs(b->sums, b->bmap, c->req_hashes, first, n, errp)) {
        return false;
    }
    for (uint64_t i = first; i < first + n; i++) {
        if (!test_bit(i, b->sent)) {
            put_page(c, block, i, test_bit(i, b->bmap) ?
                     c->req_buf + (i - first) * RAM_PAGE_SIZE : NULL, true);
        }
    }
    /* req_buf is reused by the next run: its pages go out now */
    return qemu_fflush(c->out) || qemu_file_propagate_error(c->out, errp);
}

static bool serve_request(ServeCtx *c, const Request *q, GError **errp)
{
    SBlock *b = g_ptr_array_index(c->blocks, q->block);
    for (uint64_t p = q->first; p < q->first + q->n; p++) {
        if (!test_bit(p, b->sent) && !serve_run(c, q->block, p, errp)) {
            return false;
        }
    }
    return true;
}

/* Serve what the return path has queued; an error of the return path ends the serve. */
static bool serve_requests(ServeCtx *c, GError **errp)
{
    if (!g_atomic_int_get(&c->pending)) {
        return true;
    }
    for (;;) {
        qemu_mutex_lock(&c->lock);
        Request *q = g_queue_pop_head(&c->requests);
        bool failed = c->rp_done && c->rp_err;
        if (q || failed) {
            (void)g_atomic_int_dec_and_test(&c->pending);
        }
        qemu_mutex_unlock(&c->lock);
        if (failed) {
            error_setg(errp, "%s", c->rp_err->message);
            g_free(q);
            return false;
        }
        if (!q) {
            return true;
        }
        bool ok = serve_request(c, q, errp);
        g_free(q);
        if (!ok) {
            return false;
        }
    }
}

/* --max-bandwidth: wait (serving requests) until the push is back under the limit. */
static bool throttle(ServeCtx *c, GError **errp)
{
    if (!c->max_bandwidth) {
        return true;
    }
    gint64 due = c->st.start_us + (gint64)(c->pushed_bytes * 1e6 / c->max_bandwidth);
    while (g_get_monotonic_time() < due) {
        qemu_mutex_lock(&c->lock);
        if (!g_atomic_int_get(&c->pending)) {
            qemu_cond_wait_until(&c->cond, &c->lock, MIN(due, g_get_monotonic_time() + 10000));
        }
        qemu_mutex_unlock(&c->lock);
        if (!serve_requests(c, errp)) {
            return false;
        }
    }
    return true;
}

/* The unsent pages of chunk k (read into buf), with looks at the queue between them. */
static bool push_chunk(ServeCtx *c, const Chunk *k, const uint8_t *buf, GError **errp)
{
    SBlock *b = g_ptr_array_index(c->blocks, k->block);
    for (uint64_t p = k->first; p < k->first + k->n; p++) {
        if ((p - k->first) % POLL_PAGES == 0 && !serve_requests(c, errp)) {
            return false;
        }
        if (!test_bit(p, b->sent)) {
            put_page(c, k->block, p, test_bit(p, b->bmap) ?
                     buf + (p - k->first) * RAM_PAGE_SIZE : NULL, false);
        }
    }
    c->pushed_bytes += k->n * RAM_PAGE_SIZE;
    /* the chunk's buffer is read again after this */
    return qemu_fflush(c->out) || qemu_file_propagate_error(c->out, errp);
}

static bool push_all(ServeCtx *c, GError **errp)
{
    if (!chunk_ring_start(c->ring, errp)) {
        return false;
    }
    for (guint i = 0; i < chunk_ring_len(c->ring); i++) {
        const Chunk *k = chunk_ring_chunk(c->ring, i);
        const uint8_t *buf = chunk_ring_wait(c->ring, i, errp);
        if (!buf || !push_chunk(c, k, buf, errp) || !throttle(c, errp) ||
            !chunk_ring_refill(c->ring, i, errp)) {
            return false;
        }
    }
    return serve_requests(c, errp);
}

/* ---- the stream ---- */

static void put_buffered(QEMUFile *out, IOChannel *buf)
{
    size_t len;
    const uint8_t *data = io_channel_buffer_data(buf, &len);
    qemu_put_buffer(out, data, len);
}

/* Everything up to RUN: the guest can start after this. */
static bool send_prologue(ServeCtx *c, GError **errp)
{
    uint32_t sid = c->ram_si.section_id;

    put_buffered(c->out, c->head_ioc);
    savevm_put_open_return_path(c->out);
    savevm_put_postcopy_advise(c->out, RAM_PAGE_SIZE, RAM_PAGE_SIZE);
    savevm_put_section_header(c->out, &c->ram_si);
    ram_encode_mem_size(&c->enc, c->out, c->total);
    for (guint i = 0; i < c->blocks->len; i++) {
        SBlock *b = g_ptr_array_index(c->blocks, i);
        if (!ram_encode_block(&c->enc, c->out, b->idstr, b->npages * RAM_PAGE_SIZE, NULL,
                              errp)) {
            return false;
        }
    }
    ram_encode_eos(c->out);
    savevm_put_section_footer(c->out, sid);
    /* its first page, not sent yet: see savevm_put_postcopy_ram_discard() */
    SBlock *b0 = g_ptr_array_index(c->blocks, 0);
    uint64_t dstart = 0, dlen = RAM_PAGE_SIZE;
    savevm_put_postcopy_ram_discard(c->out, b0->idstr, &dstart, &dlen, 1);

    g_autoptr(IOChannel) pkg_ioc = io_channel_buffer_new(0);
    QEMUFile *pkg = qemu_file_new_output(pkg_ioc, 0);
    savevm_put_postcopy_listen(pkg);
    put_buffered(pkg, c->dev_ioc);
    savevm_put_ping(pkg, SERVE_PING);
    savevm_put_postcopy_run(pkg);
    if (!qemu_fclose(pkg, errp)) {
        return false;
    }
    size_t len;
    const uint8_t *data = io_channel_buffer_data(pkg_ioc, &len);
    savevm_put_packaged(c->out, data, len);
    if (!qemu_fflush(c->out)) {
        return qemu_file_propagate_error(c->out, errp);
    }
    c->st.run_us = g_get_monotonic_time();
    return true;
}

static bool send_all(ServeCtx *c, GError **errp)
{
    uint32_t sid = c->ram_si.section_id;

    if (!send_prologue(c, errp)) {
        return false;
    }
    savevm_put_section_short_header(c->out, QEMU_VM_SECTION_PART, sid);
    if (!push_all(c, errp)) {
        return false;
    }
    ram_encode_eos(c->out);
    savevm_put_section_footer(c->out, sid);
    savevm_put_section_short_header(c->out, QEMU_VM_SECTION_END, sid);
    ram_encode_eos(c->out);
    savevm_put_section_footer(c->out, sid);
    qemu_put_byte(c->out, QEMU_VM_EOF);
    if (!qemu_fflush(c->out)) {
        return qemu_file_propagate_error(c->out, errp);
    }
    __atomic_store_n(&c->eof_sent, 1, __ATOMIC_RELEASE);
    return true;
}

/* After EOF: the destination's SHUT (requests that crossed the last pages are moot). */
static bool wait_shut(ServeCtx *c, GError **errp)
{
    qemu_mutex_lock(&c->lock);
    while (!c->rp_done) {
        qemu_cond_wait(&c->cond, &c->lock);
    }
    qemu_mutex_unlock(&c->lock);
    if (c->rp_err) {
        error_setg(errp, "%s", c->rp_err->message);
        return false;
    }
    if (c->shut_value) {
        error_setg(errp, "the destination ended the migration with an error (SHUT %u)",
                   c->shut_value);
        return false;
    }
    return true;
}

/*
 * Sending failed: when the destination went away, the return path usually
 * knows why, so wait a moment for it.  Not for good: a failure of our own
 * (a read error or a checksum mismatch in the file) leaves a destination
 * that waits for pages and says nothing; the caller then shuts the
 * connection down, which it sees (postcopy-paused).
 */
#define RP_ERROR_WAIT_US (2 * G_USEC_PER_SEC)

static void prefer_rp_error(ServeCtx *c, GError **errp)
{
    gint64 end_us = g_get_monotonic_time() + RP_ERROR_WAIT_US;

    qemu_mutex_lock(&c->lock);
    while (!c->rp_done && qemu_cond_wait_until(&c->cond, &c->lock, end_us)) {
    }
    /* the return path's thread may still run: its error only once it ended */
    g_autofree char *rp_msg = c->rp_done && c->rp_err ? g_strdup(c->rp_err->message) : NULL;
    qemu_mutex_unlock(&c->lock);
    /* the send may have failed for the return path's error itself: say it once */
    if (rp_msg && errp && *errp && strcmp((*errp)->message, rp_msg) != 0) {
        g_prefix_error(errp, "%s (", rp_msg);
        g_autofree char *m = g_strdup_printf("%s)", (*errp)->message);
        g_free((*errp)->message);
        (*errp)->message = g_steal_pointer(&m);
    }
}

/*
 * --timeout: a destination that stops reading (a stopped or wedged QEMU:
 * the push would block for good), or that never sends its SHUT after the
 * last page, is given up on after timeout_s without progress.  Progress
 * is bytes of ours QEMU took off the socket (SIOCOUTQ moved), none
 * waiting while the stream is still going, or a return-path message.  The
 * watch then shuts the connection down, which ends the blocked write or
 * the wait, and its reason is the one reported.
 */
#define STALL_POLL_US (100 * 1000)

static gpointer stall_thread(gpointer opaque)
{
    ServeCtx *c = opaque;
    int fd = io_channel_get_fd(c->ioc);
    gint64 last_move = g_get_monotonic_time();
    gint64 rp_seen = 0;
    int last_q = -1;

    while (!__atomic_load_n(&c->watch_stop, __ATOMIC_ACQUIRE)) {
        qemu_mutex_lock(&c->lock);
        qemu_cond_wait_until(&c->cond, &c->lock, g_get_monotonic_time() + STALL_POLL_US);
        qemu_mutex_unlock(&c->lock);
        int q = 0;
        if (ioctl(fd, SIOCOUTQ, &q) < 0) {
            q = 0;
        }
        bool done = __atomic_load_n(&c->eof_sent, __ATOMIC_ACQUIRE);
        gint64 seen = __atomic_load_n(&c->rp_seen_us, __ATOMIC_ACQUIRE);
        gint64 now = g_get_monotonic_time();
        if (q != last_q || (q == 0 && !done) || seen != rp_seen) {
            last_move = now;
        } else if (now - last_move >= (gint64)c->timeout_s * G_USEC_PER_SEC) {
            GError *err = NULL;
            if (q) {
                error_setg(&err, "QEMU at '%s' read nothing for %u s (--timeout): is it "
                           "stopped?", c->uri, c->timeout_s);
            } else {
                error_setg(&err, "QEMU at '%s' did not end the migration within %u s of the "
                           "end of the stream (--timeout)", c->uri, c->timeout_s);
            }
            qemu_mutex_lock(&c->lock);
            c->stall_err = err;
            qemu_mutex_unlock(&c->lock);
            shutdown(fd, SHUT_RDWR);
            break;
        }
        last_q = q;
        rp_seen = seen;
    }
    return NULL;
}

static bool connect_dest(ServeCtx *c, const char *uri, GError **errp)
{
    MigAddr a;
    off_t start;
    bool ok = migration_parse_uri(uri, &a, errp);
    if (ok && a.kind != TRANSPORT_SOCKET) {
        error_setg(errp, "'%s' is not a unix: or tcp: address", uri);
        ok = false;
    }
    if (ok) {
        c->ioc = transport_open_outgoing(NULL, &a, &start, NULL, errp);
        if (!c->ioc) {
            g_prefix_error(errp, "Unable to connect to '%s': ", uri);
            ok = false;
        }
    }
    mig_addr_clear(&a);
    if (!ok) {
        return false;
    }
    int fd = fcntl(io_channel_get_fd(c->ioc), F_DUPFD_CLOEXEC, 0);
    if (fd < 0) {
        error_setg_errno(errp, errno, "Unable to open the return path of '%s'", uri);
        return false;
    }
    g_autoptr(IOChannel) rp_ioc = io_channel_socket_new_fd(fd, "return path");
    c->rp = qemu_file_new_input(rp_ioc, 0);
    c->out = qemu_file_new_output(c->ioc, 0);
    return true;
}

static bool serve_setup_io(ServeCtx *c, GError **errp)
{
    PageChannelsConfig cfg = {
        .path = c->path, .flags = O_RDONLY, .channels = c->o->channels,
        .direct_io = c->o->direct_io, .queue_depth = c->o->queue_depth,
    };
    c->pc = page_channels_new(&cfg, errp);
    if (!c->pc) {
        return false;
    }
    c->req_fd = qemu_open(c->path, O_RDONLY, 0, errp);
    if (c->req_fd < 0) {
        return false;
    }
    /* no read-through of short holes: that was measured for load's stream only */
    c->ring = chunk_ring_new(c->pc, RING_CHUNKS, 0);
    for (guint i = 0; i < c->blocks->len; i++) {
        SBlock *b = g_ptr_array_index(c->blocks, i);
        chunk_ring_add_block(c->ring, b->bmap, b->npages, b->hdr.pages_offset, b->sums);
    }
    c->req_buf = qemu_memalign(RAM_PAGE_SIZE, MRC_RUN_PAGES * RAM_PAGE_SIZE);
    return true;
}

static void serve_cleanup(ServeCtx *c)
{
    if (c->pc) {
        page_channels_abort(c->pc);
        page_channels_free(c->pc);
    }
    if (c->req_fd >= 0) {
        qemu_close(c->req_fd);
    }
    chunk_ring_free(c->ring);
    qemu_vfree(c->req_buf);
    if (c->out) {
        qemu_fclose(c->out, NULL);
    }
    if (c->rp) {
        qemu_fclose(c->rp, NULL);
    }
    if (c->ioc) {
        io_channel_unref(c->ioc);
    }
    qemu_fclose(c->head, NULL);
    qemu_fclose(c->devs, NULL);
    io_channel_unref(c->head_ioc);
    io_channel_unref(c->dev_ioc);
    g_queue_clear_full(&c->requests, g_free);
    g_clear_error(&c->rp_err);
    g_clear_error(&c->stall_err);
    mrc_loader_clear(&c->csum);
    ram_decoder_clear(&c->dec);
    ram_encoder_clear(&c->enc);
    g_ptr_array_unref(c->blocks);
    qemu_mutex_destroy(&c->lock);
    qemu_cond_destroy(&c->cond);
}

static void print_json(const ServeCtx *c, const char *uri)
{
    const ServeStats *s = &c->st;
    g_autoptr(JsonBuilder) j = json_builder_new();
    json_builder_begin_object(j);
    json_builder_set_member_name(j, "file");
    json_builder_add_string_value(j, c->path);
    json_builder_set_member_name(j, "uri");
    json_builder_add_string_value(j, uri);
    json_builder_set_member_name(j, "ram-bytes");
    json_builder_add_int_value(j, c->total);
    json_builder_set_member_name(j, "bytes-sent");
    json_builder_add_int_value(j, s->bytes);
    json_builder_set_member_name(j, "pages-requested");
    json_builder_add_int_value(j, s->pages_requested);
    json_builder_set_member_name(j, "pages-pushed");
    json_builder_add_int_value(j, s->pages_pushed);
    json_builder_set_member_name(j, "zero-pages");
    json_builder_add_int_value(j, s->zero_pages);
    json_builder_set_member_name(j, "requests");
    json_builder_add_int_value(j, s->requests);
    json_builder_set_member_name(j, "run-sent-ms");
    json_builder_add_int_value(j, (s->run_us - s->start_us) / 1000);
    json_builder_set_member_name(j, "devices-loaded-ms");
    json_builder_add_int_value(j, s->pong_us ? (s->pong_us - s->start_us) / 1000 : -1);
    json_builder_set_member_name(j, "total-ms");
    json_builder_add_int_value(j, (s->end_us - s->start_us) / 1000);
    json_builder_end_object(j);
    g_autoptr(JsonGenerator) gen = json_generator_new();
    g_autoptr(JsonNode) root = json_builder_get_root(j);
    json_generator_set_root(gen, root);
    g_autofree char *text = json_generator_to_data(gen, NULL);
    printf("%s\n", text);
}

/*
 * A shared flock() on the file for the whole run (*lock_fd, -1 where none
 * can be taken): QEMU's guest takes its missing pages from it, so no
 * mapram save may write it meanwhile.
 */
static bool lock_file(const char *path, int *lock_fd, GError **errp)
{
    int fd = qemu_open(path, O_RDONLY, 0, errp);

    if (fd < 0) {
        return false;
    }
    bool ok = mapped_ram_lock_reader(fd, "serve the migration file", lock_fd, errp);
    qemu_close(fd);
    return ok;
}

static bool serve(const char *path, uint64_t offset, const char *uri, const PageIoOptions *o,
                  uint64_t max_bandwidth, unsigned timeout_s, bool json, GError **errp)
{
    int lock_fd;

    if (!lock_file(path, &lock_fd, errp)) {
        return false;
    }
    ServeCtx c = { .o = o, .path = path, .max_bandwidth = max_bandwidth, .req_fd = -1,
                   .csum.enabled = o->checksums, .timeout_s = timeout_s, .uri = uri };
    c.st.start_us = g_get_monotonic_time();
    c.blocks = g_ptr_array_new_with_free_func(sblock_free);
    c.head_ioc = io_channel_buffer_new(0);
    c.dev_ioc = io_channel_buffer_new(0);
    c.head = qemu_file_new_output(c.head_ioc, 0);
    c.devs = qemu_file_new_output(c.dev_ioc, 0);
    qemu_mutex_init(&c.lock);
    qemu_cond_init(&c.cond);
    g_queue_init(&c.requests);
    ram_encoder_init(&c.enc);

    bool ok = read_file(&c, offset, errp) && qemu_fflush(c.head) && qemu_fflush(c.devs) &&
              serve_setup_io(&c, errp) && connect_dest(&c, uri, errp);
    if (!ok) {
        serve_cleanup(&c);
        if (lock_fd >= 0) {
            close(lock_fd);
        }
        return false;
    }
    c.progress = progress_new("mapram serve", o->progress && !json);
    progress_set_total(c.progress, c.total);
    GThread *t = g_thread_new("serve/rp", rp_thread, &c);
    GThread *watch = g_thread_new("serve/stall", stall_thread, &c);
    ok = send_all(&c, errp);
    if (!ok) {
        prefer_rp_error(&c, errp);
    } else {
        ok = wait_shut(&c, errp);
    }
    if (!ok) {
        io_channel_shutdown(c.ioc, NULL);
    }
    g_thread_join(t);
    __atomic_store_n(&c.watch_stop, 1, __ATOMIC_RELEASE);
    g_thread_join(watch);
    if (!ok && c.stall_err && errp) {
        /* the cause: what the writer or the return path saw was its shutdown */
        g_clear_error(errp);
        g_propagate_error(errp, g_steal_pointer(&c.stall_err));
    }
    c.st.end_us = g_get_monotonic_time();
    c.st.bytes = qemu_file_transferred(c.out);
    progress_finish(c.progress, ok);
    if (ok && json) {
        print_json(&c, uri);
    }
    serve_cleanup(&c);
    if (lock_fd >= 0) {
        close(lock_fd);
    }
    return ok;
}

/* serve's own options, taken out of argv before the common ones are parsed. */
static bool parse_serve_options(int *argc, char ***argv, GOptionEntry *entries,
                                GError **errp)
{
    g_autoptr(GOptionContext) ctx = g_option_context_new(NULL);
    g_option_context_set_ignore_unknown_options(ctx, TRUE);
    g_option_context_set_help_enabled(ctx, FALSE);
    g_option_context_add_main_entries(ctx, entries, NULL);
    return g_option_context_parse(ctx, argc, argv, errp);
}

/* A libvirt image: its mapped-ram data is served from the data offset; anything else is refused. */
static bool serve_offset(const char *path, uint64_t *offset, GError **errp)
{
    g_autoptr(LibvirtImage) img = NULL;
    if (*offset != 0) {
        return true;            /* an offset names where the mapped-ram file starts */
    }
    if (!libvirt_image_open(path, &img, errp)) {
        return false;
    }
    if (!img) {
        return true;
    }
    if (img->partial) {
        error_setg(errp, "%s", LIBVIRT_PARTIAL_PROBLEM);
        return false;
    }
    bool mapped = false;
    if (img->format == LIBVIRT_FORMAT_SPARSE ||
        (img->format == LIBVIRT_FORMAT_RAW &&
         mapram_file_is_mapped(path, img->data_offset, &mapped, NULL) && mapped)) {
        *offset = img->data_offset;
        return true;
    }
    const char *name = libvirt_format_name(img->format);
    error_setg(errp, "a libvirt save image of a %s%s stream, not mapped-ram: only a "
               "mapped-ram image can be served ('mapram convert' writes one)",
               name ? name : "unknown", img->format == LIBVIRT_FORMAT_RAW ? "" : "-compressed");
    return false;
}

int cmd_serve(int argc, char **argv)
{
    PageIoOptions o = { .channels = 1, .queue_depth = 256, .progress = true };
    gboolean json = FALSE;
    gint timeout = 60;
    g_autofree char *bw = NULL;
    g_autofree char *path = NULL;
    uint64_t offset = 0, max_bandwidth = 0;
    GError *err = NULL;
    GOptionEntry entries[] = {
        { "json", 0, 0, G_OPTION_ARG_NONE, &json,
          "a JSON summary on stdout at the end (no progress)", NULL },
        { "max-bandwidth", 0, 0, G_OPTION_ARG_STRING, &bw,
          "limit the background push to SIZE bytes/s (requested pages are not limited)",
          "SIZE" },
        { "timeout", 0, 0, G_OPTION_ARG_INT, &timeout,
          "fail when QEMU reads nothing, or does not end the migration after the last page, "
          "for this long (default 60)", "SECONDS" },
        { NULL }
    };

    if (!parse_serve_options(&argc, &argv, entries, &err) ||
        !tool_parse_io_options(&argc, &argv,
                               "FILE[,offset=N] URI - restore a mapped-ram file into a QEMU "
                               "waiting for a postcopy migration on URI (unix:PATH, "
                               "tcp:HOST:PORT)", false, entries, &o, &err)) {
        fprintf(stderr, "mapram serve: %s\n", err->message);
        g_error_free(err);
        return 2;
    }
    if (argc != 3) {
        fprintf(stderr, "mapram serve: expected FILE[,offset=N] and URI\n");
        return 2;
    }
    if (timeout < 1) {
        fprintf(stderr, "mapram serve: --timeout expects a number of seconds above 0\n");
        return 2;
    }
    if (bw && (qemu_strtosz(bw, NULL, &max_bandwidth) < 0 || max_bandwidth == 0)) {
        fprintf(stderr, "mapram serve: --max-bandwidth expects a size in bytes/s, got '%s'\n",
                bw);
        return 2;
    }
    if (!tool_parse_file_arg(argv[1], &path, &offset, &err) ||
        !serve_offset(path, &offset, &err)) {
        tool_file_error("serve", argv[1], err->message);
        g_error_free(err);
        return 1;
    }
    if (!serve(path, offset, argv[2], &o, max_bandwidth, timeout, json, &err)) {
        fprintf(stderr, "mapram serve: %s\n", err->message);
        g_error_free(err);
        return 1;
    }
    return 0;
}
