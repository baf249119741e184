/*
 * The checksum table of a mapped-ram file (docs/file-format.md §2.5),
 * byte by byte: the header, the block entries, the run checksums by the
 * rule (clear pages count as zero pages), the trailer; and every way a
 * damaged table or page is refused, with the exact message.  The sums
 * are recomputed here with libxxhash directly, not through the codec.
 */
#include "migration/mapped-ram-csum.h"
#include "util/bitmap.h"

#include <fcntl.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <xxhash.h>

#define PAGE 4096

static uint64_t be64_at(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v = v << 8 | p[i];
    }
    return v;
}

static uint32_t be32_at(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3];
}

static void test_zero_page_hash(void)
{
    g_autofree uint8_t *zero = g_malloc0(PAGE);
    g_assert_cmphex(XXH3_64bits(zero, PAGE), ==, MRC_ZERO_PAGE_HASH);
    g_assert_cmphex(mrc_page_hash(zero), ==, MRC_ZERO_PAGE_HASH);
}

/* The rule, spelled out: XXH3 of the little-endian page hashes, clear = zero page. */
static uint64_t expected_sum(const uint8_t *mem, const unsigned long *bmap, uint64_t first,
                             uint64_t n)
{
    uint8_t le[64 * 8];
    for (uint64_t i = 0; i < n; i++) {
        uint64_t h = test_bit(first + i, bmap) ? XXH3_64bits(mem + (first + i) * PAGE, PAGE)
                                               : MRC_ZERO_PAGE_HASH;
        for (int k = 0; k < 8; k++) {
            le[i * 8 + k] = h >> (8 * k);
        }
    }
    return XXH3_64bits(le, n * 8);
}

/* 130 pages: two whole runs and a last run of 2; pages 3 and 70 clear, their slots junk. */
#define NPAGES 130

typedef struct Fixture {
    uint8_t *mem;
    unsigned long *bmap;
    uint64_t hashes[NPAGES];
} Fixture;

static void fixture_init(Fixture *f)
{
    f->mem = g_malloc(NPAGES * PAGE);
    for (uint64_t i = 0; i < NPAGES * PAGE; i++) {
        f->mem[i] = (uint8_t)(i * 7 + i / PAGE);
    }
    f->bmap = bitmap_new(NPAGES);
    bitmap_set_range(f->bmap, 0, NPAGES);
    clear_bit(3, f->bmap);
    clear_bit(70, f->bmap);
    mrc_hash_pages(f->mem, NPAGES, f->hashes);
}

static void fixture_clear(Fixture *f)
{
    g_free(f->mem);
    g_free(f->bmap);
}

static MrcTable *fixture_table(Fixture *f)
{
    MrcTable *t = mrc_table_new();
    mrc_block_fill(mrc_table_add_block(t, "pc.ram", NPAGES * PAGE, 0x100000), f->bmap,
                   f->hashes);
    MrcBlock *b = mrc_table_add_block(t, "pc.bios", 64 * PAGE, 0xa900000);
    for (uint64_t r = 0; r < b->nruns; r++) {
        b->sums[r] = 0x0102030405060708ULL + r;
    }
    return t;
}

static void test_run_rule(void)
{
    Fixture f;
    fixture_init(&f);
    g_autoptr(MrcTable) t = fixture_table(&f);
    MrcBlock *b = g_ptr_array_index(t->blocks, 0);

    g_assert_cmpuint(b->nruns, ==, 3);
    g_assert_cmphex(b->sums[0], ==, expected_sum(f.mem, f.bmap, 0, 64));
    g_assert_cmphex(b->sums[1], ==, expected_sum(f.mem, f.bmap, 64, 64));
    g_assert_cmphex(b->sums[2], ==, expected_sum(f.mem, f.bmap, 128, 2));
    /* a clear page's slot is not summed: junk there changes nothing */
    uint64_t before = b->sums[0];
    f.hashes[3] ^= 1;
    g_assert_cmphex(mrc_run_sum(f.hashes, f.bmap, 0, 64), ==, before);
    /* a bit cleared in the bitmap changes the run's checksum */
    clear_bit(5, f.bmap);
    g_assert_cmphex(mrc_run_sum(f.hashes, f.bmap, 0, 64), !=, before);
    fixture_clear(&f);
}

static void test_layout(void)
{
    Fixture f;
    fixture_init(&f);
    g_autoptr(MrcTable) t = fixture_table(&f);
    const uint64_t at = 0xa940123;
    g_autoptr(GByteArray) a = mrc_table_encode(t, at);
    const uint8_t *p = a->data;
    /* 32 + (1 + 6 + 24 + 3 * 8) + (1 + 7 + 24 + 1 * 8) + 24 */
    const size_t len = 32 + 55 + 40 + 24;

    g_assert_cmpuint(a->len, ==, len);
    g_assert_cmpmem(p, 8, "MRAMCSUM", 8);
    g_assert_cmpuint(be32_at(p + 8), ==, 1);          /* version */
    g_assert_cmpuint(be32_at(p + 12), ==, 0);         /* flags */
    g_assert_cmpuint(be64_at(p + 16), ==, len);       /* length */
    g_assert_cmpuint(be32_at(p + 24), ==, 64);        /* pages per run */
    g_assert_cmpuint(be32_at(p + 28), ==, 2);         /* blocks */
    p += 32;
    g_assert_cmpuint(p[0], ==, 6);
    g_assert_cmpmem(p + 1, 6, "pc.ram", 6);
    g_assert_cmphex(be64_at(p + 7), ==, NPAGES * PAGE);
    g_assert_cmphex(be64_at(p + 15), ==, 0x100000);
    g_assert_cmpuint(be64_at(p + 23), ==, 3);
    g_assert_cmphex(be64_at(p + 31), ==, expected_sum(f.mem, f.bmap, 0, 64));
    g_assert_cmphex(be64_at(p + 39), ==, expected_sum(f.mem, f.bmap, 64, 64));
    g_assert_cmphex(be64_at(p + 47), ==, expected_sum(f.mem, f.bmap, 128, 2));
    p += 55;
    g_assert_cmpuint(p[0], ==, 7);
    g_assert_cmpmem(p + 1, 7, "pc.bios", 7);
    g_assert_cmphex(be64_at(p + 8), ==, 64 * PAGE);
    g_assert_cmphex(be64_at(p + 16), ==, 0xa900000);
    g_assert_cmpuint(be64_at(p + 24), ==, 1);
    g_assert_cmphex(be64_at(p + 32), ==, 0x0102030405060708ULL);
    p += 40;
    g_assert_cmphex(be64_at(p), ==, at);              /* trailer: the table's offset */
    g_assert_cmphex(be64_at(p + 8), ==, XXH3_64bits(a->data, len - 24));
    g_assert_cmpmem(p + 16, 8, "MRAMCEND", 8);

    /* and back */
    GError *err = NULL;
    g_autoptr(MrcTable) d = mrc_table_decode(a->data, a->len, at, &err);
    g_assert_no_error(err);
    g_assert_cmpuint(d->offset, ==, at);
    g_assert_cmpuint(d->length, ==, len);
    g_assert_cmpuint(d->blocks->len, ==, 2);
    MrcBlock *b0 = g_ptr_array_index(d->blocks, 0), *b1 = g_ptr_array_index(d->blocks, 1);
    g_assert_cmpstr(b0->idstr, ==, "pc.ram");
    g_assert_cmpmem(b0->sums, 24, ((MrcBlock *)g_ptr_array_index(t->blocks, 0))->sums, 24);
    g_assert_cmpstr(b1->idstr, ==, "pc.bios");
    g_assert_cmphex(b1->sums[0], ==, 0x0102030405060708ULL);
    fixture_clear(&f);
}

static void decode_fails(GByteArray *a, uint64_t at, const char *want)
{
    GError *err = NULL;
    g_assert_null(mrc_table_decode(a->data, a->len, at, &err));
    g_assert_nonnull(err);
    g_assert_cmpstr(err->message, ==, want);
    g_error_free(err);
}

static void test_damaged(void)
{
    Fixture f;
    fixture_init(&f);
    g_autoptr(MrcTable) t = fixture_table(&f);
    g_autoptr(GByteArray) a = mrc_table_encode(t, 0x200);
    uint64_t self = XXH3_64bits(a->data, a->len - 24);

    a->data[8 + 3] = 2;                                   /* version 2 */
    decode_fails(a, 0x200, "checksum table at offset 0x200: version 2 is not supported "
                 "(expected 1)");
    a->data[8 + 3] = 1;
    a->data[40] ^= 0x10;                                  /* a bit of the first sum */
    g_autofree char *want = g_strdup_printf(
        "checksum table at offset 0x200 is damaged: its own checksum is 0x%016llx, the "
        "trailer says 0x%016llx", (unsigned long long)XXH3_64bits(a->data, a->len - 24),
        (unsigned long long)self);
    decode_fails(a, 0x200, want);
    a->data[40] ^= 0x10;
    decode_fails(a, 0x300, "checksum table at offset 0x300: its trailer does not point "
                 "back to it");
    g_byte_array_set_size(a, a->len - 1);
    decode_fails(a, 0x200, "checksum table at offset 0x200: length 151, but 150 bytes "
                 "follow the vmdesc");
    fixture_clear(&f);
}

static long max_rss_kib(void)
{
    struct rusage ru;
    g_assert_cmpint(getrusage(RUSAGE_SELF, &ru), ==, 0);
    return ru.ru_maxrss;
}

/*
 * A loader finds the table from the trailer at the file's end.  When the
 * header it points to gives another length than the bytes that follow,
 * the table is refused from the header alone: 256 MiB of file (a hole)
 * between header and trailer are not read into memory first.
 */
static void test_trailer_header_first(void)
{
    Fixture f;
    fixture_init(&f);
    g_autoptr(MrcTable) t = fixture_table(&f);
    g_autoptr(GByteArray) a = mrc_table_encode(t, 0x1000);
    g_autofree char *dir = g_dir_make_tmp("test-mapped-ram-csum-XXXXXX", NULL);
    g_autofree char *path = g_build_filename(dir, "f", NULL);
    uint64_t size = 256ULL << 20;
    GError *err = NULL;
    MrcTable *out = NULL;

    int fd = open(path, O_RDWR | O_CREAT, 0600);
    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(pwrite(fd, a->data, a->len, 0x1000), ==, a->len);
    g_assert_cmpint(pwrite(fd, a->data + a->len - MRC_TRAILER_SIZE, MRC_TRAILER_SIZE,
                           size - MRC_TRAILER_SIZE), ==, MRC_TRAILER_SIZE);
    close(fd);
    IOChannel *ioc = io_channel_file_open(path, O_RDONLY, 0, &err);
    g_assert_no_error(err);
    long rss0 = max_rss_kib();
    g_assert_false(mrc_table_read_trailer(ioc, &out, &err));
    g_autofree char *want = g_strdup_printf(
        "checksum table at offset 0x1000: length %u, but %llu bytes follow the vmdesc",
        a->len, (unsigned long long)(size - 0x1000));
    g_assert_cmpstr(err->message, ==, want);
    g_assert_null(out);
    g_assert_cmpint(max_rss_kib() - rss0, <, 64 * 1024);
    g_error_free(err);
    io_channel_unref(ioc);
    unlink(path);
    rmdir(dir);
    fixture_clear(&f);
}

static void test_check_runs(void)
{
    Fixture f;
    fixture_init(&f);
    g_autoptr(MrcTable) t = fixture_table(&f);
    MrcBlock *b = g_ptr_array_index(t->blocks, 0);
    GError *err = NULL;

    g_assert_true(mrc_check_runs(b, f.bmap, f.hashes, 0, NPAGES, &err));
    g_assert_true(mrc_check_runs(b, f.bmap, f.hashes + 64, 64, 66, &err));
    g_assert_no_error(err);
    /* a bit flipped in page 100 (run 1, block offset 0x40000) */
    f.mem[100 * PAGE + 17] ^= 4;
    mrc_hash_pages(f.mem + 100 * PAGE, 1, &f.hashes[100]);
    uint64_t got = expected_sum(f.mem, f.bmap, 64, 64);
    g_assert_false(mrc_check_runs(b, f.bmap, f.hashes, 0, NPAGES, &err));
    g_autofree char *want = g_strdup_printf(
        "Checksum mismatch in ramblock pc.ram at offset 0x40000 (64 pages at file offset "
        "0x140000): expected 0x%016llx, got 0x%016llx", (unsigned long long)b->sums[1],
        (unsigned long long)got);
    g_assert_cmpstr(err->message, ==, want);
    g_clear_error(&err);
    /* the first run alone is still right */
    g_assert_true(mrc_check_runs(b, f.bmap, f.hashes, 0, 64, &err));
    fixture_clear(&f);
}

static void test_match(void)
{
    Fixture f;
    fixture_init(&f);
    g_autoptr(MrcTable) t = fixture_table(&f);
    MappedRamHeader hdr = { .version = 1, .page_size = PAGE, .pages_offset = 0x100000 };
    const MrcBlock *b = NULL;
    GError *err = NULL;

    t->offset = 0x5000;
    g_assert_true(mrc_table_match(t, "pc.ram", NPAGES * PAGE, &hdr, &b, &err));
    g_assert_cmpstr(b->idstr, ==, "pc.ram");
    g_assert_false(mrc_table_match(t, "vga.vram", NPAGES * PAGE, &hdr, &b, &err));
    g_assert_cmpstr(err->message, ==, "checksum table at offset 0x5000 has no entry for "
                    "ramblock vga.vram");
    g_clear_error(&err);
    hdr.pages_offset = 0x200000;
    g_assert_false(mrc_table_match(t, "pc.ram", NPAGES * PAGE, &hdr, &b, &err));
    g_assert_cmpstr(err->message, ==, "checksum table at offset 0x5000: ramblock pc.ram has "
                    "0x82000 bytes at 0x100000, the file's block 0x82000 bytes at 0x200000");
    g_clear_error(&err);
    fixture_clear(&f);
}

/* A table that lists a block the file's block list lacks is refused. */
static void test_count(void)
{
    g_autoptr(MrcTable) t = mrc_table_new();
    GError *err = NULL;

    mrc_table_add_block(t, "pc.ram", 64 * 4096, 0x100000);
    mrc_table_add_block(t, "pc.bios", 4096, 0x200000);
    t->offset = 0x300000;
    g_assert_true(mrc_table_check_count(t, 2, &err));
    g_assert_no_error(err);
    g_assert_false(mrc_table_check_count(t, 1, &err));
    g_assert_cmpstr(err->message, ==,
                    "checksum table at offset 0x300000 lists 2 ramblocks, the file has 1");
    g_error_free(err);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/mapped-ram/checksums/zero-page-hash", test_zero_page_hash);
    g_test_add_func("/mapped-ram/checksums/count", test_count);
    g_test_add_func("/mapped-ram/checksums/run-rule", test_run_rule);
    g_test_add_func("/mapped-ram/checksums/layout", test_layout);
    g_test_add_func("/mapped-ram/checksums/damaged", test_damaged);
    g_test_add_func("/mapped-ram/checksums/trailer-header-first", test_trailer_header_first);
    g_test_add_func("/mapped-ram/checksums/check-runs", test_check_runs);
    g_test_add_func("/mapped-ram/checksums/match", test_match);
    return g_test_run();
}
