/* Unit tests: the AVX-512 kernels (src/nn/kern_avx512.c) called directly, against the portable
 * references, on random inputs with tails (k not a multiple of 16/32/64, m = 1..8, odd column
 * ranges, padded leading dimensions), every weight type.
 *
 *   test_nn_avx512 [avx512|vnni|bf16|avxvnni]
 *
 * avx512 (default): float32/float16/bfloat16 weights through FMA, softmax, logsumexp, float16
 * conversions, int8 quantization of a row. vnni: int8 weights through VPDPBUSD, equal to the
 * reference bit for bit. bf16: bfloat16 weights through VDPBF16PS (hi/lo split activations).
 * avxvnni: int8 through VEX VPDPBUSD on ymm (AVX2 + AVX-VNNI, no AVX-512), bit for bit.
 * The CPU's features are read here (cpuid and XGETBV, not asr_isa(): the kernels are tested
 * whatever level the process would pick); a CPU without them prints the missing feature and
 * exits 76 (Not Run). Tolerances: float types 1e-5 of sum|a·w| against the double reference
 * (the same as the AVX2 kernels'); int8 exact; softmax 1e-6 absolute, logsumexp 1e-5·(1+|max|);
 * conversions and quantization exact. */
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
#include "nn/kern.h"

#ifdef ASR_NN_HAVE_AVX2_KERNELS
#include <cpuid.h>

static unsigned long long xgetbv0(void) {
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}

/* NULL when the CPU and OS run the feature set, else the name of what is missing */
static const char *missing(const char *what) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_OSXSAVE))
        return "OSXSAVE";
    if (!strcmp(what, "avxvnni")) {
        unsigned a1, b1, c1, d1;
        if ((xgetbv0() & 6) != 6)
            return "OS support for the AVX state (XCR0)";
        if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(b & (1u << 5)))
            return "avx2";
        if (!__get_cpuid_count(7, 1, &a1, &b1, &c1, &d1) || !(a1 & (1u << 4)))
            return "avx_vnni";
        return NULL;
    }
    if ((xgetbv0() & 0xe6) != 0xe6)
        return "OS support for the AVX-512 state (XCR0)";
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
        return "cpuid leaf 7";
    if (!(b & (1u << 16)))
        return "avx512f";
    if (!(b & (1u << 30)))
        return "avx512bw";
    if (!(b & (1u << 31)))
        return "avx512vl";
    if (!(b & (1u << 17)))
        return "avx512dq";
    if (!strcmp(what, "vnni") && !(c & (1u << 11)))
        return "avx512_vnni";
    if (!strcmp(what, "bf16")) {
        unsigned a1, b1, c1, d1;
        if (!__get_cpuid_count(7, 1, &a1, &b1, &c1, &d1) || !(a1 & (1u << 5)))
            return "avx512_bf16";
    }
    return NULL;
}
#endif

static float frand(unsigned *seed) {
    *seed = *seed * 1103515245u + 12345u;
    return ((float)((*seed >> 8) & 0xffff) / 32768.0f) - 1.0f;
}

static const char *g_what = "avx512";

enum { MAXM = 8, MAXN = 70, MAXK = 1290, LDA = MAXK + 3 };
static const int g_ks[] = {1, 15, 16, 17, 31, 33, 63, 64, 65, 100, 129, 384, 1283};

#ifdef ASR_NN_HAVE_AVX2_KERNELS
/* float32, float16 and bfloat16 weights (bf16: through the FMA path, or VDPBF16PS when dp) */
static void check_float_types(int dp) {
    unsigned seed = 7;
    float *a = malloc(sizeof(float) * MAXM * LDA), *wf = malloc(sizeof(float) * MAXN * LDA);
    uint16_t *wh = malloc(2 * MAXN * LDA), *wb = malloc(2 * MAXN * LDA);
    float *bias = malloc(sizeof(float) * MAXN), *c = malloc(sizeof(float) * MAXM * (MAXN + 5));
    float *r = malloc(sizeof(float) * MAXM * (MAXN + 5));
    double worst[3] = {0, 0, 0};
    for (size_t ki = 0; ki < sizeof g_ks / sizeof *g_ks; ki++) {
        const int k = g_ks[ki], ldw = k + (int)(ki % 3), n = MAXN, ldc = MAXN + 5;
        for (int j = 0; j < n; j++)
            for (int t = 0; t < ldw; t++) { /* float16 values in [-2, 2], exact in every type */
                seed = seed * 1103515245u + 12345u;
                uint16_t h =
                    (uint16_t)(((seed >> 16) & 0x8000) | (((seed >> 8) % 0x4000) + 0x0400));
                wh[j * ldw + t] = h;
                wf[j * ldw + t] = asr_nn_f16_to_f32(h);
                wb[j * ldw + t] = asr_nn_f32_to_bf16(asr_nn_f16_to_f32(h) * 0.75f);
            }
        for (int j = 0; j < n; j++)
            bias[j] = frand(&seed);
        asr_wmat_t W[3] = {
            {ASR_W_F32, wf, NULL, ldw}, {ASR_W_F16, wh, NULL, ldw}, {ASR_W_BF16, wb, NULL, ldw}};
        for (int m = 1; m <= MAXM; m++) {
            for (int i = 0; i < m * LDA; i++)
                a[i] = frand(&seed) * 3.0f;
            a[0] = 1e-30f; /* tiny and large magnitudes in one row */
            if (k > 2)
                a[2] = 300.0f;
            const int j0 = (m * 3) % 7, j1 = n - (m % 4); /* odd ranges, every tile remainder */
            for (int ty = dp ? 2 : 0; ty < 3; ty++) {
                for (int i = 0; i < m * ldc; i++)
                    c[i] = 12345.0f;
                if (dp)
                    asr__k_linear_rows_bf16dp_avx512(a, LDA, NULL, &W[ty], ty == 1 ? NULL : bias, c,
                                                     ldc, m, j0, j1, k);
                else
                    asr__k_linear_rows_avx512(a, LDA, NULL, &W[ty], ty == 1 ? NULL : bias, c, ldc,
                                              m, j0, j1, k);
                asr_nn_linear_w_ref(a, LDA, &W[ty], ty == 1 ? NULL : bias, r, ldc, m, n, k);
                for (int i = 0; i < m; i++)
                    for (int j = 0; j < ldc; j++) {
                        float got = c[i * ldc + j];
                        if (j < j0 || j >= j1) {
                            if (got != 12345.0f)
                                fail_msg("type %d k=%d m=%d: column %d outside [%d, %d) written",
                                         ty, k, m, j, j0, j1);
                            continue;
                        }
                        double mag = 1.0;
                        for (int t = 0; t < k; t++)
                            mag +=
                                fabs((double)a[i * LDA + t] * asr_nn_f16_to_f32(wh[j * ldw + t]));
                        double e = fabs((double)got - r[i * ldc + j]) / mag;
                        worst[ty] = fmax(worst[ty], e);
                        if (!(e <= 1e-5))
                            fail_msg("type %d%s k=%d m=%d (%d,%d): %.9g vs %.9g (%.3g of sum|a·w|)",
                                     ty, dp ? " (VDPBF16PS)" : "", k, m, i, j, got, r[i * ldc + j],
                                     e);
                    }
            }
        }
    }
    printf("largest error / sum|a·w|:%s f32 %.3g, f16 %.3g, bf16 %.3g\n", dp ? " (VDPBF16PS)" : "",
           worst[0], worst[1], worst[2]);
    free(a), free(wf), free(wh), free(wb), free(bias), free(c), free(r);
}

static void test_linear_float(void **state) {
    (void)state;
    check_float_types(0);
}

static void test_linear_bf16dp(void **state) {
    (void)state;
    check_float_types(1);
}

/* int8: exact, including weights of -128 (the reference's exact integer sum) and |q| = 127;
 * through VPDPBUSD on zmm (AVX512-VNNI) or on ymm (AVX-VNNI) */
static void check_i8(int ymm) {
    unsigned seed = 3;
    enum { KI = 5120 + 77 };
    const int ks[] = {1, 31, 63, 64, 65, 127, 129, 1280, 1283, 5120, 5121};
    int8_t *q = malloc((size_t)MAXM * KI), *w = malloc((size_t)MAXN * KI);
    uint8_t *qabs = malloc((size_t)MAXM * KI);
    float *s = malloc(sizeof(float) * MAXM), *ws = malloc(sizeof(float) * MAXN);
    float *bias = malloc(sizeof(float) * MAXN);
    float *c = malloc(sizeof(float) * MAXM * MAXN), *r = malloc(sizeof(float) * MAXM * MAXN);
    for (size_t ki = 0; ki < sizeof ks / sizeof *ks; ki++) {
        const int k = ks[ki], ldw = k + (int)(ki % 2) * 5, ldq = k + 3;
        for (int i = 0; i < MAXN * ldw; i++) {
            seed = seed * 1103515245u + 12345u;
            w[i] = (int8_t)(seed >> 24);
        }
        if (ki % 3 == 0) /* rows of extremes: the largest sums */
            for (int t = 0; t < k; t++)
                w[t] = -128, w[ldw + t] = 127;
        for (int j = 0; j < MAXN; j++)
            ws[j] = 0.001f + (frand(&seed) + 1.0f) * 0.01f, bias[j] = frand(&seed);
        for (int m = 1; m <= MAXM; m++) {
            for (int i = 0; i < m * ldq; i++) {
                seed = seed * 1103515245u + 12345u;
                int v = (int)((seed >> 8) % 255) - 127;
                q[i] = (int8_t)v, qabs[i] = (uint8_t)abs(v);
            }
            if (ki % 3 == 0)
                for (int t = 0; t < k; t++)
                    q[t] = -127;
            for (int i = 0; i < m; i++)
                s[i] = 0.02f + 0.001f * (float)i;
            asr_qact_t qa = {q, qabs, s, ldq};
            const int j0 = m % 5, j1 = MAXN - (m * 7) % 11;
            asr_wmat_t W = {ASR_W_I8, w, ws, ldw};
            for (int b = 0; b < 2; b++) {
                memset(c, 0, sizeof(float) * MAXM * MAXN);
                memset(r, 0, sizeof(float) * MAXM * MAXN);
                if (ymm)
                    asr__k_linear_rows_i8_avxvnni(&qa, &W, b ? bias : NULL, c, MAXN, m, j0, j1, k);
                else
                    asr__k_linear_rows_i8_avx512vnni(&qa, &W, b ? bias : NULL, c, MAXN, m, j0, j1,
                                                     k);
                asr__k_linear_rows_i8(&qa, &W, b ? bias : NULL, r, MAXN, m, j0, j1, k);
                if (memcmp(c, r, sizeof(float) * MAXM * MAXN) != 0)
                    for (int i = 0; i < MAXM * MAXN; i++)
                        if (memcmp(&c[i], &r[i], sizeof(float)))
                            fail_msg("int8 k=%d m=%d bias %d at (%d,%d): %.9g vs %.9g", k, m, b,
                                     i / MAXN, i % MAXN, c[i], r[i]);
            }
        }
    }
    free(q), free(w), free(qabs), free(s), free(ws), free(bias), free(c), free(r);
}

static void test_linear_i8(void **state) {
    (void)state;
    check_i8(0);
}

static void test_linear_i8_avxvnni(void **state) {
    (void)state;
    check_i8(1);
}

/* softmax, logsumexp, float16 conversions, the quantization of a row */
static void test_row_kernels(void **state) {
    (void)state;
    unsigned seed = 9;
    enum { N = 51866 + 16 };
    float *x = malloc(sizeof(float) * N), *y = malloc(sizeof(float) * N);
    uint16_t *h = malloc(2 * N), *h2 = malloc(2 * N);
    const int ns[] = {1, 2, 15, 16, 17, 33, 100, 1500, 51866};
    for (size_t ni = 0; ni < sizeof ns / sizeof *ns; ni++) {
        const int n = ns[ni];
        for (int i = 0; i < n; i++)
            x[i] = y[i] = frand(&seed) * 20.0f;
        x[n] = y[n] = 777.0f; /* past the end: untouched */
        asr__k_softmax_row_avx512(x, n, 1.0f);
        asr_nn_softmax_row_ref(y, n);
        double sum = 0;
        for (int i = 0; i < n; i++) {
            if (!(fabs((double)x[i] - y[i]) < 1e-6))
                fail_msg("softmax n=%d [%d]: %g vs %g", n, i, x[i], y[i]);
            sum += x[i];
        }
        assert_true(fabs(sum - 1.0) < 1e-5);
        assert_true(x[n] == 777.0f);
        /* scale applied before the exponential */
        for (int i = 0; i < n; i++)
            x[i] = frand(&seed) * 4.0f, y[i] = x[i] * 0.125f;
        asr__k_softmax_row_avx512(x, n, 0.125f);
        asr_nn_softmax_row_ref(y, n);
        for (int i = 0; i < n; i++)
            assert_true(fabs((double)x[i] - y[i]) < 1e-6);
        /* logsumexp */
        double mx = -1e30, se = 0;
        for (int i = 0; i < n; i++)
            x[i] = frand(&seed) * 30.0f, mx = fmax(mx, x[i]);
        for (int i = 0; i < n; i++)
            se += exp(x[i] - mx);
        double lse = asr__k_logsumexp_avx512(x, n);
        if (!(fabs(lse - (mx + log(se))) < 1e-5 * (1 + fabs(mx))))
            fail_msg("logsumexp n=%d: %.9g vs %.9g", n, lse, mx + log(se));
        /* float16 both ways: the scalar conversions' exact values */
        for (int i = 0; i < n; i++)
            x[i] = frand(&seed) * (i % 3 == 0 ? 70000.0f : i % 3 == 1 ? 1e-6f : 3.0f);
        h[n] = h2[n] = 0xabcd;
        asr__k_f2h_n_avx512(x, h, (size_t)n);
        asr_nn_f2h_n_ref(x, h2, (size_t)n);
        assert_memory_equal(h, h2, 2 * ((size_t)n + 1));
        y[n] = 777.0f;
        asr__k_h2f_n_avx512(h, y, (size_t)n);
        for (int i = 0; i < n; i++)
            if (memcmp(&y[i], &(float){asr_nn_f16_to_f32(h[i])}, sizeof(float)))
                fail_msg("h2f n=%d [%d]: %g vs %g", n, i, y[i], asr_nn_f16_to_f32(h[i]));
        assert_true(y[n] == 777.0f);
        /* quantization: the scalar definition's numbers (max|x|/127, lrintf, clamp ±127) */
        int8_t *q = (int8_t *)h, *qr = (int8_t *)h2;
        uint8_t qa[1600], qar[1600];
        const int kq = n < 1600 ? n : 1600;
        for (int i = 0; i < kq; i++)
            x[i] = frand(&seed) * 5.0f;
        if (ni == 3)
            memset(x, 0, sizeof(float) * (size_t)kq); /* all zero: scale 1 */
        float sv = asr__k_quantize_row_avx512(x, kq, q, qa);
        float m2 = 0.0f;
        for (int i = 0; i < kq; i++)
            m2 = fabsf(x[i]) > m2 ? fabsf(x[i]) : m2;
        float sr = m2 > 0.0f ? m2 / 127.0f : 1.0f;
        asr__nn_quantize_span(x, 0, kq, 1.0f / sr, qr, qar);
        assert_true(sv == sr);
        assert_memory_equal(q, qr, (size_t)kq);
        assert_memory_equal(qa, qar, (size_t)kq);
    }
    free(x), free(y), free(h), free(h2);
}

/* x += y, AVX-512 (masked tails) and AVX2 (8 wide, scalar tail): the scalar sums bit for bit,
 * nothing past n written */
static void test_add(void **state) {
    (void)state;
    unsigned seed = 11;
    float x[1100], x2[1100], y[1100], r[1100];
    const int ns[] = {0, 1, 7, 8, 9, 15, 16, 17, 33, 1000};
    for (size_t ni = 0; ni < sizeof ns / sizeof *ns; ni++) {
        const int n = ns[ni];
        for (int i = 0; i < n + 1; i++)
            x[i] = x2[i] = r[i] = frand(&seed) * 10.0f, y[i] = frand(&seed);
        for (int i = 0; i < n; i++)
            r[i] += y[i];
        asr__k_add_avx512(x, y, (size_t)n);
        asr__k_add_avx2(x2, y, (size_t)n);
        assert_memory_equal(x, r, sizeof(float) * (size_t)(n + 1));
        assert_memory_equal(x2, r, sizeof(float) * (size_t)(n + 1));
    }
}

/* the dispatching entry points pick these kernels when asr_isa()'s level is AVX512 or above */
static void test_dispatch(void **state) {
    (void)state;
    const asr_isa_t *t = asr_isa();
    int x = asr__nn_use_avx512();
    printf("asr_isa: level %s (%s); nn kernels: %s\n", asr_isa_level_name(t->level), t->why,
           asr_nn_simd_name());
    if (t->level >= ASR_ISA_AVX512) {
        assert_true(x & ASR_NN_AVX512);
        assert_int_equal(!!(x & ASR_NN_AVX512_VNNI), t->avx512_vnni);
        assert_int_equal(!!(x & ASR_NN_AVX512_BF16), t->avx512_bf16);
    } else {
        assert_int_equal(x, 0);
    }
}
#endif

int main(int argc, char **argv) {
#ifndef ASR_NN_HAVE_AVX2_KERNELS
    (void)argc, (void)argv;
    printf("test_nn_avx512: not an x86-64 build: the AVX-512 kernels do not exist here\n");
    return 76;
#else
    if (argc > 1)
        g_what = argv[1];
    if (strcmp(g_what, "avx512") && strcmp(g_what, "vnni") && strcmp(g_what, "bf16") &&
        strcmp(g_what, "avxvnni")) {
        fprintf(stderr, "usage: %s [avx512|vnni|bf16|avxvnni]\n", argv[0]);
        return 2;
    }
    const char *miss = missing(g_what);
    if (miss) {
        printf("test_nn_avx512 %s: this CPU lacks %s: Not Run\n", g_what, miss);
        return 76;
    }
    const struct CMUnitTest base[] = {
        cmocka_unit_test(test_linear_float),
        cmocka_unit_test(test_row_kernels),
        cmocka_unit_test(test_add),
        cmocka_unit_test(test_dispatch),
    };
    const struct CMUnitTest vnni[] = {cmocka_unit_test(test_linear_i8)};
    const struct CMUnitTest bf16[] = {cmocka_unit_test(test_linear_bf16dp)};
    const struct CMUnitTest avxvnni[] = {cmocka_unit_test(test_linear_i8_avxvnni)};
    if (!strcmp(g_what, "avxvnni"))
        return cmocka_run_group_tests_name("avx_vnni", avxvnni, NULL, NULL);
    if (!strcmp(g_what, "vnni"))
        return cmocka_run_group_tests_name("avx512_vnni", vnni, NULL, NULL);
    if (!strcmp(g_what, "bf16"))
        return cmocka_run_group_tests_name("avx512_bf16", bf16, NULL, NULL);
    return cmocka_run_group_tests_name("avx512", base, NULL, NULL);
#endif
}
