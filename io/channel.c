/*
 * IOChannel core: reference counting and the wrappers that are the only
 * callers of the vtable.  The wrappers check that an operation exists
 * (and, for positioned I/O, the SEEKABLE feature), so implementations
 * never see a call they did not declare; the *_all helpers are the one
 * place that loops over short transfers.  Implementations retry EINTR
 * themselves, at the syscall.
 */
#include <limits.h>
#include <string.h>
#include <unistd.h>

#include "io/channel.h"
#include "util/error.h"

/* Largest iovec count one syscall accepts; longer arrays go in slices. */
#define IO_IOV_MAX 1024

void io_channel_init(IOChannel *ioc, const IOChannelOps *ops, const char *name)
{
    ioc->ops = ops;
    ioc->features = 0;
    ioc->name = g_strdup(name ? name : ops->kind);
    ioc->refcount = 1;
    qemu_mutex_init(&ioc->lock);
    ioc->closed = false;
    ioc->companion_fd = -1;
}

void io_channel_set_companion_fd(IOChannel *ioc, int fd)
{
    g_assert(ioc->companion_fd < 0);
    ioc->companion_fd = fd;
}

IOChannel *io_channel_ref(IOChannel *ioc)
{
    g_atomic_int_inc(&ioc->refcount);
    return ioc;
}

void io_channel_unref(IOChannel *ioc)
{
    if (!ioc || !g_atomic_int_dec_and_test(&ioc->refcount)) {
        return;
    }
    if (!ioc->closed) {
        g_autoptr(GError) err = NULL;

        io_channel_close(ioc, &err);    /* nobody is left to hear it */
    }
    if (ioc->ops->finalize) {
        ioc->ops->finalize(ioc);
    }
    qemu_mutex_destroy(&ioc->lock);
    g_free(ioc->name);
    g_free(ioc);
}

bool io_channel_has_feature(IOChannel *ioc, IOChannelFeature f)
{
    return (ioc->features & f) == (unsigned)f;
}

void io_channel_set_name(IOChannel *ioc, const char *name)
{
    g_free(ioc->name);
    ioc->name = g_strdup(name);
}

int io_channel_get_fd(IOChannel *ioc)
{
    return ioc->ops->get_fd && !ioc->closed ? ioc->ops->get_fd(ioc) : -1;
}

static bool io_channel_check_open(IOChannel *ioc, GError **errp)
{
    if (ioc->closed) {
        error_setg(errp, "Channel '%s' is closed", ioc->name);
        return false;
    }
    return true;
}

static size_t iov_clamp(size_t niov)
{
    return niov > IO_IOV_MAX ? IO_IOV_MAX : niov;
}

ssize_t io_channel_readv(IOChannel *ioc, const struct iovec *iov, size_t niov, GError **errp)
{
    if (!io_channel_check_open(ioc, errp)) {
        return -1;
    }
    return ioc->ops->readv(ioc, iov, iov_clamp(niov), errp);
}

ssize_t io_channel_writev(IOChannel *ioc, const struct iovec *iov, size_t niov, GError **errp)
{
    if (!io_channel_check_open(ioc, errp)) {
        return -1;
    }
    return ioc->ops->writev(ioc, iov, iov_clamp(niov), errp);
}

static bool io_channel_can_position(IOChannel *ioc, bool write, GError **errp)
{
    bool has_op = write ? ioc->ops->pwritev != NULL : ioc->ops->preadv != NULL;

    if (!has_op || !io_channel_has_feature(ioc, IO_CHANNEL_FEATURE_SEEKABLE)) {
        error_setg(errp, "Channel does not support %s", write ? "pwritev" : "preadv");
        return false;
    }
    return io_channel_check_open(ioc, errp);
}

ssize_t io_channel_pwritev(IOChannel *ioc, const struct iovec *iov, size_t niov,
                           off_t off, GError **errp)
{
    if (!io_channel_can_position(ioc, true, errp)) {
        return -1;
    }
    return ioc->ops->pwritev(ioc, iov, iov_clamp(niov), off, errp);
}

ssize_t io_channel_preadv(IOChannel *ioc, const struct iovec *iov, size_t niov,
                          off_t off, GError **errp)
{
    if (!io_channel_can_position(ioc, false, errp)) {
        return -1;
    }
    return ioc->ops->preadv(ioc, iov, iov_clamp(niov), off, errp);
}

/*
 * A cursor over a caller's iovec array.  It starts on the caller's array
 * and copies it only when a transfer stops inside it, so the common
 * complete transfer costs no allocation.
 */
typedef struct IovCursor {
    const struct iovec *iov;
    size_t niov;
    struct iovec *copy;         /* owned, once a short transfer happened */
} IovCursor;

static void iov_cursor_init(IovCursor *c, const struct iovec *iov, size_t niov)
{
    c->iov = iov;
    c->niov = niov;
    c->copy = NULL;
    /* Skip empty entries so "niov == 0" means "done". */
    while (c->niov && c->iov[0].iov_len == 0) {
        c->iov++;
        c->niov--;
    }
}

static void iov_cursor_advance(IovCursor *c, size_t done)
{
    size_t skip = 0;

    while (skip < c->niov && done >= c->iov[skip].iov_len) {
        done -= c->iov[skip].iov_len;
        skip++;
    }
    if (skip == c->niov) {
        c->niov = 0;
        return;
    }
    if (!c->copy) {
        c->copy = g_memdup2(c->iov + skip, (c->niov - skip) * sizeof(struct iovec));
    } else {
        memmove(c->copy, c->iov + skip, (c->niov - skip) * sizeof(struct iovec));
    }
    c->niov -= skip;
    c->copy[0].iov_base = (char *)c->copy[0].iov_base + done;
    c->copy[0].iov_len -= done;
    c->iov = c->copy;
    while (c->niov && c->iov[0].iov_len == 0) {
        c->iov++;
        c->niov--;
    }
}

static void iov_cursor_release(IovCursor *c)
{
    g_free(c->copy);
}

static size_t iov_total(const struct iovec *iov, size_t niov)
{
    size_t len = 0;

    for (size_t i = 0; i < niov; i++) {
        len += iov[i].iov_len;
    }
    return len;
}

/*
 * Read the whole of iov.  Returns 1 when all was read, 0 on EOF before
 * the first byte, -1 on error (EOF after the first byte included).
 */
int io_channel_readv_all_eof(IOChannel *ioc, const struct iovec *iov, size_t niov,
                             GError **errp)
{
    IovCursor c;
    bool partial = false;
    int ret = 1;

    iov_cursor_init(&c, iov, niov);
    while (c.niov) {
        ssize_t n = io_channel_readv(ioc, c.iov, c.niov, errp);

        if (n < 0) {
            ret = -1;
            break;
        }
        if (n == 0) {
            if (partial) {
                error_setg(errp, "Unexpected end-of-file before all data were "
                           "read from channel '%s'", ioc->name);
                ret = -1;
            } else {
                ret = 0;
            }
            break;
        }
        partial = true;
        iov_cursor_advance(&c, n);
    }
    iov_cursor_release(&c);
    return ret;
}

int io_channel_read_all_eof(IOChannel *ioc, void *buf, size_t len, GError **errp)
{
    struct iovec iov = { .iov_base = buf, .iov_len = len };

    return io_channel_readv_all_eof(ioc, &iov, 1, errp);
}

bool io_channel_read_all(IOChannel *ioc, void *buf, size_t len, GError **errp)
{
    int ret = io_channel_read_all_eof(ioc, buf, len, errp);

    if (ret == 0) {
        error_setg(errp, "Unexpected end-of-file before all data were read "
                   "from channel '%s'", ioc->name);
    }
    return ret == 1;
}

bool io_channel_readv_all(IOChannel *ioc, const struct iovec *iov, size_t niov, GError **errp)
{
    int ret = io_channel_readv_all_eof(ioc, iov, niov, errp);

    if (ret == 0) {
        error_setg(errp, "Unexpected end-of-file before all data were read "
                   "from channel '%s'", ioc->name);
    }
    return ret == 1;
}

bool io_channel_writev_all(IOChannel *ioc, const struct iovec *iov, size_t niov,
                           GError **errp)
{
    IovCursor c;
    bool ok = true;

    iov_cursor_init(&c, iov, niov);
    while (c.niov) {
        ssize_t n = io_channel_writev(ioc, c.iov, c.niov, errp);

        if (n < 0) {
            ok = false;
            break;
        }
        iov_cursor_advance(&c, n);
    }
    iov_cursor_release(&c);
    return ok;
}

bool io_channel_write_all(IOChannel *ioc, const void *buf, size_t len, GError **errp)
{
    struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };

    return io_channel_writev_all(ioc, &iov, 1, errp);
}

bool io_channel_pwritev_all(IOChannel *ioc, const struct iovec *iov, size_t niov,
                            off_t off, GError **errp)
{
    IovCursor c;
    bool ok = true;

    if (!io_channel_can_position(ioc, true, errp)) {
        return false;
    }
    iov_cursor_init(&c, iov, niov);
    while (c.niov) {
        ssize_t n = io_channel_pwritev(ioc, c.iov, c.niov, off, errp);

        if (n < 0) {
            ok = false;
            break;
        }
        if (n == 0) {
            /* A regular file never does this; don't spin if one does. */
            error_setg(errp, "Unable to write to file at offset 0x%llx: %s",
                       (unsigned long long)off, g_strerror(ENOSPC));
            ok = false;
            break;
        }
        off += n;
        iov_cursor_advance(&c, n);
    }
    iov_cursor_release(&c);
    return ok;
}

bool io_channel_preadv_all(IOChannel *ioc, const struct iovec *iov, size_t niov,
                           off_t off, GError **errp)
{
    IovCursor c;
    bool ok = true;

    if (!io_channel_can_position(ioc, false, errp)) {
        return false;
    }
    iov_cursor_init(&c, iov, niov);
    while (c.niov) {
        ssize_t n = io_channel_preadv(ioc, c.iov, c.niov, off, errp);

        if (n < 0) {
            ok = false;
            break;
        }
        if (n == 0) {
            error_setg(errp, "Unexpected end of file at offset 0x%llx "
                       "(%zu bytes short) in channel '%s'",
                       (unsigned long long)off, iov_total(c.iov, c.niov), ioc->name);
            ok = false;
            break;
        }
        off += n;
        iov_cursor_advance(&c, n);
    }
    iov_cursor_release(&c);
    return ok;
}

bool io_channel_pwrite_all(IOChannel *ioc, const void *buf, size_t len, off_t off,
                           GError **errp)
{
    struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };

    return io_channel_pwritev_all(ioc, &iov, 1, off, errp);
}

bool io_channel_pread_all(IOChannel *ioc, void *buf, size_t len, off_t off, GError **errp)
{
    struct iovec iov = { .iov_base = buf, .iov_len = len };

    return io_channel_preadv_all(ioc, &iov, 1, off, errp);
}

off_t io_channel_seek(IOChannel *ioc, off_t off, int whence, GError **errp)
{
    if (!ioc->ops->seek || !io_channel_has_feature(ioc, IO_CHANNEL_FEATURE_SEEKABLE)) {
        error_setg(errp, "Requested channel is not seekable");
        return -1;
    }
    if (!io_channel_check_open(ioc, errp)) {
        return -1;
    }
    return ioc->ops->seek(ioc, off, whence, errp);
}

/* An optional op the kind lacks: refuse, naming the channel. */
static bool io_channel_check_op(IOChannel *ioc, bool has_op, const char *op,
                                GError **errp)
{
    if (!has_op) {
        error_setg(errp, "Channel '%s' does not support %s", ioc->name, op);
        errno = ENOTSUP;
        return false;
    }
    if (!io_channel_check_open(ioc, errp)) {
        errno = EBADF;
        return false;
    }
    return true;
}

off_t io_channel_size(IOChannel *ioc, GError **errp)
{
    if (!io_channel_check_op(ioc, ioc->ops->size != NULL, "size", errp)) {
        return -1;
    }
    return ioc->ops->size(ioc, errp);
}

bool io_channel_truncate(IOChannel *ioc, off_t len, GError **errp)
{
    if (!io_channel_check_op(ioc, ioc->ops->truncate != NULL, "truncate", errp)) {
        return false;
    }
    return ioc->ops->truncate(ioc, len, errp) == 0;
}

bool io_channel_truncate_for_write(IOChannel *ioc, off_t len, GError **errp)
{
    return io_channel_size(ioc, NULL) == len || io_channel_truncate(ioc, len, errp);
}

bool io_channel_sync(IOChannel *ioc, GError **errp)
{
    if (!io_channel_check_op(ioc, ioc->ops->sync != NULL, "sync", errp)) {
        return false;
    }
    return ioc->ops->sync(ioc, errp) == 0;
}

/*
 * Safe against a close in another thread: a channel with a reap (a
 * command still being waited for) is still shut down after its close.
 */
bool io_channel_shutdown(IOChannel *ioc, GError **errp)
{
    bool ok = true;

    if (!ioc->ops->shutdown || !io_channel_has_feature(ioc, IO_CHANNEL_FEATURE_SHUTDOWN)) {
        return true;
    }
    qemu_mutex_lock(&ioc->lock);
    if (!ioc->closed || ioc->ops->reap) {
        ok = ioc->ops->shutdown(ioc, errp) == 0;
    }
    qemu_mutex_unlock(&ioc->lock);
    return ok;
}

bool io_channel_close(IOChannel *ioc, GError **errp)
{
    if (ioc->closed) {
        return true;
    }
    qemu_mutex_lock(&ioc->lock);
    ioc->closed = true;
    bool ok = ioc->ops->close(ioc, errp) == 0;
    qemu_mutex_unlock(&ioc->lock);
    if (ioc->ops->reap) {
        GError *err = NULL;

        if (ioc->ops->reap(ioc, ok ? errp : &err) < 0) {
            ok = false;
        }
        g_clear_error(&err);
    }
    if (ioc->companion_fd >= 0) {
        close(ioc->companion_fd);
        ioc->companion_fd = -1;
    }
    return ok;
}
