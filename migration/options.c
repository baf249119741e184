/*
 * Capabilities, parameters and compatibility rules.  See options.h.
 */
#include "options.h"
#include "util/cutils.h"
#include "util/error.h"
#include <errno.h>
#include <string.h>

static const char *const cap_names[MIGRATION_CAPABILITY__MAX] = {
    "xbzrle", "rdma-pin-all", "auto-converge", "zero-blocks", "events",
    "postcopy-ram", "x-colo", "release-ram", "return-path",
    "pause-before-switchover", "multifd", "dirty-bitmaps", "postcopy-blocktime",
    "late-block-activate", "x-ignore-shared", "validate-uuid",
    "background-snapshot", "zero-copy-send", "postcopy-preempt",
    "switchover-ack", "dirty-limit", "mapped-ram",
};

const char *migration_capability_name(MigrationCapability c) { return cap_names[c]; }

int migration_capability_from_name(const char *name)
{
    for (int i = 0; i < MIGRATION_CAPABILITY__MAX; i++) {
        if (strcmp(cap_names[i], name) == 0) {
            return i;
        }
    }
    return -1;
}

/*
 * The live option values of one Migration.  Owned by the thread that runs
 * the QMP commands (the main thread), except live_max_bandwidth,
 * live_downtime_limit, live_avail_switchover_bandwidth and live_events:
 * atomics, read by the migration threads while they run (QEMU applies
 * the three parameters to a running
 * migration, and sends MIGRATION events as the capability is at each
 * status change).
 */
struct MigrationOptions {
    bool caps[MIGRATION_CAPABILITY__MAX];
    JsonObject *params;          /* MigrationParameters, QMP names */
    bool send_switchover_start, send_configuration, send_section_footer;
    guint64 live_max_bandwidth;
    guint64 live_downtime_limit;
    guint64 live_avail_switchover_bandwidth;
    gint live_events;
};

#define C(x) MIGRATION_CAPABILITY_##x

/* ------------------------------------------------------------------ */
/* compatibility rules: reference §5.4 as one table                     */

/*
 * Every rule is a row: when it is checked, a predicate over what is being
 * decided, and the message (QEMU's exact text where QEMU has the rule).
 * One validator walks the rows of a phase in order; the first hit wins,
 * as QEMU's checks do.
 */
typedef enum {
    PHASE_CAPS,          /* migrate-set-capabilities, on the new set */
    PHASE_TRANSPORT,     /* migrate / migrate-incoming, per transport */
    PHASE_PREPARE,       /* migrate only */
} RulePhase;

typedef struct RuleCtx {
    const bool *caps;                 /* capability set being checked */
    const bool *current;              /* CAPS: the capabilities in force now */
    bool incoming_active;             /* CAPS: an incoming migration listens or loads */
    bool incoming_vm;                 /* CAPS: the VM waits for an incoming migration */
    bool incoming;                    /* TRANSPORT: migrate-incoming (not migrate) */
    const char *compression;          /* CAPS: multifd-compression now */
    bool tls;                         /* CAPS: tls-creds set now */
    const MigrationConfig *cfg;       /* TRANSPORT / PREPARE */
    TransportKind transport;          /* TRANSPORT / PREPARE */
} RuleCtx;

typedef struct CompatRule {
    RulePhase phase;
    bool (*violated)(const RuleCtx *r);
    const char *msg;
} CompatRule;

#define CAP(x) (r->caps[C(x)])

static bool r_mr_xbzrle(const RuleCtx *r) { return CAP(MAPPED_RAM) && CAP(XBZRLE); }
/*
 * QEMU refuses mapped-ram with postcopy-ram.  mapram takes the pair on a
 * VM that waits for an incoming migration: an on-demand restore from a
 * mapped-ram file (postcopy.h).  A save keeps QEMU's refusal.
 */
static bool r_mr_postcopy(const RuleCtx *r)
{ return CAP(MAPPED_RAM) && CAP(POSTCOPY_RAM) && !r->incoming_vm; }
static bool r_mr_postcopy_save(const RuleCtx *r)
{ return CAP(MAPPED_RAM) && CAP(POSTCOPY_RAM); }
static bool r_postcopy_shared(const RuleCtx *r)
{ return CAP(POSTCOPY_RAM) && CAP(X_IGNORE_SHARED); }
static bool r_mfd_xbzrle(const RuleCtx *r) { return CAP(MULTIFD) && CAP(XBZRLE); }
static bool r_preempt(const RuleCtx *r) { return CAP(POSTCOPY_PREEMPT) && !CAP(POSTCOPY_RAM); }
static bool r_sw_ack(const RuleCtx *r) { return CAP(SWITCHOVER_ACK) && !CAP(RETURN_PATH); }
static bool r_zero_copy(const RuleCtx *r)
{
    return CAP(ZERO_COPY_SEND) &&
           (!CAP(MULTIFD) || CAP(XBZRLE) || strcmp(r->compression, "none") != 0 || r->tls);
}
static bool r_bg_postcopy(const RuleCtx *r)
{ return CAP(BACKGROUND_SNAPSHOT) && CAP(POSTCOPY_RAM); }
static bool r_bg_mapped(const RuleCtx *r) { return CAP(BACKGROUND_SNAPSHOT) && CAP(MAPPED_RAM); }
static bool r_colo(const RuleCtx *r) { return CAP(X_COLO); }
static bool r_rdma_pin(const RuleCtx *r) { return CAP(RDMA_PIN_ALL); }
/* QEMU refuses turning multifd on once incoming started; turning it off is accepted */
static bool r_mfd_incoming(const RuleCtx *r)
{ return CAP(MULTIFD) && !r->current[C(MULTIFD)] && r->incoming_active; }

static bool r_seekable(const RuleCtx *r)
{ return CAP(MAPPED_RAM) && r->transport != TRANSPORT_FILE; }
static bool r_multi_channel(const RuleCtx *r)
{
    bool multi = r->transport == TRANSPORT_SOCKET ||
                 (r->transport == TRANSPORT_FILE && CAP(MAPPED_RAM));
    return (CAP(MULTIFD) || CAP(POSTCOPY_PREEMPT)) && !multi;
}
static bool r_extra_fds(const RuleCtx *r)
{ return CAP(MULTIFD) && migrate_direct_io_effective(r->cfg) && r->transport != TRANSPORT_FILE; }
static bool r_cpr_transfer(const RuleCtx *r)
{ return r->transport == TRANSPORT_FILE && !strcmp(r->cfg->mode, "cpr-transfer"); }
static bool r_rdma(const RuleCtx *r) { return r->transport == TRANSPORT_RDMA; }
static bool r_postcopy_in_stream(const RuleCtx *r)
{ return r->incoming && CAP(POSTCOPY_RAM) && !CAP(MAPPED_RAM); }
static bool r_on_demand_preempt(const RuleCtx *r)
{ return r->incoming && CAP(POSTCOPY_RAM) && CAP(MAPPED_RAM) && CAP(POSTCOPY_PREEMPT); }
static bool r_shared_mr(const RuleCtx *r)
{ return r->incoming && r->cfg->shared && !CAP(MAPPED_RAM); }
static bool r_shared_dio(const RuleCtx *r)
{ return r->incoming && r->cfg->shared && CAP(MAPPED_RAM) && r->cfg->direct_io; }
static bool r_shared_postcopy(const RuleCtx *r)
{ return r->incoming && r->cfg->shared && CAP(MAPPED_RAM) && CAP(POSTCOPY_RAM); }
/* the destination's answers come back on the connection: a file or a command has none */
static bool r_rp_stream(const RuleCtx *r)
{
    return CAP(RETURN_PATH) &&
           (r->transport == TRANSPORT_FILE || r->transport == TRANSPORT_EXEC);
}
static bool r_fsync_stream(const RuleCtx *r)
{ return r->cfg->fsync && (r->transport == TRANSPORT_SOCKET || r->transport == TRANSPORT_EXEC); }

static bool r_mr_tls(const RuleCtx *r) { return CAP(MAPPED_RAM) && *r->cfg->tls_creds; }
static bool r_mr_compress(const RuleCtx *r)
{ return CAP(MAPPED_RAM) && strcmp(r->cfg->multifd_compression, "none") != 0; }
static bool r_tls(const RuleCtx *r) { return *r->cfg->tls_creds; }
/* QEMU's block list then carries each block's mr_addr, which mapram does not write */
static bool r_ignore_shared(const RuleCtx *r) { return CAP(X_IGNORE_SHARED); }
static bool r_mode(const RuleCtx *r) { return strcmp(r->cfg->mode, "normal") != 0; }

static const CompatRule compat_rules[] = {
    /*
     * capabilities, in the order of QEMU 10.x's migrate_caps_check (a set
     * that breaks two rules gets QEMU's first text); mapram's own refusals
     * last, so that a set QEMU refuses is refused with QEMU's words
     */
    { PHASE_CAPS, r_postcopy_shared, "Postcopy is not compatible with ignore-shared" },
    { PHASE_CAPS, r_bg_postcopy, "Background-snapshot is not compatible with postcopy-ram" },
    { PHASE_CAPS, r_bg_mapped, "Background-snapshot is not compatible with mapped-ram" },
    { PHASE_CAPS, r_zero_copy,
      "Zero copy only available for non-compressed non-TLS multifd migration" },
    { PHASE_CAPS, r_preempt, "Postcopy preempt requires postcopy-ram" },
    { PHASE_CAPS, r_mfd_incoming, "Multifd must be set before incoming starts" },
    { PHASE_CAPS, r_sw_ack, "Capability 'switchover-ack' requires capability 'return-path'" },
    { PHASE_CAPS, r_mfd_xbzrle, "Multifd is not compatible with xbzrle" },
    { PHASE_CAPS, r_mr_xbzrle, "Mapped-ram migration is incompatible with xbzrle" },
    { PHASE_CAPS, r_mr_postcopy, "Mapped-ram migration is incompatible with postcopy" },
    { PHASE_CAPS, r_colo, "COLO is not supported by mapram" },
    { PHASE_CAPS, r_rdma_pin, "RDMA is not supported by mapram" },
    /* transports, in QEMU's order: seekable, multi-channel, extra fds, cpr */
    { PHASE_TRANSPORT, r_seekable, "Migration requires seekable transport (e.g. file)" },
    { PHASE_TRANSPORT, r_multi_channel, "Migration requires multi-channel URIs (e.g. tcp)" },
    { PHASE_TRANSPORT, r_extra_fds,
      "Migration requires a transport that allows for extra fds (e.g. file)" },
    { PHASE_TRANSPORT, r_cpr_transfer, "Migration requires streamable transport (eg unix)" },
    { PHASE_TRANSPORT, r_rdma, "RDMA is not supported by mapram" },
    /* mapram's on-demand restore (migrate-incoming only): from a mapped-ram file */
    { PHASE_TRANSPORT, r_postcopy_in_stream, MIGRATION_POSTCOPY_NEEDS_MAPPED_RAM },
    { PHASE_TRANSPORT, r_on_demand_preempt,
      "Capability 'postcopy-preempt' does not apply to an on-demand restore from a file" },
    /* mapram's shared restore (migrate-incoming only; a save ignores it) */
    { PHASE_TRANSPORT, r_shared_mr, MIGRATION_SHARED_NEEDS_MAPPED_RAM },
    { PHASE_TRANSPORT, r_shared_dio, MIGRATION_SHARED_NOT_DIO },
    { PHASE_TRANSPORT, r_shared_postcopy, MIGRATION_SHARED_NOT_POSTCOPY },
    /* migrate (QEMU's migrate_prepare) */
    { PHASE_PREPARE, r_mr_tls, "Cannot use TLS with mapped-ram" },
    { PHASE_PREPARE, r_mr_compress, "Cannot use compression with mapped-ram" },
    /* QEMU's caps check, kept for saves: mapram takes the pair only to load on demand */
    { PHASE_PREPARE, r_mr_postcopy_save, "Mapped-ram migration is incompatible with postcopy" },
    { PHASE_PREPARE, r_tls, "TLS is not supported by mapram" },
    { PHASE_PREPARE, r_ignore_shared, "x-ignore-shared is not supported by mapram" },
    { PHASE_PREPARE, r_mode, "Migration modes other than 'normal' are not supported by mapram" },
    /* QEMU's, kept for a capability set no check saw (an embedder's globals) */
    { PHASE_PREPARE, r_sw_ack, "Capability 'switchover-ack' requires capability 'return-path'" },
    /* return-path (saves only: a destination opens it when the source asks) */
    { PHASE_PREPARE, r_rp_stream, MIGRATION_RETURN_PATH_NEEDS_SOCKET },
    /* mapram's x-fsync (saves only): only a file has a disk to sync to */
    { PHASE_PREPARE, r_fsync_stream, MIGRATION_FSYNC_NEEDS_FILE },
};

static bool rules_check(RulePhase phase, const RuleCtx *r, GError **errp)
{
    for (size_t i = 0; i < G_N_ELEMENTS(compat_rules); i++) {
        const CompatRule *rule = &compat_rules[i];
        if (rule->phase == phase && rule->violated(r)) {
            error_setg(errp, "%s", rule->msg);
            return false;
        }
    }
    return true;
}

static void caps_publish(MigrationOptions *o)
{
    __atomic_store_n(&o->live_events, o->caps[C(EVENTS)], __ATOMIC_RELAXED);
}

bool migration_options_set_capabilities(MigrationOptions *o, JsonArray *list,
                                        bool incoming_active, bool incoming_vm,
                                        GError **errp)
{
    bool newc[MIGRATION_CAPABILITY__MAX];
    memcpy(newc, o->caps, sizeof(newc));
    for (guint i = 0; i < json_array_get_length(list); i++) {
        JsonObject *e = json_array_get_object_element(list, i);
        const char *name = json_object_get_string_member(e, "capability");
        int c = migration_capability_from_name(name);
        if (c < 0) {
            error_setg(errp, "Parameter 'capability' does not accept value '%s'", name);
            return false;
        }
        newc[c] = json_object_get_boolean_member(e, "state");
    }
    RuleCtx r = { .caps = newc, .current = o->caps, .incoming_active = incoming_active,
                  .incoming_vm = incoming_vm,
                  .compression = json_object_get_string_member(o->params, "multifd-compression"),
                  .tls = *json_object_get_string_member(o->params, "tls-creds") };
    if (!rules_check(PHASE_CAPS, &r, errp)) {
        return false;
    }
    memcpy(o->caps, newc, sizeof(newc));
    caps_publish(o);
    return true;
}

bool migration_options_check_globals(MigrationOptions *o, bool incoming_vm, GError **errp)
{
    /* as QEMU at start-up: the set is checked against one with every capability off */
    bool none[MIGRATION_CAPABILITY__MAX] = { 0 };
    RuleCtx r = { .caps = o->caps, .current = none, .incoming_vm = incoming_vm,
                  .compression = json_object_get_string_member(o->params, "multifd-compression"),
                  .tls = *json_object_get_string_member(o->params, "tls-creds") };
    return rules_check(PHASE_CAPS, &r, errp);
}

JsonNode *migration_options_query_capabilities(const MigrationOptions *o)
{
    JsonArray *arr = json_array_new();
    for (int i = 0; i < MIGRATION_CAPABILITY__MAX; i++) {
        JsonObject *e = json_object_new();
        json_object_set_string_member(e, "capability", cap_names[i]);
        json_object_set_boolean_member(e, "state", o->caps[i]);
        json_array_add_object_element(arr, e);
    }
    JsonNode *n = json_node_new(JSON_NODE_ARRAY);
    json_node_take_array(n, arr);
    return n;
}

/* ------------------------------------------------------------------ */
/* parameters                                                          */

static JsonObject *params_defaults(void)
{
    JsonObject *params = json_object_new();
    json_object_set_int_member(params, "announce-initial", 50);
    json_object_set_int_member(params, "announce-max", 550);
    json_object_set_int_member(params, "announce-rounds", 5);
    json_object_set_int_member(params, "announce-step", 100);
    json_object_set_int_member(params, "throttle-trigger-threshold", 50);
    json_object_set_int_member(params, "cpu-throttle-initial", 20);
    json_object_set_int_member(params, "cpu-throttle-increment", 10);
    json_object_set_boolean_member(params, "cpu-throttle-tailslow", false);
    json_object_set_string_member(params, "tls-creds", "");
    json_object_set_string_member(params, "tls-hostname", "");
    json_object_set_string_member(params, "tls-authz", "");
    json_object_set_int_member(params, "max-bandwidth", 134217728);
    json_object_set_int_member(params, "avail-switchover-bandwidth", 0);
    json_object_set_int_member(params, "downtime-limit", 300);
    json_object_set_int_member(params, "x-checkpoint-delay", 20000);
    json_object_set_int_member(params, "multifd-channels", 2);
    json_object_set_int_member(params, "xbzrle-cache-size", 67108864);
    json_object_set_int_member(params, "max-postcopy-bandwidth", 0);
    json_object_set_int_member(params, "max-cpu-throttle", 99);
    json_object_set_string_member(params, "multifd-compression", "none");
    json_object_set_int_member(params, "multifd-zlib-level", 1);
    json_object_set_int_member(params, "multifd-qatzip-level", 1);
    json_object_set_int_member(params, "multifd-zstd-level", 1);
    json_object_set_int_member(params, "x-vcpu-dirty-limit-period", 1000);
    json_object_set_int_member(params, "vcpu-dirty-limit", 1);
    json_object_set_string_member(params, "mode", "normal");
    json_object_set_string_member(params, "zero-page-detection", "multifd");
    json_object_set_boolean_member(params, "direct-io", false);
    json_object_set_int_member(params, "x-io-queue-depth", 256);
    /* mapram: page I/O worker threads, 0 = as many as the migration's kind wants */
    json_object_set_int_member(params, "x-page-io-threads", 0);
    /* mapram: "completed" means on the disk (fdatasync of every fd) */
    json_object_set_boolean_member(params, "x-fsync", false);
    json_object_set_boolean_member(params, "x-checksums", true);
    /* mapram: a mapped-ram restore maps the file's pages instead of reading them */
    json_object_set_boolean_member(params, "x-mapped-ram-shared", false);
    return params;
}

bool migrate_events(const MigrationOptions *o)
{
    return __atomic_load_n(&o->live_events, __ATOMIC_RELAXED);
}

static void params_publish(MigrationOptions *o);

MigrationOptions *migration_options_new(void)
{
    MigrationOptions *o = g_new0(MigrationOptions, 1);
    o->params = params_defaults();
    o->send_switchover_start = o->send_configuration = o->send_section_footer = true;
    params_publish(o);
    return o;
}

void migration_options_free(MigrationOptions *o)
{
    if (o) {
        json_object_unref(o->params);
        g_free(o);
    }
}

typedef struct IntRange {
    const char *name;      /* QMP name */
    const char *cname;     /* name in the message (QEMU prints C names) */
    gint64 min, max;
    const char *expects;   /* "Parameter '<cname>' expects " this */
} IntRange;

static const IntRange int_ranges[] = {
    { "multifd-channels", "multifd_channels", 1, 255,
      "a value between 1 and 255" },
    { "downtime-limit", "downtime_limit", 0, 2000000,
      "an integer in the range of 0 to (2000 * 1000) ms" },
    { "throttle-trigger-threshold", "throttle_trigger_threshold", 1, 100,
      "an integer in the range of 1 to 100" },
    { "cpu-throttle-initial", "cpu_throttle_initial", 1, 99,
      "an integer in the range of 1 to 99" },
    { "cpu-throttle-increment", "cpu_throttle_increment", 1, 99,
      "an integer in the range of 1 to 99" },
    { "multifd-zlib-level", "multifd_zlib_level", 0, 9,
      "a value between 0 and 9" },
    { "multifd-qatzip-level", "multifd_qatzip_level", 1, 9,
      "a value between 1 and 9" },
    { "multifd-zstd-level", "multifd_zstd_level", 0, 20,
      "a value between 0 and 20" },
    { "x-io-queue-depth", "x_io_queue_depth", 1, 256,
      "a value between 1 and 256" },
    { "x-page-io-threads", "x_page_io_threads", 0, 64,
      "a value between 0 and 64" },
};

/* Checked after max-cpu-throttle's row, in QEMU's order. */
static const IntRange late_ranges[] = {
    { "announce-initial", "announce_initial", 0, 100000, "a value between 0 and 100000" },
    { "announce-max", "announce_max", 0, 100000, "a value between 0 and 100000" },
    { "announce-rounds", "announce_rounds", 0, 1000, "a value between 0 and 1000" },
    { "announce-step", "announce_step", 1, 10000, "a value between 0 and 10000" },
    { "x-vcpu-dirty-limit-period", "x-vcpu-dirty-limit-period", 1, 1000,
      "a value between 1 and 1000" },
};

/* A parameter as it would be after the change: the new value, else the current one. */
static gint64 merged_int(const MigrationOptions *o, JsonObject *newp, const char *name)
{
    return json_object_get_int_member(json_object_has_member(newp, name) ? newp : o->params,
                                      name);
}

static bool check_ranges(const MigrationOptions *o, JsonObject *newp, const IntRange *rows,
                         size_t n, GError **errp)
{
    for (size_t i = 0; i < n; i++) {
        const IntRange *r = &rows[i];
        if (!json_object_has_member(newp, r->name)) {
            continue;           /* the current value passed this check when it was set */
        }
        gint64 v = json_object_get_int_member(newp, r->name);
        if (v < r->min || v > r->max) {
            error_setg(errp, "Parameter '%s' expects %s", r->cname, r->expects);
            return false;
        }
    }
    return true;
}

/*
 * As QEMU's migrate_params_check, on the parameters as they would be after
 * the change (so that max-cpu-throttle and cpu-throttle-initial are held
 * against each other whichever of them changes).
 */
static bool params_check(const MigrationOptions *o, JsonObject *newp, GError **errp)
{
    if (!check_ranges(o, newp, int_ranges, G_N_ELEMENTS(int_ranges), errp)) {
        return false;
    }
    if (json_object_has_member(newp, "xbzrle-cache-size")) {
        gint64 v = json_object_get_int_member(newp, "xbzrle-cache-size");
        if (v < 4096 || (v & (v - 1))) {
            error_setg(errp, "Parameter 'xbzrle_cache_size' expects a power of two no less "
                       "than the target page size");
            return false;
        }
    }
    gint64 max_throttle = merged_int(o, newp, "max-cpu-throttle");
    if (max_throttle < merged_int(o, newp, "cpu-throttle-initial") || max_throttle > 99) {
        error_setg(errp, "Parameter 'max_cpu_throttle' expects an integer in the range of "
                   "cpu_throttle_initial to 99");
        return false;
    }
    if (!check_ranges(o, newp, late_ranges, G_N_ELEMENTS(late_ranges), errp)) {
        return false;
    }
    if (json_object_has_member(newp, "vcpu-dirty-limit") &&
        json_object_get_int_member(newp, "vcpu-dirty-limit") < 1) {
        error_setg(errp, "Parameter 'vcpu_dirty_limit' must be greater than 1 MB/s");
        return false;
    }
    /* zero-copy-send (which mapram accepts and ignores) refuses compression and TLS, as in QEMU */
    if (o->caps[C(ZERO_COPY_SEND)] &&
        ((json_object_has_member(newp, "multifd-compression") &&
          strcmp(json_object_get_string_member(newp, "multifd-compression"), "none") != 0) ||
         (json_object_has_member(newp, "tls-creds") &&
          JSON_NODE_HOLDS_VALUE(json_object_get_member(newp, "tls-creds")) &&
          *json_object_get_string_member(newp, "tls-creds")))) {
        error_setg(errp, "Zero copy only available for non-compressed non-TLS multifd migration");
        return false;
    }
    /* QEMU checks the *current* mapped-ram/compression/TLS values here. */
    if (o->caps[C(MAPPED_RAM)] &&
        (strcmp(json_object_get_string_member(o->params, "multifd-compression"), "none") != 0 ||
         *json_object_get_string_member(o->params, "tls-creds"))) {
        error_setg(errp, "Mapped-ram only available for non-compressed non-TLS multifd migration");
        return false;
    }
    return true;
}

uint64_t migrate_max_bandwidth(const MigrationOptions *o)
{
    return __atomic_load_n(&o->live_max_bandwidth, __ATOMIC_RELAXED);
}

uint64_t migrate_downtime_limit(const MigrationOptions *o)
{
    return __atomic_load_n(&o->live_downtime_limit, __ATOMIC_RELAXED);
}

uint64_t migrate_avail_switchover_bandwidth(const MigrationOptions *o)
{
    return __atomic_load_n(&o->live_avail_switchover_bandwidth, __ATOMIC_RELAXED);
}

static void params_publish(MigrationOptions *o)
{
    __atomic_store_n(&o->live_max_bandwidth,
                     (guint64)json_object_get_int_member(o->params, "max-bandwidth"),
                     __ATOMIC_RELAXED);
    __atomic_store_n(&o->live_downtime_limit,
                     (guint64)json_object_get_int_member(o->params, "downtime-limit"),
                     __ATOMIC_RELAXED);
    __atomic_store_n(&o->live_avail_switchover_bandwidth,
                     (guint64)json_object_get_int_member(o->params,
                                                         "avail-switchover-bandwidth"),
                     __ATOMIC_RELAXED);
}

bool migration_options_set_parameters(MigrationOptions *o, JsonObject *args, GError **errp)
{
    JsonObject *params = o->params;

    if (!params_check(o, args, errp)) {
        return false;
    }
    GList *members = json_object_get_members(args);
    for (GList *l = members; l; l = l->next) {
        const char *name = l->data;
        JsonNode *v = json_object_get_member(args, name);
        if (JSON_NODE_HOLDS_NULL(v)) {
            /* StrOrNull null for tls-*: reset to "" */
            json_object_set_string_member(params, name, "");
        } else {
            json_object_set_member(params, name, json_node_copy(v));
        }
    }
    g_list_free(members);
    params_publish(o);
    return true;
}

JsonNode *migration_options_query_parameters(const MigrationOptions *o)
{
    JsonObject *params = o->params;
    JsonObject *copy = json_object_new();
    GList *members = json_object_get_members(params);
    for (GList *l = members; l; l = l->next) {
        json_object_set_member(copy, l->data,
                               json_node_copy(json_object_get_member(params, l->data)));
    }
    g_list_free(members);
    JsonNode *n = json_node_new(JSON_NODE_OBJECT);
    json_node_take_object(n, copy);
    return n;
}

static ZeroPageDetection zpd_from_name(const char *s)
{
    if (strcmp(s, "none") == 0) {
        return ZERO_PAGE_DETECTION_NONE;
    }
    if (strcmp(s, "legacy") == 0) {
        return ZERO_PAGE_DETECTION_LEGACY;
    }
    return ZERO_PAGE_DETECTION_MULTIFD;
}

MigrationConfig *migration_config_snapshot(const MigrationOptions *o)
{
    JsonObject *params = o->params;
    MigrationConfig *c = g_new0(MigrationConfig, 1);
    memcpy(c->caps, o->caps, sizeof(c->caps));
    c->multifd_channels = json_object_get_int_member(params, "multifd-channels");
    c->multifd_compression = g_strdup(json_object_get_string_member(params, "multifd-compression"));
    c->multifd_zlib_level = json_object_get_int_member(params, "multifd-zlib-level");
    c->multifd_zstd_level = json_object_get_int_member(params, "multifd-zstd-level");
    c->zero_page_detection = zpd_from_name(json_object_get_string_member(params, "zero-page-detection"));
    c->direct_io = json_object_get_boolean_member(params, "direct-io");
    c->tls_creds = g_strdup(json_object_get_string_member(params, "tls-creds"));
    c->mode = g_strdup(json_object_get_string_member(params, "mode"));
    c->send_switchover_start = o->send_switchover_start;
    c->send_configuration = o->send_configuration;
    c->send_section_footer = o->send_section_footer;
    c->io_queue_depth = json_object_get_int_member(params, "x-io-queue-depth");
    c->page_io_threads = json_object_get_int_member(params, "x-page-io-threads");
    c->fsync = json_object_get_boolean_member(params, "x-fsync");
    c->checksums = json_object_get_boolean_member(params, "x-checksums");
    c->shared = json_object_get_boolean_member(params, "x-mapped-ram-shared");
    return c;
}

void migration_config_free(MigrationConfig *c)
{
    if (c) {
        g_free(c->multifd_compression);
        g_free(c->tls_creds);
        g_free(c->mode);
        g_free(c);
    }
}

bool migrate_direct_io_effective(const MigrationConfig *c)
{
    return c->direct_io && c->caps[C(MAPPED_RAM)];
}

/* ------------------------------------------------------------------ */
/* -global migration.NAME=VALUE                                         */

/* QEMU's -global names of the capabilities (its migration_properties) */
static const struct {
    const char *prop;
    MigrationCapability cap;
} cap_props[] = {
    { "x-xbzrle", C(XBZRLE) }, { "x-rdma-pin-all", C(RDMA_PIN_ALL) },
    { "x-auto-converge", C(AUTO_CONVERGE) }, { "x-events", C(EVENTS) },
    { "x-postcopy-ram", C(POSTCOPY_RAM) }, { "x-postcopy-preempt", C(POSTCOPY_PREEMPT) },
    { "postcopy-blocktime", C(POSTCOPY_BLOCKTIME) }, { "x-colo", C(X_COLO) },
    { "x-release-ram", C(RELEASE_RAM) }, { "x-return-path", C(RETURN_PATH) },
    { "x-multifd", C(MULTIFD) }, { "x-background-snapshot", C(BACKGROUND_SNAPSHOT) },
    { "x-zero-copy-send", C(ZERO_COPY_SEND) }, { "x-switchover-ack", C(SWITCHOVER_ACK) },
    { "x-dirty-limit", C(DIRTY_LIMIT) }, { "mapped-ram", C(MAPPED_RAM) },
    { "x-ignore-shared", C(X_IGNORE_SHARED) },
};

/* QEMU's integer properties of the parameters mapram has: property, QMP name, width */
typedef struct UintProp {
    const char *prop;
    const char *param;
    bool uint8;            /* else uint64 */
} UintProp;

static const UintProp uint_props[] = {
    { "multifd-channels", "multifd-channels", true },
    { "multifd-zlib-level", "multifd-zlib-level", true },
    { "multifd-zstd-level", "multifd-zstd-level", true },
    { "x-downtime-limit", "downtime-limit", false },
};

/* QEMU's text for a -global it cannot apply (qdev_prop_set_globals) */
#define GLOBAL_FAIL "can't apply global migration.%s=%s: "

/* As QEMU's qapi_bool_parse */
static bool parse_bool(const char *name, const char *v, bool *out, GError **errp)
{
    if (!strcmp(v, "on") || !strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "y")) {
        *out = true;
    } else if (!strcmp(v, "off") || !strcmp(v, "false") || !strcmp(v, "no") ||
               !strcmp(v, "n")) {
        *out = false;
    } else {
        error_setg(errp, GLOBAL_FAIL "Parameter '%s' expects 'on' or 'off'", name, v, name);
        return false;
    }
    return true;
}

bool migration_options_set_global(MigrationOptions *o, const char *name, const char *value,
                                  GError **errp)
{
    bool b;
    if (!strcmp(name, "send-switchover-start")) {
        return parse_bool(name, value, &o->send_switchover_start, errp);
    }
    if (!strcmp(name, "send-configuration")) {
        return parse_bool(name, value, &o->send_configuration, errp);
    }
    if (!strcmp(name, "send-section-footer")) {
        return parse_bool(name, value, &o->send_section_footer, errp);
    }
    for (size_t i = 0; i < G_N_ELEMENTS(cap_props); i++) {
        if (!strcmp(name, cap_props[i].prop)) {
            if (!parse_bool(name, value, &b, errp)) {
                return false;
            }
            o->caps[cap_props[i].cap] = b;
            caps_publish(o);
            return true;
        }
    }
    /* QEMU's property types (size, uint8, uint64, enum), then its parameter check */
    if (!strcmp(name, "x-max-bandwidth")) {
        uint64_t v;
        int rc = value[0] == '-' ? -EINVAL : qemu_strtosz(value, NULL, &v);
        if (rc == -ERANGE) {
            error_setg(errp, GLOBAL_FAIL "Value '%s' is out of range "
                       "for parameter '%s'", name, value, value, name);
            return false;
        } else if (rc < 0) {
            error_setg(errp, GLOBAL_FAIL "Parameter '%s' expects a "
                       "non-negative number below 2^64" QEMU_SIZE_SUFFIX_HINT, name, value, name);
            return false;
        }
        json_object_set_int_member(o->params, "max-bandwidth", (gint64)v);
        params_publish(o);
        return true;
    }
    for (size_t i = 0; i < G_N_ELEMENTS(uint_props); i++) {
        const UintProp *u = &uint_props[i];
        if (strcmp(name, u->prop)) {
            continue;
        }
        /* as QEMU's qemu_strtou64: base 0, a leading '-' wraps (so "-1" is too big) */
        char *end;
        errno = 0;
        guint64 v = g_ascii_strtoull(value, &end, 0);
        if (!*value || *end || errno) {
            error_setg(errp, GLOBAL_FAIL "Parameter '%s' expects uint64", name, value, name);
            return false;
        }
        if (u->uint8 && v > G_MAXUINT8) {
            error_setg(errp, GLOBAL_FAIL "Parameter '%s' expects uint8_t", name, value, name);
            return false;
        }
        g_autoptr(JsonObject) one = json_object_new();
        json_object_set_int_member(one, u->param, (gint64)v);
        /* the range check, QEMU's migrate_params_check, has no "can't apply" prefix */
        if (!params_check(o, one, errp)) {
            return false;
        }
        json_object_set_int_member(o->params, u->param, (gint64)v);
        params_publish(o);
        return true;
    }
    if (!strcmp(name, "multifd-compression")) {
        if (strcmp(value, "none") && strcmp(value, "zlib") && strcmp(value, "zstd")) {
            error_setg(errp, GLOBAL_FAIL "Parameter '%s' does not accept value '%s'", name,
                       value, name, value);
            return false;
        }
        json_object_set_string_member(o->params, name, value);
        return true;
    }
    if (!strcmp(name, "zero-page-detection")) {
        if (strcmp(value, "none") && strcmp(value, "legacy") && strcmp(value, "multifd")) {
            error_setg(errp, GLOBAL_FAIL "Parameter '%s' does not "
                       "accept value '%s'", name, value, name, value);
            return false;
        }
        json_object_set_string_member(o->params, name, value);
        return true;
    }
    error_setg(errp, GLOBAL_FAIL "Property 'migration.%s' not found",
               name, value, name);
    return false;
}

/* ------------------------------------------------------------------ */
/* transport rules                                                      */

bool migration_check_transport(const MigrationConfig *c, TransportKind t, bool incoming,
                               GError **errp)
{
    RuleCtx r = { .caps = c->caps, .cfg = c, .transport = t, .incoming = incoming };
    return rules_check(PHASE_TRANSPORT, &r, errp);
}

bool migration_check_prepare(const MigrationConfig *c, TransportKind t, GError **errp)
{
    RuleCtx r = { .caps = c->caps, .cfg = c, .transport = t };
    return rules_check(PHASE_PREPARE, &r, errp);
}
