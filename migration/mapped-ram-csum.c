/*
 * The checksum table of a mapped-ram file.  See mapped-ram-csum.h.
 */
#include "mapped-ram-csum.h"
#include "savevm.h"
#include "util/bitmap.h"
#include "util/cutils.h"
#include "util/error.h"
#include <string.h>
#include "util/bswap.h"
#include "config-host.h"
#include <xxhash.h>
#ifdef HAVE_XXH3_DISPATCH
/*
 * Every XXH3_64bits below becomes libxxhash's run-time dispatched entry:
 * the same hash, computed with AVX2 or AVX-512 where the CPU has them.
 * A save reads each page for the first time here, and the vector code
 * keeps the hash within the cost of that first touch (about 2x faster
 * than the SSE2 build on a 2 GiB first pass on this project's machines).
 */
#include <xxh_x86dispatch.h>
#endif


static void mrc_block_free(gpointer p)
{
    MrcBlock *b = p;
    g_free(b->idstr);
    g_free(b->sums);
    g_free(b);
}

MrcTable *mrc_table_new(void)
{
    MrcTable *t = g_new0(MrcTable, 1);
    t->blocks = g_ptr_array_new_with_free_func(mrc_block_free);
    return t;
}

void mrc_table_free(MrcTable *t)
{
    if (t) {
        g_ptr_array_unref(t->blocks);
        g_free(t);
    }
}

uint64_t mrc_runs(uint64_t npages)
{
    return DIV_ROUND_UP(npages, MRC_RUN_PAGES);
}

MrcBlock *mrc_table_add_block(MrcTable *t, const char *idstr, uint64_t used_length,
                              uint64_t pages_offset)
{
    MrcBlock *b = g_new0(MrcBlock, 1);
    b->idstr = g_strdup(idstr);
    b->used_length = used_length;
    b->pages_offset = pages_offset;
    b->nruns = mrc_runs(used_length / MRC_PAGE_SIZE);
    b->sums = g_new0(uint64_t, b->nruns);
    g_ptr_array_add(t->blocks, b);
    return b;
}

uint64_t mrc_page_hash(const void *page)
{
    return XXH3_64bits(page, MRC_PAGE_SIZE);
}

void mrc_hash_pages(const void *buf, uint64_t npages, uint64_t *hashes)
{
    const uint8_t *p = buf;
    for (uint64_t i = 0; i < npages; i++) {
        if (i + 1 < npages) {
            mrc_prefetch_page(p + (i + 1) * MRC_PAGE_SIZE);
        }
        hashes[i] = XXH3_64bits(p + i * MRC_PAGE_SIZE, MRC_PAGE_SIZE);
    }
}

uint64_t mrc_run_sum(const uint64_t *hashes, const unsigned long *bmap, uint64_t first,
                     uint64_t n)
{
    uint64_t le[MRC_RUN_PAGES];
    g_assert(n <= MRC_RUN_PAGES);
    for (uint64_t i = 0; i < n; i++) {
        le[i] = GUINT64_TO_LE(test_bit(first + i, bmap) ? hashes[i] : MRC_ZERO_PAGE_HASH);
    }
    return XXH3_64bits(le, n * sizeof(uint64_t));
}

void mrc_block_fill(MrcBlock *b, const unsigned long *bmap, const uint64_t *hashes)
{
    uint64_t npages = b->used_length / MRC_PAGE_SIZE;
    for (uint64_t r = 0; r < b->nruns; r++) {
        uint64_t first = r * MRC_RUN_PAGES;
        b->sums[r] = mrc_run_sum(hashes + first, bmap, first,
                                 MIN(MRC_RUN_PAGES, npages - first));
    }
}

bool mrc_check_runs(const MrcBlock *b, const unsigned long *bmap, const uint64_t *hashes,
                    uint64_t first, uint64_t n, GError **errp)
{
    uint64_t npages = b->used_length / MRC_PAGE_SIZE;
    g_assert(first % MRC_RUN_PAGES == 0 && first + n <= npages);
    for (uint64_t p = first; p < first + n; p += MRC_RUN_PAGES) {
        uint64_t len = MIN(MRC_RUN_PAGES, npages - p);
        uint64_t want = b->sums[p / MRC_RUN_PAGES];
        uint64_t got = mrc_run_sum(hashes + (p - first), bmap, p, len);
        if (got != want) {
            error_setg(errp, "Checksum mismatch in ramblock %s at offset 0x%llx "
                       "(%llu pages at file offset 0x%llx): expected 0x%016llx, got 0x%016llx",
                       b->idstr, (unsigned long long)(p * MRC_PAGE_SIZE),
                       (unsigned long long)len,
                       (unsigned long long)(b->pages_offset + p * MRC_PAGE_SIZE),
                       (unsigned long long)want, (unsigned long long)got);
            return false;
        }
    }
    return true;
}

GByteArray *mrc_table_encode(const MrcTable *t, uint64_t offset)
{
    GByteArray *a = g_byte_array_new();
    uint8_t hdr[MRC_HEADER_SIZE], b8[8];
    uint64_t length = MRC_HEADER_SIZE + MRC_TRAILER_SIZE;

    for (guint i = 0; i < t->blocks->len; i++) {
        MrcBlock *b = g_ptr_array_index(t->blocks, i);
        length += 1 + strlen(b->idstr) + 24 + b->nruns * 8;
    }
    memcpy(hdr, MRC_MAGIC, 8);
    stl_be_p(hdr + 8, MRC_VERSION);
    stl_be_p(hdr + 12, 0);                     /* flags */
    stq_be_p(hdr + 16, length);
    stl_be_p(hdr + 24, MRC_RUN_PAGES);
    stl_be_p(hdr + 28, t->blocks->len);
    g_byte_array_append(a, hdr, sizeof(hdr));
    for (guint i = 0; i < t->blocks->len; i++) {
        MrcBlock *b = g_ptr_array_index(t->blocks, i);
        uint8_t idlen = strlen(b->idstr);
        g_byte_array_append(a, &idlen, 1);
        g_byte_array_append(a, (const uint8_t *)b->idstr, idlen);
        stq_be_p(b8, b->used_length);
        g_byte_array_append(a, b8, 8);
        stq_be_p(b8, b->pages_offset);
        g_byte_array_append(a, b8, 8);
        stq_be_p(b8, b->nruns);
        g_byte_array_append(a, b8, 8);
        for (uint64_t r = 0; r < b->nruns; r++) {
            stq_be_p(b8, b->sums[r]);
            g_byte_array_append(a, b8, 8);
        }
    }
    uint64_t self = XXH3_64bits(a->data, a->len);
    stq_be_p(b8, offset);
    g_byte_array_append(a, b8, 8);
    stq_be_p(b8, self);
    g_byte_array_append(a, b8, 8);
    g_byte_array_append(a, (const uint8_t *)MRC_TRAILER_MAGIC, 8);
    g_assert(a->len == length);
    return a;
}

void mrc_table_put(QEMUFile *f, const MrcTable *t)
{
    g_autoptr(GByteArray) a = mrc_table_encode(t, qemu_file_tell(f));
    qemu_put_buffer(f, a->data, a->len);
}

bool mrc_is_table(const uint8_t *buf, size_t n)
{
    return n >= 8 && memcmp(buf, MRC_MAGIC, 8) == 0;
}

bool mrc_is_table_start(const uint8_t *buf, size_t n)
{
    return n > 0 && n < 8 && memcmp(buf, MRC_MAGIC, n) == 0;
}

static void table_cut_short(uint64_t at, uint64_t len, GError **errp)
{
    error_setg(errp, "checksum table at offset 0x%llx: the file was cut short inside it "
               "(%llu bytes follow the vmdesc)", (unsigned long long)at,
               (unsigned long long)len);
}

/* One block entry at *pos; false when it does not fit in end. */
static bool decode_block(MrcTable *t, const uint8_t *buf, size_t end, size_t *pos,
                         uint64_t offset, GError **errp)
{
    size_t p = *pos;
    if (p + 1 > end || p + 1 + buf[p] + 24 > end) {
        error_setg(errp, "checksum table at offset 0x%llx: block entry %u at 0x%llx runs past "
                   "the table's end", (unsigned long long)offset, t->blocks->len,
                   (unsigned long long)(offset + p));
        return false;
    }
    g_autofree char *idstr = g_strndup((const char *)buf + p + 1, buf[p]);
    p += 1 + buf[p];
    uint64_t used = ldq_be_p(buf + p), pages_offset = ldq_be_p(buf + p + 8);
    uint64_t nruns = ldq_be_p(buf + p + 16);
    p += 24;
    if (used % MRC_PAGE_SIZE || nruns != mrc_runs(used / MRC_PAGE_SIZE)) {
        error_setg(errp, "checksum table at offset 0x%llx: ramblock %s has %llu runs for "
                   "0x%llx bytes (expected %llu)", (unsigned long long)offset, idstr,
                   (unsigned long long)nruns, (unsigned long long)used,
                   (unsigned long long)mrc_runs(used / MRC_PAGE_SIZE));
        return false;
    }
    if (nruns > (end - p) / 8) {
        error_setg(errp, "checksum table at offset 0x%llx: the %llu checksums of ramblock %s "
                   "run past the table's end", (unsigned long long)offset,
                   (unsigned long long)nruns, idstr);
        return false;
    }
    MrcBlock *b = mrc_table_add_block(t, idstr, used, pages_offset);
    for (uint64_t r = 0; r < nruns; r++, p += 8) {
        b->sums[r] = ldq_be_p(buf + p);
    }
    *pos = p;
    return true;
}

bool mrc_table_check_header(const uint8_t *hdr, uint64_t len, uint64_t offset, GError **errp)
{
    unsigned long long at = offset;
    if (!mrc_is_table(hdr, MRC_HEADER_SIZE)) {
        error_setg(errp, "checksum table at offset 0x%llx: no table magic \"%s\"", at, MRC_MAGIC);
        return false;
    }
    if (len < MRC_HEADER_SIZE + MRC_TRAILER_SIZE) {
        table_cut_short(offset, len, errp);
        return false;
    }
    uint32_t version = ldl_be_p(hdr + 8);
    uint64_t length = ldq_be_p(hdr + 16);
    if (version != MRC_VERSION) {
        error_setg(errp, "checksum table at offset 0x%llx: version %u is not supported "
                   "(expected %u)", at, version, MRC_VERSION);
        return false;
    }
    if (length != len) {
        error_setg(errp, "checksum table at offset 0x%llx: length %llu, but %llu bytes follow "
                   "the vmdesc", at, (unsigned long long)length, (unsigned long long)len);
        return false;
    }
    return true;
}

MrcTable *mrc_table_decode(const uint8_t *buf, size_t len, uint64_t offset, GError **errp)
{
    unsigned long long at = offset;
    if (!mrc_table_check_header(buf, len, offset, errp)) {
        return NULL;
    }
    uint32_t flags = ldl_be_p(buf + 12);
    uint32_t run_pages = ldl_be_p(buf + 24), nblocks = ldl_be_p(buf + 28);
    const uint8_t *tr = buf + len - MRC_TRAILER_SIZE;
    if (memcmp(tr + 16, MRC_TRAILER_MAGIC, 8) != 0 || ldq_be_p(tr) != offset) {
        error_setg(errp, "checksum table at offset 0x%llx: its trailer does not point back "
                   "to it", at);
        return NULL;
    }
    uint64_t self = XXH3_64bits(buf, len - MRC_TRAILER_SIZE);
    if (self != ldq_be_p(tr + 8)) {
        error_setg(errp, "checksum table at offset 0x%llx is damaged: its own checksum is "
                   "0x%016llx, the trailer says 0x%016llx", at, (unsigned long long)self,
                   (unsigned long long)ldq_be_p(tr + 8));
        return NULL;
    }
    if (flags || run_pages != MRC_RUN_PAGES) {
        error_setg(errp, "checksum table at offset 0x%llx: flags 0x%x and %u pages per run "
                   "are not supported (expected 0 and %u)", at, flags, run_pages,
                   MRC_RUN_PAGES);
        return NULL;
    }
    g_autoptr(MrcTable) t = mrc_table_new();
    size_t pos = MRC_HEADER_SIZE, end = len - MRC_TRAILER_SIZE;
    for (uint32_t i = 0; i < nblocks; i++) {
        if (!decode_block(t, buf, end, &pos, offset, errp)) {
            return NULL;
        }
    }
    if (pos != end) {
        error_setg(errp, "checksum table at offset 0x%llx: %zu stray bytes after its %u "
                   "blocks", at, end - pos, nblocks);
        return NULL;
    }
    t->offset = offset;
    t->length = len;   /* the header said so (checked) */
    return g_steal_pointer(&t);
}

bool mrc_table_read_trailer(IOChannel *ioc, MrcTable **out, GError **errp)
{
    uint8_t tr[MRC_TRAILER_SIZE];
    off_t size = io_channel_size(ioc, errp);

    *out = NULL;
    if (size < 0) {
        g_prefix_error(errp, "checksum table: ");
        return false;
    }
    if (size < MRC_HEADER_SIZE + MRC_TRAILER_SIZE) {
        return true;
    }
    if (!io_channel_pread_all(ioc, tr, sizeof(tr), size - MRC_TRAILER_SIZE, errp)) {
        g_prefix_error(errp, "checksum table: ");
        return false;
    }
    if (memcmp(tr + 16, MRC_TRAILER_MAGIC, 8) != 0) {
        return true;
    }
    uint64_t offset = ldq_be_p(tr);
    if (offset > (uint64_t)size - MRC_HEADER_SIZE - MRC_TRAILER_SIZE ||
        size - offset > MRC_MAX_TABLE) {
        error_setg(errp, "checksum table: the trailer at offset 0x%llx points to 0x%llx, "
                   "outside the file's last %llu bytes", (unsigned long long)size -
                   MRC_TRAILER_SIZE, (unsigned long long)offset,
                   (unsigned long long)MIN((uint64_t)size, MRC_MAX_TABLE));
        return false;
    }
    size_t len = size - offset;
    uint8_t hdr[MRC_HEADER_SIZE];
    if (!io_channel_pread_all(ioc, hdr, sizeof(hdr), offset, errp)) {
        g_prefix_error(errp, "checksum table: ");
        return false;
    }
    if (!mrc_table_check_header(hdr, len, offset, errp)) {
        return false;                     /* not read whole: it may claim up to 1 GiB */
    }
    g_autofree uint8_t *buf = g_malloc(len);
    if (!io_channel_pread_all(ioc, buf, len, offset, errp)) {
        g_prefix_error(errp, "checksum table: ");
        return false;
    }
    *out = mrc_table_decode(buf, len, offset, errp);
    return *out != NULL;
}

bool mrc_table_check_count(const MrcTable *t, guint file_blocks, GError **errp)
{
    if (t->blocks->len != file_blocks) {
        error_setg(errp, "checksum table at offset 0x%llx lists %u ramblocks, the file has %u",
                   (unsigned long long)t->offset, t->blocks->len, file_blocks);
        return false;
    }
    return true;
}

bool mrc_table_check_hidden(IOChannel *ioc, uint64_t eof_end, GError **errp)
{
    uint8_t d[5], hdr[MRC_HEADER_SIZE];
    off_t size = io_channel_size(ioc, errp);

    if (size < 0) {
        g_prefix_error(errp, "checksum table: ");
        return false;
    }
    if ((uint64_t)size < eof_end || (uint64_t)size - eof_end < sizeof(d)) {
        return true;                                /* no vmdesc: nothing follows */
    }
    if (!io_channel_pread_all(ioc, d, sizeof(d), eof_end, errp)) {
        g_prefix_error(errp, "checksum table: ");
        return false;
    }
    uint64_t at = eof_end + sizeof(d) + ldl_be_p(d + 1);
    if (d[0] != QEMU_VM_VMDESCRIPTION || (uint64_t)size <= at) {
        return true;
    }
    size_t n = MIN((uint64_t)sizeof(hdr), (uint64_t)size - at);
    if (!io_channel_pread_all(ioc, hdr, n, at, errp)) {
        g_prefix_error(errp, "checksum table: ");
        return false;
    }
    if (mrc_is_table_start(hdr, n)) {
        table_cut_short(at, n, errp);               /* within its magic */
        return false;
    }
    if (!mrc_is_table(hdr, n)) {
        return true;                                /* not ours: QEMU ignores what follows */
    }
    if (n < sizeof(hdr)) {
        table_cut_short(at, n, errp);               /* within its header */
        return false;
    }
    if (!mrc_table_check_header(hdr, size - at, at, errp)) {
        return false;
    }
    error_setg(errp, "checksum table at offset 0x%llx: the file does not end with its "
               "trailer (%llu bytes follow the vmdesc): the file was cut short or has "
               "bytes appended", (unsigned long long)at, (unsigned long long)(size - at));
    return false;
}

bool mrc_table_match(const MrcTable *t, const char *idstr, uint64_t used_length,
                     const MappedRamHeader *hdr, const MrcBlock **out, GError **errp)
{
    for (guint i = 0; i < t->blocks->len; i++) {
        MrcBlock *b = g_ptr_array_index(t->blocks, i);
        if (strcmp(b->idstr, idstr) != 0) {
            continue;
        }
        if (b->used_length != used_length || b->pages_offset != hdr->pages_offset) {
            error_setg(errp, "checksum table at offset 0x%llx: ramblock %s has 0x%llx bytes "
                       "at 0x%llx, the file's block 0x%llx bytes at 0x%llx",
                       (unsigned long long)t->offset, idstr,
                       (unsigned long long)b->used_length,
                       (unsigned long long)b->pages_offset, (unsigned long long)used_length,
                       (unsigned long long)hdr->pages_offset);
            return false;
        }
        *out = b;
        return true;
    }
    error_setg(errp, "checksum table at offset 0x%llx has no entry for ramblock %s",
               (unsigned long long)t->offset, idstr);
    return false;
}

bool mrc_loader_block(MrcLoader *l, IOChannel *ioc, const char *idstr, uint64_t used_length,
                      const MappedRamHeader *hdr, const MrcBlock **out, GError **errp)
{
    *out = NULL;
    if (!l->enabled) {
        return true;
    }
    if (!l->looked) {
        l->looked = true;
        if (!mrc_table_read_trailer(ioc, &l->table, errp)) {
            return false;
        }
        l->found = l->table != NULL;
    }
    return !l->table || mrc_table_match(l->table, idstr, used_length, hdr, out, errp);
}

bool mrc_loader_blocks_end(const MrcLoader *l, guint file_blocks, GError **errp)
{
    return !l->table || mrc_table_check_count(l->table, file_blocks, errp);
}

bool mrc_loader_eof(const MrcLoader *l, IOChannel *ioc, uint64_t eof_end, GError **errp)
{
    /* no mapped-ram block (a stream file), or checks off: nothing was looked for */
    if (!l->looked || l->found) {
        return true;
    }
    return mrc_table_check_hidden(ioc, eof_end, errp);
}

MrcTable *mrc_loader_take(MrcLoader *l)
{
    return g_steal_pointer(&l->table);
}

void mrc_loader_clear(MrcLoader *l)
{
    mrc_table_free(l->table);
    *l = (MrcLoader){ 0 };
}
