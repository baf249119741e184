/*
 * JSON text for QMP: a writer that spaces and escapes like QEMU (clients
 * and test logs compare lines), and the splitter that cuts the input byte
 * stream into complete JSON texts before json-glib parses each one.
 */
#include <inttypes.h>
#include <string.h>

#include "monitor-internal.h"

static void append_string(GString *out, const char *s)
{
    const char *p = s;

    g_string_append_c(out, '"');
    while (*p) {
        gunichar cp = g_utf8_get_char_validated(p, -1);
        const char *next;

        if (cp == (gunichar)-1 || cp == (gunichar)-2) {
            /* Invalid UTF-8 byte: QEMU writes the replacement character. */
            g_string_append(out, "\\uFFFD");
            p++;
            continue;
        }
        next = g_utf8_next_char(p);
        switch (cp) {
        case '"':  g_string_append(out, "\\\""); break;
        case '\\': g_string_append(out, "\\\\"); break;
        case '\b': g_string_append(out, "\\b"); break;
        case '\f': g_string_append(out, "\\f"); break;
        case '\n': g_string_append(out, "\\n"); break;
        case '\r': g_string_append(out, "\\r"); break;
        case '\t': g_string_append(out, "\\t"); break;
        default:
            if (cp > 0xFFFF) {
                gunichar v = cp - 0x10000;
                g_string_append_printf(out, "\\u%04X\\u%04X",
                                       0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF));
            } else if (cp < 0x20 || cp >= 0x7F) {
                g_string_append_printf(out, "\\u%04X", cp);
            } else {
                g_string_append_c(out, (char)cp);
            }
        }
        p = next;
    }
    g_string_append_c(out, '"');
}

static void append_node(GString *out, JsonNode *node, GHashTable *uns);

static void append_object(GString *out, JsonObject *obj, GHashTable *uns)
{
    JsonObjectIter iter;
    const char *key;
    JsonNode *member;
    bool first = true;

    g_string_append_c(out, '{');
    json_object_iter_init_ordered(&iter, obj);
    while (json_object_iter_next_ordered(&iter, &key, &member)) {
        if (!first) {
            g_string_append(out, ", ");
        }
        first = false;
        append_string(out, key);
        g_string_append(out, ": ");
        append_node(out, member, uns);
    }
    g_string_append_c(out, '}');
}

static void append_array(GString *out, JsonArray *arr, GHashTable *uns)
{
    guint n = json_array_get_length(arr);

    g_string_append_c(out, '[');
    for (guint i = 0; i < n; i++) {
        if (i) {
            g_string_append(out, ", ");
        }
        append_node(out, json_array_get_element(arr, i), uns);
    }
    g_string_append_c(out, ']');
}

static void append_value(GString *out, JsonNode *node, GHashTable *uns)
{
    GType t = json_node_get_value_type(node);

    if (t == G_TYPE_STRING) {
        append_string(out, json_node_get_string(node));
    } else if (t == G_TYPE_BOOLEAN) {
        g_string_append(out, json_node_get_boolean(node) ? "true" : "false");
    } else if (t == G_TYPE_DOUBLE) {
        g_string_append_printf(out, "%.17g", json_node_get_double(node));
    } else if (uns && g_hash_table_contains(uns, node)) {
        g_string_append_printf(out, "%" PRIu64, (uint64_t)json_node_get_int(node));
    } else {
        g_string_append_printf(out, "%" PRId64, (int64_t)json_node_get_int(node));
    }
}

static void append_node(GString *out, JsonNode *node, GHashTable *uns)
{
    switch (json_node_get_node_type(node)) {
    case JSON_NODE_OBJECT:
        append_object(out, json_node_get_object(node), uns);
        break;
    case JSON_NODE_ARRAY:
        append_array(out, json_node_get_array(node), uns);
        break;
    case JSON_NODE_VALUE:
        append_value(out, node, uns);
        break;
    case JSON_NODE_NULL:
        g_string_append(out, "null");
        break;
    }
}

GString *qmp_json_to_string_unsigned(JsonNode *node, GHashTable *unsigned_nodes)
{
    GString *out = g_string_new(NULL);

    append_node(out, node, unsigned_nodes);
    return out;
}

GString *qmp_json_to_string(JsonNode *node)
{
    return qmp_json_to_string_unsigned(node, NULL);
}

/* --- splitter --- */

void json_splitter_init(JsonSplitter *js)
{
    js->cur = g_string_new(NULL);
    g_queue_init(&js->done);
    js->depth = 0;
    js->in_string = false;
    js->escape = false;
}

void json_splitter_reset(JsonSplitter *js)
{
    g_string_truncate(js->cur, 0);
    g_queue_clear_full(&js->done, g_free);
    js->depth = 0;
    js->in_string = false;
    js->escape = false;
}

void json_splitter_destroy(JsonSplitter *js)
{
    json_splitter_reset(js);
    g_string_free(js->cur, TRUE);
    js->cur = NULL;
}

static void emit(JsonSplitter *js)
{
    if (js->cur->len) {
        g_queue_push_tail(&js->done, g_strndup(js->cur->str, js->cur->len));
        g_string_truncate(js->cur, 0);
    }
    js->depth = 0;
    js->in_string = false;
    js->escape = false;
}

static void feed_in_string(JsonSplitter *js, char c)
{
    g_string_append_c(js->cur, c);
    if (js->escape) {
        js->escape = false;
    } else if (c == '\\') {
        js->escape = true;
    } else if (c == '"') {
        js->in_string = false;
        if (js->depth == 0) {
            emit(js);             /* a top-level string is a whole text */
        }
    }
}

static void feed_char(JsonSplitter *js, char c)
{
    if (js->in_string) {
        feed_in_string(js, c);
        return;
    }
    switch (c) {
    case '{':
    case '[':
        if (js->depth == 0) {
            emit(js);             /* a pending top-level scalar ends here */
        }
        g_string_append_c(js->cur, c);
        js->depth++;
        break;
    case '}':
    case ']':
        g_string_append_c(js->cur, c);
        js->depth--;
        if (js->depth <= 0) {
            emit(js);             /* complete text, or a stray closer */
        }
        break;
    case '"':
        if (js->depth == 0) {
            emit(js);
        }
        g_string_append_c(js->cur, c);
        js->in_string = true;
        break;
    case ' ':
    case '\t':
    case '\r':
    case '\n':
        if (js->depth == 0) {
            emit(js);
        } else {
            g_string_append_c(js->cur, c);
        }
        break;
    default:
        g_string_append_c(js->cur, c);
    }
}

void json_splitter_feed(JsonSplitter *js, const char *buf, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        feed_char(js, buf[i]);
        /* Runaway input: hand it over as is so that the parser rejects it. */
        if (js->depth > JSON_SPLITTER_MAX_DEPTH || js->cur->len > JSON_SPLITTER_MAX_SIZE) {
            emit(js);
        }
    }
}

char *json_splitter_next(JsonSplitter *js)
{
    return g_queue_pop_head(&js->done);
}

/* --- a text json-glib 1.6 must not see --- */

static bool hex4(const char *p, unsigned lo, unsigned hi)
{
    unsigned v = 0;

    for (int i = 0; i < 4; i++) {
        if (!g_ascii_isxdigit(p[i])) {
            return false;
        }
        v = v * 16 + g_ascii_xdigit_value(p[i]);
    }
    return v >= lo && v <= hi;
}

bool json_text_bad_surrogate_pair(const char *text, unsigned *line, unsigned *col)
{
    const char *line_start = text;
    unsigned ln = 1;
    char quote = 0;             /* the string's quote; single-quoted ones have no escapes */

    /* as json-glib 1.6 cuts the text: its strings, escapes and comments */
    for (const char *p = text; *p; p++) {
        if (*p == '\n') {
            ln++;
            line_start = p + 1;
            continue;
        }
        if (!quote) {
            if (p[0] == '/' && p[1] == '*') {
                /* a comment: its quotes start nothing */
                for (p += 2; *p && !(p[0] == '*' && p[1] == '/'); p++) {
                    if (*p == '\n') {
                        ln++;
                        line_start = p + 1;
                    }
                }
                if (!*p) {
                    break;
                }
                p++;            /* on its '/' */
            } else if (*p == '"' || *p == '\'') {
                quote = *p;
            }
            continue;
        }
        if (*p == quote) {
            quote = 0;
            continue;
        }
        if (quote != '"' || *p != '\\') {
            continue;
        }
        if (p[1] != 'u') {
            if (p[1] && p[1] != '\n') {
                p++;            /* the escaped character */
            }
            continue;
        }
        /*
         * json-glib takes the four characters after "\\u", whatever they
         * are, and from "\\ud8" to "\\udf" wants a pair: anything but a
         * well-formed one is refused.
         */
        const char *e = p + 2;
        if ((e[0] == 'd' || e[0] == 'D') && e[1] && strchr("89abcdefABCDEF", e[1])) {
            if (!hex4(e, 0xD800, 0xDBFF) || e[4] != '\\' || e[5] != 'u' ||
                !hex4(e + 6, 0xDC00, 0xDFFF)) {
                *line = ln;
                *col = (unsigned)(p - line_start) + 1;
                return true;
            }
            p = e + 9;          /* on the pair's last digit */
            continue;
        }
        p++;                    /* on the 'u' */
        for (int i = 0; i < 4 && p[1]; i++) {
            p++;
            if (*p == '\n') {
                ln++;
                line_start = p + 1;
            }
        }
    }
    return false;
}

/* --- what json-glib 1.6 loses of a text: big integers, repeated keys --- */

typedef enum {
    INT_FITS,               /* an int64: json-glib reads it right */
    INT_U64,                /* above INT64_MAX, at most UINT64_MAX: QEMU's uint64 */
    INT_DOUBLE,             /* beyond both: QEMU reads it with strtod */
    NOT_INT,                /* a float, or not decimal digits */
} IntClass;

static IntClass classify_number(const char *p, size_t len)
{
    bool neg = len && *p == '-';
    guint64 v = 0;
    bool over = false;

    if (neg) {
        p++;
        len--;
    }
    if (!len) {
        return NOT_INT;
    }
    for (size_t i = 0; i < len; i++) {
        if (!g_ascii_isdigit(p[i])) {
            return NOT_INT;
        }
        guint d = p[i] - '0';
        if (v > (G_MAXUINT64 - d) / 10) {
            over = true;
        } else {
            v = v * 10 + d;
        }
    }
    if (neg) {
        return over || v > (guint64)G_MAXINT64 + 1 ? INT_DOUBLE : INT_FITS;
    }
    if (over) {
        return INT_DOUBLE;
    }
    return v > G_MAXINT64 ? INT_U64 : INT_FITS;
}

static bool number_char(char c)
{
    return g_ascii_isalnum(c) || c == '.' || c == '+' || c == '-' || c == '_';
}

/* The text of a string token between its quotes, unescaped as json-glib does. */
static char *key_text(const char *start, const char *end, char quote)
{
    if (quote != '"' || !memchr(start, '\\', end - start)) {
        return g_strndup(start, end - start);
    }
    g_autofree char *lit = g_strdup_printf("[%.*s]", (int)(end - start + 2), start - 1);
    g_autoptr(JsonNode) n = json_from_string(lit, NULL);
    if (!n || !JSON_NODE_HOLDS_ARRAY(n) || json_array_get_length(json_node_get_array(n)) != 1) {
        return NULL;        /* json-glib refuses the whole text anyway */
    }
    return g_strdup(json_array_get_string_element(json_node_get_array(n), 0));
}

typedef struct ScanLevel {
    bool object;
    bool want_key;          /* object: the next string is a key */
    GHashTable *keys;       /* object: the keys seen (owned strings) */
} ScanLevel;

static void scan_level_clear(gpointer p)
{
    ScanLevel *l = p;

    g_clear_pointer(&l->keys, g_hash_table_unref);
}

void json_text_scan(const char *text, JsonTextScan *out)
{
    g_autoptr(GArray) levels = g_array_new(FALSE, TRUE, sizeof(ScanLevel));
    GString *copy = g_string_sized_new(strlen(text) + 8);

    g_array_set_clear_func(levels, scan_level_clear);
    memset(out, 0, sizeof(*out));
    out->u64 = g_array_new(FALSE, FALSE, sizeof(guint));
    /* as json-glib 1.6 cuts the text: comments, both quotes, escapes in double quotes */
    for (const char *p = text; *p;) {
        ScanLevel *top = levels->len ? &g_array_index(levels, ScanLevel, levels->len - 1) : NULL;

        if (p[0] == '/' && p[1] == '*') {
            const char *e = strstr(p + 2, "*/");
            e = e ? e + 2 : p + strlen(p);
            g_string_append_len(copy, p, e - p);
            p = e;
        } else if (*p == '"' || *p == '\'') {
            const char *s = p + 1;
            const char *e = s;
            while (*e && *e != *p) {
                e += (*p == '"' && e[0] == '\\' && e[1]) ? 2 : 1;
            }
            if (top && top->object && top->want_key && *e) {
                g_autofree char *key = key_text(s, e, *p);
                if (key && !g_hash_table_add(top->keys, g_steal_pointer(&key))) {
                    out->duplicate_key = true;
                }
                top->want_key = false;
            }
            e = *e ? e + 1 : e;
            g_string_append_len(copy, p, e - p);
            p = e;
        } else if (*p == '-' || g_ascii_isdigit(*p)) {
            const char *e = p;
            while (number_char(*e)) {
                e++;
            }
            IntClass c = classify_number(p, e - p);
            g_string_append_len(copy, p, e - p);
            if (c == INT_U64) {
                g_array_append_val(out->u64, out->numbers);
            } else if (c == INT_DOUBLE) {
                g_string_append(copy, ".0");
            }
            out->numbers++;
            p = e;
        } else {
            if (*p == '{' || *p == '[') {
                ScanLevel l = { .object = *p == '{', .want_key = *p == '{' };
                if (l.object) {
                    l.keys = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
                }
                g_array_append_val(levels, l);
                if (levels->len > JSON_SPLITTER_MAX_DEPTH) {
                    /* json-glib's parser recurses per level: deep enough, the stack ends */
                    out->too_deep = true;
                    break;
                }
            } else if ((*p == '}' || *p == ']') && levels->len) {
                g_array_set_size(levels, levels->len - 1);
            } else if (*p == ',' && top && top->object) {
                top->want_key = true;
            }
            g_string_append_c(copy, *p);
            p++;
        }
    }
    out->text = g_string_free(copy, FALSE);
}

void json_text_scan_clear(JsonTextScan *s)
{
    g_clear_pointer(&s->text, g_free);
    g_clear_pointer(&s->u64, g_array_unref);
}

static void collect_numbers(JsonNode *n, GPtrArray *out)
{
    if (JSON_NODE_HOLDS_OBJECT(n)) {
        JsonObjectIter iter;
        const char *key;
        JsonNode *member;

        json_object_iter_init_ordered(&iter, json_node_get_object(n));
        while (json_object_iter_next_ordered(&iter, &key, &member)) {
            collect_numbers(member, out);
        }
    } else if (JSON_NODE_HOLDS_ARRAY(n)) {
        JsonArray *a = json_node_get_array(n);

        for (guint i = 0; i < json_array_get_length(a); i++) {
            collect_numbers(json_array_get_element(a, i), out);
        }
    } else if (JSON_NODE_HOLDS_VALUE(n) && (json_node_get_value_type(n) == G_TYPE_INT64 ||
                                            json_node_get_value_type(n) == G_TYPE_DOUBLE)) {
        g_ptr_array_add(out, n);
    }
}

GHashTable *json_text_u64_nodes(JsonNode *root, const JsonTextScan *scan)
{
    g_autoptr(GPtrArray) numbers = g_ptr_array_new();
    GHashTable *set = g_hash_table_new(NULL, NULL);

    collect_numbers(root, numbers);
    /* a text the scanner cut otherwise than json-glib: no node is marked */
    if (numbers->len != scan->numbers) {
        return set;
    }
    for (guint i = 0; i < scan->u64->len; i++) {
        g_hash_table_add(set, g_ptr_array_index(numbers, g_array_index(scan->u64, guint, i)));
    }
    return set;
}
