/* nn: the decoder's small-m kernels in AVX2 + FMA + F16C intrinsics (x86-64 only; vmath.c
 * dispatches here at run time when the CPU has them). Register-blocked tiles of MR rows × NR
 * weight rows keep every accumulator in a register; weights are converted from float16/bfloat16
 * as they are loaded (one vcvtph2ps per 8), int8 products go through vpmaddubsw/vpmaddwd.
 * The portable copies in vmath_body.h and the scalar reference in ops.c compute the same sums. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#include <math.h>
#include <stdint.h>

#include "nn/kern.h"

#define TGT __attribute__((target("avx2,fma,f16c")))
#define INL static inline __attribute__((always_inline)) TGT

/* rows taken at once: up to 6 (the largest tile), else split in two near halves (7 -> 4 + 3) */
/* rows per kernel call: all of up to 6, two near-halves of 7-12, else 6 (a prompt's 200 rows) */
static inline int row_block(int rem) { return rem <= 6 ? rem : rem <= 12 ? (rem + 1) / 2 : 6; }

INL float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

INL int32_t hsum8i(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

/* 8 weights of type `type` from p (element offset t), as float32 */
INL __m256 load_w(const void *p, size_t t, int type) {
    if (type == ASR_W_F32)
        return _mm256_loadu_ps((const float *)p + t);
    __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)p + t));
    if (type == ASR_W_F16)
        return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16)); /* bf16 */
}

INL float scalar_w(const void *p, size_t t, int type) {
    if (type == ASR_W_F32)
        return ((const float *)p)[t];
    uint16_t h = ((const uint16_t *)p)[t];
    if (type == ASR_W_F16)
        return _cvtsh_ss(h);
    return asr_nn_bf16_to_f32(h);
}

/* Asks for the next tile's weight rows while this one computes (the decoder streams weights from
 * memory: the hardware prefetcher alone leaves the cores waiting at the start of each row). */
INL void prefetch_rows(const void *w, int type, size_t first, int ldw, int nr, int k) {
    const size_t el = type == ASR_W_F32 ? 4 : type == ASR_W_I8 ? 1 : 2;
    const char *p = (const char *)w + first * el;
    for (int q = 0; q < nr; q++)
        for (size_t off = 0; off < (size_t)k * el; off += 64)
            _mm_prefetch(p + (size_t)q * ldw * el + off, _MM_HINT_T0);
}

/* One tile: rows [0, MR) of a × weight rows [j, j + NR) of type T. A macro, so that every
 * instantiation declares exactly MR×NR accumulators (GCC keeps small arrays in registers only). */
#define UNROLL _Pragma("GCC unroll 8")
#define TILE_F(T, MR, NR)                                                                          \
    do {                                                                                           \
        __m256 acc[MR][NR];                                                                        \
        UNROLL for (int i = 0; i < MR; i++) UNROLL for (int q = 0; q < NR; q++) acc[i][q] =        \
            _mm256_setzero_ps();                                                                   \
        for (int t = 0; t < kv; t += 8) {                                                          \
            UNROLL for (int q = 0; q < NR; q++) {                                                  \
                __m256 wv = load_w(w, (size_t)(j + q) * ldw + t, T);                               \
                UNROLL for (int i = 0; i < MR; i++) acc[i][q] =                                    \
                    _mm256_fmadd_ps(wv, _mm256_loadu_ps(a + (size_t)i * lda + t), acc[i][q]);      \
            }                                                                                      \
        }                                                                                          \
        UNROLL for (int i = 0; i < MR; i++) UNROLL for (int q = 0; q < NR; q++) {                  \
            float s_ = hsum8(acc[i][q]);                                                           \
            for (int t = kv; t < k; t++)                                                           \
                s_ += a[(size_t)i * lda + t] * scalar_w(w, (size_t)(j + q) * ldw + t, T);          \
            c[(size_t)i * ldc + j + q] = s_ + (bias ? bias[j + q] : 0.0f);                         \
        }                                                                                          \
    } while (0)

/* rows [0, MR) for weight rows [j0, j1), NR at a time, then one at a time: one function per
 * (type, MR, NR), so register allocation sees one tile shape at a time */
#define DEF_ROWS_F(TN, T, MR, NR)                                                                  \
    TGT __attribute__((noinline)) static void rows_##TN##_##MR(                                    \
        const float *a, int lda, const void *w, int ldw, const float *bias, float *c, int ldc,     \
        int j0, int j1, int k) {                                                                   \
        const int kv = k & ~7;                                                                     \
        int j = j0;                                                                                \
        for (; j + NR <= j1; j += NR) {                                                            \
            if (j + 2 * NR <= j1)                                                                  \
                prefetch_rows(w, T, (size_t)(j + NR) * ldw, ldw, NR, k);                           \
            TILE_F(T, MR, NR);                                                                     \
        }                                                                                          \
        for (; j < j1; j++)                                                                        \
            TILE_F(T, MR, 1);                                                                      \
    }
/* the tiles of 1..6 rows of one weight type, indexed by rows - 1 */
typedef void (*rows_fn)(const float *a, int lda, const void *w, int ldw, const float *bias,
                        float *c, int ldc, int j0, int j1, int k);
#define DEF_ROWS_TYPE(TN, T)                                                                       \
    DEF_ROWS_F(TN, T, 1, 4)                                                                        \
    DEF_ROWS_F(TN, T, 2, 4)                                                                        \
    DEF_ROWS_F(TN, T, 3, 4)                                                                        \
    DEF_ROWS_F(TN, T, 4, 3)                                                                        \
    DEF_ROWS_F(TN, T, 5, 2)                                                                        \
    DEF_ROWS_F(TN, T, 6, 2)                                                                        \
    static rows_fn const rows_##TN[6] = {rows_##TN##_1, rows_##TN##_2, rows_##TN##_3,              \
                                         rows_##TN##_4, rows_##TN##_5, rows_##TN##_6};
DEF_ROWS_TYPE(f32, ASR_W_F32)
DEF_ROWS_TYPE(f16, ASR_W_F16)
DEF_ROWS_TYPE(bf16, ASR_W_BF16)

/* int8: sum_t q_a[t]·q_w[t] as |q_a| (unsigned) × (q_w with q_a's sign), pairs summed by
 * vpmaddubsw (at most 2·127·127, no saturation) and widened to int32 by vpmaddwd. */
INL void tile_i8(const asr_qact_t *qa, const int8_t *w, const float *ws, int ldw, const float *bias,
                 float *c, int ldc, int j, int k, const int MR, const int NR) {
    __m256i acc[6][2];
    const __m256i ones = _mm256_set1_epi16(1);
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++)
#pragma GCC unroll 8
        for (int q = 0; q < NR; q++)
            acc[i][q] = _mm256_setzero_si256();
    const int kv = k & ~31;
    for (int t = 0; t < kv; t += 32) {
        __m256i wv[2];
#pragma GCC unroll 8
        for (int q = 0; q < NR; q++)
            wv[q] = _mm256_loadu_si256((const __m256i *)(w + (size_t)(j + q) * ldw + t));
#pragma GCC unroll 8
        for (int i = 0; i < MR; i++) {
            __m256i av = _mm256_loadu_si256((const __m256i *)(qa->q + (size_t)i * qa->ld + t));
            __m256i ab = _mm256_loadu_si256((const __m256i *)(qa->qabs + (size_t)i * qa->ld + t));
#pragma GCC unroll 8
            for (int q = 0; q < NR; q++) {
                __m256i p = _mm256_maddubs_epi16(ab, _mm256_sign_epi8(wv[q], av));
                acc[i][q] = _mm256_add_epi32(acc[i][q], _mm256_madd_epi16(p, ones));
            }
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++)
#pragma GCC unroll 8
        for (int q = 0; q < NR; q++) {
            int32_t s = hsum8i(acc[i][q]);
            const int8_t *wr = w + (size_t)(j + q) * ldw;
            for (int t = kv; t < k; t++)
                s += (int32_t)qa->q[(size_t)i * qa->ld + t] * wr[t];
            c[(size_t)i * ldc + j + q] =
                (float)s * qa->s[i] * ws[j + q] + (bias ? bias[j + q] : 0.0f);
        }
}

INL void rows_i8(const asr_qact_t *qa, const int8_t *w, const float *ws, int ldw, const float *bias,
                 float *c, int ldc, int j0, int j1, int k, const int MR) {
    int j = j0;
    for (; j + 2 <= j1; j += 2) {
        if (j + 4 <= j1)
            prefetch_rows(w, ASR_W_I8, (size_t)(j + 2) * ldw, ldw, 2, k);
        tile_i8(qa, w, ws, ldw, bias, c, ldc, j, k, MR, 2);
    }
    for (; j < j1; j++)
        tile_i8(qa, w, ws, ldw, bias, c, ldc, j, k, MR, 1);
}

typedef void (*rows_i8_fn)(const asr_qact_t *qa, const int8_t *w, const float *ws, int ldw,
                           const float *bias, float *c, int ldc, int j0, int j1, int k);
#define DEF_ROWS_I8(MR)                                                                            \
    TGT __attribute__((noinline)) static void rows_i8_##MR(                                        \
        const asr_qact_t *qa, const int8_t *w, const float *ws, int ldw, const float *bias,        \
        float *c, int ldc, int j0, int j1, int k) {                                                \
        rows_i8(qa, w, ws, ldw, bias, c, ldc, j0, j1, k, MR);                                      \
    }
DEF_ROWS_I8(1)
DEF_ROWS_I8(2)
DEF_ROWS_I8(3)
DEF_ROWS_I8(4)
DEF_ROWS_I8(5)
DEF_ROWS_I8(6)
static rows_i8_fn const rows_i8_tab[6] = {rows_i8_1, rows_i8_2, rows_i8_3,
                                          rows_i8_4, rows_i8_5, rows_i8_6};

TGT void asr__k_linear_rows_avx2(const float *a, int lda, const asr_qact_t *qa, const asr_wmat_t *w,
                                 const float *bias, float *c, int ldc, int m, int j0, int j1,
                                 int k) {
    for (int r = 0; r < m;) {
        int rem = m - r;
        if (w->type == ASR_W_I8) {
            int mr = row_block(rem); /* 5 beams: one pass over the weights */
            asr_qact_t q = {qa->q + (size_t)r * qa->ld, qa->qabs + (size_t)r * qa->ld, qa->s + r,
                            qa->ld};
            rows_i8_tab[mr - 1](&q, w->data, w->scale, w->ld, bias, c + (size_t)r * ldc, ldc, j0,
                                j1, k);
            r += mr;
        } else {
            int mr = row_block(rem);
            const rows_fn *tab = w->type == ASR_W_F16    ? rows_f16
                                 : w->type == ASR_W_BF16 ? rows_bf16
                                                         : rows_f32;
            tab[mr - 1](a + (size_t)r * lda, lda, w->data, w->ld, bias, c + (size_t)r * ldc, ldc,
                        j0, j1, k);
            r += mr;
        }
    }
}

/* c[i][:] = sum_j p[i][j] · v[j][:] for MR rows at once (each row of v is read once for all of
 * them), 16 columns (two vectors) at a time, then 8, then single columns. */
#define NN_PF 8 /* rows of v ahead (strided rows: the hardware prefetcher does not follow) */
#define ELSZ(T) ((T) == ASR_W_F32 ? 4 : 2)
#define NN_TILE(T, MR, NV)                                                                         \
    do {                                                                                           \
        __m256 acc[MR][NV];                                                                        \
        UNROLL for (int r = 0; r < MR; r++) UNROLL for (int q = 0; q < NV; q++) acc[r][q] =        \
            _mm256_setzero_ps();                                                                   \
        for (int j = 0; j < ctx; j++) {                                                            \
            if (j + NN_PF < ctx)                                                                   \
                _mm_prefetch((const char *)v + ((size_t)(j + NN_PF) * ldv + t) * ELSZ(T),          \
                             _MM_HINT_T0);                                                         \
            if (t + 8 * NV < n) /* the same row of the next tile */                                \
                _mm_prefetch((const char *)v + ((size_t)j * ldv + t + 8 * NV) * ELSZ(T),           \
                             _MM_HINT_T0);                                                         \
            __m256 vv[NV];                                                                         \
            UNROLL for (int q = 0; q < NV; q++) vv[q] = load_w(v, (size_t)j * ldv + t + 8 * q, T); \
            UNROLL for (int r = 0; r < MR; r++) {                                                  \
                __m256 pb = _mm256_broadcast_ss(p + (size_t)r * ldp + j);                          \
                UNROLL for (int q = 0; q < NV; q++) acc[r][q] =                                    \
                    _mm256_fmadd_ps(pb, vv[q], acc[r][q]);                                         \
            }                                                                                      \
        }                                                                                          \
        UNROLL for (int r = 0; r < MR; r++) UNROLL for (int q = 0; q < NV; q++)                    \
            _mm256_storeu_ps(c + (size_t)r * ldc + t + 8 * q, acc[r][q]);                          \
    } while (0)

#define DEF_NN_ROWS(TN, T, MR)                                                                     \
    TGT __attribute__((noinline)) static void nn_##TN##_##MR(                                      \
        const float *p, int ldp, const void *v, int ldv, float *c, int ldc, int n, int ctx) {      \
        int t = 0;                                                                                 \
        for (; t + 16 <= n; t += 16)                                                               \
            NN_TILE(T, MR, 2);                                                                     \
        for (; t + 8 <= n; t += 8)                                                                 \
            NN_TILE(T, MR, 1);                                                                     \
        for (; t < n; t++)                                                                         \
            for (int r = 0; r < MR; r++) {                                                         \
                float s_ = 0.0f;                                                                   \
                for (int j = 0; j < ctx; j++)                                                      \
                    s_ += p[(size_t)r * ldp + j] * scalar_w(v, (size_t)j * ldv + t, T);            \
                c[(size_t)r * ldc + t] = s_;                                                       \
            }                                                                                      \
    }
typedef void (*nn_fn)(const float *p, int ldp, const void *v, int ldv, float *c, int ldc, int n,
                      int ctx);
#define DEF_NN_TYPE(TN, T)                                                                         \
    DEF_NN_ROWS(TN, T, 1)                                                                          \
    DEF_NN_ROWS(TN, T, 2)                                                                          \
    DEF_NN_ROWS(TN, T, 3)                                                                          \
    DEF_NN_ROWS(TN, T, 4)                                                                          \
    DEF_NN_ROWS(TN, T, 5)                                                                          \
    DEF_NN_ROWS(TN, T, 6)                                                                          \
    static nn_fn const nn_##TN[6] = {nn_##TN##_1, nn_##TN##_2, nn_##TN##_3,                        \
                                     nn_##TN##_4, nn_##TN##_5, nn_##TN##_6};
DEF_NN_TYPE(f32, ASR_W_F32)
DEF_NN_TYPE(f16, ASR_W_F16)

INL void gemm_nn_rows(const nn_fn *tab, const float *p, int ldp, const void *v, int ldv, float *c,
                      int ldc, int m, int n, int ctx) {
    for (int i = 0; i < m;) {
        int mr = row_block(m - i);
        tab[mr - 1](p + (size_t)i * ldp, ldp, v, ldv, c + (size_t)i * ldc, ldc, n, ctx);
        i += mr;
    }
}

TGT void asr__k_gemm_nn_small_f32_avx2(const float *p, int ldp, const void *v, int ldv, float *c,
                                       int ldc, int m, int n, int ctx) {
    gemm_nn_rows(nn_f32, p, ldp, v, ldv, c, ldc, m, n, ctx);
}

TGT void asr__k_gemm_nn_small_f16_avx2(const float *p, int ldp, const void *v, int ldv, float *c,
                                       int ldc, int m, int n, int ctx) {
    gemm_nn_rows(nn_f16, p, ldp, v, ldv, c, ldc, m, n, ctx);
}

TGT void asr__k_h2f_n_avx2(const uint16_t *src, float *dst, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
    for (; i < n; i++)
        dst[i] = _cvtsh_ss(src[i]);
}

TGT void asr__k_f2h_n_avx2(const float *src, uint16_t *dst, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(dst + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++)
        dst[i] = asr_nn_f32_to_f16(src[i]);
}

/* e^x for 8 lanes: x = n·ln2 + r, |r| <= ln2/2, 2^n in the exponent bits, e^r by the degree-6
 * polynomial of vmath_body.h (same constants, relative error about 2e-7) */
INL __m256 exp8(__m256 x) {
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3f)), _mm256_set1_ps(88.7f));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    __m256 e = _mm256_fmadd_ps(_mm256_mul_ps(p, r), r, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i k = _mm256_slli_epi32(_mm256_cvtps_epi32(n), 23);
    return _mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(e), k));
}

INL float hmax8(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

INL float row_max(const float *x, int n) {
    int i = 0;
    __m256 mv = _mm256_set1_ps(-INFINITY);
    for (; i + 8 <= n; i += 8)
        mv = _mm256_max_ps(mv, _mm256_loadu_ps(x + i));
    float mx = hmax8(mv);
    for (; i < n; i++)
        mx = x[i] > mx ? x[i] : mx;
    return mx;
}

/* x = softmax(scale·x) in place */
TGT void asr__k_softmax_row_avx2(float *x, int n, float scale) {
    int i;
    float mx = row_max(x, n);
    const __m256 s = _mm256_set1_ps(scale), m = _mm256_set1_ps(mx * scale);
    __m256 sv = _mm256_setzero_ps();
    for (i = 0; i + 8 <= n; i += 8) {
        __m256 e = exp8(_mm256_fmsub_ps(_mm256_loadu_ps(x + i), s, m));
        _mm256_storeu_ps(x + i, e);
        sv = _mm256_add_ps(sv, e);
    }
    float sum = hsum8(sv);
    if (i < n) { /* tail through a padded vector */
        float tail[8];
        int r = n - i;
        for (int t = 0; t < 8; t++)
            tail[t] = t < r ? x[i + t] * scale - mx * scale : -INFINITY;
        _mm256_storeu_ps(tail, exp8(_mm256_loadu_ps(tail)));
        for (int t = 0; t < r; t++)
            x[i + t] = tail[t], sum += tail[t];
    }
    const __m256 inv = _mm256_set1_ps(1.0f / sum);
    for (i = 0; i + 8 <= n; i += 8)
        _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), inv));
    for (; i < n; i++)
        x[i] *= 1.0f / sum;
}

TGT float asr__k_logsumexp_avx2(const float *x, int n) {
    int i;
    float mx = row_max(x, n);
    if (mx == -INFINITY)
        return mx;
    const __m256 m = _mm256_set1_ps(mx);
    __m256 sv = _mm256_setzero_ps();
    for (i = 0; i + 8 <= n; i += 8)
        sv = _mm256_add_ps(sv, exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), m)));
    float sum = hsum8(sv);
    for (; i < n; i++) {
        float t[8] = {x[i] - mx, -INFINITY, -INFINITY, -INFINITY,
                      -INFINITY, -INFINITY, -INFINITY, -INFINITY};
        sum += _mm_cvtss_f32(_mm256_castps256_ps128(exp8(_mm256_loadu_ps(t))));
    }
    return mx + logf(sum);
}

/* q[t] = round(x[t] / s) (nearest even, as lrintf), s = max|x| / 127; |q| into qabs if non-NULL */
TGT void asr__k_add_avx2(float *x, const float *y, size_t n) {
    size_t t = 0;
    for (; t + 8 <= n; t += 8)
        _mm256_storeu_ps(x + t, _mm256_add_ps(_mm256_loadu_ps(x + t), _mm256_loadu_ps(y + t)));
    for (; t < n; t++)
        x[t] += y[t];
}

TGT float asr__k_quantize_row_avx2(const float *x, int k, int8_t *q, uint8_t *qabs) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 mv = _mm256_setzero_ps();
    int t = 0;
    for (; t + 8 <= k; t += 8)
        mv = _mm256_max_ps(mv, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + t)));
    float mx = hmax8(mv);
    for (; t < k; t++)
        mx = fabsf(x[t]) > mx ? fabsf(x[t]) : mx;
    float s = mx > 0.0f ? mx / 127.0f : 1.0f, inv = 1.0f / s;
    const __m256 vi = _mm256_set1_ps(inv);
    for (t = 0; t + 32 <= k; t += 32) {
        __m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + t), vi));
        __m256i i1 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + t + 8), vi));
        __m256i i2 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + t + 16), vi));
        __m256i i3 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + t + 24), vi));
        __m256i w01 = _mm256_packs_epi32(i0, i1), w23 = _mm256_packs_epi32(i2, i3);
        __m256i b = _mm256_packs_epi16(w01, w23); /* lanes interleaved by 128-bit halves */
        b = _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        b = _mm256_max_epi8(b, _mm256_set1_epi8(-127));
        _mm256_storeu_si256((__m256i *)(q + t), b);
        if (qabs)
            _mm256_storeu_si256((__m256i *)(qabs + t), _mm256_abs_epi8(b));
    }
    asr__nn_quantize_span(x, t, k, inv, q, qabs);
    return s;
}
#endif
