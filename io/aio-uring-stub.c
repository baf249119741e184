/*
 * Built in place of aio-uring.c when meson finds no liburing: the backend
 * exists but refuses to start, so AUTO falls through to the next one and
 * an explicit request says why.
 */
#include "aio-internal.h"
#include "util/error.h"

static bool stub_init(AioEngine *e, GError **errp)
{
    error_setg(errp, "AIO backend 'io_uring' is not built in (no liburing)");
    return false;
}

static void stub_cleanup(AioEngine *e)
{
}

static void stub_queue(AioEngine *e, AioSlot *s)
{
    g_assert_not_reached();
}

static bool stub_wait(AioEngine *e, GError **errp)
{
    g_assert_not_reached();
}

const AioBackendOps aio_uring_ops = {
    .name = "uring",
    .init = stub_init,
    .cleanup = stub_cleanup,
    .queue = stub_queue,
    .wait = stub_wait,
};
