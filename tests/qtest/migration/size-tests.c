/*
 * Bounded size of mapped-ram files: rewriting re-dirtied pages in place
 * keeps a live save within RAM + metadata, and zero pages stay holes.
 * And what zero pages cost against max-bandwidth: nothing, as in QEMU,
 * while the pages with data are held to it.
 */
#include "framework.h"
#include "tests.h"

#include <string.h>
#include <sys/stat.h>

#define MiB (1ULL << 20)

static uint64_t allocated_bytes(const char *path, uint64_t *logical)
{
    struct stat st;

    g_assert_cmpint(stat(path, &st), ==, 0);
    if (logical) {
        *logical = (uint64_t)st.st_size;
    }
    return (uint64_t)st.st_blocks * 512;
}

static uint64_t blocks_total(GArray *blocks)
{
    uint64_t sum = 0;

    for (guint i = 0; i < blocks->len; i++) {
        sum += g_array_index(blocks, MRBlock, i).used_length;
    }
    return sum;
}

/*
 * A 1 GiB guest writing random pages as fast as it can, saved live.  Its
 * RAM is backed at start (-mem-prealloc): else each random write first
 * backs a fresh huge page (~4 ms where the host backs memory at 0.5 GB/s),
 * the guest dirties a few hundred pages a second, and the save converges
 * at once.
 */
static void test_live_dirty_bounded(void)
{
    static const char *const ungoals[] = { "failed", "cancelled", NULL };
    g_autofree char *uri = mig_file_uri(MIG_FILE_NAME, NULL);
    g_autofree char *path = mig_path(MIG_FILE_NAME);
    g_autoptr(GArray) blocks = NULL;
    MigrateCommon args = {
        .start = { .only_source = true, .mem_size = "1G", .guest = "dirty",
                   .opts_source = "-mem-prealloc" },
        .caps = { "mapped-ram" },
    };
    QTestState *from, *to;
    uint64_t alloc, logical, bound, ram;
    gint64 syncs = 0;

    migrate_start(&args, &from, &to);
    /* Unlimited bandwidth but no convergence: passes go on back to back. */
    migrate_set_parameter_int(from, "max-bandwidth", 0);
    migrate_set_parameter_int(from, "downtime-limit", 1);
    g_usleep(500 * 1000);
    migrate_qmp(from, uri, NULL);
    while (syncs < 5) {
        g_autoptr(JsonObject) info = migrate_query(from);
        const char *st = qtest_json_get_str(info, "status");

        g_assert_cmpstr(st, !=, "failed");
        g_assert_cmpstr(st, !=, "completed");
        syncs = qtest_json_get_int(qtest_json_get_obj(info, "ram"),
                                   "dirty-sync-count", 0);
        g_usleep(10 * 1000);
    }
    migrate_set_parameter_int(from, "downtime-limit", 30000);
    wait_for_migration_status(from, "completed", ungoals);
    qtest_quit(from);

    blocks = mr_file_blocks(path, 0);
    ram = blocks_total(blocks);
    alloc = allocated_bytes(path, &logical);
    bound = ram + blocks->len * MiB + MiB;
    g_test_message("RAM %" G_GUINT64_FORMAT " in %u blocks, file logical %"
                   G_GUINT64_FORMAT " allocated %" G_GUINT64_FORMAT
                   " bound %" G_GUINT64_FORMAT, ram, blocks->len, logical,
                   alloc, bound);
    g_assert_cmpuint(ram, >=, 1ULL << 30);
    g_assert_cmpuint(alloc, <=, bound);
    g_assert_cmpuint(logical, <=, bound);
    /* The guest wrote real data: the save holds more than metadata. */
    g_assert_cmpuint(alloc, >, 16 * MiB);
}

static uint64_t count_nonzero_pages(const uint8_t *mem, uint64_t len)
{
    static const uint8_t zero[MIG_PAGE_SIZE];
    uint64_t n = 0;

    for (uint64_t off = 0; off < len; off += MIG_PAGE_SIZE) {
        n += memcmp(mem + off, zero, MIG_PAGE_SIZE) != 0;
    }
    return n;
}

/* Main RAM once the fill program is done (two equal dumps in a row). */
static uint8_t *wait_fill_done(QTestState *who, uint64_t ram)
{
    g_autofree char *prev = NULL;
    gint64 deadline = g_get_monotonic_time() +
                      (gint64)qtest_timeout_s() * G_USEC_PER_SEC;

    for (;;) {
        uint8_t *mem = guest_memread(who, mig_tmpdir, 0, ram);
        g_autofree char *sum = g_compute_checksum_for_data(G_CHECKSUM_SHA1,
                                                           mem, ram);

        if (prev && !strcmp(prev, sum)) {
            return mem;
        }
        g_free(mem);
        g_free(prev);
        prev = g_steal_pointer(&sum);
        if (g_get_monotonic_time() > deadline) {
            qtest_fail(who, "guest memory still changing after %d s",
                       qtest_timeout_s());
        }
        g_usleep(300 * 1000);
    }
}

static void test_stopped_sparse_bounded(void)
{
    const uint64_t ram = 256 * MiB;
    g_autofree char *uri = mig_file_uri(MIG_FILE_NAME, NULL);
    g_autofree char *path = mig_path(MIG_FILE_NAME);
    g_autoptr(GArray) blocks = NULL;
    g_autofree uint8_t *mem = NULL;
    MigrateCommon args = {
        .start = { .only_source = true, .mem_size = "256M",
                   .guest = "fill,zero=88,text=6,random=6,chunk=16,seed=7" },
        .caps = { "mapped-ram" },
    };
    QTestState *from, *to;
    uint64_t nonzero, alloc, bound, others;

    migrate_start(&args, &from, &to);
    migrate_ensure_converge(from);
    mem = wait_fill_done(from, ram);
    qtest_qmp_assert_success(from, "{'execute': 'stop'}");
    nonzero = count_nonzero_pages(mem, ram);
    migrate_qmp(from, uri, NULL);
    wait_for_migration_complete(from);
    qtest_quit(from);

    blocks = mr_file_blocks(path, 0);
    g_assert_cmpuint(g_array_index(blocks, MRBlock, 0).used_length, ==, ram);
    others = blocks_total(blocks) - ram;
    alloc = allocated_bytes(path, NULL);
    bound = nonzero * MIG_PAGE_SIZE + others + (blocks->len + 1) * MiB;
    g_test_message("non-zero pages %" G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT
                   ", allocated %" G_GUINT64_FORMAT ", bound %" G_GUINT64_FORMAT,
                   nonzero, ram / MIG_PAGE_SIZE, alloc, bound);
    /* About 12% non-zero: the fill really ran, and zeros are holes. */
    g_assert_cmpuint(nonzero, >, ram / MIG_PAGE_SIZE / 20);
    g_assert_cmpuint(nonzero, <, ram / MIG_PAGE_SIZE / 4);
    g_assert_cmpuint(alloc, >=, nonzero * MIG_PAGE_SIZE);
    g_assert_cmpuint(alloc, <=, bound);
}

static uint64_t query_ram_int(QTestState *who, const char *key, gint64 *total_ms)
{
    g_autoptr(JsonObject) info = migrate_query(who);

    *total_ms = qtest_json_get_int(info, "total-time", -1);
    return qtest_json_get_int(qtest_json_get_obj(info, "ram"), key, 0);
}

/*
 * A stopped 1 GiB guest with a few hundred KiB of data, saved to
 * mapped-ram at max-bandwidth 1 MiB/s: zero pages are cleared bits, not
 * writes, so the save takes a fraction of a second (when every page
 * handed to the page channels counted, it took 17 minutes).
 */
static void rate_limit_zero_pages(int channels)
{
    g_autofree char *uri = mig_file_uri(MIG_FILE_NAME, NULL);
    MigrateCommon args = {
        /*
         * -S: the ab guest never runs, and its 99 MiB of pages stay zero
         * (once its first pass has run, they are data: 99 s at this limit)
         */
        .start = { .only_source = true, .mem_size = "1G", .opts_source = "-S" },
        .caps = { "mapped-ram", channels ? "multifd" : NULL },
        .multifd_channels = channels,
    };
    QTestState *from, *to;
    gint64 deadline = g_get_monotonic_time() + 30 * G_USEC_PER_SEC;
    gint64 total_ms;
    g_autofree char *st = NULL;

    migrate_start(&args, &from, &to);
    qtest_qmp_assert_success(from, "{'execute': 'stop'}");
    migrate_set_parameter_int(from, "max-bandwidth", 1 << 20);
    migrate_qmp(from, uri, NULL);
    for (;;) {
        g_free(st);
        st = migrate_query_status(from);
        if (!strcmp(st, "completed") || !strcmp(st, "failed") ||
            g_get_monotonic_time() > deadline) {
            break;
        }
        g_usleep(20 * 1000);
    }
    g_assert_cmpstr(st, ==, "completed");
    uint64_t zero = query_ram_int(from, "duplicate", &total_ms);
    uint64_t normal = query_ram_int(from, "normal", &total_ms);
    g_test_message("%" G_GUINT64_FORMAT " zero and %" G_GUINT64_FORMAT
                   " normal pages in %" G_GINT64_FORMAT " ms", zero, normal, total_ms);
    g_assert_cmpuint(zero, >, 250000);
    g_assert_cmpuint(normal, >, 0);
    g_assert_cmpuint(normal, <, 1024);
    qtest_quit(from);
}

/*
 * The pages with data are held to max-bandwidth, queued ones included: a
 * stopped guest with 128 MiB of data saved at 32 MiB/s takes 4 s, less the
 * slack of one window and one batch (without counting the pages queued to
 * the page channels, saves ran a third over the limit; forgiving what a
 * window overran by, 11 %).  At 1 MiB/s a window's budget is a tenth of
 * a batch: 4.5 MiB of data take 3.4 s at least (when a window's debt was
 * forgiven after one window, 0.9 s).
 */
static void rate_limit_data(int channels, uint64_t limit, const char *mem_size)
{
    uint64_t mem_bytes = g_ascii_strtoull(mem_size, NULL, 10) * MiB;
    g_autofree char *uri = mig_file_uri(MIG_FILE_NAME, NULL);
    g_autofree uint8_t *mem = NULL;
    MigrateCommon args = {
        .start = { .only_source = true, .mem_size = mem_size,
                   .guest = "fill,zero=50,text=25,random=25,chunk=16,seed=3" },
        .caps = { "mapped-ram", channels ? "multifd" : NULL },
        .multifd_channels = channels,
    };
    QTestState *from, *to;
    gint64 total_ms;

    g_assert(g_str_has_suffix(mem_size, "M"));
    migrate_start(&args, &from, &to);
    mem = wait_fill_done(from, mem_bytes);
    qtest_qmp_assert_success(from, "{'execute': 'stop'}");
    migrate_set_parameter_int(from, "max-bandwidth", limit);
    /* the whole pass under the limit: the switchover, which lifts it, finds nothing left */
    migrate_set_parameter_int(from, "downtime-limit", 1);
    migrate_qmp(from, uri, NULL);
    if (limit <= MiB) {
        /*
         * The estimate follows the limited rate (at 1 MiB/s no 100 ms window
         * sends the 1 MiB that made a window count: mbps stayed 0 throughout)
         */
        g_usleep(1500 * 1000);
        g_autoptr(JsonObject) mid = migrate_query(from);
        g_assert_cmpstr(qtest_json_get_str(mid, "status"), ==, "active");
        double mbps = json_object_get_double_member(qtest_json_get_obj(mid, "ram"), "mbps");
        g_test_message("mbps %.2f after 1.5 s at a limit of %" G_GUINT64_FORMAT " B/s", mbps,
                       limit);
        g_assert_cmpfloat(mbps, >, 0.5 * limit * 8 / 1e6);
        g_assert_cmpfloat(mbps, <, 2.0 * limit * 8 / 1e6);
        g_assert_cmpint(qtest_json_get_int(mid, "expected-downtime", 0), >, 0);
    }
    wait_for_migration_complete(from);
    uint64_t bytes = query_ram_int(from, "normal-bytes", &total_ms);
    g_test_message("%" G_GUINT64_FORMAT " bytes of data in %" G_GINT64_FORMAT
                   " ms at a limit of %" G_GUINT64_FORMAT " B/s", bytes, total_ms, limit);
    g_assert_cmpuint(bytes, >, mem_bytes / 100 * 40);
    g_assert_cmpuint(bytes, >=, count_nonzero_pages(mem, mem_bytes) * MIG_PAGE_SIZE);
    /* over the limit by one 100 ms window's budget and one batch (1 MiB) at most */
    g_assert_cmpint(total_ms, >=, (gint64)((bytes - limit / 10 - MiB) * 1000 / limit));
    qtest_quit(from);
}

static void test_rate_limit_zero_pages(void)
{
    rate_limit_zero_pages(0);
}

static void test_rate_limit_zero_pages_multifd(void)
{
    rate_limit_zero_pages(4);
}

static void test_rate_limit_data(void)
{
    rate_limit_data(0, 32 * MiB, "256M");
}

static void test_rate_limit_data_multifd(void)
{
    rate_limit_data(4, 32 * MiB, "256M");
}

static void test_rate_limit_data_small(void)
{
    rate_limit_data(0, MiB, "8M");
}

static void test_rate_limit_data_small_multifd(void)
{
    rate_limit_data(4, MiB, "8M");
}

void migration_test_add_size(void)
{
    migration_test_add("/migration/mapped-ram/rate-limit/zero-pages",
                       test_rate_limit_zero_pages, MIG_SMOKE);
    migration_test_add("/migration/mapped-ram/rate-limit/zero-pages/multifd",
                       test_rate_limit_zero_pages_multifd, MIG_FULL);
    migration_test_add("/migration/mapped-ram/rate-limit/data",
                       test_rate_limit_data, MIG_FULL);
    migration_test_add("/migration/mapped-ram/rate-limit/data/multifd",
                       test_rate_limit_data_multifd, MIG_FULL);
    migration_test_add("/migration/mapped-ram/rate-limit/data/small-window",
                       test_rate_limit_data_small, MIG_FULL);
    migration_test_add("/migration/mapped-ram/rate-limit/data/small-window/multifd",
                       test_rate_limit_data_small_multifd, MIG_FULL);
    migration_test_add("/migration/mapped-ram/bounded-size/live-dirty",
                       test_live_dirty_bounded, MIG_FULL);
    migration_test_add("/migration/mapped-ram/bounded-size/stopped-sparse",
                       test_stopped_sparse_bounded, MIG_FULL);
}
