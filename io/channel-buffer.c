/*
 * Buffer channel: a growable byte array with a cursor.  Seekable, so
 * unit tests can run the positioned-I/O conformance cases without
 * touching the disk.  Writing past the end, or truncating to a larger
 * size, zero-fills the gap, as a sparse file reads back.
 */
#include <string.h>

#include "io/channel.h"
#include "util/error.h"

typedef struct IOChannelBuffer {
    IOChannel parent;
    uint8_t *data;              /* owned */
    size_t len;                 /* bytes of valid data */
    size_t capacity;
    size_t pos;                 /* cursor of readv/writev/seek */
} IOChannelBuffer;

static IOChannelBuffer *to_buffer(IOChannel *ioc)
{
    return (IOChannelBuffer *)ioc;
}

static void buffer_reserve(IOChannelBuffer *b, size_t need)
{
    size_t cap = b->capacity ? b->capacity : 64;

    if (need <= b->capacity) {
        return;
    }
    while (cap < need) {
        cap *= 2;
    }
    b->data = g_realloc(b->data, cap);
    b->capacity = cap;
}

static size_t buffer_pread(IOChannelBuffer *b, const struct iovec *iov, size_t niov,
                           size_t off)
{
    size_t done = 0;

    for (size_t i = 0; i < niov && off < b->len; i++) {
        size_t n = MIN(iov[i].iov_len, b->len - off);

        memcpy(iov[i].iov_base, b->data + off, n);
        off += n;
        done += n;
    }
    return done;
}

static size_t buffer_pwrite(IOChannelBuffer *b, const struct iovec *iov, size_t niov,
                            size_t off)
{
    size_t total = 0;

    for (size_t i = 0; i < niov; i++) {
        total += iov[i].iov_len;
    }
    buffer_reserve(b, off + total);
    if (off > b->len) {
        memset(b->data + b->len, 0, off - b->len);
    }
    for (size_t i = 0; i < niov; i++) {
        if (iov[i].iov_len) {
            memcpy(b->data + off, iov[i].iov_base, iov[i].iov_len);
        }
        off += iov[i].iov_len;
    }
    b->len = MAX(b->len, off);
    return total;
}

static bool buffer_check_off(off_t off, GError **errp)
{
    if (off < 0) {
        error_setg_errno(errp, EINVAL, "Unable to access buffer at offset %lld",
                         (long long)off);
        return false;
    }
    return true;
}

static ssize_t buffer_readv(IOChannel *ioc, const struct iovec *iov, size_t niov,
                            GError **errp)
{
    IOChannelBuffer *b = to_buffer(ioc);
    size_t n = buffer_pread(b, iov, niov, b->pos);

    b->pos += n;
    return n;
}

static ssize_t buffer_writev(IOChannel *ioc, const struct iovec *iov, size_t niov,
                             GError **errp)
{
    IOChannelBuffer *b = to_buffer(ioc);
    size_t n = buffer_pwrite(b, iov, niov, b->pos);

    b->pos += n;
    return n;
}

static ssize_t buffer_preadv(IOChannel *ioc, const struct iovec *iov, size_t niov,
                             off_t off, GError **errp)
{
    return buffer_check_off(off, errp) ? (ssize_t)buffer_pread(to_buffer(ioc), iov, niov, off) : -1;
}

static ssize_t buffer_pwritev(IOChannel *ioc, const struct iovec *iov, size_t niov,
                              off_t off, GError **errp)
{
    return buffer_check_off(off, errp) ? (ssize_t)buffer_pwrite(to_buffer(ioc), iov, niov, off) : -1;
}

static off_t buffer_seek(IOChannel *ioc, off_t off, int whence, GError **errp)
{
    IOChannelBuffer *b = to_buffer(ioc);
    off_t base;

    switch (whence) {
    case SEEK_SET:
        base = 0;
        break;
    case SEEK_CUR:
        base = b->pos;
        break;
    case SEEK_END:
        base = b->len;
        break;
    default:
        base = -1;
        break;
    }
    if (base < 0 || base + off < 0) {
        error_setg_errno(errp, EINVAL, "Unable to seek to offset %lld whence %d in file",
                         (long long)off, whence);
        return -1;
    }
    b->pos = base + off;
    return b->pos;
}

static off_t buffer_size(IOChannel *ioc, GError **errp)
{
    return to_buffer(ioc)->len;
}

static int buffer_truncate(IOChannel *ioc, off_t len, GError **errp)
{
    IOChannelBuffer *b = to_buffer(ioc);

    if (len < 0) {
        error_setg_errno(errp, EINVAL, "Unable to truncate '%s' to %lld bytes",
                         ioc->name, (long long)len);
        errno = EINVAL;
        return -1;
    }
    buffer_reserve(b, len);
    if ((size_t)len > b->len) {
        memset(b->data + b->len, 0, len - b->len);
    }
    b->len = len;
    return 0;
}

static int buffer_sync(IOChannel *ioc, GError **errp)
{
    return 0;       /* memory: as durable as it gets */
}

static int buffer_close(IOChannel *ioc, GError **errp)
{
    return 0;       /* data stays readable through io_channel_buffer_data */
}

static void buffer_finalize(IOChannel *ioc)
{
    g_free(to_buffer(ioc)->data);
}

static const IOChannelOps buffer_ops = {
    .kind = "buffer",
    .readv = buffer_readv,
    .writev = buffer_writev,
    .close = buffer_close,
    .finalize = buffer_finalize,
    .preadv = buffer_preadv,
    .pwritev = buffer_pwritev,
    .seek = buffer_seek,
    .size = buffer_size,
    .truncate = buffer_truncate,
    .sync = buffer_sync,
};

IOChannel *io_channel_buffer_new(size_t initial_capacity)
{
    IOChannelBuffer *b = g_new0(IOChannelBuffer, 1);

    io_channel_init(&b->parent, &buffer_ops, "buffer");
    b->parent.features = IO_CHANNEL_FEATURE_SEEKABLE;
    buffer_reserve(b, initial_capacity);
    return &b->parent;
}

IOChannel *io_channel_buffer_new_data(const void *data, size_t len)
{
    IOChannel *ioc = io_channel_buffer_new(len);
    IOChannelBuffer *b = to_buffer(ioc);

    if (len) {
        memcpy(b->data, data, len);
    }
    b->len = len;
    return ioc;
}

const uint8_t *io_channel_buffer_data(IOChannel *ioc, size_t *len)
{
    IOChannelBuffer *b = to_buffer(ioc);

    g_assert(ioc->ops == &buffer_ops);
    if (len) {
        *len = b->len;
    }
    return b->data;
}
