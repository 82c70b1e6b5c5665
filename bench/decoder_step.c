/* bench/decoder_step: the decoder step's linear layers of Whisper large-v3-turbo and large-v3
 * (d = 1280, ff = 5120, 4 or 32 decoder layers, the 51866-token output projection) on random
 * weights, for m rows at once (1: greedy, 5: beam, 8: the kernels' block), each weight type and
 * kernel set (AVX2, AVX-512; bfloat16 also through VDPBF16PS), over a thread pool. Per layer:
 * self-attention q, k, v, out (d×d), cross-attention q, out (d×d; its K/V are computed once per
 * window), fc1 (ff×d), fc2 (d×ff). A step reads every weight once: GB/s = weight bytes / time.
 * The layers are split over the pool by output columns in blocks of 64, as asr_nn_linear_w does.
 *
 *   build-X/decoder_step [--threads 2] [--model turbo,large-v3] [--m 1,5,8]
 *                        [--types f32,f16,bf16,i8] [--kernels avx2,avx512,bf16dp,avxvnni,asrd]
 *                        [--reps 5]
 *
 * avxvnni: int8 through AVX-VNNI on ymm. asrd: asr_nn_linear_w itself (the kernels asr_isa()'s
 * level picks; ASRD_ISA=avx2 forces the AVX2 level). Prints one line per case:
 * model, type, kernel, m, ms per step and GB/s (median of reps, then the best rep: on shared
 * cores the best shows the kernel, the median the machine). A kernel the CPU lacks is skipped
 * with a note. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nn/isa.h"
#include "nn/kern.h"

typedef void (*rows_fn)(const float *a, int lda, const asr_qact_t *qa, const asr_wmat_t *w,
                        const float *bias, float *c, int ldc, int m, int j0, int j1, int k);

static void rows_i8_vnni(const float *a, int lda, const asr_qact_t *qa, const asr_wmat_t *w,
                         const float *bias, float *c, int ldc, int m, int j0, int j1, int k) {
    (void)a, (void)lda;
    asr__k_linear_rows_i8_avx512vnni(qa, w, bias, c, ldc, m, j0, j1, k);
}

static void rows_i8_avxvnni(const float *a, int lda, const asr_qact_t *qa, const asr_wmat_t *w,
                            const float *bias, float *c, int ldc, int m, int j0, int j1, int k) {
    (void)a, (void)lda;
    asr__k_linear_rows_i8_avxvnni(qa, w, bias, c, ldc, m, j0, j1, k);
}

typedef struct {
    rows_fn fn;
    const float *a;
    const asr_qact_t *qa;
    const asr_wmat_t *w;
    const float *bias;
    float *c;
    int m, n, k;
} job_t;

static void task(void *ctx, int t, int nt) {
    job_t *j = ctx;
    int j0 = (int)((long)j->n * t / nt), j1 = (int)((long)j->n * (t + 1) / nt);
    for (int c0 = j0; c0 < j1; c0 += 64)
        j->fn(j->a, j->k, j->qa, j->w, j->bias, j->c, j->n, j->m, c0, c0 + 64 < j1 ? c0 + 64 : j1,
              j->k);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmpd(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

static int has(const char *list, const char *item) {
    size_t n = strlen(item);
    for (const char *p = list; (p = strstr(p, item)); p += n)
        if ((p == list || p[-1] == ',') && (p[n] == ',' || !p[n]))
            return 1;
    return 0;
}

enum { D = 1280, FF = 5120, VOCAB = 51866 };

int main(int argc, char **argv) {
    int threads = 2, reps = 5;
    const char *models = "turbo,large-v3", *ms = "1,5,8", *types = "f32,f16,bf16,i8";
    const char *kernels = "avx2,avx512,bf16dp,avxvnni";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--threads"))
            threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps"))
            reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--model"))
            models = argv[i + 1];
        else if (!strcmp(argv[i], "--m"))
            ms = argv[i + 1];
        else if (!strcmp(argv[i], "--types"))
            types = argv[i + 1];
        else if (!strcmp(argv[i], "--kernels"))
            kernels = argv[i + 1];
        else {
            fprintf(stderr, "unknown option %s\n", argv[i]);
            return 2;
        }
    }
    const asr_isa_t *isa = asr_isa();
    char feat[256];
    printf("# cpu: %s; features: %s; asrd level: %s; threads %d; reps %d (median)\n", isa->cpu,
           asr_isa_features(feat, sizeof feat), asr_isa_level_name(isa->level), threads, reps);
    printf("%-9s %-5s %-7s %2s %10s %8s %10s %8s\n", "model", "type", "kernel", "m", "ms/step",
           "GB/s", "best ms", "best GB/s");
    asr_pool_t *pool = asr_pool_create(threads);
    const char *tnames[4] = {"f32", "f16", "bf16", "i8"};
    const size_t tsize[4] = {4, 2, 2, 1};
    /* shapes of one layer: out × in */
    const int shp[8][2] = {{D, D}, {D, D}, {D, D}, {D, D}, {D, D}, {D, D}, {FF, D}, {D, FF}};
    float *a = malloc(sizeof(float) * 8 * FF), *c = malloc(sizeof(float) * 8 * VOCAB);
    float *bias = calloc(VOCAB, sizeof(float));
    for (int i = 0; i < 8 * FF; i++)
        a[i] = (float)((i * 7919) % 2001 - 1000) / 1000.0f;
    static union {
        float f[4096];
        uint16_t h[8192];
        int8_t q[16384];
    } pat[4];
    for (int i = 0; i < 16384; i++) {
        float v = (float)((i * 7919) % 2001 - 1000) / 1000.0f;
        if (i < 4096)
            pat[0].f[i] = v;
        if (i < 8192)
            pat[1].h[i] = asr_nn_f32_to_f16(v), pat[2].h[i] = asr_nn_f32_to_bf16(v);
        pat[3].q[i] = (int8_t)(v * 127.0f);
    }
    int8_t q8[8 * FF];
    uint8_t qabs[8 * FF];
    float qs[8];
    for (int mi = 0; mi < 2; mi++) {
        const char *model = mi ? "large-v3" : "turbo";
        if (!has(models, model))
            continue;
        const int layers = mi ? 32 : 4, nmat = layers * 8 + 1;
        for (int ty = 0; ty < 4; ty++) {
            if (!has(types, tnames[ty]))
                continue;
            /* every matrix its own memory: a step streams them all */
            asr_wmat_t *w = calloc((size_t)nmat, sizeof *w);
            size_t bytes = 0;
            int ok = 1;
            for (int l = 0; l < nmat && ok; l++) {
                int n = l == nmat - 1 ? VOCAB : shp[l % 8][0],
                    k = l == nmat - 1 ? D : shp[l % 8][1];
                size_t sz = (size_t)n * k * tsize[ty];
                void *data = malloc(sz);
                float *sc = ty == 3 ? malloc(sizeof(float) * n) : NULL;
                if (!data) {
                    ok = 0;
                    break;
                }
                for (size_t b = 0; b < sz; b += sizeof pat[0]) /* values in [-1, 1] */
                    memcpy((char *)data + b, &pat[ty],
                           sz - b < sizeof pat[ty] ? sz - b : sizeof pat[ty]);
                if (sc)
                    for (int j = 0; j < n; j++)
                        sc[j] = 0.01f;
                w[l] = (asr_wmat_t){(asr_wtype_t)ty, data, sc, k};
                bytes += sz;
            }
            if (!ok) {
                printf("%-9s %-5s: out of memory\n", model, tnames[ty]);
                continue;
            }
            const char *knames[5] = {"avx2", "avx512", "bf16dp", "asrd", "avxvnni"};
            for (int ki = 0; ki < 5; ki++) {
                if (!has(kernels, knames[ki]))
                    continue;
                rows_fn fn = NULL;
                const char *why = NULL;
                int x512 = asr_isa()->avx512f && asr_isa()->avx512bw && asr_isa()->avx512vl &&
                           asr_isa()->avx512dq;
                if (ki == 0)
                    fn = isa->avx2 && isa->fma ? asr__k_linear_rows_avx2 : NULL, why = "avx2";
                else if (ki == 1)
                    fn = !x512              ? NULL
                         : ty != 3          ? asr__k_linear_rows_avx512
                         : isa->avx512_vnni ? rows_i8_vnni
                                            : NULL,
                    why = ty == 3 ? "avx512_vnni" : "avx512";
                else if (ki == 4) {
                    if (ty != 3)
                        continue;
                    fn = isa->avx_vnni ? rows_i8_avxvnni : NULL, why = "avx_vnni";
                } else if (ki == 2) {
                    if (ty != 2)
                        continue;
                    fn = x512 && isa->avx512_bf16 ? asr__k_linear_rows_bf16dp_avx512 : NULL;
                    why = "avx512_bf16";
                }
                if (ki != 3 && !fn) {
                    printf("%-9s %-5s %-7s: the CPU lacks %s\n", model, tnames[ty], knames[ki],
                           why);
                    continue;
                }
                for (const char *mp = ms; *mp;) {
                    int m = atoi(mp);
                    double *t = malloc(sizeof(double) * (size_t)(reps + 1));
                    for (int r = 0; r <= reps; r++) { /* the first: warm-up */
                        double t0 = now();
                        for (int l = 0; l < nmat; l++) {
                            int n = l == nmat - 1 ? VOCAB : shp[l % 8][0];
                            int k = w[l].ld;
                            if (ki == 3) {
                                asr_nn_linear_w(pool, a, k, &w[l], bias, c, n, m, n, k);
                                continue;
                            }
                            asr_qact_t qa = {q8, qabs, qs, k};
                            if (ty == 3)
                                asr__nn_quantize_rows(a, k, m, k, &qa);
                            job_t j = {fn, a, &qa, &w[l], bias, c, m, n, k};
                            asr_pool_run(pool, threads, task, &j);
                        }
                        t[r] = now() - t0;
                    }
                    qsort(t + 1, (size_t)reps, sizeof(double), cmpd);
                    double med = t[1 + reps / 2];
                    printf("%-9s %-5s %-7s %2d %10.2f %8.2f %10.2f %8.2f\n", model, tnames[ty],
                           knames[ki], m, med * 1e3, (double)bytes / med * 1e-9, t[1] * 1e3,
                           (double)bytes / t[1] * 1e-9);
                    fflush(stdout);
                    free(t);
                    mp = strchr(mp, ',');
                    if (!mp)
                        break;
                    mp++;
                }
            }
            for (int l = 0; l < nmat; l++)
                free((void *)w[l].data), free((void *)w[l].scale);
            free(w);
        }
    }
    asr_pool_destroy(pool);
    free(a), free(c), free(bias);
    return 0;
}
