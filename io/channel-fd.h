/*
 * Internal to io/: syscall helpers shared by the fd-backed channels.
 * They retry EINTR, and wait with poll() on EAGAIN because an fd handed
 * to us (fd: migration, fdsets) may have been left non-blocking by
 * whoever opened it, while our channels promise blocking semantics.
 * Each returns what the syscall returns, with errno set on -1.
 */
#ifndef IO_CHANNEL_FD_H
#define IO_CHANNEL_FD_H

#include <sys/types.h>
#include <sys/uio.h>

ssize_t io_fd_readv(int fd, const struct iovec *iov, size_t niov);
ssize_t io_fd_writev(int fd, const struct iovec *iov, size_t niov);
ssize_t io_fd_preadv(int fd, const struct iovec *iov, size_t niov, off_t off);
ssize_t io_fd_pwritev(int fd, const struct iovec *iov, size_t niov, off_t off);
/* Wait until fd is ready for events (POLLIN/POLLOUT); -1 + errno on failure. */
int io_fd_wait(int fd, short events);

#endif
