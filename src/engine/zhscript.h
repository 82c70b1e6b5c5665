/* engine: Simplified <-> Traditional Chinese conversion of output text, through OpenCC's C API
 * (configs t2s.json and s2t.json). Without OpenCC at build time every open fails with
 * ASR_ERR_UNSUPPORTED.
 *
 * Thread-safety: one converter serves one thread at a time (a stream owns its converters);
 * distinct converters may be used concurrently. */
#ifndef ASR_ENGINE_ZHSCRIPT_H
#define ASR_ENGINE_ZHSCRIPT_H

#include "asr/engine.h"
#include "core/core.h"

typedef struct asr_zhscript asr_zhscript_t;

/* True when asrd was built with OpenCC. */
bool asr__zhscript_available(void);
/* Opens a converter to `to` (SIMPLIFIED or TRADITIONAL). *out is owned by the caller
 * (asr__zhscript_close). On failure writes a one-line reason to err (if non-NULL) and returns
 * ASR_ERR_INVALID (AUTO), ASR_ERR_UNSUPPORTED (no OpenCC) or ASR_ERR_NOT_FOUND (its data files). */
asr_err_t asr__zhscript_open(asr_zh_script_t to, asr_zhscript_t **out, char *err, size_t err_len);
void asr__zhscript_close(asr_zhscript_t *z);
/* Number of converters open in the process (opened and not yet closed). Thread-safe. */
int asr__zhscript_n_open(void);
/* Appends text[0..len) converted to `out`. Text OpenCC rejects (invalid UTF-8 inside a model's
 * partial byte tokens) is appended unchanged and ASR_ERR_INVALID returned. `text` is borrowed. */
asr_err_t asr__zhscript_convert(asr_zhscript_t *z, const char *text, size_t len, asr_buf_t *out);

#endif
