/*
 * A harness of tests/fuzz without libFuzzer: every file named on the
 * command line (or found in a directory named there) is handed to
 * LLVMFuzzerTestOneInput() once, in name order.  Builds without
 * -Dfuzzing (gcc, ASan, TSan) link the harnesses with this main, so that
 * `make check` and `make check-asan` replay the corpora too, the inputs
 * of every fixed crash included.
 */
#include <glib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int by_name(gconstpointer a, gconstpointer b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void add_path(GPtrArray *files, const char *path)
{
    g_autoptr(GDir) dir = g_dir_open(path, 0, NULL);
    const char *name;

    if (!dir) {
        g_ptr_array_add(files, g_strdup(path));
        return;
    }
    while ((name = g_dir_read_name(dir))) {
        g_ptr_array_add(files, g_build_filename(path, name, NULL));
    }
}

int main(int argc, char **argv)
{
    g_autoptr(GPtrArray) files = g_ptr_array_new_with_free_func(g_free);

    LLVMFuzzerInitialize(&argc, &argv);
    for (int i = 1; i < argc; i++) {
        add_path(files, argv[i]);
    }
    g_ptr_array_sort(files, by_name);
    for (guint i = 0; i < files->len; i++) {
        const char *path = g_ptr_array_index(files, i);
        g_autofree char *data = NULL;
        gsize len;
        GError *err = NULL;

        if (!g_file_get_contents(path, &data, &len, &err)) {
            fprintf(stderr, "%s\n", err->message);
            return 1;
        }
        fprintf(stderr, "replay: %s (%zu bytes)\n", path, (size_t)len);
        LLVMFuzzerTestOneInput((const uint8_t *)data, len);
    }
    printf("replayed %u inputs\n", files->len);
    return files->len ? 0 : 1;
}
