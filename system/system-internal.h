/*
 * Private interfaces between the files of the reference VM.
 *
 * Start-up order (vl.c):
 *   vm_config_parse(argv)   -> VMConfig
 *   vm_memory_init(cfg)     RAM blocks: main RAM, "vga.vram" (not with -vga none), "pc.bios"
 *   vm_migration_new()      the Migration, with this VM as its host (host.c)
 *   serial_init / rtc_init / cpus_create   devices, migration_register_vmstate()
 *   system_qmp_register() + monitors
 *   cpus_start_threads()    vCPU threads, parked until vm_start()
 *   -incoming / vm_start(), then the GLib main loop
 *   cpus_stop_threads(), serial_cleanup(), ram_blocks_free_all()
 */
#ifndef SYSTEM_SYSTEM_INTERNAL_H
#define SYSTEM_SYSTEM_INTERNAL_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>
#include "migration/migration.h"
#include "system/ramblock.h"

#define VM_DEFAULT_RAM_SIZE   (512ULL << 20)
#define VM_DEFAULT_MACHINE    "mapram-10.2"
#define VM_MAX_CPUS           64

/* -object memory-backend-* */
typedef struct MemBackendConfig {
    char *id;
    char *kind;        /* "ram", "memfd", "file" */
    uint64_t size;
    bool size_given;
    bool shared;
    char *mem_path;    /* file only */
    int prealloc;      /* -1: not given (-mem-prealloc decides), 0 off, 1 on */
    unsigned prealloc_threads;   /* 0: not given */
} MemBackendConfig;

/* -guest PROGRAM[,key=val...] */
typedef enum GuestProgramId {
    GUEST_PROG_IDLE = 0,
    GUEST_PROG_AB = 1,
    GUEST_PROG_FILL = 2,
    GUEST_PROG_DIRTY = 3,
    GUEST_PROG_TOUCH = 4,
} GuestProgramId;

/* touch: distinct pages read and timed after a load; main RAM needs more */
#define GUEST_TOUCH_COUNT 1000

typedef struct GuestConfig {
    GuestProgramId prog;
    uint32_t zero_pct, text_pct, random_pct;   /* fill, touch */
    uint32_t chunk;                             /* fill, touch: pages per decision */
    uint64_t rate;                              /* dirty: pages/s, 0 = max */
    uint64_t seed;                              /* fill, dirty */
} GuestConfig;

typedef struct VMConfig {
    uint64_t ram_size;
    bool ram_size_given;
    char *machine_type;
    char *memory_backend;        /* -machine memory-backend=ID, or NULL */
    GPtrArray *backends;         /* MemBackendConfig * */
    GPtrArray *qmp_specs;        /* char * */
    GPtrArray *globals;          /* char * "NAME=VALUE" for migration */
    char *incoming;
    char *serial;                /* "file:PATH", "none", "null", "stdio" */
    char *name;
    bool start_paused;           /* -S */
    bool mem_prealloc;           /* -mem-prealloc */
    bool no_vga;                 /* -vga none: no "vga.vram" block */
    bool help;                   /* -h: print vm_config_usage() and exit, the rest unread */
    unsigned smp;
    GuestConfig guest;
} VMConfig;

/* vl-args.c: returns false with *errp = "-opt arg: message" */
VMConfig *vm_config_new(void);
void vm_config_free(VMConfig *cfg);
bool vm_config_parse(VMConfig *cfg, int argc, char **argv, GError **errp);
/* The options, one line each (for -h). */
const char *vm_config_usage(void);
bool guest_config_parse(GuestConfig *gc, const char *arg, GError **errp);

/* memory.c */
bool vm_memory_init(const VMConfig *cfg, GError **errp);
RAMBlock *vm_main_ram(void);

/* serial.c: the console guest programs print to; "serial" vmstate */
bool serial_init(const char *spec, Migration *mig, GError **errp);
void serial_putc(char c);
void serial_cleanup(void);

/* rtc.c: a device with versioned fields and a subsection */
void rtc_init(Migration *mig);
void rtc_tick(void);           /* vCPU: one guest pass */
void rtc_ack_irq(void);        /* vCPU: bumps the subsection counter */

/* guest.c: programs the vCPUs run; "cpu" vmstate per vCPU */
typedef struct GuestCPU GuestCPU;
GuestCPU *guest_cpu_new(unsigned index, unsigned ncpus, const GuestConfig *gc,
                        Migration *mig);
void guest_cpu_free(GuestCPU *gcpu);
/*
 * Run a bounded slice of the program.  Returns how long the vCPU may
 * sleep before the next slice, in microseconds: 0 to go on at once,
 * G_MAXINT64 when the program has nothing left to do.
 */
gint64 guest_cpu_step(GuestCPU *gcpu);

/* cpus.c: vCPU threads and the park protocol */
void cpus_create(unsigned ncpus, const GuestConfig *gc, Migration *mig);   /* + "cpu" vmstate */
void cpus_start_threads(void);       /* they stay parked until vm_start() */
void cpus_stop_threads(void);        /* join them, free the guest CPUs */
/*
 * Thread tid (0: unknown, any vCPU) waits for good on a guest page a
 * failed on-demand restore will not bring; if it is a vCPU,
 * cpus_pause_all() counts it as parked from now on.  Any thread.
 */
void cpus_thread_blocked(int tid);
/* The same for a pmemsave's copy: the command fails with msg. */
void pmem_thread_blocked(int tid, const char *msg);

/* runstate.c */
void vm_set_autostart(bool on);
bool runstate_needs_reset(void);

/* host.c: this VM as the migration host (include/migration/host.h) */
Migration *vm_migration_new(void);

/* qmp-cmds.c */
void system_qmp_register(Migration *mig);   /* cont and pmemsave ask it about guest RAM */

/* vl.c */
void vm_shutdown_request(const char *reason, int status);

#endif
