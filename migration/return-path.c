/*
 * The source's return-path reader (see return-path.h).
 */
#include "return-path.h"
#include "options.h"
#include "qemu-file.h"
#include "savevm.h"
#include "util/error.h"
#include "util/thread.h"
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#define RP_WAIT_POLL_US (100 * 1000)     /* how often a wait for the ack looks at cancel */
#define RP_ERROR_WAIT_US G_USEC_PER_SEC  /* a failed save waits this long for SHUT */

struct RpReader {
    /* The reader thread's until it ends, then the joiner's */
    QEMUFile *f;                  /* input on a dup of the main socket */
    GThread *thread;              /* the migration thread's (start, free) */
    /* Protected by lock; cond is broadcast on every change */
    QemuMutex lock;
    QemuCond cond;
    bool switchover_acked;
    bool ended;                   /* the thread read SHUT, the end of the connection, or failed */
    bool got_shut;
    uint32_t shut_value;
    GError *err;                  /* why it ended without SHUT */
};

static gpointer rp_reader_thread(gpointer opaque)
{
    RpReader *r = opaque;
    RpCodec codec = { { 0 } };
    GError *err = NULL;
    RpMessage m = { 0 };
    bool shut = false;

    while (!err && !shut) {
        if (!savevm_get_rp_message(&codec, r->f, &m, &err)) {
            g_prefix_error(&err, "Return path: ");
            break;
        }
        switch (m.type) {
        case 0:
            error_setg(&err, "Return path: the destination closed the connection before "
                       "it reported the end of its load (SHUT)");
            break;
        case MIG_RP_MSG_SHUT:
            shut = true;
            break;
        case MIG_RP_MSG_PONG:
            break;
        case MIG_RP_MSG_SWITCHOVER_ACK:
            qemu_mutex_lock(&r->lock);
            r->switchover_acked = true;
            qemu_cond_broadcast(&r->cond);
            qemu_mutex_unlock(&r->lock);
            break;
        default:
            error_setg(&err, "Return path: unexpected message %s in a precopy migration",
                       savevm_rp_message_name(m.type));
            break;
        }
    }
    qemu_mutex_lock(&r->lock);
    r->ended = true;
    r->got_shut = shut;
    r->shut_value = m.value;
    r->err = err;
    qemu_cond_broadcast(&r->cond);
    qemu_mutex_unlock(&r->lock);
    return NULL;
}

RpReader *rp_reader_start(IOChannel *ioc, GError **errp)
{
    int fd = io_channel_get_fd(ioc);
    struct stat st;

    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode)) {
        error_setg(errp, "%s", MIGRATION_RETURN_PATH_NEEDS_SOCKET);
        return NULL;
    }
    int dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (dup_fd < 0) {
        error_setg_errno(errp, errno, "Unable to open return-path");
        return NULL;
    }
    RpReader *r = g_new0(RpReader, 1);
    g_autoptr(IOChannel) rp_ioc = io_channel_socket_new_fd(dup_fd, "return path");
    r->f = qemu_file_new_input(rp_ioc, 0);
    qemu_mutex_init(&r->lock);
    qemu_cond_init(&r->cond);
    r->thread = g_thread_new("return-path", rp_reader_thread, r);
    return r;
}

/* lock held, or the thread joined: why the return path ended, as the migration's error. */
static void ended_error(RpReader *r, GError **errp)
{
    if (r->err) {
        g_propagate_error(errp, g_error_copy(r->err));
    } else if (r->shut_value) {
        /* QEMU's words; the destination's own error-desc says what failed */
        error_setg(errp, "Sibling indicated error %u", r->shut_value);
    } else {
        error_setg(errp, "Return path: the destination ended its load (SHUT) before the "
                   "switchover");
    }
}

bool rp_reader_wait_switchover_ack(RpReader *r, const int *cancel, GError **errp)
{
    bool ok = false;

    qemu_mutex_lock(&r->lock);
    for (;;) {
        if (r->switchover_acked) {
            ok = true;
            break;
        }
        if (r->ended) {
            ended_error(r, errp);
            break;
        }
        if (__atomic_load_n(cancel, __ATOMIC_ACQUIRE)) {
            break;
        }
        qemu_cond_wait_until(&r->cond, &r->lock, g_get_monotonic_time() + RP_WAIT_POLL_US);
    }
    qemu_mutex_unlock(&r->lock);
    return ok;
}

bool rp_reader_wait_end(RpReader *r, const int *cancel, gint64 grace_us)
{
    gint64 end_us = 0;
    bool ended;

    qemu_mutex_lock(&r->lock);
    while (!(ended = r->ended)) {
        gint64 now = g_get_monotonic_time();
        if (!end_us && __atomic_load_n(cancel, __ATOMIC_ACQUIRE)) {
            end_us = now + grace_us;
        }
        if (end_us && now >= end_us) {
            break;
        }
        qemu_cond_wait_until(&r->cond, &r->lock,
                             end_us ? MIN(end_us, now + RP_WAIT_POLL_US) : now + RP_WAIT_POLL_US);
    }
    qemu_mutex_unlock(&r->lock);
    return ended;
}

void rp_reader_prefer_error(RpReader *r, GError **errp)
{
    gint64 end_us = g_get_monotonic_time() + RP_ERROR_WAIT_US;

    qemu_mutex_lock(&r->lock);
    while (!r->ended && qemu_cond_wait_until(&r->cond, &r->lock, end_us)) {
    }
    bool dest_failed = r->ended && r->got_shut && r->shut_value != 0;
    uint32_t value = r->shut_value;
    qemu_mutex_unlock(&r->lock);
    if (dest_failed) {
        g_clear_error(errp);
        error_setg(errp, "Sibling indicated error %u", value);
    }
}

bool rp_reader_finish(RpReader *r, GError **errp)
{
    g_thread_join(r->thread);
    r->thread = NULL;
    if (r->got_shut && r->shut_value == 0) {
        return true;
    }
    ended_error(r, errp);
    return false;
}

void rp_reader_free(RpReader *r)
{
    if (!r) {
        return;
    }
    if (r->thread) {
        g_thread_join(r->thread);
    }
    qemu_fclose(r->f, NULL);
    g_clear_error(&r->err);
    qemu_cond_destroy(&r->cond);
    qemu_mutex_destroy(&r->lock);
    g_free(r);
}
