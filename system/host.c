/*
 * mapram-vm as the migration host: the MigrationHostOps table
 * (include/migration/host.h) over this VM's run state, vCPUs, RAM blocks,
 * QMP monitor and main loop.  The VM is one per process, so the opaque is
 * unused: every operation reaches the VM's own (thread-safe) services.
 */
#include "monitor/qmp.h"
#include "system/ramblock.h"
#include "system/runstate.h"
#include "system/system.h"
#include "system-internal.h"
#include "util/thread.h"

static RunState host_runstate_get(void *opaque)
{
    return runstate_get();
}

static void host_runstate_set(void *opaque, RunState s)
{
    runstate_set(s);
}

static RunState host_vm_stop(void *opaque, RunState s)
{
    return vm_stop(s);
}

static void host_vm_stop_nowait(void *opaque, RunState s)
{
    vm_stop_nowait(s);
}

static void host_vm_start(void *opaque)
{
    vm_start();
}

/* A failed on-demand restore: tid waits for good on a guest page. */
static void host_guest_ram_blocked(void *opaque, int tid, const char *msg)
{
    cpus_thread_blocked(tid);
    pmem_thread_blocked(tid, msg);
}

static bool host_autostart(void *opaque)
{
    return vm_autostart();
}

static size_t host_ram_block_count(void *opaque)
{
    return ram_block_count();
}

static void host_ram_block_get(void *opaque, size_t index, MigrationRAMBlock *out)
{
    RAMBlock *rb = ram_block_at(index);

    out->idstr = rb->idstr;
    out->host = rb->host;
    out->used_length = rb->used_length;
    out->private_anon = rb->fd < 0 && !rb->shared;
}

static uint64_t host_ram_block_sync_dirty(void *opaque, size_t index, unsigned long *dest)
{
    return ram_block_sync_dirty_log(ram_block_at(index), dest);
}

static void host_request_exit(void *opaque, int status)
{
    vm_request_exit(status);
}

static void host_event(void *opaque, const char *name, JsonObject *data)
{
    qmp_event_send(name, data);
}

static int host_get_fd(void *opaque, const char *name, GError **errp)
{
    return monitor_get_fd(name, errp);
}

typedef struct MainCall {
    void (*fn)(void *data);
    void *data;
} MainCall;

static gboolean main_call_run(gpointer opaque)
{
    MainCall *c = opaque;

    tsan_acquire(c);
    c->fn(c->data);
    g_free(c);
    return G_SOURCE_REMOVE;
}

/* The main loop runs QMP too, so the call is ordered with the commands. */
static void host_main_call(void *opaque, void (*fn)(void *data), void *data)
{
    MainCall *c = g_new(MainCall, 1);

    c->fn = fn;
    c->data = data;
    tsan_release(c);
    g_idle_add(main_call_run, c);
}

/* As QEMU's error_report: the program's name first. */
static void host_error_report(void *opaque, const char *msg)
{
    (void)opaque;
    g_printerr("mapram-vm: %s\n", msg);
}

static void host_switchover_paused(void *opaque, bool paused)
{
    vm_set_switchover_paused(paused);
}

static const MigrationHostOps vm_host_ops = {
    .runstate_get = host_runstate_get,
    .runstate_set = host_runstate_set,
    .vm_stop = host_vm_stop,
    .vm_stop_nowait = host_vm_stop_nowait,
    .guest_ram_blocked = host_guest_ram_blocked,
    .vm_start = host_vm_start,
    .autostart = host_autostart,
    .ram_block_count = host_ram_block_count,
    .ram_block_get = host_ram_block_get,
    .ram_block_sync_dirty = host_ram_block_sync_dirty,
    .request_exit = host_request_exit,
    .event = host_event,
    .get_fd = host_get_fd,
    .main_call = host_main_call,
    .error_report = host_error_report,
    .switchover_paused = host_switchover_paused,
};

Migration *vm_migration_new(void)
{
    return migration_new(&vm_host_ops, NULL);
}
