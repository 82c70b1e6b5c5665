/* Unit tests of the Whisper tokenizer (src/engine/tokenizer*.c).
 *
 * Model-free tests (UTF-8, character classes, pre-split, a tiny in-memory vocabulary, load errors)
 * always run. Model tests compare against tests/golden/data/tokenizer_<model>.json, written by
 * tests/golden/make_tokenizer_golden.py from Hugging Face tokenizers / faster-whisper; they need
 * $ASRD_MODELS/{tiny.en,base} (else /tmp/devmodels/...). Without the models the program exits 77
 * (skipped) once the model-free tests pass. Paths: goldens under $ASR_SOURCE (the repo root). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/tokenizer.h"
#include "engine/tokenizer_int.h"

static const char *MODEL_NAMES[2] = {"tiny.en", "base"};
static const int MODEL_NVOCAB[2] = {51864, 51865};
static char g_model_dir[2][1024];
static asr_tokenizer_t *g_tok[2];

/* ---- helpers ---- */

static const char *source_dir(void) {
    static char buf[1024];
    const char *s = getenv("ASR_SOURCE");
    if (s && *s)
        return s;
    snprintf(buf, sizeof buf, "%s", __FILE__); /* <root>/tests/unit/test_tokenizer.c */
    for (int i = 0; i < 3; i++) {
        char *slash = strrchr(buf, '/');
        if (!slash)
            return ".";
        *slash = 0;
    }
    return buf;
}

static bool is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static void write_file(const char *dir, const char *name, const char *data, size_t len) {
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

static void remove_dir(const char *dir) {
    const char *names[] = {"vocabulary.json", "vocabulary.txt", "tokenizer.json"};
    char path[1200];
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        unlink(path);
    }
    rmdir(dir);
}

static char *decode_str(const asr_tokenizer_t *t, const int32_t *ids, int n) {
    asr_buf_t b;
    asr_buf_init(&b);
    asr_tokenizer_decode(t, ids, n, &b);
    return asr_buf_steal(&b);
}

/* GPT-2 bytes_to_unicode, as UTF-8 (independent re-implementation for the tests). */
static void byte_str(int b, char out[3]) {
    int cp = b;
    if (!((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255))) {
        int n = 0;
        for (int x = 0; x < b; x++)
            n += !((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255));
        cp = 256 + n;
    }
    if (cp < 0x80) {
        out[0] = (char)cp, out[1] = 0;
    } else {
        out[0] = (char)(0xC0 | (cp >> 6)), out[1] = (char)(0x80 | (cp & 0x3F)), out[2] = 0;
    }
}

static void json_str(asr_buf_t *b, const char *s) {
    asr_buf_puts(b, "\"");
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            asr_buf_printf(b, "\\%c", *s);
        else
            asr_buf_append(b, s, 1);
    }
    asr_buf_puts(b, "\"");
}

/* A tiny multilingual vocabulary: 256 byte tokens, 6 merged tokens, "", the specials with three
 * languages (en zh de) and 1501 timestamps. Merges: h e, l l, Ġ t, Ġt he, he ll, hell o. */
static const char *TINY_MERGED[] = {"he", "ll", "Ġt", "Ġthe", "hell", "hello"};
static const char *TINY_MERGES = "[\"h e\",\"l l\",[\"Ġ\",\"t\"],\"Ġt he\",\"he ll\",\"hell o\"]";
#define TINY_EOT 263

static void tiny_vocab(asr_buf_t *v, asr_buf_t *tok) {
    asr_buf_init(v);
    asr_buf_init(tok);
    asr_buf_puts(v, "[");
    for (int b = 0; b < 256; b++) {
        char s[3];
        byte_str(b, s);
        json_str(v, s);
        asr_buf_puts(v, ",");
    }
    for (int i = 0; i < 6; i++) {
        json_str(v, TINY_MERGED[i]);
        asr_buf_puts(v, ",");
    }
    asr_buf_puts(v, "\"\",\"<|endoftext|>\",\"<|startoftranscript|>\",\"<|en|>\",\"<|zh|>\","
                    "\"<|de|>\",\"<|translate|>\",\"<|transcribe|>\",\"<|startoflm|>\","
                    "\"<|startofprev|>\",\"<|nospeech|>\",\"<|notimestamps|>\"");
    for (int i = 0; i <= 1500; i++)
        asr_buf_printf(v, ",\"<|%d.%02d|>\"", i * 2 / 100, i * 2 % 100);
    asr_buf_puts(v, "]");
    asr_buf_printf(
        tok,
        "{\"version\":\"1.0\",\"added_tokens\":[{\"id\":1,\"x\":[true,false,null,-1.5e3]}"
        "],\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":%s}}",
        TINY_MERGES);
}

static asr_tokenizer_t *tiny_load(void) {
    asr_buf_t v, tok;
    tiny_vocab(&v, &tok);
    asr_tokenizer_t *t = NULL;
    char err[256] = "";
    asr_err_t e =
        asr_tokenizer_load_buffers(v.data, v.len, true, tok.data, tok.len, 0, &t, err, sizeof err);
    if (e)
        fprintf(stderr, "tiny load: %s\n", err);
    assert_int_equal(e, ASR_OK);
    asr_buf_free(&v);
    asr_buf_free(&tok);
    return t;
}

/* ---- model-free tests ---- */

static void test_unicode_classes(void **state) {
    (void)state;
    assert_true(asr__unicode_is_letter('a') && asr__unicode_is_letter('Z'));
    assert_true(asr__unicode_is_letter(0x4F60) && asr__unicode_is_letter(0x00E9));
    assert_true(asr__unicode_is_letter(0x0416) && asr__unicode_is_letter(0x1D518));
    assert_false(asr__unicode_is_letter('1') || asr__unicode_is_letter(0x0345));
    assert_false(asr__unicode_is_letter(0x1F600) || asr__unicode_is_letter(0x10FFFF));
    assert_true(asr__unicode_is_number('7') && asr__unicode_is_number(0x00B2));
    assert_true(asr__unicode_is_number(0x0663) && asr__unicode_is_number(0x216B));
    assert_false(asr__unicode_is_number('x'));
    /* Unicode 16.0 additions, as Oniguruma in HF tokenizers sees them */
    assert_true(asr__unicode_is_number(0x1CCF0) && asr__unicode_is_letter(0x14064));
    assert_true(asr__unicode_is_letter(0x3190F) && asr__unicode_is_letter(0x1E5D0));
    assert_false(asr__unicode_is_letter(0x11F00) || asr__unicode_is_letter(0xD800));
    assert_true(asr__unicode_is_space(' ') && asr__unicode_is_space('\t'));
    assert_true(asr__unicode_is_space(0xA0) && asr__unicode_is_space(0x3000));
    assert_true(asr__unicode_is_space(0x85) && asr__unicode_is_space(0x2028));
    assert_false(asr__unicode_is_space(0x1C) || asr__unicode_is_space(0x200B));
    assert_false(asr__unicode_is_space(0x180E));
}

static asr_err_t collect_cb(size_t start, size_t end, void *user_data) {
    asr_buf_t *b = user_data;
    asr_buf_printf(b, "%zu-%zu|", start, end);
    return ASR_OK;
}

static void expect_split(const char *text, const char *expect) {
    asr_buf_t b;
    asr_buf_init(&b);
    assert_int_equal(asr__tok_presplit(text, strlen(text), collect_cb, &b), ASR_OK);
    assert_string_equal(b.data ? b.data : "", expect);
    asr_buf_free(&b);
}

static void test_presplit(void **state) {
    (void)state;
    expect_split("", "");
    expect_split("Hello world", "0-5|5-11|");
    expect_split("a  b", "0-1|1-2|2-4|");          /* "a" " " " b" */
    expect_split("a \n b", "0-1|1-3|3-5|");        /* "a" " \n" " b" */
    expect_split("a\nb", "0-1|1-2|2-3|");          /* "\n" alone */
    expect_split("end   ", "0-3|3-6|");            /* trailing run whole */
    expect_split("I'm don't", "0-1|1-3|3-7|7-9|"); /* I 'm " don" 't */
    expect_split("'S 'll", "0-1|1-2|2-4|4-6|");    /* ' S " '" ll */
    expect_split(" 42x", "0-3|3-4|");
    expect_split("x?! y", "0-1|1-3|3-5|");
    expect_split("\xe4\xbd\xa0\xe5\xa5\xbd 1", "0-6|6-8|");
    expect_split("a\x80\xff b", "0-1|1-3|3-5|"); /* invalid bytes are "other" */
}

static void test_lang_tables(void **state) {
    (void)state;
    assert_string_equal(asr_lang_name("en"), "english");
    assert_string_equal(asr_lang_name("yue"), "cantonese");
    assert_string_equal(asr_lang_name("ht"), "haitian creole");
    assert_null(asr_lang_name("xx"));
    assert_null(asr_lang_name(NULL));
    assert_string_equal(asr_lang_code_normalize("English"), "en");
    assert_string_equal(asr_lang_code_normalize("ZH"), "zh");
    assert_string_equal(asr_lang_code_normalize("Mandarin"), "zh");
    assert_string_equal(asr_lang_code_normalize("moldovan"), "ro");
    assert_string_equal(asr_lang_code_normalize("yue"), "yue");
    assert_null(asr_lang_code_normalize("klingon"));
}

static void test_tiny_vocab(void **state) {
    (void)state;
    asr_tokenizer_t *t = tiny_load();
    const asr_special_tokens_t *sp = asr_tokenizer_special(t);
    assert_int_equal(sp->eot, TINY_EOT);
    assert_int_equal(sp->sot, TINY_EOT + 1);
    assert_int_equal(sp->n_languages, 3);
    assert_true(sp->multilingual);
    assert_int_equal(sp->timestamp_begin, TINY_EOT + 11);
    assert_int_equal(sp->n_vocab, TINY_EOT + 11 + 1501);
    assert_int_equal(asr_tokenizer_lang_token(t, "zh"), TINY_EOT + 3);
    assert_int_equal(asr_tokenizer_lang_token(t, "es"), -1);
    assert_string_equal(asr_tokenizer_lang_code(t, TINY_EOT + 4), "de");
    assert_null(asr_tokenizer_lang_code(t, TINY_EOT + 5));

    int32_t *ids;
    int n;
    assert_int_equal(asr_tokenizer_encode(t, "hello the hell", &ids, &n), ASR_OK);
    assert_int_equal(n, 4); /* hello, Ġthe, Ġ, hell */
    assert_int_equal(ids[0], 261);
    assert_int_equal(ids[1], 259);
    assert_int_equal(ids[3], 260);
    char *s = decode_str(t, ids, n);
    assert_string_equal(s, "hello the hell");
    free(s);
    free(ids);

    assert_int_equal(asr_tokenizer_encode(t, "", &ids, &n), ASR_OK);
    assert_int_equal(n, 0);
    assert_null(ids);
    assert_int_equal(asr_tokenizer_encode(t, NULL, &ids, &n), ASR_ERR_INVALID);
    char *big = malloc(ASR_TOKENIZER_MAX_TEXT + 2);
    memset(big, 'a', ASR_TOKENIZER_MAX_TEXT + 1);
    big[ASR_TOKENIZER_MAX_TEXT + 1] = 0;
    assert_int_equal(asr_tokenizer_encode(t, big, &ids, &n), ASR_ERR_INVALID);
    big[ASR_TOKENIZER_MAX_TEXT] = 0; /* exactly at the cap: accepted, one byte token each */
    assert_int_equal(asr_tokenizer_encode(t, big, &ids, &n), ASR_OK);
    assert_int_equal(n, ASR_TOKENIZER_MAX_TEXT);
    free(ids);
    free(big);

    /* invalid UTF-8 in: byte tokens; out: U+FFFD per maximal subpart */
    assert_int_equal(asr_tokenizer_encode(t, "a\xe4\xbd!", &ids, &n), ASR_OK);
    s = decode_str(t, ids, n);
    assert_string_equal(s, "a\xef\xbf\xbd!");
    free(s);
    free(ids);

    int32_t odd[] = {-5, 'h', 99999, sp->eot, sp->timestamp_begin, 'i'};
    s = decode_str(t, odd, 6);
    assert_string_equal(s, "hi");
    free(s);
    size_t len;
    assert_null(asr_tokenizer_token_bytes(t, -1, &len));
    assert_int_equal(len, 0);
    assert_string_equal(asr_tokenizer_token_bytes(t, 259, &len), " the");
    assert_int_equal(len, 4);
    assert_string_equal(asr_tokenizer_token_str(t, 259), "Ġthe");
    assert_int_equal(asr_tokenizer_token_to_id(t, "Ġthe", strlen("Ġthe")), 259);

    int total = asr_tokenizer_suppress_tokens(t, NULL, 0);
    assert_true(total >= 6);
    int32_t sup[256];
    assert_int_equal(asr_tokenizer_suppress_tokens(t, sup, 256), total);
    for (int i = 1; i < total; i++)
        assert_true(sup[i - 1] < sup[i]);
    assert_int_equal(asr_tokenizer_suppress_tokens(t, sup, 2), 2);
    asr_tokenizer_destroy(t);
    asr_tokenizer_destroy(NULL);
}

/* Loads vocab + tokenizer.json buffers that must fail with ASR_ERR_MODEL and a one-line reason. */
static void expect_bad(const char *vocab, const char *tok, bool json, int n_vocab) {
    asr_tokenizer_t *t = (asr_tokenizer_t *)1;
    char err[256] = "";
    asr_err_t e = asr_tokenizer_load_buffers(vocab, strlen(vocab), json, tok, strlen(tok), n_vocab,
                                             &t, err, sizeof err);
    assert_int_equal(e, ASR_ERR_MODEL);
    assert_null(t);
    assert_true(strlen(err) > 0);
    assert_null(strchr(err, '\n'));
}

static void test_bad_buffers(void **state) {
    (void)state;
    asr_tokenizer_t *t = NULL;
    asr_buf_t v, tok;
    tiny_vocab(&v, &tok);
    const char *good_tok = tok.data;
    expect_bad("[\"a\",", good_tok, true, 0);
    expect_bad("{}", good_tok, true, 0);
    expect_bad("[\"a\", 1]", good_tok, true, 0);
    expect_bad("[\"\\ud800\"]", good_tok, true, 0);
    expect_bad("[\"a\\u0000\"]", good_tok, true, 0);
    expect_bad("[\"\xff\"]", good_tok, true, 0);
    expect_bad("[] x", good_tok, true, 0);
    expect_bad("[]", good_tok, true, 0);
    expect_bad("a\nb\n", good_tok, false, 0);      /* no specials */
    expect_bad(v.data, good_tok, true, 51865);     /* size mismatch */
    expect_bad(v.data, "{\"model\":{}}", true, 0); /* no merges */
    expect_bad(v.data, "{\"model\":{\"type\":\"WordPiece\",\"merges\":[]}}", true, 0);
    expect_bad(v.data, "{\"model\":{\"merges\":[\"h e\",\"q zz\"]}}", true, 0);
    expect_bad(v.data, "{\"model\":{\"merges\":[\"h e x\"]}}", true, 0);
    expect_bad(v.data, "{\"model\":{\"merges\":[[\"h\"]]}}", true, 0);
    expect_bad(v.data, "{\"model\":{\"merges\":[]}} {", true, 0);
    expect_bad(v.data, "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]",
               true, 0);
    char deep[400];
    memset(deep, 0, sizeof deep);
    strcpy(deep, "{\"x\":");
    for (int i = 0; i < 100; i++)
        strcat(deep, "[");
    expect_bad(v.data, deep, true, 0);
    /* specials without timestamps or byte tokens */
    expect_bad("[\"<|endoftext|>\",\"<|startoftranscript|>\",\"<|translate|>\",\"<|transcribe|>\","
               "\"<|startoflm|>\",\"<|startofprev|>\",\"<|nospeech|>\",\"<|notimestamps|>\","
               "\"<|0.00|>\"]",
               good_tok, true, 0);
    /* every special present, but no token for the byte 'Q' */
    char *q = strstr(v.data, "\"Q\",");
    assert_non_null(q);
    q[1] = 'q'; /* now a duplicate of "q" */
    char err[256] = "";
    t = NULL;
    assert_int_equal(asr_tokenizer_load_buffers(v.data, v.len, true, good_tok, strlen(good_tok), 0,
                                                &t, err, sizeof err),
                     ASR_ERR_MODEL);
    assert_non_null(strstr(err, "0x51"));
    q[1] = 'Q';
    /* a valid tokenizer.json with an empty merge list loads: encode gives byte tokens */
    const char *nomerge = "{\"model\":{\"merges\":[]}}";
    assert_int_equal(
        asr_tokenizer_load_buffers(v.data, v.len, true, nomerge, strlen(nomerge), 0, &t, NULL, 0),
        ASR_OK);
    int32_t *ids;
    int n;
    assert_int_equal(asr_tokenizer_encode(t, "hello", &ids, &n), ASR_OK);
    assert_int_equal(n, 5);
    free(ids);
    asr_tokenizer_destroy(t);
    asr_buf_free(&v);
    asr_buf_free(&tok);
}

static void test_load_dir_errors(void **state) {
    (void)state;
    char dir[] = "/tmp/asr_tok_test_XXXXXX";
    assert_non_null(mkdtemp(dir));
    asr_tokenizer_t *t = (asr_tokenizer_t *)1;
    char err[256] = "";
    /* empty directory */
    assert_int_equal(asr_tokenizer_load(dir, 0, &t, err, sizeof err), ASR_ERR_MODEL);
    assert_null(t);
    assert_non_null(strstr(err, "vocabulary"));
    /* non-existent directory */
    assert_int_equal(asr_tokenizer_load("/nonexistent/asr", 0, &t, err, sizeof err), ASR_ERR_MODEL);
    /* vocabulary but no tokenizer.json */
    asr_buf_t v, tok;
    tiny_vocab(&v, &tok);
    write_file(dir, "vocabulary.json", v.data, v.len);
    assert_int_equal(asr_tokenizer_load(dir, 0, &t, err, sizeof err), ASR_ERR_MODEL);
    assert_non_null(strstr(err, "tokenizer.json"));
    /* both: loads */
    write_file(dir, "tokenizer.json", tok.data, tok.len);
    assert_int_equal(asr_tokenizer_load(dir, 0, &t, err, sizeof err), ASR_OK);
    asr_tokenizer_destroy(t);
    /* corrupt vocabulary.json (truncated) */
    write_file(dir, "vocabulary.json", v.data, v.len / 2);
    assert_int_equal(asr_tokenizer_load(dir, 0, &t, err, sizeof err), ASR_ERR_MODEL);
    assert_null(t);
    assert_non_null(strstr(err, "vocabulary.json"));
    assert_null(strchr(err, '\n'));
    /* garbage */
    write_file(dir, "vocabulary.json", "\x00\x01garbage", 9);
    assert_int_equal(asr_tokenizer_load(dir, 0, &t, err, sizeof err), ASR_ERR_MODEL);
    /* corrupt tokenizer.json */
    write_file(dir, "vocabulary.json", v.data, v.len);
    write_file(dir, "tokenizer.json", tok.data, tok.len - 3);
    assert_int_equal(asr_tokenizer_load(dir, 0, &t, err, sizeof err), ASR_ERR_MODEL);
    assert_non_null(strstr(err, "tokenizer.json"));
    assert_int_equal(asr_tokenizer_load(NULL, 0, &t, err, sizeof err), ASR_ERR_INVALID);
    remove_dir(dir);
    asr_buf_free(&v);
    asr_buf_free(&tok);
}

/* Failing each checked allocation in turn gives ASR_ERR_NOMEM and leaks nothing (ASan checks). */
static void test_oom(void **state) {
    (void)state;
    asr_buf_t v, tok;
    tiny_vocab(&v, &tok);
    bool loaded = false;
    for (long nth = 1; nth < 500 && !loaded; nth++) {
        asr_tokenizer_t *t = NULL;
        char err[256] = "";
        asr_alloc_fail_set(nth, 0);
        asr_err_t e = asr_tokenizer_load_buffers(v.data, v.len, true, tok.data, tok.len, 0, &t, err,
                                                 sizeof err);
        asr_alloc_fail_set(0, 0);
        if (e == ASR_OK) {
            loaded = true;
            for (long k = 1; k < 10; k++) { /* encode's own allocations */
                int32_t *ids = NULL;
                int n = 0;
                asr_alloc_fail_set(k, 0);
                asr_err_t ee = asr_tokenizer_encode(t, "hello the hell", &ids, &n);
                asr_alloc_fail_set(0, 0);
                assert_true(ee == ASR_OK || ee == ASR_ERR_NOMEM);
                if (ee == ASR_ERR_NOMEM)
                    assert_null(ids);
                free(ids);
            }
            asr_tokenizer_destroy(t);
        } else {
            assert_int_equal(e, ASR_ERR_NOMEM);
            assert_null(t);
            assert_true(strlen(err) > 0);
        }
    }
    assert_true(loaded);
    asr_buf_free(&v);
    asr_buf_free(&tok);
}

/* The same tiny vocabulary as vocabulary.txt loads identically. */
static void test_vocab_txt(void **state) {
    (void)state;
    json_error_t jerr;
    asr_buf_t v, tok, txt;
    tiny_vocab(&v, &tok);
    json_t *arr = json_loadb(v.data, v.len, 0, &jerr);
    assert_non_null(arr);
    asr_buf_init(&txt);
    for (size_t i = 0; i < json_array_size(arr); i++) {
        asr_buf_puts(&txt, json_string_value(json_array_get(arr, i)));
        asr_buf_puts(&txt, "\n");
    }
    asr_tokenizer_t *t = NULL;
    assert_int_equal(asr_tokenizer_load_buffers(txt.data, txt.len, false, tok.data, tok.len,
                                                (int)json_array_size(arr), &t, NULL, 0),
                     ASR_OK);
    assert_int_equal(asr_tokenizer_special(t)->eot, TINY_EOT);
    assert_true(asr_tokenizer_special(t)->multilingual);
    asr_tokenizer_destroy(t);
    json_decref(arr);
    asr_buf_free(&v);
    asr_buf_free(&tok);
    asr_buf_free(&txt);
}

/* ---- model tests ---- */

static json_t *load_golden(int m) {
    char path[1200];
    snprintf(path, sizeof path, "%s/tests/golden/data/tokenizer_%s.json", source_dir(),
             MODEL_NAMES[m]);
    json_error_t jerr;
    json_t *g = json_load_file(path, JSON_ALLOW_NUL, &jerr);
    if (!g)
        fail_msg("cannot load %s: %s", path, jerr.text);
    return g;
}

static void check_ids(const json_t *arr, const int32_t *ids, int n, const char *what) {
    bool same = (size_t)n == json_array_size(arr);
    for (int i = 0; same && i < n; i++)
        same = json_integer_value(json_array_get(arr, (size_t)i)) == ids[i];
    if (!same) {
        char *exp = json_dumps(arr, JSON_COMPACT);
        fprintf(stderr, "mismatch for %s\n  expected %s\n  got     ", what, exp);
        for (int i = 0; i < n; i++)
            fprintf(stderr, "%d,", ids[i]);
        fprintf(stderr, "\n");
        free(exp);
        fail();
    }
}

static void golden_test(int m) {
    asr_tokenizer_t *t = g_tok[m];
    json_t *g = load_golden(m);
    const asr_special_tokens_t *sp = asr_tokenizer_special(t);
    assert_int_equal(sp->n_vocab, json_integer_value(json_object_get(g, "n_vocab")));
    assert_int_equal(sp->multilingual, json_boolean_value(json_object_get(g, "multilingual")));
    json_t *gs = json_object_get(g, "special");
    assert_int_equal(sp->eot, json_integer_value(json_object_get(gs, "eot")));
    assert_int_equal(sp->sot, json_integer_value(json_object_get(gs, "sot")));
    assert_int_equal(sp->no_speech, json_integer_value(json_object_get(gs, "no_speech")));
    assert_int_equal(sp->timestamp_begin,
                     json_integer_value(json_object_get(gs, "timestamp_begin")));
    size_t i;
    json_t *e;
    int n_enc = 0, n_dec = 0;
    json_array_foreach(json_object_get(g, "encode"), i, e) {
        const char *text = json_string_value(json_object_get(e, "text"));
        int32_t *ids;
        int n;
        assert_int_equal(asr_tokenizer_encode(t, text, &ids, &n), ASR_OK);
        check_ids(json_object_get(e, "ids"), ids, n, text);
        char *back = decode_str(t, ids, n); /* byte-level BPE is lossless on valid UTF-8 */
        assert_string_equal(back, text);
        free(back);
        free(ids);
        n_enc++;
    }
    json_array_foreach(json_object_get(g, "decode"), i, e) {
        json_t *ja = json_object_get(e, "ids");
        int n = (int)json_array_size(ja);
        int32_t *ids = malloc(sizeof *ids * (size_t)(n ? n : 1));
        for (int k = 0; k < n; k++)
            ids[k] = (int32_t)json_integer_value(json_array_get(ja, (size_t)k));
        asr_buf_t b;
        asr_buf_init(&b);
        asr_tokenizer_decode(t, ids, n, &b);
        json_t *jt = json_object_get(e, "text"); /* may contain NUL: compare with lengths */
        if (b.len != json_string_length(jt) || memcmp(b.data, json_string_value(jt), b.len))
            fail_msg("decode mismatch: got \"%s\" expected \"%s\"", b.data, json_string_value(jt));
        asr_buf_free(&b);
        free(ids);
        n_dec++;
    }
    int32_t sup[512];
    int n_sup = asr_tokenizer_suppress_tokens(t, sup, 512);
    assert_int_equal(n_sup, asr_tokenizer_suppress_tokens(t, NULL, 0));
    check_ids(json_object_get(g, "suppress_tokens"), sup, n_sup, "suppress_tokens");
    json_array_foreach(json_object_get(g, "languages"), i, e) {
        const char *code = json_string_value(json_array_get(e, 0));
        int32_t id = (int32_t)json_integer_value(json_array_get(e, 1));
        assert_int_equal(asr_tokenizer_lang_token(t, code), id);
        assert_string_equal(asr_tokenizer_lang_code(t, id), code);
        assert_non_null(asr_lang_name(code));
    }
    if (sp->multilingual)
        assert_int_equal(json_array_size(json_object_get(g, "languages")), sp->n_languages);
    printf("  %s: %d encodings, %d decodings, %d suppressed ids match\n", MODEL_NAMES[m], n_enc,
           n_dec, n_sup);
    json_decref(g);
}

static void test_golden_tiny_en(void **state) {
    (void)state;
    golden_test(0);
}

static void test_golden_base(void **state) {
    (void)state;
    golden_test(1);
}

/* WHISPER-FACTS §5 table. */
static void test_special_table(void **state) {
    (void)state;
    static const int32_t expect[2][10] = {
        /* eot sot translate transcribe sot_lm sot_prev no_speech no_ts ts_begin lang_begin */
        {50256, 50257, 50357, 50358, 50359, 50360, 50361, 50362, 50363, 50258},
        {50257, 50258, 50358, 50359, 50360, 50361, 50362, 50363, 50364, 50259},
    };
    for (int m = 0; m < 2; m++) {
        const asr_special_tokens_t *sp = asr_tokenizer_special(g_tok[m]);
        int32_t got[10] = {
            sp->eot,      sp->sot,       sp->translate,     sp->transcribe,      sp->sot_lm,
            sp->sot_prev, sp->no_speech, sp->no_timestamps, sp->timestamp_begin, sp->lang_begin};
        for (int k = 0; k < 10; k++)
            assert_int_equal(got[k], expect[m][k]);
        assert_int_equal(sp->n_vocab, MODEL_NVOCAB[m]);
        assert_int_equal(sp->multilingual, m == 1);
        assert_int_equal(sp->n_languages, 99);
        assert_int_equal(sp->timestamp_begin + 1500, sp->n_vocab - 1);
    }
}

static void test_roundtrip_and_langs(void **state) {
    (void)state;
    for (int m = 0; m < 2; m++) {
        int32_t *ids;
        int n;
        const char *text = "And so my fellow Americans";
        assert_int_equal(asr_tokenizer_encode(g_tok[m], text, &ids, &n), ASR_OK);
        assert_true(n > 1 && n < 10);
        char *s = decode_str(g_tok[m], ids, n);
        assert_string_equal(s, text);
        free(s);
        /* token by token, bytes concatenate to the text */
        asr_buf_t b;
        asr_buf_init(&b);
        for (int k = 0; k < n; k++) {
            size_t len;
            const char *p = asr_tokenizer_token_bytes(g_tok[m], ids[k], &len);
            asr_buf_append(&b, p, len);
        }
        assert_string_equal(b.data, text);
        asr_buf_free(&b);
        free(ids);
    }
    asr_tokenizer_t *base = g_tok[1], *en = g_tok[0];
    assert_int_equal(asr_tokenizer_lang_token(base, "zh"), 50260);
    assert_int_equal(asr_tokenizer_lang_token(base, "en"), 50259);
    assert_int_equal(asr_tokenizer_lang_token(base, "su"), 50357);
    assert_int_equal(asr_tokenizer_lang_token(base, "yue"), -1); /* only on large-v3 */
    assert_int_equal(asr_tokenizer_lang_token(base, "xx"), -1);
    assert_int_equal(asr_tokenizer_lang_token(base, ""), -1);
    assert_int_equal(asr_tokenizer_lang_token(base, NULL), -1);
    assert_string_equal(asr_tokenizer_lang_code(base, 50260), "zh");
    assert_null(asr_tokenizer_lang_code(base, 50258));
    assert_null(asr_tokenizer_lang_code(base, 50358));
    assert_int_equal(asr_tokenizer_lang_token(en, "en"), -1); /* English-only: no language token */
    assert_null(asr_tokenizer_lang_code(en, 50258));
    size_t len;
    const char *p = asr_tokenizer_token_bytes(base, 50259, &len);
    assert_string_equal(p, "<|en|>");
    p = asr_tokenizer_token_bytes(base, 50256, &len); /* the empty multilingual token */
    assert_int_equal(len, 0);
    assert_string_equal(asr_tokenizer_token_str(base, 220), "Ġ");
    assert_string_equal(asr_tokenizer_token_bytes(base, 220, &len), " ");
}

static void test_model_dir_errors(void **state) {
    (void)state;
    asr_tokenizer_t *t = (asr_tokenizer_t *)1;
    char err[256] = "";
    assert_int_equal(asr_tokenizer_load(g_model_dir[1], 51866, &t, err, sizeof err), ASR_ERR_MODEL);
    assert_null(t);
    assert_non_null(strstr(err, "51866"));
    /* mismatched files: tiny.en's vocabulary.txt with base's tokenizer.json */
    char dir[] = "/tmp/asr_tok_test_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[1200], *buf;
    size_t len;
    snprintf(path, sizeof path, "%s/vocabulary.txt", g_model_dir[0]);
    assert_int_equal(asr_read_file(path, &buf, &len), ASR_OK);
    write_file(dir, "vocabulary.txt", buf, len);
    free(buf);
    snprintf(path, sizeof path, "%s/tokenizer.json", g_model_dir[1]);
    assert_int_equal(asr_read_file(path, &buf, &len), ASR_OK);
    write_file(dir, "tokenizer.json", buf, len);
    free(buf);
    assert_int_equal(asr_tokenizer_load(dir, 0, &t, err, sizeof err), ASR_ERR_MODEL);
    assert_non_null(strstr(err, "merge"));
    /* vocabulary.json (preferred over vocabulary.txt) in the wrong shape */
    write_file(dir, "vocabulary.json", "{\"a\": 1}", 8);
    assert_int_equal(asr_tokenizer_load(dir, 0, &t, err, sizeof err), ASR_ERR_MODEL);
    assert_non_null(strstr(err, "vocabulary.json"));
    remove_dir(dir);
}

/* large-v3 layout (WHISPER-FACTS §5): base's vocabulary with <|yue|> inserted after <|su|>. */
static void test_large_v3_layout(void **state) {
    (void)state;
    char path[1200], *buf;
    size_t len;
    snprintf(path, sizeof path, "%s/vocabulary.json", g_model_dir[1]);
    assert_int_equal(asr_read_file(path, &buf, &len), ASR_OK);
    char *su = strstr(buf, "\"<|su|>\",");
    assert_non_null(su);
    size_t at = (size_t)(su - buf) + strlen("\"<|su|>\",");
    asr_buf_t v;
    asr_buf_init(&v);
    asr_buf_append(&v, buf, at);
    asr_buf_puts(&v, "\"<|yue|>\",");
    asr_buf_append(&v, buf + at, len - at);
    free(buf);
    snprintf(path, sizeof path, "%s/tokenizer.json", g_model_dir[1]);
    assert_int_equal(asr_read_file(path, &buf, &len), ASR_OK);
    asr_tokenizer_t *t = NULL;
    char err[256] = "";
    asr_err_t e =
        asr_tokenizer_load_buffers(v.data, v.len, true, buf, len, 51866, &t, err, sizeof err);
    if (e)
        fail_msg("%s", err);
    const asr_special_tokens_t *sp = asr_tokenizer_special(t);
    int32_t got[] = {
        sp->eot,      sp->sot,       sp->translate,     sp->transcribe,      sp->sot_lm,
        sp->sot_prev, sp->no_speech, sp->no_timestamps, sp->timestamp_begin, sp->lang_begin};
    int32_t want[] = {50257, 50258, 50359, 50360, 50361, 50362, 50363, 50364, 50365, 50259};
    for (int k = 0; k < 10; k++)
        assert_int_equal(got[k], want[k]);
    assert_int_equal(sp->n_languages, 100);
    assert_int_equal(asr_tokenizer_lang_token(t, "yue"), 50358);
    assert_string_equal(asr_tokenizer_lang_code(t, 50358), "yue");
    assert_int_equal(asr_tokenizer_lang_token(t, "su"), 50357);
    int32_t sup[256];
    int n = asr_tokenizer_suppress_tokens(t, sup, 256);
    assert_int_equal(sup[n - 1], 50363); /* no_speech is the largest suppressed id */
    asr_tokenizer_destroy(t);
    free(buf);
    asr_buf_free(&v);
}

static int models_setup(void **state) {
    (void)state;
    for (int m = 0; m < 2; m++) {
        char err[256] = "";
        double t0 = asr_now_s();
        asr_err_t e =
            asr_tokenizer_load(g_model_dir[m], MODEL_NVOCAB[m], &g_tok[m], err, sizeof err);
        if (e) {
            fprintf(stderr, "load %s: %s\n", g_model_dir[m], err);
            return -1;
        }
        printf("  loaded %s in %.1f ms\n", MODEL_NAMES[m], (asr_now_s() - t0) * 1e3);
    }
    return 0;
}

static int models_teardown(void **state) {
    (void)state;
    for (int m = 0; m < 2; m++)
        asr_tokenizer_destroy(g_tok[m]), g_tok[m] = NULL;
    return 0;
}

static bool find_models(void) {
    const char *env = getenv("ASRD_MODELS");
    const char *roots[2] = {env && *env ? env : NULL, "/tmp/devmodels"};
    for (int r = 0; r < 2; r++) {
        if (!roots[r])
            continue;
        for (int m = 0; m < 2; m++)
            snprintf(g_model_dir[m], sizeof g_model_dir[m], "%s/%s", roots[r], MODEL_NAMES[m]);
        if (is_dir(g_model_dir[0]) && is_dir(g_model_dir[1]))
            return true;
    }
    return false;
}

int main(void) {
    const struct CMUnitTest basic[] = {
        cmocka_unit_test(test_unicode_classes), cmocka_unit_test(test_presplit),
        cmocka_unit_test(test_lang_tables),     cmocka_unit_test(test_tiny_vocab),
        cmocka_unit_test(test_bad_buffers),     cmocka_unit_test(test_load_dir_errors),
        cmocka_unit_test(test_vocab_txt),       cmocka_unit_test(test_oom),
    };
    const struct CMUnitTest models[] = {
        cmocka_unit_test(test_special_table),    cmocka_unit_test(test_golden_tiny_en),
        cmocka_unit_test(test_golden_base),      cmocka_unit_test(test_roundtrip_and_langs),
        cmocka_unit_test(test_model_dir_errors), cmocka_unit_test(test_large_v3_layout),
    };
    int failed = cmocka_run_group_tests_name("tokenizer_basic", basic, NULL, NULL);
    if (!find_models()) {
        fprintf(stderr, "model dirs not found ($ASRD_MODELS or /tmp/devmodels): skipping model "
                        "tests\n");
        return failed ? failed : 77;
    }
    failed +=
        cmocka_run_group_tests_name("tokenizer_models", models, models_setup, models_teardown);
    return failed;
}
