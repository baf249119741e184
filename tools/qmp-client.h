/*
 * A small QMP client for the mapram tool: drives a mapram-vm (or QEMU)
 * over its unix socket the way a management layer would.
 *
 * The server may still be starting when we connect, so the connect
 * retries until a deadline.  QMP interleaves asynchronous events with
 * command replies; events read while waiting for a reply are queued, and
 * qmp_client_wait_event() looks in that queue before reading more.
 *
 *   QmpClient *c = qmp_client_connect("/tmp/vm.sock", 10000, &err);
 *       (greeting read, qmp_capabilities negotiated)
 *   JsonNode *ret = qmp_client_execute(c, "query-status", NULL, &err);
 *   JsonObject *ev = qmp_client_wait_event(c, "RESUME", 10000, &err);
 *   qmp_client_free(c);
 *
 * Not thread-safe: one client, one thread.
 */
#ifndef TOOLS_QMP_CLIENT_H
#define TOOLS_QMP_CLIENT_H

#include <glib.h>
#include <json-glib/json-glib.h>
#include <stdbool.h>

typedef struct QmpClient QmpClient;

/*
 * Connect to the QMP server listening on @path, retrying until
 * @timeout_ms has passed, read the greeting and leave capability
 * negotiation mode.  Returns a new client (free with qmp_client_free) or
 * NULL with @errp set.
 */
QmpClient *qmp_client_connect(const char *path, unsigned timeout_ms, GError **errp);
void qmp_client_free(QmpClient *c);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QmpClient, qmp_client_free)

/* How long execute waits for a reply; default 60 s. */
void qmp_client_set_timeout(QmpClient *c, unsigned timeout_ms);

/*
 * Run @cmd with @args (taken; may be NULL).  Returns the "return" member
 * (a new node the caller frees), or NULL with @errp set to the server's
 * "desc" (or to the I/O failure).
 */
JsonNode *qmp_client_execute(QmpClient *c, const char *cmd, JsonObject *args,
                             GError **errp);

/* Same, for commands whose answer is an object: the object, referenced. */
JsonObject *qmp_client_execute_obj(QmpClient *c, const char *cmd, JsonObject *args,
                                   GError **errp);

/*
 * Wait for event @name (first a queued one, oldest first), at most
 * @timeout_ms.  Returns the whole event object (referenced; unref it), or
 * NULL with @errp set.  Other events read meanwhile stay queued.
 */
JsonObject *qmp_client_wait_event(QmpClient *c, const char *name, unsigned timeout_ms,
                                  GError **errp);

/*
 * Send "quit" and wait for the server to close the connection.  The
 * client stays to be freed.
 */
bool qmp_client_quit(QmpClient *c, GError **errp);

#endif
