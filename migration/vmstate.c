/*
 * VMState interpreter: save, load and describe device state from a
 * declarative field list.  Wire format and vmdesc JSON follow QEMU's.
 */
#include "migration/vmstate.h"
#include "qemu-file.h"
#include "savevm.h"
#include "util/error.h"
#include <string.h>

static bool field_exists(const VMStateField *fld, void *opaque, int version_id)
{
    if (fld->field_exists) {
        return fld->field_exists(opaque, version_id);
    }
    return fld->version_id <= version_id;
}

static const char *field_type_name(const VMStateField *fld)
{
    switch (fld->type) {
    case VMS_TYPE_BOOL: return "bool";
    case VMS_TYPE_UINT8: return "uint8";
    case VMS_TYPE_UINT16: return "uint16";
    case VMS_TYPE_UINT32: case VMS_TYPE_UINT32_ARRAY: return "uint32";
    case VMS_TYPE_UINT64: return "uint64";
    case VMS_TYPE_INT8: return "int8";
    case VMS_TYPE_INT16: return "int16";
    case VMS_TYPE_INT32: return "int32";
    case VMS_TYPE_INT64: return "int64";
    case VMS_TYPE_BUFFER: return "buffer";
    case VMS_TYPE_UNUSED: return "unused_buffer";
    case VMS_TYPE_STRUCT: return "struct";
    default: return "unknown";
    }
}

static void put_scalar(QEMUFile *f, const VMStateField *fld, const uint8_t *p)
{
    switch (fld->type) {
    case VMS_TYPE_BOOL: qemu_put_byte(f, *(const bool *)p ? 1 : 0); break;
    case VMS_TYPE_UINT8: case VMS_TYPE_INT8: qemu_put_byte(f, *p); break;
    case VMS_TYPE_UINT16: case VMS_TYPE_INT16: qemu_put_be16(f, *(const uint16_t *)p); break;
    case VMS_TYPE_UINT32: case VMS_TYPE_INT32: case VMS_TYPE_UINT32_ARRAY:
        qemu_put_be32(f, *(const uint32_t *)p); break;
    case VMS_TYPE_UINT64: case VMS_TYPE_INT64: qemu_put_be64(f, *(const uint64_t *)p); break;
    case VMS_TYPE_BUFFER: qemu_put_buffer(f, p, fld->size); break;
    case VMS_TYPE_UNUSED: {
        uint8_t zero[64] = { 0 };
        for (size_t left = fld->size; left; ) {
            size_t n = MIN(left, sizeof(zero));
            qemu_put_buffer(f, zero, n);
            left -= n;
        }
        break;
    }
    default: g_assert_not_reached();
    }
}

static bool get_scalar(QEMUFile *f, const VMStateField *fld, uint8_t *p, GError **errp)
{
    switch (fld->type) {
    case VMS_TYPE_BOOL: {
        uint8_t v;
        if (!qemu_get_byte(f, &v, errp)) {
            return false;
        }
        *(bool *)p = v != 0;              /* as QEMU: any byte but 0 is true */
        return true;
    }
    case VMS_TYPE_UINT8: case VMS_TYPE_INT8: return qemu_get_byte(f, p, errp);
    case VMS_TYPE_UINT16: case VMS_TYPE_INT16: return qemu_get_be16(f, (uint16_t *)p, errp);
    case VMS_TYPE_UINT32: case VMS_TYPE_INT32: case VMS_TYPE_UINT32_ARRAY:
        return qemu_get_be32(f, (uint32_t *)p, errp);
    case VMS_TYPE_UINT64: case VMS_TYPE_INT64: return qemu_get_be64(f, (uint64_t *)p, errp);
    case VMS_TYPE_BUFFER: return qemu_get_buffer(f, p, fld->size, errp);
    case VMS_TYPE_UNUSED: return qemu_file_skip(f, fld->size, errp);
    default: g_assert_not_reached();
    }
}

static bool subsections_save(QEMUFile *f, const VMStateDescription *vmsd, void *opaque,
                             JsonBuilder *vmdesc, GError **errp)
{
    bool started = false;
    for (const VMStateDescription * const *sub = vmsd->subsections; sub && *sub; sub++) {
        const VMStateDescription *s = *sub;
        if (s->needed && !s->needed(opaque)) {
            continue;
        }
        if (vmdesc) {
            if (!started) {
                json_builder_set_member_name(vmdesc, "subsections");
                json_builder_begin_array(vmdesc);
                started = true;
            }
            json_builder_begin_object(vmdesc);
        }
        qemu_put_byte(f, QEMU_VM_SUBSECTION);
        qemu_put_counted_string(f, s->name);
        qemu_put_be32(f, s->version_id);
        if (!vmstate_save_state(f, s, opaque, vmdesc, errp)) {
            return false;
        }
        if (vmdesc) {
            json_builder_end_object(vmdesc);
        }
    }
    if (started) {
        json_builder_end_array(vmdesc);
    }
    return true;
}

bool vmstate_save_state(QEMUFile *f, const VMStateDescription *vmsd, void *opaque,
                        JsonBuilder *vmdesc, GError **errp)
{
    if (vmsd->pre_save && vmsd->pre_save(opaque) != 0) {
        error_setg(errp, "pre-save failed: %s", vmsd->name);
        return false;
    }
    if (vmdesc) {
        json_builder_set_member_name(vmdesc, "vmsd_name");
        json_builder_add_string_value(vmdesc, vmsd->name);
        json_builder_set_member_name(vmdesc, "version");
        json_builder_add_int_value(vmdesc, vmsd->version_id);
        json_builder_set_member_name(vmdesc, "fields");
        json_builder_begin_array(vmdesc);
    }
    for (const VMStateField *fld = vmsd->fields; fld && fld->name; fld++) {
        if (!field_exists(fld, opaque, vmsd->version_id)) {
            continue;
        }
        uint8_t *p = (uint8_t *)opaque + fld->offset;
        unsigned n = fld->type == VMS_TYPE_UINT32_ARRAY ? fld->num : 1;
        uint64_t before = qemu_file_transferred(f);
        if (vmdesc) {
            json_builder_begin_object(vmdesc);
            json_builder_set_member_name(vmdesc, "name");
            json_builder_add_string_value(vmdesc, fld->name);
            if (n > 1) {
                json_builder_set_member_name(vmdesc, "array_len");
                json_builder_add_int_value(vmdesc, n);
            }
            json_builder_set_member_name(vmdesc, "type");
            json_builder_add_string_value(vmdesc, field_type_name(fld));
            if (fld->type == VMS_TYPE_STRUCT) {
                json_builder_set_member_name(vmdesc, "struct");
                json_builder_begin_object(vmdesc);
            }
        }
        if (fld->type == VMS_TYPE_STRUCT) {
            if (!vmstate_save_state(f, fld->vmsd, p, vmdesc, errp)) {
                g_prefix_error(errp, "Save of field %s/%s failed: ", vmsd->name, fld->name);
                return false;
            }
        } else {
            for (unsigned i = 0; i < n; i++) {
                put_scalar(f, fld, p + i * fld->size);
            }
        }
        if (vmdesc) {
            if (fld->type == VMS_TYPE_STRUCT) {
                json_builder_end_object(vmdesc);
            }
            json_builder_set_member_name(vmdesc, "size");
            json_builder_add_int_value(vmdesc, (qemu_file_transferred(f) - before) / n);
            json_builder_end_object(vmdesc);
        }
    }
    if (vmdesc) {
        json_builder_end_array(vmdesc);
    }
    return subsections_save(f, vmsd, opaque, vmdesc, errp);
}

static const VMStateDescription *find_subsection(const VMStateDescription *vmsd,
                                                 const char *name)
{
    for (const VMStateDescription * const *s = vmsd->subsections; s && *s; s++) {
        if (strcmp((*s)->name, name) == 0) {
            return *s;
        }
    }
    return NULL;
}

static bool subsections_load(QEMUFile *f, const VMStateDescription *vmsd, void *opaque,
                             GError **errp)
{
    size_t plen = strlen(vmsd->name);
    while (qemu_peek_byte(f, 0) == QEMU_VM_SUBSECTION) {
        int len = qemu_peek_byte(f, 1);
        char name[257];
        if (len < 0 || (size_t)len < plen + 1) {
            return true;
        }
        if (qemu_peek_buffer(f, name, len, 2) != (size_t)len) {
            return true;
        }
        name[len] = 0;
        if (strncmp(name, vmsd->name, plen) != 0) {
            return true;    /* belongs to the parent, not to us */
        }
        const VMStateDescription *sub = find_subsection(vmsd, name);
        if (!sub) {
            error_setg(errp, "VM subsection '%s' in '%s' does not exist", name, vmsd->name);
            return false;
        }
        uint32_t version;
        if (!qemu_file_skip(f, 2 + len, errp) || !qemu_get_be32(f, &version, errp) ||
            !vmstate_load_state(f, sub, opaque, version, errp)) {
            return false;
        }
    }
    return true;
}

bool vmstate_load_state(QEMUFile *f, const VMStateDescription *vmsd, void *opaque,
                        int version_id, GError **errp)
{
    if (version_id > vmsd->version_id) {
        error_setg(errp, "%s: incoming version_id %d is too new for local version_id %d",
                   vmsd->name, version_id, vmsd->version_id);
        return false;
    }
    if (version_id < vmsd->minimum_version_id) {
        error_setg(errp, "%s: incoming version_id %d is too old for local minimum version_id %d",
                   vmsd->name, version_id, vmsd->minimum_version_id);
        return false;
    }
    if (vmsd->pre_load) {
        int ret = vmsd->pre_load(opaque);
        if (ret) {
            error_setg(errp, "pre load hook failed for: '%s', version_id: %d, "
                       "minimum version_id: %d, ret: %d", vmsd->name, vmsd->version_id,
                       vmsd->minimum_version_id, ret);
            return false;
        }
    }
    for (const VMStateField *fld = vmsd->fields; fld && fld->name; fld++) {
        if (!field_exists(fld, opaque, version_id)) {
            continue;
        }
        uint8_t *p = (uint8_t *)opaque + fld->offset;
        bool ok;
        if (fld->type == VMS_TYPE_STRUCT) {
            ok = vmstate_load_state(f, fld->vmsd, p, fld->vmsd->version_id, errp);
        } else {
            unsigned n = fld->type == VMS_TYPE_UINT32_ARRAY ? fld->num : 1;
            ok = true;
            for (unsigned i = 0; i < n && ok; i++) {
                ok = get_scalar(f, fld, p + i * fld->size, errp);
            }
        }
        if (!ok) {
            g_prefix_error(errp, "Failed to load %s:%s: ", vmsd->name, fld->name);
            return false;
        }
    }
    if (!subsections_load(f, vmsd, opaque, errp)) {
        return false;
    }
    if (vmsd->post_load) {
        int ret = vmsd->post_load(opaque, version_id);
        if (ret < 0) {
            error_setg(errp, "post load hook failed for: %s, version_id: %d, "
                       "minimum_version: %d, ret: %d", vmsd->name, version_id,
                       vmsd->minimum_version_id, ret);
            return false;
        }
    }
    return true;
}
