/* tokenizer_ggml: tokenizers whose file lists only the base tokens' raw bytes in rank order, as
 * tiktoken keeps them: a whisper.cpp ggml file's vocabulary (u32 length + bytes per token) and a
 * tiktoken file ("BASE64 RANK" per line, openai/whisper's assets).
 *
 * Such a file has no merges and no special tokens. In tiktoken a token's id is its BPE rank, so the
 * merges follow from the ranks: a multi-byte token's bytes, merged by rank-BPE (repeatedly join
 * the adjacent pair whose concatenation is the lowest-ranked token) over the tokens ranked below
 * it, end as exactly two parts in a real vocabulary, and that pair is its merge; the merges' rank
 * order is the id order of their results. On openai/whisper's multilingual.tiktoken this gives the
 * 50000 merges of Hugging Face's tokenizer.json for Whisper exactly (tests/unit/test_tokenizer.c
 * checks it against the base model). A token that does not end as two parts gets no merge (BPE
 * then never produces it, as it cannot from its lower-ranked parts either). The special tokens are
 * laid out from the model's vocabulary size (tokenizer_layout.c).
 *
 * Cost: O(L^2) per token of L bytes (L <= ASR_TOKENIZER_MAX_TOKEN_BYTES), ~50 ms for Whisper's
 * 50k tokens (at most 33 bytes each in multilingual.tiktoken, 128 in GPT-2's). */
#include <stdio.h>
#include <string.h>
#include "engine/tokenizer_int.h"

#define MAX_TOKEN ASR_TOKENIZER_MAX_TOKEN_BYTES

/* Id of the token that joins parts i and i+1 (characters [start[i], start[i+2]) of s, at string
 * offsets soff) when it ranks below `id`, else INT32_MAX. */
static int32_t joined(const asr_tokenizer_t *t, int32_t id, const char *s, const size_t *soff,
                      const int *start, int i) {
    size_t a = soff[start[i]], b = soff[start[i + 2]];
    int32_t r = asr_tokenizer_token_to_id(t, s + a, b - a);
    return r >= 0 && r < id ? r : INT32_MAX;
}

/* The merge of token `id` by rank-BPE over tokens of lower id; false when it has none. Works on
 * the token's string (bytes_to_unicode form), whose substrings are the strings of its byte runs. */
static bool derive_merge(const asr_tokenizer_t *t, int32_t id, int32_t *left, int32_t *right) {
    const char *s = asr_tokenizer_token_str(t, id);
    size_t n_str = strlen(s), soff[MAX_TOKEN + 1];
    int n = 0; /* characters (= bytes of the raw token) */
    for (size_t i = 0; i < n_str;) {
        uint32_t cp;
        int k = asr_utf8_next((const uint8_t *)s + i, n_str - i, &cp);
        if (n == MAX_TOKEN)
            return false;
        soff[n++] = i;
        i += k > 0 ? (size_t)k : 1;
    }
    soff[n] = n_str;
    if (n < 2)
        return false;
    int start[MAX_TOKEN + 1]; /* part i is characters [start[i], start[i+1]) */
    int32_t rank[MAX_TOKEN];  /* id of part i joined with part i+1, or INT32_MAX */
    int parts = n;
    for (int i = 0; i <= n; i++)
        start[i] = i;
    for (int i = 0; i + 1 < parts; i++)
        rank[i] = joined(t, id, s, soff, start, i);
    for (;;) {
        int best = -1;
        for (int i = 0; i + 1 < parts; i++)
            if (rank[i] != INT32_MAX && (best < 0 || rank[i] < rank[best]))
                best = i;
        if (best < 0)
            break;
        /* part best absorbs part best+1 */
        memmove(start + best + 1, start + best + 2, (size_t)(parts - best - 1) * sizeof *start);
        memmove(rank + best + 1, rank + best + 2,
                (size_t)(parts > best + 2 ? parts - best - 2 : 0) * sizeof *rank);
        parts--;
        if (best > 0)
            rank[best - 1] = joined(t, id, s, soff, start, best - 1);
        if (best + 1 < parts)
            rank[best] = joined(t, id, s, soff, start, best);
    }
    if (parts != 2)
        return false;
    *left = asr_tokenizer_token_to_id(t, s, soff[start[1]]);
    *right = asr_tokenizer_token_to_id(t, s + soff[start[1]], n_str - soff[start[1]]);
    return *left >= 0 && *right >= 0;
}

asr_err_t asr_tokenizer_load_ggml(const uint8_t *vocab, size_t vocab_len, int n_tokens, int n_vocab,
                                  asr_tokenizer_t **out, char *errbuf, size_t errbuf_len) {
    if (out)
        *out = NULL;
    if (!out || (!vocab && vocab_len))
        return ASR_ERR_INVALID;
    int32_t eot = asr__tok_layout_eot(n_vocab);
    if (eot < 0) {
        asr_errf(errbuf, errbuf_len, "%d tokens is not a Whisper vocabulary size", n_vocab);
        return ASR_ERR_MODEL;
    }
    if (n_tokens < 0 || n_tokens > n_vocab) {
        asr_errf(errbuf, errbuf_len, "ggml vocabulary of %d tokens for a model of %d", n_tokens,
                 n_vocab);
        return ASR_ERR_MODEL;
    }
    asr__tok_list_t l;
    asr__tok_list_init(&l);
    asr_buf_t str; /* one token's string, <= 2 * MAX_TOKEN bytes */
    asr_buf_init(&str);
    asr_err_t err = ASR_OK;
    size_t p = 0;
    for (int i = 0; i < n_tokens && !err; i++) {
        if (vocab_len - p < 4) {
            asr_errf(errbuf, errbuf_len, "ggml vocabulary truncated at token %d", i);
            err = ASR_ERR_MODEL;
            break;
        }
        uint32_t len = (uint32_t)vocab[p] | (uint32_t)vocab[p + 1] << 8 |
                       (uint32_t)vocab[p + 2] << 16 | (uint32_t)vocab[p + 3] << 24;
        p += 4;
        if (len > vocab_len - p) {
            asr_errf(errbuf, errbuf_len, "ggml vocabulary truncated at token %d", i);
            err = ASR_ERR_MODEL;
            break;
        }
        if (i < eot) { /* the file's specials, if any, give way to the layout */
            if (len > MAX_TOKEN) {
                asr_errf(errbuf, errbuf_len,
                         "ggml vocabulary: token %d is %u bytes long (at most %d)", i, len,
                         MAX_TOKEN);
                err = ASR_ERR_MODEL;
                break;
            }
            str.len = 0;
            asr__tok_bytes_to_str(vocab + p, len, &str);
            err = asr__tok_list_add(&l, str.data ? str.data : "", str.len, i);
        }
        p += len;
    }
    asr_buf_free(&str);
    asr_tokenizer_t *t = NULL;
    if (!err)
        err = asr__tok_list_build(&l, n_vocab, eot, &t, errbuf, errbuf_len);
    asr__tok_list_free(&l);
    for (int32_t id = 0; id < eot && !err; id++) {
        int32_t a, b;
        if (derive_merge(t, id, &a, &b))
            err = asr__tok_add_merge(t, a, b, id);
    }
    return asr__tok_finish(t, err, out, errbuf, errbuf_len);
}

/* ---- tiktoken ---- */

static int b64_value(unsigned char c) {
    return c >= 'A' && c <= 'Z'   ? c - 'A'
           : c >= 'a' && c <= 'z' ? c - 'a' + 26
           : c >= '0' && c <= '9' ? c - '0' + 52
           : c == '+'             ? 62
           : c == '/'             ? 63
                                  : -1;
}

/* Standard base64 (padding optional) of s[0..n) into out; returns the byte count or -1. */
static long b64_decode(const char *s, size_t n, uint8_t *out) {
    while (n && s[n - 1] == '=')
        n--;
    if (n % 4 == 1)
        return -1;
    uint32_t acc = 0;
    int bits = 0;
    long o = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64_value((unsigned char)s[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
        }
    }
    return o;
}

asr_err_t asr_tokenizer_load_tiktoken(const char *text, size_t len, int n_vocab,
                                      asr_tokenizer_t **out, char *errbuf, size_t errbuf_len) {
    if (out)
        *out = NULL;
    if (!out || (!text && len))
        return ASR_ERR_INVALID;
    int32_t eot = asr__tok_layout_eot(n_vocab);
    if (eot < 0) {
        asr_errf(errbuf, errbuf_len, "%d tokens is not a Whisper vocabulary size", n_vocab);
        return ASR_ERR_MODEL;
    }
    /* as a ggml vocabulary: 4 + (<= 3/4 of the base64) bytes per line, each line >= 3 bytes */
    uint8_t *vocab = asr_malloc(2 * len + 8);
    if (!vocab) {
        asr_errf(errbuf, errbuf_len, "out of memory loading the tokenizer");
        return ASR_ERR_NOMEM;
    }
    size_t o = 0;
    int n = 0, line = 0;
    asr_err_t err = ASR_OK;
    for (size_t i = 0; i < len && !err;) {
        const char *nl = memchr(text + i, '\n', len - i);
        size_t e = nl ? (size_t)(nl - text) : len, end = e;
        line++;
        if (end > i && text[end - 1] == '\r')
            end--;
        const char *sp = end > i ? memchr(text + i, ' ', end - i) : NULL;
        long rank = -1, k = -1;
        if (end == i) { /* an empty line */
            i = e + 1;
            continue;
        }
        if (sp && sp + 1 < text + end) {
            rank = 0;
            for (const char *q = sp + 1; q < text + end && rank >= 0; q++)
                rank =
                    *q >= '0' && *q <= '9' && rank < INT32_MAX / 10 ? rank * 10 + (*q - '0') : -1;
        }
        size_t b64_len = sp ? (size_t)(sp - (text + i)) : 0;
        if (sp && b64_len <= 4 * ((MAX_TOKEN + 2) / 3)) /* longer: refused as the ggml path does */
            k = b64_decode(text + i, b64_len, vocab + o + 4);
        if (!sp || rank < 0 || k < 0) {
            asr_errf(errbuf, errbuf_len, "tiktoken line %d is not \"BASE64 RANK\"", line);
            err = ASR_ERR_MODEL;
        } else if (rank != n || n >= eot) {
            asr_errf(errbuf, errbuf_len,
                     n >= eot ? "tiktoken line %d: more base tokens than the layout's %d"
                              : "tiktoken line %d: ranks must be 0, 1, 2, ... (%d)",
                     line, n >= eot ? (int)eot : n);
            err = ASR_ERR_MODEL;
        } else {
            vocab[o] = (uint8_t)k, vocab[o + 1] = (uint8_t)(k >> 8);
            vocab[o + 2] = (uint8_t)(k >> 16), vocab[o + 3] = (uint8_t)(k >> 24);
            o += 4 + (size_t)k;
            n++;
        }
        i = e + 1;
    }
    if (!err)
        err = asr_tokenizer_load_ggml(vocab, o, n, n_vocab, out, errbuf, errbuf_len);
    free(vocab);
    return err;
}
