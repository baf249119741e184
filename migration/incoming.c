/*
 * An incoming migration: setup (waiting for a peer) -> active (loading)
 * -> completed | failed, run by one "incoming" thread.
 *
 * migration_incoming_begin() (main thread) checks and opens the channel,
 * or a listening socket, and starts the thread.  The thread accepts the
 * peer when there is one to wait for, loads the stream into the
 * registered handlers, closes the channel and hands the end (the run
 * state decision, or exit-on-error) to the host's main thread through
 * main_call.  The state is reference counted: the thread's pending end
 * holds a reference, so a Migration freed before the end runs leaves the
 * end nothing to touch but the state itself.
 */
#include "migration-internal.h"
#include "multifd.h"
#include "transport.h"
#include "util/error.h"
#include "util/fault.h"
#include "util/osdep.h"
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/* The incoming thread's own state; allocated by begin, freed by the thread. */
typedef struct IncomingRun {
    MigrationIncomingState *s;
    Migration *m;
    off_t start;
    IOChannel **multifd_iocs;     /* multifd over sockets: cfg->multifd_channels, by id */
} IncomingRun;

static MigrationIncomingState *state_ref(MigrationIncomingState *s)
{
    __atomic_fetch_add(&s->refs, 1, __ATOMIC_RELAXED);
    return s;
}

static void state_unref(MigrationIncomingState *s)
{
    if (__atomic_fetch_sub(&s->refs, 1, __ATOMIC_ACQ_REL) != 1) {
        return;
    }
    g_assert(!s->thread);
    if (s->ioc) {
        io_channel_unref(s->ioc);
    }
    io_listener_free(s->listener);
    postcopy_load_free(s->postcopy);
    migration_config_free(s->cfg);
    mig_addr_clear(&s->addr);
    g_free(s->error_desc);
    qemu_mutex_destroy(&s->lock);
    g_free(s);
}

static bool stop_requested(MigrationIncomingState *s)
{
    return __atomic_load_n(&s->stop, __ATOMIC_ACQUIRE);
}

static void set_status(MigrationIncomingState *s, MigrationStatus st)
{
    qemu_mutex_lock(&s->lock);
    s->status = st;
    Migration *m = s->mig;
    qemu_mutex_unlock(&s->lock);
    if (m) {
        migration_status_event(m, st);
    }
}

/* ---- the configuration section against this VM ---- */

/* What a received configuration is checked against. */
typedef struct LoadCheck {
    Migration *m;
    const MigrationConfig *cfg;
} LoadCheck;

static bool check_capabilities(const MigrationConfig *local, const StreamConfig *cfg,
                               GError **errp)
{
    static const MigrationCapability validated[] = {
        MIGRATION_CAPABILITY_X_IGNORE_SHARED, MIGRATION_CAPABILITY_MAPPED_RAM,
    };
    bool received[MIGRATION_CAPABILITY__MAX] = { false };
    for (guint i = 0; i < cfg->caps->len; i++) {
        const char *name = g_ptr_array_index(cfg->caps, i);
        int c = migration_capability_from_name(name);
        /* as QEMU: any capability it knows may be listed; only the validated ones count */
        if (c < 0) {
            error_setg(errp, "Received unknown capability %s", name);
            return false;
        }
        received[c] = true;
    }
    g_autoptr(GString) msg = g_string_new(NULL);
    for (size_t i = 0; i < G_N_ELEMENTS(validated); i++) {
        MigrationCapability c = validated[i];
        if (received[c] != local->caps[c]) {
            g_string_append_printf(msg, "%sCapability %s is %s, but received capability is %s",
                                   msg->len ? "; " : "", migration_capability_name(c),
                                   local->caps[c] ? "on" : "off", received[c] ? "on" : "off");
        }
    }
    if (msg->len) {
        error_setg(errp, "%s", msg->str);
        return false;
    }
    if (local->caps[MIGRATION_CAPABILITY_X_IGNORE_SHARED]) {
        error_setg(errp, "x-ignore-shared is not supported by mapram");
        return false;
    }
    return true;
}

static bool check_config(void *opaque, const StreamConfig *cfg, GError **errp)
{
    LoadCheck *lc = opaque;
    const char *local = lc->m->machine_type;
    size_t len = strlen(cfg->machine);
    /* as QEMU: the received name's bytes are compared, so "" or a prefix passes */
    if (strncmp(cfg->machine, local, len) != 0) {
        error_setg(errp, "Machine type received is '%s' and local is '%s'",
                   cfg->machine, local);
        return false;
    }
    if (cfg->has_page_bits && cfg->page_bits != 12) {
        error_setg(errp, "Received TARGET_PAGE_BITS is %u but local is %d",
                   cfg->page_bits, 12);
        return false;
    }
    return check_capabilities(lc->cfg, cfg, errp);
}

/* ---- the end of a load, on the host's main thread ---- */

static void resume_or_pause(Migration *m)
{
    const MigrationHostOps *h = m->host;
    const char *name = global_state_received(m->global_state);
    RunState want = name ? runstate_from_name(name) : RUN_STATE_RUNNING;

    if (want == RUN_STATE_RUNNING && h->autostart(m->host_opaque)) {
        h->vm_start(m->host_opaque);
    } else if (want == RUN_STATE_RUNNING || want == RUN_STATE__MAX) {
        h->runstate_set(m->host_opaque, RUN_STATE_PAUSED);
    } else {
        h->runstate_set(m->host_opaque, want);
    }
}

/* data: the state with a reference, and its result in error_desc. */
static void incoming_end(void *data)
{
    MigrationIncomingState *s = data;
    qemu_mutex_lock(&s->lock);
    Migration *m = s->mig;
    bool failed = s->error_desc != NULL;
    qemu_mutex_unlock(&s->lock);

    if (m) {
        if (failed) {
            set_status(s, MIGRATION_STATUS_FAILED);
            if (s->exit_on_error && m->host->request_exit) {
                m->host->request_exit(m->host_opaque, 1);
            }
            /* never resume a half-loaded guest */
        } else {
            resume_or_pause(m);
            set_status(s, MIGRATION_STATUS_COMPLETED);
        }
    }
    state_unref(s);
}

/* On demand, the device state loaded: the guest runs (or waits under -S) from now on. */
static void on_demand_resume(void *data)
{
    MigrationIncomingState *s = data;
    qemu_mutex_lock(&s->lock);
    Migration *m = s->mig;
    qemu_mutex_unlock(&s->lock);

    if (m) {
        /* as QEMU: postcopy-active (at LISTEN) before the guest runs (RUN) */
        set_status(s, MIGRATION_STATUS_POSTCOPY_ACTIVE);
        resume_or_pause(m);
    }
    state_unref(s);
}

/*
 * On demand, the last page loaded (completed), or a page that cannot be
 * (error_desc set): the guest is paused, a vCPU waiting for that page
 * keeps waiting, and nothing exits: the guest's state lives only here.
 */
static void on_demand_end(void *data)
{
    MigrationIncomingState *s = data;
    qemu_mutex_lock(&s->lock);
    Migration *m = s->mig;
    bool failed = s->error_desc != NULL;
    qemu_mutex_unlock(&s->lock);

    if (m && failed) {
        if (m->host->vm_stop_nowait) {
            m->host->vm_stop_nowait(m->host_opaque, RUN_STATE_PAUSED);
        } else {
            m->host->runstate_set(m->host_opaque, RUN_STATE_PAUSED);
        }
        set_status(s, MIGRATION_STATUS_POSTCOPY_PAUSED);
    } else if (m) {
        set_status(s, MIGRATION_STATUS_COMPLETED);
    }
    state_unref(s);
}

/*
 * The fault thread, once the load failed: a host thread waits for good on
 * a page that will not come.  m outlives the load (freed before it).
 */
static void on_demand_blocked(void *opaque, int tid, const char *why)
{
    Migration *m = opaque;

    if (m->host->guest_ram_blocked) {
        g_autofree char *msg = g_strdup_printf(MIGRATION_LOAD_PAUSED "%s", why);
        m->host->guest_ram_blocked(m->host_opaque, tid, msg);
    }
}

/* ---- the thread ---- */

static void call_main(Migration *m, MigrationIncomingState *s, void (*fn)(void *data))
{
    if (m->host->main_call) {
        m->host->main_call(m->host_opaque, fn, state_ref(s));
    } else {
        fn(state_ref(s));
    }
}

static IOChannel *accept_peer(MigrationIncomingState *s, GError **errp)
{
    for (;;) {
        GError *err = NULL;
        IOChannel *ioc = io_listener_accept(s->listener, &err);
        if (ioc) {
            return ioc;
        }
        if (stop_requested(s)) {
            g_propagate_error(errp, err);
            return NULL;
        }
        migration_error_report(s->mig, "accept failed: %s", err->message);
        g_error_free(err);
    }
}

static bool multifd_over_socket(const MigrationIncomingState *s)
{
    return s->cfg->caps[MIGRATION_CAPABILITY_MULTIFD] && s->addr.kind == TRANSPORT_SOCKET;
}

static bool stop_polled(void *opaque)
{
    return stop_requested(opaque);
}

/* Multifd over sockets: the main connection and every channel. */
static IOChannel *accept_all(IncomingRun *run, GError **errp)
{
    MigrationIncomingState *s = run->s;

    run->multifd_iocs = g_new0(IOChannel *, s->cfg->multifd_channels);
    return multifd_accept_all(s->listener, s->cfg->multifd_channels, run->multifd_iocs,
                              stop_polled, s, errp);
}

static void unlink_socket(MigrationIncomingState *s)
{
    if (!strcmp(s->addr.sock_type, "unix")) {
        unlink(s->addr.path);
    }
}

/* The load is over: the listener kept for the multifd watch goes. */
static void drop_listener(MigrationIncomingState *s)
{
    qemu_mutex_lock(&s->lock);
    IOListener *l = g_steal_pointer(&s->listener);
    qemu_mutex_unlock(&s->lock);
    if (l) {
        io_listener_free(l);
        unlink_socket(s);
    }
}

/* The channel to load from: the one begin opened, or an accepted peer. */
static bool take_channel(IncomingRun *run, GError **errp)
{
    MigrationIncomingState *s = run->s;
    if (s->ioc) {
        return s->addr.kind != TRANSPORT_FILE ||
               file_wait_for_writer(s->ioc, s->addr.filename, &s->stop, errp);
    }
    IOChannel *ioc = multifd_over_socket(s) ? accept_all(run, errp) : accept_peer(s, errp);
    if (ioc && fault_hit("incoming-accept-stall")) {
        g_usleep(G_USEC_PER_SEC);        /* a stop lands between the accept and the lock */
    }
    /*
     * The listener goes now, also when the accept failed: a source that
     * connected later would otherwise fill the backlog that nobody reads,
     * and a small guest's whole stream fits in it ("completed" into
     * nothing); without it that source is refused and keeps running.
     * Multifd over sockets keeps it while the load runs: its watch
     * (multifd_watch_start) takes and drops what comes, and tells a
     * source with more channels than ours by the first extra one.
     */
    bool keep = ioc && multifd_over_socket(s);
    qemu_mutex_lock(&s->lock);
    if (!keep) {
        io_listener_free(g_steal_pointer(&s->listener));
    }
    /*
     * A stop (quit, the state freed) that came during the accept found no
     * channel to shut down: drop the peer instead of loading from it, or
     * the stop would wait for all it sends, or for good if it sends
     * nothing.  The stop is set before the lock is taken, so either this
     * sees it or migration_incoming_free sees s->ioc.
     */
    bool stopped = ioc && stop_requested(s);
    if (!stopped) {
        s->ioc = ioc;
    }
    qemu_mutex_unlock(&s->lock);
    if (!keep) {
        unlink_socket(s);
    }
    if (stopped) {
        io_channel_unref(ioc);
        error_setg(errp, "Failed to accept a migration connection: stopped");
        return false;
    }
    return ioc != NULL;
}

static void configure_ram(Migration *m, const MigrationConfig *c, const char *path,
                          PostcopyLoad *postcopy, MultiFDRecv *mr)
{
    bool multifd = c->caps[MIGRATION_CAPABILITY_MULTIFD];
    RamLoadParams lp = {
        .mapped_ram = c->caps[MIGRATION_CAPABILITY_MAPPED_RAM],
        .channels = multifd ? c->multifd_channels : 1,
        .direct_io = migrate_direct_io_effective(c),
        .queue_depth = c->io_queue_depth,
        .threads = c->page_io_threads,
        .path = path,
        .checksums = c->checksums,
        .shared = c->shared && c->caps[MIGRATION_CAPABILITY_MAPPED_RAM],
        .postcopy = postcopy,
        .multifd_recv = mr,
    };
    ram_load_configure(m->ram, &lp);
}

static void load_warn(void *opaque, const char *msg)
{
    migration_error_report(((LoadCheck *)opaque)->m, "%s", msg);
}

static bool load_stream(Migration *m, const MigrationConfig *cfg, QEMUFile *f,
                        const char *path, PostcopyLoad *postcopy, MultiFDRecv *mr,
                        LoadReturnPath *rp, GError **errp)
{
    LoadCheck lc = { .m = m, .cfg = cfg };
    StreamFraming framing = { .configuration = cfg->send_configuration,
                              .footers = cfg->send_section_footer };

    configure_ram(m, cfg, path, postcopy, mr);
    global_state_reset(m->global_state);
    return qemu_loadvm_state(m->registry, f, &framing, check_config, load_warn, &lc, rp, errp);
}

bool migration_incoming_load(Migration *m, const MigrationConfig *cfg, QEMUFile *f,
                             const char *path, GError **errp)
{
    return load_stream(m, cfg, f, path, NULL, NULL, NULL, errp);
}

/* A channel failed: the main stream may wait for bytes that never come. */
static void multifd_failed(void *opaque)
{
    MigrationIncomingState *s = opaque;

    qemu_mutex_lock(&s->lock);
    io_channel_shutdown(s->ioc, NULL);
    qemu_mutex_unlock(&s->lock);
}

/* The receive threads on the accepted channels, published for a stop. */
static MultiFDRecv *multifd_start(IncomingRun *run, GError **errp)
{
    MigrationIncomingState *s = run->s;
    MultiFDRecvConfig rc = {
        .channels = s->cfg->multifd_channels,
        .method = multifd_method_find(s->cfg->multifd_compression),
        .find_block = ram_find_block,
        .find_opaque = run->m->ram,
        .on_error = multifd_failed,
        .error_opaque = s,
    };
    MultiFDRecv *mr = multifd_recv_new(&rc, run->multifd_iocs, errp);
    if (mr) {
        qemu_mutex_lock(&s->lock);
        s->multifd = mr;
        qemu_mutex_unlock(&s->lock);
    }
    return mr;
}

static void multifd_stop(IncomingRun *run, MultiFDRecv *mr)
{
    MigrationIncomingState *s = run->s;

    if (mr) {
        qemu_mutex_lock(&s->lock);
        s->multifd = NULL;
        qemu_mutex_unlock(&s->lock);
        multifd_recv_free(mr);
    }
    if (run->multifd_iocs) {
        for (unsigned i = 0; i < s->cfg->multifd_channels; i++) {
            if (run->multifd_iocs[i]) {
                io_channel_close(run->multifd_iocs[i], NULL);
                io_channel_unref(run->multifd_iocs[i]);
            }
        }
        g_clear_pointer(&run->multifd_iocs, g_free);
    }
}

/* A return path can be opened on the main connection when it is a socket. */
static IOChannel *return_path_channel(IOChannel *ioc)
{
    int fd = io_channel_get_fd(ioc);
    struct stat st;

    return fd >= 0 && fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode) ? ioc : NULL;
}

/*
 * A source never closes its side before it read our SHUT: if it did, it
 * gave up (a cancel), and the guest must not resume here.  Not proof the
 * other way: a cancel may cross our SHUT 0 on the wire, which is why a
 * source cancelled while waiting for SHUT closes only its sending side
 * and reads a while longer (outgoing.c, await_shut).
 */
static bool source_gone(IOChannel *ioc)
{
    struct pollfd p = { .fd = io_channel_get_fd(ioc), .events = POLLRDHUP };
    return poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

/*
 * The load's end on an open return path: SHUT 0 tells the source it may
 * complete, 1 that it must run on.  A SHUT 0 that cannot be sent fails
 * this load too: the source, which never sees it, runs the guest on, and
 * two copies must never run; so does a source that already closed its
 * side.
 */
static bool send_shut(LoadReturnPath *rp, bool ok, GError **errp)
{
    if (fault_hit("incoming-shut-stall")) {
        g_usleep(2 * G_USEC_PER_SEC);   /* tests: the source gives up meanwhile */
    }
    if (ok && source_gone(rp->ioc)) {
        error_setg(errp, "The source closed the connection before the load's end "
                         "(was the migration cancelled?)");
        ok = false;
    }
    if (fault_hit("incoming-shut-write-stall")) {
        g_usleep(500 * 1000);           /* tests: a cancel crosses our SHUT */
    }
    savevm_put_rp_shut(rp->f, ok ? 0 : 1);
    qemu_fflush(rp->f);
    GError *err = NULL;
    if (!qemu_fclose(rp->f, &err) && ok) {
        g_propagate_prefixed_error(errp, err, "Unable to send SHUT on the return path: ");
        ok = false;
    } else {
        g_clear_error(&err);
    }
    rp->f = NULL;
    return ok;
}

static bool load(IncomingRun *run, GError **errp)
{
    MigrationIncomingState *s = run->s;
    Migration *m = run->m;

    MultiFDRecv *mr = NULL;
    MultiFDWatch *watch = NULL;
    bool ok = false;

    if (!take_channel(run, errp)) {
        goto out;
    }
    if (run->multifd_iocs && !(mr = multifd_start(run, errp))) {
        goto out;
    }
    if (s->listener) {
        watch = multifd_watch_start(s->listener, s->cfg->multifd_channels, s->ioc);
    }
    set_status(s, MIGRATION_STATUS_ACTIVE);
    if (s->on_demand) {
        s->postcopy = postcopy_load_new(s->addr.filename, &s->pstats, on_demand_blocked, m,
                                        errp);
        if (!s->postcopy) {
            goto out;
        }
    }
    QEMUFile *f = qemu_file_new_input(s->ioc, run->start);
    GError *err = NULL;
    LoadReturnPath rp = {
        .ioc = return_path_channel(s->ioc),
        .switchover_ack = s->cfg->caps[MIGRATION_CAPABILITY_SWITCHOVER_ACK],
    };
    ok = load_stream(m, s->cfg, f, s->addr.filename, s->postcopy, mr, &rp, &err);
    qemu_fclose(f, ok ? &err : NULL);
    ok = ok && !err;
    if (rp.f) {
        ok = send_shut(&rp, ok, &err);
    }
    /*
     * An extra channel or a channel's failure is the cause; the main
     * stream's is its echo.  The watch has shut main down only if it
     * failed, so a load it failed has failed.
     */
    GError *werr = NULL;
    if (multifd_watch_end(g_steal_pointer(&watch), &werr)) {
        ok = false;
    }
    if (!ok && werr) {
        g_propagate_error(errp, werr);
        g_clear_error(&err);
    } else if (!ok && mr && multifd_recv_error(mr, errp)) {
        g_clear_error(&err);
    } else if (err) {
        g_propagate_error(errp, err);
    }
out:
    multifd_watch_end(watch, NULL);
    drop_listener(s);
    multifd_stop(run, mr);
    return ok;
}

static gpointer incoming_thread(gpointer opaque)
{
    IncomingRun *run = opaque;
    MigrationIncomingState *s = run->s;
    Migration *m = run->m;
    GError *err = NULL;

    bool ok = load(run, &err);
    if (!ok && s->postcopy) {
        /*
         * Failed before the guest ran (a block list, bitmap or table it
         * could not take), maybe with guest RAM already emptied and
         * registered but no fault thread yet: nothing would ever serve a
         * host access to it (a pmemsave, a later save) and the main
         * thread would hang in it.  The load is over: end the
         * registration.
         */
        postcopy_load_free(s->postcopy);
        s->postcopy = NULL;
    }
    bool on_demand = ok && s->postcopy;
    qemu_mutex_lock(&s->lock);
    if (s->ioc) {
        io_channel_close(s->ioc, NULL);
    }
    qemu_mutex_unlock(&s->lock);
    if (on_demand && !stop_requested(s)) {
        call_main(m, s, on_demand_resume);
        ok = postcopy_load_stream(s->postcopy, &s->stop, &err);
    }
    qemu_mutex_lock(&s->lock);
    s->total_ms = migration_now_ms() - s->start_ms;
    if (!ok) {
        s->error_desc = g_strdup(err ? err->message : "load failed");
    }
    qemu_mutex_unlock(&s->lock);
    g_free(run);
    if (stop_requested(s)) {
        g_clear_error(&err);
        return NULL;
    }
    /*
     * As QEMU: a failed load is printed when the process exits for it;
     * with exit-on-error false query-migrate's error-desc says it alone.
     */
    if (!ok && (on_demand || s->exit_on_error)) {
        migration_error_report(m, "%s: %s", on_demand ? "on-demand load of migration paused"
                                                      : "load of migration failed",
                               err ? err->message : "load failed");
    }
    g_clear_error(&err);
    call_main(m, s, on_demand ? on_demand_end : incoming_end);
    return NULL;
}

/* ---- the main thread ---- */

static bool probe_direct_io(const MigAddr *addr, const MigrationConfig *cfg, GError **errp)
{
    if (addr->kind != TRANSPORT_FILE || !migrate_direct_io_effective(cfg) ||
        file_addr_is_fifo(addr)) {
        return true;    /* a FIFO's open would wait for its writer; the load refuses it */
    }
    /* QEMU opens its page fds here, so a missing O_DIRECT fails the command */
    int fd = qemu_open(addr->filename, O_RDONLY | O_DIRECT, 0, errp);
    if (fd < 0) {
        return false;
    }
    qemu_close(fd);
    return true;
}

bool migration_incoming_begin(Migration *m, MigAddr *addr, bool exit_on_error,
                              GError **errp)
{
    g_autoptr(MigrationConfig) cfg = migration_config_snapshot(m->opts);
    if (!migration_check_transport(cfg, addr->kind, true, errp) ||
        !probe_direct_io(addr, cfg, errp)) {
        mig_addr_clear(addr);
        return false;
    }
    MigrationIncomingState *s = g_new0(MigrationIncomingState, 1);
    s->refs = 1;
    s->mig = m;
    s->cfg = g_steal_pointer(&cfg);
    s->on_demand = s->cfg->caps[MIGRATION_CAPABILITY_MAPPED_RAM] &&
                   s->cfg->caps[MIGRATION_CAPABILITY_POSTCOPY_RAM];
    s->addr = *addr;
    memset(addr, 0, sizeof(*addr));
    s->start_ms = migration_now_ms();
    s->exit_on_error = exit_on_error;
    qemu_mutex_init(&s->lock);

    IncomingRun *run = g_new0(IncomingRun, 1);
    run->s = s;
    run->m = m;
    s->ioc = transport_open_incoming(m, &s->addr, &run->start, &s->listener, errp);
    if (!s->ioc && !s->listener) {
        g_free(run);
        state_unref(s);
        return false;
    }
    migration_incoming_free(m->in);
    m->in = s;
    m->incoming_started = true;
    set_status(s, MIGRATION_STATUS_SETUP);
    s->thread = g_thread_new("incoming", incoming_thread, run);
    return true;
}

void migration_incoming_free(MigrationIncomingState *s)
{
    if (!s) {
        return;
    }
    __atomic_store_n(&s->stop, 1, __ATOMIC_RELEASE);
    qemu_mutex_lock(&s->lock);
    if (s->listener) {
        io_listener_shutdown(s->listener);    /* wakes a blocked accept */
    }
    if (s->ioc) {
        io_channel_shutdown(s->ioc, NULL);
    }
    if (s->multifd) {
        multifd_recv_shutdown(s->multifd);
    }
    qemu_mutex_unlock(&s->lock);
    if (s->thread) {
        g_thread_join(s->thread);
        s->thread = NULL;
    }
    qemu_mutex_lock(&s->lock);
    s->mig = NULL;                 /* a pending end finds nothing to act on */
    qemu_mutex_unlock(&s->lock);
    /* the fault thread ends, and a vCPU waiting for a page is let go: the VM is ending */
    postcopy_load_free(s->postcopy);
    s->postcopy = NULL;
    state_unref(s);
}

bool migration_incoming_active(Migration *m)
{
    MigrationIncomingState *s = m->in;
    bool active;

    if (!s) {
        return false;
    }
    qemu_mutex_lock(&s->lock);
    active = s->status == MIGRATION_STATUS_SETUP ||
             s->status == MIGRATION_STATUS_ACTIVE ||
             s->status == MIGRATION_STATUS_POSTCOPY_ACTIVE ||
             s->status == MIGRATION_STATUS_POSTCOPY_PAUSED;
    qemu_mutex_unlock(&s->lock);
    return active;
}

void migration_incoming_query(MigrationIncomingState *s, MigrationInfo *info)
{
    qemu_mutex_lock(&s->lock);
    info->incoming = true;
    info->status = migration_status_name(s->status);
    if ((s->status == MIGRATION_STATUS_FAILED ||
         s->status == MIGRATION_STATUS_POSTCOPY_PAUSED) && s->error_desc) {
        info->error_desc = g_strdup(s->error_desc);
    }
    bool on_demand = s->on_demand && (s->status == MIGRATION_STATUS_POSTCOPY_ACTIVE ||
                                      s->status == MIGRATION_STATUS_POSTCOPY_PAUSED ||
                                      s->status == MIGRATION_STATUS_COMPLETED);
    qemu_mutex_unlock(&s->lock);
    if (on_demand) {
        const PostcopyStats *st = &s->pstats;
        uint64_t total = stat64_get(&st->total), remaining = stat64_get(&st->remaining);
        uint64_t demand = stat64_get(&st->demand_pages);
        uint64_t background = stat64_get(&st->background_pages);
        info->has_ram = true;
        info->remaining = remaining;
        info->transferred = total - remaining;
        info->normal = demand + background;
        info->normal_bytes = info->normal * RAM_PAGE_SIZE;
        info->postcopy_requests = stat64_get(&st->requests);
        info->postcopy_bytes = demand * RAM_PAGE_SIZE;
        info->precopy_bytes = background * RAM_PAGE_SIZE;
    }
}

bool migration_incoming_pages_missing(MigrationIncomingState *s)
{
    qemu_mutex_lock(&s->lock);
    bool missing = s->status == MIGRATION_STATUS_POSTCOPY_ACTIVE ||
                   s->status == MIGRATION_STATUS_POSTCOPY_PAUSED ||
                   (s->on_demand && s->status == MIGRATION_STATUS_ACTIVE);
    qemu_mutex_unlock(&s->lock);
    return missing;
}

bool migration_incoming_check_paused(MigrationIncomingState *s, GError **errp)
{
    qemu_mutex_lock(&s->lock);
    bool paused = s->status == MIGRATION_STATUS_POSTCOPY_PAUSED;
    if (paused) {
        error_setg(errp, MIGRATION_LOAD_PAUSED "%s", s->error_desc ? s->error_desc : "");
    }
    qemu_mutex_unlock(&s->lock);
    return !paused;
}

JsonArray *migration_incoming_listen_address(MigrationIncomingState *s)
{
    JsonArray *a = NULL;
    qemu_mutex_lock(&s->lock);
    if (s->listener && s->addr.sock_type) {
        a = transport_listen_address(&s->addr, s->listener);
    }
    qemu_mutex_unlock(&s->lock);
    return a;
}
