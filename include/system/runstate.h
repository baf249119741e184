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
#include "migration/host.h"

/* RunState, runstate_name() and runstate_from_name() come with the host interface. */

RunState runstate_get(void);
void runstate_set(RunState s);
bool runstate_is_running(void);

/*
 * Stop vCPUs, enter state s (PAUSED, FINISH_MIGRATE, ...), emit STOP if it
 * was running; returns the state it left, read under the same lock.
 */
RunState vm_stop(RunState s);
/* The same, but without waiting for the vCPUs to park (one may wait for a page forever). */
void vm_stop_nowait(RunState s);
/* Resume vCPUs in RUNNING, emit RESUME. */
void vm_start(void);

/*
 * QMP's stop and cont: the same, but never while a migration completes
 * (finish-migrate); they wait until it has set postmigrate, or restored
 * the VM on failure, as QEMU's monitor waits for the big lock.  Stop
 * changes nothing, and sends no STOP, unless the VM is running (or
 * suspended), as QEMU's.
 */
void vm_stop_from_monitor(void);
/* False while a save waits in pre-switchover ("Migration is not finalized yet"). */
bool vm_start_from_monitor(GError **errp);
/* A save waits in pre-switchover (true) or went on (false): stop and cont act at once. */
void vm_set_switchover_paused(bool paused);

/*
 * QEMU's "autostart": true unless -S was given; QMP cont / stop in state
 * "inmigrate" set / clear it.  The incoming side reads it when a load
 * completes to choose between vm_start() and "paused" (§5.6).
 */
bool vm_autostart(void);

#endif
