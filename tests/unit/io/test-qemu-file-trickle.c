/*
 * QEMUFile over a trickle channel (one byte per call): the buffered
 * writer's flush and the reader's refill must resume after every short
 * transfer.  Kept to the few calls whose shape is stable (puts, one
 * qemu_get_buffer), because the getters are being reworked.
 */
#include <string.h>

#include "io/channel.h"
#include "migration/qemu-file.h"

/* What the puts below must produce, big-endian, byte for byte. */
static const uint8_t expected[] = {
    0x5a,
    0x12, 0x34,
    0xde, 0xad, 0xbe, 0xef,
    0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
    3, 'r', 'a', 'm',
    'p', 'a', 'g', 'e',
};

static void test_round_trip(void)
{
    IOChannel *store = io_channel_buffer_new(0);
    g_autoptr(IOChannel) out = io_channel_trickle_new(io_channel_ref(store));
    g_autoptr(IOChannel) in = NULL;
    g_autoptr(GError) err = NULL;
    const uint8_t *data;
    uint8_t got[sizeof(expected)];
    QEMUFile *f;
    size_t len;

    f = qemu_file_new_output(out, 0);
    qemu_put_byte(f, 0x5a);
    qemu_put_be16(f, 0x1234);
    qemu_put_be32(f, 0xdeadbeef);
    qemu_put_be64(f, 0x0102030405060708ull);
    qemu_put_counted_string(f, "ram");
    qemu_put_buffer_async(f, "page", 4);
    g_assert_true(qemu_fclose(f, &err));
    g_assert_no_error(err);
    data = io_channel_buffer_data(store, &len);
    g_assert_cmpuint(len, ==, sizeof(expected));
    g_assert_true(memcmp(data, expected, sizeof(expected)) == 0);

    in = io_channel_trickle_new(io_channel_buffer_new_data(data, len));
    f = qemu_file_new_input(in, 0);
    g_assert_true(qemu_get_buffer(f, got, sizeof(got), &err));
    g_assert_no_error(err);
    g_assert_true(memcmp(got, expected, sizeof(expected)) == 0);
    g_assert_true(qemu_file_at_eof(f));
    g_assert_true(qemu_fclose(f, &err));
    g_assert_no_error(err);
    io_channel_unref(store);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/io/trickle/qemu-file/round-trip", test_round_trip);
    return g_test_run();
}
