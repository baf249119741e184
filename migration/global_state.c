/*
 * "globalstate": the source's run state, sent so the destination can
 * decide whether to resume (reference §1.7, §5.6).  Wire layout as QEMU's:
 * be32 size, runstate[32], u8 has_vm_was_suspended, u8 vm_was_suspended,
 * 66 unused bytes.
 */
#include "migration-internal.h"
#include "migration/vmstate.h"
#include "system/runstate.h"
#include <string.h>

typedef struct GlobalState {
    uint32_t size;
    uint8_t runstate[32];
    bool has_vm_was_suspended;
    bool vm_was_suspended;
    bool received;
} GlobalState;

/* Written by the migration threads at store/load; read by the main thread after. */
static GlobalState global_state;

void global_state_store(void)
{
    const char *name = runstate_name(runstate_get());
    memset(global_state.runstate, 0, sizeof(global_state.runstate));
    g_strlcpy((char *)global_state.runstate, name, sizeof(global_state.runstate));
    global_state.size = strlen(name) + 1;
    global_state.has_vm_was_suspended = true;
    global_state.vm_was_suspended = runstate_get() == RUN_STATE_SUSPENDED;
}

static int global_state_pre_save(void *opaque)
{
    GlobalState *s = opaque;
    if (!s->size) {
        global_state_store();
    }
    return 0;
}

static int global_state_pre_load(void *opaque)
{
    GlobalState *s = opaque;
    memset(s, 0, sizeof(*s));
    return 0;
}

static int global_state_post_load(void *opaque, int version_id)
{
    GlobalState *s = opaque;
    if (s->size > sizeof(s->runstate) || s->size == 0) {
        return -EINVAL;
    }
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

void global_state_register(void)
{
    vmstate_register("globalstate", 0, &vmstate_globalstate, &global_state);
}

const char *global_state_received(void)
{
    return global_state.received ? (const char *)global_state.runstate : NULL;
}

void global_state_reset_received(void)
{
    global_state.received = false;
    global_state.size = 0;
}
