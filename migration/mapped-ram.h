/*
 * mapped-ram file layout (reference §3): per RAM block a 28-byte
 * big-endian MappedRamHeader, a host-layout bitmap right after it, and a
 * page region at the next 1 MiB boundary, one slot per target page.
 *
 * Offsets are absolute channel offsets (they include a file: ",offset=").
 * The bitmap is stored raw as unsigned long words (little-endian 64-bit
 * on the hosts we build for): page i is bit i%8 of byte i/8.
 */
#ifndef MIGRATION_MAPPED_RAM_H
#define MIGRATION_MAPPED_RAM_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include "qemu-file.h"

#define MAPPED_RAM_HDR_VERSION            1
#define MAPPED_RAM_HDR_SIZE               28
/* 1 MiB: any plausible O_DIRECT block size, and the file may move between hosts. */
#define MAPPED_RAM_FILE_OFFSET_ALIGNMENT  (1024 * 1024)
#define MAPPED_RAM_LOAD_BUF_SIZE          (1024 * 1024)

typedef struct MappedRamHeader {
    uint32_t version;
    uint64_t page_size;
    uint64_t bitmap_offset;
    uint64_t pages_offset;
} MappedRamHeader;

void mapped_ram_header_encode(const MappedRamHeader *h, uint8_t out[MAPPED_RAM_HDR_SIZE]);
void mapped_ram_header_decode(const uint8_t in[MAPPED_RAM_HDR_SIZE], MappedRamHeader *h);

/* Bytes of the on-file bitmap for num_pages pages (whole 8-byte words). */
uint64_t mapped_ram_bitmap_size(uint64_t num_pages);

/*
 * Writer: at the current stream position (right after the block's generic
 * fields), compute the layout, put the header and move the stream to
 * pages_offset + used_length.  A regular file is also extended to there
 * (ftruncate; nothing is allocated), so that the page writes land inside
 * it: the headers reach the file through the page cache, which moves its
 * size but not its on-disk size, and ext4 runs every O_DIRECT write that
 * ends past the on-disk size as an extending write, synchronously under
 * the exclusive inode lock (QEMU stream with every third page zero, 262144
 * writes of 8 KiB between holes: 4.5 s -> 3.4 s).  That part is best
 * effort: a failing ftruncate only keeps the slower path.
 */
bool mapped_ram_put_block(QEMUFile *f, uint64_t used_length, uint64_t page_size,
                          MappedRamHeader *out, GError **errp);

/*
 * Reader: get and validate the header of block idstr (used_length bytes)
 * against a file of file_size bytes (0 = unknown).  Texts follow QEMU where
 * QEMU has one.
 */
bool mapped_ram_get_block(QEMUFile *f, const char *idstr, uint64_t used_length,
                          uint64_t file_size, MappedRamHeader *out, GError **errp);

/* Read the block's bitmap into a new unsigned long array (num_pages bits). */
unsigned long *mapped_ram_read_bitmap(IOChannel *ioc, const char *idstr,
                                      const MappedRamHeader *h, uint64_t num_pages,
                                      GError **errp);
bool mapped_ram_write_bitmap(IOChannel *ioc, const MappedRamHeader *h,
                             const unsigned long *bmap, uint64_t num_pages, GError **errp);

/*
 * The set runs of a block's bitmap, for whoever reads the pages back (the
 * VM's load, `mapram load`): every run [start, end) begins and ends on a
 * set page and holds at most max_run pages (>= 1).  With max_gap > 0 a
 * run reads through clear stretches of at most max_gap pages between set
 * pages, so one I/O replaces several; its gap_pages counts them, and
 * mapped_ram_run_next_gap() lists them, since a clear page's slot holds a
 * hole or stale data, never the page (the reader must make it zero).
 * Only pages of [first, last) are looked at: bits outside are ignored.
 *
 *   MappedRamRuns it;
 *   MappedRamRun r;
 *   mapped_ram_runs_init(&it, bmap, first, last, max_gap, max_run);
 *   while (mapped_ram_runs_next(&it, &r)) {
 *       read pages [r.start, r.end)
 *       uint64_t pos = r.start, gs, ge;
 *       while (r.gap_pages && mapped_ram_run_next_gap(&it, &r, &pos, &gs, &ge)) {
 *           pages [gs, ge) are clear
 *       }
 *   }
 */
typedef struct MappedRamRuns {
    const unsigned long *bmap;    /* borrowed: outlives the iteration */
    uint64_t pos;                 /* first page not yet looked at */
    uint64_t last;                /* end of the range, exclusive */
    uint64_t max_gap;
    uint64_t max_run;
} MappedRamRuns;

typedef struct MappedRamRun {
    uint64_t start, end;          /* pages [start, end); start and end - 1 are set */
    uint64_t gap_pages;           /* clear pages inside, read through */
} MappedRamRun;

void mapped_ram_runs_init(MappedRamRuns *it, const unsigned long *bmap, uint64_t first,
                          uint64_t last, uint64_t max_gap, uint64_t max_run);
/* The next run, or false when the range has no more set pages. */
bool mapped_ram_runs_next(MappedRamRuns *it, MappedRamRun *run);
/*
 * The next clear stretch [*gap_start, *gap_end) of run at or after *pos
 * (start *pos at run->start); false when there is none.
 */
bool mapped_ram_run_next_gap(const MappedRamRuns *it, const MappedRamRun *run, uint64_t *pos,
                             uint64_t *gap_start, uint64_t *gap_end);

#endif
