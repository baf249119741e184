/*
 * One test per compatibility rule of reference §5.4, each asserting
 * QEMU's exact message and that the refused VM is untouched.
 */
#include "framework.h"
#include "tests.h"

#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

typedef enum {
    AT_CAPS,        /* migrate-set-capabilities with .caps is refused */
    AT_PARAMS,      /* migrate-set-parameters with .params is refused */
    AT_MIGRATE,     /* caps/params accepted, migrate .uri refused */
} CompatStage;

typedef struct CompatRule {
    const char *name;
    CompatStage stage;
    const char *caps[4];
    const char *params;      /* JSON members, set before the caps */
    const char *uri;         /* %s = the test dir */
    const char *error;
} CompatRule;

static const CompatRule rules[] = {
    { "mapped-ram-xbzrle", AT_CAPS, { "mapped-ram", "xbzrle" }, NULL, NULL,
      "Mapped-ram migration is incompatible with xbzrle" },
    { "mapped-ram-postcopy", AT_CAPS, { "mapped-ram", "postcopy-ram" }, NULL,
      NULL, "Mapped-ram migration is incompatible with postcopy" },
    { "multifd-xbzrle", AT_CAPS, { "multifd", "xbzrle" }, NULL, NULL,
      "Multifd is not compatible with xbzrle" },
    { "multifd-channels-0", AT_PARAMS, { NULL }, "'multifd-channels': 0",
      NULL, "Parameter 'multifd_channels' expects a value between 1 and 255" },
    { "seekable/exec", AT_MIGRATE, { "mapped-ram" }, NULL,
      "exec:cat > @TMP@/out", "Migration requires seekable transport (e.g. file)" },
    { "seekable/unix", AT_MIGRATE, { "mapped-ram" }, NULL,
      "unix:@TMP@/sock", "Migration requires seekable transport (e.g. file)" },
    { "seekable/tcp", AT_MIGRATE, { "mapped-ram" }, NULL,
      "tcp:127.0.0.1:1", "Migration requires seekable transport (e.g. file)" },
    { "seekable/fd", AT_MIGRATE, { "mapped-ram" }, NULL,
      "fd:fd-mig", "Migration requires seekable transport (e.g. file)" },
    { "multi-channel/file", AT_MIGRATE, { "multifd" }, NULL,
      "file:@TMP@/out", "Migration requires multi-channel URIs (e.g. tcp)" },
    { "multi-channel/exec", AT_MIGRATE, { "multifd" }, NULL,
      "exec:cat > @TMP@/out", "Migration requires multi-channel URIs (e.g. tcp)" },
    /* as QEMU: an fd: socket is one connection, multifd needs an address to reconnect to */
    { "multi-channel/fd", AT_MIGRATE, { "multifd" }, NULL,
      "fd:fd-mig", "Migration requires multi-channel URIs (e.g. tcp)" },
    { "compression", AT_MIGRATE, { "mapped-ram", "multifd" },
      "'multifd-compression': 'zlib'", "file:@TMP@/out",
      "Cannot use compression with mapped-ram" },
    { "tls", AT_MIGRATE, { "mapped-ram" }, "'tls-creds': 'tls0'",
      "file:@TMP@/out", "Cannot use TLS with mapped-ram" },
    /* the rest of the rule table in migration/options.c */
    { "postcopy-preempt", AT_CAPS, { "postcopy-preempt" }, NULL, NULL,
      "Postcopy preempt requires postcopy-ram" },
    { "switchover-ack", AT_CAPS, { "switchover-ack" }, NULL, NULL,
      "Capability 'switchover-ack' requires capability 'return-path'" },
    { "zero-copy-send", AT_CAPS, { "zero-copy-send" }, NULL, NULL,
      "Zero copy only available for non-compressed non-TLS multifd migration" },
    /* compression, which multifd over sockets brings, and zero-copy-send, both ways */
    { "zero-copy-send/compressed", AT_CAPS, { "multifd", "zero-copy-send" },
      "'multifd-compression': 'zstd'", NULL,
      "Zero copy only available for non-compressed non-TLS multifd migration" },
    { "zero-copy-send/compression", AT_PARAMS, { "multifd", "zero-copy-send" },
      "'multifd-compression': 'zlib'", NULL,
      "Zero copy only available for non-compressed non-TLS multifd migration" },
    { "zero-copy-send/tls", AT_CAPS, { "multifd", "zero-copy-send" },
      "'tls-creds': 'tls0'", NULL,
      "Zero copy only available for non-compressed non-TLS multifd migration" },
    /* sets that break two rules: the first in QEMU's order answers */
    { "mapped-ram-multifd-xbzrle", AT_CAPS, { "mapped-ram", "multifd", "xbzrle" },
      NULL, NULL, "Multifd is not compatible with xbzrle" },
    { "multifd-xbzrle-zero-copy-send", AT_CAPS, { "multifd", "xbzrle", "zero-copy-send" },
      NULL, NULL, "Zero copy only available for non-compressed non-TLS multifd migration" },
    { "mapped-ram-postcopy-ignore-shared", AT_CAPS,
      { "mapped-ram", "postcopy-ram", "x-ignore-shared" }, NULL, NULL,
      "Postcopy is not compatible with ignore-shared" },
    { "background-snapshot-postcopy", AT_CAPS, { "background-snapshot", "postcopy-ram" },
      NULL, NULL, "Background-snapshot is not compatible with postcopy-ram" },
    { "background-snapshot-mapped-ram", AT_CAPS, { "background-snapshot", "mapped-ram" },
      NULL, NULL, "Background-snapshot is not compatible with mapped-ram" },
    { "x-colo", AT_CAPS, { "x-colo" }, NULL, NULL, "COLO is not supported by mapram" },
    { "rdma-pin-all", AT_CAPS, { "rdma-pin-all" }, NULL, NULL,
      "RDMA is not supported by mapram" },
    { "cpr-transfer-file", AT_MIGRATE, { NULL }, "'mode': 'cpr-transfer'", "file:@TMP@/out",
      "Migration requires streamable transport (eg unix)" },
    { "rdma", AT_MIGRATE, { NULL }, NULL, "rdma:127.0.0.1:1",
      "RDMA is not supported by mapram" },
    { "tls-stream", AT_MIGRATE, { NULL }, "'tls-creds': 'tls0'", "file:@TMP@/out",
      "TLS is not supported by mapram" },
    { "ignore-shared", AT_MIGRATE, { "x-ignore-shared" }, NULL, "file:@TMP@/out",
      "x-ignore-shared is not supported by mapram" },
    { "mode-cpr-reboot", AT_MIGRATE, { NULL }, "'mode': 'cpr-reboot'", "file:@TMP@/out",
      "Migration modes other than 'normal' are not supported by mapram" },
    /* return-path: the destination's answers come back on a socket only */
    { "return-path/file", AT_MIGRATE, { "return-path" }, NULL, "file:@TMP@/out",
      "Capability 'return-path' requires a socket to the destination (tcp:, unix:, vsock:, "
      "or fd: on a socket)" },
    /* mapram's x-fsync: only a file has a disk to sync to */
    { "fsync/exec", AT_MIGRATE, { NULL }, "'x-fsync': true", "exec:cat > @TMP@/out",
      "Parameter 'x-fsync' requires a transport that writes to a file (file:, or fd: on a file)" },
    { "fsync/unix", AT_MIGRATE, { NULL }, "'x-fsync': true", "unix:@TMP@/sock",
      "Parameter 'x-fsync' requires a transport that writes to a file (file:, or fd: on a file)" },
};

/* The row's URI with "@TMP@" replaced by this test's directory. */
static char *uri_in_tmpdir(const char *tmpl)
{
    g_auto(GStrv) parts = g_strsplit(tmpl, "@TMP@", -1);

    return g_strjoinv(mig_tmpdir, parts);
}

static void set_caps_expect_error(QTestState *who, const char *const *caps,
                                  const char *want)
{
    g_autoptr(GString) list = g_string_new(NULL);
    g_autofree char *desc = NULL;

    for (size_t i = 0; caps[i]; i++) {
        g_string_append_printf(list, "%s{'capability': '%s', 'state': true}",
                               i ? ", " : "", caps[i]);
    }
    desc = qtest_qmp_expect_error(who, "{'execute': "
        "'migrate-set-capabilities', 'arguments': {'capabilities': [%s]}}",
        list->str);
    g_assert_cmpstr(desc, ==, want);
    for (size_t i = 0; caps[i]; i++) {
        g_assert_false(migrate_get_capability(who, caps[i]));
    }
}

static void test_compat_rule(gconstpointer data)
{
    const CompatRule *r = data;
    MigrateCommon args = { .start.only_source = true };
    QTestState *from, *to;
    g_autofree char *tmp = qtest_mkdtemp("compat");

    mig_tmpdir = tmp;
    migrate_start(&args, &from, &to);
    wait_for_serial("src_serial");

    if (r->stage == AT_CAPS) {
        if (r->params) {
            qtest_qmp_assert_success(from, "{'execute': "
                "'migrate-set-parameters', 'arguments': {%s}}", r->params);
        }
        set_caps_expect_error(from, r->caps, r->error);
    } else if (r->stage == AT_PARAMS) {
        for (size_t i = 0; r->caps[i]; i++) {
            migrate_set_capability(from, r->caps[i], true);
        }
        g_autofree char *desc = qtest_qmp_expect_error(from,
            "{'execute': 'migrate-set-parameters', 'arguments': {%s}}",
            r->params);

        g_assert_cmpstr(desc, ==, r->error);
    } else {
        g_autofree char *uri = uri_in_tmpdir(r->uri);
        g_autofree char *desc = NULL;
        g_autofree char *st = NULL;

        if (r->params) {
            qtest_qmp_assert_success(from, "{'execute': "
                "'migrate-set-parameters', 'arguments': {%s}}", r->params);
        }
        for (size_t i = 0; r->caps[i]; i++) {
            migrate_set_capability(from, r->caps[i], true);
        }
        if (g_str_has_prefix(uri, "fd:")) {
            int pair[2];

            g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC,
                                       0, pair), ==, 0);
            qtest_qmp_fds_assert_success(from, &pair[0], 1,
                "{'execute': 'getfd', 'arguments': {'fdname': 'fd-mig'}}");
            close(pair[0]);
            close(pair[1]);
        }
        desc = migrate_qmp_expect_error(from, uri, NULL);
        g_assert_cmpstr(desc, ==, r->error);
        /* Refused before anything started: query-migrate stays empty. */
        st = migrate_query_status(from);
        g_assert_cmpstr(st, ==, "none");
    }
    assert_source_intact(from);
    qtest_quit(from);
    mig_tmpdir = NULL;
    qtest_rmtree(tmp);
}

/* --- rules that need a particular moment --------------------------------- */

static void test_in_progress(void)
{
    static const char *const ungoals[] = { "failed", "completed", NULL };
    g_autofree char *uri = mig_file_uri(MIG_FILE_NAME, NULL);
    MigrateCommon args = { .start.only_source = true };
    QTestState *from, *to;
    g_autofree char *desc = NULL;
    g_autofree char *desc2 = NULL;
    const char *const caps[] = { "mapped-ram", NULL };

    migrate_start(&args, &from, &to);
    wait_for_serial("src_serial");
    migrate_set_parameter_int(from, "max-bandwidth", 10 * 1000 * 1000);
    migrate_set_parameter_int(from, "downtime-limit", 1);
    migrate_qmp(from, uri, NULL);
    wait_for_migration_status(from, "active", ungoals);

    set_caps_expect_error(from, caps, "There's a migration process in progress");
    desc = migrate_qmp_expect_error(from, uri, NULL);
    g_assert_cmpstr(desc, ==, "There's a migration process in progress");
    /* QEMU's migrate_prepare looks at resume before the running migration */
    g_autofree char *juri = qtest_json_str(uri);
    desc2 = qtest_qmp_expect_error(from, "{'execute': 'migrate', 'arguments': "
                                   "{'uri': %s, 'resume': true}}", juri);
    g_assert_cmpstr(desc2, ==, "Cannot resume if there is no paused migration");

    qtest_qmp_assert_success(from, "{'execute': 'migrate_cancel'}");
    wait_for_migration_status(from, "cancelled", ungoals);
    assert_source_intact(from);
    qtest_quit(from);
}

static void test_postmigrate(void)
{
    g_autofree char *uri = mig_file_uri(MIG_FILE_NAME, NULL);
    MigrateCommon args = { .start.only_source = true };
    QTestState *from, *to;
    g_autofree char *desc = NULL;
    g_autofree char *desc2 = NULL;
    g_autofree char *desc3 = NULL;
    g_autofree char *st = NULL;

    migrate_start(&args, &from, &to);
    migrate_ensure_converge(from);
    wait_for_serial("src_serial");
    qtest_qmp_assert_success(from, "{'execute': 'stop'}");
    migrate_qmp(from, uri, NULL);
    wait_for_migration_complete(from);
    st = query_runstate(from);
    g_assert_cmpstr(st, ==, "postmigrate");

    desc = migrate_qmp_expect_error(from, uri, NULL);
    g_assert_cmpstr(desc, ==,
                    "Can't migrate the vm that was paused due to previous "
                    "migration");
    /*
     * QEMU parses the address and checks the transport before
     * migrate_prepare looks at the run state.
     */
    desc2 = migrate_qmp_expect_error(from, "bogus:x", NULL);
    g_assert_cmpstr(desc2, ==, "unknown migration protocol: bogus:x");
    migrate_set_capability(from, "mapped-ram", true);
    desc3 = migrate_qmp_expect_error(from, "unix:/x", NULL);
    g_assert_cmpstr(desc3, ==,
                    "Migration requires seekable transport (e.g. file)");
    migrate_set_capability(from, "mapped-ram", false);
    qtest_qmp_assert_success(from, "{'execute': 'cont'}");
    assert_source_intact(from);
    qtest_quit(from);
}

static QTestState *start_dest_only(void)
{
    g_autofree char *dst = mig_vm_args("150M", "ab", "dest_serial",
                                       "-incoming defer");
    QTestState *to = qtest_init_bin(qtest_vm_binary(), "%s", dst);

    migrate_set_capability(to, "events", true);
    return to;
}

static void test_incoming_started(void)
{
    g_autofree char *sock = mig_path("sock");
    g_autofree char *uri = g_strdup_printf("unix:%s", sock);
    QTestState *to = start_dest_only();
    g_autofree char *desc = NULL;

    migrate_incoming_qmp(to, uri, NULL, NULL);
    desc = migrate_incoming_qmp_expect_error(to, uri, NULL);
    g_assert_cmpstr(desc, ==, "The incoming migration has already been started");
    g_assert_false(runstate_is_running(to));
    qtest_quit(to);
}

static void test_multifd_after_incoming(void)
{
    g_autofree char *sock = mig_path("sock");
    g_autofree char *uri = g_strdup_printf("unix:%s", sock);
    QTestState *to = start_dest_only();
    const char *const caps[] = { "multifd", NULL };

    migrate_incoming_qmp(to, uri, NULL, NULL);
    set_caps_expect_error(to, caps, "Multifd must be set before incoming starts");
    g_assert_false(runstate_is_running(to));
    qtest_quit(to);
}

/* As QEMU: only turning multifd on is refused; turning it off is accepted. */
static void test_multifd_off_after_incoming(void)
{
    g_autofree char *sock = mig_path("sock");
    g_autofree char *uri = g_strdup_printf("unix:%s", sock);
    QTestState *to = start_dest_only();
    const char *const caps[] = { "multifd", NULL };

    migrate_set_capability(to, "multifd", true);
    migrate_incoming_qmp(to, uri, NULL, NULL);
    migrate_set_capability(to, "multifd", false);
    g_assert_false(migrate_get_capability(to, "multifd"));
    set_caps_expect_error(to, caps, "Multifd must be set before incoming starts");
    g_assert_false(runstate_is_running(to));
    qtest_quit(to);
}

/*
 * QEMU ties that rule to the incoming transport's life: once a load has
 * completed, the VM may turn multifd on to migrate on with it.
 */
static void test_multifd_after_load(void)
{
    g_autofree char *file = mig_make_saved_file(MIG_FILE_NAME, NULL, false);
    g_autofree char *uri = g_strdup_printf("file:%s", file);
    QTestState *to = start_dest_only();

    migrate_incoming_qmp(to, uri, NULL, NULL);
    wait_for_migration_complete(to);
    migrate_set_capability(to, "multifd", true);
    g_assert_true(migrate_get_capability(to, "multifd"));
    qtest_quit(to);
}

static void test_no_incoming(void)
{
    g_autofree char *uri = mig_file_uri(MIG_FILE_NAME, NULL);
    MigrateCommon args = { .start.only_source = true };
    QTestState *from, *to;
    g_autofree char *desc = NULL;

    migrate_start(&args, &from, &to);
    wait_for_serial("src_serial");
    desc = migrate_incoming_qmp_expect_error(from, uri, NULL);
    g_assert_cmpstr(desc, ==, "'-incoming' was not specified on the command line");
    assert_source_intact(from);
    qtest_quit(from);
}

static void test_guest_waiting(void)
{
    g_autofree char *uri = mig_file_uri(MIG_FILE_NAME, NULL);
    QTestState *to = start_dest_only();
    g_autofree char *desc = NULL;

    desc = migrate_qmp_expect_error(to, uri, NULL);
    g_assert_cmpstr(desc, ==, "Guest is waiting for an incoming migration");
    g_assert_false(runstate_is_running(to));
    qtest_quit(to);
}

/*
 * QEMU's quirk: the parameter check looks at the current values, so
 * turning compression on under mapped-ram succeeds, and every later
 * migrate-set-parameters fails until compression is reset.
 */
static void test_params_quirk(void)
{
    MigrateCommon args = { .start.only_source = true,
                           .caps = { "mapped-ram", "multifd" } };
    QTestState *from, *to;
    g_autofree char *desc = NULL;

    migrate_start(&args, &from, &to);
    qtest_qmp_assert_success(from, "{'execute': 'migrate-set-parameters', "
                             "'arguments': {'multifd-compression': 'zlib'}}");
    desc = qtest_qmp_expect_error(from, "{'execute': 'migrate-set-parameters', "
                                  "'arguments': {'downtime-limit': 300}}");
    g_assert_cmpstr(desc, ==, "Mapped-ram only available for non-compressed "
                    "non-TLS multifd migration");
    qtest_quit(from);
}

void migration_test_add_compat(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(rules); i++) {
        g_autofree char *path = g_strdup_printf("/migration/compat/%s",
                                                rules[i].name);

        migration_test_add_data(path, &rules[i], test_compat_rule, MIG_SMOKE);
    }
    migration_test_add("/migration/compat/in-progress", test_in_progress,
                       MIG_SMOKE);
    migration_test_add("/migration/compat/postmigrate", test_postmigrate,
                       MIG_SMOKE);
    migration_test_add("/migration/compat/incoming-started",
                       test_incoming_started, MIG_SMOKE);
    migration_test_add("/migration/compat/multifd-after-incoming",
                       test_multifd_after_incoming, MIG_SMOKE);
    migration_test_add("/migration/compat/multifd-off-after-incoming",
                       test_multifd_off_after_incoming, MIG_SMOKE);
    migration_test_add("/migration/compat/multifd-after-load",
                       test_multifd_after_load, MIG_SMOKE);
    migration_test_add("/migration/compat/no-incoming", test_no_incoming,
                       MIG_SMOKE);
    migration_test_add("/migration/compat/guest-waiting",
                       test_guest_waiting, MIG_SMOKE);
    migration_test_add("/migration/compat/params-quirk", test_params_quirk,
                       MIG_SMOKE);
}
