/*
 * Migration capabilities and parameters (QEMU's names, defaults and
 * texts), and every compatibility rule as one table.
 *
 * The live values (MigrationOptions, one per Migration) are owned by the
 * thread that runs QMP (the main thread).  A migration takes an immutable
 * copy, MigrationConfig, when it starts; its threads only ever read that
 * copy, and the values QEMU applies live (max-bandwidth, downtime-limit,
 * avail-switchover-bandwidth) through their atomic accessors below.
 */
#ifndef MIGRATION_OPTIONS_H
#define MIGRATION_OPTIONS_H

#include <glib.h>
#include <json-glib/json-glib.h>
#include <stdbool.h>
#include <stdint.h>
#include "ram.h"

typedef enum {
    MIGRATION_CAPABILITY_XBZRLE,
    MIGRATION_CAPABILITY_RDMA_PIN_ALL,
    MIGRATION_CAPABILITY_AUTO_CONVERGE,
    MIGRATION_CAPABILITY_ZERO_BLOCKS,
    MIGRATION_CAPABILITY_EVENTS,
    MIGRATION_CAPABILITY_POSTCOPY_RAM,
    MIGRATION_CAPABILITY_X_COLO,
    MIGRATION_CAPABILITY_RELEASE_RAM,
    MIGRATION_CAPABILITY_RETURN_PATH,
    MIGRATION_CAPABILITY_PAUSE_BEFORE_SWITCHOVER,
    MIGRATION_CAPABILITY_MULTIFD,
    MIGRATION_CAPABILITY_DIRTY_BITMAPS,
    MIGRATION_CAPABILITY_POSTCOPY_BLOCKTIME,
    MIGRATION_CAPABILITY_LATE_BLOCK_ACTIVATE,
    MIGRATION_CAPABILITY_X_IGNORE_SHARED,
    MIGRATION_CAPABILITY_VALIDATE_UUID,
    MIGRATION_CAPABILITY_BACKGROUND_SNAPSHOT,
    MIGRATION_CAPABILITY_ZERO_COPY_SEND,
    MIGRATION_CAPABILITY_POSTCOPY_PREEMPT,
    MIGRATION_CAPABILITY_SWITCHOVER_ACK,
    MIGRATION_CAPABILITY_DIRTY_LIMIT,
    MIGRATION_CAPABILITY_MAPPED_RAM,
    MIGRATION_CAPABILITY__MAX
} MigrationCapability;

const char *migration_capability_name(MigrationCapability c);
int migration_capability_from_name(const char *name);    /* -1 if unknown */

/* Immutable snapshot taken at migrate / migrate-incoming. */
typedef struct MigrationConfig {
    bool caps[MIGRATION_CAPABILITY__MAX];
    unsigned multifd_channels;
    char *multifd_compression;
    int multifd_zlib_level;
    int multifd_zstd_level;
    ZeroPageDetection zero_page_detection;
    bool direct_io;
    char *tls_creds;
    char *mode;
    /* -global migration.* properties */
    bool send_switchover_start;
    bool send_configuration;
    bool send_section_footer;
    /* mapram extension: async page I/O queue depth per channel */
    unsigned io_queue_depth;
    /* mapram extension x-page-io-threads: page channel workers, 0 = automatic */
    unsigned page_io_threads;
    /* mapram extension x-fsync: every fd fdatasync()ed before "completed" */
    bool fsync;
    /* mapram extension x-checksums: mapped-ram checksum table written and checked */
    bool checksums;
    /* mapram extension x-mapped-ram-shared: a restore maps the file privately (ram.h) */
    bool shared;
} MigrationConfig;

typedef struct MigrationOptions MigrationOptions;

MigrationOptions *migration_options_new(void);     /* QEMU's defaults */
void migration_options_free(MigrationOptions *o);
MigrationConfig *migration_config_snapshot(const MigrationOptions *o);
void migration_config_free(MigrationConfig *c);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(MigrationConfig, migration_config_free)

/* Applied to a running migration: any thread. */
uint64_t migrate_max_bandwidth(const MigrationOptions *o);
uint64_t migrate_downtime_limit(const MigrationOptions *o);
/* Bytes/s the switchover may count on (0: the measured bandwidth), as QEMU >= 8.2. */
uint64_t migrate_avail_switchover_bandwidth(const MigrationOptions *o);
/* The events capability now (any thread): QEMU sends MIGRATION events as it is at each change. */
bool migrate_events(const MigrationOptions *o);
/* direct-io takes effect with mapped-ram (mapram: also without multifd). */
bool migrate_direct_io_effective(const MigrationConfig *c);

/*
 * The bodies of migrate-set-capabilities / migrate-set-parameters and
 * their queries (the QMP side refuses a change while a migration runs).
 * incoming_active: an incoming migration is listening or loading;
 * incoming_vm: the VM waits for an incoming migration (mapped-ram with
 * postcopy-ram is then an on-demand restore, not refused).  Rules
 * depend on both.
 */
bool migration_options_set_capabilities(MigrationOptions *o, JsonArray *list,
                                        bool incoming_active, bool incoming_vm,
                                        GError **errp);
JsonNode *migration_options_query_capabilities(const MigrationOptions *o);
bool migration_options_set_parameters(MigrationOptions *o, JsonObject *args, GError **errp);
JsonNode *migration_options_query_parameters(const MigrationOptions *o);
/* -global migration.NAME=VALUE */
bool migration_options_set_global(MigrationOptions *o, const char *name, const char *value,
                                  GError **errp);
/*
 * The capabilities the -global settings left, through the capability rules
 * (incoming_vm: the VM was started with -incoming), as QEMU checks them
 * before it starts.
 */
bool migration_options_check_globals(MigrationOptions *o, bool incoming_vm, GError **errp);

/* Transport-dependent checks (reference §5.4), in QEMU's order. */
typedef enum {
    TRANSPORT_FILE, TRANSPORT_SOCKET, TRANSPORT_EXEC, TRANSPORT_FD, TRANSPORT_RDMA,
} TransportKind;
/* incoming: for migrate-incoming (the on-demand rows apply to it only) */
bool migration_check_transport(const MigrationConfig *c, TransportKind t, bool incoming,
                               GError **errp);
/* postcopy-ram on a destination that would load a stream, not a mapped-ram file */
#define MIGRATION_POSTCOPY_NEEDS_MAPPED_RAM \
    "Postcopy on the destination requires mapped-ram: mapram loads on demand only from " \
    "a mapped-ram file"
/* return-path on a save: refused by migrate's rules for file: and exec:, and for an fd: not a socket */
#define MIGRATION_RETURN_PATH_NEEDS_SOCKET \
    "Capability 'return-path' requires a socket to the destination (tcp:, unix:, vsock:, " \
    "or fd: on a socket)"
/*
 * x-fsync on a transport with no file behind it: refused by migrate's
 * rules for sockets and exec:, and once opened for an fd: that is not a
 * file (a load ignores x-fsync).
 */
#define MIGRATION_FSYNC_NEEDS_FILE \
    "Parameter 'x-fsync' requires a transport that writes to a file (file:, or fd: on a file)"
/* x-mapped-ram-shared on migrate-incoming: what it cannot go with */
#define MIGRATION_SHARED_NEEDS_MAPPED_RAM \
    "Parameter 'x-mapped-ram-shared' requires capability 'mapped-ram'"
#define MIGRATION_SHARED_NOT_DIO \
    "Parameter 'x-mapped-ram-shared' cannot be used with 'direct-io': the file's pages are " \
    "mapped, not read"
#define MIGRATION_SHARED_NOT_POSTCOPY \
    "Parameter 'x-mapped-ram-shared' cannot be used with capability 'postcopy-ram': " \
    "choose one way to restore"
/* migrate on a destination whose guest RAM is still loading on demand */
/* cont, pmemsave after an on-demand load paused; the load's error follows */
#define MIGRATION_LOAD_PAUSED \
    "Guest RAM is missing pages that the paused on-demand load will not bring: "
#define MIGRATION_PAGES_MISSING \
    "Guest RAM is still being loaded on demand from the incoming migration; " \
    "migrate again once it has completed"
/* migrate only: TLS / compression with mapped-ram etc. */
bool migration_check_prepare(const MigrationConfig *c, TransportKind t, GError **errp);

#endif
