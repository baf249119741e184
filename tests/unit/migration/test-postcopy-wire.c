/*
 * The postcopy commands a source sends and the return-path messages a
 * destination answers with, byte for byte against the postcopy reference
 * (§2.1, §2.9, §3.2), and the return-path decoder's refusals with QEMU's
 * texts.
 */
#include <string.h>

#include "io/channel.h"
#include "migration/qemu-file.h"
#include "migration/savevm.h"

/* Run encode(f) on a fresh buffer channel; the bytes it wrote. */
static GByteArray *encoded(void (*encode)(QEMUFile *f, void *opaque), void *opaque)
{
    g_autoptr(IOChannel) ioc = io_channel_buffer_new(0);
    QEMUFile *f = qemu_file_new_output(ioc, 0);
    GError *err = NULL;
    size_t len;

    encode(f, opaque);
    g_assert_true(qemu_fclose(f, &err));
    g_assert_no_error(err);
    const uint8_t *data = io_channel_buffer_data(ioc, &len);
    GByteArray *b = g_byte_array_new();
    g_byte_array_append(b, data, len);
    return b;
}

static void assert_bytes(GByteArray *got, const uint8_t *want, size_t len)
{
    g_assert_cmpmem(got->data, got->len, want, len);
}

static void encode_commands(QEMUFile *f, void *opaque)
{
    static const uint8_t package[] = { 0xaa, 0xbb, 0xcc };

    savevm_put_open_return_path(f);
    savevm_put_postcopy_advise(f, 0x1000, 0x1000);
    savevm_put_postcopy_ram_discard(f, "pc.ram", (uint64_t[]){ 0x2000 }, (uint64_t[]){ 0x1000 }, 1);
    savevm_put_packaged(f, package, sizeof(package));
    savevm_put_postcopy_listen(f);
    savevm_put_ping(f, 0x42);
    savevm_put_postcopy_run(f);
}

/* §2.9: the minimal serving source's commands. */
static void test_commands(void)
{
    static const uint8_t want[] = {
        0x08, 0x00, 0x01, 0x00, 0x00,                       /* OPEN_RETURN_PATH */
        0x08, 0x00, 0x03, 0x00, 0x10,                       /* POSTCOPY_ADVISE, 16 */
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00,
        0x08, 0x00, 0x06, 0x00, 0x19, 0x00, 0x06,           /* RAM_DISCARD (§2.5), len 25 */
        'p', 'c', '.', 'r', 'a', 'm', 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x20, 0x00,     /* start */
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00,     /* length */
        0x08, 0x00, 0x07, 0x00, 0x04, 0x00, 0x00, 0x00, 0x03,  /* PACKAGED, N = 3 */
        0xaa, 0xbb, 0xcc,                                   /* the package, after the record */
        0x08, 0x00, 0x04, 0x00, 0x00,                       /* LISTEN */
        0x08, 0x00, 0x02, 0x00, 0x04, 0x00, 0x00, 0x00, 0x42,  /* PING 0x42 */
        0x08, 0x00, 0x05, 0x00, 0x00,                       /* RUN */
    };
    g_autoptr(GByteArray) got = encoded(encode_commands, NULL);
    assert_bytes(got, want, sizeof(want));
}

static void encode_rp(QEMUFile *f, void *opaque)
{
    RpCodec *c = opaque;

    savevm_put_rp_req_pages(c, f, "pc.ram", 0x1234000, 0x1000);
    savevm_put_rp_req_pages(c, f, "pc.ram", 0x2000, 0x1000);
    savevm_put_rp_req_pages(c, f, "pc.bios", 0, 0x1000);
    savevm_put_rp_pong(f, 1);
    savevm_put_rp_shut(f, 0);
}

static const uint8_t rp_bytes[] = {
    0x00, 0x03, 0x00, 0x13, 0x00, 0x00, 0x00, 0x00, 0x01, 0x23, 0x40, 0x00,  /* §3.2's example */
    0x00, 0x00, 0x10, 0x00, 0x06, 'p', 'c', '.', 'r', 'a', 'm',
    0x00, 0x04, 0x00, 0x0c, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x20, 0x00,  /* same block */
    0x00, 0x00, 0x10, 0x00,
    0x00, 0x03, 0x00, 0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x10, 0x00, 0x07, 'p', 'c', '.', 'b', 'i', 'o', 's',
    0x00, 0x02, 0x00, 0x04, 0x00, 0x00, 0x00, 0x01,                      /* PONG 1 */
    0x00, 0x01, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00,                      /* SHUT 0 */
};

static void test_rp_encode(void)
{
    RpCodec c = { { 0 } };
    g_autoptr(GByteArray) got = encoded(encode_rp, &c);
    assert_bytes(got, rp_bytes, sizeof(rp_bytes));
}

static QEMUFile *input_of(const uint8_t *data, size_t len, IOChannel **ioc)
{
    *ioc = io_channel_buffer_new(0);
    g_assert_true(io_channel_write_all(*ioc, data, len, NULL));
    g_assert_cmpint(io_channel_seek(*ioc, 0, SEEK_SET, NULL), ==, 0);
    return qemu_file_new_input(*ioc, 0);
}

static void test_rp_decode(void)
{
    IOChannel *ioc;
    QEMUFile *f = input_of(rp_bytes, sizeof(rp_bytes), &ioc);
    RpCodec c = { { 0 } };
    RpMessage m;
    GError *err = NULL;

    g_assert_true(savevm_get_rp_message(&c, f, &m, &err));
    g_assert_cmpuint(m.type, ==, MIG_RP_MSG_REQ_PAGES_ID);
    g_assert_cmpstr(m.idstr, ==, "pc.ram");
    g_assert_cmphex(m.start, ==, 0x1234000);
    g_assert_cmphex(m.len, ==, 0x1000);
    g_assert_true(savevm_get_rp_message(&c, f, &m, &err));
    g_assert_cmpuint(m.type, ==, MIG_RP_MSG_REQ_PAGES);
    g_assert_cmpstr(m.idstr, ==, "pc.ram");
    g_assert_cmphex(m.start, ==, 0x2000);
    g_assert_true(savevm_get_rp_message(&c, f, &m, &err));
    g_assert_cmpstr(m.idstr, ==, "pc.bios");
    g_assert_cmphex(m.start, ==, 0);
    g_assert_true(savevm_get_rp_message(&c, f, &m, &err));
    g_assert_cmpuint(m.type, ==, MIG_RP_MSG_PONG);
    g_assert_cmpuint(m.value, ==, 1);
    g_assert_true(savevm_get_rp_message(&c, f, &m, &err));
    g_assert_cmpuint(m.type, ==, MIG_RP_MSG_SHUT);
    g_assert_cmpuint(m.value, ==, 0);
    g_assert_true(savevm_get_rp_message(&c, f, &m, &err));
    g_assert_cmpuint(m.type, ==, 0);                    /* the end, at a boundary */
    g_assert_no_error(err);
    qemu_fclose(f, NULL);
    io_channel_unref(ioc);
}

/* One message that must be refused with text. */
static void assert_rp_refused(const uint8_t *data, size_t len, const char *text)
{
    IOChannel *ioc;
    QEMUFile *f = input_of(data, len, &ioc);
    RpCodec c = { { 0 } };
    RpMessage m;
    GError *err = NULL;

    g_assert_false(savevm_get_rp_message(&c, f, &m, &err));
    g_assert_nonnull(err);
    g_assert_cmpstr(err->message, ==, text);
    g_error_free(err);
    qemu_fclose(f, NULL);
    io_channel_unref(ioc);
}

static void test_rp_refused(void)
{
    static const uint8_t type0[] = { 0x00, 0x00, 0x00, 0x00 };
    static const uint8_t type8[] = { 0x00, 0x08, 0x00, 0x00 };
    static const uint8_t long_msg[] = { 0x00, 0x03, 0x02, 0x01 };
    static const uint8_t shut_len[] = { 0x00, 0x01, 0x00, 0x02, 0x00, 0x00 };
    static const uint8_t req_first[] = { 0x00, 0x04, 0x00, 0x0c, 0, 0, 0, 0, 0, 0, 0, 0,
                                         0, 0, 0x10, 0 };
    static const uint8_t id_len[] = { 0x00, 0x03, 0x00, 0x0e, 0, 0, 0, 0, 0, 0, 0, 0,
                                      0, 0, 0x10, 0, 0x02, 'p' };
    static const uint8_t bitmap[] = { 0x00, 0x05, 0x00, 0x02, 0x01, 'p' };
    static const uint8_t cut[] = { 0x00, 0x02, 0x00, 0x04, 0x00 };

    assert_rp_refused(type0, sizeof(type0), "Received invalid message 0x0000 length 0x0000");
    assert_rp_refused(type8, sizeof(type8), "Received invalid message 0x0008 length 0x0000");
    assert_rp_refused(long_msg, sizeof(long_msg), "Received invalid message 0x0003 length 0x0201");
    assert_rp_refused(shut_len, sizeof(shut_len),
                      "Received 'SHUT' message (0x0001) with incorrect length 2 expecting 4");
    assert_rp_refused(req_first, sizeof(req_first), "MIG_RP_MSG_REQ_PAGES has no previous block");
    assert_rp_refused(id_len, sizeof(id_len),
                      "Received 'REQ_PAGES_ID' message (0x0003) with bad length 14");
    assert_rp_refused(bitmap, sizeof(bitmap),
                      "Unexpected return-path message RECV_BITMAP: this source starts no recovery");
    assert_rp_refused(cut, sizeof(cut), "Unexpected end of stream at offset 5");
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/migration/postcopy/wire/commands", test_commands);
    g_test_add_func("/migration/postcopy/wire/return-path/encode", test_rp_encode);
    g_test_add_func("/migration/postcopy/wire/return-path/decode", test_rp_decode);
    g_test_add_func("/migration/postcopy/wire/return-path/refused", test_rp_refused);
    return g_test_run();
}
