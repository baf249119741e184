/*
 * Killed mid-save (issue 11, point 2): SIGKILL at random instants.
 *
 * /migration/kill/save/MODE kills a saving mapram-vm (live ab guest, at
 * a bounded bandwidth so that the save takes about a second) at instants
 * drawn over the save's length as measured by one save that completed.
 * After each kill, `mapram verify` must not say OK and a fresh mapram-vm
 * must refuse to load the file, with an error in the stream walker's
 * shape ("<part> at offset N: <what is missing>"), never resuming.  A
 * kill that came after the save had written its last byte legitimately
 * leaves a whole file: verify passes it, and then it must load, with the
 * ab invariant holding.  Those are counted apart.
 *
 * /migration/kill/dest/... kill the other end instead: `mapram save`
 * behind exec:, a destination mapram-vm over unix:, and the `mapram
 * load` that feeds a destination.  The source keeps running with its
 * memory intact (the ab check); a destination never resumes half-loaded.
 *
 * MAPRAM_KILL_COUNT=N kills per test (default 3), MAPRAM_KILL_SEED=S
 * the seed (default: random; printed, so that a failure reproduces).
 */
#include "framework.h"
#include "tests.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib/gstdio.h>

#define KILLS_DEFAULT   3
/* About a second for the ab guest's ~100 MiB of non-zero pages. */
#define KILL_BANDWIDTH  (128LL << 20)

typedef struct KillMode {
    const char *name;
    const char *caps[3];
    int channels;
    bool dio;
} KillMode;

static const KillMode kill_modes[] = {
    { "stream", { NULL }, 0, false },
    { "mapped-ram", { "mapped-ram" }, 0, false },
    { "mapped-ram+multifd", { "mapped-ram", "multifd" }, 2, false },
    { "mapped-ram+multifd+dio", { "mapped-ram", "multifd" }, 2, true },
};

static unsigned kill_count(void)
{
    const char *s = g_getenv("MAPRAM_KILL_COUNT");
    unsigned n = s ? (unsigned)g_ascii_strtoull(s, NULL, 10) : KILLS_DEFAULT;

    return n ? n : 1;
}

static GRand *kill_rand(const char *what)
{
    const char *s = g_getenv("MAPRAM_KILL_SEED");
    guint32 seed = s ? (guint32)g_ascii_strtoull(s, NULL, 10) : g_random_int();

    /* stderr too: meson keeps it in the log of a failed test */
    g_printerr("%s: %u kills, MAPRAM_KILL_SEED=%u\n", what, kill_count(), seed);
    return g_rand_new_with_seed(seed);
}

/* --- what a killed save may leave ---------------------------------------- */

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
 * The stream walker's shape: the part of the stream being read and where
 * it starts, then what is missing there.  These are every reason a file
 * cut at any byte can give.  A stream that ends between two records (a
 * mapped-ram file's page regions are laid out, what follows them never
 * came) says only "Unexpected end of stream at offset N", N being where
 * the next record should start (user guide, section 9).
 */
static void assert_walker_error(const char *msg, const char *who)
{
    static const char *const reasons[] = {
        "Unexpected end of stream at offset N",
        "the stream is empty (no QEVM header)",
    };
    g_autofree char *shape = numbers_out(msg);
    g_autoptr(GRegex) re = g_regex_new(
        "^(Stream header|Configuration|Command|Record|VM description|"
        "(START|PART|END|FULL) section '[^']+' \\(id N\\)) at offset N: (.*)$",
        0, 0, NULL);
    g_autoptr(GMatchInfo) mi = NULL;

    if (!strcmp(shape, reasons[0])) {
        return;
    }
    if (g_regex_match(re, shape, 0, &mi)) {
        g_autofree char *reason = g_match_info_fetch(mi, 3);

        for (size_t i = 0; i < G_N_ELEMENTS(reasons); i++) {
            if (!strcmp(reason, reasons[i])) {
                return;
            }
        }
    }
    qtest_fail(NULL, "%s of a killed save: '%s' does not name what is missing", who, msg);
}

typedef struct KillTally {
    unsigned cut;            /* files refused, as they must be */
    unsigned whole;          /* kills after the last byte: whole files */
    GHashTable *shapes;      /* error shape -> count */
} KillTally;

static void tally_init(KillTally *t)
{
    memset(t, 0, sizeof(*t));
    t->shapes = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
}

static void tally_report(KillTally *t, const char *what)
{
    GHashTableIter it;
    gpointer k, v;

    g_printerr("%s: %u cut files refused, %u whole files loaded\n", what, t->cut, t->whole);
    g_hash_table_iter_init(&it, t->shapes);
    while (g_hash_table_iter_next(&it, &k, &v)) {
        g_printerr("  %4u x %s\n", GPOINTER_TO_UINT(v), (char *)k);
    }
    g_hash_table_unref(t->shapes);
}

static void tally_add(KillTally *t, const char *msg)
{
    g_autofree char *shape = numbers_out(msg);
    guint n = GPOINTER_TO_UINT(g_hash_table_lookup(t->shapes, shape));

    g_hash_table_replace(t->shapes, g_steal_pointer(&shape), GUINT_TO_POINTER(n + 1));
}

/* `mapram verify PATH`: its exit status; *err its stderr (g_free). */
static int run_verify(const char *path, char **err)
{
    const char *t = g_getenv("MAPRAM_TOOL");
    const char *argv[] = { t, "verify", path, NULL };
    g_autoptr(GError) gerr = NULL;
    int status = 0;

    g_assert_nonnull(t);
    if (!g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_STDOUT_TO_DEV_NULL, NULL, NULL,
                      NULL, err, &status, &gerr)) {
        g_error("cannot run '%s': %s", t, gerr->message);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static QTestState *start_dest(const KillMode *km)
{
    MigrateCommon args = { .multifd_channels = km->channels, .direct_io = km->dio };
    g_autofree char *extra = g_strdup_printf(
        "-m 150M -machine memory-backend=mig.mem "
        "-object memory-backend-ram,id=mig.mem,size=150M,share=off "
        "-guest ab -serial file:%s/dest_serial -incoming defer", mig_tmpdir);
    QTestState *to = qtest_init_bin(qtest_vm_binary(), "%s", extra);

    memcpy(args.caps, km->caps, sizeof(km->caps));
    migrate_apply_caps(to, &args);
    return to;
}

/* A whole file: it loads, resumes (the source ran) and holds the ab invariant. */
static void load_whole(const KillMode *km, const char *uri)
{
    QTestState *to = start_dest(km);

    migrate_incoming_qmp(to, uri, NULL, NULL);
    wait_for_migration_complete(to);
    qtest_qmp_eventwait(to, "RESUME");
    qtest_qmp_assert_success(to, "{'execute': 'stop'}");
    check_guests_ram(to);
    qtest_quit(to);
}

/* A cut file: verify says where, the load fails and says so too. */
static void check_killed_file(const KillMode *km, const char *path, KillTally *t)
{
    g_autofree char *uri = g_strdup_printf("file:%s", path);
    g_autofree char *verr = NULL;
    g_autofree char *prefix = g_strdup_printf("mapram verify: %s: ", path);
    g_autofree char *desc = NULL;
    int status = run_verify(path, &verr);
    QTestState *to;

    if (status == 0) {
        t->whole++;
        load_whole(km, uri);
        return;
    }
    if (status != 1 || !g_str_has_prefix(verr, prefix) || !g_str_has_suffix(verr, "\n") ||
        strchr(verr, '\n') != verr + strlen(verr) - 1) {
        qtest_fail(NULL, "verify of a killed save exited %d with '%s'", status, verr);
    }
    verr[strlen(verr) - 1] = 0;
    assert_walker_error(verr + strlen(prefix), "verify");

    to = start_dest(km);
    migrate_incoming_qmp(to, uri, NULL, "'exit-on-error': false");
    desc = wait_for_migration_fail(to);
    assert_walker_error(desc, "the load");
    assert_dest_not_resumed(to);
    qtest_quit(to);
    t->cut++;
    tally_add(t, desc);
}

/* A source saving its live ab guest to @uri at KILL_BANDWIDTH. */
static QTestState *start_saving(const KillMode *km, const char *uri)
{
    MigrateCommon args = { .start.only_source = true, .multifd_channels = km->channels,
                           .direct_io = km->dio };
    QTestState *from, *to;

    memcpy(args.caps, km->caps, sizeof(km->caps));
    migrate_start(&args, &from, &to);
    migrate_set_parameter_int(from, "max-bandwidth", KILL_BANDWIDTH);
    migrate_set_parameter_int(from, "downtime-limit", 30 * 1000);
    wait_for_serial("src_serial");
    migrate_qmp(from, uri, NULL);
    return from;
}

static void test_kill_save(gconstpointer data)
{
    const KillMode *km = data;
    g_autofree char *what = g_strdup_printf("/migration/kill/save/%s", km->name);
    g_autofree char *path = NULL;
    g_autofree char *uri = NULL;
    GRand *rand;
    KillTally tally;
    gint64 t0;
    double full_s;
    QTestState *from;

    mig_tmpdir = qtest_mkdtemp("kill");
    if (km->dio && !probe_o_direct_support(mig_tmpdir)) {
        g_test_skip("no O_DIRECT in the temp dir");
        goto out;
    }
    path = mig_path(MIG_FILE_NAME);
    uri = g_strdup_printf("file:%s", path);
    rand = kill_rand(what);
    tally_init(&tally);

    /* How long a whole save takes here: the range the kills are drawn over. */
    from = start_saving(km, uri);
    t0 = g_get_monotonic_time();
    wait_for_migration_complete(from);
    full_s = (g_get_monotonic_time() - t0) / 1e6;
    qtest_quit(from);
    g_printerr("%s: a whole save takes %.2f s\n", what, full_s);

    for (unsigned i = 0; i < kill_count(); i++) {
        /* up to the end: a kill after the last byte (a whole file) is a case too */
        double at = g_rand_double_range(rand, 0, full_s);

        g_unlink(path);
        from = start_saving(km, uri);
        g_usleep((gulong)(at * G_USEC_PER_SEC));
        qtest_kill(from);
        check_killed_file(km, path, &tally);
    }
    tally_report(&tally, what);
    g_rand_free(rand);
out:
    if (!g_getenv("MAPRAM_TEST_KEEP")) {
        qtest_rmtree(mig_tmpdir);
    }
    g_free((char *)mig_tmpdir);
    mig_tmpdir = NULL;
}

/* --- the other end dies ------------------------------------------------- */

/* Wait for the pid an exec: child wrote to @pidfile. */
static pid_t wait_pidfile(const char *pidfile)
{
    gint64 deadline = g_get_monotonic_time() + (gint64)qtest_timeout_s() * G_USEC_PER_SEC;

    for (;;) {
        g_autofree char *text = NULL;

        if (g_file_get_contents(pidfile, &text, NULL, NULL) && strchr(text, '\n')) {
            return (pid_t)g_ascii_strtoll(text, NULL, 10);
        }
        if (g_get_monotonic_time() > deadline) {
            qtest_fail(NULL, "no pid in %s", pidfile);
        }
        g_usleep(1000);
    }
}

/*
 * SIGKILL an exec: child.  It may be gone already (the migration ended
 * before the instant drawn, and its parent reaped it): ESRCH, and the
 * end is then whatever the migration says.
 */
static void kill_reader(pid_t pid)
{
    if (kill(pid, SIGKILL) < 0) {
        g_assert_cmpint(errno, ==, ESRCH);
    }
}

/* End of a migration that lost its peer: failed, or completed before the kill. */
static char *wait_for_end(QTestState *who, bool *completed)
{
    gint64 deadline = g_get_monotonic_time() + (gint64)qtest_timeout_s() * G_USEC_PER_SEC;

    for (;;) {
        g_autoptr(JsonObject) r = migrate_query(who);
        const char *st = qtest_json_get_str(r, "status");

        if (!g_strcmp0(st, "completed")) {
            *completed = true;
            return NULL;
        }
        if (!g_strcmp0(st, "failed")) {
            const char *desc = qtest_json_get_str(r, "error-desc");

            g_assert_nonnull(desc);
            g_assert_cmpstr(desc, !=, "");
            *completed = false;
            return g_strdup(desc);
        }
        g_assert_cmpstr(st, !=, "cancelled");
        if (g_get_monotonic_time() > deadline) {
            qtest_fail(who, "migration still '%s' after %d s", st, qtest_timeout_s());
        }
        g_usleep(10 * 1000);
    }
}

/* `mapram save` behind exec: dies: the source runs on, its memory intact. */
static void test_kill_dest_exec_save(void)
{
    g_autofree char *pidfile = mig_path("save.pid");
    g_autofree char *file = mig_path(MIG_FILE_NAME);
    g_autofree char *uri = g_strdup_printf("exec:echo $$ > %s; exec %s save --quiet %s 2>/dev/null",
                                           pidfile, g_getenv("MAPRAM_TOOL"), file);
    GRand *rand = kill_rand("/migration/kill/dest/exec-save");
    unsigned failed = 0;

    g_assert_nonnull(g_getenv("MAPRAM_TOOL"));
    for (unsigned i = 0; i < kill_count(); i++) {
        MigrateCommon args = { .start.only_source = true };
        QTestState *from, *to;
        g_autofree char *desc = NULL;
        bool completed;

        g_unlink(pidfile);
        migrate_start(&args, &from, &to);
        /* some 3 s for the first pass: the kill comes within it */
        migrate_set_parameter_int(from, "max-bandwidth", 32LL << 20);
        migrate_set_parameter_int(from, "downtime-limit", 30 * 1000);
        wait_for_serial("src_serial");
        migrate_qmp(from, uri, NULL);
        g_usleep((gulong)g_rand_double_range(rand, 0, 1.5 * G_USEC_PER_SEC));
        kill_reader(wait_pidfile(pidfile));
        desc = wait_for_end(from, &completed);
        if (!completed) {
            failed++;
            g_test_message("source: %s", desc);
            assert_source_intact(from);
        }
        qtest_quit(from);
    }
    g_printerr("exec-save: %u of %u saves failed with their reader killed\n", failed,
               kill_count());
    g_rand_free(rand);
}

/* A destination mapram-vm dies mid-migration: the source runs on, intact. */
static void test_kill_dest_unix(void)
{
    g_autofree char *sock = mig_path("mig.sock");
    g_autofree char *uri = g_strdup_printf("unix:%s", sock);
    GRand *rand = kill_rand("/migration/kill/dest/unix");

    for (unsigned i = 0; i < kill_count(); i++) {
        MigrateCommon args = { 0 };
        QTestState *from, *to;
        g_autofree char *desc = NULL;
        bool completed;

        g_unlink(sock);
        migrate_start(&args, &from, &to);
        migrate_incoming_qmp(to, uri, NULL, NULL);
        migrate_set_parameter_int(from, "max-bandwidth", 32LL << 20);
        migrate_set_parameter_int(from, "downtime-limit", 30 * 1000);
        wait_for_serial("src_serial");
        migrate_qmp(from, uri, NULL);
        g_usleep((gulong)g_rand_double_range(rand, 0, 1.5 * G_USEC_PER_SEC));
        qtest_kill(to);
        desc = wait_for_end(from, &completed);
        if (!completed) {
            g_test_message("source: %s", desc);
            assert_source_intact(from);
        }
        qtest_quit(from);
    }
    g_rand_free(rand);
}

/* The `mapram load` feeding a destination dies: the destination never resumes. */
static void test_kill_load_reader(void)
{
    static const char *const caps[] = { "mapped-ram", NULL };
    static const KillMode stream = { "stream", { NULL }, 0, false };
    g_autofree char *path = mig_make_saved_file(MIG_FILE_NAME, caps, false);
    g_autofree char *pidfile = mig_path("load.pid");
    g_autofree char *uri = g_strdup_printf("exec:echo $$ > %s; exec %s load --quiet %s",
                                           pidfile, g_getenv("MAPRAM_TOOL"), path);
    GRand *rand = kill_rand("/migration/kill/load-reader");
    unsigned failed = 0;

    for (unsigned i = 0; i < kill_count(); i++) {
        QTestState *to = start_dest(&stream);
        g_autofree char *desc = NULL;
        bool completed;

        g_unlink(pidfile);
        migrate_incoming_qmp(to, uri, NULL, "'exit-on-error': false");
        g_usleep((gulong)g_rand_double_range(rand, 0, 0.3 * G_USEC_PER_SEC));
        kill_reader(wait_pidfile(pidfile));
        desc = wait_for_end(to, &completed);
        if (completed) {
            /* the reader was done: a whole load, paused as saved */
            check_guests_ram(to);
        } else {
            failed++;
            g_test_message("destination: %s", desc);
            assert_walker_error(desc, "the load");
            assert_dest_not_resumed(to);
        }
        qtest_quit(to);
    }
    g_printerr("load-reader: %u of %u loads failed with their reader killed\n", failed,
               kill_count());
    g_rand_free(rand);
}

void migration_test_add_kill(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(kill_modes); i++) {
        g_autofree char *path = g_strdup_printf("/migration/kill/save/%s", kill_modes[i].name);

        migration_test_add_data(path, &kill_modes[i], test_kill_save, MIG_FULL);
    }
    migration_test_add("/migration/kill/dest/exec-save", test_kill_dest_exec_save, MIG_FULL);
    migration_test_add("/migration/kill/dest/unix", test_kill_dest_unix, MIG_FULL);
    migration_test_add("/migration/kill/load-reader", test_kill_load_reader, MIG_FULL);
}
