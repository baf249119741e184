/*
 * File opening with /dev/fdset/N support, aligned allocation.
 *
 * The fdset provider is registered once by the monitor before any
 * thread starts (a registry, not mutable state), so reading it needs no
 * lock.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/error.h"
#include "util/fault.h"
#include "util/osdep.h"

#define FDSET_PREFIX "/dev/fdset/"

static const FdsetProvider *fdset_provider;

void qemu_set_fdset_provider(const FdsetProvider *p)
{
    fdset_provider = p;
}

static int open_cloexec(const char *name, int flags, mode_t mode)
{
    int fd;

    do {
        fd = open(name, flags | O_CLOEXEC, mode);
    } while (fd < 0 && errno == EINTR);
    return fd;
}

int qemu_fdatasync(int fd)
{
    int ret;

    if (fault_hit("save-fsync")) {
        errno = EIO;
        return -1;
    }
    do {
        ret = fdatasync(fd);
    } while (ret < 0 && errno == EINTR);
    return ret;
}

bool qemu_fsync_parent_dir(const char *path, GError **errp)
{
    if (g_str_has_prefix(path, "/dev/fdset/")) {
        return true;
    }
    g_autofree char *dir = g_path_get_dirname(path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int ret = fd < 0 ? -1 : 0;

    if (fd < 0 && (errno == EACCES || errno == EPERM)) {
        return true;    /* a directory one may write into but not read: the data is synced */
    }

    if (ret == 0 && fault_hit("save-fsync-dir")) {
        errno = EIO;
        ret = -1;
    }

    while (ret == 0 && fsync(fd) < 0) {
        if (errno != EINTR) {
            ret = errno == EINVAL ? 0 : -1;
            break;
        }
    }
    int saved_errno = errno;
    if (fd >= 0) {
        close(fd);
    }
    if (ret < 0) {
        error_setg_errno(errp, saved_errno, "Unable to sync the directory of '%s' to disk", path);
        return false;
    }
    return true;
}

int qemu_open(const char *name, int flags, mode_t mode, GError **errp)
{
    const char *action = (flags & O_CREAT) ? "create" : "open";
    int saved_errno;
    int fd;

    if (fdset_provider && g_str_has_prefix(name, FDSET_PREFIX)) {
        /* The provider owns the fdset messages of the reference. */
        return fdset_provider->open(name, flags | O_CLOEXEC, errp);
    }

    fd = open_cloexec(name, flags, mode);
    if (fd >= 0) {
        return fd;
    }
    saved_errno = errno;
    if (saved_errno == EINVAL && (flags & O_DIRECT)) {
        /*
         * Tell "this filesystem can't do O_DIRECT" apart from other
         * EINVALs by trying once more without it, as QEMU does.
         */
        fd = open_cloexec(name, flags & ~O_DIRECT, mode);
        if (fd >= 0) {
            close(fd);
            error_setg(errp, "Could not %s '%s': filesystem does not support O_DIRECT",
                       action, name);
            errno = EINVAL;
            return -1;
        }
    }
    error_setg_errno(errp, saved_errno, "Could not %s '%s'", action, name);
    errno = saved_errno;
    return -1;
}

int qemu_close(int fd)
{
    if (fdset_provider && fdset_provider->close) {
        fdset_provider->close(fd);
    }
    /* Never retry close() on EINTR: on Linux the fd is gone already. */
    return close(fd);
}

void *qemu_memalign(size_t align, size_t size)
{
    void *p = NULL;
    int ret;

    if (align < sizeof(void *)) {
        align = sizeof(void *);
    }
    ret = posix_memalign(&p, align, size ? size : align);
    if (ret) {
        g_error("qemu_memalign: failed to allocate %zu bytes aligned to %zu: %s",
                size, align, g_strerror(ret));
    }
    return p;
}

void qemu_vfree(void *p)
{
    free(p);
}

size_t qemu_real_host_page_size(void)
{
    static size_t page_size;
    size_t size = __atomic_load_n(&page_size, __ATOMIC_RELAXED);

    if (!size) {
        size = (size_t)sysconf(_SC_PAGESIZE);
        __atomic_store_n(&page_size, size, __ATOMIC_RELAXED);
    }
    return size;
}
