/*
 * Bitmaps as arrays of unsigned long, bit i in word i / BITS_PER_LONG at
 * position i % BITS_PER_LONG -- the layout QEMU writes raw into mapped-ram
 * files (host word size, host byte order).
 */
#ifndef UTIL_BITMAP_H
#define UTIL_BITMAP_H

#include <glib.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#define BITS_PER_LONG (sizeof(unsigned long) * CHAR_BIT)
#define BITS_TO_LONGS(nr) (((nr) + BITS_PER_LONG - 1) / BITS_PER_LONG)
#define BIT_WORD(nr) ((nr) / BITS_PER_LONG)
#define BIT_MASK(nr) (1UL << ((nr) % BITS_PER_LONG))

/* Zeroed bitmap of nbits bits; free with g_free. */
unsigned long *bitmap_new(size_t nbits);
size_t bitmap_size_bytes(size_t nbits);        /* BITS_TO_LONGS(n) * sizeof(long) */

static inline void set_bit(size_t nr, unsigned long *addr)
{ addr[BIT_WORD(nr)] |= BIT_MASK(nr); }
static inline void clear_bit(size_t nr, unsigned long *addr)
{ addr[BIT_WORD(nr)] &= ~BIT_MASK(nr); }
static inline bool test_bit(size_t nr, const unsigned long *addr)
{ return (addr[BIT_WORD(nr)] & BIT_MASK(nr)) != 0; }
static inline void set_bit_atomic(size_t nr, unsigned long *addr)
{ __atomic_fetch_or(&addr[BIT_WORD(nr)], BIT_MASK(nr), __ATOMIC_RELAXED); }
/*
 * Set the bit after every earlier store of this thread: whoever takes it
 * with an acquire (bitmap_harvest_atomic) sees those stores too.  A dirty
 * log needs it: on a weakly ordered host (arm64, POWER) a relaxed bit may
 * become visible before the data, and a harvest would then send the old
 * page and clear the bit that said it changed.  On x86 it is the same
 * instruction as set_bit_atomic.
 */
static inline void set_bit_release(size_t nr, unsigned long *addr)
{ __atomic_fetch_or(&addr[BIT_WORD(nr)], BIT_MASK(nr), __ATOMIC_RELEASE); }
static inline void clear_bit_atomic(size_t nr, unsigned long *addr)
{ __atomic_fetch_and(&addr[BIT_WORD(nr)], ~BIT_MASK(nr), __ATOMIC_RELAXED); }
static inline bool test_bit_atomic(size_t nr, const unsigned long *addr)
{ return (__atomic_load_n(&addr[BIT_WORD(nr)], __ATOMIC_RELAXED) & BIT_MASK(nr)) != 0; }
/* Set the bit; whether it was set before (one of several threads wins it). */
static inline bool test_and_set_bit_atomic(size_t nr, unsigned long *addr)
{ return (__atomic_fetch_or(&addr[BIT_WORD(nr)], BIT_MASK(nr), __ATOMIC_RELAXED) & BIT_MASK(nr)) != 0; }

/* First set / clear bit at index >= offset and < size; size if none. */
size_t find_next_bit(const unsigned long *addr, size_t size, size_t offset);
size_t find_next_zero_bit(const unsigned long *addr, size_t size, size_t offset);
size_t bitmap_count_one(const unsigned long *addr, size_t nbits);
void bitmap_set_range(unsigned long *addr, size_t start, size_t nr);
void bitmap_clear_range(unsigned long *addr, size_t start, size_t nr);

/*
 * Atomically move the bits of src (words [0, nwords)) into dst with OR,
 * leaving src zero.  Used to harvest a dirty log that vCPUs keep setting.
 * Returns the number of bits newly set in dst.
 */
size_t bitmap_harvest_atomic(unsigned long *dst, unsigned long *src, size_t nwords);

#endif
