/*
 * Stat64: a 64-bit counter that any thread may add to or read.
 *
 * The type says how a field is shared: a Stat64 is only ever touched
 * through these helpers (relaxed atomics), so a reader on another thread
 * (query-migrate on the main thread, say) sees a value that moves as the
 * work does, never a torn one.  Counters give no ordering: whoever needs
 * "all of this work is done" waits for it another way.
 */
#ifndef UTIL_STAT64_H
#define UTIL_STAT64_H

#include <stdint.h>

typedef struct Stat64 {
    uint64_t value;
} Stat64;

static inline void stat64_add(Stat64 *s, uint64_t n)
{
    __atomic_fetch_add(&s->value, n, __ATOMIC_RELAXED);
}

static inline void stat64_sub(Stat64 *s, uint64_t n)
{
    __atomic_fetch_sub(&s->value, n, __ATOMIC_RELAXED);
}

static inline uint64_t stat64_get(const Stat64 *s)
{
    return __atomic_load_n(&s->value, __ATOMIC_RELAXED);
}

static inline void stat64_set(Stat64 *s, uint64_t v)
{
    __atomic_store_n(&s->value, v, __ATOMIC_RELAXED);
}

#endif
