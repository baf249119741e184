/*
 * QMP server: QEMU's JSON protocol over unix sockets or stdio.
 *
 * The server runs on the GLib main context of the main thread.  Commands
 * are declared in the schema (qapi/<group>.json, embedded at build time) and
 * implemented by handlers registered before the main loop starts.  The
 * dispatcher validates the arguments against the schema before a handler
 * runs, with QEMU's texts ("Parameter 'x' is missing", "Invalid parameter
 * type for 'x', expected: integer", "Parameter 'x' is unexpected",
 * "Parameter 'x' does not accept value 'y'", "Parameter 'x' expects uint8",
 * ...), so handlers only check semantics.
 *
 *   qmp_register_command("stop", qmp_stop, NULL);      (before the loop)
 *   Monitor *m = monitor_new_qmp_unix("/tmp/q.sock", errp);  (server=on,wait=off)
 *   Monitor *m = monitor_new_qmp_stdio(errp);
 *   qmp_event_send("STOP", NULL);                      (any thread)
 *
 * Handler contract: return a new JsonNode (the "return" value) on success,
 * or NULL with *errp set.  A handler that returns NULL without an error
 * replies {"return": {}}.  Handlers run in the main thread.
 */
#ifndef MONITOR_QMP_H
#define MONITOR_QMP_H

#include <glib.h>
#include <json-glib/json-glib.h>
#include <stdbool.h>

typedef struct Monitor Monitor;   /* one QMP server (socket or stdio) + its current client */

/* opaque is what the handler was registered with (the object it serves). */
typedef JsonNode *(*QmpCommandFunc)(JsonObject *args, Monitor *mon, void *opaque,
                                    GError **errp);

void qmp_register_command(const char *name, QmpCommandFunc fn, void *opaque);

/*
 * One JSON value from a whole text, read by QEMU's rules as QMP input is
 * (its lexer, limits and error texts, e.g. "JSON parse error, stray 'x'").
 * NULL with errp for a broken value, more than one value ("more than one
 * value") or a text that ends inside one ("the text ends inside a
 * value"); NULL without an error for a text of blanks only.
 */
JsonNode *qmp_json_parse_text(const char *text, size_t len, GError **errp);

/* -qmp unix:PATH,server=on,wait=off  or  -qmp stdio */
Monitor *monitor_new_qmp(const char *spec, GError **errp);
void monitor_cleanup_all(void);

/*
 * Emit an event to every connected client that negotiated capabilities.
 * data may be NULL (then "data": {} is omitted as QEMU omits it only for
 * events without data).  Takes ownership of data.  Thread-safe.
 */
void qmp_event_send(const char *event, JsonObject *data);

/*
 * For the command being dispatched: the first fd of the batch that came
 * with it over SCM_RIGHTS (the rest are closed), or -1 if none came or an
 * earlier command took it; the caller owns the fd.
 */
int monitor_take_received_fd(Monitor *mon);

/* getfd / closefd named fds (the fd: transport). */
/* Hands over the named fd (the name is forgotten, as in QEMU); caller owns it.
 * Error: "File descriptor named '%s' has not been found". */
int monitor_get_fd(const char *fdname, GError **errp);

/* Install the fdset provider into util/osdep.c (call once at startup). */
void monitor_fdsets_init(void);

/* Schema access for the dispatcher and docs; the embedded JSON text. */
const char *qapi_schema_text(void);

/* Helpers for handlers: typed getters of already validated optional args. */
const char *qmp_arg_str(JsonObject *args, const char *name, const char *dflt);
gint64 qmp_arg_int(JsonObject *args, const char *name, gint64 dflt);
bool qmp_arg_bool(JsonObject *args, const char *name, bool dflt);
bool qmp_arg_has(JsonObject *args, const char *name);

/* {"return": {}} convenience */
JsonNode *qmp_empty_return(void);

#endif
