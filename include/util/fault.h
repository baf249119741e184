/*
 * Named fault-injection points for tests.
 *
 * MAPRAM_FAULT="name[:count][,name...]" in the environment arms points;
 * fault_hit("name") returns true (once per count, default 1 = the first hit
 * only... see util/fault.c) where a test wants a failure.  Points:
 *   save-page-write      a page-data write fails with EIO
 *   save-device-state    device state serialisation fails
 *   load-page-read       a page-data read fails with EIO
 *   save-fsync           qemu_fdatasync() fails with EIO (x-fsync, mapram save --fsync)
 *   multifd-send-stall   a multifd channel sleeps 50 ms per job (for cancel tests)
 *   device-state-stall   the save sleeps 1 s after stopping the VM, before its
 *                        device state (finish-migrate held open)
 *   save-late-cancel     a migrate_cancel comes when the save has done its
 *                        last step (channel closed, threads released) and
 *                        not yet decided how it ends
 *   multifd-method-new   a multifd channel's compression state cannot be made
 *                        (as when zlib or zstd runs out of memory)
 *   socket-resolve-stall a stoppable tcp connect's name lookup takes 60 s (a
 *                        resolver that does not answer)
 * Without the build option fault_injection every check is false.
 */
#ifndef UTIL_FAULT_H
#define UTIL_FAULT_H
#include <stdbool.h>
bool fault_hit(const char *name);
#endif
