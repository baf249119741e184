/*
 * libFuzzer harness: the stream walker (migration/savevm.c) as `mapram
 * info` and `mapram verify` drive it, with the RAM decoder and the
 * mapped-ram header and bitmap reads behind it (tools/info.c), on a whole
 * file held in memory.  What verify reports and both printed forms are
 * produced for every input that walks to its end.
 *
 * Input: a save file, or its sparse form (fuzz-common.h).
 * Corpus: tests/fuzz/corpus/fuzz-stream/ (tests/fuzz/make-seeds.py).
 */
#include <fcntl.h>
#include <unistd.h>

#include "fuzz-common.h"
#include "io/channel.h"
#include "migration/qemu-file.h"
#include "mapram-tool.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_init();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path;
    GError *err = NULL;

    fuzz_input_file(data, size, &path);
    IOChannel *ioc = io_channel_file_open(path, O_RDONLY, 0, &err);
    g_assert_no_error(err);
    QEMUFile *f = qemu_file_new_input(ioc, 0);
    Report *r = report_new(true);

    if (report_analyse(r, f, &err)) {
        report_verify(r);
        report_print_text(r, fuzz_devnull(), "fuzz");
        report_print_json(r, fuzz_devnull());
    } else {
        g_assert(err && err->message[0]);
        g_printerr("walk: %s\n", err->message);   /* shown with FUZZ_VERBOSE=1 */
        g_clear_error(&err);
    }
    report_free(r);
    qemu_fclose(f, NULL);
    io_channel_unref(ioc);
    return 0;
}
