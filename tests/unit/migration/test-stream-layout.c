/*
 * The QEVM stream a stopped mapram-vm writes to file: (no mapped-ram),
 * read byte by byte against the reference layout (§1, §2): header,
 * configuration, the ram START block list, every page record (rebuilt
 * into memory and compared with the guest's), switchover-start, END,
 * device sections, EOF and vmdesc.  Then `mapram info --json` must tell
 * the same story and `mapram verify` must accept the file.
 */
#include "stream-check.h"
#include "migration-helpers.h"

#include <string.h>

#define FLAG_ZERO     0x002
#define FLAG_MEM_SIZE 0x004
#define FLAG_PAGE     0x008
#define FLAG_EOS      0x010
#define FLAG_CONTINUE 0x020

typedef struct StreamFacts {
    uint32_t sid;
    uint64_t total;
    GPtrArray *names;           /* char * */
    GArray *lengths;            /* uint64_t */
    uint8_t **mem;              /* rebuilt block contents */
    size_t start_offset, end_offset;
    unsigned part_sections;
    uint64_t page_records, zero_records;
    GPtrArray *devices;         /* FULL section names */
    JsonObject *vmdesc;
} StreamFacts;

static void facts_clear(StreamFacts *f)
{
    for (guint i = 0; f->names && i < f->names->len; i++) {
        g_free(f->mem[i]);
    }
    g_free(f->mem);
    if (f->names) {
        g_ptr_array_unref(f->names);
    }
    if (f->lengths) {
        g_array_unref(f->lengths);
    }
    if (f->devices) {
        g_ptr_array_unref(f->devices);
    }
    if (f->vmdesc) {
        json_object_unref(f->vmdesc);
    }
}

static void parse_block_list(ByteReader *r, StreamFacts *f)
{
    uint64_t v = br_be64(r);
    uint64_t sum = 0;

    g_assert_cmphex(v & (TEST_PAGE_SIZE - 1), ==, FLAG_MEM_SIZE);
    f->total = v & ~(uint64_t)(TEST_PAGE_SIZE - 1);
    f->names = g_ptr_array_new_with_free_func(g_free);
    f->lengths = g_array_new(FALSE, FALSE, sizeof(uint64_t));
    while (sum < f->total) {
        char *id = br_counted(r);
        uint64_t len = br_be64(r);
        g_assert_cmpuint(len % TEST_PAGE_SIZE, ==, 0);
        g_ptr_array_add(f->names, id);
        g_array_append_val(f->lengths, len);
        sum += len;
    }
    g_assert_cmpuint(sum, ==, f->total);
    g_assert_cmphex(br_be64(r), ==, FLAG_EOS);

    /* mapram-vm -m 64M: main RAM, framebuffer, BIOS; largest first. */
    g_assert_cmpuint(f->names->len, ==, 3);
    g_assert_cmpstr(g_ptr_array_index(f->names, 0), ==, "pc.ram");
    g_assert_cmpstr(g_ptr_array_index(f->names, 1), ==, "vga.vram");
    g_assert_cmpstr(g_ptr_array_index(f->names, 2), ==, "pc.bios");
    g_assert_cmpuint(g_array_index(f->lengths, uint64_t, 0), ==, 64 * MiB_);
    g_assert_cmpuint(g_array_index(f->lengths, uint64_t, 1), ==, 16 * MiB_);
    g_assert_cmpuint(g_array_index(f->lengths, uint64_t, 2), ==, 256 * 1024);
    for (guint i = 1; i < f->lengths->len; i++) {
        g_assert_cmpuint(g_array_index(f->lengths, uint64_t, i - 1), >=,
                         g_array_index(f->lengths, uint64_t, i));
    }
    f->mem = g_new0(uint8_t *, f->names->len);
    for (guint i = 0; i < f->names->len; i++) {
        /* 0xa5: a page never sent shows up against the guest's memory */
        f->mem[i] = g_malloc(g_array_index(f->lengths, uint64_t, i));
        memset(f->mem[i], 0xa5, g_array_index(f->lengths, uint64_t, i));
    }
}

static int block_index(StreamFacts *f, const char *id)
{
    for (guint i = 0; i < f->names->len; i++) {
        if (!strcmp(g_ptr_array_index(f->names, i), id)) {
            return i;
        }
    }
    g_error("page record names unknown block '%s'", id);
}

/* Page records up to EOS; *last carries CONTINUE across sections. */
static void parse_page_records(ByteReader *r, StreamFacts *f, int *last)
{
    for (;;) {
        size_t at = r->pos;
        uint64_t v = br_be64(r);
        unsigned flags = v & (TEST_PAGE_SIZE - 1);
        uint64_t addr = v & ~(uint64_t)(TEST_PAGE_SIZE - 1);

        if (flags == FLAG_EOS) {
            return;
        }
        int idx = *last;
        if (flags & FLAG_CONTINUE) {
            g_assert_cmpint(idx, >=, 0);
        } else {
            g_autofree char *id = br_counted(r);
            idx = block_index(f, id);
            /* CONTINUE is used whenever the block did not change */
            g_assert_cmpint(idx, !=, *last);
        }
        *last = idx;
        g_assert_cmpuint(addr, <, g_array_index(f->lengths, uint64_t, idx));
        switch (flags & ~FLAG_CONTINUE) {
        case FLAG_ZERO:
            g_assert_cmpuint(br_u8(r), ==, 0);
            memset(f->mem[idx] + addr, 0, TEST_PAGE_SIZE);
            f->zero_records++;
            break;
        case FLAG_PAGE:
            br_skip(r, TEST_PAGE_SIZE);
            memcpy(f->mem[idx] + addr, r->buf + r->pos - TEST_PAGE_SIZE, TEST_PAGE_SIZE);
            f->page_records++;
            break;
        default:
            g_error("unexpected RAM flags 0x%x at offset %zu", flags, at);
        }
    }
}

static void parse_iterations(ByteReader *r, StreamFacts *f)
{
    int last = -1;
    bool switchover = false;

    for (;;) {
        uint8_t type = br_u8(r);
        if (type == 0x08) {
            g_assert_false(switchover);
            br_expect(r, "\x00\x0b\x00\x00", 4, "switchover-start command");
            switchover = true;
            /* the command comes right before END */
            g_assert_cmpint(br_peek(r), ==, 0x03);
            continue;
        }
        if (type == 0x02) {
            g_assert_false(switchover);
            f->part_sections++;
        } else if (type == 0x03) {
            g_assert_true(switchover);
            f->end_offset = r->pos - 1;
        } else {
            g_error("unexpected record type 0x%02x at offset %zu", type, r->pos - 1);
        }
        g_assert_cmphex(br_be32(r), ==, f->sid);
        parse_page_records(r, f, &last);
        check_footer(r, f->sid);
        if (type == 0x03) {
            return;
        }
    }
}

static void check_pages_against_guest(QTestState *s, const char *dir, StreamFacts *f)
{
    for (guint i = 0; i < f->names->len; i++) {
        const char *id = g_ptr_array_index(f->names, i);
        uint64_t len = g_array_index(f->lengths, uint64_t, i);
        g_autofree uint8_t *guest = vm_read_block(s, dir, id, len);
        for (uint64_t off = 0; off < len; off += TEST_PAGE_SIZE) {
            if (memcmp(guest + off, f->mem[i] + off, TEST_PAGE_SIZE) != 0) {
                g_error("block %s page 0x%" G_GINT64_MODIFIER "x: the stream's data "
                        "differs from guest memory", id, off);
            }
        }
    }
}

static JsonNode *parse_json(const char *text)
{
    g_autoptr(JsonParser) p = json_parser_new();
    GError *err = NULL;
    if (!json_parser_load_from_data(p, text, -1, &err)) {
        g_error("mapram info --json output does not parse: %s", err->message);
    }
    return json_node_copy(json_parser_get_root(p));
}

/* `mapram info --json` must describe what we parsed ourselves. */
static void check_info(const char *path, StreamFacts *f)
{
    const char *argv[] = { "info", "--json", path, NULL };
    int status;
    g_autofree char *out = run_mapram_tool(argv, &status);
    g_assert_cmpint(status, ==, 0);
    g_autoptr(JsonNode) root = parse_json(out);
    JsonObject *o = json_node_get_object(root);

    g_assert_cmpstr(json_object_get_string_member(o, "format"), ==, "stream");
    g_assert_cmpstr(json_object_get_string_member(o, "machine"), ==, TEST_MACHINE);
    g_assert_cmpuint(json_array_get_length(json_object_get_array_member(o, "capabilities")),
                     ==, 0);
    g_assert_cmpuint(json_object_get_int_member(o, "ram-total"), ==, f->total);

    JsonArray *blocks = json_object_get_array_member(o, "blocks");
    g_assert_cmpuint(json_array_get_length(blocks), ==, f->names->len);
    uint64_t data = 0, zero = 0;
    for (guint i = 0; i < f->names->len; i++) {
        JsonObject *b = json_array_get_object_element(blocks, i);
        uint64_t len = g_array_index(f->lengths, uint64_t, i);
        g_assert_cmpstr(json_object_get_string_member(b, "name"), ==,
                        g_ptr_array_index(f->names, i));
        g_assert_cmpuint(json_object_get_int_member(b, "length"), ==, len);
        data += json_object_get_int_member(b, "data-pages");
        zero += json_object_get_int_member(b, "zero-pages");
    }
    g_assert_cmpuint(data, ==, f->page_records);
    g_assert_cmpuint(zero, ==, f->zero_records);

    JsonArray *secs = json_object_get_array_member(o, "sections");
    guint n = json_array_get_length(secs);
    g_assert_cmpuint(n, ==, 2 + f->part_sections + f->devices->len);
    JsonObject *first = json_array_get_object_element(secs, 0);
    g_assert_cmpstr(json_object_get_string_member(first, "type"), ==, "START");
    g_assert_cmpstr(json_object_get_string_member(first, "name"), ==, "ram");
    g_assert_cmpint(json_object_get_int_member(first, "offset"), ==, f->start_offset);
    g_assert_cmpint(json_object_get_int_member(first, "section-id"), ==, f->sid);
    g_assert_cmpint(json_object_get_int_member(first, "version"), ==, 4);
    JsonObject *end = json_array_get_object_element(secs, 1 + f->part_sections);
    g_assert_cmpstr(json_object_get_string_member(end, "type"), ==, "END");
    g_assert_cmpstr(json_object_get_string_member(end, "name"), ==, "ram");
    g_assert_cmpint(json_object_get_int_member(end, "offset"), ==, f->end_offset);
    for (guint i = 0; i < f->devices->len; i++) {
        JsonObject *d = json_array_get_object_element(secs, 2 + f->part_sections + i);
        g_assert_cmpstr(json_object_get_string_member(d, "type"), ==, "FULL");
        g_assert_cmpstr(json_object_get_string_member(d, "name"), ==,
                        g_ptr_array_index(f->devices, i));
    }

    JsonArray *cmds = json_object_get_array_member(o, "commands");
    g_assert_cmpuint(json_array_get_length(cmds), ==, 1);
    g_assert_cmpint(json_array_get_int_element(cmds, 0), ==, 11);

    JsonObject *vmdesc = json_object_get_object_member(o, "vmdesc");
    g_assert_nonnull(vmdesc);
    JsonArray *devs = json_object_get_array_member(vmdesc, "devices");
    g_assert_cmpuint(json_array_get_length(devs), ==, f->devices->len);
    for (guint i = 0; i < f->devices->len; i++) {
        JsonObject *d = json_array_get_object_element(devs, i);
        g_assert_cmpstr(json_object_get_string_member(d, "name"), ==,
                        g_ptr_array_index(f->devices, i));
    }
}

static void check_verify(const char *path)
{
    const char *argv[] = { "verify", path, NULL };
    int status;
    g_autofree char *out = run_mapram_tool(argv, &status);
    g_autofree char *ok = g_strdup_printf("%s: OK (", path);
    g_assert_cmpint(status, ==, 0);
    g_assert_true(g_str_has_prefix(out, ok));
}

static void test_stream_layout(void)
{
    g_autofree char *dir = qtest_mkdtemp("fmt-stream");
    g_autofree char *path = g_build_filename(dir, "stream.img", NULL);
    g_autofree char *uri = g_strdup_printf("file:%s", path);
    StreamFacts f = { 0 };
    QTestState *s = vm_start_stopped(dir);
    size_t len;

    vm_save(s, uri, false);
    g_autofree uint8_t *data = read_whole_file(path, &len);
    ByteReader r = { .buf = data, .len = len };

    check_file_header(&r, TEST_MACHINE, false);
    f.start_offset = r.pos;
    g_assert_cmpuint(f.start_offset, ==, 8 + 1 + 4 + strlen(TEST_MACHINE));
    f.sid = check_ram_start_header(&r);
    parse_block_list(&r, &f);
    check_footer(&r, f.sid);
    parse_iterations(&r, &f);
    f.vmdesc = check_stream_tail(&r, &f.devices);

    /* a filled guest has both kinds of pages, and every page was sent */
    g_assert_cmpuint(f.page_records, >, 0);
    g_assert_cmpuint(f.zero_records, >, 0);
    g_assert_cmpuint(f.page_records + f.zero_records, >=, f.total / TEST_PAGE_SIZE);
    check_pages_against_guest(s, dir, &f);
    qtest_quit(s);
    g_test_message("%u PART sections, %" G_GUINT64_FORMAT " PAGE and %" G_GUINT64_FORMAT
                   " ZERO records, %u device sections, %zu bytes",
                   f.part_sections, f.page_records, f.zero_records, f.devices->len, len);

    check_info(path, &f);
    check_verify(path);
    facts_clear(&f);
    qtest_rmtree(dir);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/migration/format/stream/layout", test_stream_layout);
    return g_test_run();
}
