/* gpu: device specs (placeholder until it lands). */
#include <string.h>

#include "gpu/dev_int.h"

asr_err_t asr_devspec_parse(const char *s, asr_devspec_t *out) {
    out->kind = ASR_DEVSPEC_CPU;
    out->index = 0;
    return (!s || !*s || !strcmp(s, "cpu")) ? ASR_OK : ASR_ERR_INVALID;
}
asr_err_t asr_devspec_resolve(const asr_devspec_t *in, asr_devspec_t *out, char *why,
                              size_t why_len) {
    *out = *in;
    if (why && why_len)
        snprintf(why, why_len, "cpu");
    return ASR_OK;
}
void asr_devspec_format(const asr_devspec_t *s, char *buf, size_t len) {
    (void)s;
    snprintf(buf, len, "cpu");
}
