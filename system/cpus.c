/*
 * vCPU threads and the park protocol.
 *
 * Each vCPU runs its guest program in bounded slices.  Between slices it
 * polls one atomic word (pause_req); when set, it parks: it counts
 * itself in nparked and sleeps on the condition variable until no pause
 * reference is left.  cpus_pause_all() returns only once every vCPU is
 * parked, so whoever paused may then read guest memory and device state
 * as a consistent snapshot.
 *
 * A vCPU can be stuck for good instead: it touched a guest page that a
 * failed on-demand restore will not bring, and waits in the kernel (the
 * guest must never see a wrong page).  The restore says so
 * (cpus_thread_blocked()), and the pause counts it as parked: nothing
 * else can read or resume that guest any more (cont, pmemsave and saves
 * are refused), and it is let go only when the VM ends.
 */
#include <unistd.h>

#include "system/system.h"
#include "util/thread.h"
#include "system-internal.h"

typedef struct VCPU {
    unsigned index;
    GThread *thread;
    GuestCPU *gcpu;       /* owned by the vCPU thread while it runs */
    /* Protected by cpus.lock */
    int tid;              /* the thread's, once it runs */
    bool blocked;         /* stuck for good on a guest page */
} VCPU;

/*
 * Immutable after cpus_create(): ncpus, vcpus.
 * Protected by lock: pause_depth, nparked, nblocked, quit, each VCPU's
 * tid and blocked.
 * pause_req: atomic mirror of (pause_depth > 0 || quit), polled by vCPUs.
 */
static struct {
    QemuMutex lock;
    QemuCond cond;
    int pause_depth;
    unsigned nparked;
    unsigned nblocked;
    bool quit;
    int pause_req;
    unsigned ncpus;
    VCPU *vcpus;
} cpus = { .pause_depth = 1, .pause_req = 1 };

static void update_pause_req_locked(void)
{
    __atomic_store_n(&cpus.pause_req, cpus.pause_depth > 0 || cpus.quit,
                     __ATOMIC_RELEASE);
}

/* Returns false when the thread must exit. */
static bool vcpu_park(void)
{
    bool go_on;

    qemu_mutex_lock(&cpus.lock);
    cpus.nparked++;
    qemu_cond_broadcast(&cpus.cond);
    while (cpus.pause_depth > 0 && !cpus.quit) {
        qemu_cond_wait(&cpus.cond, &cpus.lock);
    }
    cpus.nparked--;
    go_on = !cpus.quit;
    qemu_mutex_unlock(&cpus.lock);
    return go_on;
}

/* Sleep up to delay_us (G_MAXINT64: forever), cut short by a pause request. */
static void vcpu_wait(gint64 delay_us)
{
    gint64 deadline = delay_us == G_MAXINT64 ? G_MAXINT64
                                             : g_get_monotonic_time() + delay_us;

    qemu_mutex_lock(&cpus.lock);
    while (!__atomic_load_n(&cpus.pause_req, __ATOMIC_ACQUIRE)) {
        if (deadline == G_MAXINT64) {
            qemu_cond_wait(&cpus.cond, &cpus.lock);
        } else if (!qemu_cond_wait_until(&cpus.cond, &cpus.lock, deadline)) {
            break;
        }
    }
    qemu_mutex_unlock(&cpus.lock);
}

static gpointer vcpu_thread_fn(gpointer opaque)
{
    VCPU *cpu = opaque;

    qemu_mutex_lock(&cpus.lock);
    cpu->tid = gettid();
    qemu_mutex_unlock(&cpus.lock);
    for (;;) {
        gint64 delay;

        if (__atomic_load_n(&cpus.pause_req, __ATOMIC_ACQUIRE) && !vcpu_park()) {
            break;
        }
        delay = guest_cpu_step(cpu->gcpu);
        if (delay > 0) {
            vcpu_wait(delay);
        }
    }
    return NULL;
}

/* Also after cpus_stop_threads() (tests/fuzz builds a VM per input). */
void cpus_create(unsigned ncpus, const GuestConfig *gc, Migration *mig)
{
    qemu_mutex_init(&cpus.lock);
    qemu_cond_init(&cpus.cond);
    cpus.quit = false;
    cpus.nblocked = 0;
    update_pause_req_locked();
    cpus.ncpus = ncpus;
    cpus.vcpus = g_new0(VCPU, ncpus);
    for (unsigned i = 0; i < ncpus; i++) {
        cpus.vcpus[i].index = i;
        cpus.vcpus[i].gcpu = guest_cpu_new(i, ncpus, gc, mig);
    }
}

void cpus_start_threads(void)
{
    for (unsigned i = 0; i < cpus.ncpus; i++) {
        g_autofree char *name = g_strdup_printf("vcpu%u", i);
        cpus.vcpus[i].thread = g_thread_new(name, vcpu_thread_fn, &cpus.vcpus[i]);
    }
}

void cpus_stop_threads(void)
{
    qemu_mutex_lock(&cpus.lock);
    cpus.quit = true;
    update_pause_req_locked();
    qemu_cond_broadcast(&cpus.cond);
    qemu_mutex_unlock(&cpus.lock);
    for (unsigned i = 0; i < cpus.ncpus; i++) {
        if (cpus.vcpus[i].thread) {
            g_thread_join(cpus.vcpus[i].thread);
        }
        guest_cpu_free(cpus.vcpus[i].gcpu);
    }
    g_free(cpus.vcpus);
    cpus.vcpus = NULL;
    cpus.ncpus = 0;
}

void cpus_pause_all(void)
{
    qemu_mutex_lock(&cpus.lock);
    cpus.pause_depth++;
    update_pause_req_locked();
    qemu_cond_broadcast(&cpus.cond);
    while (cpus.nparked + cpus.nblocked < cpus.ncpus && !cpus.quit) {
        qemu_cond_wait(&cpus.cond, &cpus.lock);
    }
    qemu_mutex_unlock(&cpus.lock);
}

void cpus_thread_blocked(int tid)
{
    qemu_mutex_lock(&cpus.lock);
    for (unsigned i = 0; i < cpus.ncpus; i++) {
        VCPU *cpu = &cpus.vcpus[i];

        /* tid 0: the kernel did not say which thread; any vCPU may be */
        if ((tid == 0 || cpu->tid == tid) && !cpu->blocked) {
            cpu->blocked = true;
            cpus.nblocked++;
        }
    }
    qemu_cond_broadcast(&cpus.cond);
    qemu_mutex_unlock(&cpus.lock);
}

void cpus_request_pause(void)
{
    qemu_mutex_lock(&cpus.lock);
    cpus.pause_depth++;
    update_pause_req_locked();
    qemu_cond_broadcast(&cpus.cond);
    qemu_mutex_unlock(&cpus.lock);
}

void cpus_resume_all(void)
{
    qemu_mutex_lock(&cpus.lock);
    g_assert(cpus.pause_depth > 0);
    cpus.pause_depth--;
    update_pause_req_locked();
    if (cpus.pause_depth == 0) {
        qemu_cond_broadcast(&cpus.cond);
    }
    qemu_mutex_unlock(&cpus.lock);
}
