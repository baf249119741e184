/*
 * multifd-compression zlib: one deflate stream per channel for the whole
 * migration (zlib format, the library's default window), fed page by
 * page and flushed with Z_SYNC_FLUSH at each packet's last page, as QEMU
 * does (reference §6.5): the bytes are QEMU's for the same pages and
 * level, and a packet decodes only after the channel's earlier ones.
 */
#include "multifd.h"
#include "util/error.h"
#include <zlib.h>

static void *zlib_send_new(int level, GError **errp)
{
    z_stream *zs = g_new0(z_stream, 1);

    if (deflateInit(zs, level) != Z_OK) {
        error_setg(errp, "deflate init failed: %s", zs->msg ? zs->msg : "unknown");
        g_free(zs);
        return NULL;
    }
    return zs;
}

static void zlib_send_free(void *st)
{
    deflateEnd(st);
    g_free(st);
}

static bool zlib_compress(void *st, const struct iovec *pages, unsigned n, uint8_t *out,
                          size_t cap, size_t *len, GError **errp)
{
    z_stream *zs = st;
    size_t done = 0;

    for (unsigned i = 0; i < n; i++) {
        int flush = i == n - 1 ? Z_SYNC_FLUSH : Z_NO_FLUSH;
        int ret;

        zs->next_in = pages[i].iov_base;
        zs->avail_in = pages[i].iov_len;
        zs->next_out = out + done;
        zs->avail_out = cap - done;
        do {
            ret = deflate(zs, flush);
        } while (ret == Z_OK && zs->avail_in && zs->avail_out);
        if (ret == Z_OK && zs->avail_in) {
            error_setg(errp, "deflate failed to compress all input");
            return false;
        }
        if (ret != Z_OK) {
            error_setg(errp, "deflate returned %d instead of Z_OK", ret);
            return false;
        }
        done = cap - zs->avail_out;
    }
    *len = done;
    return true;
}

static void *zlib_recv_new(GError **errp)
{
    z_stream *zs = g_new0(z_stream, 1);

    if (inflateInit(zs) != Z_OK) {
        error_setg(errp, "inflate init failed: %s", zs->msg ? zs->msg : "unknown");
        g_free(zs);
        return NULL;
    }
    return zs;
}

static void zlib_recv_free(void *st)
{
    inflateEnd(st);
    g_free(st);
}

static bool zlib_decompress(void *st, const uint8_t *in, size_t len, const struct iovec *pages,
                            unsigned n, GError **errp)
{
    z_stream *zs = st;
    uLong start_total = zs->total_out;

    zs->next_in = (uint8_t *)in;
    zs->avail_in = len;
    for (unsigned i = 0; i < n; i++) {
        int flush = i == n - 1 ? Z_SYNC_FLUSH : Z_NO_FLUSH;
        uLong start = zs->total_out;
        int ret;

        zs->next_out = pages[i].iov_base;
        zs->avail_out = pages[i].iov_len;
        do {
            ret = inflate(zs, flush);
        } while (ret == Z_OK && zs->avail_in && zs->total_out - start < pages[i].iov_len);
        if (ret == Z_OK && zs->total_out - start < pages[i].iov_len) {
            error_setg(errp, "inflate generated too few output");
            return false;
        }
        if (ret != Z_OK) {
            error_setg(errp, "inflate returned %d instead of Z_OK", ret);
            return false;
        }
    }
    if (zs->total_out - start_total != (uLong)n * MULTIFD_PAGE_SIZE) {
        error_setg(errp, "packet size received %lu size expected %u",
                   zs->total_out - start_total, n * MULTIFD_PAGE_SIZE);
        return false;
    }
    return true;
}

const MultiFDMethod multifd_zlib = {
    .name = "zlib",
    .flag = MULTIFD_FLAG_ZLIB,
    .send_new = zlib_send_new,
    .send_free = zlib_send_free,
    .compress = zlib_compress,
    .recv_new = zlib_recv_new,
    .recv_free = zlib_recv_free,
    .decompress = zlib_decompress,
};
