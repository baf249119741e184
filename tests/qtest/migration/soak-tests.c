/*
 * Soak (issue #11, point 5).
 *
 * /migration/soak/round-trips: one running ab guest carried through many
 * consecutive live migrations, each into a fresh mapram-vm, cycling
 * through every transport and capability mix (stream and mapped-ram
 * files, offsets, multifd 1-8, direct-io, fdsets, x-fsync, no checksums,
 * fd:, exec:, unix:, tcp:).  After each trip the destination's guest
 * must run, and its memory must hold the ab invariant.
 *
 * /migration/soak/qmp-flood: one running VM with four QMP sockets, fed by
 * many client threads at once with well-formed commands (queries,
 * parameters, stop/cont, migrations and cancels, fds passed with getfd
 * and add-fd) and malformed input (each with the exact error QMP gives,
 * or cutting the connection: unterminated objects, bad bytes, deep
 * nesting, clients that leave without reading their replies).  It must
 * never crash; after a warm-up its fd count (/proc/PID/fd) must come back
 * to the same number and its RSS stay flat, and its guest must still run
 * with its memory intact.
 *
 *   MAPRAM_SOAK_TRIPS     round trips (default 13: each mix once, 7 in
 *                         sanitizer builds; make soak: 100)
 *   MAPRAM_SOAK_MIX       only this mix (0-12), every trip
 *   MAPRAM_SOAK_MESSAGES  QMP messages after the warm-up (default 20000,
 *                         5000 in sanitizer builds, 13x slower here;
 *                         make soak: 100000)
 *   MAPRAM_SOAK_CLIENTS   client threads (default 8)
 *   MAPRAM_SOAK_SEED      the flood's random seed (default: from the clock,
 *                         printed)
 */
#include "framework.h"
#include "tests.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <glib/gstdio.h>

/*
 * Sanitizer builds run 13 times slower here: CI runs them shorter, the
 * trips striding over the mixes so that the first 7 still cover half of
 * them (13 is prime: 13 trips cover all of them in either order).
 */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SOAK_SANITIZED 1
#define SOAK_TRIPS 7
#define SOAK_STRIDE 2
#define SOAK_MESSAGES 5000
#else
#define SOAK_SANITIZED 0
#define SOAK_TRIPS 13
#define SOAK_STRIDE 1
#define SOAK_MESSAGES 20000
#endif

static unsigned env_uint(const char *name, unsigned dflt)
{
    const char *v = g_getenv(name);

    return v && *v ? (unsigned)g_ascii_strtoull(v, NULL, 10) : dflt;
}

/* --- round trips ---------------------------------------------------------- */

typedef enum {
    SOAK_FILE,          /* file:PATH */
    SOAK_FDSET,         /* file:/dev/fdset/1,offset=4096 */
    SOAK_FD_FILE,       /* fd: naming a file, on each side */
    SOAK_EXEC,          /* exec:cat > PATH, exec:cat PATH */
    SOAK_UNIX,
    SOAK_TCP,           /* the destination listens on port 0 */
    SOAK_FD_SOCKET,     /* fd: naming each end of a socketpair */
} SoakTransport;

typedef struct SoakMix {
    const char *name;
    SoakTransport transport;
    bool mapped_ram;
    bool multifd;       /* channels 1..8, in turn */
    bool dio;           /* skipped where O_DIRECT is missing */
    bool offset;        /* offset=MIG_OFFSET (file, fdset) */
    bool no_checksums;  /* x-checksums off */
    bool fsync;         /* x-fsync on */
} SoakMix;

static const SoakMix soak_mixes[] = {
    { "file, stream", SOAK_FILE },
    { "file, stream, offset", SOAK_FILE, .offset = true },
    { "file, mapped-ram", SOAK_FILE, .mapped_ram = true },
    { "file, mapped-ram, offset, no checksums", SOAK_FILE,
      .mapped_ram = true, .offset = true, .no_checksums = true },
    { "file, mapped-ram, multifd", SOAK_FILE, .mapped_ram = true,
      .multifd = true },
    { "file, mapped-ram, multifd, direct-io, x-fsync", SOAK_FILE,
      .mapped_ram = true, .multifd = true, .dio = true, .fsync = true },
    { "fdset, mapped-ram, multifd, direct-io, offset", SOAK_FDSET,
      .mapped_ram = true, .multifd = true, .dio = true, .offset = true },
    { "fdset, stream, offset", SOAK_FDSET, .offset = true },
    { "fd (file), stream", SOAK_FD_FILE },
    { "exec, stream", SOAK_EXEC },
    { "unix, stream", SOAK_UNIX },
    { "tcp, stream", SOAK_TCP },
    { "fd (socketpair), stream", SOAK_FD_SOCKET },
};

typedef struct SoakRun {
    QTestState *vm;             /* the VM the guest runs in now */
    unsigned multifd_trips;     /* picks the next channel count */
    bool have_dio;
    int only_mix;               /* MAPRAM_SOAK_MIX, or -1 */
    unsigned per_mix[G_N_ELEMENTS(soak_mixes)];
    uint64_t bytes;             /* the sources' ram.transferred, summed */
} SoakRun;

static QTestState *soak_vm_start(unsigned n, const char *extra)
{
    g_autofree char *serial = g_strdup_printf("serial-%u", n);
    g_autofree char *args = mig_vm_args("150M", "ab", serial, extra);

    return qtest_init_bin(qtest_vm_binary(), "%s", args);
}

/* Every setting a mix touches, set both ways: a VM keeps the last ones. */
static void soak_apply(QTestState *who, const SoakMix *mix, int channels,
                       bool dio)
{
    migrate_set_capability(who, "events", true);
    migrate_set_capability(who, "mapped-ram", mix->mapped_ram);
    migrate_set_capability(who, "multifd", mix->multifd);
    if (mix->multifd) {
        migrate_set_parameter_int(who, "multifd-channels", channels);
    }
    migrate_set_parameter_bool(who, "direct-io", dio);
    migrate_set_parameter_bool(who, "x-checksums", !mix->no_checksums);
    migrate_set_parameter_bool(who, "x-fsync", mix->fsync);
}

static void soak_getfd(QTestState *who, int fd)
{
    qtest_qmp_fds_assert_success(who, &fd, 1, "{'execute': 'getfd', "
                                 "'arguments': {'fdname': 'fd-mig'}}");
    close(fd);
}

static uint64_t soak_transferred(QTestState *from)
{
    g_autoptr(JsonObject) info = migrate_query(from);

    return qtest_json_get_int(qtest_json_get_obj(info, "ram"), "transferred",
                              0);
}

static void soak_trip(SoakRun *run, unsigned trip)
{
    unsigned m = run->only_mix >= 0 ? (unsigned)run->only_mix
                                    : trip * SOAK_STRIDE %
                                      G_N_ELEMENTS(soak_mixes);
    const SoakMix *mix = &soak_mixes[m];
    bool dio = mix->dio && run->have_dio;
    int channels = mix->multifd ? 1 + (int)(run->multifd_trips++ % 8) : 0;
    g_autofree char *file = mig_path(MIG_FILE_NAME);
    g_autofree char *sock = mig_path("soak.sock");
    g_autofree char *out = NULL, *in = NULL;
    bool socket_like = mix->transport == SOAK_UNIX ||
                       mix->transport == SOAK_TCP ||
                       mix->transport == SOAK_FD_SOCKET;
    QTestState *from = run->vm, *to;

    g_test_message("trip %u: %s%s (multifd-channels %d)", trip + 1,
                   mix->name, mix->dio && !dio ? " (no O_DIRECT here)" : "",
                   channels);
    to = soak_vm_start(trip + 1, "-incoming defer");
    soak_apply(from, mix, channels, dio);
    soak_apply(to, mix, channels, dio);
    g_unlink(file);
    g_unlink(sock);
    if (mix->offset) {
        mig_file_offset_prepare(file);
    }

    switch (mix->transport) {
    case SOAK_FILE:
        out = g_strdup_printf("file:%s%s", file,
                              mix->offset ? ",offset=0x1000" : "");
        in = g_strdup(out);
        break;
    case SOAK_FDSET:
        for (int i = 0; i < (mix->multifd ? 2 : 1); i++) {
            int flags = dio && i == 1 ? O_DIRECT : 0;

            mig_add_fd(from, 1, file, O_CREAT | O_WRONLY | flags);
            mig_add_fd(to, 1, file, O_CREAT | O_RDONLY | flags);
        }
        out = g_strdup("file:/dev/fdset/1,offset=4096");
        in = g_strdup(out);
        break;
    case SOAK_FD_FILE:
        soak_getfd(from, open(file, O_CREAT | O_RDWR | O_CLOEXEC, 0600));
        soak_getfd(to, open(file, O_CREAT | O_RDWR | O_CLOEXEC, 0600));
        out = g_strdup("fd:fd-mig");
        in = g_strdup(out);
        break;
    case SOAK_EXEC:
        out = g_strdup_printf("exec:cat > %s", file);
        in = g_strdup_printf("exec:cat %s", file);
        break;
    case SOAK_UNIX:
        out = g_strdup_printf("unix:%s", sock);
        in = g_strdup(out);
        break;
    case SOAK_TCP:
        in = g_strdup("tcp:127.0.0.1:0");
        break;
    case SOAK_FD_SOCKET: {
        int pair[2];

        g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
                                   pair), ==, 0);
        soak_getfd(to, pair[0]);
        soak_getfd(from, pair[1]);
        out = g_strdup("fd:fd-mig");
        in = g_strdup(out);
        break;
    }
    }

    if (socket_like) {
        migrate_incoming_qmp(to, in, NULL, NULL);
        if (mix->transport == SOAK_TCP) {
            out = g_strdup_printf("tcp:127.0.0.1:%d", mig_listen_port(to));
        }
        /* One pass at least while the guest runs, as in precopy tests. */
        migrate_set_parameter_int(from, "max-bandwidth", 300 * 1000 * 1000);
        migrate_set_parameter_int(from, "downtime-limit", 1);
        migrate_qmp(from, out, NULL);
        wait_for_migration_pass(from);
        migrate_ensure_converge(from);
        wait_for_migration_complete(from);
        qtest_qmp_eventwait(to, "RESUME");
        wait_for_migration_complete(to);
    } else {
        /* A live save: the guest runs on while the file is written. */
        migrate_ensure_converge(from);
        migrate_qmp(from, out, NULL);
        wait_for_migration_complete(from);
        {
            g_autofree char *st = query_runstate(from);

            g_assert_cmpstr(st, ==, "postmigrate");
        }
        migrate_incoming_qmp(to, in, NULL, NULL);
        wait_for_migration_complete(to);
        qtest_qmp_eventwait(to, "RESUME");
    }
    run->bytes += soak_transferred(from);
    qtest_quit(from);
    if (mix->offset) {
        mig_file_offset_check(file);
    }
    if (mix->transport == SOAK_FDSET) {
        qtest_qmp_assert_success(to, "{'execute': 'remove-fd', "
                                 "'arguments': {'fdset-id': 1}}");
    }

    /* The guest runs on in its new VM, with its memory intact. */
    g_assert_true(runstate_is_running(to));
    assert_guest_runs(to);
    qtest_qmp_assert_success(to, "{'execute': 'stop'}");
    assert_guest_still(to);
    check_guests_ram(to);
    qtest_qmp_assert_success(to, "{'execute': 'cont'}");
    assert_guest_runs(to);
    run->vm = to;
    run->per_mix[m]++;
}

static void test_soak_round_trips(void)
{
    unsigned trips = env_uint("MAPRAM_SOAK_TRIPS", SOAK_TRIPS);
    SoakRun run = {
        .have_dio = probe_o_direct_support(mig_tmpdir),
        .only_mix = g_getenv("MAPRAM_SOAK_MIX")
                    ? (int)env_uint("MAPRAM_SOAK_MIX", 0) : -1,
    };
    gint64 t0 = g_get_monotonic_time();

    g_assert_cmpint(run.only_mix, <, (int)G_N_ELEMENTS(soak_mixes));
    run.vm = soak_vm_start(0, NULL);
    wait_for_serial("serial-0");
    for (unsigned i = 0; i < trips; i++) {
        soak_trip(&run, i);
    }
    qtest_quit(run.vm);
    g_test_message("%u round trips in %.1f s, %.2f GiB of RAM sent; "
                   "multifd trips %u", trips,
                   (g_get_monotonic_time() - t0) / 1e6,
                   run.bytes / (double)(1ULL << 30), run.multifd_trips);
    for (size_t m = 0; m < G_N_ELEMENTS(soak_mixes); m++) {
        g_test_message("  %3u x %s", run.per_mix[m], soak_mixes[m].name);
    }
}

/* --- QMP flood ------------------------------------------------------------ */

#define FLOOD_MONITORS 4


typedef struct Flood {
    char *sock[FLOOD_MONITORS];     /* immutable */
    char *save_uri;                 /* immutable: where migrations go */
    atomic_int budget;              /* messages left to send */
    atomic_uint seed;               /* next client's seed */
    /* Counters, summed over clients. */
    atomic_uint connections, well_formed, malformed, cut, migrations;
    atomic_uint fds_passed;
} Flood;

typedef struct FloodConn {
    int fd;
    GString *in;        /* bytes received, not yet split into lines */
} FloodConn;

static void flood_fail(const char *what, const char *detail)
{
    g_printerr("qmp-flood: %s: %s\n", what, detail);
    g_assert_not_reached();
}

static bool conn_open(FloodConn *c, const char *path)
{
    struct sockaddr_un a = { .sun_family = AF_UNIX };

    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    g_assert_cmpint(c->fd, >=, 0);
    g_strlcpy(a.sun_path, path, sizeof(a.sun_path));
    if (connect(c->fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        flood_fail("connect", g_strerror(errno));
    }
    c->in = g_string_new(NULL);
    return true;
}

static void conn_close(FloodConn *c)
{
    close(c->fd);
    g_string_free(c->in, TRUE);
}

static void conn_send(FloodConn *c, const void *buf, size_t len, int pass_fd)
{
    struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } u;
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };

    if (pass_fd >= 0) {
        struct cmsghdr *cm;

        memset(&u, 0, sizeof(u));
        msg.msg_control = u.buf;
        msg.msg_controllen = sizeof(u.buf);
        cm = CMSG_FIRSTHDR(&msg);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &pass_fd, sizeof(int));
    }
    while (iov.iov_len) {
        ssize_t n = sendmsg(c->fd, &msg, MSG_NOSIGNAL);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            flood_fail("send", g_strerror(errno));
        }
        iov.iov_base = (char *)iov.iov_base + n;
        iov.iov_len -= n;
        msg.msg_control = NULL;
        msg.msg_controllen = 0;
    }
}

/* The next line from the VM (without "\r\n"); fails after the timeout. */
static char *conn_line(FloodConn *c)
{
    gint64 deadline = g_get_monotonic_time() +
                      (gint64)qtest_timeout_s() * G_USEC_PER_SEC;

    for (;;) {
        char *nl = memchr(c->in->str, '\n', c->in->len);
        struct pollfd p = { .fd = c->fd, .events = POLLIN };
        char buf[4096];
        ssize_t n;

        if (nl) {
            size_t len = nl - c->in->str;
            char *line = g_strndup(c->in->str, len && nl[-1] == '\r' ? len - 1
                                                                     : len);

            g_string_erase(c->in, 0, len + 1);
            return line;
        }
        if (g_get_monotonic_time() > deadline) {
            flood_fail("no reply in time", c->in->str);
        }
        if (poll(&p, 1, 100) <= 0) {
            continue;
        }
        n = recv(c->fd, buf, sizeof(buf), 0);
        if (n <= 0) {
            flood_fail("connection closed by the VM", c->in->str);
        }
        g_string_append_len(c->in, buf, n);
    }
}

/* The reply to the last command (events skipped), parsed. */
static JsonObject *conn_reply(FloodConn *c)
{
    for (;;) {
        g_autofree char *line = conn_line(c);
        g_autoptr(JsonParser) p = json_parser_new();
        JsonObject *o;

        if (!json_parser_load_from_data(p, line, -1, NULL) ||
            !JSON_NODE_HOLDS_OBJECT(json_parser_get_root(p))) {
            flood_fail("reply is not a JSON object", line);
        }
        o = json_node_get_object(json_parser_get_root(p));
        if (json_object_has_member(o, "event")) {
            continue;
        }
        if (!json_object_has_member(o, "return") &&
            !(qtest_json_get_str(qtest_json_get_obj(o, "error"), "class") &&
              qtest_json_get_str(qtest_json_get_obj(o, "error"), "desc"))) {
            flood_fail("reply is neither a return nor an error", line);
        }
        return json_object_ref(o);
    }
}

/* Send @cmd and return the error desc (g_free), or NULL on success. */
static char *conn_cmd_fd(FloodConn *c, const char *cmd, int pass_fd)
{
    g_autoptr(JsonObject) r = NULL;

    conn_send(c, cmd, strlen(cmd), pass_fd);
    r = conn_reply(c);
    if (json_object_has_member(r, "return")) {
        return NULL;
    }
    return g_strdup(qtest_json_get_str(qtest_json_get_obj(r, "error"),
                                       "desc"));
}

static char *conn_cmd(FloodConn *c, const char *cmd)
{
    return conn_cmd_fd(c, cmd, -1);
}

static void expect_ok(FloodConn *c, const char *cmd)
{
    g_autofree char *err = conn_cmd(c, cmd);

    if (err) {
        g_autofree char *what = g_strdup_printf("'%s' failed", cmd);

        flood_fail(what, err);
    }
}

static void expect_error(FloodConn *c, const char *cmd, const char *desc)
{
    g_autofree char *err = conn_cmd(c, cmd);

    if (!err || strcmp(err, desc) != 0) {
        g_autofree char *what = g_strdup_printf("'%s' should fail with '%s'",
                                                cmd, desc);

        flood_fail(what, err ? err : "(it succeeded)");
    }
}

/* Success, or one of the errors a concurrent migration explains. */
static void expect_ok_or_busy(FloodConn *c, const char *cmd)
{
    g_autofree char *err = conn_cmd(c, cmd);

    if (err && strcmp(err, "There's a migration process in progress") != 0) {
        g_autofree char *what = g_strdup_printf("'%s' failed", cmd);

        flood_fail(what, err);
    }
}

/* Malformed messages with the exact error QMP answers. */
static const struct {
    const char *msg, *desc;
} flood_bad[] = {
    { "[]", "QMP input must be a JSON object" },
    { "{}", "QMP input lacks member 'execute'" },
    { "{\"execute\": 1}", "QMP input member 'execute' must be a string" },
    { "{\"execute\": \"query-status\", \"arguments\": []}",
      "QMP input member 'arguments' must be an object" },
    { "{\"execute\": \"query-status\", \"foo\": 1}",
      "QMP input member 'foo' is unexpected" },
    { "{\"exec-oob\": \"query-status\"}",
      "QMP input member 'exec-oob' is unexpected" },
    { "{\"execute\": \"no-such-command\"}",
      "The command no-such-command has not been found" },
    { "{\"execute\": \"migrate-set-parameters\", "
      "\"arguments\": {\"max-bandwidth\": \"x\"}}",
      "Parameter 'max-bandwidth' expects uint64" },
    { "{\"execute\": \"migrate-set-capabilities\", \"arguments\": "
      "{\"capabilities\": [{\"capability\": \"bogus\", \"state\": true}]}}",
      "Parameter 'capability' does not accept value 'bogus'" },
    { "{\"execute\": \"add-fd\", \"arguments\": {\"fdset-id\": 7}}",
      "No file descriptor supplied via SCM_RIGHTS" },
    { "{\"execute\": \"getfd\", \"arguments\": {\"fdname\": \"x\"}}",
      "No file descriptor supplied via SCM_RIGHTS" },
};

/* @take an fd (sent with it) named by @args, then @release it. */
static void flood_fd_pair(Flood *fl, FloodConn *c, const char *take,
                          const char *release, const char *args)
{
    g_autofree char *t = g_strdup_printf(
        "{\"execute\": \"%s\", \"arguments\": {%s}}", take, args);
    g_autofree char *rel = g_strdup_printf(
        "{\"execute\": \"%s\", \"arguments\": {%s}}", release, args);
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    g_autofree char *err = conn_cmd_fd(c, t, fd);

    close(fd);
    if (err) {
        flood_fail(take, err);
    }
    expect_ok(c, rel);
    atomic_fetch_add(&fl->fds_passed, 1);
}

/* One well-formed command (or pair) with its expected outcome. */
static void flood_well_formed(Flood *fl, FloodConn *c, GRand *r, int id)
{
    switch (g_rand_int_range(r, 0, 12)) {
    case 0:
        expect_ok(c, "{\"execute\": \"query-status\"}");
        break;
    case 1:
        expect_ok(c, "{\"execute\": \"query-migrate\"}");
        break;
    case 2:
        expect_ok(c, "{\"execute\": \"query-migrate-parameters\"}");
        break;
    case 3:
        expect_ok(c, "{\"execute\": \"query-migrate-capabilities\"}");
        break;
    case 4:
        expect_ok(c, "{\"execute\": \"query-fdsets\", \"id\": [1, {\"a\": 2}]}");
        break;
    case 5: {
        g_autofree char *cmd = g_strdup_printf(
            "{\"execute\": \"migrate-set-parameters\", \"arguments\": "
            "{\"downtime-limit\": %d, \"max-bandwidth\": %d}}",
            g_rand_int_range(r, 1, 2000),
            g_rand_int_range(r, 1 << 20, 1 << 30));

        expect_ok(c, cmd);
        break;
    }
    case 6:
        expect_ok_or_busy(c, "{\"execute\": \"migrate-set-capabilities\", "
                          "\"arguments\": {\"capabilities\": [{\"capability\":"
                          " \"events\", \"state\": true}]}}");
        break;
    case 7:
        /* Pause and resume the guest (a migration may be running). */
        expect_ok(c, "{\"execute\": \"stop\"}");
        expect_ok(c, "{\"execute\": \"cont\"}");
        break;
    case 8: {
        /* A named fd, then closed. */
        g_autofree char *name = g_strdup_printf("\"fdname\": \"soak%d\"", id);

        flood_fd_pair(fl, c, "getfd", "closefd", name);
        break;
    }
    case 9: {
        /* An fdset of its own, then removed. */
        g_autofree char *set = g_strdup_printf("\"fdset-id\": %d", 100 + id);

        flood_fd_pair(fl, c, "add-fd", "remove-fd", set);
        break;
    }
    case 10: {
        /* A save that another client (or this one, at once) may cancel. */
        g_autofree char *cmd = g_strdup_printf(
            "{\"execute\": \"migrate\", \"arguments\": {\"uri\": \"%s\"}}",
            fl->save_uri);
        g_autofree char *err = NULL;

        if (g_rand_int_range(r, 0, 8) != 0) {
            expect_ok(c, "{\"execute\": \"query-migrate\"}");
            break;
        }
        err = conn_cmd(c, cmd);
        /* Busy, or left in postmigrate by a save no cont followed yet. */
        if (err && strcmp(err, "There's a migration process in progress") &&
            strcmp(err, "Can't migrate the vm that was paused due to "
                        "previous migration")) {
            flood_fail("migrate", err);
        }
        if (!err) {
            atomic_fetch_add(&fl->migrations, 1);
        }
        if (g_rand_boolean(r)) {
            expect_ok(c, "{\"execute\": \"migrate_cancel\"}");
        }
        break;
    }
    default:
        /* The guest may be left in postmigrate by a finished save. */
        expect_ok(c, "{\"execute\": \"cont\"}");
        break;
    }
}

/* Input that leaves the connection unusable; the client then hangs up. */
static void flood_cut(FloodConn *c, GRand *r)
{
    switch (g_rand_int_range(r, 0, 6)) {
    case 0: {
        static const char s[] = "{\"execute\": \"query-st";

        conn_send(c, s, strlen(s), -1);
        break;
    }
    case 1: {
        char bytes[512];

        for (size_t i = 0; i < sizeof(bytes); i++) {
            bytes[i] = (char)g_rand_int(r);
        }
        conn_send(c, bytes, sizeof(bytes), -1);
        break;
    }
    case 2: {
        g_autofree char *deep = g_strnfill(5000, '[');

        conn_send(c, deep, strlen(deep), -1);
        break;
    }
    case 3: {
        /* A long string, never closed. */
        g_autofree char *s = g_strnfill(256 * 1024, 'x');

        conn_send(c, "{\"execute\": \"", 13, -1);
        conn_send(c, s, strlen(s), -1);
        break;
    }
    case 4: {
        /* Commands whose replies nobody reads. */
        for (int i = 0; i < 50; i++) {
            static const char q[] = "{\"execute\": \"query-migrate-parameters\"}";

            conn_send(c, q, strlen(q), -1);
        }
        break;
    }
    default: {
        /* An fd passed along with a command that does not take one. */
        int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        static const char q[] = "{\"execute\": \"query-status\"}";

        conn_send(c, q, strlen(q), fd);
        close(fd);
        break;
    }
    }
}

static gpointer flood_client(gpointer opaque)
{
    Flood *fl = opaque;
    unsigned seed = atomic_fetch_add(&fl->seed, 1);
    g_autoptr(GRand) r = g_rand_new_with_seed(seed);
    int id = (int)(seed & 0xffff);

    while (atomic_load(&fl->budget) > 0) {
        FloodConn c;
        int n = g_rand_int_range(r, 1, 30);
        g_autofree char *greeting = NULL;

        conn_open(&c, fl->sock[g_rand_int_range(r, 0, FLOOD_MONITORS)]);
        atomic_fetch_add(&fl->connections, 1);
        if (g_rand_int_range(r, 0, 20) == 0) {
            conn_close(&c);      /* gone before the greeting */
            continue;
        }
        greeting = conn_line(&c);
        if (!g_str_has_prefix(greeting, "{\"QMP\": {")) {
            flood_fail("greeting", greeting);
        }
        if (g_rand_int_range(r, 0, 10) == 0) {
            expect_error(&c, "{\"execute\": \"query-status\"}",
                         "Expecting capabilities negotiation with "
                         "'qmp_capabilities'");
        }
        expect_ok(&c, "{\"execute\": \"qmp_capabilities\"}");
        for (int i = 0; i < n && atomic_fetch_sub(&fl->budget, 1) > 0; i++) {
            int kind = g_rand_int_range(r, 0, 100);

            if (kind < 55) {
                flood_well_formed(fl, &c, r, id);
                atomic_fetch_add(&fl->well_formed, 1);
            } else if (kind < 95) {
                int k = g_rand_int_range(r, 0, G_N_ELEMENTS(flood_bad));

                expect_error(&c, flood_bad[k].msg, flood_bad[k].desc);
                atomic_fetch_add(&fl->malformed, 1);
            } else {
                flood_cut(&c, r);
                atomic_fetch_add(&fl->cut, 1);
                break;
            }
        }
        conn_close(&c);
    }
    return NULL;
}

static unsigned proc_fd_count(pid_t pid)
{
    g_autofree char *path = g_strdup_printf("/proc/%d/fd", (int)pid);
    DIR *d = opendir(path);
    struct dirent *e;
    unsigned n = 0;

    g_assert_nonnull(d);
    while ((e = readdir(d))) {
        n += e->d_name[0] != '.';
    }
    closedir(d);
    return n;
}

static uint64_t proc_rss_kib(pid_t pid)
{
    g_autofree char *path = g_strdup_printf("/proc/%d/status", (int)pid);
    g_autofree char *text = NULL;
    const char *p;

    g_assert_true(g_file_get_contents(path, &text, NULL, NULL));
    p = strstr(text, "VmRSS:");
    g_assert_nonnull(p);
    return g_ascii_strtoull(p + 6, NULL, 10);
}

/* No migration running, the guest running: the state fds are counted in. */
static void flood_settle(QTestState *vm)
{
    g_autofree char *st = NULL;

    qtest_qmp_assert_success(vm, "{'execute': 'migrate_cancel'}");
    for (;;) {
        g_free(st);
        st = migrate_query_status(vm);
        if (!strcmp(st, "none") || !strcmp(st, "completed") ||
            !strcmp(st, "failed") || !strcmp(st, "cancelled")) {
            break;
        }
        g_usleep(10 * 1000);
    }
    if (!runstate_is_running(vm)) {
        qtest_qmp_assert_success(vm, "{'execute': 'cont'}");
    }
}

static void flood_round(Flood *fl, unsigned messages, unsigned clients)
{
    GThread **t = g_new0(GThread *, clients);

    atomic_store(&fl->budget, (int)messages);
    for (unsigned i = 0; i < clients; i++) {
        t[i] = g_thread_new("qmp-flood", flood_client, fl);
    }
    for (unsigned i = 0; i < clients; i++) {
        g_thread_join(t[i]);
    }
    g_free(t);
}

/* The fd count comes back to @want once the VM saw every hang-up. */
static unsigned flood_fds_settle(pid_t pid, unsigned want)
{
    gint64 deadline = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
    unsigned n;

    while ((n = proc_fd_count(pid)) != want &&
           g_get_monotonic_time() < deadline) {
        g_usleep(20 * 1000);
    }
    return n;
}

static void test_soak_qmp_flood(void)
{
    unsigned messages = env_uint("MAPRAM_SOAK_MESSAGES", SOAK_MESSAGES);
    unsigned clients = env_uint("MAPRAM_SOAK_CLIENTS", 8);
    unsigned seed = env_uint("MAPRAM_SOAK_SEED",
                             (unsigned)g_get_real_time());
    unsigned warm = MAX(messages / 5, 2000);
    Flood fl = { 0 };
    g_autoptr(GString) extra = g_string_new(NULL);
    g_autofree char *save = mig_path("flood.mig");
    QTestState *vm;
    pid_t pid;
    unsigned fds0, fds1;
    uint64_t rss0, rss1;
    gint64 t0;

    g_test_message("seed %u (MAPRAM_SOAK_SEED), %u messages, %u clients",
                   seed, messages, clients);
    atomic_store(&fl.seed, seed);
    for (int i = 0; i < FLOOD_MONITORS; i++) {
        fl.sock[i] = g_strdup_printf("%s/qmp-%d.sock", mig_tmpdir, i);
        g_string_append_printf(extra, " -qmp unix:%s,server=on,wait=off",
                               fl.sock[i]);
    }
    fl.save_uri = g_strdup_printf("file:%s", save);
    vm = soak_vm_start(0, extra->str);
    pid = qtest_pid(vm);
    wait_for_serial("serial-0");
    migrate_ensure_converge(vm);

    /*
     * Warm-up: every path taken once, allocator arenas grown, and one
     * whole save, which reads every guest page (where the kernel has no
     * shared zero page, as this project's VMs boot with
     * pvm_no_zero_page=1, reading a never-written page allocates it).
     */
    flood_round(&fl, warm, clients);
    flood_settle(vm);
    /*
     * The flood left max-bandwidth and downtime-limit at whatever its last
     * migrate-set-parameters drew (down to 1 MiB/s and 1 ms): a live save
     * of the running guest at those would outlast the test's timeout.
     */
    migrate_ensure_converge(vm);
    migrate_qmp(vm, fl.save_uri, NULL);
    wait_for_migration_complete(vm);
    flood_settle(vm);
    fds0 = proc_fd_count(pid);
    rss0 = proc_rss_kib(pid);

    t0 = g_get_monotonic_time();
    flood_round(&fl, messages, clients);
    flood_settle(vm);
    fds1 = flood_fds_settle(pid, fds0);
    rss1 = proc_rss_kib(pid);
    g_test_message("%u messages after warm-up in %.1f s; in all: %u "
                   "connections, %u well-formed, %u malformed with an exact "
                   "error, %u cut short, %u migrations started, %u fds "
                   "passed; fds %u -> %u, RSS %" G_GUINT64_FORMAT " -> %"
                   G_GUINT64_FORMAT " KiB",
                   messages, (g_get_monotonic_time() - t0) / 1e6,
                   atomic_load(&fl.connections), atomic_load(&fl.well_formed),
                   atomic_load(&fl.malformed), atomic_load(&fl.cut),
                   atomic_load(&fl.migrations), atomic_load(&fl.fds_passed),
                   fds0, fds1, rss0, rss1);
    g_assert_cmpuint(fds1, ==, fds0);
    /* Sanitizers' quarantines grow RSS by design; LeakSanitizer checks. */
    if (!SOAK_SANITIZED) {
        g_assert_cmpuint(rss1, <=, rss0 + 16 * 1024);
    }

    /* Still alive and well: the guest runs, its memory intact. */
    g_assert_true(qtest_alive(vm));
    assert_guest_runs(vm);
    qtest_qmp_assert_success(vm, "{'execute': 'stop'}");
    check_guests_ram(vm);
    qtest_qmp_assert_success(vm, "{'execute': 'cont'}");
    qtest_quit(vm);
    for (int i = 0; i < FLOOD_MONITORS; i++) {
        g_free(fl.sock[i]);
    }
    g_free(fl.save_uri);
}

void migration_test_add_soak(void)
{
    migration_test_add("/migration/soak/round-trips", test_soak_round_trips,
                       MIG_FULL);
    migration_test_add("/migration/soak/qmp-flood", test_soak_qmp_flood,
                       MIG_FULL);
}
