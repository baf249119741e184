/*
 * Synchronous backend: each request is done with pwritev/preadv when
 * queued.  The fallback when no async backend is built or the kernel
 * refuses one; correct everywhere, parallel only across threads.
 */
#include <errno.h>
#include <unistd.h>

#include "aio-internal.h"

static bool sync_init(AioEngine *e, GError **errp)
{
    return true;
}

static void sync_cleanup(AioEngine *e)
{
}

static void sync_queue(AioEngine *e, AioSlot *s)
{
    ssize_t n;

    do {
        n = s->write ? pwritev(e->fd, aio_slot_iov(s), aio_slot_niov(s), s->off)
                     : preadv(e->fd, aio_slot_iov(s), aio_slot_niov(s), s->off);
        if (n < 0) {
            n = -errno;
        }
    } while (!aio_slot_complete(e, s, n));
}

static bool sync_wait(AioEngine *e, GError **errp)
{
    return true;        /* nothing is ever in flight */
}

const AioBackendOps aio_sync_ops = {
    .name = "sync",
    .init = sync_init,
    .cleanup = sync_cleanup,
    .queue = sync_queue,
    .wait = sync_wait,
};
