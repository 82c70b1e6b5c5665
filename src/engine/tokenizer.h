/* tokenizer: the Whisper byte-level BPE tokenizer, from any of the files that carry one, and the
 * writers of each of those files (for `asrd convert` and random models).
 *
 * Sources: a CTranslate2 directory (vocabulary.json or vocabulary.txt + tokenizer.json's merges),
 * a Hugging Face directory (tokenizer.json alone, or vocab.json + merges.txt [+
 * added_tokens.json]), a whisper.cpp ggml vocabulary (raw token bytes in rank order: merges derived
 * from the ranks), and the built-in multilingual vocabulary (openai/whisper's
 * multilingual.tiktoken, embedded). Token strings are stored in GPT-2's bytes_to_unicode form and
 * decoded to raw bytes at load (WHISPER-FACTS §5). Special tokens a file lacks are laid out as
 * Whisper lays them out.
 *
 * Thread-safety: a loaded tokenizer is immutable; every function below may be called concurrently
 * on the same tokenizer. asr_tokenizer_destroy must not race with any other call. */
#ifndef ASR_ENGINE_TOKENIZER_H
#define ASR_ENGINE_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "core/core.h"

/* Longest text asr_tokenizer_encode accepts, in bytes. Encode only serves prompts, prefixes and
 * hotwords (at most 223 tokens are ever fed), so the cap is generous; it bounds work and memory. */
#define ASR_TOKENIZER_MAX_TEXT 65536

/* Number of language codes known (Whisper order; the 100th, "yue", only on large-v3/turbo). */
#define ASR_TOKENIZER_MAX_LANGUAGES 100

typedef struct asr_tokenizer asr_tokenizer_t;

typedef struct {
    int32_t eot;             /* <|endoftext|>; text tokens are the ids below it */
    int32_t sot;             /* <|startoftranscript|> */
    int32_t translate;       /* <|translate|> */
    int32_t transcribe;      /* <|transcribe|> */
    int32_t sot_lm;          /* <|startoflm|> */
    int32_t sot_prev;        /* <|startofprev|> */
    int32_t no_speech;       /* <|nospeech|> or the older <|nocaptions|> */
    int32_t no_timestamps;   /* <|notimestamps|> */
    int32_t timestamp_begin; /* <|0.00|>; timestamp i (i*0.02 s) is timestamp_begin + i */
    int32_t lang_begin;      /* id of <|en|> (= sot + 1); language i is lang_begin + i */
    int n_languages;   /* no_speech - sot - 5 (99, or 100 on large-v3); unused on .en models */
    int n_vocab;       /* number of tokens (ids 0 .. n_vocab-1) */
    bool multilingual; /* the empty-string token "" exists */
} asr_special_tokens_t;

/* Loads the tokenizer of the model directory `model_dir`:
 *  - CTranslate2: vocabulary.json (preferred) or vocabulary.txt, plus the BPE merges of
 *    tokenizer.json (required: encode and the suppress set need them);
 *  - otherwise Hugging Face: tokenizer.json (model.vocab, model.merges, added_tokens), or else
 *    vocab.json + merges.txt (+ added_tokens.json). Special tokens the files lack (and ids neither
 *    lists) are filled in Whisper's layout for n_vocab (n_vocab <= 0: the files' highest id + 1,
 *    at least 51864 English-only / 51865 multilingual).
 * n_vocab: the model's vocabulary size (from the weights); the tokenizer must have exactly this
 *   many tokens. n_vocab <= 0 skips the check (tests, fuzzing).
 * out: on success *out is the new tokenizer, owned by caller (asr_tokenizer_destroy); NULL on
 * error. errbuf: on error, a one-line reason (may be NULL). Returns ASR_OK, ASR_ERR_MODEL
 * (missing/corrupt/inconsistent files), ASR_ERR_NOMEM or ASR_ERR_INVALID (NULL arguments). */
asr_err_t asr_tokenizer_load(const char *model_dir, int n_vocab, asr_tokenizer_t **out,
                             char *errbuf, size_t errbuf_len);

/* As asr_tokenizer_load, from memory: `vocab` holds vocabulary.json (vocab_is_json) or
 * vocabulary.txt text, `tok_json` holds tokenizer.json. All buffers are borrowed for the call only
 * and need not be NUL-terminated. */
asr_err_t asr_tokenizer_load_buffers(const char *vocab, size_t vocab_len, bool vocab_is_json,
                                     const char *tok_json, size_t tok_json_len, int n_vocab,
                                     asr_tokenizer_t **out, char *errbuf, size_t errbuf_len);

/* The tokenizer of a whisper.cpp ggml file: `vocab` holds n_tokens entries of (u32 little-endian
 * length, raw token bytes), token id order (the ranks of the byte-level BPE, as tiktoken has them:
 * each multi-byte token's merge is derived by rank-BPE over the lower-ranked tokens). The special
 * tokens are laid out from n_vocab as Whisper lays them out: eot = 50256 for n_vocab <= 51864
 * (English-only), 50257 from 51865 (multilingual), languages up to 100 (51866: large-v3's "yue").
 * Entries at ids >= eot are ignored (converters from Hugging Face write <|endoftext|> there);
 * base ids the file lacks get placeholder strings ("<|unused_ID|>"; on a multilingual layout id
 * 50256 gets "", which Whisper has there). A token longer than ASR_TOKENIZER_MAX_TOKEN_BYTES is
 * refused. `vocab` is borrowed for the call only. Errors as asr_tokenizer_load. */
#define ASR_TOKENIZER_MAX_TOKEN_BYTES 256
asr_err_t asr_tokenizer_load_ggml(const uint8_t *vocab, size_t vocab_len, int n_tokens, int n_vocab,
                                  asr_tokenizer_t **out, char *errbuf, size_t errbuf_len);

/* As asr_tokenizer_load_ggml from a tiktoken file's text (lines "BASE64 RANK", ranks 0, 1, 2, …
 * in order), e.g. openai/whisper's multilingual.tiktoken. `text` is borrowed for the call only. */
asr_err_t asr_tokenizer_load_tiktoken(const char *text, size_t len, int n_vocab,
                                      asr_tokenizer_t **out, char *errbuf, size_t errbuf_len);

/* The multilingual Whisper tokenizer built into the binary (openai/whisper's multilingual.tiktoken,
 * assets/tokenizer/), for models without tokenizer files (random-weight test models): n_vocab
 * 51865 (tiny … large-v2) or 51866 (large-v3, turbo); ASR_ERR_INVALID otherwise. */
asr_err_t asr_tokenizer_builtin(int n_vocab, asr_tokenizer_t **out, char *errbuf,
                                size_t errbuf_len);

/* Frees the tokenizer; NULL-safe. */
void asr_tokenizer_destroy(asr_tokenizer_t *t);

/* The special token ids; borrowed, valid until asr_tokenizer_destroy. */
const asr_special_tokens_t *asr_tokenizer_special(const asr_tokenizer_t *t);

/* Raw bytes of token `id` after inverting GPT-2 bytes_to_unicode (a token with a character outside
 * that table, which real vocabularies do not have, keeps its UTF-8 bytes). *len receives the byte
 * count (len may be NULL). Returns NULL (and *len = 0) if id is out of range. The bytes are
 * borrowed until asr_tokenizer_destroy and are NUL-terminated (but may contain NULs). */
const char *asr_tokenizer_token_bytes(const asr_tokenizer_t *t, int32_t id, size_t *len);

/* The token's string as written in the vocabulary file (bytes_to_unicode form, e.g. "Ġthe"),
 * NUL-terminated, borrowed until asr_tokenizer_destroy; NULL if id is out of range. */
const char *asr_tokenizer_token_str(const asr_tokenizer_t *t, int32_t id);

/* Id of the token whose vocabulary string is exactly s[0..len), or -1. */
int32_t asr_tokenizer_token_to_id(const asr_tokenizer_t *t, const char *s, size_t len);

/* Appends to `out` the UTF-8 text of the ids in [0, eot) (other ids, including negative and
 * out-of-range ones, are skipped): the tokens' bytes are concatenated, then each invalid UTF-8
 * sequence (maximal subpart) becomes U+FFFD, as Python's bytes.decode(errors="replace") does.
 * ids: borrowed, n entries. out: caller's buffer (grows; aborts on OOM like asr_buf_append). */
void asr_tokenizer_decode(const asr_tokenizer_t *t, const int32_t *ids, int n, asr_buf_t *out);

/* Byte-level BPE encoding of `text` (NUL-terminated, at most ASR_TOKENIZER_MAX_TEXT bytes): the
 * GPT-2 pre-split regex of WHISPER-FACTS §5, then merges by lowest rank. Special-token strings such
 * as "<|en|>" are NOT recognised (they are encoded as plain text), unlike Hugging Face's
 * added-token matching. Invalid UTF-8 bytes are encoded as their byte tokens.
 * On success *ids is a malloc'd array owned by caller (free(); NULL when *n == 0).
 * Returns ASR_OK, ASR_ERR_INVALID (NULL text or text too long) or ASR_ERR_NOMEM. */
asr_err_t asr_tokenizer_encode(const asr_tokenizer_t *t, const char *text, int32_t **ids, int *n);

/* Token id of a language code ("en", "zh", …, Whisper order of WHISPER-FACTS §5; "yue" only when
 * the model has 100 languages). Returns -1 for an unknown code or an English-only model. */
int32_t asr_tokenizer_lang_token(const asr_tokenizer_t *t, const char *code);

/* Code of a language token (static string), or NULL if `token` is not one on this model. */
const char *asr_tokenizer_lang_code(const asr_tokenizer_t *t, int32_t token);

/* English name of a language code as in openai's LANGUAGES table ("en" -> "english"); static
 * string, NULL if unknown. Thread-safe. */
const char *asr_lang_name(const char *code);

/* Canonical code (static string) for a language code, English name, one of openai's aliases
 * (TO_LANGUAGE_CODE: "mandarin", "castilian", …) or a regional form ("zh-TW", "en_US"),
 * case-insensitive; NULL if unknown. Thread-safe. Public: include/asr/engine.h. */
const char *asr_lang_code_normalize(const char *code_or_name);

/* The suppress set faster-whisper uses for suppress_tokens=[-1]: non_speech_tokens() plus
 * transcribe, translate, sot, sot_prev, sot_lm and no_speech; sorted, unique (computed at load).
 * Writes min(count, cap) ids to out (caller's array) and returns that number; with out == NULL
 * returns the full count. */
int asr_tokenizer_suppress_tokens(const asr_tokenizer_t *t, int32_t *out, int cap);

/* ---- introspection and writers (converters) ---- */

/* Number of BPE merges (ranks 0 .. n-1). */
int asr_tokenizer_n_merges(const asr_tokenizer_t *t);

/* Merge of rank i: *left and *right receive its token ids (either may be NULL) and the merged
 * token's id is returned; -1 (outputs untouched) when i is out of range. */
int32_t asr_tokenizer_merge(const asr_tokenizer_t *t, int i, int32_t *left, int32_t *right);

/* Writers of the tokenizer files, appended to `out` (a caller's buffer). Each returns ASR_OK,
 * ASR_ERR_NOMEM or ASR_ERR_INVALID (a token string is not valid UTF-8, which JSON cannot carry:
 * possible only from a vocabulary.txt), with a one-line reason in errbuf.
 *  - vocabulary_json: CTranslate2's vocabulary.json, a JSON array of all n_vocab token strings;
 *  - tokenizer_json: a Hugging Face tokenizer.json (byte-level BPE; model.vocab holds the base
 *    tokens, ids < eot; added_tokens every id >= eot; pre-tokenizer, decoder and post-processor as
 *    Hugging Face writes them for Whisper), readable by `tokenizers` (faster-whisper) and by
 *    asr_tokenizer_load;
 *  - vocab_json / merges_txt / added_tokens_json: Hugging Face's slow-tokenizer files (vocab.json
 *    {string: id} of the base tokens, merges.txt "#version: 0.2" then "a b" per rank,
 *    added_tokens.json {string: id} of ids >= eot). */
asr_err_t asr_tokenizer_write_vocabulary_json(const asr_tokenizer_t *t, asr_buf_t *out,
                                              char *errbuf, size_t errbuf_len);
asr_err_t asr_tokenizer_write_tokenizer_json(const asr_tokenizer_t *t, asr_buf_t *out, char *errbuf,
                                             size_t errbuf_len);
asr_err_t asr_tokenizer_write_vocab_json(const asr_tokenizer_t *t, asr_buf_t *out, char *errbuf,
                                         size_t errbuf_len);
asr_err_t asr_tokenizer_write_merges_txt(const asr_tokenizer_t *t, asr_buf_t *out, char *errbuf,
                                         size_t errbuf_len);
asr_err_t asr_tokenizer_write_added_tokens_json(const asr_tokenizer_t *t, asr_buf_t *out,
                                                char *errbuf, size_t errbuf_len);

#endif
