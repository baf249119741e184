/*
 * libFuzzer harness: the vmstate loader (migration/vmstate.c) with the
 * description of each device the reference VM registers (serial, rtc with
 * its subsection, cpu, and migration's globalstate), into the live device.
 *
 * Input: byte 0 picks the device (modulo the number registered), byte 1
 * is the section's version_id as the stream would give it, the rest is
 * the section body.  A state that loads must save again, and that saved
 * state must load and save to the same bytes: a device that takes a
 * state it cannot hand on would break the next migration.
 * Corpus: tests/fuzz/corpus/fuzz-vmstate/ (device sections of real files,
 * tests/fuzz/make-seeds.py).
 */
#include <string.h>

#include "fake-host.h"
#include "fuzz-common.h"
#include "fuzz-vm.h"
#include "io/channel.h"
#include "migration/migration-internal.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static FakeHost *host;
static Migration *mig;
static unsigned ndevices;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *idstr;
    uint32_t instance;
    const VMStateDescription *vmsd;
    void *opaque;

    fuzz_init();
    fuzz_vm_init(true);
    host = fake_host_new(RUN_STATE_INMIGRATE);
    mig = fake_host_migration_new(host);
    fuzz_vm_register_devices(mig);
    while (savevm_registry_device(mig->registry, ndevices, &idstr, &instance, &vmsd, &opaque)) {
        ndevices++;
    }
    g_assert(ndevices >= 4);
    return 0;
}

/* The device's state as its section body, or NULL when the save fails. */
static GBytes *save(const VMStateDescription *vmsd, void *opaque)
{
    g_autoptr(IOChannel) ioc = io_channel_buffer_new(256);
    g_autoptr(JsonBuilder) b = json_builder_new();
    g_autoptr(GError) err = NULL;
    QEMUFile *f = qemu_file_new_output(ioc, 0);

    json_builder_begin_object(b);
    bool ok = vmstate_save_state(f, vmsd, opaque, b, &err);
    json_builder_end_object(b);
    ok = qemu_fclose(f, ok ? &err : NULL) && ok;
    if (!ok) {
        return NULL;
    }
    g_autoptr(JsonNode) root = json_builder_get_root(b);
    g_autofree char *desc = json_to_string(root, FALSE);
    g_assert(desc && desc[0] == '{');
    size_t len;
    const uint8_t *p = io_channel_buffer_data(ioc, &len);
    return g_bytes_new(p, len);
}

static bool load(const VMStateDescription *vmsd, void *opaque, int version,
                 const void *body, size_t len)
{
    g_autoptr(IOChannel) ioc = io_channel_buffer_new_data(body, len);
    g_autoptr(GError) err = NULL;
    QEMUFile *f = qemu_file_new_input(ioc, 0);

    bool ok = vmstate_load_state(f, vmsd, opaque, version, &err);
    g_assert(ok || (err && err->message[0]));
    qemu_fclose(f, NULL);
    return ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *idstr;
    uint32_t instance;
    const VMStateDescription *vmsd;
    void *opaque;

    if (size < 2) {
        return -1;
    }
    g_assert(savevm_registry_device(mig->registry, data[0] % ndevices, &idstr, &instance,
                                    &vmsd, &opaque));
    if (!load(vmsd, opaque, data[1], data + 2, size - 2)) {
        return 0;
    }
    g_autoptr(GBytes) a = save(vmsd, opaque);
    if (!a) {
        g_error("device '%s' loaded a state it cannot save", idstr);
    }
    gsize alen;
    const void *ap = g_bytes_get_data(a, &alen);
    if (!load(vmsd, opaque, vmsd->version_id, ap, alen)) {
        g_error("device '%s' does not load the state it saved", idstr);
    }
    g_autoptr(GBytes) b = save(vmsd, opaque);
    if (!b || !g_bytes_equal(a, b)) {
        g_error("device '%s' saves a different state after loading its own", idstr);
    }
    return 0;
}
