/*
 * The command line, in QEMU's spelling: "-opt value", "key=val,key=val"
 * lists with ",," for a literal comma, and an implied first key
 * ("-m 512M" is "-m size=512M").  Every error names the option and its
 * value, as "-opt value: message"; main() prefixes the program name.
 */
#include <string.h>

#include "util/cutils.h"
#include "util/error.h"
#include "system-internal.h"

typedef struct KeyVal {
    char *key;
    char *val;
} KeyVal;

static void keyval_free(gpointer p)
{
    KeyVal *kv = p;

    g_free(kv->key);
    g_free(kv->val);
    g_free(kv);
}

/* Next list element of *s up to an unescaped ','; advances *s. */
static char *next_element(const char **s)
{
    GString *out = g_string_new(NULL);
    const char *p = *s;

    for (; *p; p++) {
        if (*p == ',') {
            if (p[1] != ',') {
                p++;
                break;
            }
            p++;
        }
        g_string_append_c(out, *p);
    }
    *s = p;
    return g_string_free(out, FALSE);
}

/* "a=1,b=2" -> pairs; an element without '=' takes implied_key (first only). */
static GPtrArray *keyval_parse(const char *s, const char *implied_key, GError **errp)
{
    g_autoptr(GPtrArray) list = g_ptr_array_new_with_free_func(keyval_free);

    while (*s) {
        g_autofree char *elem = next_element(&s);
        char *eq = strchr(elem, '=');
        KeyVal *kv = g_new0(KeyVal, 1);

        if (eq) {
            kv->key = g_strndup(elem, eq - elem);
            kv->val = g_strdup(eq + 1);
        } else if (list->len == 0 && implied_key) {
            kv->key = g_strdup(implied_key);
            kv->val = g_strdup(elem);
        } else {
            kv->key = g_strdup(elem);
            g_ptr_array_add(list, kv);
            error_setg(errp, "Expected '=' after parameter '%s'", elem);
            return NULL;
        }
        g_ptr_array_add(list, kv);
    }
    return g_steal_pointer(&list);
}

static bool parse_bool(const char *name, const char *val, bool *out, GError **errp)
{
    if (!strcmp(val, "on") || !strcmp(val, "yes") || !strcmp(val, "true") ||
        !strcmp(val, "y")) {
        *out = true;
        return true;
    }
    if (!strcmp(val, "off") || !strcmp(val, "no") || !strcmp(val, "false") ||
        !strcmp(val, "n")) {
        *out = false;
        return true;
    }
    error_setg(errp, "Parameter '%s' expects 'on' or 'off'", name);
    return false;
}

static bool parse_size(const char *name, const char *val, bool mib, uint64_t *out,
                       GError **errp)
{
    int ret = mib ? qemu_strtosz_MiB(val, NULL, out) : qemu_strtosz(val, NULL, out);

    if (ret < 0) {
        error_setg(errp, "Parameter '%s' expects a non-negative number below 2^64"
                   QEMU_SIZE_SUFFIX_HINT, name);
        return false;
    }
    return true;
}

static bool parse_uint(const char *name, const char *val, uint64_t min, uint64_t max,
                       uint64_t *out, GError **errp)
{
    guint64 v;

    if (!g_ascii_string_to_unsigned(val, 10, min, max, &v, NULL)) {
        error_setg(errp, "Parameter '%s' expects a number between %" G_GUINT64_FORMAT
                   " and %" G_GUINT64_FORMAT, name, (guint64)min, (guint64)max);
        return false;
    }
    *out = v;
    return true;
}

/*
 * QEMU reports a property setter's refusal (a value it does not take)
 * without the option's location, unlike a parse error: such errors are
 * in this domain, which vm_config_parse does not prefix.
 */
G_DEFINE_QUARK(vm-config-property-error, property_error)

/* --- options ------------------------------------------------------------- */

static bool opt_m(VMConfig *cfg, const char *arg, GError **errp)
{
    g_autoptr(GPtrArray) kvs = keyval_parse(arg, "size", errp);

    if (!kvs) {
        return false;
    }
    for (guint i = 0; i < kvs->len; i++) {
        KeyVal *kv = g_ptr_array_index(kvs, i);

        if (strcmp(kv->key, "size") != 0) {
            error_setg(errp, "Invalid parameter '%s'", kv->key);
            return false;
        }
        if (!parse_size("size", kv->val, true, &cfg->ram_size, errp)) {
            return false;
        }
        /* as QEMU: -m 0 is the default size, and sizes go up to a multiple of 8 KiB */
        if (cfg->ram_size == 0) {
            cfg->ram_size = VM_DEFAULT_RAM_SIZE;
        }
        if (cfg->ram_size > UINT64_MAX - 8191) {
            error_setg(errp, "Parameter 'size' expects a non-negative number below 2^64"
                       QEMU_SIZE_SUFFIX_HINT);
            return false;
        }
        cfg->ram_size = ROUND_UP(cfg->ram_size, 8192);
        cfg->ram_size_given = true;
    }
    return true;
}

static bool opt_machine(VMConfig *cfg, const char *arg, GError **errp)
{
    /* "-machine pc,memory-backend=X" has a type, "-machine memory-backend=X" not */
    g_autoptr(GPtrArray) kvs = keyval_parse(arg, "type", errp);

    if (!kvs) {
        return false;
    }
    for (guint i = 0; i < kvs->len; i++) {
        KeyVal *kv = g_ptr_array_index(kvs, i);

        if (!strcmp(kv->key, "type")) {
            if (!*kv->val) {
                error_setg(errp, "Parameter 'type' is missing");
                return false;
            }
            g_free(cfg->machine_type);
            cfg->machine_type = g_strdup(kv->val);
        } else if (!strcmp(kv->key, "memory-backend")) {
            g_free(cfg->memory_backend);
            cfg->memory_backend = g_strdup(kv->val);
        } else if (strcmp(kv->key, "accel") != 0) {
            error_setg(errp, "Property '%s-machine.%s' not found",
                       cfg->machine_type, kv->key);
            return false;
        }
    }
    return true;
}

static void mem_backend_free(gpointer p)
{
    MemBackendConfig *b = p;

    g_free(b->id);
    g_free(b->kind);
    g_free(b->mem_path);
    g_free(b);
}

static bool object_prop(MemBackendConfig *b, const char *type, KeyVal *kv,
                        GError **errp)
{
    if (!strcmp(kv->key, "id")) {
        g_free(b->id);
        b->id = g_strdup(kv->val);
        return true;
    }
    if (!strcmp(kv->key, "size")) {
        if (!parse_size("size", kv->val, false, &b->size, errp)) {
            return false;
        }
        if (b->size == 0) {
            g_set_error(errp, property_error_quark(), 0,
                        "property 'size' of %s doesn't take value '0'", type);
            return false;
        }
        b->size_given = true;
        return true;
    }
    if (!strcmp(kv->key, "share")) {
        return parse_bool("share", kv->val, &b->shared, errp);
    }
    if (!strcmp(kv->key, "prealloc")) {
        bool on;
        if (!parse_bool("prealloc", kv->val, &on, errp)) {
            return false;
        }
        b->prealloc = on;
        return true;
    }
    if (!strcmp(kv->key, "prealloc-threads")) {
        uint64_t n;
        if (!strcmp(kv->val, "0")) {
            g_set_error(errp, property_error_quark(), 0,
                        "property 'prealloc-threads' of %s doesn't take value '0'", type);
            return false;
        }
        if (!parse_uint("prealloc-threads", kv->val, 1, UINT32_MAX, &n, errp)) {
            return false;
        }
        b->prealloc_threads = n;
        return true;
    }
    if (!strcmp(kv->key, "mem-path") && !strcmp(b->kind, "file")) {
        g_free(b->mem_path);
        b->mem_path = g_strdup(kv->val);
        return true;
    }
    error_setg(errp, "Invalid parameter '%s'", kv->key);
    return false;
}

/* QEMU's id_wellformed: letters, digits, '-', '.', '_', starting with a letter. */
static bool id_wellformed(const char *id)
{
    if (!g_ascii_isalpha(id[0])) {
        return false;
    }
    for (const char *p = id; *p; p++) {
        if (!g_ascii_isalnum(*p) && !strchr("-._", *p)) {
            return false;
        }
    }
    return true;
}

/* The property checks QEMU makes when it creates the backend object. */
static bool object_check(VMConfig *cfg, const MemBackendConfig *b, GError **errp)
{
    if (!b->id) {
        error_setg(errp, "Parameter 'id' is missing");
        return false;
    }
    if (!id_wellformed(b->id)) {
        /* QEMU's error and, on the next line, its hint */
        error_setg(errp, "Parameter 'id' expects an identifier\n"
                   "Identifiers consist of letters, digits, '-', '.', '_', starting with a "
                   "letter.");
        return false;
    }
    for (guint i = 0; i < cfg->backends->len; i++) {
        const MemBackendConfig *o = g_ptr_array_index(cfg->backends, i);
        if (!strcmp(o->id, b->id)) {
            error_setg(errp, "Duplicate ID '%s' for object", b->id);
            return false;
        }
    }
    if (!b->size_given) {
        error_setg(errp, "Parameter 'size' is missing");
        return false;
    }
    if (!strcmp(b->kind, "file") && !b->mem_path) {
        error_setg(errp, "Parameter 'mem-path' is missing");
        return false;
    }
    return true;
}

static bool opt_object(VMConfig *cfg, const char *arg, GError **errp)
{
    g_autoptr(GPtrArray) kvs = keyval_parse(arg, "qom-type", errp);
    MemBackendConfig *b;
    const char *type;

    if (!kvs) {
        return false;
    }
    if (kvs->len == 0 || strcmp(((KeyVal *)kvs->pdata[0])->key, "qom-type")) {
        error_setg(errp, "Parameter 'qom-type' is missing");
        return false;
    }
    type = ((KeyVal *)kvs->pdata[0])->val;
    if (strcmp(type, "memory-backend-ram") && strcmp(type, "memory-backend-memfd") &&
        strcmp(type, "memory-backend-file")) {
        error_setg(errp, "Parameter 'qom-type' does not accept value '%s'", type);
        return false;
    }
    b = g_new0(MemBackendConfig, 1);
    b->kind = g_strdup(type + strlen("memory-backend-"));
    b->shared = !strcmp(b->kind, "memfd");     /* QEMU's memfd default */
    b->prealloc = -1;
    for (guint i = 1; i < kvs->len; i++) {
        if (!object_prop(b, type, g_ptr_array_index(kvs, i), errp)) {
            mem_backend_free(b);
            return false;
        }
    }
    if (!object_check(cfg, b, errp)) {
        mem_backend_free(b);
        return false;
    }
    g_ptr_array_add(cfg->backends, b);
    return true;
}

static bool opt_smp(VMConfig *cfg, const char *arg, GError **errp)
{
    g_autoptr(GPtrArray) kvs = keyval_parse(arg, "cpus", errp);
    static const char *const ignored[] = {
        "sockets", "dies", "clusters", "cores", "threads", "maxcpus", "books",
        "drawers", "modules", NULL
    };

    if (!kvs) {
        return false;
    }
    for (guint i = 0; i < kvs->len; i++) {
        KeyVal *kv = g_ptr_array_index(kvs, i);
        uint64_t n;

        if (!strcmp(kv->key, "cpus")) {
            if (!parse_uint("cpus", kv->val, 1, VM_MAX_CPUS, &n, errp)) {
                return false;
            }
            cfg->smp = n;
        } else if (!g_strv_contains(ignored, kv->key)) {
            error_setg(errp, "Invalid parameter '%s'", kv->key);
            return false;
        }
    }
    return true;
}

static bool opt_global(VMConfig *cfg, const char *arg, GError **errp)
{
    const char *dot = strchr(arg, '.');
    const char *eq = strchr(arg, '=');

    if (!dot || !eq || dot > eq || dot == arg || eq == dot + 1) {
        error_setg(errp, "Invalid global format, expected DRIVER.PROPERTY=VALUE");
        return false;
    }
    if (strncmp(arg, "migration.", dot - arg + 1) != 0) {
        g_autofree char *drv = g_strndup(arg, dot - arg);
        error_setg(errp, "global driver '%s' not supported, only 'migration'", drv);
        return false;
    }
    g_ptr_array_add(cfg->globals, g_strdup(dot + 1));
    return true;
}

static bool opt_serial(VMConfig *cfg, const char *arg, GError **errp)
{
    if (strcmp(arg, "none") && strcmp(arg, "null") && strcmp(arg, "stdio") &&
        !g_str_has_prefix(arg, "file:")) {
        g_autofree char *name = g_strndup(arg, strcspn(arg, ":,"));
        error_setg(errp, "'%s' is not a valid char driver name", name);
        return false;
    }
    if (g_str_has_prefix(arg, "file:") && !arg[5]) {
        error_setg(errp, "chardev: file: no filename given");
        return false;
    }
    if (!cfg->serial) {          /* the first -serial is the port we have */
        cfg->serial = g_strdup(arg);
    }
    return true;
}

static bool opt_name(VMConfig *cfg, const char *arg, GError **errp)
{
    g_autoptr(GPtrArray) kvs = keyval_parse(arg, "guest", errp);

    if (!kvs) {
        return false;
    }
    for (guint i = 0; i < kvs->len; i++) {
        KeyVal *kv = g_ptr_array_index(kvs, i);
        if (!strcmp(kv->key, "guest")) {
            g_free(cfg->name);
            cfg->name = g_strdup(kv->val);
        } else if (strcmp(kv->key, "process") && strcmp(kv->key, "debug-threads")) {
            error_setg(errp, "Invalid parameter '%s'", kv->key);
            return false;
        }
    }
    return true;
}

static bool opt_qmp(VMConfig *cfg, const char *arg, GError **errp)
{
    g_ptr_array_add(cfg->qmp_specs, g_strdup(arg));
    return true;
}

static bool opt_incoming(VMConfig *cfg, const char *arg, GError **errp)
{
    g_free(cfg->incoming);
    cfg->incoming = g_strdup(arg);
    return true;
}

static bool opt_S(VMConfig *cfg, const char *arg, GError **errp)
{
    cfg->start_paused = true;
    return true;
}

/* --- -guest ------------------------------------------------------------- */

typedef struct GuestProgramInfo {
    const char *name;
    GuestProgramId id;
    const char *const keys[6];
} GuestProgramInfo;

static const GuestProgramInfo guest_programs[] = {
    { "idle", GUEST_PROG_IDLE, { NULL } },
    { "ab", GUEST_PROG_AB, { NULL } },
    { "fill", GUEST_PROG_FILL, { "zero", "text", "random", "chunk", "seed", NULL } },
    { "dirty", GUEST_PROG_DIRTY, { "rate", "seed", NULL } },
    { "touch", GUEST_PROG_TOUCH, { "zero", "text", "random", "chunk", "seed", NULL } },
};

static bool guest_param(GuestConfig *gc, KeyVal *kv, bool *pct_given, GError **errp)
{
    uint64_t v;

    if (!strcmp(kv->key, "seed")) {
        return parse_uint("seed", kv->val, 0, G_MAXUINT64, &gc->seed, errp);
    }
    if (!strcmp(kv->key, "rate")) {
        return parse_uint("rate", kv->val, 0, G_MAXUINT32, &gc->rate, errp);
    }
    if (!strcmp(kv->key, "chunk")) {
        if (!parse_uint("chunk", kv->val, 1, 1u << 20, &v, errp)) {
            return false;
        }
        gc->chunk = v;
        return true;
    }
    if (!parse_uint(kv->key, kv->val, 0, 100, &v, errp)) {
        return false;
    }
    if (!*pct_given) {          /* given percentages replace the default mix */
        gc->zero_pct = gc->text_pct = gc->random_pct = 0;
        *pct_given = true;
    }
    *(!strcmp(kv->key, "zero") ? &gc->zero_pct :
      !strcmp(kv->key, "text") ? &gc->text_pct : &gc->random_pct) = v;
    return true;
}

bool guest_config_parse(GuestConfig *gc, const char *arg, GError **errp)
{
    g_autoptr(GPtrArray) kvs = keyval_parse(arg, "program", errp);
    const GuestProgramInfo *info = NULL;
    bool pct_given = false;
    const char *prog;

    if (!kvs) {
        return false;
    }
    prog = kvs->len ? ((KeyVal *)kvs->pdata[0])->val : "";
    for (size_t i = 0; i < G_N_ELEMENTS(guest_programs); i++) {
        if (!strcmp(guest_programs[i].name, prog)) {
            info = &guest_programs[i];
        }
    }
    if (!info) {
        error_setg(errp, "unknown guest program '%s' (idle, ab, fill, dirty, touch)", prog);
        return false;
    }
    *gc = (GuestConfig) { .prog = info->id, .zero_pct = 50, .text_pct = 25,
                          .random_pct = 25, .chunk = 16 };
    for (guint i = 1; i < kvs->len; i++) {
        KeyVal *kv = g_ptr_array_index(kvs, i);

        if (!g_strv_contains((const char *const *)info->keys, kv->key)) {
            error_setg(errp, "guest program '%s' has no parameter '%s'", prog, kv->key);
            return false;
        }
        if (!guest_param(gc, kv, &pct_given, errp)) {
            return false;
        }
    }
    if (gc->zero_pct + gc->text_pct + gc->random_pct != 100) {
        error_setg(errp, "zero, text and random must add up to 100, not %u",
                   gc->zero_pct + gc->text_pct + gc->random_pct);
        return false;
    }
    return true;
}

static bool opt_guest(VMConfig *cfg, const char *arg, GError **errp)
{
    return guest_config_parse(&cfg->guest, arg, errp);
}

static bool opt_mem_prealloc(VMConfig *cfg, const char *arg, GError **errp)
{
    cfg->mem_prealloc = true;
    return true;
}

/*
 * -vga std (the default) or none; QEMU's other VGA types have memory of
 * their own (other block names and sizes), which mapram-vm does not model.
 */
static bool opt_vga(VMConfig *cfg, const char *arg, GError **errp)
{
    static const char *const other[] = {
        "cirrus", "vmware", "xenfb", "qxl", "tcx", "cg3", "virtio", "ati",
    };

    if (!strcmp(arg, "std") || !strcmp(arg, "none")) {
        cfg->no_vga = !strcmp(arg, "none");
        return true;
    }
    for (size_t i = 0; i < G_N_ELEMENTS(other); i++) {
        if (!strcmp(arg, other[i])) {
            error_setg(errp, "VGA type '%s' is not supported by mapram-vm (std, none)", arg);
            return false;
        }
    }
    error_setg(errp, "unknown vga type: %s", arg);
    return false;
}

static bool opt_ignored(VMConfig *cfg, const char *arg, GError **errp)
{
    return true;
}

/* docs/user-guide.md has the details */
const char *vm_config_usage(void)
{
    return "usage: mapram-vm [options]\n"
          "\n"
          "-m SIZE                  main RAM (default 512M)\n"
          "-machine TYPE[,memory-backend=ID]\n"
          "                         machine type written to the stream (default mapram-10.2)\n"
          "-object memory-backend-ram|memory-backend-memfd|memory-backend-file,id=ID,size=SIZE"
          "[,share=on|off][,mem-path=PATH][,prealloc=on|off][,prealloc-threads=N]\n"
          "                         a RAM backend\n"
          "-mem-prealloc            back all guest RAM at start-up\n"
          "-smp N                   vCPUs\n"
          "-qmp unix:PATH,server=on,wait=off | -qmp stdio\n"
          "                         the QMP monitor\n"
          "-incoming URI | -incoming defer\n"
          "                         wait for an incoming migration\n"
          "-S                       do not start the guest\n"
          "-serial file:PATH|stdio|none\n"
          "                         the guest's serial output\n"
          "-vga std|none            the 16 MiB vga.vram block or none\n"
          "-guest ab|fill|dirty|touch|idle[,key=val...]\n"
          "                         the guest program the vCPUs run\n"
          "-global migration.NAME=VALUE\n"
          "                         a migration property or capability\n"
          "-name NAME, -nodefaults, -nographic, -display, -accel, -cpu\n"
          "                         accepted for QEMU's command lines\n"
          "-h, -help                this text\n";
}

/* As QEMU's -h: the options on stdout, exit status 0; what follows is not read. */
static bool opt_help(VMConfig *cfg, const char *arg, GError **errp)
{
    cfg->help = true;
    return true;
}

typedef struct VMOption {
    const char *name;
    bool has_arg;
    bool (*handler)(VMConfig *cfg, const char *arg, GError **errp);
} VMOption;

static const VMOption vm_options[] = {
    { "m", true, opt_m },
    { "machine", true, opt_machine },
    { "M", true, opt_machine },
    { "object", true, opt_object },
    { "smp", true, opt_smp },
    { "global", true, opt_global },
    { "serial", true, opt_serial },
    { "name", true, opt_name },
    { "qmp", true, opt_qmp },
    { "incoming", true, opt_incoming },
    { "S", false, opt_S },
    { "mem-prealloc", false, opt_mem_prealloc },
    { "guest", true, opt_guest },
    { "nodefaults", false, opt_ignored },
    { "nographic", false, opt_ignored },
    { "display", true, opt_ignored },
    { "accel", true, opt_ignored },
    { "vga", true, opt_vga },
    { "cpu", true, opt_ignored },
    { "h", false, opt_help },
    { "help", false, opt_help },
};

static const VMOption *find_option(const char *name)
{
    for (size_t i = 0; i < G_N_ELEMENTS(vm_options); i++) {
        if (!strcmp(vm_options[i].name, name)) {
            return &vm_options[i];
        }
    }
    return NULL;
}

VMConfig *vm_config_new(void)
{
    VMConfig *cfg = g_new0(VMConfig, 1);

    cfg->ram_size = VM_DEFAULT_RAM_SIZE;
    cfg->machine_type = g_strdup(VM_DEFAULT_MACHINE);
    cfg->backends = g_ptr_array_new_with_free_func(mem_backend_free);
    cfg->qmp_specs = g_ptr_array_new_with_free_func(g_free);
    cfg->globals = g_ptr_array_new_with_free_func(g_free);
    cfg->smp = 1;
    g_assert(guest_config_parse(&cfg->guest, "idle", NULL));
    return cfg;
}

void vm_config_free(VMConfig *cfg)
{
    if (!cfg) {
        return;
    }
    g_free(cfg->machine_type);
    g_free(cfg->memory_backend);
    g_ptr_array_free(cfg->backends, TRUE);
    g_ptr_array_free(cfg->qmp_specs, TRUE);
    g_ptr_array_free(cfg->globals, TRUE);
    g_free(cfg->incoming);
    g_free(cfg->serial);
    g_free(cfg->name);
    g_free(cfg);
}

bool vm_config_parse(VMConfig *cfg, int argc, char **argv, GError **errp)
{
    for (int i = 1; i < argc; i++) {
        const char *opt = argv[i];
        const char *name = opt[0] == '-' ? opt + 1 + (opt[1] == '-') : opt;
        const VMOption *o = opt[0] == '-' ? find_option(name) : NULL;
        const char *arg = NULL;

        if (!o) {
            error_setg(errp, "%s: invalid option", opt);
            return false;
        }
        if (o->has_arg) {
            if (i + 1 >= argc) {
                error_setg(errp, "%s: requires an argument", opt);
                return false;
            }
            arg = argv[++i];
        }
        if (!o->handler(cfg, arg, errp)) {
            if (errp && !g_error_matches(*errp, property_error_quark(), 0)) {
                g_prefix_error(errp, "%s%s%s: ", opt, arg ? " " : "", arg ? arg : "");
            }
            return false;
        }
        if (cfg->help) {
            return true;
        }
    }
    return true;
}
