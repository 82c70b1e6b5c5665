/* engine: whisper.cpp ggml front (ggml.h). The legacy (pre-GGUF) file that whisper.cpp's
 * models/convert-pt-to-ggml.py writes and src/whisper.cpp whisper_model_load reads; all fields
 * little-endian, nothing padded or aligned:
 *   u32 magic 0x67676d6c;
 *   i32 n_vocab, n_audio_ctx, n_audio_state, n_audio_head, n_audio_layer, n_text_ctx,
 *       n_text_state, n_text_head, n_text_layer, n_mels, ftype (+ 1000 x quantization version);
 *   i32 n_mel, n_fft; f32 filters[n_mel][n_fft];
 *   i32 n_tokens; n_tokens x { u32 len; raw token bytes } (ids 0.., the specials not stored);
 *   tensors to the end of the file: i32 n_dims, name_len, ttype; i32 ne[n_dims] (ne[0] the
 *       innermost, i.e. PyTorch's shape reversed); name; data (ggml_nbytes of ttype).
 * Tensor types are ggml_type ids: 0 f32, 1 f16, 2 q4_0, 3 q4_1, 6 q5_0, 7 q5_1, 8 q8_0,
 * 30 bf16; the quantized ones are blocks of 32 consecutive elements along ne[0]
 * (ggml-common.h, dequantize_row_* of ggml-quants.c).
 *
 * Invariants: every tensor the file holds is one whisper_model_load expects for its hparams
 * (every one present once, each shaped as whisper.cpp shapes it), and every byte of the file is
 * accounted for. The table gets CTranslate2's names (wfile.h): f32/f16/bf16 tensors point into
 * the image, fused q|k|v and dequantized matrices live in memory the table owns (or, for a
 * shapes-only table, have no data: the probe reads a quantized large-v3 in milliseconds). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/core.h"
#include "engine/ggml.h"
#include "nn/nn.h"

#define GGML_MAGIC 0x67676d6cu
#define QK 32 /* elements per quantized block, every type here */

/* ---- tensor types ---- */

typedef struct {
    int id;
    const char *name;
    int blck;  /* elements per block */
    int bytes; /* bytes per block */
} gtype_t;

static const gtype_t GTYPES[] = {
    {0, "f32", 1, 4},    {1, "f16", 1, 2},    {2, "q4_0", QK, 18}, {3, "q4_1", QK, 20},
    {6, "q5_0", QK, 22}, {7, "q5_1", QK, 24}, {8, "q8_0", QK, 34}, {30, "bf16", 1, 2},
};
#define N_GTYPES (int)(sizeof GTYPES / sizeof *GTYPES)

static const gtype_t *gtype_of(int32_t id) {
    for (int i = 0; i < N_GTYPES; i++)
        if (GTYPES[i].id == id)
            return &GTYPES[i];
    return NULL;
}

static bool quantized(const gtype_t *t) { return t->blck > 1; }

/* The table's dtype of an unquantized ggml type. */
static asr_wdtype_t wd_of(const gtype_t *t) {
    return t->id == 0 ? ASR_WD_F32 : t->id == 1 ? ASR_WD_F16 : ASR_WD_BF16;
}

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t rd32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* One block of type t at b to 32 floats (ggml-quants.c's dequantize_row_*: element j of the
 * block is the low nibble of qs[j] for j < 16, the high nibble of qs[j - 16] above; q5's fifth
 * bit of element j is bit j of qh). */
static void dequant_block(const gtype_t *t, const uint8_t *b, float *y) {
    float d = asr_nn_f16_to_f32(rd16(b));
    switch (t->id) {
    case 2: /* q4_0: f16 d, 16 B nibbles; (q - 8) * d */
        for (int j = 0; j < QK / 2; j++) {
            y[j] = (float)((b[2 + j] & 15) - 8) * d;
            y[j + QK / 2] = (float)((b[2 + j] >> 4) - 8) * d;
        }
        break;
    case 3: { /* q4_1: f16 d, f16 m, 16 B nibbles; q * d + m */
        float m = asr_nn_f16_to_f32(rd16(b + 2));
        for (int j = 0; j < QK / 2; j++) {
            y[j] = (float)(b[4 + j] & 15) * d + m;
            y[j + QK / 2] = (float)(b[4 + j] >> 4) * d + m;
        }
        break;
    }
    case 6: { /* q5_0: f16 d, u32 qh, 16 B nibbles; (q | h << 4) - 16, times d */
        uint32_t qh = rd32(b + 2);
        for (int j = 0; j < QK / 2; j++) {
            int lo = (b[6 + j] & 15) | (int)((qh >> j) & 1) << 4;
            int hi = (b[6 + j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
            y[j] = (float)(lo - 16) * d;
            y[j + QK / 2] = (float)(hi - 16) * d;
        }
        break;
    }
    case 7: { /* q5_1: f16 d, f16 m, u32 qh, 16 B nibbles; (q | h << 4) * d + m */
        float m = asr_nn_f16_to_f32(rd16(b + 2));
        uint32_t qh = rd32(b + 4);
        for (int j = 0; j < QK / 2; j++) {
            int lo = (b[8 + j] & 15) | (int)((qh >> j) & 1) << 4;
            int hi = (b[8 + j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
            y[j] = (float)lo * d + m;
            y[j + QK / 2] = (float)hi * d + m;
        }
        break;
    }
    default: /* 8, q8_0: f16 d, 32 x int8; q * d */
        for (int j = 0; j < QK; j++)
            y[j] = (float)(int8_t)b[2 + j] * d;
        break;
    }
}

/* ---- the file's tensors ---- */

typedef struct {
    const char *name; /* in the image, not NUL-terminated */
    int name_len;
    int n_dims;
    int64_t ne[4];
    int64_t n_elems;
    const gtype_t *type;
    const uint8_t *data;
    size_t n_bytes;
    bool used;
} gtensor_t;

static int name_cmp(const char *a, int an, const char *b, int bn) {
    int c = memcmp(a, b, (size_t)(an < bn ? an : bn));
    return c ? c : (an > bn) - (an < bn);
}
static int gtensor_cmp(const void *x, const void *y) {
    const gtensor_t *a = x, *b = y;
    return name_cmp(a->name, a->name_len, b->name, b->name_len);
}

/* A tensor's name as the file spells it, for an error message: printable ASCII, anything else
 * as '?' (a corrupt name must not break the one-line reason), at most 80 bytes. */
static const char *shown(const gtensor_t *t, char out[84]) {
    int n = t->name_len < 80 ? t->name_len : 80;
    for (int i = 0; i < n; i++)
        out[i] = t->name[i] >= 0x20 && t->name[i] < 0x7f ? t->name[i] : '?';
    snprintf(out + n, 4, "%s", t->name_len > 80 ? "..." : "");
    return out;
}

typedef struct {
    asr_wfile_t *f;
    gtensor_t *ts; /* sorted by name */
    int n_ts;
    int d;               /* n_audio_state = n_text_state */
    float *buf;          /* scratch for conversions: CHUNK floats per thread */
    int n_threads;       /* converting threads, 1..MAX_THREADS */
    int n_deq[N_GTYPES]; /* quantized tensors dequantized, per type */
    bool mapped;         /* the image is the table's mapped file: a converted tensor's pages go */
    char *err;
    size_t err_len;
    asr_err_t rc; /* ASR_ERR_MODEL or ASR_ERR_NOMEM once something failed */
} ctx_t;

#define CHUNK (64 * 1024) /* floats; a multiple of QK */
#define MAX_THREADS 16

static int fail(ctx_t *c, asr_err_t rc) {
    c->rc = rc;
    return -1;
}

/* Drops the size-1 dims of ne (n of them) into out; the number left. */
static int squeeze(const int64_t *ne, int n, int64_t *out) {
    int k = 0;
    for (int i = 0; i < n; i++)
        if (ne[i] != 1)
            out[k++] = ne[i];
    return k;
}

/* The tensor `name`, which must be shaped ne[0..n) (ggml order; size-1 dims do not count, so a
 * conv bias may be [1, d] or [d]); NULL with the reason set when missing or misshaped. */
static gtensor_t *get(ctx_t *c, const char *name, int n, int64_t ne0, int64_t ne1, int64_t ne2) {
    gtensor_t key = {.name = name, .name_len = (int)strlen(name)};
    gtensor_t *t = c->n_ts ? bsearch(&key, c->ts, (size_t)c->n_ts, sizeof *c->ts, gtensor_cmp)
                           : NULL; /* a file without tensors has no array */
    if (!t) {
        asr_errf(c->err, c->err_len, "ggml: missing tensor %s", name);
        fail(c, ASR_ERR_MODEL);
        return NULL;
    }
    int64_t want[3] = {ne0, ne1, ne2}, a[4], b[3];
    int na = squeeze(t->ne, t->n_dims, a), nb = squeeze(want, n, b);
    bool ok = na == nb;
    for (int i = 0; ok && i < na; i++)
        ok = a[i] == b[i];
    if (!ok) {
        asr_errf(c->err, c->err_len,
                 "ggml: tensor %s has shape [%lld, %lld, %lld, %lld], expected [%lld, %lld, %lld] "
                 "from the hparams",
                 name, (long long)t->ne[0], (long long)(t->n_dims > 1 ? t->ne[1] : 1),
                 (long long)(t->n_dims > 2 ? t->ne[2] : 1),
                 (long long)(t->n_dims > 3 ? t->ne[3] : 1), (long long)ne0,
                 (long long)(n > 1 ? ne1 : 1), (long long)(n > 2 ? ne2 : 1));
        fail(c, ASR_ERR_MODEL);
        return NULL;
    }
    t->used = true;
    return t;
}

/* Elements [e0, e1) of t (e0 a multiple of CHUNK) as dtype `to` (F32 or F16) at dst, through
 * buf (CHUNK floats). */
static void convert_range(const gtensor_t *t, asr_wdtype_t to, uint8_t *dst, int64_t e0, int64_t e1,
                          float *buf) {
    size_t el = asr_wdtype_size(to);
    for (; e0 < e1; e0 += CHUNK) {
        int64_t n = e1 - e0 < CHUNK ? e1 - e0 : CHUNK;
        if (quantized(t->type)) {
            const uint8_t *b = t->data + (size_t)(e0 / QK) * (size_t)t->type->bytes;
            for (int64_t i = 0; i < n; i += QK, b += t->type->bytes)
                dequant_block(t->type, b, buf + i);
        } else {
            for (int64_t i = 0; i < n; i++) {
                const uint8_t *p = t->data + (size_t)(e0 + i) * (size_t)(t->type->bytes);
                uint16_t h = t->type->bytes == 2 ? rd16(p) : 0;
                if (t->type->id == 0) {
                    uint32_t u = rd32(p);
                    memcpy(&buf[i], &u, 4);
                } else {
                    buf[i] = t->type->id == 1 ? asr_nn_f16_to_f32(h) : asr_nn_bf16_to_f32(h);
                }
            }
        }
        uint8_t *out = dst + (size_t)e0 * el;
        if (to == ASR_WD_F16)
            asr_nn_f2h_n(buf, (uint16_t *)(void *)out, (size_t)n);
        else
            memcpy(out, buf, (size_t)n * 4);
    }
}

typedef struct {
    const gtensor_t *t;
    asr_wdtype_t to;
    uint8_t *dst;
    int64_t e0, e1;
    float *buf;
} job_t;

static void *convert_job(void *arg) {
    job_t *j = arg;
    convert_range(j->t, j->to, j->dst, j->e0, j->e1, j->buf);
    return NULL;
}

/* Writes t's elements as dtype `to` (F32 or F16, or t's own dtype) at dst; a large tensor on
 * c->n_threads threads (dequantizing a large-v3 takes seconds on one core). */
static void convert(ctx_t *c, const gtensor_t *t, asr_wdtype_t to, uint8_t *dst) {
    if (!quantized(t->type) && wd_of(t->type) == to) {
        memcpy(dst, t->data, t->n_bytes);
        return;
    }
    int64_t n_chunks = (t->n_elems + CHUNK - 1) / CHUNK;
    int nt = n_chunks >= 8 ? c->n_threads : 1;
    int64_t per = (n_chunks + nt - 1) / nt * CHUNK;
    job_t jobs[MAX_THREADS];
    pthread_t tid[MAX_THREADS];
    bool started[MAX_THREADS] = {false};
    for (int i = 0; i < nt; i++) {
        int64_t e0 = i * per < t->n_elems ? i * per : t->n_elems;
        int64_t e1 = e0 + per < t->n_elems ? e0 + per : t->n_elems;
        jobs[i] = (job_t){t, to, dst, e0, e1, c->buf + (size_t)i * CHUNK};
        started[i] = i > 0 && pthread_create(&tid[i], NULL, convert_job, &jobs[i]) == 0;
    }
    for (int i = 0; i < nt; i++) /* the caller's share, and any a thread could not take */
        if (!started[i])
            convert_job(&jobs[i]);
    for (int i = 1; i < nt; i++)
        if (started[i])
            pthread_join(tid[i], NULL);
}

/* Adds table variable `ct2` (rank, dims: CTranslate2's order) made of parts[0..n) laid end to end
 * (a NULL part: part_elems zeros, e.g. the missing key bias). One unquantized part stays in the
 * image; anything else is converted into owned memory: the parts' common float type, else
 * float32 when one of them is float32, else float16 (what a quantized matrix becomes). */
static int put(ctx_t *c, const char *ct2, int rank, int64_t d0, int64_t d1, int64_t d2,
               gtensor_t *const *parts, int n, int64_t part_elems) {
    int64_t dims[3] = {d0, d1, d2};
    if (n == 1 && parts[0] && !quantized(parts[0]->type))
        return asr_wfile_add(c->f, ct2, wd_of(parts[0]->type), rank, dims, parts[0]->data)
                   ? 0
                   : fail(c, ASR_ERR_NOMEM);
    asr_wdtype_t to = ASR_WD_F16;
    bool same = true, any_f32 = false;
    const gtensor_t *first = NULL;
    for (int i = 0; i < n; i++) {
        if (!parts[i])
            continue;
        if (!first)
            first = parts[i];
        same = same && !quantized(parts[i]->type) && parts[i]->type == first->type;
        any_f32 = any_f32 || parts[i]->type->id == 0;
    }
    if (first && same)
        to = wd_of(first->type);
    else if (any_f32)
        to = ASR_WD_F32;
    size_t el = asr_wdtype_size(to);
    /* shapes only (the probe): no memory, no conversion, data NULL */
    uint8_t *mem = c->f->shapes_only ? NULL : asr_wfile_own(c->f, (size_t)(n * part_elems) * el);
    if (!mem && !c->f->shapes_only)
        return fail(c, ASR_ERR_NOMEM);
    for (int i = 0; i < n; i++) {
        if (!parts[i])
            continue; /* owned memory starts zeroed */
        if (mem)
            convert(c, parts[i], to, mem + (size_t)(i * part_elems) * el);
        if (mem && c->mapped) /* read once: without this a fused or dequantized large-v3 peaks
                                 1.5 GB above its weights */
            asr_wfile_drop_pages(parts[i]->data, parts[i]->n_bytes);
        if (quantized(parts[i]->type))
            c->n_deq[parts[i]->type - GTYPES]++;
    }
    return asr_wfile_add(c->f, ct2, to, rank, dims, mem) ? 0 : fail(c, ASR_ERR_NOMEM);
}

/* Layer norm `g` (ggml prefix) as `ct2`/gamma and /beta. */
static int norm(ctx_t *c, const char *g, const char *ct2) {
    char gn[160], cn[160];
    for (int i = 0; i < 2; i++) {
        snprintf(gn, sizeof gn, "%s.%s", g, i ? "bias" : "weight");
        snprintf(cn, sizeof cn, "%s/%s", ct2, i ? "beta" : "gamma");
        gtensor_t *t = get(c, gn, 1, c->d, 0, 0);
        if (!t || put(c, cn, 1, c->d, 0, 0, &t, 1, c->d))
            return -1;
    }
    return 0;
}

/* Linear layer `ct2` (weight [n*n_out][n_in], bias [n*n_out]) from the ggml linear layers
 * g[0..n) fused in that order (weights [n_in, n_out] in ggml order); the bias of g[i] is zeros
 * when no_bias has bit i (whisper's key projections have none). */
static int linear(ctx_t *c, const char *ct2, const char *const *g, int n, unsigned no_bias,
                  int64_t n_in, int64_t n_out) {
    gtensor_t *w[3], *b[3];
    char name[160];
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof name, "%s.weight", g[i]);
        if (!(w[i] = get(c, name, 2, n_in, n_out, 0)))
            return -1;
        b[i] = NULL;
        snprintf(name, sizeof name, "%s.bias", g[i]);
        if (!(no_bias >> i & 1) && !(b[i] = get(c, name, 1, n_out, 0, 0)))
            return -1;
    }
    char wn[160], bn[160];
    snprintf(wn, sizeof wn, "%s/weight", ct2);
    snprintf(bn, sizeof bn, "%s/bias", ct2);
    return put(c, wn, 2, n * n_out, n_in, 0, w, n, n_out * n_in) ||
                   put(c, bn, 1, n * n_out, 0, 0, b, n, n_out)
               ? -1
               : 0;
}

const asr_ggml_part_t asr_ggml_block_parts[] = {
    {"self_attention/linear_0", {"attn.query", "attn.key", "attn.value"}, 3, 2u, 1, 1, false},
    {"self_attention/linear_1", {"attn.out"}, 1, 0, 1, 1, false},
    {"self_attention/layer_norm", {"attn_ln"}, 1, 0, 0, 0, false},
    {"attention/linear_0", {"cross_attn.query"}, 1, 0, 1, 1, true},
    {"attention/linear_1", {"cross_attn.key", "cross_attn.value"}, 2, 1u, 1, 1, true},
    {"attention/linear_2", {"cross_attn.out"}, 1, 0, 1, 1, true},
    {"attention/layer_norm", {"cross_attn_ln"}, 1, 0, 0, 0, true},
    {"ffn/linear_0", {"mlp.0"}, 1, 0, 1, 4, false},
    {"ffn/linear_1", {"mlp.2"}, 1, 0, 4, 1, false},
    {"ffn/layer_norm", {"mlp_ln"}, 1, 0, 0, 0, false},
};
const int asr_ggml_n_block_parts = sizeof asr_ggml_block_parts / sizeof *asr_ggml_block_parts;

/* The tensors of one block: ggml prefix gp ("encoder.blocks.3"), table prefix cp
 * ("encoder/layer_3"); cross: the decoder's, with cross-attention. */
static int block(ctx_t *c, const char *gp, const char *cp, bool cross) {
    for (int i = 0; i < asr_ggml_n_block_parts; i++) {
        const asr_ggml_part_t *p = &asr_ggml_block_parts[i];
        if (p->cross && !cross)
            continue;
        char g[3][128], t[128];
        const char *gv[3] = {g[0], g[1], g[2]};
        for (int j = 0; j < p->n; j++)
            snprintf(g[j], sizeof g[j], "%s.%s", gp, p->ggml[j]);
        snprintf(t, sizeof t, "%s/%s", cp, p->ct2);
        if (p->in_mul ? linear(c, t, gv, p->n, p->no_bias, p->in_mul * (int64_t)c->d,
                               p->out_mul * (int64_t)c->d)
                      : norm(c, g[0], t))
            return -1;
    }
    return 0;
}

/* hparams, as whisper_model_load reads them */
typedef struct {
    int32_t n_vocab, n_audio_ctx, n_audio_state, n_audio_head, n_audio_layer, n_text_ctx,
        n_text_state, n_text_head, n_text_layer, n_mels, ftype;
} hparams_t;

/* Every tensor whisper_model_load expects, into the table. */
static int build(ctx_t *c, const hparams_t *h) {
    int64_t d = c->d;
    gtensor_t *t;
    /* conv weights: ggml [3, in, d] is CTranslate2's [d][in][3]; biases [1, d] */
    if (!(t = get(c, "encoder.conv1.weight", 3, 3, h->n_mels, d)) ||
        put(c, "encoder/conv1/weight", 3, d, h->n_mels, 3, &t, 1, t->n_elems) ||
        !(t = get(c, "encoder.conv1.bias", 2, 1, d, 0)) ||
        put(c, "encoder/conv1/bias", 1, d, 0, 0, &t, 1, d) ||
        !(t = get(c, "encoder.conv2.weight", 3, 3, d, d)) ||
        put(c, "encoder/conv2/weight", 3, d, d, 3, &t, 1, t->n_elems) ||
        !(t = get(c, "encoder.conv2.bias", 2, 1, d, 0)) ||
        put(c, "encoder/conv2/bias", 1, d, 0, 0, &t, 1, d) ||
        !(t = get(c, "encoder.positional_embedding", 2, d, h->n_audio_ctx, 0)) ||
        put(c, "encoder/position_encodings/encodings", 2, h->n_audio_ctx, d, 0, &t, 1,
            t->n_elems) ||
        !asr_wfile_add_i32(c->f, "encoder/num_heads", h->n_audio_head))
        return c->rc ? -1 : fail(c, ASR_ERR_NOMEM);
    char gp[64], cp[64];
    for (int l = 0; l < h->n_audio_layer; l++) {
        snprintf(gp, sizeof gp, "encoder.blocks.%d", l);
        snprintf(cp, sizeof cp, "encoder/layer_%d", l);
        if (block(c, gp, cp, false))
            return -1;
    }
    if (norm(c, "encoder.ln_post", "encoder/layer_norm"))
        return -1;
    if (!(t = get(c, "decoder.token_embedding.weight", 2, d, h->n_vocab, 0)) ||
        put(c, "decoder/embeddings/weight", 2, h->n_vocab, d, 0, &t, 1, t->n_elems) ||
        !(t = get(c, "decoder.positional_embedding", 2, d, h->n_text_ctx, 0)) ||
        put(c, "decoder/position_encodings/encodings", 2, h->n_text_ctx, d, 0, &t, 1, t->n_elems) ||
        !asr_wfile_add_i32(c->f, "decoder/num_heads", h->n_text_head))
        return c->rc ? -1 : fail(c, ASR_ERR_NOMEM);
    for (int l = 0; l < h->n_text_layer; l++) {
        snprintf(gp, sizeof gp, "decoder.blocks.%d", l);
        snprintf(cp, sizeof cp, "decoder/layer_%d", l);
        if (block(c, gp, cp, true))
            return -1;
    }
    if (norm(c, "decoder.ln", "decoder/layer_norm"))
        return -1;
    /* the output projection is the token embedding, as in CTranslate2's files */
    c->f->aliases = asr_calloc(1, sizeof *c->f->aliases);
    if (!c->f->aliases)
        return fail(c, ASR_ERR_NOMEM);
    c->f->aliases[0] = (asr_walias_t){"decoder/projection/weight", "decoder/embeddings/weight"};
    c->f->n_aliases = 1;
    for (int i = 0; i < c->n_ts; i++)
        if (!c->ts[i].used) {
            char nm[84];
            asr_errf(c->err, c->err_len, "ggml: unknown tensor %s (not a Whisper model?)",
                     shown(&c->ts[i], nm));
            return fail(c, ASR_ERR_MODEL);
        }
    return 0;
}

/* f->note: which quantized types were dequantized, e.g. "ggml q5_0: 130 matrices dequantized
 * to float16 at load". */
static void write_note(ctx_t *c) {
    char types[64] = "";
    int n = 0;
    for (int i = 0; i < N_GTYPES; i++)
        if (c->n_deq[i]) {
            size_t l = strlen(types);
            snprintf(types + l, sizeof types - l, "%s%s", l ? "+" : "", GTYPES[i].name);
            n += c->n_deq[i];
        }
    if (n)
        snprintf(c->f->note, sizeof c->f->note,
                 "ggml %s: %d matrices dequantized to float16 at load", types, n);
}

/* ---- the file ---- */

typedef struct {
    const uint8_t *p, *end;
} cursor_t;

static size_t left(const cursor_t *c) { return (size_t)(c->end - c->p); }
static bool rd_i32(cursor_t *c, int32_t *v) {
    if (left(c) < 4)
        return false;
    *v = (int32_t)rd32(c->p);
    c->p += 4;
    return true;
}

static const char *const HP_NAMES[] = {
    "n_vocab",      "n_audio_ctx", "n_audio_state", "n_audio_head", "n_audio_layer", "n_text_ctx",
    "n_text_state", "n_text_head", "n_text_layer",  "n_mels",       "ftype"};

/* The hparams (h, and v: the same in file order), bounded so that every size computed from them
 * fits (the tensors then prove them against the file's length); 0, or -1 with the reason. */
static int check_hparams(const hparams_t *h, const int32_t *v, char *err, size_t err_len) {
    /* upper bounds, in HP_NAMES order (ftype is checked below) */
    static const int32_t max[] = {1 << 24, 1 << 20, 1 << 16, 1 << 10, 1 << 10,
                                  1 << 20, 1 << 16, 1 << 10, 1 << 10, 1 << 12};
    for (int i = 0; i < 10; i++)
        if (v[i] < 1 || v[i] > max[i]) {
            asr_errf(err, err_len, "ggml: hparam %s = %d is out of range", HP_NAMES[i], v[i]);
            return -1;
        }
    if (h->n_text_state != h->n_audio_state) {
        asr_errf(err, err_len, "ggml: n_text_state %d differs from n_audio_state %d",
                 h->n_text_state, h->n_audio_state);
        return -1;
    }
    if (h->n_audio_state % h->n_audio_head || h->n_text_state % h->n_text_head) {
        asr_errf(err, err_len, "ggml: width %d is not a multiple of the heads (%d, %d)",
                 h->n_audio_state, h->n_audio_head, h->n_text_head);
        return -1;
    }
    /* ggml_ftype after `ftype %= GGML_QNT_VERSION_FACTOR` (whisper_model_load): f32, f16, q4_0,
     * q4_1, q4_1 with some f16, q8_0, q5_0, q5_1, bf16 */
    int ft = h->ftype % 1000;
    if (h->ftype < 0 || !(ft <= 4 || (ft >= 7 && ft <= 9) || ft == 24)) {
        asr_errf(err, err_len, "ggml: unknown ftype %d", h->ftype);
        return -1;
    }
    return 0;
}

/* The tensor records after the vocabulary, into *ts (malloc'd) sorted by name; duplicates
 * refused. qntvr: the file's quantization version (ftype / 1000). */
static asr_err_t read_tensors(cursor_t *cur, int qntvr, gtensor_t **ts_out, int *n_out, char *err,
                              size_t err_len) {
    gtensor_t *ts = NULL;
    int n = 0, cap = 0;
    char nm[84]; /* a name for a message */
    asr_err_t rc = ASR_ERR_MODEL;
    while (left(cur) > 0) {
        int32_t n_dims, name_len, ttype;
        if (!rd_i32(cur, &n_dims) || !rd_i32(cur, &name_len) || !rd_i32(cur, &ttype)) {
            asr_errf(err, err_len, "ggml: truncated header of tensor %d", n + 1);
            goto fail;
        }
        if (n_dims < 1 || n_dims > 4 || name_len < 1 || name_len > 256) {
            asr_errf(err, err_len, "ggml: corrupt header of tensor %d (%d dims, name of %d bytes)",
                     n + 1, n_dims, name_len);
            goto fail;
        }
        if (n == cap) {
            cap = cap ? 2 * cap : 256;
            gtensor_t *g = realloc(ts, (size_t)cap * sizeof *g);
            if (!g) {
                rc = ASR_ERR_NOMEM;
                goto fail;
            }
            ts = g;
        }
        gtensor_t *t = &ts[n];
        memset(t, 0, sizeof *t);
        t->n_dims = n_dims;
        t->n_elems = 1;
        for (int i = 0; i < 4; i++)
            t->ne[i] = 1;
        for (int i = 0; i < n_dims; i++) {
            int32_t ne;
            if (!rd_i32(cur, &ne)) {
                asr_errf(err, err_len, "ggml: truncated header of tensor %d", n + 1);
                goto fail;
            }
            if (ne < 1 || ne > ((int64_t)1 << 40) / t->n_elems) {
                asr_errf(err, err_len, "ggml: tensor %d has dimension %d = %d", n + 1, i, ne);
                goto fail;
            }
            t->ne[i] = ne;
            t->n_elems *= ne;
        }
        if (left(cur) < (size_t)name_len) {
            asr_errf(err, err_len, "ggml: truncated name of tensor %d", n + 1);
            goto fail;
        }
        t->name = (const char *)cur->p;
        t->name_len = name_len;
        cur->p += name_len;
        if (memchr(t->name, 0, (size_t)name_len)) {
            asr_errf(err, err_len, "ggml: tensor %d has a NUL in its name", n + 1);
            goto fail;
        }
        if (!(t->type = gtype_of(ttype))) {
            asr_errf(err, err_len, "ggml: tensor %s has unknown type %d", shown(t, nm), ttype);
            goto fail;
        }
        /* GGML_QNT_VERSION 1 (ggml before 2023-05-20, whisper.cpp e410cfc3) had float32 scales
         * in q4_0, q4_1 and q8_0 (q5_0 and q5_1 were as now); whisper.cpp writes 2, and 0 (no
         * version) is what f32/f16 files and some other tools say */
        if (qntvr == 1 && (t->type->id == 2 || t->type->id == 3 || t->type->id == 8)) {
            asr_errf(err, err_len,
                     "ggml: %s tensor %s is of quantization version 1 (an older block layout): "
                     "quantize the f16 file again with a current whisper.cpp",
                     t->type->name, shown(t, nm));
            goto fail;
        }
        if (t->ne[0] % t->type->blck) {
            asr_errf(err, err_len, "ggml: %s tensor %s has rows of %lld, not whole blocks of %d",
                     t->type->name, shown(t, nm), (long long)t->ne[0], t->type->blck);
            goto fail;
        }
        t->n_bytes = (size_t)(t->n_elems / t->type->blck) * (size_t)t->type->bytes;
        if (left(cur) < t->n_bytes) {
            asr_errf(err, err_len, "ggml: truncated: tensor %s needs %zu bytes, %zu left",
                     shown(t, nm), t->n_bytes, left(cur));
            goto fail;
        }
        t->data = cur->p;
        cur->p += t->n_bytes;
        n++;
    }
    if (n)
        qsort(ts, (size_t)n, sizeof *ts, gtensor_cmp);
    for (int i = 1; i < n; i++)
        if (!gtensor_cmp(&ts[i - 1], &ts[i])) {
            asr_errf(err, err_len, "ggml: tensor %s appears twice", shown(&ts[i], nm));
            goto fail;
        }
    *ts_out = ts;
    *n_out = n;
    return ASR_OK;
fail:
    free(ts);
    return rc;
}

static asr_err_t parse(const uint8_t *data, size_t len, bool mapped, asr_wfile_t *f, char *errbuf,
                       size_t errbuf_len) {
    f->format = ASR_WFMT_GGML;
    cursor_t cur = {data, data + len};
    int32_t magic, hv[11];
    hparams_t h;
    _Static_assert(sizeof h == sizeof hv, "hparams are 11 int32");
    if (!rd_i32(&cur, &magic) || (uint32_t)magic != GGML_MAGIC) {
        asr_errf(errbuf, errbuf_len, "ggml: %s", len < 4 ? "truncated" : "bad magic");
        return ASR_ERR_MODEL;
    }
    for (int i = 0; i < 11; i++)
        if (!rd_i32(&cur, &hv[i])) {
            asr_errf(errbuf, errbuf_len, "ggml: truncated hparams (%zu bytes)", len);
            return ASR_ERR_MODEL;
        }
    memcpy(&h, hv, sizeof h);
    if (check_hparams(&h, hv, errbuf, errbuf_len))
        return ASR_ERR_MODEL;
    /* mel filters: whisper.cpp's own front end uses them; asrd computes its filterbank */
    int32_t n_mel = -1, n_fft = -1;
    if (!rd_i32(&cur, &n_mel) || !rd_i32(&cur, &n_fft) || n_mel < 0 || n_fft < 0 ||
        (uint64_t)n_mel * (uint64_t)n_fft > left(&cur) / 4) {
        asr_errf(errbuf, errbuf_len, "ggml: truncated or corrupt mel filters");
        return ASR_ERR_MODEL;
    }
    cur.p += (size_t)n_mel * (size_t)n_fft * 4;
    /* vocabulary: n_tokens (u32 length, bytes), at most n_vocab of them */
    int32_t n_tokens = -1;
    if (!rd_i32(&cur, &n_tokens) || n_tokens < 0 || n_tokens > h.n_vocab) {
        asr_errf(errbuf, errbuf_len, "ggml: corrupt vocabulary (%d tokens for n_vocab %d)",
                 n_tokens, h.n_vocab);
        return ASR_ERR_MODEL;
    }
    const uint8_t *vocab = cur.p;
    for (int32_t i = 0; i < n_tokens; i++) {
        uint32_t tl = left(&cur) >= 4 ? rd32(cur.p) : UINT32_MAX;
        if (left(&cur) < 4 || left(&cur) - 4 < tl) {
            asr_errf(errbuf, errbuf_len, "ggml: truncated vocabulary (token %d of %d)", i,
                     n_tokens);
            return ASR_ERR_MODEL;
        }
        cur.p += 4 + (size_t)tl;
    }
    f->ggml_vocab = vocab;
    f->ggml_vocab_len = (size_t)(cur.p - vocab);
    f->n_ggml_tokens = n_tokens;

    ctx_t c = {
        .f = f, .d = h.n_audio_state, .mapped = mapped, .err = errbuf, .err_len = errbuf_len};
    asr_err_t rc = read_tensors(&cur, h.ftype / 1000, &c.ts, &c.n_ts, errbuf, errbuf_len);
    if (rc != ASR_OK)
        return rc;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    c.n_threads = cores < 1 ? 1 : cores > MAX_THREADS ? MAX_THREADS : (int)cores;
    c.buf = asr_malloc((size_t)c.n_threads * CHUNK * sizeof(float));
    if (!c.buf) {
        free(c.ts);
        return ASR_ERR_NOMEM;
    }
    rc = build(&c, &h) ? c.rc : ASR_OK;
    if (rc == ASR_OK)
        write_note(&c);
    free(c.buf);
    free(c.ts);
    return rc;
}

asr_err_t asr_ggml_parse(const uint8_t *data, size_t len, asr_wfile_t *f, char *errbuf,
                         size_t errbuf_len) {
    return parse(data, len, false, f, errbuf, errbuf_len);
}

asr_err_t asr_ggml_open(const char *path, asr_wfile_t *f, char *errbuf, size_t errbuf_len) {
    const uint8_t *data;
    size_t len;
    asr_err_t rc = asr_wfile_map(f, path, &data, &len, errbuf, errbuf_len);
    return rc == ASR_OK ? parse(data, len, true, f, errbuf, errbuf_len) : rc;
}
