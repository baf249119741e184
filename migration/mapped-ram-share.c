/*
 * The shared restore (x-mapped-ram-shared).  See mapped-ram-share.h.
 */
#include "mapped-ram-share.h"
#include "util/bitmap.h"
#include "util/error.h"
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define SHARE_PAGE ((uint64_t)4096)

/* Overlays of one block before clear runs are zeroed by a write instead. */
#define SHARE_MAX_OVERLAYS 8192

/*
 * Pages [a, b) read as zero: an anonymous mapping over them (nothing
 * allocated until written), or past the cap a memset (a private copy of
 * each page: the kernel's map count stays bounded).
 */
static bool zero_pages(const char *idstr, uint8_t *host, uint64_t a, uint64_t b,
                       unsigned *overlays, GError **errp)
{
    uint8_t *p = host + a * SHARE_PAGE;
    size_t len = (b - a) * SHARE_PAGE;

    if (*overlays < SHARE_MAX_OVERLAYS) {
        if (mmap(p, len, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0) == MAP_FAILED) {
            error_setg(errp, "Cannot map RAM block '%s' from the migration file: %s", idstr,
                       g_strerror(errno));
            return false;
        }
        /* A new mapping: keep it out of children, as ram_block_map did. */
        madvise(p, len, MADV_DONTFORK);
        (*overlays)++;
        return true;
    }
    memset(p, 0, len);
    return true;
}

/* Clear pages whose slots in [d, h) of the file hold data: zero them. */
static bool zero_stale(const char *idstr, uint8_t *host, uint64_t npages,
                       uint64_t pages_offset, const unsigned long *bmap, uint64_t d, uint64_t h,
                       unsigned *overlays, GError **errp)
{
    uint64_t first = (d - pages_offset) / SHARE_PAGE;
    uint64_t end = MIN(npages, (h - pages_offset + SHARE_PAGE - 1) / SHARE_PAGE);

    for (uint64_t a = find_next_zero_bit(bmap, end, first); a < end;) {
        uint64_t b = find_next_bit(bmap, end, a);
        if (!zero_pages(idstr, host, a, b, overlays, errp)) {
            return false;
        }
        a = b < end ? find_next_zero_bit(bmap, end, b) : end;
    }
    return true;
}

bool mapped_ram_share_block(int fd, const char *idstr, uint8_t *host, uint64_t used_length,
                            const MappedRamHeader *hdr, const unsigned long *bmap,
                            GError **errp)
{
    uint64_t npages = used_length / SHARE_PAGE;
    uint64_t po = hdr->pages_offset;
    unsigned overlays = 0;
    struct stat st;

    if (po % SHARE_PAGE || hdr->page_size != SHARE_PAGE) {
        error_setg(errp, "Cannot map RAM block '%s' from the migration file: its pages start "
                   "at offset 0x%" PRIx64 ", not on a 4096-byte boundary", idstr, po);
        return false;
    }
    if (fstat(fd, &st) < 0) {
        error_setg(errp, "Cannot map RAM block '%s' from the migration file: %s", idstr,
                   g_strerror(errno));
        return false;
    }
    uint64_t size = st.st_size;
    /* Pages whose slots lie wholly in the file; a set bit past them is a short file. */
    uint64_t in_file = size > po ? MIN(npages, (size - po) / SHARE_PAGE) : 0;
    uint64_t late = find_next_bit(bmap, npages, in_file);
    if (late < npages) {
        error_setg(errp, "RAM block '%s': page at offset 0x%" PRIx64 " lies beyond the end "
                   "of the file (0x%" PRIx64 " bytes)", idstr, late * SHARE_PAGE, size);
        return false;
    }
    if (in_file) {
        if (mmap(host, in_file * SHARE_PAGE, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_FIXED | MAP_NORESERVE, fd, po) == MAP_FAILED) {
            error_setg(errp, "Cannot map RAM block '%s' from the migration file: %s", idstr,
                       g_strerror(errno));
            return false;
        }
        madvise(host, in_file * SHARE_PAGE, MADV_DONTFORK);
    }
    /* Past the file's end: clear pages, which a file mapping would fault as SIGBUS. */
    if (in_file < npages && !zero_pages(idstr, host, in_file, npages, &overlays, errp)) {
        return false;
    }
    /*
     * Clear pages read as zero.  A slot that is a hole reads as zero through
     * the mapping already; one that holds data (a live save cleared its bit
     * in a later pass, or the file was reused) gets zero pages over it.
     */
    uint64_t end = po + in_file * SHARE_PAGE;
    for (uint64_t pos = po; pos < end;) {
        off_t d = lseek(fd, pos, SEEK_DATA);
        if (d < 0 && errno == ENXIO) {
            break;                              /* only holes from pos on */
        }
        if (d < 0) {
            d = pos;                            /* cannot tell: count it as data */
        }
        if ((uint64_t)d >= end) {
            break;
        }
        off_t h = lseek(fd, d, SEEK_HOLE);
        uint64_t hend = h < 0 ? end : MIN((uint64_t)h, end);
        if (!zero_stale(idstr, host, in_file, po, bmap, d, hend, &overlays, errp)) {
            return false;
        }
        pos = hend;
    }
    return true;
}

/*
 * A new open file description of fd's file (flock() locks belong to those:
 * a lock taken through a dup, or an fdset's fd, would be converted or
 * dropped by whoever shares it).
 */
static int reopen(int fd)
{
    g_autofree char *path = g_strdup_printf("/proc/self/fd/%d", fd);
    struct stat st;

    /* only a regular file can back guest RAM (and a FIFO's open could block) */
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        errno = EINVAL;
        return -1;
    }
    return open(path, O_RDONLY | O_CLOEXEC);
}

bool mapped_ram_share_lock(int fd, int *lock_fd, GError **errp)
{
    int own = reopen(fd);

    if (own < 0) {
        error_setg(errp, "Cannot lock the migration file: %s", g_strerror(errno));
        return false;
    }
    if (flock(own, LOCK_SH | LOCK_NB) < 0) {
        int e = errno;
        close(own);
        if (e == EWOULDBLOCK) {
            error_setg(errp, "%s", MAPPED_RAM_SHARE_BUSY);
        } else {
            error_setg(errp, "Cannot lock the migration file: %s", g_strerror(e));
        }
        return false;
    }
    *lock_fd = own;
    return true;
}

bool mapped_ram_lock_reader(int fd, const char *use, int *lock_fd, GError **errp)
{
    int own = reopen(fd);

    *lock_fd = -1;
    if (own < 0) {
        return true;                            /* nothing a save locks either */
    }
    if (flock(own, LOCK_SH | LOCK_NB) == 0) {
        *lock_fd = own;
        return true;
    }
    int e = errno;
    close(own);
    if (e != EWOULDBLOCK) {
        return true;                            /* no flock() here (e.g. ENOLCK) */
    }
    error_setg(errp, "Cannot %s: another process holds it locked for writing", use);
    return false;
}

/*
 * An exclusive lock on fd's file, held by *lock_fd (-1 where fd is not a
 * regular file that can be reopened, or the file system has no flock()).
 */
static bool lock_writer(int fd, const char *path, int *lock_fd, GError **errp)
{
    int own = reopen(fd);

    *lock_fd = -1;
    if (own < 0) {
        return true;                            /* not a file we can reopen: nothing maps it */
    }
    if (flock(own, LOCK_EX | LOCK_NB) == 0) {
        *lock_fd = own;
        return true;
    }
    int e = errno;
    /* shared holders are restores; a writer's exclusive lock keeps out a shared one too */
    bool writer = e == EWOULDBLOCK && flock(own, LOCK_SH | LOCK_NB) < 0 && errno == EWOULDBLOCK;
    close(own);
    if (e != EWOULDBLOCK) {
        return true;                            /* no flock() here (e.g. ENOLCK): as before locks */
    }
    if (writer) {
        error_setg(errp, "File '%s' is being written by another save: two saves into one "
                   "file would destroy each other", path);
    } else {
        error_setg(errp, "File '%s' backs the memory of a VM restored from it (with "
                   "x-mapped-ram-shared, on demand, or by mapram serve): writing it would "
                   "change that VM's memory", path);
    }
    return false;
}

bool mapped_ram_share_lock_writer(IOChannel *ioc, const char *path, GError **errp)
{
    int lock_fd;

    if (!lock_writer(io_channel_get_fd(ioc), path, &lock_fd, errp)) {
        return false;
    }
    if (lock_fd >= 0) {
        io_channel_set_companion_fd(ioc, lock_fd);
    }
    return true;
}
