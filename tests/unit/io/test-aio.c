/*
 * AioEngine conformance, run against every backend this build has
 * (/io/aio/<backend>/<case>): scattered positioned writes at queue depth
 * read back and compared, O_DIRECT, first-error reporting with the
 * offset, iovec arrays longer than one request slot, and EOF; the queue
 * depth each backend holds (1 for the synchronous one).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "io/aio.h"
#include "util/error.h"
#include "util/osdep.h"

typedef struct Backend {
    const char *name;
    AioBackend backend;
} Backend;

static const Backend backends[] = {
    { "uring", AIO_BACKEND_URING },
    { "libaio", AIO_BACKEND_LIBAIO },
    { "sync", AIO_BACKEND_SYNC },
};

#define PAGE 4096

static char *tmp_path(const char *dir)
{
    g_autofree char *tmpl = g_build_filename(dir, "test-aio-XXXXXX", NULL);
    int fd = g_mkstemp(tmpl);

    g_assert_cmpint(fd, >=, 0);
    close(fd);
    return g_steal_pointer(&tmpl);
}

static AioEngine *engine_or_skip(const Backend *b, int fd, unsigned depth)
{
    g_autoptr(GError) err = NULL;
    AioEngine *e = aio_engine_new(fd, depth, b->backend, &err);

    if (!e) {
        g_test_skip(err->message);
        return NULL;
    }
    g_assert_cmpstr(aio_engine_backend_name(e), ==, b->name);
    /* the synchronous backend never has more than one request in flight */
    g_assert_cmpuint(aio_engine_queue_depth(e), ==, b->backend == AIO_BACKEND_SYNC ? 1 : depth);
    return e;
}

static void fill_page(uint8_t *p, unsigned page_no, unsigned gen)
{
    for (unsigned i = 0; i < PAGE; i += 8) {
        uint64_t v = ((uint64_t)page_no << 32) | (i + gen);

        memcpy(p + i, &v, 8);
    }
}

/*
 * Write npages pages in scattered order, as runs of 1..7 pages (one
 * iovec per page, pages not adjacent in memory), then read everything
 * back with reads of other run lengths and compare.
 */
static void scatter_round_trip(const Backend *b, int flags, const char *dir)
{
    g_autofree char *path = tmp_path(dir);
    const unsigned npages = 2048, depth = 16;
    uint8_t *mem = qemu_memalign(PAGE, (size_t)npages * PAGE);
    uint8_t *back = qemu_memalign(PAGE, (size_t)npages * PAGE);
    struct iovec *iov = g_new(struct iovec, 8);
    g_autoptr(GError) err = NULL;
    AioEngine *e;
    int fd;

    fd = open(path, O_RDWR | flags);
    if (fd < 0 && errno == EINVAL && (flags & O_DIRECT)) {
        g_test_skip("O_DIRECT not supported here");
        goto out;
    }
    g_assert_cmpint(fd, >=, 0);
    e = engine_or_skip(b, fd, depth);
    if (!e) {
        close(fd);
        goto out;
    }
    for (unsigned p = 0; p < npages; p++) {
        fill_page(mem + (size_t)p * PAGE, p, 1);
    }
    /* Runs start at a stride coprime to npages: a scattered order. */
    for (unsigned i = 0, start = 0; i < npages;) {
        unsigned run = 1 + (i % 7);
        unsigned n = 0;

        start = (i * 37) % npages;
        while (n < run && start + n < npages && i < npages) {
            /* Write each page of the run from its own place in memory. */
            iov[n].iov_base = mem + (size_t)(start + n) * PAGE;
            iov[n].iov_len = PAGE;
            n++;
        }
        g_assert_true(aio_engine_pwritev(e, iov, n, (off_t)start * PAGE, &err));
        g_assert_no_error(err);
        i += 1;
    }
    g_assert_true(aio_engine_drain(e, &err));
    g_assert_no_error(err);

    memset(back, 0xee, (size_t)npages * PAGE);
    for (unsigned p = 0; p < npages;) {
        unsigned run = MIN(1 + (p % 5) * 3, npages - p);

        for (unsigned k = 0; k < run; k++) {
            iov[k % 8].iov_base = back + (size_t)(p + k) * PAGE;
            iov[k % 8].iov_len = PAGE;
            if (k % 8 == 7 || k == run - 1) {
                unsigned first = k - k % 8;

                g_assert_true(aio_engine_preadv(e, iov, k % 8 + 1,
                                                (off_t)(p + first) * PAGE, &err));
                g_assert_no_error(err);
            }
        }
        p += run;
    }
    g_assert_true(aio_engine_drain(e, &err));
    g_assert_no_error(err);
    for (unsigned p = 0; p < npages; p++) {
        if (memcmp(mem + (size_t)p * PAGE, back + (size_t)p * PAGE, PAGE) != 0) {
            g_error("page %u differs after round trip", p);
        }
    }
    aio_engine_free(e);
    close(fd);
out:
    unlink(path);
    qemu_vfree(mem);
    qemu_vfree(back);
    g_free(iov);
}

static void test_round_trip(gconstpointer opaque)
{
    scatter_round_trip(opaque, 0, g_get_tmp_dir());
}

static void test_direct_io(gconstpointer opaque)
{
    scatter_round_trip(opaque, O_DIRECT, "/var/tmp");
}

/* Reusing an iovec array right after submit is allowed: it is copied. */
static void test_iov_copied(gconstpointer opaque)
{
    g_autofree char *path = tmp_path(g_get_tmp_dir());
    int fd = open(path, O_RDWR);
    AioEngine *e = engine_or_skip(opaque, fd, 4);
    g_autoptr(GError) err = NULL;
    uint8_t *buf = qemu_memalign(PAGE, 64 * PAGE);
    uint8_t *back = qemu_memalign(PAGE, 64 * PAGE);
    struct iovec iov;

    if (e) {
        for (unsigned p = 0; p < 64; p++) {
            fill_page(buf + p * PAGE, p, 9);
            iov.iov_base = buf + p * PAGE;
            iov.iov_len = PAGE;
            g_assert_true(aio_engine_pwritev(e, &iov, 1, (off_t)p * PAGE, &err));
            iov.iov_base = NULL;            /* clobber the caller's copy */
            iov.iov_len = 1;
        }
        g_assert_true(aio_engine_drain(e, &err));
        g_assert_no_error(err);
        g_assert_cmpint(pread(fd, back, 64 * PAGE, 0), ==, 64 * PAGE);
        g_assert_true(memcmp(buf, back, 64 * PAGE) == 0);
        aio_engine_free(e);
    }
    close(fd);
    unlink(path);
    qemu_vfree(buf);
    qemu_vfree(back);
}

/* An array far longer than one slot (and IOV_MAX) is split and still lands. */
static void test_long_iovec(gconstpointer opaque)
{
    g_autofree char *path = tmp_path(g_get_tmp_dir());
    const unsigned n = 3000;            /* > 256 per slot, > IOV_MAX 1024 */
    int fd = open(path, O_RDWR);
    AioEngine *e = engine_or_skip(opaque, fd, 2);
    g_autoptr(GError) err = NULL;
    g_autofree uint8_t *src = g_malloc((size_t)n * 3);
    g_autofree uint8_t *back = g_malloc0((size_t)n * 3 + 100);
    g_autofree struct iovec *iov = g_new(struct iovec, n);
    size_t len = 0;

    if (e) {
        for (unsigned i = 0; i < n * 3; i++) {
            src[i] = (uint8_t)(i * 7 + 1);
        }
        /* Pieces of 1..5 bytes, some empty, in memory order. */
        for (unsigned i = 0; i < n; i++) {
            size_t l = (i % 6 == 5) ? 0 : MIN(1 + i % 5, n * 3 - len);

            iov[i].iov_base = src + len;
            iov[i].iov_len = l;
            len += l;
        }
        g_assert_true(aio_engine_pwritev(e, iov, n, 100, &err));
        g_assert_true(aio_engine_drain(e, &err));
        g_assert_no_error(err);
        g_assert_cmpint(pread(fd, back, len + 100, 0), ==, (ssize_t)(len + 100));
        g_assert_true(memcmp(back + 100, src, len) == 0);

        /* And the same long array read back through the engine. */
        memset(back, 0, len);
        len = 0;
        for (unsigned i = 0; i < n; i++) {
            iov[i].iov_base = back + len;
            len += iov[i].iov_len;
        }
        g_assert_true(aio_engine_preadv(e, iov, n, 100, &err));
        g_assert_true(aio_engine_drain(e, &err));
        g_assert_no_error(err);
        g_assert_true(memcmp(back, src, len) == 0);
        aio_engine_free(e);
    }
    close(fd);
    unlink(path);
}

/* A failing request is reported by a later submit or by drain, with its offset. */
static void test_error_offset(gconstpointer opaque)
{
    g_autofree char *path = tmp_path(g_get_tmp_dir());
    int fd = open(path, O_RDONLY);
    AioEngine *e = engine_or_skip(opaque, fd, 4);
    g_autoptr(GError) err = NULL;
    uint8_t buf[PAGE] = { 1 };
    struct iovec iov = { buf, sizeof(buf) };
    bool ok = true;

    if (e) {
        ok = aio_engine_pwritev(e, &iov, 1, 0x5000, &err);
        /* Either the submit or the drain reports it; then it stays latched. */
        if (ok) {
            g_assert_false(aio_engine_drain(e, &err));
        }
        g_assert_nonnull(err);
        g_assert_cmpstr(err->message, ==,
                        "Unable to write to file at offset 0x5000: Bad file descriptor");
        g_clear_error(&err);
        g_assert_false(aio_engine_pwritev(e, &iov, 1, 0x6000, &err));
        g_assert_cmpstr(err->message, ==,
                        "Unable to write to file at offset 0x5000: Bad file descriptor");
        g_clear_error(&err);
        g_assert_false(aio_engine_drain(e, &err));
        g_assert_cmpstr(err->message, ==,
                        "Unable to write to file at offset 0x5000: Bad file descriptor");
        aio_engine_free(e);
    }
    close(fd);
    unlink(path);
}

/* Only the first of several failures is reported. */
static void test_first_error_wins(gconstpointer opaque)
{
    g_autofree char *path = tmp_path(g_get_tmp_dir());
    int fd = open(path, O_RDONLY);
    AioEngine *e = engine_or_skip(opaque, fd, 8);
    g_autoptr(GError) err = NULL;
    uint8_t buf[16] = { 0 };
    struct iovec iov = { buf, sizeof(buf) };

    if (e) {
        aio_engine_pwritev(e, &iov, 1, 0x100, &err);
        if (!err) {
            aio_engine_pwritev(e, &iov, 1, 0x200, &err);
        }
        g_clear_error(&err);
        g_assert_false(aio_engine_drain(e, &err));
        g_assert_cmpstr(err->message, ==,
                        "Unable to write to file at offset 0x100: Bad file descriptor");
        aio_engine_free(e);
    }
    close(fd);
    unlink(path);
}

/* Reading past the end of the file is an error naming the offset of the hole. */
static void test_read_eof(gconstpointer opaque)
{
    g_autofree char *path = tmp_path(g_get_tmp_dir());
    int fd = open(path, O_RDWR);
    AioEngine *e = engine_or_skip(opaque, fd, 4);
    g_autoptr(GError) err = NULL;
    uint8_t data[200], buf[300];
    struct iovec iov = { buf, sizeof(buf) };

    for (unsigned i = 0; i < sizeof(data); i++) {
        data[i] = (uint8_t)(i * 7 + 1);
    }
    memset(buf, 0xee, sizeof(buf));     /* not what the file holds */
    g_assert_cmpint(pwrite(fd, data, sizeof(data), 0), ==, sizeof(data));
    if (e) {
        /* 200 bytes come back, then the rest is requeued and hits EOF. */
        if (aio_engine_preadv(e, &iov, 1, 0, &err)) {
            g_assert_false(aio_engine_drain(e, &err));
        }
        g_assert_cmpstr(err->message, ==, "Unexpected end of file at offset 0xc8");
        g_assert_cmpmem(buf, sizeof(data), data, sizeof(data));
        aio_engine_free(e);
    }
    close(fd);
    unlink(path);
}

/* Freeing with requests in flight waits for them (ASan/valgrind clean). */
static void test_free_busy(gconstpointer opaque)
{
    g_autofree char *path = tmp_path(g_get_tmp_dir());
    int fd = open(path, O_RDWR);
    AioEngine *e = engine_or_skip(opaque, fd, 32);
    g_autofree uint8_t *buf = g_malloc0(32 * PAGE);
    g_autoptr(GError) err = NULL;

    if (e) {
        for (unsigned i = 0; i < 32; i++) {
            struct iovec iov = { buf + i * PAGE, PAGE };

            g_assert_true(aio_engine_pwritev(e, &iov, 1, (off_t)i * PAGE, &err));
        }
        aio_engine_free(e);
        g_assert_cmpint(lseek(fd, 0, SEEK_END), ==, 32 * PAGE);
    }
    close(fd);
    unlink(path);
}

static void test_env_override(void)
{
    g_autoptr(GError) err = NULL;
    AioEngine *e;

    g_setenv("MAPRAM_AIO", "sync", TRUE);
    e = aio_engine_new(0, 4, AIO_BACKEND_AUTO, &err);
    g_assert_no_error(err);
    g_assert_cmpstr(aio_engine_backend_name(e), ==, "sync");
    aio_engine_free(e);
    /* An explicit backend is not overridden. */
    e = aio_engine_new(0, 4, AIO_BACKEND_SYNC, &err);
    g_assert_no_error(err);
    g_assert_cmpuint(aio_engine_queue_depth(e), ==, 1);
    aio_engine_free(e);
    g_setenv("MAPRAM_AIO", "bogus", TRUE);
    g_assert_null(aio_engine_new(0, 4, AIO_BACKEND_AUTO, &err));
    g_assert_cmpstr(err->message, ==,
                    "Invalid MAPRAM_AIO value 'bogus' (expected uring, libaio or sync)");
    g_unsetenv("MAPRAM_AIO");
    g_clear_error(&err);
    e = aio_engine_new(0, 4, AIO_BACKEND_AUTO, &err);
    g_assert_no_error(err);
    g_test_message("AUTO picked %s", aio_engine_backend_name(e));
    aio_engine_free(e);
}

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        GTestDataFunc fn;
    } cases[] = {
        { "round-trip", test_round_trip },
        { "direct-io", test_direct_io },
        { "iov-copied", test_iov_copied },
        { "long-iovec", test_long_iovec },
        { "error-offset", test_error_offset },
        { "first-error-wins", test_first_error_wins },
        { "read-eof", test_read_eof },
        { "free-busy", test_free_busy },
    };

    g_test_init(&argc, &argv, NULL);
    g_unsetenv("MAPRAM_AIO");
    for (size_t b = 0; b < G_N_ELEMENTS(backends); b++) {
        for (size_t c = 0; c < G_N_ELEMENTS(cases); c++) {
            g_autofree char *name = g_strdup_printf("/io/aio/%s/%s", backends[b].name,
                                                    cases[c].name);

            g_test_add_data_func(name, &backends[b], cases[c].fn);
        }
    }
    g_test_add_func("/io/aio/env-override", test_env_override);
    return g_test_run();
}
