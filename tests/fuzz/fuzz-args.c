/*
 * libFuzzer harness: the parsers of the strings users type.
 *
 * Input: byte 0 picks the parser (modulo 4), the rest is its text:
 *   0  a migration URI (migration_parse_uri(), as migrate, migrate-incoming
 *      and -incoming take it), then described as query-migrate would;
 *   1  the argument of -object (memory backends);
 *   2  the argument of -global, then applied to a Migration as vl.c does;
 *   3  a whole mapram-vm command line, arguments separated by NUL bytes
 *      (vm_config_parse()), its -global settings applied.
 * Corpus: tests/fuzz/corpus/fuzz-args/ (the URIs and options the tests and
 * docs use, tests/fuzz/make-seeds.py).
 */
#include <string.h>

#include "fake-host.h"
#include "fuzz-common.h"
#include "migration/migration-internal.h"
#include "system/system-internal.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static FakeHost *host;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_init();
    host = fake_host_new(RUN_STATE_PRELAUNCH);
    return 0;
}

static void parse_uri(const char *s)
{
    GError *err = NULL;
    MigAddr a = { 0 };

    if (migration_parse_uri(s, &a, &err)) {
        g_free(mig_addr_describe(&a));
    } else {
        g_assert(err && err->message[0]);
        g_clear_error(&err);
    }
    mig_addr_clear(&a);
}

/* vl.c's apply_globals(). */
static void apply_globals(const VMConfig *cfg)
{
    Migration *m = migration_new(&fake_host_ops, host);

    for (guint i = 0; i < cfg->globals->len; i++) {
        const char *nv = g_ptr_array_index(cfg->globals, i);
        const char *eq = strchr(nv, '=');
        g_autofree char *name = g_strndup(nv, eq - nv);
        GError *err = NULL;

        if (!migration_set_global_property(m, name, eq + 1, &err)) {
            g_assert(err && err->message[0]);
            g_clear_error(&err);
            migration_free(m);
            return;
        }
    }
    GError *err = NULL;
    if (!migration_check_capabilities(m, cfg->incoming != NULL, &err)) {
        g_assert(err && err->message[0]);
        g_clear_error(&err);
    }
    migration_free(m);
}

static void parse_cmdline(int argc, char **argv)
{
    VMConfig *cfg = vm_config_new();
    GError *err = NULL;

    if (vm_config_parse(cfg, argc, argv, &err)) {
        apply_globals(cfg);
    } else {
        g_assert(err && err->message[0]);
        g_clear_error(&err);
    }
    vm_config_free(cfg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 4096) {
        return -1;
    }
    g_autofree char *text = g_strndup((const char *)data + 1, size - 1);

    switch (data[0] % 4) {
    case 0:
        parse_uri(text);
        break;
    case 1:
    case 2: {
        char *argv[] = { (char *)"mapram-vm", data[0] % 4 == 1 ? (char *)"-object" : (char *)"-global",
                         text, NULL };
        parse_cmdline(3, argv);
        break;
    }
    default: {
        g_autoptr(GPtrArray) args = g_ptr_array_new();
        g_ptr_array_add(args, (char *)"mapram-vm");
        for (size_t i = 1; i < size; i += strnlen((const char *)data + i, size - i) + 1) {
            g_ptr_array_add(args, g_strndup((const char *)data + i, size - i));
        }
        g_ptr_array_add(args, NULL);
        parse_cmdline(args->len - 1, (char **)args->pdata);
        for (guint i = 1; i + 1 < args->len; i++) {
            g_free(args->pdata[i]);
        }
        break;
    }
    }
    return 0;
}
