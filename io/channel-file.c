/*
 * File channel: an fd on a file, block device, pipe or anything else
 * read()/write() work on.  Features come from what the fd is, not from
 * what the caller asked for: an fdset may hand us a pipe.
 */
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "channel-fd.h"
#include "io/channel.h"
#include "util/error.h"
#include "util/osdep.h"

typedef struct IOChannelFile {
    IOChannel parent;
    int fd;                     /* owned; -1 once closed */
} IOChannelFile;

static int file_fd(IOChannel *ioc)
{
    return ((IOChannelFile *)ioc)->fd;
}

static ssize_t file_readv(IOChannel *ioc, const struct iovec *iov, size_t niov,
                          GError **errp)
{
    ssize_t n = io_fd_readv(file_fd(ioc), iov, niov);

    if (n < 0) {
        error_setg_errno(errp, errno, "Unable to read from file");
    }
    return n;
}

static ssize_t file_writev(IOChannel *ioc, const struct iovec *iov, size_t niov,
                           GError **errp)
{
    ssize_t n = io_fd_writev(file_fd(ioc), iov, niov);

    if (n < 0) {
        error_setg_errno(errp, errno, "Unable to write to file");
    }
    return n;
}

static ssize_t file_preadv(IOChannel *ioc, const struct iovec *iov, size_t niov,
                           off_t off, GError **errp)
{
    ssize_t n = io_fd_preadv(file_fd(ioc), iov, niov, off);

    if (n < 0) {
        error_setg_errno(errp, errno, "Unable to read from file at offset 0x%llx",
                         (unsigned long long)off);
    }
    return n;
}

static ssize_t file_pwritev(IOChannel *ioc, const struct iovec *iov, size_t niov,
                            off_t off, GError **errp)
{
    ssize_t n = io_fd_pwritev(file_fd(ioc), iov, niov, off);

    if (n < 0) {
        error_setg_errno(errp, errno, "Unable to write to file at offset 0x%llx",
                         (unsigned long long)off);
    }
    return n;
}

static off_t file_seek(IOChannel *ioc, off_t off, int whence, GError **errp)
{
    off_t ret = lseek(file_fd(ioc), off, whence);

    if (ret < 0) {
        error_setg_errno(errp, errno, "Unable to seek to offset %lld whence %d in file",
                         (long long)off, whence);
    }
    return ret;
}

static off_t file_size(IOChannel *ioc, GError **errp)
{
    struct stat st;

    if (fstat(file_fd(ioc), &st) < 0) {
        error_setg_errno(errp, errno, "Unable to get the size of '%s'", ioc->name);
        return -1;
    }
    /* A block device's st_size is 0 and a pipe's means nothing. */
    if (!S_ISREG(st.st_mode)) {
        error_setg(errp, "Unable to get the size of '%s': not a regular file", ioc->name);
        return -1;
    }
    return st.st_size;
}

static int file_truncate(IOChannel *ioc, off_t len, GError **errp)
{
    int ret;

    do {
        ret = ftruncate(file_fd(ioc), len);
    } while (ret < 0 && errno == EINTR);
    if (ret < 0) {
        error_setg_errno(errp, errno, "Unable to truncate '%s' to %lld bytes",
                         ioc->name, (long long)len);
    }
    return ret;
}

static int file_sync(IOChannel *ioc, GError **errp)
{
    if (qemu_fdatasync(file_fd(ioc)) < 0) {
        int saved_errno = errno;

        error_setg_errno(errp, saved_errno, "Unable to sync '%s' to disk", ioc->name);
        errno = saved_errno;
        return -1;
    }
    return 0;
}

static int file_close(IOChannel *ioc, GError **errp)
{
    IOChannelFile *fioc = (IOChannelFile *)ioc;
    int fd = fioc->fd;

    fioc->fd = -1;
    if (fd >= 0 && qemu_close(fd) < 0 && errno != EINTR) {
        error_setg_errno(errp, errno, "Unable to close file");
        return -1;
    }
    return 0;
}

static void file_finalize(IOChannel *ioc)
{
}

static const IOChannelOps file_ops = {
    .kind = "file",
    .readv = file_readv,
    .writev = file_writev,
    .close = file_close,
    .finalize = file_finalize,
    .preadv = file_preadv,
    .pwritev = file_pwritev,
    .seek = file_seek,
    .get_fd = file_fd,
    .size = file_size,
    .truncate = file_truncate,
    .sync = file_sync,
};

/* A failing fstat or lseek leaves the channel unseekable, which is safe. */
static unsigned file_features(int fd)
{
    struct stat st;

    if (fstat(fd, &st) == 0 && (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode)) &&
        lseek(fd, 0, SEEK_CUR) >= 0) {
        return IO_CHANNEL_FEATURE_SEEKABLE;
    }
    return 0;
}

IOChannel *io_channel_file_new_fd(int fd, const char *name)
{
    IOChannelFile *fioc = g_new0(IOChannelFile, 1);

    io_channel_init(&fioc->parent, &file_ops, name);
    fioc->fd = fd;
    fioc->parent.features = file_features(fd);
    return &fioc->parent;
}

IOChannel *io_channel_file_new_dup(int fd, const char *name, GError **errp)
{
    int dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);

    if (dup_fd < 0) {
        error_setg_errno(errp, errno, "Unable to duplicate file descriptor %d for '%s'",
                         fd, name);
        return NULL;
    }
    return io_channel_file_new_fd(dup_fd, name);
}

IOChannel *io_channel_file_open(const char *path, int flags, mode_t mode, GError **errp)
{
    int fd = qemu_open(path, flags, mode, errp);

    if (fd < 0) {
        return NULL;
    }
    return io_channel_file_new_fd(fd, path);
}
