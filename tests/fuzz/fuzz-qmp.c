/*
 * libFuzzer harness: QMP against a live reference VM in process.
 *
 * Each input gets a fresh VM state: a Migration with the VM's host ops
 * (system/host.c), its devices (serial, rtc, one vCPU thread running the
 * "dirty,rate=1000" guest on 2 MiB of RAM, no VGA), the VM's and migration's QMP
 * commands, and an in-process monitor client (monitor_new_qmp_inproc())
 * that is handed the input as a socket read would be: JSON framing (the
 * splitter), parsing, schema argument checking and dispatch of every
 * command of the qapi/ schema.  Each text comes in a write of its own with
 * two fds as with SCM_RIGHTS (a file of the sandbox), for getfd and add-fd.  After the
 * input the main context runs until a started migration ends (100 ms at
 * most); then the Migration is freed (cancel and join), the fdsets and
 * named fds closed (no dup of an fdset fd may still be open), the vCPU
 * stopped, the sandbox emptied: no input sees what an earlier one left.
 * Every line the monitor sends must be a JSON object.
 *
 * Input: byte 0 picks how the VM starts: 'r' running (byte % 3 == 0),
 * 'p' paused as with -S (1), 'i' waiting as with -incoming defer (2);
 * the rest is what the client sends.
 *
 * What is changed, so that no input reaches outside the sandbox (a fresh
 * directory under /dev/shm or /tmp): the address of migrate and
 * migrate-incoming is parsed by the real parser (uri or channels) and,
 * when it parses, replaced by a uri of the same transport inside the
 * sandbox before the real handler runs: file: a file of the sandbox (the
 * offset kept; /dev/fdset/N kept, fdsets hold only the sandbox's fds);
 * unix: a socket of the sandbox; tcp: 127.0.0.1, port 0 to listen and
 * port 1 (refused) to connect; exec: "cat >/dev/null" and "cat
 * /dev/null"; fd: a number becomes an fd on /dev/null (a name stays:
 * getfd names hold sandbox fds).  A "channels" address becomes that "uri".
 * pmemsave writes into the sandbox (or /dev/fdset/N).  quit and
 * exit-on-error only count (vl.c's exit is stubbed in fuzz-vm.c).
 * Nothing is excluded: every command runs.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz-common.h"
#include "fuzz-vm.h"
#include "migration/migration-internal.h"
#include "monitor/monitor-internal.h"
#include "system/runstate.h"
#include "system/system-internal.h"
#include "util/osdep.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *sandbox;
static int devnull_fd;
static GuestConfig guest;
static Migration *cur;
static QmpCommandFunc real_migrate, real_migrate_incoming, real_pmemsave;
static void *real_migrate_opaque, *real_migrate_incoming_opaque, *real_pmemsave_opaque;
static GString *out_line;

static JsonNode *fuzz_pmemsave(JsonObject *args, Monitor *mon, void *opaque, GError **errp);

static void sandbox_clear(void)
{
    g_autoptr(GDir) d = g_dir_open(sandbox, 0, NULL);
    const char *name;

    while (d && (name = g_dir_read_name(d))) {
        g_autofree char *p = g_build_filename(sandbox, name, NULL);
        unlink(p);
    }
}

static void remove_sandbox(void)
{
    sandbox_clear();
    rmdir(sandbox);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    GError *err = NULL;
    const char *base = g_file_test("/dev/shm", G_FILE_TEST_IS_DIR) ? "/dev/shm" : g_get_tmp_dir();

    fuzz_init();
    fuzz_vm_init(false);
    sandbox = g_build_filename(base, "mapram-fuzz-qmp-XXXXXX", NULL);
    if (!g_mkdtemp(sandbox)) {
        g_error("sandbox: %s", g_strerror(errno));
    }
    atexit(remove_sandbox);
    devnull_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (devnull_fd < 0 || !guest_config_parse(&guest, "dirty,rate=1000", &err)) {
        g_error("fuzz-qmp init failed");
    }
    /* This thread is the main loop's: events from it are sent at once, as in the VM. */
    g_main_context_acquire(g_main_context_default());
    monitor_fdsets_init();
    out_line = g_string_new(NULL);
    return 0;
}

/* Every line the monitor sends is one JSON object. */
static void check_output(void *opaque, const char *buf, size_t len)
{
    g_autoptr(JsonParser) p = json_parser_new();
    g_autoptr(GError) err = NULL;

    g_assert(len >= 2 && buf[len - 2] == '\r' && buf[len - 1] == '\n');
    g_string_assign(out_line, "");
    g_string_append_len(out_line, buf, len - 2);
    g_assert(!memchr(out_line->str, '\n', out_line->len));
    if (!json_parser_load_from_data(p, out_line->str, out_line->len, &err) ||
        !JSON_NODE_HOLDS_OBJECT(json_parser_get_root(p))) {
        g_error("QMP sent a line that is not a JSON object: %s", out_line->str);
    }
}

/* The uri that replaces a parsed address: the same transport, inside the sandbox. */
static char *sandbox_uri(const MigAddr *a, bool incoming)
{
    switch (a->kind) {
    case TRANSPORT_FILE:
        if (g_str_has_prefix(a->filename, "/dev/fdset/")) {
            return g_strdup_printf("file:%s,offset=%llu", a->filename,
                                   (unsigned long long)a->offset);
        }
        return g_strdup_printf("file:%s/file,offset=%llu", sandbox, (unsigned long long)a->offset);
    case TRANSPORT_EXEC:
        return g_strdup(incoming ? "exec:cat /dev/null" : "exec:cat >/dev/null");
    case TRANSPORT_FD:
        break;
    case TRANSPORT_SOCKET:
        if (!strcmp(a->sock_type, "unix")) {
            return g_strdup_printf("unix:%s/sock", sandbox);
        }
        if (!strcmp(a->sock_type, "inet")) {
            return g_strdup(incoming ? "tcp:127.0.0.1:0" : "tcp:127.0.0.1:1");
        }
        break;
    default:
        return NULL;             /* rdma: refused by its own row, untouched */
    }
    /* fd: (or a socket address of type fd) */
    char *end;
    strtol(a->fdname, &end, 10);
    if (*a->fdname && !*end) {
        return g_strdup_printf("fd:%d", devnull_fd);
    }
    return g_strdup_printf("fd:%s", a->fdname);
}

static JsonNode *call_sandboxed(QmpCommandFunc fn, void *opaque, bool incoming, JsonObject *args,
                                Monitor *mon, GError **errp)
{
    MigAddr a;

    if (!migration_parse_address_args(args, incoming, &a, NULL)) {
        mig_addr_clear(&a);
        return fn(args, mon, opaque, errp);     /* fails the same way, nothing opened */
    }
    g_autofree char *uri = sandbox_uri(&a, incoming);
    mig_addr_clear(&a);
    if (!uri) {
        return fn(args, mon, opaque, errp);
    }
    g_autoptr(JsonObject) copy = json_object_new();
    JsonObjectIter it;
    const char *name;
    JsonNode *value;
    json_object_iter_init(&it, args);
    while (json_object_iter_next(&it, &name, &value)) {
        if (strcmp(name, "uri") && strcmp(name, "channels")) {
            json_object_set_member(copy, name, json_node_copy(value));
        }
    }
    json_object_set_string_member(copy, "uri", uri);
    return fn(copy, mon, opaque, errp);
}

static JsonNode *fuzz_migrate(JsonObject *args, Monitor *mon, void *opaque, GError **errp)
{
    return call_sandboxed(real_migrate, real_migrate_opaque, false, args, mon, errp);
}

static JsonNode *fuzz_migrate_incoming(JsonObject *args, Monitor *mon, void *opaque,
                                       GError **errp)
{
    return call_sandboxed(real_migrate_incoming, real_migrate_incoming_opaque, true, args, mon,
                          errp);
}

static JsonNode *fuzz_pmemsave(JsonObject *args, Monitor *mon, void *opaque, GError **errp)
{
    const char *filename = json_object_get_string_member(args, "filename");

    if (g_str_has_prefix(filename, "/dev/fdset/")) {
        return real_pmemsave(args, mon, real_pmemsave_opaque, errp);
    }
    g_autoptr(JsonObject) copy = json_object_new();
    JsonObjectIter it;
    const char *name;
    JsonNode *value;
    json_object_iter_init(&it, args);
    while (json_object_iter_next(&it, &name, &value)) {
        json_object_set_member(copy, name, json_node_copy(value));
    }
    g_autofree char *path = g_build_filename(sandbox, "pmem", NULL);
    json_object_set_string_member(copy, "filename", path);
    return real_pmemsave(copy, mon, real_pmemsave_opaque, errp);
}

/* The input's VM: cont and pmemsave ask its Migration about guest RAM. */
static void register_commands(Migration *m)
{
    system_qmp_register(m);
    real_pmemsave = qmp_find_command("pmemsave", &real_pmemsave_opaque);
    qmp_register_command("pmemsave", fuzz_pmemsave, NULL);
    migration_register_qmp(m);
    real_migrate = qmp_find_command("migrate", &real_migrate_opaque);
    real_migrate_incoming = qmp_find_command("migrate-incoming", &real_migrate_incoming_opaque);
    qmp_register_command("migrate", fuzz_migrate, NULL);
    qmp_register_command("migrate-incoming", fuzz_migrate_incoming, NULL);
}

static void run_main_context(void)
{
    while (g_main_context_iteration(NULL, FALSE)) {
    }
}

/* A started migration runs on (its events go out) until it ends: 100 ms at most. */
static void let_it_run(Migration *m)
{
    gint64 deadline = g_get_monotonic_time() + 100 * 1000;

    run_main_context();
    while (migration_is_running(m) && g_get_monotonic_time() < deadline) {
        g_usleep(1000);
        run_main_context();
    }
    run_main_context();
}

static void pass_sandbox_fds(Monitor *mon)
{
    g_autofree char *path = g_build_filename(sandbox, "passed", NULL);
    int fds[2];

    for (int i = 0; i < 2; i++) {
        fds[i] = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        g_assert(fds[i] >= 0);
    }
    monitor_inproc_pass_fds(mon, fds, 2);
}

/*
 * The client sends each text in a write of its own with two fds: a text
 * takes only fds that came with it, so every getfd and add-fd has one.
 */
static void feed_texts_with_fds(Monitor *mon, const char *data, size_t size)
{
    JsonStreamer js;
    size_t start = 0;

    json_streamer_init(&js);
    for (size_t i = 0; i < size; i++) {
        JsonMessage *msg;

        json_streamer_feed(&js, (const char *)data + i, 1);
        if (!(msg = json_streamer_next(&js))) {
            continue;
        }
        /* the rest of this byte's messages go in the same write */
        do {
            json_message_free(msg);
        } while ((msg = json_streamer_next(&js)));
        pass_sandbox_fds(mon);
        monitor_inproc_feed(mon, data + start, i + 1 - start);
        start = i + 1;
    }
    if (start < size) {
        monitor_inproc_feed(mon, data + start, size - start);
    }
    json_streamer_destroy(&js);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    GError *err = NULL;

    if (size < 1 || size > 64 * 1024) {
        return -1;
    }
    Migration *m = cur = vm_migration_new();
    migration_set_machine_type(m, VM_DEFAULT_MACHINE);
    if (!serial_init("none", m, &err)) {
        g_error("%s", err->message);
    }
    rtc_init(m);
    cpus_create(1, &guest, m);
    register_commands(m);

    vm_set_autostart(true);
    runstate_set(RUN_STATE_PRELAUNCH);
    cpus_start_threads();
    switch (data[0] % 3) {
    case 0:
        vm_start();
        break;
    case 1:
        vm_set_autostart(false);
        break;
    default:
        g_assert(migration_incoming_cmdline(m, "defer", NULL));
        break;
    }
    Monitor *mon = monitor_new_qmp_inproc(check_output, NULL);
    feed_texts_with_fds(mon, (const char *)data + 1, size - 1);
    let_it_run(m);

    migration_free(m);
    cur = NULL;
    run_main_context();
    /* Every dup of an fdset fd that a migration or pmemsave opened is closed by now. */
    g_assert_cmpuint(monitor_fdsets_free_all(), ==, 0);
    monitor_cleanup_all();
    vm_stop(RUN_STATE_PAUSED);
    cpus_stop_threads();
    serial_cleanup();
    sandbox_clear();
    return 0;
}
