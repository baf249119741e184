/*
 * The reference VM (system/) in a harness's process, without vl.c's
 * main(): its memory as `mapram-vm -m 2M` has it (blocks pc.ram 2 MiB,
 * vga.vram 16 MiB unless -vga none, pc.bios 256 KiB), and its devices (serial, rtc, one
 * "cpu") registered on a Migration.  vm_request_exit() and
 * vm_shutdown_request(), vl.c's, only count here: nothing exits.
 */
#ifndef TESTS_FUZZ_VM_H
#define TESTS_FUZZ_VM_H

#include "migration/migration.h"

#define FUZZ_VM_RAM_ARG "2M"

/*
 * Once, before anything else of the VM: parse "-m 2M" (and "-vga none"
 * unless vga) and build the memory.  The harnesses that load files saved
 * by `mapram-vm -m 2M` need vga.vram; fuzz-qmp leaves it out, since each
 * migration an input starts would scan its 4,096 pages.
 */
void fuzz_vm_init(bool vga);
/* The devices of vl.c's devices_init() on m (serial "none", rtc, cpu 0 running "ab"). */
void fuzz_vm_register_devices(Migration *m);
/* Free the cpu of the last registration (after the Migration it was registered on). */
void fuzz_vm_free_devices(void);

/* Exit and shutdown requests since the start (the stubs of vl.c's functions). */
unsigned fuzz_vm_exit_requests(void);

#endif
