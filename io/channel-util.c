/*
 * Constructors that pick the channel kind from what an fd is, for fds
 * that arrive from outside (fd: migration, getfd) where the caller cannot
 * know whether it was handed a socket, a pipe or a file.
 */
#include <sys/stat.h>

#include "io/channel.h"
#include "util/error.h"

IOChannel *io_channel_new_fd(int fd, const char *name, GError **errp)
{
    struct stat st;

    if (fstat(fd, &st) < 0) {
        error_setg_errno(errp, errno, "Unable to stat file descriptor %d for '%s'",
                         fd, name);
        return NULL;
    }
    if (S_ISSOCK(st.st_mode)) {
        return io_channel_socket_new_fd(fd, name);
    }
    return io_channel_file_new_fd(fd, name);
}
