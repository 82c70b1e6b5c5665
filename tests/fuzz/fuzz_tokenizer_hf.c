/* Fuzz target for the Hugging Face tokenizer files (src/engine/tokenizer_hf.c, the tokenizer.json,
 * vocab.json and added_tokens.json readers of tokenizer_json.c, merges.txt) and the writers on what
 * loads.
 *
 * Input: byte 0 even: the rest is tokenizer.json; odd: the rest is vocab.json, NUL, merges.txt and,
 * after a second NUL, added_tokens.json. Byte 0's bit 1 passes the model's size 51865 instead of
 * none. Whatever loads is exercised (encode, decode, suppress set, merges) and written in every
 * layout. Crashes, sanitizer reports and the aborts are the findings.
 * tests/fuzz/make_tokenizer_corpus.py writes the seeds. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/tokenizer.h"
#include "engine/tokenizer_int.h"

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
    for (int i = 0; i < asr_tokenizer_n_merges(t); i++) {
        int32_t l, r, m = asr_tokenizer_merge(t, i, &l, &r);
        if (m < 0 || l < 0 || r < 0)
            abort();
    }
    asr_err_t (*writers[])(const asr_tokenizer_t *, asr_buf_t *, char *, size_t) = {
        asr_tokenizer_write_vocabulary_json, asr_tokenizer_write_tokenizer_json,
        asr_tokenizer_write_vocab_json, asr_tokenizer_write_merges_txt,
        asr_tokenizer_write_added_tokens_json};
    for (size_t i = 0; i < sizeof writers / sizeof *writers; i++) {
        asr_buf_t b;
        asr_buf_init(&b);
        char err[256];
        asr_err_t e = writers[i](t, &b, err, sizeof err);
        if (e != ASR_OK && e != ASR_ERR_INVALID)
            abort();
        asr_buf_free(&b);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1)
        return 0;
    int n_vocab = data[0] & 2 ? 51865 : 0;
    const char *p = (const char *)data + 1;
    size_t len = size - 1;
    asr_tokenizer_t *t = NULL;
    char err[256] = "";
    asr_err_t e;
    if (!(data[0] & 1)) {
        e = asr__tok_load_hf_buffers(p, len, NULL, 0, NULL, 0, NULL, 0, n_vocab, &t, err,
                                     sizeof err);
    } else {
        const char *nul = memchr(p, 0, len);
        if (!nul)
            return 0;
        size_t v_len = (size_t)(nul - p);
        const char *m = nul + 1;
        size_t m_len = len - v_len - 1;
        const char *nul2 = memchr(m, 0, m_len);
        const char *a = nul2 ? nul2 + 1 : NULL;
        size_t a_len = nul2 ? m_len - (size_t)(nul2 + 1 - m) : 0;
        if (nul2)
            m_len = (size_t)(nul2 - m);
        e = asr__tok_load_hf_buffers(NULL, 0, p, v_len, m, m_len, a, a_len, n_vocab, &t, err,
                                     sizeof err);
    }
    if (e == ASR_OK) {
        exercise(t);
        asr_tokenizer_destroy(t);
    } else if (t || !err[0] || strchr(err, '\n')) {
        abort(); /* an error leaves nothing and says why in one line */
    }
    return 0;
}
