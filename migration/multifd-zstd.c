/*
 * multifd-compression zstd: one compression stream per channel for the
 * whole migration, a single frame that is never ended; each packet's
 * pages go in with ZSTD_e_continue and the last with ZSTD_e_flush, as
 * QEMU does (reference §6.5), so the bytes are QEMU's for the same pages
 * and level.
 */
#include "multifd.h"
#include "util/error.h"
#include <zstd.h>

static void *zstd_send_new(int level, GError **errp)
{
    ZSTD_CStream *zcs = ZSTD_createCStream();
    size_t ret;

    if (!zcs) {
        error_setg(errp, "zstd createCStream failed");
        return NULL;
    }
    ret = ZSTD_initCStream(zcs, level);
    if (ZSTD_isError(ret)) {
        error_setg(errp, "initCStream failed with error %s", ZSTD_getErrorName(ret));
        ZSTD_freeCStream(zcs);
        return NULL;
    }
    return zcs;
}

static void zstd_send_free(void *st)
{
    ZSTD_freeCStream(st);
}

static bool zstd_compress(void *st, const struct iovec *pages, unsigned n, uint8_t *out,
                          size_t cap, size_t *len, GError **errp)
{
    ZSTD_outBuffer ob = { out, cap, 0 };

    for (unsigned i = 0; i < n; i++) {
        ZSTD_EndDirective mode = i == n - 1 ? ZSTD_e_flush : ZSTD_e_continue;
        ZSTD_inBuffer ib = { pages[i].iov_base, pages[i].iov_len, 0 };
        size_t ret;

        do {
            ret = ZSTD_compressStream2(st, &ob, &ib, mode);
        } while (ret > 0 && !ZSTD_isError(ret) && ob.pos < ob.size &&
                 (ib.pos < ib.size || mode == ZSTD_e_flush));
        if (ZSTD_isError(ret)) {
            error_setg(errp, "compressStream error %s", ZSTD_getErrorName(ret));
            return false;
        }
        /* with e_continue, ret is only a hint; with e_flush, what is left to flush */
        if (ib.pos < ib.size || (mode == ZSTD_e_flush && ret > 0)) {
            error_setg(errp, "compressStream buffer too small");
            return false;
        }
    }
    *len = ob.pos;
    return true;
}

static void *zstd_recv_new(GError **errp)
{
    ZSTD_DStream *zds = ZSTD_createDStream();
    size_t ret;

    if (!zds) {
        error_setg(errp, "zstd createDStream failed");
        return NULL;
    }
    ret = ZSTD_initDStream(zds);
    if (ZSTD_isError(ret)) {
        error_setg(errp, "initDStream failed with error %s", ZSTD_getErrorName(ret));
        ZSTD_freeDStream(zds);
        return NULL;
    }
    return zds;
}

static void zstd_recv_free(void *st)
{
    ZSTD_freeDStream(st);
}

static bool zstd_decompress(void *st, const uint8_t *in, size_t len, const struct iovec *pages,
                            unsigned n, GError **errp)
{
    ZSTD_inBuffer ib = { in, len, 0 };
    size_t total = 0;

    for (unsigned i = 0; i < n; i++) {
        ZSTD_outBuffer ob = { pages[i].iov_base, pages[i].iov_len, 0 };
        size_t ret;

        do {
            ret = ZSTD_decompressStream(st, &ob, &ib);
        } while (ret > 0 && !ZSTD_isError(ret) && ib.pos < ib.size && ob.pos < ob.size);
        if (ZSTD_isError(ret)) {
            error_setg(errp, "decompressStream returned %s", ZSTD_getErrorName(ret));
            return false;
        }
        total += ob.pos;
        if (ob.pos < ob.size) {
            error_setg(errp, "packet size received %zu size expected %u", total,
                       n * MULTIFD_PAGE_SIZE);
            return false;
        }
    }
    return true;
}

const MultiFDMethod multifd_zstd = {
    .name = "zstd",
    .flag = MULTIFD_FLAG_ZSTD,
    .send_new = zstd_send_new,
    .send_free = zstd_send_free,
    .compress = zstd_compress,
    .recv_new = zstd_recv_new,
    .recv_free = zstd_recv_free,
    .decompress = zstd_decompress,
};
