/* gpu: what the kernels*.cu files share (nothing else includes this): element types loaded as and
 * stored from float32 (stores round to nearest even), the per-type dispatch of a launcher, launch
 * sizes, and the launch check that records a failure on the device (asr__dev_fail, sticky).
 *
 * Every kernel computes in float32: an activation of type T is read with ld_f(), converted, and
 * written back with st_f(). Launchers switch on asr_dtype_t once (ASR_CU_DISPATCH) and instantiate
 * their kernel template per type; an unknown type is a recorded failure, never a silent no-op. */
#ifndef ASR_GPU_KERNELS_INT_CUH
#define ASR_GPU_KERNELS_INT_CUH

#include <cuda_runtime.h>
#include <cuda_fp16.h>
#include <cuda_bf16.h>
#include <stdint.h>

#include "gpu/kernels.h"

typedef __nv_bfloat16 bf16_t;

/* ---- element access as float32 ---- */
__device__ __forceinline__ float ld_f(const float *p) { return *p; }
__device__ __forceinline__ float ld_f(const __half *p) { return __half2float(*p); }
__device__ __forceinline__ float ld_f(const bf16_t *p) { return __bfloat162float(*p); }

__device__ __forceinline__ void st_f(float *p, float v) { *p = v; }
__device__ __forceinline__ void st_f(__half *p, float v) { *p = __float2half_rn(v); }
__device__ __forceinline__ void st_f(bf16_t *p, float v) { *p = __float2bfloat16_rn(v); }

/* Conversions in registers (for vectorised paths). */
template <typename T> __device__ __forceinline__ T from_f(float v);
template <> __device__ __forceinline__ float from_f<float>(float v) { return v; }
template <> __device__ __forceinline__ __half from_f<__half>(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ bf16_t from_f<bf16_t>(float v) {
    return __float2bfloat16_rn(v);
}
__device__ __forceinline__ float to_f(float v) { return v; }
__device__ __forceinline__ float to_f(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_f(bf16_t v) { return __bfloat162float(v); }

/* 16 bytes of T as float32: VecN<T>::n elements (4 of float, 8 of a 16-bit type). p must be
 * 16-byte aligned. */
template <typename T> struct Vec16 { static constexpr int n = 16 / (int)sizeof(T); };
template <typename T> __device__ __forceinline__ void ld16_f(const T *p, float *out) {
    uint4 u = *reinterpret_cast<const uint4 *>(p);
    const T *e = reinterpret_cast<const T *>(&u);
#pragma unroll
    for (int i = 0; i < Vec16<T>::n; i++)
        out[i] = to_f(e[i]);
}
template <typename T> __device__ __forceinline__ void st16_f(T *p, const float *in) {
    uint4 u;
    T *e = reinterpret_cast<T *>(&u);
#pragma unroll
    for (int i = 0; i < Vec16<T>::n; i++)
        e[i] = from_f<T>(in[i]);
    *reinterpret_cast<uint4 *>(p) = u;
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* ---- launch helpers (host) ---- */
static inline cudaStream_t cu_stream(asr_dev_t *d) { return (cudaStream_t)asr__cu_stream(d); }

/* Records a launch failure (bad configuration, no kernel image for this GPU) on d. */
static inline void cu_check(asr_dev_t *d, const char *what) {
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess)
        asr__dev_fail(d, "%s: %s", what, cudaGetErrorString(e));
}

/* Blocks for n items of `per` each, capped (kernels loop grid-stride over the rest). */
static inline unsigned cu_blocks(size_t n, unsigned per, unsigned cap) {
    size_t b = (n + per - 1) / per;
    if (b < 1)
        b = 1;
    return b > cap ? cap : (unsigned)b;
}

/* Runs the statements (...) with T the element type of activations of type `t`; another type fails
 * d. */
#define ASR_CU_DISPATCH(d, t, what, T, ...)                                                        \
    do {                                                                                           \
        switch (t) {                                                                               \
        case ASR_DT_F32: {                                                                         \
            typedef float T;                                                                       \
            __VA_ARGS__;                                                                           \
            break;                                                                                 \
        }                                                                                          \
        case ASR_DT_F16: {                                                                         \
            typedef __half T;                                                                      \
            __VA_ARGS__;                                                                           \
            break;                                                                                 \
        }                                                                                          \
        case ASR_DT_BF16: {                                                                        \
            typedef bf16_t T;                                                                      \
            __VA_ARGS__;                                                                           \
            break;                                                                                 \
        }                                                                                          \
        default:                                                                                   \
            asr__dev_fail(d, "%s: unsupported type %s", what, asr_dtype_name(t));                  \
            return;                                                                                \
        }                                                                                          \
    } while (0)

#endif
