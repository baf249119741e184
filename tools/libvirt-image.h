/*
 * libvirt's save image ("virsh save", managed save): the one codec of its
 * header (docs/file-format.md, "libvirt save images").  A 92-byte header,
 * data_len bytes of domain XML, cookie and zero padding, then QEMU's data
 * at data_offset = 92 + data_len: a stream (raw or compressed by an
 * external program) or, for format "sparse", a mapped-ram file whose
 * offsets are absolute in the image.
 *
 *   LibvirtImage *img;
 *   if (!libvirt_image_open(path, &img, errp)) ...   img NULL: not a libvirt image
 *   ... img->data_offset, img->format, img->name ...
 *   libvirt_image_write_header(ioc, img, format, partial, errp);  (then the data)
 *   libvirt_image_free(img);
 *
 * Used by info, verify, convert and load: all of them go on into the QEMU
 * data at img->data_offset (through libvirt-compress.h when compressed).
 */
#ifndef TOOLS_LIBVIRT_IMAGE_H
#define TOOLS_LIBVIRT_IMAGE_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>
#include "io/channel.h"

#define LIBVIRT_SAVE_MAGIC "LibvirtQemudSave"
#define LIBVIRT_SAVE_PARTIAL "LibvirtQemudPart"
#define LIBVIRT_SAVE_MAGIC_LEN 16
#define LIBVIRT_SAVE_VERSION 2
/* magic, 5 uint32 fields, 14 unused uint32 */
#define LIBVIRT_SAVE_HEADER_SIZE 92
#define LIBVIRT_SAVE_UNUSED 14
/* what libvirt adds to XML + cookie so that the XML can be edited in place */
#define LIBVIRT_SAVE_PADDING (64 * 1024)

/* verify's problem with an image whose save never finished */
#define LIBVIRT_PARTIAL_PROBLEM \
    "libvirt save image is incomplete (magic " LIBVIRT_SAVE_PARTIAL ": the save was interrupted)"

/* The on-disk values of the format field: never renumbered. */
typedef enum LibvirtSaveFormat {
    LIBVIRT_FORMAT_RAW = 0,
    LIBVIRT_FORMAT_GZIP = 1,
    LIBVIRT_FORMAT_BZIP2 = 2,
    LIBVIRT_FORMAT_XZ = 3,
    LIBVIRT_FORMAT_LZOP = 4,
    LIBVIRT_FORMAT_ZSTD = 5,
    LIBVIRT_FORMAT_SPARSE = 6,
    LIBVIRT_FORMAT_LAST,
} LibvirtSaveFormat;

typedef struct LibvirtImage {
    bool partial;              /* magic LibvirtQemudPart: the save never finished */
    bool big_endian;           /* fields read byte-swapped (written on a BE host) */
    uint32_t version;          /* 1 or 2 */
    uint32_t data_len;         /* XML + cookie + padding */
    uint32_t was_running;
    uint32_t format_field;     /* as written */
    uint32_t format;           /* what follows: format_field, RAW for version 1 */
    uint32_t cookie_offset;    /* 0: no cookie */
    uint32_t unused[LIBVIRT_SAVE_UNUSED];
    uint64_t data_offset;      /* QEMU's data: 92 + data_len */
    uint8_t *data;             /* owned: data_len bytes, byte for byte */
    char *xml;                 /* owned: the XML up to its NUL */
    char *cookie;              /* owned: the cookie up to its NUL, NULL when none */
    /* from the XML (owned; NULL / 0 when absent) */
    char *name, *uuid, *machine;
    uint64_t memory_bytes;
} LibvirtImage;

const char *libvirt_format_name(uint32_t format);     /* NULL when unknown */
/* "gzip" -> LIBVIRT_FORMAT_GZIP; false when unknown. */
bool libvirt_format_from_name(const char *name, uint32_t *format);

/*
 * Parses an image from its first bytes (buf, len) of a file of file_size
 * bytes.  Returns false with errp for a damaged header; true with *img NULL
 * when buf holds no libvirt magic; true with *img (caller frees) otherwise.
 * buf must hold the whole file up to data_offset, or all of it when shorter.
 */
bool libvirt_image_parse(const uint8_t *buf, size_t len, uint64_t file_size,
                         LibvirtImage **img, GError **errp);
/* Reads path's header; *img NULL when it is not a libvirt image. */
bool libvirt_image_open(const char *path, LibvirtImage **img, GError **errp);
void libvirt_image_free(LibvirtImage *img);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(LibvirtImage, libvirt_image_free)

/*
 * Writes img's header (with format and the partial or final magic) and its
 * data_len bytes unchanged at offset 0 of out: what libvirt writes before
 * QEMU's data starts at img->data_offset.
 */
bool libvirt_image_write_header(IOChannel *out, const LibvirtImage *img, uint32_t format,
                                bool partial, GError **errp);
/* Only the 92-byte header again, final magic: libvirt's last step. */
bool libvirt_image_finish(IOChannel *out, const LibvirtImage *img, uint32_t format,
                          GError **errp);

#endif
