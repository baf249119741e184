/*
 * A real QMP session over a real unix socket, in process: the server's
 * main loop runs in a helper thread (it owns the default main context,
 * as the main thread does in mapram-vm); the test thread is the client.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "io/channel.h"
#include "monitor/monitor-internal.h"
#include "util/error.h"
#include "util/osdep.h"
#include "util/thread.h"

#define GREETING "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": 10}," \
                 " \"package\": \"mapram 0.1.0\"}, \"capabilities\": [\"oob\"]}}"

typedef struct Fixture {
    char *dir;
    char *path;
    Monitor *mon;
    GMainLoop *loop;
    GThread *thread;
} Fixture;

typedef struct Client {
    int fd;
    GString *buf;
} Client;

/* --- server side --- */

static JsonNode *test_stop(JsonObject *args, Monitor *mon, void *opaque, GError **errp)
{
    qmp_event_send("STOP", NULL);
    return NULL;
}

static JsonNode *test_cont(JsonObject *args, Monitor *mon, void *opaque, GError **errp)
{
    g_set_error(errp, MAPRAM_ERROR, QMP_ERROR_DEVICE_NOT_ACTIVE, "not now");
    return NULL;
}

/*
 * Stand-ins for migration's parameter commands (opaque: the values, a
 * JsonObject), so that a uint64 goes in, is kept and comes back out
 * through the real schema, as query-migrate-parameters does.
 */
static JsonNode *test_set_params(JsonObject *args, Monitor *mon, void *opaque, GError **errp)
{
    if (json_object_has_member(args, "max-bandwidth")) {
        json_object_set_member(opaque, "max-bandwidth",
                               json_node_copy(json_object_get_member(args, "max-bandwidth")));
    }
    return NULL;
}

static JsonNode *test_query_params(JsonObject *args, Monitor *mon, void *opaque, GError **errp)
{
    JsonNode *n = json_node_new(JSON_NODE_OBJECT);

    json_node_set_object(n, opaque);
    return n;
}

static gpointer loop_thread(gpointer opaque)
{
    Fixture *f = opaque;

    g_main_context_push_thread_default(g_main_context_default());
    g_main_loop_run(f->loop);
    g_main_context_pop_thread_default(g_main_context_default());
    return NULL;
}

static gboolean quit_loop(gpointer loop)
{
    g_main_loop_quit(loop);
    return G_SOURCE_REMOVE;
}

static void fixture_setup(Fixture *f, gconstpointer data)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *spec = NULL;

    f->dir = g_dir_make_tmp("qmp-test-XXXXXX", &err);
    g_assert_no_error(err);
    f->path = g_build_filename(f->dir, "qmp.sock", NULL);
    spec = g_strdup_printf("unix:%s,server=on,wait=off", f->path);
    f->mon = monitor_new_qmp(spec, &err);
    g_assert_no_error(err);
    g_assert_nonnull(f->mon);
    f->loop = g_main_loop_new(NULL, FALSE);
    f->thread = g_thread_new("qmp-loop", loop_thread, f);
}

static void fixture_teardown(Fixture *f, gconstpointer data)
{
    g_idle_add(quit_loop, f->loop);
    g_thread_join(f->thread);
    g_main_loop_unref(f->loop);
    monitor_cleanup_all();
    g_assert_false(g_file_test(f->path, G_FILE_TEST_EXISTS));
    rmdir(f->dir);
    g_free(f->path);
    g_free(f->dir);
}

/* --- client side --- */

static Client *client_connect(Fixture *f)
{
    Client *c = g_new0(Client, 1);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };

    g_strlcpy(sa.sun_path, f->path, sizeof(sa.sun_path));
    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    g_assert_cmpint(c->fd, >=, 0);
    g_assert_cmpint(connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)), ==, 0);
    c->buf = g_string_new(NULL);
    return c;
}

static void client_close(Client *c)
{
    close(c->fd);
    g_string_free(c->buf, TRUE);
    g_free(c);
}

/* The next "\r\n"-terminated line (without it), or NULL after timeout_ms. */
static char *client_try_line(Client *c, int timeout_ms)
{
    for (;;) {
        char *eol = strstr(c->buf->str, "\r\n");
        struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
        char tmp[4096];
        ssize_t n;

        if (eol) {
            char *line = g_strndup(c->buf->str, eol - c->buf->str);

            g_string_erase(c->buf, 0, eol - c->buf->str + 2);
            return line;
        }
        if (poll(&pfd, 1, timeout_ms) <= 0) {
            return NULL;
        }
        n = read(c->fd, tmp, sizeof(tmp));
        if (n <= 0) {
            return NULL;
        }
        g_string_append_len(c->buf, tmp, n);
    }
}

static char *client_line(Client *c)
{
    char *line = client_try_line(c, 10000);

    g_assert_nonnull(line);
    return line;
}

static void client_send(Client *c, const char *text)
{
    size_t len = strlen(text);

    g_assert_cmpint(write(c->fd, text, len), ==, (ssize_t)len);
}

static void client_send_fd(Client *c, const char *text, int fd)
{
    g_autoptr(GError) err = NULL;
    ssize_t n = io_socket_send_with_fds(c->fd, text, strlen(text), &fd, 1, &err);

    g_assert_no_error(err);
    g_assert_cmpint(n, ==, (ssize_t)strlen(text));
}

static void client_send_fds(Client *c, const char *text, const int *fds, size_t nfds)
{
    g_autoptr(GError) err = NULL;
    ssize_t n = io_socket_send_with_fds(c->fd, text, strlen(text), fds, nfds, &err);

    g_assert_no_error(err);
    g_assert_cmpint(n, ==, (ssize_t)strlen(text));
}

static void expect(Client *c, const char *line)
{
    g_autofree char *got = client_line(c);

    g_assert_cmpstr(got, ==, line);
}

/* Send a command and check the whole reply line. */
static void cmd(Client *c, const char *text, const char *reply)
{
    client_send(c, text);
    expect(c, reply);
}

static Client *client_negotiated(Fixture *f)
{
    Client *c = client_connect(f);

    expect(c, GREETING);
    cmd(c, "{\"execute\": \"qmp_capabilities\"}", "{\"return\": {}}");
    return c;
}

static JsonObject *parse_line(const char *line)
{
    g_autoptr(JsonParser) p = json_parser_new();

    g_assert_true(json_parser_load_from_data(p, line, -1, NULL));
    return json_object_ref(json_node_get_object(json_parser_get_root(p)));
}

/* --- tests --- */

static void test_greeting_and_negotiation(Fixture *f, gconstpointer data)
{
    Client *c = client_connect(f);

    expect(c, GREETING);
    cmd(c, "{\"execute\": \"query-version\", \"id\": \"a\"}",
        "{\"id\": \"a\", \"error\": {\"class\": \"CommandNotFound\", \"desc\":"
        " \"Expecting capabilities negotiation with 'qmp_capabilities'\"}}");
    cmd(c, "{\"execute\": \"nope\"}",
        "{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"Expecting capabilities"
        " negotiation with 'qmp_capabilities'\"}}");
    /* Shape errors keep their own text before negotiation too. */
    cmd(c, "{\"id\": 7}",
        "{\"id\": 7, \"error\": {\"class\": \"GenericError\", \"desc\": \"QMP input lacks member"
        " 'execute'\"}}");
    /* QEMU names list elements "null" in enum errors. */
    cmd(c, "{\"execute\": \"qmp_capabilities\", \"arguments\": {\"enable\": [\"x\"]}}",
        "{\"error\": {\"class\": \"GenericError\", \"desc\": \"Parameter 'null' does not"
        " accept value 'x'\"}}");
    cmd(c, "{\"execute\": \"qmp_capabilities\", \"id\": 1}", "{\"return\": {}, \"id\": 1}");
    cmd(c, "{\"execute\": \"qmp_capabilities\", \"id\": 2}",
        "{\"id\": 2, \"error\": {\"class\": \"CommandNotFound\", \"desc\": \"Capabilities"
        " negotiation is already complete, command ignored\"}}");
    cmd(c, "{\"execute\": \"query-version\", \"id\": {\"x\": [1]}}",
        "{\"return\": {\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": 10}, \"package\":"
        " \"mapram 0.1.0\"}, \"id\": {\"x\": [1]}}");
    client_close(c);
}

static void test_errors(Fixture *f, gconstpointer data)
{
    Client *c = client_negotiated(f);

    cmd(c, "{\"execute\": \"nope\", \"id\": 3}",
        "{\"id\": 3, \"error\": {\"class\": \"CommandNotFound\", \"desc\": \"The command"
        " nope has not been found\"}}");
    /* Declared in the schema but no handler in this process. */
    cmd(c, "{\"execute\": \"migrate\"}",
        "{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"The command migrate has not"
        " been found\"}}");
    cmd(c, "[1, 2]",
        "{\"error\": {\"class\": \"GenericError\", \"desc\": \"QMP input must be a JSON"
        " object\"}}");
    cmd(c, "{\"execute\": 1}",
        "{\"error\": {\"class\": \"GenericError\", \"desc\": \"QMP input member 'execute'"
        " must be a string\"}}");
    cmd(c, "{\"execute\": \"query-version\", \"arguments\": []}",
        "{\"error\": {\"class\": \"GenericError\", \"desc\": \"QMP input member 'arguments'"
        " must be an object\"}}");
    cmd(c, "{\"execute\": \"query-version\", \"foo\": 1}",
        "{\"error\": {\"class\": \"GenericError\", \"desc\": \"QMP input member 'foo' is"
        " unexpected\"}}");
    cmd(c, "{\"execute\": \"query-version\", \"arguments\": {\"x\": 1}}",
        "{\"error\": {\"class\": \"GenericError\", \"desc\": \"Parameter 'x' is unexpected\"}}");
    cmd(c, "{\"exec-oob\": \"query-version\"}",
        "{\"error\": {\"class\": \"GenericError\", \"desc\": \"QMP input member 'exec-oob' is"
        " unexpected\"}}");
    /* The error class of a handler's GError is passed through. */
    cmd(c, "{\"execute\": \"cont\"}",
        "{\"error\": {\"class\": \"DeviceNotActive\", \"desc\": \"not now\"}}");
    /* with an id, QEMU writes it first (its dict's order), after "return" otherwise */
    cmd(c, "{\"execute\": \"nope\", \"id\": 8}",
        "{\"id\": 8, \"error\": {\"class\": \"CommandNotFound\", \"desc\": \"The command nope"
        " has not been found\"}}");
    /* QEMU's parser's words */
    cmd(c, "{\"execute\": tru}",
        "{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error,"
        " invalid keyword 'tru'\"}}");
    cmd(c, "{\"execute\": \"\\ud800\\u0041\"}",
        "{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error,"
        " \\\\ud800 is not a valid Unicode character\"}}");
    /* The session survives all of that. */
    cmd(c, "{\"execute\": \"query-commands\", \"id\": 9}",
        "{\"return\": [{\"name\": \"add-fd\"}, {\"name\": \"closefd\"}, {\"name\": \"cont\"},"
        " {\"name\": \"getfd\"}, {\"name\": \"migrate-set-parameters\"},"
        " {\"name\": \"qmp_capabilities\"}, {\"name\": \"query-commands\"},"
        " {\"name\": \"query-fdsets\"}, {\"name\": \"query-migrate-parameters\"},"
        " {\"name\": \"query-version\"}, {\"name\": \"remove-fd\"},"
        " {\"name\": \"stop\"}], \"id\": 9}");
    client_close(c);
}

/*
 * Integers json-glib reads otherwise than QEMU's parser, answered as QEMU
 * 10.x does: a uint64 member takes 2^63..2^64-1 (and, for backward
 * compatibility, any int64: -1 is 2^64-1) and reports it unsigned; beyond
 * both ranges the number is a double, which no integer member takes; a
 * signed member takes no uint64.
 */
static void test_big_integers(Fixture *f, gconstpointer data)
{
    static const char *const refused[] = {
        "18446744073709551616", "99999999999999999999999", "-9223372036854775809", "1.5",
    };
    Client *c = client_negotiated(f);

    cmd(c, "{\"execute\": \"migrate-set-parameters\", \"arguments\": "
        "{\"max-bandwidth\": 18446744073709551615}}", "{\"return\": {}}");
    cmd(c, "{\"execute\": \"query-migrate-parameters\"}",
        "{\"return\": {\"max-bandwidth\": 18446744073709551615}}");
    cmd(c, "{\"execute\": \"migrate-set-parameters\", \"arguments\": "
        "{\"max-bandwidth\": 9223372036854775808}}", "{\"return\": {}}");
    cmd(c, "{\"execute\": \"query-migrate-parameters\"}",
        "{\"return\": {\"max-bandwidth\": 9223372036854775808}}");
    for (size_t i = 0; i < G_N_ELEMENTS(refused); i++) {
        g_autofree char *text = g_strdup_printf("{\"execute\": \"migrate-set-parameters\", "
                                                "\"arguments\": {\"max-bandwidth\": %s}}",
                                                refused[i]);
        cmd(c, text, "{\"error\": {\"class\": \"GenericError\", \"desc\": "
            "\"Parameter 'max-bandwidth' expects uint64\"}}");
    }
    cmd(c, "{\"execute\": \"query-migrate-parameters\"}",
        "{\"return\": {\"max-bandwidth\": 9223372036854775808}}");
    cmd(c, "{\"execute\": \"migrate-set-parameters\", \"arguments\": "
        "{\"max-bandwidth\": -1}}", "{\"return\": {}}");
    cmd(c, "{\"execute\": \"query-migrate-parameters\"}",
        "{\"return\": {\"max-bandwidth\": 18446744073709551615}}");
    /* a uint8 member: read as uint64 first, then range-checked */
    cmd(c, "{\"execute\": \"migrate-set-parameters\", \"arguments\": "
        "{\"multifd-channels\": 18446744073709551615}}",
        "{\"error\": {\"class\": \"GenericError\", \"desc\": "
        "\"Parameter 'multifd-channels' expects uint8_t\"}}");
    /* signed: neither a uint64 nor a double */
    cmd(c, "{\"execute\": \"remove-fd\", \"arguments\": {\"fdset-id\": 9223372036854775808}}",
        "{\"error\": {\"class\": \"GenericError\", \"desc\": "
        "\"Invalid parameter type for 'fdset-id', expected: integer\"}}");
    cmd(c, "{\"execute\": \"remove-fd\", \"arguments\": {\"fdset-id\": -9223372036854775809}}",
        "{\"error\": {\"class\": \"GenericError\", \"desc\": "
        "\"Invalid parameter type for 'fdset-id', expected: integer\"}}");
    /* the id is echoed as it came */
    cmd(c, "{\"execute\": \"query-fdsets\", \"id\": 18446744073709551615}",
        "{\"return\": [], \"id\": 18446744073709551615}");
    cmd(c, "{\"execute\": \"query-fdsets\", \"id\": -1}", "{\"return\": [], \"id\": -1}");
    client_close(c);
}

/*
 * A key repeated in one object: json-glib would keep the last value, QEMU's
 * parser refuses the text (no id: it did not parse).
 */
static void test_duplicate_key(Fixture *f, gconstpointer data)
{
    Client *c = client_negotiated(f);
    const char *dup = "{\"error\": {\"class\": \"GenericError\", \"desc\": "
                      "\"JSON parse error, duplicate key\"}}";

    cmd(c, "{\"execute\": \"migrate-set-parameters\", \"arguments\": "
        "{\"multifd-channels\": 4, \"multifd-channels\": 0}}", dup);
    cmd(c, "{\"execute\": \"query-fdsets\", \"id\": 1, \"id\": 2}", dup);
    cmd(c, "{\"execute\": \"remove-fd\", \"arguments\": {\"fdset-id\": 1, "
        "\"fdset-\\u0069d\": 2}}", dup);
    /* the same key in two objects is no repetition */
    cmd(c, "{\"execute\": \"query-fdsets\", \"id\": {\"id\": 1}}",
        "{\"return\": [], \"id\": {\"id\": 1}}");
    client_close(c);
}

/*
 * Nesting past 1024 levels is refused with QEMU's words, and, as in QEMU,
 * each closer after the refused opener is an error of its own; the
 * client goes on.
 */
static void test_too_deep(Fixture *f, gconstpointer data)
{
    Client *c = client_negotiated(f);
    g_autoptr(GString) deep = g_string_new(NULL);

    for (int i = 0; i < 1025; i++) {
        g_string_append_c(deep, '[');
    }
    for (int i = 0; i < 1030; i++) {
        g_string_append_c(deep, ']');
    }
    client_send(c, deep->str);
    expect(c, "{\"error\": {\"class\": \"GenericError\", \"desc\": "
              "\"JSON nesting depth limit exceeded\"}}");
    for (int i = 0; i < 1030; i++) {
        expect(c, "{\"error\": {\"class\": \"GenericError\", \"desc\": "
                  "\"JSON parse error, expecting value\"}}");
    }
    cmd(c, "{\"execute\": \"query-fdsets\", \"id\": 1}", "{\"return\": [], \"id\": 1}");
    client_close(c);
}

static void test_pipelined(Fixture *f, gconstpointer data)
{
    Client *c = client_negotiated(f);
    const char *two = "{\"execute\": \"query-version\", \"id\": 1}{\"execute\": \"nope\", "
                      "\"id\": 2}\n{\"execute\":\"qmp_capabilities\",\"id\":3}";
    const char *split = "{\"execute\": \"query-fd";

    client_send(c, two);
    expect(c, "{\"return\": {\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": 10},"
              " \"package\": \"mapram 0.1.0\"}, \"id\": 1}");
    expect(c, "{\"id\": 2, \"error\": {\"class\": \"CommandNotFound\", \"desc\": \"The"
              " command nope has not been found\"}}");
    expect(c, "{\"id\": 3, \"error\": {\"class\": \"CommandNotFound\", \"desc\": \"Capabilities"
              " negotiation is already complete, command ignored\"}}");
    /* One command split over several writes. */
    client_send(c, split);
    g_assert_null(client_try_line(c, 100));
    client_send(c, "sets\", \"id\": \"s\"");
    g_assert_null(client_try_line(c, 100));
    cmd(c, "}", "{\"return\": [], \"id\": \"s\"}");
    client_close(c);
}

static void test_one_client_at_a_time(Fixture *f, gconstpointer data)
{
    Client *a = client_negotiated(f);
    Client *b = client_connect(f);
    char *none = client_try_line(b, 300);

    g_assert_null(none);          /* b waits in the backlog */
    client_close(a);
    expect(b, GREETING);
    /* A new client starts in negotiation mode again. */
    cmd(b, "{\"execute\": \"query-fdsets\"}",
        "{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"Expecting capabilities"
        " negotiation with 'qmp_capabilities'\"}}");
    client_close(b);
}

static void check_event(const char *line, const char *event, gint64 pass)
{
    g_autoptr(JsonObject) ev = parse_line(line);
    JsonObject *ts = json_object_get_object_member(ev, "timestamp");
    JsonObjectIter it;
    const char *key;
    JsonNode *v;
    int i = 0;
    static const char *const order[] = { "timestamp", "event", "data" };

    g_assert_cmpstr(json_object_get_string_member(ev, "event"), ==, event);
    g_assert_cmpint(json_object_get_int_member(ts, "seconds"), >, 1600000000);
    g_assert_cmpint(json_object_get_int_member(ts, "microseconds"), >=, 0);
    g_assert_cmpint(json_object_get_int_member(ts, "microseconds"), <, 1000000);
    json_object_iter_init_ordered(&it, ev);
    while (json_object_iter_next_ordered(&it, &key, &v)) {
        g_assert_cmpstr(key, ==, order[i++]);
    }
    if (pass < 0) {
        g_assert_false(json_object_has_member(ev, "data"));
    } else {
        g_assert_cmpint(json_object_get_int_member(json_object_get_object_member(ev, "data"),
                                                   "pass"), ==, pass);
    }
}

#define N_EVENTS 200

static gpointer event_thread(gpointer unused)
{
    for (int i = 1; i <= N_EVENTS; i++) {
        JsonObject *data = json_object_new();

        json_object_set_int_member(data, "pass", i);
        qmp_event_send("MIGRATION_PASS", data);
    }
    return NULL;
}

static void test_events(Fixture *f, gconstpointer data)
{
    Client *c = client_negotiated(f);
    g_autofree char *stop = NULL;
    GThread *t;

    /* An event emitted by a handler precedes its reply. */
    client_send(c, "{\"execute\": \"stop\", \"id\": 1}");
    stop = client_line(c);
    check_event(stop, "STOP", -1);
    expect(c, "{\"return\": {}, \"id\": 1}");

    /* Events from another thread arrive complete and in order. */
    t = g_thread_new("events", event_thread, NULL);
    g_thread_join(t);
    for (int i = 1; i <= N_EVENTS; i++) {
        g_autofree char *line = client_line(c);

        check_event(line, "MIGRATION_PASS", i);
    }
    client_close(c);
}

static void test_events_need_negotiation(Fixture *f, gconstpointer data)
{
    Client *c = client_connect(f);
    GThread *t;
    char *line;

    expect(c, GREETING);
    t = g_thread_new("events", event_thread, NULL);
    g_thread_join(t);
    /* A round trip: the queued events have been flushed after it. */
    cmd(c, "{\"execute\": \"stop\"}",
        "{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"Expecting capabilities"
        " negotiation with 'qmp_capabilities'\"}}");
    cmd(c, "{\"execute\": \"qmp_capabilities\"}", "{\"return\": {}}");
    line = client_try_line(c, 200);
    g_assert_null(line);
    client_close(c);
}

typedef struct Rest {
    int fd;
    const char *buf;
    size_t len;
} Rest;

static gpointer write_rest(gpointer opaque)
{
    Rest *r = opaque;

    while (r->len) {
        ssize_t n = write(r->fd, r->buf, r->len);

        g_assert_cmpint(n, >, 0);
        r->buf += n;
        r->len -= n;
    }
    return NULL;
}

#define BP_COMMANDS 100000

/*
 * A client that sends commands and reads nothing: the server stops
 * reading it once a MiB of replies waits (its writes stall; it used to
 * read on and buffer every reply), and once the client reads it gets
 * every reply, in order.
 */
static void test_backpressure(Fixture *f, gconstpointer data)
{
    Client *c = client_negotiated(f);
    g_autoptr(GString) in = g_string_new(NULL);
    int small = 4096;
    size_t written = 0;
    Rest rest;
    GThread *t;

    for (int i = 1; i <= BP_COMMANDS; i++) {
        g_string_append_printf(in, "{\"id\":%d}", i);
    }
    g_assert_cmpint(setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), ==, 0);
    g_assert_cmpint(setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), ==, 0);
    g_assert_cmpint(fcntl(c->fd, F_SETFL, O_NONBLOCK), ==, 0);
    while (written < in->len) {
        ssize_t n = write(c->fd, in->str + written, in->len - written);
        struct pollfd pfd = { .fd = c->fd, .events = POLLOUT };

        if (n > 0) {
            written += n;
            continue;
        }
        g_assert_cmpint(errno, ==, EAGAIN);
        if (poll(&pfd, 1, 2000) == 0) {
            break;          /* the server has stopped reading us */
        }
    }
    /*
     * The server stopped reading: most of the input is still ours.  (Not
     * the process's RSS: under ASan freed memory stays resident in its
     * quarantine, and the server is this process.)
     */
    g_assert_cmpuint(written, <, in->len / 2);

    g_assert_cmpint(fcntl(c->fd, F_SETFL, 0), ==, 0);
    rest = (Rest){ .fd = c->fd, .buf = in->str + written, .len = in->len - written };
    t = g_thread_new("rest", write_rest, &rest);
    for (int i = 1; i <= BP_COMMANDS; i++) {
        g_autofree char *want = g_strdup_printf(
            "{\"id\": %d, \"error\": {\"class\": \"GenericError\", \"desc\": \"QMP input lacks"
            " member 'execute'\"}}", i);

        expect(c, want);
    }
    g_thread_join(t);
    cmd(c, "{\"execute\": \"query-fdsets\", \"id\": \"last\"}", "{\"return\": [], \"id\": \"last\"}");
    client_close(c);
}

#define BIG_EVENTS 300
#define BIG_EVENT_PAD (64 * 1024)

typedef struct BigEvents {
    QemuMutex lock;
    QemuCond cond;
    bool sent;                 /* protected by lock */
} BigEvents;

/* On the loop thread: every event is queued before the client can read any. */
static gboolean send_big_events(gpointer opaque)
{
    BigEvents *be = opaque;
    g_autofree char *pad = g_malloc(BIG_EVENT_PAD + 1);

    memset(pad, 'x', BIG_EVENT_PAD);
    pad[BIG_EVENT_PAD] = 0;
    for (int i = 1; i <= BIG_EVENTS; i++) {
        JsonObject *data = json_object_new();

        json_object_set_int_member(data, "pass", i);
        json_object_set_string_member(data, "pad", pad);
        qmp_event_send("MIGRATION_PASS", data);
    }
    qemu_mutex_lock(&be->lock);
    be->sent = true;
    qemu_cond_signal(&be->cond);
    qemu_mutex_unlock(&be->lock);
    return G_SOURCE_REMOVE;
}

/*
 * Events still queue for a client that reads nothing, up to 16 MiB: past
 * that it is dropped (EOF after what the socket held), with a line on
 * stderr, and the next client is served.
 */
static void test_output_cap(Fixture *f, gconstpointer data)
{
    Client *c = client_negotiated(f);
    g_autofree char *log_path = g_build_filename(f->dir, "stderr", NULL);
    g_autofree char *log = NULL;
    g_autofree char *want = NULL;
    int log_fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int saved = dup(STDERR_FILENO);
    size_t got = 0;
    Client *next;
    BigEvents be = { .sent = false };

    g_assert_cmpint(log_fd, >=, 0);
    dup2(log_fd, STDERR_FILENO);
    qemu_mutex_init(&be.lock);
    qemu_cond_init(&be.cond);
    g_idle_add(send_big_events, &be);
    qemu_mutex_lock(&be.lock);
    while (!be.sent) {
        qemu_cond_wait(&be.cond, &be.lock);
    }
    qemu_mutex_unlock(&be.lock);
    qemu_cond_destroy(&be.cond);
    qemu_mutex_destroy(&be.lock);
    for (;;) {
        struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
        char tmp[65536];
        ssize_t n;

        g_assert_cmpint(poll(&pfd, 1, 10000), ==, 1);
        n = read(c->fd, tmp, sizeof(tmp));
        g_assert_cmpint(n, >=, 0);
        if (n == 0) {
            break;
        }
        got += n;
    }
    g_assert_cmpuint(got, <, (size_t)BIG_EVENTS * BIG_EVENT_PAD / 2);
    client_close(c);
    next = client_connect(f);
    expect(next, GREETING);
    client_close(next);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    close(log_fd);
    g_assert_true(g_file_get_contents(log_path, &log, NULL, NULL));
    unlink(log_path);
    want = g_strdup_printf("mapram: QMP unix:%s,server=on,wait=off: client dropped: more than"
                           " 16 MiB of output unread\n", f->path);
    g_assert_cmpstr(log, ==, want);
}

static int tmp_file(Fixture *f, const char *name, int flags)
{
    g_autofree char *p = g_build_filename(f->dir, name, NULL);
    int fd = open(p, flags | O_CREAT | O_CLOEXEC, 0600);

    unlink(p);
    return fd;
}

static void test_getfd(Fixture *f, gconstpointer data)
{
    Client *c = client_negotiated(f);
    g_autoptr(GError) err = NULL;
    int fds[2];
    int got;
    struct stat a, b;

    g_assert_cmpint(pipe2(fds, O_CLOEXEC), ==, 0);
    cmd(c, "{\"execute\": \"getfd\", \"arguments\": {\"fdname\": \"p\"}}",
        "{\"error\": {\"class\": \"GenericError\", \"desc\": \"No file descriptor supplied"
        " via SCM_RIGHTS\"}}");
    client_send_fd(c, "{\"execute\": \"getfd\", \"arguments\": {\"fdname\": \"1p\"}}", fds[1]);
    expect(c, "{\"error\": {\"class\": \"GenericError\", \"desc\": \"Parameter 'fdname' expects"
              " a name not starting with a digit\"}}");
    client_send_fd(c, "{\"execute\": \"getfd\", \"arguments\": {\"fdname\": \"p\"}}", fds[1]);
    expect(c, "{\"return\": {}}");
    got = monitor_get_fd("p", &err);
    g_assert_no_error(err);
    g_assert_cmpint(fstat(got, &a), ==, 0);
    g_assert_cmpint(fstat(fds[1], &b), ==, 0);
    g_assert_cmpuint(a.st_ino, ==, b.st_ino);
    close(got);
    /* monitor_get_fd hands the fd over, as QEMU's does. */
    g_assert_cmpint(monitor_get_fd("p", &err), ==, -1);
    g_assert_cmpstr(err->message, ==, "File descriptor named 'p' has not been found");
    cmd(c, "{\"execute\": \"closefd\", \"arguments\": {\"fdname\": \"p\"}}",
        "{\"error\": {\"class\": \"GenericError\", \"desc\": \"File descriptor named 'p' not"
        " found\"}}");
    client_send_fd(c, "{\"execute\": \"getfd\", \"arguments\": {\"fdname\": \"q\"}}", fds[1]);
    expect(c, "{\"return\": {}}");
    cmd(c, "{\"execute\": \"closefd\", \"arguments\": {\"fdname\": \"q\"}}", "{\"return\": {}}");
    close(fds[0]);
    close(fds[1]);
    client_close(c);
}

static char *add_fd(Client *c, const char *args, int fd)
{
    g_autofree char *text = g_strdup_printf("{\"execute\": \"add-fd\", \"arguments\": %s}", args);

    client_send_fd(c, text, fd);
    return client_line(c);
}

static gint64 added_fd(const char *line, gint64 want_set)
{
    g_autoptr(JsonObject) rsp = parse_line(line);
    JsonObject *ret = json_object_get_object_member(rsp, "return");

    g_assert_nonnull(ret);
    g_assert_cmpint(json_object_get_int_member(ret, "fdset-id"), ==, want_set);
    return json_object_get_int_member(ret, "fd");
}

static void test_fdsets(Fixture *f, gconstpointer data)
{
    Client *c = client_negotiated(f);
    int wr = tmp_file(f, "w", O_WRONLY);
    int rd = tmp_file(f, "r", O_RDONLY);
    g_autoptr(GError) err = NULL;
    g_autofree char *l1 = NULL, *l2 = NULL, *l3 = NULL, *l4 = NULL, *bad = NULL;
    g_autofree char *want = NULL;
    gint64 w0, r0, x5, y1;
    int dup_fd;
    struct stat a, b;

    monitor_fdsets_init();
    cmd(c, "{\"execute\": \"add-fd\"}",
        "{\"error\": {\"class\": \"GenericError\", \"desc\": \"No file descriptor supplied"
        " via SCM_RIGHTS\"}}");
    bad = add_fd(c, "{\"fdset-id\": -1}", wr);
    g_assert_cmpstr(bad, ==, "{\"error\": {\"class\": \"GenericError\", \"desc\": \"Parameter"
                             " 'fdset-id' expects a non-negative value\"}}");
    l1 = add_fd(c, "{}", wr);
    w0 = added_fd(l1, 0);
    l2 = add_fd(c, "{\"fdset-id\": 0, \"opaque\": \"ro\"}", rd);
    r0 = added_fd(l2, 0);
    l3 = add_fd(c, "{\"fdset-id\": 5}", wr);
    x5 = added_fd(l3, 5);
    l4 = add_fd(c, "{}", rd);       /* lowest free id */
    y1 = added_fd(l4, 1);
    want = g_strdup_printf("{\"return\": [{\"fdset-id\": 5, \"fds\": [{\"fd\": %" G_GINT64_FORMAT
                           "}]}, {\"fdset-id\": 1, \"fds\": [{\"fd\": %" G_GINT64_FORMAT "}]},"
                           " {\"fdset-id\": 0, \"fds\": [{\"fd\": %" G_GINT64_FORMAT "}, {\"fd\": %"
                           G_GINT64_FORMAT ", \"opaque\": \"ro\"}]}]}", x5, y1, w0, r0);
    cmd(c, "{\"execute\": \"query-fdsets\"}", want);

    /* /dev/fdset/0 opens a dup of the member with the same access mode. */
    dup_fd = qemu_open("/dev/fdset/0", O_WRONLY, 0, &err);
    g_assert_no_error(err);
    g_assert_cmpint(dup_fd, >=, 0);
    g_assert_cmpint(fcntl(dup_fd, F_GETFL) & O_ACCMODE, ==, O_WRONLY);
    g_assert_cmpint(fcntl(dup_fd, F_GETFD) & FD_CLOEXEC, ==, FD_CLOEXEC);
    g_assert_cmpint(fstat(dup_fd, &a), ==, 0);
    g_assert_cmpint(fstat(wr, &b), ==, 0);
    g_assert_cmpuint(a.st_ino, ==, b.st_ino);

    g_assert_cmpint(qemu_open("/dev/fdset/0", O_WRONLY | O_DIRECT, 0, &err), ==, -1);
    g_assert_cmpstr(err->message, ==, "Failed to find file descriptor with matching flags=0x4001");
    g_clear_error(&err);
    g_assert_cmpint(qemu_open("/dev/fdset/0", O_RDWR, 0, &err), ==, -1);
    g_assert_cmpstr(err->message, ==, "Failed to find file descriptor with matching flags=0x2");
    g_clear_error(&err);
    g_assert_cmpint(qemu_open("/dev/fdset/9", O_RDONLY, 0, &err), ==, -1);
    g_assert_cmpstr(err->message, ==, "Failed to find fdset /dev/fdset/9");
    g_clear_error(&err);
    g_assert_cmpint(qemu_open("/dev/fdset/x1", O_RDONLY, 0, &err), ==, -1);
    g_assert_cmpstr(err->message, ==, "Could not parse fdset /dev/fdset/x1");
    g_clear_error(&err);

    /* remove-fd errors */
    cmd(c, "{\"execute\": \"remove-fd\", \"arguments\": {\"fdset-id\": 0, \"fd\": 9999}}",
        "{\"error\": {\"class\": \"GenericError\", \"desc\": \"File descriptor named"
        " 'fdset-id:0, fd:9999' not found\"}}");
    cmd(c, "{\"execute\": \"remove-fd\", \"arguments\": {\"fdset-id\": 42}}",
        "{\"error\": {\"class\": \"GenericError\", \"desc\": \"File descriptor named"
        " 'fdset-id:42' not found\"}}");

    /* Set 0 outlives its user fds while a dup is open. */
    cmd(c, "{\"execute\": \"remove-fd\", \"arguments\": {\"fdset-id\": 0}}", "{\"return\": {}}");
    cmd(c, "{\"execute\": \"remove-fd\", \"arguments\": {\"fdset-id\": 5}}", "{\"return\": {}}");
    g_free(want);
    want = g_strdup_printf("{\"return\": [{\"fdset-id\": 1, \"fds\": [{\"fd\": %" G_GINT64_FORMAT
                           "}]}, {\"fdset-id\": 0, \"fds\": []}]}", y1);
    cmd(c, "{\"execute\": \"query-fdsets\"}", want);
    g_assert_cmpint(qemu_close(dup_fd), ==, 0);
    g_free(want);
    want = g_strdup_printf("{\"return\": [{\"fdset-id\": 1, \"fds\": [{\"fd\": %" G_GINT64_FORMAT
                           "}]}]}", y1);
    cmd(c, "{\"execute\": \"query-fdsets\"}", want);
    g_free(want);
    want = g_strdup_printf("{\"execute\": \"remove-fd\", \"arguments\": {\"fdset-id\": 1,"
                           " \"fd\": %" G_GINT64_FORMAT "}}", y1);
    cmd(c, want, "{\"return\": {}}");
    cmd(c, "{\"execute\": \"query-fdsets\"}", "{\"return\": []}");
    close(wr);
    close(rd);
    client_close(c);
}

static guint open_fd_count(void)
{
    g_autoptr(GDir) dir = g_dir_open("/proc/self/fd", 0, NULL);
    guint n = 0;

    g_assert_nonnull(dir);
    while (g_dir_read_name(dir)) {
        n++;
    }
    return n;
}

static void assert_same_file(int fd, int want)
{
    struct stat a, b;

    g_assert_cmpint(fstat(fd, &a), ==, 0);
    g_assert_cmpint(fstat(want, &b), ==, 0);
    g_assert_cmpuint(a.st_dev, ==, b.st_dev);
    g_assert_cmpuint(a.st_ino, ==, b.st_ino);
}

/*
 * A command takes the first fd that came with it and nothing else: the
 * rest of its batch, and fds that came with a command that took none, are
 * closed, never handed to a later command.
 */
static void test_fds_with_command(Fixture *f, gconstpointer data)
{
    Client *c = client_negotiated(f);
    int a = tmp_file(f, "a", O_WRONLY), b = tmp_file(f, "b", O_WRONLY);
    int ab[2] = { a, b };
    int cfd = tmp_file(f, "c", O_WRONLY);
    g_autoptr(GError) err = NULL;
    g_autofree char *l1 = NULL, *l2 = NULL;
    guint before;
    int got;

    monitor_fdsets_init();
    client_send_fds(c, "{\"execute\": \"add-fd\", \"arguments\": {\"opaque\": \"first\"}}",
                    ab, 2);
    l1 = client_line(c);
    assert_same_file(added_fd(l1, 0), a);
    l2 = add_fd(c, "{\"opaque\": \"second\"}", cfd);
    assert_same_file(added_fd(l2, 1), cfd);

    /*
     * fds that came with a command that takes none stay queued, as in
     * QEMU, until a newer batch replaces them (so the fd count stays
     * flat) or a command takes one
     */
    client_send_fds(c, "{\"execute\": \"query-version\", \"id\": 1}", ab, 2);
    expect(c, "{\"return\": {\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": 10},"
              " \"package\": \"mapram 0.1.0\"}, \"id\": 1}");
    before = open_fd_count();
    for (int i = 0; i < 50; i++) {
        client_send_fds(c, "{\"execute\": \"query-fdsets\", \"id\": 2}", &cfd, 1);
        g_free(client_line(c));
    }
    g_assert_cmpuint(open_fd_count(), ==, before - 1);       /* one fd queued, not two */
    cmd(c, "{\"execute\": \"getfd\", \"arguments\": {\"fdname\": \"x\"}}", "{\"return\": {}}");
    got = monitor_get_fd("x", &err);
    g_assert_no_error(err);
    assert_same_file(got, cfd);
    close(got);
    cmd(c, "{\"execute\": \"getfd\", \"arguments\": {\"fdname\": \"x\"}}",
        "{\"error\": {\"class\": \"GenericError\", \"desc\": \"No file descriptor supplied"
        " via SCM_RIGHTS\"}}");

    /*
     * One read with a command that takes no fd and, behind it, the one the
     * fd was sent with: the second gets it (it used to be closed after the
     * first)
     */
    client_send_fd(c, "{\"execute\": \"query-status\", \"id\": 3}"
                   "{\"execute\": \"getfd\", \"arguments\": {\"fdname\": \"y\"}}", cfd);
    g_free(client_line(c));
    expect(c, "{\"return\": {}}");
    got = monitor_get_fd("y", &err);
    g_assert_no_error(err);
    assert_same_file(got, cfd);
    close(got);

    /* getfd takes the fd sent with it, not one left from before */
    client_send_fds(c, "{\"execute\": \"query-version\"}", &a, 1);
    g_free(client_line(c));
    client_send_fd(c, "{\"execute\": \"getfd\", \"arguments\": {\"fdname\": \"x\"}}", cfd);
    expect(c, "{\"return\": {}}");
    got = monitor_get_fd("x", &err);
    g_assert_no_error(err);
    assert_same_file(got, cfd);
    close(got);

    cmd(c, "{\"execute\": \"remove-fd\", \"arguments\": {\"fdset-id\": 0}}", "{\"return\": {}}");
    cmd(c, "{\"execute\": \"remove-fd\", \"arguments\": {\"fdset-id\": 1}}", "{\"return\": {}}");
    close(a);
    close(b);
    close(cfd);
    client_close(c);
}

static void test_fdset_direct_io(Fixture *f, gconstpointer data)
{
    Client *c = client_negotiated(f);
    int plain = tmp_file(f, "p", O_WRONLY);
    int direct = tmp_file(f, "d", O_WRONLY | O_DIRECT);
    g_autoptr(GError) err = NULL;
    g_autofree char *l1 = NULL, *l2 = NULL;
    int d1, d2;

    if (direct < 0) {
        g_test_skip("no O_DIRECT on the test directory's filesystem");
        close(plain);
        client_close(c);
        return;
    }
    monitor_fdsets_init();
    l1 = add_fd(c, "{\"fdset-id\": 3}", plain);
    added_fd(l1, 3);
    l2 = add_fd(c, "{\"fdset-id\": 3}", direct);
    added_fd(l2, 3);
    d1 = qemu_open("/dev/fdset/3", O_WRONLY | O_DIRECT, 0, &err);
    g_assert_no_error(err);
    g_assert_cmpint(fcntl(d1, F_GETFL) & O_DIRECT, ==, O_DIRECT);
    d2 = qemu_open("/dev/fdset/3", O_WRONLY, 0, &err);
    g_assert_no_error(err);
    g_assert_cmpint(fcntl(d2, F_GETFL) & O_DIRECT, ==, 0);
    qemu_close(d1);
    qemu_close(d2);
    cmd(c, "{\"execute\": \"remove-fd\", \"arguments\": {\"fdset-id\": 3}}", "{\"return\": {}}");
    cmd(c, "{\"execute\": \"query-fdsets\"}", "{\"return\": []}");
    close(plain);
    close(direct);
    client_close(c);
}

static void test_spec_parsing(void)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *dir = g_dir_make_tmp("qmp-spec-XXXXXX", NULL);
    g_autofree char *path = g_build_filename(dir, "a,b.sock", NULL);
    g_autofree char *doubled = NULL;
    g_autofree char *spec = NULL;
    g_auto(GStrv) parts = NULL;
    Monitor *mon;

    g_assert_null(monitor_new_qmp("bogus", &err));
    g_assert_cmpstr(err->message, ==, "QMP: unsupported address 'bogus'");
    g_clear_error(&err);
    g_assert_null(monitor_new_qmp("unix:/tmp/x.sock", &err));
    g_assert_cmpstr(err->message, ==,
                    "QMP: 'unix:/tmp/x.sock' must be a server socket (add ',server=on')");
    g_clear_error(&err);
    g_assert_null(monitor_new_qmp("unix:/tmp/x.sock,server,frob=1", &err));
    g_assert_cmpstr(err->message, ==, "Invalid parameter 'frob'");
    g_clear_error(&err);

    /* QEMU's spellings: bare "server", "nowait", and ",," for a comma. */
    parts = g_strsplit(path, ",", -1);
    doubled = g_strjoinv(",,", parts);
    spec = g_strdup_printf("unix:%s,server,nowait", doubled);
    mon = monitor_new_qmp(spec, &err);
    g_assert_no_error(err);
    g_assert_nonnull(mon);
    g_assert_true(g_file_test(path, G_FILE_TEST_EXISTS));
    monitor_cleanup_all();
    g_assert_false(g_file_test(path, G_FILE_TEST_EXISTS));
    rmdir(dir);
}

/* A client of family on the loopback at port. */
static Client *client_connect_tcp(int family, int port)
{
    Client *c = g_new0(Client, 1);
    struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = htons(port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    struct sockaddr_in6 in6 = { .sin6_family = AF_INET6, .sin6_port = htons(port),
                                .sin6_addr = IN6ADDR_LOOPBACK_INIT };

    c->fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    g_assert_cmpint(c->fd, >=, 0);
    g_assert_cmpint(family == AF_INET ? connect(c->fd, (struct sockaddr *)&in, sizeof(in))
                                      : connect(c->fd, (struct sockaddr *)&in6, sizeof(in6)),
                    ==, 0);
    c->buf = g_string_new(NULL);
    return c;
}

/*
 * -qmp tcp::PORT listens on 0.0.0.0 and :: as QEMU's does (it listened on
 * 0.0.0.0 alone): a client over either family is served, one at a time.
 */
static void test_tcp_any(void)
{
    g_autoptr(GError) err = NULL;
    GMainLoop *loop = g_main_loop_new(NULL, FALSE);
    Fixture f = { .loop = loop };
    struct sockaddr_in6 lo6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
    socklen_t len = sizeof(lo6);
    int probe = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int port;

    g_assert_cmpint(probe, >=, 0);
    if (bind(probe, (struct sockaddr *)&lo6, sizeof(lo6)) < 0) {
        g_test_skip("no IPv6 loopback here");
        close(probe);
        g_main_loop_unref(loop);
        return;
    }
    g_assert_cmpint(getsockname(probe, (struct sockaddr *)&lo6, &len), ==, 0);
    port = ntohs(lo6.sin6_port);    /* a port free for IPv6 and, most likely, IPv4 */
    close(probe);

    g_autofree char *spec = g_strdup_printf("tcp::%d,server=on,wait=off", port);
    Monitor *mon = monitor_new_qmp(spec, &err);
    g_assert_no_error(err);
    g_assert_nonnull(mon);
    GThread *t = g_thread_new("qmp-loop", loop_thread, &f);

    Client *v6 = client_connect_tcp(AF_INET6, port);
    expect(v6, GREETING);
    Client *v4 = client_connect_tcp(AF_INET, port);
    g_assert_null(client_try_line(v4, 200));        /* waits for the first to go */
    cmd(v6, "{\"execute\": \"qmp_capabilities\"}", "{\"return\": {}}");
    client_close(v6);
    expect(v4, GREETING);
    client_close(v4);
    v6 = client_connect_tcp(AF_INET6, port);
    expect(v6, GREETING);
    client_close(v6);

    g_idle_add(quit_loop, loop);
    g_thread_join(t);
    monitor_cleanup_all();
    g_main_loop_unref(loop);
}

/* -qmp stdio: fds 0 and 1 are swapped for a socket pair for the test. */
static void test_stdio(void)
{
    g_autoptr(GError) err = NULL;
    GMainLoop *loop = g_main_loop_new(NULL, FALSE);
    int sv[2];
    int saved_in = dup(STDIN_FILENO), saved_out = dup(STDOUT_FILENO);
    Client c = { .buf = g_string_new(NULL) };
    Monitor *mon;
    GThread *t;
    Fixture f = { .loop = loop };

    fflush(stdout);
    g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), ==, 0);
    dup2(sv[1], STDIN_FILENO);
    dup2(sv[1], STDOUT_FILENO);
    close(sv[1]);
    c.fd = sv[0];
    mon = monitor_new_qmp("stdio", &err);
    g_assert_no_error(err);
    g_assert_nonnull(mon);
    t = g_thread_new("qmp-loop", loop_thread, &f);
    expect(&c, GREETING);
    cmd(&c, "{\"execute\": \"qmp_capabilities\", \"id\": 1}", "{\"return\": {}, \"id\": 1}");
    cmd(&c, "{\"execute\": \"query-fdsets\"}", "{\"return\": []}");
    g_idle_add(quit_loop, loop);
    g_thread_join(t);
    monitor_cleanup_all();
    dup2(saved_in, STDIN_FILENO);
    dup2(saved_out, STDOUT_FILENO);
    close(saved_in);
    close(saved_out);
    close(sv[0]);
    g_string_free(c.buf, TRUE);
    g_main_loop_unref(loop);
}

static void add(const char *name, void (*fn)(Fixture *, gconstpointer))
{
    g_test_add(name, Fixture, NULL, fixture_setup, fn, fixture_teardown);
}

int main(int argc, char **argv)
{
    g_autoptr(JsonObject) params = json_object_new();

    g_test_init(&argc, &argv, NULL);
    qmp_register_command("stop", test_stop, NULL);
    qmp_register_command("cont", test_cont, NULL);
    qmp_register_command("migrate-set-parameters", test_set_params, params);
    qmp_register_command("query-migrate-parameters", test_query_params, params);
    g_test_add_func("/monitor/qmp/spec", test_spec_parsing);
    g_test_add_func("/monitor/qmp/stdio", test_stdio);
    g_test_add_func("/monitor/qmp/tcp-any", test_tcp_any);
    add("/monitor/qmp/greeting-negotiation", test_greeting_and_negotiation);
    add("/monitor/qmp/errors", test_errors);
    add("/monitor/qmp/big-integers", test_big_integers);
    add("/monitor/qmp/duplicate-key", test_duplicate_key);
    add("/monitor/qmp/too-deep", test_too_deep);
    add("/monitor/qmp/pipelined", test_pipelined);
    add("/monitor/qmp/one-client-at-a-time", test_one_client_at_a_time);
    add("/monitor/qmp/events", test_events);
    add("/monitor/qmp/events-need-negotiation", test_events_need_negotiation);
    add("/monitor/qmp/backpressure", test_backpressure);
    add("/monitor/qmp/output-cap", test_output_cap);
    add("/monitor/fds/getfd", test_getfd);
    add("/monitor/fds/fdsets", test_fdsets);
    add("/monitor/fds/fdset-direct-io", test_fdset_direct_io);
    add("/monitor/fds/with-command", test_fds_with_command);
    return g_test_run();
}
