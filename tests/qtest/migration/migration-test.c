/*
 * The migration test suite: real mapram-vm processes over QMP.
 *
 *   migration-test                      every registered test
 *   MAPRAM_QTEST_ONLY=/migration/x ...  just that one (meson runs each so)
 *   MAPRAM_TEST_QUICK=1                 smoke tier only
 *   migration-test --check-registered P...   fails unless the registered
 *                                       paths are exactly P... (keeps the
 *                                       meson list and the code in step)
 */
#include "framework.h"
#include "tests.h"

#include <string.h>

static void register_all(void)
{
    migration_test_add_file();
    migration_test_add_precopy();
    migration_test_add_misc();
    migration_test_add_compat();
    migration_test_add_badfile();
    migration_test_add_fault();
    migration_test_add_size();
    migration_test_add_durable();
    migration_test_add_kill();
    migration_test_add_checksums();
    migration_test_add_soak();
    migration_test_add_ondemand();
    migration_test_add_shared();
    migration_test_add_fill_restore();
    migration_test_add_multifd();
    migration_test_add_netns();
}

/*
 * Compare `migration-test -l` style output with the list meson passes.
 * Run in a child so GTest's own listing can be reused.
 */
static int check_registered(int n, char **want)
{
    g_autofree char *out = NULL;
    g_autofree char *self = g_file_read_link("/proc/self/exe", NULL);
    const char *argv[] = { self, "-l", NULL };
    g_auto(GStrv) lines = NULL;
    g_autoptr(GHashTable) have = g_hash_table_new(g_str_hash, g_str_equal);
    int bad = 0, status = 0;

    g_unsetenv("MAPRAM_QTEST_ONLY");
    g_unsetenv("MAPRAM_TEST_QUICK");
    if (!g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_DEFAULT, NULL, NULL,
                      &out, NULL, &status, NULL) || status != 0) {
        g_printerr("cannot list tests\n");
        return 1;
    }
    lines = g_strsplit(out, "\n", -1);
    for (char **l = lines; *l; l++) {
        if (**l == '/') {
            g_hash_table_add(have, *l);
        }
    }
    for (int i = 0; i < n; i++) {
        if (!g_hash_table_remove(have, want[i])) {
            g_printerr("meson lists %s, but no such test is registered\n",
                       want[i]);
            bad++;
        }
    }
    {
        GHashTableIter it;
        gpointer key;

        g_hash_table_iter_init(&it, have);
        while (g_hash_table_iter_next(&it, &key, NULL)) {
            g_printerr("test %s is registered but not listed in meson.build\n",
                       (char *)key);
            bad++;
        }
    }
    return bad ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "--check-registered")) {
        return check_registered(argc - 2, argv + 2);
    }
    g_test_init(&argc, &argv, NULL);
    register_all();
    if (migration_test_count() == 0 && g_getenv("MAPRAM_QTEST_ONLY")) {
        /* A misspelt path must not pass by running nothing. */
        g_printerr("no test named '%s'\n", g_getenv("MAPRAM_QTEST_ONLY"));
        return 1;
    }
    return g_test_run();
}
