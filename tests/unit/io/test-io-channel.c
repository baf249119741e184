/*
 * One conformance suite for every IOChannel transport: file, unix and
 * tcp sockets, command (exec:) and buffer, and the same again through a
 * trickle channel (one byte per call) over a file, a unix socket and a
 * buffer, so that every resume-after-a-short-transfer path runs.  Each
 * case is registered once per transport as /io/channel/<transport>/<case>.
 *
 * A transport makes a writer, then a reader for what the writer wrote.
 * Stream transports (sockets) need the reader while the writer writes,
 * so the writer runs in a thread; store-and-read transports (file,
 * command through a file, buffer) close the writer first.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/channel.h"
#include "util/error.h"

typedef struct Transport Transport;

typedef struct Ctx {
    const Transport *t;
    char *dir;                  /* temporary directory */
    char *path;                 /* file, socket or command output */
    int listen_fd;
    IOChannel *writer_copy;     /* buffer transport: where the data is */
} Ctx;

struct Transport {
    const char *name;
    bool concurrent;            /* reader must exist while writing */
    bool seekable;              /* positioned I/O supported */
    IOChannel *(*writer)(Ctx *c);
    IOChannel *(*reader)(Ctx *c);
    IOChannel *(*rw)(Ctx *c);   /* seekable only: a fresh read-write channel */
    bool trickle;               /* one byte per call: raw calls return 1 */
};

/* --- transports --- */

static IOChannel *file_writer(Ctx *c)
{
    g_autoptr(GError) err = NULL;
    IOChannel *ioc = io_channel_file_open(c->path, O_WRONLY | O_CREAT | O_TRUNC, 0600, &err);

    g_assert_no_error(err);
    return ioc;
}

static IOChannel *file_reader(Ctx *c)
{
    g_autoptr(GError) err = NULL;
    IOChannel *ioc = io_channel_file_open(c->path, O_RDONLY, 0, &err);

    g_assert_no_error(err);
    return ioc;
}

static IOChannel *file_rw(Ctx *c)
{
    g_autoptr(GError) err = NULL;
    IOChannel *ioc = io_channel_file_open(c->path, O_RDWR | O_CREAT | O_TRUNC, 0600, &err);

    g_assert_no_error(err);
    return ioc;
}

static IOChannel *unix_writer(Ctx *c)
{
    g_autoptr(GError) err = NULL;
    IOChannel *ioc;

    c->listen_fd = io_socket_listen_unix(c->path, &err);
    g_assert_no_error(err);
    ioc = io_channel_socket_connect_unix(c->path, &err);
    g_assert_no_error(err);
    return ioc;
}

static IOChannel *socket_reader(Ctx *c)
{
    g_autoptr(GError) err = NULL;
    IOChannel *ioc = io_socket_accept(c->listen_fd, &err);

    g_assert_no_error(err);
    close(c->listen_fd);
    c->listen_fd = -1;
    return ioc;
}

static IOChannel *tcp_writer(Ctx *c)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *port = NULL;
    IOChannel *ioc;

    c->listen_fd = io_socket_listen_tcp("127.0.0.1", "0", &err);
    g_assert_no_error(err);
    g_assert_cmpint(io_socket_get_port(c->listen_fd), >, 0);
    port = g_strdup_printf("%d", io_socket_get_port(c->listen_fd));
    ioc = io_channel_socket_connect_tcp("127.0.0.1", port, &err);
    g_assert_no_error(err);
    return ioc;
}

static IOChannel *command_writer(Ctx *c)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *q = g_shell_quote(c->path);
    g_autofree char *cmd = g_strdup_printf("cat > %s", q);
    IOChannel *ioc = io_channel_command_new_spawn(cmd, O_WRONLY, &err);

    g_assert_no_error(err);
    return ioc;
}

static IOChannel *command_reader(Ctx *c)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *q = g_shell_quote(c->path);
    g_autofree char *cmd = g_strdup_printf("cat %s", q);
    IOChannel *ioc = io_channel_command_new_spawn(cmd, O_RDONLY, &err);

    g_assert_no_error(err);
    return ioc;
}

static IOChannel *buffer_writer(Ctx *c)
{
    c->writer_copy = io_channel_buffer_new(0);
    return io_channel_ref(c->writer_copy);
}

static IOChannel *buffer_reader(Ctx *c)
{
    size_t len;
    const uint8_t *data = io_channel_buffer_data(c->writer_copy, &len);

    return io_channel_buffer_new_data(data, len);
}

static IOChannel *buffer_rw(Ctx *c)
{
    return io_channel_buffer_new(16);
}

static IOChannel *trickle_file_writer(Ctx *c)
{
    return io_channel_trickle_new(file_writer(c));
}

static IOChannel *trickle_file_reader(Ctx *c)
{
    return io_channel_trickle_new(file_reader(c));
}

static IOChannel *trickle_file_rw(Ctx *c)
{
    return io_channel_trickle_new(file_rw(c));
}

static IOChannel *trickle_unix_writer(Ctx *c)
{
    return io_channel_trickle_new(unix_writer(c));
}

static IOChannel *trickle_socket_reader(Ctx *c)
{
    return io_channel_trickle_new(socket_reader(c));
}

static IOChannel *trickle_buffer_writer(Ctx *c)
{
    return io_channel_trickle_new(buffer_writer(c));
}

static IOChannel *trickle_buffer_reader(Ctx *c)
{
    return io_channel_trickle_new(buffer_reader(c));
}

static IOChannel *trickle_buffer_rw(Ctx *c)
{
    return io_channel_trickle_new(buffer_rw(c));
}


static const Transport transports[] = {
    { "file", false, true, file_writer, file_reader, file_rw },
    { "unix", true, false, unix_writer, socket_reader, NULL },
    { "tcp", true, false, tcp_writer, socket_reader, NULL },
    { "command", false, false, command_writer, command_reader, NULL },
    { "buffer", false, true, buffer_writer, buffer_reader, buffer_rw },
    { "trickle-file", false, true, trickle_file_writer, trickle_file_reader,
      trickle_file_rw, true },
    { "trickle-unix", true, false, trickle_unix_writer, trickle_socket_reader, NULL, true },
    { "trickle-buffer", false, true, trickle_buffer_writer, trickle_buffer_reader,
      trickle_buffer_rw, true },
};

static Ctx *ctx_new(const Transport *t)
{
    Ctx *c = g_new0(Ctx, 1);
    g_autoptr(GError) err = NULL;

    c->t = t;
    c->dir = g_dir_make_tmp("test-io-channel-XXXXXX", &err);
    g_assert_no_error(err);
    c->path = g_build_filename(c->dir, "data", NULL);
    c->listen_fd = -1;
    return c;
}

static void ctx_free(Ctx *c)
{
    if (c->listen_fd >= 0) {
        close(c->listen_fd);
    }
    io_channel_unref(c->writer_copy);
    unlink(c->path);
    rmdir(c->dir);
    g_free(c->path);
    g_free(c->dir);
    g_free(c);
}

/* --- writing in a thread for stream transports --- */

typedef struct WriteJob {
    IOChannel *ioc;
    const uint8_t *data;
    size_t len;
    bool close;
    /* run on the writer's channel once written, before it is closed */
    void (*before_close)(IOChannel *ioc);
    GError *err;
    bool ok;
} WriteJob;

/* Writes data in odd-sized pieces, some through multi-element iovecs. */
static gpointer write_job(gpointer opaque)
{
    WriteJob *j = opaque;
    size_t off = 0;
    size_t step = 1;

    j->ok = true;
    while (off < j->len && j->ok) {
        size_t n = MIN(step, j->len - off);

        if (step % 3 == 0 && n >= 3) {
            struct iovec iov[3] = {
                { (void *)(j->data + off), 1 },
                { (void *)(j->data + off + 1), 0 },
                { (void *)(j->data + off + 1), n - 1 },
            };
            j->ok = io_channel_writev_all(j->ioc, iov, 3, &j->err);
        } else {
            j->ok = io_channel_write_all(j->ioc, j->data + off, n, &j->err);
        }
        off += n;
        step = step * 3 + 7;
        if (step > 300000) {
            step = 13;
        }
    }
    if (j->before_close && j->ok) {
        j->before_close(j->ioc);
    }
    if (j->close && j->ok) {
        j->ok = io_channel_close(j->ioc, &j->err);
    }
    return NULL;
}

/*
 * Send data through the transport, give back the reader positioned at
 * the start.  For concurrent transports *thread is the writer still
 * running; join it with finish_write().
 */
static IOChannel *send_data(Ctx *c, WriteJob *job, GThread **thread,
                            const uint8_t *data, size_t len)
{
    IOChannel *reader;

    job->ioc = c->t->writer(c);
    job->data = data;
    job->len = len;
    job->close = true;
    *thread = NULL;
    if (c->t->concurrent) {
        reader = c->t->reader(c);
        *thread = g_thread_new("writer", write_job, job);
        return reader;
    }
    write_job(job);
    g_assert_no_error(job->err);
    g_assert_true(job->ok);
    return c->t->reader(c);
}

static void finish_write(WriteJob *job, GThread *thread)
{
    if (thread) {
        g_thread_join(thread);
    }
    g_assert_no_error(job->err);
    g_assert_true(job->ok);
    io_channel_unref(job->ioc);
}

static uint8_t *pattern(size_t len, unsigned seed)
{
    uint8_t *p = g_malloc(len);

    for (size_t i = 0; i < len; i++) {
        p[i] = (uint8_t)((i * 131 + seed) ^ (i >> 9));
    }
    return p;
}

/* --- cases --- */

static void test_round_trip(gconstpointer opaque)
{
    const Transport *t = opaque;
    Ctx *c = ctx_new(t);
    /* Through a trickle channel each byte costs a call (a syscall) per side. */
    const size_t len = t->trickle ? 64 * 1024 + 4099 : 3 * 1024 * 1024 + 4099;
    g_autofree uint8_t *data = pattern(len, 7);
    g_autofree uint8_t *got = g_malloc0(len);
    g_autoptr(GError) err = NULL;
    WriteJob job = { 0 };
    GThread *thread;
    IOChannel *r = send_data(c, &job, &thread, data, len);
    size_t off = 0, step = 5;
    uint8_t byte;

    while (off < len) {
        size_t n = MIN(step, len - off);

        g_assert_true(io_channel_read_all(r, got + off, n, &err));
        g_assert_no_error(err);
        off += n;
        step = step * 2 + 1;
    }
    finish_write(&job, thread);
    g_assert_true(memcmp(data, got, len) == 0);
    /* Everything consumed: the next read is a clean EOF. */
    g_assert_cmpint(io_channel_read_all_eof(r, &byte, 1, &err), ==, 0);
    g_assert_no_error(err);
    g_assert_true(io_channel_close(r, &err));
    g_assert_no_error(err);
    g_assert_true(io_channel_close(r, &err));   /* idempotent */
    io_channel_unref(r);
    ctx_free(c);
}

static void test_eof(gconstpointer opaque)
{
    const Transport *t = opaque;
    Ctx *c = ctx_new(t);
    const uint8_t data[10] = "0123456789";
    uint8_t buf[32];
    g_autoptr(GError) err = NULL;
    WriteJob job = { 0 };
    GThread *thread;
    IOChannel *r = send_data(c, &job, &thread, data, sizeof(data));

    /* 1: all read */
    g_assert_cmpint(io_channel_read_all_eof(r, buf, 4, &err), ==, 1);
    g_assert_no_error(err);
    g_assert_true(memcmp(buf, "0123", 4) == 0);
    /* -1: EOF after some bytes is an error, not an EOF */
    g_assert_cmpint(io_channel_read_all_eof(r, buf, 20, &err), ==, -1);
    g_assert_error(err, MAPRAM_ERROR, QMP_ERROR_GENERIC);
    g_assert_nonnull(strstr(err->message, "Unexpected end-of-file"));
    g_assert_nonnull(strstr(err->message, r->name));
    g_clear_error(&err);
    g_assert_true(memcmp(buf, "456789", 6) == 0);
    /* 0: EOF before the first byte */
    g_assert_cmpint(io_channel_read_all_eof(r, buf, 1, &err), ==, 0);
    g_assert_no_error(err);
    /* read_all turns that EOF into an error */
    g_assert_false(io_channel_read_all(r, buf, 1, &err));
    g_assert_nonnull(err);
    g_clear_error(&err);
    /* zero-length reads succeed even at EOF */
    g_assert_true(io_channel_read_all(r, buf, 0, &err));
    finish_write(&job, thread);
    io_channel_unref(r);
    ctx_free(c);
}

static void test_positioned(gconstpointer opaque)
{
    const Transport *t = opaque;
    Ctx *c = ctx_new(t);
    g_autoptr(IOChannel) ioc = t->rw(c);
    g_autoptr(GError) err = NULL;
    const size_t len = 256 * 1024 + 17;
    g_autofree uint8_t *data = pattern(len, 3);
    g_autofree uint8_t *got = g_malloc0(len);
    struct iovec iov[3];
    uint8_t buf[64];
    ssize_t n;

    g_assert_true(io_channel_has_feature(ioc, IO_CHANNEL_FEATURE_SEEKABLE));
    /* Out-of-order positioned writes of three pieces, then one read. */
    g_assert_true(io_channel_pwrite_all(ioc, data + 1000, len - 1000, 1000, &err));
    g_assert_true(io_channel_pwrite_all(ioc, data, 10, 0, &err));
    iov[0] = (struct iovec){ (void *)(data + 10), 500 };
    iov[1] = (struct iovec){ (void *)(data + 510), 0 };
    iov[2] = (struct iovec){ (void *)(data + 510), 490 };
    g_assert_true(io_channel_pwritev_all(ioc, iov, 3, 10, &err));
    g_assert_no_error(err);
    iov[0] = (struct iovec){ got, 3 };
    iov[1] = (struct iovec){ got + 3, len - 3 };
    g_assert_true(io_channel_preadv_all(ioc, iov, 2, 0, &err));
    g_assert_no_error(err);
    g_assert_true(memcmp(data, got, len) == 0);

    /* Positioned I/O leaves the stream cursor alone. */
    g_assert_cmpint(io_channel_seek(ioc, 0, SEEK_CUR, &err), ==, 0);
    g_assert_cmpint(io_channel_seek(ioc, 0, SEEK_END, &err), ==, (off_t)len);
    g_assert_cmpint(io_channel_seek(ioc, 5, SEEK_SET, &err), ==, 5);
    g_assert_true(io_channel_read_all(ioc, buf, 4, &err));
    g_assert_true(memcmp(buf, data + 5, 4) == 0);
    g_assert_no_error(err);

    /* A short read at EOF: the raw call returns what there is... */
    iov[0] = (struct iovec){ buf, sizeof(buf) };
    n = io_channel_preadv(ioc, iov, 1, len - 10, &err);
    g_assert_no_error(err);
    g_assert_cmpint(n, ==, t->trickle ? 1 : 10);
    g_assert_true(memcmp(buf, data + len - 10, n) == 0);
    /* ...and the _all helper fails, naming the offset where data ran out. */
    g_assert_false(io_channel_pread_all(ioc, buf, sizeof(buf), len - 10, &err));
    g_assert_nonnull(err);
    {
        g_autofree char *want = g_strdup_printf("Unexpected end of file at offset 0x%zx", len);

        g_assert_nonnull(strstr(err->message, want));
    }
    g_clear_error(&err);
    n = io_channel_preadv(ioc, iov, 1, len + 100, &err);
    g_assert_cmpint(n, ==, 0);
    g_assert_no_error(err);

    /* Writing past the end leaves a hole of zeroes. */
    g_assert_true(io_channel_pwrite_all(ioc, "x", 1, len + 20, &err));
    g_assert_true(io_channel_pread_all(ioc, buf, 21, len, &err));
    g_assert_no_error(err);
    g_assert_cmpint(buf[0], ==, 0);
    g_assert_cmpint(buf[19], ==, 0);
    g_assert_cmpint(buf[20], ==, 'x');

    /* After close, I/O is refused rather than hitting a stale fd. */
    g_assert_true(io_channel_close(ioc, &err));
    g_assert_false(io_channel_pwrite_all(ioc, "x", 1, 0, &err));
    g_assert_nonnull(strstr(err->message, "closed"));
    ctx_free(c);
}

static void check_not_seekable(IOChannel *ioc)
{
    g_autoptr(GError) err = NULL;
    uint8_t buf[4] = { 0 };
    struct iovec iov = { buf, sizeof(buf) };

    g_assert_false(io_channel_has_feature(ioc, IO_CHANNEL_FEATURE_SEEKABLE));
    g_assert_cmpint(io_channel_pwritev(ioc, &iov, 1, 0, &err), ==, -1);
    g_assert_cmpstr(err->message, ==, "Channel does not support pwritev");
    g_clear_error(&err);
    g_assert_false(io_channel_pwrite_all(ioc, buf, 4, 0, &err));
    g_assert_cmpstr(err->message, ==, "Channel does not support pwritev");
    g_clear_error(&err);
    g_assert_cmpint(io_channel_preadv(ioc, &iov, 1, 0, &err), ==, -1);
    g_assert_cmpstr(err->message, ==, "Channel does not support preadv");
    g_clear_error(&err);
    g_assert_false(io_channel_pread_all(ioc, buf, 4, 0, &err));
    g_assert_cmpstr(err->message, ==, "Channel does not support preadv");
    g_clear_error(&err);
    g_assert_cmpint(io_channel_seek(ioc, 0, SEEK_SET, &err), ==, -1);
    g_assert_cmpstr(err->message, ==, "Requested channel is not seekable");
}

/* Kinds that store no bytes refuse size and truncate by name. */
static void check_no_size(IOChannel *ioc)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *no_size = g_strdup_printf("Channel '%s' does not support size",
                                               ioc->name);
    g_autofree char *no_trunc = g_strdup_printf("Channel '%s' does not support truncate",
                                                ioc->name);
    g_autofree char *no_sync = g_strdup_printf("Channel '%s' does not support sync",
                                               ioc->name);

    g_assert_cmpint(io_channel_size(ioc, &err), ==, -1);
    g_assert_cmpstr(err->message, ==, no_size);
    g_clear_error(&err);
    errno = 0;
    g_assert_false(io_channel_truncate(ioc, 0, &err));
    g_assert_cmpint(errno, ==, ENOTSUP);
    g_assert_cmpstr(err->message, ==, no_trunc);
    g_clear_error(&err);
    errno = 0;
    g_assert_false(io_channel_sync(ioc, &err));
    g_assert_cmpint(errno, ==, ENOTSUP);
    g_assert_cmpstr(err->message, ==, no_sync);
}

static void check_writer_not_seekable(IOChannel *ioc)
{
    check_not_seekable(ioc);
    check_no_size(ioc);
}

/*
 * The writer's channel is checked by the writer itself before it closes
 * it (a concurrent writer may close it before the reader is done).
 */
static void test_not_seekable(gconstpointer opaque)
{
    const Transport *t = opaque;
    Ctx *c = ctx_new(t);
    WriteJob job = { .before_close = check_writer_not_seekable };
    GThread *thread;
    IOChannel *r = send_data(c, &job, &thread, (const uint8_t *)"abc", 3);

    check_not_seekable(r);
    check_no_size(r);
    finish_write(&job, thread);
    io_channel_unref(r);
    ctx_free(c);
}

/*
 * Kinds that store bytes: size follows writes and truncate, truncate
 * zero-fills when it grows, and neither moves the stream cursor.
 */
static void test_size(gconstpointer opaque)
{
    const Transport *t = opaque;
    Ctx *c = ctx_new(t);
    g_autoptr(IOChannel) ioc = t->rw(c);
    g_autoptr(GError) err = NULL;
    g_autofree char *bad_len = g_strdup_printf(
        "Unable to truncate '%s' to -1 bytes: Invalid argument", ioc->name);
    g_autofree char *closed = g_strdup_printf("Channel '%s' is closed", ioc->name);
    const uint8_t zero[96] = { 0 };
    uint8_t buf[100];

    g_assert_cmpint(io_channel_size(ioc, &err), ==, 0);
    g_assert_no_error(err);
    g_assert_true(io_channel_write_all(ioc, "0123456789", 10, &err));
    g_assert_cmpint(io_channel_size(ioc, &err), ==, 10);
    g_assert_true(io_channel_truncate(ioc, 4, &err));
    g_assert_no_error(err);
    g_assert_cmpint(io_channel_size(ioc, &err), ==, 4);
    g_assert_cmpint(io_channel_seek(ioc, 0, SEEK_CUR, &err), ==, 10);
    g_assert_true(io_channel_truncate(ioc, 100, &err));
    g_assert_cmpint(io_channel_size(ioc, &err), ==, 100);
    g_assert_true(io_channel_pread_all(ioc, buf, sizeof(buf), 0, &err));
    g_assert_no_error(err);
    g_assert_true(memcmp(buf, "0123", 4) == 0);
    g_assert_true(memcmp(buf + 4, zero, sizeof(zero)) == 0);
    /* The cursor was left at 10: the next write lands inside the zeroes. */
    g_assert_true(io_channel_write_all(ioc, "x", 1, &err));
    g_assert_cmpint(io_channel_size(ioc, &err), ==, 100);
    g_assert_true(io_channel_pread_all(ioc, buf, 11, 0, &err));
    g_assert_true(memcmp(buf, "0123\0\0\0\0\0\0x", 11) == 0);
    g_assert_no_error(err);

    errno = 0;
    g_assert_false(io_channel_truncate(ioc, -1, &err));
    g_assert_cmpint(errno, ==, EINVAL);
    g_assert_cmpstr(err->message, ==, bad_len);
    g_clear_error(&err);
    g_assert_cmpint(io_channel_size(ioc, &err), ==, 100);
    /* Kinds that store bytes can make them durable. */
    g_assert_true(io_channel_sync(ioc, &err));
    g_assert_no_error(err);

    /* Closed: refused before reaching the kind (and a stale fd). */
    g_assert_true(io_channel_close(ioc, &err));
    g_assert_cmpint(io_channel_size(ioc, &err), ==, -1);
    g_assert_cmpstr(err->message, ==, closed);
    g_clear_error(&err);
    errno = 0;
    g_assert_false(io_channel_truncate(ioc, 0, &err));
    g_assert_cmpint(errno, ==, EBADF);
    g_assert_cmpstr(err->message, ==, closed);
    g_clear_error(&err);
    errno = 0;
    g_assert_false(io_channel_sync(ioc, &err));
    g_assert_cmpint(errno, ==, EBADF);
    g_assert_cmpstr(err->message, ==, closed);
    ctx_free(c);
}

/* A file channel on a pipe is not seekable: features come from the fd. */
static void test_file_on_pipe(void)
{
    int fds[2];
    g_autoptr(IOChannel) r = NULL;
    g_autoptr(IOChannel) w = NULL;
    g_autoptr(GError) err = NULL;
    char buf[3];

    g_assert_cmpint(pipe(fds), ==, 0);
    r = io_channel_file_new_fd(fds[0], "pipe-r");
    w = io_channel_file_new_fd(fds[1], "pipe-w");
    check_not_seekable(r);
    g_assert_true(io_channel_write_all(w, "abc", 3, &err));
    g_assert_true(io_channel_read_all(r, buf, 3, &err));
    g_assert_no_error(err);
    g_assert_true(memcmp(buf, "abc", 3) == 0);
    g_assert_cmpint(io_channel_get_fd(r), ==, fds[0]);
    /* The file kind has size and truncate; a pipe has no size to give. */
    g_assert_cmpint(io_channel_size(r, &err), ==, -1);
    g_assert_cmpstr(err->message, ==, "Unable to get the size of 'pipe-r': not a regular file");
    g_clear_error(&err);
    g_assert_false(io_channel_truncate(w, 0, &err));
    g_assert_cmpstr(err->message, ==, "Unable to truncate 'pipe-w' to 0 bytes: Invalid argument");
    g_clear_error(&err);
    /* ...and nothing the kernel could sync to a disk. */
    errno = 0;
    g_assert_false(io_channel_sync(w, &err));
    g_assert_cmpint(errno, ==, EINVAL);
    g_assert_cmpstr(err->message, ==, "Unable to sync 'pipe-w' to disk: Invalid argument");
}

static void test_file_errors(void)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(IOChannel) ioc = NULL;
    g_autofree char *dir = g_dir_make_tmp("test-io-channel-XXXXXX", NULL);
    g_autofree char *path = g_build_filename(dir, "f", NULL);
    g_autofree char *missing = g_build_filename(dir, "no", "such", NULL);
    g_autofree char *want = NULL;
    int flags;

    g_assert_null(io_channel_file_open(missing, O_RDONLY, 0, &err));
    want = g_strdup_printf("Could not open '%s': No such file or directory", missing);
    g_assert_cmpstr(err->message, ==, want);
    g_clear_error(&err);
    g_free(want);
    g_assert_null(io_channel_file_open(missing, O_WRONLY | O_CREAT, 0600, &err));
    want = g_strdup_printf("Could not create '%s': No such file or directory", missing);
    g_assert_cmpstr(err->message, ==, want);
    g_clear_error(&err);

    /* Always O_CLOEXEC, so exec: children never inherit our files. */
    ioc = io_channel_file_open(path, O_RDONLY | O_CREAT, 0600, &err);
    g_assert_no_error(err);
    flags = fcntl(io_channel_get_fd(ioc), F_GETFD);
    g_assert_true(flags & FD_CLOEXEC);

    /* Writing to a read-only file names the offset for positioned I/O. */
    g_assert_false(io_channel_pwrite_all(ioc, "x", 1, 0x1234, &err));
    g_assert_cmpstr(err->message, ==,
                    "Unable to write to file at offset 0x1234: Bad file descriptor");
    g_clear_error(&err);
    g_assert_false(io_channel_write_all(ioc, "x", 1, &err));
    g_assert_cmpstr(err->message, ==, "Unable to write to file: Bad file descriptor");
    g_clear_error(&err);
    g_assert_cmpint(io_channel_seek(ioc, -5, SEEK_SET, &err), ==, -1);
    g_assert_cmpstr(err->message, ==,
                    "Unable to seek to offset -5 whence 0 in file: Invalid argument");
    io_channel_unref(g_steal_pointer(&ioc));
    unlink(path);
    rmdir(dir);
}

/*
 * truncate_for_write cuts only a file that does not already end at the
 * offset: the skip shows as the times a truncation always updates.  On
 * a pipe it fails as truncate does.
 */
static time_t mtime_of(int fd)
{
    struct stat st;

    g_assert_cmpint(fstat(fd, &st), ==, 0);
    return st.st_mtim.tv_sec;
}

static void test_file_truncate_for_write(void)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *dir = g_dir_make_tmp("test-io-channel-XXXXXX", NULL);
    g_autofree char *path = g_build_filename(dir, "f", NULL);
    const struct timespec old[2] = { { 1000000000, 0 }, { 1000000000, 0 } };
    IOChannel *ioc = io_channel_file_open(path, O_RDWR | O_CREAT, 0600, &err);
    int fd = io_channel_get_fd(ioc);
    int pipefd[2];

    g_assert_no_error(err);
    /* new, written from 0: left alone */
    g_assert_cmpint(futimens(fd, old), ==, 0);
    g_assert_true(io_channel_truncate_for_write(ioc, 0, &err));
    g_assert_no_error(err);
    g_assert_cmpint(mtime_of(fd), ==, 1000000000);
    /* ends at the offset: left alone, bytes kept */
    g_assert_true(io_channel_write_all(ioc, "0123456789", 10, &err));
    g_assert_cmpint(futimens(fd, old), ==, 0);
    g_assert_true(io_channel_truncate_for_write(ioc, 10, &err));
    g_assert_cmpint(mtime_of(fd), ==, 1000000000);
    g_assert_cmpint(io_channel_size(ioc, &err), ==, 10);
    /* longer: cut; shorter: extended */
    g_assert_true(io_channel_truncate_for_write(ioc, 4, &err));
    g_assert_cmpint(mtime_of(fd), >, 1000000000);
    g_assert_cmpint(io_channel_size(ioc, &err), ==, 4);
    g_assert_true(io_channel_truncate_for_write(ioc, 8, &err));
    g_assert_cmpint(io_channel_size(ioc, &err), ==, 8);
    g_assert_no_error(err);
    io_channel_unref(ioc);
    unlink(path);
    rmdir(dir);

    g_assert_cmpint(pipe(pipefd), ==, 0);
    close(pipefd[0]);
    ioc = io_channel_file_new_fd(pipefd[1], "pipe-w");
    g_assert_false(io_channel_truncate_for_write(ioc, 0, &err));
    g_assert_cmpstr(err->message, ==, "Unable to truncate 'pipe-w' to 0 bytes: Invalid argument");
    io_channel_unref(ioc);
}

static void test_fd_passing(void)
{
    Ctx *c = ctx_new(&transports[1]);
    g_autoptr(IOChannel) w = unix_writer(c);
    g_autoptr(IOChannel) r = socket_reader(c);
    g_autoptr(GError) err = NULL;
    g_autoptr(GArray) fds = g_array_new(FALSE, FALSE, sizeof(int));
    int pipefd[2];
    char buf[8] = { 0 };
    ssize_t n;
    int sent[2];

    g_assert_true(io_channel_has_feature(w, IO_CHANNEL_FEATURE_FD_PASS));
    g_assert_true(io_channel_has_feature(r, IO_CHANNEL_FEATURE_FD_PASS));
    g_assert_cmpint(pipe(pipefd), ==, 0);
    sent[0] = pipefd[0];
    sent[1] = pipefd[1];
    n = io_socket_send_with_fds(io_channel_get_fd(w), "fds", 3, sent, 2, &err);
    g_assert_no_error(err);
    g_assert_cmpint(n, ==, 3);
    n = io_socket_recv_with_fds(io_channel_get_fd(r), buf, sizeof(buf), fds, &err);
    g_assert_no_error(err);
    g_assert_cmpint(n, ==, 3);
    g_assert_cmpstr(buf, ==, "fds");
    g_assert_cmpuint(fds->len, ==, 2);
    /* The received fds are new numbers for the same pipe, and CLOEXEC. */
    for (guint i = 0; i < 2; i++) {
        int fd = g_array_index(fds, int, i);

        g_assert_cmpint(fd, !=, sent[i]);
        g_assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    }
    g_assert_cmpint(write(g_array_index(fds, int, 1), "p", 1), ==, 1);
    g_assert_cmpint(read(pipefd[0], buf, 1), ==, 1);
    g_assert_cmpint(buf[0], ==, 'p');
    for (guint i = 0; i < 2; i++) {
        close(g_array_index(fds, int, i));
        close(sent[i]);
    }
    /* Plain data with no fds: nothing appended. */
    g_assert_true(io_channel_write_all(w, "x", 1, &err));
    n = io_socket_recv_with_fds(io_channel_get_fd(r), buf, sizeof(buf), fds, &err);
    g_assert_cmpint(n, ==, 1);
    g_assert_cmpuint(fds->len, ==, 2);
    ctx_free(c);
}

static gpointer shutdown_later(gpointer opaque)
{
    g_usleep(50 * 1000);
    io_channel_shutdown(opaque, NULL);
    return NULL;
}

/* Cancel relies on shutdown() waking a reader blocked on a silent peer. */
static void test_socket_shutdown(void)
{
    Ctx *c = ctx_new(&transports[2]);
    g_autoptr(IOChannel) w = tcp_writer(c);
    g_autoptr(IOChannel) r = socket_reader(c);
    g_autoptr(GError) err = NULL;
    GThread *t;
    char buf[4];

    g_assert_nonnull(w);         /* connected, and silent until the end */
    g_assert_true(io_channel_has_feature(r, IO_CHANNEL_FEATURE_SHUTDOWN));
    t = g_thread_new("shutdown", shutdown_later, r);
    g_assert_cmpint(io_channel_read_all_eof(r, buf, sizeof(buf), &err), ==, 0);
    g_thread_join(t);
    ctx_free(c);
}

/* A peer that went away is EPIPE, not a SIGPIPE that kills us. */
static void test_socket_epipe(void)
{
    Ctx *c = ctx_new(&transports[1]);
    g_autoptr(IOChannel) w = unix_writer(c);
    IOChannel *r = socket_reader(c);
    g_autoptr(GError) err = NULL;
    g_autofree uint8_t *big = g_malloc0(1 << 20);

    io_channel_unref(r);
    g_assert_false(io_channel_write_all(w, big, 1 << 20, &err));
    g_assert_nonnull(err);
    g_assert_true(g_str_has_prefix(err->message, "Unable to write to socket: "));
    ctx_free(c);
}

static void test_socket_errors(void)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *dir = g_dir_make_tmp("test-io-channel-XXXXXX", NULL);
    g_autofree char *path = g_build_filename(dir, "sock", NULL);
    g_autofree char *longpath = g_strnfill(200, 'x');
    g_autofree char *want = NULL;
    int fd, fd2;

    g_assert_null(io_channel_socket_connect_unix(path, &err));
    want = g_strdup_printf("Failed to connect to '%s': No such file or directory", path);
    g_assert_cmpstr(err->message, ==, want);
    g_clear_error(&err);
    g_assert_null(io_channel_socket_connect_unix(longpath, &err));
    g_assert_nonnull(strstr(err->message, "too long"));
    g_clear_error(&err);

    /* A stale socket file from an earlier run does not block listen. */
    fd = io_socket_listen_unix(path, &err);
    g_assert_no_error(err);
    close(fd);
    fd2 = io_socket_listen_unix(path, &err);
    g_assert_no_error(err);
    g_assert_cmpint(fd2, >=, 0);
    close(fd2);
    unlink(path);
    rmdir(dir);

    g_assert_null(io_channel_socket_connect_tcp("127.0.0.1", "1", &err));
    g_assert_cmpstr(err->message, ==, "Failed to connect to '127.0.0.1:1': Connection refused");
    g_clear_error(&err);
    g_assert_null(io_channel_socket_connect_tcp("no-such-host.invalid", "1", &err));
    g_assert_true(g_str_has_prefix(err->message,
                                   "address resolution failed for no-such-host.invalid:1"));
}

/* Sets *flag after 100 ms: a stop that comes while a connect waits. */
static gpointer set_flag_later(gpointer flag)
{
    g_usleep(100 * 1000);
    __atomic_store_n((int *)flag, 1, __ATOMIC_RELEASE);
    return NULL;
}

/*
 * A listener with a backlog of 0 holding one connection it never accepts:
 * its queue is full, so a further connect waits (tcp: its SYNs are dropped
 * for ~2 minutes; unix: for good).  The stoppable connects give up when
 * the flag is set, and a connect that succeeds leaves a blocking fd.
 */
static void test_socket_connect_stop(void)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *dir = g_dir_make_tmp("test-io-channel-XXXXXX", NULL);
    g_autofree char *path = g_build_filename(dir, "sock", NULL);
    g_autofree char *want = NULL;
    struct sockaddr_in in = { .sin_family = AF_INET };
    socklen_t len = sizeof(in);
    int stop = 0;
    int tl = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int ul = io_socket_listen_unix(path, &err);

    g_assert_no_error(err);
    in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    g_assert_cmpint(bind(tl, (struct sockaddr *)&in, sizeof(in)), ==, 0);
    g_assert_cmpint(listen(tl, 0), ==, 0);
    g_assert_cmpint(getsockname(tl, (struct sockaddr *)&in, &len), ==, 0);
    g_autofree char *port = g_strdup_printf("%d", ntohs(in.sin_port));
    g_assert_cmpint(listen(ul, 0), ==, 0);

    /* the first connection fills each queue; the stoppable connect made it */
    g_autoptr(IOChannel) tfill = io_channel_socket_connect_tcp_stoppable("127.0.0.1", port, AF_UNSPEC, &stop,
                                                                        &err);
    g_assert_no_error(err);
    g_assert_cmpint(fcntl(io_channel_get_fd(tfill), F_GETFL) & O_NONBLOCK, ==, 0);
    g_autoptr(IOChannel) ufill = io_channel_socket_connect_unix_stoppable(path, &stop, &err);
    g_assert_no_error(err);
    g_assert_cmpint(fcntl(io_channel_get_fd(ufill), F_GETFL) & O_NONBLOCK, ==, 0);

    GThread *t = g_thread_new("stop", set_flag_later, &stop);
    g_assert_null(io_channel_socket_connect_tcp_stoppable("127.0.0.1", port, AF_UNSPEC, &stop, &err));
    g_thread_join(t);
    want = g_strdup_printf("Failed to connect to '127.0.0.1:%s': Operation canceled", port);
    g_assert_cmpstr(err->message, ==, want);
    g_clear_error(&err);

    stop = 0;
    t = g_thread_new("stop", set_flag_later, &stop);
    g_assert_null(io_channel_socket_connect_unix_stoppable(path, &stop, &err));
    g_thread_join(t);
    g_free(want);
    want = g_strdup_printf("Failed to connect to '%s': Operation canceled", path);
    g_assert_cmpstr(err->message, ==, want);

    close(tl);
    close(ul);
    unlink(path);
    rmdir(dir);
}

/* "localhost" works whichever of ::1 / 127.0.0.1 it resolves to first. */
static void test_tcp_localhost(void)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(IOChannel) w = NULL;
    g_autoptr(IOChannel) r = NULL;
    g_autofree char *port = NULL;
    int lfd = io_socket_listen_tcp("localhost", "0", &err);
    char buf[2];

    g_assert_no_error(err);
    port = g_strdup_printf("%d", io_socket_get_port(lfd));
    w = io_channel_socket_connect_tcp("localhost", port, &err);
    g_assert_no_error(err);
    r = io_socket_accept(lfd, &err);
    g_assert_no_error(err);
    g_assert_true(io_channel_write_all(w, "hi", 2, &err));
    g_assert_true(io_channel_read_all(r, buf, 2, &err));
    g_assert_true(memcmp(buf, "hi", 2) == 0);
    g_assert_false(io_channel_has_feature(r, IO_CHANNEL_FEATURE_FD_PASS));
    close(lfd);
}

static void test_command_exit_status(void)
{
    g_autoptr(GError) err = NULL;
    IOChannel *ioc = io_channel_command_new_spawn("exit 3", O_WRONLY, &err);

    g_assert_no_error(err);
    g_assert_false(io_channel_close(ioc, &err));
    g_assert_cmpstr(err->message, ==, "Command 'exit 3' exited with status 3");
    io_channel_unref(ioc);
    g_clear_error(&err);

    ioc = io_channel_command_new_spawn("kill -KILL $$", O_RDONLY, &err);
    g_assert_no_error(err);
    g_assert_false(io_channel_close(ioc, &err));
    g_assert_cmpstr(err->message, ==, "Command 'kill -KILL $$' was killed by signal 9");
    io_channel_unref(ioc);
    g_clear_error(&err);

    /* A producer we stop reading from early is no failure. */
    ioc = io_channel_command_new_spawn("yes", O_RDONLY, &err);
    g_assert_no_error(err);
    g_assert_true(io_channel_close(ioc, &err));
    g_assert_no_error(err);
    io_channel_unref(ioc);
}

/* The reader exited: the writer gets EPIPE as an error, not SIGPIPE. */
static void test_command_broken_pipe(void)
{
    g_autoptr(GError) err = NULL;
    g_autofree uint8_t *big = g_malloc0(1 << 20);
    IOChannel *ioc = io_channel_command_new_spawn("exec 0<&-; sleep 0.05", O_WRONLY, &err);
    struct sigaction old, dfl = { .sa_handler = SIG_DFL };

    /* Prove we survive even with SIGPIPE at its default (fatal) action. */
    sigaction(SIGPIPE, &dfl, &old);
    g_assert_no_error(err);
    g_assert_false(io_channel_write_all(ioc, big, 1 << 20, &err));
    g_assert_cmpstr(err->message, ==, "Unable to write to command: Broken pipe");
    g_clear_error(&err);
    g_assert_true(io_channel_close(ioc, &err));
    io_channel_unref(ioc);
    sigaction(SIGPIPE, &old, NULL);
}

/*
 * The child starts as from a shell: no signal blocked or ignored, though
 * the thread that spawns it blocks one (SIGUSR2) and the process ignores
 * another (SIGUSR1).  A reader's command has /dev/null as its stdin.
 */
static void test_command_signals(void)
{
    g_autoptr(GError) err = NULL;
    struct sigaction old, ign = { .sa_handler = SIG_IGN };
    sigset_t usr2, old_mask;
    char out[61] = "";
    IOChannel *ioc;

    sigaction(SIGUSR1, &ign, &old);
    sigemptyset(&usr2);
    sigaddset(&usr2, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &usr2, &old_mask);
    ioc = io_channel_command_new_spawn("grep -E '^Sig(Blk|Ign):' /proc/self/status; "
                                       "readlink /proc/self/fd/0", O_RDONLY, &err);
    pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
    sigaction(SIGUSR1, &old, NULL);
    g_assert_no_error(err);
    g_assert_true(io_channel_read_all(ioc, out, sizeof(out) - 1, &err));
    g_assert_no_error(err);
    g_assert_true(io_channel_close(ioc, &err));
    io_channel_unref(ioc);
    unsigned long long blocked, ignored;
    char stdin_path[16];
    g_assert_cmpint(sscanf(out, "SigBlk:\t%16llx\nSigIgn:\t%16llx\n%15s", &blocked, &ignored,
                           stdin_path), ==, 3);
    g_assert_cmphex(blocked, ==, 0);
    /* but signals 32 and 33 (bits 31, 32), glibc's own, which posix_spawn leaves ignored */
    g_assert_cmphex(ignored & ~0x180000000ull, ==, 0);
    g_assert_cmpstr(stdin_path, ==, "/dev/null");
}

/*
 * A shutdown (migrate_cancel) reaches every process of a pipeline: the
 * write blocked on "cat | sleep 30" returns at once (with SIGTERM to sh
 * alone, cat and sleep kept the pipe and the write blocked for 30 s).
 */
static void test_command_shutdown_pipeline(void)
{
    g_autoptr(GError) err = NULL;
    g_autofree uint8_t *big = g_malloc0(8 << 20);
    IOChannel *ioc = io_channel_command_new_spawn("cat | sleep 30", O_WRONLY, &err);

    g_assert_no_error(err);
    gint64 start = g_get_monotonic_time();
    GThread *t = g_thread_new("shutdown", shutdown_later, ioc);
    g_assert_false(io_channel_write_all(ioc, big, 8 << 20, &err));
    g_assert_cmpstr(err->message, ==, "Unable to write to command: Broken pipe");
    g_clear_error(&err);
    g_thread_join(t);
    g_assert_cmpint(g_get_monotonic_time() - start, <, 10 * G_USEC_PER_SEC);
    /* what we stopped is no failure */
    g_assert_true(io_channel_close(ioc, &err));
    g_assert_no_error(err);
    io_channel_unref(ioc);
}

/* The child sees only stdin/stdout/stderr, whatever we have open. */
static void test_command_no_fd_leak(void)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *dir = g_dir_make_tmp("test-io-channel-XXXXXX", NULL);
    g_autofree char *out = g_build_filename(dir, "fds", NULL);
    g_autofree char *q = g_shell_quote(out);
    g_autofree char *cmd = g_strdup_printf("ls /proc/self/fd > %s", q);
    g_autofree char *contents = NULL;
    g_auto(GStrv) lines = NULL;
    int devnull = open("/dev/null", O_RDONLY);
    /* Deliberately without O_CLOEXEC, at a number ls won't reuse. */
    int leaky = dup2(devnull, 100);
    IOChannel *ioc;

    close(devnull);
    g_assert_cmpint(leaky, ==, 100);
    ioc = io_channel_command_new_spawn(cmd, O_WRONLY, &err);
    g_assert_no_error(err);
    g_assert_true(io_channel_close(ioc, &err));
    io_channel_unref(ioc);
    close(leaky);
    g_assert_true(g_file_get_contents(out, &contents, NULL, &err));
    lines = g_strsplit(g_strstrip(contents), "\n", -1);
    /* 0, 1, 2 and the directory fd ls itself opens */
    g_assert_cmpuint(g_strv_length(lines), <=, 4);
    for (char **l = lines; *l; l++) {
        g_assert_cmpint(atoi(*l), !=, leaky);
    }
    unlink(out);
    rmdir(dir);
}

/* stdin/stdout style: the channel has its own fd; closing it keeps ours. */
static void test_file_new_dup(void)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(IOChannel) w = NULL;
    g_autofree char *want = NULL;
    int fds[2];
    char c;

    g_assert_cmpint(pipe(fds), ==, 0);
    w = io_channel_file_new_dup(fds[1], "stdout", &err);
    g_assert_no_error(err);
    g_assert_cmpint(io_channel_get_fd(w), !=, fds[1]);
    g_assert_true(fcntl(io_channel_get_fd(w), F_GETFD) & FD_CLOEXEC);
    g_assert_true(io_channel_write_all(w, "a", 1, &err));
    g_assert_true(io_channel_close(w, &err));
    g_assert_cmpint(write(fds[1], "b", 1), ==, 1);
    g_assert_cmpint(read(fds[0], &c, 1), ==, 1);
    g_assert_cmpint(c, ==, 'a');
    g_assert_cmpint(read(fds[0], &c, 1), ==, 1);
    g_assert_cmpint(c, ==, 'b');
    close(fds[0]);
    close(fds[1]);
    g_assert_null(io_channel_file_new_dup(fds[1], "gone", &err));
    want = g_strdup_printf("Unable to duplicate file descriptor %d for 'gone': "
                           "Bad file descriptor", fds[1]);
    g_assert_cmpstr(err->message, ==, want);
}

/* An fd from outside gets the kind it really is. */
static void test_new_fd(void)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(IOChannel) sock = NULL;
    g_autoptr(IOChannel) pipe_r = NULL;
    int sv[2], fds[2];

    g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), ==, 0);
    g_assert_cmpint(pipe(fds), ==, 0);
    sock = io_channel_new_fd(sv[0], "sock", &err);
    g_assert_no_error(err);
    g_assert_cmpstr(sock->ops->kind, ==, "socket");
    g_assert_true(io_channel_has_feature(sock, IO_CHANNEL_FEATURE_FD_PASS));
    pipe_r = io_channel_new_fd(fds[0], "pipe", &err);
    g_assert_no_error(err);
    g_assert_cmpstr(pipe_r->ops->kind, ==, "file");
    g_assert_false(io_channel_has_feature(pipe_r, IO_CHANNEL_FEATURE_SEEKABLE));
    close(sv[1]);
    close(fds[1]);
    /* A closed number: refused, nothing taken over. */
    g_assert_null(io_channel_new_fd(fds[1], "gone", &err));
    {
        g_autofree char *want = g_strdup_printf(
            "Unable to stat file descriptor %d for 'gone': Bad file descriptor", fds[1]);

        g_assert_cmpstr(err->message, ==, want);
    }
}

static void test_buffer_data(void)
{
    g_autoptr(IOChannel) ioc = io_channel_buffer_new(0);
    g_autoptr(GError) err = NULL;
    size_t len;
    const uint8_t *data;

    g_assert_true(io_channel_write_all(ioc, "hello ", 6, &err));
    g_assert_true(io_channel_write_all(ioc, "world", 5, &err));
    data = io_channel_buffer_data(ioc, &len);
    g_assert_cmpuint(len, ==, 11);
    g_assert_true(memcmp(data, "hello world", 11) == 0);
    g_assert_cmpint(io_channel_seek(ioc, -5, SEEK_END, &err), ==, 6);
    g_assert_true(io_channel_write_all(ioc, "there!", 6, &err));
    data = io_channel_buffer_data(ioc, &len);
    g_assert_cmpuint(len, ==, 12);
    g_assert_true(memcmp(data, "hello there!", 12) == 0);
    g_assert_cmpint(io_channel_get_fd(ioc), ==, -1);
    g_assert_true(io_channel_shutdown(ioc, &err));      /* unsupported: no-op */
}

/* The wrapper really moves one byte per call, from the first non-empty element. */
static void test_trickle_one_byte(void)
{
    IOChannel *inner = io_channel_buffer_new(0);
    g_autoptr(IOChannel) ioc = io_channel_trickle_new(io_channel_ref(inner));
    g_autoptr(GError) err = NULL;
    char a[] = "ab", b[] = "cd", got[4] = { 0 };
    struct iovec iov[3] = { { a, 0 }, { a, 2 }, { b, 2 } };
    size_t len;

    g_assert_cmpstr(ioc->name, ==, inner->name);
    g_assert_cmpuint(ioc->features, ==, inner->features);
    g_assert_cmpint(io_channel_writev(ioc, iov, 3, &err), ==, 1);
    g_assert_cmpint(io_channel_pwritev(ioc, &iov[2], 1, 1, &err), ==, 1);
    g_assert_cmpint(io_channel_writev(ioc, iov, 1, &err), ==, 0);
    g_assert_no_error(err);
    g_assert_true(memcmp(io_channel_buffer_data(inner, &len), "ac", 2) == 0);
    g_assert_cmpuint(len, ==, 2);
    iov[1] = (struct iovec){ got, 3 };
    g_assert_cmpint(io_channel_preadv(ioc, &iov[1], 1, 1, &err), ==, 1);
    g_assert_cmpint(io_channel_seek(ioc, 0, SEEK_SET, &err), ==, 0);
    iov[1] = (struct iovec){ got + 1, 2 };
    g_assert_cmpint(io_channel_readv(ioc, &iov[1], 1, &err), ==, 1);
    g_assert_no_error(err);
    g_assert_cmpstr(got, ==, "ca");
    /* Closing the wrapper closes the channel it wraps. */
    g_assert_true(io_channel_close(ioc, &err));
    g_assert_true(inner->closed);
    io_channel_unref(inner);
}

static void test_refcount(void)
{
    IOChannel *ioc = io_channel_buffer_new(0);

    g_assert_true(io_channel_ref(ioc) == ioc);
    io_channel_set_name(ioc, "renamed");
    g_assert_cmpstr(ioc->name, ==, "renamed");
    io_channel_unref(ioc);
    g_assert_false(ioc->closed);        /* still referenced */
    io_channel_unref(ioc);              /* ASan checks the free */
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    /* The VM process ignores SIGPIPE; tests that need the default set it. */
    for (size_t i = 0; i < G_N_ELEMENTS(transports); i++) {
        const Transport *t = &transports[i];
        g_autofree char *rt = g_strdup_printf("/io/channel/%s/round-trip", t->name);
        g_autofree char *eof = g_strdup_printf("/io/channel/%s/eof", t->name);
        g_autofree char *pos = g_strdup_printf("/io/channel/%s/%s", t->name,
                                               t->seekable ? "positioned" : "not-seekable");

        g_test_add_data_func(rt, t, test_round_trip);
        g_test_add_data_func(eof, t, test_eof);
        g_test_add_data_func(pos, t, t->seekable ? test_positioned : test_not_seekable);
        if (t->seekable) {
            g_autofree char *size = g_strdup_printf("/io/channel/%s/size", t->name);

            g_test_add_data_func(size, t, test_size);
        }
    }
    g_test_add_func("/io/channel/file/on-pipe", test_file_on_pipe);
    g_test_add_func("/io/channel/file/errors", test_file_errors);
    g_test_add_func("/io/channel/file/new-dup", test_file_new_dup);
    g_test_add_func("/io/channel/file/truncate-for-write", test_file_truncate_for_write);
    g_test_add_func("/io/channel/unix/fd-passing", test_fd_passing);
    g_test_add_func("/io/channel/unix/epipe", test_socket_epipe);
    g_test_add_func("/io/channel/tcp/shutdown", test_socket_shutdown);
    g_test_add_func("/io/channel/tcp/localhost", test_tcp_localhost);
    g_test_add_func("/io/channel/socket/errors", test_socket_errors);
    g_test_add_func("/io/channel/socket/connect-stop", test_socket_connect_stop);
    g_test_add_func("/io/channel/command/exit-status", test_command_exit_status);
    g_test_add_func("/io/channel/command/broken-pipe", test_command_broken_pipe);
    g_test_add_func("/io/channel/command/no-fd-leak", test_command_no_fd_leak);
    g_test_add_func("/io/channel/command/signals", test_command_signals);
    g_test_add_func("/io/channel/command/shutdown-pipeline", test_command_shutdown_pipeline);
    g_test_add_func("/io/channel/new-fd", test_new_fd);
    g_test_add_func("/io/channel/buffer/data", test_buffer_data);
    g_test_add_func("/io/channel/trickle/one-byte", test_trickle_one_byte);
    g_test_add_func("/io/channel/refcount", test_refcount);
    return g_test_run();
}
