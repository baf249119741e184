/*
 * Real QEMU as a peer of the mapram tool (issue #4, point 6).
 *
 * Debian's qemu-system-x86_64 boots our own a-b boot sector (ab-boot.S)
 * and migrates over exec: into "mapram save", and back out of
 * "mapram load" into a fresh QEMU started with "-incoming defer -S".  A
 * round trip is correct when the destination's guest-physical memory
 * (pmemsave of all RAM) equals the source's byte for byte, and the guest
 * goes on printing 'B' after "cont".  The source is dumped after the
 * migration completed: its vCPU is stopped then (postmigrate), so both
 * dumps show the same instant.
 *
 * Nothing here knows the mapped-ram layout beyond what any reader can see
 * (the capability name in the configuration section): the file format is
 * checked by QEMU itself, by "mapram verify", and by the memory compare.
 *
 * Environment: $MAPRAM_QEMU (default: qemu-system-x86_64 from $PATH; the
 * tests are skipped when there is none), $MAPRAM_TOOL (default: the build
 * tree's mapram), $MAPRAM_AB_BOOT (default: ab-boot.bin beside this test).
 */
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>

#include "libqtest.h"
#include "util/ab-pattern.h"

#define GUEST_RAM_MIB       150
#define GUEST_RAM_BYTES     ((guint64)GUEST_RAM_MIB << 20)
#define TARGET_PAGE         4096u

/* The setting QEMU's own migration tests use to converge a busy guest. */
#define FAST_BANDWIDTH      1000000000ull
#define FAST_DOWNTIME_MS    30000
/*
 * Slow enough that one pass over the ~100 MB the guest re-dirties takes
 * more than a second, and never fits the default 300 ms downtime: the
 * migration keeps iterating until the test speeds it up.
 */
#define SLOW_BANDWIDTH      (64ull << 20)

/* Metadata a mapped-ram file may add: 1 MiB per block (QEMU 7.2's pc has
 * 6 blocks; allow 8) plus the device state and vmdesc. */
#define MAPPED_RAM_SLACK    ((8ull << 20) + (4ull << 20))

static struct {
    char *qemu;         /* absolute path, NULL when QEMU is not installed */
    char *mapram;       /* absolute path, NULL when not built */
    char *ab_boot;
} cfg;

/* One test's scratch space: a temp dir with its own copy of the disk. */
typedef struct {
    char *dir;
    char *disk;
    char *tool_log;     /* stderr of every mapram run from exec: */
} Ctx;

/* One QEMU process and its serial output file. */
typedef struct {
    QTestState *qts;
    char *name;
    char *serial;
} Peer;

/* --- set-up ------------------------------------------------------------- */

static char *find_mapram(const char *argv0)
{
    const char *env = g_getenv("MAPRAM_TOOL");
    const char *root = g_getenv("MAPRAM_BUILD_ROOT");
    g_autofree char *exe_dir = g_path_get_dirname(argv0);
    g_autofree char *guess_root = g_build_filename(exe_dir, "..", "..", NULL);
    const char *roots[] = { root, guess_root };

    if (env && *env) {
        return g_strdup(env);
    }
    for (size_t i = 0; i < G_N_ELEMENTS(roots); i++) {
        const char *rel[] = { "tools/mapram", "mapram" };

        if (!roots[i]) {
            continue;
        }
        for (size_t j = 0; j < G_N_ELEMENTS(rel); j++) {
            g_autofree char *p = g_build_filename(roots[i], rel[j], NULL);

            if (g_file_test(p, G_FILE_TEST_IS_EXECUTABLE) &&
                !g_file_test(p, G_FILE_TEST_IS_DIR)) {
                return g_canonicalize_filename(p, NULL);
            }
        }
    }
    return NULL;
}

static void config_init(const char *argv0)
{
    const char *qemu = g_getenv("MAPRAM_QEMU");
    const char *ab = g_getenv("MAPRAM_AB_BOOT");
    g_autofree char *exe_dir = g_path_get_dirname(argv0);

    cfg.qemu = g_find_program_in_path(qemu && *qemu ? qemu
                                                    : "qemu-system-x86_64");
    cfg.mapram = find_mapram(argv0);
    cfg.ab_boot = ab && *ab ? g_strdup(ab)
                            : g_build_filename(exe_dir, "ab-boot.bin", NULL);
}

/* NULL (test skipped) when QEMU is missing; the only reason to skip. */
static Ctx *ctx_new(const char *prefix, bool needs_tool)
{
    g_autofree char *boot = NULL;
    g_autoptr(GError) err = NULL;
    gsize len = 0;
    Ctx *c;

    if (!cfg.qemu) {
        g_test_skip("qemu-system-x86_64 is not installed");
        return NULL;
    }
    if (needs_tool && !cfg.mapram) {
        g_test_message("the mapram tool was not found: build it, or set "
                       "MAPRAM_TOOL");
        g_assert_nonnull(cfg.mapram);
    }
    if (!g_file_get_contents(cfg.ab_boot, &boot, &len, &err)) {
        g_test_message("the a-b boot sector: %s", err->message);
        g_assert_no_error(err);
    }
    g_assert_cmpuint(len, ==, 512);

    c = g_new0(Ctx, 1);
    c->dir = qtest_mkdtemp(prefix);
    c->disk = g_build_filename(c->dir, "ab-boot.bin", NULL);
    c->tool_log = g_build_filename(c->dir, "mapram.log", NULL);
    g_assert_true(g_file_set_contents(c->disk, boot, len, NULL));
    return c;
}

static void ctx_free(Ctx *c)
{
    if (!c) {
        return;
    }
    if (g_getenv("MAPRAM_TEST_KEEP")) {
        g_test_message("kept %s", c->dir);
    } else {
        qtest_rmtree(c->dir);
    }
    g_free(c->dir);
    g_free(c->disk);
    g_free(c->tool_log);
    g_free(c);
}

static char *ctx_path(Ctx *c, const char *name)
{
    return g_build_filename(c->dir, name, NULL);
}

/* Print what mapram said so far; called before an assertion on its work. */
static void show_tool_log(Ctx *c)
{
    g_autofree char *text = NULL;

    if (g_file_get_contents(c->tool_log, &text, NULL, NULL) && *text) {
        g_test_message("mapram stderr:\n%s", text);
    }
}

/*
 * A successful save or load says nothing when stderr is not a terminal
 * (issue #4 point 5); this also catches sanitizer reports from an
 * instrumented mapram, which QEMU itself would never notice.
 */
static void assert_tool_quiet(Ctx *c)
{
    g_autofree char *text = NULL;

    if (g_file_get_contents(c->tool_log, &text, NULL, NULL) && *text) {
        show_tool_log(c);
        g_assert_cmpstr(text, ==, "");
    }
}

/* --- QEMU processes ----------------------------------------------------- */

/*
 * "-accel kvm -accel tcg": KVM where /dev/kvm works, TCG otherwise.  No
 * kvmclock, whose page the host updates behind the guest's back and which
 * would make the two memory dumps differ under KVM.
 */
static Peer *peer_start(Ctx *c, const char *name, const char *extra)
{
    Peer *p = g_new0(Peer, 1);

    p->name = g_strdup(name);
    p->serial = g_strdup_printf("%s/%s.serial", c->dir, name);
    p->qts = qtest_init_bin(cfg.qemu,
        "-machine pc -accel kvm -accel tcg -cpu qemu64,-kvmclock "
        "-m %uM -display none -nodefaults -serial file:%s "
        "-drive file=%s,format=raw,if=none,id=d0 -device ide-hd,drive=d0 %s",
        GUEST_RAM_MIB, p->serial, c->disk, extra ? extra : "");
    return p;
}

static void peer_quit(Peer *p)
{
    if (!p) {
        return;
    }
    qtest_quit(p->qts);
    g_free(p->name);
    g_free(p->serial);
    g_free(p);
}

static void peer_assert_alive(Peer *p)
{
    if (!qtest_alive(p->qts)) {
        g_autofree char *err = qtest_stderr_text(p->qts);

        g_test_message("QEMU '%s' exited; its stderr:\n%s", p->name, err);
        g_assert_true(qtest_alive(p->qts));
    }
}

/* Wait until the guest wrote @ch to its serial port. */
static void peer_wait_serial(Peer *p, char ch)
{
    gint64 deadline = g_get_monotonic_time() +
                      (gint64)qtest_timeout_s() * G_USEC_PER_SEC;

    for (;;) {
        g_autofree char *text = NULL;
        gsize len = 0;

        if (g_file_get_contents(p->serial, &text, &len, NULL) &&
            memchr(text, ch, len)) {
            return;
        }
        peer_assert_alive(p);
        if (g_get_monotonic_time() > deadline) {
            g_test_message("no '%c' on the serial of '%s' after %d s",
                           ch, p->name, qtest_timeout_s());
            g_assert_not_reached();
        }
        g_usleep(50 * 1000);
    }
}

static char *peer_run_state(Peer *p)
{
    g_autoptr(JsonObject) r = qtest_qmp_assert_success_ref(p->qts,
        "{'execute': 'query-status'}");

    return g_strdup(qtest_json_get_str(r, "status"));
}

/*
 * The run state of a source whose migration has ended.  QEMU sets the
 * migration's status (completed, failed) from its migration thread and
 * only then, with the main lock taken, leaves finish-migrate (for
 * postmigrate, or running again after a failure): a query-status between
 * the two still answers finish-migrate.  Poll past that window.
 */
static char *peer_settled_run_state(Peer *p)
{
    gint64 deadline = g_get_monotonic_time() +
                      (gint64)qtest_timeout_s() * G_USEC_PER_SEC;

    for (;;) {
        char *state = peer_run_state(p);

        if (g_strcmp0(state, "finish-migrate")) {
            return state;
        }
        g_free(state);
        g_assert_true(g_get_monotonic_time() < deadline);
        g_usleep(1000);
    }
}

static void peer_set_speed(Peer *p, guint64 bandwidth, int downtime_ms)
{
    qtest_qmp_assert_success(p->qts,
        "{'execute': 'migrate-set-parameters', 'arguments': "
        "{'max-bandwidth': %" G_GUINT64_FORMAT ", 'downtime-limit': %d}}",
        bandwidth, downtime_ms);
}

static void peer_migrate(Peer *p, const char *uri)
{
    g_autofree char *juri = qtest_json_str(uri);

    qtest_qmp_assert_success(p->qts,
        "{'execute': 'migrate', 'arguments': {'uri': %s}}", juri);
}

static void peer_migrate_incoming(Peer *p, const char *uri)
{
    g_autofree char *juri = qtest_json_str(uri);

    qtest_qmp_assert_success(p->qts,
        "{'execute': 'migrate-incoming', 'arguments': {'uri': %s}}", juri);
}

/* query-migrate's reply, or NULL if it has no status yet. */
static JsonObject *peer_query_migrate(Peer *p)
{
    return qtest_qmp_assert_success_ref(p->qts,
                                        "{'execute': 'query-migrate'}");
}

/*
 * Poll query-migrate until the migration ended (completed, failed or
 * cancelled); returns the last reply.  Works on both sides: the
 * destination reports its incoming migration the same way.
 */
static JsonObject *peer_wait_migration(Peer *p)
{
    gint64 deadline = g_get_monotonic_time() +
                      (gint64)qtest_timeout_s() * G_USEC_PER_SEC;

    for (;;) {
        JsonObject *r;
        const char *st;

        peer_assert_alive(p);
        r = peer_query_migrate(p);
        st = qtest_json_get_str(r, "status");
        if (st && (!strcmp(st, "completed") || !strcmp(st, "failed") ||
                   !strcmp(st, "cancelled"))) {
            return r;
        }
        json_object_unref(r);
        if (g_get_monotonic_time() > deadline) {
            g_test_message("migration of '%s' did not end in %d s",
                           p->name, qtest_timeout_s());
            g_assert_not_reached();
        }
        g_usleep(50 * 1000);
    }
}

static void peer_wait_completed(Ctx *c, Peer *p, guint64 *ram_total)
{
    g_autoptr(JsonObject) r = peer_wait_migration(p);
    const char *st = qtest_json_get_str(r, "status");

    if (g_strcmp0(st, "completed")) {
        const char *desc = qtest_json_get_str(r, "error-desc");

        show_tool_log(c);
        g_test_message("migration of '%s' ended '%s': %s", p->name, st,
                       desc ? desc : "(no error-desc)");
    }
    g_assert_cmpstr(st, ==, "completed");
    if (ram_total) {
        *ram_total = qtest_json_get_int(qtest_json_get_obj(r, "ram"),
                                        "total", 0);
    }
}

/* Poll until the source synced its dirty log @n times (@n - 1 passes). */
static void peer_wait_dirty_syncs(Peer *p, gint64 n)
{
    gint64 deadline = g_get_monotonic_time() +
                      (gint64)qtest_timeout_s() * G_USEC_PER_SEC;

    for (;;) {
        g_autoptr(JsonObject) r = peer_query_migrate(p);
        const char *st = qtest_json_get_str(r, "status");
        gint64 syncs = qtest_json_get_int(qtest_json_get_obj(r, "ram"),
                                          "dirty-sync-count", 0);

        if (syncs >= n) {
            return;
        }
        g_assert_cmpstr(st, !=, "failed");
        g_assert_cmpstr(st, !=, "completed");
        g_assert_true(g_get_monotonic_time() < deadline);
        g_usleep(50 * 1000);
    }
}

static void peer_pmemsave(Peer *p, const char *file)
{
    g_autofree char *jfile = qtest_json_str(file);

    qtest_qmp_assert_success(p->qts,
        "{'execute': 'pmemsave', 'arguments': "
        "{'val': 0, 'size': %" G_GUINT64_FORMAT ", 'filename': %s}}",
        GUEST_RAM_BYTES, jfile);
}

/* --- memory checks ------------------------------------------------------ */

static GBytes *read_file(const char *path)
{
    g_autoptr(GError) err = NULL;
    char *data = NULL;
    gsize len = 0;

    if (!g_file_get_contents(path, &data, &len, &err)) {
        g_test_message("%s", err->message);
        g_assert_no_error(err);
    }
    return g_bytes_new_take(data, len);
}

/*
 * The a-b invariant (util/ab-pattern.h, the same checker as mapram-vm's
 * tests and `mapram demo`: ab-boot.S tracks the same bytes) on a dump of
 * all RAM.  Proves the dump holds the guest's pattern at all, so that
 * equal dumps mean something.
 */
static void assert_ab_pattern(GBytes *mem, const char *what)
{
    gsize len;
    const guint8 *m = g_bytes_get_data(mem, &len);
    g_autoptr(GError) err = NULL;

    g_assert_cmpuint(len, >=, AB_PATTERN_END);
    if (!ab_pattern_check(m + AB_PATTERN_START, AB_PATTERN_START,
                          AB_PATTERN_END - AB_PATTERN_START, &err)) {
        g_test_message("%s: %s", what, err->message);
        g_assert_no_error(err);
    }
}

static void assert_same_memory(const char *src_dump, const char *dst_dump)
{
    g_autoptr(GBytes) a = read_file(src_dump);
    g_autoptr(GBytes) b = read_file(dst_dump);
    gsize la, lb;
    const guint8 *pa = g_bytes_get_data(a, &la);
    const guint8 *pb = g_bytes_get_data(b, &lb);

    g_assert_cmpuint(la, ==, GUEST_RAM_BYTES);
    g_assert_cmpuint(lb, ==, GUEST_RAM_BYTES);
    assert_ab_pattern(a, "source");
    if (memcmp(pa, pb, la)) {
        gsize first = 0, pages = 0;

        for (gsize off = 0; off < la; off += TARGET_PAGE) {
            if (memcmp(pa + off, pb + off, TARGET_PAGE)) {
                first = pages++ ? first : off;
            }
        }
        g_test_message("destination memory differs from the source in %"
                       G_GSIZE_FORMAT " pages, first at %#" G_GSIZE_MODIFIER
                       "x", pages, first);
        g_assert_not_reached();
    }
}

/*
 * After "cont" the guest must have run on from the restored state: the
 * a-b pattern still holds and the tracked bytes changed.  This is also the
 * proof that assert_same_memory can tell two dumps apart.
 */
static void assert_moved_on(const char *src_dump, const char *later_dump)
{
    g_autoptr(GBytes) a = read_file(src_dump);
    g_autoptr(GBytes) b = read_file(later_dump);

    assert_ab_pattern(b, "destination after cont");
    g_assert_false(g_bytes_equal(a, b));
}

/* --- the mapram tool and files ----------------------------------------- */

typedef struct {
    int status;         /* exit status, or -1 if it did not exit normally */
    char *out;
    char *err;
} ToolRun;

static void tool_run_clear(ToolRun *r)
{
    g_free(r->out);
    g_free(r->err);
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(ToolRun, tool_run_clear)

/* Run "mapram ARGS..." (NULL-terminated) to completion. */
static void G_GNUC_NULL_TERMINATED run_mapram(ToolRun *r, ...)
{
    g_autoptr(GPtrArray) argv = g_ptr_array_new();
    g_autoptr(GError) err = NULL;
    int wait_status = 0;
    va_list ap;
    const char *arg;

    g_ptr_array_add(argv, cfg.mapram);
    va_start(ap, r);
    while ((arg = va_arg(ap, const char *))) {
        g_ptr_array_add(argv, (char *)arg);
    }
    va_end(ap);
    g_ptr_array_add(argv, NULL);

    memset(r, 0, sizeof(*r));
    if (!g_spawn_sync(NULL, (char **)argv->pdata, NULL, G_SPAWN_DEFAULT,
                      NULL, NULL, &r->out, &r->err, &wait_status, &err)) {
        g_test_message("cannot run '%s': %s", cfg.mapram, err->message);
        g_assert_no_error(err);
    }
    r->status = WIFEXITED(wait_status) ? WEXITSTATUS(wait_status) : -1;
}

static void assert_tool_ok(const ToolRun *r, const char *what)
{
    if (r->status != 0) {
        g_test_message("mapram %s exited %d:\n%s", what, r->status, r->err);
    }
    g_assert_cmpint(r->status, ==, 0);
}

static void assert_verify_ok(const char *file)
{
    g_auto(ToolRun) r = { 0 };

    run_mapram(&r, "verify", file, NULL);
    assert_tool_ok(&r, "verify");
}

/*
 * mapram save wrote its checksum table after QEMU's vmdesc (on by
 * default): the file ends with the table's trailer, and every page
 * matches.  QEMU then loads that very file through mapram load.
 */
static void assert_checksummed(const char *file)
{
    g_auto(ToolRun) r = { 0 };
    char tail[8];
    struct stat st;
    int fd = open(file, O_RDONLY | O_CLOEXEC);

    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(fstat(fd, &st), ==, 0);
    g_assert_cmpint(pread(fd, tail, 8, st.st_size - 8), ==, 8);
    close(fd);
    g_assert_cmpmem(tail, 8, "MRAMCEND", 8);
    run_mapram(&r, "verify", "--data", file, NULL);
    assert_tool_ok(&r, "verify --data");
    g_assert_true(g_str_has_suffix(r.out, " every page matches the checksum table)\n"));
}

/* An exec: URI running mapram with its stderr kept in the test's log. */
static char *exec_mapram(Ctx *c, const char *verb, const char *opts,
                         const char *file)
{
    return g_strdup_printf("exec:%s %s %s%s%s 2>>%s", cfg.mapram, verb,
                           opts ? opts : "", opts ? " " : "", file,
                           c->tool_log);
}

static guint64 file_allocated(const char *path)
{
    struct stat st;

    g_assert_cmpint(stat(path, &st), ==, 0);
    return (guint64)st.st_blocks * 512;
}

static guint64 file_size(const char *path)
{
    struct stat st;

    g_assert_cmpint(stat(path, &st), ==, 0);
    return st.st_size;
}

/* The configuration section of a mapped-ram file names the capability. */
static bool file_is_mapped_ram(const char *path)
{
    char head[256];
    ssize_t n;
    int fd = open(path, O_RDONLY);

    g_assert_cmpint(fd, >=, 0);
    n = read(fd, head, sizeof(head));
    close(fd);
    g_assert_cmpint(n, >=, 8);
    g_assert_cmpmem(head, 4, "QEVM", 4);
    return memmem(head, n, "configuration/capabilities", 26) &&
           memmem(head, n, "mapped-ram", 10);
}

/* Whether the file system of @dir takes O_DIRECT (QEMU's test probe). */
static bool probe_o_direct(const char *dir)
{
    g_autofree char *path = g_build_filename(dir, "probe-o-direct", NULL);
    void *buf = NULL;
    bool ok = false;
    int fd = open(path, O_CREAT | O_RDWR | O_TRUNC | O_DIRECT, 0600);

    if (fd < 0) {
        return false;
    }
    if (posix_memalign(&buf, 1 << 20, 1 << 20) == 0) {
        memset(buf, 0, 1 << 20);
        ok = pwrite(fd, buf, 1 << 20, 1 << 20) == 1 << 20;
        free(buf);
    }
    close(fd);
    g_unlink(path);
    return ok;
}

/* --- round-trip building blocks ---------------------------------------- */

/*
 * Boot a source, let the guest run its loop, migrate it live to @uri at
 * full speed, and dump its memory into @dump once completed.  With
 * @slow_syncs > 0 the migration first runs at SLOW_BANDWIDTH until that
 * many dirty-log syncs happened, so the stream carries several passes.
 * Returns query-migrate's ram.total (the bytes of all RAM blocks).
 */
static guint64 save_from_qemu(Ctx *c, const char *uri, const char *dump,
                              int slow_syncs)
{
    Peer *src = peer_start(c, "src", NULL);
    g_autofree char *state = NULL;
    guint64 total = 0;

    peer_wait_serial(src, 'B');
    if (slow_syncs > 0) {
        peer_set_speed(src, SLOW_BANDWIDTH, 300);
    } else {
        peer_set_speed(src, FAST_BANDWIDTH, FAST_DOWNTIME_MS);
    }
    peer_migrate(src, uri);
    if (slow_syncs > 0) {
        peer_wait_dirty_syncs(src, slow_syncs);
        peer_set_speed(src, FAST_BANDWIDTH, FAST_DOWNTIME_MS);
    }
    peer_wait_completed(c, src, &total);
    state = peer_settled_run_state(src);
    g_assert_cmpstr(state, ==, "postmigrate");
    if (dump) {
        peer_pmemsave(src, dump);
    }
    peer_quit(src);
    g_assert_cmpuint(total, >, GUEST_RAM_BYTES);
    return total;
}

/*
 * Start a fresh QEMU with "-incoming defer -S", load it from @uri, check
 * its memory equals @src_dump, then "cont" and see the guest run on.
 */
static void assert_restored(Ctx *c, Peer *dst, const char *src_dump);

static void restore_into_qemu(Ctx *c, const char *uri, const char *src_dump)
{
    Peer *dst = peer_start(c, "dst", "-incoming defer -S");

    peer_migrate_incoming(dst, uri);
    assert_restored(c, dst, src_dump);
}

/*
 * The incoming migration of @dst completes, its memory equals @src_dump,
 * and after "cont" its guest runs on; @dst is quit.
 */
static void assert_restored(Ctx *c, Peer *dst, const char *src_dump)
{
    g_autofree char *dst_dump = ctx_path(c, "dst.mem");
    g_autofree char *state = NULL;

    peer_wait_completed(c, dst, NULL);
    state = peer_run_state(dst);
    g_assert_cmpstr(state, ==, "paused");

    peer_pmemsave(dst, dst_dump);
    assert_same_memory(src_dump, dst_dump);
    g_unlink(dst_dump);

    qtest_qmp_assert_success(dst->qts, "{'execute': 'cont'}");
    peer_wait_serial(dst, 'B');
    g_free(state);
    state = peer_run_state(dst);
    g_assert_cmpstr(state, ==, "running");

    /* The resumed guest kept its pattern while moving past the dump. */
    qtest_qmp_assert_success(dst->qts, "{'execute': 'stop'}");
    peer_pmemsave(dst, dst_dump);
    assert_moved_on(src_dump, dst_dump);
    g_unlink(dst_dump);
    peer_quit(dst);
}

/* --- the tests ---------------------------------------------------------- */

/*
 * The harness itself, with no mapram involved: QEMU to "cat" and back.  If
 * this fails, the guest, QEMU or the harness is at fault, not mapram.
 */
static void test_exec_cat(void)
{
    Ctx *c = ctx_new("interop-cat", false);
    g_autofree char *file = NULL, *uri = NULL, *in_uri = NULL, *dump = NULL;

    if (!c) {
        return;
    }
    file = ctx_path(c, "stream");
    dump = ctx_path(c, "src.mem");
    uri = g_strdup_printf("exec:cat > %s", file);
    in_uri = g_strdup_printf("exec:cat %s", file);

    save_from_qemu(c, uri, dump, 0);
    g_assert_false(file_is_mapped_ram(file));
    restore_into_qemu(c, in_uri, dump);
    ctx_free(c);
}

/* Collect every string value of a JSON tree (names, wherever they sit). */
static void collect_strings(JsonNode *node, GHashTable *set)
{
    switch (JSON_NODE_TYPE(node)) {
    case JSON_NODE_OBJECT: {
        g_autoptr(GList) members =
            json_object_get_values(json_node_get_object(node));

        for (GList *l = members; l; l = l->next) {
            collect_strings(l->data, set);
        }
        break;
    }
    case JSON_NODE_ARRAY: {
        g_autoptr(GList) elems =
            json_array_get_elements(json_node_get_array(node));

        for (GList *l = elems; l; l = l->next) {
            collect_strings(l->data, set);
        }
        break;
    }
    case JSON_NODE_VALUE:
        if (json_node_get_value_type(node) == G_TYPE_STRING) {
            g_hash_table_add(set, g_strdup(json_node_get_string(node)));
        }
        break;
    default:
        break;
    }
}

/* Names QEMU 7.2's "pc" machine with -nodefaults always has. */
static const char *const qemu_ram_blocks[] = {
    "pc.ram", "pc.bios", "pc.rom", "/rom@etc/acpi/tables",
};
static const char *const qemu_devices[] = {
    "cpu", "apic", "serial", "0000:00:01.1/ide", "mc146818rtc",
    "globalstate",
};

/* (a) mapram info on a stream QEMU wrote itself. */
static void test_info(void)
{
    Ctx *c = ctx_new("interop-info", true);
    g_autofree char *file = NULL, *uri = NULL;
    g_autoptr(JsonParser) parser = json_parser_new();
    g_autoptr(GHashTable) names = NULL;
    g_autoptr(GError) err = NULL;
    g_auto(ToolRun) text = { 0 };
    g_auto(ToolRun) json = { 0 };

    if (!c) {
        return;
    }
    file = ctx_path(c, "stream");
    uri = g_strdup_printf("exec:cat > %s", file);
    save_from_qemu(c, uri, NULL, 0);

    run_mapram(&text, "info", file, NULL);
    assert_tool_ok(&text, "info");
    run_mapram(&json, "info", "--json", file, NULL);
    assert_tool_ok(&json, "info --json");

    if (!json_parser_load_from_data(parser, json.out, -1, &err)) {
        g_test_message("mapram info --json printed no JSON: %s",
                       err->message);
        g_assert_no_error(err);
    }
    names = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    collect_strings(json_parser_get_root(parser), names);

    for (size_t i = 0; i < G_N_ELEMENTS(qemu_ram_blocks); i++) {
        const char *n = qemu_ram_blocks[i];

        g_test_message("RAM block %s", n);
        g_assert_nonnull(strstr(text.out, n));
        g_assert_true(g_hash_table_contains(names, n));
    }
    for (size_t i = 0; i < G_N_ELEMENTS(qemu_devices); i++) {
        const char *n = qemu_devices[i];

        g_test_message("device %s", n);
        g_assert_nonnull(strstr(text.out, n));
        g_assert_true(g_hash_table_contains(names, n));
    }
    assert_verify_ok(file);
    ctx_free(c);
}

/* (b), (c): QEMU → mapram save → mapped-ram file → mapram load → QEMU. */
static void save_load_round_trip(const char *prefix, const char *opts)
{
    Ctx *c = ctx_new(prefix, true);
    g_autofree char *file = NULL, *dump = NULL, *out = NULL, *in = NULL;

    if (!c) {
        return;
    }
    file = ctx_path(c, "mapped-ram.img");
    dump = ctx_path(c, "src.mem");
    out = exec_mapram(c, "save", opts, file);
    in = exec_mapram(c, "load", opts, file);

    save_from_qemu(c, out, dump, 0);
    assert_tool_quiet(c);
    g_assert_true(file_is_mapped_ram(file));
    assert_verify_ok(file);
    assert_checksummed(file);
    restore_into_qemu(c, in, dump);
    assert_tool_quiet(c);
    ctx_free(c);
}

static void test_save_load(void)
{
    save_load_round_trip("interop-rt", NULL);
}

static void test_save_load_channels_dio(void)
{
    g_autofree char *probe_dir = qtest_mkdtemp("interop-probe");
    bool dio = probe_o_direct(probe_dir);

    qtest_rmtree(probe_dir);
    save_load_round_trip("interop-dio",
                         dio ? "--channels 4 --direct-io" : "--channels 4");
    if (!dio && cfg.qemu) {
        g_test_skip("no O_DIRECT in the temp dir: ran --channels 4 only");
    }
}

/*
 * (d) A live save of a guest that re-dirties ~100 MB per pass, over
 * several passes: the mapped-ram file stays within guest RAM + metadata,
 * while the stream of the same migration through cat grows with every
 * pass.  The mapped-ram file must also still restore exactly.
 */
static void test_live_bounded(void)
{
    Ctx *c = ctx_new("interop-bound", true);
    g_autofree char *mr = NULL, *stream = NULL, *dump = NULL;
    g_autofree char *mr_uri = NULL, *cat_uri = NULL, *in_uri = NULL;
    guint64 total, bound, mr_alloc, cat_size;
    const int syncs = 4;      /* setup sync + 3 full passes at slow speed */

    if (!c) {
        return;
    }
    mr = ctx_path(c, "mapped-ram.img");
    stream = ctx_path(c, "stream");
    dump = ctx_path(c, "src.mem");
    mr_uri = exec_mapram(c, "save", NULL, mr);
    in_uri = exec_mapram(c, "load", NULL, mr);
    cat_uri = g_strdup_printf("exec:cat > %s", stream);

    total = save_from_qemu(c, mr_uri, dump, syncs);
    bound = total + MAPPED_RAM_SLACK;
    mr_alloc = file_allocated(mr);
    g_test_message("mapped-ram: size %" G_GUINT64_FORMAT ", allocated %"
                   G_GUINT64_FORMAT ", bound %" G_GUINT64_FORMAT,
                   file_size(mr), mr_alloc, bound);
    g_assert_cmpuint(mr_alloc, <=, bound);
    assert_verify_ok(mr);
    restore_into_qemu(c, in_uri, dump);
    assert_tool_quiet(c);

    save_from_qemu(c, cat_uri, NULL, syncs);
    cat_size = file_size(stream);
    g_test_message("exec:cat stream: %" G_GUINT64_FORMAT " bytes",
                   cat_size);
    g_assert_cmpuint(cat_size, >, bound);
    g_assert_cmpuint(cat_size, >, mr_alloc);
    ctx_free(c);
}

/* (e) stream → mapped-ram → stream with convert; QEMU loads the result. */
static void test_convert(void)
{
    Ctx *c = ctx_new("interop-conv", true);
    g_autofree char *stream = NULL, *mr = NULL, *back = NULL, *dump = NULL;
    g_autofree char *uri = NULL, *in_uri = NULL, *mr_uri = NULL;
    g_auto(ToolRun) to_mr = { 0 };
    g_auto(ToolRun) to_stream = { 0 };

    if (!c) {
        return;
    }
    stream = ctx_path(c, "stream");
    mr = ctx_path(c, "mapped-ram.img");
    back = ctx_path(c, "stream-again");
    dump = ctx_path(c, "src.mem");
    uri = g_strdup_printf("exec:cat > %s", stream);
    in_uri = g_strdup_printf("exec:cat %s", back);
    mr_uri = exec_mapram(c, "load", NULL, mr);

    save_from_qemu(c, uri, dump, 0);

    run_mapram(&to_mr, "convert", stream, mr, NULL);
    assert_tool_ok(&to_mr, "convert (to mapped-ram)");
    g_assert_true(file_is_mapped_ram(mr));
    assert_verify_ok(mr);

    run_mapram(&to_stream, "convert", mr, back, NULL);
    assert_tool_ok(&to_stream, "convert (to stream)");
    g_assert_false(file_is_mapped_ram(back));
    assert_verify_ok(back);
    g_unlink(stream);

    /* QEMU 7.2 reads the converted stream by itself... */
    restore_into_qemu(c, in_uri, dump);
    /* ...and the intermediate mapped-ram file through mapram load. */
    restore_into_qemu(c, mr_uri, dump);
    assert_tool_quiet(c);
    ctx_free(c);
}

/*
 * A libvirt save image around QEMU 7.2's stream, built here the way
 * libvirt writes one (docs/file-format.md section 5): header with the
 * partial magic, XML and cookie with their NULs, 64 KiB of zeros, QEMU's
 * data appended by "cat >>" (what libvirt once ran), then the final magic.
 * mapram verifies it, converts it to sparse and back to gzip, and QEMU 7.2
 * restores both through exec:mapram load.
 */
static void write_libvirt_header(const char *path, const char *magic)
{
    static const char xml[] = "<domain type='qemu'><name>interop</name>"
        "<uuid>c7a5fdbd-cdaf-9455-926a-d65c16db1809</uuid><memory unit='MiB'>64</memory>"
        "<os><type arch='x86_64' machine='pc-i440fx-7.2'>hvm</type></os></domain>\n";
    static const char cookie[] = "<qemuDomainSaveCookie/>\n";
    guint32 data_len = sizeof(xml) + sizeof(cookie) + 64 * 1024;
    guint32 fields[19] = { GUINT32_TO_LE(2), GUINT32_TO_LE(data_len), GUINT32_TO_LE(1),
                           GUINT32_TO_LE(0), GUINT32_TO_LE(sizeof(xml)) };
    g_autofree guint8 *buf = g_malloc0(92 + data_len);
    memcpy(buf, magic, 16);
    memcpy(buf + 16, fields, sizeof(fields));
    memcpy(buf + 92, xml, sizeof(xml));
    memcpy(buf + 92 + sizeof(xml), cookie, sizeof(cookie));
    int fd = open(path, O_WRONLY | O_CREAT, 0600);
    g_assert_cmpint(fd, >=, 0);
    /* the first time the whole region; then only the header, as libvirt's last step */
    size_t len = !strcmp(magic, "LibvirtQemudPart") ? 92 + data_len : 92;
    g_assert_cmpint(pwrite(fd, buf, len, 0), ==, (ssize_t)len);
    close(fd);
}

/*
 * A running ab guest saved by QEMU into @img in libvirt's layout (the
 * header written first as an interrupted save, then completed, as libvirt
 * does), its memory in @dump; with @sparse, also converted to a sparse
 * image there.
 */
static void save_libvirt_image(Ctx *c, const char *img, const char *sparse, const char *dump)
{
    g_autofree char *uri = g_strdup_printf("exec:cat >> %s", img);

    write_libvirt_header(img, "LibvirtQemudPart");
    save_from_qemu(c, uri, dump, 0);
    write_libvirt_header(img, "LibvirtQemudSave");
    if (sparse) {
        g_auto(ToolRun) conv = { 0 };
        run_mapram(&conv, "convert", img, sparse, NULL);
        assert_tool_ok(&conv, "convert (to sparse)");
    }
}

static void test_libvirt_image(void)
{
    Ctx *c = ctx_new("interop-libvirt", true);
    g_autofree char *img = NULL, *sparse = NULL, *gz = NULL, *dump = NULL;
    g_autofree char *sparse_uri = NULL, *gz_uri = NULL;
    g_auto(ToolRun) to_sparse = { 0 };
    g_auto(ToolRun) to_gz = { 0 };
    g_auto(ToolRun) info = { 0 };

    if (!c) {
        return;
    }
    img = ctx_path(c, "web.save");
    sparse = ctx_path(c, "web-sparse.save");
    gz = ctx_path(c, "web-gzip.save");
    dump = ctx_path(c, "src.mem");
    sparse_uri = exec_mapram(c, "load", NULL, sparse);
    gz_uri = exec_mapram(c, "load", NULL, gz);

    save_libvirt_image(c, img, NULL, dump);
    assert_verify_ok(img);
    run_mapram(&info, "info", img, NULL);
    assert_tool_ok(&info, "info");
    g_assert_nonnull(strstr(info.out, "libvirt domain: interop, uuid "
                            "c7a5fdbd-cdaf-9455-926a-d65c16db1809, memory 67108864 bytes, "
                            "machine pc-i440fx-7.2\n"));

    run_mapram(&to_sparse, "convert", img, sparse, NULL);
    assert_tool_ok(&to_sparse, "convert (to sparse)");
    assert_verify_ok(sparse);
    run_mapram(&to_gz, "convert", "--format", "gzip", sparse, gz, NULL);
    assert_tool_ok(&to_gz, "convert (to gzip)");
    assert_verify_ok(gz);
    g_unlink(img);

    restore_into_qemu(c, sparse_uri, dump);
    restore_into_qemu(c, gz_uri, dump);
    assert_tool_quiet(c);
    ctx_free(c);
}

/*
 * (f) The stream is cut off inside the RAM data: mapram save must fail
 * with one line naming the byte offset, leave no file that verify passes,
 * and QEMU must see the migration fail and keep its guest running.
 */
static void test_truncated(void)
{
    const guint64 cut = (8ull << 20) + 2049;
    Ctx *c = ctx_new("interop-cut", true);
    g_autofree char *file = NULL, *err_path = NULL, *rc_path = NULL;
    g_autofree char *uri = NULL, *err_text = NULL, *rc_text = NULL;
    g_autofree char *want = NULL;
    guint64 at = 0, section_at = 0;
    char type[5] = "";
    g_autofree char *state = NULL;
    g_autoptr(JsonObject) r = NULL;
    gint64 deadline;
    Peer *src;

    if (!c) {
        return;
    }
    file = ctx_path(c, "mapped-ram.img");
    err_path = ctx_path(c, "save.err");
    rc_path = ctx_path(c, "save.rc");
    uri = g_strdup_printf("exec:head -c %" G_GUINT64_FORMAT " | "
                          "{ %s save %s 2>%s; echo $? > %s.tmp; "
                          "mv %s.tmp %s; }",
                          cut, cfg.mapram, file, err_path, rc_path,
                          rc_path, rc_path);

    src = peer_start(c, "src", NULL);
    peer_wait_serial(src, 'B');
    peer_set_speed(src, FAST_BANDWIDTH, FAST_DOWNTIME_MS);
    peer_migrate(src, uri);
    r = peer_wait_migration(src);
    g_test_message("QEMU: status %s, error-desc %s",
                   qtest_json_get_str(r, "status"),
                   qtest_json_get_str(r, "error-desc") ?: "(none)");
    g_assert_cmpstr(qtest_json_get_str(r, "status"), ==, "failed");

    deadline = g_get_monotonic_time() +
               (gint64)qtest_timeout_s() * G_USEC_PER_SEC;
    while (!g_file_get_contents(rc_path, &rc_text, NULL, NULL)) {
        g_assert_true(g_get_monotonic_time() < deadline);
        g_usleep(50 * 1000);
    }
    g_assert_true(g_file_get_contents(err_path, &err_text, NULL, NULL));
    g_test_message("mapram save exit %s stderr: %s", g_strstrip(rc_text),
                   err_text);
    g_assert_cmpint(atoi(rc_text), !=, 0);

    /*
     * One line, naming the section being read (QEMU 7.2 sends ram as
     * section 2) and where it starts, and the offset where the stream ran
     * out: at the cut or at the start of the record it cut.  Both depend
     * on how many of the guest's pages were zero, so they are bounded,
     * not fixed; the words around them are exact.
     */
    if (sscanf(err_text, "mapram save: %4[A-Z] section 'ram' (id 2) at offset %"
               G_GUINT64_FORMAT ": Unexpected end of stream at offset %"
               G_GUINT64_FORMAT, type, &section_at, &at) != 3 ||
        (strcmp(type, "PART") && strcmp(type, "END"))) {
        strcpy(type, "PART");
        section_at = at = 0;
    }
    /* a PART while QEMU iterates, its END once it has converged */
    want = g_strdup_printf("mapram save: %s section 'ram' (id 2) at offset %"
                           G_GUINT64_FORMAT ": Unexpected end of stream at offset %"
                           G_GUINT64_FORMAT "\n", type, section_at, at);
    g_assert_cmpstr(err_text, ==, want);
    g_assert_cmpuint(at, >=, cut - 2 * (TARGET_PAGE + 256));
    g_assert_cmpuint(at, <=, cut);
    g_assert_cmpuint(section_at, <, at);

    /* The save created its file: failing, it removed it again. */
    g_assert_false(g_file_test(file, G_FILE_TEST_EXISTS));

    /* The source guest goes on as before. */
    state = peer_settled_run_state(src);
    g_assert_cmpstr(state, ==, "running");
    peer_quit(src);
    ctx_free(c);
}

/* @s with every run of digits replaced by "N". */
static char *numbers_out(const char *s)
{
    GString *out = g_string_new(NULL);

    for (; *s; s++) {
        if (g_ascii_isdigit(*s)) {
            g_string_append_c(out, 'N');
            while (g_ascii_isdigit(s[1])) {
                s++;
            }
        } else {
            g_string_append_c(out, *s);
        }
    }
    return g_string_free(out, FALSE);
}

/*
 * One line: @prefix, then the stream walker's "<part> at offset N: "
 * and what is missing there (the reasons a file cut anywhere can give),
 * or only "Unexpected end of stream at offset N" when the stream ends
 * between two records.
 */
static void assert_cut_error(const char *err, const char *prefix)
{
    static const char pat[] =
        "^(Unexpected end of stream at offset N|"
        "(Stream header|Configuration|Command|Record|VM description|"
        "(START|PART|END|FULL) section '[^']+' \\(id N\\)) at offset N: "
        "(Unexpected end of stream at offset N|the stream is empty \\(no QEVM header\\)|"
        "mapped-ram: bitmap of ramblock [^ ]+ \\[[^)]*\\) lies beyond the end of the "
        "file \\([^)]*\\)))\n$";
    g_autoptr(GRegex) re = g_regex_new(pat, 0, 0, NULL);
    g_autofree char *shape = NULL;

    g_assert_nonnull(re);
    if (!g_str_has_prefix(err, prefix)) {
        g_test_message("'%s' does not start with '%s'", err, prefix);
        g_assert_not_reached();
    }
    shape = numbers_out(err + strlen(prefix));
    if (!g_regex_match(re, shape, 0, NULL)) {
        g_test_message("'%s' does not match '%s'", shape, pat);
        g_assert_not_reached();
    }
}

/*
 * (g) mapram save, fed by QEMU 7.2, killed (SIGKILL) at random instants of
 * a live save that has not converged yet: verify never says OK, mapram
 * load refuses the file naming where it ends, and QEMU's guest runs on.
 * MAPRAM_KILL_COUNT kills (default 2), MAPRAM_KILL_SEED the seed (printed).
 */
static void test_killed_save(void)
{
    Ctx *c = ctx_new("interop-kill", true);
    const char *n_env = g_getenv("MAPRAM_KILL_COUNT");
    const char *seed_env = g_getenv("MAPRAM_KILL_SEED");
    unsigned kills = n_env ? (unsigned)g_ascii_strtoull(n_env, NULL, 10) : 2;
    guint32 seed = seed_env ? (guint32)g_ascii_strtoull(seed_env, NULL, 10) : g_random_int();
    g_autofree char *file = NULL, *pidfile = NULL, *uri = NULL;
    g_autofree char *verify_prefix = NULL;
    GRand *rand;

    if (!c) {
        return;
    }
    g_printerr("/interop/killed-save: %u kills, MAPRAM_KILL_SEED=%u\n", kills, seed);
    rand = g_rand_new_with_seed(seed);
    file = ctx_path(c, "mapped-ram.img");
    pidfile = ctx_path(c, "save.pid");
    uri = g_strdup_printf("exec:echo $$ > %s; exec %s save --quiet %s 2>/dev/null",
                          pidfile, cfg.mapram, file);
    verify_prefix = g_strdup_printf("mapram verify: %s: ", file);
    for (unsigned i = 0; i < kills; i++) {
        Peer *src = peer_start(c, "src", NULL);
        g_autoptr(JsonObject) r = NULL;
        g_autofree char *pid = NULL;
        g_autofree char *state = NULL;
        g_auto(ToolRun) v = { 0 };
        g_auto(ToolRun) l = { 0 };
        gint64 deadline;

        g_unlink(pidfile);
        g_unlink(file);
        peer_wait_serial(src, 'B');
        /* slow, and never fits the downtime: the save is always under way */
        peer_set_speed(src, SLOW_BANDWIDTH, 300);
        peer_migrate(src, uri);
        deadline = g_get_monotonic_time() + (gint64)qtest_timeout_s() * G_USEC_PER_SEC;
        while (!g_file_get_contents(pidfile, &pid, NULL, NULL) || !strchr(pid, '\n')) {
            g_clear_pointer(&pid, g_free);
            g_assert_true(g_get_monotonic_time() < deadline);
            g_usleep(1000);
        }
        g_usleep((gulong)g_rand_double_range(rand, 0, 3.0 * G_USEC_PER_SEC));
        g_assert_cmpint(kill((pid_t)g_ascii_strtoll(pid, NULL, 10), SIGKILL), ==, 0);

        r = peer_wait_migration(src);
        g_assert_cmpstr(qtest_json_get_str(r, "status"), ==, "failed");
        state = peer_settled_run_state(src);
        g_assert_cmpstr(state, ==, "running");
        peer_quit(src);

        run_mapram(&v, "verify", file, NULL);
        g_test_message("kill %u: verify: %s", i, v.err);
        g_assert_cmpint(v.status, ==, 1);
        run_mapram(&l, "load", "--quiet", file, NULL);
        g_test_message("kill %u: load: %s", i, l.err);
        g_assert_cmpint(l.status, ==, 1);
        if (!g_file_test(file, G_FILE_TEST_EXISTS)) {
            /* killed before it created the file: nothing to accept either */
            g_autofree char *missing = g_strdup_printf(
                "Could not open '%s': No such file or directory\n", file);
            g_autofree char *v_want = g_strconcat("mapram verify: ", missing, NULL);
            g_autofree char *l_want = g_strconcat("mapram load: ", missing, NULL);

            g_assert_cmpstr(v.err, ==, v_want);
            g_assert_cmpstr(l.err, ==, l_want);
            continue;
        }
        assert_cut_error(v.err, verify_prefix);
        g_autofree char *load_prefix = g_strdup_printf("mapram load: %s: ", file);
        assert_cut_error(l.err, load_prefix);
    }
    g_rand_free(rand);
    ctx_free(c);
}

/* --- mapram save --listen: QEMU's multifd over a socket (issue 12, point 4) */

/* "mapram save --listen unix:SOCK OPTS FILE" in the background; its pid. */
static GPid spawn_save_listen(Ctx *c, const char *sock, const char *opts, const char *file)
{
    g_autofree char *cmd = g_strdup_printf("exec %s save --listen unix:%s --quiet %s %s 2>>%s",
                                           cfg.mapram, sock, opts, file, c->tool_log);
    const char *argv[] = { "/bin/sh", "-c", cmd, NULL };
    GError *err = NULL;
    GPid pid;

    g_assert_true(g_spawn_async(NULL, (char **)argv, NULL, G_SPAWN_DO_NOT_REAP_CHILD, NULL, NULL,
                                &pid, &err));
    g_assert_no_error(err);
    /* listening once the socket exists */
    for (int i = 0; i < 200 && !g_file_test(sock, G_FILE_TEST_EXISTS); i++) {
        g_usleep(20 * 1000);
    }
    g_assert_true(g_file_test(sock, G_FILE_TEST_EXISTS));
    return pid;
}

/* Bounded wait for the tool; its exit status. */
static int wait_tool(GPid pid)
{
    int status = -1;

    for (int i = 0; i < qtest_timeout_s() * 20; i++) {
        if (waitpid(pid, &status, WNOHANG) == pid) {
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        }
        g_usleep(50 * 1000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    g_test_message("mapram save --listen did not end: killed");
    g_assert_not_reached();
}

/* The source: multifd with @channels channels and @compression. */
static Peer *multifd_source(Ctx *c, int channels, const char *compression)
{
    Peer *src = peer_start(c, "src", NULL);

    peer_wait_serial(src, 'B');
    qtest_qmp_assert_success(src->qts, "{'execute': 'migrate-set-capabilities', 'arguments': "
                             "{'capabilities': [{'capability': 'multifd', 'state': true}]}}");
    qtest_qmp_assert_success(src->qts, "{'execute': 'migrate-set-parameters', 'arguments': "
                             "{'multifd-channels': %d, 'multifd-compression': '%s'}}",
                             channels, compression);
    return src;
}

/*
 * QEMU migrates live with multifd to "mapram save --listen", which writes
 * a mapped-ram file with one page-I/O channel per multifd channel; the
 * file verifies, and restores into a fresh QEMU byte for byte.
 */
static void save_listen_round_trip(const char *prefix, int channels, const char *compression)
{
    Ctx *c = ctx_new(prefix, true);
    g_autofree char *file = NULL, *dump = NULL, *sock = NULL, *uri = NULL, *in = NULL;
    g_autofree char *opts = NULL;

    if (!c) {
        return;
    }
    file = ctx_path(c, "mapped-ram.img");
    dump = ctx_path(c, "src.mem");
    sock = ctx_path(c, "mig.sock");
    uri = g_strdup_printf("unix:%s", sock);
    opts = g_strdup_printf("--channels %d --compression %s", channels, compression);
    in = exec_mapram(c, "load", NULL, file);

    GPid pid = spawn_save_listen(c, sock, opts, file);
    Peer *src = multifd_source(c, channels, compression);
    peer_set_speed(src, SLOW_BANDWIDTH, 300);
    peer_migrate(src, uri);
    peer_wait_dirty_syncs(src, 2);              /* a pass live, at least */
    peer_set_speed(src, FAST_BANDWIDTH, FAST_DOWNTIME_MS);
    peer_wait_completed(c, src, NULL);
    peer_pmemsave(src, dump);
    peer_quit(src);
    g_assert_cmpint(wait_tool(pid), ==, 0);
    assert_tool_quiet(c);
    g_assert_true(file_is_mapped_ram(file));
    assert_verify_ok(file);
    assert_checksummed(file);
    restore_into_qemu(c, in, dump);
    ctx_free(c);
}

static void test_save_listen_none(void)
{
    save_listen_round_trip("interop-listen", 4, "none");
}

static void test_save_listen_zstd(void)
{
    save_listen_round_trip("interop-listen-zstd", 4, "zstd");
}

static void test_save_listen_zlib(void)
{
    save_listen_round_trip("interop-listen-zlib", 2, "zlib");
}

/*
 * A mismatch with the source fails the tool with a clear error (want: a
 * regular expression of its one line), never a hang.
 */
static void save_listen_mismatch(const char *prefix, const char *opts, int channels,
                                 const char *compression, const char *want)
{
    Ctx *c = ctx_new(prefix, true);
    g_autofree char *file = NULL, *sock = NULL, *uri = NULL, *log = NULL;

    if (!c) {
        return;
    }
    file = ctx_path(c, "mapped-ram.img");
    sock = ctx_path(c, "mig.sock");
    uri = g_strdup_printf("unix:%s", sock);
    GPid pid = spawn_save_listen(c, sock, opts, file);
    Peer *src = multifd_source(c, channels, compression);
    peer_migrate(src, uri);
    g_assert_cmpint(wait_tool(pid), ==, 1);
    g_assert_true(g_file_get_contents(c->tool_log, &log, NULL, NULL));
    /* which channel shows it first is a race: want's "#" stands for its digit */
    if (!g_regex_match_simple(want, log, G_REGEX_ANCHORED | G_REGEX_DOLLAR_ENDONLY, 0)) {
        g_test_message("tool said '%s', expected '%s'", log, want);
        g_assert_not_reached();
    }
    g_autoptr(JsonObject) r = peer_wait_migration(src);
    g_assert_cmpstr(qtest_json_get_str(r, "status"), ==, "failed");
    g_unlink(c->tool_log);
    peer_quit(src);
    ctx_free(c);
}

static void test_save_listen_channels_mismatch(void)
{
    save_listen_mismatch("interop-listen-chan", "--channels 2", 4, "none",
                         "mapram save: multifd: received channel id [23] is greater than "
                         "number of channels 2\n$");
}

static void test_save_listen_compression_mismatch(void)
{
    save_listen_mismatch("interop-listen-comp", "--channels 2", 2, "zstd",
                         "mapram save: multifd channel [01]: flags received 4 flags expected 0\n$");
}

/* --- virsh save / restore (issue #13, point 5) ------------------------- */

/* "virsh -c qemu:///system ARGS..." to completion; its stdout (g_free), or NULL on failure. */
static char * G_GNUC_NULL_TERMINATED virsh(char **err_out, const char *arg0, ...)
{
    g_autoptr(GPtrArray) argv = g_ptr_array_new();
    g_autoptr(GError) err = NULL;
    g_autofree char *out = NULL, *errs = NULL;
    int wait_status = 0;
    va_list ap;

    g_ptr_array_add(argv, (char *)"virsh");
    g_ptr_array_add(argv, (char *)"-c");
    g_ptr_array_add(argv, (char *)"qemu:///system");
    va_start(ap, arg0);
    for (const char *a = arg0; a; a = va_arg(ap, const char *)) {
        g_ptr_array_add(argv, (char *)a);
    }
    va_end(ap);
    g_ptr_array_add(argv, NULL);
    if (!g_spawn_sync(NULL, (char **)argv->pdata, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL,
                      &out, &errs, &wait_status, &err)) {
        g_test_message("cannot run virsh: %s", err->message);
        g_assert_no_error(err);
    }
    if (err_out) {
        *err_out = g_strdup(errs);
    }
    if (!WIFEXITED(wait_status) || WEXITSTATUS(wait_status) != 0) {
        if (!err_out) {
            g_test_message("virsh %s failed: %s", arg0, errs);
        }
        return NULL;
    }
    return g_steal_pointer(&out);
}

/* "virsh VERB ARG", which must succeed. */
static void virsh_ok(const char *verb, const char *arg)
{
    g_autofree char *out = virsh(NULL, verb, arg, NULL);

    g_assert_nonnull(out);
}

/* Start a daemon in the background (it forks itself with -d). */
static void start_daemon(const char *prog)
{
    g_autoptr(GError) err = NULL;
    const char *argv[] = { prog, "-d", NULL };
    int status = 0;

    if (!g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_SEARCH_PATH | G_SPAWN_STDOUT_TO_DEV_NULL |
                      G_SPAWN_STDERR_TO_DEV_NULL, NULL, NULL, NULL, NULL, &status, &err)) {
        g_test_message("cannot start %s: %s", prog, err->message);
    }
}

/*
 * Debian's libvirt daemon (libvirtd with virtlogd) answering on
 * qemu:///system, started here when it is installed but not running.
 * Returns the reason to skip, or NULL.
 */
static const char *libvirt_ready(void)
{
    if (geteuid() != 0) {
        return "virsh save/restore needs root (it starts libvirt's daemon)";
    }
    g_autofree char *virsh_path = g_find_program_in_path("virsh");
    g_autofree char *libvirtd_path = g_find_program_in_path("libvirtd");
    if (!virsh_path || !libvirtd_path) {
        return "Debian's libvirt daemon is not installed (apt-get install "
               "libvirt-daemon-system libvirt-clients); /interop/libvirt-image covers "
               "the image layout with QEMU 7.2 instead";
    }
    g_autofree char *err = NULL;
    g_autofree char *v = virsh(&err, "version", NULL);
    if (!v) {
        start_daemon("virtlogd");
        start_daemon("libvirtd");
        for (int i = 0; i < 100 && !v; i++) {
            g_usleep(100 * 1000);
            g_free(err);
            v = virsh(&err, "version", NULL);
        }
    }
    if (!v) {
        return "libvirt's daemon does not answer on qemu:///system";
    }
    /* libvirt's QEMU driver logs through virtlogd */
    if (!g_file_test("/run/libvirt/virtlogd-sock", G_FILE_TEST_EXISTS)) {
        start_daemon("virtlogd");
    }
    return NULL;
}

/* pmemsave of the domain's RAM through libvirt's QMP pass-through. */
static void domain_pmemsave(const char *name, const char *file)
{
    g_autofree char *jfile = qtest_json_str(file);
    g_autofree char *cmd = g_strdup_printf(
        "{\"execute\": \"pmemsave\", \"arguments\": {\"val\": 0, \"size\": %"
        G_GUINT64_FORMAT ", \"filename\": %s}}", GUEST_RAM_BYTES, jfile);
    g_autofree char *out = virsh(NULL, "qemu-monitor-command", name, cmd, NULL);

    g_assert_nonnull(out);
    g_assert_nonnull(strstr(out, "\"return\":{}"));
}

static void virsh_restore_check(const char *name, const char *img, const char *src_dump,
                                const char *dst_dump)
{
    g_autofree char *out = virsh(NULL, "restore", img, NULL);

    g_assert_nonnull(out);
    g_autofree char *st = virsh(NULL, "domstate", name, NULL);
    g_assert_nonnull(st);
    g_assert_cmpstr(g_strstrip(st), ==, "paused");    /* saved paused: restored paused */
    domain_pmemsave(name, dst_dump);
    assert_same_memory(src_dump, dst_dump);
}

/*
 * A QEMU 7.2 TCG domain of libvirt's saved with `virsh save`, converted to
 * a sparse image and back (and to gzip), each restored with `virsh
 * restore`: the guest's memory byte for byte as saved, and it runs on.
 * libvirt 9.0 (Debian 12) predates sparse images: its refusal of one is
 * checked too.
 */
static void test_libvirt_virsh(void)
{
    const char *why = libvirt_ready();
    if (why) {
        g_test_skip(why);
        return;
    }
    Ctx *c = ctx_new("interop-virsh", true);
    if (!c) {
        return;
    }
    g_autofree char *name = g_strdup_printf("mapram-interop-%d", (int)getpid());
    g_autofree char *serial = ctx_path(c, "serial.txt");
    g_autofree char *xml_path = ctx_path(c, "domain.xml");
    g_autofree char *saved = ctx_path(c, "virsh.save");
    g_autofree char *sparse = ctx_path(c, "sparse.save");
    g_autofree char *back = ctx_path(c, "back.save");
    g_autofree char *gz = ctx_path(c, "gzip.save");
    g_autofree char *src_dump = ctx_path(c, "src.mem");
    g_autofree char *dst_dump = ctx_path(c, "dst.mem");
    g_autofree char *later_dump = ctx_path(c, "later.mem");
    g_autofree char *xml = g_strdup_printf(
        "<domain type='qemu'><name>%s</name><memory unit='MiB'>%u</memory><vcpu>1</vcpu>"
        "<os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>"
        "<cpu mode='custom' match='exact' check='none'><model fallback='forbid'>qemu64</model>"
        "</cpu><clock offset='utc'><timer name='kvmclock' present='no'/></clock>"
        "<devices><emulator>%s</emulator>"
        "<disk type='file' device='disk'><driver name='qemu' type='raw'/>"
        "<source file='%s'/><target dev='hda' bus='ide'/></disk>"
        "<controller type='usb' model='none'/>"
        "<serial type='file'><source path='%s'/></serial>"
        "<memballoon model='none'/></devices></domain>\n",
        name, GUEST_RAM_MIB, cfg.qemu, c->disk, serial);
    g_auto(ToolRun) info = { 0 };
    g_auto(ToolRun) run = { 0 };
    g_autofree char *err = NULL;

    /* QEMU runs as libvirt-qemu: it must reach the disk, the serial file and the dumps */
    g_assert_cmpint(chmod(c->dir, 0777), ==, 0);
    g_assert_cmpint(chmod(c->disk, 0666), ==, 0);
    g_assert_true(g_file_set_contents(xml_path, xml, -1, NULL));
    virsh_ok("create", xml_path);

    /* the guest runs: its serial line fills with 'B's */
    gint64 deadline = g_get_monotonic_time() + 60 * G_USEC_PER_SEC;
    for (;;) {
        g_autofree char *text = NULL;
        if (g_file_get_contents(serial, &text, NULL, NULL) && strstr(text, "BB")) {
            break;
        }
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        g_usleep(50 * 1000);
    }
    virsh_ok("suspend", name);
    domain_pmemsave(name, src_dump);
    g_autofree char *saved_out = virsh(NULL, "save", name, saved, NULL);
    g_assert_nonnull(saved_out);

    /* libvirt's own image, as mapram reads it */
    run_mapram(&info, "info", saved, NULL);
    assert_tool_ok(&info, "info");
    g_autofree char *want = g_strdup_printf("libvirt domain: %s, uuid ", name);
    g_assert_nonnull(strstr(info.out, want));
    g_assert_nonnull(strstr(info.out, "format raw, complete"));
    g_assert_nonnull(strstr(info.out, "machine pc-i440fx-7.2\n"));
    assert_verify_ok(saved);

    run_mapram(&run, "convert", saved, sparse, NULL);
    assert_tool_ok(&run, "convert (to sparse)");
    assert_verify_ok(sparse);
    tool_run_clear(&run);
    run_mapram(&run, "convert", sparse, back, NULL);
    assert_tool_ok(&run, "convert (sparse to raw)");
    tool_run_clear(&run);
    run_mapram(&run, "convert", "--format", "gzip", sparse, gz, NULL);
    assert_tool_ok(&run, "convert (sparse to gzip)");

    /* libvirt 9.0 knows no sparse image: it says so and starts nothing */
    g_autofree char *refused = virsh(&err, "restore", sparse, NULL);
    if (!refused) {
        g_assert_nonnull(strstr(err, "Invalid compressed save format 6"));
    } else {
        /* a libvirt that knows sparse images restores it like the others */
        virsh_ok("destroy", name);
    }

    virsh_restore_check(name, back, src_dump, dst_dump);
    virsh_ok("resume", name);
    g_usleep(500 * 1000);
    virsh_ok("suspend", name);
    domain_pmemsave(name, later_dump);
    assert_moved_on(src_dump, later_dump);
    virsh_ok("destroy", name);

    virsh_restore_check(name, gz, src_dump, dst_dump);
    virsh_ok("destroy", name);
    ctx_free(c);
}


/* --- mapram load --connect: a mapped-ram file into QEMU's multifd (issue 12, point 4) */

/* A TCP port nobody listens on at the moment (the kernel's pick). */
static int free_tcp_port(void)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(bind(fd, (struct sockaddr *)&a, sizeof(a)), ==, 0);
    g_assert_cmpint(getsockname(fd, (struct sockaddr *)&a, &len), ==, 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* A fresh QEMU (@extra arguments too) waiting on @uri with multifd on, @channels channels, @compression. */
static Peer *multifd_destination_args(Ctx *c, const char *uri, int channels,
                                      const char *compression, const char *extra)
{
    g_autofree char *args = g_strdup_printf("-incoming defer -S %s", extra);
    Peer *dst = peer_start(c, "dst", args);

    qtest_qmp_assert_success(dst->qts, "{'execute': 'migrate-set-capabilities', 'arguments': "
                             "{'capabilities': [{'capability': 'multifd', 'state': true}]}}");
    qtest_qmp_assert_success(dst->qts, "{'execute': 'migrate-set-parameters', 'arguments': "
                             "{'multifd-channels': %d, 'multifd-compression': '%s'}}",
                             channels, compression);
    peer_migrate_incoming(dst, uri);
    return dst;
}

static Peer *multifd_destination(Ctx *c, const char *uri, int channels, const char *compression)
{
    return multifd_destination_args(c, uri, channels, compression, "");
}

/* A running ab guest saved by QEMU through "exec:mapram save" into @file; its memory in @dump. */
static void save_mapped_from_qemu(Ctx *c, const char *file, const char *dump)
{
    g_autofree char *uri = exec_mapram(c, "save", NULL, file);

    save_from_qemu(c, uri, dump, 0);
    assert_tool_quiet(c);
    g_assert_true(file_is_mapped_ram(file));
}

/* "mapram load --connect @uri --quiet @opts @file", to completion. */
static void run_connect(ToolRun *r, const char *uri, const char *opts, const char *file)
{
    g_auto(GStrv) extra = g_strsplit(opts, " ", -1);
    g_autoptr(GPtrArray) argv = g_ptr_array_new();
    g_autoptr(GError) err = NULL;
    int wait_status = 0;

    g_ptr_array_add(argv, cfg.mapram);
    g_ptr_array_add(argv, (char *)"load");
    g_ptr_array_add(argv, (char *)"--connect");
    g_ptr_array_add(argv, (char *)uri);
    g_ptr_array_add(argv, (char *)"--quiet");
    for (char **e = extra; *e; e++) {
        if (**e) {
            g_ptr_array_add(argv, *e);
        }
    }
    g_ptr_array_add(argv, (char *)file);
    g_ptr_array_add(argv, NULL);
    memset(r, 0, sizeof(*r));
    g_assert_true(g_spawn_sync(NULL, (char **)argv->pdata, NULL, G_SPAWN_DEFAULT, NULL, NULL,
                               &r->out, &r->err, &wait_status, &err));
    g_assert_no_error(err);
    r->status = WIFEXITED(wait_status) ? WEXITSTATUS(wait_status) : -1;
}

/*
 * QEMU saved a running guest into a mapped-ram file through exec:; a
 * fresh QEMU listening on @transport ("unix" or "tcp") with multifd gets
 * it from "mapram load --connect" (reading with --direct-io if @direct_io
 * and the file system allows), byte for byte, and runs it on.
 */
static void connect_round_trip(const char *prefix, const char *transport, int channels,
                               const char *compression, bool direct_io)
{
    Ctx *c = ctx_new(prefix, true);
    g_autofree char *file = NULL, *dump = NULL, *sock = NULL, *uri = NULL, *opts = NULL;
    g_auto(ToolRun) r = { 0 };

    if (!c) {
        return;
    }
    file = ctx_path(c, "mapped-ram.img");
    dump = ctx_path(c, "src.mem");
    sock = ctx_path(c, "mig.sock");
    save_mapped_from_qemu(c, file, dump);
    uri = !strcmp(transport, "unix") ? g_strdup_printf("unix:%s", sock)
                                     : g_strdup_printf("tcp:127.0.0.1:%d", free_tcp_port());
    Peer *dst = multifd_destination(c, uri, channels, compression);
    /* the page reads with O_DIRECT where the file system takes it */
    direct_io = direct_io && probe_o_direct(c->dir);
    opts = g_strdup_printf("--channels %d --compression %s%s", channels, compression,
                           direct_io ? " --direct-io" : "");
    run_connect(&r, uri, opts, file);
    assert_tool_ok(&r, "load --connect");
    g_assert_cmpstr(r.err, ==, "");
    g_assert_cmpstr(r.out, ==, "");
    assert_restored(c, dst, dump);
    ctx_free(c);
}

static void test_connect_none(void)
{
    connect_round_trip("interop-connect", "tcp", 4, "none", false);
}

static void test_connect_unix(void)
{
    connect_round_trip("interop-connect-unix", "unix", 4, "none", true);
}

static void test_connect_zstd(void)
{
    connect_round_trip("interop-connect-zstd", "tcp", 4, "zstd", false);
}

static void test_connect_zlib(void)
{
    connect_round_trip("interop-connect-zlib", "unix", 2, "zlib", false);
}

/*
 * The load failed: QEMU must not run a half-loaded guest.  QEMU 7.2 exits
 * when an incoming migration fails; a later one reports "failed".
 */
static void assert_load_failed(Peer *dst)
{
    int status = qtest_wait_exit(dst->qts, 10);

    if (status >= 0) {
        g_autofree char *err = qtest_stderr_text(dst->qts);
        g_assert_cmpint(status, ==, 1);
        g_assert_nonnull(strstr(err, "load of migration failed"));
        return;
    }
    /* still there after 10 s (stuck in 7.2's multifd sync): never running */
    g_autoptr(JsonObject) r = peer_query_migrate(dst);
    g_autofree char *state = peer_run_state(dst);
    g_assert_cmpstr(qtest_json_get_str(r, "status"), !=, "completed");
    g_assert_cmpstr(state, !=, "running");
}

/*
 * A mismatch with QEMU fails the tool within the test's time with exactly
 * @want on stderr; QEMU never resumes the guest.
 */
static void connect_mismatch(const char *prefix, int qemu_channels, const char *qemu_compression,
                             const char *opts, const char *want)
{
    Ctx *c = ctx_new(prefix, true);
    g_autofree char *file = NULL, *dump = NULL, *sock = NULL, *uri = NULL;
    g_auto(ToolRun) r = { 0 };

    if (!c) {
        return;
    }
    file = ctx_path(c, "mapped-ram.img");
    dump = ctx_path(c, "src.mem");
    sock = ctx_path(c, "mig.sock");
    save_mapped_from_qemu(c, file, dump);
    uri = g_strdup_printf("unix:%s", sock);
    Peer *dst = multifd_destination(c, uri, qemu_channels, qemu_compression);
    gint64 start = g_get_monotonic_time();
    run_connect(&r, uri, opts, file);
    g_test_message("the tool failed after %.1f s", (g_get_monotonic_time() - start) / 1e6);
    g_assert_cmpint(r.status, ==, 1);
    g_assert_cmpstr(r.err, ==, want);
    assert_load_failed(dst);
    peer_quit(dst);
    ctx_free(c);
}

static void test_connect_channels_mismatch(void)
{
    connect_mismatch("interop-connect-chan", 2, "none", "--channels 4",
                     "mapram load: QEMU took 2 of the 4 multifd channels and closed channels "
                     "2-3: its multifd-channels is 2 (use --channels 2)\n");
}

/* The same with zstd (packets small and fast): no page goes into a channel QEMU drops. */
static void test_connect_channels_mismatch_zstd(void)
{
    connect_mismatch("interop-connect-chan-zstd", 2, "zstd", "--channels 4 --compression zstd",
                     "mapram load: QEMU took 2 of the 4 multifd channels and closed channels "
                     "2-3: its multifd-channels is 2 (use --channels 2)\n");
}

static void test_connect_compression_mismatch(void)
{
    connect_mismatch("interop-connect-comp", 2, "none", "--channels 2 --compression zstd",
                     "mapram load: QEMU closed every multifd channel before the end of the "
                     "stream: its multifd-compression is not 'zstd' (--compression), its "
                     "-uuid is not ours (--uuid), or it failed to load a packet\n");
}

/* QEMU waits for 4 channels, we open 2: it never reads, the tool gives up at --timeout. */
static void test_connect_too_few_channels(void)
{
    connect_mismatch("interop-connect-few", 4, "none", "--channels 2 --timeout 3",
                     "mapram load: QEMU read nothing for 3 s (--timeout): is it stopped, or "
                     "does it expect more multifd channels than 2 (--channels)?\n");
}

/* A sparse libvirt image (mapped-ram after libvirt's header) goes to QEMU the same way. */
static void test_connect_libvirt(void)
{
    Ctx *c = ctx_new("interop-connect-libvirt", true);
    g_autofree char *img = NULL, *sparse = NULL, *dump = NULL, *uri = NULL, *sock = NULL;
    g_auto(ToolRun) r = { 0 };
    g_auto(ToolRun) stream = { 0 };

    if (!c) {
        return;
    }
    img = ctx_path(c, "web.save");
    sparse = ctx_path(c, "web-sparse.save");
    dump = ctx_path(c, "src.mem");
    sock = ctx_path(c, "mig.sock");
    save_libvirt_image(c, img, sparse, dump);

    /* a stream image cannot go over multifd: said before QEMU is touched */
    uri = g_strdup_printf("unix:%s", sock);
    run_connect(&stream, uri, "--channels 2", img);
    g_assert_cmpint(stream.status, ==, 1);
    g_autofree char *want = g_strdup_printf("mapram load: %s: --connect sends a mapped-ram "
                                            "file, and this libvirt image holds a raw stream "
                                            "(mapram convert makes it sparse)\n", img);
    g_assert_cmpstr(stream.err, ==, want);

    /*
     * As libvirt starts it: with the domain's -uuid, which QEMU checks in
     * each multifd channel's initial packet; the tool takes it from the
     * image's XML.  Without --channels: 2, as QEMU's default multifd-channels.
     */
    Peer *dst = multifd_destination_args(c, uri, 2, "none",
                                         "-uuid c7a5fdbd-cdaf-9455-926a-d65c16db1809");
    run_connect(&r, uri, "", sparse);
    assert_tool_ok(&r, "load --connect (libvirt image)");
    g_assert_cmpstr(r.err, ==, "");
    assert_restored(c, dst, dump);
    ctx_free(c);
}

/*
 * Bad input, each a one-line error and exit status 1: no such file, no
 * migration stream, a stream that is not mapped-ram (QEMU never sees a
 * connection for those), nobody listening, and a QEMU killed while the
 * tool sends.
 */
static void test_connect_bad_input(void)
{
    Ctx *c = ctx_new("interop-connect-bad", true);
    g_autofree char *file = NULL, *dump = NULL, *sock = NULL, *uri = NULL, *stream = NULL;
    g_autofree char *want = NULL, *cat = NULL;

    if (!c) {
        return;
    }
    file = ctx_path(c, "mapped-ram.img");
    stream = ctx_path(c, "stream");
    dump = ctx_path(c, "src.mem");
    sock = ctx_path(c, "mig.sock");
    uri = g_strdup_printf("unix:%s", sock);
    {
        g_auto(ToolRun) r = { 0 };
        g_autofree char *missing = ctx_path(c, "missing.img");
        run_connect(&r, uri, "", missing);
        g_assert_cmpint(r.status, ==, 1);
        want = g_strdup_printf("mapram load: Could not open '%s': No such file or "
                               "directory\n", missing);
        g_assert_cmpstr(r.err, ==, want);
    }
    {
        /* no QEMU stream at all */
        g_auto(ToolRun) r = { 0 };
        g_autofree char *junk = ctx_path(c, "junk.img");
        g_assert_true(g_file_set_contents(junk, "not a migration stream\n", -1, NULL));
        run_connect(&r, uri, "", junk);
        g_assert_cmpint(r.status, ==, 1);
        g_free(want);
        want = g_strdup_printf("mapram load: %s: Stream header at offset 0: Not a migration "
                               "stream, magic: 6e6f7420 != 5145564d\n", junk);
        g_assert_cmpstr(r.err, ==, want);
    }
    cat = g_strdup_printf("exec:cat > %s", stream);
    save_from_qemu(c, cat, dump, 0);
    {
        g_auto(ToolRun) r = { 0 };
        run_connect(&r, uri, "", stream);
        g_assert_cmpint(r.status, ==, 1);
        g_free(want);
        want = g_strdup_printf("mapram load: '%s' is not a mapped-ram file (its configuration "
                               "has no mapped-ram capability)\n", stream);
        g_assert_cmpstr(r.err, ==, want);
    }
    save_mapped_from_qemu(c, file, dump);
    {
        g_auto(ToolRun) r = { 0 };
        run_connect(&r, uri, "", file);
        g_assert_cmpint(r.status, ==, 1);
        g_free(want);
        want = g_strdup_printf("mapram load: Failed to connect to '%s': No such file or "
                               "directory\n", sock);
        g_assert_cmpstr(r.err, ==, want);
    }
    {
        /* QEMU stopped, the tool's connections wait in its backlog; then it is killed */
        Peer *dst = multifd_destination(c, uri, 4, "none");
        GPid pid = qtest_pid(dst->qts);
        g_autofree char *cmd = g_strdup_printf("exec %s load --connect %s --channels 4 --quiet "
                                               "%s 2>%s", cfg.mapram, uri, file, c->tool_log);
        const char *argv[] = { "/bin/sh", "-c", cmd, NULL };
        GPid tool;
        g_autofree char *log = NULL;

        g_assert_cmpint(kill(pid, SIGSTOP), ==, 0);
        g_assert_true(g_spawn_async(NULL, (char **)argv, NULL, G_SPAWN_DO_NOT_REAP_CHILD, NULL,
                                    NULL, &tool, NULL));
        g_usleep(1000 * 1000);
        g_assert_cmpint(kill(pid, SIGKILL), ==, 0);
        g_assert_cmpint(wait_tool(tool), ==, 1);
        g_assert_true(g_file_get_contents(c->tool_log, &log, NULL, NULL));
        g_assert_cmpstr(log, ==, "mapram load: QEMU closed the migration connection before "
                        "the end of the stream: it failed to load it or it ended (see its "
                        "own error)\n");
        g_unlink(c->tool_log);
        g_assert_cmpint(qtest_wait_exit(dst->qts, 10), ==, 128 + SIGKILL);
        peer_quit(dst);
    }
    ctx_free(c);
}

/* --- mapram serve: instant restore through postcopy (issue 10, point 3) - */

/* A QEMU 7.2 with postcopy-ram on, listening on @uri (unix:PATH or tcp:HOST:PORT). */
static Peer *postcopy_destination(Ctx *c, const char *uri, const char *extra)
{
    g_autofree char *opts = g_strdup_printf("-incoming defer %s", extra ? extra : "");
    Peer *dst = peer_start(c, "dst", opts);

    qtest_qmp_assert_success(dst->qts, "{'execute': 'migrate-set-capabilities', 'arguments': "
                             "{'capabilities': [{'capability': 'postcopy-ram', 'state': true}]}}");
    peer_migrate_incoming(dst, uri);
    /* QEMU listens once migrate-incoming returned; a unix socket shows it */
    for (int i = 0; g_str_has_prefix(uri, "unix:") && i < 200 &&
                    !g_file_test(uri + strlen("unix:"), G_FILE_TEST_EXISTS); i++) {
        g_usleep(20 * 1000);
    }
    return dst;
}

/* "mapram serve OPTS FILE URI" in the background, stdout into @out; its pid. */
static GPid spawn_serve(Ctx *c, const char *opts, const char *file, const char *uri,
                        const char *out)
{
    g_autofree char *cmd = g_strdup_printf("exec %s serve %s %s %s >%s 2>>%s", cfg.mapram,
                                           opts, file, uri, out, c->tool_log);
    const char *argv[] = { "/bin/sh", "-c", cmd, NULL };
    GError *err = NULL;
    GPid pid;

    g_assert_true(g_spawn_async(NULL, (char **)argv, NULL, G_SPAWN_DO_NOT_REAP_CHILD, NULL, NULL,
                                &pid, &err));
    g_assert_no_error(err);
    return pid;
}


/*
 * Serve @file into a fresh QEMU 7.2 (-S) over @transport ("unix" or
 * "tcp"): completed, every page sent once (asked for or pushed), memory
 * equal to @dump byte for byte, and the guest runs on after "cont".
 */
static void serve_and_check(Ctx *c, const char *file, const char *dump, const char *transport)
{
    g_autofree char *sock = ctx_path(c, "serve.sock");
    g_autofree char *uri = !strcmp(transport, "unix")
        ? g_strdup_printf("unix:%s", sock)
        : g_strdup_printf("tcp:127.0.0.1:%d", free_tcp_port());
    g_autofree char *out = ctx_path(c, "serve.json");
    g_autofree char *dst_dump = ctx_path(c, "dst.mem");
    g_autofree char *json = NULL, *state = NULL;
    g_autoptr(JsonParser) parser = json_parser_new();
    guint64 total;

    Peer *dst = postcopy_destination(c, uri, "-S");
    GPid pid = spawn_serve(c, "--json", file, uri, out);
    g_assert_cmpint(wait_tool(pid), ==, 0);
    assert_tool_quiet(c);
    peer_wait_completed(c, dst, NULL);
    state = peer_run_state(dst);
    g_assert_cmpstr(state, ==, "paused");

    g_assert_true(g_file_get_contents(out, &json, NULL, NULL));
    g_assert_true(json_parser_load_from_data(parser, json, -1, NULL));
    JsonObject *o = json_node_get_object(json_parser_get_root(parser));
    total = json_object_get_int_member(o, "ram-bytes");
    g_assert_cmpuint(total, >, GUEST_RAM_BYTES);
    g_assert_cmpuint(json_object_get_int_member(o, "pages-requested") +
                     json_object_get_int_member(o, "pages-pushed"), ==, total / TARGET_PAGE);
    g_assert_cmpint(json_object_get_int_member(o, "zero-pages"), >, 0);
    g_assert_cmpint(json_object_get_int_member(o, "run-sent-ms"), <=,
                    json_object_get_int_member(o, "total-ms"));
    g_assert_cmpint(json_object_get_int_member(o, "devices-loaded-ms"), >=,
                    json_object_get_int_member(o, "run-sent-ms"));

    peer_pmemsave(dst, dst_dump);
    assert_same_memory(dump, dst_dump);
    qtest_qmp_assert_success(dst->qts, "{'execute': 'cont'}");
    peer_wait_serial(dst, 'B');
    qtest_qmp_assert_success(dst->qts, "{'execute': 'stop'}");
    peer_pmemsave(dst, dst_dump);
    assert_moved_on(dump, dst_dump);
    g_unlink(dst_dump);
    peer_quit(dst);
}

static void test_serve(void)
{
    Ctx *c = ctx_new("interop-serve", true);
    g_autofree char *file = NULL, *dump = NULL;

    if (!c) {
        return;
    }
    file = ctx_path(c, "mapped-ram.img");
    dump = ctx_path(c, "src.mem");
    save_mapped_from_qemu(c, file, dump);
    serve_and_check(c, file, dump, "unix");
    serve_and_check(c, file, dump, "tcp");
    ctx_free(c);
}

/*
 * A libvirt image (issue 13, point 3): a sparse one (mapped-ram after
 * libvirt's header) is served from its data offset; one holding a plain
 * stream is refused, naming its format.
 */
static void test_serve_libvirt(void)
{
    Ctx *c = ctx_new("interop-serve-libvirt", true);
    g_autofree char *img = NULL, *sparse = NULL, *dump = NULL, *want = NULL;
    g_auto(ToolRun) r = { 0 };

    if (!c) {
        return;
    }
    img = ctx_path(c, "web.save");
    sparse = ctx_path(c, "web-sparse.save");
    dump = ctx_path(c, "src.mem");
    save_libvirt_image(c, img, sparse, dump);

    run_mapram(&r, "serve", img, "unix:/nonexistent", NULL);
    g_assert_cmpint(r.status, ==, 1);
    want = g_strdup_printf("mapram serve: %s: a libvirt save image of a raw stream, not "
                           "mapped-ram: only a mapped-ram image can be served ('mapram convert' "
                           "writes one)\n", img);
    g_assert_cmpstr(r.err, ==, want);

    serve_and_check(c, sparse, dump, "unix");
    ctx_free(c);
}

/*
 * The guest runs from RUN on (no -S) while the push is slowed: its faults
 * come back as page requests that are served ahead of the push, and once
 * every page is in, its memory still holds the a-b invariant and moved on
 * from the saved state.
 */
static void test_serve_running(void)
{
    Ctx *c = ctx_new("interop-serve-running", true);
    g_autofree char *file = NULL, *dump = NULL, *sock = NULL, *out = NULL, *dst_dump = NULL;
    g_autofree char *json = NULL, *state = NULL;
    g_autoptr(JsonParser) parser = json_parser_new();

    if (!c) {
        return;
    }
    file = ctx_path(c, "mapped-ram.img");
    dump = ctx_path(c, "src.mem");
    sock = ctx_path(c, "serve.sock");
    out = ctx_path(c, "serve.json");
    dst_dump = ctx_path(c, "dst.mem");
    save_mapped_from_qemu(c, file, dump);

    g_autofree char *uri = g_strdup_printf("unix:%s", sock);
    Peer *dst = postcopy_destination(c, uri, NULL);
    GPid pid = spawn_serve(c, "--json --max-bandwidth 64M", file, uri, out);
    g_assert_cmpint(wait_tool(pid), ==, 0);
    assert_tool_quiet(c);
    peer_wait_completed(c, dst, NULL);
    state = peer_run_state(dst);
    g_assert_cmpstr(state, ==, "running");

    g_assert_true(g_file_get_contents(out, &json, NULL, NULL));
    g_assert_true(json_parser_load_from_data(parser, json, -1, NULL));
    JsonObject *o = json_node_get_object(json_parser_get_root(parser));
    g_assert_cmpint(json_object_get_int_member(o, "requests"), >, 0);
    g_assert_cmpint(json_object_get_int_member(o, "pages-requested"), >, 0);
    g_assert_cmpuint(json_object_get_int_member(o, "pages-requested") +
                     json_object_get_int_member(o, "pages-pushed"), ==,
                     json_object_get_int_member(o, "ram-bytes") / TARGET_PAGE);

    peer_wait_serial(dst, 'B');
    qtest_qmp_assert_success(dst->qts, "{'execute': 'stop'}");
    peer_pmemsave(dst, dst_dump);
    assert_moved_on(dump, dst_dump);
    peer_quit(dst);
    ctx_free(c);
}

/* query-migrate's status on @p until it is @want (or the test's timeout). */
static void peer_wait_status(Peer *p, const char *want)
{
    gint64 deadline = g_get_monotonic_time() + (gint64)qtest_timeout_s() * G_USEC_PER_SEC;

    for (;;) {
        g_autoptr(JsonObject) r = peer_query_migrate(p);
        const char *st = qtest_json_get_str(r, "status");

        if (!g_strcmp0(st, want)) {
            return;
        }
        g_assert_cmpstr(st, !=, "completed");
        g_assert_cmpstr(st, !=, "failed");
        if (g_get_monotonic_time() > deadline) {
            g_test_message("'%s' never reached '%s' (last: %s)", p->name, want, st);
            g_assert_not_reached();
        }
        g_usleep(50 * 1000);
    }
}

/*
 * mapram serve SIGKILLed while the guest runs with part of its memory:
 * QEMU must go to postcopy-paused (a faulting vCPU waits), never to
 * completed with pages missing.  The push is slowed (--max-bandwidth)
 * so that the kill lands mid-way.
 */
static void test_serve_killed(void)
{
    Ctx *c = ctx_new("interop-serve-killed", true);
    g_autofree char *file = NULL, *sock = NULL, *out = NULL;
    int status;

    if (!c) {
        return;
    }
    file = ctx_path(c, "mapped-ram.img");
    sock = ctx_path(c, "serve.sock");
    out = ctx_path(c, "serve.out");
    save_mapped_from_qemu(c, file, NULL);

    g_autofree char *uri = g_strdup_printf("unix:%s", sock);
    Peer *dst = postcopy_destination(c, uri, NULL);
    GPid pid = spawn_serve(c, "--max-bandwidth 16M", file, uri, out);
    peer_wait_status(dst, "postcopy-active");
    g_usleep(1000 * 1000);                      /* RUN processed, the guest running */
    g_assert_cmpint(waitpid(pid, &status, WNOHANG), ==, 0);     /* still pushing */
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    peer_wait_status(dst, "postcopy-paused");
    g_usleep(500 * 1000);
    g_autoptr(JsonObject) r = peer_query_migrate(dst);
    g_assert_cmpstr(qtest_json_get_str(r, "status"), ==, "postcopy-paused");
    peer_quit(dst);
    ctx_free(c);
}

/* What mapram serve refuses, each named; a destination that hangs up is an error. */
static void test_serve_errors(void)
{
    Ctx *c = ctx_new("interop-serve-errors", true);
    g_autofree char *file = NULL, *stream = NULL, *sock = NULL, *want = NULL, *out = NULL;
    g_autofree char *stream_uri = NULL, *text = NULL;
    g_auto(ToolRun) r = { 0 };

    if (!c) {
        return;
    }
    file = ctx_path(c, "mapped-ram.img");
    stream = ctx_path(c, "stream.img");
    sock = ctx_path(c, "none.sock");
    out = ctx_path(c, "serve.out");
    save_mapped_from_qemu(c, file, NULL);
    stream_uri = g_strdup_printf("exec:cat > %s", stream);
    save_from_qemu(c, stream_uri, NULL, 0);

    g_autofree char *uri = g_strdup_printf("unix:%s", sock);
    run_mapram(&r, "serve", "--quiet", file, uri, NULL);
    g_assert_cmpint(r.status, ==, 1);
    want = g_strdup_printf("mapram serve: Unable to connect to '%s': Failed to connect to "
                           "'%s': No such file or directory\n", uri, sock);
    g_assert_cmpstr(r.err, ==, want);
    tool_run_clear(&r);

    run_mapram(&r, "serve", stream, uri, NULL);
    g_assert_cmpint(r.status, ==, 1);
    g_free(want);
    want = g_strdup_printf("mapram serve: Configuration at offset 8: '%s' is not a mapped-ram "
                           "file (its configuration has no mapped-ram capability)\n", stream);
    g_assert_cmpstr(r.err, ==, want);
    tool_run_clear(&r);

    g_autofree char *at = g_strdup_printf("%s,offset=4096", file);
    run_mapram(&r, "serve", at, uri, NULL);
    g_assert_cmpint(r.status, ==, 1);
    g_free(want);
    want = g_strdup_printf("mapram serve: %s: Stream header at offset 4096: Not a migration "
                           "stream, magic: 0 != 5145564d\n", file);
    g_assert_cmpstr(r.err, ==, want);
    tool_run_clear(&r);

    run_mapram(&r, "serve", file, "file:/dev/null", NULL);
    g_assert_cmpint(r.status, ==, 1);
    g_assert_cmpstr(r.err, ==, "mapram serve: 'file:/dev/null' is not a unix: or tcp: address\n");

    /* a destination that reads the beginning and hangs up */
    int lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    g_strlcpy(sun.sun_path, sock, sizeof(sun.sun_path));
    g_assert_cmpint(bind(lfd, (struct sockaddr *)&sun, sizeof(sun)), ==, 0);
    g_assert_cmpint(listen(lfd, 1), ==, 0);
    GPid pid = spawn_serve(c, "--quiet", file, uri, out);
    int fd = accept(lfd, NULL, NULL);
    char buf[64];
    g_assert_cmpint(read(fd, buf, sizeof(buf)), >, 0);
    close(fd);
    close(lfd);
    g_assert_cmpint(wait_tool(pid), ==, 1);
    g_assert_true(g_file_get_contents(c->tool_log, &text, NULL, NULL));
    g_assert_true(g_str_has_prefix(text, "mapram serve: return path: ") ||
                  g_str_has_prefix(text, "mapram serve: the destination closed the connection "
                                   "before the end of the migration"));
    /* said once, not "X (X)" when the send failed for the return path's error itself */
    const char *first = strstr(text, "closed the connection");
    g_assert_true(!first || !strstr(first + 1, "closed the connection"));
    ctx_free(c);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    config_init(argv[0]);

    g_test_add_func("/interop/exec-cat", test_exec_cat);
    g_test_add_func("/interop/info", test_info);
    g_test_add_func("/interop/save-load", test_save_load);
    g_test_add_func("/interop/save-load/channels4-dio",
                    test_save_load_channels_dio);
    g_test_add_func("/interop/live-bounded", test_live_bounded);
    g_test_add_func("/interop/convert", test_convert);
    g_test_add_func("/interop/libvirt-image", test_libvirt_image);
    g_test_add_func("/interop/truncated", test_truncated);
    g_test_add_func("/interop/killed-save", test_killed_save);
    g_test_add_func("/interop/save-listen/multifd4", test_save_listen_none);
    g_test_add_func("/interop/save-listen/multifd4-zstd", test_save_listen_zstd);
    g_test_add_func("/interop/save-listen/multifd2-zlib", test_save_listen_zlib);
    g_test_add_func("/interop/save-listen/channels-mismatch",
                    test_save_listen_channels_mismatch);
    g_test_add_func("/interop/save-listen/compression-mismatch",
                    test_save_listen_compression_mismatch);
    g_test_add_func("/interop/libvirt-virsh", test_libvirt_virsh);
    g_test_add_func("/interop/load-connect/multifd4", test_connect_none);
    g_test_add_func("/interop/load-connect/multifd4-unix-dio", test_connect_unix);
    g_test_add_func("/interop/load-connect/multifd4-zstd", test_connect_zstd);
    g_test_add_func("/interop/load-connect/multifd2-zlib", test_connect_zlib);
    g_test_add_func("/interop/load-connect/channels-mismatch", test_connect_channels_mismatch);
    g_test_add_func("/interop/load-connect/channels-mismatch-zstd",
                    test_connect_channels_mismatch_zstd);
    g_test_add_func("/interop/load-connect/compression-mismatch",
                    test_connect_compression_mismatch);
    g_test_add_func("/interop/load-connect/too-few-channels", test_connect_too_few_channels);
    g_test_add_func("/interop/load-connect/libvirt-image", test_connect_libvirt);
    g_test_add_func("/interop/load-connect/bad-input", test_connect_bad_input);
    g_test_add_func("/interop/serve/restore", test_serve);
    g_test_add_func("/interop/serve/running", test_serve_running);
    g_test_add_func("/interop/serve/killed", test_serve_killed);
    g_test_add_func("/interop/serve/errors", test_serve_errors);
    g_test_add_func("/interop/serve/libvirt", test_serve_libvirt);
    return g_test_run();
}
