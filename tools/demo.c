/*
 * mapram demo: the project's main job, shown end to end with real
 * processes.  Two mapram-vm processes run the "ab" guest; the source is
 * saved live to a mapped-ram file with 4 multifd channels (and O_DIRECT
 * where the directory's file system supports it), the destination
 * restores from that file and resumes, and the guest's memory is checked
 * on both sides with the ab invariant.  Every step is narrated on stdout,
 * so the output doubles as a walk-through of the QMP a management layer
 * sends.  Exit status 0 only if every check passed.
 *
 * With --netns (root) the job is live migration between two hosts: each
 * VM runs in a network namespace of its own (`ip netns exec`), the two
 * joined by a veth pair, and the source migrates straight to the
 * destination over tcp with 4 multifd channels (--compression for zlib
 * or zstd); the namespaces go when the demo ends, also after a failure.
 */
#include "mapram-tool.h"
#include "qmp-client.h"
#include "util/ab-pattern.h"
#include "util/cutils.h"
#include "util/error.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib/gstdio.h>

#define DEMO_CHANNELS    4
#define DEMO_POLL_MS     50               /* query-migrate on the source */
#define DEMO_PRINT_MS    200              /* a progress line at most this often */
#define DEMO_START_MS    20000            /* a VM's QMP socket appears */
#define DEMO_GUEST_MS    120000           /* a 'B' on a serial; a migration */
#define DEMO_NET_SRC     "10.204.0.1"     /* --netns: the source's veth end */
#define DEMO_NET_DST     "10.204.0.2"     /* the destination's */

typedef struct DemoVm {
    const char *role;      /* "source" / "destination" */
    GPid pid;              /* 0 once reaped */
    char *qmp_path;
    char *serial_path;
    char *log_path;        /* the VM's stdout and stderr */
    QmpClient *qmp;
} DemoVm;

typedef struct Demo {
    char *vm_bin;
    char *dir;             /* where the save file goes */
    char *size;            /* -m */
    uint64_t ram_bytes;
    gboolean keep;
    char *workdir;         /* sockets, serials, dumps, logs (removed) */
    char *file;            /* the save file */
    bool direct_io;
    gint64 t0;
    DemoVm src, dst;
    uint64_t check_end;    /* ab range end, clipped to RAM */
    gboolean netns;        /* live migration between network namespaces */
    char *compression;     /* --netns: multifd-compression */
    char ns[2][32];        /* --netns: [0] source's, [1] destination's; "" once gone */
    char dev[2][32];       /* the veth end in each */
    char *uri;             /* --netns: where the source connects */
} Demo;

/* --- narration ------------------------------------------------------------ */

static void say(Demo *d, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

static void say(Demo *d, const char *fmt, ...)
{
    va_list ap;
    double t = (g_get_monotonic_time() - d->t0) / 1e6;

    printf("[%7.2fs] ", t);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

static char *human(uint64_t bytes)
{
    return size_to_str(bytes);
}

static double gbps(uint64_t bytes, gint64 ms)
{
    return ms > 0 ? bytes / (ms / 1000.0) / 1e9 : 0;
}

/* --- finding the VM ------------------------------------------------------- */

/*
 * The tool runs as BUILD/tools/mapram (or through the BUILD/mapram link,
 * which /proc/self/exe resolves); the VM is BUILD/system/mapram-vm, or
 * BUILD/mapram-vm, or installed beside the tool, or on PATH.
 */
static char *find_vm_binary(void)
{
    g_autofree char *self = g_file_read_link("/proc/self/exe", NULL);
    if (self) {
        g_autofree char *bindir = g_path_get_dirname(self);
        g_autofree char *build = g_path_get_dirname(bindir);
        const char *cands[][2] = {
            { build, "system/mapram-vm" },
            { build, "mapram-vm" },
            { bindir, "mapram-vm" },
        };
        for (size_t i = 0; i < G_N_ELEMENTS(cands); i++) {
            g_autofree char *p = g_build_filename(cands[i][0], cands[i][1], NULL);
            if (g_file_test(p, G_FILE_TEST_IS_EXECUTABLE | G_FILE_TEST_IS_REGULAR)) {
                return g_steal_pointer(&p);
            }
        }
    }
    return g_find_program_in_path("mapram-vm");
}

/* QEMU's probe: an aligned O_DIRECT write of 1 MiB at a 1 MiB offset. */
static bool probe_o_direct(const char *dir)
{
    g_autofree char *path = g_build_filename(dir, ".mapram-demo-odirect", NULL);
    size_t len = 1 << 20;
    void *buf = NULL;
    ssize_t n = -1;
    int fd = open(path, O_CREAT | O_RDWR | O_TRUNC | O_DIRECT | O_CLOEXEC, 0600);

    if (fd < 0) {
        return false;
    }
    if (posix_memalign(&buf, len, len) == 0) {
        memset(buf, 0, len);
        n = pwrite(fd, buf, len, len);
        free(buf);
    }
    close(fd);
    g_unlink(path);
    return n == (ssize_t)len;
}

/* --- VM processes --------------------------------------------------------- */

static bool vm_connect(DemoVm *vm, GError **errp);

/* `ip`, for `ip netns ...`: root's PATH has it, a user's may not. */
static const char *ip_binary(void)
{
    static const char *const paths[] = { "/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip" };

    for (size_t i = 0; i < G_N_ELEMENTS(paths); i++) {
        if (g_file_test(paths[i], G_FILE_TEST_IS_EXECUTABLE)) {
            return paths[i];
        }
    }
    return "ip";
}

static bool vm_spawn(Demo *d, DemoVm *vm, bool incoming, GError **errp)
{
    g_autofree char *qmp = g_strdup_printf("unix:%s,server=on,wait=off", vm->qmp_path);
    g_autofree char *serial = g_strdup_printf("file:%s", vm->serial_path);
    /* with --netns, `ip netns exec NS` first: it execs the VM in place */
    const char *argv[] = {
        ip_binary(), "netns", "exec", d->ns[incoming],
        d->vm_bin, "-m", d->size, "-guest", "ab", "-serial", serial,
        "-qmp", qmp, "-incoming", "defer", NULL,
    };
    const char **args = d->netns ? argv : argv + 4;

    if (!incoming) {
        argv[13] = NULL;                /* the source takes no -incoming */
    }
    int log = open(vm->log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

    if (log < 0) {
        error_setg_errno(errp, errno, "Could not create '%s'", vm->log_path);
        return false;
    }
    bool ok = g_spawn_async_with_pipes_and_fds(NULL, args, NULL,
                                               G_SPAWN_DO_NOT_REAP_CHILD |
                                               G_SPAWN_STDIN_FROM_DEV_NULL,
                                               NULL, NULL, -1, log, log,
                                               NULL, NULL, 0, &vm->pid,
                                               NULL, NULL, NULL, errp);
    close(log);
    ok = ok && vm_connect(vm, errp);
    if (!ok) {
        g_prefix_error(errp, "Starting the %s VM: ", vm->role);
    }
    return ok;
}

/* Reap @vm if it exited within @ms; true if it is gone. */
static bool vm_reap(DemoVm *vm, unsigned ms)
{
    gint64 deadline = g_get_monotonic_time() + (gint64)ms * 1000;

    while (vm->pid > 0) {
        int status;
        pid_t r = waitpid(vm->pid, &status, WNOHANG);
        if (r == vm->pid || (r < 0 && errno == ECHILD)) {
            vm->pid = 0;
            break;
        }
        if (g_get_monotonic_time() > deadline) {
            return false;
        }
        g_usleep(10 * 1000);
    }
    return true;
}

/*
 * Connect to the VM's QMP socket once it appears, in short attempts so
 * that a VM that dies at start-up (bad option, no memory) is reported at
 * once with its exit status rather than after the whole timeout.
 */
static bool vm_connect(DemoVm *vm, GError **errp)
{
    gint64 deadline = g_get_monotonic_time() + (gint64)DEMO_START_MS * 1000;

    for (;;) {
        g_autoptr(GError) err = NULL;
        int status;

        vm->qmp = qmp_client_connect(vm->qmp_path, 100, &err);
        if (vm->qmp) {
            return true;
        }
        if (waitpid(vm->pid, &status, WNOHANG) == vm->pid) {
            vm->pid = 0;
            error_setg(errp, "mapram-vm exited (%s %d) before its QMP socket was up",
                       WIFEXITED(status) ? "status" : "signal",
                       WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
            return false;
        }
        if (g_get_monotonic_time() > deadline) {
            g_propagate_error(errp, g_steal_pointer(&err));
            return false;
        }
    }
}

/* quit over QMP; a VM that does not go is killed (it is ours). */
static void vm_stop_process(DemoVm *vm)
{
    if (vm->qmp) {
        g_autoptr(GError) err = NULL;
        qmp_client_set_timeout(vm->qmp, 5000);
        qmp_client_quit(vm->qmp, &err);
        g_clear_pointer(&vm->qmp, qmp_client_free);
    }
    if (vm->pid > 0 && !vm_reap(vm, 5000)) {
        kill(vm->pid, SIGKILL);
        vm_reap(vm, 5000);
    }
}

/* After a failure, show what the VM printed. */
static void vm_show_log(const DemoVm *vm)
{
    g_autofree char *text = NULL;

    if (g_file_get_contents(vm->log_path, &text, NULL, NULL) && *text) {
        fprintf(stderr, "--- %s VM output ---\n%s", vm->role, text);
    }
}

static bool vm_cmd(DemoVm *vm, const char *cmd, JsonObject *args, GError **errp)
{
    g_autoptr(JsonNode) ret = qmp_client_execute(vm->qmp, cmd, args, errp);
    if (!ret) {
        g_prefix_error(errp, "%s: ", vm->role);
    }
    return ret != NULL;
}

static char *vm_runstate(DemoVm *vm, GError **errp)
{
    g_autoptr(JsonObject) st = qmp_client_execute_obj(vm->qmp, "query-status", NULL, errp);
    return st ? g_strdup(json_object_get_string_member(st, "status")) : NULL;
}

/* --- guest checks --------------------------------------------------------- */

/* Wait for a 'B' on @vm's serial; anything but 'A' and 'B' is wrong. */
static bool wait_for_b(DemoVm *vm, GError **errp)
{
    gint64 deadline = g_get_monotonic_time() + (gint64)DEMO_GUEST_MS * 1000;

    for (;;) {
        g_autofree char *text = NULL;
        gsize len = 0;

        if (g_file_get_contents(vm->serial_path, &text, &len, NULL)) {
            for (gsize i = 0; i < len; i++) {
                if (text[i] == 'B') {
                    return true;
                }
                if (text[i] != 'A') {
                    error_setg(errp, "%s: unexpected byte 0x%02x at %zu on the serial",
                               vm->role, (unsigned char)text[i], (size_t)i);
                    return false;
                }
            }
        }
        if (g_get_monotonic_time() > deadline) {
            error_setg(errp, "%s: no 'B' on the serial '%s' within %d s",
                       vm->role, vm->serial_path, DEMO_GUEST_MS / 1000);
            return false;
        }
        g_usleep(5 * 1000);
    }
}

/* pmemsave the ab range of a stopped VM and check it (util/ab-pattern.h). */
static bool check_guest_memory(Demo *d, DemoVm *vm, GError **errp)
{
    g_autofree char *dump = g_strdup_printf("%s/%s.pmem", d->workdir, vm->role);
    uint64_t len = d->check_end - AB_PATTERN_START;
    JsonObject *args = json_object_new();

    json_object_set_int_member(args, "val", AB_PATTERN_START);
    json_object_set_int_member(args, "size", len);
    json_object_set_string_member(args, "filename", dump);
    if (!vm_cmd(vm, "pmemsave", args, errp)) {
        return false;
    }
    g_autofree char *mem = NULL;
    gsize got = 0;
    if (!g_file_get_contents(dump, &mem, &got, errp)) {
        return false;
    }
    g_unlink(dump);
    if (got != len) {
        error_setg(errp, "%s: pmemsave wrote %zu bytes, not %llu", vm->role,
                   (size_t)got, (unsigned long long)len);
        return false;
    }
    if (!ab_pattern_check((const uint8_t *)mem, AB_PATTERN_START, len, errp)) {
        g_prefix_error(errp, "%s: ", vm->role);
        return false;
    }
    say(d, "%s: guest memory checked: ab pattern intact over [1 MiB, %llu MiB) "
        "(%llu pages, first byte 0x%02x)", vm->role,
        (unsigned long long)(d->check_end >> 20),
        (unsigned long long)(len / AB_PATTERN_PAGE), (uint8_t)mem[0]);
    return true;
}

/* --- migration ------------------------------------------------------------ */

static bool set_caps(Demo *d, DemoVm *vm, GError **errp)
{
    static const char *const caps[] = { "events", "multifd", "mapped-ram" };
    /* between hosts there is no file: no mapped-ram */
    size_t ncaps = d->netns ? 2 : 3;
    JsonArray *list = json_array_new();

    for (size_t i = 0; i < ncaps; i++) {
        JsonObject *c = json_object_new();
        json_object_set_string_member(c, "capability", caps[i]);
        json_object_set_boolean_member(c, "state", TRUE);
        json_array_add_object_element(list, c);
    }
    JsonObject *args = json_object_new();
    json_object_set_array_member(args, "capabilities", list);
    if (!vm_cmd(vm, "migrate-set-capabilities", args, errp)) {
        return false;
    }
    JsonObject *params = json_object_new();
    json_object_set_int_member(params, "multifd-channels", DEMO_CHANNELS);
    if (d->netns) {
        json_object_set_string_member(params, "multifd-compression", d->compression);
    } else {
        json_object_set_boolean_member(params, "direct-io", d->direct_io);
    }
    if (vm == &d->src) {
        /* 0 = no limit: at the disk's or the link's speed */
        json_object_set_int_member(params, "max-bandwidth", 0);
    }
    return vm_cmd(vm, "migrate-set-parameters", params, errp);
}

static JsonObject *query_migrate(DemoVm *vm, GError **errp)
{
    JsonObject *o = qmp_client_execute_obj(vm->qmp, "query-migrate", NULL, errp);
    if (!o) {
        g_prefix_error(errp, "%s: ", vm->role);
    }
    return o;
}

static gint64 member_int(JsonObject *o, const char *name)
{
    return o && json_object_has_member(o, name) ? json_object_get_int_member(o, name) : 0;
}

static JsonObject *ram_of(JsonObject *q)
{
    return json_object_has_member(q, "ram") ? json_object_get_object_member(q, "ram") : NULL;
}

/*
 * One progress line: how much guest RAM the save has been through (pages
 * written plus zero pages skipped, so a pass over mostly zero RAM still
 * moves), how much it wrote, and how much is still dirty.  Rates are over
 * the time since the previous sample; a sample without "ram" (setup) has
 * none, and the next one is measured from it.
 */
typedef struct Sample {
    bool has_ram;
    uint64_t done, written;
    gint64 us;
} Sample;

static void progress_line(Demo *d, JsonObject *q, Sample *last)
{
    JsonObject *ram = ram_of(q);
    const char *status = json_object_get_string_member(q, "status");
    Sample now = { .has_ram = ram != NULL, .us = g_get_monotonic_time() };

    if (!ram) {
        say(d, "  %-7s %s", status, d->netns ? "connecting the main and multifd channels"
                                            : "laying out the file and opening the page channels");
        *last = now;
        return;
    }
    now.done = (member_int(ram, "normal") + member_int(ram, "duplicate")) *
               member_int(ram, "page-size");
    now.written = member_int(ram, "transferred");
    double dt = (now.us - last->us) / 1e6;
    bool rates = last->has_ram && dt > 0;
    double drate = rates ? (double)(now.done - last->done) / dt : 0;
    double wrate = rates ? (double)(now.written - last->written) / dt : 0;
    g_autofree char *done = human(now.done);
    g_autofree char *wr = human(now.written);
    g_autofree char *rem = human(member_int(ram, "remaining"));

    say(d, "  %-7s pass %-3lld RAM done %9s (%5.2f GB/s)  written %9s (%5.2f GB/s)  "
        "dirty %9s", status, (long long)member_int(ram, "dirty-sync-count"), done,
        drate / 1e9, wr, wrate / 1e9, rem);
    *last = now;
}

/*
 * Poll the source until the migration ends; returns its final
 * query-migrate.  Polled often but printed every DEMO_PRINT_MS, and the
 * first sample always, so that even a save shorter than that shows one.
 */
static JsonObject *follow_migration(Demo *d, GError **errp)
{
    Sample last = { .us = g_get_monotonic_time() };
    gint64 deadline = last.us + (gint64)DEMO_GUEST_MS * 1000;
    bool printed = false;

    for (;;) {
        g_usleep(DEMO_POLL_MS * 1000);
        JsonObject *q = query_migrate(&d->src, errp);
        if (!q) {
            return NULL;
        }
        const char *st = json_object_get_string_member(q, "status");
        if (!strcmp(st, "completed") || !strcmp(st, "failed") ||
            !strcmp(st, "cancelled")) {
            return q;
        }
        if (!printed || g_get_monotonic_time() - last.us >= DEMO_PRINT_MS * 1000) {
            progress_line(d, q, &last);
            printed = true;
        }
        json_object_unref(q);
        if (g_get_monotonic_time() > deadline) {
            error_setg(errp, "source: migration still '%s' after %d s", st,
                       DEMO_GUEST_MS / 1000);
            return NULL;
        }
    }
}

static void report_file(Demo *d)
{
    struct stat st;

    if (stat(d->file, &st) < 0) {
        return;
    }
    g_autofree char *logical = human(st.st_size);
    g_autofree char *alloc = human((uint64_t)st.st_blocks * 512);
    say(d, "save file: logical size %s, allocated %s (zero pages are holes; "
        "re-dirtied pages were rewritten in place)", logical, alloc);
}

static bool save(Demo *d, GError **errp)
{
    g_autofree char *uri = g_strdup_printf("file:%s", d->file);
    JsonObject *args = json_object_new();

    json_object_set_string_member(args, "uri", uri);
    say(d, "source: migrate {\"uri\": \"%s\"} (live: the guest keeps running)", uri);
    if (!vm_cmd(&d->src, "migrate", args, errp)) {
        return false;
    }
    g_autoptr(JsonObject) q = follow_migration(d, errp);
    if (!q) {
        return false;
    }
    const char *st = json_object_get_string_member(q, "status");
    if (strcmp(st, "completed")) {
        const char *why = json_object_has_member(q, "error-desc") ?
                          json_object_get_string_member(q, "error-desc") : "no reason given";
        error_setg(errp, "source: migration %s: %s", st, why);
        return false;
    }
    JsonObject *ram = ram_of(q);
    gint64 total = member_int(q, "total-time");
    uint64_t bytes = member_int(ram, "transferred");
    g_autofree char *tr = human(bytes);
    g_autofree char *nb = human(member_int(ram, "normal-bytes"));
    say(d, "source: completed in %lld ms (setup %lld ms, downtime %lld ms, %lld passes)",
        (long long)total, (long long)member_int(q, "setup-time"),
        (long long)member_int(q, "downtime"), (long long)member_int(ram, "dirty-sync-count"));
    say(d, "source: %s written (%s of page data, %lld zero pages skipped), %.2f GB/s; "
        "guest RAM at %.2f GB/s", tr, nb, (long long)member_int(ram, "duplicate"),
        gbps(bytes, total), gbps(d->ram_bytes, total));
    report_file(d);
    return true;
}

/* Wait for MIGRATION {"status": completed|failed} on @vm. */
static bool wait_incoming_done(DemoVm *vm, GError **errp)
{
    for (;;) {
        g_autoptr(JsonObject) ev = qmp_client_wait_event(vm->qmp, "MIGRATION",
                                                         DEMO_GUEST_MS, errp);
        if (!ev) {
            g_prefix_error(errp, "%s: ", vm->role);
            return false;
        }
        JsonObject *data = json_object_get_object_member(ev, "data");
        const char *st = data ? json_object_get_string_member(data, "status") : "";
        if (!strcmp(st, "completed")) {
            return true;
        }
        if (!strcmp(st, "failed")) {
            g_autoptr(JsonObject) q = query_migrate(vm, NULL);
            error_setg(errp, "%s: restore failed: %s", vm->role,
                       q && json_object_has_member(q, "error-desc") ?
                       json_object_get_string_member(q, "error-desc") : "see its output");
            return false;
        }
    }
}

static bool restore(Demo *d, GError **errp)
{
    g_autofree char *uri = g_strdup_printf("file:%s", d->file);
    JsonObject *args = json_object_new();
    struct stat st = { 0 };

    json_object_set_string_member(args, "uri", uri);
    say(d, "destination: migrate-incoming {\"uri\": \"%s\"}", uri);
    gint64 t = g_get_monotonic_time();
    if (!vm_cmd(&d->dst, "migrate-incoming", args, errp) ||
        !wait_incoming_done(&d->dst, errp)) {
        return false;
    }
    gint64 ms = (g_get_monotonic_time() - t) / 1000;
    stat(d->file, &st);
    say(d, "destination: restore completed in %lld ms: guest RAM at %.2f GB/s, "
        "allocated file data at %.2f GB/s", (long long)ms, gbps(d->ram_bytes, ms),
        gbps((uint64_t)st.st_blocks * 512, ms));

    g_autoptr(JsonObject) ev = qmp_client_wait_event(d->dst.qmp, "RESUME", DEMO_START_MS, errp);
    if (!ev) {
        g_prefix_error(errp, "destination: ");
        return false;
    }
    g_autofree char *state = vm_runstate(&d->dst, errp);
    if (!state) {
        return false;
    }
    if (strcmp(state, "running")) {
        error_setg(errp, "destination: run state is '%s' after RESUME", state);
        return false;
    }
    say(d, "destination: resumed (RESUME event; query-status: running) %lld ms after "
        "migrate-incoming", (long long)(g_get_monotonic_time() - t) / 1000);
    return true;
}

/* --- between hosts: network namespaces ----------------------------------- */

/* `ip ARGS...`; its stderr in the error when it fails. */
static bool run_ip(GError **errp, const char *const *args)
{
    g_autoptr(GPtrArray) argv = g_ptr_array_new();
    g_autofree char *out = NULL, *err_text = NULL;
    int status = 0;

    g_ptr_array_add(argv, (char *)ip_binary());
    for (; *args; args++) {
        g_ptr_array_add(argv, (char *)*args);
    }
    g_ptr_array_add(argv, NULL);
    if (!g_spawn_sync(NULL, (char **)argv->pdata, NULL, G_SPAWN_DEFAULT, NULL, NULL,
                      &out, &err_text, &status, errp)) {
        return false;
    }
    if (!g_spawn_check_wait_status(status, NULL)) {
        g_autofree char *line = g_strjoinv(" ", (char **)argv->pdata);
        error_setg(errp, "'%s' failed: %s", line, g_strstrip(err_text));
        return false;
    }
    return true;
}

#define IP(errp, ...) run_ip(errp, (const char *const[]){ __VA_ARGS__, NULL })

/* Delete the namespaces made so far (their veth ends go with them). */
static void netns_remove(Demo *d)
{
    for (int i = 0; i < 2; i++) {
        g_autoptr(GError) err = NULL;

        if (d->ns[i][0] && !IP(&err, "netns", "del", d->ns[i])) {
            fprintf(stderr, "mapram demo: %s\n", err->message);
        }
        d->ns[i][0] = '\0';
    }
}

/*
 * Two namespaces, "mapram-demo-PID-src" and "-dst", joined by a veth pair
 * with DEMO_NET_SRC/24 and DEMO_NET_DST/24, everything up.
 */
static bool netns_create(Demo *d, GError **errp)
{
    static const char *const tag[2] = { "src", "dst" };
    static const char *const addr[2] = { DEMO_NET_SRC "/24", DEMO_NET_DST "/24" };

    for (int i = 0; i < 2; i++) {
        g_snprintf(d->ns[i], sizeof(d->ns[i]), "mapram-demo-%d-%s", (int)getpid(), tag[i]);
        /* an interface name has at most 15 characters */
        g_snprintf(d->dev[i], sizeof(d->dev[i]), "mrd%d%c", (int)getpid(), tag[i][0]);
        if (!IP(errp, "netns", "add", d->ns[i])) {
            d->ns[i][0] = '\0';
            return false;
        }
    }
    if (!IP(errp, "link", "add", d->dev[0], "netns", d->ns[0], "type", "veth",
            "peer", "name", d->dev[1], "netns", d->ns[1])) {
        return false;
    }
    for (int i = 0; i < 2; i++) {
        if (!IP(errp, "-n", d->ns[i], "addr", "add", addr[i], "dev", d->dev[i]) ||
            !IP(errp, "-n", d->ns[i], "link", "set", d->dev[i], "up") ||
            !IP(errp, "-n", d->ns[i], "link", "set", "lo", "up")) {
            return false;
        }
    }
    say(d, "network: namespaces %s (%s on %s) and %s (%s on %s), a veth pair between them",
        d->ns[0], DEMO_NET_SRC, d->dev[0], d->ns[1], DEMO_NET_DST, d->dev[1]);
    return true;
}

/* The destination listens on its veth address; the kernel picks the port. */
static bool listen_incoming(Demo *d, GError **errp)
{
    JsonObject *args = json_object_new();

    json_object_set_string_member(args, "uri", "tcp:" DEMO_NET_DST ":0");
    say(d, "destination: migrate-incoming {\"uri\": \"tcp:%s:0\"} (in %s)",
        DEMO_NET_DST, d->ns[1]);
    if (!vm_cmd(&d->dst, "migrate-incoming", args, errp)) {
        return false;
    }
    g_autoptr(JsonObject) q = query_migrate(&d->dst, errp);
    if (!q) {
        return false;
    }
    JsonArray *addrs = json_object_has_member(q, "socket-address") ?
                       json_object_get_array_member(q, "socket-address") : NULL;
    JsonObject *a = addrs && json_array_get_length(addrs) ?
                    json_array_get_object_element(addrs, 0) : NULL;
    if (!a || !json_object_has_member(a, "port")) {
        error_setg(errp, "destination: query-migrate reports no socket-address");
        return false;
    }
    d->uri = g_strdup_printf("tcp:%s:%s", DEMO_NET_DST,
                             json_object_get_string_member(a, "port"));
    say(d, "destination: listening, query-migrate's socket-address says port %s",
        json_object_get_string_member(a, "port"));
    return true;
}

/* Live migration from the source's namespace to the destination's. */
static bool migrate_between_hosts(Demo *d, GError **errp)
{
    JsonObject *args = json_object_new();

    if (!listen_incoming(d, errp)) {
        return false;
    }
    json_object_set_string_member(args, "uri", d->uri);
    say(d, "source: migrate {\"uri\": \"%s\"} (in %s; live: the guest keeps running)",
        d->uri, d->ns[0]);
    gint64 t = g_get_monotonic_time();
    if (!vm_cmd(&d->src, "migrate", args, errp)) {
        return false;
    }
    g_autoptr(JsonObject) q = follow_migration(d, errp);
    if (!q) {
        return false;
    }
    const char *st = json_object_get_string_member(q, "status");
    if (strcmp(st, "completed")) {
        const char *why = json_object_has_member(q, "error-desc") ?
                          json_object_get_string_member(q, "error-desc") : "no reason given";
        error_setg(errp, "source: migration %s: %s", st, why);
        return false;
    }
    JsonObject *ram = ram_of(q);
    gint64 total = member_int(q, "total-time");
    uint64_t bytes = member_int(ram, "transferred");
    g_autofree char *tr = human(bytes);
    g_autofree char *mf = human(member_int(ram, "multifd-bytes"));
    g_autofree char *nb = human(member_int(ram, "normal-bytes"));
    say(d, "source: completed in %lld ms (setup %lld ms, downtime %lld ms, %lld passes)",
        (long long)total, (long long)member_int(q, "setup-time"),
        (long long)member_int(q, "downtime"), (long long)member_int(ram, "dirty-sync-count"));
    say(d, "source: %s sent over the veth (%s of it on the %d multifd channels, for %s of "
        "page data; %lld zero pages), %.1f MB/s", tr, mf, DEMO_CHANNELS, nb,
        (long long)member_int(ram, "duplicate"), gbps(bytes, total) * 1000);
    if (!wait_incoming_done(&d->dst, errp)) {
        return false;
    }
    g_autoptr(JsonObject) ev = qmp_client_wait_event(d->dst.qmp, "RESUME", DEMO_START_MS, errp);
    if (!ev) {
        g_prefix_error(errp, "destination: ");
        return false;
    }
    g_autofree char *state = vm_runstate(&d->dst, errp);
    if (!state) {
        return false;
    }
    if (strcmp(state, "running")) {
        error_setg(errp, "destination: run state is '%s' after RESUME", state);
        return false;
    }
    say(d, "destination: resumed (RESUME event; query-status: running) %lld ms after "
        "migrate", (long long)(g_get_monotonic_time() - t) / 1000);
    return true;
}

/* --- the steps ------------------------------------------------------------ */

static bool start_vms(Demo *d, GError **errp)
{
    if (!vm_spawn(d, &d->src, false, errp)) {
        return false;
    }
    say(d, "source: started %s -m %s -guest ab (pid %d%s%s), QMP on %s",
        d->vm_bin, d->size, d->src.pid, d->netns ? ", in " : "", d->netns ? d->ns[0] : "",
        d->src.qmp_path);
    if (!vm_spawn(d, &d->dst, true, errp)) {
        return false;
    }
    say(d, "destination: started with -incoming defer (pid %d%s%s), QMP on %s",
        d->dst.pid, d->netns ? ", in " : "", d->netns ? d->ns[1] : "", d->dst.qmp_path);
    if (!wait_for_b(&d->src, errp)) {
        return false;
    }
    say(d, "source: guest running: 'B' on its serial");
    return true;
}

static bool configure(Demo *d, GError **errp)
{
    if (!set_caps(d, &d->src, errp) || !set_caps(d, &d->dst, errp)) {
        return false;
    }
    if (d->netns) {
        say(d, "both: capabilities events, multifd on; multifd-channels=%d, "
            "multifd-compression=%s", DEMO_CHANNELS, d->compression);
        say(d, "source: max-bandwidth=0 (unlimited), downtime-limit 300 ms (default)");
        return true;
    }
    say(d, "both: capabilities events, mapped-ram, multifd on; multifd-channels=%d, "
        "direct-io=%s%s", DEMO_CHANNELS, d->direct_io ? "on" : "off",
        d->direct_io ? "" : " (O_DIRECT does not work in this directory)");
    say(d, "source: max-bandwidth=0 (unlimited), downtime-limit 300 ms (default)");
    return true;
}

static bool verify(Demo *d, GError **errp)
{
    /* the source stays paused (postmigrate) with the state it saved */
    if (!check_guest_memory(d, &d->src, errp)) {
        return false;
    }
    if (!wait_for_b(&d->dst, errp)) {
        return false;
    }
    say(d, "destination: guest runs on: a new 'B' on its serial");
    if (!vm_cmd(&d->dst, "stop", NULL, errp) ||
        !check_guest_memory(d, &d->dst, errp) ||
        !vm_cmd(&d->dst, "cont", NULL, errp)) {
        return false;
    }
    return true;
}

/* The file's structure and a structural check, by the tool's own commands. */
static bool show_file(Demo *d, GError **errp)
{
    char *info_argv[] = { (char *)"info", d->file, NULL };
    char *verify_argv[] = { (char *)"verify", d->file, NULL };

    printf("\n$ mapram info %s\n", d->file);
    fflush(stdout);
    if (cmd_info(2, info_argv) != 0) {
        error_setg(errp, "mapram info failed on '%s'", d->file);
        return false;
    }
    printf("\n$ mapram verify %s\n", d->file);
    fflush(stdout);
    if (cmd_verify(2, verify_argv) != 0) {
        error_setg(errp, "mapram verify found a problem in '%s'", d->file);
        return false;
    }
    printf("\n");
    fflush(stdout);
    return true;
}

static bool run_netns_demo(Demo *d, GError **errp)
{
    printf("mapram demo: live migration of a running VM between two hosts\n"
           "  VM binary  %s\n  guest      ab, -m %s\n"
           "  hosts      two network namespaces joined by a veth pair\n"
           "  transport  tcp: + multifd (%d channels), compression %s\n\n",
           d->vm_bin, d->size, DEMO_CHANNELS, d->compression);
    fflush(stdout);
    return netns_create(d, errp) && start_vms(d, errp) && configure(d, errp) &&
           migrate_between_hosts(d, errp) && verify(d, errp);
}

static bool run_demo(Demo *d, GError **errp)
{
    if (d->netns) {
        return run_netns_demo(d, errp);
    }
    printf("mapram demo: live save and restore of a running VM through a mapped-ram file\n"
           "  VM binary  %s\n  guest      ab, -m %s\n  save file  %s\n"
           "  transport  file: + mapped-ram + multifd (%d channels)%s\n\n",
           d->vm_bin, d->size, d->file, DEMO_CHANNELS, d->direct_io ? " + direct-io" : "");
    fflush(stdout);
    if (!start_vms(d, errp) || !configure(d, errp) || !save(d, errp) ||
        !restore(d, errp) || !verify(d, errp) || !show_file(d, errp)) {
        return false;
    }
    return true;
}

/* --- options and cleanup -------------------------------------------------- */

static void vm_init(Demo *d, DemoVm *vm, const char *role, const char *tag)
{
    vm->role = role;
    vm->qmp_path = g_strdup_printf("%s/%s.qmp", d->workdir, tag);
    vm->serial_path = g_strdup_printf("%s/%s.serial", d->workdir, tag);
    vm->log_path = g_strdup_printf("%s/%s.log", d->workdir, tag);
}

static void vm_release(DemoVm *vm)
{
    g_free(vm->qmp_path);
    g_free(vm->serial_path);
    g_free(vm->log_path);
}

static void remove_workdir(const char *dir)
{
    g_autoptr(GDir) dh = g_dir_open(dir, 0, NULL);
    const char *name;

    while (dh && (name = g_dir_read_name(dh))) {
        g_autofree char *p = g_build_filename(dir, name, NULL);
        g_unlink(p);
    }
    g_rmdir(dir);
}

static void cleanup(Demo *d, bool ok)
{
    vm_stop_process(&d->src);
    vm_stop_process(&d->dst);
    if (!ok) {
        vm_show_log(&d->src);
        vm_show_log(&d->dst);
    }
    if (d->workdir) {
        remove_workdir(d->workdir);
    }
    if (d->netns) {
        netns_remove(d);
        say(d, "cleanup: VMs quit, network namespaces and temporary files removed");
    } else {
        if (d->file && !d->keep) {
            g_unlink(d->file);
        }
        say(d, "cleanup: VMs quit, temporary files removed, save file %s",
            d->keep ? "kept" : "removed");
    }
    vm_release(&d->src);
    vm_release(&d->dst);
    g_free(d->workdir);
    g_free(d->file);
    g_free(d->uri);
}

static bool parse_args(Demo *d, int argc, char **argv, GError **errp)
{
    GOptionEntry entries[] = {
        { "vm", 0, 0, G_OPTION_ARG_FILENAME, &d->vm_bin, "the mapram-vm binary", "PATH" },
        { "dir", 0, 0, G_OPTION_ARG_FILENAME, &d->dir, "where the save file goes (default /var/tmp)", "DIR" },
        { "size", 0, 0, G_OPTION_ARG_STRING, &d->size, "guest RAM (default 1G)", "SIZE" },
        { "keep", 0, 0, G_OPTION_ARG_NONE, &d->keep, "keep the save file", NULL },
        { "netns", 0, 0, G_OPTION_ARG_NONE, &d->netns,
          "live migration between two network namespaces over tcp instead (root)", NULL },
        { "compression", 0, 0, G_OPTION_ARG_STRING, &d->compression,
          "with --netns: multifd-compression none, zlib or zstd (default none)", "METHOD" },
        { NULL }
    };
    g_autoptr(GOptionContext) ctx = g_option_context_new(
        "- save and restore a running mapram-vm (or, with --netns, migrate it live "
        "between two network namespaces) and say what happened");

    g_option_context_add_main_entries(ctx, entries, NULL);
    if (!g_option_context_parse(ctx, &argc, &argv, errp)) {
        return false;
    }
    if (argc != 1) {
        error_setg(errp, "unexpected argument '%s'", argv[1]);
        return false;
    }
    if (!d->size) {
        d->size = g_strdup("1G");
    }
    if (qemu_strtosz_MiB(d->size, NULL, &d->ram_bytes) < 0 ||
        d->ram_bytes < AB_PATTERN_START + 16 * AB_PATTERN_PAGE) {
        error_setg(errp, "--size '%s': need a size of at least 2M", d->size);
        return false;
    }
    if (!d->dir) {
        d->dir = g_strdup("/var/tmp");
    }
    if (d->compression && !d->netns) {
        error_setg(errp, "--compression goes with --netns (a mapped-ram file takes none)");
        return false;
    }
    if (!d->compression) {
        d->compression = g_strdup("none");
    }
    if (strcmp(d->compression, "none") && strcmp(d->compression, "zlib") &&
        strcmp(d->compression, "zstd")) {
        error_setg(errp, "--compression '%s': expected none, zlib or zstd", d->compression);
        return false;
    }
    if (d->netns && geteuid() != 0) {
        error_setg(errp, "--netns makes network namespaces, which needs root "
                   "(this is uid %d)", (int)geteuid());
        return false;
    }
    if (!d->vm_bin && !(d->vm_bin = find_vm_binary())) {
        error_setg(errp, "mapram-vm not found next to this tool or on PATH; use --vm PATH");
        return false;
    }
    return true;
}

static bool prepare(Demo *d, GError **errp)
{
    if (!g_file_test(d->dir, G_FILE_TEST_IS_DIR)) {
        error_setg(errp, "--dir '%s' is not a directory", d->dir);
        return false;
    }
    d->workdir = g_dir_make_tmp("mapram-demo-XXXXXX", errp);
    if (!d->workdir) {
        return false;
    }
    d->file = g_strdup_printf("%s/mapram-demo-%d.img", d->dir, (int)getpid());
    d->direct_io = probe_o_direct(d->dir);
    /* whole pages: the checker reads one byte per page */
    d->check_end = MIN(AB_PATTERN_END, d->ram_bytes & ~(AB_PATTERN_PAGE - 1));
    vm_init(d, &d->src, "source", "src");
    vm_init(d, &d->dst, "destination", "dst");
    return true;
}

int cmd_demo(int argc, char **argv)
{
    Demo d = { .t0 = g_get_monotonic_time() };
    g_autoptr(GError) err = NULL;
    bool ok = parse_args(&d, argc, argv, &err) && prepare(&d, &err);

    if (!ok) {
        fprintf(stderr, "mapram demo: %s\n", err->message);
        g_free(d.workdir);
        g_free(d.vm_bin);
        g_free(d.dir);
        g_free(d.size);
        g_free(d.compression);
        return 2;
    }
    ok = run_demo(&d, &err);
    cleanup(&d, ok);
    if (ok && d.netns) {
        printf("mapram demo: OK: migrated live between namespaces, resumed, "
               "guest memory verified\n");
    } else if (ok) {
        printf("mapram demo: OK: saved live, restored, resumed, guest memory verified\n");
    } else {
        fprintf(stderr, "mapram demo: FAILED: %s\n", err->message);
    }
    g_free(d.vm_bin);
    g_free(d.dir);
    g_free(d.size);
    g_free(d.compression);
    return ok ? 0 : 1;
}
