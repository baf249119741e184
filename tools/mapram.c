/*
 * mapram: inspect, verify and convert migration files; bridge any QEMU's
 * exec: migration to mapped-ram files.
 */
#include "mapram-tool.h"
#include "config-host.h"
#include <signal.h>
#include <stdio.h>
#include <string.h>

typedef struct Command {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help;
} Command;

static const Command commands[] = {
    { "info", cmd_info, "show the structure of a stream or mapped-ram file" },
    { "verify", cmd_verify, "check a file's structure; non-zero exit with the offset of the first problem" },
    { "save", cmd_save, "QEMU stream on stdin (or --listen URI, multifd too) -> mapped-ram file" },
    { "load", cmd_load, "mapped-ram file -> QEMU stream on stdout (for migrate-incoming \"exec:mapram load F\")" },
    { "serve", cmd_serve, "mapped-ram file -> a QEMU waiting on unix:/tcp:, as a postcopy source (instant restore)" },
    { "convert", cmd_convert, "stream file <-> mapped-ram file" },
    { "demo", cmd_demo, "save and restore a running mapram-vm and print what happened" },
};

static void usage(FILE *out)
{
    fprintf(out, "usage: mapram COMMAND [OPTIONS] ARGS\n\ncommands:\n");
    for (size_t i = 0; i < G_N_ELEMENTS(commands); i++) {
        fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].help);
    }
    fprintf(out, "\n'mapram COMMAND --help' for a command's options.\n");
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    signal(SIGXFSZ, SIG_IGN);   /* EFBIG instead of death under ulimit -f */
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("mapram %s\n", MAPRAM_VERSION);
        return 0;
    }
    for (size_t i = 0; i < G_N_ELEMENTS(commands); i++) {
        if (!strcmp(argv[1], commands[i].name)) {
            return commands[i].fn(argc - 1, argv + 1);
        }
    }
    fprintf(stderr, "mapram: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
