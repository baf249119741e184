/* placeholder until the demo lands */
#include "mapram-tool.h"
#include <stdio.h>
int cmd_demo(int argc, char **argv)
{
    fprintf(stderr, "mapram demo: not built yet\n");
    return 1;
}
