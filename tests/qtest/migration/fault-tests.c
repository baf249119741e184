/*
 * Named fault points (util/fault.h), each driven by a test: a failure at
 * that point must give a clear error, leave the source running with its
 * memory intact, and never resume a half-loaded destination.
 */
#include "framework.h"
#include "tests.h"

#include <string.h>

static void save_must_fail(const char *fault, const char *cap, int channels,
                           const char *want)
{
    static const char *const ungoals[] = { "completed", "cancelled", NULL };
    g_autofree char *env_fault = g_strdup_printf("MAPRAM_FAULT=%s", fault);
    const char *env[] = { env_fault, NULL };
    g_autofree char *uri = mig_file_uri(MIG_FILE_NAME, NULL);
    g_autofree char *desc = NULL;
    MigrateCommon args = { .start.only_source = true, .start.env_source = env,
                           .multifd_channels = channels };
    QTestState *from, *to;

    if (cap) {
        args.caps[0] = cap;
        if (channels) {
            args.caps[1] = "multifd";
        }
    }
    migrate_start(&args, &from, &to);
    migrate_ensure_converge(from);
    wait_for_serial("src_serial");
    migrate_qmp(from, uri, NULL);
    wait_for_migration_status(from, "failed", ungoals);
    desc = wait_for_migration_fail(from);
    g_test_message("save error: %s", desc);
    if (!strstr(desc, want)) {
        qtest_fail(from, "save error '%s' does not contain '%s'", desc, want);
    }
    assert_source_intact(from);
    qtest_quit(from);
}

static void test_save_page_write(void)
{
    save_must_fail("save-page-write", "mapped-ram", 2, "Unable to write to file at offset");
}

static void test_save_page_write_single(void)
{
    save_must_fail("save-page-write", "mapped-ram", 0, "Unable to write to file at offset");
}

static void test_save_device_state(void)
{
    save_must_fail("save-device-state", NULL, 0, "Failed to save device state");
}

/* A stalled channel: migrate_cancel still ends the save promptly. */
static void test_send_stall_cancel(void)
{
    static const char *const ungoals[] = { "failed", "completed", NULL };
    const char *env[] = { "MAPRAM_FAULT=multifd-send-stall", NULL };
    g_autofree char *uri = mig_file_uri(MIG_FILE_NAME, NULL);
    MigrateCommon args = { .start.only_source = true, .start.env_source = env,
                           .caps = { "mapped-ram", "multifd" }, .multifd_channels = 2 };
    QTestState *from, *to;

    migrate_start(&args, &from, &to);
    migrate_ensure_converge(from);
    wait_for_serial("src_serial");
    migrate_qmp(from, uri, NULL);
    wait_for_migration_status(from, "active", ungoals);
    qtest_qmp_assert_success(from, "{'execute': 'migrate_cancel'}");
    wait_for_migration_status(from, "cancelled", ungoals);
    assert_source_intact(from);
    qtest_quit(from);
}

static void test_load_page_read(void)
{
    static const char *const caps[] = { "mapped-ram", NULL };
    const char *env[] = { "MAPRAM_FAULT=load-page-read", NULL };
    g_autofree char *path = mig_make_saved_file(MIG_FILE_NAME, caps, false);
    g_autofree char *uri = g_strdup_printf("file:%s", path);
    g_autofree char *desc = NULL;
    QTestState *to = qtest_init_bin_env(
        qtest_vm_binary(), env,
        "-m 150M -machine memory-backend=mig.mem "
        "-object memory-backend-ram,id=mig.mem,size=150M,share=off "
        "-guest ab -serial file:%s/dest_serial -incoming defer", mig_tmpdir);

    migrate_set_capability(to, "events", true);
    migrate_set_capability(to, "mapped-ram", true);
    migrate_incoming_qmp(to, uri, NULL, "'exit-on-error': false");
    desc = wait_for_migration_fail(to);
    g_test_message("load error: %s", desc);
    if (!strstr(desc, "Unable to read from file at offset")) {
        qtest_fail(to, "load error '%s' does not name the failed read", desc);
    }
    assert_dest_not_resumed(to);
    qtest_quit(to);
}

void migration_test_add_fault(void)
{
    migration_test_add("/migration/fault/save-page-write", test_save_page_write, MIG_FULL);
    migration_test_add("/migration/fault/save-page-write/single",
                       test_save_page_write_single, MIG_FULL);
    migration_test_add("/migration/fault/save-device-state", test_save_device_state,
                       MIG_FULL);
    migration_test_add("/migration/fault/send-stall-cancel", test_send_stall_cancel,
                       MIG_FULL);
    migration_test_add("/migration/fault/load-page-read", test_load_page_read, MIG_FULL);
}
