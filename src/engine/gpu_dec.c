/* engine: the decoder on a device (gpu_int.h), mirroring decoder.c. Every decoder pass is a set of
 * rows (asr_dev_row_t): a batched step has one row per sequence of every stream in the batch,
 * each pointing at its own stream's caches and cross K/V; a prompt block has one row per token of
 * one stream's sequence, with len = pos0 + i + 1 on the same cache (the causal mask). As in
 * decoder.c, a prompt block from position 0 writes physical cache slot 0 and becomes the prompt
 * every sequence shares: a step reads positions [0, shared) from slot 0 and the rest from the
 * sequence's own slot (slot_of). Beam reordering's cache copies are device-to-device copies,
 * queued before the stream's next job.
 *
 * The stream-side functions (asr__gpu_step...) build a job and wait for the batcher; the
 * asr__gpu_run_* functions run on the batcher thread. */
#include <math.h>
#include <string.h>

#include "engine/gpu_int.h"

static void *el(const void *p, asr_dtype_t t, size_t n) {
    return (unsigned char *)p + n * asr_dtype_size(t);
}

/* elements of one sequence's self-attention cache */
static size_t seq_elems(const asr_model_info_t *in) {
    return (size_t)in->n_text_layer * in->n_text_ctx * in->d_model;
}

/* ---- batcher side ---- */

/* A linear layer of the model on m rows. */
static void lin(struct asr__gpu_model *g, const asr__gpu_lin_t *L, const void *a, int lda, void *c,
                int ldc, int m, int flags) {
    asr_dev_linear(g->dev, g->t, a, lda, &L->w, L->b, g->t, c, ldc, m, L->n, L->k, flags);
}

/* The alignment heads of layer l: raw scores of the cross-attention queries in g->d_qkv. */
static void capture_alignment(struct asr__gpu_model *g, asr_stream_t *s, int l, int n) {
    const asr_model_t *m = g->m;
    const int d = m->info.d_model, dh = d / m->info.n_text_head;
    const int rows = n < s->align_rows ? n : s->align_rows, F = s->align_frames;
    for (int k = 0; k < m->n_alignment_heads; k++) {
        if (m->alignment_heads[k][0] != l)
            continue;
        asr_dev_attn_cross_scores(g->dev, g->t, g->d_qkv, d, g->d_rows, rows,
                                  m->alignment_heads[k][1], dh, F, 2 * d, (size_t)l * 1500 * 2 * d,
                                  1.0f / sqrtf((float)dh), g->d_align);
        asr_dev_d2h(g->dev, g->h_align, g->d_align, (size_t)rows * F * sizeof(float));
        if (asr_dev_sync(g->dev, NULL, 0) != ASR_OK)
            return;
        for (int r = 0; r < rows; r++)
            memcpy(s->align_capture + ((size_t)k * s->align_rows + r) * F,
                   g->h_align + (size_t)r * F, (size_t)F * sizeof(float));
    }
}

/* The decoder layers over n rows (g->h_rows, g->h_tok, g->h_pos filled): the final residual rows
 * end in g->d_x. cap: the stream whose alignment heads are captured, or NULL. */
static void dec_layers(struct asr__gpu_model *g, int n, asr_stream_t *cap) {
    asr_dev_t *dv = g->dev;
    const asr_model_info_t *in = &g->m->info;
    const int d = in->d_model, H = in->n_text_head, dh = d / H, C = in->n_text_ctx;
    const int ff = g->w.dec[0].ffn1.n;
    const asr_dtype_t t = g->t;
    const float scale = 1.0f / sqrtf((float)dh);
    asr_dev_h2d(dv, g->d_rows, g->h_rows, (size_t)n * sizeof(asr_dev_row_t));
    asr_dev_h2d(dv, g->d_tok, g->h_tok, (size_t)n * sizeof(int32_t));
    asr_dev_h2d(dv, g->d_pos, g->h_pos, (size_t)n * sizeof(int32_t));
    asr_dev_embed(dv, t, &g->w.tok_emb, g->w.dec_pos, g->d_tok, g->d_pos, n, d, g->d_x);
    for (int l = 0; l < in->n_text_layer; l++) {
        const asr__gpu_dec_layer_t *L = &g->w.dec[l];
        const size_t self_off = (size_t)l * C * d, cross_off = (size_t)l * 1500 * 2 * d;
        asr_dev_layer_norm(dv, t, g->d_x, g->d_h, n, d, L->attn_ln.g, L->attn_ln.b, 1e-5f);
        lin(g, &L->qkv, g->d_h, d, g->d_qkv, 3 * d, n, 0);
        asr_dev_kv_append(dv, t, g->d_qkv, 3 * d, g->d_rows, n, d, self_off);
        asr_dev_attn_self(dv, t, g->d_qkv, 3 * d, g->d_rows, n, H, dh, self_off, scale, g->d_att,
                          d);
        lin(g, &L->out, g->d_att, d, g->d_x, d, n, ASR_LIN_ACCUM);
        asr_dev_layer_norm(dv, t, g->d_x, g->d_h, n, d, L->cross_ln.g, L->cross_ln.b, 1e-5f);
        lin(g, &L->cross_q, g->d_h, d, g->d_qkv, d, n, 0);
        if (cap)
            capture_alignment(g, cap, l, n);
        asr_dev_attn_cross(dv, t, g->d_qkv, d, g->d_rows, n, H, dh, 1500, 2 * d, cross_off, scale,
                           g->d_att, d);
        lin(g, &L->cross_out, g->d_att, d, g->d_x, d, n, ASR_LIN_ACCUM);
        asr_dev_layer_norm(dv, t, g->d_x, g->d_h, n, d, L->ffn_ln.g, L->ffn_ln.b, 1e-5f);
        lin(g, &L->ffn1, g->d_h, d, g->d_ffn, ff, n, ASR_LIN_GELU);
        lin(g, &L->ffn2, g->d_ffn, ff, g->d_x, d, n, ASR_LIN_ACCUM);
    }
}

/* Logits (float32) of n rows of x into g->d_logits (queued); the callers copy each stream's rows
 * straight into its pinned s->logits. */
static void logits(struct asr__gpu_model *g, const void *x, int n) {
    const asr_model_info_t *in = &g->m->info;
    const int d = in->d_model, V = in->n_vocab;
    asr_dev_layer_norm(g->dev, g->t, x, g->d_h, n, d, g->w.dec_ln.g, g->w.dec_ln.b, 1e-5f);
    asr_dev_linear(g->dev, g->t, g->d_h, d, &g->w.tok_emb, NULL, ASR_DT_F32, g->d_logits, V, n, V,
                   d, 0);
}

static asr_dev_row_t row_of(struct asr__gpu_model *g, asr_stream_t *s, int slot, int shared,
                            int len) {
    const asr_model_info_t *in = &g->m->info;
    struct asr__gpu_stream *sg = s->g;
    const size_t off = (size_t)slot * seq_elems(in);
    asr_dev_row_t r = {0};
    r.k = el(sg->self_k, g->t, off);
    r.v = el(sg->self_v, g->t, off);
    r.ks = shared > 0 ? sg->self_k : NULL;
    r.vs = shared > 0 ? sg->self_v : NULL;
    r.xk = sg->xkv;
    r.xv = el(sg->xkv, g->t, (size_t)in->d_model);
    r.shared = shared;
    r.len = len;
    return r;
}

/* Rows of job j from row n on: a step's sequences, or a prompt block's tokens (physical slot 0,
 * causal: row i sees [0, pos0 + i]). */
static int job_rows(struct asr__gpu_model *g, const asr__gpu_job_t *j, int n) {
    asr_stream_t *s = j->s;
    const int pos = j->pos;
    /* decoder.c's sattn_head: a step reads the shared prompt only when it ends before it */
    const int shared = s->self_shared < pos + 1 ? s->self_shared : 0;
    for (int i = 0; i < j->n; i++, n++) {
        bool step = j->kind == ASR_GPU_JOB_STEP;
        g->h_rows[n] =
            step ? row_of(g, s, s->slot_of[i], shared, pos + 1) : row_of(g, s, 0, 0, pos + i + 1);
        g->h_tok[n] = j->tokens[i];
        g->h_pos[n] = step ? pos : pos + i;
    }
    return n;
}

void asr__gpu_run_decode(struct asr__gpu_model *g, asr__gpu_job_t **jobs, int n_jobs) {
    const int V = g->m->info.n_vocab, d = g->m->info.d_model;
    int n = 0;
    bool all_steps = true;
    for (int j = 0; j < n_jobs; j++) {
        n = job_rows(g, jobs[j], n);
        all_steps &= jobs[j]->kind == ASR_GPU_JOB_STEP;
    }
    ASR_ASSERT(n <= g->max_rows);
    dec_layers(g, n, NULL);
    /* the rows whose logits are wanted: every step row, a block's logits row; with prompt blocks
     * in the batch they are gathered into d_att first (free after the layers) */
    const void *x = g->d_x;
    int n_log = n;
    if (!all_steps) {
        n_log = 0;
        for (int j = 0, r = 0; j < n_jobs; r += jobs[j]->n, j++) {
            asr__gpu_job_t *J = jobs[j];
            const void *rows = el(g->d_x, g->t, (size_t)r * d);
            int take = J->kind == ASR_GPU_JOB_STEP ? J->n : 0;
            if (J->kind == ASR_GPU_JOB_FORWARD) {
                /* kept for later logits rows: another job may overwrite the scratch */
                asr_dev_d2d(g->dev, J->s->g->last, rows, asr__gpu_bytes(g->t, (size_t)J->n * d));
                J->s->g->last_rows = J->n;
                if (J->logits_row >= 0 && J->logits_row < J->n)
                    rows = el(rows, g->t, (size_t)J->logits_row * d), take = 1;
            }
            asr_dev_d2d(g->dev, el(g->d_att, g->t, (size_t)n_log * d), rows,
                        asr__gpu_bytes(g->t, (size_t)take * d));
            n_log += take;
        }
        x = g->d_att;
    }
    ASR_ASSERT(n_log <= g->max_batch * ASR_SLOT_MAX_SEQ);
    if (n_log == 0) {
        asr_dev_sync(g->dev, NULL, 0);
        return;
    }
    logits(g, x, n_log);
    for (int j = 0, r = 0; j < n_jobs; j++) {
        asr__gpu_job_t *J = jobs[j];
        int take = J->kind == ASR_GPU_JOB_STEP                  ? J->n
                   : J->logits_row >= 0 && J->logits_row < J->n ? 1
                                                                : 0;
        asr_dev_d2h(g->dev, J->s->logits, g->d_logits + (size_t)r * V,
                    (size_t)take * V * sizeof(float));
        r += take;
    }
    asr_dev_sync(g->dev, NULL, 0);
}

/* The logits of one row of x into s->logits, synchronously. */
static void logits_row(struct asr__gpu_model *g, asr_stream_t *s, const void *x) {
    logits(g, x, 1);
    asr_dev_d2h(g->dev, s->logits, g->d_logits, (size_t)g->m->info.n_vocab * sizeof(float));
    asr_dev_sync(g->dev, NULL, 0);
}

void asr__gpu_run_forward(struct asr__gpu_model *g, asr__gpu_job_t *j) {
    asr_stream_t *s = j->s;
    const int n = j->n, d = g->m->info.d_model;
    ASR_ASSERT(n <= g->max_rows);
    job_rows(g, j, 0);
    dec_layers(g, n, s->align_capture ? s : NULL);
    asr_dev_d2d(g->dev, s->g->last, g->d_x, asr__gpu_bytes(g->t, (size_t)n * d));
    s->g->last_rows = n;
    if (j->logits_row >= 0 && j->logits_row < n)
        logits_row(g, s, el(g->d_x, g->t, (size_t)j->logits_row * d));
    else
        asr_dev_sync(g->dev, NULL, 0);
}

void asr__gpu_run_logits_row(struct asr__gpu_model *g, asr__gpu_job_t *j) {
    asr_stream_t *s = j->s;
    if (j->logits_row < 0 || j->logits_row >= s->g->last_rows) {
        j->rc = ASR_ERR_INVALID;
        return;
    }
    logits_row(g, s, el(s->g->last, g->t, (size_t)j->logits_row * g->m->info.d_model));
}

void asr__gpu_apply_copies(struct asr__gpu_model *g, asr_stream_t *s) {
    struct asr__gpu_stream *sg = s->g;
    const asr_model_info_t *in = &g->m->info;
    const size_t d = (size_t)in->d_model, C = (size_t)in->n_text_ctx;
    for (int i = 0; i < sg->n_copies; i++) {
        const asr__gpu_copy_t *c = &sg->copies[i];
        const size_t bytes = asr__gpu_bytes(g->t, (size_t)(c->len - c->from) * d);
        for (int l = 0; l < in->n_text_layer; l++) {
            size_t o = ((size_t)l * C + (size_t)c->from) * d;
            size_t dst = (size_t)c->dst * seq_elems(in) + o,
                   src = (size_t)c->src * seq_elems(in) + o;
            asr_dev_d2d(g->dev, el(sg->self_k, g->t, dst), el(sg->self_k, g->t, src), bytes);
            asr_dev_d2d(g->dev, el(sg->self_v, g->t, dst), el(sg->self_v, g->t, src), bytes);
        }
    }
    sg->n_copies = 0;
}

/* ---- stream side ---- */

/* Submits j, unless this attempt has failed already (s->g->err, reset when the next transcription
 * starts): its results would be discarded, and its cache copies are dropped with it (the next
 * attempt starts from an encoder pass and a prompt block at position 0). */
static void run(asr_stream_t *s, asr__gpu_job_t *j) {
    j->s = s;
    if (s->g->err != ASR_OK) {
        s->g->n_copies = 0;
        return;
    }
    asr_err_t rc = asr__gpu_submit(s->m->g, j);
    if (rc != ASR_OK) {
        char why[256];
        if (rc == ASR_ERR_GPU)
            asr__gpu_errmsg(s->m->g, why, sizeof why);
        else
            snprintf(why, sizeof why, "%s", asr_strerror(rc));
        s->g->err = rc;
        asr_errf(s->errmsg, sizeof s->errmsg, "%s: %s", s->m->device, why);
    }
}

void asr__gpu_encode(asr_stream_t *s, const float *mel_window, bool want_out) {
    if (want_out && !s->g->enc_out) {
        s->g->enc_out = asr_malloc((size_t)1500 * s->m->info.d_model * sizeof(float));
        ASR_ASSERT(s->g->enc_out);
    }
    asr__gpu_job_t j = {.kind = ASR_GPU_JOB_ENCODE, .mel = mel_window};
    j.enc_out = want_out ? s->g->enc_out : NULL;
    run(s, &j);
}

void asr__gpu_forward(asr_stream_t *s, const int32_t *tokens, int n, int pos0, int logits_row) {
    asr__gpu_job_t j = {.kind = ASR_GPU_JOB_FORWARD, .tokens = tokens, .n = n, .pos = pos0};
    j.logits_row = logits_row;
    run(s, &j);
}

void asr__gpu_step(asr_stream_t *s, const int32_t *tokens, int n_seq, int pos) {
    asr__gpu_job_t j = {.kind = ASR_GPU_JOB_STEP, .tokens = tokens, .n = n_seq, .pos = pos};
    run(s, &j);
}

void asr__gpu_logits_row(asr_stream_t *s, int row) {
    asr__gpu_job_t j = {.kind = ASR_GPU_JOB_LOGITS_ROW, .logits_row = row};
    run(s, &j);
}

void asr__gpu_copy_seq(asr_stream_t *s, int dst, int src, int from, int len) {
    struct asr__gpu_stream *sg = s->g;
    ASR_ASSERT(sg->n_copies < ASR_GPU_MAX_COPIES);
    sg->copies[sg->n_copies++] =
        (asr__gpu_copy_t){(int8_t)dst, (int8_t)src, (int16_t)from, (int16_t)len};
}

asr_err_t asr__gpu_stream_open(asr_stream_t *s) {
    s->g = asr_xcalloc(1, sizeof *s->g);
    asr__gpu_job_t j = {.kind = ASR_GPU_JOB_SLOT_OPEN};
    j.s = s;
    asr_err_t rc = asr__gpu_submit(s->m->g, &j);
    if (rc != ASR_OK) {
        free(s->g);
        s->g = NULL;
    }
    return rc;
}

void asr__gpu_stream_close(asr_stream_t *s) {
    if (!s->g)
        return;
    asr__gpu_job_t j = {.kind = ASR_GPU_JOB_SLOT_CLOSE};
    j.s = s;
    asr__gpu_submit(s->m->g, &j);
    free(s->g->enc_out);
    free(s->g);
    s->g = NULL;
}
