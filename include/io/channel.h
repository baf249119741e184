/*
 * IOChannel: a byte channel with one small vtable (QEMU io/'s shape).
 *
 * All channels are blocking; callers that must not block use threads.
 * Only io/channel.c calls through the vtable: its wrappers check that the
 * op exists and the feature is present, handle EINTR and short transfers
 * (the *_all helpers), and produce the error text.
 *
 * Calling sequence:
 *   IOChannel *ioc = io_channel_file_open(path, O_WRONLY | O_CREAT, 0600, errp);
 *   io_channel_write_all(ioc, buf, len, errp);
 *   io_channel_pwritev_all(ioc, iov, niov, offset, errp);     (SEEKABLE only)
 *   io_channel_close(ioc, errp);  io_channel_unref(ioc);
 *
 * Ownership: constructors return a channel with one reference, owning the
 * fd(s) they were given; io_channel_unref() of the last reference closes
 * (if not yet closed) and frees.
 */
#ifndef IO_CHANNEL_H
#define IO_CHANNEL_H

#include <glib.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "util/thread.h"

typedef struct IOChannel IOChannel;

typedef enum {
    IO_CHANNEL_FEATURE_SEEKABLE  = 1u << 0,  /* preadv/pwritev/seek work */
    IO_CHANNEL_FEATURE_FD_PASS   = 1u << 1,  /* can receive fds (unix socket) */
    IO_CHANNEL_FEATURE_SHUTDOWN  = 1u << 2,  /* shutdown() unblocks I/O */
} IOChannelFeature;

typedef struct IOChannelOps {
    const char *kind;                     /* "file", "socket", "command", "buffer" */
    /* mandatory: >0 bytes moved, 0 EOF (read), -1 error set */
    ssize_t (*readv)(IOChannel *ioc, const struct iovec *iov, size_t niov, GError **errp);
    ssize_t (*writev)(IOChannel *ioc, const struct iovec *iov, size_t niov, GError **errp);
    int (*close)(IOChannel *ioc, GError **errp);
    /*
     * Optional second half of close, run after it outside the channel's
     * lock: waits for what the end depends on (a command's exit).  A
     * shutdown from another thread still reaches the channel meanwhile.
     */
    int (*reap)(IOChannel *ioc, GError **errp);
    /* Releases the implementation's resources; the struct itself (IOChannel
     * first, allocated with g_malloc) is g_free()d by io_channel_unref. */
    void (*finalize)(IOChannel *ioc);
    /* optional */
    ssize_t (*preadv)(IOChannel *ioc, const struct iovec *iov, size_t niov, off_t off, GError **errp);
    ssize_t (*pwritev)(IOChannel *ioc, const struct iovec *iov, size_t niov, off_t off, GError **errp);
    off_t (*seek)(IOChannel *ioc, off_t off, int whence, GError **errp);
    int (*shutdown)(IOChannel *ioc, GError **errp);
    int (*get_fd)(IOChannel *ioc);
    /* Size of what the channel stores; -1 with the error set otherwise. */
    off_t (*size)(IOChannel *ioc, GError **errp);
    /* Set that size, zero-filling when it grows; 0, or -1 with errno and
     * the error set.  The stream cursor does not move. */
    int (*truncate)(IOChannel *ioc, off_t len, GError **errp);
    /* Get what was written onto stable storage; 0, or -1 with errno and
     * the error set. */
    int (*sync)(IOChannel *ioc, GError **errp);
} IOChannelOps;

struct IOChannel {
    const IOChannelOps *ops;
    unsigned features;       /* IOChannelFeature bits, set by the constructor */
    char *name;              /* for messages, e.g. "migration-file-outgoing" */
    /*
     * The name is the peer's address (a socket this end connected):
     * a stream's write errors name it (docs/user-guide.md), where
     * every other channel's own error is the whole message, as QEMU's.
     */
    bool name_is_peer;
    gint refcount;
    /*
     * Serialises ops->shutdown (any thread, e.g. a cancel) against
     * ops->close (the owner): a shutdown never meets a closed, maybe
     * reused, fd.  closed is written under it by the owner only, so the
     * owner may read it without.
     */
    QemuMutex lock;
    bool closed;
    /*
     * An fd closed right after the channel (-1: none), e.g. one holding a
     * save's flock() on the channel's file until its last byte is out.
     * Set once by the opener, before the channel is shared.
     */
    int companion_fd;
};

/* For channel implementations. */
void io_channel_init(IOChannel *ioc, const IOChannelOps *ops, const char *name);

IOChannel *io_channel_ref(IOChannel *ioc);
void io_channel_unref(IOChannel *ioc);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(IOChannel, io_channel_unref)

bool io_channel_has_feature(IOChannel *ioc, IOChannelFeature f);
void io_channel_set_name(IOChannel *ioc, const char *name);
int io_channel_get_fd(IOChannel *ioc);         /* -1 if none */
/* The channel owns fd from now on and closes it when it is closed. */
void io_channel_set_companion_fd(IOChannel *ioc, int fd);

ssize_t io_channel_readv(IOChannel *ioc, const struct iovec *iov, size_t niov, GError **errp);
ssize_t io_channel_writev(IOChannel *ioc, const struct iovec *iov, size_t niov, GError **errp);
/* 1 = all read; 0 = EOF before the first byte; -1 = error (incl. EOF mid-way). */
int io_channel_read_all_eof(IOChannel *ioc, void *buf, size_t len, GError **errp);
bool io_channel_read_all(IOChannel *ioc, void *buf, size_t len, GError **errp);
/* The same for an iovec (multifd reads page data straight into guest memory). */
int io_channel_readv_all_eof(IOChannel *ioc, const struct iovec *iov, size_t niov, GError **errp);
bool io_channel_readv_all(IOChannel *ioc, const struct iovec *iov, size_t niov, GError **errp);
bool io_channel_write_all(IOChannel *ioc, const void *buf, size_t len, GError **errp);
bool io_channel_writev_all(IOChannel *ioc, const struct iovec *iov, size_t niov, GError **errp);

/* Positioned I/O; SEEKABLE only, else "Channel does not support pwritev"/"preadv". */
ssize_t io_channel_pwritev(IOChannel *ioc, const struct iovec *iov, size_t niov, off_t off, GError **errp);
ssize_t io_channel_preadv(IOChannel *ioc, const struct iovec *iov, size_t niov, off_t off, GError **errp);
/* Loop over short transfers; a read hitting EOF is an error naming the offset. */
bool io_channel_pwritev_all(IOChannel *ioc, const struct iovec *iov, size_t niov, off_t off, GError **errp);
bool io_channel_preadv_all(IOChannel *ioc, const struct iovec *iov, size_t niov, off_t off, GError **errp);
bool io_channel_pwrite_all(IOChannel *ioc, const void *buf, size_t len, off_t off, GError **errp);
bool io_channel_pread_all(IOChannel *ioc, void *buf, size_t len, off_t off, GError **errp);

off_t io_channel_seek(IOChannel *ioc, off_t off, int whence, GError **errp);
/*
 * Size of a channel that stores bytes (a regular file, a buffer), or -1:
 * "Channel 'NAME' does not support size" for sockets and commands,
 * "Unable to get the size of 'NAME': not a regular file" for a file
 * channel on a pipe or a device.
 */
off_t io_channel_size(IOChannel *ioc, GError **errp);
/*
 * Cut or extend (with zeroes) the stored bytes to len; the stream cursor
 * stays where it was.  "Channel 'NAME' does not support truncate" when
 * the kind has no such operation.  On failure errno is set too (ENOTSUP
 * when unsupported, EBADF when closed), for the callers that must word
 * QEMU's own message around it.
 */
bool io_channel_truncate(IOChannel *ioc, off_t len, GError **errp);
/*
 * io_channel_truncate() for a file about to be written from len on,
 * skipped when the stored bytes already end at len (a new file, written
 * from offset 0).  ext4 takes any truncation to size 0 for a file being
 * replaced and writes back all of its dirty pages at the next close
 * (auto_da_alloc): after a truncation that changed nothing, the close at
 * the end of a save to a new file would wait for the disk.  Errors as
 * io_channel_truncate's.
 */
bool io_channel_truncate_for_write(IOChannel *ioc, off_t len, GError **errp);
/*
 * Make what was written durable (fdatasync: the data and the size, not
 * the timestamps).  "Channel 'NAME' does not support sync" for sockets
 * and commands, "Unable to sync 'NAME' to disk: <strerror>" when the
 * kernel refuses (EINVAL on a pipe, EIO when the disk failed); errno is
 * set too, as for io_channel_truncate.
 */
bool io_channel_sync(IOChannel *ioc, GError **errp);
bool io_channel_shutdown(IOChannel *ioc, GError **errp);   /* no-op success if unsupported */
bool io_channel_close(IOChannel *ioc, GError **errp);      /* idempotent */

/* --- any fd (io/channel-util.c) --- */
/* A socket channel if fd is a socket, else a file channel.  Takes
 * ownership of fd on success only; NULL + errp if fstat() fails. */
IOChannel *io_channel_new_fd(int fd, const char *name, GError **errp);

/* --- file (io/channel-file.c) --- */
/* Takes ownership of fd.  SEEKABLE from what the fd really is (fstat, lseek). */
IOChannel *io_channel_file_new_fd(int fd, const char *name);
/* On a close-on-exec dup of fd, which stays the caller's (stdin, stdout). */
IOChannel *io_channel_file_new_dup(int fd, const char *name, GError **errp);
/* qemu_open() + new_fd; /dev/fdset/N names go through the fdset provider. */
IOChannel *io_channel_file_open(const char *path, int flags, mode_t mode, GError **errp);

/* --- socket (io/channel-socket.c) --- */
IOChannel *io_channel_socket_new_fd(int fd, const char *name);     /* takes ownership */
IOChannel *io_channel_socket_connect_unix(const char *path, GError **errp);
IOChannel *io_channel_socket_connect_tcp(const char *host, const char *port, GError **errp);
/*
 * The same, abandoned with ECANCELED ("Operation canceled") once the
 * atomic flag *stop is set (looked at every 20 ms while the connect waits
 * on its peer, or tcp's name lookup on its resolver: that lookup runs on
 * a thread of its own, left to finish alone); stop NULL: wait as long as
 * the kernel and the resolver do.  family: AF_UNSPEC, or only AF_INET or
 * AF_INET6 addresses of host are tried (QEMU's ipv4 / ipv6 flags).
 */
IOChannel *io_channel_socket_connect_unix_stoppable(const char *path, const int *stop,
                                                    GError **errp);
IOChannel *io_channel_socket_connect_tcp_stoppable(const char *host, const char *port,
                                                   int family, const int *stop, GError **errp);
/* Listening sockets: return the listening fd (owned by caller) or -1. */
int io_socket_listen_unix(const char *path, GError **errp);
int io_socket_listen_tcp(const char *host, const char *port, GError **errp);
IOChannel *io_socket_accept(int listen_fd, GError **errp);
/*
 * A migration's listening sockets, as QEMU's net listener: the one of a
 * unix path, or one for every address a tcp host resolves to (an empty
 * host: 0.0.0.0 and ::, each on the port; with port 0 each gets its own).
 * tcp listens if any address does, else fails with the first address's
 * error; family: AF_UNSPEC, or AF_INET / AF_INET6 for the addresses of
 * that family alone (QEMU's ipv4 / ipv6 flags); v6only: an IPv6 socket
 * takes no IPv4; to: -1, or each address takes the first free port from
 * port to "to" (QEMU's ",to=").  The fds are non-blocking and owned by
 * the listener.
 */
typedef struct IOListener IOListener;
IOListener *io_listener_open_unix(const char *path, GError **errp);
IOListener *io_listener_open_tcp(const char *host, const char *port, int family, bool v6only,
                                 int to, GError **errp);
unsigned io_listener_count(const IOListener *l);
int io_listener_fd(const IOListener *l, unsigned i);
/* A connection waits on one of them, within timeout_ms (-1: no limit). */
bool io_listener_wait(const IOListener *l, int timeout_ms);
/* Waits for a connection on any of them; fails once io_listener_shutdown ran. */
IOChannel *io_listener_accept(const IOListener *l, GError **errp);
/* Wakes a blocked io_listener_accept (any thread); the fds stay open. */
void io_listener_shutdown(const IOListener *l);
void io_listener_free(IOListener *l);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(IOListener, io_listener_free)
/* Receive data plus up to max_fds SCM_RIGHTS fds on a unix socket fd; fds appended to *fds. */
ssize_t io_socket_recv_with_fds(int fd, void *buf, size_t len, GArray *fds, GError **errp);
/* Send len bytes (one sendmsg, may be short) with nfds (<= 16) SCM_RIGHTS fds; fds stay the caller's. */
ssize_t io_socket_send_with_fds(int fd, const void *buf, size_t len,
                                const int *fds, size_t nfds, GError **errp);
/* Local port of a bound tcp socket (after listen on port "0"); -1 + errno if not inet. */
int io_socket_get_port(int fd);
/*
 * The bound address of an inet socket: its family (AF_INET, AF_INET6)
 * with host (numeric, an IPv6 link-local address with its scope:
 * "fe80::1%eth0", as getnameinfo writes it) and *port set, or 0 when it
 * has none.
 */
#define IO_SOCKET_HOST_MAX 1025    /* NI_MAXHOST */
int io_socket_bound_inet(int fd, char host[IO_SOCKET_HOST_MAX], int *port);
/* Listening socket i of l as a URI: "tcp:HOST:PORT", "tcp:[HOST]:PORT" or "unix:PATH". */
char *io_listener_describe(const IOListener *l, unsigned i);

/* --- command (io/channel-command.c): exec:CMD via /bin/sh -c --- */
/* mode O_WRONLY: we write the child's stdin; O_RDONLY: we read its stdout.
 * close() waits for the child; a non-zero exit is an error naming the status. */
IOChannel *io_channel_command_new_spawn(const char *cmd, int mode, GError **errp);

/* --- buffer (io/channel-buffer.c): in-memory, seekable, for unit tests --- */
IOChannel *io_channel_buffer_new(size_t initial_capacity);
IOChannel *io_channel_buffer_new_data(const void *data, size_t len);  /* copies */
const uint8_t *io_channel_buffer_data(IOChannel *ioc, size_t *len);

/* --- trickle (io/channel-trickle.c): at most one byte per transfer, for tests --- */
/* Takes over the caller's reference to inner; same name and features as inner. */
IOChannel *io_channel_trickle_new(IOChannel *inner);

#endif
