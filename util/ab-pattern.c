/*
 * The ab guest's memory invariant (see include/util/ab-pattern.h): one
 * pass over the tracked bytes, stopping at the first page that breaks it.
 */
#include <inttypes.h>

#include "util/ab-pattern.h"
#include "util/error.h"

static bool whole_pages(uint64_t addr, uint64_t len, GError **errp)
{
    if (len == 0 || addr % AB_PATTERN_PAGE || len % AB_PATTERN_PAGE) {
        error_setg(errp, "ab pattern: [0x%" PRIx64 ", 0x%" PRIx64 ") is not "
                   "a range of whole %llu-byte pages", addr, addr + len,
                   AB_PATTERN_PAGE);
        return false;
    }
    return true;
}

bool ab_pattern_check(const uint8_t *mem, uint64_t addr, uint64_t len,
                      GError **errp)
{
    uint64_t edge = 0;          /* guest address of the step down, if any */
    uint8_t last;

    if (!whole_pages(addr, len, errp)) {
        return false;
    }
    last = mem[0];
    for (uint64_t off = AB_PATTERN_PAGE; off < len; off += AB_PATTERN_PAGE) {
        uint8_t b = mem[off];

        if (b == last) {
            continue;
        }
        if ((uint8_t)(b + 1) != last) {
            error_setg(errp, "ab pattern broken at guest address 0x%" PRIx64
                       ": 0x%02x after 0x%02x", addr + off, b, last);
            return false;
        }
        if (edge) {
            error_setg(errp, "ab pattern broken at guest address 0x%" PRIx64
                       ": 0x%02x after 0x%02x, a second step down (the "
                       "first is at 0x%" PRIx64 ")", addr + off, b, last,
                       edge);
            return false;
        }
        edge = addr + off;      /* where the guest's pass was stopped */
        last = b;
    }
    return true;
}
