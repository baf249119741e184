/*
 * The host interface: everything migration/ needs from the VM it moves.
 *
 * A VMM that embeds mapram fills one MigrationHostOps table and hands it
 * to migration_new() (include/migration/migration.h).  migration/ never
 * calls into the VM any other way: it stops and resumes the vCPUs, reads
 * and sets the run state, walks the RAM blocks and harvests their dirty
 * log, and asks the host to exit, all through this table.  Device state
 * is registered with migration_register_vmstate().  docs/embedding.md has
 * a complete minimal host.
 *
 * Threads: every operation may be called from the migration thread or the
 * incoming thread as well as from the thread that called migration_new()
 * (for mapram-vm, the main loop), and at the same time from two of them
 * (migration_query() walks the RAM blocks on the main thread while the
 * migration thread harvests a dirty log), so each must be safe to call
 * from any thread, concurrently.
 *
 * RAM: a block is a page-aligned mapping of used_length bytes (a multiple
 * of 4096) that stays valid and at the same address for the life of the
 * Migration.  The guest's writes must reach the block's dirty log (one bit
 * per 4096-byte page) before ram_block_sync_dirty() returns them; a host
 * without dirty logging may report every page dirty, which makes a live
 * save converge only with the guest stopped.  A mapped-ram load trusts
 * the log too: of the pages the file has as zero it clears only those
 * the log reports, so memory that did not start as zeros (a backing file
 * with data, a device) must start with every page dirty.
 */
#ifndef MIGRATION_HOST_H
#define MIGRATION_HOST_H

#include <glib.h>
#include <json-glib/json-glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* QEMU's run states, with QEMU's names (runstate_name()). */
typedef enum RunState {
    RUN_STATE_DEBUG,
    RUN_STATE_INMIGRATE,
    RUN_STATE_INTERNAL_ERROR,
    RUN_STATE_IO_ERROR,
    RUN_STATE_PAUSED,
    RUN_STATE_POSTMIGRATE,
    RUN_STATE_PRELAUNCH,
    RUN_STATE_FINISH_MIGRATE,
    RUN_STATE_RESTORE_VM,
    RUN_STATE_RUNNING,
    RUN_STATE_SAVE_VM,
    RUN_STATE_SHUTDOWN,
    RUN_STATE_SUSPENDED,
    RUN_STATE_WATCHDOG,
    RUN_STATE_GUEST_PANICKED,
    RUN_STATE_COLO,
    RUN_STATE__MAX
} RunState;

const char *runstate_name(RunState s);            /* "unknown" if out of range */
RunState runstate_from_name(const char *name);    /* RUN_STATE__MAX if unknown */

/* One RAM block as the host describes it; the strings and memory stay the host's. */
typedef struct MigrationRAMBlock {
    const char *idstr;        /* QEMU's block name: "pc.ram", "vga.vram", a backend id */
    uint8_t *host;            /* page-aligned, used_length bytes */
    uint64_t used_length;     /* a multiple of 4096 */
    /*
     * The host maps it private and anonymous (no file or memfd behind it,
     * no share=on), so a restore with x-mapped-ram-shared may replace the
     * mapping with a private one of the save file.  migration/ zeroes the
     * struct before asking: a host that leaves it false refuses that mode.
     */
    bool private_anon;
} MigrationRAMBlock;

typedef struct MigrationHostOps {
    /* The current run state, and entering one without touching the vCPUs. */
    RunState (*runstate_get)(void *opaque);
    void (*runstate_set)(void *opaque, RunState s);
    /*
     * Park every vCPU if the VM runs (return when all are parked), enter
     * state s whatever the VM was in, and return the state it left: the
     * read, the stop and the change as one step under the host's own
     * lock, so that a user's stop or cont cannot come in between (the
     * save sends that state in globalstate and puts it back on failure).
     * A save calls it with RUN_STATE_FINISH_MIGRATE for its last pass and
     * device state, and owns the run state until it sets another one
     * (postmigrate, or back as it was on failure): the host must keep its
     * own users from resuming the vCPUs meanwhile (QEMU: the big lock;
     * mapram-vm: QMP stop and cont wait, system/runstate.c).
     */
    RunState (*vm_stop)(void *opaque, RunState s);
    /*
     * Optional. Ask every vCPU to park and enter state s, without waiting
     * for them: a vCPU blocked on a guest page that can no longer arrive
     * (an on-demand restore whose file failed) never parks.  Without it
     * the state is only set.
     */
    void (*vm_stop_nowait)(void *opaque, RunState s);
    /* Resume the vCPUs in RUN_STATE_RUNNING. */
    void (*vm_start)(void *opaque);
    /* Whether an incoming guest resumes when its load completes (false with -S). */
    bool (*autostart)(void *opaque);

    /* RAM blocks, in the order a save lists them (QEMU: largest first). */
    size_t (*ram_block_count)(void *opaque);
    void (*ram_block_get)(void *opaque, size_t index, MigrationRAMBlock *out);
    /*
     * Move block index's dirty log into dest (bitwise OR, one bit per
     * page) and clear the log; return how many bits were newly set in dest.
     */
    uint64_t (*ram_block_sync_dirty)(void *opaque, size_t index, unsigned long *dest);

    /* Optional. End the process with this status (a failed load with exit-on-error). */
    void (*request_exit)(void *opaque, int status);
    /*
     * Optional. A QMP event (MIGRATION, MIGRATION_PASS); takes ownership
     * of data.  Called on the main thread or a migration's thread; an
     * outgoing migration's MIGRATION events come one at a time, in the
     * order its status changed: the next waits for this call to return.
     * The call may cancel the migration itself, but must not wait for
     * its end, nor for another thread that cancels it.
     */
    void (*event)(void *opaque, const char *name, JsonObject *data);
    /*
     * Optional. The fd named name for the fd: transport, as a new fd the
     * migration owns; -1 with errp set if there is none.
     */
    int (*get_fd)(void *opaque, const char *name, GError **errp);
    /*
     * Optional. Run fn(data) soon on the thread that calls the Migration
     * API (QEMU: a bottom half).  The end of an incoming load goes through
     * it, so that resuming the guest is ordered with the host's own
     * commands (a "stop" while it waits, say).  Without it the incoming
     * thread runs fn itself.
     */
    void (*main_call)(void *opaque, void (*fn)(void *data), void *data);
    /*
     * Optional. A failure nobody asked for by command: a save or load
     * failed, an accept on the listening socket failed.  msg has no
     * trailing newline.  Without it the message goes to stderr as
     * "migration: MSG".  (query-migrate's error-desc has the same text.)
     */
    void (*error_report)(void *opaque, const char *msg);
    /*
     * Optional. Capability pause-before-switchover: the save, its guest
     * stopped in finish-migrate, waits in status pre-switchover for
     * migrate-continue (paused true), then goes on (false).  Meanwhile
     * the host must take its users' commands rather than wait out
     * finish-migrate (QEMU drops its big lock there): migrate-continue
     * and migrate_cancel must get through; QEMU's cont fails ("Migration
     * is not finalized yet") and its stop changes nothing.  Called on the
     * migration thread.  Without it such a save is refused.  A save with
     * return-path calls it the same way around its wait for the
     * destination's SHUT (status device), where QEMU drops its lock too;
     * without it the host's commands wait that out.
     */
    void (*switchover_paused)(void *opaque, bool paused);
    /* (new operations go last: the fields before keep their offsets) */
    /*
     * Optional. An on-demand restore failed, and the host's thread tid
     * touched a guest page it will not bring: the thread waits in the
     * kernel for good (never a wrong page), so whoever waits for it must
     * stop: a vCPU counts as parked from now on, a host command that read
     * guest RAM on another thread fails with msg (the load's error, as
     * query-migrate will give it).  Called on the load's fault thread,
     * once per such touch; tid 0: the kernel (Linux < 4.14) does not say
     * which thread, so the host gives up on every such wait.
     */
    void (*guest_ram_blocked)(void *opaque, int tid, const char *msg);
} MigrationHostOps;

#endif
