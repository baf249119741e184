/*
 * The socket transports: "unix:PATH" and "tcp:HOST:PORT" (HOST may be a
 * bracketed IPv6 address; of the ",options" after the port, to, ipv4 and
 * ipv6 are taken as QEMU takes them, the others ignored), or a
 * channels address of transport "socket".  Outgoing connects; incoming
 * listens, and migration.c accepts on the main loop.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "transport.h"
#include "util/error.h"

/* A flag of QEMU's inet options: ",name", ",name=on", ",name=off". */
typedef struct InetFlag {
    bool has, on;
} InetFlag;

/*
 * As QEMU's inet_parse: the first ",name" in opts (which starts at the
 * comma after the port); its error quotes the rest of opts.
 */
static bool parse_flag(const char *opts, const char *name, InetFlag *f, GError **errp)
{
    g_autofree char *key = g_strdup_printf(",%s", name);
    const char *p = strstr(opts, key);

    if (!p) {
        return true;
    }
    const char *v = p + strlen(key);
    const char *end = strchr(v, ',');
    size_t len = end ? (size_t)(end - v) : strlen(v);

    f->has = true;
    if (end && end[1] == ',') {
        error_setg(errp, "error parsing '%s' flag '%s'", name, v);
        return false;
    }
    if (len == 0 || (len == 3 && !strncmp(v, "=on", 3))) {
        f->on = true;
    } else if (len == 4 && !strncmp(v, "=off", 4)) {
        f->on = false;
    } else {
        error_setg(errp, "error parsing '%s' flag '%s'", name, v);
        return false;
    }
    return true;
}

/*
 * The address family the ipv4 / ipv6 flags leave, and whether an IPv6
 * socket takes IPv6 alone, as QEMU 7.2 listens: both on is every family
 * (an empty host: one dual-stack ::), one on or the other off is that
 * family alone.
 */
static bool inet_family(InetFlag v4, InetFlag v6, const char *host, MigAddr *out,
                        GError **errp)
{
    if (v4.has && v6.has && !v4.on && !v6.on) {
        error_setg(errp, "Cannot disable IPv4 and IPv6 at same time");
        return false;
    }
    out->v6only = false;
    if (v4.has && v4.on && v6.has && v6.on) {
        out->family = *host ? AF_UNSPEC : AF_INET6;
    } else if ((v6.has && v6.on) || (v4.has && !v4.on)) {
        out->family = AF_INET6;
        out->v6only = true;
    } else if ((v4.has && v4.on) || (v6.has && !v6.on)) {
        out->family = AF_INET;
    } else {
        out->family = AF_UNSPEC;
    }
    return true;
}

/*
 * ",to=N" as QEMU's inet_parse reads it (sscanf's %d: blanks and a sign
 * allowed, then ',' or the end), kept as the uint16 QEMU stores it in.
 */
static bool parse_to(const char *opts, MigAddr *out, GError **errp)
{
    const char *p = strstr(opts, ",to=");
    int to, len;

    if (!p) {
        return true;
    }
    p += 4;
    if (sscanf(p, "%d%n", &to, &len) != 1 || (p[len] != '\0' && p[len] != ',')) {
        error_setg(errp, "error parsing to= argument");
        return false;
    }
    out->has_to = true;
    out->to = (uint16_t)to;
    return true;
}

/* "host:port" with optional [v6] brackets and trailing ",options" */
static bool parse_inet(const char *spec, MigAddr *out, GError **errp)
{
    g_autofree char *s = g_strdup(spec);
    char *comma = strchr(s, ',');
    char *colon;
    InetFlag v4 = { 0 }, v6 = { 0 };
    g_autofree char *opts = NULL;

    if (comma) {
        opts = g_strdup(comma);
        *comma = 0;
        if (!parse_to(opts, out, errp) || !parse_flag(opts, "ipv4", &v4, errp) ||
            !parse_flag(opts, "ipv6", &v6, errp)) {
            return false;
        }
    }
    if (s[0] == '[') {
        char *end = strchr(s, ']');

        if (!end || end[1] != ':') {
            error_setg(errp, "error parsing IPv6 address '%s'", spec);
            return false;
        }
        *end = 0;
        out->host = g_strdup(s + 1);
        colon = end + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon) {
            error_setg(errp, "error parsing address '%s'", spec);
            return false;
        }
        out->host = g_strndup(s, colon - s);
    }
    out->port = g_strdup(colon + 1);
    if (!*out->port) {
        error_setg(errp, "error parsing address '%s'", spec);     /* QEMU's words */
        return false;
    }
    out->kind = TRANSPORT_SOCKET;
    out->sock_type = g_strdup("inet");
    return inet_family(v4, v6, out->host, out, errp);
}

static bool parse_unix(const char *spec, MigAddr *out, GError **errp)
{
    out->kind = TRANSPORT_SOCKET;
    out->sock_type = g_strdup("unix");
    out->path = g_strdup(spec);
    if (!*out->path) {
        error_setg(errp, "invalid Unix socket address");           /* QEMU's words */
        return false;
    }
    return true;
}

static bool socket_parse_uri(const char *scheme, const char *spec, MigAddr *out,
                             GError **errp)
{
    if (!strcmp(scheme, "vsock:")) {
        /* QEMU's URI, refused as the channels form refuses its socket address type */
        error_setg(errp, "socket address type 'vsock' is not supported");
        return false;
    }
    return !strcmp(scheme, "unix:") ? parse_unix(spec, out, errp)
                                    : parse_inet(spec, out, errp);
}

/*
 * QMP spells an fd as a socket address of type "fd"; it becomes an fd:
 * address (TRANSPORT_FD), which the fd transport opens.
 */
static bool socket_parse_channel(JsonObject *addr, MigAddr *out, GError **errp)
{
    const char *type = json_object_get_string_member(addr, "type");

    out->kind = TRANSPORT_SOCKET;
    out->sock_type = g_strdup(type);
    if (!strcmp(type, "inet")) {
        out->host = g_strdup(json_object_get_string_member(addr, "host"));
        out->port = g_strdup(json_object_get_string_member(addr, "port"));
        InetFlag v4 = { json_object_has_member(addr, "ipv4"),
                        json_object_get_boolean_member_with_default(addr, "ipv4", false) };
        InetFlag v6 = { json_object_has_member(addr, "ipv6"),
                        json_object_get_boolean_member_with_default(addr, "ipv6", false) };
        if (json_object_has_member(addr, "to")) {
            out->has_to = true;
            out->to = json_object_get_int_member(addr, "to");
        }
        if (!inet_family(v4, v6, out->host ? out->host : "", out, errp)) {
            return false;
        }
    } else if (!strcmp(type, "unix")) {
        out->path = g_strdup(json_object_get_string_member(addr, "path"));
    } else if (!strcmp(type, "fd")) {
        out->kind = TRANSPORT_FD;
        out->fdname = g_strdup(json_object_get_string_member(addr, "str"));
    } else {
        error_setg(errp, "socket address type '%s' is not supported", type);
        return false;
    }
    return true;
}

static bool is_unix(const MigAddr *a)
{
    return !strcmp(a->sock_type, "unix");
}

static char *socket_describe(const MigAddr *a)
{
    if (is_unix(a)) {
        return g_strdup_printf("unix:%s", a->path);
    }
    return g_strdup_printf("tcp:%s:%s", a->host, a->port);
}

static IOChannel *socket_open_outgoing(Migration *m, const MigAddr *a, off_t *start,
                                       const int *stop, GError **errp)
{
    if (is_unix(a)) {
        return io_channel_socket_connect_unix_stoppable(a->path, stop, errp);
    }
    return io_channel_socket_connect_tcp_stoppable(a->host, a->port, a->family, stop, errp);
}

/* No channel yet: *listener is what incoming.c accepts on. */
static IOChannel *socket_open_incoming(Migration *m, const MigAddr *a, off_t *start,
                                       IOListener **listener, GError **errp)
{
    *listener = is_unix(a) ? io_listener_open_unix(a->path, errp)
                           : io_listener_open_tcp(a->host, a->port, a->family, a->v6only,
                                                   a->has_to ? a->to : -1, errp);
    return NULL;
}

/* One element per listening socket, the last opened first (as QEMU 7.2 and 10.2 list them). */
static JsonArray *socket_listen_address(const MigAddr *a, const IOListener *l)
{
    JsonArray *arr = json_array_new();

    for (unsigned i = io_listener_count(l); i-- > 0;) {
        JsonObject *o = json_object_new();
        if (is_unix(a)) {
            json_object_set_string_member(o, "type", "unix");
            json_object_set_string_member(o, "path", a->path);
        } else {
            char host[IO_SOCKET_HOST_MAX] = "";
            int port = 0;
            g_autofree char *p = NULL;

            int family = io_socket_bound_inet(io_listener_fd(l, i), host, &port);
            p = g_strdup_printf("%d", port);
            json_object_set_string_member(o, "type", "inet");
            json_object_set_string_member(o, "host", host);
            json_object_set_string_member(o, "port", p);
            /* as QEMU's socket_sockaddr_to_address_inet */
            if (family == AF_INET || family == AF_INET6) {
                json_object_set_boolean_member(o, family == AF_INET ? "ipv4" : "ipv6", true);
            }
        }
        json_array_add_object_element(arr, o);
    }
    return arr;
}

const MigTransport mig_transport_socket = {
    .kind = TRANSPORT_SOCKET,
    .uri_schemes = (const char *const[]){ "unix:", "tcp:", "vsock:", NULL },
    .channel_name = "socket",
    .parse_uri = socket_parse_uri,
    .parse_channel = socket_parse_channel,
    .describe = socket_describe,
    .open_outgoing = socket_open_outgoing,
    .open_incoming = socket_open_incoming,
    .listen_address = socket_listen_address,
};
