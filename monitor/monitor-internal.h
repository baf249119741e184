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
 * nodes from json_text_u64_nodes(), or NULL): QEMU takes them for unsigned
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

/* --- json.c: QEMU-shaped JSON text, and the input stream splitter --- */

/* Serialise as QEMU does: ", " between members, ": " after keys,
 * non-ASCII as \uXXXX, doubles with %.17g. */
GString *qmp_json_to_string(JsonNode *node);
/* The same, with the integers of unsigned_nodes (a set of nodes, or NULL) as uint64. */
GString *qmp_json_to_string_unsigned(JsonNode *node, GHashTable *unsigned_nodes);

/*
 * What json-glib 1.6 loses of a text, found in its source before it is
 * parsed.  json-glib reads an integer above INT64_MAX as the int64 with
 * the same bits (2^64 - 1 as -1) and saturates one beyond UINT64_MAX;
 * QEMU's parser keeps the first as a uint64 and reads the second as a
 * double.  json_text_scan() copies the text with every integer beyond
 * both ranges written as a float ("N.0": json-glib then reads the double
 * QEMU's strtod gives) and lists the uint64 ones by their index among the
 * text's numbers; json_text_u64_nodes() finds those nodes in the parsed
 * tree (document order), for the checks that must tell them from
 * negative numbers.  It also notes a key repeated in one object, which
 * json-glib merges and QEMU refuses.
 *
 *   JsonTextScan scan;
 *   json_text_scan(text, &scan);
 *   ... parse scan.text with json-glib ...
 *   GHashTable *u64 = json_text_u64_nodes(root, &scan);   (a set of nodes)
 *   json_text_scan_clear(&scan);
 */
typedef struct JsonTextScan {
    char *text;             /* the text to parse (owned) */
    GArray *u64;            /* guint: indexes among the text's numbers, ascending */
    guint numbers;          /* numbers in the text */
    bool duplicate_key;
    bool too_deep;          /* nested past JSON_SPLITTER_MAX_DEPTH: not for json-glib */
} JsonTextScan;

void json_text_scan(const char *text, JsonTextScan *out);
void json_text_scan_clear(JsonTextScan *s);
/* A new set (g_hash_table_unref); empty when the tree's numbers are not the scan's. */
GHashTable *json_text_u64_nodes(JsonNode *root, const JsonTextScan *scan);

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
