/*
 * Internal to io/aio*.c: the engine's request slots and the backend
 * vtable.  aio.c owns slots, splitting, requeueing and errors; a backend
 * only moves slots to the kernel and hands completions back through
 * aio_slot_complete().
 *
 * A slot is one positioned request of at most AIO_SLOT_IOV_MAX buffers.
 * The engine preallocates queue_depth of them so the hot path (4 GiB of
 * O_DIRECT page writes) never allocates.
 */
#ifndef IO_AIO_INTERNAL_H
#define IO_AIO_INTERNAL_H

#include "io/aio.h"

/* 256 x 4 KiB pages = 1 MiB, the largest run the savers build anyway. */
#define AIO_SLOT_IOV_MAX 256

typedef struct AioSlot {
    bool write;
    off_t off;                  /* file offset of iov[first] */
    unsigned first;             /* first iovec not yet transferred */
    unsigned niov;
    struct iovec iov[AIO_SLOT_IOV_MAX];
} AioSlot;

typedef struct AioBackendOps {
    const char *name;
    /* Set up e->backend for e->fd and e->depth; false + errp if unavailable. */
    bool (*init)(AioEngine *e, GError **errp);
    void (*cleanup)(AioEngine *e);
    /* Queue slot for submission; may submit at once or batch. */
    void (*queue)(AioEngine *e, AioSlot *s);
    /*
     * Submit whatever is queued and wait until at least one request
     * completes (nothing to wait for when none is in flight), calling
     * aio_slot_complete() for each completion.  false + errp only for a
     * failure of the engine itself, not of a request.
     */
    bool (*wait)(AioEngine *e, GError **errp);
} AioBackendOps;

struct AioEngine {
    /* immutable after aio_engine_new */
    const AioBackendOps *ops;
    int fd;                     /* borrowed */
    unsigned depth;
    AioSlot *slots;             /* depth entries */
    void *backend;              /* owned by ops */

    /* owned by the engine's one thread */
    unsigned *free_slots;       /* stack of free slot indexes */
    unsigned nfree;
    GError *error;              /* first request error; latched */
};

/*
 * A backend reports a finished transfer of slot s: res bytes or -errno.
 * Returns true when the slot is done (and freed); false when it must be
 * queued again, already advanced past what was transferred.
 */
bool aio_slot_complete(AioEngine *e, AioSlot *s, ssize_t res);

static inline const struct iovec *aio_slot_iov(const AioSlot *s)
{
    return s->iov + s->first;
}

static inline unsigned aio_slot_niov(const AioSlot *s)
{
    return s->niov - s->first;
}

/* The position of s in e->slots (and of its iocb in aio-linux.c's array). */
static inline unsigned aio_slot_index(const AioEngine *e, const AioSlot *s)
{
    return (unsigned)(s - e->slots);
}

extern const AioBackendOps aio_uring_ops;
extern const AioBackendOps aio_linux_ops;
extern const AioBackendOps aio_sync_ops;

#endif
