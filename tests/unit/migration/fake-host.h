/*
 * A fake migration host for in-process tests: the MigrationHostOps of
 * include/migration/host.h over process memory, with everything the
 * migration asks of it written down.
 *
 *   FakeHost *h = fake_host_new(RUN_STATE_RUNNING);
 *   FakeBlock *b = fake_host_add_block(h, "pc.ram", 4 << 20);
 *   fake_block_fill(b, 1, 3, 16);             guest writes, into the dirty log
 *   Migration *m = fake_host_migration_new(h);   ops + "events" capability on
 *   migration_start(m, uri, &err);
 *   fake_host_wait_end(h, m, &info);          "completed", "failed" or "cancelled"
 *   g_autofree char *ev = fake_host_events(h, false);
 *   migration_free(m);
 *   fake_host_free(h);
 *
 * What is recorded, in order, as one line each in events:
 *   "MIGRATION <status>", "MIGRATION_PASS <n>"   the host's event op
 *   "vm_stop <state>", "vm_start", "runstate <state>", "exit <status>"
 *   "error"                                        error_report (its text: fake_host_errors())
 * There is no get_fd: the fd: transport does not ask the host (yet).
 * main_call runs its function inline (the default) or, with
 * queue_main_calls, queues it until fake_host_run_main_calls() (the wait
 * helpers run the queue as a host's main loop would).  fake_host_migration_new()
 * Migrations have the "events" capability on, so the wait helpers can
 * wait for the status event as well as the status.
 *
 * Threads: every op may come from a migration thread; the recorded state
 * is under lock.  Blocks are added before a Migration is created.
 */
#ifndef TESTS_FAKE_HOST_H
#define TESTS_FAKE_HOST_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>
#include "migration/migration.h"
#include "util/thread.h"

#define FAKE_PAGE_SIZE 4096

typedef struct FakeBlock {
    char *idstr;
    uint8_t *host;               /* mmap'd, page aligned, size bytes */
    uint64_t size;
    uint64_t npages;
    unsigned long *dirty;        /* the dirty log: set by guest writes, harvested atomically */
} FakeBlock;

typedef struct FakeHost {
    /* Set before a migration starts */
    GPtrArray *blocks;           /* FakeBlock * */
    bool autostart;              /* default true */
    bool queue_main_calls;       /* default false: main_call runs inline */
    bool no_main_call;           /* leave the main_call op out (the incoming thread ends) */
    /*
     * Called by ram_block_sync_dirty before it harvests the log of block
     * index (on the migration thread): the guest "ran" since the last
     * harvest.  Deterministic where a vCPU thread would race.
     */
    void (*on_sync)(struct FakeHost *h, size_t index, void *opaque);
    void *on_sync_opaque;
    /*
     * The event slow_event (e.g. "MIGRATION cancelling") is recorded
     * late, as if the thread that sends it were preempted between its
     * status change and its event: once slow_event_until (e.g.
     * "MIGRATION cancelled") has been recorded by another thread, or
     * after slow_event_ms.
     */
    const char *slow_event;
    const char *slow_event_until;
    unsigned slow_event_ms;
    /*
     * vm_stop finds a user's stop that took the host's lock first: a
     * running VM is paused ("user stop") just before the op reads the state.
     */
    bool user_stop_first;
    /* Called by error_report (a migration thread) before it records "error". */
    void (*on_error)(struct FakeHost *h, void *opaque);
    void *on_error_opaque;
    /* Protected by lock */
    QemuMutex lock;
    QemuCond cond;                  /* a main call was queued */
    RunState state;
    GPtrArray *events;           /* char *, see above */
    GQueue main_calls;           /* queued FakeMainCall * */
    int exit_status;             /* -1 until request_exit */
    GPtrArray *errors;           /* char *: the error_report messages, in order */
} FakeHost;

extern const MigrationHostOps fake_host_ops;
/* The same without a main_call op. */
extern const MigrationHostOps fake_host_ops_no_main_call;

FakeHost *fake_host_new(RunState state);
/* Runs the queued main calls left, frees the blocks and records. */
void fake_host_free(FakeHost *h);
/* A zero-filled block of size bytes (a multiple of 4096), its log clear. */
FakeBlock *fake_host_add_block(FakeHost *h, const char *idstr, uint64_t size);

/* Guest writes: copy len bytes at offset and mark their pages dirty. */
void fake_block_write(FakeBlock *b, uint64_t offset, const void *buf, size_t len);
/*
 * Fill the block from seed, in runs of run pages: run r is left zero (and
 * untouched) when zero_every && r % zero_every == 0, else its pages are
 * written with bytes that depend on seed and the page and are never all
 * zero.  Returns the pages written.  Long runs keep test files in few
 * extents: on a file system mounted with discard, unlinking a file of
 * many small extents costs a few milliseconds per extent.
 */
uint64_t fake_block_fill(FakeBlock *b, unsigned seed, unsigned zero_every, unsigned run);
/* Pages of the block whose 4096 bytes are all zero. */
uint64_t fake_block_zero_pages(const FakeBlock *b);

/* A Migration on h with the "events" capability on. */
Migration *fake_host_migration_new(FakeHost *h);

RunState fake_host_runstate(FakeHost *h);
/* The events so far, one per line joined by ", "; with_passes=false leaves out MIGRATION_PASS. */
char *fake_host_events(FakeHost *h, bool with_passes);
void fake_host_clear_events(FakeHost *h);
int fake_host_exit_status(FakeHost *h);
/* The error_report messages so far, one per line ("" if none). */
char *fake_host_errors(FakeHost *h);
/* Run the queued main calls; returns how many ran. */
unsigned fake_host_run_main_calls(FakeHost *h);
/* Wait (up to 30 s) until a main call is queued, without running it. */
void fake_host_wait_main_call(FakeHost *h);

/*
 * Poll migration_query (running the queued main calls in between) until
 * the status is "completed", "failed" or "cancelled" (up to 60 s, else the
 * test fails); info holds the final query, for migration_info_clear().
 */
void fake_host_wait_end(FakeHost *h, Migration *m, MigrationInfo *info);
/* The same until the status is exactly status. */
void fake_host_wait_status(FakeHost *h, Migration *m, const char *status);
/*
 * Until the last MIGRATION event recorded is "MIGRATION <status>" (up to
 * 30 s).  The wait helpers above do this too: a status is set before its
 * event is sent.
 */
void fake_host_wait_status_event(FakeHost *h, const char *status);

/*
 * A device with a VMStateDescription ("fakedev", version 1): fields, and
 * hooks that fail on demand (pre_save -EIO, post_load -EINVAL).
 */
typedef struct FakeDevice {
    uint64_t counter;
    uint32_t flags;
    uint8_t label[12];
    bool fail_pre_save;
    bool fail_post_load;
    int post_loads;              /* post_load calls */
} FakeDevice;

extern const VMStateDescription fake_device_vmsd;
/* Registers d as "fakedev" instance 0. */
void fake_device_register(Migration *m, FakeDevice *d);
/* Non-zero field values that depend on seed. */
void fake_device_init(FakeDevice *d, unsigned seed);

/* A new directory under $MAPRAM_TEST_TMPDIR or /var/tmp; rmtree removes it and its files. */
char *fake_test_mkdtemp(const char *prefix);
void fake_test_rmtree(const char *dir);
/* Whether dir's file system accepts O_DIRECT opens. */
bool fake_test_have_o_direct(const char *dir);
/*
 * The live threads of this process whose name starts with prefix (the
 * page channels' workers are "pageioN"); threads that have exited and
 * not yet been reaped are not counted.
 */
unsigned fake_test_count_threads(const char *prefix);

#endif
