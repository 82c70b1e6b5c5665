/* Fuzz target for the Whisper tokenizer.
 *
 * Each input is used twice:
 *  (a) split at its first NUL byte into vocabulary.json and tokenizer.json, written to a temp dir
 *      and loaded with asr_tokenizer_load (the first part is also loaded as vocabulary.txt from
 *      memory); whatever loads is exercised (encode, decode, suppress set, languages).
 *  (b) as text (up to the first NUL) for a tiny built-in vocabulary: encode, then decode must give
 *      the text back whenever the text is valid UTF-8 (byte-level BPE is lossless); the raw bytes
 *      are also decoded as 16-bit ids.
 * Crashes, sanitizer reports and the round-trip abort are the findings. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/tokenizer.h"
#include "engine/tokenizer_int.h"

static char g_dir[64];
static asr_tokenizer_t *g_tiny;

static void cleanup(void) {
    char p[128];
    snprintf(p, sizeof p, "%s/vocabulary.json", g_dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/tokenizer.json", g_dir);
    unlink(p);
    rmdir(g_dir);
    asr_tokenizer_destroy(g_tiny);
}

static void put(const char *name, const uint8_t *data, size_t len) {
    char p[128];
    snprintf(p, sizeof p, "%s/%s", g_dir, name);
    FILE *f = fopen(p, "wb");
    if (!f)
        abort();
    if (len && fwrite(data, 1, len, f) != len)
        abort();
    fclose(f);
}

/* Tiny vocabulary: bytes (ids 0-255 in byte order), a few merged tokens, "", specials with three
 * languages, 1501 timestamps. */
static asr_tokenizer_t *tiny_build(void) {
    asr_buf_t v, tok;
    asr_buf_init(&v);
    asr_buf_init(&tok);
    asr_buf_puts(&v, "[");
    for (int b = 0; b < 256; b++) {
        bool keep = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
        int cp = b;
        if (!keep) {
            int n = 0;
            for (int x = 0; x < b; x++)
                n += !((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255));
            cp = 256 + n;
        }
        asr_buf_printf(&v, "\"\\u%04x\",", cp);
    }
    asr_buf_puts(&v,
                 "\"he\",\"ll\",\"\\u0120t\",\"\\u0120the\",\"hell\",\"hello\",\"\\u00e4\\u00bd\","
                 "\"\",\"<|endoftext|>\",\"<|startoftranscript|>\",\"<|en|>\",\"<|zh|>\","
                 "\"<|de|>\",\"<|translate|>\",\"<|transcribe|>\",\"<|startoflm|>\","
                 "\"<|startofprev|>\",\"<|nospeech|>\",\"<|notimestamps|>\"");
    for (int i = 0; i <= 1500; i++)
        asr_buf_printf(&v, ",\"<|%d.%02d|>\"", i * 2 / 100, i * 2 % 100);
    asr_buf_puts(&v, "]");
    asr_buf_puts(&tok, "{\"model\":{\"type\":\"BPE\",\"merges\":[\"h e\",\"l l\",\"\\u0120 t\","
                       "\"\\u0120t he\",\"he ll\",\"hell o\",\"\\u00e4 \\u00bd\"]}}");
    asr_tokenizer_t *t = NULL;
    char err[256];
    if (asr_tokenizer_load_buffers(v.data, v.len, true, tok.data, tok.len, 0, &t, err,
                                   sizeof err)) {
        fprintf(stderr, "tiny vocabulary: %s\n", err);
        abort();
    }
    asr_buf_free(&v);
    asr_buf_free(&tok);
    return t;
}

static bool valid_utf8(const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        int k = asr_utf8_next((const uint8_t *)s + i, n - i, &cp);
        if (k < 0)
            return false;
        i += (size_t)k;
    }
    return true;
}

/* Encodes text and checks the round trip; returns false on an encoder error. */
static void exercise(const asr_tokenizer_t *t, const char *text, bool check_roundtrip) {
    int32_t *ids = NULL;
    int n = 0;
    if (asr_tokenizer_encode(t, text, &ids, &n) != ASR_OK)
        return;
    asr_buf_t b;
    asr_buf_init(&b);
    asr_tokenizer_decode(t, ids, n, &b);
    size_t len = strlen(text);
    if (check_roundtrip && valid_utf8(text, len) && (b.len != len || memcmp(b.data, text, len))) {
        fprintf(stderr, "round trip mismatch\n");
        abort();
    }
    asr_buf_free(&b);
    free(ids);
}

static void exercise_loaded(const asr_tokenizer_t *t, const char *text) {
    const asr_special_tokens_t *sp = asr_tokenizer_special(t);
    exercise(t, " hello world, it's 42!", false);
    exercise(t, text, false);
    int32_t sup[256];
    int n = asr_tokenizer_suppress_tokens(t, sup, 256);
    for (int i = 0; i < n; i++)
        if (sup[i] < 0 || sup[i] >= sp->n_vocab)
            abort();
    int32_t ids[] = {0, 1, sp->eot - 1, sp->eot, sp->sot, sp->timestamp_begin, sp->n_vocab - 1};
    asr_buf_t b;
    asr_buf_init(&b);
    asr_tokenizer_decode(t, ids, 7, &b);
    asr_buf_free(&b);
    int32_t zh = asr_tokenizer_lang_token(t, "zh");
    if (zh >= 0 && strcmp(asr_tokenizer_lang_code(t, zh), "zh") != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!g_dir[0]) {
        snprintf(g_dir, sizeof g_dir, "/tmp/asr_fuzz_tok_XXXXXX");
        if (!mkdtemp(g_dir))
            abort();
        g_tiny = tiny_build();
        atexit(cleanup);
    }
    const uint8_t *nul = memchr(data, 0, size);
    size_t a_len = nul ? (size_t)(nul - data) : size;
    const uint8_t *b = nul ? nul + 1 : data + size;
    size_t b_len = (size_t)(data + size - b);

    /* text: the first part, NUL-terminated, capped so one input stays fast */
    size_t t_len = a_len < 4096 ? a_len : 4096;
    char *text = malloc(t_len + 1);
    if (!text)
        return 0;
    memcpy(text, data, t_len);
    text[t_len] = 0;

    /* (a) vocabulary.json + tokenizer.json from the input */
    put("vocabulary.json", data, a_len);
    put("tokenizer.json", b, b_len);
    asr_tokenizer_t *t = NULL;
    char err[256];
    if (asr_tokenizer_load(g_dir, 0, &t, err, sizeof err) == ASR_OK) {
        exercise_loaded(t, text);
        asr_tokenizer_destroy(t);
    }
    if (asr_tokenizer_load_buffers((const char *)data, a_len, false, (const char *)b, b_len, 0, &t,
                                   err, sizeof err) == ASR_OK) {
        exercise_loaded(t, text);
        asr_tokenizer_destroy(t);
    }

    /* (b) text through the tiny vocabulary */
    exercise(g_tiny, text, true);
    int n_ids = (int)(size / 2 < 2048 ? size / 2 : 2048);
    int32_t ids[2048];
    for (int i = 0; i < n_ids; i++)
        ids[i] = (int16_t)(data[2 * i] | data[2 * i + 1] << 8);
    asr_buf_t out;
    asr_buf_init(&out);
    asr_tokenizer_decode(g_tiny, ids, n_ids, &out);
    asr_buf_free(&out);
    free(text);
    return 0;
}
