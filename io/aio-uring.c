/*
 * io_uring backend.  Requests are prepared into the SQ and submitted in
 * batches (a quarter of the queue depth, or when we must wait anyway),
 * so a stream of 4 KiB..1 MiB page writes costs far fewer than one
 * syscall each.  The SQ has queue_depth entries and at most queue_depth
 * slots exist, so the SQ can only be full of our own unsubmitted work.
 */
#include <errno.h>
#include <liburing.h>

#include "aio-internal.h"
#include "util/error.h"

typedef struct AioUring {
    struct io_uring ring;
    unsigned batch;             /* submit once this many are prepared */
    unsigned prepared;          /* in the SQ, not yet submitted */
    unsigned inflight;          /* prepared or submitted, not completed */
} AioUring;

static bool uring_init(AioEngine *e, GError **errp)
{
    AioUring *u = g_new0(AioUring, 1);
    int ret = -EINVAL;

#ifdef IORING_SETUP_COOP_TASKRUN
    /* Completions are only reaped by us: no need for IPIs to deliver them. */
    ret = io_uring_queue_init(e->depth, &u->ring, IORING_SETUP_COOP_TASKRUN);
#endif
    if (ret == -EINVAL) {
        ret = io_uring_queue_init(e->depth, &u->ring, 0);
    }
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Unable to set up io_uring with %u entries", e->depth);
        g_free(u);
        return false;
    }
    u->batch = MAX(1, e->depth / 4);
    e->backend = u;
    return true;
}

static void uring_cleanup(AioEngine *e)
{
    AioUring *u = e->backend;

    io_uring_queue_exit(&u->ring);
    g_free(u);
}

static int uring_submit(AioUring *u, unsigned wait_nr)
{
    int ret;

    do {
        ret = wait_nr ? io_uring_submit_and_wait(&u->ring, wait_nr)
                      : io_uring_submit(&u->ring);
    } while (ret == -EINTR);
    if (ret >= 0) {
        u->prepared = 0;
    }
    return ret;
}

static void uring_queue(AioEngine *e, AioSlot *s)
{
    AioUring *u = e->backend;
    struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);

    if (!sqe) {
        uring_submit(u, 0);
        sqe = io_uring_get_sqe(&u->ring);
        g_assert(sqe);
    }
    if (s->write) {
        io_uring_prep_writev(sqe, e->fd, aio_slot_iov(s), aio_slot_niov(s), s->off);
    } else {
        io_uring_prep_readv(sqe, e->fd, aio_slot_iov(s), aio_slot_niov(s), s->off);
    }
    io_uring_sqe_set_data(sqe, s);
    u->prepared++;
    u->inflight++;
    if (u->prepared >= u->batch) {
        /* A failure here resurfaces, and is reported, in uring_wait. */
        uring_submit(u, 0);
    }
}

static bool uring_wait(AioEngine *e, GError **errp)
{
    AioUring *u = e->backend;
    struct io_uring_cqe *cqe;
    int ret;

    if (!u->inflight) {
        return true;
    }
    ret = uring_submit(u, 1);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Unable to submit to io_uring");
        return false;
    }
    while (io_uring_peek_cqe(&u->ring, &cqe) == 0) {
        AioSlot *s = io_uring_cqe_get_data(cqe);
        int res = cqe->res;

        io_uring_cqe_seen(&u->ring, cqe);
        u->inflight--;
        if (!aio_slot_complete(e, s, res)) {
            uring_queue(e, s);
        }
    }
    return true;
}

const AioBackendOps aio_uring_ops = {
    .name = "uring",
    .init = uring_init,
    .cleanup = uring_cleanup,
    .queue = uring_queue,
    .wait = uring_wait,
};
