/* engine: the device memory plan (engine.h, asr_plan_gpu_compute). STUB: issue #20 in progress. */
#include <string.h>

#include "engine/engine_int.h"

asr_err_t asr_plan_gpu_compute(const asr_model_info_t *dims, const char *device,
                               const char *compute_type, int max_batch, int n_seq,
                               asr_plan_gpu_t *out) {
    (void)dims, (void)device, (void)compute_type, (void)max_batch, (void)n_seq;
    memset(out, 0, sizeof *out);
    return ASR_ERR_UNSUPPORTED;
}
