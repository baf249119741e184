/*
 * Interfaces between the files of migration/, and the state they share.
 *
 * One Migration per VM (migration.c) owns the option values, the handler
 * registry and the per-direction states.  A MigrationState describes one
 * outgoing migration (outgoing.c runs it in its own thread), a
 * MigrationIncomingState one incoming load (incoming.c); both outlive
 * their thread, so that query-migrate (qmp.c) can report a finished one.
 * Every field says who may touch it: immutable once the thread starts,
 * one thread only, under the state's lock, or atomic (Stat64 and the
 * int flags read with __atomic_load_n).
 */
#ifndef MIGRATION_INTERNAL_H
#define MIGRATION_INTERNAL_H

#include <glib.h>
#include <json-glib/json-glib.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include "io/channel.h"
#include "migration/migration.h"
#include "options.h"
#include "postcopy.h"
#include "ram.h"
#include "savevm.h"
#include "util/stat64.h"
#include "util/thread.h"

typedef enum {
    MIGRATION_STATUS_NONE,
    MIGRATION_STATUS_SETUP,
    MIGRATION_STATUS_CANCELLING,
    MIGRATION_STATUS_CANCELLED,
    MIGRATION_STATUS_ACTIVE,
    MIGRATION_STATUS_COMPLETED,
    MIGRATION_STATUS_FAILED,
    MIGRATION_STATUS_DEVICE,
    MIGRATION_STATUS_POSTCOPY_ACTIVE,     /* on demand: the guest runs, pages still missing */
    MIGRATION_STATUS_POSTCOPY_PAUSED,     /* on demand: a page could not be loaded */
    MIGRATION_STATUS_PRE_SWITCHOVER,      /* pause-before-switchover: waits for migrate-continue */
} MigrationStatus;

const char *migration_status_name(MigrationStatus s);

/* ---- transport.c (the table; each transport in its own file, see transport.h) ---- */
typedef struct MigAddr {
    TransportKind kind;
    char *filename;            /* file */
    uint64_t offset;
    char *sock_type;           /* socket: "unix", "inet", "fd" */
    char *host, *port, *path, *fdname;
    int family;                /* inet: AF_UNSPEC, or AF_INET / AF_INET6 (ipv4 / ipv6 flags) */
    bool v6only;               /* inet: an IPv6 socket takes no IPv4 (ipv6 alone asked for) */
    bool has_to;               /* inet, listening: ports from port to "to", the first free */
    uint16_t to;
    char *command;             /* exec: shell command line */
    bool cmdline;              /* from -incoming: no monitor, so fd: names are numbers */
} MigAddr;

void mig_addr_clear(MigAddr *a);
bool migration_parse_uri(const char *uri, MigAddr *out, GError **errp);
bool migration_parse_channels(JsonArray *channels, bool incoming, MigAddr *out, GError **errp);
/* Parse either form of the migrate / migrate-incoming arguments. */
bool migration_parse_address_args(JsonObject *args, bool incoming, MigAddr *out, GError **errp);
char *mig_addr_describe(const MigAddr *a);

/*
 * Outgoing main channel; *start = channel offset of the stream's first
 * byte.  m: whose host resolves fd: names (NULL: inherited numbers only).
 * stop: an atomic flag that abandons a socket connect still waiting on its
 * peer (ECANCELED); NULL: none.  The other transports do not wait on a peer.
 */
IOChannel *transport_open_outgoing(Migration *m, const MigAddr *a, off_t *start, const int *stop,
                                   GError **errp);
/* Incoming: file/exec/fd return a channel; sockets return NULL and *listener. */
IOChannel *transport_open_incoming(Migration *m, const MigAddr *a, off_t *start,
                                   IOListener **listener, GError **errp);
/* For query-migrate's socket-address on the destination. */
JsonArray *transport_listen_address(const MigAddr *a, const IOListener *l);

typedef struct MigrationState MigrationState;
typedef struct MigrationIncomingState MigrationIncomingState;
typedef struct GlobalState GlobalState;

struct Migration {
    /* Immutable after migration_new() */
    const MigrationHostOps *host;
    void *host_opaque;
    SaveVMRegistry *registry;     /* filled before the first migration, then read-only */
    RamState *ram;                /* the "ram" handlers */
    GlobalState *global_state;    /* the "globalstate" device */
    /* The host's main thread only (QMP and the C API run there) */
    char machine_type[256];
    MigrationOptions *opts;       /* but for the live values, read atomically */
    MigrationState *out;          /* the current or last outgoing migration, or NULL */
    MigrationIncomingState *in;   /* the incoming load, or NULL */
    bool incoming_cmdline;        /* -incoming was given */
    bool incoming_started;        /* migrate-incoming (or -incoming URI) was issued */
};

/* The VM waits for an incoming migration (-incoming, still "inmigrate"). */
bool migration_incoming_vm(Migration *m);
/* Events (MIGRATION, MIGRATION_PASS) through the host; takes data. */
void migration_event(Migration *m, const char *name, JsonObject *data);
/* Through the host's error_report, or to stderr. */
void migration_error_report(Migration *m, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
void migration_status_event(Migration *m, MigrationStatus s);
gint64 migration_now_ms(void);

/* ---- outgoing.c ---- */
/* Counters of one outgoing migration: Stat64, any thread reads them. */
typedef struct MigrationStats {
    Stat64 main_bytes;            /* stream bytes put on the main channel (published) */
    RamStats ram;                 /* pages, passes, remaining */
    Stat64 precopy_bytes;         /* set once at the end */
    Stat64 downtime_bytes;
} MigrationStats;

struct MigrationState {
    /* Immutable once the migration thread runs */
    Migration *mig;
    MigrationConfig *cfg;
    MigAddr addr;
    gint64 start_ms;
    /* The main thread only: it starts the thread and joins it before freeing */
    GThread *thread;
    /* The channel's shutdown (main thread, at cancel) against its close (migration thread) */
    QemuMutex ioc_lock;
    /* A reference until migration_state_free; set before the thread starts,
     * or for a socket by the thread under ioc_lock once connected (NULL before) */
    IOChannel *ioc;
    MultiFDSend *multifd;         /* ioc_lock: multifd over sockets, while the thread has it */
    /*
     * Each status change and its MIGRATION event, as one step: taken
     * around both (outside lock), so that events go out in the order the
     * status changed, as QEMU's big lock orders them.  Recursive: a
     * host's event callback may cancel.  A pthread mutex, which TSan
     * sees (GLib's GRecMutex is a futex; util/thread.h).
     */
    pthread_mutex_t event_lock;
    /* Protected by lock: what query-migrate reports besides the counters */
    QemuMutex lock;
    MigrationStatus status;
    bool ended;                   /* the thread decided how it ends: a cancel is too late */
    /*
     * return-path: the stream's end is sent and the thread waits for the
     * destination's SHUT; a cancel may still end that wait (as QEMU's)
     */
    bool awaiting_shut;
    bool continue_requested;      /* migrate-continue in pre-switchover */
    QemuCond pause_cond;          /* with lock: continue_requested or a cancel */
    char *error_desc;
    gint64 setup_ms, total_ms, downtime_ms;
    uint64_t expected_downtime_ms;
    double mbps;
    uint64_t pages_per_second;
    /* Atomics */
    int cancel;                   /* set by the main thread, polled by the migration thread */
    MigrationStats stats;
};

/*
 * migrate is allowed now: QEMU's migrate_prepare up to its option checks
 * (@resume refused, no migration running, the guest is not an incoming
 * one, nor paused by a completed one).
 */
bool migration_outgoing_allowed(Migration *m, bool resume, GError **errp);
/* migrate-continue: the save's status must be state; in pre-switchover it goes on. */
bool migration_outgoing_continue(MigrationState *s, const char *state, GError **errp);
/*
 * Takes addr.  QEMU's order after the address was parsed: the transport's
 * rules, then migration_outgoing_allowed, then the prepare rules.
 */
bool migration_outgoing_start(Migration *m, MigAddr *addr, bool resume, GError **errp);
void migration_outgoing_cancel(MigrationState *s);
void migration_outgoing_stop_peer(MigrationState *s);
/* Joins the thread; NULL is fine. */
void migration_state_free(MigrationState *s);
bool migration_is_running(Migration *m);          /* setup/active/device/cancelling */
MigrationStatus migration_state_status(MigrationState *s);
void migration_outgoing_query(MigrationState *s, MigrationInfo *info);

/* ---- incoming.c ---- */
struct MigrationIncomingState {
    /* Immutable once started */
    MigrationConfig *cfg;
    bool on_demand;               /* mapped-ram + postcopy-ram: postcopy.h */
    MigAddr addr;
    gint64 start_ms;
    bool exit_on_error;
    /* The main thread only */
    GThread *thread;
    /* Protected by lock */
    QemuMutex lock;
    Migration *mig;               /* cleared when the Migration lets go of this state */
    MigrationStatus status;
    char *error_desc;             /* set by the thread when the load failed */
    gint64 total_ms;
    IOListener *listener;         /* sockets: until a peer is accepted, else NULL */
    IOChannel *ioc;               /* the opened or accepted channel */
    /*
     * The incoming thread while it runs, then the main thread (after the
     * join): the on-demand load, kept after a failure once the guest ran
     * so that a guest waiting for a page keeps waiting (never a wrong
     * page); freed by the incoming thread at a failure before it ran
     */
    PostcopyLoad *postcopy;
    MultiFDRecv *multifd;         /* multifd over sockets, while the thread has it */
    /* Atomics */
    int stop;                     /* the Migration is going away: give up */
    int refs;                     /* the Migration's, and a pending end's */
    PostcopyStats pstats;         /* on demand: written by its threads, read by QMP */
};

/* Guest pages are still to be loaded on demand (postcopy-active or -paused). */
bool migration_incoming_pages_missing(MigrationIncomingState *s);
/* False (errp: the load's error) once an on-demand load paused. */
bool migration_incoming_check_paused(MigrationIncomingState *s, GError **errp);
/* migrate-incoming is allowed now (-incoming given, not yet started). */
bool migration_incoming_allowed(Migration *m, GError **errp);
/*
 * An incoming migration listens or loads.  QEMU ties "Multifd must be set
 * before incoming starts" to its incoming transport's lifetime, so a VM
 * that has loaded may change multifd before it migrates on.
 */
bool migration_incoming_active(Migration *m);
bool migration_incoming_begin(Migration *m, MigAddr *addr, bool exit_on_error,
                              GError **errp);  /* takes addr */
void migration_incoming_free(MigrationIncomingState *s);   /* stops and joins */
/*
 * The load itself, as the incoming thread runs it on its channel: RAM
 * configured from cfg (path: the file the page channels open, for
 * mapped-ram), the configuration section checked against m and cfg, every
 * section into m's handlers.  tests/fuzz calls it on in-memory files.
 */
bool migration_incoming_load(Migration *m, const MigrationConfig *cfg, QEMUFile *f,
                             const char *path, GError **errp);
void migration_incoming_query(MigrationIncomingState *s, MigrationInfo *info);
/* socket-address for query-migrate, or NULL when not listening */
JsonArray *migration_incoming_listen_address(MigrationIncomingState *s);

/* ---- global_state.c ---- */
/* Registers the "globalstate" device in r. */
GlobalState *global_state_new(SaveVMRegistry *r, const MigrationHostOps *host,
                              void *host_opaque);
void global_state_free(GlobalState *gs);
void global_state_store(GlobalState *gs, RunState rs);   /* the run state to send */
/* After a load: the received run state name, or NULL if none was received. */
const char *global_state_received(GlobalState *gs);
void global_state_reset(GlobalState *gs);

#endif
