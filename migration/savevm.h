/*
 * The QEVM stream codec: header, configuration, sections with footers,
 * commands, EOF and vmdesc (reference §1), plus the registry of state
 * handlers.  One walker (savevm_walk_stream) parses every stream; the VM's
 * loader and the mapram tool plug their own visitors into it.
 */
#ifndef MIGRATION_SAVEVM_H
#define MIGRATION_SAVEVM_H

#include <glib.h>
#include <json-glib/json-glib.h>
#include <stdbool.h>
#include <stdint.h>
#include "qemu-file.h"
#include "migration/vmstate.h"

#define QEMU_VM_FILE_MAGIC          0x5145564d
#define QEMU_VM_FILE_VERSION_COMPAT 0x00000002
#define QEMU_VM_FILE_VERSION        0x00000003

enum {
    QEMU_VM_EOF             = 0x00,
    QEMU_VM_SECTION_START   = 0x01,
    QEMU_VM_SECTION_PART    = 0x02,
    QEMU_VM_SECTION_END     = 0x03,
    QEMU_VM_SECTION_FULL    = 0x04,
    QEMU_VM_SUBSECTION      = 0x05,
    QEMU_VM_VMDESCRIPTION   = 0x06,
    QEMU_VM_CONFIGURATION   = 0x07,
    QEMU_VM_COMMAND         = 0x08,
    QEMU_VM_SECTION_FOOTER  = 0x7e,
};

enum {
    MIG_CMD_OPEN_RETURN_PATH = 1,
    MIG_CMD_PING = 2,
    MIG_CMD_POSTCOPY_ADVISE = 3,
    MIG_CMD_POSTCOPY_LISTEN = 4,
    MIG_CMD_POSTCOPY_RUN = 5,
    MIG_CMD_POSTCOPY_RAM_DISCARD = 6,
    MIG_CMD_PACKAGED = 7,
    MIG_CMD_SWITCHOVER_START = 11,
};

const char *savevm_section_type_name(int type);

/* ---- configuration section (reference §1.3) ---- */
typedef struct StreamConfig {
    char machine[256];
    bool has_page_bits;
    uint32_t page_bits;
    GPtrArray *caps;            /* char *, in stream order */
    bool has_uuid;
    uint8_t uuid[16];
} StreamConfig;

void stream_config_clear(StreamConfig *c);
void savevm_put_configuration(QEMUFile *f, const StreamConfig *c, JsonBuilder *vmdesc);
bool savevm_get_configuration(QEMUFile *f, StreamConfig *c, GError **errp);

/* ---- section headers ---- */
void savevm_put_section_full_header(QEMUFile *f, uint8_t type, uint32_t section_id,
                                    const char *idstr, uint32_t instance, uint32_t version);
void savevm_put_section_short_header(QEMUFile *f, uint8_t type, uint32_t section_id);
void savevm_put_section_footer(QEMUFile *f, uint32_t section_id);
void savevm_put_command(QEMUFile *f, uint16_t cmd, const void *data, uint16_t len);

/*
 * ---- postcopy commands (postcopy reference §2) ----
 * What a postcopy source sends, in order: OPEN_RETURN_PATH, ADVISE, the
 * ram START, then PACKAGED whose package (a header-less sub-stream built
 * in its own buffer) is LISTEN, the device FULL sections, an optional
 * PING, RUN; then ram PART/END sections with page records, and EOF.
 */
void savevm_put_open_return_path(QEMUFile *f);
void savevm_put_ping(QEMUFile *f, uint32_t value);
/* summary: the OR of every block's page size; tps: the target page size. */
void savevm_put_postcopy_advise(QEMUFile *f, uint64_t summary, uint64_t tps);
/*
 * POSTCOPY_RAM_DISCARD of n ranges (starts[i], lengths[i], bytes) of block
 * idstr, n <= 12 as QEMU sends.  A source that sent no page before LISTEN
 * still sends one: QEMU 7.2 takes a LISTEN that arrives straight
 * after ADVISE down a path that leaves its postcopy state at DISCARD
 * (postcopy_ram_prepare_discard sets it after LISTEN set LISTENING),
 * so the listen thread loads pages with the precopy loader, which writes
 * into registered memory and deadlocks on its own fault.
 */
void savevm_put_postcopy_ram_discard(QEMUFile *f, const char *idstr, const uint64_t *starts,
                                     const uint64_t *lengths, unsigned n);
void savevm_put_postcopy_listen(QEMUFile *f);
void savevm_put_postcopy_run(QEMUFile *f);
/* The PACKAGED record, then the len bytes of package right after it. */
void savevm_put_packaged(QEMUFile *f, const void *package, uint32_t len);

/*
 * ---- the return path (postcopy reference §3) ----
 * Destination -> source on the same connection: be16 type, be16 len,
 * payload.  A REQ_PAGES names no block: it is for the block of the
 * previous REQ_PAGES_ID, which the decoder (one per connection) keeps,
 * as the encoder keeps the last block it named.
 */
enum {
    MIG_RP_MSG_SHUT = 1,
    MIG_RP_MSG_PONG = 2,
    MIG_RP_MSG_REQ_PAGES_ID = 3,
    MIG_RP_MSG_REQ_PAGES = 4,
    MIG_RP_MSG_RECV_BITMAP = 5,
    MIG_RP_MSG_RESUME_ACK = 6,
    MIG_RP_MSG_SWITCHOVER_ACK = 7,
    MIG_RP_MSG_MAX = 8,
};

typedef struct RpMessage {
    uint16_t type;              /* MIG_RP_MSG_*; 0 = the peer closed at a message boundary */
    uint32_t value;             /* SHUT (0 = ok), PONG, RESUME_ACK */
    char idstr[256];            /* REQ_PAGES*: the block (the previous one for REQ_PAGES) */
    uint64_t start;             /* REQ_PAGES*: bytes into the block */
    uint32_t len;               /* REQ_PAGES*: bytes */
} RpMessage;

typedef struct RpCodec {
    char last_block[256];       /* the block the last REQ_PAGES_ID named; "" = none yet */
} RpCodec;

/*
 * Read one message into m.  Messages QEMU's source would refuse (type 0 or
 * unknown, a wrong fixed length, over 512 bytes, REQ_PAGES with no block
 * named before) are errors with its texts.  RECV_BITMAP (recovery only)
 * is refused.  An end of stream at a message boundary is m->type 0.
 */
bool savevm_get_rp_message(RpCodec *c, QEMUFile *f, RpMessage *m, GError **errp);
void savevm_put_rp_shut(QEMUFile *f, uint32_t value);
void savevm_put_rp_pong(QEMUFile *f, uint32_t value);
void savevm_put_rp_switchover_ack(QEMUFile *f);
/* REQ_PAGES_ID when idstr differs from the last block named, else REQ_PAGES. */
void savevm_put_rp_req_pages(RpCodec *c, QEMUFile *f, const char *idstr, uint64_t start,
                             uint32_t len);
const char *savevm_rp_message_name(uint16_t type);

/* ---- walking a stream ---- */
typedef struct SectionInfo {
    uint8_t type;               /* START/PART/END/FULL */
    uint32_t section_id;
    char idstr[256];
    uint32_t instance_id;
    uint32_t version_id;
    off_t header_offset;        /* absolute offset of the type byte */
} SectionInfo;

typedef struct StreamVisitor {
    /* After the configuration section was parsed. */
    bool (*configuration)(void *opaque, QEMUFile *f, const StreamConfig *cfg, GError **errp);
    /* Consume the body of a section (not its footer).  Mandatory. */
    bool (*section)(void *opaque, QEMUFile *f, const SectionInfo *si, GError **errp);
    /* After the footer was checked. */
    bool (*section_done)(void *opaque, QEMUFile *f, const SectionInfo *si, GError **errp);
    bool (*command)(void *opaque, QEMUFile *f, uint16_t cmd, const uint8_t *data,
                    uint16_t len, GError **errp);
    bool (*eof)(void *opaque, QEMUFile *f, GError **errp);
    /* vmdesc JSON (NUL-terminated copy) if present. */
    bool (*vmdesc)(void *opaque, const char *json, uint32_t len, GError **errp);
    /*
     * Optional: what follows the EOF is not a whole vmdesc (another byte,
     * a vmdesc cut short or implausible; msg says which, as the walk's
     * error would).  Without this callback the walk fails.
     */
    bool (*no_vmdesc)(void *opaque, const char *msg, GError **errp);
} StreamVisitor;

/*
 * Parse the header, configuration and every section until EOF (and, with
 * read_vmdesc, the optional vmdesc: a live incoming stream may end at the
 * EOF).  A failure, the visitor's included, comes back prefixed with what
 * was being read and where it starts, e.g. "PART section 'ram' (id 2) at
 * offset 4711: Can't find block pc.ram", "Configuration at offset 8: ...",
 * "Command at offset 900: ..."; the visitor and the parsers below it name
 * no stream offsets of their own.  A cut at a record boundary is
 * "Unexpected end of stream at offset N".
 */
bool savevm_walk_stream(QEMUFile *f, const StreamVisitor *v, void *opaque,
                        bool read_vmdesc, GError **errp);

/*
 * How a stream is framed, as QEMU's -global migration.send-configuration
 * and send-section-footer set it on both sides (both on by default; old
 * QEMU machine types turn them off).  savevm_walk_stream expects both.
 */
typedef struct StreamFraming {
    bool configuration;         /* a configuration section follows the header */
    bool footers;               /* each section ends with its footer */
} StreamFraming;

bool savevm_walk_stream_framed(QEMUFile *f, const StreamVisitor *v, void *opaque,
                               bool read_vmdesc, const StreamFraming *framing,
                               GError **errp);

/*
 * Skip (and optionally copy into out) the body of a FULL section whose
 * layout we do not know, by finding its footer: 0x7e + be32 section_id
 * followed by a plausible next record.  For tools reading foreign streams.
 */
bool savevm_skip_unknown_body(QEMUFile *f, const SectionInfo *si, GByteArray *out,
                              GError **errp);

/* Re-emit a section header as si describes it (full for START/FULL). */
void savevm_put_section_header(QEMUFile *f, const SectionInfo *si);
/* Copy a section we do not parse from in to out: header, body, footer. */
bool savevm_copy_unknown_section(QEMUFile *in, QEMUFile *out, const SectionInfo *si,
                                 GError **errp);
/* 0x06, be32 len, the JSON. */
void savevm_put_vmdesc(QEMUFile *f, const char *json, uint32_t len);

/*
 * ---- handler registry (one per Migration) ----
 * Filled before the first migration (the "ram" handlers, "globalstate",
 * the host's devices); read-only while a migration runs.
 */
typedef struct SaveVMRegistry SaveVMRegistry;

typedef struct SaveVMHandlers {
    bool (*save_setup)(QEMUFile *f, void *opaque, GError **errp);
    /* <0 error (errp set), 0 more to do, 1 this pass is done */
    int (*save_iterate)(QEMUFile *f, void *opaque, GError **errp);
    bool (*save_complete)(QEMUFile *f, void *opaque, GError **errp);
    /* Optional: after the vmdesc, where QEMU stops reading (the checksum table). */
    bool (*save_trailer)(QEMUFile *f, void *opaque, GError **errp);
    void (*save_cleanup)(void *opaque);
    uint64_t (*pending)(void *opaque, bool exact);
    bool (*load_setup)(void *opaque, GError **errp);
    bool (*load_state)(QEMUFile *f, void *opaque, const SectionInfo *si, GError **errp);
    /*
     * Optional: after the stream's last record and its vmdesc, before the
     * guest may run; eof_end is the offset just after the EOF byte (0 if
     * the stream ended without one).
     */
    bool (*load_complete)(QEMUFile *f, void *opaque, uint64_t eof_end, GError **errp);
    void (*load_cleanup)(void *opaque);
} SaveVMHandlers;

SaveVMRegistry *savevm_registry_new(void);
void savevm_registry_free(SaveVMRegistry *r);
/* Section ids are given in registration order. */
void savevm_register_live(SaveVMRegistry *r, const char *idstr, uint32_t instance,
                          uint32_t version, const SaveVMHandlers *ops, void *opaque);
void savevm_register_vmstate(SaveVMRegistry *r, const char *idstr, uint32_t instance_id,
                             const VMStateDescription *vmsd, void *opaque);
/*
 * The n-th registered device (an entry with a VMStateDescription), in
 * registration order; false past the last.  For tests/fuzz, which loads
 * each device's state on its own.
 */
bool savevm_registry_device(SaveVMRegistry *r, unsigned n, const char **idstr,
                            uint32_t *instance_id, const VMStateDescription **vmsd,
                            void **opaque);

/*
 * The save pipeline, in order, on the migration thread.  vmdesc is the
 * caller's fresh JsonBuilder: the header opens its object, complete
 * closes it and writes the vmdesc after EOF.
 */
/* cfg NULL: no configuration section (-global migration.send-configuration=off) */
void qemu_savevm_state_header(QEMUFile *f, const StreamConfig *cfg, JsonBuilder *vmdesc);
/* footers false: sections end without one (-global migration.send-section-footer=off) */
bool qemu_savevm_state_setup(SaveVMRegistry *r, QEMUFile *f, bool footers, GError **errp);
int qemu_savevm_state_iterate(SaveVMRegistry *r, QEMUFile *f, bool footers,
                              GError **errp);  /* 1 = all done */
uint64_t qemu_savevm_state_pending(SaveVMRegistry *r, bool exact);
/*
 * commit (may be NULL) is called once the device state is in f and
 * flushed, before the EOF: false ends the save there with no error (a
 * cancel won), and no byte of the stream's end is written.  A peer that
 * stalls before the EOF thus blocks the flush while a cancel still wins.
 */
bool qemu_savevm_state_complete(SaveVMRegistry *r, QEMUFile *f, JsonBuilder *vmdesc,
                                bool switchover_cmd, bool footers,
                                bool (*commit)(void *opaque), void *opaque, GError **errp);
void qemu_savevm_state_cleanup(SaveVMRegistry *r);

/*
 * Load a whole stream into the registered handlers and devices.
 * check_config validates the configuration section against the local
 * machine and capabilities.  warn (optional; stderr without it) gets
 * what QEMU only reports and goes on from: what follows the EOF is not a
 * whole vmdesc ("Expected vmdescription section, but got 7", or one cut
 * short).
 */
typedef bool (*ConfigCheckFunc)(void *opaque, const StreamConfig *cfg, GError **errp);
typedef void (*LoadWarnFunc)(void *opaque, const char *msg);
/*
 * A load's return path (QEMU's destination side): OPEN_RETURN_PATH opens
 * f on ioc, the main connection, and sends SWITCHOVER_ACK at once when
 * switchover_ack is on; each PING is answered there.  The caller sends
 * SHUT at the end and closes f.
 */
typedef struct LoadReturnPath {
    IOChannel *ioc;             /* a socket; NULL: nothing to write to (a file, a pipe) */
    bool switchover_ack;        /* capability switchover-ack on this side */
    bool opened;                /* OPEN_RETURN_PATH came (a PING before it is an error) */
    QEMUFile *f;                /* opened on ioc by OPEN_RETURN_PATH, else NULL */
} LoadReturnPath;

bool qemu_loadvm_state(SaveVMRegistry *r, QEMUFile *f, const StreamFraming *framing,
                       ConfigCheckFunc check_config, LoadWarnFunc warn, void *check_opaque,
                       LoadReturnPath *rp, GError **errp);

#endif
