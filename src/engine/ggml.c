/* engine: whisper.cpp ggml front (ggml.h). Placeholder until the front lands. */
#include "engine/ggml.h"
#include "core/core.h"

asr_err_t asr_ggml_parse(const uint8_t *data, size_t len, asr_wfile_t *f, char *errbuf,
                         size_t errbuf_len) {
    (void)data, (void)len, (void)f;
    asr_errf(errbuf, errbuf_len, "ggml files are not supported yet");
    return ASR_ERR_MODEL;
}

asr_err_t asr_ggml_open(const char *path, asr_wfile_t *f, char *errbuf, size_t errbuf_len) {
    const uint8_t *data;
    size_t len;
    asr_err_t rc = asr_wfile_map(f, path, &data, &len, errbuf, errbuf_len);
    return rc == ASR_OK ? asr_ggml_parse(data, len, f, errbuf, errbuf_len) : rc;
}
