/*
 * mapram-vm as a process: its command line (bad options end it with
 * status 1 and a message naming the option and value), its run states
 * over QMP (query-status, stop/cont with STOP/RESUME events, quit with
 * SHUTDOWN), and the ab guest observed through pmemsave.
 */
#include <glib.h>
#include <glib/gstdio.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "libqtest.h"
#include "util/ab-pattern.h"

#define AB_START ((unsigned)AB_PATTERN_START)
#define AB_END   ((unsigned)AB_PATTERN_END)
#define PAGE     4096u

/* --- command line -------------------------------------------------------- */

/* Run the VM with args (space separated), return its exit status and stderr. */
static int run_vm(const char *args, char **err_out)
{
    g_autofree char *cmd = g_strdup_printf("%s %s", qtest_vm_binary(), args);
    g_auto(GStrv) argv = NULL;
    g_autoptr(GError) err = NULL;
    int status = -1;

    g_assert_true(g_shell_parse_argv(cmd, NULL, &argv, &err));
    g_assert_true(g_spawn_sync(NULL, argv, NULL, G_SPAWN_STDOUT_TO_DEV_NULL, NULL,
                               NULL, NULL, err_out, &status, &err));
    g_assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

typedef struct BadCase {
    const char *args;
    const char *message;      /* whole stderr line after "mapram-vm: " */
} BadCase;

/* QEMU's hint lines after a bad size */
#define HINT "\nOptional suffix k, M, G, T, P or E means kilo-, mega-, giga-, tera-, peta-\n" \
    "and exabytes, respectively."

static const BadCase bad_cases[] = {
    { "-xyz", "-xyz: invalid option" },
    /* -global migration.*: QEMU's property types and texts (checked against QEMU 7.2) */
    { "-global migration.x-max-bandwidth=abc", "can't apply global "
      "migration.x-max-bandwidth=abc: Parameter 'x-max-bandwidth' expects a non-negative "
      "number below 2^64" HINT },
    { "-global migration.x-max-bandwidth=-5", "can't apply global "
      "migration.x-max-bandwidth=-5: Parameter 'x-max-bandwidth' expects a non-negative "
      "number below 2^64" HINT },
    { "-global migration.x-max-bandwidth=99999999999999999999", "can't apply global "
      "migration.x-max-bandwidth=99999999999999999999: Value '99999999999999999999' is out "
      "of range for parameter 'x-max-bandwidth'" },
    { "-global migration.multifd-channels=abc", "can't apply global "
      "migration.multifd-channels=abc: Parameter 'multifd-channels' expects uint64" },
    { "-global migration.multifd-channels=300", "can't apply global "
      "migration.multifd-channels=300: Parameter 'multifd-channels' expects uint8_t" },
    { "-global migration.multifd-channels=-1", "can't apply global "
      "migration.multifd-channels=-1: Parameter 'multifd-channels' expects uint8_t" },
    { "-global migration.multifd-channels=0",
      "Parameter 'multifd_channels' expects a value between 1 and 255" },
    { "-global migration.zero-page-detection=bogus", "can't apply global "
      "migration.zero-page-detection=bogus: Parameter 'zero-page-detection' does not accept "
      "value 'bogus'" },
    { "-global migration.send-configuration=x", "can't apply global "
      "migration.send-configuration=x: Parameter 'send-configuration' expects 'on' or 'off'" },
    { "-global migration.bogus=1", "can't apply global migration.bogus=1: Property "
      "'migration.bogus' not found" },
    /* capabilities go by QEMU's property names (x-events), not their QMP names */
    { "-global migration.events=on", "can't apply global migration.events=on: Property "
      "'migration.events' not found" },
    { "-global migration.x-events=maybe", "can't apply global migration.x-events=maybe: "
      "Parameter 'x-events' expects 'on' or 'off'" },
    { "-global migration.multifd-compression=lz4", "can't apply global "
      "migration.multifd-compression=lz4: Parameter 'multifd-compression' does not accept "
      "value 'lz4'" },
    { "-global migration.multifd-zlib-level=10",
      "Parameter 'multifd_zlib_level' expects a value between 0 and 9" },
    { "-global migration.multifd-zstd-level=300", "can't apply global "
      "migration.multifd-zstd-level=300: Parameter 'multifd-zstd-level' expects uint8_t" },
    { "-global migration.x-downtime-limit=abc", "can't apply global "
      "migration.x-downtime-limit=abc: Parameter 'x-downtime-limit' expects uint64" },
    /* the capabilities the globals leave go through QEMU's rules before the VM starts */
    { "-global migration.x-postcopy-preempt=on", "Postcopy preempt requires postcopy-ram" },
    { "-global migration.x-zero-copy-send=on",
      "Zero copy only available for non-compressed non-TLS multifd migration" },
    { "-global migration.x-switchover-ack=on",
      "Capability 'switchover-ack' requires capability 'return-path'" },
    { "-global migration.x-multifd=on -global migration.x-xbzrle=on",
      "Multifd is not compatible with xbzrle" },
    { "-m", "-m: requires an argument" },
    { "-m foo", "-m foo: Parameter 'size' expects a non-negative number below 2^64" HINT },
    { "-smp 0", "-smp 0: Parameter 'cpus' expects a number between 1 and 64" },
    { "-guest nope", "-guest nope: unknown guest program 'nope' (idle, ab, fill, dirty, touch)" },
    { "-serial tcp:1", "-serial tcp:1: 'tcp' is not a valid char driver name" },
    /* QEMU 7.2's words, each checked against qemu-system-x86_64 */
    { "-object memory-backend-ram,id=m",
      "-object memory-backend-ram,id=m: Parameter 'size' is missing" },
    { "-object memory-backend-ram,id=m,size=0",
      "property 'size' of memory-backend-ram doesn't take value '0'" },
    { "-object memory-backend-file,id=m,size=1M",
      "-object memory-backend-file,id=m,size=1M: Parameter 'mem-path' is missing" },
    { "-object memory-backend-ram,id=,size=1M",
      "-object memory-backend-ram,id=,size=1M: Parameter 'id' expects an identifier\n"
      "Identifiers consist of letters, digits, '-', '.', '_', starting with a letter." },
    { "-object memory-backend-ram,id=1a,size=1M",
      "-object memory-backend-ram,id=1a,size=1M: Parameter 'id' expects an identifier\n"
      "Identifiers consist of letters, digits, '-', '.', '_', starting with a letter." },
    { "-object memory-backend-ram,id=m,size=1M,foo=1",
      "-object memory-backend-ram,id=m,size=1M,foo=1: Invalid parameter 'foo'" },
    { "-object foo,id=m", "-object foo,id=m: Parameter 'qom-type' does not accept value 'foo'" },
    { "-object memory-backend-ram,id=m,size=1M,prealloc=maybe",
      "-object memory-backend-ram,id=m,size=1M,prealloc=maybe: "
      "Parameter 'prealloc' expects 'on' or 'off'" },
    { "-object memory-backend-ram,id=m,size=1M,prealloc-threads=0",
      "property 'prealloc-threads' of memory-backend-ram doesn't take value '0'" },
    { "-object memory-backend-ram,id=m,size=1M,prealloc-threads=x",
      "-object memory-backend-ram,id=m,size=1M,prealloc-threads=x: "
      "Parameter 'prealloc-threads' expects a number between 1 and 4294967295" },
    { "-mem-prealloc x", "x: invalid option" },
    /* no monitor yet: as QEMU, an fd: name on the command line is a number */
    { "-incoming fd:abc", "-incoming fd:abc: Invalid file descriptor number 'abc'" },
    { "-vga qxl", "-vga qxl: VGA type 'qxl' is not supported by mapram-vm (std, none)" },
    { "-vga foo", "-vga foo: unknown vga type: foo" },
    { "-machine memory-backend=nope", "Memory backend 'nope' not found" },
    { "-m 100 -object memory-backend-ram,id=mem,size=150M -machine memory-backend=mem",
      "Size specified by -m option must match size of explicitly specified "
      "'memory-backend' property" },
};

static void test_cmdline_bad(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(bad_cases); i++) {
        g_autofree char *err = NULL;
        g_autofree char *want = g_strdup_printf("mapram-vm: %s\n", bad_cases[i].message);
        int rc = run_vm(bad_cases[i].args, &err);

        g_assert_cmpint(rc, ==, 1);
        g_assert_cmpstr(err, ==, want);
    }
}

/*
 * A memory-backend-file whose file holds data but less than size is
 * refused, as QEMU refuses it, and left as it was (it was grown to size:
 * a mistyped mem-path changed someone's file).
 */
static void test_cmdline_file_too_small(void)
{
    g_autofree char *dir = g_dir_make_tmp("test-vm-cmdline-XXXXXX", NULL);
    g_autofree char *path = g_build_filename(dir, "small.mem", NULL);
    g_autofree char *args = g_strdup_printf("-S -m 64M -machine memory-backend=mem "
                                            "-object memory-backend-file,id=mem,size=64M,"
                                            "mem-path=%s,share=on", path);
    g_autofree char *data = g_malloc(1 << 20);
    g_autofree char *err = NULL;
    struct stat st;

    memset(data, 0x5a, 1 << 20);
    g_assert_true(g_file_set_contents(path, data, 1 << 20, NULL));
    g_assert_cmpint(run_vm(args, &err), ==, 1);
    g_assert_cmpstr(err, ==, "mapram-vm: memory backend 'mem': backing store size 0x100000 "
                    "does not match 'size' option 0x4000000\n");
    g_assert_cmpint(stat(path, &st), ==, 0);
    g_assert_cmpint(st.st_size, ==, 1 << 20);
    unlink(path);
    rmdir(dir);
}

/* --- helpers over QMP ---------------------------------------------------- */

static char *query_status(QTestState *s, bool *running)
{
    g_autoptr(JsonObject) r = qtest_qmp_assert_success_ref(s, "{'execute': 'query-status'}");

    *running = qtest_json_get_bool(r, "running", false);
    return g_strdup(qtest_json_get_str(r, "status"));
}

static void assert_status(QTestState *s, const char *want, bool want_running)
{
    bool running;
    g_autofree char *status = query_status(s, &running);

    g_assert_cmpstr(status, ==, want);
    g_assert_cmpint(running, ==, want_running);
}

/* Bytes of guest-physical [addr, addr + size), through pmemsave. */
static GBytes *pmem_read(QTestState *s, const char *dir, uint64_t addr, uint64_t size)
{
    g_autofree char *path = g_build_filename(dir, "pmem.bin", NULL);
    g_autofree char *qpath = qtest_json_str(path);
    g_autoptr(GError) err = NULL;
    char *data;
    gsize len;

    qtest_qmp_assert_success(s, "{'execute': 'pmemsave', 'arguments': "
                             "{'val': %" G_GUINT64_FORMAT ", 'size': %" G_GUINT64_FORMAT
                             ", 'filename': %s}}", addr, size, qpath);
    g_assert_true(g_file_get_contents(path, &data, &len, &err));
    g_assert_cmpuint(len, ==, size);
    g_unlink(path);
    return g_bytes_new_take(data, len);
}

static unsigned count_char(const char *path, char c)
{
    g_autofree char *text = NULL;
    unsigned n = 0;

    if (!g_file_get_contents(path, &text, NULL, NULL)) {
        return 0;
    }
    for (const char *p = text; *p; p++) {
        n += *p == c;
    }
    return n;
}

static void wait_serial_char(const char *path, char c, unsigned count)
{
    gint64 deadline = g_get_monotonic_time() + qtest_timeout_s() * G_USEC_PER_SEC;

    while (count_char(path, c) < count) {
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        g_usleep(10 * 1000);
    }
}

/*
 * QEMU's check_guests_ram (util/ab-pattern.h) on a dump of RAM from 0.
 * That the guest ran is shown by the 'B' the callers wait for; its first
 * byte may be anything (at ~2500 passes a second it wraps often).
 */
static void assert_ab_invariant(GBytes *ram)
{
    gsize len;
    const uint8_t *p = g_bytes_get_data(ram, &len);
    g_autoptr(GError) err = NULL;

    g_assert_cmpuint(len, >=, AB_PATTERN_END);
    if (!ab_pattern_check(p + AB_PATTERN_START, AB_PATTERN_START,
                          AB_PATTERN_END - AB_PATTERN_START, &err)) {
        g_error("%s", err->message);
    }
}

/* --- QMP tests ----------------------------------------------------------- */

typedef struct VMFixture {
    char *dir;
    char *serial;
    QTestState *s;
} VMFixture;

static void vm_start_ab(VMFixture *f, const char *extra)
{
    f->dir = qtest_mkdtemp("vm");
    f->serial = g_build_filename(f->dir, "serial", NULL);
    f->s = qtest_init_bin(qtest_vm_binary(), "-m 150M -guest ab -serial file:%s %s",
                          f->serial, extra);
}

static void vm_finish(VMFixture *f)
{
    qtest_quit(f->s);
    qtest_rmtree(f->dir);
    g_free(f->serial);
    g_free(f->dir);
}

static void test_qmp_stop_cont(void)
{
    VMFixture f;
    g_autoptr(GBytes) a = NULL, b = NULL;

    vm_start_ab(&f, "");
    assert_status(f.s, "running", true);
    wait_serial_char(f.serial, 'A', 1);

    qtest_qmp_assert_success(f.s, "{'execute': 'stop'}");
    qtest_qmp_eventwait(f.s, "STOP");
    assert_status(f.s, "paused", false);
    /* Stopped means stopped: guest memory does not change any more. */
    a = pmem_read(f.s, f.dir, AB_START, PAGE * 64);
    g_usleep(200 * 1000);
    b = pmem_read(f.s, f.dir, AB_START, PAGE * 64);
    g_assert_true(g_bytes_equal(a, b));
    /* A second stop is a no-op: no second STOP event. */
    qtest_qmp_assert_success(f.s, "{'execute': 'stop'}");

    qtest_qmp_assert_success(f.s, "{'execute': 'cont'}");
    qtest_qmp_eventwait(f.s, "RESUME");
    assert_status(f.s, "running", true);
    g_assert_null(qtest_qmp_event_ref(f.s, "STOP"));
    vm_finish(&f);
}

static void test_qmp_pmemsave_ab(void)
{
    VMFixture f;
    g_autoptr(GBytes) ram = NULL;
    g_autofree char *desc = NULL;
    unsigned b_before;

    vm_start_ab(&f, "-smp 2");
    wait_serial_char(f.serial, 'B', 1);
    qtest_qmp_assert_success(f.s, "{'execute': 'stop'}");
    qtest_qmp_eventwait(f.s, "STOP");
    ram = pmem_read(f.s, f.dir, 0, AB_END);
    assert_ab_invariant(ram);

    desc = qtest_qmp_expect_error(f.s, "{'execute': 'pmemsave', 'arguments': "
                                  "{'val': %u, 'size': 4096, 'filename': '/dev/null'}}",
                                  150u << 20);
    g_assert_cmpstr(desc, ==, "Invalid addr 0x0000000009600000/size 4096 specified");

    /* The guest keeps printing once resumed. */
    b_before = count_char(f.serial, 'B');
    qtest_qmp_assert_success(f.s, "{'execute': 'cont'}");
    wait_serial_char(f.serial, 'B', b_before + 1);
    g_assert_cmpuint(count_char(f.serial, 'A'), ==, 1);
    vm_finish(&f);
}

/*
 * -m as QEMU sizes it: up to a multiple of 8 KiB (12K is 16 KiB of RAM,
 * whose pages a peer's stream must match), and -m 0 the default size.
 */
static void test_cmdline_ram_size(void)
{
    static const struct {
        const char *m;
        uint64_t size;
    } cases[] = {
        { "12K", 16384 }, { "8K", 8192 }, { "1", 1 << 20 }, { "0", 512ULL << 20 },
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        QTestState *s = qtest_init_bin(qtest_vm_binary(), "-S -vga none -m %s", cases[i].m);
        g_autofree char *desc = NULL;

        /* the last page is there, the one after it is not */
        qtest_qmp_assert_success(s, "{'execute': 'pmemsave', 'arguments': {'val': %"
                                 G_GUINT64_FORMAT ", 'size': 4096, 'filename': '/dev/null'}}",
                                 cases[i].size - 4096);
        desc = qtest_qmp_expect_error(s, "{'execute': 'pmemsave', 'arguments': {'val': %"
                                      G_GUINT64_FORMAT ", 'size': 4096, "
                                      "'filename': '/dev/null'}}", cases[i].size);
        g_assert_true(g_str_has_prefix(desc, "Invalid addr "));
        qtest_quit(s);
    }
}

/* -h, -help and --help: the usage on stdout, nothing on stderr, status 0 (as QEMU). */
static void test_cmdline_help(void)
{
    static const char *const forms[] = { "-h", "-help", "--help" };

    for (size_t i = 0; i < G_N_ELEMENTS(forms); i++) {
        const char *argv[] = { qtest_vm_binary(), forms[i], NULL };
        g_autofree char *out = NULL, *err = NULL;
        int status = -1;

        g_assert_true(g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_DEFAULT, NULL, NULL,
                                   &out, &err, &status, NULL));
        g_assert_true(WIFEXITED(status));
        g_assert_cmpint(WEXITSTATUS(status), ==, 0);
        g_assert_true(g_str_has_prefix(out, "usage: mapram-vm [options]\n"));
        g_assert_nonnull(strstr(out, "-global migration.NAME=VALUE"));
        g_assert_cmpstr(err, ==, "");
    }
}

/* -global migration.*: sizes with suffixes and hex, as QEMU's property types read them */
static void test_cmdline_global_values(void)
{
    QTestState *s = qtest_init_bin(qtest_vm_binary(), "-S -vga none -m 8M "
                                   "-global migration.x-max-bandwidth=1.5M "
                                   "-global migration.multifd-channels=0x10 "
                                   "-global migration.zero-page-detection=legacy "
                                   "-global migration.multifd-compression=zstd "
                                   "-global migration.multifd-zstd-level=3 "
                                   "-global migration.x-downtime-limit=5000 "
                                   "-global migration.x-events=on "
                                   "-global migration.x-return-path=yes");
    JsonObject *p = qtest_qmp_assert_success_ref(s, "{'execute': 'query-migrate-parameters'}");

    g_assert_cmpint(json_object_get_int_member(p, "max-bandwidth"), ==, 1572864);
    g_assert_cmpint(json_object_get_int_member(p, "multifd-channels"), ==, 16);
    g_assert_cmpstr(json_object_get_string_member(p, "zero-page-detection"), ==, "legacy");
    g_assert_cmpstr(json_object_get_string_member(p, "multifd-compression"), ==, "zstd");
    g_assert_cmpint(json_object_get_int_member(p, "multifd-zstd-level"), ==, 3);
    g_assert_cmpint(json_object_get_int_member(p, "downtime-limit"), ==, 5000);
    json_object_unref(p);
    g_autoptr(JsonNode) caps = qtest_qmp_assert_success_node(s,
        "{'execute': 'query-migrate-capabilities'}");
    unsigned on = 0;
    JsonArray *a = json_node_get_array(caps);
    for (guint i = 0; i < json_array_get_length(a); i++) {
        JsonObject *c = json_array_get_object_element(a, i);
        if (json_object_get_boolean_member(c, "state")) {
            const char *name = json_object_get_string_member(c, "capability");
            g_assert_true(!strcmp(name, "events") || !strcmp(name, "return-path"));
            on++;
        }
    }
    g_assert_cmpuint(on, ==, 2);
    qtest_quit(s);
}

/*
 * -vga none: no "vga.vram" block, so nothing at the framebuffer's address
 * (0xfd000000 below 4 GiB); -vga std has it; the BIOS stays where it is.
 */
static void test_vga_none(void)
{
    static const char *const vga[] = { "-vga std", "-vga none" };

    for (size_t i = 0; i < G_N_ELEMENTS(vga); i++) {
        VMFixture f;
        g_autoptr(GBytes) bios = NULL;
        g_autofree char *args = g_strdup_printf("-S %s", vga[i]);
#define FB_SAVE "{'execute': 'pmemsave', 'arguments': " \
                "{'val': 4244635648, 'size': 4096, 'filename': '/dev/null'}}"

        vm_start_ab(&f, args);
        if (i == 0) {
            qtest_qmp_assert_success(f.s, FB_SAVE);
        } else {
            g_autofree char *desc = qtest_qmp_expect_error(f.s, FB_SAVE);
            g_assert_cmpstr(desc, ==, "Invalid addr 0x00000000fd000000/size 4096 specified");
        }
        bios = pmem_read(f.s, f.dir, 4ULL * 1024 * 1024 * 1024 - 256 * 1024, 16);
        g_assert_cmpmem(g_bytes_get_data(bios, NULL), 11, "MAPRAM-BIOS", 11);
        vm_finish(&f);
    }
#undef FB_SAVE
}

static void test_qmp_quit(void)
{
    VMFixture f;
    g_autoptr(JsonObject) ev = NULL;
    JsonObject *data;

    vm_start_ab(&f, "");
    qtest_qmp_assert_success(f.s, "{'execute': 'quit'}");
    ev = qtest_qmp_eventwait_ref(f.s, "SHUTDOWN");
    data = qtest_json_get_obj(ev, "data");
    g_assert_cmpstr(qtest_json_get_str(data, "reason"), ==, "host-qmp-quit");
    g_assert_false(qtest_json_get_bool(data, "guest", true));
    g_assert_cmpint(qtest_wait_exit(f.s, 0), ==, 0);
    vm_finish(&f);
}

/* -S waits in prelaunch without running the guest; cont starts it. */
static void test_runstate_prelaunch(void)
{
    VMFixture f;

    vm_start_ab(&f, "-S");
    assert_status(f.s, "prelaunch", false);
    g_usleep(100 * 1000);
    g_assert_cmpuint(count_char(f.serial, 'A'), ==, 0);
    qtest_qmp_assert_success(f.s, "{'execute': 'cont'}");
    qtest_qmp_eventwait(f.s, "RESUME");
    assert_status(f.s, "running", true);
    wait_serial_char(f.serial, 'A', 1);
    vm_finish(&f);
}

/* cont while waiting for an incoming migration only sets autostart. */
static void test_runstate_inmigrate(void)
{
    VMFixture f;

    vm_start_ab(&f, "-incoming defer");
    assert_status(f.s, "inmigrate", false);
    qtest_qmp_assert_success(f.s, "{'execute': 'cont'}");
    assert_status(f.s, "inmigrate", false);
    g_assert_null(qtest_qmp_eventwait_timeout(f.s, "RESUME", 100));
    g_assert_cmpuint(count_char(f.serial, 'A'), ==, 0);
    vm_finish(&f);
}

/* Main RAM from a memory backend: QEMU's migration-test machine. */
static void test_memory_backend_ab(void)
{
    static const char *const kinds[] = { "ram", "memfd", "file" };

    for (size_t i = 0; i < G_N_ELEMENTS(kinds); i++) {
        VMFixture f;
        g_autoptr(GBytes) ram = NULL;
        g_autofree char *extra = NULL;
        g_autofree char *tmp = qtest_mkdtemp("mem");

        extra = g_strdup_printf("-machine memory-backend=mig.mem -object "
                                "memory-backend-%s,id=mig.mem,size=150M%s%s",
                                kinds[i], i == 2 ? ",mem-path=" : "",
                                i == 2 ? tmp : "");
        vm_start_ab(&f, extra);
        wait_serial_char(f.serial, 'B', 1);
        qtest_qmp_assert_success(f.s, "{'execute': 'stop'}");
        ram = pmem_read(f.s, f.dir, 0, AB_END);
        assert_ab_invariant(ram);
        vm_finish(&f);
        qtest_rmtree(tmp);
    }
}

static uint64_t vm_rss_kib(QTestState *s)
{
    g_autofree char *path = g_strdup_printf("/proc/%d/status", (int)qtest_pid(s));
    g_autofree char *text = NULL;
    const char *p;

    g_assert_true(g_file_get_contents(path, &text, NULL, NULL));
    p = strstr(text, "VmRSS:");
    g_assert_nonnull(p);
    return g_ascii_strtoull(p + strlen("VmRSS:"), NULL, 10);
}

/*
 * -mem-prealloc backs all guest RAM before the VM runs (the guest here is
 * idle and touches nothing); without it RAM is backed on first touch.
 * prealloc=on on a file backend keeps what the file holds.
 */
static void test_mem_prealloc(void)
{
    const uint64_t ram_kib = 128 * 1024;
    g_autofree char *tmp = qtest_mkdtemp("prealloc");
    g_autofree char *file = g_build_filename(tmp, "ram", NULL);
    g_autofree char *pattern = g_malloc(PAGE);
    g_autoptr(GError) err = NULL;
    g_autoptr(GBytes) page = NULL;
    QTestState *s;

    s = qtest_init_bin(qtest_vm_binary(), "-m 128M");
    g_assert_cmpuint(vm_rss_kib(s), <, ram_kib / 2);
    qtest_quit(s);

    s = qtest_init_bin(qtest_vm_binary(), "-m 128M -smp 2 -mem-prealloc");
    g_assert_cmpuint(vm_rss_kib(s), >=, ram_kib);
    qtest_quit(s);

    memset(pattern, 0x5a, PAGE);
    g_assert_true(g_file_set_contents(file, pattern, PAGE, &err));
    /* as big as the backend (QEMU refuses a smaller file with data), its first page data */
    g_assert_cmpint(truncate(file, 128 << 20), ==, 0);
    s = qtest_init_bin(qtest_vm_binary(), "-m 128M -object memory-backend-file,id=m,"
                       "size=128M,mem-path=%s,prealloc=on,prealloc-threads=3 "
                       "-machine memory-backend=m", file);
    page = pmem_read(s, tmp, 0, PAGE);
    g_assert_cmpmem(g_bytes_get_data(page, NULL), PAGE, pattern, PAGE);
    qtest_quit(s);
    qtest_rmtree(tmp);
}

/* A backend whose store cannot hold it: QEMU's message, exit status 1. */
static void test_mem_prealloc_fail(void)
{
    g_autofree char *mnt = qtest_mkdtemp("prealloc-tmpfs");
    g_autofree char *mount_cmd = g_strdup_printf("mount -t tmpfs -o size=8m tmpfs %s 2>/dev/null",
                                                 mnt);
    g_autofree char *umount_cmd = g_strdup_printf("umount -l %s", mnt);
    g_autofree char *args = NULL;
    g_autofree char *err = NULL;

    if (system(mount_cmd) != 0) {
        g_test_skip("cannot mount a small tmpfs here");
        qtest_rmtree(mnt);
        return;
    }
    args = g_strdup_printf("-m 32M -object memory-backend-file,id=m,size=32M,"
                           "mem-path=%s/ram,prealloc=on -machine memory-backend=m", mnt);
    g_assert_cmpint(run_vm(args, &err), ==, 1);
    /* QEMU's words; MADV_POPULATE_WRITE fails with EFAULT on a full tmpfs */
    g_assert_cmpstr(err, ==, "mapram-vm: qemu_prealloc_mem: preallocating memory "
                    "failed: Bad address\n");
    g_assert_cmpint(system(umount_cmd), ==, 0);
    qtest_rmtree(mnt);
}

/* Guest RAM once the fill program stopped changing it. */
static GBytes *fill_result(QTestState *s, const char *dir, uint64_t size)
{
    gint64 deadline = g_get_monotonic_time() + qtest_timeout_s() * G_USEC_PER_SEC;
    g_autoptr(GBytes) prev = pmem_read(s, dir, 0, size);

    for (;;) {
        GBytes *cur;

        g_usleep(100 * 1000);
        cur = pmem_read(s, dir, 0, size);
        if (g_bytes_equal(prev, cur)) {
            return cur;
        }
        g_bytes_unref(prev);
        prev = cur;
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
    }
}

/*
 * fill: the content depends on the seed only, not on how many vCPUs
 * shared the work, and the mix is about what was asked for.
 */
static void test_guest_fill(void)
{
    const uint64_t size = 64u << 20;
    g_autofree char *dir = qtest_mkdtemp("fill");
    g_autoptr(GBytes) one = NULL, two = NULL, other = NULL;
    QTestState *s;
    const uint8_t *p;
    unsigned zero = 0, text = 0, pages = size / PAGE;

    s = qtest_init_bin(qtest_vm_binary(), "-m 64M -smp 1 -guest fill,seed=5");
    one = fill_result(s, dir, size);
    qtest_quit(s);
    s = qtest_init_bin(qtest_vm_binary(), "-m 64M -smp 3 -guest fill,seed=5");
    two = fill_result(s, dir, size);
    qtest_quit(s);
    s = qtest_init_bin(qtest_vm_binary(),
                       "-m 64M -smp 2 -guest fill,seed=6,zero=20,text=80,chunk=1");
    other = fill_result(s, dir, size);
    qtest_quit(s);
    g_assert_true(g_bytes_equal(one, two));
    g_assert_false(g_bytes_equal(one, other));

    p = g_bytes_get_data(one, NULL);
    for (unsigned i = 0; i < pages; i++) {
        const uint8_t *pg = p + (size_t)i * PAGE;
        bool all_zero = true, ascii = true;

        for (unsigned j = 0; j < PAGE; j++) {
            all_zero &= pg[j] == 0;
            ascii &= pg[j] == '\n' || (pg[j] >= ' ' && pg[j] < 127);
        }
        zero += all_zero;
        text += ascii;
    }
    /* 50/25/25 by default, decided per 16-page chunk: 1024 decisions */
    g_assert_cmpuint(zero, >, pages * 40 / 100);
    g_assert_cmpuint(zero, <, pages * 60 / 100);
    g_assert_cmpuint(text, >, pages * 15 / 100);
    g_assert_cmpuint(text, <, pages * 35 / 100);
    qtest_rmtree(dir);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/system/cmdline/bad-options", test_cmdline_bad);
    g_test_add_func("/system/cmdline/file-too-small", test_cmdline_file_too_small);
    g_test_add_func("/system/cmdline/ram-size", test_cmdline_ram_size);
    g_test_add_func("/system/cmdline/global-values", test_cmdline_global_values);
    g_test_add_func("/system/cmdline/help", test_cmdline_help);
    g_test_add_func("/system/qmp/stop-cont", test_qmp_stop_cont);
    g_test_add_func("/system/qmp/pmemsave/ab", test_qmp_pmemsave_ab);
    g_test_add_func("/system/qmp/quit", test_qmp_quit);
    g_test_add_func("/system/vga/none", test_vga_none);
    g_test_add_func("/system/runstate/prelaunch", test_runstate_prelaunch);
    g_test_add_func("/system/runstate/inmigrate/cont", test_runstate_inmigrate);
    g_test_add_func("/system/memory-backend/ab", test_memory_backend_ab);
    g_test_add_func("/system/memory-backend/prealloc", test_mem_prealloc);
    g_test_add_func("/system/memory-backend/prealloc/fail", test_mem_prealloc_fail);
    g_test_add_func("/system/guest/fill", test_guest_fill);
    return g_test_run();
}
