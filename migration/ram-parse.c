/*
 * The "ram" section's record parser, shared by the VM's loader and the
 * mapram tool (which has no guest RAM: its sinks count or rewrite pages).
 */
#include "ram.h"
#include "util/error.h"
#include <string.h>

/* ------------------------------------------------------------------ */
/* record parser (shared with tools)                                   */

void ram_parse_state_init(RamParseState *s, bool mapped_ram)
{
    memset(s, 0, sizeof(*s));
    s->mapped_ram = mapped_ram;
    s->last_block = -1;
    s->block_names = g_ptr_array_new_with_free_func(g_free);
    s->block_lengths = g_array_new(FALSE, FALSE, sizeof(uint64_t));
}

void ram_parse_state_clear(RamParseState *s)
{
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

static bool parse_block_list(QEMUFile *f, uint64_t total, RamParseState *s,
                             const RamSink *sink, void *opaque, GError **errp)
{
    uint64_t sum = 0;
    uint64_t file_size = s->mapped_ram ? channel_file_size(f) : 0;
    s->total = total;
    while (sum < total) {
        char idstr[256];
        uint64_t len;
        if (!qemu_get_counted_string(f, idstr, errp) || !qemu_get_be64(f, &len, errp)) {
            return false;
        }
        if (!idstr[0] || len == 0 || len % RAM_PAGE_SIZE || sum + len > total) {
            error_setg(errp, "Bad RAM block record '%s' (length 0x%llx)",
                       idstr, (unsigned long long)len);
            return false;
        }
        unsigned idx = s->block_names->len;
        g_ptr_array_add(s->block_names, g_strdup(idstr));
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

static int lookup_block(RamParseState *s, const char *idstr)
{
    for (guint i = 0; i < s->block_names->len; i++) {
        if (strcmp(g_ptr_array_index(s->block_names, i), idstr) == 0) {
            return i;
        }
    }
    return -1;
}

bool ram_parse_section(QEMUFile *f, uint8_t section_type, RamParseState *s,
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
            if (!parse_block_list(f, addr, s, sink, opaque, errp)) {
                return false;
            }
            continue;
        }
        if (flags == RAM_SAVE_FLAG_EOS) {
            return true;
        }
        if (s->mapped_ram) {
            error_setg(errp, "Unexpected RAM flags: %d", flags);
            return false;
        }
        if (flags == RAM_SAVE_FLAG_MULTIFD_FLUSH) {
            continue;
        }
        int idx = s->last_block;
        if (flags & RAM_SAVE_FLAG_CONTINUE) {
            if (idx < 0) {
                error_setg(errp, "Ack, bad migration stream! (CONTINUE without a block)");
                return false;
            }
        } else if (flags & (RAM_SAVE_FLAG_PAGE | RAM_SAVE_FLAG_ZERO | RAM_SAVE_FLAG_XBZRLE)) {
            char idstr[256];
            if (!qemu_get_counted_string(f, idstr, errp)) {
                return false;
            }
            idx = lookup_block(s, idstr);
            if (idx < 0) {
                error_setg(errp, "Can't find block %s", idstr);
                return false;
            }
        }
        unsigned kind = flags & ~RAM_SAVE_FLAG_CONTINUE;
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
            uint8_t ch;
            if (!qemu_get_byte(f, &ch, errp)) {
                return false;
            }
            if (ch != 0) {
                error_setg(errp, "Found a zero page with value %d", ch);
                return false;
            }
            if (!sink->page(opaque, idx, addr, true, errp)) {
                return false;
            }
        } else {
            uint8_t *dest = sink->page_dest(opaque, idx, addr, errp);
            if (!dest || !qemu_get_buffer(f, dest, RAM_PAGE_SIZE, errp) ||
                !sink->page(opaque, idx, addr, false, errp)) {
                return false;
            }
        }
    }
}

