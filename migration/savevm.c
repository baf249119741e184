/*
 * QEVM stream: codec, walker and the VM's handler registry.
 */
#include "savevm.h"
#include "util/bswap.h"
#include "util/error.h"
#include "util/fault.h"
#include <string.h>

const char *savevm_section_type_name(int type)
{
    switch (type) {
    case QEMU_VM_EOF: return "EOF";
    case QEMU_VM_SECTION_START: return "START";
    case QEMU_VM_SECTION_PART: return "PART";
    case QEMU_VM_SECTION_END: return "END";
    case QEMU_VM_SECTION_FULL: return "FULL";
    case QEMU_VM_SUBSECTION: return "SUBSECTION";
    case QEMU_VM_VMDESCRIPTION: return "VMDESCRIPTION";
    case QEMU_VM_CONFIGURATION: return "CONFIGURATION";
    case QEMU_VM_COMMAND: return "COMMAND";
    case QEMU_VM_SECTION_FOOTER: return "FOOTER";
    default: return "unknown";
    }
}

/* ------------------------------------------------------------------ */
/* configuration                                                       */

#define CONF_SUB_PAGE_BITS "configuration/target-page-bits"
#define CONF_SUB_CAPS      "configuration/capabilities"
#define CONF_SUB_UUID      "configuration/uuid"

void stream_config_clear(StreamConfig *c)
{
    if (c->caps) {
        g_ptr_array_unref(c->caps);
    }
    memset(c, 0, sizeof(*c));
}

static void desc_field(JsonBuilder *b, const char *name, const char *type, gint64 size)
{
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "name");
    json_builder_add_string_value(b, name);
    json_builder_set_member_name(b, "type");
    json_builder_add_string_value(b, type);
    json_builder_set_member_name(b, "size");
    json_builder_add_int_value(b, size);
    json_builder_end_object(b);
}

static void desc_begin(JsonBuilder *b, const char *vmsd_name)
{
    json_builder_set_member_name(b, "vmsd_name");
    json_builder_add_string_value(b, vmsd_name);
    json_builder_set_member_name(b, "version");
    json_builder_add_int_value(b, 1);
    json_builder_set_member_name(b, "fields");
    json_builder_begin_array(b);
}

static void put_subsection_header(QEMUFile *f, const char *name)
{
    qemu_put_byte(f, QEMU_VM_SUBSECTION);
    qemu_put_counted_string(f, name);
    qemu_put_be32(f, 1);
}

void savevm_put_configuration(QEMUFile *f, const StreamConfig *c, JsonBuilder *vmdesc)
{
    size_t len = strlen(c->machine);
    bool has_caps = c->caps && c->caps->len > 0;

    qemu_put_byte(f, QEMU_VM_CONFIGURATION);
    qemu_put_be32(f, len);
    qemu_put_buffer(f, c->machine, len);
    if (vmdesc) {
        json_builder_set_member_name(vmdesc, "configuration");
        json_builder_begin_object(vmdesc);
        desc_begin(vmdesc, "configuration");
        desc_field(vmdesc, "len", "uint32", 4);
        desc_field(vmdesc, "name", "buffer", len);
        json_builder_end_array(vmdesc);
        if (c->has_page_bits || has_caps || c->has_uuid) {
            json_builder_set_member_name(vmdesc, "subsections");
            json_builder_begin_array(vmdesc);
        }
    }
    if (c->has_page_bits) {
        put_subsection_header(f, CONF_SUB_PAGE_BITS);
        qemu_put_be32(f, c->page_bits);
        if (vmdesc) {
            json_builder_begin_object(vmdesc);
            desc_begin(vmdesc, CONF_SUB_PAGE_BITS);
            desc_field(vmdesc, "target_page_bits", "int32", 4);
            json_builder_end_array(vmdesc);
            json_builder_end_object(vmdesc);
        }
    }
    if (has_caps) {
        put_subsection_header(f, CONF_SUB_CAPS);
        qemu_put_be32(f, c->caps->len);
        for (guint i = 0; i < c->caps->len; i++) {
            qemu_put_counted_string(f, g_ptr_array_index(c->caps, i));
        }
        if (vmdesc) {
            json_builder_begin_object(vmdesc);
            desc_begin(vmdesc, CONF_SUB_CAPS);
            desc_field(vmdesc, "caps_count", "uint32", 4);
            for (guint i = 0; i < c->caps->len; i++) {
                desc_field(vmdesc, "capabilities", "capability",
                           1 + strlen(g_ptr_array_index(c->caps, i)));
            }
            json_builder_end_array(vmdesc);
            json_builder_end_object(vmdesc);
        }
    }
    if (c->has_uuid) {
        put_subsection_header(f, CONF_SUB_UUID);
        qemu_put_buffer(f, c->uuid, 16);
        if (vmdesc) {
            json_builder_begin_object(vmdesc);
            desc_begin(vmdesc, CONF_SUB_UUID);
            desc_field(vmdesc, "uuid", "buffer", 16);
            json_builder_end_array(vmdesc);
            json_builder_end_object(vmdesc);
        }
    }
    if (vmdesc) {
        if (c->has_page_bits || has_caps || c->has_uuid) {
            json_builder_end_array(vmdesc);
        }
        json_builder_end_object(vmdesc);
    }
}

/* The name of the configuration subsection that follows, if one does. */
static bool peek_config_subsection(QEMUFile *f, char name[256])
{
    if (qemu_peek_byte(f, 0) != QEMU_VM_SUBSECTION) {
        return false;
    }
    int nlen = qemu_peek_byte(f, 1);
    if (nlen < 0 || qemu_peek_buffer(f, name, nlen, 2) != (size_t)nlen) {
        return false;
    }
    name[nlen] = 0;
    return g_str_has_prefix(name, "configuration");
}

static bool get_config_caps(QEMUFile *f, StreamConfig *c, GError **errp)
{
    uint32_t n;
    if (!qemu_get_be32(f, &n, errp)) {
        return false;
    }
    if (n > 64) {
        error_setg(errp, "implausible capability count %u", n);
        return false;
    }
    for (uint32_t i = 0; i < n; i++) {
        char cap[256];
        if (!qemu_get_counted_string(f, cap, errp)) {
            return false;
        }
        g_ptr_array_add(c->caps, g_strdup(cap));
    }
    return true;
}

/* The subsection name (already peeked), its version and its body. */
static bool get_config_subsection(QEMUFile *f, StreamConfig *c, const char *name,
                                  GError **errp)
{
    uint32_t ver;
    if (!qemu_file_skip(f, 2 + strlen(name), errp) || !qemu_get_be32(f, &ver, errp)) {
        return false;
    }
    if (ver != 1) {
        error_setg(errp, "subsection '%s' version %u is not supported", name, ver);
        return false;
    }
    if (strcmp(name, CONF_SUB_PAGE_BITS) == 0) {
        c->has_page_bits = true;
        return qemu_get_be32(f, &c->page_bits, errp);
    }
    if (strcmp(name, CONF_SUB_CAPS) == 0) {
        return get_config_caps(f, c, errp);
    }
    if (strcmp(name, CONF_SUB_UUID) == 0) {
        c->has_uuid = true;
        return qemu_get_buffer(f, c->uuid, 16, errp);
    }
    error_setg(errp, "unknown subsection '%s'", name);
    return false;
}

bool savevm_get_configuration(QEMUFile *f, StreamConfig *c, GError **errp)
{
    uint8_t type;
    uint32_t len;
    char name[256];

    memset(c, 0, sizeof(*c));
    c->caps = g_ptr_array_new_with_free_func(g_free);
    if (!qemu_get_byte(f, &type, errp)) {
        return false;
    }
    if (type != QEMU_VM_CONFIGURATION) {
        error_setg(errp, "Configuration section missing, %x != %x",
                   type, QEMU_VM_CONFIGURATION);
        return false;
    }
    if (!qemu_get_be32(f, &len, errp)) {
        return false;
    }
    if (len > 255) {
        error_setg(errp, "Machine type name too long (%u bytes)", len);
        return false;
    }
    if (!qemu_get_buffer(f, c->machine, len, errp)) {
        return false;
    }
    c->machine[len] = 0;
    while (peek_config_subsection(f, name)) {
        if (!get_config_subsection(f, c, name, errp)) {
            return false;
        }
    }
    return true;
}

/* ------------------------------------------------------------------ */
/* section records                                                     */

void savevm_put_section_full_header(QEMUFile *f, uint8_t type, uint32_t section_id,
                                    const char *idstr, uint32_t instance, uint32_t version)
{
    qemu_put_byte(f, type);
    qemu_put_be32(f, section_id);
    qemu_put_counted_string(f, idstr);
    qemu_put_be32(f, instance);
    qemu_put_be32(f, version);
}

void savevm_put_section_short_header(QEMUFile *f, uint8_t type, uint32_t section_id)
{
    qemu_put_byte(f, type);
    qemu_put_be32(f, section_id);
}

void savevm_put_section_footer(QEMUFile *f, uint32_t section_id)
{
    qemu_put_byte(f, QEMU_VM_SECTION_FOOTER);
    qemu_put_be32(f, section_id);
}

void savevm_put_command(QEMUFile *f, uint16_t cmd, const void *data, uint16_t len)
{
    qemu_put_byte(f, QEMU_VM_COMMAND);
    qemu_put_be16(f, cmd);
    qemu_put_be16(f, len);
    if (len) {
        qemu_put_buffer(f, data, len);
    }
}

/* ---- postcopy commands ---- */

void savevm_put_open_return_path(QEMUFile *f)
{
    savevm_put_command(f, MIG_CMD_OPEN_RETURN_PATH, NULL, 0);
}

void savevm_put_ping(QEMUFile *f, uint32_t value)
{
    uint8_t b[4];
    stl_be_p(b, value);
    savevm_put_command(f, MIG_CMD_PING, b, sizeof(b));
}

void savevm_put_postcopy_advise(QEMUFile *f, uint64_t summary, uint64_t tps)
{
    uint8_t b[16];
    stq_be_p(b, summary);
    stq_be_p(b + 8, tps);
    savevm_put_command(f, MIG_CMD_POSTCOPY_ADVISE, b, sizeof(b));
}

void savevm_put_postcopy_ram_discard(QEMUFile *f, const char *idstr, const uint64_t *starts,
                                     const uint64_t *lengths, unsigned n)
{
    uint8_t b[3 + 255 + 12 * 16];
    size_t len = strlen(idstr);

    g_assert(len > 0 && len < 256 && n <= 12);
    b[0] = 0;                   /* version */
    b[1] = len;
    memcpy(b + 2, idstr, len);
    b[2 + len] = 0;
    for (unsigned i = 0; i < n; i++) {
        stq_be_p(b + 3 + len + 16 * i, starts[i]);
        stq_be_p(b + 3 + len + 16 * i + 8, lengths[i]);
    }
    savevm_put_command(f, MIG_CMD_POSTCOPY_RAM_DISCARD, b, 3 + len + 16 * n);
}

void savevm_put_postcopy_listen(QEMUFile *f)
{
    savevm_put_command(f, MIG_CMD_POSTCOPY_LISTEN, NULL, 0);
}

void savevm_put_postcopy_run(QEMUFile *f)
{
    savevm_put_command(f, MIG_CMD_POSTCOPY_RUN, NULL, 0);
}

void savevm_put_packaged(QEMUFile *f, const void *package, uint32_t len)
{
    uint8_t b[4];
    stl_be_p(b, len);
    savevm_put_command(f, MIG_CMD_PACKAGED, b, sizeof(b));
    qemu_put_buffer(f, package, len);
}

/* ---- the return path ---- */

/* QEMU's names (its source's messages use them); fixed lengths, -1 = variable. */
static const struct {
    const char *name;
    int len;
} rp_msgs[MIG_RP_MSG_MAX] = {
    [MIG_RP_MSG_SHUT] = { "SHUT", 4 },
    [MIG_RP_MSG_PONG] = { "PONG", 4 },
    [MIG_RP_MSG_REQ_PAGES_ID] = { "REQ_PAGES_ID", -1 },
    [MIG_RP_MSG_REQ_PAGES] = { "REQ_PAGES", 12 },
    [MIG_RP_MSG_RECV_BITMAP] = { "RECV_BITMAP", -1 },
    [MIG_RP_MSG_RESUME_ACK] = { "RESUME_ACK", 4 },
    [MIG_RP_MSG_SWITCHOVER_ACK] = { "SWITCHOVER_ACK", 0 },
};

/* QEMU's limit on one return-path message (its source's reader). */
#define RP_MSG_MAX_LEN 512

const char *savevm_rp_message_name(uint16_t type)
{
    return type && type < MIG_RP_MSG_MAX ? rp_msgs[type].name : "INVALID";
}

static bool rp_parse_req(RpCodec *c, RpMessage *m, const uint8_t *b, uint16_t len,
                         GError **errp)
{
    m->start = ldq_be_p(b);
    m->len = ldl_be_p(b + 8);
    if (m->type == MIG_RP_MSG_REQ_PAGES) {
        if (!c->last_block[0]) {
            error_setg(errp, "MIG_RP_MSG_REQ_PAGES has no previous block");
            return false;
        }
        memcpy(m->idstr, c->last_block, sizeof(m->idstr));
        return true;
    }
    uint8_t n = len > 12 ? b[12] : 0;
    if (len < 13 || 13 + n != len || n == 0) {
        error_setg(errp, "Received 'REQ_PAGES_ID' message (0x%04x) with bad length %u",
                   m->type, len);
        return false;
    }
    memcpy(m->idstr, b + 13, n);
    m->idstr[n] = 0;
    memcpy(c->last_block, m->idstr, sizeof(c->last_block));
    return true;
}

bool savevm_get_rp_message(RpCodec *c, QEMUFile *f, RpMessage *m, GError **errp)
{
    uint16_t type, len;
    uint8_t b[RP_MSG_MAX_LEN];

    memset(m, 0, sizeof(*m));
    if (qemu_file_at_eof(f)) {
        return true;
    }
    if (!qemu_get_be16(f, &type, errp) || !qemu_get_be16(f, &len, errp)) {
        return false;
    }
    if (type == 0 || type >= MIG_RP_MSG_MAX || len > RP_MSG_MAX_LEN) {
        error_setg(errp, "Received invalid message 0x%04x length 0x%04x", type, len);
        return false;
    }
    if (rp_msgs[type].len >= 0 && rp_msgs[type].len != len) {
        error_setg(errp, "Received '%s' message (0x%04x) with incorrect length %d expecting %d",
                   rp_msgs[type].name, type, len, rp_msgs[type].len);
        return false;
    }
    if (!qemu_get_buffer(f, b, len, errp)) {
        return false;
    }
    m->type = type;
    switch (type) {
    case MIG_RP_MSG_SHUT:
    case MIG_RP_MSG_PONG:
    case MIG_RP_MSG_RESUME_ACK:
        m->value = ldl_be_p(b);
        return true;
    case MIG_RP_MSG_REQ_PAGES:
    case MIG_RP_MSG_REQ_PAGES_ID:
        return rp_parse_req(c, m, b, len, errp);
    case MIG_RP_MSG_SWITCHOVER_ACK:
        return true;
    default:
        error_setg(errp, "Unexpected return-path message %s: this source starts no recovery",
                   rp_msgs[type].name);
        return false;
    }
}

static void put_rp_message(QEMUFile *f, uint16_t type, const void *data, uint16_t len)
{
    qemu_put_be16(f, type);
    qemu_put_be16(f, len);
    qemu_put_buffer(f, data, len);
}

void savevm_put_rp_shut(QEMUFile *f, uint32_t value)
{
    uint8_t b[4];
    stl_be_p(b, value);
    put_rp_message(f, MIG_RP_MSG_SHUT, b, sizeof(b));
}

void savevm_put_rp_switchover_ack(QEMUFile *f)
{
    put_rp_message(f, MIG_RP_MSG_SWITCHOVER_ACK, NULL, 0);
}

void savevm_put_rp_pong(QEMUFile *f, uint32_t value)
{
    uint8_t b[4];
    stl_be_p(b, value);
    put_rp_message(f, MIG_RP_MSG_PONG, b, sizeof(b));
}

void savevm_put_rp_req_pages(RpCodec *c, QEMUFile *f, const char *idstr, uint64_t start,
                             uint32_t len)
{
    uint8_t b[13 + 255];
    size_t n = strlen(idstr);

    g_assert(n > 0 && n < 256);
    stq_be_p(b, start);
    stl_be_p(b + 8, len);
    if (!strcmp(c->last_block, idstr)) {
        put_rp_message(f, MIG_RP_MSG_REQ_PAGES, b, 12);
        return;
    }
    b[12] = n;
    memcpy(b + 13, idstr, n);
    put_rp_message(f, MIG_RP_MSG_REQ_PAGES_ID, b, 13 + n);
    memcpy(c->last_block, idstr, n + 1);
}

static bool check_footer(QEMUFile *f, const SectionInfo *si, GError **errp)
{
    uint8_t mark;
    uint32_t id;

    if (!qemu_get_byte(f, &mark, errp)) {
        return false;
    }
    if (mark != QEMU_VM_SECTION_FOOTER) {
        error_setg(errp, "Section footer error, section_id: %u: Missing section footer for %s",
                   si->section_id, si->idstr);
        return false;
    }
    if (!qemu_get_be32(f, &id, errp)) {
        return false;
    }
    if (id != si->section_id) {
        error_setg(errp, "Section footer error, section_id: %u: Mismatched section id in footer "
                   "for %s - read 0x%x expected 0x%x", si->section_id, si->idstr,
                   id, si->section_id);
        return false;
    }
    return true;
}

static bool read_full_header(QEMUFile *f, SectionInfo *si, GError **errp)
{
    char idstr[256];
    if (!qemu_get_be32(f, &si->section_id, errp) ||
        !qemu_get_counted_string(f, idstr, errp)) {
        return false;
    }
    if (idstr[0] == 0) {
        error_setg(errp, "Empty section name");
        return false;
    }
    g_strlcpy(si->idstr, idstr, sizeof(si->idstr));
    return qemu_get_be32(f, &si->instance_id, errp) &&
           qemu_get_be32(f, &si->version_id, errp);
}

static bool read_header(QEMUFile *f, GError **errp)
{
    uint32_t magic, version;
    if (qemu_file_at_eof(f)) {
        /* a save that never started, or a file cut to nothing */
        error_setg(errp, "the stream is empty (no QEVM header)");
        return false;
    }
    if (!qemu_get_be32(f, &magic, errp)) {
        return false;
    }
    if (magic != QEMU_VM_FILE_MAGIC) {
        error_setg(errp, "Not a migration stream, magic: %x != %x", magic, QEMU_VM_FILE_MAGIC);
        return false;
    }
    if (!qemu_get_be32(f, &version, errp)) {
        return false;
    }
    if (version == QEMU_VM_FILE_VERSION_COMPAT) {
        error_setg(errp, "SaveVM v2 format is obsolete and no longer supported");
        return false;
    }
    if (version != QEMU_VM_FILE_VERSION) {
        error_setg(errp, "Unsupported migration stream version, file version %x != %x",
                   version, QEMU_VM_FILE_VERSION);
        return false;
    }
    return true;
}

/* One walk: the stream, the visitor, and the START of every open section. */
typedef struct Walker {
    QEMUFile *f;
    const StreamVisitor *v;
    void *opaque;
    GHashTable *started;        /* section_id -> SectionInfo of its START */
    StreamFraming framing;
} Walker;

static bool read_vmdesc_body(Walker *w, GError **errp)
{
    uint32_t len;
    int b = qemu_peek_byte(w->f, 0);

    if (b != QEMU_VM_VMDESCRIPTION) {
        error_setg(errp, "Expected vmdescription section, but got %d", b);
        return false;
    }
    if (!qemu_file_skip(w->f, 1, errp) || !qemu_get_be32(w->f, &len, errp)) {
        return false;
    }
    if (len > 64 * 1024 * 1024) {
        error_setg(errp, "vmdescription of %u bytes is implausible", len);
        return false;
    }
    g_autofree char *json = g_malloc(len + 1);
    if (!qemu_get_buffer(w->f, json, len, errp)) {
        return false;
    }
    json[len] = 0;
    return !w->v->vmdesc || w->v->vmdesc(w->opaque, json, len, errp);
}

static bool read_vmdesc(Walker *w, GError **errp)
{
    GError *err = NULL;

    if (qemu_peek_byte(w->f, 0) < 0) {
        return true;                      /* suppress-vmdesc: nothing follows */
    }
    if (read_vmdesc_body(w, &err)) {
        return true;
    }
    if (!w->v->no_vmdesc) {
        g_propagate_error(errp, err);
        return false;
    }
    /* missing, cut short or implausible: the visitor decides (a load only reports it) */
    bool ok = w->v->no_vmdesc(w->opaque, err->message, errp);
    g_error_free(err);
    return ok;
}

static bool walk_configuration(Walker *w, GError **errp)
{
    StreamConfig cfg;
    bool ok = savevm_get_configuration(w->f, &cfg, errp) &&
              (!w->v->configuration || w->v->configuration(w->opaque, w->f, &cfg, errp));
    stream_config_clear(&cfg);
    return ok;
}

/* START/FULL carry the full header; PART/END name the id of an earlier START. */
static bool read_section_header(Walker *w, SectionInfo *si, GError **errp)
{
    if (si->type == QEMU_VM_SECTION_START || si->type == QEMU_VM_SECTION_FULL) {
        if (!read_full_header(w->f, si, errp)) {
            return false;
        }
        if (si->type == QEMU_VM_SECTION_START) {
            g_hash_table_insert(w->started, GUINT_TO_POINTER(si->section_id),
                                g_memdup2(si, sizeof(*si)));
        }
        return true;
    }
    if (!qemu_get_be32(w->f, &si->section_id, errp)) {
        return false;
    }
    SectionInfo *st = g_hash_table_lookup(w->started, GUINT_TO_POINTER(si->section_id));
    if (!st) {
        error_setg(errp, "Unknown savevm section %u", si->section_id);
        return false;
    }
    memcpy(si->idstr, st->idstr, sizeof(si->idstr));
    si->instance_id = st->instance_id;
    si->version_id = st->version_id;
    return true;
}

static bool walk_section(Walker *w, SectionInfo *si, GError **errp)
{
    return read_section_header(w, si, errp) &&
           w->v->section(w->opaque, w->f, si, errp) &&
           (!w->framing.footers || check_footer(w->f, si, errp)) &&
           (!w->v->section_done || w->v->section_done(w->opaque, w->f, si, errp));
}

static bool walk_command(Walker *w, GError **errp)
{
    uint16_t cmd, len;
    if (!qemu_get_be16(w->f, &cmd, errp) || !qemu_get_be16(w->f, &len, errp)) {
        return false;
    }
    g_autofree uint8_t *data = g_malloc(len + 1);
    return qemu_get_buffer(w->f, data, len, errp) &&
           (!w->v->command || w->v->command(w->opaque, w->f, cmd, data, len, errp));
}

/* The record whose type byte was just read; *eof when it is the EOF marker. */
static bool walk_record(Walker *w, SectionInfo *si, bool *eof, GError **errp)
{
    switch (si->type) {
    case QEMU_VM_SECTION_START:
    case QEMU_VM_SECTION_PART:
    case QEMU_VM_SECTION_END:
    case QEMU_VM_SECTION_FULL:
        return walk_section(w, si, errp);
    case QEMU_VM_COMMAND:
        return walk_command(w, errp);
    case QEMU_VM_EOF:
        *eof = true;
        return !w->v->eof || w->v->eof(w->opaque, w->f, errp);
    default:
        error_setg(errp, "Unknown savevm section type %d", si->type);
        return false;
    }
}

static void prefix_offset(GError **errp, const char *what, off_t at)
{
    g_prefix_error(errp, "%s at offset %lld: ", what, (long long)at);
}

/* A record's failure, named as far as the record was parsed. */
static void prefix_record(GError **errp, const SectionInfo *si)
{
    g_autofree char *what = NULL;

    switch (si->type) {
    case QEMU_VM_SECTION_START:
    case QEMU_VM_SECTION_PART:
    case QEMU_VM_SECTION_END:
    case QEMU_VM_SECTION_FULL:
        what = si->idstr[0] ?
            g_strdup_printf("%s section '%s' (id %u)", savevm_section_type_name(si->type),
                            si->idstr, si->section_id) :
            g_strdup_printf("%s section", savevm_section_type_name(si->type));
        break;
    case QEMU_VM_COMMAND:
        what = g_strdup("Command");
        break;
    default:
        what = g_strdup("Record");
        break;
    }
    prefix_offset(errp, what, si->header_offset);
}

/*
 * Failures get where they happened from here, once: the header, the
 * configuration, each record or the vmdesc, with the offset it starts at.
 */
bool savevm_walk_stream(QEMUFile *f, const StreamVisitor *v, void *opaque,
                        bool want_vmdesc, GError **errp)
{
    return savevm_walk_stream_framed(f, v, opaque, want_vmdesc, NULL, errp);
}

bool savevm_walk_stream_framed(QEMUFile *f, const StreamVisitor *v, void *opaque,
                               bool want_vmdesc, const StreamFraming *framing,
                               GError **errp)
{
    g_autoptr(GHashTable) started = g_hash_table_new_full(g_direct_hash, g_direct_equal,
                                                          NULL, g_free);
    Walker w = { .f = f, .v = v, .opaque = opaque, .started = started,
                 .framing = framing ? *framing : (StreamFraming){ true, true } };
    off_t at = qemu_file_tell(f);

    if (!read_header(f, errp)) {
        prefix_offset(errp, "Stream header", at);
        return false;
    }
    at = qemu_file_tell(f);
    if (w.framing.configuration && !walk_configuration(&w, errp)) {
        prefix_offset(errp, "Configuration", at);
        return false;
    }
    for (bool eof = false; !eof; ) {
        SectionInfo si = { .header_offset = qemu_file_tell(f) };
        if (!qemu_get_byte(f, &si.type, errp)) {
            return false;               /* the end, or a read error: both name the offset */
        }
        if (!walk_record(&w, &si, &eof, errp)) {
            prefix_record(errp, &si);
            return false;
        }
    }
    at = qemu_file_tell(f);
    if (want_vmdesc && !read_vmdesc(&w, errp)) {
        prefix_offset(errp, "VM description", at);
        return false;
    }
    return true;
}

/* A record may start here: a section type that parses, or EOF. */
static bool plausible_next(QEMUFile *f, size_t ahead, uint32_t sid)
{
    int t = qemu_peek_byte(f, ahead);
    uint8_t b[4];
    switch (t) {
    case -1:
        return false;
    case QEMU_VM_EOF: {
        int n = qemu_peek_byte(f, ahead + 1);
        return n == -1 || n == QEMU_VM_VMDESCRIPTION;
    }
    case QEMU_VM_SECTION_FULL:
    case QEMU_VM_SECTION_START: {
        if (qemu_peek_buffer(f, b, 4, ahead + 1) != 4) {
            return false;
        }
        uint32_t next = (uint32_t)b[0] << 24 | b[1] << 16 | b[2] << 8 | b[3];
        int len = qemu_peek_byte(f, ahead + 5);
        if (next == sid || len <= 0) {
            return false;
        }
        for (int i = 0; i < len && i < 64; i++) {
            int c = qemu_peek_byte(f, ahead + 6 + i);
            if (c < 0x20 || c > 0x7e) {
                return false;
            }
        }
        return true;
    }
    case QEMU_VM_SECTION_PART:
    case QEMU_VM_SECTION_END:
    case QEMU_VM_COMMAND:
        return true;
    default:
        return false;
    }
}

bool savevm_skip_unknown_body(QEMUFile *f, const SectionInfo *si, GByteArray *out,
                              GError **errp)
{
    uint8_t foot[5] = { QEMU_VM_SECTION_FOOTER, si->section_id >> 24, si->section_id >> 16,
                        si->section_id >> 8, si->section_id };
    off_t start = qemu_file_tell(f);
    for (;;) {
        uint8_t w[4096];
        size_t n = qemu_peek_buffer(f, w, sizeof(w), 0);
        const uint8_t *mark = memchr(w, QEMU_VM_SECTION_FOOTER, n);
        size_t take;
        if (mark == w) {
            if (qemu_peek_buffer(f, w, 5, 0) == 5 && memcmp(w, foot, 5) == 0 &&
                plausible_next(f, 5, si->section_id)) {
                return true;
            }
            take = 1;
        } else {
            /*
             * A footer starts with its marker byte: all before the next
             * one is body, taken at once (byte by byte, the scan of a
             * 20 MiB region took 0.9 s, 11 s under ASan).  Nothing left:
             * the get below fails naming the end.
             */
            take = mark ? (size_t)(mark - w) : MAX(n, 1);
        }
        if (!qemu_get_buffer(f, w, take, errp)) {
            g_prefix_error(errp, "No section footer found: ");
            return false;
        }
        if (out) {
            g_byte_array_append(out, w, take);
        }
        if (qemu_file_tell(f) - start > 256 * 1024 * 1024) {
            error_setg(errp, "No section footer within 256 MiB");
            return false;
        }
    }
}

void savevm_put_section_header(QEMUFile *f, const SectionInfo *si)
{
    if (si->type == QEMU_VM_SECTION_START || si->type == QEMU_VM_SECTION_FULL) {
        savevm_put_section_full_header(f, si->type, si->section_id, si->idstr,
                                       si->instance_id, si->version_id);
    } else {
        savevm_put_section_short_header(f, si->type, si->section_id);
    }
}

bool savevm_copy_unknown_section(QEMUFile *in, QEMUFile *out, const SectionInfo *si,
                                 GError **errp)
{
    g_autoptr(GByteArray) body = g_byte_array_new();
    if (!savevm_skip_unknown_body(in, si, body, errp)) {
        return false;
    }
    savevm_put_section_header(out, si);
    qemu_put_buffer(out, body->data, body->len);
    savevm_put_section_footer(out, si->section_id);
    return qemu_file_propagate_error(out, errp);
}

void savevm_put_vmdesc(QEMUFile *f, const char *json, uint32_t len)
{
    qemu_put_byte(f, QEMU_VM_VMDESCRIPTION);
    qemu_put_be32(f, len);
    qemu_put_buffer(f, json, len);
}

/* ------------------------------------------------------------------ */
/* the VM's registry and save pipeline                                  */

typedef struct SaveStateEntry {
    char idstr[256];
    uint32_t instance_id;
    uint32_t version_id;
    uint32_t section_id;
    const SaveVMHandlers *ops;        /* iterable handlers, or NULL */
    const VMStateDescription *vmsd;   /* device state, or NULL */
    void *opaque;
} SaveStateEntry;

/* Filled before the first migration starts; read-only afterwards. */
struct SaveVMRegistry {
    GPtrArray *entries;               /* SaveStateEntry *, in registration order */
    uint32_t next_section_id;
};

SaveVMRegistry *savevm_registry_new(void)
{
    SaveVMRegistry *r = g_new0(SaveVMRegistry, 1);
    r->entries = g_ptr_array_new_with_free_func(g_free);
    return r;
}

void savevm_registry_free(SaveVMRegistry *r)
{
    if (r) {
        g_ptr_array_unref(r->entries);
        g_free(r);
    }
}

static SaveStateEntry *new_entry(SaveVMRegistry *r, const char *idstr, uint32_t instance)
{
    SaveStateEntry *se = g_new0(SaveStateEntry, 1);
    g_strlcpy(se->idstr, idstr, sizeof(se->idstr));
    se->instance_id = instance;
    se->section_id = r->next_section_id++;
    g_ptr_array_add(r->entries, se);
    return se;
}

void savevm_register_live(SaveVMRegistry *r, const char *idstr, uint32_t instance,
                          uint32_t version, const SaveVMHandlers *ops, void *opaque)
{
    SaveStateEntry *se = new_entry(r, idstr, instance);
    se->version_id = version;
    se->ops = ops;
    se->opaque = opaque;
}

void savevm_register_vmstate(SaveVMRegistry *r, const char *idstr, uint32_t instance_id,
                             const VMStateDescription *vmsd, void *opaque)
{
    SaveStateEntry *se = new_entry(r, idstr, instance_id);
    se->version_id = vmsd->version_id;
    se->vmsd = vmsd;
    se->opaque = opaque;
}

bool savevm_registry_device(SaveVMRegistry *r, unsigned n, const char **idstr,
                            uint32_t *instance_id, const VMStateDescription **vmsd,
                            void **opaque)
{
    for (guint i = 0; i < r->entries->len; i++) {
        SaveStateEntry *se = g_ptr_array_index(r->entries, i);
        if (!se->vmsd || n--) {
            continue;
        }
        *idstr = se->idstr;
        *instance_id = se->instance_id;
        *vmsd = se->vmsd;
        *opaque = se->opaque;
        return true;
    }
    return false;
}

#define FOREACH_SE(r, se) \
    for (guint i_ = 0; i_ < (r)->entries->len && ((se) = (r)->entries->pdata[i_]); i_++)

void qemu_savevm_state_header(QEMUFile *f, const StreamConfig *cfg, JsonBuilder *vmdesc)
{
    qemu_put_be32(f, QEMU_VM_FILE_MAGIC);
    qemu_put_be32(f, QEMU_VM_FILE_VERSION);
    json_builder_begin_object(vmdesc);
    if (cfg) {
        savevm_put_configuration(f, cfg, vmdesc);
    }
}

static void put_footer(QEMUFile *f, bool footers, uint32_t section_id)
{
    if (footers) {
        savevm_put_section_footer(f, section_id);
    }
}

bool qemu_savevm_state_setup(SaveVMRegistry *r, QEMUFile *f, bool footers, GError **errp)
{
    SaveStateEntry *se;
    FOREACH_SE(r, se) {
        if (!se->ops || !se->ops->save_setup) {
            continue;
        }
        savevm_put_section_full_header(f, QEMU_VM_SECTION_START, se->section_id,
                                       se->idstr, se->instance_id, se->version_id);
        if (!se->ops->save_setup(f, se->opaque, errp)) {
            return false;
        }
        put_footer(f, footers, se->section_id);
    }
    qemu_fflush(f);
    return qemu_file_propagate_error(f, errp);
}

int qemu_savevm_state_iterate(SaveVMRegistry *r, QEMUFile *f, bool footers, GError **errp)
{
    SaveStateEntry *se;
    int all_done = 1;
    FOREACH_SE(r, se) {
        if (!se->ops || !se->ops->save_iterate) {
            continue;
        }
        savevm_put_section_short_header(f, QEMU_VM_SECTION_PART, se->section_id);
        int ret = se->ops->save_iterate(f, se->opaque, errp);
        put_footer(f, footers, se->section_id);
        if (ret < 0) {
            return ret;
        }
        if (ret == 0) {
            all_done = 0;
        }
    }
    qemu_fflush(f);
    if (!qemu_file_propagate_error(f, errp)) {
        return -1;
    }
    return all_done;
}

uint64_t qemu_savevm_state_pending(SaveVMRegistry *r, bool exact)
{
    SaveStateEntry *se;
    uint64_t total = 0;
    FOREACH_SE(r, se) {
        if (se->ops && se->ops->pending) {
            total += se->ops->pending(se->opaque, exact);
        }
    }
    return total;
}

static bool save_device(QEMUFile *f, SaveStateEntry *se, JsonBuilder *vmdesc_builder,
                        bool footers, GError **errp)
{
    if (se->vmsd->needed && !se->vmsd->needed(se->opaque)) {
        return true;
    }
    json_builder_begin_object(vmdesc_builder);
    json_builder_set_member_name(vmdesc_builder, "name");
    json_builder_add_string_value(vmdesc_builder, se->idstr);
    json_builder_set_member_name(vmdesc_builder, "instance_id");
    json_builder_add_int_value(vmdesc_builder, se->instance_id);
    savevm_put_section_full_header(f, QEMU_VM_SECTION_FULL, se->section_id, se->idstr,
                                   se->instance_id, se->vmsd->version_id);
    if (!vmstate_save_state(f, se->vmsd, se->opaque, vmdesc_builder, errp)) {
        g_prefix_error(errp, "Failed to save device state '%s': ", se->idstr);
        return false;
    }
    put_footer(f, footers, se->section_id);
    json_builder_end_object(vmdesc_builder);
    return true;
}

bool qemu_savevm_state_complete(SaveVMRegistry *r, QEMUFile *f, JsonBuilder *vmdesc_builder,
                                bool switchover_cmd, bool footers,
                                bool (*commit)(void *opaque), void *opaque, GError **errp)
{
    SaveStateEntry *se;
    if (switchover_cmd) {
        savevm_put_command(f, MIG_CMD_SWITCHOVER_START, NULL, 0);
    }
    FOREACH_SE(r, se) {
        if (!se->ops || !se->ops->save_complete) {
            continue;
        }
        savevm_put_section_short_header(f, QEMU_VM_SECTION_END, se->section_id);
        if (!se->ops->save_complete(f, se->opaque, errp)) {
            return false;
        }
        put_footer(f, footers, se->section_id);
    }
    json_builder_set_member_name(vmdesc_builder, "page_size");
    json_builder_add_int_value(vmdesc_builder, 4096);
    json_builder_set_member_name(vmdesc_builder, "devices");
    json_builder_begin_array(vmdesc_builder);
    FOREACH_SE(r, se) {
        if (se->vmsd && !save_device(f, se, vmdesc_builder, footers, errp)) {
            return false;
        }
    }
    json_builder_end_array(vmdesc_builder);
    json_builder_end_object(vmdesc_builder);
    if (commit) {
        /* every byte before the EOF is out while a cancel still wins (a stalled peer) */
        if (fault_hit("save-pre-eof-stall")) {
            g_usleep(3 * G_USEC_PER_SEC);
        }
        qemu_fflush(f);
        if (!qemu_file_propagate_error(f, errp) || !commit(opaque)) {
            return false;
        }
    }
    qemu_put_byte(f, QEMU_VM_EOF);

    g_autoptr(JsonGenerator) gen = json_generator_new();
    g_autoptr(JsonNode) root = json_builder_get_root(vmdesc_builder);
    json_generator_set_root(gen, root);
    gsize len;
    g_autofree char *json = json_generator_to_data(gen, &len);
    savevm_put_vmdesc(f, json, len);
    FOREACH_SE(r, se) {
        if (se->ops && se->ops->save_trailer && !se->ops->save_trailer(f, se->opaque, errp)) {
            return false;
        }
    }
    qemu_fflush(f);
    return qemu_file_propagate_error(f, errp);
}

void qemu_savevm_state_cleanup(SaveVMRegistry *r)
{
    SaveStateEntry *se;
    FOREACH_SE(r, se) {
        if (se->ops && se->ops->save_cleanup) {
            se->ops->save_cleanup(se->opaque);
        }
    }
}

/* ------------------------------------------------------------------ */
/* load into the VM                                                    */

typedef struct LoadState {
    SaveVMRegistry *registry;
    ConfigCheckFunc check;
    void *check_opaque;
    LoadWarnFunc warn;
    LoadReturnPath *rp;         /* NULL: this load has no return path to open */
    uint64_t eof_end;           /* the offset after the EOF byte, once read */
} LoadState;

/* One return-path message out, at once: the source may wait for it. */
static bool rp_flush(LoadReturnPath *rp, GError **errp)
{
    qemu_fflush(rp->f);
    if (!qemu_file_propagate_error(rp->f, errp)) {
        g_prefix_error(errp, "Unable to write to the return path: ");
        return false;
    }
    return true;
}

static bool load_open_return_path(LoadState *ls, GError **errp)
{
    LoadReturnPath *rp = ls->rp;

    if (!rp) {
        error_setg(errp, "CMD_OPEN_RETURN_PATH failed: this load has no return path");
        return false;
    }
    if (rp->opened) {
        /* as QEMU: a second one is only reported */
        if (ls->warn) {
            ls->warn(ls->check_opaque, "CMD_OPEN_RETURN_PATH called when RP already open");
        }
        return true;
    }
    rp->opened = true;
    /*
     * As QEMU, also in a file or a pipe (a stream a source with
     * return-path wrote there): it opens, and what it would carry (PONG,
     * the ack, SHUT) goes nowhere.
     */
    if (!rp->ioc) {
        return true;
    }
    rp->f = qemu_file_new_output(rp->ioc, 0);
    /* no device here waits for an approval: the switchover is acknowledged at once */
    if (rp->switchover_ack) {
        savevm_put_rp_switchover_ack(rp->f);
    }
    return rp_flush(rp, errp);
}

/* As QEMU: all state is in by then, so a missing vmdesc is only reported. */
static bool load_no_vmdesc(void *opaque, const char *msg, GError **errp)
{
    LoadState *ls = opaque;

    if (ls->warn) {
        ls->warn(ls->check_opaque, msg);
    } else {
        g_printerr("%s\n", msg);
    }
    return true;
}

static bool load_eof(void *opaque, QEMUFile *f, GError **errp)
{
    ((LoadState *)opaque)->eof_end = qemu_file_tell(f);
    return true;
}

static SaveStateEntry *find_se(SaveVMRegistry *r, const char *idstr, uint32_t instance)
{
    SaveStateEntry *se;
    FOREACH_SE(r, se) {
        if (strcmp(se->idstr, idstr) == 0 && se->instance_id == instance) {
            return se;
        }
    }
    return NULL;
}

static bool load_configuration(void *opaque, QEMUFile *f, const StreamConfig *cfg, GError **errp)
{
    LoadState *ls = opaque;
    return ls->check ? ls->check(ls->check_opaque, cfg, errp) : true;
}

static bool load_section(void *opaque, QEMUFile *f, const SectionInfo *si, GError **errp)
{
    LoadState *ls = opaque;
    SaveStateEntry *se = find_se(ls->registry, si->idstr, si->instance_id);
    if (!se) {
        error_setg(errp, "Unknown section or instance '%s' %u. Make sure that your current VM "
                   "setup matches your saved VM setup, including any hotplugged devices",
                   si->idstr, si->instance_id);
        return false;
    }
    /* as QEMU: every section's version before its body, a device's too */
    if (si->version_id > se->version_id) {
        error_setg(errp, "savevm: unsupported version %u for '%s' v%u",
                   si->version_id, si->idstr, se->version_id);
        return false;
    }
    if (se->vmsd) {
        if (si->type != QEMU_VM_SECTION_FULL) {
            error_setg(errp, "Device '%s' sent as a %s section", si->idstr,
                       savevm_section_type_name(si->type));
            return false;
        }
        if (!vmstate_load_state(f, se->vmsd, se->opaque, si->version_id, errp)) {
            g_prefix_error(errp, "error while loading state for instance 0x%x of device '%s': ",
                           si->instance_id, si->idstr);
            return false;
        }
        return true;
    }
    if (!se->ops->load_state(f, se->opaque, si, errp)) {
        return false;
    }
    return true;
}

/* QEMU's commands as its loader knows them: name, and payload length (-1: any). */
static const struct {
    const char *name;
    int len;
} load_cmds[] = {
    [MIG_CMD_OPEN_RETURN_PATH] = { "OPEN_RETURN_PATH", 0 },
    [MIG_CMD_PING] = { "PING", 4 },
    [MIG_CMD_POSTCOPY_ADVISE] = { "POSTCOPY_ADVISE", -1 },
    [MIG_CMD_POSTCOPY_LISTEN] = { "POSTCOPY_LISTEN", 0 },
    [MIG_CMD_POSTCOPY_RUN] = { "POSTCOPY_RUN", 0 },
    [MIG_CMD_POSTCOPY_RAM_DISCARD] = { "POSTCOPY_RAM_DISCARD", -1 },
    [MIG_CMD_PACKAGED] = { "PACKAGED", 4 },
    [8] = { "ENABLE_COLO", 0 },
    [9] = { "POSTCOPY_RESUME", 0 },
    [10] = { "RECV_BITMAP", -1 },
    [MIG_CMD_SWITCHOVER_START] = { "SWITCHOVER_START", 0 },
};

/*
 * A command in a stream mapram-vm loads, checked as QEMU's loader checks
 * it and with its words.  The return path opens on a socket only (PING
 * is answered on it); no postcopy or COLO stream is taken.
 */
static bool load_command(void *opaque, QEMUFile *f, uint16_t cmd, const uint8_t *data,
                         uint16_t len, GError **errp)
{
    LoadState *ls = opaque;

    if (cmd == 0 || cmd >= G_N_ELEMENTS(load_cmds)) {
        error_setg(errp, "MIG_CMD 0x%x unknown (len 0x%x)", cmd, len);
        return false;
    }
    if (load_cmds[cmd].len >= 0 && load_cmds[cmd].len != len) {
        error_setg(errp, "%s received with bad length - expecting %d, got %u",
                   load_cmds[cmd].name, load_cmds[cmd].len, len);
        return false;
    }
    switch (cmd) {
    case MIG_CMD_SWITCHOVER_START:
        return true;
    case MIG_CMD_OPEN_RETURN_PATH:
        return load_open_return_path(ls, errp);
    case MIG_CMD_PING: {
        uint32_t value = ldl_be_p(data);
        if (!ls->rp || !ls->rp->opened) {
            error_setg(errp, "CMD_PING (0x%x) received with no return path", value);
            return false;
        }
        if (!ls->rp->f) {
            return true;                /* nowhere to answer: a file or a pipe */
        }
        savevm_put_rp_pong(ls->rp->f, value);
        return rp_flush(ls->rp, errp);
    }
    default:
        error_setg(errp, "MIG_CMD %s is not supported by mapram-vm (len 0x%x)",
                   load_cmds[cmd].name, len);
        return false;
    }
}

bool qemu_loadvm_state(SaveVMRegistry *r, QEMUFile *f, const StreamFraming *framing,
                       ConfigCheckFunc check_config, LoadWarnFunc warn, void *check_opaque,
                       LoadReturnPath *rp, GError **errp)
{
    static const StreamVisitor visitor = {
        .configuration = load_configuration,
        .section = load_section,
        .command = load_command,
        .eof = load_eof,
        .no_vmdesc = load_no_vmdesc,
    };
    LoadState ls = { .registry = r, .check = check_config, .check_opaque = check_opaque,
                     .warn = warn, .rp = rp };
    SaveStateEntry *se;
    bool ok = true;

    FOREACH_SE(r, se) {
        if (se->ops && se->ops->load_setup && !se->ops->load_setup(se->opaque, errp)) {
            return false;
        }
    }
    ok = savevm_walk_stream_framed(f, &visitor, &ls, true, framing, errp);
    if (ok) {
        FOREACH_SE(r, se) {
            if (se->ops && se->ops->load_complete &&
                !se->ops->load_complete(f, se->opaque, ls.eof_end, errp)) {
                ok = false;
                break;
            }
        }
    }
    FOREACH_SE(r, se) {
        if (se->ops && se->ops->load_cleanup) {
            se->ops->load_cleanup(se->opaque);
        }
    }
    return ok;
}
