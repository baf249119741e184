/*
 * Syscall edge of the fd-backed channels: EINTR and EAGAIN handled here
 * once, so the channel files read as plain calls.
 */
#include <errno.h>
#include <poll.h>
#include <unistd.h>

#include "channel-fd.h"

int io_fd_wait(int fd, short events)
{
    struct pollfd pfd = { .fd = fd, .events = events };
    int ret;

    do {
        ret = poll(&pfd, 1, -1);
    } while (ret < 0 && errno == EINTR);
    return ret < 0 ? -1 : 0;
}

ssize_t io_fd_readv(int fd, const struct iovec *iov, size_t niov)
{
    for (;;) {
        ssize_t n = readv(fd, iov, (int)niov);

        if (n >= 0) {
            return n;
        }
        if (errno == EINTR) {
            continue;
        }
        if ((errno != EAGAIN && errno != EWOULDBLOCK) || io_fd_wait(fd, POLLIN) < 0) {
            return -1;
        }
    }
}

ssize_t io_fd_writev(int fd, const struct iovec *iov, size_t niov)
{
    for (;;) {
        ssize_t n = writev(fd, iov, (int)niov);

        if (n >= 0) {
            return n;
        }
        if (errno == EINTR) {
            continue;
        }
        if ((errno != EAGAIN && errno != EWOULDBLOCK) || io_fd_wait(fd, POLLOUT) < 0) {
            return -1;
        }
    }
}

ssize_t io_fd_preadv(int fd, const struct iovec *iov, size_t niov, off_t off)
{
    ssize_t n;

    do {
        n = preadv(fd, iov, (int)niov, off);
    } while (n < 0 && errno == EINTR);
    return n;
}

ssize_t io_fd_pwritev(int fd, const struct iovec *iov, size_t niov, off_t off)
{
    ssize_t n;

    do {
        n = pwritev(fd, iov, (int)niov, off);
    } while (n < 0 && errno == EINTR);
    return n;
}
