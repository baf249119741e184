/*
 * QMP JSON text: QEMU's spacing and escaping on output, and the input
 * read as QEMU's lexer, streamer and parser read it, in any chunks.
 */
#include <string.h>

#include "monitor/monitor-internal.h"

static char *reformat(const char *text)
{
    g_autoptr(JsonParser) p = json_parser_new();
    GString *out;

    g_assert_true(json_parser_load_from_data(p, text, -1, NULL));
    out = qmp_json_to_string(json_parser_get_root(p));
    return g_string_free(out, FALSE);
}

static void test_writer_spacing(void)
{
    g_autofree char *a = reformat("{\"return\":{},\"id\":1}");
    g_autofree char *b = reformat("{\"a\":[1,true,null,\"x\"],\"b\":{\"c\":[]},\"d\":-5}");
    g_autofree char *c = reformat("[]");

    g_assert_cmpstr(a, ==, "{\"return\": {}, \"id\": 1}");
    g_assert_cmpstr(b, ==, "{\"a\": [1, true, null, \"x\"], \"b\": {\"c\": []}, \"d\": -5}");
    g_assert_cmpstr(c, ==, "[]");
}

static void test_writer_escapes(void)
{
    g_autofree char *a = reformat("\"q\\\"b\\\\n\\nt\\tc\\u0001\"");
    g_autofree char *b = reformat("\"\\u00e9\\u20ac\"");
    g_autofree char *c = reformat("\"\\ud83d\\ude00/\"");

    g_assert_cmpstr(a, ==, "\"q\\\"b\\\\n\\nt\\tc\\u0001\"");
    g_assert_cmpstr(b, ==, "\"\\u00E9\\u20AC\"");
    g_assert_cmpstr(c, ==, "\"\\uD83D\\uDE00/\"");
}

static void test_writer_numbers(void)
{
    g_autofree char *a = reformat("[0.5, 1e3, 9007199254740993]");

    g_assert_cmpstr(a, ==, "[0.5, 1000, 9007199254740993]");
}

/* A message as the tests compare it: "ok <value as QEMU writes it>" or "err <error>". */
static char *message_text(JsonMessage *m)
{
    if (m->err) {
        return g_strdup_printf("err %s", m->err->message);
    }
    g_autoptr(GString) v = qmp_json_to_string_unsigned(m->root, m->u64);
    return g_strdup_printf("ok %s", v->str);
}

/* Feed len bytes of text in chunks of n; return the messages, joined by '|'. */
static char *stream(const char *text, size_t len, size_t n)
{
    JsonStreamer js;
    g_autoptr(GString) out = g_string_new(NULL);
    JsonMessage *m;

    json_streamer_init(&js);
    for (size_t off = 0; off < len; off += n) {
        json_streamer_feed(&js, text + off, MIN(n, len - off));
    }
    while ((m = json_streamer_next(&js))) {
        g_autofree char *t = message_text(m);
        g_string_append_printf(out, "%s%s", out->len ? "|" : "", t);
        json_message_free(m);
    }
    json_streamer_destroy(&js);
    return g_strdup(out->str);
}

static void test_stream_chunks(void)
{
    const char *in = "{\"execute\": \"a\"}\r\n{\"execute\":\"b\",\"arguments\":{\"s\":\"}{\\\"\"}}"
                     "  [1,[2]] 42 \"str\"{'x': 1}";
    const char *want = "ok {\"execute\": \"a\"}|ok {\"execute\": \"b\", \"arguments\": "
                       "{\"s\": \"}{\\\"\"}}|ok [1, [2]]|ok 42|ok \"str\"|ok {\"x\": 1}";

    for (size_t n = 1; n <= strlen(in); n++) {
        g_autofree char *got = stream(in, strlen(in), n);

        g_assert_cmpstr(got, ==, want);
    }
}

static void test_stream_incomplete(void)
{
    JsonStreamer js;
    JsonMessage *m;

    json_streamer_init(&js);
    json_streamer_feed(&js, "{\"execute\": \"a\"", 15);
    g_assert_null(json_streamer_next(&js));
    json_streamer_feed(&js, "}", 1);
    m = json_streamer_next(&js);
    g_assert_nonnull(m);
    g_assert_true(JSON_NODE_HOLDS_OBJECT(m->root));
    json_message_free(m);
    /* a number ends only at the byte after it */
    json_streamer_feed(&js, "12", 2);
    g_assert_null(json_streamer_next(&js));
    json_streamer_feed(&js, " ", 1);
    m = json_streamer_next(&js);
    g_assert_cmpint(json_node_get_int(m->root), ==, 12);
    json_message_free(m);
    /* a reset drops what was read */
    json_streamer_feed(&js, "{\"a\": [", 7);
    json_streamer_reset(&js);
    json_streamer_feed(&js, "{}", 2);
    m = json_streamer_next(&js);
    g_assert_true(JSON_NODE_HOLDS_OBJECT(m->root));
    json_message_free(m);
    json_streamer_destroy(&js);
}

/*
 * What QEMU 7.2's monitor answers each input with (checked against
 * Debian's qemu-system-x86 over QMP): the messages one text brings, the
 * errors in QEMU's words, and what is read past a broken token.
 */
static void test_stream_qemu(void)
{
    static const struct {
        const char *in;
        const char *want;
    } cases[] = {
        { "{\"execute\": tru}", "err JSON parse error, invalid keyword 'tru'" },
        { "{\"execute\": nul}", "err JSON parse error, invalid keyword 'nul'" },
        { "{\"a\": 1, }", "err JSON parse error, expecting value" },
        { "{\"a\" 1}", "err JSON parse error, missing : in object pair" },
        { "{\"a\": 1,, \"b\": 2}", "err JSON parse error, expecting value" },
        { "{1: 2}", "err JSON parse error, key is not a string in object" },
        { "{\"id\": 1, \"id\": 2}", "err JSON parse error, duplicate key" },
        { "{\"a\": 1, \"\\u0061\": 2}", "err JSON parse error, duplicate key" },
        { "12 13\n", "ok 12|ok 13" },
        { "{\"x\": 01}", "err JSON parse error, stray '01'|err JSON parse error, expecting value" },
        { "{\"x\": {\"y\": 01}}",
          "err JSON parse error, stray '01'|err JSON parse error, expecting value|"
          "err JSON parse error, expecting value" },
        { "{\"x\": 1.}", "err JSON parse error, stray '1.}'" },
        { "{\"x\": {\"y\": 1.}}", "err JSON parse error, stray '1.}'|err JSON parse error, expecting value" },
        { "{\"x\": -}", "err JSON parse error, stray '-}'" },
        { "{\"x\": 1e}", "err JSON parse error, stray '1e}'" },
        { "{\"x\": True}", "err JSON parse error, stray 'T'|err JSON parse error, expecting value" },
        { "{\"x\": true1}", "err JSON parse error, expected separator in dict" },
        { "@\n", "err JSON parse error, stray '@'" },
        { "{\"e\": \"a/*b*/\"} /* c */\n",
          "ok {\"e\": \"a/*b*/\"}|err JSON parse error, stray '/'" },
        { "{\"e\": \"q\\u00\"}", "err JSON parse error, \\u00\" is not a valid Unicode character" },
        { "{\"e\": \"q\\u0\"}", "err JSON parse error, \\u0\" is not a valid Unicode character" },
        { "{\"e\": \"q\\ud800\\u0041\"}",
          "err JSON parse error, \\ud800 is not a valid Unicode character" },
        { "{\"e\": \"q\\udc00\"}", "err JSON parse error, \\udc00 is not a valid Unicode character" },
        { "{\"e\": \"q\\uffff\"}", "err JSON parse error, \\uffff is not a valid Unicode character" },
        { "{\"e\": \"q\\x\"}", "err JSON parse error, invalid escape sequence in string" },
        { "{\"e\": 1} }", "ok {\"e\": 1}|err JSON parse error, expecting value" },
        { "] {\"e\": 1}", "err JSON parse error, expecting value|ok {\"e\": 1}" },
        { "{\"e\": [}\n{}\n", "" },
        { "[1, [2, 3}]",
          "err JSON parse error, expected separator in list|err JSON parse error, expecting value" },
        { "[}\n]", "err JSON parse error, expecting value|err JSON parse error, expecting value" },
        { "{\"id\": [1, {\"a\": 2]}]}",
          "err JSON parse error, expected separator in dict|err JSON parse error, expecting value" },
        { "{\"id\": [1, 2 3]}", "err JSON parse error, expected separator in list" },
        { "{\"id\": {\"a\" 1}}", "err JSON parse error, missing : in object pair" },
        { "{\"id\": \"\xc3\"}", "err JSON parse error, invalid UTF-8 sequence in string" },
        { "{\"id\": \"\xe0\x80\x80\"}", "err JSON parse error, invalid UTF-8 sequence in string" },
        { "{\"id\": \"\xef\xbf\xbe\"}", "err JSON parse error, invalid UTF-8 sequence in string" },
        { "{\"id\": \"a\tb\"}", "err JSON parse error, stray '\"a\t'|err JSON parse error, expecting value" },
        { "{\"id\": \"\xff\"}", "err JSON parse error, stray '\"\xff'|err JSON parse error, expecting value" },
        { "\xff{\"e\": 1}", "err JSON parse error, stray '\xff'|ok {\"e\": 1}" },
        { "{\"e\": 1\xfe, \"id\": 3}",
          "err JSON parse error, stray '\xfe'|err JSON parse error, expecting value|"
          "ok \"id\"|err JSON parse error, expecting value|ok 3|"
          "err JSON parse error, expecting value" },
        /* well-formed: QEMU's extensions, numbers and strings */
        { "{'id': 'a\"b\\'c'}", "ok {\"id\": \"a\\\"b'c\"}" },
        { "{\"id\": \"\\/\\b\\f\\n\\r\\t\"}", "ok {\"id\": \"/\\b\\f\\n\\r\\t\"}" },
        { "{\"id\": \"\\u001f\\u007f\\u00e9\\ud83d\\ude00\"}",
          "ok {\"id\": \"\\u001F\\u007F\\u00E9\\uD83D\\uDE00\"}" },
        { "{\"id\": \"\xc3\xa9\xc0\x80\\u0000\"}", "ok {\"id\": \"\\u00E9\\u0000\\u0000\"}" },
        { "[1e5, 1.5e+3, 1E2, -0, 18446744073709551615, 18446744073709551616, "
          "-9223372036854775809, -9223372036854775808, 9223372036854775808]\n",
          "ok [100000, 1500, 100, 0, 18446744073709551615, 1.8446744073709552e+19, "
          "-9.2233720368547758e+18, -9223372036854775808, 9223372036854775808]" },
        { "{\"e\": 1}{\"e\": 2}", "ok {\"e\": 1}|ok {\"e\": 2}" },
        { "{\"e\":\n 1}", "ok {\"e\": 1}" },
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *got = stream(cases[i].in, strlen(cases[i].in), 1);
        g_autofree char *whole = stream(cases[i].in, strlen(cases[i].in), strlen(cases[i].in));

        g_test_message("%s", cases[i].in);
        g_assert_cmpstr(got, ==, cases[i].want);
        g_assert_cmpstr(whole, ==, cases[i].want);
    }
}

/* A NUL ends what QEMU quotes of a stray token (it prints a C string). */
static void test_stream_nul(void)
{
    static const char in[] = "{\"e\": \"qu\0y\"}";
    g_autofree char *got = stream(in, sizeof(in) - 1, 1);

    g_assert_cmpstr(got, ==, "err JSON parse error, stray '\"qu'|err JSON parse error, "
                    "expecting value");
}

/*
 * QEMU formats a parse error's message into 1024 bytes: a long keyword
 * loses its closing quote and the rest.
 */
static void test_stream_long_keyword(void)
{
    g_autoptr(GString) in = g_string_new("{\"id\": ");
    g_autoptr(GString) want = g_string_new("err JSON parse error, invalid keyword '");

    for (int i = 0; i < 2000; i++) {
        g_string_append_c(in, 'a');
    }
    g_string_append(in, "}");
    while (want->len < strlen("err JSON parse error, ") + 1023) {
        g_string_append_c(want, 'a');
    }
    g_autofree char *got = stream(in->str, in->len, in->len);
    g_assert_cmpstr(got, ==, want->str);
}

/* A string of a million \u escapes parses in linear time (each had measured the rest). */
static void test_stream_many_escapes(void)
{
    g_autoptr(GString) in = g_string_new("\"");

    for (int i = 0; i < 1000000; i++) {
        g_string_append(in, "\\u0041");
    }
    g_string_append(in, "\" ");
    JsonStreamer js;
    json_streamer_init(&js);
    json_streamer_feed(&js, in->str, in->len);
    JsonMessage *m = json_streamer_next(&js);
    g_assert_nonnull(m);
    g_assert_null(m->err);
    g_assert_cmpuint(strlen(json_node_get_string(m->root)), ==, 1000000);
    json_message_free(m);
    json_streamer_destroy(&js);
}

/*
 * 1024 levels parse; the 1025th opener is refused, and each closer after
 * it has no opener (QEMU: one error each).
 */
static void test_stream_nesting(void)
{
    g_autoptr(GString) ok = g_string_new(NULL);
    g_autoptr(GString) deep = g_string_new(NULL);
    g_autoptr(GString) want = g_string_new("err JSON nesting depth limit exceeded");

    for (int i = 0; i < 1024; i++) {
        g_string_append_c(ok, '[');
    }
    for (int i = 0; i < 1024; i++) {
        g_string_append_c(ok, ']');
    }
    g_autofree char *got = stream(ok->str, ok->len, 4096);
    g_assert_true(g_str_has_prefix(got, "ok [[[[") && g_str_has_suffix(got, "]]]]"));

    for (int i = 0; i < 1025; i++) {
        g_string_append_c(deep, '{');
    }
    for (int i = 0; i < 1025; i++) {
        g_string_append_c(deep, '}');
        g_string_append(want, "|err JSON parse error, expecting value");
    }
    g_autofree char *refused = stream(deep->str, deep->len, 7);
    g_assert_cmpstr(refused, ==, want->str);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/monitor/json/writer/spacing", test_writer_spacing);
    g_test_add_func("/monitor/json/writer/escapes", test_writer_escapes);
    g_test_add_func("/monitor/json/writer/numbers", test_writer_numbers);
    g_test_add_func("/monitor/json/stream/chunks", test_stream_chunks);
    g_test_add_func("/monitor/json/stream/incomplete", test_stream_incomplete);
    g_test_add_func("/monitor/json/stream/qemu", test_stream_qemu);
    g_test_add_func("/monitor/json/stream/nul", test_stream_nul);
    g_test_add_func("/monitor/json/stream/nesting", test_stream_nesting);
    g_test_add_func("/monitor/json/stream/long-keyword", test_stream_long_keyword);
    g_test_add_func("/monitor/json/stream/many-escapes", test_stream_many_escapes);
    return g_test_run();
}
