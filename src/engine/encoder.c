/* engine: Whisper audio encoder. conv1 (k3, s1) → GELU → conv2 (k3, s2) → GELU → + positions →
 * N pre-norm transformer layers → final layer norm. Convolutions run as im2col + GEMM with the
 * time axis as rows, so every activation is [time][channels] and feeds the linear layers directly.
 * All buffers come from asr_enc_buf_t, in the stream's slot arena. */
#include <math.h>
#include <string.h>

#include "engine/engine_int.h"
#include "engine/gpu_int.h"

/* cols[t][c*3 + k] = in[c][t + k - 1] for a [n_ch][n_t] channel-major input (stride 1). */
static void im2col_cm(const float *in, int n_ch, int n_t, float *cols) {
    for (int t = 0; t < n_t; t++) {
        float *row = cols + (size_t)t * n_ch * 3;
        for (int c = 0; c < n_ch; c++) {
            const float *src = in + (size_t)c * n_t;
            row[c * 3 + 0] = t > 0 ? src[t - 1] : 0.0f;
            row[c * 3 + 1] = src[t];
            row[c * 3 + 2] = t + 1 < n_t ? src[t + 1] : 0.0f;
        }
    }
}

/* cols[t][c*3 + k] = in[2t + k - 1][c] for a [n_t_in][n_ch] time-major input (stride 2). */
static void im2col_tm_s2(const float *in, int n_ch, int n_t_in, float *cols) {
    int n_t = n_t_in / 2;
    for (int t = 0; t < n_t; t++) {
        float *row = cols + (size_t)t * n_ch * 3;
        for (int k = 0; k < 3; k++) {
            int ti = 2 * t + k - 1;
            const float *src = in + (size_t)ti * n_ch;
            if (ti < 0 || ti >= n_t_in) {
                for (int c = 0; c < n_ch; c++)
                    row[c * 3 + k] = 0.0f;
            } else {
                for (int c = 0; c < n_ch; c++)
                    row[c * 3 + k] = src[c];
            }
        }
    }
}

/* Self-attention without the whole 1500×1500 score matrix of a head: blocks of ATT_ROWS query
 * rows (scores ATT_ROWS×1500, which stay in L2), split over the pool with single-threaded GEMMs,
 * task t taking blocks t, t + n_tasks, ... with its own part of the slot's score buffer. */
#define ATT_ROWS 64
typedef struct {
    asr_stream_t *s;
    const float *qkv;
    float *out;
    int d, H, dh, n_blocks;
    float scale;
} enc_attn_job_t;

static void enc_attn_task(void *ctx, int task, int n_tasks) {
    enc_attn_job_t *j = ctx;
    const int T = 1500, d = j->d, dh = j->dh;
    float *sc = j->s->eb.scores + (size_t)task * ATT_ROWS * T;
    for (int blk = task; blk < j->H * j->n_blocks; blk += n_tasks) {
        int h = blk / j->n_blocks, r0 = (blk % j->n_blocks) * ATT_ROWS;
        int rows = T - r0 < ATT_ROWS ? T - r0 : ATT_ROWS;
        const float *q = j->qkv + (size_t)r0 * 3 * d + h * dh;
        const float *k = j->qkv + d + h * dh, *v = j->qkv + 2 * d + h * dh;
        asr_nn_gemm_nt(q, 3 * d, k, 3 * d, sc, T, rows, T, dh, j->scale);
        for (int r = 0; r < rows; r++)
            asr_nn_softmax_row_fast(sc + (size_t)r * T, T, 1.0f);
        asr_nn_gemm_nn(sc, T, v, 3 * d, j->out + (size_t)r0 * d + h * dh, d, rows, dh, T);
    }
}

/* attn [1500][d] from qkv [1500][3d]: in bfloat16 on AMX under bfloat16/int8 compute types
 * (nn/attn_amx.c; its Q/K/V copies after the float32 scores in the slot's ENC_SCORES buffer, whose
 * first 1500×1500 floats are the tasks' scratch), else float32 as above */
static void enc_attention(asr_stream_t *s, const void *qkv, int qkv_bf16, void *attn,
                          int attn_bf16) {
    const asr_model_t *m = s->m;
    const int T = 1500, d = m->info.d_model, H = m->info.n_audio_head, dh = d / H;
    const float scale = 1.0f / sqrtf((float)dh);
    if (asr_nn_attn_bf16_bytes(m->wtype, T, d, H)) {
        size_t sc_len = (size_t)T * T * sizeof(float);
        ASR_ASSERT(sc_len >= asr_nn_attn_bf16_task_bytes(T));
        asr_nn_attn_bf16(s->pool, qkv, 3 * d, qkv_bf16, T, H, scale, (char *)s->eb.scores + sc_len,
                         s->eb.scores, sc_len, attn, d, attn_bf16);
        return;
    }
    ASR_ASSERT(!qkv_bf16);
    enc_attn_job_t j = {s, qkv, attn, d, H, dh, (T + ATT_ROWS - 1) / ATT_ROWS, scale};
    int tasks = asr_pool_n_threads(s->pool); /* each needs ATT_ROWS×1500 of the 1500×1500 */
    asr_pool_run(s->pool, tasks < T / ATT_ROWS ? tasks : T / ATT_ROWS, enc_attn_task, &j);
}

const float *asr__lin_f32(asr_stream_t *s, const asr_linear_t *lin) {
    if (lin->w)
        return lin->w;
    size_t n = (size_t)lin->n_out * (size_t)lin->n_in;
    ASR_ASSERT(n <= s->eb.w_cap);
    asr_nn_h2f_n_mt(s->pool, lin->h, s->eb.w, n);
    return s->eb.w;
}

/* c[T][n] = a·Wᵀ + b: through the oneDNN handle when the model packed one (bfloat16/int8 compute;
 * its scratch is the slot's ENC_W buffer, which the float32 path uses otherwise), else float32.
 * want: what the caller needs done after (ASR_NN_DNNL_GELU: c = GELU(c); ASR_NN_DNNL_ACC: res +=
 * c, c being scratch): oneDNN's handle does it fused when packed so (model.c), else it is done
 * here. */
static void enc_linear(asr_stream_t *s, const asr_linear_t *lin, const float *a, float *c,
                       float *res, int T, int want) {
    if (lin->dn && asr_nn_dnnl_flags(lin->dn) == want) {
        asr_err_t e = asr_nn_dnnl_run(s->pool, lin->dn, a, lin->n_in,
                                      want & ASR_NN_DNNL_ACC ? res : c, lin->n_out, s->eb.w);
        ASR_ASSERT(e == ASR_OK);
        return;
    }
    if (lin->dn) {
        asr_err_t e = asr_nn_dnnl_run(s->pool, lin->dn, a, lin->n_in, c, lin->n_out, s->eb.w);
        ASR_ASSERT(e == ASR_OK);
        ASR_ASSERT(asr_nn_dnnl_flags(lin->dn) == 0);
    } else {
        asr_nn_linear_mt(s->pool, a, lin->n_in, asr__lin_f32(s, lin), lin->n_in, lin->b, c,
                         lin->n_out, T, lin->n_out, lin->n_in);
    }
    if (want & ASR_NN_DNNL_GELU)
        asr_nn_gelu(s->pool, c, (size_t)T * lin->n_out);
    if (want & ASR_NN_DNNL_ACC)
        asr_nn_add(res, c, (size_t)T * lin->n_out);
}

static void enc_layer(asr_stream_t *s, const asr_enc_layer_t *L) {
    const asr_model_t *m = s->m;
    asr_enc_buf_t *b = &s->eb;
    const int T = 1500, d = m->info.d_model;
    float *qkv = b->big, *attn = b->big2; /* qkv bfloat16 where its GEMM writes so (model.c) */
    const int qkv16 = L->qkv.dn && (asr_nn_dnnl_flags(L->qkv.dn) & ASR_NN_DNNL_DST_BF16);
    if (L->qkv.dn && (asr_nn_dnnl_flags(L->qkv.dn) & ASR_NN_DNNL_SRC_BF16)) { /* bfloat16 norm */
        uint16_t *h16 = (uint16_t *)b->h;
        asr_nn_layer_norm_bf16(s->pool, b->x, h16, T, d, L->attn_ln.gamma, L->attn_ln.beta, 1e-5f);
        ASR_ASSERT(asr_nn_dnnl_run_ex(s->pool, L->qkv.dn, h16, d, qkv, 3 * d, b->w) == ASR_OK);
    } else {
        asr_nn_layer_norm(s->pool, b->x, b->h, T, d, L->attn_ln.gamma, L->attn_ln.beta, 1e-5f);
        enc_linear(s, &L->qkv, b->h, qkv, NULL, T, 0);
    }
    if (L->out.dn && (asr_nn_dnnl_flags(L->out.dn) & ASR_NN_DNNL_SRC_BF16)) {
        /* the attention writes bfloat16 for it (model.c packs it so where the attention runs in
         * bfloat16) */
        enc_attention(s, qkv, qkv16, attn, 1);
        ASR_ASSERT(asr_nn_dnnl_run_ex(s->pool, L->out.dn, attn, d, b->x, d, b->w) == ASR_OK);
    } else {
        enc_attention(s, qkv, qkv16, attn, 0);
        enc_linear(s, &L->out, attn, b->h, b->x, T, ASR_NN_DNNL_ACC);
    }
    const int f1 = L->ffn1.dn ? asr_nn_dnnl_flags(L->ffn1.dn) : 0;
    if (f1 & ASR_NN_DNNL_SRC_BF16)
        asr_nn_layer_norm_bf16(s->pool, b->x, (uint16_t *)b->h, T, d, L->ffn_ln.gamma,
                               L->ffn_ln.beta, 1e-5f);
    else
        asr_nn_layer_norm(s->pool, b->x, b->h, T, d, L->ffn_ln.gamma, L->ffn_ln.beta, 1e-5f);
    if (f1 & ASR_NN_DNNL_DST_BF16) {
        /* bfloat16 between them: ffn1 writes GELU(h·W1ᵀ + b1) as bfloat16 into big, ffn2 reads it
         * as it is (packed so together, model.c) */
        ASR_ASSERT(asr_nn_dnnl_run_ex(s->pool, L->ffn1.dn, b->h, d, b->big, L->ffn1.n_out, b->w) ==
                   ASR_OK);
        ASR_ASSERT(asr_nn_dnnl_run_ex(s->pool, L->ffn2.dn, b->big, L->ffn2.n_in, b->x, d, b->w) ==
                   ASR_OK);
        return;
    }
    if (f1 & ASR_NN_DNNL_SRC_BF16) /* ffn2 float32 (model.c unchained it): ffn1 out float32 */
        ASR_ASSERT(asr_nn_dnnl_run_ex(s->pool, L->ffn1.dn, b->h, d, b->big, L->ffn1.n_out, b->w) ==
                   ASR_OK);
    else
        enc_linear(s, &L->ffn1, b->h, b->big, NULL, T, ASR_NN_DNNL_GELU);
    enc_linear(s, &L->ffn2, b->big, b->h, b->x, T, ASR_NN_DNNL_ACC);
}

static void encode_window(asr_stream_t *s, const float *mel_window) {
    const asr_model_t *m = s->m;
    asr_enc_buf_t *b = &s->eb;
    const int d = m->info.d_model, M = m->info.n_mels;
    float *c1 = b->big2 + d; /* conv1's output [3000][d] after a row of zeros */
    im2col_cm(mel_window, M, 3000, b->big);
    if (m->conv1_dn) /* GELU fused (model.c) */
        ASR_ASSERT(asr_nn_dnnl_run(s->pool, m->conv1_dn, b->big, 3 * M, c1, d, b->w) == ASR_OK);
    else
        asr_nn_linear_mt(s->pool, b->big, 3 * M, m->conv1_w, 3 * M, m->conv1_b, c1, d, 3000, d,
                         3 * M);
    if (!m->conv1_dn || !(asr_nn_dnnl_flags(m->conv1_dn) & ASR_NN_DNNL_GELU))
        asr_nn_gelu(s->pool, c1, (size_t)3000 * d);
    if (m->conv2_dn) { /* taps outermost, GELU fused (model.c): row t of its input is conv1's
                          rows 2t-1, 2t and 2t+1 as they lie, 2d apart */
        memset(b->big2, 0, sizeof(float) * d);
        ASR_ASSERT(asr_nn_dnnl_run(s->pool, m->conv2_dn, b->big2, 2 * d, b->x, d, b->w) == ASR_OK);
    } else {
        im2col_tm_s2(c1, d, 3000, b->big);
        asr_nn_linear_mt(s->pool, b->big, 3 * d, m->conv2_w, 3 * d, m->conv2_b, b->x, d, 1500, d,
                         3 * d);
    }
    if (!m->conv2_dn || !(asr_nn_dnnl_flags(m->conv2_dn) & ASR_NN_DNNL_GELU))
        asr_nn_gelu(s->pool, b->x, (size_t)1500 * d);
    asr_nn_add(b->x, m->enc_pos, (size_t)1500 * d);
    for (int l = 0; l < m->info.n_audio_layer; l++)
        enc_layer(s, &m->enc[l]);
    asr_nn_layer_norm(s->pool, b->x, b->out, 1500, d, m->enc_ln.gamma, m->enc_ln.beta, 1e-5f);
}

void asr__encode(asr_stream_t *s, const float *mel_window) {
    double t0 = asr_now_s();
    if (s->g) /* the device's pass computes the cross K/V too (asr__dec_cross_kv: nothing left) */
        asr__gpu_encode(s, mel_window, false);
    else
        encode_window(s, mel_window);
    s->enc_out_live = true;
    s->xkv_live = false;
    s->timings.encode_s += asr_now_s() - t0;
    s->timings.n_encodes++;
}
