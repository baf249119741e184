/*
 * The "ram" section's codec (reference §2-§4): every byte of a ram
 * section body, written and read here and nowhere else.
 *
 * A body is a list of records, each a be64 whose page-aligned high bits
 * are an offset and whose low bits are flags: the block list (START
 * only: MEM_SIZE, then per block idstr, used_length and, for mapped-ram,
 * the MappedRamHeader of mapped-ram.c), page records (PAGE with 4096
 * bytes, ZERO with a fill byte; the block's idstr follows unless the
 * record is for the same block as the previous one, CONTINUE), and EOS.
 * The flag values are private to ram-codec.c (a test fails where they
 * appear anywhere else), so no caller can build or take apart a record
 * by hand.
 *
 * Writing, one RamEncoder per stream (it remembers the block list, and
 * the last block for CONTINUE):
 *
 *   RamEncoder e;
 *   ram_encoder_init(&e);
 *   ram_encode_mem_size(&e, f, total);                  START
 *   ram_encode_block(&e, f, "pc.ram", len, NULL, errp); per block (&hdr: mapped-ram)
 *   ram_encode_eos(f);
 *   ram_encode_page(&e, f, 0, offset, host);            PART/END: page records
 *   ram_encode_zero_page(&e, f, 0, offset);
 *   ram_encode_eos(f);
 *   ram_encoder_clear(&e);
 *
 * Reading, one RamDecoder per stream; each START/PART/END body is handed
 * to ram_decode_section(), which calls the caller's RamSink for the
 * block list and every page record:
 *
 *   RamDecoder d;
 *   ram_decoder_init(&d, mapped_ram);
 *   ram_decode_section(&d, f, si->type, &sink, opaque, errp);   per section
 *   ram_decoder_clear(&d);
 *
 * Errors use QEMU's texts where QEMU has one; tests assert them.
 */
#ifndef MIGRATION_RAM_CODEC_H
#define MIGRATION_RAM_CODEC_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>
#include "qemu-file.h"
#include "mapped-ram.h"

#define RAM_SECTION_VERSION 4
#define RAM_PAGE_SIZE 4096ULL

/* ---- encoder ---- */

typedef struct RamEncoder {
    GPtrArray *idstrs;            /* char *: the block list, index = block number */
    int last_block;               /* block of the last page record (CONTINUE); -1 = none */
} RamEncoder;

void ram_encoder_init(RamEncoder *e);
void ram_encoder_clear(RamEncoder *e);

/* START: the block list's first record; forgets any previous list. */
void ram_encode_mem_size(RamEncoder *e, QEMUFile *f, uint64_t total);
/*
 * START: block number e->idstrs->len, used_length bytes.  With mapped
 * non-NULL the block is laid out in a mapped-ram file (its header put,
 * the stream moved past its bitmap and page region: mapped_ram_put_block)
 * and *mapped receives the layout.
 */
bool ram_encode_block(RamEncoder *e, QEMUFile *f, const char *idstr, uint64_t used_length,
                      MappedRamHeader *mapped, GError **errp);
/* A PAGE record; data (4096 bytes) is queued by reference until the next flush. */
void ram_encode_page(RamEncoder *e, QEMUFile *f, unsigned block, uint64_t offset,
                     const uint8_t *data);
/* A ZERO record. */
void ram_encode_zero_page(RamEncoder *e, QEMUFile *f, unsigned block, uint64_t offset);
/* The end of a section's RAM data. */
void ram_encode_eos(QEMUFile *f);
/* Multifd's sync marker (MULTIFD_FLUSH), after a SYNC packet on every channel. */
void ram_encode_multifd_flush(QEMUFile *f);

/* ---- decoder ---- */

/*
 * What the caller does with what the decoder reads.  idx is the block's
 * number in the list (0, 1, ...); offsets are bytes into the block.
 */
typedef struct RamSink {
    /* START, optional: the MEM_SIZE record, before the first block. */
    bool (*mem_size)(void *opaque, uint64_t total, GError **errp);
    /*
     * START: a block of the list.  hdr is non-NULL for mapped-ram (already
     * validated against the file); f may be used for positioned reads of
     * the file (the bitmap) but its position must not move.
     */
    bool (*block)(void *opaque, QEMUFile *f, unsigned idx, const char *idstr,
                  uint64_t used_length, const MappedRamHeader *hdr, GError **errp);
    /*
     * Stream only (a mapped-ram decoder refuses page records before these
     * are called, so its sink may leave them NULL).  page_dest: where a
     * PAGE's 4096 bytes go (guest memory or a scratch buffer); page: after
     * a PAGE's data was read (zero = false) or a ZERO record (zero = true).
     */
    uint8_t *(*page_dest)(void *opaque, unsigned idx, uint64_t offset, GError **errp);
    bool (*page)(void *opaque, unsigned idx, uint64_t offset, bool zero, GError **errp);
    /*
     * Optional, stream only: a multifd sync marker, where a multifd
     * receiver waits until each channel reached its SYNC packet.  Every
     * MULTIFD_FLUSH record is one; every EOS too when the sender syncs per
     * section (QEMU 7.2, machines <= 8.0), which the decoder knows from a
     * START without MULTIFD_FLUSH (a per-round sender always puts one
     * there).  Called before the decoder reads past the marker.
     */
    bool (*multifd_sync)(void *opaque, GError **errp);
} RamSink;

typedef struct RamDecoder {
    bool mapped_ram;
    int last_block;               /* for CONTINUE; -1 = none */
    GPtrArray *block_names;       /* char *, index = idx */
    GHashTable *block_index;      /* name (block_names' string) -> idx + 1 */
    GArray *block_lengths;        /* uint64_t */
    uint64_t total;               /* MEM_SIZE total */
    bool saw_flush;               /* a MULTIFD_FLUSH record was read */
    bool sync_per_section;        /* every EOS is a multifd sync marker */
} RamDecoder;

void ram_decoder_init(RamDecoder *d, bool mapped_ram);
void ram_decoder_clear(RamDecoder *d);
/* Decode one START/PART/END body up to and including its EOS. */
bool ram_decode_section(RamDecoder *d, QEMUFile *f, uint8_t section_type,
                        const RamSink *sink, void *opaque, GError **errp);

#endif
