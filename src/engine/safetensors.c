/* engine: safetensors front (safetensors.h). The parser validates the whole header before a
 * tensor enters the table: a header length inside the file and at most 100 MiB (the limit of the
 * reference library), a JSON object without duplicate names, known dtypes, shapes of rank <= 4
 * whose size matches data_offsets, offsets inside the data and not overlapping. The Whisper
 * table is then built from the HF names (asr__safetensors_pieces): single tensors borrowed from
 * the map, q/k/v fused into owned memory in their own dtype, then the file pages they came from
 * dropped (the fused copy is what is read from then on). */
#include <jansson.h>
#include <stdarg.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/core.h"
#include "engine/safetensors.h"

#define ST_MAX_HEADER ((uint64_t)100 << 20)
#define ST_MAX_NAME 400 /* HF names are < 100 bytes; wfile's lookups build names in 512 */

const asr_st_piece_t asr__safetensors_pieces[] = {
    {"conv1", "conv1", ASR_ST_LINEAR, false, 'e', 0, 0, false},
    {"conv2", "conv2", ASR_ST_LINEAR, false, 'e', 0, 0, false},
    {"embed_tokens.weight", "embeddings/weight", ASR_ST_TENSOR, false, 'd', 0, 0, false},
    {"embed_positions.weight", "position_encodings/encodings", ASR_ST_TENSOR, false, 'b', 0, 0,
     false},
    {"layer_norm", "layer_norm", ASR_ST_NORM, false, 'b', 0, 0, false},
    {"self_attn_layer_norm", "self_attention/layer_norm", ASR_ST_NORM, true, 'b', 0, 0, false},
    {"self_attn.q_proj", "self_attention/linear_0", ASR_ST_LINEAR, true, 'b', 0, 3, false},
    {"self_attn.k_proj", "self_attention/linear_0", ASR_ST_LINEAR, true, 'b', 1, 3, true},
    {"self_attn.v_proj", "self_attention/linear_0", ASR_ST_LINEAR, true, 'b', 2, 3, false},
    {"self_attn.out_proj", "self_attention/linear_1", ASR_ST_LINEAR, true, 'b', 0, 0, false},
    {"encoder_attn_layer_norm", "attention/layer_norm", ASR_ST_NORM, true, 'd', 0, 0, false},
    {"encoder_attn.q_proj", "attention/linear_0", ASR_ST_LINEAR, true, 'd', 0, 0, false},
    {"encoder_attn.k_proj", "attention/linear_1", ASR_ST_LINEAR, true, 'd', 0, 2, true},
    {"encoder_attn.v_proj", "attention/linear_1", ASR_ST_LINEAR, true, 'd', 1, 2, false},
    {"encoder_attn.out_proj", "attention/linear_2", ASR_ST_LINEAR, true, 'd', 0, 0, false},
    {"final_layer_norm", "ffn/layer_norm", ASR_ST_NORM, true, 'b', 0, 0, false},
    {"fc1", "ffn/linear_0", ASR_ST_LINEAR, true, 'b', 0, 0, false},
    {"fc2", "ffn/linear_1", ASR_ST_LINEAR, true, 'b', 0, 0, false},
};
const int asr__safetensors_n_pieces =
    (int)(sizeof asr__safetensors_pieces / sizeof *asr__safetensors_pieces);

int asr__safetensors_each_piece(int stack, int layer, const char *hf_pre, asr_st_piece_fn fn,
                                void *ctx) {
    static const char *const stacks[2] = {"encoder", "decoder"};
    char hfp[96], ctp[64];
    if (layer < 0) {
        snprintf(hfp, sizeof hfp, "%s%s.", hf_pre, stacks[stack]);
        snprintf(ctp, sizeof ctp, "%s/", stacks[stack]);
    } else {
        snprintf(hfp, sizeof hfp, "%s%s.layers.%d.", hf_pre, stacks[stack], layer);
        snprintf(ctp, sizeof ctp, "%s/layer_%d/", stacks[stack], layer);
    }
    for (int i = 0; i < asr__safetensors_n_pieces; i++) {
        const asr_st_piece_t *p = &asr__safetensors_pieces[i];
        if (p->layer != (layer >= 0) || (p->stacks != 'b' && p->stacks != stacks[stack][0]))
            continue;
        int rc = fn(ctx, p, hfp, ctp);
        if (rc)
            return rc;
    }
    return 0;
}

/* Every dtype the format defines, with its bits per element; wd < 0: not a weight type. */
static const struct {
    const char *name;
    int bits, wd;
} DTYPES[] = {
    {"F32", 32, ASR_WD_F32}, {"F16", 16, ASR_WD_F16}, {"BF16", 16, ASR_WD_BF16},
    {"F64", 64, -1},         {"I64", 64, -1},         {"U64", 64, -1},
    {"I32", 32, -1},         {"U32", 32, -1},         {"I16", 16, -1},
    {"U16", 16, -1},         {"I8", 8, -1},           {"U8", 8, -1},
    {"BOOL", 8, -1},         {"F8_E4M3", 8, -1},      {"F8_E5M2", 8, -1},
    {"F8_E8M0", 8, -1},      {"F6_E2M3", 6, -1},      {"F6_E3M2", 6, -1},
    {"F4", 4, -1},
};

/* Tensors left out of the table for their dtype: a Whisper tensor among them gets a clear
 * reason instead of "missing". Names and dtypes point into the JSON header (kept alive). */
typedef struct {
    json_t **headers; /* the parsed headers, decref'd by skips_free */
    int n_headers;
    const char **names, **dtypes;
    int n;
} skips_t;

static void skips_free(skips_t *s) {
    for (int i = 0; i < s->n_headers; i++)
        json_decref(s->headers[i]);
    free(s->headers);
    free(s->names);
    free(s->dtypes);
    memset(s, 0, sizeof *s);
}

typedef struct {
    const char *name;
    uint64_t begin, end;
} range_t;

static int range_cmp(const void *a, const void *b) {
    const range_t *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : 0;
}

/* A non-negative JSON integer, or -1. */
static long long json_count(const json_t *v) {
    return json_is_integer(v) && json_integer_value(v) >= 0 ? json_integer_value(v) : -1;
}

/* Checks one header entry and appends it to the table (or to the skips); the data region is
 * data[0, dlen). */
static asr_err_t parse_entry(const char *name, const json_t *e, const uint8_t *data, size_t dlen,
                             asr_wfile_t *f, skips_t *sk, range_t *r, char *err, size_t el) {
    if (strlen(name) > ST_MAX_NAME || !*name) {
        asr_errf(err, el, "safetensors header: tensor name of %zu bytes", strlen(name));
        return ASR_ERR_MODEL;
    }
    const json_t *dt = json_object_get(e, "dtype"), *shape = json_object_get(e, "shape");
    const json_t *off = json_object_get(e, "data_offsets");
    if (!json_is_object(e) || !json_is_string(dt) || !json_is_array(shape) || !json_is_array(off) ||
        json_array_size(off) != 2) {
        asr_errf(err, el, "safetensors header: tensor %s lacks dtype, shape or data_offsets", name);
        return ASR_ERR_MODEL;
    }
    int t = -1;
    for (int i = 0; i < (int)(sizeof DTYPES / sizeof *DTYPES); i++)
        if (!strcmp(json_string_value(dt), DTYPES[i].name))
            t = i;
    if (t < 0) {
        asr_errf(err, el, "safetensors header: tensor %s has unknown dtype \"%.20s\"", name,
                 json_string_value(dt));
        return ASR_ERR_MODEL;
    }
    size_t rank = json_array_size(shape);
    if (rank > ASR_W_MAX_RANK) {
        asr_errf(err, el, "safetensors header: tensor %s has rank %zu (at most %d)", name, rank,
                 ASR_W_MAX_RANK);
        return ASR_ERR_MODEL;
    }
    int64_t dims[ASR_W_MAX_RANK] = {0};
    uint64_t n = 1;
    for (size_t i = 0; i < rank; i++) {
        long long d = json_count(json_array_get(shape, i));
        if (d < 0 || (d > 0 && n > ((uint64_t)1 << 40) / (uint64_t)d)) {
            asr_errf(err, el, "safetensors header: tensor %s has a bad or too large shape", name);
            return ASR_ERR_MODEL;
        }
        dims[i] = d;
        n *= (uint64_t)d;
    }
    long long b = json_count(json_array_get(off, 0)), en = json_count(json_array_get(off, 1));
    uint64_t bits = n * (uint64_t)DTYPES[t].bits;
    if (b < 0 || en < b) {
        asr_errf(err, el, "safetensors header: tensor %s has bad data_offsets", name);
        return ASR_ERR_MODEL;
    }
    if ((uint64_t)en > dlen) {
        asr_errf(err, el,
                 "tensor %s ends at byte %lld of the data, which has %zu (truncated file?)", name,
                 en, dlen);
        return ASR_ERR_MODEL;
    }
    if (bits % 8 || (uint64_t)(en - b) != bits / 8) {
        asr_errf(err, el, "safetensors header: tensor %s has %lld bytes, its %s shape needs %llu",
                 name, en - b, DTYPES[t].name, (unsigned long long)(bits / 8));
        return ASR_ERR_MODEL;
    }
    *r = (range_t){name, (uint64_t)b, (uint64_t)en};
    if (DTYPES[t].wd < 0) {
        if (sk) {
            const char **nn = realloc(sk->names, (size_t)(sk->n + 1) * sizeof *nn);
            const char **dd = nn ? realloc(sk->dtypes, (size_t)(sk->n + 1) * sizeof *dd) : NULL;
            if (nn)
                sk->names = nn;
            if (!dd)
                return ASR_ERR_NOMEM;
            sk->dtypes = dd;
            sk->names[sk->n] = name;
            sk->dtypes[sk->n++] = DTYPES[t].name;
        }
        return ASR_OK;
    }
    if (!asr_wfile_add(f, name, (asr_wdtype_t)DTYPES[t].wd, (int)rank, dims, data + b))
        return ASR_ERR_NOMEM;
    return ASR_OK;
}

/* The parser proper; `sk` (may be NULL) receives the skipped tensors and the header (it holds
 * their names). */
static asr_err_t parse_header(const uint8_t *data, size_t len, asr_wfile_t *f, skips_t *sk,
                              char *err, size_t el) {
    if (len < 8) {
        asr_errf(err, el, "safetensors file is truncated (%zu bytes; the header length needs 8)",
                 len);
        return ASR_ERR_MODEL;
    }
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--)
        hl = hl << 8 | data[i];
    if (hl < 2 || hl > ST_MAX_HEADER) {
        asr_errf(err, el, "safetensors header length %llu is implausible", (unsigned long long)hl);
        return ASR_ERR_MODEL;
    }
    if (hl > len - 8) {
        asr_errf(err, el, "safetensors file is truncated: header of %llu bytes, %zu follow",
                 (unsigned long long)hl, len - 8);
        return ASR_ERR_MODEL;
    }
    if (sk) {
        json_t **hs = realloc(sk->headers, (size_t)(sk->n_headers + 1) * sizeof *hs);
        if (!hs)
            return ASR_ERR_NOMEM;
        sk->headers = hs;
    }
    json_error_t je;
    json_t *root = json_loadb((const char *)data + 8, (size_t)hl, JSON_REJECT_DUPLICATES, &je);
    if (!json_is_object(root)) {
        if (root)
            asr_errf(err, el, "safetensors header is not a JSON object");
        else
            asr_errf(err, el, "safetensors header is not valid JSON (byte %d: %s)", je.position,
                     je.text);
        json_decref(root);
        return ASR_ERR_MODEL;
    }
    const uint8_t *base = data + 8 + hl;
    size_t dlen = len - 8 - (size_t)hl;
    range_t *rs = asr_calloc(json_object_size(root) + 1, sizeof *rs);
    asr_err_t rc = rs ? ASR_OK : ASR_ERR_NOMEM;
    size_t nr = 0;
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (rc != ASR_OK)
            break;
        if (strcmp(key, "__metadata__") != 0) {
            rc = parse_entry(key, val, base, dlen, f, sk, &rs[nr++], err, el);
            continue;
        }
        const char *mk;
        json_t *mv;
        if (!json_is_object(val))
            rc = ASR_ERR_MODEL;
        json_object_foreach(val, mk, mv) {
            if (!json_is_string(mv))
                rc = ASR_ERR_MODEL;
        }
        if (rc != ASR_OK)
            asr_errf(err, el, "safetensors header: __metadata__ is not an object of strings");
    }
    if (rc == ASR_OK) {
        qsort(rs, nr, sizeof *rs, range_cmp);
        const range_t *prev = NULL;
        for (size_t i = 0; i < nr && rc == ASR_OK; i++) {
            if (rs[i].begin == rs[i].end)
                continue;
            if (prev && rs[i].begin < prev->end) {
                asr_errf(err, el, "safetensors header: tensors %s and %s overlap", prev->name,
                         rs[i].name);
                rc = ASR_ERR_MODEL;
            }
            prev = &rs[i];
        }
    }
    free(rs);
    if (sk) /* the skipped names point into the header: it lives as long as the list */
        sk->headers[sk->n_headers++] = root;
    else
        json_decref(root);
    return rc;
}

static asr_err_t parse_image(const uint8_t *data, size_t len, asr_wfile_t *f, skips_t *sk,
                             char *err, size_t el) {
    asr_err_t rc = parse_header(data, len, f, sk, err, el);
    if (rc == ASR_ERR_NOMEM)
        asr_errf(err, el, "out of memory reading a safetensors header of %zu bytes", len);
    return rc;
}

asr_err_t asr_safetensors_parse(const uint8_t *data, size_t len, asr_wfile_t *f, char *errbuf,
                                size_t errbuf_len) {
    if (f->format == ASR_WFMT_UNKNOWN)
        f->format = ASR_WFMT_SAFETENSORS;
    return parse_image(data, len, f, NULL, errbuf, errbuf_len);
}

/* ---- the Whisper table ---- */

typedef struct {
    asr_wfile_t *f;   /* the table being built; it holds the maps */
    asr_wfile_t raw;  /* the files' tensors under HF names (data in f's maps) */
    skips_t sk;       /* tensors of non-weight dtypes */
    json_t *seen;     /* every tensor name of every shard: a name in two shards is an error */
    const char *pre;  /* "model." (WhisperForConditionalGeneration) or "" (WhisperModel) */
    const char *file; /* the path opened, for messages */
    bool drop;        /* the data is a file's map: pages copied from may be dropped */
    asr_err_t rc;     /* the first failure */
    char *err;
    size_t el;
} build_t;

static int fail(build_t *b, asr_err_t rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(build_t *b, asr_err_t rc, const char *fmt, ...) {
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (b->rc == ASR_OK)
        asr_errf(b->err, b->el, "%s: %s", b->file, msg);
    b->rc = b->rc != ASR_OK ? b->rc : rc;
    return -1;
}

/* The HF tensor b->pre + printf(fmt); NULL when absent (a failure when `required`) or when it was
 * left out for its dtype (always a failure: a Whisper tensor must be a float). */
static const asr_wvar_t *hf_find(build_t *b, bool required, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static const asr_wvar_t *hf_find(build_t *b, bool required, const char *fmt, ...) {
    char rel[300], name[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rel, sizeof rel, fmt, ap);
    va_end(ap);
    snprintf(name, sizeof name, "%s%s", b->pre, rel);
    const asr_wvar_t *v = asr_wfile_find(&b->raw, name);
    if (v)
        return v;
    for (int i = 0; i < b->sk.n; i++)
        if (!strcmp(b->sk.names[i], name)) {
            fail(b, ASR_ERR_MODEL,
                 "tensor %s has dtype %s; only F32, F16 and BF16 weights are read", name,
                 b->sk.dtypes[i]);
            return NULL;
        }
    if (required)
        fail(b, ASR_ERR_MODEL, "missing tensor %s (not a Whisper checkpoint?)", name);
    return NULL;
}

/* Adds v under the CT2 name prefix+suffix, in place (copied when the file misaligns it). */
static int put(build_t *b, const char *prefix, const char *suffix, const asr_wvar_t *v) {
    char name[320];
    snprintf(name, sizeof name, "%s%s", prefix, suffix);
    const void *data = v->data;
    if ((uintptr_t)data % asr_wdtype_size(v->dtype)) {
        void *p = asr_wfile_own(b->f, v->n_bytes);
        if (!p)
            return fail(b, ASR_ERR_NOMEM, "out of memory for %s", v->name);
        memcpy(p, data, v->n_bytes);
        data = p;
    }
    if (!asr_wfile_add(b->f, name, v->dtype, v->rank, v->dims, data))
        return fail(b, ASR_ERR_NOMEM, "out of memory for %s", v->name);
    return 0;
}

/* Writes v's elements at dst in dtype t (v's own, or float32 when the parts' dtypes differ). */
static int copy_as(build_t *b, const asr_wvar_t *v, asr_wdtype_t t, uint8_t *dst) {
    if (v->dtype == t) {
        memcpy(dst, v->data, v->n_bytes);
        return 0;
    }
    char why[256];
    if (asr_wfile_decode_f32(&b->raw, v, v->name, v->n_elems, 0, v->n_elems, (float *)dst, why,
                             sizeof why))
        return fail(b, ASR_ERR_MODEL, "%s", why);
    return 0;
}

/* The dtype n tensors share, float32 when they differ; `dflt` when there are none. */
static asr_wdtype_t common_dtype(const asr_wvar_t *const *v, int n, asr_wdtype_t dflt) {
    int first = -1;
    for (int i = 0; i < n; i++) {
        if (!v[i])
            continue;
        if (first < 0)
            first = i;
        else if (v[i]->dtype != v[first]->dtype)
            return ASR_WD_F32;
    }
    return first < 0 ? dflt : v[first]->dtype;
}

/* Fuses the n pieces p[0..n) (consecutive row blocks of one CT2 matrix: q|k|v or k|v) into
 * owned memory; k_proj's bias, which HF does not have, is zeros unless the file has one. */
static int fuse(build_t *b, const asr_st_piece_t *p, int n, const char *hfp, const char *ctp) {
    const asr_wvar_t *w[3], *bs[3];
    int64_t rows = 0, cols = 0;
    for (int i = 0; i < n; i++) {
        w[i] = hf_find(b, true, "%s%s.weight", hfp, p[i].hf);
        bs[i] = w[i] ? hf_find(b, !p[i].no_bias, "%s%s.bias", hfp, p[i].hf) : NULL;
        if (b->rc != ASR_OK)
            return -1;
        if (w[i]->rank != 2 || (i > 0 && w[i]->dims[1] != cols) ||
            (bs[i] && bs[i]->n_elems != w[i]->dims[0]))
            return fail(b, ASR_ERR_MODEL, "%s%s%s: shapes do not fuse with the other parts", b->pre,
                        hfp, p[i].hf);
        cols = w[i]->dims[1];
        rows += w[i]->dims[0];
    }
    asr_wdtype_t wt = common_dtype(w, n, ASR_WD_F32), bt = common_dtype(bs, n, wt);
    size_t ws = asr_wdtype_size(wt), bsz = asr_wdtype_size(bt);
    uint8_t *wd = asr_wfile_own(b->f, (size_t)(rows * cols) * ws);
    uint8_t *bd = wd ? asr_wfile_own(b->f, (size_t)rows * bsz) : NULL;
    if (!bd)
        return fail(b, ASR_ERR_NOMEM, "out of memory fusing %s%s%s", b->pre, hfp, p[0].hf);
    int64_t r = 0;
    for (int i = 0; i < n; i++) {
        if (copy_as(b, w[i], wt, wd + (size_t)(r * cols) * ws) ||
            (bs[i] && copy_as(b, bs[i], bt, bd + (size_t)r * bsz)))
            return -1;
        r += w[i]->dims[0];
        if (b->drop)
            asr_wfile_drop_pages(w[i]->data, w[i]->n_bytes);
    }
    char name[320];
    int64_t dims[2] = {rows, cols};
    snprintf(name, sizeof name, "%s%s/weight", ctp, p[0].ct2);
    if (!asr_wfile_add(b->f, name, wt, 2, dims, wd))
        return fail(b, ASR_ERR_NOMEM, "out of memory for %s", name);
    snprintf(name, sizeof name, "%s%s/bias", ctp, p[0].ct2);
    if (!asr_wfile_add(b->f, name, bt, 1, dims, bd))
        return fail(b, ASR_ERR_NOMEM, "out of memory for %s", name);
    return 0;
}

/* One unfused piece: a tensor, a layer norm or a linear layer. */
static int put_piece(build_t *b, const asr_st_piece_t *p, const char *hfp, const char *ctp) {
    char ct[200];
    snprintf(ct, sizeof ct, "%s%s", ctp, p->ct2);
    const char *w = p->kind == ASR_ST_TENSOR ? "" : ".weight";
    const asr_wvar_t *v = hf_find(b, false, "%s%s%s", hfp, p->hf, w);
    /* a checkpoint may keep the tied pair under the output projection's name instead */
    if (!v && b->rc == ASR_OK && !strcmp(p->hf, "embed_tokens.weight"))
        v = asr_wfile_find(&b->raw, "proj_out.weight");
    if (!v && b->rc == ASR_OK)
        hf_find(b, true, "%s%s%s", hfp, p->hf, w); /* the reason */
    if (!v || put(b, ct,
                  p->kind == ASR_ST_TENSOR ? ""
                  : p->kind == ASR_ST_NORM ? "/gamma"
                                           : "/weight",
                  v))
        return -1;
    if (p->kind == ASR_ST_TENSOR)
        return 0;
    v = hf_find(b, true, "%s%s.bias", hfp, p->hf);
    return v ? put(b, ct, p->kind == ASR_ST_NORM ? "/beta" : "/bias", v) : -1;
}

/* One piece into the table; the later parts of a fused matrix were taken with its first. */
static int put_one(void *ctx, const asr_st_piece_t *p, const char *hfp, const char *ctp) {
    build_t *b = ctx;
    if (p->n_parts)
        return p->part == 0 ? fuse(b, p, p->n_parts, hfp, ctp) : 0;
    return put_piece(b, p, hfp, ctp);
}

/* proj_out.weight, when saved, must be the token embedding (Whisper ties them). */
static int check_tied(build_t *b) {
    const asr_wvar_t *po = asr_wfile_find(&b->raw, "proj_out.weight");
    const asr_wvar_t *emb = hf_find(b, false, "decoder.embed_tokens.weight");
    if (!po || !emb) /* no proj_out, or it served as the embedding */
        return b->rc == ASR_OK ? 0 : -1;
    if (po->n_elems != emb->n_elems || po->dims[0] != emb->dims[0] ||
        (po->dtype == emb->dtype && memcmp(po->data, emb->data, po->n_bytes) != 0))
        return fail(b, ASR_ERR_MODEL,
                    "proj_out.weight differs from the token embedding (an untied output "
                    "projection is not supported)");
    if (b->drop)
        asr_wfile_drop_pages(po->data, po->n_bytes);
    return 0;
}

static int build(build_t *b, int enc_heads, int dec_heads) {
    bool bare = !asr_wfile_find(&b->raw, "model.encoder.conv1.weight") &&
                asr_wfile_find(&b->raw, "encoder.conv1.weight");
    b->pre = bare ? "" : "model.";
    for (int s = 0; s < 2; s++) {
        const char *stack = s ? "decoder" : "encoder";
        if (asr__safetensors_each_piece(s, -1, "", put_one, b))
            return -1;
        int l = 0;
        for (; hf_find(b, false, "%s.layers.%d.fc1.weight", stack, l); l++)
            if (asr__safetensors_each_piece(s, l, "", put_one, b))
                return -1;
        if (b->rc != ASR_OK)
            return -1;
        if (l == 0)
            return fail(b, ASR_ERR_MODEL, "no %s layers (%s%s.layers.0.fc1.weight)", stack, b->pre,
                        stack);
    }
    if (!asr_wfile_add_i32(b->f, "encoder/num_heads", enc_heads) ||
        !asr_wfile_add_i32(b->f, "decoder/num_heads", dec_heads))
        return fail(b, ASR_ERR_NOMEM, "out of memory");
    return check_tied(b);
}

/* Maps one safetensors file into b->f and parses it into b->raw. */
static int load_shard(build_t *b, const char *path) {
    const uint8_t *data;
    size_t len;
    char why[512];
    asr_err_t rc = asr_wfile_map(b->f, path, &data, &len, why, sizeof why);
    if (rc != ASR_OK) { /* the reason names the path */
        asr_errf(b->err, b->el, "%s", why);
        b->rc = rc;
        return -1;
    }
    int n0 = b->raw.n_vars, s0 = b->sk.n;
    rc = parse_image(data, len, &b->raw, &b->sk, why, sizeof why);
    if (rc != ASR_OK) {
        asr_errf(b->err, b->el, "%s: %s", path, why);
        b->rc = rc;
        return -1;
    }
    /* a name in two shards: the index would be ambiguous */
    for (int i = n0; i < b->raw.n_vars + (b->sk.n - s0); i++) {
        const char *nm =
            i < b->raw.n_vars ? b->raw.vars[i].name : b->sk.names[s0 + i - b->raw.n_vars];
        if (json_object_get(b->seen, nm))
            return fail(b, ASR_ERR_MODEL, "tensor %s is in two shards", nm);
        if (json_object_set_new(b->seen, nm, json_true()))
            return fail(b, ASR_ERR_NOMEM, "out of memory");
    }
    return 0;
}

/* model.safetensors.index.json: {"weight_map": {tensor: shard file in the same directory}}. */
static int load_index(build_t *b, const char *path, const char *dir) {
    char *text = NULL;
    size_t n = 0;
    if (asr_read_file(path, &text, &n) != ASR_OK)
        return fail(b, ASR_ERR_MODEL, "cannot read the index");
    json_error_t je;
    json_t *root = json_loadb(text, n, JSON_REJECT_DUPLICATES, &je);
    free(text);
    json_t *wm = json_object_get(root, "weight_map");
    json_t *shards = json_object();
    const char *key;
    json_t *val;
    int rc = 0;
    if (!root)
        rc = fail(b, ASR_ERR_MODEL, "not valid JSON (line %d: %s)", je.line, je.text);
    else if (!json_is_object(wm) || json_object_size(wm) == 0)
        rc = fail(b, ASR_ERR_MODEL, "no weight_map object");
    json_object_foreach(wm, key, val) {
        const char *sh = json_string_value(val);
        if (rc)
            break;
        if (!sh || !*sh || sh[0] == '.' || strchr(sh, '/') || strlen(sh) > 255)
            rc = fail(b, ASR_ERR_MODEL, "weight_map names a bad shard for %s", key);
        else if (!json_object_get(shards, sh) && json_object_size(shards) >= ASR_WFILE_MAX_MAPS)
            rc = fail(b, ASR_ERR_MODEL, "more than %d shards", ASR_WFILE_MAX_MAPS);
        else if (json_object_set_new(shards, sh, json_true()))
            rc = fail(b, ASR_ERR_NOMEM, "out of memory");
    }
    json_object_foreach(shards, key, val) {
        char sp[4400];
        snprintf(sp, sizeof sp, "%s/%s", dir, key);
        if (rc || (rc = load_shard(b, sp)))
            break;
    }
    json_object_foreach(wm, key, val) {
        if (rc)
            break;
        if (!json_object_get(b->seen, key))
            rc = fail(b, ASR_ERR_MODEL, "tensor %s of weight_map is in no shard", key);
    }
    json_decref(shards);
    json_decref(root);
    return rc;
}

/* The attention heads of each stack, from config.json (the tensors do not say). */
static int read_heads(build_t *b, const char *dir, int *enc, int *dec) {
    char path[4200];
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (!root)
        return fail(b, ASR_ERR_MODEL, "needs config.json beside it (%s)", je.text);
    long long e = json_count(json_object_get(root, "encoder_attention_heads"));
    long long d = json_count(json_object_get(root, "decoder_attention_heads"));
    json_decref(root);
    if (e <= 0 || d <= 0 || e > 4096 || d > 4096)
        return fail(b, ASR_ERR_MODEL, "%s lacks encoder_attention_heads or decoder_attention_heads",
                    path);
    *enc = (int)e;
    *dec = (int)d;
    return 0;
}

asr_err_t asr_safetensors_open(const char *path, asr_wfile_t *f, char *errbuf, size_t errbuf_len) {
    f->format = ASR_WFMT_SAFETENSORS;
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (slash)
        snprintf(dir, sizeof dir, "%.*s", (int)(slash > path ? slash - path : 1), path);
    else
        snprintf(dir, sizeof dir, ".");
    build_t b = {
        .f = f, .file = path, .drop = true, .err = errbuf, .el = errbuf_len, .seen = json_object()};
    if (!b.seen)
        return ASR_ERR_NOMEM;
    size_t pl = strlen(path);
    int enc = 0, dec = 0;
    if (!(pl > 11 && !strcmp(path + pl - 11, ".index.json") ? load_index(&b, path, dir)
                                                            : load_shard(&b, path)) &&
        !read_heads(&b, dir, &enc, &dec))
        build(&b, enc, dec);
    asr_wfile_free(&b.raw);
    skips_free(&b.sk);
    json_decref(b.seen);
    return b.rc;
}

asr_err_t asr__safetensors_whisper(const uint8_t *data, size_t len, int enc_heads, int dec_heads,
                                   asr_wfile_t *f, char *errbuf, size_t errbuf_len) {
    f->format = ASR_WFMT_SAFETENSORS;
    build_t b = {.f = f, .file = "safetensors image", .err = errbuf, .el = errbuf_len};
    char why[512];
    b.rc = parse_image(data, len, &b.raw, &b.sk, why, sizeof why);
    if (b.rc != ASR_OK)
        asr_errf(errbuf, errbuf_len, "%s", why);
    else
        build(&b, enc_heads, dec_heads);
    asr_wfile_free(&b.raw);
    skips_free(&b.sk);
    return b.rc;
}
