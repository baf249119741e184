/*
 * Small string and number helpers with QEMU's semantics.
 */
#ifndef UTIL_CUTILS_H
#define UTIL_CUTILS_H

#include <glib.h>
#include <stdint.h>
#include <stdbool.h>

/*
 * qemu_strtosz: decimal with optional fraction and optional suffix
 * B/K/M/G/T/P/E (case-insensitive, binary multiples, default bytes), or
 * hex "0x..." without suffix or fraction.  The whole string must parse
 * (end == NULL) or *end is set past the number.  Returns 0 or -errno
 * (-EINVAL malformed, -ERANGE overflow).
 */
int qemu_strtosz(const char *nptr, const char **end, uint64_t *result);
/* QEMU's hint after "Parameter '...' expects a non-negative number below 2^64" */
#define QEMU_SIZE_SUFFIX_HINT \
    "\nOptional suffix k, M, G, T, P or E means kilo-, mega-, giga-, tera-, peta-\n" \
    "and exabytes, respectively."
/* Same, but the default unit is MiB (for -m). */
int qemu_strtosz_MiB(const char *nptr, const char **end, uint64_t *result);

/* Human-readable size ("1.50 GiB") into a newly allocated string. */
char *size_to_str(uint64_t val);

#define ROUND_UP(n, d)   ((((n) + (d) - 1) / (d)) * (d))
#define ROUND_DOWN(n, d) (((n) / (d)) * (d))
#define DIV_ROUND_UP(n, d) (((n) + (d) - 1) / (d))
#define QEMU_IS_ALIGNED(n, m) (((n) % (m)) == 0)

#define KiB (1ULL << 10)
#define MiB (1ULL << 20)
#define GiB (1ULL << 30)

#endif
