/*
 * A small QMP client over a unix socket (see qmp-client.h).  Messages are
 * one JSON object per line, as QEMU's server writes them.
 */
#include "qmp-client.h"
#include "util/error.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

struct QmpClient {
    int fd;                 /* owned; -1 once the server hung up */
    char *path;
    GString *inbuf;         /* bytes read but not yet a whole line */
    GQueue events;          /* JsonObject *, oldest first */
    unsigned timeout_ms;    /* for replies */
};

static gint64 deadline_after(unsigned ms)
{
    return g_get_monotonic_time() + (gint64)ms * 1000;
}

static int ms_left(gint64 deadline)
{
    gint64 left = (deadline - g_get_monotonic_time()) / 1000;
    return left > 0 ? (int)left : 0;
}

/* Take one whole line out of inbuf, or NULL. */
static char *take_line(QmpClient *c)
{
    char *nl = memchr(c->inbuf->str, '\n', c->inbuf->len);
    if (!nl) {
        return NULL;
    }
    gsize n = nl - c->inbuf->str;
    char *line = g_strndup(c->inbuf->str, n);
    g_string_erase(c->inbuf, 0, n + 1);
    return g_strstrip(line);
}

/* Read more bytes into inbuf before @deadline. */
static bool fill(QmpClient *c, gint64 deadline, GError **errp)
{
    char chunk[4096];

    if (c->fd < 0) {
        error_setg(errp, "QMP connection to '%s' is closed", c->path);
        return false;
    }
    for (;;) {
        struct pollfd p = { .fd = c->fd, .events = POLLIN };
        int r = poll(&p, 1, ms_left(deadline));
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            error_setg_errno(errp, errno, "Waiting on QMP socket '%s'", c->path);
            return false;
        }
        if (r == 0) {
            error_setg(errp, "Timed out waiting for QMP on '%s'", c->path);
            return false;
        }
        ssize_t got = recv(c->fd, chunk, sizeof(chunk), 0);
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got < 0) {
            error_setg_errno(errp, errno, "Reading QMP socket '%s'", c->path);
            return false;
        }
        if (got == 0) {
            close(c->fd);
            c->fd = -1;
            error_setg(errp, "QMP server on '%s' closed the connection", c->path);
            return false;
        }
        g_string_append_len(c->inbuf, chunk, got);
        return true;
    }
}

/* The next message from the server as an object (new reference). */
static JsonObject *read_message(QmpClient *c, gint64 deadline, GError **errp)
{
    for (;;) {
        g_autofree char *line = take_line(c);
        if (!line) {
            if (!fill(c, deadline, errp)) {
                return NULL;
            }
            continue;
        }
        if (!*line) {
            continue;
        }
        g_autoptr(JsonParser) parser = json_parser_new();
        GError *perr = NULL;
        if (!json_parser_load_from_data(parser, line, -1, &perr)) {
            error_setg(errp, "Malformed QMP message from '%s': %s", c->path, perr->message);
            g_error_free(perr);
            return NULL;
        }
        JsonNode *root = json_parser_get_root(parser);
        if (!root || !JSON_NODE_HOLDS_OBJECT(root)) {
            error_setg(errp, "QMP message from '%s' is not an object: '%s'", c->path, line);
            return NULL;
        }
        return json_object_ref(json_node_get_object(root));
    }
}

static bool send_all(QmpClient *c, const char *text, GError **errp)
{
    size_t len = strlen(text), done = 0;

    if (c->fd < 0) {
        error_setg(errp, "QMP connection to '%s' is closed", c->path);
        return false;
    }
    while (done < len) {
        ssize_t n = send(c->fd, text + done, len - done, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            error_setg_errno(errp, errno, "Writing QMP socket '%s'", c->path);
            return false;
        }
        done += n;
    }
    return true;
}

static int connect_once(const char *path, int *err)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0) {
        *err = errno;
        return -1;
    }
    g_strlcpy(addr.sun_path, path, sizeof(addr.sun_path));
    if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        *err = errno;
        close(fd);
        return -1;
    }
    return fd;
}

void qmp_client_free(QmpClient *c)
{
    if (!c) {
        return;
    }
    if (c->fd >= 0) {
        close(c->fd);
    }
    g_queue_clear_full(&c->events, (GDestroyNotify)json_object_unref);
    g_string_free(c->inbuf, TRUE);
    g_free(c->path);
    g_free(c);
}

void qmp_client_set_timeout(QmpClient *c, unsigned timeout_ms)
{
    c->timeout_ms = timeout_ms;
}

QmpClient *qmp_client_connect(const char *path, unsigned timeout_ms, GError **errp)
{
    gint64 deadline = deadline_after(timeout_ms);
    int fd, err = 0;

    if (strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
        error_setg(errp, "QMP socket path '%s' is too long", path);
        return NULL;
    }
    while ((fd = connect_once(path, &err)) < 0) {
        if (g_get_monotonic_time() >= deadline) {
            error_setg_errno(errp, err, "Could not connect to QMP socket '%s'", path);
            return NULL;
        }
        g_usleep(20 * 1000);
    }
    g_autoptr(QmpClient) c = g_new0(QmpClient, 1);
    c->fd = fd;
    c->path = g_strdup(path);
    c->inbuf = g_string_new(NULL);
    c->timeout_ms = 60 * 1000;
    g_queue_init(&c->events);

    g_autoptr(JsonObject) greeting = read_message(c, deadline_after(timeout_ms), errp);
    if (!greeting) {
        return NULL;
    }
    if (!json_object_has_member(greeting, "QMP")) {
        error_setg(errp, "'%s' did not greet with a QMP banner", path);
        return NULL;
    }
    g_autoptr(JsonNode) ret = qmp_client_execute(c, "qmp_capabilities", NULL, errp);
    if (!ret) {
        return NULL;
    }
    return g_steal_pointer(&c);
}

static char *command_text(const char *cmd, JsonObject *args)
{
    g_autoptr(JsonObject) o = json_object_new();
    json_object_set_string_member(o, "execute", cmd);
    if (args) {
        json_object_set_object_member(o, "arguments", args);
    }
    g_autoptr(JsonNode) n = json_node_new(JSON_NODE_OBJECT);
    json_node_set_object(n, o);
    g_autofree char *text = json_to_string(n, FALSE);
    return g_strconcat(text, "\n", NULL);
}

JsonNode *qmp_client_execute(QmpClient *c, const char *cmd, JsonObject *args,
                             GError **errp)
{
    g_autofree char *text = command_text(cmd, args);
    gint64 deadline = deadline_after(c->timeout_ms);

    if (!send_all(c, text, errp)) {
        return NULL;
    }
    for (;;) {
        JsonObject *m = read_message(c, deadline, errp);
        if (!m) {
            g_prefix_error(errp, "'%s': ", cmd);
            return NULL;
        }
        if (json_object_has_member(m, "event")) {
            g_queue_push_tail(&c->events, m);
            continue;
        }
        g_autoptr(JsonObject) reply = m;
        if (json_object_has_member(reply, "return")) {
            return json_node_copy(json_object_get_member(reply, "return"));
        }
        JsonObject *e = json_object_has_member(reply, "error") ?
                        json_object_get_object_member(reply, "error") : NULL;
        const char *desc = e && json_object_has_member(e, "desc") ?
                           json_object_get_string_member(e, "desc") : NULL;
        error_setg(errp, "'%s' failed: %s", cmd, desc ? desc : "malformed reply");
        return NULL;
    }
}

JsonObject *qmp_client_execute_obj(QmpClient *c, const char *cmd, JsonObject *args,
                                   GError **errp)
{
    g_autoptr(JsonNode) ret = qmp_client_execute(c, cmd, args, errp);
    if (!ret) {
        return NULL;
    }
    if (!JSON_NODE_HOLDS_OBJECT(ret)) {
        error_setg(errp, "'%s' returned something other than an object", cmd);
        return NULL;
    }
    return json_object_ref(json_node_get_object(ret));
}

static JsonObject *take_queued(QmpClient *c, const char *name)
{
    for (GList *l = c->events.head; l; l = l->next) {
        JsonObject *ev = l->data;
        if (!g_strcmp0(json_object_get_string_member(ev, "event"), name)) {
            g_queue_delete_link(&c->events, l);
            return ev;
        }
    }
    return NULL;
}

JsonObject *qmp_client_wait_event(QmpClient *c, const char *name, unsigned timeout_ms,
                                  GError **errp)
{
    gint64 deadline = deadline_after(timeout_ms);
    JsonObject *ev = take_queued(c, name);

    while (!ev) {
        JsonObject *m = read_message(c, deadline, errp);
        if (!m) {
            g_prefix_error(errp, "Waiting for event %s: ", name);
            return NULL;
        }
        if (!json_object_has_member(m, "event")) {
            json_object_unref(m);       /* a stray reply: nobody waits for it */
            continue;
        }
        if (!g_strcmp0(json_object_get_string_member(m, "event"), name)) {
            ev = m;
        } else {
            g_queue_push_tail(&c->events, m);
        }
    }
    return ev;
}

bool qmp_client_quit(QmpClient *c, GError **errp)
{
    g_autoptr(JsonNode) ret = qmp_client_execute(c, "quit", NULL, errp);
    if (!ret) {
        return false;
    }
    /* the server closes the socket as it exits: read until EOF */
    gint64 deadline = deadline_after(c->timeout_ms);
    while (c->fd >= 0) {
        g_autoptr(GError) err = NULL;
        if (!fill(c, deadline, &err)) {
            if (c->fd >= 0) {
                g_propagate_error(errp, g_steal_pointer(&err));
                return false;
            }
        }
    }
    return true;
}
