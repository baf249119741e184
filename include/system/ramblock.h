/*
 * Guest RAM blocks and the dirty log.
 *
 * A RAMBlock is a page-aligned host mapping of guest memory with a
 * QEMU-style idstr ("pc.ram" or the memory backend id, "vga.vram",
 * "pc.bios").  The list is kept sorted by max_length, largest first, as
 * QEMU's ram_list is; migration walks it in that order.
 *
 * Dirty logging: every guest write goes through guest_write_*(), which
 * sets the page's bit in rb->dirty_log atomically (as an emulated CPU's
 * TLB write path does).  Migration harvests it with
 * ram_block_sync_dirty_log().  A block backed by a file that already
 * held data starts with the pages of its data extents dirty (a load
 * must clear them).
 *
 * Immutable after the VM is built: the list, idstr, host, used_length,
 * max_length, gpa, page_size.  dirty_log: words set atomically by vCPU
 * threads, harvested atomically by the migration thread.
 */
#ifndef SYSTEM_RAMBLOCK_H
#define SYSTEM_RAMBLOCK_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>
#include "util/bitmap.h"
#include "util/thread.h"

#define TARGET_PAGE_BITS 12
#define TARGET_PAGE_SIZE (1ULL << TARGET_PAGE_BITS)
#define TARGET_PAGE_MASK (~(TARGET_PAGE_SIZE - 1))

typedef struct RAMBlock {
    char idstr[256];
    uint8_t *host;             /* page-aligned mapping of max_length bytes */
    uint64_t used_length;
    uint64_t max_length;
    uint64_t gpa;              /* guest-physical base (main RAM at 0) */
    int fd;                    /* backing fd for memfd/file backends, else -1 */
    bool shared;               /* share=on */
    unsigned long *dirty_log;  /* one bit per target page */
} RAMBlock;

size_t ram_block_count(void);
RAMBlock *ram_block_at(size_t i);
RAMBlock *ram_block_by_name(const char *idstr);
uint64_t ram_bytes_total(void);     /* sum of used_length */
static inline uint64_t ram_block_pages(const RAMBlock *rb)
{ return rb->used_length >> TARGET_PAGE_BITS; }

/* Allocate a block and insert it in order.  backend: "ram", "memfd", "file". */
RAMBlock *ram_block_add(const char *idstr, uint64_t size, uint64_t gpa,
                        const char *backend, bool shared, const char *mem_path,
                        GError **errp);
/*
 * Back every page of the block now, with @threads threads, so that later
 * first touches (a guest's, or an incoming migration's) find memory
 * already there.  Contents are kept.
 */
bool ram_block_prealloc(RAMBlock *rb, unsigned threads, GError **errp);
void ram_blocks_free_all(void);

/* Move the block's dirty log into dest (OR); returns bits newly set. */
size_t ram_block_sync_dirty_log(RAMBlock *rb, unsigned long *dest);
/* Mark every page dirty (start of migration) */
void ram_block_dirty_all(RAMBlock *rb);

/* The guest-physical view: main RAM at gpa 0 (guest_phys_block). */
RAMBlock *guest_ram_lookup(uint64_t gpa, uint64_t *offset_in_block);

/*
 * The guest's accesses to its RAM.  The host reads guest RAM while the
 * guest writes it, by design: a live save reads pages the guest may be
 * changing and sends them again when the dirty log says so, and pmemsave
 * dumps a running guest.  Those are not the host's data races, so the
 * guest's side is hidden from ThreadSanitizer (no-ops in other builds),
 * and the host's readers need no suppression.
 */
#if defined(__SANITIZE_THREAD__)
/* Plain accesses, uninstrumented (TSan would still see an atomic's). */
NO_TSAN static inline void guest_ram_store(uint8_t *p, uint8_t v)
{
    *(volatile uint8_t *)p = v;
}
NO_TSAN static inline uint8_t guest_ram_load(const uint8_t *p)
{
    return *(const volatile uint8_t *)p;
}
#else
static inline void guest_ram_store(uint8_t *p, uint8_t v)
{
    __atomic_store_n(p, v, __ATOMIC_RELAXED);
}
static inline uint8_t guest_ram_load(const uint8_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}
#endif
static inline void guest_write_u8(RAMBlock *rb, uint64_t off, uint8_t v)
{
    guest_ram_store(&rb->host[off], v);
    set_bit_release(off >> TARGET_PAGE_BITS, rb->dirty_log);
}
static inline uint8_t guest_read_u8(RAMBlock *rb, uint64_t off)
{
    return guest_ram_load(&rb->host[off]);
}
/* memcpy into guest memory, marking every touched page dirty */
void guest_write(RAMBlock *rb, uint64_t off, const void *buf, size_t len);

#endif
