/*
 * The mapped-ram file a stopped mapram-vm writes to file:, read byte by
 * byte against the reference (§3): per block the generic fields, the
 * 28-byte big-endian MappedRamHeader with absolute offsets, the LSB-first
 * bitmap right after it, the page region at the next 1 MiB boundary and
 * the next record right after the region.  Every bitmap bit is checked
 * against the guest's memory, every slot with a set bit against the
 * guest page, and zero pages must be holes.  With ",offset=4096" the
 * prefix must survive and every offset must include it.
 */
#include "stream-check.h"
#include "migration-helpers.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FLAG_MEM_SIZE 0x004
#define FLAG_EOS      0x010
#define HDR_SIZE      28

typedef struct MappedBlock {
    char *idstr;
    uint64_t length;
    uint64_t bitmap_offset;
    uint64_t pages_offset;
    uint64_t bitmap_size;
} MappedBlock;

static void mapped_block_free(gpointer p)
{
    MappedBlock *b = p;
    g_free(b->idstr);
    g_free(b);
}

static uint64_t round_up(uint64_t v, uint64_t to)
{
    return (v + to - 1) / to * to;
}

/* START body: MEM_SIZE, then per block generic fields + header, EOS. */
static GPtrArray *parse_blocks(ByteReader *r)
{
    GPtrArray *blocks = g_ptr_array_new_with_free_func(mapped_block_free);
    uint64_t v = br_be64(r);
    uint64_t total = v & ~(uint64_t)(TEST_PAGE_SIZE - 1);
    uint64_t sum = 0;

    g_assert_cmphex(v & (TEST_PAGE_SIZE - 1), ==, FLAG_MEM_SIZE);
    while (sum < total) {
        MappedBlock *b = g_new0(MappedBlock, 1);
        b->idstr = br_counted(r);
        b->length = br_be64(r);
        g_assert_cmpuint(b->length % TEST_PAGE_SIZE, ==, 0);
        size_t hdr_at = r->pos;
        g_assert_cmpuint(br_be32(r), ==, 1);                 /* version */
        g_assert_cmpuint(br_be64(r), ==, TEST_PAGE_SIZE);    /* page_size */
        b->bitmap_offset = br_be64(r);
        b->pages_offset = br_be64(r);
        g_assert_cmpuint(r->pos - hdr_at, ==, HDR_SIZE);
        uint64_t npages = b->length / TEST_PAGE_SIZE;
        b->bitmap_size = (npages + 63) / 64 * 8;
        /* absolute: the file position right after the header */
        g_assert_cmphex(b->bitmap_offset, ==, r->pos);
        g_assert_cmphex(b->pages_offset, ==,
                        round_up(b->bitmap_offset + b->bitmap_size, MiB_));
        r->pos = b->pages_offset + b->length;     /* the next record is there */
        sum += b->length;
        g_ptr_array_add(blocks, b);
    }
    g_assert_cmpuint(sum, ==, total);
    g_assert_cmphex(br_be64(r), ==, FLAG_EOS);

    g_assert_cmpuint(blocks->len, ==, 3);
    const char *names[] = { "pc.ram", "vga.vram", "pc.bios" };
    const uint64_t lengths[] = { 64 * MiB_, 16 * MiB_, 256 * 1024 };
    for (guint i = 0; i < 3; i++) {
        MappedBlock *b = g_ptr_array_index(blocks, i);
        g_assert_cmpstr(b->idstr, ==, names[i]);
        g_assert_cmpuint(b->length, ==, lengths[i]);
    }
    return blocks;
}

/* PART and END carry nothing but EOS; switchover-start right before END. */
static void parse_iterations(ByteReader *r, uint32_t sid)
{
    const uint8_t part[] = { 0x02, sid >> 24, sid >> 16, sid >> 8, sid,
                             0, 0, 0, 0, 0, 0, 0, 0x10,
                             0x7e, sid >> 24, sid >> 16, sid >> 8, sid };
    uint8_t end[sizeof(part)];

    memcpy(end, part, sizeof(part));
    end[0] = 0x03;
    while (br_peek(r) == 0x02) {
        br_expect(r, part, sizeof(part), "PART section");
    }
    br_expect(r, "\x08\x00\x0b\x00\x00", 5, "switchover-start command");
    br_expect(r, end, sizeof(end), "END section");
}

static bool page_is_zero(const uint8_t *p)
{
    for (unsigned i = 0; i < TEST_PAGE_SIZE; i++) {
        if (p[i]) {
            return false;
        }
    }
    return true;
}

/* Bit i = bit i%8 of byte i/8; set iff the guest page is not zero. */
static uint64_t check_block_pages(QTestState *s, const char *dir, const uint8_t *file,
                                  size_t file_len, MappedBlock *b)
{
    g_autofree uint8_t *guest = vm_read_block(s, dir, b->idstr, b->length);
    const uint8_t *bmap = file + b->bitmap_offset;
    uint64_t npages = b->length / TEST_PAGE_SIZE;
    uint64_t set = 0;

    g_assert_cmpuint(b->bitmap_offset + b->bitmap_size, <=, b->pages_offset);
    g_assert_cmpuint(b->pages_offset + b->length, <=, file_len);
    for (uint64_t i = 0; i < npages; i++) {
        bool bit = bmap[i / 8] >> (i % 8) & 1;
        const uint8_t *gp = guest + i * TEST_PAGE_SIZE;
        const uint8_t *slot = file + b->pages_offset + i * TEST_PAGE_SIZE;
        if (bit != !page_is_zero(gp)) {
            g_error("block %s page %" G_GUINT64_FORMAT ": bitmap bit %d but the guest "
                    "page is %s", b->idstr, i, bit, bit ? "zero" : "not zero");
        }
        if (bit && memcmp(slot, gp, TEST_PAGE_SIZE) != 0) {
            g_error("block %s page %" G_GUINT64_FORMAT ": file slot at 0x%" G_GINT64_MODIFIER
                    "x differs from guest memory", b->idstr, i,
                    b->pages_offset + i * TEST_PAGE_SIZE);
        }
        if (!bit) {
            g_assert_true(page_is_zero(slot));
        }
        set += bit;
    }
    /* bits past the last page are zero */
    for (uint64_t i = npages; i < b->bitmap_size * 8; i++) {
        g_assert_cmpuint(bmap[i / 8] >> (i % 8) & 1, ==, 0);
    }
    return set;
}

/* Zero pages are never written: the file is sparse. */
static void check_holes(const char *path, GPtrArray *blocks)
{
    int fd = open(path, O_RDONLY);
    struct stat st;
    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(fstat(fd, &st), ==, 0);
    /* 64 MiB main RAM 70 % zero + an all-zero 16 MiB framebuffer */
    g_test_message("file: %lld bytes, %lld allocated", (long long)st.st_size,
                   (long long)st.st_blocks * 512);
    g_assert_cmpuint((uint64_t)st.st_blocks * 512, <, (uint64_t)st.st_size / 2);

    /* The framebuffer is all zero: no data anywhere in its page region. */
    MappedBlock *vga = g_ptr_array_index(blocks, 1);
    g_assert_cmpstr(vga->idstr, ==, "vga.vram");
    off_t hole = lseek(fd, 0, SEEK_HOLE);
    if (hole >= 0 && hole < st.st_size) {       /* the filesystem reports holes */
        off_t data = lseek(fd, vga->pages_offset, SEEK_DATA);
        g_test_message("first data at or after vga.vram's pages: %lld", (long long)data);
        g_assert_true(data < 0 ? errno == ENXIO : (uint64_t)data >= vga->pages_offset + vga->length);
    }
    close(fd);
}

static void check_tool(const char *file_arg, GPtrArray *blocks)
{
    const char *info_argv[] = { "info", "--json", file_arg, NULL };
    const char *verify_argv[] = { "verify", file_arg, NULL };
    int status;
    g_autofree char *out = run_mapram_tool(info_argv, &status);
    g_assert_cmpint(status, ==, 0);
    g_autoptr(JsonParser) p = json_parser_new();
    g_assert_true(json_parser_load_from_data(p, out, -1, NULL));
    JsonObject *o = json_node_get_object(json_parser_get_root(p));
    g_assert_cmpstr(json_object_get_string_member(o, "format"), ==, "mapped-ram");
    JsonArray *caps = json_object_get_array_member(o, "capabilities");
    g_assert_cmpuint(json_array_get_length(caps), ==, 1);
    g_assert_cmpstr(json_array_get_string_element(caps, 0), ==, "mapped-ram");
    JsonArray *jb = json_object_get_array_member(o, "blocks");
    g_assert_cmpuint(json_array_get_length(jb), ==, blocks->len);
    for (guint i = 0; i < blocks->len; i++) {
        MappedBlock *b = g_ptr_array_index(blocks, i);
        JsonObject *k = json_array_get_object_element(jb, i);
        g_assert_cmpstr(json_object_get_string_member(k, "name"), ==, b->idstr);
        g_assert_cmpuint(json_object_get_int_member(k, "bitmap-offset"), ==, b->bitmap_offset);
        g_assert_cmpuint(json_object_get_int_member(k, "pages-offset"), ==, b->pages_offset);
    }
    g_free(run_mapram_tool(verify_argv, &status));
    g_assert_cmpint(status, ==, 0);
}

static void run_layout(uint64_t offset)
{
    g_autofree char *dir = qtest_mkdtemp("fmt-mapped");
    g_autofree char *path = g_build_filename(dir, "mapped.img", NULL);
    g_autofree char *uri = offset ?
        g_strdup_printf("file:%s,offset=%" G_GUINT64_FORMAT, path, offset) :
        g_strdup_printf("file:%s", path);
    QTestState *s = vm_start_stopped(dir);
    size_t len;

    if (offset) {
        g_autofree char *prefix = g_malloc(offset);
        memset(prefix, 'X', offset);
        g_assert_true(g_file_set_contents(path, prefix, offset, NULL));
    }
    vm_save(s, uri, true);
    g_autofree uint8_t *data = read_whole_file(path, &len);
    ByteReader r = { .buf = data, .len = len, .pos = offset };

    for (uint64_t i = 0; i < offset; i++) {
        g_assert_cmpuint(data[i], ==, 'X');
    }
    check_file_header(&r, TEST_MACHINE, true);
    g_assert_cmpuint(r.pos, ==, offset + 8 + 63);
    uint32_t sid = check_ram_start_header(&r);
    g_autoptr(GPtrArray) blocks = parse_blocks(&r);
    check_footer(&r, sid);
    parse_iterations(&r, sid);
    g_autoptr(GPtrArray) devices = NULL;
    JsonObject *vmdesc = check_stream_tail(&r, &devices);
    json_object_unref(vmdesc);

    uint64_t set_main = 0, set_vga = 0, set_bios = 0;
    set_main = check_block_pages(s, dir, data, len, g_ptr_array_index(blocks, 0));
    set_vga = check_block_pages(s, dir, data, len, g_ptr_array_index(blocks, 1));
    set_bios = check_block_pages(s, dir, data, len, g_ptr_array_index(blocks, 2));
    qtest_quit(s);
    g_test_message("pages with data: %" G_GUINT64_FORMAT " main, %" G_GUINT64_FORMAT
                   " vga, %" G_GUINT64_FORMAT " bios; %zu bytes", set_main, set_vga,
                   set_bios, len);
    /* a filled guest: data and zero pages in main RAM; firmware fully present */
    g_assert_cmpuint(set_main, >, 0);
    g_assert_cmpuint(set_main, <, 64 * MiB_ / TEST_PAGE_SIZE);
    g_assert_cmpuint(set_vga, ==, 0);
    g_assert_cmpuint(set_bios, ==, 256 * 1024 / TEST_PAGE_SIZE);
    check_holes(path, blocks);

    g_autofree char *file_arg = offset ?
        g_strdup_printf("%s,offset=%" G_GUINT64_FORMAT, path, offset) : g_strdup(path);
    check_tool(file_arg, blocks);
    qtest_rmtree(dir);
}

static void test_mapped_ram_layout(void)
{
    run_layout(0);
}

static void test_mapped_ram_layout_offset(void)
{
    run_layout(4096);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/migration/format/mapped-ram/layout", test_mapped_ram_layout);
    g_test_add_func("/migration/format/mapped-ram/layout/offset",
                    test_mapped_ram_layout_offset);
    return g_test_run();
}
