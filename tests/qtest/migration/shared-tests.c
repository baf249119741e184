/*
 * Shared restore (migrate-incoming file: with mapped-ram and the
 * x-mapped-ram-shared parameter): guest RAM maps the file's page regions
 * privately.  Two VMs restored from one file run, pass the ab check and
 * leave the file unchanged, their RAM out of forked children; a clear page whose slot holds stale bytes
 * reads zero; a save into a file that backs such a VM is refused until
 * that VM is gone, and a save holds its file while it writes; a shared memory backend is refused; each rule row
 * gives its message.
 */
#include "framework.h"
#include "tests.h"
#include "util/bswap.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define SHARED_PARAM "x-mapped-ram-shared"
#define BLOCK_SIZE (150ULL << 20)
/* a source whose one RAM block start_dest() takes */
#define SOURCE_ARGS "-m 150M -machine memory-backend=mig.mem " \
    "-object memory-backend-ram,id=mig.mem,size=150M -guest ab"

/* A destination for a shared restore; share: the backend's share= value. */
static QTestState *start_dest(const char *name, bool share, bool paused)
{
    QTestState *to = qtest_init_bin(qtest_vm_binary(),
        "-m 150M -machine memory-backend=mig.mem "
        "-object memory-backend-ram,id=mig.mem,size=150M,share=%s "
        "-guest ab -serial file:%s/%s -incoming defer %s", share ? "on" : "off",
        mig_tmpdir, name, paused ? "-S" : "");

    migrate_set_capability(to, "events", true);
    migrate_set_capability(to, "mapped-ram", true);
    migrate_set_parameter_bool(to, SHARED_PARAM, true);
    return to;
}

/* A source whose one RAM block start_dest() takes, mapped-ram on, converging. */
static QTestState *start_source(void)
{
    QTestState *from = qtest_init_bin(qtest_vm_binary(), "%s", SOURCE_ARGS);

    migrate_set_capability(from, "mapped-ram", true);
    migrate_ensure_converge(from);
    return from;
}

/* A save the file's lock refuses: migrate opens the file before it returns, and fails. */
static void assert_save_refused(QTestState *who, const char *uri, const char *want)
{
    g_autofree char *desc = migrate_qmp_expect_error(who, uri, NULL);

    g_assert_cmpstr(desc, ==, want);
}

/* The first (only) block's page region and bitmap, from its MappedRamHeader. */
static void block_layout(const uint8_t *file, size_t len, uint64_t *bitmap_offset,
                         uint64_t *pages_offset)
{
    static const char id[] = "\x07mig.mem";
    const uint8_t *p = memmem(file, len, id, sizeof(id) - 1);

    g_assert_nonnull(p);
    p += sizeof(id) - 1 + 8;                          /* idstr, be64 used_length */
    g_assert_cmphex(ldl_be_p(p), ==, 1);              /* version */
    g_assert_cmphex(ldq_be_p(p + 4), ==, MIG_PAGE_SIZE);
    *bitmap_offset = ldq_be_p(p + 12);
    *pages_offset = ldq_be_p(p + 20);
}

static GChecksum *file_sum(const char *path)
{
    size_t len;
    g_autofree uint8_t *data = read_whole_file(path, &len);
    GChecksum *c = g_checksum_new(G_CHECKSUM_SHA256);

    g_checksum_update(c, data, len);
    return c;
}

/* Anonymous memory of a process, in KiB (smaps_rollup). */
static uint64_t anon_kib(QTestState *who)
{
    g_autofree char *path = g_strdup_printf("/proc/%d/smaps_rollup", (int)qtest_pid(who));
    g_autofree char *text = NULL;
    const char *line;

    g_assert_true(g_file_get_contents(path, &text, NULL, NULL));
    line = strstr(text, "\nAnonymous:");
    g_assert_nonnull(line);
    return g_ascii_strtoull(line + strlen("\nAnonymous:"), NULL, 10);
}

/*
 * Memory of a process that a fork() does not copy (madvise MADV_DONTFORK,
 * "dc" in smaps' VmFlags), in KiB.
 */
static uint64_t dontfork_kib(QTestState *who)
{
    g_autofree char *path = g_strdup_printf("/proc/%d/smaps", (int)qtest_pid(who));
    g_autofree char *text = NULL;
    g_auto(GStrv) lines = NULL;
    uint64_t size = 0, total = 0;

    g_assert_true(g_file_get_contents(path, &text, NULL, NULL));
    lines = g_strsplit(text, "\n", -1);
    for (char **l = lines; *l; l++) {
        if (g_str_has_prefix(*l, "Size:")) {
            size = g_ascii_strtoull(*l + strlen("Size:"), NULL, 10);
        } else if (g_str_has_prefix(*l, "VmFlags:") && strstr(*l, " dc")) {
            total += size;
        }
    }
    return total;
}

/* The guest runs, then stopped its memory keeps the ab invariant. */
static void check_running_guest(QTestState *to)
{
    assert_guest_runs(to);
    qtest_qmp_assert_success(to, "{'execute': 'stop'}");
    check_guests_ram(to);
}

/*
 * Two VMs from one file: both paused under -S after the load with almost
 * no anonymous memory (nothing was read), all guest RAM kept from forked
 * children before and after the load, both run and pass the ab check,
 * and the file is byte for byte as it was.
 */
static void test_two_vms(void)
{
    g_autofree char *uri = mig_make_live_saved_uri(MIG_FILE_NAME, false);
    g_autofree char *path = mig_path(MIG_FILE_NAME);
    g_autoptr(GChecksum) before = file_sum(path);
    QTestState *to[2];

    for (int i = 0; i < 2; i++) {
        g_autofree char *serial = g_strdup_printf("dest_serial%d", i);
        to[i] = start_dest(serial, false, true);
        /* guest RAM stays out of children (exec: forks), as in QEMU */
        g_assert_cmpuint(dontfork_kib(to[i]), >=, BLOCK_SIZE >> 10);
        migrate_incoming_qmp(to[i], uri, NULL, NULL);
        wait_for_migration_complete(to[i]);
        /* and so do the mappings of the file and of zeros put over it */
        g_assert_cmpuint(dontfork_kib(to[i]), >=, BLOCK_SIZE >> 10);
        g_autofree char *st = query_runstate(to[i]);
        g_assert_cmpstr(st, ==, "paused");
        /* the guest's 99 MiB of data are the file's pages, not copies */
        g_assert_cmpuint(anon_kib(to[i]), <, 32 * 1024);
        check_guests_ram(to[i]);
    }
    for (int i = 0; i < 2; i++) {
        qtest_qmp_assert_success(to[i], "{'execute': 'cont'}");
    }
    for (int i = 0; i < 2; i++) {
        check_running_guest(to[i]);
        qtest_quit(to[i]);
    }
    g_autoptr(GChecksum) after = file_sum(path);
    g_assert_cmpstr(g_checksum_get_string(before), ==, g_checksum_get_string(after));
}

/*
 * A clear page whose slot holds bytes (as a live save leaves one that
 * became zero in a later pass) reads zero; its neighbours keep their data.
 */
static void test_stale_slot(void)
{
    g_autofree char *uri = mig_make_live_saved_uri(MIG_FILE_NAME, false);
    g_autofree char *path = mig_path(MIG_FILE_NAME);
    size_t len;
    g_autofree uint8_t *file = read_whole_file(path, &len);
    uint64_t bitmap_offset, pages_offset, page = 0;
    uint8_t junk[MIG_PAGE_SIZE];

    block_layout(file, len, &bitmap_offset, &pages_offset);
    /* the ab guest writes [1 MiB, 100 MiB): find a clear page above it */
    for (uint64_t p = 120ULL << 20 >> 12; p < BLOCK_SIZE >> 12; p++) {
        if (!(file[bitmap_offset + p / 8] & (1u << (p % 8)))) {
            page = p;
            break;
        }
    }
    g_assert_cmpuint(page, !=, 0);
    memset(junk, 0xa5, sizeof(junk));
    int fd = open(path, O_WRONLY);
    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(pwrite(fd, junk, sizeof(junk), pages_offset + page * MIG_PAGE_SIZE), ==,
                    sizeof(junk));
    close(fd);

    QTestState *to = start_dest("dest_serial", false, true);
    migrate_incoming_qmp(to, uri, NULL, NULL);
    wait_for_migration_complete(to);
    g_autofree uint8_t *mem = guest_memread(to, mig_tmpdir, page * MIG_PAGE_SIZE,
                                            MIG_PAGE_SIZE);
    for (size_t i = 0; i < MIG_PAGE_SIZE; i++) {
        if (mem[i]) {
            g_error("clear page 0x%" G_GINT64_MODIFIER "x reads 0x%02x at byte %zu, not zero",
                    page * MIG_PAGE_SIZE, mem[i], i);
        }
    }
    check_guests_ram(to);
    qtest_qmp_assert_success(to, "{'execute': 'cont'}");
    check_running_guest(to);
    qtest_quit(to);
}

/* A save into the file that backs a running VM is refused until that VM is gone. */
static void test_save_refused(void)
{
    g_autofree char *uri = mig_make_live_saved_uri(MIG_FILE_NAME, false);
    g_autofree char *path = mig_path(MIG_FILE_NAME);
    g_autoptr(GChecksum) before = file_sum(path);
    g_autofree char *want = g_strdup_printf(
        "File '%s' backs the memory of a VM restored from it (with x-mapped-ram-shared, "
        "on demand, or by mapram serve): writing it would change that VM's memory", path);
    QTestState *to = start_dest("dest_serial", false, false);

    migrate_incoming_qmp(to, uri, NULL, NULL);
    wait_for_migration_complete(to);
    assert_guest_runs(to);

    /* another VM, and the restored VM itself */
    QTestState *other = start_source();
    assert_save_refused(other, uri, want);
    assert_save_refused(to, uri, want);
    /* an fd of the file, passed with getfd, is refused the same way (a stream save) */
    migrate_set_capability(other, "mapped-ram", false);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    g_assert_cmpint(fd, >=, 0);
    qtest_qmp_fds_assert_success(other, &fd, 1, "{'execute': 'getfd', "
                                 "'arguments': {'fdname': 'shared-file'}}");
    close(fd);
    assert_save_refused(other, "fd:shared-file", want);
    migrate_set_capability(other, "mapped-ram", true);
    /* and the tool: convert another file's data into it */
    g_autofree char *copy = mig_path("copy");
    g_autofree char *out = NULL, *err = NULL;
    size_t len;
    g_autofree uint8_t *data = read_whole_file(path, &len);
    g_assert_true(g_file_set_contents(copy, (const char *)data, len, NULL));
    g_assert_cmpint(mig_run_tool(&out, &err, "convert", copy, path, NULL), ==, 1);
    g_assert_nonnull(strstr(err, want));
    g_autoptr(GChecksum) after = file_sum(path);
    g_assert_cmpstr(g_checksum_get_string(before), ==, g_checksum_get_string(after));
    check_running_guest(to);
    qtest_quit(to);

    /* the lock went with the VM */
    migrate_qmp(other, uri, NULL);
    wait_for_migration_complete(other);
    qtest_quit(other);
}

/*
 * A save holds its file for as long as it writes: another save into it and
 * a shared restore from it are refused meanwhile (a check at the start alone
 * let either in once the save was under way), and both work once the save
 * has ended.
 */
static void test_save_holds_file(void)
{
    static const char *const ungoals[] = { "failed", "completed", NULL };
    g_autofree char *uri = mig_file_uri(MIG_FILE_NAME, NULL);
    g_autofree char *path = mig_path(MIG_FILE_NAME);
    g_autofree char *want_save = g_strdup_printf(
        "File '%s' is being written by another save: two saves into one file would "
        "destroy each other", path);

    /* a save that stays active (3 MB/s, 1 ms downtime) until it is cancelled */
    QTestState *from = qtest_init_bin(qtest_vm_binary(), "%s", SOURCE_ARGS);
    migrate_set_capability(from, "mapped-ram", true);
    migrate_ensure_non_converge(from);
    migrate_qmp(from, uri, NULL);
    wait_for_migration_status(from, "active", ungoals);
    /* the RAM section's headers are out: a restore gets as far as mapping the block */
    for (;;) {
        g_autoptr(JsonObject) q = migrate_query(from);
        JsonObject *ram = json_object_get_object_member(q, "ram");
        if (ram && qtest_json_get_int(ram, "normal", 0) >= 64) {
            break;
        }
        g_usleep(20 * 1000);
    }

    QTestState *other = start_source();
    assert_save_refused(other, uri, want_save);

    QTestState *to = start_dest("dest_serial", false, false);
    migrate_incoming_qmp(to, uri, NULL, "'exit-on-error': false");
    g_autofree char *desc = wait_for_migration_fail(to);
    g_assert_true(g_str_has_suffix(desc, "Cannot map the migration file into guest memory: "
                                   "another process holds it locked for writing"));
    assert_dest_not_resumed(to);
    qtest_quit(to);

    /* the first save still runs; once it has gone, the file is free */
    g_autofree char *st = migrate_query_status(from);
    g_assert_cmpstr(st, ==, "active");
    qtest_qmp_assert_success(from, "{'execute': 'migrate_cancel'}");
    wait_for_migration_status(from, "cancelled", ungoals);
    /* the lock went before the status said so: the same VM saves again at once */
    migrate_ensure_converge(from);
    migrate_qmp(from, uri, NULL);
    wait_for_migration_complete(from);
    qtest_quit(from);
    migrate_qmp(other, uri, NULL);
    wait_for_migration_complete(other);
    qtest_quit(other);
    to = start_dest("dest_serial", false, false);
    migrate_incoming_qmp(to, uri, NULL, NULL);
    wait_for_migration_complete(to);
    check_running_guest(to);
    qtest_quit(to);
}

/* share=on guest RAM cannot be replaced by a private mapping: the load fails, no resume. */
static void test_shared_backend(void)
{
    g_autofree char *uri = mig_make_live_saved_uri(MIG_FILE_NAME, false);
    QTestState *to = start_dest("dest_serial", true, false);

    migrate_incoming_qmp(to, uri, NULL, "'exit-on-error': false");
    g_autofree char *desc = wait_for_migration_fail(to);
    g_assert_true(g_str_has_suffix(desc,
        "RAM block 'mig.mem' is not private anonymous memory (a memory backend with "
        "share=on, a file or a memfd): x-mapped-ram-shared cannot map the migration file "
        "over it"));
    assert_dest_not_resumed(to);
    qtest_quit(to);
}

/* Each rule row of the mode, over QMP, with its message; the VM stays waiting. */
static void test_rules(void)
{
    static const struct {
        const char *caps[3];
        bool dio;
        const char *msg;
    } rows[] = {
        { { NULL }, false, "Parameter 'x-mapped-ram-shared' requires capability 'mapped-ram'" },
        { { "mapped-ram", NULL }, true,
          "Parameter 'x-mapped-ram-shared' cannot be used with 'direct-io': the file's pages "
          "are mapped, not read" },
        { { "mapped-ram", "postcopy-ram", NULL }, false,
          "Parameter 'x-mapped-ram-shared' cannot be used with capability 'postcopy-ram': "
          "choose one way to restore" },
    };
    g_autofree char *uri = mig_file_uri(MIG_FILE_NAME, NULL);

    for (size_t i = 0; i < G_N_ELEMENTS(rows); i++) {
        QTestState *to = qtest_init_bin(qtest_vm_binary(), "-m 150M -guest ab -incoming defer");
        for (size_t c = 0; rows[i].caps[c]; c++) {
            migrate_set_capability(to, rows[i].caps[c], true);
        }
        migrate_set_parameter_bool(to, SHARED_PARAM, true);
        if (rows[i].dio) {
            migrate_set_parameter_bool(to, "direct-io", true);
        }
        g_autofree char *desc = migrate_incoming_qmp_expect_error(to, uri, NULL);
        g_assert_cmpstr(desc, ==, rows[i].msg);
        g_autofree char *st = query_runstate(to);
        g_assert_cmpstr(st, ==, "inmigrate");
        qtest_quit(to);
    }
}

void migration_test_add_shared(void)
{
    migration_test_add("/migration/shared/file/mapped-ram/two-vms", test_two_vms, MIG_SMOKE);
    migration_test_add("/migration/shared/file/mapped-ram/stale-slot", test_stale_slot,
                       MIG_FULL);
    migration_test_add("/migration/shared/file/mapped-ram/save-refused", test_save_refused,
                       MIG_FULL);
    migration_test_add("/migration/shared/file/mapped-ram/save-holds-file",
                       test_save_holds_file, MIG_FULL);
    migration_test_add("/migration/shared/file/mapped-ram/shared-backend",
                       test_shared_backend, MIG_FULL);
    migration_test_add("/migration/shared/rules", test_rules, MIG_FULL);
}
