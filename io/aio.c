/*
 * AioEngine core: backend choice, request slots, splitting of long
 * iovec arrays, requeueing of short completions and the latched first
 * error.  Backends (aio-uring.c, aio-linux.c, aio-sync.c) only talk to
 * the kernel; meson builds a stub in place of a backend whose library is
 * missing, so nothing here depends on the build configuration.
 */
#include <stdlib.h>
#include <string.h>

#include "aio-internal.h"
#include "util/error.h"

static const AioBackendOps *backend_ops(AioBackend b)
{
    switch (b) {
    case AIO_BACKEND_URING:
        return &aio_uring_ops;
    case AIO_BACKEND_LIBAIO:
        return &aio_linux_ops;
    case AIO_BACKEND_SYNC:
        return &aio_sync_ops;
    default:
        return NULL;
    }
}

/* MAPRAM_AIO picks the backend for AUTO, so tests can run every one. */
static bool backend_from_env(AioBackend *b, GError **errp)
{
    static const struct {
        const char *name;
        AioBackend backend;
    } names[] = {
        { "auto", AIO_BACKEND_AUTO },
        { "uring", AIO_BACKEND_URING },
        { "io_uring", AIO_BACKEND_URING },
        { "libaio", AIO_BACKEND_LIBAIO },
        { "sync", AIO_BACKEND_SYNC },
    };
    const char *env = getenv("MAPRAM_AIO");

    if (!env || !*env) {
        return true;
    }
    for (size_t i = 0; i < G_N_ELEMENTS(names); i++) {
        if (strcmp(env, names[i].name) == 0) {
            *b = names[i].backend;
            return true;
        }
    }
    error_setg(errp, "Invalid MAPRAM_AIO value '%s' (expected uring, libaio or sync)", env);
    return false;
}

static void aio_engine_release(AioEngine *e)
{
    g_free(e->slots);
    g_free(e->free_slots);
    g_free(e);
}

static bool aio_engine_try(AioEngine *e, const AioBackendOps *ops, GError **errp)
{
    e->ops = ops;
    e->backend = NULL;
    return ops->init(e, errp);
}

AioEngine *aio_engine_new(int fd, unsigned queue_depth, AioBackend backend, GError **errp)
{
    AioEngine *e;
    bool ok;

    if (backend == AIO_BACKEND_AUTO && !backend_from_env(&backend, errp)) {
        return NULL;
    }
    e = g_new0(AioEngine, 1);
    e->fd = fd;
    e->depth = queue_depth ? queue_depth : 1;

    if (backend == AIO_BACKEND_AUTO) {
        /* Quietly fall back: a kernel or sandbox may refuse io_uring. */
        ok = aio_engine_try(e, &aio_uring_ops, NULL) ||
             aio_engine_try(e, &aio_linux_ops, NULL) ||
             aio_engine_try(e, &aio_sync_ops, errp);
    } else if (backend_ops(backend)) {
        ok = aio_engine_try(e, backend_ops(backend), errp);
    } else {
        error_setg(errp, "Unknown AIO backend %d", (int)backend);
        ok = false;
    }
    if (!ok) {
        aio_engine_release(e);
        return NULL;
    }
    if (e->ops == &aio_sync_ops) {
        /* it does each request as it is queued: one slot is all it ever holds */
        e->depth = 1;
    }
    /*
     * Neither zeroed nor touched here (4 KiB each, 1 MiB at a depth of
     * 256): a slot's fields are all set when it is submitted.
     */
    e->slots = g_new(AioSlot, e->depth);
    e->free_slots = g_new(unsigned, e->depth);
    for (unsigned i = 0; i < e->depth; i++) {
        e->free_slots[i] = e->depth - 1 - i;
    }
    e->nfree = e->depth;
    return e;
}

const char *aio_engine_backend_name(const AioEngine *e)
{
    return e->ops->name;
}

unsigned aio_engine_queue_depth(const AioEngine *e)
{
    return e->depth;
}

static bool aio_engine_busy(const AioEngine *e)
{
    return e->nfree < e->depth;
}

/* Wait for at least one completion; a backend failure latches as the error. */
static bool aio_engine_wait(AioEngine *e)
{
    GError *err = NULL;

    if (e->ops->wait(e, &err)) {
        return true;
    }
    if (!e->error) {
        e->error = err;
    } else {
        g_error_free(err);
    }
    return false;
}

static bool aio_engine_report(AioEngine *e, GError **errp)
{
    if (e->error) {
        g_propagate_error(errp, g_error_copy(e->error));
        return false;
    }
    return true;
}

void aio_engine_free(AioEngine *e)
{
    if (!e) {
        return;
    }
    /* The kernel may still write into caller buffers: wait it out. */
    while (aio_engine_busy(e) && aio_engine_wait(e)) {
    }
    e->ops->cleanup(e);
    g_clear_error(&e->error);
    aio_engine_release(e);
}

static void aio_slot_release(AioEngine *e, AioSlot *s)
{
    e->free_slots[e->nfree++] = aio_slot_index(e, s);
}

static void aio_latch_error(AioEngine *e, const AioSlot *s, const char *fmt, int err)
{
    if (e->error) {
        return;
    }
    if (err) {
        e->error = g_error_new(MAPRAM_ERROR, QMP_ERROR_GENERIC, "%s 0x%llx: %s", fmt,
                               (unsigned long long)s->off, g_strerror(err));
    } else {
        e->error = g_error_new(MAPRAM_ERROR, QMP_ERROR_GENERIC, "%s 0x%llx", fmt,
                               (unsigned long long)s->off);
    }
}

/* Move the slot past n transferred bytes; true when nothing is left. */
static bool aio_slot_advance(AioSlot *s, size_t n)
{
    s->off += n;
    while (s->first < s->niov && n >= s->iov[s->first].iov_len) {
        n -= s->iov[s->first].iov_len;
        s->first++;
    }
    if (s->first == s->niov) {
        return true;
    }
    s->iov[s->first].iov_base = (char *)s->iov[s->first].iov_base + n;
    s->iov[s->first].iov_len -= n;
    return false;
}

bool aio_slot_complete(AioEngine *e, AioSlot *s, ssize_t res)
{
    const char *what = s->write ? "Unable to write to file at offset"
                                : "Unable to read from file at offset";

    if (res == -EINTR || res == -EAGAIN) {
        return false;
    }
    if (res < 0) {
        aio_latch_error(e, s, what, (int)-res);
    } else if (res == 0) {
        /* A write of nothing would spin forever: call it a full disk. */
        if (s->write) {
            aio_latch_error(e, s, what, ENOSPC);
        } else {
            aio_latch_error(e, s, "Unexpected end of file at offset", 0);
        }
    } else if (!aio_slot_advance(s, res)) {
        return false;
    }
    aio_slot_release(e, s);
    return true;
}

static AioSlot *aio_slot_get(AioEngine *e)
{
    while (!e->nfree) {
        if (!aio_engine_wait(e)) {
            return NULL;
        }
    }
    return &e->slots[e->free_slots[--e->nfree]];
}

static bool aio_engine_submit(AioEngine *e, bool write, const struct iovec *iov,
                              int niov, off_t off, GError **errp)
{
    if (!aio_engine_report(e, errp)) {
        return false;
    }
    while (niov > 0 && !e->error) {
        unsigned chunk = MIN((unsigned)niov, AIO_SLOT_IOV_MAX);
        size_t len = 0;
        AioSlot *s = aio_slot_get(e);

        if (!s) {
            break;
        }
        s->write = write;
        s->off = off;
        s->first = 0;
        s->niov = 0;
        for (unsigned i = 0; i < chunk; i++) {
            if (iov[i].iov_len) {
                s->iov[s->niov++] = iov[i];
                len += iov[i].iov_len;
            }
        }
        if (s->niov) {
            e->ops->queue(e, s);
        } else {
            aio_slot_release(e, s);
        }
        off += len;
        iov += chunk;
        niov -= chunk;
    }
    return aio_engine_report(e, errp);
}

bool aio_engine_pwritev(AioEngine *e, const struct iovec *iov, int niov, off_t off,
                        GError **errp)
{
    return aio_engine_submit(e, true, iov, niov, off, errp);
}

bool aio_engine_preadv(AioEngine *e, const struct iovec *iov, int niov, off_t off,
                       GError **errp)
{
    return aio_engine_submit(e, false, iov, niov, off, errp);
}

bool aio_engine_drain(AioEngine *e, GError **errp)
{
    while (aio_engine_busy(e)) {
        if (!aio_engine_wait(e)) {
            break;
        }
    }
    return aio_engine_report(e, errp);
}
