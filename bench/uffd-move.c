/*
 * bench/uffd-move: what a UFFDIO_MOVE of one 2 MiB huge page costs on
 * this host, and what it costs a CPU that is backing fresh memory at the
 * same time.
 *
 * An on-demand restore moves every 2 MiB window of guest RAM it reads in
 * the background (migration/postcopy.c); a copy restore reads straight
 * into guest RAM.  Both fault in (and the kernel zeroes) the same huge
 * pages; the moves are what the on-demand restore adds.  Their price is
 * the host's: a PMD cleared, a TLB flush, a PMD set.  Where the
 * hypervisor tracks the guest's page tables itself, each of those is a
 * trip to it, and it also slows the other CPUs' page faults.
 *
 * Three phases of SECONDS each (default 2):
 *   backing alone  a child process first-touches fresh MADV_HUGEPAGE
 *                  memory (256 MiB at a time, one byte per 2 MiB, then
 *                  unmapped): GB/s;
 *   moves alone    this process moves one huge page back and forth between
 *                  two 2 MiB ranges registered with userfaultfd: us a move;
 *   both at once   the same two side by side.
 * Prints one JSON object.  Exit 2, with the reason on stderr, where the
 * kernel has no UFFDIO_MOVE (Linux < 6.8) or userfaultfd is not allowed
 * (vm.unprivileged_userfaultfd=0 and not root).
 *
 * usage: uffd-move [SECONDS]
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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench-common.h"
#include "util/uffd-move.h"


#define HUGE (2UL << 20)
#define CHUNK (256UL << 20)

static void die(const char *what)
{
    fprintf(stderr, "uffd-move: %s: %s\n", what, strerror(errno));
    exit(1);
}

/* len bytes of private anonymous memory, aligned to a huge page, huge pages asked for */
static uint8_t *huge_map(size_t len)
{
    uint8_t *p = mmap(NULL, len + HUGE, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        die("mmap");
    }
    p = (uint8_t *)(((uintptr_t)p + HUGE - 1) & ~(HUGE - 1));
    if (madvise(p, len, MADV_HUGEPAGE) < 0) {
        die("madvise(MADV_HUGEPAGE)");
    }
    return p;
}

/* The child: first-touch fresh memory for secs, then write its GB/s to fd. */
static void backing(int fd, double secs)
{
    double t0 = bench_now(), gbs;
    size_t bytes = 0;

    while (bench_now() - t0 < secs) {
        uint8_t *p = huge_map(CHUNK);
        for (size_t off = 0; off < CHUNK; off += HUGE) {
            p[off] = 1;
        }
        munmap(p, CHUNK);
        bytes += CHUNK;
    }
    gbs = bytes / (bench_now() - t0) / 1e9;
    if (write(fd, &gbs, sizeof(gbs)) != sizeof(gbs)) {
        die("write");
    }
}

static pid_t start_backing(int *rfd, double secs)
{
    int p[2];
    pid_t pid;

    if (pipe(p) < 0) {
        die("pipe");
    }
    pid = fork();
    if (pid < 0) {
        die("fork");
    }
    if (pid == 0) {
        close(p[0]);
        backing(p[1], secs);
        _exit(0);
    }
    close(p[1]);
    *rfd = p[0];
    return pid;
}

static double end_backing(pid_t pid, int rfd)
{
    double gbs = 0;
    int status;

    if (read(rfd, &gbs, sizeof(gbs)) != sizeof(gbs)) {
        fprintf(stderr, "uffd-move: the backing process gave no figure\n");
        exit(1);
    }
    close(rfd);
    if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status)) {
        fprintf(stderr, "uffd-move: the backing process failed\n");
        exit(1);
    }
    return gbs;
}

static void move(int uffd, uint8_t *dst, uint8_t *src)
{
    struct uffdio_move m = { .dst = (uintptr_t)dst, .src = (uintptr_t)src, .len = HUGE };

    if (ioctl(uffd, UFFDIO_MOVE, &m) < 0) {
        die("UFFDIO_MOVE");
    }
}

/* us per move of the huge page, moving it back and forth for secs */
static double moves(int uffd, uint8_t *a, uint8_t *b, double secs)
{
    double t0 = bench_now(), t;
    long n = 0;

    do {
        move(uffd, b, a);
        move(uffd, a, b);
        n += 2;
        t = bench_now();
    } while (t - t0 < secs);
    return (t - t0) / n * 1e6;
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 2.0;
    struct uffdio_api api = { .api = UFFD_API, .features = UFFD_FEATURE_MOVE };
    double alone_gbs, alone_us, both_gbs, both_us;
    int uffd, rfd;
    pid_t pid;

    if (argc > 2 || secs <= 0) {
        fprintf(stderr, "usage: uffd-move [SECONDS]\n");
        return 1;
    }
    uffd = syscall(SYS_userfaultfd, O_CLOEXEC);
    if (uffd < 0) {
        fprintf(stderr, "uffd-move: userfaultfd: %s (root, or vm.unprivileged_userfaultfd=1)\n",
                strerror(errno));
        return 2;
    }
    if (ioctl(uffd, UFFDIO_API, &api) < 0 || !(api.features & UFFD_FEATURE_MOVE)) {
        fprintf(stderr, "uffd-move: this kernel has no UFFDIO_MOVE (Linux 6.8)\n");
        return 2;
    }
    /* the page, faulted in before the range is registered (a fault after would wait on us) */
    uint8_t *a = huge_map(2 * HUGE), *b = a + HUGE;
    a[0] = 1;
    /* not shared with the backing process (fork): a shared page cannot be moved (EBUSY) */
    if (madvise(a, 2 * HUGE, MADV_DONTFORK) < 0) {
        die("madvise(MADV_DONTFORK)");
    }
    if (bench_smaps_kib("AnonHugePages") < 2048) {
        fprintf(stderr, "uffd-move: no transparent huge page for the test (THP disabled?)\n");
        return 2;
    }
    struct uffdio_register r = {
        .range = { .start = (uintptr_t)a, .len = 2 * HUGE },
        .mode = UFFDIO_REGISTER_MODE_MISSING,
    };
    if (ioctl(uffd, UFFDIO_REGISTER, &r) < 0) {
        die("UFFDIO_REGISTER");
    }

    pid = start_backing(&rfd, secs);
    alone_gbs = end_backing(pid, rfd);
    alone_us = moves(uffd, a, b, secs);
    pid = start_backing(&rfd, secs);
    both_us = moves(uffd, a, b, secs);
    both_gbs = end_backing(pid, rfd);
    printf("{\"move_us_alone\": %.1f, \"move_us_beside_backing\": %.1f, "
           "\"backing_gbs_alone\": %.2f, \"backing_gbs_beside_moves\": %.2f}\n",
           alone_us, both_us, alone_gbs, both_gbs);
    return 0;
}
