/*
 * Private interfaces of monitor/: the schema, the validator, the JSON
 * writer and stream splitter, the dispatcher and the fd tables.
 *
 *   const QapiSchema *s = qapi_schema_get();            (parsed once)
 *   qapi_validate_command_args(s, "migrate", args, errp);
 *   JsonNode *rsp = qmp_dispatch(mon, request);         (main thread)
 *   GString *line = qmp_json_to_string(rsp);            (QEMU's spacing)
 *
 * Everything here runs in the main thread except the fdset table
 * (monitor/fds.c), which the migration thread reaches through
 * qemu_open("/dev/fdset/N") and which therefore has its own lock.
 */
#ifndef MONITOR_INTERNAL_H
#define MONITOR_INTERNAL_H

#include "monitor/qmp.h"

/* --- schema.c: the parsed schema (immutable once parsed) --- */

typedef struct QapiSchema QapiSchema;

typedef enum {
    QAPI_KIND_NONE,
    QAPI_KIND_COMMAND,
    QAPI_KIND_STRUCT,
    QAPI_KIND_ENUM,
    QAPI_KIND_UNION,
    QAPI_KIND_ALTERNATE,
    QAPI_KIND_EVENT,
} QapiKind;

/* Parse schema text (a JSON array of definitions); NULL + errp on error. */
QapiSchema *qapi_schema_parse(const char *text, GError **errp);
void qapi_schema_free(QapiSchema *s);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QapiSchema, qapi_schema_free)

/* The embedded schema, parsed on first use; aborts if it is broken. */
const QapiSchema *qapi_schema_get(void);

/* A definition by name (borrowed), or NULL; *kind says which kind it is. */
JsonObject *qapi_schema_lookup(const QapiSchema *s, const char *name, QapiKind *kind);
/* Names of every definition of one kind, sorted; free with g_ptr_array_unref. */
GPtrArray *qapi_schema_names(const QapiSchema *s, QapiKind kind);
/* Every type reference resolves and every union/alternate is well-formed. */
bool qapi_schema_check(const QapiSchema *s, GError **errp);

/*
 * Check a command's arguments the way QEMU's input visitor does, with its
 * messages; args may be NULL (no "arguments" member).
 */
bool qapi_validate_command_args(const QapiSchema *s, const char *command,
                                JsonObject *args, GError **errp);
/* Check one value against a type name ("uint8", "MigrationChannel", ...). */
bool qapi_validate_value(const QapiSchema *s, const char *type, JsonNode *value,
                         const char *name, GError **errp);

/* --- json.c: QEMU-shaped JSON text, and the input stream splitter --- */

/* Serialise as QEMU does: ", " between members, ": " after keys,
 * non-ASCII as \uXXXX, doubles with %.17g. */
GString *qmp_json_to_string(JsonNode *node);

/*
 * Splits a byte stream into top-level JSON texts by tracking strings and
 * bracket depth; the texts are parsed afterwards.  Feed bytes as they
 * arrive; each complete text is returned by json_splitter_next().
 */
typedef struct JsonSplitter {
    GString *cur;        /* text of the message being accumulated */
    GQueue done;         /* complete texts (char *), oldest first */
    int depth;
    bool in_string;
    bool escape;
} JsonSplitter;

#define JSON_SPLITTER_MAX_DEPTH 1024
#define JSON_SPLITTER_MAX_SIZE  (64 * 1024 * 1024)

void json_splitter_init(JsonSplitter *js);
void json_splitter_reset(JsonSplitter *js);
void json_splitter_destroy(JsonSplitter *js);
void json_splitter_feed(JsonSplitter *js, const char *buf, size_t len);
char *json_splitter_next(JsonSplitter *js);   /* caller frees; NULL if none */

/*
 * Whether a string of text (cut as json-glib 1.6 cuts it: strings, the
 * four characters after each \u, comments) has a surrogate \u escape
 * (as json-glib reads one: "\ud8" to "\udf", whatever follows) that is
 * not the first half of a well-formed pair.  json-glib 1.6 (Debian 12)
 * leaks its string buffer on such an escape followed by a \u escape
 * that does not complete a pair ("malformed surrogate pair"), so such a
 * text must not reach it; a lone surrogate, which it would let through
 * into a string that is not UTF-8, goes too.  *line and *col: where the
 * escape starts (1-based; col in bytes).
 */
bool json_text_bad_surrogate_pair(const char *text, unsigned *line, unsigned *col);

/* --- dispatch.c --- */

/* Registered handler for a command name, or NULL. */
/* The handler registered for name and its opaque; NULL if none. */
QmpCommandFunc qmp_find_command(const char *name, void **opaque);

/*
 * Run one parsed request on behalf of mon and return the response object
 * ({"return": ...} or {"error": ...}, with "id" echoed); never NULL.
 */
JsonNode *qmp_dispatch(Monitor *mon, JsonNode *request);
/* Response for a text that did not parse (no id, as QEMU). */
JsonNode *qmp_error_response(const GError *err);

/* {"qemu": {"micro", "minor", "major"}, "package"}: greeting and query-version. */
JsonNode *qmp_version_info(void);

/* Register the commands implemented in monitor/ (once). */
void monitor_register_builtin_commands(void);

/* --- server.c: per-monitor state the dispatcher needs --- */

/*
 * An in-process client, for tests/fuzz: no fd and no main-loop watch;
 * monitor_inproc_feed() hands it bytes as a socket read would, and every
 * line it sends (greeting, replies, events, each with its "\r\n") goes to
 * out, on the thread that sends it (events from other threads still go
 * through the main context).  Freed by monitor_cleanup_all().
 */
typedef void (*MonitorOutFunc)(void *opaque, const char *buf, size_t len);
Monitor *monitor_new_qmp_inproc(MonitorOutFunc out, void *opaque);
void monitor_inproc_feed(Monitor *mon, const char *buf, size_t len);
/* fd as if it came with SCM_RIGHTS (getfd, add-fd take it); the monitor owns it. */
void monitor_inproc_pass_fd(Monitor *mon, int fd);

bool monitor_is_negotiated(Monitor *mon);
void monitor_set_negotiated(Monitor *mon, bool oob);
bool monitor_oob_enabled(Monitor *mon);

/* --- fds.c --- */

void qmp_register_fd_commands(void);
/* Close every named fd (getfd); for monitor_cleanup_all. */
void monitor_fds_cleanup(void);
/* Close every fdset's fds and free the sets; returns the dups still out. */
unsigned monitor_fdsets_free_all(void);

#endif
