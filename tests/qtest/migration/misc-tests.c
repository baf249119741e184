/*
 * Cancel, refused URIs and a destination whose RAM layout differs.
 */
#include "framework.h"
#include "tests.h"
#include <math.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* Start a slow live migration to @uri and wait until it is active. */
static void start_slow_migration(QTestState *from, const char *uri)
{
    static const char *const ungoals[] = { "failed", "completed",
                                           "cancelled", NULL };

    migrate_set_parameter_int(from, "max-bandwidth", 10 * 1000 * 1000);
    migrate_set_parameter_int(from, "downtime-limit", 1);
    migrate_qmp(from, uri, NULL);
    wait_for_migration_status(from, "active", ungoals);
}

static void cancel_and_check(QTestState *from)
{
    static const char *const ungoals[] = { "failed", "completed", NULL };
    g_autofree char *st = NULL;

    g_usleep(300 * 1000);
    qtest_qmp_assert_success(from, "{'execute': 'migrate_cancel'}");
    wait_for_migration_status(from, "cancelled", ungoals);
    st = migrate_query_status(from);
    g_assert_cmpstr(st, ==, "cancelled");
    assert_source_intact(from);
}

static void test_cancel(void)
{
    g_autofree char *sock1 = mig_path("sock1");
    g_autofree char *uri1 = g_strdup_printf("unix:%s", sock1);
    g_autofree char *sock2 = mig_path("sock2");
    g_autofree char *uri2 = g_strdup_printf("unix:%s", sock2);
    MigrateCommon args = { 0 };
    QTestState *from, *to, *to2;

    migrate_start(&args, &from, &to);
    migrate_incoming_qmp(to, uri1, NULL, "'exit-on-error': false");
    wait_for_serial("src_serial");
    start_slow_migration(from, uri1);
    cancel_and_check(from);

    /*
     * The first destination got half a stream: it fails where the stream
     * stopped (in a section, or between two when the rate limit had the
     * source waiting), stays up (exit-on-error is off) and does not run.
     */
    {
        g_autofree char *desc = wait_for_migration_fail(to);
        unsigned long long section_at = 0, at = 0;
        g_autofree char *want = NULL;

        /* cut inside a PART of the ram section (id 0), or between records */
        if (sscanf(desc, "PART section 'ram' (id 0) at offset %llu: "
                   "Unexpected end of stream at offset %llu", &section_at, &at) == 2) {
            want = g_strdup_printf("PART section 'ram' (id 0) at offset %llu: "
                                   "Unexpected end of stream at offset %llu",
                                   section_at, at);
            g_assert_cmpuint(section_at, <, at);
        } else {
            at = assert_msg_dec(desc, "Unexpected end of stream at offset ", "");
            want = g_strdup_printf("Unexpected end of stream at offset %llu", at);
        }
        g_assert_cmpstr(desc, ==, want);
    }
    assert_dest_not_resumed(to);
    g_assert_true(qtest_alive(to));
    qtest_quit(to);

    /* A second migration to a fresh destination succeeds. */
    {
        g_autofree char *dst = g_strdup_printf(
            "-m 150M -machine memory-backend=mig.mem "
            "-object memory-backend-ram,id=mig.mem,size=150M,share=off "
            "-guest ab -serial file:%s/dest_serial -incoming defer",
            mig_tmpdir);

        to2 = qtest_init_bin(qtest_vm_binary(), "%s", dst);
    }
    migrate_apply_caps(to2, &args);
    migrate_incoming_qmp(to2, uri2, NULL, NULL);
    migrate_ensure_converge(from);
    migrate_qmp(from, uri2, NULL);
    wait_for_migration_complete(from);
    qtest_qmp_eventwait(to2, "RESUME");
    wait_for_migration_complete(to2);
    wait_for_serial("dest_serial");
    migrate_end(from, to2, true);
}

/* --- stop on a VM that does not run -------------------------------------- */

/* stop leaves the state and sends no STOP (queried after the command: any event came first). */
static void stop_changes_nothing(QTestState *vm, const char *state)
{
    g_autofree char *before = query_runstate(vm);
    g_autofree char *after = NULL;

    g_assert_cmpstr(before, ==, state);
    qtest_qmp_clear_events(vm);
    qtest_qmp_assert_success(vm, "{'execute': 'stop'}");
    after = query_runstate(vm);
    g_assert_cmpstr(after, ==, state);
    g_assert_null(qtest_qmp_event_ref(vm, "STOP"));
}

/*
 * QEMU's stop acts on a live VM only.  A -S guest stays prelaunch; one
 * that migrated stays postmigrate, so a second migrate is still refused
 * (it became paused, and the second migrate went through).
 */
static void test_stop_not_running(void)
{
    g_autofree char *args = mig_vm_args("64M", "idle", "src_serial", "-S");
    g_autofree char *uri = mig_file_uri("stop", NULL);
    QTestState *vm = qtest_init_bin(qtest_vm_binary(), "%s", args);

    stop_changes_nothing(vm, "prelaunch");
    qtest_qmp_assert_success(vm, "{'execute': 'cont'}");
    qtest_qmp_eventwait(vm, "RESUME");
    migrate_qmp(vm, uri, NULL);
    wait_for_migration_complete(vm);
    stop_changes_nothing(vm, "postmigrate");
    {
        g_autofree char *desc = migrate_qmp_expect_error(vm, uri, NULL);

        g_assert_cmpstr(desc, ==,
                        "Can't migrate the vm that was paused due to previous migration");
    }
    qtest_quit(vm);
}

/* --- refused URIs -------------------------------------------------------- */

static void expect_migrate_error(QTestState *from, const char *uri,
                                 const char *channels, const char *want)
{
    g_autofree char *desc = migrate_qmp_expect_error(from, uri, channels);

    g_assert_cmpstr(desc, ==, want);
}

static void test_bad_uri(void)
{
    MigrateCommon args = { .start.only_source = true };
    QTestState *from, *to;
    g_autofree char *desc = NULL;
    g_autofree char *st = NULL;

    migrate_start(&args, &from, &to);
    wait_for_serial("src_serial");

    expect_migrate_error(from, "foo:bar", NULL,
                         "unknown migration protocol: foo:bar");
    /* QEMU's inet_parse() message */
    expect_migrate_error(from, "tcp:nohostport", NULL,
                         "error parsing address 'nohostport'");
    expect_migrate_error(from, "unix:", NULL,
                         "invalid Unix socket address");

    desc = qtest_qmp_expect_error(from, "{'execute': 'migrate', "
                                  "'arguments': {}}");
    g_assert_cmpstr(desc, ==, "need either 'uri' or 'channels' argument");
    g_clear_pointer(&desc, g_free);
    {
        g_autofree char *file = mig_path(MIG_FILE_NAME);

        desc = qtest_qmp_expect_error(from, "{'execute': 'migrate', "
            "'arguments': {'uri': 'file:%s', 'channels': [{'channel-type': "
            "'main', 'addr': {'transport': 'file', 'filename': '%s', "
            "'offset': 0}}]}}", file, file);
    }
    g_assert_cmpstr(desc, ==, "need either 'uri' or 'channels' argument");
    g_clear_pointer(&desc, g_free);

    expect_migrate_error(from, NULL, "[]", "Channel list has no main entry");

    /* Nothing started: the source runs on, query-migrate still empty. */
    st = migrate_query_status(from);
    g_assert_cmpstr(st, ==, "none");
    assert_source_intact(from);
    qtest_quit(from);
}

/* --- connecting to the destination ------------------------------------------ */

/*
 * A listener with a backlog of 0 and one connection it never accepts: its
 * accept queue is full, so a tcp connect's SYNs are dropped (the connect
 * waits ~2 minutes) and a unix connect waits for good.  *filler is that
 * first connection.  Returns the listening fd.
 */
static int full_listener(struct sockaddr *a, socklen_t len, int *filler)
{
    int fd = socket(a->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(bind(fd, a, len), ==, 0);
    g_assert_cmpint(listen(fd, 0), ==, 0);
    g_assert_cmpint(getsockname(fd, a, &len), ==, 0);
    *filler = socket(a->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    g_assert_cmpint(connect(*filler, a, len), ==, 0);
    return fd;
}

/*
 * migrate to a peer that does not answer returns at once, as QEMU's
 * asynchronous connect does: the status is "setup" while the connect
 * waits, migrate_cancel ends it ("cancelled", no error), and the source
 * runs on and can migrate again.  (The connect used to be made in the
 * QMP command: the monitor froze for the SYN timeout, or for good on a
 * unix socket, and a cancel could not even be sent.)
 */
static void silent_peer(bool is_unix)
{
    static const char *const ungoals[] = { "failed", "completed", NULL };
    MigrateCommon args = { .start.only_source = true };
    QTestState *from, *to;
    g_autofree char *path = mig_path("silent.sock");
    g_autofree char *uri = NULL;
    struct sockaddr_in in = { .sin_family = AF_INET };
    struct sockaddr_un un = { .sun_family = AF_UNIX };
    int filler, lfd;

    if (is_unix) {
        g_strlcpy(un.sun_path, path, sizeof(un.sun_path));
        lfd = full_listener((struct sockaddr *)&un, sizeof(un), &filler);
        uri = g_strdup_printf("unix:%s", path);
    } else {
        in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        lfd = full_listener((struct sockaddr *)&in, sizeof(in), &filler);
        uri = g_strdup_printf("tcp:127.0.0.1:%d", ntohs(in.sin_port));
    }
    migrate_start(&args, &from, &to);
    wait_for_serial("src_serial");

    migrate_qmp(from, uri, NULL);
    g_usleep(300 * 1000);
    {
        g_autoptr(JsonObject) info = migrate_query(from);

        g_assert_cmpstr(qtest_json_get_str(info, "status"), ==, "setup");
        g_assert_false(json_object_has_member(info, "error-desc"));
    }
    g_assert_true(runstate_is_running(from));
    qtest_qmp_assert_success(from, "{'execute': 'migrate_cancel'}");
    wait_for_migration_status(from, "cancelled", ungoals);
    {
        g_autoptr(JsonObject) info = migrate_query(from);

        g_assert_false(json_object_has_member(info, "error-desc"));
    }
    assert_source_intact(from);

    /* nothing of the abandoned connect is left in the way of the next one */
    {
        g_autofree char *file = mig_file_uri(MIG_FILE_NAME, NULL);

        migrate_ensure_converge(from);
        migrate_qmp(from, file, NULL);
        wait_for_migration_complete(from);
    }
    close(filler);
    close(lfd);
    if (is_unix) {
        unlink(path);
    }
    qtest_quit(from);
}

/*
 * A tcp: destination whose name lookup does not end (a resolver that does
 * not answer, here a fault point that holds it 60 s): the status is
 * setup, migrate_cancel ends it at once, the source runs on and migrates
 * again, and quit does not wait for the lookup (it used to wait it out:
 * getaddrinfo ran on the migration thread, which quit joins).
 */
static void test_connect_slow_resolver(void)
{
    static const char *const ungoals[] = { "failed", "completed", NULL };
    const char *env[] = { "MAPRAM_FAULT=socket-resolve-stall", NULL };
    MigrateCommon args = { .start.only_source = true, .start.env_source = env };
    QTestState *from, *to;
    g_autofree char *file = mig_file_uri(MIG_FILE_NAME, NULL);

    migrate_start(&args, &from, &to);
    wait_for_serial("src_serial");
    migrate_qmp(from, "tcp:localhost:1", NULL);
    g_usleep(300 * 1000);
    {
        g_autofree char *st = migrate_query_status(from);

        g_assert_cmpstr(st, ==, "setup");
    }
    gint64 t0 = g_get_monotonic_time();
    qtest_qmp_assert_success(from, "{'execute': 'migrate_cancel'}");
    wait_for_migration_status(from, "cancelled", ungoals);
    g_assert_cmpint(g_get_monotonic_time() - t0, <, 5 * G_USEC_PER_SEC);
    {
        g_autoptr(JsonObject) info = migrate_query(from);

        g_assert_false(json_object_has_member(info, "error-desc"));
    }
    assert_source_intact(from);
    migrate_ensure_converge(from);
    migrate_qmp(from, file, NULL);
    wait_for_migration_complete(from);

    /* and one more, whose lookup is still held when the VM quits */
    qtest_qmp_assert_success(from, "{'execute': 'cont'}");
    migrate_qmp(from, "tcp:localhost:1", NULL);
    g_usleep(100 * 1000);
    t0 = g_get_monotonic_time();
    qtest_quit(from);
    g_assert_cmpint(g_get_monotonic_time() - t0, <, 5 * G_USEC_PER_SEC);
}

static void test_connect_silent_tcp(void)
{
    silent_peer(false);
}

static void test_connect_silent_unix(void)
{
    silent_peer(true);
}

/*
 * Nobody listening: migrate succeeds, the migration fails with QEMU's
 * connect message as its error-desc, and the source runs on.
 */
static void test_connect_refused(void)
{
    MigrateCommon args = { .start.only_source = true };
    QTestState *from, *to;
    g_autofree char *path = mig_path("nobody.sock");
    g_autofree char *uri = g_strdup_printf("unix:%s", path);
    g_autofree char *want = g_strdup_printf("Failed to connect to '%s': No such file or directory",
                                            path);
    struct sockaddr_in in = { .sin_family = AF_INET };
    socklen_t len = sizeof(in);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    /* a port that was just free: bound, never listened on */
    in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    g_assert_cmpint(bind(fd, (struct sockaddr *)&in, sizeof(in)), ==, 0);
    g_assert_cmpint(getsockname(fd, (struct sockaddr *)&in, &len), ==, 0);

    migrate_start(&args, &from, &to);
    wait_for_serial("src_serial");
    migrate_qmp(from, uri, NULL);
    {
        g_autofree char *desc = wait_for_migration_fail(from);

        g_assert_cmpstr(desc, ==, want);
    }
    assert_source_intact(from);
    {
        g_autofree char *tcp = g_strdup_printf("tcp:127.0.0.1:%d", ntohs(in.sin_port));
        g_autofree char *desc = NULL;

        g_free(want);
        want = g_strdup_printf("Failed to connect to '127.0.0.1:%d': Connection refused",
                               ntohs(in.sin_port));
        migrate_qmp(from, tcp, NULL);
        desc = wait_for_migration_fail(from);
        g_assert_cmpstr(desc, ==, want);
    }
    assert_source_intact(from);
    close(fd);
    qtest_quit(from);
}

/*
 * QEMU's ipv4 / ipv6 flags restrict the addresses an outgoing tcp:
 * connect tries, as QEMU's connect does: tcp:[::1]:P,ipv4 has no IPv4
 * address to try (the flags were ignored: it connected to ::1), and
 * tcp:127.0.0.1:P,ipv6 reaches an IPv4 listener through the v4-mapped
 * address ::ffff:127.0.0.1.
 */
static void test_connect_family(void)
{
    MigrateCommon args = { .start.only_source = true };
    struct sockaddr_in in = { .sin_family = AF_INET };
    socklen_t len = sizeof(in);
    QTestState *from, *to;
    int probe = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (probe < 0) {
        g_test_skip("no IPv6 here");
        close(fd);
        return;
    }
    close(probe);
    in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    g_assert_cmpint(bind(fd, (struct sockaddr *)&in, sizeof(in)), ==, 0);
    g_assert_cmpint(listen(fd, 1), ==, 0);
    g_assert_cmpint(getsockname(fd, (struct sockaddr *)&in, &len), ==, 0);
    int port = ntohs(in.sin_port);

    migrate_start(&args, &from, &to);
    wait_for_serial("src_serial");
    {
        g_autofree char *uri = g_strdup_printf("tcp:[::1]:%d,ipv4", port);
        g_autofree char *want = g_strdup_printf("address resolution failed for ::1:%d: "
                                                "Address family for hostname not supported",
                                                port);
        g_autofree char *desc = NULL;

        migrate_qmp(from, uri, NULL);
        desc = wait_for_migration_fail(from);
        g_assert_cmpstr(desc, ==, want);
    }
    assert_source_intact(from);
    {
        g_autofree char *uri = g_strdup_printf("tcp:127.0.0.1:%d,ipv6", port);
        g_autofree char *desc = NULL;
        struct sockaddr_in peer_addr;
        socklen_t plen = sizeof(peer_addr);
        int peer;

        migrate_qmp(from, uri, NULL);
        peer = accept(fd, (struct sockaddr *)&peer_addr, &plen);
        g_assert_cmpint(peer, >=, 0);
        close(peer);
        desc = wait_for_migration_fail(from);
        g_assert_nonnull(desc);
    }
    assert_source_intact(from);
    close(fd);
    qtest_quit(from);
}

/* --- RAM layout mismatch ------------------------------------------------- */

/*
 * A 150 MiB main RAM block in the file, 256 MiB on the destination; the
 * walker names the section (ram is section 0, after the 8-byte header
 * and a 16-byte configuration).
 */
#define LAYOUT_MISMATCH \
    "START section 'ram' (id 0) at offset 24: " \
    "Length mismatch: mig.mem: 0x9600000 in != 0x10000000: Invalid argument"

static void layout_mismatch(bool exit_on_error)
{
    g_autofree char *uri = mig_file_uri(MIG_FILE_NAME, NULL);
    MigrateCommon args = { .start.dst_mem_size = "256M" };
    QTestState *from, *to;

    migrate_start(&args, &from, &to);
    migrate_ensure_converge(from);
    wait_for_serial("src_serial");
    qtest_qmp_assert_success(from, "{'execute': 'stop'}");
    qtest_qmp_eventwait(from, "STOP");
    migrate_qmp(from, uri, NULL);
    wait_for_migration_complete(from);

    if (exit_on_error) {
        int code;
        g_autofree char *log = NULL;

        /* The process may exit before its reply arrives. */
        qtest_qmp_send(to, "{'execute': 'migrate-incoming', "
                       "'arguments': {'uri': '%s'}}", uri);
        code = qtest_wait_exit(to, 0);
        log = qtest_stderr_text(to);
        g_assert_cmpint(code, ==, 1);
        g_assert_cmpstr(log, ==, "mapram-vm: load of migration failed: "
                        LAYOUT_MISMATCH "\n");
        qtest_quit(to);
    } else {
        g_autofree char *desc = NULL;

        migrate_incoming_qmp(to, uri, NULL, "'exit-on-error': false");
        desc = wait_for_migration_fail(to);
        g_assert_cmpstr(desc, ==, LAYOUT_MISMATCH);
        assert_dest_not_resumed(to);
        g_assert_true(qtest_alive(to));
        {
            /* as QEMU: nothing printed when the process stays */
            g_autofree char *log = qtest_stderr_text(to);

            g_assert_cmpstr(log, ==, "");
        }
        qtest_quit(to);
    }
    qtest_quit(from);
}

static void test_layout_mismatch_exit(void)
{
    layout_mismatch(true);
}

static void test_layout_mismatch_noexit(void)
{
    layout_mismatch(false);
}

/* --- query-migrate's figures move with the work ------------------------ */

/* Pages the save has been through: written, or found zero and skipped. */
static uint64_t pages_done(JsonObject *ram)
{
    return qtest_json_get_int(ram, "normal", -1) + qtest_json_get_int(ram, "duplicate", -1);
}

/*
 * A stopped 150 MiB guest saved to mapped-ram with 4 page channels at
 * 40 MB/s: one pass of about 4 s.  Sampled every 200 ms, the figures
 * query-migrate reads from the migration's counters (never from the
 * thread's objects) must move as the page workers go: pages done and
 * bytes transferred never go back and keep growing, dirty RAM never
 * grows, and at the end every page of RAM was done exactly once.
 */
static void test_query_figures_move(void)
{
    static const char *const ungoals[] = { "failed", "cancelled", NULL };
    g_autofree char *uri = mig_file_uri(MIG_FILE_NAME, NULL);
    MigrateCommon args = { .start.only_source = true,
                           .caps = { "mapped-ram", "multifd" } };
    QTestState *from, *to;
    uint64_t last_done = 0, last_bytes = 0, last_dirty = G_MAXUINT64;
    unsigned samples = 0, moved = 0;
    g_autoptr(JsonObject) end = NULL;

    migrate_start(&args, &from, &to);
    wait_for_serial("src_serial");
    qtest_qmp_assert_success(from, "{'execute': 'stop'}");
    migrate_set_parameter_int(from, "multifd-channels", 4);
    migrate_set_parameter_int(from, "max-bandwidth", 40 * 1000 * 1000);
    migrate_qmp(from, uri, NULL);
    wait_for_migration_status(from, "active", ungoals);
    for (;;) {
        g_autoptr(JsonObject) q = migrate_query(from);
        const char *st = qtest_json_get_str(q, "status");
        JsonObject *ram;

        if (!strcmp(st, "completed") || !strcmp(st, "device")) {
            break;
        }
        g_assert_cmpstr(st, ==, "active");
        ram = json_object_get_object_member(q, "ram");
        g_assert_nonnull(ram);
        g_assert_cmpuint(pages_done(ram), >=, last_done);
        g_assert_cmpuint(qtest_json_get_int(ram, "transferred", -1), >=, last_bytes);
        g_assert_cmpuint(qtest_json_get_int(ram, "remaining", -1), <=, last_dirty);
        moved += samples && pages_done(ram) > last_done;
        samples++;
        last_done = pages_done(ram);
        last_bytes = qtest_json_get_int(ram, "transferred", -1);
        last_dirty = qtest_json_get_int(ram, "remaining", -1);
        g_usleep(200 * 1000);
    }
    wait_for_migration_complete(from);
    end = migrate_query(from);
    JsonObject *ram = json_object_get_object_member(end, "ram");
    g_test_message("%u samples while active, %u of them moved on", samples, moved);
    g_assert_cmpuint(samples, >=, 5);
    g_assert_cmpuint(moved, >=, samples / 2);
    /* Stopped: the one pass went through every page, the last sync found none. */
    g_assert_cmpuint(pages_done(ram) * 4096, ==, qtest_json_get_int(ram, "total", -1));
    g_assert_cmpuint(qtest_json_get_int(ram, "remaining", -1), ==, 0);
    g_assert_cmpuint(qtest_json_get_int(ram, "transferred", -1), >=,
                     qtest_json_get_int(ram, "normal-bytes", -1));
    g_assert_cmpuint(qtest_json_get_int(ram, "multifd-bytes", -1), ==,
                     qtest_json_get_int(ram, "normal-bytes", -1));
    qtest_quit(from);
}

/*
 * query-migrate's figures as QEMU computes them: expected-downtime starts
 * at downtime-limit (it read 0 until a bandwidth estimate existed) and
 * stays there while nothing is dirtied; with xbzrle on, an xbzrle-cache
 * member with the cache's size (it was missing); at completion mbps is
 * the whole transfer's average, bytes * 8 / (total-time - setup-time) /
 * 1000 (it was the last window's estimate, 0 for a short save).  And
 * query-migrate-parameters reports x-io-queue-depth, which can be set.
 */
static void query_figures_as_qemu(uint64_t max_bandwidth)
{
    static const char *const ungoals[] = { "failed", "cancelled", NULL };
    g_autofree char *vm_args = mig_vm_args("64M", "fill", "src_serial", NULL);
    QTestState *from = qtest_init_bin(qtest_vm_binary(), "%s", vm_args);

    migrate_set_capability(from, "xbzrle", true);
    g_usleep(G_USEC_PER_SEC);                   /* the guest fills (part of) its RAM */
    qtest_qmp_assert_success(from, "{'execute': 'stop'}");
    migrate_set_parameter_int(from, "downtime-limit", 250);
    migrate_set_parameter_int(from, "max-bandwidth", max_bandwidth);
    migrate_qmp(from, "exec:cat > /dev/null", NULL);
    if (max_bandwidth) {
        wait_for_migration_status(from, "active", ungoals);
        g_usleep(500 * 1000);
        g_autoptr(JsonObject) q = migrate_query(from);
        g_assert_cmpstr(qtest_json_get_str(q, "status"), ==, "active");
        g_assert_cmpint(qtest_json_get_int(q, "expected-downtime", -1), ==, 250);
        JsonObject *x = json_object_get_object_member(q, "xbzrle-cache");
        g_assert_nonnull(x);
        g_assert_cmpint(qtest_json_get_int(x, "cache-size", -1), ==, 64 * 1024 * 1024);
        g_assert_cmpint(qtest_json_get_int(x, "bytes", -1), ==, 0);
        g_assert_cmpint(qtest_json_get_int(x, "overflow", -1), ==, 0);
        migrate_set_parameter_int(from, "max-bandwidth", 0);
    }
    wait_for_migration_complete(from);
    g_autoptr(JsonObject) end = migrate_query(from);
    JsonObject *ram = json_object_get_object_member(end, "ram");
    double bytes = qtest_json_get_int(ram, "transferred", -1);
    double ms = qtest_json_get_int(end, "total-time", -1) - qtest_json_get_int(end, "setup-time", -1);
    double mbps = json_object_get_double_member(ram, "mbps");
    g_test_message("completed: %.0f bytes in %.0f ms: mbps %f", bytes, ms, mbps);
    g_assert_cmpfloat(ms, >, 0);
    g_assert_cmpfloat(fabs(mbps - bytes * 8 / ms / 1000), <, 1e-6 * mbps + 1e-9);
    g_assert_cmpfloat(mbps, >, 0);
    g_assert_nonnull(json_object_get_object_member(end, "xbzrle-cache"));

    qtest_qmp_assert_success(from,
        "{'execute': 'migrate-set-parameters', 'arguments': {'x-io-queue-depth': 64}}");
    g_autoptr(JsonObject) params = qtest_qmp_assert_success_ref(from,
        "{'execute': 'query-migrate-parameters'}");
    g_assert_cmpint(qtest_json_get_int(params, "x-io-queue-depth", -1), ==, 64);
    qtest_quit(from);
}

static void test_query_figures_as_qemu(void)
{
    query_figures_as_qemu(2 * 1000 * 1000);
}

static void test_query_figures_as_qemu_fast(void)
{
    query_figures_as_qemu(0);
}

void migration_test_add_misc(void)
{
    migration_test_add("/migration/cancel", test_cancel, MIG_SMOKE);
    migration_test_add("/migration/bad-uri", test_bad_uri, MIG_SMOKE);
    migration_test_add("/migration/stop/not-running", test_stop_not_running, MIG_SMOKE);
    migration_test_add("/migration/connect/refused", test_connect_refused, MIG_SMOKE);
    migration_test_add("/migration/connect/family", test_connect_family, MIG_SMOKE);
    migration_test_add("/migration/connect/silent/tcp", test_connect_silent_tcp, MIG_SMOKE);
    migration_test_add("/migration/connect/silent/unix", test_connect_silent_unix, MIG_FULL);
    migration_test_add("/migration/connect/slow-resolver", test_connect_slow_resolver, MIG_FULL);
    migration_test_add("/migration/query/figures-move", test_query_figures_move, MIG_FULL);
    migration_test_add("/migration/query/figures-as-qemu", test_query_figures_as_qemu,
                       MIG_SMOKE);
    migration_test_add("/migration/query/figures-as-qemu/fast", test_query_figures_as_qemu_fast,
                       MIG_SMOKE);
    migration_test_add("/migration/load/ram-layout-mismatch",
                       test_layout_mismatch_exit, MIG_SMOKE);
    migration_test_add("/migration/load/ram-layout-mismatch/no-exit",
                       test_layout_mismatch_noexit, MIG_FULL);
}
