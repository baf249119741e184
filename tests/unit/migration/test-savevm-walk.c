/*
 * The stream walker and the RAM record parser on hand-built bytes: a
 * well-formed stream walks, and each kind of damage fails with QEMU's
 * text (where QEMU has one), prefixed once by the walker with the record
 * it was reading and that record's byte offset.
 */
#include <string.h>

#include "io/channel.h"
#include "migration/qemu-file.h"
#include "migration/ram-codec.h"
#include "migration/savevm.h"

/*
 * The ram section's record flags (reference §2), raw: this test builds
 * streams byte by byte, as the format tests do, and the codec keeps its
 * names to itself.
 */
#define FLAG_ZERO          0x002
#define FLAG_MEM_SIZE      0x004
#define FLAG_PAGE          0x008
#define FLAG_EOS           0x010
#define FLAG_CONTINUE      0x020
#define FLAG_XBZRLE        0x040
#define FLAG_MULTIFD_FLUSH 0x200

/* --- building streams ----------------------------------------------------- */

static void put_u8(GByteArray *b, uint8_t v)
{
    g_byte_array_append(b, &v, 1);
}

static void put_be16(GByteArray *b, uint16_t v)
{
    put_u8(b, v >> 8);
    put_u8(b, v);
}

static void put_be32(GByteArray *b, uint32_t v)
{
    put_be16(b, v >> 16);
    put_be16(b, v);
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

static void put_header(GByteArray *b)
{
    put_be32(b, 0x5145564d);
    put_be32(b, 3);
}

static void put_config(GByteArray *b)
{
    put_u8(b, 0x07);
    put_be32(b, 2);
    g_byte_array_append(b, (const uint8_t *)"pc", 2);
}

static void put_full(GByteArray *b, uint32_t sid, const char *idstr)
{
    put_u8(b, 0x04);
    put_be32(b, sid);
    put_str(b, idstr);
    put_be32(b, 0);
    put_be32(b, 1);
}

static void put_footer(GByteArray *b, uint32_t sid)
{
    put_u8(b, 0x7e);
    put_be32(b, sid);
}

static void put_vmdesc(GByteArray *b)
{
    put_u8(b, 0x06);
    put_be32(b, 2);
    g_byte_array_append(b, (const uint8_t *)"{}", 2);
}

/* header, configuration, FULL "dev" (4-byte body), 08 cmd; up to the EOF. */
static GByteArray *good_prefix(void)
{
    GByteArray *b = g_byte_array_new();
    put_header(b);
    put_config(b);
    put_full(b, 1, "dev");
    put_be32(b, 0xfeedf00d);
    put_footer(b, 1);
    put_u8(b, 0x08);
    put_be16(b, 11);
    put_be16(b, 0);
    return b;
}

/* --- walking ---------------------------------------------------------------- */

typedef struct Walk {
    char machine[256];
    unsigned sections, commands, eofs;
    uint16_t last_cmd;
    char *vmdesc;
    off_t last_header_offset;
} Walk;

static bool w_configuration(void *opaque, QEMUFile *f, const StreamConfig *cfg,
                            GError **errp)
{
    Walk *w = opaque;
    g_strlcpy(w->machine, cfg->machine, sizeof(w->machine));
    return true;
}

/* FULL "dev" bodies are one be32; other sections carry none. */
static bool w_section(void *opaque, QEMUFile *f, const SectionInfo *si, GError **errp)
{
    Walk *w = opaque;
    w->sections++;
    w->last_header_offset = si->header_offset;
    if (si->type == QEMU_VM_SECTION_FULL && !strcmp(si->idstr, "dev")) {
        uint32_t body;
        if (!qemu_get_be32(f, &body, errp)) {
            return false;
        }
        g_assert_cmphex(body, ==, 0xfeedf00d);
    }
    return true;
}

static bool w_command(void *opaque, QEMUFile *f, uint16_t cmd, const uint8_t *data,
                      uint16_t len, GError **errp)
{
    Walk *w = opaque;
    w->commands++;
    w->last_cmd = cmd;
    return true;
}

static bool w_eof(void *opaque, QEMUFile *f, GError **errp)
{
    ((Walk *)opaque)->eofs++;
    return true;
}

static bool w_vmdesc(void *opaque, const char *json, uint32_t len, GError **errp)
{
    Walk *w = opaque;
    w->vmdesc = g_strndup(json, len);
    return true;
}

static const StreamVisitor walk_visitor = {
    .configuration = w_configuration,
    .section = w_section,
    .command = w_command,
    .eof = w_eof,
    .vmdesc = w_vmdesc,
};

static bool walk(GByteArray *b, Walk *w, GError **errp)
{
    g_autoptr(IOChannel) ioc = io_channel_buffer_new_data(b->data, b->len);
    QEMUFile *f = qemu_file_new_input(ioc, 0);
    bool ok = savevm_walk_stream(f, &walk_visitor, w, true, errp);
    qemu_fclose(f, NULL);
    return ok;
}

/* The walk fails with exactly @want. */
static void expect_walk_error(GByteArray *b, const char *want)
{
    Walk w = { 0 };
    GError *err = NULL;

    g_assert_false(walk(b, &w, &err));
    g_assert_nonnull(err);
    g_assert_cmpstr(err->message, ==, want);
    g_free(w.vmdesc);
    g_error_free(err);
}

static void test_walk_good(void)
{
    g_autoptr(GByteArray) b = good_prefix();
    Walk w = { 0 };
    GError *err = NULL;

    put_u8(b, 0x00);
    put_vmdesc(b);
    g_assert_true(walk(b, &w, &err));
    g_assert_no_error(err);
    g_assert_cmpstr(w.machine, ==, "pc");
    g_assert_cmpuint(w.sections, ==, 1);
    g_assert_cmpuint(w.last_header_offset, ==, 8 + 7);
    g_assert_cmpuint(w.commands, ==, 1);
    g_assert_cmpuint(w.last_cmd, ==, 11);
    g_assert_cmpuint(w.eofs, ==, 1);
    g_assert_cmpstr(w.vmdesc, ==, "{}");
    g_free(w.vmdesc);
}

static void test_walk_bad_magic(void)
{
    g_autoptr(GByteArray) b = good_prefix();
    b->data[3] = 'X';
    expect_walk_error(b, "Stream header at offset 0: "
                      "Not a migration stream, magic: 51455658 != 5145564d");
}

static void test_walk_version2(void)
{
    g_autoptr(GByteArray) b = good_prefix();
    b->data[7] = 2;
    expect_walk_error(b, "Stream header at offset 0: "
                      "SaveVM v2 format is obsolete and no longer supported");
}

static void test_walk_version4(void)
{
    g_autoptr(GByteArray) b = good_prefix();
    b->data[7] = 4;
    expect_walk_error(b, "Stream header at offset 0: "
                      "Unsupported migration stream version, file version 4 != 3");
}

static void test_walk_no_configuration(void)
{
    g_autoptr(GByteArray) b = g_byte_array_new();
    put_header(b);
    put_full(b, 1, "dev");
    put_be32(b, 0xfeedf00d);
    put_footer(b, 1);
    put_u8(b, 0x00);
    expect_walk_error(b, "Configuration at offset 8: Configuration section missing, 4 != 7");
}

static void test_walk_missing_footer(void)
{
    g_autoptr(GByteArray) b = g_byte_array_new();
    put_header(b);
    put_config(b);
    put_full(b, 1, "dev");
    put_be32(b, 0xfeedf00d);
    put_u8(b, 0x00);
    put_vmdesc(b);
    expect_walk_error(b, "FULL section 'dev' (id 1) at offset 15: "
                      "Section footer error, section_id: 1: Missing section footer for dev");
}

static void test_walk_mismatched_footer(void)
{
    g_autoptr(GByteArray) b = g_byte_array_new();
    put_header(b);
    put_config(b);
    put_full(b, 1, "dev");
    put_be32(b, 0xfeedf00d);
    put_footer(b, 2);
    put_u8(b, 0x00);
    expect_walk_error(b, "FULL section 'dev' (id 1) at offset 15: "
                      "Section footer error, section_id: 1: "
                      "Mismatched section id in footer for dev - read 0x2 expected 0x1");
}

static void test_walk_unknown_type(void)
{
    g_autoptr(GByteArray) b = good_prefix();
    g_autofree char *want = g_strdup_printf("Record at offset %u: "
                                            "Unknown savevm section type 9", b->len);
    put_u8(b, 0x09);
    put_u8(b, 0x00);
    expect_walk_error(b, want);
}

static void test_walk_part_without_start(void)
{
    g_autoptr(GByteArray) b = good_prefix();
    g_autofree char *want = g_strdup_printf("PART section at offset %u: "
                                            "Unknown savevm section 5", b->len);
    put_u8(b, 0x02);
    put_be32(b, 5);
    put_footer(b, 5);
    put_u8(b, 0x00);
    expect_walk_error(b, want);
}

static void test_walk_truncated(void)
{
    /* ends cleanly after a record, but without EOF */
    g_autoptr(GByteArray) b = good_prefix();
    expect_walk_error(b, "Unexpected end of stream at offset 46");

    /* ends inside a section header */
    g_autoptr(GByteArray) c = good_prefix();
    put_full(c, 2, "other");
    g_byte_array_set_size(c, c->len - 3);
    expect_walk_error(c, "FULL section 'other' (id 2) at offset 46: "
                      "Unexpected end of stream at offset 62");

    /* ends inside a section body */
    g_autoptr(GByteArray) d = good_prefix();
    put_full(d, 2, "dev");
    put_u8(d, 0xfe);
    expect_walk_error(d, "FULL section 'dev' (id 2) at offset 46: "
                      "Unexpected end of stream at offset 64");

    /* ends inside a command */
    g_autoptr(GByteArray) e = good_prefix();
    put_u8(e, 0x08);
    put_be16(e, 11);
    put_be16(e, 4);
    put_be16(e, 0);
    expect_walk_error(e, "Command at offset 46: Unexpected end of stream at offset 53");

    /* vmdesc shorter than its length */
    g_autoptr(GByteArray) v = good_prefix();
    put_u8(v, 0x00);
    put_vmdesc(v);
    g_byte_array_set_size(v, v->len - 1);
    expect_walk_error(v, "VM description at offset 47: Unexpected end of stream at offset 53");
}

static void test_walk_bad_configuration(void)
{
    static const struct {
        const char *sub;
        uint32_t version;
        uint32_t value;
        const char *want;
    } cases[] = {
        { "configuration/x", 1, 0,
          "Configuration at offset 8: unknown subsection 'configuration/x'" },
        { "configuration/capabilities", 2, 0,
          "Configuration at offset 8: subsection 'configuration/capabilities' "
          "version 2 is not supported" },
        { "configuration/capabilities", 1, 65,
          "Configuration at offset 8: implausible capability count 65" },
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(GByteArray) b = g_byte_array_new();
        put_header(b);
        put_config(b);
        put_u8(b, 0x05);
        put_str(b, cases[i].sub);
        put_be32(b, cases[i].version);
        put_be32(b, cases[i].value);
        put_u8(b, 0x00);
        expect_walk_error(b, cases[i].want);
    }

    g_autoptr(GByteArray) b = g_byte_array_new();
    put_header(b);
    put_u8(b, 0x07);
    put_be32(b, 300);
    expect_walk_error(b, "Configuration at offset 8: Machine type name too long (300 bytes)");
}

static void test_walk_empty_section_name(void)
{
    g_autoptr(GByteArray) b = good_prefix();
    put_full(b, 2, "");
    expect_walk_error(b, "FULL section at offset 46: Empty section name");
}

static void test_walk_vmdesc_type(void)
{
    g_autoptr(GByteArray) b = good_prefix();
    put_u8(b, 0x00);
    put_u8(b, 0x04);
    expect_walk_error(b, "VM description at offset 47: Expected vmdescription section, but got 4");
}

/* A visitor's own error gets the same prefix as the walker's. */
static bool fail_section(void *opaque, QEMUFile *f, const SectionInfo *si, GError **errp)
{
    g_set_error(errp, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED, "no '%s' here", si->idstr);
    return false;
}

static bool fail_configuration(void *opaque, QEMUFile *f, const StreamConfig *cfg,
                               GError **errp)
{
    g_set_error(errp, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                "Machine type received is '%s' and local is 'q35'", cfg->machine);
    return false;
}

static bool fail_command(void *opaque, QEMUFile *f, uint16_t cmd, const uint8_t *data,
                         uint16_t len, GError **errp)
{
    g_set_error(errp, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                "Unsupported migration command %u (len %u)", cmd, len);
    return false;
}

static void expect_visitor_error(const StreamVisitor *v, const char *want)
{
    g_autoptr(GByteArray) b = good_prefix();
    g_autoptr(IOChannel) ioc = io_channel_buffer_new_data(b->data, b->len);
    QEMUFile *f = qemu_file_new_input(ioc, 0);
    GError *err = NULL;
    Walk w = { 0 };

    g_assert_false(savevm_walk_stream(f, v, &w, true, &err));
    /* the prefix keeps the visitor's domain and code */
    g_assert_error(err, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED);
    g_assert_cmpstr(err->message, ==, want);
    g_error_free(err);
    qemu_fclose(f, NULL);
}

static void test_walk_visitor_errors(void)
{
    const StreamVisitor bad_section = { .section = fail_section };
    const StreamVisitor bad_config = { .configuration = fail_configuration,
                                       .section = w_section };
    const StreamVisitor bad_command = { .section = w_section, .command = fail_command };

    expect_visitor_error(&bad_section, "FULL section 'dev' (id 1) at offset 15: no 'dev' here");
    expect_visitor_error(&bad_config, "Configuration at offset 8: "
                         "Machine type received is 'pc' and local is 'q35'");
    expect_visitor_error(&bad_command, "Command at offset 41: "
                         "Unsupported migration command 11 (len 0)");
}

/*
 * mapram-vm's loader meets one command (at offset 15, after the header
 * and the configuration): want NULL means the load completes.
 */
static void load_with_command(uint16_t cmd, const void *data, uint16_t len, const char *want)
{
    g_autoptr(GByteArray) b = g_byte_array_new();
    SaveVMRegistry *reg = savevm_registry_new();
    GError *err = NULL;

    put_header(b);
    put_config(b);
    put_u8(b, 0x08);
    put_be16(b, cmd);
    put_be16(b, len);
    g_byte_array_append(b, data, len);
    put_u8(b, 0x00);
    g_autoptr(IOChannel) ioc = io_channel_buffer_new_data(b->data, b->len);
    QEMUFile *f = qemu_file_new_input(ioc, 0);
    bool ok = qemu_loadvm_state(reg, f, NULL, NULL, NULL, NULL, NULL, &err);
    if (want) {
        g_assert_false(ok);
        g_assert_cmpstr(err->message, ==, want);
        g_error_free(err);
    } else {
        g_assert_no_error(err);
        g_assert_true(ok);
    }
    qemu_fclose(f, NULL);
    savevm_registry_free(reg);
}

/* Commands are checked as QEMU's loader checks them, with its words. */
static void test_load_commands(void)
{
    static const uint8_t ping[4] = { 0, 0, 0x12, 0x34 };
    static const uint8_t advise[16] = { 0 };

    load_with_command(11, NULL, 0, NULL);                       /* SWITCHOVER_START */
    load_with_command(0, NULL, 0, "Command at offset 15: MIG_CMD 0x0 unknown (len 0x0)");
    load_with_command(12, ping, 3, "Command at offset 15: MIG_CMD 0xc unknown (len 0x3)");
    load_with_command(2, NULL, 0, "Command at offset 15: "
                      "PING received with bad length - expecting 4, got 0");
    load_with_command(11, ping, 4, "Command at offset 15: "
                      "SWITCHOVER_START received with bad length - expecting 0, got 4");
    load_with_command(2, ping, 4, "Command at offset 15: "
                      "CMD_PING (0x1234) received with no return path");
    load_with_command(1, NULL, 0, "Command at offset 15: CMD_OPEN_RETURN_PATH failed: "
                      "this load has no return path");
    load_with_command(3, advise, 16, "Command at offset 15: "
                      "MIG_CMD POSTCOPY_ADVISE is not supported by mapram-vm (len 0x10)");
}

/*
 * As QEMU's loader: a stream from a source with return-path, read from a
 * file or a pipe, opens its return path with nothing to write to, and
 * its PINGs go unanswered.
 */
static void test_load_return_path_nowhere(void)
{
    static const uint8_t ping[4] = { 0, 0, 0, 1 };
    g_autoptr(GByteArray) b = g_byte_array_new();
    SaveVMRegistry *reg = savevm_registry_new();
    LoadReturnPath rp = { 0 };
    GError *err = NULL;

    put_header(b);
    put_config(b);
    put_u8(b, 0x08);
    put_be16(b, 1);                 /* OPEN_RETURN_PATH */
    put_be16(b, 0);
    put_u8(b, 0x08);
    put_be16(b, 2);                 /* PING 1 */
    put_be16(b, 4);
    g_byte_array_append(b, ping, 4);
    put_u8(b, 0x00);
    g_autoptr(IOChannel) ioc = io_channel_buffer_new_data(b->data, b->len);
    QEMUFile *f = qemu_file_new_input(ioc, 0);
    g_assert_true(qemu_loadvm_state(reg, f, NULL, NULL, NULL, NULL, &rp, &err));
    g_assert_no_error(err);
    g_assert_true(rp.opened);
    g_assert_null(rp.f);
    qemu_fclose(f, NULL);
    savevm_registry_free(reg);
}

/* A body we do not know is skipped up to its footer, or fails naming why. */
static bool skip_section(void *opaque, QEMUFile *f, const SectionInfo *si, GError **errp)
{
    return savevm_skip_unknown_body(f, si, NULL, errp);
}

static void test_walk_skip_unknown_body(void)
{
    const StreamVisitor skip = { .section = skip_section };
    g_autoptr(GByteArray) b = good_prefix();
    GError *err = NULL;

    put_u8(b, 0x00);
    {
        g_autoptr(IOChannel) ioc = io_channel_buffer_new_data(b->data, b->len);
        QEMUFile *f = qemu_file_new_input(ioc, 0);
        g_assert_true(savevm_walk_stream(f, &skip, NULL, true, &err));
        g_assert_no_error(err);
        g_assert_true(qemu_file_at_eof(f));
        qemu_fclose(f, NULL);
    }

    g_autoptr(GByteArray) c = good_prefix();
    put_full(c, 2, "blob");
    put_be32(c, 0x7e000000);
    {
        g_autoptr(IOChannel) ioc = io_channel_buffer_new_data(c->data, c->len);
        QEMUFile *f = qemu_file_new_input(ioc, 0);
        g_assert_false(savevm_walk_stream(f, &skip, NULL, true, &err));
        g_assert_cmpstr(err->message, ==, "FULL section 'blob' (id 2) at offset 46: "
                        "No section footer found: Unexpected end of stream at offset 68");
        g_clear_error(&err);
        qemu_fclose(f, NULL);
    }
}

/* --- RAM records ------------------------------------------------------------- */

typedef struct Sink {
    unsigned mem_size_calls;
    uint64_t total;
    unsigned blocks_before_mem_size;
    unsigned blocks;
    char first_block[256];
    uint64_t first_length;
    bool got_hdr;
    unsigned pages, zero_pages;
    uint64_t last_offset;
    uint8_t page[4096];
} Sink;

static bool s_mem_size(void *opaque, uint64_t total, GError **errp)
{
    Sink *s = opaque;
    s->mem_size_calls++;
    s->total = total;
    s->blocks_before_mem_size = s->blocks;
    return true;
}

static bool s_block(void *opaque, QEMUFile *f, unsigned idx, const char *idstr,
                    uint64_t used_length, const MappedRamHeader *hdr, GError **errp)
{
    Sink *s = opaque;
    if (s->blocks++ == 0) {
        g_strlcpy(s->first_block, idstr, sizeof(s->first_block));
        s->first_length = used_length;
    }
    s->got_hdr |= hdr != NULL;
    return true;
}

static uint8_t *s_page_dest(void *opaque, unsigned idx, uint64_t offset, GError **errp)
{
    return ((Sink *)opaque)->page;
}

static bool s_page(void *opaque, unsigned idx, uint64_t offset, bool zero, GError **errp)
{
    Sink *s = opaque;
    if (zero) {
        s->zero_pages++;
    } else {
        s->pages++;
    }
    s->last_offset = offset;
    return true;
}

static const RamSink test_sink = {
    .mem_size = s_mem_size, .block = s_block, .page_dest = s_page_dest, .page = s_page,
};

/* MEM_SIZE for one 2-page block "blk", EOS. */
static void put_block_list(GByteArray *b)
{
    put_be64(b, 8192 | FLAG_MEM_SIZE);
    put_str(b, "blk");
    put_be64(b, 8192);
    put_be64(b, FLAG_EOS);
}

/*
 * Parse @start as a START section body, then @part as a PART body, with
 * one state.  Returns the PART's result.
 */
static bool parse_ram(GByteArray *start, GByteArray *part, bool mapped_ram, Sink *s,
                      GError **errp)
{
    RamDecoder d;
    bool ok = true;

    ram_decoder_init(&d, mapped_ram);
    if (start) {
        g_autoptr(IOChannel) ioc = io_channel_buffer_new_data(start->data, start->len);
        QEMUFile *f = qemu_file_new_input(ioc, 0);
        g_assert_true(ram_decode_section(&d, f, QEMU_VM_SECTION_START, &test_sink, s, NULL));
        g_assert_true(qemu_file_at_eof(f));
        qemu_fclose(f, NULL);
    }
    if (part) {
        g_autoptr(IOChannel) ioc = io_channel_buffer_new_data(part->data, part->len);
        QEMUFile *f = qemu_file_new_input(ioc, 0);
        ok = ram_decode_section(&d, f, QEMU_VM_SECTION_PART, &test_sink, s, errp);
        qemu_fclose(f, NULL);
    }
    ram_decoder_clear(&d);
    return ok;
}

static void expect_ram_error(GByteArray *start, GByteArray *part, bool mapped_ram,
                             const char *want)
{
    Sink s = { 0 };
    GError *err = NULL;

    g_assert_false(parse_ram(start, part, mapped_ram, &s, &err));
    g_assert_nonnull(err);
    g_assert_cmpstr(err->message, ==, want);
    g_error_free(err);
}

static void test_ram_good(void)
{
    g_autoptr(GByteArray) start = g_byte_array_new();
    g_autoptr(GByteArray) part = g_byte_array_new();
    Sink s = { 0 };
    GError *err = NULL;

    put_block_list(start);
    put_be64(part, 0 | FLAG_PAGE);
    put_str(part, "blk");
    for (int i = 0; i < 4096; i++) {
        put_u8(part, i & 0xff);
    }
    put_be64(part, 4096 | FLAG_ZERO | FLAG_CONTINUE);
    put_u8(part, 0);
    put_be64(part, FLAG_EOS);
    g_assert_true(parse_ram(start, part, false, &s, &err));
    g_assert_no_error(err);
    g_assert_cmpuint(s.mem_size_calls, ==, 1);
    g_assert_cmpuint(s.total, ==, 8192);
    g_assert_cmpuint(s.blocks_before_mem_size, ==, 0);
    g_assert_cmpuint(s.blocks, ==, 1);
    g_assert_cmpstr(s.first_block, ==, "blk");
    g_assert_cmpuint(s.first_length, ==, 8192);
    g_assert_false(s.got_hdr);
    g_assert_cmpuint(s.pages, ==, 1);
    g_assert_cmpuint(s.zero_pages, ==, 1);
    g_assert_cmpuint(s.last_offset, ==, 4096);
    g_assert_cmpuint(s.page[255], ==, 255);
}

static void test_ram_zero_value(void)
{
    g_autoptr(GByteArray) start = g_byte_array_new();
    g_autoptr(GByteArray) part = g_byte_array_new();
    put_block_list(start);
    put_be64(part, 0 | FLAG_ZERO);
    put_str(part, "blk");
    put_u8(part, 7);
    put_be64(part, FLAG_EOS);
    expect_ram_error(start, part, false, "Found a zero page with value 7");
}

static void test_ram_continue_without_block(void)
{
    g_autoptr(GByteArray) start = g_byte_array_new();
    g_autoptr(GByteArray) part = g_byte_array_new();
    put_block_list(start);
    put_be64(part, 0 | FLAG_ZERO | FLAG_CONTINUE);
    put_u8(part, 0);
    put_be64(part, FLAG_EOS);
    expect_ram_error(start, part, false,
                     "Ack, bad migration stream! (CONTINUE without a block)");
}

static void test_ram_unknown_block(void)
{
    g_autoptr(GByteArray) start = g_byte_array_new();
    g_autoptr(GByteArray) part = g_byte_array_new();
    put_block_list(start);
    put_be64(part, 0 | FLAG_ZERO);
    put_str(part, "nope");
    put_u8(part, 0);
    expect_ram_error(start, part, false, "Can't find block nope");
}

static void test_ram_page_in_mapped_ram(void)
{
    /* an EOS-only section is what mapped-ram PART/END sections carry */
    g_autoptr(GByteArray) eos = g_byte_array_new();
    Sink s = { 0 };
    GError *err = NULL;
    put_be64(eos, FLAG_EOS);
    g_assert_true(parse_ram(NULL, eos, true, &s, &err));
    g_assert_no_error(err);

    g_autoptr(GByteArray) page = g_byte_array_new();
    put_be64(page, 0 | FLAG_PAGE);
    put_str(page, "blk");
    g_byte_array_set_size(page, page->len + 4096);
    put_be64(page, FLAG_EOS);
    expect_ram_error(NULL, page, true, "Unexpected RAM flags: 8");

    g_autoptr(GByteArray) zero = g_byte_array_new();
    put_be64(zero, 0 | FLAG_ZERO | FLAG_CONTINUE);
    put_u8(zero, 0);
    expect_ram_error(NULL, zero, true, "Unexpected RAM flags: 34");

    g_autoptr(GByteArray) flush = g_byte_array_new();
    put_be64(flush, FLAG_MULTIFD_FLUSH);
    expect_ram_error(NULL, flush, true, "Unexpected RAM flags: 512");
}

static void test_ram_unknown_flags(void)
{
    g_autoptr(GByteArray) start = g_byte_array_new();
    g_autoptr(GByteArray) part = g_byte_array_new();
    put_block_list(start);
    put_be64(part, 0 | FLAG_ZERO);
    put_str(part, "blk");
    put_u8(part, 0);
    put_be64(part, 0 | FLAG_PAGE | FLAG_ZERO | FLAG_CONTINUE);
    put_u8(part, 0);
    expect_ram_error(start, part, false, "Unknown combination of migration flags: 0x2a");

    g_autoptr(GByteArray) full = g_byte_array_new();
    put_be64(full, 0 | 0x001);    /* the obsolete FULL flag */
    expect_ram_error(start, full, false, "Unknown combination of migration flags: 0x1");
}

static void test_ram_xbzrle(void)
{
    g_autoptr(GByteArray) start = g_byte_array_new();
    g_autoptr(GByteArray) part = g_byte_array_new();
    put_block_list(start);
    put_be64(part, 0 | FLAG_XBZRLE);
    put_str(part, "blk");
    g_byte_array_set_size(part, part->len + 16);
    expect_ram_error(start, part, false, "XBZRLE pages are not supported");
}

/* QEMU's multifd sends a flush record between pages: nothing to do for it. */
static void test_ram_multifd_flush(void)
{
    g_autoptr(GByteArray) start = g_byte_array_new();
    g_autoptr(GByteArray) part = g_byte_array_new();
    Sink s = { 0 };
    GError *err = NULL;

    put_block_list(start);
    put_be64(part, 0 | FLAG_ZERO);
    put_str(part, "blk");
    put_u8(part, 0);
    put_be64(part, FLAG_MULTIFD_FLUSH);
    put_be64(part, 4096 | FLAG_ZERO | FLAG_CONTINUE);
    put_u8(part, 0);
    put_be64(part, FLAG_EOS);
    g_assert_true(parse_ram(start, part, false, &s, &err));
    g_assert_no_error(err);
    g_assert_cmpuint(s.zero_pages, ==, 2);
    g_assert_cmpuint(s.last_offset, ==, 4096);
}

static void test_ram_block_list_outside_start(void)
{
    g_autoptr(GByteArray) start = g_byte_array_new();
    g_autoptr(GByteArray) part = g_byte_array_new();
    put_block_list(start);
    put_block_list(part);
    expect_ram_error(start, part, false, "Unexpected RAM block list (flags 0x4)");
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/migration/savevm/walk/good", test_walk_good);
    g_test_add_func("/migration/savevm/walk/bad-magic", test_walk_bad_magic);
    g_test_add_func("/migration/savevm/walk/version-2", test_walk_version2);
    g_test_add_func("/migration/savevm/walk/version-4", test_walk_version4);
    g_test_add_func("/migration/savevm/walk/no-configuration", test_walk_no_configuration);
    g_test_add_func("/migration/savevm/walk/missing-footer", test_walk_missing_footer);
    g_test_add_func("/migration/savevm/walk/mismatched-footer", test_walk_mismatched_footer);
    g_test_add_func("/migration/savevm/walk/unknown-type", test_walk_unknown_type);
    g_test_add_func("/migration/savevm/walk/part-without-start", test_walk_part_without_start);
    g_test_add_func("/migration/savevm/walk/truncated", test_walk_truncated);
    g_test_add_func("/migration/savevm/walk/bad-configuration", test_walk_bad_configuration);
    g_test_add_func("/migration/savevm/walk/empty-section-name", test_walk_empty_section_name);
    g_test_add_func("/migration/savevm/walk/vmdesc-type", test_walk_vmdesc_type);
    g_test_add_func("/migration/savevm/walk/visitor-errors", test_walk_visitor_errors);
    g_test_add_func("/migration/savevm/walk/skip-unknown-body", test_walk_skip_unknown_body);
    g_test_add_func("/migration/savevm/load/commands", test_load_commands);
    g_test_add_func("/migration/savevm/load/return-path-nowhere", test_load_return_path_nowhere);
    g_test_add_func("/migration/ram/parse/good", test_ram_good);
    g_test_add_func("/migration/ram/parse/zero-page-value", test_ram_zero_value);
    g_test_add_func("/migration/ram/parse/continue-without-block",
                    test_ram_continue_without_block);
    g_test_add_func("/migration/ram/parse/unknown-block", test_ram_unknown_block);
    g_test_add_func("/migration/ram/parse/page-in-mapped-ram", test_ram_page_in_mapped_ram);
    g_test_add_func("/migration/ram/parse/unknown-flags", test_ram_unknown_flags);
    g_test_add_func("/migration/ram/parse/xbzrle", test_ram_xbzrle);
    g_test_add_func("/migration/ram/parse/multifd-flush", test_ram_multifd_flush);
    g_test_add_func("/migration/ram/parse/block-list-outside-start",
                    test_ram_block_list_outside_start);
    return g_test_run();
}
