/*
 * Guest RAM blocks: host mappings, the ordered list, the dirty log.
 *
 * Mappings come from mmap so they are page aligned, which lets O_DIRECT
 * reads and writes use guest memory as their buffer without a bounce.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "system/ramblock.h"
#include "util/cutils.h"
#include "util/error.h"

/* Filled before any thread starts, freed after they are joined. */
static GPtrArray *ram_list;

size_t ram_block_count(void)
{
    return ram_list ? ram_list->len : 0;
}

RAMBlock *ram_block_at(size_t i)
{
    if (!ram_list || i >= ram_list->len) {
        return NULL;
    }
    return g_ptr_array_index(ram_list, i);
}

RAMBlock *ram_block_by_name(const char *idstr)
{
    for (size_t i = 0; i < ram_block_count(); i++) {
        RAMBlock *rb = ram_block_at(i);
        if (strcmp(rb->idstr, idstr) == 0) {
            return rb;
        }
    }
    return NULL;
}

uint64_t ram_bytes_total(void)
{
    uint64_t total = 0;

    for (size_t i = 0; i < ram_block_count(); i++) {
        total += ram_block_at(i)->used_length;
    }
    return total;
}

/*
 * A file backend given a directory gets an unlinked temporary file in
 * it, as QEMU's memory-backend-file does for hugetlbfs mount points.
 */
static int open_backing_file(const char *mem_path, bool *created, GError **errp)
{
    struct stat st;
    int fd;

    if (stat(mem_path, &st) == 0 && S_ISDIR(st.st_mode)) {
        g_autofree char *tmpl = g_build_filename(mem_path, "mapram_backing_XXXXXX", NULL);
        fd = g_mkstemp_full(tmpl, O_RDWR | O_CLOEXEC, 0600);
        if (fd < 0) {
            error_setg_errno(errp, errno, "Could not create a file in '%s'", mem_path);
            return -1;
        }
        unlink(tmpl);
        *created = true;
        return fd;
    }
    fd = open(mem_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        error_setg_errno(errp, errno, "can't open backing store %s for guest RAM",
                         mem_path);
        return -1;
    }
    *created = false;
    return fd;
}

/*
 * Backing fd for "memfd"/"file", -1 for "ram" (anonymous memory).
 * *stale: the memory starts with the bytes of an existing file rather
 * than zeros.
 */
static int ram_backend_open(const char *idstr, uint64_t size, const char *backend,
                            const char *mem_path, bool *stale, GError **errp)
{
    bool created = false;
    struct stat st;
    int fd;

    if (strcmp(backend, "ram") == 0) {
        return -1;
    }
    if (strcmp(backend, "memfd") == 0) {
        fd = memfd_create(idstr, MFD_CLOEXEC);
        if (fd < 0) {
            error_setg_errno(errp, errno, "failed to create memfd for '%s'", idstr);
            return -1;
        }
    } else {
        fd = open_backing_file(mem_path, &created, errp);
        if (fd < 0) {
            return -1;
        }
    }
    if (fstat(fd, &st) < 0) {
        error_setg_errno(errp, errno, "failed to stat the backing store of '%s'", idstr);
        close(fd);
        return -1;
    }
    *stale = !created && (!S_ISREG(st.st_mode) || st.st_size > 0);
    /* as QEMU: a file with data is never grown, only a new or empty one */
    if (st.st_size > 0 && (uint64_t)st.st_size < size) {
        error_setg(errp, "backing store size 0x%llx does not match 'size' option 0x%llx",
                   (unsigned long long)st.st_size, (unsigned long long)size);
        close(fd);
        return -1;
    }
    if ((uint64_t)st.st_size < size && ftruncate(fd, size) < 0) {
        error_setg_errno(errp, errno, "failed to resize the backing store of '%s'",
                         idstr);
        close(fd);
        return -1;
    }
    return fd;
}

static bool ram_block_map(RAMBlock *rb, GError **errp)
{
    int flags = rb->shared ? MAP_SHARED : MAP_PRIVATE;
    void *p;

    if (rb->fd < 0) {
        flags |= MAP_ANONYMOUS | MAP_NORESERVE;
    }
    p = mmap(NULL, rb->max_length, PROT_READ | PROT_WRITE, flags, rb->fd, 0);
    if (p == MAP_FAILED) {
        error_setg_errno(errp, errno, "cannot set up guest memory '%s'", rb->idstr);
        return false;
    }
    rb->host = p;
    /* As QEMU does: fewer TLB misses for a guest that sweeps its RAM. */
    madvise(p, rb->max_length, MADV_HUGEPAGE);
    /*
     * As QEMU does: a child of fork() gets no copy of guest RAM.  exec:
     * no longer forks (posix_spawn), but a library or an embedding VMM
     * may; such a fork copied the page tables of every guest page (0.15 s
     * per 8 GiB without huge pages, with the mm locked against the vCPUs)
     * and left each page write-protected, to fault on the guest's next
     * write.
     */
    madvise(p, rb->max_length, MADV_DONTFORK);
    return true;
}

/* Largest first; equal sizes keep insertion order. */
static void ram_list_insert(RAMBlock *rb)
{
    guint i;

    if (!ram_list) {
        ram_list = g_ptr_array_new();
    }
    for (i = 0; i < ram_list->len; i++) {
        RAMBlock *other = g_ptr_array_index(ram_list, i);
        if (other->max_length < rb->max_length) {
            break;
        }
    }
    g_ptr_array_insert(ram_list, i, rb);
}

static void ram_block_free(RAMBlock *rb)
{
    if (rb->host) {
        munmap(rb->host, rb->max_length);
    }
    if (rb->fd >= 0) {
        close(rb->fd);
    }
    g_free(rb->dirty_log);
    g_free(rb);
}

/*
 * Every page of the backing file's data extents dirty: the holes of a
 * file made with `truncate -s` read as zero and need no clearing (a
 * load would otherwise read the whole file to find that out).  A file
 * system or device that cannot say where its data is gets every page.
 */
static void ram_block_dirty_data(RAMBlock *rb)
{
    off_t end = rb->max_length, pos = 0;

    while (pos < end) {
        off_t data = lseek(rb->fd, pos, SEEK_DATA);
        if (data < 0) {
            if (errno != ENXIO) {               /* ENXIO: no data from pos on */
                ram_block_dirty_all(rb);
            }
            return;
        }
        if (data >= end) {
            return;
        }
        off_t hole = lseek(rb->fd, data, SEEK_HOLE);
        if (hole < 0) {
            ram_block_dirty_all(rb);
            return;
        }
        hole = MIN(hole, end);
        for (uint64_t p = data >> TARGET_PAGE_BITS;
             p < (uint64_t)DIV_ROUND_UP(hole, TARGET_PAGE_SIZE); p++) {
            set_bit_atomic(p, rb->dirty_log);
        }
        pos = hole;
    }
}

RAMBlock *ram_block_add(const char *idstr, uint64_t size, uint64_t gpa,
                        const char *backend, bool shared, const char *mem_path,
                        GError **errp)
{
    g_autofree RAMBlock *rb = g_new0(RAMBlock, 1);
    bool stale = false;

    if (ram_block_by_name(idstr)) {
        error_setg(errp, "RAM block '%s' already exists", idstr);
        return NULL;
    }
    if (strlen(idstr) >= sizeof(rb->idstr)) {
        error_setg(errp, "RAM block name '%s' is too long", idstr);
        return NULL;
    }
    if (size == 0) {
        error_setg(errp, "can't create backend with size 0");
        return NULL;
    }
    if (strcmp(backend, "file") == 0 && !mem_path) {
        error_setg(errp, "mem-path property not set");
        return NULL;
    }
    g_strlcpy(rb->idstr, idstr, sizeof(rb->idstr));
    rb->used_length = rb->max_length = ROUND_UP(size, TARGET_PAGE_SIZE);
    rb->gpa = gpa;
    rb->shared = shared;
    rb->fd = ram_backend_open(idstr, rb->max_length, backend, mem_path, &stale, errp);
    if (rb->fd < 0 && strcmp(backend, "ram") != 0) {
        return NULL;
    }
    if (!ram_block_map(rb, errp)) {
        if (rb->fd >= 0) {
            close(rb->fd);
        }
        return NULL;
    }
    rb->dirty_log = bitmap_new(ram_block_pages(rb));
    if (stale) {
        /*
         * The dirty log is also what a load trusts to tell which pages can
         * be non-zero (a mapped-ram load zeroes only those of its clear
         * pages); a file that held data before the VM started may have
         * anything in its data extents.
         */
        ram_block_dirty_data(rb);
    }
    ram_list_insert(rb);
    return g_steal_pointer(&rb);
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

typedef struct PreallocRange {
    uint8_t *start;
    size_t len;
    int err;            /* errno of the first failure, 0 if none */
} PreallocRange;

static gpointer prealloc_thread(gpointer opaque)
{
    PreallocRange *r = opaque;
    size_t done = 0;

    while (done < r->len) {
        /* in slices, so a signal or a huge block does not restart from 0 */
        size_t n = MIN(r->len - done, 256 * MiB);
        if (madvise(r->start + done, n, MADV_POPULATE_WRITE) == 0) {
            done += n;
            continue;
        }
        if (errno == EINTR || errno == EAGAIN) {
            continue;
        }
        if (errno != EINVAL) {
            r->err = errno;
            return NULL;
        }
        /* kernels before 5.14: touch each page, keeping what it holds */
        for (size_t off = done; off < r->len; off += TARGET_PAGE_SIZE) {
            volatile uint8_t *p = r->start + off;
            *p = *p;
        }
        return NULL;
    }
    return NULL;
}

bool ram_block_prealloc(RAMBlock *rb, unsigned threads, GError **errp)
{
    /* 2 MiB slices keep transparent huge pages whole within one thread */
    size_t unit = 2 * MiB;
    size_t units = DIV_ROUND_UP(rb->max_length, unit);
    g_autofree PreallocRange *r = NULL;
    g_autofree GThread **t = NULL;
    int err = 0;

    threads = MAX(1, MIN(threads, units));
    r = g_new0(PreallocRange, threads);
    t = g_new0(GThread *, threads);
    for (unsigned i = 0; i < threads; i++) {
        size_t first = units * i / threads * unit;
        size_t last = MIN(units * (i + 1) / threads * unit, rb->max_length);
        r[i] = (PreallocRange) { rb->host + first, last - first, 0 };
        t[i] = g_thread_new("prealloc", prealloc_thread, &r[i]);
    }
    for (unsigned i = 0; i < threads; i++) {
        g_thread_join(t[i]);
        if (r[i].err && !err) {
            err = r[i].err;
        }
    }
    if (err) {
        error_setg_errno(errp, err, "qemu_prealloc_mem: preallocating memory failed");
        return false;
    }
    return true;
}

void ram_blocks_free_all(void)
{
    if (!ram_list) {
        return;
    }
    for (guint i = 0; i < ram_list->len; i++) {
        ram_block_free(g_ptr_array_index(ram_list, i));
    }
    g_ptr_array_free(ram_list, TRUE);
    ram_list = NULL;
}

size_t ram_block_sync_dirty_log(RAMBlock *rb, unsigned long *dest)
{
    return bitmap_harvest_atomic(dest, rb->dirty_log,
                                 BITS_TO_LONGS(ram_block_pages(rb)));
}

/* Atomic per word: vCPUs keep setting bits in the same words meanwhile. */
void ram_block_dirty_all(RAMBlock *rb)
{
    size_t pages = ram_block_pages(rb);
    size_t full = pages / BITS_PER_LONG;

    for (size_t i = 0; i < full; i++) {
        __atomic_fetch_or(&rb->dirty_log[i], ~0UL, __ATOMIC_RELAXED);
    }
    if (pages % BITS_PER_LONG) {
        unsigned long tail = (1UL << (pages % BITS_PER_LONG)) - 1;
        __atomic_fetch_or(&rb->dirty_log[full], tail, __ATOMIC_RELAXED);
    }
}

RAMBlock *guest_ram_lookup(uint64_t gpa, uint64_t *offset_in_block)
{
    for (size_t i = 0; i < ram_block_count(); i++) {
        RAMBlock *rb = ram_block_at(i);
        if (gpa >= rb->gpa && gpa - rb->gpa < rb->used_length) {
            if (offset_in_block) {
                *offset_in_block = gpa - rb->gpa;
            }
            return rb;
        }
    }
    return NULL;
}

/*
 * Data first, then the dirty bits: a harvest that clears a bit before
 * the copy finished sees the bit set again afterwards.
 */
void guest_write(RAMBlock *rb, uint64_t off, const void *buf, size_t len)
{
    uint64_t first, last;

    g_assert(off <= rb->used_length && len <= rb->used_length - off);
    if (len == 0) {
        return;
    }
    tsan_ignore_begin();            /* see guest_write_u8() */
    memcpy(rb->host + off, buf, len);
    tsan_ignore_end();
    first = off >> TARGET_PAGE_BITS;
    last = (off + len - 1) >> TARGET_PAGE_BITS;
    for (uint64_t page = first; page <= last; page++) {
        set_bit_release(page, rb->dirty_log);
    }
}
