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
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

IOChannel *tool_open_output(const char *path, bool *created, GError **errp)
{
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
