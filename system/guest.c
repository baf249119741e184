/*
 * Guest programs run by the vCPU threads.
 *
 * A program stands in for the code a real guest would run: it touches
 * main RAM only through guest_write_u8()/guest_write(), so every write
 * lands in the dirty log the way an emulated CPU's stores do.  Its
 * registers (phase, page cursor, pass count, PRNG state, parameters) are
 * device state: the "cpu" section, instance = vCPU index.  After an
 * incoming migration the loaded phase decides what runs next, so the
 * program resumes where the source stopped instead of starting over.
 *
 * Programs:
 *   ab     QEMU's migration test guest (a-b-bootblock): 'A', zero the
 *          first byte of every page of [1 MiB, 100 MiB), then increment
 *          them in ascending order forever, 'B' every 64 passes.  vCPU 0.
 *   fill   populate main RAM once with zero/text/random chunks, split
 *          across the vCPUs, deterministic from the seed.
 *   dirty  write an 8-byte counter into random pages at a given rate.
 *   touch  fill, then, on vCPU 0 of a VM that loaded it from an incoming
 *          migration, read one byte of 1,000 distinct pages spread over
 *          RAM and time each read (the first touches of a restored guest:
 *          on demand, each may wait for its page to be read); the
 *          latencies go into the last page of RAM (TouchResults).
 *   idle   nothing.
 */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "migration/migration.h"
#include "util/ab-pattern.h"
#include "util/bufferzero.h"
#include "util/cutils.h"
#include "system-internal.h"

enum {
    PHASE_START = 0,    /* nothing done yet */
    PHASE_ZERO = 1,     /* ab: zeroing the range; fill: filling chunks */
    PHASE_LOOP = 2,     /* ab: incrementing; dirty: writing */
    PHASE_DONE = 3,     /* nothing left to do */
};

/* The range the shared checker (util/ab-pattern.h) verifies. */
#define AB_START_BYTES  AB_PATTERN_START
#define AB_END_BYTES    AB_PATTERN_END
#define AB_PASSES_PER_B 64
/* Pages per slice: how often a busy vCPU looks for a pause request. */
#define SLICE_PAGES     256

struct GuestCPU {
    unsigned index;
    RAMBlock *ram;          /* main RAM; immutable */
    /* "cpu" device state, owned by the vCPU thread while it runs: */
    uint32_t prog;          /* GuestProgramId */
    uint32_t phase;
    uint64_t cursor;        /* ab: next page; fill: next chunk */
    uint64_t begin, end;    /* ab: page range; fill: this vCPU's chunks */
    uint64_t passes;
    uint64_t prng;
    uint64_t counter;       /* dirty: last value written */
    uint32_t zero_pct, text_pct, random_pct, chunk;
    uint64_t rate;
    uint64_t seed;
    bool fill_done;
    /* touch: owned by the vCPU thread; not device state (a load restarts it) */
    uint32_t *touch_ns;
};

/*
 * touch's results, in the last page of main RAM (host byte order), so a
 * benchmark reads them with pmemsave: magic, then count, then one
 * latency per touch in ns (saturated at UINT32_MAX).  That page itself
 * is never one of the touched pages.
 */
#define TOUCH_COUNT GUEST_TOUCH_COUNT
#define TOUCH_MAGIC 0x54414c4843554f54ULL  /* "TOUCHLAT" read little-endian */
typedef struct TouchResults {
    uint64_t magic;
    uint32_t count;
    uint32_t pad;
    uint32_t ns[TOUCH_COUNT];
} TouchResults;
G_STATIC_ASSERT(sizeof(TouchResults) <= TARGET_PAGE_SIZE);

/* splitmix64: seeds and per-page streams, so any split is reproducible. */
static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t mix2(uint64_t a, uint64_t b)
{
    uint64_t s = a ^ (b * 0xd6e8feb86659fd93ULL);

    return splitmix64(&s);
}

/* xorshift64*: the fast stream that fills a page. */
static uint64_t xorshift64(uint64_t *s)
{
    uint64_t x = *s;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545f4914f6cdd1dULL;
}

/* --- ab ------------------------------------------------------------------ */

static void ab_begin(GuestCPU *g)
{
    uint64_t end = MIN(AB_END_BYTES, g->ram->used_length);

    serial_putc('A');
    g->begin = AB_START_BYTES >> TARGET_PAGE_BITS;
    g->end = end >> TARGET_PAGE_BITS;
    g->cursor = g->begin;
    g->phase = g->begin < g->end ? PHASE_ZERO : PHASE_DONE;
}

static void ab_zero_slice(GuestCPU *g)
{
    for (int n = 0; n < SLICE_PAGES && g->cursor < g->end; n++) {
        guest_write_u8(g->ram, g->cursor++ << TARGET_PAGE_BITS, 0);
    }
    if (g->cursor == g->end) {
        g->cursor = g->begin;
        g->phase = PHASE_LOOP;
    }
}

static void ab_loop_slice(GuestCPU *g)
{
    for (int n = 0; n < SLICE_PAGES; n++) {
        uint64_t off = g->cursor << TARGET_PAGE_BITS;

        guest_write_u8(g->ram, off, guest_read_u8(g->ram, off) + 1);
        if (++g->cursor < g->end) {
            continue;
        }
        g->cursor = g->begin;
        g->passes++;
        rtc_tick();
        if (g->passes % AB_PASSES_PER_B == 0) {
            serial_putc('B');
            rtc_ack_irq();
        }
    }
}

static gint64 ab_step(GuestCPU *g)
{
    if (g->index != 0) {
        return G_MAXINT64;       /* the boot sector runs on the BSP only */
    }
    switch (g->phase) {
    case PHASE_START:
        ab_begin(g);
        return 0;
    case PHASE_ZERO:
        ab_zero_slice(g);
        return 0;
    case PHASE_LOOP:
        ab_loop_slice(g);
        return 0;
    default:
        return G_MAXINT64;
    }
}

/* --- fill ---------------------------------------------------------------- */

typedef struct FillWord {
    const char *text;
    uint8_t len;
} FillWord;

#define W(s) { s, sizeof(s) - 1 }
static const FillWord fill_words[] = {
    W("the"), W("guest"), W("memory"), W("page"), W("migration"), W("file"),
    W("stream"), W("dirty"), W("bitmap"), W("offset"), W("block"), W("device"),
    W("state"), W("section"), W("channel"), W("thread"), W("write"), W("read"),
    W("zero"), W("copy"), W("load"), W("save"), W("host"), W("kernel"),
    W("buffer"), W("cache"), W("direct"), W("mapped"), W("ram"), W("qemu"),
    W("virtual"), W("machine"),
};
#undef W

/* Whole words and separators copied at once: this runs for gigabytes. */
static void fill_text_page(uint8_t *buf, uint64_t seed)
{
    size_t pos = 0, line = 0;
    uint64_t s = seed | 1;

    for (;;) {
        const FillWord *w = &fill_words[xorshift64(&s) % G_N_ELEMENTS(fill_words)];
        size_t len = w->len;

        if (pos + len + 1 > TARGET_PAGE_SIZE) {
            break;
        }
        memcpy(buf + pos, w->text, len);
        pos += len;
        line += len + 1;
        buf[pos++] = line > 64 ? '\n' : ' ';
        line = line > 64 ? 0 : line;
    }
    memset(buf + pos, ' ', TARGET_PAGE_SIZE - pos);
}

static void fill_random_page(uint8_t *buf, uint64_t seed)
{
    uint64_t s = seed | 1;

    for (size_t i = 0; i < TARGET_PAGE_SIZE; i += 8) {
        uint64_t v = xorshift64(&s);
        memcpy(buf + i, &v, 8);
    }
}

/* Zero chunks: fresh RAM already is; a file backend may hold old data. */
static void fill_zero_page(GuestCPU *g, uint64_t off)
{
    static const uint8_t zeros[TARGET_PAGE_SIZE];

    if (!buffer_is_zero(g->ram->host + off, TARGET_PAGE_SIZE)) {
        guest_write(g->ram, off, zeros, TARGET_PAGE_SIZE);
    }
}

static void fill_chunk(GuestCPU *g, uint64_t chunk)
{
    uint64_t pages = ram_block_pages(g->ram);
    uint64_t first = chunk * g->chunk;
    uint64_t last = MIN(first + g->chunk, pages);
    uint32_t kind = mix2(g->seed, chunk) % 100;
    uint8_t buf[TARGET_PAGE_SIZE];

    for (uint64_t p = first; p < last; p++) {
        uint64_t off = p << TARGET_PAGE_BITS;

        if (kind < g->zero_pct) {
            fill_zero_page(g, off);
            continue;
        }
        if (kind < g->zero_pct + g->text_pct) {
            fill_text_page(buf, mix2(g->seed ^ 0x7465787400000000ULL, p));
        } else {
            fill_random_page(buf, mix2(g->seed ^ 0x72616e6400000000ULL, p));
        }
        guest_write(g->ram, off, buf, sizeof(buf));
    }
}

static void fill_begin(GuestCPU *g, unsigned ncpus)
{
    uint64_t chunks = DIV_ROUND_UP(ram_block_pages(g->ram), g->chunk);

    g->begin = chunks * g->index / ncpus;
    g->end = chunks * (g->index + 1) / ncpus;
    g->cursor = g->begin;
    g->phase = PHASE_ZERO;
}

static gint64 fill_step(GuestCPU *g)
{
    uint64_t budget = MAX(1, SLICE_PAGES / g->chunk);

    if (g->phase != PHASE_ZERO) {
        return G_MAXINT64;
    }
    while (budget-- && g->cursor < g->end) {
        fill_chunk(g, g->cursor++);
    }
    if (g->cursor == g->end) {
        g->fill_done = true;
        g->phase = PHASE_DONE;
        return G_MAXINT64;
    }
    return 0;
}

/* --- dirty --------------------------------------------------------------- */

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void dirty_one(GuestCPU *g)
{
    uint64_t r = xorshift64(&g->prng);
    uint64_t page = r % ram_block_pages(g->ram);
    uint64_t off = (page << TARGET_PAGE_BITS) + ((r >> 52) % (TARGET_PAGE_SIZE / 8)) * 8;
    uint64_t v = ++g->counter;

    guest_write(g->ram, off, &v, sizeof(v));
}

static gint64 dirty_step(GuestCPU *g)
{
    uint64_t batch;

    if (g->rate == 0) {
        /*
         * A slice also ends after 1 ms: while RAM is not yet backed each
         * random write may back a fresh huge page first (~4 ms where the
         * host backs 0.5 GB/s), and 256 of them would keep a stop waiting
         * for a second.
         */
        uint64_t t0 = now_ns();
        for (int n = 0; n < SLICE_PAGES; n++) {
            dirty_one(g);
            if (n % 16 == 15 && now_ns() - t0 > 1000000) {
                break;
            }
        }
        return 0;
    }
    /* About 100 slices a second, at least one page each. */
    batch = CLAMP(g->rate / 100, 1, SLICE_PAGES);
    for (uint64_t n = 0; n < batch; n++) {
        dirty_one(g);
    }
    return (gint64)(batch * G_USEC_PER_SEC / g->rate);
}

/* --- touch --------------------------------------------------------------- */

static uint64_t gcd64(uint64_t a, uint64_t b)
{
    while (b) {
        uint64_t t = a % b;

        a = b;
        b = t;
    }
    return a;
}

/*
 * Page i of the touch sequence: start + i * stride modulo the pages
 * below the results page, stride coprime with their number, so the
 * first TOUCH_COUNT are distinct (RAM has more pages than that: checked
 * at start-up) and spread over all of RAM.
 */
static uint64_t touch_page(GuestCPU *g, uint64_t i)
{
    uint64_t n = ram_block_pages(g->ram) - 1;
    uint64_t start = mix2(g->seed, 0x746f756368ULL) % n;
    uint64_t stride = mix2(g->seed, 0x737472696465ULL) % n;

    while (stride == 0 || gcd64(stride, n) != 1) {
        stride = (stride + 1) % n;
    }
    return (start + i * stride) % n;
}

static void touch_slice(GuestCPU *g)
{
    for (int k = 0; k < 64 && g->cursor < TOUCH_COUNT; k++, g->cursor++) {
        uint64_t off = touch_page(g, g->cursor) << TARGET_PAGE_BITS;
        uint64_t t0 = now_ns();
        volatile uint8_t v = guest_read_u8(g->ram, off);

        (void)v;
        g->touch_ns[g->cursor] = MIN(now_ns() - t0, UINT32_MAX);
    }
    if (g->cursor == TOUCH_COUNT) {
        TouchResults *r = g_new0(TouchResults, 1);

        r->magic = TOUCH_MAGIC;
        r->count = TOUCH_COUNT;
        memcpy(r->ns, g->touch_ns, sizeof(r->ns));
        guest_write(g->ram, (ram_block_pages(g->ram) - 1) << TARGET_PAGE_BITS, r,
                    sizeof(*r));
        g_free(r);
        g->phase = PHASE_DONE;
    }
}

static gint64 touch_step(GuestCPU *g)
{
    if (g->phase == PHASE_ZERO) {
        return fill_step(g);
    }
    if (g->phase != PHASE_LOOP) {
        return G_MAXINT64;
    }
    touch_slice(g);
    return g->phase == PHASE_LOOP ? 0 : G_MAXINT64;
}

/* --- the "cpu" device ---------------------------------------------------- */

gint64 guest_cpu_step(GuestCPU *g)
{
    switch (g->prog) {
    case GUEST_PROG_AB:
        return ab_step(g);
    case GUEST_PROG_FILL:
        return fill_step(g);
    case GUEST_PROG_DIRTY:
        return dirty_step(g);
    case GUEST_PROG_TOUCH:
        return touch_step(g);
    default:
        return G_MAXINT64;
    }
}

/* A loaded state must describe a program this VM can run on its RAM. */
static int guest_cpu_post_load(void *opaque, int version_id)
{
    GuestCPU *g = opaque;
    uint64_t pages = ram_block_pages(g->ram);

    if (g->prog > GUEST_PROG_TOUCH || g->phase > PHASE_DONE) {
        return -EINVAL;
    }
    if (g->prog == GUEST_PROG_AB && g->phase != PHASE_START &&
        (g->begin > g->end || g->end > pages ||
         (g->phase != PHASE_DONE && (g->cursor < g->begin || g->cursor >= g->end)))) {
        return -EINVAL;
    }
    if ((g->prog == GUEST_PROG_FILL || g->prog == GUEST_PROG_TOUCH) &&
        (g->chunk == 0 || g->begin > g->end || g->cursor > g->end ||
         g->end > DIV_ROUND_UP(pages, g->chunk))) {
        return -EINVAL;
    }
    if (g->prog == GUEST_PROG_DIRTY && g->prng == 0) {
        return -EINVAL;          /* xorshift would be stuck at zero */
    }
    if (g->prog == GUEST_PROG_TOUCH) {
        if (pages <= TOUCH_COUNT) {
            return -EINVAL;
        }
        /* a filled touch guest starts touching where it is loaded: vCPU 0 */
        if (g->phase == PHASE_DONE && g->index == 0) {
            g->phase = PHASE_LOOP;
            g->cursor = 0;
        }
    }
    return 0;
}

static const VMStateDescription vmstate_guest_cpu = {
    .name = "cpu",
    .version_id = 1,
    .minimum_version_id = 1,
    .post_load = guest_cpu_post_load,
    .fields = (const VMStateField[]) {
        VMSTATE_UINT32(prog, GuestCPU),
        VMSTATE_UINT32(phase, GuestCPU),
        VMSTATE_UINT64(cursor, GuestCPU),
        VMSTATE_UINT64(begin, GuestCPU),
        VMSTATE_UINT64(end, GuestCPU),
        VMSTATE_UINT64(passes, GuestCPU),
        VMSTATE_UINT64(prng, GuestCPU),
        VMSTATE_UINT64(counter, GuestCPU),
        VMSTATE_UINT32(zero_pct, GuestCPU),
        VMSTATE_UINT32(text_pct, GuestCPU),
        VMSTATE_UINT32(random_pct, GuestCPU),
        VMSTATE_UINT32(chunk, GuestCPU),
        VMSTATE_UINT64(rate, GuestCPU),
        VMSTATE_UINT64(seed, GuestCPU),
        { .name = "fill-done", .offset = offsetof(GuestCPU, fill_done),
          .type = VMS_TYPE_BOOL, .size = 1 },
        VMSTATE_END_OF_LIST()
    },
};

GuestCPU *guest_cpu_new(unsigned index, unsigned ncpus, const GuestConfig *gc, Migration *mig)
{
    GuestCPU *g = g_new0(GuestCPU, 1);
    uint64_t s = gc->seed + index;

    g->index = index;
    g->ram = vm_main_ram();
    g->prog = gc->prog;
    g->zero_pct = gc->zero_pct;
    g->text_pct = gc->text_pct;
    g->random_pct = gc->random_pct;
    g->chunk = gc->chunk;
    g->rate = gc->rate;
    g->seed = gc->seed;
    g->prng = splitmix64(&s) | 1;
    if (g->prog == GUEST_PROG_FILL || g->prog == GUEST_PROG_TOUCH) {
        fill_begin(g, ncpus);
    } else if (g->prog == GUEST_PROG_DIRTY) {
        g->phase = PHASE_LOOP;
    }
    /*
     * Every vCPU has room for the touch timings, whatever it was started
     * with: a loaded "cpu" state decides the program, and a touch guest
     * restored into a VM started with -guest idle runs touch from then on.
     */
    g->touch_ns = g_new0(uint32_t, TOUCH_COUNT);
    migration_register_vmstate(mig, "cpu", index, &vmstate_guest_cpu, g);
    return g;
}

void guest_cpu_free(GuestCPU *g)
{
    g_free(g->touch_ns);
    g_free(g);
}
