/*
 * libvirt's save image header: parse and write (see libvirt-image.h and
 * docs/file-format.md for where each fact comes from).
 */
#include "libvirt-image.h"
#include "util/error.h"
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const format_names[LIBVIRT_FORMAT_LAST] = {
    [LIBVIRT_FORMAT_RAW] = "raw",
    [LIBVIRT_FORMAT_GZIP] = "gzip",
    [LIBVIRT_FORMAT_BZIP2] = "bzip2",
    [LIBVIRT_FORMAT_XZ] = "xz",
    [LIBVIRT_FORMAT_LZOP] = "lzop",
    [LIBVIRT_FORMAT_ZSTD] = "zstd",
    [LIBVIRT_FORMAT_SPARSE] = "sparse",
};

const char *libvirt_format_name(uint32_t format)
{
    return format < LIBVIRT_FORMAT_LAST ? format_names[format] : NULL;
}

bool libvirt_format_from_name(const char *name, uint32_t *format)
{
    for (uint32_t i = 0; i < LIBVIRT_FORMAT_LAST; i++) {
        if (!strcmp(name, format_names[i])) {
            *format = i;
            return true;
        }
    }
    return false;
}

void libvirt_image_free(LibvirtImage *img)
{
    if (!img) {
        return;
    }
    g_free(img->data);
    g_free(img->xml);
    g_free(img->cookie);
    g_free(img->name);
    g_free(img->uuid);
    g_free(img->machine);
    g_free(img);
}

static uint32_t get_u32(const uint8_t *p, bool big_endian)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return big_endian ? GUINT32_FROM_BE(v) : GUINT32_FROM_LE(v);
}

/* ---- the domain XML: name, uuid, memory, machine ---- */

typedef struct XmlCtx {
    LibvirtImage *img;
    int depth;                 /* 1 inside <domain> */
    const char *in;            /* "name", "uuid", "memory" directly under <domain> */
    GString *text;
    uint64_t unit_bytes;
} XmlCtx;

/* libvirt's scaled units of <memory unit=...> (KiB when absent). */
static uint64_t memory_unit(const char *unit)
{
    static const struct { const char *name; uint64_t bytes; } units[] = {
        { "b", 1 }, { "bytes", 1 },
        { "KB", 1000ULL }, { "k", 1ULL << 10 }, { "KiB", 1ULL << 10 },
        { "MB", 1000000ULL }, { "M", 1ULL << 20 }, { "MiB", 1ULL << 20 },
        { "GB", 1000000000ULL }, { "G", 1ULL << 30 }, { "GiB", 1ULL << 30 },
        { "TB", 1000000000000ULL }, { "T", 1ULL << 40 }, { "TiB", 1ULL << 40 },
    };
    if (!unit) {
        return 1024;
    }
    for (size_t i = 0; i < G_N_ELEMENTS(units); i++) {
        if (!g_ascii_strcasecmp(unit, units[i].name)) {
            return units[i].bytes;
        }
    }
    return 0;
}

static void xml_start(GMarkupParseContext *pc, const char *element, const char **names,
                      const char **values, gpointer opaque, GError **errp)
{
    XmlCtx *x = opaque;
    x->depth++;
    if (x->depth == 2) {
        for (const char *const *e = (const char *const[]){ "name", "uuid", "memory", NULL };
             *e; e++) {
            if (!strcmp(element, *e)) {
                x->in = *e;
                g_string_truncate(x->text, 0);
            }
        }
        if (x->in && !strcmp(x->in, "memory")) {
            const char *unit = NULL;
            for (int i = 0; names[i]; i++) {
                if (!strcmp(names[i], "unit")) {
                    unit = values[i];
                }
            }
            x->unit_bytes = memory_unit(unit);
        }
    }
    /* <domain><os><type machine='...'> */
    if (x->depth == 3 && !strcmp(element, "type") &&
        !strcmp(g_markup_parse_context_get_element_stack(pc)->next->data, "os")) {
        for (int i = 0; names[i]; i++) {
            if (!strcmp(names[i], "machine") && !x->img->machine) {
                x->img->machine = g_strdup(values[i]);
            }
        }
    }
}

static void xml_end(GMarkupParseContext *pc, const char *element, gpointer opaque,
                    GError **errp)
{
    XmlCtx *x = opaque;
    if (x->depth == 2 && x->in) {
        char *t = g_strstrip(x->text->str);
        if (!strcmp(x->in, "name")) {
            g_free(x->img->name);
            x->img->name = g_strdup(t);
        } else if (!strcmp(x->in, "uuid")) {
            g_free(x->img->uuid);
            x->img->uuid = g_strdup(t);
        } else {
            guint64 v;
            if (g_ascii_string_to_unsigned(t, 10, 0, G_MAXUINT64, &v, NULL) &&
                x->unit_bytes && v <= G_MAXUINT64 / x->unit_bytes) {
                x->img->memory_bytes = v * x->unit_bytes;
            }
        }
        x->in = NULL;
    }
    x->depth--;
}

static void xml_text(GMarkupParseContext *pc, const char *text, gsize len, gpointer opaque,
                     GError **errp)
{
    XmlCtx *x = opaque;
    if (x->in) {
        g_string_append_len(x->text, text, len);
    }
}

static bool parse_xml(LibvirtImage *img, GError **errp)
{
    static const GMarkupParser parser = {
        .start_element = xml_start, .end_element = xml_end, .text = xml_text,
    };
    XmlCtx x = { .img = img, .text = g_string_new(NULL) };
    GMarkupParseContext *pc = g_markup_parse_context_new(&parser, 0, &x, NULL);
    bool ok = g_markup_parse_context_parse(pc, img->xml, -1, errp) &&
              g_markup_parse_context_end_parse(pc, errp);
    g_markup_parse_context_free(pc);
    g_string_free(x.text, TRUE);
    if (!ok) {
        g_prefix_error(errp, "libvirt save image: domain XML: ");
    }
    return ok;
}

/* ---- the header ---- */

bool libvirt_image_parse(const uint8_t *buf, size_t len, uint64_t file_size,
                         LibvirtImage **out, GError **errp)
{
    *out = NULL;
    bool partial = len >= LIBVIRT_SAVE_MAGIC_LEN &&
                   !memcmp(buf, LIBVIRT_SAVE_PARTIAL, LIBVIRT_SAVE_MAGIC_LEN);
    if (len < LIBVIRT_SAVE_MAGIC_LEN ||
        (!partial && memcmp(buf, LIBVIRT_SAVE_MAGIC, LIBVIRT_SAVE_MAGIC_LEN))) {
        return true;
    }
    if (len < LIBVIRT_SAVE_HEADER_SIZE) {
        error_setg(errp, "libvirt save image: header truncated: %zu of %d bytes", len,
                   LIBVIRT_SAVE_HEADER_SIZE);
        return false;
    }
    g_autoptr(LibvirtImage) img = g_new0(LibvirtImage, 1);
    img->partial = partial;
    /* written in the host's byte order: a version past ours means the other one */
    img->version = get_u32(buf + 16, false);
    if (img->version > LIBVIRT_SAVE_VERSION) {
        img->big_endian = true;
        img->version = get_u32(buf + 16, true);
    }
    if (img->version < 1 || img->version > LIBVIRT_SAVE_VERSION) {
        error_setg(errp, "libvirt save image: unknown version %u (known: 1, 2)",
                   get_u32(buf + 16, false));
        return false;
    }
    const uint8_t *p = buf + LIBVIRT_SAVE_MAGIC_LEN;
    img->data_len = get_u32(p + 4, img->big_endian);
    img->was_running = get_u32(p + 8, img->big_endian);
    img->format_field = get_u32(p + 12, img->big_endian);
    img->cookie_offset = get_u32(p + 16, img->big_endian);
    for (int i = 0; i < LIBVIRT_SAVE_UNUSED; i++) {
        img->unused[i] = get_u32(p + 20 + 4 * i, img->big_endian);
    }
    if (img->format_field >= LIBVIRT_FORMAT_LAST) {
        error_setg(errp, "libvirt save image: unknown format %u (known: 0 raw, 1 gzip, "
                   "2 bzip2, 3 xz, 4 lzop, 5 zstd, 6 sparse)", img->format_field);
        return false;
    }
    /* version 1 images predate the field: libvirt reads them raw */
    img->format = img->version == 1 ? LIBVIRT_FORMAT_RAW : img->format_field;
    if (img->data_len == 0) {
        error_setg(errp, "libvirt save image: data_len 0 leaves no room for the domain XML");
        return false;
    }
    img->data_offset = (uint64_t)LIBVIRT_SAVE_HEADER_SIZE + img->data_len;
    if (img->data_offset > file_size || img->data_offset > len) {
        error_setg(errp, "libvirt save image: data_len %u (XML, cookie and padding) runs "
                   "past the end of the file (%" G_GUINT64_FORMAT " bytes)",
                   img->data_len, file_size);
        return false;
    }
    if (img->cookie_offset >= img->data_len) {
        error_setg(errp, "libvirt save image: cookieOffset %u is not within data_len %u",
                   img->cookie_offset, img->data_len);
        return false;
    }
    img->data = g_memdup2(buf + LIBVIRT_SAVE_HEADER_SIZE, img->data_len);
    uint32_t xml_len = img->cookie_offset ? img->cookie_offset : img->data_len;
    img->xml = g_strndup((const char *)img->data, xml_len);
    if (img->cookie_offset) {
        img->cookie = g_strndup((const char *)img->data + img->cookie_offset,
                                img->data_len - img->cookie_offset);
    }
    if (!parse_xml(img, errp)) {
        return false;
    }
    *out = g_steal_pointer(&img);
    return true;
}

bool libvirt_image_open(const char *path, LibvirtImage **img, GError **errp)
{
    *img = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        error_setg_errno(errp, errno, "Could not open '%s'", path);
        return false;
    }
    struct stat st;
    uint8_t head[LIBVIRT_SAVE_HEADER_SIZE];
    ssize_t n = fstat(fd, &st) < 0 ? -1 : pread(fd, head, sizeof(head), 0);
    if (n < 0) {
        error_setg_errno(errp, errno, "Unable to read '%s'", path);
        close(fd);
        return false;
    }
    size_t want = n;
    if ((size_t)n == sizeof(head) && (!memcmp(head, LIBVIRT_SAVE_MAGIC, 16) ||
                                      !memcmp(head, LIBVIRT_SAVE_PARTIAL, 16))) {
        /* the whole data_len region, as far as the file goes (parse names what is short) */
        uint32_t v = get_u32(head + 16, false);
        uint32_t data_len = get_u32(head + 20, v > LIBVIRT_SAVE_VERSION);
        want = MIN((uint64_t)st.st_size, (uint64_t)LIBVIRT_SAVE_HEADER_SIZE + data_len);
    }
    g_autofree uint8_t *buf = g_malloc(MAX(want, 1));
    memcpy(buf, head, MIN(want, (size_t)n));
    if (want > (size_t)n) {
        ssize_t m = pread(fd, buf + n, want - n, n);
        if (m != (ssize_t)(want - n)) {
            error_setg_errno(errp, m < 0 ? errno : EIO, "Unable to read '%s'", path);
            close(fd);
            return false;
        }
    }
    close(fd);
    return libvirt_image_parse(buf, want, st.st_size, img, errp);
}

static void put_u32(uint8_t *p, uint32_t v, bool big_endian)
{
    v = big_endian ? GUINT32_TO_BE(v) : GUINT32_TO_LE(v);
    memcpy(p, &v, 4);
}

static void encode_header(uint8_t *h, const LibvirtImage *img, uint32_t format, bool partial)
{
    memcpy(h, partial ? LIBVIRT_SAVE_PARTIAL : LIBVIRT_SAVE_MAGIC, LIBVIRT_SAVE_MAGIC_LEN);
    uint8_t *p = h + LIBVIRT_SAVE_MAGIC_LEN;
    bool be = img->big_endian;
    /* a compressed or sparse image needs version 2: version 1 has no format field */
    put_u32(p, format == LIBVIRT_FORMAT_RAW ? img->version : LIBVIRT_SAVE_VERSION, be);
    put_u32(p + 4, img->data_len, be);
    put_u32(p + 8, img->was_running, be);
    put_u32(p + 12, format, be);
    put_u32(p + 16, img->cookie_offset, be);
    for (int i = 0; i < LIBVIRT_SAVE_UNUSED; i++) {
        put_u32(p + 20 + 4 * i, img->unused[i], be);
    }
}

bool libvirt_image_write_header(IOChannel *out, const LibvirtImage *img, uint32_t format,
                                bool partial, GError **errp)
{
    uint8_t h[LIBVIRT_SAVE_HEADER_SIZE];
    encode_header(h, img, format, partial);
    return io_channel_pwrite_all(out, h, sizeof(h), 0, errp) &&
           io_channel_pwrite_all(out, img->data, img->data_len, LIBVIRT_SAVE_HEADER_SIZE, errp);
}

bool libvirt_image_finish(IOChannel *out, const LibvirtImage *img, uint32_t format,
                          GError **errp)
{
    uint8_t h[LIBVIRT_SAVE_HEADER_SIZE];
    encode_header(h, img, format, false);
    return io_channel_pwrite_all(out, h, sizeof(h), 0, errp);
}
