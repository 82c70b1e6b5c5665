/* gpu: how the CUDA backend was built and what it opened at run time, for `asrd version` and
 * logs. Always compiled (gpu_build.c); without the CUDA backend the answers say so. */
#ifndef ASR_GPU_GPU_BUILD_H
#define ASR_GPU_GPU_BUILD_H

#include <stddef.h>

/* The oldest compute capability (major) the kernels are built for: sm_80 (they use bfloat16).
 * Devices below it are never picked (devspec.c) nor opened (cuda_dev.c). */
#define ASR_CUDA_MIN_CC_MAJOR 8

#ifdef __cplusplus
extern "C" {
#endif

/* The architectures the kernels are compiled for: "sm_80 sm_89 sm_90 + PTX compute_90" (from
 * CMAKE_CUDA_ARCHITECTURES), "" when the CUDA backend is not built. Static string. */
const char *asr_gpu_cuda_archs(void);
/* The cuBLAS library opened ("libcublas.so.13 13.0.2") or why none is ("cuBLAS not found
 * (...)"); opens it if not yet done. "not built" without the CUDA backend. */
void asr_gpu_cuda_libs(char *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif
