/*
 * What the libFuzzer harnesses of tests/fuzz share.
 *
 * Every harness calls fuzz_init() from LLVMFuzzerInitialize: GLib's
 * criticals and warnings abort (so a g_return_if_fail() reached by an
 * input counts as a crash), and g_print/g_printerr output is dropped
 * unless FUZZ_VERBOSE is set, so error paths that report on stderr do not
 * slow the run down.
 *
 * Inputs that stand for a whole save file may come in the sparse form
 * written by tests/fuzz/make-seeds.py: the magic "MRSPARS1", a be64 file
 * size, then extents (be64 offset, be32 length, the bytes) until the end
 * of the input.  The file is that size and reads zero where no extent
 * lies, as a sparse mapped-ram file does: a 19 MiB save of a 2 MiB VM
 * (its page regions, and the device sections after them, at 1 MiB
 * boundaries) becomes a seed of a few KiB, page data cut.  Any other
 * input is the file itself.
 */
#ifndef TESTS_FUZZ_COMMON_H
#define TESTS_FUZZ_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#define FUZZ_SPARSE_MAGIC "MRSPARS1"
/* The largest file a sparse input may describe. */
#define FUZZ_SPARSE_MAX_SIZE (64ULL << 20)

void fuzz_init(void);

/*
 * The file the input stands for, in one memfd of the process (truncated
 * and rewritten at each call; the caller must not close it).  *path is a
 * name that opens it anew ("/proc/self/fd/N"), for the page channels.
 */
int fuzz_input_file(const uint8_t *data, size_t size, const char **path);

/* An open /dev/null for output nobody reads. */
FILE *fuzz_devnull(void);

#endif
