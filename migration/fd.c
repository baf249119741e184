/*
 * The fd: transport: "fd:NAME" streams through an fd passed earlier with
 * getfd (or, for a load only, as with QEMU's -incoming fd:N, an fd number
 * this process inherited).  The fd may be a socket, a pipe or a file: io/ picks the
 * channel kind; a file is used from the position it was handed at.
 */
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

#include "mapped-ram-share.h"
#include "transport.h"
#include "util/error.h"

static bool fd_parse_uri(const char *scheme, const char *spec, MigAddr *out,
                         GError **errp)
{
    out->kind = TRANSPORT_FD;
    out->fdname = g_strdup(spec);
    if (!*out->fdname) {
        error_setg(errp, "invalid file descriptor address");       /* QEMU's words */
        return false;
    }
    return true;
}

static char *fd_describe(const MigAddr *a)
{
    return g_strdup_printf("fd:%s", a->fdname);
}

/*
 * An inherited fd number stays the process's: the channel gets a dup,
 * close-on-exec so that exec: children never see it.
 */
static int fd_dup_number(const char *fdname, GError **errp)
{
    char *end;
    long n = strtol(fdname, &end, 10);
    int fd;

    if (end == fdname || *end || n < 0 || n > INT_MAX) {
        error_setg(errp, "Invalid file descriptor number '%s'", fdname);
        return -1;
    }
    if (fcntl(n, F_GETFD) < 0) {
        error_setg(errp, "File descriptor named '%s' has not been found", fdname);
        return -1;
    }
    fd = fcntl(n, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) {
        error_setg_errno(errp, errno, "Unable to duplicate file descriptor %ld", n);
    }
    return fd;
}

/*
 * The fd named fdname, now the caller's, or -1 + errp.  As in QEMU, a
 * save takes only an fd the host holds under that name (QMP getfd,
 * whose names never start with a digit); a load takes a name starting
 * with a digit as an fd number this process inherited.  A save never
 * takes a number: fd:4 would be whatever the VM has open as 4 (a
 * memory backend's memfd, a QMP socket), and the stream would be
 * written over it.  m may be NULL (no host: numbers only).
 */
static int fd_take(Migration *m, const MigAddr *a, bool incoming, GError **errp)
{
    /* -incoming is read before any monitor exists: QEMU parses a number there */
    if (m && m->host->get_fd && !a->cmdline && (!incoming || !g_ascii_isdigit(a->fdname[0]))) {
        return m->host->get_fd(m->host_opaque, a->fdname, errp);
    }
    return fd_dup_number(a->fdname, errp);
}

static IOChannel *fd_open(Migration *m, const MigAddr *a, bool incoming, off_t *start,
                          GError **errp)
{
    int fd = fd_take(m, a, incoming, errp);
    IOChannel *ioc;
    off_t pos;

    if (fd < 0) {
        return NULL;
    }
    ioc = io_channel_new_fd(fd, "migration-fd", errp);
    if (!ioc) {
        close(fd);
        return NULL;
    }
    if (!incoming) {
        /* as file: does: a file a shared restore maps is not written (nor cut back) */
        g_autofree char *proc = g_strdup_printf("/proc/self/fd/%d", fd);
        g_autofree char *path = g_file_read_link(proc, NULL);
        if (!mapped_ram_share_lock_writer(ioc, path ? path : a->fdname, errp)) {
            io_channel_unref(ioc);
            return NULL;
        }
    }
    if (io_channel_has_feature(ioc, IO_CHANNEL_FEATURE_SEEKABLE)) {
        pos = io_channel_seek(ioc, 0, SEEK_CUR, NULL);
        *start = pos < 0 ? 0 : pos;
    }
    return ioc;
}

static IOChannel *fd_open_incoming(Migration *m, const MigAddr *a, off_t *start,
                                   IOListener **listener, GError **errp)
{
    return fd_open(m, a, true, start, errp);
}

static IOChannel *fd_open_outgoing(Migration *m, const MigAddr *a, off_t *start, const int *stop,
                                   GError **errp)
{
    return fd_open(m, a, false, start, errp);
}

/* No channels name: QMP gives an fd as a socket address (socket.c). */
const MigTransport mig_transport_fd = {
    .kind = TRANSPORT_FD,
    .uri_schemes = (const char *const[]){ "fd:", NULL },
    .parse_uri = fd_parse_uri,
    .describe = fd_describe,
    .open_outgoing = fd_open_outgoing,
    .open_incoming = fd_open_incoming,
};
