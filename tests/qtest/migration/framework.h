/*
 * Migration test framework, in the shape of QEMU's (reference §6):
 * source and destination mapram-vm processes running the "ab" guest,
 * capabilities and parameters set on both sides, a round trip, then the
 * destination's memory checked with the ab invariant.
 *
 *   static void test_x(void)
 *   {
 *       MigrateCommon args = {
 *           .connect_uri = mig_path_uri("migfile"),   (or a literal URI)
 *           .caps = { "mapped-ram" },
 *       };
 *       test_file_common(&args, true);                (stopped source)
 *   }
 *   migration_test_add("/migration/...", test_x, MIG_SMOKE);
 *
 * Each test runs with its own temp dir (mig_tmpdir) under /var/tmp,
 * removed afterwards unless MAPRAM_TEST_KEEP is set.
 */
#ifndef TESTS_QTEST_MIGRATION_FRAMEWORK_H
#define TESTS_QTEST_MIGRATION_FRAMEWORK_H

#include "../libqtest.h"
#include "../migration-helpers.h"
#include "util/ab-pattern.h"

#include <stdint.h>

#define MIG_TEST_START   AB_PATTERN_START
#define MIG_TEST_END     AB_PATTERN_END
#define MIG_PAGE_SIZE    4096
#define MIG_FILE_NAME    "migfile"
#define MIG_OFFSET_MAGIC 0x5145564dU
#define MIG_OFFSET       0x1000

/* The temp dir of the running test. */
extern const char *mig_tmpdir;

typedef enum {
    MIG_SMOKE,      /* always registered */
    MIG_FULL,       /* skipped with MAPRAM_TEST_QUICK=1 */
} MigTier;

void migration_test_add(const char *path, void (*fn)(void), MigTier tier);
/* Same for a data test; @fn makes its own temp dir if it needs one. */
void migration_test_add_data(const char *path, gconstpointer data,
                             GTestDataFunc fn, MigTier tier);
/* How many tests were registered (after the filters). */
unsigned migration_test_count(void);

typedef struct MigrateStart {
    const char *mem_size;        /* both sides; default "150M" */
    const char *dst_mem_size;    /* destination only (layout mismatch) */
    const char *guest;           /* -guest; default "ab" */
    const char *opts_source;     /* extra arguments */
    const char *opts_target;
    const char *incoming;        /* destination -incoming; default "defer" */
    bool only_source;            /* start no destination */
    const char *const *env_source;   /* "NAME=VALUE", NULL-terminated */
    const char *const *env_target;   /* same for the destination */
    const char *netns_source;    /* run the source in this network namespace */
    const char *netns_target;    /* same for the destination */
} MigrateStart;

typedef struct MigrateCommon MigrateCommon;
typedef void (*MigrateHook)(QTestState *from, QTestState *to,
                            MigrateCommon *args);

typedef enum {
    MIG_TEST_SUCCEED = 0,
    MIG_TEST_QMP_ERROR,          /* migrate returns an error (expected_error) */
} MigTestResult;

struct MigrateCommon {
    MigrateStart start;
    const char *connect_uri;     /* migrate on the source */
    const char *listen_uri;      /* migrate-incoming; default connect_uri */
    const char *connect_channels;    /* instead of connect_uri (JSON array) */
    const char *caps[6];         /* capabilities turned on on both sides */
    int multifd_channels;        /* > 0: multifd-channels on both sides */
    bool direct_io;              /* direct-io on both sides */
    MigTestResult result;
    const char *expected_error;  /* exact desc for MIG_TEST_QMP_ERROR */
    MigrateHook start_hook;      /* after caps, before 'B' on the source */
    MigrateHook end_hook;        /* after the destination resumed */
    bool exact_ram_check;        /* stopped source: dest RAM == source RAM */
    void *opaque;                /* for hooks */
};

/* Path in the test's temp dir / "file:" URI for it (both g_free). */
char *mig_path(const char *name);
char *mig_file_uri(const char *name, const char *suffix);

/*
 * Arguments of a mapram-vm running @guest in @mem of RAM, its serial
 * output in "<tmpdir>/<serial>", then @extra (NULL: none); g_free.
 */
char *mig_vm_args(const char *mem, const char *guest, const char *serial,
                  const char *extra);

/* Start the processes (caps from @args set on both, events on). */
void migrate_start(MigrateCommon *args, QTestState **from, QTestState **to);
/* Turn on @args' capabilities and parameters on one side. */
void migrate_apply_caps(QTestState *who, MigrateCommon *args);

/*
 * Quit the source; check the destination runs (the byte at 1 MiB moves),
 * stop it, check it stays still, check its RAM, and quit it.
 */
void migrate_end(QTestState *from, QTestState *to, bool test_dest);

/* The guest runs: the byte at 1 MiB changes (bounded wait). */
void assert_guest_runs(QTestState *who);
/* The guest is still: the byte at 1 MiB stays the same for 200 ms. */
void assert_guest_still(QTestState *who);

/* Wait for a 'B' on "<tmpdir>/<side>" ("src_serial"/"dest_serial"). */
void wait_for_serial(const char *side);

/* The ab invariant over [1 MiB, 100 MiB) of @who (stop it first). */
void check_guests_ram(QTestState *who);
/*
 * Same on a memory image of that range: fails the test with
 * ab_pattern_check()'s message (util/ab-pattern.h), prefixed with @who.
 */
void check_ab_pattern(const uint8_t *mem, uint64_t len, const char *who);

/*
 * @desc must be exactly @before, a hex number ("0x1f000"), then @after;
 * returns the number, for the caller to bound.  Only for messages whose
 * number depends on timing (which page channel failed first, where a full
 * disk or a cancel cut a live save): the words are asserted exactly.
 */
uint64_t assert_msg_hex(const char *desc, const char *before,
                        const char *after);
/* Same with a decimal number. */
uint64_t assert_msg_dec(const char *desc, const char *before,
                        const char *after);

/* Source after a refused or failed migration: running, RAM intact. */
void assert_source_intact(QTestState *from);
/* A destination that must not have resumed: exited, or not running. */
void assert_dest_not_resumed(QTestState *to);

/* File round trips: source completes first, then the destination loads. */
void test_file_common(MigrateCommon *args, bool stop_src);
/* Socket-like round trips: the destination listens first (live source). */
void test_precopy_common(MigrateCommon *args);

/*
 * add-fd of @path opened with @flags (O_CLOEXEC added) into @fdset_id of
 * @who; asserts success.  Our own copy of the fd is closed.
 */
void mig_add_fd(QTestState *who, int fdset_id, const char *path, int flags);

/* "X" bytes up to MIG_OFFSET of @path, for a save at offset=MIG_OFFSET. */
void mig_file_offset_prepare(const char *path);
/* Those bytes are intact and the stream's magic follows them. */
void mig_file_offset_check(const char *path);

/*
 * The port a destination listening on tcp:127.0.0.1:0 bound, from its
 * query-migrate socket-address (asserts an inet address on 127.0.0.1).
 */
int mig_listen_port(QTestState *to);
/* Same for a destination listening on tcp:@host:0. */
int mig_listen_port_on(QTestState *to, const char *host);
/*
 * migrate-incoming tcp:127.0.0.1:0 on @to (with @extra arguments, as
 * migrate_incoming_qmp), and the URI a source then migrates to.
 */
char *mig_incoming_tcp(QTestState *to, const char *extra);
/* A unix socket listening at @path (backlog 1), for a peer played by the test. */
int mig_listen_unix(const char *path);

/*
 * Two hosts on one machine (issue 12): network namespaces joined by a
 * veth pair, the source's end MIG_NETNS_SRC_ADDR/24 in ns[0], the
 * destination's MIG_NETNS_DST_ADDR/24 in ns[1], both up, loopback up;
 * and the IPv6 link-local MIG_NETNS_SRC_ADDR6/64 and MIG_NETNS_DST_ADDR6/64
 * (no duplicate address detection: usable at once).
 * Names are unique per test process ("mrq<pid>s"/"mrq<pid>d", the veth
 * ends the same with "v" after them).  In both namespaces
 * net.ipv4.tcp_retries2 is MIG_NETNS_TCP_RETRIES2, so a connection whose
 * data goes unacknowledged (a link taken down) fails with ETIMEDOUT in
 * a few seconds instead of the kernel's default 15 minutes: neither QEMU
 * nor mapram sets a timeout of its own on a migration socket.
 *
 * The VMs run in them through MigrateStart.netns_source/_target (`ip
 * netns exec NS mapram-vm ...`); QMP sockets and files stay in the shared
 * temp dir, so everything else works as usual.
 */
#define MIG_NETNS_SRC_ADDR     "10.203.0.1"
#define MIG_NETNS_DST_ADDR     "10.203.0.2"
#define MIG_NETNS_SRC_ADDR6    "fe80::1"
#define MIG_NETNS_DST_ADDR6    "fe80::2"
#define MIG_NETNS_TCP_RETRIES2 3

typedef struct MigNetns {
    char ns[2][32];              /* [0] the source's, [1] the destination's */
    char dev[2][32];             /* the veth end in each */
} MigNetns;

/*
 * Make them.  False when that is impossible here (not root, `ip netns
 * add` refused): the test is skipped (g_test_skip) with the reason, and
 * the caller returns.  Deleted by mig_netns_teardown(), or by the harness
 * when the test fails first.
 */
bool mig_netns_setup(MigNetns *n);
/* Delete both namespaces (and so the veth pair). */
void mig_netns_teardown(MigNetns *n);
/* `ip link set DEV up|down` on @side's end (0 source, 1 destination). */
void mig_netns_link(MigNetns *n, int side, bool up);
/*
 * A tcp connection to @addr:@port made from inside @side's namespace (the
 * socket is created there, by this thread switching in and back); the
 * caller closes the fd.
 */
int mig_netns_connect(MigNetns *n, int side, const char *addr, int port);

/* O_DIRECT usable in @dir (QEMU's probe). */
bool probe_o_direct_support(const char *dir);

/*
 * Run the mapram tool ($MAPRAM_TOOL) with the NULL-terminated arguments;
 * returns its exit status, its stdout and stderr in *out, *err (g_free).
 */
int mig_run_tool(char **out, char **err, const char *arg0, ...) G_GNUC_NULL_TERMINATED;

/*
 * The ab guest's first and last page.  Its byte in each is its pass count
 * mod 256 (one more before its cursor): stopped just as that wrapped, a
 * run of its pages is zero.  The two savers below make files where every
 * one of its pages holds data, which the tests that look for data pages
 * need (about one save in 128 would otherwise have none in a long run).
 */
#define AB_FIRST_PAGE    0x100000ULL
#define AB_LAST_PAGE     (100ULL * 1024 * 1024 - MIG_PAGE_SIZE)

/*
 * The running ab guest saved live into @name with mapped-ram (and multifd,
 * 4 channels, with @multifd): the file's run state is "running", so a
 * destination resumes by itself.  Saved again if a page of the guest's
 * is a zero page in it.  Returns its file: URI (g_free).
 */
char *mig_make_live_saved_uri(const char *name, bool multifd);

/* Save ab guest RAM to @name with @caps (stopped source, every page of the
 * guest's data); returns path. */
char *mig_make_saved_file(const char *name, const char *const *caps,
                          bool multifd);

#endif
