/*
 * Command channel (exec:): /bin/sh -c CMD with one pipe, to its stdin
 * (O_WRONLY) or from its stdout (O_RDONLY).  stderr is inherited so the
 * command's complaints reach the user.  The child gets no other fd of
 * ours, even one opened without O_CLOEXEC elsewhere, and starts as from a
 * shell: every signal at its default action, none blocked.
 *
 * close() closes the pipe, then waits for the child: for a writer this is
 * what makes "the save is complete" true ("exec:cat > f" has flushed f).
 * shutdown() (a cancel, a failed save) asks the child's process group to
 * end with SIGTERM and, if it is still there COMMAND_KILL_GRACE_MS later,
 * kills it: a command that ignores SIGTERM (or one of its pipeline's)
 * never holds a migration's end, its cancel or the VM's quit.
 */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "channel-fd.h"
#include "io/channel.h"
#include "util/error.h"
#include "util/thread.h"

/* How long a command may take to end after SIGTERM before it is killed. */
#define COMMAND_KILL_GRACE_MS 2000

typedef struct IOChannelCommand {
    IOChannel parent;
    char *cmd;                  /* immutable; for messages */
    int fd;                     /* our end of the pipe; the owner's; -1 once closed */
    int mode;                   /* immutable: O_RDONLY or O_WRONLY */
    /*
     * The child, between a shutdown (any thread) and the owner's reap.
     * pid is reaped only after `exited` is set and the killer joined, so
     * while !exited the pid (and its group id) is still ours to signal.
     */
    QemuMutex lock;
    QemuCond exited_cond;
    pid_t pid;                  /* lock; 0 once reaped */
    bool exited;                /* lock; the child has ended (not yet reaped) */
    bool shut_down;             /* lock; we stopped it: its death is no error */
    GThread *killer;            /* lock; started by the first shutdown */
} IOChannelCommand;

static int command_fd(IOChannel *ioc)
{
    return ((IOChannelCommand *)ioc)->fd;
}

static ssize_t command_readv(IOChannel *ioc, const struct iovec *iov, size_t niov,
                             GError **errp)
{
    ssize_t n;

    if (((IOChannelCommand *)ioc)->mode != O_RDONLY) {
        error_setg(errp, "Unable to read from command: channel is write-only");
        return -1;
    }
    n = io_fd_readv(command_fd(ioc), iov, niov);
    if (n < 0) {
        error_setg_errno(errp, errno, "Unable to read from command");
    }
    return n;
}

/*
 * writev() on a pipe whose reader is gone raises SIGPIPE.  Block it in
 * this thread for the call and swallow the one we caused, so the write
 * fails with EPIPE even in a process that did not ignore SIGPIPE.
 */
static ssize_t writev_nosigpipe(int fd, const struct iovec *iov, size_t niov)
{
    sigset_t pipe_set, old_set, pending;
    bool was_pending;
    ssize_t n;
    int saved_errno;

    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old_set);
    sigpending(&pending);
    was_pending = sigismember(&pending, SIGPIPE);

    n = io_fd_writev(fd, iov, niov);
    saved_errno = errno;

    /*
     * Not only on EPIPE: a write the reader abandons half way returns
     * the partial count and still raises SIGPIPE.
     */
    sigpending(&pending);
    if (!was_pending && sigismember(&pending, SIGPIPE)) {
        static const struct timespec zero;

        while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR) {
        }
    }
    pthread_sigmask(SIG_SETMASK, &old_set, NULL);
    errno = saved_errno;
    return n;
}

static ssize_t command_writev(IOChannel *ioc, const struct iovec *iov, size_t niov,
                              GError **errp)
{
    ssize_t n;

    if (((IOChannelCommand *)ioc)->mode != O_WRONLY) {
        error_setg(errp, "Unable to write to command: channel is read-only");
        return -1;
    }
    n = writev_nosigpipe(command_fd(ioc), iov, niov);
    if (n < 0) {
        error_setg_errno(errp, errno, "Unable to write to command");
    }
    return n;
}

/*
 * Deaths we caused are not failures: after shutdown() we sent SIGTERM,
 * and a producer we stopped reading from dies of SIGPIPE -- directly, or
 * as the shell's "128 + signal" exit status when sh did not exec it.
 */
static bool command_stopped_by_us(IOChannelCommand *cioc, int status)
{
    int sig = WIFSIGNALED(status) ? WTERMSIG(status)
            : WIFEXITED(status) && WEXITSTATUS(status) > 128 ? WEXITSTATUS(status) - 128
            : 0;

    if (!sig) {
        return false;
    }
    return cioc->shut_down || (cioc->mode == O_RDONLY && sig == SIGPIPE);
}

/*
 * After a shutdown: the group's SIGKILL if the child has not ended within
 * the grace time.  The child is not reaped while this runs (see lock).
 */
static gpointer command_killer(gpointer opaque)
{
    IOChannelCommand *cioc = opaque;
    gint64 deadline = g_get_monotonic_time() + COMMAND_KILL_GRACE_MS * G_TIME_SPAN_MILLISECOND;

    qemu_mutex_lock(&cioc->lock);
    while (!cioc->exited && qemu_cond_wait_until(&cioc->exited_cond, &cioc->lock, deadline)) {
    }
    if (!cioc->exited) {
        kill(-cioc->pid, SIGKILL);
    }
    qemu_mutex_unlock(&cioc->lock);
    return NULL;
}

static int command_shutdown(IOChannel *ioc, GError **errp);

/* How long a producer may take to exit once we closed our end of its pipe. */
#define COMMAND_READER_EXIT_MS 100

/* Has the child ended, or does it within COMMAND_READER_EXIT_MS?  It stays unreaped. */
static bool command_exits_soon(pid_t pid)
{
    for (int waited = 0;; waited += 10) {
        siginfo_t info = { .si_pid = 0 };
        int ret = waitid(P_PID, pid, &info, WEXITED | WNOHANG | WNOWAIT);

        if (ret < 0 && errno == EINTR) {
            continue;
        }
        if (ret < 0 || info.si_pid == pid) {
            return true;                /* ended (or not ours to wait for: said below) */
        }
        if (waited >= COMMAND_READER_EXIT_MS) {
            return false;
        }
        g_usleep(10 * 1000);
    }
}

/*
 * Wait for the child and turn its end into an error if it failed.  It is
 * first waited for without being reaped, so that a shutdown meanwhile
 * still signals our process group and nobody else's.
 */
static int command_reap(IOChannel *ioc, GError **errp)
{
    IOChannelCommand *cioc = (IOChannelCommand *)ioc;
    siginfo_t info;
    GThread *killer;
    int status = 0;
    pid_t pid;
    int ret;

    qemu_mutex_lock(&cioc->lock);
    pid = cioc->pid;
    qemu_mutex_unlock(&cioc->lock);
    if (!pid) {
        return 0;
    }
    if (cioc->mode == O_RDONLY && !command_exits_soon(pid)) {
        /*
         * A producer we stopped reading (the stream ended, or the load
         * failed) that lingers (exec:cat f; sleep 60) is stopped as after
         * a shutdown, as QEMU does: the load's end does not wait for it.
         */
        command_shutdown(ioc, NULL);
    }
    do {
        ret = waitid(P_PID, pid, &info, WEXITED | WNOWAIT);
    } while (ret < 0 && errno == EINTR);
    int wait_errno = errno;

    qemu_mutex_lock(&cioc->lock);
    cioc->exited = true;
    qemu_cond_broadcast(&cioc->exited_cond);
    killer = cioc->killer;
    cioc->killer = NULL;
    qemu_mutex_unlock(&cioc->lock);
    if (killer) {
        g_thread_join(killer);
    }
    if (ret == 0) {
        do {
            ret = waitpid(pid, &status, 0);
        } while (ret < 0 && errno == EINTR);
        wait_errno = errno;
    }
    qemu_mutex_lock(&cioc->lock);
    cioc->pid = 0;
    bool stopped_by_us = ret >= 0 && command_stopped_by_us(cioc, status);
    qemu_mutex_unlock(&cioc->lock);
    if (ret < 0) {
        error_setg_errno(errp, wait_errno, "Failed to wait for command '%s'", cioc->cmd);
        return -1;
    }
    if (stopped_by_us) {
        return 0;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
        error_setg(errp, "Command '%s' exited with status %d", cioc->cmd,
                   WEXITSTATUS(status));
        return -1;
    }
    if (WIFSIGNALED(status)) {
        error_setg(errp, "Command '%s' was killed by signal %d", cioc->cmd,
                   WTERMSIG(status));
        return -1;
    }
    return 0;
}

/* The pipe only: io_channel_close then reaps (command_reap), outside its lock. */
static int command_close(IOChannel *ioc, GError **errp)
{
    IOChannelCommand *cioc = (IOChannelCommand *)ioc;

    if (cioc->fd >= 0) {
        close(cioc->fd);
        cioc->fd = -1;
    }
    return 0;
}

/*
 * Cancel: stop the command so a blocked read/write returns.  The whole
 * process group: in a pipeline ("gzip -c | ssh ...") the shell's children
 * hold the pipe too, and a SIGTERM to sh alone left the write blocked for
 * as long as they lived.  The group is the child's own (see command_spawn)
 * and outlives sh while any of them runs.  SIGTERM first, so that a
 * `mapram save` can remove what it wrote; SIGKILL after the grace time.
 */
static int command_shutdown(IOChannel *ioc, GError **errp)
{
    IOChannelCommand *cioc = (IOChannelCommand *)ioc;

    qemu_mutex_lock(&cioc->lock);
    if (cioc->pid && !cioc->exited && !cioc->shut_down) {
        cioc->shut_down = true;
        kill(-cioc->pid, SIGTERM);
        cioc->killer = g_thread_new("exec-kill", command_killer, cioc);
    }
    qemu_mutex_unlock(&cioc->lock);
    return 0;
}

static void command_finalize(IOChannel *ioc)
{
    IOChannelCommand *cioc = (IOChannelCommand *)ioc;

    /* io_channel_unref closed and reaped it: no killer is left */
    g_assert(!cioc->killer);
    qemu_mutex_destroy(&cioc->lock);
    qemu_cond_destroy(&cioc->exited_cond);
    g_free(cioc->cmd);
}

static const IOChannelOps command_ops = {
    .kind = "command",
    .readv = command_readv,
    .writev = command_writev,
    .close = command_close,
    .reap = command_reap,
    .finalize = command_finalize,
    .shutdown = command_shutdown,
    .get_fd = command_fd,
};

/*
 * Start /bin/sh -c CMD with child_fd as its stdin (O_WRONLY) or stdout
 * (O_RDONLY); the other of the two is /dev/null (stdin) or ours (stdout).
 * posix_spawn, not fork: glibc starts the child in our memory until it
 * execs (CLONE_VM | CLONE_VFORK), so nothing of this process is copied,
 * however much memory it maps; a fork (which GLib's spawn makes whenever
 * it must close fds) copied the page tables of all of it.  The command
 * gets a process group of its own, so that a cancel reaches every process
 * of a pipeline (command_shutdown).  Returns the pid, or 0 with errp set.
 */
static pid_t command_spawn(const char *cmd, int mode, int child_fd, GError **errp)
{
    extern char **environ;
    const char *argv[] = { "/bin/sh", "-c", cmd, NULL };
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    sigset_t all, none;
    pid_t pid = 0;
    int err;

    sigfillset(&all);
    sigemptyset(&none);
    if ((err = posix_spawn_file_actions_init(&fa)) != 0) {
        goto out;
    }
    if ((err = posix_spawnattr_init(&attr)) != 0) {
        posix_spawn_file_actions_destroy(&fa);
        goto out;
    }
    /* dup2 clears FD_CLOEXEC on the copy, even where child_fd is already 0 or 1 */
    if ((err = posix_spawn_file_actions_adddup2(&fa, child_fd, mode == O_WRONLY ? 0 : 1)) ||
        (mode == O_RDONLY &&
         (err = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0))) ||
        (err = posix_spawn_file_actions_addclosefrom_np(&fa, 3)) ||
        (err = posix_spawnattr_setsigdefault(&attr, &all)) ||
        (err = posix_spawnattr_setsigmask(&attr, &none)) ||
        (err = posix_spawnattr_setpgroup(&attr, 0)) ||
        (err = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK |
                                               POSIX_SPAWN_SETPGROUP))) {
        goto done;
    }
    err = posix_spawn(&pid, argv[0], &fa, &attr, (char **)argv, environ);
done:
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&fa);
out:
    if (err) {
        error_setg(errp, "Unable to spawn command '%s': %s", cmd, g_strerror(err));
        return 0;
    }
    return pid;
}

IOChannel *io_channel_command_new_spawn(const char *cmd, int mode, GError **errp)
{
    IOChannelCommand *cioc;
    int pipefd[2];
    int child_fd, our_fd;
    pid_t pid;

    mode &= O_ACCMODE;
    if (mode != O_RDONLY && mode != O_WRONLY) {
        error_setg(errp, "Command channel must be opened read-only or write-only");
        return NULL;
    }
    if (pipe2(pipefd, O_CLOEXEC) < 0) {
        error_setg_errno(errp, errno, "Unable to create pipe for command '%s'", cmd);
        return NULL;
    }
    child_fd = mode == O_WRONLY ? pipefd[0] : pipefd[1];
    our_fd = mode == O_WRONLY ? pipefd[1] : pipefd[0];

    pid = command_spawn(cmd, mode, child_fd, errp);
    close(child_fd);
    if (!pid) {
        close(our_fd);
        return NULL;
    }

    cioc = g_new0(IOChannelCommand, 1);
    io_channel_init(&cioc->parent, &command_ops, "command");
    cioc->parent.features = IO_CHANNEL_FEATURE_SHUTDOWN;
    cioc->cmd = g_strdup(cmd);
    cioc->fd = our_fd;
    cioc->mode = mode;
    qemu_mutex_init(&cioc->lock);
    qemu_cond_init(&cioc->exited_cond);
    cioc->pid = pid;
    return &cioc->parent;
}
