/*
 * Registration entry points of the migration test files, and the small
 * mapped-ram file reader the bad-file and size tests share.
 */
#ifndef TESTS_QTEST_MIGRATION_TESTS_H
#define TESTS_QTEST_MIGRATION_TESTS_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

void migration_test_add_file(void);
void migration_test_add_precopy(void);
void migration_test_add_misc(void);
void migration_test_add_compat(void);
void migration_test_add_badfile(void);
void migration_test_add_fault(void);
void migration_test_add_size(void);
void migration_test_add_durable(void);
void migration_test_add_kill(void);
void migration_test_add_checksums(void);
void migration_test_add_soak(void);
void migration_test_add_ondemand(void);
void migration_test_add_multifd(void);
void migration_test_add_shared(void);
void migration_test_add_fill_restore(void);
void migration_test_add_netns(void);

/* One RAM block of a mapped-ram file (reference §3.2). */
typedef struct MRBlock {
    char idstr[256];
    uint64_t used_length;
    uint64_t hdr_off;        /* absolute file offset of the MappedRamHeader */
    uint32_t version;
    uint64_t page_size;
    uint64_t bitmap_offset;
    uint64_t pages_offset;
} MRBlock;

/* Is page @p of @b set in the bitmap of @file (a mapped-ram file read whole)? */
static inline bool mr_page_set(const uint8_t *file, const MRBlock *b, uint64_t p)
{
    return file[b->bitmap_offset + p / 8] >> (p % 8) & 1;
}

/*
 * Walk the stream at @base of @path up to the end of the "ram" START
 * section's block list.  Returns the blocks (GArray of MRBlock) or fails
 * the test with the offset where the layout was unexpected.
 */
GArray *mr_file_blocks(const char *path, uint64_t base);

/* Overwrite @len bytes at @off of @path. */
void patch_file(const char *path, uint64_t off, const void *buf, size_t len);
void patch_be32(const char *path, uint64_t off, uint32_t v);
void patch_be64(const char *path, uint64_t off, uint64_t v);

#endif
