/* engine: front for whisper.cpp ggml model files (ggml-*.bin): hyperparameters, mel filters,
 * vocabulary and tensors (f32, f16, bf16 and the quantized q4_0, q4_1, q5_0, q5_1, q8_0).
 * The tensors enter the table under CTranslate2's names (wfile.h): q/k/v fused, quantized
 * matrices dequantized to float16 in memory the table owns (f->note says so). */
#ifndef ASR_ENGINE_GGML_H
#define ASR_ENGINE_GGML_H

#include <stddef.h>
#include <stdint.h>
#include "asr/common.h"
#include "engine/wfile.h"

/* Parses a ggml file image `data` (borrowed; must outlive f) into f (zeroed, or holding only
 * maps). On failure the caller frees f. ASR_ERR_MODEL (a one-line reason: truncated, bad magic,
 * unknown tensor type, inconsistent shapes), ASR_ERR_NOMEM. */
asr_err_t asr_ggml_parse(const uint8_t *data, size_t len, asr_wfile_t *f, char *errbuf,
                         size_t errbuf_len);
/* Maps `path` into f and parses it. */
asr_err_t asr_ggml_open(const char *path, asr_wfile_t *f, char *errbuf, size_t errbuf_len);

#endif
