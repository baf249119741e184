/*
 * Interfaces between migration.c and the rest of migration/.
 */
#ifndef MIGRATION_INTERNAL_H
#define MIGRATION_INTERNAL_H

#include <glib.h>
#include <json-glib/json-glib.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include "io/channel.h"
#include "options.h"

bool migration_is_running(void);          /* outgoing in setup/active/device/cancelling */
bool migration_incoming_started(void);    /* migrate-incoming (or -incoming URI) issued */

/* ---- transport.c ---- */
typedef struct MigAddr {
    TransportKind kind;
    char *filename;            /* file */
    uint64_t offset;
    char *sock_type;           /* socket: "unix", "inet", "fd" */
    char *host, *port, *path, *fdname;
    char *command;             /* exec: shell command line */
} MigAddr;

void mig_addr_clear(MigAddr *a);
bool migration_parse_uri(const char *uri, MigAddr *out, GError **errp);
bool migration_parse_channels(JsonArray *channels, bool incoming, MigAddr *out, GError **errp);
/* Parse either form of the migrate / migrate-incoming arguments. */
bool migration_parse_address_args(JsonObject *args, bool incoming, MigAddr *out, GError **errp);
char *mig_addr_describe(const MigAddr *a);

/* Outgoing main channel; *start = channel offset of the stream's first byte. */
IOChannel *transport_open_outgoing(const MigAddr *a, off_t *start, GError **errp);
/* Incoming: file/exec/fd return a channel; sockets return NULL and *listen_fd. */
IOChannel *transport_open_incoming(const MigAddr *a, off_t *start, int *listen_fd,
                                   GError **errp);
/* For query-migrate's socket-address on the destination. */
JsonArray *transport_listen_address(const MigAddr *a, int listen_fd);

/* ---- global_state.c ---- */
void global_state_register(void);
void global_state_store(void);                 /* remember the runstate to send */
/* After load: the received runstate name, or NULL if none was received. */
const char *global_state_received(void);
void global_state_reset_received(void);

#endif
