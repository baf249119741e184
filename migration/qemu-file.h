/*
 * QEMUFile: the buffered sequential big-endian writer/reader of the
 * migration stream over one IOChannel.
 *
 * Only metadata and device state go through the buffer.  Page data of the
 * sequential stream format is queued by reference (qemu_put_buffer_async:
 * an iovec pointing at guest memory, written by writev at the next flush);
 * mapped-ram page data never comes here at all.
 *
 * Reading: every get returns success and sets errp where it fails (a read
 * error of the channel, or "Unexpected end of stream at offset N" where
 * the data ends), so a parser stops at the first false; nothing is kept
 * in the file.  Peeks and qemu_file_at_eof() report no errors: a read
 * that fails under them is tried again, and reported, by the next get.
 *
 * Writing: puts cannot fail one by one.  The first write error latches in
 * the file, later puts are dropped, and qemu_fflush() / qemu_fclose() (or
 * qemu_file_propagate_error() between flushes) report it.
 *
 * Positions: qemu_file_tell() is the absolute channel offset of the next
 * byte (the start offset given at creation + bytes moved), used for
 * mapped-ram offsets and for the offsets that error messages name.
 *
 *   QEMUFile *f = qemu_file_new_output(ioc, start_offset);
 *   qemu_put_be32(f, QEVM_MAGIC); ...; qemu_fflush(f);
 *   ok = qemu_fclose(f, errp);
 *
 *   QEMUFile *f = qemu_file_new_input(ioc, start_offset);
 *   if (!qemu_get_be32(f, &magic, errp)) { ... }
 *   qemu_fclose(f, NULL);
 */
#ifndef MIGRATION_QEMU_FILE_H
#define MIGRATION_QEMU_FILE_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include "io/channel.h"

typedef struct QEMUFile QEMUFile;

/* Takes a reference on ioc.  start_offset: channel offset of the first byte. */
QEMUFile *qemu_file_new_output(IOChannel *ioc, off_t start_offset);
QEMUFile *qemu_file_new_input(IOChannel *ioc, off_t start_offset);
/* Flush (output), drop the channel reference, free; false + errp on the writer's error. */
bool qemu_fclose(QEMUFile *f, GError **errp);
IOChannel *qemu_file_get_ioc(QEMUFile *f);

void qemu_put_byte(QEMUFile *f, uint8_t v);
void qemu_put_be16(QEMUFile *f, uint16_t v);
void qemu_put_be32(QEMUFile *f, uint32_t v);
void qemu_put_be64(QEMUFile *f, uint64_t v);
void qemu_put_buffer(QEMUFile *f, const void *buf, size_t len);
/* Queue buf by reference; it must stay valid until the next flush. */
void qemu_put_buffer_async(QEMUFile *f, const void *buf, size_t len);
void qemu_put_counted_string(QEMUFile *f, const char *s);   /* u8 len + bytes */
/* Write out what is queued; false once the writer has an error. */
bool qemu_fflush(QEMUFile *f);

/*
 * Getters: true with the value, or false with errp set and *v untouched.
 * A failed get may have consumed part of what it asked for.
 */
bool qemu_get_byte(QEMUFile *f, uint8_t *v, GError **errp);
bool qemu_get_be16(QEMUFile *f, uint16_t *v, GError **errp);
bool qemu_get_be32(QEMUFile *f, uint32_t *v, GError **errp);
bool qemu_get_be64(QEMUFile *f, uint64_t *v, GError **errp);
/* Exactly len bytes into buf (whose contents are undefined on failure). */
bool qemu_get_buffer(QEMUFile *f, void *buf, size_t len, GError **errp);
/* u8 len + bytes into buf[256], NUL-terminated on success. */
bool qemu_get_counted_string(QEMUFile *f, char buf[256], GError **errp);
bool qemu_file_skip(QEMUFile *f, size_t len, GError **errp);
/* Peek byte at distance ahead (0 = next); -1 at the end (or a read error). */
int qemu_peek_byte(QEMUFile *f, size_t ahead);
/* Peek len bytes ahead (len + ahead <= 64 KiB); returns the bytes copied into buf. */
size_t qemu_peek_buffer(QEMUFile *f, void *buf, size_t len, size_t ahead);
/* True when the input is at a clean end (no more bytes, no read error). */
bool qemu_file_at_eof(QEMUFile *f);
/* True once the channel has reported its end (a failed read was short, not an error). */
bool qemu_file_input_ended(QEMUFile *f);

/* Flush and reposition (output) or drop the buffer and reposition (input). */
bool qemu_file_set_offset(QEMUFile *f, off_t off, GError **errp);
off_t qemu_file_tell(QEMUFile *f);
/* Bytes put or got through this QEMUFile so far. */
uint64_t qemu_file_transferred(QEMUFile *f);

/* The writer's latched error (output files only). */
bool qemu_file_has_error(QEMUFile *f);
bool qemu_file_propagate_error(QEMUFile *f, GError **errp);  /* false if errored (sets errp) */

#endif
