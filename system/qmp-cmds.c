/*
 * The VM's own QMP commands: query-status, stop, cont, quit, pmemsave.
 * The dispatcher has already validated argument names and types against
 * the schema; these check only what the schema cannot.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <unistd.h>

#include "monitor/qmp.h"
#include "system/runstate.h"
#include "util/error.h"
#include "util/osdep.h"
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
        ssize_t n = write(fd, buf, MIN(len, 1ULL << 30));

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

static bool pmem_write(int fd, const char *filename, uint64_t addr, uint64_t size,
                       GError **errp)
{
    while (size) {
        uint64_t off;
        RAMBlock *rb = guest_ram_lookup(addr, &off);
        uint64_t n = MIN(size, rb->used_length - off);

        if (!write_all(fd, rb->host + off, n)) {
            error_setg_errno(errp, errno, "Could not write '%s'", filename);
            return false;
        }
        addr += n;
        size -= n;
    }
    return true;
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
    qemu_close(fd);
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
