/*
 * The QMP schema at run time, and argument validation against it.
 *
 * Validation walks the arguments the way QEMU's generated visitors walk
 * them (members in declaration order, base first, then the union branch,
 * then "unexpected" leftovers), so the first error reported is the one
 * QEMU reports, with QEMU's text.  Two naming conventions are QEMU's too:
 * most messages carry the full path ("channels[0].addr.transport"), but
 * enum values and fixed-width integer ranges carry the bare member name
 * ("null" for list elements), because QEMU checks those one layer up.
 */
#include <string.h>

#include "monitor-internal.h"
#include "util/error.h"

typedef struct QapiDef {
    QapiKind kind;
    JsonObject *obj;          /* borrowed from QapiSchema.root */
} QapiDef;

struct QapiSchema {
    JsonNode *root;           /* the parsed array of definitions */
    GHashTable *defs;         /* name -> QapiDef* */
};

static const char *const kind_keys[] = {
    [QAPI_KIND_COMMAND] = "command",
    [QAPI_KIND_STRUCT] = "struct",
    [QAPI_KIND_ENUM] = "enum",
    [QAPI_KIND_UNION] = "union",
    [QAPI_KIND_ALTERNATE] = "alternate",
    [QAPI_KIND_EVENT] = "event",
};

static const char *const builtin_types[] = {
    "str", "int", "int8", "int16", "int32", "int64", "uint8", "uint16",
    "uint32", "uint64", "size", "number", "bool", "null", "any",
};

static bool is_builtin(const char *type)
{
    for (size_t i = 0; i < G_N_ELEMENTS(builtin_types); i++) {
        if (!strcmp(type, builtin_types[i])) {
            return true;
        }
    }
    return false;
}

/* --- parsing --- */

void qapi_schema_free(QapiSchema *s)
{
    if (!s) {
        return;
    }
    g_clear_pointer(&s->defs, g_hash_table_unref);
    g_clear_pointer(&s->root, json_node_unref);
    g_free(s);
}

static bool add_definition(QapiSchema *s, JsonNode *node, GError **errp)
{
    JsonObject *obj;
    QapiDef *def;
    const char *name = NULL;
    QapiKind kind = QAPI_KIND_NONE;

    if (!JSON_NODE_HOLDS_OBJECT(node)) {
        error_setg(errp, "Schema definition is not an object");
        return false;
    }
    obj = json_node_get_object(node);
    for (int k = QAPI_KIND_COMMAND; k <= QAPI_KIND_EVENT; k++) {
        if (json_object_has_member(obj, kind_keys[k])) {
            if (kind != QAPI_KIND_NONE) {
                error_setg(errp, "Schema definition '%s' has two kinds", name);
                return false;
            }
            kind = k;
            name = json_object_get_string_member(obj, kind_keys[k]);
        }
    }
    if (kind == QAPI_KIND_NONE || !name) {
        error_setg(errp, "Schema definition without a kind or a name");
        return false;
    }
    if (g_hash_table_contains(s->defs, name)) {
        error_setg(errp, "Schema definition '%s' is duplicated", name);
        return false;
    }
    def = g_new0(QapiDef, 1);
    def->kind = kind;
    def->obj = obj;
    g_hash_table_insert(s->defs, (char *)name, def);
    return true;
}

QapiSchema *qapi_schema_parse(const char *text, GError **errp)
{
    g_autoptr(JsonParser) parser = json_parser_new();
    g_autoptr(QapiSchema) s = g_new0(QapiSchema, 1);
    GError *err = NULL;
    JsonArray *arr;

    if (!json_parser_load_from_data(parser, text, -1, &err)) {
        error_setg(errp, "Schema is not valid JSON: %s", err->message);
        g_error_free(err);
        return NULL;
    }
    s->root = json_parser_steal_root(parser);
    if (!s->root || !JSON_NODE_HOLDS_ARRAY(s->root)) {
        error_setg(errp, "Schema is not a JSON array of definitions");
        return NULL;
    }
    s->defs = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, g_free);
    arr = json_node_get_array(s->root);
    for (guint i = 0; i < json_array_get_length(arr); i++) {
        if (!add_definition(s, json_array_get_element(arr, i), errp)) {
            return NULL;
        }
    }
    return g_steal_pointer(&s);
}

static gpointer parse_embedded(gpointer unused)
{
    GError *err = NULL;
    QapiSchema *s = qapi_schema_parse(qapi_schema_text(), &err);

    if (!s || !qapi_schema_check(s, &err)) {
        g_error("embedded QMP schema is broken: %s", err->message);
    }
    return s;
}

const QapiSchema *qapi_schema_get(void)
{
    static GOnce once = G_ONCE_INIT;

    return g_once(&once, parse_embedded, NULL);
}

JsonObject *qapi_schema_lookup(const QapiSchema *s, const char *name, QapiKind *kind)
{
    QapiDef *def = g_hash_table_lookup(s->defs, name);

    if (kind) {
        *kind = def ? def->kind : QAPI_KIND_NONE;
    }
    return def ? def->obj : NULL;
}

static gint compare_str(gconstpointer a, gconstpointer b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

GPtrArray *qapi_schema_names(const QapiSchema *s, QapiKind kind)
{
    GPtrArray *names = g_ptr_array_new();
    GHashTableIter iter;
    gpointer key, value;

    g_hash_table_iter_init(&iter, s->defs);
    while (g_hash_table_iter_next(&iter, &key, &value)) {
        if (((QapiDef *)value)->kind == kind) {
            g_ptr_array_add(names, key);
        }
    }
    g_ptr_array_sort(names, compare_str);
    return names;
}

/* --- helpers over definitions --- */

/* The type name of a member type expression, or of an array's element. */
static JsonNode *texpr_type(JsonNode *texpr)
{
    if (JSON_NODE_HOLDS_OBJECT(texpr)) {
        return json_object_get_member(json_node_get_object(texpr), "type");
    }
    return texpr;
}

static const char *enum_value_name(JsonNode *v)
{
    if (JSON_NODE_HOLDS_OBJECT(v)) {
        return json_object_get_string_member(json_node_get_object(v), "name");
    }
    return json_node_get_string(v);
}

static bool enum_has_value(JsonObject *def, const char *value)
{
    JsonArray *vals = json_object_get_array_member(def, "data");

    for (guint i = 0; i < json_array_get_length(vals); i++) {
        if (!g_strcmp0(enum_value_name(json_array_get_element(vals, i)), value)) {
            return true;
        }
    }
    return false;
}

/* --- schema self-check --- */

static bool check_type_name(const QapiSchema *s, const char *owner, const char *type,
                            GError **errp)
{
    QapiKind kind;

    if (is_builtin(type)) {
        return true;
    }
    if (!qapi_schema_lookup(s, type, &kind)) {
        error_setg(errp, "'%s' refers to unknown type '%s'", owner, type);
        return false;
    }
    if (kind == QAPI_KIND_COMMAND || kind == QAPI_KIND_EVENT) {
        error_setg(errp, "'%s' uses %s '%s' as a type", owner, kind_keys[kind], type);
        return false;
    }
    return true;
}

static bool check_texpr(const QapiSchema *s, const char *owner, JsonNode *texpr,
                        GError **errp)
{
    JsonNode *t = texpr_type(texpr);

    if (t && JSON_NODE_HOLDS_ARRAY(t)) {
        JsonArray *arr = json_node_get_array(t);

        if (json_array_get_length(arr) != 1) {
            error_setg(errp, "'%s' has an array type without one element type", owner);
            return false;
        }
        return check_texpr(s, owner, json_array_get_element(arr, 0), errp);
    }
    if (!t || json_node_get_value_type(t) != G_TYPE_STRING) {
        error_setg(errp, "'%s' has a malformed type expression", owner);
        return false;
    }
    return check_type_name(s, owner, json_node_get_string(t), errp);
}

/* Members: an inline object of "[*]name": texpr, or the name of a struct. */
static bool check_members(const QapiSchema *s, const char *owner, JsonNode *members,
                          GError **errp)
{
    JsonObjectIter iter;
    const char *key;
    JsonNode *texpr;

    if (!members) {
        return true;
    }
    if (!JSON_NODE_HOLDS_OBJECT(members)) {
        return check_texpr(s, owner, members, errp);
    }
    json_object_iter_init_ordered(&iter, json_node_get_object(members));
    while (json_object_iter_next_ordered(&iter, &key, &texpr)) {
        if (!check_texpr(s, owner, texpr, errp)) {
            return false;
        }
    }
    return true;
}

/* The enum type of a union's discriminator (inline or struct base). */
static const char *union_tag_type(const QapiSchema *s, JsonObject *def)
{
    JsonNode *base = json_object_get_member(def, "base");
    const char *tag = json_object_get_string_member_with_default(def, "discriminator", NULL);
    JsonObject *members;
    JsonNode *t;

    if (!base || !tag) {
        return NULL;
    }
    if (JSON_NODE_HOLDS_OBJECT(base)) {
        members = json_node_get_object(base);
    } else {
        JsonObject *bdef = qapi_schema_lookup(s, json_node_get_string(base), NULL);

        if (!bdef || !json_object_has_member(bdef, "data")) {
            return NULL;
        }
        members = json_object_get_object_member(bdef, "data");
    }
    t = members ? json_object_get_member(members, tag) : NULL;
    t = t ? texpr_type(t) : NULL;
    if (!t || json_node_get_value_type(t) != G_TYPE_STRING) {
        return NULL;
    }
    return json_node_get_string(t);
}

static bool check_union(const QapiSchema *s, const char *name, JsonObject *def,
                        GError **errp)
{
    const char *tag_type = union_tag_type(s, def);
    JsonObject *tag_def;
    QapiKind kind;
    JsonObjectIter iter;
    const char *key;
    JsonNode *branch;

    if (!check_members(s, name, json_object_get_member(def, "base"), errp)) {
        return false;
    }
    tag_def = tag_type ? qapi_schema_lookup(s, tag_type, &kind) : NULL;
    if (!tag_def || kind != QAPI_KIND_ENUM) {
        error_setg(errp, "Union '%s' needs a discriminator of enum type in its base", name);
        return false;
    }
    json_object_iter_init_ordered(&iter, json_object_get_object_member(def, "data"));
    while (json_object_iter_next_ordered(&iter, &key, &branch)) {
        if (!enum_has_value(tag_def, key)) {
            error_setg(errp, "Union '%s' has branch '%s' that is not a value of '%s'",
                       name, key, tag_type);
            return false;
        }
        if (!check_texpr(s, name, branch, errp)) {
            return false;
        }
    }
    return true;
}

static bool check_definition(const QapiSchema *s, const char *name, QapiDef *def,
                             GError **errp)
{
    JsonObject *obj = def->obj;

    switch (def->kind) {
    case QAPI_KIND_COMMAND:
        if (json_object_has_member(obj, "returns") &&
            !check_texpr(s, name, json_object_get_member(obj, "returns"), errp)) {
            return false;
        }
        return check_members(s, name, json_object_get_member(obj, "data"), errp);
    case QAPI_KIND_EVENT:
        return check_members(s, name, json_object_get_member(obj, "data"), errp);
    case QAPI_KIND_STRUCT:
        return check_members(s, name, json_object_get_member(obj, "base"), errp) &&
               check_members(s, name, json_object_get_member(obj, "data"), errp);
    case QAPI_KIND_UNION:
        return check_union(s, name, obj, errp);
    case QAPI_KIND_ALTERNATE:
        return check_members(s, name, json_object_get_member(obj, "data"), errp);
    case QAPI_KIND_ENUM:
        if (!json_object_has_member(obj, "data") ||
            !JSON_NODE_HOLDS_ARRAY(json_object_get_member(obj, "data"))) {
            error_setg(errp, "Enum '%s' needs a 'data' array", name);
            return false;
        }
        return true;
    case QAPI_KIND_NONE:
        break;
    }
    return false;
}

bool qapi_schema_check(const QapiSchema *s, GError **errp)
{
    GHashTableIter iter;
    gpointer key, value;

    g_hash_table_iter_init(&iter, s->defs);
    while (g_hash_table_iter_next(&iter, &key, &value)) {
        if (!check_definition(s, key, value, errp)) {
            return false;
        }
    }
    return true;
}

/* --- validation --- */

/*
 * One check: the schema, and the nodes json-glib cannot tell apart by
 * value (JsonMessage.u64); with unsigned_out, the integer nodes found
 * at unsigned types are added to it (for the writer).
 */
typedef struct QapiCheck {
    const QapiSchema *schema;
    GHashTable *u64;                /* may be NULL */
    GHashTable *unsigned_out;       /* may be NULL */
} QapiCheck;

static bool is_u64(const QapiCheck *s, JsonNode *v)
{
    return s->u64 && g_hash_table_contains(s->u64, v);
}

static bool validate_texpr(const QapiCheck *s, JsonNode *texpr, JsonNode *value,
                           const char *path, const char *name, GError **errp);
static bool validate_type(const QapiCheck *s, const char *type, JsonNode *value,
                          const char *path, const char *name, GError **errp);

static char *child_path(const char *path, const char *key)
{
    return *path ? g_strdup_printf("%s.%s", path, key) : g_strdup(key);
}

static bool is_int(JsonNode *v)
{
    return JSON_NODE_HOLDS_VALUE(v) && json_node_get_value_type(v) == G_TYPE_INT64;
}

static bool is_number(JsonNode *v)
{
    return is_int(v) ||
           (JSON_NODE_HOLDS_VALUE(v) && json_node_get_value_type(v) == G_TYPE_DOUBLE);
}

static bool is_string(JsonNode *v)
{
    return JSON_NODE_HOLDS_VALUE(v) && json_node_get_value_type(v) == G_TYPE_STRING;
}

static bool is_bool(JsonNode *v)
{
    return JSON_NODE_HOLDS_VALUE(v) && json_node_get_value_type(v) == G_TYPE_BOOLEAN;
}

static bool type_error(const char *path, const char *expected, GError **errp)
{
    error_setg(errp, "Invalid parameter type for '%s', expected: %s", path, expected);
    return false;
}

static bool value_error(const char *param, const char *expects, GError **errp)
{
    error_setg(errp, "Parameter '%s' expects %s", param, expects);
    return false;
}

typedef struct IntRange {
    const char *type;
    const char *c_type;       /* QEMU names the C type in range errors */
    gint64 min;
    guint64 max;
    bool is_unsigned;
} IntRange;

static const IntRange int_ranges[] = {
    { "int",    "int64_t",  G_MININT64, G_MAXINT64, false },
    { "int64",  "int64_t",  G_MININT64, G_MAXINT64, false },
    { "int8",   "int8_t",   G_MININT8,  G_MAXINT8,  false },
    { "int16",  "int16_t",  G_MININT16, G_MAXINT16, false },
    { "int32",  "int32_t",  G_MININT32, G_MAXINT32, false },
    { "uint8",  "uint8_t",  0, G_MAXUINT8,  true },
    { "uint16", "uint16_t", 0, G_MAXUINT16, true },
    { "uint32", "uint32_t", 0, G_MAXUINT32, true },
    { "uint64", "uint64_t", 0, G_MAXUINT64, true },
    { "size",   "uint64_t", 0, G_MAXUINT64, true },
};

static bool validate_int(const QapiCheck *s, const IntRange *r, JsonNode *value,
                         const char *path, const char *name, GError **errp)
{
    gint64 v;

    if (r->is_unsigned) {
        /* QEMU reads every unsigned type as uint64 first, and accepts
         * negative numbers there for backward compatibility. */
        if (!is_int(value)) {
            return value_error(path, "uint64", errp);
        }
        /* a uint64 above INT64_MAX is held as the int64 with its bits */
        v = json_node_get_int(value);
        if ((guint64)v > r->max) {
            return value_error(name ? name : "null", r->c_type, errp);
        }
        if (s->unsigned_out) {
            g_hash_table_add(s->unsigned_out, value);
        }
        return true;
    }
    /* QEMU reads a signed integer only from an int64: a uint64 is not one */
    if (!is_int(value) || is_u64(s, value)) {
        return type_error(path, "integer", errp);
    }
    v = json_node_get_int(value);
    if (v < r->min || v > (gint64)r->max) {
        return value_error(name ? name : "null", r->c_type, errp);
    }
    return true;
}

/* true + *handled when type is a builtin. */
static bool validate_builtin(const QapiCheck *s, const char *type, JsonNode *value,
                             const char *path, const char *name, bool *handled,
                             GError **errp)
{
    *handled = true;
    for (size_t i = 0; i < G_N_ELEMENTS(int_ranges); i++) {
        if (!strcmp(type, int_ranges[i].type)) {
            return validate_int(s, &int_ranges[i], value, path, name, errp);
        }
    }
    if (!strcmp(type, "str")) {
        return is_string(value) || type_error(path, "string", errp);
    }
    if (!strcmp(type, "bool")) {
        return is_bool(value) || type_error(path, "boolean", errp);
    }
    if (!strcmp(type, "number")) {
        return is_number(value) || type_error(path, "number", errp);
    }
    if (!strcmp(type, "null")) {
        return JSON_NODE_HOLDS_NULL(value) || type_error(path, "null", errp);
    }
    if (!strcmp(type, "any")) {
        return true;
    }
    *handled = false;
    return false;
}

static bool validate_enum(JsonObject *def, JsonNode *value, const char *path,
                          const char *name, GError **errp)
{
    const char *str;

    if (!is_string(value)) {
        return type_error(path, "string", errp);
    }
    str = json_node_get_string(value);
    if (!enum_has_value(def, str)) {
        error_setg(errp, "Parameter '%s' does not accept value '%s'",
                   name ? name : "null", str);
        return false;
    }
    return true;
}

static bool validate_members_of(const QapiCheck *s, JsonNode *members, JsonObject *obj,
                                const char *path, GHashTable *seen, GError **errp);

/* The members of a struct or union type named type, into one object. */
static bool validate_type_members(const QapiCheck *s, const char *type, JsonObject *obj,
                                  const char *path, GHashTable *seen, GError **errp)
{
    QapiKind kind;
    JsonObject *def = qapi_schema_lookup(s->schema, type, &kind);
    const char *tag;
    JsonNode *branch;

    if (kind != QAPI_KIND_STRUCT && kind != QAPI_KIND_UNION) {
        error_setg(errp, "Internal error: '%s' is not a struct or union", type);
        return false;
    }
    if (!validate_members_of(s, json_object_get_member(def, "base"), obj, path, seen, errp)) {
        return false;
    }
    if (kind == QAPI_KIND_STRUCT) {
        return validate_members_of(s, json_object_get_member(def, "data"), obj, path,
                                   seen, errp);
    }
    /* The base already checked that the tag is present and a known value. */
    tag = json_object_get_string_member(obj, json_object_get_string_member(def, "discriminator"));
    branch = json_object_get_member(json_object_get_object_member(def, "data"), tag);
    if (!branch) {
        return true;      /* a tag value without members */
    }
    return validate_type_members(s, json_node_get_string(texpr_type(branch)), obj, path,
                                 seen, errp);
}

/*
 * members: NULL (none), an inline object, or the name of a struct/union.
 * Records each visited key in seen for the "unexpected" check.
 */
static bool validate_members_of(const QapiCheck *s, JsonNode *members, JsonObject *obj,
                                const char *path, GHashTable *seen, GError **errp)
{
    JsonObjectIter iter;
    const char *key;
    JsonNode *texpr;

    if (!members) {
        return true;
    }
    if (!JSON_NODE_HOLDS_OBJECT(members)) {
        return validate_type_members(s, json_node_get_string(members), obj, path, seen, errp);
    }
    json_object_iter_init_ordered(&iter, json_node_get_object(members));
    while (json_object_iter_next_ordered(&iter, &key, &texpr)) {
        bool optional = key[0] == '*';
        const char *mname = optional ? key + 1 : key;
        g_autofree char *mpath = child_path(path, mname);
        JsonNode *v = json_object_get_member(obj, mname);

        if (!v) {
            if (optional) {
                continue;
            }
            error_setg(errp, "Parameter '%s' is missing", mpath);
            return false;
        }
        if (!validate_texpr(s, texpr, v, mpath, mname, errp)) {
            return false;
        }
        g_hash_table_add(seen, (char *)mname);
    }
    return true;
}

static bool check_unexpected(JsonObject *obj, const char *path, GHashTable *seen,
                             GError **errp)
{
    JsonObjectIter iter;
    const char *key;
    JsonNode *v;

    json_object_iter_init_ordered(&iter, obj);
    while (json_object_iter_next_ordered(&iter, &key, &v)) {
        if (!g_hash_table_contains(seen, key)) {
            g_autofree char *kpath = child_path(path, key);

            error_setg(errp, "Parameter '%s' is unexpected", kpath);
            return false;
        }
    }
    return true;
}

/* An object holding exactly the given members (struct/union/command args). */
static bool validate_object(const QapiCheck *s, JsonNode *members, JsonObject *obj,
                            const char *path, GError **errp)
{
    g_autoptr(GHashTable) seen = g_hash_table_new(g_str_hash, g_str_equal);

    return validate_members_of(s, members, obj, path, seen, errp) &&
           check_unexpected(obj, path, seen, errp);
}

static bool alternate_branch_fits(const QapiCheck *s, const char *btype, JsonNode *value)
{
    QapiKind kind;

    if (JSON_NODE_HOLDS_NULL(value)) {
        return !strcmp(btype, "null");
    }
    if (JSON_NODE_HOLDS_OBJECT(value)) {
        qapi_schema_lookup(s->schema, btype, &kind);
        return kind == QAPI_KIND_STRUCT || kind == QAPI_KIND_UNION;
    }
    if (is_string(value)) {
        qapi_schema_lookup(s->schema, btype, &kind);
        return !strcmp(btype, "str") || kind == QAPI_KIND_ENUM;
    }
    if (is_bool(value)) {
        return !strcmp(btype, "bool");
    }
    if (is_number(value)) {
        for (size_t i = 0; i < G_N_ELEMENTS(int_ranges); i++) {
            if (!strcmp(btype, int_ranges[i].type)) {
                return true;
            }
        }
        return !strcmp(btype, "number");
    }
    return false;
}

static bool validate_alternate(const QapiCheck *s, const char *type, JsonObject *def,
                               JsonNode *value, const char *path, const char *name,
                               GError **errp)
{
    JsonObjectIter iter;
    const char *key;
    JsonNode *btexpr;

    json_object_iter_init_ordered(&iter, json_object_get_object_member(def, "data"));
    while (json_object_iter_next_ordered(&iter, &key, &btexpr)) {
        const char *btype = json_node_get_string(texpr_type(btexpr));

        if (alternate_branch_fits(s, btype, value)) {
            return validate_type(s, btype, value, path, name, errp);
        }
    }
    error_setg(errp, "Invalid parameter type for '%s', expected: %s",
               name ? name : "null", type);
    return false;
}

static bool validate_type(const QapiCheck *s, const char *type, JsonNode *value,
                          const char *path, const char *name, GError **errp)
{
    bool handled;
    bool ok = validate_builtin(s, type, value, path, name, &handled, errp);
    QapiKind kind;
    JsonObject *def;

    if (handled) {
        return ok;
    }
    def = qapi_schema_lookup(s->schema, type, &kind);
    switch (kind) {
    case QAPI_KIND_ENUM:
        return validate_enum(def, value, path, name, errp);
    case QAPI_KIND_ALTERNATE:
        return validate_alternate(s, type, def, value, path, name, errp);
    case QAPI_KIND_STRUCT:
    case QAPI_KIND_UNION:
        if (!JSON_NODE_HOLDS_OBJECT(value)) {
            return type_error(path, "object", errp);
        }
        {
            g_autoptr(JsonNode) tname = json_node_new(JSON_NODE_VALUE);

            json_node_set_string(tname, type);
            return validate_object(s, tname, json_node_get_object(value), path, errp);
        }
    default:
        error_setg(errp, "Internal error: unknown type '%s'", type);
        return false;
    }
}

static bool validate_array(const QapiCheck *s, JsonNode *elem_texpr, JsonNode *value,
                           const char *path, GError **errp)
{
    JsonArray *arr;

    if (!JSON_NODE_HOLDS_ARRAY(value)) {
        return type_error(path, "array", errp);
    }
    arr = json_node_get_array(value);
    for (guint i = 0; i < json_array_get_length(arr); i++) {
        g_autofree char *epath = g_strdup_printf("%s[%u]", path, i);

        if (!validate_texpr(s, elem_texpr, json_array_get_element(arr, i), epath, NULL,
                            errp)) {
            return false;
        }
    }
    return true;
}

static bool validate_texpr(const QapiCheck *s, JsonNode *texpr, JsonNode *value,
                           const char *path, const char *name, GError **errp)
{
    JsonNode *t = texpr_type(texpr);

    if (JSON_NODE_HOLDS_ARRAY(t)) {
        return validate_array(s, json_array_get_element(json_node_get_array(t), 0), value,
                              path, errp);
    }
    return validate_type(s, json_node_get_string(t), value, path, name, errp);
}

bool qapi_validate_value(const QapiSchema *s, const char *type, JsonNode *value,
                         const char *name, GError **errp)
{
    QapiCheck c = { .schema = s };

    return validate_type(&c, type, value, name ? name : "", name, errp);
}

bool qapi_validate_command_args_u64(const QapiSchema *s, const char *command,
                                    JsonObject *args, GHashTable *u64, GError **errp)
{
    QapiCheck c = { .schema = s, .u64 = u64 };
    QapiKind kind;
    JsonObject *def = qapi_schema_lookup(s, command, &kind);
    g_autoptr(JsonObject) empty = NULL;

    if (!def || kind != QAPI_KIND_COMMAND) {
        g_set_error(errp, MAPRAM_ERROR, QMP_ERROR_COMMAND_NOT_FOUND,
                    "The command %s has not been found", command);
        return false;
    }
    if (!args) {
        empty = json_object_new();
        args = empty;
    }
    return validate_object(&c, json_object_get_member(def, "data"), args, "", errp);
}

bool qapi_validate_command_args(const QapiSchema *s, const char *command,
                                JsonObject *args, GError **errp)
{
    return qapi_validate_command_args_u64(s, command, args, NULL, errp);
}

void qapi_command_return_unsigned(const QapiSchema *s, const char *command, JsonNode *ret,
                                  GHashTable *out)
{
    QapiCheck c = { .schema = s, .unsigned_out = out };
    QapiKind kind;
    JsonObject *def = qapi_schema_lookup(s, command, &kind);

    if (def && kind == QAPI_KIND_COMMAND && json_object_has_member(def, "returns")) {
        /* the walk of a check; a return that does not fit stops it, unmarked past there */
        validate_texpr(&c, json_object_get_member(def, "returns"), ret, "", NULL, NULL);
    }
}
