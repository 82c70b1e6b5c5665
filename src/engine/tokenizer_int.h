/* tokenizer_int: private parts of the tokenizer shared by its files (tokenizer*.c,
 * unicode_tables.c, lang_codes.c), and visible to tests/unit/test_tokenizer.c and the tokenizer's
 * fuzz targets. Nothing else includes this header. */
#ifndef ASR_ENGINE_TOKENIZER_INT_H
#define ASR_ENGINE_TOKENIZER_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "core/core.h"
#include "engine/tokenizer.h"

/* Most tokens a vocabulary may have (Whisper's: 51866). */
#define ASR__TOK_MAX_TOKENS (1 << 20)

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
    int32_t *merge_list;  /* [3 * n_merges] left, right, merged of each merge, rank order */
    int merge_list_cap;   /* merges merge_list has room for */
    int32_t byte_id[256]; /* token of each single byte */
    int32_t lang_id[ASR_TOKENIZER_MAX_LANGUAGES]; /* token of language code i, or -1 */
    int32_t *suppress;                            /* [n_suppress] sorted, unique */
    int n_suppress;
};

/* ---- building a tokenizer (tokenizer.c; the fronts in tokenizer_hf.c and tokenizer_ggml.c) ----
 * asr__tok_begin creates a tokenizer from its token strings (id order, bytes_to_unicode form) and
 * finds the special tokens; merges are then added in rank order; asr__tok_finish computes what
 * derives from both (the suppress set). On error the functions leave *t for the caller to destroy
 * and write a one-line reason. */
asr_err_t asr__tok_begin(const char *const *strs, const size_t *lens, int n, asr_tokenizer_t **out,
                         char *errbuf, size_t errbuf_len);
/* Adds merge (left, right) -> merged at the next rank (a repeated pair keeps its first rank). */
asr_err_t asr__tok_add_merge(asr_tokenizer_t *t, int32_t left, int32_t right, int32_t merged);
/* An asr__json_merge_cb adding the merge of two token strings; user_data is an
 * asr__tok_merge_ctx_t whose `file` names the source in errors. */
typedef struct {
    asr_tokenizer_t *t;
    const char *file;
    char *cat; /* a + b scratch */
    size_t cat_cap;
    char *errbuf;
    size_t errbuf_len;
} asr__tok_merge_ctx_t;
asr_err_t asr__tok_merge_str(const char *a, size_t a_len, const char *b, size_t b_len,
                             void *user_data);
/* Ends a build: unless err is already set, computes the suppress set and hands t to *out; on any
 * error destroys t (NULL-safe), leaves *out NULL and says so when out of memory. Returns err. */
asr_err_t asr__tok_finish(asr_tokenizer_t *t, asr_err_t err, asr_tokenizer_t **out, char *errbuf,
                          size_t errbuf_len);
/* The GPT-2 bytes_to_unicode form of raw bytes: appends to out (1 or 2 UTF-8 bytes per byte). */
void asr__tok_bytes_to_str(const uint8_t *b, size_t n, asr_buf_t *out);
/* Reads dir/name; ASR_ERR_NOT_FOUND if absent, ASR_ERR_MODEL with a reason otherwise. */
asr_err_t asr__tok_read_file(const char *dir, const char *name, char **buf, size_t *len,
                             char *errbuf, size_t errbuf_len);

/* A Hugging Face directory (tokenizer.json, or vocab.json + merges.txt [+ added_tokens.json]);
 * asr_tokenizer_load's fallback when there is no vocabulary.json/.txt (tokenizer_hf.c). */
asr_err_t asr__tok_load_hf(const char *dir, int n_vocab, asr_tokenizer_t **out, char *errbuf,
                           size_t errbuf_len);
/* The same from memory: tok_json (tokenizer.json) when non-NULL, else vocab_json + merges_txt
 * (+ added_json, may be NULL). Buffers borrowed, need not be NUL-terminated. */
asr_err_t asr__tok_load_hf_buffers(const char *tok_json, size_t tok_json_len,
                                   const char *vocab_json, size_t vocab_json_len,
                                   const char *merges_txt, size_t merges_txt_len,
                                   const char *added_json, size_t added_json_len, int n_vocab,
                                   asr_tokenizer_t **out, char *errbuf, size_t errbuf_len);

/* ---- Whisper's special-token layout and the id table of the fronts (tokenizer_layout.c) ----
 * A vocabulary of n_vocab ids whose first special token is eot: eot, sot, the languages, translate,
 * transcribe, startoflm, startofprev, nospeech, notimestamps, 1501 timestamps, ending at n_vocab.
 * asr__tok_layout_eot: the eot Whisper uses for n_vocab (50256 up to 51864 ids, English-only;
 * 50257 from 51865, multilingual), or -1 when n_vocab leaves no room for 1 to 100 languages.
 * asr__tok_special_name: writes the string of special id (eot <= id < n_vocab) into buf (NUL-
 * terminated, cap >= 32) and returns its length, or -1 when id is outside the layout. */
int32_t asr__tok_layout_eot(int n_vocab);
int asr__tok_special_name(int32_t id, int32_t eot, int n_vocab, char *buf, size_t cap);

/* Token strings by id as a front reads them (any order, ids may repeat: the last one wins, holes
 * allowed), then asr__tok_list_build fills the holes and creates the tokenizer. */
typedef struct {
    char *pool; /* the strings, back to back */
    size_t pool_len, pool_cap;
    struct asr__tok_entry {
        size_t off;
        uint32_t len;
        int32_t id;
    } * e;
    int n, cap;
    int32_t max_id; /* -1 when empty */
} asr__tok_list_t;
void asr__tok_list_init(asr__tok_list_t *l);
void asr__tok_list_free(asr__tok_list_t *l);
asr_err_t asr__tok_list_add(asr__tok_list_t *l, const char *s, size_t len, int32_t id);
/* Id of the entry whose string is s (the last such entry), or -1. */
int32_t asr__tok_list_find(const asr__tok_list_t *l, const char *s);
/* asr__tok_begin over ids 0 .. n-1: listed strings (ids >= n: ASR_ERR_MODEL), holes below eot
 * get "<|unused_ID|>" (id 50256 of a multilingual layout: "", what Whisper has there), holes from
 * eot on the layout's special strings. On error *out is NULL (nothing to destroy). */
asr_err_t asr__tok_list_build(const asr__tok_list_t *l, int n, int32_t eot, asr_tokenizer_t **out,
                              char *errbuf, size_t errbuf_len);

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

/* A (string, id) pair: an entry of an object {string: id} (vocab.json, added_tokens.json,
 * tokenizer.json's model.vocab) or an added token {"id": id, "content": string}. Ids are integers
 * in [0, 2^31). */
typedef asr_err_t (*asr__json_entry_cb)(const char *s, size_t len, int64_t id, void *user_data);
/* Calls cb for each member of the top-level object {string: integer}. */
asr_err_t asr__json_str_int_object(const char *buf, size_t len, asr__json_entry_cb cb,
                                   void *user_data, char *errbuf, size_t errbuf_len);
/* A Hugging Face tokenizer.json: vocab_cb for each model.vocab entry, merge_cb for each
 * model.merges pair (rank order), added_cb for each added_tokens entry; model.type must be "BPE"
 * and model.vocab present. Callbacks run in file order (the vocabulary may come after the merges:
 * callers collect, then build). */
asr_err_t asr__json_hf_tokenizer(const char *buf, size_t len, asr__json_entry_cb vocab_cb,
                                 asr__json_merge_cb merge_cb, asr__json_entry_cb added_cb,
                                 void *user_data, char *errbuf, size_t errbuf_len);

#endif
