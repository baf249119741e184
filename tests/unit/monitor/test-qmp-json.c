/*
 * QMP JSON text: QEMU's spacing and escaping on output, and the splitter
 * that finds message boundaries in an arbitrarily chunked input stream.
 */
#include <string.h>

#include "monitor/monitor-internal.h"

#if defined(__SANITIZE_ADDRESS__)
#define WITH_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define WITH_LSAN 1
#endif
#endif
#ifdef WITH_LSAN
#include <sanitizer/lsan_interface.h>
#endif

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
        { "[\"\\udc00\\u0041\"]", 1, 3 },
        { "[\"\\udc00x\"]", 1, 3 },
        { "{\"execute\": /* ' */ \"\\ud800\\u0041\"}", 1, 22 },
        { "{\"execute\": \"\\u00\"x\\ud800\\u0041\"}\"}", 1, 20 },
        { "[\"\\u0041\\ud7ff\\ue000\", 1 /* \"\\ud800 */]", 0, 0 },
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

/*
 * Against json-glib itself: every text it answers "malformed surrogate
 * pair" (the error path that leaks) must be one the check refuses, over
 * texts built from what tells the two apart: comments and single-quoted
 * strings holding quotes, short \\u escapes that swallow a quote, leads
 * from \\ud8 to \\udf and non-hex ones, and what follows them.
 */
static void test_bad_surrogate_pair_vs_json_glib(void)
{
    static const char *const prefixes[] = {
        "", "/* ' */ ", "/* \" */ ", "'x\"', ", "\"\\u00\" ", "\"\\\\\", ",
    };
    static const char *const leads[] = { "d8", "DB", "dc", "Df", "d7", "e8", "0d", "dx", "d\"" };
    static const char *const tails[] = { "00", "ff", "0x", "\"]" };
    static const char *const seconds[] = {
        "", "x", "\\u0041", "\\udc00", "\\uDFFF", "\\ud800", "\\u", "\\u00", "\\udc0\"",
    };
    g_autoptr(JsonParser) p = json_parser_new();
    unsigned leaking = 0;

    for (size_t a = 0; a < G_N_ELEMENTS(prefixes); a++) {
        for (size_t b = 0; b < G_N_ELEMENTS(leads); b++) {
            for (size_t c = 0; c < G_N_ELEMENTS(tails); c++) {
                for (size_t d = 0; d < G_N_ELEMENTS(seconds); d++) {
                    g_autofree char *text = g_strdup_printf("[%s\"\\u%s%s%s\"]", prefixes[a],
                                                            leads[b], tails[c], seconds[d]);
                    g_autoptr(GError) err = NULL;
                    unsigned line, col;
#ifdef WITH_LSAN
                    __lsan_disable();       /* what json-glib loses is the point */
#endif
                    bool ok = json_parser_load_from_data(p, text, -1, &err);
#ifdef WITH_LSAN
                    __lsan_enable();
#endif
                    if (!ok && strstr(err->message, "surrogate")) {
                        leaking++;
                        if (!json_text_bad_surrogate_pair(text, &line, &col)) {
                            g_error("json-glib: '%s' for %s, which the check lets through",
                                    err->message, text);
                        }
                    }
                }
            }
        }
    }
    g_test_message("%u texts json-glib leaks on, each refused", leaking);
    g_assert_cmpuint(leaking, >, 100);
}

/*
 * Integers beyond int64 and uint64 become floats, uint64 ones are listed
 * by their index among the numbers (comments, both quotes and number-like
 * text inside strings are passed over as json-glib does), and the walk
 * finds their nodes in the parsed tree.
 */
static void test_scan_numbers(void)
{
    const char *text = "{\"a\": 18446744073709551615, /* 1 */ \"b\": [1.5e3, "
                       "9223372036854775808, 18446744073709551616, -9223372036854775809, "
                       "-9223372036854775808, 9223372036854775807], \"c\": \"99999999999999999999\", "
                       "'d': '1'}";
    JsonTextScan scan;
    g_autoptr(GError) err = NULL;

    json_text_scan(text, &scan);
    g_assert_cmpstr(scan.text, ==,
                    "{\"a\": 18446744073709551615, /* 1 */ \"b\": [1.5e3, "
                    "9223372036854775808, 18446744073709551616.0, -9223372036854775809.0, "
                    "-9223372036854775808, 9223372036854775807], \"c\": \"99999999999999999999\", "
                    "'d': '1'}");
    g_assert_cmpuint(scan.numbers, ==, 7);
    g_assert_cmpuint(scan.u64->len, ==, 2);
    g_assert_cmpuint(g_array_index(scan.u64, guint, 0), ==, 0);
    g_assert_cmpuint(g_array_index(scan.u64, guint, 1), ==, 2);
    g_assert_false(scan.duplicate_key);

    g_autoptr(JsonNode) root = json_from_string(scan.text, &err);
    g_assert_no_error(err);
    g_autoptr(GHashTable) u64 = json_text_u64_nodes(root, &scan);
    JsonObject *o = json_node_get_object(root);
    JsonArray *b = json_object_get_array_member(o, "b");
    g_assert_cmpuint(g_hash_table_size(u64), ==, 2);
    g_assert_true(g_hash_table_contains(u64, json_object_get_member(o, "a")));
    g_assert_true(g_hash_table_contains(u64, json_array_get_element(b, 1)));
    g_assert_cmpuint((guint64)json_object_get_int_member(o, "a"), ==, G_MAXUINT64);
    g_assert_cmpfloat(json_array_get_double_element(b, 2), ==, 18446744073709551616.0);
    g_assert_cmpfloat(json_array_get_double_element(b, 3), ==, -9223372036854775809.0);

    g_autoptr(GString) plain = qmp_json_to_string(json_object_get_member(o, "a"));
    g_autoptr(GString) uns = qmp_json_to_string_unsigned(root, u64);
    g_assert_cmpstr(plain->str, ==, "-1");
    g_assert_cmpstr(uns->str, ==,
                    "{\"a\": 18446744073709551615, \"b\": [1500, 9223372036854775808, "
                    "1.8446744073709552e+19, -9.2233720368547758e+18, -9223372036854775808, "
                    "9223372036854775807], \"c\": \"99999999999999999999\", \"d\": \"1\"}");
    json_text_scan_clear(&scan);
}

/* json-glib keeps the last of a repeated key; the scan notes it (QEMU refuses the text). */
static void test_scan_duplicate_keys(void)
{
    static const struct {
        const char *text;
        bool dup;
    } cases[] = {
        { "{\"a\": 1, \"b\": {\"a\": 2}, \"c\": [{\"x\": 1}, {\"x\": 2}]}", false },
        { "{\"a\": \"a\", \"b\": [\"b\", \"b\"]}", false },
        { "{\"a\": 1, \"b\": 2, \"a\": 3}", true },
        { "{\"k\": {\"x\": 1, \"x\": 1}}", true },
        { "{\"ka\": 1, \"k\\u0061\": 2}", true },
        { "{'a': 1, \"a\": 2}", true },
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        JsonTextScan scan;

        json_text_scan(cases[i].text, &scan);
        g_assert_cmpint(scan.duplicate_key, ==, cases[i].dup);
        json_text_scan_clear(&scan);
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
    g_test_add_func("/monitor/json/scan/numbers", test_scan_numbers);
    g_test_add_func("/monitor/json/scan/duplicate-keys", test_scan_duplicate_keys);
    g_test_add_func("/monitor/json/bad-surrogate-pair", test_bad_surrogate_pair);
    g_test_add_func("/monitor/json/bad-surrogate-pair/vs-json-glib",
                    test_bad_surrogate_pair_vs_json_glib);
    return g_test_run();
}
