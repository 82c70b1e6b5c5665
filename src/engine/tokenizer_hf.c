/* tokenizer_hf: the tokenizer of a Hugging Face transformers directory, which has no
 * vocabulary.json: tokenizer.json (model.vocab {string: id} of the base tokens, model.merges as
 * "a b" strings or ["a", "b"] pairs, added_tokens [{id, content, ...}] for the specials), or the
 * slow tokenizer's files vocab.json ({string: id}) + merges.txt ("#version" header line, then
 * "a b" per rank) + added_tokens.json ({string: id}, optional).
 *
 * The files are read into an id table first (the JSON may list the merges before the vocabulary,
 * and added tokens override vocabulary entries of the same id), then the tokenizer is built from
 * it: ids no file lists are filled in Whisper's layout (tokenizer_layout.c), e.g. the timestamps
 * older added_tokens.json files lack. Input is untrusted (fuzz_tokenizer_hf.c). */
#include <stdio.h>
#include <string.h>
#include "engine/tokenizer_int.h"

typedef struct {
    asr__tok_list_t vocab, added;
    asr__tok_list_t merges; /* entries 2r and 2r+1: the two strings of merge r */
} hf_t;

static asr_err_t vocab_cb(const char *s, size_t len, int64_t id, void *user_data) {
    return asr__tok_list_add(&((hf_t *)user_data)->vocab, s, len, (int32_t)id);
}

static asr_err_t added_cb(const char *s, size_t len, int64_t id, void *user_data) {
    return asr__tok_list_add(&((hf_t *)user_data)->added, s, len, (int32_t)id);
}

static asr_err_t merge_cb(const char *a, size_t a_len, const char *b, size_t b_len,
                          void *user_data) {
    hf_t *h = user_data;
    int32_t r = h->merges.n / 2;
    asr_err_t err = asr__tok_list_add(&h->merges, a, a_len, r);
    return err ? err : asr__tok_list_add(&h->merges, b, b_len, r);
}

/* merges.txt: an optional "#version..." first line, then "a b" per line (empty lines skipped). */
static asr_err_t merges_txt(hf_t *h, const char *buf, size_t len, char *errbuf, size_t errbuf_len) {
    int line = 0;
    for (size_t i = 0; i < len;) {
        const char *nl = memchr(buf + i, '\n', len - i);
        size_t e = nl ? (size_t)(nl - buf) : len, end = e;
        line++;
        if (end > i && buf[end - 1] == '\r')
            end--;
        bool header = line == 1 && end - i >= 8 && !memcmp(buf + i, "#version", 8);
        if (end > i && !header) {
            const char *sp = memchr(buf + i, ' ', end - i);
            if (!sp || sp == buf + i || sp + 1 == buf + end ||
                memchr(sp + 1, ' ', end - (size_t)(sp + 1 - buf))) {
                asr_errf(errbuf, errbuf_len, "line %d is not \"a b\"", line);
                return ASR_ERR_MODEL;
            }
            asr_err_t err =
                merge_cb(buf + i, (size_t)(sp - buf) - i, sp + 1, end - (size_t)(sp + 1 - buf), h);
            if (err)
                return err;
        }
        i = e + 1;
    }
    return ASR_OK;
}

/* Prefixes errbuf's reason with the file's name. */
static void blame(const char *file, char *errbuf, size_t errbuf_len) {
    if (!errbuf || !errbuf_len)
        return;
    char tmp[256];
    snprintf(tmp, sizeof tmp, "%s", errbuf);
    asr_errf(errbuf, errbuf_len, "%s: %s", file, tmp);
}

/* Reads the files into h; the reason names the file. */
static asr_err_t hf_read(hf_t *h, const char *tok_json, size_t tok_json_len, const char *vocab_json,
                         size_t vocab_json_len, const char *merges, size_t merges_len,
                         const char *added_json, size_t added_json_len, char *errbuf,
                         size_t errbuf_len) {
    asr_err_t err;
    if (tok_json) {
        err = asr__json_hf_tokenizer(tok_json, tok_json_len, vocab_cb, merge_cb, added_cb, h,
                                     errbuf, errbuf_len);
        if (err == ASR_ERR_MODEL)
            blame("tokenizer.json", errbuf, errbuf_len);
        return err;
    }
    if (!vocab_json || !merges)
        return ASR_ERR_INVALID;
    if ((err = asr__json_str_int_object(vocab_json, vocab_json_len, vocab_cb, h, errbuf,
                                        errbuf_len))) {
        if (err == ASR_ERR_MODEL)
            blame("vocab.json", errbuf, errbuf_len);
        return err;
    }
    if ((err = merges_txt(h, merges, merges_len, errbuf, errbuf_len))) {
        if (err == ASR_ERR_MODEL)
            blame("merges.txt", errbuf, errbuf_len);
        return err;
    }
    if (added_json && (err = asr__json_str_int_object(added_json, added_json_len, added_cb, h,
                                                      errbuf, errbuf_len))) {
        if (err == ASR_ERR_MODEL)
            blame("added_tokens.json", errbuf, errbuf_len);
        return err;
    }
    return ASR_OK;
}

/* The vocabulary's size and eot: n_vocab (the model's) when known, else the highest id + 1, but
 * at least up to <|30.00|> when the files list <|nospeech|> and at least Whisper's size when they
 * list no <|endoftext|> to place the specials from. */
static asr_err_t hf_shape(const hf_t *h, int n_vocab, int *n, int32_t *eot, char *errbuf,
                          size_t errbuf_len) {
    if (h->vocab.max_id >= ASR__TOK_MAX_TOKENS) {
        asr_errf(errbuf, errbuf_len, "token id %d is too large", (int)h->vocab.max_id);
        return ASR_ERR_MODEL;
    }
    *eot = asr__tok_list_find(&h->vocab, "<|endoftext|>");
    *n = n_vocab > 0 ? n_vocab : (int)h->vocab.max_id + 1;
    int32_t nospeech = asr__tok_list_find(&h->vocab, "<|nospeech|>");
    if (nospeech < 0)
        nospeech = asr__tok_list_find(&h->vocab, "<|nocaptions|>");
    if (n_vocab <= 0 && *eot >= 0 && nospeech > *eot && nospeech + 1502 < ASR__TOK_MAX_TOKENS &&
        *n < nospeech + 1503) /* old added_tokens.json files end before the timestamps */
        *n = nospeech + 1503;
    if (n_vocab <= 0 && *eot < 0) {
        int whisper = h->vocab.max_id + 1 >= 50257 ? 51865 : 51864;
        *n = *n > whisper ? *n : whisper;
    }
    if (*eot < 0 && (*eot = asr__tok_layout_eot(*n)) < 0) {
        asr_errf(errbuf, errbuf_len,
                 "no <|endoftext|> token, and %d tokens is not a Whisper vocabulary size", *n);
        return ASR_ERR_MODEL;
    }
    if (n_vocab > 0 && h->vocab.max_id >= n_vocab) {
        asr_errf(errbuf, errbuf_len, "vocabulary has %d tokens but the model has %d",
                 (int)h->vocab.max_id + 1, n_vocab);
        return ASR_ERR_MODEL;
    }
    return ASR_OK;
}

asr_err_t asr__tok_load_hf_buffers(const char *tok_json, size_t tok_json_len,
                                   const char *vocab_json, size_t vocab_json_len,
                                   const char *merges, size_t merges_len, const char *added_json,
                                   size_t added_json_len, int n_vocab, asr_tokenizer_t **out,
                                   char *errbuf, size_t errbuf_len) {
    if (out)
        *out = NULL;
    if (!out || (!tok_json && (!vocab_json || !merges)))
        return ASR_ERR_INVALID;
    hf_t h;
    asr__tok_list_init(&h.vocab);
    asr__tok_list_init(&h.added);
    asr__tok_list_init(&h.merges);
    asr_tokenizer_t *t = NULL;
    int n = 0;
    int32_t eot = -1;
    asr_err_t err = hf_read(&h, tok_json, tok_json_len, vocab_json, vocab_json_len, merges,
                            merges_len, added_json, added_json_len, errbuf, errbuf_len);
    for (int i = 0; i < h.added.n && !err; i++) /* added tokens win over the vocabulary's */
        err = asr__tok_list_add(&h.vocab, h.added.pool + h.added.e[i].off, h.added.e[i].len,
                                h.added.e[i].id);
    if (!err)
        err = hf_shape(&h, n_vocab, &n, &eot, errbuf, errbuf_len);
    if (!err)
        err = asr__tok_list_build(&h.vocab, n, eot, &t, errbuf, errbuf_len);
    asr__tok_merge_ctx_t c = {.t = t,
                              .file = tok_json ? "tokenizer.json" : "merges.txt",
                              .errbuf = errbuf,
                              .errbuf_len = errbuf_len};
    for (int i = 0; i + 1 < h.merges.n && !err; i += 2) {
        const struct asr__tok_entry *a = &h.merges.e[i], *b = &h.merges.e[i + 1];
        err =
            asr__tok_merge_str(h.merges.pool + a->off, a->len, h.merges.pool + b->off, b->len, &c);
    }
    free(c.cat);
    asr__tok_list_free(&h.vocab);
    asr__tok_list_free(&h.added);
    asr__tok_list_free(&h.merges);
    return asr__tok_finish(t, err, out, errbuf, errbuf_len);
}

asr_err_t asr__tok_load_hf(const char *dir, int n_vocab, asr_tokenizer_t **out, char *errbuf,
                           size_t errbuf_len) {
    char *tok = NULL, *vocab = NULL, *merges = NULL, *added = NULL;
    size_t tok_len = 0, vocab_len = 0, merges_len = 0, added_len = 0;
    asr_err_t err = asr__tok_read_file(dir, "tokenizer.json", &tok, &tok_len, errbuf, errbuf_len);
    if (err == ASR_ERR_NOT_FOUND) {
        err = asr__tok_read_file(dir, "vocab.json", &vocab, &vocab_len, errbuf, errbuf_len);
        if (err == ASR_ERR_NOT_FOUND)
            asr_errf(errbuf, errbuf_len,
                     "no vocabulary.json, vocabulary.txt, tokenizer.json or vocab.json in %s", dir);
        if (!err) {
            err = asr__tok_read_file(dir, "merges.txt", &merges, &merges_len, errbuf, errbuf_len);
            if (err == ASR_ERR_NOT_FOUND)
                asr_errf(errbuf, errbuf_len, "vocab.json without merges.txt in %s", dir);
        }
        if (!err) {
            err = asr__tok_read_file(dir, "added_tokens.json", &added, &added_len, errbuf,
                                     errbuf_len);
            if (err == ASR_ERR_NOT_FOUND)
                err = ASR_OK;
        }
    }
    if (err == ASR_ERR_NOT_FOUND)
        err = ASR_ERR_MODEL;
    else if (err == ASR_ERR_NOMEM)
        asr_errf(errbuf, errbuf_len, "out of memory reading the tokenizer files");
    if (!err)
        err = asr__tok_load_hf_buffers(tok, tok_len, vocab, vocab_len, merges, merges_len, added,
                                       added_len, n_vocab, out, errbuf, errbuf_len);
    free(tok);
    free(vocab);
    free(merges);
    free(added);
    return err;
}
