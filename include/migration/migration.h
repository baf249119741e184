/*
 * The migration subsystem as a host sees it: one Migration object per VM.
 *
 *   Migration *m = migration_new(&host_ops, host);    (host.h: the VM's side)
 *   migration_set_machine_type(m, "pc-q35-10.2");
 *   migration_register_vmstate(m, "serial", 0, &vmstate_serial, s);  (devices)
 *   migration_register_qmp(m);          optional: the QMP commands (monitor/)
 *   ...
 *   migration_start(m, "file:/var/tmp/vm.img", errp);    (or QMP "migrate")
 *   migration_query(m, &info);                           (or "query-migrate")
 *   migration_start_incoming(m, "file:/var/tmp/vm.img", errp);
 *   ...
 *   migration_free(m);                  cancels, joins every thread
 *
 * Register devices before the first migration starts.  Every call here is
 * made from one thread, the host's "main" thread (for mapram-vm, the GLib
 * main loop that also runs QMP); the migration runs in threads of its own
 * and reaches the VM only through the host operations.
 *
 * Incoming completion: after a successful load the incoming thread decides
 * the run state from "globalstate" (reference §5.6) and the host's
 * autostart.  With exit-on-error (the default) a failed load asks the host
 * to exit with status 1 (request_exit); without it the guest stays in
 * "inmigrate", never resumed half-loaded.
 */
#ifndef MIGRATION_MIGRATION_H
#define MIGRATION_MIGRATION_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>
#include "migration/host.h"
#include "migration/vmstate.h"

typedef struct Migration Migration;

/* ops and opaque stay the caller's and must outlive the Migration. */
Migration *migration_new(const MigrationHostOps *ops, void *opaque);
/* Cancels an outgoing migration, stops an incoming one, joins their threads. */
void migration_free(Migration *m);

/* Machine type name written to (and expected in) the configuration section. */
void migration_set_machine_type(Migration *m, const char *name);
/* A device's state, saved as a FULL section; register before the first migration. */
void migration_register_vmstate(Migration *m, const char *idstr, uint32_t instance_id,
                                const VMStateDescription *vmsd, void *opaque);
/* The QMP commands migrate, migrate-incoming, migrate_cancel, query-migrate, ... */
void migration_register_qmp(Migration *m);

/* Options, as migrate-set-capabilities / migrate-set-parameters / -global migration.* */
bool migration_set_capability(Migration *m, const char *name, bool on, GError **errp);
/* args: MigrationParameters members with QMP names, e.g. {"multifd-channels": 4} */
bool migration_set_parameters(Migration *m, JsonObject *args, GError **errp);
bool migration_set_global_property(Migration *m, const char *name, const char *value,
                                   GError **errp);
/*
 * After the -global settings: the capabilities they left, through QEMU's
 * capability rules (a VM refuses to start on an error).  incoming_vm: the
 * VM will wait for an incoming migration (-incoming).
 */
bool migration_check_capabilities(Migration *m, bool incoming_vm, GError **errp);

/* Outgoing: "migrate"; refusals come back here, later failures in the query. */
bool migration_start(Migration *m, const char *uri, GError **errp);
/* "migrate_cancel": the source keeps running as it was. */
void migration_cancel(Migration *m);
/*
 * "migrate-continue": state must be the save's status (QEMU's names);
 * a save waiting in "pre-switchover" (capability pause-before-switchover)
 * goes on to "device".
 */
bool migration_continue(Migration *m, const char *state, GError **errp);

/*
 * False (errp says why) while guest RAM has pages that will never arrive:
 * an on-demand load paused (postcopy-paused).  A vCPU or the host
 * touching such a page would wait for good, so cont and pmemsave ask first.
 */
bool migration_guest_ram_usable(Migration *m, GError **errp);

/* -incoming: "defer" or a URI; must come before the host starts running. */
bool migration_incoming_cmdline(Migration *m, const char *arg, GError **errp);
/* "migrate-incoming" (needs -incoming); exit_on_error as QMP's exit-on-error. */
bool migration_start_incoming(Migration *m, const char *uri, bool exit_on_error,
                              GError **errp);

/* A snapshot of the current (or last) migration, as query-migrate reports it. */
typedef struct MigrationInfo {
    const char *status;           /* "none", "setup", "active", "completed", ... */
    bool incoming;
    char *error_desc;             /* "failed" only, else NULL */
    int64_t total_time_ms;        /* outgoing */
    int64_t setup_time_ms;
    int64_t downtime_ms;          /* completed */
    int64_t expected_downtime_ms; /* active */
    bool has_ram;                 /* outgoing, past setup; on-demand destination */
    uint64_t transferred;         /* stream bytes + page data bytes */
    uint64_t remaining;
    uint64_t total;
    uint64_t duplicate;           /* zero pages */
    uint64_t normal;              /* pages with data */
    uint64_t normal_bytes;
    uint64_t dirty_sync_count;
    uint64_t multifd_bytes;       /* page data when multifd is on */
    uint64_t precopy_bytes;
    uint64_t downtime_bytes;
    uint64_t postcopy_requests;   /* on-demand destination: guest faults served */
    uint64_t postcopy_bytes;      /* on-demand destination: bytes loaded on demand */
    double mbps;
    uint64_t pages_per_second;    /* outgoing: pages sent (data and zero), last 100 ms window */
    uint64_t dirty_pages_rate;    /* outgoing, until completed: pages dirtied per second */
} MigrationInfo;

void migration_query(Migration *m, MigrationInfo *info);
void migration_info_clear(MigrationInfo *info);

#endif
