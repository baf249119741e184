/*
 * pthread mutexes and condition variables.  See include/util/thread.h.
 * A failing pthread call here means memory corruption or a misuse
 * (unlocking a mutex one does not hold): abort at once, with the name.
 */
#include "util/thread.h"
#include <errno.h>
#include <string.h>
#include <time.h>

static void check(int err, const char *what)
{
    if (err) {
        g_error("%s: %s", what, g_strerror(err));
    }
}

void qemu_mutex_init(QemuMutex *m)
{
    check(pthread_mutex_init(&m->m, NULL), "pthread_mutex_init");
}

void qemu_mutex_destroy(QemuMutex *m)
{
    check(pthread_mutex_destroy(&m->m), "pthread_mutex_destroy");
}

void qemu_mutex_lock(QemuMutex *m)
{
    check(pthread_mutex_lock(&m->m), "pthread_mutex_lock");
}

void qemu_mutex_unlock(QemuMutex *m)
{
    check(pthread_mutex_unlock(&m->m), "pthread_mutex_unlock");
}

void qemu_cond_init(QemuCond *c)
{
    pthread_condattr_t attr;

    check(pthread_condattr_init(&attr), "pthread_condattr_init");
    check(pthread_condattr_setclock(&attr, CLOCK_MONOTONIC), "pthread_condattr_setclock");
    check(pthread_cond_init(&c->c, &attr), "pthread_cond_init");
    pthread_condattr_destroy(&attr);
}

void qemu_cond_destroy(QemuCond *c)
{
    check(pthread_cond_destroy(&c->c), "pthread_cond_destroy");
}

void qemu_cond_wait(QemuCond *c, QemuMutex *m)
{
    check(pthread_cond_wait(&c->c, &m->m), "pthread_cond_wait");
}

/* g_get_monotonic_time() is CLOCK_MONOTONIC in microseconds. */
bool qemu_cond_wait_until(QemuCond *c, QemuMutex *m, gint64 end_us)
{
    struct timespec ts = {
        .tv_sec = end_us / G_USEC_PER_SEC,
        .tv_nsec = (end_us % G_USEC_PER_SEC) * 1000,
    };
    int err = pthread_cond_timedwait(&c->c, &m->m, &ts);

    if (err == ETIMEDOUT) {
        return false;
    }
    check(err, "pthread_cond_timedwait");
    return true;
}

void qemu_cond_signal(QemuCond *c)
{
    check(pthread_cond_signal(&c->c), "pthread_cond_signal");
}

void qemu_cond_broadcast(QemuCond *c)
{
    check(pthread_cond_broadcast(&c->c), "pthread_cond_broadcast");
}
