/*
 * Page channels (migration/page-channels.h) on their own: the positioned
 * page I/O threads of mapped-ram.  Writes with zero detection set the
 * bitmap bit of a page with data and write it to its slot, clear the bit
 * of a zero page and leave its slot alone (no I/O); reads land where they
 * are asked to; sync reports the first error of any worker, with its
 * message; with and without O_DIRECT (skipped where the file system
 * refuses it); a worker's thread starts with its first job, and the
 * number of workers follows the threads setting.  Fault
 * points run in a subprocess with MAPRAM_FAULT set.
 */
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fake-host.h"
#include "migration/page-channels.h"
#include "util/bitmap.h"

#define PAGE 4096
#define NPAGES 96
#define PAGES_OFFSET (1024 * 1024)
#define UNTOUCHED 0xee

typedef struct Fixture {
    char *dir;
    char *path;
    uint8_t *host;               /* NPAGES pages, page aligned */
    unsigned long *bmap;
    PageStats stats;
} Fixture;

/* Page p of the guest: zero when p % 4 == 0 or 40 <= p < 48, else a pattern. */
static bool page_is_zero(uint64_t p)
{
    return p % 4 == 0 || (p >= 40 && p < 48);
}

static void fixture_init(Fixture *f)
{
    memset(f, 0, sizeof(*f));
    f->dir = fake_test_mkdtemp("pagech");
    f->path = g_build_filename(f->dir, "pages", NULL);
    f->host = mmap(NULL, NPAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                   -1, 0);
    g_assert(f->host != MAP_FAILED);
    for (uint64_t p = 0; p < NPAGES; p++) {
        if (!page_is_zero(p)) {
            memset(f->host + p * PAGE, (int)(p + 1), PAGE);
            f->host[p * PAGE + 17] = 0;     /* not a uniform page either */
        }
    }
    f->bmap = bitmap_new(NPAGES);
    /* the file: a header area, then every slot filled with UNTOUCHED */
    g_autofree uint8_t *fill = g_malloc(PAGES_OFFSET + NPAGES * PAGE);
    memset(fill, 0, PAGES_OFFSET);
    memset(fill + PAGES_OFFSET, UNTOUCHED, NPAGES * PAGE);
    g_autoptr(GError) err = NULL;
    g_assert_true(g_file_set_contents(f->path, (char *)fill, PAGES_OFFSET + NPAGES * PAGE,
                                      &err));
}

static void fixture_cleanup(Fixture *f)
{
    munmap(f->host, NPAGES * PAGE);
    g_free(f->bmap);
    fake_test_rmtree(f->dir);
    g_free(f->path);
    g_free(f->dir);
}

static PageChannels *open_channels(Fixture *f, int flags, unsigned channels, bool dio,
                                   bool detect_zero)
{
    g_autoptr(GError) err = NULL;
    PageChannelsConfig cfg = {
        .path = f->path,
        .flags = flags,
        .channels = channels,
        .direct_io = dio,
        .queue_depth = 16,
        .detect_zero = detect_zero,
        .stats = &f->stats,
    };
    PageChannels *pc = page_channels_new(&cfg, &err);
    g_assert_no_error(err);
    g_assert_nonnull(pc);
    return pc;
}

static uint8_t *read_file(Fixture *f, size_t *len)
{
    g_autoptr(GError) err = NULL;
    char *data;
    g_assert_true(g_file_get_contents(f->path, &data, len, &err));
    return (uint8_t *)data;
}

static bool all_bytes(const uint8_t *p, size_t len, uint8_t v)
{
    for (size_t i = 0; i < len; i++) {
        if (p[i] != v) {
            return false;
        }
    }
    return true;
}

/*
 * Queue pages [0, NPAGES) but those with p % 7 == 6 (so runs break), in
 * batches of at most 32, then sync.  Returns the pages queued.
 */
static uint64_t queue_pages(Fixture *f, PageChannels *pc)
{
    uint64_t batch[32];
    unsigned n = 0;
    uint64_t queued = 0;
    g_autoptr(GError) err = NULL;

    for (uint64_t p = 0; p < NPAGES; p++) {
        if (p % 7 == 6) {
            continue;
        }
        batch[n++] = p;
        queued++;
        if (n == G_N_ELEMENTS(batch) || p == NPAGES - 1) {
            g_assert_true(page_channels_queue_write(pc, "pc.ram", f->host, PAGES_OFFSET,
                                                    f->bmap, batch, n, &err));
            n = 0;
        }
    }
    g_assert_true(page_channels_sync(pc, &err));
    g_assert_no_error(err);
    return queued;
}

static void write_case(unsigned channels, bool dio, bool detect_zero)
{
    Fixture f;
    fixture_init(&f);
    if (dio && !fake_test_have_o_direct(f.dir)) {
        g_test_skip("the file system refuses O_DIRECT");
        fixture_cleanup(&f);
        return;
    }
    /* bits start set for odd pages, clear for even ones: each page's own fate decides */
    for (uint64_t p = 1; p < NPAGES; p += 2) {
        set_bit(p, f.bmap);
    }
    PageChannels *pc = open_channels(&f, O_WRONLY, channels, dio, detect_zero);
    queue_pages(&f, pc);
    page_channels_free(pc);

    size_t len;
    g_autofree uint8_t *file = read_file(&f, &len);
    g_assert_cmpuint(len, ==, PAGES_OFFSET + NPAGES * PAGE);
    g_assert_true(all_bytes(file, PAGES_OFFSET, 0));
    uint64_t normal = 0, zero = 0;
    for (uint64_t p = 0; p < NPAGES; p++) {
        const uint8_t *slot = file + PAGES_OFFSET + p * PAGE;
        if (p % 7 == 6) {
            /* not queued: bit and slot as they were */
            g_assert_cmpint(test_bit(p, f.bmap), ==, p % 2 == 1);
            g_assert_true(all_bytes(slot, PAGE, UNTOUCHED));
        } else if (page_is_zero(p) && detect_zero) {
            g_assert_false(test_bit(p, f.bmap));
            g_assert_true(all_bytes(slot, PAGE, UNTOUCHED));
            zero++;
        } else {
            g_assert_true(test_bit(p, f.bmap));
            g_assert_cmpmem(slot, PAGE, f.host + p * PAGE, PAGE);
            normal++;
        }
    }
    g_assert_cmpuint(normal, ==, detect_zero ? 57 : 83);
    g_assert_cmpuint(stat64_get(&f.stats.normal_pages), ==, normal);
    g_assert_cmpuint(stat64_get(&f.stats.zero_pages), ==, zero);
    g_assert_cmpuint(stat64_get(&f.stats.bytes), ==, normal * PAGE);
    fixture_cleanup(&f);
}

static void test_write_one(void)
{
    write_case(1, false, true);
}

static void test_write_three(void)
{
    write_case(3, false, true);
}

static void test_write_no_zero_detection(void)
{
    write_case(2, false, false);
}

static void test_write_dio(void)
{
    write_case(1, true, true);
}

static void test_write_dio_multi(void)
{
    write_case(4, true, true);
}

/* Reads: the file's bytes land at the addresses asked for, and only there. */
static void read_case(unsigned channels, bool dio)
{
    Fixture f;
    g_autoptr(GError) err = NULL;
    fixture_init(&f);
    if (dio && !fake_test_have_o_direct(f.dir)) {
        g_test_skip("the file system refuses O_DIRECT");
        fixture_cleanup(&f);
        return;
    }
    /* the file's slots take the guest's pages; then the guest is wiped */
    int fd = open(f.path, O_WRONLY);
    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(pwrite(fd, f.host, NPAGES * PAGE, PAGES_OFFSET), ==, NPAGES * PAGE);
    close(fd);
    g_autofree uint8_t *want = g_memdup2(f.host, NPAGES * PAGE);
    memset(f.host, 0xab, NPAGES * PAGE);

    PageChannels *pc = open_channels(&f, O_RDONLY, channels, dio, false);
    /* pages [2, 10), [11, 12), [20, 84) in 16-page pieces; the rest stays 0xab */
    g_assert_true(page_channels_queue_read(pc, f.host + 2 * PAGE, 8 * PAGE,
                                           PAGES_OFFSET + 2 * PAGE, &err));
    g_assert_true(page_channels_queue_read(pc, f.host + 11 * PAGE, PAGE,
                                           PAGES_OFFSET + 11 * PAGE, &err));
    for (uint64_t p = 20; p < 84; p += 16) {
        g_assert_true(page_channels_queue_read(pc, f.host + p * PAGE, 16 * PAGE,
                                               PAGES_OFFSET + p * PAGE, &err));
    }
    g_assert_true(page_channels_sync(pc, &err));
    g_assert_no_error(err);
    page_channels_free(pc);
    for (uint64_t p = 0; p < NPAGES; p++) {
        bool read = (p >= 2 && p < 10) || p == 11 || (p >= 20 && p < 84);
        if (read) {
            g_assert_cmpmem(f.host + p * PAGE, PAGE, want + p * PAGE, PAGE);
        } else {
            g_assert_true(all_bytes(f.host + p * PAGE, PAGE, 0xab));
        }
    }
    g_assert_cmpuint(stat64_get(&f.stats.bytes), ==, 73 * PAGE);
    fixture_cleanup(&f);
}

static void test_read_one(void)
{
    read_case(1, false);
}

static void test_read_multi(void)
{
    read_case(4, false);
}

static void test_read_dio(void)
{
    read_case(2, true);
}

/*
 * Runs the calling test in a subprocess of its own (so that no thread of
 * another test is counted): true in that subprocess, false in the parent
 * once the subprocess passed.
 */
static bool in_subprocess(void)
{
    if (g_test_subprocess()) {
        return true;
    }
    g_test_trap_subprocess(NULL, 0, G_TEST_SUBPROCESS_INHERIT_STDERR);
    g_test_trap_assert_passed();
    return false;
}

/*
 * A worker's thread starts with its first job: a load has 4 workers on its
 * one fd, but none runs before a read is queued, a sync with nothing
 * queued returns at once, and three reads start three threads.  In a
 * subprocess, so that no thread of another test is counted.
 */
static void test_threads_on_demand(void)
{
    if (!in_subprocess()) {
        return;
    }
    Fixture f;
    g_autoptr(GError) err = NULL;
    fixture_init(&f);
    PageChannels *pc = open_channels(&f, O_RDONLY, 1, false, false);
    g_assert_cmpuint(fake_test_count_threads("pageio"), ==, 0);
    g_assert_true(page_channels_sync(pc, &err));
    g_assert_cmpuint(fake_test_count_threads("pageio"), ==, 0);
    for (uint64_t p = 0; p < 3; p++) {
        g_assert_true(page_channels_queue_read(pc, f.host + p * PAGE, PAGE,
                                               PAGES_OFFSET + p * PAGE, &err));
        g_assert_true(page_channels_sync(pc, &err));
        g_assert_no_error(err);
        g_assert_cmpuint(fake_test_count_threads("pageio"), ==, p + 1);
    }
    g_assert_true(all_bytes(f.host, 3 * PAGE, UNTOUCHED));
    g_assert_cmpuint(stat64_get(&f.stats.bytes), ==, 3 * PAGE);
    page_channels_free(pc);
    fixture_cleanup(&f);
}

/*
 * threads (x-page-io-threads) sets how many workers a load has, spread
 * over its channels: 2 on one channel (both on its one fd, so four reads
 * start two threads), 2 on three channels one each (three threads).
 */
static void threads_case(unsigned channels, unsigned threads, unsigned want)
{
    if (!in_subprocess()) {
        return;
    }
    Fixture f;
    g_autoptr(GError) err = NULL;
    fixture_init(&f);
    PageChannelsConfig cfg = {
        .path = f.path, .flags = O_RDONLY, .channels = channels, .queue_depth = 4,
        .threads = threads, .stats = &f.stats,
    };
    PageChannels *pc = page_channels_new(&cfg, &err);
    g_assert_no_error(err);
    for (uint64_t p = 0; p < 4; p++) {
        g_assert_true(page_channels_queue_read(pc, f.host + p * PAGE, PAGE,
                                               PAGES_OFFSET + p * PAGE, &err));
    }
    g_assert_true(page_channels_sync(pc, &err));
    g_assert_no_error(err);
    g_assert_cmpuint(fake_test_count_threads("pageio"), ==, want);
    g_assert_true(all_bytes(f.host, 4 * PAGE, UNTOUCHED));
    page_channels_free(pc);
    fixture_cleanup(&f);
}

static void test_threads_one_channel(void)
{
    threads_case(1, 2, 2);
}

static void test_threads_three_channels(void)
{
    threads_case(3, 2, 3);
}

/* pwrite and segments: positioned writes of caller buffers, read back by segments. */
static void test_pwrite_segs(void)
{
    Fixture f;
    g_autoptr(GError) err = NULL;
    fixture_init(&f);

    PageChannels *pc = open_channels(&f, O_WRONLY, 2, false, true);
    g_assert_true(page_channels_queue_pwrite(pc, f.host + PAGE, 2 * PAGE, PAGES_OFFSET, &err));
    PageSeg w[] = {
        { f.host + 5 * PAGE, PAGE, PAGES_OFFSET + 10 * PAGE },
        { f.host + 6 * PAGE, 3 * PAGE, PAGES_OFFSET + 20 * PAGE },
    };
    g_assert_true(page_channels_queue_segs(pc, true, w, G_N_ELEMENTS(w), &err));
    g_assert_true(page_channels_queue_segs(pc, true, NULL, 0, &err));   /* nothing */
    g_assert_true(page_channels_sync(pc, &err));
    page_channels_free(pc);
    g_assert_cmpuint(stat64_get(&f.stats.bytes), ==, 6 * PAGE);
    g_assert_cmpuint(stat64_get(&f.stats.normal_pages), ==, 6);

    size_t len;
    g_autofree uint8_t *file = read_file(&f, &len);
    g_assert_cmpmem(file + PAGES_OFFSET, 2 * PAGE, f.host + PAGE, 2 * PAGE);
    g_assert_true(all_bytes(file + PAGES_OFFSET + 2 * PAGE, 8 * PAGE, UNTOUCHED));
    g_assert_cmpmem(file + PAGES_OFFSET + 10 * PAGE, PAGE, f.host + 5 * PAGE, PAGE);
    g_assert_cmpmem(file + PAGES_OFFSET + 20 * PAGE, 3 * PAGE, f.host + 6 * PAGE, 3 * PAGE);

    /* and back with a read segment list */
    g_autofree uint8_t *back = g_malloc0(4 * PAGE);
    PageSeg r[] = {
        { back, PAGE, PAGES_OFFSET + 10 * PAGE },
        { back + PAGE, 3 * PAGE, PAGES_OFFSET + 20 * PAGE },
    };
    memset(&f.stats, 0, sizeof(f.stats));
    pc = open_channels(&f, O_RDONLY, 1, false, false);
    g_assert_true(page_channels_queue_segs(pc, false, r, G_N_ELEMENTS(r), &err));
    g_assert_true(page_channels_sync(pc, &err));
    page_channels_free(pc);
    g_assert_cmpmem(back, 4 * PAGE, f.host + 5 * PAGE, 4 * PAGE);
    g_assert_cmpuint(stat64_get(&f.stats.bytes), ==, 4 * PAGE);
    fixture_cleanup(&f);
}

/* Every channel opens the file itself: a missing file fails with qemu_open's text. */
static void test_open_fails(void)
{
    g_autofree char *dir = fake_test_mkdtemp("pagech");
    g_autofree char *path = g_build_filename(dir, "missing", NULL);
    g_autofree char *want = g_strdup_printf("Could not open '%s': No such file or directory",
                                            path);
    g_autoptr(GError) err = NULL;
    PageChannelsConfig cfg = { .path = path, .flags = O_WRONLY, .channels = 2 };

    g_assert_null(page_channels_new(&cfg, &err));
    g_assert_cmpstr(err->message, ==, want);
    fake_test_rmtree(dir);
}

/* After an abort, queueing and sync fail with "Migration cancelled". */
static void test_abort(void)
{
    Fixture f;
    uint64_t page = 1;
    GError *err = NULL;
    fixture_init(&f);

    PageChannels *pc = open_channels(&f, O_WRONLY, 2, false, true);
    page_channels_abort(pc);
    g_assert_false(page_channels_queue_write(pc, "pc.ram", f.host, PAGES_OFFSET, f.bmap,
                                             &page, 1, &err));
    g_assert_cmpstr(err->message, ==, "Migration cancelled");
    g_clear_error(&err);
    g_assert_false(page_channels_sync(pc, &err));
    g_assert_cmpstr(err->message, ==, "Migration cancelled");
    g_clear_error(&err);
    page_channels_free(pc);
    size_t len;
    g_autofree uint8_t *file = read_file(&f, &len);
    g_assert_true(all_bytes(file + PAGES_OFFSET, NPAGES * PAGE, UNTOUCHED));
    fixture_cleanup(&f);
}

/* See test-migration-state.c: the test again, in a subprocess with MAPRAM_FAULT=spec. */
static bool in_fault_subprocess(const char *spec)
{
    if (g_test_subprocess()) {
        g_assert_cmpstr(g_getenv("MAPRAM_FAULT"), ==, spec);
        return true;
    }
    if (!FAULT_INJECTION_BUILT) {
        g_test_skip("built without -Dfault_injection");
        return false;
    }
    /* no other thread runs here: every test joins the threads it started */
    g_setenv("MAPRAM_FAULT", spec, TRUE);
    g_test_trap_subprocess(NULL, 60 * G_USEC_PER_SEC, G_TEST_SUBPROCESS_INHERIT_STDERR);
    g_unsetenv("MAPRAM_FAULT");
    g_test_trap_assert_passed();
    return false;
}

/*
 * The 2nd write fails (fault point armed at its 2nd hit): one batch of
 * pages 1-3 and 5-7 on one of two channels; the run of 5-7 fails.  The
 * error says where, with the channel, and sticks: a later queue fails too.
 */
static void test_fault_write(void)
{
    if (!in_fault_subprocess("save-page-write:2")) {
        return;
    }
    Fixture f;
    uint64_t pages[] = { 1, 2, 3, 5, 6, 7 };
    GError *err = NULL;
    fixture_init(&f);

    PageChannels *pc = open_channels(&f, O_WRONLY, 2, false, true);
    g_assert_true(page_channels_queue_write(pc, "pc.ram", f.host, PAGES_OFFSET, f.bmap,
                                            pages, G_N_ELEMENTS(pages), &err));
    g_assert_false(page_channels_sync(pc, &err));
    g_assert_cmpstr(err->message, ==, "multifd channel 0: Unable to write to file at offset "
                    "0x105000: Input/output error");
    g_clear_error(&err);
    g_assert_false(page_channels_queue_write(pc, "pc.ram", f.host, PAGES_OFFSET, f.bmap,
                                             pages, 1, &err));
    g_assert_cmpstr(err->message, ==, "multifd channel 0: Unable to write to file at offset "
                    "0x105000: Input/output error");
    g_clear_error(&err);
    page_channels_free(pc);
    /* the first run landed, the failed one did not */
    size_t len;
    g_autofree uint8_t *file = read_file(&f, &len);
    g_assert_cmpmem(file + PAGES_OFFSET + PAGE, 3 * PAGE, f.host + PAGE, 3 * PAGE);
    g_assert_true(all_bytes(file + PAGES_OFFSET + 5 * PAGE, 3 * PAGE, UNTOUCHED));
    g_assert_cmpuint(stat64_get(&f.stats.normal_pages), ==, 3);
    fixture_cleanup(&f);
}

/* A read fails: one channel, so no channel prefix. */
static void test_fault_read(void)
{
    if (!in_fault_subprocess("load-page-read")) {
        return;
    }
    Fixture f;
    GError *err = NULL;
    fixture_init(&f);

    PageChannels *pc = open_channels(&f, O_RDONLY, 1, false, false);
    g_assert_true(page_channels_queue_read(pc, f.host, 2 * PAGE, PAGES_OFFSET + 3 * PAGE,
                                           &err));
    g_assert_false(page_channels_sync(pc, &err));
    g_assert_cmpstr(err->message, ==,
                    "Unable to read from file at offset 0x103000: Input/output error");
    g_clear_error(&err);
    page_channels_free(pc);
    fixture_cleanup(&f);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/migration/page-channels/write/one", test_write_one);
    g_test_add_func("/migration/page-channels/write/three", test_write_three);
    g_test_add_func("/migration/page-channels/write/no-zero-detection",
                    test_write_no_zero_detection);
    g_test_add_func("/migration/page-channels/write/dio", test_write_dio);
    g_test_add_func("/migration/page-channels/write/dio/multi", test_write_dio_multi);
    g_test_add_func("/migration/page-channels/read/one", test_read_one);
    g_test_add_func("/migration/page-channels/read/multi", test_read_multi);
    g_test_add_func("/migration/page-channels/read/dio", test_read_dio);
    g_test_add_func("/migration/page-channels/read/threads-on-demand", test_threads_on_demand);
    g_test_add_func("/migration/page-channels/read/threads/one-channel",
                    test_threads_one_channel);
    g_test_add_func("/migration/page-channels/read/threads/three-channels",
                    test_threads_three_channels);
    g_test_add_func("/migration/page-channels/pwrite-segs", test_pwrite_segs);
    g_test_add_func("/migration/page-channels/open-fails", test_open_fails);
    g_test_add_func("/migration/page-channels/abort", test_abort);
    g_test_add_func("/migration/page-channels/fault/save-page-write", test_fault_write);
    g_test_add_func("/migration/page-channels/fault/load-page-read", test_fault_read);
    return g_test_run();
}
