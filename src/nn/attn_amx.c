/* nn: the encoder's self-attention in bfloat16 on AMX tiles (nn.h, asr_nn_attn_bf16_*).
 *
 * out[t][h·64 + j] = Σ_s softmax_s(scale · q_h[t]·k_h[s]) · v_h[s][j] for every head h of 64
 * (all Whisper models), q/k/v read from one float32 [T][3d] QKV matrix. Two passes over the pool:
 * 1. pack: q, k and v of each head made bfloat16 (round to nearest even) in the layouts the tiles
 *    read, T padded to Tp (a multiple of 32) with zeros: Q [Tp][64]; K as pairs along the head
 *    dimension [32][Tp][2] (the B operand of Q·Kᵀ); V as pairs along time [Tp/2][64][2] (the B
 *    operand of P·V). Tasks take rows, so the QKV matrix is read once, in order.
 * 2. attention, per (head, block of 32 query rows), in the task's own scratch:
 *    S[32][Tp] = Q·Kᵀ (TDPBF16PS, float32 sums; each K tile serves 32 rows); per row the max,
 *    then e = exp(scale·s - max) in float32 (as 2^y: a degree-5 polynomial and VSCALEFPS, ~3e-6
 *    relative, far below bfloat16's 2^-9), summed, and stored as bfloat16 P (zeros past T);
 *    O[32][64] = P·V on the tiles, scaled by 1/sum into out (float32, or bfloat16 for a bfloat16
 *    GEMM next). Rows past T compute on zeros and are not written.
 * Each task configures the tiles (palette 1: eight 16×64-byte tiles) and releases them. The
 * process must hold the tile data permission (asr_isa() asks Linux for it). x86-64 GCC/clang
 * only; elsewhere asr_nn_attn_bf16_ok() is false. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "nn/isa.h"
#include "nn/nn.h"

#define DH 64 /* the head size served */
#define RB 32 /* query rows per block (two tiles' rows) */

static size_t al64(size_t x) { return (x + 63) / 64 * 64; }
static int tpad(int T) { return (T + 31) & ~31; } /* a multiple of RB too */

size_t asr_nn_attn_bf16_packed_bytes(int T, int d) {
    return al64((size_t)3 * tpad(T) * d * sizeof(uint16_t));
}

size_t asr_nn_attn_bf16_task_bytes(int T) {
    size_t tp = (size_t)tpad(T);
    return al64(RB * tp * sizeof(float)) + al64(RB * tp * sizeof(uint16_t)) +
           al64(RB * DH * sizeof(float)) + al64(RB * sizeof(float));
}

size_t asr_nn_attn_bf16_bytes(asr_wtype_t compute, int T, int d, int H) {
    if ((compute != ASR_W_BF16 && compute != ASR_W_I8) || H <= 0 || d % H ||
        !asr_nn_attn_bf16_ok(d / H))
        return 0;
    return asr_nn_attn_bf16_packed_bytes(T, d);
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

int asr_nn_attn_bf16_ok(int dh) {
    const asr_isa_t *t = asr_isa();
    return dh == DH && t->level >= ASR_ISA_AMX && t->amx_tile && t->amx_bf16 && t->amx_permitted &&
           t->avx512_bf16 && t->avx512f && t->avx512bw && t->avx512vl && t->avx512dq;
}

#define TGT __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,fma")))
#define TGT_AMX                                                                                    \
    __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,fma,amx-tile,amx-bf16")))
#define INL static inline __attribute__((always_inline))

INL __mmask16 mask16(int n) {
    return n >= 16 ? (__mmask16)0xffff : n <= 0 ? 0 : (__mmask16)((1u << n) - 1u);
}

typedef struct {
    const float *qkv;
    int ld, T, Tp, H;
    uint16_t *pk;
    float scale;
    void *out; /* float32, or bfloat16 (out_bf16) */
    int ldo, out_bf16;
    unsigned char *scratch;
    size_t task_bytes;
} attn_job_t;

/* 16 float32 -> 16 bfloat16 (nearest even) */
INL TGT __m256i bf16x16(__m512 x) { return (__m256i)_mm512_cvtneps_pbh(x); }

/* 32 float32 (x0 then x1) as 16 dwords of bfloat16 pairs (x[2i] low, x[2i+1] high) */
INL TGT __m512i pairs(__m512 x0, __m512 x1) { return (__m512i)_mm512_cvtne2ps_pbh(x1, x0); }

/* rows 2p and 2p + 1 of every head's Q, K and V, for pairs p in [p0, p1): the QKV rows are read
 * once, in order (the copies' writes are what scatters) */
TGT static void pack_rows(const attn_job_t *j, int p0, int p1) {
    const int T = j->T, Tp = j->Tp, H = j->H;
    const size_t hs = (size_t)Tp * DH; /* a head's elements */
    const __m512i idx =
        _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                           _mm512_set1_epi32(Tp));
    const __m512i idx16 = _mm512_add_epi32(idx, _mm512_set1_epi32(16 * Tp));
    const __m512 zero = _mm512_setzero_ps();
    for (int p = p0; p < p1; p++) {
        for (int h = 0; h < H; h++) {
            uint16_t *Qh = j->pk + (size_t)h * hs;
            uint32_t *Kh = (uint32_t *)(j->pk + (size_t)(H + h) * hs);
            uint32_t *Vh = (uint32_t *)(j->pk + (size_t)(2 * H + h) * hs);
            __m512 v[2][4];
            for (int e = 0; e < 2; e++) {
                const int r = 2 * p + e;
                const float *x = j->qkv + (size_t)r * j->ld + (size_t)h * DH;
                const int in = r < T;
                __m512 q[4], k[4];
                for (int c = 0; c < 4; c++) {
                    q[c] = in ? _mm512_loadu_ps(x + 16 * c) : zero;
                    k[c] = in ? _mm512_loadu_ps(x + (size_t)H * DH + 16 * c) : zero;
                    v[e][c] = in ? _mm512_loadu_ps(x + (size_t)2 * H * DH + 16 * c) : zero;
                }
                /* Q [Tp][64] */
                _mm512_storeu_si512(Qh + (size_t)r * DH, pairs(q[0], q[1]));
                _mm512_storeu_si512(Qh + (size_t)r * DH + 32, pairs(q[2], q[3]));
                /* K [32][Tp] dwords: dword c of key r at c·Tp + r */
                _mm512_i32scatter_epi32(Kh + r, idx, pairs(k[0], k[1]), 4);
                _mm512_i32scatter_epi32(Kh + r, idx16, pairs(k[2], k[3]), 4);
            }
            /* V [Tp/2][64] dwords: (v[2p][c], v[2p+1][c]) */
            for (int c = 0; c < 4; c++) {
                __m512i lo = _mm512_cvtepu16_epi32(bf16x16(v[0][c]));
                __m512i hi = _mm512_slli_epi32(_mm512_cvtepu16_epi32(bf16x16(v[1][c])), 16);
                _mm512_storeu_si512(Vh + (size_t)p * DH + 16 * c, _mm512_or_si512(lo, hi));
            }
        }
    }
}

static void pack_task(void *ctx, int task, int n_tasks) {
    attn_job_t *j = ctx;
    const int np = j->Tp / 2;
    pack_rows(j, (int)((long)np * task / n_tasks), (int)((long)np * (task + 1) / n_tasks));
}

/* 2^y for y <= 0 (any finite y): 2^n·p(f), n = round(y), f = y - n in [-0.5, 0.5], p the degree-5
 * Taylor polynomial of e^(f·ln 2) (relative error < 3e-6); VSCALEFPS makes very negative y 0 */
INL TGT __m512 exp2_16(__m512 y) {
    __m512 n = _mm512_roundscale_ps(y, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 f = _mm512_sub_ps(y, n);
    __m512 p = _mm512_set1_ps(1.3333558e-3f);                 /* ln2^5/120 */
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.6181291e-3f)); /* ln2^4/24 */
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.5504109e-2f)); /* ln2^3/6 */
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.4022651e-1f)); /* ln2^2/2 */
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.9314718e-1f)); /* ln2 */
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

/* P[0, Tp) = bf16(exp(scale·s - max)) over [0, T), zeros after; returns 1 / the float32 sum.
 * exp(scale·(s - max)) = 2^(s·a - max·a), a = scale·log2(e). */
INL TGT float softmax_bf16(const float *s, int T, int Tp, float scale, uint16_t *p) {
    __m512 m0 = _mm512_set1_ps(-INFINITY), m1 = m0;
    int i = 0;
    for (; i + 32 <= T; i += 32) {
        m0 = _mm512_max_ps(m0, _mm512_loadu_ps(s + i));
        m1 = _mm512_max_ps(m1, _mm512_loadu_ps(s + i + 16));
    }
    for (; i < T; i += 16)
        m0 = _mm512_mask_max_ps(m0, mask16(T - i), m0, _mm512_maskz_loadu_ps(mask16(T - i), s + i));
    const float a = scale * 1.44269504088896341f;
    const __m512 av = _mm512_set1_ps(a);
    const __m512 b = _mm512_set1_ps(_mm512_reduce_max_ps(_mm512_max_ps(m0, m1)) * a);
    __m512 s0 = _mm512_setzero_ps(), s1 = s0;
    for (i = 0; i + 32 <= T; i += 32) {
        __m512 e0 = exp2_16(_mm512_fmsub_ps(_mm512_loadu_ps(s + i), av, b));
        __m512 e1 = exp2_16(_mm512_fmsub_ps(_mm512_loadu_ps(s + i + 16), av, b));
        s0 = _mm512_add_ps(s0, e0);
        s1 = _mm512_add_ps(s1, e1);
        _mm512_storeu_si512(p + i, pairs(e0, e1));
    }
    if (i < T) { /* the last partial 32 (S holds Tp columns: the loads stay inside) */
        __m512 e0 = _mm512_maskz_mov_ps(mask16(T - i),
                                        exp2_16(_mm512_fmsub_ps(_mm512_loadu_ps(s + i), av, b)));
        __m512 e1 = _mm512_maskz_mov_ps(
            mask16(T - i - 16), exp2_16(_mm512_fmsub_ps(_mm512_loadu_ps(s + i + 16), av, b)));
        s0 = _mm512_add_ps(s0, e0);
        s1 = _mm512_add_ps(s1, e1);
        _mm512_storeu_si512(p + i, pairs(e0, e1));
        i += 32;
    }
    for (; i < Tp; i += 32)
        _mm512_storeu_si512(p + i, _mm512_setzero_si512());
    return 1.0f / _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} __attribute__((aligned(64))) tilecfg_t;

TGT_AMX static void attn_block(const attn_job_t *j, int h, int r0, unsigned char *scr) {
    const int T = j->T, Tp = j->Tp;
    const size_t hs = (size_t)Tp * DH;
    const uint16_t *Q = j->pk + (size_t)h * hs + (size_t)r0 * DH, *K = j->pk + (size_t)j->H * hs;
    const uint16_t *V = K + (size_t)j->H * hs;
    K += (size_t)h * hs, V += (size_t)h * hs;
    float *S = (float *)scr;
    uint16_t *P = (uint16_t *)(scr + al64(RB * (size_t)Tp * sizeof(float)));
    float *O = (float *)((unsigned char *)P + al64(RB * (size_t)Tp * sizeof(uint16_t)));
    float *inv = (float *)((unsigned char *)O + al64(RB * DH * sizeof(float)));
    const size_t kst = (size_t)Tp * 4; /* bytes between K's pair rows, and S's rows */
    /* S = Q·Kᵀ: the 32 rows' Q in tiles 0-3 (rows 0-15 | 16-31, head dims 0-31 | 32-63), 16 keys a
     * step: their two K tiles (6, 7) serve both row halves (C tiles 4, 5) */
    _tile_loadd(0, Q, DH * 2);
    _tile_loadd(1, Q + 32, DH * 2);
    _tile_loadd(2, Q + 16 * DH, DH * 2);
    _tile_loadd(3, Q + 16 * DH + 32, DH * 2);
    for (int n0 = 0; n0 < Tp; n0 += 16) {
        _tile_zero(4);
        _tile_zero(5);
        _tile_loadd(6, K + (size_t)n0 * 2, kst);
        _tile_loadd(7, K + ((size_t)16 * Tp + n0) * 2, kst);
        _tile_dpbf16ps(4, 0, 6);
        _tile_dpbf16ps(5, 2, 6);
        _tile_dpbf16ps(4, 1, 7);
        _tile_dpbf16ps(5, 3, 7);
        _tile_stored(4, S + n0, kst);
        _tile_stored(5, S + (size_t)16 * Tp + n0, kst);
    }
    const int rows = T - r0 < RB ? T - r0 : RB;
    for (int r = 0; r < rows; r++)
        inv[r] = softmax_bf16(S + (size_t)r * Tp, T, Tp, j->scale, P + (size_t)r * Tp);
    if (rows < RB)
        memset(P + (size_t)rows * Tp, 0, sizeof(uint16_t) * (size_t)(RB - rows) * Tp);
    /* O = P·V, 16 rows at a time: the 64 columns in C tiles 0-3, 32 keys a step */
    for (int half = 0; half < RB && half < rows; half += 16) {
        const uint16_t *Ph = P + (size_t)half * Tp;
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
        for (int kb = 0; kb < Tp; kb += 32) {
            const uint16_t *v = V + (size_t)(kb / 2) * DH * 2;
            _tile_loadd(4, Ph + kb, (size_t)Tp * 2);
            _tile_loadd(5, v, DH * 4);
            _tile_loadd(6, v + 32, DH * 4);
            _tile_dpbf16ps(0, 4, 5);
            _tile_loadd(7, v + 64, DH * 4);
            _tile_dpbf16ps(1, 4, 6);
            _tile_loadd(5, v + 96, DH * 4);
            _tile_dpbf16ps(2, 4, 7);
            _tile_dpbf16ps(3, 4, 5);
        }
        float *Oh = O + (size_t)half * DH;
        _tile_stored(0, Oh, DH * 4);
        _tile_stored(1, Oh + 16, DH * 4);
        _tile_stored(2, Oh + 32, DH * 4);
        _tile_stored(3, Oh + 48, DH * 4);
    }
    for (int r = 0; r < rows; r++) {
        const size_t at = (size_t)(r0 + r) * j->ldo + (size_t)h * DH;
        const __m512 iv = _mm512_set1_ps(inv[r]);
        if (j->out_bf16) {
            uint16_t *o = (uint16_t *)j->out + at;
            for (int c = 0; c < DH; c += 32)
                _mm512_storeu_si512(o + c,
                                    pairs(_mm512_mul_ps(_mm512_loadu_ps(O + r * DH + c), iv),
                                          _mm512_mul_ps(_mm512_loadu_ps(O + r * DH + c + 16), iv)));
        } else {
            float *o = (float *)j->out + at;
            for (int c = 0; c < DH; c += 16)
                _mm512_storeu_ps(o + c, _mm512_mul_ps(_mm512_loadu_ps(O + r * DH + c), iv));
        }
    }
}

TGT_AMX static void attn_task(void *ctx, int task, int n_tasks) {
    attn_job_t *j = ctx;
    tilecfg_t cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int i = 0; i < 8; i++)
        cfg.colsb[i] = 64, cfg.rows[i] = 16;
    _tile_loadconfig(&cfg);
    const int nblk = j->Tp / RB;
    unsigned char *scr = j->scratch + (size_t)task * j->task_bytes;
    for (int u = task; u < j->H * nblk; u += n_tasks) {
        int h = u / nblk, r0 = (u % nblk) * RB;
        if (r0 < j->T)
            attn_block(j, h, r0, scr);
    }
    _tile_release();
}

void asr_nn_attn_bf16(asr_pool_t *pool, const float *qkv, int ldqkv, int T, int H, float scale,
                      void *packed, void *scratch, size_t scratch_len, void *out, int ldo,
                      int out_bf16) {
    (void)asr_isa(); /* the tile permission is asked for on the first call */
    attn_job_t j = {qkv,   ldqkv, T,   tpad(T),  H,       packed,
                    scale, out,   ldo, out_bf16, scratch, asr_nn_attn_bf16_task_bytes(T)};
    int nt = pool ? asr_pool_n_threads(pool) : 1;
    if ((size_t)nt > scratch_len / j.task_bytes)
        nt = (int)(scratch_len / j.task_bytes);
    if (nt < 1)
        nt = 1; /* the caller gave at least one task's bytes (asserted by the encoder) */
    if (pool) {
        asr_pool_run(pool, asr_pool_n_threads(pool), pack_task, &j);
        asr_pool_run(pool, nt, attn_task, &j);
    } else {
        pack_task(&j, 0, 1);
        attn_task(&j, 0, 1);
    }
}
#else
int asr_nn_attn_bf16_ok(int dh) {
    (void)dh;
    return 0;
}

void asr_nn_attn_bf16(asr_pool_t *pool, const float *qkv, int ldqkv, int T, int H, float scale,
                      void *packed, void *scratch, size_t scratch_len, void *out, int ldo,
                      int out_bf16) {
    (void)pool, (void)qkv, (void)ldqkv, (void)T, (void)H, (void)scale, (void)packed;
    (void)scratch, (void)scratch_len, (void)out, (void)ldo, (void)out_bf16;
}
#endif
