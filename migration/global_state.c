/*
 * "globalstate": the source's run state, sent so the destination can
 * decide whether to resume (reference §1.7, §5.6).  Wire layout as QEMU's:
 * be32 size, runstate[32], u8 has_vm_was_suspended, u8 vm_was_suspended,
 * 66 unused bytes.
 */
#include "migration-internal.h"
#include "migration/vmstate.h"
#include <string.h>

/*
 * One per Migration.  The wire fields are written by the migration thread
 * (store, save) or the incoming thread (load) while one runs, and read by
 * whoever joined that thread; host is immutable.
 */
struct GlobalState {
    uint32_t size;
    uint8_t runstate[32];
    bool has_vm_was_suspended;
    bool vm_was_suspended;
    bool received;
    const MigrationHostOps *host;
    void *host_opaque;
};

void global_state_store(GlobalState *gs, RunState rs)
{
    const char *name = runstate_name(rs);
    memset(gs->runstate, 0, sizeof(gs->runstate));
    g_strlcpy((char *)gs->runstate, name, sizeof(gs->runstate));
    gs->size = strlen(name) + 1;
    gs->has_vm_was_suspended = true;
    gs->vm_was_suspended = rs == RUN_STATE_SUSPENDED;
}

static int global_state_pre_save(void *opaque)
{
    GlobalState *s = opaque;
    if (!s->size) {
        global_state_store(s, s->host->runstate_get(s->host_opaque));
    }
    return 0;
}

static int global_state_pre_load(void *opaque)
{
    GlobalState *s = opaque;
    s->size = 0;
    memset(s->runstate, 0, sizeof(s->runstate));
    s->has_vm_was_suspended = s->vm_was_suspended = s->received = false;
    return 0;
}

static int global_state_post_load(void *opaque, int version_id)
{
    GlobalState *s = opaque;
    /* as QEMU: size is not read back, only the name (NUL-terminated here) */
    s->runstate[sizeof(s->runstate) - 1] = 0;
    if (runstate_from_name((char *)s->runstate) == RUN_STATE__MAX) {
        return -EINVAL;
    }
    s->received = true;
    return 0;
}

static const VMStateDescription vmstate_globalstate = {
    .name = "globalstate",
    .version_id = 1,
    .minimum_version_id = 1,
    .pre_save = global_state_pre_save,
    .pre_load = global_state_pre_load,
    .post_load = global_state_post_load,
    .fields = (const VMStateField[]) {
        VMSTATE_UINT32(size, GlobalState),
        VMSTATE_BUFFER(runstate, GlobalState),
        VMSTATE_BOOL(has_vm_was_suspended, GlobalState),
        VMSTATE_BOOL(vm_was_suspended, GlobalState),
        VMSTATE_UNUSED(66),
        VMSTATE_END_OF_LIST()
    },
};

GlobalState *global_state_new(SaveVMRegistry *r, const MigrationHostOps *host,
                              void *host_opaque)
{
    GlobalState *gs = g_new0(GlobalState, 1);
    gs->host = host;
    gs->host_opaque = host_opaque;
    savevm_register_vmstate(r, "globalstate", 0, &vmstate_globalstate, gs);
    return gs;
}

void global_state_free(GlobalState *gs)
{
    g_free(gs);
}

const char *global_state_received(GlobalState *gs)
{
    return gs->received ? (const char *)gs->runstate : NULL;
}

void global_state_reset(GlobalState *gs)
{
    gs->received = false;
    gs->size = 0;
}
