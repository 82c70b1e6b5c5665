/* engine: front for Hugging Face transformers Whisper checkpoints: model.safetensors (or shards
 * listed by model.safetensors.index.json) with config.json beside them. Tensors (float32,
 * float16, bfloat16) are read in place; HF names map to CTranslate2's (wfile.h), q/k/v fused in
 * memory the table owns. */
#ifndef ASR_ENGINE_SAFETENSORS_H
#define ASR_ENGINE_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>
#include "asr/common.h"
#include "engine/wfile.h"

/* Parses one safetensors image `data` (borrowed) into f: its tensors under their own (HF) names,
 * appended to what f holds. ASR_ERR_MODEL (a one-line reason), ASR_ERR_NOMEM. */
asr_err_t asr_safetensors_parse(const uint8_t *data, size_t len, asr_wfile_t *f, char *errbuf,
                                size_t errbuf_len);
/* Opens `path` (a .safetensors file or a model.safetensors.index.json) with the config.json of
 * its directory, into f as a Whisper table under CTranslate2 names. */
asr_err_t asr_safetensors_open(const char *path, asr_wfile_t *f, char *errbuf, size_t errbuf_len);

#endif
