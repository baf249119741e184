/*
 * QMP servers: listening sockets and stdio, one client at a time each,
 * on the GLib main context of the main thread; and event delivery.
 *
 * A socket monitor stops accepting while it has a client, so further
 * clients wait in the listen backlog until the current one disconnects
 * (QEMU's chardev does the same).  Input bytes go through a JsonSplitter;
 * each complete text is parsed, dispatched and answered in order.
 * Output is queued in outbuf and written without blocking the main loop;
 * lines end with "\r\n" like QEMU's.  A client that does not read its
 * replies is not read either: once MONITOR_OUT_HIGH bytes wait for it,
 * its input watch is removed (and texts already split wait) until the
 * peer has taken enough; events still queue, as QEMU's do, but a client
 * with MONITOR_OUT_MAX bytes unread is dropped.
 *
 * Events may be sent from any thread: from the thread that owns the main
 * context they are written at once (so STOP precedes the reply of "stop",
 * as in QEMU); from other threads they are queued under event_lock and
 * flushed in order by one idle callback on the main context.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <glib-unix.h>

#include "io/channel.h"
#include "monitor-internal.h"
#include "util/error.h"
#include "util/thread.h"

#define MONITOR_READ_SIZE 4096
/*
 * 1 MiB: thousands of replies, so a client that reads late but does read
 * never waits on us, and one that never reads costs at most this much
 * (plus one read's worth of split texts and the socket's own buffer).
 */
#define MONITOR_OUT_HIGH (1 << 20)
/* Only events can pass MONITOR_OUT_HIGH while input is paused: a client this far behind is gone. */
#define MONITOR_OUT_MAX (16 << 20)

struct Monitor {
    /* Immutable after monitor_new_qmp(). */
    char *spec;
    char *unlink_path;        /* unix socket we created, removed at cleanup */
    bool is_stdio;
    bool fd_pass;             /* unix socket: accepts SCM_RIGHTS */
    IOListener *listener;     /* NULL for stdio; tcp: one socket per address, as QEMU */

    /* Main thread only. */
    guint *listen_watches;    /* one per listening socket; all 0 while a client is attached */
    IOChannel *client;        /* socket client, NULL if none */
    int in_fd;                /* -1 when no client */
    int out_fd;
    guint in_watch;           /* 0 with a client attached: paused, output backed up */
    guint out_watch;
    JsonStreamer input;
    GString *outbuf;
    /*
     * The fds of the last recvmsg that brought any (owned): a batch
     * replaces the one before it (closing it), and the first command
     * that takes an fd gets the first and closes the rest (QEMU's
     * chardev keeps one batch the same way), so fds never pile up and a
     * command never takes an fd older than the last batch.
     */
    GArray *recv_fds;
    bool negotiated;
    bool oob;
    /* In-process client (monitor_new_qmp_inproc): where output goes; immutable. */
    MonitorOutFunc out_fn;
    void *out_opaque;
};

static GList *monitors;       /* Monitor*, main thread only */

/* Events from other threads, waiting for the main context. */
static QemuMutex event_lock;
static GQueue event_queue;    /* JsonNode*, protected by event_lock */
static bool event_flush_pending;  /* protected by event_lock */

/* --- state used by the dispatcher --- */

bool monitor_is_negotiated(Monitor *mon)
{
    return mon->negotiated;
}

void monitor_set_negotiated(Monitor *mon, bool oob)
{
    mon->negotiated = true;
    mon->oob = oob;
}

bool monitor_oob_enabled(Monitor *mon)
{
    return mon->oob;
}

static void close_received_fds(Monitor *mon)
{
    for (guint i = 0; i < mon->recv_fds->len; i++) {
        close(g_array_index(mon->recv_fds, int, i));
    }
    g_array_set_size(mon->recv_fds, 0);
}

int monitor_take_received_fd(Monitor *mon)
{
    int fd;

    if (!mon->recv_fds || mon->recv_fds->len == 0) {
        return -1;
    }
    fd = g_array_index(mon->recv_fds, int, 0);
    g_array_remove_index(mon->recv_fds, 0);
    close_received_fds(mon);
    return fd;
}

/* A new batch of fds (owned, taken over) replaces the one still queued. */
static void received_fds_replace(Monitor *mon, const int *fds, guint n)
{
    if (n) {
        close_received_fds(mon);
        g_array_append_vals(mon->recv_fds, fds, n);
    }
}

/* --- output --- */

static gboolean out_ready(gint fd, GIOCondition cond, gpointer opaque);
static gboolean in_ready(gint fd, GIOCondition cond, gpointer opaque);

static bool output_backed_up(Monitor *mon)
{
    return mon->outbuf->len >= MONITOR_OUT_HIGH;
}

/*
 * The client is gone or must go: read its input again (if paused) so
 * that the input watch sees EOF and detaches it in one place.
 */
static void input_watch_ensure(Monitor *mon)
{
    if (mon->in_fd >= 0 && !mon->in_watch) {
        mon->in_watch = g_unix_fd_add(mon->in_fd, G_IO_IN | G_IO_HUP | G_IO_ERR, in_ready, mon);
    }
}

/* The peer failed or is dropped: what it did not read is lost. */
static void client_fail(Monitor *mon)
{
    g_string_truncate(mon->outbuf, 0);
    if (!mon->is_stdio) {
        shutdown(mon->out_fd, SHUT_RDWR);
        /* nothing it sent after this runs */
        json_streamer_reset(&mon->input);
        close_received_fds(mon);
    }
    input_watch_ensure(mon);
}

/*
 * Write as much of outbuf as the peer takes now.  A socket that fails is
 * shut down so that the input watch sees EOF and detaches the client in
 * one place.
 */
static void monitor_flush(Monitor *mon)
{
    while (mon->outbuf->len && mon->out_fd >= 0) {
        ssize_t n;

        if (mon->is_stdio) {
            n = write(mon->out_fd, mon->outbuf->str, mon->outbuf->len);
        } else {
            n = send(mon->out_fd, mon->outbuf->str, mon->outbuf->len,
                     MSG_DONTWAIT | MSG_NOSIGNAL);
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!mon->out_watch) {
                mon->out_watch = g_unix_fd_add(mon->out_fd, G_IO_OUT, out_ready, mon);
            }
            return;
        }
        if (n < 0) {
            client_fail(mon);
            return;
        }
        g_string_erase(mon->outbuf, 0, n);
    }
}

static void input_resume(Monitor *mon);

static gboolean out_ready(gint fd, GIOCondition cond, gpointer opaque)
{
    Monitor *mon = opaque;

    mon->out_watch = 0;
    monitor_flush(mon);
    if (mon->in_fd >= 0 && !mon->in_watch && !output_backed_up(mon)) {
        input_resume(mon);
    }
    return G_SOURCE_REMOVE;
}

/* unsigned_nodes: msg's integers to write as uint64 (a set, or NULL) */
static void monitor_send_unsigned(Monitor *mon, JsonNode *msg, GHashTable *unsigned_nodes)
{
    g_autoptr(GString) line = qmp_json_to_string_unsigned(msg, unsigned_nodes);

    if (mon->out_fn) {
        g_string_append(line, "\r\n");
        mon->out_fn(mon->out_opaque, line->str, line->len);
        return;
    }
    if (mon->out_fd < 0) {
        return;
    }
    if (mon->outbuf->len + line->len + 2 > MONITOR_OUT_MAX) {
        /* stdio cannot be dropped: what it left unread is */
        fprintf(stderr, "mapram: QMP %s: %s dropped: more than %d MiB of output unread\n",
                mon->spec, mon->is_stdio ? "output" : "client", MONITOR_OUT_MAX >> 20);
        client_fail(mon);
        return;
    }
    g_string_append_len(mon->outbuf, line->str, line->len);
    g_string_append(mon->outbuf, "\r\n");
    monitor_flush(mon);
}

static void monitor_send(Monitor *mon, JsonNode *msg)
{
    monitor_send_unsigned(mon, msg, NULL);
}

static void send_greeting(Monitor *mon)
{
    g_autoptr(JsonNode) msg = json_node_new(JSON_NODE_OBJECT);
    JsonObject *root = json_object_new();
    JsonObject *qmp = json_object_new();
    JsonArray *caps = json_array_new();

    json_object_set_member(qmp, "version", qmp_version_info());
    json_array_add_string_element(caps, "oob");
    json_object_set_array_member(qmp, "capabilities", caps);
    json_object_set_object_member(root, "QMP", qmp);
    json_node_take_object(msg, root);
    monitor_send(mon, msg);
}

/* --- input --- */

static void handle_message(Monitor *mon, JsonMessage *msg)
{
    g_autoptr(GHashTable) unsigned_nodes = g_hash_table_new(NULL, NULL);
    g_autoptr(JsonNode) rsp = NULL;

    if (msg->err) {
        rsp = qmp_error_response(msg->err);
    } else {
        rsp = qmp_dispatch(mon, msg->root, msg->u64, unsigned_nodes);
    }
    /*
     * fds the command did not take stay queued, as in QEMU, until a newer
     * batch replaces them: one read may bring a command that takes none
     * and, right behind it, the one they were sent with.
     */
    monitor_send_unsigned(mon, rsp, unsigned_nodes);
}

static void listen_start(Monitor *mon);

/* from_in_watch: called from the input watch, which removes itself. */
static void client_detach(Monitor *mon, bool from_in_watch)
{
    if (mon->in_watch && !from_in_watch) {
        g_source_remove(mon->in_watch);
    }
    mon->in_watch = 0;
    if (mon->out_watch) {
        g_source_remove(mon->out_watch);
        mon->out_watch = 0;
    }
    g_clear_pointer(&mon->client, io_channel_unref);
    mon->in_fd = -1;
    mon->out_fd = -1;
    json_streamer_reset(&mon->input);
    g_string_truncate(mon->outbuf, 0);
    close_received_fds(mon);
    mon->negotiated = false;
    mon->oob = false;
    if (!mon->is_stdio) {
        listen_start(mon);
    }
}

static ssize_t client_read(Monitor *mon, char *buf, size_t len)
{
    g_autoptr(GError) err = NULL;
    ssize_t n;

    if (mon->fd_pass) {
        g_autoptr(GArray) fds = g_array_new(FALSE, FALSE, sizeof(int));

        n = io_socket_recv_with_fds(mon->in_fd, buf, len, fds, &err);
        received_fds_replace(mon, (const int *)fds->data, fds->len);
        return n < 0 ? -1 : n;
    }
    do {
        n = read(mon->in_fd, buf, len);
    } while (n < 0 && errno == EINTR);
    return n;
}

/* Answer the complete texts received, in order, while the client reads its output. */
static void dispatch_pending(Monitor *mon)
{
    JsonMessage *msg;

    while ((mon->in_fd >= 0 || mon->out_fn) && !output_backed_up(mon) &&
           (msg = json_streamer_next(&mon->input))) {
        handle_message(mon, msg);
        json_message_free(msg);
    }
}

/* Bytes from the client. */
static void process_input(Monitor *mon, const char *buf, size_t n)
{
    json_streamer_feed(&mon->input, buf, n);
    dispatch_pending(mon);
}

/* The peer read enough of a backed-up output: go on with its input. */
static void input_resume(Monitor *mon)
{
    dispatch_pending(mon);
    if (!output_backed_up(mon)) {
        input_watch_ensure(mon);
    }
}

static gboolean in_ready(gint fd, GIOCondition cond, gpointer opaque)
{
    Monitor *mon = opaque;
    char buf[MONITOR_READ_SIZE];
    ssize_t n = client_read(mon, buf, sizeof(buf));

    if (n <= 0) {
        client_detach(mon, true);
        return G_SOURCE_REMOVE;
    }
    process_input(mon, buf, n);
    if (mon->in_fd >= 0 && output_backed_up(mon)) {
        mon->in_watch = 0;          /* until out_ready finds the output drained */
        return G_SOURCE_REMOVE;
    }
    return G_SOURCE_CONTINUE;
}

static void client_attach(Monitor *mon, IOChannel *client, int in_fd, int out_fd)
{
    mon->client = client;
    mon->in_fd = in_fd;
    mon->out_fd = out_fd;
    mon->negotiated = false;
    mon->in_watch = g_unix_fd_add(in_fd, G_IO_IN | G_IO_HUP | G_IO_ERR, in_ready, mon);
    send_greeting(mon);
}

/* --- listening --- */

/* Every socket's watch goes, but the one of except (its callback returns G_SOURCE_REMOVE). */
static void listen_stop(Monitor *mon, int except)
{
    for (unsigned i = 0; mon->listener && i < io_listener_count(mon->listener); i++) {
        if (mon->listen_watches[i] && io_listener_fd(mon->listener, i) != except) {
            g_source_remove(mon->listen_watches[i]);
        }
        mon->listen_watches[i] = 0;
    }
}

static gboolean listen_ready(gint fd, GIOCondition cond, gpointer opaque)
{
    Monitor *mon = opaque;
    g_autoptr(GError) err = NULL;
    IOChannel *client = io_socket_accept(fd, &err);

    if (!client) {
        g_warning("QMP %s: %s", mon->spec, err->message);
        return G_SOURCE_CONTINUE;
    }
    listen_stop(mon, fd);           /* one client at a time */
    client_attach(mon, client, io_channel_get_fd(client), io_channel_get_fd(client));
    return G_SOURCE_REMOVE;
}

static void listen_start(Monitor *mon)
{
    for (unsigned i = 0; mon->listener && i < io_listener_count(mon->listener); i++) {
        if (!mon->listen_watches[i]) {
            mon->listen_watches[i] = g_unix_fd_add(io_listener_fd(mon->listener, i), G_IO_IN,
                                                   listen_ready, mon);
        }
    }
}

/* --- creation --- */

typedef struct MonitorSpec {
    char *kind;        /* "unix", "tcp", "stdio" */
    char *addr;        /* path, or host:port */
    bool server;
    bool wait;
} MonitorSpec;

static void monitor_spec_clear(MonitorSpec *ms)
{
    g_free(ms->kind);
    g_free(ms->addr);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(MonitorSpec, monitor_spec_clear)

static bool parse_on_off(const char *opt, const char *val, bool *out, GError **errp)
{
    if (!val || !strcmp(val, "on") || !strcmp(val, "yes") || !strcmp(val, "true")) {
        *out = true;
    } else if (!strcmp(val, "off") || !strcmp(val, "no") || !strcmp(val, "false")) {
        *out = false;
    } else {
        error_setg(errp, "Parameter '%s' expects 'on' or 'off'", opt);
        return false;
    }
    return true;
}

static bool parse_option(MonitorSpec *ms, const char *opt, GError **errp)
{
    g_auto(GStrv) kv = g_strsplit(opt, "=", 2);

    if (!strcmp(kv[0], "server")) {
        return parse_on_off(kv[0], kv[1], &ms->server, errp);
    }
    if (!strcmp(kv[0], "wait")) {
        return parse_on_off(kv[0], kv[1], &ms->wait, errp);
    }
    if (!strcmp(kv[0], "nowait") && !kv[1]) {
        ms->wait = false;
        return true;
    }
    if (!strcmp(kv[0], "nodelay") || !strcmp(kv[0], "telnet")) {
        return true;      /* accepted and meaningless here */
    }
    error_setg(errp, "Invalid parameter '%s'", kv[0]);
    return false;
}

/* "unix:PATH,server=on,wait=off" (",," is a literal comma), "tcp:...", "stdio". */
static bool parse_spec(const char *spec, MonitorSpec *ms, GError **errp)
{
    const char *colon = strchr(spec, ':');
    g_autoptr(GString) addr = g_string_new(NULL);
    const char *p;

    ms->wait = true;
    if (!strcmp(spec, "stdio")) {
        ms->kind = g_strdup("stdio");
        return true;
    }
    if (!colon) {
        error_setg(errp, "QMP: unsupported address '%s'", spec);
        return false;
    }
    ms->kind = g_strndup(spec, colon - spec);
    for (p = colon + 1; *p; p++) {
        if (*p == ',' && p[1] == ',') {
            g_string_append_c(addr, ',');
            p++;
        } else if (*p == ',') {
            break;
        } else {
            g_string_append_c(addr, *p);
        }
    }
    ms->addr = g_string_free(g_steal_pointer(&addr), FALSE);
    while (*p == ',') {
        const char *end = strchr(p + 1, ',');
        g_autofree char *opt = end ? g_strndup(p + 1, end - p - 1) : g_strdup(p + 1);

        if (!parse_option(ms, opt, errp)) {
            return false;
        }
        p = end ? end : p + strlen(p);
    }
    if (strcmp(ms->kind, "unix") != 0 && strcmp(ms->kind, "tcp") != 0) {
        error_setg(errp, "QMP: unsupported address '%s'", spec);
        return false;
    }
    if (!ms->server) {
        error_setg(errp, "QMP: '%s' must be a server socket (add ',server=on')", spec);
        return false;
    }
    return true;
}

static Monitor *monitor_alloc(const char *spec)
{
    Monitor *mon = g_new0(Monitor, 1);

    mon->spec = g_strdup(spec);
    mon->in_fd = -1;
    mon->out_fd = -1;
    json_streamer_init(&mon->input);
    mon->outbuf = g_string_new(NULL);
    mon->recv_fds = g_array_new(FALSE, FALSE, sizeof(int));
    return mon;
}

/* At exit: give the last replies and events (SHUTDOWN) a moment to leave. */
static void monitor_flush_final(Monitor *mon)
{
    gint64 deadline = g_get_monotonic_time() + G_USEC_PER_SEC;

    while (mon->outbuf->len && mon->out_fd >= 0 && g_get_monotonic_time() < deadline) {
        struct pollfd pfd = { .fd = mon->out_fd, .events = POLLOUT };

        if (poll(&pfd, 1, 100) < 0 && errno != EINTR) {
            break;
        }
        monitor_flush(mon);
    }
}

static void monitor_free(Monitor *mon)
{
    monitor_flush_final(mon);
    if (mon->in_fd >= 0 || mon->client) {
        client_detach(mon, false);
    }
    listen_stop(mon, -1);
    io_listener_free(mon->listener);
    g_free(mon->listen_watches);
    if (mon->unlink_path) {
        unlink(mon->unlink_path);
    }
    close_received_fds(mon);
    json_streamer_destroy(&mon->input);
    g_string_free(mon->outbuf, TRUE);
    g_array_unref(mon->recv_fds);
    g_free(mon->unlink_path);
    g_free(mon->spec);
    g_free(mon);
}

static IOListener *listen_socket(Monitor *mon, const MonitorSpec *ms, GError **errp)
{
    if (!strcmp(ms->kind, "unix")) {
        IOListener *l = io_listener_open_unix(ms->addr, errp);

        if (l) {
            mon->unlink_path = g_strdup(ms->addr);
            mon->fd_pass = true;
        }
        return l;
    } else {
        const char *sep = strrchr(ms->addr, ':');
        g_autofree char *host = sep ? g_strndup(ms->addr, sep - ms->addr) : NULL;

        if (!sep) {
            error_setg(errp, "QMP: '%s' lacks a port", ms->addr);
            return NULL;
        }
        return io_listener_open_tcp(host, sep + 1, AF_UNSPEC, false, -1, errp);
    }
}

/* QEMU's "wait=on": block startup until the first client connects. */
static bool wait_for_client(Monitor *mon, GError **errp)
{
    IOChannel *client;

    fprintf(stderr, "mapram: waiting for connection on: %s\n", mon->spec);
    client = io_listener_accept(mon->listener, errp);
    if (!client) {
        return false;
    }
    client_attach(mon, client, io_channel_get_fd(client), io_channel_get_fd(client));
    return true;
}

Monitor *monitor_new_qmp(const char *spec, GError **errp)
{
    g_auto(MonitorSpec) ms = { 0 };
    Monitor *mon;

    monitor_register_builtin_commands();
    if (!parse_spec(spec, &ms, errp)) {
        return NULL;
    }
    mon = monitor_alloc(spec);
    if (!strcmp(ms.kind, "stdio")) {
        mon->is_stdio = true;
        client_attach(mon, NULL, STDIN_FILENO, STDOUT_FILENO);
    } else {
        mon->listener = listen_socket(mon, &ms, errp);
        if (!mon->listener) {
            monitor_free(mon);
            return NULL;
        }
        mon->listen_watches = g_new0(guint, io_listener_count(mon->listener));
        if (ms.wait) {
            if (!wait_for_client(mon, errp)) {
                monitor_free(mon);
                return NULL;
            }
        } else {
            listen_start(mon);
        }
    }
    monitors = g_list_append(monitors, mon);
    return mon;
}

Monitor *monitor_new_qmp_inproc(MonitorOutFunc out, void *opaque)
{
    Monitor *mon;

    monitor_register_builtin_commands();
    mon = monitor_alloc("inproc");
    mon->out_fn = out;
    mon->out_opaque = opaque;
    send_greeting(mon);
    monitors = g_list_append(monitors, mon);
    return mon;
}

void monitor_inproc_pass_fds(Monitor *mon, const int *fds, guint n)
{
    g_assert(mon->out_fn);
    received_fds_replace(mon, fds, n);
}

void monitor_inproc_feed(Monitor *mon, const char *buf, size_t len)
{
    g_assert(mon->out_fn);
    process_input(mon, buf, len);
}

void monitor_cleanup_all(void)
{
    g_list_free_full(g_steal_pointer(&monitors), (GDestroyNotify)monitor_free);
    monitor_fds_cleanup();
    (void)monitor_fdsets_free_all();
}

/* --- events --- */

static void emit_event(JsonNode *ev)
{
    for (GList *l = monitors; l; l = l->next) {
        Monitor *mon = l->data;

        if ((mon->out_fd >= 0 || mon->out_fn) && mon->negotiated) {
            monitor_send(mon, ev);
        }
    }
}

static void flush_queued_events(void)
{
    GQueue pending = G_QUEUE_INIT;
    JsonNode *ev;

    qemu_mutex_lock(&event_lock);
    pending = event_queue;
    g_queue_init(&event_queue);
    event_flush_pending = false;
    qemu_mutex_unlock(&event_lock);

    while ((ev = g_queue_pop_head(&pending))) {
        emit_event(ev);
        json_node_unref(ev);
    }
}

static gboolean flush_events_cb(gpointer unused)
{
    flush_queued_events();
    return G_SOURCE_REMOVE;
}

static JsonNode *build_event(const char *event, JsonObject *data)
{
    gint64 now = g_get_real_time();
    JsonObject *ts = json_object_new();
    JsonObject *obj = json_object_new();
    JsonNode *n = json_node_new(JSON_NODE_OBJECT);

    json_object_set_int_member(ts, "seconds", now / G_USEC_PER_SEC);
    json_object_set_int_member(ts, "microseconds", now % G_USEC_PER_SEC);
    json_object_set_object_member(obj, "timestamp", ts);
    json_object_set_string_member(obj, "event", event);
    if (data) {
        json_object_set_object_member(obj, "data", data);
    }
    json_node_take_object(n, obj);
    return n;
}

void qmp_event_send(const char *event, JsonObject *data)
{
    JsonNode *ev = build_event(event, data);

    if (g_main_context_is_owner(g_main_context_default())) {
        flush_queued_events();        /* keep the order of earlier events */
        emit_event(ev);
        json_node_unref(ev);
        return;
    }
    qemu_mutex_lock(&event_lock);
    g_queue_push_tail(&event_queue, ev);
    if (!event_flush_pending) {
        GSource *src = g_idle_source_new();

        event_flush_pending = true;
        g_source_set_priority(src, G_PRIORITY_DEFAULT);
        g_source_set_callback(src, flush_events_cb, NULL, NULL);
        g_source_attach(src, g_main_context_default());
        g_source_unref(src);
    }
    qemu_mutex_unlock(&event_lock);
}
