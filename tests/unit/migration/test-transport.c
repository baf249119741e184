/*
 * Migration transports in process: every URI and "channels" form parses
 * to the address it names (and back through mig_addr_describe), every
 * refusal has its exact text, and each transport opens what it should:
 * file (truncated to the offset, header kept), fd (a dup of an inherited
 * number, at its position), unix/tcp listeners, exec, and rdma refused.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "migration/migration-internal.h"

/* --- parsing --- */

typedef struct UriCase {
    const char *name;
    const char *uri;
    const char *described;      /* NULL: refused with error */
    const char *error;
} UriCase;

static const UriCase uri_cases[] = {
    { "file", "file:/tmp/x", "file:/tmp/x,offset=0", NULL },
    { "file/offset-hex", "file:/tmp/x,offset=0x1000", "file:/tmp/x,offset=4096", NULL },
    { "file/offset-suffix", "file:/tmp/x,offset=2M", "file:/tmp/x,offset=2097152", NULL },
    { "file/bad-offset", "file:/tmp/x,offset=0x20M", NULL,
      "file URI has bad offset 0x20M: Invalid argument" },
    { "file/empty", "file:", NULL, "file URI has an empty file name" },
    { "exec", "exec:cat > /dev/null", "exec:cat > /dev/null", NULL },
    { "exec/empty", "exec:", NULL, "exec: URI has an empty command" },
    { "unix", "unix:/run/mig.sock", "unix:/run/mig.sock", NULL },
    { "unix/empty", "unix:", NULL, "invalid Unix socket address" },
    { "tcp", "tcp:127.0.0.1:4444", "tcp:127.0.0.1:4444", NULL },
    { "tcp/ipv6", "tcp:[::1]:4444,ipv6=on", "tcp:::1:4444", NULL },
    { "tcp/ipv4-flag", "tcp::4444,ipv4,to=4446", "tcp::4444", NULL },
    { "tcp/flag-bad", "tcp::4444,ipv6=foo", NULL, "error parsing 'ipv6' flag '=foo'" },
    { "tcp/flags-both-off", "tcp::4444,ipv4=off,ipv6=off", NULL,
      "Cannot disable IPv4 and IPv6 at same time" },
    { "tcp/flag-yes", "tcp::4444,ipv4=yes,to=4446", NULL,
      "error parsing 'ipv4' flag '=yes,to=4446'" },
    { "tcp/to-bad", "tcp::4444,to=abc", NULL, "error parsing to= argument" },
    { "tcp/to-trailing", "tcp::4444,to=4446x,ipv4", NULL, "error parsing to= argument" },
    { "tcp/to-first", "tcp::4444,ipv4=yes,to=", NULL, "error parsing to= argument" },
    { "tcp/ipv6-bad", "tcp:[::1]4444", NULL, "error parsing IPv6 address '[::1]4444'" },
    { "tcp/no-port", "tcp:localhost", NULL, "error parsing address 'localhost'" },
    { "tcp/empty-port", "tcp:localhost:", NULL,
      "error parsing address 'localhost:'" },
    { "fd", "fd:mig", "fd:mig", NULL },
    { "fd/empty", "fd:", NULL, "invalid file descriptor address" },
    { "rdma", "rdma:host:1", "rdma", NULL },
    { "vsock", "vsock:2:4444", NULL, "socket address type 'vsock' is not supported" },
    { "unknown", "foo:bar", NULL, "unknown migration protocol: foo:bar" },
};

static void test_parse_uri(gconstpointer opaque)
{
    const UriCase *c = opaque;
    g_autoptr(GError) err = NULL;
    g_autofree char *described = NULL;
    MigAddr a;
    bool ok = migration_parse_uri(c->uri, &a, &err);

    if (c->described) {
        g_assert_no_error(err);
        g_assert_true(ok);
        described = mig_addr_describe(&a);
        g_assert_cmpstr(described, ==, c->described);
    } else {
        g_assert_false(ok);
        g_assert_cmpstr(err->message, ==, c->error);
    }
    mig_addr_clear(&a);
}

static JsonObject *json_object_parse(const char *text)
{
    g_autoptr(JsonParser) p = json_parser_new();
    g_autoptr(GError) err = NULL;

    g_assert_true(json_parser_load_from_data(p, text, -1, &err));
    g_assert_no_error(err);
    return json_object_ref(json_node_get_object(json_parser_get_root(p)));
}

typedef struct ChannelCase {
    const char *name;
    const char *addr;           /* JSON of the main channel's "addr" */
    TransportKind kind;
    const char *described;      /* NULL: refused with error */
    const char *error;
} ChannelCase;

static const ChannelCase channel_cases[] = {
    { "file", "{'transport': 'file', 'filename': '/tmp/x', 'offset': 512}",
      TRANSPORT_FILE, "file:/tmp/x,offset=512", NULL },
    { "exec", "{'transport': 'exec', 'args': ['sh', '-c', 'cat > \"a b\"']}",
      TRANSPORT_EXEC, "exec:'sh' '-c' 'cat > \"a b\"'", NULL },
    { "inet", "{'transport': 'socket', 'type': 'inet', 'host': 'h', 'port': '1'}",
      TRANSPORT_SOCKET, "tcp:h:1", NULL },
    { "unix", "{'transport': 'socket', 'type': 'unix', 'path': '/s'}",
      TRANSPORT_SOCKET, "unix:/s", NULL },
    { "socket-fd", "{'transport': 'socket', 'type': 'fd', 'str': 'mig'}",
      TRANSPORT_FD, "fd:mig", NULL },
    { "vsock", "{'transport': 'socket', 'type': 'vsock', 'cid': '3', 'port': '1'}",
      TRANSPORT_SOCKET, NULL, "socket address type 'vsock' is not supported" },
    { "rdma", "{'transport': 'rdma', 'host': 'h', 'port': 1}",
      TRANSPORT_RDMA, "rdma", NULL },
    { "unknown", "{'transport': 'carrier-pigeon'}",
      TRANSPORT_FILE, NULL, "unknown migration transport: carrier-pigeon" },
};

static void test_parse_channel(gconstpointer opaque)
{
    const ChannelCase *c = opaque;
    g_autofree char *text = g_strdup_printf(
        "{'channels': [{'channel-type': 'main', 'addr': %s}]}", c->addr);
    g_autoptr(JsonObject) args = json_object_parse(text);
    g_autoptr(GError) err = NULL;
    g_autofree char *described = NULL;
    MigAddr a;
    bool ok = migration_parse_address_args(args, true, &a, &err);

    if (c->described) {
        g_assert_no_error(err);
        g_assert_true(ok);
        g_assert_cmpint(a.kind, ==, c->kind);
        described = mig_addr_describe(&a);
        g_assert_cmpstr(described, ==, c->described);
    } else {
        g_assert_false(ok);
        g_assert_cmpstr(err->message, ==, c->error);
    }
    mig_addr_clear(&a);
}

static void check_args_refused(const char *text, bool incoming, const char *want)
{
    g_autoptr(JsonObject) args = json_object_parse(text);
    g_autoptr(GError) err = NULL;
    MigAddr a;

    g_assert_false(migration_parse_address_args(args, incoming, &a, &err));
    g_assert_cmpstr(err->message, ==, want);
    mig_addr_clear(&a);
}

static void test_parse_args_refused(void)
{
    const char *file = "{'transport': 'file', 'filename': '/x', 'offset': 0}";
    g_autofree char *both = g_strdup_printf(
        "{'uri': 'file:/x', 'channels': [{'channel-type': 'main', 'addr': %s}]}", file);
    g_autofree char *two = g_strdup_printf(
        "{'channels': [{'channel-type': 'main', 'addr': %s},"
        " {'channel-type': 'main', 'addr': %s}]}", file, file);
    g_autofree char *multifd = g_strdup_printf(
        "{'channels': [{'channel-type': 'multifd', 'addr': %s}]}", file);

    check_args_refused("{}", false, "need either 'uri' or 'channels' argument");
    check_args_refused(both, false, "need either 'uri' or 'channels' argument");
    check_args_refused(two, true, "Channel list must have only one entry, for type 'main'");
    check_args_refused(two, false, "Channel list has more than one main entry");
    check_args_refused(multifd, true,
                       "Channel list must have only one entry, for type 'main'");
    check_args_refused(multifd, false, "Channel type 'multifd' is not supported by mapram");
    check_args_refused("{'channels': []}", false, "Channel list has no main entry");
    check_args_refused("{'channels': [{'channel-type': 'main', "
                       "'addr': {'transport': 'exec', 'args': []}}]}", false,
                       "exec: channel has an empty argument list");
}

/* --- opening --- */

static char *tmp_dir(void)
{
    g_autoptr(GError) err = NULL;
    char *dir = g_dir_make_tmp("test-transport-XXXXXX", &err);

    g_assert_no_error(err);
    return dir;
}

static void parse(const char *uri, MigAddr *a)
{
    g_autoptr(GError) err = NULL;

    g_assert_true(migration_parse_uri(uri, a, &err));
    g_assert_no_error(err);
}

/* The bytes before the offset are kept; the stream starts there. */
static void test_file_outgoing(void)
{
    g_autofree char *dir = tmp_dir();
    g_autofree char *path = g_build_filename(dir, "img", NULL);
    g_autofree char *uri = g_strdup_printf("file:%s,offset=0x1000", path);
    g_autofree char *header = g_strnfill(0x3000, 'h');
    g_autofree char *contents = NULL;
    g_autoptr(GError) err = NULL;
    g_autoptr(IOChannel) ioc = NULL;
    MigAddr a;
    off_t start = -1;
    gsize len;

    g_assert_true(g_file_set_contents(path, header, 0x3000, &err));
    parse(uri, &a);
    ioc = transport_open_outgoing(NULL, &a, &start, NULL, &err);
    g_assert_no_error(err);
    g_assert_cmpint(start, ==, 0x1000);
    g_assert_cmpstr(ioc->name, ==, "migration-file-outgoing");
    g_assert_cmpint(io_channel_size(ioc, &err), ==, 0x1000);
    g_assert_true(io_channel_write_all(ioc, "QEVM", 4, &err));
    g_assert_true(io_channel_close(ioc, &err));
    g_assert_no_error(err);
    g_assert_true(g_file_get_contents(path, &contents, &len, &err));
    g_assert_cmpuint(len, ==, 0x1004);
    g_assert_true(memcmp(contents, header, 0x1000) == 0);
    g_assert_true(memcmp(contents + 0x1000, "QEVM", 4) == 0);
    mig_addr_clear(&a);
    unlink(path);
    rmdir(dir);
}

/* A device cannot be truncated: QEMU's text, with the errno. */
static void test_file_outgoing_no_truncate(void)
{
    g_autoptr(GError) err = NULL;
    MigAddr a;
    off_t start = -1;

    parse("file:/dev/null,offset=0x1000", &a);
    g_assert_null(transport_open_outgoing(NULL, &a, &start, NULL, &err));
    g_assert_cmpstr(err->message, ==,
                    "failed to truncate migration file to offset 1000: Invalid argument");
    mig_addr_clear(&a);
}

static void test_file_incoming(void)
{
    g_autofree char *dir = tmp_dir();
    g_autofree char *path = g_build_filename(dir, "img", NULL);
    g_autofree char *uri = g_strdup_printf("file:%s,offset=6", path);
    g_autoptr(GError) err = NULL;
    g_autoptr(IOChannel) ioc = NULL;
    MigAddr a;
    off_t start = -1;
    g_autoptr(IOListener) listener = NULL;
    char buf[4];

    g_assert_true(g_file_set_contents(path, "headerQEVM", 10, &err));
    parse(uri, &a);
    ioc = transport_open_incoming(NULL, &a, &start, &listener, &err);
    g_assert_no_error(err);
    g_assert_cmpint(start, ==, 6);
    g_assert_null(listener);
    g_assert_cmpstr(ioc->name, ==, "migration-file-incoming");
    g_assert_true(io_channel_read_all(ioc, buf, 4, &err));
    g_assert_true(memcmp(buf, "QEVM", 4) == 0);
    mig_addr_clear(&a);
    unlink(path);
    rmdir(dir);
}

/*
 * As QEMU: a FIFO streams at offset 0 (nothing is seeked to), and an
 * offset in one is refused where QEMU's lseek() refuses it, with its text.
 */
static void test_file_incoming_fifo(void)
{
    g_autofree char *dir = tmp_dir();
    g_autofree char *path = g_build_filename(dir, "fifo", NULL);
    g_autofree char *uri = g_strdup_printf("file:%s", path);
    g_autofree char *at = g_strdup_printf("file:%s,offset=4096", path);
    g_autoptr(GError) err = NULL;
    g_autoptr(IOChannel) ioc = NULL;
    MigAddr a;
    off_t start = -1;
    g_autoptr(IOListener) listener = NULL;
    int writer;
    char buf[4];

    g_assert_cmpint(mkfifo(path, 0600), ==, 0);
    writer = open(path, O_RDWR);        /* so that opening for reading won't block */
    g_assert_cmpint(writer, >=, 0);
    g_assert_cmpint(write(writer, "QEVM", 4), ==, 4);
    parse(uri, &a);
    ioc = transport_open_incoming(NULL, &a, &start, &listener, &err);
    g_assert_no_error(err);
    g_assert_cmpint(start, ==, 0);
    g_assert_true(io_channel_read_all(ioc, buf, 4, &err));
    g_assert_true(memcmp(buf, "QEVM", 4) == 0);
    mig_addr_clear(&a);

    parse(at, &a);
    g_assert_null(transport_open_incoming(NULL, &a, &start, &listener, &err));
    g_assert_cmpstr(err->message, ==,
                    "Unable to seek to offset 4096 whence 0 in file: Illegal seek");
    mig_addr_clear(&a);
    close(writer);
    unlink(path);
    rmdir(dir);
}

/* An inherited fd number: the channel works on a dup, from its position. */
static void test_fd_number(void)
{
    g_autofree char *dir = tmp_dir();
    g_autofree char *path = g_build_filename(dir, "img", NULL);
    g_autofree char *uri = NULL;
    g_autoptr(GError) err = NULL;
    g_autoptr(IOChannel) ioc = NULL;
    MigAddr a;
    off_t start = -1;
    int fd = open(path, O_RDWR | O_CREAT, 0600);

    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(write(fd, "header", 6), ==, 6);
    uri = g_strdup_printf("fd:%d", fd);
    parse(uri, &a);
    ioc = transport_open_outgoing(NULL, &a, &start, NULL, &err);
    g_assert_no_error(err);
    g_assert_cmpint(start, ==, 6);
    g_assert_cmpstr(ioc->ops->kind, ==, "file");
    g_assert_cmpint(io_channel_get_fd(ioc), !=, fd);
    g_assert_true(fcntl(io_channel_get_fd(ioc), F_GETFD) & FD_CLOEXEC);
    g_assert_true(io_channel_close(ioc, &err));
    /* Ours is still open. */
    g_assert_cmpint(fcntl(fd, F_GETFD), >=, 0);
    close(fd);
    mig_addr_clear(&a);
    unlink(path);
    rmdir(dir);
}

static void test_fd_socket(void)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(IOChannel) ioc = NULL;
    g_autofree char *uri = NULL;
    MigAddr a;
    off_t start = -1;
    g_autoptr(IOListener) listener = NULL;
    int sv[2];

    g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), ==, 0);
    uri = g_strdup_printf("fd:%d", sv[0]);
    parse(uri, &a);
    ioc = transport_open_incoming(NULL, &a, &start, &listener, &err);
    g_assert_no_error(err);
    g_assert_cmpint(start, ==, 0);
    g_assert_cmpstr(ioc->ops->kind, ==, "socket");
    close(sv[0]);
    close(sv[1]);
    mig_addr_clear(&a);
}

static void test_fd_not_found(void)
{
    g_autoptr(GError) err = NULL;
    int fd = open("/dev/null", O_RDONLY);
    g_autofree char *closed = NULL;
    g_autofree char *want = NULL;
    MigAddr a;
    off_t start;

    /* no host to hold named fds: as QEMU without a monitor, numbers only */
    parse("fd:nosuch", &a);
    g_assert_null(transport_open_outgoing(NULL, &a, &start, NULL, &err));
    g_assert_cmpstr(err->message, ==, "Invalid file descriptor number 'nosuch'");
    g_clear_error(&err);
    mig_addr_clear(&a);

    close(fd);
    closed = g_strdup_printf("fd:%d", fd);
    parse(closed, &a);
    g_assert_null(transport_open_outgoing(NULL, &a, &start, NULL, &err));
    want = g_strdup_printf("File descriptor named '%d' has not been found", fd);
    g_assert_cmpstr(err->message, ==, want);
    mig_addr_clear(&a);
}

static void test_unix_listen(void)
{
    g_autofree char *dir = tmp_dir();
    g_autofree char *path = g_build_filename(dir, "sock", NULL);
    g_autofree char *uri = g_strdup_printf("unix:%s", path);
    g_autoptr(GError) err = NULL;
    g_autoptr(JsonArray) where = NULL;
    g_autoptr(IOChannel) client = NULL;
    JsonObject *o;
    MigAddr a;
    off_t start = -1;
    g_autoptr(IOListener) listener = NULL;

    parse(uri, &a);
    g_assert_null(transport_open_incoming(NULL, &a, &start, &listener, &err));
    g_assert_no_error(err);
    g_assert_nonnull(listener);
    where = transport_listen_address(&a, listener);
    g_assert_cmpuint(json_array_get_length(where), ==, 1);
    o = json_array_get_object_element(where, 0);
    g_assert_cmpstr(json_object_get_string_member(o, "type"), ==, "unix");
    g_assert_cmpstr(json_object_get_string_member(o, "path"), ==, path);
    client = transport_open_outgoing(NULL, &a, &start, NULL, &err);
    g_assert_no_error(err);
    g_assert_cmpstr(client->ops->kind, ==, "socket");
    mig_addr_clear(&a);
    unlink(path);
    rmdir(dir);
}

/* Port 0 listens on a free port, and query-migrate reports the real one. */
static void test_tcp_listen(void)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(JsonArray) where = NULL;
    g_autoptr(IOChannel) client = NULL;
    g_autofree char *uri = NULL;
    JsonObject *o;
    MigAddr a, b;
    off_t start;
    g_autoptr(IOListener) listener = NULL;

    parse("tcp:127.0.0.1:0", &a);
    g_assert_null(transport_open_incoming(NULL, &a, &start, &listener, &err));
    g_assert_no_error(err);
    where = transport_listen_address(&a, listener);
    o = json_array_get_object_element(where, 0);
    g_assert_cmpstr(json_object_get_string_member(o, "type"), ==, "inet");
    g_assert_cmpstr(json_object_get_string_member(o, "host"), ==, "127.0.0.1");
    g_assert_true(json_object_get_boolean_member(o, "ipv4"));        /* as QEMU */
    g_assert_false(json_object_has_member(o, "ipv6"));
    g_assert_cmpint(atoi(json_object_get_string_member(o, "port")), ==,
                    io_socket_get_port(io_listener_fd(listener, 0)));
    uri = g_strdup_printf("tcp:127.0.0.1:%s", json_object_get_string_member(o, "port"));
    parse(uri, &b);
    client = transport_open_outgoing(NULL, &b, &start, NULL, &err);
    g_assert_no_error(err);

    /* QEMU's texts (inet_listen_saddr): a port in use, an address the host lacks */
    g_autofree char *taken = g_strdup_printf("tcp:127.0.0.1:%s",
                                             json_object_get_string_member(o, "port"));
    const struct {
        const char *uri, *want;
    } bad[] = {
        { taken, "Failed to find an available port: Address already in use" },
        { "tcp:192.0.2.1:4444", "Failed to bind socket: Cannot assign requested address" },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        MigAddr c;
        IOListener *l = NULL;

        parse(bad[i].uri, &c);
        g_assert_null(transport_open_incoming(NULL, &c, &start, &l, &err));
        g_assert_nonnull(err);
        g_assert_cmpstr(err->message, ==, bad[i].want);
        g_assert_null(l);
        g_clear_error(&err);
        mig_addr_clear(&c);
    }
    mig_addr_clear(&a);
    mig_addr_clear(&b);
}

/* Element i of a socket-address list is host, of family ("ipv4"/"ipv6"); its port. */
static int listen_entry(JsonArray *where, guint i, const char *host, const char *family)
{
    JsonObject *o = json_array_get_object_element(where, i);

    g_assert_cmpstr(json_object_get_string_member(o, "type"), ==, "inet");
    g_assert_cmpstr(json_object_get_string_member(o, "host"), ==, host);
    g_assert_true(json_object_get_boolean_member(o, family));
    g_assert_cmpuint(json_object_get_size(o), ==, 4);
    return atoi(json_object_get_string_member(o, "port"));
}

/* A source connecting to host:port is accepted on l, and its bytes arrive. */
static void connect_accept(const char *host, int port, IOListener *l)
{
    g_autofree char *uri = g_strdup_printf(strchr(host, ':') ? "tcp:[%s]:%d" : "tcp:%s:%d",
                                           host, port);
    g_autoptr(GError) err = NULL;
    g_autoptr(IOChannel) client = NULL, server = NULL;
    MigAddr a;
    off_t start;
    char b = 0;

    parse(uri, &a);
    client = transport_open_outgoing(NULL, &a, &start, NULL, &err);
    g_assert_no_error(err);
    server = io_listener_accept(l, &err);
    g_assert_no_error(err);
    g_assert_true(io_channel_write_all(client, "Q", 1, &err));
    g_assert_true(io_channel_read_all(server, &b, 1, &err));
    g_assert_cmpint(b, ==, 'Q');
    mig_addr_clear(&a);
}

/* The listener of an incoming uri, or NULL with *errp; *where: its socket-address. */
static IOListener *open_listener(const char *uri, JsonArray **where, GError **errp)
{
    IOListener *l = NULL;
    MigAddr a;
    off_t start;

    parse(uri, &a);
    g_assert_null(transport_open_incoming(NULL, &a, &start, &l, errp));
    if (l && where) {
        *where = transport_listen_address(&a, l);
    }
    mig_addr_clear(&a);
    return l;
}

static IOListener *listen_uri(const char *uri, JsonArray **where)
{
    g_autoptr(GError) err = NULL;
    IOListener *l = open_listener(uri, where, &err);

    g_assert_no_error(err);
    g_assert_nonnull(l);
    return l;
}

/* A socket of family listening on port (any address), v6only for IPv6. */
static int hold_port(int family, int port)
{
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = htons(port) };
    struct sockaddr_in6 in6 = { .sin6_family = AF_INET6, .sin6_port = htons(port) };

    g_assert_cmpint(fd, >=, 0);
    /* the connections above left the port in TIME_WAIT */
    g_assert_cmpint(setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &(int){ 1 }, sizeof(int)), ==, 0);
    if (family == AF_INET6) {
        g_assert_cmpint(setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &(int){ 1 }, sizeof(int)),
                        ==, 0);
    }
    g_assert_cmpint(family == AF_INET ? bind(fd, (struct sockaddr *)&in, sizeof(in))
                                      : bind(fd, (struct sockaddr *)&in6, sizeof(in6)), ==, 0);
    g_assert_cmpint(listen(fd, 1), ==, 0);
    return fd;
}

/*
 * QEMU's ",to=": each address takes the first free port from port to
 * "to" (compared with QEMU 7.2: the same ports and the same errors).
 */
static void test_tcp_listen_range(void)
{
    int p = 0, held[6];

    /* three free ports in a row, on both families */
    for (int tries = 0; tries < 50 && !p; tries++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in in = { .sin_family = AF_INET };
        socklen_t len = sizeof(in);

        g_assert_cmpint(bind(fd, (struct sockaddr *)&in, sizeof(in)), ==, 0);
        g_assert_cmpint(getsockname(fd, (struct sockaddr *)&in, &len), ==, 0);
        close(fd);
        p = ntohs(in.sin_port);
        for (int i = 0; i < 3 && p; i++) {
            for (int f = 0; f < 2 && p; f++) {
                int h = socket(f ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
                struct sockaddr_in a4 = { .sin_family = AF_INET, .sin_port = htons(p + i) };
                struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_port = htons(p + i) };
                if (f) {
                    setsockopt(h, IPPROTO_IPV6, IPV6_V6ONLY, &(int){ 1 }, sizeof(int));
                }
                if ((f ? bind(h, (struct sockaddr *)&a6, sizeof(a6))
                       : bind(h, (struct sockaddr *)&a4, sizeof(a4))) < 0) {
                    p = 0;
                }
                close(h);
            }
        }
    }
    g_assert_cmpint(p, >, 0);
    held[0] = hold_port(AF_INET, p);
    held[1] = hold_port(AF_INET6, p);

    g_autoptr(JsonArray) where = NULL;
    g_autofree char *uri = g_strdup_printf("tcp::%d,to=%d", p, p + 2);
    IOListener *l = listen_uri(uri, &where);
    g_assert_cmpuint(json_array_get_length(where), ==, 2);
    g_assert_cmpint(listen_entry(where, 0, "::", "ipv6"), ==, p + 1);
    g_assert_cmpint(listen_entry(where, 1, "0.0.0.0", "ipv4"), ==, p + 1);
    connect_accept("127.0.0.1", p + 1, l);
    io_listener_free(l);

    /* every port of the range held; a range that ends below its start */
    held[2] = hold_port(AF_INET, p + 1);
    held[3] = hold_port(AF_INET6, p + 1);
    held[4] = hold_port(AF_INET, p + 2);
    held[5] = hold_port(AF_INET6, p + 2);
    static const struct {
        int to;
        const char *error;
    } bad[] = {
        { 2, "Failed to find an available port: Address already in use" },
        { -1, "Failed to create a socket: No such file or directory" },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_autoptr(GError) err = NULL;
        g_autofree char *u = g_strdup_printf("tcp::%d,to=%d", p, p + bad[i].to);

        g_assert_null(open_listener(u, NULL, &err));
        g_assert_cmpstr(err->message, ==, bad[i].error);
    }
    for (int i = 0; i < 6; i++) {
        close(held[i]);
    }
}

static gpointer accept_thread(gpointer opaque)
{
    GError *err = NULL;

    g_assert_null(io_listener_accept(opaque, &err));
    return err;
}

/*
 * As QEMU's net listener: tcp::PORT listens on 0.0.0.0 and on ::, so that
 * a source reaches it over IPv4 and IPv6.  socket-address lists :: first.
 */
static void test_tcp_listen_any(void)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(JsonArray) where = NULL, where2 = NULL, where3 = NULL;
    g_autoptr(IOListener) l = NULL, l2 = NULL, l3 = NULL;
    g_autofree char *fixed = NULL;
    int v6, v4, probe = socket(AF_INET6, SOCK_STREAM, 0);
    struct sockaddr_in6 lo6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };

    if (probe < 0 || bind(probe, (struct sockaddr *)&lo6, sizeof(lo6)) < 0) {
        g_test_skip("no IPv6 loopback here");
        if (probe >= 0) {
            close(probe);
        }
        return;
    }
    close(probe);

    /* port 0: each socket gets a port of its own; the IPv6 one takes IPv4 too */
    l = listen_uri("tcp::0", &where);
    g_assert_cmpuint(json_array_get_length(where), ==, 2);
    v6 = listen_entry(where, 0, "::", "ipv6");
    v4 = listen_entry(where, 1, "0.0.0.0", "ipv4");
    connect_accept("::1", v6, l);
    connect_accept("127.0.0.1", v4, l);
    connect_accept("127.0.0.1", v6, l);

    /* a fixed port: both on it, the IPv6 socket for IPv6 alone */
    fixed = g_strdup_printf("tcp::%d", v4);
    g_clear_pointer(&l, io_listener_free);
    l2 = listen_uri(fixed, &where2);
    g_assert_cmpuint(json_array_get_length(where2), ==, 2);
    g_assert_cmpint(listen_entry(where2, 0, "::", "ipv6"), ==, v4);
    g_assert_cmpint(listen_entry(where2, 1, "0.0.0.0", "ipv4"), ==, v4);
    connect_accept("::1", v4, l2);
    connect_accept("127.0.0.1", v4, l2);

    /* a shut down listener fails its blocked accept, on whichever socket */
    GThread *t = g_thread_new("accept", accept_thread, l2);
    g_usleep(100 * 1000);
    io_listener_shutdown(l2);
    err = g_thread_join(t);
    g_assert_cmpstr(err->message, ==, "Unable to accept connection: Invalid argument");
    g_clear_error(&err);
    g_clear_pointer(&l2, io_listener_free);

    /* 0.0.0.0:PORT held elsewhere: :: alone listens, as QEMU's does */
    int hold4 = hold_port(AF_INET, v4);
    l3 = listen_uri(fixed, &where3);
    g_assert_cmpuint(json_array_get_length(where3), ==, 1);
    g_assert_cmpint(listen_entry(where3, 0, "::", "ipv6"), ==, v4);
    connect_accept("::1", v4, l3);
    g_clear_pointer(&l3, io_listener_free);

    /*
     * QEMU's ipv4 / ipv6 flags keep the other family out (since listening
     * on every address, they had opened a port on the family left out)
     */
    g_autoptr(JsonArray) w4 = NULL, w6 = NULL;
    g_autofree char *only4 = g_strdup_printf("tcp::%d,ipv4", v4);
    g_autofree char *only6 = g_strdup_printf("tcp::%d,ipv4=off", v4);
    close(hold4);
    IOListener *l4 = listen_uri(only4, &w4);
    g_assert_cmpuint(json_array_get_length(w4), ==, 1);
    g_assert_cmpint(listen_entry(w4, 0, "0.0.0.0", "ipv4"), ==, v4);
    io_listener_free(l4);
    IOListener *l6 = listen_uri(only6, &w6);
    g_assert_cmpuint(json_array_get_length(w6), ==, 1);
    g_assert_cmpint(listen_entry(w6, 0, "::", "ipv6"), ==, v4);
    int v6only = 0;
    socklen_t optlen = sizeof(v6only);
    g_assert_cmpint(getsockopt(io_listener_fd(l6, 0), IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &optlen),
                    ==, 0);
    g_assert_cmpint(v6only, ==, 1);                 /* and no IPv4 through it */
    io_listener_free(l6);
    /* both on, no host: one dual-stack :: (as QEMU 7.2), which IPv4 reaches */
    g_autoptr(JsonArray) w46 = NULL;
    g_autofree char *both = g_strdup_printf("tcp::%d,ipv4,ipv6=on", v4);
    IOListener *l46 = listen_uri(both, &w46);
    g_assert_cmpuint(json_array_get_length(w46), ==, 1);
    g_assert_cmpint(listen_entry(w46, 0, "::", "ipv6"), ==, v4);
    connect_accept("127.0.0.1", v4, l46);
    connect_accept("::1", v4, l46);
    io_listener_free(l46);
    hold4 = hold_port(AF_INET, v4);

    /* both held: the first address's error */
    int hold6 = hold_port(AF_INET6, v4);
    MigAddr a;
    off_t start;
    IOListener *none = NULL;
    parse(fixed, &a);
    g_assert_null(transport_open_incoming(NULL, &a, &start, &none, &err));
    g_assert_null(none);
    g_assert_cmpstr(err->message, ==, "Failed to find an available port: Address already in use");
    mig_addr_clear(&a);
    close(hold4);
    close(hold6);
}

static void test_exec(void)
{
    g_autofree char *dir = tmp_dir();
    g_autofree char *path = g_build_filename(dir, "out", NULL);
    g_autofree char *q = g_shell_quote(path);
    g_autofree char *out_uri = g_strdup_printf("exec:cat > %s", q);
    g_autofree char *in_uri = g_strdup_printf("exec:cat %s", q);
    g_autoptr(GError) err = NULL;
    IOChannel *ioc;
    MigAddr a;
    off_t start = -1;
    g_autoptr(IOListener) listener = NULL;
    char buf[4];

    parse(out_uri, &a);
    ioc = transport_open_outgoing(NULL, &a, &start, NULL, &err);
    g_assert_no_error(err);
    g_assert_cmpint(start, ==, 0);
    g_assert_true(io_channel_write_all(ioc, "QEVM", 4, &err));
    g_assert_true(io_channel_close(ioc, &err));
    io_channel_unref(ioc);
    mig_addr_clear(&a);

    parse(in_uri, &a);
    ioc = transport_open_incoming(NULL, &a, &start, &listener, &err);
    g_assert_no_error(err);
    g_assert_null(listener);
    g_assert_true(io_channel_read_all(ioc, buf, 4, &err));
    g_assert_true(memcmp(buf, "QEVM", 4) == 0);
    g_assert_true(io_channel_close(ioc, &err));
    g_assert_no_error(err);
    io_channel_unref(ioc);
    mig_addr_clear(&a);
    unlink(path);
    rmdir(dir);
}

static void test_rdma_refused(void)
{
    g_autoptr(GError) err = NULL;
    MigAddr a;
    off_t start;
    g_autoptr(IOListener) listener = NULL;

    parse("rdma:host:1", &a);
    g_assert_cmpint(a.kind, ==, TRANSPORT_RDMA);
    g_assert_null(transport_open_outgoing(NULL, &a, &start, NULL, &err));
    g_assert_cmpstr(err->message, ==, "RDMA is not supported by mapram");
    g_clear_error(&err);
    g_assert_null(transport_open_incoming(NULL, &a, &start, &listener, &err));
    g_assert_cmpstr(err->message, ==, "RDMA is not supported by mapram");
    g_assert_null(listener);
    mig_addr_clear(&a);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    for (size_t i = 0; i < G_N_ELEMENTS(uri_cases); i++) {
        g_autofree char *name = g_strdup_printf("/migration/transport/uri/%s",
                                                uri_cases[i].name);

        g_test_add_data_func(name, &uri_cases[i], test_parse_uri);
    }
    for (size_t i = 0; i < G_N_ELEMENTS(channel_cases); i++) {
        g_autofree char *name = g_strdup_printf("/migration/transport/channels/%s",
                                                channel_cases[i].name);

        g_test_add_data_func(name, &channel_cases[i], test_parse_channel);
    }
    g_test_add_func("/migration/transport/args/refused", test_parse_args_refused);
    g_test_add_func("/migration/transport/file/outgoing", test_file_outgoing);
    g_test_add_func("/migration/transport/file/outgoing-no-truncate",
                    test_file_outgoing_no_truncate);
    g_test_add_func("/migration/transport/file/incoming", test_file_incoming);
    g_test_add_func("/migration/transport/file/incoming-fifo", test_file_incoming_fifo);
    g_test_add_func("/migration/transport/fd/number", test_fd_number);
    g_test_add_func("/migration/transport/fd/socket", test_fd_socket);
    g_test_add_func("/migration/transport/fd/not-found", test_fd_not_found);
    g_test_add_func("/migration/transport/unix/listen", test_unix_listen);
    g_test_add_func("/migration/transport/tcp/listen", test_tcp_listen);
    g_test_add_func("/migration/transport/tcp/listen-any", test_tcp_listen_any);
    g_test_add_func("/migration/transport/tcp/listen-range", test_tcp_listen_range);
    g_test_add_func("/migration/transport/exec/round-trip", test_exec);
    g_test_add_func("/migration/transport/rdma/refused", test_rdma_refused);
    return g_test_run();
}
