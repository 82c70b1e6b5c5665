/* gpu: the host reference device (placeholder until its operations land). */
#include "gpu/dev_int.h"

asr_err_t asr__dev_host_open(asr_dev_t *d, char *err, size_t err_len) {
    (void)d;
    if (err && err_len)
        snprintf(err, err_len, "host device: not implemented yet");
    return ASR_ERR_UNSUPPORTED;
}
