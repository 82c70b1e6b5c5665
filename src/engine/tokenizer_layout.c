/* tokenizer_layout: Whisper's special-token layout, and the id table through which the fronts
 * that do not list every token (ggml vocabularies, tiktoken files, Hugging Face directories whose
 * added tokens are partial or absent) create a tokenizer.
 *
 * The layout is openai/whisper's (tokenizer.py): after the base tokens come <|endoftext|>,
 * <|startoftranscript|>, one token per language (lang_codes.c order; 99, or 100 from large-v3),
 * <|translate|>, <|transcribe|>, <|startoflm|>, <|startofprev|>, <|nospeech|> (Hugging Face's
 * v1/v2 files call it <|nocaptions|>; both are found at load), <|notimestamps|> and the 1501
 * timestamps <|0.00|> .. <|30.00|>. The sizes are whisper.cpp's rule: a vocabulary of 51865 ids
 * or more is multilingual (eot 50257, after the 50257 base tokens of multilingual.tiktoken), else
 * English-only (eot 50256, after GPT-2's 50256). */
#include <stdio.h>
#include <string.h>
#include "engine/tokenizer_int.h"

#define N_AFTER_LANGS 6 /* translate .. notimestamps */
#define N_TIMESTAMPS 1501

static int n_langs(int32_t eot, int n_vocab) {
    return n_vocab - eot - 2 - N_AFTER_LANGS - N_TIMESTAMPS;
}

int32_t asr__tok_layout_eot(int n_vocab) {
    int32_t eot = n_vocab >= 51865 ? 50257 : 50256;
    int nl = n_langs(eot, n_vocab);
    return nl >= 1 && nl <= ASR_TOKENIZER_MAX_LANGUAGES ? eot : -1;
}

int asr__tok_special_name(int32_t id, int32_t eot, int n_vocab, char *buf, size_t cap) {
    static const char *const after[N_AFTER_LANGS] = {"translate",   "transcribe", "startoflm",
                                                     "startofprev", "nospeech",   "notimestamps"};
    int nl = n_langs(eot, n_vocab);
    if (nl < 0 || nl > ASR_TOKENIZER_MAX_LANGUAGES || id < eot || id >= n_vocab)
        return -1;
    int32_t k = id - eot;
    if (k < 2)
        return snprintf(buf, cap, "%s", k == 0 ? "<|endoftext|>" : "<|startoftranscript|>");
    if ((k -= 2) < nl)
        return snprintf(buf, cap, "<|%s|>", asr__lang_code_at(k));
    if ((k -= nl) < N_AFTER_LANGS)
        return snprintf(buf, cap, "<|%s|>", after[k]);
    k -= N_AFTER_LANGS; /* < N_TIMESTAMPS: id < n_vocab */
    return snprintf(buf, cap, "<|%d.%02d|>", k * 2 / 100, k * 2 % 100);
}

void asr__tok_list_init(asr__tok_list_t *l) {
    memset(l, 0, sizeof *l);
    l->max_id = -1;
}

void asr__tok_list_free(asr__tok_list_t *l) {
    free(l->pool);
    free(l->e);
    asr__tok_list_init(l);
}

asr_err_t asr__tok_list_add(asr__tok_list_t *l, const char *s, size_t len, int32_t id) {
    if (len > UINT32_MAX || id < 0)
        return ASR_ERR_INVALID;
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 1024;
        struct asr__tok_entry *e = asr_realloc(l->e, (size_t)cap * sizeof *e);
        if (!e)
            return ASR_ERR_NOMEM;
        l->e = e, l->cap = cap;
    }
    if (l->pool_len + len > l->pool_cap) {
        size_t cap = l->pool_cap ? 2 * l->pool_cap : 65536;
        while (cap < l->pool_len + len)
            cap *= 2;
        char *p = asr_realloc(l->pool, cap);
        if (!p)
            return ASR_ERR_NOMEM;
        l->pool = p, l->pool_cap = cap;
    }
    if (len)
        memcpy(l->pool + l->pool_len, s, len);
    l->e[l->n++] = (struct asr__tok_entry){l->pool_len, (uint32_t)len, id};
    l->pool_len += len;
    if (id > l->max_id)
        l->max_id = id;
    return ASR_OK;
}

int32_t asr__tok_list_find(const asr__tok_list_t *l, const char *s) {
    size_t n = strlen(s);
    for (int i = l->n - 1; i >= 0; i--)
        if (l->e[i].len == n && !memcmp(l->pool + l->e[i].off, s, n))
            return l->e[i].id;
    return -1;
}

asr_err_t asr__tok_list_build(const asr__tok_list_t *l, int n, int32_t eot, asr_tokenizer_t **out,
                              char *errbuf, size_t errbuf_len) {
    *out = NULL;
    if (n <= 0 || l->max_id >= n) {
        asr_errf(errbuf, errbuf_len, "token id %d is beyond the vocabulary's %d ids",
                 (int)l->max_id, n);
        return ASR_ERR_MODEL;
    }
    enum { NAME = 32 };
    const char **strs = asr_malloc((size_t)n * sizeof *strs);
    size_t *lens = asr_malloc((size_t)n * sizeof *lens);
    char *names = asr_malloc((size_t)n * NAME); /* the filled-in strings, NAME bytes per id */
    asr_err_t err = ASR_ERR_NOMEM;
    if (!strs || !lens || !names)
        goto done;
    for (int id = 0; id < n; id++)
        strs[id] = NULL;
    for (int i = 0; i < l->n; i++) {
        strs[l->e[i].id] = l->pool + l->e[i].off;
        lens[l->e[i].id] = l->e[i].len;
    }
    for (int32_t id = 0; id < n; id++) {
        if (strs[id])
            continue;
        char *s = names + (size_t)id * NAME;
        int k = -1;
        if (id >= eot)
            k = asr__tok_special_name(id, eot, n, s, NAME);
        else if (id == 50256 && eot == 50257)
            k = 0, s[0] = 0;
        if (k < 0)
            k = snprintf(s, NAME, "<|unused_%d|>", (int)id);
        strs[id] = s, lens[id] = (size_t)k;
    }
    err = asr__tok_begin(strs, lens, n, out, errbuf, errbuf_len);
    if (err) {
        asr_tokenizer_destroy(*out);
        *out = NULL;
    }
done:
    if (err == ASR_ERR_NOMEM)
        asr_errf(errbuf, errbuf_len, "out of memory loading the tokenizer");
    free(strs);
    free(lens);
    free(names);
    return err;
}
