/*
 * libqtest: start a process that speaks QMP and talk to it, for tests.
 *
 * Any binary that accepts QEMU's "-qmp unix:PATH,server=on,wait=off" works:
 * build/mapram-vm, or a real qemu-system-x86_64 for interop tests.  The
 * harness adds the -qmp option itself, waits for the socket, reads the
 * greeting and negotiates capabilities, so a test starts talking at once:
 *
 *   g_autofree char *dir = qtest_mkdtemp("mig");
 *   QTestState *s = qtest_init_bin(qtest_vm_binary(), "-m 150M -guest ab");
 *   qtest_qmp_assert_success(s, "{'execute': 'stop'}");
 *   qtest_qmp_eventwait(s, "STOP");
 *   g_autofree char *desc = qtest_qmp_expect_error(s,
 *       "{'execute': 'migrate', 'arguments': {'uri': 'foo:bar'}}");
 *   qtest_quit(s);
 *   qtest_rmtree(dir);
 *
 * Command text is printf-formatted, then single quotes are turned into
 * double quotes (as QEMU's qtest JSON accepts them) unless escaped as \'.
 * Values inserted with %s are not escaped: use qtest_json_str() for
 * arbitrary strings (paths with quotes, error texts).
 *
 * Replies and events are kept apart: qtest_qmp() returns the first reply
 * ({"return": ...} or {"error": ...}); events that arrive meanwhile are
 * queued for qtest_qmp_eventwait_ref().
 *
 * Every wait is bounded: MAPRAM_TEST_TIMEOUT seconds (default 120).  A
 * timeout fails the test with a message (g_test_fail + g_assert), so a hung
 * VM fails CI instead of hanging it.  Children are killed when the test
 * process exits, even through abort() (atexit + signal handlers + the
 * child's PR_SET_PDEATHSIG), and then the temp dirs of qtest_mkdtemp()
 * (the harness's own included) are removed.
 *
 * Each child's stderr goes to a log file in the harness temp dir; it is
 * copied to our stderr at qtest_quit()/qtest_kill() when the test failed
 * or MAPRAM_TEST_VERBOSE is set, and is readable with qtest_stderr_text().
 *
 * Ownership: JsonNode / JsonObject results are new references (unref, or
 * g_autoptr); char * results are g_free'd by the caller.  Not thread-safe:
 * one test thread drives a QTestState.
 */
#ifndef TESTS_QTEST_LIBQTEST_H
#define TESTS_QTEST_LIBQTEST_H

#include <glib.h>
#include <json-glib/json-glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct QTestState QTestState;

/* --- processes ---------------------------------------------------------- */

/*
 * Start @binary with the printf-formatted, shell-split @args_fmt plus the
 * -qmp option, connect and negotiate.  Fails the test (assert) when the
 * process dies or the socket does not appear in time.
 */
QTestState *qtest_init_bin(const char *binary, const char *args_fmt, ...)
    G_GNUC_PRINTF(2, 3);
QTestState *qtest_vinit_bin(const char *binary, const char *args_fmt,
                            va_list ap) G_GNUC_PRINTF(2, 0);

/* Same with extra environment entries ("NAME=VALUE", NULL-terminated). */
QTestState *qtest_init_bin_env(const char *binary, const char *const *env,
                               const char *args_fmt, ...) G_GNUC_PRINTF(3, 4);

/* Start $MAPRAM_VM (or the build tree's system/mapram-vm). */
QTestState *qtest_init(const char *args_fmt, ...) G_GNUC_PRINTF(1, 2);

/* The mapram-vm to test: $MAPRAM_VM, else the one built beside the tests. */
const char *qtest_vm_binary(void);

/*
 * Send "quit", wait for the process to exit (bounded), kill it otherwise,
 * and free @s.  Safe when the process already exited.  NULL is a no-op.
 */
void qtest_quit(QTestState *s);

/* SIGKILL the process, reap it and free @s.  NULL is a no-op. */
void qtest_kill(QTestState *s);

pid_t qtest_pid(QTestState *s);

/*
 * Wait up to @timeout_s seconds (<= 0: the default) for the process to exit
 * by itself.  Returns its exit status (0..255), 128 + signal number when it
 * was killed by a signal, or -1 on timeout.  Idempotent once reaped.
 */
int qtest_wait_exit(QTestState *s, int timeout_s);

/* True while the process has not exited (reaps it when it has). */
bool qtest_alive(QTestState *s);

/*
 * Fail the test now with a message and @s's output tail (NULL: none);
 * kills every child first.  For helpers built on this harness.
 */
void qtest_fail(QTestState *s, const char *fmt, ...) G_GNUC_PRINTF(2, 3)
    G_GNUC_NORETURN;

/* Everything the process wrote to stderr so far (g_free). */
char *qtest_stderr_text(QTestState *s);

/* --- QMP ---------------------------------------------------------------- */

/* Send a command, return the reply object node ({"return"|"error": ...}). */
JsonNode *qtest_qmp(QTestState *s, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
JsonNode *qtest_vqmp(QTestState *s, const char *fmt, va_list ap)
    G_GNUC_PRINTF(2, 0);

/* Same, passing @nfds fds with SCM_RIGHTS along with the command bytes. */
JsonNode *qtest_qmp_fds(QTestState *s, const int *fds, size_t nfds,
                        const char *fmt, ...) G_GNUC_PRINTF(4, 5);

/* Send without waiting; collect with qtest_qmp_receive(). */
void qtest_qmp_send(QTestState *s, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
/* Next reply (events are queued meanwhile). */
JsonNode *qtest_qmp_receive(QTestState *s);

/* Assert the reply is a success; return its "return" value if an object. */
JsonObject *qtest_qmp_assert_success_ref(QTestState *s, const char *fmt, ...)
    G_GNUC_PRINTF(2, 3);
/* Same, returning the "return" node whatever its type (e.g. arrays). */
JsonNode *qtest_qmp_assert_success_node(QTestState *s, const char *fmt, ...)
    G_GNUC_PRINTF(2, 3);
void qtest_qmp_assert_success(QTestState *s, const char *fmt, ...)
    G_GNUC_PRINTF(2, 3);
void qtest_qmp_fds_assert_success(QTestState *s, const int *fds, size_t nfds,
                                  const char *fmt, ...) G_GNUC_PRINTF(4, 5);

/* Assert the reply is an error; return its "desc" (g_free). */
char *qtest_qmp_expect_error(QTestState *s, const char *fmt, ...)
    G_GNUC_PRINTF(2, 3);
/* Same, also returning the error "class" in *@klass when non-NULL. */
char *qtest_qmp_expect_error_class(QTestState *s, char **klass,
                                   const char *fmt, ...) G_GNUC_PRINTF(3, 4);

/*
 * Wait for @event (default timeout); returns the whole event object
 * ({"event", "data", "timestamp"}).  Queued events of other names stay
 * queued; earlier ones of this name are consumed first.
 */
JsonObject *qtest_qmp_eventwait_ref(QTestState *s, const char *event);
void qtest_qmp_eventwait(QTestState *s, const char *event);
/* Same with a timeout in ms; returns NULL (no failure) on timeout. */
JsonObject *qtest_qmp_eventwait_timeout(QTestState *s, const char *event,
                                        int timeout_ms);
/* Pop a queued event of that name without waiting (NULL when none). */
JsonObject *qtest_qmp_event_ref(QTestState *s, const char *event);
/* Read whatever events are pending on the socket into the queue. */
void qtest_qmp_pump_events(QTestState *s);
/* Drop every queued event. */
void qtest_qmp_clear_events(QTestState *s);

/* --- JSON helpers ------------------------------------------------------- */

/* A JSON string literal for @str, quotes included (g_free). */
char *qtest_json_str(const char *str);
/* Compact JSON text of @node (g_free). */
char *qtest_json_text(JsonNode *node);
/* Member lookups that tolerate NULL and wrong types (NULL / @dflt). */
const char *qtest_json_get_str(JsonObject *o, const char *member);
gint64 qtest_json_get_int(JsonObject *o, const char *member, gint64 dflt);
bool qtest_json_get_bool(JsonObject *o, const char *member, bool dflt);
JsonObject *qtest_json_get_obj(JsonObject *o, const char *member);

/* --- time and files ----------------------------------------------------- */

/* Seconds every wait may take: $MAPRAM_TEST_TIMEOUT, default 120. */
int qtest_timeout_s(void);

/*
 * A new empty directory /var/tmp/mapram-<prefix>-XXXXXX (/var/tmp because
 * /tmp may be tmpfs, which lacks O_DIRECT); $MAPRAM_TEST_TMPDIR overrides
 * the parent.  Returns the path (g_free).  The harness removes it when the
 * test process exits, also through a failed assertion or a fatal signal,
 * if qtest_rmtree() has not; with $MAPRAM_TEST_KEEP set it is kept and
 * named on stderr instead.
 */
char *qtest_mkdtemp(const char *prefix);
/*
 * rm -rf @path (best effort; for temp dirs only).  A file system mounted
 * below it is detached, not emptied.
 */
void qtest_rmtree(const char *path);

/*
 * A network namespace made by the test (`ip netns add NAME`): the harness
 * deletes it (as `ip netns del` does: detach /run/netns/NAME, unlink it)
 * when the test process exits, also through a failed assertion or a fatal
 * signal, after killing the children, unless qtest_untrack_netns() came
 * first.  Its veth ends go with it.  At most 8 at once.
 */
void qtest_track_netns(const char *name);
/* The test deleted @name itself: forget it. */
void qtest_untrack_netns(const char *name);

/* Tier selection: false when MAPRAM_TEST_QUICK=1 (smoke tests only). */
bool qtest_full_tier(void);

#endif
