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

/* ---- other layouts: ggml, tiktoken, built-in, Hugging Face; writers ---- */

/* A ggml vocabulary (u32 length + bytes per token) of the given raw tokens. */
static void ggml_put(asr_buf_t *g, const void *bytes, uint32_t len) {
    uint8_t le[4] = {(uint8_t)len, (uint8_t)(len >> 8), (uint8_t)(len >> 16), (uint8_t)(len >> 24)};
    asr_buf_append(g, le, 4);
    asr_buf_append(g, bytes, len);
}

/* The 256 single bytes in GPT-2's rank order (bytes_to_unicode's table order), then `extra`. */
static void ggml_small(asr_buf_t *g, const char *const *extra, int n_extra) {
    asr_buf_init(g);
    for (int b = 0; b < 256; b++) {
        bool keep = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
        if (keep) {
            uint8_t c = (uint8_t)b;
            ggml_put(g, &c, 1);
        }
    }
    for (int b = 0; b < 256; b++) {
        bool keep = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
        if (!keep) {
            uint8_t c = (uint8_t)b;
            ggml_put(g, &c, 1);
        }
    }
    for (int i = 0; i < n_extra; i++)
        ggml_put(g, extra[i], (uint32_t)strlen(extra[i]));
}

static void expect_merge(const asr_tokenizer_t *t, int rank, const char *l, const char *r,
                         const char *m) {
    int32_t a = -2, b = -2;
    int32_t id = asr_tokenizer_merge(t, rank, &a, &b);
    assert_true(id >= 0);
    assert_string_equal(asr_tokenizer_token_str(t, a), l);
    assert_string_equal(asr_tokenizer_token_str(t, b), r);
    assert_string_equal(asr_tokenizer_token_str(t, id), m);
}

/* Whisper's layout for the three vocabulary sizes (WHISPER-FACTS §5). */
static void test_layout(void **state) {
    (void)state;
    char s[32];
    assert_int_equal(asr__tok_layout_eot(51864), 50256);
    assert_int_equal(asr__tok_layout_eot(51865), 50257);
    assert_int_equal(asr__tok_layout_eot(51866), 50257);
    assert_int_equal(asr__tok_layout_eot(51867), -1);
    assert_int_equal(asr__tok_layout_eot(1000), -1);
    const struct {
        int n_vocab;
        int32_t id;
        const char *name;
    } cases[] = {
        {51864, 50256, "<|endoftext|>"}, {51864, 50258, "<|en|>"},
        {51864, 50357, "<|translate|>"}, {51864, 50361, "<|nospeech|>"},
        {51864, 50363, "<|0.00|>"},      {51864, 51863, "<|30.00|>"},
        {51865, 50257, "<|endoftext|>"}, {51865, 50258, "<|startoftranscript|>"},
        {51865, 50357, "<|su|>"},        {51865, 50358, "<|translate|>"},
        {51865, 50364, "<|0.00|>"},      {51865, 50365, "<|0.02|>"},
        {51866, 50358, "<|yue|>"},       {51866, 50363, "<|nospeech|>"},
        {51866, 50365, "<|0.00|>"},      {51866, 51865, "<|30.00|>"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int32_t eot = asr__tok_layout_eot(cases[i].n_vocab);
        assert_true(asr__tok_special_name(cases[i].id, eot, cases[i].n_vocab, s, sizeof s) > 0);
        assert_string_equal(s, cases[i].name);
    }
    assert_int_equal(asr__tok_special_name(50255, 50256, 51864, s, sizeof s), -1);
    assert_int_equal(asr__tok_special_name(51864, 50256, 51864, s, sizeof s), -1);
}

/* A ggml vocabulary: merges come from the ranks (rank-BPE, not the order of appearance), the
 * specials from the layout, missing ids become placeholders. */
static void test_ggml_small(void **state) {
    (void)state;
    /* "bc" ranks before "ab", so "abc" is a + bc although ab exists; "hello" ends as hell + o */
    static const char *const extra[] = {"he", "ll", "hell", "hello", "bc", "ab", "abc", " t"};
    asr_buf_t g;
    ggml_small(&g, extra, 8);
    asr_tokenizer_t *t = NULL;
    char err[256] = "";
    asr_err_t e =
        asr_tokenizer_load_ggml((const uint8_t *)g.data, g.len, 264, 51864, &t, err, sizeof err);
    if (e)
        fail_msg("%s", err);
    assert_int_equal(asr_tokenizer_n_merges(t), 8);
    expect_merge(t, 0, "h", "e", "he");
    expect_merge(t, 2, "he", "ll", "hell");
    expect_merge(t, 3, "hell", "o", "hello");
    expect_merge(t, 6, "a", "bc", "abc");
    expect_merge(t, 7, "Ġ", "t", "Ġt");
    assert_int_equal(asr_tokenizer_merge(t, 8, NULL, NULL), -1);
    assert_int_equal(asr_tokenizer_merge(t, -1, NULL, NULL), -1);
    const asr_special_tokens_t *sp = asr_tokenizer_special(t);
    assert_int_equal(sp->eot, 50256);
    assert_int_equal(sp->no_speech, 50361);
    assert_int_equal(sp->timestamp_begin, 50363);
    assert_false(sp->multilingual);
    assert_int_equal(asr_tokenizer_lang_token(t, "en"), -1);
    assert_string_equal(asr_tokenizer_token_str(t, 264), "<|unused_264|>");
    assert_string_equal(asr_tokenizer_token_str(t, 50255), "<|unused_50255|>");
    int32_t *ids;
    int n;
    assert_int_equal(asr_tokenizer_encode(t, "hello abc", &ids, &n), ASR_OK);
    assert_int_equal(n, 3); /* hello, Ġ, abc */
    assert_string_equal(asr_tokenizer_token_str(t, ids[0]), "hello");
    assert_string_equal(asr_tokenizer_token_str(t, ids[2]), "abc");
    free(ids);
    asr_tokenizer_destroy(t);

    /* multilingual: id 50256 missing becomes "" (so the model is multilingual), languages exist */
    assert_int_equal(
        asr_tokenizer_load_ggml((const uint8_t *)g.data, g.len, 264, 51866, &t, err, sizeof err),
        ASR_OK);
    sp = asr_tokenizer_special(t);
    assert_true(sp->multilingual);
    assert_int_equal(sp->n_languages, 100);
    assert_int_equal(asr_tokenizer_lang_token(t, "yue"), 50358);
    assert_string_equal(asr_tokenizer_token_str(t, 50256), "");
    asr_tokenizer_destroy(t);

    /* errors: one line, NULL out */
    t = (asr_tokenizer_t *)1;
    assert_int_equal(asr_tokenizer_load_ggml((const uint8_t *)g.data, g.len - 1, 264, 51864, &t,
                                             err, sizeof err),
                     ASR_ERR_MODEL);
    assert_null(t);
    assert_non_null(strstr(err, "truncated at token 263"));
    assert_int_equal(
        asr_tokenizer_load_ggml((const uint8_t *)g.data, g.len, 264, 1000, &t, err, sizeof err),
        ASR_ERR_MODEL);
    assert_non_null(strstr(err, "1000"));
    assert_int_equal(
        asr_tokenizer_load_ggml((const uint8_t *)g.data, g.len, 60000, 51864, &t, err, sizeof err),
        ASR_ERR_MODEL);
    assert_int_equal(
        asr_tokenizer_load_ggml((const uint8_t *)g.data, 100, 264, 51864, &t, err, sizeof err),
        ASR_ERR_MODEL);
    assert_int_equal(asr_tokenizer_load_ggml(NULL, 5, 264, 51864, &t, err, sizeof err),
                     ASR_ERR_INVALID);
    char long_tok[ASR_TOKENIZER_MAX_TOKEN_BYTES + 2];
    memset(long_tok, 'x', sizeof long_tok - 1);
    long_tok[sizeof long_tok - 1] = 0;
    const char *const extra_long[] = {long_tok};
    asr_buf_t g2;
    ggml_small(&g2, extra_long, 1);
    assert_int_equal(
        asr_tokenizer_load_ggml((const uint8_t *)g2.data, g2.len, 257, 51864, &t, err, sizeof err),
        ASR_ERR_MODEL);
    assert_non_null(strstr(err, "bytes long"));
    asr_buf_free(&g2);
    /* without a byte token: the usual vocabulary error */
    assert_int_equal(
        asr_tokenizer_load_ggml((const uint8_t *)g.data, g.len, 100, 51864, &t, err, sizeof err),
        ASR_ERR_MODEL);
    assert_non_null(strstr(err, "byte"));
    asr_buf_free(&g);
}

static void b64(asr_buf_t *out, const uint8_t *p, size_t n) {
    static const char A[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) |
                     (i + 2 < n ? p[i + 2] : 0);
        char q[4] = {A[v >> 18], A[(v >> 12) & 63], i + 1 < n ? A[(v >> 6) & 63] : '=',
                     i + 2 < n ? A[v & 63] : '='};
        asr_buf_append(out, q, 4);
    }
}

/* The ggml vocabulary g as a tiktoken file. */
static void ggml_to_tiktoken(const asr_buf_t *g, asr_buf_t *tt) {
    asr_buf_init(tt);
    const uint8_t *p = (const uint8_t *)g->data;
    for (size_t o = 0, r = 0; o < g->len; r++) {
        uint32_t len = p[o] | p[o + 1] << 8 | p[o + 2] << 16 | (uint32_t)p[o + 3] << 24;
        b64(tt, p + o + 4, len);
        asr_buf_printf(tt, " %zu\n", r);
        o += 4 + len;
    }
}

static void test_tiktoken(void **state) {
    (void)state;
    static const char *const extra[] = {"he", "ll", "hell", "hello", "bc", "ab", "abc", " t"};
    asr_buf_t g, tt;
    ggml_small(&g, extra, 8);
    ggml_to_tiktoken(&g, &tt);
    asr_tokenizer_t *t = NULL;
    char err[256] = "";
    asr_err_t e = asr_tokenizer_load_tiktoken(tt.data, tt.len, 51864, &t, err, sizeof err);
    if (e)
        fail_msg("%s", err);
    assert_int_equal(asr_tokenizer_n_merges(t), 8);
    expect_merge(t, 6, "a", "bc", "abc");
    asr_tokenizer_destroy(t);
    /* errors: a rank out of order, bad base64, no rank */
    const char *bad[] = {"IQ== 1\n", "I!== 0\n", "IQ==\n", "IQ== x\n", "I 0\n"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(
            asr_tokenizer_load_tiktoken(bad[i], strlen(bad[i]), 51864, &t, err, sizeof err),
            ASR_ERR_MODEL);
        assert_null(t);
        assert_non_null(strstr(err, "tiktoken line 1"));
    }
    asr_buf_free(&g);
    asr_buf_free(&tt);
}

/* The embedded multilingual.tiktoken: Whisper's multilingual layout, 50000 merges. */
static void test_builtin(void **state) {
    (void)state;
    asr_tokenizer_t *t = NULL;
    char err[256] = "";
    for (int v = 51865; v <= 51866; v++) {
        double t0 = asr_now_s();
        asr_err_t e = asr_tokenizer_builtin(v, &t, err, sizeof err);
        if (e)
            fail_msg("%s", err);
        printf("  built-in tokenizer (%d) in %.1f ms\n", v, (asr_now_s() - t0) * 1e3);
        const asr_special_tokens_t *sp = asr_tokenizer_special(t);
        assert_int_equal(sp->n_vocab, v);
        assert_int_equal(sp->eot, 50257);
        assert_true(sp->multilingual);
        assert_int_equal(sp->n_languages, v == 51866 ? 100 : 99);
        assert_int_equal(asr_tokenizer_n_merges(t), 50000);
        assert_int_equal(asr_tokenizer_lang_token(t, "zh"), 50260);
        int32_t *ids;
        int n;
        const char *text = "Hello, world! 你好，世界。 Привет";
        assert_int_equal(asr_tokenizer_encode(t, text, &ids, &n), ASR_OK);
        assert_true(n > 5 && n < 30);
        char *back = decode_str(t, ids, n);
        assert_string_equal(back, text);
        free(back);
        free(ids);
        asr_tokenizer_destroy(t);
    }
    t = (asr_tokenizer_t *)1;
    assert_int_equal(asr_tokenizer_builtin(51864, &t, err, sizeof err), ASR_ERR_INVALID);
    assert_null(t);
    assert_non_null(strstr(err, "51864"));
}

/* The HF files of the tiny vocabulary (written by the writers) load back identically; absent
 * specials are synthesized; malformed files fail with the file's name. */
static void test_hf_small(void **state) {
    (void)state;
    asr_tokenizer_t *t = tiny_load(), *u = NULL;
    char err[256] = "";
    asr_buf_t tj, vj, mt, aj;
    asr_buf_init(&tj), asr_buf_init(&vj), asr_buf_init(&mt), asr_buf_init(&aj);
    assert_int_equal(asr_tokenizer_write_tokenizer_json(t, &tj, err, sizeof err), ASR_OK);
    assert_int_equal(asr_tokenizer_write_vocab_json(t, &vj, err, sizeof err), ASR_OK);
    assert_int_equal(asr_tokenizer_write_merges_txt(t, &mt, err, sizeof err), ASR_OK);
    assert_int_equal(asr_tokenizer_write_added_tokens_json(t, &aj, err, sizeof err), ASR_OK);
    assert_non_null(strstr(mt.data, "#version: 0.2\nh e\nl l\nĠ t\n"));
    for (int layout = 0; layout < 2; layout++) {
        asr_err_t e = layout == 0
                          ? asr__tok_load_hf_buffers(tj.data, tj.len, NULL, 0, NULL, 0, NULL, 0, 0,
                                                     &u, err, sizeof err)
                          : asr__tok_load_hf_buffers(NULL, 0, vj.data, vj.len, mt.data, mt.len,
                                                     aj.data, aj.len, 0, &u, err, sizeof err);
        if (e)
            fail_msg("layout %d: %s", layout, err);
        assert_int_equal(asr_tokenizer_special(u)->n_vocab, asr_tokenizer_special(t)->n_vocab);
        for (int32_t id = 0; id < asr_tokenizer_special(t)->n_vocab; id++)
            assert_string_equal(asr_tokenizer_token_str(u, id), asr_tokenizer_token_str(t, id));
        assert_int_equal(asr_tokenizer_n_merges(u), 6);
        for (int i = 0; i < 6; i++) {
            int32_t a, b, c, d;
            assert_int_equal(asr_tokenizer_merge(u, i, &a, &b), asr_tokenizer_merge(t, i, &c, &d));
            assert_int_equal(a, c);
            assert_int_equal(b, d);
        }
        asr_tokenizer_destroy(u);
    }
    /* merges.txt with CRLF and no header; HF ["a","b"] pairs */
    const char *crlf = "h e\r\nl l\r\n";
    assert_int_equal(asr__tok_load_hf_buffers(NULL, 0, vj.data, vj.len, crlf, strlen(crlf), aj.data,
                                              aj.len, 0, &u, err, sizeof err),
                     ASR_OK);
    assert_int_equal(asr_tokenizer_n_merges(u), 2);
    asr_tokenizer_destroy(u);
    /* errors name the file */
    const char *bad_merges = "#version: 0.2\nh e x\n";
    assert_int_equal(asr__tok_load_hf_buffers(NULL, 0, vj.data, vj.len, bad_merges,
                                              strlen(bad_merges), NULL, 0, 0, &u, err, sizeof err),
                     ASR_ERR_MODEL);
    assert_null(u);
    assert_non_null(strstr(err, "merges.txt: line 2"));
    const char *unknown = "q z\n";
    assert_int_equal(asr__tok_load_hf_buffers(NULL, 0, vj.data, vj.len, unknown, strlen(unknown),
                                              aj.data, aj.len, 0, &u, err, sizeof err),
                     ASR_ERR_MODEL);
    assert_non_null(strstr(err, "merges.txt: merge 0"));
    const char *bad_json[] = {"{\"a\": 1.5}", "{\"a\": -1}", "[1]", "{\"a\": 99999999999}",
                              "{\"a\": 1"};
    for (size_t i = 0; i < sizeof bad_json / sizeof *bad_json; i++) {
        assert_int_equal(asr__tok_load_hf_buffers(NULL, 0, bad_json[i], strlen(bad_json[i]),
                                                  mt.data, mt.len, NULL, 0, 0, &u, err, sizeof err),
                         ASR_ERR_MODEL);
        assert_non_null(strstr(err, "vocab.json: "));
        assert_int_equal(asr__tok_load_hf_buffers(NULL, 0, vj.data, vj.len, mt.data, mt.len,
                                                  bad_json[i], strlen(bad_json[i]), 0, &u, err,
                                                  sizeof err),
                         ASR_ERR_MODEL);
        assert_non_null(strstr(err, "added_tokens.json: "));
    }
    const char *bad_tok[] = {
        "{\"model\":{\"type\":\"BPE\",\"merges\":[]}}",
        "{\"model\":{\"type\":\"BPE\",\"vocab\":{}}}",
        "{\"model\":{\"type\":\"Unigram\",\"vocab\":{},\"merges\":[]}}",
        "{\"added_tokens\":[{\"id\":3}],\"model\":{\"type\":\"BPE\",\"vocab\":{},\"merges\":[]}}",
        "{\"added_tokens\":{},\"model\":{\"type\":\"BPE\",\"vocab\":{},\"merges\":[]}}",
        "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":2000000},\"merges\":[]}}",
    };
    for (size_t i = 0; i < sizeof bad_tok / sizeof *bad_tok; i++) {
        assert_int_equal(asr__tok_load_hf_buffers(bad_tok[i], strlen(bad_tok[i]), NULL, 0, NULL, 0,
                                                  NULL, 0, 0, &u, err, sizeof err),
                         ASR_ERR_MODEL);
        assert_null(u);
        assert_non_null(strstr(err, i < 5 ? "tokenizer.json: " : "too large"));
    }
    /* an added_tokens.json without the timestamps (older Hugging Face files): synthesized */
    const char *no_ts = "{\"<|endoftext|>\": 263, \"<|startoftranscript|>\": 264, \"<|en|>\": 265,"
                        " \"<|zh|>\": 266, \"<|de|>\": 267, \"<|translate|>\": 268, "
                        "\"<|transcribe|>\": 269, \"<|startoflm|>\": 270, \"<|startofprev|>\": 271,"
                        " \"<|nocaptions|>\": 272, \"<|notimestamps|>\": 273}";
    assert_int_equal(asr__tok_load_hf_buffers(NULL, 0, vj.data, vj.len, mt.data, mt.len, no_ts,
                                              strlen(no_ts), 0, &u, err, sizeof err),
                     ASR_OK);
    assert_int_equal(asr_tokenizer_special(u)->n_vocab, asr_tokenizer_special(t)->n_vocab);
    assert_int_equal(asr_tokenizer_special(u)->no_speech, 272);
    assert_string_equal(asr_tokenizer_token_str(u, 1774), "<|30.00|>");
    asr_tokenizer_destroy(u);
    asr_buf_free(&tj), asr_buf_free(&vj), asr_buf_free(&mt), asr_buf_free(&aj);
    asr_tokenizer_destroy(t);
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

/* One of the builds of test_oom_layouts. */
static asr_err_t oom_load(int what, const asr_buf_t *g, const asr_buf_t *tt, const asr_buf_t *tj,
                          asr_tokenizer_t **t, char *err, size_t err_len) {
    if (what == 0)
        return asr_tokenizer_load_ggml((const uint8_t *)g->data, g->len, 260, 51865, t, err,
                                       err_len);
    if (what == 1)
        return asr_tokenizer_load_tiktoken(tt->data, tt->len, 51864, t, err, err_len);
    return asr__tok_load_hf_buffers(tj->data, tj->len, NULL, 0, NULL, 0, NULL, 0, 0, t, err,
                                    err_len);
}

/* The ggml, tiktoken and Hugging Face builds fail cleanly at the first allocation of each of
 * their allocation sites (ASan checks for leaks). */
static void test_oom_layouts(void **state) {
    (void)state;
    static const char *const extra[] = {"he", "ll", "hell", "hello"};
    asr_buf_t g, tt, tj;
    ggml_small(&g, extra, 4);
    ggml_to_tiktoken(&g, &tt);
    asr_tokenizer_t *tiny = tiny_load();
    asr_buf_init(&tj);
    assert_int_equal(asr_tokenizer_write_tokenizer_json(tiny, &tj, NULL, 0), ASR_OK);
    asr_tokenizer_destroy(tiny);
    for (int what = 0; what < 3; what++) {
        asr_tokenizer_t *t = NULL;
        char err[256] = "";
        asr_alloc_trace(true);
        assert_int_equal(oom_load(what, &g, &tt, &tj, &t, err, sizeof err), ASR_OK);
        asr_alloc_trace(false);
        assert_int_equal(asr_tokenizer_n_merges(t), what == 2 ? 6 : 4);
        asr_tokenizer_destroy(t);
        unsigned long first[128];
        int n_sites = asr_alloc_trace_sites(first, 128);
        assert_true(n_sites > 5);
        for (int k = 0; k < n_sites; k++) {
            t = (asr_tokenizer_t *)1;
            asr_alloc_fail_set((long)first[k], 0);
            asr_err_t e = oom_load(what, &g, &tt, &tj, &t, err, sizeof err);
            asr_alloc_fail_set(0, 0);
            if (e != ASR_ERR_NOMEM)
                fail_msg("build %d, allocation %lu: %d (%s)", what, first[k], e, err);
            assert_null(t);
            assert_non_null(strstr(err, "out of memory"));
        }
    }
    asr_buf_free(&g);
    asr_buf_free(&tt);
    asr_buf_free(&tj);
}

/* ---- the other layouts against the models' own tokenizers ---- */

/* Texts to encode: the reference texts of the test clips (tests/data/audio/MANIFEST.tsv, many
 * languages) and the golden file's encode texts. */
static char **g_texts;
static int g_n_texts;

static void add_text(const char *s, size_t n) {
    g_texts = realloc(g_texts, sizeof *g_texts * (size_t)(g_n_texts + 1));
    g_texts[g_n_texts] = strndup(s, n);
    g_n_texts++;
}

static void load_texts(void) {
    if (g_texts)
        return;
    char path[1200], *buf;
    size_t len;
    snprintf(path, sizeof path, "%s/tests/data/audio/MANIFEST.tsv", source_dir());
    assert_int_equal(asr_read_file(path, &buf, &len), ASR_OK);
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
        char *tab = strrchr(line, '\t');
        if (tab && strncmp(line, "file\t", 5))
            add_text(tab + 1, strlen(tab + 1));
    }
    free(buf);
    for (int m = 0; m < 2; m++) {
        json_t *g = load_golden(m), *e;
        size_t i;
        json_array_foreach(json_object_get(g, "encode"), i, e) {
            json_t *jt = json_object_get(e, "text");
            add_text(json_string_value(jt), json_string_length(jt));
        }
        json_decref(g);
    }
    assert_true(g_n_texts > 40);
}

/* a and b are the same tokenizer: special ids, token strings (all, or with special_names false
 * only the base tokens': synthesized specials follow openai's names, while the English models'
 * files say <|nocaptions|> and old language codes such as <|iw|>, which English-only models never
 * use), merges, suppress set, encodings. */
static void same_tokenizer(const asr_tokenizer_t *a, const asr_tokenizer_t *b, bool special_names,
                           const char *what) {
    const asr_special_tokens_t *x = asr_tokenizer_special(a), *y = asr_tokenizer_special(b);
    int32_t xs[] = {
        x->eot,         x->sot,       x->translate,     x->transcribe,      x->sot_lm,
        x->sot_prev,    x->no_speech, x->no_timestamps, x->timestamp_begin, x->lang_begin,
        x->n_languages, x->n_vocab,   x->multilingual};
    int32_t ys[] = {
        y->eot,         y->sot,       y->translate,     y->transcribe,      y->sot_lm,
        y->sot_prev,    y->no_speech, y->no_timestamps, y->timestamp_begin, y->lang_begin,
        y->n_languages, y->n_vocab,   y->multilingual};
    for (size_t k = 0; k < sizeof xs / sizeof *xs; k++)
        if (xs[k] != ys[k])
            fail_msg("%s: special field %zu: %d != %d", what, k, xs[k], ys[k]);
    for (int32_t id = 0; id < x->n_vocab; id++) {
        if (!special_names && id >= x->eot)
            break;
        if (strcmp(asr_tokenizer_token_str(a, id), asr_tokenizer_token_str(b, id)))
            fail_msg("%s: token %d: \"%s\" != \"%s\"", what, id, asr_tokenizer_token_str(a, id),
                     asr_tokenizer_token_str(b, id));
    }
    for (int i = 0; i < ASR_TOKENIZER_MAX_LANGUAGES; i++) {
        const char *code = asr__lang_code_at(i);
        assert_int_equal(asr_tokenizer_lang_token(a, code), asr_tokenizer_lang_token(b, code));
    }
    assert_int_equal(asr_tokenizer_n_merges(a), asr_tokenizer_n_merges(b));
    for (int i = 0; i < asr_tokenizer_n_merges(a); i++) {
        int32_t l1, r1, l2, r2;
        int32_t m1 = asr_tokenizer_merge(a, i, &l1, &r1), m2 = asr_tokenizer_merge(b, i, &l2, &r2);
        if (m1 != m2 || l1 != l2 || r1 != r2)
            fail_msg("%s: merge %d: %d+%d=%d vs %d+%d=%d", what, i, l1, r1, m1, l2, r2, m2);
    }
    int32_t s1[512], s2[512];
    int n1 = asr_tokenizer_suppress_tokens(a, s1, 512),
        n2 = asr_tokenizer_suppress_tokens(b, s2, 512);
    assert_int_equal(n1, n2);
    assert_memory_equal(s1, s2, sizeof *s1 * (size_t)n1);
    load_texts();
    for (int i = 0; i < g_n_texts; i++) {
        int32_t *i1, *i2;
        int k1, k2;
        assert_int_equal(asr_tokenizer_encode(a, g_texts[i], &i1, &k1), ASR_OK);
        assert_int_equal(asr_tokenizer_encode(b, g_texts[i], &i2, &k2), ASR_OK);
        if (k1 != k2 || (k1 && memcmp(i1, i2, sizeof *i1 * (size_t)k1)))
            fail_msg("%s: encodings of \"%s\" differ", what, g_texts[i]);
        free(i1);
        free(i2);
    }
}

/* The raw bytes of ids [0, n) as a ggml vocabulary. */
static void ggml_of(const asr_tokenizer_t *t, int n, asr_buf_t *g) {
    asr_buf_init(g);
    for (int32_t id = 0; id < n; id++) {
        size_t len;
        const char *b = asr_tokenizer_token_bytes(t, id, &len);
        ggml_put(g, b, (uint32_t)len);
    }
}

/* openai/whisper's multilingual.tiktoken, embedded, is base's tokenizer exactly. */
static void test_builtin_vs_base(void **state) {
    (void)state;
    asr_tokenizer_t *t = NULL;
    char err[256] = "";
    assert_int_equal(asr_tokenizer_builtin(51865, &t, err, sizeof err), ASR_OK);
    same_tokenizer(g_tok[1], t, true, "built-in vs base");
    printf("  built-in = base: %d merges, %d texts\n", asr_tokenizer_n_merges(t), g_n_texts);
    asr_tokenizer_destroy(t);
}

/* What whisper.cpp's converters write (the base tokens' bytes, rank order; the Hugging Face
 * converter adds <|endoftext|>) gives the models' tokenizers back. */
static void test_ggml_vs_models(void **state) {
    (void)state;
    for (int m = 0; m < 2; m++) {
        const asr_special_tokens_t *sp = asr_tokenizer_special(g_tok[m]);
        for (int extra = 0; extra < 2; extra++) {
            asr_buf_t g;
            ggml_of(g_tok[m], sp->eot + extra, &g);
            asr_tokenizer_t *t = NULL;
            char err[256] = "";
            double t0 = asr_now_s();
            asr_err_t e = asr_tokenizer_load_ggml((const uint8_t *)g.data, g.len, sp->eot + extra,
                                                  sp->n_vocab, &t, err, sizeof err);
            if (e)
                fail_msg("%s: %s", MODEL_NAMES[m], err);
            if (!extra)
                printf("  ggml vocabulary of %s in %.1f ms\n", MODEL_NAMES[m],
                       (asr_now_s() - t0) * 1e3);
            same_tokenizer(g_tok[m], t, m == 1, MODEL_NAMES[m]);
            asr_tokenizer_destroy(t);
            asr_buf_free(&g);
        }
    }
}

static void write_buf(const char *dir, const char *name, const asr_buf_t *b) {
    write_file(dir, name, b->data, b->len);
}

static void unlink_in(const char *dir, const char *name) {
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    unlink(path);
}

/* The writers' files, in every layout, load back as the same tokenizer (through the directory
 * loader, so its layout detection is covered too). */
static void test_writers_roundtrip(void **state) {
    (void)state;
    static const char *const files[] = {"vocabulary.json", "tokenizer.json", "vocab.json",
                                        "merges.txt", "added_tokens.json"};
    for (int m = 0; m < 2; m++) {
        asr_tokenizer_t *t = g_tok[m], *u = NULL;
        int nv = MODEL_NVOCAB[m];
        char err[256] = "", dir[] = "/tmp/asr_tok_test_XXXXXX";
        assert_non_null(mkdtemp(dir));
        asr_buf_t b[5];
        for (int i = 0; i < 5; i++)
            asr_buf_init(&b[i]);
        assert_int_equal(asr_tokenizer_write_vocabulary_json(t, &b[0], err, sizeof err), ASR_OK);
        assert_int_equal(asr_tokenizer_write_tokenizer_json(t, &b[1], err, sizeof err), ASR_OK);
        assert_int_equal(asr_tokenizer_write_vocab_json(t, &b[2], err, sizeof err), ASR_OK);
        assert_int_equal(asr_tokenizer_write_merges_txt(t, &b[3], err, sizeof err), ASR_OK);
        assert_int_equal(asr_tokenizer_write_added_tokens_json(t, &b[4], err, sizeof err), ASR_OK);
        /* CTranslate2: vocabulary.json + tokenizer.json */
        write_buf(dir, files[0], &b[0]);
        write_buf(dir, files[1], &b[1]);
        assert_int_equal(asr_tokenizer_load(dir, nv, &u, err, sizeof err), ASR_OK);
        same_tokenizer(t, u, true, "vocabulary.json + tokenizer.json");
        asr_tokenizer_destroy(u);
        /* Hugging Face: tokenizer.json alone */
        unlink_in(dir, files[0]);
        double t0 = asr_now_s();
        assert_int_equal(asr_tokenizer_load(dir, nv, &u, err, sizeof err), ASR_OK);
        printf("  %s: Hugging Face tokenizer.json loaded in %.1f ms\n", MODEL_NAMES[m],
               (asr_now_s() - t0) * 1e3);
        same_tokenizer(t, u, true, "tokenizer.json");
        asr_tokenizer_destroy(u);
        /* vocab.json + merges.txt + added_tokens.json, then without added_tokens.json */
        unlink_in(dir, files[1]);
        write_buf(dir, files[2], &b[2]);
        write_buf(dir, files[3], &b[3]);
        write_buf(dir, files[4], &b[4]);
        assert_int_equal(asr_tokenizer_load(dir, nv, &u, err, sizeof err), ASR_OK);
        same_tokenizer(t, u, true, "vocab.json + merges.txt + added_tokens.json");
        asr_tokenizer_destroy(u);
        unlink_in(dir, files[4]);
        assert_int_equal(asr_tokenizer_load(dir, nv, &u, err, sizeof err), ASR_OK);
        same_tokenizer(t, u, m == 1, "vocab.json + merges.txt (specials synthesized)");
        asr_tokenizer_destroy(u);
        /* ... also without the model's size: Whisper's for the base-token count */
        assert_int_equal(asr_tokenizer_load(dir, 0, &u, err, sizeof err), ASR_OK);
        assert_int_equal(asr_tokenizer_special(u)->n_vocab, nv);
        asr_tokenizer_destroy(u);
        /* a wrong size is refused */
        assert_int_equal(asr_tokenizer_load(dir, nv - 1510, &u, err, sizeof err), ASR_ERR_MODEL);
        /* vocab.json alone */
        unlink_in(dir, files[3]);
        assert_int_equal(asr_tokenizer_load(dir, nv, &u, err, sizeof err), ASR_ERR_MODEL);
        assert_non_null(strstr(err, "merges.txt"));
        unlink_in(dir, files[2]);
        rmdir(dir);
        for (int i = 0; i < 5; i++)
            asr_buf_free(&b[i]);
    }
}

/* The models' own tokenizer.json (Hugging Face's, faster-whisper's copy) is a Hugging Face layout
 * by itself: tiny.en's lists no timestamps (synthesized), base's "merges" are ["a", "b"] pairs. */
static void test_hf_model_files(void **state) {
    (void)state;
    for (int m = 0; m < 2; m++) {
        char path[1200], *buf, err[256] = "";
        size_t len;
        snprintf(path, sizeof path, "%s/tokenizer.json", g_model_dir[m]);
        assert_int_equal(asr_read_file(path, &buf, &len), ASR_OK);
        asr_tokenizer_t *u = NULL;
        asr_err_t e = asr__tok_load_hf_buffers(buf, len, NULL, 0, NULL, 0, NULL, 0, MODEL_NVOCAB[m],
                                               &u, err, sizeof err);
        if (e)
            fail_msg("%s: %s", MODEL_NAMES[m], err);
        same_tokenizer(g_tok[m], u, true, "the model's tokenizer.json");
        asr_tokenizer_destroy(u);
        free(buf);
    }
}

/* The built-in tokenizers (multilingual v1/v2 and v3's 100 languages) through every writer and
 * back through each layout's loader, and through a ggml vocabulary: the same tokenizer. */
static void test_builtin_layouts(void **state) {
    (void)state;
    for (int v = 51865; v <= 51866; v++) {
        asr_tokenizer_t *t = NULL, *u = NULL;
        char err[256] = "";
        assert_int_equal(asr_tokenizer_builtin(v, &t, err, sizeof err), ASR_OK);
        asr_buf_t tj, vj, mt, vocab;
        asr_buf_init(&tj), asr_buf_init(&vj), asr_buf_init(&mt), asr_buf_init(&vocab);
        assert_int_equal(asr_tokenizer_write_tokenizer_json(t, &tj, err, sizeof err), ASR_OK);
        assert_int_equal(asr_tokenizer_write_vocab_json(t, &vj, err, sizeof err), ASR_OK);
        assert_int_equal(asr_tokenizer_write_merges_txt(t, &mt, err, sizeof err), ASR_OK);
        assert_int_equal(asr_tokenizer_write_vocabulary_json(t, &vocab, err, sizeof err), ASR_OK);
        assert_int_equal(asr__tok_load_hf_buffers(tj.data, tj.len, NULL, 0, NULL, 0, NULL, 0, v, &u,
                                                  err, sizeof err),
                         ASR_OK);
        same_tokenizer(t, u, true, "built-in via tokenizer.json");
        asr_tokenizer_destroy(u);
        /* no added_tokens.json: the specials come from the layout of the model's size */
        assert_int_equal(asr__tok_load_hf_buffers(NULL, 0, vj.data, vj.len, mt.data, mt.len, NULL,
                                                  0, v, &u, err, sizeof err),
                         ASR_OK);
        same_tokenizer(t, u, true, "built-in via vocab.json + merges.txt");
        asr_tokenizer_destroy(u);
        assert_int_equal(asr_tokenizer_load_buffers(vocab.data, vocab.len, true, tj.data, tj.len, v,
                                                    &u, err, sizeof err),
                         ASR_OK);
        same_tokenizer(t, u, true, "built-in via vocabulary.json");
        asr_tokenizer_destroy(u);
        asr_buf_t g;
        ggml_of(t, 50257, &g);
        assert_int_equal(
            asr_tokenizer_load_ggml((const uint8_t *)g.data, g.len, 50257, v, &u, err, sizeof err),
            ASR_OK);
        same_tokenizer(t, u, true, "built-in via ggml");
        asr_tokenizer_destroy(u);
        asr_buf_free(&g);
        asr_buf_free(&tj), asr_buf_free(&vj), asr_buf_free(&mt), asr_buf_free(&vocab);
        asr_tokenizer_destroy(t);
    }
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
        cmocka_unit_test(test_layout),          cmocka_unit_test(test_ggml_small),
        cmocka_unit_test(test_tiktoken),        cmocka_unit_test(test_builtin),
        cmocka_unit_test(test_hf_small),        cmocka_unit_test(test_oom_layouts),
        cmocka_unit_test(test_builtin_layouts),
    };
    const struct CMUnitTest models[] = {
        cmocka_unit_test(test_special_table),     cmocka_unit_test(test_golden_tiny_en),
        cmocka_unit_test(test_golden_base),       cmocka_unit_test(test_roundtrip_and_langs),
        cmocka_unit_test(test_model_dir_errors),  cmocka_unit_test(test_large_v3_layout),
        cmocka_unit_test(test_builtin_vs_base),   cmocka_unit_test(test_ggml_vs_models),
        cmocka_unit_test(test_writers_roundtrip), cmocka_unit_test(test_hf_model_files),
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
