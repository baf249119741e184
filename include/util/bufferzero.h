#ifndef UTIL_BUFFERZERO_H
#define UTIL_BUFFERZERO_H
#include <stdbool.h>
#include <stddef.h>
/* True when len bytes at buf are all zero.  Fast path for 4 KiB pages. */
bool buffer_is_zero(const void *buf, size_t len);
#endif
