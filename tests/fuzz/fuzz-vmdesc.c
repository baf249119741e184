/*
 * libFuzzer harness: the vmdesc checks of `mapram info` and `mapram
 * verify` (tools/info.c): a well-framed stream (header, configuration, a
 * one-page "ram" START and END, the reference VM's device sections, EOF)
 * whose VM description is the input.  Whatever the JSON holds (no object,
 * "devices" not a list, a device not an object, a name not a string, ...)
 * verify must report a problem or pass, and info print, without crashing
 * and without a GLib critical (fuzz_init() makes criticals abort).
 *
 * Input: the vmdesc JSON text.
 * Corpus: tests/fuzz/corpus/fuzz-vmdesc/ (the vmdescs of real files,
 * tests/fuzz/make-seeds.py).
 */
#include "fake-host.h"
#include "fuzz-common.h"
#include "fuzz-vm.h"
#include "io/channel.h"
#include "mapram-tool.h"
#include "migration/migration-internal.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Everything of the stream before the vmdesc record. */
static GByteArray *prefix;

static void put_devices(QEMUFile *f, Migration *m)
{
    const char *idstr;
    uint32_t instance;
    const VMStateDescription *vmsd;
    void *opaque;
    GError *err = NULL;

    for (unsigned i = 0; savevm_registry_device(m->registry, i, &idstr, &instance, &vmsd,
                                                &opaque); i++) {
        savevm_put_section_full_header(f, QEMU_VM_SECTION_FULL, i + 1, idstr, instance,
                                       vmsd->version_id);
        if (!vmstate_save_state(f, vmsd, opaque, NULL, &err)) {
            g_error("%s: %s", idstr, err->message);
        }
        savevm_put_section_footer(f, i + 1);
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    GError *err = NULL;

    fuzz_init();
    fuzz_vm_init(true);
    FakeHost *host = fake_host_new(RUN_STATE_RUNNING);
    Migration *m = fake_host_migration_new(host);
    fuzz_vm_register_devices(m);

    g_autoptr(IOChannel) ioc = io_channel_buffer_new(4096);
    QEMUFile *f = qemu_file_new_output(ioc, 0);
    StreamConfig cfg = { .machine = "mapram-10.2" };
    g_autoptr(JsonBuilder) unused = json_builder_new();
    RamEncoder e;

    qemu_savevm_state_header(f, &cfg, unused);
    ram_encoder_init(&e);
    savevm_put_section_full_header(f, QEMU_VM_SECTION_START, 0, "ram", 0, RAM_SECTION_VERSION);
    ram_encode_mem_size(&e, f, RAM_PAGE_SIZE);
    if (!ram_encode_block(&e, f, "pc.ram", RAM_PAGE_SIZE, NULL, &err)) {
        g_error("%s", err->message);
    }
    ram_encode_eos(f);
    savevm_put_section_footer(f, 0);
    savevm_put_section_short_header(f, QEMU_VM_SECTION_END, 0);
    ram_encode_zero_page(&e, f, 0, 0);
    ram_encode_eos(f);
    savevm_put_section_footer(f, 0);
    ram_encoder_clear(&e);
    put_devices(f, m);
    qemu_put_byte(f, QEMU_VM_EOF);
    if (!qemu_fclose(f, &err)) {
        g_error("%s", err->message);
    }
    size_t len;
    const uint8_t *p = io_channel_buffer_data(ioc, &len);
    prefix = g_byte_array_new();
    g_byte_array_append(prefix, p, len);
    migration_free(m);
    fuzz_vm_free_devices();
    fake_host_free(host);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    GError *err = NULL;

    if (size > 1 << 20) {
        return -1;
    }
    g_autoptr(IOChannel) out = io_channel_buffer_new(prefix->len + size + 8);
    QEMUFile *w = qemu_file_new_output(out, 0);
    qemu_put_buffer(w, prefix->data, prefix->len);
    savevm_put_vmdesc(w, (const char *)data, size);
    g_assert(qemu_fclose(w, NULL));

    size_t len;
    const uint8_t *stream = io_channel_buffer_data(out, &len);
    for (int verify = 0; verify < 2; verify++) {
        g_autoptr(IOChannel) in = io_channel_buffer_new_data(stream, len);
        QEMUFile *f = qemu_file_new_input(in, 0);
        Report *r = report_new(verify);

        if (report_analyse(r, f, &err)) {
            if (verify) {
                report_verify(r);
            } else {
                report_print_text(r, fuzz_devnull(), "fuzz");
                report_print_json(r, fuzz_devnull());
            }
        } else {
            /* only the JSON can be wrong, and then it does not parse */
            g_assert(g_str_has_prefix(err->message, "VM description at offset"));
            g_clear_error(&err);
        }
        report_free(r);
        qemu_fclose(f, NULL);
    }
    return 0;
}
