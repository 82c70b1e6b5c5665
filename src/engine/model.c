/* engine: loads a CTranslate2 Whisper model directory into float32 weights laid out for the
 * kernels ([out][in] rows for every linear layer). Sizes come from the file itself (mel bins,
 * vocabulary, layers, heads), never from a table of model names. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <malloc.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/ct2.h"
#include "engine/engine_int.h"
#include "engine/gpu_int.h"

typedef struct {
    asr_model_t *m;
    asr_wfile_t f;
    char *err;
    size_t err_len;
    bool oom;          /* a weight allocation failed */
    asr_wtype_t wtype; /* the decoder matrices' storage (compute type) */
} loader_t;

static void *track(asr_model_t *m, void *p) {
    if (!p)
        return NULL;
    m->allocs = asr_xrealloc(m->allocs, (size_t)(m->n_allocs + 1) * sizeof(void *));
    m->allocs[m->n_allocs++] = p;
    return p;
}

static const asr_wvar_t *need(loader_t *L, const char *name) {
    const asr_wvar_t *v = asr_wfile_find(&L->f, name);
    if (!v)
        asr_errf(L->err, L->err_len, "model.bin: missing variable %s (not a Whisper model?)", name);
    return v;
}

/* The variable `name` if it has n0×n1 elements (n1 = 0: 1-D), else NULL with the reason set. */
static const asr_wvar_t *shaped(loader_t *L, const char *name, int64_t n0, int64_t n1) {
    const asr_wvar_t *v = need(L, name);
    if (!v)
        return NULL;
    int64_t want = n1 ? n0 * n1 : n0;
    if (v->n_elems != want || (v->rank >= 1 && v->dims[0] != n0)) {
        asr_errf(L->err, L->err_len, "model.bin: %s has %lld elements, expected %lld", name,
                 (long long)v->n_elems, (long long)want);
        return NULL;
    }
    return v;
}

/* Decodes elements [e0, e1) of v (rows of `cols`) to float32 in out; -1 with the reason set. */
static int decode_f32(loader_t *L, const asr_wvar_t *v, const char *name, int64_t cols, int64_t e0,
                      int64_t e1, float *out) {
    return asr_wfile_decode_f32(&L->f, v, name, cols, e0, e1, out, L->err, L->err_len);
}

static void *alloc_weights(loader_t *L, const char *name, size_t bytes) {
    asr_model_t *m = L->m;
    size_t off = (m->warena_used + 63) & ~(size_t)63;
    void *out = NULL;
    if (m->warena && off + bytes <= m->warena_len) {
        out = m->warena + off;
        m->warena_used = off + bytes;
    } else {
        out = track(m, asr_malloc_aligned(bytes));
    }
    if (!out) {
        asr_errf(L->err, L->err_len, "out of memory loading %s", name);
        L->oom = true;
        return NULL;
    }
    L->m->weight_bytes += bytes;
    return out;
}

/* Converts variable `name` to a new float32 buffer of n0×n1 elements (n1 = 0: 1-D). */
static float *load_f32(loader_t *L, const char *name, int64_t n0, int64_t n1) {
    const asr_wvar_t *v = shaped(L, name, n0, n1);
    if (!v)
        return NULL;
    int64_t want = v->n_elems;
    float *out = alloc_weights(L, name, (size_t)want * sizeof(float));
    if (!out || decode_f32(L, v, name, n1 ? n1 : n0, 0, want, out))
        return NULL;
    asr_wfile_drop_pages(v->data, (size_t)want * asr_wdtype_size(v->dtype));
    return out;
}

/* The variable `name` when it is float16 of n0×n1 elements (n1 = 0: 1-D), else NULL with no
 * error set (the caller loads it as float32). */
static const asr_wvar_t *f16_var(loader_t *L, const char *name, int64_t n0, int64_t n1) {
    const asr_wvar_t *v = need(L, name);
    int64_t want = n1 ? n0 * n1 : n0;
    if (!v || v->dtype != ASR_WD_F16 || v->n_elems != want || (v->rank >= 1 && v->dims[0] != n0))
        return NULL;
    return v;
}

/* A float16 tensor kept as it is in the file, copied into the weights' huge pages (the
 * decoder's: the small-m kernels read them every step, converting on the fly, which halves the
 * bytes each step streams). NULL as f16_var. */
static uint16_t *load_h16(loader_t *L, const char *name, int64_t n0, int64_t n1) {
    const asr_wvar_t *v = f16_var(L, name, n0, n1);
    if (!v)
        return NULL;
    size_t bytes = (size_t)v->n_elems * sizeof(uint16_t);
    uint16_t *out = alloc_weights(L, name, bytes);
    if (!out)
        return NULL;
    memcpy(out, v->data, bytes);
    asr_wfile_drop_pages(v->data, bytes);
    return out;
}

/* v [n0][n1] converted 64 rows at a time (no float32 copy of the whole tensor) into dst of type
 * wtype (bfloat16, or int8 with its row scales); with res (int8 only), each row's error after
 * that is quantized again into res and res_scale (the embedding's second level). The source's
 * pages go as they are converted: loading peaks at the converted weights plus a chunk. */
static int convert_chunks(loader_t *L, const asr_wvar_t *v, const char *name, int64_t n0,
                          int64_t n1, asr_wtype_t wtype, void *dst, float *scale, int8_t *res,
                          float *res_scale) {
    const size_t el = wtype == ASR_W_I8 ? 1 : 2, row_b = (size_t)n1 * asr_wdtype_size(v->dtype);
    float *chunk = malloc((size_t)(64 * n1) * sizeof(float));
    if (!chunk) {
        asr_errf(L->err, L->err_len, "out of memory loading %s", name);
        L->oom = true;
        return -1;
    }
    for (int64_t r = 0; r < n0; r += 64) {
        int64_t nr = n0 - r < 64 ? n0 - r : 64;
        if (decode_f32(L, v, name, n1, r * n1, (r + nr) * n1, chunk)) {
            free(chunk);
            return -1;
        }
        asr_nn_convert_rows(chunk, (int)nr, (int)n1, wtype, (char *)dst + (size_t)(r * n1) * el,
                            scale ? scale + r : NULL);
        for (int64_t i = 0; res && i < nr; i++) {
            float *c = chunk + i * n1, s = scale[r + i];
            const int8_t *q = (const int8_t *)dst + (r + i) * n1;
            for (int64_t t = 0; t < n1; t++)
                c[t] -= s * (float)q[t];
        }
        if (res)
            asr_nn_convert_rows(chunk, (int)nr, (int)n1, ASR_W_I8, res + r * n1, res_scale + r);
        asr_wfile_drop_pages(v->data + (size_t)r * row_b, (size_t)nr * row_b);
    }
    free(chunk);
    asr_wfile_drop_pages(v->data, (size_t)n0 * row_b);
    return 0;
}

/* A decoder matrix [n0][n1] in storage wtype (the compute type's): float32 compute keeps a float16
 * file's values as they are (exact; the kernels convert while reading, half the bytes streamed);
 * bfloat16 and int8 are converted (convert_chunks). */
static int load_wmat(loader_t *L, const char *name, int64_t n0, int64_t n1, asr_wtype_t wtype,
                     asr_wmat_t *out) {
    *out = (asr_wmat_t){ASR_W_F32, NULL, NULL, (int)n1};
    if (wtype == ASR_W_F32) {
        uint16_t *h = load_h16(L, name, n0, n1);
        if (L->oom)
            return -1;
        out->type = h ? ASR_W_F16 : ASR_W_F32;
        out->data = h ? (void *)h : (void *)load_f32(L, name, n0, n1);
        return out->data ? 0 : -1;
    }
    const asr_wvar_t *v = shaped(L, name, n0, n1);
    if (!v)
        return -1;
    size_t el = wtype == ASR_W_I8 ? 1 : 2;
    void *dst = alloc_weights(L, name, (size_t)(n0 * n1) * el);
    float *scale = wtype == ASR_W_I8 ? alloc_weights(L, name, (size_t)n0 * sizeof(float)) : NULL;
    if (!dst || (wtype == ASR_W_I8 && !scale))
        return -1;
    if (convert_chunks(L, v, name, n0, n1, wtype, dst, scale, NULL, NULL))
        return -1;
    *out = (asr_wmat_t){wtype, dst, scale, (int)n1};
    return 0;
}

static int scalar_int(loader_t *L, const char *name, int dflt) {
    const asr_wvar_t *v = asr_wfile_find(&L->f, name);
    if (!v || v->n_elems != 1)
        return dflt;
    switch (v->dtype) {
    case ASR_WD_I8:
        return (int8_t)v->data[0];
    case ASR_WD_I16:
        return (int16_t)(v->data[0] | v->data[1] << 8);
    case ASR_WD_I32:
        return (int32_t)((uint32_t)v->data[0] | (uint32_t)v->data[1] << 8 |
                         (uint32_t)v->data[2] << 16 | (uint32_t)v->data[3] << 24);
    default:
        return dflt;
    }
}

static int load_linear(loader_t *L, asr_linear_t *lin, const char *prefix, int n_out, int n_in,
                       int with_bias, bool dec) {
    char name[256];
    snprintf(name, sizeof name, "%s/weight", prefix);
    lin->w = NULL;
    lin->h = NULL;
    lin->n_out = n_out;
    lin->n_in = n_in;
    if (dec) {
        if (load_wmat(L, name, n_out, n_in, L->wtype, &lin->wm))
            return -1;
    } else {
        /* float16 files stay float16, converted per GEMM; read in place in the mapped file, once
         * a window: no memory of their own to fault in (4-KiB pages cost nothing there) */
        const asr_wvar_t *v = f16_var(L, name, n_out, n_in);
        if (v) {
            lin->h = v->data;
            L->m->weight_bytes += (size_t)v->n_elems * sizeof(uint16_t);
        } else if (!(lin->w = load_f32(L, name, n_out, n_in))) {
            return -1;
        }
    }
    lin->b = NULL;
    if (with_bias) {
        snprintf(name, sizeof name, "%s/bias", prefix);
        if (asr_wfile_find(&L->f, name)) {
            lin->b = load_f32(L, name, n_out, 0);
            if (!lin->b)
                return -1;
        }
    }
    return 0;
}

static int load_norm(loader_t *L, asr_norm_t *n, const char *prefix, int d) {
    char name[256];
    snprintf(name, sizeof name, "%s/gamma", prefix);
    n->gamma = load_f32(L, name, d, 0);
    snprintf(name, sizeof name, "%s/beta", prefix);
    n->beta = n->gamma ? load_f32(L, name, d, 0) : NULL;
    return n->beta ? 0 : -1;
}

static int count_layers(loader_t *L, const char *stack) {
    int n = 0;
    char name[256];
    for (;;) {
        snprintf(name, sizeof name, "%s/layer_%d/ffn/linear_0/weight", stack, n);
        if (!asr_wfile_find(&L->f, name))
            return n;
        n++;
    }
}

/* One named part of a layer: a layer norm, or a linear layer whose [out][in] shape is given in
 * multiples of d (-1 = the FFN width, read from the file). */
typedef struct {
    const char *suffix;
    asr_norm_t *norm;
    asr_linear_t *lin;
    int out_mul, in_mul;
    bool dec; /* a decoder matrix: stored in the compute type */
} part_t;

static int load_parts(loader_t *L, const char *stack, int l, int d, const part_t *parts, size_t n) {
    char p[200], f0name[128];
    snprintf(f0name, sizeof f0name, "%s/layer_0/ffn/linear_0/weight", stack);
    const asr_wvar_t *f0 = asr_wfile_find(&L->f, f0name);
    int ff = f0 && f0->rank == 2 ? (int)f0->dims[0] : 4 * d;
    for (size_t i = 0; i < n; i++) {
        snprintf(p, sizeof p, "%s/layer_%d/%s", stack, l, parts[i].suffix);
        int rc =
            parts[i].norm
                ? load_norm(L, parts[i].norm, p, d)
                : load_linear(L, parts[i].lin, p, parts[i].out_mul < 0 ? ff : parts[i].out_mul * d,
                              parts[i].in_mul < 0 ? ff : parts[i].in_mul * d, 1, parts[i].dec);
        if (rc)
            return -1;
    }
    return 0;
}

int asr__model_dims(const asr_wfile_t *f, asr_model_info_t *in, char *err, size_t err_len) {
    loader_t L0 = {.err = err, .err_len = err_len};
    loader_t *L = &L0;
    L->f = *f;
    const asr_wvar_t *c1 = need(L, "encoder/conv1/weight");
    const asr_wvar_t *emb = need(L, "decoder/embeddings/weight");
    const asr_wvar_t *epos = need(L, "encoder/position_encodings/encodings");
    const asr_wvar_t *dpos = need(L, "decoder/position_encodings/encodings");
    if (!c1 || !emb || !epos || !dpos)
        return -1;
    if (c1->rank != 3 || c1->dims[2] != 3 || emb->rank != 2 || epos->rank != 2 || dpos->rank != 2) {
        asr_errf(L->err, L->err_len, "model.bin: unexpected tensor ranks (not a Whisper model?)");
        return -1;
    }
    int d = (int)c1->dims[0];
    in->d_model = d;
    in->n_mels = (int)c1->dims[1];
    in->n_vocab = (int)emb->dims[0];
    in->n_audio_ctx = (int)epos->dims[0];
    in->n_text_ctx = (int)dpos->dims[0];
    in->n_audio_layer = count_layers(L, "encoder");
    in->n_text_layer = count_layers(L, "decoder");
    in->n_audio_head = scalar_int(L, "encoder/num_heads", 0);
    in->n_text_head = scalar_int(L, "decoder/num_heads", 0);
    const asr_wvar_t *f0 = asr_wfile_find(&L->f, "encoder/layer_0/ffn/linear_0/weight");
    in->f32_matrices = f0 && f0->dtype != ASR_WD_F16;
    snprintf(in->format, sizeof in->format, "%s", asr_wfmt_name(f->format));
    snprintf(in->note, sizeof in->note, "%s", f->note);
    in->dequantized = f->format == ASR_WFMT_GGML && f->note[0];
    if (d <= 0 || d > 8192 || emb->dims[1] != d || epos->dims[1] != d || dpos->dims[1] != d ||
        in->n_audio_ctx != 1500 || in->n_text_ctx < 8 || in->n_text_ctx > 4096 ||
        in->n_audio_layer < 1 || in->n_text_layer < 1 || in->n_audio_head <= 0 ||
        in->n_text_head <= 0 || d % in->n_audio_head || d % in->n_text_head || in->n_mels < 1 ||
        in->n_mels > 512 || in->n_vocab < 51000 || !f0 || f0->rank != 2 ||
        f0->dims[0] != 4 * (int64_t)d) {
        asr_errf(L->err, L->err_len,
                 "model.bin: inconsistent Whisper dimensions (d=%d mels=%d vocab=%d heads=%d/%d "
                 "layers=%d/%d)",
                 d, in->n_mels, in->n_vocab, in->n_audio_head, in->n_text_head, in->n_audio_layer,
                 in->n_text_layer);
        return -1;
    }
    return 0;
}

/* One encoder matrix packed for oneDNN (asr__enc_dnnl_type) for GEMMs of `rows` rows: from
 * float32 w, or float16 h made float32 first (tmp: n*k floats). A kernel whose scratchpad outgrows
 * the slot's buffer (asr__enc_dnnl_scratch) leaves the matrix as it was. */
static asr_err_t pack_rows(asr_model_t *m, int type, int flags, const float *w, const void *h,
                           const float *b, int rows, int n, int k, float *tmp,
                           asr_nn_dnnl_t **out) {
    *out = NULL;
    if (!w) { /* the mapped bytes, at any alignment */
        asr_nn_h2f_n_mt(NULL, h, tmp, (size_t)n * k);
        w = tmp;
    }
    asr_nn_dnnl_t *g = NULL;
    asr_err_t e = asr_nn_dnnl_pack_ex(type, flags, w, b, rows, n, k, m->n_threads, &g);
    if (e == ASR_ERR_NOMEM)
        return e;
    if (e != ASR_OK || asr_nn_dnnl_scratch_bytes(g) > asr__enc_dnnl_scratch(&m->info, type)) {
        asr_nn_dnnl_destroy(g);
        return ASR_OK;
    }
    m->weight_bytes += asr_nn_dnnl_weight_bytes(g);
    *out = g;
    return ASR_OK;
}

/* An encoder matrix of the 1500 positions (pack_rows). */
static asr_err_t pack_one(asr_model_t *m, int type, int flags, const float *w, const void *h,
                          const float *b, int n, int k, float *tmp, asr_nn_dnnl_t **out) {
    return pack_rows(m, type, flags, w, h, b, 1500, n, k, tmp, out);
}

/* A packed matrix's mapped float16 copy is not read again: its pages go. */
static void drop_h16(asr_model_t *m, asr_linear_t *x) {
    size_t len = (size_t)x->n_out * x->n_in * sizeof(uint16_t);
    uintptr_t a = (uintptr_t)x->h, pg = 4096, lo = (a + pg - 1) / pg * pg;
    uintptr_t hi = (a + len) / pg * pg;
    if (hi > lo) /* a read-only private file mapping: dropped pages refault from it */
        madvise((void *)lo, hi - lo, MADV_DONTNEED);
    m->weight_bytes -= len;
    x->h = NULL;
}

/* The encoder's GEMMs, and the decoder's cross-attention K/V projections, for oneDNN under
 * bfloat16/int8 on a CPU that runs them (CPU models). */
static asr_err_t pack_encoder(asr_model_t *m) {
    int type = asr__enc_dnnl_type(m->wtype), d = m->info.d_model;
    if (type < 0)
        return ASR_OK;
    float *tmp = malloc(sizeof(float) * 4 * (size_t)d * d);
    if (!tmp)
        return ASR_ERR_NOMEM;
    /* what follows each GEMM, fused (encoder.c): GELU after the convolutions and ffn1, the residual
     * add after the attention's output projection and ffn2; conv1 runs on the 3000 mel frames */
    asr_err_t e = pack_rows(m, type, ASR_NN_DNNL_GELU, m->conv1_w, NULL, m->conv1_b, 3000, d,
                            3 * m->info.n_mels, tmp, &m->conv1_dn);
    /* conv2 with its taps outermost ([out][tap][in], not the file's [out][in][tap]): the encoder
     * reads its input's three rows in place (encoder.c) */
    for (int o = 0; o < d && e == ASR_OK; o++)
        for (int c = 0; c < d; c++)
            for (int t = 0; t < 3; t++)
                tmp[((size_t)o * 3 + t) * d + c] = m->conv2_w[((size_t)o * d + c) * 3 + t];
    if (e == ASR_OK)
        e = pack_one(m, type, ASR_NN_DNNL_GELU, tmp, NULL, m->conv2_b, d, 3 * d, NULL,
                     &m->conv2_dn);
    /* bfloat16: ffn1 writes bfloat16 that ffn2 reads as it is (both packed so, or neither); qkv
     * and ffn1 read the layer norms' bfloat16 output (encoder.c) */
    const int bf = type == ASR_NN_DNNL_BF16;
    const int in16 = bf ? ASR_NN_DNNL_SRC_BF16 : 0, out16 = bf ? ASR_NN_DNNL_DST_BF16 : 0;
    const int H = m->info.n_audio_head; /* out reads the attention's bfloat16 where it runs so */
    const int attn16 = bf && asr_nn_attn_bf16_bytes(m->wtype, 1500, d, H) ? in16 : 0;
    /* qkv writes bfloat16 for that attention (it reads it as it is) */
    const int flags[4] = {in16 | (attn16 ? out16 : 0), ASR_NN_DNNL_ACC | attn16,
                          ASR_NN_DNNL_GELU | out16 | in16, ASR_NN_DNNL_ACC | in16};
    for (int l = 0; l < m->info.n_audio_layer && e == ASR_OK; l++) {
        asr_linear_t *lins[] = {&m->enc[l].qkv, &m->enc[l].out, &m->enc[l].ffn1, &m->enc[l].ffn2};
        for (int i = 0; i < 4 && e == ASR_OK; i++) {
            asr_linear_t *x = lins[i];
            e = pack_one(m, type, flags[i], x->w, x->h, x->b, x->n_out, x->n_in, tmp, &x->dn);
        }
        asr_linear_t *f1 = lins[2], *f2 = lins[3];
        if (e == ASR_OK && bf && !f1->dn != !f2->dn) { /* one stayed float32: unchain the other */
            asr_linear_t *x = f1->dn ? f1 : f2;
            m->weight_bytes -= asr_nn_dnnl_weight_bytes(x->dn);
            asr_nn_dnnl_destroy(x->dn);
            e = pack_one(m, type, x == f1 ? ASR_NN_DNNL_GELU | in16 : ASR_NN_DNNL_ACC, x->w, x->h,
                         x->b, x->n_out, x->n_in, tmp, &x->dn);
        }
        for (int i = 0; i < 4 && e == ASR_OK; i++)
            if (lins[i]->dn && lins[i]->h)
                drop_h16(m, lins[i]);
    }
    /* the cross-attention K/V projections read the encoder's output once a window (decoder.c) */
    for (int l = 0; l < m->info.n_text_layer && e == ASR_OK; l++) {
        asr_linear_t *x = &m->dec[l].cross_kv;
        e = pack_one(m, type, 0, x->w, x->h, x->b, x->n_out, x->n_in, tmp, &x->dn);
        if (e == ASR_OK && x->dn && x->h)
            drop_h16(m, x);
    }
    free(tmp);
    return e;
}

static void unpack_encoder(asr_model_t *m) {
    asr_nn_dnnl_destroy(m->conv1_dn);
    asr_nn_dnnl_destroy(m->conv2_dn);
    m->conv1_dn = m->conv2_dn = NULL;
    for (int l = 0; m->enc && l < m->info.n_audio_layer; l++) {
        asr_linear_t *lins[] = {&m->enc[l].qkv, &m->enc[l].out, &m->enc[l].ffn1, &m->enc[l].ffn2};
        for (int i = 0; i < 4; i++) {
            asr_nn_dnnl_destroy(lins[i]->dn);
            lins[i]->dn = NULL;
        }
    }
    for (int l = 0; m->dec && l < m->info.n_text_layer; l++) {
        asr_nn_dnnl_destroy(m->dec[l].cross_kv.dn);
        m->dec[l].cross_kv.dn = NULL;
    }
}

/* The token embedding, also the output projection whose logits beam search ranks: float16 as in
 * the file under float32; under int8 and bfloat16 two int8 levels with a scale per row each,
 * w = scale·q + res_scale·r (r: the first level's error, quantised again; within max|w|/64516 of
 * the file's value, finer than float16 there, and bfloat16's), in no more bytes than float16: q
 * alone scores the vocabulary, both score again the highest of each row (logits.c). */
static int load_embedding(loader_t *L, int64_t V, int64_t d) {
    asr_model_t *m = L->m;
    const char *name = "decoder/embeddings/weight";
    if (L->wtype == ASR_W_F32)
        return load_wmat(L, name, V, d, L->wtype, &m->tok_emb);
    const asr_wvar_t *v = shaped(L, name, V, d);
    if (!v)
        return -1;
    int8_t *q = alloc_weights(L, name, (size_t)(V * d)),
           *r = alloc_weights(L, name, (size_t)(V * d));
    float *qs = alloc_weights(L, name, (size_t)V * sizeof(float));
    float *rs = alloc_weights(L, name, (size_t)V * sizeof(float));
    if (!q || !r || !qs || !rs || convert_chunks(L, v, name, V, d, ASR_W_I8, q, qs, r, rs))
        return -1;
    m->tok_emb = (asr_wmat_t){ASR_W_I8, q, qs, (int)d};
    m->tok_res = (asr_wmat_t){ASR_W_I8, r, rs, (int)d};
    return 0;
}

/* Every tensor; m->info holds the file's dimensions (asr__model_dims). */
static int load_weights(loader_t *L) {
    asr_model_t *m = L->m;
    asr_model_info_t *in = &m->info;
    int d = in->d_model;
    /* conv weights [d][in][3] are already [out][in*3] row-major */
    if (!(m->conv1_w = load_f32(L, "encoder/conv1/weight", d, (int64_t)in->n_mels * 3)) ||
        !(m->conv1_b = load_f32(L, "encoder/conv1/bias", d, 0)) ||
        !(m->conv2_w = load_f32(L, "encoder/conv2/weight", d, (int64_t)d * 3)) ||
        !(m->conv2_b = load_f32(L, "encoder/conv2/bias", d, 0)) ||
        !(m->enc_pos = load_f32(L, "encoder/position_encodings/encodings", 1500, d)))
        return -1;
    m->enc = track(m, asr_xcalloc((size_t)in->n_audio_layer, sizeof *m->enc));
    for (int l = 0; l < in->n_audio_layer; l++) {
        asr_enc_layer_t *e = &m->enc[l];
        const part_t parts[] = {
            {"self_attention/layer_norm", &e->attn_ln, NULL, 0, 0, false},
            {"self_attention/linear_0", NULL, &e->qkv, 3, 1, false},
            {"self_attention/linear_1", NULL, &e->out, 1, 1, false},
            {"ffn/layer_norm", &e->ffn_ln, NULL, 0, 0, false},
            {"ffn/linear_0", NULL, &e->ffn1, -1, 1, false},
            {"ffn/linear_1", NULL, &e->ffn2, 1, -1, false},
        };
        if (load_parts(L, "encoder", l, d, parts, sizeof parts / sizeof *parts))
            return -1;
    }
    if (load_norm(L, &m->enc_ln, "encoder/layer_norm", d))
        return -1;
    if (load_embedding(L, in->n_vocab, d) ||
        !(m->dec_pos = load_f32(L, "decoder/position_encodings/encodings", in->n_text_ctx, d)))
        return -1;
    m->dec = track(m, asr_xcalloc((size_t)in->n_text_layer, sizeof *m->dec));
    for (int l = 0; l < in->n_text_layer; l++) {
        asr_dec_layer_t *e = &m->dec[l];
        const part_t parts[] = {
            {"self_attention/layer_norm", &e->attn_ln, NULL, 0, 0, false},
            {"self_attention/linear_0", NULL, &e->qkv, 3, 1, true},
            {"self_attention/linear_1", NULL, &e->out, 1, 1, true},
            {"attention/layer_norm", &e->cross_ln, NULL, 0, 0, false},
            {"attention/linear_0", NULL, &e->cross_q, 1, 1, true},
            {"attention/linear_1", NULL, &e->cross_kv, 2, 1, false},
            {"attention/linear_2", NULL, &e->cross_out, 1, 1, true},
            {"ffn/layer_norm", &e->ffn_ln, NULL, 0, 0, false},
            {"ffn/linear_0", NULL, &e->ffn1, -1, 1, true},
            {"ffn/linear_1", NULL, &e->ffn2, 1, -1, true},
        };
        if (load_parts(L, "decoder", l, d, parts, sizeof parts / sizeof *parts))
            return -1;
    }
    if (load_norm(L, &m->dec_ln, "decoder/layer_norm", d))
        return -1;
    return 0;
}

/* Reads alignment_heads into heads from config.json (CTranslate2) or, when that has none,
 * generation_config.json (Hugging Face); both optional. Returns their number, or -1 with a reason
 * in err when a file exists but is not JSON. */
static int read_alignment_heads(const char *dir, const asr_model_info_t *in, int heads[64][2],
                                char *err, size_t err_len) {
    static const char *const files[2] = {"config.json", "generation_config.json"};
    json_t *root = NULL, *arr = NULL;
    for (int i = 0; i < 2 && !arr; i++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        json_error_t je;
        json_decref(root);
        root = json_load_file(path, 0, &je);
        struct stat st;
        if (!root && stat(path, &st) == 0) {
            asr_errf(err, err_len, "%s: invalid JSON at line %d: %s", path, je.line, je.text);
            return -1;
        }
        arr = json_object_get(root, "alignment_heads");
    }
    int n = 0;
    if (json_is_array(arr)) {
        size_t i;
        json_t *pair;
        json_array_foreach(arr, i, pair) {
            if (n >= 64 || !json_is_array(pair) || json_array_size(pair) != 2)
                continue;
            int l = (int)json_integer_value(json_array_get(pair, 0));
            int h = (int)json_integer_value(json_array_get(pair, 1));
            if (l < 0 || l >= in->n_text_layer || h < 0 || h >= in->n_text_head)
                continue;
            heads[n][0] = l;
            heads[n][1] = h;
            n++;
        }
    }
    json_decref(root);
    return n;
}

/* Without a list: all heads of the upper half of the decoder layers (at most 64). */
static int default_alignment_heads(const asr_model_info_t *in, int heads[64][2]) {
    int n = 0;
    for (int l = in->n_text_layer / 2; l < in->n_text_layer; l++)
        for (int h = 0; h < in->n_text_head && n < 64; h++) {
            heads[n][0] = l;
            heads[n][1] = h;
            n++;
        }
    return n;
}

int asr__model_alignment_heads(const char *dir, const asr_model_info_t *in, int heads[64][2]) {
    int n = dir ? read_alignment_heads(dir, in, heads, NULL, 0) : 0;
    return n > 0 ? n : default_alignment_heads(in, heads);
}

int asr__model_count_alignment_heads(const char *dir, const asr_model_info_t *in) {
    int heads[64][2];
    return asr__model_alignment_heads(dir, in, heads);
}

static int load_config(loader_t *L, const char *dir) {
    asr_model_t *m = L->m;
    int n = read_alignment_heads(dir, &m->info, m->alignment_heads, L->err, L->err_len);
    if (n < 0)
        return -1;
    m->n_alignment_heads = n;
    return 0;
}

asr_model_params_t asr_model_default_params(void) {
    asr_model_params_t p = {.compute_type = "auto", .n_threads = 0};
    return p;
}

static int default_threads(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (int)n;
}

typedef struct {
    const char *dir;
    const asr_wfile_t *f; /* a ggml file carries its vocabulary */
    int n_vocab;
    pthread_t tid;
    asr_tokenizer_t *tok;
    asr_err_t rc;
    char err[512];
} tok_job_t;

asr_err_t asr__model_load_tokenizer(const asr_wfile_t *f, const char *dir, int n_vocab,
                                    asr_tokenizer_t **out, char *err, size_t err_len) {
    if (f->format == ASR_WFMT_GGML)
        return asr_tokenizer_load_ggml(f->ggml_vocab, f->ggml_vocab_len, f->n_ggml_tokens, n_vocab,
                                       out, err, err_len);
    return asr_tokenizer_load(dir, n_vocab, out, err, err_len);
}

static void *tok_job_run(void *arg) {
    tok_job_t *j = arg;
    j->rc = asr__model_load_tokenizer(j->f, j->dir, j->n_vocab, &j->tok, j->err, sizeof j->err);
    return NULL;
}

asr_err_t asr_model_load(const char *dir, const asr_model_params_t *params, asr_model_t **out,
                         char *errbuf, size_t errbuf_len) {
    *out = NULL;
    asr_model_params_t p = params ? *params : asr_model_default_params();
    asr_devspec_t spec, dev;
    char why[256] = "";
    if (asr_devspec_parse(p.device, &spec) != ASR_OK) {
        asr_errf(errbuf, errbuf_len, "unknown device '%s' (use cpu, cuda, cuda:N, auto or host)",
                 p.device);
        return ASR_ERR_INVALID;
    }
    asr_err_t drc = asr_devspec_resolve(&spec, &dev, why, sizeof why);
    if (drc != ASR_OK) {
        asr_errf(errbuf, errbuf_len, "%s", why);
        return drc;
    }
    if (spec.kind == ASR_DEVSPEC_AUTO)
        ASR_LOG(ASR_LOG_INFO, "msg=device_auto choice=\"%s\"", why);
    const bool gpu = dev.kind != ASR_DEVSPEC_CPU;
    asr_dtype_t gwt, gt;
    const char *gcanon;
    if (gpu &&
        asr__gpu_compute_type(p.compute_type, dev.kind == ASR_DEVSPEC_HOST, &gwt, &gt, &gcanon)) {
        asr_errf(errbuf, errbuf_len,
                 "unsupported GPU compute type '%s' (use float16, bfloat16, int8_float16 or "
                 "float32)",
                 p.compute_type);
        return ASR_ERR_INVALID;
    }
    /* a GPU model's host part (read by its upload, the tokenizer, the search) is float32 */
    const char *host_ct = gpu ? "float32" : p.compute_type;
    asr_wtype_t wtype;
    if (asr__compute_type(host_ct, &wtype)) {
        asr_errf(errbuf, errbuf_len,
                 "unsupported compute type '%s' (use float32, bfloat16, int8 or auto)",
                 p.compute_type);
        return ASR_ERR_INVALID;
    }
    asr_model_t *m = asr_xcalloc(1, sizeof *m);
    loader_t L = {.m = m, .err = errbuf, .err_len = errbuf_len, .wtype = wtype};
    m->wtype = wtype;
    char mdir[4096];
    asr_err_t rc = asr_wfile_open(dir, &L.f, mdir, errbuf, errbuf_len);
    if (rc != ASR_OK) {
        free(m);
        return rc;
    }
    rc = ASR_ERR_MODEL;
    if (L.f.format == ASR_WFMT_CT2 && L.f.version >= 2 &&
        strcmp(L.f.spec_name, "WhisperSpec") != 0) {
        asr_errf(errbuf, errbuf_len, "model.bin holds a %s, not a WhisperSpec", L.f.spec_name);
        goto fail;
    }
    if (L.f.spec_revision > 3) {
        asr_errf(errbuf, errbuf_len, "model.bin: WhisperSpec revision %u is newer than supported",
                 L.f.spec_revision);
        goto fail;
    }
    /* every tensor as float32 at most: the weights' region, reserved (not touched) up front */
    size_t cap = 0;
    for (int i = 0; i < L.f.n_vars; i++)
        cap += 4 * (size_t)L.f.vars[i].n_elems + 128;
    m->warena = asr_malloc_huge(cap); /* NULL: each tensor gets its own buffer */
    m->warena_len = m->warena ? cap : 0;
    /* the tokenizer (tens of ms of JSON and hashing) loads on a second core beside the weights */
    if (asr__model_dims(&L.f, &m->info, errbuf, errbuf_len) != 0)
        goto fail;
    tok_job_t tj = {.dir = mdir, .n_vocab = m->info.n_vocab, .f = &L.f};
    bool tok_thread = pthread_create(&tj.tid, NULL, tok_job_run, &tj) == 0;
    if (!tok_thread)
        tok_job_run(&tj);
    int wrc = load_weights(&L);
    if (tok_thread)
        pthread_join(tj.tid, NULL);
    m->tok = tj.tok;
    if (wrc != 0)
        goto fail;
    m->warena_len = asr_huge_trim(m->warena, m->warena_len, m->warena_used);
    if (load_config(&L, mdir) != 0)
        goto fail;
    rc = tj.rc;
    if (rc != ASR_OK) {
        asr_errf(errbuf, errbuf_len, "%s", tj.err);
        goto fail;
    }
    m->sp = *asr_tokenizer_special(m->tok);
    m->info.multilingual = m->sp.multilingual;
    m->info.n_languages = m->sp.n_languages;
    m->suppress = track(m, asr_xcalloc(1024, sizeof(int32_t)));
    m->n_suppress = asr_tokenizer_suppress_tokens(m->tok, m->suppress, 1024);
    rc = asr_mel_create(m->info.n_mels, &m->mel);
    if (rc != ASR_OK) {
        asr_errf(errbuf, errbuf_len, "cannot create mel filterbank: %s", asr_strerror(rc));
        goto fail;
    }
    m->n_threads = p.n_threads > 0 ? p.n_threads : default_threads();
    if (m->n_alignment_heads == 0)
        m->n_alignment_heads = default_alignment_heads(&m->info, m->alignment_heads);
    m->info.n_alignment_heads = m->n_alignment_heads;
    m->wf = L.f; /* kept: the encoder's float16 matrices are read in place */
    snprintf(m->device, sizeof m->device, "cpu");
    snprintf(m->device_line, sizeof m->device_line, "cpu (%s), %s", asr_nn_simd_name(),
             asr_model_compute_type(m));
    if (!gpu && (rc = pack_encoder(m)) != ASR_OK) {
        asr_errf(errbuf, errbuf_len, "packing the encoder's weights: %s", asr_strerror(rc));
        asr_model_destroy(m);
        return rc;
    }
    /* ASRD_CPU_BATCH=N: decoder steps of concurrent streams batched on N threads (cpu_batch.c) */
    const char *cb = getenv("ASRD_CPU_BATCH");
    if (!gpu && cb && atoi(cb) > 0 && (rc = asr__cpu_batch_start(m, atoi(cb))) != ASR_OK) {
        asr_errf(errbuf, errbuf_len, "cannot start the CPU batcher thread");
        asr_model_destroy(m);
        return rc;
    }
    if (m->conv2_dn) {
        size_t n = strlen(m->device_line);
        snprintf(m->device_line + n, sizeof m->device_line - n, ", encoder GEMMs oneDNN %s",
                 asr_nn_dnnl_impl(m->conv2_dn));
    }
    if (gpu) {
        rc = asr__gpu_model_open(m, &dev, p.compute_type, p.max_batch, errbuf, errbuf_len);
        if (rc != ASR_OK) {
            asr_model_destroy(m);
            return rc;
        }
        /* the device holds the weights now: the host's copies (the huge region, the mapped
         * files) are never read again; the tokenizer, mel filters and token lists stay */
        asr_free_huge(m->warena, m->warena_len);
        m->warena = NULL, m->warena_len = 0;
        asr_wfile_free(&m->wf);
        m->weight_bytes = m->g->weight_bytes;
    }
    *out = m;
    return ASR_OK;
fail:
    m->wf = L.f; /* asr_model_destroy unmaps the files */
    asr_model_destroy(m);
    if (L.oom)
        return ASR_ERR_NOMEM;
    return rc == ASR_OK ? ASR_ERR_MODEL : rc;
}

void asr_model_destroy(asr_model_t *m) {
    if (!m)
        return;
    asr__gpu_model_close(m);
    asr__cpu_batch_stop(m);
    unpack_encoder(m);
    asr_free_huge(m->warena, m->warena_len);
    asr_wfile_free(&m->wf);
    for (int i = 0; i < m->n_allocs; i++)
        free(m->allocs[i]);
    free(m->allocs);
    asr_tokenizer_destroy(m->tok);
    asr_mel_destroy(m->mel);
    free(m);
    /* the tokenizer's tables (hundreds of KiB each, built on the loading thread's arena) leave
     * free holes in glibc's heaps: give their pages back, so a server that loads and unloads
     * models returns to its baseline */
    malloc_trim(0);
}

const asr_model_info_t *asr_model_info(const asr_model_t *m) { return &m->info; }
size_t asr_model_weight_bytes(const asr_model_t *m) { return m->weight_bytes; }

const char *asr_model_device(const asr_model_t *m) { return m->device; }
bool asr_model_device_lost(const asr_model_t *m) { return m && m->g && atomic_load(&m->g->lost); }
const char *asr_model_device_line(const asr_model_t *m) { return m->device_line; }

const char *asr_model_compute_type(const asr_model_t *m) {
    if (m->g)
        return m->g->ctype;
    return m->wtype == ASR_W_I8 ? "int8" : m->wtype == ASR_W_BF16 ? "bfloat16" : "float32";
}
