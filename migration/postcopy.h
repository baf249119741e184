/*
 * On-demand restore from a mapped-ram file (postcopy-ram on the
 * destination of a file: migration): guest RAM is registered with
 * userfaultfd, the guest runs before any page data is read, a fault
 * thread serves the pages it touches from their slots, and the load's
 * page channels stream every other set run behind it.
 *
 *   incoming thread                       (migration_incoming_load)
 *     pl = postcopy_load_new(path, stats, errp)
 *     ram load, per block:  postcopy_load_add_block()   bitmap read; RAM
 *                           emptied and registered (no page data read)
 *     end of the block list: postcopy_load_start(pl, cfg, csum)  fault thread
 *     device state, EOF; the host resumes the guest (or leaves it paused)
 *     postcopy_load_stream(pl, &stop, errp)   opens the page channels,
 *                                             background, then unregister
 * A shared flock() on the file (mapped_ram_lock_reader) keeps mapram's
 * saves out of it from postcopy_load_new() until every page is in.
 *   main thread, at the end of the Migration:
 *     postcopy_load_free(pl)      stops the fault thread, closes userfaultfd
 *
 * A page is never placed as zero unless its bit is clear: a failed read
 * leaves the faulting thread blocked (the guest is paused by the caller),
 * and the error names the block and the page's offset in it.
 *
 * Threads: everything but the counters and the error is immutable once
 * postcopy_load_start() returned; the fault thread and the streaming
 * (incoming) thread place pages with UFFDIO_COPY, which refuses a page
 * that is already there (EEXIST), so a page loaded twice is loaded once.
 */
#ifndef MIGRATION_POSTCOPY_H
#define MIGRATION_POSTCOPY_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>
#include "mapped-ram-csum.h"
#include "page-channels.h"
#include "util/stat64.h"

/* What an on-demand load did, counted as it goes: any thread reads them. */
typedef struct PostcopyStats {
    Stat64 total;                 /* bytes of page data in the file (set bits) */
    Stat64 remaining;             /* of those, bytes not yet in guest RAM */
    Stat64 requests;              /* guest faults served */
    Stat64 demand_pages;          /* data pages placed by the fault thread */
    Stat64 background_pages;      /* data pages placed by the background stream */
} PostcopyStats;

typedef struct PostcopyLoad PostcopyLoad;

/*
 * Once the load failed, a thread that faults on a missing page waits for
 * good (never a wrong page): the fault thread calls this for each such
 * thread, with its tid (0 where the kernel does not give it: Linux <
 * 4.14) and the load's error message.
 */
typedef void (*PostcopyBlockedFn)(void *opaque, int tid, const char *why);

/*
 * Opens userfaultfd (QEMU's texts: "Userfaultfd not available: %s") and
 * the fault thread's own fd on path.  stats: the caller's, outlives pl.
 * blocked (or NULL): see PostcopyBlockedFn; called on the fault thread.
 */
PostcopyLoad *postcopy_load_new(const char *path, PostcopyStats *stats,
                                PostcopyBlockedFn blocked, void *blocked_opaque,
                                GError **errp);
/*
 * One RAM block: its memory is emptied (it must hold no page the kernel
 * could not drop: "...has pages present..."; private_anon: the host's
 * MigrationRAMBlock.private_anon, memory that always can) and registered
 * for missing faults.  Takes bmap (the file's bitmap); sums (or NULL) lives in the
 * table handed to postcopy_load_start().
 */
bool postcopy_load_add_block(PostcopyLoad *pl, const char *idstr, uint8_t *host,
                             uint64_t used_length, bool private_anon, uint64_t pages_offset,
                             unsigned long *bmap, const MrcBlock *sums, GError **errp);
/*
 * The counters the load's page channels must write to once pl takes them
 * (they outlive the RAM load that creates the channels).
 */
PageStats *postcopy_load_page_stats(PostcopyLoad *pl);
/*
 * Starts the fault thread; takes csum (or NULL).  cfg: the background's
 * page channels, which postcopy_load_stream() opens once the guest runs
 * (copied; cfg->stats must be postcopy_load_page_stats(pl)).
 */
void postcopy_load_start(PostcopyLoad *pl, const PageChannelsConfig *cfg, MrcTable *csum);
/*
 * Streams every set run not yet loaded, in file order, then unregisters
 * guest RAM.  Returns false with the first error of either thread (the
 * guest must then be paused) or when *stop became non-zero.
 */
bool postcopy_load_stream(PostcopyLoad *pl, const int *stop, GError **errp);
/* NULL is fine. */
void postcopy_load_free(PostcopyLoad *pl);

#endif
