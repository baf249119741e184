/*
 * The mapram command-line tool: one file per subcommand, one row each in
 * the table of tools/mapram.c.  Subcommands return the process exit status.
 */
#ifndef TOOLS_MAPRAM_TOOL_H
#define TOOLS_MAPRAM_TOOL_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/types.h>
#include "io/channel.h"
#include "../migration/qemu-file.h"

int cmd_info(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_save(int argc, char **argv);
int cmd_load(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_serve(int argc, char **argv);

/* "FILE: " before errp's message, unless it already names 'FILE'. */
void tool_prefix_file(GError **errp, const char *file);
/*
 * "mapram CMD: FILE: MESSAGE" on stderr, without "FILE: " when the
 * message names the file already (an open error quotes its path).
 */
void tool_file_error(const char *cmd, const char *file, const char *message);

/*
 * True when path names the file st describes (the same path, a hard or a
 * symbolic link): writing it would cut the input before it is read.
 */
bool tool_is_same_file(const struct stat *st, const char *path);

/*
 * Open the output FILE for writing, created 0600 when it is missing
 * (*created then set: a command that fails removes what it created).
 */
IOChannel *tool_open_output(const char *path, bool *created, GError **errp);
/*
 * Once the command may write it (its writer lock held): until
 * tool_close_output, a SIGTERM, SIGINT or SIGHUP cuts it back to offset
 * (removes it when created) before the process dies of it.
 */
void tool_arm_output(IOChannel *out, const char *path, bool created, uint64_t offset);
/*
 * Closes an output opened so: on failure (ok false) it is cut back to
 * offset and, when created, removed first, while its writer lock is held.
 * True when ok and the close succeeded.
 */
bool tool_close_output(IOChannel *out, const char *path, bool created, uint64_t offset, bool ok,
                       GError **errp);

/*
 * Once, first thing in a command that writes a file (before any thread:
 * they inherit the blocked signals; and in none that starts programs,
 * which would too): SIGTERM, SIGINT and SIGHUP (unless ignored when we
 * started) undo what a failed command would (tool_arm_output), then end
 * the process as the signal would have.
 */
void tool_install_signal_cleanup(void);
/* A listening socket's file, removed by such a signal until disarmed. */
void tool_arm_socket(const char *path);
void tool_disarm_socket(void);

/* "FILE[,offset=N]" with QEMU's file: URI semantics. */
bool tool_parse_file_arg(const char *arg, char **path, uint64_t *offset, GError **errp);
/* Open FILE for reading at offset: a QEMUFile over a seekable channel. */
QEMUFile *tool_open_input(const char *path, uint64_t offset, GError **errp);

/*
 * QEMU's data in a libvirt save image (tools/libvirt-image.h): the file at
 * the image's data offset, or a pipe fed by a decompressing thread (*pump
 * set) for a compressed one.  tool_close_image_data() reads what is left
 * of a compressed stream (so that damage past the end of QEMU's data is
 * still found), closes f; the thread's error replaces the reader's.
 */
struct LibvirtImage;
struct CodecPump;
QEMUFile *tool_open_image_data(const char *path, const struct LibvirtImage *img,
                               struct CodecPump **pump, GError **errp);
/* ok: how the reader did (its error in *errp); returns the outcome of both. */
bool tool_close_image_data(QEMUFile *f, struct CodecPump *pump, bool ok, GError **errp);

/*
 * The analysis behind info and verify (tools/info.c), callable in process
 * (tests/fuzz drives it on in-memory files):
 *   Report *r = report_new(verify);
 *   ok = report_analyse(r, f, errp);       walk the stream: the first fatal problem
 *   report_verify(r);                      verify's whole-file checks, into the problems
 *   report_print_text(r, stdout, name);    or report_print_json(r, stdout)
 *   report_free(r);
 */
typedef struct Report Report;
Report *report_new(bool verify);
void report_free(Report *r);
bool report_analyse(Report *r, QEMUFile *f, GError **errp);
void report_verify(Report *r);
/* Problems found so far (char *), first first; verify fails when there is one. */
GPtrArray *report_problems(Report *r);
void report_print_text(Report *r, FILE *out, const char *name);
void report_print_json(Report *r, FILE *out);

/* Options shared by save / load / convert. */
typedef struct PageIoOptions {
    unsigned channels;
    bool direct_io;
    unsigned queue_depth;
    bool progress;
    const char *name;          /* what progress lines start with; NULL: "mapram save"/"load" */
    bool fsync;            /* the output on the disk before success */
    bool checksums;            /* write a mapped-ram file's checksum table / check a file's */
} PageIoOptions;

/*
 * Options and "FILE[,offset=N]" of save/load; false = usage error (printed).
 * writes: the command writes a file, so --fsync is offered.  extra (or
 * NULL): the command's own options, which it took out of argv before;
 * listed here so that --help shows them too.
 */
bool tool_parse_io_options(int *argc, char ***argv, const char *usage, bool writes,
                           const GOptionEntry *extra, PageIoOptions *o, GError **errp);
bool tool_parse_file_command(const char *name, int argc, char **argv, const char *usage,
                             bool writes, const GOptionEntry *extra, PageIoOptions *o,
                             char **path, uint64_t *offset);
/* io_channel_sync() of a written file, the error naming its path. */
bool tool_sync_output(IOChannel *ioc, const char *path, GError **errp);

/*
 * stream (f) -> mapped-ram file path at offset.  locked: the caller holds
 * the file's writer lock (mapped_ram_share_lock_writer) over the call.
 * An error names the output file when writing it failed, else in_name
 * (the input file; NULL: stdin or a socket, not named).
 */
bool mapram_stream_to_mapped(QEMUFile *in, const char *in_name, const char *path,
                             uint64_t offset, bool locked, const PageIoOptions *o, GError **errp);
/*
 * mapped-ram file path at offset -> stream written to out.  An error
 * names the side that failed: path, or out (its channel's name).
 */
bool mapram_mapped_to_stream(const char *path, uint64_t offset, IOChannel *out,
                             const PageIoOptions *o, GError **errp);
/* mapram load --connect: where and how to send. */
typedef struct ConnectOptions {
    char *uri;                 /* tcp:HOST:PORT or unix:PATH */
    unsigned channels;         /* multifd channels, QEMU's multifd-channels */
    char *compression;         /* QEMU's multifd-compression: none, zlib, zstd */
    int level;                 /* zlib/zstd level */
    unsigned timeout_s;        /* QEMU read nothing for this long: failure */
    unsigned qemu_major, qemu_minor;   /* the wire of that QEMU; 0: the machine type's */
    uint8_t uuid[16];          /* QEMU's -uuid, which its multifd channels must carry */
} ConnectOptions;
/* mapped-ram file path at offset -> a QEMU listening with multifd on. */
bool mapram_mapped_to_qemu(const char *path, uint64_t offset, const ConnectOptions *co,
                           const PageIoOptions *o, GError **errp);
/*
 * The header and configuration of the stream a mapped-ram file (path, for
 * the error) becomes: its configuration without the mapped-ram
 * capability.  An error when cfg has none: the file is not mapped-ram.
 */
struct StreamConfig;
bool tool_put_stream_head(QEMUFile *out, const struct StreamConfig *cfg, const char *path,
                          GError **errp);
/* Does the file at path/offset hold a mapped-ram stream? */
bool mapram_file_is_mapped(const char *path, uint64_t offset, bool *is_mapped, GError **errp);

/*
 * Progress on stderr when it is a terminal: a line rewritten in place at
 * most twice a second, and at the end, in its place, one summary line
 * ("mapram save: 64 MiB of RAM (16384 pages) in 0.21 s, 305 MiB/s"), or
 * nothing when the command failed (its error follows on a clean line).
 */
typedef struct Progress Progress;
Progress *progress_new(const char *what, bool enabled);
void progress_set_total(Progress *p, uint64_t total);
void progress_update(Progress *p, uint64_t done);
/* Ends the line as above and frees p. */
void progress_finish(Progress *p, bool ok);

#endif
