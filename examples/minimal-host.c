/*
 * A minimal migration host: the program docs/embedding.md walks through.
 *
 * The "VM" has one 4 MiB RAM block with a dirty log, a run state and one
 * device (a clock).  It saves itself to a mapped-ram file with multifd,
 * restores the file into a second Migration and host, and checks that the
 * memory is identical and the clock's state arrived.
 *
 *   cc -o minimal-host minimal-host.c $(pkg-config --cflags --libs mapram)
 *   ./minimal-host [FILE]          (default: a temporary file, removed at the end)
 *
 * Exit status 0 when the restored VM matches, 1 otherwise.
 */
#include <migration/migration.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define RAM_SIZE (4 * 1024 * 1024)
#define PAGE_SIZE 4096
#define NPAGES (RAM_SIZE / PAGE_SIZE)
#define BITS_PER_WORD (8 * sizeof(unsigned long))

/* ---- the VM ------------------------------------------------------------ */

/*
 * Any thread may call the host operations (host.h), so the run state and
 * the dirty log are under lock.  The memory itself is not: the migration
 * reads it while the guest runs, and the dirty log tells it what changed.
 */
typedef struct Host {
    const char *name;
    pthread_mutex_t lock;
    RunState state;                         /* protected by lock */
    unsigned long dirty[NPAGES / BITS_PER_WORD]; /* protected by lock */
    uint8_t *ram;                           /* RAM_SIZE bytes, page aligned */
} Host;

/* The one device: its state is described once and saved by mapram. */
typedef struct Clock {
    uint64_t ticks;
    uint32_t hz;
    uint8_t label[16];
} Clock;

static const VMStateDescription vmstate_clock = {
    .name = "clock",
    .version_id = 1,
    .minimum_version_id = 1,
    .fields = (const VMStateField[]) {
        VMSTATE_UINT64(ticks, Clock),
        VMSTATE_UINT32(hz, Clock),
        VMSTATE_BUFFER(label, Clock),
        VMSTATE_END_OF_LIST()
    },
};

static bool host_init(Host *h, const char *name, RunState state)
{
    memset(h, 0, sizeof(*h));
    h->name = name;
    pthread_mutex_init(&h->lock, NULL);
    h->state = state;
    /* mmap: page aligned, and its pages read as zero until written */
    h->ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return h->ram != MAP_FAILED;
}

static void host_cleanup(Host *h)
{
    munmap(h->ram, RAM_SIZE);
    pthread_mutex_destroy(&h->lock);
}

/* The guest writes memory only through here, as an emulated CPU would. */
static void guest_write(Host *h, uint64_t offset, uint8_t byte, size_t len)
{
    memset(h->ram + offset, byte, len);
    pthread_mutex_lock(&h->lock);
    for (uint64_t p = offset / PAGE_SIZE; p <= (offset + len - 1) / PAGE_SIZE; p++) {
        h->dirty[p / BITS_PER_WORD] |= 1UL << (p % BITS_PER_WORD);
    }
    pthread_mutex_unlock(&h->lock);
}

/* ---- the host operations (include/migration/host.h) -------------------- */

static RunState op_runstate_get(void *opaque)
{
    Host *h = opaque;
    pthread_mutex_lock(&h->lock);
    RunState s = h->state;
    pthread_mutex_unlock(&h->lock);
    return s;
}

static void op_runstate_set(void *opaque, RunState s)
{
    Host *h = opaque;
    pthread_mutex_lock(&h->lock);
    h->state = s;
    pthread_mutex_unlock(&h->lock);
}

/* No vCPU threads here: a real VMM parks them before it returns. */
static RunState op_vm_stop(void *opaque, RunState s)
{
    Host *h = opaque;
    pthread_mutex_lock(&h->lock);
    RunState old = h->state;
    h->state = s;
    pthread_mutex_unlock(&h->lock);
    return old;
}

static void op_vm_start(void *opaque)
{
    op_runstate_set(opaque, RUN_STATE_RUNNING);
}

/* Whether a restored guest that was running resumes (QEMU: false with -S). */
static bool op_autostart(void *opaque)
{
    (void)opaque;
    return true;
}

static size_t op_ram_block_count(void *opaque)
{
    (void)opaque;
    return 1;
}

static void op_ram_block_get(void *opaque, size_t index, MigrationRAMBlock *out)
{
    Host *h = opaque;
    g_assert(index == 0);
    out->idstr = "pc.ram";
    out->host = h->ram;
    out->used_length = RAM_SIZE;
}

static uint64_t op_ram_block_sync_dirty(void *opaque, size_t index, unsigned long *dest)
{
    Host *h = opaque;
    uint64_t newly = 0;
    g_assert(index == 0);
    pthread_mutex_lock(&h->lock);
    for (size_t i = 0; i < G_N_ELEMENTS(h->dirty); i++) {
        newly += __builtin_popcountl(h->dirty[i] & ~dest[i]);
        dest[i] |= h->dirty[i];
        h->dirty[i] = 0;
    }
    pthread_mutex_unlock(&h->lock);
    return newly;
}

/* Optional: the MIGRATION events, here printed (data is ours to free). */
static void op_event(void *opaque, const char *name, JsonObject *data)
{
    Host *h = opaque;
    if (!strcmp(name, "MIGRATION")) {
        printf("%s: MIGRATION %s\n", h->name, json_object_get_string_member(data, "status"));
    }
    json_object_unref(data);
}

static const MigrationHostOps host_ops = {
    .runstate_get = op_runstate_get,
    .runstate_set = op_runstate_set,
    .vm_stop = op_vm_stop,
    .vm_start = op_vm_start,
    .autostart = op_autostart,
    .ram_block_count = op_ram_block_count,
    .ram_block_get = op_ram_block_get,
    .ram_block_sync_dirty = op_ram_block_sync_dirty,
    .event = op_event,
    /* no request_exit, get_fd, main_call or error_report: the defaults do */
};

/* ---- driving a migration ------------------------------------------------ */

/* The same options on both sides: mapped-ram needs them to match. */
static bool set_options(Migration *m, GError **errp)
{
    g_autoptr(JsonObject) params = json_object_new();
    json_object_set_int_member(params, "multifd-channels", 2);
    json_object_set_boolean_member(params, "direct-io", false);
    return migration_set_capability(m, "events", true, errp) &&
           migration_set_capability(m, "mapped-ram", true, errp) &&
           migration_set_capability(m, "multifd", true, errp) &&
           migration_set_parameters(m, params, errp);
}

/* A VMM polls from its main loop (or waits for the events); here we sleep. */
static bool wait_for_end(Migration *m, MigrationInfo *info)
{
    for (;;) {
        migration_query(m, info);
        if (!strcmp(info->status, "completed")) {
            return true;
        }
        if (!strcmp(info->status, "failed") || !strcmp(info->status, "cancelled")) {
            fprintf(stderr, "migration %s: %s\n", info->status,
                    info->error_desc ? info->error_desc : "");
            return false;
        }
        migration_info_clear(info);
        g_usleep(10 * 1000);
    }
}

static bool save(Host *h, Clock *clock, const char *uri)
{
    g_autoptr(GError) err = NULL;
    MigrationInfo info;
    Migration *m = migration_new(&host_ops, h);
    bool ok;

    migration_set_machine_type(m, "minimal-1.0");
    migration_register_vmstate(m, "clock", 0, &vmstate_clock, clock);
    if (!set_options(m, &err) || !migration_start(m, uri, &err)) {
        fprintf(stderr, "save: %s\n", err->message);
        migration_free(m);
        return false;
    }
    ok = wait_for_end(m, &info);
    migration_free(m);              /* joins the migration thread: its last event is out */
    if (ok) {
        printf("saved: %llu pages with data, %llu zero pages, %llu bytes\n",
               (unsigned long long)info.normal, (unsigned long long)info.duplicate,
               (unsigned long long)info.transferred);
    }
    migration_info_clear(&info);
    return ok && op_runstate_get(h) == RUN_STATE_POSTMIGRATE;
}

static bool restore(Host *h, Clock *clock, const char *uri)
{
    g_autoptr(GError) err = NULL;
    MigrationInfo info;
    Migration *m = migration_new(&host_ops, h);
    bool ok;

    migration_set_machine_type(m, "minimal-1.0");
    migration_register_vmstate(m, "clock", 0, &vmstate_clock, clock);
    if (!migration_incoming_cmdline(m, "defer", &err) || !set_options(m, &err) ||
        !migration_start_incoming(m, uri, false, &err)) {
        fprintf(stderr, "restore: %s\n", err->message);
        migration_free(m);
        return false;
    }
    ok = wait_for_end(m, &info);
    migration_info_clear(&info);
    migration_free(m);
    return ok;
}

int main(int argc, char **argv)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *path = NULL;
    Host src, dst;
    Clock clock_src = { .ticks = 123456789, .hz = 1000, .label = "minimal" };
    Clock clock_dst = { 0 };
    bool ok = false;

    if (argc > 1) {
        path = g_strdup(argv[1]);
    } else {
        int fd = g_file_open_tmp("minimal-host-XXXXXX.img", &path, &err);
        if (fd < 0) {
            fprintf(stderr, "%s\n", err->message);
            return 1;
        }
        close(fd);
    }
    g_autofree char *uri = g_strdup_printf("file:%s", path);

    if (!host_init(&src, "source", RUN_STATE_RUNNING)) {
        return 1;
    }
    if (!host_init(&dst, "destination", RUN_STATE_PRELAUNCH)) {
        host_cleanup(&src);
        return 1;
    }
    /* Every other 64 KiB carries data; the rest stays zero and becomes holes. */
    for (uint64_t p = 0; p < NPAGES; p++) {
        if (p / 16 % 2 == 0) {
            guest_write(&src, p * PAGE_SIZE, (uint8_t)(p % 255 + 1), PAGE_SIZE);
        }
    }

    if (save(&src, &clock_src, uri) && restore(&dst, &clock_dst, uri)) {
        bool same_ram = memcmp(src.ram, dst.ram, RAM_SIZE) == 0;
        bool same_clock = clock_dst.ticks == clock_src.ticks && clock_dst.hz == clock_src.hz &&
                          !memcmp(clock_dst.label, clock_src.label, sizeof(clock_src.label));
        RunState state = op_runstate_get(&dst);
        printf("restored: memory %s, clock %s, destination %s\n",
               same_ram ? "identical" : "DIFFERS", same_clock ? "identical" : "DIFFERS",
               runstate_name(state));
        ok = same_ram && same_clock && state == RUN_STATE_RUNNING;
    }
    unlink(path);
    host_cleanup(&dst);
    host_cleanup(&src);
    return ok ? 0 : 1;
}
