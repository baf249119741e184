/*
 * The Migration object: what one VM's migrations share (the host, the
 * option values, the handler registry), its life cycle, the state names
 * and the events.  The two directions live in outgoing.c and incoming.c,
 * the QMP commands in qmp.c.
 */
#include "migration-internal.h"
#include "util/error.h"
#include <string.h>

const char *migration_status_name(MigrationStatus s)
{
    static const char *const names[] = {
        "none", "setup", "cancelling", "cancelled", "active", "completed", "failed", "device",
        "postcopy-active", "postcopy-paused", "pre-switchover",
    };
    return names[s];
}

gint64 migration_now_ms(void)
{
    return g_get_monotonic_time() / 1000;
}

void migration_event(Migration *m, const char *name, JsonObject *data)
{
    if (m->host->event) {
        m->host->event(m->host_opaque, name, data);
    } else if (data) {
        json_object_unref(data);
    }
}

void migration_error_report(Migration *m, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    if (m->host->error_report) {
        m->host->error_report(m->host_opaque, msg);
    } else {
        g_printerr("migration: %s\n", msg);
    }
    g_free(msg);
}

/*
 * As QEMU's migrate_generate_event: the events capability as it is now
 * (a destination may turn it on after migrate-incoming; a save cannot
 * change it while it runs).
 */
void migration_status_event(Migration *m, MigrationStatus s)
{
    if (migrate_events(m->opts)) {
        JsonObject *d = json_object_new();
        json_object_set_string_member(d, "status", migration_status_name(s));
        migration_event(m, "MIGRATION", d);
    }
}

Migration *migration_new(const MigrationHostOps *ops, void *opaque)
{
    Migration *m = g_new0(Migration, 1);
    m->host = ops;
    m->host_opaque = opaque;
    m->registry = savevm_registry_new();
    m->ram = ram_state_new(m->registry, ops, opaque);
    m->global_state = global_state_new(m->registry, ops, opaque);
    m->opts = migration_options_new();
    g_strlcpy(m->machine_type, "mapram-10.2", sizeof(m->machine_type));
    return m;
}

void migration_free(Migration *m)
{
    if (!m) {
        return;
    }
    if (m->out) {
        migration_outgoing_cancel(m->out);
        migration_outgoing_stop_peer(m->out);
        migration_state_free(m->out);
    }
    migration_incoming_free(m->in);
    migration_options_free(m->opts);
    global_state_free(m->global_state);
    ram_state_free(m->ram);
    savevm_registry_free(m->registry);
    g_free(m);
}

void migration_set_machine_type(Migration *m, const char *name)
{
    g_strlcpy(m->machine_type, name, sizeof(m->machine_type));
}

void migration_register_vmstate(Migration *m, const char *idstr, uint32_t instance_id,
                                const VMStateDescription *vmsd, void *opaque)
{
    savevm_register_vmstate(m->registry, idstr, instance_id, vmsd, opaque);
}

bool migration_incoming_vm(Migration *m)
{
    return m->incoming_cmdline &&
           m->host->runstate_get(m->host_opaque) == RUN_STATE_INMIGRATE;
}

bool migration_set_capability(Migration *m, const char *name, bool on, GError **errp)
{
    if (migration_is_running(m)) {
        error_setg(errp, "There's a migration process in progress");
        return false;
    }
    g_autoptr(JsonArray) list = json_array_new();
    JsonObject *e = json_object_new();
    json_object_set_string_member(e, "capability", name);
    json_object_set_boolean_member(e, "state", on);
    json_array_add_object_element(list, e);
    return migration_options_set_capabilities(m->opts, list, migration_incoming_active(m),
                                              migration_incoming_vm(m), errp);
}

bool migration_set_parameters(Migration *m, JsonObject *args, GError **errp)
{
    return migration_options_set_parameters(m->opts, args, errp);
}

bool migration_set_global_property(Migration *m, const char *name, const char *value,
                                   GError **errp)
{
    return migration_options_set_global(m->opts, name, value, errp);
}

bool migration_check_capabilities(Migration *m, bool incoming_vm, GError **errp)
{
    return migration_options_check_globals(m->opts, incoming_vm, errp);
}

bool migration_outgoing_allowed(Migration *m, bool resume, GError **errp)
{
    RunState rs = m->host->runstate_get(m->host_opaque);
    /* mapram's saves never pause in postcopy, so there is never one to resume */
    if (resume) {
        error_setg(errp, "Cannot resume if there is no paused migration");
        return false;
    }
    if (migration_is_running(m)) {
        error_setg(errp, "There's a migration process in progress");
        return false;
    }
    if (rs == RUN_STATE_INMIGRATE) {
        error_setg(errp, "Guest is waiting for an incoming migration");
        return false;
    }
    /* a paused load never completes: its own error, not "migrate again" */
    if (m->in && !migration_incoming_check_paused(m->in, errp)) {
        return false;
    }
    if (m->in && migration_incoming_pages_missing(m->in)) {
        error_setg(errp, MIGRATION_PAGES_MISSING);
        return false;
    }
    if (rs == RUN_STATE_POSTMIGRATE) {
        error_setg(errp, "Can't migrate the vm that was paused due to previous migration");
        return false;
    }
    return true;
}

bool migration_continue(Migration *m, const char *state, GError **errp)
{
    if (!m->out) {
        error_setg(errp, "Migration not in expected state: %s",
                   migration_status_name(MIGRATION_STATUS_NONE));
        return false;
    }
    return migration_outgoing_continue(m->out, state, errp);
}

bool migration_guest_ram_usable(Migration *m, GError **errp)
{
    return !m->in || migration_incoming_check_paused(m->in, errp);
}

bool migration_start(Migration *m, const char *uri, GError **errp)
{
    MigAddr addr;
    if (!migration_parse_uri(uri, &addr, errp)) {
        mig_addr_clear(&addr);
        return false;
    }
    return migration_outgoing_start(m, &addr, false, errp);
}

void migration_cancel(Migration *m)
{
    if (m->out) {
        migration_outgoing_cancel(m->out);
    }
}

void migration_query(Migration *m, MigrationInfo *info)
{
    memset(info, 0, sizeof(*info));
    MigrationStatus os = m->out ? migration_state_status(m->out) : MIGRATION_STATUS_NONE;
    if (os == MIGRATION_STATUS_NONE && m->in) {
        migration_incoming_query(m->in, info);
        if (info->has_ram) {
            info->total = ram_state_total(m->ram);
        }
        return;
    }
    info->status = migration_status_name(os);
    if (m->out) {
        migration_outgoing_query(m->out, info);
        info->total = ram_state_total(m->ram);
    }
}

void migration_info_clear(MigrationInfo *info)
{
    g_free(info->error_desc);
    memset(info, 0, sizeof(*info));
}

bool migration_incoming_allowed(Migration *m, GError **errp)
{
    if (m->incoming_started) {
        error_setg(errp, "The incoming migration has already been started");
        return false;
    }
    if (!m->incoming_cmdline ||
        m->host->runstate_get(m->host_opaque) != RUN_STATE_INMIGRATE) {
        error_setg(errp, "'-incoming' was not specified on the command line");
        return false;
    }
    return true;
}

bool migration_start_incoming(Migration *m, const char *uri, bool exit_on_error,
                              GError **errp)
{
    MigAddr addr;
    if (!migration_incoming_allowed(m, errp)) {
        return false;
    }
    if (!migration_parse_uri(uri, &addr, errp)) {
        mig_addr_clear(&addr);
        return false;
    }
    return migration_incoming_begin(m, &addr, exit_on_error, errp);
}

bool migration_incoming_cmdline(Migration *m, const char *arg, GError **errp)
{
    MigAddr addr;
    m->incoming_cmdline = true;
    m->host->runstate_set(m->host_opaque, RUN_STATE_INMIGRATE);
    if (!strcmp(arg, "defer")) {
        return true;
    }
    if (!migration_parse_uri(arg, &addr, errp)) {
        mig_addr_clear(&addr);
        return false;
    }
    addr.cmdline = true;
    return migration_incoming_begin(m, &addr, true, errp);
}
