/*
 * mapram load: a mapped-ram file -> a sequential QEMU migration stream
 * (stdout), for `migrate-incoming "exec:mapram load FILE"`.
 *
 * The "ram" START is re-emitted with the plain block list; right after it
 * one PART section carries every page: set bits as PAGE records (read
 * ahead by the page channels into a ring of chunks, so the single writer
 * rarely waits), clear bits as ZERO records, so the guest
 * gets exactly the saved memory whatever the destination held before.
 * SWITCHOVER_START is dropped: QEMUs before 10.0 reject it and it carries
 * no state.
 *
 * --connect URI sends the same stream to a QEMU listening with multifd on
 * (migrate-incoming tcp:/unix:): the main connection carries everything but
 * the set pages, which go in multifd packets over N more connections
 * (multifd.c's send side, reading the ring's buffers); clear pages stay
 * ZERO records on main, the only form QEMU 7.2 takes.  Each multifd
 * marker (every RAM EOS for 7.2 and machines <= 8.0, else a MULTIFD_FLUSH
 * record) follows a SYNC on every channel.  conn-watch.c turns a QEMU
 * that closes a connection, or stops reading, into a clear error.
 */
#include "mapram-tool.h"
#include "chunk-ring.h"
#include "conn-watch.h"
#include "libvirt-compress.h"
#include "libvirt-image.h"
#include "../migration/mapped-ram-csum.h"
#include "../migration/migration-internal.h"
#include "../migration/multifd.h"
#include "../migration/page-channels.h"
#include "../migration/ram-codec.h"
#include "../migration/savevm.h"
#include "util/bitmap.h"
#include "util/error.h"
#include "util/osdep.h"
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/*
 * The pages go out in chunks read ahead into a ring (chunk-ring.h), so the
 * single writer rarely waits.  32 MiB read ahead is enough: 64 MiB in
 * 4 MiB chunks was no faster, and every MiB of it is first touched at
 * each load.
 */
#define RING_CHUNKS  16
/*
 * --connect: the multifd packets point into the ring, so a slot is read
 * into again only once its packets are written; the channels are drained
 * every DRAIN_CHUNKS chunks (8 MiB), while the other slots read ahead.
 */
#define DRAIN_CHUNKS 4
G_STATIC_ASSERT(RING_CHUNKS % DRAIN_CHUNKS == 0);

typedef struct InBlock {
    char *idstr;
    uint64_t npages;
    MappedRamHeader hdr;
    unsigned long *bmap;
    const MrcBlock *sums;       /* in LoadCtx.csum, or NULL: not checked */
} InBlock;

typedef struct LoadCtx {
    const PageIoOptions *o;
    char *path;
    QEMUFile *out;
    PageChannels *pc;
    RamDecoder dec;             /* the file's ram section */
    RamEncoder enc;             /* the stream's */
    GPtrArray *blocks;          /* InBlock * */
    /*
     * The pages read ahead while the PART section goes out; on a failure
     * freed only after the page channels (their workers may still read
     * into it) and multifd (its packets point into it).
     */
    ChunkRing *ring;
    uint64_t ram_done;
    Progress *progress;
    MrcLoader csum;             /* the file's checksum table, unless --no-checksums */
    /* --connect */
    MultiFDSend *mfd;           /* the set pages' channels; NULL: all on out */
    ConnWatch *watch;
    unsigned wire_major, wire_minor;    /* --qemu-version, or 0: the machine type's */
    bool per_section;           /* every RAM EOS is a multifd marker (else MULTIFD_FLUSH) */
} LoadCtx;

static void in_block_free(gpointer p)
{
    InBlock *b = p;
    g_free(b->idstr);
    g_free(b->bmap);
    g_free(b);
}

static bool l_mem_size(void *opaque, uint64_t total, GError **errp)
{
    LoadCtx *c = opaque;
    ram_encode_mem_size(&c->enc, c->out, total);
    progress_set_total(c->progress, total);
    return true;
}

static bool l_block(void *opaque, QEMUFile *f, unsigned idx, const char *idstr,
                    uint64_t used_length, const MappedRamHeader *hdr, GError **errp)
{
    LoadCtx *c = opaque;
    if (!hdr) {
        error_setg(errp, "the input is not a mapped-ram file");
        return false;
    }
    InBlock *b = g_new0(InBlock, 1);
    b->idstr = g_strdup(idstr);
    b->npages = used_length / RAM_PAGE_SIZE;
    b->hdr = *hdr;
    b->bmap = mapped_ram_read_bitmap(qemu_file_get_ioc(f), idstr, hdr, b->npages, errp);
    g_ptr_array_add(c->blocks, b);
    if (!b->bmap) {
        return false;
    }
    if (!mrc_loader_block(&c->csum, qemu_file_get_ioc(f), idstr, used_length, hdr, &b->sums,
                          errp)) {
        return false;
    }
    return ram_encode_block(&c->enc, c->out, idstr, used_length, NULL, errp);
}

/* The decoder of a mapped-ram file refuses page records: no page callbacks. */
static const RamSink load_sink = {
    .mem_size = l_mem_size, .block = l_block,
};

/*
 * Clear runs of at most READ_GAP_PAGES pages are read through, inside one
 * request: a hole that short costs less to zero-fill than a request of its
 * own costs to submit (each extent is a bio either way).  Measured alone
 * into a pipe, median of 4: the interleaved guest's one-page holes read
 * through (gap 4 or 64) take 1.5-1.6 s of CPU instead of 1.8 s; the
 * clustered guest's holes, 16 pages and longer, read through (gap 64) take
 * 0.66 s instead of 0.50-0.55 s and 1.40 s instead of 1.2 s, so longer
 * holes stay unread.  What a run reads through a gap is never sent:
 * emit_chunk() sends a ZERO record for every clear page.
 */
#define READ_GAP_PAGES 4
/* --connect: how long an idle QEMU gets to drop the channels it will not take */
#define CONNECT_SETTLE_MS 100

/*
 * The chunk's records; its page data is queued by reference until the
 * next flush (of out, or with --connect of the multifd channels).
 */
static bool emit_chunk(LoadCtx *c, const Chunk *k, const uint8_t *buf, GError **errp)
{
    InBlock *b = g_ptr_array_index(c->blocks, k->block);
    for (uint64_t p = k->first; p < k->first + k->n; p++) {
        const uint8_t *data = buf + (p - k->first) * RAM_PAGE_SIZE;
        if (!test_bit(p, b->bmap)) {
            ram_encode_zero_page(&c->enc, c->out, k->block, p * RAM_PAGE_SIZE);
        } else if (!c->mfd) {
            ram_encode_page(&c->enc, c->out, k->block, p * RAM_PAGE_SIZE, data);
        } else if (!multifd_send_queue_data(c->mfd, b->idstr, data, p * RAM_PAGE_SIZE, errp)) {
            return false;
        }
    }
    c->ram_done += k->n * RAM_PAGE_SIZE;
    progress_update(c->progress, c->ram_done);
    return true;
}

/*
 * --connect: a SYNC on every channel, then the marker's place on main:
 * per section, the EOS that follows is the marker; else a MULTIFD_FLUSH.
 */
static bool put_multifd_marker(LoadCtx *c, GError **errp)
{
    if (!c->mfd) {
        return true;
    }
    if (!multifd_send_sync(c->mfd, errp)) {
        return false;
    }
    if (!c->per_section) {
        ram_encode_multifd_flush(c->out);
    }
    return true;
}

/*
 * Send chunk i once its reads are done; its buffer is free again after
 * the flush (the page data went out by reference), for chunk i + RING_CHUNKS.
 */
static bool send_chunk(LoadCtx *c, guint i, GError **errp)
{
    const Chunk *k = chunk_ring_chunk(c->ring, i);
    const uint8_t *buf = chunk_ring_wait(c->ring, i, errp);

    if (!buf || !emit_chunk(c, k, buf, errp)) {
        return false;
    }
    if (!qemu_fflush(c->out)) {
        return qemu_file_propagate_error(c->out, errp);
    }
    if (!c->mfd) {
        return chunk_ring_refill(c->ring, i, errp);
    }
    if ((i + 1) % DRAIN_CHUNKS && i + 1 < chunk_ring_len(c->ring)) {
        return true;
    }
    if (!multifd_send_drain(c->mfd, errp)) {
        return false;
    }
    for (guint j = i - i % DRAIN_CHUNKS; j <= i; j++) {
        if (!chunk_ring_refill(c->ring, j, errp)) {
            return false;
        }
    }
    return true;
}

/* All pages, as one PART section of the ram section sid. */
static bool emit_pages(LoadCtx *c, uint32_t sid, GError **errp)
{
    savevm_put_section_short_header(c->out, QEMU_VM_SECTION_PART, sid);
    c->ring = chunk_ring_new(c->pc, RING_CHUNKS, READ_GAP_PAGES);
    for (guint i = 0; i < c->blocks->len; i++) {
        InBlock *b = g_ptr_array_index(c->blocks, i);
        chunk_ring_add_block(c->ring, b->bmap, b->npages, b->hdr.pages_offset, b->sums);
    }
    if (!chunk_ring_start(c->ring, errp)) {
        return false;
    }
    for (guint i = 0; i < chunk_ring_len(c->ring); i++) {
        if (!send_chunk(c, i, errp)) {
            return false;
        }
    }
    /* every read was waited for and every packet drained: no one uses the ring now */
    g_clear_pointer(&c->ring, chunk_ring_free);
    if (!put_multifd_marker(c, errp)) {
        return false;
    }
    ram_encode_eos(c->out);
    savevm_put_section_footer(c->out, sid);
    return qemu_file_propagate_error(c->out, errp);
}

bool tool_put_stream_head(QEMUFile *out, const StreamConfig *cfg, const char *path,
                          GError **errp)
{
    StreamConfig oc = *cfg;
    bool mapped = false;
    oc.caps = g_ptr_array_new_with_free_func(g_free);
    for (guint i = 0; i < cfg->caps->len; i++) {
        const char *cap = g_ptr_array_index(cfg->caps, i);
        if (!strcmp(cap, "mapped-ram")) {
            mapped = true;
        } else {
            g_ptr_array_add(oc.caps, g_strdup(cap));
        }
    }
    if (!mapped) {
        g_ptr_array_unref(oc.caps);
        error_setg(errp, "'%s' is not a mapped-ram file (its configuration has no "
                   "mapped-ram capability)", path);
        return false;
    }
    qemu_put_be32(out, QEMU_VM_FILE_MAGIC);
    qemu_put_be32(out, QEMU_VM_FILE_VERSION);
    savevm_put_configuration(out, &oc, NULL);
    g_ptr_array_unref(oc.caps);
    return true;
}

static bool l_configuration(void *opaque, QEMUFile *f, const StreamConfig *cfg, GError **errp)
{
    LoadCtx *c = opaque;
    if (!tool_put_stream_head(c->out, cfg, c->path, errp)) {
        return false;
    }
    ram_decoder_init(&c->dec, true);
    ram_encoder_init(&c->enc);
    if (c->mfd) {
        /* the destination runs the same machine type: its version says the marker */
        unsigned major = 7, minor = 2;
        if (c->wire_major) {
            major = c->wire_major;
            minor = c->wire_minor;
        } else {
            multifd_machine_version(cfg->machine, &major, &minor);
        }
        c->per_section = multifd_wire_for(major, minor, false).sync_per_section;
    }
    return true;
}

static bool l_section(void *opaque, QEMUFile *f, const SectionInfo *si, GError **errp)
{
    LoadCtx *c = opaque;
    bool is_ram = !strcmp(si->idstr, "ram") && si->type != QEMU_VM_SECTION_FULL;

    if (is_ram) {
        if (!ram_decode_section(&c->dec, f, si->type, &load_sink, c, errp)) {
            return false;
        }
        if (si->type == QEMU_VM_SECTION_START &&
            !mrc_loader_blocks_end(&c->csum, c->dec.block_names->len, errp)) {
            return false;
        }
        if (si->type == QEMU_VM_SECTION_PART) {
            return true;            /* only EOS in a mapped-ram PART: nothing to carry */
        }
        if (si->type == QEMU_VM_SECTION_START) {
            /* the header went out before the block list */
            if (!put_multifd_marker(c, errp)) {
                return false;
            }
            ram_encode_eos(c->out);
            savevm_put_section_footer(c->out, si->section_id);
            return emit_pages(c, si->section_id, errp);
        }
        savevm_put_section_header(c->out, si);
        if (!put_multifd_marker(c, errp)) {
            return false;
        }
        ram_encode_eos(c->out);
        savevm_put_section_footer(c->out, si->section_id);
        return qemu_file_propagate_error(c->out, errp);
    }
    return savevm_copy_unknown_section(f, c->out, si, errp);
}

/* The ram START header must precede the block list the sink writes. */
static bool l_section_wrapper(void *opaque, QEMUFile *f, const SectionInfo *si, GError **errp)
{
    LoadCtx *c = opaque;
    if (!strcmp(si->idstr, "ram") && si->type == QEMU_VM_SECTION_START) {
        savevm_put_section_header(c->out, si);
    }
    return l_section(opaque, f, si, errp);
}

static bool l_command(void *opaque, QEMUFile *f, uint16_t cmd, const uint8_t *data,
                      uint16_t len, GError **errp)
{
    if (cmd != MIG_CMD_SWITCHOVER_START) {
        savevm_put_command(((LoadCtx *)opaque)->out, cmd, data, len);
    }
    return true;
}

static bool l_eof(void *opaque, QEMUFile *f, GError **errp)
{
    LoadCtx *c = opaque;
    /* before the EOF byte goes out: with it the destination may run the guest */
    if (!mrc_loader_eof(&c->csum, qemu_file_get_ioc(f), qemu_file_tell(f), errp)) {
        return false;
    }
    if (c->watch) {
        /* from here on QEMU may have all it needs and close the connections */
        conn_watch_writing_done(c->watch);
    }
    qemu_put_byte(c->out, QEMU_VM_EOF);
    return true;
}

static bool l_vmdesc(void *opaque, const char *json, uint32_t len, GError **errp)
{
    savevm_put_vmdesc(((LoadCtx *)opaque)->out, json, len);
    return true;
}

static const StreamVisitor load_visitor = {
    .configuration = l_configuration,
    .section = l_section_wrapper,
    .command = l_command,
    .eof = l_eof,
    .vmdesc = l_vmdesc,
};

static void load_ctx_init(LoadCtx *c, const char *path, const PageIoOptions *o)
{
    *c = (LoadCtx){ .o = o, .path = g_strdup(path), .csum.enabled = o->checksums };
    c->blocks = g_ptr_array_new_with_free_func(in_block_free);
    c->progress = progress_new(o->name ? o->name : "mapram load", o->progress);
}

/* Walks the file at path/offset, writing to c->out (set by the caller). */
static bool load_run(LoadCtx *c, uint64_t offset, GError **errp)
{
    const PageIoOptions *o = c->o;
    QEMUFile *in = tool_open_input(c->path, offset, errp);
    bool ok = in != NULL;
    if (ok) {
        PageChannelsConfig cfg = {
            .path = c->path, .flags = O_RDONLY, .channels = o->channels ? o->channels : 1,
            .direct_io = o->direct_io, .queue_depth = o->queue_depth,
        };
        c->pc = page_channels_new(&cfg, errp);
        ok = c->pc && savevm_walk_stream(in, &load_visitor, c, true, errp);
    }
    if (c->pc) {
        if (!ok) {
            page_channels_abort(c->pc);
        }
        page_channels_free(c->pc);
        c->pc = NULL;
    }
    if (in) {
        qemu_fclose(in, NULL);
    }
    return ok;
}

static void load_ctx_clear(LoadCtx *c, bool ok)
{
    chunk_ring_free(c->ring);
    mrc_loader_clear(&c->csum);
    progress_finish(c->progress, ok);
    ram_decoder_clear(&c->dec);
    ram_encoder_clear(&c->enc);
    g_ptr_array_unref(c->blocks);
    g_free(c->path);
}

bool mapram_mapped_to_stream(const char *path, uint64_t offset, IOChannel *out,
                             const PageIoOptions *o, GError **errp)
{
    LoadCtx c;
    load_ctx_init(&c, path, o);
    c.out = qemu_file_new_output(out, 0);
    bool ok = load_run(&c, offset, errp);
    /* the message names the side that failed: the file, or the output (stdout, a file) */
    bool out_failed = qemu_file_has_error(c.out);
    GError *close_err = NULL;
    if (!qemu_fclose(c.out, &close_err)) {
        out_failed = true;
        if (ok) {
            g_propagate_error(errp, g_steal_pointer(&close_err));
            ok = false;
        }
    }
    g_clear_error(&close_err);
    if (!ok) {
        tool_prefix_file(errp, out_failed ? out->name : path);
    }
    load_ctx_clear(&c, ok);
    return ok;
}

/* ------------------------------------------------------------------ */
/* --connect                                                           */

static IOChannel *connect_one(const MigAddr *a, GError **errp)
{
    return !strcmp(a->sock_type, "unix") ? io_channel_socket_connect_unix(a->path, errp)
                                         : io_channel_socket_connect_tcp_stoppable(a->host, a->port, a->family,
                                                                                   NULL, errp);
}

/*
 * Channel i could not be connected although main was: QEMU's listener is
 * gone, because it has all the channels it expects (or none: no multifd).
 * Which of the earlier ones it closed too says how many it took.
 */
static void connect_failed(const ConnectOptions *co, IOChannel **chans, unsigned i,
                           GError **errp)
{
    if (i == 0) {
        GError *err = *errp;
        *errp = NULL;
        error_setg(errp, "multifd channel 0: %s (is QEMU's multifd capability on?)",
                   err->message);
        g_error_free(err);
        return;
    }
    g_usleep(300 * 1000);
    g_autofree bool *closed = g_new0(bool, co->channels);
    for (unsigned j = 0; j < co->channels; j++) {
        closed[j] = j >= i;
        if (j < i) {
            struct pollfd pfd = { .fd = io_channel_get_fd(chans[j]), .events = POLLIN | POLLRDHUP };
            closed[j] = poll(&pfd, 1, 0) > 0;
        }
    }
    g_clear_error(errp);
    conn_watch_diagnose(errp, false, closed, co->channels, co->compression);
}

bool mapram_mapped_to_qemu(const char *path, uint64_t offset, const ConnectOptions *co,
                           const PageIoOptions *o, GError **errp)
{
    MigAddr addr;
    const MultiFDMethod *method = NULL;
    bool mapped = false;

    if (!migration_parse_uri(co->uri, &addr, errp)) {
        mig_addr_clear(&addr);
        return false;
    }
    if (addr.kind != TRANSPORT_SOCKET || !strcmp(addr.sock_type, "fd")) {
        error_setg(errp, "--connect expects a tcp: or unix: URI, not '%s'", co->uri);
        mig_addr_clear(&addr);
        return false;
    }
    if (strcmp(co->compression, "none") != 0) {
        method = multifd_method_find(co->compression);
        if (!method) {
            error_setg(errp, "--compression expects none, zlib or zstd, not '%s'",
                       co->compression);
            mig_addr_clear(&addr);
            return false;
        }
    }
    /* a bad file is found before QEMU is touched: a started load would make it fail */
    if (!mapram_file_is_mapped(path, offset, &mapped, errp)) {
        g_autofree char *quoted = g_strdup_printf("'%s'", path);
        if (!strstr((*errp)->message, quoted)) {
            g_prefix_error(errp, "%s: ", path);       /* as tool_file_error() */
        }
        mig_addr_clear(&addr);
        return false;
    }
    if (!mapped) {
        error_setg(errp, "'%s' is not a mapped-ram file (its configuration has no "
                   "mapped-ram capability)", path);
        mig_addr_clear(&addr);
        return false;
    }

    /* main first: QEMU 7.2 takes the first connection it accepts as main */
    g_autoptr(IOChannel) main_ioc = connect_one(&addr, errp);
    IOChannel **chans = g_new0(IOChannel *, co->channels);
    int *fds = g_new(int, co->channels);
    bool ok = main_ioc != NULL;
    for (unsigned i = 0; ok && i < co->channels; i++) {
        chans[i] = connect_one(&addr, errp);
        if (!chans[i]) {
            connect_failed(co, chans, i, errp);
            ok = false;
            break;
        }
        fds[i] = io_channel_get_fd(chans[i]);
    }
    LoadCtx c;
    load_ctx_init(&c, path, o);
    c.wire_major = co->qemu_major;
    c.wire_minor = co->qemu_minor;
    if (ok) {
        MultiFDSendConfig mc = {
            .channels = co->channels, .method = method, .level = co->level,
        };
        memcpy(mc.uuid, co->uuid, sizeof(mc.uuid));
        c.mfd = multifd_send_new(&mc, chans, errp);
        ok = c.mfd != NULL;
    }
    if (ok) {
        ConnWatchConfig wc = {
            .main_fd = io_channel_get_fd(main_ioc), .chan_fds = fds,
            .channels = co->channels, .timeout_s = co->timeout_s,
            .compression = co->compression,
        };
        c.watch = conn_watch_start(&wc);
        c.out = qemu_file_new_output(main_ioc, 0);
        /* extra channels are dropped before any page goes into them */
        ok = conn_watch_settle(c.watch, co->channels ? CONNECT_SETTLE_MS : 0, errp) &&
             load_run(&c, offset, errp);
        ok = ok && (qemu_fflush(c.out) || qemu_file_propagate_error(c.out, errp));
        ok = ok && conn_watch_wait_end(c.watch, errp);
        if (!ok) {
            /* the watch's reason is the cause of what the writers saw */
            conn_watch_stop(c.watch, errp);
            multifd_send_shutdown(c.mfd);
            io_channel_shutdown(main_ioc, NULL);
        }
        qemu_fclose(c.out, NULL);
    }
    multifd_send_free(c.mfd);
    conn_watch_free(c.watch);
    if (main_ioc) {
        io_channel_close(main_ioc, NULL);
    }
    for (unsigned i = 0; i < co->channels; i++) {
        if (chans[i]) {
            io_channel_unref(chans[i]);
        }
    }
    g_free(chans);
    g_free(fds);
    load_ctx_clear(&c, ok);
    mig_addr_clear(&addr);
    return ok;
}

/*
 * A libvirt image holding a stream (raw or compressed): QEMU reads it as it
 * is, so it goes to stdout unchanged or decompressed.
 */
static bool load_libvirt_stream(const char *path, const LibvirtImage *img, GError **errp)
{
    if (img->partial) {
        error_setg(errp, "%s", LIBVIRT_PARTIAL_PROBLEM);
        return false;
    }
    int in_fd = open(path, O_RDONLY | O_CLOEXEC);
    if (in_fd < 0 || lseek(in_fd, img->data_offset, SEEK_SET) < 0) {
        error_setg_errno(errp, errno, "Unable to read '%s' from offset %" G_GUINT64_FORMAT,
                         path, img->data_offset);
        if (in_fd >= 0) {
            close(in_fd);
        }
        return false;
    }
    int out_fd = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 0);
    if (out_fd < 0) {
        error_setg_errno(errp, errno, "Unable to use stdout");
        close(in_fd);
        return false;
    }
    CodecPump *pump = codec_pump_start(img->format, false, in_fd, out_fd, errp);
    return pump && codec_pump_finish(pump, errp);
}

/* "c7a5fdbd-cdaf-9455-926a-d65c16db1809" -> 16 bytes; false when it is no UUID. */
static bool parse_uuid(const char *text, uint8_t uuid[16])
{
    if (!g_uuid_string_is_valid(text)) {
        return false;
    }
    for (unsigned i = 0, j = 0; i < 16; i++, j += 2) {
        j += text[j] == '-';
        uuid[i] = g_ascii_xdigit_value(text[j]) << 4 | g_ascii_xdigit_value(text[j + 1]);
    }
    return true;
}

/* load's own options, taken out of argv before the common ones are parsed. */
static bool parse_connect_options(int *argc, char ***argv, ConnectOptions *co, char **version,
                                  char **uuid, GError **errp)
{
    gint timeout = co->timeout_s;
    GOptionEntry entries[] = {
        { "connect", 0, 0, G_OPTION_ARG_STRING, &co->uri,
          "send to a QEMU listening on tcp:HOST:PORT or unix:PATH with multifd on", "URI" },
        { "compression", 0, 0, G_OPTION_ARG_STRING, &co->compression,
          "with --connect: QEMU's multifd-compression (none, zlib, zstd)", "METHOD" },
        { "timeout", 0, 0, G_OPTION_ARG_INT, &timeout,
          "with --connect: fail when QEMU reads nothing for this long (default 60)", "SECONDS" },
        { "qemu-version", 0, 0, G_OPTION_ARG_STRING, version,
          "with --connect: speak multifd as QEMU X.Y does (default: the saved machine "
          "type's version, 7.2 without one)", "X.Y" },
        { "uuid", 0, 0, G_OPTION_ARG_STRING, uuid,
          "with --connect: QEMU's -uuid (default: a libvirt image's domain UUID, else none)",
          "UUID" },
        { NULL }
    };
    g_autoptr(GOptionContext) ctx = g_option_context_new(NULL);
    g_option_context_set_ignore_unknown_options(ctx, TRUE);
    g_option_context_set_help_enabled(ctx, FALSE);
    g_option_context_add_main_entries(ctx, entries, NULL);
    if (!g_option_context_parse(ctx, argc, argv, errp)) {
        return false;
    }
    if (timeout < 1) {
        error_setg(errp, "--timeout expects a number of seconds above 0");
        return false;
    }
    co->timeout_s = timeout;
    g_autofree char *as_machine = *version ? g_strdup_printf("qemu-%s", *version) : NULL;
    if (as_machine && !multifd_machine_version(as_machine, &co->qemu_major, &co->qemu_minor)) {
        error_setg(errp, "--qemu-version expects X.Y, not '%s'", *version);
        return false;
    }
    if (*uuid && !parse_uuid(*uuid, co->uuid)) {
        error_setg(errp, "--uuid expects a UUID, not '%s'", *uuid);
        return false;
    }
    if (!co->uri && (co->compression || *version || *uuid)) {
        error_setg(errp, "--compression, --qemu-version and --uuid go with --connect");
        return false;
    }
    if (co->compression && strcmp(co->compression, "none") != 0 &&
        !multifd_method_find(co->compression)) {
        error_setg(errp, "--compression expects none, zlib or zstd, not '%s'", co->compression);
        return false;
    }
    return true;
}

int cmd_load(int argc, char **argv)
{
    PageIoOptions o;
    g_autofree char *path = NULL;
    g_autofree char *version = NULL;
    g_autofree char *uuid = NULL;
    uint64_t offset;
    GError *err = NULL;
    ConnectOptions co = { .timeout_s = 60, .level = 1 };
    if (!parse_connect_options(&argc, &argv, &co, &version, &uuid, &err)) {
        fprintf(stderr, "mapram load: %s\n", err->message);
        g_error_free(err);
        g_free(co.uri);
        g_free(co.compression);
        return 2;
    }
    g_autofree char *uri = co.uri;
    g_autofree char *compression = co.compression ? co.compression : g_strdup("none");
    co.compression = compression;
    /* before the common parser, which takes the options out of argv */
    bool channels_given = false;
    for (int i = 1; i < argc; i++) {
        channels_given |= g_str_has_prefix(argv[i], "--channels") || !strcmp(argv[i], "-c");
    }
    if (!tool_parse_file_command("load", argc, argv,
                                 "FILE[,offset=N] - write a mapped-ram file as a QEMU migration "
                                 "stream on stdout (or a libvirt save image's data)\n\n"
                                 "Or send it to a QEMU listening with multifd on:\n"
                                 "  --connect=URI           tcp:HOST:PORT or unix:PATH; "
                                 "--channels is QEMU's multifd-channels (default 2)\n"
                                 "  --compression=METHOD    QEMU's multifd-compression: none, "
                                 "zlib, zstd\n"
                                 "  --timeout=SECONDS       fail when QEMU reads nothing for this "
                                 "long (default 60)\n"
                                 "  --qemu-version=X.Y      speak multifd as that QEMU (default: "
                                 "the saved machine type's version, 7.2 without one)\n"
                                 "  --uuid=UUID             QEMU's -uuid, which its multifd "
                                 "channels check (default: a libvirt image's domain UUID)",
                                 false, NULL, &o, &path, &offset)) {
        return 2;
    }
    if (uri && !channels_given) {
        o.channels = 2;        /* QEMU's default multifd-channels */
    }
    co.channels = o.channels;
    if (!uri) {
        /* QEMU reads a 64 KiB pipe by default: a larger one keeps it fed */
        fcntl(STDOUT_FILENO, F_SETPIPE_SZ, 1024 * 1024);
    }
    g_autoptr(LibvirtImage) img = NULL;
    if (offset == 0 && !libvirt_image_open(path, &img, &err)) {
        tool_file_error("load", path, err->message);
        g_error_free(err);
        return 1;
    }
    if (img && img->format != LIBVIRT_FORMAT_SPARSE && uri) {
        fprintf(stderr, "mapram load: %s: --connect sends a mapped-ram file, and this libvirt "
                "image holds a %s stream (mapram convert makes it sparse)\n", path,
                libvirt_format_name(img->format));
        return 1;
    }
    if (img && img->format != LIBVIRT_FORMAT_SPARSE) {
        if (!load_libvirt_stream(path, img, &err)) {
            tool_file_error("load", path, err->message);
            g_error_free(err);
            return 1;
        }
        return 0;
    }
    if (img && img->partial) {
        fprintf(stderr, "mapram load: %s: %s\n", path, LIBVIRT_PARTIAL_PROBLEM);
        return 1;
    }
    if (img) {
        offset = img->data_offset;     /* a sparse image: the mapped-ram file after libvirt's data */
        /* libvirt starts the domain's QEMU with -uuid of the domain */
        if (!uuid && img->uuid && !parse_uuid(img->uuid, co.uuid)) {
            fprintf(stderr, "mapram load: %s: the domain's uuid '%s' is no UUID\n", path,
                    img->uuid);
            return 1;
        }
    }
    if (uri) {
        if (!mapram_mapped_to_qemu(path, offset, &co, &o, &err)) {
            fprintf(stderr, "mapram load: %s\n", err->message);
            g_error_free(err);
            return 1;
        }
        return 0;
    }
    g_autoptr(IOChannel) out = io_channel_file_new_dup(STDOUT_FILENO, "stdout", &err);
    if (!out || !mapram_mapped_to_stream(path, offset, out, &o, &err)) {
        fprintf(stderr, "mapram load: %s\n", err->message);
        g_error_free(err);
        return 1;
    }
    return io_channel_close(out, NULL) ? 0 : 1;
}
