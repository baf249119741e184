/*
 * libqtest: process and QMP plumbing for process-level tests.
 *
 * One QTestState per child process: its pid, the QMP socket fd, a byte
 * buffer that is split into JSON messages by a small brace scanner (the
 * protocol does not promise one message per line), and a queue of events
 * that arrived while a reply was awaited.
 */
#include "libqtest.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib/gstdio.h>

#ifndef MAPRAM_VM_PATH
#define MAPRAM_VM_PATH "build/system/mapram-vm"
#endif

#define MAX_CHILDREN 64
#define LOG_TAIL_BYTES 4096

struct QTestState {
    pid_t pid;
    bool reaped;
    int exit_code;          /* valid once reaped: status, or 128 + signal */
    int qmp_fd;
    char *sock_path;
    char *log_path;
    char *binary;
    GString *rbuf;          /* received bytes not yet parsed */
    GQueue events;          /* JsonObject *, oldest first */
    GQueue replies;         /* JsonObject *, replies read ahead */
    bool eof;               /* the peer closed the QMP connection */
};

/* Children still to be killed if the test process goes down. */
static volatile pid_t children[MAX_CHILDREN];
static char *harness_dir;
static unsigned spawn_count;

/*
 * Temp dirs made by qtest_mkdtemp() and not yet removed by qtest_rmtree():
 * removed at exit and on a fatal signal (a failed assertion aborts, a
 * meson timeout sends SIGTERM), so a failed test leaves nothing behind in
 * /var/tmp but with MAPRAM_TEST_KEEP set.  Slots are written only by the
 * test thread; the signal handler only reads them.
 */
#define MAX_TMPDIRS 64
static char *volatile tmpdirs[MAX_TMPDIRS];
static volatile sig_atomic_t keep_tmpdirs;
static pid_t harness_pid;       /* forked children must not clean up */

/*
 * Network namespaces to delete, as "/run/netns/NAME" (qtest_track_netns):
 * written by the test thread only, read by the cleanup, like tmpdirs.
 */
#define MAX_NETNS 8
static char *volatile netns_paths[MAX_NETNS];

/* --- removing a tree, async-signal-safe ------------------------------------ */

#define RMTREE_MAX_DEPTH 16

/*
 * Remove everything in the directory @dfd (closed here), whose path is
 * @path (a PATH_MAX buffer, restored before returning).  A file system a
 * test mounted below (a small tmpfs) is detached, not emptied.  Only
 * system calls, so that the fatal-signal handler can use it; a fixed
 * depth, so that it needs no allocation.
 */
static void rmtree_fd(int dfd, dev_t dev, int depth, char *path)
{
    char buf[4096] __attribute__((aligned(8)));
    size_t plen = strlen(path);
    long n;

    while ((n = syscall(SYS_getdents64, dfd, buf, sizeof(buf))) > 0) {
        for (long off = 0; off < n;) {
            struct linux_dirent64 {
                uint64_t d_ino;
                int64_t d_off;
                unsigned short d_reclen;
                unsigned char d_type;
                char d_name[];
            } *d = (void *)(buf + off);
            const char *name = d->d_name;
            size_t nlen = strlen(name);
            struct stat st;

            off += d->d_reclen;
            if (name[0] == '.' && (!name[1] || (name[1] == '.' && !name[2]))) {
                continue;
            }
            if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                continue;
            }
            if (!S_ISDIR(st.st_mode)) {
                unlinkat(dfd, name, 0);
                continue;
            }
            if (plen + 1 + nlen >= PATH_MAX) {
                continue;
            }
            path[plen] = '/';
            memcpy(path + plen + 1, name, nlen + 1);
            if (st.st_dev != dev) {
                umount2(path, MNT_DETACH);
            } else if (depth < RMTREE_MAX_DEPTH) {
                int sub = openat(dfd, name, O_RDONLY | O_DIRECTORY |
                                 O_NOFOLLOW | O_CLOEXEC);

                if (sub >= 0) {
                    rmtree_fd(sub, dev, depth + 1, path);
                }
            }
            path[plen] = 0;
            unlinkat(dfd, name, AT_REMOVEDIR);
        }
    }
    close(dfd);
}

/* rm -rf @path; true when it is gone. */
static bool rmtree(const char *path)
{
    char buf[PATH_MAX];
    size_t len = strlen(path);
    int dfd;
    struct stat st;

    if (len >= sizeof(buf)) {
        return false;
    }
    dfd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0) {
        return unlink(path) == 0 || errno == ENOENT;
    }
    if (fstat(dfd, &st) < 0) {
        close(dfd);
        return false;
    }
    memcpy(buf, path, len + 1);
    rmtree_fd(dfd, st.st_dev, 0, buf);
    return rmdir(path) == 0;
}

static void say(const char *a, const char *b)
{
    ssize_t r;

    r = write(STDERR_FILENO, a, strlen(a));
    r = write(STDERR_FILENO, b, strlen(b));
    r = write(STDERR_FILENO, "\n", 1);
    (void)r;
}

/* Remove (or, with MAPRAM_TEST_KEEP, name) every temp dir still there. */
static void remove_tmpdirs(void)
{
    for (int i = 0; i < MAX_TMPDIRS; i++) {
        const char *dir = tmpdirs[i];

        if (!dir) {
            continue;
        }
        if (keep_tmpdirs) {
            say("libqtest: kept ", dir);
        } else if (!rmtree(dir)) {
            say("libqtest: could not remove ", dir);
        }
    }
}

/* Delete every tracked network namespace (system calls only). */
static void remove_netns(void)
{
    for (int i = 0; i < MAX_NETNS; i++) {
        const char *path = netns_paths[i];

        if (!path) {
            continue;
        }
        umount2(path, MNT_DETACH);
        if (unlink(path) < 0 && errno != ENOENT) {
            say("libqtest: could not remove network namespace ", path);
        }
    }
}

/* --- child bookkeeping and emergency cleanup ----------------------------- */

static void kill_all_children(void)
{
    for (int i = 0; i < MAX_CHILDREN; i++) {
        pid_t pid = children[i];
        if (pid > 0) {
            kill(pid, SIGKILL);
        }
    }
}

/* Kill the children and wait for them: then nothing writes to the dirs. */
static void reap_all_children(void)
{
    kill_all_children();
    for (int i = 0; i < MAX_CHILDREN; i++) {
        if (children[i] > 0) {
            waitpid(children[i], NULL, 0);
            children[i] = 0;
        }
    }
}

static void fatal_signal_handler(int sig)
{
    if (getpid() == harness_pid) {
        reap_all_children();
        remove_netns();
        remove_tmpdirs();
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

static void atexit_cleanup(void)
{
    if (getpid() != harness_pid) {
        return;
    }
    reap_all_children();
    remove_netns();
    remove_tmpdirs();
}

static void harness_init_once(void)
{
    static bool done;
    static const int sigs[] = { SIGABRT, SIGSEGV, SIGBUS, SIGTRAP, SIGTERM,
                                SIGINT, SIGFPE, SIGILL };

    if (done) {
        return;
    }
    done = true;
    harness_pid = getpid();
    keep_tmpdirs = g_getenv("MAPRAM_TEST_KEEP") != NULL;
    atexit(atexit_cleanup);
    for (size_t i = 0; i < G_N_ELEMENTS(sigs); i++) {
        struct sigaction sa = { .sa_handler = fatal_signal_handler };
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = SA_RESETHAND;
        sigaction(sigs[i], &sa, NULL);
    }
    /* A peer closing its socket must be an error return, not a signal. */
    signal(SIGPIPE, SIG_IGN);
}

static void child_track(pid_t pid)
{
    for (int i = 0; i < MAX_CHILDREN; i++) {
        if (children[i] == 0) {
            children[i] = pid;
            return;
        }
    }
    g_error("libqtest: more than %d live children", MAX_CHILDREN);
}

static void child_untrack(pid_t pid)
{
    for (int i = 0; i < MAX_CHILDREN; i++) {
        if (children[i] == pid) {
            children[i] = 0;
        }
    }
}

/* --- small helpers ------------------------------------------------------- */

int qtest_timeout_s(void)
{
    const char *env = g_getenv("MAPRAM_TEST_TIMEOUT");
    int v = env ? atoi(env) : 0;

    return v > 0 ? v : 120;
}

bool qtest_full_tier(void)
{
    const char *env = g_getenv("MAPRAM_TEST_QUICK");

    return !(env && *env && strcmp(env, "0") != 0);
}

const char *qtest_vm_binary(void)
{
    const char *env = g_getenv("MAPRAM_VM");

    return env && *env ? env : MAPRAM_VM_PATH;
}

char *qtest_mkdtemp(const char *prefix)
{
    const char *parent = g_getenv("MAPRAM_TEST_TMPDIR");
    g_autofree char *tmpl = NULL;
    int slot = 0;

    harness_init_once();
    while (slot < MAX_TMPDIRS && tmpdirs[slot]) {
        slot++;
    }
    if (slot == MAX_TMPDIRS) {
        g_error("libqtest: more than %d temp dirs at once", MAX_TMPDIRS);
    }
    if (!parent || !*parent) {
        parent = "/var/tmp";
    }
    tmpl = g_strdup_printf("%s/mapram-%s-XXXXXX", parent, prefix);
    if (!g_mkdtemp(tmpl)) {
        g_error("libqtest: cannot create temp dir '%s': %s", tmpl,
                g_strerror(errno));
    }
    tmpdirs[slot] = g_strdup(tmpl);
    return g_steal_pointer(&tmpl);
}

void qtest_track_netns(const char *name)
{
    int slot = 0;

    harness_init_once();
    while (slot < MAX_NETNS && netns_paths[slot]) {
        slot++;
    }
    if (slot == MAX_NETNS) {
        g_error("libqtest: more than %d network namespaces at once",
                MAX_NETNS);
    }
    netns_paths[slot] = g_strdup_printf("/run/netns/%s", name);
}

void qtest_untrack_netns(const char *name)
{
    g_autofree char *path = g_strdup_printf("/run/netns/%s", name);

    for (int i = 0; i < MAX_NETNS; i++) {
        char *p = netns_paths[i];

        if (p && !strcmp(p, path)) {
            netns_paths[i] = NULL;      /* before the free: see tmpdirs */
            g_free(p);
        }
    }
}

void qtest_rmtree(const char *path)
{
    if (!path || !rmtree(path)) {
        return;
    }
    for (int i = 0; i < MAX_TMPDIRS; i++) {
        char *dir = tmpdirs[i];

        if (dir && !strcmp(dir, path)) {
            tmpdirs[i] = NULL;      /* before the free: see tmpdirs */
            g_free(dir);
        }
    }
}

static gint64 deadline_after_ms(gint64 ms)
{
    return g_get_monotonic_time() + ms * 1000;
}

static int ms_left(gint64 deadline)
{
    gint64 left = (deadline - g_get_monotonic_time()) / 1000;

    return left < 0 ? 0 : (int)MIN(left, G_MAXINT);
}

static char *log_tail(QTestState *s)
{
    g_autofree char *text = qtest_stderr_text(s);
    size_t len = strlen(text);

    if (len > LOG_TAIL_BYTES) {
        return g_strdup_printf("...%s", text + len - LOG_TAIL_BYTES);
    }
    return g_steal_pointer(&text);
}

/*
 * Report a harness-level failure (timeout, dead child, protocol error) with
 * the child's stderr tail, then fail the test the way g_assert does.
 */
static void G_GNUC_PRINTF(2, 3) G_GNUC_NORETURN
qtest_die(QTestState *s, const char *fmt, ...)
{
    va_list ap;
    g_autofree char *msg = NULL;
    g_autofree char *tail = NULL;
    g_autofree char *full = NULL;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    if (s) {
        tail = log_tail(s);
        full = g_strdup_printf("libqtest: %s [%s pid %d]\n--- child output ---\n%s"
                               "--- end of child output ---",
                               msg, s->binary, (int)s->pid, tail);
    } else {
        full = g_strdup_printf("libqtest: %s", msg);
    }
    kill_all_children();
    g_assertion_message(G_LOG_DOMAIN, __FILE__, __LINE__, G_STRFUNC, full);
    abort();
}

void qtest_fail(QTestState *s, const char *fmt, ...)
{
    va_list ap;
    g_autofree char *msg = NULL;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    qtest_die(s, "%s", msg);
}

/* --- JSON helpers -------------------------------------------------------- */

char *qtest_json_str(const char *str)
{
    g_autoptr(JsonNode) node = json_node_new(JSON_NODE_VALUE);

    json_node_set_string(node, str ? str : "");
    return json_to_string(node, false);
}

char *qtest_json_text(JsonNode *node)
{
    return node ? json_to_string(node, false) : g_strdup("(null)");
}

const char *qtest_json_get_str(JsonObject *o, const char *member)
{
    JsonNode *n;

    if (!o || !(n = json_object_get_member(o, member)) ||
        json_node_get_value_type(n) != G_TYPE_STRING) {
        return NULL;
    }
    return json_node_get_string(n);
}

gint64 qtest_json_get_int(JsonObject *o, const char *member, gint64 dflt)
{
    JsonNode *n;

    if (!o || !(n = json_object_get_member(o, member)) ||
        !JSON_NODE_HOLDS_VALUE(n)) {
        return dflt;
    }
    switch (json_node_get_value_type(n)) {
    case G_TYPE_INT64:
        return json_node_get_int(n);
    case G_TYPE_DOUBLE:
        return (gint64)json_node_get_double(n);
    default:
        return dflt;
    }
}

bool qtest_json_get_bool(JsonObject *o, const char *member, bool dflt)
{
    JsonNode *n;

    if (!o || !(n = json_object_get_member(o, member)) ||
        json_node_get_value_type(n) != G_TYPE_BOOLEAN) {
        return dflt;
    }
    return json_node_get_boolean(n);
}

JsonObject *qtest_json_get_obj(JsonObject *o, const char *member)
{
    JsonNode *n;

    if (!o || !(n = json_object_get_member(o, member)) ||
        !JSON_NODE_HOLDS_OBJECT(n)) {
        return NULL;
    }
    return json_node_get_object(n);
}

/*
 * Turn 'single-quoted' strings into JSON strings, as QEMU's test JSON
 * allows: inside them " is escaped and \' stands for a quote.
 */
static char *squote_to_json(const char *in)
{
    GString *out = g_string_sized_new(strlen(in) + 16);
    enum { OUT, DQ, SQ } st = OUT;

    for (const char *p = in; *p; p++) {
        char c = *p;

        switch (st) {
        case OUT:
            if (c == '\'') {
                g_string_append_c(out, '"');
                st = SQ;
            } else {
                g_string_append_c(out, c);
                st = c == '"' ? DQ : OUT;
            }
            break;
        case DQ:
            g_string_append_c(out, c);
            if (c == '\\' && p[1]) {
                g_string_append_c(out, *++p);
            } else if (c == '"') {
                st = OUT;
            }
            break;
        case SQ:
            if (c == '\\' && p[1] == '\'') {
                g_string_append_c(out, '\'');
                p++;
            } else if (c == '\\' && p[1]) {
                g_string_append_c(out, c);
                g_string_append_c(out, *++p);
            } else if (c == '"') {
                g_string_append(out, "\\\"");
            } else if (c == '\'') {
                g_string_append_c(out, '"');
                st = OUT;
            } else {
                g_string_append_c(out, c);
            }
            break;
        }
    }
    return g_string_free(out, false);
}

/* --- socket I/O ---------------------------------------------------------- */

/*
 * Length of the first complete JSON object in @buf (leading whitespace
 * included), or 0 when it is still incomplete.
 */
static size_t json_message_len(const char *buf, size_t len)
{
    int depth = 0;
    bool in_str = false, esc = false, started = false;

    for (size_t i = 0; i < len; i++) {
        char c = buf[i];

        if (in_str) {
            if (esc) {
                esc = false;
            } else if (c == '\\') {
                esc = true;
            } else if (c == '"') {
                in_str = false;
            }
            continue;
        }
        if (c == '"') {
            in_str = true;
        } else if (c == '{' || c == '[') {
            depth++;
            started = true;
        } else if (c == '}' || c == ']') {
            depth--;
            if (started && depth == 0) {
                return i + 1;
            }
        }
    }
    return 0;
}

static JsonObject *parse_message(QTestState *s, const char *text, size_t len)
{
    g_autoptr(JsonParser) parser = json_parser_new();
    g_autoptr(GError) err = NULL;
    JsonNode *root;

    if (!json_parser_load_from_data(parser, text, (gssize)len, &err)) {
        qtest_die(s, "unparsable QMP message %.*s: %s", (int)len, text,
                  err->message);
    }
    root = json_parser_get_root(parser);
    if (!root || !JSON_NODE_HOLDS_OBJECT(root)) {
        qtest_die(s, "QMP message is not an object: %.*s", (int)len, text);
    }
    return json_object_ref(json_node_get_object(root));
}

/*
 * Next message from the socket, waiting until @deadline.  Returns NULL on
 * timeout, and on EOF (then s->eof is set) unless @die_on_eof, for callers
 * that need an answer from a process that went away mid-conversation.
 */
static JsonObject *read_message_full(QTestState *s, gint64 deadline,
                                     bool die_on_eof)
{
    for (;;) {
        size_t n = json_message_len(s->rbuf->str, s->rbuf->len);
        char chunk[65536];
        struct pollfd pfd = { .fd = s->qmp_fd, .events = POLLIN };
        ssize_t got;
        int rc;

        if (n) {
            JsonObject *msg = parse_message(s, s->rbuf->str, n);

            g_string_erase(s->rbuf, 0, (gssize)n);
            if (g_getenv("MAPRAM_TEST_QMP_LOG")) {
                g_autoptr(JsonNode) node = json_node_new(JSON_NODE_OBJECT);
                g_autofree char *text = NULL;

                json_node_set_object(node, msg);
                text = json_to_string(node, false);
                g_printerr("[qmp %d] <<< %s\n", (int)s->pid, text);
            }
            return msg;
        }
        rc = poll(&pfd, 1, ms_left(deadline));
        if (rc < 0 && errno == EINTR) {
            continue;
        }
        if (rc < 0) {
            qtest_die(s, "poll on QMP socket: %s", g_strerror(errno));
        }
        if (rc == 0) {
            return NULL;
        }
        if (s->eof && !die_on_eof) {
            return NULL;
        }
        got = recv(s->qmp_fd, chunk, sizeof(chunk), 0);
        if (got < 0 && (errno == EINTR || errno == EAGAIN)) {
            continue;
        }
        if (got <= 0 && !die_on_eof) {
            s->eof = true;
            return NULL;
        }
        if (got <= 0) {
            int code = qtest_wait_exit(s, 5);

            qtest_die(s, "QMP connection closed (%s); process %s %d",
                      got < 0 ? g_strerror(errno) : "EOF",
                      code < 0 ? "still running, exit status" : "exited with",
                      code);
        }
        g_string_append_len(s->rbuf, chunk, got);
    }
}

static JsonObject *read_message(QTestState *s, gint64 deadline)
{
    return read_message_full(s, deadline, true);
}

static void send_all(QTestState *s, const char *buf, size_t len,
                     const int *fds, size_t nfds)
{
    size_t off = 0;

    if (nfds) {
        struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
        size_t cmsg_space = CMSG_SPACE(sizeof(int) * nfds);
        g_autofree char *control = g_malloc0(cmsg_space);
        struct msghdr msg = {
            .msg_iov = &iov, .msg_iovlen = 1,
            .msg_control = control, .msg_controllen = cmsg_space,
        };
        struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
        ssize_t n;

        cmsg->cmsg_level = SOL_SOCKET;
        cmsg->cmsg_type = SCM_RIGHTS;
        cmsg->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(cmsg), fds, sizeof(int) * nfds);
        do {
            n = sendmsg(s->qmp_fd, &msg, MSG_NOSIGNAL);
        } while (n < 0 && errno == EINTR);
        if (n < 0) {
            qtest_die(s, "sendmsg on QMP socket: %s", g_strerror(errno));
        }
        off = (size_t)n;
    }
    while (off < len) {
        ssize_t n = send(s->qmp_fd, buf + off, len - off, MSG_NOSIGNAL);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            qtest_die(s, "send on QMP socket: %s", g_strerror(errno));
        }
        off += (size_t)n;
    }
}

static void G_GNUC_PRINTF(4, 0) send_command(QTestState *s, const int *fds, size_t nfds,
                                             const char *fmt, va_list ap)
{
    g_autofree char *raw = g_strdup_vprintf(fmt, ap);
    g_autofree char *json = squote_to_json(raw);

    if (g_getenv("MAPRAM_TEST_QMP_LOG")) {
        g_printerr("[qmp %d] >>> %s\n", (int)s->pid, json);
    }
    /*
     * One send, newline included: a process that acts on the command
     * before the newline arrives ("quit") may be gone by then, and a
     * separate send of the newline would fail with EPIPE.
     */
    g_autofree char *line = g_strconcat(json, "\n", NULL);
    send_all(s, line, strlen(line), fds, nfds);
}

/* Read until a reply arrives, queueing events; dies on timeout. */
static JsonObject *receive_reply(QTestState *s, gint64 deadline)
{
    JsonObject *msg;

    if (!g_queue_is_empty(&s->replies)) {
        return g_queue_pop_head(&s->replies);
    }
    for (;;) {
        msg = read_message(s, deadline);
        if (!msg) {
            qtest_die(s, "no QMP reply within %d s", qtest_timeout_s());
        }
        if (json_object_has_member(msg, "event")) {
            g_queue_push_tail(&s->events, msg);
            continue;
        }
        return msg;
    }
}

static JsonNode *object_to_node(JsonObject *o)
{
    JsonNode *node = json_node_new(JSON_NODE_OBJECT);

    json_node_take_object(node, o);
    return node;
}

/* --- process start ------------------------------------------------------- */

static void exec_child(const char *binary, char **argv,
                       const char *const *env, const char *log_path,
                       pid_t parent)
{
    int null_fd, log_fd;
    long maxfd;

    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) {
        _exit(127);
    }
    null_fd = open("/dev/null", O_RDONLY);
    log_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (null_fd < 0 || log_fd < 0) {
        _exit(127);
    }
    dup2(null_fd, STDIN_FILENO);
    dup2(log_fd, STDOUT_FILENO);
    dup2(log_fd, STDERR_FILENO);
    maxfd = sysconf(_SC_OPEN_MAX);
    for (long fd = 3; fd < MIN(maxfd, 65536); fd++) {
        close((int)fd);
    }
    for (const char *const *e = env; e && *e; e++) {
        putenv((char *)*e);
    }
    /* Restore default dispositions the test process changed. */
    signal(SIGPIPE, SIG_DFL);
    execv(binary, argv);
    fprintf(stderr, "libqtest: exec '%s': %s\n", binary, strerror(errno));
    _exit(127);
}

static void connect_qmp(QTestState *s)
{
    gint64 deadline = deadline_after_ms((gint64)qtest_timeout_s() * 1000);
    struct sockaddr_un addr = { .sun_family = AF_UNIX };

    g_assert(strlen(s->sock_path) < sizeof(addr.sun_path));
    strcpy(addr.sun_path, s->sock_path);
    for (;;) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

        g_assert(fd >= 0);
        if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0) {
            s->qmp_fd = fd;
            return;
        }
        close(fd);
        if (!qtest_alive(s)) {
            qtest_die(s, "process exited with status %d before its QMP "
                      "socket '%s' accepted a connection", s->exit_code,
                      s->sock_path);
        }
        if (g_get_monotonic_time() > deadline) {
            qtest_die(s, "QMP socket '%s' not ready within %d s",
                      s->sock_path, qtest_timeout_s());
        }
        g_usleep(10 * 1000);
    }
}

static void negotiate(QTestState *s)
{
    gint64 deadline = deadline_after_ms((gint64)qtest_timeout_s() * 1000);
    g_autoptr(JsonObject) greeting = read_message(s, deadline);

    if (!greeting) {
        qtest_die(s, "no QMP greeting within %d s", qtest_timeout_s());
    }
    if (!json_object_has_member(greeting, "QMP")) {
        g_autoptr(JsonNode) n = object_to_node(json_object_ref(greeting));
        g_autofree char *text = qtest_json_text(n);

        qtest_die(s, "first QMP message is not a greeting: %s", text);
    }
    qtest_qmp_assert_success(s, "{'execute': 'qmp_capabilities'}");
}

static QTestState * G_GNUC_PRINTF(3, 0) spawn(const char *binary, const char *const *env,
                                              const char *args_fmt, va_list ap)
{
    g_autofree char *args = g_strdup_vprintf(args_fmt, ap);
    g_auto(GStrv) argv_user = NULL;
    g_autoptr(GPtrArray) argv = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(GError) err = NULL;
    QTestState *s;
    pid_t parent = getpid();
    int argc = 0;

    harness_init_once();
    if (!harness_dir) {
        harness_dir = qtest_mkdtemp("qtest");
    }
    if (*args && !g_shell_parse_argv(args, &argc, &argv_user, &err)) {
        g_error("libqtest: cannot split arguments '%s': %s", args,
                err->message);
    }
    s = g_new0(QTestState, 1);
    s->qmp_fd = -1;
    s->binary = g_strdup(binary);
    s->rbuf = g_string_new(NULL);
    g_queue_init(&s->events);
    g_queue_init(&s->replies);
    spawn_count++;
    s->sock_path = g_strdup_printf("%s/qmp-%u.sock", harness_dir,
                                   spawn_count);
    s->log_path = g_strdup_printf("%s/vm-%u.log", harness_dir, spawn_count);

    g_ptr_array_add(argv, g_strdup(binary));
    for (int i = 0; i < argc; i++) {
        g_ptr_array_add(argv, g_strdup(argv_user[i]));
    }
    g_ptr_array_add(argv, g_strdup("-qmp"));
    g_ptr_array_add(argv, g_strdup_printf("unix:%s,server=on,wait=off",
                                          s->sock_path));
    g_ptr_array_add(argv, NULL);

    if (g_getenv("MAPRAM_TEST_VERBOSE")) {
        g_autofree char *line = g_strjoinv(" ", (char **)argv->pdata);
        g_printerr("libqtest: starting %s\n", line);
    }
    s->pid = fork();
    if (s->pid < 0) {
        g_error("libqtest: fork: %s", g_strerror(errno));
    }
    if (s->pid == 0) {
        exec_child(binary, (char **)argv->pdata, env, s->log_path, parent);
    }
    child_track(s->pid);
    connect_qmp(s);
    negotiate(s);
    return s;
}

QTestState *qtest_vinit_bin(const char *binary, const char *args_fmt,
                            va_list ap)
{
    return spawn(binary, NULL, args_fmt, ap);
}

QTestState *qtest_init_bin(const char *binary, const char *args_fmt, ...)
{
    va_list ap;
    QTestState *s;

    va_start(ap, args_fmt);
    s = spawn(binary, NULL, args_fmt, ap);
    va_end(ap);
    return s;
}

QTestState *qtest_init_bin_env(const char *binary, const char *const *env,
                               const char *args_fmt, ...)
{
    va_list ap;
    QTestState *s;

    va_start(ap, args_fmt);
    s = spawn(binary, env, args_fmt, ap);
    va_end(ap);
    return s;
}

QTestState *qtest_init(const char *args_fmt, ...)
{
    va_list ap;
    QTestState *s;

    va_start(ap, args_fmt);
    s = spawn(qtest_vm_binary(), NULL, args_fmt, ap);
    va_end(ap);
    return s;
}

/* --- process end --------------------------------------------------------- */

pid_t qtest_pid(QTestState *s)
{
    return s->pid;
}

static bool try_reap(QTestState *s, bool block)
{
    int status;
    pid_t r;

    if (s->reaped) {
        return true;
    }
    do {
        r = waitpid(s->pid, &status, block ? 0 : WNOHANG);
    } while (r < 0 && errno == EINTR);
    if (r == 0) {
        return false;
    }
    s->reaped = true;
    child_untrack(s->pid);
    if (r < 0) {
        s->exit_code = -1;
    } else if (WIFEXITED(status)) {
        s->exit_code = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
        s->exit_code = 128 + WTERMSIG(status);
    } else {
        s->exit_code = -1;
    }
    return true;
}

bool qtest_alive(QTestState *s)
{
    return !try_reap(s, false);
}

int qtest_wait_exit(QTestState *s, int timeout_s)
{
    gint64 deadline;

    if (timeout_s <= 0) {
        timeout_s = qtest_timeout_s();
    }
    deadline = deadline_after_ms((gint64)timeout_s * 1000);
    while (!try_reap(s, false)) {
        if (g_get_monotonic_time() > deadline) {
            return -1;
        }
        g_usleep(5 * 1000);
    }
    return s->exit_code;
}

char *qtest_stderr_text(QTestState *s)
{
    char *text = NULL;

    if (!g_file_get_contents(s->log_path, &text, NULL, NULL)) {
        return g_strdup("");
    }
    return text;
}

static void dump_log_if_wanted(QTestState *s)
{
    g_autofree char *text = NULL;

    if (!g_test_failed() && !g_getenv("MAPRAM_TEST_VERBOSE")) {
        return;
    }
    text = qtest_stderr_text(s);
    if (*text) {
        g_printerr("--- output of %s (pid %d) ---\n%s--- end ---\n",
                   s->binary, (int)s->pid, text);
    }
}

static void state_free(QTestState *s)
{
    JsonObject *o;

    dump_log_if_wanted(s);
    if (s->qmp_fd >= 0) {
        close(s->qmp_fd);
    }
    while ((o = g_queue_pop_head(&s->events))) {
        json_object_unref(o);
    }
    while ((o = g_queue_pop_head(&s->replies))) {
        json_object_unref(o);
    }
    g_unlink(s->sock_path);
    g_string_free(s->rbuf, true);
    g_free(s->sock_path);
    g_free(s->log_path);
    g_free(s->binary);
    g_free(s);
}

void qtest_kill(QTestState *s)
{
    if (!s) {
        return;
    }
    if (!s->reaped) {
        kill(s->pid, SIGKILL);
        try_reap(s, true);
    }
    state_free(s);
}

void qtest_quit(QTestState *s)
{
    static const char quit_cmd[] = "{\"execute\": \"quit\"}\n";
    int code;

    if (!s) {
        return;
    }
    if (s->reaped) {
        state_free(s);
        return;
    }
    /* The process may die right after reading "quit": ignore send errors. */
    if (s->qmp_fd >= 0) {
        (void)send(s->qmp_fd, quit_cmd, sizeof(quit_cmd) - 1, MSG_NOSIGNAL);
    }
    code = qtest_wait_exit(s, 0);
    if (code < 0) {
        kill(s->pid, SIGKILL);
        try_reap(s, true);
        qtest_die(s, "process did not exit within %d s of 'quit'",
                  qtest_timeout_s());
    }
    if (code != 0) {
        qtest_die(s, "process exited with status %d after 'quit'", code);
    }
    state_free(s);
}

/* --- QMP ----------------------------------------------------------------- */

static gint64 default_deadline(void)
{
    return deadline_after_ms((gint64)qtest_timeout_s() * 1000);
}

JsonNode *qtest_vqmp(QTestState *s, const char *fmt, va_list ap)
{
    send_command(s, NULL, 0, fmt, ap);
    return object_to_node(receive_reply(s, default_deadline()));
}

JsonNode *qtest_qmp(QTestState *s, const char *fmt, ...)
{
    va_list ap;
    JsonNode *n;

    va_start(ap, fmt);
    n = qtest_vqmp(s, fmt, ap);
    va_end(ap);
    return n;
}

JsonNode *qtest_qmp_fds(QTestState *s, const int *fds, size_t nfds,
                        const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    send_command(s, fds, nfds, fmt, ap);
    va_end(ap);
    return object_to_node(receive_reply(s, default_deadline()));
}

void qtest_qmp_send(QTestState *s, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    send_command(s, NULL, 0, fmt, ap);
    va_end(ap);
}

JsonNode *qtest_qmp_receive(QTestState *s)
{
    return object_to_node(receive_reply(s, default_deadline()));
}

/* Return the "return" member of @reply (new ref) or die with the error. */
static JsonNode *take_success(QTestState *s, JsonNode *reply,
                              const char *cmd_fmt)
{
    JsonObject *o = json_node_get_object(reply);
    JsonNode *ret = json_object_get_member(o, "return");

    if (!ret) {
        g_autofree char *text = qtest_json_text(reply);

        json_node_unref(reply);
        qtest_die(s, "command %s failed: %s", cmd_fmt, text);
    }
    ret = json_node_ref(ret);
    json_node_unref(reply);
    return ret;
}

static JsonNode * G_GNUC_PRINTF(4, 0) vassert_success(QTestState *s, const int *fds,
                                                      size_t nfds, const char *fmt, va_list ap)
{
    JsonNode *reply;

    send_command(s, fds, nfds, fmt, ap);
    reply = object_to_node(receive_reply(s, default_deadline()));
    return take_success(s, reply, fmt);
}

JsonNode *qtest_qmp_assert_success_node(QTestState *s, const char *fmt, ...)
{
    va_list ap;
    JsonNode *ret;

    va_start(ap, fmt);
    ret = vassert_success(s, NULL, 0, fmt, ap);
    va_end(ap);
    return ret;
}

JsonObject *qtest_qmp_assert_success_ref(QTestState *s, const char *fmt, ...)
{
    va_list ap;
    g_autoptr(JsonNode) ret = NULL;

    va_start(ap, fmt);
    ret = vassert_success(s, NULL, 0, fmt, ap);
    va_end(ap);
    if (!JSON_NODE_HOLDS_OBJECT(ret)) {
        g_autofree char *text = qtest_json_text(ret);

        qtest_die(s, "command %s returned a non-object: %s", fmt, text);
    }
    return json_object_ref(json_node_get_object(ret));
}

void qtest_qmp_assert_success(QTestState *s, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    json_node_unref(vassert_success(s, NULL, 0, fmt, ap));
    va_end(ap);
}

void qtest_qmp_fds_assert_success(QTestState *s, const int *fds, size_t nfds,
                                  const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    json_node_unref(vassert_success(s, fds, nfds, fmt, ap));
    va_end(ap);
}

static char * G_GNUC_PRINTF(3, 0) vexpect_error(QTestState *s, char **klass, const char *fmt,
                                                va_list ap)
{
    g_autoptr(JsonNode) reply = NULL;
    JsonObject *err;
    const char *desc;

    send_command(s, NULL, 0, fmt, ap);
    reply = object_to_node(receive_reply(s, default_deadline()));
    err = qtest_json_get_obj(json_node_get_object(reply), "error");
    if (!err) {
        g_autofree char *text = qtest_json_text(reply);

        qtest_die(s, "command %s succeeded but an error was expected: %s",
                  fmt, text);
    }
    desc = qtest_json_get_str(err, "desc");
    if (!desc) {
        g_autofree char *text = qtest_json_text(reply);

        qtest_die(s, "error reply without 'desc': %s", text);
    }
    if (klass) {
        *klass = g_strdup(qtest_json_get_str(err, "class"));
    }
    return g_strdup(desc);
}

char *qtest_qmp_expect_error(QTestState *s, const char *fmt, ...)
{
    va_list ap;
    char *desc;

    va_start(ap, fmt);
    desc = vexpect_error(s, NULL, fmt, ap);
    va_end(ap);
    return desc;
}

char *qtest_qmp_expect_error_class(QTestState *s, char **klass,
                                   const char *fmt, ...)
{
    va_list ap;
    char *desc;

    va_start(ap, fmt);
    desc = vexpect_error(s, klass, fmt, ap);
    va_end(ap);
    return desc;
}

/* --- events -------------------------------------------------------------- */

static JsonObject *pop_queued_event(QTestState *s, const char *event)
{
    for (GList *l = s->events.head; l; l = l->next) {
        JsonObject *o = l->data;

        if (g_strcmp0(qtest_json_get_str(o, "event"), event) == 0) {
            g_queue_delete_link(&s->events, l);
            return o;
        }
    }
    return NULL;
}

JsonObject *qtest_qmp_event_ref(QTestState *s, const char *event)
{
    return pop_queued_event(s, event);
}

JsonObject *qtest_qmp_eventwait_timeout(QTestState *s, const char *event,
                                        int timeout_ms)
{
    gint64 deadline = deadline_after_ms(timeout_ms);
    JsonObject *o = pop_queued_event(s, event);

    while (!o) {
        JsonObject *msg = read_message_full(s, deadline, false);

        if (!msg) {
            return NULL;
        }
        if (!json_object_has_member(msg, "event")) {
            /* A reply to a command sent with qtest_qmp_send(). */
            g_queue_push_tail(&s->replies, msg);
            continue;
        }
        if (g_strcmp0(qtest_json_get_str(msg, "event"), event) == 0) {
            o = msg;
        } else {
            g_queue_push_tail(&s->events, msg);
        }
    }
    return o;
}

JsonObject *qtest_qmp_eventwait_ref(QTestState *s, const char *event)
{
    JsonObject *o = qtest_qmp_eventwait_timeout(s, event,
                                                qtest_timeout_s() * 1000);

    if (!o && s->eof) {
        int code = qtest_wait_exit(s, 5);

        qtest_die(s, "QMP connection closed while waiting for event %s "
                  "(exit status %d)", event, code);
    }
    if (!o) {
        qtest_die(s, "event %s not received within %d s", event,
                  qtest_timeout_s());
    }
    return o;
}

void qtest_qmp_eventwait(QTestState *s, const char *event)
{
    json_object_unref(qtest_qmp_eventwait_ref(s, event));
}

void qtest_qmp_pump_events(QTestState *s)
{
    JsonObject *msg;

    while ((msg = read_message_full(s, g_get_monotonic_time(), false))) {
        if (json_object_has_member(msg, "event")) {
            g_queue_push_tail(&s->events, msg);
        } else {
            g_queue_push_tail(&s->replies, msg);
        }
    }
}

void qtest_qmp_clear_events(QTestState *s)
{
    JsonObject *o;

    while ((o = g_queue_pop_head(&s->events))) {
        json_object_unref(o);
    }
}
