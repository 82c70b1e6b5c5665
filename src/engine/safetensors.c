/* engine: safetensors front (safetensors.h). Placeholder until the front lands. */
#include "engine/safetensors.h"
#include "core/core.h"

asr_err_t asr_safetensors_parse(const uint8_t *data, size_t len, asr_wfile_t *f, char *errbuf,
                                size_t errbuf_len) {
    (void)data, (void)len, (void)f;
    asr_errf(errbuf, errbuf_len, "safetensors files are not supported yet");
    return ASR_ERR_MODEL;
}

asr_err_t asr_safetensors_open(const char *path, asr_wfile_t *f, char *errbuf, size_t errbuf_len) {
    (void)path, (void)f;
    asr_errf(errbuf, errbuf_len, "safetensors files are not supported yet");
    return ASR_ERR_MODEL;
}
