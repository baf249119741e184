/*
 * Page channels (multifd over file:).  See page-channels.h.
 */
#include "page-channels.h"
#include "mapped-ram-csum.h"
#include "io/aio.h"
#include "util/bufferzero.h"
#include "util/bitmap.h"
#include "util/cutils.h"
#include "util/error.h"
#include "util/fault.h"
#include "util/osdep.h"
#include "util/thread.h"
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#define CHANNEL_MAX_QUEUED 8

typedef enum { JOB_WRITE, JOB_READ, JOB_PWRITE, JOB_SEGS_W, JOB_SEGS_R, JOB_SYNC, JOB_QUIT } JobKind;

typedef struct Job {
    JobKind kind;
    /* WRITE */
    uint8_t *host;
    uint64_t pages_offset;
    unsigned long *bitmap;
    const char *idstr;
    unsigned n;                    /* WRITE: pages to scan, or (scanned) pages to write */
    /* WRITE: the feeder scanned the pages, pages[] holds nruns (start, length) pairs */
    bool scanned;
    unsigned nruns;
    /* WRITE: indexed by page, or NULL; READ / PWRITE: one per page of the range, or NULL */
    uint64_t *hashes;
    /* READ / PWRITE */
    size_t len;
    off_t off;
    /* SEGS_*: marked done once the job's I/O has completed, or NULL */
    PageBatch *batch;
    /* SEGS_*: n segments after the struct */
    union {
        uint64_t pages[0];
        PageSeg segs[0];
    };
} Job;

typedef struct PageWorker {
    PageChannels *pc;
    unsigned id;
    int fd;
    bool owns_fd;                  /* the first worker of a channel opened the fd and closes it */
    AioEngine *aio;
    GThread *thread;               /* started at the first job it is handed; the feeder's */
    QemuMutex qlock;               /* jobs: fed by the migration thread, drained by this worker */
    QemuCond qcond;
    GQueue jobs;                   /* Job *, protected by qlock */
    bool has_queue;                /* qlock and qcond were initialised */
    gint queued;                   /* jobs not yet finished (atomic) */
    bool sync_io;                  /* immutable: the engine completes each request at once */
    GArray *unhashed;              /* HashLater: reads in flight to hash; this thread only */
} PageWorker;

/* A read whose pages are hashed once the engine has drained. */
typedef struct HashLater {
    const void *buf;
    uint64_t npages;
    uint64_t *hashes;
} HashLater;

struct PageChannels {
    PageChannelsConfig cfg;
    char *path;
    unsigned nworkers;             /* channels * workers per channel */
    /*
     * Immutable: a save with one worker, which would zero-check, hash and
     * write every page in turn.  Buffered writes to one file are
     * serialised by the kernel (the inode lock), so a second worker only
     * waits for the first; the thread that queues the pages (otherwise
     * idle) checks and hashes them instead, while the worker writes the
     * batch before.
     */
    bool feeder_scans;
    PageWorker *workers;
    unsigned next;                 /* round-robin cursor, migration thread only */
    QemuMutex lock;
    QemuCond cond;                    /* a job finished / a sync acked */
    unsigned sync_pending;         /* protected by lock */
    GError *err;                   /* first error; protected by lock */
    gint aborted;
    PageStats own_stats;           /* used when the caller gave none */
    PageStats *stats;              /* counters, moved by the workers as they go */
};

static gpointer channel_thread(gpointer opaque);

/*
 * A worker's thread starts with the first job it is handed (by the thread
 * that feeds the channels, the only one that reads or sets c->thread), not
 * at setup: a load that fails its checks, or reads fewer runs than there
 * are workers, starts no more threads than it uses.
 */
static void worker_push(PageWorker *c, Job *j)
{
    if (!c->thread) {
        g_autofree char *name = g_strdup_printf("pageio%u", c->id);
        c->thread = g_thread_new(name, channel_thread, c);
    }
    qemu_mutex_lock(&c->qlock);
    g_queue_push_tail(&c->jobs, j);
    qemu_cond_signal(&c->qcond);
    qemu_mutex_unlock(&c->qlock);
}

static Job *worker_pop(PageWorker *c)
{
    qemu_mutex_lock(&c->qlock);
    while (g_queue_is_empty(&c->jobs)) {
        qemu_cond_wait(&c->qcond, &c->qlock);
    }
    Job *j = g_queue_pop_head(&c->jobs);
    qemu_mutex_unlock(&c->qlock);
    return j;
}

static void set_error(PageChannels *pc, GError *err)
{
    qemu_mutex_lock(&pc->lock);
    if (!pc->err) {
        pc->err = err;
    } else {
        g_error_free(err);
    }
    qemu_mutex_unlock(&pc->lock);
}

static bool has_error(PageChannels *pc)
{
    qemu_mutex_lock(&pc->lock);
    bool e = pc->err != NULL;
    qemu_mutex_unlock(&pc->lock);
    return e || g_atomic_int_get(&pc->aborted);
}

static bool submit_run(PageWorker *c, Job *j, uint64_t first, uint64_t npages, GError **errp)
{
    struct iovec iov = { j->host + first * PAGE_CHANNELS_PAGE_SIZE, npages * PAGE_CHANNELS_PAGE_SIZE };
    off_t off = j->pages_offset + first * PAGE_CHANNELS_PAGE_SIZE;
    if (fault_hit("save-page-write")) {
        error_setg(errp, "Unable to write to file at offset 0x%llx: %s",
                   (unsigned long long)off, g_strerror(EIO));
        return false;
    }
    if (!aio_engine_pwritev(c->aio, &iov, 1, off, errp)) {
        return false;
    }
    stat64_add(&c->pc->stats->bytes, iov.iov_len);
    stat64_add(&c->pc->stats->normal_pages, npages);
    return true;
}

/*
 * The zero check and hash of one job's pages: each page not zero gets its
 * bit set (and its hash), each zero page its bit cleared, and the pages to
 * write are grouped in runs of consecutive pages.  The pages are read one
 * after the other, the next one prefetched.
 *
 * writer NULL (the feeder scans): the runs are stored in runs, (start,
 * length) pairs, room for 2 * n, and their number returned.  Else each
 * run is written by writer as soon as it ends, its pages still in this
 * core's cache (runs needs room for one); returns 0, or -1 on error.
 * *zeros gets the zero pages.
 */
static int scan_pages(PageChannels *pc, PageWorker *writer, Job *j, uint8_t *host,
                      unsigned long *bitmap, uint64_t *hashes, const uint64_t *pages,
                      unsigned n, uint64_t *runs, uint64_t *zeros, GError **errp)
{
    bool detect = pc->cfg.detect_zero;
    unsigned nruns = 0;

    *zeros = 0;
    if (n) {
        mrc_prefetch_page(host + pages[0] * PAGE_CHANNELS_PAGE_SIZE);
    }
    for (unsigned i = 0; i < n; i++) {
        uint64_t p = pages[i];
        if (i + 1 < n) {
            mrc_prefetch_page(host + pages[i + 1] * PAGE_CHANNELS_PAGE_SIZE);
        }
        if (detect && buffer_is_zero(host + p * PAGE_CHANNELS_PAGE_SIZE, PAGE_CHANNELS_PAGE_SIZE)) {
            clear_bit_atomic(p, bitmap);
            (*zeros)++;
            continue;
        }
        set_bit_atomic(p, bitmap);
        if (hashes) {
            /* the page was just read by the zero check: it is in this core's cache */
            hashes[p] = mrc_page_hash(host + p * PAGE_CHANNELS_PAGE_SIZE);
        }
        if (nruns && runs[2 * nruns - 2] + runs[2 * nruns - 1] == p) {
            runs[2 * nruns - 1]++;
            continue;
        }
        if (writer && nruns) {
            if (!submit_run(writer, j, runs[0], runs[1], errp)) {
                return -1;
            }
            nruns = 0;
        }
        runs[2 * nruns] = p;
        runs[2 * nruns + 1] = 1;
        nruns++;
    }
    if (writer) {
        return nruns && !submit_run(writer, j, runs[0], runs[1], errp) ? -1 : 0;
    }
    return nruns;
}

static bool do_write(PageWorker *c, Job *j, GError **errp)
{
    uint64_t run[2], zeros;

    if (j->scanned) {
        /* only the writes are left */
        for (unsigned r = 0; r < j->nruns; r++) {
            if (!submit_run(c, j, j->pages[2 * r], j->pages[2 * r + 1], errp)) {
                return false;
            }
        }
        return true;
    }
    int ret = scan_pages(c->pc, c, j, j->host, j->bitmap, j->hashes, j->pages, j->n, run,
                         &zeros, errp);
    stat64_add(&c->pc->stats->zero_pages, zeros);
    return ret == 0;
}

static bool do_read(PageWorker *c, Job *j, GError **errp)
{
    struct iovec iov = { j->host, j->len };
    if (fault_hit("load-page-read")) {
        error_setg(errp, "Unable to read from file at offset 0x%llx: %s",
                   (unsigned long long)j->off, g_strerror(EIO));
        return false;
    }
    if (!aio_engine_preadv(c->aio, &iov, 1, j->off, errp)) {
        return false;
    }
    stat64_add(&c->pc->stats->bytes, j->len);
    if (j->hashes) {
        HashLater h = { j->host, j->len / PAGE_CHANNELS_PAGE_SIZE, j->hashes };
        if (c->sync_io) {
            mrc_hash_pages(h.buf, h.npages, h.hashes);    /* in cache, unless O_DIRECT */
        } else {
            g_array_append_val(c->unhashed, h);
        }
    }
    return true;
}

/* After a drain: every read has arrived, hash those that wait for it. */
static void hash_arrived(PageWorker *c)
{
    for (guint i = 0; i < c->unhashed->len; i++) {
        HashLater *h = &g_array_index(c->unhashed, HashLater, i);
        mrc_hash_pages(h->buf, h->npages, h->hashes);
    }
    g_array_set_size(c->unhashed, 0);
}

static bool drain(PageWorker *c, GError **errp)
{
    if (!aio_engine_drain(c->aio, errp)) {
        g_array_set_size(c->unhashed, 0);
        return false;
    }
    hash_arrived(c);
    return true;
}

static bool do_pwrite(PageWorker *c, Job *j, GError **errp)
{
    struct iovec iov = { j->host, j->len };
    if (fault_hit("save-page-write")) {
        error_setg(errp, "Unable to write to file at offset 0x%llx: %s",
                   (unsigned long long)j->off, g_strerror(EIO));
        return false;
    }
    if (j->hashes) {
        mrc_hash_pages(j->host, j->len / PAGE_CHANNELS_PAGE_SIZE, j->hashes);
    }
    if (!aio_engine_pwritev(c->aio, &iov, 1, j->off, errp)) {
        return false;
    }
    stat64_add(&c->pc->stats->bytes, j->len);
    stat64_add(&c->pc->stats->normal_pages, j->len / PAGE_CHANNELS_PAGE_SIZE);
    return true;
}

static bool do_segs(PageWorker *c, Job *j, bool write, GError **errp)
{
    for (unsigned i = 0; i < j->n; i++) {
        Job one = { .kind = write ? JOB_PWRITE : JOB_READ, .host = j->segs[i].buf,
                    .len = j->segs[i].len, .off = j->segs[i].off,
                    .hashes = j->segs[i].hashes };
        if (!(write ? do_pwrite(c, &one, errp) : do_read(c, &one, errp))) {
            return false;
        }
    }
    return true;
}

static void job_finished(PageWorker *c, PageBatch *batch)
{
    qemu_mutex_lock(&c->pc->lock);
    if (batch) {
        g_atomic_int_set(&batch->done, 1);
    }
    g_atomic_int_dec_and_test(&c->queued);
    qemu_cond_broadcast(&c->pc->cond);
    qemu_mutex_unlock(&c->pc->lock);
}

static gpointer channel_thread(gpointer opaque)
{
    PageWorker *c = opaque;
    PageChannels *pc = c->pc;
    for (;;) {
        Job *j = worker_pop(c);
        GError *err = NULL;
        bool ok = true;
        switch (j->kind) {
        case JOB_WRITE:
            if (!has_error(pc)) {
                if (fault_hit("multifd-send-stall")) {
                    g_usleep(50 * 1000);
                }
                ok = do_write(c, j, &err);
            }
            stat64_sub(&pc->stats->in_flight, j->n);
            break;
        case JOB_READ:
            if (!has_error(pc)) {
                ok = do_read(c, j, &err);
            }
            break;
        case JOB_PWRITE:
            if (!has_error(pc)) {
                ok = do_pwrite(c, j, &err);
            }
            break;
        case JOB_SEGS_W:
        case JOB_SEGS_R:
            if (!has_error(pc)) {
                ok = do_segs(c, j, j->kind == JOB_SEGS_W, &err);
                /*
                 * A batch is done when its I/O is, not when it is
                 * submitted: drained even after a failed submission, so
                 * that no read lands in its buffers once it is done.
                 */
                if (j->batch) {
                    GError *drain_err = NULL;
                    bool drained = drain(c, ok ? &err : &drain_err);
                    g_clear_error(&drain_err);
                    ok = ok && drained;
                }
            }
            break;
        case JOB_SYNC:
        case JOB_QUIT:
            ok = drain(c, &err);
            break;
        }
        if (!ok) {
            if (pc->cfg.channels > 1) {
                g_prefix_error(&err, "multifd channel %u: ", c->id * pc->cfg.channels / pc->nworkers);
            }
            set_error(pc, err);
        }
        JobKind kind = j->kind;
        PageBatch *batch = j->batch;
        g_free(j);
        if (kind == JOB_SYNC) {
            qemu_mutex_lock(&pc->lock);
            pc->sync_pending--;
            qemu_cond_broadcast(&pc->cond);
            qemu_mutex_unlock(&pc->lock);
        }
        job_finished(c, batch);
        if (kind == JOB_QUIT) {
            return NULL;
        }
    }
}

static int open_channel_fd(const PageChannelsConfig *cfg, GError **errp)
{
    /* qemu_open reports a file system without O_DIRECT in QEMU's words */
    return qemu_open(cfg->path, cfg->flags | (cfg->direct_io ? O_DIRECT : 0), 0600, errp);
}

/*
 * Workers per channel: io_uring serialises writes to one regular file issued through one
 * ring (they are hashed by inode when punted to its io-wq threads), and ext4's
 * allocating O_DIRECT writes always are.  So with direct-io every fd gets
 * enough threads, each with its own engine, that several rings are busy:
 * one page-data fd still stands beside the main one, but it is written in
 * parallel.  Writes into holes (every run of non-zero pages between zero
 * pages is one) are the slow case, and the more of them in flight the
 * less kernel time each costs: 262144 runs of 8 KiB took ~4.5 s with 4
 * rings of 256 and ~4.2 s with 16 (before the file was extended up front,
 * see mapped_ram_put_block; ~3.4 s since, 8 or 16 threads alike).  Loads,
 * whose cost is mostly faulting in guest RAM, need no more than 4.
 */
#define DIO_WRITE_MIN_THREADS 16
#define LOAD_MIN_THREADS 4

PageChannels *page_channels_new(const PageChannelsConfig *cfg, GError **errp)
{
    PageChannels *pc = g_new0(PageChannels, 1);
    bool load = (cfg->flags & O_ACCMODE) == O_RDONLY;
    /* loads too: reads into fresh guest RAM fault it in, and that is CPU work */
    unsigned min_threads = cfg->threads ? cfg->threads :
                           load ? LOAD_MIN_THREADS : cfg->direct_io ? DIO_WRITE_MIN_THREADS : 1;
    unsigned per_channel = MAX(1, DIV_ROUND_UP(min_threads, cfg->channels));

    pc->cfg = *cfg;
    pc->stats = cfg->stats ? cfg->stats : &pc->own_stats;
    pc->path = g_strdup(cfg->path);
    pc->cfg.path = pc->path;
    pc->nworkers = cfg->channels * per_channel;
    pc->feeder_scans = !load && pc->nworkers == 1;
    qemu_mutex_init(&pc->lock);
    qemu_cond_init(&pc->cond);
    pc->workers = g_new0(PageWorker, pc->nworkers);
    for (unsigned i = 0; i < pc->nworkers; i++) {
        PageWorker *c = &pc->workers[i];
        c->pc = pc;
        c->id = i;
        c->fd = -1;
    }
    for (unsigned i = 0; i < pc->nworkers; i++) {
        PageWorker *c = &pc->workers[i];
        if (i % per_channel == 0) {
            c->fd = open_channel_fd(&pc->cfg, errp);
            c->owns_fd = true;
            if (c->fd < 0) {
                goto fail;
            }
        } else {
            c->fd = pc->workers[i - i % per_channel].fd;
        }
        c->aio = aio_engine_new(c->fd, cfg->queue_depth ? cfg->queue_depth : 1,
                                cfg->direct_io ? AIO_BACKEND_AUTO : AIO_BACKEND_SYNC, errp);
        if (!c->aio) {
            goto fail;
        }
        c->sync_io = !strcmp(aio_engine_backend_name(c->aio), "sync");
        c->unhashed = g_array_new(FALSE, FALSE, sizeof(HashLater));
        qemu_mutex_init(&c->qlock);
        qemu_cond_init(&c->qcond);
        c->has_queue = true;
    }
    return pc;
fail:
    page_channels_free(pc);
    return NULL;
}

static PageWorker *pick_worker(PageChannels *pc)
{
    unsigned n = pc->nworkers;
    qemu_mutex_lock(&pc->lock);
    for (;;) {
        for (unsigned k = 0; k < n; k++) {
            PageWorker *c = &pc->workers[(pc->next + k) % n];
            if (g_atomic_int_get(&c->queued) < CHANNEL_MAX_QUEUED) {
                pc->next = (c->id + 1) % n;
                g_atomic_int_inc(&c->queued);
                qemu_mutex_unlock(&pc->lock);
                return c;
            }
        }
        qemu_cond_wait(&pc->cond, &pc->lock);
    }
}

static bool check_error(PageChannels *pc, GError **errp)
{
    qemu_mutex_lock(&pc->lock);
    bool ok = pc->err == NULL;
    if (!ok && errp && !*errp) {
        *errp = g_error_copy(pc->err);
    }
    qemu_mutex_unlock(&pc->lock);
    if (ok && g_atomic_int_get(&pc->aborted)) {
        error_setg(errp, "Migration cancelled");
        return false;
    }
    return ok;
}

bool page_channels_queue_write(PageChannels *pc, const char *idstr, uint8_t *host,
                               uint64_t pages_offset, unsigned long *file_bitmap,
                               const uint64_t *pages, unsigned n, GError **errp)
{
    return page_channels_queue_write_hashed(pc, idstr, host, pages_offset, file_bitmap, NULL,
                                            pages, n, errp);
}

bool page_channels_queue_write_hashed(PageChannels *pc, const char *idstr, uint8_t *host,
                                      uint64_t pages_offset, unsigned long *file_bitmap,
                                      uint64_t *page_hashes, const uint64_t *pages,
                                      unsigned n, GError **errp)
{
    g_assert(n > 0 && n <= PAGE_CHANNELS_MAX_BATCH);
    if (!check_error(pc, errp)) {
        return false;
    }
    Job *j = g_malloc0(sizeof(Job) + 2 * n * sizeof(uint64_t));
    j->kind = JOB_WRITE;
    j->host = host;
    j->pages_offset = pages_offset;
    j->bitmap = file_bitmap;
    j->idstr = idstr;
    j->hashes = page_hashes;
    if (pc->feeder_scans) {
        uint64_t zeros;
        j->scanned = true;
        j->nruns = scan_pages(pc, NULL, NULL, host, file_bitmap, page_hashes, pages, n,
                              j->pages, &zeros, NULL);
        j->n = n - zeros;
        stat64_add(&pc->stats->zero_pages, zeros);
        if (!j->nruns) {
            g_free(j);
            return true;
        }
    } else {
        j->n = n;
        memcpy(j->pages, pages, n * sizeof(uint64_t));
    }
    PageWorker *c = pick_worker(pc);
    stat64_add(&pc->stats->in_flight, j->n);
    worker_push(c, j);
    return true;
}

static bool queue_io(PageChannels *pc, JobKind kind, void *host, size_t len, off_t off,
                     uint64_t *hashes, GError **errp)
{
    if (!check_error(pc, errp)) {
        return false;
    }
    Job *j = g_new0(Job, 1);
    j->kind = kind;
    j->host = host;
    j->len = len;
    j->off = off;
    j->hashes = hashes;
    worker_push(pick_worker(pc), j);
    return true;
}

bool page_channels_queue_read(PageChannels *pc, void *host, size_t len, off_t off,
                              GError **errp)
{
    return queue_io(pc, JOB_READ, host, len, off, NULL, errp);
}

bool page_channels_queue_read_hashed(PageChannels *pc, void *host, size_t len, off_t off,
                                     uint64_t *hashes, GError **errp)
{
    return queue_io(pc, JOB_READ, host, len, off, hashes, errp);
}

bool page_channels_queue_pwrite(PageChannels *pc, const void *buf, size_t len, off_t off,
                                GError **errp)
{
    return queue_io(pc, JOB_PWRITE, (void *)buf, len, off, NULL, errp);
}

static bool queue_segs(PageChannels *pc, bool write, const PageSeg *segs, unsigned n,
                       PageBatch *batch, GError **errp)
{
    if (!check_error(pc, errp)) {
        return false;
    }
    Job *j = g_malloc0(sizeof(Job) + n * sizeof(PageSeg));
    j->kind = write ? JOB_SEGS_W : JOB_SEGS_R;
    j->n = n;
    j->batch = batch;
    memcpy(j->segs, segs, n * sizeof(PageSeg));
    worker_push(pick_worker(pc), j);
    return true;
}

bool page_channels_queue_segs(PageChannels *pc, bool write, const PageSeg *segs, unsigned n,
                              GError **errp)
{
    return !n || queue_segs(pc, write, segs, n, NULL, errp);
}

bool page_channels_queue_batch(PageChannels *pc, bool write, const PageSeg *segs, unsigned n,
                               PageBatch *batch, GError **errp)
{
    g_atomic_int_set(&batch->done, n == 0);
    return !n || queue_segs(pc, write, segs, n, batch, errp);
}

bool page_channels_wait_batch(PageChannels *pc, PageBatch *batch, GError **errp)
{
    qemu_mutex_lock(&pc->lock);
    while (!g_atomic_int_get(&batch->done) && !pc->err && !g_atomic_int_get(&pc->aborted)) {
        qemu_cond_wait(&pc->cond, &pc->lock);
    }
    qemu_mutex_unlock(&pc->lock);
    return check_error(pc, errp);
}

void page_channels_settle_batch(PageChannels *pc, PageBatch *batch)
{
    qemu_mutex_lock(&pc->lock);
    while (!g_atomic_int_get(&batch->done)) {
        qemu_cond_wait(&pc->cond, &pc->lock);
    }
    qemu_mutex_unlock(&pc->lock);
}

bool page_channels_sync(PageChannels *pc, GError **errp)
{
    unsigned started = 0;

    for (unsigned i = 0; i < pc->nworkers; i++) {
        started += pc->workers[i].thread != NULL;
    }
    /* a worker that was never handed a job has nothing to drain */
    qemu_mutex_lock(&pc->lock);
    pc->sync_pending = started;
    qemu_mutex_unlock(&pc->lock);
    for (unsigned i = 0; i < pc->nworkers; i++) {
        PageWorker *c = &pc->workers[i];
        if (!c->thread) {
            continue;
        }
        Job *j = g_new0(Job, 1);
        j->kind = JOB_SYNC;
        g_atomic_int_inc(&c->queued);
        worker_push(c, j);
    }
    qemu_mutex_lock(&pc->lock);
    while (pc->sync_pending) {
        qemu_cond_wait(&pc->cond, &pc->lock);
    }
    qemu_mutex_unlock(&pc->lock);
    return check_error(pc, errp);
}

bool page_channels_fsync(PageChannels *pc, GError **errp)
{
    if (!page_channels_sync(pc, errp)) {
        return false;
    }
    for (unsigned i = 0; i < pc->nworkers; i++) {
        PageWorker *c = &pc->workers[i];
        if (!c->owns_fd || qemu_fdatasync(c->fd) == 0) {
            continue;
        }
        error_setg_errno(errp, errno, "Unable to sync '%s' to disk", pc->path);
        if (pc->cfg.channels > 1) {
            g_prefix_error(errp, "multifd channel %u: ", i * pc->cfg.channels / pc->nworkers);
        }
        return false;
    }
    return true;
}

void page_channels_abort(PageChannels *pc)
{
    g_atomic_int_set(&pc->aborted, 1);
}

void page_channels_free(PageChannels *pc)
{
    if (!pc) {
        return;
    }
    /*
     * Every worker ends before any fd closes: workers share a channel's fd
     * (only one of them owns it), and one may still be in a preadv on it.
     */
    for (unsigned i = 0; i < pc->nworkers; i++) {
        PageWorker *c = &pc->workers[i];
        if (c->thread) {
            Job *j = g_new0(Job, 1);
            j->kind = JOB_QUIT;
            g_atomic_int_inc(&c->queued);
            worker_push(c, j);
        }
    }
    for (unsigned i = 0; i < pc->nworkers; i++) {
        if (pc->workers[i].thread) {
            g_thread_join(pc->workers[i].thread);
        }
    }
    for (unsigned i = 0; i < pc->nworkers; i++) {
        PageWorker *c = &pc->workers[i];
        if (c->has_queue) {
            qemu_cond_destroy(&c->qcond);
            qemu_mutex_destroy(&c->qlock);
        }
        if (c->aio) {
            aio_engine_free(c->aio);
        }
        if (c->unhashed) {
            g_array_unref(c->unhashed);
        }
        if (c->fd >= 0 && c->owns_fd) {
            qemu_close(c->fd);
        }
    }
    g_free(pc->workers);
    if (pc->err) {
        g_error_free(pc->err);
    }
    qemu_mutex_destroy(&pc->lock);
    qemu_cond_destroy(&pc->cond);
    g_free(pc->path);
    g_free(pc);
}

