/*
 * Linux 6.8's UFFDIO_MOVE, for kernel headers that predate it (Debian
 * 12's): the on-demand load (migration/postcopy.c) and bench/uffd-move
 * use it; the kernel says at UFFDIO_API time whether it has it.
 */
#ifndef UTIL_UFFD_MOVE_H
#define UTIL_UFFD_MOVE_H

#include <linux/userfaultfd.h>

#ifndef UFFD_FEATURE_MOVE
#define UFFD_FEATURE_MOVE (1 << 16)
#define _UFFDIO_MOVE 0x05
struct uffdio_move {
    __u64 dst;
    __u64 src;
    __u64 len;
    __u64 mode;
    __s64 move;
};
#define UFFDIO_MOVE _IOWR(UFFDIO, _UFFDIO_MOVE, struct uffdio_move)
#define UFFDIO_MOVE_MODE_DONTWAKE ((__u64)1 << 0)
#define UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES ((__u64)1 << 1)
#endif

#endif
