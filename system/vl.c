/*
 * mapram-vm: the reference VM process.  main() builds the machine in a
 * fixed order (system-internal.h), runs the GLib main loop, and is the
 * only place that ends the process; everything else asks for it with
 * vm_request_exit().
 */
#include <glib-unix.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "migration/migration.h"
#include "monitor/qmp.h"
#include "system/runstate.h"
#include "system/system.h"
#include "util/error.h"
#include "util/thread.h"
#include "system-internal.h"

/* main_loop: immutable once created; exit_status: atomic, the first request wins. */
static GMainLoop *main_loop;
static int exit_status;
static int exit_requested;

static gboolean quit_main_loop(gpointer opaque)
{
    g_main_loop_quit(main_loop);
    return G_SOURCE_REMOVE;
}

/* Any thread; also before the loop runs (the idle source waits for it). */
void vm_request_exit(int status)
{
    int expected = 0;

    if (__atomic_compare_exchange_n(&exit_requested, &expected, 1, false,
                                    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
        __atomic_store_n(&exit_status, status, __ATOMIC_RELEASE);
        g_idle_add(quit_main_loop, NULL);
    }
}

typedef struct ShutdownRequest {
    const char *reason;     /* static QAPI ShutdownCause name */
    int status;
} ShutdownRequest;

/*
 * From an idle callback, so that a QMP quit's {"return": {}} goes out
 * before the SHUTDOWN event, as with QEMU.
 */
static gboolean do_shutdown(gpointer opaque)
{
    ShutdownRequest *req = opaque;
    JsonObject *data = json_object_new();

    tsan_acquire(req);

    json_object_set_boolean_member(data, "guest", FALSE);
    json_object_set_string_member(data, "reason", req->reason);
    qmp_event_send("SHUTDOWN", data);
    vm_request_exit(req->status);
    g_free(req);
    return G_SOURCE_REMOVE;
}

void vm_shutdown_request(const char *reason, int status)
{
    ShutdownRequest *req = g_new(ShutdownRequest, 1);

    req->reason = reason;
    req->status = status;
    tsan_release(req);
    g_idle_add(do_shutdown, req);
}

static gboolean on_signal(gpointer opaque)
{
    vm_shutdown_request("host-signal", 0);
    return G_SOURCE_CONTINUE;
}

static void report_error(GError *err)
{
    g_printerr("mapram-vm: %s\n", err->message);
}

static bool apply_globals(const VMConfig *cfg, Migration *mig, GError **errp)
{
    for (guint i = 0; i < cfg->globals->len; i++) {
        const char *nv = g_ptr_array_index(cfg->globals, i);
        const char *eq = strchr(nv, '=');
        g_autofree char *name = g_strndup(nv, eq - nv);

        /* the error names the global itself, as QEMU's */
        if (!migration_set_global_property(mig, name, eq + 1, errp)) {
            return false;
        }
    }
    /* as QEMU, which checks its capabilities before it starts */
    return migration_check_capabilities(mig, cfg->incoming != NULL, errp);
}

static bool monitors_init(const VMConfig *cfg, Migration *mig, GError **errp)
{
    monitor_fdsets_init();
    system_qmp_register(mig);
    migration_register_qmp(mig);
    for (guint i = 0; i < cfg->qmp_specs->len; i++) {
        const char *spec = g_ptr_array_index(cfg->qmp_specs, i);

        if (!monitor_new_qmp(spec, errp)) {
            g_prefix_error(errp, "-qmp %s: ", spec);
            return false;
        }
    }
    return true;
}

/* Devices register their vmstate before any migration can start. */
static bool devices_init(const VMConfig *cfg, Migration *mig, GError **errp)
{
    if (!serial_init(cfg->serial, mig, errp)) {
        g_prefix_error(errp, "-serial %s: ", cfg->serial);
        return false;
    }
    rtc_init(mig);
    if (cfg->guest.prog == GUEST_PROG_TOUCH &&
        ram_block_pages(vm_main_ram()) <= GUEST_TOUCH_COUNT) {
        error_setg(errp, "-guest touch: main RAM must be larger than %d pages of %llu bytes",
                   GUEST_TOUCH_COUNT, (unsigned long long)TARGET_PAGE_SIZE);
        return false;
    }
    cpus_create(cfg->smp, &cfg->guest, mig);
    return true;
}

/* -incoming waits in "inmigrate"; -S waits in "prelaunch"; else run. */
static bool vm_launch(const VMConfig *cfg, Migration *mig, GError **errp)
{
    vm_set_autostart(!cfg->start_paused);
    runstate_set(cfg->incoming ? RUN_STATE_INMIGRATE : RUN_STATE_PRELAUNCH);
    cpus_start_threads();
    if (cfg->incoming) {
        if (!migration_incoming_cmdline(mig, cfg->incoming, errp)) {
            g_prefix_error(errp, "-incoming %s: ", cfg->incoming);
            return false;
        }
    } else if (!cfg->start_paused) {
        vm_start();
    }
    return true;
}

int main(int argc, char **argv)
{
    g_autoptr(GError) err = NULL;
    VMConfig *cfg = vm_config_new();
    Migration *mig = NULL;

    signal(SIGPIPE, SIG_IGN);
    /* a file-size limit must fail the write (EFBIG), not kill the VM */
    signal(SIGXFSZ, SIG_IGN);
    if (!vm_config_parse(cfg, argc, argv, &err)) {
        report_error(err);
        vm_config_free(cfg);
        return 1;
    }
    if (cfg->help) {
        fputs(vm_config_usage(), stdout);
        vm_config_free(cfg);
        return 0;
    }
    main_loop = g_main_loop_new(NULL, FALSE);
    if (!vm_memory_init(cfg, &err)) {
        goto fail;
    }
    mig = vm_migration_new();
    migration_set_machine_type(mig, cfg->machine_type);
    if (!devices_init(cfg, mig, &err) || !apply_globals(cfg, mig, &err) ||
        !monitors_init(cfg, mig, &err) || !vm_launch(cfg, mig, &err)) {
        goto fail;
    }
    g_unix_signal_add(SIGTERM, on_signal, NULL);
    g_unix_signal_add(SIGINT, on_signal, NULL);
    g_unix_signal_add(SIGHUP, on_signal, NULL);
    g_main_loop_run(main_loop);
    goto out;

fail:
    report_error(err);
    __atomic_store_n(&exit_status, 1, __ATOMIC_RELEASE);
out:
    migration_free(mig);
    cpus_stop_threads();
    monitor_cleanup_all();
    serial_cleanup();
    ram_blocks_free_all();
    g_main_loop_unref(main_loop);
    vm_config_free(cfg);
    return __atomic_load_n(&exit_status, __ATOMIC_ACQUIRE);
}
