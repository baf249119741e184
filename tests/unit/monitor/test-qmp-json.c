/*
 * QMP JSON text: QEMU's spacing and escaping on output, and the splitter
 * that finds message boundaries in an arbitrarily chunked input stream.
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

/* Feed text in chunks of size n; return the texts found, joined by '|'. */
static char *split(const char *text, size_t n)
{
    JsonSplitter js;
    g_autoptr(GString) out = g_string_new(NULL);
    size_t len = strlen(text);
    char *t;

    json_splitter_init(&js);
    for (size_t off = 0; off < len; off += n) {
        json_splitter_feed(&js, text + off, MIN(n, len - off));
    }
    while ((t = json_splitter_next(&js))) {
        g_string_append_printf(out, "%s%s", out->len ? "|" : "", t);
        g_free(t);
    }
    json_splitter_destroy(&js);
    return g_strdup(out->str);
}

static void test_splitter_chunks(void)
{
    const char *in = "{\"execute\": \"a\"}\r\n{\"execute\":\"b\",\"arguments\":{\"s\":\"}{\\\"\"}}"
                     "  [1,[2]] 42 \"str\"{\"x\": 1}";
    const char *want = "{\"execute\": \"a\"}|{\"execute\":\"b\",\"arguments\":{\"s\":\"}{\\\"\"}}"
                       "|[1,[2]]|42|\"str\"|{\"x\": 1}";

    for (size_t n = 1; n <= strlen(in); n++) {
        g_autofree char *got = split(in, n);

        g_assert_cmpstr(got, ==, want);
    }
}

static void test_splitter_incomplete(void)
{
    JsonSplitter js;
    char *t;

    json_splitter_init(&js);
    json_splitter_feed(&js, "{\"execute\": \"a\"", 15);
    g_assert_null(json_splitter_next(&js));
    json_splitter_feed(&js, "}", 1);
    t = json_splitter_next(&js);
    g_assert_cmpstr(t, ==, "{\"execute\": \"a\"}");
    g_free(t);
    /* A stray closer is handed on as its own (invalid) text. */
    json_splitter_feed(&js, "}{}", 3);
    t = json_splitter_next(&js);
    g_assert_cmpstr(t, ==, "}");
    g_free(t);
    t = json_splitter_next(&js);
    g_assert_cmpstr(t, ==, "{}");
    g_free(t);
    json_splitter_destroy(&js);
}

/*
 * Texts json-glib 1.6 leaks on ("malformed surrogate pair"), and lone
 * high surrogates, found with the line and column where the escape
 * starts; well-formed pairs and other texts are left to json-glib.
 */
static void test_bad_surrogate_pair(void)
{
    static const struct {
        const char *text;
        unsigned line, col;     /* 0: not such a text */
    } cases[] = {
        { "[\"\\ud800\\u0041\"]", 1, 3 },
        { "{\"a\": \"x\\ud800\\ud800\"}", 1, 9 },
        { "[\"\\uD800\\uDBFF\"]", 1, 3 },
        { "[\"\\ud800\\u\"]", 1, 3 },
        { "[\"\\ud800\\u00zz\"]", 1, 3 },
        { "[\"\\ud800\\udc0\"]", 1, 3 },
        { "[1,\n \"\\ud800\\u0041\"]", 2, 3 },
        { "[\"\xc3\xa9\\udbff\\u0041\"]", 1, 5 },
        { "{\"ex\\ud80x\\ud800ecute\": 1}", 1, 5 },
        { "[\"\\ud800x\"]", 1, 3 },
        { "[\"\\ud8\"]", 1, 3 },
        { "[\"\\ud83d\\ude00\", \"\\uDB\"]", 1, 19 },
        { "[\"\\ud800\\udc00\"]", 0, 0 },
        { "[\"\\udc00\\u0041\\ud7ff\\ue000\"]", 0, 0 },
        { "[\"\\\\ud800\\u0041\"]", 0, 0 },
        { "['\\ud800\\u0041']", 0, 0 },
        { "[\"\\u0x\\u0041\"]", 0, 0 },
        { "{\"execute\": \"query-version\"}", 0, 0 },
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        unsigned line = 0, col = 0;
        bool bad = json_text_bad_surrogate_pair(cases[i].text, &line, &col);

        g_test_message("%s", cases[i].text);
        g_assert_cmpint(bad, ==, cases[i].line != 0);
        if (bad) {
            g_assert_cmpuint(line, ==, cases[i].line);
            g_assert_cmpuint(col, ==, cases[i].col);
        }
    }
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/monitor/json/writer/spacing", test_writer_spacing);
    g_test_add_func("/monitor/json/writer/escapes", test_writer_escapes);
    g_test_add_func("/monitor/json/writer/numbers", test_writer_numbers);
    g_test_add_func("/monitor/json/splitter/chunks", test_splitter_chunks);
    g_test_add_func("/monitor/json/splitter/incomplete", test_splitter_incomplete);
    g_test_add_func("/monitor/json/bad-surrogate-pair", test_bad_surrogate_pair);
    return g_test_run();
}
