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

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/monitor/json/writer/spacing", test_writer_spacing);
    g_test_add_func("/monitor/json/writer/escapes", test_writer_escapes);
    g_test_add_func("/monitor/json/writer/numbers", test_writer_numbers);
    g_test_add_func("/monitor/json/splitter/chunks", test_splitter_chunks);
    g_test_add_func("/monitor/json/splitter/incomplete", test_splitter_incomplete);
    return g_test_run();
}
