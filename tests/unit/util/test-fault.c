/*
 * Fault points: MAPRAM_FAULT parsing and "fires on the Nth hit and every
 * hit after it".  The environment is set here, before the first check
 * reads it.
 */
#include "util/fault.h"

#include <glib.h>

static void test_fault_points(void)
{
    /* Checked first, so the table is built from the value set in main. */
#if FAULT_INJECTION_BUILT
    g_assert_true(fault_hit("point-a"));        /* default: 1st hit */
    g_assert_true(fault_hit("point-a"));        /* and every one after */
    g_assert_false(fault_hit("point-b"));
    g_assert_false(fault_hit("point-b"));
    g_assert_true(fault_hit("point-b"));        /* :3 -> third hit */
    g_assert_true(fault_hit("point-b"));
    g_assert_false(fault_hit("point-c"));       /* bad count: ignored */
    g_assert_false(fault_hit("point"));         /* names match exactly */
    g_assert_false(fault_hit("unarmed"));
    g_assert_true(fault_hit("point-d"));        /* spaces trimmed */
#else
    g_assert_false(fault_hit("point-a"));
    g_assert_false(fault_hit("point-b"));
#endif
}

int main(int argc, char **argv)
{
    g_setenv("MAPRAM_FAULT", "point-a,point-b:3,point-c:x, point-d ", TRUE);
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/util/fault/points", test_fault_points);
    return g_test_run();
}
