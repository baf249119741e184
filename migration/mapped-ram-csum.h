/*
 * The checksum table of a mapped-ram file: a mapram extension that QEMU
 * never reads (docs/file-format.md §2.5 has every byte).
 *
 * Each RAM block's pages are cut into runs of MRC_RUN_PAGES pages (the
 * last run of a block may be shorter).  The checksum of a run is the
 * XXH3-64 (seed 0) of the little-endian XXH3-64 of each of its pages, in
 * order, a page whose bitmap bit is clear counting as 4096 zero bytes
 * (MRC_ZERO_PAGE_HASH): what the run holds once loaded.  Two levels so
 * that the page hashes can be computed wherever a page is written or read
 * (the page-channel workers, in parallel, while the data is in cache),
 * in any order and any batching, and combined later at a cost of 1/512 of
 * the data; 64 pages so that the table stays at 32 KiB per GiB of RAM.
 *
 * The table is written after the vmdesc, where a QEMU load has stopped
 * reading, and ends with a fixed-size trailer so that a loader finds it
 * from the end of the file before it reads any page:
 *
 *   writer:  MrcTable *t = mrc_table_new();
 *            MrcBlock *b = mrc_table_add_block(t, idstr, used_length, pages_offset);
 *            mrc_block_fill(b, bmap, page_hashes);       per block
 *            mrc_table_put(f, t);                         after the vmdesc
 *   loader:  mrc_table_read_trailer(ioc, &t, errp);      t NULL: no table
 *            mrc_table_match(t, idstr, used_length, hdr, &b, errp);
 *            ... page hashes of what was read ...
 *            mrc_check_runs(b, bmap, hashes, first, n, errp);
 *
 * XXH3 is libxxhash's (Debian's libxxhash-dev); this file is its only user.
 */
#ifndef MIGRATION_MAPPED_RAM_CSUM_H
#define MIGRATION_MAPPED_RAM_CSUM_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>
#include "io/channel.h"
#include "mapped-ram.h"
#include "qemu-file.h"

#define MRC_MAGIC          "MRAMCSUM"
#define MRC_TRAILER_MAGIC  "MRAMCEND"
#define MRC_VERSION        1
#define MRC_HEADER_SIZE    32
#define MRC_TRAILER_SIZE   24
#define MRC_RUN_PAGES      64
#define MRC_PAGE_SIZE      4096
/* XXH3-64 of 4096 zero bytes (test-mapped-ram-csum checks it). */
#define MRC_ZERO_PAGE_HASH 0x93d76fe148c689baULL
/* A table larger than this is refused as implausible (1 TiB of RAM needs 32 MiB). */
#define MRC_MAX_TABLE      (1024ULL * 1024 * 1024)

typedef struct MrcBlock {
    char *idstr;
    uint64_t used_length;
    uint64_t pages_offset;
    uint64_t nruns;
    uint64_t *sums;               /* nruns checksums */
} MrcBlock;

typedef struct MrcTable {
    GPtrArray *blocks;            /* MrcBlock *, in the file's block order */
    uint64_t offset;              /* decoded: absolute offset of its first byte */
    uint64_t length;              /* decoded: bytes, header to trailer */
} MrcTable;

MrcTable *mrc_table_new(void);
void mrc_table_free(MrcTable *t);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(MrcTable, mrc_table_free)
/* A block with room for its checksums (all zero); owned by t. */
MrcBlock *mrc_table_add_block(MrcTable *t, const char *idstr, uint64_t used_length,
                              uint64_t pages_offset);

uint64_t mrc_runs(uint64_t npages);
/*
 * Ask for every cache line of a page that is read next.  The hardware
 * prefetchers do not cross a 4 KiB page, so a loop that checks or hashes
 * page after page stalls on memory at the start of each one unless the
 * next page is asked for while this one is worked on (a cold XXH3 pass
 * over scattered pages ran ~2x faster here with it, over contiguous ones
 * ~8 % faster).
 */
static inline void mrc_prefetch_page(const void *page)
{
    for (size_t off = 0; off < MRC_PAGE_SIZE; off += 64) {
        __builtin_prefetch((const uint8_t *)page + off, 0, 3);
    }
}
/* XXH3-64 of one 4096-byte page. */
uint64_t mrc_page_hash(const void *page);
/* hashes[i] = mrc_page_hash(buf + i * 4096), i < npages; page i + 1 prefetched. */
void mrc_hash_pages(const void *buf, uint64_t npages, uint64_t *hashes);
/*
 * The checksum of pages [first, first + n) of a block: hashes[i] is the
 * hash of page first + i, used only where bmap has the page's bit set.
 */
uint64_t mrc_run_sum(const uint64_t *hashes, const unsigned long *bmap, uint64_t first,
                     uint64_t n);
/* Every run of b from the block's bitmap and its page hashes (indexed by page). */
void mrc_block_fill(MrcBlock *b, const unsigned long *bmap, const uint64_t *hashes);
/*
 * Check the runs of pages [first, first + n): first is a multiple of
 * MRC_RUN_PAGES, n reaches a run boundary or the block's end; hashes[i]
 * is the hash of page first + i.  The error names the block, the run's
 * offset in it and in the file, and both checksums.
 */
bool mrc_check_runs(const MrcBlock *b, const unsigned long *bmap, const uint64_t *hashes,
                    uint64_t first, uint64_t n, GError **errp);

/* The table's bytes, trailer included, for a table starting at offset. */
GByteArray *mrc_table_encode(const MrcTable *t, uint64_t offset);
/* Put the table at f's position (after the vmdesc). */
void mrc_table_put(QEMUFile *f, const MrcTable *t);
/*
 * The first checks of mrc_table_decode, on the MRC_HEADER_SIZE bytes of
 * the header alone (magic, version, a length of len): a reader makes
 * them before it reads the rest, which a damaged header may claim is
 * up to MRC_MAX_TABLE bytes.
 */
bool mrc_table_check_header(const uint8_t *hdr, uint64_t len, uint64_t offset, GError **errp);
/* Parse len bytes (the whole table) that start at absolute offset. */
MrcTable *mrc_table_decode(const uint8_t *buf, size_t len, uint64_t offset, GError **errp);
/* Does buf (n bytes at the end of a stream) start with a table's magic? */
bool mrc_is_table(const uint8_t *buf, size_t n);
/*
 * Or, shorter than the magic (1..7 bytes), is it the magic's start: a
 * table cut short within its first bytes?
 */
bool mrc_is_table_start(const uint8_t *buf, size_t n);
/*
 * Find the table from the end of the file behind ioc: *out is NULL
 * without a trailer (a file with no table); an error for a trailer
 * whose table does not parse.
 */
bool mrc_table_read_trailer(IOChannel *ioc, MrcTable **out, GError **errp);
/*
 * After the block list, each of whose blocks matched its entry: a table
 * that lists more blocks than the file has (one dropped from the list
 * would keep what the destination held) is refused.
 */
bool mrc_table_check_count(const MrcTable *t, guint file_blocks, GError **errp);
/*
 * For a loader that found no table (mrc_table_read_trailer gave NULL),
 * at the stream's EOF byte (eof_end: the offset just after it): false,
 * naming the table, when a table starts right after the vmdesc that
 * follows.  The trailer at the file's end is how a loader finds the
 * table before any page is read; a file cut short inside the table or
 * with bytes appended after it (a copy padded to a block size) hides it,
 * and its pages would load unchecked.  Anything else after the vmdesc is
 * ignored, as QEMU does.
 */
bool mrc_table_check_hidden(IOChannel *ioc, uint64_t eof_end, GError **errp);
/*
 * The table's entry for a block of the file, checked against its length
 * and its MappedRamHeader.
 */
bool mrc_table_match(const MrcTable *t, const char *idstr, uint64_t used_length,
                     const MappedRamHeader *hdr, const MrcBlock **out, GError **errp);

/*
 * A loader's side of the table, in the order a load meets the file: its
 * first mapped-ram block finds the table from the file's end (before any
 * page is read), every block takes its entry, the end of the block list
 * checks the count, and the stream's EOF byte looks for a table that its
 * trailer did not lead to.  mapram-vm's load, `mapram load` and `mapram
 * serve` each hold one; it belongs to the thread that parses the stream.
 */
typedef struct MrcLoader {
    bool enabled;                 /* checks wanted: set before the first block */
    bool looked;                  /* the file's end was searched */
    bool found;                   /* and held a table (in table, or taken) */
    MrcTable *table;              /* or NULL: none, checks off, or taken */
} MrcLoader;

/*
 * A mapped-ram block of the file, after its header: *out is its entry,
 * or NULL when there is no table.
 */
bool mrc_loader_block(MrcLoader *l, IOChannel *ioc, const char *idstr, uint64_t used_length,
                      const MappedRamHeader *hdr, const MrcBlock **out, GError **errp);
/* After the block list (the RAM START section) of file_blocks blocks. */
bool mrc_loader_blocks_end(const MrcLoader *l, guint file_blocks, GError **errp);
/* At the stream's EOF byte, eof_end the offset just after it. */
bool mrc_loader_eof(const MrcLoader *l, IOChannel *ioc, uint64_t eof_end, GError **errp);
/* The table, to a reader that checks pages from now on; the loader keeps found. */
MrcTable *mrc_loader_take(MrcLoader *l);
void mrc_loader_clear(MrcLoader *l);

#endif
