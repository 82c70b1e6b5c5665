/* engine: a model on a device (gpu_int.h). Loading opens the device on the model's batcher
 * thread, uploads every tensor of the host model into one weights arena sized exactly (the sum
 * of each tensor's rounded size), converting on the host through a pinned staging buffer to the
 * compute type's storage, and sizes the scratch arena from max_batch: the encoder activations of
 * max_batch windows and the decoder activations of max(n_text_ctx, max_batch * 8) rows share one
 * region (the batcher runs one at a time). A stream's device slot (cross K/V, self-attention
 * caches, the last prompt block's rows) is one arena made when the stream is.
 *
 * Compute types: float16 (activations and matrices float16), bfloat16, int8_float16 (int8
 * matrices with a float32 scale per row, float16 activations; the token embedding, also the
 * output projection, stays float16) and float32. Biases, layer norms and positional embeddings
 * are float32 under all of them. Every size comes from gpu_layout.h (plan_gpu.c), which
 * asr_plan_gpu_compute reports. */
#include <string.h>

#include "engine/gpu_int.h"

#define STAGING_BYTES ASR_GPU_STAGING_BYTES

int asr__gpu_compute_type(const char *name, bool host, asr_dtype_t *wt, asr_dtype_t *t,
                          const char **canon) {
    bool dflt = !name || !*name || !strcmp(name, "default") || !strcmp(name, "auto");
    if ((dflt && host) || (name && !strcmp(name, "float32")))
        *wt = *t = ASR_DT_F32, *canon = "float32";
    else if (dflt || !strcmp(name, "float16"))
        *wt = *t = ASR_DT_F16, *canon = "float16";
    else if (!strcmp(name, "bfloat16"))
        *wt = *t = ASR_DT_BF16, *canon = "bfloat16";
    else if (!strcmp(name, "int8_float16") || !strcmp(name, "int8"))
        *wt = ASR_DT_I8, *t = ASR_DT_F16, *canon = "int8_float16";
    else if (host && !strcmp(name, "host-f16w")) /* tests: the upload's conversions on the host */
        *wt = ASR_DT_F16, *t = ASR_DT_F32, *canon = "float32 (float16 weights)";
    else if (host && !strcmp(name, "host-bf16w"))
        *wt = ASR_DT_BF16, *t = ASR_DT_F32, *canon = "float32 (bfloat16 weights)";
    else if (host && !strcmp(name, "host-int8w"))
        *wt = ASR_DT_I8, *t = ASR_DT_F32, *canon = "float32 (int8 weights)";
    else
        return -1;
    return 0;
}

/* ---- upload ---- */

typedef struct {
    struct asr__gpu_model *g;
    bool count;   /* the sizing pass: nothing allocated or copied */
    size_t total; /* bytes of the arena (rounded pieces) */
    unsigned char *staging;
    float *tmp; /* STAGING_BYTES of float32 rows */
    float *scales;
    int scales_cap;
} up_t;

/* A host matrix as the host model holds it: float32, a file's float16, or a decoder wmat. */
typedef struct {
    const float *f32;
    const void *f16;
    const asr_wmat_t *wm;
} src_t;

static src_t lin_src(const asr_linear_t *lin) {
    return (src_t){lin->w, lin->w ? NULL : lin->h, (lin->w || lin->h) ? NULL : &lin->wm};
}

static void src_rows(const src_t *s, int k, int r0, int nr, float *out) {
    if (s->f32)
        memcpy(out, s->f32 + (size_t)r0 * k, (size_t)nr * k * sizeof(float));
    else if (s->f16)
        asr_nn_h2f_n_mt(NULL, (const unsigned char *)s->f16 + (size_t)r0 * k * 2, out,
                        (size_t)nr * k);
    else
        for (int r = 0; r < nr; r++)
            asr_nn_weight_row(s->wm, r0 + r, k, out + (size_t)r * k);
}

static void *take(up_t *U, size_t bytes) {
    if (U->count) {
        U->total += asr_dev_arena_round(bytes);
        return NULL;
    }
    void *p = asr_dev_arena_take(&U->g->warena, bytes);
    ASR_ASSERT(p);
    return p;
}

/* Copies host bytes to the device through the staging buffer (synchronously). */
static void upload(up_t *U, unsigned char *dst, const void *src, size_t bytes) {
    asr_dev_t *d = U->g->dev;
    for (size_t off = 0; off < bytes; off += STAGING_BYTES) {
        size_t n = bytes - off < STAGING_BYTES ? bytes - off : STAGING_BYTES;
        memcpy(U->staging, (const unsigned char *)src + off, n);
        asr_dev_h2d(d, dst + off, U->staging, n);
        asr_dev_sync(d, NULL, 0);
    }
}

static const float *put_f32(up_t *U, const float *src, size_t n) {
    void *p = take(U, n * sizeof(float));
    if (p)
        upload(U, p, src, n * sizeof(float));
    return p;
}

/* A matrix [n][k] in storage type, converted in chunks of rows. */
static void put_mat(up_t *U, src_t src, int n, int k, asr_dtype_t type, asr_dev_w_t *out) {
    asr_dev_t *d = U->g->dev;
    size_t es = asr_dtype_size(type);
    *out = (asr_dev_w_t){type, take(U, (size_t)n * k * es), NULL, k};
    if (type == ASR_DT_I8)
        out->scale = take(U, (size_t)n * sizeof(float));
    if (U->count)
        return;
    if (type == ASR_DT_I8 && n > U->scales_cap) {
        free(U->scales);
        U->scales = asr_xmalloc((size_t)n * sizeof(float));
        U->scales_cap = n;
    }
    int chunk = (int)(STAGING_BYTES / ((size_t)k * sizeof(float)));
    ASR_ASSERT(chunk >= 1);
    for (int r0 = 0; r0 < n; r0 += chunk) {
        int nr = n - r0 < chunk ? n - r0 : chunk;
        size_t cnt = (size_t)nr * k;
        src_rows(&src, k, r0, nr, U->tmp);
        switch (type) {
        case ASR_DT_F32:
            memcpy(U->staging, U->tmp, cnt * sizeof(float));
            break;
        case ASR_DT_F16:
            asr_nn_f2h_n(U->tmp, (uint16_t *)U->staging, cnt);
            break;
        case ASR_DT_BF16:
            asr_nn_convert_rows(U->tmp, nr, k, ASR_W_BF16, U->staging, NULL);
            break;
        case ASR_DT_I8:
            asr_nn_convert_rows(U->tmp, nr, k, ASR_W_I8, U->staging, U->scales + r0);
            break;
        }
        asr_dev_h2d(d, (unsigned char *)out->data + (size_t)r0 * k * es, U->staging, cnt * es);
        asr_dev_sync(d, NULL, 0);
    }
    if (type == ASR_DT_I8)
        upload(U, (unsigned char *)out->scale, U->scales, (size_t)n * sizeof(float));
}

/* A linear layer and its bias: zeros when its file has none, so the layout (and the plan) is the
 * same for every file of these dimensions. */
static void put_lin(up_t *U, const asr_linear_t *lin, asr__gpu_lin_t *out) {
    put_mat(U, lin_src(lin), lin->n_out, lin->n_in, U->g->wt, &out->w);
    const float *b = lin->b;
    if (!b && !U->count) {
        memset(U->tmp, 0, (size_t)lin->n_out * sizeof(float));
        b = U->tmp;
    }
    out->b = put_f32(U, b, (size_t)lin->n_out);
    out->n = lin->n_out;
    out->k = lin->n_in;
}

static void put_norm(up_t *U, const asr_norm_t *nm, int d, asr__gpu_norm_t *out) {
    out->g = put_f32(U, nm->gamma, (size_t)d);
    out->b = put_f32(U, nm->beta, (size_t)d);
}

/* Every tensor, in one order for both passes. */
static void walk_weights(up_t *U) {
    struct asr__gpu_model *g = U->g;
    const asr_model_t *m = g->m;
    const asr_model_info_t *in = &m->info;
    const int d = in->d_model;
    asr__gpu_weights_t *w = &g->w;
    asr_linear_t c1 = {.w = m->conv1_w, .b = m->conv1_b, .n_out = d, .n_in = in->n_mels * 3};
    asr_linear_t c2 = {.w = m->conv2_w, .b = m->conv2_b, .n_out = d, .n_in = 3 * d};
    put_lin(U, &c1, &w->conv1);
    put_lin(U, &c2, &w->conv2);
    w->enc_pos = put_f32(U, m->enc_pos, (size_t)1500 * d);
    for (int l = 0; l < in->n_audio_layer; l++) {
        const asr_enc_layer_t *L = &m->enc[l];
        asr__gpu_enc_layer_t *o = &w->enc[l];
        put_norm(U, &L->attn_ln, d, &o->attn_ln);
        put_lin(U, &L->qkv, &o->qkv);
        put_lin(U, &L->out, &o->out);
        put_norm(U, &L->ffn_ln, d, &o->ffn_ln);
        put_lin(U, &L->ffn1, &o->ffn1);
        put_lin(U, &L->ffn2, &o->ffn2);
    }
    put_norm(U, &m->enc_ln, d, &w->enc_ln);
    src_t emb = {NULL, NULL, &m->tok_emb};
    put_mat(U, emb, in->n_vocab, d, g->wt == ASR_DT_I8 ? ASR_DT_F16 : g->wt, &w->tok_emb);
    w->dec_pos = put_f32(U, m->dec_pos, (size_t)in->n_text_ctx * d);
    for (int l = 0; l < in->n_text_layer; l++) {
        const asr_dec_layer_t *L = &m->dec[l];
        asr__gpu_dec_layer_t *o = &w->dec[l];
        put_norm(U, &L->attn_ln, d, &o->attn_ln);
        put_lin(U, &L->qkv, &o->qkv);
        put_lin(U, &L->out, &o->out);
        put_norm(U, &L->cross_ln, d, &o->cross_ln);
        put_lin(U, &L->cross_q, &o->cross_q);
        put_lin(U, &L->cross_kv, &o->cross_kv);
        put_lin(U, &L->cross_out, &o->cross_out);
        put_norm(U, &L->ffn_ln, d, &o->ffn_ln);
        put_lin(U, &L->ffn1, &o->ffn1);
        put_lin(U, &L->ffn2, &o->ffn2);
    }
    put_norm(U, &m->dec_ln, d, &w->dec_ln);
}

/* The arena is the plan's size (asr__gpu_weights_bytes); the counting walk must land on it. */
static asr_err_t upload_weights(struct asr__gpu_model *g) {
    up_t U = {.g = g, .count = true};
    walk_weights(&U);
    size_t bytes = asr__gpu_weights_bytes(&g->m->info, g->wt);
    if (U.total != bytes) {
        snprintf(g->err, sizeof g->err, "weights layout of %zu bytes differs from the plan's %zu",
                 U.total, bytes);
        return ASR_ERR_MODEL;
    }
    asr_err_t rc = asr_dev_arena_init(g->dev, &g->warena, bytes);
    if (rc != ASR_OK) {
        snprintf(g->err, sizeof g->err, "cannot allocate %.1f MiB of device memory for weights",
                 (double)bytes / (1 << 20));
        return rc;
    }
    g->weight_bytes = bytes;
    U.count = false;
    U.staging = asr_dev_host_malloc(g->dev, STAGING_BYTES);
    U.tmp = asr_malloc(STAGING_BYTES);
    if (!U.staging || !U.tmp) {
        snprintf(g->err, sizeof g->err, "cannot allocate %.1f MiB of %s for the weights' upload",
                 (double)STAGING_BYTES / (1 << 20),
                 U.staging ? "host memory" : "pinned host memory");
        asr_dev_host_free(g->dev, U.staging);
        free(U.tmp);
        return ASR_ERR_NOMEM;
    }
    walk_weights(&U);
    ASR_ASSERT(g->warena.used == g->warena.size);
    asr_dev_host_free(g->dev, U.staging);
    free(U.tmp);
    free(U.scales);
    return asr_dev_sync(g->dev, NULL, 0);
}

/* ---- scratch ---- */

/* Places the scratch pieces at base (the layout of asr__gpu_scratch_layout). */
static void scratch_place(struct asr__gpu_model *g, const asr__gpu_scratch_layout_t *L,
                          unsigned char *base) {
    g->e_mel = (float *)(base + L->e_mel);
    g->e_x = base + L->e_x;
    g->e_h = base + L->e_h;
    g->e_big = base + L->e_big;
    g->e_big2 = base + L->e_big2;
    g->d_x = base + L->d_x;
    g->d_h = base + L->d_h;
    g->d_qkv = base + L->d_qkv;
    g->d_att = base + L->d_att;
    g->d_ffn = base + L->d_ffn;
    g->d_logits = (float *)(base + L->d_logits);
    g->d_align = (float *)(base + L->d_align);
    g->d_rows = (asr_dev_row_t *)(base + L->d_rows);
    g->d_tok = (int32_t *)(base + L->d_tok);
    g->d_pos = (int32_t *)(base + L->d_pos);
    asr_dev_set_scratch(g->dev, L->dequant ? base + L->deq : NULL, L->deq_bytes);
}

static asr_err_t alloc_scratch(struct asr__gpu_model *g) {
    asr__gpu_scratch_layout_t L;
    asr__gpu_scratch_layout(&g->m->info, g->t, g->wt, g->max_batch, &L);
    size_t bytes = L.bytes;
    asr_err_t rc = asr_dev_arena_init(g->dev, &g->scratch, bytes);
    if (rc != ASR_OK) {
        snprintf(g->err, sizeof g->err,
                 "cannot allocate %.1f MiB of device scratch for a batch of %d",
                 (double)bytes / (1 << 20), g->max_batch);
        return rc;
    }
    g->scratch_bytes = bytes;
    scratch_place(g, &L, g->scratch.base);
    size_t pinned[5];
    asr__gpu_pinned_layout(&g->m->info, g->max_batch, pinned);
    g->h_mel = asr_dev_host_malloc(g->dev, pinned[0]);
    g->h_align = asr_dev_host_malloc(g->dev, pinned[1]);
    g->h_rows = asr_dev_host_malloc(g->dev, pinned[2]);
    g->h_tok = asr_dev_host_malloc(g->dev, pinned[3]);
    g->h_pos = asr_dev_host_malloc(g->dev, pinned[4]);
    if (!g->h_mel || !g->h_align || !g->h_rows || !g->h_tok || !g->h_pos) {
        size_t sum = 0;
        for (int i = 0; i < 5; i++)
            sum += pinned[i];
        snprintf(g->err, sizeof g->err,
                 "cannot allocate %.1f MiB of pinned host buffers for a batch of %d",
                 (double)sum / (1 << 20), g->max_batch);
        return ASR_ERR_NOMEM; /* gpu_fini frees what was allocated */
    }
    return ASR_OK;
}

/* ---- the batcher's init and fini ---- */

static asr_err_t gpu_init(struct asr__gpu_model *g) {
    asr_err_t rc = upload_weights(g);
    if (rc == ASR_OK)
        rc = alloc_scratch(g);
    if (rc == ASR_OK)
        rc = asr__gpu_check(g);
    if (rc != ASR_OK)
        return rc;
    const asr_dev_info_t *di = asr_dev_info(g->dev);
    asr_model_t *m = g->m;
    if (di->kind == ASR_DEV_CUDA)
        snprintf(m->device_line, sizeof m->device_line,
                 "%s %s (sm_%d%d, %.1f GiB free), %s, max batch %d", m->device, di->name,
                 di->cc_major, di->cc_minor, (double)di->free_bytes / (1 << 30), g->ctype,
                 g->max_batch);
    else
        snprintf(m->device_line, sizeof m->device_line, "%s (%s, %d cores), %s, max batch %d",
                 m->device, di->name, di->n_sm, g->ctype, g->max_batch);
    ASR_LOG(ASR_LOG_INFO,
            "msg=gpu_model_loaded device=\"%s\" weights_mib=%.1f scratch_mib=%.1f max_batch=%d",
            m->device_line, (double)g->weight_bytes / (1 << 20),
            (double)g->scratch_bytes / (1 << 20), g->max_batch);
    return ASR_OK;
}

static void gpu_fini(struct asr__gpu_model *g) {
    asr_dev_host_free(g->dev, g->h_mel);
    asr_dev_host_free(g->dev, g->h_align);
    asr_dev_host_free(g->dev, g->h_rows);
    asr_dev_host_free(g->dev, g->h_tok);
    asr_dev_host_free(g->dev, g->h_pos);
    asr_dev_set_scratch(g->dev, NULL, 0);
    asr_dev_arena_release(g->dev, &g->scratch);
    asr_dev_arena_release(g->dev, &g->warena);
}

asr_err_t asr__gpu_model_open(asr_model_t *m, const asr_devspec_t *spec, const char *compute_type,
                              int max_batch, char *err, size_t err_len) {
    struct asr__gpu_model *g = asr_xcalloc(1, sizeof *g);
    g->m = m;
    g->spec = *spec;
    if (asr__gpu_compute_type(compute_type, spec->kind == ASR_DEVSPEC_HOST, &g->wt, &g->t,
                              &g->ctype)) {
        asr_errf(err, err_len,
                 "unsupported GPU compute type '%s' (use float16, bfloat16, int8_float16 or "
                 "float32)",
                 compute_type);
        free(g);
        return ASR_ERR_INVALID;
    }
    if (spec->kind == ASR_DEVSPEC_HOST && g->t != ASR_DT_F32) {
        asr_errf(err, err_len, "the host device computes in float32 only (compute type '%s')",
                 compute_type);
        free(g);
        return ASR_ERR_INVALID;
    }
    g->max_batch = asr__gpu_max_batch(max_batch);
    g->max_rows = asr__gpu_max_rows(&m->info, g->max_batch);
    g->w.enc = asr_xcalloc((size_t)m->info.n_audio_layer, sizeof *g->w.enc);
    g->w.dec = asr_xcalloc((size_t)m->info.n_text_layer, sizeof *g->w.dec);
    asr_devspec_format(spec, m->device, sizeof m->device);
    m->g = g;
    asr_err_t rc = asr__gpu_batcher_start(g, gpu_init, gpu_fini);
    if (rc != ASR_OK) {
        asr_errf(err, err_len, "%s: %s", m->device, g->err[0] ? g->err : asr_strerror(rc));
        asr__gpu_model_close(m);
        return rc == ASR_ERR_NOMEM || rc == ASR_ERR_INVALID ? rc : ASR_ERR_GPU;
    }
    return ASR_OK;
}

void asr__gpu_model_close(asr_model_t *m) {
    struct asr__gpu_model *g = m->g;
    if (!g)
        return;
    asr__gpu_batcher_stop(g);
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->cv_work);
    pthread_cond_destroy(&g->cv_done);
    free(g->w.enc);
    free(g->w.dec);
    free(g);
    m->g = NULL;
}

/* ---- stream slots (batcher thread) ---- */

asr_err_t asr__gpu_slot_open_dev(struct asr__gpu_model *g, asr_stream_t *s) {
    const asr_model_info_t *in = &g->m->info;
    struct asr__gpu_stream *sg = s->g;
    asr__gpu_slot_layout_t SL;
    asr__gpu_slot_layout(in, g->t, s->n_seq_cap, &SL);
    const size_t *sizes = SL.size, total = SL.bytes;
    asr_err_t rc = asr_dev_arena_init(g->dev, &sg->arena, total);
    if (rc != ASR_OK)
        return rc;
    /* the logits the search reads: pinned, so each step's copy goes straight there */
    sg->logits = asr_dev_host_malloc(g->dev, (size_t)s->n_seq_cap * in->n_vocab * sizeof(float));
    if (!sg->logits) {
        asr_dev_arena_release(g->dev, &sg->arena);
        return asr_dev_lost(g->dev) ? ASR_ERR_GPU : ASR_ERR_NOMEM;
    }
    s->logits = sg->logits;
    sg->xkv = asr_dev_arena_take(&sg->arena, sizes[0]);
    sg->self_k = asr_dev_arena_take(&sg->arena, sizes[1]);
    sg->self_v = asr_dev_arena_take(&sg->arena, sizes[2]);
    sg->last = asr_dev_arena_take(&sg->arena, sizes[3]);
    asr_dev_memset0(g->dev, sg->arena.base, total); /* the slot's memory is really there */
    rc = asr_dev_sync(g->dev, NULL, 0);
    if (rc != ASR_OK) { /* nothing of a failed slot stays (the stream frees its s->g) */
        asr__gpu_slot_close_dev(g, s);
        s->logits = NULL;
    }
    return rc;
}

void asr__gpu_slot_close_dev(struct asr__gpu_model *g, asr_stream_t *s) {
    asr_dev_arena_release(g->dev, &s->g->arena);
    asr_dev_host_free(g->dev, s->g->logits);
    s->g->logits = NULL;
}
