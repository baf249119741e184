/*
 * The ram section's encoder, byte for byte against hand-built records
 * (reference §2-§4), and what it writes read back by the decoder.
 */
#include <string.h>

#include "io/channel.h"
#include "migration/qemu-file.h"
#include "migration/ram-codec.h"
#include "migration/savevm.h"

/* The record flags, raw (the codec keeps its names to itself). */
#define FLAG_ZERO          0x002
#define FLAG_MEM_SIZE      0x004
#define FLAG_PAGE          0x008
#define FLAG_EOS           0x010
#define FLAG_CONTINUE      0x020

static void put_u8(GByteArray *b, uint8_t v)
{
    g_byte_array_append(b, &v, 1);
}

static void put_be32(GByteArray *b, uint32_t v)
{
    for (int i = 3; i >= 0; i--) {
        put_u8(b, v >> (8 * i));
    }
}

static void put_be64(GByteArray *b, uint64_t v)
{
    put_be32(b, v >> 32);
    put_be32(b, v);
}

static void put_str(GByteArray *b, const char *s)
{
    put_u8(b, strlen(s));
    g_byte_array_append(b, (const uint8_t *)s, strlen(s));
}

static void fill_page(uint8_t *p, uint8_t seed)
{
    for (int i = 0; i < 4096; i++) {
        p[i] = seed + i;
    }
}

/* Run encode(f) on a fresh buffer channel; the bytes it wrote. */
static GByteArray *encoded(void (*encode)(QEMUFile *f, void *opaque), void *opaque)
{
    g_autoptr(IOChannel) ioc = io_channel_buffer_new(0);
    QEMUFile *f = qemu_file_new_output(ioc, 0);
    GError *err = NULL;
    size_t len;

    encode(f, opaque);
    g_assert_true(qemu_fclose(f, &err));
    g_assert_no_error(err);
    const uint8_t *data = io_channel_buffer_data(ioc, &len);
    GByteArray *b = g_byte_array_new();
    g_byte_array_append(b, data, len);
    return b;
}

static void assert_bytes(GByteArray *got, GByteArray *want)
{
    g_assert_cmpuint(got->len, ==, want->len);
    g_assert_cmpmem(got->data, got->len, want->data, want->len);
}

typedef struct Pages {
    uint8_t a[4096], b[4096];
} Pages;

/* Two blocks; records switch block and come back, so CONTINUE goes on and off. */
static void encode_stream(QEMUFile *f, void *opaque)
{
    Pages *p = opaque;
    RamEncoder e;

    ram_encoder_init(&e);
    ram_encode_mem_size(&e, f, 3 * 4096);
    g_assert_true(ram_encode_block(&e, f, "pc.ram", 2 * 4096, NULL, NULL));
    g_assert_true(ram_encode_block(&e, f, "rom", 4096, NULL, NULL));
    ram_encode_eos(f);
    ram_encode_page(&e, f, 0, 0, p->a);
    ram_encode_zero_page(&e, f, 0, 4096);
    ram_encode_page(&e, f, 1, 0, p->b);
    ram_encode_zero_page(&e, f, 0, 4096);
    ram_encode_eos(f);
    ram_encoder_clear(&e);
}

static GByteArray *expected_stream(Pages *p)
{
    GByteArray *w = g_byte_array_new();
    put_be64(w, 3 * 4096 | FLAG_MEM_SIZE);
    put_str(w, "pc.ram");
    put_be64(w, 2 * 4096);
    put_str(w, "rom");
    put_be64(w, 4096);
    put_be64(w, FLAG_EOS);
    put_be64(w, 0 | FLAG_PAGE);
    put_str(w, "pc.ram");
    g_byte_array_append(w, p->a, 4096);
    put_be64(w, 4096 | FLAG_ZERO | FLAG_CONTINUE);
    put_u8(w, 0);
    put_be64(w, 0 | FLAG_PAGE);
    put_str(w, "rom");
    g_byte_array_append(w, p->b, 4096);
    put_be64(w, 4096 | FLAG_ZERO);
    put_str(w, "pc.ram");
    put_u8(w, 0);
    put_be64(w, FLAG_EOS);
    return w;
}

static void test_encode_stream(void)
{
    Pages p;
    fill_page(p.a, 1);
    fill_page(p.b, 7);
    g_autoptr(GByteArray) got = encoded(encode_stream, &p);
    g_autoptr(GByteArray) want = expected_stream(&p);
    assert_bytes(got, want);
}

/* A new block list starts without a last block: the next record names its block. */
static void encode_twice(QEMUFile *f, void *opaque)
{
    RamEncoder e;

    ram_encoder_init(&e);
    ram_encode_mem_size(&e, f, 4096);
    g_assert_true(ram_encode_block(&e, f, "a", 4096, NULL, NULL));
    ram_encode_zero_page(&e, f, 0, 0);
    ram_encode_mem_size(&e, f, 4096);
    g_assert_true(ram_encode_block(&e, f, "b", 4096, NULL, NULL));
    ram_encode_zero_page(&e, f, 0, 0);
    ram_encoder_clear(&e);
}

static void test_encode_new_list(void)
{
    g_autoptr(GByteArray) got = encoded(encode_twice, NULL);
    g_autoptr(GByteArray) want = g_byte_array_new();
    for (int i = 0; i < 2; i++) {
        put_be64(want, 4096 | FLAG_MEM_SIZE);
        put_str(want, i ? "b" : "a");
        put_be64(want, 4096);
        put_be64(want, 0 | FLAG_ZERO);
        put_str(want, i ? "b" : "a");
        put_u8(want, 0);
    }
    assert_bytes(got, want);
}

/* mapped-ram: the header after the generic fields, the stream past the region. */
static void encode_mapped(QEMUFile *f, void *opaque)
{
    MappedRamHeader *hdr = opaque;
    RamEncoder e;
    GError *err = NULL;

    ram_encoder_init(&e);
    ram_encode_mem_size(&e, f, 2 * 4096);
    g_assert_true(ram_encode_block(&e, f, "pc.ram", 2 * 4096, hdr, &err));
    g_assert_no_error(err);
    ram_encode_eos(f);
    ram_encoder_clear(&e);
}

static void test_encode_mapped(void)
{
    MappedRamHeader hdr;
    g_autoptr(GByteArray) got = encoded(encode_mapped, &hdr);
    /* be64 + str8 "pc.ram" + be64 = 23 bytes, then the 28-byte header */
    g_assert_cmpuint(hdr.version, ==, 1);
    g_assert_cmpuint(hdr.page_size, ==, 4096);
    g_assert_cmpuint(hdr.bitmap_offset, ==, 23 + 28);
    g_assert_cmpuint(hdr.pages_offset, ==, 1024 * 1024);

    g_autoptr(GByteArray) want = g_byte_array_new();
    put_be64(want, 2 * 4096 | FLAG_MEM_SIZE);
    put_str(want, "pc.ram");
    put_be64(want, 2 * 4096);
    put_be32(want, 1);
    put_be64(want, 4096);
    put_be64(want, 23 + 28);
    put_be64(want, 1024 * 1024);
    g_byte_array_set_size(want, 1024 * 1024 + 2 * 4096);
    memset(want->data + 23 + 28, 0, want->len - 23 - 28);
    put_be64(want, FLAG_EOS);
    assert_bytes(got, want);
}

/* --- read back ------------------------------------------------------------ */

typedef struct Record {
    unsigned idx;
    uint64_t offset;
    bool zero;
    uint8_t first_byte;
} Record;

typedef struct Collect {
    uint64_t total;
    GPtrArray *names;
    GArray *records;
    uint8_t page[4096];
} Collect;

static bool c_mem_size(void *opaque, uint64_t total, GError **errp)
{
    ((Collect *)opaque)->total = total;
    return true;
}

static bool c_block(void *opaque, QEMUFile *f, unsigned idx, const char *idstr,
                    uint64_t used_length, const MappedRamHeader *hdr, GError **errp)
{
    Collect *c = opaque;
    g_assert_cmpuint(idx, ==, c->names->len);
    g_ptr_array_add(c->names, g_strdup(idstr));
    return true;
}

static uint8_t *c_page_dest(void *opaque, unsigned idx, uint64_t offset, GError **errp)
{
    return ((Collect *)opaque)->page;
}

static bool c_page(void *opaque, unsigned idx, uint64_t offset, bool zero, GError **errp)
{
    Collect *c = opaque;
    Record r = { idx, offset, zero, zero ? 0 : c->page[0] };
    g_array_append_val(c->records, r);
    return true;
}

static const RamSink collect_sink = {
    .mem_size = c_mem_size, .block = c_block, .page_dest = c_page_dest, .page = c_page,
};

static void test_round_trip(void)
{
    Pages p;
    fill_page(p.a, 1);
    fill_page(p.b, 7);
    g_autoptr(GByteArray) bytes = encoded(encode_stream, &p);
    g_autoptr(IOChannel) ioc = io_channel_buffer_new_data(bytes->data, bytes->len);
    QEMUFile *f = qemu_file_new_input(ioc, 0);
    Collect c = { 0 };
    RamDecoder d;
    GError *err = NULL;

    c.names = g_ptr_array_new_with_free_func(g_free);
    c.records = g_array_new(FALSE, FALSE, sizeof(Record));
    ram_decoder_init(&d, false);
    g_assert_true(ram_decode_section(&d, f, QEMU_VM_SECTION_START, &collect_sink, &c, &err));
    g_assert_true(ram_decode_section(&d, f, QEMU_VM_SECTION_PART, &collect_sink, &c, &err));
    g_assert_no_error(err);
    g_assert_true(qemu_file_at_eof(f));

    g_assert_cmpuint(c.total, ==, 3 * 4096);
    g_assert_cmpuint(d.total, ==, 3 * 4096);
    g_assert_cmpuint(c.names->len, ==, 2);
    g_assert_cmpstr(g_ptr_array_index(c.names, 0), ==, "pc.ram");
    g_assert_cmpstr(g_ptr_array_index(c.names, 1), ==, "rom");
    static const Record want[] = {
        { 0, 0, false, 1 }, { 0, 4096, true, 0 }, { 1, 0, false, 7 }, { 0, 4096, true, 0 },
    };
    g_assert_cmpuint(c.records->len, ==, G_N_ELEMENTS(want));
    for (guint i = 0; i < G_N_ELEMENTS(want); i++) {
        Record *r = &g_array_index(c.records, Record, i);
        g_assert_cmpuint(r->idx, ==, want[i].idx);
        g_assert_cmpuint(r->offset, ==, want[i].offset);
        g_assert_cmpint(r->zero, ==, want[i].zero);
        g_assert_cmpuint(r->first_byte, ==, want[i].first_byte);
    }
    ram_decoder_clear(&d);
    qemu_fclose(f, NULL);
    g_ptr_array_unref(c.names);
    g_array_unref(c.records);
}

/*
 * Decode the START section's bytes w, which must fail with want; the
 * number of blocks the sink saw before.
 */
static guint start_must_fail(GByteArray *w, bool mapped_ram, const char *want)
{
    g_autoptr(IOChannel) ioc = io_channel_buffer_new_data(w->data, w->len);
    QEMUFile *f = qemu_file_new_input(ioc, 0);
    Collect c = { 0 };
    RamDecoder d;
    GError *err = NULL;

    c.names = g_ptr_array_new_with_free_func(g_free);
    c.records = g_array_new(FALSE, FALSE, sizeof(Record));
    ram_decoder_init(&d, mapped_ram);
    g_assert_false(ram_decode_section(&d, f, QEMU_VM_SECTION_START, &collect_sink, &c, &err));
    g_assert_nonnull(err);
    g_assert_cmpstr(err->message, ==, want);
    g_error_free(err);
    ram_decoder_clear(&d);
    qemu_fclose(f, NULL);
    guint seen = c.names->len;
    g_ptr_array_unref(c.names);
    g_array_unref(c.records);
    return seen;
}

/*
 * A block listed twice (a crafted or damaged file) is refused: a second
 * record would load over the first, or race it.
 */
static void test_block_listed_twice(void)
{
    g_autoptr(GByteArray) w = g_byte_array_new();
    put_be64(w, 3 * 4096 | FLAG_MEM_SIZE);
    put_str(w, "rom");
    put_be64(w, 4096);
    put_str(w, "pc.ram");
    put_be64(w, 4096);
    put_str(w, "rom");
    put_be64(w, 4096);
    put_be64(w, FLAG_EOS);
    /* the sink never saw the second */
    g_assert_cmpuint(start_must_fail(w, false, "RAM block 'rom' listed twice"), ==, 2);
}

/* A mapped-ram block record cut inside its 28-byte header: QEMU's words. */
static void test_mapped_header_short(void)
{
    g_autoptr(GByteArray) w = g_byte_array_new();
    put_be64(w, 4096 | FLAG_MEM_SIZE);
    put_str(w, "rom");
    put_be64(w, 4096);
    put_be32(w, 1);                                 /* version, then 8 of the other 24 bytes */
    put_be32(w, 0);
    put_be32(w, 4096);
    start_must_fail(w, true, "Could not read whole mapped-ram migration header "
                    "(expected 28, got 12 bytes)");
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/migration/ram/codec/encode/stream", test_encode_stream);
    g_test_add_func("/migration/ram/codec/encode/new-block-list", test_encode_new_list);
    g_test_add_func("/migration/ram/codec/encode/mapped-ram", test_encode_mapped);
    g_test_add_func("/migration/ram/codec/round-trip", test_round_trip);
    g_test_add_func("/migration/ram/codec/block-listed-twice", test_block_listed_twice);
    g_test_add_func("/migration/ram/codec/mapped-ram/header-short", test_mapped_header_short);
    return g_test_run();
}
