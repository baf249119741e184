/*
 * Zero detection for page data.  A save of a 4 GiB guest looks at every
 * page, so the common cases are made cheap: a non-zero page usually
 * fails on its first or last word; a zero page is read with wide,
 * unrolled loads and a single branch per 64 bytes.
 */
#include <stdint.h>
#include <string.h>

#include "util/bufferzero.h"
#include "util/thread.h"

/*
 * Not instrumented under ThreadSanitizer: a live save reads guest RAM here
 * while vCPUs write it, by design (their writes are hidden from TSan at
 * the source, guest_write_u8()), so instrumenting these reads finds
 * nothing the page writers' own accesses do not, and it costs a shadow
 * page for every guest page read: a save of a 1 GiB zero guest took 20 s
 * under TSan, 13 s of it the kernel zeroing shadow pages.
 */

#ifdef __SSE2__
#include <emmintrin.h>
#endif

NO_TSAN static bool bytes_are_zero(const unsigned char *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (p[i]) {
            return false;
        }
    }
    return true;
}

NO_TSAN static uint64_t load64(const unsigned char *p)
{
    uint64_t v;

    memcpy(&v, p, sizeof(v));   /* unaligned-safe; compiles to one load */
    return v;
}

#ifdef __SSE2__
/* len >= 64; checks [p, p + len) with 16-byte loads, ends overlapping. */
NO_TSAN static bool wide_is_zero(const unsigned char *p, size_t len)
{
    const unsigned char *end = p + len;
    const __m128i *v = (const __m128i *)((uintptr_t)(p + 15) & ~(uintptr_t)15);
    const __m128i *vend = (const __m128i *)((uintptr_t)end & ~(uintptr_t)15);
    __m128i zero = _mm_setzero_si128();
    __m128i acc;

    /* The unaligned head and tail, covered by one load each. */
    acc = _mm_or_si128(_mm_loadu_si128((const __m128i *)p),
                       _mm_loadu_si128((const __m128i *)(end - 16)));
    if (_mm_movemask_epi8(_mm_cmpeq_epi8(acc, zero)) != 0xffff) {
        return false;
    }
    for (; v + 4 <= vend; v += 4) {
        acc = _mm_or_si128(_mm_or_si128(v[0], v[1]), _mm_or_si128(v[2], v[3]));
        if (_mm_movemask_epi8(_mm_cmpeq_epi8(acc, zero)) != 0xffff) {
            return false;
        }
    }
    for (; v < vend; v++) {
        if (_mm_movemask_epi8(_mm_cmpeq_epi8(*v, zero)) != 0xffff) {
            return false;
        }
    }
    return true;
}
#else
NO_TSAN static bool wide_is_zero(const unsigned char *p, size_t len)
{
    size_t i = 0;

    for (; i + 64 <= len; i += 64) {
        uint64_t acc = load64(p + i) | load64(p + i + 8) | load64(p + i + 16) |
                       load64(p + i + 24) | load64(p + i + 32) |
                       load64(p + i + 40) | load64(p + i + 48) |
                       load64(p + i + 56);
        if (acc) {
            return false;
        }
    }
    for (; i + 8 <= len; i += 8) {
        if (load64(p + i)) {
            return false;
        }
    }
    return bytes_are_zero(p + i, len - i);
}
#endif

NO_TSAN bool buffer_is_zero(const void *buf, size_t len)
{
    const unsigned char *p = buf;

    if (len < 64) {
        if (len < 8) {
            return bytes_are_zero(p, len);
        }
        for (size_t i = 0; i + 8 <= len; i += 8) {
            if (load64(p + i)) {
                return false;
            }
        }
        return !load64(p + len - 8);
    }
    /* Dirty pages tend to have data at either end: fail fast there. */
    if (load64(p) || load64(p + len - 8)) {
        return false;
    }
    return wide_is_zero(p, len);
}
