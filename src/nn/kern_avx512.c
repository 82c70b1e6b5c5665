/* nn: the decoder's small-m kernels on AVX-512 (x86-64 only). Every function carries its own target
 * attribute, so the rest of the binary still runs on AVX2-only CPUs; vmath.c calls these only
 * when asr_isa() reports the level and the sub-feature (AVX-512 F/BW/VL/DQ; VNNI for int8, BF16 for
 * the bfloat16 dot products).
 *
 * Linear rows (c[i][j] = a[i]·w[j] + bias[j], m <= ASR_NN_SMALL_M rows, weight rows [j0, j1)):
 * register tiles of MR activation rows × NR weight rows, 16 floats per zmm, the k tail through
 * masked loads (no scalar loop), the next tile's weight rows prefetched while this one computes.
 * - float32 / float16 (vcvtph2ps) / bfloat16 (shift to float32): FMA, float32 sums.
 * - bfloat16 with VDPBF16PS: each activation is split into two bfloat16 numbers, hi = bf16(a) and
 *   lo = bf16(a - hi), so a = hi + lo to about 2^-17 relative (the products of bfloat16 pairs are
 *   exact in float32; the sums are float32): the result is within ~4e-6 of sum|a·w| of the float32
 *   product, like the FMA path, at two VDPBF16PS per 32 weights and row. Not dispatched: on a
 *   Xeon with AMX (bench/decoder_step, 2 threads) it was no faster than shift + FMA at m = 1 and
 *   half as fast at m = 8 (VDPBF16PS issues at half the FMA rate, and the split doubles it); kept
 *   tested and benched for CPUs where that differs.
 * - int8 with VPDPBUSD (u8 × s8 -> s32): the activations as unsigned q + 128, the weights as
 *   they are; sum q·w = sum (q + 128)·w - 128·sum w, with sum w from one more VPDPBUSD by ones per
 *   weight vector (shared by the MR rows). Every sum is an exact int32 (|q| <= 127: at most
 *   255·128·4 per lane and step), so the results equal asr__k_linear_rows_i8's bit for bit.
 *   asr__k_linear_rows_i8_avxvnni: the same on ymm with AVX-VNNI (no AVX-512 needed). */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "nn/kern.h"

#define TGT __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma,f16c")))
#define TGT_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")))
#define TGT_BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")))
#define INL static inline __attribute__((always_inline))
#define UNROLL _Pragma("GCC unroll 8")

/* the largest k of the VDPBF16PS path (its converted activations live on the stack) */
#define BF16DP_MAX_K 5120

/* lanes [0, n) of 16 (n may be > 16: all) */
INL __mmask16 mask16(int n) { return n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1u); }

/* 16 weights of type `type` at element offset t (lanes past `mask` read as 0, never touched) */
INL TGT __m512 load_w(const void *p, size_t t, int type, __mmask16 mask) {
    if (type == ASR_W_F32)
        return _mm512_maskz_loadu_ps(mask, (const float *)p + t);
    __m256i h = _mm256_maskz_loadu_epi16(mask, (const uint16_t *)p + t);
    if (type == ASR_W_F16)
        return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)); /* bf16 */
}

INL size_t elsize(int type) { return type == ASR_W_F32 ? 4 : type == ASR_W_I8 ? 1 : 2; }

/* The column loop every row kernel below shares: weight rows [j0, j1) NR at a time, the next
 * tile's rows prefetched (PF 1) while another full tile follows, then one at a time. TILE(MR, NR,
 * PF) computes the tile at column j. */
#define COLS_LOOP(TILE, MR, NR)                                                                    \
    do {                                                                                           \
        int j = j0;                                                                                \
        for (; j + 2 * NR <= j1; j += NR)                                                          \
            TILE(MR, NR, 1);                                                                       \
        for (; j + NR <= j1; j += NR)                                                              \
            TILE(MR, NR, 0);                                                                       \
        for (; j < j1; j++)                                                                        \
            TILE(MR, 1, 0);                                                                        \
    } while (0)

/* The drivers' row loop: blocks of up to 8 rows (ASR_NN_SMALL_M), the statement run with r (the
 * block's first row) and mr (its rows). */
#define ROW_BLOCKS(m, ...)                                                                         \
    for (int r = 0, mr; r < (m); r += mr) {                                                        \
        mr = row_block((m)-r);                                                                     \
        __VA_ARGS__;                                                                               \
    }

/* The float tile: rows [0, MR) of a × weight rows [j, j + NR). A macro so that each instantiation
 * declares exactly MR×NR accumulators (GCC keeps small arrays in registers only). pf: the first
 * element of the next tile's weight rows (prefetched one cache line per step), or NULL. */
#define TILE_F(MR, NR, PF)                                                                         \
    do {                                                                                           \
        __m512 acc[MR][NR];                                                                        \
        UNROLL for (int i = 0; i < MR; i++) UNROLL for (int q = 0; q < NR; q++) acc[i][q] =        \
            _mm512_setzero_ps();                                                                   \
        for (int t = 0; t < k; t += 16) {                                                          \
            const __mmask16 mk = mask16(k - t);                                                    \
            if (PF)                                                                                \
                UNROLL for (int q = 0; q < NR; q++) _mm_prefetch(                                  \
                    (const char *)w + ((size_t)(j + NR + q) * ldw + t) * elsize(type),             \
                    _MM_HINT_T0);                                                                  \
            UNROLL for (int q = 0; q < NR; q++) {                                                  \
                __m512 wv = load_w(w, (size_t)(j + q) * ldw + t, type, mk);                        \
                UNROLL for (int i = 0; i < MR; i++) acc[i][q] = _mm512_fmadd_ps(                   \
                    wv, _mm512_maskz_loadu_ps(mk, a + (size_t)i * lda + t), acc[i][q]);            \
            }                                                                                      \
        }                                                                                          \
        UNROLL for (int i = 0; i < MR; i++) UNROLL for (int q = 0; q < NR; q++)                    \
            c[(size_t)i * ldc + j + q] =                                                           \
                _mm512_reduce_add_ps(acc[i][q]) + (bias ? bias[j + q] : 0.0f);                     \
    } while (0)

typedef void (*rows_fn)(const float *a, int lda, const void *w, int ldw, const float *bias,
                        float *c, int ldc, int j0, int j1, int k);
#define DEF_ROWS_F(TN, T, MR, NR)                                                                  \
    TGT __attribute__((noinline)) static void rows_##TN##_##MR(                                    \
        const float *a, int lda, const void *w, int ldw, const float *bias, float *c, int ldc,     \
        int j0, int j1, int k) {                                                                   \
        const int type = T; /* a constant: load_w folds to one load */                             \
        COLS_LOOP(TILE_F, MR, NR);                                                                 \
    }
/* tiles: MR×NR accumulators + NR weight vectors + 1 activation vector within 32 registers */
#define DEF_ROWS_TYPE(TN, T)                                                                       \
    DEF_ROWS_F(TN, T, 1, 8)                                                                        \
    DEF_ROWS_F(TN, T, 2, 6)                                                                        \
    DEF_ROWS_F(TN, T, 3, 5)                                                                        \
    DEF_ROWS_F(TN, T, 4, 4)                                                                        \
    DEF_ROWS_F(TN, T, 5, 4)                                                                        \
    DEF_ROWS_F(TN, T, 6, 3)                                                                        \
    DEF_ROWS_F(TN, T, 7, 3)                                                                        \
    DEF_ROWS_F(TN, T, 8, 3)                                                                        \
    static rows_fn const rows_##TN[8] = {rows_##TN##_1, rows_##TN##_2, rows_##TN##_3,              \
                                         rows_##TN##_4, rows_##TN##_5, rows_##TN##_6,              \
                                         rows_##TN##_7, rows_##TN##_8};
DEF_ROWS_TYPE(f32, ASR_W_F32)
DEF_ROWS_TYPE(f16, ASR_W_F16)
DEF_ROWS_TYPE(bf16, ASR_W_BF16)

/* rows per kernel call: all of up to 8 (ASR_NN_SMALL_M), else 8 at a time */
INL int row_block(int rem) { return rem < 8 ? rem : 8; }

TGT void asr__k_linear_rows_avx512(const float *a, int lda, const asr_qact_t *qa,
                                   const asr_wmat_t *w, const float *bias, float *c, int ldc, int m,
                                   int j0, int j1, int k) {
    (void)qa;
    const rows_fn *tab = w->type == ASR_W_F16    ? rows_f16
                         : w->type == ASR_W_BF16 ? rows_bf16
                                                 : rows_f32;
    ROW_BLOCKS(m, tab[mr - 1](a + (size_t)r * lda, lda, w->data, w->ld, bias, c + (size_t)r * ldc,
                              ldc, j0, j1, k));
}

/* ---- bfloat16 weights with VDPBF16PS ---- */

/* hi/lo bfloat16 halves of MR rows of k activations, 32 per vector (pairs in weight order) */
#define TILE_BF(MR, NR, PF)                                                                        \
    do {                                                                                           \
        __m512 acc[MR][NR];                                                                        \
        UNROLL for (int i = 0; i < MR; i++) UNROLL for (int q = 0; q < NR; q++) acc[i][q] =        \
            _mm512_setzero_ps();                                                                   \
        for (int t = 0; t < k; t += 32) {                                                          \
            const __mmask32 mk = k - t >= 32 ? 0xffffffffu : (1u << (k - t)) - 1u;                 \
            if (PF)                                                                                \
                UNROLL for (int q = 0; q < NR; q++)                                                \
                    _mm_prefetch((const char *)(w + (size_t)(j + NR + q) * ldw + t), _MM_HINT_T0); \
            __m512i wv[NR];                                                                        \
            UNROLL for (int q = 0; q < NR; q++) wv[q] =                                            \
                _mm512_maskz_loadu_epi16(mk, w + (size_t)(j + q) * ldw + t);                       \
            UNROLL for (int i = 0; i < MR; i++) {                                                  \
                __m512bh hi = (__m512bh)_mm512_loadu_si512(ah + (size_t)i * lk + t);               \
                __m512bh lo = (__m512bh)_mm512_loadu_si512(al + (size_t)i * lk + t);               \
                UNROLL for (int q = 0; q < NR; q++) {                                              \
                    acc[i][q] = _mm512_dpbf16_ps(acc[i][q], hi, (__m512bh)wv[q]);                  \
                    acc[i][q] = _mm512_dpbf16_ps(acc[i][q], lo, (__m512bh)wv[q]);                  \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
        UNROLL for (int i = 0; i < MR; i++) UNROLL for (int q = 0; q < NR; q++)                    \
            c[(size_t)i * ldc + j + q] =                                                           \
                _mm512_reduce_add_ps(acc[i][q]) + (bias ? bias[j + q] : 0.0f);                     \
    } while (0)

typedef void (*rows_bf_fn)(const uint16_t *ah, const uint16_t *al, int lk, const uint16_t *w,
                           int ldw, const float *bias, float *c, int ldc, int j0, int j1, int k);
#define DEF_ROWS_BF(MR, NR)                                                                        \
    TGT_BF16 __attribute__((noinline)) static void rows_bfdp_##MR(                                 \
        const uint16_t *ah, const uint16_t *al, int lk, const uint16_t *w, int ldw,                \
        const float *bias, float *c, int ldc, int j0, int j1, int k) {                             \
        COLS_LOOP(TILE_BF, MR, NR);                                                                \
    }
DEF_ROWS_BF(1, 8)
DEF_ROWS_BF(2, 6)
DEF_ROWS_BF(3, 5)
DEF_ROWS_BF(4, 4)
DEF_ROWS_BF(5, 4)
DEF_ROWS_BF(6, 3)
DEF_ROWS_BF(7, 3)
DEF_ROWS_BF(8, 3)
static rows_bf_fn const rows_bfdp[8] = {rows_bfdp_1, rows_bfdp_2, rows_bfdp_3, rows_bfdp_4,
                                        rows_bfdp_5, rows_bfdp_6, rows_bfdp_7, rows_bfdp_8};

/* a (k floats) as bfloat16 hi = bf16(a) and lo = bf16(a - hi), zero-padded to lk (a multiple of
 * 32) */
TGT_BF16 static void split_bf16(const float *a, int k, int lk, uint16_t *hi, uint16_t *lo) {
    for (int t = 0; t < lk; t += 32) {
        __m512 x0 = _mm512_maskz_loadu_ps(mask16(k - t), a + t);
        __m512 x1 = t + 16 < k ? _mm512_maskz_loadu_ps(mask16(k - t - 16), a + t + 16)
                               : _mm512_setzero_ps();
        __m512bh h = _mm512_cvtne2ps_pbh(x1, x0); /* x0 in the low half */
        __m512i hw = (__m512i)h;
        /* hi back to float32: the low 16 and high 16 bfloat16 values, shifted */
        __m512 h0 = _mm512_castsi512_ps(
            _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_castsi512_si256(hw)), 16));
        __m512 h1 = _mm512_castsi512_ps(
            _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(hw, 1)), 16));
        __m512bh l = _mm512_cvtne2ps_pbh(_mm512_sub_ps(x1, h1), _mm512_sub_ps(x0, h0));
        _mm512_storeu_si512(hi + t, hw);
        _mm512_storeu_si512(lo + t, (__m512i)l);
    }
}

TGT_BF16 void asr__k_linear_rows_bf16dp_avx512(const float *a, int lda, const asr_qact_t *qa,
                                               const asr_wmat_t *w, const float *bias, float *c,
                                               int ldc, int m, int j0, int j1, int k) {
    if (k > BF16DP_MAX_K || w->type != ASR_W_BF16) {
        asr__k_linear_rows_avx512(a, lda, qa, w, bias, c, ldc, m, j0, j1, k);
        return;
    }
    const int lk = (k + 31) & ~31;
    uint16_t ah[8 * BF16DP_MAX_K] __attribute__((aligned(64)));
    uint16_t al[8 * BF16DP_MAX_K] __attribute__((aligned(64)));
    ROW_BLOCKS(m, {
        for (int i = 0; i < mr; i++)
            split_bf16(a + (size_t)(r + i) * lda, k, lk, ah + (size_t)i * lk, al + (size_t)i * lk);
        rows_bfdp[mr - 1](ah, al, lk, w->data, w->ld, bias, c + (size_t)r * ldc, ldc, j0, j1, k);
    });
}

/* ---- int8 with VPDPBUSD ---- */

#define TILE_I8(MR, NR, PF)                                                                        \
    do {                                                                                           \
        __m512i acc[MR][NR], ws[NR];                                                               \
        UNROLL for (int q = 0; q < NR; q++) {                                                      \
            ws[q] = _mm512_setzero_si512();                                                        \
            UNROLL for (int i = 0; i < MR; i++) acc[i][q] = _mm512_setzero_si512();                \
        }                                                                                          \
        for (int t = 0; t < k; t += 64) {                                                          \
            const __mmask64 mk = k - t >= 64 ? ~(__mmask64)0 : ((__mmask64)1 << (k - t)) - 1;      \
            if (PF)                                                                                \
                UNROLL for (int q = 0; q < NR; q++)                                                \
                    _mm_prefetch((const char *)(w + (size_t)(j + NR + q) * ldw + t), _MM_HINT_T0); \
            __m512i wv[NR];                                                                        \
            UNROLL for (int q = 0; q < NR; q++) {                                                  \
                wv[q] = _mm512_maskz_loadu_epi8(mk, w + (size_t)(j + q) * ldw + t);                \
                ws[q] = _mm512_dpbusd_epi32(ws[q], ones, wv[q]);                                   \
            }                                                                                      \
            UNROLL for (int i = 0; i < MR; i++) {                                                  \
                __m512i au = _mm512_xor_si512(                                                     \
                    _mm512_maskz_loadu_epi8(mk, qa->q + (size_t)i * qa->ld + t), bias128);         \
                UNROLL for (int q = 0; q < NR; q++) acc[i][q] =                                    \
                    _mm512_dpbusd_epi32(acc[i][q], au, wv[q]);                                     \
            }                                                                                      \
        }                                                                                          \
        UNROLL for (int q = 0; q < NR; q++) {                                                      \
            const int32_t sw = _mm512_reduce_add_epi32(ws[q]);                                     \
            UNROLL for (int i = 0; i < MR; i++) {                                                  \
                int32_t s = _mm512_reduce_add_epi32(acc[i][q]) - 128 * sw;                         \
                c[(size_t)i * ldc + j + q] =                                                       \
                    (float)s * qa->s[i] * wsc[j + q] + (bias ? bias[j + q] : 0.0f);                \
            }                                                                                      \
        }                                                                                          \
    } while (0)

typedef void (*rows_i8_fn)(const asr_qact_t *qa, const int8_t *w, const float *wsc, int ldw,
                           const float *bias, float *c, int ldc, int j0, int j1, int k);
#define DEF_ROWS_I8(MR, NR)                                                                        \
    TGT_VNNI __attribute__((noinline)) static void rows_i8_##MR(                                   \
        const asr_qact_t *qa, const int8_t *w, const float *wsc, int ldw, const float *bias,       \
        float *c, int ldc, int j0, int j1, int k) {                                                \
        const __m512i ones = _mm512_set1_epi8(1), bias128 = _mm512_set1_epi8((char)0x80);          \
        COLS_LOOP(TILE_I8, MR, NR);                                                                \
    }
/* MR×NR + NR (sums of w) accumulators + NR weights + activation + 2 constants <= 32 */
DEF_ROWS_I8(1, 8)
DEF_ROWS_I8(2, 6)
DEF_ROWS_I8(3, 5)
DEF_ROWS_I8(4, 4)
DEF_ROWS_I8(5, 3)
DEF_ROWS_I8(6, 3)
DEF_ROWS_I8(7, 2)
DEF_ROWS_I8(8, 2)
static rows_i8_fn const rows_i8_tab[8] = {rows_i8_1, rows_i8_2, rows_i8_3, rows_i8_4,
                                          rows_i8_5, rows_i8_6, rows_i8_7, rows_i8_8};

/* the int8 drivers (VNNI on zmm, AVX-VNNI on ymm): tab's kernel per block of rows */
INL void rows_i8_blocks(rows_i8_fn const *tab, const asr_qact_t *qa, const asr_wmat_t *w,
                        const float *bias, float *c, int ldc, int m, int j0, int j1, int k) {
    ROW_BLOCKS(m, {
        asr_qact_t q = {qa->q + (size_t)r * qa->ld, qa->qabs ? qa->qabs + (size_t)r * qa->ld : NULL,
                        qa->s + r, qa->ld};
        tab[mr - 1](&q, w->data, w->scale, w->ld, bias, c + (size_t)r * ldc, ldc, j0, j1, k);
    });
}

TGT_VNNI void asr__k_linear_rows_i8_avx512vnni(const asr_qact_t *qa, const asr_wmat_t *w,
                                               const float *bias, float *c, int ldc, int m, int j0,
                                               int j1, int k) {
    rows_i8_blocks(rows_i8_tab, qa, w, bias, c, ldc, m, j0, j1, k);
}

/* ---- int8 with AVX-VNNI (VEX VPDPBUSD on ymm: CPUs with it but without AVX-512) ----
 * The same sums as above, 32 bytes a step, the k % 32 tail in scalar integers; 16 registers:
 * MR×NR + 2·NR + 3 <= 16. */
#define TGT_AVXVNNI __attribute__((target("avx2,fma,avxvnni")))

INL TGT_AVXVNNI int32_t hsum8i(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

#define TILE_I8Y(MR, NR)                                                                           \
    do {                                                                                           \
        __m256i acc[MR][NR], ws[NR];                                                               \
        UNROLL for (int q = 0; q < NR; q++) {                                                      \
            ws[q] = _mm256_setzero_si256();                                                        \
            UNROLL for (int i = 0; i < MR; i++) acc[i][q] = _mm256_setzero_si256();                \
        }                                                                                          \
        for (int t = 0; t < kv; t += 32) {                                                         \
            __m256i wv[NR];                                                                        \
            UNROLL for (int q = 0; q < NR; q++) {                                                  \
                wv[q] = _mm256_loadu_si256((const __m256i *)(w + (size_t)(j + q) * ldw + t));      \
                ws[q] = _mm256_dpbusd_avx_epi32(ws[q], ones, wv[q]);                               \
            }                                                                                      \
            UNROLL for (int i = 0; i < MR; i++) {                                                  \
                __m256i au = _mm256_xor_si256(                                                     \
                    _mm256_loadu_si256((const __m256i *)(qa->q + (size_t)i * qa->ld + t)),         \
                    bias128);                                                                      \
                UNROLL for (int q = 0; q < NR; q++) acc[i][q] =                                    \
                    _mm256_dpbusd_avx_epi32(acc[i][q], au, wv[q]);                                 \
            }                                                                                      \
        }                                                                                          \
        UNROLL for (int q = 0; q < NR; q++) {                                                      \
            const int32_t sw = hsum8i(ws[q]);                                                      \
            const int8_t *wr = w + (size_t)(j + q) * ldw;                                          \
            UNROLL for (int i = 0; i < MR; i++) {                                                  \
                int32_t s = hsum8i(acc[i][q]) - 128 * sw;                                          \
                for (int t = kv; t < k; t++)                                                       \
                    s += (int32_t)qa->q[(size_t)i * qa->ld + t] * wr[t];                           \
                c[(size_t)i * ldc + j + q] =                                                       \
                    (float)s * qa->s[i] * wsc[j + q] + (bias ? bias[j + q] : 0.0f);                \
            }                                                                                      \
        }                                                                                          \
    } while (0)

#define DEF_ROWS_I8Y(MR, NR)                                                                       \
    TGT_AVXVNNI __attribute__((noinline)) static void rows_i8y_##MR(                               \
        const asr_qact_t *qa, const int8_t *w, const float *wsc, int ldw, const float *bias,       \
        float *c, int ldc, int j0, int j1, int k) {                                                \
        const __m256i ones = _mm256_set1_epi8(1), bias128 = _mm256_set1_epi8((char)0x80);          \
        const int kv = k & ~31;                                                                    \
        int j = j0;                                                                                \
        for (; j + NR <= j1; j += NR) {                                                            \
            if (j + 2 * NR <= j1)                                                                  \
                for (int q = 0; q < NR; q++)                                                       \
                    for (int t = 0; t < k; t += 64)                                                \
                        _mm_prefetch((const char *)(w + (size_t)(j + NR + q) * ldw + t),           \
                                     _MM_HINT_T0);                                                 \
            TILE_I8Y(MR, NR);                                                                      \
        }                                                                                          \
        for (; j < j1; j++)                                                                        \
            TILE_I8Y(MR, 1);                                                                       \
    }
DEF_ROWS_I8Y(1, 4)
DEF_ROWS_I8Y(2, 3)
DEF_ROWS_I8Y(3, 2)
DEF_ROWS_I8Y(4, 2)
DEF_ROWS_I8Y(5, 1)
DEF_ROWS_I8Y(6, 1)
DEF_ROWS_I8Y(7, 1)
DEF_ROWS_I8Y(8, 1)
static rows_i8_fn const rows_i8y_tab[8] = {rows_i8y_1, rows_i8y_2, rows_i8y_3, rows_i8y_4,
                                           rows_i8y_5, rows_i8y_6, rows_i8y_7, rows_i8y_8};

TGT_AVXVNNI void asr__k_linear_rows_i8_avxvnni(const asr_qact_t *qa, const asr_wmat_t *w,
                                               const float *bias, float *c, int ldc, int m, int j0,
                                               int j1, int k) {
    rows_i8_blocks(rows_i8y_tab, qa, w, bias, c, ldc, m, j0, j1, k);
}

/* ---- row kernels ----
 * Measured on the Xeon above, 51866 values (a vocabulary row), best of 7, AVX2 -> AVX-512:
 * logsumexp 24 -> 14.5 us, softmax 34 -> 26 us, quantize_row (k 5120) 1.0 -> 0.8 us, f2h 3.2 -> 3.0
 * us, h2f 4.1 -> 5.9 us: vmath.c dispatches all but the conversions (tested, kept for the bench).
 */

TGT void asr__k_h2f_n_avx512(const uint16_t *src, float *dst, size_t n) {
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(src + i))));
        _mm512_storeu_ps(dst + i + 16,
                         _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(src + i + 16))));
    }
    for (; i < n; i += 16) {
        __mmask16 mk = mask16(n - i > 16 ? 16 : (int)(n - i));
        _mm512_mask_storeu_ps(dst + i, mk, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mk, src + i)));
    }
}

TGT void asr__k_f2h_n_avx512(const float *src, uint16_t *dst, size_t n) {
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        _mm256_storeu_si256((__m256i *)(dst + i),
                            _mm512_cvtps_ph(_mm512_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
        _mm256_storeu_si256(
            (__m256i *)(dst + i + 16),
            _mm512_cvtps_ph(_mm512_loadu_ps(src + i + 16), _MM_FROUND_TO_NEAREST_INT));
    }
    for (; i < n; i += 16) {
        __mmask16 mk = mask16(n - i > 16 ? 16 : (int)(n - i));
        _mm256_mask_storeu_epi16(
            dst + i, mk,
            _mm512_cvtps_ph(_mm512_maskz_loadu_ps(mk, src + i), _MM_FROUND_TO_NEAREST_INT));
    }
}

/* e^x for 16 lanes: kern_avx2.c's exp8 on zmm (same constants and operations per lane, so the
 * same value per element; relative error about 2e-7) */
INL TGT __m512 exp16(__m512 x) {
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.3f)), _mm512_set1_ps(88.7f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    __m512 e = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    __m512i k = _mm512_slli_epi32(_mm512_cvtps_epi32(n), 23);
    return _mm512_castsi512_ps(_mm512_add_epi32(_mm512_castps_si512(e), k));
}

INL TGT float row_max(const float *x, int n) {
    __m512 mv = _mm512_set1_ps(-INFINITY);
    for (int i = 0; i < n; i += 16)
        mv = _mm512_mask_max_ps(mv, mask16(n - i), mv, _mm512_maskz_loadu_ps(mask16(n - i), x + i));
    return _mm512_reduce_max_ps(mv);
}

/* x = softmax(scale·x) in place */
TGT void asr__k_softmax_row_avx512(float *x, int n, float scale) {
    float mx = row_max(x, n);
    const __m512 s = _mm512_set1_ps(scale), m = _mm512_set1_ps(mx * scale);
    __m512 sv = _mm512_setzero_ps();
    for (int i = 0; i < n; i += 16) {
        __mmask16 mk = mask16(n - i);
        __m512 e = exp16(_mm512_fmsub_ps(_mm512_maskz_loadu_ps(mk, x + i), s, m));
        _mm512_mask_storeu_ps(x + i, mk, e);
        sv = _mm512_mask_add_ps(sv, mk, sv, e);
    }
    const __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(sv));
    for (int i = 0; i < n; i += 16) {
        __mmask16 mk = mask16(n - i);
        _mm512_mask_storeu_ps(x + i, mk, _mm512_mul_ps(_mm512_maskz_loadu_ps(mk, x + i), inv));
    }
}

TGT float asr__k_logsumexp_avx512(const float *x, int n) {
    float mx = row_max(x, n);
    if (mx == -INFINITY)
        return mx;
    const __m512 m = _mm512_set1_ps(mx);
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    int i = 0;
    for (; i + 32 <= n; i += 32) { /* two chains: the exp's latency */
        s0 = _mm512_add_ps(s0, exp16(_mm512_sub_ps(_mm512_loadu_ps(x + i), m)));
        s1 = _mm512_add_ps(s1, exp16(_mm512_sub_ps(_mm512_loadu_ps(x + i + 16), m)));
    }
    for (; i < n; i += 16) {
        __mmask16 mk = mask16(n - i);
        s0 = _mm512_mask_add_ps(s0, mk, s0,
                                exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(mk, x + i), m)));
    }
    return mx + logf(_mm512_reduce_add_ps(_mm512_add_ps(s0, s1)));
}

/* q[t] = round(x[t] / s) (nearest even, as lrintf), s = max|x| / 127; |q| into qabs if non-NULL.
 * The same numbers as the scalar version: max is exact, the rounding is the current mode's. */
TGT void asr__k_add_avx512(float *x, const float *y, size_t n) {
    for (size_t t = 0; t < n; t += 16) {
        const __mmask16 mk = mask16(n - t < 16 ? (int)(n - t) : 16);
        _mm512_mask_storeu_ps(
            x + t, mk,
            _mm512_add_ps(_mm512_maskz_loadu_ps(mk, x + t), _mm512_maskz_loadu_ps(mk, y + t)));
    }
}

TGT float asr__k_quantize_row_avx512(const float *x, int k, int8_t *q, uint8_t *qabs) {
    __m512 mv = _mm512_setzero_ps();
    for (int t = 0; t < k; t += 16)
        mv = _mm512_max_ps(mv, _mm512_abs_ps(_mm512_maskz_loadu_ps(mask16(k - t), x + t)));
    float mx = _mm512_reduce_max_ps(mv);
    float s = mx > 0.0f ? mx / 127.0f : 1.0f, inv = 1.0f / s;
    const __m512 vi = _mm512_set1_ps(inv);
    const __m128i lo = _mm_set1_epi8(-127);
    for (int t = 0; t < k; t += 16) {
        __mmask16 mk = mask16(k - t);
        __m512i iv = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_maskz_loadu_ps(mk, x + t), vi));
        __m128i b = _mm_max_epi8(_mm512_cvtsepi32_epi8(iv), lo); /* saturate to ±127 */
        _mm_mask_storeu_epi8(q + t, mk, b);
        if (qabs)
            _mm_mask_storeu_epi8(qabs + t, mk, _mm_abs_epi8(b));
    }
    return s;
}
#endif
