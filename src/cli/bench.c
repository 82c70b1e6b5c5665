/* cli: `asrd bench`: where the time goes on this machine. Prints the kernel level picked (and
 * why), measures the peak of the unit the encoder's GEMMs run on under the compute type in use
 * (an encoder-shaped GEMM, 1500 x 4d x d, through the same path: oneDNN's packed bfloat16/int8
 * matmul where the model packed its encoder for it, else float32 sgemm, the better of OpenBLAS's
 * threads and rows over asrd's pool) beside the float32 sgemm figure, the encoder's time per
 * 30-s window and its GFLOP/s (from the dimensions, WHISPER-FACTS §9) as a share of that peak,
 * the decoder's time per step for 1 and n sequences, and the end-to-end real-time factor of a
 * file. Medians of repeated runs (peaks: the best); nothing here is a pass/fail check. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "asr/engine.h"
#include "audio/audio.h"
#include "cli/cli.h"
#include "core/core.h"
#include "nn/isa.h"
#include "nn/nn.h"

#define USAGE                                                                                      \
    "usage: asrd bench [--model NAME|DIR] [--threads N] [--beam-size N] [--repeat N] [--json]\n"   \
    "                  [--compute-type float32|bfloat16|int8|auto] [FILE]\n"                       \
    "  Prints the CPU kernel level (and why), the peak GFLOP/s of the encoder's GEMM path for\n"   \
    "  the compute type (measured: oneDNN bfloat16/int8 or float32 sgemm), the float32 sgemm\n"    \
    "  peak, encoder ms per 30-s window and its share of the peak, decoder ms per step (1 and\n"   \
    "  beam-size sequences) and, given FILE, the real-time factor of a transcription with\n"       \
    "  default settings (beam 5). CPU only.\n"                                                     \
    "\n"                                                                                           \
    "       asrd bench --streams N[,N...] [--model NAME|DIR] [--device cpu|cuda|cuda:N|auto]\n"    \
    "                  [--compute-type T] [--beam-size B[,B...]] [--tokens T] [--windows W]\n"     \
    "                  [--warmup W] [--max-batch N] [--threads N] [--json] [FILE]\n"               \
    "  N threads, each its own stream on one shared model (a GPU model batches them), each\n"      \
    "  encoding W 30-s windows (default 4; FILE's log-mel, else random) and decoding exactly T\n"  \
    "  tokens after each (default 100) with B beams (default 1). Prints RTFx (30 s x windows /\n"  \
    "  wall s), windows/s, tokens/s, latency, batching counters, host peak RSS and peak device\n"  \
    "  memory. Default device auto, compute type auto (float16 on a GPU, float32 on the CPU).\n"   \
    "  Lists run every beam size x stream count on the one loaded model (--json: a line each).\n"

/* --name's comma-separated integers in [lo, hi] (at most cap) into out[*n]: 0, or 1 after a
 * one-line message. */
static int list_arg(const char *s, int lo, int hi, const char *name, int *out, int cap, int *n) {
    *n = 0;
    for (const char *p = s;;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < lo || v > hi || *n == cap || (*end && *end != ',')) {
            fprintf(stderr,
                    "asrd: bench: --%s takes up to %d integers from %d to %d, "
                    "comma-separated\n",
                    name, cap, lo, hi);
            return 1;
        }
        out[(*n)++] = (int)v;
        if (!*end)
            return 0;
        p = end + 1;
    }
}

/* --name's integer in [lo, hi] into *out: 0, or 1 after a one-line message. */
static int int_arg(const char *s, int lo, int hi, const char *name, int *out) {
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < lo || v > hi) {
        fprintf(stderr, "asrd: bench: --%s must be an integer from %d to %d\n", name, lo, hi);
        return 1;
    }
    *out = (int)v;
    return 0;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* the process's CPU seconds: a window's CPU time stays meaningful on a shared, loaded machine
 * (at --threads 1 it is the work of one core; pools that spin add to it at more threads) */
static double cpu_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* FLOPs of one encoder pass (multiply-adds count 2), from the dimensions. */
static double encoder_flop(const asr_model_info_t *in) {
    double d = in->d_model, T = 1500, mels = in->n_mels;
    double f = 2 * 3000 * d * 3 * mels + 2 * T * d * 3 * d;
    f += in->n_audio_layer *
         (2 * T * d * 3 * d + 2 * 2 * T * T * d + 2 * T * d * d + 2 * 2 * T * d * 4 * d);
    return f;
}

/* A peak round: at least this many GEMMs and this long (a tiny model's GEMM takes under a
 * millisecond on AMX: a few calls would time thread wake-ups and one scheduler tick). The peak is
 * the best of reps rounds after one warm-up round. */
#define PEAK_CALLS 4
#define PEAK_ROUND_S 0.15

/* GFLOP/s of sgemm on [1500 x k] · [n x k]^T, the encoder's shapes. */
static double sgemm_peak(int threads, int d, int reps, const char **how) {
    int m = 1500, n = 4 * d, k = d;
    float *a = asr_malloc_aligned((size_t)m * k * 4), *w = asr_malloc_aligned((size_t)n * k * 4);
    float *c = asr_malloc_aligned((size_t)m * n * 4);
    if (!a || !w || !c) {
        asr_free_aligned(a), asr_free_aligned(w), asr_free_aligned(c);
        return 0;
    }
    for (size_t i = 0; i < (size_t)m * k; i++)
        a[i] = (float)(i % 17) * 0.01f;
    for (size_t i = 0; i < (size_t)n * k; i++)
        w[i] = (float)(i % 13) * 0.01f;
    /* the better of OpenBLAS's own threads and rows split over our pool (how the encoder runs) */
    asr_pool_t *pool = asr_pool_create(threads);
    double best = 0;
    for (int mode = 0; mode < 2; mode++) {
        asr_nn_blas_threads(mode == 0 ? threads : 1);
        for (int r = 0; r < reps + 1; r++) {
            double t0 = asr_now_s(), dt;
            int calls = 0;
            do { /* a round: at least PEAK_CALLS calls and PEAK_ROUND_S seconds */
                if (mode == 0)
                    asr_nn_gemm_nt(a, k, w, k, c, n, m, n, k, 1.0f);
                else
                    asr_nn_gemm_nt_mt(pool, a, k, w, k, c, n, m, n, k, 1.0f);
                dt = asr_now_s() - t0;
            } while (++calls < PEAK_CALLS || dt < PEAK_ROUND_S);
            double g = calls * 2.0 * m * n * k / dt / 1e9;
            if (r > 0 && g > best) {
                best = g;
                *how = mode == 0 ? "OpenBLAS cblas_sgemm, its threads"
                                 : "OpenBLAS cblas_sgemm, rows over asrd's pool";
            }
        }
    }
    asr_nn_blas_threads(1);
    asr_pool_destroy(pool);
    asr_free_aligned(a), asr_free_aligned(w), asr_free_aligned(c);
    return best;
}

/* GOP/s of oneDNN's matmul of the given type (nn.h's ASR_NN_DNNL_*) on the encoder's widest shape,
 * [1500 x d] · [4d x d]^T, run as the encoder runs it (asr_nn_dnnl_run over asrd's pool: A
 * converted from float32 per call, weights packed once): 0 when oneDNN refuses. *kernel: the
 * implementation it chose. */
static double dnnl_peak(int type, int threads, int d, int reps, char *kernel, size_t kernel_len) {
    int m = 1500, n = 4 * d, k = d;
    double best = 0;
    float *a = asr_malloc_aligned((size_t)m * k * 4), *w = asr_malloc_aligned((size_t)n * k * 4);
    float *c = asr_malloc_aligned((size_t)m * n * 4);
    asr_nn_dnnl_t *g = NULL;
    void *scratch = NULL;
    asr_pool_t *pool = asr_pool_create(threads);
    if (!a || !w || !c)
        goto done;
    for (size_t i = 0; i < (size_t)m * k; i++)
        a[i] = (float)(i % 17) * 0.01f - 0.08f;
    for (size_t i = 0; i < (size_t)n * k; i++)
        w[i] = (float)(i % 13) * 0.01f - 0.06f;
    if (asr_nn_dnnl_pack(type, w, NULL, m, n, k, threads, &g) != ASR_OK)
        goto done;
    snprintf(kernel, kernel_len, "%s", asr_nn_dnnl_impl(g));
    scratch = asr_malloc_aligned(asr_nn_dnnl_scratch_bytes(g) + 64);
    if (!scratch)
        goto done;
    for (int r = 0; r < reps + 1; r++) {
        double t0 = asr_now_s(), dt;
        int calls = 0;
        do {
            if (asr_nn_dnnl_run(pool, g, a, k, c, n, scratch) != ASR_OK)
                goto done;
            dt = asr_now_s() - t0;
        } while (++calls < PEAK_CALLS || dt < PEAK_ROUND_S);
        double gf = calls * 2.0 * m * n * k / dt / 1e9;
        if (r > 0 && gf > best) /* the first round creates oneDNN's threads: a warm-up */
            best = gf;
    }
done:
    asr_pool_destroy(pool);
    asr_nn_dnnl_destroy(g);
    asr_free_aligned(scratch);
    asr_free_aligned(a), asr_free_aligned(w), asr_free_aligned(c);
    return best;
}

int asr_cli_bench(int argc, char **argv) {
    static const struct option opts[] = {{"model", required_argument, 0, 'm'},
                                         {"threads", required_argument, 0, 't'},
                                         {"beam-size", required_argument, 0, 'b'},
                                         {"repeat", required_argument, 0, 'r'},
                                         {"json", no_argument, 0, 'j'},
                                         {"compute-type", required_argument, 0, 'c'},
                                         {"streams", required_argument, 0, 'S'},
                                         {"tokens", required_argument, 0, 'T'},
                                         {"windows", required_argument, 0, 'W'},
                                         {"warmup", required_argument, 0, 'U'},
                                         {"device", required_argument, 0, 'D'},
                                         {"max-batch", required_argument, 0, 'M'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *model = "tiny.en", *ct = NULL, *device = NULL;
    int threads = 0, beam = 0, reps = 5, json = 0, c;
    int tokens = 100, windows = 4, warmup = 1, max_batch = 0, bad = 0;
    int stream_list[16], n_streams = 0, beam_list[8], n_beams = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:t:b:r:jc:h", opts, NULL)) != -1) {
        switch (c) {
        case 'S':
            bad |= list_arg(optarg, 1, 1024, "streams", stream_list, 16, &n_streams);
            break;
        case 'T':
            bad |= int_arg(optarg, 1, 440, "tokens", &tokens);
            break;
        case 'W':
            bad |= int_arg(optarg, 1, 100000, "windows", &windows);
            break;
        case 'U':
            bad |= int_arg(optarg, 0, 100, "warmup", &warmup);
            break;
        case 'M':
            bad |= int_arg(optarg, 1, 1024, "max-batch", &max_batch);
            break;
        case 'D':
            device = optarg;
            break;
        case 'c':
            ct = optarg;
            break;
        case 'm':
            model = optarg;
            break;
        case 't':
            threads = atoi(optarg);
            break;
        case 'b':
            bad |= list_arg(optarg, 1, 8, "beam-size", beam_list, 8, &n_beams);
            beam = n_beams ? beam_list[0] : 0;
            break;
        case 'r':
            reps = atoi(optarg);
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
    if (bad)
        return 2;
    if (!beam) {
        beam = n_streams ? 1 : 5;
        beam_list[n_beams++] = beam;
    }
    if (!n_streams && n_beams > 1) {
        fprintf(stderr, "asrd: bench: a list of beam sizes needs --streams\n");
        return 2;
    }
    if (threads < 0 || threads > 256 || beam < 1 || beam > 8 || reps < 1 || reps > 100 ||
        argc - optind > 1) {
        fputs(USAGE, stderr);
        return 2;
    }
    const char *file = optind < argc ? argv[optind] : NULL;
    if (!device && n_streams)
        device = asr__cli_device_env();
    asr_cli_device_t dev;
    /* the CPU breakdown below is a CPU measurement: auto means the CPU there */
    int drc = asr__cli_device_resolve(device      ? device
                                      : n_streams ? "auto"
                                                  : "cpu",
                                      "--device", &dev);
    if (drc)
        return drc;
    if (!n_streams && !asr__cli_device_is_cpu(&dev)) {
        fprintf(stderr,
                "asrd: bench: --device %s needs --streams N (the per-kernel breakdown "
                "measures the CPU)\n",
                dev.asked);
        return 2;
    }
    char *dir = asr_cli_model_dir(model);
    if (n_streams) {
        asr_cli_bench_streams_t so = {.model = model,
                                      .dir = dir,
                                      .compute_type = ct ? ct : "auto",
                                      .dev = &dev,
                                      .threads = threads,
                                      .max_batch = max_batch,
                                      .stream_list = stream_list,
                                      .n_streams = n_streams,
                                      .beam_list = beam_list,
                                      .n_beams = n_beams,
                                      .tokens = tokens,
                                      .windows = windows,
                                      .warmup = warmup,
                                      .audio = file,
                                      .json = json};
        int src = asr__cli_bench_streams(&so);
        free(dir);
        return src;
    }
    asr_model_params_t mp = asr_model_default_params();
    mp.n_threads = threads;
    mp.compute_type = ct ? ct : "float32";
    mp.device = "cpu";
    asr_model_t *m = NULL;
    asr_stream_t *s = NULL;
    char err[512] = "";
    int rc = 1;
    double t_load = asr_now_s();
    if (asr_model_load(dir, &mp, &m, err, sizeof err) != ASR_OK) {
        fprintf(stderr, "asrd: bench: %s\n", err);
        goto done;
    }
    t_load = asr_now_s() - t_load;
    if (asr_stream_create_slot(m, beam, &s) != ASR_OK) {
        fprintf(stderr, "asrd: bench: out of memory creating a slot\n");
        goto done;
    }
    const asr_model_info_t *in = asr_model_info(m);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int nt = threads > 0 ? threads : (int)(cores > 0 ? cores : 1);
    const char *enc_kernel = NULL, *sgemm_how = "OpenBLAS cblas_sgemm";
    double sgemm = sgemm_peak(nt, in->d_model, reps, &sgemm_how), peak = sgemm;
    char peak_kernel[64] = "", peak_path[48] = "float32 sgemm";
    int gemm_type = asr_model_encoder_gemm(m, &enc_kernel);
    if (gemm_type >= 0) {
        peak = dnnl_peak(gemm_type, nt, in->d_model, reps, peak_kernel, sizeof peak_kernel);
        snprintf(peak_path, sizeof peak_path, "oneDNN %s",
                 gemm_type == ASR_NN_DNNL_BF16 ? "bfloat16" : "int8");
        if (peak <= 0) {
            fprintf(stderr, "asrd: bench: oneDNN refused the %s peak GEMM\n", peak_path);
            goto done;
        }
    } else {
        snprintf(peak_kernel, sizeof peak_kernel, "%s", sgemm_how);
    }
    float *mel = asr_xcalloc((size_t)in->n_mels * 3000, sizeof(float));
    for (size_t i = 0; i < (size_t)in->n_mels * 3000; i++)
        mel[i] = (float)((i * 2654435761u) % 1000) / 1000.0f - 0.5f;
    double enc[100], enc_cpu[100], dec1[100], decn[100];
    const float *out;
    asr_stream_encode(s, mel, &out); /* warm-up */
    for (int r = 0; r < reps; r++) {
        double t0 = asr_now_s(), c0 = cpu_s();
        asr_stream_encode(s, mel, &out);
        enc[r] = asr_now_s() - t0;
        enc_cpu[r] = cpu_s() - c0;
        asr_stream_bench_decoder(s, 1, 64, &dec1[r]);
        asr_stream_bench_decoder(s, beam, 64, &decn[r]);
    }
    free(mel);
    double enc_cpu_s = median(enc_cpu, reps);
    double enc_s = median(enc, reps), d1 = median(dec1, reps), dn = median(decn, reps);
    double gflop = encoder_flop(in) / 1e9, gfs = gflop / enc_s;
    double rtf = -1, audio_s = 0, wall = 0;
    if (file) {
        asr_audio_file_source_t fs;
        if (asr_audio_file_source_open(&fs, file, err, sizeof err) != ASR_OK) {
            fprintf(stderr, "asrd: bench: %s\n", err);
            goto done;
        }
        asr_pcm_source_t src = {asr_audio_file_source_read, asr_audio_file_source_rewind, &fs};
        asr_transcribe_params_t tp = asr_transcribe_default_params();
        tp.beam_size = beam;
        tp.n_threads = threads;
        double t0 = asr_now_s();
        asr_err_t e = asr_stream_transcribe_source(s, &src, &tp);
        wall = asr_now_s() - t0;
        asr_audio_file_source_close(&fs);
        if (e != ASR_OK) {
            fprintf(stderr, "asrd: bench: %s\n", asr_stream_errmsg(s));
            goto done;
        }
        audio_s = asr_stream_duration(s);
        rtf = wall / audio_s;
    }
    if (json) {
        char feat[320];
        printf(
            "{\"model\":\"%s\",\"compute_type\":\"%s\",\"threads\":%d,\"load_s\":%.3f,\"sgemm_"
            "peak_gflops\":%.1f,\"peak_gflops\":%.1f,\"peak_path\":\"%s\",\"peak_kernel\":\"%s\","
            "\"peak_shape\":[1500,%d,%d],"
            "\"encoder_ms\":%.1f,\"encoder_gflop\":%.2f,\"encoder_gflops\":%.1f,"
            "\"encoder_peak_fraction\":%.3f,\"encoder_sgemm_fraction\":%.3f,"
            "\"decoder_ms_per_step_1\":%.2f,\"decoder_ms_per_step_n\":%.2f,\"n_seq\":%d",
            model, asr_model_compute_type(m), nt, t_load, sgemm, peak, peak_path, peak_kernel,
            4 * in->d_model, in->d_model, enc_s * 1e3, gflop, gfs, gfs / peak, gfs / sgemm, d1, dn,
            beam);
        printf(",\"isa\":\"%s\",\"isa_why\":\"%s\",\"isa_features\":\"%s\",\"cpu\":\"%s\","
               "\"device_line\":\"%s\",\"encoder_kernel\":\"%s\",\"encoder_cpu_ms\":%.1f",
               asr_isa_level_name(asr_isa()->level), asr_isa()->why,
               asr_isa_features(feat, sizeof feat), asr_isa()->cpu, asr_model_device_line(m),
               enc_kernel ? enc_kernel : peak_kernel, enc_cpu_s * 1e3);
        if (file)
            printf(",\"file\":\"%s\",\"audio_s\":%.2f,\"wall_s\":%.3f,\"rtf\":%.4f", file, audio_s,
                   wall, rtf);
        printf("}\n");
    } else {
        printf("model %s, compute type %s, %d threads (load %.2f s)\n", model,
               asr_model_compute_type(m), nt, t_load);
        asr__cli_print_isa("  ");
        printf("  device: %s\n", asr_model_device_line(m));
        if (gemm_type >= 0)
            printf("  encoder GEMM path   %s (encoder's kernel %s; peak GEMM's %s)\n", peak_path,
                   enc_kernel ? enc_kernel : "?", peak_kernel);
        else
            printf("  encoder GEMM path   %s (%s)\n", peak_path, peak_kernel);
        printf("  unit peak           %8.1f G%s/s (measured: 1500x%dx%d through that path, best "
               "of %d)\n",
               peak, gemm_type == ASR_NN_DNNL_I8 ? "OP" : "FLOP", 4 * in->d_model, in->d_model,
               reps);
        if (gemm_type >= 0)
            printf("  sgemm peak          %8.1f GFLOP/s (float32, same shape)\n", sgemm);
        printf("  encoder 30-s window %8.1f ms  %.1f GFLOP  %.1f GFLOP/s = %.0f%% of the unit's "
               "peak\n",
               enc_s * 1e3, gflop, gfs, 100 * gfs / peak);
        printf("  encoder CPU time    %8.1f ms (all threads)\n", enc_cpu_s * 1e3);
        printf("  decoder step        %8.2f ms (1 sequence), %.2f ms (%d sequences)\n", d1, dn,
               beam);
        if (file)
            printf(
                "  transcription       %8.2f s for %.1f s of audio: RTF %.4f (%.1fx real time)\n",
                wall, audio_s, rtf, 1 / rtf);
    }
    rc = 0;
done:
    asr_stream_destroy(s);
    asr_model_destroy(m);
    free(dir);
    return rc;
}
