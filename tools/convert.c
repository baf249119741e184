/*
 * mapram convert IN OUT: stream file <-> mapped-ram file, by the same
 * cores as save and load.
 */
#include "mapram-tool.h"
#include "libvirt-compress.h"
#include "libvirt-image.h"
#include "../migration/mapped-ram-share.h"
#include "../migration/savevm.h"
#include "util/error.h"
#include "util/osdep.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <string.h>
#include <unistd.h>

static bool peek_config(void *opaque, QEMUFile *f, const StreamConfig *cfg, GError **errp)
{
    bool *mapped = opaque;
    for (guint i = 0; i < cfg->caps->len; i++) {
        if (!strcmp(g_ptr_array_index(cfg->caps, i), "mapped-ram")) {
            *mapped = true;
        }
    }
    /* stop the walk here: we only wanted the configuration */
    g_set_error_literal(errp, G_IO_ERROR, G_IO_ERROR_CANCELLED, "done");
    return false;
}

bool mapram_file_is_mapped(const char *path, uint64_t offset, bool *is_mapped, GError **errp)
{
    static const StreamVisitor v = { .configuration = peek_config };
    QEMUFile *f = tool_open_input(path, offset, errp);
    if (!f) {
        return false;
    }
    GError *err = NULL;
    *is_mapped = false;
    savevm_walk_stream(f, &v, is_mapped, false, &err);
    qemu_fclose(f, NULL);
    if (g_error_matches(err, G_IO_ERROR, G_IO_ERROR_CANCELLED)) {
        g_error_free(err);
        return true;
    }
    g_propagate_error(errp, err);
    return false;
}

bool tool_parse_io_options(int *argc, char ***argv, const char *usage, bool writes,
                           const GOptionEntry *extra, PageIoOptions *o, GError **errp)
{
    gint channels = o->channels, depth = o->queue_depth;
    gboolean dio = FALSE, quiet = FALSE, fsync = FALSE, no_checksums = FALSE;
    GOptionEntry entries[] = {
        { "channels", 'c', 0, G_OPTION_ARG_INT, &channels, "parallel page-I/O channels (1-255)", "N" },
        { "direct-io", 'd', 0, G_OPTION_ARG_NONE, &dio, "O_DIRECT on the page-data fds", NULL },
        { "queue-depth", 'q', 0, G_OPTION_ARG_INT, &depth, "async requests in flight per channel", "N" },
        { "quiet", 0, 0, G_OPTION_ARG_NONE, &quiet, "no progress on stderr", NULL },
        { "no-checksums", 0, 0, G_OPTION_ARG_NONE, &no_checksums,
          "write no checksum table into a mapped-ram file, check none when reading one", NULL },
        /* last: left out (NULL-terminated early) when nothing is written */
        { "fsync", 0, 0, G_OPTION_ARG_NONE, &fsync,
          "exit 0 only once the output is on the disk (fdatasync of every fd)", NULL },
        { NULL }
    };
    if (!writes) {
        memset(&entries[G_N_ELEMENTS(entries) - 2], 0, sizeof(entries[0]));
    }
    g_autoptr(GOptionContext) ctx = g_option_context_new(usage);
    g_option_context_add_main_entries(ctx, entries, NULL);
    if (extra) {
        g_option_context_add_main_entries(ctx, extra, NULL);
    }
    if (!g_option_context_parse(ctx, argc, argv, errp)) {
        return false;
    }
    if (channels < 1 || channels > 255) {
        g_set_error(errp, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                    "--channels expects a value between 1 and 255");
        return false;
    }
    if (depth < 1 || depth > 256) {
        g_set_error(errp, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                    "--queue-depth expects a value between 1 and 256");
        return false;
    }
    o->channels = channels;
    o->queue_depth = depth;
    o->direct_io = dio;
    o->progress = !quiet;
    o->fsync = fsync;
    o->checksums = !no_checksums;
    return true;
}

bool tool_sync_output(IOChannel *ioc, const char *path, GError **errp)
{
    if (!io_channel_sync(ioc, NULL)) {
        error_setg_errno(errp, errno, "Unable to sync '%s' to disk", path);
        return false;
    }
    /* a file the tool created keeps its name after a crash too */
    return qemu_fsync_parent_dir(path, errp);
}

bool tool_parse_file_command(const char *name, int argc, char **argv, const char *usage,
                             bool writes, const GOptionEntry *extra, PageIoOptions *o,
                             char **path, uint64_t *offset)
{
    GError *err = NULL;
    *o = (PageIoOptions){ .channels = 1, .queue_depth = 256, .progress = true };
    if (!tool_parse_io_options(&argc, &argv, usage, writes, extra, o, &err) || argc != 2 ||
        !tool_parse_file_arg(argv[1], path, offset, &err)) {
        fprintf(stderr, "mapram %s: %s\n", name, err ? err->message : "expected one FILE");
        g_clear_error(&err);
        return false;
    }
    return true;
}

/* sparse image -> stream image in format: header, the pages as a stream, final magic */
static bool libvirt_to_stream(const char *in_path, const LibvirtImage *img, IOChannel *out,
                              uint32_t format, const PageIoOptions *o, GError **errp)
{
    if (format == LIBVIRT_FORMAT_RAW) {
        return io_channel_seek(out, img->data_offset, SEEK_SET, errp) >= 0 &&
               mapram_mapped_to_stream(in_path, img->data_offset, out, o, errp);
    }
    int pipefd[2];
    int out_fd = dup(io_channel_get_fd(out));
    if (out_fd < 0 || pipe2(pipefd, O_CLOEXEC) < 0) {
        error_setg_errno(errp, errno, "Unable to set up the %s compression",
                         libvirt_format_name(format));
        if (out_fd >= 0) {
            close(out_fd);
        }
        return false;
    }
    if (lseek(out_fd, img->data_offset, SEEK_SET) < 0) {
        error_setg_errno(errp, errno, "Unable to seek to offset %" G_GUINT64_FORMAT,
                         img->data_offset);
        close(out_fd);
        close(pipefd[0]);
        close(pipefd[1]);
        return false;
    }
    CodecPump *pump = codec_pump_start(format, true, pipefd[0], out_fd, errp);
    if (!pump) {
        close(pipefd[1]);
        return false;
    }
    g_autoptr(IOChannel) pipe_out = io_channel_file_new_fd(pipefd[1], "compressor");
    GError *err = NULL;
    bool ok = mapram_mapped_to_stream(in_path, img->data_offset, pipe_out, o, &err);
    io_channel_close(pipe_out, NULL);
    /* the pump's error first: a failed write into its pipe follows from it */
    if (!codec_pump_finish(pump, errp)) {
        g_clear_error(&err);
        return false;
    }
    if (!ok) {
        g_propagate_error(errp, err);
    }
    return ok;
}

/* stream image (raw or compressed) -> sparse image at the same data offset */
static bool libvirt_to_sparse(const char *in_path, const LibvirtImage *img,
                              const char *out_path, const PageIoOptions *o, GError **errp)
{
    struct CodecPump *pump;
    QEMUFile *in = tool_open_image_data(in_path, img, &pump, errp);
    if (!in) {
        return false;
    }
    /* convert_libvirt's channel on out_path holds the lock */
    bool ok = mapram_stream_to_mapped(in, in_path, out_path, img->data_offset, true, o, errp);
    return tool_close_image_data(in, pump, ok, errp);
}

/*
 * A libvirt save image: the direction follows its format (sparse -> stream
 * in format, stream -> sparse); the XML, cookie and padding are copied
 * byte for byte and the data starts where it did.  Like libvirt, the
 * header carries the partial magic until the data is complete.
 */
static bool convert_libvirt(const char *in_path, const LibvirtImage *img, const char *out_path,
                            const char *format_name, const PageIoOptions *o, GError **errp)
{
    bool sparse_in = img->format == LIBVIRT_FORMAT_SPARSE;
    uint32_t format = sparse_in ? LIBVIRT_FORMAT_RAW : LIBVIRT_FORMAT_SPARSE;
    if (img->partial) {
        error_setg(errp, "%s", LIBVIRT_PARTIAL_PROBLEM);
        return false;
    }
    if (format_name) {
        if (!libvirt_format_from_name(format_name, &format) ||
            format == LIBVIRT_FORMAT_SPARSE) {
            error_setg(errp, "--format '%s' is not one of raw, gzip, bzip2, xz, lzop, zstd",
                       format_name);
            return false;
        }
        if (!sparse_in) {
            error_setg(errp, "--format applies to a sparse image: this one is %s and becomes "
                       "sparse", libvirt_format_name(img->format));
            return false;
        }
        if (!codec_supported(format, errp)) {
            return false;
        }
    }
    bool created;
    g_autoptr(IOChannel) out = tool_open_output(out_path, &created, errp);
    if (!out) {
        return false;
    }
    if (!mapped_ram_share_lock_writer(out, out_path, errp)) {
        return false;           /* a file that backs a running VM is left alone */
    }
    tool_arm_output(out, out_path, created, 0);
    bool ok = io_channel_truncate_for_write(out, 0, errp) &&
              libvirt_image_write_header(out, img, format, true, errp);
    ok = ok && (sparse_in ? libvirt_to_stream(in_path, img, out, format, o, errp)
                          : libvirt_to_sparse(in_path, img, out_path, o, errp));
    ok = ok && libvirt_image_finish(out, img, format, errp) &&
         (!o->fsync || tool_sync_output(out, out_path, errp));
    return tool_close_output(out, out_path, created, 0, ok, errp);
}

int cmd_convert(int argc, char **argv)
{
    g_autofree char *format_name = NULL;
    const GOptionEntry format_entry[] = {
        { "format", 0, 0, G_OPTION_ARG_STRING, &format_name,
          "the format a sparse libvirt image becomes: raw (the default), gzip, bzip2, xz or "
          "zstd", "NAME" },
        { NULL }
    };
    PageIoOptions o = { .channels = 1, .queue_depth = 256, .progress = true,
                        .name = "mapram convert" };
    GError *err = NULL;
    tool_install_signal_cleanup();
    if (!tool_parse_io_options(&argc, &argv, "IN[,offset=N] OUT[,offset=N] - convert a stream "
                               "file to a mapped-ram file or back; a libvirt save image "
                               "to a sparse one or back", true, format_entry, &o, &err) ||
        argc != 3) {
        fprintf(stderr, "mapram convert: %s\n", err ? err->message : "expected IN and OUT");
        g_clear_error(&err);
        return 2;
    }
    g_autofree char *in_path = NULL, *out_path = NULL;
    uint64_t in_off, out_off;
    bool mapped;
    if (!tool_parse_file_arg(argv[1], &in_path, &in_off, &err) ||
        !tool_parse_file_arg(argv[2], &out_path, &out_off, &err)) {
        fprintf(stderr, "mapram convert: %s\n", err->message);
        g_error_free(err);
        return 2;
    }
    struct stat in_st;
    if (stat(in_path, &in_st) == 0 && tool_is_same_file(&in_st, out_path)) {
        fprintf(stderr, "mapram convert: %s and %s are the same file\n", in_path, out_path);
        return 2;
    }
    g_autoptr(LibvirtImage) img = NULL;
    if (in_off == 0 && !libvirt_image_open(in_path, &img, &err)) {
        tool_file_error("convert", argv[1], err->message);
        g_error_free(err);
        return 1;
    }
    if (img) {
        if (out_off) {
            fprintf(stderr, "mapram convert: a libvirt save image is written at offset 0, "
                    "not %" G_GUINT64_FORMAT "\n", out_off);
            return 2;
        }
        if (!convert_libvirt(in_path, img, out_path, format_name, &o, &err)) {
            fprintf(stderr, "mapram convert: %s\n", err->message);
            g_error_free(err);
            return 1;
        }
        return 0;
    }
    if (format_name) {
        fprintf(stderr, "mapram convert: --format applies to libvirt save images only\n");
        return 2;
    }
    if (!mapram_file_is_mapped(in_path, in_off, &mapped, &err)) {
        tool_file_error("convert", argv[1], err->message);
        g_error_free(err);
        return 1;
    }
    bool ok;
    if (!mapped) {
        QEMUFile *in = tool_open_input(in_path, in_off, &err);
        ok = in && mapram_stream_to_mapped(in, in_path, out_path, out_off, false, &o, &err);
        if (in) {
            qemu_fclose(in, NULL);
        }
    } else {
        bool created;
        g_autoptr(IOChannel) out = tool_open_output(out_path, &created, &err);
        /* a file that backs a running VM is left alone, not even cut */
        bool writable = out &&
            mapped_ram_share_lock_writer(out, out_path, &err);
        if (writable) {
            tool_arm_output(out, out_path, created, out_off);
        }
        ok = writable && io_channel_truncate_for_write(out, out_off, &err) &&
             io_channel_seek(out, out_off, SEEK_SET, &err) >= 0 &&
             mapram_mapped_to_stream(in_path, in_off, out, &o, &err) &&
             (!o.fsync || tool_sync_output(out, out_path, &err));
        if (out && !writable) {
            if (created) {
                unlink(out_path);           /* ours, and empty */
            }
            io_channel_close(out, NULL);    /* a file another writer holds is left alone */
        } else if (out) {
            ok = tool_close_output(out, out_path, created, out_off, ok, &err);
        }
    }
    if (!ok) {
        fprintf(stderr, "mapram convert: %s\n", err->message);
        g_error_free(err);
        return 1;
    }
    return 0;
}
