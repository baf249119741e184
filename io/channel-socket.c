/*
 * Socket channel (unix and tcp), and the listen/accept/connect helpers
 * the transports need.  Sends use MSG_NOSIGNAL: a peer that goes away
 * must produce EPIPE for the migration to report, not kill the VM.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "channel-fd.h"
#include "io/channel.h"
#include "util/error.h"
#include "util/fault.h"
#include "util/thread.h"

/* SCM_RIGHTS fds accepted per message, as QEMU's SOCKET_MAX_FDS. */
#define IO_SOCKET_MAX_FDS 16

typedef struct IOChannelSocket {
    IOChannel parent;
    int fd;                     /* owned; -1 once closed */
} IOChannelSocket;

static int socket_fd(IOChannel *ioc)
{
    return ((IOChannelSocket *)ioc)->fd;
}

static ssize_t socket_readv(IOChannel *ioc, const struct iovec *iov, size_t niov,
                            GError **errp)
{
    ssize_t n = io_fd_readv(socket_fd(ioc), iov, niov);

    if (n < 0) {
        error_setg_errno(errp, errno, "Unable to read from socket");
    }
    return n;
}

static ssize_t socket_writev(IOChannel *ioc, const struct iovec *iov, size_t niov,
                             GError **errp)
{
    struct msghdr msg = { .msg_iov = (struct iovec *)iov, .msg_iovlen = niov };
    int fd = socket_fd(ioc);
    ssize_t n;

    for (;;) {
        n = sendmsg(fd, &msg, MSG_NOSIGNAL);
        if (n >= 0) {
            return n;
        }
        if (errno == EINTR) {
            continue;
        }
        if ((errno != EAGAIN && errno != EWOULDBLOCK) || io_fd_wait(fd, POLLOUT) < 0) {
            break;
        }
    }
    error_setg_errno(errp, errno, "Unable to write to socket");
    return -1;
}

static int socket_shutdown(IOChannel *ioc, GError **errp)
{
    if (shutdown(socket_fd(ioc), SHUT_RDWR) < 0 && errno != ENOTCONN) {
        error_setg_errno(errp, errno, "Unable to shutdown socket");
        return -1;
    }
    return 0;
}

static int socket_close(IOChannel *ioc, GError **errp)
{
    IOChannelSocket *sioc = (IOChannelSocket *)ioc;
    int fd = sioc->fd;

    sioc->fd = -1;
    if (fd >= 0 && close(fd) < 0 && errno != EINTR) {
        error_setg_errno(errp, errno, "Unable to close socket");
        return -1;
    }
    return 0;
}

static void socket_finalize(IOChannel *ioc)
{
}

static const IOChannelOps socket_ops = {
    .kind = "socket",
    .readv = socket_readv,
    .writev = socket_writev,
    .close = socket_close,
    .finalize = socket_finalize,
    .shutdown = socket_shutdown,
    .get_fd = socket_fd,
};

IOChannel *io_channel_socket_new_fd(int fd, const char *name)
{
    IOChannelSocket *sioc = g_new0(IOChannelSocket, 1);
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);

    io_channel_init(&sioc->parent, &socket_ops, name);
    sioc->fd = fd;
    sioc->parent.features = IO_CHANNEL_FEATURE_SHUTDOWN;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0 && ss.ss_family == AF_UNIX) {
        sioc->parent.features |= IO_CHANNEL_FEATURE_FD_PASS;
    }
    return &sioc->parent;
}

static bool unix_addr(struct sockaddr_un *sun, const char *path, GError **errp)
{
    memset(sun, 0, sizeof(*sun));
    sun->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sun->sun_path)) {
        error_setg(errp, "UNIX socket path '%s' is too long", path);
        return false;
    }
    strcpy(sun->sun_path, path);
    return true;
}

#define CONNECT_POLL_MS 20     /* how often a connect in progress looks at *stop */

static bool stop_set(const int *stop)
{
    return stop && __atomic_load_n(stop, __ATOMIC_ACQUIRE);
}

/*
 * Connect fd to addr, waiting for the outcome in CONNECT_POLL_MS slices
 * and giving up with ECANCELED once *stop is set (NULL: wait for good,
 * as a blocking connect does).  The fd is non-blocking meanwhile: a peer
 * that never answers (SYNs dropped, a full accept queue) must not keep a
 * thread that is asked to stop.  A unix socket whose listener's backlog
 * is full answers EAGAIN at once and has nothing to wait on: try again.
 */
static int connect_stoppable(int fd, const struct sockaddr *addr, socklen_t len,
                             const int *stop)
{
    int flags = fcntl(fd, F_GETFL);

    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
        return -1;
    }
    for (;;) {
        if (connect(fd, addr, len) == 0) {
            break;
        }
        if (errno == EAGAIN) {
            if (stop_set(stop)) {
                errno = ECANCELED;
                return -1;
            }
            g_usleep(CONNECT_POLL_MS * 1000);
            continue;
        }
        if (errno != EINPROGRESS && errno != EINTR) {
            return -1;
        }
        /* in progress: wait until it is writable, then read its outcome */
        struct pollfd pfd = { .fd = fd, .events = POLLOUT };
        int ret;
        do {
            if (stop_set(stop)) {
                errno = ECANCELED;
                return -1;
            }
            ret = poll(&pfd, 1, stop ? CONNECT_POLL_MS : -1);
        } while (ret == 0 || (ret < 0 && errno == EINTR));
        int err = 0;
        socklen_t elen = sizeof(err);
        if (ret < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0) {
            return -1;
        }
        if (err) {
            errno = err;
            return -1;
        }
        break;
    }
    return fcntl(fd, F_SETFL, flags);
}

IOChannel *io_channel_socket_connect_unix(const char *path, GError **errp)
{
    return io_channel_socket_connect_unix_stoppable(path, NULL, errp);
}

IOChannel *io_channel_socket_connect_unix_stoppable(const char *path, const int *stop,
                                                    GError **errp)
{
    struct sockaddr_un sun;
    int fd;

    if (!unix_addr(&sun, path, errp)) {
        return NULL;
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        error_setg_errno(errp, errno, "Failed to create socket");
        return NULL;
    }
    if (connect_stoppable(fd, (struct sockaddr *)&sun, sizeof(sun), stop) < 0) {
        error_setg_errno(errp, errno, "Failed to connect to '%s'", path);
        close(fd);
        return NULL;
    }
    IOChannel *ioc = io_channel_socket_new_fd(fd, path);

    ioc->name_is_peer = true;
    return ioc;
}

/*
 * A connect restricted to IPv6 (QEMU's ipv6 flag) still reaches an IPv4
 * host through its v4-mapped address, as QEMU's connect does.
 */
#define CONNECT_AI_FLAGS(family) ((family) == AF_INET6 ? AI_V4MAPPED : 0)

static struct addrinfo *resolve_family(const char *host, const char *port, bool passive,
                                       int family, GError **errp)
{
    struct addrinfo hints = {
        .ai_family = family,
        .ai_socktype = SOCK_STREAM,
        .ai_flags = passive ? AI_PASSIVE : CONNECT_AI_FLAGS(family),
    };
    struct addrinfo *res = NULL;
    int rc;

    if (host && !*host) {
        host = NULL;
    }
    rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        error_setg(errp, "address resolution failed for %s:%s: %s",
                   host ? host : "", port, gai_strerror(rc));
        return NULL;
    }
    return res;
}

static struct addrinfo *resolve(const char *host, const char *port, bool passive,
                                GError **errp)
{
    return resolve_family(host, port, passive, AF_UNSPEC, errp);
}

/*
 * A name lookup that a stop abandons.  getaddrinfo() cannot be
 * interrupted and a resolver that does not answer holds it for its
 * timeouts (seconds, times the servers and attempts of resolv.conf), so
 * it runs on a thread of its own; the caller waits in CONNECT_POLL_MS
 * slices and, once *stop is set, leaves the thread to finish and free
 * what it found.  The last of the two references frees the lookup.
 */
typedef struct Lookup {
    gint refs;                  /* atomic: the caller's and the thread's */
    char *host, *port;          /* immutable */
    int family;                 /* immutable */
    QemuMutex lock;             /* pthreads, which TSan sees (util/thread.h) */
    QemuCond cond;
    bool done;                  /* lock: rc and res are set */
    int rc;                     /* lock */
    struct addrinfo *res;       /* lock; freed with the lookup unless taken */
} Lookup;

static void lookup_unref(Lookup *l)
{
    if (!g_atomic_int_dec_and_test(&l->refs)) {
        return;
    }
    if (l->res) {
        freeaddrinfo(l->res);
    }
    g_free(l->host);
    g_free(l->port);
    qemu_mutex_destroy(&l->lock);
    qemu_cond_destroy(&l->cond);
    g_free(l);
}

static gpointer lookup_thread(gpointer opaque)
{
    Lookup *l = opaque;
    struct addrinfo hints = {
        .ai_family = l->family,
        .ai_socktype = SOCK_STREAM,
        .ai_flags = CONNECT_AI_FLAGS(l->family),
    };
    struct addrinfo *res = NULL;

    if (fault_hit("socket-resolve-stall")) {
        g_usleep(60 * G_USEC_PER_SEC);
    }
    int rc = getaddrinfo(l->host, l->port, &hints, &res);
    qemu_mutex_lock(&l->lock);
    l->rc = rc;
    l->res = res;
    l->done = true;
    qemu_cond_signal(&l->cond);
    qemu_mutex_unlock(&l->lock);
    lookup_unref(l);
    return NULL;
}

/* resolve_family() for a connect, abandoned with ECANCELED once *stop is set. */
static struct addrinfo *resolve_stoppable(const char *host, const char *port, int family,
                                          const int *stop, GError **errp)
{
    Lookup *l = g_new0(Lookup, 1);
    struct addrinfo *res = NULL;
    bool stopped = false;
    int rc = 0;

    if (!stop) {
        g_free(l);
        return resolve_family(host, port, false, family, errp);
    }
    l->refs = 2;
    l->family = family;
    l->host = host && *host ? g_strdup(host) : NULL;
    l->port = g_strdup(port);
    qemu_mutex_init(&l->lock);
    qemu_cond_init(&l->cond);
    GThread *t = g_thread_try_new("resolve", lookup_thread, l, NULL);
    if (!t) {
        l->refs = 1;
        lookup_unref(l);
        return resolve_family(host, port, false, family, errp);
    }
    g_thread_unref(t);
    qemu_mutex_lock(&l->lock);
    while (!l->done && !(stopped = stop_set(stop))) {
        qemu_cond_wait_until(&l->cond, &l->lock, g_get_monotonic_time() + CONNECT_POLL_MS * 1000);
    }
    if (l->done) {
        stopped = false;
        rc = l->rc;
        res = l->res;
        l->res = NULL;
    }
    qemu_mutex_unlock(&l->lock);
    lookup_unref(l);
    if (stopped) {
        error_setg_errno(errp, ECANCELED, "Failed to connect to '%s:%s'", host ? host : "", port);
        return NULL;
    }
    if (rc != 0) {
        error_setg(errp, "address resolution failed for %s:%s: %s",
                   host ? host : "", port, gai_strerror(rc));
        return NULL;
    }
    return res;
}

IOChannel *io_channel_socket_connect_tcp(const char *host, const char *port, GError **errp)
{
    return io_channel_socket_connect_tcp_stoppable(host, port, AF_UNSPEC, NULL, errp);
}

IOChannel *io_channel_socket_connect_tcp_stoppable(const char *host, const char *port,
                                                   int family, const int *stop, GError **errp)
{
    struct addrinfo *res = resolve_stoppable(host, port, family, stop, errp);
    int saved_errno = ECONNREFUSED;
    int fd = -1;

    if (!res) {
        return NULL;
    }
    /* Try every address ("localhost" may be ::1 then 127.0.0.1). */
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            saved_errno = errno;
            continue;
        }
        if (connect_stoppable(fd, ai->ai_addr, ai->ai_addrlen, stop) == 0) {
            break;
        }
        saved_errno = errno;
        if (saved_errno == ECANCELED) {
            close(fd);
            fd = -1;
            break;
        }
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        error_setg_errno(errp, saved_errno, "Failed to connect to '%s:%s'",
                         host ? host : "", port);
        return NULL;
    }
    /* Migration writes in large chunks; don't let Nagle delay the tail. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 }, sizeof(int));
    {
        g_autofree char *name = g_strdup_printf("%s:%s", host ? host : "", port);

        IOChannel *ioc = io_channel_socket_new_fd(fd, name);

        ioc->name_is_peer = true;
        return ioc;
    }
}

int io_socket_listen_unix(const char *path, GError **errp)
{
    struct sockaddr_un sun;
    int fd;

    if (!unix_addr(&sun, path, errp)) {
        return -1;
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        error_setg_errno(errp, errno, "Failed to create socket");
        return -1;
    }
    /* A socket file left by a previous run would make bind() fail. */
    if (unlink(path) < 0 && errno != ENOENT) {
        error_setg_errno(errp, errno, "Failed to unlink socket %s", path);
        goto fail;
    }
    if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        error_setg_errno(errp, errno, "Failed to bind socket to %s", path);
        goto fail;
    }
    if (listen(fd, SOMAXCONN) < 0) {
        error_setg_errno(errp, errno, "Failed to listen on socket");
        goto fail;
    }
    return fd;

fail:
    close(fd);
    return -1;
}

/*
 * As QEMU's inet_listen_saddr: an address whose socket cannot be made, or
 * whose port is taken, gives way to the next; any other bind() or listen()
 * error ends the search with QEMU's text.  *created: a socket was made.
 * An IPv6 socket takes IPv4 connections too (IPV6_V6ONLY off) unless its
 * port is taken for IPv4 only: then it is made again for IPv6 alone, so
 * that 0.0.0.0:P and [::]:P can both listen.
 */
static int listen_one(const struct addrinfo *ai, bool v6only_asked, bool *created,
                      GError **errp)
{
    bool v6only = v6only_asked;
    int fd, saved_errno;
    const char *what;

again:
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
        return -1;
    }
    *created = true;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &(int){ 1 }, sizeof(int));
    if (ai->ai_family == AF_INET6) {
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &(int){ v6only }, sizeof(int));
    }
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
        what = "Failed to bind socket";
    } else if (listen(fd, SOMAXCONN) < 0) {
        what = "Failed to listen on socket";
    } else {
        return fd;
    }
    saved_errno = errno;
    close(fd);
    if (saved_errno == EADDRINUSE && ai->ai_family == AF_INET6 && !v6only) {
        v6only = true;
        goto again;
    }
    if (saved_errno != EADDRINUSE) {
        error_setg_errno(errp, saved_errno, "%s", what);
        return -2;
    }
    errno = saved_errno;
    return -1;
}

static void set_port(struct addrinfo *ai, int port)
{
    if (ai->ai_family == AF_INET) {
        ((struct sockaddr_in *)ai->ai_addr)->sin_port = htons(port);
    } else if (ai->ai_family == AF_INET6) {
        ((struct sockaddr_in6 *)ai->ai_addr)->sin6_port = htons(port);
    }
}

static int get_port(const struct addrinfo *ai)
{
    if (ai->ai_family == AF_INET) {
        return ntohs(((struct sockaddr_in *)ai->ai_addr)->sin_port);
    }
    if (ai->ai_family == AF_INET6) {
        return ntohs(((struct sockaddr_in6 *)ai->ai_addr)->sin6_port);
    }
    return 0;
}

/*
 * One address as QEMU listens on it: the fd, or -1 with QEMU's text.
 * to >= 0: the first port from the address's to "to" that is free.
 */
static int listen_addr(struct addrinfo *ai, bool v6only, int to, GError **errp)
{
    bool created = false;
    int first = get_port(ai), last = to >= 0 ? to : first;
    int fd = -1;

    /* an empty range tries nothing: QEMU then reports a stale errno, ENOENT in 7.2 */
    errno = ENOENT;
    for (int port = first; port <= last && fd == -1; port++) {
        set_port(ai, port);
        fd = listen_one(ai, v6only, &created, errp);
    }
    if (fd == -1) {
        error_setg_errno(errp, errno, "%s", created ? "Failed to find an available port"
                                                    : "Failed to create a socket");
    }
    return fd < 0 ? -1 : fd;
}

int io_socket_listen_tcp(const char *host, const char *port, GError **errp)
{
    struct addrinfo *res = resolve(host, port, true, errp);
    int saved_errno = EADDRNOTAVAIL;
    bool created = false;
    int fd = -1;

    if (!res) {
        return -1;
    }
    for (struct addrinfo *ai = res; ai && fd == -1; ai = ai->ai_next) {
        fd = listen_one(ai, false, &created, errp);
        if (fd == -1) {
            saved_errno = errno;
        }
    }
    freeaddrinfo(res);
    if (fd == -1) {
        error_setg_errno(errp, saved_errno, "%s", created ? "Failed to find an available port"
                                                          : "Failed to create a socket");
    }
    return fd < 0 ? -1 : fd;
}

struct IOListener {
    unsigned n;
    int fds[];                  /* n listening fds, non-blocking, owned */
};

static IOListener *listener_new(const int *fds, unsigned n)
{
    IOListener *l = g_malloc(sizeof(*l) + n * sizeof(int));

    l->n = n;
    for (unsigned i = 0; i < n; i++) {
        l->fds[i] = fds[i];
        fcntl(fds[i], F_SETFL, fcntl(fds[i], F_GETFL) | O_NONBLOCK);
    }
    return l;
}

IOListener *io_listener_open_unix(const char *path, GError **errp)
{
    int fd = io_socket_listen_unix(path, errp);

    return fd < 0 ? NULL : listener_new(&fd, 1);
}

IOListener *io_listener_open_tcp(const char *host, const char *port, int family, bool v6only,
                                 int to, GError **errp)
{
    struct addrinfo *res = resolve_family(host, port, true, family, errp);
    g_autoptr(GArray) fds = g_array_new(FALSE, FALSE, sizeof(int));
    GError *first = NULL;

    if (!res) {
        return NULL;
    }
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd = listen_addr(ai, v6only, to, first ? NULL : &first);
        if (fd >= 0) {
            g_array_append_val(fds, fd);
        }
    }
    freeaddrinfo(res);
    if (!fds->len) {
        g_propagate_error(errp, first);
        return NULL;
    }
    g_clear_error(&first);
    return listener_new((const int *)(void *)fds->data, fds->len);
}

unsigned io_listener_count(const IOListener *l)
{
    return l->n;
}

int io_listener_fd(const IOListener *l, unsigned i)
{
    g_assert(i < l->n);
    return l->fds[i];
}

/* poll() every fd; the number of them with an event, 0 on timeout or EINTR. */
static int listener_poll(const IOListener *l, struct pollfd *pfd, int timeout_ms)
{
    for (unsigned i = 0; i < l->n; i++) {
        pfd[i] = (struct pollfd){ .fd = l->fds[i], .events = POLLIN };
    }
    int r = poll(pfd, l->n, timeout_ms);
    return r < 0 ? 0 : r;
}

bool io_listener_wait(const IOListener *l, int timeout_ms)
{
    g_autofree struct pollfd *pfd = g_new(struct pollfd, l->n);

    return listener_poll(l, pfd, timeout_ms) > 0;
}

IOChannel *io_listener_accept(const IOListener *l, GError **errp)
{
    g_autofree struct pollfd *pfd = g_new(struct pollfd, l->n);

    for (;;) {
        if (!listener_poll(l, pfd, -1)) {
            continue;
        }
        for (unsigned i = 0; i < l->n; i++) {
            if (!pfd[i].revents) {
                continue;
            }
            /* the new socket does not inherit the listener's O_NONBLOCK */
            int fd = accept4(l->fds[i], NULL, NULL, SOCK_CLOEXEC);
            if (fd >= 0) {
                return io_channel_socket_new_fd(fd, "socket-accepted");
            }
            int e = errno;
            if ((e == EAGAIN || e == EWOULDBLOCK || e == EINTR || e == ECONNABORTED) &&
                !(pfd[i].revents & (POLLHUP | POLLERR | POLLNVAL))) {
                continue;       /* the connection went before it was taken */
            }
            /* a listener shut down (io_listener_shutdown) ends up here */
            error_setg_errno(errp, e == EAGAIN || e == EWOULDBLOCK ? EINVAL : e,
                             "Unable to accept connection");
            return NULL;
        }
    }
}

void io_listener_shutdown(const IOListener *l)
{
    for (unsigned i = 0; i < l->n; i++) {
        shutdown(l->fds[i], SHUT_RDWR);
    }
}

void io_listener_free(IOListener *l)
{
    if (!l) {
        return;
    }
    for (unsigned i = 0; i < l->n; i++) {
        close(l->fds[i]);
    }
    g_free(l);
}

int io_socket_bound_inet(int fd, char host[IO_SOCKET_HOST_MAX], int *port)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);

    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
        return 0;
    }
    if (ss.ss_family != AF_INET && ss.ss_family != AF_INET6) {
        return 0;
    }
    if (getnameinfo((struct sockaddr *)&ss, len, host, IO_SOCKET_HOST_MAX, NULL, 0,
                    NI_NUMERICHOST) != 0) {
        return 0;
    }
    *port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                          : ((struct sockaddr_in6 *)&ss)->sin6_port);
    return ss.ss_family;
}

char *io_listener_describe(const IOListener *l, unsigned i)
{
    int fd = io_listener_fd(l, i);
    char host[IO_SOCKET_HOST_MAX] = "";
    int port = 0;
    struct sockaddr_un un;
    socklen_t len = sizeof(un);

    switch (io_socket_bound_inet(fd, host, &port)) {
    case AF_INET:
        return g_strdup_printf("tcp:%s:%d", host, port);
    case AF_INET6:
        return g_strdup_printf("tcp:[%s]:%d", host, port);
    }
    if (getsockname(fd, (struct sockaddr *)&un, &len) == 0 && un.sun_family == AF_UNIX &&
        len > offsetof(struct sockaddr_un, sun_path)) {
        return g_strdup_printf("unix:%.*s", (int)strnlen(un.sun_path, sizeof(un.sun_path)),
                               un.sun_path);
    }
    return g_strdup("unknown");
}

int io_socket_get_port(int fd)
{
    char host[IO_SOCKET_HOST_MAX];
    int port;

    errno = 0;      /* set by getsockname when it fails; not an inet socket else */
    if (!io_socket_bound_inet(fd, host, &port)) {
        if (errno == 0) {
            errno = EAFNOSUPPORT;
        }
        return -1;
    }
    return port;
}

IOChannel *io_socket_accept(int listen_fd, GError **errp)
{
    int fd;

    for (;;) {
        fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd >= 0) {
            break;
        }
        if (errno == EINTR || errno == ECONNABORTED) {
            continue;
        }
        if ((errno != EAGAIN && errno != EWOULDBLOCK) ||
            io_fd_wait(listen_fd, POLLIN) < 0) {
            error_setg_errno(errp, errno, "Unable to accept connection");
            return NULL;
        }
    }
    return io_channel_socket_new_fd(fd, "socket-accepted");
}

/* Append the fds of every SCM_RIGHTS message of msg to fds. */
static void collect_fds(struct msghdr *msg, GArray *fds)
{
    for (struct cmsghdr *cmsg = CMSG_FIRSTHDR(msg); cmsg; cmsg = CMSG_NXTHDR(msg, cmsg)) {
        size_t n;

        if (cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS) {
            continue;
        }
        n = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < n; i++) {
            int fd;

            memcpy(&fd, CMSG_DATA(cmsg) + i * sizeof(int), sizeof(int));
            g_array_append_val(fds, fd);
        }
    }
}

ssize_t io_socket_recv_with_fds(int fd, void *buf, size_t len, GArray *fds, GError **errp)
{
    union {
        char buf[CMSG_SPACE(sizeof(int) * IO_SOCKET_MAX_FDS)];
        struct cmsghdr align;
    } control;
    struct iovec iov = { .iov_base = buf, .iov_len = len };
    struct msghdr msg = {
        .msg_iov = &iov,
        .msg_iovlen = 1,
        .msg_control = control.buf,
        .msg_controllen = sizeof(control.buf),
    };
    ssize_t n;

    for (;;) {
        n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
        if (n >= 0) {
            break;
        }
        if (errno == EINTR) {
            continue;
        }
        if ((errno != EAGAIN && errno != EWOULDBLOCK) || io_fd_wait(fd, POLLIN) < 0) {
            error_setg_errno(errp, errno, "Unable to read from socket");
            return -1;
        }
    }
    if (fds) {
        collect_fds(&msg, fds);
    } else {
        /* Nobody wants them: don't leak what the peer sent. */
        GArray *tmp = g_array_new(FALSE, FALSE, sizeof(int));

        collect_fds(&msg, tmp);
        for (guint i = 0; i < tmp->len; i++) {
            close(g_array_index(tmp, int, i));
        }
        g_array_free(tmp, TRUE);
    }
    return n;
}

ssize_t io_socket_send_with_fds(int fd, const void *buf, size_t len,
                                const int *fds, size_t nfds, GError **errp)
{
    union {
        char buf[CMSG_SPACE(sizeof(int) * IO_SOCKET_MAX_FDS)];
        struct cmsghdr align;
    } control;
    struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
    ssize_t n;

    if (nfds > IO_SOCKET_MAX_FDS) {
        error_setg(errp, "Too many file descriptors to send (%zu, at most %d)",
                   nfds, IO_SOCKET_MAX_FDS);
        return -1;
    }
    if (nfds) {
        struct cmsghdr *cmsg;

        memset(&control, 0, sizeof(control));
        msg.msg_control = control.buf;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        cmsg = CMSG_FIRSTHDR(&msg);
        cmsg->cmsg_level = SOL_SOCKET;
        cmsg->cmsg_type = SCM_RIGHTS;
        cmsg->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(cmsg), fds, sizeof(int) * nfds);
    }
    do {
        n = sendmsg(fd, &msg, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        error_setg_errno(errp, errno, "Unable to write to socket");
    }
    return n;
}
