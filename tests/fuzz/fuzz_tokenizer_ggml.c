/* Fuzz target for the tokenizers built from raw token bytes in rank order: whisper.cpp ggml
 * vocabularies and tiktoken files (src/engine/tokenizer_ggml.c, tokenizer_layout.c), and for the
 * writers on what they build.
 *
 * Input: byte 0 picks the model's vocabulary size (51864, 51865, 51866 or a size that is not
 * Whisper's), byte 1 the format (even: ggml, odd: tiktoken); for ggml bytes 2-3 are n_tokens
 * (little-endian) and the rest the vocabulary, for tiktoken the rest is the file's text.
 * Whatever loads is exercised (encode, decode, suppress set), written as vocabulary.json +
 * tokenizer.json and loaded back through the CTranslate2 path: that must succeed with the same
 * special ids and merge count (ggml strings are always valid UTF-8). Crashes, sanitizer reports and
 * those aborts are the findings. tests/fuzz/make_tokenizer_corpus.py writes the seeds. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/tokenizer.h"

static void check_rewrite(const asr_tokenizer_t *t) {
    asr_buf_t v, j;
    asr_buf_init(&v);
    asr_buf_init(&j);
    char err[256];
    if (asr_tokenizer_write_vocabulary_json(t, &v, err, sizeof err) ||
        asr_tokenizer_write_tokenizer_json(t, &j, err, sizeof err)) {
        fprintf(stderr, "writer: %s\n", err);
        abort();
    }
    asr_tokenizer_t *u = NULL;
    if (asr_tokenizer_load_buffers(v.data, v.len, true, j.data, j.len, 0, &u, err, sizeof err)) {
        fprintf(stderr, "reload: %s\n", err);
        abort();
    }
    const asr_special_tokens_t *a = asr_tokenizer_special(t), *b = asr_tokenizer_special(u);
    if (a->eot != b->eot || a->sot != b->sot || a->no_speech != b->no_speech ||
        a->timestamp_begin != b->timestamp_begin || a->n_vocab != b->n_vocab ||
        asr_tokenizer_n_merges(t) != asr_tokenizer_n_merges(u))
        abort();
    asr_tokenizer_destroy(u);
    asr_buf_free(&v);
    asr_buf_free(&j);
}

static void exercise(const asr_tokenizer_t *t) {
    int32_t *ids = NULL;
    int n = 0;
    if (asr_tokenizer_encode(t, "hello world, it's 42! \xe4\xbd\xa0\xe5\xa5\xbd", &ids, &n) ==
        ASR_OK) {
        asr_buf_t b;
        asr_buf_init(&b);
        asr_tokenizer_decode(t, ids, n, &b);
        asr_buf_free(&b);
        free(ids);
    }
    int32_t sup[256];
    int k = asr_tokenizer_suppress_tokens(t, sup, 256);
    for (int i = 0; i < k; i++)
        if (sup[i] < 0 || sup[i] >= asr_tokenizer_special(t)->n_vocab)
            abort();
    for (int i = 0; i < asr_tokenizer_n_merges(t); i++) {
        int32_t l, r, m = asr_tokenizer_merge(t, i, &l, &r);
        if (m < 0 || l < 0 || r < 0)
            abort();
    }
    check_rewrite(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2)
        return 0;
    static const int sizes[4] = {51864, 51865, 51866, 1000};
    int n_vocab = sizes[data[0] & 3];
    asr_tokenizer_t *t = NULL;
    char err[256] = "";
    asr_err_t e;
    if (data[1] & 1) {
        e = asr_tokenizer_load_tiktoken((const char *)data + 2, size - 2, n_vocab, &t, err,
                                        sizeof err);
    } else {
        if (size < 4)
            return 0;
        int n_tokens = data[2] | data[3] << 8;
        e = asr_tokenizer_load_ggml(data + 4, size - 4, n_tokens, n_vocab, &t, err, sizeof err);
    }
    if (e == ASR_OK) {
        exercise(t);
        asr_tokenizer_destroy(t);
    } else if (t || !err[0] || strchr(err, '\n')) {
        abort(); /* an error leaves nothing and says why in one line */
    }
    return 0;
}
