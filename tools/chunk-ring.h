/*
 * mapram load and mapram serve: a mapped-ram file's pages read ahead, in
 * order, for one writer.
 *
 * The blocks are cut into chunks of CHUNK_RING_PAGES pages of one block
 * (the last of a block shorter), and a ring of `slots` buffers holds the
 * next chunks: each chunk's set runs are read into its slot as one batch
 * of positioned reads for one page-channels worker, so the workers read
 * several chunks at once while the writer handles the oldest, and the
 * writer waits only for the chunk it needs next.  What the writer does
 * with a chunk is its own: load writes it on the stream (or hands it to
 * multifd), serve pushes it as postcopy pages between looks at its
 * requests.  A block with checksums has each chunk checked before the
 * writer sees it.
 *
 *   r = chunk_ring_new(pc, slots, max_gap);
 *   chunk_ring_add_block(r, bmap, npages, pages_offset, sums);   block 0, 1, ...
 *   ok = chunk_ring_start(r, errp);             the first slots' reads queued
 *   for (i = 0; i < chunk_ring_len(r); i++) {
 *       k = chunk_ring_chunk(r, i);
 *       buf = chunk_ring_wait(r, i, errp);      chunk i read (and checked)
 *       ... k's pages from buf ...
 *       ok = chunk_ring_refill(r, i, errp);     buf is free: its slot reads chunk i + slots
 *   }
 *   chunk_ring_free(r);                         once no read is in flight (pc freed)
 *
 * Every function is called from one thread, the writer's.
 */
#ifndef TOOLS_CHUNK_RING_H
#define TOOLS_CHUNK_RING_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>
#include "../migration/mapped-ram-csum.h"
#include "../migration/page-channels.h"

/* 2 MiB: a chunk is whole checksum runs, and one huge page of the ring. */
#define CHUNK_RING_PAGES 512ULL

/* Pages [first, first + n) of the block added as number `block`. */
typedef struct Chunk {
    unsigned block;
    uint64_t first, n;
} Chunk;

typedef struct ChunkRing ChunkRing;

/*
 * pc reads the slots: the caller's, and it must be freed (or every batch
 * settled) before the ring is.  Clear runs of at most max_gap pages are
 * read through, inside one request; what they hold is the writer's to
 * ignore (a clear page is zero whatever its slot in the file holds).
 */
ChunkRing *chunk_ring_new(PageChannels *pc, unsigned slots, uint64_t max_gap);
/*
 * The next block's chunks.  bmap (its pages with data) and sums (its
 * checksums, or NULL: not checked) stay the caller's and must outlive the
 * ring; pages_offset is the file offset of the block's page 0.
 */
void chunk_ring_add_block(ChunkRing *r, const unsigned long *bmap, uint64_t npages,
                          uint64_t pages_offset, const MrcBlock *sums);
/* Once every block is added: the first slots' reads queued. */
bool chunk_ring_start(ChunkRing *r, GError **errp);
guint chunk_ring_len(const ChunkRing *r);
const Chunk *chunk_ring_chunk(const ChunkRing *r, guint i);
/*
 * Chunk i's pages, once read and (with checksums) checked: page first + j
 * at j * RAM_PAGE_SIZE, valid until chunk_ring_refill(r, i).  NULL with
 * the first error of the channels, or the checksum's.
 */
const uint8_t *chunk_ring_wait(ChunkRing *r, guint i, GError **errp);
/* The writer is done with chunk i's buffer: its slot reads chunk i + slots, if any. */
bool chunk_ring_refill(ChunkRing *r, guint i, GError **errp);
/* NULL is fine. */
void chunk_ring_free(ChunkRing *r);

#endif
