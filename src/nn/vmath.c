/* nn: vectorised row kernels (softmax, GELU) with a branch-free exp and erf, written with GCC
 * vector types so one source compiles to AVX-512, AVX2 or SSE2 (chosen at run time through
 * target_clones on x86-64) and to NEON or scalar code elsewhere. The scalar references in ops.c
 * (libm expf/erff) are the oracles of tests/unit/test_nn.c.
 *
 * exp: x = n·ln2 + r with |r| <= ln2/2, 2^n built in the exponent bits, e^r from Cephes' degree-6
 * polynomial for expf (relative error about 2e-7 over the float range). erf: Abramowitz & Stegun
 * 7.1.26 (absolute error below 1.5e-7). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nn/isa.h"
#include "nn/kern.h"
#ifdef ASR_NN_HAVE_AVX2_KERNELS
#include <cpuid.h>
#endif

#define W 16
typedef float vf __attribute__((vector_size(W * 4)));
typedef int32_t vi __attribute__((vector_size(W * 4)));
#if defined(__clang__) && __clang_major__ < 15
#define ASR_HAVE_FLOAT16 0
#else
#define ASR_HAVE_FLOAT16 1
typedef _Float16 vh __attribute__((vector_size(W * 2)));
#endif
#define INLINE static inline __attribute__((always_inline))
/* The helpers are always inlined: their vector ABI never shows. */
#pragma GCC diagnostic ignored "-Wpsabi"

#define CAT2(a, b) a##b
#define CAT(a, b) CAT2(a, b)
#define KFN(name) CAT(name, SUF)
#define H(name) CAT(name, SUF)

/* Portable copy (SSE2 on x86-64, NEON or scalar elsewhere). */
#define SUF _base
#include "nn/vmath_body.h"
#undef SUF

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
/* AVX2 + FMA + F16C copy (Haswell and later, Zen), chosen at run time. */
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#define SUF _avx2
#define VMATH_SERVED_BY_INTRINSICS /* kern_avx2.c serves these on AVX2 */
/* its vectors 8 wide, one ymm register each (16-wide ones in pairs of ymm measured a third of
 * the speed: GELU over 3M values 4.1 ms, 8 wide 1.4 ms; the same per-lane operations) */
#undef W
#define W 8
typedef float vf8 __attribute__((vector_size(32)));
typedef int32_t vi8 __attribute__((vector_size(32)));
typedef _Float16 vh8 __attribute__((vector_size(16)));
#define vf vf8
#define vi vi8
#define vh vh8
#include "nn/vmath_body.h"
#undef vf
#undef vi
#undef vh
#undef W
#define W 16
#undef VMATH_SERVED_BY_INTRINSICS
#undef SUF
#pragma GCC pop_options
#define HAVE_AVX2_COPY 1
/* AVX-512 copy: the same operations in zmm registers (one instruction where the AVX2 copy needs
 * two ymm ones; the same results, FMA contraction being the compiler's in both) */
#pragma GCC push_options
#pragma GCC target("avx512f,avx512dq,avx2,fma,f16c")
#define SUF _avx512
#define VMATH_SERVED_BY_INTRINSICS /* kern_avx512.c serves these on AVX-512 */
#include "nn/vmath_body.h"
#undef VMATH_SERVED_BY_INTRINSICS
#undef SUF
#pragma GCC pop_options
#define HAVE_AVX512_COPY 1
#endif

static int use_avx2(void) {
#ifdef ASR_NN_HAVE_AVX2_KERNELS
    return asr_isa()->level >= ASR_ISA_AVX2; /* ASRD_ISA / ASRD_NO_SIMD: isa.c */
#else
    return 0;
#endif
}

int asr__nn_use_avx2(void) { return use_avx2(); }

/* ASR_NN_AVX512 bits, found once (asr_isa()'s level honours ASRD_ISA and ASRD_NO_SIMD) */
int asr__nn_use_avx512(void) {
#ifdef ASR_NN_HAVE_AVX2_KERNELS
    static int v = -1;
    int r = __atomic_load_n(&v, __ATOMIC_RELAXED);
    if (r < 0) {
        const asr_isa_t *t = asr_isa();
        r = 0;
        if (use_avx2() && t->level >= ASR_ISA_AVX512 && t->avx512f && t->avx512bw && t->avx512vl &&
            t->avx512dq)
            r = ASR_NN_AVX512 | (t->avx512_vnni ? ASR_NN_AVX512_VNNI : 0) |
                (t->avx512_bf16 ? ASR_NN_AVX512_BF16 : 0);
        __atomic_store_n(&v, r, __ATOMIC_RELAXED);
    }
    return r;
#else
    return 0;
#endif
}

#ifdef HAVE_AVX512_COPY
#define DISPATCH(name, ...)                                                                        \
    (asr__nn_use_avx512() ? name##_avx512(__VA_ARGS__)                                             \
     : use_avx2()         ? name##_avx2(__VA_ARGS__)                                               \
                          : name##_base(__VA_ARGS__))
#elif defined(HAVE_AVX2_COPY)
#define DISPATCH(name, ...) (use_avx2() ? name##_avx2(__VA_ARGS__) : name##_base(__VA_ARGS__))
#else
#define DISPATCH(name, ...) name##_base(__VA_ARGS__)
#endif

const char *asr_nn_simd_name(void) {
    static const char *const names[8] = {"avx2+fma+f16c", "avx512",          "avx512",
                                         "avx512+vnni",   "avx512",          "avx512+bf16",
                                         "avx512",        "avx512+vnni+bf16"};
    int x512 = asr__nn_use_avx512();
    if (x512)
        return names[x512];
    return !use_avx2() ? "portable" : asr_isa()->avx_vnni ? "avx2+fma+f16c+avx_vnni" : names[0];
}

void asr_nn_softmax_row_fast(float *x, int n, float scale) {
    ASR_NN_PICK3(asr__k_softmax_row_avx512, asr__k_softmax_row_avx2, asr_nn_softmax_row_fast_base,
                 x, n, scale);
}
float asr_nn_logsumexp(const float *x, int n) {
    return ASR_NN_PICK3(asr__k_logsumexp_avx512, asr__k_logsumexp_avx2, asr_nn_logsumexp_base, x,
                        n);
}
void asr_nn_gelu_fast(float *x, size_t n) { DISPATCH(asr_nn_gelu_fast, x, n); }
void asr_nn_exp_fast(const float *x, float *y, size_t n) { DISPATCH(asr_nn_exp_fast, x, y, n); }
static void linear_rows_portable(const float *a, int lda, const asr_qact_t *q, const asr_wmat_t *w,
                                 const float *bias, float *c, int ldc, int m, int j0, int j1,
                                 int k) {
    if (w->type == ASR_W_I8)
        asr__k_linear_rows_i8(q, w, bias, c, ldc, m, j0, j1, k);
    else
        asr__nn_linear_rows_w_base(a, lda, w, bias, c, ldc, m, j0, j1, k);
}
void asr__nn_linear_rows_w(const float *a, int lda, const asr_qact_t *q, const asr_wmat_t *w,
                           const float *bias, float *c, int ldc, int m, int j0, int j1, int k) {
#ifdef ASR_NN_HAVE_AVX2_KERNELS
    const int x512 = asr__nn_use_avx512();
    if (x512 && w->type != ASR_W_I8) { /* bfloat16 too: FMA measured faster than VDPBF16PS */
        asr__k_linear_rows_avx512(a, lda, q, w, bias, c, ldc, m, j0, j1, k);
        return;
    }
    if (x512 & ASR_NN_AVX512_VNNI) { /* int8 */
        asr__k_linear_rows_i8_avx512vnni(q, w, bias, c, ldc, m, j0, j1, k);
        return;
    }
    if (w->type == ASR_W_I8 && use_avx2() && asr_isa()->avx_vnni) { /* AVX2 level with AVX-VNNI */
        asr__k_linear_rows_i8_avxvnni(q, w, bias, c, ldc, m, j0, j1, k);
        return;
    }
#endif
    ASR_NN_PICK(asr__k_linear_rows_avx2, linear_rows_portable, a, lda, q, w, bias, c, ldc, m, j0,
                j1, k);
}
void asr__nn_linear_rows(const float *a, int lda, const float *w, int ldw, const float *bias,
                         float *c, int ldc, int m, int j0, int j1, int k) {
    asr_wmat_t wm = {ASR_W_F32, w, NULL, ldw};
    asr__nn_linear_rows_w(a, lda, NULL, &wm, bias, c, ldc, m, j0, j1, k);
}
void asr_nn_gemm_nn_small(const float *p, int ldp, const float *v, int ldv, float *c, int ldc,
                          int m, int n, int ctx) {
    ASR_NN_PICK(asr__k_gemm_nn_small_f32_avx2, asr_nn_gemm_nn_small_base, p, ldp, v, ldv, c, ldc, m,
                n, ctx);
}
void asr_nn_gemm_nn_small_h(const float *p, int ldp, const uint16_t *v, int ldv, float *c, int ldc,
                            int m, int n, int ctx) {
    ASR_NN_PICK(asr__k_gemm_nn_small_f16_avx2, asr_nn_gemm_nn_small_h_base, p, ldp, v, ldv, c, ldc,
                m, n, ctx);
}
void asr_nn_f2h_n(const float *src, uint16_t *dst, size_t n) {
    /* the zmm conversions measured no faster (f2h) or slower (h2f) than AVX2's (51866 values) */
    ASR_NN_PICK(asr__k_f2h_n_avx2, asr_nn_f2h_n_ref, src, dst, n);
}
void asr_nn_h2f_n(const uint16_t *src, float *dst, size_t n) {
    ASR_NN_PICK(asr__k_h2f_n_avx2, asr_nn_h2f_n_base, src, dst, n);
}
