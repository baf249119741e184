/*
 * Bitmap helpers.  The scans work a word at a time because they walk
 * dirty bitmaps of whole guests (a million bits per 4 GiB) every
 * iteration.
 */
#include <string.h>

#include "util/bitmap.h"

#define WORD_ALL (~0UL)

/* Bits [start % BITS_PER_LONG, BITS_PER_LONG) of a word. */
#define FIRST_WORD_MASK(start) (WORD_ALL << ((start) % BITS_PER_LONG))
/* Bits [0, nbits % BITS_PER_LONG) of a word, or all when it divides. */
#define LAST_WORD_MASK(nbits) (WORD_ALL >> (-(nbits) % BITS_PER_LONG))

unsigned long *bitmap_new(size_t nbits)
{
    return g_malloc0(bitmap_size_bytes(nbits));
}

size_t bitmap_size_bytes(size_t nbits)
{
    return BITS_TO_LONGS(nbits) * sizeof(unsigned long);
}

/*
 * Shared scan: invert is 0 to look for a set bit, ~0UL for a clear one,
 * so both searches are the same loop over (word ^ invert).
 */
static size_t find_next(const unsigned long *addr, size_t size, size_t offset,
                        unsigned long invert)
{
    size_t idx;
    unsigned long word;

    if (offset >= size) {
        return size;
    }
    idx = BIT_WORD(offset);
    word = (addr[idx] ^ invert) & FIRST_WORD_MASK(offset);
    while (!word) {
        idx++;
        if (idx * BITS_PER_LONG >= size) {
            return size;
        }
        word = addr[idx] ^ invert;
    }
    offset = idx * BITS_PER_LONG + __builtin_ctzl(word);
    return offset < size ? offset : size;
}

size_t find_next_bit(const unsigned long *addr, size_t size, size_t offset)
{
    return find_next(addr, size, offset, 0);
}

size_t find_next_zero_bit(const unsigned long *addr, size_t size, size_t offset)
{
    return find_next(addr, size, offset, WORD_ALL);
}

size_t bitmap_count_one(const unsigned long *addr, size_t nbits)
{
    size_t full = nbits / BITS_PER_LONG;
    size_t count = 0;

    for (size_t i = 0; i < full; i++) {
        count += __builtin_popcountl(addr[i]);
    }
    if (nbits % BITS_PER_LONG) {
        count += __builtin_popcountl(addr[full] & LAST_WORD_MASK(nbits));
    }
    return count;
}

/* Apply op to the bits [start, start + nr), whole words at once. */
static void bitmap_update_range(unsigned long *addr, size_t start, size_t nr,
                                bool set)
{
    size_t end = start + nr;
    size_t first, last;
    unsigned long mask;

    if (!nr) {
        return;
    }
    first = BIT_WORD(start);
    last = BIT_WORD(end - 1);
    for (size_t i = first; i <= last; i++) {
        mask = WORD_ALL;
        if (i == first) {
            mask &= FIRST_WORD_MASK(start);
        }
        if (i == last) {
            mask &= LAST_WORD_MASK(end);
        }
        if (set) {
            addr[i] |= mask;
        } else {
            addr[i] &= ~mask;
        }
    }
}

void bitmap_set_range(unsigned long *addr, size_t start, size_t nr)
{
    bitmap_update_range(addr, start, nr, true);
}

void bitmap_clear_range(unsigned long *addr, size_t start, size_t nr)
{
    bitmap_update_range(addr, start, nr, false);
}

size_t bitmap_harvest_atomic(unsigned long *dst, unsigned long *src, size_t nwords)
{
    size_t newly_set = 0;

    for (size_t i = 0; i < nwords; i++) {
        unsigned long bits;

        /*
         * A plain load first: most words of a dirty log are zero, and an
         * exchange would take the cache line exclusive for nothing.
         */
        if (!__atomic_load_n(&src[i], __ATOMIC_RELAXED)) {
            continue;
        }
        bits = __atomic_exchange_n(&src[i], 0, __ATOMIC_ACQ_REL);
        newly_set += __builtin_popcountl(bits & ~dst[i]);
        dst[i] |= bits;
    }
    return newly_set;
}
