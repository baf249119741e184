/*
 * An independent reader of QEVM / mapped-ram bytes for the layout tests.
 *
 * The layout tests must fail when the project's codec drifts from the
 * reference (docs: reference §1-§3), so they do not use migration/: this
 * is a second, deliberately naive implementation written from the byte
 * tables.  Every read asserts it stays inside the buffer and names the
 * offset on failure.
 *
 *   ByteReader r = { .buf = data, .len = len, .pos = start };
 *   check_file_header(&r, "pc-q35-10.2", mapped_ram);
 *   uint32_t sid = check_ram_start_header(&r);
 *   ...
 *   check_stream_tail(&r, data, len, &devices);
 *
 * The VM side (start mapram-vm, save it to a file, read guest memory) is
 * here too, so both process tests drive the VM the same way.
 */
#ifndef TESTS_UNIT_MIGRATION_STREAM_CHECK_H
#define TESTS_UNIT_MIGRATION_STREAM_CHECK_H

#include <glib.h>
#include <json-glib/json-glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "libqtest.h"

#define TEST_MACHINE   "pc-q35-10.2"
#define TEST_PAGE_SIZE 4096u
#define MiB_           (1024ull * 1024)

typedef struct ByteReader {
    const uint8_t *buf;     /* not owned */
    size_t len;
    size_t pos;
} ByteReader;

uint8_t br_u8(ByteReader *r);
uint16_t br_be16(ByteReader *r);
uint32_t br_be32(ByteReader *r);
uint64_t br_be64(ByteReader *r);
/* u8 length + bytes, as a new NUL-terminated string (g_free). */
char *br_counted(ByteReader *r);
void br_skip(ByteReader *r, size_t n);
/* The next byte without consuming it; -1 at the end of the buffer. */
int br_peek(const ByteReader *r);
/* Assert the next n bytes equal want; what names them in the failure. */
void br_expect(ByteReader *r, const void *want, size_t n, const char *what);
uint32_t be32_at(const uint8_t *p);
uint64_t be64_at(const uint8_t *p);

/* "QEVM", version 3 and the configuration section (reference §1.3). */
void check_file_header(ByteReader *r, const char *machine, bool mapped_ram);
/* 01 sid 03 "ram" be32 0 be32 4; returns sid. */
uint32_t check_ram_start_header(ByteReader *r);
/* 7e + be32 sid. */
void check_footer(ByteReader *r, uint32_t sid);

/*
 * From the 08 00 0b 00 00 command to the end of the file: the
 * switchover-start command must sit right before the END section at
 * end_offset, the FULL sections must be exactly as long as the vmdesc
 * says, then EOF, 06, be32 len and the JSON up to the last byte.
 * Returns the vmdesc root object (unref) and the FULL section names in
 * *devices (char *, stream order; g_ptr_array_unref).
 */
JsonObject *check_stream_tail(ByteReader *r, GPtrArray **devices);
/* Position of the vmdesc's 0x06 byte, found from the end of the file. */
size_t find_vmdesc(const uint8_t *buf, size_t len);

/* --- the VM ---------------------------------------------------------- */

/*
 * mapram-vm with 64 MiB of main RAM (70 % zero pages), fully filled (the
 * fill is deterministic), then stopped.  @dir holds pmemsave files.
 */
QTestState *vm_start_stopped(const char *dir);
/* migrate to @uri (with mapped-ram when asked) and wait for completed. */
void vm_save(QTestState *s, const char *uri, bool mapped_ram);
/* Guest-physical GPA of a block of mapram-vm -m 64M; fails on unknown. */
uint64_t vm_block_gpa(const char *idstr);
/* Guest memory of a block through pmemsave (g_free). */
uint8_t *vm_read_block(QTestState *s, const char *dir, const char *idstr,
                       uint64_t length);

/* The mapram tool's path and a run of it: stdout (g_free), exit status. */
char *run_mapram_tool(const char *const *argv, int *status);

#endif
