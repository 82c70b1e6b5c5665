/* engine: front for Hugging Face transformers Whisper checkpoints: model.safetensors (or shards
 * listed by model.safetensors.index.json) with config.json beside them. Tensors (float32,
 * float16, bfloat16) are read in place; HF names map to CTranslate2's (wfile.h), q/k/v fused in
 * memory the table owns.
 *
 * A safetensors file is a little-endian u64 header length N, N bytes of a JSON object
 * {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}}, then the
 * tensors' bytes, offsets relative to the end of the header. */
#ifndef ASR_ENGINE_SAFETENSORS_H
#define ASR_ENGINE_SAFETENSORS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "asr/common.h"
#include "engine/wfile.h"

/* Parses one safetensors image `data` (borrowed; must outlive f) into f: its float32, float16
 * and bfloat16 tensors under their own (HF) names, appended to what f holds. Tensors of other
 * valid dtypes (I64, U8, F64, ...) are checked and left out. Every offset, size and the JSON
 * itself are validated. ASR_ERR_MODEL (a one-line reason), ASR_ERR_NOMEM. */
asr_err_t asr_safetensors_parse(const uint8_t *data, size_t len, asr_wfile_t *f, char *errbuf,
                                size_t errbuf_len);
/* Opens `path` (a .safetensors file or a model.safetensors.index.json naming its shards) with the
 * config.json of its directory (encoder_attention_heads, decoder_attention_heads), into f (zeroed)
 * as a Whisper table under CTranslate2 names. Accepts WhisperForConditionalGeneration names
 * ("model.encoder...") and WhisperModel's (no prefix); proj_out.weight must equal the token
 * embedding when present. On failure the caller frees f. ASR_ERR_MODEL (a one-line reason naming
 * the file), ASR_ERR_NOMEM. */
asr_err_t asr_safetensors_open(const char *path, asr_wfile_t *f, char *errbuf, size_t errbuf_len);

/* As asr_safetensors_open on one image in memory (borrowed; must outlive f), the heads given
 * (the fuzz target and tests: no files). */
asr_err_t asr__safetensors_whisper(const uint8_t *data, size_t len, int enc_heads, int dec_heads,
                                   asr_wfile_t *f, char *errbuf, size_t errbuf_len);

/* ---- the name mapping, shared by the reader and the writer (safetensors_write.c) ---- */

typedef enum {
    ASR_ST_LINEAR, /* .weight -> /weight, .bias -> /bias (conv layers too) */
    ASR_ST_NORM,   /* .weight -> /gamma, .bias -> /beta */
    ASR_ST_TENSOR  /* the name as it is -> the name as it is */
} asr_st_kind_t;

typedef struct {
    const char *hf;  /* under "encoder." / "decoder." (layer == false) or under their
                        "layers.N." (layer == true) */
    const char *ct2; /* under "encoder/" / "decoder/" or their "layer_N/" */
    asr_st_kind_t kind;
    bool layer;
    char stacks;       /* 'e': encoder only, 'd': decoder only, 'b': both */
    int part, n_parts; /* n_parts > 0: rows [part*d, (part+1)*d) of a fused CT2 matrix of
                          n_parts*d rows; 0: the whole tensor */
    bool no_bias;      /* HF has no bias (k_proj); the fused CT2 bias holds zeros there */
} asr_st_piece_t;

/* Every piece of a Whisper model, fused parts consecutive and in row order. */
extern const asr_st_piece_t asr__safetensors_pieces[];
extern const int asr__safetensors_n_pieces;

/* Called with a piece and the name prefixes of its scope: hfp "encoder." or
 * "encoder.layers.3." (after hf_pre), ctp "encoder/" or "encoder/layer_3/". Nonzero stops. */
typedef int (*asr_st_piece_fn)(void *ctx, const asr_st_piece_t *p, const char *hfp,
                               const char *ctp);
/* Calls fn on every piece of one scope, in table order: stack 0 (encoder) or 1 (decoder), its own
 * tensors (layer < 0) or those of its layer `layer`. Returns fn's first nonzero result, or 0. */
int asr__safetensors_each_piece(int stack, int layer, const char *hf_pre, asr_st_piece_fn fn,
                                void *ctx);

#endif
