/*
 * RAM save and load in process, through the public API with fake hosts:
 * the stream format and mapped-ram (one page channel, multifd, direct-io
 * where the file system allows O_DIRECT), a source with data pages, zero
 * pages and an all-zero block, loaded into a second host whose memory
 * starts dirty (every page written, so a page the source had zero must be
 * zeroed by the load).  Memory is compared byte for byte; the figures of
 * MigrationInfo (normal, duplicate, transferred and its split) are checked
 * exactly against the file.  The live cases change pages, including data
 * to zero and zero to data, between the passes.  Without direct-io, a
 * mapped-ram save runs one page worker per channel, or x-page-io-threads
 * of them (counted while the save runs).
 */
#include <string.h>
#include <sys/stat.h>

#include "fake-host.h"

#define MiB (1024 * 1024)

typedef struct Case {
    const char *name;
    const char *caps[3];
    unsigned channels;          /* multifd-channels, 0 = default */
    bool direct_io;
    bool no_zero_detection;     /* zero-page-detection "none" */
    bool live;
    const char *offset;         /* file: ",offset=" or NULL */
    unsigned page_io_threads;   /* x-page-io-threads, 0 = default */
} Case;

static const Case cases[] = {
    { "stream", { NULL } },
    { "stream/live", { NULL }, .live = true },
    { "stream/no-zero-detection", { NULL }, .no_zero_detection = true },
    { "stream/offset", { NULL }, .offset = "4096" },
    { "mapped-ram", { "mapped-ram" } },
    { "mapped-ram/live", { "mapped-ram" }, .live = true },
    { "mapped-ram/offset", { "mapped-ram" }, .offset = "0x10000" },
    { "mapped-ram/multifd", { "mapped-ram", "multifd" }, .channels = 4 },
    { "mapped-ram/multifd/live", { "mapped-ram", "multifd" }, .channels = 3, .live = true },
    { "mapped-ram/page-io-threads", { "mapped-ram" }, .page_io_threads = 2 },
    { "mapped-ram/multifd/page-io-threads", { "mapped-ram", "multifd" }, .channels = 2,
      .page_io_threads = 5 },
    { "mapped-ram/dio", { "mapped-ram" }, .direct_io = true },
    { "mapped-ram/multifd/dio", { "mapped-ram", "multifd" }, .channels = 4, .direct_io = true },
};

/*
 * Blocks: runs of 16 pages with every third run zero, every other page
 * zero, all zero.
 */
static const struct {
    const char *idstr;
    uint64_t size;
    unsigned zero_every;
    unsigned run;
} blocks[] = {
    { "pc.ram", 6 * MiB, 3, 16 },
    { "vga.vram", 256 * 1024, 2, 1 },
    { "pc.rom", 256 * 1024, 1, 1 },
};

typedef struct Side {
    FakeHost *h;
    Migration *m;
    FakeDevice dev;
} Side;

static void side_init(Side *s, RunState state, const Case *c)
{
    g_autoptr(GError) err = NULL;
    memset(&s->dev, 0, sizeof(s->dev));
    s->h = fake_host_new(state);
    for (size_t i = 0; i < G_N_ELEMENTS(blocks); i++) {
        fake_host_add_block(s->h, blocks[i].idstr, blocks[i].size);
    }
    s->m = fake_host_migration_new(s->h);
    fake_device_register(s->m, &s->dev);
    for (size_t i = 0; c->caps[i]; i++) {
        g_assert_true(migration_set_capability(s->m, c->caps[i], true, &err));
        g_assert_no_error(err);
    }
    g_autoptr(JsonObject) p = json_object_new();
    json_object_set_boolean_member(p, "direct-io", c->direct_io);
    if (c->channels) {
        json_object_set_int_member(p, "multifd-channels", c->channels);
    }
    if (c->no_zero_detection) {
        json_object_set_string_member(p, "zero-page-detection", "none");
    }
    if (c->page_io_threads) {
        json_object_set_int_member(p, "x-page-io-threads", c->page_io_threads);
    }
    g_assert_true(migration_set_parameters(s->m, p, &err));
    g_assert_no_error(err);
}

static void side_cleanup(Side *s)
{
    migration_free(s->m);
    fake_host_free(s->h);
}

static FakeBlock *block(Side *s, size_t i)
{
    return g_ptr_array_index(s->h->blocks, i);
}

/* ---- the live cases: the guest runs between two harvests ---- */

typedef struct Live {
    unsigned writes;            /* rounds of guest writes done */
    uint64_t resent;            /* pages dirtied after the first pass began */
    unsigned page_threads;      /* the most page worker threads seen at a harvest */
} Live;

/*
 * On the second harvest of pc.ram (the first is the save's setup, before
 * any page is sent; the second comes once the first pass sent pc.ram's
 * first pages): page 20 (data) becomes zero, page 1 (zero) gets data,
 * pages 30-33 (data) change.  Once only, so that the save converges at once and
 * the counts are exact.  Every harvest (live or not) counts the page
 * worker threads: at the last one, every worker that wrote in the first
 * pass runs.
 */
static void live_on_sync(FakeHost *h, size_t index, void *opaque)
{
    Live *l = opaque;
    FakeBlock *b = g_ptr_array_index(h->blocks, index);
    uint8_t page[FAKE_PAGE_SIZE];

    l->page_threads = MAX(l->page_threads, fake_test_count_threads("pageio"));

    if (index != 0 || fake_host_runstate(h) != RUN_STATE_RUNNING || ++l->writes != 2) {
        return;
    }
    memset(page, 0, sizeof(page));
    fake_block_write(b, 20 * FAKE_PAGE_SIZE, page, sizeof(page));
    memset(page, 0x40 + l->writes, sizeof(page));
    fake_block_write(b, 1 * FAKE_PAGE_SIZE, page, sizeof(page));
    for (uint64_t p = 30; p < 34; p++) {
        fake_block_write(b, p * FAKE_PAGE_SIZE, page, sizeof(page));
    }
    l->resent = 6;
}

/* ---- the file ---- */

static uint64_t be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v = v << 8 | p[i];
    }
    return v;
}

/*
 * Bytes of a mapped-ram file that are not the stream's: for each block, its
 * bitmap, the padding to its page region and the region, found from the
 * MappedRamHeader after the block's idstr and used_length.
 */
static uint64_t mapped_ram_outside_stream(const uint8_t *file, size_t len)
{
    uint64_t outside = 0;
    for (size_t i = 0; i < G_N_ELEMENTS(blocks); i++) {
        size_t n = strlen(blocks[i].idstr);
        uint8_t key[1 + 255 + 8];
        key[0] = n;
        memcpy(key + 1, blocks[i].idstr, n);
        for (int k = 0; k < 8; k++) {
            key[1 + n + k] = blocks[i].size >> (56 - 8 * k);
        }
        const uint8_t *at = memmem(file, len, key, 1 + n + 8);
        g_assert_nonnull(at);
        const uint8_t *hdr = at + 1 + n + 8;
        g_assert_cmpuint(be64(hdr + 4), ==, FAKE_PAGE_SIZE);          /* page_size */
        uint64_t bitmap_offset = be64(hdr + 12), pages_offset = be64(hdr + 20);
        g_assert_cmpuint(bitmap_offset, ==, (uint64_t)(hdr - file) + 28);
        g_assert_cmpuint(pages_offset % MiB, ==, 0);
        outside += pages_offset + blocks[i].size - bitmap_offset;
    }
    return outside;
}

static void check_figures(const Case *c, const MigrationInfo *info, const char *path,
                          uint64_t data_pages, uint64_t zero_pages, const Live *live)
{
    uint64_t total = 0;
    for (size_t i = 0; i < G_N_ELEMENTS(blocks); i++) {
        total += blocks[i].size;
    }
    g_assert_cmpuint(info->total, ==, total);
    g_assert_cmpuint(info->remaining, ==, 0);
    g_assert_cmpuint(info->dirty_sync_count, >=, 2);
    if (live) {
        /* the first pass sent every page, the last one the pages changed since */
        g_assert_cmpuint(info->normal + info->duplicate, ==,
                         total / FAKE_PAGE_SIZE + live->resent);
    } else if (c->no_zero_detection) {
        g_assert_cmpuint(info->normal, ==, data_pages + zero_pages);
        g_assert_cmpuint(info->duplicate, ==, 0);
    } else {
        g_assert_cmpuint(info->normal, ==, data_pages);
        g_assert_cmpuint(info->duplicate, ==, zero_pages);
    }
    g_assert_cmpuint(info->normal_bytes, ==, info->normal * FAKE_PAGE_SIZE);
    g_assert_cmpuint(info->precopy_bytes + info->downtime_bytes, ==, info->transferred);
    g_assert_cmpuint(info->downtime_bytes, >, 0);

    g_autofree uint8_t *file = NULL;
    size_t len;
    g_autoptr(GError) err = NULL;
    g_assert_true(g_file_get_contents(path, (char **)&file, &len, &err));
    uint64_t start = c->offset ? g_ascii_strtoull(c->offset, NULL, 0) : 0;
    bool mapped_ram = c->caps[0] && !strcmp(c->caps[0], "mapped-ram");
    if (!mapped_ram) {
        /* the whole file from the offset is the stream, page data included */
        g_assert_cmpuint(info->transferred, ==, len - start);
        g_assert_cmpuint(info->multifd_bytes, ==, 0);
        return;
    }
    /* the stream's bytes, and the page data written to the slots beside it */
    uint64_t stream = len - start - mapped_ram_outside_stream(file, len);
    g_assert_cmpuint(info->transferred, ==, stream + info->normal * FAKE_PAGE_SIZE);
    bool multifd = c->caps[1] && !strcmp(c->caps[1], "multifd");
    g_assert_cmpuint(info->multifd_bytes, ==, multifd ? info->normal * FAKE_PAGE_SIZE : 0);
}

static void test_round_trip(gconstpointer data)
{
    const Case *c = data;
    g_autofree char *dir = fake_test_mkdtemp("ram");
    g_autofree char *path = g_build_filename(dir, "vm.img", NULL);
    g_autofree char *uri = g_strdup_printf("file:%s%s%s", path, c->offset ? ",offset=" : "",
                                           c->offset ? c->offset : "");
    g_autoptr(GError) err = NULL;
    uint64_t data_pages = 0, zero_pages = 0;
    MigrationInfo info;
    Live live = { 0 };
    Side src, dst;

    if (c->direct_io && !fake_test_have_o_direct(dir)) {
        g_test_skip("the file system refuses O_DIRECT");
        fake_test_rmtree(dir);
        return;
    }
    if (c->offset) {
        /* the bytes before the offset are the caller's and stay */
        g_assert_true(g_file_set_contents(path, "caller's bytes", -1, &err));
    }

    side_init(&src, c->live ? RUN_STATE_RUNNING : RUN_STATE_PAUSED, c);
    fake_device_init(&src.dev, 3);
    for (size_t i = 0; i < G_N_ELEMENTS(blocks); i++) {
        data_pages += fake_block_fill(block(&src, i), 10 + i, blocks[i].zero_every,
                                      blocks[i].run);
        zero_pages += fake_block_zero_pages(block(&src, i));
    }
    g_assert_cmpuint(data_pages + zero_pages, ==, (6 * MiB + 512 * 1024) / FAKE_PAGE_SIZE);
    g_assert_cmpuint(zero_pages, ==, 512 + 32 + 64);
    src.h->on_sync = live_on_sync;        /* a paused source gets no writes */
    src.h->on_sync_opaque = &live;
    g_assert_true(migration_start(src.m, uri, &err));
    g_assert_no_error(err);
    fake_host_wait_end(src.h, src.m, &info);
    g_assert_cmpstr(info.status, ==, "completed");
    g_assert_cmpint(fake_host_runstate(src.h), ==, RUN_STATE_POSTMIGRATE);
    check_figures(c, &info, path, data_pages, zero_pages, c->live ? &live : NULL);
    migration_info_clear(&info);
    if (c->live) {
        g_assert_cmpuint(live.writes, >=, 2);
    }
    if (c->caps[0] && !c->direct_io) {
        /* workers: at least x-page-io-threads (or 1), a whole number per channel */
        unsigned channels = c->channels ? c->channels : 1;
        unsigned least = c->page_io_threads ? c->page_io_threads : 1;
        g_assert_cmpuint(live.page_threads, ==, channels * ((least + channels - 1) / channels));
    }
    if (c->offset) {
        g_autofree char *head = NULL;
        g_assert_true(g_file_get_contents(path, &head, NULL, &err));
        g_assert_cmpmem(head, 14, "caller's bytes", 14);
    }

    /* the destination's memory starts written everywhere, its log dirty */
    side_init(&dst, RUN_STATE_PRELAUNCH, c);
    for (size_t i = 0; i < G_N_ELEMENTS(blocks); i++) {
        g_assert_cmpuint(fake_block_fill(block(&dst, i), 99, 0, 1), ==, block(&dst, i)->npages);
    }
    g_assert_true(migration_incoming_cmdline(dst.m, "defer", &err));
    g_assert_true(migration_start_incoming(dst.m, uri, true, &err));
    g_assert_no_error(err);
    fake_host_wait_end(dst.h, dst.m, &info);
    g_assert_cmpstr(info.status, ==, "completed");
    g_assert_null(info.error_desc);
    migration_info_clear(&info);

    for (size_t i = 0; i < G_N_ELEMENTS(blocks); i++) {
        FakeBlock *s = block(&src, i), *d = block(&dst, i);
        g_assert_cmpmem(d->host, d->size, s->host, s->size);
    }
    /* the source's zero pages, and only those, are zero on the destination */
    g_assert_cmpuint(fake_block_zero_pages(block(&dst, 2)), ==, block(&dst, 2)->npages);
    g_assert_cmpuint(dst.dev.counter, ==, src.dev.counter);
    g_assert_cmpint(dst.dev.post_loads, ==, 1);
    g_assert_cmpint(fake_host_runstate(dst.h), ==,
                    c->live ? RUN_STATE_RUNNING : RUN_STATE_PAUSED);
    side_cleanup(&dst);
    side_cleanup(&src);
    fake_test_rmtree(dir);
}

/* A destination whose blocks differ from the file's: QEMU's texts, nothing resumed. */
static void test_layout_mismatch(void)
{
    static const Case c = { "mapped-ram", { "mapped-ram" } };
    g_autofree char *dir = fake_test_mkdtemp("ram");
    g_autofree char *uri = g_strdup_printf("file:%s/vm.img", dir);
    g_autoptr(GError) err = NULL;
    MigrationInfo info;
    Side src, dst;

    side_init(&src, RUN_STATE_PAUSED, &c);
    fake_block_fill(block(&src, 0), 1, 3, 16);
    g_assert_true(migration_start(src.m, uri, &err));
    fake_host_wait_end(src.h, src.m, &info);
    g_assert_cmpstr(info.status, ==, "completed");
    migration_info_clear(&info);

    /* the destination's pc.ram is 4 KiB shorter */
    dst.h = fake_host_new(RUN_STATE_PRELAUNCH);
    fake_host_add_block(dst.h, "pc.ram", 6 * MiB - FAKE_PAGE_SIZE);
    dst.m = fake_host_migration_new(dst.h);
    g_assert_true(migration_set_capability(dst.m, "mapped-ram", true, &err));
    g_assert_true(migration_incoming_cmdline(dst.m, "defer", &err));
    g_assert_true(migration_start_incoming(dst.m, uri, false, &err));
    fake_host_wait_end(dst.h, dst.m, &info);
    g_assert_cmpstr(info.status, ==, "failed");
    g_assert_cmpstr(info.error_desc, ==,
                    "START section 'ram' (id 0) at offset 71: "
                    "Length mismatch: pc.ram: 0x600000 in != 0x5ff000: Invalid argument");
    migration_info_clear(&info);
    g_assert_cmpint(fake_host_runstate(dst.h), ==, RUN_STATE_INMIGRATE);
    side_cleanup(&dst);
    side_cleanup(&src);
    fake_test_rmtree(dir);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *path = g_strdup_printf("/migration/ram/%s", cases[i].name);
        g_test_add_data_func(path, &cases[i], test_round_trip);
    }
    g_test_add_func("/migration/ram/load/layout-mismatch", test_layout_mismatch);
    return g_test_run();
}
