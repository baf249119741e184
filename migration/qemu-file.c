/*
 * The buffered stream of the migration protocol.  See qemu-file.h.
 */
#include "qemu-file.h"
#include "util/error.h"
#include <stddef.h>
#include <string.h>

#define IO_BUF_SIZE   (64 * 1024)
#define MAX_IOV       512

struct QEMUFile {
    IOChannel *ioc;           /* owned reference */
    bool is_writable;
    off_t base;               /* channel offset of buf[0] (input) / of the next flush (output) */
    uint64_t transferred;     /* bytes moved through this file */
    size_t buf_index;         /* output: bytes used; input: next byte to read */
    size_t buf_size;          /* input: valid bytes in buf */
    size_t iovcnt;
    size_t iov_bytes;         /* total queued in iov */
    size_t buf_flushed;       /* output: first byte of buf not yet in iov */
    bool eof;
    GError *err;              /* output only: the first write error */
    /*
     * Last, and not zeroed at creation (72 KiB): only buf[0, buf_size) on
     * input, buf[0, buf_index) and iov[0, iovcnt) on output are ever read.
     */
    uint8_t buf[IO_BUF_SIZE];
    struct iovec iov[MAX_IOV];
};

static QEMUFile *qemu_file_new(IOChannel *ioc, off_t start, bool writable)
{
    QEMUFile *f = g_malloc(sizeof(QEMUFile));
    memset(f, 0, offsetof(QEMUFile, buf));
    f->ioc = io_channel_ref(ioc);
    f->is_writable = writable;
    f->base = start;
    return f;
}

QEMUFile *qemu_file_new_output(IOChannel *ioc, off_t start_offset)
{ return qemu_file_new(ioc, start_offset, true); }
QEMUFile *qemu_file_new_input(IOChannel *ioc, off_t start_offset)
{ return qemu_file_new(ioc, start_offset, false); }
IOChannel *qemu_file_get_ioc(QEMUFile *f) { return f->ioc; }

/* Writer only: the first error latches, later ones are dropped. */
static void qemu_file_set_error(QEMUFile *f, GError *err)
{
    if (!f->err) {
        f->err = err;
    } else {
        g_error_free(err);
    }
}

bool qemu_file_has_error(QEMUFile *f)
{
    g_assert(f->is_writable);
    return f->err != NULL;
}

bool qemu_file_propagate_error(QEMUFile *f, GError **errp)
{
    g_assert(f->is_writable);
    if (!f->err) {
        return true;
    }
    if (errp && !*errp) {
        *errp = g_error_copy(f->err);
    }
    return false;
}

/* ---- output ---- */

static void add_to_iov(QEMUFile *f, const uint8_t *p, size_t len)
{
    if (f->iovcnt > 0 &&
        (uint8_t *)f->iov[f->iovcnt - 1].iov_base + f->iov[f->iovcnt - 1].iov_len == p) {
        f->iov[f->iovcnt - 1].iov_len += len;
    } else {
        f->iov[f->iovcnt].iov_base = (void *)p;
        f->iov[f->iovcnt].iov_len = len;
        f->iovcnt++;
    }
    f->iov_bytes += len;
}

/* Move pending bytes of buf into the iov list. */
static void buf_to_iov(QEMUFile *f)
{
    if (f->buf_index > f->buf_flushed) {
        add_to_iov(f, f->buf + f->buf_flushed, f->buf_index - f->buf_flushed);
        f->buf_flushed = f->buf_index;
    }
}

bool qemu_fflush(QEMUFile *f)
{
    if (!f->is_writable) {
        return true;
    }
    buf_to_iov(f);
    if (f->iovcnt && !f->err) {
        GError *err = NULL;
        if (!io_channel_writev_all(f->ioc, f->iov, f->iovcnt, &err)) {
            /*
             * The channel's error already says what failed ("Unable to
             * write to file: ...", QEMU's text); a socket we connected
             * adds the peer's address.
             */
            if (f->ioc->name_is_peer) {
                g_prefix_error(&err, "Unable to write to %s: ", f->ioc->name);
            }
            qemu_file_set_error(f, err);
        } else {
            f->base += f->iov_bytes;
        }
    }
    f->iovcnt = 0;
    f->iov_bytes = 0;
    f->buf_index = 0;
    f->buf_flushed = 0;
    return f->err == NULL;
}

static void ensure_space(QEMUFile *f, size_t len)
{
    if (f->buf_index + len > IO_BUF_SIZE || f->iovcnt >= MAX_IOV - 1) {
        qemu_fflush(f);
    }
}

void qemu_put_buffer(QEMUFile *f, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    if (f->err) {
        return;
    }
    f->transferred += len;
    while (len) {
        ensure_space(f, 1);
        size_t n = MIN(len, IO_BUF_SIZE - f->buf_index);
        memcpy(f->buf + f->buf_index, p, n);
        f->buf_index += n;
        p += n;
        len -= n;
    }
}

void qemu_put_buffer_async(QEMUFile *f, const void *buf, size_t len)
{
    if (f->err) {
        return;
    }
    if (f->iovcnt >= MAX_IOV - 2) {
        qemu_fflush(f);
    }
    buf_to_iov(f);
    add_to_iov(f, buf, len);
    f->transferred += len;
    if (f->iov_bytes >= 16 * IO_BUF_SIZE) {
        qemu_fflush(f);
    }
}

void qemu_put_byte(QEMUFile *f, uint8_t v)
{
    if (f->err) {
        return;
    }
    ensure_space(f, 1);
    f->buf[f->buf_index++] = v;
    f->transferred++;
}

void qemu_put_be16(QEMUFile *f, uint16_t v)
{
    uint8_t b[2] = { v >> 8, v };
    qemu_put_buffer(f, b, 2);
}

void qemu_put_be32(QEMUFile *f, uint32_t v)
{
    uint8_t b[4] = { v >> 24, v >> 16, v >> 8, v };
    qemu_put_buffer(f, b, 4);
}

void qemu_put_be64(QEMUFile *f, uint64_t v)
{
    qemu_put_be32(f, v >> 32);
    qemu_put_be32(f, (uint32_t)v);
}

void qemu_put_counted_string(QEMUFile *f, const char *s)
{
    size_t len = strlen(s);
    g_assert(len < 256);
    qemu_put_byte(f, len);
    qemu_put_buffer(f, s, len);
}

/* ---- input ---- */

/*
 * Make want (<= IO_BUF_SIZE) bytes available in buf: false at the end of
 * the stream, naming the offset where it ends, or on a read error.
 */
static bool fill_buffer(QEMUFile *f, size_t want, GError **errp)
{
    size_t avail = f->buf_size - f->buf_index;
    g_assert(want <= IO_BUF_SIZE);
    if (avail >= want) {
        return true;
    }
    if (f->buf_index > 0) {
        memmove(f->buf, f->buf + f->buf_index, avail);
        f->base += f->buf_index;
        f->buf_index = 0;
        f->buf_size = avail;
    }
    while (f->buf_size < want && !f->eof) {
        struct iovec iov = { f->buf + f->buf_size, IO_BUF_SIZE - f->buf_size };
        ssize_t n = io_channel_readv(f->ioc, &iov, 1, errp);
        if (n < 0) {
            g_prefix_error(errp, "Unable to read from %s at offset %lld: ",
                           f->ioc->name ? f->ioc->name : "channel",
                           (long long)(f->base + f->buf_size));
            return false;
        }
        f->eof = n == 0;
        f->buf_size += n;
    }
    if (f->buf_size < want) {
        error_setg(errp, "Unexpected end of stream at offset %lld",
                   (long long)(f->base + f->buf_size));
        return false;
    }
    return true;
}

/* Move the read position len (available) bytes on. */
static void consume(QEMUFile *f, size_t len)
{
    f->buf_index += len;
    f->transferred += len;
}

bool qemu_get_buffer(QEMUFile *f, void *buf, size_t len, GError **errp)
{
    uint8_t *p = buf;
    while (len) {
        size_t n = MIN(len, (size_t)IO_BUF_SIZE);
        if (!fill_buffer(f, n, errp)) {
            return false;
        }
        memcpy(p, f->buf + f->buf_index, n);
        consume(f, n);
        p += n;
        len -= n;
    }
    return true;
}

bool qemu_file_skip(QEMUFile *f, size_t len, GError **errp)
{
    while (len) {
        size_t n = MIN(len, (size_t)IO_BUF_SIZE);
        if (!fill_buffer(f, n, errp)) {
            return false;
        }
        consume(f, n);
        len -= n;
    }
    return true;
}

bool qemu_get_byte(QEMUFile *f, uint8_t *v, GError **errp)
{
    return qemu_get_buffer(f, v, 1, errp);
}

bool qemu_get_be16(QEMUFile *f, uint16_t *v, GError **errp)
{
    uint8_t b[2];
    if (!qemu_get_buffer(f, b, 2, errp)) {
        return false;
    }
    *v = (uint16_t)b[0] << 8 | b[1];
    return true;
}

bool qemu_get_be32(QEMUFile *f, uint32_t *v, GError **errp)
{
    uint8_t b[4];
    if (!qemu_get_buffer(f, b, 4, errp)) {
        return false;
    }
    *v = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
    return true;
}

bool qemu_get_be64(QEMUFile *f, uint64_t *v, GError **errp)
{
    uint8_t b[8];
    if (!qemu_get_buffer(f, b, 8, errp)) {
        return false;
    }
    *v = 0;
    for (int i = 0; i < 8; i++) {
        *v = *v << 8 | b[i];
    }
    return true;
}

bool qemu_get_counted_string(QEMUFile *f, char buf[256], GError **errp)
{
    uint8_t len;
    if (!qemu_get_byte(f, &len, errp) || !qemu_get_buffer(f, buf, len, errp)) {
        return false;
    }
    buf[len] = 0;
    return true;
}

int qemu_peek_byte(QEMUFile *f, size_t ahead)
{
    if (!fill_buffer(f, ahead + 1, NULL)) {
        return -1;
    }
    return f->buf[f->buf_index + ahead];
}

size_t qemu_peek_buffer(QEMUFile *f, void *buf, size_t len, size_t ahead)
{
    g_assert(len + ahead <= IO_BUF_SIZE);
    fill_buffer(f, ahead + len, NULL);
    size_t avail = f->buf_size - f->buf_index;
    if (avail <= ahead) {
        return 0;
    }
    size_t n = MIN(len, avail - ahead);
    memcpy(buf, f->buf + f->buf_index + ahead, n);
    return n;
}

bool qemu_file_at_eof(QEMUFile *f)
{
    return !fill_buffer(f, 1, NULL) && f->eof;
}

bool qemu_file_input_ended(QEMUFile *f)
{
    return f->eof;
}

/* ---- positions ---- */

off_t qemu_file_tell(QEMUFile *f)
{
    if (f->is_writable) {
        return f->base + f->iov_bytes + (f->buf_index - f->buf_flushed);
    }
    return f->base + f->buf_index;
}

uint64_t qemu_file_transferred(QEMUFile *f) { return f->transferred; }

bool qemu_file_set_offset(QEMUFile *f, off_t off, GError **errp)
{
    if (f->is_writable && !qemu_fflush(f)) {
        return qemu_file_propagate_error(f, errp);
    }
    GError *err = NULL;
    if (io_channel_seek(f->ioc, off, SEEK_SET, &err) < 0) {
        if (f->is_writable) {
            qemu_file_set_error(f, g_error_copy(err));
        }
        g_propagate_error(errp, err);
        return false;
    }
    f->base = off;
    f->buf_index = f->buf_size = 0;
    f->eof = false;
    return true;
}

bool qemu_fclose(QEMUFile *f, GError **errp)
{
    bool ok = true;
    if (f->is_writable) {
        qemu_fflush(f);
        ok = qemu_file_propagate_error(f, errp);
        g_clear_error(&f->err);
    }
    io_channel_unref(f->ioc);
    g_free(f);
    return ok;
}
