/*
 * Trickle channel: a wrapper that moves at most one byte per read or
 * write, positioned or not, and passes every other operation through.
 *
 * Real transports return short counts only now and then (a full pipe, a
 * signal, a socket buffer), so the paths that resume a transfer part-way
 * through an iovec are the ones tests reach least.  Over a trickle channel
 * every transfer of more than one byte is short, so a test that passes
 * over it has run each resume path at every byte.
 *
 * It calls its inner channel through the io_channel_* wrappers like any
 * other user, so the inner channel's checks and messages apply unchanged;
 * it carries the inner channel's name and features for the same reason.
 */
#include "io/channel.h"

typedef struct IOChannelTrickle {
    IOChannel parent;
    IOChannel *inner;           /* one reference, dropped at finalize */
} IOChannelTrickle;

static IOChannel *inner_of(IOChannel *ioc)
{
    return ((IOChannelTrickle *)ioc)->inner;
}

/*
 * The first byte that iov describes, or the whole (empty) array when it
 * describes none, so that an empty transfer still reaches the inner
 * channel and returns what it returns there.
 */
static size_t first_byte(const struct iovec *iov, size_t niov, struct iovec *one)
{
    for (size_t i = 0; i < niov; i++) {
        if (iov[i].iov_len) {
            *one = (struct iovec){ .iov_base = iov[i].iov_base, .iov_len = 1 };
            return 1;
        }
    }
    return 0;
}

static ssize_t trickle_readv(IOChannel *ioc, const struct iovec *iov, size_t niov,
                             GError **errp)
{
    struct iovec one;

    if (!first_byte(iov, niov, &one)) {
        return io_channel_readv(inner_of(ioc), iov, niov, errp);
    }
    return io_channel_readv(inner_of(ioc), &one, 1, errp);
}

static ssize_t trickle_writev(IOChannel *ioc, const struct iovec *iov, size_t niov,
                              GError **errp)
{
    struct iovec one;

    if (!first_byte(iov, niov, &one)) {
        return io_channel_writev(inner_of(ioc), iov, niov, errp);
    }
    return io_channel_writev(inner_of(ioc), &one, 1, errp);
}

static ssize_t trickle_preadv(IOChannel *ioc, const struct iovec *iov, size_t niov,
                              off_t off, GError **errp)
{
    struct iovec one;

    if (!first_byte(iov, niov, &one)) {
        return io_channel_preadv(inner_of(ioc), iov, niov, off, errp);
    }
    return io_channel_preadv(inner_of(ioc), &one, 1, off, errp);
}

static ssize_t trickle_pwritev(IOChannel *ioc, const struct iovec *iov, size_t niov,
                               off_t off, GError **errp)
{
    struct iovec one;

    if (!first_byte(iov, niov, &one)) {
        return io_channel_pwritev(inner_of(ioc), iov, niov, off, errp);
    }
    return io_channel_pwritev(inner_of(ioc), &one, 1, off, errp);
}

static off_t trickle_seek(IOChannel *ioc, off_t off, int whence, GError **errp)
{
    return io_channel_seek(inner_of(ioc), off, whence, errp);
}

static off_t trickle_size(IOChannel *ioc, GError **errp)
{
    return io_channel_size(inner_of(ioc), errp);
}

static int trickle_truncate(IOChannel *ioc, off_t len, GError **errp)
{
    return io_channel_truncate(inner_of(ioc), len, errp) ? 0 : -1;
}

static int trickle_sync(IOChannel *ioc, GError **errp)
{
    return io_channel_sync(inner_of(ioc), errp) ? 0 : -1;
}

static int trickle_shutdown(IOChannel *ioc, GError **errp)
{
    return io_channel_shutdown(inner_of(ioc), errp) ? 0 : -1;
}

static int trickle_get_fd(IOChannel *ioc)
{
    return io_channel_get_fd(inner_of(ioc));
}

static int trickle_close(IOChannel *ioc, GError **errp)
{
    return io_channel_close(inner_of(ioc), errp) ? 0 : -1;
}

static void trickle_finalize(IOChannel *ioc)
{
    io_channel_unref(inner_of(ioc));
}

static const IOChannelOps trickle_ops = {
    .kind = "trickle",
    .readv = trickle_readv,
    .writev = trickle_writev,
    .close = trickle_close,
    .finalize = trickle_finalize,
    .preadv = trickle_preadv,
    .pwritev = trickle_pwritev,
    .seek = trickle_seek,
    .shutdown = trickle_shutdown,
    .get_fd = trickle_get_fd,
    .size = trickle_size,
    .truncate = trickle_truncate,
    .sync = trickle_sync,
};

IOChannel *io_channel_trickle_new(IOChannel *inner)
{
    IOChannelTrickle *t = g_new0(IOChannelTrickle, 1);

    io_channel_init(&t->parent, &trickle_ops, inner->name);
    t->parent.features = inner->features;
    t->inner = inner;
    return &t->parent;
}
