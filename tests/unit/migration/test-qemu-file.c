/*
 * QEMUFile on its own: every getter returns success and names the offset
 * where the stream ends, a read error is reported by the get that meets
 * it and is not kept, peeks consume nothing, and the writer's first error
 * comes back at flush and close.
 */
#include <string.h>

#include "io/channel.h"
#include "migration/mapped-ram.h"
#include "migration/qemu-file.h"
#include "util/error.h"

/*
 * A scripted channel: reads hand out data at most `chunk` bytes a call
 * (one byte at a time tests the refill loop), and the next `fails` reads
 * that would pass `fail_at` fail with EIO; every write fails with ENOSPC.
 */
typedef struct ScriptChannel {
    IOChannel parent;
    GByteArray *data;
    size_t pos;
    size_t chunk;
    size_t fail_at;
    unsigned fails;
} ScriptChannel;

static ssize_t script_readv(IOChannel *ioc, const struct iovec *iov, size_t niov,
                            GError **errp)
{
    ScriptChannel *s = (ScriptChannel *)ioc;
    size_t n = MIN(MIN(iov[0].iov_len, s->chunk), s->data->len - s->pos);

    if (s->fails && (s->pos + n > s->fail_at || (n == 0 && s->pos == s->fail_at))) {
        s->fails--;
        error_setg_errno(errp, EIO, "Unable to read '%s'", ioc->name);
        return -1;
    }
    memcpy(iov[0].iov_base, s->data->data + s->pos, n);
    s->pos += n;
    return n;
}

static ssize_t script_writev(IOChannel *ioc, const struct iovec *iov, size_t niov,
                             GError **errp)
{
    error_setg_errno(errp, ENOSPC, "Unable to write '%s'", ioc->name);
    return -1;
}

static int script_close(IOChannel *ioc, GError **errp)
{
    return 0;
}

static void script_finalize(IOChannel *ioc)
{
    g_byte_array_unref(((ScriptChannel *)ioc)->data);
}

static const IOChannelOps script_ops = {
    .kind = "script",
    .readv = script_readv,
    .writev = script_writev,
    .close = script_close,
    .finalize = script_finalize,
};

static IOChannel *script_new(const void *data, size_t len, size_t chunk, size_t fail_at,
                             unsigned fails)
{
    ScriptChannel *s = g_new0(ScriptChannel, 1);

    io_channel_init(&s->parent, &script_ops, "script");
    s->data = g_byte_array_append(g_byte_array_new(), data, len);
    s->chunk = chunk;
    s->fail_at = fail_at;
    s->fails = fails;
    return &s->parent;
}

static const uint8_t sample[] = {
    0xab,                                           /* byte */
    0x12, 0x34,                                     /* be16 */
    0xde, 0xad, 0xbe, 0xef,                         /* be32 */
    0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, /* be64 */
    3, 'r', 'a', 'm',                               /* counted string */
    'x', 'y', 'z',                                  /* buffer */
    0, 0, 0, 0, 0,                                  /* skipped */
};

static QEMUFile *input(IOChannel *ioc, off_t start)
{
    QEMUFile *f = qemu_file_new_input(ioc, start);

    io_channel_unref(ioc);
    return f;
}

static void read_sample(QEMUFile *f)
{
    GError *err = NULL;
    uint8_t b;
    uint16_t w;
    uint32_t l;
    uint64_t q;
    char s[256], buf[3];

    g_assert_true(qemu_get_byte(f, &b, &err));
    g_assert_cmphex(b, ==, 0xab);
    g_assert_true(qemu_get_be16(f, &w, &err));
    g_assert_cmphex(w, ==, 0x1234);
    g_assert_true(qemu_get_be32(f, &l, &err));
    g_assert_cmphex(l, ==, 0xdeadbeef);
    g_assert_true(qemu_get_be64(f, &q, &err));
    g_assert_cmphex(q, ==, 0x0123456789abcdefULL);
    g_assert_true(qemu_get_counted_string(f, s, &err));
    g_assert_cmpstr(s, ==, "ram");
    g_assert_true(qemu_get_buffer(f, buf, 3, &err));
    g_assert_cmpmem(buf, 3, "xyz", 3);
    g_assert_true(qemu_file_skip(f, 5, &err));
    g_assert_no_error(err);
}

static void test_get_values(void)
{
    QEMUFile *f = input(io_channel_buffer_new_data(sample, sizeof(sample)), 0);

    read_sample(f);
    g_assert_cmpint(qemu_file_tell(f), ==, sizeof(sample));
    g_assert_cmpuint(qemu_file_transferred(f), ==, sizeof(sample));
    g_assert_true(qemu_file_at_eof(f));
    g_assert_true(qemu_fclose(f, NULL));
}

/* The same bytes handed out one at a time, from a start offset. */
static void test_get_values_one_byte_reads(void)
{
    QEMUFile *f = input(script_new(sample, sizeof(sample), 1, 0, 0), 4096);

    read_sample(f);
    g_assert_cmpint(qemu_file_tell(f), ==, 4096 + sizeof(sample));
    g_assert_true(qemu_file_at_eof(f));
    qemu_fclose(f, NULL);
}

/* A get that reaches past the end fails, names where the data ends, keeps *v. */
static void test_get_short(void)
{
    static const uint8_t three[] = { 1, 2, 3 };
    QEMUFile *f = input(io_channel_buffer_new_data(three, sizeof(three)), 100);
    GError *err = NULL;
    uint32_t l = 0x55555555;
    uint64_t q = 7;
    uint16_t w;
    uint8_t b;

    g_assert_false(qemu_get_be32(f, &l, &err));
    g_assert_cmpstr(err->message, ==, "Unexpected end of stream at offset 103");
    g_assert_cmphex(l, ==, 0x55555555);
    g_clear_error(&err);

    /* nothing is kept: what is there can still be read */
    g_assert_true(qemu_get_be16(f, &w, &err));
    g_assert_cmphex(w, ==, 0x0102);
    g_assert_false(qemu_get_be64(f, &q, &err));
    g_assert_cmpstr(err->message, ==, "Unexpected end of stream at offset 103");
    g_assert_cmpuint(q, ==, 7);
    g_clear_error(&err);
    g_assert_true(qemu_get_byte(f, &b, &err));
    g_assert_cmphex(b, ==, 3);
    g_assert_false(qemu_get_byte(f, &b, &err));
    g_assert_cmpstr(err->message, ==, "Unexpected end of stream at offset 103");
    g_clear_error(&err);
    g_assert_true(qemu_file_at_eof(f));
    qemu_fclose(f, NULL);
}

static void test_get_short_string_and_skip(void)
{
    static const uint8_t cut[] = { 5, 'a', 'b' };
    QEMUFile *f = input(io_channel_buffer_new_data(cut, sizeof(cut)), 0);
    GError *err = NULL;
    char s[256];

    g_assert_false(qemu_get_counted_string(f, s, &err));
    g_assert_cmpstr(err->message, ==, "Unexpected end of stream at offset 3");
    g_clear_error(&err);
    g_assert_false(qemu_file_skip(f, 3, &err));
    g_assert_cmpstr(err->message, ==, "Unexpected end of stream at offset 3");
    g_clear_error(&err);
    qemu_fclose(f, NULL);
}

/* Reads and skips larger than the 64 KiB buffer cross refills. */
static void test_get_large(void)
{
    size_t len = 200 * 1024 + 17;
    g_autofree uint8_t *data = g_malloc(len);
    g_autofree uint8_t *got = g_malloc(len);
    GError *err = NULL;

    for (size_t i = 0; i < len; i++) {
        data[i] = i * 7;
    }
    QEMUFile *f = input(script_new(data, len, 4000, 0, 0), 0);
    g_assert_true(qemu_file_skip(f, 70000, &err));
    g_assert_true(qemu_get_buffer(f, got, len - 70000, &err));
    g_assert_no_error(err);
    g_assert_cmpmem(got, len - 70000, data + 70000, len - 70000);
    g_assert_true(qemu_file_at_eof(f));
    qemu_fclose(f, NULL);

    f = input(io_channel_buffer_new_data(data, len), 0);
    g_assert_false(qemu_get_buffer(f, got, len + 1, &err));
    g_assert_cmpstr(err->message, ==, "Unexpected end of stream at offset 204817");
    g_clear_error(&err);
    qemu_fclose(f, NULL);
}

/* A read error fails the get that meets it, with the offset; it is not kept. */
static void test_read_error(void)
{
    QEMUFile *f = input(script_new(sample, sizeof(sample), 2, 5, 1), 1000);
    GError *err = NULL;
    uint8_t b;
    uint16_t w;
    uint32_t l;

    g_assert_true(qemu_get_byte(f, &b, &err));
    g_assert_true(qemu_get_be16(f, &w, &err));
    g_assert_false(qemu_get_be32(f, &l, &err));
    g_assert_cmpstr(err->message, ==, "Unable to read from script at offset 1004: "
                    "Unable to read 'script': Input/output error");
    g_clear_error(&err);
    /* the channel works again: so does the file */
    g_assert_true(qemu_get_be32(f, &l, &err));
    g_assert_cmphex(l, ==, 0xdeadbeef);
    g_assert_no_error(err);
    qemu_fclose(f, NULL);
}

/*
 * A mapped-ram block header cut short gets QEMU's words; a read error
 * keeps the reader's, which names the offset and the errno.
 */
static void test_mapped_ram_header_read_error(void)
{
    static const uint8_t ten[10] = { 0, 0, 0, 1 };
    QEMUFile *f = input(io_channel_buffer_new_data(ten, sizeof(ten)), 0);
    MappedRamHeader h;
    GError *err = NULL;

    g_assert_false(mapped_ram_get_block(f, "pc.ram", 4096, 1 << 20, &h, &err));
    g_assert_cmpstr(err->message, ==, "Could not read whole mapped-ram migration header "
                    "(expected 28, got 10 bytes)");
    g_assert_true(qemu_file_input_ended(f));
    g_clear_error(&err);
    qemu_fclose(f, NULL);

    /* the peek meets the first failure, the read the second */
    f = input(script_new(ten, sizeof(ten), 64, sizeof(ten), 2), 0);
    g_assert_false(mapped_ram_get_block(f, "pc.ram", 4096, 1 << 20, &h, &err));
    g_assert_cmpstr(err->message, ==, "Unable to read from script at offset 10: "
                    "Unable to read 'script': Input/output error");
    g_assert_false(qemu_file_input_ended(f));
    g_clear_error(&err);
    qemu_fclose(f, NULL);
}

/* A peek reports no error; the next get reads again and does. */
static void test_peek_read_error(void)
{
    QEMUFile *f = input(script_new(sample, sizeof(sample), 64, 0, 1), 0);
    GError *err = NULL;
    uint8_t b;

    g_assert_cmpint(qemu_peek_byte(f, 0), ==, -1);
    g_assert_cmpint(qemu_peek_byte(f, 0), ==, 0xab);
    g_assert_true(qemu_get_byte(f, &b, &err));
    qemu_fclose(f, NULL);

    f = input(script_new(sample, sizeof(sample), 64, 0, 1), 0);
    g_assert_false(qemu_file_at_eof(f));
    g_assert_true(qemu_get_byte(f, &b, &err));
    g_assert_cmphex(b, ==, 0xab);
    qemu_fclose(f, NULL);

    f = input(script_new(sample, sizeof(sample), 3, 3, 2), 0);
    g_assert_cmpint(qemu_peek_byte(f, 3), ==, -1);
    g_assert_false(qemu_file_skip(f, 4, &err));
    g_assert_cmpstr(err->message, ==, "Unable to read from script at offset 3: "
                    "Unable to read 'script': Input/output error");
    g_clear_error(&err);
    qemu_fclose(f, NULL);
}

static void test_peek(void)
{
    QEMUFile *f = input(io_channel_buffer_new_data(sample, sizeof(sample)), 0);
    GError *err = NULL;
    uint8_t buf[8];
    char s[256];

    g_assert_cmpint(qemu_peek_byte(f, 0), ==, 0xab);
    g_assert_cmpint(qemu_peek_byte(f, 15), ==, 3);
    g_assert_cmpuint(qemu_peek_buffer(f, buf, 3, 16), ==, 3);
    g_assert_cmpmem(buf, 3, "ram", 3);
    g_assert_cmpint(qemu_file_tell(f), ==, 0);
    g_assert_true(qemu_file_skip(f, 15, &err));
    g_assert_true(qemu_get_counted_string(f, s, &err));
    g_assert_cmpstr(s, ==, "ram");
    /* 8 bytes are left: peeks past them see the end */
    g_assert_cmpint(qemu_peek_byte(f, 7), ==, 0);
    g_assert_cmpint(qemu_peek_byte(f, 8), ==, -1);
    g_assert_cmpuint(qemu_peek_buffer(f, buf, 8, 2), ==, 6);
    g_assert_cmpuint(qemu_peek_buffer(f, buf, 8, 8), ==, 0);
    g_assert_false(qemu_file_at_eof(f));
    g_assert_true(qemu_file_skip(f, 8, &err));
    g_assert_true(qemu_file_at_eof(f));
    g_assert_no_error(err);
    qemu_fclose(f, NULL);
}

static void test_put_round_trip(void)
{
    g_autoptr(IOChannel) ioc = io_channel_buffer_new(16);
    QEMUFile *f = qemu_file_new_output(ioc, 0);
    GError *err = NULL;
    size_t len;

    qemu_put_byte(f, 0xab);
    qemu_put_be16(f, 0x1234);
    qemu_put_be32(f, 0xdeadbeef);
    qemu_put_be64(f, 0x0123456789abcdefULL);
    qemu_put_counted_string(f, "ram");
    qemu_put_buffer_async(f, "xyz", 3);
    qemu_put_buffer(f, (const uint8_t[5]) { 0 }, 5);
    g_assert_cmpint(qemu_file_tell(f), ==, sizeof(sample));
    g_assert_true(qemu_fclose(f, &err));
    g_assert_no_error(err);
    const uint8_t *data = io_channel_buffer_data(ioc, &len);
    g_assert_cmpmem(data, len, sample, sizeof(sample));
}

/* The writer's first error is kept: puts after it are dropped, flush and close report it. */
static void test_put_error_latches(void)
{
    g_autoptr(IOChannel) ioc = script_new(NULL, 0, 1, 0, 0);
    QEMUFile *f = qemu_file_new_output(ioc, 0);
    GError *err = NULL;

    qemu_put_be32(f, 1);
    g_assert_false(qemu_file_has_error(f));
    g_assert_false(qemu_fflush(f));
    g_assert_true(qemu_file_has_error(f));
    qemu_put_be32(f, 2);
    /* the channel's own message, once: no "Unable to write to script: " before it */
    g_assert_false(qemu_file_propagate_error(f, &err));
    g_assert_cmpstr(err->message, ==, "Unable to write 'script': No space left on device");
    g_clear_error(&err);
    g_assert_false(qemu_fclose(f, &err));
    g_assert_cmpstr(err->message, ==, "Unable to write 'script': No space left on device");
    g_clear_error(&err);
}

/* A channel named after its peer (a socket we connected): the message names the peer. */
static void test_put_error_names_peer(void)
{
    g_autoptr(IOChannel) ioc = script_new(NULL, 0, 1, 0, 0);
    GError *err = NULL;

    io_channel_set_name(ioc, "127.0.0.1:4444");
    ioc->name_is_peer = true;
    QEMUFile *f = qemu_file_new_output(ioc, 0);
    qemu_put_be32(f, 1);
    g_assert_false(qemu_fclose(f, &err));
    g_assert_cmpstr(err->message, ==, "Unable to write to 127.0.0.1:4444: "
                    "Unable to write '127.0.0.1:4444': No space left on device");
    g_clear_error(&err);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/migration/qemu-file/get/values", test_get_values);
    g_test_add_func("/migration/qemu-file/get/values/one-byte-reads",
                    test_get_values_one_byte_reads);
    g_test_add_func("/migration/qemu-file/get/short", test_get_short);
    g_test_add_func("/migration/qemu-file/get/short/string-and-skip",
                    test_get_short_string_and_skip);
    g_test_add_func("/migration/qemu-file/get/large", test_get_large);
    g_test_add_func("/migration/qemu-file/get/read-error", test_read_error);
    g_test_add_func("/migration/qemu-file/peek", test_peek);
    g_test_add_func("/migration/qemu-file/peek/read-error", test_peek_read_error);
    g_test_add_func("/migration/qemu-file/mapped-ram-header/read-error",
                    test_mapped_ram_header_read_error);
    g_test_add_func("/migration/qemu-file/put/round-trip", test_put_round_trip);
    g_test_add_func("/migration/qemu-file/put/error-latches", test_put_error_latches);
    g_test_add_func("/migration/qemu-file/put/error-names-peer", test_put_error_names_peer);
    return g_test_run();
}
