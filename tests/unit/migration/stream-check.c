/*
 * Independent QEVM byte reader and VM driver for the layout tests.
 */
#include "stream-check.h"
#include "migration-helpers.h"

#include <string.h>
#include <sys/wait.h>

static void br_need(ByteReader *r, size_t n)
{
    if (r->pos > r->len || n > r->len - r->pos) {
        g_error("reading %zu bytes at offset %zu runs past the end of the file "
                "(%zu bytes)", n, r->pos, r->len);
    }
}

uint32_t be32_at(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

uint64_t be64_at(const uint8_t *p)
{
    return (uint64_t)be32_at(p) << 32 | be32_at(p + 4);
}

uint8_t br_u8(ByteReader *r)
{
    br_need(r, 1);
    return r->buf[r->pos++];
}

uint16_t br_be16(ByteReader *r)
{
    br_need(r, 2);
    uint16_t v = (uint16_t)(r->buf[r->pos] << 8 | r->buf[r->pos + 1]);
    r->pos += 2;
    return v;
}

uint32_t br_be32(ByteReader *r)
{
    br_need(r, 4);
    uint32_t v = be32_at(r->buf + r->pos);
    r->pos += 4;
    return v;
}

uint64_t br_be64(ByteReader *r)
{
    br_need(r, 8);
    uint64_t v = be64_at(r->buf + r->pos);
    r->pos += 8;
    return v;
}

char *br_counted(ByteReader *r)
{
    uint8_t n = br_u8(r);
    br_need(r, n);
    char *s = g_strndup((const char *)r->buf + r->pos, n);
    g_assert_cmpuint(strlen(s), ==, n);
    r->pos += n;
    return s;
}

void br_skip(ByteReader *r, size_t n)
{
    br_need(r, n);
    r->pos += n;
}

int br_peek(const ByteReader *r)
{
    return r->pos < r->len ? r->buf[r->pos] : -1;
}

void br_expect(ByteReader *r, const void *want, size_t n, const char *what)
{
    br_need(r, n);
    if (memcmp(r->buf + r->pos, want, n) != 0) {
        g_autofree char *got = g_strdup("");
        for (size_t i = 0; i < n && i < 80; i++) {
            char *t = g_strdup_printf("%s %02x", got, r->buf[r->pos + i]);
            g_free(got);
            got = t;
        }
        g_error("%s at offset %zu: bytes differ from the reference:%s", what, r->pos, got);
    }
    r->pos += n;
}

/* --- stream structure -------------------------------------------------- */

void check_file_header(ByteReader *r, const char *machine, bool mapped_ram)
{
    size_t mlen = strlen(machine);
    g_autoptr(GByteArray) want = g_byte_array_new();
    const uint8_t head[] = { 'Q', 'E', 'V', 'M', 0, 0, 0, 3, 0x07, 0, 0, 0, mlen };

    g_byte_array_append(want, head, sizeof(head));
    g_byte_array_append(want, (const uint8_t *)machine, mlen);
    if (mapped_ram) {
        /* 05 1a "configuration/capabilities" be32 1 (version) be32 1 (count) 0a "mapped-ram" */
        static const char sub[] = "configuration/capabilities";
        const uint8_t sub_head[] = { 0x05, sizeof(sub) - 1 };
        const uint8_t counts[] = { 0, 0, 0, 1, 0, 0, 0, 1, 10 };
        g_byte_array_append(want, sub_head, sizeof(sub_head));
        g_byte_array_append(want, (const uint8_t *)sub, sizeof(sub) - 1);
        g_byte_array_append(want, counts, sizeof(counts));
        g_byte_array_append(want, (const uint8_t *)"mapped-ram", 10);
        /* The reference's example: 63 bytes from the 0x07 for "pc-q35-10.2". */
        if (!strcmp(machine, "pc-q35-10.2")) {
            g_assert_cmpuint(want->len - 8, ==, 63);
        }
    }
    br_expect(r, want->data, want->len, "file header + configuration");
    /* No subsection follows: the next record is a section, not 0x05. */
    g_assert_cmpint(br_peek(r), !=, 0x05);
}

uint32_t check_ram_start_header(ByteReader *r)
{
    g_assert_cmpuint(br_u8(r), ==, 0x01);
    uint32_t sid = br_be32(r);
    br_expect(r, "\x03ram", 4, "ram START idstr");
    br_expect(r, "\0\0\0\0\0\0\0\x04", 8, "ram START instance/version");
    return sid;
}

void check_footer(ByteReader *r, uint32_t sid)
{
    size_t at = r->pos;
    if (br_u8(r) != 0x7e) {
        g_error("no section footer at offset %zu", at);
    }
    g_assert_cmphex(br_be32(r), ==, sid);
}

size_t find_vmdesc(const uint8_t *buf, size_t len)
{
    for (size_t p = len >= 6 ? len - 6 : 0; p > 0; p--) {
        if (buf[p] == 0x06 && buf[p - 1] == 0x00 && be32_at(buf + p + 1) == len - p - 5 &&
            buf[p + 5] == '{') {
            return p;
        }
    }
    g_error("no vmdesc (06 + be32 length + JSON up to the end of the file) found");
}

static uint64_t desc_bytes(JsonObject *d);

static uint64_t fields_bytes(JsonArray *fields)
{
    uint64_t n = 0;
    for (guint i = 0; fields && i < json_array_get_length(fields); i++) {
        JsonObject *f = json_array_get_object_element(fields, i);
        g_assert_nonnull(json_object_get_string_member_with_default(f, "name", NULL));
        g_assert_nonnull(json_object_get_string_member_with_default(f, "type", NULL));
        g_assert_true(json_object_has_member(f, "size"));
        n += json_object_get_int_member(f, "size") *
             json_object_get_int_member_with_default(f, "array_len", 1);
    }
    return n;
}

/* Bytes a vmsd description stands for: fields, then subsection records. */
static uint64_t desc_bytes(JsonObject *d)
{
    uint64_t n = fields_bytes(json_object_get_array_member(d, "fields"));
    if (json_object_has_member(d, "subsections")) {
        JsonArray *subs = json_object_get_array_member(d, "subsections");
        for (guint i = 0; i < json_array_get_length(subs); i++) {
            JsonObject *s = json_array_get_object_element(subs, i);
            const char *name = json_object_get_string_member(s, "vmsd_name");
            n += 1 + 1 + strlen(name) + 4 + desc_bytes(s);
        }
    }
    return n;
}

static void check_globalstate_body(ByteReader *r)
{
    uint32_t size = br_be32(r);
    char state[33] = { 0 };
    memcpy(state, r->buf + r->pos, 32);
    br_skip(r, 32);
    /* The source was stopped before migrate: the state it stores is "paused". */
    g_assert_cmpstr(state, ==, "paused");
    g_assert_cmpuint(size, ==, strlen("paused") + 1);
    g_assert_cmpuint(br_u8(r), ==, 1);       /* has_vm_was_suspended */
    g_assert_cmpuint(br_u8(r), ==, 0);       /* vm_was_suspended */
    for (int i = 0; i < 66; i++) {
        g_assert_cmpuint(br_u8(r), ==, 0);
    }
}

JsonObject *check_stream_tail(ByteReader *r, GPtrArray **devices)
{
    size_t vpos = find_vmdesc(r->buf, r->len);
    uint32_t vlen = be32_at(r->buf + vpos + 1);
    g_autoptr(JsonParser) parser = json_parser_new();
    GError *err = NULL;

    if (!json_parser_load_from_data(parser, (const char *)r->buf + vpos + 5, vlen, &err)) {
        g_error("vmdesc at offset %zu does not parse: %s", vpos, err->message);
    }
    JsonObject *root = json_object_ref(json_node_get_object(json_parser_get_root(parser)));
    g_assert_cmpint(json_object_get_int_member(root, "page_size"), ==, TEST_PAGE_SIZE);
    JsonObject *conf = json_object_get_object_member(root, "configuration");
    g_assert_nonnull(conf);
    g_assert_cmpstr(json_object_get_string_member(conf, "vmsd_name"), ==, "configuration");
    JsonArray *devs = json_object_get_array_member(root, "devices");
    g_assert_nonnull(devs);

    *devices = g_ptr_array_new_with_free_func(g_free);
    bool saw_globalstate = false;
    guint d = 0;
    while (br_peek(r) == 0x04) {
        br_skip(r, 1);
        uint32_t sid = br_be32(r);
        g_autofree char *idstr = br_counted(r);
        uint32_t instance = br_be32(r);
        uint32_t version = br_be32(r);
        g_assert_cmpuint(d, <, json_array_get_length(devs));
        JsonObject *dev = json_array_get_object_element(devs, d++);
        g_assert_cmpstr(json_object_get_string_member(dev, "name"), ==, idstr);
        g_assert_cmpint(json_object_get_int_member(dev, "instance_id"), ==, instance);
        g_assert_cmpint(json_object_get_int_member(dev, "version"), ==, version);
        g_assert_nonnull(json_object_get_string_member_with_default(dev, "vmsd_name", NULL));
        size_t body = r->pos;
        if (!strcmp(idstr, "globalstate")) {
            g_assert_cmpuint(instance, ==, 0);
            g_assert_cmpuint(version, ==, 1);
            check_globalstate_body(r);
            g_assert_cmpuint(r->pos - body, ==, 104);
            saw_globalstate = true;
        }
        r->pos = body;
        br_skip(r, desc_bytes(dev));
        check_footer(r, sid);
        g_ptr_array_add(*devices, g_steal_pointer(&idstr));
    }
    g_assert_true(saw_globalstate);
    g_assert_cmpuint(d, ==, json_array_get_length(devs));
    /* EOF right before the vmdesc, nothing after the JSON. */
    g_assert_cmpuint(r->pos, ==, vpos - 1);
    g_assert_cmpuint(br_u8(r), ==, 0x00);
    g_assert_cmpuint(br_u8(r), ==, 0x06);
    g_assert_cmpuint(br_be32(r), ==, vlen);
    br_skip(r, vlen);
    g_assert_cmpuint(r->pos, ==, r->len);
    return root;
}

/* --- the VM ------------------------------------------------------------- */

static bool has_data(const uint8_t *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (p[i]) {
            return true;
        }
    }
    return false;
}

QTestState *vm_start_stopped(const char *dir)
{
    QTestState *s = qtest_init_bin(qtest_vm_binary(),
                                   "-m 64M -machine " TEST_MACHINE " "
                                   "-guest fill,zero=70,text=15,random=15,seed=7");
    gint64 deadline = g_get_monotonic_time() + qtest_timeout_s() * G_USEC_PER_SEC;
    g_autofree uint8_t *prev = guest_memread(s, dir, 0, 64 * MiB_);

    /* The fill runs once: wait until main RAM has data and stops changing. */
    for (;;) {
        g_usleep(100 * 1000);
        g_autofree uint8_t *cur = guest_memread(s, dir, 0, 64 * MiB_);
        if (has_data(cur, 64 * MiB_) && memcmp(prev, cur, 64 * MiB_) == 0) {
            break;
        }
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        g_free(prev);
        prev = g_steal_pointer(&cur);
    }
    qtest_qmp_assert_success(s, "{'execute': 'stop'}");
    qtest_qmp_eventwait(s, "STOP");
    return s;
}

void vm_save(QTestState *s, const char *uri, bool mapped_ram)
{
    if (mapped_ram) {
        migrate_set_capability(s, "mapped-ram", true);
        /*
         * QEMU's layout exactly, up to the end of the vmdesc: mapram's
         * checksum table after it has a test of its own
         * (test-mapped-ram-csum, qtest /migration/mapped-ram/checksums/).
         */
        migrate_set_parameter_bool(s, "x-checksums", false);
    }
    migrate_qmp(s, uri, NULL);
    wait_for_migration_complete(s);
}

/* mapram-vm's memory map for -m 64M (system/memory.c): PC-like addresses. */
uint64_t vm_block_gpa(const char *idstr)
{
    if (!strcmp(idstr, "pc.ram")) {
        return 0;
    }
    if (!strcmp(idstr, "vga.vram")) {
        return 0xfd000000ull;
    }
    if (!strcmp(idstr, "pc.bios")) {
        return 0x100000000ull - 256 * 1024;
    }
    g_error("unexpected RAM block '%s'", idstr);
}

uint8_t *vm_read_block(QTestState *s, const char *dir, const char *idstr, uint64_t length)
{
    return guest_memread(s, dir, vm_block_gpa(idstr), length);
}

char *run_mapram_tool(const char *const *argv, int *status)
{
    const char *tool = g_getenv("MAPRAM_TOOL");
    g_autoptr(GPtrArray) args = g_ptr_array_new();
    char *out = NULL;
    g_autofree char *err_text = NULL;
    GError *err = NULL;
    int wait_status = 0;

    const char *subcommand = argv[0];

    g_assert_nonnull(tool);
    g_ptr_array_add(args, (gpointer)tool);
    for (; *argv; argv++) {
        g_ptr_array_add(args, (gpointer)*argv);
    }
    g_ptr_array_add(args, NULL);
    if (!g_spawn_sync(NULL, (char **)args->pdata, NULL, G_SPAWN_DEFAULT, NULL, NULL,
                      &out, &err_text, &wait_status, &err)) {
        g_error("cannot run %s: %s", tool, err->message);
    }
    *status = WIFEXITED(wait_status) ? WEXITSTATUS(wait_status) : 128;
    if (*status != 0) {
        g_printerr("mapram %s: exit %d: %s", subcommand, *status, err_text);
    }
    return out;
}
