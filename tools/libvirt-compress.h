/*
 * The compressed formats of libvirt's save images, through their libraries
 * (zlib's gzip framing, libbz2, liblzma's xz, libzstd) instead of the
 * external programs libvirt runs: one thread pumps in_fd into out_fd,
 * compressing or decompressing on the way, so that the readers and writers
 * of QEMU's data see a plain stream on a pipe.
 *
 *   CodecPump *p = codec_pump_start(format, false, in_fd, out_fd, errp);
 *   ... read the other end of out_fd's pipe ...
 *   ok = codec_pump_finish(p, errp);      joins; the pump's error, if any
 *
 * The pump owns in_fd and out_fd and closes them when it stops (end of
 * input, an error, or EPIPE when the reader stopped reading).
 * LIBVIRT_FORMAT_RAW copies; lzop and sparse are refused.
 */
#ifndef TOOLS_LIBVIRT_COMPRESS_H
#define TOOLS_LIBVIRT_COMPRESS_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct CodecPump CodecPump;

/* Can this build read (compress: write) the format?  errp says why not. */
bool codec_supported(uint32_t format, GError **errp);
CodecPump *codec_pump_start(uint32_t format, bool compress, int in_fd, int out_fd,
                            GError **errp);
bool codec_pump_finish(CodecPump *p, GError **errp);

#endif
