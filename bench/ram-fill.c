/*
 * bench/ram-fill: four ways a restore can fill fresh guest RAM on this
 * host, and what the guest's first touch of every page costs after each.
 *
 *   copy      write straight into anonymous memory (huge pages asked for):
 *             what a copy restore does (its preadv lands in guest RAM);
 *   move      write into a ring of 16 staging windows of 2 MiB, then
 *             UFFDIO_MOVE each into a range registered for missing
 *             faults: what an on-demand restore does (migration/postcopy.c);
 *   continue  guest RAM backed by a memfd and registered for minor faults;
 *             write through a second mapping of the memfd, then
 *             UFFDIO_CONTINUE each 2 MiB: the design an on-demand restore
 *             could take instead, with no move and no TLB flush;
 *   collapse  the same, then MADV_COLLAPSE (Linux 6.1) on each 2 MiB of
 *             guest RAM, since UFFDIO_CONTINUE maps 4 KiB pages even where
 *             the memfd holds a huge page; where the memfd has none
 *             (shmem_enabled "never", the default) the collapse copies
 *             each 2 MiB into a new one.  Skipped, saying so, where the
 *             kernel refuses it.
 *
 * Each fills GIB GiB, 2 MiB at a time, from a 256 MiB source (a memcpy,
 * as the kernel's copy of a read is), then reads one byte of every 4 KiB
 * page as a guest would.  The modes rotate for ROUNDS rounds; it prints
 * one JSON object with the median of each (seconds to fill, seconds to
 * touch, MiB mapped by huge PMDs after the fill) and shmem_enabled, which
 * decides whether the memfd may use huge pages at all.  Exit 2, with the
 * reason, where userfaultfd, UFFDIO_MOVE (Linux 6.8) or minor faults on
 * shmem (Linux 5.13) are missing.
 *
 * usage: ram-fill [GIB [ROUNDS]]   (default 1 GiB, 3 rounds)
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "bench-common.h"
#include "util/uffd-move.h"

#define HUGE (2UL << 20)
#define SOURCE (256UL << 20)
#define RING 16
#define MAX_ROUNDS 99

enum { COPY, MOVE, CONTINUE, COLLAPSE, NMODES };

static const char *const mode_names[NMODES] = { "copy", "move", "continue", "collapse" };

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif

typedef struct Result {
    double fill_s;
    double touch_s;
    long pmd_mib;
    int collapse_errno;     /* COLLAPSE: why MADV_COLLAPSE failed, else 0 */
} Result;

static void die(const char *what)
{
    fprintf(stderr, "ram-fill: %s: %s\n", what, strerror(errno));
    exit(1);
}

/* len bytes of address space aligned to a huge page; *base and *span for munmap */
static uint8_t *reserve(size_t len, void **base, size_t *span)
{
    *span = len + HUGE;
    *base = mmap(NULL, *span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (*base == MAP_FAILED) {
        die("mmap");
    }
    return (uint8_t *)(((uintptr_t)*base + HUGE - 1) & ~(HUGE - 1));
}

/* map fd (or anonymous memory where fd < 0) over p, huge pages asked for */
static void map_at(uint8_t *p, size_t len, int fd)
{
    int flags = MAP_FIXED | (fd < 0 ? MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE : MAP_SHARED);

    if (mmap(p, len, PROT_READ | PROT_WRITE, flags, fd, 0) == MAP_FAILED) {
        die("mmap");
    }
    if (madvise(p, len, MADV_HUGEPAGE) < 0) {
        die("madvise(MADV_HUGEPAGE)");
    }
}

static int open_uffd(uint64_t features)
{
    struct uffdio_api api = { .api = UFFD_API, .features = features };
    int uffd = syscall(SYS_userfaultfd, O_CLOEXEC);

    if (uffd < 0) {
        fprintf(stderr, "ram-fill: userfaultfd: %s (root, or vm.unprivileged_userfaultfd=1)\n",
                strerror(errno));
        exit(2);
    }
    if (ioctl(uffd, UFFDIO_API, &api) < 0 || (api.features & features) != features) {
        fprintf(stderr, "ram-fill: this kernel lacks %s\n",
                features == UFFD_FEATURE_MOVE ? "UFFDIO_MOVE (Linux 6.8)"
                                              : "minor faults on shmem (Linux 5.13)");
        exit(2);
    }
    return uffd;
}

static void register_range(int uffd, uint8_t *p, size_t len, uint64_t mode)
{
    struct uffdio_register r = { .range = { .start = (uintptr_t)p, .len = len }, .mode = mode };

    if (ioctl(uffd, UFFDIO_REGISTER, &r) < 0) {
        die("UFFDIO_REGISTER");
    }
}

/* MiB of this process's memory mapped by huge PMDs, anonymous and shmem */
static long pmd_mapped_mib(void)
{
    long anon = bench_smaps_kib("AnonHugePages"), shmem = bench_smaps_kib("ShmemPmdMapped");

    return ((anon > 0 ? anon : 0) + (shmem > 0 ? shmem : 0)) >> 10;
}

static void fill_one(int mode, size_t len, const uint8_t *src, Result *res)
{
    void *base, *lbase = NULL, *rbase = NULL;
    size_t span, lspan = 0, rspan = 0;
    uint8_t *guest = reserve(len, &base, &span), *loader = NULL, *ring = NULL;
    volatile uint8_t sink = 0;
    int uffd = -1, memfd = -1;
    long pmd_before;
    double t0, t1;

    res->collapse_errno = 0;
    if (mode == COPY) {
        map_at(guest, len, -1);
    } else if (mode == MOVE) {
        map_at(guest, len, -1);
        uffd = open_uffd(UFFD_FEATURE_MOVE);
        register_range(uffd, guest, len, UFFDIO_REGISTER_MODE_MISSING);
        ring = reserve(RING * HUGE, &rbase, &rspan);
        map_at(ring, RING * HUGE, -1);
    } else {
        memfd = memfd_create("ram-fill", MFD_CLOEXEC);
        if (memfd < 0 || ftruncate(memfd, len) < 0) {
            die("memfd");
        }
        map_at(guest, len, memfd);
        uffd = open_uffd(UFFD_FEATURE_MINOR_SHMEM);
        register_range(uffd, guest, len, UFFDIO_REGISTER_MODE_MINOR);
        loader = reserve(len, &lbase, &lspan);
        map_at(loader, len, memfd);
    }

    pmd_before = pmd_mapped_mib();
    t0 = bench_now();
    for (size_t off = 0; off < len; off += HUGE) {
        const uint8_t *from = src + off % SOURCE;

        if (mode == COPY) {
            memcpy(guest + off, from, HUGE);
        } else if (mode == MOVE) {
            uint8_t *w = ring + (off / HUGE % RING) * HUGE;
            struct uffdio_move m = { .dst = (uintptr_t)(guest + off), .src = (uintptr_t)w,
                                     .len = HUGE };

            memcpy(w, from, HUGE);
            if (ioctl(uffd, UFFDIO_MOVE, &m) < 0) {
                die("UFFDIO_MOVE");
            }
        } else {
            struct uffdio_continue c = { .range = { .start = (uintptr_t)(guest + off),
                                                    .len = HUGE } };

            memcpy(loader + off, from, HUGE);
            if (ioctl(uffd, UFFDIO_CONTINUE, &c) < 0) {
                die("UFFDIO_CONTINUE");
            }
            if (mode == COLLAPSE && madvise(guest + off, HUGE, MADV_COLLAPSE) < 0) {
                res->collapse_errno = errno;
                break;
            }
        }
    }
    t1 = bench_now();
    for (size_t off = 0; off < len && !res->collapse_errno; off += 4096) {
        sink += guest[off];
    }
    res->fill_s = t1 - t0;
    res->touch_s = bench_now() - t1;
    (void)sink;
    /* the loader's mapping and the staging ring are not the guest's */
    if (lbase) {
        munmap(lbase, lspan);
    }
    if (rbase) {
        munmap(rbase, rspan);
    }
    res->pmd_mib = pmd_mapped_mib() - pmd_before;
    munmap(base, span);
    if (uffd >= 0) {
        close(uffd);
    }
    if (memfd >= 0) {
        close(memfd);
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* a whole decimal number in [min, max] */
static int parse_long(const char *s, long min, long max, long *out)
{
    char *end;

    errno = 0;
    *out = strtol(s, &end, 10);
    return !errno && end != s && !*end && *out >= min && *out <= max;
}

int main(int argc, char **argv)
{
    long gib = 1, rounds = 3;
    double fill[NMODES][MAX_ROUNDS], touch[NMODES][MAX_ROUNDS];
    long pmd[NMODES] = { 0 };
    int skipped[NMODES] = { 0 };
    char shmem[128] = "unknown";
    FILE *f;
    uint8_t *src;

    if (argc > 3 || (argc > 1 && !parse_long(argv[1], 1, 1024, &gib)) ||
        (argc > 2 && !parse_long(argv[2], 1, MAX_ROUNDS, &rounds))) {
        fprintf(stderr, "usage: ram-fill [GIB [ROUNDS]]  (GIB 1-1024, ROUNDS 1-%d)\n",
                MAX_ROUNDS);
        return 1;
    }
    /* fail before any fill where a mode cannot run */
    close(open_uffd(UFFD_FEATURE_MOVE));
    close(open_uffd(UFFD_FEATURE_MINOR_SHMEM));

    f = fopen("/sys/kernel/mm/transparent_hugepage/shmem_enabled", "r");
    if (f) {
        if (fgets(shmem, sizeof(shmem), f)) {
            char *a = strchr(shmem, '['), *b = a ? strchr(a, ']') : NULL;
            if (a && b) {
                *b = '\0';
                memmove(shmem, a + 1, strlen(a + 1) + 1);
            }
            shmem[strcspn(shmem, "\n")] = '\0';
        }
        fclose(f);
    }

    src = aligned_alloc(HUGE, SOURCE);
    if (!src) {
        die("aligned_alloc");
    }
    for (size_t i = 0; i < SOURCE; i += sizeof(uint64_t)) {
        *(uint64_t *)(src + i) = i * 0x9e3779b97f4a7c15ULL + 1;
    }
    for (int r = 0; r < rounds; r++) {
        for (int k = 0; k < NMODES; k++) {
            int mode = (k + r) % NMODES;   /* rotate: no mode always runs first */
            Result res;

            if (skipped[mode]) {
                continue;
            }
            fill_one(mode, (size_t)gib << 30, src, &res);
            if (res.collapse_errno) {
                skipped[mode] = res.collapse_errno;
                continue;
            }
            fill[mode][r] = res.fill_s;
            touch[mode][r] = res.touch_s;
            pmd[mode] = res.pmd_mib;
        }
    }
    printf("{\"gib\": %ld, \"rounds\": %ld, \"shmem_enabled\": \"%s\"", gib, rounds, shmem);
    for (int m = 0; m < NMODES; m++) {
        if (skipped[m]) {
            printf(", \"%s\": {\"skipped\": \"MADV_COLLAPSE: %s\"}", mode_names[m],
                   strerror(skipped[m]));
            continue;
        }
        printf(", \"%s\": {\"fill_s\": %.3f, \"touch_s\": %.3f, \"pmd_mapped_mib\": %ld}",
               mode_names[m], median(fill[m], rounds), median(touch[m], rounds), pmd[m]);
    }
    printf("}\n");
    free(src);
    return 0;
}
