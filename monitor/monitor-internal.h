/*
 * Private interfaces of monitor/: the schema, the validator, the JSON
 * writer and stream splitter, the dispatcher and the fd tables.
 *
 *   const QapiSchema *s = qapi_schema_get();            (parsed once)
 *   qapi_validate_command_args(s, "migrate", args, errp);
 *   JsonNode *rsp = qmp_dispatch(mon, request, u64, uns); (main thread)
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
/*
 * The same, told which nodes hold a uint64 above INT64_MAX (u64: a set of
 * nodes from a JsonMessage, or NULL): QEMU takes them for unsigned
 * members only ("Invalid parameter type for 'fdset-id', expected: integer").
 */
bool qapi_validate_command_args_u64(const QapiSchema *s, const char *command,
                                    JsonObject *args, GHashTable *u64, GError **errp);
/* Adds to out the integer nodes of ret at unsigned types of command's return type. */
void qapi_command_return_unsigned(const QapiSchema *s, const char *command, JsonNode *ret,
                                  GHashTable *out);
/* Check one value against a type name ("uint8", "MigrationChannel", ...). */
bool qapi_validate_value(const QapiSchema *s, const char *type, JsonNode *value,
                         const char *name, GError **errp);

/* --- json.c: QEMU-shaped JSON text out, and QMP input read as QEMU reads it --- */

/* Serialise as QEMU does: ", " between members, ": " after keys,
 * non-ASCII as \uXXXX, doubles with %.17g. */
GString *qmp_json_to_string(JsonNode *node);
/* The same, with the integers of unsigned_nodes (a set of nodes, or NULL) as uint64. */
GString *qmp_json_to_string_unsigned(JsonNode *node, GHashTable *unsigned_nodes);

/*
 * QMP input, read by QEMU's rules (its lexer, streamer and parser, see
 * json.c): bytes in, messages out, each a parsed value or QEMU's error
 * for it.  One broken text may bring several errors, as in QEMU.
 */
typedef struct JsonMessage {
    JsonNode *root;      /* the value; NULL with err */
    /*
     * Integer nodes above INT64_MAX, held as the int64 with the same bits:
     * QEMU keeps them as uint64 (a set of nodes, for the checks that must
     * tell them from negative numbers).
     */
    GHashTable *u64;
    GError *err;         /* "JSON parse error, ..." and the like; NULL with root */
} JsonMessage;

void json_message_free(JsonMessage *m);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(JsonMessage, json_message_free)

typedef struct JsonStreamer {
    int state;           /* the lexer's */
    char quote;          /* the open string's quote */
    GString *token;      /* the token being read */
    GPtrArray *tokens;   /* the message's tokens so far */
    int braces;
    int brackets;
    size_t size;         /* bytes of those tokens */
    GQueue done;         /* JsonMessage *, oldest first */
} JsonStreamer;

void json_streamer_init(JsonStreamer *js);
/* Drops what was read and not yet taken. */
void json_streamer_reset(JsonStreamer *js);
void json_streamer_destroy(JsonStreamer *js);
void json_streamer_feed(JsonStreamer *js, const char *buf, size_t len);
/* The next complete message (json_message_free), or NULL. */
JsonMessage *json_streamer_next(JsonStreamer *js);

/* --- dispatch.c --- */

/* Registered handler for a command name, or NULL. */
/* The handler registered for name and its opaque; NULL if none. */
QmpCommandFunc qmp_find_command(const char *name, void **opaque);

/*
 * Run one parsed request on behalf of mon and return the response object
 * ({"return": ...} or {"error": ...}, with "id" echoed); never NULL.
 * u64: the request's nodes that hold a uint64 above INT64_MAX (a set, or
 * NULL); the response's nodes to write as uint64 are added to
 * unsigned_out (a set, or NULL).
 */
JsonNode *qmp_dispatch(Monitor *mon, JsonNode *request, GHashTable *u64,
                       GHashTable *unsigned_out);
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
/*
 * fds as if they came with SCM_RIGHTS with the next bytes fed: they replace
 * any still queued, and the next command dispatched may take the first
 * (getfd, add-fd); the monitor owns them and closes what no command took.
 */
void monitor_inproc_pass_fds(Monitor *mon, const int *fds, guint n);

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
