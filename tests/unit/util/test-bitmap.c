/*
 * Bitmap scans are word-at-a-time; the cases that break such code are
 * bits at word boundaries, sizes that end mid-word and garbage beyond
 * the size in the last word.  Checked against a bit-by-bit reference.
 */
#include "util/bitmap.h"

static size_t ref_find(const unsigned long *map, size_t size, size_t off, bool set)
{
    for (size_t i = off; i < size; i++) {
        if (test_bit(i, map) == set) {
            return i;
        }
    }
    return size;
}

static void check_all_offsets(const unsigned long *map, size_t size)
{
    for (size_t off = 0; off <= size + 1; off++) {
        g_assert_cmpuint(find_next_bit(map, size, off), ==, ref_find(map, size, off, true));
        g_assert_cmpuint(find_next_zero_bit(map, size, off), ==,
                         ref_find(map, size, off, false));
    }
}

static void test_find_boundaries(void)
{
    const size_t nbits = 4 * BITS_PER_LONG;
    g_autofree unsigned long *map = bitmap_new(nbits);
    static const size_t bits[] = { 0, 63, 64, 127, 128, 129, 191, 255 };

    g_assert_cmpuint(find_next_bit(map, nbits, 0), ==, nbits);
    g_assert_cmpuint(find_next_zero_bit(map, nbits, 0), ==, 0);
    for (size_t i = 0; i < G_N_ELEMENTS(bits); i++) {
        set_bit(bits[i], map);
    }
    g_assert_cmpuint(find_next_bit(map, nbits, 1), ==, 63);
    g_assert_cmpuint(find_next_bit(map, nbits, 64), ==, 64);
    g_assert_cmpuint(find_next_bit(map, nbits, 65), ==, 127);
    g_assert_cmpuint(find_next_bit(map, nbits, 192), ==, 255);
    g_assert_cmpuint(find_next_bit(map, nbits, 256), ==, nbits);
    for (size_t size = 0; size <= nbits; size++) {
        check_all_offsets(map, size);
    }
    /* All ones: the zero search must stop at size, not run past it. */
    bitmap_set_range(map, 0, nbits);
    g_assert_cmpuint(find_next_zero_bit(map, nbits, 0), ==, nbits);
    g_assert_cmpuint(find_next_zero_bit(map, 100, 3), ==, 100);
    check_all_offsets(map, 100);
}

static void test_find_random(void)
{
    const size_t nbits = 1000;
    g_autofree unsigned long *map = bitmap_new(nbits);
    GRand *rand = g_rand_new_with_seed(42);

    for (int round = 0; round < 20; round++) {
        for (size_t i = 0; i < BITS_TO_LONGS(nbits); i++) {
            map[i] = ((unsigned long)g_rand_int(rand) << 32) | g_rand_int(rand);
            if (round % 3 == 0) {
                map[i] &= map[i] >> 7;          /* sparse */
            } else if (round % 3 == 1) {
                map[i] |= map[i] << 5;          /* dense */
            }
        }
        check_all_offsets(map, nbits);
        check_all_offsets(map, 999);
    }
    g_rand_free(rand);
}

static void test_count_and_ranges(void)
{
    const size_t nbits = 300;
    g_autofree unsigned long *map = bitmap_new(nbits);

    g_assert_cmpuint(bitmap_size_bytes(nbits), ==, 5 * sizeof(unsigned long));
    bitmap_set_range(map, 60, 10);          /* crosses a word boundary */
    g_assert_cmpuint(bitmap_count_one(map, nbits), ==, 10);
    g_assert_false(test_bit(59, map));
    g_assert_true(test_bit(60, map));
    g_assert_true(test_bit(69, map));
    g_assert_false(test_bit(70, map));
    bitmap_set_range(map, 0, nbits);
    g_assert_cmpuint(bitmap_count_one(map, nbits), ==, nbits);
    /* Bits beyond nbits in the last word are not counted. */
    map[BIT_WORD(nbits)] |= ~0UL;
    g_assert_cmpuint(bitmap_count_one(map, nbits), ==, nbits);
    g_assert_cmpuint(bitmap_count_one(map, 64), ==, 64);
    bitmap_clear_range(map, 1, 298);
    g_assert_cmpuint(bitmap_count_one(map, nbits), ==, 2);
    g_assert_true(test_bit(0, map));
    g_assert_true(test_bit(299, map));
    bitmap_clear_range(map, 0, 0);
    g_assert_cmpuint(bitmap_count_one(map, nbits), ==, 2);
    bitmap_set_range(map, 128, 64);         /* exactly one whole word */
    g_assert_cmpuint(bitmap_count_one(map, nbits), ==, 66);
    g_assert_cmpuint(map[2], ==, ~0UL);
    set_bit_atomic(5, map);
    g_assert_true(test_bit(5, map));
    clear_bit_atomic(5, map);
    g_assert_false(test_bit(5, map));
}

static void test_harvest(void)
{
    unsigned long src[4] = { 0x5, 0, ~0UL, 0x80 };
    unsigned long dst[4] = { 0x1, 0xf0, 0, 0x80 };

    /* 0x4 is new in word 0, all 64 in word 2, nothing new in word 3. */
    g_assert_cmpuint(bitmap_harvest_atomic(dst, src, 4), ==, 65);
    g_assert_cmpuint(dst[0], ==, 0x5);
    g_assert_cmpuint(dst[1], ==, 0xf0);
    g_assert_cmpuint(dst[2], ==, ~0UL);
    g_assert_cmpuint(dst[3], ==, 0x80);
    for (int i = 0; i < 4; i++) {
        g_assert_cmpuint(src[i], ==, 0);
    }
    g_assert_cmpuint(bitmap_harvest_atomic(dst, src, 4), ==, 0);
}

typedef struct HarvestRace {
    unsigned long *log;
    size_t nbits;
    gint stop;
} HarvestRace;

static gpointer dirtier(gpointer opaque)
{
    HarvestRace *r = opaque;

    /* Each bit is set once: a lost or duplicated set shows in the count. */
    for (size_t i = 0; i < r->nbits; i++) {
        set_bit_atomic((i * 7919) % r->nbits, r->log);
    }
    return NULL;
}

static void test_harvest_concurrent(void)
{
    HarvestRace r = { .nbits = 1 << 16 };
    g_autofree unsigned long *dst = bitmap_new(r.nbits);
    size_t total = 0;
    GThread *t;

    r.log = bitmap_new(r.nbits);
    t = g_thread_new("dirtier", dirtier, &r);
    for (int i = 0; i < 1000; i++) {
        total += bitmap_harvest_atomic(dst, r.log, BITS_TO_LONGS(r.nbits));
    }
    g_thread_join(t);
    total += bitmap_harvest_atomic(dst, r.log, BITS_TO_LONGS(r.nbits));
    g_assert_cmpuint(total, ==, r.nbits);
    g_assert_cmpuint(bitmap_count_one(dst, r.nbits), ==, r.nbits);
    g_free(r.log);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/util/bitmap/find/boundaries", test_find_boundaries);
    g_test_add_func("/util/bitmap/find/random", test_find_random);
    g_test_add_func("/util/bitmap/count-and-ranges", test_count_and_ranges);
    g_test_add_func("/util/bitmap/harvest", test_harvest);
    g_test_add_func("/util/bitmap/harvest/concurrent", test_harvest_concurrent);
    return g_test_run();
}
