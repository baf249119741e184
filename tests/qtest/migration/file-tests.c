/*
 * file: migration tests, stream and mapped-ram, mirroring QEMU's
 * migration_test_add_file() set plus direct-io without multifd.
 */
#include "framework.h"
#include "tests.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

static void test_precopy_file(void)
{
    g_autofree char *uri = mig_file_uri(MIG_FILE_NAME, NULL);
    MigrateCommon args = { .connect_uri = uri };

    test_file_common(&args, true);
}

static void test_precopy_file_live(void)
{
    g_autofree char *uri = mig_file_uri(MIG_FILE_NAME, NULL);
    MigrateCommon args = { .connect_uri = uri };

    test_file_common(&args, false);
}

static void test_precopy_file_offset(void)
{
    g_autofree char *uri = mig_file_uri(MIG_FILE_NAME, ",offset=4096");
    MigrateCommon args = { .connect_uri = uri };

    test_file_common(&args, false);
}

static void test_precopy_file_offset_bad(void)
{
    g_autofree char *uri = mig_file_uri(MIG_FILE_NAME, ",offset=0x20M");
    MigrateCommon args = {
        .connect_uri = uri,
        .result = MIG_TEST_QMP_ERROR,
        .expected_error = "file URI has bad offset 0x20M: Invalid argument",
    };

    test_file_common(&args, false);
}

/* --- mapped-ram ---------------------------------------------------------- */

static void test_mapped_ram(void)
{
    g_autofree char *uri = mig_file_uri(MIG_FILE_NAME, NULL);
    MigrateCommon args = { .connect_uri = uri, .caps = { "mapped-ram" } };

    test_file_common(&args, true);
}

static void test_mapped_ram_live(void)
{
    g_autofree char *uri = mig_file_uri(MIG_FILE_NAME, NULL);
    MigrateCommon args = { .connect_uri = uri, .caps = { "mapped-ram" } };

    test_file_common(&args, false);
}

static void test_mapped_ram_offset(void)
{
    g_autofree char *uri = mig_file_uri(MIG_FILE_NAME, ",offset=4096");
    MigrateCommon args = { .connect_uri = uri, .caps = { "mapped-ram" } };

    test_file_common(&args, true);
}

static void test_multifd_mapped_ram(void)
{
    g_autofree char *uri = mig_file_uri(MIG_FILE_NAME, NULL);
    MigrateCommon args = {
        .connect_uri = uri,
        .caps = { "mapped-ram", "multifd" },
        .multifd_channels = 4,
    };

    test_file_common(&args, true);
}

static void test_multifd_mapped_ram_live(void)
{
    g_autofree char *uri = mig_file_uri(MIG_FILE_NAME, NULL);
    MigrateCommon args = {
        .connect_uri = uri,
        .caps = { "mapped-ram", "multifd" },
        .multifd_channels = 4,
    };

    test_file_common(&args, false);
}

/* multifd 4 + direct-io, stopped; @opts_target: extra destination options */
static void multifd_mapped_ram_dio(const char *opts_target, bool exact_ram_check)
{
    g_autofree char *uri = mig_file_uri(MIG_FILE_NAME, NULL);
    MigrateCommon args = {
        .connect_uri = uri,
        .caps = { "mapped-ram", "multifd" },
        .multifd_channels = 4,
        .direct_io = true,
        .start = { .opts_target = opts_target },
        .exact_ram_check = exact_ram_check,
    };

    if (!probe_o_direct_support(mig_tmpdir)) {
        g_test_skip("Filesystem does not support O_DIRECT");
        return;
    }
    test_file_common(&args, true);
}

static void test_multifd_mapped_ram_dio(void)
{
    multifd_mapped_ram_dio(NULL, false);
}

/* A destination whose RAM was backed at start-up (-mem-prealloc). */
static void test_multifd_mapped_ram_dio_prealloc(void)
{
    multifd_mapped_ram_dio("-mem-prealloc", true);
}

/* Beyond QEMU: direct-io takes effect with mapped-ram alone. */
static void test_precopy_mapped_ram_dio(void)
{
    g_autofree char *uri = mig_file_uri(MIG_FILE_NAME, NULL);
    MigrateCommon args = {
        .connect_uri = uri,
        .caps = { "mapped-ram" },
        .direct_io = true,
    };

    if (!probe_o_direct_support(mig_tmpdir)) {
        g_test_skip("Filesystem does not support O_DIRECT");
        return;
    }
    test_file_common(&args, true);
}

/* --- FIFOs --------------------------------------------------------------- */

/*
 * A file: URI may name a FIFO, which a load reads as a stream.  Its
 * blocking open waits for a writer: in QEMU the monitor hangs in it.
 * Here the destination opens it without waiting and its load waits for
 * the writer, as on a socket (migrate-incoming returns, status setup).
 * A live round trip through a FIFO, the destination listening first and
 * the source writing through exec: (before, the destination's
 * migrate-incoming never returned).
 */
static void test_precopy_file_fifo(void)
{
    g_autofree char *fifo = mig_path("fifo");
    g_autofree char *listen = g_strdup_printf("file:%s", fifo);
    g_autofree char *connect = g_strdup_printf("exec:cat > %s", fifo);
    MigrateCommon args = { .listen_uri = listen, .connect_uri = connect };

    g_assert_cmpint(mkfifo(fifo, 0600), ==, 0);
    test_precopy_common(&args);
    unlink(fifo);
}

/*
 * Nobody at the other end.  A save into a FIFO is refused by the command
 * with QEMU 10.2's error (it truncates the file it saves into, which a
 * FIFO refuses; QEMU only says so once a reader came, its monitor hung
 * until then), the source running on intact.  A destination waiting for
 * a writer answers QMP meanwhile and quits at once.
 */
static void test_precopy_file_fifo_no_peer(void)
{
    g_autofree char *fifo = mig_path("fifo");
    g_autofree char *uri = g_strdup_printf("file:%s", fifo);
    g_autofree char *uri_off = g_strdup_printf("file:%s,offset=4096", fifo);
    MigrateCommon args = { 0 };
    QTestState *from, *to;

    g_assert_cmpint(mkfifo(fifo, 0600), ==, 0);
    migrate_start(&args, &from, &to);
    wait_for_serial("src_serial");
    {
        g_autofree char *desc = migrate_qmp_expect_error(from, uri, NULL);
        g_autofree char *desc_off = migrate_qmp_expect_error(from, uri_off, NULL);

        g_assert_cmpstr(desc, ==, "failed to truncate migration file to offset 0: "
                        "Invalid argument");
        g_assert_cmpstr(desc_off, ==, "failed to truncate migration file to offset 1000: "
                        "Invalid argument");
    }
    assert_source_intact(from);

    migrate_incoming_qmp(to, uri, NULL, NULL);
    g_usleep(200 * 1000);
    {
        g_autofree char *st = migrate_query_status(to);

        g_assert_cmpstr(st, ==, "setup");
    }
    gint64 t0 = g_get_monotonic_time();
    qtest_quit(to);
    g_assert_cmpint(g_get_monotonic_time() - t0, <, 10 * G_USEC_PER_SEC);
    qtest_quit(from);
    unlink(fifo);
}

/* --- fdsets -------------------------------------------------------------- */

typedef struct FdsetSpec {
    int nfds;           /* per side */
    bool dio_second;    /* the second fd of each side has O_DIRECT */
} FdsetSpec;

static void fdset_start_hook(QTestState *from, QTestState *to,
                             MigrateCommon *args)
{
    const FdsetSpec *spec = args->opaque;
    g_autofree char *file = mig_path(MIG_FILE_NAME);

    for (int i = 0; i < spec->nfds; i++) {
        int dio = (spec->dio_second && i == 1) ? O_DIRECT : 0;

        mig_add_fd(from, 1, file, O_CREAT | O_WRONLY | dio);
        mig_add_fd(to, 1, file, O_CREAT | O_RDONLY | dio);
    }
}

static void fdset_end_hook(QTestState *from, QTestState *to,
                           MigrateCommon *args)
{
    g_autoptr(JsonNode) sets = NULL;
    g_autofree char *text = NULL;

    qtest_qmp_assert_success(from, "{'execute': 'remove-fd', "
                             "'arguments': {'fdset-id': 1}}");
    sets = qtest_qmp_assert_success_node(from, "{'execute': 'query-fdsets'}");
    text = qtest_json_text(sets);
    g_assert_cmpstr(text, ==, "[]");
}

/*
 * A save into an fdset that already took one: the fd the save gets is a
 * dup sharing its file position with the set's fd, which the first save
 * left at its end.  Before, the second save was written from there, after
 * a hole where its header belonged, and reported completed: a file that
 * never loads.  The first save is undone by the source's cont.
 */
static void fdset_twice_hook(QTestState *from, QTestState *to, MigrateCommon *args)
{
    fdset_start_hook(from, to, args);
    migrate_qmp(from, args->connect_uri, NULL);
    wait_for_migration_complete(from);
    qtest_qmp_assert_success(from, "{'execute': 'cont'}");
    qtest_qmp_eventwait(from, "RESUME");
}

static void fdset_twice(const char *cap)
{
    FdsetSpec spec = { .nfds = 1 };
    MigrateCommon args = {
        .connect_uri = "file:/dev/fdset/1",
        .caps = { cap },
        .start_hook = fdset_twice_hook,
        .end_hook = fdset_end_hook,
        .opaque = &spec,
    };

    test_file_common(&args, true);
}

static void test_precopy_file_fdset_twice(void)
{
    fdset_twice(NULL);
}

static void test_mapped_ram_fdset_twice(void)
{
    fdset_twice("mapped-ram");
}

static void test_precopy_file_offset_fdset(void)
{
    FdsetSpec spec = { .nfds = 1 };
    MigrateCommon args = {
        .connect_uri = "file:/dev/fdset/1,offset=4096",
        .start_hook = fdset_start_hook,
        .end_hook = fdset_end_hook,
        .opaque = &spec,
    };

    test_file_common(&args, false);
}

static void test_multifd_mapped_ram_fdset(void)
{
    FdsetSpec spec = { .nfds = 2 };
    MigrateCommon args = {
        .connect_uri = "file:/dev/fdset/1,offset=4096",
        .caps = { "mapped-ram", "multifd" },
        .multifd_channels = 4,
        .start_hook = fdset_start_hook,
        .end_hook = fdset_end_hook,
        .opaque = &spec,
    };

    test_file_common(&args, true);
}

static void test_multifd_mapped_ram_fdset_dio(void)
{
    FdsetSpec spec = { .nfds = 2, .dio_second = true };
    MigrateCommon args = {
        .connect_uri = "file:/dev/fdset/1,offset=4096",
        .caps = { "mapped-ram", "multifd" },
        .multifd_channels = 4,
        .direct_io = true,
        .start_hook = fdset_start_hook,
        .end_hook = fdset_end_hook,
        .opaque = &spec,
    };

    if (!probe_o_direct_support(mig_tmpdir)) {
        g_test_skip("Filesystem does not support O_DIRECT");
        return;
    }
    test_file_common(&args, true);
}

void migration_test_add_file(void)
{
    migration_test_add("/migration/precopy/file", test_precopy_file,
                       MIG_SMOKE);
    migration_test_add("/migration/precopy/file/live",
                       test_precopy_file_live, MIG_FULL);
    migration_test_add("/migration/precopy/file/offset",
                       test_precopy_file_offset, MIG_FULL);
    migration_test_add("/migration/precopy/file/offset/fdset",
                       test_precopy_file_offset_fdset, MIG_FULL);
    migration_test_add("/migration/precopy/file/fdset/twice",
                       test_precopy_file_fdset_twice, MIG_SMOKE);
    migration_test_add("/migration/precopy/file/mapped-ram/fdset/twice",
                       test_mapped_ram_fdset_twice, MIG_FULL);
    migration_test_add("/migration/precopy/file/fifo", test_precopy_file_fifo, MIG_SMOKE);
    migration_test_add("/migration/precopy/file/fifo/no-peer",
                       test_precopy_file_fifo_no_peer, MIG_SMOKE);
    migration_test_add("/migration/precopy/file/offset/bad",
                       test_precopy_file_offset_bad, MIG_SMOKE);
    migration_test_add("/migration/precopy/file/mapped-ram",
                       test_mapped_ram, MIG_SMOKE);
    migration_test_add("/migration/precopy/file/mapped-ram/live",
                       test_mapped_ram_live, MIG_FULL);
    migration_test_add("/migration/precopy/file/mapped-ram/offset",
                       test_mapped_ram_offset, MIG_FULL);
    migration_test_add("/migration/precopy/file/mapped-ram/dio",
                       test_precopy_mapped_ram_dio, MIG_FULL);
    migration_test_add("/migration/multifd/file/mapped-ram",
                       test_multifd_mapped_ram, MIG_FULL);
    migration_test_add("/migration/multifd/file/mapped-ram/live",
                       test_multifd_mapped_ram_live, MIG_FULL);
    migration_test_add("/migration/multifd/file/mapped-ram/dio",
                       test_multifd_mapped_ram_dio, MIG_SMOKE);
    migration_test_add("/migration/multifd/file/mapped-ram/dio/prealloc",
                       test_multifd_mapped_ram_dio_prealloc, MIG_FULL);
    migration_test_add("/migration/multifd/file/mapped-ram/fdset",
                       test_multifd_mapped_ram_fdset, MIG_FULL);
    migration_test_add("/migration/multifd/file/mapped-ram/fdset/dio",
                       test_multifd_mapped_ram_fdset_dio, MIG_FULL);
}
