/*
 * Command registry and dispatch, and the protocol-level commands
 * (qmp_capabilities, query-commands, query-version).
 *
 * The registry is filled before the main loop starts and only read
 * afterwards, from the main thread.  A request goes: shape check of the
 * request object -> negotiation gate -> schema lookup -> argument
 * validation -> handler -> response, each step with QEMU's messages.
 */
#include <string.h>

#include "config-host.h"
#include "monitor-internal.h"
#include "util/error.h"

#define QMP_VERSION_MAJOR 10
#define QMP_VERSION_MINOR 2
#define QMP_VERSION_MICRO 0

typedef struct QmpCommand {
    QmpCommandFunc fn;
    void *opaque;
} QmpCommand;

static GHashTable *commands;        /* name -> QmpCommand *; main thread */

static void registry_init(void)
{
    if (!commands) {
        commands = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    }
}

void qmp_register_command(const char *name, QmpCommandFunc fn, void *opaque)
{
    QapiKind kind;

    if (!qapi_schema_lookup(qapi_schema_get(), name, &kind) || kind != QAPI_KIND_COMMAND) {
        g_critical("QMP command '%s' registered but not declared in qapi/*.json", name);
        return;
    }
    registry_init();
    QmpCommand *cmd = g_new(QmpCommand, 1);

    cmd->fn = fn;
    cmd->opaque = opaque;
    g_hash_table_replace(commands, g_strdup(name), cmd);
}

QmpCommandFunc qmp_find_command(const char *name, void **opaque)
{
    monitor_register_builtin_commands();
    QmpCommand *cmd = g_hash_table_lookup(commands, name);

    *opaque = cmd ? cmd->opaque : NULL;
    return cmd ? cmd->fn : NULL;
}

/* --- helpers for handlers --- */

const char *qmp_arg_str(JsonObject *args, const char *name, const char *dflt)
{
    JsonNode *n = args ? json_object_get_member(args, name) : NULL;

    if (!n || json_node_get_value_type(n) != G_TYPE_STRING) {
        return dflt;
    }
    return json_node_get_string(n);
}

gint64 qmp_arg_int(JsonObject *args, const char *name, gint64 dflt)
{
    JsonNode *n = args ? json_object_get_member(args, name) : NULL;

    if (!n || json_node_get_value_type(n) != G_TYPE_INT64) {
        return dflt;
    }
    return json_node_get_int(n);
}

bool qmp_arg_bool(JsonObject *args, const char *name, bool dflt)
{
    JsonNode *n = args ? json_object_get_member(args, name) : NULL;

    if (!n || json_node_get_value_type(n) != G_TYPE_BOOLEAN) {
        return dflt;
    }
    return json_node_get_boolean(n);
}

bool qmp_arg_has(JsonObject *args, const char *name)
{
    return args && json_object_has_member(args, name);
}

JsonNode *qmp_empty_return(void)
{
    JsonNode *n = json_node_new(JSON_NODE_OBJECT);

    json_node_take_object(n, json_object_new());
    return n;
}

/* --- responses --- */

static const char *error_class(const GError *err)
{
    if (err->domain != MAPRAM_ERROR) {
        return "GenericError";
    }
    return qmp_error_class_name(err->code);
}

JsonNode *qmp_error_response(const GError *err)
{
    JsonObject *e = json_object_new();
    JsonObject *rsp = json_object_new();
    JsonNode *n = json_node_new(JSON_NODE_OBJECT);

    json_object_set_string_member(e, "class", error_class(err));
    json_object_set_string_member(e, "desc", err->message);
    json_object_set_object_member(rsp, "error", e);
    json_node_take_object(n, rsp);
    return n;
}

static JsonNode *success_response(JsonNode *ret)
{
    JsonObject *rsp = json_object_new();
    JsonNode *n = json_node_new(JSON_NODE_OBJECT);

    json_object_set_member(rsp, "return", ret ? ret : qmp_empty_return());
    json_node_take_object(n, rsp);
    return n;
}

/* --- request checks --- */

/* The request's command name (borrowed), or NULL + errp; QEMU's checks. */
static const char *check_request(JsonObject *req, bool allow_oob, bool *oob,
                                 GError **errp)
{
    JsonObjectIter iter;
    const char *key;
    JsonNode *v;
    const char *exec_key = NULL;
    const char *command = NULL;

    json_object_iter_init_ordered(&iter, req);
    while (json_object_iter_next_ordered(&iter, &key, &v)) {
        if (!strcmp(key, "execute") || (!strcmp(key, "exec-oob") && allow_oob)) {
            if (json_node_get_value_type(v) != G_TYPE_STRING) {
                error_setg(errp, "QMP input member '%s' must be a string", key);
                return NULL;
            }
            if (exec_key) {
                error_setg(errp, "QMP input member '%s' clashes with '%s'", key, exec_key);
                return NULL;
            }
            exec_key = key;
            command = json_node_get_string(v);
        } else if (!strcmp(key, "arguments")) {
            if (!JSON_NODE_HOLDS_OBJECT(v)) {
                error_setg(errp, "QMP input member 'arguments' must be an object");
                return NULL;
            }
        } else if (strcmp(key, "id") != 0) {
            error_setg(errp, "QMP input member '%s' is unexpected", key);
            return NULL;
        }
    }
    if (!exec_key) {
        error_setg(errp, "QMP input lacks member 'execute'");
        return NULL;
    }
    *oob = !strcmp(exec_key, "exec-oob");
    return command;
}

static void command_not_found(const char *command, GError **errp)
{
    g_set_error(errp, MAPRAM_ERROR, QMP_ERROR_COMMAND_NOT_FOUND,
                "The command %s has not been found", command);
}

/* Look up, validate and run; returns the "return" value or NULL + errp. */
static JsonNode *run_command(Monitor *mon, JsonObject *req, GHashTable *u64,
                             GHashTable *unsigned_out, GError **errp)
{
    bool oob = false;
    const char *command = check_request(req, monitor_oob_enabled(mon), &oob, errp);
    JsonObject *args;
    QmpCommandFunc fn;
    void *opaque;
    GError *err = NULL;
    JsonNode *ret;

    if (!command) {
        return NULL;
    }
    /* Before negotiation only qmp_capabilities exists (QEMU swaps lists). */
    if (!monitor_is_negotiated(mon) && strcmp(command, "qmp_capabilities") != 0) {
        command_not_found(command, errp);
        return NULL;
    }
    fn = qmp_find_command(command, &opaque);
    if (!fn) {
        command_not_found(command, errp);
        return NULL;
    }
    if (oob) {
        /* None of our commands is allowed out of band (as in QEMU's list). */
        error_setg(errp, "The command %s does not support OOB", command);
        return NULL;
    }
    args = json_object_has_member(req, "arguments")
           ? json_object_get_object_member(req, "arguments") : NULL;
    if (!qapi_validate_command_args_u64(qapi_schema_get(), command, args, u64, errp)) {
        return NULL;
    }
    if (!args) {
        g_autoptr(JsonObject) empty = json_object_new();

        ret = fn(empty, mon, opaque, &err);
    } else {
        ret = fn(args, mon, opaque, &err);
    }
    if (err) {
        g_clear_pointer(&ret, json_node_unref);
        g_propagate_error(errp, err);
        return NULL;
    }
    if (!ret) {
        return qmp_empty_return();
    }
    if (unsigned_out) {
        qapi_command_return_unsigned(qapi_schema_get(), command, ret, unsigned_out);
    }
    return ret;
}

JsonNode *qmp_dispatch(Monitor *mon, JsonNode *request, GHashTable *u64,
                       GHashTable *unsigned_out)
{
    g_autoptr(GError) err = NULL;
    JsonObject *req;
    JsonNode *id = NULL;
    JsonNode *rsp;
    JsonNode *ret;

    if (!JSON_NODE_HOLDS_OBJECT(request)) {
        error_setg(&err, "QMP input must be a JSON object");
        return qmp_error_response(err);
    }
    req = json_node_get_object(request);
    id = json_object_get_member(req, "id");
    ret = run_command(mon, req, u64, unsigned_out, &err);
    if (ret) {
        rsp = success_response(ret);
    } else {
        if (!monitor_is_negotiated(mon) && err->domain == MAPRAM_ERROR &&
            err->code == QMP_ERROR_COMMAND_NOT_FOUND) {
            g_free(err->message);
            err->message = g_strdup("Expecting capabilities negotiation with 'qmp_capabilities'");
        }
        rsp = qmp_error_response(err);
    }
    if (id) {
        JsonNode *copy = json_node_copy(id);

        /* an id of 2^63 or more goes back as it came, as QEMU echoes its uint64 */
        if (unsigned_out && u64 && g_hash_table_contains(u64, id)) {
            g_hash_table_add(unsigned_out, copy);
        }
        JsonObject *o = json_node_get_object(rsp);
        if (json_object_has_member(o, "error")) {
            /* QEMU's dict order: "id" before "error", after "return" */
            JsonObject *ordered = json_object_new();
            json_object_set_member(ordered, "id", copy);
            json_object_set_member(ordered, "error", json_object_dup_member(o, "error"));
            json_node_take_object(rsp, ordered);
        } else {
            json_object_set_member(o, "id", copy);
        }
    }
    return rsp;
}

/* --- control commands --- */

static JsonNode *qmp_capabilities(JsonObject *args, Monitor *mon, void *opaque, GError **errp)
{
    JsonArray *enable;
    bool oob = false;

    if (monitor_is_negotiated(mon)) {
        g_set_error(errp, MAPRAM_ERROR, QMP_ERROR_COMMAND_NOT_FOUND,
                    "Capabilities negotiation is already complete, command ignored");
        return NULL;
    }
    enable = json_object_has_member(args, "enable")
             ? json_object_get_array_member(args, "enable") : NULL;
    for (guint i = 0; enable && i < json_array_get_length(enable); i++) {
        /* "oob" is the only value the schema lets through. */
        oob = true;
    }
    monitor_set_negotiated(mon, oob);
    return NULL;
}

static JsonNode *qmp_query_commands(JsonObject *args, Monitor *mon, void *opaque, GError **errp)
{
    g_autoptr(GPtrArray) names = qapi_schema_names(qapi_schema_get(), QAPI_KIND_COMMAND);
    JsonArray *arr = json_array_new();
    JsonNode *n = json_node_new(JSON_NODE_ARRAY);

    for (guint i = 0; i < names->len; i++) {
        const char *name = g_ptr_array_index(names, i);

        if (g_hash_table_contains(commands, name)) {
            JsonObject *info = json_object_new();

            json_object_set_string_member(info, "name", name);
            json_array_add_object_element(arr, info);
        }
    }
    json_node_take_array(n, arr);
    return n;
}

JsonNode *qmp_version_info(void)
{
    JsonObject *ver = json_object_new();
    JsonObject *qemu = json_object_new();
    JsonNode *n = json_node_new(JSON_NODE_OBJECT);

    /* QEMU's member order, as its clients see it. */
    json_object_set_int_member(qemu, "micro", QMP_VERSION_MICRO);
    json_object_set_int_member(qemu, "minor", QMP_VERSION_MINOR);
    json_object_set_int_member(qemu, "major", QMP_VERSION_MAJOR);
    json_object_set_object_member(ver, "qemu", qemu);
    json_object_set_string_member(ver, "package", "mapram " MAPRAM_VERSION);
    json_node_take_object(n, ver);
    return n;
}

static JsonNode *qmp_query_version(JsonObject *args, Monitor *mon, void *opaque, GError **errp)
{
    return qmp_version_info();
}

static gpointer register_builtins(gpointer unused)
{
    registry_init();
    qmp_register_command("qmp_capabilities", qmp_capabilities, NULL);
    qmp_register_command("query-commands", qmp_query_commands, NULL);
    qmp_register_command("query-version", qmp_query_version, NULL);
    qmp_register_fd_commands();
    return NULL;
}

void monitor_register_builtin_commands(void)
{
    static GOnce once = G_ONCE_INIT;

    g_once(&once, register_builtins, NULL);
}
