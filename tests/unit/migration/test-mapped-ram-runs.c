/*
 * The set-run iterator of a mapped-ram bitmap: exact runs (and their
 * gaps) for crafted bitmaps, then random bitmaps against a page-by-page
 * reference, so every load that plans its reads with it reads each set
 * page exactly once and no clear page outside a gap.
 */
#include <string.h>

#include "migration/mapped-ram.h"
#include "util/bitmap.h"

typedef struct Run {
    uint64_t start, end, gap_pages;
} Run;

/* The runs of bmap over [first, last), as a 0-terminated list in runs[]. */
static unsigned collect(const unsigned long *bmap, uint64_t first, uint64_t last,
                        uint64_t max_gap, uint64_t max_run, Run *runs, unsigned max)
{
    MappedRamRuns it;
    MappedRamRun r;
    unsigned n = 0;

    mapped_ram_runs_init(&it, bmap, first, last, max_gap, max_run);
    while (mapped_ram_runs_next(&it, &r)) {
        g_assert_cmpuint(n, <, max);
        runs[n++] = (Run) { r.start, r.end, r.gap_pages };
    }
    g_assert_false(mapped_ram_runs_next(&it, &r));   /* stays at the end */
    return n;
}

static void expect_runs(const unsigned long *bmap, uint64_t first, uint64_t last,
                        uint64_t max_gap, uint64_t max_run, const Run *want, unsigned nwant)
{
    Run got[64];
    unsigned n = collect(bmap, first, last, max_gap, max_run, got, G_N_ELEMENTS(got));

    for (unsigned i = 0; i < MIN(n, nwant); i++) {
        if (got[i].start != want[i].start || got[i].end != want[i].end ||
            got[i].gap_pages != want[i].gap_pages) {
            g_error("run %u: got [%" G_GUINT64_FORMAT ", %" G_GUINT64_FORMAT ") gaps %"
                    G_GUINT64_FORMAT ", want [%" G_GUINT64_FORMAT ", %" G_GUINT64_FORMAT
                    ") gaps %" G_GUINT64_FORMAT, i, got[i].start, got[i].end,
                    got[i].gap_pages, want[i].start, want[i].end, want[i].gap_pages);
        }
    }
    g_assert_cmpuint(n, ==, nwant);
}

static unsigned long *bits(uint64_t nbits, const uint64_t *set, unsigned nset)
{
    unsigned long *b = bitmap_new(nbits);
    for (unsigned i = 0; i < nset; i++) {
        set_bit(set[i], b);
    }
    return b;
}

static void set_range(unsigned long *b, uint64_t start, uint64_t end)
{
    for (uint64_t p = start; p < end; p++) {
        set_bit(p, b);
    }
}

static void test_empty(void)
{
    g_autofree unsigned long *b = bitmap_new(300);
    expect_runs(b, 0, 300, 0, 256, NULL, 0);
    expect_runs(b, 0, 300, 64, 256, NULL, 0);
    expect_runs(b, 0, 0, 64, 256, NULL, 0);      /* an empty range */
}

static void test_full(void)
{
    g_autofree unsigned long *b = bitmap_new(300);
    set_range(b, 0, 300);
    static const Run want[] = { { 0, 256, 0 }, { 256, 300, 0 } };
    expect_runs(b, 0, 300, 0, 256, want, 2);
    static const Run one[] = { { 0, 300, 0 } };
    expect_runs(b, 0, 300, 64, 1000, one, 1);
}

static void test_single_bits(void)
{
    static const uint64_t set[] = { 0, 63, 64, 200, 299 };
    g_autofree unsigned long *b = bits(300, set, G_N_ELEMENTS(set));
    static const Run want[] = {
        { 0, 1, 0 }, { 63, 65, 0 }, { 200, 201, 0 }, { 299, 300, 0 },
    };
    expect_runs(b, 0, 300, 0, 256, want, G_N_ELEMENTS(want));
    /* max_run 1: one page each, 63 and 64 apart */
    static const Run ones[] = {
        { 0, 1, 0 }, { 63, 64, 0 }, { 64, 65, 0 }, { 200, 201, 0 }, { 299, 300, 0 },
    };
    expect_runs(b, 0, 300, 0, 1, ones, G_N_ELEMENTS(ones));
}

/* A gap of exactly max_gap pages is read through; one page more is not. */
static void test_gap_limit(void)
{
    static const uint64_t set[] = { 10, 15, 21 };    /* gaps of 4 and 5 pages */
    g_autofree unsigned long *b = bits(100, set, G_N_ELEMENTS(set));
    static const Run at4[] = { { 10, 16, 4 }, { 21, 22, 0 } };
    expect_runs(b, 0, 100, 4, 256, at4, 2);
    static const Run at5[] = { { 10, 22, 9 } };
    expect_runs(b, 0, 100, 5, 256, at5, 1);
    static const Run at3[] = { { 10, 11, 0 }, { 15, 16, 0 }, { 21, 22, 0 } };
    expect_runs(b, 0, 100, 3, 256, at3, 3);
    expect_runs(b, 0, 100, 0, 256, at3, 3);
}

/* The cap cuts a set stretch, and never leaves a run ending in a gap. */
static void test_run_cap(void)
{
    g_autofree unsigned long *b = bitmap_new(100);
    set_range(b, 0, 10);
    set_range(b, 12, 21);
    static const Run want[] = { { 0, 15, 2 }, { 15, 21, 0 } };
    expect_runs(b, 0, 100, 2, 15, want, 2);
    /* the set page after the gap lies past the cap: the gap is not taken */
    static const Run cut[] = { { 0, 10, 0 }, { 12, 21, 0 } };
    expect_runs(b, 0, 100, 2, 11, cut, 2);
    static const Run twelve[] = { { 0, 10, 0 }, { 12, 21, 0 } };
    expect_runs(b, 0, 100, 2, 12, twelve, 2);
    static const Run thirteen[] = { { 0, 13, 2 }, { 13, 21, 0 } };
    expect_runs(b, 0, 100, 2, 13, thirteen, 2);
}

/* A range that starts inside a run, and one that crosses words. */
static void test_range_offset(void)
{
    g_autofree unsigned long *b = bitmap_new(300);
    set_range(b, 0, 10);
    set_range(b, 60, 140);
    static const Run inside[] = { { 5, 8, 0 } };
    expect_runs(b, 5, 8, 0, 256, inside, 1);
    static const Run words[] = { { 64, 130, 0 } };
    expect_runs(b, 64, 130, 0, 256, words, 1);
    static const Run capped[] = { { 70, 102, 0 }, { 102, 134, 0 }, { 134, 140, 0 } };
    expect_runs(b, 70, 300, 0, 32, capped, 3);
}

/* Bits set past the range (or past a block's last page) are not pages. */
static void test_bits_past_end(void)
{
    g_autofree unsigned long *b = bitmap_new(128);
    set_range(b, 98, 128);
    static const Run want[] = { { 98, 100, 0 } };
    expect_runs(b, 0, 100, 0, 256, want, 1);
    g_autofree unsigned long *c = bitmap_new(128);
    set_bit(90, c);
    set_bit(101, c);
    static const Run alone[] = { { 90, 91, 0 } };
    expect_runs(c, 0, 100, 64, 256, alone, 1);
}

static void test_gap_list(void)
{
    static const uint64_t set[] = { 0, 2, 5, 6, 9 };
    g_autofree unsigned long *b = bits(64, set, G_N_ELEMENTS(set));
    MappedRamRuns it;
    MappedRamRun r;
    mapped_ram_runs_init(&it, b, 0, 64, 2, 256);
    g_assert_true(mapped_ram_runs_next(&it, &r));
    g_assert_cmpuint(r.start, ==, 0);
    g_assert_cmpuint(r.end, ==, 10);
    g_assert_cmpuint(r.gap_pages, ==, 5);
    static const uint64_t want[][2] = { { 1, 2 }, { 3, 5 }, { 7, 9 } };
    uint64_t pos = r.start, gs, ge;
    for (unsigned i = 0; i < G_N_ELEMENTS(want); i++) {
        g_assert_true(mapped_ram_run_next_gap(&it, &r, &pos, &gs, &ge));
        g_assert_cmpuint(gs, ==, want[i][0]);
        g_assert_cmpuint(ge, ==, want[i][1]);
    }
    g_assert_false(mapped_ram_run_next_gap(&it, &r, &pos, &gs, &ge));
    g_assert_false(mapped_ram_runs_next(&it, &r));
}

/* ---- random bitmaps against a page-by-page reference ---- */

static unsigned reference(const unsigned long *b, uint64_t first, uint64_t last,
                          uint64_t max_gap, uint64_t max_run, Run *runs, unsigned max)
{
    unsigned n = 0;
    uint64_t p = first;

    for (;;) {
        while (p < last && !test_bit(p, b)) {
            p++;
        }
        if (p >= last) {
            return n;
        }
        uint64_t start = p, cap = MIN(start + max_run, last), end = start + 1, gaps = 0;
        while (end < cap) {
            if (test_bit(end, b)) {
                end++;
                continue;
            }
            uint64_t q = end;
            while (q < cap && !test_bit(q, b)) {
                q++;
            }
            if (q >= cap || q - end > max_gap) {
                break;
            }
            gaps += q - end;
            end = q;
        }
        g_assert_cmpuint(n, <, max);
        runs[n++] = (Run) { start, end, gaps };
        p = end;
    }
}

static void test_random(void)
{
    static const uint64_t gaps[] = { 0, 1, 3, 64 };
    static const uint64_t caps[] = { 1, 7, 64, 256 };
    GRand *rnd = g_rand_new_with_seed(4711);

    for (int round = 0; round < 300; round++) {
        uint64_t n = g_rand_int_range(rnd, 1, 700);
        unsigned density = g_rand_int_range(rnd, 1, 100);
        g_autofree unsigned long *b = bitmap_new(n + 64);
        for (uint64_t p = 0; p < n + 64; p++) {
            if ((unsigned)g_rand_int_range(rnd, 0, 100) < density) {
                set_bit(p, b);
            }
        }
        uint64_t first = g_rand_int_range(rnd, 0, n), last = g_rand_int_range(rnd, first, n + 1);
        for (unsigned g = 0; g < G_N_ELEMENTS(gaps); g++) {
            for (unsigned c = 0; c < G_N_ELEMENTS(caps); c++) {
                static Run want[800], got[800];
                unsigned nw = reference(b, first, last, gaps[g], caps[c], want, 800);
                unsigned ng = collect(b, first, last, gaps[g], caps[c], got, 800);
                g_assert_cmpuint(ng, ==, nw);
                g_assert_cmpmem(got, ng * sizeof(Run), want, nw * sizeof(Run));
            }
        }
    }
    g_rand_free(rnd);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/migration/mapped-ram/runs/empty", test_empty);
    g_test_add_func("/migration/mapped-ram/runs/full", test_full);
    g_test_add_func("/migration/mapped-ram/runs/single-bits", test_single_bits);
    g_test_add_func("/migration/mapped-ram/runs/gap-limit", test_gap_limit);
    g_test_add_func("/migration/mapped-ram/runs/run-cap", test_run_cap);
    g_test_add_func("/migration/mapped-ram/runs/range-offset", test_range_offset);
    g_test_add_func("/migration/mapped-ram/runs/bits-past-end", test_bits_past_end);
    g_test_add_func("/migration/mapped-ram/runs/gap-list", test_gap_list);
    g_test_add_func("/migration/mapped-ram/runs/random", test_random);
    return g_test_run();
}
