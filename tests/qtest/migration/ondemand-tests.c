/*
 * On-demand restore (migrate-incoming file: with mapped-ram and
 * postcopy-ram): the guest resumes before its pages are read, touched
 * pages are right while the rest still arrive, a migrate is refused
 * until the last page is in, a read error pauses the guest in
 * postcopy-paused, and every rule row of the mode gives its message.
 */
#include "framework.h"
#include "tests.h"

#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <linux/magic.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util/uffd-move.h"

#define PAGES_MISSING \
    "Guest RAM is still being loaded on demand from the incoming migration; " \
    "migrate again once it has completed"
#define NEEDS_MAPPED_RAM \
    "Postcopy on the destination requires mapped-ram: mapram loads on demand only from " \
    "a mapped-ram file"
#define FAULT_PREFIX "On-demand load of RAM block 'mig.mem' at offset 0x"

typedef struct OnDemand {
    bool multifd;              /* saved with 4 channels, loaded with 4 */
    bool direct_io;
    bool paused;               /* destination started with -S */
    const char *fault;         /* MAPRAM_FAULT of the destination, or NULL */
    bool uffd_copy;            /* MAPRAM_UFFD_MOVE=0: the background copies, never moves */
    bool huge_pages;           /* -S: after the load, guest RAM is in transparent huge pages */
} OnDemand;

static QTestState *start_dest(const OnDemand *od, const char *extra)
{
    g_autofree char *env_fault = od->fault ? g_strdup_printf("MAPRAM_FAULT=%s", od->fault)
                                           : NULL;
    const char *env[] = { od->uffd_copy ? "MAPRAM_UFFD_MOVE=0" : env_fault, env_fault, NULL };
    QTestState *to = qtest_init_bin_env(
        qtest_vm_binary(), env,
        "-m 150M -machine memory-backend=mig.mem "
        "-object memory-backend-ram,id=mig.mem,size=150M,share=off "
        "-guest ab -serial file:%s/dest_serial -incoming defer %s %s", mig_tmpdir,
        od->paused ? "-S" : "", extra ? extra : "");

    migrate_set_capability(to, "events", true);
    migrate_set_capability(to, "mapped-ram", true);
    migrate_set_capability(to, "postcopy-ram", true);
    if (od->multifd) {
        migrate_set_capability(to, "multifd", true);
        migrate_set_parameter_int(to, "multifd-channels", 4);
    }
    if (od->direct_io) {
        migrate_set_parameter_bool(to, "direct-io", true);
    }
    return to;
}

static JsonObject *query_ram(QTestState *to, char **status)
{
    JsonObject *rsp = migrate_query(to);
    JsonObject *ram = qtest_json_get_obj(rsp, "ram");

    *status = g_strdup(qtest_json_get_str(rsp, "status"));
    g_assert_nonnull(ram);
    json_object_ref(ram);
    json_object_unref(rsp);
    return ram;
}

/* The MIGRATION events of an on-demand load, in QEMU's order. */
/* An event's timestamp, in microseconds. */
static int64_t event_us(JsonObject *ev)
{
    JsonObject *ts = qtest_json_get_obj(ev, "timestamp");

    return qtest_json_get_int(ts, "seconds", -1) * G_USEC_PER_SEC +
           qtest_json_get_int(ts, "microseconds", -1);
}

/*
 * MIGRATION's statuses, and (@resume: its RESUME) postcopy-active sent
 * before the guest resumes, as QEMU sets it at LISTEN, before RUN.
 */
static void assert_events(QTestState *to, JsonObject *resume)
{
    static const char *const want[] = { "active", "postcopy-active", "completed" };

    for (size_t i = 0; i < G_N_ELEMENTS(want); i++) {
        JsonObject *ev = qtest_qmp_eventwait_ref(to, "MIGRATION");
        JsonObject *data = qtest_json_get_obj(ev, "data");

        g_assert_cmpstr(qtest_json_get_str(data, "status"), ==, want[i]);
        if (resume && !strcmp(want[i], "postcopy-active")) {
            g_assert_cmpint(event_us(ev), <=, event_us(resume));
        }
        json_object_unref(ev);
    }
}

/* The guest runs on, its memory keeps the ab invariant. */
static void check_running_guest(QTestState *to)
{
    uint8_t a = guest_memread_u8(to, mig_tmpdir, MIG_TEST_START), b;
    gint64 deadline = g_get_monotonic_time() + (gint64)qtest_timeout_s() * G_USEC_PER_SEC;

    do {
        g_usleep(10 * 1000);
        b = guest_memread_u8(to, mig_tmpdir, MIG_TEST_START);
        if (g_get_monotonic_time() > deadline) {
            qtest_fail(to, "destination guest does not run: byte at 1 MiB stays 0x%02x", a);
        }
    } while (a == b);
    qtest_qmp_assert_success(to, "{'execute': 'stop'}");
    check_guests_ram(to);
}

/* AnonHugePages of a process, KiB. */
static uint64_t anon_huge_kib(pid_t pid)
{
    g_autofree char *path = g_strdup_printf("/proc/%d/smaps_rollup", (int)pid);
    g_autofree char *text = NULL;
    g_autoptr(GError) err = NULL;
    unsigned long long kib = 0;

    g_assert_true(g_file_get_contents(path, &text, NULL, &err));
    const char *line = strstr(text, "AnonHugePages:");
    g_assert_nonnull(line);
    g_assert_cmpint(sscanf(line, "AnonHugePages: %llu kB", &kib), ==, 1);
    return kib;
}

/* NULL, or why this host cannot move pages into guest RAM as huge pages. */
static const char *no_huge_moves(void)
{
    g_autofree char *thp = NULL;
    struct uffdio_api api = { .api = UFFD_API, .features = UFFD_FEATURE_MOVE };
    int uffd;
    bool ok;

    if (!g_file_get_contents("/sys/kernel/mm/transparent_hugepage/enabled", &thp, NULL,
                             NULL) || strstr(thp, "[never]")) {
        return "transparent huge pages are off here";
    }
    uffd = syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);
    if (uffd < 0) {
        return "userfaultfd is not available here";
    }
    ok = ioctl(uffd, UFFDIO_API, &api) == 0;
    close(uffd);
    return ok ? NULL : "the kernel has no UFFDIO_MOVE (Linux 6.8)";
}

/* The data pages of every block of the file behind a file: URI (mapram info --json). */
static int64_t file_data_pages(const char *uri)
{
    g_autofree char *out = NULL, *err = NULL;
    g_autoptr(JsonParser) parser = json_parser_new();
    int64_t pages = 0;

    g_assert_cmpint(mig_run_tool(&out, &err, "info", "--json", uri + strlen("file:"), NULL),
                    ==, 0);
    g_assert_true(json_parser_load_from_data(parser, out, -1, NULL));
    JsonArray *blocks = json_object_get_array_member(
        json_node_get_object(json_parser_get_root(parser)), "blocks");
    for (guint i = 0; i < json_array_get_length(blocks); i++) {
        pages += json_object_get_int_member(json_array_get_object_element(blocks, i),
                                            "data-pages");
    }
    return pages;
}

/*
 * A completed on-demand restore holds nothing of the load: no fd on the
 * file (a deleted image frees its space), no userfaultfd, no page thread.
 */
static void assert_load_released(QTestState *to, const char *uri)
{
    g_autofree char *file = g_strndup(uri + strlen("file:"), strcspn(uri + 5, ","));
    g_autofree char *fds = g_strdup_printf("/proc/%d/fd", (int)qtest_pid(to));
    g_autofree char *tasks = g_strdup_printf("/proc/%d/task", (int)qtest_pid(to));
    g_autoptr(GDir) d = g_dir_open(fds, 0, NULL);
    const char *name;

    g_assert_nonnull(d);
    while ((name = g_dir_read_name(d))) {
        g_autofree char *link = g_build_filename(fds, name, NULL);
        g_autofree char *target = g_file_read_link(link, NULL);
        if (target) {
            g_assert_cmpstr(target, !=, file);
            g_assert_cmpstr(target, !=, "anon_inode:[userfaultfd]");
        }
    }
    g_autoptr(GDir) t = g_dir_open(tasks, 0, NULL);
    g_assert_nonnull(t);
    while ((name = g_dir_read_name(t))) {
        g_autofree char *comm_path = g_build_filename(tasks, name, "comm", NULL);
        g_autofree char *comm = NULL;
        if (g_file_get_contents(comm_path, &comm, NULL, NULL)) {
            g_assert_false(g_str_has_prefix(comm, "pageio"));
            g_assert_false(g_str_has_prefix(comm, "postcopy"));
        }
    }
}

static void test_on_demand(const OnDemand *od)
{
    g_autofree char *uri = mig_make_live_saved_uri(MIG_FILE_NAME, od->multifd);
    g_autofree char *status = NULL;
    QTestState *to = start_dest(od, NULL);

    migrate_incoming_qmp(to, uri, NULL, NULL);
    if (od->paused) {
        /* -S: the pages load behind a guest that stays paused until cont */
        wait_for_migration_complete(to);
        g_autofree char *st = query_runstate(to);
        g_assert_cmpstr(st, ==, "paused");
        assert_dest_not_resumed(to);
        if (od->huge_pages) {
            /*
             * The guest's data lies in [1 MiB, 100 MiB): its 2 MiB windows moved
             * in as huge pages (less 4 MiB for the ends and the small blocks).
             */
            int64_t data = file_data_pages(uri) * MIG_PAGE_SIZE;
            g_assert_cmpint(data, >, 8 << 20);
            g_assert_cmpint(anon_huge_kib(qtest_pid(to)) << 10, >=, data - (4 << 20));
        }
        qtest_qmp_assert_success(to, "{'execute': 'cont'}");
    }
    g_autoptr(JsonObject) resume = qtest_qmp_eventwait_ref(to, "RESUME");
    wait_for_migration_complete(to);
    assert_events(to, od->paused ? NULL : resume);

    JsonObject *ram = query_ram(to, &status);
    g_assert_cmpstr(status, ==, "completed");
    g_assert_cmpint(qtest_json_get_int(ram, "remaining", -1), ==, 0);
    g_assert_cmpint(qtest_json_get_int(ram, "total", -1), >=, 150 << 20);
    /*
     * Every data page of the file, as mapram info counts them (not a fixed
     * figure: the ab guest's byte wraps to zero every 256 passes, so how
     * many of its pages are zero at the save varies).
     */
    g_assert_cmpint(qtest_json_get_int(ram, "transferred", -1), ==,
                    file_data_pages(uri) * MIG_PAGE_SIZE);
    g_assert_cmpint(qtest_json_get_int(ram, "transferred", -1), >, 0);
    g_assert_cmpint(qtest_json_get_int(ram, "normal-bytes", -1), ==,
                    qtest_json_get_int(ram, "transferred", -1));
    g_assert_cmpint(qtest_json_get_int(ram, "postcopy-bytes", -1) +
                    qtest_json_get_int(ram, "precopy-bytes", -1), ==,
                    qtest_json_get_int(ram, "transferred", -1));
    json_object_unref(ram);
    assert_load_released(to, uri);
    check_running_guest(to);
    qtest_quit(to);
}

/*
 * A slow background and slow faults (fault points): right after RESUME
 * most pages are missing; a migrate is refused, and every page read
 * through the fault thread (the guest's and those it never touched) is
 * right while the rest still arrive.
 */
static void test_while_arriving(void)
{
    OnDemand od = { .fault = "postcopy-background-slow,postcopy-fault-slow" };
    g_autofree char *uri = mig_make_live_saved_uri(MIG_FILE_NAME, od.multifd);
    g_autofree char *out = mig_file_uri("out", NULL);
    g_autofree char *status = NULL;
    g_autofree char *desc = NULL;
    QTestState *to = start_dest(&od, NULL);

    migrate_incoming_qmp(to, uri, NULL, NULL);
    qtest_qmp_eventwait(to, "RESUME");
    qtest_qmp_assert_success(to, "{'execute': 'stop'}");

    JsonObject *ram = query_ram(to, &status);
    g_assert_cmpstr(status, ==, "postcopy-active");
    g_assert_cmpint(qtest_json_get_int(ram, "remaining", 0), >, 0);
    json_object_unref(ram);
    desc = migrate_qmp_expect_error(to, out, NULL);
    g_assert_cmpstr(desc, ==, PAGES_MISSING);
    g_assert_false(g_file_test(out + strlen("file:"), G_FILE_TEST_EXISTS));

    /* read through the fault thread: every page as the guest left it */
    check_guests_ram(to);
    g_free(status);
    ram = query_ram(to, &status);
    g_assert_cmpint(qtest_json_get_int(ram, "postcopy-requests", 0), >, 0);
    g_assert_cmpint(qtest_json_get_int(ram, "postcopy-bytes", 0), >, 0);
    json_object_unref(ram);

    qtest_qmp_assert_success(to, "{'execute': 'cont'}");
    wait_for_migration_complete(to);
    check_running_guest(to);
    /* complete, the caps still on: a save keeps QEMU's refusal of the pair */
    g_free(desc);
    desc = migrate_qmp_expect_error(to, out, NULL);
    g_assert_cmpstr(desc, ==, "Mapped-ram migration is incompatible with postcopy");
    qtest_quit(to);
}

/*
 * "...at offset 0xA: Unable to read from file at offset 0xB: TAIL", where
 * B is in the slot of a page of A's 2 MiB window (one read serves a
 * window at most; the block's page slots start at pages_offset); returns B.
 */
static uint64_t assert_fault_msg(const char *desc, const char *tail, uint64_t pages_offset)
{
    unsigned long long in_block, in_file;
    int n = 0;

    /* tail NULL: the file ends there, said as the page channels say it */
    if (!tail) {
        if (!g_str_has_prefix(desc, FAULT_PREFIX) ||
            sscanf(desc, FAULT_PREFIX "%llx: Unexpected end of file at offset 0x%llx%n",
                   &in_block, &in_file, &n) != 2 || desc[n]) {
            g_error("unexpected error-desc: %s", desc);
        }
    } else if (!g_str_has_prefix(desc, FAULT_PREFIX) || !g_str_has_suffix(desc, tail) ||
        sscanf(desc, FAULT_PREFIX "%llx: Unable to read from file at offset 0x%llx: %n",
               &in_block, &in_file, &n) != 2 || strcmp(desc + n, tail) != 0) {
        g_error("unexpected error-desc: %s", desc);
    }
    g_assert_cmphex(in_block % MIG_PAGE_SIZE, ==, 0);
    g_assert_cmphex(in_block, <, 150 << 20);
    g_assert_cmphex(in_file, >=, pages_offset);
    g_assert_cmphex((in_file - pages_offset) >> 21, ==, in_block >> 21);
    return in_file;
}

/* A failed page read while the guest runs lazily: paused, postcopy-paused, no zero page. */
static void wait_paused(QTestState *to, char **desc)
{
    static const char *const ungoals[] = { "completed", "failed", NULL };

    wait_for_migration_status(to, "postcopy-paused", ungoals);
    JsonObject *rsp = migrate_query(to);
    *desc = g_strdup(qtest_json_get_str(rsp, "error-desc"));
    json_object_unref(rsp);
    g_autofree char *st = query_runstate(to);
    g_assert_cmpstr(st, ==, "paused");
}

static void test_fault_read(void)
{
    OnDemand od = { .fault = "postcopy-fault-read,postcopy-background-slow" };
    g_autofree char *uri = mig_make_live_saved_uri(MIG_FILE_NAME, od.multifd);
    g_autofree char *path = mig_path(MIG_FILE_NAME);
    GArray *blocks = mr_file_blocks(path, 0);
    MRBlock *b = &g_array_index(blocks, MRBlock, 0);
    g_autofree char *desc = NULL;
    QTestState *to = start_dest(&od, NULL);

    g_assert_cmpstr(b->idstr, ==, "mig.mem");
    migrate_incoming_qmp(to, uri, NULL, NULL);
    qtest_qmp_eventwait(to, "RESUME");
    wait_paused(to, &desc);
    assert_fault_msg(desc, "Input/output error", b->pages_offset);
    g_array_unref(blocks);
    /* the guest never got past the page: no 'B' was printed */
    qtest_quit(to);
}

/*
 * A paused destination loading a live save of the ab guest on demand, its
 * background slowed, whose file then loses its page data past 50 MiB into
 * mig.mem: *b gets mig.mem's layout, *cut the file's new length.
 */
static QTestState *start_cut_short(MRBlock *b, uint64_t *cut)
{
    OnDemand od = { .fault = "postcopy-background-slow", .paused = true };
    g_autofree char *uri = mig_make_live_saved_uri(MIG_FILE_NAME, od.multifd);
    g_autofree char *path = mig_path(MIG_FILE_NAME);
    static const char *const ungoals[] = { "completed", "failed", NULL };
    QTestState *to = start_dest(&od, NULL);
    g_autoptr(GArray) blocks = mr_file_blocks(path, 0);

    *b = g_array_index(blocks, MRBlock, 0);
    g_assert_cmpstr(b->idstr, ==, "mig.mem");
    *cut = b->pages_offset + (50 << 20);
    migrate_incoming_qmp(to, uri, NULL, NULL);
    wait_for_migration_status(to, "postcopy-active", ungoals);
    g_assert_cmpint(truncate(path, *cut), ==, 0);
    return to;
}

/* quit acts at once on a VM whose on-demand load failed */
static void quit_promptly(QTestState *to)
{
    gint64 start = g_get_monotonic_time();
    qtest_quit(to);
    g_assert_cmpint(g_get_monotonic_time() - start, <, 10 * G_USEC_PER_SEC);
}

/* The file loses its page data while the guest runs lazily. */
static void test_fault_truncated(void)
{
    MRBlock b;
    uint64_t cut;
    g_autofree char *desc = NULL;
    QTestState *to = start_cut_short(&b, &cut);

    qtest_qmp_assert_success(to, "{'execute': 'cont'}");
    wait_paused(to, &desc);
    g_assert_cmphex(assert_fault_msg(desc, NULL, b.pages_offset), >=, cut);
    /*
     * Nothing will bring the missing pages: cont and pmemsave are refused
     * with the load's error (a cont let vCPUs run into them, and the next
     * stop waited for good on one parked in userfaultfd; a pmemsave over
     * one blocked the main loop for good), and stop and quit still act.
     */
    g_autofree char *want = g_strdup_printf("Guest RAM is missing pages that the paused "
                                            "on-demand load will not bring: %s", desc);
    g_autofree char *err = qtest_qmp_expect_error(to, "{'execute': 'cont'}");
    g_assert_cmpstr(err, ==, want);
    g_autofree char *dump = mig_path("dump");
    g_autofree char *err2 = qtest_qmp_expect_error(to, "{'execute': 'pmemsave', 'arguments': "
                                                   "{'val': 0, 'size': %d, 'filename': '%s'}}",
                                                   150 << 20, dump);
    g_assert_cmpstr(err2, ==, want);
    g_assert_false(g_file_test(dump, G_FILE_TEST_EXISTS));
    g_autofree char *st = query_runstate(to);
    g_assert_cmpstr(st, ==, "paused");
    qtest_qmp_assert_success(to, "{'execute': 'stop'}");
    quit_promptly(to);
}

/*
 * A pmemsave while pages are still loading reads one the load then fails
 * to bring (the file cut short): it fails with the load's error (it used
 * to leave the main loop waiting in the kernel for good: no reply, no
 * quit), writes nothing more, and quit still acts.  A migrate after it is
 * refused with the same error, not told to try again once completed.
 */
static void test_fault_pmemsave(void)
{
    MRBlock b;
    uint64_t cut;
    g_autofree char *dump = mig_path("dump");
    g_autofree char *desc = NULL;
    QTestState *to = start_cut_short(&b, &cut);

    g_autofree char *err = qtest_qmp_expect_error(to, "{'execute': 'pmemsave', 'arguments': "
                                                  "{'val': 0, 'size': %lld, "
                                                  "'filename': '%s'}}",
                                                  (long long)b.used_length, dump);
    wait_paused(to, &desc);
    g_assert_cmphex(assert_fault_msg(desc, NULL, b.pages_offset), >=, cut);
    g_autofree char *want = g_strdup_printf("Guest RAM is missing pages that the paused "
                                            "on-demand load will not bring: %s", desc);
    g_assert_cmpstr(err, ==, want);
    /* what it wrote before the page that did not come, and nothing after */
    struct stat st;
    g_assert_cmpint(stat(dump, &st), ==, 0);
    g_assert_cmpuint(st.st_size, <, b.used_length);
    g_autofree char *uri2 = mig_file_uri("again.img", NULL);
    g_autofree char *err2 = qtest_qmp_expect_error(to, "{'execute': 'migrate', 'arguments': "
                                                   "{'uri': '%s'}}", uri2);
    g_assert_cmpstr(err2, ==, want);
    quit_promptly(to);
}

/*
 * A stop while a vCPU waits on a page whose read fails: the vCPU waits
 * for good, and the stop counts it as parked (it used to wait for it for
 * good, main loop and all); the load then pauses as without the stop.
 */
static void test_fault_stop(void)
{
    /* the third read fails; pages come one checksum run per fault */
    OnDemand od = { .fault = "postcopy-background-slow,postcopy-fault-runs,"
                             "postcopy-fault-read:3" };
    g_autofree char *uri = mig_make_live_saved_uri(MIG_FILE_NAME, od.multifd);
    g_autofree char *path = mig_path(MIG_FILE_NAME);
    GArray *blocks = mr_file_blocks(path, 0);
    MRBlock *b = &g_array_index(blocks, MRBlock, 0);
    g_autofree char *desc = NULL;
    static const char *const ungoals[] = { "completed", "failed", NULL };
    QTestState *to = start_dest(&od, NULL);

    migrate_incoming_qmp(to, uri, NULL, NULL);
    wait_for_migration_status(to, "postcopy-active", ungoals);
    for (int i = 0; i < 1000; i++) {
        qtest_qmp_assert_success(to, "{'execute': 'stop'}");
        g_autofree char *st = migrate_query_status(to);
        if (strcmp(st, "postcopy-active")) {
            break;
        }
        qtest_qmp_assert_success(to, "{'execute': 'cont'}");
    }
    wait_paused(to, &desc);
    assert_fault_msg(desc, "Input/output error", b->pages_offset);
    g_autofree char *rs = query_runstate(to);
    g_assert_cmpstr(rs, ==, "paused");
    g_array_unref(blocks);
    qtest_quit(to);
}

/* The first set page of [from, to). */
static uint64_t find_set_page(const uint8_t *file, const MRBlock *b, uint64_t from,
                              uint64_t to)
{
    for (uint64_t p = from; p < to; p++) {
        if (mr_page_set(file, b, p)) {
            return p;
        }
    }
    g_assert_not_reached();
}

/*
 * Clear pages whose slots hold bytes (as a live save leaves pages that
 * became zero in a later pass) read zero after an on-demand load, both
 * where the background reads through them (a one-page gap between data
 * pages) and where it reads around them (a longer gap); their neighbours
 * keep their data.  The destination skips the checksum table, which
 * still describes the pages before their bits were cleared.
 *
 * STALE_REUSED: the background's buffer for that window last held another
 * window, one the fault thread had touched first (so it was copied in,
 * and the buffer kept that window's bytes): the long gap must not show
 * them.  The background reads 16 windows ahead, one buffer each in turn:
 * the other window is the one 16 windows with data earlier, touched
 * while the background is slowed down, and served by its checksum run
 * (postcopy-fault-runs), not whole.
 *
 * STALE_FAULT: the window is touched before the background gets there,
 * so the fault thread reads it whole and moves it in.
 */
typedef enum { STALE_BACKGROUND, STALE_REUSED, STALE_FAULT } StaleCase;

static void stale_slots(StaleCase sc)
{
    static const char *const faults[] = {
        [STALE_BACKGROUND] = NULL,
        [STALE_REUSED] = "postcopy-background-slow,postcopy-fault-runs",
        [STALE_FAULT] = "postcopy-background-slow",
    };
    bool reused = sc == STALE_REUSED;
    OnDemand od = { .paused = true, .fault = faults[sc] };
    g_autofree char *uri = mig_make_live_saved_uri(MIG_FILE_NAME, false);
    g_autofree char *path = mig_path(MIG_FILE_NAME);
    GArray *blocks = mr_file_blocks(path, 0);
    MRBlock *b = &g_array_index(blocks, MRBlock, 0);
    size_t len;
    g_autofree uint8_t *file = read_whole_file(path, &len);
    uint64_t w0 = 0, gap = 0, earlier = 0;
    g_autoptr(GArray) with_data = g_array_new(FALSE, FALSE, sizeof(uint64_t));
    /* the one-page gap, then a gap of 8 pages, inside one 2 MiB window of data */
    static const unsigned cleared[] = { 101, 110, 111, 112, 113, 114, 115, 116, 117 };
    static const char *const ungoals[] = { "completed", "failed", NULL };

    g_assert_cmpstr(b->idstr, ==, "mig.mem");
    /*
     * The ab guest writes [1 MiB, 100 MiB): a window whose pages 100..118
     * are all data, and (reused) so are those of the window 16 windows with
     * data before it, whose bytes its buffer then holds at those offsets.
     */
    for (uint64_t w = 0; w < (96ULL << 20 >> 12); w += 512) {
        bool any = false;
        for (uint64_t p = w; p < w + 512; p++) {
            any |= mr_page_set(file, b, p);
        }
        if (any) {
            g_array_append_val(with_data, w);
        }
    }
    /*
     * A touched window lies 16 windows with data into the file or more:
     * the slowed background (50 ms a window) takes 0.8 s to get there,
     * long after the touch, even on a loaded machine.
     */
    guint start = sc == STALE_REUSED ? 32 : sc == STALE_FAULT ? 16 : 0;
    for (guint i = start; i < with_data->len && !w0; i++) {
        uint64_t w = g_array_index(with_data, uint64_t, i);
        uint64_t e = reused ? g_array_index(with_data, uint64_t, i - 16) : w;
        bool all = w != 0;
        for (uint64_t p = 100; p <= 118; p++) {
            all &= mr_page_set(file, b, w + p) &&
                   mr_page_set(file, b, e + p);
        }
        if (all) {
            w0 = w;
            earlier = e;
        }
    }
    g_assert_cmpuint(w0, !=, 0);
    for (size_t i = 0; i < G_N_ELEMENTS(cleared); i++) {
        uint64_t p = w0 + cleared[i];
        uint8_t byte = file[b->bitmap_offset + p / 8] & ~(1u << (p % 8));
        file[b->bitmap_offset + p / 8] = byte;
        patch_file(path, b->bitmap_offset + p / 8, &byte, 1);
        /* the slot still holds the page's old bytes: not all zero */
        const uint8_t *slot = file + b->pages_offset + p * MIG_PAGE_SIZE;
        gap |= slot[0] | slot[MIG_PAGE_SIZE - 1];
    }
    g_assert_cmpuint(gap, !=, 0);

    QTestState *to = start_dest(&od, NULL);
    migrate_set_parameter_bool(to, "x-checksums", false);
    migrate_incoming_qmp(to, uri, NULL, NULL);
    if (sc != STALE_BACKGROUND) {
        /* STALE_REUSED: earlier is w0's 16th window with data before it */
        uint64_t p = find_set_page(file, b, earlier, earlier + 512);
        wait_for_migration_status(to, "postcopy-active", ungoals);
        g_free(guest_memread(to, mig_tmpdir, p * MIG_PAGE_SIZE, MIG_PAGE_SIZE));
        /*
         * touched before the background got there: the fault thread moves
         * the window in whole, or (reused) places its run and the
         * background copies the rest
         */
        g_autofree char *status = NULL;
        JsonObject *ram = query_ram(to, &status);
        g_assert_cmpint(qtest_json_get_int(ram, "postcopy-requests", 0), >, 0);
        if (sc == STALE_FAULT) {
            /* the window's data pages, all at that one request */
            uint64_t data = 0;
            for (uint64_t q = w0; q < w0 + 512; q++) {
                data += mr_page_set(file, b, q);
            }
            g_assert_cmpint(qtest_json_get_int(ram, "postcopy-bytes", 0), >=,
                            data * MIG_PAGE_SIZE);
        }
        json_object_unref(ram);
    }
    wait_for_migration_complete(to);
    for (uint64_t p = w0 + 99; p <= w0 + 119; p++) {
        g_autofree uint8_t *mem = guest_memread(to, mig_tmpdir, p * MIG_PAGE_SIZE,
                                                MIG_PAGE_SIZE);
        bool set = mr_page_set(file, b, p);
        const uint8_t *want = file + b->pages_offset + p * MIG_PAGE_SIZE;
        for (size_t i = 0; i < MIG_PAGE_SIZE; i++) {
            if (mem[i] != (set ? want[i] : 0)) {
                g_error("%s page 0x%" G_GINT64_MODIFIER "x reads 0x%02x at byte %zu, not 0x%02x",
                        set ? "data" : "clear", p * MIG_PAGE_SIZE, mem[i], i,
                        set ? want[i] : 0);
            }
        }
    }
    g_array_unref(blocks);
    qtest_quit(to);
}

static void test_stale_slots(void)
{
    stale_slots(STALE_BACKGROUND);
}

static void test_stale_slots_reused(void)
{
    stale_slots(STALE_REUSED);
}

static void test_stale_slots_fault(void)
{
    const char *why = no_huge_moves();

    if (why) {
        g_test_skip(why);     /* without moves a fault reads its run only */
        return;
    }
    stale_slots(STALE_FAULT);
}

/*
 * A block list that fails after guest RAM (mig.mem, the first block) was
 * emptied and registered for faults, before any fault thread ran: the
 * load fails, the destination stays up (exit-on-error off), and reading
 * its RAM from the host (pmemsave) answers, reading zero, instead of
 * hanging the main thread on a fault nobody would serve.
 */
static void test_fail_in_block_list(void)
{
    static const char *const caps[] = { "mapped-ram", NULL };
    g_autofree char *path = mig_make_saved_file(MIG_FILE_NAME, caps, false);
    g_autofree char *uri = g_strdup_printf("file:%s", path);
    g_autoptr(GArray) blocks = mr_file_blocks(path, 0);
    OnDemand od = { .paused = true };
    gsize len;
    g_autofree gchar *file = NULL;

    g_assert_cmpuint(blocks->len, >=, 2);
    g_assert_cmpstr(g_array_index(blocks, MRBlock, 0).idstr, ==, "mig.mem");
    g_assert_cmpstr(g_array_index(blocks, MRBlock, 1).idstr, ==, "vga.vram");
    g_assert_true(g_file_get_contents(path, &file, &len, NULL));
    /* the second block's name, in its record after mig.mem's header */
    uint64_t from = g_array_index(blocks, MRBlock, 0).hdr_off;
    const char *at = memmem(file + from, g_array_index(blocks, MRBlock, 1).hdr_off - from,
                            "\x08vga.vram", 9);
    g_assert_nonnull(at);
    patch_file(path, at - file + 8, "X", 1);

    QTestState *to = start_dest(&od, NULL);
    migrate_set_parameter_bool(to, "x-checksums", false);
    migrate_incoming_qmp(to, uri, NULL, "'exit-on-error': false");
    g_autofree char *desc = wait_for_migration_fail(to);
    g_assert_true(g_str_has_suffix(desc, "Unknown ramblock \"vga.vraX\", cannot accept migration"));
    assert_dest_not_resumed(to);
    g_autofree uint8_t *mem = guest_memread(to, mig_tmpdir, AB_FIRST_PAGE, MIG_PAGE_SIZE);
    for (size_t i = 0; i < MIG_PAGE_SIZE; i++) {
        g_assert_cmpuint(mem[i], ==, 0);
    }
    qtest_quit(to);
}

/*
 * Guest RAM in a file on a disk's file system, which userfaultfd cannot
 * fault in on demand: the load fails saying what memory it needs (it
 * said only "Invalid argument").  Skipped where the test directory is on
 * tmpfs or hugetlbfs, where it works.
 */
static void test_disk_backend(void)
{
    g_autofree char *uri = mig_make_live_saved_uri(MIG_FILE_NAME, false);
    g_autofree char *mem = mig_path("mem-disk");
    struct statfs fs;

    g_assert_cmpint(statfs(mig_tmpdir, &fs), ==, 0);
    if (fs.f_type == TMPFS_MAGIC || fs.f_type == HUGETLBFS_MAGIC) {
        g_test_skip("the test directory is on tmpfs or hugetlbfs");
        return;
    }
    QTestState *to = qtest_init_bin_env(
        qtest_vm_binary(), NULL,
        "-m 150M -machine memory-backend=mig.mem "
        "-object memory-backend-file,id=mig.mem,size=150M,mem-path=%s,share=on "
        "-guest ab -incoming defer -S", mem);
    migrate_set_capability(to, "events", true);
    migrate_set_capability(to, "mapped-ram", true);
    migrate_set_capability(to, "postcopy-ram", true);
    migrate_incoming_qmp(to, uri, NULL, "'exit-on-error': false");
    g_autofree char *desc = wait_for_migration_fail(to);
    g_assert_true(g_str_has_suffix(desc, "Cannot register RAM block 'mig.mem' with userfaultfd: "
                                         "Invalid argument (restoring on demand needs memory "
                                         "that is anonymous or on tmpfs or hugetlbfs: "
                                         "memory-backend-ram, -memfd, or a memory-backend-file "
                                         "there, not on a disk's file system)"));
    assert_dest_not_resumed(to);
    qtest_quit(to);
}

/*
 * A crafted file with a second "ram" START section (one holding only EOS,
 * after the real one's END): each START registered the
 * blocks and started a fault thread over the same load, two threads
 * sharing one buffer.  The second START is refused, naming it.
 */
static void test_second_ram_start(void)
{
    static const char *const caps[] = { "mapped-ram", NULL };
    static const uint8_t start[] = {
        0x01, 0, 0, 0, 9, 3, 'r', 'a', 'm', 0, 0, 0, 0, 0, 0, 0, 4,   /* START id 9 ram v4 */
        0, 0, 0, 0, 0, 0, 0, 0x10,                                    /* EOS */
        0x7e, 0, 0, 0, 9,                                             /* footer */
    };
    g_autofree char *path = mig_make_saved_file(MIG_FILE_NAME, caps, false);
    g_autofree char *uri = g_strdup_printf("file:%s", path);
    OnDemand od = { .paused = true };
    gsize len;
    g_autofree gchar *file = NULL;

    g_autoptr(GArray) blocks = mr_file_blocks(path, 0);
    const MRBlock *last = &g_array_index(blocks, MRBlock, blocks->len - 1);
    static const char end[] = "\x03\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x10"
                              "\x7e\x00\x00\x00\x00";

    g_assert_true(g_file_get_contents(path, &file, &len, NULL));
    /*
     * After the ram section's END, which follows the last page region:
     * no offset the file records moves.
     */
    size_t from = last->pages_offset + last->used_length;
    g_assert_cmpuint(from, <, len);
    const char *at = memmem(file + from, len - from, end, sizeof(end) - 1);
    g_assert_nonnull(at);
    size_t off = at - file + sizeof(end) - 1;
    g_autoptr(GByteArray) crafted = g_byte_array_new();
    g_byte_array_append(crafted, (const guint8 *)file, off);
    g_byte_array_append(crafted, start, sizeof(start));
    g_byte_array_append(crafted, (const guint8 *)file + off, len - off);
    g_assert_true(g_file_set_contents(path, (const gchar *)crafted->data, crafted->len, NULL));

    QTestState *to = start_dest(&od, NULL);
    migrate_set_parameter_bool(to, "x-checksums", false);
    migrate_incoming_qmp(to, uri, NULL, "'exit-on-error': false");
    g_autofree char *desc = wait_for_migration_fail(to);
    g_autofree char *want = g_strdup_printf(
        "START section 'ram' (id 9) at offset %zu: RAM START section seen twice", off);
    g_assert_cmpstr(desc, ==, want);
    assert_dest_not_resumed(to);
    qtest_quit(to);
}

/*
 * A load from an fdset that fails (a file of garbage): the on-demand
 * load's own dup of the set's fd leaves the set when the load ends, so
 * once remove-fd took the user fd the set is gone, as with any other load.
 */
static void test_fdset_failed(void)
{
    g_autofree char *path = g_strdup_printf("%s/garbage", mig_tmpdir);
    g_autofree char *garbage = g_malloc(8192);
    OnDemand od = { .paused = true };

    memset(garbage, 'x', 8192);
    g_assert_true(g_file_set_contents(path, garbage, 8192, NULL));
    QTestState *to = start_dest(&od, NULL);
    mig_add_fd(to, 0, path, O_RDONLY);
    migrate_incoming_qmp(to, "file:/dev/fdset/0", NULL, "'exit-on-error': false");
    g_autofree char *desc = wait_for_migration_fail(to);
    g_assert_cmpstr(desc, ==, "Stream header at offset 0: Not a migration stream, magic: 78787878 != 5145564d");
    qtest_qmp_assert_success(to, "{'execute': 'remove-fd', 'arguments': {'fdset-id': 0}}");
    g_autoptr(JsonNode) sets = qtest_qmp_assert_success_node(to, "{'execute': 'query-fdsets'}");
    g_autofree char *text = qtest_json_text(sets);
    g_assert_cmpstr(text, ==, "[]");
    qtest_quit(to);
}

/*
 * The file is held while the guest's pages come from it: a mapram save
 * into it is refused and leaves it unchanged (before, the save rewrote
 * it and the guest stopped in postcopy-paused, its pages gone); a file
 * a save holds is refused; once completed, a save into it works.
 */
static void test_file_held(void)
{
    static const char *const ungoals[] = { "completed", "failed", NULL };
    /*
     * stall: a window a second, so that the load is still on when the
     * tool runs (slowed to 50 ms, it had ended under TSan); once the
     * guest runs, it faults its pages in itself
     */
    OnDemand od = { .fault = "postcopy-background-stall", .paused = true };
    g_autofree char *uri = mig_make_live_saved_uri(MIG_FILE_NAME, false);
    g_autofree char *path = mig_path(MIG_FILE_NAME);
    g_autofree char *copy = mig_path("copy");
    g_autofree char *want = g_strdup_printf(
        "File '%s' backs the memory of a VM restored from it (with x-mapped-ram-shared, "
        "on demand, or by mapram serve): writing it would change that VM's memory", path);
    g_autofree char *out = NULL, *err = NULL, *desc = NULL;
    size_t len;
    g_autofree uint8_t *data = read_whole_file(path, &len);

    /* a save's exclusive lock (taken here by hand): the restore is refused */
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(flock(fd, LOCK_EX | LOCK_NB), ==, 0);
    QTestState *to = start_dest(&od, NULL);
    migrate_incoming_qmp(to, uri, NULL, "'exit-on-error': false");
    desc = wait_for_migration_fail(to);
    g_assert_cmpstr(desc, ==, "Cannot restore on demand from the migration file: another "
                    "process holds it locked for writing");
    qtest_quit(to);
    close(fd);

    to = start_dest(&od, NULL);
    migrate_incoming_qmp(to, uri, NULL, NULL);
    wait_for_migration_status(to, "postcopy-active", ungoals);
    g_assert_true(g_file_set_contents(copy, (const char *)data, len, NULL));
    g_assert_cmpint(mig_run_tool(&out, &err, "convert", copy, path, NULL), ==, 1);
    g_assert_nonnull(strstr(err, want));
    g_autofree uint8_t *after = read_whole_file(path, &len);
    g_assert_true(memcmp(data, after, len) == 0);
    qtest_qmp_assert_success(to, "{'execute': 'cont'}");
    wait_for_migration_complete(to);
    check_running_guest(to);
    /* every page is in: the file is free (a save into it works) */
    g_clear_pointer(&out, g_free);
    g_clear_pointer(&err, g_free);
    g_assert_cmpint(mig_run_tool(&out, &err, "convert", copy, path, NULL), ==, 0);
    qtest_quit(to);

    /* mapram serve holds it for its whole run (here to a destination that reads nothing) */
    g_assert_true(g_file_set_contents(path, (const char *)data, len, NULL));  /* mapped-ram again */
    g_autofree char *sock = mig_path("serve.sock");
    g_autofree char *suri = g_strdup_printf("unix:%s", sock);
    int lfd = mig_listen_unix(sock);
    const char *argv[] = { g_getenv("MAPRAM_TOOL"), "serve", "--quiet", path, suri, NULL };
    GPid pid;
    g_assert_true(g_spawn_async(NULL, (char **)argv, NULL, G_SPAWN_DO_NOT_REAP_CHILD, NULL,
                                NULL, &pid, NULL));
    int conn = accept(lfd, NULL, NULL);         /* serve has read the file: it holds it */
    g_assert_cmpint(conn, >=, 0);
    g_clear_pointer(&out, g_free);
    g_clear_pointer(&err, g_free);
    g_assert_cmpint(mig_run_tool(&out, &err, "convert", copy, path, NULL), ==, 1);
    g_assert_nonnull(strstr(err, want));
    g_free(after);
    after = read_whole_file(path, &len);
    g_assert_true(memcmp(data, after, len) == 0);
    kill(pid, SIGKILL);
    g_assert_cmpint(waitpid(pid, NULL, 0), ==, pid);
    g_spawn_close_pid(pid);
    close(conn);
    close(lfd);
}

/*
 * mapram serve --timeout: a destination that accepts and then reads
 * nothing, or reads everything and never sends its SHUT, is given up on
 * after the timeout with the reason (serve waited for good before).
 */
static void serve_stall_case(const char *path, bool read_all)
{
    g_autofree char *sock = mig_path("stall.sock");
    g_autofree char *suri = g_strdup_printf("unix:%s", sock);
    const char *argv[] = { g_getenv("MAPRAM_TOOL"), "serve", "--quiet", "--timeout", "2",
                           path, suri, NULL };
    g_autofree char *err = NULL;
    int lfd = mig_listen_unix(sock);
    int err_fd, status;
    GPid pid;

    g_assert_true(g_spawn_async_with_pipes(NULL, (char **)argv, NULL, G_SPAWN_DO_NOT_REAP_CHILD |
                                           G_SPAWN_STDIN_FROM_DEV_NULL |
                                           G_SPAWN_STDOUT_TO_DEV_NULL,
                                           NULL, NULL, &pid, NULL, NULL, &err_fd, NULL));
    int conn = accept(lfd, NULL, NULL);
    g_assert_cmpint(conn, >=, 0);
    gint64 t0 = g_get_monotonic_time();
    if (read_all) {
        char buf[65536];
        while (read(conn, buf, sizeof(buf)) > 0) {
        }
    }
    g_assert_cmpint(waitpid(pid, &status, 0), ==, pid);
    gint64 took = g_get_monotonic_time() - t0;
    g_assert_true(WIFEXITED(status));
    g_assert_cmpint(WEXITSTATUS(status), ==, 1);
    g_assert_cmpint(took, >=, 2 * G_USEC_PER_SEC);
    g_assert_cmpint(took, <, 15 * G_USEC_PER_SEC);
    GIOChannel *errc = g_io_channel_unix_new(err_fd);
    g_io_channel_set_close_on_unref(errc, TRUE);
    g_io_channel_read_to_end(errc, &err, NULL, NULL);
    g_io_channel_unref(errc);
    g_autofree char *want = read_all
        ? g_strdup_printf("mapram serve: QEMU at '%s' did not end the migration within 2 s of "
                          "the end of the stream (--timeout)\n", suri)
        : g_strdup_printf("mapram serve: QEMU at '%s' read nothing for 2 s (--timeout): is it "
                          "stopped?\n", suri);
    g_assert_cmpstr(err, ==, want);
    g_spawn_close_pid(pid);
    close(conn);
    close(lfd);
    unlink(sock);
}

static void test_serve_timeout(void)
{
    g_free(mig_make_live_saved_uri(MIG_FILE_NAME, false));     /* the file, at path */
    g_autofree char *path = mig_path(MIG_FILE_NAME);
    g_autofree char *err = NULL;

    serve_stall_case(path, false);
    serve_stall_case(path, true);
    g_assert_cmpint(mig_run_tool(NULL, &err, "serve", "--timeout", "0", path, "unix:/x",
                                 NULL), ==, 2);
    g_assert_cmpstr(err, ==, "mapram serve: --timeout expects a number of seconds above 0\n");
}

/* ---- rule rows ---- */

/* A destination whose RAM backend has @backend_opts (share=..., prealloc=...). */
static QTestState *start_plain_dest(const char *backend_opts)
{
    return qtest_init_bin(
        qtest_vm_binary(),
        "-m 150M -machine memory-backend=mig.mem "
        "-object memory-backend-ram,id=mig.mem,size=150M,%s "
        "-guest ab -serial file:%s/dest_serial -incoming defer", backend_opts, mig_tmpdir);
}

static void expect_incoming_refused(const char *const *caps, const char *uri, const char *msg)
{
    g_autofree char *desc = NULL;
    QTestState *to = start_plain_dest("share=off");

    for (; *caps; caps++) {
        migrate_set_capability(to, *caps, true);
    }
    desc = migrate_incoming_qmp_expect_error(to, uri, NULL);
    g_assert_cmpstr(desc, ==, msg);
    g_autofree char *st = query_runstate(to);
    g_assert_cmpstr(st, ==, "inmigrate");
    qtest_quit(to);
}

/*
 * Guest RAM the kernel cannot empty (a shared backend, preallocated) is
 * refused before the guest runs: its pages would never fault.  Memory
 * that is private and anonymous is emptied without that check.
 */
static void test_rule_shared_prealloc(void)
{
    g_autofree char *uri = mig_make_live_saved_uri(MIG_FILE_NAME, false);
    g_autofree char *desc = NULL;
    QTestState *to = start_plain_dest("share=on,prealloc=on");

    migrate_set_capability(to, "events", true);
    migrate_set_capability(to, "mapped-ram", true);
    migrate_set_capability(to, "postcopy-ram", true);
    migrate_incoming_qmp(to, uri, NULL, "'exit-on-error': false");
    desc = wait_for_migration_fail(to);
    g_assert_cmpstr(desc, ==, "START section 'ram' (id 0) at offset 71: On-demand restore "
                    "needs RAM block 'mig.mem' empty, but its page at offset 0x0 is present "
                    "(a shared or preallocated memory backend)");
    assert_dest_not_resumed(to);
    qtest_quit(to);
}

static void test_rule_stream(void)
{
    static const char *const caps[] = { "postcopy-ram", NULL };
    g_autofree char *uri = mig_file_uri(MIG_FILE_NAME, NULL);

    expect_incoming_refused(caps, uri, NEEDS_MAPPED_RAM);
}

static void test_rule_stream_unix(void)
{
    static const char *const caps[] = { "postcopy-ram", NULL };
    g_autofree char *uri = g_strdup_printf("unix:%s/sock", mig_tmpdir);

    expect_incoming_refused(caps, uri, NEEDS_MAPPED_RAM);
}

static void test_rule_preempt(void)
{
    static const char *const caps[] = { "mapped-ram", "postcopy-ram", "postcopy-preempt",
                                        NULL };
    g_autofree char *uri = mig_file_uri(MIG_FILE_NAME, NULL);

    expect_incoming_refused(caps, uri,
        "Capability 'postcopy-preempt' does not apply to an on-demand restore from a file");
}

static void test_rule_ignore_shared(void)
{
    QTestState *to = qtest_init_bin(qtest_vm_binary(), "-m 150M -guest ab -incoming defer");
    g_autofree char *desc = qtest_qmp_expect_error(to,
        "{'execute': 'migrate-set-capabilities', 'arguments': {'capabilities': "
        "[{'capability': 'postcopy-ram', 'state': true}, "
        "{'capability': 'x-ignore-shared', 'state': true}]}}");

    g_assert_cmpstr(desc, ==, "Postcopy is not compatible with ignore-shared");
    qtest_quit(to);
}

/* postcopy-ram on a file saved without mapped-ram: the configuration check refuses it. */
static void test_rule_stream_file(void)
{
    OnDemand od = { 0 };
    g_autofree char *path = mig_make_saved_file(MIG_FILE_NAME, NULL, false);
    g_autofree char *uri = g_strdup_printf("file:%s", path);
    QTestState *to = start_dest(&od, NULL);
    g_autofree char *desc = NULL;

    migrate_incoming_qmp(to, uri, NULL, "'exit-on-error': false");
    desc = wait_for_migration_fail(to);
    g_assert_cmpstr(desc, ==, "Configuration at offset 8: "
                    "Capability mapped-ram is on, but received capability is off");
    assert_dest_not_resumed(to);
    qtest_quit(to);
}

static void test_plain(void)
{
    OnDemand od = { 0 };

    test_on_demand(&od);
}

static void test_paused(void)
{
    OnDemand od = { .paused = true };

    test_on_demand(&od);
}

static void test_uffd_copy(void)
{
    OnDemand od = { .uffd_copy = true };

    test_on_demand(&od);
}

static void test_huge_pages(void)
{
    OnDemand od = { .paused = true, .huge_pages = true };
    const char *why = no_huge_moves();

    if (why) {
        g_test_skip(why);
        return;
    }
    test_on_demand(&od);
}

static void test_multifd_dio(void)
{
    OnDemand od = { .multifd = true, .direct_io = true };

    if (!probe_o_direct_support(mig_tmpdir)) {
        g_test_skip("O_DIRECT not supported here");
        return;
    }
    test_on_demand(&od);
}

/* Written back and dropped from the page cache. */
static void drop_file_cache(const char *path)
{
    int fd = open(path, O_RDONLY);

    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(fdatasync(fd), ==, 0);
    g_assert_cmpint(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), ==, 0);
    close(fd);
}

/* Bytes of the file in the page cache (mincore). */
static uint64_t file_cached_bytes(const char *path)
{
    int fd = open(path, O_RDONLY);
    struct stat st;
    long page = sysconf(_SC_PAGESIZE);
    uint64_t n = 0;

    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(fstat(fd, &st), ==, 0);
    void *map = mmap(NULL, st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    g_assert_true(map != MAP_FAILED);
    size_t pages = (st.st_size + page - 1) / page;
    g_autofree unsigned char *vec = g_malloc(pages);
    g_assert_cmpint(mincore(map, st.st_size, vec), ==, 0);
    for (size_t i = 0; i < pages; i++) {
        n += vec[i] & 1;
    }
    munmap(map, st.st_size);
    close(fd);
    return n * page;
}

/*
 * direct-io holds for the faults' reads too: with the background slowed,
 * the guest's RAM is read through the fault thread (the ab guest's ~100
 * MiB of data), and afterwards the page cache holds only what the main
 * channel read (headers, bitmaps, device state: well under 4 MiB).
 */
static void test_dio_faults(void)
{
    OnDemand od = { .multifd = true, .direct_io = true, .fault = "postcopy-background-slow" };

    if (!probe_o_direct_support(mig_tmpdir)) {
        g_test_skip("O_DIRECT not supported here");
        return;
    }
    g_autofree char *uri = mig_make_live_saved_uri(MIG_FILE_NAME, od.multifd);
    const char *path = uri + strlen("file:");
    drop_file_cache(path);
    QTestState *to = start_dest(&od, NULL);

    migrate_incoming_qmp(to, uri, NULL, NULL);
    qtest_qmp_eventwait(to, "RESUME");
    qtest_qmp_assert_success(to, "{'execute': 'stop'}");
    check_guests_ram(to);
    g_assert_cmpuint(file_cached_bytes(path), <, 4 << 20);
    qtest_qmp_assert_success(to, "{'execute': 'cont'}");
    wait_for_migration_complete(to);
    check_running_guest(to);
    qtest_quit(to);
}

void migration_test_add_ondemand(void)
{
    migration_test_add("/migration/ondemand/file/mapped-ram", test_plain, MIG_SMOKE);
    migration_test_add("/migration/tool/serve/timeout", test_serve_timeout, MIG_SMOKE);
    migration_test_add("/migration/ondemand/file/mapped-ram/paused", test_paused, MIG_FULL);
    migration_test_add("/migration/ondemand/file/mapped-ram/uffd-copy", test_uffd_copy,
                       MIG_FULL);
    migration_test_add("/migration/ondemand/file/mapped-ram/huge-pages", test_huge_pages,
                       MIG_FULL);
    migration_test_add("/migration/ondemand/multifd/file/mapped-ram/dio", test_multifd_dio,
                       MIG_FULL);
    migration_test_add("/migration/ondemand/multifd/file/mapped-ram/dio/faults",
                       test_dio_faults, MIG_FULL);
    migration_test_add("/migration/ondemand/file/mapped-ram/fail-in-block-list",
                       test_fail_in_block_list, MIG_FULL);
    migration_test_add("/migration/ondemand/file/mapped-ram/second-ram-start",
                       test_second_ram_start, MIG_FULL);
    migration_test_add("/migration/ondemand/file/mapped-ram/fdset/failed", test_fdset_failed,
                       MIG_FULL);
    migration_test_add("/migration/ondemand/file/mapped-ram/file-held", test_file_held,
                       MIG_FULL);
    migration_test_add("/migration/ondemand/file/mapped-ram/stale-slots", test_stale_slots,
                       MIG_FULL);
    migration_test_add("/migration/ondemand/file/mapped-ram/stale-slots/reused",
                       test_stale_slots_reused, MIG_FULL);
    migration_test_add("/migration/ondemand/file/mapped-ram/stale-slots/fault",
                       test_stale_slots_fault, MIG_FULL);
    migration_test_add("/migration/ondemand/while-arriving", test_while_arriving, MIG_SMOKE);
    migration_test_add("/migration/ondemand/fault/read", test_fault_read, MIG_FULL);
    migration_test_add("/migration/ondemand/fault/truncated", test_fault_truncated, MIG_FULL);
    migration_test_add("/migration/ondemand/fault/pmemsave", test_fault_pmemsave, MIG_SMOKE);
    migration_test_add("/migration/ondemand/fault/stop", test_fault_stop, MIG_SMOKE);
    migration_test_add("/migration/ondemand/rule/disk-backend", test_disk_backend, MIG_FULL);
    migration_test_add("/migration/ondemand/rule/stream", test_rule_stream, MIG_SMOKE);
    migration_test_add("/migration/ondemand/rule/stream/unix", test_rule_stream_unix,
                       MIG_FULL);
    migration_test_add("/migration/ondemand/rule/stream-file", test_rule_stream_file,
                       MIG_FULL);
    migration_test_add("/migration/ondemand/rule/preempt", test_rule_preempt, MIG_FULL);
    migration_test_add("/migration/ondemand/rule/shared-prealloc", test_rule_shared_prealloc,
                       MIG_FULL);
    migration_test_add("/migration/ondemand/rule/ignore-shared", test_rule_ignore_shared,
                       MIG_FULL);
}
