/*
 * File opening with QEMU's /dev/fdset/N semantics.
 *
 * qemu_open() opens a path, or, for "/dev/fdset/N", asks the registered
 * fdset provider (monitor/fds.c) for a dup of a matching fd.  Always adds
 * O_CLOEXEC.  Errors: "Could not open '%s'" / "Could not create '%s'"
 * + ": <strerror>", and the fdset messages of the reference.
 * qemu_close() closes and tells the provider when the fd was an fdset dup.
 */
#ifndef UTIL_OSDEP_H
#define UTIL_OSDEP_H

#include <glib.h>
#include <stdbool.h>
#include <sys/types.h>

typedef struct FdsetProvider {
    /* Return a new fd (a dup) from fdset named by name ("/dev/fdset/N"), or -1 + errp. */
    int (*open)(const char *name, int flags, GError **errp);
    /* fd is about to be closed; return true if it was an fdset dup. */
    void (*close)(int fd);
} FdsetProvider;

void qemu_set_fdset_provider(const FdsetProvider *p);

int qemu_open(const char *name, int flags, mode_t mode, GError **errp);
int qemu_close(int fd);

/*
 * fdatasync(fd), again on EINTR: 0, or -1 with errno.  Enough for a save
 * file: the data and what it takes to read it back (size, extents) reach
 * the disk; timestamps need not.  The fault point "save-fsync" fails it
 * with EIO.
 */
int qemu_fdatasync(int fd);
/*
 * fsync() the directory that holds path, so that a file just created
 * there keeps its name after a crash (fdatasync of the file does not
 * promise that).  Nothing for /dev/fdset/ names (the caller's file), a
 * directory the process may not open (EACCES, EPERM: a drop directory
 * of mode 0733) or a file system that cannot sync a directory (EINVAL);
 * errors name path.
 * The fault point "save-fsync-dir" fails it with EIO.
 */
bool qemu_fsync_parent_dir(const char *path, GError **errp);

/* Allocation aligned for O_DIRECT (4096); free with qemu_vfree. */
void *qemu_memalign(size_t align, size_t size);
void qemu_vfree(void *p);

/* getpagesize() cached. */
size_t qemu_real_host_page_size(void);

#endif
