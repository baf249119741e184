/*
 * Every row of the compatibility rule table (compat_rules[] in
 * migration/options.c) in process, through the public API: the refused
 * call (migration_set_capability, migration_start, migration_start_incoming)
 * returns the row's exact message and leaves the options, the run state
 * and the migration status as they were.  /migration/compat/table-covered
 * fails when a row is added to the table without a case here.
 *
 * tests/qtest/migration/compat-tests.c asserts the same texts over QMP.
 */
#include <string.h>

#include "fake-host.h"
#include "migration/migration-internal.h"

typedef enum {
    AT_CAPS,          /* the last capability of caps is refused */
    AT_CAPS_SET,      /* caps turned on in one call (one migrate-set-capabilities) are refused */
    AT_MIGRATE,       /* caps and params accepted, migration_start refused */
    AT_BOTH,          /* migration_start and migration_start_incoming refused */
    AT_INCOMING,      /* caps and params accepted, migration_start_incoming refused */
} Stage;

typedef struct Case {
    const char *name;
    const char *rule;           /* the row's predicate in options.c */
    Stage stage;
    const char *caps[4];        /* turned on in order */
    const char *params;         /* JSON object for migration_set_parameters, or NULL */
    const char *uri;            /* @TMP@ = the test's directory */
    const char *error;
} Case;

static const Case cases[] = {
    /* capabilities */
    { "mapped-ram-xbzrle", "r_mr_xbzrle", AT_CAPS, { "mapped-ram", "xbzrle" }, NULL, NULL,
      "Mapped-ram migration is incompatible with xbzrle" },
    { "xbzrle-mapped-ram", "r_mr_xbzrle", AT_CAPS, { "xbzrle", "mapped-ram" }, NULL, NULL,
      "Mapped-ram migration is incompatible with xbzrle" },
    { "mapped-ram-postcopy", "r_mr_postcopy", AT_CAPS, { "mapped-ram", "postcopy-ram" }, NULL,
      NULL, "Mapped-ram migration is incompatible with postcopy" },
    { "multifd-xbzrle", "r_mfd_xbzrle", AT_CAPS, { "multifd", "xbzrle" }, NULL, NULL,
      "Multifd is not compatible with xbzrle" },
    { "postcopy-preempt", "r_preempt", AT_CAPS, { "postcopy-preempt" }, NULL, NULL,
      "Postcopy preempt requires postcopy-ram" },
    { "switchover-ack", "r_sw_ack", AT_CAPS, { "switchover-ack" }, NULL, NULL,
      "Capability 'switchover-ack' requires capability 'return-path'" },
    { "zero-copy-send", "r_zero_copy", AT_CAPS, { "zero-copy-send" }, NULL, NULL,
      "Zero copy only available for non-compressed non-TLS multifd migration" },
    { "zero-copy-send/compressed", "r_zero_copy", AT_CAPS, { "multifd", "zero-copy-send" },
      "{\"multifd-compression\": \"zstd\"}", NULL,
      "Zero copy only available for non-compressed non-TLS multifd migration" },
    { "background-snapshot-postcopy", "r_bg_postcopy", AT_CAPS,
      { "background-snapshot", "postcopy-ram" }, NULL, NULL,
      "Background-snapshot is not compatible with postcopy-ram" },
    { "background-snapshot-mapped-ram", "r_bg_mapped", AT_CAPS,
      { "background-snapshot", "mapped-ram" }, NULL, NULL,
      "Background-snapshot is not compatible with mapped-ram" },
    { "postcopy-ignore-shared", "r_postcopy_shared", AT_CAPS,
      { "postcopy-ram", "x-ignore-shared" }, NULL, NULL,
      "Postcopy is not compatible with ignore-shared" },
    { "x-colo", "r_colo", AT_CAPS, { "x-colo" }, NULL, NULL, "COLO is not supported by mapram" },
    { "rdma-pin-all", "r_rdma_pin", AT_CAPS, { "rdma-pin-all" }, NULL, NULL,
      "RDMA is not supported by mapram" },
    { "zero-copy-send/tls", "r_zero_copy", AT_CAPS, { "multifd", "zero-copy-send" },
      "{\"tls-creds\": \"tls0\"}", NULL,
      "Zero copy only available for non-compressed non-TLS multifd migration" },
    { "zero-copy-send/xbzrle", "r_zero_copy", AT_CAPS_SET, { "xbzrle", "zero-copy-send" },
      NULL, NULL, "Zero copy only available for non-compressed non-TLS multifd migration" },
    /* sets that break two rules: the first in QEMU's order answers */
    { "mapped-ram-multifd-xbzrle", "r_mfd_xbzrle", AT_CAPS_SET,
      { "mapped-ram", "multifd", "xbzrle" }, NULL, NULL,
      "Multifd is not compatible with xbzrle" },
    { "multifd-xbzrle-zero-copy-send", "r_zero_copy", AT_CAPS_SET,
      { "multifd", "xbzrle", "zero-copy-send" }, NULL, NULL,
      "Zero copy only available for non-compressed non-TLS multifd migration" },
    { "mapped-ram-postcopy-ignore-shared", "r_postcopy_shared", AT_CAPS_SET,
      { "mapped-ram", "postcopy-ram", "x-ignore-shared" }, NULL, NULL,
      "Postcopy is not compatible with ignore-shared" },
    /* r_mfd_incoming needs an incoming migration started: test_multifd_after_incoming */
    /* transports, checked by both directions */
    { "seekable/exec", "r_seekable", AT_BOTH, { "mapped-ram" }, NULL, "exec:cat > @TMP@/out",
      "Migration requires seekable transport (e.g. file)" },
    { "seekable/unix", "r_seekable", AT_BOTH, { "mapped-ram" }, NULL, "unix:@TMP@/sock",
      "Migration requires seekable transport (e.g. file)" },
    { "seekable/tcp", "r_seekable", AT_BOTH, { "mapped-ram" }, NULL, "tcp:127.0.0.1:1",
      "Migration requires seekable transport (e.g. file)" },
    { "seekable/fd", "r_seekable", AT_BOTH, { "mapped-ram" }, NULL, "fd:fd-mig",
      "Migration requires seekable transport (e.g. file)" },
    { "multi-channel/file", "r_multi_channel", AT_BOTH, { "multifd" }, NULL, "file:@TMP@/out",
      "Migration requires multi-channel URIs (e.g. tcp)" },
    { "multi-channel/exec", "r_multi_channel", AT_BOTH, { "multifd" }, NULL,
      "exec:cat > @TMP@/out", "Migration requires multi-channel URIs (e.g. tcp)" },
    { "multi-channel/postcopy-preempt", "r_multi_channel", AT_BOTH,
      { "postcopy-ram", "postcopy-preempt" }, NULL, "file:@TMP@/out",
      "Migration requires multi-channel URIs (e.g. tcp)" },
    /*
     * r_extra_fds (multifd + direct-io off file:) cannot fire: direct-io
     * takes effect only with mapped-ram, and mapped-ram off file: is
     * refused first by r_seekable.  This case pins that order.
     */
    { "extra-fds/shadowed", "r_extra_fds", AT_BOTH, { "mapped-ram", "multifd" },
      "{\"direct-io\": true}", "unix:@TMP@/sock",
      "Migration requires seekable transport (e.g. file)" },
    { "cpr-transfer-file", "r_cpr_transfer", AT_BOTH, { NULL }, "{\"mode\": \"cpr-transfer\"}",
      "file:@TMP@/out", "Migration requires streamable transport (eg unix)" },
    /* as QEMU: an fd is one connection; multifd over tcp: and unix: is fine */
    { "multi-channel/fd", "r_multi_channel", AT_BOTH, { "multifd" }, NULL, "fd:fd-mig",
      "Migration requires multi-channel URIs (e.g. tcp)" },
    { "rdma", "r_rdma", AT_BOTH, { NULL }, NULL, "rdma:127.0.0.1:1",
      "RDMA is not supported by mapram" },
    /* mapram's on-demand restore: migrate-incoming only */
    { "ondemand/postcopy-stream", "r_postcopy_in_stream", AT_INCOMING, { "postcopy-ram" },
      NULL, "file:@TMP@/in",
      "Postcopy on the destination requires mapped-ram: mapram loads on demand only from "
      "a mapped-ram file" },
    { "ondemand/postcopy-stream/unix", "r_postcopy_in_stream", AT_INCOMING,
      { "postcopy-ram" }, NULL, "unix:@TMP@/sock",
      "Postcopy on the destination requires mapped-ram: mapram loads on demand only from "
      "a mapped-ram file" },
    { "ondemand/preempt", "r_on_demand_preempt", AT_INCOMING,
      { "mapped-ram", "postcopy-ram", "postcopy-preempt" }, NULL, "file:@TMP@/in",
      "Capability 'postcopy-preempt' does not apply to an on-demand restore from a file" },
    /* mapram's shared restore: migrate-incoming only */
    { "shared/no-mapped-ram", "r_shared_mr", AT_INCOMING, { NULL },
      "{\"x-mapped-ram-shared\": true}", "file:@TMP@/in",
      "Parameter 'x-mapped-ram-shared' requires capability 'mapped-ram'" },
    { "shared/direct-io", "r_shared_dio", AT_INCOMING, { "mapped-ram" },
      "{\"x-mapped-ram-shared\": true, \"direct-io\": true}", "file:@TMP@/in",
      "Parameter 'x-mapped-ram-shared' cannot be used with 'direct-io': the file's pages are "
      "mapped, not read" },
    { "shared/postcopy", "r_shared_postcopy", AT_INCOMING, { "mapped-ram", "postcopy-ram" },
      "{\"x-mapped-ram-shared\": true}", "file:@TMP@/in",
      "Parameter 'x-mapped-ram-shared' cannot be used with capability 'postcopy-ram': "
      "choose one way to restore" },
    /* migrate only (QEMU's migrate_prepare) */
    { "tls-mapped-ram", "r_mr_tls", AT_MIGRATE, { "mapped-ram" }, "{\"tls-creds\": \"tls0\"}",
      "file:@TMP@/out", "Cannot use TLS with mapped-ram" },
    { "compression", "r_mr_compress", AT_MIGRATE, { "mapped-ram", "multifd" },
      "{\"multifd-compression\": \"zlib\"}", "file:@TMP@/out",
      "Cannot use compression with mapped-ram" },
    { "tls-stream", "r_tls", AT_MIGRATE, { NULL }, "{\"tls-creds\": \"tls0\"}", "file:@TMP@/out",
      "TLS is not supported by mapram" },
    { "ignore-shared", "r_ignore_shared", AT_MIGRATE, { "x-ignore-shared" }, NULL,
      "file:@TMP@/out", "x-ignore-shared is not supported by mapram" },
    { "mode-cpr-reboot", "r_mode", AT_MIGRATE, { NULL }, "{\"mode\": \"cpr-reboot\"}",
      "file:@TMP@/out", "Migration modes other than 'normal' are not supported by mapram" },
    /* return-path: a load opens it when asked (AT_MIGRATE: incoming accepted) */
    { "return-path/file", "r_rp_stream", AT_MIGRATE, { "return-path" }, NULL, "file:@TMP@/out",
      "Capability 'return-path' requires a socket to the destination (tcp:, unix:, vsock:, "
      "or fd: on a socket)" },
    { "return-path/exec", "r_rp_stream", AT_MIGRATE, { "return-path" }, NULL,
      "exec:cat > @TMP@/out",
      "Capability 'return-path' requires a socket to the destination (tcp:, unix:, vsock:, "
      "or fd: on a socket)" },
    /* mapram's x-fsync; a load ignores it (AT_MIGRATE: incoming accepted) */
    { "fsync/exec", "r_fsync_stream", AT_MIGRATE, { NULL }, "{\"x-fsync\": true}",
      "exec:cat > @TMP@/out",
      "Parameter 'x-fsync' requires a transport that writes to a file (file:, or fd: on a file)" },
    { "fsync/tcp", "r_fsync_stream", AT_MIGRATE, { NULL }, "{\"x-fsync\": true}",
      "tcp:127.0.0.1:1",
      "Parameter 'x-fsync' requires a transport that writes to a file (file:, or fd: on a file)" },
};

/*
 * The capability set in force, read through the options' own query (the
 * public API has none): "name=on" for each capability that is on.
 */
static char *caps_on(Migration *m)
{
    g_autoptr(JsonNode) n = migration_options_query_capabilities(m->opts);
    JsonArray *a = json_node_get_array(n);
    GString *s = g_string_new(NULL);
    for (guint i = 0; i < json_array_get_length(a); i++) {
        JsonObject *e = json_array_get_object_element(a, i);
        if (json_object_get_boolean_member(e, "state")) {
            g_string_append_printf(s, "%s%s", s->len ? " " : "",
                                   json_object_get_string_member(e, "capability"));
        }
    }
    return g_string_free(s, FALSE);
}

static void set_params(Migration *m, const char *json)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(JsonNode) n = json_from_string(json, &err);
    g_assert_no_error(err);
    g_assert_true(migration_set_parameters(m, json_node_get_object(n), &err));
    g_assert_no_error(err);
}

static void set_cap(Migration *m, const char *name)
{
    g_autoptr(GError) err = NULL;
    g_assert_true(migration_set_capability(m, name, true, &err));
    g_assert_no_error(err);
}

static void assert_status(Migration *m, const char *status)
{
    MigrationInfo info;
    migration_query(m, &info);
    g_assert_cmpstr(info.status, ==, status);
    g_assert_null(info.error_desc);
    migration_info_clear(&info);
}

static void test_caps_case(const Case *c, FakeHost *h, Migration *m)
{
    g_autoptr(GError) err = NULL;
    size_t n = 0;
    while (c->caps[n]) {
        n++;
    }
    if (c->params) {
        set_params(m, c->params);
    }
    for (size_t i = 0; c->stage == AT_CAPS && i + 1 < n; i++) {
        set_cap(m, c->caps[i]);
    }
    g_autofree char *before = caps_on(m);
    if (c->stage == AT_CAPS_SET) {
        g_autoptr(JsonArray) list = json_array_new();
        for (size_t i = 0; i < n; i++) {
            JsonObject *e = json_object_new();
            json_object_set_string_member(e, "capability", c->caps[i]);
            json_object_set_boolean_member(e, "state", true);
            json_array_add_object_element(list, e);
        }
        g_assert_false(migration_options_set_capabilities(m->opts, list, false, false, &err));
    } else {
        g_assert_false(migration_set_capability(m, c->caps[n - 1], true, &err));
    }
    g_assert_cmpstr(err->message, ==, c->error);
    g_autofree char *after = caps_on(m);
    g_assert_cmpstr(after, ==, before);
}

/* Refused before anything is opened or started: status, run state and events stay. */
static void test_transport_case(const Case *c, FakeHost *h, Migration *m, const char *dir,
                                bool incoming)
{
    g_auto(GStrv) parts = g_strsplit(c->uri, "@TMP@", -1);
    g_autofree char *uri = g_strjoinv(dir, parts);
    g_autoptr(GError) err = NULL;
    RunState state = fake_host_runstate(h);

    if (c->params) {
        set_params(m, c->params);
    }
    for (size_t i = 0; c->caps[i]; i++) {
        set_cap(m, c->caps[i]);
    }
    fake_host_clear_events(h);
    if (incoming) {
        g_assert_false(migration_start_incoming(m, uri, true, &err));
    } else {
        g_assert_false(migration_start(m, uri, &err));
    }
    g_assert_cmpstr(err->message, ==, c->error);
    g_clear_error(&err);
    assert_status(m, "none");
    g_assert_cmpint(fake_host_runstate(h), ==, state);
    g_autofree char *events = fake_host_events(h, true);
    g_assert_cmpstr(events, ==, "");
    /* nothing was left behind: the same call is refused the same way */
    if (incoming) {
        g_assert_false(migration_start_incoming(m, uri, true, &err));
    } else {
        g_assert_false(migration_start(m, uri, &err));
    }
    g_assert_cmpstr(err->message, ==, c->error);
    g_autofree char *out = g_strdup_printf("%s/out", dir);
    g_assert_false(g_file_test(out, G_FILE_TEST_EXISTS));
}

static void run_case(const Case *c, bool incoming)
{
    g_autofree char *dir = fake_test_mkdtemp("compat");
    FakeHost *h = fake_host_new(RUN_STATE_RUNNING);
    fake_host_add_block(h, "pc.ram", 1024 * 1024);
    Migration *m = fake_host_migration_new(h);
    g_autoptr(GError) err = NULL;

    if (incoming) {
        g_assert_true(migration_incoming_cmdline(m, "defer", &err));
    }
    if (c->stage == AT_CAPS || c->stage == AT_CAPS_SET) {
        test_caps_case(c, h, m);
    } else {
        test_transport_case(c, h, m, dir, incoming);
    }
    migration_free(m);
    fake_host_free(h);
    fake_test_rmtree(dir);
}

/*
 * r_mr_postcopy_save: the pair is accepted only while the VM waits for an
 * incoming migration; once it runs, migrate keeps QEMU's refusal.
 */
static void test_mapped_ram_postcopy_save(void)
{
    g_autofree char *dir = fake_test_mkdtemp("compat");
    g_autofree char *uri = g_strdup_printf("file:%s/out", dir);
    FakeHost *h = fake_host_new(RUN_STATE_PRELAUNCH);
    Migration *m = fake_host_migration_new(h);
    g_autoptr(GError) err = NULL;

    g_assert_true(migration_incoming_cmdline(m, "defer", &err));
    set_cap(m, "mapped-ram");
    set_cap(m, "postcopy-ram");
    m->host->runstate_set(m->host_opaque, RUN_STATE_RUNNING);
    g_assert_false(migration_start(m, uri, &err));
    g_assert_cmpstr(err->message, ==, "Mapped-ram migration is incompatible with postcopy");
    assert_status(m, "none");
    g_autofree char *out = g_strdup_printf("%s/out", dir);
    g_assert_false(g_file_test(out, G_FILE_TEST_EXISTS));
    migration_free(m);
    fake_host_free(h);
    fake_test_rmtree(dir);
}

/*
 * r_sw_ack on a set no capability check saw: -global makes it, the check
 * after the globals refuses it, and migrate refuses it too (an embedder may
 * skip that check): never a save that waits on a return path it lacks.
 */
static void test_switchover_ack_global(void)
{
    g_autofree char *dir = fake_test_mkdtemp("compat");
    g_autofree char *uri = g_strdup_printf("unix:%s/sock", dir);
    FakeHost *h = fake_host_new(RUN_STATE_RUNNING);
    fake_host_add_block(h, "pc.ram", 1024 * 1024);
    Migration *m = fake_host_migration_new(h);
    g_autoptr(GError) err = NULL;
    const char *want = "Capability 'switchover-ack' requires capability 'return-path'";

    g_assert_true(migration_set_global_property(m, "x-switchover-ack", "on", &err));
    g_assert_false(migration_check_capabilities(m, false, &err));
    g_assert_cmpstr(err->message, ==, want);
    g_clear_error(&err);
    g_assert_false(migration_start(m, uri, &err));
    g_assert_cmpstr(err->message, ==, want);
    g_clear_error(&err);
    assert_status(m, "none");
    g_assert_true(migration_set_global_property(m, "x-return-path", "on", &err));
    g_assert_true(migration_check_capabilities(m, false, &err));
    migration_free(m);
    fake_host_free(h);
    fake_test_rmtree(dir);
}

static void test_outgoing(gconstpointer data)
{
    run_case(data, false);
}

static void test_incoming(gconstpointer data)
{
    run_case(data, true);
}

/* r_mfd_incoming: multifd cannot be turned on once migrate-incoming was issued. */
static void test_multifd_after_incoming(void)
{
    g_autofree char *dir = fake_test_mkdtemp("compat");
    g_autofree char *uri = g_strdup_printf("unix:%s/sock", dir);
    FakeHost *h = fake_host_new(RUN_STATE_PRELAUNCH);
    Migration *m = fake_host_migration_new(h);
    g_autoptr(GError) err = NULL;

    g_assert_true(migration_incoming_cmdline(m, "defer", &err));
    set_cap(m, "mapped-ram");     /* before migrate-incoming: anything goes */
    g_assert_true(migration_set_capability(m, "mapped-ram", false, &err));
    g_assert_true(migration_start_incoming(m, uri, true, &err));
    g_assert_no_error(err);
    g_assert_false(migration_set_capability(m, "multifd", true, &err));
    g_assert_cmpstr(err->message, ==, "Multifd must be set before incoming starts");
    g_clear_error(&err);
    g_autofree char *on = caps_on(m);
    g_assert_cmpstr(on, ==, "events");
    /* setting it to the value it has is no change, and other capabilities may change */
    g_assert_true(migration_set_capability(m, "multifd", false, &err));
    g_assert_true(migration_set_capability(m, "xbzrle", true, &err));
    g_assert_no_error(err);
    migration_free(m);
    fake_host_free(h);
    fake_test_rmtree(dir);
}

/* As QEMU: only turning multifd on is refused; turning it off is accepted. */
static void test_multifd_off_after_incoming(void)
{
    g_autofree char *dir = fake_test_mkdtemp("compat");
    g_autofree char *uri = g_strdup_printf("unix:%s/sock", dir);
    FakeHost *h = fake_host_new(RUN_STATE_PRELAUNCH);
    Migration *m = fake_host_migration_new(h);
    g_autoptr(GError) err = NULL;

    g_assert_true(migration_incoming_cmdline(m, "defer", &err));
    set_cap(m, "multifd");
    g_assert_true(migration_start_incoming(m, uri, true, &err));
    g_assert_no_error(err);
    g_assert_true(migration_set_capability(m, "multifd", false, &err));
    g_assert_no_error(err);
    g_autofree char *off = caps_on(m);
    g_assert_cmpstr(off, ==, "events");
    /* and, once off, it cannot come back */
    g_assert_false(migration_set_capability(m, "multifd", true, &err));
    g_assert_cmpstr(err->message, ==, "Multifd must be set before incoming starts");
    migration_free(m);
    fake_host_free(h);
    fake_test_rmtree(dir);
}

/* Not rows of the table, but the same path: parameter ranges and QEMU's quirk. */
static void test_params_range(void)
{
    FakeHost *h = fake_host_new(RUN_STATE_RUNNING);
    Migration *m = fake_host_migration_new(h);
    g_autoptr(GError) err = NULL;
    g_autoptr(JsonNode) n = json_from_string("{\"multifd-channels\": 0}", NULL);

    g_assert_false(migration_set_parameters(m, json_node_get_object(n), &err));
    g_assert_cmpstr(err->message, ==,
                    "Parameter 'multifd_channels' expects a value between 1 and 255");
    g_clear_error(&err);

    /* mapram's x-page-io-threads: 0 (automatic) to 64, reported as set */
    g_autoptr(JsonNode) big = json_from_string("{\"x-page-io-threads\": 65}", NULL);
    g_assert_false(migration_set_parameters(m, json_node_get_object(big), &err));
    g_assert_cmpstr(err->message, ==,
                    "Parameter 'x_page_io_threads' expects a value between 0 and 64");
    g_clear_error(&err);
    g_autoptr(JsonNode) before = migration_options_query_parameters(m->opts);
    g_assert_cmpint(json_object_get_int_member(json_node_get_object(before), "x-page-io-threads"),
                    ==, 0);
    g_autoptr(JsonNode) two = json_from_string("{\"x-page-io-threads\": 2}", NULL);
    g_assert_true(migration_set_parameters(m, json_node_get_object(two), &err));
    g_assert_no_error(err);
    g_autoptr(JsonNode) after = migration_options_query_parameters(m->opts);
    g_assert_cmpint(json_object_get_int_member(json_node_get_object(after), "x-page-io-threads"),
                    ==, 2);

    /*
     * QEMU's other checks, each text from Debian's QEMU 7.2 (or, for the
     * parameters 7.2 lacks, QEMU's migrate_params_check); throttles are
     * held against each other whichever of the two changes.
     */
    static const struct {
        const char *json, *want;      /* want NULL: accepted */
    } rows[] = {
        { "{\"downtime-limit\": 2000001}",
          "Parameter 'downtime_limit' expects an integer in the range of 0 to (2000 * 1000) ms" },
        { "{\"max-cpu-throttle\": 10}",
          "Parameter 'max_cpu_throttle' expects an integer in the range of cpu_throttle_initial "
          "to 99" },
        { "{\"max-cpu-throttle\": 50}", NULL },
        { "{\"cpu-throttle-initial\": 60}",
          "Parameter 'max_cpu_throttle' expects an integer in the range of cpu_throttle_initial "
          "to 99" },
        { "{\"max-cpu-throttle\": 100}",
          "Parameter 'max_cpu_throttle' expects an integer in the range of cpu_throttle_initial "
          "to 99" },
        { "{\"announce-initial\": 100001}",
          "Parameter 'announce_initial' expects a value between 0 and 100000" },
        { "{\"announce-max\": 100001}",
          "Parameter 'announce_max' expects a value between 0 and 100000" },
        { "{\"announce-rounds\": 1001}",
          "Parameter 'announce_rounds' expects a value between 0 and 1000" },
        { "{\"announce-step\": 0}", "Parameter 'announce_step' expects a value between 0 and 10000" },
        { "{\"x-vcpu-dirty-limit-period\": 1001}",
          "Parameter 'x-vcpu-dirty-limit-period' expects a value between 1 and 1000" },
        { "{\"vcpu-dirty-limit\": 0}", "Parameter 'vcpu_dirty_limit' must be greater than 1 MB/s" },
        { "{\"multifd-qatzip-level\": 10}",
          "Parameter 'multifd_qatzip_level' expects a value between 1 and 9" },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(rows); i++) {
        g_autoptr(JsonNode) r = json_from_string(rows[i].json, NULL);
        bool ok = migration_set_parameters(m, json_node_get_object(r), &err);
        g_assert_cmpint(ok, ==, rows[i].want == NULL);
        if (rows[i].want) {
            g_assert_cmpstr(err->message, ==, rows[i].want);
            g_clear_error(&err);
        }
    }
    g_autoptr(JsonNode) last = migration_options_query_parameters(m->opts);
    JsonObject *lo = json_node_get_object(last);
    g_assert_cmpint(json_object_get_int_member(lo, "cpu-throttle-initial"), ==, 20);
    g_assert_cmpint(json_object_get_int_member(lo, "max-cpu-throttle"), ==, 50);
    g_assert_cmpint(json_object_get_int_member(lo, "announce-step"), ==, 100);
    migration_free(m);
    fake_host_free(h);
}

/*
 * QEMU checks the current values, not the new ones: compression turned on
 * under mapped-ram is accepted, and every later change is refused.
 */
static void test_params_quirk(void)
{
    FakeHost *h = fake_host_new(RUN_STATE_RUNNING);
    Migration *m = fake_host_migration_new(h);
    g_autoptr(GError) err = NULL;
    g_autoptr(JsonNode) n = json_from_string("{\"downtime-limit\": 300}", NULL);

    set_cap(m, "mapped-ram");
    set_params(m, "{\"multifd-compression\": \"zlib\"}");
    g_assert_false(migration_set_parameters(m, json_node_get_object(n), &err));
    g_assert_cmpstr(err->message, ==,
                    "Mapped-ram only available for non-compressed non-TLS multifd migration");
    migration_free(m);
    fake_host_free(h);
}

/* Every predicate of compat_rules[] has a case above. */
static void test_table_covered(void)
{
    g_autofree char *path = g_build_filename(MAPRAM_SOURCE_ROOT, "migration", "options.c",
                                             NULL);
    g_autofree char *text = NULL;
    g_autoptr(GError) err = NULL;
    g_assert_true(g_file_get_contents(path, &text, NULL, &err));

    const char *table = strstr(text, "compat_rules[] = {");
    g_assert_nonnull(table);
    const char *end = strstr(table, "\n};");
    g_assert_nonnull(end);
    g_autofree char *body = g_strndup(table, end - table);
    g_autoptr(GRegex) row = g_regex_new("\\{\\s*PHASE_[A-Z]+,\\s*(r_[a-z_]+),", 0, 0, &err);
    g_autoptr(GMatchInfo) mi = NULL;
    g_autoptr(GString) missing = g_string_new(NULL);
    unsigned rows = 0;

    g_regex_match(row, body, 0, &mi);
    for (; g_match_info_matches(mi); g_match_info_next(mi, NULL)) {
        g_autofree char *rule = g_match_info_fetch(mi, 1);
        bool found = !strcmp(rule, "r_mfd_incoming") ||    /* their own tests */
                     !strcmp(rule, "r_mr_postcopy_save");
        for (size_t i = 0; i < G_N_ELEMENTS(cases) && !found; i++) {
            found = !strcmp(cases[i].rule, rule);
        }
        if (!found) {
            g_string_append_printf(missing, " %s", rule);
        }
        rows++;
    }
    g_assert_cmpuint(rows, >=, 21);
    g_assert_cmpstr(missing->str, ==, "");
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        const Case *c = &cases[i];
        g_autofree char *out = g_strdup_printf("/migration/compat/%s%s", c->name,
                                               c->stage == AT_BOTH ? "/outgoing" : "");
        if (c->stage == AT_INCOMING) {
            g_test_add_data_func(out, c, test_incoming);
            continue;
        }
        g_test_add_data_func(out, c, test_outgoing);
        if (c->stage == AT_BOTH) {
            g_autofree char *in = g_strdup_printf("/migration/compat/%s/incoming", c->name);
            g_test_add_data_func(in, c, test_incoming);
        }
    }
    g_test_add_func("/migration/compat/multifd-after-incoming", test_multifd_after_incoming);
    g_test_add_func("/migration/compat/multifd-off-after-incoming",
                    test_multifd_off_after_incoming);
    g_test_add_func("/migration/compat/mapped-ram-postcopy/save",
                    test_mapped_ram_postcopy_save);
    g_test_add_func("/migration/compat/switchover-ack/global", test_switchover_ack_global);
    g_test_add_func("/migration/compat/params/range", test_params_range);
    g_test_add_func("/migration/compat/params/quirk", test_params_quirk);
    g_test_add_func("/migration/compat/table-covered", test_table_covered);
    return g_test_run();
}
