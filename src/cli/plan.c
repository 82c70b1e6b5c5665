/* cli: `asrd plan`: the memory plan of a model (weights, one slot, process overhead), from a model
 * directory's header or from the dimensions of an official size, without loading weights. With
 * --device cuda|host: the device plan (asr_plan_gpu_compute, the layout the GPU engine allocates
 * with) for N slots in flight; arithmetic only, so it runs on a machine without a GPU. */
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
    "                 [--device cpu|cuda|host [--batch N] [--max-batch B]]\n"                      \
    "  Prints the bytes a model needs: weights, one decoding slot (its parts), the fixed "         \
    "process\n"                                                                                    \
    "  overhead and their total. NAME is a pulled model (its header is read) or an official "      \
    "size\n"                                                                                       \
    "  (tiny, base.en, ..., large-v3, turbo). --all: every official size at beam 1 and 5.\n"       \
    "  --device cuda|host: device bytes instead (compute types float16, bfloat16, int8_float16,\n" \
    "  float32; default float16 on cuda, float32 on host): the model (weights, scratch for B\n"    \
    "  windows, cuBLAS workspace), one slot per request in flight (cross K/V, self K/V), the "     \
    "CUDA\n"                                                                                       \
    "  context, and the total for N slots (default 1) = context + model + N x slot; B defaults\n"  \
    "  to the engine's 16. --device cpu (the default): the host plan above.\n"

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

static void gpu_row(const char *label, size_t b) {
    printf("  %-28s %10.1f MiB  %14zu bytes\n", label, mib(b), b);
}

/* The device plan of `name` for n_slots slots in flight; one1: the same at max_batch 1 (one
 * window's encoder activations). */
static void print_gpu_plan(const char *name, const asr_model_info_t *in, const asr_plan_gpu_t *p,
                           const asr_plan_gpu_t *one1, int n_slots, int json) {
    size_t total = p->context + p->model + (size_t)n_slots * p->slot;
    size_t host_total = p->host_model + (size_t)n_slots * p->host_slot;
    if (json) {
        printf("{\"model_name\":\"%s\",\"format\":\"%s\",\"device\":\"%s\",\"compute_type\":\"%s\","
               "\"max_batch\":%d,\"n_seq\":%d,\"batch\":%d,\"weights\":%zu,\"encoder_window\":%zu,"
               "\"encoder\":%zu,\"decoder\":%zu,\"dequant\":%zu,\"scratch\":%zu,\"workspace\":%zu,"
               "\"model\":%zu,\"cross_kv\":%zu,\"self_kv\":%zu,\"last\":%zu,\"slot\":%zu,"
               "\"context\":%zu,\"total\":%zu,\"host_model\":%zu,\"host_slot\":%zu,"
               "\"host_total\":%zu}\n",
               name, in->format[0] ? in->format : "", p->device, p->compute_type, p->max_batch,
               p->n_seq, n_slots, p->weights, one1->encoder, p->encoder, p->decoder, p->dequant,
               p->scratch, p->workspace, p->model, p->cross_kv, p->self_kv, p->last, p->slot,
               p->context, total, p->host_model, p->host_slot, host_total);
        return;
    }
    char l[64];
    printf("model %s on %s, %s, max batch %d, %d sequence%s per slot, %d slot%s in flight\n", name,
           p->device, p->compute_type, p->max_batch, p->n_seq, p->n_seq > 1 ? "s" : "", n_slots,
           n_slots > 1 ? "s" : "");
    if (in->format[0])
        printf("  file: %s%s%s\n", in->format, in->note[0] ? "; " : "", in->note);
    printf("device bytes\n");
    gpu_row("weights", p->weights);
    snprintf(l, sizeof l, "scratch (%d windows)", p->max_batch);
    gpu_row(l, p->scratch);
    gpu_row("  encoder, one window", one1->encoder);
    snprintf(l, sizeof l, "  encoder, %d windows", p->max_batch);
    gpu_row(l, p->encoder);
    gpu_row("  decoder activations", p->decoder);
    if (p->dequant)
        gpu_row("  int8 dequantization", p->dequant);
    gpu_row("workspace (cuBLAS)", p->workspace);
    gpu_row("model (weights+scratch+ws)", p->model);
    gpu_row("slot (one request)", p->slot);
    gpu_row("  cross K/V", p->cross_kv);
    snprintf(l, sizeof l, "  self K/V (%d sequence%s)", p->n_seq, p->n_seq > 1 ? "s" : "");
    gpu_row(l, p->self_kv);
    gpu_row("  last prompt rows", p->last);
    gpu_row(p->context ? "CUDA context (estimated)" : "CUDA context", p->context);
    snprintf(l, sizeof l, "total, %d slot%s", n_slots, n_slots > 1 ? "s" : "");
    gpu_row(l, total);
    printf("  (= context + model + %d x slot)\n", n_slots);
    printf("host bytes\n");
    gpu_row("pinned buffers of the model", p->host_model);
    gpu_row("per slot (logits, state)", p->host_slot);
    snprintf(l, sizeof l, "total, %d slot%s", n_slots, n_slots > 1 ? "s" : "");
    gpu_row(l, host_total);
    printf(
        "  (+ the host model: tokenizer and mel filters; the load adds %.0f MiB while it runs)\n",
        mib(2 * ((size_t)8 << 20)));
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
                                         {"device", required_argument, 0, 'D'},
                                         {"batch", required_argument, 0, 'N'},
                                         {"max-batch", required_argument, 0, 'M'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *model = "base", *compute = "float32", *device = NULL;
    int beam = 5, best_of = -1, words = 0, all = 0, json = 0, compute_set = 0, c;
    int n_slots = -1, max_batch = -1;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:b:B:wc:ajhD:N:M:", opts, NULL)) != -1) {
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
            compute_set = 1;
            break;
        case 'D':
            if (!strcmp(optarg, "cpu"))
                device = NULL;
            else if (!strcmp(optarg, "host"))
                device = "host";
            else if (!strncmp(optarg, "cuda", 4) &&
                     (!optarg[4] || (optarg[4] == ':' && optarg[5] &&
                                     strspn(optarg + 5, "0123456789") == strlen(optarg + 5))))
                device = "cuda";
            else {
                fprintf(stderr,
                        "asrd: plan: --device must be cpu, cuda, cuda:N or host (not '%s')\n",
                        optarg);
                return 2;
            }
            break;
        case 'N':
        case 'M': {
            long v = strtol(optarg, &end, 10);
            if (!*optarg || *end || v < 1 || v > (c == 'N' ? 4096 : 256)) {
                fprintf(stderr, "asrd: plan: --%s must be 1..%d\n",
                        c == 'N' ? "batch" : "max-batch", c == 'N' ? 4096 : 256);
                return 2;
            }
            *(c == 'N' ? &n_slots : &max_batch) = (int)v;
            break;
        }
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
    if (!device && (n_slots > 0 || max_batch > 0)) {
        fprintf(stderr, "asrd: plan: --batch and --max-batch need --device cuda or host\n");
        return 2;
    }
    if (device && all) {
        fprintf(stderr, "asrd: plan: --all takes no --device\n");
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
    if (device) {
        asr_plan_gpu_t g, g1;
        const char *ct = compute_set ? compute : NULL;
        int n_seq = asr_transcribe_n_seq(&tp);
        if (asr_plan_gpu_compute(&dims, device, ct, max_batch, n_seq, &g) != ASR_OK ||
            asr_plan_gpu_compute(&dims, device, ct, 1, n_seq, &g1) != ASR_OK) {
            fprintf(
                stderr, "asrd: plan: unsupported compute type '%s' on %s (%s)\n", compute, device,
                strcmp(device, "host") ? "float16, bfloat16, int8_float16 or float32" : "float32");
            return 2;
        }
        print_gpu_plan(model, &dims, &g, &g1, n_slots > 0 ? n_slots : 1, json);
        return 0;
    }
    if (asr_plan_compute(&dims, compute, asr_transcribe_n_seq(&tp), words, &p) != ASR_OK) {
        fprintf(stderr, "asrd: plan: unsupported compute type '%s'\n", compute);
        return 2;
    }
    print_plan(model, &dims, &p, json, 1);
    if (json)
        printf("\n");
    return 0;
}
