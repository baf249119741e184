/*
 * mapram save / load / convert on a terminal: progress lines are rewritten
 * in place and the command ends with one summary line that leaves nothing
 * of them behind ("\r", erase to the end of the line, then the summary and
 * a newline).  The tool runs on a real pseudo-terminal (forkpty); its
 * output is read back byte for byte.  With --quiet, or when stderr is not
 * a terminal, nothing is printed.
 */
#include "stream-check.h"
#include "migration-helpers.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#define LINE_RESTART "\r\033[K"

typedef struct Run {
    const char *stdin_path;     /* NULL: the terminal */
    const char *stdout_path;    /* NULL: the terminal */
    /* stdin fed through a pipe: this many bytes, a pause, then the rest */
    const char *feed_path;
    size_t feed_first;
    unsigned feed_pause_ms;
} Run;

/* Write all of buf to fd (a pipe). */
static void write_all(int fd, const uint8_t *buf, size_t len)
{
    while (len) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        g_assert_cmpint(n, >, 0);
        buf += n;
        len -= n;
    }
}

/* Runs the tool with stderr (and what run leaves) on a new terminal. */
static char *run_on_pty(const char *const *argv, const Run *run, int *status)
{
    const char *tool = g_getenv("MAPRAM_TOOL");
    g_autoptr(GPtrArray) args = g_ptr_array_new();
    int feed[2] = { -1, -1 };
    int master;

    g_assert_nonnull(tool);
    g_ptr_array_add(args, (gpointer)tool);
    for (; *argv; argv++) {
        g_ptr_array_add(args, (gpointer)*argv);
    }
    g_ptr_array_add(args, NULL);
    if (run->feed_path) {
        g_assert_cmpint(pipe(feed), ==, 0);
    }
    pid_t pid = forkpty(&master, NULL, NULL, NULL);
    g_assert_cmpint(pid, >=, 0);
    if (pid == 0) {
        if (run->feed_path) {
            dup2(feed[0], STDIN_FILENO);
            close(feed[0]);
            close(feed[1]);
        } else if (run->stdin_path) {
            int fd = open(run->stdin_path, O_RDONLY);
            dup2(fd, STDIN_FILENO);
        }
        if (run->stdout_path) {
            int fd = open(run->stdout_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
            dup2(fd, STDOUT_FILENO);
        }
        execv(tool, (char **)args->pdata);
        _exit(127);
    }
    if (run->feed_path) {
        size_t len;
        g_autofree uint8_t *data = read_whole_file(run->feed_path, &len);
        close(feed[0]);
        g_assert_cmpuint(run->feed_first, <, len);
        write_all(feed[1], data, run->feed_first);
        g_usleep(run->feed_pause_ms * 1000);
        write_all(feed[1], data + run->feed_first, len - run->feed_first);
        close(feed[1]);
    }
    /*
     * The terminal's other side stays open here: once the child's last fd
     * on it closes, a read of the master may fail with EIO before the
     * kernel has moved the child's last bytes across (it does so from a
     * work queue), and they are lost; under load that dropped the error
     * line.  So: read until the child has exited and nothing more came
     * for a while.
     */
    int slave = open(ptsname(master), O_RDWR | O_NOCTTY | O_CLOEXEC);
    g_assert_cmpint(slave, >=, 0);
    GString *out = g_string_new(NULL);
    int ws;
    bool exited = false;
    for (;;) {
        struct pollfd pfd = { master, POLLIN, 0 };
        int r = poll(&pfd, 1, 200);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        g_assert_cmpint(r, >=, 0);
        if (r > 0) {
            char buf[4096];
            ssize_t n = read(master, buf, sizeof(buf));
            if (n < 0 && errno == EINTR) {
                continue;
            }
            g_assert_cmpint(n, >, 0);
            g_string_append_len(out, buf, n);
            continue;
        }
        /* 200 ms without output: done once the child is gone */
        if (exited) {
            break;
        }
        pid_t w = waitpid(pid, &ws, WNOHANG);
        g_assert_cmpint(w, >=, 0);
        exited = w == pid;
    }
    close(slave);
    close(master);
    *status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128;
    return g_string_free(out, FALSE);
}

/* pc.ram 64 MiB + vga.vram + pc.bios of vm_start_stopped(), from query-migrate. */
static uint64_t saved_ram_bytes(QTestState *s)
{
    JsonObject *q = migrate_query(s);
    JsonObject *ram = json_object_get_object_member(q, "ram");
    uint64_t total = json_object_get_int_member(ram, "total");
    json_object_unref(q);
    return total;
}

/*
 * The whole output must be: any number of progress lines, each starting
 * with LINE_RESTART, then (LINE_RESTART if there were any) "WHAT: SIZE of
 * RAM (PAGES pages) in T s, RATE/s" and the terminal's "\r\n".  Returns
 * how many progress lines there were.
 */
static unsigned check_summary(const char *out, const char *what, uint64_t pages)
{
    g_autofree char *re = g_strdup_printf(
        "^((\\r\\x1b\\[K%s: [^\\r\\n\\x1b]*)*)(\\r\\x1b\\[K)?%s: [0-9.]+ [KMG]?i?B of RAM "
        "\\(%" G_GUINT64_FORMAT " pages\\) in [0-9]+\\.[0-9][0-9] s, [0-9.]+ [KMG]?i?B/s\\r\\n$",
        what, what, pages);
    g_autoptr(GRegex) regex = g_regex_new(re, G_REGEX_DOTALL, 0, NULL);
    g_autoptr(GMatchInfo) m = NULL;
    if (!g_regex_match(regex, out, 0, &m)) {
        g_autofree char *shown = g_strescape(out, NULL);
        g_error("%s: unexpected terminal output \"%s\"", what, shown);
    }
    g_autofree char *lines = g_match_info_fetch(m, 1);
    g_autofree char *restart = g_match_info_fetch(m, 3);
    unsigned n = 0;
    for (const char *p = lines; (p = strstr(p, LINE_RESTART)); p++) {
        n++;
    }
    /* the summary erases a progress line exactly when there was one */
    g_assert_cmpint(restart && *restart, ==, n > 0);
    return n;
}

static void test_tool_progress(void)
{
    g_autofree char *dir = qtest_mkdtemp("tool-progress");
    g_autofree char *stream = g_build_filename(dir, "stream.img", NULL);
    g_autofree char *mapped = g_build_filename(dir, "mapped.img", NULL);
    g_autofree char *mapped2 = g_build_filename(dir, "mapped2.img", NULL);
    g_autofree char *back = g_build_filename(dir, "back.img", NULL);
    g_autofree char *loaded = g_build_filename(dir, "loaded.img", NULL);
    g_autofree char *uri = g_strdup_printf("file:%s", stream);
    int status;

    QTestState *s = vm_start_stopped(dir);
    vm_save(s, uri, false);
    uint64_t pages = saved_ram_bytes(s) / TEST_PAGE_SIZE;
    qtest_quit(s);
    g_assert_cmpuint(pages, >, 64 * MiB_ / TEST_PAGE_SIZE);

    /* convert both ways: every page of RAM once */
    const char *to_mapped[] = { "convert", stream, mapped, NULL };
    Run plain = { 0 };
    g_autofree char *out1 = run_on_pty(to_mapped, &plain, &status);
    g_assert_cmpint(status, ==, 0);
    check_summary(out1, "mapram convert", pages);
    const char *to_stream[] = { "convert", mapped, back, NULL };
    g_autofree char *out2 = run_on_pty(to_stream, &plain, &status);
    g_assert_cmpint(status, ==, 0);
    check_summary(out2, "mapram convert", pages);

    /* load: the stream on stdout (a file), the summary on the terminal */
    const char *load[] = { "load", mapped, NULL };
    Run to_file = { .stdout_path = loaded };
    g_autofree char *out3 = run_on_pty(load, &to_file, &status);
    g_assert_cmpint(status, ==, 0);
    check_summary(out3, "mapram load", pages);

    /*
     * save from a pipe that stalls for a second half way: a progress line
     * is on the terminal when the summary comes, which must erase it.
     */
    size_t len;
    g_free(read_whole_file(stream, &len));
    const char *save[] = { "save", mapped2, NULL };
    Run stalled = { .feed_path = stream, .feed_first = len / 2, .feed_pause_ms = 1000 };
    g_autofree char *out4 = run_on_pty(save, &stalled, &status);
    g_assert_cmpint(status, ==, 0);
    g_assert_cmpuint(check_summary(out4, "mapram save", pages), >=, 1);

    /* --quiet: nothing at all */
    const char *quiet[] = { "convert", "--quiet", mapped, back, NULL };
    g_autofree char *out5 = run_on_pty(quiet, &plain, &status);
    g_assert_cmpint(status, ==, 0);
    g_assert_cmpstr(out5, ==, "");

    /*
     * A failure after a progress line: the line is erased and the error
     * stands alone.  The stream is cut half way, after the pause.
     */
    g_autofree char *cut = g_build_filename(dir, "cut.img", NULL);
    g_autofree uint8_t *data = read_whole_file(stream, &len);
    g_assert_true(g_file_set_contents(cut, (char *)data, len / 2 + 4096, NULL));
    Run stalled_cut = { .feed_path = cut, .feed_first = len / 2, .feed_pause_ms = 1000 };
    g_autofree char *out6 = run_on_pty(save, &stalled_cut, &status);
    g_assert_cmpint(status, ==, 1);
    g_autofree char *shown = g_strescape(out6, NULL);
    g_test_message("cut save: \"%s\"", shown);
    const char *err_line = strstr(out6, LINE_RESTART "mapram save: ");
    g_assert_nonnull(err_line);
    const char *last_restart = g_strrstr(out6, LINE_RESTART);
    const char *tail = last_restart + strlen(LINE_RESTART);
    /* after the last erase: one line, the error, nothing of the progress */
    g_assert_true(g_str_has_suffix(tail, "\r\n"));
    g_assert_null(strstr(tail, " ETA "));
    g_assert_null(strchr(tail, '\033'));
    g_assert_cmpuint(strlen(tail) - 2, ==, strcspn(tail, "\r\n"));
    qtest_rmtree(dir);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    signal(SIGPIPE, SIG_IGN);
    g_test_add_func("/tools/progress/terminal", test_tool_progress);
    return g_test_run();
}
