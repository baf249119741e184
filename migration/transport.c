/*
 * Migration addresses: the table of transports, URI and "channels"
 * parsing, and opening the main channel through the address's row.  See
 * transport.h; each transport's own code is in its file.
 */
#include <string.h>

#include "transport.h"
#include "util/error.h"

/* RDMA is parsed so that the rule table can refuse it with QEMU's text. */
static bool rdma_parse_uri(const char *scheme, const char *spec, MigAddr *out,
                           GError **errp)
{
    out->kind = TRANSPORT_RDMA;
    return true;
}

static bool rdma_parse_channel(JsonObject *addr, MigAddr *out, GError **errp)
{
    out->kind = TRANSPORT_RDMA;
    return true;
}

static char *rdma_describe(const MigAddr *a)
{
    return g_strdup("rdma");
}

static IOChannel *rdma_open_outgoing(Migration *m, const MigAddr *a, off_t *start,
                                     const int *stop, GError **errp)
{
    error_setg(errp, "RDMA is not supported by mapram");
    return NULL;
}

static IOChannel *rdma_open_incoming(Migration *m, const MigAddr *a, off_t *start,
                                     IOListener **listener, GError **errp)
{
    return rdma_open_outgoing(m, a, start, NULL, errp);
}

static const MigTransport mig_transport_rdma = {
    .kind = TRANSPORT_RDMA,
    .uri_schemes = (const char *const[]){ "rdma:", NULL },
    .channel_name = "rdma",
    .parse_uri = rdma_parse_uri,
    .parse_channel = rdma_parse_channel,
    .describe = rdma_describe,
    .open_outgoing = rdma_open_outgoing,
    .open_incoming = rdma_open_incoming,
};

static const MigTransport *const transports[] = {
    &mig_transport_file,
    &mig_transport_socket,
    &mig_transport_exec,
    &mig_transport_fd,
    &mig_transport_rdma,
};

/* Every TransportKind has a row: a parsed address always finds one. */
static const MigTransport *transport_of(const MigAddr *a)
{
    for (size_t i = 0; i < G_N_ELEMENTS(transports); i++) {
        if (transports[i]->kind == a->kind) {
            return transports[i];
        }
    }
    g_assert_not_reached();
}

void mig_addr_clear(MigAddr *a)
{
    g_free(a->filename);
    g_free(a->sock_type);
    g_free(a->host);
    g_free(a->port);
    g_free(a->path);
    g_free(a->fdname);
    g_free(a->command);
    memset(a, 0, sizeof(*a));
}

bool migration_parse_uri(const char *uri, MigAddr *out, GError **errp)
{
    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < G_N_ELEMENTS(transports); i++) {
        const MigTransport *t = transports[i];

        for (const char *const *s = t->uri_schemes; *s; s++) {
            if (g_str_has_prefix(uri, *s)) {
                return t->parse_uri(*s, uri + strlen(*s), out, errp);
            }
        }
    }
    error_setg(errp, "unknown migration protocol: %s", uri);
    return false;
}

static bool parse_addr_object(JsonObject *addr, MigAddr *out, GError **errp)
{
    const char *name = json_object_get_string_member(addr, "transport");

    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < G_N_ELEMENTS(transports); i++) {
        const MigTransport *t = transports[i];

        if (t->channel_name && !strcmp(name, t->channel_name)) {
            return t->parse_channel(addr, out, errp);
        }
    }
    error_setg(errp, "unknown migration transport: %s", name);
    return false;
}

bool migration_parse_channels(JsonArray *channels, bool incoming, MigAddr *out, GError **errp)
{
    guint n = json_array_get_length(channels);
    JsonObject *main_addr = NULL;
    if (incoming && n != 1) {
        error_setg(errp, "Channel list must have only one entry, for type 'main'");
        return false;
    }
    for (guint i = 0; i < n; i++) {
        JsonObject *ch = json_array_get_object_element(channels, i);
        const char *type = json_object_get_string_member(ch, "channel-type");
        if (incoming && strcmp(type, "main") != 0) {
            error_setg(errp, "Channel list must have only one entry, for type 'main'");
            return false;
        }
        if (!strcmp(type, "main")) {
            if (main_addr) {
                error_setg(errp, "Channel list has more than one main entry");
                return false;
            }
            main_addr = json_object_get_object_member(ch, "addr");
        } else {
            error_setg(errp, "Channel type '%s' is not supported by mapram", type);
            return false;
        }
    }
    if (!main_addr) {
        error_setg(errp, "Channel list has no main entry");
        return false;
    }
    return parse_addr_object(main_addr, out, errp);
}

bool migration_parse_address_args(JsonObject *args, bool incoming, MigAddr *out, GError **errp)
{
    memset(out, 0, sizeof(*out));
    bool has_uri = json_object_has_member(args, "uri");
    bool has_channels = json_object_has_member(args, "channels");
    /* QEMU 10.2 gives one answer for "neither" and "both" */
    if (has_uri == has_channels) {
        error_setg(errp, "need either 'uri' or 'channels' argument");
        return false;
    }
    if (has_uri) {
        return migration_parse_uri(json_object_get_string_member(args, "uri"), out, errp);
    }
    return migration_parse_channels(json_object_get_array_member(args, "channels"),
                                    incoming, out, errp);
}

char *mig_addr_describe(const MigAddr *a)
{
    return transport_of(a)->describe(a);
}

IOChannel *transport_open_outgoing(Migration *m, const MigAddr *a, off_t *start, const int *stop,
                                   GError **errp)
{
    *start = 0;
    return transport_of(a)->open_outgoing(m, a, start, stop, errp);
}

IOChannel *transport_open_incoming(Migration *m, const MigAddr *a, off_t *start,
                                   IOListener **listener, GError **errp)
{
    *start = 0;
    *listener = NULL;
    return transport_of(a)->open_incoming(m, a, start, listener, errp);
}

JsonArray *transport_listen_address(const MigAddr *a, const IOListener *l)
{
    const MigTransport *t = transport_of(a);

    return t->listen_address ? t->listen_address(a, l) : json_array_new();
}
