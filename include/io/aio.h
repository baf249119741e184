/*
 * AioEngine: positioned asynchronous I/O of page data on one fd.
 *
 * Backends (one file each): io_uring (io/aio-uring.c), libaio
 * (io/aio-linux.c), and a synchronous fallback (io/aio-sync.c) used when
 * neither is built or the kernel refuses.  The engine keeps up to
 * queue_depth requests in flight; submit blocks only when the queue is full.
 * Short completions are requeued for the rest; EINTR/EAGAIN retried.
 *
 *   AioEngine *e = aio_engine_new(fd, 16, errp);
 *   aio_engine_pwritev(e, iov, niov, off, errp);   ... many ...
 *   aio_engine_drain(e, errp);      -- waits for all; first error wins
 *   aio_engine_free(e);
 *
 * The iovec array is copied; the buffers it points to must stay valid and
 * unchanged until drain returns.  An error of an earlier request is
 * reported by the next submit or by drain, naming the file offset:
 * "Unable to write to file at offset 0x%llx: <strerror>" /
 * "Unable to read from file at offset 0x%llx: <strerror>" /
 * "Unexpected end of file at offset 0x%llx".
 * One engine is used by one thread.
 */
#ifndef IO_AIO_H
#define IO_AIO_H

#include <glib.h>
#include <stdbool.h>
#include <sys/types.h>
#include <sys/uio.h>

typedef struct AioEngine AioEngine;

typedef enum {
    AIO_BACKEND_AUTO = 0,   /* io_uring, then libaio, then sync */
    AIO_BACKEND_URING,
    AIO_BACKEND_LIBAIO,
    AIO_BACKEND_SYNC,
} AioBackend;

/* fd is borrowed (not closed by the engine).  MAPRAM_AIO=uring|libaio|sync overrides AUTO. */
AioEngine *aio_engine_new(int fd, unsigned queue_depth, AioBackend backend, GError **errp);
void aio_engine_free(AioEngine *e);
const char *aio_engine_backend_name(const AioEngine *e);
/*
 * Requests the engine holds in flight at most: queue_depth for io_uring
 * and libaio, 1 for the synchronous backend, which does each request as
 * it is queued (so it holds, and allocates, one request slot).
 */
unsigned aio_engine_queue_depth(const AioEngine *e);

bool aio_engine_pwritev(AioEngine *e, const struct iovec *iov, int niov, off_t off, GError **errp);
bool aio_engine_preadv(AioEngine *e, const struct iovec *iov, int niov, off_t off, GError **errp);
bool aio_engine_drain(AioEngine *e, GError **errp);

#endif
