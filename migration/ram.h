/*
 * The "ram" section (idstr "ram", instance 0, version 4): reference §2-§4.
 *
 * One RamState per Migration (ram_state_new() registers the handlers).
 * Save: ram_save_configure() before the migration thread starts gives the
 * RAM module its parameters for that migration; the savevm handlers then
 * run setup (block list, mapped-ram headers), iterate (dirty pages, one
 * pass at a time) and complete (last pages, bitmaps, EOS), all on the
 * migration thread.  The counters go to the caller's RamStats as the work
 * is done, so the QMP side reads them without touching this module.
 * Load: ram_load_configure() before the incoming thread starts.
 *
 * The section's bytes are ram-codec.c's: this module encodes through a
 * RamEncoder and loads through the decoder with a RamSink that places page
 * data straight into guest memory (the mapram tool plugs its own sinks into
 * the same decoder).
 */
#ifndef MIGRATION_RAM_H
#define MIGRATION_RAM_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>
#include "migration/host.h"
#include "qemu-file.h"
#include "savevm.h"
#include "mapped-ram.h"
#include "page-channels.h"
#include "ram-codec.h"
#include "multifd.h"
#include "util/stat64.h"

typedef enum {
    ZERO_PAGE_DETECTION_NONE,
    ZERO_PAGE_DETECTION_LEGACY,
    ZERO_PAGE_DETECTION_MULTIFD,
} ZeroPageDetection;

/* Counters of one save; any thread reads them. */
typedef struct RamStats {
    /*
     * Pages sent, by the page channels' workers or the stream writer; bytes
     * only counts page data written beside the stream (mapped-ram): the
     * stream's page records are in the stream's own byte count.
     */
    PageStats pages;
    Stat64 dirty_sync_count;      /* passes: dirty-log harvests */
    Stat64 remaining;             /* bytes still dirty, not yet handed to a writer */
    Stat64 dirty_pages_rate;      /* pages dirtied per second over the last >= 1 s of syncs */
    Stat64 dirty_bytes_last_sync; /* bytes dirty right after the last sync (QEMU's name) */
} RamStats;

typedef struct RamSaveParams {
    bool mapped_ram;
    bool multifd;
    unsigned channels;            /* page channels when mapped_ram */
    bool direct_io;
    unsigned queue_depth;
    unsigned threads;             /* page channel workers at least; 0 = automatic */
    ZeroPageDetection zero;
    bool fsync;                   /* mapped-ram: page fds to the disk before the bitmaps */
    const char *path;             /* file to reopen for page channels */
    IOChannel *main_ioc;          /* for the bitmap pwrites */
    bool checksums;               /* mapped-ram: the checksum table after the vmdesc */
    /* Multifd over sockets: the caller's channels (non-zero pages go there) and wire */
    MultiFDSend *multifd_send;
    MultiFDWire wire;
    RamStats *stats;              /* the caller's; outlives the save */
    /*
     * Rate limit, asked every 256 KiB of pages handed on (page channels:
     * each batch): true when the current window's budget is used up by
     * the bytes written and the pages still queued.
     */
    bool (*rate_limited)(void *opaque);
    void *rate_opaque;
} RamSaveParams;

typedef struct RamLoadParams {
    bool mapped_ram;
    unsigned channels;
    bool direct_io;
    unsigned queue_depth;
    unsigned threads;             /* page channel workers at least; 0 = automatic */
    const char *path;             /* file to reopen for page channels */
    bool checksums;               /* mapped-ram: check pages against the file's table, if any */
    bool shared;                  /* mapped-ram: map the file's pages (mapped-ram-share.h) */
    /*
     * mapped-ram on demand (postcopy.h), the caller's, or NULL: each block
     * is registered with it instead of read, and at the end of the block
     * list it takes the page channels and the checksum table.
     */
    struct PostcopyLoad *postcopy;
    MultiFDRecv *multifd_recv;    /* multifd over sockets: the caller's channels, or NULL */
} RamLoadParams;

typedef struct RamState RamState;

/* Registers the "ram" handlers (section "ram", instance 0, version 4) in r. */
RamState *ram_state_new(SaveVMRegistry *r, const MigrationHostOps *host, void *host_opaque);
void ram_state_free(RamState *ram);
void ram_save_configure(RamState *ram, const RamSaveParams *p);
void ram_load_configure(RamState *ram, const RamLoadParams *p);
/*
 * The host's block named idstr (a MultiFDFindBlock: the multifd receive
 * threads call it; the host's block list does not change during a load).
 */
bool ram_find_block(void *ram_state, const char *idstr, uint8_t **host, uint64_t *used_length);
/* Sum of the host's block lengths (query-migrate's "total"). */
uint64_t ram_state_total(RamState *ram);

#endif
