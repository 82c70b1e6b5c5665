/* Unit tests: nn's oneDNN GEMMs (asr_nn_dnnl_*) against a double-precision reference, every type,
 * shapes with tails and the encoder's, with and without bias, on the kernel level in use
 * (ASRD_ISA; the suite runs it again at avx2). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "nn/isa.h"
#include "nn/nn.h"

static float frand(unsigned *seed) {
    *seed = *seed * 1103515245u + 12345u;
    return ((float)((*seed >> 8) & 0xffff) / 32768.0f) - 1.0f;
}

/* relative error of each type: max|c - ref| / max|ref| */
static double run_case(asr_pool_t *pool, int type, int m, int n, int k, int with_bias) {
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
    asr_err_t e =
        asr_nn_dnnl_pack(type, w, with_bias ? b : NULL, m, n, k, asr_pool_n_threads(pool), &g);
    if (e != ASR_OK && type != ASR_NN_DNNL_F32 && asr_isa()->level < ASR_ISA_AVX512) {
        free(a), free(w), free(b), free(c);
        return -1; /* refused below AVX-512 (gemm_dnnl.c): the encoder stays float32 */
    }
    assert_int_equal(e, ASR_OK);
    assert_true(asr_nn_dnnl_weight_bytes(g) >= (size_t)n * k);
    void *scr = NULL;
    assert_int_equal(posix_memalign(&scr, 64, asr_nn_dnnl_scratch_bytes(g) + 64), 0);
    assert_int_equal(asr_nn_dnnl_run(pool, g, a, k, c, n, scr), ASR_OK);
    double err = 0, mag = 0;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double ref = with_bias ? b[j] : 0;
            for (int t = 0; t < k; t++)
                ref += (double)a[(size_t)i * k + t] * w[(size_t)j * k + t];
            err = fmax(err, fabs(ref - c[(size_t)i * n + j]));
            mag = fmax(mag, fabs(ref));
        }
    printf("type %d %dx%dx%d bias %d: %s, rel err %.2e\n", type, m, n, k, with_bias,
           asr_nn_dnnl_impl(g), err / mag);
    free(scr);
    asr_nn_dnnl_destroy(g);
    free(a), free(w), free(b), free(c);
    return err / mag;
}

static void test_types(void **state) {
    (void)state;
    asr_pool_t *pool = asr_pool_create(2);
    const int shapes[][3] = {{37, 29, 53}, {1, 8, 16}, {130, 96, 200}, {1500, 384, 384}};
    const double tol[] = {1e-5, 1.5e-2, 3e-2}; /* f32, bf16, int8 (8-bit both sides) */
    for (int type = 0; type < 3; type++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            for (int bias = 0; bias < 2; bias++) {
                double e = run_case(pool, type, shapes[s][0], shapes[s][1], shapes[s][2], bias);
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

int main(void) {
    const asr_isa_t *t = asr_isa();
    printf("level %s (%s)\n", asr_isa_level_name(t->level), t->why);
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_types)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
