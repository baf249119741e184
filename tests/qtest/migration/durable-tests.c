/*
 * Durable and private saves (issue 11, points 3 and 7): the x-fsync
 * parameter over QMP, saves with it, a sync that fails (the save-fsync
 * fault point), `mapram save --fsync`; and the mode of the files that
 * mapram-vm and the tool create.
 */
#include "framework.h"
#include "tests.h"

#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib/gstdio.h>

#define FSYNC_NEEDS_FILE \
    "Parameter 'x-fsync' requires a transport that writes to a file (file:, or fd: on a file)"

static bool get_fsync_param(QTestState *who)
{
    g_autoptr(JsonObject) r = qtest_qmp_assert_success_ref(who,
        "{'execute': 'query-migrate-parameters'}");

    g_assert_true(json_object_has_member(r, "x-fsync"));
    return qtest_json_get_bool(r, "x-fsync", false);
}

static void set_fsync_hook(QTestState *from, QTestState *to, MigrateCommon *args)
{
    migrate_set_parameter_bool(from, "x-fsync", true);
}

/* query shows it (off by default), set changes it, a bad type is refused. */
static void test_fsync_params(void)
{
    MigrateCommon args = { .start.only_source = true };
    QTestState *from, *to;
    g_autofree char *bad = NULL;

    migrate_start(&args, &from, &to);
    g_assert_false(get_fsync_param(from));
    migrate_set_parameter_bool(from, "x-fsync", true);
    g_assert_true(get_fsync_param(from));
    bad = qtest_qmp_expect_error(from, "{'execute': 'migrate-set-parameters', "
                                 "'arguments': {'x-fsync': 'yes'}}");
    g_assert_cmpstr(bad, ==, "Invalid parameter type for 'x-fsync', expected: boolean");
    g_assert_true(get_fsync_param(from));
    migrate_set_parameter_bool(from, "x-fsync", false);
    g_assert_false(get_fsync_param(from));
    qtest_quit(from);
}

static void test_fsync_mapped_ram_multifd(void)
{
    g_autofree char *uri = mig_file_uri(MIG_FILE_NAME, NULL);
    MigrateCommon args = { .connect_uri = uri, .caps = { "mapped-ram", "multifd" },
                           .multifd_channels = 2, .start_hook = set_fsync_hook };

    test_file_common(&args, true);
}

static void test_fsync_stream(void)
{
    g_autofree char *uri = mig_file_uri(MIG_FILE_NAME, NULL);
    MigrateCommon args = { .connect_uri = uri, .start_hook = set_fsync_hook };

    test_file_common(&args, false);
}

/* An fd: that is a pipe has no disk behind it: migrate refuses it. */
static void test_fsync_fd_pipe(void)
{
    MigrateCommon args = { .start.only_source = true };
    QTestState *from, *to;
    g_autofree char *desc = NULL;
    g_autofree char *st = NULL;
    int fds[2];

    migrate_start(&args, &from, &to);
    migrate_set_parameter_bool(from, "x-fsync", true);
    g_assert_cmpint(pipe(fds), ==, 0);
    qtest_qmp_fds_assert_success(from, &fds[1], 1,
        "{'execute': 'getfd', 'arguments': {'fdname': 'fd-mig'}}");
    close(fds[1]);
    desc = migrate_qmp_expect_error(from, "fd:fd-mig", NULL);
    g_assert_cmpstr(desc, ==, FSYNC_NEEDS_FILE);
    st = migrate_query_status(from);
    g_assert_cmpstr(st, ==, "failed");
    /* the refused fd was closed, not kept: the reader sees its end at once */
    char byte;
    g_assert_cmpint(fcntl(fds[0], F_SETFL, O_NONBLOCK), ==, 0);
    g_assert_cmpint(read(fds[0], &byte, 1), ==, 0);
    close(fds[0]);
    assert_source_intact(from);
    qtest_quit(from);
}

/* Save with x-fsync and MAPRAM_FAULT=fault (save-fsync); returns the error-desc. */
static char *fsync_fault_save_must_fail(const char *fault, const char *cap, int channels)
{
    static const char *const ungoals[] = { "completed", "cancelled", NULL };
    g_autofree char *fault_env = g_strdup_printf("MAPRAM_FAULT=%s", fault);
    const char *env[] = { fault_env, NULL };
    g_autofree char *uri = mig_file_uri(MIG_FILE_NAME, NULL);
    MigrateCommon args = { .start.only_source = true, .start.env_source = env,
                           .multifd_channels = channels, .caps = { cap } };
    QTestState *from, *to;
    char *desc;

    if (channels) {
        args.caps[1] = "multifd";
    }
    migrate_start(&args, &from, &to);
    migrate_ensure_converge(from);
    migrate_set_parameter_bool(from, "x-fsync", true);
    wait_for_serial("src_serial");
    migrate_qmp(from, uri, NULL);
    wait_for_migration_status(from, "failed", ungoals);
    desc = wait_for_migration_fail(from);
    assert_source_intact(from);
    qtest_quit(from);
    /* every byte was written before the sync failed: the file is cut back, verify fails it */
    g_autofree char *path = mig_path(MIG_FILE_NAME);
    g_autofree char *want = g_strdup_printf(
        "mapram verify: %s: Stream header at offset 0: the stream is empty "
        "(no QEVM header)\n", path);
    g_autofree char *out = NULL, *err = NULL;
    g_assert_cmpint(mig_run_tool(&out, &err, "verify", path, NULL), ==, 1);
    g_assert_cmpstr(err, ==, want);
    return desc;
}

static char *fsync_save_must_fail(const char *cap, int channels)
{
    return fsync_fault_save_must_fail("save-fsync", cap, channels);
}

/* Page fds are synced in channel order: channel 0 fails first. */
static void test_fault_save_fsync(void)
{
    g_autofree char *desc = fsync_save_must_fail("mapped-ram", 2);
    g_autofree char *path = mig_path(MIG_FILE_NAME);
    g_autofree char *want = g_strdup_printf(
        "multifd channel 0: Unable to sync '%s' to disk: Input/output error", path);

    g_assert_cmpstr(desc, ==, want);
}

/* Without page channels the main fd is the one synced. */
static void test_fault_save_fsync_stream(void)
{
    g_autofree char *desc = fsync_save_must_fail(NULL, 0);
    g_autofree char *path = mig_path(MIG_FILE_NAME);
    g_autofree char *want = g_strdup_printf(
        "Unable to sync '%s' to disk: Input/output error", path);

    g_assert_cmpstr(desc, ==, want);
}

/*
 * fd: on a regular file: a failed save is cut back to where it began
 * (the fd's offset), as a file: one is, and what was before is kept.
 * With O_APPEND the save began at the file's end, whatever the fd's
 * offset (0 here) said: the cut used to empty the file.
 */
static void fault_save_fsync_fd(bool append)
{
    static const char *const ungoals[] = { "completed", "cancelled", NULL };
    static const char keep[] = "bytes before the save, kept";
    const char *env[] = { "MAPRAM_FAULT=save-fsync", NULL };
    MigrateCommon args = { .start.only_source = true, .start.env_source = env };
    g_autofree char *path = mig_path(MIG_FILE_NAME);
    g_autofree char *desc = NULL;
    g_autofree uint8_t *data = NULL;
    QTestState *from, *to;
    size_t len = 0;
    int fd = open(path, O_CREAT | O_TRUNC | O_RDWR | O_CLOEXEC, 0600);

    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(write(fd, keep, sizeof(keep)), ==, sizeof(keep));
    if (append) {
        close(fd);
        fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
        g_assert_cmpint(fd, >=, 0);
    }
    migrate_start(&args, &from, &to);
    migrate_ensure_converge(from);
    migrate_set_parameter_bool(from, "x-fsync", true);
    qtest_qmp_fds_assert_success(from, &fd, 1, "{'execute': 'getfd', "
                                 "'arguments': {'fdname': 'fd-mig'}}");
    close(fd);
    wait_for_serial("src_serial");
    migrate_qmp(from, "fd:fd-mig", NULL);
    wait_for_migration_status(from, "failed", ungoals);
    desc = wait_for_migration_fail(from);
    g_assert_cmpstr(desc, ==, "Unable to sync 'fd:fd-mig' to disk: Input/output error");
    assert_source_intact(from);
    qtest_quit(from);
    data = read_whole_file(path, &len);
    g_assert_cmpmem(data, len, keep, sizeof(keep));
}

static void test_fault_save_fsync_fd(void)
{
    fault_save_fsync_fd(false);
}

static void test_fault_save_fsync_fd_append(void)
{
    fault_save_fsync_fd(true);
}

/* --- the mapram tool ------------------------------------------------------ */

static const char *tool_path(void)
{
    const char *t = g_getenv("MAPRAM_TOOL");

    g_assert_nonnull(t);
    return t;
}

typedef struct ToolResult {
    int status;
    char *err;
} ToolResult;

/* Run the tool with argv (after "mapram"), stdin from @in (or /dev/null). */
static ToolResult run_tool(const char *const *env, const char *in, const char *const *argv)
{
    g_autoptr(GPtrArray) av = g_ptr_array_new();
    g_autoptr(GError) err = NULL;
    g_auto(GStrv) envp = g_get_environ();
    ToolResult r = { 0 };
    g_autofree char *cmd = NULL;
    int status = 0;

    for (const char *const *e = env; e && *e; e++) {
        g_auto(GStrv) kv = g_strsplit(*e, "=", 2);

        envp = g_environ_setenv(envp, kv[0], kv[1], TRUE);
    }
    /* the shell gives stdin a file; the tool's arguments need no quoting here */
    g_ptr_array_add(av, (char *)tool_path());
    for (const char *const *a = argv; *a; a++) {
        g_ptr_array_add(av, (char *)*a);
    }
    g_ptr_array_add(av, NULL);
    cmd = g_strjoinv(" ", (char **)av->pdata);
    {
        g_autofree char *sh = g_strdup_printf("exec %s < %s", cmd, in ? in : "/dev/null");
        const char *shargv[] = { "/bin/sh", "-c", sh, NULL };

        if (!g_spawn_sync(NULL, (char **)shargv, envp, G_SPAWN_STDOUT_TO_DEV_NULL, NULL, NULL,
                          NULL, &r.err, &status, &err)) {
            g_error("cannot run '%s': %s", cmd, err->message);
        }
    }
    r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return r;
}

static void assert_tool(const ToolResult *r, int status, const char *err)
{
    if (r->status != status || strcmp(r->err, err)) {
        qtest_fail(NULL, "mapram exited %d with '%s', not %d with '%s'", r->status, r->err,
                   status, err);
    }
}

static void assert_mode(const char *path, mode_t mode)
{
    struct stat st;

    g_assert_cmpint(stat(path, &st), ==, 0);
    if ((st.st_mode & 07777) != mode) {
        qtest_fail(NULL, "'%s' has mode %04o, not %04o", path, st.st_mode & 07777, mode);
    }
}

/* A stream file saved by a stopped ab guest. */
static char *make_stream_file(void)
{
    return mig_make_saved_file("stream.sav", NULL, false);
}

static void test_tool_save_fsync(void)
{
    g_autofree char *stream = make_stream_file();
    g_autofree char *out = mig_path("out.img");
    g_autofree char *want = g_strdup_printf(
        "mapram save: multifd channel 0: Unable to sync '%s' to disk: Input/output error\n",
        out);
    g_autofree char *empty = g_strdup_printf(
        "mapram verify: %s: Stream header at offset 0: the stream is empty "
        "(no QEVM header)\n", out);
    const char *fault[] = { "MAPRAM_FAULT=save-fsync", NULL };
    const char *save[] = { "save", "--fsync", "--channels", "2", out, NULL };
    const char *verify[] = { "verify", out, NULL };
    const char *load[] = { "load", "--fsync", out, NULL };
    ToolResult r;

    r = run_tool(NULL, stream, save);
    assert_tool(&r, 0, "");
    g_free(r.err);
    r = run_tool(NULL, NULL, verify);
    assert_tool(&r, 0, "");
    g_free(r.err);

    /* a failed sync fails the save, and leaves no file that verify passes */
    r = run_tool(fault, stream, save);
    assert_tool(&r, 1, want);
    g_free(r.err);
    r = run_tool(NULL, NULL, verify);
    assert_tool(&r, 1, empty);
    g_free(r.err);

    /* load writes no file: it has no --fsync */
    r = run_tool(NULL, NULL, load);
    assert_tool(&r, 2, "mapram load: Unknown option --fsync\n");
    g_free(r.err);
}

/*
 * After the file's data, the directory that holds it is synced: a file
 * the save created keeps its name after a crash (it was not: the
 * fdatasync of the file does not promise that).
 */
static void test_fault_save_fsync_dir(void)
{
    g_autofree char *desc = fsync_fault_save_must_fail("save-fsync-dir", "mapped-ram", 2);
    g_autofree char *path = mig_path(MIG_FILE_NAME);
    g_autofree char *want = g_strdup_printf(
        "Unable to sync the directory of '%s' to disk: Input/output error", path);

    g_assert_cmpstr(desc, ==, want);

    /* and mapram save --fsync */
    g_autofree char *stream = make_stream_file();
    g_autofree char *out = mig_path("out.img");
    g_autofree char *twant = g_strdup_printf(
        "mapram save: Unable to sync the directory of '%s' to disk: Input/output error\n", out);
    const char *fault[] = { "MAPRAM_FAULT=save-fsync-dir", NULL };
    const char *save[] = { "save", "--fsync", out, NULL };
    ToolResult r = run_tool(fault, stream, save);
    assert_tool(&r, 1, twant);
    g_free(r.err);
}

static void test_tool_convert_fsync(void)
{
    g_autofree char *stream = make_stream_file();
    g_autofree char *mapped = mig_path("mapped.img");
    g_autofree char *back = mig_path("back.sav");
    g_autofree char *want = g_strdup_printf(
        "mapram convert: Unable to sync '%s' to disk: Input/output error\n", back);
    const char *fault[] = { "MAPRAM_FAULT=save-fsync", NULL };
    const char *to_mapped[] = { "convert", "--fsync", stream, mapped, NULL };
    const char *to_stream[] = { "convert", "--fsync", mapped, back, NULL };
    const char *verify[] = { "verify", back, NULL };
    ToolResult r;

    r = run_tool(NULL, NULL, to_mapped);
    assert_tool(&r, 0, "");
    g_free(r.err);
    r = run_tool(NULL, NULL, to_stream);
    assert_tool(&r, 0, "");
    g_free(r.err);
    r = run_tool(NULL, NULL, verify);
    assert_tool(&r, 0, "");
    g_free(r.err);
    /* the stream output's one fd fails to sync */
    r = run_tool(fault, NULL, to_stream);
    assert_tool(&r, 1, want);
    g_free(r.err);
}

/* The tool started with @argv (argv[0] the tool), its stderr read through the channel returned. */
static GIOChannel *spawn_tool_stderr(const char *const *argv, GPid *pid)
{
    GError *gerr = NULL;
    int errfd;

    g_assert_true(g_spawn_async_with_pipes(NULL, (char **)argv, NULL,
                                           G_SPAWN_DO_NOT_REAP_CHILD |
                                           G_SPAWN_STDIN_FROM_DEV_NULL |
                                           G_SPAWN_STDOUT_TO_DEV_NULL,
                                           NULL, NULL, pid, NULL, NULL, &errfd, &gerr));
    g_assert_no_error(gerr);
    GIOChannel *errc = g_io_channel_unix_new(errfd);
    g_io_channel_set_close_on_unref(errc, TRUE);
    return errc;
}

/*
 * "mapram save --listen tcp:HOST:0" says which port the kernel gave it
 * (one line per listening socket, before it accepts), so a caller can
 * point the source there; a save from mapram-vm with multifd over that
 * port verifies.  --quiet leaves the line out.
 */
static void test_tool_save_listen_port(void)
{
    const char *tool = g_getenv("MAPRAM_TOOL");
    g_autofree char *file = mig_path("listened.img");
    const char *argv[] = { tool, "save", "--listen", "tcp:127.0.0.1:0", "--channels", "2",
                           file, NULL };
    MigrateCommon args = { .start.only_source = true, .caps = { "multifd" } };
    g_autoptr(GRegex) re = g_regex_new("^mapram save: listening on tcp:127\\.0\\.0\\.1:([0-9]+)\n$",
                                       0, 0, NULL);
    g_autoptr(GMatchInfo) m = NULL;
    g_autofree char *line = NULL, *rest = NULL, *port = NULL, *uri = NULL;
    g_autofree char *out = NULL, *err = NULL;
    GError *gerr = NULL;
    QTestState *from, *to;
    int status;
    GPid pid;

    GIOChannel *errc = spawn_tool_stderr(argv, &pid);
    g_assert_cmpint(g_io_channel_read_line(errc, &line, NULL, NULL, &gerr), ==,
                    G_IO_STATUS_NORMAL);
    g_assert_no_error(gerr);
    if (!g_regex_match(re, line, 0, &m)) {
        g_error("mapram save --listen said: %s", line);
    }
    port = g_match_info_fetch(m, 1);
    g_assert_cmpint(atoi(port), >, 0);

    migrate_start(&args, &from, &to);
    migrate_set_parameter_int(from, "multifd-channels", 2);
    migrate_ensure_converge(from);
    wait_for_serial("src_serial");
    uri = g_strdup_printf("tcp:127.0.0.1:%s", port);
    migrate_qmp(from, uri, NULL);
    wait_for_migration_complete(from);
    qtest_quit(from);
    g_assert_cmpint(waitpid(pid, &status, 0), ==, pid);
    g_spawn_close_pid(pid);
    g_assert_cmpint(g_io_channel_read_to_end(errc, &rest, NULL, &gerr), ==, G_IO_STATUS_NORMAL);
    g_io_channel_unref(errc);
    g_assert_cmpstr(rest, ==, "");
    g_assert_true(WIFEXITED(status));
    g_assert_cmpint(WEXITSTATUS(status), ==, 0);
    g_assert_cmpint(mig_run_tool(&out, &err, "verify", file, NULL), ==, 0);
    g_assert_cmpstr(err, ==, "");
    g_unlink(file);

    /* --quiet: nothing, even once it listens (a connection is accepted) */
    {
        g_autofree char *sock = mig_path("listen.sock");
        g_autofree char *listen_uri = g_strdup_printf("unix:%s", sock);
        const char *quiet[] = { tool, "save", "--listen", listen_uri, "--quiet", file, NULL };
        g_autofree char *said = NULL;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        gsize len = 0;

        errc = spawn_tool_stderr(quiet, &pid);
        g_strlcpy(sa.sun_path, sock, sizeof(sa.sun_path));
        for (int i = 0; connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0; i++) {
            g_assert_cmpint(i, <, 500);
            g_usleep(10 * 1000);
        }
        g_usleep(200 * 1000);
        close(fd);
        kill(pid, SIGTERM);
        g_assert_cmpint(waitpid(pid, &status, 0), ==, pid);
        g_spawn_close_pid(pid);
        g_assert_cmpint(g_io_channel_read_to_end(errc, &said, &len, &gerr), ==,
                        G_IO_STATUS_NORMAL);
        g_io_channel_unref(errc);
        /* no "listening on" line; the SIGTERM's own note may be there */
        g_assert_null(strstr(said, "listening"));
        g_unlink(file);
        g_unlink(sock);
    }
}

/* --- file modes (point 7) ------------------------------------------------- */

/*
 * With umask 0, what mapram creates is 0600 all the same; an existing
 * file keeps its mode, as with QEMU's file: migration.
 */
static void test_file_mode(void)
{
    g_autofree char *uri = mig_file_uri(MIG_FILE_NAME, NULL);
    g_autofree char *file = mig_path(MIG_FILE_NAME);
    g_autofree char *stream = NULL;
    g_autofree char *saved = mig_path("saved.img");
    g_autofree char *conv = mig_path("converted.img");
    g_autofree char *back = mig_path("back.sav");
    const char *save[] = { "save", saved, NULL };
    const char *to_stream[] = { "convert", conv, back, NULL };
    MigrateCommon args = { .start.only_source = true, .caps = { "mapped-ram" } };
    mode_t old = umask(0);
    QTestState *from, *to;
    ToolResult r;

    migrate_start(&args, &from, &to);
    migrate_ensure_converge(from);
    wait_for_serial("src_serial");
    migrate_qmp(from, uri, NULL);
    wait_for_migration_complete(from);
    assert_mode(file, 0600);

    /* an existing file: rewritten in place, its mode kept */
    g_assert_cmpint(chmod(file, 0644), ==, 0);
    qtest_qmp_assert_success(from, "{'execute': 'cont'}");
    migrate_qmp(from, uri, NULL);
    wait_for_migration_complete(from);
    assert_mode(file, 0644);
    qtest_quit(from);

    /* the tool's outputs */
    stream = make_stream_file();
    r = run_tool(NULL, stream, save);
    assert_tool(&r, 0, "");
    g_free(r.err);
    assert_mode(saved, 0600);
    {
        const char *to_mapped[] = { "convert", stream, conv, NULL };

        r = run_tool(NULL, NULL, to_mapped);
    }
    assert_tool(&r, 0, "");
    g_free(r.err);
    assert_mode(conv, 0600);
    r = run_tool(NULL, NULL, to_stream);
    assert_tool(&r, 0, "");
    g_free(r.err);
    assert_mode(back, 0600);
    g_assert_cmpint(chmod(back, 0640), ==, 0);
    r = run_tool(NULL, NULL, to_stream);
    assert_tool(&r, 0, "");
    g_free(r.err);
    assert_mode(back, 0640);
    umask(old);
}

/*
 * Each command's --help lists its own options beside the common ones
 * (they are parsed before them: without this they were missing).
 */
static void test_tool_help(void)
{
    static const char *const want[][5] = {
        { "save", "--channels=N", "--fsync", "--listen=URI", "--compression=METHOD" },
        { "serve", "--channels=N", "--json", "--max-bandwidth=SIZE", "--direct-io" },
        { "load", "--channels=N", "--connect=URI", "--uuid=UUID", "--no-checksums" },
    };

    for (size_t i = 0; i < G_N_ELEMENTS(want); i++) {
        g_autofree char *out = NULL, *err = NULL;

        g_assert_cmpint(mig_run_tool(&out, &err, want[i][0], "--help", NULL), ==, 0);
        g_assert_cmpstr(err, ==, "");
        g_assert_true(g_str_has_prefix(out, "Usage:\n"));
        for (size_t j = 1; j < G_N_ELEMENTS(want[i]); j++) {
            if (!strstr(out, want[i][j])) {
                g_error("mapram %s --help lacks %s:\n%s", want[i][0], want[i][j], out);
            }
        }
    }
}

/*
 * Option values that cannot work are usage errors (exit 2) before any
 * file or socket is touched, as every other bad option value is: an
 * unknown --compression (load --connect exited 1 after parsing its file),
 * and save's --listen-only options without --listen (silently ignored).
 */
static void test_tool_option_errors(void)
{
    g_autofree char *out_path = mig_path("never.img");
    const char *cases[][7] = {
        { "load", "--compression", "lz4", "--connect", "unix:/nonexistent/sock", out_path,
          "mapram load: --compression expects none, zlib or zstd, not 'lz4'\n" },
        { "save", "--compression", "zstd", out_path, NULL, NULL,
          "mapram save: --multifd and --compression go with --listen\n" },
        { "save", "--multifd", out_path, NULL, NULL, NULL,
          "mapram save: --multifd and --compression go with --listen\n" },
        { "save", "--listen", "unix:/nonexistent/sock", "--compression", "lz4", out_path,
          "mapram save: --compression expects none, zlib or zstd, not 'lz4'\n" },
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *out = NULL, *err = NULL;
        const char *const *c = cases[i];

        g_assert_cmpint(mig_run_tool(&out, &err, c[0], c[1], c[2], c[3], c[4], c[5], NULL), ==,
                        2);
        g_assert_cmpstr(err, ==, c[6]);
        g_assert_false(g_file_test(out_path, G_FILE_TEST_EXISTS));
    }
}

/*
 * An output that is no regular file is refused before it is opened: a
 * FIFO without a reader blocked save and convert in open(), and with one
 * they failed on the truncation.
 */
static void test_tool_output_not_regular(void)
{
    g_autofree char *fifo = mig_path("out.fifo");
    const char *const outs[][2] = { { fifo, "a FIFO" }, { "/dev/null", "a character device" } };

    g_assert_cmpint(mkfifo(fifo, 0600), ==, 0);
    for (size_t i = 0; i < G_N_ELEMENTS(outs); i++) {
        g_autofree char *out = NULL, *err = NULL;
        g_autofree char *want = g_strdup_printf("mapram save: Cannot write '%s': it is %s, and "
                                                "the output must be a regular file\n",
                                                outs[i][0], outs[i][1]);

        g_assert_cmpint(mig_run_tool(&out, &err, "save", "--quiet", outs[i][0], NULL), ==, 1);
        g_assert_cmpstr(err, ==, want);
    }
    unlink(fifo);
}

/*
 * A missing file is named once: "mapram CMD: Could not open 'PATH': ...",
 * not prefixed with its path a second time; an error that does not name
 * the file keeps the "PATH: " prefix.
 */
static void test_tool_missing_file(void)
{
    g_autofree char *path = g_build_filename(mig_tmpdir, "missing.img", NULL);
    g_autofree char *junk = g_build_filename(mig_tmpdir, "junk.img", NULL);
    g_autofree char *out_path = g_build_filename(mig_tmpdir, "out.img", NULL);
    static const char *const cmds[] = { "info", "verify", "load", "convert", "serve" };

    for (size_t i = 0; i < G_N_ELEMENTS(cmds); i++) {
        g_autofree char *out = NULL, *err = NULL;
        g_autofree char *want = g_strdup_printf(
            "mapram %s: Could not open '%s': No such file or directory\n", cmds[i], path);
        const char *second = !strcmp(cmds[i], "convert") ? out_path
                           : !strcmp(cmds[i], "serve") ? "unix:/nonexistent/sock" : NULL;

        g_assert_cmpint(mig_run_tool(&out, &err, cmds[i], path, second, NULL), ==, 1);
        g_assert_cmpstr(err, ==, want);
    }
    g_assert_true(g_file_set_contents(junk, "not a migration stream", -1, NULL));
    {
        g_autofree char *out = NULL, *err = NULL;
        g_autofree char *want = g_strdup_printf(
            "mapram info: %s: Stream header at offset 0: Not a migration stream, magic: "
            "6e6f7420 != 5145564d\n", junk);

        g_assert_cmpint(mig_run_tool(&out, &err, "info", junk, NULL), ==, 1);
        g_assert_cmpstr(err, ==, want);
    }
}

/*
 * A save that fails (here: nothing on stdin) removes the file it created,
 * and leaves a file that was there before, cut to nothing (never one that
 * looks valid).
 */
static void test_tool_save_failed(void)
{
    g_autofree char *path = g_build_filename(mig_tmpdir, "failed.img", NULL);
    g_autofree char *out = NULL, *err = NULL, *text = NULL;
    gsize len = 1;

    g_assert_cmpint(mig_run_tool(&out, &err, "save", "--quiet", path, NULL), ==, 1);
    g_assert_cmpstr(err, ==, "mapram save: Stream header at offset 0: the stream is empty "
                    "(no QEVM header)\n");
    g_assert_false(g_file_test(path, G_FILE_TEST_EXISTS));

    g_assert_true(g_file_set_contents(path, "an older save", -1, NULL));
    g_free(out);
    g_free(err);
    g_assert_cmpint(mig_run_tool(&out, &err, "save", "--quiet", path, NULL), ==, 1);
    g_assert_true(g_file_get_contents(path, &text, &len, NULL));
    g_assert_cmpuint(len, ==, 0);
    g_unlink(path);
}

/*
 * IN and OUT naming one file (the same path, a hard or a symbolic link;
 * for save, stdin redirected from FILE) are refused before OUT is opened:
 * opening OUT cuts it, and the input was gone with it.
 */
static void test_tool_same_file(void)
{
    g_autofree char *stream = make_stream_file();
    g_autofree char *hard = mig_path("hard.sav");
    g_autofree char *soft = mig_path("soft.sav");
    g_autofree char *before = NULL, *after = NULL;
    gsize len_before, len_after;

    g_assert_true(g_file_get_contents(stream, &before, &len_before, NULL));
    g_assert_cmpint(link(stream, hard), ==, 0);
    g_assert_cmpint(symlink(stream, soft), ==, 0);
    const char *outs[] = { stream, hard, soft };
    for (size_t i = 0; i < G_N_ELEMENTS(outs); i++) {
        g_autofree char *want = g_strdup_printf(
            "mapram convert: %s and %s are the same file\n", stream, outs[i]);
        const char *convert[] = { "convert", stream, outs[i], NULL };
        ToolResult r = run_tool(NULL, NULL, convert);

        assert_tool(&r, 2, want);
        g_free(r.err);
    }
    {
        g_autofree char *want = g_strdup_printf(
            "mapram save: standard input is %s, the file to write\n", hard);
        const char *save[] = { "save", hard, NULL };
        ToolResult r = run_tool(NULL, stream, save);

        assert_tool(&r, 2, want);
        g_free(r.err);
    }
    g_assert_true(g_file_get_contents(stream, &after, &len_after, NULL));
    g_assert_cmpuint(len_after, ==, len_before);
    g_assert_true(memcmp(before, after, len_before) == 0);
    g_unlink(hard);
    g_unlink(soft);
}

/*
 * A convert that fails removes the file it created (it left it empty),
 * and leaves a file that was there before cut to nothing.
 */
static void test_tool_convert_failed(void)
{
    g_autofree char *stream = make_stream_file();
    g_autofree char *mapped = mig_path("half.img");
    g_autofree char *back = mig_path("half-back.sav");
    const char *to_mapped[] = { "convert", stream, mapped, NULL };
    const char *to_stream[] = { "convert", mapped, back, NULL };
    struct stat st;
    ToolResult r;

    r = run_tool(NULL, NULL, to_mapped);
    assert_tool(&r, 0, "");
    g_free(r.err);
    /* the second half of the pages, the device state and the rest are gone */
    g_assert_cmpint(stat(mapped, &st), ==, 0);
    g_assert_cmpint(truncate(mapped, st.st_size / 2), ==, 0);

    r = run_tool(NULL, NULL, to_stream);
    g_assert_cmpint(r.status, ==, 1);
    g_assert_true(g_str_has_prefix(r.err, "mapram convert: "));
    g_free(r.err);
    g_assert_false(g_file_test(back, G_FILE_TEST_EXISTS));

    g_assert_true(g_file_set_contents(back, "an older file", -1, NULL));
    r = run_tool(NULL, NULL, to_stream);
    g_assert_cmpint(r.status, ==, 1);
    g_free(r.err);
    g_assert_cmpint(stat(back, &st), ==, 0);
    g_assert_cmpint(st.st_size, ==, 0);
    g_unlink(back);
    g_unlink(mapped);
}

/*
 * A block length that wraps the sum of the lengths past 2^64 is a bad
 * record, not a block the save tool tries to map (it aborted allocating
 * 2^49 bytes).
 */
static void test_tool_save_block_length_wraps(void)
{
    g_autofree char *stream = make_stream_file();
    g_autofree char *bad = mig_path("wrap.sav");
    g_autofree char *out = mig_path("wrap.img");
    g_autofree char *data = NULL;
    gsize len;
    static const char vram[] = "\x08vga.vram";

    g_assert_true(g_file_get_contents(stream, &data, &len, NULL));
    char *rec = memmem(data, len, vram, sizeof(vram) - 1);
    g_assert_nonnull(rec);
    memcpy(rec + sizeof(vram) - 1, "\xff\xff\xff\xff\xff\xff\xf0\x00", 8);
    g_assert_true(g_file_set_contents(bad, data, len, NULL));
    const char *save[] = { "save", "--quiet", out, NULL };
    ToolResult r = run_tool(NULL, bad, save);

    assert_tool(&r, 1, "mapram save: START section 'ram' (id 0) at offset 24: Bad RAM block "
                "record 'vga.vram' (length 0xfffffffffffff000)\n");
    g_free(r.err);
    g_assert_false(g_file_test(out, G_FILE_TEST_EXISTS));
    g_unlink(bad);
}

/* Wait up to 10 s for @path to exist (or, with !exist, to be gone). */
static bool wait_for_path(const char *path, bool exist)
{
    for (int i = 0; i < 1000; i++) {
        if (g_file_test(path, G_FILE_TEST_EXISTS) == exist) {
            return true;
        }
        g_usleep(10 * 1000);
    }
    return false;
}

/*
 * migrate_cancel of a save through "exec:mapram save F" sends the tool
 * SIGTERM: the file it created is removed, as a failed save's is, where
 * the signal used to leave it half written.
 */
static void test_tool_save_cancel_exec(void)
{
    static const char *const ungoals[] = { "completed", "failed", NULL };
    g_autofree char *args = mig_vm_args("64M", "fill", "src_serial", NULL);
    g_autofree char *file = mig_path("cancelled.img");
    g_autofree char *uri = g_strdup_printf("exec:exec %s save --quiet %s",
                                           g_getenv("MAPRAM_TOOL"), file);
    QTestState *from = qtest_init_bin(qtest_vm_binary(), "%s", args);

    migrate_set_parameter_int(from, "max-bandwidth", 4 * 1000 * 1000);
    migrate_qmp(from, uri, NULL);
    g_assert_true(wait_for_path(file, true));
    g_usleep(300 * 1000);                   /* pages on their way */
    qtest_qmp_assert_success(from, "{'execute': 'migrate_cancel'}");
    wait_for_migration_status(from, "cancelled", ungoals);
    g_assert_false(g_file_test(file, G_FILE_TEST_EXISTS));
    g_assert_true(runstate_is_running(from));
    qtest_quit(from);
}

/*
 * SIGTERM and SIGHUP end `mapram save` as they would, after it removed
 * what it created (the output; --listen's socket file) or cut an existing
 * file back to the offset it was saving at; it says so.
 */
static void tool_signal_case(int sig, bool listen, bool existing)
{
    const char *tool = g_getenv("MAPRAM_TOOL");
    g_autofree char *file = mig_path("signalled.img");
    g_autofree char *arg = g_strdup_printf("%s%s", file, existing ? ",offset=4096" : "");
    g_autofree char *sock = mig_path("signalled.sock");
    g_autofree char *listen_uri = g_strdup_printf("unix:%s", sock);
    const char *argv[] = { tool, "save", "--quiet", arg, NULL, NULL, NULL };
    g_autofree char *err = NULL;
    GError *gerr = NULL;
    int in_fd, err_fd, status;
    GPid pid;

    unlink(file);
    if (existing) {
        g_autofree char *junk = g_malloc0(8192);
        g_assert_true(g_file_set_contents(file, junk, 8192, NULL));
    }
    if (listen) {
        argv[3] = "--listen";
        argv[4] = listen_uri;
        argv[5] = arg;
    }
    g_assert_true(g_spawn_async_with_pipes(NULL, (char **)argv, NULL,
                                           G_SPAWN_DO_NOT_REAP_CHILD | G_SPAWN_STDOUT_TO_DEV_NULL,
                                           NULL, NULL, &pid, &in_fd, NULL, &err_fd, &gerr));
    g_assert_no_error(gerr);
    if (listen) {
        g_assert_true(wait_for_path(sock, true));
    } else {
        /* a stream's header: the output is open and written to, the rest never comes */
        static const uint8_t header[] = { 'Q', 'E', 'V', 'M', 0, 0, 0, 3 };
        g_assert_cmpint(write(in_fd, header, sizeof(header)), ==, sizeof(header));
        if (!existing) {
            g_assert_true(wait_for_path(file, true));
        }
        g_usleep(200 * 1000);
    }
    g_assert_cmpint(kill(pid, sig), ==, 0);
    g_assert_cmpint(waitpid(pid, &status, 0), ==, pid);
    g_assert_true(WIFSIGNALED(status));
    g_assert_cmpint(WTERMSIG(status), ==, sig);
    close(in_fd);
    GIOChannel *errc = g_io_channel_unix_new(err_fd);
    g_io_channel_set_close_on_unref(errc, TRUE);
    g_io_channel_read_to_end(errc, &err, NULL, NULL);
    g_io_channel_unref(errc);
    g_spawn_close_pid(pid);
    if (listen) {
        g_assert_false(g_file_test(sock, G_FILE_TEST_EXISTS));
    }
    if (existing) {
        struct stat st;
        g_autofree char *want = g_strdup_printf("mapram: interrupted: cut the unfinished '%s' "
                                                "back to offset 4096\n", file);
        g_assert_cmpint(stat(file, &st), ==, 0);
        g_assert_cmpint(st.st_size, ==, 4096);
        g_assert_cmpstr(err, ==, want);
        unlink(file);
    } else {
        g_assert_false(g_file_test(file, G_FILE_TEST_EXISTS));
        if (!listen) {
            g_autofree char *want = g_strdup_printf("mapram: interrupted: removed the "
                                                    "unfinished '%s'\n", file);
            g_assert_cmpstr(err, ==, want);
        }
    }
}

static void test_tool_save_signal(void)
{
    tool_signal_case(SIGTERM, false, false);
    tool_signal_case(SIGHUP, false, false);
    tool_signal_case(SIGTERM, false, true);
    tool_signal_case(SIGTERM, true, false);
}

void migration_test_add_durable(void)
{
    migration_test_add("/migration/tool/same-file", test_tool_same_file, MIG_SMOKE);
    migration_test_add("/migration/tool/convert-failed", test_tool_convert_failed, MIG_FULL);
    migration_test_add("/migration/tool/save/block-length-wraps",
                       test_tool_save_block_length_wraps, MIG_SMOKE);
    migration_test_add("/migration/fsync/params", test_fsync_params, MIG_SMOKE);
    migration_test_add("/migration/fsync/mapped-ram/multifd", test_fsync_mapped_ram_multifd,
                       MIG_SMOKE);
    migration_test_add("/migration/fsync/stream", test_fsync_stream, MIG_FULL);
    migration_test_add("/migration/fsync/fd-pipe", test_fsync_fd_pipe, MIG_FULL);
    migration_test_add("/migration/fault/save-fsync", test_fault_save_fsync, MIG_FULL);
    migration_test_add("/migration/fault/save-fsync/dir", test_fault_save_fsync_dir, MIG_FULL);
    migration_test_add("/migration/fault/save-fsync/stream", test_fault_save_fsync_stream,
                       MIG_FULL);
    migration_test_add("/migration/fault/save-fsync/fd", test_fault_save_fsync_fd, MIG_FULL);
    migration_test_add("/migration/fault/save-fsync/fd-append", test_fault_save_fsync_fd_append,
                       MIG_FULL);
    migration_test_add("/migration/tool/help", test_tool_help, MIG_SMOKE);
    migration_test_add("/migration/tool/missing-file", test_tool_missing_file, MIG_SMOKE);
    migration_test_add("/migration/tool/output-not-regular", test_tool_output_not_regular,
                       MIG_SMOKE);
    migration_test_add("/migration/tool/option-errors", test_tool_option_errors, MIG_SMOKE);
    migration_test_add("/migration/tool/save-failed", test_tool_save_failed, MIG_SMOKE);
    migration_test_add("/migration/tool/save-listen-port", test_tool_save_listen_port, MIG_SMOKE);
    migration_test_add("/migration/tool/save/cancel-exec", test_tool_save_cancel_exec, MIG_SMOKE);
    migration_test_add("/migration/tool/save/signal", test_tool_save_signal, MIG_SMOKE);
    migration_test_add("/migration/tool/save-fsync", test_tool_save_fsync, MIG_FULL);
    migration_test_add("/migration/tool/convert-fsync", test_tool_convert_fsync, MIG_FULL);
    migration_test_add("/migration/file/mode", test_file_mode, MIG_SMOKE);
}
