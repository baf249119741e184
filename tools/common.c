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
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
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
 * What a fatal signal must undo.  SIGTERM (what migrate_cancel sends an
 * exec: command's group), SIGINT and SIGHUP end the process at once, so
 * no cleanup of ours runs: the handler itself cuts back (or removes) the
 * output that a failed command would, and removes a listening socket
 * file, then dies of the signal as it would have.  The paths are copied
 * here before `armed` is set (release), the handler reads `armed`
 * (acquire) and only async-signal-safe calls.  The fd is a dup of the
 * output's, never closed, so a handler that races a disarm cannot cut
 * whatever file the output's fd number went on to name.
 */
typedef struct ToolSignalCleanup {
    int out_armed;              /* atomic */
    int out_fd;
    off_t out_offset;
    bool out_created;
    char out_path[PATH_MAX];
    char out_note[PATH_MAX + 96];
    int sock_armed;             /* atomic */
    char sock_path[PATH_MAX];
    /* main thread only: outputs armed inside an armed one (convert's image
     * around save's), whose close leaves the outer one armed */
    unsigned out_nested;
} ToolSignalCleanup;

static ToolSignalCleanup tool_cleanup = { .out_fd = -1 };

static void tool_cleanup_signal(int sig)
{
    int saved_errno = errno;

    if (__atomic_load_n(&tool_cleanup.out_armed, __ATOMIC_ACQUIRE)) {
        if (ftruncate(tool_cleanup.out_fd, tool_cleanup.out_offset) < 0) {
            /* best effort: the process ends either way */
        }
        if (tool_cleanup.out_created) {
            unlink(tool_cleanup.out_path);
        }
        if (write(STDERR_FILENO, tool_cleanup.out_note, strlen(tool_cleanup.out_note)) < 0) {
            /* nowhere to say it */
        }
    }
    if (__atomic_load_n(&tool_cleanup.sock_armed, __ATOMIC_ACQUIRE)) {
        unlink(tool_cleanup.sock_path);
    }
    errno = saved_errno;
    /* SA_RESETHAND restored the default; the signal is blocked until we return */
    raise(sig);
}

void tool_install_signal_cleanup(void)
{
    static const int sigs[] = { SIGTERM, SIGINT, SIGHUP };

    for (size_t i = 0; i < G_N_ELEMENTS(sigs); i++) {
        struct sigaction sa = { .sa_handler = tool_cleanup_signal,
                                .sa_flags = SA_RESETHAND | SA_RESTART };
        struct sigaction old;

        /* one ignored by whoever started us (nohup) stays ignored */
        if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler == SIG_IGN) {
            continue;
        }
        sigemptyset(&sa.sa_mask);
        for (size_t j = 0; j < G_N_ELEMENTS(sigs); j++) {
            sigaddset(&sa.sa_mask, sigs[j]);
        }
        sigaction(sigs[i], &sa, NULL);
    }
}

void tool_arm_output(IOChannel *out, const char *path, bool created, uint64_t offset)
{
    int fd = io_channel_get_fd(out);

    if (__atomic_load_n(&tool_cleanup.out_armed, __ATOMIC_ACQUIRE)) {
        tool_cleanup.out_nested++;
        return;
    }
    if (fd < 0 || strlen(path) >= sizeof(tool_cleanup.out_path)) {
        return;
    }
    fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    if (fd < 0) {
        return;
    }
    tool_cleanup.out_fd = fd;
    tool_cleanup.out_offset = offset;
    tool_cleanup.out_created = created;
    strcpy(tool_cleanup.out_path, path);
    if (created) {
        snprintf(tool_cleanup.out_note, sizeof(tool_cleanup.out_note),
                 "mapram: interrupted: removed the unfinished '%s'\n", path);
    } else {
        snprintf(tool_cleanup.out_note, sizeof(tool_cleanup.out_note),
                 "mapram: interrupted: cut the unfinished '%s' back to offset %llu\n", path,
                 (unsigned long long)offset);
    }
    __atomic_store_n(&tool_cleanup.out_armed, 1, __ATOMIC_RELEASE);
}

void tool_arm_socket(const char *path)
{
    if (strlen(path) >= sizeof(tool_cleanup.sock_path)) {
        return;
    }
    strcpy(tool_cleanup.sock_path, path);
    __atomic_store_n(&tool_cleanup.sock_armed, 1, __ATOMIC_RELEASE);
}

void tool_disarm_socket(void)
{
    __atomic_store_n(&tool_cleanup.sock_armed, 0, __ATOMIC_RELEASE);
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
    if (tool_cleanup.out_nested) {
        tool_cleanup.out_nested--;
    } else {
        __atomic_store_n(&tool_cleanup.out_armed, 0, __ATOMIC_RELEASE);
    }
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
