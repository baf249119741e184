/*
 * The machine's memory map: main RAM at guest-physical 0 ("pc.ram", or
 * the -machine memory-backend's id), then a VGA framebuffer and a BIOS
 * ROM image, so that migration always sees several blocks of different
 * sizes, as it does with a real PC machine.
 */
#include <string.h>

#include "util/cutils.h"
#include "util/error.h"
#include "system-internal.h"

#define VGA_VRAM_SIZE (16 * MiB)
#define BIOS_SIZE     (256 * KiB)
/* PC addresses of the framebuffer BAR and the BIOS below 4 GiB. */
#define VGA_VRAM_GPA  0xfd000000ULL
#define BIOS_GPA      (4 * GiB - BIOS_SIZE)

static RAMBlock *main_ram;    /* immutable after vm_memory_init */

RAMBlock *vm_main_ram(void)
{
    return main_ram;
}

static const MemBackendConfig *find_backend(const VMConfig *cfg, const char *id)
{
    for (guint i = 0; i < cfg->backends->len; i++) {
        const MemBackendConfig *b = g_ptr_array_index(cfg->backends, i);
        if (strcmp(b->id, id) == 0) {
            return b;
        }
    }
    return NULL;
}

/*
 * -mem-prealloc is QEMU's shorthand for prealloc=on and prealloc-threads
 * = the vCPU count on every memory backend, the implicit one included;
 * what a backend says itself wins.
 */
static bool backend_prealloc(const VMConfig *cfg, const MemBackendConfig *b, RAMBlock *rb,
                             GError **errp)
{
    bool on = b && b->prealloc >= 0 ? b->prealloc : cfg->mem_prealloc;
    unsigned threads = b && b->prealloc_threads ? b->prealloc_threads
                       : cfg->mem_prealloc ? cfg->smp : 1;

    return !on || ram_block_prealloc(rb, threads, errp);
}

static RAMBlock *backend_add(const VMConfig *cfg, const MemBackendConfig *b, uint64_t gpa,
                             GError **errp)
{
    RAMBlock *rb = ram_block_add(b->id, b->size, gpa, b->kind, b->shared,
                                 b->mem_path, errp);

    if (!rb) {
        g_prefix_error(errp, "memory backend '%s': ", b->id);
        return NULL;
    }
    /* QEMU's prealloc error names no backend: neither do we */
    return backend_prealloc(cfg, b, rb, errp) ? rb : NULL;
}

static bool main_ram_init(const VMConfig *cfg, GError **errp)
{
    const MemBackendConfig *b;

    if (!cfg->memory_backend) {
        main_ram = ram_block_add("pc.ram", cfg->ram_size, 0, "ram", false, NULL, errp);
        return main_ram != NULL && backend_prealloc(cfg, NULL, main_ram, errp);
    }
    b = find_backend(cfg, cfg->memory_backend);
    if (!b) {
        error_setg(errp, "Memory backend '%s' not found", cfg->memory_backend);
        return false;
    }
    if (cfg->ram_size_given && b->size != cfg->ram_size) {
        error_setg(errp, "Size specified by -m option must match size of "
                   "explicitly specified 'memory-backend' property");
        return false;
    }
    main_ram = backend_add(cfg, b, 0, errp);
    return main_ram != NULL;
}

/*
 * A firmware-looking image: a signature, code-like bytes without zeros
 * (so no page of it is a zero page) and a reset vector at the top.
 */
static void bios_fill(RAMBlock *rb)
{
    static const char sig[] = "MAPRAM-BIOS 1.0";
    g_autofree uint8_t *img = g_malloc(rb->used_length);
    uint32_t x = 0x1234567u;

    for (uint64_t i = 0; i < rb->used_length; i++) {
        x = x * 1103515245u + 12345u;
        img[i] = (x >> 16) & 0xff ? (x >> 16) & 0xff : 0x90;
    }
    memcpy(img, sig, sizeof(sig) - 1);
    /* jmp far f000:e05b, where a PC's reset vector points */
    memcpy(img + rb->used_length - 16, "\xea\x5b\xe0\x00\xf0", 5);
    guest_write(rb, 0, img, rb->used_length);
}

/* PC addresses when main RAM leaves room below them, else above RAM. */
static void device_ram_gpas(uint64_t main_size, uint64_t *vga, uint64_t *bios)
{
    if (main_size <= VGA_VRAM_GPA) {
        *vga = VGA_VRAM_GPA;
        *bios = BIOS_GPA;
    } else {
        *vga = ROUND_UP(main_size, GiB);
        *bios = *vga + VGA_VRAM_SIZE;
    }
}

/* Backends the machine does not use as RAM still exist, off the map. */
static bool other_backends_init(const VMConfig *cfg, uint64_t gpa, GError **errp)
{
    for (guint i = 0; i < cfg->backends->len; i++) {
        const MemBackendConfig *b = g_ptr_array_index(cfg->backends, i);

        if (g_strcmp0(b->id, cfg->memory_backend) == 0) {
            continue;
        }
        if (!backend_add(cfg, b, gpa, errp)) {
            return false;
        }
        gpa = ROUND_UP(gpa + b->size, GiB);
    }
    return true;
}

bool vm_memory_init(const VMConfig *cfg, GError **errp)
{
    uint64_t vga_gpa, bios_gpa;
    RAMBlock *bios;

    if (!main_ram_init(cfg, errp)) {
        return false;
    }
    /* without a VGA (-vga none) nothing is mapped at its range */
    device_ram_gpas(main_ram->used_length, &vga_gpa, &bios_gpa);
    if (!cfg->no_vga &&
        !ram_block_add("vga.vram", VGA_VRAM_SIZE, vga_gpa, "ram", false, NULL, errp)) {
        return false;
    }
    bios = ram_block_add("pc.bios", BIOS_SIZE, bios_gpa, "ram", false, NULL, errp);
    if (!bios) {
        return false;
    }
    bios_fill(bios);
    return other_backends_init(cfg, ROUND_UP(MAX(bios_gpa + BIOS_SIZE, 4 * GiB), GiB),
                               errp);
}
