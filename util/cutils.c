/*
 * Size parsing with QEMU's qemu_strtosz() semantics, because sizes and
 * offsets arrive in URIs ("file:x,offset=0x1000") and on command lines
 * that must mean the same thing to us and to QEMU:
 *   - the integral part is decimal; "0x..." is hex, then neither a
 *     fraction nor a suffix is allowed ("0x20M" is invalid);
 *   - an optional fraction ("1.5K", "1.k", ".5M"), which needs a scale
 *     other than bytes;
 *   - an optional suffix B/K/M/G/T/P/E, any case, powers of 1024; 'e'
 *     is the exabyte suffix, never an exponent;
 *   - any minus sign is -ERANGE (QEMU >= 8.1), overflow is -ERANGE,
 *     everything else malformed is -EINVAL;
 *   - the result is exact (64.64 fixed point), rounding half up.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util/cutils.h"

static uint64_t suffix_mul(char suffix, uint64_t unit)
{
    const char *suffixes = "BKMGTPE";
    const char *p;
    uint64_t mul = 1;

    if (!suffix) {
        return 0;
    }
    p = strchr(suffixes, g_ascii_toupper(suffix));
    if (!p) {
        return 0;
    }
    for (long i = 0; i < p - suffixes; i++) {
        mul *= unit;
    }
    return mul;
}

/* strtoull that also rejects an empty conversion and flags any sign. */
static int parse_decimal(const char *s, const char **end, uint64_t *val)
{
    char *ep;
    const char *p = s;

    errno = 0;
    *val = strtoull(s, &ep, 10);
    *end = ep;
    if (errno) {
        return -errno;
    }
    if (ep == s) {
        return -EINVAL;
    }
    while (g_ascii_isspace(*p)) {
        p++;
    }
    if (*p == '-') {
        *val = 0;
        return -ERANGE;
    }
    return 0;
}

static int parse_hex(const char *s, const char **end, uint64_t *val)
{
    char *ep;

    errno = 0;
    *val = strtoull(s, &ep, 16);
    *end = ep;
    if (errno) {
        return -errno;
    }
    return ep == s ? -EINVAL : 0;
}

/*
 * Parse the fraction starting at *end (or at nptr when there were no
 * integral digits) into a 0.64 fixed-point value *valf.  An 'e' ends the
 * fraction: strtod would take it as an exponent.
 */
static int parse_fraction(int retval, const char **end, uint64_t *val,
                          uint64_t *valf)
{
    const char *endptr = *end;
    double fraction;
    g_autofree char *copy = NULL;
    char *e, *tail;

    if (retval == 0 && *endptr == '.' && !g_ascii_isdigit(endptr[1])) {
        *end = endptr + 1;          /* "1.k": a dot with no digits */
        return 0;
    }
    copy = g_strdup(endptr);
    e = strpbrk(copy, "eE");
    if (e) {
        *e = '\0';
    }
    errno = 0;
    fraction = strtod(copy, &tail);
    if (tail == copy) {
        return -EINVAL;
    }
    if (!isfinite(fraction)) {
        return -EINVAL;
    }
    *end = endptr + (tail - copy);
    if (signbit(fraction)) {
        return -ERANGE;
    }
    if (fraction >= 1.0) {
        /* Only "0.99999..." rounding up to 1.0 can get here. */
        if (*val == UINT64_MAX) {
            return -ERANGE;
        }
        (*val)++;
    } else if (errno == ERANGE) {
        *valf = 1;                  /* underflow: tiny but non-zero */
    } else {
        *valf = (uint64_t)(fraction * 0x1p64);
        if (*valf == 0 && fraction > 0.0) {
            *valf = 1;
        }
    }
    return 0;
}

/* val.valf * mul, rounded half up; -ERANGE if it does not fit 64 bits. */
static int scale(uint64_t *val, uint64_t valf, uint64_t mul)
{
    unsigned __int128 whole = (unsigned __int128)*val * mul;
    unsigned __int128 part = (unsigned __int128)valf * mul;
    unsigned __int128 sum = whole + (part >> 64) + ((uint64_t)part >> 63);

    if (sum >> 64) {
        return -ERANGE;
    }
    *val = (uint64_t)sum;
    return 0;
}

static int do_strtosz(const char *nptr, const char **end, char default_suffix,
                      uint64_t *result)
{
    const char *endptr = nptr;
    uint64_t val = 0, valf = 0, mul;
    int retval;

    if (!nptr) {
        retval = -EINVAL;
        goto out;
    }
    retval = parse_decimal(nptr, &endptr, &val);
    if (retval == -ERANGE) {
        goto out;
    }
    if (retval == 0 && val == 0 && (*endptr == 'x' || *endptr == 'X')) {
        retval = parse_hex(nptr, &endptr, &val);
        if (retval) {
            goto out;
        }
        if (*endptr == '.' || suffix_mul(*endptr, 1024)) {
            endptr = nptr;
            retval = -EINVAL;
            goto out;
        }
    } else if (*endptr == '.' || (endptr == nptr && strchr(nptr, '.'))) {
        retval = parse_fraction(retval, &endptr, &val, &valf);
    }
    if (retval) {
        goto out;
    }

    mul = suffix_mul(*endptr, 1024);
    if (mul) {
        endptr++;
    } else {
        mul = suffix_mul(default_suffix, 1024);
    }
    if (mul == 1) {
        if (valf) {
            /* A fraction of a byte is meaningless: a scale is required. */
            endptr = nptr;
            retval = -EINVAL;
        }
    } else {
        retval = scale(&val, valf, mul);
    }

out:
    if (end) {
        *end = endptr;
    } else if (nptr && *endptr) {
        retval = -EINVAL;
    }
    if (retval == 0) {
        *result = val;
    } else {
        *result = 0;
        if (end && retval == -EINVAL) {
            *end = nptr;
        }
    }
    return retval;
}

int qemu_strtosz(const char *nptr, const char **end, uint64_t *result)
{
    return do_strtosz(nptr, end, 'B', result);
}

int qemu_strtosz_MiB(const char *nptr, const char **end, uint64_t *result)
{
    return do_strtosz(nptr, end, 'M', result);
}

char *size_to_str(uint64_t val)
{
    static const char *const prefixes[] = { "", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei" };
    int exp;
    int i;

    /*
     * Pick the unit so the number shown stays below 1000 (not 1024):
     * "1000 KiB" reads worse than "0.977 MiB".
     */
    frexp(val / (1000.0 / 1024.0), &exp);
    i = (exp - 1) / 10;
    if (i < 0) {
        i = 0;
    }
    return g_strdup_printf("%0.3g %sB", (double)val / (double)(1ULL << (i * 10)),
                           prefixes[i]);
}
