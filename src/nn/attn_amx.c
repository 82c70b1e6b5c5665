/* nn: the encoder's self-attention in bfloat16 on AMX tiles (nn.h, asr_nn_attn_bf16_*).
 *
 * out[t][h·64 + j] = Σ_s softmax_s(scale · q_h[t]·k_h[s]) · v_h[s][j] for every head h of 64
 * (all Whisper models), q/k/v read from one [T][3d] QKV matrix, float32 or bfloat16 (a bfloat16
 * GEMM's output). Two passes over the pool:
 * 1. pack: q, k and v of each head made bfloat16 (round to nearest even) in the layouts the tiles
 *    read, T padded to Tp (a multiple of 32) with zeros: Q [Tp][64]; K as pairs along the head
 *    dimension [32][Tp][2] (the B operand of Q·Kᵀ); V as pairs along time [Tp/2][64][2] (the B
 *    operand of P·V). Tasks take rows, so the QKV matrix is read once, in order.
 * 2. attention, per (head, block of 32 query rows), in chunks of CH keys whose scores and
 *    exponentials stay in the task's L1-sized scratch (K and V are read once a block, from L2):
 *    S[32][CH] = Q·Kᵀ (TDPBF16PS, float32 sums); e = exp(scale·s - b) in float32 (as 2^y: a
 *    degree-3 polynomial and VSCALEFPS, 7.5e-5 relative, far below bfloat16's 2^-9), summed, and
 *    stored as bfloat16 P (zeros past T); O[32][64] += P·V on the tiles. The next chunk's scores
 *    are issued on the tiles between the exponentials' vector instructions, so the two units
 *    run side by side. b is the row's maximum over the first chunk, not over all T: softmax
 *    does not depend on b, every e is then at least one at the maximum, and a row whose sum
 *    passes 2^100 (a score more than 100/(scale·log2 e) above the first chunk's: unseen in
 *    Whisper) has the block redone with b the exact maxima (a pass of scores before). out =
 *    O / sum (float32, or bfloat16 for a bfloat16 GEMM next). Rows past T compute on zeros and
 *    are not written.
 * Each task configures the tiles (palette 1: eight 16×64-byte tiles) and releases them. The
 * process must hold the tile data permission (asr_isa() asks Linux for it). x86-64 GCC/clang
 * only; elsewhere asr_nn_attn_bf16_ok() is false. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "nn/isa.h"
#include "nn/nn.h"

#define DH 64  /* the head size served */
#define RB 32  /* query rows per block (two tiles' rows) */
#define CH 128 /* keys per chunk (a multiple of 32) */

static size_t al64(size_t x) { return (x + 63) / 64 * 64; }
static int tpad(int T) { return (T + 31) & ~31; } /* a multiple of RB too */

size_t asr_nn_attn_bf16_packed_bytes(int T, int d) {
    return al64((size_t)3 * tpad(T) * d * sizeof(uint16_t));
}

size_t asr_nn_attn_bf16_task_bytes(int T) {
    (void)T;
    return 2 * al64(RB * CH * sizeof(float)) + al64(RB * CH * sizeof(uint16_t)) +
           al64(RB * DH * sizeof(float)) + al64(RB * 16 * sizeof(float)) + al64(RB * sizeof(float));
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
    const void *qkv;
    int ld, qkv_bf16, T, Tp, H;
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

/* 64 values of a QKV row (float32 or bfloat16): as 32 bfloat16 pairs (two vectors of 16 dwords:
 * values 2i, 2i + 1 in dword i), and as 16-value runs zero-extended to dwords (run c in x16[c]) */
typedef struct {
    __m512i pair[2], x16[4];
} vals64_t;

INL TGT vals64_t load64(const attn_job_t *j, int r, size_t col) {
    vals64_t v;
    if (r >= j->T) {
        v.pair[0] = v.pair[1] = _mm512_setzero_si512();
        for (int c = 0; c < 4; c++)
            v.x16[c] = _mm512_setzero_si512();
    } else if (j->qkv_bf16) {
        const uint16_t *x = (const uint16_t *)j->qkv + (size_t)r * j->ld + col;
        v.pair[0] = _mm512_loadu_si512(x);
        v.pair[1] = _mm512_loadu_si512(x + 32);
        for (int c = 0; c < 4; c++)
            v.x16[c] = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(x + 16 * c)));
    } else {
        const float *x = (const float *)j->qkv + (size_t)r * j->ld + col;
        __m512 f[4];
        for (int c = 0; c < 4; c++)
            f[c] = _mm512_loadu_ps(x + 16 * c);
        v.pair[0] = pairs(f[0], f[1]);
        v.pair[1] = pairs(f[2], f[3]);
        for (int c = 0; c < 4; c++)
            v.x16[c] = _mm512_cvtepu16_epi32(bf16x16(f[c]));
    }
    return v;
}

/* rows 2p and 2p + 1 of every head's Q, K and V, for pairs p in [p0, p1): the QKV rows are read
 * once, in order (the copies' writes are what scatters) */
TGT static void pack_rows(const attn_job_t *j, int p0, int p1) {
    const int Tp = j->Tp, H = j->H;
    const size_t hs = (size_t)Tp * DH; /* a head's elements */
    const __m512i idx =
        _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                           _mm512_set1_epi32(Tp));
    const __m512i idx16 = _mm512_add_epi32(idx, _mm512_set1_epi32(16 * Tp));
    for (int p = p0; p < p1; p++) {
        for (int h = 0; h < H; h++) {
            uint16_t *Qh = j->pk + (size_t)h * hs;
            uint32_t *Kh = (uint32_t *)(j->pk + (size_t)(H + h) * hs);
            uint32_t *Vh = (uint32_t *)(j->pk + (size_t)(2 * H + h) * hs);
            vals64_t v[2];
            for (int e = 0; e < 2; e++) {
                const int r = 2 * p + e;
                const vals64_t q = load64(j, r, (size_t)h * DH);
                const vals64_t k = load64(j, r, (size_t)(H + h) * DH);
                v[e] = load64(j, r, (size_t)(2 * H + h) * DH);
                /* Q [Tp][64] */
                _mm512_storeu_si512(Qh + (size_t)r * DH, q.pair[0]);
                _mm512_storeu_si512(Qh + (size_t)r * DH + 32, q.pair[1]);
                /* K [32][Tp] dwords: dword c of key r at c·Tp + r */
                _mm512_i32scatter_epi32(Kh + r, idx, k.pair[0], 4);
                _mm512_i32scatter_epi32(Kh + r, idx16, k.pair[1], 4);
            }
            /* V [Tp/2][64] dwords: (v[2p][c], v[2p+1][c]) */
            for (int c = 0; c < 4; c++)
                _mm512_storeu_si512(
                    Vh + (size_t)p * DH + 16 * c,
                    _mm512_or_si512(v[0].x16[c], _mm512_slli_epi32(v[1].x16[c], 16)));
        }
    }
}

static void pack_task(void *ctx, int task, int n_tasks) {
    attn_job_t *j = ctx;
    const int np = j->Tp / 2;
    pack_rows(j, (int)((long)np * task / n_tasks), (int)((long)np * (task + 1) / n_tasks));
}

/* 2^y (y below 128): 2^n·p(f), n = round(y), f = y - n in [-0.5, 0.5], p a degree-3 fit of 2^f
 * (relative error < 7.5e-5, 26 times below bfloat16's half step, which P is rounded to);
 * VSCALEFPS makes very negative y 0 */
INL TGT __m512 exp2_16(__m512 y) {
    __m512 n = _mm512_roundscale_ps(y, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 f = _mm512_sub_ps(y, n);
    __m512 p = _mm512_set1_ps(5.5171672e-2f);
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.4261114e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.9326097e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.9992806e-1f));
    return _mm512_scalef_ps(p, n);
}

typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} __attribute__((aligned(64))) tilecfg_t;

/* A task's scratch: two chunks' scores (the one exponentiated, the next one scored), one
 * chunk's P, the block's O, the rows' sums (per lane) and b. */
typedef struct {
    float *S[2];               /* [RB][CH] */
    uint16_t *P;               /* [RB][CH] */
    float *O;                  /* [RB][DH] */
    float *sum;                /* [RB][16] */
    float *b;                  /* [RB] */
    const uint16_t *Q, *K, *V; /* the block's rows of Q, its head's K and V */
    int T, Tp, h, r0;
    __m512 av; /* scale·log2(e) */
} blk_t;

static blk_t blk_of(const attn_job_t *j, unsigned char *scr, int h, int r0) {
    blk_t k;
    const size_t sb = al64(RB * CH * sizeof(float)), pb = al64(RB * CH * sizeof(uint16_t));
    const size_t ob = al64(RB * DH * sizeof(float)), mb = al64(RB * 16 * sizeof(float));
    k.S[0] = (float *)scr;
    k.S[1] = (float *)(scr + sb);
    k.P = (uint16_t *)(scr + 2 * sb);
    k.O = (float *)(scr + 2 * sb + pb);
    k.sum = (float *)(scr + 2 * sb + pb + ob);
    k.b = (float *)(scr + 2 * sb + pb + ob + mb);
    const size_t hs = (size_t)j->Tp * DH;
    k.Q = j->pk + (size_t)h * hs + (size_t)r0 * DH;
    k.K = j->pk + (size_t)(j->H + h) * hs;
    k.V = j->pk + (size_t)(2 * j->H + h) * hs;
    k.T = j->T, k.Tp = j->Tp, k.h = h, k.r0 = r0;
    return k;
}

/* the chunk's exponentials of rows [ra, rb): P = bf16(2^(S·a - b_r)), zero past T, summed per
 * lane (w columns at key c0) */
INL TGT void exp_rows(const blk_t *k, const float *S, int c0, int w, int ra, int rb) {
    for (int r = ra; r < rb; r++) {
        const float *s = S + (size_t)r * CH;
        uint16_t *p = k->P + (size_t)r * CH;
        const __m512 bv = _mm512_set1_ps(k->b[r]);
        __m512 sm = _mm512_load_ps(k->sum + 16 * r);
        for (int c = 0; c < w; c += 32) {
            __m512 e0 = exp2_16(_mm512_fmsub_ps(_mm512_load_ps(s + c), k->av, bv));
            __m512 e1 = exp2_16(_mm512_fmsub_ps(_mm512_load_ps(s + c + 16), k->av, bv));
            if (c0 + c + 32 > k->T) {
                e0 = _mm512_maskz_mov_ps(mask16(k->T - c0 - c), e0);
                e1 = _mm512_maskz_mov_ps(mask16(k->T - c0 - c - 16), e1);
            }
            sm = _mm512_add_ps(sm, _mm512_add_ps(e0, e1));
            _mm512_store_si512(p + c, pairs(e0, e1));
        }
        _mm512_store_ps(k->sum + 16 * r, sm);
    }
}

/* the maxima over the chunk's columns before T of rows [0, RB), into mx (per lane) */
INL TGT void max_rows(const blk_t *k, const float *S, int c0, int w, float *mx) {
    for (int r = 0; r < RB; r++) {
        const float *s = S + (size_t)r * CH;
        __m512 m = _mm512_load_ps(mx + 16 * r);
        for (int c = 0; c < w && c0 + c < k->T; c += 16)
            m = _mm512_mask_max_ps(m, mask16(k->T - c0 - c), m, _mm512_load_ps(s + c));
        _mm512_store_ps(mx + 16 * r, m);
    }
}

/* S = Q·Kᵀ for the block's 32 rows and the w keys at c0: Q in tiles 0-3 (rows 0-15 | 16-31,
 * head dims 0-31 | 32-63), 16 keys a step: their two K tiles (6, 7) serve both row halves (C
 * tiles 4, 5). With Se (a chunk of w_e columns at c_e), four rows of its exponentials a step,
 * for the vector units while the tiles work. */
TGT_AMX static void scores(const blk_t *k, int c0, int w, float *S, const float *Se, int ce,
                           int we) {
    const uint16_t *K = k->K;
    const size_t kst = (size_t)k->Tp * 4; /* bytes between K's pair rows */
    _tile_loadd(0, k->Q, DH * 2);
    _tile_loadd(1, k->Q + 32, DH * 2);
    _tile_loadd(2, k->Q + 16 * DH, DH * 2);
    _tile_loadd(3, k->Q + 16 * DH + 32, DH * 2);
    int re = 0;
    for (int n = 0; n < w; n += 16) {
        const int n0 = c0 + n;
        _tile_zero(4);
        _tile_zero(5);
        _tile_loadd(6, K + (size_t)n0 * 2, kst);
        _tile_loadd(7, K + ((size_t)16 * k->Tp + n0) * 2, kst);
        _tile_dpbf16ps(4, 0, 6);
        _tile_dpbf16ps(5, 2, 6);
        _tile_dpbf16ps(4, 1, 7);
        _tile_dpbf16ps(5, 3, 7);
        _tile_stored(4, S + n, CH * 4);
        _tile_stored(5, S + 16 * CH + n, CH * 4);
        if (Se && re < RB) {
            exp_rows(k, Se, ce, we, re, re + 4);
            re += 4;
        }
    }
    if (Se && re < RB)
        exp_rows(k, Se, ce, we, re, RB);
}

/* O += P·V for the chunk's w keys at c0: C tiles 0-3 (rows 0-15 | 16-31 × 32 of the columns),
 * P's two row halves in tiles 4, 5, V's 32 columns in 6, 7; 32 keys a step */
TGT_AMX static void values(const blk_t *k, int c0, int w) {
    for (int cq = 0; cq < DH; cq += 32) {
        float *O = k->O + cq;
        _tile_loadd(0, O, DH * 4);
        _tile_loadd(1, O + 16, DH * 4);
        _tile_loadd(2, O + 16 * DH, DH * 4);
        _tile_loadd(3, O + 16 * DH + 16, DH * 4);
        for (int kb = 0; kb < w; kb += 32) {
            const uint16_t *v = k->V + (size_t)((c0 + kb) / 2) * DH * 2 + 2 * cq;
            _tile_loadd(4, k->P + kb, CH * 2);
            _tile_loadd(5, k->P + 16 * CH + kb, CH * 2);
            _tile_loadd(6, v, DH * 4);
            _tile_loadd(7, v + 32, DH * 4);
            _tile_dpbf16ps(0, 4, 6);
            _tile_dpbf16ps(1, 4, 7);
            _tile_dpbf16ps(2, 5, 6);
            _tile_dpbf16ps(3, 5, 7);
        }
        _tile_stored(0, O, DH * 4);
        _tile_stored(1, O + 16, DH * 4);
        _tile_stored(2, O + 16 * DH, DH * 4);
        _tile_stored(3, O + 16 * DH + 16, DH * 4);
    }
}

/* the keys of chunk c (CH, fewer in the last) */
static int chunk_w(int Tp, int c) { return Tp - c * CH < CH ? Tp - c * CH : CH; }

/* One block; exact: b is the rows' maxima over all T (a pass of scores first), else over the
 * first chunk. 0 when a row's sum passed 2^100 (only without exact). */
TGT_AMX static int attn_block(const attn_job_t *j, blk_t *k, int exact) {
    const int Tp = k->Tp, nch = (Tp + CH - 1) / CH;
    float *mx = k->O; /* the maxima (per lane) before O is used */
    for (int r = 0; r < RB; r++)
        _mm512_store_ps(mx + 16 * r, _mm512_set1_ps(-INFINITY));
    for (int c = exact ? nch - 1 : 0; c >= 0; c--) { /* chunk 0's scores last: kept in S[0] */
        scores(k, c * CH, chunk_w(Tp, c), k->S[0], NULL, 0, 0);
        max_rows(k, k->S[0], c * CH, chunk_w(Tp, c), mx);
    }
    for (int r = 0; r < RB; r++) {
        k->b[r] = _mm512_reduce_max_ps(_mm512_load_ps(mx + 16 * r)) * k->av[0];
        _mm512_store_ps(k->sum + 16 * r, _mm512_setzero_ps());
    }
    memset(k->O, 0, RB * DH * sizeof(float));
    for (int c = 0; c < nch; c++) {
        const int w = chunk_w(Tp, c);
        float *S = k->S[c & 1];
        if (c + 1 < nch) /* the next chunk's scores beside this one's exponentials */
            scores(k, (c + 1) * CH, chunk_w(Tp, c + 1), k->S[(c + 1) & 1], S, c * CH, w);
        else
            exp_rows(k, S, c * CH, w, 0, RB);
        values(k, c * CH, w);
    }
    const int rows = k->T - k->r0 < RB ? k->T - k->r0 : RB;
    float inv[RB];
    for (int r = 0; r < rows; r++) {
        float sum = _mm512_reduce_add_ps(_mm512_load_ps(k->sum + 16 * r));
        if (!(sum <= 0x1p100f) && !exact)
            return 0;
        inv[r] = 1.0f / sum;
    }
    for (int r = 0; r < rows; r++) {
        const size_t at = (size_t)(k->r0 + r) * j->ldo + (size_t)k->h * DH;
        const __m512 iv = _mm512_set1_ps(inv[r]);
        const float *O = k->O + (size_t)r * DH;
        if (j->out_bf16) {
            uint16_t *o = (uint16_t *)j->out + at;
            for (int c = 0; c < DH; c += 32)
                _mm512_storeu_si512(o + c, pairs(_mm512_mul_ps(_mm512_load_ps(O + c), iv),
                                                 _mm512_mul_ps(_mm512_load_ps(O + c + 16), iv)));
        } else {
            float *o = (float *)j->out + at;
            for (int c = 0; c < DH; c += 16)
                _mm512_storeu_ps(o + c, _mm512_mul_ps(_mm512_load_ps(O + c), iv));
        }
    }
    return 1;
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
        if (r0 >= j->T)
            continue;
        blk_t k = blk_of(j, scr, h, r0);
        k.av = _mm512_set1_ps(j->scale * 1.44269504088896341f);
        if (!attn_block(j, &k, 0))
            attn_block(j, &k, 1);
    }
    _tile_release();
}

void asr_nn_attn_bf16(asr_pool_t *pool, const void *qkv, int ldqkv, int qkv_bf16, int T, int H,
                      float scale, void *packed, void *scratch, size_t scratch_len, void *out,
                      int ldo, int out_bf16) {
    (void)asr_isa(); /* the tile permission is asked for on the first call */
    attn_job_t j = {qkv,
                    ldqkv,
                    qkv_bf16,
                    T,
                    tpad(T),
                    H,
                    packed,
                    scale,
                    out,
                    ldo,
                    out_bf16,
                    scratch,
                    asr_nn_attn_bf16_task_bytes(T)};
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

void asr_nn_attn_bf16(asr_pool_t *pool, const void *qkv, int ldqkv, int qkv_bf16, int T, int H,
                      float scale, void *packed, void *scratch, size_t scratch_len, void *out,
                      int ldo, int out_bf16) {
    (void)pool, (void)qkv, (void)ldqkv, (void)qkv_bf16, (void)T, (void)H, (void)scale, (void)packed;
    (void)scratch, (void)scratch_len, (void)out, (void)ldo, (void)out_bf16;
}
#endif
