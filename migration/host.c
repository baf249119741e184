/*
 * What the host interface (include/migration/host.h) shares with every
 * host: QEMU's run state names, which travel in the "globalstate" section.
 */
#include "migration/host.h"

static const char *const runstate_names[RUN_STATE__MAX] = {
    [RUN_STATE_DEBUG] = "debug",
    [RUN_STATE_INMIGRATE] = "inmigrate",
    [RUN_STATE_INTERNAL_ERROR] = "internal-error",
    [RUN_STATE_IO_ERROR] = "io-error",
    [RUN_STATE_PAUSED] = "paused",
    [RUN_STATE_POSTMIGRATE] = "postmigrate",
    [RUN_STATE_PRELAUNCH] = "prelaunch",
    [RUN_STATE_FINISH_MIGRATE] = "finish-migrate",
    [RUN_STATE_RESTORE_VM] = "restore-vm",
    [RUN_STATE_RUNNING] = "running",
    [RUN_STATE_SAVE_VM] = "save-vm",
    [RUN_STATE_SHUTDOWN] = "shutdown",
    [RUN_STATE_SUSPENDED] = "suspended",
    [RUN_STATE_WATCHDOG] = "watchdog",
    [RUN_STATE_GUEST_PANICKED] = "guest-panicked",
    [RUN_STATE_COLO] = "colo",
};

const char *runstate_name(RunState s)
{
    if ((unsigned)s >= RUN_STATE__MAX) {
        return "unknown";
    }
    return runstate_names[s];
}

RunState runstate_from_name(const char *name)
{
    for (int i = 0; i < RUN_STATE__MAX; i++) {
        if (g_strcmp0(runstate_names[i], name) == 0) {
            return i;
        }
    }
    return RUN_STATE__MAX;
}
