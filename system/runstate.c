/*
 * Run state and vm_stop()/vm_start().
 *
 * The VM holds one pause reference on the vCPUs whenever it is not
 * running (cpus.c counts references), so "stopped by the VM" and
 * "paused by a caller of cpus_pause_all()" nest without either one
 * waking the vCPUs behind the other's back.
 */
#include "monitor/qmp.h"
#include "system/runstate.h"
#include "system/system.h"
#include "util/thread.h"
#include "util/error.h"
#include "system-internal.h"


/*
 * current: read anywhere (atomic), written under vm_lock or before
 * threads start.  vcpus_held: protected by vm_lock; true while the VM's
 * own pause reference is taken (the vCPUs start parked).  vm_cond: with
 * vm_lock, broadcast whenever current changes; the monitor's stop and
 * cont wait on it while a migration completes.
 */
static QemuMutex vm_lock;
static QemuCond vm_cond;
static gsize vm_cond_ready;
static int current = RUN_STATE_PRELAUNCH;
static bool vcpus_held = true;
static int autostart = 1;
/* vm_lock: a save waits in pre-switchover; the monitor no longer waits it out */
static bool switchover_paused;

static void vm_cond_init(void)
{
    if (g_once_init_enter(&vm_cond_ready)) {
        qemu_cond_init(&vm_cond);
        g_once_init_leave(&vm_cond_ready, 1);
    }
}

/* Under vm_lock. */
static void set_locked(RunState s)
{
    g_assert((unsigned)s < RUN_STATE__MAX);
    __atomic_store_n(&current, s, __ATOMIC_RELEASE);
    qemu_cond_broadcast(&vm_cond);
}

RunState runstate_get(void)
{
    return __atomic_load_n(&current, __ATOMIC_ACQUIRE);
}

void runstate_set(RunState s)
{
    vm_cond_init();
    qemu_mutex_lock(&vm_lock);
    set_locked(s);
    qemu_mutex_unlock(&vm_lock);
}

bool runstate_is_running(void)
{
    return runstate_get() == RUN_STATE_RUNNING;
}

/* States left only by a reset, which this VM does not offer. */
bool runstate_needs_reset(void)
{
    RunState s = runstate_get();

    return s == RUN_STATE_INTERNAL_ERROR || s == RUN_STATE_SHUTDOWN ||
           s == RUN_STATE_GUEST_PANICKED;
}

void vm_set_autostart(bool on)
{
    __atomic_store_n(&autostart, on, __ATOMIC_RELEASE);
}

bool vm_autostart(void)
{
    return __atomic_load_n(&autostart, __ATOMIC_ACQUIRE);
}

/*
 * A migration that stopped the VM for its last pass and device state
 * (finish-migrate) owns the run state until it sets another one; QEMU's
 * big lock keeps monitor commands out of that stretch, so the monitor's
 * stop and cont wait for it here.  Under vm_lock.
 */
static void wait_out_migration_locked(bool from_monitor)
{
    while (from_monitor && !switchover_paused &&
           runstate_get() == RUN_STATE_FINISH_MIGRATE) {
        qemu_cond_wait(&vm_cond, &vm_lock);
    }
}

/*
 * pause-before-switchover: while the save waits for migrate-continue
 * (QEMU drops its big lock there), the monitor's stop and cont act at
 * once: stop on a VM that is not running changes nothing, cont fails.
 */
void vm_set_switchover_paused(bool paused)
{
    vm_cond_init();
    qemu_mutex_lock(&vm_lock);
    switchover_paused = paused;
    qemu_cond_broadcast(&vm_cond);
    qemu_mutex_unlock(&vm_lock);
}

/* @wait: return only when every vCPU has parked.  Returns the state left. */
static RunState stop_vm(RunState s, bool from_monitor, bool wait)
{
    bool was_running;
    RunState old;

    vm_cond_init();
    qemu_mutex_lock(&vm_lock);
    wait_out_migration_locked(from_monitor);
    old = runstate_get();
    if (from_monitor && old != RUN_STATE_RUNNING && old != RUN_STATE_SUSPENDED) {
        /*
         * QEMU's stop acts on a live VM only: a prelaunch, postmigrate,
         * internal-error or guest-panicked one keeps its state (which
         * cont and migrate look at) and no STOP is sent.
         */
        qemu_mutex_unlock(&vm_lock);
        return old;
    }
    was_running = !vcpus_held;
    if (was_running) {
        if (wait) {
            cpus_pause_all();
        } else {
            cpus_request_pause();
        }
        vcpus_held = true;
    }
    set_locked(s);
    /* Under the lock so that STOP and RESUME reach clients in order. */
    if (was_running) {
        qmp_event_send("STOP", NULL);
    }
    qemu_mutex_unlock(&vm_lock);
    return old;
}

static bool start_vm(bool from_monitor, GError **errp)
{
    bool resumed;

    vm_cond_init();
    qemu_mutex_lock(&vm_lock);
    wait_out_migration_locked(from_monitor);
    if (from_monitor && runstate_get() == RUN_STATE_FINISH_MIGRATE) {
        /* a save waiting in pre-switchover owns the stopped guest: QEMU's words */
        qemu_mutex_unlock(&vm_lock);
        error_setg(errp, "Migration is not finalized yet");
        return false;
    }
    resumed = vcpus_held;
    set_locked(RUN_STATE_RUNNING);
    if (resumed) {
        vcpus_held = false;
        cpus_resume_all();
        qmp_event_send("RESUME", NULL);
    }
    qemu_mutex_unlock(&vm_lock);
    return true;
}

RunState vm_stop(RunState s)
{
    return stop_vm(s, false, true);
}

void vm_stop_nowait(RunState s)
{
    stop_vm(s, false, false);
}

void vm_start(void)
{
    start_vm(false, NULL);
}

void vm_stop_from_monitor(void)
{
    stop_vm(RUN_STATE_PAUSED, true, true);
}

bool vm_start_from_monitor(GError **errp)
{
    return start_vm(true, errp);
}
