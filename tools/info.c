/*
 * mapram info / verify: the structure of any QEVM stream file (ours or
 * QEMU's, stream or mapped-ram), through the same walker and RAM record
 * parser the VM loads with.
 */
#include "mapram-tool.h"
#include "libvirt-image.h"
#include "../migration/mapped-ram-csum.h"
#include "../migration/ram-codec.h"
#include "../migration/savevm.h"
#include "monitor/qmp.h"
#include "util/bitmap.h"
#include "util/cutils.h"
#include "util/error.h"
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

typedef struct BlockReport {
    char *idstr;
    uint64_t length;
    bool mapped;
    MappedRamHeader hdr;
    uint64_t pages_data;       /* PAGE records / set bits */
    uint64_t pages_zero;       /* ZERO records / clear bits */
    uint64_t records;          /* stream: records including resends */
} BlockReport;

typedef struct SectionReport {
    SectionInfo si;
    off_t end;
} SectionReport;

struct Report {
    const char *path;
    bool verify;
    StreamConfig cfg;
    bool mapped;
    RamDecoder dec;
    GPtrArray *blocks;         /* BlockReport * */
    GArray *sections;          /* SectionReport */
    GArray *commands;          /* uint16_t */
    char *vmdesc;
    JsonNode *vmdesc_root;
    uint8_t scratch[RAM_PAGE_SIZE];
    GPtrArray *problems;       /* verify: char * */
    bool saw_eof;
    bool data;                 /* verify --data: every page against the checksum table */
    MrcTable *csum;            /* the checksum table after the vmdesc, or NULL */
    char *csum_error;          /* why a table after the vmdesc does not parse */
    bool data_checked;         /* verify --data went through every block's pages */
    LibvirtImage *lv;          /* the libvirt save image around the data, or NULL */
};

static void block_report_free(gpointer p)
{
    BlockReport *b = p;
    g_free(b->idstr);
    g_free(b);
}

static bool r_configuration(void *opaque, QEMUFile *f, const StreamConfig *cfg, GError **errp)
{
    Report *r = opaque;
    r->cfg = *cfg;
    r->cfg.caps = g_ptr_array_ref(cfg->caps);
    for (guint i = 0; i < cfg->caps->len; i++) {
        if (!strcmp(g_ptr_array_index(cfg->caps, i), "mapped-ram")) {
            r->mapped = true;
        }
    }
    ram_decoder_init(&r->dec, r->mapped);
    return true;
}

static bool r_block(void *opaque, QEMUFile *f, unsigned idx, const char *idstr,
                    uint64_t used_length, const MappedRamHeader *hdr, GError **errp)
{
    Report *r = opaque;
    BlockReport *b = g_new0(BlockReport, 1);
    b->idstr = g_strdup(idstr);
    b->length = used_length;
    g_ptr_array_add(r->blocks, b);
    if (!hdr) {
        return true;
    }
    b->mapped = true;
    b->hdr = *hdr;
    uint64_t npages = used_length / RAM_PAGE_SIZE;
    g_autofree unsigned long *bmap =
        mapped_ram_read_bitmap(qemu_file_get_ioc(f), idstr, hdr, npages, errp);
    if (!bmap) {
        return false;
    }
    b->pages_data = bitmap_count_one(bmap, npages);
    b->pages_zero = npages - b->pages_data;
    if (r->verify) {
        /* bits past the last page must be zero on disk */
        uint64_t raw_words = BITS_TO_LONGS(npages);
        g_autofree unsigned long *raw = g_new0(unsigned long, raw_words);
        if (io_channel_pread_all(qemu_file_get_ioc(f), raw, raw_words * sizeof(long),
                                 hdr->bitmap_offset, NULL) &&
            npages % BITS_PER_LONG &&
            (raw[raw_words - 1] >> (npages % BITS_PER_LONG))) {
            g_ptr_array_add(r->problems, g_strdup_printf(
                "offset %llu: bitmap of ramblock %s has bits set past its %llu pages",
                (unsigned long long)hdr->bitmap_offset, idstr, (unsigned long long)npages));
        }
        if (hdr->pages_offset % (1024 * 1024)) {
            g_ptr_array_add(r->problems, g_strdup_printf(
                "offset %lld: page region of ramblock %s at 0x%llx is not 1 MiB aligned",
                (long long)qemu_file_tell(f) - MAPPED_RAM_HDR_SIZE, idstr,
                (unsigned long long)hdr->pages_offset));
        }
        for (guint i = 0; i + 1 < r->blocks->len; i++) {
            BlockReport *o = g_ptr_array_index(r->blocks, i);
            if (o->mapped && hdr->pages_offset < o->hdr.pages_offset + o->length &&
                o->hdr.pages_offset < hdr->pages_offset + used_length) {
                g_ptr_array_add(r->problems, g_strdup_printf(
                    "page regions of ramblocks %s and %s overlap", o->idstr, idstr));
            }
        }
    }
    return true;
}

static uint8_t *r_page_dest(void *opaque, unsigned idx, uint64_t offset, GError **errp)
{
    return ((Report *)opaque)->scratch;
}

static bool r_page(void *opaque, unsigned idx, uint64_t offset, bool zero, GError **errp)
{
    Report *r = opaque;
    BlockReport *b = g_ptr_array_index(r->blocks, idx);
    b->records++;
    if (zero) {
        b->pages_zero++;
    } else {
        b->pages_data++;
    }
    return true;
}

static const RamSink report_sink = {
    .block = r_block, .page_dest = r_page_dest, .page = r_page,
};

static bool r_section(void *opaque, QEMUFile *f, const SectionInfo *si, GError **errp)
{
    Report *r = opaque;
    if (!strcmp(si->idstr, "ram") && si->type != QEMU_VM_SECTION_FULL) {
        if (si->version_id != RAM_SECTION_VERSION) {
            error_setg(errp, "ram section version %u is not supported (expected 4)",
                       si->version_id);
            return false;
        }
        return ram_decode_section(&r->dec, f, si->type, &report_sink, r, errp);
    }
    return savevm_skip_unknown_body(f, si, NULL, errp);
}

static bool r_section_done(void *opaque, QEMUFile *f, const SectionInfo *si, GError **errp)
{
    Report *r = opaque;
    SectionReport sr = { .si = *si, .end = qemu_file_tell(f) };
    g_array_append_val(r->sections, sr);
    return true;
}

static bool r_command(void *opaque, QEMUFile *f, uint16_t cmd, const uint8_t *data,
                      uint16_t len, GError **errp)
{
    g_array_append_val(((Report *)opaque)->commands, cmd);
    return true;
}

static bool r_eof(void *opaque, QEMUFile *f, GError **errp)
{
    ((Report *)opaque)->saw_eof = true;
    return true;
}

/*
 * The vmdesc is read by QEMU's JSON rules, as QMP input is (the text is
 * QEMU's qjson output): json-glib 1.6's parser took an object or array
 * after the first value as if it were not there, and leaked it and any
 * text with a malformed surrogate pair.
 */
static bool r_vmdesc(void *opaque, const char *json, uint32_t len, GError **errp)
{
    Report *r = opaque;
    r->vmdesc = g_strndup(json, len);
    GError *err = NULL;
    JsonNode *root = qmp_json_parse_text(json, len, &err);
    if (err) {
        error_setg(errp, "vmdesc JSON does not parse: %s", err->message);
        g_error_free(err);
        return false;
    }
    if (!root) {
        error_setg(errp, "vmdesc JSON is empty");
        return false;
    }
    r->vmdesc_root = root;
    return true;
}

static const StreamVisitor report_visitor = {
    .configuration = r_configuration,
    .section = r_section,
    .section_done = r_section_done,
    .command = r_command,
    .eof = r_eof,
    .vmdesc = r_vmdesc,
};

Report *report_new(bool verify)
{
    Report *r = g_new0(Report, 1);
    r->verify = verify;
    r->blocks = g_ptr_array_new_with_free_func(block_report_free);
    r->sections = g_array_new(FALSE, FALSE, sizeof(SectionReport));
    r->commands = g_array_new(FALSE, FALSE, sizeof(uint16_t));
    r->problems = g_ptr_array_new_with_free_func(g_free);
    return r;
}

void report_free(Report *r)
{
    if (!r) {
        return;
    }
    stream_config_clear(&r->cfg);
    ram_decoder_clear(&r->dec);
    g_ptr_array_unref(r->blocks);
    g_array_unref(r->sections);
    g_array_unref(r->commands);
    g_ptr_array_unref(r->problems);
    g_free(r->vmdesc);
    mrc_table_free(r->csum);
    g_free(r->csum_error);
    libvirt_image_free(r->lv);
    if (r->vmdesc_root) {
        json_node_unref(r->vmdesc_root);
    }
    g_free(r);
}

static void read_checksum_table(Report *r, QEMUFile *f);
static void check_data(Report *r, IOChannel *ioc);

/* After the walk: our checksum table, or trailing bytes; with r->data, every page. */
bool report_analyse(Report *r, QEMUFile *f, GError **errp)
{
    bool ok = savevm_walk_stream(f, &report_visitor, r, true, errp);
    if (ok && !qemu_file_at_eof(f)) {
        read_checksum_table(r, f);
    }
    if (ok && r->data) {
        check_data(r, qemu_file_get_ioc(f));
    }
    return ok;
}

GPtrArray *report_problems(Report *r)
{
    return r->problems;
}

/* What follows the vmdesc: our checksum table, or bytes nobody should have put there. */
static void read_checksum_table(Report *r, QEMUFile *f)
{
    off_t at = qemu_file_tell(f);
    uint8_t hdr[MRC_HEADER_SIZE] = { 0 };
    GError *err = NULL;

    size_t got = qemu_peek_buffer(f, hdr, sizeof(hdr), 0);
    if (mrc_is_table_start(hdr, got)) {
        g_ptr_array_add(r->problems, g_strdup_printf(
            "checksum table at offset 0x%llx: the file was cut short inside it (%zu bytes "
            "follow the vmdesc)", (unsigned long long)at, got));
        return;
    }
    if (got < 8 || !mrc_is_table(hdr, 8)) {
        g_ptr_array_add(r->problems, g_strdup_printf(
            "offset %lld: unexpected trailing bytes after the vmdesc", (long long)at));
        return;
    }
    off_t size = io_channel_size(qemu_file_get_ioc(f), &err);
    g_autofree uint8_t *buf = NULL;
    if (size >= 0 && (uint64_t)(size - at) > MRC_MAX_TABLE) {
        error_setg(&err, "checksum table at offset 0x%llx: %lld bytes is implausible",
                   (unsigned long long)at, (long long)(size - at));
    } else if (size >= 0 && mrc_table_check_header(hdr, size - at, at, &err)) {
        /* read whole only when its header says the rest of the file is the table */
        buf = g_malloc(size - at);
        if (qemu_get_buffer(f, buf, size - at, &err)) {
            r->csum = mrc_table_decode(buf, size - at, at, &err);
        }
    }
    if (err) {
        r->csum_error = g_strdup(err->message);
        g_ptr_array_add(r->problems, g_strdup(err->message));
        g_error_free(err);
        return;
    }
    /* every mapped-ram block has its entry, and nothing else is listed */
    for (guint i = 0; i < r->blocks->len; i++) {
        BlockReport *b = g_ptr_array_index(r->blocks, i);
        const MrcBlock *mb;
        if (b->mapped && !mrc_table_match(r->csum, b->idstr, b->length, &b->hdr, &mb, &err)) {
            g_ptr_array_add(r->problems, g_strdup(err->message));
            g_clear_error(&err);
        }
    }
    if (!mrc_table_check_count(r->csum, r->blocks->len, &err)) {
        g_ptr_array_add(r->problems, g_strdup(err->message));
        g_clear_error(&err);
    }
}

/* verify --data: one block's pages, read in runs of set pages, against its checksums. */
static bool check_block_data(Report *r, IOChannel *ioc, BlockReport *b, GError **errp)
{
    const MrcBlock *mb;
    uint64_t npages = b->length / RAM_PAGE_SIZE;
    if (!mrc_table_match(r->csum, b->idstr, b->length, &b->hdr, &mb, NULL)) {
        return true;             /* read_checksum_table() said so */
    }
    g_autofree unsigned long *bmap = mapped_ram_read_bitmap(ioc, b->idstr, &b->hdr, npages,
                                                            errp);
    if (!bmap) {
        return false;
    }
    g_autofree uint64_t *hashes = g_new(uint64_t, npages);
    g_autofree uint8_t *buf = g_malloc(MAPPED_RAM_LOAD_BUF_SIZE);
    MappedRamRuns it;
    MappedRamRun run;

    mapped_ram_runs_init(&it, bmap, 0, npages, 0, MAPPED_RAM_LOAD_BUF_SIZE / RAM_PAGE_SIZE);
    while (mapped_ram_runs_next(&it, &run)) {
        uint64_t n = run.end - run.start;
        if (!io_channel_pread_all(ioc, buf, n * RAM_PAGE_SIZE,
                                  b->hdr.pages_offset + run.start * RAM_PAGE_SIZE, errp)) {
            g_prefix_error(errp, "ramblock %s: ", b->idstr);
            return false;
        }
        mrc_hash_pages(buf, n, hashes + run.start);
    }
    return mrc_check_runs(mb, bmap, hashes, 0, npages, errp);
}

static void check_data(Report *r, IOChannel *ioc)
{
    if (!r->csum) {
        return;
    }
    for (guint i = 0; i < r->blocks->len; i++) {
        BlockReport *b = g_ptr_array_index(r->blocks, i);
        GError *err = NULL;
        if (b->mapped && !check_block_data(r, ioc, b, &err)) {
            g_ptr_array_add(r->problems, g_strdup(err->message));
            g_error_free(err);
        }
    }
    r->data_checked = true;
}

static bool analyse(Report *r, const char *arg, GError **errp)
{
    g_autofree char *path = NULL;
    uint64_t offset;
    if (!tool_parse_file_arg(arg, &path, &offset, errp)) {
        return false;
    }
    /* a libvirt save image starts the file: with offset=N the data is QEMU's */
    if (offset == 0 && !libvirt_image_open(path, &r->lv, errp)) {
        return false;
    }
    if (!r->lv) {
        QEMUFile *f = tool_open_input(path, offset, errp);
        if (!f) {
            return false;
        }
        bool ok = report_analyse(r, f, errp);
        qemu_fclose(f, NULL);
        return ok;
    }
    if (r->lv->partial && r->verify) {
        g_ptr_array_add(r->problems, g_strdup(LIBVIRT_PARTIAL_PROBLEM));
    }
    struct CodecPump *pump;
    QEMUFile *f = tool_open_image_data(path, r->lv, &pump, errp);
    if (!f) {
        return false;
    }
    bool ok = report_analyse(r, f, errp);
    ok = tool_close_image_data(f, pump, ok, errp);
    if (!ok && r->lv->partial) {
        g_prefix_error(errp, "%s: ", LIBVIRT_PARTIAL_PROBLEM);
    }
    return ok;
}

static void print_libvirt_text(const LibvirtImage *lv, FILE *out)
{
    fprintf(out, "libvirt save image: version %u, format %s, %s, data at offset %" G_GUINT64_FORMAT
            "\n", lv->version, libvirt_format_name(lv->format),
            lv->partial ? "incomplete (magic " LIBVIRT_SAVE_PARTIAL ": an interrupted save)"
                        : "complete", lv->data_offset);
    fprintf(out, "libvirt was running: %s\n", lv->was_running ? "yes" : "no");
    fprintf(out, "libvirt domain: %s, uuid %s, memory %" G_GUINT64_FORMAT " bytes, machine %s\n",
            lv->name ? lv->name : "(none)", lv->uuid ? lv->uuid : "(none)", lv->memory_bytes,
            lv->machine ? lv->machine : "(none)");
    fprintf(out, "libvirt xml: %zu bytes, cookie: ", strlen(lv->xml));
    if (lv->cookie) {
        fprintf(out, "%zu bytes at %u\n", strlen(lv->cookie), lv->cookie_offset);
    } else {
        fprintf(out, "none\n");
    }
}

static void add_string_or_null(JsonBuilder *b, const char *name, const char *v)
{
    json_builder_set_member_name(b, name);
    if (v) {
        json_builder_add_string_value(b, v);
    } else {
        json_builder_add_null_value(b);
    }
}

static void print_libvirt_json(const LibvirtImage *lv, JsonBuilder *b)
{
    json_builder_set_member_name(b, "libvirt");
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "complete");
    json_builder_add_boolean_value(b, !lv->partial);
    json_builder_set_member_name(b, "version");
    json_builder_add_int_value(b, lv->version);
    json_builder_set_member_name(b, "format");
    json_builder_add_string_value(b, libvirt_format_name(lv->format));
    json_builder_set_member_name(b, "was-running");
    json_builder_add_boolean_value(b, lv->was_running);
    json_builder_set_member_name(b, "data-len");
    json_builder_add_int_value(b, lv->data_len);
    json_builder_set_member_name(b, "data-offset");
    json_builder_add_int_value(b, lv->data_offset);
    json_builder_set_member_name(b, "cookie-offset");
    json_builder_add_int_value(b, lv->cookie_offset);
    add_string_or_null(b, "cookie", lv->cookie);
    add_string_or_null(b, "name", lv->name);
    add_string_or_null(b, "uuid", lv->uuid);
    json_builder_set_member_name(b, "memory");
    json_builder_add_int_value(b, lv->memory_bytes);
    add_string_or_null(b, "machine", lv->machine);
    add_string_or_null(b, "xml", lv->xml);
    json_builder_end_object(b);
}

/*
 * The vmdesc's "devices" list; NULL with *why (for verify) when the
 * vmdesc is no object or the member is missing or no list.  Any JSON
 * parses; the types are checked here, since json-glib's getters only
 * complain (a GLib critical) about a wrong one.
 */
static JsonArray *vmdesc_devices(Report *r, const char **why)
{
    if (!JSON_NODE_HOLDS_OBJECT(r->vmdesc_root)) {
        *why = "vmdesc is not a JSON object";
        return NULL;
    }
    JsonNode *n = json_object_get_member(json_node_get_object(r->vmdesc_root), "devices");
    if (!n || !JSON_NODE_HOLDS_ARRAY(n)) {
        *why = n ? "vmdesc \"devices\" is not a list" : "vmdesc has no \"devices\" list";
        return NULL;
    }
    return json_node_get_array(n);
}

/* The "name" of device i of the list; NULL when the device is no object or its name no string. */
static const char *vmdesc_device_name(JsonArray *devs, guint i)
{
    JsonNode *dev = json_array_get_element(devs, i);
    if (!JSON_NODE_HOLDS_OBJECT(dev)) {
        return NULL;
    }
    JsonNode *name = json_object_get_member(json_node_get_object(dev), "name");
    return name && JSON_NODE_HOLDS_VALUE(name) ? json_node_get_string(name) : NULL;
}

void report_print_text(Report *r, FILE *out, const char *arg)
{
    fprintf(out, "file: %s\n", arg);
    if (r->lv) {
        print_libvirt_text(r->lv, out);
    }
    fprintf(out, "format: %s\n", r->mapped ? "mapped-ram" : "stream");
    fprintf(out, "machine: %s\n", r->cfg.machine);
    fprintf(out, "capabilities:");
    for (guint i = 0; i < r->cfg.caps->len; i++) {
        fprintf(out, " %s", (char *)g_ptr_array_index(r->cfg.caps, i));
    }
    fprintf(out, "%s\n", r->cfg.caps->len ? "" : " (none)");
    fprintf(out, "ram: %llu bytes in %u blocks\n", (unsigned long long)r->dec.total, r->blocks->len);
    for (guint i = 0; i < r->blocks->len; i++) {
        BlockReport *b = g_ptr_array_index(r->blocks, i);
        g_autofree char *sz = g_format_size_full(b->length, G_FORMAT_SIZE_IEC_UNITS);
        fprintf(out, "  block %-28s %10s  data pages %llu  zero pages %llu", b->idstr, sz,
               (unsigned long long)b->pages_data, (unsigned long long)b->pages_zero);
        if (b->mapped) {
            fprintf(out, "  bitmap@0x%llx pages@0x%llx",
                   (unsigned long long)b->hdr.bitmap_offset,
                   (unsigned long long)b->hdr.pages_offset);
        }
        fprintf(out, "\n");
    }
    fprintf(out, "sections:\n");
    for (guint i = 0; i < r->sections->len; i++) {
        SectionReport *s = &g_array_index(r->sections, SectionReport, i);
        fprintf(out, "  @%-10lld %-5s id %-3u %s instance %u version %u (%lld bytes)\n",
               (long long)s->si.header_offset, savevm_section_type_name(s->si.type),
               s->si.section_id, s->si.idstr, s->si.instance_id, s->si.version_id,
               (long long)(s->end - s->si.header_offset));
    }
    for (guint i = 0; i < r->commands->len; i++) {
        uint16_t c = g_array_index(r->commands, uint16_t, i);
        fprintf(out, "command: %u%s\n", c, c == 11 ? " (switchover-start)" : "");
    }
    if (r->vmdesc_root) {
        const char *why;
        JsonArray *devs = vmdesc_devices(r, &why);
        fprintf(out, "vmdesc: %zu bytes, %u devices:", strlen(r->vmdesc),
               devs ? json_array_get_length(devs) : 0);
        for (guint i = 0; devs && i < json_array_get_length(devs); i++) {
            const char *name = vmdesc_device_name(devs, i);
            fprintf(out, " %s", name ? name : "?");
        }
        fprintf(out, "\n");
    } else {
        fprintf(out, "vmdesc: none\n");
    }
    if (r->csum) {
        fprintf(out, "checksums: XXH3-64 per %u pages, table @%llu (%llu bytes)\n",
                MRC_RUN_PAGES, (unsigned long long)r->csum->offset,
                (unsigned long long)r->csum->length);
    } else if (r->csum_error) {
        fprintf(out, "checksums: table after the vmdesc is invalid: %s\n", r->csum_error);
    } else {
        fprintf(out, "checksums: none\n");
    }
}

void report_print_json(Report *r, FILE *out)
{
    g_autoptr(JsonBuilder) b = json_builder_new();
    json_builder_begin_object(b);
    if (r->lv) {
        print_libvirt_json(r->lv, b);
    }
    json_builder_set_member_name(b, "format");
    json_builder_add_string_value(b, r->mapped ? "mapped-ram" : "stream");
    json_builder_set_member_name(b, "machine");
    json_builder_add_string_value(b, r->cfg.machine);
    json_builder_set_member_name(b, "capabilities");
    json_builder_begin_array(b);
    for (guint i = 0; i < r->cfg.caps->len; i++) {
        json_builder_add_string_value(b, g_ptr_array_index(r->cfg.caps, i));
    }
    json_builder_end_array(b);
    json_builder_set_member_name(b, "ram-total");
    json_builder_add_int_value(b, r->dec.total);
    json_builder_set_member_name(b, "blocks");
    json_builder_begin_array(b);
    for (guint i = 0; i < r->blocks->len; i++) {
        BlockReport *k = g_ptr_array_index(r->blocks, i);
        json_builder_begin_object(b);
        json_builder_set_member_name(b, "name");
        json_builder_add_string_value(b, k->idstr);
        json_builder_set_member_name(b, "length");
        json_builder_add_int_value(b, k->length);
        json_builder_set_member_name(b, "data-pages");
        json_builder_add_int_value(b, k->pages_data);
        json_builder_set_member_name(b, "zero-pages");
        json_builder_add_int_value(b, k->pages_zero);
        if (k->mapped) {
            json_builder_set_member_name(b, "header-version");
            json_builder_add_int_value(b, k->hdr.version);
            json_builder_set_member_name(b, "page-size");
            json_builder_add_int_value(b, k->hdr.page_size);
            json_builder_set_member_name(b, "bitmap-offset");
            json_builder_add_int_value(b, k->hdr.bitmap_offset);
            json_builder_set_member_name(b, "pages-offset");
            json_builder_add_int_value(b, k->hdr.pages_offset);
        }
        json_builder_end_object(b);
    }
    json_builder_end_array(b);
    json_builder_set_member_name(b, "sections");
    json_builder_begin_array(b);
    for (guint i = 0; i < r->sections->len; i++) {
        SectionReport *s = &g_array_index(r->sections, SectionReport, i);
        json_builder_begin_object(b);
        json_builder_set_member_name(b, "type");
        json_builder_add_string_value(b, savevm_section_type_name(s->si.type));
        json_builder_set_member_name(b, "offset");
        json_builder_add_int_value(b, s->si.header_offset);
        json_builder_set_member_name(b, "size");
        json_builder_add_int_value(b, s->end - s->si.header_offset);
        json_builder_set_member_name(b, "section-id");
        json_builder_add_int_value(b, s->si.section_id);
        json_builder_set_member_name(b, "name");
        json_builder_add_string_value(b, s->si.idstr);
        json_builder_set_member_name(b, "instance-id");
        json_builder_add_int_value(b, s->si.instance_id);
        json_builder_set_member_name(b, "version");
        json_builder_add_int_value(b, s->si.version_id);
        json_builder_end_object(b);
    }
    json_builder_end_array(b);
    json_builder_set_member_name(b, "commands");
    json_builder_begin_array(b);
    for (guint i = 0; i < r->commands->len; i++) {
        json_builder_add_int_value(b, g_array_index(r->commands, uint16_t, i));
    }
    json_builder_end_array(b);
    json_builder_set_member_name(b, "vmdesc");
    if (r->vmdesc_root) {
        json_builder_add_value(b, json_node_copy(r->vmdesc_root));
    } else {
        json_builder_add_null_value(b);
    }
    json_builder_set_member_name(b, "checksums");
    if (r->csum) {
        json_builder_begin_object(b);
        json_builder_set_member_name(b, "algorithm");
        json_builder_add_string_value(b, "xxh3-64");
        json_builder_set_member_name(b, "run-pages");
        json_builder_add_int_value(b, MRC_RUN_PAGES);
        json_builder_set_member_name(b, "offset");
        json_builder_add_int_value(b, r->csum->offset);
        json_builder_set_member_name(b, "length");
        json_builder_add_int_value(b, r->csum->length);
        json_builder_end_object(b);
    } else if (r->csum_error) {
        json_builder_begin_object(b);
        json_builder_set_member_name(b, "error");
        json_builder_add_string_value(b, r->csum_error);
        json_builder_end_object(b);
    } else {
        json_builder_add_null_value(b);
    }
    json_builder_end_object(b);
    g_autoptr(JsonGenerator) gen = json_generator_new();
    g_autoptr(JsonNode) root = json_builder_get_root(b);
    json_generator_set_root(gen, root);
    json_generator_set_pretty(gen, TRUE);
    g_autofree char *s = json_generator_to_data(gen, NULL);
    fprintf(out, "%s\n", s);
}

int cmd_info(int argc, char **argv)
{
    gboolean json = FALSE;
    GOptionEntry entries[] = {
        { "json", 0, 0, G_OPTION_ARG_NONE, &json, "machine-readable output", NULL },
        { NULL }
    };
    g_autoptr(GOptionContext) ctx = g_option_context_new("FILE[,offset=N] - show the structure of a migration stream file");
    g_option_context_add_main_entries(ctx, entries, NULL);
    GError *err = NULL;
    if (!g_option_context_parse(ctx, &argc, &argv, &err) || argc != 2) {
        fprintf(stderr, "mapram info: %s\n", err ? err->message : "expected one FILE");
        g_clear_error(&err);
        return 2;
    }
    Report *r = report_new(false);
    bool ok = analyse(r, argv[1], &err);
    if (!ok) {
        tool_file_error("info", argv[1], err->message);
        g_error_free(err);
        report_free(r);
        return 1;
    }
    if (json) {
        report_print_json(r, stdout);
    } else {
        report_print_text(r, stdout, argv[1]);
    }
    report_free(r);
    return 0;
}

static void verify_vmdesc(Report *r)
{
    if (!r->vmdesc_root) {
        return;
    }
    const char *why;
    JsonArray *devs = vmdesc_devices(r, &why);
    if (!devs) {
        g_ptr_array_add(r->problems, g_strdup(why));
        return;
    }
    guint d = 0;
    for (guint i = 0; i < r->sections->len; i++) {
        SectionReport *s = &g_array_index(r->sections, SectionReport, i);
        if (s->si.type != QEMU_VM_SECTION_FULL) {
            continue;
        }
        if (d >= json_array_get_length(devs)) {
            g_ptr_array_add(r->problems, g_strdup_printf(
                "offset %lld: device section %s is not described in the vmdesc",
                (long long)s->si.header_offset, s->si.idstr));
            continue;
        }
        const char *name = vmdesc_device_name(devs, d++);
        if (!name) {
            g_ptr_array_add(r->problems, g_strdup_printf(
                "offset %lld: device section %s is described without a \"name\" string in the "
                "vmdesc", (long long)s->si.header_offset, s->si.idstr));
        } else if (strcmp(name, s->si.idstr) != 0) {
            g_ptr_array_add(r->problems, g_strdup_printf(
                "offset %lld: device section %s is described as '%s' in the vmdesc",
                (long long)s->si.header_offset, s->si.idstr, name));
        }
    }
}

static void verify_sections(Report *r)
{
    g_autoptr(GHashTable) open = g_hash_table_new(g_direct_hash, g_direct_equal);
    for (guint i = 0; i < r->sections->len; i++) {
        SectionReport *s = &g_array_index(r->sections, SectionReport, i);
        gpointer key = GUINT_TO_POINTER(s->si.section_id + 1);
        if (s->si.type == QEMU_VM_SECTION_START) {
            g_hash_table_add(open, key);
        } else if (s->si.type == QEMU_VM_SECTION_END) {
            g_hash_table_remove(open, key);
        }
    }
    if (g_hash_table_size(open)) {
        g_ptr_array_add(r->problems, g_strdup("an iterable section was started but never ended"));
    }
    if (!r->blocks->len) {
        g_ptr_array_add(r->problems, g_strdup("the stream has no RAM block list"));
    }
}

void report_verify(Report *r)
{
    if (!r->vmdesc_root) {
        g_ptr_array_add(r->problems, g_strdup("no vmdesc after the EOF marker"));
    }
    verify_sections(r);
    verify_vmdesc(r);
}

int cmd_verify(int argc, char **argv)
{
    gboolean data = FALSE;
    GOptionEntry entries[] = {
        { "data", 0, 0, G_OPTION_ARG_NONE, &data,
          "also read every page of a mapped-ram file and check it against the file's "
          "checksum table", NULL },
        { NULL }
    };
    g_autoptr(GOptionContext) ctx = g_option_context_new(
        "FILE[,offset=N] - check a stream or mapped-ram file; the first problem is "
        "reported with its byte offset");
    g_option_context_add_main_entries(ctx, entries, NULL);
    GError *err = NULL;
    if (!g_option_context_parse(ctx, &argc, &argv, &err) || argc != 2) {
        fprintf(stderr, "mapram verify: %s\n", err ? err->message : "expected one FILE");
        g_clear_error(&err);
        return 2;
    }
    Report *r = report_new(true);
    r->data = data;
    bool ok = analyse(r, argv[1], &err);
    if (!ok) {
        tool_file_error("verify", argv[1], err->message);
        g_error_free(err);
        report_free(r);
        return 1;
    }
    report_verify(r);
    int rc = 0;
    if (r->problems->len) {
        fprintf(stderr, "mapram verify: %s: %s\n", argv[1],
                (char *)g_ptr_array_index(r->problems, 0));
        for (guint i = 1; i < r->problems->len; i++) {
            fprintf(stderr, "  also: %s\n", (char *)g_ptr_array_index(r->problems, i));
        }
        rc = 1;
    } else {
        printf("%s: OK (%s%s%s%s, %u RAM blocks, %u sections, %s)\n", argv[1],
               r->lv ? "libvirt " : "", r->lv ? libvirt_format_name(r->lv->format) : "",
               r->lv ? " image of " : "", r->mapped ? "mapped-ram" : "stream", r->blocks->len, r->sections->len,
               !r->csum ? "no checksum table" :
               r->data_checked ? "every page matches the checksum table" : "checksum table");
    }
    report_free(r);
    return rc;
}
