/* cli: `asrd pull NAME` (stub until implemented). */
#include <stdio.h>
#include "cli/cli.h"
int asr_cli_pull(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "asrd: pull: not implemented yet\n");
    return 1;
}
