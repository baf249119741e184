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
#include "system-internal.h"


/*
 * current: read anywhere (atomic), written under vm_lock or before
 * threads start.  vcpus_held: protected by vm_lock; true while the VM's
 * own pause reference is taken (the vCPUs start parked).
 */
static QemuMutex vm_lock;
static int current = RUN_STATE_PRELAUNCH;
static bool vcpus_held = true;
static int autostart = 1;

RunState runstate_get(void)
{
    return __atomic_load_n(&current, __ATOMIC_ACQUIRE);
}

void runstate_set(RunState s)
{
    g_assert((unsigned)s < RUN_STATE__MAX);
    __atomic_store_n(&current, s, __ATOMIC_RELEASE);
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

static void vm_stop_common(RunState s, bool wait)
{
    bool was_running;

    qemu_mutex_lock(&vm_lock);
    was_running = !vcpus_held;
    if (was_running) {
        if (wait) {
            cpus_pause_all();
        } else {
            cpus_request_pause();
        }
        vcpus_held = true;
    }
    runstate_set(s);
    /* Under the lock so that STOP and RESUME reach clients in order. */
    if (was_running) {
        qmp_event_send("STOP", NULL);
    }
    qemu_mutex_unlock(&vm_lock);
}

void vm_stop(RunState s)
{
    vm_stop_common(s, true);
}

void vm_stop_nowait(RunState s)
{
    vm_stop_common(s, false);
}

void vm_start(void)
{
    bool resumed;

    qemu_mutex_lock(&vm_lock);
    resumed = vcpus_held;
    runstate_set(RUN_STATE_RUNNING);
    if (resumed) {
        vcpus_held = false;
        cpus_resume_all();
        qmp_event_send("RESUME", NULL);
    }
    qemu_mutex_unlock(&vm_lock);
}
