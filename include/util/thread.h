/*
 * QemuMutex and QemuCond: a mutex and a condition variable on pthreads.
 *
 * Why not GMutex/GCond: on Linux GLib builds them on raw futexes, which
 * ThreadSanitizer cannot see, so every field they protect would be
 * reported as racy and real races would drown in the noise.  pthreads are
 * intercepted by TSan.  The API is GLib's shape, QEMU's names.
 *
 * A zero-initialised QemuMutex (a static, or g_new0) is ready to use, as
 * with PTHREAD_MUTEX_INITIALIZER on glibc; qemu_mutex_init() is still the
 * way to set one up in a struct.  A QemuCond needs qemu_cond_init(): its
 * timed waits run on the monotonic clock (g_get_monotonic_time()).
 */
#ifndef UTIL_THREAD_H
#define UTIL_THREAD_H

#include <glib.h>
#include <pthread.h>
#include <stdbool.h>

typedef struct QemuMutex {
    pthread_mutex_t m;
} QemuMutex;

typedef struct QemuCond {
    pthread_cond_t c;
} QemuCond;

void qemu_mutex_init(QemuMutex *m);
void qemu_mutex_destroy(QemuMutex *m);
void qemu_mutex_lock(QemuMutex *m);
void qemu_mutex_unlock(QemuMutex *m);

void qemu_cond_init(QemuCond *c);
void qemu_cond_destroy(QemuCond *c);
void qemu_cond_wait(QemuCond *c, QemuMutex *m);
/* false if end_us (g_get_monotonic_time() units) passed without a signal */
bool qemu_cond_wait_until(QemuCond *c, QemuMutex *m, gint64 end_us);
void qemu_cond_signal(QemuCond *c);
void qemu_cond_broadcast(QemuCond *c);

/*
 * Hand-offs TSan cannot see (a pointer passed to the GLib main loop with
 * g_idle_add, whose queue is guarded by a futex): the sender calls
 * tsan_release(p) before handing p over, the receiver tsan_acquire(p)
 * before using it.  No-ops in other builds.
 *
 * tsan_ignore_begin()/end() bracket accesses TSan must not track: the
 * emulated guest's own reads and writes of its RAM (system/), which the
 * host reads while they happen by design (a live save, pmemsave).  They
 * cost a call into TSan per access (which records its stack): hot paths
 * use NO_TSAN functions instead, which TSan does not instrument at all.
 */
#if defined(__SANITIZE_THREAD__)
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
void __tsan_ignore_thread_begin(void);
void __tsan_ignore_thread_end(void);
#define tsan_acquire(p) __tsan_acquire((void *)(p))
#define tsan_release(p) __tsan_release((void *)(p))
#define tsan_ignore_begin() __tsan_ignore_thread_begin()
#define tsan_ignore_end() __tsan_ignore_thread_end()
#define NO_TSAN __attribute__((no_sanitize("thread")))
#else
#define tsan_acquire(p) ((void)(p))
#define tsan_release(p) ((void)(p))
#define tsan_ignore_begin() ((void)0)
#define tsan_ignore_end() ((void)0)
#define NO_TSAN
#endif

#endif
