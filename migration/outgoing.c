/*
 * An outgoing migration: setup -> active -> [pre-switchover ->] device ->
 * completed | failed | cancelled, run by one "live_migration" thread.
 *
 * migration_outgoing_start() (main thread) checks, opens the main channel
 * (a socket's is connected by the thread: connect_main) and starts the
 * thread with an OutgoingRun it hands over: the thread's
 * own state (stream, rate limiter, bandwidth estimate), which nothing else
 * touches.  What others read lives in MigrationState (see
 * migration-internal.h): status and times under its lock, counters as
 * Stat64, cancel as an atomic flag.  The thread publishes the stream's
 * byte count after every step, and the page channels count their pages as
 * they go, so query-migrate's figures move with the work.
 */
#include "migration-internal.h"
#include "return-path.h"
#include "util/error.h"
#include "util/fault.h"
#include "util/osdep.h"
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define BUFFER_DELAY_MS 100      /* rate-limit window */
#define ITERATE_MAX_US (50 * 1000)  /* the longest one iteration runs, as QEMU's */

/* The migration thread's own state; allocated by start, freed by the thread. */
typedef struct OutgoingRun {
    MigrationState *s;
    Migration *m;
    QEMUFile *f;
    off_t start;                  /* channel offset of the stream's first byte */
    JsonBuilder *vmdesc;
    /* rate limit: the window's start, spent_bytes() then, and max-bandwidth then */
    gint64 window_start_us;
    uint64_t window_start_bytes;
    uint64_t window_bw;
    /* bandwidth estimate */
    gint64 iter_start_us;
    uint64_t iter_last_bytes;
    uint64_t iter_last_pages;     /* pages sent (data and zero) at iter_start_us */
    double bandwidth_bpms;        /* bytes per ms, measured */
    gint64 iterate_start_us;      /* when the running qemu_savevm_state_iterate began */
    bool vm_stopped;              /* completion() stopped the VM ... */
    RunState vm_old_state;        /* ... which was in this state before */
    /*
     * A dup of the main channel's fd when it is a regular file (file:,
     * or fd: on one), -1 otherwise: a failed or cancelled save is cut
     * back through it to start, also once the channel is closed (a
     * cancel may come after the close).
     */
    int cut_fd;
    off_t cut_at;                 /* start, or the file's size for an O_APPEND fd */
    MultiFDSend *multifd;         /* multifd over sockets (also in s->multifd) */
    bool compressed;              /* multifd-compression is not "none" */
    RpReader *rp;                 /* capability return-path: the destination's answers */
    bool dest_committed;          /* SHUT 0 came: the destination runs the guest */
} OutgoingRun;

static void configure_ram(Migration *m, MigrationState *s, OutgoingRun *run);
static MultiFDWire multifd_wire(const Migration *m, const MigrationConfig *c);

static bool cancel_requested(MigrationState *s)
{
    return __atomic_load_n(&s->cancel, __ATOMIC_ACQUIRE);
}

static void set_status(MigrationState *s, MigrationStatus st)
{
    pthread_mutex_lock(&s->event_lock);
    qemu_mutex_lock(&s->lock);
    s->status = st;
    qemu_mutex_unlock(&s->lock);
    migration_status_event(s->mig, st);
    pthread_mutex_unlock(&s->event_lock);
}

/*
 * The thread's forward steps (active, device): never over a cancelling
 * that a cancel wrote since the thread last looked at the flag, which
 * would leave the cancel unseen in query-migrate.
 */
static void advance_status(MigrationState *s, MigrationStatus st)
{
    pthread_mutex_lock(&s->event_lock);
    qemu_mutex_lock(&s->lock);
    bool changed = s->status != MIGRATION_STATUS_CANCELLING;
    if (changed) {
        s->status = st;
    }
    qemu_mutex_unlock(&s->lock);
    if (changed) {
        migration_status_event(s->mig, st);
    }
    pthread_mutex_unlock(&s->event_lock);
}

MigrationStatus migration_state_status(MigrationState *s)
{
    qemu_mutex_lock(&s->lock);
    MigrationStatus st = s->status;
    qemu_mutex_unlock(&s->lock);
    return st;
}

bool migration_is_running(Migration *m)
{
    if (!m->out) {
        return false;
    }
    MigrationStatus st = migration_state_status(m->out);
    return st == MIGRATION_STATUS_SETUP || st == MIGRATION_STATUS_ACTIVE ||
           st == MIGRATION_STATUS_PRE_SWITCHOVER || st == MIGRATION_STATUS_DEVICE ||
           st == MIGRATION_STATUS_CANCELLING;
}

/* ---- counters (migration thread) ---- */

static uint64_t transferred_bytes(OutgoingRun *run)
{
    MigrationStats *st = &run->s->stats;
    stat64_set(&st->main_bytes, qemu_file_transferred(run->f));
    return stat64_get(&st->main_bytes) + stat64_get(&st->ram.pages.bytes);
}

/* ---- rate limit (migration thread) ---- */

/*
 * The budget is spent by bytes transferred, as QEMU counts them: the
 * main stream's and those the page channels or multifd channels have
 * written (compressed pages at their wire size).  A zero page of a
 * mapped-ram save is a cleared bit, not a write, and costs nothing, so
 * a mostly empty guest saves at the speed of its scan, not of
 * max-bandwidth.  Pages still queued to the page channels count as data
 * until a worker has written them or found them zero: the queues hold
 * megabytes, and counting only finished writes would let each window
 * run over its budget by that much.
 */
static uint64_t spent_bytes(OutgoingRun *run)
{
    /* queued pages first: one written since is then counted twice, never missed */
    uint64_t queued = stat64_get(&run->s->stats.ram.pages.in_flight) * RAM_PAGE_SIZE;
    return transferred_bytes(run) + queued;
}

static void window_open(OutgoingRun *run, gint64 now)
{
    run->window_start_us = now;
    run->window_start_bytes = spent_bytes(run);
    run->window_bw = migrate_max_bandwidth(run->m->opts);
}

/*
 * A window's budget in bytes, 0 for no limit: max-bandwidth / 10, as
 * QEMU's (so under 10 B/s there is none, as there).  A max-bandwidth
 * changed since the window opened opens a new one: the new limit
 * applies from now on, and what was spent under the old one is not paid
 * again at the new rate.
 */
static uint64_t window_budget(OutgoingRun *run)
{
    if (migrate_max_bandwidth(run->m->opts) != run->window_bw) {
        window_open(run, g_get_monotonic_time());
    }
    return run->window_bw / (1000 / BUFFER_DELAY_MS);
}

static bool window_used_up(OutgoingRun *run)
{
    uint64_t budget = window_budget(run);

    return budget && spent_bytes(run) >= run->window_start_bytes + budget;
}

/*
 * Asked by ram.c every 256 KiB of pages it hands on (page channels: each
 * batch, up to 1 MiB): true sends it back to the loop, which measures,
 * checks for the switchover and waits out a spent window.  As QEMU's
 * iteration, it returns after ITERATE_MAX_US without a limit too: a pass
 * at full speed was one call, and query-migrate's transferred, mbps and
 * pages-per-second stood still for all of it.
 */
static bool rate_limited(void *opaque)
{
    OutgoingRun *run = opaque;

    if (cancel_requested(run->s)) {
        return true;
    }
    transferred_bytes(run);             /* query-migrate's transferred follows the pass */
    if (g_get_monotonic_time() - run->iterate_start_us >= ITERATE_MAX_US) {
        return true;
    }
    return window_used_up(run);
}

static void rate_limit_wait(OutgoingRun *run)
{
    gint64 now = g_get_monotonic_time();
    gint64 end = run->window_start_us + BUFFER_DELAY_MS * 1000;
    /*
     * Queued pages found zero give their share back, within microseconds:
     * look again soon, then less often (at most each ms) while the
     * channels write.
     */
    gint64 pause = 50;

    while (window_used_up(run) && !cancel_requested(run->s)) {
        if (now < end) {
            g_usleep(MIN(end - now, pause));
            pause = MIN(pause * 2, 1000);
            now = g_get_monotonic_time();
            continue;
        }
        /*
         * What went over the budget (ram.c asks once per batch handed
         * on, up to 1 MiB) is the next windows' to pay: wait on until it
         * is paid, even where it is more than one window's budget (a
         * limit under 10 MiB/s).  One budget per window, however long
         * the window was: budget left unused is not carried (a window
         * that began before a long setup would otherwise pay a burst).
         */
        uint64_t budget = window_budget(run);
        uint64_t spent = spent_bytes(run);

        if (!budget) {
            break;
        }
        run->window_start_bytes = MIN(spent, run->window_start_bytes + budget);
        run->window_start_us = now;
        end = now + BUFFER_DELAY_MS * 1000;
    }
    if (now >= end) {
        window_open(run, now);
    }
}

/*
 * What the estimate measures: bytes sent, except that compressed pages
 * count at their size in guest memory.  remaining is in those bytes, so
 * the downtime threshold must be too: with a guest whose pages compress
 * 100:1, the wire rate would make the threshold 100 times too small and
 * a live migration would never converge.
 */
static uint64_t progress_bytes(OutgoingRun *run)
{
    uint64_t bytes = transferred_bytes(run);
    if (run->compressed) {
        const PageStats *ps = &run->s->stats.ram.pages;
        uint64_t raw = stat64_get(&ps->normal_pages) * RAM_PAGE_SIZE;
        uint64_t wire = stat64_get(&ps->bytes);
        bytes += raw > wire ? raw - wire : 0;
    }
    return bytes;
}

/*
 * Bytes a millisecond the switchover may count on: avail-switchover-bandwidth
 * when set (QEMU >= 8.2 trusts it over its estimate: the estimate sees only
 * what the migration got, not what the link has), else the estimate.
 */
static double switchover_bpms(OutgoingRun *run)
{
    uint64_t avail = migrate_avail_switchover_bandwidth(run->m->opts);
    return avail ? avail / 1000.0 : run->bandwidth_bpms;
}

static void update_bandwidth(OutgoingRun *run)
{
    MigrationState *s = run->s;
    gint64 now = g_get_monotonic_time();
    gint64 dt = now - run->iter_start_us;
    if (dt < BUFFER_DELAY_MS * 1000) {
        return;
    }
    /*
     * progress_bytes() reads three counters that the page channels move
     * meanwhile, so one reading may come out below the last: that window
     * counts as nothing sent (a wrapped difference would make the estimate
     * huge, and the switchover come with far too much left to send).
     */
    uint64_t bytes = MAX(progress_bytes(run), run->iter_last_bytes);
    uint64_t sent = bytes - run->iter_last_bytes;
    double bpms = (double)sent / (dt / 1000.0);
    run->iter_last_bytes = bytes;
    run->iter_start_us = now;
    /* as QEMU: every window's pages, data and zero */
    const PageStats *ps = &s->stats.ram.pages;
    uint64_t pages = MAX(stat64_get(&ps->normal_pages) + stat64_get(&ps->zero_pages),
                         run->iter_last_pages);
    uint64_t pps = (pages - run->iter_last_pages) * G_USEC_PER_SEC / dt;
    run->iter_last_pages = pages;
    /*
     * Only windows that really sent data say what the channel can do: a
     * pass with little left to send would drag the estimate (and the
     * downtime threshold) down towards the dirty rate.  "Really" is 1 MiB,
     * or half of what max-bandwidth let through in the window: at 1 MB/s
     * no window reaches 1 MiB, and the estimate (query-migrate's mbps and
     * expected-downtime, the switchover threshold) stayed 0 for the whole
     * save, where QEMU's follows every window.
     */
    uint64_t floor = 1024 * 1024;
    uint64_t limit = migrate_max_bandwidth(run->m->opts);
    if (limit) {
        floor = MIN(floor, (uint64_t)((double)limit * dt / 1e6 / 2));
    }
    if (sent >= floor && sent > 0 && bpms > 0) {
        run->bandwidth_bpms = run->bandwidth_bpms > 0 ?
            0.5 * run->bandwidth_bpms + 0.5 * bpms : bpms;
    }
    /*
     * As QEMU: expected-downtime starts at downtime-limit and follows what
     * the last sync left dirty only once pages are being dirtied and this
     * window sent something (10000 bytes, QEMU's "small enough number").
     */
    double bw = switchover_bpms(run);
    bool redo_downtime = stat64_get(&s->stats.ram.dirty_pages_rate) && sent > 10000 && bw > 0;
    uint64_t dirty = stat64_get(&s->stats.ram.dirty_bytes_last_sync);
    qemu_mutex_lock(&s->lock);
    s->mbps = run->bandwidth_bpms * 8.0 * 1000 / 1e6;
    s->pages_per_second = pps;
    if (redo_downtime) {
        s->expected_downtime_ms = (uint64_t)(dirty / bw);
    }
    qemu_mutex_unlock(&s->lock);
}

/* ---- the thread ---- */

static void emit_pass(OutgoingRun *run)
{
    if (run->s->cfg->caps[MIGRATION_CAPABILITY_EVENTS]) {
        JsonObject *d = json_object_new();
        json_object_set_int_member(d, "pass", stat64_get(&run->s->stats.ram.dirty_sync_count));
        migration_event(run->m, "MIGRATION_PASS", d);
    }
}

static bool iterate_until_converged(OutgoingRun *run, GError **errp)
{
    SaveVMRegistry *reg = run->m->registry;
    for (;;) {
        if (cancel_requested(run->s)) {
            return true;
        }
        uint64_t pending = qemu_savevm_state_pending(reg, false);
        uint64_t threshold = switchover_bpms(run) * migrate_downtime_limit(run->m->opts);
        if (pending <= threshold || pending == 0) {
            /* exact: harvest the dirty log (a new pass begins) */
            pending = qemu_savevm_state_pending(reg, true);
            emit_pass(run);
            if (pending <= threshold || pending == 0) {
                return true;
            }
        }
        run->iterate_start_us = g_get_monotonic_time();
        if (qemu_savevm_state_iterate(reg, run->f, run->s->cfg->send_section_footer,
                                      errp) < 0) {
            return false;
        }
        update_bandwidth(run);
        rate_limit_wait(run);
    }
}

/*
 * The point of no return of a save to a peer (a socket, a pipe, a
 * command): the whole stream, its EOF included, is about to reach a
 * destination that may then run the guest, and nothing can take it back
 * as a file is cut back.  A cancel acknowledged before this wins (the
 * stream's end is not sent); from here on a cancel is a no-op, or the
 * source could start again beside a destination that completed: two
 * copies of one guest on one disk.
 */
static bool claim_end(void *opaque)
{
    MigrationState *s = opaque;

    if (fault_hit("save-cancel-before-eof")) {
        migration_outgoing_cancel(s);
    }
    pthread_mutex_lock(&s->event_lock);
    qemu_mutex_lock(&s->lock);
    bool claimed = s->status != MIGRATION_STATUS_CANCELLING;
    s->ended = claimed;
    qemu_mutex_unlock(&s->lock);
    pthread_mutex_unlock(&s->event_lock);
    return claimed;
}

/*
 * pause-before-switchover: the guest stopped, the save waits in
 * pre-switchover for migrate-continue (or a cancel: false), as QEMU's
 * does; the host lets its users' commands through meanwhile.
 */
static bool pause_before_switchover(OutgoingRun *run)
{
    MigrationState *s = run->s;
    Migration *m = run->m;

    qemu_mutex_lock(&s->lock);
    s->continue_requested = false;
    qemu_mutex_unlock(&s->lock);
    m->host->switchover_paused(m->host_opaque, true);
    advance_status(s, MIGRATION_STATUS_PRE_SWITCHOVER);
    qemu_mutex_lock(&s->lock);
    while (!s->continue_requested && s->status != MIGRATION_STATUS_CANCELLING) {
        qemu_cond_wait(&s->pause_cond, &s->lock);
    }
    bool go = s->status != MIGRATION_STATUS_CANCELLING;
    qemu_mutex_unlock(&s->lock);
    m->host->switchover_paused(m->host_opaque, false);
    return go;
}

static bool completion(OutgoingRun *run, GError **errp)
{
    MigrationState *s = run->s;
    Migration *m = run->m;
    gint64 t0 = migration_now_ms();

    /* as QEMU: no switchover before the destination approved it; the guest runs meanwhile */
    if (s->cfg->caps[MIGRATION_CAPABILITY_SWITCHOVER_ACK] &&
        !rp_reader_wait_switchover_ack(run->rp, &s->cancel, errp)) {
        return false;
    }
    /* one step: a user's stop meanwhile is either before it (paused) or waits */
    run->vm_old_state = m->host->vm_stop(m->host_opaque, RUN_STATE_FINISH_MIGRATE);
    run->vm_stopped = true;
    global_state_store(m->global_state, run->vm_old_state);
    if (s->cfg->caps[MIGRATION_CAPABILITY_PAUSE_BEFORE_SWITCHOVER] &&
        !pause_before_switchover(run)) {
        return false;                             /* cancelled */
    }
    advance_status(s, MIGRATION_STATUS_DEVICE);
    if (fault_hit("device-state-stall")) {
        g_usleep(G_USEC_PER_SEC);
    }
    if (fault_hit("save-device-state")) {
        error_setg(errp, "Failed to save device state: injected fault");
        return false;
    }
    uint64_t before = transferred_bytes(run);
    /* a file is cut back after a late cancel; a peer's stream is claimed before its EOF */
    if (!qemu_savevm_state_complete(m->registry, run->f, run->vmdesc,
                                    s->cfg->send_switchover_start,
                                    s->cfg->send_section_footer,
                                    run->cut_fd < 0 ? claim_end : NULL, s, errp)) {
        return false;
    }
    if (fault_hit("save-flushed-cancel")) {
        migration_outgoing_cancel(s);
    }
    emit_pass(run);                               /* the last sync, with the guest stopped */
    stat64_set(&s->stats.downtime_bytes, transferred_bytes(run) - before);
    qemu_mutex_lock(&s->lock);
    s->downtime_ms = migration_now_ms() - t0;
    qemu_mutex_unlock(&s->lock);
    return true;
}

static void build_config(const Migration *m, const MigrationConfig *c, StreamConfig *sc)
{
    memset(sc, 0, sizeof(*sc));
    g_strlcpy(sc->machine, m->machine_type, sizeof(sc->machine));
    sc->caps = g_ptr_array_new_with_free_func(g_free);
    /* validated capabilities, in enum order (x-ignore-shared is refused at migrate) */
    if (c->caps[MIGRATION_CAPABILITY_MAPPED_RAM]) {
        g_ptr_array_add(sc->caps, g_strdup("mapped-ram"));
    }
}

/*
 * x-fsync: the stream's fd to the disk, after its last byte and before
 * "completed" (ram.c did the page fds before writing the bitmaps).  The
 * message names the file, or the fd: address, rather than the channel.
 */
static bool sync_main_channel(MigrationState *s, GError **errp)
{
    qemu_mutex_lock(&s->ioc_lock);
    bool ok = io_channel_sync(s->ioc, NULL);
    int saved_errno = errno;
    qemu_mutex_unlock(&s->ioc_lock);
    if (!ok) {
        g_autofree char *what = s->addr.kind == TRANSPORT_FILE ? g_strdup(s->addr.filename)
                                                              : mig_addr_describe(&s->addr);
        error_setg_errno(errp, saved_errno, "Unable to sync '%s' to disk", what);
        return false;
    }
    /* a file the save created keeps its name after a crash too */
    return s->addr.kind != TRANSPORT_FILE || qemu_fsync_parent_dir(s->addr.filename, errp);
}

/* True when multifd's pages go over extra connections to the main one's address. */
static bool multifd_over_socket(const MigrationState *s)
{
    return s->cfg->caps[MIGRATION_CAPABILITY_MULTIFD] && s->addr.kind == TRANSPORT_SOCKET;
}

/*
 * Multifd over sockets: the channels are connected before the header is
 * written (as QEMU 10.2 does; the main connection was made first, which
 * a 7.2 destination needs), and each thread sends its initial packet.
 */
static bool multifd_connect(OutgoingRun *run, GError **errp)
{
    MigrationState *s = run->s;
    unsigned n = s->cfg->multifd_channels;
    g_autoptr(GPtrArray) iocs = g_ptr_array_new_with_free_func((GDestroyNotify)io_channel_unref);

    if (!multifd_over_socket(s)) {
        return true;
    }
    for (unsigned i = 0; i < n; i++) {
        off_t start;
        IOChannel *ioc = transport_open_outgoing(run->m, &s->addr, &start, &s->cancel, errp);
        if (!ioc) {
            g_prefix_error(errp, "multifd channel %u: ", i);
            return false;
        }
        g_ptr_array_add(iocs, ioc);
    }
    MultiFDSendConfig mc = {
        .channels = n,
        .method = multifd_method_find(s->cfg->multifd_compression),
        .level = !strcmp(s->cfg->multifd_compression, "zstd") ? s->cfg->multifd_zstd_level
                                                               : s->cfg->multifd_zlib_level,
        .zero_in_packets = multifd_wire(run->m, s->cfg).zero_in_packets,
        .stats = &s->stats.ram.pages,
    };
    MultiFDSend *mfd = multifd_send_new(&mc, (IOChannel *const *)iocs->pdata, errp);
    if (!mfd) {
        return false;
    }
    run->multifd = mfd;
    run->compressed = mc.method != NULL;
    qemu_mutex_lock(&s->ioc_lock);
    s->multifd = mfd;
    qemu_mutex_unlock(&s->ioc_lock);
    if (cancel_requested(s)) {
        multifd_send_shutdown(mfd);
    }
    return true;
}

/* After the save: failed or cancelled, blocked channel threads are woken first. */
static void multifd_release(OutgoingRun *run, bool ok)
{
    MigrationState *s = run->s;

    if (!run->multifd) {
        return;
    }
    qemu_mutex_lock(&s->ioc_lock);
    s->multifd = NULL;
    qemu_mutex_unlock(&s->ioc_lock);
    if (!ok) {
        multifd_send_shutdown(run->multifd);
    }
    multifd_send_free(run->multifd);
    run->multifd = NULL;
}

/*
 * A socket's main connection, made here rather than in the QMP command,
 * as QEMU connects asynchronously: `migrate` returns at once, the status
 * is "setup" meanwhile, a refused or failed connect shows as "failed"
 * with its error-desc, and migrate_cancel ends a connect still waiting on
 * a peer that does not answer.  s->ioc is set under ioc_lock, so a cancel
 * either finds it to shut down or is seen here through the flag.
 */
static bool connect_main(OutgoingRun *run, GError **errp)
{
    MigrationState *s = run->s;
    off_t start = 0;

    if (s->ioc) {
        return true;
    }
    IOChannel *ioc = transport_open_outgoing(run->m, &s->addr, &start, &s->cancel, errp);
    if (!ioc) {
        return false;
    }
    qemu_mutex_lock(&s->ioc_lock);
    s->ioc = ioc;
    qemu_mutex_unlock(&s->ioc_lock);
    run->start = start;
    run->f = qemu_file_new_output(ioc, start);
    return !cancel_requested(s);
}

/* After the save: unless it finished, the reader is woken by the socket's shutdown. */
static void rp_release(OutgoingRun *run, bool finished)
{
    MigrationState *s = run->s;

    if (!run->rp) {
        return;
    }
    if (!finished) {
        qemu_mutex_lock(&s->ioc_lock);
        io_channel_shutdown(s->ioc, NULL);
        qemu_mutex_unlock(&s->ioc_lock);
    }
    rp_reader_free(run->rp);
    run->rp = NULL;
}

/*
 * After the stream's EOF: the destination's SHUT.  A cancel meanwhile
 * first closes only our sending side and gives the destination
 * SHUT_CANCEL_GRACE_US to answer: a SHUT 0 it sent before it saw that
 * (the two can cross on the wire) still wins (dest_committed): the
 * destination runs the guest, so the source must not.  A mapram-vm
 * destination that sees our side closed before its SHUT fails its load
 * and says SHUT 1; one that is silent past the grace is cut off (the
 * socket shut down, which ends the wait), and the source runs again.
 */
#define SHUT_CANCEL_GRACE_US G_USEC_PER_SEC
static bool await_shut(OutgoingRun *run, GError **errp)
{
    MigrationState *s = run->s;
    Migration *m = run->m;

    qemu_mutex_lock(&s->lock);
    s->awaiting_shut = true;
    qemu_mutex_unlock(&s->lock);
    /*
     * QEMU waits for the return path's end without its big lock: the
     * monitor's cont fails and its stop changes nothing, instead of both
     * waiting out finish-migrate for as long as the destination is silent.
     */
    if (m->host->switchover_paused) {
        m->host->switchover_paused(m->host_opaque, true);
    }
    if (!rp_reader_wait_end(run->rp, &s->cancel, SHUT_CANCEL_GRACE_US)) {
        qemu_mutex_lock(&s->ioc_lock);
        io_channel_shutdown(s->ioc, NULL);
        qemu_mutex_unlock(&s->ioc_lock);
    }
    bool ok = rp_reader_finish(run->rp, errp);
    if (m->host->switchover_paused) {
        m->host->switchover_paused(m->host_opaque, false);
    }
    qemu_mutex_lock(&s->lock);
    s->awaiting_shut = false;
    qemu_mutex_unlock(&s->lock);
    run->dest_committed = ok;
    return ok;
}

/* Save everything; false + errp on failure (cancel is not a failure). */
static bool run_save(OutgoingRun *run, GError **errp)
{
    MigrationState *s = run->s;
    StreamConfig sc;

    if (!connect_main(run, errp)) {
        return false;
    }
    /* setup-time starts once connected, as QEMU's does (the multifd connects are in it) */
    gint64 setup_start = migration_now_ms();
    if (!multifd_connect(run, errp)) {
        return false;
    }
    configure_ram(run->m, s, run);
    run->iter_start_us = g_get_monotonic_time();
    window_open(run, run->iter_start_us);
    build_config(run->m, s->cfg, &sc);
    qemu_savevm_state_header(run->f, s->cfg->send_configuration ? &sc : NULL, run->vmdesc);
    stream_config_clear(&sc);
    if (s->cfg->caps[MIGRATION_CAPABILITY_RETURN_PATH]) {
        /* as QEMU's source: opened, and a PING the destination answers */
        run->rp = rp_reader_start(s->ioc, errp);
        if (!run->rp) {
            return false;
        }
        savevm_put_open_return_path(run->f);
        savevm_put_ping(run->f, 1);
    }
    bool ok = qemu_savevm_state_setup(run->m->registry, run->f, s->cfg->send_section_footer,
                                      errp);
    transferred_bytes(run);
    qemu_mutex_lock(&s->lock);
    s->setup_ms = migration_now_ms() - setup_start;
    qemu_mutex_unlock(&s->lock);
    if (ok && !cancel_requested(s)) {
        emit_pass(run);                           /* the setup's sync, before active as in QEMU */
        advance_status(s, MIGRATION_STATUS_ACTIVE);
        ok = iterate_until_converged(run, errp);
    }
    if (ok && !cancel_requested(s)) {
        ok = completion(run, errp);
    }
    stat64_set(&s->stats.precopy_bytes, transferred_bytes(run));
    if (ok && !cancel_requested(s)) {
        qemu_fflush(run->f);
        transferred_bytes(run);
        ok = qemu_fclose(run->f, errp);
        run->f = NULL;
        /* with a return path, completed only once the destination says it loaded it all */
        if (ok && run->rp) {
            ok = await_shut(run, errp);
        }
        if (ok && s->cfg->fsync) {
            ok = sync_main_channel(s, errp);
        }
        if (ok) {
            /*
             * Not under ioc_lock: an exec: command's close waits for it to
             * exit, and a cancel meanwhile must still reach it (the
             * channel's own lock orders the two).
             */
            ok = io_channel_close(s->ioc, errp);
        }
    }
    return ok;
}

/* Nothing is lost: the source goes back to the state completion() found. */
static void restore_source(OutgoingRun *run)
{
    Migration *m = run->m;
    if (!run->vm_stopped ||
        m->host->runstate_get(m->host_opaque) != RUN_STATE_FINISH_MIGRATE) {
        return;
    }
    if (run->vm_old_state == RUN_STATE_RUNNING) {
        m->host->vm_start(m->host_opaque);
    } else {
        m->host->runstate_set(m->host_opaque, run->vm_old_state);
    }
}

/*
 * How the migration ends, decided once, under both locks: a cancel that
 * was acknowledged (the status says cancelling) wins, whatever the save
 * did since, unless the destination already said SHUT 0 (it runs the
 * guest); one that comes later finds s->ended and changes nothing.
 * A completion is published here, with the run state (a monitor's cont
 * waits for the run state to leave finish-migrate, and its client's next
 * query-migrate, which takes this lock, must already see "completed",
 * as QEMU's big lock makes it).
 */
static MigrationStatus decide_end(OutgoingRun *run, bool ok)
{
    MigrationState *s = run->s;
    Migration *m = run->m;

    pthread_mutex_lock(&s->event_lock);
    qemu_mutex_lock(&s->lock);
    s->total_ms = migration_now_ms() - s->start_ms;
    /*
     * Once SHUT 0 came the destination runs the guest: completed, whatever
     * came after (a cancel while it was on its way, a failed close), so
     * that the source never runs it too.
     */
    MigrationStatus end = run->dest_committed ? MIGRATION_STATUS_COMPLETED :
                          s->status == MIGRATION_STATUS_CANCELLING ? MIGRATION_STATUS_CANCELLED :
                          ok ? MIGRATION_STATUS_COMPLETED : MIGRATION_STATUS_FAILED;
    s->ended = true;
    if (end == MIGRATION_STATUS_COMPLETED) {
        /* as QEMU at completion: the whole transfer's average, setup left out */
        uint64_t bytes = stat64_get(&s->stats.main_bytes) + stat64_get(&s->stats.ram.pages.bytes);
        int64_t transfer_ms = s->total_ms - s->setup_ms;
        if (transfer_ms > 0) {
            s->mbps = (double)bytes * 8.0 / transfer_ms / 1000;
        }
        m->host->runstate_set(m->host_opaque, RUN_STATE_POSTMIGRATE);
        s->status = MIGRATION_STATUS_COMPLETED;
    }
    qemu_mutex_unlock(&s->lock);
    if (end == MIGRATION_STATUS_COMPLETED) {
        migration_status_event(m, MIGRATION_STATUS_COMPLETED);
    }
    pthread_mutex_unlock(&s->event_lock);
    return end;
}

/*
 * A failed or cancelled save leaves no file that loads: a cancel that
 * came while completion() ran or after the close, or a failed sync or
 * close, found every byte written.  Cut back to where the save began, as
 * `mapram save` does; the stream's last bytes were flushed before.
 */
static void cut_back(OutgoingRun *run)
{
    if (run->cut_fd >= 0 && ftruncate(run->cut_fd, run->cut_at) < 0) {
        /* nothing better to do: the status says the file is not a save */
    }
}

static gpointer migration_thread(gpointer opaque)
{
    OutgoingRun *run = opaque;
    MigrationState *s = run->s;
    Migration *m = run->m;
    GError *err = NULL;

    bool ok = run_save(run, &err);
    if (!ok && run->rp && err && !run->dest_committed && !cancel_requested(s)) {
        /* a destination that failed closes on us: its SHUT says why, not our EPIPE */
        qemu_mutex_lock(&s->ioc_lock);
        shutdown(io_channel_get_fd(s->ioc), SHUT_WR);
        qemu_mutex_unlock(&s->ioc_lock);
        rp_reader_prefer_error(run->rp, &err);
    }
    multifd_release(run, ok && !cancel_requested(s));
    rp_release(run, ok && !cancel_requested(s));
    qemu_savevm_state_cleanup(m->registry);
    if (fault_hit("save-late-cancel")) {
        migration_outgoing_cancel(s);
    }

    MigrationStatus end = decide_end(run, ok);
    if (end != MIGRATION_STATUS_COMPLETED) {
        if (end == MIGRATION_STATUS_FAILED && err) {
            migration_error_report(m, "migration failed: %s", err->message);
            qemu_mutex_lock(&s->lock);
            g_free(s->error_desc);
            s->error_desc = g_strdup(err->message);
            qemu_mutex_unlock(&s->lock);
        }
        if (run->f) {
            qemu_fclose(run->f, NULL);
            run->f = NULL;
        }
        cut_back(run);
        restore_source(run);
        /*
         * The file's lock goes with the channel: a retry right after the
         * status may take it.  A peer still there is stopped first: an
         * exec: command that outlived our failed write is ended (SIGTERM,
         * then SIGKILL), not waited for.
         */
        qemu_mutex_lock(&s->ioc_lock);
        if (s->ioc) {
            io_channel_shutdown(s->ioc, NULL);
            io_channel_close(s->ioc, NULL);
        }
        qemu_mutex_unlock(&s->ioc_lock);
        set_status(s, end);
    }
    g_clear_error(&err);
    if (run->f) {
        qemu_fclose(run->f, NULL);
    }
    if (run->cut_fd >= 0) {
        close(run->cut_fd);
    }
    /* the main channel is closed: by completion(), or above before the end's status */
    g_object_unref(run->vmdesc);
    g_free(run);
    return NULL;
}

/* ---- the main thread ---- */

/*
 * A dup of the main channel's fd if it is a regular file, whatever the
 * transport (file:, or an fd: on a file), else -1: pipes, sockets and
 * devices have nothing to cut back.
 */
static int cut_fd_new(IOChannel *ioc)
{
    int fd = io_channel_get_fd(ioc);
    struct stat st;

    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        return -1;
    }
    return fcntl(fd, F_DUPFD_CLOEXEC, 0);
}

/*
 * The VM quits: a save past its point of no return (claim_end), where a
 * cancel is a no-op, may still wait for its peer (an exec: command that
 * has the whole stream but does not exit).  Stop the peer, so that the
 * join that follows does not wait for it.
 */
void migration_outgoing_stop_peer(MigrationState *s)
{
    if (s->addr.kind == TRANSPORT_FILE) {
        return;
    }
    qemu_mutex_lock(&s->ioc_lock);
    if (s->ioc) {
        io_channel_shutdown(s->ioc, NULL);
    }
    qemu_mutex_unlock(&s->ioc_lock);
}

void migration_state_free(MigrationState *s)
{
    if (!s) {
        return;
    }
    if (s->thread) {
        g_thread_join(s->thread);
    }
    if (s->ioc) {
        io_channel_unref(s->ioc);
    }
    migration_config_free(s->cfg);
    mig_addr_clear(&s->addr);
    g_free(s->error_desc);
    qemu_cond_destroy(&s->pause_cond);
    qemu_mutex_destroy(&s->lock);
    qemu_mutex_destroy(&s->ioc_lock);
    pthread_mutex_destroy(&s->event_lock);
    g_free(s);
}

static MigrationState *state_new(Migration *m, MigAddr *addr, MigrationConfig *cfg)
{
    MigrationState *s = g_new0(MigrationState, 1);
    s->mig = m;
    s->cfg = cfg;
    s->addr = *addr;
    memset(addr, 0, sizeof(*addr));
    s->start_ms = migration_now_ms();
    s->expected_downtime_ms = migrate_downtime_limit(m->opts);   /* QEMU's start */
    qemu_mutex_init(&s->lock);
    qemu_cond_init(&s->pause_cond);
    qemu_mutex_init(&s->ioc_lock);
    {
        pthread_mutexattr_t attr;

        pthread_mutexattr_init(&attr);
        pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
        pthread_mutex_init(&s->event_lock, &attr);
        pthread_mutexattr_destroy(&attr);
    }
    return s;
}

/* What the QEMU of our machine type ("-X.Y"; 10.2 without one) sends. */
static MultiFDWire multifd_wire(const Migration *m, const MigrationConfig *c)
{
    unsigned major = 10, minor = 2;

    multifd_machine_version(m->machine_type, &major, &minor);
    return multifd_wire_for(major, minor,
                            c->zero_page_detection == ZERO_PAGE_DETECTION_MULTIFD);
}

/* A save refused once its state exists: failed, with err as its error-desc. */
static bool refuse_start(MigrationState *s, GError *err, GError **errp)
{
    qemu_mutex_lock(&s->lock);
    s->error_desc = g_strdup(err->message);
    qemu_mutex_unlock(&s->lock);
    set_status(s, MIGRATION_STATUS_FAILED);
    g_propagate_error(errp, err);
    return false;
}

/* On the migration thread, once the multifd channels (if any) are connected. */
static void configure_ram(Migration *m, MigrationState *s, OutgoingRun *run)
{
    const MigrationConfig *c = s->cfg;
    bool multifd = c->caps[MIGRATION_CAPABILITY_MULTIFD];
    RamSaveParams rp = {
        .mapped_ram = c->caps[MIGRATION_CAPABILITY_MAPPED_RAM],
        .multifd = multifd,
        .channels = multifd ? c->multifd_channels : 1,
        .direct_io = migrate_direct_io_effective(c),
        .queue_depth = c->io_queue_depth,
        .threads = c->page_io_threads,
        .zero = c->zero_page_detection,
        .fsync = c->fsync,
        .path = s->addr.filename,
        .main_ioc = s->ioc,
        .checksums = c->checksums,
        .multifd_send = run->multifd,
        .wire = multifd_wire(m, c),
        .stats = &s->stats.ram,
        .rate_limited = rate_limited,
        .rate_opaque = run,
    };
    ram_save_configure(m->ram, &rp);
}

bool migration_outgoing_start(Migration *m, MigAddr *addr, bool resume, GError **errp)
{
    g_autoptr(MigrationConfig) cfg = migration_config_snapshot(m->opts);
    if (!migration_check_transport(cfg, addr->kind, false, errp) ||
        !migration_outgoing_allowed(m, resume, errp) ||
        !migration_check_prepare(cfg, addr->kind, errp)) {
        mig_addr_clear(addr);
        return false;
    }
    if (cfg->caps[MIGRATION_CAPABILITY_PAUSE_BEFORE_SWITCHOVER] && !m->host->switchover_paused) {
        /* its commands would wait out finish-migrate, migrate-continue among them */
        error_setg(errp, "Capability 'pause-before-switchover' needs a host that takes "
                   "commands while the save waits (MigrationHostOps.switchover_paused)");
        mig_addr_clear(addr);
        return false;
    }
    migration_state_free(m->out);
    MigrationState *s = m->out = state_new(m, addr, g_steal_pointer(&cfg));
    off_t start = 0;
    /*
     * A file, a command or an fd is opened here and refused here, as QEMU
     * does; a socket is connected by the thread (connect_main).
     */
    GError *err = NULL;
    if (s->addr.kind != TRANSPORT_SOCKET &&
        !(s->ioc = transport_open_outgoing(m, &s->addr, &start, NULL, &err))) {
        /* QEMU reports open failures as a failed migration too */
        return refuse_start(s, err, errp);
    }
    if (s->ioc && s->cfg->fsync && !io_channel_has_feature(s->ioc, IO_CHANNEL_FEATURE_SEEKABLE)) {
        /* an fd: on a pipe or a socket, closed now: its peer sees the end */
        io_channel_close(s->ioc, NULL);
        io_channel_unref(s->ioc);
        s->ioc = NULL;
        error_setg(&err, MIGRATION_FSYNC_NEEDS_FILE);
        return refuse_start(s, err, errp);
    }
    OutgoingRun *run = g_new0(OutgoingRun, 1);
    run->s = s;
    run->m = m;
    run->start = start;
    run->cut_fd = s->ioc ? cut_fd_new(s->ioc) : -1;
    run->cut_at = start;
    if (run->cut_fd >= 0 && (fcntl(run->cut_fd, F_GETFL) & O_APPEND)) {
        /* every write goes to the end, whatever the fd's offset said: keep what was there */
        struct stat st;
        if (fstat(run->cut_fd, &st) == 0) {
            run->cut_at = st.st_size;
        } else {
            close(run->cut_fd);
            run->cut_fd = -1;
        }
    }
    run->f = s->ioc ? qemu_file_new_output(s->ioc, start) : NULL;
    run->vmdesc = json_builder_new();
    set_status(s, MIGRATION_STATUS_SETUP);
    s->thread = g_thread_new("live_migration", migration_thread, run);
    return true;
}

bool migration_outgoing_continue(MigrationState *s, const char *state, GError **errp)
{
    qemu_mutex_lock(&s->lock);
    const char *cur = migration_status_name(s->status);
    bool ok = !strcmp(cur, state);
    if (!ok) {
        error_setg(errp, "Migration not in expected state: %s", cur);
    } else if (s->status == MIGRATION_STATUS_PRE_SWITCHOVER) {
        s->continue_requested = true;
        qemu_cond_broadcast(&s->pause_cond);
    }
    qemu_mutex_unlock(&s->lock);
    return ok;
}

void migration_outgoing_cancel(MigrationState *s)
{
    /*
     * Looked at and changed in one step: a thread that ended in between
     * (failed, completed) must not have its final status overwritten with
     * a cancelling that nothing would ever end, and one that has decided
     * how it ends (decide_end) would not honour it: either the cancel is
     * seen there, or it is not acknowledged.
     */
    pthread_mutex_lock(&s->event_lock);
    qemu_mutex_lock(&s->lock);
    MigrationStatus st = s->status;
    bool running = (!s->ended && (st == MIGRATION_STATUS_SETUP || st == MIGRATION_STATUS_ACTIVE ||
                                  st == MIGRATION_STATUS_PRE_SWITCHOVER ||
                                  st == MIGRATION_STATUS_DEVICE)) ||
                   (s->awaiting_shut && st == MIGRATION_STATUS_DEVICE);
    /* the stream is out: its thread closes our side and waits for SHUT a while */
    bool awaiting_shut = s->awaiting_shut;
    if (running) {
        __atomic_store_n(&s->cancel, 1, __ATOMIC_RELEASE);
        s->status = MIGRATION_STATUS_CANCELLING;
        qemu_cond_broadcast(&s->pause_cond);      /* a save waiting in pre-switchover */
    }
    qemu_mutex_unlock(&s->lock);
    if (running) {
        /* before the thread can end the migration and say cancelled */
        migration_status_event(s->mig, MIGRATION_STATUS_CANCELLING);
    }
    pthread_mutex_unlock(&s->event_lock);
    if (!running) {
        return;
    }
    /* unblock a writer stuck on a full pipe or socket */
    if (s->addr.kind != TRANSPORT_FILE) {
        qemu_mutex_lock(&s->ioc_lock);
        if (s->ioc && awaiting_shut) {
            shutdown(io_channel_get_fd(s->ioc), SHUT_WR);
        } else if (s->ioc) {
            /* NULL: a socket's connect still under way sees the flag */
            io_channel_shutdown(s->ioc, NULL);
        }
        if (s->multifd) {
            multifd_send_shutdown(s->multifd);
        }
        qemu_mutex_unlock(&s->ioc_lock);
    }
}

void migration_outgoing_query(MigrationState *s, MigrationInfo *info)
{
    const MigrationStats *st = &s->stats;
    qemu_mutex_lock(&s->lock);
    MigrationStatus status = s->status;
    bool ended = status == MIGRATION_STATUS_COMPLETED || status == MIGRATION_STATUS_FAILED ||
                 status == MIGRATION_STATUS_CANCELLED;
    info->total_time_ms = ended ? s->total_ms : migration_now_ms() - s->start_ms;
    info->setup_time_ms = s->setup_ms;
    info->downtime_ms = s->downtime_ms;
    info->expected_downtime_ms = s->expected_downtime_ms;
    info->mbps = s->mbps;
    info->pages_per_second = s->pages_per_second;
    if (status == MIGRATION_STATUS_FAILED && s->error_desc) {
        info->error_desc = g_strdup(s->error_desc);
    }
    qemu_mutex_unlock(&s->lock);

    info->has_ram = status != MIGRATION_STATUS_NONE && status != MIGRATION_STATUS_SETUP;
    uint64_t page_bytes = stat64_get(&st->ram.pages.bytes);
    info->transferred = stat64_get(&st->main_bytes) + page_bytes;
    info->remaining = stat64_get(&st->ram.remaining);
    /* as QEMU: the rate only while the save is not completed */
    info->dirty_pages_rate = status == MIGRATION_STATUS_COMPLETED ? 0 :
                             stat64_get(&st->ram.dirty_pages_rate);
    info->duplicate = stat64_get(&st->ram.pages.zero_pages);
    info->normal = stat64_get(&st->ram.pages.normal_pages);
    info->normal_bytes = info->normal * RAM_PAGE_SIZE;
    info->dirty_sync_count = stat64_get(&st->ram.dirty_sync_count);
    /* QEMU counts page data (and multifd's packet headers) as multifd-bytes */
    info->multifd_bytes = s->cfg->caps[MIGRATION_CAPABILITY_MULTIFD] ? page_bytes : 0;
    uint64_t precopy = stat64_get(&st->precopy_bytes);
    info->downtime_bytes = stat64_get(&st->downtime_bytes);
    info->precopy_bytes = precopy ? precopy - info->downtime_bytes : info->transferred;
}
