/*
 * Bounded size of mapped-ram files: rewriting re-dirtied pages in place
 * keeps a live save within RAM + metadata, and zero pages stay holes.
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

void migration_test_add_size(void)
{
    migration_test_add("/migration/mapped-ram/bounded-size/live-dirty",
                       test_live_dirty_bounded, MIG_FULL);
    migration_test_add("/migration/mapped-ram/bounded-size/stopped-sparse",
                       test_stopped_sparse_bounded, MIG_FULL);
}
