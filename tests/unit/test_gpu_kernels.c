/* GPU kernel tests: every operation of dev.h on CUDA device 0 against the host reference device
 * (host_dev.c, itself checked against naive loops by test_gpu_host) on the same random inputs,
 * for every activation type (float32, float16, bfloat16) and weight type (float32, float16,
 * bfloat16, int8), on shapes with tails.
 *
 * Inputs are generated in float32 and rounded to the activation type; the GPU gets the rounded
 * values in that type, the host computes on the same rounded values in float32; the GPU's output
 * is converted back to float32 on the host (nn conversions) and compared. One line per check:
 *   PASS|FAIL  op  type  shape  max_abs  max_rel  tol
 * with max_rel = max_abs / scale, scale = max |reference| over the output (errors relative to the
 * output's magnitude: elements near zero would make per-element ratios meaningless).
 *
 * Tolerances (relative to the output's scale):
 *   one rounding (add, add_pos, im2col, embed, kv_append, convert): float32 1e-6 (the same float32
 *     sum), float16 1e-3 (2 units of 2^-11, the store's rounding), bfloat16 8e-3 (2 units of 2^-9);
 *   computed (linear, layer norm, attention): float32 1e-4 (float32 throughout, summation order
 *     and the host's vectorised exp/erf differ; no TF32), float16 2e-3 (the output's own rounding
 *     of 2^-11 plus intermediate roundings: the GEMM's result before the bias/GELU epilogue,
 *     attention's probabilities before P·V, ~4 units in all), bfloat16 2e-2 (the same with 2^-9:
 *     ~5 units); int8 weights dequantized to float16 on the GPU (a rounding of 2^-11 per weight,
 *     averaged over k) fit float16's.
 *   attn_cross_scores (float32 out, no output rounding): float32 1e-5, float16/bfloat16 as
 *     computed.
 *
 * Without a usable CUDA device it prints why and exits 76 (ctest: Not Run, CI included), except
 * that under CI=true a build without the CUDA backend where nvcc is on PATH is a failure (exit 1):
 * CI must compile the backend. A build configured with ASR_CUDA=off on purpose (the sanitizer and
 * fuzz builds) is exempt: the option comes from $ASR_CUDA_OPTION, else from CMakeCache.txt in the
 * working directory (ctest runs tests in the build directory). Exit 1 when any check fails. */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gpu/dev.h"
#include "nn/nn.h"

static asr_dev_t *G;  /* CUDA device 0 */
static asr_dev_t *Hd; /* host reference */
static int n_pass, n_fail;
static unsigned g_seed = 12345;

static const asr_dtype_t TYPES[3] = {ASR_DT_F32, ASR_DT_F16, ASR_DT_BF16};
/* ASRD_GPU_TEST_ON_HOST=1: a dry run of this test's own code (shapes, rows, buffers) with the
 * host device standing in for the GPU, float32 only; never a GPU result (ctest does not set it) */
static bool g_dry;
static int n_types = 3;
static double tol_elem(asr_dtype_t t) {
    return t == ASR_DT_F32 ? 1e-6 : t == ASR_DT_F16 ? 1e-3 : 8e-3;
}
static double tol_comp(asr_dtype_t t) {
    return t == ASR_DT_F32 ? 1e-4 : t == ASR_DT_F16 ? 2e-3 : 2e-2;
}

/* ---- random data and types ---- */
static float frand(void) {
    g_seed = g_seed * 1103515245u + 12345u;
    return ((float)((g_seed >> 8) & 0xffff) / 32768.0f) - 1.0f;
}

static float *frand_n(size_t n, float mul) {
    float *p = malloc(n * sizeof(float) + 4);
    for (size_t i = 0; i < n; i++)
        p[i] = frand() * mul;
    return p;
}

static uint16_t bf16_round(float f) {
    uint32_t b;
    memcpy(&b, &f, sizeof b);
    if ((b & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((b >> 16) | 0x40);
    return (uint16_t)((b + 0x7fffu + ((b >> 16) & 1u)) >> 16);
}

/* float32 values as type t (malloc'd) */
static void *typed(asr_dtype_t t, const float *x, size_t n) {
    void *p = malloc(n * asr_dtype_size(t) + 4);
    if (t == ASR_DT_F32)
        memcpy(p, x, n * sizeof(float));
    else if (t == ASR_DT_F16)
        asr_nn_f2h_n(x, p, n);
    else
        for (size_t i = 0; i < n; i++)
            ((uint16_t *)p)[i] = bf16_round(x[i]);
    return p;
}

static void untype(asr_dtype_t t, const void *p, float *x, size_t n) {
    if (t == ASR_DT_F32)
        memcpy(x, p, n * sizeof(float));
    else if (t == ASR_DT_F16)
        asr_nn_h2f_n(p, x, n);
    else
        for (size_t i = 0; i < n; i++)
            x[i] = asr_nn_bf16_to_f32(((const uint16_t *)p)[i]);
}

/* x = the float32 value of x rounded to t */
static void round_to(asr_dtype_t t, float *x, size_t n) {
    void *p = typed(t, x, n);
    untype(t, p, x, n);
    free(p);
}

/* random values already representable in t */
static float *rand_t(asr_dtype_t t, size_t n, float mul) {
    float *x = frand_n(n, mul);
    round_to(t, x, n);
    return x;
}

/* ---- the GPU ---- */
static void *gmem(size_t bytes) {
    void *p = asr_dev_malloc(G, bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "test_gpu_kernels: device allocation of %zu bytes failed\n", bytes);
        exit(1);
    }
    return p;
}

/* a device copy of float32 values as type t */
static void *gput(asr_dtype_t t, const float *x, size_t n) {
    void *h = typed(t, x, n), *g = gmem(n * asr_dtype_size(t));
    asr_dev_h2d(G, g, h, n * asr_dtype_size(t));
    asr_dev_sync(G, NULL, 0);
    free(h);
    return g;
}

static void *gput_raw(const void *h, size_t bytes) {
    void *g = gmem(bytes);
    asr_dev_h2d(G, g, h, bytes);
    asr_dev_sync(G, NULL, 0);
    return g;
}

/* device values of type t to float32 */
static void gget(asr_dtype_t t, const void *g, float *x, size_t n) {
    void *h = malloc(n * asr_dtype_size(t) + 4);
    asr_dev_d2h(G, h, g, n * asr_dtype_size(t));
    asr_dev_sync(G, NULL, 0);
    untype(t, h, x, n);
    free(h);
}

static void reopen_gpu(void) {
    asr_dev_close(G);
    char err[256] = "";
    if (asr_dev_open(g_dry ? ASR_DEV_HOST : ASR_DEV_CUDA, 0, &G, err, sizeof err) != ASR_OK) {
        fprintf(stderr, "test_gpu_kernels: reopening cuda:0 failed: %s\n", err);
        exit(1);
    }
}

/* The sticky errors after a check: a failure on either device is a FAIL (the GPU is reopened so
 * that the next checks still run). Returns whether both are clean. */
static bool devices_ok(const char *op, asr_dtype_t t, const char *shape) {
    char err[256] = "";
    bool ok = true;
    if (asr_dev_sync(G, err, sizeof err) != ASR_OK) {
        printf("FAIL %-18s %-8s %-44s cuda error: %s\n", op, asr_dtype_name(t), shape, err);
        n_fail++;
        reopen_gpu();
        ok = false;
    }
    if (asr_dev_sync(Hd, err, sizeof err) != ASR_OK) {
        printf("FAIL %-18s %-8s %-44s host error: %s\n", op, asr_dtype_name(t), shape, err);
        n_fail++;
        asr_dev_close(Hd);
        asr_dev_open(ASR_DEV_HOST, 0, &Hd, err, sizeof err);
        ok = false;
    }
    return ok;
}

/* Compares n values (rows of `cols` at stride ld: only the first cols of each row) and prints
 * the line. */
static void report(const char *op, asr_dtype_t t, const char *shape, const float *ref,
                   const float *got, size_t rows, size_t cols, size_t ld, double tol) {
    double scale = 0, max_abs = 0;
    size_t bad = 0, worst = 0;
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < cols; c++)
            scale = fmax(scale, fabs(ref[r * ld + c]));
    double s = scale > 0 ? scale : 1.0;
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < cols; c++) {
            size_t i = r * ld + c;
            double e = fabs((double)ref[i] - got[i]);
            if (!(e == e) || isinf(got[i]))
                e = INFINITY; /* NaN or inf from the GPU */
            if (e > max_abs || (e != e))
                max_abs = e, worst = i;
            if (e > tol * s)
                bad++;
        }
    bool pass = bad == 0;
    printf("%s %-18s %-8s %-44s max_abs %.2e max_rel %.2e tol %.0e (scale %.3g)",
           pass ? "PASS" : "FAIL", op, asr_dtype_name(t), shape, max_abs, max_abs / s, tol, scale);
    if (!pass)
        printf(" %zu bad, worst [%zu][%zu] got %.6g want %.6g", bad, worst / ld, worst % ld,
               got[worst], ref[worst]);
    printf("\n");
    fflush(stdout);
    pass ? n_pass++ : n_fail++;
}

/* Exact comparison (copies, conversions): a count of differing elements. */
static void report_exact(const char *op, asr_dtype_t t, const char *shape, size_t n_bad, size_t n) {
    printf("%s %-18s %-8s %-44s %zu of %zu elements differ (exact)\n", n_bad ? "FAIL" : "PASS", op,
           asr_dtype_name(t), shape, n_bad, n);
    n_bad ? n_fail++ : n_pass++;
}

/* ---- linear ---- */
typedef struct {
    asr_dev_w_t wh, wg; /* host and device views */
    void *data, *gdata;
    float *scale, *gscale;
} tw_t;

static tw_t make_w(asr_dtype_t type, int n, int ld) {
    tw_t t = {0};
    size_t cnt = (size_t)n * ld;
    float *v = frand_n(cnt, 1.0f);
    if (type == ASR_DT_I8) {
        t.data = malloc(cnt);
        t.scale = malloc(sizeof(float) * n);
        for (int j = 0; j < n; j++)
            t.scale[j] = (0.5f + 0.5f * frand()) / 127.0f;
        for (size_t i = 0; i < cnt; i++)
            ((int8_t *)t.data)[i] = (int8_t)lrintf(v[i] * 127.0f);
        t.gscale = gput_raw(t.scale, sizeof(float) * n);
    } else {
        t.data = typed(type, v, cnt);
    }
    t.gdata = gput_raw(t.data, cnt * asr_dtype_size(type));
    t.wh = (asr_dev_w_t){type, t.data, t.scale, ld};
    t.wg = (asr_dev_w_t){type, t.gdata, t.gscale, ld};
    free(v);
    return t;
}

static void free_w(tw_t *t) {
    free(t->data), free(t->scale);
    asr_dev_free(G, t->gdata), asr_dev_free(G, t->gscale);
}

static void check_linear(asr_dtype_t at, asr_dtype_t wt, asr_dtype_t ct, int m, int n, int k,
                         int flags, bool with_bias) {
    char shape[96], op[32];
    snprintf(op, sizeof op, "linear w=%s", asr_dtype_name(wt));
    snprintf(shape, sizeof shape, "m=%d n=%d k=%d out=%s%s%s%s", m, n, k, asr_dtype_name(ct),
             with_bias ? " bias" : "", flags & ASR_LIN_GELU ? " gelu" : "",
             flags & ASR_LIN_ACCUM ? " accum" : "");
    /* n and ldc multiples of 8 (n = 384, 1536) take the 16-byte epilogue (bias_act), k and ld
     * multiples of 16 the 16-byte int8 dequantization, as the engine's dense layers do; the
     * other shapes the element-wise paths */
    int lda = k + 8, ldc = n % 8 == 0 ? n + 8 : n + 3;
    int ldw = k % 16 == 0 ? k + 16 : k + (k % 2 ? 1 : 8);
    float *a = rand_t(at, (size_t)m * lda, 1.0f);
    float *c0 = rand_t(ct, (size_t)m * ldc, 1.0f), *c = malloc(sizeof(float) * m * ldc);
    float *bias = with_bias ? frand_n((size_t)n, 1.0f) : NULL;
    memcpy(c, c0, sizeof(float) * m * ldc);
    tw_t w = make_w(wt, n, ldw);
    void *ga = gput(at, a, (size_t)m * lda), *gc = gput(ct, c0, (size_t)m * ldc);
    float *gbias = bias ? gput(ASR_DT_F32, bias, (size_t)n) : NULL;
    size_t scr = (size_t)n * k * 2;
    void *gscr = gmem(scr), *hscr = malloc(scr);
    asr_dev_set_scratch(G, gscr, scr);
    asr_dev_set_scratch(Hd, hscr, scr);
    asr_dev_linear(G, at, ga, lda, &w.wg, gbias, ct, gc, ldc, m, n, k, flags);
    asr_dev_linear(Hd, ASR_DT_F32, a, lda, &w.wh, bias, ASR_DT_F32, c, ldc, m, n, k, flags);
    if (devices_ok(op, at, shape)) {
        float *got = malloc(sizeof(float) * m * ldc);
        gget(ct, gc, got, (size_t)m * ldc);
        report(op, at, shape, c, got, (size_t)m, (size_t)n, (size_t)ldc, tol_comp(at));
        size_t pad_bad = 0; /* columns past n untouched */
        for (int i = 0; i < m; i++)
            for (int j = n; j < ldc; j++)
                pad_bad += memcmp(&got[(size_t)i * ldc + j], &c0[(size_t)i * ldc + j], 4) != 0;
        if (pad_bad)
            report_exact("linear padding", at, shape, pad_bad, (size_t)m * (ldc - n));
        free(got);
    }
    asr_dev_set_scratch(G, NULL, 0);
    asr_dev_set_scratch(Hd, NULL, 0);
    asr_dev_free(G, gscr), asr_dev_free(G, ga), asr_dev_free(G, gc), asr_dev_free(G, gbias);
    free(hscr), free(a), free(c0), free(c), free(bias);
    free_w(&w);
}

static void test_linear(void) {
    static const int shapes[][3] = {{1, 29, 53},     {3, 70, 37},    {17, 131, 67},
                                    {70, 45, 83},    {5, 5187, 384}, {1500, 384, 384},
                                    {37, 1536, 384}, {2, 384, 1536}};
    for (int ti = 0; ti < n_types; ti++) {
        asr_dtype_t at = TYPES[ti];
        /* the GPU's combinations: weights of the activations' type, or int8 with float16 */
        asr_dtype_t wts[2] = {at, ASR_DT_I8};
        int n_wt = at == ASR_DT_F16 ? 2 : 1;
        for (int wi = 0; wi < n_wt; wi++)
            for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
                const int *sh = shapes[s];
                for (int f = 0; f < 3; f++) {
                    int flags = f == 0 ? 0 : f == 1 ? ASR_LIN_GELU : ASR_LIN_ACCUM;
                    check_linear(at, wts[wi], at, sh[0], sh[1], sh[2], flags, (s + f) % 3 != 1);
                }
            }
        /* float32 output (logits) from 16-bit activations */
        if (at != ASR_DT_F32) {
            check_linear(at, at, ASR_DT_F32, 5, 5187, 384, 0, false);
            check_linear(at, at, ASR_DT_F32, 3, 70, 37, ASR_LIN_ACCUM, true);
            if (at == ASR_DT_F16)
                check_linear(at, ASR_DT_I8, ASR_DT_F32, 5, 5187, 384, 0, false);
        }
    }
}

/* ---- element-wise ---- */
static void test_layer_norm(asr_dtype_t t) {
    static const int shapes[][2] = {{1, 37}, {3, 384}, {70, 45}, {1500, 384}, {7, 1280}};
    for (int s = 0; s < 5; s++)
        for (int inplace = 0; inplace < 2; inplace++) {
            int rows = shapes[s][0], dim = shapes[s][1];
            size_t n = (size_t)rows * dim;
            char shape[64];
            snprintf(shape, sizeof shape, "rows=%d dim=%d%s", rows, dim,
                     inplace ? " in place" : "");
            float *x = frand_n(n, 3.0f), *g = frand_n((size_t)dim, 1.0f);
            float *b = frand_n((size_t)dim, 1.0f), *o = malloc(sizeof(float) * n);
            for (size_t i = 0; i < n; i++)
                x[i] += 0.5f;
            round_to(t, x, n);
            void *gx = gput(t, x, n), *go = inplace ? gx : gmem(n * asr_dtype_size(t));
            float *gg = gput(ASR_DT_F32, g, (size_t)dim), *gb = gput(ASR_DT_F32, b, (size_t)dim);
            asr_dev_layer_norm(G, t, gx, go, rows, dim, gg, gb, 1e-5f);
            asr_dev_layer_norm(Hd, ASR_DT_F32, x, o, rows, dim, g, b, 1e-5f);
            if (devices_ok("layer_norm", t, shape)) {
                float *got = malloc(sizeof(float) * n);
                gget(t, go, got, n);
                report("layer_norm", t, shape, o, got, 1, n, n, tol_comp(t));
                free(got);
            }
            if (!inplace)
                asr_dev_free(G, go);
            asr_dev_free(G, gx), asr_dev_free(G, gg), asr_dev_free(G, gb);
            free(x), free(g), free(b), free(o);
        }
}

static void test_add(asr_dtype_t t) {
    const size_t sizes[] = {1, 37, 100003, 98304}; /* the last: the 16-byte path */
    for (int s = 0; s < 4; s++) {
        size_t n = sizes[s];
        char shape[64];
        snprintf(shape, sizeof shape, "n=%zu", n);
        float *x = rand_t(t, n, 2.0f), *y = rand_t(t, n, 2.0f);
        void *gx = gput(t, x, n), *gy = gput(t, y, n);
        asr_dev_add(G, t, gx, gy, n);
        asr_dev_add(Hd, ASR_DT_F32, x, y, n);
        if (devices_ok("add", t, shape)) {
            float *got = malloc(sizeof(float) * n);
            gget(t, gx, got, n);
            report("add", t, shape, x, got, 1, n, n, tol_elem(t));
            free(got);
        }
        asr_dev_free(G, gx), asr_dev_free(G, gy);
        free(x), free(y);
    }
    static const int pos_shapes[][2] = {{1, 37}, {3, 1500 * 384 / 64}, {2, 1500 * 384}};
    for (int s = 0; s < 3; s++) {
        int B = pos_shapes[s][0];
        size_t n = (size_t)pos_shapes[s][1];
        char shape[64];
        snprintf(shape, sizeof shape, "B=%d n=%zu", B, n);
        float *x = rand_t(t, (size_t)B * n, 2.0f), *pos = frand_n(n, 1.0f);
        void *gx = gput(t, x, (size_t)B * n);
        float *gp = gput(ASR_DT_F32, pos, n);
        asr_dev_add_pos(G, t, gx, gp, B, n);
        asr_dev_add_pos(Hd, ASR_DT_F32, x, pos, B, n);
        if (devices_ok("add_pos", t, shape)) {
            float *got = malloc(sizeof(float) * B * n);
            gget(t, gx, got, (size_t)B * n);
            report("add_pos", t, shape, x, got, 1, (size_t)B * n, (size_t)B * n, tol_elem(t));
            free(got);
        }
        asr_dev_free(G, gx), asr_dev_free(G, gp);
        free(x), free(pos);
    }
}

/* Every pair of F32/F16/BF16 on the GPU against the host's conversion, bit for bit, on values
 * with ties, overflow, subnormals, signed zeros and infinities. */
static void test_convert(void) {
    const size_t n = 70001;
    float *x = frand_n(n, 300.0f);
    for (size_t i = 0; i < n; i += 7) /* small magnitudes: float16 subnormals */
        x[i] *= 1e-6f;
    uint32_t edge[] = {0x3f808000u, 0x3f818000u, 0x477ff000u, 0x477fefffu, 0x33800000u,
                       0x33000000u, 0x80000000u, 0x7f800000u, 0xff800000u, 0xc77fe000u,
                       0x387fc000u, 0x38800000u, 0x7f7fffffu, 0x00000001u};
    for (size_t i = 0; i < sizeof edge / sizeof edge[0]; i++)
        memcpy(&x[i * 3 + 1], &edge[i], 4);
    for (int si = 0; si < 3; si++)
        for (int di = 0; di < 3; di++) {
            asr_dtype_t st = TYPES[si], dt = TYPES[di];
            char shape[64];
            snprintf(shape, sizeof shape, "to %s n=%zu", asr_dtype_name(dt), n);
            void *src = typed(st, x, n);
            size_t db = n * asr_dtype_size(dt);
            void *hd = malloc(db), *gd = malloc(db);
            void *gs = gput_raw(src, n * asr_dtype_size(st)), *go = gmem(db);
            asr_dev_convert(G, st, gs, dt, go, n);
            asr_dev_convert(Hd, st, src, dt, hd, n);
            if (devices_ok("convert", st, shape)) {
                asr_dev_d2h(G, gd, go, db);
                asr_dev_sync(G, NULL, 0);
                size_t bad = 0, sz = asr_dtype_size(dt);
                for (size_t i = 0; i < n; i++)
                    bad += memcmp((char *)hd + i * sz, (char *)gd + i * sz, sz) != 0;
                report_exact("convert", st, shape, bad, n);
            }
            asr_dev_free(G, gs), asr_dev_free(G, go);
            free(src), free(hd), free(gd);
        }
    free(x);
}

static void test_im2col(asr_dtype_t t) {
    static const int mel_shapes[][3] = {{2, 80, 37}, {1, 128, 3000}, {3, 80, 1}};
    for (int s = 0; s < 3; s++) {
        int B = mel_shapes[s][0], nm = mel_shapes[s][1], T = mel_shapes[s][2];
        char shape[64];
        snprintf(shape, sizeof shape, "B=%d n_mels=%d T=%d", B, nm, T);
        size_t ni = (size_t)B * nm * T, no = (size_t)B * T * nm * 3;
        float *mel = frand_n(ni, 2.0f), *o = malloc(sizeof(float) * no);
        float *gm = gput(ASR_DT_F32, mel, ni);
        void *go = gmem(no * asr_dtype_size(t));
        asr_dev_im2col_mel(G, t, gm, B, nm, T, go);
        asr_dev_im2col_mel(Hd, ASR_DT_F32, mel, B, nm, T, o);
        if (devices_ok("im2col_mel", t, shape)) {
            float *got = malloc(sizeof(float) * no);
            gget(t, go, got, no);
            report("im2col_mel", t, shape, o, got, 1, no, no, tol_elem(t));
            free(got);
        }
        asr_dev_free(G, gm), asr_dev_free(G, go);
        free(mel), free(o);
    }
    static const int s2_shapes[][3] = {{2, 37, 19}, {1, 3000, 384}, {2, 8, 5}};
    for (int s = 0; s < 3; s++) {
        int B = s2_shapes[s][0], T_in = s2_shapes[s][1], C = s2_shapes[s][2];
        char shape[64];
        snprintf(shape, sizeof shape, "B=%d T_in=%d C=%d", B, T_in, C);
        size_t ni = (size_t)B * T_in * C, no = (size_t)B * (T_in / 2) * C * 3;
        float *x = rand_t(t, ni, 2.0f), *o = malloc(sizeof(float) * no + 4);
        void *gx = gput(t, x, ni), *go = gmem(no * asr_dtype_size(t));
        asr_dev_im2col_s2(G, t, gx, B, T_in, C, go);
        asr_dev_im2col_s2(Hd, ASR_DT_F32, x, B, T_in, C, o);
        if (devices_ok("im2col_s2", t, shape)) {
            float *got = malloc(sizeof(float) * no + 4);
            gget(t, go, got, no);
            report("im2col_s2", t, shape, o, got, 1, no, no, tol_elem(t));
            free(got);
        }
        asr_dev_free(G, gx), asr_dev_free(G, go);
        free(x), free(o);
    }
}

static void test_embed(asr_dtype_t t) {
    const int n_vocab = 1031, n_ctx = 448;
    static const int shapes[][2] = {{1, 384}, {9, 37}, {224, 1280}};
    for (int ei = 0; ei < 3; ei++)
        for (int s = 0; s < 3; s++) {
            asr_dtype_t et = TYPES[ei];
            int n = shapes[s][0], dim = shapes[s][1];
            char shape[64], op[32];
            snprintf(op, sizeof op, "embed emb=%s", asr_dtype_name(et));
            snprintf(shape, sizeof shape, "n=%d dim=%d", n, dim);
            tw_t w = make_w(et, n_vocab, dim + 3);
            float *pos = frand_n((size_t)n_ctx * dim, 1.0f), *o = malloc(sizeof(float) * n * dim);
            int32_t *tok = malloc(sizeof(int32_t) * n), *posi = malloc(sizeof(int32_t) * n);
            for (int i = 0; i < n; i++)
                tok[i] = (i * 7919 + 3) % n_vocab, posi[i] = (i * 5 + 1) % n_ctx;
            tok[0] = n_vocab - 1;
            float *gp = gput(ASR_DT_F32, pos, (size_t)n_ctx * dim);
            int32_t *gt = gput_raw(tok, sizeof(int32_t) * n),
                    *gpi = gput_raw(posi, sizeof(int32_t) * n);
            void *gx = gmem((size_t)n * dim * asr_dtype_size(t));
            asr_dev_embed(G, t, &w.wg, gp, gt, gpi, n, dim, gx);
            asr_dev_embed(Hd, ASR_DT_F32, &w.wh, pos, tok, posi, n, dim, o);
            if (devices_ok(op, t, shape)) {
                float *got = malloc(sizeof(float) * n * dim);
                gget(t, gx, got, (size_t)n * dim);
                report(op, t, shape, o, got, 1, (size_t)n * dim, (size_t)n * dim, tol_elem(t));
                free(got);
            }
            asr_dev_free(G, gp), asr_dev_free(G, gt), asr_dev_free(G, gpi), asr_dev_free(G, gx);
            free(pos), free(o), free(tok), free(posi);
            free_w(&w);
        }
}

/* ---- attention ---- */
/* kind: the kernel asked for through ASRD_CUDA_ATTN_FULL (simt, wmma, mma), NULL: the default */
static void check_attn_full(asr_dtype_t t, int B, int T, int Hh, int dh, const char *kind) {
    int dim = Hh * dh;
    size_t nq = (size_t)B * T * 3 * dim, no = (size_t)B * T * dim;
    char shape[64], op[32];
    snprintf(shape, sizeof shape, "B=%d T=%d H=%d dh=%d", B, T, Hh, dh);
    snprintf(op, sizeof op, "attn_full[%s]", kind ? kind : "default");
    if (kind)
        setenv("ASRD_CUDA_ATTN_FULL", kind, 1);
    else
        unsetenv("ASRD_CUDA_ATTN_FULL");
    float scale = 1.0f / sqrtf((float)dh);
    float *qkv = frand_n(nq, 1.0f), *o = malloc(sizeof(float) * no);
    for (size_t i = 0; i < nq; i++) /* queries x6: scores of std ~2, peaked softmax */
        if (i % (3 * dim) < (size_t)dim)
            qkv[i] *= 6.0f;
    round_to(t, qkv, nq);
    void *gq = gput(t, qkv, nq), *go = gmem(no * asr_dtype_size(t));
    asr_dev_attn_full(G, t, gq, go, B, T, Hh, dh, scale);
    asr_dev_attn_full(Hd, ASR_DT_F32, qkv, o, B, T, Hh, dh, scale);
    unsetenv("ASRD_CUDA_ATTN_FULL");
    if (devices_ok(op, t, shape)) {
        float *got = malloc(sizeof(float) * no);
        gget(t, go, got, no);
        report(op, t, shape, o, got, 1, no, no, tol_comp(t));
        free(got);
    }
    asr_dev_free(G, gq), asr_dev_free(G, go);
    free(qkv), free(o);
}

/* One encoder attention kernel on every shape and type: float16/bfloat16 with dh 64 run the
 * kernel asked for (k: 0 SIMT, 1 mma, the default, 2 wmma); other shapes and float32 have the
 * SIMT kernel only (k == 0). */
static void test_attn_full(int k) {
    static const int shapes[][4] = {
        {1, 1500, 6, 64}, /* tiny's encoder */
        {2, 37, 3, 20},   /* dh not 64 */
        {1, 1499, 2, 64}, /* odd T */
        {3, 1, 4, 64},    /* one frame */
        {1, 130, 2, 128}, /* dh 128 */
        {2, 200, 20, 64}, /* large's heads */
    };
    static const char *const kinds[] = {"simt", "mma", "wmma"};
    for (int ti = 0; ti < n_types; ti++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            const int *sh = shapes[s];
            bool tc = TYPES[ti] != ASR_DT_F32 && sh[3] == 64; /* the tensor-core kernels apply */
            if (tc || k == 0)
                check_attn_full(TYPES[ti], sh[0], sh[1], sh[2], sh[3], tc ? kinds[k] : NULL);
        }
}

/* Decoder rows over three streams (shared prompts of 0, 5 and 100 positions) and six sequences
 * (two per stream), L layers of caches [n_ctx][dim] in type t; the same layout on both devices,
 * rows pointing into each device's own copies. */
typedef struct {
    int Hh, dh, dim, n_ctx, L, n;
    size_t lstride;
    float *hk[6], *hv[6], *hks[3], *hvs[3]; /* host copies (float32) */
    void *gk[6], *gv[6], *gks[3], *gvs[3];
    asr_dev_row_t *hrows, *grows_h; /* grows_h: the device rows, built on the host */
    asr_dev_row_t *grows;           /* on the device */
} dec_t;

static void dec_init(dec_t *s, asr_dtype_t t, int Hh, int dh, const int *lens, int n,
                     bool misalign) {
    memset(s, 0, sizeof *s);
    s->Hh = Hh, s->dh = dh, s->dim = Hh * dh, s->n_ctx = 448, s->L = 2, s->n = n;
    s->lstride = (size_t)s->n_ctx * s->dim + (misalign ? 1 : 0);
    size_t tot = s->L * s->lstride;
    for (int q = 0; q < 6; q++) {
        s->hk[q] = rand_t(t, tot, 1.0f), s->hv[q] = rand_t(t, tot, 1.0f);
        s->gk[q] = gput(t, s->hk[q], tot), s->gv[q] = gput(t, s->hv[q], tot);
    }
    for (int p = 0; p < 3; p++) {
        s->hks[p] = rand_t(t, tot, 1.0f), s->hvs[p] = rand_t(t, tot, 1.0f);
        s->gks[p] = gput(t, s->hks[p], tot), s->gvs[p] = gput(t, s->hvs[p], tot);
    }
    static const int shared_of[3] = {0, 5, 100};
    s->hrows = calloc((size_t)n, sizeof(asr_dev_row_t));
    s->grows_h = calloc((size_t)n, sizeof(asr_dev_row_t));
    for (int i = 0; i < n; i++) {
        int q = i % 6, p = q / 2, sh = shared_of[p] < lens[i] ? shared_of[p] : 0;
        s->hrows[i] = (asr_dev_row_t){.k = s->hk[q],
                                      .v = s->hv[q],
                                      .ks = sh ? s->hks[p] : NULL,
                                      .vs = sh ? s->hvs[p] : NULL,
                                      .shared = sh,
                                      .len = lens[i]};
        s->grows_h[i] = (asr_dev_row_t){.k = s->gk[q],
                                        .v = s->gv[q],
                                        .ks = sh ? s->gks[p] : NULL,
                                        .vs = sh ? s->gvs[p] : NULL,
                                        .shared = sh,
                                        .len = lens[i]};
    }
    s->grows = gput_raw(s->grows_h, sizeof(asr_dev_row_t) * n);
}

static void dec_free(dec_t *s) {
    for (int q = 0; q < 6; q++) {
        free(s->hk[q]), free(s->hv[q]);
        asr_dev_free(G, s->gk[q]), asr_dev_free(G, s->gv[q]);
    }
    for (int p = 0; p < 3; p++) {
        free(s->hks[p]), free(s->hvs[p]);
        asr_dev_free(G, s->gks[p]), asr_dev_free(G, s->gvs[p]);
    }
    asr_dev_free(G, s->grows);
    free(s->hrows), free(s->grows_h);
}

static void check_decoder_self(asr_dtype_t t, int Hh, int dh, bool misalign) {
    /* lengths 0 (padding) to 448, around the kernels' 128-key chunks; (sequence, len) pairs are
     * distinct, so no two rows write one cache position */
    static const int lens[] = {1,   2,   3,   7,   8,   9,   31,  32,  33,  63,  64, 65, 100,
                               101, 127, 128, 129, 255, 256, 257, 300, 447, 448, 6,  0,  200};
    const int n = (int)(sizeof lens / sizeof lens[0]);
    dec_t s;
    dec_init(&s, t, Hh, dh, lens, n, misalign);
    char shape[96];
    snprintf(shape, sizeof shape, "n=%d H=%d dh=%d len 0..448%s", n, Hh, dh,
             misalign ? " unaligned" : "");
    int dim = s.dim, ldq = 3 * dim + (misalign ? 1 : 8), ldo = dim + 8;
    float *qkv = rand_t(t, (size_t)n * ldq, 3.0f);
    void *gq = gput(t, qkv, (size_t)n * ldq);
    float *o = malloc(sizeof(float) * n * ldo);
    void *go = gmem((size_t)n * ldo * asr_dtype_size(t));
    size_t tot = s.L * s.lstride;
    float *got = malloc(sizeof(float) * (tot > (size_t)n * ldo ? tot : (size_t)n * ldo));
    for (int l = 0; l < s.L; l++) {
        size_t off = l * s.lstride;
        char sh2[128];
        snprintf(sh2, sizeof sh2, "%s layer %d", shape, l);
        asr_dev_kv_append(G, t, gq, ldq, s.grows, n, dim, off);
        asr_dev_kv_append(Hd, ASR_DT_F32, qkv, ldq, s.hrows, n, dim, off);
        if (devices_ok("kv_append", t, sh2)) { /* copies: the whole caches, exactly */
            size_t bad = 0;
            for (int q = 0; q < 6; q++) {
                gget(t, s.gk[q], got, tot);
                for (size_t e = 0; e < tot; e++)
                    bad += got[e] != s.hk[q][e];
                gget(t, s.gv[q], got, tot);
                for (size_t e = 0; e < tot; e++)
                    bad += got[e] != s.hv[q][e];
            }
            report_exact("kv_append", t, sh2, bad, 12 * tot);
        }
        asr_dev_attn_self(G, t, gq, ldq, s.grows, n, Hh, dh, off, 1.0f / sqrtf((float)dh), go, ldo);
        asr_dev_attn_self(Hd, ASR_DT_F32, qkv, ldq, s.hrows, n, Hh, dh, off,
                          1.0f / sqrtf((float)dh), o, ldo);
        if (devices_ok("attn_self", t, sh2)) {
            gget(t, go, got, (size_t)n * ldo);
            report("attn_self", t, sh2, o, got, (size_t)n, (size_t)dim, (size_t)ldo, tol_comp(t));
        }
    }
    asr_dev_free(G, gq), asr_dev_free(G, go);
    free(qkv), free(o), free(got);
    dec_free(&s);
}

/* Cross-attention: three streams' K/V interleaved as [L][n_audio][2·dim] (xk = base, xv = base +
 * dim, ldx = 2·dim > dim), n <= 40 rows of mixed streams (40: with a run of 30 of one). Run with
 * ASRD_CUDA_ATTN_CROSS=single (one block per row and head) and then by default (on sm_90 a
 * cluster split when rows × heads are fewer than 2 per multiprocessor: n = 1 splits 8 ways,
 * n = 40 with 6 heads 2 ways on an H100); the raw scores with the first. */
static void check_cross(asr_dtype_t t, int n, int Hh, int dh, int n_audio, bool misalign) {
    const int dim = Hh * dh, L = 2, ldx = 2 * dim + (misalign ? 1 : 0);
    const size_t lstride = (size_t)n_audio * ldx, tot = L * lstride;
    char shape[96];
    snprintf(shape, sizeof shape, "n=%d H=%d dh=%d n_audio=%d ldx=%d", n, Hh, dh, n_audio, ldx);
    float *hkv[3];
    void *gkv[3];
    for (int p = 0; p < 3; p++) {
        hkv[p] = rand_t(t, tot, 1.0f);
        gkv[p] = gput(t, hkv[p], tot);
    }
    asr_dev_row_t hrows[40], grows_h[40];
    for (int i = 0; i < n; i++) {
        int p = i < 10 ? (int[]){0, 1, 0, 2, 2, 1, 0, 0, 1, 2}[i] : 1;
        const size_t es = asr_dtype_size(t);
        hrows[i] = (asr_dev_row_t){.xk = hkv[p], .xv = hkv[p] + dim, .len = 1 + i};
        grows_h[i] = (asr_dev_row_t){.xk = gkv[p], .xv = (char *)gkv[p] + dim * es, .len = 1 + i};
    }
    asr_dev_row_t *grows = gput_raw(grows_h, sizeof(asr_dev_row_t) * n);
    int ldq = dim + 24, ldo = dim + 2;
    float *q = rand_t(t, (size_t)n * ldq, 6.0f), *o = malloc(sizeof(float) * n * ldo);
    float *sc = malloc(sizeof(float) * n * n_audio),
          *got = malloc(sizeof(float) * n * n_audio + n * ldo * 4);
    void *gq = gput(t, q, (size_t)n * ldq), *go = gmem((size_t)n * ldo * asr_dtype_size(t));
    float *gsc = gmem(sizeof(float) * n * n_audio);
    float scale = 1.0f / sqrtf((float)dh);
    for (int l = 0; l < L; l++) {
        size_t off = l * lstride;
        char sh2[128];
        snprintf(sh2, sizeof sh2, "%s layer %d", shape, l);
        asr_dev_attn_cross(Hd, ASR_DT_F32, q, ldq, hrows, n, Hh, dh, n_audio, ldx, off, scale, o,
                           ldo);
        for (int path = 0; path < 2; path++) {
            const char *op = path ? "attn_cross[default]" : "attn_cross[single]";
            if (path)
                unsetenv("ASRD_CUDA_ATTN_CROSS");
            else
                setenv("ASRD_CUDA_ATTN_CROSS", "single", 1);
            asr_dev_memset0(G, go, (size_t)n * ldo * asr_dtype_size(t));
            asr_dev_attn_cross(G, t, gq, ldq, grows, n, Hh, dh, n_audio, ldx, off, scale, go, ldo);
            unsetenv("ASRD_CUDA_ATTN_CROSS");
            if (devices_ok(op, t, sh2)) {
                gget(t, go, got, (size_t)n * ldo);
                report(op, t, sh2, o, got, (size_t)n, (size_t)dim, (size_t)ldo, tol_comp(t));
            }
        }
        for (int h = 0; h<Hh; h += Hh - 1> 0 ? Hh - 1 : 1) { /* the first and last heads */
            char sh3[160];
            snprintf(sh3, sizeof sh3, "%s head %d", sh2, h);
            asr_dev_attn_cross_scores(G, t, gq, ldq, grows, n, h, dh, n_audio, ldx, off, scale,
                                      gsc);
            asr_dev_attn_cross_scores(Hd, ASR_DT_F32, q, ldq, hrows, n, h, dh, n_audio, ldx, off,
                                      scale, sc);
            if (devices_ok("attn_cross_scores", t, sh3)) {
                gget(ASR_DT_F32, gsc, got, (size_t)n * n_audio);
                report("attn_cross_scores", t, sh3, sc, got, 1, (size_t)n * n_audio,
                       (size_t)n * n_audio, t == ASR_DT_F32 ? 1e-5 : tol_comp(t));
            }
            if (Hh == 1)
                break;
        }
    }
    for (int p = 0; p < 3; p++)
        free(hkv[p]), asr_dev_free(G, gkv[p]);
    asr_dev_free(G, grows), asr_dev_free(G, gq), asr_dev_free(G, go), asr_dev_free(G, gsc);
    free(q), free(o), free(sc), free(got);
}

static void test_decoder(asr_dtype_t t) {
    check_decoder_self(t, 6, 64, false);  /* tiny: the fast path */
    check_decoder_self(t, 20, 64, false); /* large's heads */
    check_decoder_self(t, 3, 20, false);  /* generic path: dh not 64 */
    check_decoder_self(t, 2, 64, true);   /* generic path: unaligned rows */
    check_cross(t, 40, 6, 64, 1500, false);
    check_cross(t, 1, 6, 64, 1500, false); /* beam 1, one stream: the widest cluster split */
    check_cross(t, 40, 20, 64, 1500, false);
    check_cross(t, 40, 3, 24, 37, false);
    check_cross(t, 40, 2, 64, 1499, true);
    check_cross(t, 2, 2, 64, 1499, true); /* the cluster split on the generic path */
}

/* The sticky error on the GPU: a combination the GPU does not support (float32 activations with
 * int8 weights) fails with a reason, and the device keeps reporting it. */
static void test_sticky(void) {
    float a[64] = {0};
    tw_t w = make_w(ASR_DT_I8, 8, 8);
    void *ga = gput(ASR_DT_F32, a, 64), *gc = gmem(64 * 4), *scr = gmem(8 * 8 * 2);
    asr_dev_set_scratch(G, scr, 8 * 8 * 2);
    asr_dev_linear(G, ASR_DT_F32, ga, 8, &w.wg, NULL, ASR_DT_F32, gc, 8, 8, 8, 8, 0);
    char err[256] = "";
    asr_err_t rc = asr_dev_sync(G, err, sizeof err);
    asr_err_t rc2 = asr_dev_error(G, NULL, 0);
    bool pass = rc == ASR_ERR_GPU && rc2 == ASR_ERR_GPU && err[0];
    printf("%s %-18s %-8s %-44s sync: %s (%s)\n", pass ? "PASS" : "FAIL", "sticky error", "float32",
           "int8 weights, float32 activations", asr_strerror(rc), err);
    pass ? n_pass++ : n_fail++;
    asr_dev_set_scratch(G, NULL, 0);
    asr_dev_free(G, ga), asr_dev_free(G, gc), asr_dev_free(G, scr);
    free_w(&w);
    reopen_gpu();
}

static bool nvcc_on_path(void) {
    const char *path = getenv("PATH");
    if (!path)
        return false;
    char buf[4096];
    for (const char *p = path; *p;) {
        const char *e = strchr(p, ':');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len && len < sizeof buf - 6) {
            snprintf(buf, sizeof buf, "%.*s/nvcc", (int)len, p);
            if (access(buf, X_OK) == 0)
                return true;
        }
        if (!e)
            break;
        p = e + 1;
    }
    return false;
}

/* The build's ASR_CUDA option: $ASR_CUDA_OPTION when set, else the CMake cache of the directory
 * ctest runs the test in (the build directory); "" when unknown. */
static void cuda_option(char *out, size_t len) {
    const char *env = getenv("ASR_CUDA_OPTION");
    snprintf(out, len, "%s", env ? env : "");
    if (env)
        return;
    FILE *f = fopen("CMakeCache.txt", "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "ASR_CUDA:STRING=", 16)) {
            size_t n = strcspn(line + 16, "\r\n");
            n = n < len - 1 ? n : len - 1;
            memcpy(out, line + 16, n);
            out[n] = 0;
            break;
        }
    fclose(f);
}

int main(void) {
    char why[256] = "";
    const char *dry = getenv("ASRD_GPU_TEST_ON_HOST");
    g_dry = dry && !strcmp(dry, "1");
    if (g_dry) {
        n_types = 1;
        printf("test_gpu_kernels: DRY RUN (ASRD_GPU_TEST_ON_HOST=1): the host device stands in "
               "for the GPU, float32 only; nothing here is a GPU result\n");
    } else if (asr_gpu_cuda_count(why, sizeof why) < 1) {
        const char *ci = getenv("CI");
        char opt[64];
        cuda_option(opt, sizeof opt);
        /* CI must compile the backend where it can; a build configured with ASR_CUDA=off on
         * purpose (make test-asan, test-tsan, fuzz) is not that failure */
        if (ci && !strcmp(ci, "true") && !asr_gpu_cuda_built() && nvcc_on_path() &&
            strcmp(opt, "off") != 0) {
            printf("test_gpu_kernels: FAIL: CI=true, nvcc is on PATH, ASR_CUDA is '%s', but the "
                   "CUDA backend was not built (%s)\n",
                   opt[0] ? opt : "unknown", why);
            return 1;
        }
        printf("test_gpu_kernels: no usable CUDA device: %s\n", why);
        return 76;
    }
    char err[256] = "";
    if (asr_dev_open(g_dry ? ASR_DEV_HOST : ASR_DEV_CUDA, 0, &G, err, sizeof err) != ASR_OK) {
        printf("test_gpu_kernels: FAIL: cuda:0 is counted usable but does not open: %s\n", err);
        return 1;
    }
    if (asr_dev_open(ASR_DEV_HOST, 0, &Hd, err, sizeof err) != ASR_OK) {
        printf("test_gpu_kernels: FAIL: the host device does not open: %s\n", err);
        return 1;
    }
    const asr_dev_info_t *gi = asr_dev_info(G);
    printf("test_gpu_kernels: cuda:0 %s (sm_%d%d, %d SMs, driver %s) against the host reference "
           "(%d threads)\n",
           gi->name, gi->cc_major, gi->cc_minor, gi->n_sm, gi->driver, asr_dev_info(Hd)->n_sm);
    /* the plain kernels and the GEMMs first, attention (the kernels most likely to fault, which
     * would end the run) last */
    test_convert();
    for (int ti = 0; ti < n_types; ti++) {
        asr_dtype_t t = TYPES[ti];
        test_layer_norm(t);
        test_add(t);
        test_im2col(t);
        test_embed(t);
    }
    test_linear();
    for (int ti = 0; ti < n_types; ti++)
        test_decoder(TYPES[ti]);
    /* the encoder's kernels, the safest first: a kernel that faults ends the run (the context is
     * lost) but leaves the earlier ones' results */
    for (int k = 0; k < 3; k++)
        test_attn_full(k);
    if (!g_dry)
        test_sticky();
    asr_dev_close(G);
    asr_dev_close(Hd);
    printf("test_gpu_kernels: %d passed, %d failed\n", n_pass, n_fail);
    return n_fail ? 1 : 0;
}
