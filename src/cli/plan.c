/* cli: `asrd plan`: the memory plan of a model (weights, one slot, process overhead), from a model
 * directory's header or from the dimensions of an official size, without loading weights. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "asr/engine.h"
#include "cli/cli.h"

#define USAGE                                                                                      \
    "usage: asrd plan [--model NAME|DIR] [--beam-size N] [--best-of N] [--word-timestamps]\n"      \
    "                 [--compute-type float32|bfloat16|int8|auto] [--all] [--json]\n"              \
    "  Prints the bytes a model needs: weights, one decoding slot (its parts), the fixed "         \
    "process\n"                                                                                    \
    "  overhead and their total. NAME is a pulled model (its header is read) or an official "      \
    "size\n"                                                                                       \
    "  (tiny, base.en, ..., large-v3, turbo). --all: every official size at beam 1 and 5.\n"

static double mib(size_t b) { return (double)b / (1024.0 * 1024.0); }

static void print_plan(const char *name, const asr_model_info_t *in, const asr_plan_t *p, int json,
                       int first) {
    if (json) {
        printf("%s{\"model\":\"%s\",\"format\":\"%s\",\"compute_type\":\"%s\",\"n_seq\":%d,\"word_"
               "timestamps\":%s,"
               "\"weights\":%zu,"
               "\"slot\":%zu,\"encoder\":%zu,\"cross_kv\":%zu,\"self_kv\":%zu,\"decoder\":%zu,"
               "\"logits\":%zu,\"frontend\":%zu,\"align\":%zu,\"overhead\":%zu,\"total\":%zu}",
               first ? "" : ",\n", name, in && in->format[0] ? in->format : "", p->compute_type,
               p->n_seq, p->word_timestamps ? "true" : "false", p->weights, p->slot, p->encoder,
               p->cross_kv, p->self_kv, p->decoder, p->logits, p->frontend, p->align, p->overhead,
               p->total);
        return;
    }
    const char *ct = p->compute_type;
    printf("model %s, %d parallel sequence%s%s (%s: encoder float32, decoder %s weights)\n", name,
           p->n_seq, p->n_seq > 1 ? "s" : "", p->word_timestamps ? ", word timestamps" : "", ct,
           strcmp(ct, "float32")    ? ct
           : in && in->f32_matrices ? "float32"
                                    : "float16");
    if (in && in->format[0])
        printf("  file: %s%s%s\n", in->format, in->note[0] ? "; " : "", in->note);
    printf("  weights   %10.1f MiB  %12zu bytes\n", mib(p->weights), p->weights);
    printf("  slot      %10.1f MiB  %12zu bytes\n", mib(p->slot), p->slot);
    printf("    encoder   %8.1f MiB\n    cross_kv  %8.1f MiB\n    self_kv   %8.1f MiB\n"
           "    decoder   %8.1f MiB\n    logits    %8.1f MiB\n    frontend  %8.1f MiB\n",
           mib(p->encoder), mib(p->cross_kv), mib(p->self_kv), mib(p->decoder), mib(p->logits),
           mib(p->frontend));
    if (p->word_timestamps)
        printf("    align     %8.1f MiB\n", mib(p->align));
    printf("  overhead  %10.1f MiB  %12zu bytes\n", mib(p->overhead), p->overhead);
    printf("  total     %10.1f MiB  %12zu bytes\n", mib(p->total), p->total);
    printf("  (+%.1f MiB once FFmpeg decodes an input: anything but 16 kHz mono 16-bit WAV)\n",
           mib(ASR_PLAN_FFMPEG));
}

/* Dimensions of `model`: a model path or pulled model (any format; its header is read), else an
 * official size. */
static int model_dims(const char *model, asr_model_info_t *out) {
    char *dir = asr_cli_model_dir(model);
    struct stat st;
    int rc = 0;
    char err[512] = "";
    if (stat(dir, &st) == 0) {
        if (asr_model_probe(dir, out, err, sizeof err) != ASR_OK) {
            fprintf(stderr, "asrd: plan: %s\n", err);
            rc = 1;
        }
    } else if (asr_model_dims_named(model)) {
        *out = *asr_model_dims_named(model);
    } else {
        fprintf(stderr, "asrd: plan: no model '%s' (not pulled, not an official size)\n", model);
        rc = 1;
    }
    free(dir);
    return rc;
}

int asr_cli_plan(int argc, char **argv) {
    static const struct option opts[] = {{"model", required_argument, 0, 'm'},
                                         {"beam-size", required_argument, 0, 'b'},
                                         {"best-of", required_argument, 0, 'B'},
                                         {"word-timestamps", no_argument, 0, 'w'},
                                         {"compute-type", required_argument, 0, 'c'},
                                         {"all", no_argument, 0, 'a'},
                                         {"json", no_argument, 0, 'j'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *model = "base", *compute = "float32";
    int beam = 5, best_of = -1, words = 0, all = 0, json = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:b:B:wc:ajh", opts, NULL)) != -1) {
        char *end = NULL;
        switch (c) {
        case 'm':
            model = optarg;
            break;
        case 'b':
        case 'B': {
            long v = strtol(optarg, &end, 10);
            if (!*optarg || *end || v < 1 || v > 8) {
                fprintf(stderr, "asrd: plan: --%s must be 1..8\n",
                        c == 'b' ? "beam-size" : "best-of");
                return 2;
            }
            *(c == 'b' ? &beam : &best_of) = (int)v;
            break;
        }
        case 'w':
            words = 1;
            break;
        case 'c':
            compute = optarg;
            break;
        case 'a':
            all = 1;
            break;
        case 'j':
            json = 1;
            break;
        case 'h':
            fputs(USAGE, stdout);
            return 0;
        default:
            fputs(USAGE, stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "asrd: plan: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    asr_plan_t p;
    if (all) {
        if (json)
            printf("[");
        int first = 1;
        for (const char *const *n = asr_model_named_sizes(); *n; n++)
            for (int k = 0; k < 2; k++) {
                if (asr_plan_compute(asr_model_dims_named(*n), compute, k ? 5 : 1, words, &p) !=
                    ASR_OK) {
                    fprintf(stderr, "asrd: plan: unsupported compute type '%s'\n", compute);
                    return 2;
                }
                if (json)
                    print_plan(*n, NULL, &p, 1, first);
                else
                    printf("%-15s n_seq %d  weights %8.1f MiB  slot %8.1f MiB  total %8.1f MiB\n",
                           *n, p.n_seq, mib(p.weights), mib(p.slot), mib(p.total));
                first = 0;
            }
        if (json)
            printf("]\n");
        return 0;
    }
    asr_model_info_t dims;
    if (model_dims(model, &dims))
        return 1;
    asr_transcribe_params_t tp = asr_transcribe_default_params();
    tp.beam_size = beam;
    tp.best_of = best_of > 0 ? best_of : tp.best_of;
    if (asr_plan_compute(&dims, compute, asr_transcribe_n_seq(&tp), words, &p) != ASR_OK) {
        fprintf(stderr, "asrd: plan: unsupported compute type '%s'\n", compute);
        return 2;
    }
    print_plan(model, &dims, &p, json, 1);
    if (json)
        printf("\n");
    return 0;
}
