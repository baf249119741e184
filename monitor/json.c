/*
 * JSON text for QMP: a writer that spaces and escapes like QEMU (clients
 * and test logs compare lines), and the input read as QEMU reads it.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <string.h>
#include <gio/gio.h>

#include "monitor-internal.h"
#include "util/error.h"

static int64_t utf8_codepoint(const unsigned char *p, const unsigned char **end);

/* As QEMU writes a string: what its input reads as one character is one \uXXXX. */
static void append_string(GString *out, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;

    g_string_append_c(out, '"');
    while (*p) {
        const unsigned char *next;
        int64_t cp = utf8_codepoint(p, &next);

        switch (cp) {
        case '"':  g_string_append(out, "\\\""); break;
        case '\\': g_string_append(out, "\\\\"); break;
        case '\b': g_string_append(out, "\\b"); break;
        case '\f': g_string_append(out, "\\f"); break;
        case '\n': g_string_append(out, "\\n"); break;
        case '\r': g_string_append(out, "\\r"); break;
        case '\t': g_string_append(out, "\\t"); break;
        default:
            if (cp < 0) {
                cp = 0xFFFD;     /* not a character: the replacement character */
            }
            if (cp > 0xFFFF) {
                int64_t v = cp - 0x10000;
                g_string_append_printf(out, "\\u%04X\\u%04X", (unsigned)(0xD800 + (v >> 10)),
                                       (unsigned)(0xDC00 + (v & 0x3FF)));
            } else if (cp < 0x20 || cp >= 0x7F) {
                g_string_append_printf(out, "\\u%04X", (unsigned)cp);
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

/*
 * --- input: QEMU's JSON, as its lexer, streamer and parser read it ---
 *
 * QMP clients see how QEMU reads its input: which bytes end a message,
 * what a stray byte costs, how many error replies a broken text brings,
 * and every error's words.  So the input is cut and parsed here by the
 * same rules (json-glib only holds the trees): a lexer turns bytes into
 * tokens, a lexical error reports the token so far ("stray '...'") and
 * skips to the next structural or control byte; the streamer collects
 * tokens until the braces and brackets balance (or go below zero), then
 * the parser reads them into one value or one error.  QEMU's extensions
 * are in: single-quoted strings, \' escapes, modified UTF-8 (\u0000).
 */

typedef enum {
    TOK_LCURLY, TOK_RCURLY, TOK_LSQUARE, TOK_RSQUARE, TOK_COLON, TOK_COMMA,
    TOK_INTEGER, TOK_FLOAT, TOK_KEYWORD, TOK_STRING,
} TokType;

typedef struct JsonToken {
    TokType type;
    char str[];
} JsonToken;

enum {
    LX_START, LX_RECOVERY, LX_STRING, LX_ESCAPE, LX_ZERO, LX_SIGN, LX_DIGITS,
    LX_POINT, LX_FRACTION, LX_EXP, LX_EXP_SIGN, LX_EXP_DIGITS, LX_KEYWORD,
};

#define JSON_MAX_TOKEN_SIZE  (64ULL << 20)
#define JSON_MAX_TOKEN_COUNT (2ULL << 20)
#define JSON_MAX_NESTING     1024

void json_message_free(JsonMessage *m)
{
    if (m) {
        if (m->root) {
            json_node_unref(m->root);
        }
        g_clear_pointer(&m->u64, g_hash_table_unref);
        g_clear_error(&m->err);
        g_free(m);
    }
}

void json_streamer_init(JsonStreamer *js)
{
    memset(js, 0, sizeof(*js));
    js->token = g_string_new(NULL);
    js->tokens = g_ptr_array_new_with_free_func(g_free);
    g_queue_init(&js->done);
}

static void streamer_clear(JsonStreamer *js)
{
    g_ptr_array_set_size(js->tokens, 0);
    js->braces = js->brackets = 0;
    js->size = 0;
}

void json_streamer_reset(JsonStreamer *js)
{
    streamer_clear(js);
    g_string_truncate(js->token, 0);
    js->state = LX_START;
    js->quote = 0;
    g_queue_clear_full(&js->done, (GDestroyNotify)json_message_free);
}

void json_streamer_destroy(JsonStreamer *js)
{
    json_streamer_reset(js);
    g_string_free(js->token, TRUE);
    g_ptr_array_unref(js->tokens);
    js->token = NULL;
    js->tokens = NULL;
}

JsonMessage *json_streamer_next(JsonStreamer *js)
{
    return g_queue_pop_head(&js->done);
}

static void emit_error(JsonStreamer *js, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

static void emit_error(JsonStreamer *js, const char *fmt, ...)
{
    JsonMessage *m = g_new0(JsonMessage, 1);
    va_list ap;

    va_start(ap, fmt);
    m->err = g_error_new_valist(G_IO_ERROR, G_IO_ERROR_FAILED, fmt, ap);
    va_end(ap);
    g_queue_push_tail(&js->done, m);
    streamer_clear(js);
}

/* --- the parser: one message's tokens into a tree --- */

typedef struct Parser {
    GPtrArray *tokens;
    guint next;
    GString *err;           /* the first error, in QEMU's words; later ones are dropped */
    GHashTable *u64;
} Parser;

static void parse_error(Parser *p, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

static void parse_error(Parser *p, const char *fmt, ...)
{
    va_list ap;

    if (p->err) {
        return;
    }
    /* QEMU formats the message into 1024 bytes: a long keyword is cut as there */
    char msg[1024];
    va_start(ap, fmt);
    g_vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    p->err = g_string_new("JSON parse error, ");
    g_string_append(p->err, msg);
}

static JsonToken *peek_token(Parser *p)
{
    return p->next < p->tokens->len ? g_ptr_array_index(p->tokens, p->next) : NULL;
}

static JsonToken *pop_token(Parser *p)
{
    JsonToken *t = peek_token(p);

    if (t) {
        p->next++;
    }
    return t;
}

/* QEMU's: in Unicode's range, neither a surrogate nor a noncharacter. */
static bool valid_codepoint(int64_t cp)
{
    if (cp < 0 || cp > 0x10FFFF) {
        return false;
    }
    if ((cp >= 0xFDD0 && cp <= 0xFDEF) || (cp & 0xFFFE) == 0xFFFE) {
        return false;
    }
    return !(cp >= 0xD800 && cp <= 0xDFFF);
}

/* Modified UTF-8: NUL as C0 80. */
static void append_codepoint(GString *s, int64_t cp)
{
    if (cp == 0) {
        g_string_append_len(s, "\xC0\x80", 2);
    } else {
        g_string_append_unichar(s, (gunichar)cp);
    }
}

/*
 * One character of modified UTF-8 at p (NUL-terminated): its code point,
 * or -1 for a sequence QEMU refuses (a stray or missing continuation
 * byte, 0xFE / 0xFF, an overlong form other than C0 80, a code point
 * valid_codepoint refuses).  *end: past what was read.
 */
static int64_t utf8_codepoint(const unsigned char *p, const unsigned char **end)
{
    static const int64_t min_cp[] = { 0x80, 0x800, 0x10000, 0x200000, 0x4000000 };
    unsigned byte = *p++;
    unsigned len = 0, mask;
    int64_t cp;

    if (byte < 0x80) {
        *end = p;
        return byte;
    }
    if (byte >= 0xFE || !(byte & 0x40)) {
        *end = p;
        return -1;
    }
    for (mask = 0x80; byte & mask; mask >>= 1) {
        len++;
    }
    cp = byte & (mask - 1);
    for (unsigned i = 1; i < len; i++) {
        if ((*p & 0xC0) != 0x80) {
            *end = p;
            return -1;
        }
        cp = (cp << 6) | (*p++ & 0x3F);
    }
    *end = p;
    if (!valid_codepoint(cp) || (cp < min_cp[len - 2] && !(cp == 0 && len == 2))) {
        return -1;
    }
    return cp;
}

static int hex4(const char *s)
{
    int v = 0;

    for (int i = 0; i < 4; i++) {
        if (!g_ascii_isxdigit(s[i])) {
            return -1;
        }
        v = v * 16 + g_ascii_xdigit_value(s[i]);
    }
    return v;
}

static JsonNode *parse_string(Parser *p, const JsonToken *t)
{
    const char *s = t->str;
    char quote = *s++;
    g_autoptr(GString) out = g_string_new(NULL);

    while (*s != quote) {
        if (*s != '\\') {
            const unsigned char *end;
            int64_t cp = utf8_codepoint((const unsigned char *)s, &end);
            if (cp < 0) {
                parse_error(p, "invalid UTF-8 sequence in string");
                return NULL;
            }
            append_codepoint(out, cp);
            s = (const char *)end;
            continue;
        }
        const char *esc = s++;
        char c = *s++;
        switch (c) {
        case '"': case '\'': case '\\': case '/':
            g_string_append_c(out, c);
            break;
        case 'b': g_string_append_c(out, '\b'); break;
        case 'f': g_string_append_c(out, '\f'); break;
        case 'n': g_string_append_c(out, '\n'); break;
        case 'r': g_string_append_c(out, '\r'); break;
        case 't': g_string_append_c(out, '\t'); break;
        case 'u': {
            int64_t cp = hex4(s);
            size_t avail = strnlen(s, 4);     /* not strlen: a string of escapes stays linear */
            s += MIN(avail, 4);
            if (cp >= 0 && avail < 4) {
                cp = -1;
            }
            if (cp >= 0xD800 && cp <= 0xDBFF && s[0] == '\\' && s[1] == 'u') {
                int lo = hex4(s + 2);
                if (lo >= 0xDC00 && lo <= 0xDFFF) {
                    cp = 0x10000 + ((cp & 0x3FF) << 10) + (lo & 0x3FF);
                    s += 6;
                } else {
                    cp = -1;
                }
            }
            if (!valid_codepoint(cp)) {
                /* what QEMU quotes: from the backslash, six bytes (or to the end) */
                size_t span = avail >= 4 ? (size_t)(s - esc) : 2 + avail;
                parse_error(p, "%.*s is not a valid Unicode character", (int)span, esc);
                return NULL;
            }
            append_codepoint(out, cp);
            break;
        }
        default:
            parse_error(p, "invalid escape sequence in string");
            return NULL;
        }
    }
    JsonNode *n = json_node_new(JSON_NODE_VALUE);
    json_node_set_string(n, out->str);
    return n;
}

static JsonNode *parse_number(Parser *p, const JsonToken *t)
{
    JsonNode *n = json_node_new(JSON_NODE_VALUE);

    if (t->type == TOK_INTEGER) {
        char *end;
        errno = 0;
        gint64 v = g_ascii_strtoll(t->str, &end, 10);
        if (!errno && !*end) {
            json_node_set_int(n, v);
            return n;
        }
        if (t->str[0] != '-') {
            errno = 0;
            guint64 u = g_ascii_strtoull(t->str, &end, 10);
            if (!errno && !*end) {
                /* the same bits as an int64; the set says it is a uint64 */
                json_node_set_int(n, (gint64)u);
                g_hash_table_add(p->u64, n);
                return n;
            }
        }
    }
    json_node_set_double(n, g_ascii_strtod(t->str, NULL));
    return n;
}

static JsonNode *parse_value(Parser *p);

static bool parse_pair(Parser *p, JsonObject *obj)
{
    JsonToken *t;

    if (!peek_token(p)) {
        parse_error(p, "premature EOI");
        return false;
    }
    g_autoptr(JsonNode) key = parse_value(p);
    if (!key || json_node_get_value_type(key) != G_TYPE_STRING) {
        parse_error(p, "key is not a string in object");
        return false;
    }
    t = pop_token(p);
    if (!t) {
        parse_error(p, "premature EOI");
        return false;
    }
    if (t->type != TOK_COLON) {
        parse_error(p, "missing : in object pair");
        return false;
    }
    JsonNode *value = parse_value(p);
    if (!value) {
        parse_error(p, "Missing value in dict");
        return false;
    }
    if (json_object_has_member(obj, json_node_get_string(key))) {
        json_node_unref(value);
        parse_error(p, "duplicate key");
        return false;
    }
    json_object_set_member(obj, json_node_get_string(key), value);
    return true;
}

/* An object or array: its opening token is next. */
static JsonNode *parse_container(Parser *p, bool object)
{
    TokType close = object ? TOK_RCURLY : TOK_RSQUARE;
    g_autoptr(JsonNode) n = json_node_new(object ? JSON_NODE_OBJECT : JSON_NODE_ARRAY);
    JsonObject *obj = object ? json_object_new() : NULL;
    JsonArray *arr = object ? NULL : json_array_new();
    JsonToken *t;

    if (object) {
        json_node_take_object(n, obj);
    } else {
        json_node_take_array(n, arr);
    }
    pop_token(p);
    t = peek_token(p);
    if (!t) {
        parse_error(p, "premature EOI");
        return NULL;
    }
    if (t->type == close) {
        pop_token(p);
        return g_steal_pointer(&n);
    }
    for (;;) {
        if (object) {
            if (!parse_pair(p, obj)) {
                return NULL;
            }
        } else {
            JsonNode *v = parse_value(p);
            if (!v) {
                parse_error(p, "expecting value");
                return NULL;
            }
            json_array_add_element(arr, v);
        }
        t = pop_token(p);
        if (!t) {
            parse_error(p, "premature EOI");
            return NULL;
        }
        if (t->type == close) {
            return g_steal_pointer(&n);
        }
        if (t->type != TOK_COMMA) {
            parse_error(p, object ? "expected separator in dict" : "expected separator in list");
            return NULL;
        }
    }
}

static JsonNode *parse_value(Parser *p)
{
    JsonToken *t = peek_token(p);
    JsonNode *n;

    if (!t) {
        parse_error(p, "premature EOI");
        return NULL;
    }
    switch (t->type) {
    case TOK_LCURLY:
    case TOK_LSQUARE:
        return parse_container(p, t->type == TOK_LCURLY);
    case TOK_STRING:
        pop_token(p);
        return parse_string(p, t);
    case TOK_INTEGER:
    case TOK_FLOAT:
        pop_token(p);
        return parse_number(p, t);
    case TOK_KEYWORD:
        pop_token(p);
        if (!strcmp(t->str, "true") || !strcmp(t->str, "false")) {
            n = json_node_new(JSON_NODE_VALUE);
            json_node_set_boolean(n, t->str[0] == 't');
            return n;
        }
        if (!strcmp(t->str, "null")) {
            return json_node_new(JSON_NODE_NULL);
        }
        parse_error(p, "invalid keyword '%s'", t->str);
        return NULL;
    default:
        parse_error(p, "expecting value");
        return NULL;
    }
}

/* The tokens so far make a message: parse them. */
static void emit_message(JsonStreamer *js)
{
    Parser p = { .tokens = js->tokens, .u64 = g_hash_table_new(NULL, NULL) };
    JsonNode *root = parse_value(&p);
    JsonMessage *m = g_new0(JsonMessage, 1);

    if (p.err) {
        g_clear_pointer(&root, json_node_unref);
        m->err = g_error_new_literal(G_IO_ERROR, G_IO_ERROR_FAILED, p.err->str);
        g_string_free(p.err, TRUE);
        g_hash_table_unref(p.u64);
    } else {
        m->root = root;
        m->u64 = p.u64;
    }
    g_queue_push_tail(&js->done, m);
    streamer_clear(js);
}

/* --- the streamer: tokens into messages --- */

static void process_token(JsonStreamer *js, TokType type)
{
    GString *tok = js->token;

    switch (type) {
    case TOK_LCURLY: js->braces++; break;
    case TOK_RCURLY: js->braces--; break;
    case TOK_LSQUARE: js->brackets++; break;
    case TOK_RSQUARE: js->brackets--; break;
    default: break;
    }
    if (js->size + tok->len + 1 > JSON_MAX_TOKEN_SIZE) {
        emit_error(js, "JSON token size limit exceeded");
    } else if (js->tokens->len + 1 > JSON_MAX_TOKEN_COUNT) {
        emit_error(js, "JSON token count limit exceeded");
    } else if (js->braces + js->brackets > JSON_MAX_NESTING) {
        emit_error(js, "JSON nesting depth limit exceeded");
    } else {
        JsonToken *t = g_malloc(sizeof(JsonToken) + tok->len + 1);
        t->type = type;
        memcpy(t->str, tok->str, tok->len + 1);
        g_ptr_array_add(js->tokens, t);
        js->size += tok->len;
        /* a message ends where the braces and brackets balance, or a closer has no opener */
        if (!((js->braces > 0 || js->brackets > 0) && js->braces >= 0 && js->brackets >= 0)) {
            emit_message(js);
        }
    }
    g_string_truncate(tok, 0);
}

/* A byte that cannot go on the token: it is reported with it, then skipped past. */
static void lex_error(JsonStreamer *js, unsigned char c)
{
    g_string_append_c(js->token, c);
    /* QEMU prints the token as a C string: up to its first NUL */
    emit_error(js, "JSON parse error, stray '%s'", js->token->str);
    g_string_truncate(js->token, 0);
    js->state = LX_RECOVERY;
}

/* A number or keyword ends before c, which is read again from the start state. */
static void lex_end(JsonStreamer *js, TokType type)
{
    process_token(js, type);
    js->state = LX_START;
}

static void feed_char(JsonStreamer *js, unsigned char c)
{
    for (;;) {
        switch (js->state) {
        case LX_RECOVERY:
            /* skip to a structural byte, a control byte other than tab, or 0xFE / 0xFF */
            if ((c < 0x20 && c != '\t') || c >= 0xFE || (c && strchr("[]{}:,", c))) {
                js->state = LX_START;
                continue;
            }
            return;
        case LX_START:
            switch (c) {
            case ' ': case '\t': case '\r': case '\n':
                return;
            case '{': case '}': case '[': case ']': case ':': case ',':
                g_string_append_c(js->token, c);
                process_token(js, c == '{' ? TOK_LCURLY : c == '}' ? TOK_RCURLY :
                                  c == '[' ? TOK_LSQUARE : c == ']' ? TOK_RSQUARE :
                                  c == ':' ? TOK_COLON : TOK_COMMA);
                return;
            case '"': case '\'':
                js->quote = c;
                js->state = LX_STRING;
                break;
            case '0':
                js->state = LX_ZERO;
                break;
            case '-':
                js->state = LX_SIGN;
                break;
            default:
                if (c >= '1' && c <= '9') {
                    js->state = LX_DIGITS;
                } else if (c >= 'a' && c <= 'z') {
                    js->state = LX_KEYWORD;
                } else {
                    lex_error(js, c);
                    return;
                }
            }
            g_string_append_c(js->token, c);
            return;
        case LX_STRING:
        case LX_ESCAPE:
            if (c < 0x20 || c > 0xFD) {
                lex_error(js, c);
                return;
            }
            g_string_append_c(js->token, c);
            if (js->state == LX_ESCAPE) {
                js->state = LX_STRING;
            } else if (c == '\\') {
                js->state = LX_ESCAPE;
            } else if (c == js->quote) {
                js->state = LX_START;
                process_token(js, TOK_STRING);
            }
            return;
        case LX_ZERO:
            if (g_ascii_isdigit(c)) {
                lex_error(js, c);
                return;
            }
            if (c != '.') {
                lex_end(js, TOK_INTEGER);
                continue;
            }
            js->state = LX_POINT;
            break;
        case LX_SIGN:
            if (!g_ascii_isdigit(c)) {
                lex_error(js, c);
                return;
            }
            js->state = c == '0' ? LX_ZERO : LX_DIGITS;
            break;
        case LX_DIGITS:
        case LX_FRACTION:
            if (c == 'e' || c == 'E') {
                js->state = LX_EXP;
            } else if (c == '.' && js->state == LX_DIGITS) {
                js->state = LX_POINT;
            } else if (!g_ascii_isdigit(c)) {
                lex_end(js, js->state == LX_DIGITS ? TOK_INTEGER : TOK_FLOAT);
                continue;
            }
            break;
        case LX_POINT:
        case LX_EXP_SIGN:
            if (!g_ascii_isdigit(c)) {
                lex_error(js, c);
                return;
            }
            js->state = js->state == LX_POINT ? LX_FRACTION : LX_EXP_DIGITS;
            break;
        case LX_EXP:
            if (c == '+' || c == '-') {
                js->state = LX_EXP_SIGN;
            } else if (g_ascii_isdigit(c)) {
                js->state = LX_EXP_DIGITS;
            } else {
                lex_error(js, c);
                return;
            }
            break;
        case LX_EXP_DIGITS:
            if (!g_ascii_isdigit(c)) {
                lex_end(js, TOK_FLOAT);
                continue;
            }
            break;
        case LX_KEYWORD:
            if (c < 'a' || c > 'z') {
                lex_end(js, TOK_KEYWORD);
                continue;
            }
            break;
        }
        g_string_append_c(js->token, c);
        return;
    }
}

void json_streamer_feed(JsonStreamer *js, const char *buf, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        feed_char(js, (unsigned char)buf[i]);
        /* one token may not grow without end: QEMU drops it with the streamer's words */
        if (js->token->len > JSON_MAX_TOKEN_SIZE) {
            emit_error(js, "JSON token size limit exceeded");
            g_string_truncate(js->token, 0);
            js->state = LX_START;
        }
    }
}

/* How much of a text qmp_json_parse_text() feeds before it looks whether it is decided. */
#define PARSE_TEXT_SLICE 4096

JsonNode *qmp_json_parse_text(const char *text, size_t len, GError **errp)
{
    JsonStreamer js;
    JsonNode *root = NULL;

    json_streamer_init(&js);
    /*
     * In slices, stopping once the answer is known (a first message that
     * failed, or a second one): text of millions of stray bytes (a
     * damaged vmdesc) made one error per byte, seconds and gigabytes.
     */
    bool decided = false;
    for (size_t at = 0; at < len && !decided; at += PARSE_TEXT_SLICE) {
        json_streamer_feed(&js, text + at, MIN(PARSE_TEXT_SLICE, len - at));
        JsonMessage *head = g_queue_peek_head(&js.done);
        decided = g_queue_get_length(&js.done) >= 2 || (head && head->err);
    }
    if (!decided) {
        json_streamer_feed(&js, "\n", 1);     /* ends a number or keyword at the very end */
    }
    g_autoptr(JsonMessage) first = json_streamer_next(&js);
    g_autoptr(JsonMessage) second = first ? json_streamer_next(&js) : NULL;
    bool open = js.tokens->len || js.token->len;

    if (first && first->err) {
        g_propagate_error(errp, g_steal_pointer(&first->err));
    } else if (second || (first && open)) {
        error_setg(errp, "more than one value");
    } else if (open) {
        error_setg(errp, "the text ends inside a value");
    } else if (first) {
        root = g_steal_pointer(&first->root);
    }
    json_streamer_destroy(&js);
    return root;
}
