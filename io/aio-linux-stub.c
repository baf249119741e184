/*
 * Built in place of aio-linux.c when meson finds no libaio: the backend
 * exists but refuses to start, so AUTO falls through to the next one and
 * an explicit request says why.
 */
#include "aio-internal.h"
#include "util/error.h"

static bool stub_init(AioEngine *e, GError **errp)
{
    error_setg(errp, "AIO backend 'libaio' is not built in (no libaio)");
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

const AioBackendOps aio_linux_ops = {
    .name = "libaio",
    .init = stub_init,
    .cleanup = stub_cleanup,
    .queue = stub_queue,
    .wait = stub_wait,
};
