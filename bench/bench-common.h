/*
 * What bench/'s C tools share: a monotonic clock and this process's
 * memory as /proc/self/smaps_rollup counts it.
 */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include <stdio.h>
#include <string.h>
#include <time.h>

static inline double bench_now(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* smaps_rollup's FIELD ("AnonHugePages", ...) for this process in KiB; -1 where absent */
static inline long bench_smaps_kib(const char *field)
{
    FILE *f = fopen("/proc/self/smaps_rollup", "r");
    size_t n = strlen(field);
    char line[256];
    long kib = -1;

    while (f && fgets(line, sizeof(line), f)) {
        if (!strncmp(line, field, n) && line[n] == ':' &&
            sscanf(line + n + 1, "%ld", &kib) == 1) {
            break;
        }
    }
    if (f) {
        fclose(f);
    }
    return kib;
}

#endif
