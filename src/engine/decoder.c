/* engine: Whisper text decoder with per-sequence self-attention KV caches (beams or samples) and
 * cross-attention K/V computed once per 30-s window. asr__dec_forward runs a block of prompt
 * tokens of one sequence; asr__dec_step runs one token for each of n sequences in one batch (the
 * linear layers see n rows, so the weights are read once per step). The positions a forward pass
 * from position 0 wrote to sequence 0 are the prompt every sequence shares: steps read them from
 * sequence 0 (other sequences' copies of them are never read). Nothing here allocates: every
 * buffer is in the stream's slot arena. */
#include <math.h>
#include <string.h>

#include "engine/engine_int.h"
#include "engine/gpu_int.h"

static size_t seq_stride(const asr_model_t *m) {
    return (size_t)m->info.n_text_layer * m->info.n_text_ctx * m->info.d_model;
}

/* A decoder linear layer on m rows, its weights in the compute type's storage. */
static void dec_linear(asr_stream_t *s, const asr_linear_t *lin, const float *a, int lda, float *c,
                       int ldc, int m) {
    asr_nn_linear_w(s->pool, a, lda, &lin->wm, lin->b, c, ldc, m, lin->n_out, lin->n_in);
}

/* Cross-attention keys and values of every layer from the encoder output, once per window, in
 * a layout the decoding step reads as contiguous streams. Layer l's block of cross_kv holds, per
 * head, Kᵀ in tiles of XT keys ([1500/XT][d_head][XT], the last tile 12 keys wide),
 * pre-multiplied by 1/sqrt(d_head) so scores need no scaling; then, per head, V in tiles of XT
 * channels ([d_head/XT][1500][XT]). Float32 under the float32 compute type; float16 under
 * bfloat16 and int8 (half the bytes each step reads). Computed in float32 in the encoder's free
 * scratch. */
#define XT 16
#define XT_FULL (1500 / XT)           /* 93 full key tiles */
#define XT_LAST (1500 - XT_FULL * XT) /* 12 keys */
static bool cross_half(const asr_stream_t *s) { return s->m->wtype != ASR_W_F32; }

/* element offset of K[t][c] of head h in a layer block */
static size_t k_off(int dh, int h, int t, int c) {
    size_t head = (size_t)h * dh * 1500, tile = (size_t)(t / XT) * dh * XT;
    return head + tile +
           (t / XT < XT_FULL ? (size_t)c * XT + t % XT : (size_t)c * XT_LAST + t % XT);
}

/* element offset of V[t][c] of head h in a layer block of width d */
static size_t v_off(int d, int dh, int h, int t, int c) {
    return (size_t)d * 1500 + (size_t)h * 1500 * dh + (size_t)(c / XT) * 1500 * XT +
           (size_t)t * XT + c % XT;
}

/* src element (key t, channel c) at src[t * st + c * sc], times scale. Under float16 the block is
 * packed in float32 into the encoder's free scratch first, then converted in one vector pass. */
static void pack_cross(const asr_stream_t *s, const float *src, size_t st, size_t sc, int d, int dh,
                       bool is_k, size_t base, float scale) {
    const bool half = cross_half(s);
    const size_t first = is_k ? 0 : (size_t)d * 1500; /* the block's offsets start here */
    float *f = half ? s->eb.big2 : s->cross_kv + base + first;
    if (is_k) { /* a tile's keys are consecutive: 16 source rows at a time stay in cache */
        for (int t0 = 0; t0 < 1500; t0 += XT) {
            const int w = t0 / XT < XT_FULL ? XT : XT_LAST;
            for (int h = 0, c = 0; h < d / dh; h++)
                for (int ch = 0; ch < dh; ch++, c++) {
                    float *o = f + k_off(dh, h, t0, ch);
                    const float *sp = src + (size_t)t0 * st + (size_t)c * sc;
                    for (int i = 0; i < w; i++)
                        o[i] = sp[(size_t)i * st] * scale;
                }
        }
    } else { /* XT consecutive channels of a key are consecutive */
        for (int t = 0; t < 1500; t++)
            for (int c0 = 0; c0 < d; c0 += XT) {
                float *o = f + (v_off(d, dh, c0 / dh, t, c0 % dh) - first);
                const float *sp = src + (size_t)t * st + (size_t)c0 * sc;
                for (int i = 0; i < XT; i++)
                    o[i] = sp[(size_t)i * sc] * scale;
            }
    }
    if (half)
        asr_nn_f2h_n(f, (uint16_t *)s->cross_kv + base + first, (size_t)d * 1500);
}

static void cross_kv(asr_stream_t *s) {
    const asr_model_t *m = s->m;
    const int d = m->info.d_model, dh = d / m->info.n_text_head;
    const float scale = 1.0f / sqrtf((float)dh);
    for (int l = 0; l < m->info.n_text_layer; l++) {
        const asr_linear_t *kv = &m->dec[l].cross_kv;
        size_t base = (size_t)l * 2 * d * 1500;
        if (kv->dn) { /* bfloat16/int8 on oneDNN, as the encoder: [K | V] = X·[Wk; Wv]ᵀ + b */
            asr_err_t e = asr_nn_dnnl_run(s->pool, kv->dn, s->eb.out, d, s->eb.big, 2 * d, s->eb.w);
            ASR_ASSERT(e == ASR_OK);
            pack_cross(s, s->eb.big, (size_t)2 * d, 1, d, dh, true, base, scale);
            pack_cross(s, s->eb.big + d, (size_t)2 * d, 1, d, dh, false, base, 1.0f);
            continue;
        }
        /* Kᵀ·scale = scale·(Wk·Xᵀ) + scale·bk, computed as [d][1500]: the order of operations
         * that reproduces faster-whisper's transcripts */
        const float *w = asr__lin_f32(s, kv); /* [2d][d]: Wk then Wv */
        asr_nn_gemm_nt_mt(s->pool, w, d, s->eb.out, d, s->eb.big, 1500, d, 1500, d, scale);
        if (kv->b)
            for (int r = 0; r < d; r++)
                for (int t = 0; t < 1500; t++)
                    s->eb.big[(size_t)r * 1500 + t] += kv->b[r] * scale;
        pack_cross(s, s->eb.big, 1, 1500, d, dh, true, base, 1.0f);
        asr_nn_linear_mt(s->pool, s->eb.out, d, w + (size_t)d * d, d, kv->b ? kv->b + d : NULL,
                         s->eb.big, d, 1500, d, d);
        pack_cross(s, s->eb.big, (size_t)d, 1, d, dh, false, base, 1.0f);
    }
}

/* c[m][n] = p[m][ctx] · (ctx×n block at element off, leading dimension ldv), either storage */
static void cross_mm(const asr_stream_t *s, const float *p, int ldp, size_t off, int ldv, float *c,
                     int ldc, int m, int n, int ctx) {
    if (cross_half(s))
        asr_nn_gemm_nn_small_h(p, ldp, (const uint16_t *)s->cross_kv + off, ldv, c, ldc, m, n, ctx);
    else if (m <= ASR_NN_SMALL_M)
        asr_nn_gemm_nn_small(p, ldp, s->cross_kv + off, ldv, c, ldc, m, n, ctx);
    else /* prompts: BLAS, whose sums match faster-whisper's transcripts more often */
        asr_nn_gemm_nn(p, ldp, s->cross_kv + off, ldv, c, ldc, m, n, ctx);
}

/* scores[m][1500] = q[m][d_head] · Kᵀ of head h of the layer block at `base` */
static void cross_scores(const asr_stream_t *s, const float *q, int ldq, size_t base, int dh, int h,
                         float *sc, int m) {
    for (int tt = 0; tt <= XT_FULL; tt++) {
        int w = tt < XT_FULL ? XT : XT_LAST;
        cross_mm(s, q, ldq, base + k_off(dh, h, tt * XT, 0), w, sc + tt * XT, 1500, m, w, dh);
    }
}

/* out[m][d_head] (leading dimension ldo) = p[m][1500] · V of head h */
static void cross_values(const asr_stream_t *s, const float *p, size_t base, int d, int dh, int h,
                         float *out, int ldo, int m) {
    for (int ct = 0; ct < dh / XT; ct++)
        cross_mm(s, p, 1500, base + v_off(d, dh, h, 0, ct * XT), XT, out + ct * XT, ldo, m, XT,
                 1500);
}

/* Copies the raw scores of (layer l, head h) when it is an alignment head. */
static void capture_alignment(asr_stream_t *s, int l, int h, int n) {
    const asr_model_t *m = s->m;
    for (int k = 0; k < m->n_alignment_heads; k++) {
        if (m->alignment_heads[k][0] != l || m->alignment_heads[k][1] != h)
            continue;
        int rows = n < s->align_rows ? n : s->align_rows;
        for (int r = 0; r < rows; r++)
            memcpy(s->align_capture + ((size_t)k * s->align_rows + r) * s->align_frames,
                   s->dscores + (size_t)r * 1500, (size_t)s->align_frames * sizeof(float));
    }
}

/* Cross-attention of few rows (n <= ASR_NN_SMALL_M), heads in parallel over the pool: head h
 * uses rows [h*n, h*n + n) of dscores. */
typedef struct {
    asr_stream_t *s;
    size_t off; /* the layer's block in cross_kv (elements) */
    int n, d, dh;
} xattn_job_t;

static void xattn_head(void *ctx, int h, int n_tasks) {
    (void)n_tasks;
    xattn_job_t *j = ctx;
    asr_stream_t *s = j->s;
    const int n = j->n, d = j->d, dh = j->dh;
    float *sc = s->dscores + (size_t)h * n * 1500;
    cross_scores(s, s->dqkv + h * dh, d, j->off, dh, h, sc, n);
    for (int i = 0; i < n; i++)
        asr_nn_softmax_row_fast(sc + (size_t)i * 1500, 1500, 1.0f);
    cross_values(s, sc, j->off, d, dh, h, s->dattn + h * dh, d, n);
}

/* Cross-attention and feed-forward of layer l for n rows of s->dx (shared by both paths). */
static void cross_and_ffn(asr_stream_t *s, const asr_dec_layer_t *L, int l, int n,
                          asr_pool_t *pool) {
    const asr_model_t *m = s->m;
    int d = m->info.d_model, H = m->info.n_text_head, dh = d / H;
    const size_t off = (size_t)l * 1500 * 2 * d; /* the layer's Kᵀ (scaled), then V */
    asr_nn_layer_norm(pool, s->dx, s->dh, n, d, L->cross_ln.gamma, L->cross_ln.beta, 1e-5f);
    dec_linear(s, &L->cross_q, s->dh, d, s->dqkv, d, n);
    if (n <= ASR_NN_SMALL_M && !s->align_capture) {
        xattn_job_t j = {s, off, n, d, dh};
        asr_pool_run(s->pool, H, xattn_head, &j);
        H = 0; /* done */
    }
    for (int h = 0; h < H; h++) {
        cross_scores(s, s->dqkv + h * dh, d, off, dh, h, s->dscores, n);
        if (s->align_capture)
            capture_alignment(s, l, h, n);
        asr_nn_softmax_rows(pool, s->dscores, n, 1500, 1500);
        cross_values(s, s->dscores, off, d, dh, h, s->dattn + h * dh, d, n);
    }
    dec_linear(s, &L->cross_out, s->dattn, d, s->dh, d, n);
    asr_nn_add(s->dx, s->dh, (size_t)n * d);
    int ff = L->ffn1.n_out;
    asr_nn_layer_norm(pool, s->dx, s->dh, n, d, L->ffn_ln.gamma, L->ffn_ln.beta, 1e-5f);
    dec_linear(s, &L->ffn1, s->dh, d, s->dffn, ff, n);
    asr_nn_gelu(pool, s->dffn, (size_t)n * ff);
    dec_linear(s, &L->ffn2, s->dffn, ff, s->dh, d, n);
    asr_nn_add(s->dx, s->dh, (size_t)n * d);
}

static void embed_to(const asr_model_t *m, float *dx, const int32_t *tokens, int n, int pos0,
                     int same_pos) {
    const int d = m->info.d_model;
    for (int i = 0; i < n; i++) {
        const float *p = m->dec_pos + (size_t)(pos0 + (same_pos ? 0 : i)) * d;
        float *x = dx + (size_t)i * d;
        asr__embed_row(m, tokens[i], x);
        for (int j = 0; j < d; j++)
            x[j] += p[j];
    }
}

static void embed(asr_stream_t *s, const int32_t *tokens, int n, int pos0, int same_pos) {
    embed_to(s->m, s->dx, tokens, n, pos0, same_pos);
}

static void logits_rows(asr_stream_t *s, int first_row, int n_rows) {
    const asr_model_t *m = s->m;
    const int d = m->info.d_model;
    asr_nn_layer_norm(NULL, s->dx + (size_t)first_row * d, s->dh, n_rows, d, m->dec_ln.gamma,
                      m->dec_ln.beta, 1e-5f);
    asr__logits(m, s->pool, s->dh, n_rows, s->logits, m->info.n_vocab, NULL);
}

void asr__dec_logits_row(asr_stream_t *s, int row) {
    if (s->g)
        asr__gpu_logits_row(s, row);
    else
        logits_rows(s, row, 1);
}

void asr__dec_cross_kv(asr_stream_t *s) {
    ASR_ASSERT(s->enc_out_live);
    if (s->g) { /* computed by the device's encoder pass */
        s->xkv_live = true;
        return;
    }
    double t0 = asr_now_s();
    cross_kv(s);
    s->xkv_live = true;
    s->timings.cross_kv_s += asr_now_s() - t0;
}

void asr__dec_reset(asr_stream_t *s, int shared) {
    s->self_shared = shared;
    for (int i = 0; i < ASR_SLOT_MAX_SEQ; i++) /* sequence i in slot i; the prompt in slot 0 */
        s->slot_of[i] = i;
}

void asr__dec_forward(asr_stream_t *s, const int32_t *tokens, int n, int pos0, int logits_row) {
    s->timings.n_steps++;
    s->enc_out_live = false;
    if (pos0 == 0)
        asr__dec_reset(s, n);
    else if (s->self_shared > pos0)
        s->self_shared = pos0;
    if (s->g) {
        asr__gpu_forward(s, tokens, n, pos0, logits_row);
        return;
    }
    const asr_model_t *m = s->m;
    const int d = m->info.d_model, H = m->info.n_text_head, dh = d / H;
    const int C = m->info.n_text_ctx, ctx = pos0 + n;
    const float scale = 1.0f / sqrtf((float)dh);
    asr_pool_t *pool = n >= 16 ? s->pool : NULL;
    embed(s, tokens, n, pos0, 0);
    for (int l = 0; l < m->info.n_text_layer; l++) {
        const asr_dec_layer_t *L = &m->dec[l];
        float *K = s->self_k + (size_t)l * C * d, *V = s->self_v + (size_t)l * C * d;
        asr_nn_layer_norm(pool, s->dx, s->dh, n, d, L->attn_ln.gamma, L->attn_ln.beta, 1e-5f);
        dec_linear(s, &L->qkv, s->dh, d, s->dqkv, 3 * d, n);
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
        dec_linear(s, &L->out, s->dattn, d, s->dh, d, n);
        asr_nn_add(s->dx, s->dh, (size_t)n * d);
        cross_and_ffn(s, L, l, n, pool);
    }
    if (logits_row >= 0 && logits_row < n)
        logits_rows(s, logits_row, 1);
}

/* Self-attention of one new token per sequence over its cache, heads in parallel. The shared
 * prompt positions [0, P) are read once, from sequence 0, for all sequences together (q·Kᵀ and
 * P·V with n_seq rows); only the positions after it come from each sequence's own cache. */
typedef struct {
    asr_stream_t *s;
    int l, n_seq, pos, d, dh, H, C, shared;
    float scale;
} sattn_job_t;

static void sattn_head(void *ctx, int h, int n_tasks) {
    (void)n_tasks;
    sattn_job_t *j = ctx;
    asr_stream_t *s = j->s;
    const int d = j->d, dh = j->dh, n = j->n_seq, ctx_len = j->pos + 1, C = j->C;
    const int P = j->shared < ctx_len ? j->shared : 0;
    const size_t stride = seq_stride(s->m), layer = (size_t)j->l * C * d;
    float *sc = s->dscores + (size_t)h * n * C;
    const float *q = s->dqkv + h * dh;
    if (P > 0)
        asr__nn_linear_rows(q, 3 * d, s->self_k + layer + h * dh, d, NULL, sc, C, n, 0, P, dh);
    for (int i = 0; i < n; i++)
        asr__nn_linear_rows(q + (size_t)i * 3 * d, 3 * d,
                            s->self_k + (size_t)s->slot_of[i] * stride + layer + h * dh, d, NULL,
                            sc + (size_t)i * C, C, 1, P, ctx_len, dh);
    for (int i = 0; i < n; i++)
        asr_nn_softmax_row_fast(sc + (size_t)i * C, ctx_len, j->scale);
    float *out = s->dattn + h * dh, tail[256];
    ASR_ASSERT(dh <= 256);
    if (P > 0)
        asr_nn_gemm_nn_small(sc, C, s->self_v + layer + h * dh, d, out, d, n, dh, P);
    for (int i = 0; i < n; i++) {
        const float *V =
            s->self_v + (size_t)s->slot_of[i] * stride + layer + (size_t)P * d + h * dh;
        float *t = P > 0 ? tail : out + (size_t)i * d;
        asr_nn_gemm_nn_small(sc + (size_t)i * C + P, C, V, d, t, dh, 1, dh, ctx_len - P);
        if (P > 0)
            asr_nn_add(out + (size_t)i * d, tail, (size_t)dh);
    }
}

void asr__dec_step(asr_stream_t *s, const int32_t *tokens, int n_seq, int pos) {
    s->timings.n_steps++;
    s->enc_out_live = false;
    if (s->g) {
        asr__gpu_step(s, tokens, n_seq, pos);
        return;
    }
    if (s->m->cb && !s->align_capture && n_seq <= ASR_NN_SMALL_M &&
        asr__cpu_batch_step(s, tokens, n_seq, pos))
        return;
    const asr_model_t *m = s->m;
    const int d = m->info.d_model, H = m->info.n_text_head, dh = d / H;
    const int C = m->info.n_text_ctx;
    const size_t stride = seq_stride(m);
    const float scale = 1.0f / sqrtf((float)dh);
    embed(s, tokens, n_seq, pos, 1);
    for (int l = 0; l < m->info.n_text_layer; l++) {
        const asr_dec_layer_t *L = &m->dec[l];
        asr_nn_layer_norm(NULL, s->dx, s->dh, n_seq, d, L->attn_ln.gamma, L->attn_ln.beta, 1e-5f);
        dec_linear(s, &L->qkv, s->dh, d, s->dqkv, 3 * d, n_seq);
        for (int i = 0; i < n_seq; i++) {
            float *K = s->self_k + (size_t)s->slot_of[i] * stride + (size_t)l * C * d;
            float *V = s->self_v + (size_t)s->slot_of[i] * stride + (size_t)l * C * d;
            const float *q = s->dqkv + (size_t)i * 3 * d;
            memcpy(K + (size_t)pos * d, q + d, d * sizeof(float));
            memcpy(V + (size_t)pos * d, q + 2 * d, d * sizeof(float));
        }
        sattn_job_t j = {s, l, n_seq, pos, d, dh, H, C, s->self_shared, scale};
        asr_pool_run(s->pool, H, sattn_head, &j);
        dec_linear(s, &L->out, s->dattn, d, s->dh, d, n_seq);
        asr_nn_add(s->dx, s->dh, (size_t)n_seq * d);
        cross_and_ffn(s, L, l, n_seq, NULL);
    }
    logits_rows(s, 0, n_seq);
}

/* The batched step (cpu_batch.c): the rows of every stream in one pass of each linear layer.
 * Stream i's rows are rows [r_i, r_i + n_i) of the first stream's (the leader's) row buffers dx,
 * dh, dqkv, dattn, dffn (sized for n_text_ctx rows); its attention runs on its own caches and
 * buffers, its q rows copied in and its attention rows copied out. The int8 activations go to the
 * leader's dscores (free between attentions), the logits rows to its dqkv..dscores span (free at
 * the end), in blocks, then to each stream's logits. Every row sees the kernels and the order of
 * operations asr__dec_step gives it alone, so each stream's logits are the same. */
static void many_linear(asr_stream_t *L0, asr_pool_t *pool, const asr_linear_t *lin, const float *a,
                        int lda, float *c, int ldc, int rows) {
    asr_nn_linear_w_many(pool, a, lda, &lin->wm, lin->b, c, ldc, rows, lin->n_out, lin->n_in,
                         L0->dscores);
}

static void many_logits(asr_stream_t *const *ss, int k, const int *r0, int R, asr_pool_t *pool) {
    asr_stream_t *L0 = ss[0];
    const asr_model_t *m = L0->m;
    const int d = m->info.d_model, V = m->info.n_vocab;
    const size_t C = (size_t)m->info.n_text_ctx;
    float *out = L0->dqkv, *end = L0->dscores + C * 1500;
    const int cap = (int)((size_t)(end - out) / (size_t)V);
    ASR_ASSERT(cap >= ASR_NN_SMALL_M && asr_nn_linear_w_qbytes(R, d) <= C * d * sizeof(float));
    asr_nn_layer_norm(NULL, L0->dx, L0->dh, R, d, m->dec_ln.gamma, m->dec_ln.beta, 1e-5f);
    for (int b0 = 0; b0 < R; b0 += cap) { /* dx (normed into dh) holds int8's activations */
        int nb = R - b0 < cap ? R - b0 : cap;
        asr__logits(m, pool, L0->dh + (size_t)b0 * d, nb, out, V, L0->dx);
        for (int i = 0; i < k; i++)
            for (int r = 0; r < ss[i]->cb.n; r++)
                if (r0[i] + r >= b0 && r0[i] + r < b0 + nb)
                    memcpy(ss[i]->logits + (size_t)r * V, out + (size_t)(r0[i] + r - b0) * V,
                           (size_t)V * sizeof(float));
    }
}

void asr__dec_step_many(asr_stream_t *const *ss, int k, asr_pool_t *pool) {
    asr_stream_t *L0 = ss[0];
    const asr_model_t *m = L0->m;
    const int d = m->info.d_model, H = m->info.n_text_head, dh = d / H;
    const int C = m->info.n_text_ctx;
    const size_t stride = seq_stride(m), fl = sizeof(float);
    const float scale = 1.0f / sqrtf((float)dh);
    int r0[ASR_CPU_BATCH_MAX_STREAMS], R = 0;
    ASR_ASSERT(k >= 1 && k <= ASR_CPU_BATCH_MAX_STREAMS);
    for (int i = 0; i < k; i++) {
        r0[i] = R;
        embed_to(m, L0->dx + (size_t)R * d, ss[i]->cb.tokens, ss[i]->cb.n, ss[i]->cb.pos, 1);
        R += ss[i]->cb.n;
    }
    for (int l = 0; l < m->info.n_text_layer; l++) {
        const asr_dec_layer_t *L = &m->dec[l];
        const int ff = L->ffn1.n_out;
        asr_nn_layer_norm(NULL, L0->dx, L0->dh, R, d, L->attn_ln.gamma, L->attn_ln.beta, 1e-5f);
        many_linear(L0, pool, &L->qkv, L0->dh, d, L0->dqkv, 3 * d, R);
        for (int i = 0; i < k; i++) {
            asr_stream_t *s = ss[i];
            const int n = s->cb.n, pos = s->cb.pos;
            const float *qkv = L0->dqkv + (size_t)r0[i] * 3 * d;
            for (int r = 0; r < n; r++) {
                size_t at = (size_t)s->slot_of[r] * stride + ((size_t)l * C + pos) * d;
                memcpy(s->self_k + at, qkv + (size_t)r * 3 * d + d, d * fl);
                memcpy(s->self_v + at, qkv + (size_t)r * 3 * d + 2 * d, d * fl);
            }
            if (s != L0)
                memcpy(s->dqkv, qkv, (size_t)n * 3 * d * fl);
            sattn_job_t j = {s, l, n, pos, d, dh, H, C, s->self_shared, scale};
            asr_pool_run(pool, H, sattn_head, &j);
            if (s != L0)
                memcpy(L0->dattn + (size_t)r0[i] * d, s->dattn, (size_t)n * d * fl);
        }
        many_linear(L0, pool, &L->out, L0->dattn, d, L0->dh, d, R);
        asr_nn_add(L0->dx, L0->dh, (size_t)R * d);
        asr_nn_layer_norm(NULL, L0->dx, L0->dh, R, d, L->cross_ln.gamma, L->cross_ln.beta, 1e-5f);
        many_linear(L0, pool, &L->cross_q, L0->dh, d, L0->dqkv, d, R);
        for (int i = 0; i < k; i++) {
            asr_stream_t *s = ss[i];
            const int n = s->cb.n;
            if (s != L0)
                memcpy(s->dqkv, L0->dqkv + (size_t)r0[i] * d, (size_t)n * d * fl);
            xattn_job_t j = {s, (size_t)l * 1500 * 2 * d, n, d, dh};
            asr_pool_run(pool, H, xattn_head, &j);
            if (s != L0)
                memcpy(L0->dattn + (size_t)r0[i] * d, s->dattn, (size_t)n * d * fl);
        }
        many_linear(L0, pool, &L->cross_out, L0->dattn, d, L0->dh, d, R);
        asr_nn_add(L0->dx, L0->dh, (size_t)R * d);
        asr_nn_layer_norm(NULL, L0->dx, L0->dh, R, d, L->ffn_ln.gamma, L->ffn_ln.beta, 1e-5f);
        many_linear(L0, pool, &L->ffn1, L0->dh, d, L0->dffn, ff, R);
        asr_nn_gelu(NULL, L0->dffn, (size_t)R * ff);
        many_linear(L0, pool, &L->ffn2, L0->dffn, ff, L0->dh, d, R);
        asr_nn_add(L0->dx, L0->dh, (size_t)R * d);
    }
    many_logits(ss, k, r0, R, pool);
}

/* Sequence i continues sequence src[i]: it needs src[i]'s cache positions [from, len) (positions
 * before `from` are the shared prompt). The first sequence continuing a source takes over the
 * source's cache slot as it is; each further one gets a free slot (one no continued sequence
 * holds) with a copy of those positions. Nothing is copied when every source continues once. */
void asr__dec_reorder(asr_stream_t *s, const int *src, int n_seq, int from, int len) {
    const asr_model_t *m = s->m;
    const int d = m->info.d_model, C = m->info.n_text_ctx;
    const size_t stride = seq_stride(m);
    const size_t bytes = len > from ? (size_t)(len - from) * d * sizeof(float) : 0;
    int slot[ASR_SLOT_MAX_SEQ];
    bool taken_src[ASR_SLOT_MAX_SEQ] = {0}, busy[ASR_SLOT_MAX_SEQ] = {0};
    for (int i = 0; i < n_seq; i++) {
        slot[i] = -1;
        if (!taken_src[src[i]]) {
            taken_src[src[i]] = true;
            slot[i] = s->slot_of[src[i]];
            busy[slot[i]] = true;
        }
    }
    int next_free = 0;
    for (int i = 0; i < n_seq; i++) {
        if (slot[i] >= 0)
            continue;
        while (busy[next_free])
            next_free++;
        slot[i] = next_free;
        busy[next_free] = true;
        int from_slot = s->slot_of[src[i]];
        if (s->g && bytes) {
            asr__gpu_copy_seq(s, slot[i], from_slot, from, len);
            continue;
        }
        for (int l = 0; l < m->info.n_text_layer && bytes; l++) {
            size_t dst = (size_t)slot[i] * stride + ((size_t)l * C + from) * d;
            size_t org = (size_t)from_slot * stride + ((size_t)l * C + from) * d;
            memcpy(s->self_k + dst, s->self_k + org, bytes);
            memcpy(s->self_v + dst, s->self_v + org, bytes);
        }
    }
    memcpy(s->slot_of, slot, (size_t)n_seq * sizeof(int));
}
