/* Unit tests: nn's bfloat16 self-attention on AMX (asr_nn_attn_bf16) against a double-precision
 * float32-input reference on random inputs: sequence lengths with every tail (1, 15, 16, 17, 33,
 * 100, 1500), one and several heads, flat and peaked softmaxes, over a pool and on the calling
 * thread, with scratch for every task and for one, float32 and bfloat16 in (the same output bit
 * for bit) and out, a maximum far past the first keys. Tolerance: 0.6% of max|v| (bfloat16 rounds
 * q, k, v and the softmax weights to 2^-9 relative). Exits 76 (Not Run) naming what the CPU lacks.
 */
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

#define DH 64

static float frand(unsigned *seed) {
    *seed = *seed * 1103515245u + 12345u;
    return ((float)((*seed >> 8) & 0xffff) / 32768.0f) - 1.0f;
}

/* max |out - ref| / max |v| for one case */
static double run_case_ex(asr_pool_t *pool, int T, int H, float sharp, int one_task, int bf,
                          int spike) {
    const int d = H * DH, ld = 3 * d + 5, ldo = d + 3; /* odd leading dimensions */
    unsigned seed = (unsigned)(T * 131 + H * 7 + (int)sharp);
    float *qkv = malloc(sizeof(float) * T * ld), *out = malloc(sizeof(float) * T * ldo);
    double *ref = malloc(sizeof(double) * T * d), *sc = malloc(sizeof(double) * T);
    for (int i = 0; i < T * ld; i++)
        qkv[i] = frand(&seed);
    for (int t = 0; t < T; t++) /* peaked: larger queries */
        for (int c = 0; c < d; c++)
            qkv[(size_t)t * ld + c] *= sharp;
    if (spike) /* positive queries, and the last 40 keys far above every other (and above the
                  first chunk's by far more than the kernel's first-chunk bound allows) */
        for (int t = 0; t < T; t++)
            for (int c = 0; c < d; c++) {
                qkv[(size_t)t * ld + c] = fabsf(qkv[(size_t)t * ld + c]) + 0.5f;
                if (t >= T - 40)
                    qkv[(size_t)t * ld + d + c] = 60.0f;
            }
    for (int i = 0; i < T * ldo; i++)
        out[i] = NAN; /* every element of [T][d] must be written */
    const float scale = 1.0f / sqrtf((float)DH);
    double vmax = 0;
    for (int h = 0; h < H; h++)
        for (int t = 0; t < T; t++) {
            const float *q = qkv + (size_t)t * ld + h * DH;
            double mx = -INFINITY, sum = 0;
            for (int s = 0; s < T; s++) {
                const float *k = qkv + (size_t)s * ld + d + h * DH;
                double a = 0;
                for (int c = 0; c < DH; c++)
                    a += (double)q[c] * k[c];
                sc[s] = a * scale;
                mx = fmax(mx, sc[s]);
            }
            for (int s = 0; s < T; s++)
                sum += (sc[s] = exp(sc[s] - mx));
            for (int c = 0; c < DH; c++) {
                double o = 0;
                for (int s = 0; s < T; s++) {
                    double v = qkv[(size_t)s * ld + 2 * d + h * DH + c];
                    o += sc[s] * v;
                    vmax = fmax(vmax, fabs(v));
                }
                ref[(size_t)t * d + h * DH + c] = o / sum;
            }
        }
    size_t pk_len = asr_nn_attn_bf16_packed_bytes(T, d), tb = asr_nn_attn_bf16_task_bytes(T);
    int n_tasks = one_task ? 1 : (pool ? asr_pool_n_threads(pool) : 1);
    void *pk = NULL, *scr = NULL;
    assert_int_equal(posix_memalign(&pk, 64, pk_len), 0);
    assert_int_equal(posix_memalign(&scr, 64, tb * n_tasks), 0);
    memset(pk, 0xff, pk_len); /* NaN bit patterns: the pack must write what is read */
    uint16_t *o16 = malloc(sizeof(uint16_t) * T * ldo);
    for (int i = 0; i < T * ldo; i++)
        o16[i] = 0x7fc0; /* NaN */
    asr_nn_attn_bf16(pool, qkv, ld, 0, T, H, scale, pk, scr, tb * n_tasks, bf ? (void *)o16 : out,
                     ldo, bf);
    { /* the QKV matrix in bfloat16 (a bfloat16 GEMM's output, rounded to nearest even as the pack
         rounds float32): the same output, bit for bit */
        uint16_t *q16 = malloc(sizeof(uint16_t) * T * ld);
        for (int i = 0; i < T * ld; i++)
            q16[i] = asr_nn_f32_to_bf16(qkv[i]);
        void *o2 = malloc((bf ? sizeof(uint16_t) : sizeof(float)) * T * ldo);
        memcpy(o2, bf ? (void *)o16 : (void *)out,
               (bf ? sizeof(uint16_t) : sizeof(float)) * T * ldo);
        memset(pk, 0xff, pk_len);
        asr_nn_attn_bf16(pool, q16, ld, 1, T, H, scale, pk, scr, tb * n_tasks, o2, ldo, bf);
        assert_memory_equal(o2, bf ? (void *)o16 : (void *)out,
                            (bf ? sizeof(uint16_t) : sizeof(float)) * T * ldo);
        free(o2), free(q16);
    }
    if (bf)
        for (int i = 0; i < T * ldo; i++)
            out[i] = asr_nn_bf16_to_f32(o16[i]);
    free(o16);
    double err = 0;
    for (int t = 0; t < T; t++)
        for (int c = 0; c < d; c++) {
            double o = out[(size_t)t * ldo + c];
            double e = isfinite(o) ? fabs(o - ref[(size_t)t * d + c]) : INFINITY;
            err = fmax(err, e);
        }
    for (int t = 0; t < T; t++) /* the columns past d are not touched */
        for (int c = d; c < ldo; c++)
            assert_true(isnan(out[(size_t)t * ldo + c]));
    printf("T %4d H %d sharp %.0f tasks %d out %s: max err %.2e of max|v| %.2f\n", T, H, sharp,
           n_tasks, bf ? "bf16" : "f32", err / vmax, vmax);
    free(pk), free(scr), free(qkv), free(out), free(ref), free(sc);
    return err / vmax;
}

static double run_case(asr_pool_t *pool, int T, int H, float sharp, int one_task, int bf) {
    return run_case_ex(pool, T, H, sharp, one_task, bf, 0);
}

static void test_shapes(void **state) {
    (void)state;
    asr_pool_t *pool = asr_pool_create(2);
    static const int Ts[] = {1, 15, 16, 17, 33, 100};
    for (size_t i = 0; i < sizeof Ts / sizeof Ts[0]; i++)
        for (int H = 1; H <= 3; H += 2)
            for (float sharp = 1; sharp <= 4; sharp *= 4)
                assert_true(run_case(pool, Ts[i], H, sharp, 0, 0) < 6e-3);
    assert_true(run_case(NULL, 37, 2, 4, 0, 0) < 6e-3);
    assert_true(run_case(pool, 77, 2, 4, 1, 0) < 6e-3);
    for (int T = 16; T <= 47; T += 31) /* bfloat16 out: one more rounding (2^-9) */
        assert_true(run_case(pool, T, 3, 4, 0, 1) < 8e-3);
    asr_pool_destroy(pool);
}

/* the encoder's length: one head (the reference is O(T²·64) per head) */
static void test_encoder_length(void **state) {
    (void)state;
    asr_pool_t *pool = asr_pool_create(2);
    assert_true(run_case(pool, 1500, 1, 4, 0, 0) < 6e-3);
    asr_pool_destroy(pool);
}

/* scores past the first keys that exp() of the first keys' maximum cannot hold: the block is
 * redone with the exact maxima (an overflow would leave NaN or infinity) */
static void test_late_maximum(void **state) {
    (void)state;
    asr_pool_t *pool = asr_pool_create(2);
    assert_true(run_case_ex(pool, 300, 2, 1, 0, 0, 1) < 6e-3);
    assert_true(run_case_ex(pool, 300, 1, 1, 0, 1, 1) < 8e-3);
    asr_pool_destroy(pool);
}

static void test_refuses_other_heads(void **state) {
    (void)state;
    assert_int_equal(asr_nn_attn_bf16_ok(32), 0);
    assert_int_equal(asr_nn_attn_bf16_ok(128), 0);
}

int main(void) {
    const asr_isa_t *t = asr_isa();
    if (!asr_nn_attn_bf16_ok(DH)) {
        printf("test_nn_attn_amx: the kernel level is %s (%s); AMX-BF16 %s, tile permission %s, "
               "AVX512-BF16 %s: Not Run\n",
               asr_isa_level_name(t->level), t->why, t->amx_bf16 ? "yes" : "missing",
               t->amx_permitted ? "yes" : "missing", t->avx512_bf16 ? "yes" : "missing");
        return 76;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shapes),
        cmocka_unit_test(test_encoder_length),
        cmocka_unit_test(test_late_maximum),
        cmocka_unit_test(test_refuses_other_heads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
