/*
 * libvirt's save image header (tools/libvirt-image.c): images built here in
 * libvirt's layout from the facts of docs/file-format.md (no libvirt
 * needed) parse with the fields, XML facts and data offset libvirt would
 * use; each damaged header fails with its own message naming the field
 * and its value; the writer gives back the bytes it read.  And the
 * compressed formats (tools/libvirt-compress.c) go round through their
 * libraries.
 */
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "libvirt-compress.h"
#include "libvirt-image.h"

#define XML "<domain type='kvm'>\n  <name>web1</name>\n" \
    "  <uuid>4dea22b3-1d52-d8f3-2516-782e98ab3fa0</uuid>\n" \
    "  <memory unit='MiB'>512</memory>\n" \
    "  <os>\n    <type arch='x86_64' machine='pc-i440fx-7.2'>hvm</type>\n  </os>\n" \
    "</domain>\n"
#define COOKIE "<qemuDomainSaveCookie>\n  <cpu mode='custom'/>\n</qemuDomainSaveCookie>\n"

typedef struct Fields {
    const char *magic;
    uint32_t version, data_len, was_running, format, cookie_offset;
    bool big_endian;
    const char *xml, *cookie;
} Fields;

static void put32(GByteArray *a, uint32_t v, bool be)
{
    v = be ? GUINT32_TO_BE(v) : GUINT32_TO_LE(v);
    g_byte_array_append(a, (const uint8_t *)&v, 4);
}

/*
 * magic, version, data_len, was_running, format, cookieOffset, 14 unused
 * words; XML and cookie each with its NUL, then zeros up to data_len
 * (libvirt: XML + cookie + 64 KiB when data_len is 0 here); a 3-byte tail.
 */
static GByteArray *build(Fields f)
{
    const char *xml = f.xml ? f.xml : XML;
    size_t xml_len = strlen(xml) + 1, cookie_len = f.cookie ? strlen(f.cookie) + 1 : 0;
    uint32_t data_len = f.data_len ? f.data_len : xml_len + cookie_len + 64 * 1024;
    GByteArray *a = g_byte_array_new();
    g_byte_array_append(a, (const uint8_t *)(f.magic ? f.magic : "LibvirtQemudSave"), 16);
    put32(a, f.version ? f.version : 2, f.big_endian);
    put32(a, data_len, f.big_endian);
    put32(a, f.was_running, f.big_endian);
    put32(a, f.format, f.big_endian);
    put32(a, f.cookie ? (f.cookie_offset ? f.cookie_offset : xml_len) : f.cookie_offset,
          f.big_endian);
    for (int i = 0; i < 14; i++) {
        put32(a, 0, f.big_endian);
    }
    g_assert_cmpuint(a->len, ==, 92);
    g_autofree uint8_t *data = g_malloc0(MAX(data_len, xml_len + cookie_len));
    memcpy(data, xml, xml_len);
    if (f.cookie) {
        memcpy(data + xml_len, f.cookie, cookie_len);
    }
    g_byte_array_append(a, data, data_len);
    g_byte_array_append(a, (const uint8_t *)"QEV", 3);
    return a;
}

static LibvirtImage *parse_ok(GByteArray *a)
{
    LibvirtImage *img = NULL;
    GError *err = NULL;
    g_assert_true(libvirt_image_parse(a->data, a->len, a->len, &img, &err));
    g_assert_no_error(err);
    g_assert_nonnull(img);
    return img;
}

static void parse_fails(GByteArray *a, size_t len, const char *want)
{
    LibvirtImage *img = NULL;
    GError *err = NULL;
    g_assert_false(libvirt_image_parse(a->data, len, len, &img, &err));
    g_assert_null(img);
    g_assert_nonnull(err);
    g_assert_cmpstr(err->message, ==, want);
    g_error_free(err);
}

static void test_fields(void)
{
    g_autoptr(GByteArray) a = build((Fields){ .was_running = 1, .format = LIBVIRT_FORMAT_GZIP,
                                              .cookie = COOKIE });
    g_autoptr(LibvirtImage) img = parse_ok(a);
    uint32_t xml_len = strlen(XML) + 1;
    g_assert_false(img->partial);
    g_assert_false(img->big_endian);
    g_assert_cmpuint(img->version, ==, 2);
    g_assert_cmpuint(img->was_running, ==, 1);
    g_assert_cmpuint(img->format, ==, LIBVIRT_FORMAT_GZIP);
    g_assert_cmpuint(img->data_len, ==, xml_len + strlen(COOKIE) + 1 + 65536);
    g_assert_cmpuint(img->data_offset, ==, 92 + img->data_len);
    g_assert_cmpuint(img->cookie_offset, ==, xml_len);
    g_assert_cmpstr(img->xml, ==, XML);
    g_assert_cmpstr(img->cookie, ==, COOKIE);
    g_assert_cmpstr(img->name, ==, "web1");
    g_assert_cmpstr(img->uuid, ==, "4dea22b3-1d52-d8f3-2516-782e98ab3fa0");
    g_assert_cmpuint(img->memory_bytes, ==, 512ULL << 20);
    g_assert_cmpstr(img->machine, ==, "pc-i440fx-7.2");
    g_assert_cmpstr(libvirt_format_name(img->format), ==, "gzip");
}

static void test_no_cookie_default_unit(void)
{
    g_autoptr(GByteArray) a = build((Fields){
        .xml = "<domain><name>a</name><memory>1024</memory></domain>" });
    g_autoptr(LibvirtImage) img = parse_ok(a);
    g_assert_null(img->cookie);
    g_assert_cmpuint(img->cookie_offset, ==, 0);
    g_assert_cmpuint(img->memory_bytes, ==, 1024 * 1024);   /* KiB when no unit */
    g_assert_null(img->uuid);
    g_assert_null(img->machine);
}

static void test_partial(void)
{
    g_autoptr(GByteArray) a = build((Fields){ .magic = "LibvirtQemudPart" });
    g_autoptr(LibvirtImage) img = parse_ok(a);
    g_assert_true(img->partial);
}

static void test_not_libvirt(void)
{
    static const uint8_t qevm[] = "QEVM\0\0\0\3 and more bytes than that";
    LibvirtImage *img = (LibvirtImage *)1;
    g_assert_true(libvirt_image_parse(qevm, sizeof(qevm), sizeof(qevm), &img, NULL));
    g_assert_null(img);
    img = (LibvirtImage *)1;
    g_assert_true(libvirt_image_parse(qevm, 4, 4, &img, NULL));
    g_assert_null(img);
}

/* written on a big-endian host: libvirt swaps when the version is past its own */
static void test_big_endian(void)
{
    g_autoptr(GByteArray) a = build((Fields){ .big_endian = true, .format = 6,
                                              .was_running = 1 });
    g_autoptr(LibvirtImage) img = parse_ok(a);
    g_assert_true(img->big_endian);
    g_assert_cmpuint(img->version, ==, 2);
    g_assert_cmpuint(img->format, ==, LIBVIRT_FORMAT_SPARSE);
    g_assert_cmpuint(img->was_running, ==, 1);
}

/* version 1 predates the format field: the data is raw whatever it says */
static void test_version1(void)
{
    g_autoptr(GByteArray) a = build((Fields){ .version = 1, .format = 3 });
    g_autoptr(LibvirtImage) img = parse_ok(a);
    g_assert_cmpuint(img->format_field, ==, 3);
    g_assert_cmpuint(img->format, ==, LIBVIRT_FORMAT_RAW);
}

static void test_truncated_header(void)
{
    g_autoptr(GByteArray) a = build((Fields){ 0 });
    parse_fails(a, 91, "libvirt save image: header truncated: 91 of 92 bytes");
    parse_fails(a, 16, "libvirt save image: header truncated: 16 of 92 bytes");
}

static void test_unknown_version(void)
{
    g_autoptr(GByteArray) a = build((Fields){ .version = 3 });
    parse_fails(a, a->len, "libvirt save image: unknown version 3 (known: 1, 2)");
    g_autoptr(GByteArray) b = build((Fields){ .version = 0 });
    /* 0 is below every version: not the other byte order either */
    memset(b->data + 16, 0, 4);
    parse_fails(b, b->len, "libvirt save image: unknown version 0 (known: 1, 2)");
}

static void test_unknown_format(void)
{
    g_autoptr(GByteArray) a = build((Fields){ .format = 7 });
    parse_fails(a, a->len, "libvirt save image: unknown format 7 (known: 0 raw, 1 gzip, "
                "2 bzip2, 3 xz, 4 lzop, 5 zstd, 6 sparse)");
}

static void test_xml_past_end(void)
{
    g_autoptr(GByteArray) a = build((Fields){ 0 });
    size_t len = 92 + 1000;
    parse_fails(a, len, "libvirt save image: data_len 65747 (XML, cookie and padding) runs "
                "past the end of the file (1092 bytes)");
}

static void test_zero_data_len(void)
{
    g_autoptr(GByteArray) a = build((Fields){ 0 });
    memset(a->data + 20, 0, 4);
    parse_fails(a, a->len, "libvirt save image: data_len 0 leaves no room for the domain XML");
}

static void test_cookie_past_data(void)
{
    g_autoptr(GByteArray) a = build((Fields){ .cookie_offset = 70000 });
    parse_fails(a, a->len, "libvirt save image: cookieOffset 70000 is not within data_len 65747");
}

static void test_bad_xml(void)
{
    g_autoptr(GByteArray) a = build((Fields){ .xml = "<domain><name>x</domain>" });
    LibvirtImage *img = NULL;
    GError *err = NULL;
    g_assert_false(libvirt_image_parse(a->data, a->len, a->len, &img, &err));
    g_assert_true(g_str_has_prefix(err->message, "libvirt save image: domain XML: "));
    g_assert_true(strstr(err->message, "name") != NULL);
    g_error_free(err);
}

/* the writer gives back libvirt's bytes: header, XML, cookie, padding */
static void test_write_same_bytes(void)
{
    g_autoptr(GByteArray) a = build((Fields){ .was_running = 1, .format = 6, .cookie = COOKIE });
    g_autoptr(LibvirtImage) img = parse_ok(a);
    g_autoptr(IOChannel) out = io_channel_buffer_new(0);
    GError *err = NULL;
    g_assert_true(libvirt_image_write_header(out, img, LIBVIRT_FORMAT_SPARSE, true, &err));
    size_t len;
    const uint8_t *p = io_channel_buffer_data(out, &len);
    g_assert_cmpuint(len, ==, img->data_offset);
    g_assert_cmpmem(p, 16, "LibvirtQemudPart", 16);
    g_assert_cmpmem(p + 16, len - 16, a->data + 16, img->data_offset - 16);
    g_assert_true(libvirt_image_finish(out, img, LIBVIRT_FORMAT_SPARSE, &err));
    p = io_channel_buffer_data(out, &len);
    g_assert_cmpmem(p, len, a->data, img->data_offset);
    /* another format changes that field only */
    g_assert_true(libvirt_image_finish(out, img, LIBVIRT_FORMAT_ZSTD, &err));
    p = io_channel_buffer_data(out, &len);
    g_assert_cmpuint(p[28], ==, 5);
    g_assert_cmpmem(p, 28, a->data, 28);
    g_assert_cmpmem(p + 29, len - 29, a->data + 29, img->data_offset - 29);
}

static void test_format_names(void)
{
    static const char *const names[] = { "raw", "gzip", "bzip2", "xz", "lzop", "zstd", "sparse" };
    for (uint32_t i = 0; i < G_N_ELEMENTS(names); i++) {
        uint32_t f;
        g_assert_cmpstr(libvirt_format_name(i), ==, names[i]);
        g_assert_true(libvirt_format_from_name(names[i], &f));
        g_assert_cmpuint(f, ==, i);
    }
    uint32_t f;
    g_assert_null(libvirt_format_name(7));
    g_assert_false(libvirt_format_from_name("lzma", &f));
}

/* in -> pump -> pipe: everything the pump wrote */
static GByteArray *run_pump(uint32_t format, bool compress, const uint8_t *in, size_t len,
                            GError **errp)
{
    char tmpl[] = "/tmp/test-libvirt-XXXXXX";
    int fd = mkstemp(tmpl);
    g_assert_cmpint(fd, >=, 0);
    unlink(tmpl);
    g_assert_cmpint(write(fd, in, len), ==, (ssize_t)len);
    lseek(fd, 0, SEEK_SET);
    int p[2];
    g_assert_cmpint(pipe(p), ==, 0);
    CodecPump *pump = codec_pump_start(format, compress, fd, p[1], errp);
    g_assert_nonnull(pump);
    GByteArray *out = g_byte_array_new();
    uint8_t buf[65536];
    ssize_t n;
    while ((n = read(p[0], buf, sizeof(buf))) > 0) {
        g_byte_array_append(out, buf, n);
    }
    close(p[0]);
    if (!codec_pump_finish(pump, errp)) {
        g_byte_array_unref(out);
        return NULL;
    }
    return out;
}

static void test_codecs(void)
{
    g_autoptr(GByteArray) data = g_byte_array_new();
    for (int i = 0; i < 300000; i++) {
        uint8_t b = (i % 4096 < 2048) ? 0 : (uint8_t)(i * 7);
        g_byte_array_append(data, &b, 1);
    }
    static const uint32_t formats[] = { LIBVIRT_FORMAT_RAW, LIBVIRT_FORMAT_GZIP,
                                        LIBVIRT_FORMAT_BZIP2, LIBVIRT_FORMAT_XZ,
                                        LIBVIRT_FORMAT_ZSTD };
    for (size_t i = 0; i < G_N_ELEMENTS(formats); i++) {
        GError *err = NULL;
        g_autoptr(GByteArray) c = run_pump(formats[i], true, data->data, data->len, &err);
        g_assert_no_error(err);
        g_autoptr(GByteArray) d = run_pump(formats[i], false, c->data, c->len, &err);
        g_assert_no_error(err);
        g_assert_cmpmem(d->data, d->len, data->data, data->len);
        if (formats[i] == LIBVIRT_FORMAT_RAW) {
            continue;
        }
        g_assert_cmpuint(c->len, <, data->len);
        /* cut short: named, not taken for the end of the stream */
        g_autoptr(GByteArray) t = run_pump(formats[i], false, c->data, c->len / 2, &err);
        g_assert_null(t);
        g_autofree char *want = g_strdup_printf("%s data ends before its compressed stream does",
                                                libvirt_format_name(formats[i]));
        g_assert_cmpstr(err->message, ==, want);
        g_error_free(err);
    }
}

static void test_lzop_refused(void)
{
    GError *err = NULL;
    g_assert_false(codec_supported(LIBVIRT_FORMAT_LZOP, &err));
    g_assert_cmpstr(err->message, ==, "libvirt save image format lzop is not supported: no lzop "
                    "library is packaged for Debian (decompress with 'lzop -dc' and convert the "
                    "raw stream)");
    g_error_free(err);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/tools/libvirt-image/fields", test_fields);
    g_test_add_func("/tools/libvirt-image/no-cookie-default-unit", test_no_cookie_default_unit);
    g_test_add_func("/tools/libvirt-image/partial", test_partial);
    g_test_add_func("/tools/libvirt-image/not-libvirt", test_not_libvirt);
    g_test_add_func("/tools/libvirt-image/big-endian", test_big_endian);
    g_test_add_func("/tools/libvirt-image/version1-raw", test_version1);
    g_test_add_func("/tools/libvirt-image/bad/truncated-header", test_truncated_header);
    g_test_add_func("/tools/libvirt-image/bad/unknown-version", test_unknown_version);
    g_test_add_func("/tools/libvirt-image/bad/unknown-format", test_unknown_format);
    g_test_add_func("/tools/libvirt-image/bad/xml-past-end", test_xml_past_end);
    g_test_add_func("/tools/libvirt-image/bad/zero-data-len", test_zero_data_len);
    g_test_add_func("/tools/libvirt-image/bad/cookie-past-data", test_cookie_past_data);
    g_test_add_func("/tools/libvirt-image/bad/xml", test_bad_xml);
    g_test_add_func("/tools/libvirt-image/write-same-bytes", test_write_same_bytes);
    g_test_add_func("/tools/libvirt-image/format-names", test_format_names);
    g_test_add_func("/tools/libvirt-compress/round-trip", test_codecs);
    g_test_add_func("/tools/libvirt-compress/lzop-refused", test_lzop_refused);
    return g_test_run();
}
