/* engine: Whisper text decoder with a self-attention KV cache and cross-attention K/V computed
 * once per 30-s window. asr__dec_forward runs a block of n tokens (the prompt) or one token (a
 * decoding step) through the same code; nothing here allocates. */
#include <math.h>
#include <string.h>

#include "engine/engine_int.h"

asr_err_t asr__dec_init(asr_stream_t *s) {
    const asr_model_t *m = s->m;
    size_t d = (size_t)m->info.d_model, L = (size_t)m->info.n_text_layer;
    size_t C = (size_t)m->info.n_text_ctx, ff = (size_t)m->dec[0].ffn1.n_out;
    s->cross_kv = asr_malloc_aligned(L * 1500 * 2 * d * sizeof(float));
    s->self_k = asr_malloc_aligned(L * C * d * sizeof(float));
    s->self_v = asr_malloc_aligned(L * C * d * sizeof(float));
    s->dx = asr_malloc_aligned(C * d * sizeof(float));
    s->dh = asr_malloc_aligned(C * d * sizeof(float));
    s->dqkv = asr_malloc_aligned(C * 3 * d * sizeof(float));
    s->dattn = asr_malloc_aligned(C * d * sizeof(float));
    s->dffn = asr_malloc_aligned(C * ff * sizeof(float));
    s->dscores = asr_malloc_aligned(C * 1500 * sizeof(float));
    s->logits = asr_malloc_aligned((size_t)m->info.n_vocab * sizeof(float));
    s->logprobs = asr_malloc_aligned((size_t)m->info.n_vocab * sizeof(float));
    if (!s->cross_kv || !s->self_k || !s->self_v || !s->dx || !s->dh || !s->dqkv || !s->dattn ||
        !s->dffn || !s->dscores || !s->logits || !s->logprobs)
        return ASR_ERR_NOMEM;
    return ASR_OK;
}

void asr__dec_free(asr_stream_t *s) {
    asr_free_aligned(s->cross_kv);
    asr_free_aligned(s->self_k);
    asr_free_aligned(s->self_v);
    asr_free_aligned(s->dx);
    asr_free_aligned(s->dh);
    asr_free_aligned(s->dqkv);
    asr_free_aligned(s->dattn);
    asr_free_aligned(s->dffn);
    asr_free_aligned(s->dscores);
    asr_free_aligned(s->logits);
    asr_free_aligned(s->logprobs);
}

void asr__dec_cross_kv(asr_stream_t *s) {
    const asr_model_t *m = s->m;
    const int d = m->info.d_model;
    asr_nn_set_gemm_threads(s->n_threads);
    for (int l = 0; l < m->info.n_text_layer; l++) {
        const asr_linear_t *kv = &m->dec[l].cross_kv;
        asr_nn_linear(s->eb.out, d, kv->w, d, kv->b, s->cross_kv + (size_t)l * 1500 * 2 * d, 2 * d,
                      1500, 2 * d, d);
    }
}

void asr__dec_forward(asr_stream_t *s, const int32_t *tokens, int n, int pos0, int logits_row) {
    const asr_model_t *m = s->m;
    const int d = m->info.d_model, H = m->info.n_text_head, dh = d / H;
    const int C = m->info.n_text_ctx, ctx = pos0 + n;
    const float scale = 1.0f / sqrtf((float)dh);
    asr_pool_t *pool = n >= 16 ? s->pool : NULL;
    asr_nn_set_gemm_threads(n >= 4 ? s->n_threads : 1);
    for (int i = 0; i < n; i++) {
        const float *e = m->tok_emb + (size_t)tokens[i] * d,
                    *p = m->dec_pos + (size_t)(pos0 + i) * d;
        float *x = s->dx + (size_t)i * d;
        for (int j = 0; j < d; j++)
            x[j] = e[j] + p[j];
    }
    for (int l = 0; l < m->info.n_text_layer; l++) {
        const asr_dec_layer_t *L = &m->dec[l];
        float *K = s->self_k + (size_t)l * C * d, *V = s->self_v + (size_t)l * C * d;
        /* self-attention */
        asr_nn_layer_norm(pool, s->dx, s->dh, n, d, L->attn_ln.gamma, L->attn_ln.beta, 1e-5f);
        asr_nn_linear(s->dh, d, L->qkv.w, d, L->qkv.b, s->dqkv, 3 * d, n, 3 * d, d);
        for (int i = 0; i < n; i++) {
            memcpy(K + (size_t)(pos0 + i) * d, s->dqkv + (size_t)i * 3 * d + d, d * sizeof(float));
            memcpy(V + (size_t)(pos0 + i) * d, s->dqkv + (size_t)i * 3 * d + 2 * d,
                   d * sizeof(float));
        }
        for (int h = 0; h < H; h++) {
            asr_nn_gemm_nt(s->dqkv + h * dh, 3 * d, K + h * dh, d, s->dscores, ctx, n, ctx, dh,
                           scale);
            for (int i = 0; i < n; i++) /* causal mask */
                for (int j = pos0 + i + 1; j < ctx; j++)
                    s->dscores[(size_t)i * ctx + j] = -INFINITY;
            asr_nn_softmax_rows(pool, s->dscores, n, ctx, ctx);
            asr_nn_gemm_nn(s->dscores, ctx, V + h * dh, d, s->dattn + h * dh, d, n, dh, ctx);
        }
        asr_nn_linear(s->dattn, d, L->out.w, d, L->out.b, s->dh, d, n, d, d);
        asr_nn_add(s->dx, s->dh, (size_t)n * d);
        /* cross-attention */
        const float *ckv = s->cross_kv + (size_t)l * 1500 * 2 * d;
        asr_nn_layer_norm(pool, s->dx, s->dh, n, d, L->cross_ln.gamma, L->cross_ln.beta, 1e-5f);
        asr_nn_linear(s->dh, d, L->cross_q.w, d, L->cross_q.b, s->dqkv, d, n, d, d);
        for (int h = 0; h < H; h++) {
            asr_nn_gemm_nt(s->dqkv + h * dh, d, ckv + h * dh, 2 * d, s->dscores, 1500, n, 1500, dh,
                           scale);
            asr_nn_softmax_rows(pool, s->dscores, n, 1500, 1500);
            asr_nn_gemm_nn(s->dscores, 1500, ckv + d + h * dh, 2 * d, s->dattn + h * dh, d, n, dh,
                           1500);
        }
        asr_nn_linear(s->dattn, d, L->cross_out.w, d, L->cross_out.b, s->dh, d, n, d, d);
        asr_nn_add(s->dx, s->dh, (size_t)n * d);
        /* feed-forward */
        int ff = L->ffn1.n_out;
        asr_nn_layer_norm(pool, s->dx, s->dh, n, d, L->ffn_ln.gamma, L->ffn_ln.beta, 1e-5f);
        asr_nn_linear(s->dh, d, L->ffn1.w, d, L->ffn1.b, s->dffn, ff, n, ff, d);
        asr_nn_gelu(pool, s->dffn, (size_t)n * ff);
        asr_nn_linear(s->dffn, ff, L->ffn2.w, ff, L->ffn2.b, s->dh, d, n, d, ff);
        asr_nn_add(s->dx, s->dh, (size_t)n * d);
    }
    if (logits_row >= 0 && logits_row < n) {
        asr_nn_set_gemm_threads(s->n_threads);
        float *row = s->dh; /* reuse: final norm of one row */
        asr_nn_layer_norm(NULL, s->dx + (size_t)logits_row * d, row, 1, d, m->dec_ln.gamma,
                          m->dec_ln.beta, 1e-5f);
        asr_nn_linear(row, d, m->tok_emb, d, NULL, s->logits, m->info.n_vocab, 1, m->info.n_vocab,
                      d);
    }
}
