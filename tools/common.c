/*
 * Helpers shared by the mapram subcommands.
 */
#include "mapram-tool.h"
#include "../migration/migration-internal.h"
#include "util/error.h"
#include "util/osdep.h"
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

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

struct Progress {
    const char *what;
    bool enabled;
    uint64_t total;
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

static void progress_print(Progress *p, uint64_t done, bool final)
{
    gint64 now = g_get_monotonic_time();
    double secs = (now - p->start_us) / 1e6;
    double rate = secs > 0 ? done / secs : 0;
    g_autofree char *d = g_format_size_full(done, G_FORMAT_SIZE_IEC_UNITS);
    g_autofree char *r = g_format_size_full((guint64)rate, G_FORMAT_SIZE_IEC_UNITS);
    if (p->total && rate > 0 && !final) {
        double eta = (p->total > done ? p->total - done : 0) / rate;
        g_autofree char *t = g_format_size_full(p->total, G_FORMAT_SIZE_IEC_UNITS);
        fprintf(stderr, "\r%s: %s of %s, %s/s, ETA %.0f s   ", p->what, d, t, r, eta);
    } else {
        fprintf(stderr, "\r%s: %s, %s/s%s", p->what, d, r, final ? "\n" : "   ");
    }
    fflush(stderr);
}

void progress_update(Progress *p, uint64_t done)
{
    if (!p->enabled) {
        return;
    }
    gint64 now = g_get_monotonic_time();
    if (now - p->last_us < 500000) {
        return;
    }
    p->last_us = now;
    progress_print(p, done, false);
}

void progress_finish(Progress *p)
{
    g_free(p);
}
