/*
 * On-demand restore: userfaultfd, the fault thread, the background
 * stream.  See postcopy.h.
 */
#include "postcopy.h"
#include "mapped-ram-share.h"
#include "util/bitmap.h"
#include "util/error.h"
#include "util/fault.h"
#include "util/osdep.h"
#include "util/thread.h"
#include "util/uffd-move.h"
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define PC_PAGE PAGE_CHANNELS_PAGE_SIZE

/*
 * A fault reads the checksum run around the page (64 pages, 256 KiB):
 * a guest touches its memory in neighbourhoods, one read of 256 KiB costs
 * little more than one of 4 KiB, and a run is what a checksum covers.
 */
#define FAULT_WINDOW_PAGES MRC_RUN_PAGES
/*
 * The background reads windows of 1 MiB (4 checksum runs) and copies
 * them in with UFFDIO_COPY, SLOTS of them in flight; where the kernel
 * moves pages (UFFDIO_MOVE, Linux 6.8) a window is 2 MiB, read into a
 * buffer of its own transparent huge page and moved into guest RAM whole:
 * no copy, and one page-table entry per window rather than 512.
 */
#define STREAM_WINDOW_PAGES (4 * MRC_RUN_PAGES)
#define MOVE_WINDOW_PAGES (2 * STREAM_WINDOW_PAGES)
#define MOVE_WINDOW_BYTES (MOVE_WINDOW_PAGES * PC_PAGE)
#define STREAM_SLOTS 16
/*
 * A window is read as its set runs, one read each, joining runs whose gap
 * is at most this many pages: reading the clear pages of a gap costs
 * twice (the kernel zero-fills the file's holes into the buffer, then
 * they are zeroed again against stale bytes), a few times a 4 KiB page
 * more than a request.  A moved window's clear pages that are not read
 * are the fresh zeroes of its buffer.
 */
#define SEG_GAP_PAGES 4
#define SLOT_MAX_SEGS (MOVE_WINDOW_PAGES / 2 + 1)

typedef struct PcBlock {
    /* Immutable once added */
    char *idstr;
    uint8_t *host;
    uint64_t npages;
    uint64_t pages_offset;
    unsigned long *bmap;          /* the file's bitmap */
    const MrcBlock *sums;         /* in PostcopyLoad.csum, or NULL */
    /* Atomic bits: the page's data is in guest RAM (set bits only) */
    unsigned long *placed;
    /*
     * Atomic bits, one per 2 MiB window: the fault thread placed pages
     * there.  The background copies such a window rather than moving it:
     * a move onto a window that is partly there goes page by page, each
     * page a TLB flush on every CPU running the guest.
     */
    unsigned long *faulted;
    /*
     * Atomic bits, one per 2 MiB window, moving only: the thread that set
     * the bit loads the window's pages.  The background sets it before it
     * queues the window's reads; the fault thread, at a fault in a window
     * with data that nobody claimed yet, reads the whole window and moves
     * it in one piece (serve_window), and the background passes it by.
     */
    unsigned long *claimed;
} PcBlock;

struct PostcopyLoad {
    /*
     * Immutable once postcopy_load_start() returned; but uffd and fd,
     * which the streaming thread closes (-1) once every page is in and
     * the fault thread ended (release_io)
     */
    GPtrArray *blocks;            /* PcBlock * */
    int uffd;
    /*
     * The fault thread's reads: reopened O_DIRECT at start when the load
     * has direct-io (kept as opened if that fails): a fault's 256 KiB then
     * lands in its buffer without a trip through the page cache, which it
     * would fill with a copy of every faulted run.
     */
    int fd;
    int wake_fd;                  /* eventfd: the fault thread must end */
    /*
     * A shared flock() on the file while pages are missing, so that no
     * mapram save writes it (-1: none).  The incoming thread drops it once
     * every page is in; the main thread after the join, at the free.
     */
    int lock_fd;
    PostcopyStats *stats;         /* the caller's; Stat64 */
    MrcTable *csum;               /* owned */
    PageChannelsConfig pc_cfg;    /* the background's channels; path owned */
    bool can_move;                /* UFFDIO_MOVE on every block, and the buffers below */
    bool thread_ids;              /* the kernel gives each fault's thread (UFFD_FEATURE_THREAD_ID) */
    /* Told of each thread that waits for good on a page (postcopy_load_new) */
    PostcopyBlockedFn blocked;
    void *blocked_opaque;
    /*
     * Moving: STREAM_SLOTS + 1 windows of 2 MiB-aligned buffers (map, the
     * mapping; bufs, its first aligned byte), transparent huge pages.  The
     * slots' belong to the streaming thread, the last one to the fault
     * thread (serve_window).
     */
    uint8_t *map;
    size_t map_len;
    uint8_t *bufs;
    /* The streaming (incoming) thread only (it also sets pl up) */
    PageChannels *pc;             /* opened by postcopy_load_stream() */
    PageStats page_stats;         /* the channels' counters (Stat64; not reported) */
    bool registered;
    /* The thread that called new/start/free */
    GThread *fault_thread;
    /* Protected by lock */
    QemuMutex lock;
    GError *err;                  /* the first error of either thread */
    int failed;                   /* atomic mirror of err != NULL */
};

static void set_error(PostcopyLoad *pl, GError *err)
{
    qemu_mutex_lock(&pl->lock);
    if (!pl->err) {
        pl->err = err;
        err = NULL;
        __atomic_store_n(&pl->failed, 1, __ATOMIC_RELEASE);
    }
    qemu_mutex_unlock(&pl->lock);
    if (err) {
        g_error_free(err);
    }
}

static bool has_failed(PostcopyLoad *pl)
{
    return __atomic_load_n(&pl->failed, __ATOMIC_ACQUIRE);
}

/* ---- userfaultfd ---- */

static int uffd_open(GError **errp)
{
    int fd = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
    if (fd >= 0) {
        int u = ioctl(fd, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
        close(fd);
        if (u >= 0) {
            return u;
        }
    }
    fd = syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        error_setg(errp, "Userfaultfd not available: %s", g_strerror(errno));
        return -1;
    }
    return fd;
}

/*
 * *can_move: the kernel took UFFD_FEATURE_MOVE; *thread_ids:
 * UFFD_FEATURE_THREAD_ID (Linux 4.14).  A kernel that refuses a feature
 * lets the handshake be tried again without it.
 */
static bool uffd_api(int uffd, bool *can_move, bool *thread_ids, GError **errp)
{
    static const uint64_t tries[] = {
        UFFD_FEATURE_MOVE | UFFD_FEATURE_THREAD_ID,
        UFFD_FEATURE_THREAD_ID,
        0,
    };
    struct uffdio_api api;
    uint64_t on = 0;
    int r = -1;

    for (unsigned i = 0; i < G_N_ELEMENTS(tries) && r < 0; i++) {
        api = (struct uffdio_api){ .api = UFFD_API, .features = tries[i] };
        r = ioctl(uffd, UFFDIO_API, &api);
        on = tries[i];            /* api.features lists all the kernel has, not these */
    }
    if (r < 0) {
        error_setg(errp, "UFFDIO_API failed: %s", g_strerror(errno));
        return false;
    }
    *can_move = on & UFFD_FEATURE_MOVE;
    *thread_ids = on & UFFD_FEATURE_THREAD_ID;
    uint64_t need = (1ULL << _UFFDIO_REGISTER) | (1ULL << _UFFDIO_UNREGISTER);
    if ((api.ioctls & need) != need) {
        error_setg(errp, "Missing userfault features: %llx",
                   (unsigned long long)(need & ~api.ioctls));
        return false;
    }
    return true;
}

/*
 * The kernel has no page left in the range (a shared or preallocated
 * backend would).  Private anonymous memory is empty once dropped: the
 * check (mincore, ~80 ms for 16 GiB here) is for the other kinds.
 */
static bool empty_range(const char *idstr, uint8_t *host, uint64_t len, bool private_anon,
                        GError **errp)
{
    if (madvise(host, len, MADV_DONTNEED) < 0) {
        error_setg(errp, "Cannot empty RAM block '%s' for on-demand restore: %s", idstr,
                   g_strerror(errno));
        return false;
    }
    if (private_anon) {
        return true;
    }
    g_autofree unsigned char *vec = g_malloc(len / PC_PAGE);
    if (mincore(host, len, vec) < 0) {
        error_setg(errp, "Cannot empty RAM block '%s' for on-demand restore: %s", idstr,
                   g_strerror(errno));
        return false;
    }
    for (uint64_t i = 0; i < len / PC_PAGE; i++) {
        if (vec[i] & 1) {
            error_setg(errp, "On-demand restore needs RAM block '%s' empty, but its page "
                       "at offset 0x%" PRIx64 " is present (a shared or preallocated "
                       "memory backend)", idstr, (uint64_t)(i * PC_PAGE));
            return false;
        }
    }
    return true;
}

/* *can_move is cleared when the range does not take UFFDIO_MOVE. */
static bool uffd_register(int uffd, const char *idstr, uint8_t *host, uint64_t len,
                          bool *can_move, GError **errp)
{
    struct uffdio_register reg = {
        .range = { .start = (uintptr_t)host, .len = len },
        .mode = UFFDIO_REGISTER_MODE_MISSING,
    };
    if (ioctl(uffd, UFFDIO_REGISTER, &reg) < 0) {
        int e = errno;
        /* missing faults exist only for anonymous, shmem and hugetlbfs memory */
        error_setg(errp, "Cannot register RAM block '%s' with userfaultfd: %s%s", idstr,
                   g_strerror(e),
                   e == EINVAL ? " (restoring on demand needs memory that is anonymous or on "
                                 "tmpfs or hugetlbfs: memory-backend-ram, -memfd, or a "
                                 "memory-backend-file there, not on a disk's file system)"
                               : "");
        return false;
    }
    uint64_t need = (1ULL << _UFFDIO_WAKE) | (1ULL << _UFFDIO_COPY) |
                    (1ULL << _UFFDIO_ZEROPAGE);
    if ((reg.ioctls & need) != need) {
        error_setg(errp, "Missing userfault map features: %llx",
                   (unsigned long long)(need & ~reg.ioctls));
        return false;
    }
    if (!(reg.ioctls & (1ULL << _UFFDIO_MOVE))) {
        *can_move = false;
    }
    return true;
}

/*
 * Place len bytes of src (or zero pages when src is NULL) at dst; pages
 * already there are skipped.  Returns the pages this call placed, -1 with
 * errp set.
 */
static int64_t uffd_place(int uffd, uint8_t *dst, const uint8_t *src, uint64_t len,
                          GError **errp)
{
    int64_t placed = 0;
    while (len) {
        int64_t done;
        int r;
        if (src) {
            struct uffdio_copy c = { .dst = (uintptr_t)dst, .src = (uintptr_t)src, .len = len };
            r = ioctl(uffd, UFFDIO_COPY, &c);
            done = c.copy;
        } else {
            struct uffdio_zeropage z = { .range = { .start = (uintptr_t)dst, .len = len } };
            r = ioctl(uffd, UFFDIO_ZEROPAGE, &z);
            done = z.zeropage;
        }
        if (r == 0) {
            return placed + len / PC_PAGE;
        }
        if (done > 0) {
            placed += done / PC_PAGE;    /* part placed, stopped at a page that is there */
        } else if (errno == EEXIST || done == -EEXIST) {
            done = PC_PAGE;              /* the first page is there: skip it */
        } else if (errno == EAGAIN) {
            continue;                    /* the mapping changed under us: retry */
        } else {
            error_setg(errp, "%s failed at 0x%" PRIxPTR ": %s",
                       src ? "UFFDIO_COPY" : "UFFDIO_ZEROPAGE", (uintptr_t)dst,
                       g_strerror(errno));
            return -1;
        }
        dst += done;
        if (src) {
            src += done;
        }
        len -= done;
    }
    return placed;
}

/* ---- a window of a block ---- */

/* The set pages of [w0, w1): *first and *last (inclusive); false when none. */
static bool window_set_pages(const PcBlock *b, uint64_t w0, uint64_t w1, uint64_t *first,
                             uint64_t *last)
{
    uint64_t p = find_next_bit(b->bmap, w1, w0);
    if (p >= w1) {
        return false;
    }
    *first = p;
    while (p < w1) {
        *last = p;
        p = find_next_bit(b->bmap, w1, p + 1);
    }
    return true;
}

static bool window_placed(const PcBlock *b, uint64_t w0, uint64_t w1)
{
    for (uint64_t p = find_next_bit(b->bmap, w1, w0); p < w1;
         p = find_next_bit(b->bmap, w1, p + 1)) {
        unsigned long word = __atomic_load_n(&b->placed[BIT_WORD(p)], __ATOMIC_RELAXED);
        if (!(word & BIT_MASK(p))) {
            return false;
        }
    }
    return true;
}

/*
 * buf holds pages [first, first + n) of b as read from the file: check the
 * runs of [w0, w1) (hashes[i] is page w0 + i's, or NULL: no table) and
 * place every set page.  Returns pages placed, -1 with errp set.
 */
static int64_t window_place(PostcopyLoad *pl, PcBlock *b, uint64_t w0, uint64_t w1,
                            uint64_t first, uint64_t n, const uint8_t *buf,
                            const uint64_t *hashes, GError **errp)
{
    int64_t placed = 0;
    if (b->sums && hashes && !mrc_check_runs(b->sums, b->bmap, hashes, w0, w1 - w0, errp)) {
        return -1;
    }
    uint64_t end = first + n;
    for (uint64_t s = find_next_bit(b->bmap, end, first); s < end;) {
        uint64_t e = find_next_zero_bit(b->bmap, end, s);
        /*
         * Pages already there (the other thread's) split the run: a copy
         * onto one fails, and each costs an ioctl of its own to step over.
         */
        while (s < e) {
            if (test_bit_atomic(s, b->placed)) {
                s++;
                continue;
            }
            uint64_t t = s + 1;
            while (t < e && !test_bit_atomic(t, b->placed)) {
                t++;
            }
            int64_t k = uffd_place(pl->uffd, b->host + s * PC_PAGE,
                                   buf + (s - first) * PC_PAGE, (t - s) * PC_PAGE, errp);
            if (k < 0) {
                return -1;
            }
            placed += k;
            for (uint64_t p = s; p < t; p++) {
                set_bit_atomic(p, b->placed);
            }
            s = t;
        }
        s = find_next_bit(b->bmap, end, e);
    }
    stat64_sub(&pl->stats->remaining, (uint64_t)placed * PC_PAGE);
    return placed;
}

/* Marks the set pages of [s, e) placed; returns how many there are. */
static int64_t mark_placed(PcBlock *b, uint64_t s, uint64_t e)
{
    int64_t n = 0;
    for (uint64_t p = find_next_bit(b->bmap, e, s); p < e; p = find_next_bit(b->bmap, e, p + 1)) {
        set_bit_atomic(p, b->placed);
        n++;
    }
    return n;
}

/*
 * The moving path of window_place(): buf holds window [w0, w1) of b at
 * its offsets, the nsegs reads of segs (pages [first, first + n) hold them
 * all) landed from the file, their runs checked.  The
 * clear pages a read covered get zeroes (a live save can leave stale bytes
 * in their slots), and so does every clear page when *dirty says that buf
 * still held an earlier window's pages (the reads covered only theirs);
 * then the window moves into guest RAM.  A window the fault thread has placed pages in is
 * copied instead, and so is the rest of a window whose move stops (a page
 * the fault thread placed meanwhile, a page of the buffer still busy).
 * Afterwards the buffer is empty, or, after a copy, keeps its huge page
 * and *dirty is set: emptying it cost a page-table teardown now and a
 * fresh 2 MiB page zeroed at the next read, where a later move zeroes only
 * the clear pages.  Returns pages placed, -1 with errp set.
 */
static int64_t window_move(PostcopyLoad *pl, PcBlock *b, uint64_t w0, uint64_t w1,
                           uint64_t first, uint64_t n, const PageSeg *segs, unsigned nsegs,
                           uint8_t *buf, bool *dirty, GError **errp)
{
    int64_t moved = 0, copied = 0;
    uint64_t end = first + n, p = w0;
    /* a short window (a block's last) leaves a dirty buffer's end as it was */
    bool leftovers = *dirty && w1 - w0 < MOVE_WINDOW_PAGES;
    if (test_bit_atomic(w0 / MOVE_WINDOW_PAGES, b->faulted)) {
        copied = window_place(pl, b, w0, w1, first, n, buf + (first - w0) * PC_PAGE, NULL,
                              errp);
        *dirty = true;
        return copied;
    }
    for (uint64_t z = *dirty ? find_next_zero_bit(b->bmap, w1, w0) : w1; z < w1;
         z = find_next_zero_bit(b->bmap, w1, z + 1)) {
        memset(buf + (z - w0) * PC_PAGE, 0, PC_PAGE);
    }
    for (unsigned i = 0; i < nsegs && !*dirty; i++) {
        uint64_t s0 = (segs[i].off - b->pages_offset) / PC_PAGE;
        uint64_t s1 = s0 + segs[i].len / PC_PAGE;
        for (uint64_t z = find_next_zero_bit(b->bmap, s1, s0); z < s1;
             z = find_next_zero_bit(b->bmap, s1, z + 1)) {
            memset(buf + (z - w0) * PC_PAGE, 0, PC_PAGE);
        }
    }
    while (p < w1) {
        struct uffdio_move m = {
            .dst = (uintptr_t)(b->host + p * PC_PAGE),
            .src = (uintptr_t)(buf + (p - w0) * PC_PAGE),
            .len = (w1 - p) * PC_PAGE,
            .mode = UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES,
        };
        uint64_t done;
        if (ioctl(pl->uffd, UFFDIO_MOVE, &m) == 0) {
            done = w1 - p;
        } else if (m.move > 0) {
            done = m.move / PC_PAGE;     /* part moved, then a page that is there */
        } else {
            /* copy what is left: the read's pages are all still in buf */
            leftovers = true;
            uint64_t from = MAX(p, first);
            copied = from < end ? window_place(pl, b, w0, w1, from, end - from,
                                               buf + (from - w0) * PC_PAGE, NULL, errp)
                                : 0;
            break;
        }
        moved += mark_placed(b, p, p + done);
        p += done;
    }
    stat64_sub(&pl->stats->remaining, (uint64_t)moved * PC_PAGE);
    if (leftovers) {
        madvise(buf, MOVE_WINDOW_BYTES, MADV_DONTNEED);
    }
    *dirty = false;
    return copied < 0 ? -1 : moved + copied;
}

static void prefix_page(GError **errp, const PcBlock *b, uint64_t page)
{
    g_prefix_error(errp, "On-demand load of RAM block '%s' at offset 0x%" PRIx64 ": ",
                   b->idstr, (uint64_t)(page * PC_PAGE));
}

/* ---- the fault thread ---- */

static PcBlock *block_of(PostcopyLoad *pl, uintptr_t addr, uint64_t *page)
{
    for (guint i = 0; i < pl->blocks->len; i++) {
        PcBlock *b = g_ptr_array_index(pl->blocks, i);
        uintptr_t h = (uintptr_t)b->host;
        if (addr >= h && addr < h + b->npages * PC_PAGE) {
            *page = (addr - h) / PC_PAGE;
            return b;
        }
    }
    return NULL;
}

static bool pread_all(int fd, uint8_t *buf, size_t len, off_t off, GError **errp)
{
    size_t done = 0;
    if (fault_hit("postcopy-fault-read")) {
        error_setg(errp, "Unable to read from file at offset 0x%llx: %s",
                   (unsigned long long)off, g_strerror(EIO));
        return false;
    }
    while (done < len) {
        ssize_t r = pread(fd, buf + done, len - done, off + done);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            error_setg(errp, "Unable to read from file at offset 0x%llx: %s",
                       (unsigned long long)(off + done), g_strerror(errno));
            return false;
        }
        if (r == 0) {
            /* the background's page channels' words (io/aio.c): one text for a cut file */
            error_setg(errp, "Unexpected end of file at offset 0x%llx",
                       (unsigned long long)(off + done));
            return false;
        }
        done += r;
    }
    return true;
}

/* A clear bit: the zero pages of the clear run around page, inside its window. */
static bool serve_zero(PostcopyLoad *pl, PcBlock *b, uint64_t page, GError **errp)
{
    uint64_t w0 = page - page % FAULT_WINDOW_PAGES;
    uint64_t w1 = MIN(w0 + FAULT_WINDOW_PAGES, b->npages);
    uint64_t s = page, e = find_next_bit(b->bmap, w1, page);
    while (s > w0 && !test_bit(s - 1, b->bmap)) {
        s--;
    }
    return uffd_place(pl->uffd, b->host + s * PC_PAGE, NULL, (e - s) * PC_PAGE, errp) >= 0;
}

static bool serve_data(PostcopyLoad *pl, PcBlock *b, uint64_t page, uint8_t *buf,
                       GError **errp)
{
    uint64_t w0 = page - page % FAULT_WINDOW_PAGES;
    uint64_t w1 = MIN(w0 + FAULT_WINDOW_PAGES, b->npages);
    uint64_t first = page, last = page, hashes[FAULT_WINDOW_PAGES];
    window_set_pages(b, w0, w1, &first, &last);
    uint64_t n = last - first + 1;
    if (!pread_all(pl->fd, buf, n * PC_PAGE, b->pages_offset + first * PC_PAGE, errp)) {
        return false;
    }
    if (b->sums) {
        mrc_hash_pages(buf, n, hashes + (first - w0));
    }
    int64_t k = window_place(pl, b, w0, w1, first, n, buf, b->sums ? hashes : NULL, errp);
    if (k < 0) {
        return false;
    }
    stat64_add(&pl->stats->demand_pages, k);
    return true;
}

/*
 * Moving, at a fault in window [w0, w0 + MOVE_WINDOW_PAGES) of b, whose
 * set pages lie in [first, last] and which this thread claimed: read them
 * in one read into the thread's own window buffer (a fresh
 * huge page: the pages around the read are zero), check them, zero the
 * clear pages the read covered (the file's holes, or a live save's stale
 * slots), and move the window into guest RAM whole.  One read of 2 MiB at
 * most serves the fault and every later touch of the window, and the
 * window stays one huge page, where a fault served by its checksum run
 * leaves the window to be copied page by page behind it.  A move that
 * stops (a page there already) copies the rest.  The move wakes nobody:
 * the caller counts the pages first, then wakes the window's waiters, so
 * a guest that got its page finds it counted.  Returns pages placed, -1
 * with errp set.
 */
static int64_t serve_window(PostcopyLoad *pl, PcBlock *b, uint64_t w0, uint64_t first,
                            uint64_t last, GError **errp)
{
    uint64_t w1 = w0 + MOVE_WINDOW_PAGES, hashes[MOVE_WINDOW_PAGES];
    uint8_t *buf = pl->bufs + STREAM_SLOTS * MOVE_WINDOW_BYTES;
    int64_t moved = 0, copied = 0;
    uint64_t n = last - first + 1;
    if (!pread_all(pl->fd, buf + (first - w0) * PC_PAGE, n * PC_PAGE,
                   b->pages_offset + first * PC_PAGE, errp)) {
        madvise(buf, MOVE_WINDOW_BYTES, MADV_DONTNEED);
        return -1;
    }
    for (uint64_t s = first; s <= last;) {
        uint64_t e = find_next_zero_bit(b->bmap, last + 1, s);
        if (b->sums) {
            mrc_hash_pages(buf + (s - w0) * PC_PAGE, e - s, hashes + (s - w0));
        }
        s = find_next_bit(b->bmap, last + 1, e);
        memset(buf + (e - w0) * PC_PAGE, 0, (MIN(s, last + 1) - e) * PC_PAGE);
    }
    if (b->sums && !mrc_check_runs(b->sums, b->bmap, hashes, w0, MOVE_WINDOW_PAGES, errp)) {
        madvise(buf, MOVE_WINDOW_BYTES, MADV_DONTNEED);
        return -1;
    }
    struct uffdio_move m = {
        .dst = (uintptr_t)(b->host + w0 * PC_PAGE), .src = (uintptr_t)buf,
        .len = MOVE_WINDOW_BYTES,
        .mode = UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES | UFFDIO_MOVE_MODE_DONTWAKE,
    };
    uint64_t done = ioctl(pl->uffd, UFFDIO_MOVE, &m) == 0 ? MOVE_WINDOW_PAGES
                    : m.move > 0 ? (uint64_t)m.move / PC_PAGE : 0;
    moved = mark_placed(b, w0, w0 + done);
    stat64_sub(&pl->stats->remaining, (uint64_t)moved * PC_PAGE);
    if (done < MOVE_WINDOW_PAGES) {
        /* the rest of the read is still in buf: copy its set pages not there yet */
        uint64_t from = MAX(w0 + done, first);
        copied = from <= last ? window_place(pl, b, w0, w1, from, last + 1 - from,
                                             buf + (from - w0) * PC_PAGE, NULL, errp)
                              : 0;
        madvise(buf, MOVE_WINDOW_BYTES, MADV_DONTNEED);
    }
    return copied < 0 ? -1 : moved + copied;
}

static bool serve_fault(PostcopyLoad *pl, uintptr_t addr, uint8_t *buf, GError **errp)
{
    uint64_t page;
    PcBlock *b = block_of(pl, addr, &page);
    if (!b) {
        error_setg(errp, "Fault at 0x%" PRIxPTR " outside guest RAM", addr);
        return false;
    }
    stat64_add(&pl->stats->requests, 1);
    if (fault_hit("postcopy-fault-slow")) {
        g_usleep(2 * 1000);            /* tests: pages stay missing a while after RESUME */
    }
    bool ok = true;
    uint64_t w0 = page - page % MOVE_WINDOW_PAGES, first = 0, last = 0;
    struct uffdio_range r = { .start = (uintptr_t)b->host + page * PC_PAGE, .len = PC_PAGE };
    if (test_bit(page, b->bmap) && test_bit_atomic(page, b->placed)) {
        /* placed since the fault: only the wake below */
    } else if (pl->can_move && w0 + MOVE_WINDOW_PAGES <= b->npages &&
               !fault_hit("postcopy-fault-runs") &&
               window_set_pages(b, w0, w0 + MOVE_WINDOW_PAGES, &first, &last) &&
               !test_and_set_bit_atomic(w0 / MOVE_WINDOW_PAGES, b->claimed)) {
        int64_t k = serve_window(pl, b, w0, first, last, errp);
        ok = k >= 0;
        if (ok) {
            stat64_add(&pl->stats->demand_pages, k);
        }
        r = (struct uffdio_range){ .start = (uintptr_t)b->host + w0 * PC_PAGE,
                                   .len = MOVE_WINDOW_BYTES };
    } else {
        set_bit_atomic(page / MOVE_WINDOW_PAGES, b->faulted);
        ok = test_bit(page, b->bmap) ? serve_data(pl, b, page, buf, errp)
                                     : serve_zero(pl, b, page, errp);
    }
    if (!ok) {
        prefix_page(errp, b, page);
        return false;
    }
    /*
     * the page may have come from the background between the fault and
     * now; a window moved in whole woke nobody yet
     */
    ioctl(pl->uffd, UFFDIO_WAKE, &r);
    return true;
}

/*
 * A thread (tid; 0 where the kernel does not say) waits for good on a
 * page the failed load will not bring: its owner must stop waiting for
 * it (a vCPU counts as parked, a pmemsave gives up).
 */
static void report_blocked(PostcopyLoad *pl, int tid)
{
    if (!pl->blocked) {
        return;
    }
    qemu_mutex_lock(&pl->lock);
    g_autofree char *why = g_strdup(pl->err ? pl->err->message : "On-demand load stopped");
    qemu_mutex_unlock(&pl->lock);
    pl->blocked(pl->blocked_opaque, tid, why);
}

/* Returns false when the thread must end. */
static bool fault_wait(PostcopyLoad *pl)
{
    struct pollfd p[2] = { { pl->uffd, POLLIN, 0 }, { pl->wake_fd, POLLIN, 0 } };
    while (poll(p, 2, -1) < 0) {
        if (errno != EINTR) {
            set_error(pl, g_error_new(G_FILE_ERROR, 0, "poll on userfaultfd failed: %s",
                                      g_strerror(errno)));
            return false;
        }
    }
    return !(p[1].revents & POLLIN);
}

static gpointer fault_thread(gpointer opaque)
{
    PostcopyLoad *pl = opaque;
    uint8_t *buf = qemu_memalign(PC_PAGE, FAULT_WINDOW_PAGES * PC_PAGE);

    while (fault_wait(pl)) {
        struct uffd_msg msg;
        ssize_t n = read(pl->uffd, &msg, sizeof(msg));
        if (n != sizeof(msg) || msg.event != UFFD_EVENT_PAGEFAULT) {
            continue;                    /* EAGAIN: another wake-up took it */
        }
        /* never a wrong page: after a failure the faulting thread waits for good */
        GError *err = NULL;
        if (has_failed(pl) ||
            !serve_fault(pl, (uintptr_t)msg.arg.pagefault.address, buf, &err)) {
            if (err) {
                set_error(pl, err);
            }
            report_blocked(pl, pl->thread_ids ? (int)msg.arg.pagefault.feat.ptid : 0);
        }
    }
    qemu_vfree(buf);
    return NULL;
}

/* ---- setup and teardown ---- */

PostcopyLoad *postcopy_load_new(const char *path, PostcopyStats *stats,
                                PostcopyBlockedFn blocked, void *blocked_opaque, GError **errp)
{
    int uffd = uffd_open(errp);
    if (uffd < 0) {
        return NULL;
    }
    bool can_move, thread_ids;
    if (!uffd_api(uffd, &can_move, &thread_ids, errp)) {
        close(uffd);
        return NULL;
    }
    int fd = qemu_open(path, O_RDONLY, 0, errp);
    if (fd < 0) {
        close(uffd);
        return NULL;
    }
    int lock_fd;
    if (!mapped_ram_lock_reader(fd, "restore on demand from the migration file", &lock_fd,
                                errp)) {
        qemu_close(fd);
        close(uffd);
        return NULL;
    }
    PostcopyLoad *pl = g_new0(PostcopyLoad, 1);
    pl->uffd = uffd;
    pl->fd = fd;
    pl->lock_fd = lock_fd;
    pl->wake_fd = eventfd(0, EFD_CLOEXEC);
    /* MAPRAM_UFFD_MOVE=0: the copy path on a kernel that could move (tests) */
    pl->can_move = can_move && g_strcmp0(getenv("MAPRAM_UFFD_MOVE"), "0");
    pl->thread_ids = thread_ids;
    pl->blocked = blocked;
    pl->blocked_opaque = blocked_opaque;
    pl->stats = stats;
    pl->blocks = g_ptr_array_new();
    qemu_mutex_init(&pl->lock);
    return pl;
}

bool postcopy_load_add_block(PostcopyLoad *pl, const char *idstr, uint8_t *host,
                             uint64_t used_length, bool private_anon, uint64_t pages_offset,
                             unsigned long *bmap, const MrcBlock *sums, GError **errp)
{
    PcBlock *b = g_new0(PcBlock, 1);
    b->idstr = g_strdup(idstr);
    b->host = host;
    b->npages = used_length / PC_PAGE;
    b->pages_offset = pages_offset;
    b->bmap = bmap;
    b->sums = sums;
    b->placed = bitmap_new(b->npages);
    b->faulted = bitmap_new((b->npages + MOVE_WINDOW_PAGES - 1) / MOVE_WINDOW_PAGES);
    b->claimed = bitmap_new((b->npages + MOVE_WINDOW_PAGES - 1) / MOVE_WINDOW_PAGES);
    g_ptr_array_add(pl->blocks, b);

    uint64_t bytes = bitmap_count_one(bmap, b->npages) * PC_PAGE;
    stat64_add(&pl->stats->total, bytes);
    stat64_add(&pl->stats->remaining, bytes);
    if (!empty_range(idstr, host, used_length, private_anon, errp) ||
        !uffd_register(pl->uffd, idstr, host, used_length, &pl->can_move, errp)) {
        return false;
    }
    pl->registered = true;
    return true;
}

PageStats *postcopy_load_page_stats(PostcopyLoad *pl)
{
    return &pl->page_stats;
}

void postcopy_load_start(PostcopyLoad *pl, const PageChannelsConfig *cfg, MrcTable *csum)
{
    pl->pc_cfg = *cfg;
    pl->pc_cfg.path = g_strdup(cfg->path);
    pl->csum = csum;
    if (pl->can_move) {
        /* moving needs private anonymous memory, aligned as guest RAM's huge pages */
        pl->map_len = (STREAM_SLOTS + 2) * MOVE_WINDOW_BYTES;
        pl->map = mmap(NULL, pl->map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                       -1, 0);
        if (pl->map == MAP_FAILED) {
            pl->map = NULL;
            pl->can_move = false;
        } else {
            pl->bufs = (uint8_t *)(((uintptr_t)pl->map + MOVE_WINDOW_BYTES - 1) &
                                   ~(uintptr_t)(MOVE_WINDOW_BYTES - 1));
            madvise(pl->map, pl->map_len, MADV_HUGEPAGE);
        }
    }
    int dio_fd = cfg->direct_io ? qemu_open(cfg->path, O_RDONLY | O_DIRECT, 0, NULL) : -1;
    if (dio_fd >= 0) {
        qemu_close(pl->fd);
        pl->fd = dio_fd;
    }
    pl->fault_thread = g_thread_new("postcopy/fault", fault_thread, pl);
}

static void stop_fault_thread(PostcopyLoad *pl)
{
    if (pl->fault_thread) {
        uint64_t one = 1;
        if (write(pl->wake_fd, &one, sizeof(one)) != sizeof(one)) {
            g_assert_not_reached();
        }
        g_thread_join(pl->fault_thread);
        pl->fault_thread = NULL;
    }
    if (pl->map) {
        munmap(pl->map, pl->map_len);
        pl->map = NULL;
    }
}

/* Every waiter wakes and takes a kernel zero page: only where no data is due. */
static void unregister_all(PostcopyLoad *pl)
{
    for (guint i = 0; pl->registered && i < pl->blocks->len; i++) {
        PcBlock *b = g_ptr_array_index(pl->blocks, i);
        struct uffdio_range r = { .start = (uintptr_t)b->host, .len = b->npages * PC_PAGE };
        ioctl(pl->uffd, UFFDIO_UNREGISTER, &r);
    }
    pl->registered = false;
}

void postcopy_load_free(PostcopyLoad *pl)
{
    if (!pl) {
        return;
    }
    stop_fault_thread(pl);
    if (pl->pc) {
        page_channels_abort(pl->pc);
        page_channels_free(pl->pc);
    }
    /* closing the fd ends the registration and lets any waiter go (we are exiting) */
    if (pl->uffd >= 0) {
        close(pl->uffd);
    }
    if (pl->fd >= 0) {
        qemu_close(pl->fd);        /* a dup from an fdset leaves the set with it */
    }
    if (pl->lock_fd >= 0) {
        close(pl->lock_fd);
    }
    close(pl->wake_fd);
    for (guint i = 0; i < pl->blocks->len; i++) {
        PcBlock *b = g_ptr_array_index(pl->blocks, i);
        g_free(b->idstr);
        g_free(b->bmap);
        g_free(b->placed);
        g_free(b->faulted);
        g_free(b->claimed);
        g_free(b);
    }
    g_ptr_array_unref(pl->blocks);
    mrc_table_free(pl->csum);
    g_free((char *)pl->pc_cfg.path);
    if (pl->err) {
        g_error_free(pl->err);
    }
    qemu_mutex_destroy(&pl->lock);
    g_free(pl);
}

/*
 * The last page is in and no fault can come: the page threads, the file's
 * fds and the userfaultfd go now rather than at the VM's exit, so a
 * deleted image frees its disk space and a save may write the file.
 */
static void release_io(PostcopyLoad *pl)
{
    page_channels_free(pl->pc);
    pl->pc = NULL;
    close(pl->uffd);
    pl->uffd = -1;
    qemu_close(pl->fd);
    pl->fd = -1;
    if (pl->lock_fd >= 0) {
        close(pl->lock_fd);
        pl->lock_fd = -1;
    }
}

/* ---- the background stream (the incoming thread) ---- */

typedef struct StreamSlot {
    /*
     * A window's pages, aligned for O_DIRECT.  Moving: MOVE_WINDOW_BYTES,
     * aligned to them, page w0 at buf and the reads at their offsets; the
     * pages they do not cover are holes, or the kernel's fresh zero pages
     * of the huge page the reads faulted in, or (dirty) the bytes of the
     * window copied from buf before.  Copying: page first at buf.
     */
    uint8_t *buf;
    uint64_t hashes[MOVE_WINDOW_PAGES];
    PageSeg segs[SLOT_MAX_SEGS];  /* the window's reads */
    unsigned nsegs;
    /*
     * Bit r: checksum run r of the window is not read, since the fault
     * thread placed (and checked) all its set pages before the window was
     * queued.  Placed pages stay placed, so a copy steps over them.
     */
    uint32_t skip;
    bool dirty;                   /* moving: buf holds a copied window's pages (window_move) */
    PageBatch batch;
    PcBlock *b;                   /* NULL: free */
    bool queued;                  /* batch handed to the page channels, not yet settled */
    uint64_t w0, w1, first, n;
} StreamSlot;

G_STATIC_ASSERT(MOVE_WINDOW_PAGES / MRC_RUN_PAGES <= 32);

/* The runs of the slot's window (of b) that were read, against the table. */
static bool slot_check_runs(const StreamSlot *s, const PcBlock *b, GError **errp)
{
    for (unsigned r = 0; s->w0 + r * MRC_RUN_PAGES < s->w1; r++) {
        uint64_t r0 = s->w0 + r * MRC_RUN_PAGES;
        if (!(s->skip & (1u << r)) &&
            !mrc_check_runs(b->sums, b->bmap, s->hashes + r * MRC_RUN_PAGES, r0,
                            MIN(MRC_RUN_PAGES, s->w1 - r0), errp)) {
            return false;
        }
    }
    return true;
}

static bool slot_finish(PostcopyLoad *pl, StreamSlot *s, GError **errp)
{
    PcBlock *b = s->b;
    s->b = NULL;
    if (!page_channels_wait_batch(pl->pc, &s->batch, errp)) {
        prefix_page(errp, b, s->first);
        return false;
    }
    int64_t k = -1;
    if (!b->sums || slot_check_runs(s, b, errp)) {
        k = pl->can_move
            ? window_move(pl, b, s->w0, s->w1, s->first, s->n, s->segs, s->nsegs, s->buf,
                          &s->dirty, errp)
            : window_place(pl, b, s->w0, s->w1, s->first, s->n, s->buf, NULL, errp);
    }
    if (k < 0) {
        prefix_page(errp, b, s->first);
        return false;
    }
    stat64_add(&pl->stats->background_pages, k);
    return true;
}

/* The first page of [p, end) to read: a set page outside the skipped runs; end if none. */
static uint64_t next_to_read(const PcBlock *b, uint64_t w0, uint32_t skip, uint64_t p,
                             uint64_t end)
{
    while ((p = find_next_bit(b->bmap, end, p)) < end) {
        uint64_t r = (p - w0) / MRC_RUN_PAGES;
        if (!(skip & (1u << r))) {
            return p;
        }
        p = w0 + (r + 1) * MRC_RUN_PAGES;
    }
    return end;
}

/* The first page of [p, end) not to read: clear, or in a skipped run; end if none. */
static uint64_t next_not_read(const PcBlock *b, uint64_t w0, uint32_t skip, uint64_t p,
                              uint64_t end)
{
    while (p < end) {
        uint64_t r = (p - w0) / MRC_RUN_PAGES;
        uint64_t run_end = MIN(w0 + (r + 1) * MRC_RUN_PAGES, end);
        if (skip & (1u << r)) {
            return p;
        }
        uint64_t z = find_next_zero_bit(b->bmap, run_end, p);
        if (z < run_end) {
            return z;
        }
        p = run_end;
    }
    return end;
}

/*
 * Queue the reads of window [w0, w1) of b (set pages first..last); a
 * window whose set pages turn out to be all placed queues nothing and
 * leaves s free.
 */
static bool slot_queue(PostcopyLoad *pl, StreamSlot *s, PcBlock *b, uint64_t w0, uint64_t w1,
                       uint64_t first, uint64_t last, GError **errp)
{
    uint32_t skip = 0;
    if (test_bit_atomic(w0 / MOVE_WINDOW_PAGES, b->faulted)) {
        for (unsigned r = 0; w0 + r * MRC_RUN_PAGES < w1; r++) {
            uint64_t r0 = w0 + r * MRC_RUN_PAGES;
            if (window_placed(b, r0, MIN(r0 + MRC_RUN_PAGES, w1))) {
                skip |= 1u << r;
            }
        }
        first = next_to_read(b, w0, skip, first, last + 1);
        if (first > last) {
            return true;
        }
    }
    s->b = b;
    s->w0 = w0;
    s->w1 = w1;
    s->skip = skip;
    s->first = first;
    s->n = last - first + 1;
    s->nsegs = 0;
    s->batch = (PageBatch){ 0 };
    s->queued = false;
    /*
     * the set runs of [first, last] outside the skipped runs, gaps of up
     * to SEG_GAP_PAGES read through
     */
    uint64_t origin = pl->can_move ? w0 : first;
    for (uint64_t r0 = first; r0 <= last;) {
        uint64_t r1 = next_not_read(b, w0, skip, r0, last + 1), next;
        while ((next = next_to_read(b, w0, skip, r1, last + 1)) <= last &&
               next - r1 <= SEG_GAP_PAGES) {
            r1 = next_not_read(b, w0, skip, next, last + 1);
        }
        g_assert(s->nsegs < SLOT_MAX_SEGS);
        s->segs[s->nsegs++] = (PageSeg){
            .buf = s->buf + (r0 - origin) * PC_PAGE,
            .len = (r1 - r0) * PC_PAGE, .off = b->pages_offset + r0 * PC_PAGE,
            .hashes = b->sums ? s->hashes + (r0 - w0) : NULL,
        };
        r0 = next;
    }
    if (!page_channels_queue_batch(pl->pc, false, s->segs, s->nsegs, &s->batch, errp)) {
        s->b = NULL;
        prefix_page(errp, b, first);
        return false;
    }
    s->queued = true;
    return true;
}

static bool stream_all(PostcopyLoad *pl, StreamSlot *slots, const int *stop, GError **errp)
{
    unsigned next = 0;
    uint64_t window = pl->can_move ? MOVE_WINDOW_PAGES : STREAM_WINDOW_PAGES;
    for (guint i = 0; i < pl->blocks->len; i++) {
        PcBlock *b = g_ptr_array_index(pl->blocks, i);
        for (uint64_t w0 = 0; w0 < b->npages; w0 += window) {
            uint64_t w1 = MIN(w0 + window, b->npages), first, last;
            if (__atomic_load_n(stop, __ATOMIC_ACQUIRE) || has_failed(pl)) {
                return false;
            }
            if (!window_set_pages(b, w0, w1, &first, &last) || window_placed(b, w0, w1)) {
                continue;
            }
            if (fault_hit("postcopy-background-slow")) {
                g_usleep(50 * 1000);       /* tests: the guest runs long before the pages arrive */
            }
            if (fault_hit("postcopy-background-stall")) {
                g_usleep(G_USEC_PER_SEC);  /* tests: pages stay missing until the guest runs */
            }
            if (pl->can_move && test_and_set_bit_atomic(w0 / window, b->claimed)) {
                continue;                  /* the fault thread reads it whole */
            }
            StreamSlot *s = &slots[next];
            next = (next + 1) % STREAM_SLOTS;
            if ((s->b && !slot_finish(pl, s, errp)) ||
                !slot_queue(pl, s, b, w0, w1, first, last, errp)) {
                return false;
            }
        }
    }
    return true;
}

/* The first error of either thread into errp; false. */
static bool report_error(PostcopyLoad *pl, GError **errp)
{
    qemu_mutex_lock(&pl->lock);
    if (pl->err) {
        g_propagate_error(errp, g_error_copy(pl->err));
    } else {
        error_setg(errp, "On-demand load stopped");
    }
    qemu_mutex_unlock(&pl->lock);
    return false;
}

bool postcopy_load_stream(PostcopyLoad *pl, const int *stop, GError **errp)
{
    StreamSlot *slots = g_new0(StreamSlot, STREAM_SLOTS);
    GError *err = NULL;
    /* opened only now, behind the running guest (0.5-2 ms here; ~20 ms a channel once) */
    pl->pc = page_channels_new(&pl->pc_cfg, &err);
    if (!pl->pc) {
        g_prefix_error(&err, "On-demand load: ");
        set_error(pl, err);
        g_free(slots);
        return report_error(pl, errp);
    }
    for (unsigned i = 0; i < STREAM_SLOTS; i++) {
        slots[i].buf = pl->can_move ? pl->bufs + i * MOVE_WINDOW_BYTES
                                    : qemu_memalign(PC_PAGE, STREAM_WINDOW_PAGES * PC_PAGE);
    }
    bool ok = stream_all(pl, slots, stop, &err);
    if (!ok) {
        page_channels_abort(pl->pc);
    }
    for (unsigned i = 0; i < STREAM_SLOTS; i++) {
        GError *e = NULL;
        if (slots[i].b && !slot_finish(pl, &slots[i], ok ? &e : NULL) && ok) {
            ok = false;
            err = e;
        }
        /* after a failure its read may still be landing in buf */
        if (slots[i].queued) {
            page_channels_settle_batch(pl->pc, &slots[i].batch);
        }
        if (!pl->can_move) {
            qemu_vfree(slots[i].buf);
        }
    }
    if (pl->can_move) {
        /* the slots' pages go now; the mapping goes with the fault thread */
        madvise(pl->bufs, STREAM_SLOTS * MOVE_WINDOW_BYTES, MADV_DONTNEED);
    }
    g_free(slots);
    if (err) {
        set_error(pl, err);
    }
    if (ok && !has_failed(pl)) {
        /* the fault thread first: a zero page it places must not race the unregister */
        stop_fault_thread(pl);
        if (!has_failed(pl)) {
            unregister_all(pl);
            release_io(pl);
            return true;
        }
    }
    return report_error(pl, errp);
}
