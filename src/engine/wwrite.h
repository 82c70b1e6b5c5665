/* engine: writing a model's tensor table (wfile.h) in one of the formats asrd reads, for
 * `asrd convert` and `asrd debug random-model`. One writer per format, each in its format's
 * file (ct2_write.c, ggml_write.c, safetensors_write.c); all take the same source description.
 *
 * Writers write into the path they are given (the caller makes it a temporary name and renames
 * it into place, so a reader never sees half a model) and fsync what they wrote. */
#ifndef ASR_ENGINE_WWRITE_H
#define ASR_ENGINE_WWRITE_H

#include <stdbool.h>
#include "asr/common.h"
#include "asr/engine.h"
#include "engine/tokenizer.h"
#include "engine/wfile.h"

typedef enum {
    ASR_WW_FLOAT16 = 0, /* matrices and embeddings float16, norms/biases/positions float32 */
    ASR_WW_FLOAT32,     /* everything float32 */
    ASR_WW_INT8         /* matrices int8 (ct2: per-row float32 scales; ggml: q8_0); safetensors
                           has no int8 layout: its writer refuses */
} asr_ww_type_t;

typedef struct {
    const asr_wfile_t *f;       /* the tensors, CTranslate2 names, any dtypes (decode with
                                   asr_wfile_decode_f32) */
    asr_model_info_t info;      /* dimensions (asr__model_dims of f) */
    const asr_tokenizer_t *tok; /* vocabulary, merges and special tokens */
    int alignment_heads[64][2]; /* [layer, head] pairs; n_alignment_heads of them (0: none) */
    int n_alignment_heads;
    asr_ww_type_t type;
} asr_wwrite_src_t;

/* `dir` (an existing empty directory): model.bin (version 6, WhisperSpec), config.json
 * (alignment_heads, lang_ids, suppress_ids, ...), vocabulary.json, tokenizer.json,
 * preprocessor_config.json (feature_size = n_mels). */
asr_err_t asr_ct2_write(const asr_wwrite_src_t *s, const char *dir, char *errbuf,
                        size_t errbuf_len);
/* `path`: one whisper.cpp ggml file (hparams, mel filters, vocabulary, tensors; ftype 1 for
 * float16, q8_0 matrices for int8, 0 for float32). */
asr_err_t asr_ggml_write(const asr_wwrite_src_t *s, const char *path, char *errbuf,
                         size_t errbuf_len);
/* `dir` (an existing empty directory): model.safetensors (HF tensor names, q/k/v split, float16
 * or float32), config.json (WhisperConfig), generation_config.json (alignment_heads, ...),
 * tokenizer.json, vocab.json, merges.txt, added_tokens.json, preprocessor_config.json.
 * ASR_WW_INT8: ASR_ERR_INVALID with a reason. */
asr_err_t asr_safetensors_write(const asr_wwrite_src_t *s, const char *dir, char *errbuf,
                                size_t errbuf_len);

/* ---- shared by the writers (wwrite.c) ---- */

typedef struct json_t json_t; /* jansson's */
typedef asr_err_t (*asr_wwrite_tok_fn)(const asr_tokenizer_t *t, asr_buf_t *out, char *errbuf,
                                       size_t errbuf_len);
/* Writes len bytes to dir/name and fsyncs them. ASR_ERR_IO (a reason naming the path). */
asr_err_t asr__wwrite_file(const char *dir, const char *name, const void *data, size_t len,
                           char *errbuf, size_t errbuf_len);
/* dir/name: `doc` (ownership taken; NULL counts as out of memory) indented by 2, newline-ended,
 * as asr__wwrite_file. ASR_ERR_NOMEM, ASR_ERR_IO. */
asr_err_t asr__wwrite_json(const char *dir, const char *name, json_t *doc, char *errbuf,
                           size_t errbuf_len);
/* A JSON array of n ints (owned by caller); NULL when out of memory. */
json_t *asr__wwrite_int_array(const int32_t *v, int n);
/* preprocessor_config.json: Hugging Face's WhisperFeatureExtractor, feature_size = n_mels. */
asr_err_t asr__wwrite_preprocessor(const asr_wwrite_src_t *s, const char *dir, char *errbuf,
                                   size_t errbuf_len);
/* dir/name: what fn (an asr_tokenizer_write_*) writes of s->tok. */
asr_err_t asr__wwrite_tokenizer_file(const asr_wwrite_src_t *s, const char *dir, const char *name,
                                     asr_wwrite_tok_fn fn, char *errbuf, size_t errbuf_len);
/* fsyncs the directory itself (its new names), best effort. */
void asr__wwrite_sync_dir(const char *dir);

#endif
