/*
 * Stream migrations over exec:, unix:, tcp: and fd:.
 */
#include "framework.h"
#include "tests.h"

#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static void test_precopy_exec(void)
{
    g_autofree char *file = mig_path(MIG_FILE_NAME);
    g_autofree char *out = g_strdup_printf("exec:cat > %s", file);
    g_autofree char *in = g_strdup_printf("exec:cat %s", file);
    MigrateCommon args = { .connect_uri = out, .listen_uri = in };

    test_file_common(&args, true);
}

static void test_precopy_unix(void)
{
    g_autofree char *sock = mig_path("migsocket");
    g_autofree char *uri = g_strdup_printf("unix:%s", sock);
    MigrateCommon args = { .connect_uri = uri, .listen_uri = uri };

    test_precopy_common(&args);
}

/* A port nobody listens on right now (tiny race, fine for tests). */
static int free_tcp_port(void)
{
    struct sockaddr_in a = { .sin_family = AF_INET };
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int port;

    g_assert_cmpint(fd, >=, 0);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    g_assert_cmpint(bind(fd, (struct sockaddr *)&a, sizeof(a)), ==, 0);
    g_assert_cmpint(getsockname(fd, (struct sockaddr *)&a, &len), ==, 0);
    port = ntohs(a.sin_port);
    close(fd);
    return port;
}

/* QEMU shows the listening address in the destination's query-migrate. */
static void tcp_check_socket_address(QTestState *from, QTestState *to,
                                     MigrateCommon *args)
{
    g_autoptr(JsonObject) info = migrate_query(to);
    JsonNode *addrs = json_object_get_member(info, "socket-address");
    const int *port = args->opaque;

    if (!addrs) {
        g_test_message("destination query-migrate has no socket-address");
        return;
    }
    g_assert_true(JSON_NODE_HOLDS_ARRAY(addrs));
    g_assert_cmpuint(json_array_get_length(json_node_get_array(addrs)), >=, 1);
    {
        JsonObject *a = json_array_get_object_element(
            json_node_get_array(addrs), 0);
        const char *p = qtest_json_get_str(a, "port");

        g_assert_cmpstr(qtest_json_get_str(a, "type"), ==, "inet");
        g_assert_nonnull(p);
        g_assert_cmpint(atoi(p), ==, *port);
    }
}

static void test_precopy_tcp(void)
{
    int port = free_tcp_port();
    g_autofree char *uri = g_strdup_printf("tcp:127.0.0.1:%d", port);
    MigrateCommon args = {
        .connect_uri = uri,
        .listen_uri = uri,
        .start_hook = tcp_check_socket_address,
        .opaque = &port,
    };

    test_precopy_common(&args);
}

/* socket-address of tcp::PORT: :: then 0.0.0.0, both on the port, as QEMU lists them. */
static void tcp_any_check_socket_address(QTestState *from, QTestState *to,
                                         MigrateCommon *args)
{
    g_autoptr(JsonObject) info = migrate_query(to);
    JsonArray *addrs = json_object_get_array_member(info, "socket-address");
    g_autofree char *port = g_strdup_printf("%d", *(const int *)args->opaque);
    static const char *const want[][2] = { { "::", "ipv6" }, { "0.0.0.0", "ipv4" } };

    g_assert_cmpuint(json_array_get_length(addrs), ==, 2);
    for (guint i = 0; i < 2; i++) {
        JsonObject *a = json_array_get_object_element(addrs, i);

        g_assert_cmpstr(qtest_json_get_str(a, "host"), ==, want[i][0]);
        g_assert_cmpstr(qtest_json_get_str(a, "port"), ==, port);
        g_assert_true(json_object_get_boolean_member(a, want[i][1]));
    }
}

/*
 * A destination on tcp::PORT listens on every address, as QEMU's does:
 * a source reaches it over IPv6 (before, it listened on 0.0.0.0 alone
 * and the connection to [::1] was refused).
 */
static void test_precopy_tcp_any_ipv6(void)
{
    int port = free_tcp_port();
    g_autofree char *listen = g_strdup_printf("tcp::%d", port);
    g_autofree char *connect = g_strdup_printf("tcp:[::1]:%d", port);
    struct sockaddr_in6 lo6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
    int probe = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool v6 = probe >= 0 && bind(probe, (struct sockaddr *)&lo6, sizeof(lo6)) == 0;
    MigrateCommon args = {
        .connect_uri = connect,
        .listen_uri = listen,
        .start_hook = tcp_any_check_socket_address,
        .opaque = &port,
    };

    if (probe >= 0) {
        close(probe);
    }
    if (!v6) {
        g_test_skip("no IPv6 loopback here");
        return;
    }
    test_precopy_common(&args);
}

/*
 * A destination sends MIGRATION events as the events capability is at
 * each change, as QEMU does: turned on after migrate-incoming, the load's
 * active and completed still come (they did not: the capability was read
 * from migrate-incoming's snapshot, and a client waiting for completed
 * waited for good).
 */
static void test_events_after_incoming(void)
{
    g_autofree char *sock = mig_path("migsocket");
    g_autofree char *uri = g_strdup_printf("unix:%s", sock);
    MigrateCommon args = { .connect_uri = uri, .listen_uri = uri };
    QTestState *from, *to;
    bool active = false;

    migrate_start(&args, &from, &to);
    migrate_set_capability(to, "events", false);
    qtest_qmp_assert_success(to, "{'execute': 'migrate-incoming', 'arguments': {'uri': '%s'}}",
                             uri);
    migrate_set_capability(to, "events", true);
    migrate_ensure_converge(from);
    wait_for_serial("src_serial");
    migrate_qmp(from, uri, NULL);
    for (;;) {
        g_autoptr(JsonObject) ev = qtest_qmp_eventwait_ref(to, "MIGRATION");
        const char *st = qtest_json_get_str(qtest_json_get_obj(ev, "data"), "status");

        g_assert_cmpstr(st, !=, "setup");       /* sent while the capability was off */
        g_assert_cmpstr(st, !=, "failed");
        active |= !g_strcmp0(st, "active");
        if (!g_strcmp0(st, "completed")) {
            break;
        }
    }
    g_assert_true(active);
    wait_for_migration_complete(from);
    migrate_end(from, to, true);
}

/*
 * quit while the destination has just accepted a source that sends
 * nothing: it exits at once (the accepted channel, not yet the state's,
 * was loaded from after the stop, and the process waited for the peer).
 * The fault point holds the thread between the accept and the state.
 */
static void test_quit_during_accept(void)
{
    const char *env[] = { "MAPRAM_FAULT=incoming-accept-stall", NULL };
    QTestState *to = qtest_init_bin_env(qtest_vm_binary(), env,
                                        "-m 64M -S -incoming defer");
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };

    qtest_qmp_assert_success(to, "{'execute': 'migrate-incoming', "
                             "'arguments': {'uri': 'tcp:127.0.0.1:0'}}");
    a.sin_port = htons(mig_listen_port(to));
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    g_assert_cmpint(connect(fd, (struct sockaddr *)&a, sizeof(a)), ==, 0);
    g_usleep(300 * 1000);                   /* accepted, the thread in the stall */
    gint64 start = g_get_monotonic_time();
    qtest_quit(to);
    g_assert_cmpint(g_get_monotonic_time() - start, <, 5 * G_USEC_PER_SEC);
    close(fd);
}

/*
 * migrate-start-postcopy: QEMU's two refusals, then on a save under way
 * the answer that it goes on as precopy (it does, and completes), and no
 * error once it has ended.
 */
static void test_start_postcopy(void)
{
    static const char *const ungoals[] = { "failed", "cancelled", NULL };
    static const char cmd[] = "{'execute': 'migrate-start-postcopy'}";
    g_autofree char *sock = mig_path("migsocket");
    g_autofree char *uri = g_strdup_printf("unix:%s", sock);
    MigrateCommon args = { .connect_uri = uri, .listen_uri = uri };
    QTestState *from, *to;
    char *err;

    migrate_start(&args, &from, &to);
    err = qtest_qmp_expect_error(from, cmd);
    g_assert_cmpstr(err, ==, "Enable postcopy with migrate_set_capability before the start "
                    "of migration");
    g_free(err);
    migrate_set_capability(from, "postcopy-ram", true);
    err = qtest_qmp_expect_error(from, cmd);
    g_assert_cmpstr(err, ==, "Postcopy must be started after migration has been started");
    g_free(err);

    migrate_ensure_non_converge(from);
    wait_for_serial("src_serial");
    migrate_incoming_qmp(to, uri, NULL, NULL);
    migrate_qmp(from, uri, NULL);
    wait_for_migration_status(from, "active", ungoals);
    err = qtest_qmp_expect_error(from, cmd);
    g_assert_cmpstr(err, ==, "mapram-vm does not switch a migration to postcopy: it goes on "
                    "as precopy");
    g_free(err);
    g_autofree char *st = migrate_query_status(from);
    g_assert_cmpstr(st, ==, "active");
    migrate_ensure_converge(from);
    wait_for_migration_complete(from);
    wait_for_migration_complete(to);
    qtest_qmp_assert_success(from, cmd);
    assert_guest_runs(to);
    qtest_quit(from);
    qtest_quit(to);
}

/*
 * avail-switchover-bandwidth: a save that does not converge at the rate
 * it measures (downtime-limit 1 ms) switches over once told the link has
 * far more, as QEMU >= 8.2 counts on it instead of its estimate (mapram
 * stored and showed it, and went on iterating).
 */
static void test_precopy_avail_switchover_bandwidth(void)
{
    static const char *const ungoals[] = { "failed", "cancelled", "completed", NULL };
    g_autofree char *sock = mig_path("migsocket");
    g_autofree char *uri = g_strdup_printf("unix:%s", sock);
    MigrateCommon args = { 0 };
    QTestState *from, *to;

    migrate_start(&args, &from, &to);
    migrate_set_parameter_int(from, "max-bandwidth", 100 * 1000 * 1000);
    migrate_set_parameter_int(from, "downtime-limit", 1);
    wait_for_serial("src_serial");
    migrate_incoming_qmp(to, uri, NULL, NULL);
    migrate_qmp(from, uri, NULL);
    wait_for_migration_status(from, "active", ungoals);
    wait_for_migration_pass(from);
    wait_for_migration_pass(from);
    g_autofree char *st = migrate_query_status(from);
    g_assert_cmpstr(st, ==, "active");          /* the guest dirties more than 1 ms's worth */
    migrate_set_parameter_int(from, "avail-switchover-bandwidth", 1000LL * 1000 * 1000 * 1000);
    gint64 deadline = g_get_monotonic_time() + 20 * G_USEC_PER_SEC;
    for (;;) {
        g_free(st);
        st = migrate_query_status(from);
        if (strcmp(st, "active") != 0 || g_get_monotonic_time() > deadline) {
            break;
        }
        g_usleep(50 * 1000);
    }
    g_assert_cmpstr(st, !=, "active");
    wait_for_migration_complete(from);
    wait_for_migration_complete(to);
    assert_guest_runs(to);
    qtest_quit(from);
    qtest_quit(to);
}

/* The test's end of a stream save: read slowly (~30 MB/s) until told to hurry. */
typedef struct SlowReader {
    int fd;
    int hurry;                    /* atomic */
} SlowReader;

static gpointer slow_reader(gpointer opaque)
{
    SlowReader *r = opaque;
    static char buf[64 * 1024];

    while (read(r->fd, buf, sizeof(buf)) > 0) {
        if (!__atomic_load_n(&r->hurry, __ATOMIC_ACQUIRE)) {
            g_usleep(2000);
        }
    }
    return NULL;
}

/*
 * A stream save without a rate limit reports its progress during a pass
 * (it sent the whole pass in one iteration, and query-migrate's
 * transferred stayed at the header's 110 bytes until the pass ended).
 */
static void test_precopy_progress_unlimited(void)
{
    MigrateCommon args = { .start = { .only_source = true } };
    QTestState *from, *to;
    int pair[2];
    SlowReader r = { 0 };

    migrate_start(&args, &from, &to);
    g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), ==, 0);
    qtest_qmp_fds_assert_success(from, &pair[1], 1, "{'execute': 'getfd', "
                                 "'arguments': {'fdname': 'fd-mig'}}");
    close(pair[1]);
    r.fd = pair[0];
    GThread *t = g_thread_new("slow-reader", slow_reader, &r);
    migrate_set_parameter_int(from, "max-bandwidth", 0);
    wait_for_serial("src_serial");
    migrate_qmp(from, "fd:fd-mig", NULL);
    /* the first pass's 100 MB take ~3 s at the reader's pace */
    int64_t last = -1;
    unsigned rises = 0;
    for (unsigned i = 0; i < 40 && rises < 3; i++) {
        g_autoptr(JsonObject) info = migrate_query(from);
        const char *st = qtest_json_get_str(info, "status");
        if (!strcmp(st, "active") && json_object_has_member(info, "ram")) {
            JsonObject *ram = json_object_get_object_member(info, "ram");
            if (json_object_get_int_member(ram, "dirty-sync-count") == 1) {
                int64_t x = json_object_get_int_member(ram, "transferred");
                rises += last >= 0 && x > last;
                last = x;
            }
        }
        g_usleep(100 * 1000);
    }
    g_assert_cmpuint(rises, >=, 3);
    __atomic_store_n(&r.hurry, 1, __ATOMIC_RELEASE);
    migrate_set_parameter_int(from, "downtime-limit", 30 * 1000);
    wait_for_migration_complete(from);
    g_thread_join(t);
    close(pair[0]);
    qtest_quit(from);
}

/* The two ends of a socketpair handed to each side with getfd. */
static void fd_socketpair_hook(QTestState *from, QTestState *to,
                               MigrateCommon *args)
{
    int pair[2];

    g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair),
                    ==, 0);
    qtest_qmp_fds_assert_success(to, &pair[0], 1, "{'execute': 'getfd', "
                                 "'arguments': {'fdname': 'fd-mig'}}");
    qtest_qmp_fds_assert_success(from, &pair[1], 1, "{'execute': 'getfd', "
                                 "'arguments': {'fdname': 'fd-mig'}}");
    close(pair[0]);
    close(pair[1]);
    migrate_incoming_qmp(to, "fd:fd-mig", NULL, NULL);
}

static void test_precopy_fd(void)
{
    MigrateCommon args = {
        .connect_uri = "fd:fd-mig",
        .start_hook = fd_socketpair_hook,
    };

    test_precopy_common(&args);
}

/*
 * A save takes fd: names passed with getfd, never a number: fd:N would be
 * whatever the VM has open as N (here guest RAM's memfd among them), and
 * the stream would overwrite it.  Every fd the VM holds is refused, as
 * QEMU refuses it (the migration "failed"), and the guest's memory stays.
 */
static void test_precopy_fd_number_refused(void)
{
    QTestState *from = qtest_init_bin(qtest_vm_binary(),
        "-m 64M -machine memory-backend=mig.mem "
        "-object memory-backend-memfd,id=mig.mem,size=64M -S -guest ab "
        "-serial file:%s/src_serial", mig_tmpdir);
    g_autofree char *dir = g_strdup_printf("/proc/%d/fd", (int)qtest_pid(from));
    g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
    g_autofree uint8_t *before = guest_memread(from, mig_tmpdir, 0, 4096);
    const char *name;
    int refused = 0;
    bool memfd = false;

    g_assert_nonnull(d);
    while ((name = g_dir_read_name(d))) {
        g_autofree char *link = g_strdup_printf("%s/%s", dir, name);
        g_autofree char *target = g_file_read_link(link, NULL);
        g_autofree char *uri = g_strdup_printf("fd:%s", name);
        g_autofree char *want = g_strdup_printf("File descriptor named '%s' has not been "
                                                "found", name);
        g_autofree char *desc = NULL;

        memfd |= target && g_str_has_prefix(target, "/memfd:mig.mem");
        desc = migrate_qmp_expect_error(from, uri, NULL);
        g_assert_cmpstr(desc, ==, want);
        refused++;
    }
    g_assert_true(memfd);
    g_assert_cmpint(refused, >=, 4);
    g_autofree uint8_t *after = guest_memread(from, mig_tmpdir, 0, 4096);
    g_assert_cmpmem(before, 4096, after, 4096);
    g_autoptr(JsonObject) info = migrate_query(from);
    g_assert_cmpstr(qtest_json_get_str(info, "status"), ==, "failed");   /* as QEMU */
    g_assert_false(runstate_is_running(from));                               /* -S: untouched */
    qtest_quit(from);
}

/* fd: with a plain file on each side (QEMU's /migration/precopy/fd/file). */
static void fd_file_hook(QTestState *from, QTestState *to,
                         MigrateCommon *args)
{
    g_autofree char *file = mig_path(MIG_FILE_NAME);
    int src = open(file, O_CREAT | O_RDWR | O_CLOEXEC, 0600);
    int dst = open(file, O_CREAT | O_RDWR | O_CLOEXEC, 0600);

    g_assert_cmpint(src, >=, 0);
    g_assert_cmpint(dst, >=, 0);
    qtest_qmp_fds_assert_success(from, &src, 1, "{'execute': 'getfd', "
                                 "'arguments': {'fdname': 'fd-mig'}}");
    qtest_qmp_fds_assert_success(to, &dst, 1, "{'execute': 'getfd', "
                                 "'arguments': {'fdname': 'fd-mig'}}");
    close(src);
    close(dst);
}

static void test_precopy_fd_file(void)
{
    MigrateCommon args = {
        .connect_uri = "fd:fd-mig",
        .start_hook = fd_file_hook,
    };

    test_file_common(&args, true);
}

/*
 * A write error says what failed once, in QEMU's words: the channel's
 * message, not "Unable to write to command: Unable to write to command: ...".
 */
static void write_error_case(const char *uri, const char *want, int fd)
{
    g_autofree char *args = mig_vm_args("64M", "fill", "src_serial", NULL);
    QTestState *from = qtest_init_bin(qtest_vm_binary(), "%s", args);

    if (fd >= 0) {
        qtest_qmp_fds_assert_success(from, &fd, 1, "{'execute': 'getfd', "
                                     "'arguments': {'fdname': 'fd-mig'}}");
        close(fd);
    }
    migrate_qmp(from, uri, NULL);
    {
        g_autofree char *desc = wait_for_migration_fail(from);

        g_assert_cmpstr(desc, ==, want);
    }
    g_assert_true(runstate_is_running(from));
    qtest_quit(from);
}

/* The command exits at once: the next write finds the pipe closed. */
static void test_write_error_exec(void)
{
    write_error_case("exec:true", "Unable to write to command: Broken pipe", -1);
}

/*
 * An exec: command that ignores SIGTERM and outlives the save (it writes
 * its pid first, then execs a long sleep, keeping the pid): a failed save,
 * a cancel and a quit each end within the kill grace (2 s), not with the
 * command, and the command is gone (killed and reaped) by then.
 * how: "closed" closes its stdin (our next write fails), "blocked" never
 * reads (the save blocks on the full pipe), "drained" reads everything
 * and then lingers (the save waits for it at its close, past the point
 * where a cancel is a no-op: only a quit ends it).  exec: the command's
 * shell is our child, with nobody else holding the pipe.
 */
static char *stuck_command(const char *how, char **pidfile)
{
    g_autofree char *script = mig_path("stuck.sh");
    *pidfile = mig_path("stuck.pid");
    g_autofree char *text = g_strdup_printf(
        "trap '' TERM\n%s\necho $$ > %s.tmp && mv %s.tmp %s\nexec sleep 60\n",
        g_str_equal(how, "closed") ? "exec 0<&-" :
        g_str_equal(how, "drained") ? "cat > /dev/null" : ":",
        *pidfile, *pidfile, *pidfile);

    unlink(*pidfile);
    g_assert_true(g_file_set_contents(script, text, -1, NULL));
    return g_strdup_printf("exec:exec sh %s", script);
}

static pid_t stuck_pid(const char *pidfile)
{
    g_autofree char *text = NULL;

    for (int i = 0; i < 1000 && !g_file_get_contents(pidfile, &text, NULL, NULL); i++) {
        g_usleep(10 * 1000);
    }
    g_assert_nonnull(text);
    return atoi(text);
}

static void stuck_child_case(const char *how, const char *end)
{
    static const char *const no_goals[] = { "completed", NULL };
    g_autofree char *args = mig_vm_args("64M", "fill", "src_serial", NULL);
    QTestState *from = qtest_init_bin(qtest_vm_binary(), "%s", args);
    g_autofree char *pidfile = NULL;
    g_autofree char *uri = stuck_command(how, &pidfile);

    migrate_set_capability(from, "events", true);
    migrate_qmp(from, uri, NULL);
    pid_t pid = stuck_pid(pidfile);
    if (g_str_equal(how, "blocked")) {
        g_usleep(300 * 1000);                  /* the pipe is full, the write blocked */
    }
    gint64 t0 = g_get_monotonic_time();
    if (g_str_equal(end, "quit")) {
        qtest_quit(from);
        from = NULL;
    } else if (g_str_equal(end, "cancel")) {
        qtest_qmp_assert_success(from, "{'execute': 'migrate_cancel'}");
        wait_for_migration_status(from, "cancelled", no_goals);
    } else {
        g_autofree char *desc = wait_for_migration_fail(from);

        g_assert_cmpstr(desc, ==, "Unable to write to command: Broken pipe");
    }
    g_assert_cmpint(g_get_monotonic_time() - t0, <, 10 * G_USEC_PER_SEC);
    g_assert_cmpint(kill(pid, 0), ==, -1);     /* killed and reaped */
    g_assert_cmpint(errno, ==, ESRCH);
    if (from) {
        g_assert_true(runstate_is_running(from));
        qtest_quit(from);
    }
}

static void test_stuck_child_fail(void)
{
    stuck_child_case("closed", "fail");
}

static void test_stuck_child_cancel(void)
{
    stuck_child_case("blocked", "cancel");
}

static void test_stuck_child_quit(void)
{
    stuck_child_case("blocked", "quit");
}

static void test_stuck_child_quit_at_close(void)
{
    stuck_child_case("drained", "quit");
}

/*
 * A load from an exec: command that lingers after its stream (it writes
 * its pid, then sleeps): the load completes at once and the command is
 * stopped, as QEMU stops it, where the load waited for it to exit.
 */
static void test_lingering_producer(void)
{
    g_autofree char *path = mig_make_saved_file("stream.img", NULL, false);
    g_autofree char *script = mig_path("producer.sh");
    g_autofree char *pidfile = mig_path("producer.pid");
    g_autofree char *text = g_strdup_printf("cat %s\necho $$ > %s.tmp && mv %s.tmp %s\n"
                                            "exec sleep 60\n", path, pidfile, pidfile, pidfile);
    g_autofree char *uri = g_strdup_printf("exec:exec sh %s", script);
    g_autofree char *dst = mig_vm_args("150M", "ab", "dest_serial", "-incoming defer");
    QTestState *to = qtest_init_bin(qtest_vm_binary(), "%s", dst);

    g_assert_true(g_file_set_contents(script, text, -1, NULL));
    migrate_set_capability(to, "events", true);
    gint64 t0 = g_get_monotonic_time();
    migrate_incoming_qmp(to, uri, NULL, NULL);
    wait_for_migration_complete(to);
    g_assert_cmpint(g_get_monotonic_time() - t0, <, 10 * G_USEC_PER_SEC);
    pid_t pid = stuck_pid(pidfile);
    for (int i = 0; i < 500 && kill(pid, 0) == 0; i++) {
        g_usleep(10 * 1000);                   /* reaped right after the close */
    }
    g_assert_cmpint(kill(pid, 0), ==, -1);
    g_assert_cmpint(errno, ==, ESRCH);
    qtest_quit(to);
}

static void test_write_error_fd(void)
{
    int fd = open("/dev/full", O_WRONLY | O_CLOEXEC);

    g_assert_cmpint(fd, >=, 0);
    write_error_case("fd:fd-mig", "Unable to write to file: No space left on device", fd);
}

/*
 * QEMU's stream framing switches, honoured on both sides: with
 * send-configuration and send-section-footer off the file has no
 * configuration section and no footers, a VM set the same way loads it,
 * and one with the defaults refuses it with QEMU's words.
 */
#define FRAMING_OFF "-global migration.send-configuration=off " \
                    "-global migration.send-section-footer=off"

static void check_framing_off(QTestState *from, QTestState *to, MigrateCommon *args)
{
    g_autofree char *path = mig_path(MIG_FILE_NAME);
    g_autofree char *uri = g_strdup_printf("file:%s", path);
    g_autofree uint8_t *file = NULL;
    g_autofree char *desc = NULL;
    size_t len;
    QTestState *dflt;

    file = read_whole_file(path, &len);
    g_assert_cmpuint(len, >, 9);
    g_assert_cmphex(file[8], ==, 0x01);            /* the ram START, no configuration */

    dflt = qtest_init_bin(qtest_vm_binary(),
                          "-m 150M -machine memory-backend=mig.mem "
                          "-object memory-backend-ram,id=mig.mem,size=150M,share=off "
                          "-guest ab -serial file:%s/dflt_serial -incoming defer", mig_tmpdir);
    migrate_set_capability(dflt, "events", true);
    migrate_incoming_qmp(dflt, uri, NULL, "'exit-on-error': false");
    desc = wait_for_migration_fail(dflt);
    g_assert_cmpstr(desc, ==, "Configuration at offset 8: "
                    "Configuration section missing, 1 != 7");
    qtest_quit(dflt);
}

static void test_precopy_framing_off(void)
{
    g_autofree char *uri = mig_file_uri(MIG_FILE_NAME, NULL);
    MigrateCommon args = { .connect_uri = uri,
                           .start = { .opts_source = FRAMING_OFF, .opts_target = FRAMING_OFF },
                           .end_hook = check_framing_off };

    test_file_common(&args, true);
}

/*
 * return-path and switchover-ack on both sides: the destination answers
 * the source's PING, acknowledges the switchover and ends with SHUT 0,
 * and the source completes only then.  A destination that dropped the
 * return path would leave the source waiting, the test timing out.
 */
static void test_precopy_return_path(void)
{
    g_autofree char *sock = mig_path("migsocket");
    g_autofree char *uri = g_strdup_printf("unix:%s", sock);
    MigrateCommon args = { .connect_uri = uri, .listen_uri = uri,
                           .caps = { "return-path", "switchover-ack" } };

    test_precopy_common(&args);
}

/* A destination that takes the whole stream and never answers on the return path. */
static gpointer silent_destination(gpointer opaque)
{
    int lfd = GPOINTER_TO_INT(opaque);
    int fd = accept(lfd, NULL, NULL);
    char buf[65536];

    g_assert_cmpint(fd, >=, 0);
    while (read(fd, buf, sizeof(buf)) > 0) {
    }
    close(fd);
    return NULL;
}

/*
 * The stream's end is sent and the destination never says SHUT: the
 * source waits in device with the guest stopped; the monitor answers
 * meanwhile as QEMU's, which waits without its big lock (cont: "Migration
 * is not finalized yet", stop: nothing changes; both used to wait as long
 * as the destination was silent); migrate_cancel ends the wait, as QEMU's
 * does (it shuts the return path down), and the source runs again (it
 * stayed stopped for good, the cancel ignored).
 */
static void test_precopy_return_path_no_shut(void)
{
    g_autofree char *sock = mig_path("silent.sock");
    g_autofree char *uri = g_strdup_printf("unix:%s", sock);
    MigrateCommon args = { .start = { .only_source = true } };
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    QTestState *from, *to = NULL;

    int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    g_strlcpy(sun.sun_path, sock, sizeof(sun.sun_path));
    g_assert_cmpint(bind(lfd, (struct sockaddr *)&sun, sizeof(sun)), ==, 0);
    g_assert_cmpint(listen(lfd, 1), ==, 0);
    GThread *t = g_thread_new("silent", silent_destination, GINT_TO_POINTER(lfd));

    migrate_start(&args, &from, &to);
    migrate_set_capability(from, "return-path", true);
    migrate_ensure_converge(from);
    wait_for_serial("src_serial");
    migrate_qmp(from, uri, NULL);
    wait_for_migration_status(from, "device", (const char *const[]){ "failed", "cancelled",
                                                                      "completed", NULL });
    g_usleep(500 * 1000);                       /* the EOF is out: waiting for SHUT */
    g_autofree char *st = migrate_query_status(from);
    g_assert_cmpstr(st, ==, "device");
    qtest_qmp_assert_success(from, "{'execute': 'stop'}");
    g_autofree char *cont_err = qtest_qmp_expect_error(from, "{'execute': 'cont'}");
    g_assert_cmpstr(cont_err, ==, "Migration is not finalized yet");
    g_autofree char *rs_wait = query_runstate(from);
    g_assert_cmpstr(rs_wait, ==, "finish-migrate");
    qtest_qmp_assert_success(from, "{'execute': 'migrate_cancel'}");
    wait_for_migration_status(from, "cancelled", NULL);
    g_autofree char *rs = query_runstate(from);
    g_assert_cmpstr(rs, ==, "running");
    assert_guest_runs(from);
    qtest_quit(from);
    g_thread_join(t);
    close(lfd);
}

/*
 * A destination whose load fails at the device state (one vCPU against
 * the source's two), after the stream's EOF left the source: with a
 * return path its SHUT 1 fails the source's migration with QEMU's words,
 * and the source runs the guest again instead of stopping in
 * postmigrate with no copy of the guest running anywhere.
 */
static void test_precopy_return_path_dest_fails(void)
{
    g_autofree char *sock = mig_path("migsocket");
    g_autofree char *uri = g_strdup_printf("unix:%s", sock);
    MigrateCommon args = { .connect_uri = uri, .listen_uri = uri, .caps = { "return-path" },
                           .start = { .opts_source = "-smp 2", .opts_target = "-smp 1" } };
    QTestState *from, *to;

    migrate_start(&args, &from, &to);
    migrate_incoming_qmp(to, uri, NULL, "'exit-on-error': false");
    migrate_ensure_converge(from);
    wait_for_serial("src_serial");
    migrate_qmp(from, uri, NULL);
    g_autofree char *to_desc = wait_for_migration_fail(to);
    g_autofree char *from_desc = wait_for_migration_fail(from);
    g_assert_true(g_str_has_suffix(to_desc, "Unknown section or instance 'cpu' 1. Make sure "
                                   "that your current VM setup matches your saved VM setup, "
                                   "including any hotplugged devices"));
    g_assert_cmpstr(from_desc, ==, "Sibling indicated error 1");
    g_autoptr(JsonObject) st = qtest_qmp_assert_success_ref(from, "{'execute': 'query-status'}");
    g_assert_cmpstr(qtest_json_get_str(st, "status"), ==, "running");
    assert_guest_runs(from);
    qtest_quit(to);
    qtest_quit(from);
}

/*
 * The destination has read the whole stream and is slow to answer
 * (incoming-shut-stall: 2 s before its SHUT); meanwhile the source, in
 * device waiting for SHUT, is cancelled and its guest goes back as it was.  The
 * destination then finds the source's side closed and fails its load
 * instead of resuming the guest beside the source's (it wrote SHUT 0
 * into the dead connection, which the kernel took, and ran: a review saw
 * both copies of the guest running, in 1 of 15 random cancels).
 */
static void test_precopy_return_path_cancel_slow_dest(void)
{
    static const char *const ungoals[] = { "failed", "cancelled", "completed", NULL };
    /*
     * TCP: its write of SHUT into the closed connection succeeds (unix:
     * EPIPE).  -S: a small stream of zero pages, all read before the
     * cancel (a large one, still on its way when the source shut the
     * socket down, failed the load on its end instead, under TSan)
     */
    MigrateCommon args = { .caps = { "return-path" },
                           .start = { .opts_source = "-S", .mem_size = "32M",
                                      .env_target = (const char *const[]){
                                          "MAPRAM_FAULT=incoming-shut-stall", NULL } } };
    QTestState *from, *to;

    migrate_start(&args, &from, &to);
    g_autofree char *uri = mig_incoming_tcp(to, "'exit-on-error': false");
    migrate_qmp(from, uri, NULL);
    wait_for_migration_status(from, "device", ungoals);
    g_usleep(300 * 1000);                       /* the EOF is out: waiting for SHUT */
    g_autofree char *st = migrate_query_status(from);
    g_assert_cmpstr(st, ==, "device");
    qtest_qmp_assert_success(from, "{'execute': 'migrate_cancel'}");
    wait_for_migration_status(from, "cancelled", NULL);
    g_autofree char *src_rs = query_runstate(from);
    g_assert_cmpstr(src_rs, ==, "prelaunch");   /* back as it was (-S) */
    g_autofree char *to_desc = wait_for_migration_fail(to);
    g_assert_cmpstr(to_desc, ==, "The source closed the connection before the load's end "
                                 "(was the migration cancelled?)");
    assert_dest_not_resumed(to);
    qtest_quit(to);
    qtest_quit(from);
}

/*
 * A cancel that crosses the destination's SHUT 0 on the wire: the
 * destination saw the source's side open and answers 500 ms later
 * (incoming-shut-write-stall), while the source, cancelled meanwhile,
 * closes only its sending side and waits for that answer a while: the
 * SHUT 0 wins, the migration completes and the guest goes on at the
 * destination only (the source resumed its guest at once, and the
 * destination took the guest too: two copies).
 */
static void test_precopy_return_path_cancel_crosses_shut(void)
{
    static const char *const ungoals[] = { "failed", "cancelled", "completed", NULL };
    /* -S: a small stream of zero pages, loaded long before the cancel */
    MigrateCommon args = { .caps = { "return-path" },
                           .start = { .opts_source = "-S", .mem_size = "32M",
                                      .env_target = (const char *const[]){
                                          "MAPRAM_FAULT=incoming-shut-write-stall", NULL } } };
    QTestState *from, *to;

    migrate_start(&args, &from, &to);
    migrate_set_capability(to, "events", true);
    g_autofree char *uri = mig_incoming_tcp(to, "'exit-on-error': false");
    migrate_qmp(from, uri, NULL);
    wait_for_migration_status(from, "device", ungoals);
    g_usleep(200 * 1000);                       /* the destination is in its stall */
    qtest_qmp_assert_success(from, "{'execute': 'migrate_cancel'}");
    wait_for_migration_status(from, "completed", (const char *const[]){ "cancelled", "failed",
                                                                         NULL });
    wait_for_migration_complete(to);
    g_autofree char *src_rs = query_runstate(from);
    g_assert_cmpstr(src_rs, ==, "postmigrate");
    g_autofree char *dst_rs = query_runstate(to);
    g_assert_cmpstr(dst_rs, ==, "prelaunch");   /* as the source's guest was (-S) */
    qtest_quit(to);
    qtest_quit(from);
}

/*
 * pause-before-switchover: the save stops the guest and waits in
 * pre-switchover; meanwhile cont is refused and stop changes nothing (as
 * QEMU, whose big lock is dropped there: mapram-vm's monitor used to wait
 * out finish-migrate), migrate-continue names the state it expects, and
 * then the save completes (@cancel: migrate_cancel ends the wait
 * instead, and the source runs again).
 */
static void pause_before_switchover(bool cancel)
{
    static const char *const ungoals[] = { "failed", "cancelled", "completed", NULL };
    g_autofree char *sock = mig_path("migsocket");
    g_autofree char *uri = g_strdup_printf("unix:%s", sock);
    MigrateCommon args = { .connect_uri = uri, .listen_uri = uri };
    QTestState *from, *to;
    char *err;

    migrate_start(&args, &from, &to);
    migrate_set_capability(from, "pause-before-switchover", true);
    migrate_incoming_qmp(to, uri, NULL, "'exit-on-error': false");
    migrate_ensure_converge(from);
    wait_for_serial("src_serial");
    migrate_qmp(from, uri, NULL);
    wait_for_migration_status(from, "pre-switchover", ungoals);
    g_autofree char *rs = query_runstate(from);
    g_assert_cmpstr(rs, ==, "finish-migrate");
    err = qtest_qmp_expect_error(from, "{'execute': 'cont'}");
    g_assert_cmpstr(err, ==, "Migration is not finalized yet");
    g_free(err);
    qtest_qmp_assert_success(from, "{'execute': 'stop'}");
    err = qtest_qmp_expect_error(from, "{'execute': 'migrate-continue', "
                                 "'arguments': {'state': 'active'}}");
    g_assert_cmpstr(err, ==, "Migration not in expected state: pre-switchover");
    g_free(err);
    g_autofree char *st = migrate_query_status(from);
    g_assert_cmpstr(st, ==, "pre-switchover");
    if (cancel) {
        qtest_qmp_assert_success(from, "{'execute': 'migrate_cancel'}");
        wait_for_migration_status(from, "cancelled", NULL);
        g_autofree char *rs2 = query_runstate(from);
        g_assert_cmpstr(rs2, ==, "running");
        assert_guest_runs(from);
        qtest_quit(to);
        qtest_quit(from);
        return;
    }
    qtest_qmp_assert_success(from, "{'execute': 'migrate-continue', "
                             "'arguments': {'state': 'pre-switchover'}}");
    wait_for_migration_complete(from);
    wait_for_migration_complete(to);
    err = qtest_qmp_expect_error(from, "{'execute': 'migrate-continue', "
                                 "'arguments': {'state': 'pre-switchover'}}");
    g_assert_cmpstr(err, ==, "Migration not in expected state: completed");
    g_free(err);
    migrate_end(from, to, true);
}

static void test_pause_before_switchover(void)
{
    pause_before_switchover(false);
}

static void test_pause_before_switchover_cancel(void)
{
    pause_before_switchover(true);
}

/*
 * query-migrate's pages-per-second (each 100 ms window's pages) and
 * dirty-pages-rate (pages the running guest dirtied per second, over
 * periods of at least 1 s of passes) move during a live save, as
 * QEMU's do (they were always 0), and the rate reads 0 once completed.
 */
static void test_precopy_rates(void)
{
    static const char *const ungoals[] = { "failed", "cancelled", "completed", NULL };
    g_autofree char *sock = mig_path("migsocket");
    g_autofree char *uri = g_strdup_printf("unix:%s", sock);
    MigrateCommon args = { .connect_uri = uri, .listen_uri = uri };
    QTestState *from, *to;
    int64_t pps = 0, rate = 0;

    migrate_start(&args, &from, &to);
    migrate_set_parameter_int(from, "max-bandwidth", 100 * 1000 * 1000);
    migrate_set_parameter_int(from, "downtime-limit", 1);
    migrate_incoming_qmp(to, uri, NULL, NULL);
    wait_for_serial("src_serial");
    migrate_qmp(from, uri, NULL);
    wait_for_migration_status(from, "active", ungoals);
    gint64 deadline = g_get_monotonic_time() + (gint64)qtest_timeout_s() * G_USEC_PER_SEC;
    while (pps == 0 || rate == 0) {
        g_autoptr(JsonObject) info = migrate_query(from);
        JsonObject *ram = qtest_json_get_obj(info, "ram");

        g_assert_cmpstr(qtest_json_get_str(info, "status"), ==, "active");
        pps = MAX(pps, qtest_json_get_int(ram, "pages-per-second", -1));
        rate = MAX(rate, qtest_json_get_int(ram, "dirty-pages-rate", -1));
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        g_usleep(50 * 1000);
    }
    g_test_message("pages-per-second %" PRId64 ", dirty-pages-rate %" PRId64, pps, rate);
    g_assert_cmpint(pps, >, 0);
    g_assert_cmpint(rate, >, 0);
    migrate_ensure_converge(from);
    wait_for_migration_complete(from);
    g_autoptr(JsonObject) info = migrate_query(from);
    g_assert_cmpint(qtest_json_get_int(qtest_json_get_obj(info, "ram"), "dirty-pages-rate", -1),
                    ==, 0);
    migrate_end(from, to, true);
}

void migration_test_add_precopy(void)
{
    migration_test_add("/migration/precopy/rates", test_precopy_rates, MIG_SMOKE);
    migration_test_add("/migration/precopy/pause-before-switchover",
                       test_pause_before_switchover, MIG_SMOKE);
    migration_test_add("/migration/precopy/pause-before-switchover/cancel",
                       test_pause_before_switchover_cancel, MIG_FULL);
    migration_test_add("/migration/precopy/return-path", test_precopy_return_path, MIG_SMOKE);
    migration_test_add("/migration/precopy/return-path/cancel-slow-dest",
                       test_precopy_return_path_cancel_slow_dest, MIG_SMOKE);
    migration_test_add("/migration/precopy/return-path/cancel-crosses-shut",
                       test_precopy_return_path_cancel_crosses_shut, MIG_SMOKE);
    migration_test_add("/migration/precopy/return-path/no-shut",
                       test_precopy_return_path_no_shut, MIG_SMOKE);
    migration_test_add("/migration/precopy/return-path/dest-fails",
                       test_precopy_return_path_dest_fails, MIG_SMOKE);
    migration_test_add("/migration/precopy/framing-off", test_precopy_framing_off,
                       MIG_SMOKE);
    migration_test_add("/migration/precopy/fd-number-refused",
                       test_precopy_fd_number_refused, MIG_SMOKE);
    migration_test_add("/migration/precopy/exec", test_precopy_exec,
                       MIG_SMOKE);
    migration_test_add("/migration/precopy/unix/avail-switchover-bandwidth",
                       test_precopy_avail_switchover_bandwidth, MIG_FULL);
    migration_test_add("/migration/precopy/fd/progress-unlimited",
                       test_precopy_progress_unlimited, MIG_FULL);
    migration_test_add("/migration/precopy/unix", test_precopy_unix,
                       MIG_SMOKE);
    migration_test_add("/migration/precopy/tcp", test_precopy_tcp, MIG_FULL);
    migration_test_add("/migration/precopy/events-after-incoming", test_events_after_incoming,
                       MIG_SMOKE);
    migration_test_add("/migration/precopy/tcp/quit-during-accept", test_quit_during_accept,
                       MIG_SMOKE);
    migration_test_add("/migration/precopy/tcp/any-ipv6", test_precopy_tcp_any_ipv6, MIG_SMOKE);
    migration_test_add("/migration/precopy/start-postcopy", test_start_postcopy, MIG_FULL);
    migration_test_add("/migration/precopy/fd", test_precopy_fd, MIG_FULL);
    migration_test_add("/migration/precopy/write-error/exec", test_write_error_exec, MIG_FULL);
    migration_test_add("/migration/precopy/write-error/fd", test_write_error_fd, MIG_FULL);
    migration_test_add("/migration/precopy/exec/stuck-child/fail", test_stuck_child_fail,
                       MIG_SMOKE);
    migration_test_add("/migration/precopy/exec/stuck-child/cancel", test_stuck_child_cancel,
                       MIG_SMOKE);
    migration_test_add("/migration/precopy/exec/stuck-child/quit", test_stuck_child_quit,
                       MIG_SMOKE);
    migration_test_add("/migration/precopy/exec/stuck-child/quit-at-close",
                       test_stuck_child_quit_at_close, MIG_SMOKE);
    migration_test_add("/migration/precopy/exec/lingering-producer", test_lingering_producer,
                       MIG_SMOKE);
    migration_test_add("/migration/precopy/fd/file", test_precopy_fd_file,
                       MIG_FULL);
}
