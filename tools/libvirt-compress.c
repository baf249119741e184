/*
 * gzip, bzip2, xz and zstd for libvirt's save images (libvirt-compress.h).
 * Each codec is a step function over an input and an output window, so the
 * pump's loop is the same for all of them.
 */
#include "libvirt-compress.h"
#include "libvirt-image.h"
#include "util/error.h"
#include <bzlib.h>
#include <errno.h>
#include <lzma.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#define PUMP_BUF (1024 * 1024)

typedef struct Window {
    const uint8_t *in;
    size_t in_len;             /* left to consume */
    uint8_t *out;
    size_t out_len;            /* room left */
} Window;

struct CodecPump {
    uint32_t format;
    bool compress;
    int in_fd, out_fd;
    GThread *thread;
    GError *err;
    /* one of these, by format */
    z_stream z;
    bz_stream bz;
    lzma_stream xz;
    ZSTD_CStream *zc;
    ZSTD_DStream *zd;
    bool zd_ended;             /* the last step that did anything ended a frame */
    bool member_ended;         /* gzip/bzip2 decoding: a member ended */
    bool want_more;            /* the bytes after it are too few to tell: read on */
};

bool codec_supported(uint32_t format, GError **errp)
{
    switch (format) {
    case LIBVIRT_FORMAT_RAW:
    case LIBVIRT_FORMAT_GZIP:
    case LIBVIRT_FORMAT_BZIP2:
    case LIBVIRT_FORMAT_XZ:
    case LIBVIRT_FORMAT_ZSTD:
        return true;
    case LIBVIRT_FORMAT_LZOP:
        error_setg(errp, "libvirt save image format lzop is not supported: no lzop library "
                   "is packaged for Debian (decompress with 'lzop -dc' and convert the raw "
                   "stream)");
        return false;
    default:
        error_setg(errp, "libvirt save image format %s is not a compressed stream",
                   libvirt_format_name(format) ? libvirt_format_name(format) : "?");
        return false;
    }
}

static bool codec_init(CodecPump *p, GError **errp)
{
    int rc = 0;
    switch (p->format) {
    case LIBVIRT_FORMAT_GZIP:
        /* 16 + MAX_WBITS: the gzip framing that gzip(1) writes */
        rc = p->compress ? deflateInit2(&p->z, 6, Z_DEFLATED, 16 + MAX_WBITS, 8,
                                        Z_DEFAULT_STRATEGY)
                         : inflateInit2(&p->z, 16 + MAX_WBITS);
        break;
    case LIBVIRT_FORMAT_BZIP2:
        rc = p->compress ? BZ2_bzCompressInit(&p->bz, 9, 0, 0) : BZ2_bzDecompressInit(&p->bz, 0, 0);
        break;
    case LIBVIRT_FORMAT_XZ:
        /* preset 3: what libvirt asks xz(1) for */
        rc = p->compress ? lzma_easy_encoder(&p->xz, 3, LZMA_CHECK_CRC64)
                         : lzma_stream_decoder(&p->xz, UINT64_MAX, LZMA_CONCATENATED);
        break;
    case LIBVIRT_FORMAT_ZSTD:
        if (p->compress) {
            p->zc = ZSTD_createCStream();
            rc = !p->zc || ZSTD_isError(ZSTD_initCStream(p->zc, 3));
        } else {
            p->zd = ZSTD_createDStream();
            rc = !p->zd || ZSTD_isError(ZSTD_initDStream(p->zd));
        }
        break;
    default:
        break;
    }
    if (rc) {
        error_setg(errp, "could not set up the %s codec", libvirt_format_name(p->format));
        return false;
    }
    return true;
}

static void codec_end(CodecPump *p)
{
    switch (p->format) {
    case LIBVIRT_FORMAT_GZIP:
        p->compress ? deflateEnd(&p->z) : inflateEnd(&p->z);
        break;
    case LIBVIRT_FORMAT_BZIP2:
        p->compress ? BZ2_bzCompressEnd(&p->bz) : BZ2_bzDecompressEnd(&p->bz);
        break;
    case LIBVIRT_FORMAT_XZ:
        lzma_end(&p->xz);
        break;
    case LIBVIRT_FORMAT_ZSTD:
        ZSTD_freeCStream(p->zc);
        ZSTD_freeDStream(p->zd);
        break;
    default:
        break;
    }
}

/*
 * One step: consume some of w->in, produce some of w->out.  finish: no more
 * input will come.  *done once the codec's stream has ended.
 */
/*
 * Decoding gzip or bzip2, a member has ended: as gzip(1) and bzip2(1) do,
 * the next bytes are another member if they start with a member's magic
 * (1f 8b; "BZh" and a block size digit): pigz, pbzip2 and cat of two
 * files write several.  Anything else is ignored (zero padding, trailing
 * garbage).  true: decode on, with the codec reset; false with
 * p->want_more: fewer bytes than a magic and more may come.
 */
static bool next_member(CodecPump *p, const Window *w, bool finish)
{
    static const uint8_t gz[] = { 0x1f, 0x8b };
    bool gzip = p->format == LIBVIRT_FORMAT_GZIP;
    size_t n = gzip ? 2 : 4;
    size_t have = MIN(w->in_len, n);

    p->want_more = false;
    if (memcmp(w->in, gzip ? gz : (const uint8_t *)"BZh", MIN(have, gzip ? 2 : 3)) != 0 ||
        (!gzip && have == 4 && (w->in[3] < '1' || w->in[3] > '9'))) {
        return false;
    }
    if (have < n) {
        p->want_more = !finish;
        return false;
    }
    if (gzip) {
        inflateReset(&p->z);
    } else {
        BZ2_bzDecompressEnd(&p->bz);
        memset(&p->bz, 0, sizeof(p->bz));
        if (BZ2_bzDecompressInit(&p->bz, 0, 0) != BZ_OK) {
            return false;
        }
    }
    p->member_ended = false;
    return true;
}

static bool codec_step(CodecPump *p, Window *w, bool finish, bool *done, GError **errp)
{
    const char *name = libvirt_format_name(p->format);
    *done = false;
    if (p->member_ended) {
        if (!w->in_len) {
            *done = finish;            /* else: more input may hold the next member */
            return true;
        }
        if (!next_member(p, w, finish)) {
            *done = !p->want_more;
            return true;
        }
    }
    switch (p->format) {
    case LIBVIRT_FORMAT_RAW: {
        size_t n = MIN(w->in_len, w->out_len);
        memcpy(w->out, w->in, n);
        w->in += n, w->in_len -= n, w->out += n, w->out_len -= n;
        *done = finish && !w->in_len;
        return true;
    }
    case LIBVIRT_FORMAT_GZIP: {
        p->z.next_in = (Bytef *)w->in, p->z.avail_in = w->in_len;
        p->z.next_out = w->out, p->z.avail_out = w->out_len;
        int rc = p->compress ? deflate(&p->z, finish ? Z_FINISH : Z_NO_FLUSH)
                             : inflate(&p->z, Z_NO_FLUSH);
        w->in = p->z.next_in, w->in_len = p->z.avail_in;
        w->out = p->z.next_out, w->out_len = p->z.avail_out;
        *done = rc == Z_STREAM_END && p->compress;
        p->member_ended = rc == Z_STREAM_END && !p->compress;
        if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR) {
            error_setg(errp, "%s data: %s (zlib %d)", name, p->z.msg ? p->z.msg : "error", rc);
            return false;
        }
        return true;
    }
    case LIBVIRT_FORMAT_BZIP2: {
        p->bz.next_in = (char *)w->in, p->bz.avail_in = w->in_len;
        p->bz.next_out = (char *)w->out, p->bz.avail_out = w->out_len;
        int rc = p->compress ? BZ2_bzCompress(&p->bz, finish ? BZ_FINISH : BZ_RUN)
                             : BZ2_bzDecompress(&p->bz);
        w->in = (const uint8_t *)p->bz.next_in, w->in_len = p->bz.avail_in;
        w->out = (uint8_t *)p->bz.next_out, w->out_len = p->bz.avail_out;
        *done = rc == BZ_STREAM_END && p->compress;
        p->member_ended = rc == BZ_STREAM_END && !p->compress;
        if (rc < 0) {
            error_setg(errp, "%s data: libbz2 error %d", name, rc);
            return false;
        }
        return true;
    }
    case LIBVIRT_FORMAT_XZ: {
        p->xz.next_in = w->in, p->xz.avail_in = w->in_len;
        p->xz.next_out = w->out, p->xz.avail_out = w->out_len;
        lzma_ret rc = lzma_code(&p->xz, finish ? LZMA_FINISH : LZMA_RUN);
        w->in = p->xz.next_in, w->in_len = p->xz.avail_in;
        w->out = p->xz.next_out, w->out_len = p->xz.avail_out;
        *done = rc == LZMA_STREAM_END;
        if (rc != LZMA_OK && rc != LZMA_STREAM_END && rc != LZMA_BUF_ERROR) {
            error_setg(errp, "%s data: liblzma error %d", name, rc);
            return false;
        }
        return true;
    }
    case LIBVIRT_FORMAT_ZSTD: {
        ZSTD_inBuffer in = { w->in, w->in_len, 0 };
        ZSTD_outBuffer out = { w->out, w->out_len, 0 };
        size_t rc = p->compress ? ZSTD_compressStream2(p->zc, &out, &in,
                                                       finish ? ZSTD_e_end : ZSTD_e_continue)
                                : ZSTD_decompressStream(p->zd, &out, &in);
        w->in += in.pos, w->in_len -= in.pos, w->out += out.pos, w->out_len -= out.pos;
        if (ZSTD_isError(rc)) {
            error_setg(errp, "%s data: %s", name, ZSTD_getErrorName(rc));
            return false;
        }
        /* compressing: 0 = all flushed; decompressing: 0 = a frame ended */
        if (p->compress) {
            *done = finish && rc == 0;
        } else {
            if (in.pos || out.pos) {
                p->zd_ended = rc == 0;
            }
            *done = finish && !w->in_len && p->zd_ended;
        }
        return true;
    }
    default:
        g_assert_not_reached();
    }
}

static bool write_out(CodecPump *p, const uint8_t *buf, size_t len, GError **errp)
{
    while (len) {
        ssize_t n = write(p->out_fd, buf, len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            error_setg_errno(errp, n < 0 ? errno : ENOSPC, "Unable to write %s data",
                             p->compress ? libvirt_format_name(p->format) : "decompressed");
            return false;
        }
        buf += n, len -= n;
    }
    return true;
}

static bool pump(CodecPump *p, GError **errp)
{
    g_autofree uint8_t *in = g_malloc(PUMP_BUF), *out = g_malloc(PUMP_BUF);
    bool eof = false, done = false;
    Window w = { 0 };
    while (!done) {
        if ((!w.in_len || p->want_more) && !eof) {
            /* what is left (a few bytes of a magic) goes first */
            size_t left = w.in_len;
            if (left) {
                memmove(in, w.in, left);
                w.in = in;
            }
            ssize_t n = read(p->in_fd, in + left, PUMP_BUF - left);
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n < 0) {
                error_setg_errno(errp, errno, "Unable to read %s data",
                                 p->compress ? "the stream" : libvirt_format_name(p->format));
                return false;
            }
            eof = n == 0;
            w.in = in, w.in_len = left + n;
        }
        w.out = out, w.out_len = PUMP_BUF;
        size_t had = w.in_len;
        if (!codec_step(p, &w, eof, &done, errp) ||
            !write_out(p, out, PUMP_BUF - w.out_len, errp)) {
            return false;
        }
        if (!done && eof && !w.in_len && had == 0 && w.out_len == PUMP_BUF) {
            if (!p->compress && p->format != LIBVIRT_FORMAT_RAW) {
                error_setg(errp, "%s data ends before its compressed stream does",
                           libvirt_format_name(p->format));
                return false;
            }
            done = true;
        }
    }
    return true;
}

static gpointer pump_thread(gpointer opaque)
{
    CodecPump *p = opaque;
    pump(p, &p->err);
    close(p->in_fd);
    close(p->out_fd);
    return NULL;
}

CodecPump *codec_pump_start(uint32_t format, bool compress, int in_fd, int out_fd,
                            GError **errp)
{
    CodecPump *p = g_new0(CodecPump, 1);
    p->format = format;
    p->compress = compress;
    p->in_fd = in_fd;
    p->out_fd = out_fd;
    if (!codec_supported(format, errp) || !codec_init(p, errp)) {
        close(in_fd);
        close(out_fd);
        g_free(p);
        return NULL;
    }
    p->thread = g_thread_new("codec-pump", pump_thread, p);
    return p;
}

bool codec_pump_finish(CodecPump *p, GError **errp)
{
    g_thread_join(p->thread);
    codec_end(p);
    bool ok = !p->err;
    if (p->err) {
        g_propagate_error(errp, p->err);
    }
    g_free(p);
    return ok;
}
