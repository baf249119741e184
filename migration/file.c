/*
 * The file: transport: "file:PATH[,offset=N]" or a channels address of
 * transport "file".  The bytes before the offset belong to whoever wrote
 * them (a management layer's header); the stream starts at the offset.
 * PATH may be /dev/fdset/N (qemu_open asks the monitor's fdsets).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mapped-ram-share.h"
#include "transport.h"
#include "util/cutils.h"
#include "util/error.h"
#include "util/osdep.h"

#define FIFO_POLL_MS 20     /* how often a wait for a FIFO's writer looks at *stop */

static bool file_parse_uri(const char *scheme, const char *spec, MigAddr *out,
                           GError **errp)
{
    const char *opt = strstr(spec, ",offset=");

    out->kind = TRANSPORT_FILE;
    if (opt) {
        const char *val = opt + strlen(",offset=");
        uint64_t off;
        int ret = qemu_strtosz(val, NULL, &off);

        if (ret < 0) {
            error_setg(errp, "file URI has bad offset %s: %s", val, g_strerror(-ret));
            return false;
        }
        out->filename = g_strndup(spec, opt - spec);
        out->offset = off;
    } else {
        out->filename = g_strdup(spec);
    }
    if (!*out->filename) {
        error_setg(errp, "file URI has an empty file name");
        return false;
    }
    return true;
}

static bool file_parse_channel(JsonObject *addr, MigAddr *out, GError **errp)
{
    out->kind = TRANSPORT_FILE;
    out->filename = g_strdup(json_object_get_string_member(addr, "filename"));
    out->offset = json_object_get_int_member(addr, "offset");
    return true;
}

static char *file_describe(const MigAddr *a)
{
    return g_strdup_printf("file:%s,offset=%llu", a->filename,
                           (unsigned long long)a->offset);
}

/*
 * A FIFO streams at offset 0 and fails with ESPIPE at any other (QEMU's
 * text; the channel refuses to seek a FIFO before any syscall, so the
 * message is made here).  A seekable file is always seeked, offset 0 too:
 * an fd from /dev/fdset/N is a dup that shares its file position with the
 * fd the fdset holds, so a second save or load through the same fdset
 * would otherwise start where the first one ended (QEMU seeks only to a
 * non-zero offset, and writes such a second save after a hole).
 */
static bool file_seek_to_offset(IOChannel *ioc, uint64_t offset, GError **errp)
{
    bool seekable = io_channel_has_feature(ioc, IO_CHANNEL_FEATURE_SEEKABLE);

    if (!offset && !seekable) {
        return true;
    }
    if (!seekable) {
        error_setg_errno(errp, ESPIPE, "Unable to seek to offset %lld whence %d in file",
                         (long long)offset, SEEK_SET);
        return false;
    }
    return io_channel_seek(ioc, offset, SEEK_SET, errp) >= 0;
}

bool file_addr_is_fifo(const MigAddr *a)
{
    struct stat st;

    return a->kind == TRANSPORT_FILE && !g_str_has_prefix(a->filename, "/dev/fdset/") &&
           stat(a->filename, &st) == 0 && S_ISFIFO(st.st_mode);
}

static bool stop_set(const int *stop)
{
    return __atomic_load_n(stop, __ATOMIC_ACQUIRE);
}

static bool set_blocking(int fd, const char *path, GError **errp)
{
    int flags = fcntl(fd, F_GETFL);

    if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0) {
        error_setg_errno(errp, errno, "Unable to make '%s' blocking", path);
        return false;
    }
    return true;
}

bool file_wait_for_writer(IOChannel *ioc, const char *path, const int *stop, GError **errp)
{
    int fd = io_channel_get_fd(ioc);
    struct stat st;
    int flags;

    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISFIFO(st.st_mode) ||
        (flags = fcntl(fd, F_GETFL)) < 0 || !(flags & O_NONBLOCK)) {
        return true;
    }
    /* no event until a writer came and wrote, or came and went (POLLHUP) */
    struct pollfd pfd = { .fd = fd, .events = POLLIN };
    for (;;) {
        if (stop_set(stop)) {
            error_setg_errno(errp, ECANCELED, "Waiting for a writer on '%s'", path);
            return false;
        }
        int ret = poll(&pfd, 1, FIFO_POLL_MS);
        if (ret > 0) {
            break;
        }
        if (ret < 0 && errno != EINTR) {
            error_setg_errno(errp, errno, "Waiting for a writer on '%s'", path);
            return false;
        }
    }
    return set_blocking(fd, path, errp);
}

static IOChannel *file_open_outgoing(Migration *m, const MigAddr *a, off_t *start,
                                     const int *stop, GError **errp)
{
    if (file_addr_is_fifo(a)) {
        /*
         * QEMU >= 9.0.1 truncates the file it saves into, which fails on
         * a FIFO with this error, after an open that waits for a reader
         * with its monitor held (7.2 opened with O_TRUNC and streamed).
         * The error, at once: a stream goes to exec: or fd:.
         */
        error_setg_errno(errp, EINVAL, "failed to truncate migration file to offset %llx",
                         (unsigned long long)a->offset);
        return NULL;
    }
    g_autoptr(IOChannel) ioc = io_channel_file_open(a->filename, O_WRONLY | O_CREAT, 0600, errp);

    if (!ioc) {
        return NULL;
    }
    /* Before the truncation: a VM restored with x-mapped-ram-shared may map this file. */
    if (!mapped_ram_share_lock_writer(ioc, a->filename, errp)) {
        return NULL;
    }
    /* The text is QEMU's, so the channel's own message gives way to it. */
    if (!io_channel_truncate_for_write(ioc, a->offset, NULL)) {
        error_setg_errno(errp, errno, "failed to truncate migration file to offset %llx",
                         (unsigned long long)a->offset);
        return NULL;
    }
    if (!file_seek_to_offset(ioc, a->offset, errp)) {
        return NULL;
    }
    io_channel_set_name(ioc, "migration-file-outgoing");
    *start = a->offset;
    return g_steal_pointer(&ioc);
}

static IOChannel *file_open_incoming(Migration *m, const MigAddr *a, off_t *start,
                                     IOListener **listener, GError **errp)
{
    /* a FIFO's read end opens at once this way; the load waits for its writer */
    g_autoptr(IOChannel) ioc = io_channel_file_open(
        a->filename, O_RDONLY | (file_addr_is_fifo(a) ? O_NONBLOCK : 0), 0, errp);

    if (!ioc || !file_seek_to_offset(ioc, a->offset, errp)) {
        return NULL;
    }
    io_channel_set_name(ioc, "migration-file-incoming");
    *start = a->offset;
    return g_steal_pointer(&ioc);
}

const MigTransport mig_transport_file = {
    .kind = TRANSPORT_FILE,
    .uri_schemes = (const char *const[]){ "file:", NULL },
    .channel_name = "file",
    .parse_uri = file_parse_uri,
    .parse_channel = file_parse_channel,
    .describe = file_describe,
    .open_outgoing = file_open_outgoing,
    .open_incoming = file_open_incoming,
};
