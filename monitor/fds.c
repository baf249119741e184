/*
 * File descriptors passed over the monitor with SCM_RIGHTS.
 *
 * Named fds (getfd / closefd / monitor_get_fd) serve the "fd:" transport.
 * Fdsets (add-fd / remove-fd / query-fdsets) serve "/dev/fdset/N" names:
 * every qemu_open() of such a name gets a dup of a member fd whose access
 * mode and O_DIRECT flag match, so a management layer can own the files
 * and still let the migration thread open several descriptions of them.
 *
 * Semantics follow QEMU's: fdset ids are allocated lowest free from 0,
 * a set lives until both its user fds (remove-fd) and its dups (closed
 * through qemu_close) are gone, query-fdsets lists sets in descending id
 * order and their fds oldest first.
 *
 * Locking: the fdset table is reached from the main thread (commands)
 * and the migration thread (opening multifd fds), so fdset_lock protects
 * it; named fds have their own lock for the same reason.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "monitor-internal.h"
#include "util/error.h"
#include "util/osdep.h"
#include "util/thread.h"

/* --- named fds --- */

static QemuMutex named_lock;
static GHashTable *named_fds;      /* name -> fd (GINT_TO_POINTER); named_lock */

static void named_fds_init(void)
{
    if (!named_fds) {
        named_fds = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    }
}

/* Takes ownership of fd; replaces (and closes) an fd of the same name. */
static void named_fd_add(const char *name, int fd)
{
    gpointer old;
    bool had;

    qemu_mutex_lock(&named_lock);
    named_fds_init();
    had = g_hash_table_lookup_extended(named_fds, name, NULL, &old);
    g_hash_table_replace(named_fds, g_strdup(name), GINT_TO_POINTER(fd));
    qemu_mutex_unlock(&named_lock);
    if (had) {
        close(GPOINTER_TO_INT(old));
    }
}

/* Remove and return the fd called name, or -1. */
static int named_fd_steal(const char *name)
{
    gpointer fd;
    bool found;

    qemu_mutex_lock(&named_lock);
    named_fds_init();
    found = g_hash_table_lookup_extended(named_fds, name, NULL, &fd);
    if (found) {
        g_hash_table_remove(named_fds, name);
    }
    qemu_mutex_unlock(&named_lock);
    return found ? GPOINTER_TO_INT(fd) : -1;
}

int monitor_get_fd(const char *fdname, GError **errp)
{
    int fd = named_fd_steal(fdname);

    if (fd < 0) {
        error_setg(errp, "File descriptor named '%s' has not been found", fdname);
    }
    return fd;
}

void monitor_fds_cleanup(void)
{
    GHashTableIter iter;
    gpointer fd;

    qemu_mutex_lock(&named_lock);
    if (named_fds) {
        g_hash_table_iter_init(&iter, named_fds);
        while (g_hash_table_iter_next(&iter, NULL, &fd)) {
            close(GPOINTER_TO_INT(fd));
        }
        g_clear_pointer(&named_fds, g_hash_table_unref);
    }
    qemu_mutex_unlock(&named_lock);
}

static JsonNode *qmp_getfd(JsonObject *args, Monitor *mon, void *opaque, GError **errp)
{
    const char *fdname = qmp_arg_str(args, "fdname", NULL);
    int fd = monitor_take_received_fd(mon);

    if (fd < 0) {
        error_setg(errp, "No file descriptor supplied via SCM_RIGHTS");
        return NULL;
    }
    if (g_ascii_isdigit(fdname[0])) {
        close(fd);
        error_setg(errp, "Parameter 'fdname' expects a name not starting with a digit");
        return NULL;
    }
    named_fd_add(fdname, fd);
    return NULL;
}

static JsonNode *qmp_closefd(JsonObject *args, Monitor *mon, void *opaque, GError **errp)
{
    const char *fdname = qmp_arg_str(args, "fdname", NULL);
    int fd = named_fd_steal(fdname);

    if (fd < 0) {
        error_setg(errp, "File descriptor named '%s' not found", fdname);
        return NULL;
    }
    close(fd);
    return NULL;
}

/* --- fdsets --- */

typedef struct FdsetFd {
    int fd;                   /* owned */
    char *opaque;
} FdsetFd;

typedef struct Fdset {
    gint64 id;
    GList *fds;               /* FdsetFd*, most recently added first */
    GList *dup_fds;           /* dups handed out (GINT_TO_POINTER), not owned */
} Fdset;

static QemuMutex fdset_lock;
static GList *fdsets;          /* Fdset*, ascending id; fdset_lock */

static void fdset_fd_free(FdsetFd *f)
{
    close(f->fd);
    g_free(f->opaque);
    g_free(f);
}

/* Called with fdset_lock held. */
static void fdset_free_if_empty(Fdset *set)
{
    if (!set->fds && !set->dup_fds) {
        fdsets = g_list_remove(fdsets, set);
        g_free(set);
    }
}

static Fdset *fdset_find(gint64 id)
{
    for (GList *l = fdsets; l; l = l->next) {
        Fdset *set = l->data;

        if (set->id == id) {
            return set;
        }
    }
    return NULL;
}

static gint fdset_cmp(gconstpointer a, gconstpointer b)
{
    gint64 ia = ((const Fdset *)a)->id, ib = ((const Fdset *)b)->id;

    return ia < ib ? -1 : ia > ib;
}

/* The lowest id not in use, counting from 0. */
static gint64 fdset_free_id(void)
{
    gint64 id = 0;

    for (GList *l = fdsets; l; l = l->next) {
        Fdset *set = l->data;

        if (set->id != id) {
            break;
        }
        id++;
    }
    return id;
}

/* Takes ownership of fd, also on failure; *id_out is the set's id. */
static bool fdset_add_fd(int fd, bool has_id, gint64 id, const char *opaque,
                         gint64 *id_out, GError **errp)
{
    Fdset *set;
    FdsetFd *f;

    qemu_mutex_lock(&fdset_lock);
    set = has_id ? fdset_find(id) : NULL;
    if (!set) {
        if (has_id && id < 0) {
            qemu_mutex_unlock(&fdset_lock);
            close(fd);
            error_setg(errp, "Parameter 'fdset-id' expects a non-negative value");
            return false;
        }
        set = g_new0(Fdset, 1);
        set->id = has_id ? id : fdset_free_id();
        fdsets = g_list_insert_sorted(fdsets, set, fdset_cmp);
    }
    f = g_new0(FdsetFd, 1);
    f->fd = fd;
    f->opaque = g_strdup(opaque);
    set->fds = g_list_prepend(set->fds, f);
    *id_out = set->id;
    qemu_mutex_unlock(&fdset_lock);
    return true;
}

static JsonNode *qmp_add_fd(JsonObject *args, Monitor *mon, void *opaque, GError **errp)
{
    int fd = monitor_take_received_fd(mon);
    gint64 id;
    JsonObject *info;
    JsonNode *n;

    if (fd < 0) {
        error_setg(errp, "No file descriptor supplied via SCM_RIGHTS");
        return NULL;
    }
    if (!fdset_add_fd(fd, qmp_arg_has(args, "fdset-id"), qmp_arg_int(args, "fdset-id", 0),
                      qmp_arg_str(args, "opaque", NULL), &id, errp)) {
        return NULL;
    }
    info = json_object_new();
    json_object_set_int_member(info, "fdset-id", id);
    json_object_set_int_member(info, "fd", fd);
    n = json_node_new(JSON_NODE_OBJECT);
    json_node_take_object(n, info);
    return n;
}

/* Close the user fd (or all of them when !has_fd); false if not found. */
static bool fdset_remove(gint64 id, bool has_fd, gint64 fd)
{
    Fdset *set;
    bool found = false;

    qemu_mutex_lock(&fdset_lock);
    set = fdset_find(id);
    if (set) {
        GList *l = set->fds;

        found = !has_fd;
        while (l) {
            GList *next = l->next;
            FdsetFd *f = l->data;

            if (!has_fd || f->fd == fd) {
                set->fds = g_list_delete_link(set->fds, l);
                fdset_fd_free(f);
                if (has_fd) {
                    found = true;
                    break;
                }
            }
            l = next;
        }
        if (found) {
            fdset_free_if_empty(set);
        }
    }
    qemu_mutex_unlock(&fdset_lock);
    return found;
}

static JsonNode *qmp_remove_fd(JsonObject *args, Monitor *mon, void *opaque, GError **errp)
{
    gint64 id = qmp_arg_int(args, "fdset-id", 0);
    bool has_fd = qmp_arg_has(args, "fd");
    gint64 fd = qmp_arg_int(args, "fd", -1);

    if (fdset_remove(id, has_fd, fd)) {
        return NULL;
    }
    if (has_fd) {
        error_setg(errp, "File descriptor named 'fdset-id:%" G_GINT64_FORMAT
                   ", fd:%" G_GINT64_FORMAT "' not found", id, fd);
    } else {
        error_setg(errp, "File descriptor named 'fdset-id:%" G_GINT64_FORMAT
                   "' not found", id);
    }
    return NULL;
}

static JsonObject *fdset_info(Fdset *set)
{
    JsonObject *info = json_object_new();
    JsonArray *fds = json_array_new();

    /* set->fds is newest first; QEMU lists oldest first. */
    for (GList *l = g_list_last(set->fds); l; l = l->prev) {
        FdsetFd *f = l->data;
        JsonObject *fi = json_object_new();

        json_object_set_int_member(fi, "fd", f->fd);
        if (f->opaque) {
            json_object_set_string_member(fi, "opaque", f->opaque);
        }
        json_array_add_object_element(fds, fi);
    }
    json_object_set_int_member(info, "fdset-id", set->id);
    json_object_set_array_member(info, "fds", fds);
    return info;
}

static JsonNode *qmp_query_fdsets(JsonObject *args, Monitor *mon, void *opaque, GError **errp)
{
    JsonArray *arr = json_array_new();
    JsonNode *n = json_node_new(JSON_NODE_ARRAY);

    qemu_mutex_lock(&fdset_lock);
    for (GList *l = g_list_last(fdsets); l; l = l->prev) {
        json_array_add_object_element(arr, fdset_info(l->data));
    }
    qemu_mutex_unlock(&fdset_lock);
    json_node_take_array(n, arr);
    return n;
}

/* --- the FdsetProvider behind qemu_open("/dev/fdset/N") --- */

static bool parse_fdset_name(const char *name, gint64 *id)
{
    const char *num;
    char *end;
    long long v;

    if (!g_str_has_prefix(name, "/dev/fdset/")) {
        return false;
    }
    num = name + strlen("/dev/fdset/");
    errno = 0;
    v = strtoll(num, &end, 10);
    if (end == num || *end || errno || v < 0) {
        return false;
    }
    *id = v;
    return true;
}

/* Like open() would, on a dup: status flags set, O_TRUNC honoured. */
static int dup_with_flags(int fd, int flags)
{
    int dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    int cur;

    if (dup_fd < 0) {
        return -1;
    }
    cur = fcntl(dup_fd, F_GETFL);
    if (cur < 0 || (cur & O_SYNC) != (flags & O_SYNC) ||
        fcntl(dup_fd, F_SETFL, flags) < 0 ||
        ((flags & O_TRUNC || (flags & (O_CREAT | O_EXCL)) == (O_CREAT | O_EXCL)) &&
         ftruncate(dup_fd, 0) < 0)) {
        int saved = errno;

        close(dup_fd);
        errno = saved;
        return -1;
    }
    return dup_fd;
}

/* The newest member whose access mode and O_DIRECT match, or -1 + errp. */
static int fdset_match(Fdset *set, int flags, GError **errp)
{
    const int mask = O_ACCMODE | O_DIRECT;

    for (GList *l = set->fds; l; l = l->next) {
        FdsetFd *f = l->data;
        int fl = fcntl(f->fd, F_GETFL);

        if (fl < 0) {
            error_setg(errp, "Failed to read file status flags for fd=%d", f->fd);
            return -1;
        }
        if ((fl & mask) == (flags & mask)) {
            return f->fd;
        }
    }
    errno = EACCES;
    error_setg(errp, "Failed to find file descriptor with matching flags=0x%x", flags);
    return -1;
}

static int fdset_open(const char *name, int flags, GError **errp)
{
    gint64 id;
    Fdset *set;
    int fd, dup_fd;

    /* The dup is close-on-exec anyway; QEMU's messages show the flags
     * without O_CLOEXEC (e.g. 0x41 for O_WRONLY | O_CREAT). */
    flags &= ~O_CLOEXEC;
    if (!parse_fdset_name(name, &id)) {
        errno = EINVAL;
        error_setg(errp, "Could not parse fdset %s", name);
        return -1;
    }
    qemu_mutex_lock(&fdset_lock);
    set = fdset_find(id);
    if (!set) {
        qemu_mutex_unlock(&fdset_lock);
        errno = ENOENT;
        error_setg(errp, "Failed to find fdset /dev/fdset/%" G_GINT64_FORMAT, id);
        return -1;
    }
    fd = fdset_match(set, flags, errp);
    if (fd < 0) {
        qemu_mutex_unlock(&fdset_lock);
        return -1;
    }
    dup_fd = dup_with_flags(fd, flags);
    if (dup_fd < 0) {
        qemu_mutex_unlock(&fdset_lock);
        error_setg(errp, "Failed to dup() given file descriptor fd=%d", fd);
        return -1;
    }
    set->dup_fds = g_list_prepend(set->dup_fds, GINT_TO_POINTER(dup_fd));
    qemu_mutex_unlock(&fdset_lock);
    return dup_fd;
}

static void fdset_close(int fd)
{
    qemu_mutex_lock(&fdset_lock);
    for (GList *l = fdsets; l; l = l->next) {
        Fdset *set = l->data;
        GList *d = g_list_find(set->dup_fds, GINT_TO_POINTER(fd));

        if (d) {
            set->dup_fds = g_list_delete_link(set->dup_fds, d);
            fdset_free_if_empty(set);
            break;
        }
    }
    qemu_mutex_unlock(&fdset_lock);
}

/*
 * Close every user fd of every fdset and forget the sets: the end of the
 * monitor's state (monitor_cleanup_all), or of a fuzz input.  Returns how
 * many dups were still handed out; they stay open, and closing one later
 * finds no set, which is harmless.  Not QEMU's disconnect cleanup: since
 * 9.1 QEMU keeps fdsets across monitor disconnects, and so does mapram.
 */
unsigned monitor_fdsets_free_all(void)
{
    unsigned dups = 0;

    qemu_mutex_lock(&fdset_lock);
    while (fdsets) {
        Fdset *set = fdsets->data;

        dups += g_list_length(set->dup_fds);
        g_list_free_full(set->fds, (GDestroyNotify)fdset_fd_free);
        g_list_free(set->dup_fds);
        g_free(set);
        fdsets = g_list_delete_link(fdsets, fdsets);
    }
    qemu_mutex_unlock(&fdset_lock);
    return dups;
}

static const FdsetProvider fdset_provider = {
    .open = fdset_open,
    .close = fdset_close,
};

void monitor_fdsets_init(void)
{
    qemu_set_fdset_provider(&fdset_provider);
}

void qmp_register_fd_commands(void)
{
    qmp_register_command("getfd", qmp_getfd, NULL);
    qmp_register_command("closefd", qmp_closefd, NULL);
    qmp_register_command("add-fd", qmp_add_fd, NULL);
    qmp_register_command("remove-fd", qmp_remove_fd, NULL);
    qmp_register_command("query-fdsets", qmp_query_fdsets, NULL);
}
