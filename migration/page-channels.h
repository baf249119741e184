/*
 * Page channels: the multifd channels of the file: transport, each served
 * by one or more worker threads.
 *
 * N channels, each with its own fd on the migration file (opened anew,
 * not dup()ed, so O_DIRECT stays per channel); each channel is served by
 * one or more worker threads, each with its own AioEngine and queue depth.
 * The migration thread hands the workers batches: on save, the pages of
 * one block (zero detection happens in the worker, which sets or clears
 * the page's bit in the file bitmap; with a single worker the migration
 * thread checks them as it queues them, so the worker only writes); on
 * load, byte ranges to read straight into guest memory.  page_channels_sync() waits until every
 * worker has finished and drained its I/O, so a page rewritten in
 * the next pass can never race its previous write, and no page write
 * lands after the bitmaps are written.
 *
 * With multifd off the same code runs one channel: that is how direct-io
 * works without multifd (one page-data fd beside the main one, async I/O).
 *
 * Every fd is opened and every engine set up by page_channels_new() (so
 * their errors come from it), but a worker's thread starts only when the
 * worker is handed its first job: a load that fails its checks or reads
 * little starts few threads or none.
 *
 * Threads: the struct is owned by the migration thread; each worker's
 * queue is fed by it and consumed by the worker thread; counters are
 * atomics; err is protected by lock.
 */
#ifndef MIGRATION_PAGE_CHANNELS_H
#define MIGRATION_PAGE_CHANNELS_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include "util/stat64.h"

#define PAGE_CHANNELS_PAGE_SIZE 4096ULL

typedef struct PageChannels PageChannels;

/*
 * What the workers did, counted as they go (so a reader on another thread
 * sees it move): page data bytes written or read, pages written, pages
 * found zero and left as holes.
 */
typedef struct PageStats {
    Stat64 bytes;
    Stat64 normal_pages;
    Stat64 zero_pages;
    /*
     * Save: pages handed to the workers that none has yet written or found
     * zero (added when queued, taken off when the job ends, failed or not):
     * a rate limit counts them as data until they are.
     */
    Stat64 in_flight;
} PageStats;

typedef struct PageChannelsConfig {
    const char *path;          /* file path or /dev/fdset/N, opened once per channel */
    int flags;                 /* O_WRONLY (save) or O_RDONLY (load) */
    unsigned channels;         /* >= 1 */
    bool direct_io;            /* O_DIRECT on these fds */
    unsigned queue_depth;      /* async requests in flight per channel */
    /*
     * Worker threads at least, spread evenly (rounded up) over the
     * channels, one per channel at least; 0: automatic, 4 for a load, 16
     * for a direct-io save, one per channel for any other save.
     */
    unsigned threads;
    bool detect_zero;          /* save: zero pages are not written, their bit is cleared */
    PageStats *stats;          /* caller's counters (must outlive the channels), or NULL */
} PageChannelsConfig;

/* Largest batch of pages in one write job (1 MiB). */
#define PAGE_CHANNELS_MAX_BATCH 256

PageChannels *page_channels_new(const PageChannelsConfig *cfg, GError **errp);
/* Joins the threads and closes the fds (drains first). */
void page_channels_free(PageChannels *pc);

/*
 * Save: pages (ascending indices into the block, n <= MAX_BATCH) of the
 * block whose memory starts at host, whose slots start at pages_offset
 * and whose file bitmap is file_bitmap.
 */
bool page_channels_queue_write(PageChannels *pc, const char *idstr, uint8_t *host,
                               uint64_t pages_offset, unsigned long *file_bitmap,
                               const uint64_t *pages, unsigned n, GError **errp);
/*
 * The same with the page hashes of the checksum table (mapped-ram-csum.h):
 * the worker stores the XXH3-64 of every page it writes in
 * page_hashes[page] (pages it finds zero get none: their clear bit says
 * what they hold), while the page is in its cache.
 */
bool page_channels_queue_write_hashed(PageChannels *pc, const char *idstr, uint8_t *host,
                                      uint64_t pages_offset, unsigned long *file_bitmap,
                                      uint64_t *page_hashes, const uint64_t *pages,
                                      unsigned n, GError **errp);
/* Load: read len bytes at file offset off into host. */
bool page_channels_queue_read(PageChannels *pc, void *host, size_t len, off_t off,
                              GError **errp);
/*
 * The same, and hashes[i] receives the XXH3-64 of the read's page i: at
 * once after the read with the synchronous engine, after the worker's
 * engine drained otherwise (by the next sync at the latest).
 */
bool page_channels_queue_read_hashed(PageChannels *pc, void *host, size_t len, off_t off,
                                     uint64_t *hashes, GError **errp);
/* Write len bytes of buf at file offset off (buf valid until the next sync). */
bool page_channels_queue_pwrite(PageChannels *pc, const void *buf, size_t len, off_t off,
                                GError **errp);

/* A batch of positioned writes or reads handed to one channel as one job. */
typedef struct PageSeg {
    void *buf;
    size_t len;
    off_t off;
    /*
     * Or NULL: hashes[i] receives the XXH3-64 of page i of buf (written:
     * before the write; read: once it arrived, by the time the batch is
     * done or the next sync returns).
     */
    uint64_t *hashes;
} PageSeg;
bool page_channels_queue_segs(PageChannels *pc, bool write, const PageSeg *segs, unsigned n,
                              GError **errp);
/*
 * The same as one batch whose completion the caller can wait for, so that
 * a reader can use (and a writer reuse) the batch's buffers while the
 * other batches go on: the worker marks the batch done when all its I/O
 * has completed (or failed).  batch is the caller's and must stay valid
 * until page_channels_wait_batch() returned or the channels are freed;
 * n == 0 is done at once.
 */
typedef struct PageBatch {
    gint done;                 /* atomic; set by the worker under the channels' lock */
} PageBatch;
bool page_channels_queue_batch(PageChannels *pc, bool write, const PageSeg *segs, unsigned n,
                               PageBatch *batch, GError **errp);
/* Wait until batch is done; false with the first error of any channel. */
bool page_channels_wait_batch(PageChannels *pc, PageBatch *batch, GError **errp);
/*
 * Wait until batch is done whatever else failed: page_channels_wait_batch()
 * returns at the first error of any channel, while this batch may still be
 * reading into its buffers.  After it the buffers may be freed.
 */
void page_channels_settle_batch(PageChannels *pc, PageBatch *batch);
/* Wait for every channel; the first error of any channel is returned. */
bool page_channels_sync(PageChannels *pc, GError **errp);
/*
 * A sync, then every channel's fd fdatasync()ed in channel order (from
 * the calling thread: the fds are immutable after setup), so that what
 * was written is on the disk.  "Unable to sync 'PATH' to disk: <strerror>",
 * prefixed "multifd channel N: " when there are several channels.
 */
bool page_channels_fsync(PageChannels *pc, GError **errp);
/* Cancel: make channels drop queued work and fail. */
void page_channels_abort(PageChannels *pc);


#endif
