/*
 * The migration state machine in process, driven through the public API
 * (include/migration/migration.h) with a fake host (fake-host.h):
 * outgoing setup -> active -> device -> completed | failed | cancelled,
 * incoming setup -> active -> completed | failed, the events and run
 * states the host sees on the way, in order, and the exact error-desc of
 * every failure.  Fault points run in a subprocess with MAPRAM_FAULT set.
 */
#include <stdio.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "fake-host.h"

#define RAM_SIZE (8 * 1024 * 1024)

/* One side: a host with one RAM block and one device, and its Migration. */
typedef struct Vm {
    FakeHost *h;
    FakeBlock *ram;
    FakeDevice dev;
    Migration *m;
} Vm;

static void vm_init(Vm *vm, RunState state, unsigned seed)
{
    vm->h = fake_host_new(state);
    vm->ram = fake_host_add_block(vm->h, "pc.ram", RAM_SIZE);
    fake_device_init(&vm->dev, seed);
    if (seed) {
        fake_block_fill(vm->ram, seed, 4, 16);
    }
    vm->m = fake_host_migration_new(vm->h);
    fake_device_register(vm->m, &vm->dev);
}

/* A destination: -incoming defer, its events cleared. */
static void vm_init_incoming(Vm *vm, bool queue_main_calls)
{
    g_autoptr(GError) err = NULL;
    vm_init(vm, RUN_STATE_PRELAUNCH, 0);
    vm->h->queue_main_calls = queue_main_calls;
    g_assert_true(migration_incoming_cmdline(vm->m, "defer", &err));
    g_assert_no_error(err);
    g_assert_cmpint(fake_host_runstate(vm->h), ==, RUN_STATE_INMIGRATE);
    fake_host_clear_events(vm->h);
}

static void vm_cleanup(Vm *vm)
{
    migration_free(vm->m);
    fake_host_free(vm->h);
}

static void assert_events(FakeHost *h, const char *want)
{
    g_autofree char *got = fake_host_events(h, false);
    g_assert_cmpstr(got, ==, want);
}

/* MIGRATION_PASS events count 1, 2, ... without gaps; returns how many. */
static unsigned assert_passes(FakeHost *h)
{
    g_autofree char *all = fake_host_events(h, true);
    g_auto(GStrv) ev = g_strsplit(all, ", ", -1);
    unsigned n = 0;
    for (char **e = ev; *e; e++) {
        if (g_str_has_prefix(*e, "MIGRATION_PASS ")) {
            g_autofree char *want = g_strdup_printf("MIGRATION_PASS %u", ++n);
            g_assert_cmpstr(*e, ==, want);
        }
    }
    return n;
}

static char *file_uri(const char *dir, const char *name)
{
    return g_strdup_printf("file:%s/%s", dir, name);
}

/* Save vm to uri and wait for the end; info holds the final query. */
static void save(Vm *vm, const char *uri, MigrationInfo *info)
{
    g_autoptr(GError) err = NULL;
    g_assert_true(migration_start(vm->m, uri, &err));
    g_assert_no_error(err);
    fake_host_wait_end(vm->h, vm->m, info);
}

static void load(Vm *vm, const char *uri, bool exit_on_error, MigrationInfo *info)
{
    g_autoptr(GError) err = NULL;
    g_assert_true(migration_start_incoming(vm->m, uri, exit_on_error, &err));
    g_assert_no_error(err);
    fake_host_wait_end(vm->h, vm->m, info);
}

/* ---- outgoing ------------------------------------------------------------ */

static void test_save_stopped(void)
{
    g_autofree char *dir = fake_test_mkdtemp("state");
    g_autofree char *uri = file_uri(dir, "vm.img");
    g_autoptr(GError) err = NULL;
    MigrationInfo info;
    Vm src;

    vm_init(&src, RUN_STATE_PAUSED, 1);
    save(&src, uri, &info);
    g_assert_cmpstr(info.status, ==, "completed");
    g_assert_null(info.error_desc);
    g_assert_false(info.incoming);
    g_assert_true(info.has_ram);
    g_assert_cmpuint(info.total, ==, RAM_SIZE);
    g_assert_cmpuint(info.remaining, ==, 0);
    /*
     * As QEMU: every sync is counted and has its MIGRATION_PASS, the
     * setup's and the last one's included: an idle guest makes 3.
     */
    g_assert_cmpuint(info.dirty_sync_count, ==, 3);
    g_assert_cmpuint(assert_passes(src.h), ==, info.dirty_sync_count);
    migration_info_clear(&info);
    /* a stopped guest is stopped again for the device state, then left postmigrate */
    assert_events(src.h, "MIGRATION setup, MIGRATION active, vm_stop finish-migrate, "
                  "MIGRATION device, runstate postmigrate, MIGRATION completed");
    g_assert_cmpint(fake_host_runstate(src.h), ==, RUN_STATE_POSTMIGRATE);

    /* QEMU's refusal to migrate a guest that already left */
    g_assert_false(migration_start(src.m, uri, &err));
    g_assert_cmpstr(err->message, ==,
                    "Can't migrate the vm that was paused due to previous migration");
    g_clear_error(&err);
    /* as QEMU's: the address is parsed before the run state is looked at */
    g_assert_false(migration_start(src.m, "bogus:x", &err));
    g_assert_cmpstr(err->message, ==, "unknown migration protocol: bogus:x");
    migration_query(src.m, &info);
    g_assert_cmpstr(info.status, ==, "completed");
    migration_info_clear(&info);
    vm_cleanup(&src);
    fake_test_rmtree(dir);
}

static void test_save_running(void)
{
    g_autofree char *dir = fake_test_mkdtemp("state");
    g_autofree char *uri = file_uri(dir, "vm.img");
    MigrationInfo info;
    Vm src;

    vm_init(&src, RUN_STATE_RUNNING, 1);
    save(&src, uri, &info);
    g_assert_cmpstr(info.status, ==, "completed");
    migration_info_clear(&info);
    assert_events(src.h, "MIGRATION setup, MIGRATION active, vm_stop finish-migrate, "
                  "MIGRATION device, runstate postmigrate, MIGRATION completed");
    g_assert_cmpint(fake_host_runstate(src.h), ==, RUN_STATE_POSTMIGRATE);
    vm_cleanup(&src);
    fake_test_rmtree(dir);
}

/* Opening fails: "migrate" reports it and the migration is failed too, as in QEMU. */
static void test_save_failed_open(void)
{
    g_autofree char *dir = fake_test_mkdtemp("state");
    g_autofree char *uri = g_strdup_printf("file:%s/no-such-dir/vm.img", dir);
    g_autofree char *want = g_strdup_printf("Could not create '%s/no-such-dir/vm.img': "
                                            "No such file or directory", dir);
    g_autoptr(GError) err = NULL;
    MigrationInfo info;
    Vm src;

    vm_init(&src, RUN_STATE_RUNNING, 1);
    g_assert_false(migration_start(src.m, uri, &err));
    g_assert_cmpstr(err->message, ==, want);
    migration_query(src.m, &info);
    g_assert_cmpstr(info.status, ==, "failed");
    g_assert_cmpstr(info.error_desc, ==, want);
    migration_info_clear(&info);
    assert_events(src.h, "MIGRATION failed");
    g_assert_cmpint(fake_host_runstate(src.h), ==, RUN_STATE_RUNNING);
    /* an embedder may pass no errp (GLib's rule): error-desc still says why */
    g_assert_false(migration_start(src.m, uri, NULL));
    migration_query(src.m, &info);
    g_assert_cmpstr(info.status, ==, "failed");
    g_assert_cmpstr(info.error_desc, ==, want);
    migration_info_clear(&info);
    vm_cleanup(&src);
    fake_test_rmtree(dir);
}

/* A device refuses to save: the source stopped for it runs again. */
static void test_save_failed_pre_save(void)
{
    g_autofree char *dir = fake_test_mkdtemp("state");
    g_autofree char *uri = file_uri(dir, "vm.img");
    MigrationInfo info;
    Vm src;

    vm_init(&src, RUN_STATE_RUNNING, 1);
    src.dev.fail_pre_save = true;
    save(&src, uri, &info);
    g_assert_cmpstr(info.status, ==, "failed");
    g_assert_cmpstr(info.error_desc, ==,
                    "Failed to save device state 'fakedev': pre-save failed: fakedev");
    migration_info_clear(&info);
    assert_events(src.h, "MIGRATION setup, MIGRATION active, vm_stop finish-migrate, "
                  "MIGRATION device, error, vm_start, MIGRATION failed");
    /* the failure goes to the host's error_report, as QEMU's error_report */
    g_autofree char *errors = fake_host_errors(src.h);
    g_assert_cmpstr(errors, ==, "migration failed: Failed to save device state 'fakedev': "
                    "pre-save failed: fakedev");
    g_assert_cmpint(fake_host_runstate(src.h), ==, RUN_STATE_RUNNING);
    vm_cleanup(&src);
    fake_test_rmtree(dir);
}

/* The same on a paused source: it is left paused, not started. */
static void test_save_failed_pre_save_paused(void)
{
    g_autofree char *dir = fake_test_mkdtemp("state");
    g_autofree char *uri = file_uri(dir, "vm.img");
    MigrationInfo info;
    Vm src;

    vm_init(&src, RUN_STATE_PAUSED, 1);
    src.dev.fail_pre_save = true;
    save(&src, uri, &info);
    g_assert_cmpstr(info.status, ==, "failed");
    migration_info_clear(&info);
    assert_events(src.h, "MIGRATION setup, MIGRATION active, vm_stop finish-migrate, "
                  "MIGRATION device, error, runstate paused, MIGRATION failed");
    g_assert_cmpint(fake_host_runstate(src.h), ==, RUN_STATE_PAUSED);
    vm_cleanup(&src);
    fake_test_rmtree(dir);
}

/*
 * Runs the calling test again in a subprocess with MAPRAM_FAULT=spec.
 * Returns true in the subprocess (run the body), false in the parent.
 */
static bool in_fault_subprocess(const char *spec)
{
    if (g_test_subprocess()) {
        g_assert_cmpstr(g_getenv("MAPRAM_FAULT"), ==, spec);
        return true;
    }
    if (!FAULT_INJECTION_BUILT) {
        g_test_skip("built without -Dfault_injection");
        return false;
    }
    g_setenv("MAPRAM_FAULT", spec, TRUE);
    g_test_trap_subprocess(NULL, 60 * G_USEC_PER_SEC, G_TEST_SUBPROCESS_INHERIT_STDERR);
    g_unsetenv("MAPRAM_FAULT");
    g_test_trap_assert_passed();
    return false;
}

static void set_caps(Migration *m, const char *const *caps)
{
    for (; *caps; caps++) {
        g_autoptr(GError) err = NULL;
        g_assert_true(migration_set_capability(m, *caps, true, &err));
        g_assert_no_error(err);
    }
}

/* A page write fails in the first pass: the running source never stopped. */
static void test_fault_save_page_write(void)
{
    if (!in_fault_subprocess("save-page-write")) {
        return;
    }
    static const char *const caps[] = { "mapped-ram", NULL };
    g_autofree char *dir = fake_test_mkdtemp("state");
    g_autofree char *uri = file_uri(dir, "vm.img");
    MigrationInfo info;
    Vm src;

    vm_init(&src, RUN_STATE_RUNNING, 1);
    set_caps(src.m, caps);
    save(&src, uri, &info);
    g_assert_cmpstr(info.status, ==, "failed");
    /* pages 0-15 are zero (vm_init's fill): the first write is page 16's */
    g_assert_cmpstr(info.error_desc, ==,
                    "Unable to write to file at offset 0x110000: Input/output error");
    migration_info_clear(&info);
    assert_events(src.h, "MIGRATION setup, MIGRATION active, error, MIGRATION failed");
    g_assert_cmpint(fake_host_runstate(src.h), ==, RUN_STATE_RUNNING);
    vm_cleanup(&src);
    fake_test_rmtree(dir);
}

/*
 * The device state fails after the stop (fault save-device-state): the
 * save ends failed with these events, and the source is left in
 * state `after`.
 */
static void fault_device_state_case(RunState before, bool user_stop_first, const char *events,
                                    RunState after)
{
    if (!in_fault_subprocess("save-device-state")) {
        return;
    }
    g_autofree char *dir = fake_test_mkdtemp("state");
    g_autofree char *uri = file_uri(dir, "vm.img");
    MigrationInfo info;
    Vm src;

    vm_init(&src, before, 1);
    src.h->user_stop_first = user_stop_first;
    save(&src, uri, &info);
    g_assert_cmpstr(info.status, ==, "failed");
    g_assert_cmpstr(info.error_desc, ==, "Failed to save device state: injected fault");
    migration_info_clear(&info);
    assert_events(src.h, events);
    g_assert_cmpint(fake_host_runstate(src.h), ==, after);
    vm_cleanup(&src);
    fake_test_rmtree(dir);
}

/* The source runs again. */
static void test_fault_save_device_state(void)
{
    fault_device_state_case(RUN_STATE_RUNNING, false,
                            "MIGRATION setup, MIGRATION active, vm_stop finish-migrate, "
                            "MIGRATION device, error, vm_start, MIGRATION failed",
                            RUN_STATE_RUNNING);
}

/*
 * A user's stop that took the host's lock just before the save stopped
 * the VM: globalstate says "paused", so the destination stays paused
 * (the save read "running" first, then stopped, and sent "running").
 */
static void test_save_user_stop_first(void)
{
    g_autofree char *dir = fake_test_mkdtemp("state");
    g_autofree char *uri = file_uri(dir, "vm.img");
    MigrationInfo info;
    Vm src, dst;

    vm_init(&src, RUN_STATE_RUNNING, 1);
    src.h->user_stop_first = true;
    save(&src, uri, &info);
    g_assert_cmpstr(info.status, ==, "completed");
    migration_info_clear(&info);
    assert_events(src.h, "MIGRATION setup, MIGRATION active, user stop, vm_stop finish-migrate, "
                  "MIGRATION device, runstate postmigrate, MIGRATION completed");
    vm_cleanup(&src);

    vm_init_incoming(&dst, false);
    load(&dst, uri, true, &info);
    g_assert_cmpstr(info.status, ==, "completed");
    migration_info_clear(&info);
    assert_events(dst.h, "MIGRATION setup, MIGRATION active, runstate paused, "
                  "MIGRATION completed");
    g_assert_cmpint(fake_host_runstate(dst.h), ==, RUN_STATE_PAUSED);
    vm_cleanup(&dst);
    fake_test_rmtree(dir);
}

/* The same with a failed save: the source stays paused, as its user left it. */
static void test_fault_save_user_stop_first(void)
{
    fault_device_state_case(RUN_STATE_RUNNING, true,
                            "MIGRATION setup, MIGRATION active, user stop, vm_stop "
                            "finish-migrate, MIGRATION device, error, runstate paused, "
                            "MIGRATION failed", RUN_STATE_PAUSED);
}

/* A failed save of a guest that never ran (-S) puts back prelaunch, as QEMU does. */
static void test_fault_save_prelaunch(void)
{
    fault_device_state_case(RUN_STATE_PRELAUNCH, false,
                            "MIGRATION setup, MIGRATION active, vm_stop finish-migrate, "
                            "MIGRATION device, error, runstate prelaunch, MIGRATION failed",
                            RUN_STATE_PRELAUNCH);
}

/*
 * A save held back by max-bandwidth (10 B/s, a budget of 1 byte per
 * window: it never gets past its first step; under 10 B/s there is no
 * limit, as in QEMU).
 */
static void start_slow_save(Vm *vm, const char *uri, const char *const *caps)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(JsonObject) p = json_object_new();
    json_object_set_int_member(p, "max-bandwidth", 10);
    g_assert_true(migration_set_parameters(vm->m, p, &err));
    set_caps(vm->m, caps);
    g_assert_true(migration_start(vm->m, uri, &err));
    g_assert_no_error(err);
    fake_host_wait_status(vm->h, vm->m, "active");
    fake_host_wait_status_event(vm->h, "active");
}

static void cancel_case(const char *const *caps)
{
    g_autofree char *dir = fake_test_mkdtemp("state");
    g_autofree char *uri = file_uri(dir, "vm.img");
    g_autoptr(GError) err = NULL;
    MigrationInfo info;
    Vm src;

    vm_init(&src, RUN_STATE_RUNNING, 1);
    start_slow_save(&src, uri, caps);
    migration_cancel(src.m);
    fake_host_wait_end(src.h, src.m, &info);
    g_assert_cmpstr(info.status, ==, "cancelled");
    g_assert_null(info.error_desc);
    migration_info_clear(&info);
    assert_events(src.h, "MIGRATION setup, MIGRATION active, MIGRATION cancelling, "
                  "MIGRATION cancelled");
    g_assert_cmpint(fake_host_runstate(src.h), ==, RUN_STATE_RUNNING);

    /* and the source can be saved again */
    g_autoptr(JsonObject) p = json_object_new();
    json_object_set_int_member(p, "max-bandwidth", 0);
    g_assert_true(migration_set_parameters(src.m, p, &err));
    fake_host_clear_events(src.h);
    save(&src, uri, &info);
    g_assert_cmpstr(info.status, ==, "completed");
    migration_info_clear(&info);
    vm_cleanup(&src);
    fake_test_rmtree(dir);
}

static void test_cancel_stream(void)
{
    static const char *const caps[] = { NULL };
    cancel_case(caps);
}

static void test_cancel_mapped_ram(void)
{
    static const char *const caps[] = { "mapped-ram", "multifd", NULL };
    cancel_case(caps);
}

/*
 * The MIGRATION events follow the status changes in order: a cancel whose
 * event is late (its thread preempted after setting cancelling, until the
 * migration thread has sent cancelled, or 1 s) still comes before the
 * migration thread's cancelled (it came after).
 */
static void test_cancel_event_order(void)
{
    static const char *const caps[] = { NULL };
    g_autofree char *dir = fake_test_mkdtemp("state");
    g_autofree char *uri = file_uri(dir, "vm.img");
    MigrationInfo info;
    Vm src;

    vm_init(&src, RUN_STATE_RUNNING, 1);
    src.h->slow_event = "MIGRATION cancelling";
    src.h->slow_event_until = "MIGRATION cancelled";    /* old code: at once; now: never */
    src.h->slow_event_ms = 1000;
    start_slow_save(&src, uri, caps);
    migration_cancel(src.m);
    fake_host_wait_end(src.h, src.m, &info);
    g_assert_cmpstr(info.status, ==, "cancelled");
    migration_info_clear(&info);
    assert_events(src.h, "MIGRATION setup, MIGRATION active, MIGRATION cancelling, "
                  "MIGRATION cancelled");
    vm_cleanup(&src);
    fake_test_rmtree(dir);
}

/*
 * A cancel that comes once the save has done its last step (its file
 * closed, its threads released) and before it decided how it ends wins:
 * the source runs again, the file is cut back, "cancelled" (it was
 * acknowledged with "cancelling", and the thread went on to "completed").
 */
static void test_cancel_late(void)
{
    if (!in_fault_subprocess("save-late-cancel")) {
        return;
    }
    static const char *const caps[] = { "mapped-ram", "multifd", NULL };
    g_autofree char *dir = fake_test_mkdtemp("state");
    g_autofree char *uri = file_uri(dir, "vm.img");
    g_autofree char *path = g_build_filename(dir, "vm.img", NULL);
    struct stat st;
    MigrationInfo info;
    Vm src;

    vm_init(&src, RUN_STATE_RUNNING, 1);
    set_caps(src.m, caps);
    save(&src, uri, &info);
    g_assert_cmpstr(info.status, ==, "cancelled");
    g_assert_null(info.error_desc);
    migration_info_clear(&info);
    assert_events(src.h, "MIGRATION setup, MIGRATION active, vm_stop finish-migrate, "
                  "MIGRATION device, MIGRATION cancelling, vm_start, MIGRATION cancelled");
    g_assert_cmpint(fake_host_runstate(src.h), ==, RUN_STATE_RUNNING);
    g_assert_cmpint(stat(path, &st), ==, 0);
    g_assert_cmpint(st.st_size, ==, 0);
    vm_cleanup(&src);
    fake_test_rmtree(dir);
}

/* Whether the file at path holds the vmdesc, which only follows the stream's EOF. */
static bool file_has_vmdesc(const char *path)
{
    g_autofree char *data = NULL;
    gsize len;

    g_assert_true(g_file_get_contents(path, &data, &len, NULL));
    return memmem(data, len, "\"page_size\"", strlen("\"page_size\"")) != NULL;
}

/*
 * A save to a peer (here exec:cat) with a cancel injected by fault: one
 * before the end was claimed wins (cancelled, the source runs again, no
 * byte of the stream's end went out), one after changes nothing
 * (completed, the whole stream out: the destination may run the guest).
 */
static void peer_cancel(const char *fault, bool wins)
{
    if (!in_fault_subprocess(fault)) {
        return;
    }
    g_autofree char *dir = fake_test_mkdtemp("state");
    g_autofree char *path = g_build_filename(dir, "vm.img", NULL);
    g_autofree char *uri = g_strdup_printf("exec:cat > %s", path);
    MigrationInfo info;
    Vm src;

    vm_init(&src, RUN_STATE_RUNNING, 1);
    save(&src, uri, &info);
    g_assert_cmpstr(info.status, ==, wins ? "cancelled" : "completed");
    g_assert_null(info.error_desc);
    migration_info_clear(&info);
    assert_events(src.h, wins ? "MIGRATION setup, MIGRATION active, vm_stop finish-migrate, "
                                "MIGRATION device, MIGRATION cancelling, vm_start, "
                                "MIGRATION cancelled"
                              : "MIGRATION setup, MIGRATION active, vm_stop finish-migrate, "
                                "MIGRATION device, runstate postmigrate, MIGRATION completed");
    g_assert_cmpint(fake_host_runstate(src.h), ==,
                    wins ? RUN_STATE_RUNNING : RUN_STATE_POSTMIGRATE);
    g_assert_true(file_has_vmdesc(path) == !wins);
    vm_cleanup(&src);
    fake_test_rmtree(dir);
}

/* The late cancel of test_cancel_late, once the save to a peer is over: no effect. */
static void test_cancel_late_peer(void)
{
    peer_cancel("save-late-cancel", false);
}

/* Right after the stream's last bytes went out (the claim came before the EOF). */
static void test_cancel_flushed_peer(void)
{
    peer_cancel("save-flushed-cancel", false);
}

/* After the device state went out and before the EOF: the cancel wins. */
static void test_cancel_before_eof_peer(void)
{
    peer_cancel("save-cancel-before-eof", true);
}

static void cancel_on_error(FakeHost *h, void *opaque)
{
    migration_cancel(opaque);
}

/*
 * A cancel that comes once the save has decided it failed (here while
 * it reports the failure) changes nothing: no "cancelling" that the
 * thread would then overwrite with "failed".
 */
static void test_cancel_after_end(void)
{
    if (!in_fault_subprocess("save-device-state")) {
        return;
    }
    g_autofree char *dir = fake_test_mkdtemp("state");
    g_autofree char *uri = file_uri(dir, "vm.img");
    MigrationInfo info;
    Vm src;

    vm_init(&src, RUN_STATE_RUNNING, 1);
    src.h->on_error = cancel_on_error;
    src.h->on_error_opaque = src.m;
    save(&src, uri, &info);
    g_assert_cmpstr(info.status, ==, "failed");
    g_assert_cmpstr(info.error_desc, ==, "Failed to save device state: injected fault");
    migration_info_clear(&info);
    assert_events(src.h, "MIGRATION setup, MIGRATION active, vm_stop finish-migrate, "
                  "MIGRATION device, error, vm_start, MIGRATION failed");
    g_assert_cmpint(fake_host_runstate(src.h), ==, RUN_STATE_RUNNING);
    vm_cleanup(&src);
    fake_test_rmtree(dir);
}

/*
 * A window's budget is max-bandwidth / 10, 0 meaning no limit, as in
 * QEMU: under 10 B/s and at sizes whose product with the window used to
 * overflow (2^62 and more: "as fast as it goes") a save completes (it
 * stayed active for good when the budget came out 0).
 */
static void test_bandwidth_no_budget(void)
{
    static const gint64 bws[] = { 5, G_GINT64_CONSTANT(1) << 62, G_MAXINT64 };
    g_autofree char *dir = fake_test_mkdtemp("state");
    g_autofree char *uri = file_uri(dir, "vm.img");

    for (size_t i = 0; i < G_N_ELEMENTS(bws); i++) {
        g_autoptr(GError) err = NULL;
        g_autoptr(JsonObject) p = json_object_new();
        MigrationInfo info;
        Vm src;

        vm_init(&src, RUN_STATE_PAUSED, 1);
        json_object_set_int_member(p, "max-bandwidth", bws[i]);
        g_assert_true(migration_set_parameters(src.m, p, &err));
        save(&src, uri, &info);
        g_assert_cmpstr(info.status, ==, "completed");
        migration_info_clear(&info);
        vm_cleanup(&src);
    }
    fake_test_rmtree(dir);
}

/* While a save runs, a second one and option changes are refused. */
static void test_refused_in_progress(void)
{
    static const char *const caps[] = { NULL };
    const char *busy = "There's a migration process in progress";
    g_autofree char *dir = fake_test_mkdtemp("state");
    g_autofree char *uri = file_uri(dir, "vm.img");
    GError *err = NULL;
    MigrationInfo info;
    Vm src;

    vm_init(&src, RUN_STATE_RUNNING, 1);
    start_slow_save(&src, uri, caps);
    g_assert_false(migration_start(src.m, uri, &err));
    g_assert_cmpstr(err->message, ==, busy);
    g_clear_error(&err);
    g_assert_false(migration_set_capability(src.m, "multifd", true, &err));
    g_assert_cmpstr(err->message, ==, busy);
    g_clear_error(&err);
    migration_cancel(src.m);
    fake_host_wait_end(src.h, src.m, &info);
    g_assert_cmpstr(info.status, ==, "cancelled");
    migration_info_clear(&info);
    vm_cleanup(&src);
    fake_test_rmtree(dir);
}

/* Freeing a Migration mid-save cancels and joins: nothing runs on afterwards. */
static void test_free_while_active(void)
{
    static const char *const caps[] = { "mapped-ram", NULL };
    g_autofree char *dir = fake_test_mkdtemp("state");
    g_autofree char *uri = file_uri(dir, "vm.img");
    Vm src;

    vm_init(&src, RUN_STATE_RUNNING, 1);
    start_slow_save(&src, uri, caps);
    migration_free(src.m);
    src.m = NULL;
    assert_events(src.h, "MIGRATION setup, MIGRATION active, MIGRATION cancelling, "
                  "MIGRATION cancelled");
    g_assert_cmpint(fake_host_runstate(src.h), ==, RUN_STATE_RUNNING);
    fake_host_free(src.h);
    fake_test_rmtree(dir);
}

/* ---- incoming ------------------------------------------------------------ */

/* Saves a source in state to dir/vm.img; returns the URI. */
static char *saved_file(const char *dir, RunState state, FakeDevice *dev_out)
{
    char *uri = file_uri(dir, "vm.img");
    MigrationInfo info;
    Vm src;

    vm_init(&src, state, 7);
    save(&src, uri, &info);
    g_assert_cmpstr(info.status, ==, "completed");
    migration_info_clear(&info);
    *dev_out = src.dev;
    vm_cleanup(&src);
    return uri;
}

static void assert_device_arrived(const FakeDevice *got, const FakeDevice *want)
{
    g_assert_cmpuint(got->counter, ==, want->counter);
    g_assert_cmpuint(got->flags, ==, want->flags);
    g_assert_cmpmem(got->label, sizeof(got->label), want->label, sizeof(want->label));
    g_assert_cmpint(got->post_loads, ==, 1);
}

static void test_load_resumes(void)
{
    g_autofree char *dir = fake_test_mkdtemp("state");
    FakeDevice want;
    g_autofree char *uri = saved_file(dir, RUN_STATE_RUNNING, &want);
    MigrationInfo info;
    Vm dst;

    vm_init_incoming(&dst, false);
    load(&dst, uri, true, &info);
    g_assert_cmpstr(info.status, ==, "completed");
    g_assert_true(info.incoming);
    g_assert_null(info.error_desc);
    migration_info_clear(&info);
    assert_events(dst.h, "MIGRATION setup, MIGRATION active, vm_start, MIGRATION completed");
    g_assert_cmpint(fake_host_runstate(dst.h), ==, RUN_STATE_RUNNING);
    assert_device_arrived(&dst.dev, &want);
    vm_cleanup(&dst);
    fake_test_rmtree(dir);
}

/* globalstate carries "paused": the destination takes it. */
static void test_load_paused(void)
{
    g_autofree char *dir = fake_test_mkdtemp("state");
    FakeDevice want;
    g_autofree char *uri = saved_file(dir, RUN_STATE_PAUSED, &want);
    MigrationInfo info;
    Vm dst;

    vm_init_incoming(&dst, false);
    load(&dst, uri, true, &info);
    g_assert_cmpstr(info.status, ==, "completed");
    migration_info_clear(&info);
    assert_events(dst.h, "MIGRATION setup, MIGRATION active, runstate paused, "
                  "MIGRATION completed");
    g_assert_cmpint(fake_host_runstate(dst.h), ==, RUN_STATE_PAUSED);
    vm_cleanup(&dst);
    fake_test_rmtree(dir);
}

/* A running source, a destination without autostart (-S): paused. */
static void test_load_no_autostart(void)
{
    g_autofree char *dir = fake_test_mkdtemp("state");
    FakeDevice want;
    g_autofree char *uri = saved_file(dir, RUN_STATE_RUNNING, &want);
    MigrationInfo info;
    Vm dst;

    vm_init_incoming(&dst, false);
    dst.h->autostart = false;
    load(&dst, uri, true, &info);
    g_assert_cmpstr(info.status, ==, "completed");
    migration_info_clear(&info);
    assert_events(dst.h, "MIGRATION setup, MIGRATION active, runstate paused, "
                  "MIGRATION completed");
    vm_cleanup(&dst);
    fake_test_rmtree(dir);
}

/* The end of a load waits for the host's main thread: nothing resumes before. */
static void test_load_main_call_queued(void)
{
    g_autofree char *dir = fake_test_mkdtemp("state");
    FakeDevice want;
    g_autofree char *uri = saved_file(dir, RUN_STATE_RUNNING, &want);
    g_autoptr(GError) err = NULL;
    MigrationInfo info;
    Vm dst;

    vm_init_incoming(&dst, true);
    g_assert_true(migration_start_incoming(dst.m, uri, true, &err));
    fake_host_wait_main_call(dst.h);
    migration_query(dst.m, &info);
    g_assert_cmpstr(info.status, ==, "active");
    migration_info_clear(&info);
    g_assert_cmpint(fake_host_runstate(dst.h), ==, RUN_STATE_INMIGRATE);
    assert_device_arrived(&dst.dev, &want);
    g_assert_cmpuint(fake_host_run_main_calls(dst.h), ==, 1);
    migration_query(dst.m, &info);
    g_assert_cmpstr(info.status, ==, "completed");
    migration_info_clear(&info);
    assert_events(dst.h, "MIGRATION setup, MIGRATION active, vm_start, MIGRATION completed");
    vm_cleanup(&dst);
    fake_test_rmtree(dir);
}

/* A host without main_call: the incoming thread ends the load itself. */
static void test_load_no_main_call(void)
{
    g_autofree char *dir = fake_test_mkdtemp("state");
    FakeDevice want;
    g_autofree char *uri = saved_file(dir, RUN_STATE_RUNNING, &want);
    g_autoptr(GError) err = NULL;
    MigrationInfo info;
    FakeHost *h = fake_host_new(RUN_STATE_PRELAUNCH);
    FakeDevice dev = { 0 };

    fake_host_add_block(h, "pc.ram", RAM_SIZE);
    h->no_main_call = true;
    Migration *m = fake_host_migration_new(h);
    fake_device_register(m, &dev);
    g_assert_true(migration_incoming_cmdline(m, "defer", &err));
    fake_host_clear_events(h);
    g_assert_true(migration_start_incoming(m, uri, true, &err));
    fake_host_wait_end(h, m, &info);
    g_assert_cmpstr(info.status, ==, "completed");
    migration_info_clear(&info);
    assert_events(h, "MIGRATION setup, MIGRATION active, vm_start, MIGRATION completed");
    assert_device_arrived(&dev, &want);
    migration_free(m);
    fake_host_free(h);
    fake_test_rmtree(dir);
}

/*
 * A device's post_load fails: "failed", and with exit-on-error the host is
 * asked to exit; the guest is never resumed.  (The text is the stream
 * walker's, migration/savevm.c.)
 */
static const char post_load_error[] =
    "error while loading state for instance 0x0 of device 'fakedev': post load hook "
    "failed for: fakedev, version_id: 1, minimum_version: 1, ret: -22";

static void load_failed_case(bool exit_on_error, const char *want_events)
{
    g_autofree char *dir = fake_test_mkdtemp("state");
    FakeDevice want;
    g_autofree char *uri = saved_file(dir, RUN_STATE_RUNNING, &want);
    MigrationInfo info;
    Vm dst;

    vm_init_incoming(&dst, false);
    dst.dev.fail_post_load = true;
    load(&dst, uri, exit_on_error, &info);
    g_assert_cmpstr(info.status, ==, "failed");
    /* the walker names the section and where it starts (after the RAM pages) */
    unsigned long long at = 0;
    g_assert_cmpint(sscanf(info.error_desc, "FULL section 'fakedev' (id 2) at offset %llu: ",
                           &at), ==, 1);
    g_autofree char *want_desc = g_strdup_printf("FULL section 'fakedev' (id 2) at offset "
                                                 "%llu: %s", at, post_load_error);
    g_assert_cmpstr(info.error_desc, ==, want_desc);
    migration_info_clear(&info);
    /* the exit request follows the status event: join the thread first */
    migration_free(dst.m);
    dst.m = NULL;
    assert_events(dst.h, want_events);
    /* as QEMU: printed only by a process that exits for it */
    g_autofree char *want_errors = exit_on_error ? g_strdup_printf("load of migration failed: %s",
                                                                   want_desc) : g_strdup("");
    g_autofree char *errors = fake_host_errors(dst.h);
    g_assert_cmpstr(errors, ==, want_errors);
    g_assert_cmpint(fake_host_exit_status(dst.h), ==, exit_on_error ? 1 : -1);
    g_assert_cmpint(fake_host_runstate(dst.h), ==, RUN_STATE_INMIGRATE);
    vm_cleanup(&dst);
    fake_test_rmtree(dir);
}

static void test_load_failed_exit(void)
{
    load_failed_case(true, "MIGRATION setup, MIGRATION active, error, MIGRATION failed, exit 1");
}

static void test_load_failed_no_exit(void)
{
    load_failed_case(false, "MIGRATION setup, MIGRATION active, MIGRATION failed");
}

/* The order of the incoming checks, each with QEMU's text. */
static void test_load_refused(void)
{
    g_autofree char *dir = fake_test_mkdtemp("state");
    g_autofree char *sock = g_strdup_printf("unix:%s/sock", dir);
    GError *err = NULL;
    MigrationInfo info;
    Vm vm;

    /* no -incoming */
    vm_init(&vm, RUN_STATE_RUNNING, 0);
    g_assert_false(migration_start_incoming(vm.m, sock, true, &err));
    g_assert_cmpstr(err->message, ==, "'-incoming' was not specified on the command line");
    g_clear_error(&err);
    vm_cleanup(&vm);

    /* -incoming defer: the guest waits, so it cannot migrate out */
    vm_init_incoming(&vm, false);
    g_assert_false(migration_start(vm.m, sock, &err));
    g_assert_cmpstr(err->message, ==, "Guest is waiting for an incoming migration");
    g_clear_error(&err);
    /* a second migrate-incoming while the first listens */
    g_assert_true(migration_start_incoming(vm.m, sock, true, &err));
    g_assert_no_error(err);
    g_assert_false(migration_start_incoming(vm.m, sock, true, &err));
    g_assert_cmpstr(err->message, ==, "The incoming migration has already been started");
    g_clear_error(&err);
    migration_query(vm.m, &info);
    g_assert_cmpstr(info.status, ==, "setup");
    g_assert_true(info.incoming);
    migration_info_clear(&info);
    /* freeing stops the listener and joins its thread */
    vm_cleanup(&vm);
    fake_test_rmtree(dir);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/migration/state/save/stopped", test_save_stopped);
    g_test_add_func("/migration/state/save/running", test_save_running);
    g_test_add_func("/migration/state/save/failed/open", test_save_failed_open);
    g_test_add_func("/migration/state/save/failed/pre-save", test_save_failed_pre_save);
    g_test_add_func("/migration/state/save/failed/pre-save/paused",
                    test_save_failed_pre_save_paused);
    g_test_add_func("/migration/state/save/failed/fault/save-page-write",
                    test_fault_save_page_write);
    g_test_add_func("/migration/state/save/failed/fault/save-device-state",
                    test_fault_save_device_state);
    g_test_add_func("/migration/state/save/user-stop-first", test_save_user_stop_first);
    g_test_add_func("/migration/state/save/failed/fault/user-stop-first",
                    test_fault_save_user_stop_first);
    g_test_add_func("/migration/state/save/failed/fault/prelaunch", test_fault_save_prelaunch);
    g_test_add_func("/migration/state/save/cancel/stream", test_cancel_stream);
    g_test_add_func("/migration/state/save/cancel/mapped-ram", test_cancel_mapped_ram);
    g_test_add_func("/migration/state/save/cancel/event-order", test_cancel_event_order);
    g_test_add_func("/migration/state/save/cancel/late", test_cancel_late);
    g_test_add_func("/migration/state/save/cancel/late-peer", test_cancel_late_peer);
    g_test_add_func("/migration/state/save/cancel/flushed-peer", test_cancel_flushed_peer);
    g_test_add_func("/migration/state/save/cancel/before-eof-peer", test_cancel_before_eof_peer);
    g_test_add_func("/migration/state/save/cancel/after-end", test_cancel_after_end);
    g_test_add_func("/migration/state/save/bandwidth-no-budget", test_bandwidth_no_budget);
    g_test_add_func("/migration/state/save/refused/in-progress", test_refused_in_progress);
    g_test_add_func("/migration/state/save/free-while-active", test_free_while_active);
    g_test_add_func("/migration/state/load/resumes", test_load_resumes);
    g_test_add_func("/migration/state/load/paused", test_load_paused);
    g_test_add_func("/migration/state/load/no-autostart", test_load_no_autostart);
    g_test_add_func("/migration/state/load/main-call-queued", test_load_main_call_queued);
    g_test_add_func("/migration/state/load/no-main-call", test_load_no_main_call);
    g_test_add_func("/migration/state/load/failed/exit-on-error", test_load_failed_exit);
    g_test_add_func("/migration/state/load/failed/no-exit", test_load_failed_no_exit);
    g_test_add_func("/migration/state/load/refused", test_load_refused);
    return g_test_run();
}
