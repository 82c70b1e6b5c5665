/* engine: the CTranslate2 writer (wwrite.h): a directory faster-whisper and asrd both load, laid
 * out as CTranslate2's own converter (ct2-transformers-converter) lays it out.
 *
 * model.bin: binary version 6, spec "WhisperSpec" revision 3 (what faster-whisper's published
 * models carry), variables in string-sort order (WHISPER-FACTS §1), the scalars WhisperSpec
 * declares (num_heads, activation, pre_norm, ...), and the tied output projection as the alias
 * decoder/projection/weight -> decoder/embeddings/weight. Storage by type, as the converter's
 * --quantization:
 *   float16: every float tensor float16 (norms, biases and position tables too: the published
 *            float16 models keep nothing float32);
 *   float32: every float tensor float32;
 *   int8:    int8_float16, the weights of the linear layers, the convolutions and the embeddings
 *            int8 with a float32 NAME_scale per row (scale = 127 / max|row|, q = rint(w * scale);
 *            readers take w = q / scale), every other float tensor float16.
 * A tensor already in the output's storage is copied byte for byte (float16 -> float16 exact;
 * int8 with per-row scales keeps its scales). Tensors are converted a block of rows at a time
 * straight into the file: memory stays at one block whatever the model's size.
 *
 * Side files: config.json (alignment_heads, lang_ids, suppress_ids, suppress_ids_begin),
 * vocabulary.json, tokenizer.json, preprocessor_config.json (feature_size = the model's mel bins:
 * faster-whisper sizes its front end from it). Every file is fsynced. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/core.h"
#include "engine/wwrite.h"
#include "nn/nn.h"

#define CT2_VERSION 6
#define CT2_SPEC "WhisperSpec"
#define CT2_SPEC_REVISION 3
#define BLOCK_ELEMS ((int64_t)1 << 20) /* elements converted per block */

typedef enum { E_TENSOR, E_SCALE, E_SCALAR } ent_kind_t;

typedef struct {
    char name[128];
    ent_kind_t kind;
    int rank;
    int64_t dims[ASR_W_MAX_RANK];
    asr_wdtype_t dtype;  /* in the output */
    const asr_wvar_t *v; /* E_TENSOR: the source tensor */
    int64_t rows, cols;  /* E_TENSOR: viewed as rows x cols (per-row int8 scales) */
    int weight;          /* E_SCALE: index of its weight's entry */
    float *scales;       /* E_TENSOR int8: its rows' scales, until its E_SCALE is written */
    int32_t value;       /* E_SCALAR */
} ent_t;

typedef struct {
    const asr_wwrite_src_t *s;
    ent_t *e;
    int n, cap;
    char *err;
    size_t err_len;
    bool missing; /* a required tensor is absent: err says which */
    bool oom;
} plan_t;

static ent_t *push(plan_t *p) {
    if (p->n == p->cap) {
        int cap = p->cap ? 2 * p->cap : 256;
        ent_t *e = realloc(p->e, (size_t)cap * sizeof *e);
        if (!e) {
            p->oom = true;
            return NULL;
        }
        p->e = e;
        p->cap = cap;
    }
    ent_t *e = &p->e[p->n++];
    memset(e, 0, sizeof *e);
    return e;
}

static void add_scalar(plan_t *p, const char *name, asr_wdtype_t dtype, int32_t value) {
    ent_t *e = push(p);
    if (!e)
        return;
    snprintf(e->name, sizeof e->name, "%s", name);
    e->kind = E_SCALAR;
    e->dtype = dtype;
    e->value = value;
}

/* The tensor `name` of shape dims (rank), its rows the first dimension; quant: a weight CTranslate2
 * quantizes (linear, convolution, embedding). optional: left out when the source lacks it (a
 * bias), else the plan fails naming it. */
static void add_tensor(plan_t *p, const char *name, int rank, const int64_t *dims, bool quant,
                       bool optional) {
    const asr_wvar_t *v = asr_wfile_find(p->s->f, name);
    int64_t n = 1;
    for (int i = 0; i < rank; i++)
        n *= dims[i];
    if (!v || v->n_elems != n) {
        if (!v && optional)
            return;
        if (!p->missing)
            asr_errf(p->err, p->err_len, "source model lacks %s%s", name,
                     v ? " in the expected shape" : "");
        p->missing = true;
        return;
    }
    ent_t *e = push(p);
    if (!e)
        return;
    snprintf(e->name, sizeof e->name, "%s", name);
    e->kind = E_TENSOR;
    e->rank = rank;
    memcpy(e->dims, dims, (size_t)rank * sizeof *dims);
    e->v = v;
    e->rows = dims[0];
    e->cols = n / dims[0];
    asr_ww_type_t t = p->s->type;
    e->dtype = t == ASR_WW_FLOAT32           ? ASR_WD_F32
               : (t == ASR_WW_INT8 && quant) ? ASR_WD_I8
                                             : ASR_WD_F16;
    if (e->dtype == ASR_WD_I8) {
        int w = p->n - 1;
        ent_t *s = push(p);
        if (!s)
            return;
        snprintf(s->name, sizeof s->name, "%s_scale", name);
        s->kind = E_SCALE;
        s->rank = 1;
        s->dims[0] = p->e[w].rows;
        s->dtype = ASR_WD_F32;
        s->weight = w;
    }
}

static void add_linear(plan_t *p, const char *prefix, int64_t n_out, int64_t n_in) {
    char name[128];
    int64_t wd[2] = {n_out, n_in};
    snprintf(name, sizeof name, "%s/weight", prefix);
    add_tensor(p, name, 2, wd, true, false);
    snprintf(name, sizeof name, "%s/bias", prefix);
    add_tensor(p, name, 1, &n_out, false, true);
}

static void add_norm(plan_t *p, const char *prefix, int64_t d) {
    char name[128];
    snprintf(name, sizeof name, "%s/gamma", prefix);
    add_tensor(p, name, 1, &d, false, false);
    snprintf(name, sizeof name, "%s/beta", prefix);
    add_tensor(p, name, 1, &d, false, false);
}

/* One transformer layer of `stack` ("encoder"/"decoder"): its norms and linear layers. */
static void add_layer(plan_t *p, const char *stack, int l, int64_t d, bool cross) {
    char pre[96], name[128];
    snprintf(pre, sizeof pre, "%s/layer_%d", stack, l);
    snprintf(name, sizeof name, "%s/self_attention/layer_norm", pre);
    add_norm(p, name, d);
    snprintf(name, sizeof name, "%s/self_attention/linear_0", pre);
    add_linear(p, name, 3 * d, d);
    snprintf(name, sizeof name, "%s/self_attention/linear_1", pre);
    add_linear(p, name, d, d);
    if (cross) {
        snprintf(name, sizeof name, "%s/attention/layer_norm", pre);
        add_norm(p, name, d);
        snprintf(name, sizeof name, "%s/attention/linear_0", pre);
        add_linear(p, name, d, d);
        snprintf(name, sizeof name, "%s/attention/linear_1", pre);
        add_linear(p, name, 2 * d, d);
        snprintf(name, sizeof name, "%s/attention/linear_2", pre);
        add_linear(p, name, d, d);
    }
    snprintf(name, sizeof name, "%s/ffn/layer_norm", pre);
    add_norm(p, name, d);
    snprintf(name, sizeof name, "%s/ffn/linear_0", pre);
    add_linear(p, name, 4 * d, d);
    snprintf(name, sizeof name, "%s/ffn/linear_1", pre);
    add_linear(p, name, d, 4 * d);
}

static int by_name(const void *a, const void *b) {
    return strcmp(((const ent_t *)a)->name, ((const ent_t *)b)->name);
}

/* Every variable WhisperSpec declares for these dimensions, sorted by name. ASR_ERR_MODEL (a
 * tensor missing: the reason set), ASR_ERR_NOMEM. */
static asr_err_t plan_build(plan_t *p) {
    const asr_model_info_t *in = &p->s->info;
    int64_t d = in->d_model;
    int64_t c1[3] = {d, in->n_mels, 3}, c2[3] = {d, d, 3};
    int64_t epos[2] = {in->n_audio_ctx, d}, dpos[2] = {in->n_text_ctx, d};
    int64_t emb[2] = {in->n_vocab, d};
    add_tensor(p, "encoder/conv1/weight", 3, c1, true, false);
    add_tensor(p, "encoder/conv1/bias", 1, &d, false, false);
    add_tensor(p, "encoder/conv2/weight", 3, c2, true, false);
    add_tensor(p, "encoder/conv2/bias", 1, &d, false, false);
    add_tensor(p, "encoder/position_encodings/encodings", 2, epos, false, false);
    add_scalar(p, "encoder/num_heads", ASR_WD_I16, in->n_audio_head);
    for (int l = 0; l < in->n_audio_layer; l++)
        add_layer(p, "encoder", l, d, false);
    add_norm(p, "encoder/layer_norm", d);
    add_tensor(p, "decoder/embeddings/weight", 2, emb, true, false);
    add_tensor(p, "decoder/position_encodings/encodings", 2, dpos, false, false);
    for (int l = 0; l < in->n_text_layer; l++)
        add_layer(p, "decoder", l, d, true);
    add_norm(p, "decoder/layer_norm", d);
    /* TransformerDecoderSpec's constants for Whisper (WHISPER-FACTS §2) */
    add_scalar(p, "decoder/num_heads", ASR_WD_I16, in->n_text_head);
    add_scalar(p, "decoder/pre_norm", ASR_WD_I8, 1);
    add_scalar(p, "decoder/activation", ASR_WD_I8, 3); /* exact (erf) GELU */
    add_scalar(p, "decoder/alignment_layer", ASR_WD_I16, -1);
    add_scalar(p, "decoder/alignment_heads", ASR_WD_I16, 1);
    add_scalar(p, "decoder/scale_embeddings", ASR_WD_I8, 0);
    add_scalar(p, "decoder/alibi", ASR_WD_I8, 0);
    add_scalar(p, "decoder/alibi_use_positive_positions", ASR_WD_I8, 0);
    add_scalar(p, "decoder/scale_alibi", ASR_WD_I8, 0);
    add_scalar(p, "decoder/start_from_zero_embedding", ASR_WD_I8, 0);
    if (p->missing)
        return ASR_ERR_MODEL;
    if (p->oom) {
        asr_errf(p->err, p->err_len, "out of memory");
        return ASR_ERR_NOMEM;
    }
    /* a scale entry refers to its weight by index: sort, then re-link */
    for (int i = 0; i < p->n; i++)
        if (p->e[i].kind == E_SCALE)
            p->e[i].weight = -1;
    qsort(p->e, (size_t)p->n, sizeof *p->e, by_name);
    for (int i = 0; i < p->n; i++) {
        if (p->e[i].kind != E_SCALE)
            continue;
        size_t nl = strlen(p->e[i].name) - strlen("_scale");
        for (int j = 0; j < p->n; j++)
            if (p->e[j].kind == E_TENSOR && strlen(p->e[j].name) == nl &&
                !strncmp(p->e[j].name, p->e[i].name, nl))
                p->e[i].weight = j;
    }
    return ASR_OK;
}

/* ---- model.bin ---- */

typedef struct {
    FILE *fp;
    const char *path;
    char *err;
    size_t err_len;
    bool failed;
} out_t;

static void put(out_t *o, const void *data, size_t n) {
    if (!o->failed && n && fwrite(data, 1, n, o->fp) != n) {
        asr_errf(o->err, o->err_len, "cannot write %s: %s", o->path, strerror(errno));
        o->failed = true;
    }
}
static void put_u32(out_t *o, uint32_t v) {
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    put(o, b, 4);
}
static void put_str(out_t *o, const char *s) {
    size_t n = strlen(s) + 1;
    uint8_t b[2] = {(uint8_t)n, (uint8_t)(n >> 8)};
    put(o, b, 2);
    put(o, s, n);
}

static float row_scale(const float *x, int64_t k) {
    float mx = 0.0f;
    for (int64_t t = 0; t < k; t++)
        mx = fabsf(x[t]) > mx ? fabsf(x[t]) : mx;
    return 127.0f / (mx > 0.0f ? mx : 127.0f); /* a zero row gets scale 1, as the converter's */
}

/* A source int8 tensor with one float32 scale per row (or one for all): kept as it is. */
static const asr_wvar_t *i8_scales(const asr_wwrite_src_t *s, const ent_t *e) {
    if (e->v->dtype != ASR_WD_I8)
        return NULL;
    char sname[160];
    snprintf(sname, sizeof sname, "%s_scale", e->name);
    const asr_wvar_t *sv = asr_wfile_find(s->f, sname);
    return sv && sv->dtype == ASR_WD_F32 && (sv->n_elems == e->rows || sv->n_elems == 1) ? sv
                                                                                         : NULL;
}

/* The payload of tensor e, converted block by block. */
static int write_tensor(out_t *o, const asr_wwrite_src_t *s, ent_t *e, float *fb, void *ob) {
    const asr_wvar_t *v = e->v;
    if (v->dtype == e->dtype && (e->dtype == ASR_WD_F32 || e->dtype == ASR_WD_F16)) {
        put(o, v->data, v->n_bytes);
        return o->failed ? -1 : 0;
    }
    if (e->dtype == ASR_WD_I8) {
        e->scales = malloc((size_t)e->rows * sizeof(float));
        if (!e->scales) {
            asr_errf(o->err, o->err_len, "out of memory writing %s", e->name);
            return -1;
        }
        const asr_wvar_t *sv = i8_scales(s, e);
        if (sv) { /* already int8 with its scales: the same bytes */
            for (int64_t r = 0; r < e->rows; r++)
                memcpy(&e->scales[r], sv->data + 4 * (sv->n_elems == 1 ? 0 : r), 4);
            put(o, v->data, v->n_bytes);
            return o->failed ? -1 : 0;
        }
    }
    int64_t rows_per = BLOCK_ELEMS / e->cols > 0 ? BLOCK_ELEMS / e->cols : 1;
    for (int64_t r = 0; r < e->rows && !o->failed; r += rows_per) {
        int64_t nr = e->rows - r < rows_per ? e->rows - r : rows_per;
        int64_t n = nr * e->cols;
        if (asr_wfile_decode_f32(s->f, v, e->name, e->cols, r * e->cols, r * e->cols + n, fb,
                                 o->err, o->err_len))
            return -1;
        if (e->dtype == ASR_WD_F32) {
            put(o, fb, (size_t)n * 4);
        } else if (e->dtype == ASR_WD_F16) {
            asr_nn_f2h_n(fb, ob, (size_t)n);
            put(o, ob, (size_t)n * 2);
        } else {
            int8_t *q = ob;
            for (int64_t i = 0; i < nr; i++) {
                const float *x = fb + i * e->cols;
                float sc = row_scale(x, e->cols);
                e->scales[r + i] = sc;
                for (int64_t t = 0; t < e->cols; t++) {
                    float y = rintf(x[t] * sc);
                    q[i * e->cols + t] = (int8_t)(y > 127.0f ? 127 : y < -127.0f ? -127 : y);
                }
            }
            put(o, q, (size_t)n);
        }
    }
    return o->failed ? -1 : 0;
}

static int write_entry(out_t *o, const asr_wwrite_src_t *s, ent_t *all, ent_t *e, float *fb,
                       void *ob) {
    put_str(o, e->name);
    uint8_t rank = (uint8_t)e->rank;
    put(o, &rank, 1);
    for (int i = 0; i < e->rank; i++)
        put_u32(o, (uint32_t)e->dims[i]);
    uint8_t dt = (uint8_t)e->dtype;
    put(o, &dt, 1);
    int64_t n = 1;
    for (int i = 0; i < e->rank; i++)
        n *= e->dims[i];
    size_t bytes = (size_t)n * asr_wdtype_size(e->dtype);
    if (bytes > UINT32_MAX) { /* the format's u32 byte count */
        asr_errf(o->err, o->err_len, "%s: %zu bytes, more than model.bin can hold", e->name, bytes);
        return -1;
    }
    put_u32(o, (uint32_t)bytes);
    switch (e->kind) {
    case E_SCALAR: {
        uint8_t b[4] = {(uint8_t)e->value, (uint8_t)(e->value >> 8), (uint8_t)(e->value >> 16),
                        (uint8_t)(e->value >> 24)};
        put(o, b, asr_wdtype_size(e->dtype));
        break;
    }
    case E_SCALE: {
        ent_t *w = e->weight >= 0 ? &all[e->weight] : NULL;
        if (!w || !w->scales) { /* sorted after its weight: written with it */
            asr_errf(o->err, o->err_len, "internal error: %s before its weight", e->name);
            return -1;
        }
        put(o, w->scales, (size_t)w->rows * 4);
        free(w->scales);
        w->scales = NULL;
        break;
    }
    case E_TENSOR:
        return write_tensor(o, s, e, fb, ob);
    }
    return o->failed ? -1 : 0;
}

/* Closes o's file after flushing it to the disk; -1 with the reason set. */
static int close_synced(out_t *o) {
    int rc = o->failed ? -1 : 0;
    if (!rc && (fflush(o->fp) != 0 || fsync(fileno(o->fp)) != 0)) {
        asr_errf(o->err, o->err_len, "cannot write %s: %s", o->path, strerror(errno));
        rc = -1;
    }
    if (fclose(o->fp) != 0 && !rc) {
        asr_errf(o->err, o->err_len, "cannot write %s: %s", o->path, strerror(errno));
        rc = -1;
    }
    o->fp = NULL;
    return rc;
}

static int write_model_bin(const asr_wwrite_src_t *s, plan_t *p, const char *path, char *err,
                           size_t err_len) {
    out_t o = {fopen(path, "wb"), path, err, err_len, false};
    if (!o.fp) {
        asr_errf(err, err_len, "cannot create %s: %s", path, strerror(errno));
        return -1;
    }
    int64_t cap = BLOCK_ELEMS; /* a block is whole rows: at least one */
    for (int i = 0; i < p->n; i++)
        cap = p->e[i].cols > cap ? p->e[i].cols : cap;
    float *fb = malloc((size_t)cap * sizeof(float));
    void *ob = malloc((size_t)cap * sizeof(uint16_t));
    int rc = -1;
    if (!fb || !ob) {
        asr_errf(err, err_len, "out of memory writing %s", path);
        goto done;
    }
    put_u32(&o, CT2_VERSION);
    put_str(&o, CT2_SPEC);
    put_u32(&o, CT2_SPEC_REVISION);
    put_u32(&o, (uint32_t)p->n);
    for (int i = 0; i < p->n; i++)
        if (write_entry(&o, s, p->e, &p->e[i], fb, ob))
            goto done;
    put_u32(&o, 1); /* the tied output projection */
    put_str(&o, "decoder/projection/weight");
    put_str(&o, "decoder/embeddings/weight");
    rc = 0;
done:
    free(fb);
    free(ob);
    o.failed |= rc != 0;
    if (close_synced(&o))
        rc = -1;
    return rc;
}

/* ---- side files ---- */

/* config.json as WhisperLoader.set_config fills it: suppress_ids is the set faster-whisper's
 * suppress_tokens=[-1] means (the tokenizer's non-speech tokens and the task/special tokens),
 * suppress_ids_begin the blank and <|endoftext|>. */
static asr_err_t write_config(const asr_wwrite_src_t *s, const char *dir, char *err,
                              size_t err_len) {
    const asr_special_tokens_t *sp = asr_tokenizer_special(s->tok);
    json_t *doc = json_object();
    json_t *heads = json_array();
    for (int i = 0; i < s->n_alignment_heads; i++)
        json_array_append_new(heads, asr__wwrite_int_array(s->alignment_heads[i], 2));
    json_object_set_new(doc, "alignment_heads", heads);
    int32_t langs[ASR_TOKENIZER_MAX_LANGUAGES];
    int n_lang = sp->n_languages < ASR_TOKENIZER_MAX_LANGUAGES ? sp->n_languages
                                                               : ASR_TOKENIZER_MAX_LANGUAGES;
    for (int i = 0; i < n_lang; i++)
        langs[i] = sp->lang_begin + i;
    json_object_set_new(doc, "lang_ids", asr__wwrite_int_array(langs, n_lang));
    int n_sup = asr_tokenizer_suppress_tokens(s->tok, NULL, 0);
    int32_t *sup = malloc((size_t)(n_sup > 0 ? n_sup : 1) * sizeof *sup);
    if (!sup) {
        json_decref(doc);
        asr_errf(err, err_len, "out of memory writing config.json");
        return ASR_ERR_NOMEM;
    }
    n_sup = asr_tokenizer_suppress_tokens(s->tok, sup, n_sup);
    json_object_set_new(doc, "suppress_ids", asr__wwrite_int_array(sup, n_sup));
    free(sup);
    int32_t begin[2] = {220, sp->eot};
    json_object_set_new(doc, "suppress_ids_begin", asr__wwrite_int_array(begin, 2));
    return asr__wwrite_json(dir, "config.json", doc, err, err_len);
}

asr_err_t asr_ct2_write(const asr_wwrite_src_t *s, const char *dir, char *errbuf,
                        size_t errbuf_len) {
    if (!s || !s->f || !s->tok || !dir) {
        asr_errf(errbuf, errbuf_len, "ct2 writer: no source");
        return ASR_ERR_INVALID;
    }
    plan_t p = {.s = s, .err = errbuf, .err_len = errbuf_len};
    char path[4200];
    snprintf(path, sizeof path, "%s/model.bin", dir);
    asr_err_t prc = plan_build(&p);
    if (prc != ASR_OK) {
        free(p.e);
        return prc;
    }
    asr_err_t rc = write_model_bin(s, &p, path, errbuf, errbuf_len) ? ASR_ERR_IO : ASR_OK;
    if (rc == ASR_OK)
        rc = write_config(s, dir, errbuf, errbuf_len);
    if (rc == ASR_OK)
        rc = asr__wwrite_preprocessor(s, dir, errbuf, errbuf_len);
    if (rc == ASR_OK)
        rc = asr__wwrite_tokenizer_file(s, dir, "vocabulary.json",
                                        asr_tokenizer_write_vocabulary_json, errbuf, errbuf_len);
    if (rc == ASR_OK)
        rc = asr__wwrite_tokenizer_file(s, dir, "tokenizer.json",
                                        asr_tokenizer_write_tokenizer_json, errbuf, errbuf_len);
    if (rc == ASR_OK)
        asr__wwrite_sync_dir(dir);
    for (int i = 0; i < p.n; i++)
        free(p.e[i].scales);
    free(p.e);
    return rc;
}
