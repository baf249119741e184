/*
 * The "ram" section's codec.  See ram-codec.h.
 *
 * The decoder is shared by the VM's loader and the mapram tool (which has
 * no guest RAM: its sinks count or rewrite pages); the encoder by the
 * VM's save and the tool's save and load.
 */
#include "ram-codec.h"
#include "savevm.h"
#include "util/error.h"
#include <string.h>

/*
 * Record flags, in the low bits of a record's be64 (below the page size).
 * QEMU's names and values; private to this file.
 */
#define RAM_SAVE_FLAG_ZERO          0x002
#define RAM_SAVE_FLAG_MEM_SIZE      0x004
#define RAM_SAVE_FLAG_PAGE          0x008
#define RAM_SAVE_FLAG_EOS           0x010
#define RAM_SAVE_FLAG_CONTINUE      0x020
#define RAM_SAVE_FLAG_XBZRLE        0x040
#define RAM_SAVE_FLAG_MULTIFD_FLUSH 0x200

/* ------------------------------------------------------------------ */
/* encoder                                                             */

void ram_encoder_init(RamEncoder *e)
{
    e->idstrs = g_ptr_array_new_with_free_func(g_free);
    e->last_block = -1;
}

void ram_encoder_clear(RamEncoder *e)
{
    if (e->idstrs) {
        g_ptr_array_unref(e->idstrs);
    }
    e->idstrs = NULL;
    e->last_block = -1;
}

void ram_encode_mem_size(RamEncoder *e, QEMUFile *f, uint64_t total)
{
    g_ptr_array_set_size(e->idstrs, 0);
    e->last_block = -1;
    qemu_put_be64(f, total | RAM_SAVE_FLAG_MEM_SIZE);
}

bool ram_encode_block(RamEncoder *e, QEMUFile *f, const char *idstr, uint64_t used_length,
                      MappedRamHeader *mapped, GError **errp)
{
    g_ptr_array_add(e->idstrs, g_strdup(idstr));
    qemu_put_counted_string(f, idstr);
    qemu_put_be64(f, used_length);
    if (mapped) {
        return mapped_ram_put_block(f, used_length, RAM_PAGE_SIZE, mapped, errp);
    }
    return true;
}

/* The record's be64, and the idstr unless CONTINUE says "same block". */
static void put_page_header(RamEncoder *e, QEMUFile *f, unsigned block, uint64_t offset,
                            unsigned flags)
{
    g_assert(block < e->idstrs->len);
    if ((int)block == e->last_block) {
        qemu_put_be64(f, offset | flags | RAM_SAVE_FLAG_CONTINUE);
    } else {
        qemu_put_be64(f, offset | flags);
        qemu_put_counted_string(f, g_ptr_array_index(e->idstrs, block));
        e->last_block = block;
    }
}

void ram_encode_page(RamEncoder *e, QEMUFile *f, unsigned block, uint64_t offset,
                     const uint8_t *data)
{
    put_page_header(e, f, block, offset, RAM_SAVE_FLAG_PAGE);
    qemu_put_buffer_async(f, data, RAM_PAGE_SIZE);
}

void ram_encode_zero_page(RamEncoder *e, QEMUFile *f, unsigned block, uint64_t offset)
{
    put_page_header(e, f, block, offset, RAM_SAVE_FLAG_ZERO);
    qemu_put_byte(f, 0);
}

void ram_encode_eos(QEMUFile *f)
{
    qemu_put_be64(f, RAM_SAVE_FLAG_EOS);
}

void ram_encode_multifd_flush(QEMUFile *f)
{
    qemu_put_be64(f, RAM_SAVE_FLAG_MULTIFD_FLUSH);
}

/* ------------------------------------------------------------------ */
/* decoder                                                             */

void ram_decoder_init(RamDecoder *s, bool mapped_ram)
{
    memset(s, 0, sizeof(*s));
    s->mapped_ram = mapped_ram;
    s->last_block = -1;
    s->block_names = g_ptr_array_new_with_free_func(g_free);
    s->block_index = g_hash_table_new(g_str_hash, g_str_equal);
    s->block_lengths = g_array_new(FALSE, FALSE, sizeof(uint64_t));
}

void ram_decoder_clear(RamDecoder *s)
{
    if (s->block_index) {
        g_hash_table_unref(s->block_index);
    }
    if (s->block_names) {
        g_ptr_array_unref(s->block_names);
    }
    if (s->block_lengths) {
        g_array_unref(s->block_lengths);
    }
    memset(s, 0, sizeof(*s));
}

/* 0 = unknown: a stream from a pipe or a socket has no size to check against. */
static uint64_t channel_file_size(QEMUFile *f)
{
    off_t size = io_channel_size(qemu_file_get_ioc(f), NULL);

    return size < 0 ? 0 : size;
}

static int lookup_block(RamDecoder *s, const char *idstr);

static bool decode_block_list(QEMUFile *f, uint64_t total, RamDecoder *s,
                             const RamSink *sink, void *opaque, GError **errp)
{
    uint64_t sum = 0;
    uint64_t file_size = s->mapped_ram ? channel_file_size(f) : 0;

    s->total = total;
    if (sink->mem_size && !sink->mem_size(opaque, total, errp)) {
        return false;
    }
    while (sum < total) {
        char idstr[256];
        uint64_t len;
        if (!qemu_get_counted_string(f, idstr, errp) || !qemu_get_be64(f, &len, errp)) {
            return false;
        }
        if (!idstr[0] || len == 0 || len % RAM_PAGE_SIZE || len > total - sum) {
            error_setg(errp, "Bad RAM block record '%s' (length 0x%llx)",
                       idstr, (unsigned long long)len);
            return false;
        }
        /* a second record would load over the first, or race it */
        if (lookup_block(s, idstr) >= 0) {
            error_setg(errp, "RAM block '%s' listed twice", idstr);
            return false;
        }
        unsigned idx = s->block_names->len;
        char *name = g_strdup(idstr);
        g_ptr_array_add(s->block_names, name);
        g_hash_table_insert(s->block_index, name, GUINT_TO_POINTER(idx + 1));
        g_array_append_val(s->block_lengths, len);
        if (s->mapped_ram) {
            MappedRamHeader hdr;
            if (!mapped_ram_get_block(f, idstr, len, file_size, &hdr, errp)) {
                return false;
            }
            if (!sink->block(opaque, f, idx, idstr, len, &hdr, errp)) {
                return false;
            }
            if (!qemu_file_set_offset(f, hdr.pages_offset + len, errp)) {
                return false;
            }
        } else if (!sink->block(opaque, f, idx, idstr, len, NULL, errp)) {
            return false;
        }
        sum += len;
    }
    return true;
}

static int lookup_block(RamDecoder *s, const char *idstr)
{
    /* a hash: a crafted list of a million blocks must not take a million^2 compares */
    return (int)GPOINTER_TO_UINT(g_hash_table_lookup(s->block_index, idstr)) - 1;
}

/*
 * The block a page record is for: the last one (CONTINUE) or the one the
 * idstr that follows names.  With flags of no page kind *idx may be -1:
 * the caller refuses those flags before it uses *idx.
 */
static bool decode_page_block(RamDecoder *s, QEMUFile *f, unsigned flags, int *idx,
                              GError **errp)
{
    *idx = s->last_block;
    if (flags & RAM_SAVE_FLAG_CONTINUE) {
        if (*idx < 0) {
            error_setg(errp, "Ack, bad migration stream! (CONTINUE without a block)");
            return false;
        }
        return true;
    }
    if (flags & (RAM_SAVE_FLAG_PAGE | RAM_SAVE_FLAG_ZERO | RAM_SAVE_FLAG_XBZRLE)) {
        char idstr[256];
        if (!qemu_get_counted_string(f, idstr, errp)) {
            return false;
        }
        *idx = lookup_block(s, idstr);
        if (*idx < 0) {
            error_setg(errp, "Can't find block %s", idstr);
            return false;
        }
    }
    return true;
}

static bool decode_zero_page(QEMUFile *f, int idx, uint64_t addr, const RamSink *sink,
                             void *opaque, GError **errp)
{
    uint8_t ch;

    if (!qemu_get_byte(f, &ch, errp)) {
        return false;
    }
    if (ch != 0) {
        error_setg(errp, "Found a zero page with value %d", ch);
        return false;
    }
    return sink->page(opaque, idx, addr, true, errp);
}

static bool decode_data_page(QEMUFile *f, int idx, uint64_t addr, const RamSink *sink,
                             void *opaque, GError **errp)
{
    uint8_t *dest = sink->page_dest(opaque, idx, addr, errp);

    return dest && qemu_get_buffer(f, dest, RAM_PAGE_SIZE, errp) &&
           sink->page(opaque, idx, addr, false, errp);
}

/* A stream's page record (ZERO or PAGE, with or without CONTINUE). */
static bool decode_page_record(RamDecoder *s, QEMUFile *f, unsigned flags, uint64_t addr,
                               const RamSink *sink, void *opaque, GError **errp)
{
    unsigned kind = flags & ~RAM_SAVE_FLAG_CONTINUE;
    int idx;

    if (!decode_page_block(s, f, flags, &idx, errp)) {
        return false;
    }
    if (kind == RAM_SAVE_FLAG_XBZRLE) {
        error_setg(errp, "XBZRLE pages are not supported");
        return false;
    }
    if (kind != RAM_SAVE_FLAG_ZERO && kind != RAM_SAVE_FLAG_PAGE) {
        error_setg(errp, "Unknown combination of migration flags: 0x%x", flags);
        return false;
    }
    uint64_t blen = g_array_index(s->block_lengths, uint64_t, idx);
    if (addr >= blen) {
        error_setg(errp, "Illegal RAM offset 0x%llx in block %s", (unsigned long long)addr,
                   (char *)g_ptr_array_index(s->block_names, idx));
        return false;
    }
    s->last_block = idx;
    if (kind == RAM_SAVE_FLAG_ZERO) {
        return decode_zero_page(f, idx, addr, sink, opaque, errp);
    }
    return decode_data_page(f, idx, addr, sink, opaque, errp);
}

bool ram_decode_section(RamDecoder *s, QEMUFile *f, uint8_t section_type,
                        const RamSink *sink, void *opaque, GError **errp)
{
    for (;;) {
        uint64_t v;
        if (!qemu_get_be64(f, &v, errp)) {
            return false;
        }
        unsigned flags = v & (RAM_PAGE_SIZE - 1);
        uint64_t addr = v & ~(RAM_PAGE_SIZE - 1);

        if (flags & RAM_SAVE_FLAG_MEM_SIZE) {
            if (flags != RAM_SAVE_FLAG_MEM_SIZE || section_type != QEMU_VM_SECTION_START ||
                s->block_names->len) {
                error_setg(errp, "Unexpected RAM block list (flags 0x%x)", flags);
                return false;
            }
            if (!decode_block_list(f, addr, s, sink, opaque, errp)) {
                return false;
            }
            continue;
        }
        if (flags == RAM_SAVE_FLAG_EOS) {
            if (section_type == QEMU_VM_SECTION_START && !s->saw_flush) {
                s->sync_per_section = true;
            }
            return !sink->multifd_sync || !s->sync_per_section ||
                   sink->multifd_sync(opaque, errp);
        }
        if (s->mapped_ram) {
            /* mapped-ram bodies carry the block list and EOS, no page record */
            error_setg(errp, "Unexpected RAM flags: %d", flags);
            return false;
        }
        if (flags == RAM_SAVE_FLAG_MULTIFD_FLUSH) {
            s->saw_flush = true;
            if (sink->multifd_sync && !sink->multifd_sync(opaque, errp)) {
                return false;
            }
            continue;
        }
        if (!decode_page_record(s, f, flags, addr, sink, opaque, errp)) {
            return false;
        }
    }
}
