/*
 * QEMUFile: the buffered sequential big-endian writer/reader of the
 * migration stream over one IOChannel, with a latched error.
 *
 * Only metadata and device state go through the buffer.  Page data of the
 * sequential stream format is queued by reference (qemu_put_buffer_async:
 * an iovec pointing at guest memory, written by writev at the next flush);
 * mapped-ram page data never comes here at all.
 *
 * The first error latches: later puts are dropped, later gets return
 * zeros, and qemu_file_get_error() reports the first failure.  Positions:
 * qemu_file_tell() is the absolute channel offset of the next byte
 * (the start offset given at creation + bytes moved), used for mapped-ram
 * offsets and for error messages that name a byte offset.
 *
 *   QEMUFile *f = qemu_file_new_output(ioc, start_offset);
 *   qemu_put_be32(f, QEVM_MAGIC); ...; qemu_fflush(f);
 *   ok = qemu_fclose(f, errp);
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
/* Flush (output), drop the channel reference, free; false + errp on any latched error. */
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
bool qemu_fflush(QEMUFile *f);

uint8_t qemu_get_byte(QEMUFile *f);
uint16_t qemu_get_be16(QEMUFile *f);
uint32_t qemu_get_be32(QEMUFile *f);
uint64_t qemu_get_be64(QEMUFile *f);
/* Reads exactly len bytes (short = latched error "Unexpected end of stream at offset N"). */
bool qemu_get_buffer(QEMUFile *f, void *buf, size_t len);
/* u8 len + bytes into buf[256], NUL-terminated. */
bool qemu_get_counted_string(QEMUFile *f, char buf[256]);
/* Peek byte at distance ahead (0 = next); -1 at EOF. */
int qemu_peek_byte(QEMUFile *f, size_t ahead);
/* Peek len bytes ahead (len <= 4096); returns bytes available copied into buf. */
size_t qemu_peek_buffer(QEMUFile *f, void *buf, size_t len, size_t ahead);
bool qemu_file_skip(QEMUFile *f, size_t len);
/* True when the input is at a clean end (no more bytes). */
bool qemu_file_at_eof(QEMUFile *f);

/* Flush and reposition (output) or drop the buffer and reposition (input). */
bool qemu_file_set_offset(QEMUFile *f, off_t off, GError **errp);
off_t qemu_file_tell(QEMUFile *f);
/* Bytes put or got through this QEMUFile so far. */
uint64_t qemu_file_transferred(QEMUFile *f);

/* Latched error */
bool qemu_file_has_error(QEMUFile *f);
/* Copy of the first error (caller frees) or NULL. */
GError *qemu_file_get_error_copy(QEMUFile *f);
bool qemu_file_propagate_error(QEMUFile *f, GError **errp);  /* false if errored (sets errp) */
void qemu_file_set_error(QEMUFile *f, GError *err);          /* takes ownership; first wins */
void qemu_file_set_error_msg(QEMUFile *f, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

#endif
