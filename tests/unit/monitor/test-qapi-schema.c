/*
 * The embedded QMP schema: it parses, every reference resolves, it has
 * QEMU's names, and arguments are validated with QEMU's messages.
 */
#include <string.h>

#include "monitor/monitor-internal.h"
#include "util/error.h"

static JsonObject *parse_object(const char *text)
{
    g_autoptr(JsonParser) p = json_parser_new();
    g_autoptr(GError) err = NULL;

    g_assert_true(json_parser_load_from_data(p, text, -1, &err));
    g_assert_no_error(err);
    g_assert_true(JSON_NODE_HOLDS_OBJECT(json_parser_get_root(p)));
    return json_object_ref(json_node_get_object(json_parser_get_root(p)));
}

/* Validate args (JSON text) for command; expect success when msg is NULL. */
static void check_args(const char *command, const char *args, const char *msg)
{
    g_autoptr(JsonObject) obj = args ? parse_object(args) : NULL;
    g_autoptr(GError) err = NULL;
    bool ok = qapi_validate_command_args(qapi_schema_get(), command, obj, &err);

    if (!msg) {
        g_assert_no_error(err);
        g_assert_true(ok);
        return;
    }
    g_assert_false(ok);
    g_assert_nonnull(err);
    g_assert_cmpstr(err->message, ==, msg);
}

static void test_schema_loads(void)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(QapiSchema) s = qapi_schema_parse(qapi_schema_text(), &err);
    g_autoptr(GPtrArray) cmds = NULL;
    g_autoptr(GPtrArray) events = NULL;

    g_assert_no_error(err);
    g_assert_nonnull(s);
    g_assert_true(qapi_schema_check(s, &err));
    g_assert_no_error(err);

    cmds = qapi_schema_names(s, QAPI_KIND_COMMAND);
    events = qapi_schema_names(s, QAPI_KIND_EVENT);
    static const char *const want_cmds[] = {
        "qmp_capabilities", "query-commands", "query-version", "query-status",
        "stop", "cont", "quit", "getfd", "closefd", "add-fd", "remove-fd",
        "query-fdsets", "pmemsave", "migrate", "migrate-incoming",
        "migrate_cancel", "migrate-continue", "migrate-start-postcopy", "query-migrate",
        "migrate-set-capabilities", "query-migrate-capabilities", "migrate-set-parameters",
        "query-migrate-parameters",
    };
    for (size_t i = 0; i < G_N_ELEMENTS(want_cmds); i++) {
        QapiKind kind;

        g_assert_nonnull(qapi_schema_lookup(s, want_cmds[i], &kind));
        g_assert_cmpint(kind, ==, QAPI_KIND_COMMAND);
    }
    g_assert_cmpuint(cmds->len, ==, G_N_ELEMENTS(want_cmds));
    static const char *const want_events[] = {
        "MIGRATION", "MIGRATION_PASS", "RESUME", "SHUTDOWN", "STOP",
    };
    g_assert_cmpuint(events->len, ==, G_N_ELEMENTS(want_events));
    for (size_t i = 0; i < G_N_ELEMENTS(want_events); i++) {
        g_assert_cmpstr(g_ptr_array_index(events, i), ==, want_events[i]);
    }
}

static void assert_enum(const char *name, const char *const *want, size_t n)
{
    QapiKind kind;
    JsonObject *def = qapi_schema_lookup(qapi_schema_get(), name, &kind);
    JsonArray *vals;

    g_assert_nonnull(def);
    g_assert_cmpint(kind, ==, QAPI_KIND_ENUM);
    vals = json_object_get_array_member(def, "data");
    g_assert_cmpuint(json_array_get_length(vals), ==, n);
    for (guint i = 0; i < n; i++) {
        JsonNode *v = json_array_get_element(vals, i);
        const char *s = JSON_NODE_HOLDS_OBJECT(v)
            ? json_object_get_string_member(json_node_get_object(v), "name")
            : json_node_get_string(v);

        g_assert_cmpstr(s, ==, want[i]);
    }
}

static void test_schema_qemu_enums(void)
{
    static const char *const caps[] = {
        "xbzrle", "rdma-pin-all", "auto-converge", "zero-blocks", "events",
        "postcopy-ram", "x-colo", "release-ram", "return-path",
        "pause-before-switchover", "multifd", "dirty-bitmaps",
        "postcopy-blocktime", "late-block-activate", "x-ignore-shared",
        "validate-uuid", "background-snapshot", "zero-copy-send",
        "postcopy-preempt", "switchover-ack", "dirty-limit", "mapped-ram",
    };
    static const char *const status[] = {
        "none", "setup", "cancelling", "cancelled", "active",
        "postcopy-active", "postcopy-paused", "postcopy-recover-setup",
        "postcopy-recover", "completed", "failed", "colo", "pre-switchover",
        "device", "wait-unplug",
    };
    static const char *const modes[] = { "normal", "cpr-reboot", "cpr-transfer", "cpr-exec" };
    static const char *const zpd[] = { "none", "legacy", "multifd" };

    assert_enum("MigrationCapability", caps, G_N_ELEMENTS(caps));
    assert_enum("MigrationStatus", status, G_N_ELEMENTS(status));
    assert_enum("MigMode", modes, G_N_ELEMENTS(modes));
    assert_enum("ZeroPageDetection", zpd, G_N_ELEMENTS(zpd));
}

static void test_schema_rejects_unknown_type(void)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(QapiSchema) s =
        qapi_schema_parse("[{\"command\": \"x\", \"data\": {\"a\": \"Nope\"}}]", &err);

    g_assert_no_error(err);
    g_assert_false(qapi_schema_check(s, &err));
    g_assert_cmpstr(err->message, ==, "'x' refers to unknown type 'Nope'");
}

static void test_schema_rejects_duplicate(void)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(QapiSchema) s =
        qapi_schema_parse("[{\"command\": \"x\"}, {\"struct\": \"x\", \"data\": {}}]", &err);

    g_assert_null(s);
    g_assert_cmpstr(err->message, ==, "Schema definition 'x' is duplicated");
}

static void test_validate_ok(void)
{
    check_args("migrate", NULL, NULL);
    check_args("migrate", "{\"uri\": \"file:/x\", \"detach\": true}", NULL);
    check_args("migrate",
               "{\"channels\": [{\"channel-type\": \"main\", \"addr\": {\"transport\": \"file\","
               " \"filename\": \"/x\", \"offset\": 4096}}]}", NULL);
    /* uint64 takes negative numbers, for compatibility, as QEMU does. */
    check_args("migrate",
               "{\"channels\": [{\"channel-type\": \"main\", \"addr\": {\"transport\": \"file\","
               " \"filename\": \"/x\", \"offset\": -1}}]}", NULL);
    check_args("migrate",
               "{\"channels\": [{\"channel-type\": \"main\", \"addr\": {\"transport\": \"socket\","
               " \"type\": \"inet\", \"host\": \"h\", \"port\": \"1\"}}]}", NULL);
    check_args("migrate",
               "{\"channels\": [{\"channel-type\": \"main\", \"addr\": {\"transport\": \"exec\","
               " \"args\": [\"cat\"]}}]}", NULL);
    check_args("migrate-set-parameters",
               "{\"multifd-channels\": 255, \"tls-creds\": null, \"tls-hostname\": \"h\","
               " \"direct-io\": true, \"mode\": \"cpr-exec\", \"max-bandwidth\": 0,"
               " \"cpr-exec-command\": [\"a\", \"b\"], \"zero-page-detection\": \"legacy\"}",
               NULL);
    check_args("migrate-set-capabilities",
               "{\"capabilities\": [{\"capability\": \"mapped-ram\", \"state\": true}]}", NULL);
    check_args("add-fd", "{\"fdset-id\": 3, \"opaque\": \"o\"}", NULL);
    check_args("qmp_capabilities", "{\"enable\": [\"oob\"]}", NULL);
}

static void test_validate_missing(void)
{
    check_args("getfd", NULL, "Parameter 'fdname' is missing");
    check_args("pmemsave", "{\"val\": 0, \"size\": 1}", "Parameter 'filename' is missing");
    check_args("migrate", "{\"channels\": [{\"channel-type\": \"main\", \"addr\": {}}]}",
               "Parameter 'channels[0].addr.transport' is missing");
    check_args("migrate",
               "{\"channels\": [{\"channel-type\": \"main\", \"addr\": {\"transport\": \"file\","
               " \"filename\": \"/x\"}}]}",
               "Parameter 'channels[0].addr.offset' is missing");
    /* A union branch that is itself a union (socket -> SocketAddress). */
    check_args("migrate",
               "{\"channels\": [{\"channel-type\": \"main\", \"addr\": {\"transport\": \"socket\","
               " \"type\": \"unix\"}}]}",
               "Parameter 'channels[0].addr.path' is missing");
    check_args("migrate-set-capabilities",
               "{\"capabilities\": [{\"capability\": \"multifd\", \"state\": true},"
               " {\"capability\": \"mapped-ram\"}]}",
               "Parameter 'capabilities[1].state' is missing");
}

static void test_validate_type(void)
{
    check_args("migrate-set-parameters", "{\"direct-io\": 1}",
               "Invalid parameter type for 'direct-io', expected: boolean");
    check_args("pmemsave", "{\"val\": \"0\", \"size\": 1, \"filename\": \"f\"}",
               "Invalid parameter type for 'val', expected: integer");
    check_args("pmemsave", "{\"val\": 1.5, \"size\": 1, \"filename\": \"f\"}",
               "Invalid parameter type for 'val', expected: integer");
    check_args("pmemsave", "{\"val\": 0, \"size\": 1, \"filename\": 7}",
               "Invalid parameter type for 'filename', expected: string");
    check_args("migrate", "{\"channels\": {}}",
               "Invalid parameter type for 'channels', expected: array");
    check_args("migrate", "{\"channels\": [1]}",
               "Invalid parameter type for 'channels[0]', expected: object");
    check_args("migrate", "{\"channels\": [{\"channel-type\": \"main\", \"addr\": []}]}",
               "Invalid parameter type for 'channels[0].addr', expected: object");
    check_args("migrate-set-parameters", "{\"cpr-exec-command\": [\"a\", 2]}",
               "Invalid parameter type for 'cpr-exec-command[1]', expected: string");
    check_args("migrate-set-parameters", "{\"tls-creds\": 1}",
               "Invalid parameter type for 'tls-creds', expected: StrOrNull");
    check_args("migrate-set-parameters", "{\"mode\": 1}",
               "Invalid parameter type for 'mode', expected: string");
}

static void test_validate_unexpected(void)
{
    check_args("query-status", "{\"x\": 1}", "Parameter 'x' is unexpected");
    check_args("migrate-set-parameters", "{\"bogus\": 1}", "Parameter 'bogus' is unexpected");
    check_args("migrate",
               "{\"channels\": [{\"channel-type\": \"main\", \"addr\": {\"transport\": \"file\","
               " \"filename\": \"/x\", \"offset\": 0, \"foo\": 1}}]}",
               "Parameter 'channels[0].addr.foo' is unexpected");
    /* Members of another branch are unexpected in this one. */
    check_args("migrate",
               "{\"channels\": [{\"channel-type\": \"main\", \"addr\": {\"transport\": \"exec\","
               " \"args\": [], \"filename\": \"/x\"}}]}",
               "Parameter 'channels[0].addr.filename' is unexpected");
}

static void test_validate_enum(void)
{
    check_args("migrate-set-parameters", "{\"mode\": \"bogus\"}",
               "Parameter 'mode' does not accept value 'bogus'");
    /* QEMU names the bare member for enum values, not its path. */
    check_args("migrate", "{\"channels\": [{\"channel-type\": \"main\", \"addr\":"
               " {\"transport\": \"tcp\"}}]}",
               "Parameter 'transport' does not accept value 'tcp'");
    check_args("migrate-set-capabilities",
               "{\"capabilities\": [{\"capability\": \"fixed-ram\", \"state\": true}]}",
               "Parameter 'capability' does not accept value 'fixed-ram'");
    check_args("migrate-set-parameters", "{\"multifd-compression\": \"lz4\"}",
               "Parameter 'multifd-compression' does not accept value 'lz4'");
}

static void test_validate_range(void)
{
    check_args("migrate-set-parameters", "{\"multifd-channels\": 256}",
               "Parameter 'multifd-channels' expects uint8_t");
    check_args("migrate-set-parameters", "{\"multifd-channels\": -1}",
               "Parameter 'multifd-channels' expects uint8_t");
    check_args("migrate-set-parameters", "{\"multifd-channels\": \"2\"}",
               "Parameter 'multifd-channels' expects uint64");
    check_args("migrate-set-parameters", "{\"x-checkpoint-delay\": 4294967296}",
               "Parameter 'x-checkpoint-delay' expects uint32_t");
    check_args("migrate-set-parameters", "{\"downtime-limit\": 1.5}",
               "Parameter 'downtime-limit' expects uint64");
    check_args("migrate-set-parameters", "{\"max-bandwidth\": \"1M\"}",
               "Parameter 'max-bandwidth' expects uint64");
    check_args("migrate",
               "{\"channels\": [{\"channel-type\": \"main\", \"addr\": {\"transport\": \"file\","
               " \"filename\": \"/x\", \"offset\": \"0x1000\"}}]}",
               "Parameter 'channels[0].addr.offset' expects uint64");
}

static void test_validate_unknown_command(void)
{
    g_autoptr(GError) err = NULL;

    g_assert_false(qapi_validate_command_args(qapi_schema_get(), "nope", NULL, &err));
    g_assert_error(err, MAPRAM_ERROR, QMP_ERROR_COMMAND_NOT_FOUND);
    g_assert_cmpstr(err->message, ==, "The command nope has not been found");
}

static void test_validate_value_types(void)
{
    static const struct {
        const char *type, *json, *msg;
    } cases[] = {
        { "number", "1", NULL },
        { "number", "1.25", NULL },
        { "number", "\"1\"", "Invalid parameter type for 'v', expected: number" },
        { "size", "1", NULL },
        { "int8", "-129", "Parameter 'v' expects int8_t" },
        { "int16", "32767", NULL },
        { "any", "[1, {}]", NULL },
        { "null", "0", "Invalid parameter type for 'v', expected: null" },
        { "MigrationStatus", "\"device\"", NULL },
        { "SocketAddress", "{\"type\": \"fd\", \"str\": \"x\"}", NULL },
        { "SocketAddress", "{\"type\": \"inet\", \"host\": \"h\", \"port\": \"1\", \"to\": 70000}",
          "Parameter 'to' expects uint16_t" },
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(JsonParser) p = json_parser_new();
        g_autoptr(GError) err = NULL;
        bool ok;

        g_assert_true(json_parser_load_from_data(p, cases[i].json, -1, NULL));
        ok = qapi_validate_value(qapi_schema_get(), cases[i].type, json_parser_get_root(p),
                                 "v", &err);
        if (cases[i].msg) {
            g_assert_false(ok);
            g_assert_cmpstr(err->message, ==, cases[i].msg);
        } else {
            g_assert_no_error(err);
            g_assert_true(ok);
        }
    }
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/monitor/schema/loads", test_schema_loads);
    g_test_add_func("/monitor/schema/qemu-enums", test_schema_qemu_enums);
    g_test_add_func("/monitor/schema/rejects-unknown-type", test_schema_rejects_unknown_type);
    g_test_add_func("/monitor/schema/rejects-duplicate", test_schema_rejects_duplicate);
    g_test_add_func("/monitor/validate/ok", test_validate_ok);
    g_test_add_func("/monitor/validate/missing", test_validate_missing);
    g_test_add_func("/monitor/validate/type", test_validate_type);
    g_test_add_func("/monitor/validate/unexpected", test_validate_unexpected);
    g_test_add_func("/monitor/validate/enum", test_validate_enum);
    g_test_add_func("/monitor/validate/range", test_validate_range);
    g_test_add_func("/monitor/validate/unknown-command", test_validate_unknown_command);
    g_test_add_func("/monitor/validate/value-types", test_validate_value_types);
    return g_test_run();
}
