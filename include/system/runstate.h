/*
 * Run states with QEMU's names, and stopping/starting the vCPUs.
 *
 * vm_stop() may be called from any thread (QMP stop, the migration
 * thread); it returns when every vCPU has parked, then emits STOP.
 * vm_start() resumes and emits RESUME.  Both are idempotent.
 */
#ifndef SYSTEM_RUNSTATE_H
#define SYSTEM_RUNSTATE_H

#include <stdbool.h>

typedef enum RunState {
    RUN_STATE_DEBUG,
    RUN_STATE_INMIGRATE,
    RUN_STATE_INTERNAL_ERROR,
    RUN_STATE_IO_ERROR,
    RUN_STATE_PAUSED,
    RUN_STATE_POSTMIGRATE,
    RUN_STATE_PRELAUNCH,
    RUN_STATE_FINISH_MIGRATE,
    RUN_STATE_RESTORE_VM,
    RUN_STATE_RUNNING,
    RUN_STATE_SAVE_VM,
    RUN_STATE_SHUTDOWN,
    RUN_STATE_SUSPENDED,
    RUN_STATE_WATCHDOG,
    RUN_STATE_GUEST_PANICKED,
    RUN_STATE_COLO,
    RUN_STATE__MAX
} RunState;

const char *runstate_name(RunState s);
RunState runstate_from_name(const char *name);   /* RUN_STATE__MAX if unknown */
RunState runstate_get(void);
void runstate_set(RunState s);
bool runstate_is_running(void);

/* Stop vCPUs, enter state s (PAUSED, FINISH_MIGRATE, ...), emit STOP if it was running. */
void vm_stop(RunState s);
/* Resume vCPUs in RUNNING, emit RESUME. */
void vm_start(void);

/*
 * QEMU's "autostart": true unless -S was given; QMP cont / stop in state
 * "inmigrate" set / clear it.  The incoming side reads it when a load
 * completes to choose between vm_start() and "paused" (§5.6).
 */
bool vm_autostart(void);

#endif
