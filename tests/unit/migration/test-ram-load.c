/*
 * The "ram" handlers in process, with a fake host: a mapped-ram save of a
 * block whose zero pages are single pages between data pages and one long
 * stretch, then a load into RAM full of garbage.  The clear pages' slots
 * are filled with stale data first (what a live save leaves when a page
 * becomes zero after it was written), so a loader that reads through
 * short holes must zero what it read there, and one that skips long holes
 * must zero the pages the destination itself wrote.
 */
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "io/channel.h"
#include "migration/qemu-file.h"
#include "migration/ram.h"
#include "migration/savevm.h"
#include "util/bitmap.h"
#include "util/osdep.h"

#define PAGE 4096
#define PAGES 96

typedef struct FakeHost {
    uint8_t *ram;
    unsigned long *dirty;         /* pages written since the last sync */
} FakeHost;

static size_t fake_block_count(void *opaque)
{
    return 1;
}

static void fake_block_get(void *opaque, size_t index, MigrationRAMBlock *out)
{
    FakeHost *h = opaque;
    *out = (MigrationRAMBlock) { "pc.ram", h->ram, PAGES * PAGE };
}

static uint64_t fake_sync_dirty(void *opaque, size_t index, unsigned long *dest)
{
    FakeHost *h = opaque;
    uint64_t n = 0;
    for (uint64_t p = find_next_bit(h->dirty, PAGES, 0); p < PAGES;
         p = find_next_bit(h->dirty, PAGES, p + 1)) {
        n += !test_bit(p, dest);
        set_bit(p, dest);
    }
    bitmap_clear_range(h->dirty, 0, PAGES);
    return n;
}

static const MigrationHostOps fake_ops = {
    .ram_block_count = fake_block_count,
    .ram_block_get = fake_block_get,
    .ram_block_sync_dirty = fake_sync_dirty,
};

static void fake_host_init(FakeHost *h, uint8_t fill)
{
    h->ram = qemu_memalign(PAGE, PAGES * PAGE);
    memset(h->ram, fill, PAGES * PAGE);
    h->dirty = bitmap_new(PAGES);
    bitmap_set_range(h->dirty, 0, PAGES);
}

static void fake_host_clear(FakeHost *h)
{
    qemu_vfree(h->ram);
    g_free(h->dirty);
}

/* Every third page zero, and pages 48-79 zero: holes of one page and of 32. */
static bool page_is_zero(unsigned p)
{
    return p % 3 == 2 || (p >= 48 && p < 80);
}

static void fill_source(FakeHost *h)
{
    for (unsigned p = 0; p < PAGES; p++) {
        memset(h->ram + p * PAGE, page_is_zero(p) ? 0 : p + 1, PAGE);
    }
}

static void save(const char *path)
{
    FakeHost src;
    SaveVMRegistry *reg = savevm_registry_new();
    RamState *ram = ram_state_new(reg, &fake_ops, &src);
    RamStats stats = { 0 };
    GError *err = NULL;

    fake_host_init(&src, 0);
    fill_source(&src);
    IOChannel *ioc = io_channel_file_open(path, O_RDWR | O_CREAT | O_TRUNC, 0600, &err);
    g_assert_no_error(err);
    RamSaveParams p = {
        .mapped_ram = true, .channels = 1, .queue_depth = 4,
        .zero = ZERO_PAGE_DETECTION_MULTIFD, .path = path, .main_ioc = ioc, .stats = &stats,
    };
    ram_save_configure(ram, &p);

    QEMUFile *f = qemu_file_new_output(ioc, 0);
    StreamConfig cfg = { .machine = "test", .caps = g_ptr_array_new_with_free_func(g_free) };
    g_ptr_array_add(cfg.caps, g_strdup("mapped-ram"));
    g_autoptr(JsonBuilder) vmdesc = json_builder_new();
    qemu_savevm_state_header(f, &cfg, vmdesc);
    g_assert_true(qemu_savevm_state_setup(reg, f, true, &err));
    while (qemu_savevm_state_iterate(reg, f, true, &err) == 0) {
    }
    g_assert_no_error(err);
    g_assert_true(qemu_savevm_state_complete(reg, f, vmdesc, false, true, NULL, NULL, &err));
    g_assert_no_error(err);
    qemu_savevm_state_cleanup(reg);
    g_assert_true(qemu_fclose(f, &err));
    g_assert_true(io_channel_close(ioc, &err));
    g_assert_no_error(err);
    io_channel_unref(ioc);
    stream_config_clear(&cfg);
    ram_state_free(ram);
    savevm_registry_free(reg);
    fake_host_clear(&src);
}

/* ---- the block's pages_offset, through the decoder ---- */

static bool h_block(void *opaque, QEMUFile *f, unsigned idx, const char *idstr,
                    uint64_t used_length, const MappedRamHeader *hdr, GError **errp)
{
    *(uint64_t *)opaque = hdr->pages_offset;
    return true;
}

static bool h_section(void *opaque, QEMUFile *f, const SectionInfo *si, GError **errp)
{
    static const RamSink sink = { .block = h_block };
    RamDecoder d;

    if (strcmp(si->idstr, "ram") || si->type != QEMU_VM_SECTION_START) {
        return savevm_skip_unknown_body(f, si, NULL, errp);
    }
    ram_decoder_init(&d, true);
    bool ok = ram_decode_section(&d, f, si->type, &sink, opaque, errp);
    ram_decoder_clear(&d);
    return ok;
}

static uint64_t pages_offset(const char *path)
{
    static const StreamVisitor v = { .section = h_section };
    GError *err = NULL;
    uint64_t off = 0;
    IOChannel *ioc = io_channel_file_open(path, O_RDONLY, 0, &err);
    QEMUFile *f = qemu_file_new_input(ioc, 0);

    g_assert_true(savevm_walk_stream(f, &v, &off, true, &err));
    g_assert_no_error(err);
    qemu_fclose(f, NULL);
    io_channel_unref(ioc);
    g_assert_cmpuint(off, >, 0);
    return off;
}

/* What a live save leaves in the slot of a page that became zero after it was written. */
static void stale_holes(const char *path)
{
    uint64_t off = pages_offset(path);
    uint8_t junk[PAGE];
    int fd = open(path, O_WRONLY);

    memset(junk, 0xaa, PAGE);
    for (unsigned p = 0; p < PAGES; p++) {
        if (page_is_zero(p)) {
            g_assert_cmpint(pwrite(fd, junk, PAGE, off + p * PAGE), ==, PAGE);
        }
    }
    close(fd);
}

static bool accept_config(void *opaque, const StreamConfig *cfg, GError **errp)
{
    return true;
}

static void test_load_zeroes_clear_pages(void)
{
    g_autofree char *dir = g_dir_make_tmp("test-ram-load-XXXXXX", NULL);
    g_autofree char *path = g_build_filename(dir, "save.img", NULL);
    FakeHost dst;
    SaveVMRegistry *reg = savevm_registry_new();
    RamState *ram = ram_state_new(reg, &fake_ops, &dst);
    GError *err = NULL;

    save(path);
    stale_holes(path);
    /* the destination wrote every page before the load */
    fake_host_init(&dst, 0x55);
    RamLoadParams lp = { .mapped_ram = true, .channels = 1, .queue_depth = 4, .path = path };
    ram_load_configure(ram, &lp);
    IOChannel *ioc = io_channel_file_open(path, O_RDONLY, 0, &err);
    QEMUFile *f = qemu_file_new_input(ioc, 0);
    g_assert_true(qemu_loadvm_state(reg, f, NULL, accept_config, NULL, NULL, NULL, &err));
    g_assert_no_error(err);
    qemu_fclose(f, NULL);
    io_channel_unref(ioc);

    for (unsigned p = 0; p < PAGES; p++) {
        uint8_t want = page_is_zero(p) ? 0 : p + 1;
        for (unsigned b = 0; b < PAGE; b += 256) {
            if (dst.ram[p * PAGE + b] != want) {
                g_error("page %u byte %u: 0x%02x, want 0x%02x", p, b, dst.ram[p * PAGE + b],
                        want);
            }
        }
    }
    ram_state_free(ram);
    savevm_registry_free(reg);
    fake_host_clear(&dst);
    unlink(path);
    rmdir(dir);
}

/* A RAM section of a version other than 4 is refused, as QEMU refuses it. */
static void test_load_old_version(void)
{
    g_autofree char *dir = g_dir_make_tmp("test-ram-load-XXXXXX", NULL);
    g_autofree char *path = g_build_filename(dir, "save.img", NULL);
    static const char start[] = "\x03ram\0\0\0\0\0\0\0\x04";   /* idstr, instance, version */
    FakeHost dst;
    SaveVMRegistry *reg = savevm_registry_new();
    RamState *ram = ram_state_new(reg, &fake_ops, &dst);
    GError *err = NULL;
    gsize len;
    g_autofree char *file = NULL;

    save(path);
    g_assert_true(g_file_get_contents(path, &file, &len, NULL));
    char *v = memmem(file, len, start, sizeof(start) - 1);
    g_assert_nonnull(v);
    v[sizeof(start) - 2] = 1;
    g_assert_true(g_file_set_contents(path, file, len, NULL));
    fake_host_init(&dst, 0x55);
    RamLoadParams lp = { .mapped_ram = true, .channels = 1, .queue_depth = 4, .path = path };
    ram_load_configure(ram, &lp);
    IOChannel *ioc = io_channel_file_open(path, O_RDONLY, 0, &err);
    QEMUFile *f = qemu_file_new_input(ioc, 0);
    g_assert_false(qemu_loadvm_state(reg, f, NULL, accept_config, NULL, NULL, NULL, &err));
    g_assert_nonnull(err);
    g_assert_true(g_str_has_prefix(err->message, "START section 'ram' "));
    g_assert_true(g_str_has_suffix(err->message,
                                   ": RAM section version 1 is not supported (expected 4)"));
    g_error_free(err);
    qemu_fclose(f, NULL);
    io_channel_unref(ioc);
    ram_state_free(ram);
    savevm_registry_free(reg);
    fake_host_clear(&dst);
    unlink(path);
    rmdir(dir);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/migration/ram/load/mapped-ram/clear-pages-zero",
                    test_load_zeroes_clear_pages);
    g_test_add_func("/migration/ram/load/old-version", test_load_old_version);
    return g_test_run();
}
