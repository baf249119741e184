/*
 * libFuzzer harness: a whole file loaded through the VM's real load path
 * (migration_incoming_load(), what the incoming thread runs: the
 * configuration checked against this VM, the "ram" section decoded into
 * guest memory, mapped-ram headers, bitmaps and regions validated and
 * their set runs read by the page channels, then every device section)
 * into a small VM: the fake host of the unit tests with the blocks of
 * `mapram-vm -m 2M` (pc.ram 2 MiB, vga.vram 16 MiB, pc.bios 256 KiB) and
 * the reference VM's devices.  The file is a memfd: the main channel and
 * every page channel open it by its /proc/self/fd name, as they would
 * open the saved file.
 *
 * The load runs with x-io-queue-depth 4 and x-page-io-threads 2 (see
 * LLVMFuzzerInitialize): the same code as the defaults, a fraction of
 * the cost per input.
 *
 * The destination's mapped-ram capability follows the file's own
 * configuration section, so that inputs get past the capability check
 * (a mismatch is one rule of options.c, not worth the fuzzer's time).
 *
 * Input: a save file, or its sparse form (fuzz-common.h).
 * Corpus: tests/fuzz/corpus/fuzz-ram-load/ (tests/fuzz/make-seeds.py).
 */
#include <fcntl.h>
#include <string.h>

#include "fake-host.h"
#include "fuzz-common.h"
#include "fuzz-vm.h"
#include "migration/migration-internal.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static FakeHost *host;
static Migration *mig;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_init();
    fuzz_vm_init(true);
    host = fake_host_new(RUN_STATE_INMIGRATE);
    fake_host_add_block(host, "pc.ram", 2 << 20);
    fake_host_add_block(host, "vga.vram", 16 << 20);
    fake_host_add_block(host, "pc.bios", 256 << 10);
    mig = fake_host_migration_new(host);
    migration_set_machine_type(mig, "mapram-10.2");
    /*
     * Four requests in flight per page channel worker, not 256: each
     * engine's slots (4 KiB each) are allocated per load, and 4 MiB of
     * them per input made the harness run at 11 inputs a second.  Two
     * page workers, not a load's default four: under ASan a thread's
     * start and exit cost about half a millisecond, more than the rest of
     * a typical input; two still share the one page fd and take jobs in
     * turn, so every path of the page channels is reached.
     */
    g_autoptr(JsonObject) params = json_object_new();
    json_object_set_int_member(params, "x-io-queue-depth", 4);
    json_object_set_int_member(params, "x-page-io-threads", 2);
    GError *err = NULL;
    if (!migration_set_parameters(mig, params, &err)) {
        g_error("fuzz-ram-load parameters: %s", err->message);
    }
    fuzz_vm_register_devices(mig);
    return 0;
}

/*
 * Does the file's configuration section list mapped-ram?  Read through f,
 * which is then put back at the start for the load: one QEMUFile (72 KiB
 * of buffers) per input, not two.
 */
static bool file_says_mapped_ram(QEMUFile *f)
{
    StreamConfig c = { 0 };
    bool mapped = false;

    if (qemu_file_skip(f, 8, NULL) && savevm_get_configuration(f, &c, NULL)) {
        for (guint i = 0; i < c.caps->len; i++) {
            mapped |= !strcmp(g_ptr_array_index(c.caps, i), "mapped-ram");
        }
    }
    stream_config_clear(&c);
    if (!qemu_file_set_offset(f, 0, NULL)) {
        g_error("fuzz-ram-load: cannot seek the input back to its start");
    }
    return mapped;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path;
    GError *err = NULL;

    fuzz_input_file(data, size, &path);
    IOChannel *ioc = io_channel_file_open(path, O_RDONLY, 0, &err);
    g_assert_no_error(err);
    QEMUFile *f = qemu_file_new_input(ioc, 0);
    if (!migration_set_capability(mig, "mapped-ram", file_says_mapped_ram(f), &err)) {
        g_error("mapped-ram: %s", err->message);
    }
    MigrationConfig *cfg = migration_config_snapshot(mig->opts);

    if (!migration_incoming_load(mig, cfg, f, path, &err)) {
        g_assert(err && err->message[0]);
        g_printerr("load: %s\n", err->message);   /* shown with FUZZ_VERBOSE=1 */
        g_clear_error(&err);
    }
    qemu_fclose(f, NULL);
    io_channel_unref(ioc);
    migration_config_free(cfg);
    fake_host_clear_events(host);
    return 0;
}
