/*
 * The fill guest (zero, text and random chunks over all of RAM) through
 * each restore mode of a mapped-ram file: copy, on demand (postcopy-ram)
 * and shared (x-mapped-ram-shared).  Every byte of the destination's RAM
 * is compared with the source's once the last page is in; on demand also
 * while pages still arrive (slow background): what the guest touches
 * then must already be right.
 */
#include "framework.h"
#include "tests.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#define FILL_MEM "32M"
#define FILL_BYTES (32ULL << 20)
#define FILL_GUEST "fill,zero=40,text=30,random=30,chunk=8,seed=11"

typedef enum FillMode {
    FILL_COPY,
    FILL_ON_DEMAND,
    FILL_SHARED,
} FillMode;

/* Main RAM once the fill program stopped changing it (two equal dumps). */
static uint8_t *fill_done(QTestState *who)
{
    g_autofree char *prev = NULL;
    gint64 deadline = g_get_monotonic_time() + (gint64)qtest_timeout_s() * G_USEC_PER_SEC;

    for (;;) {
        uint8_t *mem = guest_memread(who, mig_tmpdir, 0, FILL_BYTES);
        g_autofree char *sum = g_compute_checksum_for_data(G_CHECKSUM_SHA1, mem,
                                                           FILL_BYTES);

        if (prev && !strcmp(prev, sum)) {
            return mem;
        }
        g_free(mem);
        g_free(prev);
        prev = g_steal_pointer(&sum);
        if (g_get_monotonic_time() > deadline) {
            qtest_fail(who, "fill guest memory still changing after %d s", qtest_timeout_s());
        }
        g_usleep(200 * 1000);
    }
}

/*
 * A filled guest saved live with mapped-ram (idle by then, so the
 * destination resumes by itself); returns the file: URI and, in *mem,
 * the source's RAM.
 */
static char *saved_guest(const char *guest, uint8_t **mem)
{
    MigrateCommon args = {
        .start = { .only_source = true, .mem_size = FILL_MEM, .guest = guest },
        .caps = { "mapped-ram" },
    };
    char *uri = mig_file_uri(MIG_FILE_NAME, NULL);
    QTestState *from, *to;

    migrate_start(&args, &from, &to);
    migrate_ensure_converge(from);
    *mem = fill_done(from);
    migrate_qmp(from, uri, NULL);
    wait_for_migration_complete(from);
    qtest_quit(from);
    return uri;
}

static char *saved_fill(uint8_t **mem)
{
    return saved_guest(FILL_GUEST, mem);
}

static QTestState *start_dest_guest(FillMode mode, const char *fault, const char *guest)
{
    g_autofree char *env_fault = fault ? g_strdup_printf("MAPRAM_FAULT=%s", fault) : NULL;
    const char *env[] = { env_fault, NULL };
    g_autofree char *vm_args = mig_vm_args(FILL_MEM, guest, "dest_serial",
                                           "-incoming defer");
    QTestState *to = qtest_init_bin_env(qtest_vm_binary(), env, "%s", vm_args);

    migrate_set_capability(to, "events", true);
    migrate_set_capability(to, "mapped-ram", true);
    if (mode == FILL_ON_DEMAND) {
        migrate_set_capability(to, "postcopy-ram", true);
    } else if (mode == FILL_SHARED) {
        migrate_set_parameter_bool(to, "x-mapped-ram-shared", true);
    }
    return to;
}

static QTestState *start_dest(FillMode mode, const char *fault)
{
    return start_dest_guest(mode, fault, FILL_GUEST);
}

/* [addr, addr + len) of the destination's RAM against the source's; names the first page that differs. */
static void assert_range_equal(QTestState *to, const uint8_t *want, uint64_t addr,
                               uint64_t len)
{
    g_autofree uint8_t *got = guest_memread(to, mig_tmpdir, addr, len);

    for (uint64_t off = 0; off < len; off += MIG_PAGE_SIZE) {
        if (memcmp(got + off, want + addr + off, MIG_PAGE_SIZE) != 0) {
            qtest_fail(to, "destination page at 0x%" G_GINT64_MODIFIER "x differs "
                       "from the source's", addr + off);
        }
    }
}

static void assert_ram_equal(QTestState *to, const uint8_t *want)
{
    assert_range_equal(to, want, 0, FILL_BYTES);
}

/* The fill really ran: zero, text and random pages are all there. */
static void assert_filled(const uint8_t *mem)
{
    static const uint8_t zero[MIG_PAGE_SIZE];
    uint64_t zeros = 0, pages = FILL_BYTES / MIG_PAGE_SIZE;

    for (uint64_t off = 0; off < FILL_BYTES; off += MIG_PAGE_SIZE) {
        zeros += memcmp(mem + off, zero, MIG_PAGE_SIZE) == 0;
    }
    g_assert_cmpuint(zeros, >, pages / 5);
    g_assert_cmpuint(zeros, <, pages * 3 / 5);
    g_assert_nonnull(memmem(mem, FILL_BYTES, "migration", 9));
}

static void test_fill_restore(FillMode mode)
{
    g_autofree uint8_t *mem = NULL;
    g_autofree char *uri = saved_fill(&mem);
    QTestState *to = start_dest(mode, NULL);

    assert_filled(mem);
    migrate_incoming_qmp(to, uri, NULL, NULL);
    qtest_qmp_eventwait(to, "RESUME");
    wait_for_migration_complete(to);
    assert_ram_equal(to, mem);
    qtest_quit(to);
}

/*
 * A copy restore into RAM backed by a file that already holds data (0xaa
 * in every byte, or in every other MiB with holes between): the saved
 * file's clear pages read back as zero, not as the backing file's old
 * bytes, with the checksum table in use and without.
 */
static void test_copy_stale_backing(bool checksums)
{
    g_autofree uint8_t *mem = NULL;
    g_autofree char *uri = saved_fill(&mem);
    g_autofree char *backing = mig_path("stale.ram");
    g_autofree char *old = g_malloc(FILL_BYTES);
    g_autofree char *vm_args = NULL;
    QTestState *to;

    memset(old, 0xaa, FILL_BYTES);
    if (checksums) {
        g_assert_true(g_file_set_contents(backing, old, FILL_BYTES, NULL));
    } else {
        /* data in every other MiB, holes between: only the data extents need clearing */
        int fd = open(backing, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);

        g_assert_cmpint(fd, >=, 0);
        g_assert_cmpint(ftruncate(fd, FILL_BYTES), ==, 0);
        for (uint64_t off = 0; off < FILL_BYTES; off += 2 << 20) {
            g_assert_cmpint(pwrite(fd, old, 1 << 20, off), ==, 1 << 20);
        }
        close(fd);
    }
    vm_args = g_strdup_printf("-m %s -machine memory-backend=mig.mem "
                              "-object memory-backend-file,id=mig.mem,size=%s,mem-path=%s "
                              "-guest %s -serial file:%s/dest_serial -incoming defer",
                              FILL_MEM, FILL_MEM, backing, FILL_GUEST, mig_tmpdir);
    to = qtest_init_bin(qtest_vm_binary(), "%s", vm_args);
    migrate_set_capability(to, "events", true);
    migrate_set_capability(to, "mapped-ram", true);
    migrate_set_parameter_bool(to, "x-checksums", checksums);
    assert_filled(mem);
    migrate_incoming_qmp(to, uri, NULL, NULL);
    qtest_qmp_eventwait(to, "RESUME");
    wait_for_migration_complete(to);
    assert_ram_equal(to, mem);
    qtest_quit(to);
    unlink(backing);
}

static void test_copy_stale_backing_csum(void)
{
    test_copy_stale_backing(true);
}

static void test_copy_stale_backing_no_csum(void)
{
    test_copy_stale_backing(false);
}

static void test_copy(void)
{
    test_fill_restore(FILL_COPY);
}

static void test_on_demand(void)
{
    test_fill_restore(FILL_ON_DEMAND);
}

static void test_shared(void)
{
    test_fill_restore(FILL_SHARED);
}

/*
 * On demand with a slow background: right after RESUME most pages are
 * still missing; a page of each window read then (through the fault
 * thread) is the source's while the background still runs, and so is all
 * of RAM once the last page is in.
 */
static void test_on_demand_while_arriving(void)
{
    g_autofree uint8_t *mem = NULL;
    g_autofree char *uri = saved_fill(&mem);
    QTestState *to = start_dest(FILL_ON_DEMAND, "postcopy-background-slow");
    JsonObject *rsp;

    migrate_incoming_qmp(to, uri, NULL, NULL);
    qtest_qmp_eventwait(to, "RESUME");
    rsp = migrate_query(to);
    g_assert_cmpstr(qtest_json_get_str(rsp, "status"), ==, "postcopy-active");
    g_assert_cmpint(qtest_json_get_int(qtest_json_get_obj(rsp, "ram"), "remaining", 0), >,
                    FILL_BYTES / 4);
    json_object_unref(rsp);

    /* a page of every 1 MiB window of the file: each read through the fault thread */
    for (uint64_t addr = 0; addr < FILL_BYTES; addr += 1 << 20) {
        assert_range_equal(to, mem, addr + ((addr >> 20) % 256) * MIG_PAGE_SIZE,
                           MIG_PAGE_SIZE);
    }
    rsp = migrate_query(to);
    g_assert_cmpstr(qtest_json_get_str(rsp, "status"), ==, "postcopy-active");
    g_assert_cmpint(qtest_json_get_int(qtest_json_get_obj(rsp, "ram"), "postcopy-requests",
                                       0), >, 0);
    json_object_unref(rsp);

    wait_for_migration_complete(to);
    assert_ram_equal(to, mem);
    qtest_quit(to);
}

/*
 * The touch guest (system/guest.c): filled like fill, it times 1,000
 * distinct page reads on the VM that loaded it, never on the source, and
 * leaves them in the last page: "TOUCHLAT", count, then ns per touch.
 */
#define TOUCH_GUEST "touch,zero=40,text=30,random=30,chunk=8,seed=11"
#define TOUCH_RESULTS (FILL_BYTES - MIG_PAGE_SIZE)

static void touch_case(const char *dst_guest)
{
    g_autofree uint8_t *mem = NULL;
    g_autofree char *uri = saved_guest(TOUCH_GUEST, &mem);
    g_autofree uint8_t *page = NULL;
    QTestState *to = start_dest_guest(FILL_ON_DEMAND, NULL, dst_guest);
    gint64 deadline = g_get_monotonic_time() + (gint64)qtest_timeout_s() * G_USEC_PER_SEC;
    uint32_t count, ns;

    /* the source filled, and never touched */
    g_assert_cmpint(memcmp(mem + TOUCH_RESULTS, "TOUCHLAT", 8), !=, 0);
    migrate_incoming_qmp(to, uri, NULL, NULL);
    qtest_qmp_eventwait(to, "RESUME");
    for (;;) {
        g_free(page);
        page = guest_memread(to, mig_tmpdir, TOUCH_RESULTS, MIG_PAGE_SIZE);
        if (!memcmp(page, "TOUCHLAT", 8)) {
            break;
        }
        if (g_get_monotonic_time() > deadline) {
            qtest_fail(to, "no touch results in the last page after %d s", qtest_timeout_s());
        }
        g_usleep(20 * 1000);
    }
    memcpy(&count, page + 8, 4);
    g_assert_cmpuint(count, ==, 1000);
    for (uint32_t i = 0; i < count; i++) {
        memcpy(&ns, page + 16 + 4 * i, 4);
        g_assert_cmpuint(ns, >, 0);
    }
    wait_for_migration_complete(to);
    /* the touches read: all of RAM but the results page is the source's */
    assert_range_equal(to, mem, 0, TOUCH_RESULTS);
    qtest_quit(to);
}

static void test_touch(void)
{
    touch_case(TOUCH_GUEST);
}

/*
 * The loaded "cpu" state decides the program: a touch guest restored into
 * a VM started with -guest idle runs touch there (it crashed writing its
 * timings to a buffer only a touch-started VM had).
 */
static void test_touch_into_idle(void)
{
    touch_case("idle");
}

void migration_test_add_fill_restore(void)
{
    migration_test_add("/migration/fill/file/mapped-ram/copy", test_copy, MIG_FULL);
    migration_test_add("/migration/fill/file/mapped-ram/copy/stale-backing-file",
                       test_copy_stale_backing_csum, MIG_SMOKE);
    migration_test_add("/migration/fill/file/mapped-ram/copy/stale-backing-file/no-checksums",
                       test_copy_stale_backing_no_csum, MIG_FULL);
    migration_test_add("/migration/fill/file/mapped-ram/ondemand", test_on_demand, MIG_FULL);
    migration_test_add("/migration/fill/file/mapped-ram/ondemand/while-arriving",
                       test_on_demand_while_arriving, MIG_FULL);
    migration_test_add("/migration/fill/file/mapped-ram/shared", test_shared, MIG_FULL);
    migration_test_add("/migration/fill/touch", test_touch, MIG_FULL);
    migration_test_add("/migration/fill/touch/into-idle", test_touch_into_idle, MIG_SMOKE);
}
