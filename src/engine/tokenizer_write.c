/* tokenizer_write: the tokenizer's files in each model layout asrd writes (`asrd convert`, random
 * models): CTranslate2's vocabulary.json, Hugging Face's tokenizer.json (what faster-whisper and
 * transformers read) and the slow tokenizer's vocab.json, merges.txt and added_tokens.json.
 *
 * Every layout splits the ids at eot: the ids below are the byte-level BPE's base tokens (the
 * "vocab" with merges), eot and above the added (special) tokens. JSON is written by jansson, so
 * escaping is jansson's; a token string that JSON cannot carry (invalid UTF-8 or a NUL, possible
 * only from a vocabulary.txt) is refused rather than written wrong. Output is compact (no
 * indentation): the readers do not care and the files stay small. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include "engine/tokenizer_int.h"

/* Token id's string (length *len) when JSON can carry it; NULL with a reason otherwise. */
static const char *json_token(const asr_tokenizer_t *t, int32_t id, size_t *len, char *errbuf,
                              size_t errbuf_len) {
    const char *s = asr_tokenizer_token_str(t, id);
    size_t n = t->str_off[id + 1] - t->str_off[id] - 1;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        int k = asr_utf8_next((const uint8_t *)s + i, n - i, &cp);
        if (k < 0 || cp == 0) {
            asr_errf(errbuf, errbuf_len, "token %d is not valid UTF-8 text", (int)id);
            return NULL;
        }
        i += (size_t)k;
    }
    *len = n;
    return s;
}

/* Appends json_dumps(j) to out and releases j (NULL j: out of memory). */
static asr_err_t dump(json_t *j, asr_buf_t *out, asr_err_t err, char *errbuf, size_t errbuf_len) {
    char *s = j && !err ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (err)
        return err;
    if (!s) {
        asr_errf(errbuf, errbuf_len, "out of memory writing the tokenizer");
        return ASR_ERR_NOMEM;
    }
    asr_buf_append(out, s, strlen(s));
    asr_buf_puts(out, "\n");
    free(s);
    return ASR_OK;
}

/* The strings of ids [from, to) appended to `c`: an array, or an object {string: id} (a repeated
 * string keeps its first id, as the loaders' index does). */
static asr_err_t add_tokens(const asr_tokenizer_t *t, json_t *c, int32_t from, int32_t to,
                            char *errbuf, size_t errbuf_len) {
    for (int32_t id = from; id < to; id++) {
        size_t n;
        const char *s = json_token(t, id, &n, errbuf, errbuf_len);
        if (!s)
            return ASR_ERR_INVALID;
        if (json_is_array(c)
                ? json_array_append_new(c, json_stringn(s, n))
                : !json_object_getn(c, s, n) && json_object_setn_new(c, s, n, json_integer(id)))
            return ASR_ERR_NOMEM;
    }
    return ASR_OK;
}

asr_err_t asr_tokenizer_write_vocabulary_json(const asr_tokenizer_t *t, asr_buf_t *out,
                                              char *errbuf, size_t errbuf_len) {
    json_t *arr = json_array();
    asr_err_t err = arr ? add_tokens(t, arr, 0, t->n_tokens, errbuf, errbuf_len) : ASR_ERR_NOMEM;
    return dump(arr, out, err, errbuf, errbuf_len);
}

asr_err_t asr_tokenizer_write_vocab_json(const asr_tokenizer_t *t, asr_buf_t *out, char *errbuf,
                                         size_t errbuf_len) {
    json_t *obj = json_object();
    asr_err_t err = obj ? add_tokens(t, obj, 0, t->sp.eot, errbuf, errbuf_len) : ASR_ERR_NOMEM;
    return dump(obj, out, err, errbuf, errbuf_len);
}

asr_err_t asr_tokenizer_write_added_tokens_json(const asr_tokenizer_t *t, asr_buf_t *out,
                                                char *errbuf, size_t errbuf_len) {
    json_t *obj = json_object();
    asr_err_t err =
        obj ? add_tokens(t, obj, t->sp.eot, t->n_tokens, errbuf, errbuf_len) : ASR_ERR_NOMEM;
    return dump(obj, out, err, errbuf, errbuf_len);
}

/* The two strings of merge i; NULL with a reason when JSON cannot carry them. */
static bool merge_strings(const asr_tokenizer_t *t, int i, const char **a, size_t *a_len,
                          const char **b, size_t *b_len, char *errbuf, size_t errbuf_len) {
    int32_t l, r;
    asr_tokenizer_merge(t, i, &l, &r);
    *a = json_token(t, l, a_len, errbuf, errbuf_len);
    *b = *a ? json_token(t, r, b_len, errbuf, errbuf_len) : NULL;
    return *b != NULL;
}

asr_err_t asr_tokenizer_write_merges_txt(const asr_tokenizer_t *t, asr_buf_t *out, char *errbuf,
                                         size_t errbuf_len) {
    asr_buf_t b;
    asr_buf_init(&b);
    asr_buf_puts(&b, "#version: 0.2\n");
    for (int i = 0; i < t->n_merges; i++) {
        const char *l, *r;
        size_t ln, rn;
        if (!merge_strings(t, i, &l, &ln, &r, &rn, errbuf, errbuf_len)) {
            asr_buf_free(&b);
            return ASR_ERR_INVALID;
        }
        if (memchr(l, ' ', ln) || memchr(r, ' ', rn) || memchr(l, '\n', ln) ||
            memchr(r, '\n', rn)) {
            asr_errf(errbuf, errbuf_len,
                     "merge %d has a space or newline: merges.txt cannot hold it", i);
            asr_buf_free(&b);
            return ASR_ERR_INVALID;
        }
        asr_buf_append(&b, l, ln);
        asr_buf_puts(&b, " ");
        asr_buf_append(&b, r, rn);
        asr_buf_puts(&b, "\n");
    }
    asr_buf_append(out, b.data, b.len);
    asr_buf_free(&b);
    return ASR_OK;
}

/* ---- tokenizer.json ---- */

static json_t *byte_level(bool add_prefix_space) {
    return json_pack("{s:s,s:b,s:b,s:b}", "type", "ByteLevel", "add_prefix_space", add_prefix_space,
                     "trim_offsets", 1, "use_regex", 1);
}

static json_t *special_piece(const char *name, int type_id) {
    return json_pack("{s:{s:s,s:i}}", "SpecialToken", "id", name, "type_id", type_id);
}

static json_t *sequence_piece(const char *seq, int type_id) {
    return json_pack("{s:{s:s,s:i}}", "Sequence", "id", seq, "type_id", type_id);
}

/* Hugging Face's Whisper post-processor: <|startoftranscript|> <|notimestamps|> A <|endoftext|>
 * (transformers replaces the prefix with the task's own; faster-whisper adds no special tokens). */
static json_t *post_processor(const asr_tokenizer_t *t) {
    const asr_special_tokens_t *sp = &t->sp;
    const char *sot = asr_tokenizer_token_str(t, sp->sot);
    const char *nots = asr_tokenizer_token_str(t, sp->no_timestamps);
    const char *eot = asr_tokenizer_token_str(t, sp->eot);
    json_t *specials = json_object();
    const int32_t ids[3] = {sp->sot, sp->no_timestamps, sp->eot};
    for (int i = 0; specials && i < 3; i++) {
        const char *name = asr_tokenizer_token_str(t, ids[i]);
        json_object_set_new(
            specials, name,
            json_pack("{s:s,s:[i],s:[s]}", "id", name, "ids", (json_int_t)ids[i], "tokens", name));
    }
    return json_pack("{s:s,s:[o,o,o,o],s:[o,o,o,o,o],s:o}", "type", "TemplateProcessing", "single",
                     special_piece(sot, 0), special_piece(nots, 0), sequence_piece("A", 0),
                     special_piece(eot, 0), "pair", special_piece(sot, 0), special_piece(nots, 0),
                     sequence_piece("A", 0), sequence_piece("B", 1), special_piece(eot, 1),
                     "special_tokens", specials);
}

static asr_err_t added_tokens(const asr_tokenizer_t *t, json_t *arr, char *errbuf,
                              size_t errbuf_len) {
    for (int32_t id = t->sp.eot; id < t->n_tokens; id++) {
        size_t n;
        const char *s = json_token(t, id, &n, errbuf, errbuf_len);
        if (!s)
            return ASR_ERR_INVALID;
        bool ts = id >= t->sp.timestamp_begin; /* as Hugging Face's files mark the timestamps */
        json_t *o =
            json_pack("{s:i,s:s%,s:b,s:b,s:b,s:b,s:b}", "id", (json_int_t)id, "content", s, n,
                      "single_word", 0, "lstrip", 0, "rstrip", 0, "normalized", ts, "special", !ts);
        if (json_array_append_new(arr, o))
            return ASR_ERR_NOMEM;
    }
    return ASR_OK;
}

static asr_err_t merges_array(const asr_tokenizer_t *t, json_t *arr, char *errbuf,
                              size_t errbuf_len) {
    asr_buf_t b;
    asr_buf_init(&b);
    asr_err_t err = ASR_OK;
    for (int i = 0; i < t->n_merges && !err; i++) {
        const char *l, *r;
        size_t ln, rn;
        if (!merge_strings(t, i, &l, &ln, &r, &rn, errbuf, errbuf_len)) {
            err = ASR_ERR_INVALID;
            break;
        }
        json_t *m;
        if (memchr(l, ' ', ln) || memchr(r, ' ', rn)) { /* only the pair form can hold it */
            m = json_pack("[s%,s%]", l, ln, r, rn);
        } else { /* "a b": what every version of `tokenizers` reads */
            b.len = 0;
            asr_buf_append(&b, l, ln);
            asr_buf_puts(&b, " ");
            asr_buf_append(&b, r, rn);
            m = json_stringn(b.data, b.len);
        }
        if (json_array_append_new(arr, m))
            err = ASR_ERR_NOMEM;
    }
    asr_buf_free(&b);
    return err;
}

asr_err_t asr_tokenizer_write_tokenizer_json(const asr_tokenizer_t *t, asr_buf_t *out, char *errbuf,
                                             size_t errbuf_len) {
    json_t *added = json_array(), *vocab = json_object(), *merges = json_array();
    asr_err_t err = added && vocab && merges ? ASR_OK : ASR_ERR_NOMEM;
    if (!err)
        err = added_tokens(t, added, errbuf, errbuf_len);
    if (!err)
        err = add_tokens(t, vocab, 0, t->sp.eot, errbuf, errbuf_len);
    if (!err)
        err = merges_array(t, merges, errbuf, errbuf_len);
    if (err) {
        json_decref(added);
        json_decref(vocab);
        json_decref(merges);
        return dump(NULL, out, err, errbuf, errbuf_len);
    }
    json_t *model = json_pack("{s:s,s:n,s:n,s:s,s:s,s:b,s:b,s:b,s:o,s:o}", "type", "BPE", "dropout",
                              "unk_token", "continuing_subword_prefix", "", "end_of_word_suffix",
                              "", "fuse_unk", 0, "byte_fallback", 0, "ignore_merges", 0, "vocab",
                              vocab, "merges", merges);
    json_t *doc = json_pack("{s:s,s:n,s:n,s:o,s:n,s:o,s:o,s:o,s:o}", "version", "1.0", "truncation",
                            "padding", "added_tokens", added, "normalizer", "pre_tokenizer",
                            byte_level(false), "post_processor", post_processor(t), "decoder",
                            byte_level(true), "model", model);
    return dump(doc, out, ASR_OK, errbuf, errbuf_len);
}
