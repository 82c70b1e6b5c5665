/* cli: `asrd serve` (stub until the HTTP server lands). */
#include <stdio.h>
#include "cli/cli.h"
int asr_cli_serve(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "asrd: serve: not implemented yet\n");
    return 1;
}
