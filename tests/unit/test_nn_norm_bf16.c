/* Unit tests: nn's layer norm with bfloat16 output (asr_nn_layer_norm_bf16) against
 * asr_nn_layer_norm's float32 rows on random inputs: widths with tails (1, 15, 17, 384, 513),
 * offsets and scales that stress the variance, over a pool and on one thread. Each value within
 * one bfloat16 rounding (2^-8 relative) of the float32 result, or 2e-4 of values near 0 (float32
 * sums against asr_nn_layer_norm's double ones). Runs on every kernel level (the
 * AVX-512 BF16 rows where asr_isa() has them, the portable ones otherwise: ASRD_ISA=avx2). */
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

static void run_case(asr_pool_t *pool, int rows, int d, float offset, float scale) {
    unsigned seed = (unsigned)(rows * 7 + d);
    float *x = malloc(sizeof(float) * rows * d), *ref = malloc(sizeof(float) * rows * d);
    float *g = malloc(sizeof(float) * d), *b = malloc(sizeof(float) * d);
    uint16_t *out = malloc(sizeof(uint16_t) * rows * d);
    for (int i = 0; i < rows * d; i++)
        x[i] = offset + scale * frand(&seed);
    for (int i = 0; i < d; i++)
        g[i] = 1.0f + 0.5f * frand(&seed), b[i] = 0.2f * frand(&seed);
    asr_nn_layer_norm(NULL, x, ref, rows, d, g, b, 1e-5f);
    asr_nn_layer_norm_bf16(pool, x, out, rows, d, g, b, 1e-5f);
    double worst = 0;
    for (int i = 0; i < rows * d; i++) {
        double o = asr_nn_bf16_to_f32(out[i]), r = ref[i];
        double e = fabs(o - r) / (fabs(r) + 0.05); /* the normed values are O(1) */
        worst = fmax(worst, isfinite(o) ? e : INFINITY);
    }
    printf("rows %d d %d offset %g scale %g: worst %.2e of |ref|\n", rows, d, offset, scale, worst);
    assert_true(worst <= 1.0 / 256);
    free(x), free(ref), free(g), free(b), free(out);
}

static void test_widths(void **state) {
    (void)state;
    asr_pool_t *pool = asr_pool_create(2);
    static const int ds[] = {1, 15, 17, 384, 513};
    for (size_t i = 0; i < sizeof ds / sizeof ds[0]; i++) {
        run_case(pool, 37, ds[i], 0.0f, 1.0f);
        run_case(NULL, 5, ds[i], 3.0f, 0.01f);
        run_case(pool, 1, ds[i], -20.0f, 40.0f);
    }
    asr_pool_destroy(pool);
}

int main(void) {
    const asr_isa_t *t = asr_isa();
    printf("level %s, AVX512-BF16 %s\n", asr_isa_level_name(t->level),
           t->avx512_bf16 ? "yes" : "no");
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_widths)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
