/*
 * mapram load and serve: the read-ahead of a mapped-ram file's pages.
 * See chunk-ring.h.
 *
 * Chunks, each one batch for one worker, rather than large windows: before,
 * mapram load read 64 MiB windows as one batch each, double-buffered
 * behind a sync of every worker, so one worker read while the others
 * idled: QEMU 7.2's interleaved 4 GiB guest (bench/qemu-exec.sh) took
 * 4.8 s to go into a pipe alone, 3.8 s in 4 MiB chunks.
 *
 * The ring is one region in transparent huge pages, a chunk per huge page:
 * faulting it in and pinning it for every O_DIRECT read cost less than in
 * 4 KiB pages (CPU time of that load 1.76 s -> 1.4 s; 1.04 s -> 0.73 s on
 * the clustered guest).  Best effort: without huge pages the ring works
 * the same, a little slower.
 */
#include "chunk-ring.h"
#include "../migration/mapped-ram.h"
#include "../migration/ram-codec.h"
#include "util/osdep.h"
#include <sys/mman.h>

#define CHUNK_BYTES     (CHUNK_RING_PAGES * RAM_PAGE_SIZE)
#define HUGE_PAGE_BYTES (2 * 1024 * 1024)
/* checksums: a chunk holds whole runs of the table */
G_STATIC_ASSERT(CHUNK_RING_PAGES % MRC_RUN_PAGES == 0);
G_STATIC_ASSERT(CHUNK_BYTES == HUGE_PAGE_BYTES);
/* One read request at most: 1 MiB. */
#define READ_RUN_PAGES  (MAPPED_RAM_LOAD_BUF_SIZE / RAM_PAGE_SIZE)

typedef struct RingBlock {
    const unsigned long *bmap;
    uint64_t pages_offset;
    const MrcBlock *sums;
} RingBlock;

/* A ring buffer: the chunk read into it, and whether its reads are done. */
typedef struct Slot {
    uint8_t *buf;               /* CHUNK_BYTES in ChunkRing.buf */
    uint64_t *hashes;           /* CHUNK_RING_PAGES: page hashes of the chunk */
    PageBatch batch;
} Slot;

struct ChunkRing {
    /* Immutable after chunk_ring_new(). */
    PageChannels *pc;           /* the caller's */
    unsigned nslots;
    uint64_t max_gap;
    uint8_t *buf;               /* nslots * CHUNK_BYTES, huge-page aligned */
    /* The writer's; complete once chunk_ring_start() was called. */
    GArray *blocks;             /* RingBlock */
    GArray *chunks;             /* Chunk */
    PageSeg *segs;              /* CHUNK_RING_PAGES: a chunk's reads being queued */
    /*
     * A slot's buf and hashes are written by the workers between the
     * queueing of its batch and the wait for it (the batch's done is the
     * hand-off), and read by the writer after.
     */
    Slot *slots;
};

ChunkRing *chunk_ring_new(PageChannels *pc, unsigned slots, uint64_t max_gap)
{
    ChunkRing *r = g_new0(ChunkRing, 1);
    r->pc = pc;
    r->nslots = slots;
    r->max_gap = max_gap;
    r->buf = qemu_memalign(HUGE_PAGE_BYTES, slots * CHUNK_BYTES);
    madvise(r->buf, slots * CHUNK_BYTES, MADV_HUGEPAGE);
    r->blocks = g_array_new(FALSE, FALSE, sizeof(RingBlock));
    r->chunks = g_array_new(FALSE, FALSE, sizeof(Chunk));
    r->segs = g_new(PageSeg, CHUNK_RING_PAGES);
    r->slots = g_new0(Slot, slots);
    for (unsigned i = 0; i < slots; i++) {
        r->slots[i].buf = r->buf + i * CHUNK_BYTES;
        r->slots[i].hashes = g_new(uint64_t, CHUNK_RING_PAGES);
    }
    return r;
}

void chunk_ring_add_block(ChunkRing *r, const unsigned long *bmap, uint64_t npages,
                          uint64_t pages_offset, const MrcBlock *sums)
{
    RingBlock b = { bmap, pages_offset, sums };
    unsigned idx = r->blocks->len;

    g_array_append_val(r->blocks, b);
    for (uint64_t p = 0; p < npages; p += CHUNK_RING_PAGES) {
        Chunk k = { idx, p, MIN(CHUNK_RING_PAGES, npages - p) };
        g_array_append_val(r->chunks, k);
    }
}

guint chunk_ring_len(const ChunkRing *r)
{
    return r->chunks->len;
}

const Chunk *chunk_ring_chunk(const ChunkRing *r, guint i)
{
    return &g_array_index(r->chunks, Chunk, i);
}

/* Read chunk i's set runs into its slot as one batch. */
static bool queue_chunk(ChunkRing *r, guint i, GError **errp)
{
    const Chunk *k = chunk_ring_chunk(r, i);
    const RingBlock *b = &g_array_index(r->blocks, RingBlock, k->block);
    Slot *slot = &r->slots[i % r->nslots];
    unsigned n = 0;
    MappedRamRuns it;
    MappedRamRun run;

    mapped_ram_runs_init(&it, b->bmap, k->first, k->first + k->n, r->max_gap, READ_RUN_PAGES);
    while (mapped_ram_runs_next(&it, &run)) {
        r->segs[n++] = (PageSeg) { slot->buf + (run.start - k->first) * RAM_PAGE_SIZE,
                                   (run.end - run.start) * RAM_PAGE_SIZE,
                                   b->pages_offset + run.start * RAM_PAGE_SIZE,
                                   b->sums ? slot->hashes + (run.start - k->first) : NULL };
    }
    return page_channels_queue_batch(r->pc, false, r->segs, n, &slot->batch, errp);
}

bool chunk_ring_start(ChunkRing *r, GError **errp)
{
    for (guint i = 0; i < MIN(r->chunks->len, r->nslots); i++) {
        if (!queue_chunk(r, i, errp)) {
            return false;
        }
    }
    return true;
}

const uint8_t *chunk_ring_wait(ChunkRing *r, guint i, GError **errp)
{
    const Chunk *k = chunk_ring_chunk(r, i);
    const RingBlock *b = &g_array_index(r->blocks, RingBlock, k->block);
    Slot *slot = &r->slots[i % r->nslots];

    if (!page_channels_wait_batch(r->pc, &slot->batch, errp)) {
        return NULL;
    }
    /* a chunk is whole runs of the table: checked before any of its pages goes out */
    if (b->sums && !mrc_check_runs(b->sums, b->bmap, slot->hashes, k->first, k->n, errp)) {
        return NULL;
    }
    return slot->buf;
}

bool chunk_ring_refill(ChunkRing *r, guint i, GError **errp)
{
    return i + r->nslots >= r->chunks->len || queue_chunk(r, i + r->nslots, errp);
}

void chunk_ring_free(ChunkRing *r)
{
    if (!r) {
        return;
    }
    for (unsigned i = 0; i < r->nslots; i++) {
        g_free(r->slots[i].hashes);
    }
    g_free(r->slots);
    g_free(r->segs);
    g_array_unref(r->chunks);
    g_array_unref(r->blocks);
    qemu_vfree(r->buf);
    g_free(r);
}
