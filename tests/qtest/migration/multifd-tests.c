/*
 * Multifd over sockets (issue 12): live round trips over tcp: and unix:
 * with 4 channels, with each compression method, through the channels
 * argument, a cancel, garbage on a channel, and a destination killed
 * mid-way.  The destination listens on tcp:127.0.0.1:0 and the source
 * connects to the port its query-migrate's socket-address reports, as
 * QEMU's tests do.
 */
#include "framework.h"
#include "tests.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define MULTIFD_TEST_CHANNELS 4

/* What a test's hooks share. */
typedef struct MultifdTest {
    const char *compression;     /* multifd-compression on both sides */
    bool channels_arg;           /* migrate / migrate-incoming with "channels" */
    bool unix_socket;            /* unix: instead of tcp: */
    bool keep_dest;              /* the destination stays after a failure (exit-on-error off) */
    int nchannels;               /* multifd-channels; 0: MULTIFD_TEST_CHANNELS */
    char uri[256];               /* where the source connects */
    char channels[512];
} MultifdTest;

static void set_compression(QTestState *who, const char *method)
{
    migrate_set_parameter_str(who, "multifd-compression", method);
    if (!strcmp(method, "zlib")) {
        migrate_set_parameter_int(who, "multifd-zlib-level", 2);
    } else if (!strcmp(method, "zstd")) {
        migrate_set_parameter_int(who, "multifd-zstd-level", 2);
    }
}

/* Destination listening (port 0: the kernel picks one); t->uri is where to go. */
static void multifd_listen(QTestState *from, QTestState *to, MultifdTest *t)
{
    const char *extra = t->keep_dest ? "'exit-on-error': false" : NULL;

    set_compression(from, t->compression);
    set_compression(to, t->compression);
    if (t->unix_socket) {
        g_autofree char *sock = mig_path("migsocket");
        g_snprintf(t->uri, sizeof(t->uri), "unix:%s", sock);
        migrate_incoming_qmp(to, t->uri, NULL, extra);
        return;
    }
    if (t->channels_arg) {
        migrate_incoming_qmp(to, NULL, "[{'channel-type': 'main', 'addr': "
                             "{'transport': 'socket', 'type': 'inet', "
                             "'host': '127.0.0.1', 'port': '0'}}]", extra);
    } else {
        migrate_incoming_qmp(to, "tcp:127.0.0.1:0", NULL, extra);
    }
    int port = mig_listen_port(to);
    g_assert_cmpint(port, >, 0);
    if (t->channels_arg) {
        g_snprintf(t->channels, sizeof(t->channels), "[{'channel-type': 'main', 'addr': "
                   "{'transport': 'socket', 'type': 'inet', 'host': '127.0.0.1', "
                   "'port': '%d'}}]", port);
    } else {
        g_snprintf(t->uri, sizeof(t->uri), "tcp:127.0.0.1:%d", port);
    }
}

static void multifd_start_hook(QTestState *from, QTestState *to, MigrateCommon *args)
{
    MultifdTest *t = args->opaque;

    multifd_listen(from, to, t);
    if (t->channels_arg) {
        args->connect_channels = t->channels;
    } else {
        args->connect_uri = t->uri;
    }
}

/* Page data went through the channels, none through the main stream. */
static void multifd_end_hook(QTestState *from, QTestState *to, MigrateCommon *args)
{
    g_autoptr(JsonObject) info = migrate_query(from);
    JsonObject *ram = json_object_get_object_member(info, "ram");
    gint64 multifd_bytes = json_object_get_int_member(ram, "multifd-bytes");
    gint64 transferred = json_object_get_int_member(ram, "transferred");
    gint64 normal = json_object_get_int_member(ram, "normal");

    g_assert_cmpint(normal, >, 1000);
    g_assert_cmpint(multifd_bytes, >, 0);
    g_assert_cmpint(multifd_bytes, <=, transferred);
    if (!strcmp(((MultifdTest *)args->opaque)->compression, "none")) {
        /* every normal page's 4 KiB went on a channel */
        g_assert_cmpint(multifd_bytes, >=, normal * 4096);
    }
}

static void multifd_round_trip(MultifdTest *t)
{
    MigrateCommon args = {
        .caps = { "multifd" },
        .multifd_channels = t->nchannels ? t->nchannels : MULTIFD_TEST_CHANNELS,
        .start_hook = multifd_start_hook,
        .end_hook = multifd_end_hook,
        .opaque = t,
    };

    test_precopy_common(&args);
}

static void test_multifd_tcp_none(void)
{
    MultifdTest t = { .compression = "none" };
    multifd_round_trip(&t);
}

static void test_multifd_tcp_zlib(void)
{
    MultifdTest t = { .compression = "zlib" };
    multifd_round_trip(&t);
}

static void test_multifd_tcp_zstd(void)
{
    MultifdTest t = { .compression = "zstd" };
    multifd_round_trip(&t);
}

static void test_multifd_tcp_channels_none(void)
{
    MultifdTest t = { .compression = "none", .channels_arg = true };
    multifd_round_trip(&t);
}

static void test_multifd_unix_none(void)
{
    MultifdTest t = { .compression = "none", .unix_socket = true, .nchannels = 1 };
    multifd_round_trip(&t);
}

/* The most QEMU allows: 255 connections each way, a thread each. */
static void test_multifd_tcp_channels_255(void)
{
    MultifdTest t = { .compression = "none", .nchannels = 255 };
    multifd_round_trip(&t);
}

static void test_multifd_unix_zstd(void)
{
    MultifdTest t = { .compression = "zstd", .unix_socket = true };
    multifd_round_trip(&t);
}

/* A source that speaks as QEMU 7.2: ZERO records on main, every EOS a marker. */
static void test_multifd_tcp_machine_7_2(void)
{
    MultifdTest t = { .compression = "none" };
    MigrateCommon args = {
        .start.opts_source = "-machine mapram-7.2",
        .start.opts_target = "-machine mapram-7.2",
        .caps = { "multifd" },
        .multifd_channels = 2,
        .start_hook = multifd_start_hook,
        .end_hook = multifd_end_hook,
        .opaque = &t,
    };

    test_precopy_common(&args);
}

/* --- cancel, garbage, a killed peer ------------------------------------- */

static void start_pair(MigrateCommon *args, QTestState **from, QTestState **to,
                       MultifdTest *t)
{
    args->caps[0] = "multifd";
    args->multifd_channels = MULTIFD_TEST_CHANNELS;
    migrate_start(args, from, to);
    multifd_listen(*from, *to, t);
    wait_for_serial("src_serial");
}

/* Live, and slow enough to be caught mid-way. */
static void migrate_slowly(QTestState *from, const char *uri)
{
    migrate_set_parameter_int(from, "max-bandwidth", 20 * 1000 * 1000);
    migrate_set_parameter_int(from, "downtime-limit", 1);
    migrate_qmp(from, uri, NULL);
    wait_for_migration_status(from, "active", (const char *const[]){ "failed", NULL });
}

static void test_multifd_tcp_cancel(void)
{
    static const char *const ungoals[] = { "failed", "completed", NULL };
    MultifdTest t = { .compression = "none", .keep_dest = true };
    MigrateCommon args = { 0 };
    QTestState *from, *to;

    start_pair(&args, &from, &to, &t);
    migrate_slowly(from, t.uri);
    qtest_qmp_assert_success(from, "{'execute': 'migrate_cancel'}");
    wait_for_migration_status(from, "cancelled", ungoals);
    assert_source_intact(from);
    /* the destination saw its connections end: it fails, never resumes */
    g_autofree char *desc = wait_for_migration_fail(to);
    g_assert_nonnull(desc);
    assert_dest_not_resumed(to);
    qtest_quit(to);

    /* the source migrates again, to a fresh destination */
    MultifdTest t2 = { .compression = "none" };
    MigrateCommon args2 = { .caps = { "multifd" }, .multifd_channels = MULTIFD_TEST_CHANNELS };
    QTestState *from2, *to2;
    args2.start.only_source = false;
    migrate_start(&args2, &from2, &to2);
    qtest_quit(from2);
    multifd_listen(from, to2, &t2);
    migrate_ensure_converge(from);
    migrate_qmp(from, t2.uri, NULL);
    wait_for_migration_complete(from);
    qtest_qmp_eventwait(to2, "RESUME");
    wait_for_migration_complete(to2);
    migrate_end(from, to2, true);
}

/*
 * A source with fewer multifd channels than the destination (2 of 4):
 * its connections end (it completed into the socket buffers, or it is
 * cancelled here), and the destination, still waiting for the other two
 * channels, fails naming what it got (it waited in setup for good, the
 * source gone; `mapram save --listen` the same).
 */
static void test_multifd_tcp_fewer_source_channels(void)
{
    MultifdTest t = { .compression = "zstd", .keep_dest = true };
    MigrateCommon args = { 0 };
    QTestState *from, *to;

    start_pair(&args, &from, &to, &t);
    migrate_set_parameter_int(from, "multifd-channels", 2);
    migrate_ensure_converge(from);
    migrate_qmp(from, t.uri, NULL);
    g_usleep(G_USEC_PER_SEC);
    /* a no-op if it completed already */
    qtest_qmp_assert_success(from, "{'execute': 'migrate_cancel'}");
    g_autofree char *desc = wait_for_migration_fail(to);
    g_assert_cmpstr(desc, ==, "multifd: the source closed its connections after 2 of 4 "
                              "multifd channels: is it set to multifd with multifd-channels 4?");
    assert_dest_not_resumed(to);
    qtest_quit(to);
    qtest_quit(from);
}

/*
 * A source with more multifd channels than the destination (6 of 4):
 * the destination, loading from the 4 it took, takes the fifth as it
 * comes and fails naming it, as QEMU does (it had closed its listener:
 * the extra channels were refused, the source failed, and the
 * destination said only "Unexpected end of stream at offset 137").  The
 * source fails and runs on; the listener goes with the load.
 */
static void test_multifd_tcp_more_source_channels(void)
{
    MultifdTest t = { .compression = "none", .keep_dest = true };
    MigrateCommon args = { 0 };
    QTestState *from, *to;

    start_pair(&args, &from, &to, &t);
    migrate_set_parameter_int(from, "multifd-channels", MULTIFD_TEST_CHANNELS + 2);
    migrate_qmp(from, t.uri, NULL);
    g_autofree char *desc = wait_for_migration_fail(to);
    /* which extra channel comes first is a race */
    if (!g_regex_match_simple("^multifd: received channel id [45] is greater than number "
                              "of channels 4$", desc, 0, 0)) {
        g_test_message("destination said '%s'", desc);
        g_assert_not_reached();
    }
    assert_dest_not_resumed(to);
    g_autoptr(JsonObject) info = migrate_query(to);
    g_assert_false(json_object_has_member(info, "socket-address"));
    g_autofree char *from_desc = wait_for_migration_fail(from);
    g_assert_nonnull(from_desc);
    assert_source_intact(from);
    qtest_quit(to);
    qtest_quit(from);
}

static int connect_tcp(int port)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    g_assert_cmpint(fd, >=, 0);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    g_assert_cmpint(connect(fd, (struct sockaddr *)&a, sizeof(a)), ==, 0);
    return fd;
}

/* Bytes on a connection to a listening multifd destination: it fails with want. */
static void garbage_on_channel(const uint8_t *bytes, size_t len, const char *want)
{
    MultifdTest t = { .compression = "none", .keep_dest = true };
    MigrateCommon args = { 0 };
    QTestState *from, *to;

    start_pair(&args, &from, &to, &t);
    int port = mig_listen_port(to);
    int fd = connect_tcp(port);
    g_assert_cmpint(write(fd, bytes, len), ==, (ssize_t)len);
    g_autofree char *desc = wait_for_migration_fail(to);
    g_assert_cmpstr(desc, ==, want);
    assert_dest_not_resumed(to);
    close(fd);
    assert_source_intact(from);

    /*
     * The listener went with the failure: a source that comes later is
     * refused and runs on (its small stream filled the backlog of a
     * listener nobody read, and it "completed").
     */
    g_autoptr(JsonObject) info = migrate_query(to);
    g_assert_false(json_object_has_member(info, "socket-address"));
    migrate_qmp(from, t.uri, NULL);
    g_autofree char *refused = wait_for_migration_fail(from);
    g_autofree char *want_refused = g_strdup_printf(
        "Failed to connect to '127.0.0.1:%d': Connection refused", port);
    g_assert_cmpstr(refused, ==, want_refused);
    assert_source_intact(from);
    qtest_quit(to);
    qtest_quit(from);
}

static void test_multifd_garbage_magic(void)
{
    static const uint8_t bytes[8] = "GARBAGE!";
    /* "GARB" as a little-endian host reads it, as QEMU prints it */
    garbage_on_channel(bytes, sizeof(bytes), "unknown channel magic: 1112686919");
}

static void test_multifd_garbage_init(void)
{
    uint8_t init[64] = { 0x11, 0x22, 0x33, 0x44, 0, 0, 0, 7 };
    garbage_on_channel(init, sizeof(init), "multifd: received packet version 7 expected 1");
}

static void test_multifd_garbage_id(void)
{
    uint8_t init[64] = { 0x11, 0x22, 0x33, 0x44, 0, 0, 0, 1 };
    init[24] = MULTIFD_TEST_CHANNELS;
    garbage_on_channel(init, sizeof(init),
                       "multifd: received channel id 4 is greater than number of channels 4");
}

/*
 * The second channel's compression state cannot be made (zstd out of
 * memory): the save fails naming the channel and the source runs on (the
 * cleanup of the half-built channels dereferenced NULL).
 */
static void test_multifd_method_new_fails(void)
{
    static const char *const ungoals[] = { "completed", "cancelled", NULL };
    const char *env[] = { "MAPRAM_FAULT=multifd-method-new:2", NULL };
    MultifdTest t = { .compression = "zstd", .keep_dest = true };
    MigrateCommon args = { .start.env_source = env };
    QTestState *from, *to;

    start_pair(&args, &from, &to, &t);
    migrate_qmp(from, t.uri, NULL);
    wait_for_migration_status(from, "failed", ungoals);
    g_autofree char *desc = wait_for_migration_fail(from);
    g_assert_cmpstr(desc, ==, "multifd 1: injected fault");
    assert_source_intact(from);
    g_autofree char *desc_to = wait_for_migration_fail(to);
    /* no byte left the source: every connection it made ended empty */
    g_assert_cmpstr(desc_to, ==, "Failed to peek at channel: end of file");
    assert_dest_not_resumed(to);
    qtest_quit(to);
    qtest_quit(from);
}

/*
 * Part of a connection's first bytes, then the end: the destination fails
 * naming it (it re-peeked the same bytes at full CPU, in setup for good).
 */
static void short_then_eof(const uint8_t *bytes, size_t len, const char *want)
{
    MultifdTest t = { .compression = "none", .keep_dest = true };
    MigrateCommon args = { 0 };
    QTestState *from, *to;

    start_pair(&args, &from, &to, &t);
    int fd = connect_tcp(mig_listen_port(to));
    g_assert_cmpint(write(fd, bytes, len), ==, (ssize_t)len);
    close(fd);
    g_autofree char *desc = wait_for_migration_fail(to);
    g_assert_cmpstr(desc, ==, want);
    assert_dest_not_resumed(to);
    assert_source_intact(from);
    qtest_quit(to);
    qtest_quit(from);
}

static void test_multifd_short_magic_eof(void)
{
    short_then_eof((const uint8_t *)"QE", 2, "Failed to peek at channel: end of file");
}

static void test_multifd_short_init_eof(void)
{
    static const uint8_t init[10] = { 0x11, 0x22, 0x33, 0x44, 0, 0, 0, 1 };
    short_then_eof(init, sizeof(init), "Unexpected end-of-file before all data were read "
                   "from channel 'socket-accepted'");
}

/*
 * Part of a connection's first bytes, then silence: the destination waits
 * for the rest, and still quits at once (its incoming thread sat in a
 * blocking peek or read, and quit joined it for ever).
 */
static void test_multifd_short_silent_quit(void)
{
    static const uint8_t init[10] = { 0x11, 0x22, 0x33, 0x44, 0, 0, 0, 1 };
    const struct { const uint8_t *bytes; size_t len; } cases[] = {
        { (const uint8_t *)"QE", 2 }, { init, sizeof(init) },
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        MultifdTest t = { .compression = "none", .keep_dest = true };
        MigrateCommon args = { 0 };
        QTestState *from, *to;

        start_pair(&args, &from, &to, &t);
        int fd = connect_tcp(mig_listen_port(to));
        g_assert_cmpint(write(fd, cases[i].bytes, cases[i].len), ==, (ssize_t)cases[i].len);
        g_usleep(200 * 1000);
        g_autofree char *status = migrate_query_status(to);
        g_assert_cmpstr(status, ==, "setup");
        gint64 start = g_get_monotonic_time();
        qtest_quit(to);
        g_assert_cmpint(g_get_monotonic_time() - start, <, 5 * G_USEC_PER_SEC);
        close(fd);
        qtest_quit(from);
    }
}

/*
 * A channel whose first packet is garbage, while the main connection
 * waits: the destination fails at once, naming the channel.
 */
static void test_multifd_garbage_packet(void)
{
    static const uint8_t qevm[8] = { 'Q', 'E', 'V', 'M', 0, 0, 0, 3 };
    MultifdTest t = { .compression = "none", .keep_dest = true };
    MigrateCommon args = { 0 };
    QTestState *from, *to;
    int fds[MULTIFD_TEST_CHANNELS + 1];

    start_pair(&args, &from, &to, &t);
    int port = mig_listen_port(to);
    fds[0] = connect_tcp(port);
    g_assert_cmpint(write(fds[0], qevm, sizeof(qevm)), ==, (ssize_t)sizeof(qevm));
    for (int i = 0; i < MULTIFD_TEST_CHANNELS; i++) {
        uint8_t init[64] = { 0x11, 0x22, 0x33, 0x44, 0, 0, 0, 1 };
        init[24] = i;
        fds[i + 1] = connect_tcp(port);
        g_assert_cmpint(write(fds[i + 1], init, sizeof(init)), ==, (ssize_t)sizeof(init));
    }
    {
        uint8_t hdr[1344];
        memset(hdr, 0xab, sizeof(hdr));
        g_assert_cmpint(write(fds[3], hdr, sizeof(hdr)), ==, (ssize_t)sizeof(hdr));
    }
    g_autofree char *desc = wait_for_migration_fail(to);
    g_assert_cmpstr(desc, ==, "multifd channel 2: multifd: received packet magic abababab "
                    "expected 11223344");
    assert_dest_not_resumed(to);
    for (int i = 0; i <= MULTIFD_TEST_CHANNELS; i++) {
        close(fds[i]);
    }
    assert_source_intact(from);
    qtest_quit(to);
    qtest_quit(from);
}

/* The destination killed mid-way: the source fails and runs on, its RAM intact. */
static void test_multifd_kill_dest(void)
{
    MultifdTest t = { .compression = "none", .keep_dest = true };
    MigrateCommon args = { 0 };
    QTestState *from, *to;

    start_pair(&args, &from, &to, &t);
    migrate_slowly(from, t.uri);
    wait_for_migration_pass(from);
    qtest_kill(to);
    g_autofree char *desc = wait_for_migration_fail(from);
    g_test_message("source error: %s", desc);
    /*
     * Which connection notices first is a race: the main one names the
     * address, a multifd one its number.
     */
    if (g_str_has_prefix(desc, "multifd channel ")) {
        g_autofree char *want = g_strdup_printf("multifd channel %c: Unable to write to socket: %s",
                                                desc[16], strstr(desc, "Broken pipe")
                                                ? "Broken pipe" : "Connection reset by peer");
        g_assert_cmpstr(desc, ==, want);
        g_assert_true(desc[16] >= '0' && desc[16] < '0' + MULTIFD_TEST_CHANNELS);
    } else {
        g_autofree char *pfx = g_strdup_printf("Unable to write to %s: Unable to write to "
                                               "socket: ", t.uri + strlen("tcp:"));
        g_assert_true(g_str_has_prefix(desc, pfx));
        g_assert_true(!strcmp(desc + strlen(pfx), "Broken pipe") ||
                      !strcmp(desc + strlen(pfx), "Connection reset by peer"));
    }
    assert_source_intact(from);
    qtest_quit(from);
}


/*
 * mapram load --connect (issue 12, point 4) into mapram-vm: a mapped-ram
 * file of a stopped ab guest goes over multifd to a destination listening
 * with 4 channels; its pattern is intact and it runs on after cont.  The
 * machine type (mapram-10.2) makes the tool put MULTIFD_FLUSH markers;
 * --qemu-version 7.2 makes every RAM EOS a marker instead, which the
 * destination finds from the START section.
 */
typedef struct LoadConnect {
    const char *compression;
    const char *qemu_version;    /* NULL: the machine type's */
    bool unix_socket;
} LoadConnect;

static void multifd_load_connect(const LoadConnect *lc)
{
    static const char *const caps[] = { "mapped-ram", NULL };
    g_autofree char *path = mig_make_saved_file(MIG_FILE_NAME, caps, false);
    g_autofree char *args = g_strdup_printf(
        "-m 150M -machine memory-backend=mig.mem "
        "-object memory-backend-ram,id=mig.mem,size=150M,share=off "
        "-guest ab -serial file:%s/dest_serial -incoming defer", mig_tmpdir);
    QTestState *to = qtest_init_bin(qtest_vm_binary(), "%s", args);
    g_autofree char *sock = mig_path("migsocket");
    g_autofree char *uri = NULL;

    migrate_set_capability(to, "events", true);
    migrate_set_capability(to, "multifd", true);
    migrate_set_parameter_int(to, "multifd-channels", MULTIFD_TEST_CHANNELS);
    set_compression(to, lc->compression);
    if (lc->unix_socket) {
        uri = g_strdup_printf("unix:%s", sock);
        migrate_incoming_qmp(to, uri, NULL, NULL);
    } else {
        uri = mig_incoming_tcp(to, NULL);
    }

    const char *tool = g_getenv("MAPRAM_TOOL");
    g_assert_nonnull(tool);
    g_autoptr(GPtrArray) argv = g_ptr_array_new();
    const char *fixed[] = { tool, "load", "--connect", uri, "--quiet", "--channels", "4",
                            "--compression", lc->compression };
    for (size_t i = 0; i < G_N_ELEMENTS(fixed); i++) {
        g_ptr_array_add(argv, (char *)fixed[i]);
    }
    if (lc->qemu_version) {
        g_ptr_array_add(argv, (char *)"--qemu-version");
        g_ptr_array_add(argv, (char *)lc->qemu_version);
    }
    g_ptr_array_add(argv, path);
    g_ptr_array_add(argv, NULL);
    g_autofree char *out = NULL, *err = NULL;
    int status = -1;
    GError *gerr = NULL;
    g_assert_true(g_spawn_sync(NULL, (char **)argv->pdata, NULL, G_SPAWN_DEFAULT, NULL, NULL,
                               &out, &err, &status, &gerr));
    g_assert_no_error(gerr);
    g_assert_cmpstr(err, ==, "");
    g_assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);

    wait_for_migration_complete(to);
    /* saved stopped, so loaded paused (globalstate) */
    g_autofree char *state = query_runstate(to);
    g_assert_cmpstr(state, ==, "paused");
    check_guests_ram(to);
    qtest_qmp_assert_success(to, "{'execute': 'cont'}");
    assert_guest_runs(to);
    qtest_quit(to);
}

static void test_multifd_load_connect(void)
{
    multifd_load_connect(&(LoadConnect){ .compression = "none" });
}

static void test_multifd_load_connect_72(void)
{
    multifd_load_connect(&(LoadConnect){ .compression = "zstd", .qemu_version = "7.2" });
}

static void test_multifd_load_connect_unix(void)
{
    multifd_load_connect(&(LoadConnect){ .compression = "zlib", .unix_socket = true });
}

void migration_test_add_multifd(void)
{
    migration_test_add("/migration/multifd/tcp/plain/none", test_multifd_tcp_none, MIG_SMOKE);
    migration_test_add("/migration/multifd/tcp/plain/zlib", test_multifd_tcp_zlib, MIG_FULL);
    migration_test_add("/migration/multifd/tcp/plain/zstd", test_multifd_tcp_zstd, MIG_SMOKE);
    migration_test_add("/migration/multifd/tcp/channels/plain/none",
                       test_multifd_tcp_channels_none, MIG_FULL);
    migration_test_add("/migration/multifd/tcp/plain/cancel", test_multifd_tcp_cancel,
                       MIG_FULL);
    migration_test_add("/migration/multifd/tcp/machine-7.2", test_multifd_tcp_machine_7_2,
                       MIG_FULL);
    migration_test_add("/migration/multifd/tcp/plain/none/255", test_multifd_tcp_channels_255,
                       MIG_FULL);
    migration_test_add("/migration/multifd/unix/plain/none", test_multifd_unix_none, MIG_FULL);
    migration_test_add("/migration/multifd/unix/plain/zstd", test_multifd_unix_zstd, MIG_FULL);
    migration_test_add("/migration/multifd/tcp/more-source-channels",
                       test_multifd_tcp_more_source_channels, MIG_SMOKE);
    migration_test_add("/migration/multifd/tcp/fewer-source-channels",
                       test_multifd_tcp_fewer_source_channels, MIG_SMOKE);
    migration_test_add("/migration/multifd/tcp/garbage/magic", test_multifd_garbage_magic,
                       MIG_SMOKE);
    migration_test_add("/migration/multifd/tcp/garbage/init", test_multifd_garbage_init,
                       MIG_FULL);
    migration_test_add("/migration/multifd/tcp/garbage/id", test_multifd_garbage_id, MIG_FULL);
    migration_test_add("/migration/multifd/tcp/garbage/packet", test_multifd_garbage_packet,
                       MIG_SMOKE);
    migration_test_add("/migration/multifd/tcp/fault/method-new", test_multifd_method_new_fails,
                       MIG_FULL);
    migration_test_add("/migration/multifd/tcp/garbage/short-magic-eof",
                       test_multifd_short_magic_eof, MIG_FULL);
    migration_test_add("/migration/multifd/tcp/garbage/short-init-eof",
                       test_multifd_short_init_eof, MIG_FULL);
    migration_test_add("/migration/multifd/tcp/garbage/short-silent-quit",
                       test_multifd_short_silent_quit, MIG_SMOKE);
    migration_test_add("/migration/multifd/tcp/kill/dest", test_multifd_kill_dest, MIG_FULL);
    migration_test_add("/migration/multifd/tcp/load-connect", test_multifd_load_connect,
                       MIG_SMOKE);
    migration_test_add("/migration/multifd/tcp/load-connect/qemu-7.2-zstd",
                       test_multifd_load_connect_72, MIG_FULL);
    migration_test_add("/migration/multifd/unix/load-connect/zlib",
                       test_multifd_load_connect_unix, MIG_FULL);
}
