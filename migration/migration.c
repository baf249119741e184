/*
 * The migration state machine: outgoing (setup -> active -> device ->
 * completed | failed | cancelled) in a migration thread, incoming in an
 * incoming thread, both reported to QMP through query-migrate and
 * MIGRATION / MIGRATION_PASS events.
 *
 * Concurrency: `out` and `in` are owned by the main thread except the
 * fields marked "migration thread"; status, error and counters that QMP
 * reads are protected by `lock`.  Threads get an immutable MigrationConfig.
 */
#include "migration/migration.h"
#include "migration-internal.h"
#include "monitor/qmp.h"
#include "options.h"
#include "qemu-file.h"
#include "ram.h"
#include "savevm.h"
#include "system/ramblock.h"
#include "system/runstate.h"
#include "system/system.h"
#include "util/error.h"
#include "util/fault.h"
#include "util/osdep.h"
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

typedef enum {
    MIGRATION_STATUS_NONE,
    MIGRATION_STATUS_SETUP,
    MIGRATION_STATUS_CANCELLING,
    MIGRATION_STATUS_CANCELLED,
    MIGRATION_STATUS_ACTIVE,
    MIGRATION_STATUS_COMPLETED,
    MIGRATION_STATUS_FAILED,
    MIGRATION_STATUS_DEVICE,
} MigrationStatus;

static const char *status_name(MigrationStatus s)
{
    static const char *const names[] = {
        "none", "setup", "cancelling", "cancelled", "active", "completed", "failed", "device",
    };
    return names[s];
}

#define BUFFER_DELAY_MS 100      /* rate-limit window */

static GMutex lock;
static char machine_type[256] = "mapram-10.2";

/* Outgoing migration */
static struct {
    MigrationStatus status;          /* lock */
    char *error_desc;                /* lock */
    bool cancel;                     /* lock */
    GThread *thread;                 /* main thread */
    MigrationConfig *cfg;            /* immutable while running */
    MigAddr addr;
    IOChannel *ioc;
    QEMUFile *f;                     /* migration thread */
    off_t start;
    gint64 start_ms, setup_ms, total_ms, downtime_ms;   /* lock */
    uint64_t expected_downtime;
    double mbps;                     /* lock */
    uint64_t pages_per_second;
    /* rate limit: migration thread */
    gint64 window_start_us;
    uint64_t window_bytes;
    uint64_t iter_bytes;
    gint64 iter_start_us;
    double bandwidth_bpms;           /* bytes per ms measured */
    bool vm_stopped_by_us;
    uint64_t precopy_bytes, downtime_bytes;
    uint64_t main_bytes;             /* main channel bytes, kept after close */
} out;

/* Incoming migration */
static struct {
    MigrationStatus status;          /* lock */
    char *error_desc;                /* lock */
    bool cmdline_incoming;           /* -incoming given */
    bool deferred;
    bool started;                    /* migrate-incoming / -incoming URI issued */
    bool exit_on_error;
    MigrationConfig *cfg;
    MigAddr addr;
    IOChannel *ioc;
    off_t start;
    int listen_fd;
    guint listen_watch;
    GThread *thread;
    GError *result;                  /* incoming thread -> main */
    gint64 start_ms, total_ms;
} in = { .exit_on_error = true, .listen_fd = -1 };

static gint64 now_ms(void) { return g_get_monotonic_time() / 1000; }

static bool events_on(const MigrationConfig *c)
{
    return c ? c->caps[MIGRATION_CAPABILITY_EVENTS] : migrate_cap(MIGRATION_CAPABILITY_EVENTS);
}

static void emit_status(const MigrationConfig *c, MigrationStatus s)
{
    if (events_on(c)) {
        JsonObject *d = json_object_new();
        json_object_set_string_member(d, "status", status_name(s));
        qmp_event_send("MIGRATION", d);
    }
}

static void out_set_status(MigrationStatus s)
{
    g_mutex_lock(&lock);
    out.status = s;
    g_mutex_unlock(&lock);
    emit_status(out.cfg, s);
}

static void in_set_status(MigrationStatus s)
{
    g_mutex_lock(&lock);
    in.status = s;
    g_mutex_unlock(&lock);
    emit_status(in.cfg, s);
}

bool migration_is_running(void)
{
    g_mutex_lock(&lock);
    MigrationStatus s = out.status;
    g_mutex_unlock(&lock);
    return s == MIGRATION_STATUS_SETUP || s == MIGRATION_STATUS_ACTIVE ||
           s == MIGRATION_STATUS_DEVICE || s == MIGRATION_STATUS_CANCELLING;
}

bool migration_incoming_started(void) { return in.started; }
bool migration_incoming_pending(void)
{
    return in.cmdline_incoming && runstate_get() == RUN_STATE_INMIGRATE;
}

void migration_set_machine_type(const char *name)
{
    g_strlcpy(machine_type, name, sizeof(machine_type));
}

static bool cancel_requested(void)
{
    g_mutex_lock(&lock);
    bool c = out.cancel;
    g_mutex_unlock(&lock);
    return c;
}

/* ------------------------------------------------------------------ */
/* outgoing                                                            */

static void build_config(StreamConfig *sc, const MigrationConfig *c)
{
    memset(sc, 0, sizeof(*sc));
    g_strlcpy(sc->machine, machine_type, sizeof(sc->machine));
    sc->caps = g_ptr_array_new_with_free_func(g_free);
    /* validated capabilities, in enum order */
    if (c->caps[MIGRATION_CAPABILITY_X_IGNORE_SHARED]) {
        g_ptr_array_add(sc->caps, g_strdup("x-ignore-shared"));
    }
    if (c->caps[MIGRATION_CAPABILITY_MAPPED_RAM]) {
        g_ptr_array_add(sc->caps, g_strdup("mapped-ram"));
    }
}

/* Called by ram.c with the bytes it just queued; true = window budget used. */
static bool rate_limited(void *opaque, uint64_t bytes)
{
    out.window_bytes += bytes;
    out.iter_bytes += bytes;
    uint64_t bw = migrate_max_bandwidth();
    if (!bw) {
        return cancel_requested();
    }
    return out.window_bytes >= bw * BUFFER_DELAY_MS / 1000 || cancel_requested();
}

static void rate_limit_wait(void)
{
    gint64 now = g_get_monotonic_time();
    gint64 end = out.window_start_us + BUFFER_DELAY_MS * 1000;
    uint64_t bw = migrate_max_bandwidth();
    if (bw && out.window_bytes >= bw * BUFFER_DELAY_MS / 1000 && now < end) {
        g_usleep(end - now);
        now = g_get_monotonic_time();
    }
    if (now >= end) {
        out.window_start_us = now;
        out.window_bytes = 0;
    }
}

static uint64_t transferred_bytes(void)
{
    RamStats st;
    ram_get_stats(&st);
    if (out.f) {
        out.main_bytes = qemu_file_transferred(out.f);
    }
    return out.main_bytes + st.channel_bytes;
}

static void update_bandwidth(void)
{
    gint64 now = g_get_monotonic_time();
    gint64 dt = now - out.iter_start_us;
    if (dt < BUFFER_DELAY_MS * 1000) {
        return;
    }
    uint64_t bytes = transferred_bytes();
    static uint64_t last_bytes;
    if (bytes < last_bytes) {
        last_bytes = 0;
    }
    double bpms = (double)(bytes - last_bytes) / (dt / 1000.0);
    bool sent_enough = bytes - last_bytes >= 1024 * 1024;
    last_bytes = bytes;
    out.iter_start_us = now;
    /*
     * Only windows that really sent data say what the channel can do: a
     * pass with little left to send would drag the estimate (and the
     * downtime threshold) down towards the dirty rate.
     */
    if (sent_enough && bpms > 0) {
        out.bandwidth_bpms = out.bandwidth_bpms > 0 ?
            0.5 * out.bandwidth_bpms + 0.5 * bpms : bpms;
    }
    RamStats st;
    ram_get_stats(&st);
    g_mutex_lock(&lock);
    out.mbps = out.bandwidth_bpms * 8.0 * 1000 / 1e6;
    out.expected_downtime = out.bandwidth_bpms > 0 ?
        (uint64_t)(st.remaining / out.bandwidth_bpms) : 0;
    g_mutex_unlock(&lock);
}

static void emit_pass(uint64_t pass)
{
    if (events_on(out.cfg)) {
        JsonObject *d = json_object_new();
        json_object_set_int_member(d, "pass", pass);
        qmp_event_send("MIGRATION_PASS", d);
    }
}

static bool migration_iterate_until_converged(GError **errp)
{
    for (;;) {
        if (cancel_requested()) {
            return true;
        }
        uint64_t pending = qemu_savevm_state_pending(false);
        uint64_t threshold = out.bandwidth_bpms * migrate_downtime_limit();
        if (pending <= threshold || pending == 0) {
            /* exact: harvest the dirty log (a new pass begins) */
            pending = qemu_savevm_state_pending(true);
            RamStats st;
            ram_get_stats(&st);
            emit_pass(st.dirty_sync_count);
            if (pending <= threshold || pending == 0) {
                return true;
            }
        }
        int r = qemu_savevm_state_iterate(out.f, errp);
        if (r < 0) {
            return false;
        }
        update_bandwidth();
        rate_limit_wait();
    }
}

static bool migration_completion(GError **errp)
{
    gint64 t0 = now_ms();
    global_state_store();
    out.vm_stopped_by_us = runstate_is_running();
    vm_stop(RUN_STATE_FINISH_MIGRATE);
    out_set_status(MIGRATION_STATUS_DEVICE);
    if (fault_hit("save-device-state")) {
        error_setg(errp, "Failed to save device state: injected fault");
        return false;
    }
    uint64_t before = transferred_bytes();
    if (!qemu_savevm_state_complete(out.f, out.cfg->send_switchover_start, errp)) {
        return false;
    }
    out.downtime_bytes = transferred_bytes() - before;
    g_mutex_lock(&lock);
    out.downtime_ms = now_ms() - t0;
    g_mutex_unlock(&lock);
    return true;
}

static void migration_fail(GError *err)
{
    g_mutex_lock(&lock);
    g_free(out.error_desc);
    out.error_desc = g_strdup(err->message);
    g_mutex_unlock(&lock);
    g_printerr("mapram-vm: migration failed: %s\n", err->message);
}

static gpointer migration_thread(gpointer opaque)
{
    GError *err = NULL;
    StreamConfig sc;
    bool ok;
    gint64 setup_start = now_ms();

    out.window_start_us = out.iter_start_us = g_get_monotonic_time();
    out.bandwidth_bpms = 0;
    build_config(&sc, out.cfg);
    qemu_savevm_state_header(out.f, &sc);
    stream_config_clear(&sc);
    ok = qemu_savevm_state_setup(out.f, &err);
    g_mutex_lock(&lock);
    out.setup_ms = now_ms() - setup_start;
    g_mutex_unlock(&lock);
    if (ok && !cancel_requested()) {
        out_set_status(MIGRATION_STATUS_ACTIVE);
        ok = migration_iterate_until_converged(&err);
    }
    if (ok && !cancel_requested()) {
        ok = migration_completion(&err);
    }
    out.precopy_bytes = transferred_bytes();
    if (ok) {
        qemu_fflush(out.f);
        transferred_bytes();
        ok = qemu_fclose(out.f, &err);
        out.f = NULL;
        if (ok) {
            ok = io_channel_close(out.ioc, &err);
        }
    }
    qemu_savevm_state_cleanup();
    g_mutex_lock(&lock);
    out.total_ms = now_ms() - out.start_ms;
    bool cancelled = out.cancel;
    g_mutex_unlock(&lock);

    if (ok && !cancelled) {
        runstate_set(RUN_STATE_POSTMIGRATE);
        out_set_status(MIGRATION_STATUS_COMPLETED);
    } else {
        if (err && !cancelled) {
            migration_fail(err);
        }
        /* Nothing is lost: the source keeps running as it was. */
        if (runstate_get() == RUN_STATE_FINISH_MIGRATE) {
            if (out.vm_stopped_by_us) {
                vm_start();
            } else {
                runstate_set(RUN_STATE_PAUSED);
            }
        }
        out_set_status(cancelled ? MIGRATION_STATUS_CANCELLED : MIGRATION_STATUS_FAILED);
    }
    g_clear_error(&err);
    if (out.f) {
        qemu_fclose(out.f, NULL);
        out.f = NULL;
    }
    if (out.ioc) {
        io_channel_close(out.ioc, NULL);
    }
    return NULL;
}

static void out_reset(void)
{
    if (out.thread) {
        g_thread_join(out.thread);
        out.thread = NULL;
    }
    if (out.ioc) {
        io_channel_unref(out.ioc);
        out.ioc = NULL;
    }
    migration_config_free(out.cfg);
    out.cfg = NULL;
    mig_addr_clear(&out.addr);
    g_mutex_lock(&lock);
    g_clear_pointer(&out.error_desc, g_free);
    out.cancel = false;
    out.total_ms = out.downtime_ms = out.setup_ms = 0;
    out.mbps = 0;
    g_mutex_unlock(&lock);
    out.vm_stopped_by_us = false;
    out.precopy_bytes = out.downtime_bytes = out.main_bytes = 0;
}

static JsonNode *qmp_migrate(JsonObject *args, Monitor *mon, void *opaque_, GError **errp)
{
    MigAddr addr;
    if (migration_is_running()) {
        error_setg(errp, "There's a migration process in progress");
        return NULL;
    }
    if (runstate_get() == RUN_STATE_INMIGRATE) {
        error_setg(errp, "Guest is waiting for an incoming migration");
        return NULL;
    }
    if (runstate_get() == RUN_STATE_POSTMIGRATE) {
        error_setg(errp, "Can't migrate the vm that was paused due to previous migration");
        return NULL;
    }
    if (qmp_arg_bool(args, "resume", false)) {
        error_setg(errp, "Cannot resume if there is no paused migration");
        return NULL;
    }
    if (!migration_parse_address_args(args, false, &addr, errp)) {
        mig_addr_clear(&addr);
        return NULL;
    }
    g_autoptr(MigrationConfig) cfg = migration_config_snapshot();
    if (!migration_check_transport(cfg, addr.kind, errp) ||
        !migration_check_prepare(cfg, errp)) {
        mig_addr_clear(&addr);
        return NULL;
    }
    out_reset();
    out.addr = addr;
    out.cfg = g_steal_pointer(&cfg);
    out.start_ms = now_ms();
    IOChannel *ioc = transport_open_outgoing(&out.addr, &out.start, errp);
    if (!ioc) {
        /* QEMU reports open failures as a failed migration too */
        out_set_status(MIGRATION_STATUS_FAILED);
        g_mutex_lock(&lock);
        out.error_desc = g_strdup((*errp)->message);
        g_mutex_unlock(&lock);
        return NULL;
    }
    out.ioc = ioc;
    out.f = qemu_file_new_output(ioc, out.start);

    bool mapped = out.cfg->caps[MIGRATION_CAPABILITY_MAPPED_RAM];
    bool multifd = out.cfg->caps[MIGRATION_CAPABILITY_MULTIFD];
    RamSaveParams rp = {
        .mapped_ram = mapped,
        .multifd = multifd,
        .channels = multifd ? out.cfg->multifd_channels : 1,
        .direct_io = migrate_direct_io_effective(out.cfg),
        .queue_depth = out.cfg->io_queue_depth,
        .zero = out.cfg->zero_page_detection,
        .path = out.addr.filename,
        .main_ioc = ioc,
        .rate_limited = rate_limited,
    };
    ram_save_configure(&rp);
    out_set_status(MIGRATION_STATUS_SETUP);
    out.thread = g_thread_new("live_migration", migration_thread, NULL);
    return NULL;
}

static JsonNode *qmp_migrate_cancel(JsonObject *args, Monitor *mon, void *opaque_, GError **errp)
{
    if (!migration_is_running()) {
        return NULL;
    }
    g_mutex_lock(&lock);
    out.cancel = true;
    g_mutex_unlock(&lock);
    out_set_status(MIGRATION_STATUS_CANCELLING);
    /* unblock a writer stuck on a full pipe or socket */
    if (out.addr.kind != TRANSPORT_FILE && out.ioc) {
        io_channel_shutdown(out.ioc, NULL);
    }
    return NULL;
}

/* ------------------------------------------------------------------ */
/* query-migrate                                                       */

static JsonObject *ram_stats_json(bool incoming)
{
    RamStats st = { 0 };
    if (!incoming) {
        ram_get_stats(&st);
    }
    JsonObject *r = json_object_new();
    uint64_t transferred = incoming ? 0 : transferred_bytes();
    json_object_set_int_member(r, "transferred", transferred);
    json_object_set_int_member(r, "remaining", st.remaining);
    json_object_set_int_member(r, "total", ram_bytes_total());
    json_object_set_int_member(r, "duplicate", st.zero_pages);
    json_object_set_int_member(r, "normal", st.normal_pages);
    json_object_set_int_member(r, "normal-bytes", st.normal_pages * TARGET_PAGE_SIZE);
    json_object_set_int_member(r, "dirty-pages-rate", 0);
    g_mutex_lock(&lock);
    json_object_set_double_member(r, "mbps", out.mbps);
    g_mutex_unlock(&lock);
    json_object_set_int_member(r, "dirty-sync-count", st.dirty_sync_count);
    json_object_set_int_member(r, "postcopy-requests", 0);
    json_object_set_int_member(r, "page-size", TARGET_PAGE_SIZE);
    json_object_set_int_member(r, "multifd-bytes", st.multifd_bytes);
    json_object_set_int_member(r, "pages-per-second", 0);
    json_object_set_int_member(r, "precopy-bytes", out.precopy_bytes ?
                               out.precopy_bytes - out.downtime_bytes : transferred);
    json_object_set_int_member(r, "downtime-bytes", out.downtime_bytes);
    json_object_set_int_member(r, "postcopy-bytes", 0);
    json_object_set_int_member(r, "dirty-sync-missed-zero-copy", 0);
    return r;
}

static JsonNode *qmp_query_migrate(JsonObject *args, Monitor *mon, void *opaque_, GError **errp)
{
    JsonObject *o = json_object_new();
    g_mutex_lock(&lock);
    MigrationStatus os = out.status, is = in.status;
    g_mutex_unlock(&lock);
    bool incoming = os == MIGRATION_STATUS_NONE && is != MIGRATION_STATUS_NONE;
    MigrationStatus s = incoming ? is : os;
    if (s != MIGRATION_STATUS_NONE) {
        json_object_set_string_member(o, "status", status_name(s));
    }
    g_mutex_lock(&lock);
    if (!incoming && s != MIGRATION_STATUS_NONE) {
        gint64 total = (s == MIGRATION_STATUS_COMPLETED || s == MIGRATION_STATUS_FAILED ||
                        s == MIGRATION_STATUS_CANCELLED) ? out.total_ms : now_ms() - out.start_ms;
        json_object_set_int_member(o, "total-time", total);
        json_object_set_int_member(o, "setup-time", out.setup_ms);
        if (s == MIGRATION_STATUS_COMPLETED) {
            json_object_set_int_member(o, "downtime", out.downtime_ms);
        } else if (s == MIGRATION_STATUS_ACTIVE) {
            json_object_set_int_member(o, "expected-downtime", out.expected_downtime);
        }
    }
    if (incoming && in.listen_fd >= 0 && in.addr.sock_type) {
        JsonArray *a = transport_listen_address(&in.addr, in.listen_fd);
        json_object_set_array_member(o, "socket-address", a);
    }
    const char *err = incoming ? in.error_desc : out.error_desc;
    if (s == MIGRATION_STATUS_FAILED && err) {
        json_object_set_string_member(o, "error-desc", err);
    }
    g_mutex_unlock(&lock);
    if (!incoming && s != MIGRATION_STATUS_NONE && s != MIGRATION_STATUS_SETUP) {
        json_object_set_object_member(o, "ram", ram_stats_json(false));
    }
    JsonNode *n = json_node_new(JSON_NODE_OBJECT);
    json_node_take_object(n, o);
    return n;
}

/* ------------------------------------------------------------------ */
/* incoming                                                            */

static bool check_incoming_config(const StreamConfig *cfg, GError **errp)
{
    size_t len = strlen(cfg->machine);
    if (strncmp(cfg->machine, machine_type, len) != 0 || (len == 0 && machine_type[0])) {
        error_setg(errp, "Machine type received is '%s' and local is '%s'",
                   cfg->machine, machine_type);
        return false;
    }
    if (cfg->has_page_bits && cfg->page_bits != TARGET_PAGE_BITS) {
        error_setg(errp, "Received TARGET_PAGE_BITS is %u but local is %d",
                   cfg->page_bits, TARGET_PAGE_BITS);
        return false;
    }
    static const MigrationCapability validated[] = {
        MIGRATION_CAPABILITY_X_IGNORE_SHARED, MIGRATION_CAPABILITY_MAPPED_RAM,
    };
    bool received[MIGRATION_CAPABILITY__MAX] = { false };
    for (guint i = 0; i < cfg->caps->len; i++) {
        const char *name = g_ptr_array_index(cfg->caps, i);
        int c = migration_capability_from_name(name);
        if (c != MIGRATION_CAPABILITY_X_IGNORE_SHARED && c != MIGRATION_CAPABILITY_MAPPED_RAM) {
            error_setg(errp, "Received unknown capability %s", name);
            return false;
        }
        received[c] = true;
    }
    GString *msg = g_string_new(NULL);
    for (size_t i = 0; i < G_N_ELEMENTS(validated); i++) {
        MigrationCapability c = validated[i];
        if (received[c] != in.cfg->caps[c]) {
            g_string_append_printf(msg, "%sCapability %s is %s, but received capability is %s",
                                   msg->len ? "; " : "", migration_capability_name(c),
                                   in.cfg->caps[c] ? "on" : "off", received[c] ? "on" : "off");
        }
    }
    if (msg->len) {
        error_setg(errp, "%s", msg->str);
        g_string_free(msg, TRUE);
        return false;
    }
    g_string_free(msg, TRUE);
    if (in.cfg->caps[MIGRATION_CAPABILITY_X_IGNORE_SHARED]) {
        error_setg(errp, "x-ignore-shared is not supported by mapram");
        return false;
    }
    return true;
}

static gboolean incoming_done(gpointer opaque)
{
    g_thread_join(in.thread);
    in.thread = NULL;
    if (in.ioc) {
        io_channel_close(in.ioc, NULL);
        io_channel_unref(in.ioc);
        in.ioc = NULL;
    }
    g_mutex_lock(&lock);
    in.total_ms = now_ms() - in.start_ms;
    g_mutex_unlock(&lock);
    if (in.result) {
        g_autofree char *msg = g_strdup_printf("load of migration failed: %s",
                                               in.result->message);
        g_printerr("mapram-vm: %s\n", msg);
        g_mutex_lock(&lock);
        g_free(in.error_desc);
        in.error_desc = g_strdup(in.result->message);
        g_mutex_unlock(&lock);
        g_clear_error(&in.result);
        in_set_status(MIGRATION_STATUS_FAILED);
        if (in.exit_on_error) {
            vm_request_exit(1);
        }
        /* never resume a half-loaded guest */
        return G_SOURCE_REMOVE;
    }
    const char *rs = global_state_received();
    RunState want = rs ? runstate_from_name(rs) : RUN_STATE_RUNNING;
    if (want == RUN_STATE_RUNNING && vm_autostart()) {
        vm_start();
    } else if (want == RUN_STATE_RUNNING) {
        runstate_set(RUN_STATE_PAUSED);
    } else {
        runstate_set(want == RUN_STATE__MAX ? RUN_STATE_PAUSED : want);
    }
    in_set_status(MIGRATION_STATUS_COMPLETED);
    return G_SOURCE_REMOVE;
}

static gpointer incoming_thread(gpointer opaque)
{
    bool mapped = in.cfg->caps[MIGRATION_CAPABILITY_MAPPED_RAM];
    bool multifd = in.cfg->caps[MIGRATION_CAPABILITY_MULTIFD];
    RamLoadParams lp = {
        .mapped_ram = mapped,
        .channels = multifd ? in.cfg->multifd_channels : 1,
        .direct_io = migrate_direct_io_effective(in.cfg),
        .queue_depth = in.cfg->io_queue_depth,
        .path = in.addr.filename,
    };
    ram_load_configure(&lp);
    global_state_reset_received();
    QEMUFile *f = qemu_file_new_input(in.ioc, in.start);
    GError *err = NULL;
    bool ok = qemu_loadvm_state(f, check_incoming_config, &err);
    qemu_fclose(f, ok ? &err : NULL);
    if (!ok && !err) {
        error_setg(&err, "load failed");
    }
    in.result = err;
    g_idle_add(incoming_done, NULL);
    return NULL;
}

static void incoming_start(IOChannel *ioc)
{
    in.ioc = ioc;
    in_set_status(MIGRATION_STATUS_ACTIVE);
    in.thread = g_thread_new("incoming", incoming_thread, NULL);
}

static gboolean incoming_accept(GIOChannel *src, GIOCondition cond, gpointer opaque)
{
    GError *err = NULL;
    IOChannel *ioc = io_socket_accept(in.listen_fd, &err);
    if (!ioc) {
        g_printerr("mapram-vm: accept failed: %s\n", err->message);
        g_error_free(err);
        return G_SOURCE_CONTINUE;
    }
    close(in.listen_fd);
    in.listen_fd = -1;
    in.listen_watch = 0;
    if (in.addr.sock_type && !strcmp(in.addr.sock_type, "unix")) {
        unlink(in.addr.path);
    }
    incoming_start(ioc);
    return G_SOURCE_REMOVE;
}

static bool incoming_begin(MigAddr *addr, GError **errp)
{
    g_autoptr(MigrationConfig) cfg = migration_config_snapshot();
    if (!migration_check_transport(cfg, addr->kind, errp)) {
        return false;
    }
    if (addr->kind == TRANSPORT_FILE && migrate_direct_io_effective(cfg)) {
        /* QEMU opens its page fds here, so a missing O_DIRECT fails the command */
        int fd = qemu_open(addr->filename, O_RDONLY | O_DIRECT, 0, errp);
        if (fd < 0) {
            return false;
        }
        qemu_close(fd);
    }
    migration_config_free(in.cfg);
    in.cfg = g_steal_pointer(&cfg);
    mig_addr_clear(&in.addr);
    in.addr = *addr;
    memset(addr, 0, sizeof(*addr));
    in.start_ms = now_ms();
    IOChannel *ioc = transport_open_incoming(&in.addr, &in.start, &in.listen_fd, errp);
    if (!ioc && in.listen_fd < 0) {
        return false;
    }
    in.started = true;
    in_set_status(MIGRATION_STATUS_SETUP);
    if (ioc) {
        incoming_start(ioc);
    } else {
        GIOChannel *gio = g_io_channel_unix_new(in.listen_fd);
        in.listen_watch = g_io_add_watch(gio, G_IO_IN, incoming_accept, NULL);
        g_io_channel_unref(gio);
    }
    return true;
}

static JsonNode *qmp_migrate_incoming(JsonObject *args, Monitor *mon, void *opaque_, GError **errp)
{
    MigAddr addr;
    if (!in.cmdline_incoming || runstate_get() != RUN_STATE_INMIGRATE) {
        if (in.started) {
            error_setg(errp, "The incoming migration has already been started");
        } else {
            error_setg(errp, "'-incoming' was not specified on the command line");
        }
        return NULL;
    }
    if (in.started) {
        error_setg(errp, "The incoming migration has already been started");
        return NULL;
    }
    if (!migration_parse_address_args(args, true, &addr, errp)) {
        mig_addr_clear(&addr);
        return NULL;
    }
    in.exit_on_error = qmp_arg_bool(args, "exit-on-error", true);
    incoming_begin(&addr, errp);
    mig_addr_clear(&addr);
    return NULL;
}

bool migration_incoming_cmdline(const char *arg, bool start_paused, GError **errp)
{
    in.cmdline_incoming = true;
    (void)start_paused;     /* -S reaches us through vm_autostart() */
    runstate_set(RUN_STATE_INMIGRATE);
    if (!strcmp(arg, "defer")) {
        in.deferred = true;
        return true;
    }
    MigAddr addr;
    if (!migration_parse_uri(arg, &addr, errp)) {
        mig_addr_clear(&addr);
        return false;
    }
    bool ok = incoming_begin(&addr, errp);
    mig_addr_clear(&addr);
    return ok;
}

bool migration_set_global_property(const char *name, const char *value, GError **errp)
{
    return migration_options_set_global(name, value, errp);
}

/* ------------------------------------------------------------------ */

static JsonNode *qmp_set_caps(JsonObject *a, Monitor *m, void *opaque_, GError **e)
{ return qmp_migrate_set_capabilities(a, e); }
static JsonNode *qmp_query_caps(JsonObject *a, Monitor *m, void *opaque_, GError **e)
{ return qmp_query_migrate_capabilities(e); }
/* Parameters apply live where it matters (max-bandwidth, downtime-limit). */
static JsonNode *qmp_set_params(JsonObject *a, Monitor *m, void *opaque_, GError **e)
{ return qmp_migrate_set_parameters(a, e); }
static JsonNode *qmp_query_params(JsonObject *a, Monitor *m, void *opaque_, GError **e)
{ return qmp_query_migrate_parameters(e); }

void migration_init(void)
{
    g_mutex_init(&lock);
    migration_options_init();
    ram_register();
    global_state_register();
    qmp_register_command("migrate", qmp_migrate, NULL);
    qmp_register_command("migrate-incoming", qmp_migrate_incoming, NULL);
    qmp_register_command("migrate_cancel", qmp_migrate_cancel, NULL);
    qmp_register_command("query-migrate", qmp_query_migrate, NULL);
    qmp_register_command("migrate-set-capabilities", qmp_set_caps, NULL);
    qmp_register_command("query-migrate-capabilities", qmp_query_caps, NULL);
    qmp_register_command("migrate-set-parameters", qmp_set_params, NULL);
    qmp_register_command("query-migrate-parameters", qmp_query_params, NULL);
}

void migration_shutdown(void)
{
    if (migration_is_running()) {
        g_mutex_lock(&lock);
        out.cancel = true;
        g_mutex_unlock(&lock);
        if (out.ioc && out.addr.kind != TRANSPORT_FILE) {
            io_channel_shutdown(out.ioc, NULL);
        }
    }
    if (out.thread) {
        g_thread_join(out.thread);
        out.thread = NULL;
    }
    if (in.thread) {
        if (in.ioc) {
            io_channel_shutdown(in.ioc, NULL);
        }
        g_thread_join(in.thread);
        in.thread = NULL;
    }
}
