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
 * Load: the VM's loader (handlers) and the mapram tool share one record
 * parser, ram_parse_section(), which calls a RamSink for every block and
 * page.  The VM sink places page data straight into guest memory; the
 * tool's sinks count pages or rewrite them into a mapped-ram file.
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
#include "util/stat64.h"

#define RAM_SAVE_FLAG_ZERO          0x002
#define RAM_SAVE_FLAG_MEM_SIZE      0x004
#define RAM_SAVE_FLAG_PAGE          0x008
#define RAM_SAVE_FLAG_EOS           0x010
#define RAM_SAVE_FLAG_CONTINUE      0x020
#define RAM_SAVE_FLAG_XBZRLE        0x040
#define RAM_SAVE_FLAG_HOOK          0x080
#define RAM_SAVE_FLAG_MULTIFD_FLUSH 0x200

#define RAM_SECTION_VERSION 4
#define RAM_PAGE_SIZE 4096ULL

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
} RamStats;

typedef struct RamSaveParams {
    bool mapped_ram;
    bool multifd;
    unsigned channels;            /* page channels when mapped_ram */
    bool direct_io;
    unsigned queue_depth;
    ZeroPageDetection zero;
    const char *path;             /* file to reopen for page channels */
    IOChannel *main_ioc;          /* for the bitmap pwrites */
    RamStats *stats;              /* the caller's; outlives the save */
    /* Rate limit: returns true when the current window's budget is used up. */
    bool (*rate_limited)(void *opaque, uint64_t bytes_just_sent);
    void *rate_opaque;
} RamSaveParams;

typedef struct RamLoadParams {
    bool mapped_ram;
    unsigned channels;
    bool direct_io;
    unsigned queue_depth;
    const char *path;             /* file to reopen for page channels */
} RamLoadParams;

typedef struct RamState RamState;

/* Registers the "ram" handlers (section "ram", instance 0, version 4) in r. */
RamState *ram_state_new(SaveVMRegistry *r, const MigrationHostOps *host, void *host_opaque);
void ram_state_free(RamState *ram);
void ram_save_configure(RamState *ram, const RamSaveParams *p);
void ram_load_configure(RamState *ram, const RamLoadParams *p);
/* Sum of the host's block lengths (query-migrate's "total"). */
uint64_t ram_state_total(RamState *ram);

/* ---- shared record parser ---- */
typedef struct RamSink {
    /* START: a block of the list.  hdr is non-NULL for mapped-ram. */
    bool (*block)(void *opaque, QEMUFile *f, unsigned idx, const char *idstr,
                  uint64_t used_length, const MappedRamHeader *hdr, GError **errp);
    /* Where a PAGE's 4096 bytes go (guest memory or a scratch buffer). */
    uint8_t *(*page_dest)(void *opaque, unsigned idx, uint64_t offset, GError **errp);
    /* After a PAGE's data was read (zero = false) or a ZERO record (zero = true). */
    bool (*page)(void *opaque, unsigned idx, uint64_t offset, bool zero, GError **errp);
} RamSink;

typedef struct RamParseState {
    bool mapped_ram;
    int last_block;               /* for CONTINUE; -1 = none */
    GPtrArray *block_names;       /* char *, index = idx */
    GArray *block_lengths;        /* uint64_t */
    uint64_t total;               /* MEM_SIZE total */
} RamParseState;

void ram_parse_state_init(RamParseState *s, bool mapped_ram);
void ram_parse_state_clear(RamParseState *s);
/* Parse one START/PART/END body up to and including its EOS. */
bool ram_parse_section(QEMUFile *f, uint8_t section_type, RamParseState *s,
                       const RamSink *sink, void *opaque, GError **errp);

#endif
