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
 */
#include "mapram-tool.h"
#include "libvirt-compress.h"
#include "libvirt-image.h"
#include "../migration/mapped-ram-csum.h"
#include "../migration/page-channels.h"
#include "../migration/ram-codec.h"
#include "../migration/savevm.h"
#include "util/bitmap.h"
#include "util/error.h"
#include "util/osdep.h"
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>

/*
 * The pages go out in chunks of one block, read ahead into a ring of
 * RING_CHUNKS buffers: each chunk is one batch of reads for one worker, so
 * the workers read several chunks at once while the writer sends the
 * oldest, and the writer waits only for the chunk it sends next.  Before,
 * 64 MiB windows were read as one batch each, double-buffered behind a
 * sync of every worker, so one worker read while the others idled: QEMU
 * 7.2's interleaved 4 GiB guest (bench/qemu-exec.sh) took 4.8 s to go into
 * a pipe alone, 3.8 s in 4 MiB chunks.
 *
 * The ring is one region in transparent huge pages, a chunk per huge page:
 * faulting it in and pinning it for every O_DIRECT read cost less than in
 * 4 KiB pages (CPU time of that load 1.76 s -> 1.4 s; 1.04 s -> 0.73 s on
 * the clustered guest).  32 MiB read ahead is enough: 64 MiB in 4 MiB
 * chunks was no faster, and every MiB of it is first touched at each load.
 */
#define CHUNK_PAGES  512ULL
#define CHUNK_BYTES  (CHUNK_PAGES * RAM_PAGE_SIZE)
#define RING_CHUNKS  16
/* checksums: a chunk holds whole runs of the table */
G_STATIC_ASSERT(CHUNK_PAGES % MRC_RUN_PAGES == 0);
#define HUGE_PAGE_BYTES (2 * 1024 * 1024)

typedef struct InBlock {
    char *idstr;
    uint64_t npages;
    MappedRamHeader hdr;
    unsigned long *bmap;
    const MrcBlock *sums;       /* in LoadCtx.csum, or NULL: not checked */
} InBlock;

/* Pages [first, first + n) of one block. */
typedef struct Chunk {
    unsigned block;
    uint64_t first, n;
} Chunk;

/* A ring buffer: the chunk read into it, and whether its reads are done. */
typedef struct Slot {
    uint8_t *buf;
    uint64_t *hashes;           /* CHUNK_PAGES: page hashes of the chunk, stored by the workers */
    PageBatch batch;
} Slot;

typedef struct LoadCtx {
    const PageIoOptions *o;
    char *path;
    QEMUFile *out;
    PageChannels *pc;
    RamDecoder dec;             /* the file's ram section */
    RamEncoder enc;             /* the stream's */
    GPtrArray *blocks;          /* InBlock * */
    uint8_t *ring_buf;          /* RING_CHUNKS * CHUNK_BYTES, huge-page aligned */
    Slot ring[RING_CHUNKS];
    PageSeg *segs;              /* CHUNK_PAGES: a chunk's reads being queued */
    uint64_t ram_done;
    Progress *progress;
    bool csum_looked;           /* the file's end was searched for a checksum table */
    MrcTable *csum;             /* or NULL: none (or --no-checksums) */
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
    if (c->o->checksums && !c->csum_looked) {
        c->csum_looked = true;
        if (!mrc_table_read_trailer(qemu_file_get_ioc(f), &c->csum, errp)) {
            return false;
        }
    }
    if (c->csum && !mrc_table_match(c->csum, idstr, used_length, hdr, &b->sums, errp)) {
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
 * holes stay unread.
 */
#define READ_GAP_PAGES 4
/* One read request at most: 1 MiB. */
#define READ_RUN_PAGES (MAPPED_RAM_LOAD_BUF_SIZE / RAM_PAGE_SIZE)

/*
 * Read the chunk's set runs into slot as one batch.  What a run reads
 * through a gap is never sent: emit_chunk() sends a ZERO record for every
 * clear page.
 */
static bool queue_chunk(LoadCtx *c, const Chunk *k, Slot *slot, GError **errp)
{
    InBlock *b = g_ptr_array_index(c->blocks, k->block);
    unsigned n = 0;
    MappedRamRuns it;
    MappedRamRun r;

    mapped_ram_runs_init(&it, b->bmap, k->first, k->first + k->n, READ_GAP_PAGES,
                         READ_RUN_PAGES);
    while (mapped_ram_runs_next(&it, &r)) {
        c->segs[n++] = (PageSeg) { slot->buf + (r.start - k->first) * RAM_PAGE_SIZE,
                                   (r.end - r.start) * RAM_PAGE_SIZE,
                                   b->hdr.pages_offset + r.start * RAM_PAGE_SIZE,
                                   b->sums ? slot->hashes + (r.start - k->first) : NULL };
    }
    return page_channels_queue_batch(c->pc, false, c->segs, n, &slot->batch, errp);
}

/* The chunk's records; its page data is queued by reference until the next flush. */
static void emit_chunk(LoadCtx *c, const Chunk *k, const uint8_t *buf)
{
    InBlock *b = g_ptr_array_index(c->blocks, k->block);
    for (uint64_t p = k->first; p < k->first + k->n; p++) {
        if (test_bit(p, b->bmap)) {
            ram_encode_page(&c->enc, c->out, k->block, p * RAM_PAGE_SIZE,
                            buf + (p - k->first) * RAM_PAGE_SIZE);
        } else {
            ram_encode_zero_page(&c->enc, c->out, k->block, p * RAM_PAGE_SIZE);
        }
    }
    c->ram_done += k->n * RAM_PAGE_SIZE;
    progress_update(c->progress, c->ram_done);
}

static GArray *plan_chunks(LoadCtx *c)
{
    GArray *chunks = g_array_new(FALSE, FALSE, sizeof(Chunk));
    for (guint i = 0; i < c->blocks->len; i++) {
        InBlock *b = g_ptr_array_index(c->blocks, i);
        for (uint64_t p = 0; p < b->npages; p += CHUNK_PAGES) {
            Chunk k = { i, p, MIN(CHUNK_PAGES, b->npages - p) };
            g_array_append_val(chunks, k);
        }
    }
    return chunks;
}

/*
 * Send chunk i once its reads are done; its buffer is free again after
 * the flush (the page data went out by reference), for chunk i + RING_CHUNKS.
 */
static bool send_chunk(LoadCtx *c, GArray *chunks, guint i, GError **errp)
{
    Slot *slot = &c->ring[i % RING_CHUNKS];

    const Chunk *k = &g_array_index(chunks, Chunk, i);
    InBlock *b = g_ptr_array_index(c->blocks, k->block);

    if (!page_channels_wait_batch(c->pc, &slot->batch, errp)) {
        return false;
    }
    /* a chunk is whole runs of the table: checked before any of its pages goes out */
    if (b->sums && !mrc_check_runs(b->sums, b->bmap, slot->hashes, k->first, k->n, errp)) {
        return false;
    }
    emit_chunk(c, k, slot->buf);
    if (!qemu_fflush(c->out)) {
        return qemu_file_propagate_error(c->out, errp);
    }
    return i + RING_CHUNKS >= chunks->len ||
           queue_chunk(c, &g_array_index(chunks, Chunk, i + RING_CHUNKS), slot, errp);
}

/* All pages, as one PART section of the ram section sid. */
static bool emit_pages(LoadCtx *c, uint32_t sid, GError **errp)
{
    g_autoptr(GArray) chunks = plan_chunks(c);

    savevm_put_section_short_header(c->out, QEMU_VM_SECTION_PART, sid);
    for (guint i = 0; i < MIN(chunks->len, RING_CHUNKS); i++) {
        if (!queue_chunk(c, &g_array_index(chunks, Chunk, i), &c->ring[i], errp)) {
            return false;
        }
    }
    for (guint i = 0; i < chunks->len; i++) {
        if (!send_chunk(c, chunks, i, errp)) {
            return false;
        }
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
        if (si->type == QEMU_VM_SECTION_PART) {
            return true;            /* only EOS in a mapped-ram PART: nothing to carry */
        }
        if (si->type == QEMU_VM_SECTION_START) {
            /* the header went out before the block list */
            ram_encode_eos(c->out);
            savevm_put_section_footer(c->out, si->section_id);
            return emit_pages(c, si->section_id, errp);
        }
        savevm_put_section_header(c->out, si);
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
    qemu_put_byte(((LoadCtx *)opaque)->out, QEMU_VM_EOF);
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

/* Best effort: without huge pages the ring works the same, a little slower. */
static void alloc_ring(LoadCtx *c)
{
    c->ring_buf = qemu_memalign(HUGE_PAGE_BYTES, RING_CHUNKS * CHUNK_BYTES);
    madvise(c->ring_buf, RING_CHUNKS * CHUNK_BYTES, MADV_HUGEPAGE);
    for (unsigned i = 0; i < RING_CHUNKS; i++) {
        c->ring[i].buf = c->ring_buf + i * CHUNK_BYTES;
        c->ring[i].hashes = g_new(uint64_t, CHUNK_PAGES);
    }
}

bool mapram_mapped_to_stream(const char *path, uint64_t offset, IOChannel *out,
                             const PageIoOptions *o, GError **errp)
{
    LoadCtx c = { .o = o, .path = g_strdup(path) };
    c.blocks = g_ptr_array_new_with_free_func(in_block_free);
    c.progress = progress_new(o->name ? o->name : "mapram load", o->progress);
    c.out = qemu_file_new_output(out, 0);
    alloc_ring(&c);
    c.segs = g_new(PageSeg, CHUNK_PAGES);
    QEMUFile *in = tool_open_input(path, offset, errp);
    bool ok = in != NULL;
    if (ok) {
        PageChannelsConfig cfg = {
            .path = path, .flags = O_RDONLY, .channels = o->channels ? o->channels : 1,
            .direct_io = o->direct_io, .queue_depth = o->queue_depth,
        };
        c.pc = page_channels_new(&cfg, errp);
        ok = c.pc && savevm_walk_stream(in, &load_visitor, &c, true, errp);
    }
    if (c.pc) {
        if (!ok) {
            page_channels_abort(c.pc);
        }
        page_channels_free(c.pc);
    }
    ok = qemu_fclose(c.out, ok ? errp : NULL) && ok;
    if (in) {
        qemu_fclose(in, NULL);
    }
    qemu_vfree(c.ring_buf);
    for (unsigned i = 0; i < RING_CHUNKS; i++) {
        g_free(c.ring[i].hashes);
    }
    mrc_table_free(c.csum);
    g_free(c.segs);
    progress_finish(c.progress, ok);
    ram_decoder_clear(&c.dec);
    ram_encoder_clear(&c.enc);
    g_ptr_array_unref(c.blocks);
    g_free(c.path);
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

int cmd_load(int argc, char **argv)
{
    PageIoOptions o;
    g_autofree char *path = NULL;
    uint64_t offset;
    GError *err = NULL;
    if (!tool_parse_file_command("load", argc, argv,
                                 "FILE[,offset=N] - write a mapped-ram file as a QEMU migration "
                                 "stream on stdout (or a libvirt save image's data)",
                                 false, &o, &path, &offset)) {
        return 2;
    }
    /* QEMU reads a 64 KiB pipe by default: a larger one keeps it fed */
    fcntl(STDOUT_FILENO, F_SETPIPE_SZ, 1024 * 1024);
    g_autoptr(LibvirtImage) img = NULL;
    if (offset == 0 && !libvirt_image_open(path, &img, &err)) {
        fprintf(stderr, "mapram load: %s: %s\n", path, err->message);
        g_error_free(err);
        return 1;
    }
    if (img && img->format != LIBVIRT_FORMAT_SPARSE) {
        if (!load_libvirt_stream(path, img, &err)) {
            fprintf(stderr, "mapram load: %s: %s\n", path, err->message);
            g_error_free(err);
            return 1;
        }
        return 0;
    }
    if (img && img->partial) {
        fprintf(stderr, "mapram load: %s: %s\n", path, LIBVIRT_PARTIAL_PROBLEM);
        return 1;
    }
    g_autoptr(IOChannel) out = io_channel_file_new_dup(STDOUT_FILENO, "stdout", &err);
    if (img) {
        offset = img->data_offset;     /* a sparse image: the mapped-ram file after libvirt's data */
    }
    if (!out || !mapram_mapped_to_stream(path, offset, out, &o, &err)) {
        fprintf(stderr, "mapram load: %s\n", err->message);
        g_error_free(err);
        return 1;
    }
    return io_channel_close(out, NULL) ? 0 : 1;
}
