/* cli: `asrd debug random-model`: a random-weight model of a real Whisper shape
 * (engine/random_model.h), written in any format through convert's atomic output step. The same
 * shape, seed, format and compute type give the same bytes. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "engine/random_model.h"

#define USAGE                                                                                      \
    "usage: asrd debug random-model --shape tiny|base|small|medium|large-v3|large-v3-turbo\n"      \
    "                               --format ct2|ggml|safetensors --out DIR [--seed N]\n"          \
    "                               [--compute-type float16|float32|int8] [--force]\n"             \
    "  A reproducible random-weight model of the shape's real dimensions, tokenizer included\n"    \
    "  (seed default 1, compute type default float16). DIR is made (a ggml model is the file\n"    \
    "  DIR/ggml-SHAPE.bin); an existing DIR is refused unless --force.\n"

int asr_cli_debug_random_model(int argc, char **argv) {
    static const struct option opts[] = {{"shape", required_argument, 0, 's'},
                                         {"format", required_argument, 0, 'f'},
                                         {"out", required_argument, 0, 'o'},
                                         {"seed", required_argument, 0, 'S'},
                                         {"compute-type", required_argument, 0, 'c'},
                                         {"force", no_argument, 0, 'F'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *shape = NULL, *fmt = NULL, *out = NULL, *ct = "float16";
    unsigned long long seed = 1;
    bool force = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "s:f:o:S:c:Fh", opts, NULL)) != -1) {
        char *end;
        switch (c) {
        case 's':
            shape = optarg;
            break;
        case 'f':
            fmt = optarg;
            break;
        case 'o':
            out = optarg;
            break;
        case 'S':
            seed = strtoull(optarg, &end, 0);
            if (!*optarg || *end || optarg[0] == '-') {
                fprintf(stderr, "asrd: debug random-model: --seed takes a number, not '%s'\n",
                        optarg);
                return 2;
            }
            break;
        case 'c':
            ct = optarg;
            break;
        case 'F':
            force = true;
            break;
        case 'h':
            fputs(USAGE, stdout);
            return 0;
        default:
            fputs(USAGE, stderr);
            return 2;
        }
    }
    if (!shape || !fmt || !out || optind != argc) {
        fputs(USAGE, stderr);
        return 2;
    }
    int format = asr__cli_model_format(fmt);
    asr_ww_type_t type;
    const char *bad = !asr_random_shape(shape)         ? "shape"
                      : format < 0                     ? "format"
                      : asr__cli_model_type(ct, &type) ? "compute type"
                                                       : NULL;
    if (bad) {
        fprintf(stderr, "asrd: debug random-model: unknown %s '%s'\n%s", bad,
                !strcmp(bad, "shape")    ? shape
                : !strcmp(bad, "format") ? fmt
                                         : ct,
                USAGE);
        return 2;
    }
    asr_wsource_t *s = NULL;
    char err[1024] = "";
    if (asr_random_model_create(shape, seed, &s, err, sizeof err) != ASR_OK) {
        fprintf(stderr, "asrd: debug random-model: %s\n", err);
        return 1;
    }
    s->src.type = type;
    /* --out is always a directory: a ggml file goes inside it, named as whisper.cpp names its */
    char file[64];
    snprintf(file, sizeof file, "ggml-%s.bin", shape);
    int rc = asr__cli_write_model(&s->src, format, out, file, force, "debug random-model");
    asr_wsource_close(s);
    return rc;
}
