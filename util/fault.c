/*
 * Named fault-injection points.
 *
 * MAPRAM_FAULT="name[:N][,name[:N]...]" arms points.  An armed point
 * fires on its Nth hit (default: the first) and on every hit after it:
 * tests want "the 3rd page write fails" and, for points such as
 * multifd-send-stall, a behaviour that persists once it starts.
 *
 * The environment is read once, on the first check, and the table is
 * immutable afterwards; hit counters are atomic because the points are
 * hit from multifd threads.  Builds without the fault_injection option
 * compile every check to false.
 */
#include <stdlib.h>
#include <pthread.h>
#include <string.h>

#include "util/fault.h"

#if MAPRAM_FAULT_INJECTION

#include <glib.h>

typedef struct FaultPoint {
    char *name;
    unsigned long fire_at;      /* 1-based hit that fires first */
    unsigned long hits;         /* atomic */
} FaultPoint;

static FaultPoint *fault_point_parse(const char *spec)
{
    g_auto(GStrv) parts = g_strsplit(spec, ":", 2);
    FaultPoint *fp;
    unsigned long n = 1;

    if (!parts[0] || !*parts[0]) {
        return NULL;
    }
    if (parts[1]) {
        char *end;

        n = strtoul(parts[1], &end, 10);
        if (*end || n == 0) {
            g_printerr("MAPRAM_FAULT: ignoring bad count in '%s'\n", spec);
            return NULL;
        }
    }
    fp = g_new0(FaultPoint, 1);
    fp->name = g_strdup(parts[0]);
    fp->fire_at = n;
    return fp;
}

static gpointer fault_table_init(gpointer unused)
{
    const char *env = getenv("MAPRAM_FAULT");
    GPtrArray *points = g_ptr_array_new();

    if (env) {
        g_auto(GStrv) specs = g_strsplit(env, ",", -1);

        for (char **s = specs; *s; s++) {
            FaultPoint *fp = fault_point_parse(g_strstrip(*s));

            if (fp) {
                g_ptr_array_add(points, fp);
            }
        }
    }
    return points;
}

/*
 * Immutable once built.  pthread_once, not g_once: GLib's is built on a
 * futex ThreadSanitizer cannot see, so every reader looked racy.
 */
static pthread_once_t fault_once = PTHREAD_ONCE_INIT;
static GPtrArray *fault_points;

static void fault_table_build(void)
{
    fault_points = fault_table_init(NULL);
}

static GPtrArray *fault_table(void)
{
    pthread_once(&fault_once, fault_table_build);
    return fault_points;
}

bool fault_hit(const char *name)
{
    GPtrArray *points = fault_table();

    for (guint i = 0; i < points->len; i++) {
        FaultPoint *fp = g_ptr_array_index(points, i);

        if (strcmp(fp->name, name) == 0) {
            unsigned long hit = __atomic_add_fetch(&fp->hits, 1, __ATOMIC_RELAXED);

            return hit >= fp->fire_at;
        }
    }
    return false;
}

#else

bool fault_hit(const char *name)
{
    return false;
}

#endif
