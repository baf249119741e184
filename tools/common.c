/*
 * Helpers shared by the mapram subcommands.
 */
#include "mapram-tool.h"
#include "libvirt-compress.h"
#include "libvirt-image.h"
#include "../migration/migration-internal.h"
#include "../migration/ram-codec.h"
#include "util/error.h"
#include "util/osdep.h"
#include "util/thread.h"
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void tool_prefix_file(GError **errp, const char *file)
{
    g_autofree char *quoted = g_strdup_printf("'%s'", file);

    if (errp && *errp && !strstr((*errp)->message, quoted)) {
        g_prefix_error(errp, "%s: ", file);
    }
}

void tool_file_error(const char *cmd, const char *file, const char *message)
{
    g_autofree char *quoted = g_strdup_printf("'%s'", file);

    if (strstr(message, quoted)) {
        fprintf(stderr, "mapram %s: %s\n", cmd, message);
    } else {
        fprintf(stderr, "mapram %s: %s: %s\n", cmd, file, message);
    }
}

bool tool_is_same_file(const struct stat *st, const char *path)
{
    struct stat out;

    return stat(path, &out) == 0 && out.st_dev == st->st_dev && out.st_ino == st->st_ino;
}

/*
 * What SIGTERM (what migrate_cancel sends an exec: command's group),
 * SIGINT and SIGHUP must undo before the process dies of them: the
 * output a failed command would cut back (or remove), and a listening
 * socket's file.  The signals are blocked in every thread and taken by
 * one thread of their own with sigwait(): it does the cleanup as
 * ordinary code, under the lock that arming and disarming take, so it
 * never meets a file whose command just finished with it, and then ends
 * the process with the signal.  (A handler would run on whatever thread
 * the kernel picked, and under TSan not at all while that thread waits
 * on a futex.)
 */
typedef struct ToolSignalCleanup {
    QemuMutex lock;             /* all of the below; a zeroed QemuMutex is ready */
    bool out_armed;
    int out_fd;                 /* a dup of the output's fd, kept */
    off_t out_offset;
    bool out_created;
    char *out_path;
    bool sock_armed;
    char *sock_path;
    /* outputs armed inside an armed one (convert's image around save's),
     * whose close leaves the outer one armed */
    unsigned out_nested;
} ToolSignalCleanup;

static ToolSignalCleanup tool_cleanup = { .out_fd = -1 };

static const int tool_cleanup_sigs[] = { SIGTERM, SIGINT, SIGHUP };

static gpointer tool_signal_thread(gpointer opaque)
{
    sigset_t *set = opaque;
    int sig;

    while (sigwait(set, &sig) != 0) {
    }
    qemu_mutex_lock(&tool_cleanup.lock);    /* kept: nothing is armed or closed after this */
    if (tool_cleanup.out_armed) {
        if (ftruncate(tool_cleanup.out_fd, tool_cleanup.out_offset) < 0) {
            /* best effort: the process ends either way */
        }
        if (tool_cleanup.out_created) {
            unlink(tool_cleanup.out_path);
            fprintf(stderr, "mapram: interrupted: removed the unfinished '%s'\n",
                    tool_cleanup.out_path);
        } else {
            fprintf(stderr, "mapram: interrupted: cut the unfinished '%s' back to offset %llu\n",
                    tool_cleanup.out_path, (unsigned long long)tool_cleanup.out_offset);
        }
    }
    if (tool_cleanup.sock_armed) {
        unlink(tool_cleanup.sock_path);
    }
    /* die of it, as without us: the default action, delivered to this thread */
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, sig);
    signal(sig, SIG_DFL);
    pthread_sigmask(SIG_UNBLOCK, &one, NULL);
    raise(sig);
    _exit(128 + sig);
}

void tool_install_signal_cleanup(void)
{
    static sigset_t set;

    sigemptyset(&set);
    for (size_t i = 0; i < G_N_ELEMENTS(tool_cleanup_sigs); i++) {
        struct sigaction old;

        /* one ignored by whoever started us (nohup) stays ignored */
        if (sigaction(tool_cleanup_sigs[i], NULL, &old) == 0 && old.sa_handler == SIG_IGN) {
            continue;
        }
        sigaddset(&set, tool_cleanup_sigs[i]);
    }
    /* before any other thread: they all inherit the mask */
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    g_thread_unref(g_thread_new("signals", tool_signal_thread, &set));
}

void tool_arm_output(IOChannel *out, const char *path, bool created, uint64_t offset)
{
    int fd = io_channel_get_fd(out);

    qemu_mutex_lock(&tool_cleanup.lock);
    if (tool_cleanup.out_armed) {
        tool_cleanup.out_nested++;
    } else if (fd >= 0 && (fd = fcntl(fd, F_DUPFD_CLOEXEC, 3)) >= 0) {
        if (tool_cleanup.out_fd >= 0) {
            close(tool_cleanup.out_fd);
        }
        tool_cleanup.out_fd = fd;
        tool_cleanup.out_offset = offset;
        tool_cleanup.out_created = created;
        g_free(tool_cleanup.out_path);
        tool_cleanup.out_path = g_strdup(path);
        tool_cleanup.out_armed = true;
    }
    qemu_mutex_unlock(&tool_cleanup.lock);
}

static void tool_disarm_output(void)
{
    qemu_mutex_lock(&tool_cleanup.lock);
    if (tool_cleanup.out_nested) {
        tool_cleanup.out_nested--;
    } else {
        tool_cleanup.out_armed = false;
    }
    qemu_mutex_unlock(&tool_cleanup.lock);
}

void tool_arm_socket(const char *path)
{
    qemu_mutex_lock(&tool_cleanup.lock);
    g_free(tool_cleanup.sock_path);
    tool_cleanup.sock_path = g_strdup(path);
    tool_cleanup.sock_armed = true;
    qemu_mutex_unlock(&tool_cleanup.lock);
}

void tool_disarm_socket(void)
{
    qemu_mutex_lock(&tool_cleanup.lock);
    tool_cleanup.sock_armed = false;
    qemu_mutex_unlock(&tool_cleanup.lock);
}

/* What a non-regular file is, for a refusal. */
static const char *file_kind(mode_t mode)
{
    return S_ISFIFO(mode) ? "a FIFO" : S_ISSOCK(mode) ? "a socket" :
           S_ISCHR(mode) ? "a character device" : S_ISDIR(mode) ? "a directory" :
           S_ISBLK(mode) ? "a block device" : "not a regular file";
}

IOChannel *tool_open_output(const char *path, bool *created, GError **errp)
{
    struct stat st;

    /*
     * The output is written by offset and cut to size: a FIFO would block
     * the open until a reader came, then fail on the truncation anyway.
     */
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
        *created = false;
        error_setg(errp, "Cannot write '%s': it is %s, and the output must be a regular file",
                   path, file_kind(st.st_mode));
        return NULL;
    }
    IOChannel *ioc = io_channel_file_open(path, O_WRONLY | O_CREAT | O_EXCL, 0600, NULL);

    *created = ioc != NULL;
    return ioc ? ioc : io_channel_file_open(path, O_WRONLY | O_CREAT, 0600, errp);
}

bool tool_close_output(IOChannel *out, const char *path, bool created, uint64_t offset, bool ok,
                       GError **errp)
{
    if (!ok) {
        /* nothing that looks like a valid file; the error is the caller's */
        io_channel_truncate(out, offset, NULL);
        if (created) {
            unlink(path);           /* nothing of the user's was there; still under our lock */
        }
    }
    /* from here a signal finds the file finished, or already cut and removed */
    tool_disarm_output();
    bool closed = io_channel_close(out, ok ? errp : NULL);
    if (ok && !closed && created) {
        unlink(path);
    }
    return ok && closed;
}

bool tool_parse_file_arg(const char *arg, char **path, uint64_t *offset, GError **errp)
{
    MigAddr a;
    g_autofree char *uri = g_strconcat("file:", arg, NULL);
    if (!migration_parse_uri(uri, &a, errp)) {
        mig_addr_clear(&a);
        return false;
    }
    *path = g_strdup(a.filename);
    *offset = a.offset;
    mig_addr_clear(&a);
    return true;
}

QEMUFile *tool_open_input(const char *path, uint64_t offset, GError **errp)
{
    int fd = qemu_open(path, O_RDONLY, 0, errp);
    if (fd < 0) {
        return NULL;
    }
    if (lseek(fd, offset, SEEK_SET) < 0) {
        error_setg_errno(errp, errno, "Unable to seek to offset %llu in '%s'",
                         (unsigned long long)offset, path);
        qemu_close(fd);
        return NULL;
    }
    g_autoptr(IOChannel) ioc = io_channel_file_new_fd(fd, path);
    return qemu_file_new_input(ioc, offset);
}

QEMUFile *tool_open_image_data(const char *path, const LibvirtImage *img, CodecPump **pump,
                               GError **errp)
{
    *pump = NULL;
    if (img->format == LIBVIRT_FORMAT_RAW || img->format == LIBVIRT_FORMAT_SPARSE) {
        return tool_open_input(path, img->data_offset, errp);
    }
    if (!codec_supported(img->format, errp)) {
        return NULL;
    }
    int fd = qemu_open(path, O_RDONLY, 0, errp);
    if (fd < 0) {
        return NULL;
    }
    int pipefd[2];
    if (lseek(fd, img->data_offset, SEEK_SET) < 0 || pipe2(pipefd, O_CLOEXEC) < 0) {
        error_setg_errno(errp, errno, "Unable to read the %s data of '%s'",
                         libvirt_format_name(img->format), path);
        qemu_close(fd);
        return NULL;
    }
    *pump = codec_pump_start(img->format, false, fd, pipefd[1], errp);
    if (!*pump) {
        close(pipefd[0]);
        return NULL;
    }
    g_autofree char *name = g_strdup_printf("%s (%s)", path, libvirt_format_name(img->format));
    g_autoptr(IOChannel) ioc = io_channel_file_new_fd(pipefd[0], name);
    return qemu_file_new_input(ioc, 0);
}

bool tool_close_image_data(QEMUFile *f, CodecPump *pump, bool ok, GError **errp)
{
    if (pump) {
        IOChannel *ioc = qemu_file_get_ioc(f);
        g_autofree uint8_t *buf = g_malloc(64 * 1024);
        while (io_channel_read_all_eof(ioc, buf, 64 * 1024, NULL) > 0) {
        }
    }
    qemu_fclose(f, NULL);
    GError *err = NULL;
    if (pump && !codec_pump_finish(pump, &err)) {
        /* damaged compressed data: the cause of whatever the reader saw */
        if (!ok && errp) {
            g_clear_error(errp);
        }
        g_propagate_error(errp, err);
        return false;
    }
    return ok;
}

struct Progress {
    const char *what;
    bool enabled;
    uint64_t total;
    uint64_t done;             /* bytes of RAM gone through, as last updated */
    bool shown;                /* a progress line is on the terminal */
    gint64 start_us, last_us;
};

Progress *progress_new(const char *what, bool enabled)
{
    Progress *p = g_new0(Progress, 1);
    p->what = what;
    p->enabled = enabled && isatty(STDERR_FILENO);
    p->start_us = p->last_us = g_get_monotonic_time();
    return p;
}

void progress_set_total(Progress *p, uint64_t total) { p->total = total; }

/* GLib's IEC size with a plain space: the line also ends up in logs and pipes. */
static char *format_size(uint64_t bytes)
{
    char *s = g_format_size_full(bytes, G_FORMAT_SIZE_IEC_UNITS);
    char *nbsp = strstr(s, "\xc2\xa0");
    if (nbsp) {
        *nbsp = ' ';
        memmove(nbsp + 1, nbsp + 2, strlen(nbsp + 2) + 1);
    }
    return s;
}

/* "\r" back to the line's start, "ESC [ K" erases to its end: no leftovers. */
#define LINE_RESTART "\r\033[K"

void progress_update(Progress *p, uint64_t done)
{
    p->done = done;
    if (!p->enabled) {
        return;
    }
    gint64 now = g_get_monotonic_time();
    if (now - p->last_us < 500000) {
        return;
    }
    p->last_us = now;
    double secs = (now - p->start_us) / 1e6;
    double rate = secs > 0 ? done / secs : 0;
    g_autofree char *d = format_size(done);
    g_autofree char *r = format_size((guint64)rate);
    if (p->total && rate > 0) {
        double eta = (p->total > done ? p->total - done : 0) / rate;
        g_autofree char *t = format_size(p->total);
        fprintf(stderr, LINE_RESTART "%s: %s of %s, %s/s, ETA %.0f s", p->what, d, t, r, eta);
    } else {
        fprintf(stderr, LINE_RESTART "%s: %s, %s/s", p->what, d, r);
    }
    fflush(stderr);
    p->shown = true;
}

void progress_finish(Progress *p, bool ok)
{
    if (p->enabled && ok) {
        double secs = (g_get_monotonic_time() - p->start_us) / 1e6;
        g_autofree char *d = format_size(p->done);
        g_autofree char *r = format_size(secs > 0 ? (guint64)(p->done / secs) : 0);
        fprintf(stderr, "%s%s: %s of RAM (%" G_GUINT64_FORMAT " pages) in %.2f s, %s/s\n",
                p->shown ? LINE_RESTART : "", p->what, d, (guint64)(p->done / RAM_PAGE_SIZE),
                secs, r);
    } else if (p->shown) {
        fprintf(stderr, LINE_RESTART);
    }
    fflush(stderr);
    g_free(p);
}
