/* Unit tests: the CTranslate2 writer (ct2_write.c) and the random-weight models
 * (random_model.c), read back through the CT2 parser and the tokenizer loader.
 *
 *  - built in memory (always): a random tiny model written as float16, float32 and int8 and
 *    parsed back (every tensor equal: float16 bytes exact, float32 the same values, int8 within
 *    half a quantization step of each row, a zero row's scale 1); the header, scalars and alias
 *    CTranslate2 writes; 128 mel bins give preprocessor_config.json feature_size 128; the same
 *    seed gives the same tensors and another seed others; a missing tensor and an unwritable
 *    directory are one-line errors.
 *  - the real tiny.en ($ASRD_MODELS or ~/.cache/asrd/models; exit 77 when absent,
 *    after the built-in tests): written as float16 it is the same variables with the same bytes
 *    (plus the scalars newer converters add), config.json keeps the model's alignment heads and
 *    suppress_ids, and the vocabulary written loads back to the same token strings. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/core.h"
#include "engine/random_model.h"
#include "engine/wsource.h"
#include "nn/nn.h"

static char *make_tmp(void) {
    char *d = asr_xstrdup("/tmp/test_ct2_write.XXXXXX");
    assert_non_null(mkdtemp(d));
    return d;
}

static void remove_dir(const char *d) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
    assert_int_equal(system(cmd), 0);
}

/* Writes src as `type` into a new temporary directory and parses its model.bin into *out. */
static char *write_and_read(asr_wwrite_src_t *src, asr_ww_type_t type, asr_wfile_t *out) {
    char *dir = make_tmp();
    char err[512] = "";
    src->type = type;
    asr_err_t rc = asr_ct2_write(src, dir, err, sizeof err);
    if (rc != ASR_OK)
        fail_msg("asr_ct2_write: %s", err);
    rc = asr_wfile_open(dir, out, NULL, err, sizeof err);
    if (rc != ASR_OK)
        fail_msg("reading back: %s", err);
    return dir;
}

static int scalar(const asr_wfile_t *f, const char *name, asr_wdtype_t dtype) {
    const asr_wvar_t *v = asr_wfile_find(f, name);
    if (!v)
        fail_msg("no scalar %s", name);
    assert_int_equal(v->rank, 0);
    assert_int_equal(v->dtype, dtype);
    if (dtype == ASR_WD_I8)
        return (int8_t)v->data[0];
    return (int16_t)(v->data[0] | v->data[1] << 8);
}

static float *decode_all(const asr_wfile_t *f, const asr_wvar_t *v, const char *name) {
    float *x = asr_xmalloc((size_t)v->n_elems * sizeof *x);
    char err[256];
    int64_t cols = v->rank ? v->n_elems / v->dims[0] : 1;
    if (asr_wfile_decode_f32(f, v, name, cols, 0, v->n_elems, x, err, sizeof err))
        fail_msg("decode %s: %s", name, err);
    return x;
}

/* Every tensor of src is in out with its shape and, by storage: float16 the same bytes, float32
 * the same values, int8 within half a step of its row (and float16 elsewhere). */
static void check_tensors(const asr_wfile_t *src, const asr_wfile_t *out, asr_ww_type_t type) {
    int n_i8 = 0;
    for (int i = 0; i < src->n_vars; i++) {
        const asr_wvar_t *s = &src->vars[i];
        const asr_wvar_t *o = asr_wfile_find(out, s->name);
        if (!o)
            fail_msg("%s missing from the written model", s->name);
        assert_int_equal(o->rank, s->rank);
        for (int k = 0; k < s->rank; k++)
            assert_int_equal(o->dims[k], s->dims[k]);
        if (s->rank == 0 || s->dtype == ASR_WD_I32 || s->dtype == ASR_WD_I16)
            continue; /* scalars: checked by name */
        if (type == ASR_WW_FLOAT16 || (type == ASR_WW_INT8 && o->dtype == ASR_WD_F16)) {
            assert_int_equal(o->dtype, ASR_WD_F16);
            assert_memory_equal(o->data, s->data, s->n_bytes);
            continue;
        }
        float *a = decode_all(src, s, s->name), *b = decode_all(out, o, s->name);
        if (type == ASR_WW_FLOAT32) {
            assert_int_equal(o->dtype, ASR_WD_F32);
            assert_memory_equal(a, b, (size_t)s->n_elems * sizeof *a);
        } else {
            assert_int_equal(o->dtype, ASR_WD_I8);
            n_i8++;
            int64_t cols = s->n_elems / s->dims[0];
            for (int64_t r = 0; r < s->dims[0]; r++) {
                float mx = 0.0f;
                for (int64_t c = 0; c < cols; c++)
                    mx = fmaxf(mx, fabsf(a[r * cols + c]));
                for (int64_t c = 0; c < cols; c++)
                    if (fabsf(a[r * cols + c] - b[r * cols + c]) > mx / 127.0f * 0.5001f + 1e-7f)
                        fail_msg("%s[%lld][%lld]: %g written as %g (row max %g)", s->name,
                                 (long long)r, (long long)c, a[r * cols + c], b[r * cols + c], mx);
            }
        }
        free(a);
        free(b);
    }
    if (type == ASR_WW_INT8) /* 2 convs, 6 per encoder layer... at least the embedding */
        assert_true(n_i8 > 2);
}

static void check_header(const asr_wfile_t *out, const asr_model_info_t *in) {
    assert_int_equal(out->version, 6);
    assert_string_equal(out->spec_name, "WhisperSpec");
    assert_int_equal(out->spec_revision, 3);
    assert_int_equal(scalar(out, "encoder/num_heads", ASR_WD_I16), in->n_audio_head);
    assert_int_equal(scalar(out, "decoder/num_heads", ASR_WD_I16), in->n_text_head);
    assert_int_equal(scalar(out, "decoder/activation", ASR_WD_I8), 3);
    assert_int_equal(scalar(out, "decoder/pre_norm", ASR_WD_I8), 1);
    assert_int_equal(scalar(out, "decoder/alignment_layer", ASR_WD_I16), -1);
    assert_ptr_equal(asr_wfile_find(out, "decoder/projection/weight"),
                     asr_wfile_find(out, "decoder/embeddings/weight"));
    for (int i = 1; i < out->n_vars; i++) /* string-sort order, as the converter writes */
        assert_true(strcmp(out->vars[i - 1].name, out->vars[i].name) < 0);
}

/* s written as `type` and read back into *out, its header and tensors checked; the directory
 * (owned by caller: drop_written). */
static char *write_checked(asr_wsource_t *s, asr_ww_type_t type, asr_wfile_t *out) {
    char *dir = write_and_read(&s->src, type, out);
    check_header(out, &s->src.info);
    check_tensors(&s->f, out, type);
    return dir;
}

static json_t *load_json(const char *dir, const char *name) {
    char p[600];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    json_error_t je;
    json_t *j = json_load_file(p, 0, &je);
    if (!j)
        fail_msg("%s: %s", p, je.text);
    return j;
}

static int feature_size(const char *dir) {
    json_t *pp = load_json(dir, "preprocessor_config.json");
    int n = (int)json_integer_value(json_object_get(pp, "feature_size"));
    json_decref(pp);
    return n;
}

/* Frees what write_and_read made. */
static void drop_written(char *dir, asr_wfile_t *out) {
    asr_wfile_free(out);
    remove_dir(dir);
    free(dir);
}

/* ---- built in memory ---- */

static asr_wsource_t *random_tiny(uint64_t seed) {
    asr_wsource_t *s = NULL;
    char err[256] = "";
    if (asr_random_model_create("tiny", seed, &s, err, sizeof err) != ASR_OK)
        fail_msg("random tiny: %s", err);
    return s;
}

static void test_random_types(void **state) {
    (void)state;
    asr_wsource_t *s = random_tiny(3);
    /* a zero row: scale 1, all q 0 (a division by zero otherwise) */
    const asr_wvar_t *w = asr_wfile_find(&s->f, "decoder/layer_1/ffn/linear_0/weight");
    memset((void *)(uintptr_t)w->data, 0, (size_t)w->dims[1] * 2);
    asr_ww_type_t types[3] = {ASR_WW_FLOAT16, ASR_WW_FLOAT32, ASR_WW_INT8};
    for (int t = 0; t < 3; t++) {
        asr_wfile_t out;
        char *dir = write_checked(s, types[t], &out);
        if (types[t] == ASR_WW_INT8) {
            const asr_wvar_t *sc =
                asr_wfile_find(&out, "decoder/layer_1/ffn/linear_0/weight_scale");
            assert_non_null(sc);
            assert_int_equal(sc->dtype, ASR_WD_F32);
            assert_int_equal(sc->n_elems, w->dims[0]);
            float s0;
            memcpy(&s0, sc->data, 4);
            assert_true(s0 == 1.0f);
            assert_non_null(asr_wfile_find(&out, "decoder/projection/weight_scale"));
            assert_int_equal(asr_wfile_find(&out, "encoder/conv1/weight")->dtype, ASR_WD_I8);
            assert_int_equal(asr_wfile_find(&out, "encoder/layer_norm/gamma")->dtype, ASR_WD_F16);
        }
        assert_int_equal(feature_size(dir), 80);
        drop_written(dir, &out);
    }
    asr_wsource_close(s);
}

static void test_random_reproducible(void **state) {
    (void)state;
    asr_wsource_t *a = random_tiny(11), *b = random_tiny(11), *c = random_tiny(12);
    assert_int_equal(a->f.n_vars, b->f.n_vars);
    int n_diff = 0;
    for (int i = 0; i < a->f.n_vars; i++) {
        const asr_wvar_t *x = &a->f.vars[i], *y = asr_wfile_find(&b->f, x->name);
        const asr_wvar_t *z = asr_wfile_find(&c->f, x->name);
        assert_non_null(y);
        assert_int_equal(x->n_bytes, y->n_bytes);
        assert_memory_equal(x->data, y->data, x->n_bytes);
        n_diff += memcmp(x->data, z->data, x->n_bytes) != 0;
    }
    assert_true(n_diff > a->f.n_vars / 2); /* another seed, other weights */
    /* the shape's real dimensions, and the degenerate-decoding guard: special rows are small */
    const asr_model_info_t *in = &a->src.info;
    assert_int_equal(in->d_model, 384);
    assert_int_equal(in->n_audio_layer, 4);
    assert_int_equal(in->n_text_layer, 4);
    assert_int_equal(in->n_audio_head, 6);
    assert_int_equal(in->n_vocab, 51865);
    assert_int_equal(in->n_mels, 80);
    const asr_wvar_t *e = asr_wfile_find(&a->f, "decoder/embeddings/weight");
    int32_t eot = asr_tokenizer_special(a->tok)->eot;
    float row[384];
    double text = 0, special = 0;
    asr_nn_h2f_n((const uint16_t *)(const void *)e->data + (size_t)(eot - 1) * 384, row, 384);
    for (int i = 0; i < 384; i++)
        text += row[i] * row[i];
    asr_nn_h2f_n((const uint16_t *)(const void *)e->data + (size_t)eot * 384, row, 384);
    for (int i = 0; i < 384; i++)
        special += row[i] * row[i];
    assert_true(special < text / 100);
    asr_wsource_close(a);
    asr_wsource_close(b);
    asr_wsource_close(c);
}

/* 128 mel bins (large-v3's front end) must reach preprocessor_config.json: faster-whisper sizes
 * its filter bank from it. A tiny model whose conv1 takes 128 bins stands in for large-v3. */
static void test_feature_size_follows_mels(void **state) {
    (void)state;
    asr_wsource_t *s = random_tiny(5);
    int64_t dims[3] = {384, 128, 3};
    uint16_t *w = asr_wfile_own(&s->f, 384 * 128 * 3 * 2);
    assert_non_null(w);
    for (int i = 0; i < s->f.n_vars; i++)
        if (!strcmp(s->f.vars[i].name, "encoder/conv1/weight"))
            s->f.vars[i].name = "encoder/conv1/unused";
    assert_non_null(asr_wfile_add(&s->f, "encoder/conv1/weight", ASR_WD_F16, 3, dims, w));
    char err[256];
    assert_int_equal(asr_wsource_finish(s, err, sizeof err), 0);
    assert_int_equal(s->src.info.n_mels, 128);
    asr_wfile_t out;
    char *dir = write_and_read(&s->src, ASR_WW_FLOAT16, &out);
    assert_int_equal(asr_wfile_find(&out, "encoder/conv1/weight")->dims[1], 128);
    assert_int_equal(feature_size(dir), 128);
    drop_written(dir, &out);
    asr_wsource_close(s);
}

static void test_errors(void **state) {
    (void)state;
    asr_wsource_t *s = random_tiny(9);
    char err[256] = "";
    /* an unwritable directory: a one-line reason naming the file */
    assert_int_equal(asr_ct2_write(&s->src, "/dev/null/x", err, sizeof err), ASR_ERR_IO);
    assert_non_null(strstr(err, "/dev/null/x/model.bin"));
    assert_null(strchr(err, '\n'));
    /* a tensor the source lacks */
    for (int i = 0; i < s->f.n_vars; i++)
        if (!strcmp(s->f.vars[i].name, "decoder/layer_2/ffn/linear_1/weight"))
            s->f.vars[i].name = "decoder/layer_2/ffn/linear_1/gone";
    char *dir = make_tmp();
    err[0] = 0;
    assert_int_equal(asr_ct2_write(&s->src, dir, err, sizeof err), ASR_ERR_MODEL);
    assert_non_null(strstr(err, "decoder/layer_2/ffn/linear_1/weight"));
    remove_dir(dir);
    free(dir);
    asr_wsource_close(s);
}

/* ---- the real tiny.en ---- */

static char g_tiny[4096];

/* tiny.en where `asrd` looks for it ($ASRD_MODELS, else ~/.cache/asrd/models). */
static bool find_tiny(void) {
    char *d = asr_cli_model_dir("tiny.en");
    snprintf(g_tiny, sizeof g_tiny, "%s", d);
    free(d);
    char p[4200];
    snprintf(p, sizeof p, "%s/model.bin", g_tiny);
    return access(p, R_OK) == 0;
}

static void same_int_array(json_t *a, json_t *b, const char *what) {
    if (!json_equal(a, b))
        fail_msg("config.json %s differs from the source model's", what);
}

static void test_tiny_en(void **state) {
    (void)state;
    asr_wsource_t *s = NULL;
    char err[512] = "";
    if (asr_wsource_open(g_tiny, &s, err, sizeof err) != ASR_OK)
        fail_msg("open %s: %s", g_tiny, err);
    asr_ww_type_t types[3] = {ASR_WW_FLOAT16, ASR_WW_FLOAT32, ASR_WW_INT8};
    for (int t = 0; t < 3; t++) {
        asr_wfile_t out;
        char *dir = write_checked(s, types[t], &out);
        if (types[t] == ASR_WW_FLOAT16) {
            json_t *a = load_json(dir, "config.json"), *b = load_json(g_tiny, "config.json");
            same_int_array(json_object_get(a, "alignment_heads"),
                           json_object_get(b, "alignment_heads"), "alignment_heads");
            same_int_array(json_object_get(a, "suppress_ids"), json_object_get(b, "suppress_ids"),
                           "suppress_ids");
            same_int_array(json_object_get(a, "suppress_ids_begin"),
                           json_object_get(b, "suppress_ids_begin"), "suppress_ids_begin");
            json_decref(a);
            json_decref(b);
            asr_tokenizer_t *tok = NULL;
            if (asr_tokenizer_load(dir, s->src.info.n_vocab, &tok, err, sizeof err) != ASR_OK)
                fail_msg("the written tokenizer: %s", err);
            for (int32_t id = 0; id < s->src.info.n_vocab; id++)
                assert_string_equal(asr_tokenizer_token_str(tok, id),
                                    asr_tokenizer_token_str(s->tok, id));
            asr_tokenizer_destroy(tok);
        }
        drop_written(dir, &out);
    }
    asr_wsource_close(s);
}

int main(void) {
    asr_log_set_level(ASR_LOG_ERROR);
    const struct CMUnitTest built[] = {
        cmocka_unit_test(test_random_types),
        cmocka_unit_test(test_random_reproducible),
        cmocka_unit_test(test_feature_size_follows_mels),
        cmocka_unit_test(test_errors),
    };
    int failed = cmocka_run_group_tests_name("ct2_write_random", built, NULL, NULL);
    if (!find_tiny()) {
        fprintf(stderr, "tiny.en not found ($ASRD_MODELS or ~/.cache/asrd/models):"
                        " run `make models`; skipping the tiny.en tests\n");
        return failed ? failed : 77;
    }
    const struct CMUnitTest tiny[] = {cmocka_unit_test(test_tiny_en)};
    return failed | cmocka_run_group_tests_name("ct2_write_tiny_en", tiny, NULL, NULL);
}
