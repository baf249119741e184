/*
 * Broken mapped-ram files and failing saves: each must end with a clear
 * error, the source running with its memory intact, and no destination
 * resumed.
 */
#include "framework.h"
#include "tests.h"

#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib/gstdio.h>

/* --- reading the file ---------------------------------------------------- */

typedef struct Reader {
    int fd;
    uint64_t pos;
    const char *path;
} Reader;

static void rd(Reader *r, void *buf, size_t len)
{
    ssize_t n = pread(r->fd, buf, len, (off_t)r->pos);

    if (n != (ssize_t)len) {
        g_error("'%s': short read of %zu bytes at offset %" G_GUINT64_FORMAT,
                r->path, len, r->pos);
    }
    r->pos += len;
}

static uint8_t rd8(Reader *r)
{
    uint8_t v;

    rd(r, &v, 1);
    return v;
}

static uint32_t rd32(Reader *r)
{
    uint8_t b[4];

    rd(r, b, 4);
    return (uint32_t)b[0] << 24 | b[1] << 16 | b[2] << 8 | b[3];
}

static uint64_t rd64(Reader *r)
{
    uint64_t hi = rd32(r);

    return hi << 32 | rd32(r);
}

static void rdstr(Reader *r, char *out, size_t len)
{
    rd(r, out, len);
    out[len] = 0;
}

/* Skip the configuration section and its subsections (reference §1.3). */
static void skip_configuration(Reader *r)
{
    char name[256];

    g_assert_cmphex(rd8(r), ==, 0x07);
    r->pos += rd32(r);
    for (;;) {
        uint8_t b;

        rd(r, &b, 1);
        if (b != 0x05) {
            r->pos--;
            return;
        }
        rdstr(r, name, rd8(r));
        (void)rd32(r);    /* subsection version */
        if (!strcmp(name, "configuration/capabilities")) {
            for (uint32_t n = rd32(r); n; n--) {
                r->pos += rd8(r);
            }
        } else if (!strcmp(name, "configuration/target-page-bits")) {
            r->pos += 4;
        } else if (!strcmp(name, "configuration/uuid")) {
            r->pos += 16;
        } else {
            g_error("'%s': unknown configuration subsection '%s'", r->path,
                    name);
        }
    }
}

GArray *mr_file_blocks(const char *path, uint64_t base)
{
    Reader r = { .fd = open(path, O_RDONLY | O_CLOEXEC), .pos = base,
                 .path = path };
    GArray *blocks = g_array_new(false, true, sizeof(MRBlock));
    char idstr[256];
    uint64_t total, sum = 0;

    g_assert_cmpint(r.fd, >=, 0);
    g_assert_cmphex(rd32(&r), ==, MIG_OFFSET_MAGIC);
    g_assert_cmphex(rd32(&r), ==, 3);
    skip_configuration(&r);
    if (rd8(&r) != 0x01) {
        g_error("'%s': no START section at %" G_GUINT64_FORMAT, path,
                r.pos - 1);
    }
    (void)rd32(&r);    /* section id */
    rdstr(&r, idstr, rd8(&r));
    if (strcmp(idstr, "ram")) {
        g_error("'%s': first section is '%s', not 'ram'", path, idstr);
    }
    r.pos += 8;        /* instance, version */
    total = rd64(&r);
    g_assert_cmphex(total & 0xfff, ==, 0x4);
    total &= ~0xfffULL;
    while (sum < total) {
        MRBlock b = { 0 };

        rdstr(&r, b.idstr, rd8(&r));
        b.used_length = rd64(&r);
        b.hdr_off = r.pos;
        b.version = rd32(&r);
        b.page_size = rd64(&r);
        b.bitmap_offset = rd64(&r);
        b.pages_offset = rd64(&r);
        g_array_append_val(blocks, b);
        sum += b.used_length;
        r.pos = b.pages_offset + b.used_length;
    }
    g_assert_cmpuint(sum, ==, total);
    close(r.fd);
    return blocks;
}

void patch_file(const char *path, uint64_t off, const void *buf, size_t len)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);

    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(pwrite(fd, buf, len, (off_t)off), ==, (ssize_t)len);
    close(fd);
}

void patch_be32(const char *path, uint64_t off, uint32_t v)
{
    uint8_t b[4] = { v >> 24, v >> 16, v >> 8, v };

    patch_file(path, off, b, 4);
}

void patch_be64(const char *path, uint64_t off, uint64_t v)
{
    patch_be32(path, off, v >> 32);
    patch_be32(path, off + 4, (uint32_t)v);
}

/* --- loading a broken file ------------------------------------------------ */

/* Load @path into a fresh destination; it must fail with exactly @want. */
static void load_must_fail(const char *path, bool mapped_ram,
                           const char *want)
{
    g_autofree char *dst = g_strdup_printf(
        "-m 150M -machine memory-backend=mig.mem "
        "-object memory-backend-ram,id=mig.mem,size=150M,share=off "
        "-guest ab -serial file:%s/dest_serial -incoming defer", mig_tmpdir);
    g_autofree char *uri = g_strdup_printf("file:%s", path);
    g_autofree char *desc = NULL;
    QTestState *to = qtest_init_bin(qtest_vm_binary(), "%s", dst);

    migrate_set_capability(to, "events", true);
    if (mapped_ram) {
        migrate_set_capability(to, "mapped-ram", true);
    }
    migrate_incoming_qmp(to, uri, NULL, "'exit-on-error': false");
    desc = wait_for_migration_fail(to);
    g_assert_cmpstr(desc, ==, want);
    assert_dest_not_resumed(to);
    qtest_quit(to);
}

static char *saved_mapped_ram(void)
{
    static const char *const caps[] = { "mapped-ram", NULL };

    return mig_make_saved_file(MIG_FILE_NAME, caps, false);
}

static MRBlock first_block(const char *path)
{
    g_autoptr(GArray) blocks = mr_file_blocks(path, 0);

    g_assert_cmpuint(blocks->len, >=, 2);
    return g_array_index(blocks, MRBlock, 0);
}

static uint64_t file_size(const char *path)
{
    struct stat st;

    g_assert_cmpint(stat(path, &st), ==, 0);
    return (uint64_t)st.st_size;
}

/*
 * Where the loader says a mapped-ram file's block list went wrong: the ram
 * section comes first (section id 0), right after the 8-byte header and a
 * configuration of 63 bytes (machine "mapram-10.2", capability mapped-ram).
 */
#define RAM_START "START section 'ram' (id 0) at offset 71: "
#define CONFIGURATION "Configuration at offset 8: "

/* What the loader says of a block's region that the file does not hold. */
static char *beyond_eof(const char *what, uint64_t start, uint64_t len,
                        uint64_t file_len)
{
    return g_strdup_printf(RAM_START "mapped-ram: %s of ramblock mig.mem [0x%" PRIx64
                           ", 0x%" PRIx64 ") lies beyond the end of the file "
                           "(0x%" PRIx64 " bytes)", what, start, start + len,
                           file_len);
}

static void test_truncated(void)
{
    g_autofree char *path = saved_mapped_ram();
    MRBlock b = first_block(path);
    uint64_t cut = b.pages_offset + b.used_length / 2;
    g_autofree char *want = NULL;

    g_assert_cmpuint(b.used_length, ==, 150ULL << 20);
    /* 75 MiB into main RAM: the ab pages up to 100 MiB are set bits. */
    g_assert_cmpint(truncate(path, (off_t)cut), ==, 0);
    want = beyond_eof("page region", b.pages_offset, b.used_length, cut);
    load_must_fail(path, true, want);
}

static void test_bad_version(void)
{
    g_autofree char *path = saved_mapped_ram();
    MRBlock b = first_block(path);

    g_assert_cmpuint(b.version, ==, 1);
    patch_be32(path, b.hdr_off, 2);
    load_must_fail(path, true, RAM_START "Migration mapped-ram capability version not "
                   "supported (expected <= 1, got 2)");
}

static void test_misaligned_pages(void)
{
    g_autofree char *path = saved_mapped_ram();
    MRBlock b = first_block(path);

    g_assert_cmpuint(b.pages_offset % (1 << 20), ==, 0);
    patch_be64(path, b.hdr_off + 20, b.pages_offset + 512);
    load_must_fail(path, true, RAM_START "Error reading ramblock mig.mem pages, region "
                   "has bad alignment");
}

static void test_bitmap_beyond_eof(void)
{
    g_autofree char *path = saved_mapped_ram();
    MRBlock b = first_block(path);
    uint64_t len = file_size(path), beyond = len + (1 << 20);
    /* one bit per page, as QEMU's bitmap_to_le(): 4800 bytes here */
    uint64_t bitmap_len = b.used_length / MIG_PAGE_SIZE / 8;
    g_autofree char *want = beyond_eof("bitmap", beyond, bitmap_len, len);

    patch_be64(path, b.hdr_off + 12, beyond);
    load_must_fail(path, true, want);
}

static void test_region_beyond_eof(void)
{
    g_autofree char *path = saved_mapped_ram();
    MRBlock b = first_block(path);
    uint64_t beyond = (file_size(path) + (2 << 20)) & ~((1ULL << 20) - 1);

    g_autofree char *want = beyond_eof("page region", beyond, b.used_length,
                                       file_size(path));

    patch_be64(path, b.hdr_off + 20, beyond);
    load_must_fail(path, true, want);
}

static void test_load_mapped_ram_off(void)
{
    g_autofree char *path = saved_mapped_ram();

    load_must_fail(path, false,
                   CONFIGURATION "Capability mapped-ram is off, but received capability is on");
}

static void test_load_stream_mapped_ram_on(void)
{
    g_autofree char *path = mig_make_saved_file(MIG_FILE_NAME, NULL, false);

    load_must_fail(path, true,
                   CONFIGURATION "Capability mapped-ram is on, but received capability is off");
}

/* The ab guest's file at uri loads into a fresh VM, its memory intact. */
static void load_must_complete(const char *uri)
{
    QTestState *to = qtest_init_bin(qtest_vm_binary(),
                                    "-m 150M -machine memory-backend=mig.mem "
                                    "-object memory-backend-ram,id=mig.mem,size=150M,share=off "
                                    "-guest ab -serial file:%s/dest_serial -incoming defer",
                                    mig_tmpdir);
    migrate_set_capability(to, "events", true);
    migrate_incoming_qmp(to, uri, NULL, NULL);
    wait_for_migration_complete(to);
    check_guests_ram(to);
    qtest_quit(to);
}

/*
 * A stream whose byte after the EOF is not a vmdesc's, or whose vmdesc is
 * cut short, loads, as in QEMU, which only reports it (all state is in by
 * then); mapram verify, which checks the file, still names it.
 */
static void test_load_no_vmdesc(void)
{
    g_autofree char *path = mig_make_saved_file(MIG_FILE_NAME, NULL, false);
    g_autofree char *uri = g_strdup_printf("file:%s", path);
    g_autofree char *out = NULL, *err = NULL, *want = NULL;
    g_autofree uint8_t *file = NULL;
    size_t len, at = 0;
    uint8_t seven = 7;

    file = read_whole_file(path, &len);
    for (size_t off = len - 5; off > 0 && !at; off--) {
        uint32_t n = (uint32_t)file[off + 1] << 24 | file[off + 2] << 16 |
                     file[off + 3] << 8 | file[off + 4];
        if (file[off] == 6 && file[off - 1] == 0 && n == len - off - 5) {
            at = off;                       /* the vmdesc: EOF byte, 0x06, its length, the rest */
        }
    }
    g_assert_cmpuint(at, >, 0);
    patch_file(path, at, &seven, 1);

    load_must_complete(uri);

    /* verify's walk, which looks for the end of each device section, stops earlier */
    g_assert_cmpint(mig_run_tool(&out, &err, "verify", path, NULL), ==, 1);
    want = g_strdup_printf("mapram verify: %s: ", path);
    g_assert_true(g_str_has_prefix(err, want));

    /* a vmdesc cut short (the file's last byte gone) is only reported too */
    g_assert_true(g_file_set_contents(path, (const char *)file, len - 1, NULL));
    load_must_complete(uri);
}

/*
 * The stream file of the ab guest with a capabilities subsection listing
 * cap inserted into its configuration (after the machine name, where a
 * QEMU source puts it; mapram-vm's stream saves have no subsection).
 */
static char *stream_with_capability(const char *cap)
{
    g_autofree char *path = mig_make_saved_file(MIG_FILE_NAME, NULL, false);
    g_autofree uint8_t *file = NULL;
    static const char sub[] = "configuration/capabilities";
    size_t len, at;

    file = read_whole_file(path, &len);
    g_assert_cmpuint(file[8], ==, 0x07);                     /* QEMU_VM_CONFIGURATION */
    at = 13 + ((uint32_t)file[9] << 24 | file[10] << 16 | file[11] << 8 | file[12]);
    g_assert_cmpuint(file[at], !=, 0x05);                    /* no subsection yet */

    g_autoptr(GByteArray) b = g_byte_array_new();
    uint8_t head[] = { 0x05, sizeof(sub) - 1 };
    uint8_t ver_count[] = { 0, 0, 0, 1, 0, 0, 0, 1 };        /* version 1, one capability */
    uint8_t n = strlen(cap);
    g_byte_array_append(b, file, at);
    g_byte_array_append(b, head, sizeof(head));
    g_byte_array_append(b, (const uint8_t *)sub, sizeof(sub) - 1);
    g_byte_array_append(b, ver_count, sizeof(ver_count));
    g_byte_array_append(b, &n, 1);
    g_byte_array_append(b, (const uint8_t *)cap, n);
    g_byte_array_append(b, file + at, len - at);
    g_assert_true(g_file_set_contents(path, (const char *)b->data, b->len, NULL));
    return g_steal_pointer(&path);
}

/*
 * As QEMU: the configuration may list any capability it knows (only
 * x-ignore-shared and mapped-ram are compared); a name it does not know
 * fails the load.
 */
static void test_load_config_capability(void)
{
    g_autofree char *path = stream_with_capability("multifd");
    g_autofree char *uri = g_strdup_printf("file:%s", path);

    load_must_complete(uri);
    g_free(path);
    path = stream_with_capability("bogus");
    load_must_fail(path, false, CONFIGURATION "Received unknown capability bogus");
}

/*
 * A device section of a version newer than the VM's: refused before its
 * body is read, with QEMU's words (as for any other section).
 */
/*
 * The FULL section of device name (instance 0, version) in a stream file:
 * the offset of its name's length byte, and its section id.
 */
static size_t find_full_section(const char *path, const char *name, uint32_t version,
                                uint32_t *sid)
{
    g_autofree uint8_t *file = NULL;
    size_t len, n = strlen(name);
    uint8_t tail[8] = { 0, 0, 0, 0, version >> 24, version >> 16, version >> 8, version };

    file = read_whole_file(path, &len);
    /* 0x04, be32 section id, u8 length, name, be32 instance 0, be32 version */
    for (size_t at = 5; at + 1 + n + 8 <= len; at++) {
        if (file[at - 5] == 0x04 && file[at] == n && !memcmp(file + at + 1, name, n) &&
            !memcmp(file + at + 1 + n, tail, 8)) {
            *sid = (uint32_t)file[at - 4] << 24 | file[at - 3] << 16 |
                   file[at - 2] << 8 | file[at - 1];
            return at;
        }
    }
    g_error("no FULL section '%s' in %s", name, path);
}

static void test_load_device_version(void)
{
    g_autofree char *path = mig_make_saved_file(MIG_FILE_NAME, NULL, false);
    g_autofree char *want = NULL;
    uint32_t sid;
    size_t at = find_full_section(path, "rtc", 3, &sid);

    patch_be32(path, at + 1 + 3 + 4, 4);
    want = g_strdup_printf("FULL section 'rtc' (id %u) at offset %zu: "
                           "savevm: unsupported version 4 for 'rtc' v3", sid, at - 5);
    load_must_fail(path, false, want);
}

/*
 * What QEMU takes, we take: globalstate's size field is not read back
 * (only the run state's name), and a machine name of no bytes matches
 * any machine (QEMU compares the received bytes only).
 */
static void test_load_lenient_fields(void)
{
    g_autofree char *path = mig_make_saved_file(MIG_FILE_NAME, NULL, false);
    g_autofree char *uri = g_strdup_printf("file:%s", path);
    g_autofree uint8_t *file = NULL;
    uint32_t sid;
    size_t len, at = find_full_section(path, "globalstate", 1, &sid);

    patch_be32(path, at + 1 + 11 + 8, 0);            /* size, first of the body */
    load_must_complete(uri);

    /* the configuration's machine name cut to no bytes */
    file = read_whole_file(path, &len);
    uint32_t n = (uint32_t)file[9] << 24 | file[10] << 16 | file[11] << 8 | file[12];
    g_autoptr(GByteArray) b = g_byte_array_new();
    static const uint8_t zero[4] = { 0 };
    g_byte_array_append(b, file, 9);
    g_byte_array_append(b, zero, 4);
    g_byte_array_append(b, file + 13 + n, len - 13 - n);
    g_assert_true(g_file_set_contents(path, (const char *)b->data, b->len, NULL));
    load_must_complete(uri);
}

/* --- failing saves ------------------------------------------------------- */

/* The end of the 150 MiB main block's pages in the file (1 MiB + 150 MiB). */
#define MAIN_PAGES_END (151ULL << 20)

static bool run_cmd(const char *cmd)
{
    int status = -1;

    if (!g_spawn_command_line_sync(cmd, NULL, NULL, &status, NULL)) {
        return false;
    }
    return g_spawn_check_wait_status(status, NULL);
}

/*
 * A stream whose ram section STARTs but never ENDs before the EOF (cut
 * out of a real save): `mapram save` and `convert` refuse it and leave no
 * file, where they wrote one whose bitmaps said "all zero" before.
 */
static void test_tool_ram_never_ended(void)
{
    g_autofree char *args = mig_vm_args("32M", "fill", "src_serial", NULL);
    g_autofree char *path = mig_path("stream.img");
    g_autofree char *cut_path = mig_path("cut.img");
    g_autofree char *out_path = mig_path("out.img");
    g_autofree char *uri = g_strdup_printf("file:%s", path);
    g_autofree char *info = NULL, *err = NULL, *file = NULL;
    g_autoptr(GString) cut = g_string_new(NULL);
    QTestState *from = qtest_init_bin(qtest_vm_binary(), "%s", args);
    unsigned end_at = 0, end_len = 0;
    gsize len;
    int status;

    qtest_qmp_assert_success(from, "{'execute': 'stop'}");
    migrate_qmp(from, uri, NULL);
    wait_for_migration_complete(from);
    qtest_quit(from);

    g_assert_cmpint(mig_run_tool(&info, NULL, "info", path, NULL), ==, 0);
    g_auto(GStrv) lines = g_strsplit(info, "\n", -1);
    for (char **l = lines; *l; l++) {
        if (sscanf(*l, " @%u END id 0 ram instance 0 version 4 (%u bytes)", &end_at,
                   &end_len) == 2) {
            break;
        }
    }
    g_assert_cmpuint(end_len, >, 0);
    g_assert_true(g_file_get_contents(path, &file, &len, NULL));
    g_string_append_len(cut, file, end_at);
    g_string_append_len(cut, file + end_at + end_len, len - end_at - end_len);
    g_assert_true(g_file_set_contents(cut_path, cut->str, cut->len, NULL));

    g_autofree char *convert_err = NULL;
    g_assert_cmpint(mig_run_tool(NULL, &convert_err, "convert", cut_path, out_path, NULL), ==, 1);
    g_assert_true(g_str_has_prefix(convert_err, "mapram convert: "));
    g_assert_nonnull(strstr(convert_err, "Record at offset "));
    g_assert_nonnull(strstr(convert_err, ": The stream ended before its ram section (id 0) did: "
                            "its last pages and the end of the save are missing\n"));
    g_assert_false(g_file_test(out_path, G_FILE_TEST_EXISTS));

    const char *argv[] = { "/bin/sh", "-c", "exec \"$0\" save --quiet \"$1\" < \"$2\"",
                           g_getenv("MAPRAM_TOOL"), out_path, cut_path, NULL };
    g_assert_true(g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_DEFAULT, NULL, NULL, NULL,
                               &err, &status, NULL));
    g_assert_true(WIFEXITED(status));
    g_assert_cmpint(WEXITSTATUS(status), ==, 1);
    g_assert_nonnull(strstr(err, ": The stream ended before its ram section (id 0) did: "));
    g_assert_false(g_file_test(out_path, G_FILE_TEST_EXISTS));
}

/*
 * The tools' errors say which file they are about (info and verify did):
 * load names its input, or stdout when writing failed; convert its
 * input; serve its file, which it now also refuses when cut inside the
 * vmdesc (load and verify did; serve then served the pages unchecked).
 */
static void test_tool_errors_name_file(void)
{
    g_free(mig_make_live_saved_uri(MIG_FILE_NAME, false));     /* the file, at path */
    g_autofree char *path = mig_path(MIG_FILE_NAME);
    g_autofree char *cut_path = mig_path("cut.img");
    g_autofree char *info = NULL, *err = NULL, *file = NULL, *out = NULL;
    unsigned table_at = 0;
    gsize len;
    int status;

    g_assert_cmpint(mig_run_tool(&info, NULL, "info", path, NULL), ==, 0);
    const char *t = strstr(info, ", table @");
    g_assert_nonnull(t);
    table_at = strtoul(t + strlen(", table @"), NULL, 10);
    g_assert_true(g_file_get_contents(path, &file, &len, NULL));
    g_assert_cmpuint(table_at, <, len);

    /* cut inside the vmdesc (it ends where the checksum table starts) */
    g_assert_true(g_file_set_contents(cut_path, file, table_at - 10, NULL));
    g_autofree char *eos = g_strdup_printf(": Unexpected end of stream at offset %u\n",
                                           table_at - 10);
    const char *tools[] = { "serve", "load", "verify" };
    for (unsigned i = 0; i < G_N_ELEMENTS(tools); i++) {
        g_autofree char *prefix = g_strdup_printf("mapram %s: %s: VM description at offset ",
                                                  tools[i], cut_path);
        g_clear_pointer(&err, g_free);
        if (g_str_equal(tools[i], "serve")) {
            g_assert_cmpint(mig_run_tool(NULL, &err, "serve", "--quiet", cut_path,
                                         "unix:/nonexistent/sock", NULL), ==, 1);
        } else {
            g_clear_pointer(&out, g_free);      /* load's stream, not the test's stdout */
            g_assert_cmpint(mig_run_tool(&out, &err, tools[i], cut_path, NULL), ==, 1);
        }
        g_assert_true(g_str_has_prefix(err, prefix));
        g_assert_true(g_str_has_suffix(err, eos));
    }

    /* cut inside the pages: load names the file */
    g_assert_true(g_file_set_contents(cut_path, file, len / 2, NULL));
    g_clear_pointer(&err, g_free);
    g_clear_pointer(&out, g_free);
    g_assert_cmpint(mig_run_tool(&out, &err, "load", "--quiet", cut_path, NULL), ==, 1);
    g_autofree char *lp = g_strdup_printf("mapram load: %s: START section 'ram' (id 0) at "
                                          "offset ", cut_path);
    g_assert_true(g_str_has_prefix(err, lp));

    /* a full output: load names stdout, not the file it read well */
    const char *argv[] = { "/bin/sh", "-c", "exec \"$0\" load --quiet \"$1\" > /dev/full",
                           g_getenv("MAPRAM_TOOL"), path, NULL };
    g_clear_pointer(&err, g_free);
    g_assert_true(g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_DEFAULT, NULL, NULL, NULL,
                               &err, &status, NULL));
    g_assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 1);
    g_assert_true(g_str_has_prefix(err, "mapram load: stdout: "));
    g_assert_true(g_str_has_suffix(err, ": Unable to write to file: No space left on device\n"));

    /* convert: a load of the file into a stream file, cut, converted back */
    g_autofree char *stream = mig_path("stream.img");
    g_autofree char *back = mig_path("back.img");
    g_autofree char *sfile = NULL;
    gsize slen;
    g_assert_cmpint(mig_run_tool(NULL, NULL, "convert", path, stream, NULL), ==, 0);
    g_assert_true(g_file_get_contents(stream, &sfile, &slen, NULL));
    g_assert_true(g_file_set_contents(cut_path, sfile, slen / 2, NULL));
    g_clear_pointer(&err, g_free);
    g_assert_cmpint(mig_run_tool(NULL, &err, "convert", cut_path, back, NULL), ==, 1);
    g_autofree char *cp = g_strdup_printf("mapram convert: %s: ", cut_path);
    g_assert_true(g_str_has_prefix(err, cp));
    g_assert_false(g_file_test(back, G_FILE_TEST_EXISTS));
}

/* A live mapped-ram save into a 64 MiB tmpfs: ~99 MiB of ab pages. */
static void test_disk_full(void)
{
    static const char *const ungoals[] = { "completed", "cancelled", NULL };
    g_autofree char *mnt = mig_path("small");
    g_autofree char *mount_cmd = NULL;
    g_autofree char *umount_cmd = NULL;
    g_autofree char *uri = NULL;
    g_autofree char *desc = NULL;
    MigrateCommon args = { .start.only_source = true,
                           .caps = { "mapped-ram" } };
    QTestState *from, *to;
    uint64_t off;

    g_assert_cmpint(g_mkdir(mnt, 0700), ==, 0);
    mount_cmd = g_strdup_printf("mount -t tmpfs -o size=64m tmpfs %s", mnt);
    umount_cmd = g_strdup_printf("umount -l %s", mnt);
    if (!run_cmd(mount_cmd)) {
        g_test_skip("cannot mount a small tmpfs here");
        return;
    }
    uri = g_strdup_printf("file:%s/%s", mnt, MIG_FILE_NAME);
    migrate_start(&args, &from, &to);
    migrate_ensure_converge(from);
    wait_for_serial("src_serial");
    migrate_qmp(from, uri, NULL);
    wait_for_migration_status(from, "failed", ungoals);
    {
        g_autoptr(JsonObject) info = migrate_query(from);

        desc = g_strdup(qtest_json_get_str(info, "error-desc"));
    }
    g_assert_nonnull(desc);
    /*
     * Where the 64 MiB filled up depends on which pages the live guest
     * had at zero (holes); the first MiB of guest RAM is a hole, so about
     * 64 MiB of pages were written before the write that failed.
     */
    off = assert_msg_hex(desc, "Unable to write to file at offset ",
                         ": No space left on device");
    g_assert_cmphex(off % MIG_PAGE_SIZE, ==, 0);
    g_assert_cmphex(off, >=, 62ULL << 20);
    g_assert_cmphex(off, <, MAIN_PAGES_END);
    assert_source_intact(from);
    qtest_quit(from);
    g_assert_true(run_cmd(umount_cmd));
}

static void test_cancel_mid_save(void)
{
    static const char *const ungoals[] = { "failed", "completed", NULL };
    g_autofree char *uri = mig_file_uri(MIG_FILE_NAME, NULL);
    g_autofree char *path = mig_path(MIG_FILE_NAME);
    g_autofree char *want = NULL;
    MigrateCommon args = { .start.only_source = true,
                           .caps = { "mapped-ram" } };
    QTestState *from, *to;

    migrate_start(&args, &from, &to);
    wait_for_serial("src_serial");
    migrate_set_parameter_int(from, "max-bandwidth", 10 * 1000 * 1000);
    migrate_set_parameter_int(from, "downtime-limit", 1);
    migrate_qmp(from, uri, NULL);
    wait_for_migration_status(from, "active", ungoals);
    g_usleep(300 * 1000);
    qtest_qmp_assert_success(from, "{'execute': 'migrate_cancel'}");
    wait_for_migration_status(from, "cancelled", ungoals);
    assert_source_intact(from);
    qtest_quit(from);
    /* A cancelled save is cut back to its offset: nothing is left that could load. */
    g_assert_cmpuint(file_size(path), ==, 0);
    want = g_strdup("Stream header at offset 0: the stream is empty (no QEVM header)");
    load_must_fail(path, true, want);
}

void migration_test_add_badfile(void)
{
    migration_test_add("/migration/tool/save/ram-never-ended", test_tool_ram_never_ended,
                       MIG_SMOKE);
    migration_test_add("/migration/tool/errors-name-file", test_tool_errors_name_file,
                       MIG_SMOKE);
    migration_test_add("/migration/mapped-ram/bad-file/truncated",
                       test_truncated, MIG_FULL);
    migration_test_add("/migration/mapped-ram/bad-file/header-version",
                       test_bad_version, MIG_SMOKE);
    migration_test_add("/migration/mapped-ram/bad-file/misaligned-pages",
                       test_misaligned_pages, MIG_FULL);
    migration_test_add("/migration/mapped-ram/bad-file/bitmap-beyond-eof",
                       test_bitmap_beyond_eof, MIG_FULL);
    migration_test_add("/migration/mapped-ram/bad-file/region-beyond-eof",
                       test_region_beyond_eof, MIG_FULL);
    migration_test_add("/migration/mapped-ram/bad-file/mapped-ram-off",
                       test_load_mapped_ram_off, MIG_SMOKE);
    migration_test_add("/migration/mapped-ram/bad-file/stream-mapped-ram-on",
                       test_load_stream_mapped_ram_on, MIG_FULL);
    migration_test_add("/migration/stream/bad-file/config-capability",
                       test_load_config_capability, MIG_SMOKE);
    migration_test_add("/migration/stream/bad-file/device-version",
                       test_load_device_version, MIG_SMOKE);
    migration_test_add("/migration/stream/bad-file/lenient-fields",
                       test_load_lenient_fields, MIG_SMOKE);
    migration_test_add("/migration/stream/bad-file/no-vmdesc",
                       test_load_no_vmdesc, MIG_SMOKE);
    migration_test_add("/migration/mapped-ram/save/disk-full",
                       test_disk_full, MIG_FULL);
    migration_test_add("/migration/mapped-ram/save/cancel",
                       test_cancel_mid_save, MIG_SMOKE);
}
