/*
 * QMP wrappers for migration tests (see migration-helpers.h).
 */
#include "migration-helpers.h"

#include <string.h>
#include <unistd.h>

#include <glib/gstdio.h>

void migrate_set_capability(QTestState *who, const char *cap, bool on)
{
    qtest_qmp_assert_success(who,
        "{'execute': 'migrate-set-capabilities', 'arguments': "
        "{'capabilities': [{'capability': '%s', 'state': %s}]}}",
        cap, on ? "true" : "false");
}

bool migrate_get_capability(QTestState *who, const char *cap)
{
    g_autoptr(JsonNode) caps = qtest_qmp_assert_success_node(who,
        "{'execute': 'query-migrate-capabilities'}");
    JsonArray *arr = json_node_get_array(caps);

    for (guint i = 0; i < json_array_get_length(arr); i++) {
        JsonObject *o = json_array_get_object_element(arr, i);

        if (g_strcmp0(qtest_json_get_str(o, "capability"), cap) == 0) {
            return qtest_json_get_bool(o, "state", false);
        }
    }
    g_assert_not_reached();
}

void migrate_set_parameter_int(QTestState *who, const char *name,
                               long long value)
{
    qtest_qmp_assert_success(who,
        "{'execute': 'migrate-set-parameters', 'arguments': {'%s': %lld}}",
        name, value);
    g_assert_cmpint(migrate_get_parameter_int(who, name), ==, value);
}

void migrate_set_parameter_bool(QTestState *who, const char *name, bool value)
{
    g_autoptr(JsonObject) p = NULL;

    qtest_qmp_assert_success(who,
        "{'execute': 'migrate-set-parameters', 'arguments': {'%s': %s}}",
        name, value ? "true" : "false");
    p = qtest_qmp_assert_success_ref(who,
                                     "{'execute': 'query-migrate-parameters'}");
    g_assert_cmpint(qtest_json_get_bool(p, name, !value), ==, value);
}

void migrate_set_parameter_str(QTestState *who, const char *name,
                               const char *value)
{
    g_autofree char *v = qtest_json_str(value);
    g_autoptr(JsonObject) p = NULL;

    qtest_qmp_assert_success(who,
        "{'execute': 'migrate-set-parameters', 'arguments': {'%s': %s}}",
        name, v);
    p = qtest_qmp_assert_success_ref(who,
                                     "{'execute': 'query-migrate-parameters'}");
    g_assert_cmpstr(qtest_json_get_str(p, name), ==, value);
}

long long migrate_get_parameter_int(QTestState *who, const char *name)
{
    g_autoptr(JsonObject) p = qtest_qmp_assert_success_ref(who,
        "{'execute': 'query-migrate-parameters'}");

    g_assert_true(json_object_has_member(p, name));
    return qtest_json_get_int(p, name, -1);
}

void migrate_ensure_converge(QTestState *who)
{
    migrate_set_parameter_int(who, "max-bandwidth", 1000000000LL);
    migrate_set_parameter_int(who, "downtime-limit", 30 * 1000);
}

void migrate_ensure_non_converge(QTestState *who)
{
    migrate_set_parameter_int(who, "max-bandwidth", 3 * 1000 * 1000);
    migrate_set_parameter_int(who, "downtime-limit", 1);
}

JsonObject *migrate_query(QTestState *who)
{
    return qtest_qmp_assert_success_ref(who, "{'execute': 'query-migrate'}");
}

char *migrate_query_status(QTestState *who)
{
    g_autoptr(JsonObject) info = migrate_query(who);
    const char *st = qtest_json_get_str(info, "status");

    return g_strdup(st ? st : "none");
}

static char *migrate_args(const char *uri, const char *channels_json)
{
    if (uri) {
        g_autofree char *u = qtest_json_str(uri);

        return g_strdup_printf("'uri': %s", u);
    }
    g_assert(channels_json);
    return g_strdup_printf("'channels': %s", channels_json);
}

void migrate_qmp(QTestState *who, const char *uri, const char *channels_json)
{
    g_autofree char *args = migrate_args(uri, channels_json);

    qtest_qmp_assert_success(who, "{'execute': 'migrate', 'arguments': {%s}}",
                             args);
}

char *migrate_qmp_expect_error(QTestState *who, const char *uri,
                               const char *channels_json)
{
    g_autofree char *args = migrate_args(uri, channels_json);

    return qtest_qmp_expect_error(who,
        "{'execute': 'migrate', 'arguments': {%s}}", args);
}

/* MIGRATION events until one with @status (earlier ones are dropped). */
static void wait_for_migration_event(QTestState *who, const char *status)
{
    for (;;) {
        g_autoptr(JsonObject) ev = qtest_qmp_eventwait_ref(who, "MIGRATION");
        const char *st = qtest_json_get_str(qtest_json_get_obj(ev, "data"),
                                            "status");

        if (g_strcmp0(st, status) == 0) {
            return;
        }
    }
}

void migrate_incoming_qmp(QTestState *to, const char *uri,
                          const char *channels_json, const char *extra_json)
{
    g_autofree char *args = migrate_args(uri, channels_json);

    qtest_qmp_assert_success(to,
        "{'execute': 'migrate-incoming', 'arguments': {%s%s%s}}", args,
        extra_json ? ", " : "", extra_json ? extra_json : "");
    wait_for_migration_event(to, "setup");
}

char *migrate_incoming_qmp_expect_error(QTestState *to, const char *uri,
                                        const char *extra_json)
{
    g_autofree char *args = migrate_args(uri, NULL);

    return qtest_qmp_expect_error(to,
        "{'execute': 'migrate-incoming', 'arguments': {%s%s%s}}", args,
        extra_json ? ", " : "", extra_json ? extra_json : "");
}

static bool in_list(const char *s, const char *const *list)
{
    for (; list && *list; list++) {
        if (g_strcmp0(s, *list) == 0) {
            return true;
        }
    }
    return false;
}

void wait_for_migration_status(QTestState *who, const char *goal,
                               const char *const *ungoals)
{
    static const char *const dflt[] = { "failed", "cancelled", NULL };
    gint64 deadline = g_get_monotonic_time() +
                      (gint64)qtest_timeout_s() * G_USEC_PER_SEC;
    g_autofree char *last = NULL;

    if (!ungoals) {
        ungoals = dflt;
    }
    for (;;) {
        g_autoptr(JsonObject) info = migrate_query(who);
        const char *st = qtest_json_get_str(info, "status");

        if (g_strcmp0(st, goal) == 0) {
            return;
        }
        if (in_list(st, ungoals)) {
            g_autoptr(JsonNode) n = json_node_new(JSON_NODE_OBJECT);
            g_autofree char *text = NULL;

            json_node_set_object(n, info);
            text = qtest_json_text(n);
            g_test_message("query-migrate: %s", text);
            qtest_fail(who, "migration reached '%s' while waiting for '%s': %s", st,
                    goal, qtest_json_get_str(info, "error-desc") ?: "(no error-desc)");
        }
        g_free(last);
        last = g_strdup(st);
        if (g_get_monotonic_time() > deadline) {
            qtest_fail(who, "migration status '%s' not reached within %d s "
                    "(last status '%s')", goal, qtest_timeout_s(),
                    last ? last : "none");
        }
        g_usleep(2 * 1000);
    }
}

void wait_for_migration_complete(QTestState *who)
{
    wait_for_migration_status(who, "completed", NULL);
}

char *wait_for_migration_fail(QTestState *who)
{
    static const char *const ungoals[] = { "completed", "cancelled", NULL };
    g_autoptr(JsonObject) info = NULL;
    const char *desc;

    wait_for_migration_status(who, "failed", ungoals);
    info = migrate_query(who);
    desc = qtest_json_get_str(info, "error-desc");
    g_assert_nonnull(desc);
    return g_strdup(desc);
}

void wait_for_migration_pass(QTestState *who)
{
    gint64 deadline = g_get_monotonic_time() +
                      (gint64)qtest_timeout_s() * G_USEC_PER_SEC;

    for (;;) {
        g_autoptr(JsonObject) info = migrate_query(who);
        JsonObject *ram = qtest_json_get_obj(info, "ram");
        const char *st = qtest_json_get_str(info, "status");

        if (qtest_json_get_int(ram, "dirty-sync-count", 0) >= 2 ||
            g_strcmp0(st, "completed") == 0) {
            return;
        }
        g_assert_cmpstr(st, !=, "failed");
        if (g_get_monotonic_time() > deadline) {
            qtest_fail(who, "no second migration pass within %d s", qtest_timeout_s());
        }
        g_usleep(2 * 1000);
    }
}

char *query_runstate(QTestState *who)
{
    g_autoptr(JsonObject) st = qtest_qmp_assert_success_ref(who,
        "{'execute': 'query-status'}");

    return g_strdup(qtest_json_get_str(st, "status"));
}

bool runstate_is_running(QTestState *who)
{
    g_autoptr(JsonObject) st = qtest_qmp_assert_success_ref(who,
        "{'execute': 'query-status'}");

    return qtest_json_get_bool(st, "running", false);
}

uint8_t *read_whole_file(const char *path, size_t *len)
{
    g_autoptr(GError) err = NULL;
    char *data = NULL;
    gsize n = 0;

    if (!g_file_get_contents(path, &data, &n, &err)) {
        g_error("cannot read '%s': %s", path, err->message);
    }
    if (len) {
        *len = n;
    }
    return (uint8_t *)data;
}

uint8_t *guest_memread(QTestState *who, const char *tmpdir, uint64_t addr,
                       uint64_t size)
{
    g_autofree char *path = g_strdup_printf("%s/pmem-%d.bin", tmpdir,
                                            (int)qtest_pid(who));
    g_autofree char *jpath = qtest_json_str(path);
    uint8_t *data;
    size_t len = 0;

    qtest_qmp_assert_success(who,
        "{'execute': 'pmemsave', 'arguments': "
        "{'val': %" G_GUINT64_FORMAT ", 'size': %" G_GUINT64_FORMAT
        ", 'filename': %s}}", addr, size, jpath);
    data = read_whole_file(path, &len);
    g_assert_cmpuint(len, ==, size);
    g_unlink(path);
    return data;
}

uint8_t guest_memread_u8(QTestState *who, const char *tmpdir, uint64_t addr)
{
    g_autofree uint8_t *b = guest_memread(who, tmpdir, addr, 1);

    return b[0];
}
