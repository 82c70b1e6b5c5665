/* tokenizer: loading (vocabulary strings, string index, special tokens, BPE merge table, suppress
 * set), decoding ids to text, and the language tokens. Encoding lives in tokenizer_bpe.c, the JSON
 * reader in tokenizer_json.c, the language table in lang_codes.c; the other file layouts build
 * through asr__tok_begin/asr__tok_add_merge/asr__tok_finish: Hugging Face directories in
 * tokenizer_hf.c, ggml vocabularies and tiktoken files in tokenizer_ggml.c, the built-in tokenizer
 * in tokenizer_builtin.c, all with the special-token layout of tokenizer_layout.c; the writers of
 * every layout are in tokenizer_write.c.
 *
 * Invariants after a successful load: ids are dense 0 .. n_vocab-1; every byte has a single-byte
 * token; the special tokens have the contiguous CTranslate2/Whisper layout (sot+1 .. languages,
 * translate, transcribe, startoflm, startofprev, nospeech, notimestamps, timestamps to 30.00);
 * every merge's operands and result are vocabulary tokens. The object is never mutated afterwards,
 * which is what makes concurrent use safe. */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include "asr/engine.h"
#include "engine/tokenizer_int.h"

#define MAX_VOCAB_FILE (64u << 20) /* bytes; real files are 0.4-4 MB */
#define MAX_TOKENS ASR__TOK_MAX_TOKENS

/* ---- GPT-2 bytes_to_unicode ---- */

/* Code point of each byte: printable Latin-1 bytes map to themselves, the other 68 bytes (0-32,
 * 127-160, 173) in ascending order to U+0100 .. U+0143. */
static uint32_t byte_to_cp(int b) {
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255))
        return (uint32_t)b;
    int n = b <= 32 ? b : b <= 160 ? 33 + (b - 127) : 33 + 34;
    return 256u + (uint32_t)n;
}

/* Inverse of byte_to_cp, or -1. */
static int cp_to_byte(uint32_t cp) {
    if ((cp >= 33 && cp <= 126) || (cp >= 161 && cp <= 172) || (cp >= 174 && cp <= 255))
        return (int)cp;
    if (cp < 256 || cp > 256 + 67)
        return -1;
    int n = (int)(cp - 256);
    return n <= 32 ? n : n <= 66 ? 127 + (n - 33) : 173;
}

/* UTF-8 of byte b's code point (< 0x800) into s; returns the length. */
static size_t byte_utf8(int b, char s[2]) {
    uint32_t cp = byte_to_cp(b);
    if (cp < 0x80) {
        s[0] = (char)cp;
        return 1;
    }
    s[0] = (char)(0xC0 | (cp >> 6)), s[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
}

void asr__tok_bytes_to_str(const uint8_t *b, size_t n, asr_buf_t *out) {
    for (size_t i = 0; i < n; i++) {
        char s[2];
        asr_buf_append(out, s, byte_utf8(b[i], s));
    }
}

/* ---- hashing ---- */

static uint32_t hash_str(const char *s, size_t n) {
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h ^ (h >> 16);
}

static uint32_t hash_u64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return (uint32_t)x;
}

static uint32_t table_size(size_t n) {
    uint32_t cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    return cap;
}

static bool str_eq(const asr_tokenizer_t *t, int32_t id, const char *s, size_t len) {
    return t->str_off[id + 1] - t->str_off[id] - 1 == len &&
           !memcmp(t->str_pool + t->str_off[id], s, len);
}

int32_t asr_tokenizer_token_to_id(const asr_tokenizer_t *t, const char *s, size_t len) {
    if (!s)
        return -1;
    uint32_t hash = hash_str(s, len);
    for (uint32_t h = hash & t->str_mask;; h = (h + 1) & t->str_mask) {
        const asr__tok_slot_t *slot = &t->str_index[h];
        if (slot->id < 0)
            return -1;
        if (slot->hash == hash && str_eq(t, slot->id, s, len))
            return slot->id;
    }
}

static int32_t find_str(const asr_tokenizer_t *t, const char *s) {
    return asr_tokenizer_token_to_id(t, s, strlen(s));
}

static uint64_t merge_key(int32_t a, int32_t b) {
    return ((uint64_t)(uint32_t)(a + 1) << 32) | (uint32_t)(b + 1);
}

const asr__tok_merge_t *asr__tok_merge_find(const asr_tokenizer_t *t, int32_t left, int32_t right) {
    if (!t->merges)
        return NULL;
    uint64_t key = merge_key(left, right);
    for (uint32_t h = hash_u64(key) & t->merge_mask;; h = (h + 1) & t->merge_mask) {
        if (t->merges[h].key == key)
            return &t->merges[h];
        if (!t->merges[h].key)
            return NULL;
    }
}

/* ---- vocabulary ---- */

typedef struct {
    asr_tokenizer_t *t;
    size_t pool_len, pool_cap;
    int cap;
    char *errbuf;
    size_t errbuf_len;
} vocab_ctx_t;

static asr_err_t vocab_add(const char *s, size_t len, void *user_data) {
    vocab_ctx_t *v = user_data;
    asr_tokenizer_t *t = v->t;
    if (t->n_tokens >= MAX_TOKENS) {
        asr_errf(v->errbuf, v->errbuf_len, "vocabulary has more than %d tokens", MAX_TOKENS);
        return ASR_ERR_MODEL;
    }
    if (t->n_tokens + 2 > v->cap) {
        int cap = v->cap ? 2 * v->cap : 65536;
        uint32_t *off = asr_realloc(t->str_off, (size_t)cap * sizeof *off);
        if (!off)
            return ASR_ERR_NOMEM;
        t->str_off = off, v->cap = cap;
    }
    if (v->pool_len + len + 1 > v->pool_cap) { /* cannot happen: the pool is sized from the file */
        asr_errf(v->errbuf, v->errbuf_len, "vocabulary string pool overflow");
        return ASR_ERR_MODEL;
    }
    memcpy(t->str_pool + v->pool_len, s, len);
    t->str_pool[v->pool_len + len] = 0;
    t->str_off[t->n_tokens++] = (uint32_t)v->pool_len;
    v->pool_len += len + 1;
    t->str_off[t->n_tokens] = (uint32_t)v->pool_len;
    return ASR_OK;
}

/* vocabulary.txt: one token per line ("\n"-terminated; the empty token is an empty line). */
static asr_err_t vocab_txt(const char *buf, size_t len, vocab_ctx_t *v) {
    for (size_t i = 0; i < len;) {
        const char *nl = memchr(buf + i, '\n', len - i);
        size_t e = nl ? (size_t)(nl - buf) : len;
        asr_err_t err = vocab_add(buf + i, e - i, v);
        if (err)
            return err;
        i = e + 1;
    }
    return ASR_OK;
}

static asr_err_t vocab_index(asr_tokenizer_t *t, char *errbuf, size_t errbuf_len);

static asr_err_t load_vocab(asr_tokenizer_t *t, const char *buf, size_t len, bool is_json,
                            char *errbuf, size_t errbuf_len) {
    if (len > MAX_VOCAB_FILE) {
        asr_errf(errbuf, errbuf_len, "vocabulary file too large (%zu bytes)", len);
        return ASR_ERR_MODEL;
    }
    /* decoded strings are never longer than their source, and each token takes >= 1 source byte
     * (a JSON string >= 2), so 2*len+2 bytes hold every string plus its NUL */
    vocab_ctx_t v = {.t = t, .pool_cap = 2 * len + 2, .errbuf = errbuf, .errbuf_len = errbuf_len};
    t->str_pool = asr_malloc(v.pool_cap);
    if (!t->str_pool)
        return ASR_ERR_NOMEM;
    asr_err_t err = is_json ? asr__json_string_array(buf, len, vocab_add, &v, errbuf, errbuf_len)
                            : vocab_txt(buf, len, &v);
    if (err == ASR_ERR_MODEL && is_json && errbuf && errbuf_len) {
        char tmp[256];
        snprintf(tmp, sizeof tmp, "%s", errbuf);
        asr_errf(errbuf, errbuf_len, "vocabulary.json: %s", tmp);
    }
    return err ? err : vocab_index(t, errbuf, errbuf_len);
}

/* The string index over the loaded strings. */
static asr_err_t vocab_index(asr_tokenizer_t *t, char *errbuf, size_t errbuf_len) {
    if (t->n_tokens == 0) {
        asr_errf(errbuf, errbuf_len, "vocabulary is empty");
        return ASR_ERR_MODEL;
    }
    t->str_mask = table_size((size_t)t->n_tokens) - 1;
    t->str_index = asr_malloc(((size_t)t->str_mask + 1) * sizeof *t->str_index);
    if (!t->str_index)
        return ASR_ERR_NOMEM;
    for (uint32_t i = 0; i <= t->str_mask; i++)
        t->str_index[i] = (asr__tok_slot_t){0, -1};
    for (int32_t id = 0; id < t->n_tokens; id++) {
        const char *s = t->str_pool + t->str_off[id];
        size_t n = t->str_off[id + 1] - t->str_off[id] - 1;
        uint32_t hash = hash_str(s, n), h = hash & t->str_mask;
        for (;; h = (h + 1) & t->str_mask) {
            asr__tok_slot_t *slot = &t->str_index[h];
            if (slot->id < 0) {
                *slot = (asr__tok_slot_t){hash, id};
                break;
            }
            if (slot->hash == hash && str_eq(t, slot->id, s, n))
                break; /* duplicate string: the first id wins */
        }
    }
    return ASR_OK;
}

/* Raw bytes of every token: each code point through cp_to_byte; a token with a code point outside
 * the table (or invalid UTF-8, possible in vocabulary.txt) keeps its own bytes. */
static asr_err_t decode_token_bytes(asr_tokenizer_t *t) {
    size_t pool = t->str_off[t->n_tokens];
    t->byte_pool = asr_malloc(pool ? pool : 1);
    t->byte_off = asr_malloc(((size_t)t->n_tokens + 1) * sizeof *t->byte_off);
    if (!t->byte_pool || !t->byte_off)
        return ASR_ERR_NOMEM;
    uint32_t o = 0;
    for (int32_t id = 0; id < t->n_tokens; id++) {
        const uint8_t *s = (const uint8_t *)t->str_pool + t->str_off[id];
        size_t n = t->str_off[id + 1] - t->str_off[id] - 1, i = 0;
        uint32_t start = o;
        t->byte_off[id] = o;
        while (i < n) {
            uint32_t cp;
            int k = asr_utf8_next(s + i, n - i, &cp);
            int b = k > 0 ? cp_to_byte(cp) : -1;
            if (b < 0) {
                memcpy(t->byte_pool + start, s, n);
                o = start + (uint32_t)n;
                break;
            }
            t->byte_pool[o++] = (char)b;
            i += (size_t)k;
        }
        t->byte_pool[o++] = 0;
    }
    t->byte_off[t->n_tokens] = o;
    return ASR_OK;
}

/* ---- special tokens ---- */

static asr_err_t need(const asr_tokenizer_t *t, const char *s, int32_t *id, char *errbuf,
                      size_t errbuf_len) {
    *id = find_str(t, s);
    if (*id >= 0)
        return ASR_OK;
    asr_errf(errbuf, errbuf_len, "vocabulary lacks the special token %s", s);
    return ASR_ERR_MODEL;
}

static asr_err_t find_specials(asr_tokenizer_t *t, char *errbuf, size_t errbuf_len) {
    asr_special_tokens_t *sp = &t->sp;
    asr_err_t err;
    sp->no_speech = find_str(t, "<|nospeech|>");
    if (sp->no_speech < 0)
        sp->no_speech = find_str(t, "<|nocaptions|>");
    if (sp->no_speech < 0) {
        asr_errf(errbuf, errbuf_len, "vocabulary lacks <|nospeech|> and <|nocaptions|>");
        return ASR_ERR_MODEL;
    }
    if ((err = need(t, "<|endoftext|>", &sp->eot, errbuf, errbuf_len)) ||
        (err = need(t, "<|startoftranscript|>", &sp->sot, errbuf, errbuf_len)) ||
        (err = need(t, "<|translate|>", &sp->translate, errbuf, errbuf_len)) ||
        (err = need(t, "<|transcribe|>", &sp->transcribe, errbuf, errbuf_len)) ||
        (err = need(t, "<|startoflm|>", &sp->sot_lm, errbuf, errbuf_len)) ||
        (err = need(t, "<|startofprev|>", &sp->sot_prev, errbuf, errbuf_len)) ||
        (err = need(t, "<|notimestamps|>", &sp->no_timestamps, errbuf, errbuf_len)) ||
        (err = need(t, "<|0.00|>", &sp->timestamp_begin, errbuf, errbuf_len)))
        return err;
    sp->n_vocab = t->n_tokens;
    sp->multilingual = find_str(t, "") >= 0;
    sp->lang_begin = sp->sot + 1;
    sp->n_languages = sp->no_speech - sp->sot - 5;
    /* the decoder relies on this layout (ranges of languages and timestamps, text = ids < eot) */
    int32_t last_ts = sp->timestamp_begin + 1500;
    if (sp->eot >= sp->sot || sp->n_languages < 0 ||
        sp->translate != sp->sot + 1 + sp->n_languages || sp->transcribe != sp->translate + 1 ||
        sp->sot_lm != sp->transcribe + 1 || sp->sot_prev != sp->sot_lm + 1 ||
        sp->no_speech != sp->sot_prev + 1 || sp->no_timestamps != sp->no_speech + 1 ||
        sp->timestamp_begin != sp->no_timestamps + 1 || last_ts >= t->n_tokens ||
        find_str(t, "<|30.00|>") != last_ts) {
        asr_errf(errbuf, errbuf_len, "special tokens are not in the Whisper layout");
        return ASR_ERR_MODEL;
    }
    for (int i = 0; i < ASR_TOKENIZER_MAX_LANGUAGES; i++) {
        char s[16];
        snprintf(s, sizeof s, "<|%s|>", asr__lang_code_at(i));
        int32_t id = find_str(t, s);
        bool ok = sp->multilingual && id >= sp->lang_begin && id < sp->lang_begin + sp->n_languages;
        t->lang_id[i] = ok ? id : -1;
    }
    for (int b = 0; b < 256; b++) {
        char s[2];
        size_t n = byte_utf8(b, s);
        t->byte_id[b] = asr_tokenizer_token_to_id(t, s, n);
        if (t->byte_id[b] < 0) {
            asr_errf(errbuf, errbuf_len, "vocabulary lacks the token of byte 0x%02x", b);
            return ASR_ERR_MODEL;
        }
    }
    return ASR_OK;
}

/* ---- merges ---- */

static asr_err_t merge_grow(asr_tokenizer_t *t) {
    uint32_t cap = t->merges ? 2 * (t->merge_mask + 1) : 65536;
    asr__tok_merge_t *m = asr_calloc(cap, sizeof *m);
    if (!m)
        return ASR_ERR_NOMEM;
    for (uint32_t i = 0; t->merges && i <= t->merge_mask; i++) {
        if (!t->merges[i].key)
            continue;
        uint32_t h = hash_u64(t->merges[i].key) & (cap - 1);
        while (m[h].key)
            h = (h + 1) & (cap - 1);
        m[h] = t->merges[i];
    }
    free(t->merges);
    t->merges = m;
    t->merge_mask = cap - 1;
    return ASR_OK;
}

asr_err_t asr__tok_add_merge(asr_tokenizer_t *t, int32_t left, int32_t right, int32_t merged) {
    if ((size_t)(t->n_merges + 1) * 2 > (size_t)(t->merges ? t->merge_mask + 1 : 0)) {
        asr_err_t err = merge_grow(t);
        if (err)
            return err;
    }
    if (t->n_merges >= t->merge_list_cap) {
        int cap = t->merge_list_cap ? 2 * t->merge_list_cap : 16384;
        int32_t *l = asr_realloc(t->merge_list, (size_t)cap * 3 * sizeof *l);
        if (!l)
            return ASR_ERR_NOMEM;
        t->merge_list = l, t->merge_list_cap = cap;
    }
    int32_t *e = t->merge_list + 3 * (size_t)t->n_merges;
    e[0] = left, e[1] = right, e[2] = merged;
    uint64_t key = merge_key(left, right);
    uint32_t h = hash_u64(key) & t->merge_mask;
    while (t->merges[h].key && t->merges[h].key != key)
        h = (h + 1) & t->merge_mask;
    if (!t->merges[h].key) /* a repeated pair keeps its first (lowest) rank */
        t->merges[h] = (asr__tok_merge_t){key, t->n_merges, merged};
    t->n_merges++;
    return ASR_OK;
}

asr_err_t asr__tok_merge_str(const char *a, size_t a_len, const char *b, size_t b_len,
                             void *user_data) {
    asr__tok_merge_ctx_t *c = user_data;
    asr_tokenizer_t *t = c->t;
    if (a_len + b_len > c->cat_cap) {
        size_t cap = 2 * (a_len + b_len);
        char *p = asr_realloc(c->cat, cap);
        if (!p)
            return ASR_ERR_NOMEM;
        c->cat = p, c->cat_cap = cap;
    }
    memcpy(c->cat, a, a_len);
    memcpy(c->cat + a_len, b, b_len);
    int32_t ia = asr_tokenizer_token_to_id(t, a, a_len);
    int32_t ib = asr_tokenizer_token_to_id(t, b, b_len);
    int32_t im = asr_tokenizer_token_to_id(t, c->cat, a_len + b_len);
    if (ia < 0 || ib < 0 || im < 0) {
        asr_errf(c->errbuf, c->errbuf_len, "%s: merge %d uses a token not in the vocabulary",
                 c->file, t->n_merges);
        return ASR_ERR_MODEL;
    }
    return asr__tok_add_merge(t, ia, ib, im);
}

static asr_err_t load_merges(asr_tokenizer_t *t, const char *buf, size_t len, char *errbuf,
                             size_t errbuf_len) {
    asr__tok_merge_ctx_t c = {
        .t = t, .file = "tokenizer.json", .errbuf = errbuf, .errbuf_len = errbuf_len};
    asr_err_t err = asr__json_merges(buf, len, asr__tok_merge_str, &c, errbuf, errbuf_len);
    free(c.cat);
    if (err == ASR_ERR_MODEL && errbuf && errbuf_len && strncmp(errbuf, "tokenizer.json", 14)) {
        char tmp[256];
        snprintf(tmp, sizeof tmp, "%s", errbuf);
        asr_errf(errbuf, errbuf_len, "tokenizer.json: %s", tmp);
    }
    return err;
}

/* ---- suppress set (faster-whisper get_suppressed_tokens with [-1]) ---- */

static int cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* Adds the first token of encode(s) if encode(s) is one token (or always when `first`). */
static asr_err_t add_encoded(const asr_tokenizer_t *t, const char *s, bool first, int32_t *set,
                             int *n) {
    int32_t *ids;
    int k;
    asr_err_t err = asr_tokenizer_encode(t, s, &ids, &k);
    if (err)
        return err;
    if (k == 1 || (first && k > 0))
        set[(*n)++] = ids[0];
    free(ids);
    return ASR_OK;
}

static asr_err_t build_suppress(asr_tokenizer_t *t) {
    static const char *const multi[] = {"<<",
                                        ">>",
                                        "<<<",
                                        ">>>",
                                        "--",
                                        "---",
                                        "-(",
                                        "-[",
                                        "('",
                                        "(\"",
                                        "((",
                                        "))",
                                        "(((",
                                        ")))",
                                        "[[",
                                        "]]",
                                        "{{",
                                        "}}",
                                        "\xe2\x99\xaa\xe2\x99\xaa",
                                        "\xe2\x99\xaa\xe2\x99\xaa\xe2\x99\xaa"};
    static const char *const single = "\"#()*+/:;<=>@[\\]^_`{|}~";
    static const char *const cjk[] = {"\xe3\x80\x8c", "\xe3\x80\x8d", "\xe3\x80\x8e",
                                      "\xe3\x80\x8f"}; /* 「」『』 */
    static const char *const misc[] = {"\xe2\x99\xa9", "\xe2\x99\xaa", "\xe2\x99\xab",
                                       "\xe2\x99\xac", "\xe2\x99\xad", "\xe2\x99\xae",
                                       "\xe2\x99\xaf"}; /* ♩♪♫♬♭♮♯ (U+2640..U+267F) */
    enum { CAP = 256 };
    int32_t set[CAP];
    int n = 0;
    char s[32];
    asr_err_t err;
    if ((err = add_encoded(t, " -", true, set, &n)) || (err = add_encoded(t, " '", true, set, &n)))
        return err;
    for (int pass = 0; pass < 2; pass++) { /* the symbol, then " " + symbol */
        const char *pre = pass ? " " : "";
        for (const char *c = single; *c; c++) {
            snprintf(s, sizeof s, "%s%c", pre, *c);
            if ((err = add_encoded(t, s, false, set, &n)))
                return err;
        }
        const char *const *lists[3] = {cjk, multi, misc};
        const size_t counts[3] = {4, sizeof multi / sizeof *multi, sizeof misc / sizeof *misc};
        for (int l = 0; l < 3; l++)
            for (size_t i = 0; i < counts[l]; i++) {
                snprintf(s, sizeof s, "%s%s", pre, lists[l][i]);
                if ((err = add_encoded(t, s, l == 2, set, &n)))
                    return err;
            }
    }
    const asr_special_tokens_t *sp = &t->sp;
    int32_t extra[] = {sp->transcribe, sp->translate, sp->sot,
                       sp->sot_prev,   sp->sot_lm,    sp->no_speech};
    for (size_t i = 0; i < sizeof extra / sizeof *extra; i++)
        set[n++] = extra[i];
    qsort(set, (size_t)n, sizeof *set, cmp_i32);
    int u = 0;
    for (int i = 0; i < n; i++)
        if (u == 0 || set[i] != set[u - 1])
            set[u++] = set[i];
    t->suppress = asr_malloc((size_t)u * sizeof *t->suppress);
    if (!t->suppress)
        return ASR_ERR_NOMEM;
    memcpy(t->suppress, set, (size_t)u * sizeof *set);
    t->n_suppress = u;
    return ASR_OK;
}

/* ---- load / destroy ---- */

asr_err_t asr__tok_finish(asr_tokenizer_t *t, asr_err_t err, asr_tokenizer_t **out, char *errbuf,
                          size_t errbuf_len) {
    if (!err)
        err = build_suppress(t);
    if (err) {
        if (err == ASR_ERR_NOMEM)
            asr_errf(errbuf, errbuf_len, "out of memory loading the tokenizer");
        asr_tokenizer_destroy(t);
        return err;
    }
    *out = t;
    return ASR_OK;
}

asr_err_t asr_tokenizer_load_buffers(const char *vocab, size_t vocab_len, bool vocab_is_json,
                                     const char *tok_json, size_t tok_json_len, int n_vocab,
                                     asr_tokenizer_t **out, char *errbuf, size_t errbuf_len) {
    if (out)
        *out = NULL;
    if (!out || !vocab || !tok_json)
        return ASR_ERR_INVALID;
    asr_tokenizer_t *t = asr_calloc(1, sizeof *t);
    if (!t)
        return asr__tok_finish(t, ASR_ERR_NOMEM, out, errbuf, errbuf_len);
    asr_err_t err = load_vocab(t, vocab, vocab_len, vocab_is_json, errbuf, errbuf_len);
    if (!err && n_vocab > 0 && t->n_tokens != n_vocab) {
        asr_errf(errbuf, errbuf_len, "vocabulary has %d tokens but the model has %d", t->n_tokens,
                 n_vocab);
        err = ASR_ERR_MODEL;
    }
    if (!err && !(err = decode_token_bytes(t)) && !(err = find_specials(t, errbuf, errbuf_len)))
        err = load_merges(t, tok_json, tok_json_len, errbuf, errbuf_len);
    return asr__tok_finish(t, err, out, errbuf, errbuf_len);
}

asr_err_t asr__tok_begin(const char *const *strs, const size_t *lens, int n, asr_tokenizer_t **out,
                         char *errbuf, size_t errbuf_len) {
    asr_tokenizer_t *t = *out = asr_calloc(1, sizeof *t);
    if (!t)
        return ASR_ERR_NOMEM;
    size_t pool = (size_t)n;
    for (int i = 0; i < n; i++)
        pool += lens[i];
    vocab_ctx_t v = {.t = t, .pool_cap = pool + 1, .errbuf = errbuf, .errbuf_len = errbuf_len};
    t->str_pool = asr_malloc(v.pool_cap);
    if (!t->str_pool)
        return ASR_ERR_NOMEM;
    asr_err_t err = ASR_OK;
    for (int i = 0; i < n && !err; i++)
        err = vocab_add(strs[i], lens[i], &v);
    if (!err)
        err = vocab_index(t, errbuf, errbuf_len);
    if (!err)
        err = decode_token_bytes(t);
    return err ? err : find_specials(t, errbuf, errbuf_len);
}

asr_err_t asr__tok_read_file(const char *dir, const char *name, char **buf, size_t *len,
                             char *errbuf, size_t errbuf_len) {
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path) {
        asr_errf(errbuf, errbuf_len, "model path too long");
        return ASR_ERR_MODEL;
    }
    asr_err_t err = asr_read_file(path, buf, len);
    if (err == ASR_ERR_NOT_FOUND || err == ASR_ERR_NOMEM)
        return err;
    if (err) {
        asr_errf(errbuf, errbuf_len, "cannot read %s", path);
        return ASR_ERR_MODEL;
    }
    return ASR_OK;
}

asr_err_t asr_tokenizer_load(const char *model_dir, int n_vocab, asr_tokenizer_t **out,
                             char *errbuf, size_t errbuf_len) {
    if (out)
        *out = NULL;
    if (!model_dir || !out)
        return ASR_ERR_INVALID;
    char *vocab = NULL, *tok = NULL;
    size_t vocab_len = 0, tok_len = 0;
    bool is_json = true;
    asr_err_t err =
        asr__tok_read_file(model_dir, "vocabulary.json", &vocab, &vocab_len, errbuf, errbuf_len);
    if (err == ASR_ERR_NOT_FOUND) {
        is_json = false;
        err =
            asr__tok_read_file(model_dir, "vocabulary.txt", &vocab, &vocab_len, errbuf, errbuf_len);
    }
    if (err == ASR_ERR_NOT_FOUND) /* no CTranslate2 vocabulary: a Hugging Face directory? */
        return asr__tok_load_hf(model_dir, n_vocab, out, errbuf, errbuf_len);
    if (!err) {
        err = asr__tok_read_file(model_dir, "tokenizer.json", &tok, &tok_len, errbuf, errbuf_len);
        if (err == ASR_ERR_NOT_FOUND)
            asr_errf(errbuf, errbuf_len, "no tokenizer.json in %s", model_dir);
    }
    if (err == ASR_ERR_NOT_FOUND)
        err = ASR_ERR_MODEL;
    else if (err == ASR_ERR_NOMEM)
        asr_errf(errbuf, errbuf_len, "out of memory reading the vocabulary");
    if (!err)
        err = asr_tokenizer_load_buffers(vocab, vocab_len, is_json, tok, tok_len, n_vocab, out,
                                         errbuf, errbuf_len);
    free(vocab);
    free(tok);
    return err;
}

void asr_tokenizer_destroy(asr_tokenizer_t *t) {
    if (!t)
        return;
    free(t->str_off);
    free(t->str_pool);
    free(t->byte_off);
    free(t->byte_pool);
    free(t->str_index);
    free(t->merges);
    free(t->merge_list);
    free(t->suppress);
    free(t);
}

/* ---- accessors ---- */

const asr_special_tokens_t *asr_tokenizer_special(const asr_tokenizer_t *t) { return &t->sp; }

const char *asr_tokenizer_token_bytes(const asr_tokenizer_t *t, int32_t id, size_t *len) {
    if (id < 0 || id >= t->n_tokens) {
        if (len)
            *len = 0;
        return NULL;
    }
    if (len)
        *len = t->byte_off[id + 1] - t->byte_off[id] - 1;
    return t->byte_pool + t->byte_off[id];
}

const char *asr_tokenizer_token_str(const asr_tokenizer_t *t, int32_t id) {
    return id < 0 || id >= t->n_tokens ? NULL : t->str_pool + t->str_off[id];
}

void asr_tokenizer_decode(const asr_tokenizer_t *t, const int32_t *ids, int n, asr_buf_t *out) {
    asr_buf_t raw;
    asr_buf_init(&raw);
    for (int i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->sp.eot)
            continue;
        size_t len;
        const char *b = asr_tokenizer_token_bytes(t, ids[i], &len);
        asr_buf_append(&raw, b, len);
    }
    static const char fffd[] = "\xef\xbf\xbd";
    const uint8_t *s = (const uint8_t *)raw.data;
    size_t run = 0, i = 0; /* s[run, i) is valid UTF-8 not yet copied */
    while (i < raw.len) {
        uint32_t cp;
        int k = asr_utf8_next(s + i, raw.len - i, &cp);
        if (k > 0) {
            i += (size_t)k;
            continue;
        }
        asr_buf_append(out, s + run, i - run);
        asr_buf_append(out, fffd, 3);
        i += (size_t)-k;
        run = i;
    }
    if (i > run)
        asr_buf_append(out, s + run, i - run);
    else if (!out->data)
        asr_buf_append(out, "", 0); /* keep out->data a valid string */
    asr_buf_free(&raw);
}

int32_t asr_tokenizer_lang_token(const asr_tokenizer_t *t, const char *code) {
    int i = asr__lang_index(code);
    return i < 0 ? -1 : t->lang_id[i];
}

const char *asr_tokenizer_lang_code(const asr_tokenizer_t *t, int32_t token) {
    const asr_special_tokens_t *sp = &t->sp;
    if (!sp->multilingual || token < sp->lang_begin || token >= sp->lang_begin + sp->n_languages)
        return NULL;
    for (int i = 0; i < ASR_TOKENIZER_MAX_LANGUAGES; i++)
        if (t->lang_id[i] == token)
            return asr__lang_code_at(i);
    return NULL;
}

int asr_tokenizer_suppress_tokens(const asr_tokenizer_t *t, int32_t *out, int cap) {
    if (!out)
        return t->n_suppress;
    int n = cap < t->n_suppress ? cap : t->n_suppress;
    if (n <= 0)
        return 0;
    memcpy(out, t->suppress, (size_t)n * sizeof *out);
    return n;
}

int asr_tokenizer_n_merges(const asr_tokenizer_t *t) { return t->n_merges; }

int32_t asr_tokenizer_merge(const asr_tokenizer_t *t, int i, int32_t *left, int32_t *right) {
    if (i < 0 || i >= t->n_merges)
        return -1;
    const int32_t *e = t->merge_list + 3 * (size_t)i;
    if (left)
        *left = e[0];
    if (right)
        *right = e[1];
    return e[2];
}
