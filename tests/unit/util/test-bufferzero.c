/*
 * buffer_is_zero at every length and alignment around its fast paths,
 * with a single non-zero byte at every position (first word, last word,
 * inside the vector loop, in the unaligned head and tail).
 */
#include <glib.h>
#include <string.h>

#include "util/bufferzero.h"

static void test_lengths_and_positions(void)
{
    const size_t max = 600;
    g_autofree unsigned char *mem = g_malloc0(max + 64);

    for (size_t align = 0; align < 17; align++) {
        unsigned char *buf = mem + align;

        for (size_t len = 0; len <= 300; len++) {
            g_assert_true(buffer_is_zero(buf, len));
            for (size_t pos = 0; pos < len; pos++) {
                buf[pos] = 0x10;
                if (buffer_is_zero(buf, len)) {
                    g_error("missed byte %zu of %zu at alignment %zu", pos, len, align);
                }
                buf[pos] = 0;
            }
            /* A non-zero byte just outside the buffer must not count. */
            buf[len] = 1;
            g_assert_true(buffer_is_zero(buf, len));
            buf[len] = 0;
        }
    }
}

static void test_page(void)
{
    unsigned char *page = g_malloc0(4096);

    g_assert_true(buffer_is_zero(page, 4096));
    for (size_t pos = 0; pos < 4096; pos += 61) {
        page[pos] = 0x80;
        g_assert_false(buffer_is_zero(page, 4096));
        page[pos] = 0;
    }
    page[4095] = 1;
    g_assert_false(buffer_is_zero(page, 4096));
    g_assert_true(buffer_is_zero(page, 4095));
    g_free(page);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/util/bufferzero/lengths-and-positions", test_lengths_and_positions);
    g_test_add_func("/util/bufferzero/page", test_page);
    return g_test_run();
}
