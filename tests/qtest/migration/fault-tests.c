/*
 * Named fault points (util/fault.h), each driven by a test: a failure at
 * that point must give a clear error, leave the source running with its
 * memory intact, and never resume a half-loaded destination.
 */
#include "framework.h"
#include "tests.h"

#include <string.h>

/*
 * The main block's pages in the file: 1 MiB in (after the header and
 * bitmap), 150 MiB long.  The ab guest never writes the first MiB of RAM,
 * so the first page written or read is at 0x200000, unless the guest's
 * byte there was zero at that instant; with several page workers, any of
 * them may fail first.
 */
#define MAIN_PAGES_FIRST_SET 0x200000ULL
#define MAIN_PAGES_END       (151ULL << 20)

static void assert_page_offset(uint64_t off)
{
    g_assert_cmphex(off % MIG_PAGE_SIZE, ==, 0);
    g_assert_cmphex(off, >=, MAIN_PAGES_FIRST_SET);
    g_assert_cmphex(off, <, MAIN_PAGES_END);
}

/*
 * query-migrate of a save that ended without completing has only these
 * members, as QEMU's: no times or RAM figures of a save that is gone.
 */
static void assert_query_members(QTestState *who, const char *members)
{
    g_autoptr(JsonObject) info = migrate_query(who);
    g_autoptr(GList) names = g_list_sort(json_object_get_members(info),
                                         (GCompareFunc)strcmp);
    g_autoptr(GString) got = g_string_new(NULL);

    for (GList *l = names; l; l = l->next) {
        g_string_append_printf(got, "%s%s", got->len ? " " : "", (const char *)l->data);
    }
    g_assert_cmpstr(got->str, ==, members);
}

/* Save with MAPRAM_FAULT=@fault armed; returns the error-desc (g_free). */
static char *save_must_fail(const char *fault, const char *cap, int channels)
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
    assert_query_members(from, "error-desc status");
    assert_source_intact(from);
    qtest_quit(from);
    return g_steal_pointer(&desc);
}

/* Two channels: the error names the one that failed first. */
static void test_save_page_write(void)
{
    g_autofree char *desc = save_must_fail("save-page-write", "mapped-ram", 2);
    const char *before = g_str_has_prefix(desc, "multifd channel 1: ")
        ? "multifd channel 1: Unable to write to file at offset "
        : "multifd channel 0: Unable to write to file at offset ";

    assert_page_offset(assert_msg_hex(desc, before, ": Input/output error"));
}

static void test_save_page_write_single(void)
{
    g_autofree char *desc = save_must_fail("save-page-write", "mapped-ram", 0);

    assert_page_offset(assert_msg_hex(desc,
                                      "Unable to write to file at offset ",
                                      ": Input/output error"));
}

static void test_save_device_state(void)
{
    g_autofree char *desc = save_must_fail("save-device-state", NULL, 0);

    g_assert_cmpstr(desc, ==, "Failed to save device state: injected fault");
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
    assert_query_members(from, "status");
    assert_source_intact(from);
    qtest_quit(from);
}

/*
 * A save under the fault env to uri (cap: one capability or NULL) is
 * cancelled delay_ms after it reached "device": it ends cancelled and the
 * source runs on unchanged.
 */
static void cancel_in_device(const char *env0, const char *uri, const char *cap,
                             unsigned delay_ms)
{
    static const char *const ungoals[] = { "failed", "completed", NULL };
    const char *env[] = { env0, NULL };
    MigrateCommon args = { .start.only_source = true, .start.env_source = env,
                           .caps = { cap } };
    QTestState *from, *to;

    migrate_start(&args, &from, &to);
    migrate_ensure_converge(from);
    wait_for_serial("src_serial");
    migrate_qmp(from, uri, NULL);
    wait_for_migration_status(from, "device", ungoals);
    g_usleep(delay_ms * 1000);
    qtest_qmp_assert_success(from, "{'execute': 'migrate_cancel'}");
    wait_for_migration_status(from, "cancelled", ungoals);
    assert_source_intact(from);
    qtest_quit(from);
}

/*
 * A save to a peer (here exec:cat) whose final flush before the EOF stalls
 * (a peer that stopped reading): a cancel then still wins, the source
 * runs on and the peer never gets the EOF.  The end is claimed only once
 * everything before the EOF is out.
 */
static void test_cancel_before_eof_peer(void)
{
    g_autofree char *path = mig_path("peer.out");
    g_autofree char *uri = g_strdup_printf("exec:cat > %s", path);
    g_autofree char *out = NULL, *err = NULL;

    /* the device state is written 0.5 s in; the flush before the EOF stalls for 3 s */
    cancel_in_device("MAPRAM_FAULT=save-pre-eof-stall", uri, NULL, 500);
    g_assert_cmpint(mig_run_tool(&out, &err, "verify", path, NULL), ==, 1);
    g_assert_nonnull(strstr(err, ": Unexpected end of stream at offset "));
}

/*
 * A cancel while the save completes (status device): completion writes
 * on to its end, yet the file must not load (it was complete and verify
 * passed it: a "cancelled" save that was a good snapshot).  It is cut back
 * to its offset, and the source runs on.
 */
static void test_cancel_during_completion(void)
{
    g_autofree char *uri = mig_file_uri(MIG_FILE_NAME, NULL);
    g_autofree char *path = mig_path(MIG_FILE_NAME);
    g_autofree char *want = g_strdup_printf(
        "mapram verify: %s: Stream header at offset 0: the stream is empty "
        "(no QEVM header)\n", path);
    const char *caps[] = { "mapped-ram", NULL };

    for (size_t i = 0; i < G_N_ELEMENTS(caps); i++) {
        g_autofree char *out = NULL, *err = NULL;

        cancel_in_device("MAPRAM_FAULT=device-state-stall", uri, caps[i], 0);
        g_assert_cmpint(mig_run_tool(&out, &err, "verify", path, NULL), ==, 1);
        g_assert_cmpstr(err, ==, want);
    }
}

/*
 * stop and cont wait while a save completes (finish-migrate), as QEMU's
 * monitor waits for the big lock: otherwise the vCPUs would run during
 * the last pass and the device state, and the file would hold a guest
 * that never was.  The reply to cont comes after "completed", and the
 * guest runs on from postmigrate.
 */
static void test_cont_during_completion(void)
{
    static const char *const ungoals[] = { "failed", "cancelled", NULL };
    const char *env[] = { "MAPRAM_FAULT=device-state-stall", NULL };
    g_autofree char *uri = mig_file_uri(MIG_FILE_NAME, NULL);
    MigrateCommon args = { .start.only_source = true, .start.env_source = env,
                           .caps = { "mapped-ram" } };
    QTestState *from, *to;
    g_autofree char *st = NULL;

    migrate_start(&args, &from, &to);
    migrate_ensure_converge(from);
    wait_for_serial("src_serial");
    migrate_qmp(from, uri, NULL);
    wait_for_migration_status(from, "device", ungoals);
    qtest_qmp_assert_success(from, "{'execute': 'cont'}");
    st = migrate_query_status(from);
    g_assert_cmpstr(st, ==, "completed");
    g_assert_true(runstate_is_running(from));
    assert_guest_runs(from);
    qtest_quit(from);

    /* The file holds the guest as it was stopped: it loads and checks. */
    args.start.only_source = false;
    args.start.env_source = NULL;
    migrate_start(&args, &from, &to);
    qtest_quit(from);
    migrate_incoming_qmp(to, uri, NULL, NULL);
    wait_for_migration_complete(to);
    qtest_qmp_eventwait(to, "RESUME");
    assert_guest_runs(to);
    qtest_qmp_assert_success(to, "{'execute': 'stop'}");
    check_guests_ram(to);
    qtest_quit(to);
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
    /* Loads use 4 page workers: any of them may fail first. */
    assert_page_offset(assert_msg_hex(desc,
                                      "START section 'ram' (id 0) at offset 71: "
                                      "Unable to read from file at offset ",
                                      ": Input/output error"));
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
    migration_test_add("/migration/fault/cancel-before-eof-peer", test_cancel_before_eof_peer,
                       MIG_FULL);
    migration_test_add("/migration/fault/cancel-during-completion",
                       test_cancel_during_completion, MIG_SMOKE);
    migration_test_add("/migration/fault/send-stall-cancel", test_send_stall_cancel,
                       MIG_FULL);
    migration_test_add("/migration/fault/cont-during-completion",
                       test_cont_during_completion, MIG_FULL);
    migration_test_add("/migration/fault/load-page-read", test_load_page_read, MIG_FULL);
}
