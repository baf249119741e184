/*
 * libaio backend (Linux native AIO, IOCB_CMD_PWRITEV/PREADV).  Only
 * truly asynchronous with O_DIRECT; on buffered files io_submit does the
 * copy itself, which is still correct.  iocbs live beside the slots, one
 * per slot, so nothing is allocated per request.
 */
#include <errno.h>
#include <libaio.h>
#include <string.h>

#include "aio-internal.h"
#include "util/error.h"

typedef struct AioLinux {
    io_context_t ctx;
    struct iocb *iocbs;         /* one per slot, same index */
    struct iocb **pending;      /* prepared, not yet accepted by io_submit */
    unsigned npending;
    unsigned batch;
    bool flushing;              /* linux_flush is on the stack */
    unsigned submitted;         /* accepted by the kernel, not reaped */
    struct io_event *events;
} AioLinux;

static bool linux_init(AioEngine *e, GError **errp)
{
    AioLinux *a = g_new0(AioLinux, 1);
    int ret = io_setup(e->depth, &a->ctx);

    if (ret < 0) {
        error_setg_errno(errp, -ret, "Unable to set up Linux AIO with %u entries", e->depth);
        g_free(a);
        return false;
    }
    a->iocbs = g_new0(struct iocb, e->depth);
    a->pending = g_new0(struct iocb *, e->depth);
    a->events = g_new0(struct io_event, e->depth);
    a->batch = MAX(1, e->depth / 4);
    e->backend = a;
    return true;
}

static void linux_cleanup(AioEngine *e)
{
    AioLinux *a = e->backend;

    io_destroy(a->ctx);
    g_free(a->iocbs);
    g_free(a->pending);
    g_free(a->events);
    g_free(a);
}

static void linux_queue(AioEngine *e, AioSlot *s);

static void linux_complete(AioEngine *e, AioSlot *s, ssize_t res)
{
    if (!aio_slot_complete(e, s, res)) {
        linux_queue(e, s);
    }
}

/* Reap at least min_nr completions (blocking); -errno on failure. */
static int linux_reap(AioEngine *e, long min_nr)
{
    AioLinux *a = e->backend;
    int n;

    do {
        n = io_getevents(a->ctx, min_nr, e->depth, a->events, NULL);
    } while (n == -EINTR);
    if (n < 0) {
        return n;
    }
    /*
     * A short completion is queued again, which can flush, and a flush
     * that meets EAGAIN reaps: this loop works on its own copy, so that a
     * nested reap's events do not overwrite the ones not yet handled.
     */
    g_autofree struct io_event *ev = g_memdup2(a->events, n * sizeof(*ev));
    for (int i = 0; i < n; i++) {
        AioSlot *s = ev[i].data;

        a->submitted--;
        linux_complete(e, s, (ssize_t)(long)ev[i].res);
    }
    return 0;
}

/*
 * Hand the pending iocbs to the kernel.  io_submit may take only some;
 * a negative return is the error of the first one, which is completed
 * with it (e.g. -EBADF for a write to a read-only fd) before going on.
 */
static int linux_flush(AioEngine *e)
{
    AioLinux *a = e->backend;
    int err = 0;

    if (a->flushing) {
        return 0;               /* the outer loop takes what we queued */
    }
    a->flushing = true;
    while (a->npending) {
        int ret = io_submit(a->ctx, a->npending, a->pending);

        if (ret > 0) {
            a->submitted += ret;
            a->npending -= ret;
            memmove(a->pending, a->pending + ret, a->npending * sizeof(*a->pending));
        } else if (ret == -EINTR) {
            continue;
        } else if (ret == -EAGAIN && a->submitted) {
            err = linux_reap(e, 1);
            if (err < 0) {
                break;
            }
        } else {
            struct iocb *cb = a->pending[0];

            if (ret == 0) {
                ret = -EAGAIN;  /* nothing taken: retry it like EAGAIN */
            }
            if (ret == -EAGAIN) {
                g_usleep(100);  /* nothing in flight to wait for: back off, not spin */
            }
            a->npending--;
            memmove(a->pending, a->pending + 1, a->npending * sizeof(*a->pending));
            linux_complete(e, cb->data, ret);
        }
    }
    a->flushing = false;
    return err;
}

static void linux_queue(AioEngine *e, AioSlot *s)
{
    AioLinux *a = e->backend;
    struct iocb *cb = &a->iocbs[aio_slot_index(e, s)];
    struct iovec *iov = (struct iovec *)aio_slot_iov(s);

    if (s->write) {
        io_prep_pwritev(cb, e->fd, iov, aio_slot_niov(s), s->off);
    } else {
        io_prep_preadv(cb, e->fd, iov, aio_slot_niov(s), s->off);
    }
    cb->data = s;
    a->pending[a->npending++] = cb;
    if (a->npending >= a->batch) {
        /* A failure here resurfaces, and is reported, in linux_wait. */
        linux_flush(e);
    }
}

static bool linux_wait(AioEngine *e, GError **errp)
{
    AioLinux *a = e->backend;
    int ret = linux_flush(e);

    if (ret == 0 && a->submitted) {
        ret = linux_reap(e, 1);
    }
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Unable to complete Linux AIO requests");
        return false;
    }
    return true;
}

const AioBackendOps aio_linux_ops = {
    .name = "libaio",
    .init = linux_init,
    .cleanup = linux_cleanup,
    .queue = linux_queue,
    .wait = linux_wait,
};
