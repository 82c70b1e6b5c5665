/* engine: front for whisper.cpp ggml model files (ggml-*.bin): hyperparameters, mel filters,
 * vocabulary and tensors (f32, f16, bf16 and the quantized q4_0, q4_1, q5_0, q5_1, q8_0).
 * The tensors enter the table under CTranslate2's names (wfile.h): q/k/v fused, quantized
 * matrices dequantized to float16 in memory the table owns (f->note says so). */
#ifndef ASR_ENGINE_GGML_H
#define ASR_ENGINE_GGML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "asr/common.h"
#include "engine/wfile.h"

/* One table variable of a residual block and the ggml tensors it is made of, in openai's
 * state_dict order (the order whisper.cpp's converter writes): the reader fuses the parts, the
 * writer splits them again. */
typedef struct {
    const char *ct2;     /* under "<stack>/layer_N/", e.g. "self_attention/linear_0" */
    const char *ggml[3]; /* under "<stack>.blocks.N.", e.g. "attn.query" */
    int n;               /* parts, fused in order along the output rows */
    unsigned no_bias;    /* bit i: part i has no bias (zeros in the fused bias) */
    int in_mul, out_mul; /* each part's weight is [out_mul * d][in_mul * d]; 0: a layer norm */
    bool cross;          /* the decoder's cross-attention only */
} asr_ggml_part_t;

extern const asr_ggml_part_t asr_ggml_block_parts[];
extern const int asr_ggml_n_block_parts;

/* Parses a ggml file image `data` (borrowed; must outlive f) into f (zeroed, or holding only
 * maps). On failure the caller frees f. ASR_ERR_MODEL (a one-line reason: truncated, bad magic,
 * unknown tensor type, inconsistent shapes), ASR_ERR_NOMEM. */
asr_err_t asr_ggml_parse(const uint8_t *data, size_t len, asr_wfile_t *f, char *errbuf,
                         size_t errbuf_len);
/* Maps `path` into f and parses it. */
asr_err_t asr_ggml_open(const char *path, asr_wfile_t *f, char *errbuf, size_t errbuf_len);

#endif
