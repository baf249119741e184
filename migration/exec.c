/*
 * The exec: transport: "exec:CMD" runs CMD with /bin/sh -c and streams
 * through its stdin (outgoing) or stdout (incoming).  A channels address
 * gives argv instead, which is quoted back into one shell command line.
 */
#include <fcntl.h>

#include "transport.h"
#include "util/error.h"

static bool exec_parse_uri(const char *scheme, const char *spec, MigAddr *out,
                           GError **errp)
{
    out->kind = TRANSPORT_EXEC;
    out->command = g_strdup(spec);
    if (!*out->command) {
        error_setg(errp, "exec: URI has an empty command");
        return false;
    }
    return true;
}

static bool exec_parse_channel(JsonObject *addr, MigAddr *out, GError **errp)
{
    JsonArray *args = json_object_get_array_member(addr, "args");

    out->kind = TRANSPORT_EXEC;
    if (!json_array_get_length(args)) {
        /* as the URI form: nothing to run is refused at once */
        error_setg(errp, "exec: channel has an empty argument list");
        return false;
    }
    GString *cmd = g_string_new(NULL);

    for (guint i = 0; i < json_array_get_length(args); i++) {
        g_autofree char *q = g_shell_quote(json_array_get_string_element(args, i));

        g_string_append_printf(cmd, "%s%s", i ? " " : "", q);
    }
    out->kind = TRANSPORT_EXEC;
    out->command = g_string_free(cmd, FALSE);
    return true;
}

static char *exec_describe(const MigAddr *a)
{
    return g_strdup_printf("exec:%s", a->command);
}

static IOChannel *exec_open_outgoing(Migration *m, const MigAddr *a, off_t *start,
                                     const int *stop, GError **errp)
{
    return io_channel_command_new_spawn(a->command, O_WRONLY, errp);
}

static IOChannel *exec_open_incoming(Migration *m, const MigAddr *a, off_t *start,
                                     IOListener **listener, GError **errp)
{
    return io_channel_command_new_spawn(a->command, O_RDONLY, errp);
}

const MigTransport mig_transport_exec = {
    .kind = TRANSPORT_EXEC,
    .uri_schemes = (const char *const[]){ "exec:", NULL },
    .channel_name = "exec",
    .parse_uri = exec_parse_uri,
    .parse_channel = exec_parse_channel,
    .describe = exec_describe,
    .open_outgoing = exec_open_outgoing,
    .open_incoming = exec_open_incoming,
};
