/* Unit tests of the safetensors front and writer (src/engine/safetensors*.c).
 *
 * Model-free tests always run: the header parser on images built here (valid ones, every
 * truncation, bad headers), and the Whisper table built from a small synthetic HF checkpoint whose
 * tensor names are spelled out here, independently of the front's own table (q/k/v fusion, zero k
 * bias, dtypes, WhisperModel names, the index of shards, config.json). The model tests write the
 * CTranslate2 tiny.en of $ASRD_MODELS (else /tmp/devmodels) as safetensors float16 and float32, by
 * hand into two shards, and read each back: every tensor equal. Without the model: exit 77 once
 * the model-free tests pass. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/core.h"
#include "engine/engine_int.h"
#include "engine/safetensors.h"
#include "engine/tokenizer.h"
#include "engine/wfile.h"
#include "engine/wwrite.h"
#include "nn/nn.h"

/* ---- building images ---- */

typedef struct {
    json_t *hdr;
    asr_buf_t data;
} img_t;

static void img_init(img_t *m) {
    m->hdr = json_object();
    json_object_set_new(m->hdr, "__metadata__", json_pack("{s:s}", "format", "pt"));
    asr_buf_init(&m->data);
}

static void img_add(img_t *m, const char *name, const char *dtype, int rank, const int64_t *dims,
                    const void *bytes, size_t n) {
    json_t *shape = json_array();
    for (int i = 0; i < rank; i++)
        json_array_append_new(shape, json_integer(dims[i]));
    json_object_set_new(m->hdr, name,
                        json_pack("{s:s,s:o,s:[I,I]}", "dtype", dtype, "shape", shape,
                                  "data_offsets", (json_int_t)m->data.len,
                                  (json_int_t)(m->data.len + n)));
    asr_buf_append(&m->data, bytes, n);
}

/* u64 length + header text + data; owned by caller. */
static uint8_t *raw_image(const char *hdr, size_t hl, const void *data, size_t dl, size_t *len) {
    uint8_t *p = malloc(8 + hl + dl + 1);
    assert_non_null(p);
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)((uint64_t)hl >> (8 * i));
    memcpy(p + 8, hdr, hl);
    if (dl)
        memcpy(p + 8 + hl, data, dl);
    *len = 8 + hl + dl;
    return p;
}

/* Frees m; the image, its header padded with spaces to a multiple of 8 as the reference library
 * does. */
static uint8_t *img_finish(img_t *m, size_t *len) {
    char *h = json_dumps(m->hdr, JSON_COMPACT);
    size_t hl = strlen(h), padded = (hl + 7) / 8 * 8;
    char *hp = malloc(padded);
    memcpy(hp, h, hl);
    memset(hp + hl, ' ', padded - hl);
    uint8_t *img = raw_image(hp, padded, m->data.data, m->data.len, len);
    free(h);
    free(hp);
    json_decref(m->hdr);
    asr_buf_free(&m->data);
    return img;
}

/* A value of tensor `name` (its name without prefix) at element i: small multiples of 1/8, exact
 * in float16 and bfloat16. */
static float val(const char *name, int64_t i) {
    uint32_t h = 2166136261u;
    for (const char *c = name; *c; c++)
        h = (h ^ (uint8_t)*c) * 16777619u;
    return (float)((int)((h + (uint32_t)i * 7u) % 29u) - 14) / 8.0f;
}

/* n values of `name` in dtype dt ("F32", "F16", "BF16" or "I64"); *bytes receives the size. */
static void *encode(const char *name, int64_t n, const char *dt, size_t *bytes) {
    uint8_t *out = calloc((size_t)n ? (size_t)n : 1, 8);
    float *f = calloc((size_t)n ? (size_t)n : 1, sizeof *f);
    for (int64_t i = 0; i < n; i++)
        f[i] = val(name, i);
    if (!strcmp(dt, "F32")) {
        memcpy(out, f, (size_t)n * 4);
        *bytes = (size_t)n * 4;
    } else if (!strcmp(dt, "F16")) {
        asr_nn_f2h_n(f, (uint16_t *)(void *)out, (size_t)n);
        *bytes = (size_t)n * 2;
    } else if (!strcmp(dt, "BF16")) {
        for (int64_t i = 0; i < n; i++) {
            uint32_t u;
            memcpy(&u, &f[i], 4);
            out[2 * i] = (uint8_t)(u >> 16);
            out[2 * i + 1] = (uint8_t)(u >> 24);
        }
        *bytes = (size_t)n * 2;
    } else { /* I64 */
        for (int64_t i = 0; i < n; i++) {
            int64_t x = (int64_t)f[i];
            memcpy(out + 8 * i, &x, 8);
        }
        *bytes = (size_t)n * 8;
    }
    free(f);
    return out;
}

/* ---- a synthetic Whisper checkpoint, HF names spelled out ---- */

enum { D = 8, MELS = 3, EPOS = 6, DPOS = 5, VOCAB = 11, ENC_L = 1, DEC_L = 2 };

typedef struct {
    const char *pre;     /* "model." or "" */
    const char *dtype;   /* of every tensor... */
    const char *q_dtype; /* ...but the self-attention q_proj.weight's (NULL: the same) */
    const char *omit;    /* a name (without prefix) left out */
    const char *i64;     /* a name (without prefix) written as I64 */
    int proj_out;        /* 0: none, 1: tied copy, 2: a different matrix */
    bool with_k_bias;    /* k_proj.bias saved too (some conversions do) */
} synth_t;

static void synth_one(img_t *m, const synth_t *o, const char *rel, int rank, int64_t d0, int64_t d1,
                      int64_t d2) {
    if (o->omit && !strcmp(rel, o->omit))
        return;
    int64_t dims[3] = {d0, d1, d2}, n = 1;
    for (int i = 0; i < rank; i++)
        n *= dims[i];
    const char *dt = o->dtype;
    if (o->i64 && !strcmp(rel, o->i64))
        dt = "I64";
    else if (o->q_dtype && strstr(rel, "self_attn.q_proj.weight"))
        dt = o->q_dtype;
    size_t bytes;
    /* a tied proj_out holds the token embedding's values */
    bool tied = !strcmp(rel, "proj_out.weight") && o->proj_out == 1;
    void *data = encode(tied ? "decoder.embed_tokens.weight" : rel, n, dt, &bytes);
    char name[256];
    snprintf(name, sizeof name, "%s%s", !strncmp(rel, "proj_out", 8) ? "" : o->pre, rel);
    img_add(m, name, dt, rank, dims, data, bytes);
    free(data);
}

static void synth_attn(img_t *m, const synth_t *o, const char *p, const char *attn) {
    static const char *const proj[4] = {"q_proj", "k_proj", "v_proj", "out_proj"};
    char n[256];
    for (int i = 0; i < 4; i++) {
        snprintf(n, sizeof n, "%s%s.%s.weight", p, attn, proj[i]);
        synth_one(m, o, n, 2, D, D, 0);
        snprintf(n, sizeof n, "%s%s.%s.bias", p, attn, proj[i]);
        if (i != 1 || o->with_k_bias)
            synth_one(m, o, n, 1, D, 0, 0);
    }
    snprintf(n, sizeof n, "%s%s_layer_norm.weight", p, attn);
    synth_one(m, o, n, 1, D, 0, 0);
    snprintf(n, sizeof n, "%s%s_layer_norm.bias", p, attn);
    synth_one(m, o, n, 1, D, 0, 0);
}

static void synth_layer(img_t *m, const synth_t *o, const char *stack, int l) {
    char p[64], n[256];
    snprintf(p, sizeof p, "%s.layers.%d.", stack, l);
    synth_attn(m, o, p, "self_attn");
    if (stack[0] == 'd')
        synth_attn(m, o, p, "encoder_attn");
    static const char *const tails[6] = {
        "fc1.weight",           "fc1.bias", "fc2.weight", "fc2.bias", "final_layer_norm.weight",
        "final_layer_norm.bias"};
    const int64_t shapes[6][2] = {{4 * D, D}, {4 * D, 0}, {D, 4 * D}, {D, 0}, {D, 0}, {D, 0}};
    for (int i = 0; i < 6; i++) {
        snprintf(n, sizeof n, "%s%s", p, tails[i]);
        synth_one(m, o, n, shapes[i][1] ? 2 : 1, shapes[i][0], shapes[i][1], 0);
    }
}

static uint8_t *synth(const synth_t *o, size_t *len) {
    img_t m;
    img_init(&m);
    synth_one(&m, o, "encoder.conv1.weight", 3, D, MELS, 3);
    synth_one(&m, o, "encoder.conv1.bias", 1, D, 0, 0);
    synth_one(&m, o, "encoder.conv2.weight", 3, D, D, 3);
    synth_one(&m, o, "encoder.conv2.bias", 1, D, 0, 0);
    synth_one(&m, o, "encoder.embed_positions.weight", 2, EPOS, D, 0);
    for (int l = 0; l < ENC_L; l++)
        synth_layer(&m, o, "encoder", l);
    synth_one(&m, o, "encoder.layer_norm.weight", 1, D, 0, 0);
    synth_one(&m, o, "encoder.layer_norm.bias", 1, D, 0, 0);
    synth_one(&m, o, "decoder.embed_tokens.weight", 2, VOCAB, D, 0);
    synth_one(&m, o, "decoder.embed_positions.weight", 2, DPOS, D, 0);
    for (int l = 0; l < DEC_L; l++)
        synth_layer(&m, o, "decoder", l);
    synth_one(&m, o, "decoder.layer_norm.weight", 1, D, 0, 0);
    synth_one(&m, o, "decoder.layer_norm.bias", 1, D, 0, 0);
    if (o->proj_out)
        synth_one(&m, o, "proj_out.weight", 2, VOCAB, D, 0);
    return img_finish(&m, len);
}

/* ---- files ---- */

static void put_file(const char *dir, const char *name, const void *data, size_t len) {
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static void put_text(const char *dir, const char *name, const char *text) {
    put_file(dir, name, text, strlen(text));
}

static uint8_t *get_file(const char *dir, const char *name, size_t *len) {
    char path[1200], *data = NULL;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    assert_int_equal(asr_read_file(path, &data, len), ASR_OK);
    return (uint8_t *)data;
}

static void make_tmp(char *dir) {
    snprintf(dir, 64, "/tmp/test_safetensors.XXXXXX");
    assert_non_null(mkdtemp(dir));
}

static void remove_tree(const char *dir) {
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* Writes img's tensors as two shards (alternating, in header order) into dir with
 * model.safetensors.index.json; `dup` puts the first tensor in both shards; `shard0` names the
 * first shard in the index (NULL: its own name). */
static void split_image(const uint8_t *img, size_t len, const char *dir, bool dup,
                        const char *shard0) {
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--)
        hl = hl << 8 | img[i];
    json_t *hdr = json_loadb((const char *)img + 8, (size_t)hl, 0, NULL);
    assert_non_null(hdr);
    const uint8_t *data = img + 8 + hl;
    img_t sh[2];
    img_init(&sh[0]);
    img_init(&sh[1]);
    json_t *map = json_object();
    const char *names[2] = {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"};
    const char *key;
    json_t *e;
    int i = 0;
    json_object_foreach(hdr, key, e) {
        if (!strcmp(key, "__metadata__"))
            continue;
        json_t *shape = json_object_get(e, "shape"), *off = json_object_get(e, "data_offsets");
        int64_t dims[4];
        int rank = (int)json_array_size(shape);
        for (int d = 0; d < rank; d++)
            dims[d] = json_integer_value(json_array_get(shape, d));
        json_int_t b = json_integer_value(json_array_get(off, 0));
        json_int_t en = json_integer_value(json_array_get(off, 1));
        const char *dt = json_string_value(json_object_get(e, "dtype"));
        for (int s = 0; s < 2; s++)
            if (s == i % 2 || (dup && i == 0))
                img_add(&sh[s], key, dt, rank, dims, data + b, (size_t)(en - b));
        json_object_set_new(map, key, json_string(i % 2 ? names[1] : shard0 ? shard0 : names[0]));
        i++;
    }
    for (int s = 0; s < 2; s++) {
        size_t n;
        uint8_t *p = img_finish(&sh[s], &n);
        put_file(dir, names[s], p, n);
        free(p);
    }
    json_t *index = json_pack("{s:{s:I},s:o}", "metadata", "total_size", (json_int_t)(len - 8 - hl),
                              "weight_map", map);
    char *text = json_dumps(index, JSON_INDENT(2));
    put_text(dir, "model.safetensors.index.json", text);
    free(text);
    json_decref(index);
    json_decref(hdr);
}

/* ---- the parser ---- */

static void test_parse_basic(void **state) {
    (void)state;
    img_t m;
    img_init(&m);
    size_t n;
    void *a = encode("a", 6, "F32", &n);
    img_add(&m, "a", "F32", 2, (int64_t[]){2, 3}, a, n);
    free(a);
    void *b = encode("b", 5, "F16", &n); /* odd size: the next tensor starts misaligned */
    img_add(&m, "b", "F16", 1, (int64_t[]){5}, b, n);
    free(b);
    void *c = encode("c", 1, "BF16", &n);
    img_add(&m, "c", "BF16", 0, NULL, c, n);
    free(c);
    void *i = encode("i", 2, "I64", &n);
    img_add(&m, "i", "I64", 1, (int64_t[]){2}, i, n);
    free(i);
    img_add(&m, "e", "F32", 2, (int64_t[]){0, 4}, "", 0);
    size_t len;
    uint8_t *img = img_finish(&m, &len);
    assert_int_equal((len - 8 - 0) % 2, 0);
    asr_wfile_t f = {0};
    char err[256] = "";
    assert_int_equal(asr_safetensors_parse(img, len, &f, err, sizeof err), ASR_OK);
    assert_int_equal(f.format, ASR_WFMT_SAFETENSORS);
    assert_int_equal(f.n_vars, 4); /* the I64 tensor is left out */
    assert_null(asr_wfile_find(&f, "i"));
    const char *names[3] = {"a", "b", "c"};
    const int64_t counts[3] = {6, 5, 1};
    const asr_wdtype_t types[3] = {ASR_WD_F32, ASR_WD_F16, ASR_WD_BF16};
    for (int k = 0; k < 3; k++) {
        const asr_wvar_t *v = asr_wfile_find(&f, names[k]);
        assert_non_null(v);
        assert_int_equal(v->dtype, types[k]);
        assert_int_equal(v->n_elems, counts[k]);
        assert_true(v->data > img && v->data + v->n_bytes <= img + len);
        float out[8];
        assert_int_equal(
            asr_wfile_decode_f32(&f, v, names[k], 1, 0, v->n_elems, out, err, sizeof err), 0);
        for (int64_t j = 0; j < v->n_elems; j++)
            assert_true(out[j] == val(names[k], j));
    }
    const asr_wvar_t *a2 = asr_wfile_find(&f, "a");
    assert_int_equal(a2->rank, 2);
    assert_int_equal(a2->dims[0], 2);
    assert_int_equal(a2->dims[1], 3);
    assert_int_equal(asr_wfile_find(&f, "e")->n_elems, 0);
    asr_wfile_free(&f);
    /* every truncation fails with a one-line reason (each a separate allocation: ASan sees any
     * read past its end) */
    for (size_t cut = 0; cut < len; cut++) {
        uint8_t *p = malloc(cut ? cut : 1);
        memcpy(p, img, cut);
        asr_wfile_t g = {0};
        err[0] = 0;
        asr_err_t rc = asr_safetensors_parse(p, cut, &g, err, sizeof err);
        if (rc != ASR_ERR_MODEL)
            fail_msg("truncated to %zu of %zu bytes: rc %d", cut, len, rc);
        assert_true(err[0] && !strchr(err, '\n'));
        asr_wfile_free(&g);
        free(p);
    }
    free(img);
}

static void expect_bad_image(const uint8_t *img, size_t len, const char *needle) {
    asr_wfile_t f = {0};
    char err[256] = "";
    asr_err_t rc = asr_safetensors_parse(img, len, &f, err, sizeof err);
    asr_wfile_free(&f);
    if (rc != ASR_ERR_MODEL || !strstr(err, needle) || strchr(err, '\n'))
        fail_msg("rc %d, message '%s' lacks '%s'", rc, err, needle);
}

static void expect_bad(const char *hdr, size_t data_len, const char *needle) {
    uint8_t zeros[64] = {0};
    size_t len;
    uint8_t *img = raw_image(hdr, strlen(hdr), zeros, data_len, &len);
    expect_bad_image(img, len, needle);
    free(img);
}

#define T(shape, off) "{\"dtype\":\"F32\",\"shape\":" shape ",\"data_offsets\":" off "}"

static void test_bad_headers(void **state) {
    (void)state;
    expect_bad("{\"a\":" T("[4]", "[0,16]") "}", 8, "ends at byte 16");
    expect_bad("{\"a\":" T("[3]", "[0,8]") "}", 8, "needs 12");
    expect_bad("{\"a\":" T("[2]", "[8,0]") "}", 8, "bad data_offsets");
    expect_bad("{\"a\":" T("[2]", "[0.0,8]") "}", 8, "bad data_offsets");
    expect_bad("{\"a\":" T("[2]", "[0]") "}", 8, "lacks dtype");
    expect_bad("{\"a\":" T("[-2]", "[0,8]") "}", 8, "bad or too large shape");
    expect_bad("{\"a\":" T("[1099511627776,1099511627776]", "[0,8]") "}", 8, "too large");
    expect_bad("{\"a\":" T("[1,1,1,1,2]", "[0,8]") "}", 8, "rank 5");
    expect_bad("{\"a\":" T("[2]", "[0,8]") ",\"b\":" T("[2]", "[4,12]") "}", 16, "overlap");
    expect_bad("{\"a\":" T("[2]", "[0,8]") ",\"a\":" T("[2]", "[0,8]") "}", 8, "not valid JSON");
    expect_bad("{\"\":" T("[2]", "[0,8]") "}", 8, "name");
    expect_bad("{\"a\":{\"dtype\":\"F12\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
               "unknown dtype \"F12\"");
    expect_bad("{\"a\":{\"dtype\":7,\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "lacks dtype");
    expect_bad("{\"a\":[]}", 0, "lacks dtype");
    expect_bad("{\"__metadata__\":{\"format\":1}}", 0, "__metadata__");
    expect_bad("{\"__metadata__\":[]}", 0, "__metadata__");
    expect_bad("{\"a\":", 0, "not valid JSON");
    expect_bad("[1, 2]", 0, "not a JSON object");
    size_t len;
    uint8_t *img = raw_image("{}\0garbage", 10, NULL, 0, &len);
    expect_bad_image(img, len, "not valid JSON");
    free(img);
    /* header lengths: larger than the file, zero, absurd */
    uint8_t h[16] = {0xe8, 0x03, 0, 0, 0, 0, 0, 0, '{', '}'};
    expect_bad_image(h, 10, "truncated");
    memset(h, 0, 8);
    expect_bad_image(h, 10, "implausible");
    h[7] = 0x40;
    expect_bad_image(h, 16, "implausible");
    expect_bad_image(h, 5, "truncated");
    /* a Whisper-like name with an integer dtype is parsed (and left out), not an error */
    const char *i64 = "{\"n\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}}";
    img = raw_image(i64, strlen(i64), "\1\0\0\0\0\0\0\0", 8, &len);
    asr_wfile_t f = {0};
    char err[256];
    assert_int_equal(asr_safetensors_parse(img, len, &f, err, sizeof err), ASR_OK);
    assert_int_equal(f.n_vars, 0);
    asr_wfile_free(&f);
    free(img);
}

/* ---- the Whisper table from a synthetic checkpoint ---- */

/* CT2 tensor `ct2` of f holds the row blocks parts[0..n) (HF names without prefix; NULL: zeros;
 * `rows` rows each) exactly, in dtype dt. */
static void expect_tensor(const asr_wfile_t *f, const char *ct2, const char *const *parts, int n,
                          int64_t rows, asr_wdtype_t dt) {
    const asr_wvar_t *v = asr_wfile_find(f, ct2);
    if (!v)
        fail_msg("no %s", ct2);
    if (v->dtype != dt)
        fail_msg("%s: dtype %d, expected %d", ct2, v->dtype, dt);
    int64_t per = v->n_elems / n;
    assert_int_equal(v->dims[0], rows * n);
    float *out = malloc((size_t)v->n_elems * sizeof *out);
    char err[256];
    assert_int_equal(
        asr_wfile_decode_f32(f, v, ct2, per / rows, 0, v->n_elems, out, err, sizeof err), 0);
    for (int p = 0; p < n; p++)
        for (int64_t j = 0; j < per; j++) {
            float want = parts[p] ? val(parts[p], j) : 0.0f;
            if (out[p * per + j] != want)
                fail_msg("%s[%lld] = %g, expected %g (%s)", ct2, (long long)(p * per + j),
                         out[p * per + j], want, parts[p] ? parts[p] : "zero");
        }
    free(out);
}

static void expect_heads(const asr_wfile_t *f, const char *name, int want) {
    const asr_wvar_t *v = asr_wfile_find(f, name);
    assert_non_null(v);
    assert_int_equal(v->dtype, ASR_WD_I32);
    int32_t h;
    memcpy(&h, v->data, 4);
    assert_int_equal(h, want);
}

static void check_synth_table(const asr_wfile_t *f, asr_wdtype_t dt, asr_wdtype_t qkv_dt,
                              bool k_bias) {
    /* conv, 7 encoder + 4 decoder own tensors, 12 per encoder layer, 20 per decoder layer, heads */
    assert_int_equal(f->n_vars, 7 + 12 * ENC_L + 4 + 20 * DEC_L + 2);
    expect_tensor(f, "encoder/conv1/weight", (const char *[]){"encoder.conv1.weight"}, 1, D, dt);
    assert_int_equal(asr_wfile_find(f, "encoder/conv1/weight")->rank, 3);
    assert_int_equal(asr_wfile_find(f, "encoder/conv1/weight")->dims[1], MELS);
    expect_tensor(f, "encoder/conv2/bias", (const char *[]){"encoder.conv2.bias"}, 1, D, dt);
    expect_tensor(f, "encoder/position_encodings/encodings",
                  (const char *[]){"encoder.embed_positions.weight"}, 1, EPOS, dt);
    expect_tensor(f, "encoder/layer_norm/gamma", (const char *[]){"encoder.layer_norm.weight"}, 1,
                  D, dt);
    expect_tensor(f, "decoder/layer_norm/beta", (const char *[]){"decoder.layer_norm.bias"}, 1, D,
                  dt);
    expect_tensor(f, "decoder/embeddings/weight", (const char *[]){"decoder.embed_tokens.weight"},
                  1, VOCAB, dt);
    expect_tensor(f, "decoder/position_encodings/encodings",
                  (const char *[]){"decoder.embed_positions.weight"}, 1, DPOS, dt);
    expect_tensor(f, "encoder/layer_0/self_attention/linear_0/weight",
                  (const char *[]){"encoder.layers.0.self_attn.q_proj.weight",
                                   "encoder.layers.0.self_attn.k_proj.weight",
                                   "encoder.layers.0.self_attn.v_proj.weight"},
                  3, D, qkv_dt);
    expect_tensor(f, "encoder/layer_0/self_attention/linear_0/bias",
                  (const char *[]){"encoder.layers.0.self_attn.q_proj.bias",
                                   k_bias ? "encoder.layers.0.self_attn.k_proj.bias" : NULL,
                                   "encoder.layers.0.self_attn.v_proj.bias"},
                  3, D, dt);
    expect_tensor(f, "encoder/layer_0/self_attention/linear_1/weight",
                  (const char *[]){"encoder.layers.0.self_attn.out_proj.weight"}, 1, D, dt);
    expect_tensor(f, "encoder/layer_0/self_attention/layer_norm/gamma",
                  (const char *[]){"encoder.layers.0.self_attn_layer_norm.weight"}, 1, D, dt);
    expect_tensor(f, "encoder/layer_0/ffn/linear_0/weight",
                  (const char *[]){"encoder.layers.0.fc1.weight"}, 1, 4 * D, dt);
    expect_tensor(f, "encoder/layer_0/ffn/linear_1/bias",
                  (const char *[]){"encoder.layers.0.fc2.bias"}, 1, D, dt);
    expect_tensor(f, "encoder/layer_0/ffn/layer_norm/beta",
                  (const char *[]){"encoder.layers.0.final_layer_norm.bias"}, 1, D, dt);
    expect_tensor(f, "decoder/layer_1/self_attention/linear_0/weight",
                  (const char *[]){"decoder.layers.1.self_attn.q_proj.weight",
                                   "decoder.layers.1.self_attn.k_proj.weight",
                                   "decoder.layers.1.self_attn.v_proj.weight"},
                  3, D, qkv_dt);
    expect_tensor(f, "decoder/layer_1/attention/layer_norm/gamma",
                  (const char *[]){"decoder.layers.1.encoder_attn_layer_norm.weight"}, 1, D, dt);
    expect_tensor(f, "decoder/layer_1/attention/linear_0/weight",
                  (const char *[]){"decoder.layers.1.encoder_attn.q_proj.weight"}, 1, D, dt);
    expect_tensor(f, "decoder/layer_1/attention/linear_0/bias",
                  (const char *[]){"decoder.layers.1.encoder_attn.q_proj.bias"}, 1, D, dt);
    expect_tensor(f, "decoder/layer_1/attention/linear_1/weight",
                  (const char *[]){"decoder.layers.1.encoder_attn.k_proj.weight",
                                   "decoder.layers.1.encoder_attn.v_proj.weight"},
                  2, D, dt);
    expect_tensor(f, "decoder/layer_1/attention/linear_1/bias",
                  (const char *[]){k_bias ? "decoder.layers.1.encoder_attn.k_proj.bias" : NULL,
                                   "decoder.layers.1.encoder_attn.v_proj.bias"},
                  2, D, dt);
    expect_tensor(f, "decoder/layer_1/attention/linear_2/weight",
                  (const char *[]){"decoder.layers.1.encoder_attn.out_proj.weight"}, 1, D, dt);
    expect_tensor(f, "decoder/layer_0/ffn/linear_1/weight",
                  (const char *[]){"decoder.layers.0.fc2.weight"}, 1, D, dt);
    expect_heads(f, "encoder/num_heads", 2);
    expect_heads(f, "decoder/num_heads", 3);
}

static asr_err_t build_synth(const synth_t *o, asr_wfile_t *f, char *err, size_t el,
                             uint8_t **img) {
    size_t len;
    *img = synth(o, &len);
    memset(f, 0, sizeof *f);
    return asr__safetensors_whisper(*img, len, 2, 3, f, err, el);
}

static void test_whisper_table(void **state) {
    (void)state;
    static const char *const dts[3] = {"F32", "F16", "BF16"};
    static const asr_wdtype_t wds[3] = {ASR_WD_F32, ASR_WD_F16, ASR_WD_BF16};
    for (int t = 0; t < 3; t++)
        for (int pre = 0; pre < 2; pre++) {
            synth_t o = {.pre = pre ? "" : "model.", .dtype = dts[t], .proj_out = pre ? 0 : 1};
            asr_wfile_t f;
            char err[512] = "";
            uint8_t *img;
            asr_err_t rc = build_synth(&o, &f, err, sizeof err, &img);
            if (rc != ASR_OK)
                fail_msg("%s %s: %s", dts[t], o.pre, err);
            assert_int_equal(f.format, ASR_WFMT_SAFETENSORS);
            check_synth_table(&f, wds[t], wds[t], false);
            asr_wfile_free(&f);
            free(img);
        }
    /* the tied pair saved under proj_out.weight alone */
    synth_t po = {
        .pre = "model.", .dtype = "F16", .proj_out = 1, .omit = "decoder.embed_tokens.weight"};
    asr_wfile_t g;
    char e2[512] = "";
    uint8_t *im;
    if (build_synth(&po, &g, e2, sizeof e2, &im) != ASR_OK)
        fail_msg("proj_out alone: %s", e2);
    check_synth_table(&g, ASR_WD_F16, ASR_WD_F16, false);
    asr_wfile_free(&g);
    free(im);
    /* parts of different dtypes fuse as float32; a saved k bias is kept */
    synth_t o = {.pre = "model.", .dtype = "F16", .q_dtype = "F32", .with_k_bias = true};
    asr_wfile_t f;
    char err[512] = "";
    uint8_t *img;
    assert_int_equal(build_synth(&o, &f, err, sizeof err, &img), ASR_OK);
    check_synth_table(&f, ASR_WD_F16, ASR_WD_F32, true);
    asr_wfile_free(&f);
    free(img);
}

static void expect_synth_error(const synth_t *o, const char *needle) {
    asr_wfile_t f;
    char err[512] = "";
    uint8_t *img;
    asr_err_t rc = build_synth(o, &f, err, sizeof err, &img);
    asr_wfile_free(&f);
    free(img);
    if (rc != ASR_ERR_MODEL || !strstr(err, needle) || strchr(err, '\n'))
        fail_msg("rc %d, message '%s' lacks '%s'", rc, err, needle);
}

static void test_whisper_errors(void **state) {
    (void)state;
    expect_synth_error(
        &(synth_t){.pre = "model.", .dtype = "F16", .omit = "decoder.layers.1.fc2.weight"},
        "missing tensor model.decoder.layers.1.fc2.weight");
    expect_synth_error(&(synth_t){.pre = "", .dtype = "F16", .omit = "encoder.conv2.bias"},
                       "missing tensor encoder.conv2.bias");
    expect_synth_error(&(synth_t){.pre = "model.", .dtype = "F32", .i64 = "encoder.conv1.weight"},
                       "model.encoder.conv1.weight has dtype I64");
    expect_synth_error(&(synth_t){.pre = "model.",
                                  .dtype = "F32",
                                  .i64 = "decoder.layers.0.self_attn.v_proj.bias"},
                       "v_proj.bias has dtype I64");
    expect_synth_error(&(synth_t){.pre = "model.", .dtype = "F16", .proj_out = 2}, "untied");
    expect_synth_error(
        &(synth_t){.pre = "model.", .dtype = "F16", .omit = "decoder.embed_tokens.weight"},
        "missing tensor model.decoder.embed_tokens.weight");
    expect_synth_error(
        &(synth_t){.pre = "model.", .dtype = "F16", .omit = "encoder.layers.0.fc1.weight"},
        "no encoder layers");
    /* a checkpoint of another architecture */
    img_t m;
    img_init(&m);
    img_add(&m, "bert.embeddings.weight", "F32", 1, (int64_t[]){1}, "\0\0\0\0", 4);
    size_t len;
    uint8_t *img = img_finish(&m, &len);
    asr_wfile_t f = {0};
    char err[512];
    assert_int_equal(asr__safetensors_whisper(img, len, 1, 1, &f, err, sizeof err), ASR_ERR_MODEL);
    assert_non_null(strstr(err, "missing tensor model.encoder.conv1.weight"));
    asr_wfile_free(&f);
    free(img);
}

/* The synthetic checkpoint every truncation of it: a clean error each time (the header region
 * byte by byte, the data at a stride). */
static void test_whisper_truncations(void **state) {
    (void)state;
    synth_t o = {.pre = "model.", .dtype = "F16"};
    size_t len;
    uint8_t *img = synth(&o, &len);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--)
        hl = hl << 8 | img[i];
    for (size_t cut = 0; cut < len; cut += cut < 8 + hl + 64 ? 1 : 61) {
        uint8_t *p = malloc(cut ? cut : 1);
        memcpy(p, img, cut);
        asr_wfile_t f = {0};
        char err[512] = "";
        asr_err_t rc = asr__safetensors_whisper(p, cut, 2, 3, &f, err, sizeof err);
        if (rc != ASR_ERR_MODEL || !err[0])
            fail_msg("cut at %zu of %zu: rc %d '%s'", cut, len, rc, err);
        asr_wfile_free(&f);
        free(p);
    }
    free(img);
}

/* The fuzz seeds reach what they were made for: the Whisper ones build a table (the fusion paths),
 * the broken ones fail with their reason. */
static void test_corpus_seeds(void **state) {
    (void)state;
    static const struct {
        const char *name, *needle; /* NULL: builds */
    } seeds[] = {
        {"whisper_f16", NULL},
        {"whisper_bare_bf16", NULL},
        {"whisper_mixed_f32_q", NULL},
        {"whisper_i32_conv", "has dtype I32"},
        {"truncated_data", "truncated file"},
        {"truncated_header", "truncated"},
        {"bad_offsets", "ends at byte 16"},
        {"overlap", "overlap"},
        {"duplicate", "not valid JSON"},
    };
    const char *src = getenv("ASR_SOURCE");
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/tests/fuzz/corpus/safetensors", src && *src ? src : ".");
    for (size_t i = 0; i < sizeof seeds / sizeof *seeds; i++) {
        size_t len;
        uint8_t *img = get_file(dir, seeds[i].name, &len);
        asr_wfile_t f = {0};
        char err[512] = "";
        asr_err_t rc = asr__safetensors_whisper(img, len, 2, 2, &f, err, sizeof err);
        if (seeds[i].needle ? rc != ASR_ERR_MODEL || !strstr(err, seeds[i].needle) : rc != ASR_OK)
            fail_msg("seed %s: rc %d '%s'", seeds[i].name, rc, err);
        asr_wfile_free(&f);
        free(img);
    }
}

/* ---- files: asr_wfile_open on directories, files and indexes ---- */

static asr_err_t open_path(const char *dir, const char *name, asr_wfile_t *f, char *err,
                           size_t el) {
    char path[1200];
    snprintf(path, sizeof path, name ? "%s/%s" : "%s", dir, name);
    return asr_wfile_open(path, f, NULL, err, el);
}

static void expect_open_error(const char *dir, const char *name, const char *needle) {
    asr_wfile_t f;
    char err[1024] = "";
    asr_err_t rc = open_path(dir, name, &f, err, sizeof err);
    if (rc != ASR_ERR_MODEL || !strstr(err, needle) || strchr(err, '\n'))
        fail_msg("%s/%s: rc %d, message '%s' lacks '%s'", dir, name ? name : "", rc, err, needle);
}

static const char *CONFIG = "{\"encoder_attention_heads\": 2, \"decoder_attention_heads\": 3}";

static void test_open_files(void **state) {
    (void)state;
    char dir[64];
    make_tmp(dir);
    synth_t o = {.pre = "model.", .dtype = "BF16"};
    size_t len;
    uint8_t *img = synth(&o, &len);
    put_file(dir, "model.safetensors", img, len);
    expect_open_error(dir, NULL, "config.json");
    put_text(dir, "config.json", "{\"d_model\": 8}");
    expect_open_error(dir, NULL, "lacks encoder_attention_heads");
    put_text(dir, "config.json", CONFIG);
    const char *paths[2] = {NULL, "model.safetensors"};
    for (int i = 0; i < 2; i++) {
        asr_wfile_t f;
        char err[1024] = "", mdir[4096] = "";
        char path[1200];
        snprintf(path, sizeof path, paths[i] ? "%s/%s" : "%s", dir, paths[i]);
        if (asr_wfile_open(path, &f, mdir, err, sizeof err) != ASR_OK)
            fail_msg("%s: %s", path, err);
        assert_string_equal(mdir, dir);
        assert_int_equal(f.format, ASR_WFMT_SAFETENSORS);
        check_synth_table(&f, ASR_WD_BF16, ASR_WD_BF16, false);
        asr_wfile_free(&f);
    }
    /* the same tensors in two shards */
    char sdir[64];
    make_tmp(sdir);
    put_text(sdir, "config.json", CONFIG);
    split_image(img, len, sdir, false, NULL);
    for (int i = 0; i < 2; i++) {
        asr_wfile_t f;
        char err[1024] = "";
        if (open_path(sdir, i ? "model.safetensors.index.json" : NULL, &f, err, sizeof err))
            fail_msg("%s: %s", sdir, err);
        assert_int_equal(f.n_maps, 2);
        check_synth_table(&f, ASR_WD_BF16, ASR_WD_BF16, false);
        asr_wfile_free(&f);
    }
    /* bad indexes */
    split_image(img, len, sdir, true, NULL);
    expect_open_error(sdir, NULL, "is in two shards");
    split_image(img, len, sdir, false, "../model.safetensors");
    expect_open_error(sdir, NULL, "bad shard");
    split_image(img, len, sdir, false, "missing.safetensors");
    expect_open_error(sdir, NULL, "missing.safetensors");
    put_text(sdir, "model.safetensors.index.json",
             "{\"weight_map\": {\"x\": "
             "\"model-00001-of-00002.safetensors\"}}");
    expect_open_error(sdir, NULL, "tensor x of weight_map is in no shard");
    put_text(sdir, "model.safetensors.index.json", "{\"metadata\": {}}");
    expect_open_error(sdir, NULL, "no weight_map");
    put_text(sdir, "model.safetensors.index.json", "{\"weight_map\": ");
    expect_open_error(sdir, NULL, "not valid JSON");
    /* a truncated file names itself */
    put_file(dir, "model.safetensors", img, len - 100);
    expect_open_error(dir, NULL, "model.safetensors: tensor");
    put_file(dir, "model.safetensors", img, 12);
    expect_open_error(dir, NULL, "model.safetensors: safetensors file is truncated");
    free(img);
    remove_tree(dir);
    remove_tree(sdir);
}

/* ---- tiny.en written and read back ---- */

static char g_tiny[1024];

static bool find_tiny(void) {
    const char *env = getenv("ASRD_MODELS");
    const char *roots[2] = {env && *env ? env : NULL, "/tmp/devmodels"};
    for (int r = 0; r < 2; r++) {
        struct stat st;
        if (!roots[r])
            continue;
        snprintf(g_tiny, sizeof g_tiny, "%s/tiny.en", roots[r]);
        if (stat(g_tiny, &st) == 0 && S_ISDIR(st.st_mode))
            return true;
    }
    return false;
}

typedef struct {
    asr_wfile_t f;
    asr_tokenizer_t *tok;
    asr_wwrite_src_t s;
} source_t;

static void source_open(source_t *S) {
    char err[1024] = "";
    memset(S, 0, sizeof *S);
    if (asr_wfile_open(g_tiny, &S->f, NULL, err, sizeof err) != ASR_OK)
        fail_msg("%s", err);
    S->s.f = &S->f;
    assert_int_equal(asr__model_dims(&S->f, &S->s.info, err, sizeof err), 0);
    if (asr_tokenizer_load(g_tiny, S->s.info.n_vocab, &S->tok, err, sizeof err) != ASR_OK)
        fail_msg("%s", err);
    S->s.tok = S->tok;
    /* the alignment heads of the model's config.json */
    char path[1200];
    snprintf(path, sizeof path, "%s/config.json", g_tiny);
    json_t *cfg = json_load_file(path, 0, NULL);
    size_t i;
    json_t *pair;
    json_array_foreach(json_object_get(cfg, "alignment_heads"), i, pair) {
        S->s.alignment_heads[i][0] = (int)json_integer_value(json_array_get(pair, 0));
        S->s.alignment_heads[i][1] = (int)json_integer_value(json_array_get(pair, 1));
        S->s.n_alignment_heads++;
    }
    json_decref(cfg);
    assert_int_equal(S->s.n_alignment_heads, 8);
}

static void source_close(source_t *S) {
    asr_tokenizer_destroy(S->tok);
    asr_wfile_free(&S->f);
}

/* Every float tensor of src (CT2 names) is in g with the same shape and values, and g holds
 * nothing else but the head counts. */
static void expect_same_tables(const asr_wfile_t *src, const asr_wfile_t *g, asr_wdtype_t dt) {
    int n = 0;
    char err[256];
    for (int i = 0; i < src->n_vars; i++) {
        const asr_wvar_t *a = &src->vars[i];
        if (a->rank == 0 || (a->dtype != ASR_WD_F16 && a->dtype != ASR_WD_F32))
            continue;
        const asr_wvar_t *b = asr_wfile_find(g, a->name);
        if (!b)
            fail_msg("%s is missing after the round trip", a->name);
        assert_int_equal(b->dtype, dt);
        assert_int_equal(b->rank, a->rank);
        for (int d = 0; d < a->rank; d++)
            assert_int_equal(b->dims[d], a->dims[d]);
        float *x = malloc((size_t)a->n_elems * 4), *y = malloc((size_t)a->n_elems * 4);
        int64_t cols = a->n_elems / a->dims[0];
        assert_int_equal(asr_wfile_decode_f32(src, a, a->name, cols, 0, a->n_elems, x, err, 256),
                         0);
        assert_int_equal(asr_wfile_decode_f32(g, b, b->name, cols, 0, a->n_elems, y, err, 256), 0);
        if (memcmp(x, y, (size_t)a->n_elems * 4) != 0)
            fail_msg("%s differs after the round trip", a->name);
        free(x);
        free(y);
        n++;
    }
    assert_int_equal(g->n_vars, n + 2);
    assert_true(n > 100);
    expect_heads(g, "encoder/num_heads", 6);
    expect_heads(g, "decoder/num_heads", 6);
}

static json_t *load_json(const char *dir, const char *name) {
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    json_t *j = json_load_file(path, 0, NULL);
    if (!j)
        fail_msg("%s is not JSON", path);
    return j;
}

static long long json_int(const json_t *o, const char *key) {
    const json_t *v = json_object_get(o, key);
    if (!json_is_integer(v))
        fail_msg("no integer %s", key);
    return json_integer_value(v);
}

/* The JSON files transformers reads, with tiny.en's sizes and tokens. */
static void expect_configs(const char *dir, bool f16) {
    json_t *c = load_json(dir, "config.json");
    assert_string_equal(json_string_value(json_object_get(c, "model_type")), "whisper");
    assert_int_equal(json_int(c, "d_model"), 384);
    assert_int_equal(json_int(c, "encoder_layers"), 4);
    assert_int_equal(json_int(c, "decoder_layers"), 4);
    assert_int_equal(json_int(c, "encoder_attention_heads"), 6);
    assert_int_equal(json_int(c, "encoder_ffn_dim"), 1536);
    assert_int_equal(json_int(c, "num_mel_bins"), 80);
    assert_int_equal(json_int(c, "vocab_size"), 51864);
    assert_int_equal(json_int(c, "max_target_positions"), 448);
    assert_int_equal(json_int(c, "decoder_start_token_id"), 50257);
    assert_int_equal(json_int(c, "eos_token_id"), 50256);
    assert_true(json_is_true(json_object_get(c, "tie_word_embeddings")));
    assert_string_equal(json_string_value(json_object_get(c, "torch_dtype")),
                        f16 ? "float16" : "float32");
    json_decref(c);
    json_t *g = load_json(dir, "generation_config.json");
    assert_int_equal(json_array_size(json_object_get(g, "alignment_heads")), 8);
    assert_int_equal(json_int(g, "no_timestamps_token_id"), 50362);
    assert_true(json_is_false(json_object_get(g, "is_multilingual")));
    assert_null(json_object_get(g, "lang_to_id"));
    json_t *bs = json_object_get(g, "begin_suppress_tokens");
    assert_int_equal(json_array_size(bs), 2);
    assert_int_equal(json_integer_value(json_array_get(bs, 0)), 220);
    assert_true(json_array_size(json_object_get(g, "suppress_tokens")) > 80);
    json_decref(g);
    json_t *p = load_json(dir, "preprocessor_config.json");
    assert_int_equal(json_int(p, "feature_size"), 80);
    assert_int_equal(json_int(p, "sampling_rate"), 16000);
    json_decref(p);
}

/* The tokenizer files written load back to the same tokens. */
static void expect_same_tokenizer(const asr_tokenizer_t *tok, const char *dir, int n_vocab) {
    asr_tokenizer_t *t2 = NULL;
    char err[1024];
    if (asr_tokenizer_load(dir, n_vocab, &t2, err, sizeof err) != ASR_OK)
        fail_msg("tokenizer of %s: %s", dir, err);
    for (int32_t id = 0; id < n_vocab; id++) {
        size_t a, b;
        const char *x = asr_tokenizer_token_bytes(tok, id, &a);
        const char *y = asr_tokenizer_token_bytes(t2, id, &b);
        if (a != b || memcmp(x, y, a))
            fail_msg("token %d differs", id);
    }
    assert_int_equal(asr_tokenizer_n_merges(t2), asr_tokenizer_n_merges(tok));
    assert_memory_equal(asr_tokenizer_special(t2), asr_tokenizer_special(tok),
                        sizeof(asr_special_tokens_t));
    asr_tokenizer_destroy(t2);
}

static void test_tiny_roundtrip(void **state) {
    (void)state;
    source_t S;
    source_open(&S);
    char err[1024] = "";
    S.s.type = ASR_WW_INT8;
    assert_int_equal(asr_safetensors_write(&S.s, "/nonexistent", err, sizeof err), ASR_ERR_INVALID);
    assert_non_null(strstr(err, "no int8 layout"));
    for (int t = 0; t < 2; t++) {
        bool f16 = t == 0;
        char dir[64], sdir[64];
        make_tmp(dir);
        S.s.type = f16 ? ASR_WW_FLOAT16 : ASR_WW_FLOAT32;
        if (asr_safetensors_write(&S.s, dir, err, sizeof err) != ASR_OK)
            fail_msg("write: %s", err);
        expect_configs(dir, f16);
        asr_wfile_t g;
        if (asr_wfile_open(dir, &g, NULL, err, sizeof err) != ASR_OK)
            fail_msg("read back: %s", err);
        expect_same_tables(&S.f, &g, f16 ? ASR_WD_F16 : ASR_WD_F32);
        asr_wfile_free(&g);
        expect_same_tokenizer(S.tok, dir, S.s.info.n_vocab);
        char a[128], b[128]; /* the slow files alone: vocab.json + merges.txt + added_tokens */
        snprintf(a, sizeof a, "%s/tokenizer.json", dir);
        snprintf(b, sizeof b, "%s/tokenizer.json.away", dir);
        assert_int_equal(rename(a, b), 0);
        expect_same_tokenizer(S.tok, dir, S.s.info.n_vocab);
        assert_int_equal(rename(b, a), 0);
        /* generation_config.json's alignment heads reach the model (config.json has none) */
        assert_int_equal(asr__model_count_alignment_heads(dir, &S.s.info), 8);
        /* the same by hand in two shards */
        make_tmp(sdir);
        size_t len;
        uint8_t *img = get_file(dir, "model.safetensors", &len);
        split_image(img, len, sdir, false, NULL);
        free(img);
        uint8_t *cfg = get_file(dir, "config.json", &len);
        put_file(sdir, "config.json", cfg, len);
        free(cfg);
        if (asr_wfile_open(sdir, &g, NULL, err, sizeof err) != ASR_OK)
            fail_msg("shards: %s", err);
        expect_same_tables(&S.f, &g, f16 ? ASR_WD_F16 : ASR_WD_F32);
        asr_wfile_free(&g);
        remove_tree(sdir);
        remove_tree(dir);
    }
    source_close(&S);
}

int main(void) {
    const struct CMUnitTest basic[] = {
        cmocka_unit_test(test_parse_basic),         cmocka_unit_test(test_bad_headers),
        cmocka_unit_test(test_whisper_table),       cmocka_unit_test(test_whisper_errors),
        cmocka_unit_test(test_whisper_truncations), cmocka_unit_test(test_open_files),
        cmocka_unit_test(test_corpus_seeds),
    };
    const struct CMUnitTest models[] = {
        cmocka_unit_test(test_tiny_roundtrip),
    };
    int failed = cmocka_run_group_tests_name("safetensors_basic", basic, NULL, NULL);
    if (!find_tiny()) {
        fprintf(stderr, "tiny.en not found ($ASRD_MODELS or /tmp/devmodels): skipping model "
                        "tests\n");
        return failed ? failed : 77;
    }
    return failed + cmocka_run_group_tests_name("safetensors_models", models, NULL, NULL);
}
