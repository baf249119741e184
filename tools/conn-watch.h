/*
 * mapram load --connect: watching the connections to the destination QEMU.
 *
 * In precopy a destination writes nothing on the main connection or on a
 * multifd channel, so any readable event on one of them means QEMU closed
 * it: it took fewer channels than we opened, it failed on a packet (a
 * multifd-compression other than ours), it failed to load the stream, or
 * it was killed.  A write to such a socket may still succeed for a while
 * (into the kernel's buffer), and a QEMU that never reads (one waiting for
 * more channels than we opened, or a stopped one) would block our writers
 * for good: so one thread polls every connection, tells the cases apart
 * from which connections closed, and watches the bytes not yet read by
 * QEMU (SIOCOUTQ): when none of them moved for the timeout, the load fails
 * too.  Either way it shuts every connection down, so that no writer stays
 * blocked, and keeps the reason, which the caller reports instead of the
 * writers' "Broken pipe".
 *
 *   w = conn_watch_start(&cfg);             connections made, nothing sent yet
 *   ok = conn_watch_settle(w, ms, errp);    QEMU closed none it will not take
 *   conn_watch_writing_done(w);             before the EOF: QEMU may end now
 *   ok = conn_watch_wait_end(w, errp);      after the last byte: QEMU closed main
 *   conn_watch_stop(w, errp);               on a failure: its reason if it had one
 *   conn_watch_free(w);
 */
#ifndef TOOLS_CONN_WATCH_H
#define TOOLS_CONN_WATCH_H

#include <glib.h>
#include <stdbool.h>

typedef struct ConnWatch ConnWatch;

typedef struct ConnWatchConfig {
    int main_fd;               /* the main connection's socket; stays the caller's */
    const int *chan_fds;       /* the multifd channels' sockets, channels of them */
    unsigned channels;
    unsigned timeout_s;        /* no byte read by QEMU for this long: failure */
    const char *compression;   /* for the messages: "none", "zlib", "zstd" */
} ConnWatchConfig;

ConnWatch *conn_watch_start(const ConnWatchConfig *cfg);
/*
 * Before the stream: up to ms for QEMU to close connections it will not
 * take (QEMU 7.2 drops those beyond its multifd-channels as it accepts
 * them, which an idle QEMU does at once; a busy one may do it only after
 * it loaded a stream whose pages they carried).  False + the reason when
 * the watch failed meanwhile.
 */
bool conn_watch_settle(ConnWatch *w, unsigned ms, GError **errp);
/* The stream is written up to its EOF: a clean close of main is QEMU's end. */
void conn_watch_writing_done(ConnWatch *w);
/*
 * After the last byte went out: waits until QEMU closed the main
 * connection (true) or the watch failed (false + its reason).
 */
bool conn_watch_wait_end(ConnWatch *w, GError **errp);
/*
 * The load failed on our side: ends the watch (a connection closed by
 * QEMU is still diagnosed first).  True + errp replaced by the watch's
 * reason when it has one (the cause of what the writers saw).
 */
bool conn_watch_stop(ConnWatch *w, GError **errp);
void conn_watch_free(ConnWatch *w);

/*
 * The reason for connections QEMU closed before the end: main_closed, or
 * closed[i] for channel i.  Also used when connecting channel i failed
 * after the main connection was made (closed[j] = true for j >= i).
 */
void conn_watch_diagnose(GError **errp, bool main_closed, const bool *closed, unsigned channels,
                         const char *compression);

#endif
