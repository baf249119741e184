/*
 * Page-channel batches: a batch of reads is done, with its bytes in
 * place, when page_channels_wait_batch() returns, whichever worker read
 * it and while other batches are still queued; an empty batch is done at
 * once; a failing batch fails its waiter with the read's error.
 */
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "migration/page-channels.h"
#include "util/osdep.h"

#define PAGE 4096
#define FILE_PAGES 64

/* A file whose page i is filled with the byte i + 1. */
static char *make_file(const char *dir)
{
    g_autofree char *path = g_build_filename(dir, "test-pc-batch-XXXXXX", NULL);
    int fd = g_mkstemp(path);
    uint8_t page[PAGE];

    g_assert_cmpint(fd, >=, 0);
    for (int i = 0; i < FILE_PAGES; i++) {
        memset(page, i + 1, PAGE);
        g_assert_cmpint(write(fd, page, PAGE), ==, PAGE);
    }
    close(fd);
    return g_steal_pointer(&path);
}

static PageChannels *open_channels(const char *path, unsigned channels, bool direct_io)
{
    PageChannelsConfig cfg = {
        .path = path, .flags = O_RDONLY, .channels = channels, .queue_depth = 4,
        .direct_io = direct_io,
    };
    GError *err = NULL;
    PageChannels *pc = page_channels_new(&cfg, &err);

    g_assert_no_error(err);
    g_assert_nonnull(pc);
    return pc;
}

static void assert_pages(const uint8_t *buf, unsigned first, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        for (unsigned b = 0; b < PAGE; b += 512) {
            g_assert_cmpuint(buf[i * PAGE + b], ==, first + i + 1);
        }
    }
}

/*
 * Eight batches of two segments each, waited for out of order.  With
 * direct-io the reads are asynchronous, so a batch marked done when
 * submitted would show pages not yet read.
 */
static void read_batches(const char *dir, bool direct_io)
{
    g_autofree char *path = make_file(dir);
    PageChannels *pc = open_channels(path, 2, direct_io);
    uint8_t *buf = qemu_memalign(PAGE, FILE_PAGES * PAGE);
    memset(buf, 0, FILE_PAGES * PAGE);
    PageBatch batch[8];
    GError *err = NULL;

    for (unsigned k = 0; k < 8; k++) {
        /* pages 8k..8k+2 and 8k+5..8k+7 of the file, in place */
        PageSeg segs[2] = {
            { buf + 8 * k * PAGE, 3 * PAGE, (off_t)8 * k * PAGE },
            { buf + (8 * k + 5) * PAGE, 3 * PAGE, (off_t)(8 * k + 5) * PAGE },
        };
        g_assert_true(page_channels_queue_batch(pc, false, segs, 2, &batch[k], &err));
        g_assert_no_error(err);
    }
    for (int k = 7; k >= 0; k -= 2) {
        g_assert_true(page_channels_wait_batch(pc, &batch[k], &err));
        g_assert_no_error(err);
        assert_pages(buf + 8 * k * PAGE, 8 * k, 3);
        assert_pages(buf + (8 * k + 5) * PAGE, 8 * k + 5, 3);
    }
    for (int k = 0; k < 8; k += 2) {
        g_assert_true(page_channels_wait_batch(pc, &batch[k], &err));
        assert_pages(buf + 8 * k * PAGE, 8 * k, 3);
        assert_pages(buf + (8 * k + 5) * PAGE, 8 * k + 5, 3);
    }
    /* the pages between the segments were not read */
    g_assert_cmpuint(buf[3 * PAGE], ==, 0);
    g_assert_true(page_channels_sync(pc, &err));
    page_channels_free(pc);
    qemu_vfree(buf);
    unlink(path);
}

static void test_read_batches(void)
{
    read_batches(g_get_tmp_dir(), false);
}

static void test_read_batches_dio(void)
{
    /* /var/tmp: tmpfs, where /tmp may be, has no O_DIRECT */
    read_batches("/var/tmp", true);
}

static void test_empty_batch(void)
{
    g_autofree char *path = make_file(g_get_tmp_dir());
    PageChannels *pc = open_channels(path, 1, false);
    PageBatch batch = { .done = 0 };
    GError *err = NULL;

    g_assert_true(page_channels_queue_batch(pc, false, NULL, 0, &batch, &err));
    g_assert_cmpint(g_atomic_int_get(&batch.done), ==, 1);
    g_assert_true(page_channels_wait_batch(pc, &batch, &err));
    g_assert_no_error(err);
    page_channels_free(pc);
    unlink(path);
}

/* A read past the end fails the batch's waiter with the read's error. */
static void test_failing_batch(void)
{
    g_autofree char *path = make_file(g_get_tmp_dir());
    PageChannels *pc = open_channels(path, 1, false);
    g_autofree uint8_t *buf = g_malloc0(2 * PAGE);
    PageSeg seg = { buf, 2 * PAGE, (off_t)FILE_PAGES * PAGE };
    PageBatch batch;
    GError *err = NULL;

    g_assert_true(page_channels_queue_batch(pc, false, &seg, 1, &batch, &err));
    g_assert_false(page_channels_wait_batch(pc, &batch, &err));
    g_assert_nonnull(err);
    g_assert_cmpstr(err->message, ==, "Unexpected end of file at offset 0x40000");
    g_clear_error(&err);
    page_channels_free(pc);
    unlink(path);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/migration/page-channels/batch/read", test_read_batches);
    g_test_add_func("/migration/page-channels/batch/read/dio", test_read_batches_dio);
    g_test_add_func("/migration/page-channels/batch/empty", test_empty_batch);
    g_test_add_func("/migration/page-channels/batch/failing", test_failing_batch);
    return g_test_run();
}
