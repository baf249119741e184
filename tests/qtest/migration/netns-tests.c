/*
 * Live migration between hosts, for real (issue 12): the source and the
 * destination mapram-vm each in a network namespace of its own, joined
 * by a veth pair (framework.h, MigNetns), over tcp with multifd 4.  A
 * round trip with and without zstd (the guest's memory checked on
 * arrival, the guest running on), one over IPv6 link-local addresses
 * (the listening address reported with its scope), the link taken down
 * mid-way, and the destination killed mid-way: the migration fails with
 * the error the source's sockets give, and the source runs on with its
 * memory intact; garbage sent from the source's namespace on a new
 * connection and on a multifd channel: the destination fails, naming
 * it, and never resumes.
 * Skipped, saying why, where namespaces cannot be made (not root).
 */
#include "framework.h"
#include "tests.h"

#include <string.h>
#include <unistd.h>

#define NETNS_CHANNELS 4

/* What a test's hooks share. */
typedef struct NetnsTest {
    MigNetns net;
    const char *compression;     /* multifd-compression on both sides */
    char uri[64];                /* where the source connects */
} NetnsTest;

static void set_compression(QTestState *who, const char *method)
{
    migrate_set_parameter_str(who, "multifd-compression", method);
    if (!strcmp(method, "zstd")) {
        migrate_set_parameter_int(who, "multifd-zstd-level", 1);
    }
}

/* The destination listens on its veth address, port 0; t->uri is where to go. */
static void netns_listen(QTestState *from, QTestState *to, NetnsTest *t,
                         bool keep_dest)
{
    set_compression(from, t->compression);
    set_compression(to, t->compression);
    migrate_incoming_qmp(to, "tcp:" MIG_NETNS_DST_ADDR ":0", NULL,
                         keep_dest ? "'exit-on-error': false" : NULL);
    g_snprintf(t->uri, sizeof(t->uri), "tcp:" MIG_NETNS_DST_ADDR ":%d",
               mig_listen_port_on(to, MIG_NETNS_DST_ADDR));
}

static void netns_start_hook(QTestState *from, QTestState *to,
                             MigrateCommon *args)
{
    NetnsTest *t = args->opaque;

    netns_listen(from, to, t, false);
    args->connect_uri = t->uri;
}

/* The pages crossed the link on the multifd channels. */
static void netns_end_hook(QTestState *from, QTestState *to,
                           MigrateCommon *args)
{
    NetnsTest *t = args->opaque;
    g_autoptr(JsonObject) info = migrate_query(from);
    JsonObject *ram = json_object_get_object_member(info, "ram");
    gint64 multifd_bytes = json_object_get_int_member(ram, "multifd-bytes");
    gint64 normal = json_object_get_int_member(ram, "normal");

    g_assert_cmpint(normal, >, 1000);
    if (!strcmp(t->compression, "none")) {
        g_assert_cmpint(multifd_bytes, >=, normal * 4096);
    } else {
        /* the ab guest's pages are one byte repeated: zstd shrinks them */
        g_assert_cmpint(multifd_bytes, >, 0);
        g_assert_cmpint(multifd_bytes, <, normal * 4096 / 8);
    }
}

/* test_precopy_common with the source in ns[0] and the destination in ns[1]. */
static void netns_run(NetnsTest *t, MigrateCommon *args)
{
    if (!mig_netns_setup(&t->net)) {
        return;
    }
    args->opaque = t;
    args->start.netns_source = t->net.ns[0];
    args->start.netns_target = t->net.ns[1];
    test_precopy_common(args);
    mig_netns_teardown(&t->net);
}

static void netns_round_trip(const char *compression)
{
    NetnsTest t = { .compression = compression };
    MigrateCommon args = {
        .caps = { "multifd" },
        .multifd_channels = NETNS_CHANNELS,
        .start_hook = netns_start_hook,
        .end_hook = netns_end_hook,
    };

    netns_run(&t, &args);
}

static void test_netns_tcp_none(void)
{
    netns_round_trip("none");
}

static void test_netns_tcp_zstd(void)
{
    netns_round_trip("zstd");
}

/*
 * Over IPv6 link-local addresses, which name their interface: the
 * destination listens on [fe80::2%its veth end], and query-migrate gives
 * that address with its scope, as QEMU's does (getnameinfo); the source
 * connects to [fe80::2%its own end].
 */
static void netns_listen_link_local(QTestState *from, QTestState *to,
                                    MigrateCommon *args)
{
    NetnsTest *t = args->opaque;
    g_autofree char *host = g_strdup_printf(MIG_NETNS_DST_ADDR6 "%%%s", t->net.dev[1]);
    g_autofree char *listen = g_strdup_printf("tcp:[%s]:0", host);

    migrate_incoming_qmp(to, listen, NULL, NULL);
    g_snprintf(t->uri, sizeof(t->uri), "tcp:[" MIG_NETNS_DST_ADDR6 "%%%s]:%d",
               t->net.dev[0], mig_listen_port_on(to, host));
    args->connect_uri = t->uri;
}

static void test_netns_tcp_link_local(void)
{
    NetnsTest t = { .compression = "none" };
    MigrateCommon args = { .start_hook = netns_listen_link_local };

    netns_run(&t, &args);
}

/* --- a link cut mid-way --------------------------------------------------- */

/* Wait until @bytes went out: the migration is mid-way, pages in flight. */
static void wait_for_transferred(QTestState *from, gint64 bytes)
{
    gint64 deadline = g_get_monotonic_time() +
                      (gint64)qtest_timeout_s() * G_USEC_PER_SEC;

    for (;;) {
        g_autoptr(JsonObject) info = migrate_query(from);
        JsonObject *ram = qtest_json_get_obj(info, "ram");

        g_assert_cmpstr(qtest_json_get_str(info, "status"), ==, "active");
        if (qtest_json_get_int(ram, "transferred", 0) >= bytes) {
            return;
        }
        if (g_get_monotonic_time() > deadline) {
            qtest_fail(from, "fewer than %" G_GINT64_FORMAT " bytes sent "
                       "within %d s", bytes, qtest_timeout_s());
        }
        g_usleep(2 * 1000);
    }
}

/*
 * Both VMs started in their namespaces, the destination listening, the
 * source migrating live and slowly enough (20 MB/s against a guest that
 * dirties 99 MiB a pass) to be caught mid-way, 8 MB into its first pass.
 */
static bool start_slow_migration(NetnsTest *t, QTestState **from,
                                 QTestState **to)
{
    MigrateCommon args = { .caps = { "multifd" },
                           .multifd_channels = NETNS_CHANNELS };

    if (!mig_netns_setup(&t->net)) {
        return false;
    }
    args.start.netns_source = t->net.ns[0];
    args.start.netns_target = t->net.ns[1];
    migrate_start(&args, from, to);
    netns_listen(*from, *to, t, true);
    wait_for_serial("src_serial");
    migrate_set_parameter_int(*from, "max-bandwidth", 20 * 1000 * 1000);
    migrate_set_parameter_int(*from, "downtime-limit", 1);
    migrate_qmp(*from, t->uri, NULL);
    wait_for_migration_status(*from, "active",
                              (const char *const[]){ "failed", NULL });
    wait_for_transferred(*from, 8 * 1000 * 1000);
    return true;
}

/*
 * @desc is what a source gets when one of its connections fails with one
 * of @errtexts (NULL-terminated): the main connection names the address,
 * a multifd one its number (which connection notices first is a race).
 */
static void assert_connection_error(const char *desc, const char *uri,
                                    const char *const *errtexts)
{
    const char *tail;

    if (g_str_has_prefix(desc, "multifd channel ")) {
        g_assert_true(desc[16] >= '0' && desc[16] < '0' + NETNS_CHANNELS);
        tail = desc + 17;
        if (!g_str_has_prefix(tail, ": Unable to write to socket: ")) {
            qtest_fail(NULL, "unexpected source error: '%s'", desc);
        }
        tail += strlen(": Unable to write to socket: ");
    } else {
        g_autofree char *pfx = g_strdup_printf("Unable to write to %s: "
                                               "Unable to write to socket: ",
                                               uri + strlen("tcp:"));
        if (!g_str_has_prefix(desc, pfx)) {
            qtest_fail(NULL, "unexpected source error: '%s'", desc);
        }
        tail = desc + strlen(pfx);
    }
    for (; *errtexts; errtexts++) {
        if (!strcmp(tail, *errtexts)) {
            return;
        }
    }
    qtest_fail(NULL, "unexpected socket error in '%s'", desc);
}

/* @from, after a failed migration, migrates live to a new destination. */
static void migrate_to_fresh_dest(NetnsTest *t, QTestState *from)
{
    MigrateCommon args = { .caps = { "multifd" },
                           .multifd_channels = NETNS_CHANNELS };
    QTestState *from2, *to;

    args.start.netns_source = t->net.ns[1];
    args.start.netns_target = t->net.ns[1];
    migrate_start(&args, &from2, &to);
    qtest_quit(from2);
    netns_listen(from, to, t, false);
    migrate_ensure_converge(from);
    migrate_qmp(from, t->uri, NULL);
    wait_for_migration_complete(from);
    qtest_qmp_eventwait(to, "RESUME");
    wait_for_migration_complete(to);
    migrate_end(from, to, true);
}

/*
 * The source's end of the veth taken down mid-way: nothing it sends is
 * acknowledged any more, and the connection with data in flight fails
 * when the kernel gives up retransmitting (tcp_retries2, 3 in the test's
 * namespaces: ~3 s; 15 and ~15 min by default, where QEMU would wait as
 * long: migrate_cancel ends it at once).  The source runs on, its memory
 * intact; the destination, which hears nothing more, stays 'active' and
 * never resumes.  With the link back up the source migrates again.
 */
static void test_netns_link_down(void)
{
    static const char *const timed_out[] = { "Connection timed out", NULL };
    NetnsTest t = { .compression = "none" };
    QTestState *from, *to;
    gint64 cut;

    if (!start_slow_migration(&t, &from, &to)) {
        return;
    }
    mig_netns_link(&t.net, 0, false);
    cut = g_get_monotonic_time();
    g_autofree char *desc = wait_for_migration_fail(from);
    g_test_message("source error after %.1f s: %s",
                   (g_get_monotonic_time() - cut) / 1e6, desc);
    assert_connection_error(desc, t.uri, timed_out);
    /* bounded by tcp_retries2: 3 s idle, far less than the 120 s wait */
    g_assert_cmpint(g_get_monotonic_time() - cut, <, 60 * G_USEC_PER_SEC);
    assert_source_intact(from);
    assert_dest_not_resumed(to);
    {
        /* nothing tells it the source gave up: it waits, as QEMU's would */
        g_autofree char *st = migrate_query_status(to);
        g_assert_cmpstr(st, ==, "active");
    }
    qtest_quit(to);

    /* the link back: the same source migrates to a fresh destination */
    mig_netns_link(&t.net, 0, true);
    migrate_to_fresh_dest(&t, from);
    mig_netns_teardown(&t.net);
}

/* The destination killed mid-way: its kernel resets the connections. */
static void test_netns_kill_dest(void)
{
    static const char *const reset[] = { "Broken pipe",
                                         "Connection reset by peer", NULL };
    NetnsTest t = { .compression = "none" };
    QTestState *from, *to;

    if (!start_slow_migration(&t, &from, &to)) {
        return;
    }
    qtest_kill(to);
    g_autofree char *desc = wait_for_migration_fail(from);
    g_test_message("source error: %s", desc);
    assert_connection_error(desc, t.uri, reset);
    assert_source_intact(from);
    qtest_quit(from);
    mig_netns_teardown(&t.net);
}

/* --- garbage over the link ------------------------------------------------ */

/*
 * A destination listening in its namespace, and no source: the test
 * connects from the source's namespace itself and sends what it likes.
 */
static bool start_listening_dest(NetnsTest *t, QTestState **from, QTestState **to,
                                 int *port)
{
    MigrateCommon args = { .caps = { "multifd" },
                           .multifd_channels = NETNS_CHANNELS };

    if (!mig_netns_setup(&t->net)) {
        return false;
    }
    args.start.netns_source = t->net.ns[0];
    args.start.netns_target = t->net.ns[1];
    migrate_start(&args, from, to);
    netns_listen(*from, *to, t, true);
    *port = mig_listen_port_on(*to, MIG_NETNS_DST_ADDR);
    return true;
}

static void write_all(int fd, const void *buf, size_t len)
{
    g_assert_cmpint(write(fd, buf, len), ==, (ssize_t)len);
}

/* A connection that starts with neither "QEVM" nor multifd's magic. */
static void test_netns_garbage_magic(void)
{
    static const uint8_t bytes[8] = "GARBAGE!";
    NetnsTest t = { .compression = "none" };
    QTestState *from, *to;
    int port;

    if (!start_listening_dest(&t, &from, &to, &port)) {
        return;
    }
    int fd = mig_netns_connect(&t.net, 0, MIG_NETNS_DST_ADDR, port);
    write_all(fd, bytes, sizeof(bytes));
    g_autofree char *desc = wait_for_migration_fail(to);
    g_assert_cmpstr(desc, ==, "unknown channel magic: 1112686919");
    assert_dest_not_resumed(to);
    close(fd);
    qtest_quit(to);
    qtest_quit(from);
    mig_netns_teardown(&t.net);
}

/* Main and 4 channels as QEMU opens them, then garbage on channel 2. */
static void test_netns_garbage_packet(void)
{
    static const uint8_t qevm[8] = { 'Q', 'E', 'V', 'M', 0, 0, 0, 3 };
    NetnsTest t = { .compression = "none" };
    QTestState *from, *to;
    int fds[NETNS_CHANNELS + 1];
    uint8_t hdr[1344];
    int port;

    if (!start_listening_dest(&t, &from, &to, &port)) {
        return;
    }
    fds[0] = mig_netns_connect(&t.net, 0, MIG_NETNS_DST_ADDR, port);
    write_all(fds[0], qevm, sizeof(qevm));
    for (int i = 0; i < NETNS_CHANNELS; i++) {
        uint8_t init[64] = { 0x11, 0x22, 0x33, 0x44, 0, 0, 0, 1 };

        init[24] = i;
        fds[i + 1] = mig_netns_connect(&t.net, 0, MIG_NETNS_DST_ADDR, port);
        write_all(fds[i + 1], init, sizeof(init));
    }
    memset(hdr, 0xab, sizeof(hdr));
    write_all(fds[3], hdr, sizeof(hdr));
    g_autofree char *desc = wait_for_migration_fail(to);
    g_assert_cmpstr(desc, ==, "multifd channel 2: multifd: received packet magic abababab "
                    "expected 11223344");
    assert_dest_not_resumed(to);
    for (int i = 0; i <= NETNS_CHANNELS; i++) {
        close(fds[i]);
    }
    assert_source_intact(from);
    qtest_quit(to);
    qtest_quit(from);
    mig_netns_teardown(&t.net);
}

void migration_test_add_netns(void)
{
    migration_test_add("/migration/multifd/netns/tcp/plain/none",
                       test_netns_tcp_none, MIG_FULL);
    migration_test_add("/migration/multifd/netns/tcp/plain/zstd",
                       test_netns_tcp_zstd, MIG_FULL);
    migration_test_add("/migration/precopy/netns/tcp/ipv6-link-local",
                       test_netns_tcp_link_local, MIG_FULL);
    migration_test_add("/migration/multifd/netns/tcp/link-down",
                       test_netns_link_down, MIG_FULL);
    migration_test_add("/migration/multifd/netns/tcp/kill/dest",
                       test_netns_kill_dest, MIG_FULL);
    migration_test_add("/migration/multifd/netns/tcp/garbage/magic",
                       test_netns_garbage_magic, MIG_FULL);
    migration_test_add("/migration/multifd/netns/tcp/garbage/packet",
                       test_netns_garbage_packet, MIG_FULL);
}
