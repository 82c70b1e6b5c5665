/* gpu: device memory readings (devmem.h). STUB: issue #20 in progress. */
#include <stdio.h>
#include <string.h>

#include "gpu/devmem.h"

asr_err_t asr_devmem_read(asr_dev_kind_t kind, int index, asr_devmem_t *out) {
    memset(out, 0, sizeof *out);
    out->kind = kind;
    out->index = index;
    snprintf(out->why, sizeof out->why, "not implemented");
    return ASR_ERR_UNSUPPORTED;
}
asr_err_t asr_devmem_parse_spec(const char *spec, asr_devmem_spec_t *out, char *err,
                                size_t err_len) {
    (void)spec;
    memset(out, 0, sizeof *out);
    if (err && err_len)
        snprintf(err, err_len, "not implemented");
    return ASR_ERR_INVALID;
}
asr_err_t asr_devmem_inject(const char *spec, char *err, size_t err_len) {
    asr_devmem_spec_t s;
    return asr_devmem_parse_spec(spec, &s, err, err_len);
}
bool asr_devmem_injected(void) { return false; }
