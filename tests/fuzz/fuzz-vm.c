/*
 * The reference VM in process.  See fuzz-vm.h.
 */
#include "fuzz-vm.h"

#include <glib.h>

#include "system/system.h"
#include "system/system-internal.h"

static GuestCPU *cpu0;
static GuestConfig guest;
static unsigned exit_requests;

void vm_request_exit(int status)
{
    __atomic_fetch_add(&exit_requests, 1, __ATOMIC_RELAXED);
}

void vm_shutdown_request(const char *reason, int status)
{
    __atomic_fetch_add(&exit_requests, 1, __ATOMIC_RELAXED);
}

unsigned fuzz_vm_exit_requests(void)
{
    return __atomic_load_n(&exit_requests, __ATOMIC_RELAXED);
}

void fuzz_vm_init(bool vga)
{
    char *argv[] = { (char *)"mapram-vm", (char *)"-m", (char *)FUZZ_VM_RAM_ARG,
                     (char *)"-vga", (char *)(vga ? "std" : "none"), NULL };
    VMConfig *cfg = vm_config_new();
    GError *err = NULL;

    if (!vm_config_parse(cfg, 5, argv, &err) || !vm_memory_init(cfg, &err) ||
        !guest_config_parse(&guest, "ab", &err)) {
        g_error("fuzz VM: %s", err->message);
    }
    vm_config_free(cfg);
}

void fuzz_vm_register_devices(Migration *m)
{
    GError *err = NULL;

    if (!serial_init("none", m, &err)) {
        g_error("fuzz VM: %s", err->message);
    }
    rtc_init(m);
    cpu0 = guest_cpu_new(0, 1, &guest, m);
}

void fuzz_vm_free_devices(void)
{
    g_clear_pointer(&cpu0, guest_cpu_free);
    serial_cleanup();
}
