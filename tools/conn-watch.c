/*
 * mapram load --connect: the watch over the connections.  See conn-watch.h.
 */
#include "conn-watch.h"
#include "util/error.h"
#include "util/thread.h"
#include <errno.h>
#include <linux/sockios.h>
#include <poll.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

/* How long the other connections get to close too, once one has. */
#define SETTLE_US   (300 * 1000)
#define POLL_MS     100

struct ConnWatch {
    /* Immutable */
    ConnWatchConfig cfg;
    int *fds;                  /* [0] main, [1 + i] channel i; -1 once ignored (the thread's) */
    unsigned nfds;
    GThread *thread;
    /* Atomic */
    int stop;
    int writing_done;
    /* Protected by lock */
    QemuMutex lock;
    QemuCond cond;             /* ended or err was set */
    bool ended;                /* QEMU closed main after the stream's end */
    bool over;                 /* the thread returned */
    GError *err;
};

static char *channel_range(unsigned first, unsigned last)
{
    return first == last ? g_strdup_printf("channel %u", first)
                         : g_strdup_printf("channels %u-%u", first, last);
}

void conn_watch_diagnose(GError **errp, bool main_closed, const bool *closed, unsigned channels,
                         const char *compression)
{
    unsigned first = channels, nclosed = 0;

    for (unsigned i = 0; i < channels; i++) {
        if (closed[i]) {
            first = MIN(first, i);
            nclosed++;
        }
    }
    if (main_closed) {
        error_setg(errp, "QEMU closed the migration connection before the end of the stream: "
                   "it failed to load it or it ended (see its own error)");
    } else if (nclosed == channels) {
        error_setg(errp, "QEMU closed every multifd channel before the end of the stream: "
                   "its multifd-compression is not '%s' (--compression), its -uuid is not "
                   "ours (--uuid), or it failed to load a packet", compression);
    } else if (first + nclosed == channels) {
        /* exactly the last ones: QEMU has all the channels it expects */
        g_autofree char *dropped = channel_range(first, channels - 1);
        error_setg(errp, "QEMU took %u of the %u multifd channels and closed %s: its "
                   "multifd-channels is %u (use --channels %u)", first, channels, dropped,
                   first, first);
    } else {
        error_setg(errp, "QEMU closed multifd channel %u before the end of the stream", first);
    }
}

static void watch_fail(ConnWatch *w, GError *err)
{
    for (unsigned i = 0; i < w->nfds; i++) {
        shutdown(w->fds[i], SHUT_RDWR);      /* blocked writers return */
    }
    qemu_mutex_lock(&w->lock);
    if (!w->err) {
        w->err = err;
    } else {
        g_error_free(err);
    }
    qemu_cond_broadcast(&w->cond);
    qemu_mutex_unlock(&w->lock);
}

static void poll_all(ConnWatch *w, struct pollfd *pfd, int timeout_ms)
{
    for (unsigned i = 0; i < w->nfds; i++) {
        pfd[i] = (struct pollfd){ .fd = w->fds[i], .events = POLLIN | POLLRDHUP };
    }
    while (poll(pfd, w->nfds, timeout_ms) < 0 && errno == EINTR) {
    }
}

/* Some connection has closed: give the others a moment, then say why. */
static void diagnose_closed(ConnWatch *w, struct pollfd *pfd)
{
    g_usleep(SETTLE_US);
    poll_all(w, pfd, 0);
    g_autofree bool *closed = g_new0(bool, w->cfg.channels);
    for (unsigned i = 0; i < w->cfg.channels; i++) {
        closed[i] = pfd[1 + i].revents != 0;
    }
    GError *err = NULL;
    conn_watch_diagnose(&err, pfd[0].revents != 0, closed, w->cfg.channels, w->cfg.compression);
    watch_fail(w, err);
}

/* The socket's pending error: a peer that closed it without reading all we sent (a reset). */
static int sock_error(int fd)
{
    int soerr = 0;
    socklen_t len = sizeof(soerr);

    getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
    return soerr;
}

/*
 * After the stream's end: main's close is the end, unless QEMU left bytes
 * unread, on main or on a channel (lost[k], or a channel still open with
 * a reset pending): QEMU 7.2 takes a connection beyond its
 * multifd-channels and closes it unread ("Extra incoming migration
 * connection; ignoring"), and loads the stream without its pages.
 */
static void main_closed_at_end(ConnWatch *w, bool *lost)
{
    int soerr = sock_error(w->fds[0]);
    bool any = false;

    for (unsigned k = 0; k < w->cfg.channels; k++) {
        if (w->fds[1 + k] >= 0 && sock_error(w->fds[1 + k])) {
            lost[k] = true;
        }
        any |= lost[k];
    }
    if (any) {
        GError *err = NULL;
        conn_watch_diagnose(&err, false, lost, w->cfg.channels, w->cfg.compression);
        watch_fail(w, err);
        return;
    }
    if (soerr) {
        GError *err = NULL;
        error_setg_errno(&err, soerr, "QEMU closed the migration connection without reading "
                         "the end of the stream: it failed to load it (see its own error)");
        watch_fail(w, err);
        return;
    }
    qemu_mutex_lock(&w->lock);
    w->ended = true;
    qemu_cond_broadcast(&w->cond);
    qemu_mutex_unlock(&w->lock);
}

static gpointer watch_thread(gpointer opaque)
{
    ConnWatch *w = opaque;
    g_autofree struct pollfd *pfd = g_new(struct pollfd, w->nfds);
    g_autofree int *outq = g_new0(int, w->nfds);
    g_autofree bool *lost = g_new0(bool, w->cfg.channels);  /* closed unread after the end */
    gint64 last_move = g_get_monotonic_time();

    for (;;) {
        poll_all(w, pfd, POLL_MS);
        bool done = __atomic_load_n(&w->writing_done, __ATOMIC_ACQUIRE);
        bool event = false;
        for (unsigned i = 0; i < w->nfds; i++) {
            event |= pfd[i].revents != 0;
        }
        if (done && pfd[0].revents) {
            main_closed_at_end(w, lost);
            break;
        }
        if (event && !done) {
            diagnose_closed(w, pfd);
            break;
        }
        for (unsigned i = 1; i < w->nfds; i++) {
            if (pfd[i].revents) {
                /* a channel closed at the end: main's close tells, unless it was reset */
                lost[i - 1] = sock_error(w->fds[i]) != 0;
                w->fds[i] = -1;
            }
        }
        if (__atomic_load_n(&w->stop, __ATOMIC_ACQUIRE)) {
            break;
        }
        /* bytes QEMU has not read yet: moving, or none waiting, is progress */
        bool waiting = false, moved = false;
        for (unsigned i = 0; i < w->nfds; i++) {
            int q = 0;
            if (ioctl(w->fds[i], SIOCOUTQ, &q) < 0) {
                q = 0;
            }
            moved |= q != outq[i];
            waiting |= q > 0;
            outq[i] = q;
        }
        gint64 now = g_get_monotonic_time();
        if (moved || (!waiting && !done)) {
            last_move = now;
        } else if (now - last_move >= (gint64)w->cfg.timeout_s * G_USEC_PER_SEC) {
            GError *err = NULL;
            if (done) {
                error_setg(&err, "QEMU did not end the migration within %u s of the end of "
                           "the stream (--timeout)", w->cfg.timeout_s);
            } else {
                error_setg(&err, "QEMU read nothing for %u s (--timeout): is it stopped, or "
                           "does it expect more multifd channels than %u (--channels)?",
                           w->cfg.timeout_s, w->cfg.channels);
            }
            watch_fail(w, err);
            break;
        }
    }
    qemu_mutex_lock(&w->lock);
    w->over = true;
    qemu_cond_broadcast(&w->cond);
    qemu_mutex_unlock(&w->lock);
    return NULL;
}

ConnWatch *conn_watch_start(const ConnWatchConfig *cfg)
{
    ConnWatch *w = g_new0(ConnWatch, 1);

    w->cfg = *cfg;
    w->nfds = 1 + cfg->channels;
    w->fds = g_new(int, w->nfds);
    w->fds[0] = cfg->main_fd;
    for (unsigned i = 0; i < cfg->channels; i++) {
        w->fds[1 + i] = cfg->chan_fds[i];
    }
    w->cfg.chan_fds = NULL;
    qemu_mutex_init(&w->lock);
    qemu_cond_init(&w->cond);
    w->thread = g_thread_new("conn-watch", watch_thread, w);
    return w;
}

void conn_watch_writing_done(ConnWatch *w)
{
    __atomic_store_n(&w->writing_done, 1, __ATOMIC_RELEASE);
}

bool conn_watch_settle(ConnWatch *w, unsigned ms, GError **errp)
{
    gint64 until = g_get_monotonic_time() + (gint64)ms * 1000;

    qemu_mutex_lock(&w->lock);
    while (!w->err && !w->over && qemu_cond_wait_until(&w->cond, &w->lock, until)) {
    }
    if (!w->err && !w->over) {
        /*
         * A connection closed meanwhile: the watch gives its verdict after
         * SETTLE_US.  fds: the thread changes them only after writing_done.
         */
        g_autofree struct pollfd *pfd = g_new(struct pollfd, w->nfds);
        poll_all(w, pfd, 0);
        bool event = false;
        for (unsigned i = 0; i < w->nfds; i++) {
            event |= pfd[i].revents != 0;
        }
        while (event && !w->err && !w->over) {
            qemu_cond_wait(&w->cond, &w->lock);
        }
    }
    bool ok = !w->err;
    if (w->err) {
        g_propagate_error(errp, g_error_copy(w->err));
    }
    qemu_mutex_unlock(&w->lock);
    return ok;
}

bool conn_watch_wait_end(ConnWatch *w, GError **errp)
{
    qemu_mutex_lock(&w->lock);
    while (!w->ended && !w->err && !w->over) {
        qemu_cond_wait(&w->cond, &w->lock);
    }
    bool ok = w->ended;
    if (w->err) {
        g_propagate_error(errp, g_error_copy(w->err));
    } else if (!ok) {
        error_setg(errp, "QEMU did not close the migration connection");
    }
    qemu_mutex_unlock(&w->lock);
    return ok;
}

bool conn_watch_stop(ConnWatch *w, GError **errp)
{
    __atomic_store_n(&w->stop, 1, __ATOMIC_RELEASE);
    if (w->thread) {
        g_thread_join(w->thread);
        w->thread = NULL;
    }
    if (!w->err) {
        return false;
    }
    g_clear_error(errp);
    g_propagate_error(errp, g_error_copy(w->err));
    return true;
}

void conn_watch_free(ConnWatch *w)
{
    if (!w) {
        return;
    }
    conn_watch_stop(w, NULL);
    if (w->err) {
        g_error_free(w->err);
    }
    qemu_cond_destroy(&w->cond);
    qemu_mutex_destroy(&w->lock);
    g_free(w->fds);
    g_free(w);
}
