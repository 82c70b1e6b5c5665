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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_linear),
        cmocka_unit_test(test_fast_kernels_match_reference),
        cmocka_unit_test(test_layer_norm_softmax_gelu),
        cmocka_unit_test(test_pool),
        cmocka_unit_test(test_half),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
