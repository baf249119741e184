/*
 * Migration addresses: URI and "channels" parsing, opening the main channel.
 */
#include "migration-internal.h"
#include "monitor/qmp.h"
#include "util/cutils.h"
#include "util/error.h"
#include "util/osdep.h"
#include <arpa/inet.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

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

static bool parse_file(const char *spec, MigAddr *out, GError **errp)
{
    const char *opt = strstr(spec, ",offset=");
    out->kind = TRANSPORT_FILE;
    if (opt) {
        const char *val = opt + strlen(",offset=");
        uint64_t off;
        int ret = qemu_strtosz(val, NULL, &off);
        if (ret < 0) {
            error_setg(errp, "file URI has bad offset %s: %s", val, g_strerror(-ret));
            return false;
        }
        out->filename = g_strndup(spec, opt - spec);
        out->offset = off;
    } else {
        out->filename = g_strdup(spec);
    }
    if (!*out->filename) {
        error_setg(errp, "file URI has an empty file name");
        return false;
    }
    return true;
}

/* "host:port" with optional [v6] brackets and trailing ",options" */
static bool parse_inet(const char *spec, MigAddr *out, GError **errp)
{
    g_autofree char *s = g_strdup(spec);
    char *comma = strchr(s, ',');
    if (comma) {
        *comma = 0;
    }
    char *colon;
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
        error_setg(errp, "error parsing address '%s': missing port", spec);
        return false;
    }
    out->kind = TRANSPORT_SOCKET;
    out->sock_type = g_strdup("inet");
    return true;
}

bool migration_parse_uri(const char *uri, MigAddr *out, GError **errp)
{
    memset(out, 0, sizeof(*out));
    if (g_str_has_prefix(uri, "file:")) {
        return parse_file(uri + 5, out, errp);
    }
    if (g_str_has_prefix(uri, "exec:")) {
        out->kind = TRANSPORT_EXEC;
        out->command = g_strdup(uri + 5);
        if (!*out->command) {
            error_setg(errp, "exec: URI has an empty command");
            return false;
        }
        return true;
    }
    if (g_str_has_prefix(uri, "unix:")) {
        out->kind = TRANSPORT_SOCKET;
        out->sock_type = g_strdup("unix");
        out->path = g_strdup(uri + 5);
        if (!*out->path) {
            error_setg(errp, "unix: URI has an empty socket path");
            return false;
        }
        return true;
    }
    if (g_str_has_prefix(uri, "tcp:")) {
        return parse_inet(uri + 4, out, errp);
    }
    if (g_str_has_prefix(uri, "fd:")) {
        out->kind = TRANSPORT_FD;
        out->fdname = g_strdup(uri + 3);
        if (!*out->fdname) {
            error_setg(errp, "fd: URI has an empty file descriptor name");
            return false;
        }
        return true;
    }
    if (g_str_has_prefix(uri, "rdma:")) {
        out->kind = TRANSPORT_RDMA;
        return true;
    }
    error_setg(errp, "unknown migration protocol: %s", uri);
    return false;
}

static bool parse_addr_object(JsonObject *addr, MigAddr *out, GError **errp)
{
    const char *transport = json_object_get_string_member(addr, "transport");
    memset(out, 0, sizeof(*out));
    if (!strcmp(transport, "file")) {
        out->kind = TRANSPORT_FILE;
        out->filename = g_strdup(json_object_get_string_member(addr, "filename"));
        out->offset = json_object_get_int_member(addr, "offset");
        return true;
    }
    if (!strcmp(transport, "exec")) {
        JsonArray *args = json_object_get_array_member(addr, "args");
        GString *cmd = g_string_new(NULL);
        for (guint i = 0; i < json_array_get_length(args); i++) {
            g_autofree char *q = g_shell_quote(json_array_get_string_element(args, i));
            g_string_append_printf(cmd, "%s%s", i ? " " : "", q);
        }
        out->kind = TRANSPORT_EXEC;
        out->command = g_string_free(cmd, FALSE);
        return true;
    }
    if (!strcmp(transport, "socket")) {
        const char *type = json_object_get_string_member(addr, "type");
        out->kind = TRANSPORT_SOCKET;
        out->sock_type = g_strdup(type);
        if (!strcmp(type, "inet")) {
            out->host = g_strdup(json_object_get_string_member(addr, "host"));
            out->port = g_strdup(json_object_get_string_member(addr, "port"));
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
    if (!strcmp(transport, "rdma")) {
        out->kind = TRANSPORT_RDMA;
        return true;
    }
    error_setg(errp, "unknown migration transport: %s", transport);
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
    switch (a->kind) {
    case TRANSPORT_FILE: return g_strdup_printf("file:%s,offset=%llu", a->filename,
                                                (unsigned long long)a->offset);
    case TRANSPORT_EXEC: return g_strdup_printf("exec:%s", a->command);
    case TRANSPORT_FD: return g_strdup_printf("fd:%s", a->fdname);
    case TRANSPORT_SOCKET:
        if (!strcmp(a->sock_type, "unix")) {
            return g_strdup_printf("unix:%s", a->path);
        }
        return g_strdup_printf("tcp:%s:%s", a->host, a->port);
    default: return g_strdup("rdma");
    }
}

/* ---- opening ---- */

/*
 * QEMU lseek()s whatever it opened, so a FIFO or a socket fails there
 * with ESPIPE; the channel refuses to seek those before any syscall, so
 * the same message is made here.
 */
static bool file_seek_to_offset(IOChannel *ioc, uint64_t offset, GError **errp)
{
    if (!io_channel_has_feature(ioc, IO_CHANNEL_FEATURE_SEEKABLE)) {
        error_setg_errno(errp, ESPIPE, "Unable to seek to offset %lld whence %d in file",
                         (long long)offset, SEEK_SET);
        return false;
    }
    return io_channel_seek(ioc, offset, SEEK_SET, errp) >= 0;
}

static IOChannel *open_file_out(const MigAddr *a, off_t *start, GError **errp)
{
    g_autoptr(IOChannel) ioc = io_channel_file_open(a->filename, O_WRONLY | O_CREAT,
                                                    0600, errp);

    if (!ioc) {
        return NULL;
    }
    /* The text is QEMU's, so the channel's own message gives way to it. */
    if (!io_channel_truncate(ioc, a->offset, NULL)) {
        error_setg_errno(errp, errno, "failed to truncate migration file to offset %llx",
                         (unsigned long long)a->offset);
        return NULL;
    }
    if (!file_seek_to_offset(ioc, a->offset, errp)) {
        return NULL;
    }
    io_channel_set_name(ioc, "migration-file-outgoing");
    *start = a->offset;
    return g_steal_pointer(&ioc);
}

static IOChannel *open_file_in(const MigAddr *a, off_t *start, GError **errp)
{
    g_autoptr(IOChannel) ioc = io_channel_file_open(a->filename, O_RDONLY, 0, errp);

    if (!ioc || !file_seek_to_offset(ioc, a->offset, errp)) {
        return NULL;
    }
    io_channel_set_name(ioc, "migration-file-incoming");
    *start = a->offset;
    return g_steal_pointer(&ioc);
}

/*
 * An inherited fd number stays the process's: the channel gets a dup,
 * close-on-exec so that exec: children never see it.
 */
static int fd_dup_number(const char *fdname, GError **errp)
{
    char *end;
    long n = strtol(fdname, &end, 10);
    int fd;

    if (*end || n < 0 || n > INT_MAX || fcntl(n, F_GETFD) < 0) {
        error_setg(errp, "File descriptor named '%s' has not been found", fdname);
        return -1;
    }
    fd = fcntl(n, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) {
        error_setg_errno(errp, errno, "Unable to duplicate file descriptor %ld", n);
    }
    return fd;
}

static IOChannel *open_fd(const MigAddr *a, off_t *start, GError **errp)
{
    int fd = monitor_get_fd(a->fdname, NULL);
    IOChannel *ioc;
    off_t pos;

    if (fd < 0) {
        fd = fd_dup_number(a->fdname, errp);
        if (fd < 0) {
            return NULL;
        }
    }
    ioc = io_channel_new_fd(fd, "migration-fd", errp);
    if (!ioc) {
        close(fd);
        return NULL;
    }
    /* A file is used from the position it was handed at. */
    if (io_channel_has_feature(ioc, IO_CHANNEL_FEATURE_SEEKABLE)) {
        pos = io_channel_seek(ioc, 0, SEEK_CUR, NULL);
        *start = pos < 0 ? 0 : pos;
    }
    return ioc;
}

IOChannel *transport_open_outgoing(const MigAddr *a, off_t *start, GError **errp)
{
    *start = 0;
    switch (a->kind) {
    case TRANSPORT_FILE:
        return open_file_out(a, start, errp);
    case TRANSPORT_EXEC:
        return io_channel_command_new_spawn(a->command, O_WRONLY, errp);
    case TRANSPORT_FD:
        return open_fd(a, start, errp);
    case TRANSPORT_SOCKET:
        if (!strcmp(a->sock_type, "unix")) {
            return io_channel_socket_connect_unix(a->path, errp);
        }
        return io_channel_socket_connect_tcp(a->host, a->port, errp);
    default:
        error_setg(errp, "RDMA is not supported by mapram");
        return NULL;
    }
}

IOChannel *transport_open_incoming(const MigAddr *a, off_t *start, int *listen_fd,
                                   GError **errp)
{
    *start = 0;
    *listen_fd = -1;
    switch (a->kind) {
    case TRANSPORT_FILE:
        return open_file_in(a, start, errp);
    case TRANSPORT_EXEC:
        return io_channel_command_new_spawn(a->command, O_RDONLY, errp);
    case TRANSPORT_FD:
        return open_fd(a, start, errp);
    case TRANSPORT_SOCKET:
        if (!strcmp(a->sock_type, "unix")) {
            *listen_fd = io_socket_listen_unix(a->path, errp);
        } else {
            *listen_fd = io_socket_listen_tcp(a->host, a->port, errp);
        }
        return NULL;
    default:
        error_setg(errp, "RDMA is not supported by mapram");
        return NULL;
    }
}

JsonArray *transport_listen_address(const MigAddr *a, int listen_fd)
{
    JsonArray *arr = json_array_new();
    JsonObject *o = json_object_new();
    if (!strcmp(a->sock_type, "unix")) {
        json_object_set_string_member(o, "type", "unix");
        json_object_set_string_member(o, "path", a->path);
    } else {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        char host[INET6_ADDRSTRLEN] = "";
        int port = 0;
        if (getsockname(listen_fd, (struct sockaddr *)&ss, &len) == 0) {
            if (ss.ss_family == AF_INET) {
                struct sockaddr_in *in = (struct sockaddr_in *)&ss;
                inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
                port = ntohs(in->sin_port);
            } else if (ss.ss_family == AF_INET6) {
                struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
                inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
                port = ntohs(in6->sin6_port);
            }
        }
        g_autofree char *p = g_strdup_printf("%d", port);
        json_object_set_string_member(o, "type", "inet");
        json_object_set_string_member(o, "host", host);
        json_object_set_string_member(o, "port", p);
    }
    json_array_add_object_element(arr, o);
    return arr;
}
