/*
 * The analysis behind `mapram info` and `mapram verify` (tools/info.c) on
 * in-memory streams whose vmdesc has the wrong JSON types: every case is
 * reported with its own text (or fails the walk with the offset), and
 * info prints it, every line to the stream it was given.  These are the inputs fuzz-vmdesc found crashing (GLib
 * criticals, a NULL strcmp) before the checks read the JSON by type.
 */
#include <fcntl.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "io/channel.h"
#include "mapram-tool.h"
#include "migration/mapped-ram-csum.h"
#include "migration/ram-codec.h"
#include "migration/savevm.h"

static const VMStateDescription dev_vmsd = {
    .name = "dev",
    .version_id = 1,
    .minimum_version_id = 1,
    .fields = (const VMStateField[]) { VMSTATE_END_OF_LIST() },
};

/* header, configuration, a one-page ram START and END, FULL "dev", EOF, then vmdesc */
static GBytes *stream_with_vmdesc(const char *vmdesc)
{
    g_autoptr(IOChannel) ioc = io_channel_buffer_new(1024);
    QEMUFile *f = qemu_file_new_output(ioc, 0);
    StreamConfig cfg = { .machine = "mapram-10.2" };
    g_autoptr(JsonBuilder) unused = json_builder_new();
    GError *err = NULL;
    RamEncoder e;

    qemu_savevm_state_header(f, &cfg, unused);
    ram_encoder_init(&e);
    savevm_put_section_full_header(f, QEMU_VM_SECTION_START, 0, "ram", 0, RAM_SECTION_VERSION);
    ram_encode_mem_size(&e, f, RAM_PAGE_SIZE);
    g_assert_true(ram_encode_block(&e, f, "pc.ram", RAM_PAGE_SIZE, NULL, &err));
    ram_encode_eos(f);
    savevm_put_section_footer(f, 0);
    savevm_put_section_short_header(f, QEMU_VM_SECTION_END, 0);
    ram_encode_zero_page(&e, f, 0, 0);
    ram_encode_eos(f);
    savevm_put_section_footer(f, 0);
    ram_encoder_clear(&e);
    savevm_put_section_full_header(f, QEMU_VM_SECTION_FULL, 1, "dev", 0, 1);
    g_assert_true(vmstate_save_state(f, &dev_vmsd, NULL, NULL, &err));
    savevm_put_section_footer(f, 1);
    qemu_put_byte(f, QEMU_VM_EOF);
    savevm_put_vmdesc(f, vmdesc, strlen(vmdesc));
    g_assert_true(qemu_fclose(f, &err));
    size_t len;
    const uint8_t *p = io_channel_buffer_data(ioc, &len);
    return g_bytes_new(p, len);
}

/* verify's problems joined by "; ", or "walk: ERROR" when the walk fails; info's text in *text. */
static char *verify(const char *vmdesc, char **text)
{
    g_autoptr(GBytes) s = stream_with_vmdesc(vmdesc);
    gsize len;
    const void *p = g_bytes_get_data(s, &len);
    g_autoptr(IOChannel) ioc = io_channel_buffer_new_data(p, len);
    QEMUFile *f = qemu_file_new_input(ioc, 0);
    Report *r = report_new(true);
    GError *err = NULL;
    char *res;

    if (!report_analyse(r, f, &err)) {
        res = g_strdup_printf("walk: %s", err->message);
        g_error_free(err);
    } else {
        char *buf = NULL;
        size_t blen = 0;
        FILE *out = open_memstream(&buf, &blen);
        report_print_text(r, out, "t");
        fclose(out);
        *text = buf;
        report_verify(r);
        GPtrArray *pr = report_problems(r);
        g_ptr_array_add(pr, NULL);
        res = g_strjoinv("; ", (char **)pr->pdata);
        g_ptr_array_remove_index(pr, pr->len - 1);
    }
    report_free(r);
    qemu_fclose(f, NULL);
    return res;
}

typedef struct Case {
    const char *vmdesc;
    const char *problems;       /* verify's, joined */
    const char *info_line;      /* info's vmdesc line, or NULL when the walk fails */
} Case;

#define W "walk: VM description at offset 134: vmdesc JSON does not parse: "

static const Case cases[] = {
    { "{\"devices\": [{\"name\": \"dev\"}]}", "", "vmdesc: 30 bytes, 1 devices: dev" },
    { "", "walk: VM description at offset 134: vmdesc JSON is empty", NULL },
    { "  ", "walk: VM description at offset 134: vmdesc JSON is empty", NULL },
    { "[1]", "vmdesc is not a JSON object", "vmdesc: 3 bytes, 0 devices:" },
    /*
     * read by QEMU's JSON rules, as QMP input: json-glib 1.6 took a second
     * object or array as nothing (and leaked it), and leaked on a broken
     * surrogate pair
     */
    { "{\"devices\": [{\"name\": \"dev\"}]} []", W "more than one value", NULL },
    { "1e400{\"devices\":[{\"name\":[1]}]}", W "more than one value", NULL },
    { "\"a\\\"]\"\n\n {}", W "more than one value", NULL },
    { " 1 x", W "more than one value", NULL },
    { "{\"devices\": [", W "the text ends inside a value", NULL },
    { "{\"devices\": [{\"name\": \"\\ud80x\\ud800\"}]}",
      W "JSON parse error, \\ud80x is not a valid Unicode character", NULL },
    { "{\"devices\": [{\"name\": \"dev\"}]]}",
      W "JSON parse error, expected separator in dict", NULL },
    { "{\"devices\": [{\"name\": \"d]}\\\"ev\"}]}",
      "offset 111: device section dev is described as 'd]}\"ev' in the vmdesc",
      "vmdesc: 34 bytes, 1 devices: d]}\"ev" },
    { "{\"devices\": [{\"name\": \"dev\"}]}\r\n ", "", "vmdesc: 33 bytes, 1 devices: dev" },
    { "{'devices': [{'name': 'dev'}]}", "", "vmdesc: 30 bytes, 1 devices: dev" },
    { "{}", "vmdesc has no \"devices\" list", "vmdesc: 2 bytes, 0 devices:" },
    { "{\"devices\": 5}", "vmdesc \"devices\" is not a list", "vmdesc: 14 bytes, 0 devices:" },
    { "{\"devices\": [5]}",
      "offset 111: device section dev is described without a \"name\" string in the vmdesc",
      "vmdesc: 16 bytes, 1 devices: ?" },
    { "{\"devices\": [null]}",
      "offset 111: device section dev is described without a \"name\" string in the vmdesc",
      "vmdesc: 19 bytes, 1 devices: ?" },
    { "{\"devices\": [{\"name\": 5}]}",
      "offset 111: device section dev is described without a \"name\" string in the vmdesc",
      "vmdesc: 26 bytes, 1 devices: ?" },
    { "{\"devices\": [{\"name\": [\"dev\"]}]}",
      "offset 111: device section dev is described without a \"name\" string in the vmdesc",
      "vmdesc: 32 bytes, 1 devices: ?" },
    { "{\"devices\": [{\"name\": \"other\"}]}",
      "offset 111: device section dev is described as 'other' in the vmdesc",
      "vmdesc: 32 bytes, 1 devices: other" },
};

static void test_vmdesc_types(gconstpointer data)
{
    const Case *c = data;
    g_autofree char *text = NULL;
    g_autofree char *problems = verify(c->vmdesc, &text);

    g_assert_cmpstr(problems, ==, c->problems);
    if (!c->info_line) {
        g_assert_null(text);
        return;
    }
    g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
    const char *got = NULL;
    for (char **l = lines; *l; l++) {
        if (g_str_has_prefix(*l, "vmdesc:")) {
            got = *l;
        }
    }
    g_assert_cmpstr(got, ==, c->info_line);
    /* every line goes to the stream info was given, the last one too */
    g_assert_true(g_str_has_suffix(text, "\nchecksums: none\n"));
}

static long max_rss_kib(void)
{
    struct rusage ru;
    g_assert_cmpint(getrusage(RUSAGE_SELF, &ru), ==, 0);
    return ru.ru_maxrss;
}

/*
 * After the vmdesc, a checksum table header whose length is not what
 * follows (here 56 bytes, and 256 MiB follow as a hole): verify reports
 * the length from the header alone, without reading the rest into memory.
 */
static void test_table_header_first(void)
{
    g_autoptr(GBytes) s = stream_with_vmdesc("{\"devices\": [{\"name\": \"dev\"}]}");
    g_autofree char *dir = g_dir_make_tmp("test-report-XXXXXX", NULL);
    g_autofree char *path = g_build_filename(dir, "f", NULL);
    uint8_t hdr[MRC_HEADER_SIZE] = "MRAMCSUM";
    gsize len;
    const void *p = g_bytes_get_data(s, &len);
    uint64_t size = 256ULL << 20;
    GError *err = NULL;

    hdr[11] = MRC_VERSION;
    hdr[23] = MRC_HEADER_SIZE + MRC_TRAILER_SIZE;       /* length 56, big-endian */
    int fd = open(path, O_RDWR | O_CREAT, 0600);
    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(pwrite(fd, p, len, 0), ==, len);
    g_assert_cmpint(pwrite(fd, hdr, sizeof(hdr), len), ==, sizeof(hdr));
    g_assert_cmpint(ftruncate(fd, size), ==, 0);
    close(fd);

    IOChannel *ioc = io_channel_file_open(path, O_RDONLY, 0, &err);
    g_assert_no_error(err);
    QEMUFile *f = qemu_file_new_input(ioc, 0);
    Report *r = report_new(true);
    long rss0 = max_rss_kib();
    g_assert_true(report_analyse(r, f, &err));
    g_assert_no_error(err);
    report_verify(r);
    GPtrArray *pr = report_problems(r);
    g_autofree char *want = g_strdup_printf(
        "checksum table at offset 0x%zx: length 56, but %llu bytes follow the vmdesc",
        (size_t)len, (unsigned long long)(size - len));
    g_assert_cmpuint(pr->len, >=, 1);
    g_assert_cmpstr(g_ptr_array_index(pr, 0), ==, want);
    g_assert_cmpint(max_rss_kib() - rss0, <, 64 * 1024);
    report_free(r);
    qemu_fclose(f, NULL);
    io_channel_unref(ioc);
    unlink(path);
    rmdir(dir);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *path = g_strdup_printf("/tools/report/vmdesc-types/%zu", i);
        g_test_add_data_func(path, &cases[i], test_vmdesc_types);
    }
    g_test_add_func("/tools/report/checksum-table/header-first", test_table_header_first);
    return g_test_run();
}
