/* tokenizer_int: private parts of the tokenizer shared by tokenizer.c, tokenizer_bpe.c,
 * tokenizer_json.c, unicode_tables.c and lang_codes.c, and visible to tests/unit/test_tokenizer.c.
 * Nothing else includes this header. */
#ifndef ASR_ENGINE_TOKENIZER_INT_H
#define ASR_ENGINE_TOKENIZER_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "core/core.h"
#include "engine/tokenizer.h"

/* One merge rule: (left, right) -> merged, applied in rank order (lower first). */
typedef struct {
    uint64_t key; /* ((uint64_t)(left + 1) << 32) | (right + 1); 0 marks an empty slot */
    int32_t rank;
    int32_t merged;
} asr__tok_merge_t;

/* A string-index slot: the full hash is kept so probes rarely touch the string pool. */
typedef struct {
    uint32_t hash;
    int32_t id; /* -1 = empty */
} asr__tok_slot_t;

struct asr_tokenizer {
    asr_special_tokens_t sp;
    int n_tokens;               /* == sp.n_vocab */
    uint32_t *str_off;          /* [n_tokens+1] token i is str_pool[str_off[i] .. str_off[i+1]-1) */
    char *str_pool;             /* vocabulary strings, each followed by a NUL */
    uint32_t *byte_off;         /* [n_tokens+1] same layout for the decoded bytes */
    char *byte_pool;            /* raw token bytes, each followed by a NUL */
    asr__tok_slot_t *str_index; /* [str_mask+1] open addressing over the strings */
    uint32_t str_mask;          /* table size - 1 (power of two) */
    asr__tok_merge_t *merges;   /* [merge_mask+1] open addressing, key 0 = empty */
    uint32_t merge_mask;
    int n_merges;
    int32_t byte_id[256];                         /* token of each single byte */
    int32_t lang_id[ASR_TOKENIZER_MAX_LANGUAGES]; /* token of language code i, or -1 */
    int32_t *suppress;                            /* [n_suppress] sorted, unique */
    int n_suppress;
};

/* ---- lang_codes.c ---- */
/* Index of a language code in Whisper's token order (exact, lower case), or -1. */
int asr__lang_index(const char *code);
/* Code of language index i (static string), or NULL outside [0, ASR_TOKENIZER_MAX_LANGUAGES). */
const char *asr__lang_code_at(int i);

/* ---- unicode (unicode_tables.c + tokenizer_bpe.c) ---- */
extern const uint32_t asr__unicode_letter_ranges[][2];
extern const int asr__unicode_letter_n;
extern const uint32_t asr__unicode_number_ranges[][2];
extern const int asr__unicode_number_n;
extern const uint32_t asr__unicode_space_ranges[][2];
extern const int asr__unicode_space_n;

/* The regex classes as Oniguruma (HF tokenizers) matches them: \p{L}, \p{N}, \s. */
bool asr__unicode_is_letter(uint32_t cp); /* general category L* */
bool asr__unicode_is_number(uint32_t cp); /* general category N* */
bool asr__unicode_is_space(uint32_t cp);  /* White_Space property */

/* GPT-2 pre-split of text[0..len): calls cb(start, end) for each piece in order, pieces covering
 * the text exactly. Invalid UTF-8 bytes count as one "other" character each. Returns ASR_OK or the
 * first non-OK value cb returned. */
typedef asr_err_t (*asr__tok_piece_cb)(size_t start, size_t end, void *user_data);
asr_err_t asr__tok_presplit(const char *text, size_t len, asr__tok_piece_cb cb, void *user_data);

/* Looks up the merge rule of (left, right); NULL if none. */
const asr__tok_merge_t *asr__tok_merge_find(const asr_tokenizer_t *t, int32_t left, int32_t right);

/* ---- tokenizer_json.c: a small strict JSON reader for the two file shapes we need ----
 * (jansson takes ~200 ms on a 4 MB tokenizer.json because it builds every object; this reader
 * streams and skips what is not needed, ~10x faster). */
/* Calls cb for each string of the top-level array (vocabulary.json). */
typedef asr_err_t (*asr__json_str_cb)(const char *s, size_t len, void *user_data);
asr_err_t asr__json_string_array(const char *buf, size_t len, asr__json_str_cb cb, void *user_data,
                                 char *errbuf, size_t errbuf_len);

/* Calls cb(a, a_len, b, b_len) for each merge of tokenizer.json's model.merges, in rank order;
 * merges may be "a b" strings or ["a", "b"] arrays. Fails if model.type is not "BPE" or merges are
 * missing. */
typedef asr_err_t (*asr__json_merge_cb)(const char *a, size_t a_len, const char *b, size_t b_len,
                                        void *user_data);
asr_err_t asr__json_merges(const char *buf, size_t len, asr__json_merge_cb cb, void *user_data,
                           char *errbuf, size_t errbuf_len);

#endif
