/*
 * The return path of a precopy migration to a peer (capability
 * return-path): the destination's messages back to the source on the
 * main connection, read by a thread of their own.
 *
 * The source opens it (OPEN_RETURN_PATH, PING 1) after the header; the
 * destination answers PONG 1, SWITCHOVER_ACK when switchover-ack is on,
 * and at the end of its load SHUT: 0 when it loaded everything and will
 * run the guest, 1 when it failed.  The source completes only on SHUT 0;
 * anything else (SHUT 1, the connection closed before SHUT, a malformed
 * message) fails the migration and the source runs on, as QEMU's does.
 *
 *   migration thread              "return-path" thread
 *   rp_reader_start()  ---------> reads messages until SHUT, EOF or error
 *   rp_reader_wait_switchover_ack()   (cond: the ack, or the end)
 *   rp_reader_finish()  (joins)
 *
 * A failed or cancelled save shuts the main socket down first, which ends
 * the reader (it reads on a dup of the same socket), then frees it.
 */
#ifndef MIGRATION_RETURN_PATH_H
#define MIGRATION_RETURN_PATH_H

#include "io/channel.h"
#include <glib.h>
#include <stdbool.h>

typedef struct RpReader RpReader;

/* Starts the reader on a dup of ioc's fd, which must be a socket. */
RpReader *rp_reader_start(IOChannel *ioc, GError **errp);
/*
 * Blocks until the destination acknowledged the switchover (true), or
 * the return path ended first or *cancel was set (false; errp set unless
 * cancelled).
 */
bool rp_reader_wait_switchover_ack(RpReader *r, const int *cancel, GError **errp);
/*
 * Blocks until the reader ended (true), or *cancel was set and grace_us
 * more passed without its end (false): the caller then shuts the socket
 * down, which ends it.
 */
bool rp_reader_wait_end(RpReader *r, const int *cancel, gint64 grace_us);
/* After the stream's EOF: waits for the reader's end; true on SHUT 0. */
bool rp_reader_finish(RpReader *r, GError **errp);
/*
 * The save failed (a write error, say): when the destination's SHUT
 * reports a failure within a second, that is the cause and replaces
 * *errp ("Sibling indicated error 1"); the caller has shut the socket's
 * writing side down, so a destination that was still loading ends too.
 */
void rp_reader_prefer_error(RpReader *r, GError **errp);
/* Joins the reader (the caller ended it: finish, or a socket shutdown) and frees it. */
void rp_reader_free(RpReader *r);

#endif
