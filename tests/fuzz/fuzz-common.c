/*
 * Shared by the harnesses of tests/fuzz.  See fuzz-common.h.
 */
#include "fuzz-common.h"

#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static int memfd = -1;
static char memfd_path[64];
static FILE *devnull;

static void drop_print(const gchar *s)
{
}

#define FUZZ_FATAL_LEVELS (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING)

/*
 * A critical or a warning is a crash, whatever its domain: abort(), which
 * libFuzzer catches and saves the input for (GLib's own fatal path raises
 * SIGTRAP, which libFuzzer does not handle).
 */
static void log_handler(const gchar *domain, GLogLevelFlags level, const gchar *message,
                        gpointer unused)
{
    if (level & FUZZ_FATAL_LEVELS) {
        fprintf(stderr, "fuzz: GLib %s from %s: %s\n",
                level & G_LOG_LEVEL_ERROR ? "error" :
                level & G_LOG_LEVEL_CRITICAL ? "critical" : "warning",
                domain ? domain : "the program", message);
        abort();
    }
}

static GLogWriterOutput log_writer(GLogLevelFlags level, const GLogField *fields,
                                   gsize n_fields, gpointer unused)
{
    if (level & FUZZ_FATAL_LEVELS) {
        const char *domain = NULL, *message = "";
        for (gsize i = 0; i < n_fields; i++) {
            if (!strcmp(fields[i].key, "GLIB_DOMAIN")) {
                domain = fields[i].value;
            } else if (!strcmp(fields[i].key, "MESSAGE")) {
                message = fields[i].value;
            }
        }
        log_handler(domain, level, message, NULL);
    }
    return G_LOG_WRITER_HANDLED;
}

void fuzz_init(void)
{
    g_log_set_default_handler(log_handler, NULL);
    g_log_set_writer_func(log_writer, NULL, NULL);
    if (!getenv("FUZZ_VERBOSE")) {
        g_set_printerr_handler(drop_print);
        g_set_print_handler(drop_print);
    }
    memfd = memfd_create("mapram-fuzz", MFD_CLOEXEC);
    if (memfd < 0) {
        g_error("memfd_create: %s", g_strerror(errno));
    }
    snprintf(memfd_path, sizeof(memfd_path), "/proc/self/fd/%d", memfd);
    devnull = fopen("/dev/null", "w");
    if (!devnull) {
        g_error("/dev/null: %s", g_strerror(errno));
    }
}

FILE *fuzz_devnull(void)
{
    return devnull;
}

static uint64_t be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v = v << 8 | p[i];
    }
    return v;
}

static void write_at(const uint8_t *buf, size_t len, uint64_t off)
{
    while (len) {
        ssize_t n = pwrite(memfd, buf, len, off);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            g_error("memfd pwrite: %s", g_strerror(errno));
        }
        buf += n;
        len -= n;
        off += n;
    }
}

int fuzz_input_file(const uint8_t *data, size_t size, const char **path)
{
    const size_t mlen = strlen(FUZZ_SPARSE_MAGIC);

    if (ftruncate(memfd, 0) < 0) {
        g_error("memfd truncate: %s", g_strerror(errno));
    }
    *path = memfd_path;
    if (size < mlen + 8 || memcmp(data, FUZZ_SPARSE_MAGIC, mlen) != 0) {
        write_at(data, size, 0);
        return memfd;
    }
    uint64_t file_size = MIN(be64(data + mlen), FUZZ_SPARSE_MAX_SIZE);
    size_t pos = mlen + 8;
    while (pos + 12 <= size) {
        uint64_t off = be64(data + pos);
        uint32_t len = (uint32_t)data[pos + 8] << 24 | data[pos + 9] << 16 |
                       data[pos + 10] << 8 | data[pos + 11];
        pos += 12;
        len = MIN(len, size - pos);
        if (off < file_size) {
            write_at(data + pos, MIN(len, file_size - off), off);
        }
        pos += len;
    }
    if (ftruncate(memfd, file_size) < 0) {
        g_error("memfd truncate: %s", g_strerror(errno));
    }
    return memfd;
}
