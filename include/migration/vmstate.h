/*
 * Declarative device state (QEMU's VMState model).
 *
 * A device describes its state as a VMStateDescription: named fields at
 * offsets of its struct, each with the first version that carries it,
 * plus subsections sent only when their needed() says so.  The same
 * description drives save, load and the vmdesc JSON.
 *
 *   static const VMStateDescription vmstate_serial = {
 *       .name = "serial", .version_id = 2, .minimum_version_id = 1,
 *       .fields = (const VMStateField[]) {
 *           VMSTATE_UINT64(out_pos, SerialState),
 *           VMSTATE_UINT32_V(flags, SerialState, 2),
 *           VMSTATE_END_OF_LIST()
 *       },
 *       .subsections = (const VMStateDescription * const []) { &vmstate_serial_fifo, NULL },
 *   };
 *   migration_register_vmstate(mig, "serial", 0, &vmstate_serial, s);
 */
#ifndef MIGRATION_VMSTATE_H
#define MIGRATION_VMSTATE_H

#include <glib.h>
#include <json-glib/json-glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct QEMUFile QEMUFile;
typedef struct VMStateDescription VMStateDescription;

typedef enum {
    VMS_TYPE_END = 0,
    VMS_TYPE_BOOL,
    VMS_TYPE_UINT8, VMS_TYPE_UINT16, VMS_TYPE_UINT32, VMS_TYPE_UINT64,
    VMS_TYPE_INT8, VMS_TYPE_INT16, VMS_TYPE_INT32, VMS_TYPE_INT64,
    VMS_TYPE_BUFFER,        /* size bytes, raw */
    VMS_TYPE_UNUSED,        /* size zero bytes on save, skipped on load */
    VMS_TYPE_STRUCT,        /* nested vmsd at offset */
    VMS_TYPE_UINT32_ARRAY,  /* num elements */
} VMStateFieldType;

typedef struct VMStateField {
    const char *name;
    size_t offset;
    VMStateFieldType type;
    size_t size;            /* BUFFER/UNUSED bytes; element size for arrays */
    unsigned num;           /* array length */
    int version_id;         /* first stream version that has this field */
    const VMStateDescription *vmsd;   /* STRUCT */
    bool (*field_exists)(void *opaque, int version_id);
} VMStateField;

struct VMStateDescription {
    const char *name;
    int version_id;
    int minimum_version_id;
    bool (*needed)(void *opaque);                         /* subsections */
    int (*pre_save)(void *opaque);
    int (*pre_load)(void *opaque);
    int (*post_load)(void *opaque, int version_id);       /* -errno on failure */
    const VMStateField *fields;
    const VMStateDescription * const *subsections;       /* NULL-terminated */
};

#define VMSTATE_FIELD_(_f, _st, _t, _sz, _v) \
    { .name = #_f, .offset = offsetof(_st, _f), .type = (_t), .size = (_sz), .version_id = (_v) }
#define VMSTATE_BOOL_V(f, st, v)   VMSTATE_FIELD_(f, st, VMS_TYPE_BOOL, 1, v)
#define VMSTATE_UINT8_V(f, st, v)  VMSTATE_FIELD_(f, st, VMS_TYPE_UINT8, 1, v)
#define VMSTATE_UINT16_V(f, st, v) VMSTATE_FIELD_(f, st, VMS_TYPE_UINT16, 2, v)
#define VMSTATE_UINT32_V(f, st, v) VMSTATE_FIELD_(f, st, VMS_TYPE_UINT32, 4, v)
#define VMSTATE_UINT64_V(f, st, v) VMSTATE_FIELD_(f, st, VMS_TYPE_UINT64, 8, v)
#define VMSTATE_INT32_V(f, st, v)  VMSTATE_FIELD_(f, st, VMS_TYPE_INT32, 4, v)
#define VMSTATE_INT64_V(f, st, v)  VMSTATE_FIELD_(f, st, VMS_TYPE_INT64, 8, v)
#define VMSTATE_BOOL(f, st)   VMSTATE_BOOL_V(f, st, 0)
#define VMSTATE_UINT8(f, st)  VMSTATE_UINT8_V(f, st, 0)
#define VMSTATE_UINT16(f, st) VMSTATE_UINT16_V(f, st, 0)
#define VMSTATE_UINT32(f, st) VMSTATE_UINT32_V(f, st, 0)
#define VMSTATE_UINT64(f, st) VMSTATE_UINT64_V(f, st, 0)
#define VMSTATE_INT32(f, st)  VMSTATE_INT32_V(f, st, 0)
#define VMSTATE_INT64(f, st)  VMSTATE_INT64_V(f, st, 0)
#define VMSTATE_BUFFER(f, st) \
    { .name = #f, .offset = offsetof(st, f), .type = VMS_TYPE_BUFFER, \
      .size = sizeof(((st *)0)->f) }
#define VMSTATE_UNUSED(n) { .name = "unused", .type = VMS_TYPE_UNUSED, .size = (n) }
#define VMSTATE_UINT32_ARRAY(f, st, n) \
    { .name = #f, .offset = offsetof(st, f), .type = VMS_TYPE_UINT32_ARRAY, \
      .size = 4, .num = (n) }
#define VMSTATE_STRUCT(f, st, v, vmsd_) \
    { .name = #f, .offset = offsetof(st, f), .type = VMS_TYPE_STRUCT, \
      .version_id = (v), .vmsd = &(vmsd_) }
#define VMSTATE_END_OF_LIST() { .name = NULL }

/* Save fields + subsections; vmdesc (may be NULL) receives the JSON description. */
bool vmstate_save_state(QEMUFile *f, const VMStateDescription *vmsd, void *opaque,
                        JsonBuilder *vmdesc, GError **errp);
bool vmstate_load_state(QEMUFile *f, const VMStateDescription *vmsd, void *opaque,
                        int version_id, GError **errp);

#endif
