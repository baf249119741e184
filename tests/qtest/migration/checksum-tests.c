/*
 * The checksum table of mapped-ram files (docs/file-format.md §2.5):
 * written by default, checked by every load, by `mapram load` and by
 * `mapram verify --data`; a flipped bit in page data fails the load with
 * the block and offset and the guest never runs; files without the table
 * (x-checksums off, or QEMU's) still load; a live save whose pages are
 * rewritten in later passes verifies; under an on-demand load a bad run,
 * found by the background or at a guest's fault, pauses the guest in
 * postcopy-paused and is never placed.  The expected checksums are
 * recomputed here from the file with libxxhash, not by the codec.
 */
#include "framework.h"
#include "tests.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xxhash.h>

#define RAM_START "START section 'ram' (id 0) at offset 71: "
#define TRAILER 24
#define RUN_PAGES 64
#define ZERO_PAGE_HASH 0x93d76fe148c689baULL

static uint64_t be64_at(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v = v << 8 | p[i];
    }
    return v;
}

/* The table's offset from the trailer at the end of the file; 0 = none. */
static uint64_t table_offset(const uint8_t *file, size_t len)
{
    if (len < TRAILER || memcmp(file + len - 8, "MRAMCEND", 8) != 0) {
        return 0;
    }
    uint64_t off = be64_at(file + len - TRAILER);
    g_assert_cmpmem(file + off, 8, "MRAMCSUM", 8);
    g_assert_cmpuint(be64_at(file + off + 16), ==, len - off);
    return off;
}

/* The stored checksum of run @run of the first block (mig.mem). */
static uint64_t stored_sum(const uint8_t *file, size_t len, uint64_t run)
{
    uint64_t t = table_offset(file, len);
    const uint8_t *b = file + t + 32;

    g_assert_cmpuint(t, >, 0);
    g_assert_cmpmem(b, 8, "\x07mig.mem", 8);
    g_assert_cmpuint(run, <, be64_at(b + 8 + 16));
    return be64_at(b + 8 + 24 + run * 8);
}

/* Run @run of @blk recomputed from the file's bitmap and slots. */
static uint64_t file_sum(const uint8_t *file, const MRBlock *blk, uint64_t run)
{
    uint8_t le[RUN_PAGES * 8];
    for (uint64_t i = 0; i < RUN_PAGES; i++) {
        uint64_t p = run * RUN_PAGES + i;
        bool set = mr_page_set(file, blk, p);
        uint64_t h = set ? XXH3_64bits(file + blk->pages_offset + p * MIG_PAGE_SIZE,
                                       MIG_PAGE_SIZE)
                         : ZERO_PAGE_HASH;
        for (int k = 0; k < 8; k++) {
            le[i * 8 + k] = h >> (8 * k);
        }
    }
    return XXH3_64bits(le, sizeof(le));
}

static void load_must_fail(const char *path, const char *want)
{
    g_autofree char *dst = g_strdup_printf(
        "-m 150M -machine memory-backend=mig.mem "
        "-object memory-backend-ram,id=mig.mem,size=150M,share=off "
        "-guest ab -serial file:%s/dest_serial -incoming defer", mig_tmpdir);
    g_autofree char *uri = g_strdup_printf("file:%s", path);
    QTestState *to = qtest_init_bin(qtest_vm_binary(), "%s", dst);

    migrate_set_capability(to, "events", true);
    migrate_set_capability(to, "mapped-ram", true);
    migrate_incoming_qmp(to, uri, NULL, "'exit-on-error': false");
    g_autofree char *desc = wait_for_migration_fail(to);
    g_assert_cmpstr(desc, ==, want);
    assert_dest_not_resumed(to);
    /* nothing started it since: a second look still finds it stopped */
    g_autofree char *st = query_runstate(to);
    g_assert_cmpstr(st, ==, "inmigrate");
    qtest_quit(to);
}

static char *saved_mapped_ram(void)
{
    static const char *const caps[] = { "mapped-ram", NULL };

    return mig_make_saved_file(MIG_FILE_NAME, caps, false);
}

/* Flip one bit of set page p, in the file and in its copy. */
static void flip_page(const char *path, uint8_t *file, const MRBlock *b, uint64_t p)
{
    uint64_t slot = b->pages_offset + p * MIG_PAGE_SIZE;

    g_assert_true(mr_page_set(file, b, p));
    file[slot + 100] ^= 0x20;
    patch_file(path, slot + 100, file + slot + 100, 1);
}

/* A destination that reads whatever comes and never answers, until EOF. */
static gpointer silent_sink(gpointer lfd_p)
{
    int fd = accept(GPOINTER_TO_INT(lfd_p), NULL, NULL);
    char buf[65536];

    g_assert_cmpint(fd, >=, 0);
    while (read(fd, buf, sizeof(buf)) > 0) {
    }
    close(fd);
    return NULL;
}

/* One bit of the ab guest's first page at 1 MiB: run 4 of mig.mem. */
static void test_flipped_bit(void)
{
    g_autofree char *path = saved_mapped_ram();
    g_autoptr(GArray) blocks = mr_file_blocks(path, 0);
    MRBlock b = g_array_index(blocks, MRBlock, 0);
    uint64_t slot = b.pages_offset + (1 << 20);
    size_t len;

    g_assert_cmpstr(b.idstr, ==, "mig.mem");
    g_autofree uint8_t *file = read_whole_file(path, &len);
    uint64_t want_sum = stored_sum(file, len, 4);
    g_assert_cmphex(file_sum(file, &b, 4), ==, want_sum);     /* as saved: right */
    flip_page(path, file, &b, 256);
    uint64_t got_sum = file_sum(file, &b, 4);
    g_assert_cmphex(got_sum, !=, want_sum);

    g_autofree char *mismatch = g_strdup_printf(
        "Checksum mismatch in ramblock mig.mem at offset 0x100000 (64 pages at file offset "
        "0x%" PRIx64 "): expected 0x%016" PRIx64 ", got 0x%016" PRIx64, slot, want_sum,
        got_sum);
    g_autofree char *want = g_strconcat(RAM_START, mismatch, NULL);
    load_must_fail(path, want);

    /* verify --data names it; verify alone only reads the structure */
    g_autofree char *out = NULL, *err = NULL;
    g_assert_cmpint(mig_run_tool(&out, &err, "verify", "--data", path, NULL), ==, 1);
    g_autofree char *verr = g_strdup_printf("mapram verify: %s: %s\n", path, mismatch);
    g_assert_cmpstr(err, ==, verr);
    g_clear_pointer(&out, g_free);
    g_clear_pointer(&err, g_free);
    g_assert_cmpint(mig_run_tool(&out, &err, "verify", path, NULL), ==, 0);
    g_assert_true(g_str_has_suffix(out, ", checksum table)\n"));

    /* mapram load (exec: for any QEMU) stops before it sends the bad run */
    g_clear_pointer(&out, g_free);
    g_clear_pointer(&err, g_free);
    g_assert_cmpint(mig_run_tool(&out, &err, "load", "--quiet", path, NULL), ==, 1);
    g_autofree char *lerr = g_strdup_printf("mapram load: %s: %s\n", path, want);
    g_assert_cmpstr(err, ==, lerr);

    /* with checks off, the same file loads (bit flip and all) */
    g_clear_pointer(&out, g_free);
    g_clear_pointer(&err, g_free);
    g_assert_cmpint(mig_run_tool(&out, &err, "load", "--quiet", "--no-checksums", path, NULL),
                    ==, 0);

    /*
     * mapram serve to a postcopy destination, which waits for pages and
     * says nothing: serve fails naming the run and closes the connection
     * (serve waited for good for the destination to speak first).
     */
    {
        g_autofree char *sock = mig_path("serve.sock");
        g_autofree char *uri = g_strdup_printf("unix:%s", sock);
        int lfd = mig_listen_unix(sock);
        GThread *t = g_thread_new("sink", silent_sink, GINT_TO_POINTER(lfd));
        g_clear_pointer(&out, g_free);
        g_clear_pointer(&err, g_free);
        g_assert_cmpint(mig_run_tool(&out, &err, "serve", "--quiet", path, uri, NULL), ==, 1);
        g_autofree char *serr = g_strdup_printf("mapram serve: %s\n", mismatch);
        g_assert_cmpstr(err, ==, serr);
        g_thread_join(t);
        close(lfd);
    }
}

/*
 * A table whose trailer is not at the file's end (bytes appended, as a
 * copy padded to a block size leaves, or the file cut short inside the
 * table or its trailer damaged) was taken for no table: the pages loaded
 * unchecked, a flipped bit and all.  Every loader now refuses it, and
 * mapram load before it sends the EOF that lets a destination run.
 */
static void hidden_table_must_fail(const char *path, const uint8_t *file, size_t len,
                                   const char *want)
{
    g_autofree char *out = NULL, *err = NULL;
    g_autofree char *lerr = g_strdup_printf(": %s\n", want);
    g_autofree char *load_prefix = g_strdup_printf("mapram load: %s: Record at offset ", path);
    g_autofree char *serve_prefix = g_strdup_printf("mapram serve: %s: Record at offset ", path);

    g_assert_true(g_file_set_contents(path, (const char *)file, len, NULL));
    load_must_fail(path, want);
    /* the walker names the EOF record it stopped at */
    g_assert_cmpint(mig_run_tool(&out, &err, "load", "--quiet", path, NULL), ==, 1);
    g_assert_true(g_str_has_prefix(err, load_prefix));
    g_assert_true(g_str_has_suffix(err, lerr));
    /* mapram serve reads the file before it connects: no destination needed */
    g_clear_pointer(&out, g_free);
    g_clear_pointer(&err, g_free);
    g_autofree char *uri = g_strdup_printf("unix:%s/nobody.sock", mig_tmpdir);
    g_assert_cmpint(mig_run_tool(&out, &err, "serve", "--quiet", path, uri, NULL), ==, 1);
    g_assert_true(g_str_has_prefix(err, serve_prefix));
    g_assert_true(g_str_has_suffix(err, lerr));
    g_clear_pointer(&out, g_free);
    g_clear_pointer(&err, g_free);
    /* with checks off the loader does not look */
    g_assert_cmpint(mig_run_tool(&out, &err, "load", "--quiet", "--no-checksums", path, NULL),
                    ==, 0);
}

static void test_hidden_table(void)
{
    g_autofree char *path = saved_mapped_ram();
    g_autoptr(GArray) blocks = mr_file_blocks(path, 0);
    MRBlock b = g_array_index(blocks, MRBlock, 0);
    size_t len;
    g_autofree uint8_t *file = read_whole_file(path, &len);
    uint64_t at = table_offset(file, len);
    uint64_t tlen = len - at;
    size_t padded = (len / 4096 + 1) * 4096;
    g_autofree uint8_t *copy = g_malloc0(padded);
    g_autofree char *want = NULL;

    g_assert_cmpuint(at, >, 0);
    /* a flipped bit that the table would catch */
    flip_page(path, file, &b, 256);

    memcpy(copy, file, len);
    want = g_strdup_printf("checksum table at offset 0x%" PRIx64 ": length %" PRIu64
                           ", but %" PRIu64 " bytes follow the vmdesc", at, tlen,
                           (uint64_t)padded - at);
    hidden_table_must_fail(path, copy, padded, want);

    g_free(want);
    want = g_strdup_printf("checksum table at offset 0x%" PRIx64 ": length %" PRIu64
                           ", but %" PRIu64 " bytes follow the vmdesc", at, tlen, tlen - 1);
    hidden_table_must_fail(path, file, len - 1, want);

    /*
     * Cut within the table's magic, or after its header but before a
     * trailer could fit: the loaders took fewer than 8 bytes for no table
     * (verify did not), and 8 to 55 were "no table magic"
     */
    static const uint64_t cuts[] = { 7, 32 };
    for (unsigned i = 0; i < G_N_ELEMENTS(cuts); i++) {
        g_free(want);
        want = g_strdup_printf("checksum table at offset 0x%" PRIx64 ": the file was cut "
                               "short inside it (%" PRIu64 " bytes follow the vmdesc)", at,
                               cuts[i]);
        hidden_table_must_fail(path, file, at + cuts[i], want);
        g_autofree char *out = NULL, *err = NULL;
        g_assert_cmpint(mig_run_tool(&out, &err, "verify", path, NULL), ==, 1);
        g_autofree char *vwant = g_strdup_printf("mapram verify: %s: %s\n", path, want);
        g_assert_cmpstr(err, ==, vwant);
    }

    g_free(want);
    want = g_strdup_printf("checksum table at offset 0x%" PRIx64 ": the file does not end "
                           "with its trailer (%" PRIu64 " bytes follow the vmdesc): the file "
                           "was cut short or has bytes appended", at, tlen);
    copy[len - 1] ^= 1;                           /* "MRAMCEND" no longer */
    hidden_table_must_fail(path, copy, len, want);
}

/*
 * On demand (postcopy-ram): a run whose checksum does not match pauses
 * the guest in postcopy-paused, naming the page being loaded, the run
 * and both sums; the load never completes and nothing places the run.
 */
typedef enum { OD_BACKGROUND, OD_FAULT, OD_FAULT_RUNS } OdCase;

#define OD_PREFIX "On-demand load of RAM block 'mig.mem' at offset 0x"

static void ondemand_mismatch(OdCase oc)
{
    static const char *const faults[] = {
        [OD_BACKGROUND] = NULL,
        [OD_FAULT] = "MAPRAM_FAULT=postcopy-background-slow",
        [OD_FAULT_RUNS] = "MAPRAM_FAULT=postcopy-background-slow,postcopy-fault-runs",
    };
    static const char *const ungoals[] = { "completed", "failed", NULL };
    /* saved while the guest ran, so that it runs on at the destination */
    g_autofree char *uri = mig_make_live_saved_uri(MIG_FILE_NAME, false);
    g_autofree char *path = mig_path(MIG_FILE_NAME);
    g_autoptr(GArray) blocks = mr_file_blocks(path, 0);
    MRBlock b = g_array_index(blocks, MRBlock, 0);
    size_t len;
    g_autofree uint8_t *file = read_whole_file(path, &len);
    uint64_t w0, w1;

    g_assert_cmpstr(b.idstr, ==, "mig.mem");
    /*
     * The ab guest writes one byte a page over [1 MiB, 100 MiB) in order,
     * so a page is data unless its byte wrapped to zero (every 256 passes,
     * the pages on one side of its cursor).
     *
     * Background: the first window with data, a bit flipped in its first
     * set page.  Faults: once running, the guest faults its way through
     * every window long before the slowed background (50 ms a window)
     * reaches window 40, [80 MiB, 82 MiB), or one after it (or window 16
     * or later, if those are all zero); a bit is flipped in a set page of
     * each run there, so the guest's first fault in the window meets one
     * wherever it enters.  Nothing else would find them: the background
     * passes the runs the fault thread placed.
     */
    static const unsigned od_windows[] = { 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 16, 17, 18,
                                           19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31,
                                           32, 33, 34, 35, 36, 37, 38, 39 };
    uint64_t first = 0, flipped = 0;
    for (size_t i = 0; i < (oc == OD_BACKGROUND ? 50 : G_N_ELEMENTS(od_windows)); i++) {
        w0 = (oc == OD_BACKGROUND ? i : od_windows[i]) * 512;
        w1 = w0 + 512;
        for (uint64_t r0 = w0; r0 < w1 && !(oc == OD_BACKGROUND && flipped); r0 += RUN_PAGES) {
            for (uint64_t p = r0; p < r0 + RUN_PAGES; p++) {
                if (mr_page_set(file, &b, p)) {
                    first = flipped++ ? first : p;
                    flip_page(path, file, &b, p);
                    break;
                }
            }
        }
        if (flipped) {
            break;
        }
    }
    if (!flipped) {
        g_test_skip("the live save's pages from 32 MiB to 100 MiB are all zero");
        return;
    }

    const char *env[] = { faults[oc], NULL };
    QTestState *to = qtest_init_bin_env(
        qtest_vm_binary(), env,
        "-m 150M -machine memory-backend=mig.mem "
        "-object memory-backend-ram,id=mig.mem,size=150M,share=off "
        "-guest ab -serial file:%s/dest_serial -incoming defer %s", mig_tmpdir,
        oc == OD_BACKGROUND ? "-S" : "");
    migrate_set_capability(to, "events", true);
    migrate_set_capability(to, "mapped-ram", true);
    migrate_set_capability(to, "postcopy-ram", true);
    migrate_incoming_qmp(to, uri, NULL, NULL);
    if (oc != OD_BACKGROUND) {
        qtest_qmp_eventwait(to, "RESUME");
    }
    wait_for_migration_status(to, "postcopy-paused", ungoals);

    g_autoptr(JsonObject) rsp = migrate_query(to);
    const char *desc = qtest_json_get_str(rsp, "error-desc");
    unsigned long long at = 0, run_off = 0;
    g_assert_nonnull(desc);
    if (sscanf(desc, OD_PREFIX "%llx: Checksum mismatch in ramblock mig.mem at offset 0x%llx ",
               &at, &run_off) != 2) {
        g_error("unexpected error-desc: %s", desc);
    }
    uint64_t run = run_off / MIG_PAGE_SIZE / RUN_PAGES;
    g_assert_cmphex(run_off % (RUN_PAGES * MIG_PAGE_SIZE), ==, 0);
    g_assert_cmpuint(run * RUN_PAGES, >=, w0);
    g_assert_cmpuint(run * RUN_PAGES, <, w1);
    /*
     * The page named: the background's is the first set page of its
     * window, the fault thread's the faulting page (in the run it read,
     * when it reads runs).
     */
    if (oc == OD_BACKGROUND) {
        g_assert_cmphex(at, ==, first * MIG_PAGE_SIZE);
    } else if (oc == OD_FAULT_RUNS) {
        g_assert_cmphex(at / MIG_PAGE_SIZE / RUN_PAGES, ==, run);
    } else {
        g_assert_cmphex(at / MIG_PAGE_SIZE / 512, ==, w0 / 512);
    }
    g_autofree char *want = g_strdup_printf(
        OD_PREFIX "%llx: Checksum mismatch in ramblock mig.mem at offset 0x%llx (64 pages at "
        "file offset 0x%" PRIx64 "): expected 0x%016" PRIx64 ", got 0x%016" PRIx64,
        at, run_off, b.pages_offset + (uint64_t)run_off, stored_sum(file, len, run),
        file_sum(file, &b, run));
    g_assert_cmpstr(desc, ==, want);
    g_autofree char *st = query_runstate(to);
    g_assert_cmpstr(st, ==, "paused");
    /* it stays there: nothing completes the load behind the error */
    g_usleep(200 * 1000);
    g_autoptr(JsonObject) again = migrate_query(to);
    g_assert_cmpstr(qtest_json_get_str(again, "status"), ==, "postcopy-paused");
    qtest_quit(to);
}

static void test_ondemand_background(void)
{
    ondemand_mismatch(OD_BACKGROUND);
}

static void test_ondemand_fault(void)
{
    ondemand_mismatch(OD_FAULT);
}

static void test_ondemand_fault_runs(void)
{
    ondemand_mismatch(OD_FAULT_RUNS);
}

/* A good file: verify --data reads every page; info shows the table. */
static void test_verify_data(void)
{
    g_autofree char *path = saved_mapped_ram();
    g_autoptr(GArray) blocks = mr_file_blocks(path, 0);
    g_autofree char *out = NULL, *err = NULL;
    size_t len;
    g_autofree uint8_t *file = read_whole_file(path, &len);
    uint64_t t = table_offset(file, len);
    MRBlock b = g_array_index(blocks, MRBlock, 0);

    g_assert_cmpuint(t, >, 0);
    for (uint64_t run = 0; run < b.used_length / MIG_PAGE_SIZE / RUN_PAGES; run += 97) {
        g_assert_cmphex(file_sum(file, &b, run), ==, stored_sum(file, len, run));
    }
    g_assert_cmpint(mig_run_tool(&out, &err, "verify", "--data", path, NULL), ==, 0);
    g_autofree char *prefix = g_strdup_printf("%s: OK (mapped-ram, %u RAM blocks, ", path,
                                              blocks->len);
    g_assert_true(g_str_has_prefix(out, prefix));
    g_assert_true(g_str_has_suffix(out, " sections, every page matches the checksum table)\n"));
    g_assert_cmpstr(err, ==, "");

    g_clear_pointer(&out, g_free);
    g_clear_pointer(&err, g_free);
    g_assert_cmpint(mig_run_tool(&out, &err, "info", "--json", path, NULL), ==, 0);
    g_autoptr(JsonParser) p = json_parser_new();
    g_assert_true(json_parser_load_from_data(p, out, -1, NULL));
    JsonObject *cs = json_object_get_object_member(
        json_node_get_object(json_parser_get_root(p)), "checksums");
    g_assert_nonnull(cs);
    g_assert_cmpstr(json_object_get_string_member(cs, "algorithm"), ==, "xxh3-64");
    g_assert_cmpint(json_object_get_int_member(cs, "run-pages"), ==, RUN_PAGES);
    g_assert_cmpint(json_object_get_int_member(cs, "offset"), ==, t);
    g_assert_cmpint(json_object_get_int_member(cs, "length"), ==, len - t);
}

/* x-checksums off: the file ends at the vmdesc, and loads as QEMU's do. */
static void checksums_off(QTestState *from, QTestState *to, MigrateCommon *args)
{
    migrate_set_parameter_bool(from, "x-checksums", false);
}

static void check_no_table(QTestState *from, QTestState *to, MigrateCommon *args)
{
    g_autofree char *path = mig_path(MIG_FILE_NAME);
    g_autofree char *out = NULL, *err = NULL;
    size_t len;
    g_autofree uint8_t *file = read_whole_file(path, &len);

    g_assert_cmpuint(table_offset(file, len), ==, 0);
    g_assert_null(memmem(file + len - 4096, 4096, "MRAMCSUM", 8));
    g_assert_cmpint(mig_run_tool(&out, &err, "verify", "--data", path, NULL), ==, 0);
    g_assert_true(g_str_has_suffix(out, " sections, no checksum table)\n"));
    g_clear_pointer(&out, g_free);
    g_clear_pointer(&err, g_free);
    g_assert_cmpint(mig_run_tool(&out, &err, "info", path, NULL), ==, 0);
    g_assert_true(g_str_has_suffix(out, "\nchecksums: none\n"));
}

static void test_checksums_off(void)
{
    g_autofree char *uri = mig_file_uri(MIG_FILE_NAME, NULL);
    MigrateCommon args = {
        .connect_uri = uri,
        .caps = { "mapped-ram" },
        .start_hook = checksums_off,
        .end_hook = check_no_table,
    };

    test_file_common(&args, true);
}

/* The source rewrote pages in later passes: the table is the last pass's. */
static void check_live_table(QTestState *from, QTestState *to, MigrateCommon *args)
{
    g_autofree char *path = mig_path(MIG_FILE_NAME);
    g_autofree char *out = NULL, *err = NULL;
    g_autoptr(JsonObject) info = migrate_query(from);
    gint64 passes = qtest_json_get_int(qtest_json_get_obj(info, "ram"), "dirty-sync-count", 0);

    g_test_message("live save: %" G_GINT64_FORMAT " passes", passes);
    g_assert_cmpint(passes, >=, 3);     /* setup, a pass that rewrote pages, the last */
    g_assert_cmpint(mig_run_tool(&out, &err, "verify", "--data", path, NULL), ==, 0);
    g_assert_true(g_str_has_suffix(out, " sections, every page matches the checksum table)\n"));
}

static void test_checksums_live(void)
{
    g_autofree char *uri = mig_file_uri(MIG_FILE_NAME, NULL);
    MigrateCommon args = {
        .connect_uri = uri,
        .caps = { "mapped-ram", "multifd" },
        .multifd_channels = 4,
        .direct_io = probe_o_direct_support(mig_tmpdir),
        .end_hook = check_live_table,
    };

    test_file_common(&args, false);
}

void migration_test_add_checksums(void)
{
    migration_test_add("/migration/mapped-ram/checksums/flipped-bit", test_flipped_bit,
                       MIG_SMOKE);
    migration_test_add("/migration/mapped-ram/checksums/hidden-table", test_hidden_table,
                       MIG_SMOKE);
    migration_test_add("/migration/mapped-ram/checksums/verify-data", test_verify_data,
                       MIG_SMOKE);
    migration_test_add("/migration/mapped-ram/checksums/off", test_checksums_off, MIG_FULL);
    migration_test_add("/migration/mapped-ram/checksums/live", test_checksums_live, MIG_FULL);
    migration_test_add("/migration/ondemand/checksums/background", test_ondemand_background,
                       MIG_SMOKE);
    migration_test_add("/migration/ondemand/checksums/fault", test_ondemand_fault, MIG_FULL);
    migration_test_add("/migration/ondemand/checksums/fault-runs", test_ondemand_fault_runs,
                       MIG_FULL);
}
