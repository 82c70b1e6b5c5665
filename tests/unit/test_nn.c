/* Unit tests: nn kernels against scalar double-precision references, the thread pool, and the
 * fp16/bf16 conversions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "nn/nn.h"

static float frand(unsigned *seed) {
    *seed = *seed * 1103515245u + 12345u;
    return ((float)((*seed >> 8) & 0xffff) / 32768.0f) - 1.0f;
}

static void test_linear(void **state) {
    (void)state;
    unsigned seed = 1;
    const int m = 37, n = 29, k = 53;
    float *a = malloc(sizeof(float) * m * k), *w = malloc(sizeof(float) * n * k);
    float *b = malloc(sizeof(float) * n), *c = malloc(sizeof(float) * m * n);
    for (int i = 0; i < m * k; i++)
        a[i] = frand(&seed);
    for (int i = 0; i < n * k; i++)
        w[i] = frand(&seed);
    for (int i = 0; i < n; i++)
        b[i] = frand(&seed);
    asr_nn_linear(a, k, w, k, b, c, n, m, n, k);
    double max_err = 0;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double ref = b[j];
            for (int t = 0; t < k; t++)
                ref += (double)a[i * k + t] * w[j * k + t];
            max_err = fmax(max_err, fabs(ref - c[i * n + j]));
        }
    assert_true(max_err < 1e-4);
    free(a), free(w), free(b), free(c);
}

static void test_layer_norm_softmax_gelu(void **state) {
    (void)state;
    unsigned seed = 7;
    const int rows = 70, d = 48;
    float *x = malloc(sizeof(float) * rows * d), *o = malloc(sizeof(float) * rows * d);
    float g[48], be[48];
    for (int i = 0; i < rows * d; i++)
        x[i] = frand(&seed) * 3.0f + 0.5f;
    for (int i = 0; i < d; i++)
        g[i] = frand(&seed), be[i] = frand(&seed);
    asr_pool_t *pool = asr_pool_create(3);
    asr_nn_layer_norm(pool, x, o, rows, d, g, be, 1e-5f);
    for (int r = 0; r < rows; r++) {
        double mean = 0, var = 0;
        for (int i = 0; i < d; i++)
            mean += x[r * d + i];
        mean /= d;
        for (int i = 0; i < d; i++)
            var += (x[r * d + i] - mean) * (x[r * d + i] - mean);
        var /= d;
        for (int i = 0; i < d; i++) {
            double ref = (x[r * d + i] - mean) / sqrt(var + 1e-5) * g[i] + be[i];
            assert_true(fabs(ref - o[r * d + i]) < 1e-4);
        }
    }
    memcpy(o, x, sizeof(float) * rows * d);
    asr_nn_softmax_rows(pool, o, rows, d, d);
    for (int r = 0; r < rows; r++) {
        double mx = -1e30, sum = 0;
        for (int i = 0; i < d; i++)
            mx = fmax(mx, x[r * d + i]);
        for (int i = 0; i < d; i++)
            sum += exp(x[r * d + i] - mx);
        for (int i = 0; i < d; i++)
            assert_true(fabs(exp(x[r * d + i] - mx) / sum - o[r * d + i]) < 1e-6);
    }
    memcpy(o, x, sizeof(float) * rows * d);
    asr_nn_gelu(pool, o, (size_t)rows * d);
    for (int i = 0; i < rows * d; i++) {
        double v = x[i], ref = 0.5 * v * (1.0 + erf(v / sqrt(2.0)));
        assert_true(fabs(ref - o[i]) < 1e-5);
    }
    asr_pool_destroy(pool);
    free(x), free(o);
}

typedef struct {
    int hits[1000];
} pool_ctx_t;

static void mark(void *ctx, int task, int n_tasks) {
    (void)n_tasks;
    ((pool_ctx_t *)ctx)->hits[task]++;
}

static void test_pool(void **state) {
    (void)state;
    asr_pool_t *pool = asr_pool_create(4);
    pool_ctx_t *c = calloc(1, sizeof *c);
    for (int rep = 0; rep < 200; rep++)
        asr_pool_run(pool, 1000, mark, c);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(c->hits[i], 200);
    asr_pool_destroy(pool);
    asr_pool_destroy(NULL);
    free(c);
}

static void test_half(void **state) {
    (void)state;
    assert_true(asr_nn_f16_to_f32(0x3c00) == 1.0f);
    assert_true(asr_nn_f16_to_f32(0xc000) == -2.0f);
    assert_true(asr_nn_f16_to_f32(0x0000) == 0.0f);
    assert_true(asr_nn_f16_to_f32(0x7bff) == 65504.0f);
    assert_true(asr_nn_f16_to_f32(0x0001) == ldexpf(1.0f, -24)); /* smallest subnormal */
    assert_true(isinf(asr_nn_f16_to_f32(0x7c00)));
    assert_true(isnan(asr_nn_f16_to_f32(0x7e00)));
    assert_true(asr_nn_bf16_to_f32(0x3f80) == 1.0f);
    /* float32 -> float16: round to nearest even, subnormals, overflow; vector == scalar, and
     * every float16 value survives the round trip */
    assert_int_equal(asr_nn_f32_to_f16(1.0f), 0x3c00);
    assert_int_equal(asr_nn_f32_to_f16(1.0f + 1.0f / 2048.0f), 0x3c00); /* tie: even */
    assert_int_equal(asr_nn_f32_to_f16(1.0f + 3.0f / 2048.0f), 0x3c02);
    assert_int_equal(asr_nn_f32_to_f16(-65504.0f), 0xfbff);
    assert_int_equal(asr_nn_f32_to_f16(70000.0f), 0x7c00);
    assert_int_equal(asr_nn_f32_to_f16(ldexpf(1.0f, -24)), 0x0001);
    assert_int_equal(asr_nn_f32_to_f16(ldexpf(1.0f, -26)), 0x0000);
    enum { N = 0x10000 };
    float *f = malloc(sizeof(float) * N);
    uint16_t *h1 = malloc(2 * N), *h2 = malloc(2 * N);
    int n = 0;
    for (int i = 0; i < N; i++)
        if ((i & 0x7c00) != 0x7c00) /* finite */
            f[n++] = asr_nn_f16_to_f32((uint16_t)i);
    asr_nn_f2h_n(f, h1, (size_t)n);
    asr_nn_f2h_n_ref(f, h2, (size_t)n);
    for (int i = 0; i < n; i++) {
        assert_int_equal(h1[i], h2[i]);
        assert_true(asr_nn_f16_to_f32(h1[i]) == f[i]);
    }
    for (int i = 0; i < N; i++) /* float16 -> float32, vector == scalar for all 65536 */
        h1[i] = (uint16_t)i;
    asr_nn_h2f_n(h1, f, N);
    for (int i = 0; i < N; i++) {
        float r = asr_nn_f16_to_f32((uint16_t)i);
        assert_true(f[i] == r || (isnan(f[i]) && isnan(r)));
    }
    unsigned seed = 3;
    for (int i = 0; i < N; i++)
        f[i] = frand(&seed) * ldexpf(1.0f, (int)(seed % 40) - 24);
    asr_nn_f2h_n(f, h1, N);
    asr_nn_f2h_n_ref(f, h2, N);
    for (int i = 0; i < N; i++)
        assert_int_equal(h1[i], h2[i]);
    free(f), free(h1), free(h2);
}

/* Vectorised kernels against their scalar libm references, over the ranges the model sees and
 * the edges (large magnitudes, tails shorter than a vector). Tolerances: exp relative 1e-6;
 * GELU absolute 2e-6·(1+|x|); softmax absolute 1e-6. */
static void test_fast_kernels_match_reference(void **state) {
    (void)state;
    unsigned seed = 11;
    enum { N = 4099 };
    float *x = malloc(sizeof(float) * N), *y = malloc(sizeof(float) * N);
    float *a = malloc(sizeof(float) * N), *b = malloc(sizeof(float) * N);
    for (int i = 0; i < N; i++)
        x[i] = frand(&seed) * 85.0f;
    x[0] = -87.0f, x[1] = 88.0f, x[2] = 0.0f, x[3] = -1e-8f;
    asr_nn_exp_fast(x, y, N);
    double max_rel = 0;
    for (int i = 0; i < N; i++)
        max_rel = fmax(max_rel, fabs((double)y[i] - exp((double)x[i])) / exp((double)x[i]));
    assert_true(max_rel < 1e-6);
    double max_g = 0;
    for (int n = 1; n < 40; n += 7) { /* tails */
        for (int i = 0; i < N; i++)
            a[i] = b[i] = frand(&seed) * 8.0f;
        a[0] = b[0] = -30.0f, a[1] = b[1] = 30.0f;
        asr_nn_gelu_fast(a, (size_t)N - (size_t)n);
        asr_nn_gelu_ref(b, (size_t)N - (size_t)n);
        for (int i = 0; i < N; i++)
            max_g = fmax(max_g, fabs((double)a[i] - b[i]) / (1.0 + fabs((double)b[i])));
    }
    assert_true(max_g < 2e-6);
    double max_s = 0;
    for (int n = 1; n < 1600; n = n * 3 + 1) {
        for (int i = 0; i < n; i++)
            a[i] = b[i] = frand(&seed) * 20.0f;
        asr_nn_softmax_row_fast(a, n, 1.0f);
        asr_nn_softmax_row_ref(b, n);
        double sum = 0;
        for (int i = 0; i < n; i++) {
            max_s = fmax(max_s, fabs((double)a[i] - b[i]));
            sum += a[i];
        }
        assert_true(fabs(sum - 1.0) < 1e-5);
    }
    assert_true(max_s < 1e-6);
    /* scale is applied before the exponential */
    for (int i = 0; i < 100; i++)
        a[i] = frand(&seed), b[i] = a[i] * 0.125f;
    asr_nn_softmax_row_fast(a, 100, 0.125f);
    asr_nn_softmax_row_ref(b, 100);
    for (int i = 0; i < 100; i++)
        assert_true(fabs((double)a[i] - b[i]) < 1e-6);
    free(x), free(y), free(a), free(b);
}

/* The decoder's kernels (asr_nn_linear_w for every weight type, asr_nn_gemm_nn_small,
 * asr_nn_logsumexp) against the scalar references, over row counts 1..13 (tiles of every shape
 * and their remainders), widths with and without vector tails, with and without the pool.
 * Tolerances: float32/float16/bfloat16 weights 1e-5 of sum|a·w| (float32 sums in another order);
 * int8 1e-5 of the same against the reference with identical quantization, and 5% against the
 * float32 product (the quantization error itself). */
static void test_decoder_kernels_match_reference(void **state) {
    (void)state;
    unsigned seed = 5;
    const int ms[] = {1, 2, 3, 4, 5, 6, 7, 8, 11, 13}, ns[] = {1, 7, 64, 130},
              ks[] = {8, 37, 64, 100, 384};
    asr_pool_t *pool = asr_pool_create(2);
    enum { MAXM = 13, MAXN = 130, MAXK = 384 };
    float *a = malloc(sizeof(float) * MAXM * MAXK), *wf = malloc(sizeof(float) * MAXN * MAXK);
    float *bias = malloc(sizeof(float) * MAXN), *c = malloc(sizeof(float) * MAXM * MAXN);
    float *r = malloc(sizeof(float) * MAXM * MAXN), *r32 = malloc(sizeof(float) * MAXM * MAXN);
    uint16_t *wh = malloc(2 * MAXN * MAXK), *wb = malloc(2 * MAXN * MAXK);
    int8_t *wq = malloc(MAXN * MAXK);
    float *wsc = malloc(sizeof(float) * MAXN);
    for (size_t ki = 0; ki < sizeof ks / sizeof *ks; ki++)
        for (size_t ni = 0; ni < sizeof ns / sizeof *ns; ni++) {
            const int n = ns[ni], k = ks[ki];
            for (int i = 0; i < n * k; i++) { /* float16 values in [-2, 2], float32 copies */
                seed = seed * 1103515245u + 12345u;
                wh[i] = (uint16_t)(((seed >> 16) & 0x8000) | (((seed >> 8) % 0x4000) + 0x0400));
                wh[i] = wh[i] & 0x7fff ? wh[i] : 0x3c00;
                wf[i] = asr_nn_f16_to_f32(wh[i]);
            }
            asr_nn_convert_rows(wf, n, k, ASR_W_BF16, wb, NULL);
            asr_nn_convert_rows(wf, n, k, ASR_W_I8, wq, wsc);
            for (int i = 0; i < n; i++)
                bias[i] = frand(&seed);
            asr_wmat_t W[4] = {{ASR_W_F32, wf, NULL, k},
                               {ASR_W_F16, wh, NULL, k},
                               {ASR_W_BF16, wb, NULL, k},
                               {ASR_W_I8, wq, wsc, k}};
            for (size_t mi = 0; mi < sizeof ms / sizeof *ms; mi++) {
                const int m = ms[mi];
                for (int i = 0; i < m * k; i++)
                    a[i] = frand(&seed) * 2.0f;
                asr_nn_linear_w_ref(a, k, &W[0], bias, r32, n, m, n, k);
                for (int t = 0; t < 4; t++) {
                    asr_nn_linear_w(t % 2 ? pool : NULL, a, k, &W[t], bias, c, n, m, n, k);
                    asr_nn_linear_w_ref(a, k, &W[t], bias, r, n, m, n, k);
                    for (int i = 0; i < m; i++)
                        for (int j = 0; j < n; j++) {
                            double mag = 1.0;
                            for (int u = 0; u < k; u++)
                                mag += fabs(a[i * k + u] * wf[j * k + u]);
                            double e = fabs((double)c[i * n + j] - r[i * n + j]) / mag;
                            if (e > 1e-5)
                                fail_msg("type %d m=%d n=%d k=%d (%d,%d): %g vs %g", t, m, n, k, i,
                                         j, c[i * n + j], r[i * n + j]);
                            double q = fabs((double)c[i * n + j] - r32[i * n + j]) / mag;
                            if (q > (t == 3 ? 0.05 : t == 2 ? 0.01 : 1e-5))
                                fail_msg("type %d m=%d n=%d k=%d vs float32: %g", t, m, n, k, q);
                        }
                }
            }
        }
    /* P·V and q·Kᵀ shapes, V in float32 and in float16; beyond 12 rows: prompts (the kernels
     * once indexed past their table there) */
    const int cs[] = {1, 5, 64, 300}, ncols[] = {1, 9, 16, 64, 70};
    const int pms[] = {1, 2, 3, 4, 5, 6, 7, 8, 12, 13, 40, 185};
    float *p = malloc(sizeof(float) * 185 * 300), *v = malloc(sizeof(float) * 300 * 70);
    float *o = malloc(sizeof(float) * 185 * 70);
    uint16_t *vh = malloc(sizeof(uint16_t) * 300 * 70);
    for (size_t ci = 0; ci < sizeof cs / sizeof *cs; ci++)
        for (size_t ni = 0; ni < sizeof ncols / sizeof *ncols; ni++)
            for (size_t mi = 0; mi < sizeof pms / sizeof *pms; mi++) {
                const int ctx = cs[ci], n = ncols[ni], m = pms[mi];
                for (int i = 0; i < m * ctx; i++)
                    p[i] = frand(&seed);
                for (int i = 0; i < ctx * n; i++) { /* float16 values, float32 copies */
                    seed = seed * 1103515245u + 12345u;
                    vh[i] = (uint16_t)(((seed >> 16) & 0x8000) | (((seed >> 8) % 0x3c00) + 0x0400));
                    v[i] = asr_nn_f16_to_f32(vh[i]);
                }
                for (int half = 0; half < 2; half++) {
                    if (half)
                        asr_nn_gemm_nn_small_h(p, ctx, vh, n, o, n, m, n, ctx);
                    else
                        asr_nn_gemm_nn_small(p, ctx, v, n, o, n, m, n, ctx);
                    for (int i = 0; i < m; i++)
                        for (int t = 0; t < n; t++) {
                            double ref = 0, mag = 1;
                            for (int j = 0; j < ctx; j++)
                                ref += (double)p[i * ctx + j] * v[j * n + t],
                                    mag += fabs(p[i * ctx + j] * v[j * n + t]);
                            assert_true(fabs(ref - o[i * n + t]) / mag < 1e-5);
                        }
                }
            }
    for (int n = 1; n < 3000; n = n * 2 + 3) {
        for (int i = 0; i < n; i++)
            p[i % 2400] = frand(&seed) * 30.0f;
        int nn = n < 2400 ? n : 2400;
        double mx = -1e30, sum = 0;
        for (int i = 0; i < nn; i++)
            mx = fmax(mx, p[i]);
        for (int i = 0; i < nn; i++)
            sum += exp(p[i] - mx);
        assert_true(fabs(asr_nn_logsumexp(p, nn) - (mx + log(sum))) < 1e-5 * (1 + fabs(mx)));
    }
    p[0] = -INFINITY;
    assert_true(isinf(asr_nn_logsumexp(p, 1)));
    /* bfloat16 rounds to nearest even; int8 rows scale by max|w|/127 */
    float x[4] = {1.0f + 1.0f / 256.0f, 1.0f + 3.0f / 256.0f, -2.0f, 0.0f};
    uint16_t xb[4];
    asr_nn_convert_rows(x, 1, 4, ASR_W_BF16, xb, NULL);
    assert_int_equal(xb[0], 0x3f80);
    assert_int_equal(xb[1], 0x3f82);
    assert_int_equal(xb[2], 0xc000);
    int8_t xq[4];
    float xs;
    asr_nn_convert_rows(x, 1, 4, ASR_W_I8, xq, &xs);
    assert_int_equal(xq[2], -127);
    assert_true(fabsf(xs - 2.0f / 127.0f) < 1e-9f);
    asr_pool_destroy(pool);
    free(a), free(wf), free(bias), free(c), free(r), free(r32), free(wh), free(wb), free(wq);
    free(wsc), free(p), free(v), free(o), free(vh);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_linear),
        cmocka_unit_test(test_fast_kernels_match_reference),
        cmocka_unit_test(test_decoder_kernels_match_reference),
        cmocka_unit_test(test_layer_norm_softmax_gelu),
        cmocka_unit_test(test_pool),
        cmocka_unit_test(test_half),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
