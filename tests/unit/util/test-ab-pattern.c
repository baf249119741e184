/*
 * ab_pattern_check: it accepts the ab guest's memory with and without
 * the one step down where its pass was stopped (also across 0xff -> 0x00),
 * ignores all but the first byte of each page, and rejects every other
 * shape with a message that names the first bad page and the bytes seen.
 */
#include <glib.h>
#include <string.h>

#include "util/ab-pattern.h"
#include "util/error.h"

#define PAGE AB_PATTERN_PAGE
#define RANGE (AB_PATTERN_END - AB_PATTERN_START)

/* @len bytes with every tracked byte @v; the others, never read, 0xa5. */
static uint8_t *ab_mem(uint64_t len, uint8_t v)
{
    uint8_t *mem = g_malloc(len);

    memset(mem, 0xa5, len);
    for (uint64_t off = 0; off < len; off += PAGE) {
        mem[off] = v;
    }
    return mem;
}

/* Pages [0, @pages) one step ahead of the rest: a pass stopped there. */
static void step_ahead(uint8_t *mem, uint64_t pages)
{
    for (uint64_t p = 0; p < pages; p++) {
        mem[p * PAGE]++;
    }
}

static void assert_ok(const uint8_t *mem, uint64_t addr, uint64_t len)
{
    g_autoptr(GError) err = NULL;

    g_assert_true(ab_pattern_check(mem, addr, len, &err));
    g_assert_no_error(err);
}

static void assert_broken(const uint8_t *mem, uint64_t addr, uint64_t len,
                          const char *msg)
{
    g_autoptr(GError) err = NULL;

    g_assert_false(ab_pattern_check(mem, addr, len, &err));
    g_assert_error(err, MAPRAM_ERROR, QMP_ERROR_GENERIC);
    g_assert_cmpstr(err->message, ==, msg);
}

static void test_good_no_edge(void)
{
    g_autofree uint8_t *mem = ab_mem(RANGE, 0x2a);

    assert_ok(mem, AB_PATTERN_START, RANGE);
    memset(mem, 0, RANGE);                  /* just zeroed: also whole */
    assert_ok(mem, AB_PATTERN_START, RANGE);
}

static void test_good_edge(void)
{
    /* Stopped after the first page, in the middle, before the last. */
    static const uint64_t ahead[] = { 1, 5000, RANGE / PAGE - 1 };

    for (size_t i = 0; i < G_N_ELEMENTS(ahead); i++) {
        g_autofree uint8_t *mem = ab_mem(RANGE, 0x07);

        step_ahead(mem, ahead[i]);
        assert_ok(mem, AB_PATTERN_START, RANGE);
    }
}

/* The bytes count modulo 256: 0x00 ahead of 0xff is one step. */
static void test_good_edge_wraps(void)
{
    g_autofree uint8_t *mem = ab_mem(RANGE, 0xff);

    step_ahead(mem, 100);
    g_assert_cmphex(mem[0], ==, 0x00);
    assert_ok(mem, AB_PATTERN_START, RANGE);
}

/* A part of the range (a guest smaller than 100 MiB), anywhere. */
static void test_good_part(void)
{
    g_autofree uint8_t *mem = ab_mem(16 * PAGE, 0x80);

    step_ahead(mem, 3);
    assert_ok(mem, AB_PATTERN_START, 16 * PAGE);
    assert_ok(mem, 0, 16 * PAGE);
    assert_ok(mem, AB_PATTERN_START, PAGE);
}

static void test_bad_jump(void)
{
    g_autofree uint8_t *mem = ab_mem(RANGE, 0x07);

    mem[0x902000] = 0x05;
    assert_broken(mem, AB_PATTERN_START, RANGE,
                  "ab pattern broken at guest address 0xa02000: "
                  "0x05 after 0x07");
}

/* Up by one is not the guest's edge: the prefix is ahead, not behind. */
static void test_bad_step_up(void)
{
    g_autofree uint8_t *mem = ab_mem(RANGE, 0x07);

    for (uint64_t off = 0x300000; off < RANGE; off += PAGE) {
        mem[off] = 0x08;
    }
    assert_broken(mem, AB_PATTERN_START, RANGE,
                  "ab pattern broken at guest address 0x400000: "
                  "0x08 after 0x07");
}

static void test_bad_second_edge(void)
{
    g_autofree uint8_t *mem = ab_mem(RANGE, 0x07);

    step_ahead(mem, 5);
    for (uint64_t off = 0x1000000; off < RANGE; off += PAGE) {
        mem[off] = 0x06;
    }
    assert_broken(mem, AB_PATTERN_START, RANGE,
                  "ab pattern broken at guest address 0x1100000: "
                  "0x06 after 0x07, a second step down (the first is at "
                  "0x105000)");
}

/*
 * A page lost by a restore reads as zero: after one pass (bytes 0x01)
 * that looks like the edge, and the page after it is the one reported.
 */
static void test_bad_lost_page(void)
{
    g_autofree uint8_t *mem = ab_mem(RANGE, 0x01);

    mem[0x200000] = 0x00;
    assert_broken(mem, AB_PATTERN_START, RANGE,
                  "ab pattern broken at guest address 0x301000: "
                  "0x01 after 0x00");
    /* The last page lost is a step down like any edge: not seen. */
    mem[0x200000] = 0x01;
    mem[RANGE - PAGE] = 0x00;
    assert_ok(mem, AB_PATTERN_START, RANGE);
}

/* Only whole pages: anything else is the caller's mistake, said so. */
static void test_bad_range(void)
{
    g_autofree uint8_t *mem = ab_mem(4 * PAGE, 0x00);

    assert_broken(mem, AB_PATTERN_START, 0,
                  "ab pattern: [0x100000, 0x100000) is not a range of "
                  "whole 4096-byte pages");
    assert_broken(mem, AB_PATTERN_START, 2 * PAGE + 1,
                  "ab pattern: [0x100000, 0x102001) is not a range of "
                  "whole 4096-byte pages");
    assert_broken(mem, AB_PATTERN_START + 512, 2 * PAGE,
                  "ab pattern: [0x100200, 0x102200) is not a range of "
                  "whole 4096-byte pages");
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/util/ab-pattern/good/no-edge", test_good_no_edge);
    g_test_add_func("/util/ab-pattern/good/edge", test_good_edge);
    g_test_add_func("/util/ab-pattern/good/edge-wraps", test_good_edge_wraps);
    g_test_add_func("/util/ab-pattern/good/part", test_good_part);
    g_test_add_func("/util/ab-pattern/bad/jump", test_bad_jump);
    g_test_add_func("/util/ab-pattern/bad/step-up", test_bad_step_up);
    g_test_add_func("/util/ab-pattern/bad/second-edge", test_bad_second_edge);
    g_test_add_func("/util/ab-pattern/bad/lost-page", test_bad_lost_page);
    g_test_add_func("/util/ab-pattern/bad/range", test_bad_range);
    return g_test_run();
}
