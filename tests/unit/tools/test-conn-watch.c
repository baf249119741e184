/*
 * The watch of `mapram load --connect` (tools/conn-watch.c) over real
 * socketpairs, with the test as the QEMU end: which connections close
 * says why the load failed, a peer that never reads fails it after the
 * timeout, and the end is the peer closing main after reading all.
 * The interop tests meet the same cases with QEMU 7.2; here each one is
 * made exactly, including those QEMU does not make on demand.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn-watch.h"

#define CHANNELS 4

/* fds[i][0]: the tool's end (0 main, 1 + k channel k), fds[i][1]: QEMU's. */
typedef struct Conns {
    int fds[1 + CHANNELS][2];
    int chan_fds[CHANNELS];
} Conns;

static void conns_open(Conns *c)
{
    for (int i = 0; i <= CHANNELS; i++) {
        g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, c->fds[i]), ==, 0);
    }
    for (int k = 0; k < CHANNELS; k++) {
        c->chan_fds[k] = c->fds[1 + k][0];
    }
}

static void conns_close(Conns *c)
{
    for (int i = 0; i <= CHANNELS; i++) {
        for (int e = 0; e < 2; e++) {
            if (c->fds[i][e] >= 0) {
                close(c->fds[i][e]);
            }
        }
    }
}

/* QEMU's end of connection i goes away. */
static void peer_close(Conns *c, int i)
{
    close(c->fds[i][1]);
    c->fds[i][1] = -1;
}

static ConnWatch *watch(Conns *c, unsigned timeout_s)
{
    ConnWatchConfig cfg = {
        .main_fd = c->fds[0][0], .chan_fds = c->chan_fds, .channels = CHANNELS,
        .timeout_s = timeout_s, .compression = "zstd",
    };
    return conn_watch_start(&cfg);
}

/* The watch failed by itself: its reason, and every connection of ours was shut down. */
static void assert_failed(ConnWatch *w, Conns *c, const char *want)
{
    GError *err = NULL;

    g_assert_false(conn_watch_wait_end(w, &err));
    g_assert_cmpstr(err->message, ==, want);
    g_error_free(err);
    for (int i = 0; i <= CHANNELS; i++) {
        char b = 0;
        g_assert_cmpint(send(c->fds[i][0], &b, 1, MSG_NOSIGNAL), ==, -1);
        g_assert_cmpint(errno, ==, EPIPE);
    }
}

static void test_channels_dropped(void)
{
    Conns c;
    conns_open(&c);
    ConnWatch *w = watch(&c, 60);
    peer_close(&c, 1 + 2);
    peer_close(&c, 1 + 3);
    assert_failed(w, &c, "QEMU took 2 of the 4 multifd channels and closed channels 2-3: its "
                  "multifd-channels is 2 (use --channels 2)");
    conn_watch_free(w);
    conns_close(&c);
}

static void test_last_channel_dropped(void)
{
    Conns c;
    conns_open(&c);
    ConnWatch *w = watch(&c, 60);
    peer_close(&c, 1 + 3);
    assert_failed(w, &c, "QEMU took 3 of the 4 multifd channels and closed channel 3: its "
                  "multifd-channels is 3 (use --channels 3)");
    conn_watch_free(w);
    conns_close(&c);
}

static void test_every_channel_closed(void)
{
    Conns c;
    conns_open(&c);
    ConnWatch *w = watch(&c, 60);
    for (int k = 0; k < CHANNELS; k++) {
        shutdown(c.fds[1 + k][1], SHUT_RDWR);     /* as QEMU does on a bad packet */
    }
    assert_failed(w, &c, "QEMU closed every multifd channel before the end of the stream: its "
                  "multifd-compression is not 'zstd' (--compression), its -uuid is not ours "
                  "(--uuid), or it failed to load a packet");
    conn_watch_free(w);
    conns_close(&c);
}

static void test_one_channel_closed(void)
{
    Conns c;
    conns_open(&c);
    ConnWatch *w = watch(&c, 60);
    peer_close(&c, 1 + 1);
    assert_failed(w, &c, "QEMU closed multifd channel 1 before the end of the stream");
    conn_watch_free(w);
    conns_close(&c);
}

static void test_main_closed(void)
{
    Conns c;
    conns_open(&c);
    ConnWatch *w = watch(&c, 60);
    for (int i = 0; i <= CHANNELS; i++) {
        peer_close(&c, i);                        /* QEMU died */
    }
    assert_failed(w, &c, "QEMU closed the migration connection before the end of the stream: "
                  "it failed to load it or it ended (see its own error)");
    conn_watch_free(w);
    conns_close(&c);
}

/* Bytes wait in a connection and QEMU reads none of them. */
static void test_never_reads(void)
{
    Conns c;
    conns_open(&c);
    ConnWatch *w = watch(&c, 1);
    g_assert_cmpint(write(c.fds[0][0], "QEVM", 4), ==, 4);
    gint64 start = g_get_monotonic_time();
    assert_failed(w, &c, "QEMU read nothing for 1 s (--timeout): is it stopped, or does it "
                  "expect more multifd channels than 4 (--channels)?");
    g_assert_cmpint(g_get_monotonic_time() - start, >=, G_USEC_PER_SEC);
    conn_watch_free(w);
    conns_close(&c);
}

/* Nothing waiting (the tool is reading its file): no timeout, however long. */
static void test_idle_is_no_stall(void)
{
    Conns c;
    conns_open(&c);
    ConnWatch *w = watch(&c, 1);
    GError *err = NULL;
    g_usleep(1500 * 1000);
    g_assert_false(conn_watch_stop(w, &err));
    g_assert_null(err);
    conn_watch_free(w);
    conns_close(&c);
}

/* After the stream: QEMU read everything and closed, channels first. */
static void test_clean_end(void)
{
    Conns c;
    char buf[8];
    conns_open(&c);
    ConnWatch *w = watch(&c, 60);
    g_assert_cmpint(write(c.fds[0][0], "EOF", 3), ==, 3);
    conn_watch_writing_done(w);
    for (int k = 0; k < CHANNELS; k++) {
        peer_close(&c, 1 + k);
    }
    g_usleep(200 * 1000);                         /* the watch sees the channels go first */
    g_assert_cmpint(read(c.fds[0][1], buf, sizeof(buf)), ==, 3);
    peer_close(&c, 0);
    GError *err = NULL;
    g_assert_true(conn_watch_wait_end(w, &err));
    g_assert_no_error(err);
    conn_watch_free(w);
    conns_close(&c);
}

/* After the stream: QEMU closed with bytes of it unread (it failed on the device state). */
static void test_unread_end(void)
{
    Conns c;
    conns_open(&c);
    ConnWatch *w = watch(&c, 60);
    g_assert_cmpint(write(c.fds[0][0], "EOF", 3), ==, 3);
    conn_watch_writing_done(w);
    peer_close(&c, 0);
    GError *err = NULL;
    g_assert_false(conn_watch_wait_end(w, &err));
    g_assert_cmpstr(err->message, ==, "QEMU closed the migration connection without reading "
                    "the end of the stream: it failed to load it (see its own error): "
                    "Connection reset by peer");
    g_error_free(err);
    conn_watch_free(w);
    conns_close(&c);
}

/*
 * After the stream: QEMU 7.2 closed the two channels beyond its
 * multifd-channels without reading the pages sent there ("Extra incoming
 * migration connection; ignoring"), then loaded the stream without them
 * and closed main cleanly; seen apart (wait_ms) or in one poll (0).
 */
static void extra_channels_unread(unsigned wait_ms)
{
    Conns c;
    char buf[8];
    conns_open(&c);
    ConnWatch *w = watch(&c, 60);
    for (int k = 2; k < CHANNELS; k++) {
        g_assert_cmpint(write(c.fds[1 + k][0], "PAGES", 5), ==, 5);
    }
    g_assert_cmpint(write(c.fds[0][0], "EOF", 3), ==, 3);
    conn_watch_writing_done(w);
    for (int k = 2; k < CHANNELS; k++) {
        peer_close(&c, 1 + k);
    }
    g_usleep(wait_ms * 1000);
    g_assert_cmpint(read(c.fds[0][1], buf, sizeof(buf)), ==, 3);
    peer_close(&c, 0);
    assert_failed(w, &c, "QEMU took 2 of the 4 multifd channels and closed channels 2-3: its "
                  "multifd-channels is 2 (use --channels 2)");
    conn_watch_free(w);
    conns_close(&c);
}

static void test_extra_channels_unread(void)
{
    extra_channels_unread(200);
}

static void test_extra_channels_unread_at_once(void)
{
    extra_channels_unread(0);
}

/* Before the stream: QEMU drops the channels beyond its own count as it accepts them. */
static void test_settle(void)
{
    Conns c;
    GError *err = NULL;
    conns_open(&c);
    ConnWatch *w = watch(&c, 60);
    gint64 t0 = g_get_monotonic_time();
    g_assert_true(conn_watch_settle(w, 100, &err));      /* nothing closed: go on */
    g_assert_no_error(err);
    g_assert_cmpint(g_get_monotonic_time() - t0, >=, 100 * 1000);
    conn_watch_free(w);
    conns_close(&c);

    conns_open(&c);
    w = watch(&c, 60);
    peer_close(&c, 1 + 2);
    peer_close(&c, 1 + 3);
    g_assert_false(conn_watch_settle(w, 100, &err));
    g_assert_cmpstr(err->message, ==, "QEMU took 2 of the 4 multifd channels and closed "
                    "channels 2-3: its multifd-channels is 2 (use --channels 2)");
    g_clear_error(&err);
    conn_watch_free(w);
    conns_close(&c);
}

/* After the stream QEMU reads all but never closes. */
static void test_no_end(void)
{
    Conns c;
    char buf[8];
    conns_open(&c);
    ConnWatch *w = watch(&c, 1);
    g_assert_cmpint(write(c.fds[0][0], "EOF", 3), ==, 3);
    conn_watch_writing_done(w);
    g_assert_cmpint(read(c.fds[0][1], buf, sizeof(buf)), ==, 3);
    assert_failed(w, &c, "QEMU did not end the migration within 1 s of the end of the stream "
                  "(--timeout)");
    conn_watch_free(w);
    conns_close(&c);
}

/* A stop on our side's failure: the closure QEMU made first is still the reason. */
static void test_stop_keeps_reason(void)
{
    Conns c;
    conns_open(&c);
    ConnWatch *w = watch(&c, 60);
    peer_close(&c, 1 + 3);
    GError *err = g_error_new_literal(g_quark_from_static_string("test"), 1,
                                      "multifd channel 3: Unable to write to socket: "
                                      "Broken pipe");
    g_assert_true(conn_watch_stop(w, &err));
    g_assert_cmpstr(err->message, ==, "QEMU took 3 of the 4 multifd channels and closed "
                    "channel 3: its multifd-channels is 3 (use --channels 3)");
    g_error_free(err);
    conn_watch_free(w);
    conns_close(&c);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/tools/conn-watch/channels-dropped", test_channels_dropped);
    g_test_add_func("/tools/conn-watch/last-channel-dropped", test_last_channel_dropped);
    g_test_add_func("/tools/conn-watch/every-channel-closed", test_every_channel_closed);
    g_test_add_func("/tools/conn-watch/one-channel-closed", test_one_channel_closed);
    g_test_add_func("/tools/conn-watch/main-closed", test_main_closed);
    g_test_add_func("/tools/conn-watch/never-reads", test_never_reads);
    g_test_add_func("/tools/conn-watch/idle-is-no-stall", test_idle_is_no_stall);
    g_test_add_func("/tools/conn-watch/clean-end", test_clean_end);
    g_test_add_func("/tools/conn-watch/unread-end", test_unread_end);
    g_test_add_func("/tools/conn-watch/no-end", test_no_end);
    g_test_add_func("/tools/conn-watch/settle", test_settle);
    g_test_add_func("/tools/conn-watch/extra-channels-unread", test_extra_channels_unread);
    g_test_add_func("/tools/conn-watch/extra-channels-unread-at-once",
                    test_extra_channels_unread_at_once);
    g_test_add_func("/tools/conn-watch/stop-keeps-reason", test_stop_keeps_reason);
    return g_test_run();
}
