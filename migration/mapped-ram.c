/*
 * mapped-ram layout codec.  See mapped-ram.h.
 */
#include "mapped-ram.h"
#include "util/bitmap.h"
#include "util/cutils.h"
#include "util/error.h"
#include <string.h>
#include "util/bswap.h"

void mapped_ram_header_encode(const MappedRamHeader *h, uint8_t out[MAPPED_RAM_HDR_SIZE])
{
    stl_be_p(out, h->version);
    stq_be_p(out + 4, h->page_size);
    stq_be_p(out + 12, h->bitmap_offset);
    stq_be_p(out + 20, h->pages_offset);
}

void mapped_ram_header_decode(const uint8_t in[MAPPED_RAM_HDR_SIZE], MappedRamHeader *h)
{
    h->version = ldl_be_p(in);
    h->page_size = ldq_be_p(in + 4);
    h->bitmap_offset = ldq_be_p(in + 12);
    h->pages_offset = ldq_be_p(in + 20);
}

uint64_t mapped_ram_bitmap_size(uint64_t num_pages)
{
    return BITS_TO_LONGS(num_pages) * sizeof(unsigned long);
}

/*
 * See mapped_ram_put_block: make a regular file reach the stream's
 * position.  Best effort, so errors are not even collected: a channel
 * without a size (not a regular file) or a failing truncate only keeps
 * the slower path, since the page writes extend the file themselves.
 */
static void extend_file(QEMUFile *f)
{
    IOChannel *ioc = qemu_file_get_ioc(f);
    off_t end = qemu_file_tell(f);
    off_t size = io_channel_size(ioc, NULL);

    if (size >= 0 && size < end) {
        io_channel_truncate(ioc, end, NULL);
    }
}

bool mapped_ram_put_block(QEMUFile *f, uint64_t used_length, uint64_t page_size,
                          MappedRamHeader *out, GError **errp)
{
    uint8_t raw[MAPPED_RAM_HDR_SIZE];
    uint64_t num_pages = used_length / page_size;

    out->version = MAPPED_RAM_HDR_VERSION;
    out->page_size = page_size;
    out->bitmap_offset = qemu_file_tell(f) + MAPPED_RAM_HDR_SIZE;
    out->pages_offset = ROUND_UP(out->bitmap_offset + mapped_ram_bitmap_size(num_pages),
                                 MAPPED_RAM_FILE_OFFSET_ALIGNMENT);
    mapped_ram_header_encode(out, raw);
    qemu_put_buffer(f, raw, sizeof(raw));
    if (!qemu_file_set_offset(f, out->pages_offset + used_length, errp)) {
        return false;
    }
    extend_file(f);
    return true;
}

bool mapped_ram_get_block(QEMUFile *f, const char *idstr, uint64_t used_length,
                          uint64_t file_size, MappedRamHeader *h, GError **errp)
{
    uint8_t raw[MAPPED_RAM_HDR_SIZE];
    off_t at = qemu_file_tell(f);

    size_t got = qemu_peek_buffer(f, raw, sizeof(raw), 0);
    if (!qemu_get_buffer(f, raw, sizeof(raw), errp)) {
        if (qemu_file_input_ended(f)) {
            /* QEMU's words: the reader's own error adds nothing to a short read */
            g_clear_error(errp);
            error_setg(errp, "Could not read whole mapped-ram migration header "
                       "(expected %d, got %zu bytes)", MAPPED_RAM_HDR_SIZE, got);
        }
        return false;
    }
    mapped_ram_header_decode(raw, h);
    if (h->version > MAPPED_RAM_HDR_VERSION) {
        error_setg(errp, "Migration mapped-ram capability version not supported "
                   "(expected <= %d, got %d)", MAPPED_RAM_HDR_VERSION, h->version);
        return false;
    }
    if (h->version == 0) {
        error_setg(errp, "mapped-ram header of ramblock %s has version 0", idstr);
        return false;
    }
    if (h->page_size != 4096) {
        error_setg(errp, "mapped-ram: ramblock %s has page size %llu, expected 4096",
                   idstr, (unsigned long long)h->page_size);
        return false;
    }
    if (!QEMU_IS_ALIGNED(h->pages_offset, h->page_size)) {
        error_setg(errp, "Error reading ramblock %s pages, region has bad alignment", idstr);
        return false;
    }
    uint64_t bsize = mapped_ram_bitmap_size(used_length / h->page_size);
    if (file_size) {
        if (h->bitmap_offset + bsize > file_size || h->bitmap_offset + bsize < h->bitmap_offset) {
            error_setg(errp, "mapped-ram: bitmap of ramblock %s [0x%llx, 0x%llx) lies beyond "
                       "the end of the file (0x%llx bytes)", idstr,
                       (unsigned long long)h->bitmap_offset,
                       (unsigned long long)(h->bitmap_offset + bsize),
                       (unsigned long long)file_size);
            return false;
        }
        if (h->pages_offset + used_length > file_size ||
            h->pages_offset + used_length < h->pages_offset) {
            error_setg(errp, "mapped-ram: page region of ramblock %s [0x%llx, 0x%llx) lies "
                       "beyond the end of the file (0x%llx bytes)", idstr,
                       (unsigned long long)h->pages_offset,
                       (unsigned long long)(h->pages_offset + used_length),
                       (unsigned long long)file_size);
            return false;
        }
    }
    if (h->bitmap_offset < (uint64_t)at + MAPPED_RAM_HDR_SIZE ||
        (h->bitmap_offset + bsize > h->pages_offset && used_length)) {
        error_setg(errp, "mapped-ram: ramblock %s bitmap at 0x%llx overlaps its header or "
                   "page region (pages at 0x%llx)", idstr,
                   (unsigned long long)h->bitmap_offset, (unsigned long long)h->pages_offset);
        return false;
    }
    return true;
}

unsigned long *mapped_ram_read_bitmap(IOChannel *ioc, const char *idstr,
                                      const MappedRamHeader *h, uint64_t num_pages,
                                      GError **errp)
{
    uint64_t size = mapped_ram_bitmap_size(num_pages);
    unsigned long *bmap = bitmap_new(num_pages);
    if (!io_channel_pread_all(ioc, bmap, size, h->bitmap_offset, errp)) {
        g_prefix_error(errp, "Error reading dirty bitmap of ramblock %s: ", idstr);
        g_free(bmap);
        return NULL;
    }
    /* bits past num_pages must not count */
    if (num_pages % BITS_PER_LONG) {
        bmap[num_pages / BITS_PER_LONG] &= (1UL << (num_pages % BITS_PER_LONG)) - 1;
    }
    return bmap;
}

bool mapped_ram_write_bitmap(IOChannel *ioc, const MappedRamHeader *h,
                             const unsigned long *bmap, uint64_t num_pages, GError **errp)
{
    if (!io_channel_pwrite_all(ioc, bmap, mapped_ram_bitmap_size(num_pages),
                               h->bitmap_offset, errp)) {
        g_prefix_error(errp, "Failed to write bitmap to file: ");
        return false;
    }
    return true;
}

void mapped_ram_runs_init(MappedRamRuns *it, const unsigned long *bmap, uint64_t first,
                          uint64_t last, uint64_t max_gap, uint64_t max_run)
{
    g_assert(max_run > 0 && first <= last);
    *it = (MappedRamRuns) {
        .bmap = bmap, .pos = first, .last = last, .max_gap = max_gap, .max_run = max_run,
    };
}

bool mapped_ram_runs_next(MappedRamRuns *it, MappedRamRun *run)
{
    uint64_t start = find_next_bit(it->bmap, it->last, it->pos);
    if (start >= it->last) {
        it->pos = it->last;
        return false;
    }
    /* every search below stops at the cap, so a run never passes it */
    uint64_t cap = start + MIN(it->max_run, it->last - start);
    uint64_t end = find_next_zero_bit(it->bmap, cap, start);
    uint64_t gaps = 0;
    while (it->max_gap && end < cap) {
        uint64_t next = find_next_bit(it->bmap, cap, end);
        if (next >= cap || next - end > it->max_gap) {
            break;
        }
        gaps += next - end;
        end = find_next_zero_bit(it->bmap, cap, next);
    }
    *run = (MappedRamRun) { .start = start, .end = end, .gap_pages = gaps };
    it->pos = end;
    return true;
}

bool mapped_ram_run_next_gap(const MappedRamRuns *it, const MappedRamRun *run, uint64_t *pos,
                             uint64_t *gap_start, uint64_t *gap_end)
{
    uint64_t s = find_next_zero_bit(it->bmap, run->end, *pos);
    if (s >= run->end) {
        *pos = run->end;
        return false;
    }
    /* a run ends on a set page, so every gap ends inside it */
    *gap_start = s;
    *gap_end = *pos = find_next_bit(it->bmap, run->end, s);
    return true;
}
