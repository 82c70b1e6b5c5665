/* gpu: the CUDA entry points of a build without the CUDA backend (ASR_CUDA=off, or no nvcc). */
#include "core/core.h"
#include "gpu/dev_int.h"

#ifndef ASR_HAVE_CUDA
bool asr_gpu_cuda_built(void) { return false; }

int asr_gpu_cuda_count(char *why, size_t why_len) {
    asr_errf(why, why_len, "asrd was built without CUDA (ASR_CUDA=off or no nvcc)");
    return 0;
}

asr_err_t asr_gpu_cuda_info(int index, asr_dev_info_t *out, char *err, size_t err_len) {
    (void)index;
    (void)out;
    asr_gpu_cuda_count(err, err_len);
    return ASR_ERR_UNSUPPORTED;
}

asr_err_t asr__dev_cuda_open(asr_dev_t *d, int index, char *err, size_t err_len) {
    (void)d;
    return asr_gpu_cuda_info(index, NULL, err, err_len);
}

asr_err_t asr__dev_cuda_mem_get_info(int index, uint64_t *free_bytes, uint64_t *total_bytes,
                                     char *err, size_t err_len) {
    (void)index;
    *free_bytes = *total_bytes = 0;
    asr_gpu_cuda_count(err, err_len);
    return ASR_ERR_UNSUPPORTED;
}
#else
typedef int asr_cuda_none_unused; /* the CUDA backend is built: cuda_dev.c has these */
#endif
