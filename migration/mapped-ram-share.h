/*
 * The shared restore (x-mapped-ram-shared, a mapram extension): instead of
 * reading a mapped-ram file's pages into guest RAM, each block's page
 * region is mapped privately over it (MAP_PRIVATE | MAP_FIXED).  N VMs
 * restored from one file share its page cache and pay only for the pages
 * they write (copy on write); the load reads nothing but the headers,
 * bitmaps and device state.
 *
 * A page whose bit is clear must read as zero even where its slot holds
 * stale bytes (a live save that cleared the bit in a later pass, a reused
 * file): such slots get anonymous zero pages over them.  The file must
 * not change under the VMs: each keeps a shared flock() on it for its
 * life, and mapram's saves take an exclusive one for theirs
 * (mapped_ram_share_lock_writer): a save refuses a file a shared restore
 * maps or another save writes, and a shared restore refuses a file a
 * save is writing.  A writer that ignores flock (QEMU,
 * cp, truncate) would change or cut the guests' memory: the user guide
 * says so.
 *
 * Guest RAM must be private anonymous memory (the host says so in
 * MigrationRAMBlock.private_anon); the file's page checksums are not
 * checked (nothing is read: `mapram verify --data` checks the file).
 */
#ifndef MIGRATION_MAPPED_RAM_SHARE_H
#define MIGRATION_MAPPED_RAM_SHARE_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>
#include "io/channel.h"
#include "mapped-ram.h"

/* Someone holds an exclusive flock() on the file (a writer, or mapram's write check). */
#define MAPPED_RAM_SHARE_BUSY \
    "Cannot map the migration file into guest memory: another process holds it locked " \
    "for writing"

/*
 * Maps the block's page region of fd over [host, host + used_length) and
 * zeroes its clear pages that hold data.  fd's offset moves (SEEK_DATA):
 * pass an fd of its own, not the stream's.  On failure the block's memory
 * is undefined: the load fails and the guest never runs.
 */
bool mapped_ram_share_block(int fd, const char *idstr, uint8_t *host, uint64_t used_length,
                            const MappedRamHeader *hdr, const unsigned long *bmap,
                            GError **errp);
/* A shared lock on fd's file, held by *lock_fd (close it to drop the lock). */
bool mapped_ram_share_lock(int fd, int *lock_fd, GError **errp);
/*
 * The same for a reader that needs the file unchanged until it is done
 * (an on-demand restore, mapram serve): refused while a save writes the
 * file ("Cannot <use>: another process holds it locked for writing"), so
 * that saves refuse the file while it is held.  *lock_fd is -1 where no
 * lock can be taken (not a regular file, no flock() on the file system):
 * as a save then takes none either, nothing is refused.
 */
bool mapped_ram_lock_reader(int fd, const char *use, int *lock_fd, GError **errp);
/*
 * Before writing ioc's file: an exclusive lock on it, held until ioc is
 * closed (none where ioc is not a regular file, or the file system has
 * no flock()).  Refused while a VM's memory comes from the file (a shared
 * or on-demand restore, mapram serve) or another save writes it (path:
 * for the message).
 */
bool mapped_ram_share_lock_writer(IOChannel *ioc, const char *path, GError **errp);

#endif
