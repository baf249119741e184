/*
 * Multifd's wire format (reference qemu-postcopy-multifd.md §6): the
 * initial packet and the packet header byte for byte against hand-built
 * bytes, the receiver's checks with QEMU's texts, the per-version wire
 * choices, the zlib/zstd streams read back by the plain libraries, and
 * whole channels over socketpairs (pages, zero pages, sync).
 */
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include "io/channel.h"
#include "migration/multifd.h"

static const uint8_t no_uuid[16];

static void test_init_bytes(void)
{
    uint8_t buf[MULTIFD_INIT_SIZE], want[MULTIFD_INIT_SIZE] = {
        0x11, 0x22, 0x33, 0x44, 0, 0, 0, 1,
    };
    uint8_t uuid[16];
    uint8_t id = 0;

    for (int i = 0; i < 16; i++) {
        uuid[i] = want[8 + i] = 0xa0 + i;
    }
    want[24] = 5;
    multifd_encode_init(buf, uuid, 5);
    g_assert_cmpmem(buf, sizeof(buf), want, sizeof(want));
    g_assert_true(multifd_decode_init(buf, uuid, 6, &id, NULL));
    g_assert_cmpuint(id, ==, 5);
}

static void expect_init_error(const uint8_t *buf, unsigned channels, const char *want)
{
    GError *err = NULL;
    uint8_t id;

    g_assert_false(multifd_decode_init(buf, no_uuid, channels, &id, &err));
    g_assert_cmpstr(err->message, ==, want);
    g_error_free(err);
}

static void test_init_errors(void)
{
    uint8_t buf[MULTIFD_INIT_SIZE];

    multifd_encode_init(buf, no_uuid, 2);
    buf[0] = 0x12;
    expect_init_error(buf, 4, "multifd: received packet magic 12223344 expected 11223344");
    multifd_encode_init(buf, no_uuid, 2);
    buf[7] = 2;
    expect_init_error(buf, 4, "multifd: received packet version 2 expected 1");
    multifd_encode_init(buf, no_uuid, 2);
    buf[8] = 0xab;
    expect_init_error(buf, 4, "multifd: received uuid 'ab000000-0000-0000-0000-000000000000' "
                      "and expected uuid '00000000-0000-0000-0000-000000000000' for channel 2");
    /* QEMU lets id == channels through (and overruns); we refuse it */
    multifd_encode_init(buf, no_uuid, 4);
    expect_init_error(buf, 4,
                      "multifd: received channel id 4 is greater than number of channels 4");
}

static void test_packet_bytes(void)
{
    MultiFDPacket p = {
        .flags = MULTIFD_FLAG_ZSTD, .pages_alloc = 128, .normal_pages = 2, .zero_pages = 1,
        .next_packet_size = 0x1234, .packet_num = 0x0102030405060708ULL,
        .idstr = "pc.ram", .offsets = { 0x1000, 0x5000, 0x7000 },
    };
    uint8_t buf[MULTIFD_HEADER_SIZE], want[MULTIFD_HEADER_SIZE] = {
        0x11, 0x22, 0x33, 0x44, 0, 0, 0, 1,   /* magic, version */
        0, 0, 0, 4, 0, 0, 0, 128,             /* flags, pages_alloc */
        0, 0, 0, 2, 0, 0, 0x12, 0x34,         /* normal_pages, next_packet_size */
        1, 2, 3, 4, 5, 6, 7, 8,               /* packet_num */
        0, 0, 0, 1,                           /* zero_pages (10.2) */
    };
    MultiFDPacket q;

    g_assert_cmpuint(MULTIFD_HEADER_SIZE, ==, 1344);
    memcpy(want + 64, "pc.ram", 6);
    want[320 + 6] = 0x10;
    want[328 + 6] = 0x50;
    want[336 + 6] = 0x70;
    multifd_encode_packet(&p, buf);
    g_assert_cmpmem(buf, sizeof(buf), want, sizeof(want));
    g_assert_true(multifd_decode_packet(buf, &q, NULL));
    g_assert_cmpuint(q.flags, ==, p.flags);
    g_assert_cmpuint(q.normal_pages, ==, 2);
    g_assert_cmpuint(q.zero_pages, ==, 1);
    g_assert_cmpuint(q.next_packet_size, ==, 0x1234);
    g_assert_cmpuint(q.packet_num, ==, p.packet_num);
    g_assert_cmpstr(q.idstr, ==, "pc.ram");
    g_assert_cmpuint(q.offsets[2], ==, 0x7000);
}

static void expect_packet_error(uint32_t alloc, uint32_t normal, uint32_t zero, const char *want)
{
    MultiFDPacket p = { .pages_alloc = alloc, .normal_pages = 0, .idstr = "x" }, q;
    uint8_t buf[MULTIFD_HEADER_SIZE];
    GError *err = NULL;

    multifd_encode_packet(&p, buf);
    buf[19] = normal;
    buf[35] = zero;
    g_assert_false(multifd_decode_packet(buf, &q, &err));
    g_assert_cmpstr(err->message, ==, want);
    g_error_free(err);
}

static void test_packet_errors(void)
{
    expect_packet_error(129, 0, 0,
                        "multifd: received packet with size 129 and expected a size of 128");
    expect_packet_error(4, 5, 0, "multifd: received packet with 5 normal pages and expected "
                        "maximum pages are 4");
    expect_packet_error(4, 3, 2, "multifd: received packet with 2 zero pages and expected "
                        "maximum zero pages are 1");
}

static void test_wire(void)
{
    unsigned major, minor;
    MultiFDWire w;

    w = multifd_wire_for(7, 2, true);
    g_assert_true(w.sync_per_section);
    g_assert_false(w.zero_in_packets);
    w = multifd_wire_for(8, 0, true);
    g_assert_true(w.sync_per_section);
    w = multifd_wire_for(8, 1, true);
    g_assert_false(w.sync_per_section);
    g_assert_false(w.zero_in_packets);
    w = multifd_wire_for(8, 2, true);
    g_assert_false(w.zero_in_packets);
    w = multifd_wire_for(9, 0, true);
    g_assert_true(w.zero_in_packets);
    w = multifd_wire_for(10, 2, false);
    g_assert_false(w.zero_in_packets);
    g_assert_false(w.sync_per_section);

    g_assert_true(multifd_machine_version("pc-i440fx-7.2", &major, &minor));
    g_assert_cmpuint(major, ==, 7);
    g_assert_cmpuint(minor, ==, 2);
    g_assert_true(multifd_machine_version("mapram-10.2", &major, &minor));
    g_assert_cmpuint(major, ==, 10);
    g_assert_false(multifd_machine_version("pc", &major, &minor));
    g_assert_false(multifd_machine_version("q35-7.2x", &major, &minor));
}

/* n pages of a pattern that compresses (and differs page to page). */
static uint8_t *make_pages(unsigned n, unsigned seed)
{
    uint8_t *p = g_malloc(n * MULTIFD_PAGE_SIZE);

    for (size_t i = 0; i < n * MULTIFD_PAGE_SIZE; i++) {
        p[i] = (i / 64 + seed) * 31 + (i % 7 == 0 ? i / 4096 : 0);
    }
    return p;
}

static void to_iov(uint8_t *pages, unsigned n, struct iovec *iov)
{
    for (unsigned i = 0; i < n; i++) {
        iov[i] = (struct iovec){ pages + i * MULTIFD_PAGE_SIZE, MULTIFD_PAGE_SIZE };
    }
}

/*
 * Two packets of one channel: their bytes are one zlib stream that a
 * plain inflate reads (the header only at the start of the first), and
 * our decoder reads them packet by packet.
 */
static void test_zlib_stream(void)
{
    const MultiFDMethod *m = multifd_method_find("zlib");
    g_autofree uint8_t *a = make_pages(3, 1), *b = make_pages(2, 9);
    g_autofree uint8_t *out = g_malloc(MULTIFD_MAX_COMPRESSED * 2);
    g_autofree uint8_t *back = g_malloc(5 * MULTIFD_PAGE_SIZE);
    struct iovec iov[3];
    size_t la, lb;

    g_assert_true(m == &multifd_zlib);
    void *st = m->send_new(1, NULL);
    to_iov(a, 3, iov);
    g_assert_true(m->compress(st, iov, 3, out, MULTIFD_MAX_COMPRESSED, &la, NULL));
    to_iov(b, 2, iov);
    g_assert_true(m->compress(st, iov, 2, out + la, MULTIFD_MAX_COMPRESSED, &lb, NULL));
    m->send_free(st);
    g_assert_cmphex(out[0], ==, 0x78);     /* zlib header, level 1 */
    g_assert_cmphex(out[1], ==, 0x01);
    /* Z_SYNC_FLUSH ends each packet with an empty stored block */
    g_assert_cmpmem(out + la - 4, 4, "\0\0\xff\xff", 4);
    g_assert_cmpmem(out + la + lb - 4, 4, "\0\0\xff\xff", 4);

    z_stream zs = { 0 };
    g_assert_cmpint(inflateInit(&zs), ==, Z_OK);
    zs.next_in = out;
    zs.avail_in = la + lb;
    zs.next_out = back;
    zs.avail_out = 5 * MULTIFD_PAGE_SIZE;
    g_assert_cmpint(inflate(&zs, Z_SYNC_FLUSH), ==, Z_OK);
    g_assert_cmpuint(zs.total_out, ==, 5 * MULTIFD_PAGE_SIZE);
    inflateEnd(&zs);
    g_assert_cmpmem(back, 3 * MULTIFD_PAGE_SIZE, a, 3 * MULTIFD_PAGE_SIZE);
    g_assert_cmpmem(back + 3 * MULTIFD_PAGE_SIZE, 2 * MULTIFD_PAGE_SIZE, b,
                    2 * MULTIFD_PAGE_SIZE);

    memset(back, 0, 5 * MULTIFD_PAGE_SIZE);
    st = m->recv_new(NULL);
    to_iov(back, 3, iov);
    g_assert_true(m->decompress(st, out, la, iov, 3, NULL));
    to_iov(back + 3 * MULTIFD_PAGE_SIZE, 2, iov);
    g_assert_true(m->decompress(st, out + la, lb, iov, 2, NULL));
    m->recv_free(st);
    g_assert_cmpmem(back, 3 * MULTIFD_PAGE_SIZE, a, 3 * MULTIFD_PAGE_SIZE);
    g_assert_cmpmem(back + 3 * MULTIFD_PAGE_SIZE, 2 * MULTIFD_PAGE_SIZE, b,
                    2 * MULTIFD_PAGE_SIZE);
}

/* Same for zstd: one frame, never ended, read by plain ZSTD_decompressStream. */
static void test_zstd_stream(void)
{
    const MultiFDMethod *m = multifd_method_find("zstd");
    g_autofree uint8_t *a = make_pages(3, 2), *b = make_pages(2, 5);
    g_autofree uint8_t *out = g_malloc(MULTIFD_MAX_COMPRESSED * 2);
    g_autofree uint8_t *back = g_malloc(5 * MULTIFD_PAGE_SIZE);
    struct iovec iov[3];
    size_t la, lb;

    g_assert_true(m == &multifd_zstd);
    void *st = m->send_new(1, NULL);
    to_iov(a, 3, iov);
    g_assert_true(m->compress(st, iov, 3, out, MULTIFD_MAX_COMPRESSED, &la, NULL));
    to_iov(b, 2, iov);
    g_assert_true(m->compress(st, iov, 2, out + la, MULTIFD_MAX_COMPRESSED, &lb, NULL));
    m->send_free(st);
    g_assert_cmpmem(out, 4, "\x28\xb5\x2f\xfd", 4);   /* zstd frame magic */

    ZSTD_DStream *zds = ZSTD_createDStream();
    ZSTD_initDStream(zds);
    ZSTD_inBuffer ib = { out, la + lb, 0 };
    ZSTD_outBuffer ob = { back, 5 * MULTIFD_PAGE_SIZE, 0 };
    while (ib.pos < ib.size && ob.pos < ob.size) {
        g_assert_false(ZSTD_isError(ZSTD_decompressStream(zds, &ob, &ib)));
    }
    ZSTD_freeDStream(zds);
    g_assert_cmpuint(ob.pos, ==, 5 * MULTIFD_PAGE_SIZE);
    g_assert_cmpmem(back, 3 * MULTIFD_PAGE_SIZE, a, 3 * MULTIFD_PAGE_SIZE);

    memset(back, 0, 5 * MULTIFD_PAGE_SIZE);
    st = m->recv_new(NULL);
    to_iov(back, 3, iov);
    g_assert_true(m->decompress(st, out, la, iov, 3, NULL));
    to_iov(back + 3 * MULTIFD_PAGE_SIZE, 2, iov);
    g_assert_true(m->decompress(st, out + la, lb, iov, 2, NULL));
    m->recv_free(st);
    g_assert_cmpmem(back + 3 * MULTIFD_PAGE_SIZE, 2 * MULTIFD_PAGE_SIZE, b,
                    2 * MULTIFD_PAGE_SIZE);
}

/* --- whole channels over socketpairs ------------------------------------ */

#define BLOCK_PAGES 600

typedef struct Block {
    uint8_t *host;
} Block;

static bool find_block(void *opaque, const char *idstr, uint8_t **host, uint64_t *len)
{
    Block *b = opaque;

    if (strcmp(idstr, "pc.ram") != 0) {
        return false;
    }
    *host = b->host;
    *len = BLOCK_PAGES * MULTIFD_PAGE_SIZE;
    return true;
}

static void round_trip(unsigned channels, const char *method, bool zero_in_packets)
{
    g_autofree uint8_t *src = make_pages(BLOCK_PAGES, 3);
    g_autofree uint8_t *dst = g_malloc(BLOCK_PAGES * MULTIFD_PAGE_SIZE);
    IOChannel *s_ioc[8], *r_ioc[8];
    PageStats stats = { 0 };
    Block blk = { dst };

    /* every 5th page zero; the destination starts with garbage there */
    for (unsigned i = 0; i < BLOCK_PAGES; i += 5) {
        memset(src + i * MULTIFD_PAGE_SIZE, 0, MULTIFD_PAGE_SIZE);
    }
    memset(dst, 0x5a, BLOCK_PAGES * MULTIFD_PAGE_SIZE);
    for (unsigned i = 0; i < channels; i++) {
        int sv[2];
        g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), ==, 0);
        s_ioc[i] = io_channel_socket_new_fd(sv[0], "send");
        r_ioc[i] = io_channel_socket_new_fd(sv[1], "recv");
    }
    MultiFDSendConfig sc = {
        .channels = channels, .method = multifd_method_find(method), .level = 1,
        .zero_in_packets = zero_in_packets, .stats = &stats,
    };
    MultiFDSend *s = multifd_send_new(&sc, s_ioc, NULL);
    /* the receiver reads each initial packet before its threads start */
    for (unsigned i = 0; i < channels; i++) {
        uint8_t init[MULTIFD_INIT_SIZE], id;
        g_assert_true(io_channel_read_all(r_ioc[i], init, sizeof(init), NULL));
        g_assert_true(multifd_decode_init(init, no_uuid, channels, &id, NULL));
        g_assert_cmpuint(id, ==, i);
    }
    MultiFDRecvConfig rc = {
        .channels = channels, .method = sc.method, .find_block = find_block, .find_opaque = &blk,
    };
    MultiFDRecv *r = multifd_recv_new(&rc, r_ioc, NULL);
    for (unsigned pass = 0; pass < 2; pass++) {
        for (unsigned i = 0; i < BLOCK_PAGES; i++) {
            if (zero_in_packets || i % 5) {
                g_assert_true(multifd_send_queue_page(s, "pc.ram", src,
                                                      (uint64_t)i * MULTIFD_PAGE_SIZE, NULL));
            } else {
                memset(dst + i * MULTIFD_PAGE_SIZE, 0, MULTIFD_PAGE_SIZE);   /* "main" */
            }
        }
        g_assert_true(multifd_send_sync(s, NULL));
        g_assert_true(multifd_recv_sync(r, NULL));
        g_assert_cmpmem(dst, BLOCK_PAGES * MULTIFD_PAGE_SIZE, src,
                        BLOCK_PAGES * MULTIFD_PAGE_SIZE);
        memset(dst, 0x5a, BLOCK_PAGES * MULTIFD_PAGE_SIZE);
    }
    g_assert_cmpuint(stat64_get(&stats.normal_pages), ==, 2 * (BLOCK_PAGES - BLOCK_PAGES / 5));
    g_assert_cmpuint(stat64_get(&stats.zero_pages), ==,
                     zero_in_packets ? 2 * BLOCK_PAGES / 5 : 0);
    multifd_send_free(s);
    multifd_recv_free(r);
    for (unsigned i = 0; i < channels; i++) {
        io_channel_unref(s_ioc[i]);
        io_channel_unref(r_ioc[i]);
    }
}

static void test_channels_none(void)
{
    round_trip(3, "none", false);
}

static void test_channels_zero_in_packets(void)
{
    round_trip(2, "none", true);
}

static void test_channels_zlib(void)
{
    round_trip(4, "zlib", true);
}

static void test_channels_zstd(void)
{
    round_trip(1, "zstd", false);
}

/* A packet naming a block the receiver lacks fails the sync with QEMU's text. */
/*
 * A sender without guest memory (mapram load --connect): pages queued
 * from a buffer that is scribbled over as soon as multifd_send_drain()
 * returns, as the tool refills its ring; what arrives is still the page.
 */
static void test_channels_caller_buffers(void)
{
    enum { GROUP = 48, CHANNELS = 3 };     /* a group spans packets and channels */
    g_autofree uint8_t *src = make_pages(BLOCK_PAGES, 7);
    g_autofree uint8_t *dst = g_malloc0(BLOCK_PAGES * MULTIFD_PAGE_SIZE);
    g_autofree uint8_t *buf = g_malloc(GROUP * MULTIFD_PAGE_SIZE);
    IOChannel *s_ioc[CHANNELS], *r_ioc[CHANNELS];
    Block blk = { dst };

    for (unsigned i = 0; i < CHANNELS; i++) {
        int sv[2];
        g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), ==, 0);
        s_ioc[i] = io_channel_socket_new_fd(sv[0], "send");
        r_ioc[i] = io_channel_socket_new_fd(sv[1], "recv");
    }
    MultiFDSendConfig sc = { .channels = CHANNELS, .method = multifd_method_find("zstd"),
                             .level = 1 };
    MultiFDSend *s = multifd_send_new(&sc, s_ioc, NULL);
    for (unsigned i = 0; i < CHANNELS; i++) {
        uint8_t init[MULTIFD_INIT_SIZE], id;
        g_assert_true(io_channel_read_all(r_ioc[i], init, sizeof(init), NULL));
        g_assert_true(multifd_decode_init(init, no_uuid, CHANNELS, &id, NULL));
    }
    MultiFDRecvConfig rc = {
        .channels = CHANNELS, .method = sc.method, .find_block = find_block, .find_opaque = &blk,
    };
    MultiFDRecv *r = multifd_recv_new(&rc, r_ioc, NULL);
    for (unsigned first = 0; first < BLOCK_PAGES; first += GROUP) {
        unsigned n = MIN(GROUP, BLOCK_PAGES - first);
        memcpy(buf, src + (uint64_t)first * MULTIFD_PAGE_SIZE, n * MULTIFD_PAGE_SIZE);
        for (unsigned i = 0; i < n; i++) {
            g_assert_true(multifd_send_queue_data(s, "pc.ram", buf + i * MULTIFD_PAGE_SIZE,
                                                  (uint64_t)(first + i) * MULTIFD_PAGE_SIZE,
                                                  NULL));
        }
        g_assert_true(multifd_send_drain(s, NULL));
        memset(buf, 0xee, GROUP * MULTIFD_PAGE_SIZE);
    }
    g_assert_true(multifd_send_sync(s, NULL));
    g_assert_true(multifd_recv_sync(r, NULL));
    g_assert_cmpmem(dst, BLOCK_PAGES * MULTIFD_PAGE_SIZE, src, BLOCK_PAGES * MULTIFD_PAGE_SIZE);
    multifd_send_free(s);
    multifd_recv_free(r);
    for (unsigned i = 0; i < CHANNELS; i++) {
        io_channel_unref(s_ioc[i]);
        io_channel_unref(r_ioc[i]);
    }
}

static void test_channels_unknown_block(void)
{
    IOChannel *s_ioc, *r_ioc;
    g_autofree uint8_t *src = make_pages(1, 0);
    uint8_t init[MULTIFD_INIT_SIZE];
    Block blk = { NULL };
    GError *err = NULL;
    int sv[2];

    g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), ==, 0);
    s_ioc = io_channel_socket_new_fd(sv[0], "send");
    r_ioc = io_channel_socket_new_fd(sv[1], "recv");
    MultiFDSendConfig sc = { .channels = 1 };
    MultiFDSend *s = multifd_send_new(&sc, &s_ioc, NULL);
    g_assert_true(io_channel_read_all(r_ioc, init, sizeof(init), NULL));
    MultiFDRecvConfig rc = { .channels = 1, .find_block = find_block, .find_opaque = &blk };
    MultiFDRecv *r = multifd_recv_new(&rc, &r_ioc, NULL);
    g_assert_true(multifd_send_queue_page(s, "vga.vram", src, 0, NULL));
    multifd_send_sync(s, NULL);
    g_assert_false(multifd_recv_sync(r, &err));
    g_assert_cmpstr(err->message, ==, "multifd channel 0: multifd: unknown ram block vga.vram");
    g_error_free(err);
    multifd_send_shutdown(s);
    multifd_send_free(s);
    multifd_recv_free(r);
    io_channel_unref(s_ioc);
    io_channel_unref(r_ioc);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/multifd/init/bytes", test_init_bytes);
    g_test_add_func("/multifd/init/errors", test_init_errors);
    g_test_add_func("/multifd/packet/bytes", test_packet_bytes);
    g_test_add_func("/multifd/packet/errors", test_packet_errors);
    g_test_add_func("/multifd/wire", test_wire);
    g_test_add_func("/multifd/zlib/stream", test_zlib_stream);
    g_test_add_func("/multifd/zstd/stream", test_zstd_stream);
    g_test_add_func("/multifd/channels/none", test_channels_none);
    g_test_add_func("/multifd/channels/zero-in-packets", test_channels_zero_in_packets);
    g_test_add_func("/multifd/channels/zlib", test_channels_zlib);
    g_test_add_func("/multifd/channels/zstd", test_channels_zstd);
    g_test_add_func("/multifd/channels/unknown-block", test_channels_unknown_block);
    g_test_add_func("/multifd/channels/caller-buffers", test_channels_caller_buffers);
    return g_test_run();
}
