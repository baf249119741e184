/*
 * The fake migration host of the in-process tests.  See fake-host.h.
 */
#include "fake-host.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "util/bitmap.h"
#include "util/bufferzero.h"

typedef struct FakeMainCall {
    void (*fn)(void *data);
    void *data;
} FakeMainCall;

static void record(FakeHost *h, char *line)
{
    qemu_mutex_lock(&h->lock);
    g_ptr_array_add(h->events, line);
    qemu_cond_broadcast(&h->cond);
    qemu_mutex_unlock(&h->lock);
}

/* The last "MIGRATION <status>" recorded, or NULL; under lock. */
static const char *last_status_event(FakeHost *h)
{
    for (guint i = h->events->len; i > 0; i--) {
        const char *e = g_ptr_array_index(h->events, i - 1);
        if (g_str_has_prefix(e, "MIGRATION ")) {
            return e;
        }
    }
    return NULL;
}

/* Whether event was recorded (NULL: never); under lock. */
static bool has_event(FakeHost *h, const char *event)
{
    for (guint i = 0; event && i < h->events->len; i++) {
        if (!strcmp(g_ptr_array_index(h->events, i), event)) {
            return true;
        }
    }
    return false;
}

/* ---- the ops ---- */

static RunState op_runstate_get(void *opaque)
{
    return fake_host_runstate(opaque);
}

static void set_state(FakeHost *h, RunState s)
{
    qemu_mutex_lock(&h->lock);
    h->state = s;
    qemu_mutex_unlock(&h->lock);
}

static void op_runstate_set(void *opaque, RunState s)
{
    set_state(opaque, s);
    record(opaque, g_strdup_printf("runstate %s", runstate_name(s)));
}

static RunState op_vm_stop(void *opaque, RunState s)
{
    FakeHost *h = opaque;

    if (h->user_stop_first) {
        qemu_mutex_lock(&h->lock);
        bool running = h->state == RUN_STATE_RUNNING;
        if (running) {
            h->state = RUN_STATE_PAUSED;
        }
        qemu_mutex_unlock(&h->lock);
        if (running) {
            record(h, g_strdup("user stop"));
        }
    }
    qemu_mutex_lock(&h->lock);
    RunState old = h->state;
    h->state = s;
    qemu_mutex_unlock(&h->lock);
    record(h, g_strdup_printf("vm_stop %s", runstate_name(s)));
    return old;
}

static void op_vm_start(void *opaque)
{
    set_state(opaque, RUN_STATE_RUNNING);
    record(opaque, g_strdup("vm_start"));
}

static bool op_autostart(void *opaque)
{
    FakeHost *h = opaque;
    return h->autostart;
}

static size_t op_ram_block_count(void *opaque)
{
    FakeHost *h = opaque;
    return h->blocks->len;
}

static void op_ram_block_get(void *opaque, size_t index, MigrationRAMBlock *out)
{
    FakeHost *h = opaque;
    FakeBlock *b = g_ptr_array_index(h->blocks, index);
    out->idstr = b->idstr;
    out->host = b->host;
    out->used_length = b->size;
}

static uint64_t op_ram_block_sync_dirty(void *opaque, size_t index, unsigned long *dest)
{
    FakeHost *h = opaque;
    FakeBlock *b = g_ptr_array_index(h->blocks, index);
    if (h->on_sync) {
        h->on_sync(h, index, h->on_sync_opaque);
    }
    return bitmap_harvest_atomic(dest, b->dirty, BITS_TO_LONGS(b->npages));
}

static void op_request_exit(void *opaque, int status)
{
    FakeHost *h = opaque;
    qemu_mutex_lock(&h->lock);
    h->exit_status = status;
    qemu_mutex_unlock(&h->lock);
    record(h, g_strdup_printf("exit %d", status));
}

static void op_event(void *opaque, const char *name, JsonObject *data)
{
    FakeHost *h = opaque;
    char *line;

    if (!strcmp(name, "MIGRATION")) {
        line = g_strdup_printf("MIGRATION %s", json_object_get_string_member(data, "status"));
    } else if (!strcmp(name, "MIGRATION_PASS")) {
        line = g_strdup_printf("MIGRATION_PASS %" G_GINT64_FORMAT,
                               json_object_get_int_member(data, "pass"));
    } else {
        line = g_strdup(name);
    }
    json_object_unref(data);
    if (h->slow_event && !strcmp(line, h->slow_event)) {
        gint64 deadline = g_get_monotonic_time() + h->slow_event_ms * G_TIME_SPAN_MILLISECOND;
        qemu_mutex_lock(&h->lock);
        while (!has_event(h, h->slow_event_until) &&
               qemu_cond_wait_until(&h->cond, &h->lock, deadline)) {
        }
        qemu_mutex_unlock(&h->lock);
    }
    record(h, line);
}

static void op_error_report(void *opaque, const char *msg)
{
    FakeHost *h = opaque;
    if (h->on_error) {
        h->on_error(h, h->on_error_opaque);
    }
    qemu_mutex_lock(&h->lock);
    g_ptr_array_add(h->errors, g_strdup(msg));
    qemu_mutex_unlock(&h->lock);
    record(h, g_strdup("error"));
}

static void op_main_call(void *opaque, void (*fn)(void *data), void *data)
{
    FakeHost *h = opaque;
    if (!h->queue_main_calls) {
        fn(data);
        return;
    }
    FakeMainCall *c = g_new(FakeMainCall, 1);
    c->fn = fn;
    c->data = data;
    qemu_mutex_lock(&h->lock);
    g_queue_push_tail(&h->main_calls, c);
    qemu_cond_broadcast(&h->cond);
    qemu_mutex_unlock(&h->lock);
}

#define FAKE_HOST_OPS \
    .runstate_get = op_runstate_get, \
    .runstate_set = op_runstate_set, \
    .vm_stop = op_vm_stop, \
    .vm_start = op_vm_start, \
    .autostart = op_autostart, \
    .ram_block_count = op_ram_block_count, \
    .ram_block_get = op_ram_block_get, \
    .ram_block_sync_dirty = op_ram_block_sync_dirty, \
    .request_exit = op_request_exit, \
    .event = op_event, \
    .error_report = op_error_report

const MigrationHostOps fake_host_ops = { FAKE_HOST_OPS, .main_call = op_main_call };
const MigrationHostOps fake_host_ops_no_main_call = { FAKE_HOST_OPS };

/* ---- the host ---- */

FakeHost *fake_host_new(RunState state)
{
    FakeHost *h = g_new0(FakeHost, 1);
    h->blocks = g_ptr_array_new();
    h->autostart = true;
    qemu_mutex_init(&h->lock);
    qemu_cond_init(&h->cond);
    h->state = state;
    h->events = g_ptr_array_new_with_free_func(g_free);
    g_queue_init(&h->main_calls);
    h->exit_status = -1;
    h->errors = g_ptr_array_new_with_free_func(g_free);
    return h;
}

void fake_host_free(FakeHost *h)
{
    if (!h) {
        return;
    }
    fake_host_run_main_calls(h);
    for (guint i = 0; i < h->blocks->len; i++) {
        FakeBlock *b = g_ptr_array_index(h->blocks, i);
        munmap(b->host, b->size);
        g_free(b->dirty);
        g_free(b->idstr);
        g_free(b);
    }
    g_ptr_array_unref(h->blocks);
    g_ptr_array_unref(h->events);
    g_ptr_array_unref(h->errors);
    qemu_mutex_destroy(&h->lock);
    qemu_cond_destroy(&h->cond);
    g_free(h);
}

FakeBlock *fake_host_add_block(FakeHost *h, const char *idstr, uint64_t size)
{
    FakeBlock *b = g_new0(FakeBlock, 1);
    g_assert_cmpuint(size % FAKE_PAGE_SIZE, ==, 0);
    b->idstr = g_strdup(idstr);
    b->size = size;
    b->npages = size / FAKE_PAGE_SIZE;
    b->host = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    g_assert(b->host != MAP_FAILED);
    b->dirty = bitmap_new(b->npages);
    g_ptr_array_add(h->blocks, b);
    return b;
}

void fake_block_write(FakeBlock *b, uint64_t offset, const void *buf, size_t len)
{
    g_assert_cmpuint(offset + len, <=, b->size);
    memcpy(b->host + offset, buf, len);
    for (uint64_t p = offset / FAKE_PAGE_SIZE; len && p <= (offset + len - 1) / FAKE_PAGE_SIZE;
         p++) {
        set_bit_atomic(p, b->dirty);
    }
}

uint64_t fake_block_fill(FakeBlock *b, unsigned seed, unsigned zero_every, unsigned run)
{
    uint8_t page[FAKE_PAGE_SIZE];
    uint64_t written = 0;

    g_assert_cmpuint(run, >, 0);
    for (uint64_t p = 0; p < b->npages; p++) {
        if (zero_every && (p / run) % zero_every == 0) {
            continue;
        }
        for (size_t i = 0; i < sizeof(page); i += 8) {
            uint64_t v = ((uint64_t)seed << 48) ^ (p << 16) ^ i ^ 0x5a5a000000000001ULL;
            memcpy(page + i, &v, 8);
        }
        fake_block_write(b, p * FAKE_PAGE_SIZE, page, sizeof(page));
        written++;
    }
    return written;
}

uint64_t fake_block_zero_pages(const FakeBlock *b)
{
    uint64_t n = 0;
    for (uint64_t p = 0; p < b->npages; p++) {
        n += buffer_is_zero(b->host + p * FAKE_PAGE_SIZE, FAKE_PAGE_SIZE);
    }
    return n;
}

Migration *fake_host_migration_new(FakeHost *h)
{
    g_autoptr(GError) err = NULL;
    Migration *m = migration_new(h->no_main_call ? &fake_host_ops_no_main_call : &fake_host_ops,
                                 h);
    g_assert_true(migration_set_capability(m, "events", true, &err));
    return m;
}

RunState fake_host_runstate(FakeHost *h)
{
    qemu_mutex_lock(&h->lock);
    RunState s = h->state;
    qemu_mutex_unlock(&h->lock);
    return s;
}

char *fake_host_events(FakeHost *h, bool with_passes)
{
    GString *s = g_string_new(NULL);
    qemu_mutex_lock(&h->lock);
    for (guint i = 0; i < h->events->len; i++) {
        const char *e = g_ptr_array_index(h->events, i);
        if (!with_passes && g_str_has_prefix(e, "MIGRATION_PASS ")) {
            continue;
        }
        g_string_append_printf(s, "%s%s", s->len ? ", " : "", e);
    }
    qemu_mutex_unlock(&h->lock);
    return g_string_free(s, FALSE);
}

void fake_host_clear_events(FakeHost *h)
{
    qemu_mutex_lock(&h->lock);
    g_ptr_array_set_size(h->events, 0);
    qemu_mutex_unlock(&h->lock);
}

char *fake_host_errors(FakeHost *h)
{
    qemu_mutex_lock(&h->lock);
    GString *out = g_string_new(NULL);
    for (guint i = 0; i < h->errors->len; i++) {
        g_string_append_printf(out, "%s%s", i ? "\n" : "", (char *)h->errors->pdata[i]);
    }
    qemu_mutex_unlock(&h->lock);
    return g_string_free(out, FALSE);
}

int fake_host_exit_status(FakeHost *h)
{
    qemu_mutex_lock(&h->lock);
    int st = h->exit_status;
    qemu_mutex_unlock(&h->lock);
    return st;
}

unsigned fake_host_run_main_calls(FakeHost *h)
{
    unsigned n = 0;
    for (;;) {
        qemu_mutex_lock(&h->lock);
        FakeMainCall *c = g_queue_pop_head(&h->main_calls);
        qemu_mutex_unlock(&h->lock);
        if (!c) {
            return n;
        }
        c->fn(c->data);
        g_free(c);
        n++;
    }
}

void fake_host_wait_main_call(FakeHost *h)
{
    gint64 deadline = g_get_monotonic_time() + 30 * G_TIME_SPAN_SECOND;
    qemu_mutex_lock(&h->lock);
    while (g_queue_is_empty(&h->main_calls)) {
        if (!qemu_cond_wait_until(&h->cond, &h->lock, deadline)) {
            qemu_mutex_unlock(&h->lock);
            g_error("fake host: no main call queued within 30 s");
        }
    }
    qemu_mutex_unlock(&h->lock);
}

void fake_host_wait_status_event(FakeHost *h, const char *status)
{
    g_autofree char *want = g_strdup_printf("MIGRATION %s", status);
    gint64 deadline = g_get_monotonic_time() + 30 * G_TIME_SPAN_SECOND;
    qemu_mutex_lock(&h->lock);
    while (g_strcmp0(last_status_event(h), want) != 0) {
        if (!qemu_cond_wait_until(&h->cond, &h->lock, deadline)) {
            qemu_mutex_unlock(&h->lock);
            g_error("fake host: no event '%s' within 30 s", want);
        }
    }
    qemu_mutex_unlock(&h->lock);
}

static bool status_is_end(const char *s)
{
    return !strcmp(s, "completed") || !strcmp(s, "failed") || !strcmp(s, "cancelled");
}

static void wait_for(FakeHost *h, Migration *m, const char *status, MigrationInfo *info)
{
    gint64 deadline = g_get_monotonic_time() + 60 * G_TIME_SPAN_SECOND;
    for (;;) {
        fake_host_run_main_calls(h);
        migration_query(m, info);
        if (status ? !strcmp(info->status, status) : status_is_end(info->status)) {
            /* the status is set before its event is sent: wait for the event too */
            fake_host_wait_status_event(h, info->status);
            return;
        }
        if (g_get_monotonic_time() > deadline) {
            g_error("fake host: status still '%s' after 60 s (waiting for %s)", info->status,
                    status ? status : "the end");
        }
        if (status && status_is_end(info->status)) {
            g_error("fake host: status '%s' (%s) while waiting for '%s'", info->status,
                    info->error_desc ? info->error_desc : "no error", status);
        }
        migration_info_clear(info);
        g_usleep(2 * 1000);
    }
}

void fake_host_wait_end(FakeHost *h, Migration *m, MigrationInfo *info)
{
    wait_for(h, m, NULL, info);
}

void fake_host_wait_status(FakeHost *h, Migration *m, const char *status)
{
    MigrationInfo info;
    wait_for(h, m, status, &info);
    migration_info_clear(&info);
}

/* ---- the device ---- */

static int fake_device_pre_save(void *opaque)
{
    FakeDevice *d = opaque;
    return d->fail_pre_save ? -EIO : 0;
}

static int fake_device_post_load(void *opaque, int version_id)
{
    FakeDevice *d = opaque;
    d->post_loads++;
    return d->fail_post_load ? -EINVAL : 0;
}

const VMStateDescription fake_device_vmsd = {
    .name = "fakedev",
    .version_id = 1,
    .minimum_version_id = 1,
    .pre_save = fake_device_pre_save,
    .post_load = fake_device_post_load,
    .fields = (const VMStateField[]) {
        VMSTATE_UINT64(counter, FakeDevice),
        VMSTATE_UINT32(flags, FakeDevice),
        VMSTATE_BUFFER(label, FakeDevice),
        VMSTATE_END_OF_LIST()
    },
};

void fake_device_register(Migration *m, FakeDevice *d)
{
    migration_register_vmstate(m, "fakedev", 0, &fake_device_vmsd, d);
}

void fake_device_init(FakeDevice *d, unsigned seed)
{
    memset(d, 0, sizeof(*d));
    d->counter = 0x0123456789abcdefULL ^ seed;
    d->flags = 0x80000001u + seed;
    snprintf((char *)d->label, sizeof(d->label), "dev-%u", seed);
}

/* ---- files ---- */

char *fake_test_mkdtemp(const char *prefix)
{
    const char *parent = g_getenv("MAPRAM_TEST_TMPDIR");
    if (!parent || !*parent) {
        parent = "/var/tmp";
    }
    char *dir = g_strdup_printf("%s/mapram-%s-XXXXXX", parent, prefix);
    if (!g_mkdtemp(dir)) {
        g_error("cannot create a temp dir '%s': %s", dir, g_strerror(errno));
    }
    return dir;
}

void fake_test_rmtree(const char *dir)
{
    g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
    const char *name;
    if (!d) {
        return;
    }
    while ((name = g_dir_read_name(d))) {
        g_autofree char *path = g_build_filename(dir, name, NULL);
        if (g_file_test(path, G_FILE_TEST_IS_DIR) && !g_file_test(path, G_FILE_TEST_IS_SYMLINK)) {
            fake_test_rmtree(path);
        } else {
            unlink(path);
        }
    }
    rmdir(dir);
}

unsigned fake_test_count_threads(const char *prefix)
{
    g_autoptr(GDir) d = g_dir_open("/proc/self/task", 0, NULL);
    const char *tid;
    unsigned n = 0;

    g_assert_nonnull(d);
    while ((tid = g_dir_read_name(d))) {
        g_autofree char *path = g_strdup_printf("/proc/self/task/%s/stat", tid);
        g_autofree char *stat = NULL;
        if (!g_file_get_contents(path, &stat, NULL, NULL)) {
            continue;           /* gone since the listing */
        }
        /* "tid (comm) S ...": the name may hold spaces or parentheses, the state follows the last ')' */
        char *open = strchr(stat, '('), *close = strrchr(stat, ')');
        g_assert_true(open && close && close[1] == ' ');
        *close = 0;
        if (g_str_has_prefix(open + 1, prefix) && close[2] != 'Z' && close[2] != 'X') {
            n++;
        }
    }
    return n;
}

bool fake_test_have_o_direct(const char *dir)
{
    g_autofree char *path = g_build_filename(dir, "o-direct-probe", NULL);
    int fd = open(path, O_WRONLY | O_CREAT | O_DIRECT, 0600);
    if (fd < 0) {
        return false;
    }
    close(fd);
    unlink(path);
    return true;
}
