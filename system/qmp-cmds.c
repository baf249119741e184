/*
 * The VM's own QMP commands: query-status, stop, cont, quit, pmemsave.
 * The dispatcher has already validated argument names and types against
 * the schema; these check only what the schema cannot.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <unistd.h>

#include "monitor/qmp.h"
#include "system/runstate.h"
#include "util/error.h"
#include "util/osdep.h"
#include "util/thread.h"
#include "system/ramblock.h"
#include "system-internal.h"

static JsonNode *qmp_query_status(JsonObject *args, Monitor *mon, void *opaque, GError **errp)
{
    RunState s = runstate_get();
    JsonObject *o = json_object_new();
    JsonNode *node = json_node_new(JSON_NODE_OBJECT);

    json_object_set_boolean_member(o, "running", s == RUN_STATE_RUNNING);
    json_object_set_string_member(o, "status", runstate_name(s));
    json_node_take_object(node, o);
    return node;
}

/* While waiting for an incoming migration, stop and cont only set autostart. */
static JsonNode *qmp_stop(JsonObject *args, Monitor *mon, void *opaque, GError **errp)
{
    if (runstate_get() == RUN_STATE_INMIGRATE) {
        vm_set_autostart(false);
    } else {
        vm_stop_from_monitor();
    }
    return NULL;
}

static JsonNode *qmp_cont(JsonObject *args, Monitor *mon, void *opaque, GError **errp)
{
    if (runstate_needs_reset()) {
        error_setg(errp, "Resetting the Virtual Machine is required");
        return NULL;
    }
    /* never run a guest into pages that will not come: its vCPUs would wait for good */
    if (!migration_guest_ram_usable(opaque, errp)) {
        return NULL;
    }
    if (runstate_get() == RUN_STATE_INMIGRATE) {
        vm_set_autostart(true);
    } else {
        vm_start_from_monitor(errp);
    }
    return NULL;
}

static JsonNode *qmp_quit(JsonObject *args, Monitor *mon, void *opaque, GError **errp)
{
    vm_shutdown_request("host-qmp-quit", 0);
    return NULL;
}

static bool write_all(int fd, const uint8_t *buf, uint64_t len)
{
    while (len) {
        ssize_t n = write(fd, buf, len);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return false;
        }
        buf += n;
        len -= n;
    }
    return true;
}

/* Every byte of [addr, addr + size) must be guest RAM, across blocks. */
static bool pmem_range_valid(uint64_t addr, uint64_t size)
{
    while (size) {
        uint64_t off;
        RAMBlock *rb = guest_ram_lookup(addr, &off);

        if (!rb) {
            return false;
        }
        uint64_t n = MIN(size, rb->used_length - off);
        addr += n;
        size -= n;
    }
    return true;
}

/*
 * pmemsave copies guest RAM on a thread of its own while the command
 * waits: during an on-demand restore a page it reads may be one the
 * failed load will never bring, and the thread that touches it waits in
 * the kernel for good.  The restore names that thread
 * (pmem_thread_blocked()); the command then fails with the load's error,
 * where the main loop itself would have hung.  The thread copies through
 * a buffer and writes nothing more once the command gave up on it.
 */
#define PMEM_CHUNK (1u << 20)

typedef struct PmemJob {
    int refs;                  /* atomic: the command's and the thread's */
    /* Immutable once the thread runs; fd is the thread's */
    int fd;
    char *filename;
    uint64_t addr, size;
    /* Protected by pmem_lock */
    QemuCond cond;
    int tid;                   /* the thread's, once it runs */
    bool done;                 /* err is the outcome; fd is closed */
    bool abandoned;            /* the command gave up: write nothing more */
    char *blocked;             /* the load's error, once the thread is stuck */
    GError *err;
} PmemJob;

/* The jobs the restore may name (PmemJob *), and their fields above */
static QemuMutex pmem_lock;
static GSList *pmem_jobs;

static void pmem_job_unref(PmemJob *job)
{
    if (__atomic_fetch_sub(&job->refs, 1, __ATOMIC_ACQ_REL) != 1) {
        return;
    }
    qemu_cond_destroy(&job->cond);
    g_free(job->filename);
    g_free(job->blocked);
    if (job->err) {
        g_error_free(job->err);
    }
    g_free(job);
}

static gpointer pmem_thread(gpointer opaque)
{
    PmemJob *job = opaque;
    uint8_t *buf = g_malloc(PMEM_CHUNK);
    uint64_t addr = job->addr, size = job->size;
    GError *err = NULL;

    qemu_mutex_lock(&pmem_lock);
    job->tid = gettid();
    qemu_mutex_unlock(&pmem_lock);
    while (size) {
        uint64_t off;
        RAMBlock *rb = guest_ram_lookup(addr, &off);
        uint64_t n = MIN(MIN(size, rb->used_length - off), PMEM_CHUNK);

        memcpy(buf, rb->host + off, n);      /* may wait for a page */
        qemu_mutex_lock(&pmem_lock);
        bool abandoned = job->abandoned;
        qemu_mutex_unlock(&pmem_lock);
        if (abandoned) {
            break;
        }
        if (!write_all(job->fd, buf, n)) {
            error_setg_errno(&err, errno, "Could not write '%s'", job->filename);
            break;
        }
        addr += n;
        size -= n;
    }
    qemu_close(job->fd);
    g_free(buf);
    qemu_mutex_lock(&pmem_lock);
    job->err = err;
    job->done = true;
    qemu_cond_broadcast(&job->cond);
    qemu_mutex_unlock(&pmem_lock);
    pmem_job_unref(job);
    return NULL;
}

void pmem_thread_blocked(int tid, const char *msg)
{
    qemu_mutex_lock(&pmem_lock);
    for (GSList *l = pmem_jobs; l; l = l->next) {
        PmemJob *job = l->data;

        /* tid 0: the kernel did not say which thread; any copy may be */
        if ((tid == 0 || job->tid == tid) && !job->blocked) {
            job->blocked = g_strdup(msg);
            qemu_cond_broadcast(&job->cond);
        }
    }
    qemu_mutex_unlock(&pmem_lock);
}

/* Copies [addr, addr + size) of guest RAM to fd, which it takes. */
static bool pmem_write(int fd, const char *filename, uint64_t addr, uint64_t size,
                       GError **errp)
{
    PmemJob *job = g_new0(PmemJob, 1);
    bool ok;

    job->refs = 2;
    job->fd = fd;
    job->filename = g_strdup(filename);
    job->addr = addr;
    job->size = size;
    qemu_cond_init(&job->cond);
    qemu_mutex_lock(&pmem_lock);
    pmem_jobs = g_slist_prepend(pmem_jobs, job);
    qemu_mutex_unlock(&pmem_lock);
    g_thread_unref(g_thread_new("pmemsave", pmem_thread, job));

    qemu_mutex_lock(&pmem_lock);
    while (!job->done && !job->blocked) {
        qemu_cond_wait(&job->cond, &pmem_lock);
    }
    pmem_jobs = g_slist_remove(pmem_jobs, job);
    ok = job->done && !job->err;
    if (job->done && job->err) {
        g_propagate_error(errp, g_steal_pointer(&job->err));
    } else if (!job->done) {
        /* stuck on a page that will not come: it stays so until the VM ends */
        job->abandoned = true;
        error_setg(errp, "%s", job->blocked);
    }
    qemu_mutex_unlock(&pmem_lock);
    pmem_job_unref(job);
    return ok;
}

static JsonNode *qmp_pmemsave(JsonObject *args, Monitor *mon, void *opaque, GError **errp)
{
    gint64 val = qmp_arg_int(args, "val", 0);
    gint64 size = qmp_arg_int(args, "size", 0);
    const char *filename = qmp_arg_str(args, "filename", "");
    int fd;

    if (size < 0 || (uint64_t)val + (uint64_t)size < (uint64_t)val ||
        !pmem_range_valid(val, size)) {
        error_setg(errp, "Invalid addr 0x%016" PRIx64 "/size %" PRId64 " specified",
                   (uint64_t)val, (int64_t)size);
        return NULL;
    }
    /* the main loop would wait for good on a page that will not come */
    if (!migration_guest_ram_usable(opaque, errp)) {
        return NULL;
    }
    fd = qemu_open(filename, O_WRONLY | O_CREAT | O_TRUNC, 0600, errp);
    if (fd < 0) {
        return NULL;
    }
    /* NULL either way: {"return": {}}, or the error pmem_write set */
    pmem_write(fd, filename, val, size, errp);
    return NULL;
}

void system_qmp_register(Migration *mig)
{
    qmp_register_command("query-status", qmp_query_status, NULL);
    qmp_register_command("stop", qmp_stop, NULL);
    qmp_register_command("cont", qmp_cont, mig);
    qmp_register_command("quit", qmp_quit, NULL);
    qmp_register_command("pmemsave", qmp_pmemsave, mig);
}
