/*
 * The QMP side of migration: argument handling of the migration commands
 * and the JSON of query-migrate, built from a MigrationInfo snapshot (never
 * from the threads' own objects).  Handlers run on the main thread; their
 * opaque is the Migration.
 */
#include "migration-internal.h"
#include "monitor/qmp.h"
#include "util/error.h"

static JsonNode *qmp_migrate(JsonObject *args, Monitor *mon, void *opaque, GError **errp)
{
    Migration *m = opaque;
    MigAddr addr;
    if (!migration_parse_address_args(args, false, &addr, errp)) {
        mig_addr_clear(&addr);
        return NULL;
    }
    migration_outgoing_start(m, &addr, qmp_arg_bool(args, "resume", false), errp);
    return NULL;
}

static JsonNode *qmp_migrate_cancel(JsonObject *args, Monitor *mon, void *opaque,
                                    GError **errp)
{
    migration_cancel(opaque);
    return NULL;
}

static JsonNode *qmp_migrate_continue(JsonObject *args, Monitor *mon, void *opaque,
                                      GError **errp)
{
    migration_continue(opaque, qmp_arg_str(args, "state", ""), errp);
    return NULL;
}

/*
 * QEMU's first two refusals, in its order.  A mapram save never switches
 * to postcopy (pages arrive on demand only from a mapped-ram file): a
 * save under way goes on as precopy and the command says so; one that
 * has ended is not an error, as in QEMU (the command races with the end).
 */
static JsonNode *qmp_migrate_start_postcopy(JsonObject *args, Monitor *mon, void *opaque,
                                            GError **errp)
{
    Migration *m = opaque;
    g_autoptr(MigrationConfig) cfg = migration_config_snapshot(m->opts);

    if (!cfg->caps[MIGRATION_CAPABILITY_POSTCOPY_RAM]) {
        error_setg(errp, "Enable postcopy with migrate_set_capability before the start of "
                   "migration");
    } else if (!m->out) {
        error_setg(errp, "Postcopy must be started after migration has been started");
    } else if (migration_is_running(m)) {
        error_setg(errp, "mapram-vm does not switch a migration to postcopy: it goes on as "
                   "precopy");
    }
    return NULL;
}

static JsonNode *qmp_migrate_incoming(JsonObject *args, Monitor *mon, void *opaque,
                                      GError **errp)
{
    Migration *m = opaque;
    MigAddr addr;
    if (!migration_incoming_allowed(m, errp)) {
        return NULL;
    }
    if (!migration_parse_address_args(args, true, &addr, errp)) {
        mig_addr_clear(&addr);
        return NULL;
    }
    migration_incoming_begin(m, &addr, qmp_arg_bool(args, "exit-on-error", true), errp);
    return NULL;
}

static JsonObject *ram_json(const MigrationInfo *info)
{
    JsonObject *r = json_object_new();
    json_object_set_int_member(r, "transferred", info->transferred);
    json_object_set_int_member(r, "remaining", info->remaining);
    json_object_set_int_member(r, "total", info->total);
    json_object_set_int_member(r, "duplicate", info->duplicate);
    json_object_set_int_member(r, "normal", info->normal);
    json_object_set_int_member(r, "normal-bytes", info->normal_bytes);
    json_object_set_int_member(r, "dirty-pages-rate", info->dirty_pages_rate);
    json_object_set_double_member(r, "mbps", info->mbps);
    json_object_set_int_member(r, "dirty-sync-count", info->dirty_sync_count);
    json_object_set_int_member(r, "postcopy-requests", info->postcopy_requests);
    json_object_set_int_member(r, "page-size", RAM_PAGE_SIZE);
    json_object_set_int_member(r, "multifd-bytes", info->multifd_bytes);
    json_object_set_int_member(r, "pages-per-second", info->pages_per_second);
    json_object_set_int_member(r, "precopy-bytes", info->precopy_bytes);
    json_object_set_int_member(r, "downtime-bytes", info->downtime_bytes);
    json_object_set_int_member(r, "postcopy-bytes", info->postcopy_bytes);
    json_object_set_int_member(r, "dirty-sync-missed-zero-copy", 0);
    return r;
}

/*
 * As QEMU, with the xbzrle capability on (now, as QEMU reads it) a save's
 * figures include the cache's.  mapram accepts xbzrle without using it:
 * the cache has its size and nothing went through it.
 */
static void xbzrle_json(Migration *m, JsonObject *o)
{
    g_autoptr(MigrationConfig) cfg = migration_config_snapshot(m->opts);

    if (!cfg->caps[MIGRATION_CAPABILITY_XBZRLE]) {
        return;
    }
    g_autoptr(JsonNode) params = migration_options_query_parameters(m->opts);
    JsonObject *x = json_object_new();
    json_object_set_int_member(x, "cache-size",
                               json_object_get_int_member(json_node_get_object(params),
                                                          "xbzrle-cache-size"));
    json_object_set_int_member(x, "bytes", 0);
    json_object_set_int_member(x, "pages", 0);
    json_object_set_int_member(x, "cache-miss", 0);
    json_object_set_double_member(x, "cache-miss-rate", 0);
    json_object_set_double_member(x, "encoding-rate", 0);
    json_object_set_int_member(x, "overflow", 0);
    json_object_set_object_member(o, "xbzrle-cache", x);
}

static JsonNode *qmp_query_migrate(JsonObject *args, Monitor *mon, void *opaque,
                                   GError **errp)
{
    Migration *m = opaque;
    MigrationInfo info;
    JsonObject *o = json_object_new();

    migration_query(m, &info);
    bool none = !strcmp(info.status, "none");
    if (!none) {
        json_object_set_string_member(o, "status", info.status);
    }
    /*
     * As QEMU: a save in setup, failed or cancelled shows its status (and
     * error-desc) alone; one under way or completed its times and RAM,
     * the downtime once completed and the expected one before.
     */
    bool figures = !info.incoming && !none && strcmp(info.status, "setup") &&
                   strcmp(info.status, "failed") && strcmp(info.status, "cancelled");
    if (figures) {
        bool completed = !strcmp(info.status, "completed");
        json_object_set_int_member(o, "total-time", info.total_time_ms);
        json_object_set_int_member(o, "setup-time", info.setup_time_ms);
        json_object_set_int_member(o, completed ? "downtime" : "expected-downtime",
                                   completed ? info.downtime_ms : info.expected_downtime_ms);
    }
    if (info.incoming) {
        JsonArray *a = migration_incoming_listen_address(m->in);
        if (a) {
            json_object_set_array_member(o, "socket-address", a);
        }
    }
    if (info.error_desc) {
        json_object_set_string_member(o, "error-desc", info.error_desc);
    }
    if (info.has_ram && (figures || info.incoming)) {
        json_object_set_object_member(o, "ram", ram_json(&info));
    }
    if (info.has_ram && figures) {
        xbzrle_json(m, o);
    }
    migration_info_clear(&info);
    JsonNode *n = json_node_new(JSON_NODE_OBJECT);
    json_node_take_object(n, o);
    return n;
}

static JsonNode *qmp_set_caps(JsonObject *args, Monitor *mon, void *opaque, GError **errp)
{
    Migration *m = opaque;
    if (migration_is_running(m)) {
        error_setg(errp, "There's a migration process in progress");
        return NULL;
    }
    migration_options_set_capabilities(m->opts, json_object_get_array_member(args, "capabilities"),
                                       migration_incoming_active(m), migration_incoming_vm(m),
                                       errp);
    return NULL;
}

static JsonNode *qmp_query_caps(JsonObject *args, Monitor *mon, void *opaque, GError **errp)
{
    Migration *m = opaque;
    return migration_options_query_capabilities(m->opts);
}

/* Parameters apply live where it matters (max-bandwidth, downtime-limit). */
static JsonNode *qmp_set_params(JsonObject *args, Monitor *mon, void *opaque, GError **errp)
{
    Migration *m = opaque;
    migration_options_set_parameters(m->opts, args, errp);
    return NULL;
}

static JsonNode *qmp_query_params(JsonObject *args, Monitor *mon, void *opaque, GError **errp)
{
    Migration *m = opaque;
    return migration_options_query_parameters(m->opts);
}

void migration_register_qmp(Migration *m)
{
    qmp_register_command("migrate", qmp_migrate, m);
    qmp_register_command("migrate-incoming", qmp_migrate_incoming, m);
    qmp_register_command("migrate_cancel", qmp_migrate_cancel, m);
    qmp_register_command("migrate-continue", qmp_migrate_continue, m);
    qmp_register_command("migrate-start-postcopy", qmp_migrate_start_postcopy, m);
    qmp_register_command("query-migrate", qmp_query_migrate, m);
    qmp_register_command("migrate-set-capabilities", qmp_set_caps, m);
    qmp_register_command("query-migrate-capabilities", qmp_query_caps, m);
    qmp_register_command("migrate-set-parameters", qmp_set_params, m);
    qmp_register_command("query-migrate-parameters", qmp_query_params, m);
}
