/*
 * VMState in process: the wire bytes of every field type (big-endian, as
 * QEMU writes them), versioned fields, version checks, subsections,
 * post_load failures and the vmdesc JSON a description produces.
 */
#include <errno.h>
#include <string.h>

#include "io/channel.h"
#include "migration/qemu-file.h"
#include "migration/savevm.h"
#include "migration/vmstate.h"

typedef struct Inner {
    uint32_t a;
    uint16_t b;
} Inner;

typedef struct Dev {
    bool flag;
    uint8_t u8;
    uint16_t u16;
    uint32_t u32;
    uint64_t u64;
    int8_t i8;
    int16_t i16;
    int32_t i32;
    int64_t i64;
    uint8_t buf[5];
    uint32_t arr[3];
    Inner inner;
    uint32_t since_v2;
    /* subsection "dev/sub" */
    bool sub_needed;
    uint32_t sub_val;
    /* hooks */
    int post_load_ret;
    int post_load_calls;
    int post_load_version;
} Dev;

static const VMStateDescription vmstate_inner = {
    .name = "inner",
    .version_id = 1,
    .minimum_version_id = 1,
    .fields = (const VMStateField[]) {
        VMSTATE_UINT32(a, Inner),
        VMSTATE_UINT16(b, Inner),
        VMSTATE_END_OF_LIST()
    },
};

static bool sub_needed(void *opaque)
{
    return ((Dev *)opaque)->sub_needed;
}

static const VMStateDescription vmstate_dev_sub = {
    .name = "dev/sub",
    .version_id = 1,
    .minimum_version_id = 1,
    .needed = sub_needed,
    .fields = (const VMStateField[]) {
        VMSTATE_UINT32(sub_val, Dev),
        VMSTATE_END_OF_LIST()
    },
};

static int dev_post_load(void *opaque, int version_id)
{
    Dev *d = opaque;
    d->post_load_calls++;
    d->post_load_version = version_id;
    return d->post_load_ret;
}

#define DEV_FIELDS \
    VMSTATE_BOOL(flag, Dev), \
    VMSTATE_UINT8(u8, Dev), \
    VMSTATE_UINT16(u16, Dev), \
    VMSTATE_UINT32(u32, Dev), \
    VMSTATE_UINT64(u64, Dev), \
    VMSTATE_FIELD_(i8, Dev, VMS_TYPE_INT8, 1, 0), \
    VMSTATE_FIELD_(i16, Dev, VMS_TYPE_INT16, 2, 0), \
    VMSTATE_INT32(i32, Dev), \
    VMSTATE_INT64(i64, Dev), \
    VMSTATE_BUFFER(buf, Dev), \
    VMSTATE_UNUSED(3), \
    VMSTATE_UINT32_ARRAY(arr, Dev, 3), \
    VMSTATE_STRUCT(inner, Dev, 0, vmstate_inner), \
    VMSTATE_UINT32_V(since_v2, Dev, 2)

static const VMStateDescription vmstate_dev = {
    .name = "dev",
    .version_id = 2,
    .minimum_version_id = 1,
    .post_load = dev_post_load,
    .fields = (const VMStateField[]) { DEV_FIELDS, VMSTATE_END_OF_LIST() },
    .subsections = (const VMStateDescription * const []) { &vmstate_dev_sub, NULL },
};

/* The same device as an older build saw it: version 1, no since_v2. */
static const VMStateDescription vmstate_dev_v1 = {
    .name = "dev",
    .version_id = 1,
    .minimum_version_id = 1,
    .fields = (const VMStateField[]) { DEV_FIELDS, VMSTATE_END_OF_LIST() },
    .subsections = (const VMStateDescription * const []) { &vmstate_dev_sub, NULL },
};

static void dev_fill(Dev *d)
{
    *d = (Dev) {
        .flag = true, .u8 = 0xab, .u16 = 0x1234, .u32 = 0x89abcdef,
        .u64 = 0x0102030405060708ull, .i8 = -2, .i16 = -3, .i32 = -4, .i64 = -5,
        .buf = { 'h', 'e', 'l', 'l', 'o' }, .arr = { 1, 2, 0xfffffffe },
        .inner = { .a = 0xcafe, .b = 0xbeef }, .since_v2 = 0x22222222,
        .sub_val = 0x5ab5ab,
    };
}

/* The bytes QEMU's VMState writes for dev_fill() at version 1 (no since_v2). */
static const uint8_t dev_v1_wire[] = {
    0x01,                                           /* flag */
    0xab,                                           /* u8 */
    0x12, 0x34,                                     /* u16 */
    0x89, 0xab, 0xcd, 0xef,                         /* u32 */
    0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, /* u64 */
    0xfe,                                           /* i8 -2 */
    0xff, 0xfd,                                     /* i16 -3 */
    0xff, 0xff, 0xff, 0xfc,                         /* i32 -4 */
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfb, /* i64 -5 */
    'h', 'e', 'l', 'l', 'o',                        /* buf */
    0, 0, 0,                                        /* unused */
    0, 0, 0, 1, 0, 0, 0, 2, 0xff, 0xff, 0xff, 0xfe, /* arr */
    0, 0, 0xca, 0xfe, 0xbe, 0xef,                   /* inner */
};
static const uint8_t since_v2_wire[] = { 0x22, 0x22, 0x22, 0x22 };
static const uint8_t sub_wire[] = {
    0x05, 7, 'd', 'e', 'v', '/', 's', 'u', 'b', 0, 0, 0, 1, 0x00, 0x5a, 0xb5, 0xab,
};

/* Save d with vmsd into a new byte array. */
static GByteArray *save(const VMStateDescription *vmsd, Dev *d, JsonBuilder *desc)
{
    g_autoptr(IOChannel) ioc = io_channel_buffer_new(256);
    QEMUFile *f = qemu_file_new_output(ioc, 0);
    GError *err = NULL;
    size_t len;

    g_assert_true(vmstate_save_state(f, vmsd, d, desc, &err));
    g_assert_no_error(err);
    g_assert_true(qemu_fclose(f, &err));
    g_assert_no_error(err);
    const uint8_t *data = io_channel_buffer_data(ioc, &len);
    return g_byte_array_append(g_byte_array_new(), data, len);
}

/* Load bytes into d; returns success, *errp as vmstate_load_state sets it. */
static bool load(const VMStateDescription *vmsd, Dev *d, const uint8_t *data, size_t len,
                 int version_id, bool *at_eof, GError **errp)
{
    g_autoptr(IOChannel) ioc = io_channel_buffer_new_data(data, len);
    QEMUFile *f = qemu_file_new_input(ioc, 0);
    bool ok = vmstate_load_state(f, vmsd, d, version_id, errp);
    if (at_eof) {
        *at_eof = qemu_file_at_eof(f);
    }
    qemu_fclose(f, NULL);
    return ok;
}

static GByteArray *wire(bool with_v2, bool with_sub)
{
    GByteArray *w = g_byte_array_new();
    g_byte_array_append(w, dev_v1_wire, sizeof(dev_v1_wire));
    if (with_v2) {
        g_byte_array_append(w, since_v2_wire, sizeof(since_v2_wire));
    }
    if (with_sub) {
        g_byte_array_append(w, sub_wire, sizeof(sub_wire));
    }
    return w;
}

static void assert_same_state(const Dev *a, const Dev *b)
{
    g_assert_cmpint(a->flag, ==, b->flag);
    g_assert_cmphex(a->u8, ==, b->u8);
    g_assert_cmphex(a->u16, ==, b->u16);
    g_assert_cmphex(a->u32, ==, b->u32);
    g_assert_cmphex(a->u64, ==, b->u64);
    g_assert_cmpint(a->i8, ==, b->i8);
    g_assert_cmpint(a->i16, ==, b->i16);
    g_assert_cmpint(a->i32, ==, b->i32);
    g_assert_cmpint(a->i64, ==, b->i64);
    g_assert_cmpmem(a->buf, sizeof(a->buf), b->buf, sizeof(b->buf));
    g_assert_cmpmem(a->arr, sizeof(a->arr), b->arr, sizeof(b->arr));
    g_assert_cmphex(a->inner.a, ==, b->inner.a);
    g_assert_cmphex(a->inner.b, ==, b->inner.b);
}

static void test_round_trip(void)
{
    Dev src, dst = { 0 };
    GError *err = NULL;
    bool at_eof;

    dev_fill(&src);
    g_autoptr(GByteArray) got = save(&vmstate_dev, &src, NULL);
    g_autoptr(GByteArray) want = wire(true, false);
    g_assert_cmpmem(got->data, got->len, want->data, want->len);

    g_assert_true(load(&vmstate_dev, &dst, got->data, got->len, 2, &at_eof, &err));
    g_assert_no_error(err);
    g_assert_true(at_eof);
    assert_same_state(&src, &dst);
    g_assert_cmphex(dst.since_v2, ==, src.since_v2);
    g_assert_cmphex(dst.sub_val, ==, 0);            /* no subsection sent */
    g_assert_cmpint(dst.post_load_calls, ==, 1);
    g_assert_cmpint(dst.post_load_version, ==, 2);
}

static void test_old_version_keeps_new_field(void)
{
    Dev src, dst = { .since_v2 = 0xdeadbeef };
    GError *err = NULL;
    bool at_eof;

    dev_fill(&src);
    g_autoptr(GByteArray) got = save(&vmstate_dev_v1, &src, NULL);
    g_autoptr(GByteArray) want = wire(false, false);
    g_assert_cmpmem(got->data, got->len, want->data, want->len);

    g_assert_true(load(&vmstate_dev, &dst, got->data, got->len, 1, &at_eof, &err));
    g_assert_no_error(err);
    g_assert_true(at_eof);
    assert_same_state(&src, &dst);
    g_assert_cmphex(dst.since_v2, ==, 0xdeadbeef);  /* absent: untouched */
    g_assert_cmpint(dst.post_load_version, ==, 1);
}

static void test_version_too_new(void)
{
    Dev dst = { 0 };
    GError *err = NULL;
    g_autoptr(GByteArray) w = wire(true, false);

    g_assert_false(load(&vmstate_dev, &dst, w->data, w->len, 3, NULL, &err));
    g_assert_nonnull(err);
    g_assert_cmpstr(err->message, ==,
                    "dev: incoming version_id 3 is too new for local version_id 2");
    g_assert_cmpint(dst.post_load_calls, ==, 0);
    g_error_free(err);
}

static void test_version_too_old(void)
{
    Dev dst = { 0 };
    GError *err = NULL;
    g_autoptr(GByteArray) w = wire(false, false);

    g_assert_false(load(&vmstate_dev, &dst, w->data, w->len, 0, NULL, &err));
    g_assert_nonnull(err);
    g_assert_cmpstr(err->message, ==,
                    "dev: incoming version_id 0 is too old for local minimum version_id 1");
    g_assert_cmpint(dst.post_load_calls, ==, 0);
    g_error_free(err);
}

static void test_subsection(void)
{
    Dev src, dst = { 0 };
    GError *err = NULL;
    bool at_eof;

    dev_fill(&src);
    src.sub_needed = true;
    g_autoptr(GByteArray) got = save(&vmstate_dev, &src, NULL);
    g_autoptr(GByteArray) want = wire(true, true);
    g_assert_cmpmem(got->data, got->len, want->data, want->len);

    g_assert_true(load(&vmstate_dev, &dst, got->data, got->len, 2, &at_eof, &err));
    g_assert_no_error(err);
    g_assert_true(at_eof);
    assert_same_state(&src, &dst);
    g_assert_cmphex(dst.sub_val, ==, 0x5ab5ab);
    g_assert_cmpint(dst.post_load_calls, ==, 1);
}

/* A subsection of someone else (the next section's bytes) is left alone. */
static void test_subsection_of_parent_left_alone(void)
{
    Dev dst = { 0 };
    GError *err = NULL;
    g_autoptr(GByteArray) w = wire(true, false);
    const uint8_t other[] = { 0x05, 9, 'o', 't', 'h', 'e', 'r', '/', 's', 'u', 'b',
                              0, 0, 0, 1 };
    g_byte_array_append(w, other, sizeof(other));

    g_autoptr(IOChannel) ioc = io_channel_buffer_new_data(w->data, w->len);
    QEMUFile *f = qemu_file_new_input(ioc, 0);
    g_assert_true(vmstate_load_state(f, &vmstate_dev, &dst, 2, &err));
    g_assert_no_error(err);
    g_assert_cmpint(qemu_peek_byte(f, 0), ==, 0x05);   /* not consumed */
    g_assert_cmpint(qemu_file_tell(f), ==, (off_t)(w->len - sizeof(other)));
    qemu_fclose(f, NULL);
}

static void test_unknown_subsection(void)
{
    Dev dst = { 0 };
    GError *err = NULL;
    g_autoptr(GByteArray) w = wire(true, false);
    const uint8_t unknown[] = { 0x05, 9, 'd', 'e', 'v', '/', 'o', 't', 'h', 'e', 'r',
                                0, 0, 0, 1, 0, 0, 0, 0 };
    g_byte_array_append(w, unknown, sizeof(unknown));

    g_assert_false(load(&vmstate_dev, &dst, w->data, w->len, 2, NULL, &err));
    g_assert_nonnull(err);
    g_assert_cmpstr(err->message, ==, "VM subsection 'dev/other' in 'dev' does not exist");
    g_assert_cmpint(dst.post_load_calls, ==, 0);
    g_error_free(err);
}

static void test_post_load_fails(void)
{
    Dev dst = { .post_load_ret = -EINVAL };
    GError *err = NULL;
    g_autoptr(GByteArray) w = wire(true, false);

    g_assert_false(load(&vmstate_dev, &dst, w->data, w->len, 2, NULL, &err));
    g_assert_nonnull(err);
    g_assert_cmpint(dst.post_load_calls, ==, 1);
    g_assert_cmpstr(err->message, ==, "post load hook failed for: dev, version_id: 2, "
                    "minimum_version: 1, ret: -22");
    g_error_free(err);
}

static void test_truncated_fails(void)
{
    Dev dst = { 0 };
    GError *err = NULL;
    g_autoptr(GByteArray) w = wire(true, false);

    g_assert_false(load(&vmstate_dev, &dst, w->data, w->len - 1, 2, NULL, &err));
    g_assert_nonnull(err);
    /* names the field that could not be read and where the data ends */
    g_assert_cmpuint(w->len - 1, ==, 60);
    g_assert_cmpstr(err->message, ==,
                    "Failed to load dev:since_v2: Unexpected end of stream at offset 60");
    g_assert_cmpint(dst.post_load_calls, ==, 0);
    g_error_free(err);
}

/* As QEMU: a bool's byte is true unless it is 0. */
static void test_bool_byte(void)
{
    Dev dst = { 0 };
    GError *err = NULL;
    g_autoptr(GByteArray) w = wire(true, false);

    w->data[0] = 2;
    g_assert_true(load(&vmstate_dev, &dst, w->data, w->len, 2, NULL, &err));
    g_assert_no_error(err);
    g_assert_true(dst.flag);
    g_assert_cmpint(dst.post_load_calls, ==, 1);
}

static JsonObject *field_at(JsonArray *fields, guint i, const char *name, const char *type,
                            gint64 size)
{
    JsonObject *o = json_array_get_object_element(fields, i);
    g_assert_cmpstr(json_object_get_string_member(o, "name"), ==, name);
    g_assert_cmpstr(json_object_get_string_member(o, "type"), ==, type);
    g_assert_cmpint(json_object_get_int_member(o, "size"), ==, size);
    return o;
}

static void test_vmdesc(void)
{
    Dev src;
    g_autoptr(JsonBuilder) b = json_builder_new();

    dev_fill(&src);
    src.sub_needed = true;
    json_builder_begin_object(b);
    g_byte_array_unref(save(&vmstate_dev, &src, b));
    json_builder_end_object(b);
    g_autoptr(JsonNode) root = json_builder_get_root(b);
    JsonObject *o = json_node_get_object(root);

    g_assert_cmpstr(json_object_get_string_member(o, "vmsd_name"), ==, "dev");
    g_assert_cmpint(json_object_get_int_member(o, "version"), ==, 2);
    JsonArray *fields = json_object_get_array_member(o, "fields");
    g_assert_cmpuint(json_array_get_length(fields), ==, 14);
    field_at(fields, 0, "flag", "bool", 1);
    field_at(fields, 1, "u8", "uint8", 1);
    field_at(fields, 2, "u16", "uint16", 2);
    field_at(fields, 3, "u32", "uint32", 4);
    field_at(fields, 4, "u64", "uint64", 8);
    field_at(fields, 5, "i8", "int8", 1);
    field_at(fields, 6, "i16", "int16", 2);
    field_at(fields, 7, "i32", "int32", 4);
    field_at(fields, 8, "i64", "int64", 8);
    field_at(fields, 9, "buf", "buffer", 5);
    field_at(fields, 10, "unused", "unused_buffer", 3);
    JsonObject *arr = field_at(fields, 11, "arr", "uint32", 4);
    g_assert_cmpint(json_object_get_int_member(arr, "array_len"), ==, 3);
    JsonObject *inner = field_at(fields, 12, "inner", "struct", 6);
    JsonObject *st = json_object_get_object_member(inner, "struct");
    g_assert_nonnull(st);
    g_assert_cmpstr(json_object_get_string_member(st, "vmsd_name"), ==, "inner");
    g_assert_cmpint(json_object_get_int_member(st, "version"), ==, 1);
    JsonArray *sf = json_object_get_array_member(st, "fields");
    g_assert_cmpuint(json_array_get_length(sf), ==, 2);
    field_at(sf, 0, "a", "uint32", 4);
    field_at(sf, 1, "b", "uint16", 2);
    field_at(fields, 13, "since_v2", "uint32", 4);
    for (guint i = 0; i < 11; i++) {
        g_assert_false(json_object_has_member(json_array_get_object_element(fields, i),
                                              "array_len"));
    }

    JsonArray *subs = json_object_get_array_member(o, "subsections");
    g_assert_nonnull(subs);
    g_assert_cmpuint(json_array_get_length(subs), ==, 1);
    JsonObject *sub = json_array_get_object_element(subs, 0);
    g_assert_cmpstr(json_object_get_string_member(sub, "vmsd_name"), ==, "dev/sub");
    g_assert_cmpint(json_object_get_int_member(sub, "version"), ==, 1);
    JsonArray *subf = json_object_get_array_member(sub, "fields");
    g_assert_cmpuint(json_array_get_length(subf), ==, 1);
    field_at(subf, 0, "sub_val", "uint32", 4);

    /* without the subsection there is no "subsections" member at all */
    g_autoptr(JsonBuilder) b2 = json_builder_new();
    src.sub_needed = false;
    json_builder_begin_object(b2);
    g_byte_array_unref(save(&vmstate_dev, &src, b2));
    json_builder_end_object(b2);
    g_autoptr(JsonNode) root2 = json_builder_get_root(b2);
    g_assert_false(json_object_has_member(json_node_get_object(root2), "subsections"));
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/migration/vmstate/round-trip", test_round_trip);
    g_test_add_func("/migration/vmstate/version/old-stream-keeps-new-field",
                    test_old_version_keeps_new_field);
    g_test_add_func("/migration/vmstate/version/too-new", test_version_too_new);
    g_test_add_func("/migration/vmstate/version/too-old", test_version_too_old);
    g_test_add_func("/migration/vmstate/subsection/round-trip", test_subsection);
    g_test_add_func("/migration/vmstate/subsection/parent-left-alone",
                    test_subsection_of_parent_left_alone);
    g_test_add_func("/migration/vmstate/subsection/unknown", test_unknown_subsection);
    g_test_add_func("/migration/vmstate/post-load-fails", test_post_load_fails);
    g_test_add_func("/migration/vmstate/truncated", test_truncated_fails);
    g_test_add_func("/migration/vmstate/bool-byte", test_bool_byte);
    g_test_add_func("/migration/vmstate/vmdesc", test_vmdesc);
    return g_test_run();
}
