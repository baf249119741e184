/*
 * qemu_strtosz / qemu_strtosz_MiB against the cases QEMU's own unit test
 * pins down: the parser decides what "file:x,offset=..." means.
 */
#include <errno.h>
#include <string.h>

#include "util/cutils.h"

typedef struct StrtoszCase {
    const char *str;
    int ret;
    uint64_t value;
    int consumed;       /* chars consumed when end is given; -1: skip check */
} StrtoszCase;

static const StrtoszCase strtosz_cases[] = {
    { "0", 0, 0, 1 },
    { "4096", 0, 4096, 4 },
    { "12345", 0, 12345, 5 },
    { "0x1000", 0, 0x1000, 6 },
    { "0X1000", 0, 0x1000, 6 },
    { "0x1b", 0, 0x1b, 4 },             /* b is a hex digit, not "bytes" */
    { "1.5K", 0, 1536, 4 },
    { "1.5k", 0, 1536, 4 },
    { "1K", 0, 1024, 2 },
    { "1M", 0, 1 << 20, 2 },
    { "1m", 0, 1 << 20, 2 },
    { "1G", 0, 1ULL << 30, 2 },
    { "1T", 0, 1ULL << 40, 2 },
    { "1P", 0, 1ULL << 50, 2 },
    { "1E", 0, 1ULL << 60, 2 },
    { "1e", 0, 1ULL << 60, 2 },         /* suffix, not exponent */
    { "1.5e", 0, 3ULL << 59, 4 },
    { "12B", 0, 12, 3 },
    { "1.k", 0, 1024, 3 },
    { ".5K", 0, 512, 3 },
    { "0.5M", 0, 512 * 1024, 4 },
    { " 4096", 0, 4096, 5 },
    { "1.0", 0, 1, 3 },                 /* zero fraction needs no scale */
    { "15.9999999999999999999999999999999999999999999999999999E", -ERANGE, 0, -1 },
    { "15.5E", 0, 31ULL << 59, 5 },
    { "0x20M", -EINVAL, 0, 0 },         /* hex takes no suffix */
    { "0x1.8", -EINVAL, 0, 0 },         /* nor a fraction */
    { "1.5", -EINVAL, 0, 0 },           /* fraction of a byte */
    { "1.5B", -EINVAL, 0, 0 },
    { "", -EINVAL, 0, 0 },
    { " ", -EINVAL, 0, 0 },
    { "x", -EINVAL, 0, 0 },
    { "abc", -EINVAL, 0, 0 },
    { "inf", -EINVAL, 0, 0 },
    { "NaN", -EINVAL, 0, 0 },
    { "-1", -ERANGE, 0, 2 },
    { "-0", -ERANGE, 0, 2 },
    { "16E", -ERANGE, 0, 3 },
    { "18446744073709551616", -ERANGE, 0, 20 },
    { "20000000000000000000000", -ERANGE, 0, 23 },
    { "18446744073709551615", 0, UINT64_MAX, 20 },
    { "0xffffffffffffffff", 0, UINT64_MAX, 18 },
    { "17179869184G", -ERANGE, 0, 12 },
    { "17179869183G", 0, 17179869183ULL << 30, 12 },
};

static void test_strtosz_table(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(strtosz_cases); i++) {
        const StrtoszCase *c = &strtosz_cases[i];
        const char *end = NULL;
        uint64_t val = 0xdead;
        int ret;

        g_test_message("strtosz(\"%s\")", c->str);
        ret = qemu_strtosz(c->str, &end, &val);
        g_assert_cmpint(ret, ==, c->ret);
        g_assert_cmpuint(val, ==, c->value);
        if (c->consumed >= 0) {
            g_assert_cmpint(end - c->str, ==, c->consumed);
        }
        /* Without end, the whole string must parse: same answers here. */
        ret = qemu_strtosz(c->str, NULL, &val);
        g_assert_cmpint(ret, ==, c->ret);
    }
}

static void test_strtosz_trailing(void)
{
    const char *end;
    uint64_t val;

    /* With end: stops after the number (and its suffix). */
    g_assert_cmpint(qemu_strtosz("123K,foo", &end, &val), ==, 0);
    g_assert_cmpuint(val, ==, 123 * 1024);
    g_assert_cmpstr(end, ==, ",foo");
    g_assert_cmpint(qemu_strtosz("4096 ", &end, &val), ==, 0);
    g_assert_cmpstr(end, ==, " ");
    g_assert_cmpint(qemu_strtosz("1Kb", &end, &val), ==, 0);
    g_assert_cmpstr(end, ==, "b");
    /* Without end: trailing text is malformed. */
    g_assert_cmpint(qemu_strtosz("123K,foo", NULL, &val), ==, -EINVAL);
    g_assert_cmpint(qemu_strtosz("4096 ", NULL, &val), ==, -EINVAL);
    g_assert_cmpint(qemu_strtosz("1Kb", NULL, &val), ==, -EINVAL);
    g_assert_cmpint(qemu_strtosz("-2M", NULL, &val), ==, -EINVAL);
    /* An -EINVAL leaves end at the start. */
    end = NULL;
    g_assert_cmpint(qemu_strtosz("0x20M", &end, &val), ==, -EINVAL);
    g_assert_nonnull(end);
    g_assert_cmpstr(end, ==, "0x20M");
}

static void test_strtosz_rounding(void)
{
    uint64_t val;

    /* Exact fixed point: 0.1 KiB rounds half-up to 102 bytes (102.4). */
    g_assert_cmpint(qemu_strtosz("0.1K", NULL, &val), ==, 0);
    g_assert_cmpuint(val, ==, 102);
    g_assert_cmpint(qemu_strtosz("0.5K", NULL, &val), ==, 0);
    g_assert_cmpuint(val, ==, 512);
    /* 12.345 MiB = 12944670.72 -> 12944671 */
    g_assert_cmpint(qemu_strtosz("12.345M", NULL, &val), ==, 0);
    g_assert_cmpuint(val, ==, 12944671);
}

static void test_strtosz_mib(void)
{
    uint64_t val;

    g_assert_cmpint(qemu_strtosz_MiB("512", NULL, &val), ==, 0);
    g_assert_cmpuint(val, ==, 512 * MiB);
    g_assert_cmpint(qemu_strtosz_MiB("1.5", NULL, &val), ==, 0);
    g_assert_cmpuint(val, ==, 1536 * KiB);
    g_assert_cmpint(qemu_strtosz_MiB("4G", NULL, &val), ==, 0);
    g_assert_cmpuint(val, ==, 4 * GiB);
    g_assert_cmpint(qemu_strtosz_MiB("4096B", NULL, &val), ==, 0);
    g_assert_cmpuint(val, ==, 4096);
    g_assert_cmpint(qemu_strtosz_MiB("0x10", NULL, &val), ==, 0);
    g_assert_cmpuint(val, ==, 16 * MiB);    /* hex too takes the default unit */
}

static void test_size_to_str(void)
{
    static const struct {
        uint64_t val;
        const char *str;
    } cases[] = {
        { 0, "0 B" },
        { 512, "512 B" },
        { 1000, "0.977 KiB" },
        { 1024, "1 KiB" },
        { 1536, "1.5 KiB" },
        { 3 * GiB / 2, "1.5 GiB" },
        { UINT64_MAX, "16 EiB" },
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *s = size_to_str(cases[i].val);

        g_assert_cmpstr(s, ==, cases[i].str);
    }
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/util/cutils/strtosz/table", test_strtosz_table);
    g_test_add_func("/util/cutils/strtosz/trailing", test_strtosz_trailing);
    g_test_add_func("/util/cutils/strtosz/rounding", test_strtosz_rounding);
    g_test_add_func("/util/cutils/strtosz/mib", test_strtosz_mib);
    g_test_add_func("/util/cutils/size-to-str", test_size_to_str);
    return g_test_run();
}
