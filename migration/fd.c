/*
 * The fd: transport: "fd:NAME" streams through an fd passed earlier with
 * getfd (or, as with QEMU's -incoming fd:N, an fd number this process
 * inherited).  The fd may be a socket, a pipe or a file: io/ picks the
 * channel kind; a file is used from the position it was handed at.
 */
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

#include "transport.h"
#include "util/error.h"

static bool fd_parse_uri(const char *scheme, const char *spec, MigAddr *out,
                         GError **errp)
{
    out->kind = TRANSPORT_FD;
    out->fdname = g_strdup(spec);
    if (!*out->fdname) {
        error_setg(errp, "fd: URI has an empty file descriptor name");
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

    if (*end || n < 0 || n > INT_MAX || fcntl(n, F_GETFD) < 0) {
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
 * The fd named fdname, now the caller's, or -1 + errp: one the host holds
 * under that name (QMP getfd), else an inherited number.  m may be NULL
 * (no host: numbers only).
 */
static int fd_take(Migration *m, const char *fdname, GError **errp)
{
    int fd = -1;

    if (m && m->host->get_fd) {
        fd = m->host->get_fd(m->host_opaque, fdname, NULL);
    }
    return fd >= 0 ? fd : fd_dup_number(fdname, errp);
}

static IOChannel *fd_open(Migration *m, const MigAddr *a, off_t *start, GError **errp)
{
    int fd = fd_take(m, a->fdname, errp);
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
    if (io_channel_has_feature(ioc, IO_CHANNEL_FEATURE_SEEKABLE)) {
        pos = io_channel_seek(ioc, 0, SEEK_CUR, NULL);
        *start = pos < 0 ? 0 : pos;
    }
    return ioc;
}

static IOChannel *fd_open_incoming(Migration *m, const MigAddr *a, off_t *start, int *listen_fd,
                                   GError **errp)
{
    return fd_open(m, a, start, errp);
}

static IOChannel *fd_open_outgoing(Migration *m, const MigAddr *a, off_t *start, const int *stop,
                                   GError **errp)
{
    return fd_open(m, a, start, errp);
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
