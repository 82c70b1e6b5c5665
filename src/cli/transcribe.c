/* cli: `asrd transcribe` (stub until implemented). */
#include <stdio.h>
#include "cli/cli.h"
int asr_cli_transcribe(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "asrd: transcribe: not implemented yet\n");
    return 1;
}
int asr_cli_debug(int argc, char **argv) {
    (void)argc;
    (void)argv;
    return 1;
}
