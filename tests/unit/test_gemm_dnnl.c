/* Unit tests: nn's oneDNN GEMMs (asr_nn_dnnl_*) against a double-precision reference, every type,
 * shapes with tails and the encoder's, with and without bias, the fused GELU and residual add,
 * bfloat16 activations in and results out, the rows split over pools of 1-3 threads, on the kernel
 * level in use (ASRD_ISA; the suite runs it again at avx2). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/isa.h"
#include "nn/nn.h"

static float frand(unsigned *seed) {
    *seed = *seed * 1103515245u + 12345u;
    return ((float)((*seed >> 8) & 0xffff) / 32768.0f) - 1.0f;
}

/* relative error of each type: max|c - ref| / max|ref| */
static double run_case_split(asr_pool_t *pool, int type, int m, int n, int k, int with_bias,
                             int flags, int *splits_columns) {
    unsigned seed = (unsigned)(m * 31 + n * 7 + k + type);
    float *a = malloc(sizeof(float) * m * k), *w = malloc(sizeof(float) * n * k);
    float *b = malloc(sizeof(float) * n), *c = malloc(sizeof(float) * m * n);
    for (int i = 0; i < m * k; i++)
        a[i] = frand(&seed);
    for (int i = 0; i < n * k; i++)
        w[i] = frand(&seed) * 0.1f;
    for (int i = 0; i < n; i++)
        b[i] = frand(&seed);
    asr_nn_dnnl_t *g = NULL;
    asr_err_t e = flags ? asr_nn_dnnl_pack_ex(type, flags, w, with_bias ? b : NULL, m, n, k,
                                              asr_pool_n_threads(pool), &g)
                        : asr_nn_dnnl_pack(type, w, with_bias ? b : NULL, m, n, k,
                                           asr_pool_n_threads(pool), &g);
    if (type != ASR_NN_DNNL_BF16 && (flags & (ASR_NN_DNNL_SRC_BF16 | ASR_NN_DNNL_DST_BF16))) {
        assert_int_equal(e, ASR_ERR_INVALID); /* bfloat16 in/out: the bfloat16 type only */
        free(a), free(w), free(b), free(c);
        return -1;
    }
    /* refused (gemm_dnnl.c): int8 below AVX2, bfloat16 below AVX-512; the encoder stays float32
     * there */
    if ((type == ASR_NN_DNNL_I8 && asr_isa()->level < ASR_ISA_AVX2) ||
        (type == ASR_NN_DNNL_BF16 && asr_isa()->level < ASR_ISA_AVX512)) {
        assert_int_equal(e, ASR_ERR_INVALID);
        free(a), free(w), free(b), free(c);
        return -1;
    }
    assert_int_equal(e, ASR_OK);
    assert_true(asr_nn_dnnl_weight_bytes(g) >= (size_t)n * k);
    if (splits_columns)
        *splits_columns = asr_nn_dnnl_splits_columns(g);
    void *scr = NULL;
    assert_int_equal(posix_memalign(&scr, 64, asr_nn_dnnl_scratch_bytes(g) + 64), 0);
    assert_int_equal(asr_nn_dnnl_flags(g), flags);
    for (int i = 0; i < m * n; i++) /* the residual an ACC run adds to */
        c[i] = frand(&seed);
    float *c0 = malloc(sizeof(float) * m * n);
    memcpy(c0, c, sizeof(float) * m * n);
    uint16_t *ah = malloc(sizeof(uint16_t) * m * k), *ch = malloc(sizeof(uint16_t) * m * n);
    for (int i = 0; i < m * k; i++)
        ah[i] = asr_nn_f32_to_bf16(a[i]);
    for (int i = 0; i < m * n; i++)
        ch[i] = asr_nn_f32_to_bf16(c[i]);
    if (flags & (ASR_NN_DNNL_SRC_BF16 | ASR_NN_DNNL_DST_BF16)) {
        assert_int_equal(asr_nn_dnnl_run(pool, g, a, k, c, n, scr), ASR_ERR_INVALID);
        const void *ax = flags & ASR_NN_DNNL_SRC_BF16 ? (const void *)ah : (const void *)a;
        void *cx = flags & ASR_NN_DNNL_DST_BF16 ? (void *)ch : (void *)c;
        assert_int_equal(asr_nn_dnnl_run_ex(pool, g, ax, k, cx, n, scr), ASR_OK);
        if (flags & ASR_NN_DNNL_DST_BF16)
            for (int i = 0; i < m * n; i++)
                c[i] = asr_nn_bf16_to_f32(ch[i]);
    } else {
        assert_int_equal(asr_nn_dnnl_run(pool, g, a, k, c, n, scr), ASR_OK);
    }
    free(ah), free(ch);
    double err = 0, mag = 0;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double ref = with_bias ? b[j] : 0;
            for (int t = 0; t < k; t++)
                ref += (double)a[(size_t)i * k + t] * w[(size_t)j * k + t];
            if (flags & ASR_NN_DNNL_GELU)
                ref = 0.5 * ref * (1 + erf(ref / sqrt(2.0)));
            if (flags & ASR_NN_DNNL_ACC)
                ref += c0[(size_t)i * n + j];
            err = fmax(err, fabs(ref - c[(size_t)i * n + j]));
            mag = fmax(mag, fabs(ref));
        }
    printf("type %d %dx%dx%d bias %d flags %d threads %d: %s, rel err %.2e\n", type, m, n, k,
           with_bias, flags, asr_pool_n_threads(pool), asr_nn_dnnl_impl(g), err / mag);
    free(c0);
    free(scr);
    asr_nn_dnnl_destroy(g);
    free(a), free(w), free(b), free(c);
    return err / mag;
}

static double run_case(asr_pool_t *pool, int type, int m, int n, int k, int with_bias, int flags) {
    return run_case_split(pool, type, m, n, k, with_bias, flags, NULL);
}

static void test_types(void **state) {
    (void)state;
    asr_pool_t *pool = asr_pool_create(2);
    const int shapes[][3] = {{37, 29, 53}, {1, 8, 16}, {130, 96, 200}, {1500, 384, 384}};
    /* f32, bf16, int8 (8-bit both sides; 7-bit weights without VNNI: twice the step) */
    const double tol[] = {1e-5, 1.5e-2, 3e-2 * 127.0 / asr_nn_dnnl_weight_max()};
    for (int type = 0; type < 3; type++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            for (int bias = 0; bias < 2; bias++) {
                double e = run_case(pool, type, shapes[s][0], shapes[s][1], shapes[s][2], bias, 0);
                if (e < 0) {
                    printf("type %d: no oneDNN kernel at level %s\n", type,
                           asr_isa_level_name(asr_isa()->level));
                    continue;
                }
                if (!(e <= tol[type]))
                    fail_msg("type %d shape %zu: relative error %.3e > %.1e", type, s, e,
                             tol[type]);
            }
    asr_pool_destroy(pool);
}

/* the fused GELU and residual add, bfloat16 in and out (the bfloat16 type only), the rows split
 * over pools of 1 to 3 threads (parts of unequal rows: 37 = 19 + 18 and 13 + 12 + 12) and one part
 * for a small m */
static void test_flags_and_parts(void **state) {
    (void)state;
    const double tol[] = {1e-5, 1.5e-2, 3e-2 * 127.0 / asr_nn_dnnl_weight_max()};
    const int flags[] = {ASR_NN_DNNL_GELU, ASR_NN_DNNL_ACC, ASR_NN_DNNL_GELU | ASR_NN_DNNL_DST_BF16,
                         ASR_NN_DNNL_ACC | ASR_NN_DNNL_SRC_BF16};
    for (int nt = 1; nt <= 3; nt++) {
        asr_pool_t *pool = asr_pool_create(nt);
        for (int type = 0; type < 3; type++)
            for (int f = 0; f < 4; f++)
                for (int m = 10; m <= 37; m += 27) {
                    double e = run_case(pool, type, m, 40, 70, 1, flags[f]);
                    if (e < 0)
                        continue;
                    if (!(e <= tol[type]))
                        fail_msg("type %d flags %d m %d threads %d: relative error %.3e", type,
                                 flags[f], m, nt, e);
                }
        asr_pool_destroy(pool);
    }
}

/* bfloat16 A with k ≥ 4n (ffn2's shape): one part of the columns per thread, each writing its
 * columns of every row of C (as float32 or bfloat16, with the residual added or GELU) */
static void test_column_parts(void **state) {
    (void)state;
    const int flags[] = {ASR_NN_DNNL_SRC_BF16 | ASR_NN_DNNL_ACC,
                         ASR_NN_DNNL_SRC_BF16 | ASR_NN_DNNL_DST_BF16 | ASR_NN_DNNL_GELU,
                         ASR_NN_DNNL_SRC_BF16};
    for (int nt = 1; nt <= 3; nt++) {
        asr_pool_t *pool = asr_pool_create(nt);
        for (int f = 0; f < 3; f++)
            for (int m = 16; m <= 53; m += 37) {
                int cols = -1;
                double e = run_case_split(pool, ASR_NN_DNNL_BF16, m, 96, 400, 1, flags[f], &cols);
                if (e < 0) {
                    printf("bfloat16: no oneDNN kernel at level %s\n",
                           asr_isa_level_name(asr_isa()->level));
                    continue;
                }
                assert_int_equal(cols, nt > 1); /* 96 columns: 2 × 48, 3 × 32 */
                if (!(e <= 1.5e-2))
                    fail_msg("flags %d m %d threads %d: relative error %.3e", flags[f], m, nt, e);
            }
        /* k < 4n, or float32 A: rows */
        int cols = -1;
        if (run_case_split(pool, ASR_NN_DNNL_BF16, 40, 96, 300, 1, flags[0], &cols) >= 0)
            assert_int_equal(cols, 0);
        if (run_case_split(pool, ASR_NN_DNNL_BF16, 40, 96, 400, 1, ASR_NN_DNNL_ACC, &cols) >= 0)
            assert_int_equal(cols, 0);
        asr_pool_destroy(pool);
    }
}

int main(void) {
    const asr_isa_t *t = asr_isa();
    printf("level %s (%s), int8 weights up to %d\n", asr_isa_level_name(t->level), t->why,
           asr_nn_dnnl_weight_max());
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_types),
                                       cmocka_unit_test(test_flags_and_parts),
                                       cmocka_unit_test(test_column_parts)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
