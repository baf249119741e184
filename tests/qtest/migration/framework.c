/*
 * Migration test framework (see framework.h).
 */
#include "framework.h"
#include "tests.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib/gstdio.h>

const char *mig_tmpdir;

/* --- registration -------------------------------------------------------- */

typedef struct MigTest {
    char *path;
    void (*fn)(void);
} MigTest;

static void run_with_tmpdir(gconstpointer data)
{
    const MigTest *t = data;
    char *dir = qtest_mkdtemp("mig");

    mig_tmpdir = dir;
    t->fn();
    if (!g_getenv("MAPRAM_TEST_KEEP")) {
        qtest_rmtree(dir);
    } else {
        g_test_message("kept temp dir %s", dir);
    }
    mig_tmpdir = NULL;
    g_free(dir);
}

/*
 * MAPRAM_QTEST_ONLY=PATH registers only that exact test, so that meson
 * can run each path in a process of its own (GTest's -p also runs the
 * paths below it).
 */
static unsigned n_registered;

/* An explicitly named test runs whatever its tier. */
static bool wanted(const char *path, MigTier tier)
{
    const char *only = g_getenv("MAPRAM_QTEST_ONLY");

    if (only && *only) {
        return strcmp(only, path) == 0;
    }
    return tier == MIG_SMOKE || qtest_full_tier();
}

unsigned migration_test_count(void)
{
    return n_registered;
}

void migration_test_add_data(const char *path, gconstpointer data,
                             GTestDataFunc fn, MigTier tier)
{
    if (wanted(path, tier)) {
        n_registered++;
        g_test_add_data_func(path, data, fn);
    }
}

static void mig_test_free(gpointer p)
{
    MigTest *t = p;

    g_free(t->path);
    g_free(t);
}

/*
 * The registered tests' data, freed at exit (GTest's list mode, -l,
 * exits without freeing its suites): leak checks with
 * G_SLICE=always-malloc see every allocation.
 */
static GPtrArray *mig_tests;

static void mig_tests_free(void)
{
    g_clear_pointer(&mig_tests, g_ptr_array_unref);
}

void migration_test_add(const char *path, void (*fn)(void), MigTier tier)
{
    MigTest *t;

    if (!wanted(path, tier)) {
        return;
    }
    n_registered++;
    t = g_new0(MigTest, 1);
    t->path = g_strdup(path);
    t->fn = fn;
    if (!mig_tests) {
        mig_tests = g_ptr_array_new_with_free_func(mig_test_free);
        atexit(mig_tests_free);
    }
    g_ptr_array_add(mig_tests, t);
    g_test_add_data_func(path, t, run_with_tmpdir);
}

/* --- paths and processes ------------------------------------------------- */

char *mig_path(const char *name)
{
    g_assert(mig_tmpdir);
    return g_build_filename(mig_tmpdir, name, NULL);
}

char *mig_file_uri(const char *name, const char *suffix)
{
    g_autofree char *p = mig_path(name);

    return g_strdup_printf("file:%s%s", p, suffix ? suffix : "");
}

char *mig_vm_args(const char *mem, const char *guest, const char *serial,
                  const char *extra)
{
    return g_strdup_printf("-m %s -machine memory-backend=mig.mem "
                           "-object memory-backend-ram,id=mig.mem,size=%s,"
                           "share=off -guest %s -serial file:%s/%s %s",
                           mem, mem, guest, mig_tmpdir, serial,
                           extra ? extra : "");
}

void migrate_apply_caps(QTestState *who, MigrateCommon *args)
{
    migrate_set_capability(who, "events", true);
    for (size_t i = 0; i < G_N_ELEMENTS(args->caps) && args->caps[i]; i++) {
        migrate_set_capability(who, args->caps[i], true);
    }
    if (args->multifd_channels > 0) {
        migrate_set_parameter_int(who, "multifd-channels",
                                  args->multifd_channels);
    }
    if (args->direct_io) {
        migrate_set_parameter_bool(who, "direct-io", true);
    }
}

/* `ip`, for `ip netns ...` (root's PATH has it; others may not). */
static const char *ip_binary(void)
{
    static const char *const dirs[] = { "/usr/sbin/ip", "/sbin/ip",
                                        "/usr/bin/ip", "/bin/ip" };

    for (size_t i = 0; i < G_N_ELEMENTS(dirs); i++) {
        if (g_file_test(dirs[i], G_FILE_TEST_IS_EXECUTABLE)) {
            return dirs[i];
        }
    }
    return "ip";
}

/* A mapram-vm with @args, in network namespace @netns when not NULL. */
static QTestState *start_vm(const char *netns, const char *const *env,
                            const char *args)
{
    if (!netns) {
        return qtest_init_bin_env(qtest_vm_binary(), env, "%s", args);
    }
    /* ip execs the VM in place: the child's pid is the VM's */
    return qtest_init_bin_env(ip_binary(), env, "netns exec %s %s %s", netns,
                              qtest_vm_binary(), args);
}

void migrate_start(MigrateCommon *args, QTestState **from, QTestState **to)
{
    const MigrateStart *st = &args->start;
    const char *mem = st->mem_size ? st->mem_size : "150M";
    const char *guest = st->guest ? st->guest : "ab";
    g_autofree char *src = mig_vm_args(mem, guest, "src_serial",
                                       st->opts_source);

    *from = start_vm(st->netns_source, st->env_source, src);
    migrate_apply_caps(*from, args);
    if (st->only_source) {
        *to = NULL;
        return;
    }
    {
        g_autofree char *extra = g_strdup_printf("-incoming %s %s",
            st->incoming ? st->incoming : "defer",
            st->opts_target ? st->opts_target : "");
        g_autofree char *dst = mig_vm_args(st->dst_mem_size ? st->dst_mem_size
                                                            : mem,
                                           guest, "dest_serial", extra);

        *to = start_vm(st->netns_target, st->env_target, dst);
    }
    migrate_apply_caps(*to, args);
}

/* --- guest checks -------------------------------------------------------- */

void wait_for_serial(const char *side)
{
    g_autofree char *path = mig_path(side);
    gint64 deadline = g_get_monotonic_time() +
                      (gint64)qtest_timeout_s() * G_USEC_PER_SEC;

    for (;;) {
        g_autofree char *text = NULL;
        gsize len = 0;

        if (g_file_get_contents(path, &text, &len, NULL)) {
            for (gsize i = 0; i < len; i++) {
                if (text[i] == 'B') {
                    return;
                }
                if (text[i] != 'A') {
                    qtest_fail(NULL, "unexpected byte 0x%02x at %zu on %s",
                               (unsigned char)text[i], (size_t)i, side);
                }
            }
        }
        if (g_get_monotonic_time() > deadline) {
            qtest_fail(NULL, "no 'B' on %s within %d s (%zu bytes: '%s')",
                       side, qtest_timeout_s(), (size_t)len,
                       text ? text : "");
        }
        g_usleep(1000);
    }
}

void check_ab_pattern(const uint8_t *mem, uint64_t len, const char *who)
{
    g_autoptr(GError) err = NULL;

    if (!ab_pattern_check(mem, MIG_TEST_START, len, &err)) {
        qtest_fail(NULL, "%s: %s", who, err->message);
    }
}

void check_guests_ram(QTestState *who)
{
    g_autofree uint8_t *mem = guest_memread(who, mig_tmpdir, MIG_TEST_START,
                                            MIG_TEST_END - MIG_TEST_START);

    check_ab_pattern(mem, MIG_TEST_END - MIG_TEST_START, "guest");
}

void assert_guest_runs(QTestState *who)
{
    uint8_t a = guest_memread_u8(who, mig_tmpdir, MIG_TEST_START), b;
    gint64 deadline = g_get_monotonic_time() +
                      (gint64)qtest_timeout_s() * G_USEC_PER_SEC;

    /* A running ab guest keeps changing its first page. */
    do {
        g_usleep(10 * 1000);
        b = guest_memread_u8(who, mig_tmpdir, MIG_TEST_START);
        if (g_get_monotonic_time() > deadline) {
            qtest_fail(who, "guest does not run: byte at 1 MiB stays 0x%02x",
                       a);
        }
    } while (a == b);
}

void assert_guest_still(QTestState *who)
{
    uint8_t c = guest_memread_u8(who, mig_tmpdir, MIG_TEST_START), d;

    g_usleep(200 * 1000);
    d = guest_memread_u8(who, mig_tmpdir, MIG_TEST_START);
    g_assert_cmpint(c, ==, d);
}

void migrate_end(QTestState *from, QTestState *to, bool test_dest)
{
    qtest_quit(from);
    if (test_dest) {
        assert_guest_runs(to);
        qtest_qmp_assert_success(to, "{'execute': 'stop'}");
        assert_guest_still(to);
        check_guests_ram(to);
    }
    qtest_quit(to);
}

/*
 * @desc is @before, a number ("0x" and lower-case hex digits when @hex,
 * else decimal digits), then @after.
 */
static bool msg_has_number(const char *desc, const char *before,
                           const char *after, bool hex, uint64_t *value)
{
    size_t lb = strlen(before), la = strlen(after), ld = strlen(desc);
    size_t skip = hex ? 2 : 0;
    const char *num = desc + lb;

    if (ld < lb + skip + 1 + la || strncmp(desc, before, lb) != 0 ||
        strcmp(desc + ld - la, after) != 0 ||
        (hex && strncmp(num, "0x", 2) != 0)) {
        return false;
    }
    for (size_t i = skip; i < ld - lb - la; i++) {
        if (hex ? !g_ascii_isxdigit(num[i]) || g_ascii_isupper(num[i])
                : !g_ascii_isdigit(num[i])) {
            return false;
        }
    }
    *value = g_ascii_strtoull(num + skip, NULL, hex ? 16 : 10);
    return true;
}

uint64_t assert_msg_hex(const char *desc, const char *before,
                        const char *after)
{
    uint64_t value = 0;

    if (!msg_has_number(desc, before, after, true, &value)) {
        qtest_fail(NULL, "error '%s' is not '%s0x<hex>%s'", desc, before,
                   after);
    }
    return value;
}

uint64_t assert_msg_dec(const char *desc, const char *before,
                        const char *after)
{
    uint64_t value = 0;

    if (!msg_has_number(desc, before, after, false, &value)) {
        qtest_fail(NULL, "error '%s' is not '%s<decimal>%s'", desc, before,
                   after);
    }
    return value;
}

void assert_source_intact(QTestState *from)
{
    g_autofree char *st = query_runstate(from);

    g_assert_cmpstr(st, ==, "running");
    qtest_qmp_assert_success(from, "{'execute': 'stop'}");
    check_guests_ram(from);
    qtest_qmp_assert_success(from, "{'execute': 'cont'}");
    g_assert_true(runstate_is_running(from));
}

void assert_dest_not_resumed(QTestState *to)
{
    JsonObject *resume;

    if (!qtest_alive(to)) {
        return;
    }
    g_assert_false(runstate_is_running(to));
    qtest_qmp_pump_events(to);
    resume = qtest_qmp_event_ref(to, "RESUME");
    if (resume) {
        json_object_unref(resume);
        qtest_fail(to, "destination emitted RESUME after a failed load");
    }
}

int mig_listen_port(QTestState *to)
{
    return mig_listen_port_on(to, "127.0.0.1");
}

char *mig_incoming_tcp(QTestState *to, const char *extra)
{
    migrate_incoming_qmp(to, "tcp:127.0.0.1:0", NULL, extra);
    return g_strdup_printf("tcp:127.0.0.1:%d", mig_listen_port(to));
}

int mig_listen_unix(const char *path)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    g_assert_cmpint(lfd, >=, 0);
    g_strlcpy(sun.sun_path, path, sizeof(sun.sun_path));
    g_assert_cmpint(bind(lfd, (struct sockaddr *)&sun, sizeof(sun)), ==, 0);
    g_assert_cmpint(listen(lfd, 1), ==, 0);
    return lfd;
}

int mig_listen_port_on(QTestState *to, const char *host)
{
    g_autoptr(JsonObject) info = migrate_query(to);
    JsonNode *addrs = json_object_get_member(info, "socket-address");
    JsonObject *a;

    g_assert_nonnull(addrs);
    g_assert_true(JSON_NODE_HOLDS_ARRAY(addrs));
    a = json_array_get_object_element(json_node_get_array(addrs), 0);
    g_assert_cmpstr(qtest_json_get_str(a, "type"), ==, "inet");
    g_assert_cmpstr(qtest_json_get_str(a, "host"), ==, host);
    return atoi(qtest_json_get_str(a, "port"));
}

/* --- network namespaces -------------------------------------------------- */

/*
 * Run `ip ARGS...`; true on success, else false with its stderr (or why
 * it did not run) in *@why.
 */
static bool run_ip(char **why, const char *const *args)
{
    g_autoptr(GPtrArray) argv = g_ptr_array_new();
    g_autoptr(GError) err = NULL;
    g_autofree char *out = NULL, *errtext = NULL;
    int status = 0;

    g_ptr_array_add(argv, (char *)ip_binary());
    for (; *args; args++) {
        g_ptr_array_add(argv, (char *)*args);
    }
    g_ptr_array_add(argv, NULL);
    if (!g_spawn_sync(NULL, (char **)argv->pdata, NULL, G_SPAWN_DEFAULT,
                      NULL, NULL, &out, &errtext, &status, &err)) {
        *why = g_strdup(err->message);
        return false;
    }
    if (!g_spawn_check_wait_status(status, &err)) {
        g_autofree char *line = g_strjoinv(" ", (char **)argv->pdata);

        *why = g_strdup_printf("'%s': %s", line,
                               errtext && *g_strstrip(errtext) ? errtext
                                                                : err->message);
        return false;
    }
    return true;
}

/* The namespaces' setup after they exist; false with *@why on a failure. */
static bool netns_configure(MigNetns *n, char **why)
{
    static const char *const addr[2] = { MIG_NETNS_SRC_ADDR "/24",
                                         MIG_NETNS_DST_ADDR "/24" };
    static const char *const addr6[2] = { MIG_NETNS_SRC_ADDR6 "/64",
                                          MIG_NETNS_DST_ADDR6 "/64" };
    g_autofree char *retries = g_strdup_printf(
        "echo %d > /proc/sys/net/ipv4/tcp_retries2", MIG_NETNS_TCP_RETRIES2);

    if (!run_ip(why, (const char *const[]){ "link", "add", n->dev[0],
                "netns", n->ns[0], "type", "veth", "peer", "name",
                n->dev[1], "netns", n->ns[1], NULL })) {
        return false;
    }
    for (int i = 0; i < 2; i++) {
        if (!run_ip(why, (const char *const[]){ "-n", n->ns[i], "addr",
                    "add", addr[i], "dev", n->dev[i], NULL }) ||
            !run_ip(why, (const char *const[]){ "-n", n->ns[i], "addr",
                    "add", addr6[i], "dev", n->dev[i], "nodad", NULL }) ||
            !run_ip(why, (const char *const[]){ "-n", n->ns[i], "link",
                    "set", n->dev[i], "up", NULL }) ||
            !run_ip(why, (const char *const[]){ "-n", n->ns[i], "link",
                    "set", "lo", "up", NULL }) ||
            !run_ip(why, (const char *const[]){ "netns", "exec", n->ns[i],
                    "/bin/sh", "-c", retries, NULL })) {
            return false;
        }
    }
    return true;
}

bool mig_netns_setup(MigNetns *n)
{
    g_autofree char *why = NULL;

    memset(n, 0, sizeof(*n));
    if (geteuid() != 0) {
        g_autofree char *msg = g_strdup_printf(
            "making network namespaces needs root (this is uid %d)",
            (int)geteuid());

        g_test_skip(msg);
        return false;
    }
    for (int i = 0; i < 2; i++) {
        g_autofree char *path = NULL;

        g_snprintf(n->ns[i], sizeof(n->ns[i]), "mrq%d%c", (int)getpid(),
                   i ? 'd' : 's');
        g_snprintf(n->dev[i], sizeof(n->dev[i]), "%sv", n->ns[i]);
        path = g_strdup_printf("/run/netns/%s", n->ns[i]);
        /* left by a process of the same pid that was SIGKILLed */
        if (g_file_test(path, G_FILE_TEST_EXISTS)) {
            run_ip(&why, (const char *const[]){ "netns", "del", n->ns[i],
                   NULL });
            g_clear_pointer(&why, g_free);
        }
        if (!run_ip(&why, (const char *const[]){ "netns", "add", n->ns[i],
                    NULL })) {
            g_autofree char *msg = g_strdup_printf(
                "cannot make network namespaces here: %s", why);

            n->ns[i][0] = '\0';
            mig_netns_teardown(n);
            g_test_skip(msg);
            return false;
        }
        qtest_track_netns(n->ns[i]);
    }
    if (!netns_configure(n, &why)) {
        qtest_fail(NULL, "setting up network namespaces %s and %s: %s",
                   n->ns[0], n->ns[1], why);
    }
    return true;
}

void mig_netns_teardown(MigNetns *n)
{
    for (int i = 0; i < 2; i++) {
        g_autofree char *why = NULL;

        if (!n->ns[i][0]) {
            continue;
        }
        if (!run_ip(&why, (const char *const[]){ "netns", "del", n->ns[i],
                    NULL })) {
            g_test_message("deleting network namespace %s: %s", n->ns[i],
                           why);
        }
        qtest_untrack_netns(n->ns[i]);
        n->ns[i][0] = '\0';
    }
}

void mig_netns_link(MigNetns *n, int side, bool up)
{
    g_autofree char *why = NULL;

    if (!run_ip(&why, (const char *const[]){ "-n", n->ns[side], "link",
                "set", n->dev[side], up ? "up" : "down", NULL })) {
        qtest_fail(NULL, "%s", why);
    }
}

int mig_netns_connect(MigNetns *n, int side, const char *addr, int port)
{
    g_autofree char *path = g_strdup_printf("/run/netns/%s", n->ns[side]);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
    int home = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    int there = open(path, O_RDONLY | O_CLOEXEC);
    int fd;

    g_assert_cmpint(home, >=, 0);
    g_assert_cmpint(there, >=, 0);
    g_assert_cmpint(inet_pton(AF_INET, addr, &sa.sin_addr), ==, 1);
    if (setns(there, CLONE_NEWNET) < 0) {
        qtest_fail(NULL, "setns into %s: %s", n->ns[side], g_strerror(errno));
    }
    /* a socket belongs to the namespace it was made in */
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    g_assert_cmpint(setns(home, CLONE_NEWNET), ==, 0);
    close(there);
    close(home);
    g_assert_cmpint(fd, >=, 0);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        qtest_fail(NULL, "connect to %s:%d from %s: %s", addr, port, n->ns[side],
                   g_strerror(errno));
    }
    return fd;
}

/* --- files --------------------------------------------------------------- */

void mig_add_fd(QTestState *who, int fdset_id, const char *path, int flags)
{
    int fd = open(path, flags | O_CLOEXEC, 0660);
    g_autoptr(JsonNode) r = NULL;
    JsonObject *ret;

    g_assert_cmpint(fd, >=, 0);
    r = qtest_qmp_fds(who, &fd, 1, "{'execute': 'add-fd', "
                      "'arguments': {'fdset-id': %d}}", fdset_id);
    ret = qtest_json_get_obj(json_node_get_object(r), "return");
    if (!ret) {
        g_autofree char *text = qtest_json_text(r);

        qtest_fail(who, "add-fd failed: %s", text);
    }
    g_assert_cmpint(qtest_json_get_int(ret, "fdset-id", -1), ==, fdset_id);
    /* The process holds its own copy now. */
    close(fd);
}

void mig_file_offset_prepare(const char *path)
{
    g_autofree char *x = g_malloc(MIG_OFFSET);
    g_autoptr(GError) err = NULL;

    memset(x, 'X', MIG_OFFSET);
    if (!g_file_set_contents(path, x, MIG_OFFSET, &err)) {
        g_error("writing '%s': %s", path, err->message);
    }
}

void mig_file_offset_check(const char *path)
{
    size_t len = 0;
    g_autofree uint8_t *data = read_whole_file(path, &len);
    uint32_t magic;

    g_assert_cmpuint(len, >, MIG_OFFSET + 8);
    for (size_t i = 0; i < MIG_OFFSET; i++) {
        if (data[i] != 'X') {
            g_error("byte %zu before the offset is 0x%02x, not 'X'", i,
                    data[i]);
        }
    }
    magic = (uint32_t)data[MIG_OFFSET] << 24 | data[MIG_OFFSET + 1] << 16 |
            data[MIG_OFFSET + 2] << 8 | data[MIG_OFFSET + 3];
    g_assert_cmphex(magic, ==, MIG_OFFSET_MAGIC);
}

bool probe_o_direct_support(const char *dir)
{
    g_autofree char *path = g_build_filename(dir, "probe-o-direct", NULL);
    void *buf = NULL;
    size_t len = 1 << 20;
    int fd;
    ssize_t n;

    fd = open(path, O_CREAT | O_RDWR | O_TRUNC | O_DIRECT, 0600);
    if (fd < 0) {
        return false;
    }
    if (posix_memalign(&buf, len, len) != 0) {
        close(fd);
        return false;
    }
    memset(buf, 0, len);
    n = pwrite(fd, buf, len, len);
    free(buf);
    close(fd);
    g_unlink(path);
    return n == (ssize_t)len;
}

/* --- round trips --------------------------------------------------------- */

static bool uri_has_offset(const char *uri)
{
    return uri && strstr(uri, "offset=");
}

void test_file_common(MigrateCommon *args, bool stop_src)
{
    QTestState *from, *to;
    g_autofree char *file = mig_path(MIG_FILE_NAME);
    g_autofree uint8_t *src_ram = NULL;
    bool check_offset = uri_has_offset(args->connect_uri);

    if (check_offset) {
        mig_file_offset_prepare(file);
    }
    migrate_start(args, &from, &to);
    migrate_ensure_converge(from);
    if (args->start_hook) {
        args->start_hook(from, to, args);
    }
    wait_for_serial("src_serial");
    if (stop_src) {
        qtest_qmp_assert_success(from, "{'execute': 'stop'}");
        qtest_qmp_eventwait(from, "STOP");
    }
    if (args->result == MIG_TEST_QMP_ERROR) {
        g_autofree char *desc = migrate_qmp_expect_error(from,
            args->connect_uri, args->connect_channels);

        g_assert_cmpstr(desc, ==, args->expected_error);
        if (stop_src) {
            qtest_qmp_assert_success(from, "{'execute': 'cont'}");
        }
        assert_source_intact(from);
        qtest_quit(to);
        qtest_quit(from);
        return;
    }
    migrate_qmp(from, args->connect_uri, args->connect_channels);
    wait_for_migration_complete(from);
    {
        g_autofree char *st = query_runstate(from);

        g_assert_cmpstr(st, ==, "postmigrate");
    }
    if (stop_src || args->exact_ram_check) {
        src_ram = guest_memread(from, mig_tmpdir, MIG_TEST_START,
                                MIG_TEST_END - MIG_TEST_START);
    }

    migrate_incoming_qmp(to, args->listen_uri ? args->listen_uri
                                              : args->connect_uri,
                         args->listen_uri || args->connect_uri ? NULL
                                                : args->connect_channels,
                         NULL);
    wait_for_migration_complete(to);
    if (stop_src) {
        /* The source was paused: so is the destination, with its RAM. */
        g_autofree uint8_t *dst_ram = NULL;
        g_autofree char *st = query_runstate(to);

        g_assert_cmpstr(st, ==, "paused");
        dst_ram = guest_memread(to, mig_tmpdir, MIG_TEST_START,
                                MIG_TEST_END - MIG_TEST_START);
        if (memcmp(src_ram, dst_ram, MIG_TEST_END - MIG_TEST_START) != 0) {
            qtest_fail(to, "destination RAM differs from the saved source");
        }
        check_ab_pattern(dst_ram, MIG_TEST_END - MIG_TEST_START, "dest");
        qtest_qmp_assert_success(to, "{'execute': 'cont'}");
    }
    qtest_qmp_eventwait(to, "RESUME");
    wait_for_serial("dest_serial");
    g_assert_true(runstate_is_running(to));
    if (check_offset) {
        mig_file_offset_check(file);
    }
    if (args->end_hook) {
        args->end_hook(from, to, args);
    }
    migrate_end(from, to, true);
}

void test_precopy_common(MigrateCommon *args)
{
    QTestState *from, *to;

    migrate_start(args, &from, &to);
    if (args->listen_uri) {
        migrate_incoming_qmp(to, args->listen_uri, NULL, NULL);
    }
    if (args->start_hook) {
        args->start_hook(from, to, args);
    }
    /*
     * Not converging at first (1 ms downtime against a guest that dirties
     * all of its 99 MiB every pass) so at least one pass happens live.
     */
    migrate_set_parameter_int(from, "max-bandwidth", 300 * 1000 * 1000);
    migrate_set_parameter_int(from, "downtime-limit", 1);
    wait_for_serial("src_serial");
    migrate_qmp(from, args->connect_uri, args->connect_channels);
    wait_for_migration_pass(from);
    migrate_ensure_converge(from);
    wait_for_migration_complete(from);
    qtest_qmp_eventwait(to, "RESUME");
    wait_for_migration_complete(to);
    wait_for_serial("dest_serial");
    g_assert_true(runstate_is_running(to));
    if (args->end_hook) {
        args->end_hook(from, to, args);
    }
    migrate_end(from, to, true);
}

char *mig_make_saved_file(const char *name, const char *const *caps,
                          bool multifd)
{
    MigrateCommon args = { .start.only_source = true };
    g_autofree char *uri = mig_file_uri(name, NULL);
    QTestState *from, *to;
    size_t n = 0;

    for (; caps && caps[n] && n < G_N_ELEMENTS(args.caps) - 1; n++) {
        args.caps[n] = caps[n];
    }
    if (multifd) {
        args.caps[n++] = "multifd";
        args.multifd_channels = 4;
    }
    migrate_start(&args, &from, &to);
    migrate_ensure_converge(from);
    wait_for_serial("src_serial");
    qtest_qmp_assert_success(from, "{'execute': 'stop'}");
    qtest_qmp_eventwait(from, "STOP");
    /* stopped as its bytes wrapped: let it run on a little */
    while (!guest_memread_u8(from, mig_tmpdir, AB_FIRST_PAGE) ||
           !guest_memread_u8(from, mig_tmpdir, AB_LAST_PAGE)) {
        qtest_qmp_assert_success(from, "{'execute': 'cont'}");
        g_usleep(10 * 1000);
        qtest_qmp_assert_success(from, "{'execute': 'stop'}");
        qtest_qmp_eventwait(from, "STOP");
    }
    migrate_qmp(from, uri, NULL);
    wait_for_migration_complete(from);
    qtest_quit(from);
    return mig_path(name);
}

/* Run the mapram tool; returns its exit status, stdout and stderr. */
int mig_run_tool(char **out, char **err, const char *arg0, ...)
{
    const char *tool = g_getenv("MAPRAM_TOOL");
    g_autoptr(GPtrArray) argv = g_ptr_array_new();
    GError *gerr = NULL;
    int status = -1;
    va_list ap;

    g_assert_nonnull(tool);
    g_ptr_array_add(argv, (char *)tool);
    va_start(ap, arg0);
    for (const char *a = arg0; a; a = va_arg(ap, const char *)) {
        g_ptr_array_add(argv, (char *)a);
    }
    va_end(ap);
    g_ptr_array_add(argv, NULL);
    if (!g_spawn_sync(NULL, (char **)argv->pdata, NULL, G_SPAWN_STDIN_FROM_DEV_NULL, NULL, NULL,
                      out, err, &status, &gerr)) {
        g_error("cannot run %s: %s", tool, gerr->message);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Are all of the ab guest's pages data pages in mapped-ram file @path? */
static bool ab_pages_all_set(const char *path)
{
    g_autoptr(GArray) blocks = mr_file_blocks(path, 0);
    const MRBlock *b = &g_array_index(blocks, MRBlock, 0);
    g_autofree gchar *file = NULL;
    gsize len;

    g_assert_cmpstr(b->idstr, ==, "mig.mem");
    g_assert_true(g_file_get_contents(path, &file, &len, NULL));
    for (uint64_t p = AB_FIRST_PAGE / MIG_PAGE_SIZE; p <= AB_LAST_PAGE / MIG_PAGE_SIZE; p++) {
        if (!mr_page_set((const uint8_t *)file, b, p)) {
            return false;
        }
    }
    return true;
}

char *mig_make_live_saved_uri(const char *name, bool multifd)
{
    MigrateCommon args = { .start.only_source = true, .caps = { "mapped-ram" } };
    char *uri = mig_file_uri(name, NULL);
    g_autofree char *path = mig_path(name);
    QTestState *from, *to;

    if (multifd) {
        args.caps[1] = "multifd";
        args.multifd_channels = 4;
    }
    /* the guest stops where the migration stops it: if its bytes wrapped there, again */
    for (int tries = 0;; tries++) {
        g_assert_cmpint(tries, <, 5);
        migrate_start(&args, &from, &to);
        migrate_ensure_converge(from);
        wait_for_serial("src_serial");
        migrate_qmp(from, uri, NULL);
        wait_for_migration_complete(from);
        qtest_quit(from);
        if (ab_pages_all_set(path)) {
            return uri;
        }
        g_test_message("live save %d has zero pages in the ab range: saving again", tries);
    }
}
