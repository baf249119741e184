/*
 * Multifd over sockets, in QEMU's wire format (reference
 * qemu-postcopy-multifd.md §6): N extra connections beside the main one,
 * each opened with a 64-byte initial packet and then carrying packets of
 * up to 128 pages of one RAM block (a 1344-byte header, then the page
 * data, raw or through the channel's zlib/zstd stream).  A SYNC packet
 * on every channel matches a marker on the main stream (the RAM record
 * MULTIFD_FLUSH, or every RAM EOS in the per-section mode of 7.2 and of
 * machines <= 8.0); the receiver applies each channel's pages up to its
 * SYNC before the main stream goes past the marker.
 *
 * multifd.c owns every byte of the initial packet and the packet header
 * (the codec, encoder and decoder side by side) and runs the channels'
 * threads; page data goes between guest memory and the sockets by
 * writev/readv (or through a method's compression buffer), never through
 * the buffered QEMUFile.  A compression method is one file
 * (multifd-zlib.c, multifd-zstd.c) with a MultiFDMethod row.
 *
 * Sending (the migration thread owns the MultiFDSend):
 *
 *   s = multifd_send_new(&cfg, iocs, errp);     channels connected, one thread each
 *   multifd_send_queue_page(s, "pc.ram", host, off, errp);   per page
 *   (or multifd_send_queue_data(s, "pc.ram", buf, off, errp), then
 *   multifd_send_drain(s, errp) before buf is reused: the tool's load)
 *   multifd_send_sync(s, errp);                 then the marker on main
 *   multifd_send_shutdown(s);                   any thread: cancel / failure
 *   multifd_send_free(s);
 *
 * Receiving (the incoming thread owns the MultiFDRecv):
 *
 *   r = multifd_recv_new(&cfg, iocs, errp);     initial packets already read
 *   multifd_recv_sync(r, errp);                 at each marker of the main stream
 *   multifd_recv_shutdown(r);                   any thread: stop
 *   multifd_recv_free(r);                       end of the load
 */
#ifndef MIGRATION_MULTIFD_H
#define MIGRATION_MULTIFD_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>
#include "io/channel.h"
#include "page-channels.h"

#define MULTIFD_MAGIC           0x11223344U
#define MULTIFD_VERSION         1
#define MULTIFD_INIT_SIZE       64
#define MULTIFD_PAGE_SIZE       4096U
/* 512 KiB of pages per packet: the header always has room for 128 offsets */
#define MULTIFD_PACKET_PAGES    128U
#define MULTIFD_HEADER_SIZE     (320U + 8U * MULTIFD_PACKET_PAGES)
#define MULTIFD_IDSTR_SIZE      256
/* QEMU's receive buffer for compressed data, which it never checks against */
#define MULTIFD_MAX_COMPRESSED  (2U * MULTIFD_PACKET_PAGES * MULTIFD_PAGE_SIZE)

#define MULTIFD_FLAG_SYNC       0x01U
#define MULTIFD_FLAG_METHOD     0x3eU   /* 10.2's mask; 7.2 used 0x0e */
#define MULTIFD_FLAG_NOCOMP     0x00U
#define MULTIFD_FLAG_ZLIB       0x02U
#define MULTIFD_FLAG_ZSTD       0x04U

/* ---- codec ---- */

/* A packet header, in host order. */
typedef struct MultiFDPacket {
    uint32_t flags;
    uint32_t pages_alloc;
    uint32_t normal_pages;
    uint32_t zero_pages;          /* 10.2; a 7.2 sender leaves the field 0 */
    uint32_t next_packet_size;    /* payload bytes after the header */
    uint64_t packet_num;
    char idstr[MULTIFD_IDSTR_SIZE];
    /* normal_pages offsets, then zero_pages offsets */
    uint64_t offsets[MULTIFD_PACKET_PAGES];
} MultiFDPacket;

/* The 64-byte packet a channel starts with. */
void multifd_encode_init(uint8_t buf[MULTIFD_INIT_SIZE], const uint8_t uuid[16], uint8_t id);
/*
 * Checks magic, version, uuid against ours and id < channels; *id is the
 * channel's number.  QEMU's texts.
 */
bool multifd_decode_init(const uint8_t buf[MULTIFD_INIT_SIZE], const uint8_t uuid[16],
                         unsigned channels, uint8_t *id, GError **errp);
void multifd_encode_packet(const MultiFDPacket *p, uint8_t buf[MULTIFD_HEADER_SIZE]);
/* Checks magic, version and the page counts (QEMU's texts). */
bool multifd_decode_packet(const uint8_t buf[MULTIFD_HEADER_SIZE], MultiFDPacket *p,
                           GError **errp);

/* ---- compression methods (one file each) ---- */

typedef struct MultiFDMethod {
    const char *name;             /* multifd-compression's value */
    uint32_t flag;                /* MULTIFD_FLAG_* */
    /* One stream per channel for the whole migration. */
    void *(*send_new)(int level, GError **errp);
    void (*send_free)(void *st);
    /*
     * The n pages into out (cap bytes), one flush at the end, so that
     * every packet's bytes are decodable once received; *len = bytes made.
     */
    bool (*compress)(void *st, const struct iovec *pages, unsigned n, uint8_t *out,
                     size_t cap, size_t *len, GError **errp);
    void *(*recv_new)(GError **errp);
    void (*recv_free)(void *st);
    /* in (len bytes) into the n pages, each exactly MULTIFD_PAGE_SIZE. */
    bool (*decompress)(void *st, const uint8_t *in, size_t len, const struct iovec *pages,
                       unsigned n, GError **errp);
} MultiFDMethod;

extern const MultiFDMethod multifd_zlib;   /* multifd-zlib.c */
extern const MultiFDMethod multifd_zstd;   /* multifd-zstd.c */

/* The method for a multifd-compression value; NULL for "none". */
const MultiFDMethod *multifd_method_find(const char *name);

/* ---- what the QEMU version we speak as sends ---- */

typedef struct MultiFDWire {
    /*
     * Every RAM EOS is a sync marker (7.2, and 10.2 with machines <= 8.0);
     * else the MULTIFD_FLUSH record is, once per pass.
     */
    bool sync_per_section;
    /* Zero pages listed in packets (>= 9.0 with zero-page-detection=multifd). */
    bool zero_in_packets;
} MultiFDWire;

/*
 * The wire of QEMU major.minor (from the machine type's "-X.Y"):
 * zero_page_multifd says whether zero-page-detection is "multifd".
 */
MultiFDWire multifd_wire_for(unsigned major, unsigned minor, bool zero_page_multifd);
/* "pc-i440fx-7.2", "mapram-10.2" -> 7, 2 / 10, 2; false when there is no "-X.Y" */
bool multifd_machine_version(const char *machine, unsigned *major, unsigned *minor);

/* ---- sending ---- */

typedef struct MultiFDSend MultiFDSend;

typedef struct MultiFDSendConfig {
    unsigned channels;            /* 1..255, the length of iocs */
    const MultiFDMethod *method;  /* NULL: pages as they are */
    int level;                    /* the method's level */
    bool zero_in_packets;         /* zero pages found by the threads, listed in packets */
    uint8_t uuid[16];
    PageStats *stats;             /* caller's counters: packet bytes, pages; outlives the channels */
} MultiFDSendConfig;

/*
 * Takes a reference on each of iocs (connected, in channel order); every
 * thread writes its initial packet at once.  NULL + errp if a method
 * could not be set up.
 */
MultiFDSend *multifd_send_new(const MultiFDSendConfig *cfg, IOChannel *const *iocs,
                              GError **errp);
/*
 * The page at offset off of block idstr (host: the block's memory) goes
 * into the pending packet; a full packet, or one of another block, goes
 * to the next idle channel (waiting for one).  False with the first
 * error of any channel.
 */
bool multifd_send_queue_page(MultiFDSend *s, const char *idstr, uint8_t *host, uint64_t off,
                             GError **errp);
/*
 * The same for a sender without guest memory (mapram load --connect): the
 * page's 4096 bytes are at data, which stays the caller's and unchanged
 * until multifd_send_drain() or multifd_send_sync() returned.
 */
bool multifd_send_queue_data(MultiFDSend *s, const char *idstr, const uint8_t *data,
                             uint64_t off, GError **errp);
/* The pending packet out; returns once every channel has written all it was handed. */
bool multifd_send_drain(MultiFDSend *s, GError **errp);
/*
 * The pending packet out, then a SYNC packet on every channel; returns
 * once each has been written.  The caller then puts the marker on main.
 */
bool multifd_send_sync(MultiFDSend *s, GError **errp);
/* Any thread: wake every blocked channel (their sockets shut down). */
void multifd_send_shutdown(MultiFDSend *s);
/* Joins the threads, drops the channels; NULL is fine. */
void multifd_send_free(MultiFDSend *s);

/* ---- accepting ---- */

/* Polled while waiting for a connection or its first bytes: true = give up. */
typedef bool (*MultiFDStop)(void *opaque);

/*
 * Accepts on l until the main connection and channels multifd
 * connections are there, in any order (10.2's senders connect the
 * channels first, 7.2's the main one first), each told by its first 4
 * bytes; a multifd one's initial packet is read and checked at once.
 * chans (channels entries, zeroed) receives a reference per channel by
 * its id, also on failure (the caller drops them).  Returns the main
 * connection, or NULL + errp (QEMU's texts).
 */
IOChannel *multifd_accept_all(const IOListener *l, unsigned channels, IOChannel **chans,
                              MultiFDStop stop, void *opaque, GError **errp);

/*
 * While a load runs from what multifd_accept_all took: its thread accepts
 * the connections that still come on l.  One that starts as a multifd
 * channel comes from a source with more channels than ours (or another
 * wrong one): its initial packet is checked as an awaited one is, which
 * fails (QEMU's texts: "multifd: received channel id 4 is greater than
 * number of channels 4", or "already setup" for an id we have), and
 * main is shut down, so that the load ends with that reason rather than
 * with the main stream's end once the source gives up.  Anything else
 * is closed unread, as QEMU drops extra connections.
 */
typedef struct MultiFDWatch MultiFDWatch;
MultiFDWatch *multifd_watch_start(const IOListener *l, unsigned channels, IOChannel *main);
/*
 * Stops and frees w (NULL: none), shutting the listener down (it takes
 * no more connections); true, with its reason, if it failed the load.
 */
bool multifd_watch_end(MultiFDWatch *w, GError **errp);

/* ---- receiving ---- */

typedef struct MultiFDRecv MultiFDRecv;

/* Where a block named in a packet lives; false when there is no such block. */
typedef bool (*MultiFDFindBlock)(void *opaque, const char *idstr, uint8_t **host,
                                 uint64_t *used_length);

/*
 * For a receiver without guest memory (mapram save --listen): a packet's
 * normal pages, read or decompressed into the channel's buffer (data,
 * p->normal_pages × 4096 bytes, page-aligned), handed over with its zero
 * pages; called from channel's thread, which goes on once it returns.
 * The callback checks the block and the offsets.
 */
typedef bool (*MultiFDPages)(void *opaque, unsigned channel, const MultiFDPacket *p,
                             uint8_t *data, GError **errp);

typedef struct MultiFDRecvConfig {
    unsigned channels;
    const MultiFDMethod *method;  /* NULL: none */
    MultiFDFindBlock find_block;  /* called from the channel threads; or NULL and: */
    void *find_opaque;
    MultiFDPages pages;
    void *pages_opaque;
    /*
     * Optional, called once from the channel thread that failed first, so
     * that the caller can stop a main stream that would otherwise wait
     * for data that never comes (it shuts the main connection down).
     */
    void (*on_error)(void *opaque);
    void *error_opaque;
} MultiFDRecvConfig;

/* Takes a reference on each of iocs (channel order, initial packets read). */
MultiFDRecv *multifd_recv_new(const MultiFDRecvConfig *cfg, IOChannel *const *iocs,
                              GError **errp);
/* Waits until every channel has reached a SYNC, then lets them go on. */
bool multifd_recv_sync(MultiFDRecv *r, GError **errp);
/* Any thread: shut the sockets down, so that blocked threads end. */
void multifd_recv_shutdown(MultiFDRecv *r);
/* The first error of any channel, copied into errp; false when there was none. */
bool multifd_recv_error(MultiFDRecv *r, GError **errp);
/* Shuts down, joins the threads, drops the channels; NULL is fine. */
void multifd_recv_free(MultiFDRecv *r);

#endif
