/*
 * The ab guest's memory invariant, checked in one place for the qtests,
 * `mapram demo` and the QEMU interop tests.
 *
 * The ab guest (mapram-vm's `-guest ab` in system/guest.c, and the boot
 * sector tests/interop/ab-boot.S that QEMU runs; both follow QEMU's
 * a-b-bootblock) zeroes the first byte of every 4 KiB page of
 * [1 MiB, 100 MiB), then increments those bytes forever in ascending page
 * order.  In a copy of memory taken while its vCPU is stopped all those
 * bytes are equal, except that a prefix of the range may be one step
 * ahead: going up the pages, the byte drops by exactly one (modulo 256)
 * at most once.  A save or restore that loses, misplaces or zeroes a page
 * breaks that, and equal copies on both sides then mean something.
 *
 *   g_autofree uint8_t *mem = <guest memory [AB_PATTERN_START, AB_PATTERN_END)>;
 *   g_autoptr(GError) err = NULL;
 *
 *   if (!ab_pattern_check(mem, AB_PATTERN_START,
 *                         AB_PATTERN_END - AB_PATTERN_START, &err)) {
 *       ... err->message names the first page that breaks it
 *   }
 */
#ifndef UTIL_AB_PATTERN_H
#define UTIL_AB_PATTERN_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#define AB_PATTERN_START (1ULL << 20)       /* first tracked page */
#define AB_PATTERN_END   (100ULL << 20)     /* exclusive */
#define AB_PATTERN_PAGE  4096ULL            /* one tracked byte per page */

/*
 * Check the invariant on @mem, a copy of @len bytes of guest memory that
 * starts at guest-physical address @addr (@addr and @len whole pages; the
 * caller picks the range, usually [AB_PATTERN_START, AB_PATTERN_END) or
 * less for a smaller guest).  Only the first byte of each page is read.
 * Returns true when it holds; otherwise sets @errp, naming the guest
 * address of the first page that breaks it and the bytes seen:
 *   "ab pattern broken at guest address 0x1402000: 0x05 after 0x07"
 *   "ab pattern broken at guest address 0x2000000: 0x06 after 0x07, a
 *    second step down (the first is at 0x1005000)"
 * Callers add whose memory it was with g_prefix_error.
 */
bool ab_pattern_check(const uint8_t *mem, uint64_t addr, uint64_t len,
                      GError **errp);

#endif
