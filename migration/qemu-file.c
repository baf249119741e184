/*
 * The buffered stream of the migration protocol.  See qemu-file.h.
 */
#include "qemu-file.h"
#include "util/error.h"
#include <string.h>
#include <stdarg.h>

#define IO_BUF_SIZE   (64 * 1024)
#define MAX_IOV       512

struct QEMUFile {
    IOChannel *ioc;           /* owned reference */
    bool is_writable;
    off_t base;               /* channel offset of buf[0] (input) / of the next flush (output) */
    uint64_t transferred;     /* bytes moved through this file */
    uint8_t buf[IO_BUF_SIZE];
    size_t buf_index;         /* output: bytes used; input: next byte to read */
    size_t buf_size;          /* input: valid bytes in buf */
    struct iovec iov[MAX_IOV];
    size_t iovcnt;
    size_t iov_bytes;         /* total queued in iov */
    size_t buf_flushed;       /* output: first byte of buf not yet in iov */
    bool eof;
    GError *err;              /* latched first error */
};

static QEMUFile *qemu_file_new(IOChannel *ioc, off_t start, bool writable)
{
    QEMUFile *f = g_new0(QEMUFile, 1);
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

void qemu_file_set_error(QEMUFile *f, GError *err)
{
    if (!f->err) {
        f->err = err;
    } else {
        g_error_free(err);
    }
}

void qemu_file_set_error_msg(QEMUFile *f, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    qemu_file_set_error(f, g_error_new_literal(MAPRAM_ERROR, 0, msg));
}

bool qemu_file_has_error(QEMUFile *f) { return f->err != NULL; }
GError *qemu_file_get_error_copy(QEMUFile *f) { return f->err ? g_error_copy(f->err) : NULL; }

bool qemu_file_propagate_error(QEMUFile *f, GError **errp)
{
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
            g_prefix_error(&err, "Unable to write to %s: ", f->ioc->name ? f->ioc->name : "channel");
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

/* Make at least `want` bytes available in buf (fewer only at EOF or error). */
static size_t fill_buffer(QEMUFile *f, size_t want)
{
    size_t avail = f->buf_size - f->buf_index;
    if (avail >= want || f->err) {
        return avail;
    }
    if (f->buf_index > 0) {
        memmove(f->buf, f->buf + f->buf_index, avail);
        f->base += f->buf_index;
        f->buf_index = 0;
        f->buf_size = avail;
    }
    while (f->buf_size < want && !f->eof) {
        GError *err = NULL;
        struct iovec iov = { f->buf + f->buf_size, IO_BUF_SIZE - f->buf_size };
        ssize_t n = io_channel_readv(f->ioc, &iov, 1, &err);
        if (n < 0) {
            g_prefix_error(&err, "Unable to read from %s at offset %lld: ",
                           f->ioc->name ? f->ioc->name : "channel",
                           (long long)(f->base + f->buf_size));
            qemu_file_set_error(f, err);
            break;
        }
        if (n == 0) {
            f->eof = true;
            break;
        }
        f->buf_size += n;
    }
    return f->buf_size - f->buf_index;
}

static void set_eof_error(QEMUFile *f)
{
    if (!f->err) {
        qemu_file_set_error_msg(f, "Unexpected end of stream at offset %lld",
                                (long long)qemu_file_tell(f));
    }
}

bool qemu_get_buffer(QEMUFile *f, void *buf, size_t len)
{
    uint8_t *p = buf;
    while (len) {
        if (f->err) {
            memset(p, 0, len);
            return false;
        }
        size_t avail = fill_buffer(f, MIN(len, (size_t)IO_BUF_SIZE));
        if (avail == 0) {
            set_eof_error(f);
            continue;
        }
        size_t n = MIN(avail, len);
        memcpy(p, f->buf + f->buf_index, n);
        f->buf_index += n;
        f->transferred += n;
        p += n;
        len -= n;
    }
    return true;
}

uint8_t qemu_get_byte(QEMUFile *f)
{
    uint8_t v = 0;
    qemu_get_buffer(f, &v, 1);
    return v;
}

uint16_t qemu_get_be16(QEMUFile *f)
{
    uint8_t b[2];
    qemu_get_buffer(f, b, 2);
    return (uint16_t)b[0] << 8 | b[1];
}

uint32_t qemu_get_be32(QEMUFile *f)
{
    uint8_t b[4];
    qemu_get_buffer(f, b, 4);
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

uint64_t qemu_get_be64(QEMUFile *f)
{
    uint64_t hi = qemu_get_be32(f);
    return hi << 32 | qemu_get_be32(f);
}

bool qemu_get_counted_string(QEMUFile *f, char buf[256])
{
    uint8_t len = qemu_get_byte(f);
    bool ok = qemu_get_buffer(f, buf, len);
    buf[ok ? len : 0] = 0;
    return ok;
}

int qemu_peek_byte(QEMUFile *f, size_t ahead)
{
    if (fill_buffer(f, ahead + 1) < ahead + 1) {
        return -1;
    }
    return f->buf[f->buf_index + ahead];
}

size_t qemu_peek_buffer(QEMUFile *f, void *buf, size_t len, size_t ahead)
{
    g_assert(len + ahead <= IO_BUF_SIZE);
    size_t avail = fill_buffer(f, ahead + len);
    if (avail <= ahead) {
        return 0;
    }
    size_t n = MIN(len, avail - ahead);
    memcpy(buf, f->buf + f->buf_index + ahead, n);
    return n;
}

bool qemu_file_skip(QEMUFile *f, size_t len)
{
    uint8_t tmp[4096];
    while (len) {
        size_t n = MIN(len, sizeof(tmp));
        if (!qemu_get_buffer(f, tmp, n)) {
            return false;
        }
        len -= n;
    }
    return true;
}

bool qemu_file_at_eof(QEMUFile *f)
{
    return fill_buffer(f, 1) == 0 && !f->err;
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
    if (f->err) {
        return qemu_file_propagate_error(f, errp);
    }
    GError *err = NULL;
    if (io_channel_seek(f->ioc, off, SEEK_SET, &err) < 0) {
        if (errp) {
            *errp = g_error_copy(err);
        }
        qemu_file_set_error(f, err);
        return false;
    }
    f->base = off;
    f->buf_index = f->buf_size = 0;
    f->eof = false;
    return true;
}

bool qemu_fclose(QEMUFile *f, GError **errp)
{
    qemu_fflush(f);
    bool ok = qemu_file_propagate_error(f, errp);
    if (f->err) {
        g_error_free(f->err);
    }
    io_channel_unref(f->ioc);
    g_free(f);
    return ok;
}
