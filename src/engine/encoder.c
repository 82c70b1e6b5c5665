/* engine: Whisper audio encoder. conv1 (k3, s1) → GELU → conv2 (k3, s2) → GELU → + positions →
 * N pre-norm transformer layers → final layer norm. Convolutions run as im2col + GEMM with the
 * time axis as rows, so every activation is [time][channels] and feeds the linear layers directly.
 * All buffers come from asr_enc_buf_t, in the stream's slot arena. */
#include <math.h>
#include <string.h>

#include "engine/engine_int.h"

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

static void enc_layer(asr_stream_t *s, const asr_enc_layer_t *L) {
    const asr_model_t *m = s->m;
    asr_enc_buf_t *b = &s->eb;
    const int T = 1500, d = m->info.d_model, H = m->info.n_audio_head, dh = d / H;
    float *qkv = b->big, *attn = b->big2;
    asr_nn_layer_norm(s->pool, b->x, b->h, T, d, L->attn_ln.gamma, L->attn_ln.beta, 1e-5f);
    asr_nn_linear(b->h, d, L->qkv.w, d, L->qkv.b, qkv, 3 * d, T, 3 * d, d);
    const float scale = 1.0f / sqrtf((float)dh);
    for (int h = 0; h < H; h++) {
        const float *q = qkv + h * dh, *k = qkv + d + h * dh, *v = qkv + 2 * d + h * dh;
        asr_nn_gemm_nt(q, 3 * d, k, 3 * d, b->scores, T, T, T, dh, scale);
        asr_nn_softmax_rows(s->pool, b->scores, T, T, T);
        asr_nn_gemm_nn(b->scores, T, v, 3 * d, attn + h * dh, d, T, dh, T);
    }
    asr_nn_linear(attn, d, L->out.w, d, L->out.b, b->h, d, T, d, d);
    asr_nn_add(b->x, b->h, (size_t)T * d);
    asr_nn_layer_norm(s->pool, b->x, b->h, T, d, L->ffn_ln.gamma, L->ffn_ln.beta, 1e-5f);
    int ff = L->ffn1.n_out;
    asr_nn_linear(b->h, d, L->ffn1.w, d, L->ffn1.b, b->big, ff, T, ff, d);
    asr_nn_gelu(s->pool, b->big, (size_t)T * ff);
    asr_nn_linear(b->big, ff, L->ffn2.w, ff, L->ffn2.b, b->h, d, T, d, ff);
    asr_nn_add(b->x, b->h, (size_t)T * d);
}

void asr__encode(asr_stream_t *s, const float *mel_window) {
    const asr_model_t *m = s->m;
    asr_enc_buf_t *b = &s->eb;
    const int d = m->info.d_model, M = m->info.n_mels;
    asr_nn_set_gemm_threads(s->n_threads);
    im2col_cm(mel_window, M, 3000, b->big);
    asr_nn_linear(b->big, 3 * M, m->conv1_w, 3 * M, m->conv1_b, b->big2, d, 3000, d, 3 * M);
    asr_nn_gelu(s->pool, b->big2, (size_t)3000 * d);
    im2col_tm_s2(b->big2, d, 3000, b->big);
    asr_nn_linear(b->big, 3 * d, m->conv2_w, 3 * d, m->conv2_b, b->x, d, 1500, d, 3 * d);
    asr_nn_gelu(s->pool, b->x, (size_t)1500 * d);
    asr_nn_add(b->x, m->enc_pos, (size_t)1500 * d);
    for (int l = 0; l < m->info.n_audio_layer; l++)
        enc_layer(s, &m->enc[l]);
    asr_nn_layer_norm(s->pool, b->x, b->out, 1500, d, m->enc_ln.gamma, m->enc_ln.beta, 1e-5f);
}
