/*
 * Migration transports: one file per transport (file.c, socket.c, exec.c,
 * fd.c), each defining one MigTransport row.  transport.c holds the table
 * and the entry points of migration-internal.h: it finds the row for a
 * URI's scheme or a "channels" address's "transport", and for a parsed
 * address's kind, and calls it; it never switches on the kind.
 *
 *   migration_parse_uri("unix:/x", &a, errp)   -> socket row's parse_uri
 *   transport_open_outgoing(m, &a, &start, stop, errp)  -> row of a.kind
 *
 * Adding a transport: a new file with its row, its meson line, one line
 * in the table in transport.c, and its test.
 */
#ifndef MIGRATION_TRANSPORT_H
#define MIGRATION_TRANSPORT_H

#include "migration-internal.h"

typedef struct MigTransport {
    TransportKind kind;
    /* URI schemes this row parses ("unix:", "tcp:"), NULL-terminated. */
    const char *const *uri_schemes;
    /* Its "transport" value in a "channels" address, or NULL if none. */
    const char *channel_name;
    /* scheme: the one that matched; spec: the rest of the URI.  *out is
     * zeroed; it may be partly filled on failure (mig_addr_clear frees it). */
    bool (*parse_uri)(const char *scheme, const char *spec, MigAddr *out, GError **errp);
    bool (*parse_channel)(JsonObject *addr, MigAddr *out, GError **errp);
    /* A URI that names the address, for messages and query-migrate. */
    char *(*describe)(const MigAddr *a);
    /* As transport_open_outgoing / transport_open_incoming (m may be NULL:
     * no host to ask for named fds); *start and *listener come in as 0
     * and NULL. */
    IOChannel *(*open_outgoing)(Migration *m, const MigAddr *a, off_t *start, const int *stop,
                                GError **errp);
    IOChannel *(*open_incoming)(Migration *m, const MigAddr *a, off_t *start, IOListener **listener,
                                GError **errp);
    /* Optional: where an incoming listener is, for query-migrate. */
    JsonArray *(*listen_address)(const MigAddr *a, const IOListener *l);
} MigTransport;

extern const MigTransport mig_transport_file;     /* file.c */

/*
 * A file: address naming a FIFO (by path: an fd of /dev/fdset/N is open
 * already), whose blocking open would wait for the other end with the
 * monitor held.  A load opens it without waiting and the incoming thread
 * waits for the writer (file_wait_for_writer), so the monitor stays free
 * and quit ends the wait; a save into it is refused at once (file.c).
 */
bool file_addr_is_fifo(const MigAddr *a);
/* Wait, unless *stop is set, until a FIFO opened by a load has a writer. */
bool file_wait_for_writer(IOChannel *ioc, const char *path, const int *stop, GError **errp);
extern const MigTransport mig_transport_socket;   /* socket.c: unix:, tcp: */
extern const MigTransport mig_transport_exec;     /* exec.c */
extern const MigTransport mig_transport_fd;       /* fd.c */

#endif
