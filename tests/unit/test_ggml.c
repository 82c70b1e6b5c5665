/* Unit tests: the whisper.cpp ggml front (ggml.c) and writer (ggml_write.c).
 *
 * Hand-built files (a builder below writes whisper.cpp's layout, independently of ggml.c): odd
 * shapes, every quantized block type with values computed here element by element from the
 * layout of ggml-common.h (and a few literal ones), every truncation of a small file, corrupt
 * type ids, shapes, names and hparams. With the real tiny.en ($ASRD_MODELS/tiny.en, else
 * ~/.cache/asrd/models/tiny.en, as asrd finds it): its table written as ggml f16, f32
 * and q8_0 and parsed back, every tensor compared (exact from f16/f32, q8_0 within its
 * quantization error), the written file walked to check the types whisper_model_load expects,
 * and the f16 file transcribes en_jfk.wav to the same text as the CTranslate2 directory. Without
 * the model those tests exit 77 (a failure under CI=true). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "asr/engine.h"
#include "audio/audio.h"
#include "cli/cli.h"
#include "core/core.h"
#include "engine/engine_int.h"
#include "engine/ggml.h"
#include "engine/mel.h"
#include "engine/tokenizer.h"
#include "engine/wwrite.h"
#include "nn/nn.h"

enum { F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, BF16 = 30 };

/* ---- a whisper.cpp file builder ---- */

typedef struct {
    char name[96];
    int type, n_dims;
    int64_t ne[4], n_elems;
    size_t hdr; /* offset of the record's n_dims field */
    size_t off; /* offset of the data */
} rec_t;

typedef struct {
    int d, heads, n_mels, actx, tctx, n_vocab, el, dl, n_tokens;
    int ftype;
    /* the type of a tensor (-1: leave it out); NULL: all f32 */
    int (*type_of)(const char *name, int n_dims, int index);
    bool conv_bias_1d; /* conv biases as [d] instead of whisper.cpp's [1, d] */
    bool dup, extra;   /* a tensor twice; an unknown tensor */
} spec_t;

typedef struct {
    asr_buf_t b;
    rec_t rec[512];
    int n;
    uint64_t rng;
} gfile_t;

static void u32(gfile_t *g, uint32_t v) {
    uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    asr_buf_append(&g->b, x, 4);
}
static uint32_t rnd(gfile_t *g) {
    g->rng ^= g->rng << 13;
    g->rng ^= g->rng >> 7;
    g->rng ^= g->rng << 17;
    return (uint32_t)(g->rng >> 11);
}
static float h2f(const uint8_t *p) { return asr_nn_f16_to_f32((uint16_t)(p[0] | p[1] << 8)); }
static float f16r(float x) { return asr_nn_f16_to_f32(asr_nn_f32_to_f16(x)); }

static int blk_bytes(int type) {
    switch (type) {
    case Q4_0:
        return 18;
    case Q4_1:
        return 20;
    case Q5_0:
        return 22;
    case Q5_1:
        return 24;
    default:
        return 34;
    }
}
static bool is_q(int type) { return type != F32 && type != F16 && type != BF16; }
static size_t data_bytes(int type, int64_t n) {
    return is_q(type) ? (size_t)(n / 32) * (size_t)blk_bytes(type)
                      : (size_t)n * (type == F32 ? 4 : 2);
}

/* The float value of element i of tensor k in a float file: exact in f16 and bf16. */
static float val(int k, int64_t i) { return (float)((k * 31 + i * 7) % 97 - 48) / 16.0f; }

/* Element i of a tensor as float, read from the file's bytes, from the block layouts of
 * ggml-common.h one element at a time (element j of a 32-block: low nibble of qs[j] for j < 16,
 * high nibble of qs[j - 16] above; q5's fifth bit j of qh). */
static float elem(const uint8_t *data, int type, int64_t i) {
    if (type == F32) {
        float f;
        memcpy(&f, data + 4 * i, 4);
        return f;
    }
    if (type == F16)
        return h2f(data + 2 * i);
    if (type == BF16) {
        uint32_t u = (uint32_t)(data[2 * i] | data[2 * i + 1] << 8) << 16;
        float f;
        memcpy(&f, &u, 4);
        return f;
    }
    const uint8_t *b = data + (size_t)(i / 32) * (size_t)blk_bytes(type);
    int j = (int)(i % 32);
    float d = h2f(b);
    if (type == Q8_0)
        return (float)(int8_t)b[2 + j] * d;
    int qs_at = type == Q4_0 ? 2 : type == Q4_1 ? 4 : type == Q5_0 ? 6 : 8;
    int nib = j < 16 ? b[qs_at + j] & 0x0f : b[qs_at + j - 16] >> 4;
    if (type == Q5_0 || type == Q5_1) {
        const uint8_t *qh = b + (type == Q5_0 ? 2 : 4);
        nib += ((qh[j / 8] >> (j % 8)) & 1) * 16;
    }
    switch (type) {
    case Q4_0:
        return (float)(nib - 8) * d;
    case Q5_0:
        return (float)(nib - 16) * d;
    default: /* q4_1, q5_1: + min */
        return (float)nib * d + h2f(b + 2);
    }
}

static void tensor(gfile_t *g, const spec_t *s, const char *name, int n_dims, int64_t ne0,
                   int64_t ne1, int64_t ne2) {
    int k = g->n;
    int type = s->type_of ? s->type_of(name, n_dims, k) : F32;
    if (type < 0)
        return;
    assert_true(g->n < 512);
    rec_t *r = &g->rec[g->n++];
    snprintf(r->name, sizeof r->name, "%s", name);
    r->type = type;
    r->n_dims = n_dims;
    int64_t ne[3] = {ne0, ne1, ne2};
    r->n_elems = 1;
    for (int i = 0; i < 4; i++)
        r->ne[i] = i < n_dims ? ne[i] : 1;
    for (int i = 0; i < n_dims; i++)
        r->n_elems *= ne[i];
    r->hdr = g->b.len;
    u32(g, (uint32_t)n_dims);
    u32(g, (uint32_t)strlen(name));
    u32(g, (uint32_t)type);
    for (int i = 0; i < n_dims; i++)
        u32(g, (uint32_t)ne[i]);
    asr_buf_puts(&g->b, name);
    r->off = g->b.len;
    if (!is_q(type)) {
        for (int64_t i = 0; i < r->n_elems; i++) {
            float v = val(k, i);
            uint32_t u;
            memcpy(&u, &v, 4);
            uint16_t h = type == F16 ? asr_nn_f32_to_f16(v) : (uint16_t)(u >> 16);
            if (type == F32)
                u32(g, u);
            else
                asr_buf_append(&g->b, (uint8_t[]){(uint8_t)h, (uint8_t)(h >> 8)}, 2);
        }
        return;
    }
    for (int64_t bl = 0; bl < r->n_elems / 32; bl++) {
        uint8_t blk[34];
        for (int i = 0; i < 34; i++)
            blk[i] = (uint8_t)rnd(g);
        /* scale (and min) small powers of two, so that every value is exact in float16 */
        static const uint16_t scales[] = {0x3400, 0x2c00, 0xb000, 0x3800}; /* .25 .0625 -.125 .5 */
        uint16_t dd = scales[rnd(g) % 4], mm = 0xbc00;                     /* -1 */
        blk[0] = (uint8_t)dd;
        blk[1] = (uint8_t)(dd >> 8);
        if (type == Q4_1 || type == Q5_1) {
            blk[2] = (uint8_t)mm;
            blk[3] = (uint8_t)(mm >> 8);
        }
        asr_buf_append(&g->b, blk, (size_t)blk_bytes(type));
    }
}

static void norm(gfile_t *g, const spec_t *s, const char *p) {
    char n[128];
    snprintf(n, sizeof n, "%s.weight", p);
    tensor(g, s, n, 1, s->d, 0, 0);
    snprintf(n, sizeof n, "%s.bias", p);
    tensor(g, s, n, 1, s->d, 0, 0);
}
static void lin(gfile_t *g, const spec_t *s, const char *p, int64_t in, int64_t out, bool bias) {
    char n[128];
    snprintf(n, sizeof n, "%s.weight", p);
    tensor(g, s, n, 2, in, out, 0);
    if (bias) {
        snprintf(n, sizeof n, "%s.bias", p);
        tensor(g, s, n, 1, out, 0, 0);
    }
}
static void blk(gfile_t *g, const spec_t *s, const char *stack, int l, bool cross) {
    char p[128];
    const int d = s->d;
    static const char *const parts[] = {"query", "key", "value", "out"};
    for (int c = 0; c < (cross ? 2 : 1); c++) {
        for (int i = 0; i < 4; i++) {
            snprintf(p, sizeof p, "%s.blocks.%d.%s.%s", stack, l, c ? "cross_attn" : "attn",
                     parts[i]);
            lin(g, s, p, d, d, i != 1);
        }
        snprintf(p, sizeof p, "%s.blocks.%d.%s", stack, l, c ? "cross_attn_ln" : "attn_ln");
        norm(g, s, p);
    }
    snprintf(p, sizeof p, "%s.blocks.%d.mlp.0", stack, l);
    lin(g, s, p, d, 4 * d, true);
    snprintf(p, sizeof p, "%s.blocks.%d.mlp.2", stack, l);
    lin(g, s, p, 4 * d, d, true);
    snprintf(p, sizeof p, "%s.blocks.%d.mlp_ln", stack, l);
    norm(g, s, p);
}

/* A whole file for spec s (openai's state_dict order). */
static void build(gfile_t *g, const spec_t *s) {
    memset(g, 0, sizeof *g);
    asr_buf_init(&g->b);
    g->rng = 0x9e3779b97f4a7c15u;
    const int32_t hp[11] = {s->n_vocab, s->actx,  s->d,  s->heads,  s->el,   s->tctx,
                            s->d,       s->heads, s->dl, s->n_mels, s->ftype};
    u32(g, 0x67676d6c);
    for (int i = 0; i < 11; i++)
        u32(g, (uint32_t)hp[i]);
    u32(g, (uint32_t)s->n_mels);
    u32(g, 3);
    for (int i = 0; i < 3 * s->n_mels; i++) {
        float f = (float)i;
        uint32_t u;
        memcpy(&u, &f, 4);
        u32(g, u);
    }
    u32(g, (uint32_t)s->n_tokens);
    for (int i = 0; i < s->n_tokens; i++) { /* token i: i bytes 'a'+i (token 0 empty) */
        u32(g, (uint32_t)i);
        for (int j = 0; j < i; j++)
            asr_buf_append(&g->b, &(char){(char)('a' + i)}, 1);
    }
    const int d = s->d;
    tensor(g, s, "encoder.conv1.weight", 3, 3, s->n_mels, d);
    tensor(g, s, "encoder.conv1.bias", s->conv_bias_1d ? 1 : 2, s->conv_bias_1d ? d : 1, d, 0);
    tensor(g, s, "encoder.conv2.weight", 3, 3, d, d);
    tensor(g, s, "encoder.conv2.bias", s->conv_bias_1d ? 1 : 2, s->conv_bias_1d ? d : 1, d, 0);
    tensor(g, s, "encoder.positional_embedding", 2, d, s->actx, 0);
    for (int l = 0; l < s->el; l++)
        blk(g, s, "encoder", l, false);
    norm(g, s, "encoder.ln_post");
    tensor(g, s, "decoder.token_embedding.weight", 2, d, s->n_vocab, 0);
    tensor(g, s, "decoder.positional_embedding", 2, d, s->tctx, 0);
    for (int l = 0; l < s->dl; l++)
        blk(g, s, "decoder", l, true);
    norm(g, s, "decoder.ln");
    if (s->dup)
        tensor(g, s, "decoder.ln.bias", 1, d, 0, 0);
    if (s->extra)
        tensor(g, s, "decoder.extra.weight", 1, d, 0, 0);
}

static const rec_t *rec_named(const gfile_t *g, const char *name) {
    for (int i = 0; i < g->n; i++)
        if (!strcmp(g->rec[i].name, name))
            return &g->rec[i];
    fail_msg("no record %s", name);
    return NULL;
}

static void set_u32(gfile_t *g, size_t off, uint32_t v) {
    uint8_t *p = (uint8_t *)g->b.data + off;
    p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8), p[2] = (uint8_t)(v >> 16),
    p[3] = (uint8_t)(v >> 24);
}

/* ---- where a ggml tensor lands in the table (CTranslate2 names, wfile.h) ---- */

typedef struct {
    char name[160];
    int part; /* which of the fused parts (rows part*n..) */
} dest_t;

static dest_t dest_of(const char *g) {
    static const char *const map[][3] = {
        /* suffix after "blocks.N.", table suffix after "layer_N/", part */
        {"attn_ln.weight", "self_attention/layer_norm/gamma", "0"},
        {"attn_ln.bias", "self_attention/layer_norm/beta", "0"},
        {"attn.query.weight", "self_attention/linear_0/weight", "0"},
        {"attn.query.bias", "self_attention/linear_0/bias", "0"},
        {"attn.key.weight", "self_attention/linear_0/weight", "1"},
        {"attn.value.weight", "self_attention/linear_0/weight", "2"},
        {"attn.value.bias", "self_attention/linear_0/bias", "2"},
        {"attn.out.weight", "self_attention/linear_1/weight", "0"},
        {"attn.out.bias", "self_attention/linear_1/bias", "0"},
        {"cross_attn_ln.weight", "attention/layer_norm/gamma", "0"},
        {"cross_attn_ln.bias", "attention/layer_norm/beta", "0"},
        {"cross_attn.query.weight", "attention/linear_0/weight", "0"},
        {"cross_attn.query.bias", "attention/linear_0/bias", "0"},
        {"cross_attn.key.weight", "attention/linear_1/weight", "0"},
        {"cross_attn.value.weight", "attention/linear_1/weight", "1"},
        {"cross_attn.value.bias", "attention/linear_1/bias", "1"},
        {"cross_attn.out.weight", "attention/linear_2/weight", "0"},
        {"cross_attn.out.bias", "attention/linear_2/bias", "0"},
        {"mlp_ln.weight", "ffn/layer_norm/gamma", "0"},
        {"mlp_ln.bias", "ffn/layer_norm/beta", "0"},
        {"mlp.0.weight", "ffn/linear_0/weight", "0"},
        {"mlp.0.bias", "ffn/linear_0/bias", "0"},
        {"mlp.2.weight", "ffn/linear_1/weight", "0"},
        {"mlp.2.bias", "ffn/linear_1/bias", "0"},
        /* whole names */
        {"encoder.conv1.weight", "encoder/conv1/weight", "0"},
        {"encoder.conv1.bias", "encoder/conv1/bias", "0"},
        {"encoder.conv2.weight", "encoder/conv2/weight", "0"},
        {"encoder.conv2.bias", "encoder/conv2/bias", "0"},
        {"encoder.positional_embedding", "encoder/position_encodings/encodings", "0"},
        {"encoder.ln_post.weight", "encoder/layer_norm/gamma", "0"},
        {"encoder.ln_post.bias", "encoder/layer_norm/beta", "0"},
        {"decoder.token_embedding.weight", "decoder/embeddings/weight", "0"},
        {"decoder.positional_embedding", "decoder/position_encodings/encodings", "0"},
        {"decoder.ln.weight", "decoder/layer_norm/gamma", "0"},
        {"decoder.ln.bias", "decoder/layer_norm/beta", "0"},
    };
    dest_t r = {"", 0};
    char stack[16];
    int l, at = 0;
    if (sscanf(g, "%15[a-z].blocks.%d.%n", stack, &l, &at) == 2 && at > 0) {
        for (size_t i = 0; i < 24; i++)
            if (!strcmp(g + at, map[i][0])) {
                snprintf(r.name, sizeof r.name, "%s/layer_%d/%s", stack, l, map[i][1]);
                r.part = atoi(map[i][2]);
                return r;
            }
    }
    for (size_t i = 24; i < sizeof map / sizeof *map; i++)
        if (!strcmp(g, map[i][0])) {
            snprintf(r.name, sizeof r.name, "%s", map[i][1]);
            return r;
        }
    fail_msg("no table name for %s", g);
    return r;
}

/* Every record of g is in table f, element for element (float16 storage rounds). */
static void check_table(const gfile_t *g, const asr_wfile_t *f) {
    float *x = NULL;
    for (int i = 0; i < g->n; i++) {
        const rec_t *r = &g->rec[i];
        dest_t dst = dest_of(r->name);
        const asr_wvar_t *v = asr_wfile_find(f, dst.name);
        if (!v)
            fail_msg("%s: table has no %s", r->name, dst.name);
        x = realloc(x, (size_t)r->n_elems * sizeof *x);
        char err[128];
        int64_t e0 = dst.part * r->n_elems;
        assert_true(e0 + r->n_elems <= v->n_elems);
        assert_int_equal(
            asr_wfile_decode_f32(f, v, dst.name, r->ne[0], e0, e0 + r->n_elems, x, err, sizeof err),
            0);
        for (int64_t e = 0; e < r->n_elems; e++) {
            float want = elem((const uint8_t *)g->b.data + r->off, r->type, e);
            if (v->dtype == ASR_WD_F16)
                want = f16r(want);
            if (x[e] != want)
                fail_msg("%s (%s, type %d) element %lld: %g, expected %g", r->name, dst.name,
                         r->type, (long long)e, x[e], want);
        }
        /* in place when nothing needed converting: the table points into the file */
        bool fused =
            strstr(dst.name, "self_attention/linear_0") || strstr(dst.name, "attention/linear_1");
        if (!fused && !is_q(r->type))
            assert_ptr_equal(v->data, (const uint8_t *)g->b.data + r->off);
    }
    free(x);
}

static asr_err_t parse(const gfile_t *g, size_t len, asr_wfile_t *f, char *err, size_t n) {
    memset(f, 0, sizeof *f);
    return asr_ggml_parse((const uint8_t *)g->b.data, len, f, err, n);
}

/* ---- hand-built files ---- */

static int odd_types(const char *name, int n_dims, int k) {
    (void)k;
    if (!strcmp(name, "decoder.token_embedding.weight"))
        return BF16;
    return n_dims >= 2 && !strstr(name, "positional") && !strstr(name, "conv1.bias") &&
                   !strstr(name, "conv2.bias")
               ? F16
               : F32;
}

static const spec_t ODD = {.d = 6,
                           .heads = 3,
                           .n_mels = 5,
                           .actx = 7,
                           .tctx = 3,
                           .n_vocab = 11,
                           .el = 2,
                           .dl = 1,
                           .n_tokens = 9,
                           .ftype = 1,
                           .type_of = odd_types};

static void test_odd_shapes(void **state) {
    (void)state;
    for (int variant = 0; variant < 2; variant++) {
        spec_t s = ODD;
        s.conv_bias_1d = variant == 1;
        gfile_t g;
        build(&g, &s);
        asr_wfile_t f;
        char err[256] = "";
        if (parse(&g, g.b.len, &f, err, sizeof err) != ASR_OK)
            fail_msg("parse: %s", err);
        assert_int_equal(f.format, ASR_WFMT_GGML);
        check_table(&g, &f);
        /* 11 global tensors, 2 scalars, 12 per encoder layer, 20 per decoder layer */
        assert_int_equal(f.n_vars, 11 + 2 + 12 * s.el + 20 * s.dl);
        const asr_wvar_t *v = asr_wfile_find(&f, "encoder/conv1/weight");
        assert_int_equal(v->rank, 3);
        assert_int_equal(v->dims[0], 6);
        assert_int_equal(v->dims[1], 5);
        assert_int_equal(v->dims[2], 3);
        assert_int_equal(v->dtype, ASR_WD_F16);
        v = asr_wfile_find(&f, "encoder/conv2/bias");
        assert_int_equal(v->rank, 1);
        assert_int_equal(v->dims[0], 6);
        v = asr_wfile_find(&f, "encoder/position_encodings/encodings");
        assert_int_equal(v->dims[0], 7);
        assert_int_equal(v->dims[1], 6);
        v = asr_wfile_find(&f, "decoder/embeddings/weight");
        assert_int_equal(v->dtype, ASR_WD_BF16);
        assert_int_equal(v->dims[0], 11);
        assert_ptr_equal(asr_wfile_find(&f, "decoder/projection/weight"), v);
        v = asr_wfile_find(&f, "encoder/layer_1/ffn/linear_0/weight");
        assert_int_equal(v->dims[0], 24);
        assert_int_equal(v->dims[1], 6);
        v = asr_wfile_find(&f, "encoder/layer_1/self_attention/linear_0/weight");
        assert_int_equal(v->dims[0], 18);
        assert_int_equal(v->dtype, ASR_WD_F16);
        /* the fused biases' missing key part is zeros */
        v = asr_wfile_find(&f, "encoder/layer_0/self_attention/linear_0/bias");
        assert_int_equal(v->dims[0], 18);
        assert_int_equal(v->dtype, ASR_WD_F32);
        for (int i = 6; i < 12; i++)
            assert_true(((const float *)(const void *)v->data)[i] == 0.0f);
        v = asr_wfile_find(&f, "decoder/layer_0/attention/linear_1/bias");
        assert_int_equal(v->dims[0], 12);
        for (int i = 0; i < 6; i++)
            assert_true(((const float *)(const void *)v->data)[i] == 0.0f);
        v = asr_wfile_find(&f, "decoder/layer_0/attention/linear_0/weight");
        assert_int_equal(v->dims[0], 6);
        v = asr_wfile_find(&f, "encoder/num_heads");
        assert_int_equal(v->dtype, ASR_WD_I32);
        assert_int_equal(*(const int32_t *)(const void *)v->data, 3);
        assert_non_null(asr_wfile_find(&f, "decoder/num_heads"));
        /* the vocabulary: from token 0's length field to the first tensor */
        assert_int_equal(f.n_ggml_tokens, 9);
        size_t voff = 4 + 44 + 8 + 4 * 3 * 5 + 4;
        assert_ptr_equal(f.ggml_vocab, (const uint8_t *)g.b.data + voff);
        assert_int_equal(f.ggml_vocab_len, 9 * 4 + 36);
        assert_string_equal(f.note, "");
        asr_wfile_free(&f);
        asr_buf_free(&g.b);
    }
}

/* Every matrix quantized, the types in turn (fused q|k|v mixing them, and with f32/f16). */
static int mixed_types(const char *name, int n_dims, int k) {
    static const int cycle[] = {Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, F16, Q8_0, F32};
    if (n_dims == 2 && !strstr(name, "positional") && !strstr(name, "bias"))
        return cycle[k % 8];
    return F32;
}

static const spec_t QUANT = {.d = 32,
                             .heads = 4,
                             .n_mels = 2,
                             .actx = 3,
                             .tctx = 2,
                             .n_vocab = 5,
                             .el = 2,
                             .dl = 2,
                             .n_tokens = 4,
                             .ftype = 2008,
                             .type_of = mixed_types};

static void test_quantized(void **state) {
    (void)state;
    gfile_t g;
    build(&g, &QUANT);
    /* a few blocks by hand, with their values worked out here */
    const rec_t *r;
    uint8_t *b;
    int seen[40] = {0};
    for (int i = 0; i < g.n; i++)
        seen[g.rec[i].type]++;
    assert_true(seen[Q4_0] && seen[Q4_1] && seen[Q5_0] && seen[Q5_1] && seen[Q8_0] && seen[F16]);
    for (int i = 0; i < g.n; i++) {
        r = &g.rec[i];
        b = (uint8_t *)g.b.data + r->off;
        if (!is_q(r->type))
            continue;
        memset(b, 0, (size_t)blk_bytes(r->type));
        b[1] = 0x38; /* d = 0.5 */
        if (r->type == Q4_1 || r->type == Q5_1)
            b[3] = 0xc0; /* m = -2 */
        int qs = r->type == Q4_0 ? 2 : r->type == Q4_1 ? 4 : r->type == Q5_0 ? 6 : 8;
        if (r->type == Q8_0) {
            b[2] = 0x80; /* -128 */
            b[3] = 0x7f; /* 127 */
            b[33] = 0x05;
        } else {
            b[qs] = 0x3f;      /* element 0: 15, element 16: 3 */
            b[qs + 15] = 0xa0; /* element 15: 0, element 31: 10 */
        }
        if (r->type == Q5_0 || r->type == Q5_1)
            b[qs - 4 + 2] = 0x01; /* qh bit 16: element 16 gets +16 */
    }
    asr_wfile_t f;
    char err[256] = "";
    if (parse(&g, g.b.len, &f, err, sizeof err) != ASR_OK)
        fail_msg("parse: %s", err);
    check_table(&g, &f);
    /* the literal values of those blocks */
    static const struct {
        int type;
        float e0, e15, e16, e31;
    } lit[] = {
        {Q4_0, 3.5f, -4.0f, -2.5f, 1.0f},  /* (q - 8) * .5 */
        {Q4_1, 5.5f, -2.0f, -0.5f, 3.0f},  /* q * .5 - 2 */
        {Q5_0, -0.5f, -8.0f, 1.5f, -3.0f}, /* ((q | h << 4) - 16) * .5 */
        {Q5_1, 5.5f, -2.0f, 7.5f, 3.0f},   /* (q | h << 4) * .5 - 2 */
        {Q8_0, -64.0f, 0.0f, 0.0f, 2.5f},  /* q * .5 */
    };
    for (size_t t = 0; t < sizeof lit / sizeof *lit; t++) {
        for (int i = 0; i < g.n; i++) {
            r = &g.rec[i];
            if (r->type != lit[t].type)
                continue;
            dest_t dst = dest_of(r->name);
            const asr_wvar_t *v = asr_wfile_find(&f, dst.name);
            float x[32];
            int64_t e0 = dst.part * r->n_elems;
            assert_int_equal(asr_wfile_decode_f32(&f, v, dst.name, 32, e0, e0 + 32, x, err, 64), 0);
            if (x[0] != lit[t].e0 || x[15] != lit[t].e15 || x[16] != lit[t].e16 ||
                x[31] != lit[t].e31)
                fail_msg("type %d (%s): %g %g %g %g", lit[t].type, r->name, x[0], x[15], x[16],
                         x[31]);
            if (lit[t].type == Q8_0)
                assert_true(x[1] == 63.5f);
        }
    }
    /* quantized matrices become float16; a fusion with a float32 part float32 */
    const asr_wvar_t *v = asr_wfile_find(&f, "encoder/layer_0/ffn/linear_0/weight");
    r = rec_named(&g, "encoder.blocks.0.mlp.0.weight");
    assert_int_equal(v->dtype, is_q(r->type)    ? ASR_WD_F16
                               : r->type == F32 ? ASR_WD_F32
                                                : ASR_WD_F16);
    for (int l = 0; l < 2; l++) {
        char n[96];
        bool any32 = false;
        static const char *const p[] = {"query", "key", "value"};
        for (int i = 0; i < 3; i++) {
            snprintf(n, sizeof n, "decoder.blocks.%d.attn.%s.weight", l, p[i]);
            any32 = any32 || rec_named(&g, n)->type == F32;
        }
        snprintf(n, sizeof n, "decoder/layer_%d/self_attention/linear_0/weight", l);
        assert_int_equal(asr_wfile_find(&f, n)->dtype, any32 ? ASR_WD_F32 : ASR_WD_F16);
    }
    int n_q = 0;
    for (int i = 0; i < g.n; i++)
        n_q += is_q(g.rec[i].type);
    char want[160];
    snprintf(want, sizeof want,
             "ggml q4_0+q4_1+q5_0+q5_1+q8_0: %d matrices dequantized to "
             "float16 at load",
             n_q);
    assert_string_equal(f.note, want);
    asr_wfile_free(&f);
    asr_buf_free(&g.b);
}

/* A shapes-only table (the probe's): the same names, shapes, dtypes and note as the full one, no
 * data (and no memory) for what the full one converts. */
static void test_shapes_only(void **state) {
    (void)state;
    gfile_t g;
    build(&g, &QUANT);
    asr_wfile_t full, shapes = {.shapes_only = true};
    assert_int_equal(parse(&g, g.b.len, &full, NULL, 0), ASR_OK);
    assert_int_equal(asr_ggml_parse((const uint8_t *)g.b.data, g.b.len, &shapes, NULL, 0), ASR_OK);
    assert_int_equal(shapes.n_vars, full.n_vars);
    assert_string_equal(shapes.note, full.note);
    int n_null = 0;
    for (int i = 0; i < full.n_vars; i++) {
        const asr_wvar_t *a = &full.vars[i], *b = &shapes.vars[i];
        assert_string_equal(a->name, b->name);
        assert_int_equal(a->dtype, b->dtype);
        assert_int_equal(a->rank, b->rank);
        assert_memory_equal(a->dims, b->dims, sizeof a->dims);
        assert_int_equal(a->n_bytes, b->n_bytes);
        bool converted =
            a->data < (const uint8_t *)g.b.data || a->data >= (const uint8_t *)g.b.data + g.b.len;
        if (a->dtype == ASR_WD_I32) { /* num_heads: owned by each table */
            assert_memory_equal(a->data, b->data, 4);
        } else if (converted) {
            assert_null(b->data);
            n_null++;
        } else {
            assert_ptr_equal(b->data, a->data);
        }
    }
    assert_true(n_null > 0);
    size_t owned_full = 0, owned_shapes = 0;
    for (int i = 0; i < full.n_owned; i++)
        owned_full += full.owned_lens[i];
    for (int i = 0; i < shapes.n_owned; i++)
        owned_shapes += shapes.owned_lens[i];
    assert_true(owned_shapes <= 65536 && owned_full > owned_shapes);
    asr_wfile_free(&full);
    asr_wfile_free(&shapes);
    asr_buf_free(&g.b);
}

static const spec_t SMALL = {.d = 2,
                             .heads = 1,
                             .n_mels = 1,
                             .actx = 2,
                             .tctx = 1,
                             .n_vocab = 3,
                             .el = 1,
                             .dl = 1,
                             .n_tokens = 3,
                             .ftype = 0};

/* Every proper prefix of a valid file fails cleanly; the whole file parses. */
static void test_every_prefix(void **state) {
    (void)state;
    gfile_t g;
    build(&g, &SMALL);
    for (size_t n = 0; n < g.b.len; n++) {
        asr_wfile_t f;
        char err[256] = "";
        if (parse(&g, n, &f, err, sizeof err) != ASR_ERR_MODEL)
            fail_msg("prefix of %zu bytes of %zu accepted", n, g.b.len);
        assert_true(err[0] && !strchr(err, '\n'));
        asr_wfile_free(&f);
    }
    asr_wfile_t f;
    assert_int_equal(parse(&g, g.b.len, &f, NULL, 0), ASR_OK);
    check_table(&g, &f);
    asr_wfile_free(&f);
    asr_buf_free(&g.b);
}

static void expect_bad(gfile_t *g, size_t len, const char *needle) {
    asr_wfile_t f;
    char err[256] = "";
    asr_err_t rc = parse(g, len, &f, err, sizeof err);
    asr_wfile_free(&f);
    if (rc != ASR_ERR_MODEL || !strstr(err, needle) || strchr(err, '\n'))
        fail_msg("expected ASR_ERR_MODEL with '%s', got %s: '%s'", needle, asr_strerror(rc), err);
}

static int drop_mlp_ln(const char *name, int n_dims, int k) {
    (void)n_dims, (void)k;
    return strcmp(name, "decoder.blocks.0.mlp_ln.bias") ? F32 : -1;
}

static int q5_only(const char *name, int n_dims, int k) {
    int t = mixed_types(name, n_dims, k);
    return t == Q4_0 || t == Q4_1 || t == Q8_0 ? Q5_1 : t;
}

static void test_corrupt(void **state) {
    (void)state;
    gfile_t g;
    build(&g, &SMALL);
    const rec_t *mlp0 = rec_named(&g, "encoder.blocks.0.mlp.0.weight");
    struct {
        size_t off;
        uint32_t v;
        const char *needle;
        uint32_t v2; /* when not 0: the next field too */
    } edits[] = {
        {0, 0x46554747, "bad magic", 0},
        {4 + 4 * 10, 5, "ftype", 0},               /* GGML_FTYPE 5, 6: removed q4_2/q4_3 */
        {4 + 4 * 10, (uint32_t)-1, "ftype", 0},    /* negative */
        {4 + 4 * 6, 4, "n_text_state", 0},         /* differs from n_audio_state */
        {4 + 4 * 3, 3, "heads", 0},                /* 2 is not a multiple of 3 heads */
        {4 + 4 * 4, 0, "n_audio_layer", 0},        /* no layers */
        {4 + 4 * 0, 2, "vocabulary", 0},           /* n_vocab 2 < 3 tokens */
        {4 + 44, 0x7fffffff, "mel filters", 0},    /* n_mel too large for the file */
        {mlp0->hdr + 8, 4, "unknown type 4", 0},   /* GGML_TYPE_Q4_2, removed */
        {mlp0->hdr + 8, 9, "unknown type 9", 0},   /* q8_1: not a file type */
        {mlp0->hdr + 8, 99, "unknown type 99", 0}, /* nothing */
        {mlp0->hdr + 8, Q4_0, "blocks of 32", 0},  /* rows of 2 */
        {mlp0->hdr + 12, 8, "has shape [8, 2, 1, 1], expected [2, 8, 1]", 2}, /* transposed */
        {mlp0->hdr + 12, 1, "", 0},          /* [1, 8]: fewer bytes, the records after it misread */
        {mlp0->hdr, 5, "corrupt header", 0}, /* 5 dims */
        {mlp0->hdr, 0, "corrupt header", 0}, /* 0 dims */
        {mlp0->hdr + 4, 0, "corrupt header", 0},      /* empty name */
        {mlp0->hdr + 4, 100000, "corrupt header", 0}, /* a name longer than whisper's */
        {mlp0->hdr + 12, 0, "dimension", 0},          /* ne 0 */
        {mlp0->hdr + 12, (uint32_t)-2, "dimension", 0},
        {mlp0->hdr + 12 + 8, 0x6e650000, "NUL", 0}, /* "encoder" -> "\0\0ncoder" */
        {mlp0->hdr + 12 + 8, 0x636e6578, "missing tensor encoder.blocks.0.mlp.0.weight", 0},
    };
    for (size_t i = 0; i < sizeof edits / sizeof *edits; i++) {
        gfile_t h = g;
        asr_buf_init(&h.b);
        asr_buf_append(&h.b, g.b.data, g.b.len);
        set_u32(&h, edits[i].off, edits[i].v);
        if (edits[i].v2)
            set_u32(&h, edits[i].off + 4, edits[i].v2);
        expect_bad(&h, h.b.len, edits[i].needle);
        asr_buf_free(&h.b);
    }
    /* quantization version 1 (whisper.cpp writes 2): float32 scales in q4_0, q4_1 and q8_0, so
     * those are refused; q5_0 and q5_1 blocks were as now */
    spec_t sq = QUANT;
    sq.ftype = 1008;
    gfile_t gq;
    build(&gq, &sq);
    expect_bad(&gq, gq.b.len,
               "q4_0 tensor encoder.blocks.0.attn.value.weight is of quantization "
               "version 1");
    asr_buf_free(&gq.b);
    sq.type_of = q5_only;
    build(&gq, &sq);
    asr_wfile_t fq;
    assert_int_equal(parse(&gq, gq.b.len, &fq, NULL, 0), ASR_OK);
    check_table(&gq, &fq);
    asr_wfile_free(&fq);
    asr_buf_free(&gq.b);
    /* a name with a newline and a bad type: the reason stays one line */
    gfile_t h = g;
    asr_buf_init(&h.b);
    asr_buf_append(&h.b, g.b.data, g.b.len);
    set_u32(&h, mlp0->hdr + 8, 99);
    set_u32(&h, mlp0->hdr + 20, 0x6f636e0a); /* "\nnco" */
    expect_bad(&h, h.b.len, "tensor ?ncoder.blocks.0.mlp.0.weight has unknown type 99");
    asr_buf_free(&h.b);
    /* trailing bytes: too few for a tensor header, or a header and nothing after it */
    h = g;
    asr_buf_init(&h.b);
    asr_buf_append(&h.b, g.b.data, g.b.len);
    asr_buf_append(&h.b, "\x01\x00\x00", 3);
    expect_bad(&h, h.b.len, "truncated");
    asr_buf_free(&h.b);
    asr_buf_free(&g.b);

    spec_t s = SMALL;
    s.dup = true;
    build(&g, &s);
    expect_bad(&g, g.b.len, "decoder.ln.bias appears twice");
    asr_buf_free(&g.b);
    s = SMALL;
    s.extra = true;
    build(&g, &s);
    expect_bad(&g, g.b.len, "unknown tensor decoder.extra.weight");
    asr_buf_free(&g.b);
    s = SMALL;
    s.type_of = drop_mlp_ln;
    build(&g, &s);
    expect_bad(&g, g.b.len, "missing tensor decoder.blocks.0.mlp_ln.bias");
    asr_buf_free(&g.b);
    s = SMALL;
    s.n_tokens = 4; /* more tokens than n_vocab */
    build(&g, &s);
    expect_bad(&g, g.b.len, "vocabulary");
    asr_buf_free(&g.b);

    /* a file on disk: the reason names it */
    build(&g, &SMALL);
    char dir[] = "/tmp/test_ggml_XXXXXX", path[64], err[512] = "";
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/ggml-small.bin", dir);
    FILE *fp = fopen(path, "wb");
    fwrite(g.b.data, 1, g.b.len - 1, fp);
    fclose(fp);
    asr_wfile_t f;
    assert_int_equal(asr_wfile_open(path, &f, NULL, err, sizeof err), ASR_ERR_MODEL);
    if (!strstr(err, path) || !strstr(err, "truncated"))
        fail_msg("%s", err);
    fp = fopen(path, "wb");
    fwrite(g.b.data, 1, g.b.len, fp);
    fclose(fp);
    assert_int_equal(asr_wfile_open(path, &f, NULL, err, sizeof err), ASR_OK);
    assert_int_equal(f.format, ASR_WFMT_GGML);
    asr_wfile_free(&f);
    unlink(path);
    rmdir(dir);
    asr_buf_free(&g.b);
}

/* The fuzz seeds (tests/fuzz/make_ggml_corpus.py): the valid ones parse, the broken ones fail
 * with their reason. */
static void test_corpus(void **state) {
    (void)state;
    static const struct {
        const char *file, *needle; /* needle NULL: valid */
    } seeds[] = {
        {"small_f32.bin", NULL},
        {"odd_f16_bf16.bin", NULL},
        {"mixed_quantized.bin", NULL},
        {"truncated_half.bin", "truncated"},
        {"truncated_header.bin", "truncated hparams"},
        {"trailing.bin", "truncated header"},
        {"no_tensors.bin", "missing tensor encoder.conv1.weight"},
        {"bad_magic.bin", "bad magic"},
        {"bad_ftype.bin", "ftype"},
        {"bad_type.bin", "unknown type 9"},
        {"bad_dims.bin", "corrupt header"},
        {"bad_shape.bin", ""},
        {"bad_vocab.bin", "vocabulary"},
        {"bad_state.bin", "n_text_state"},
        {"duplicate.bin", "encoder.conv1.weight appears twice"},
    };
    const char *src = getenv("ASR_SOURCE");
    for (size_t i = 0; i < sizeof seeds / sizeof *seeds; i++) {
        char path[4200], *data, err[256] = "";
        size_t len;
        snprintf(path, sizeof path, "%s/tests/fuzz/corpus/ggml/%s", src ? src : ".", seeds[i].file);
        assert_int_equal(asr_read_file(path, &data, &len), ASR_OK);
        asr_wfile_t f = {0};
        asr_err_t rc = asr_ggml_parse((const uint8_t *)data, len, &f, err, sizeof err);
        if (seeds[i].needle ? rc != ASR_ERR_MODEL || !strstr(err, seeds[i].needle) : rc != ASR_OK)
            fail_msg("%s: %s '%s'", seeds[i].file, asr_strerror(rc), err);
        if (!seeds[i].needle && strstr(seeds[i].file, "quantized"))
            assert_non_null(strstr(f.note, "q4_0+q4_1+q5_0+q5_1+q8_0"));
        asr_wfile_free(&f);
        free(data);
    }
}

/* ---- the real tiny.en ---- */

static char g_tiny[4096];

/* tiny.en where asrd looks for it (asr_cli_model_dir: $ASRD_MODELS, else ~/.cache/asrd/models). */
static bool find_tiny(void) {
    char *d = asr_cli_model_dir("tiny.en");
    struct stat st;
    bool ok = snprintf(g_tiny, sizeof g_tiny, "%s/model.bin", d) < (int)sizeof g_tiny &&
              stat(g_tiny, &st) == 0;
    snprintf(g_tiny, sizeof g_tiny, "%s", d);
    free(d);
    return ok;
}

typedef struct {
    asr_wfile_t f;
    asr_tokenizer_t *tok;
    asr_wwrite_src_t src;
    char dir[64];
} tiny_t;

static int tiny_setup(void **state) {
    tiny_t *t = calloc(1, sizeof *t);
    char err[512] = "";
    if (asr_wfile_open(g_tiny, &t->f, NULL, err, sizeof err) != ASR_OK ||
        asr__model_dims(&t->f, &t->src.info, err, sizeof err) != 0 ||
        asr_tokenizer_load(g_tiny, t->src.info.n_vocab, &t->tok, err, sizeof err) != ASR_OK) {
        fprintf(stderr, "tiny.en: %s\n", err);
        return -1;
    }
    t->src.f = &t->f;
    t->src.tok = t->tok;
    snprintf(t->dir, sizeof t->dir, "/tmp/test_ggml_XXXXXX");
    if (!mkdtemp(t->dir))
        return -1;
    *state = t;
    return 0;
}

static int tiny_teardown(void **state) {
    tiny_t *t = *state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", t->dir);
    if (system(cmd) != 0)
        return -1;
    asr_tokenizer_destroy(t->tok);
    asr_wfile_free(&t->f);
    free(t);
    return 0;
}

static int32_t rd_i32(const uint8_t **p) {
    int32_t v = (int32_t)((uint32_t)(*p)[0] | (uint32_t)(*p)[1] << 8 | (uint32_t)(*p)[2] << 16 |
                          (uint32_t)(*p)[3] << 24);
    *p += 4;
    return v;
}

/* Walks a written file as whisper_model_load would: header, mel filters, vocabulary, and each
 * tensor's type against what whisper.cpp allocates for it (wtype matrices, vtype conv weights,
 * f32 for the rest), counting the tensors. */
static void walk(const tiny_t *t, const char *path, asr_ww_type_t type) {
    char *data;
    size_t len;
    assert_int_equal(asr_read_file(path, &data, &len), ASR_OK);
    const uint8_t *p = (const uint8_t *)data, *end = p + len;
    const asr_model_info_t *in = &t->src.info;
    assert_int_equal(rd_i32(&p), 0x67676d6c);
    int32_t hp[11];
    for (int i = 0; i < 11; i++)
        hp[i] = rd_i32(&p);
    const int32_t want_hp[11] = {in->n_vocab,
                                 1500,
                                 in->d_model,
                                 in->n_audio_head,
                                 in->n_audio_layer,
                                 448,
                                 in->d_model,
                                 in->n_text_head,
                                 in->n_text_layer,
                                 in->n_mels,
                                 type == ASR_WW_FLOAT32   ? 0
                                 : type == ASR_WW_FLOAT16 ? 1
                                                          : 2007};
    assert_memory_equal(hp, want_hp, sizeof hp);
    assert_int_equal(rd_i32(&p), in->n_mels);
    assert_int_equal(rd_i32(&p), 201);
    float *filt = malloc((size_t)in->n_mels * 201 * sizeof(float));
    asr_mel_t *mel;
    assert_int_equal(asr_mel_create(in->n_mels, &mel), ASR_OK);
    asr_mel_filters(mel, filt);
    asr_mel_destroy(mel);
    assert_memory_equal(p, filt, (size_t)in->n_mels * 201 * sizeof(float));
    /* the first filter rises from bin 0 (librosa's Slaney filterbank) */
    assert_true(filt[0] == 0.0f && filt[1] > 0.0f);
    free(filt);
    p += (size_t)in->n_mels * 201 * 4;
    int32_t n_tok = rd_i32(&p);
    assert_int_equal(n_tok, asr_tokenizer_special(t->tok)->eot);
    assert_int_equal(n_tok, 50256);
    for (int i = 0; i < n_tok; i++) {
        size_t tl;
        const char *tb = asr_tokenizer_token_bytes(t->tok, i, &tl);
        assert_int_equal(rd_i32(&p), (int32_t)tl);
        assert_memory_equal(p, tb, tl);
        p += tl;
    }
    int wtype = type == ASR_WW_FLOAT32 ? F32 : type == ASR_WW_FLOAT16 ? F16 : Q8_0;
    int vtype = type == ASR_WW_FLOAT32 ? F32 : F16;
    int n = 0;
    while (p < end) {
        int32_t n_dims = rd_i32(&p), nl = rd_i32(&p), tt = rd_i32(&p);
        int64_t ne[4] = {1, 1, 1, 1}, nel = 1;
        for (int i = 0; i < n_dims; i++)
            nel *= ne[i] = rd_i32(&p);
        char name[128];
        snprintf(name, sizeof name, "%.*s", nl, (const char *)p);
        p += nl;
        int want = F32;
        if (strstr(name, "conv") && strstr(name, "weight"))
            want = vtype;
        else if (n_dims == 2 && !strstr(name, "positional") && !strstr(name, "conv"))
            want = wtype;
        if (tt != want)
            fail_msg("%s: type %d, whisper.cpp expects %d", name, tt, want);
        if (strstr(name, "conv") && strstr(name, "bias"))
            assert_true(n_dims == 2 && ne[0] == 1 && ne[1] == in->d_model);
        if (!strcmp(name, "encoder.conv1.weight"))
            assert_true(n_dims == 3 && ne[0] == 3 && ne[1] == in->n_mels && ne[2] == in->d_model);
        if (!strcmp(name, "decoder.token_embedding.weight"))
            assert_true(n_dims == 2 && ne[0] == in->d_model && ne[1] == in->n_vocab);
        p += data_bytes(tt, nel);
        assert_true(p <= end);
        n++;
    }
    /* whisper_model_load's count: 10 + 15 per encoder layer + 24 per decoder layer (less the
     * reserved 5 of its 10 + 15) */
    assert_int_equal(n, 5 + 2 + 15 * in->n_audio_layer + 2 + 2 + 24 * in->n_text_layer);
    free(data);
}

static void roundtrip(void **state, asr_ww_type_t type, const char *file) {
    tiny_t *t = *state;
    char path[128], err[512] = "";
    snprintf(path, sizeof path, "%s/%s", t->dir, file);
    t->src.type = type;
    if (asr_ggml_write(&t->src, path, err, sizeof err) != ASR_OK)
        fail_msg("write: %s", err);
    walk(t, path, type);
    asr_wfile_t g;
    if (asr_wfile_open(path, &g, NULL, err, sizeof err) != ASR_OK)
        fail_msg("open: %s", err);
    assert_int_equal(g.format, ASR_WFMT_GGML);
    asr_model_info_t info;
    assert_int_equal(asr__model_dims(&g, &info, err, sizeof err), 0);
    assert_memory_equal(&info, &t->src.info, offsetof(asr_model_info_t, multilingual));
    int n_mat = 0;
    float *a = NULL, *b = NULL;
    double worst = 0;
    for (int i = 0; i < g.n_vars; i++) {
        const asr_wvar_t *v = &g.vars[i], *s = asr_wfile_find(&t->f, v->name);
        if (!s)
            fail_msg("%s: not in tiny.en", v->name);
        assert_int_equal(v->n_elems, s->n_elems);
        assert_int_equal(v->rank, s->rank);
        if (v->dtype == ASR_WD_I32) { /* num_heads */
            assert_int_equal(*(const int32_t *)(const void *)v->data,
                             v->name[0] == 'e' ? info.n_audio_head : info.n_text_head);
            continue;
        }
        int64_t cols = v->rank >= 2 ? v->n_elems / v->dims[0] : v->n_elems;
        a = realloc(a, (size_t)v->n_elems * sizeof *a);
        b = realloc(b, (size_t)v->n_elems * sizeof *b);
        assert_int_equal(asr_wfile_decode_f32(&g, v, v->name, cols, 0, v->n_elems, a, err, 64), 0);
        assert_int_equal(asr_wfile_decode_f32(&t->f, s, v->name, cols, 0, v->n_elems, b, err, 64),
                         0);
        bool q = type == ASR_WW_INT8 && v->rank == 2 && !strstr(v->name, "position");
        n_mat += q;
        for (int64_t e = 0; e < v->n_elems; e++) {
            if (!q) {
                if (a[e] != b[e])
                    fail_msg("%s[%lld]: %g, source %g", v->name, (long long)e, a[e], b[e]);
                continue;
            }
            /* q8_0: half a step of max|block| / 127, the step's f16 rounding (127 steps of it),
             * then the float16 the front stores (and f16 subnormals' absolute steps) */
            int64_t b0 = e / 32 * 32;
            float amax = 0;
            for (int64_t j = b0; j < b0 + 32; j++)
                amax = fmaxf(amax, fabsf(b[j]));
            double bound = amax / 127.0 * (0.5 + 127.0 / 2048) + amax / 1024.0 + 5e-6;
            double diff = fabs((double)a[e] - b[e]);
            if (diff > bound)
                fail_msg("%s[%lld]: %g, source %g (bound %g)", v->name, (long long)e, a[e], b[e],
                         bound);
            if (amax > 0 && diff / amax > worst)
                worst = diff / amax;
        }
    }
    free(a);
    free(b);
    if (type == ASR_WW_INT8) {
        int want = 6 * info.n_audio_layer + 10 * info.n_text_layer + 1;
        assert_int_equal(n_mat, 4 * info.n_audio_layer + 7 * info.n_text_layer + 1);
        char note[160];
        snprintf(note, sizeof note, "ggml q8_0: %d matrices dequantized to float16 at load", want);
        assert_string_equal(g.note, note);
        assert_true(worst > 0); /* it did quantize */
    } else {
        assert_string_equal(g.note, "");
    }
    asr_wfile_free(&g);
}

static void test_tiny_f16(void **state) { roundtrip(state, ASR_WW_FLOAT16, "ggml-tiny.en.bin"); }
static void test_tiny_f32(void **state) {
    roundtrip(state, ASR_WW_FLOAT32, "ggml-tiny.en-f32.bin");
}
static void test_tiny_q8_0(void **state) { roundtrip(state, ASR_WW_INT8, "ggml-tiny.en-q8_0.bin"); }

/* The text of en_jfk.wav from the model at path. */
static char *transcribe(const char *path) {
    char err[512] = "";
    asr_model_t *m;
    if (asr_model_load(path, NULL, &m, err, sizeof err) != ASR_OK)
        fail_msg("load %s: %s", path, err);
    const char *src = getenv("ASR_SOURCE");
    char wav[4200];
    snprintf(wav, sizeof wav, "%s/tests/data/audio/en_jfk.wav", src ? src : ".");
    float *pcm;
    size_t n;
    assert_int_equal(asr_audio_load(wav, &pcm, &n, err, sizeof err), ASR_OK);
    asr_stream_t *s;
    assert_int_equal(asr_stream_create(m, &s), ASR_OK);
    asr_transcribe_params_t p = asr_transcribe_default_params();
    p.language = "en";
    assert_int_equal(asr_stream_transcribe(s, pcm, n, &p), ASR_OK);
    asr_buf_t b;
    asr_buf_init(&b);
    for (int i = 0; i < asr_stream_n_segments(s); i++)
        asr_buf_puts(&b, asr_stream_segment(s, i)->text);
    asr_stream_destroy(s);
    asr_model_destroy(m);
    free(pcm);
    return asr_buf_steal(&b);
}

/* The float16 file transcribes like the CTranslate2 directory it was written from. */
static void test_tiny_transcribe(void **state) {
    tiny_t *t = *state;
    char path[128], err[512] = "";
    snprintf(path, sizeof path, "%s/ggml-tiny.en.bin", t->dir);
    t->src.type = ASR_WW_FLOAT16;
    if (asr_ggml_write(&t->src, path, err, sizeof err) != ASR_OK)
        fail_msg("write: %s", err);
    char *want = transcribe(g_tiny), *got = transcribe(path);
    assert_true(strstr(want, "ask not what your country can do for you") != NULL);
    assert_string_equal(got, want);
    free(want);
    free(got);
}

int main(void) {
    const struct CMUnitTest built[] = {
        cmocka_unit_test(test_odd_shapes),   cmocka_unit_test(test_quantized),
        cmocka_unit_test(test_every_prefix), cmocka_unit_test(test_corrupt),
        cmocka_unit_test(test_corpus),       cmocka_unit_test(test_shapes_only),
    };
    int failed = cmocka_run_group_tests_name("ggml_built", built, NULL, NULL);
    if (!find_tiny()) {
        fprintf(stderr, "tiny.en not found ($ASRD_MODELS or ~/.cache/asrd/models): run `make "
                        "models`; skipping the tiny.en tests\n");
        return failed ? failed : 77;
    }
    asr_log_set_level(ASR_LOG_ERROR);
    const struct CMUnitTest tiny[] = {
        cmocka_unit_test(test_tiny_f16),
        cmocka_unit_test(test_tiny_f32),
        cmocka_unit_test(test_tiny_q8_0),
        cmocka_unit_test(test_tiny_transcribe),
    };
    return failed | cmocka_run_group_tests_name("ggml_tiny_en", tiny, tiny_setup, tiny_teardown);
}
