/* gpu: cuBLAS opened at run time (cublas_load.c), so the binary neither links nor needs
 * libcublas where no GPU is used. cublas_v2.h supplies the types only. Built with ASR_CUDA. */
#ifndef ASR_GPU_CUBLAS_LOAD_H
#define ASR_GPU_CUBLAS_LOAD_H

#include <stddef.h>

#include <cublas_v2.h>

/* The entry points asrd uses (NULL members are optional ones the library lacks). */
typedef struct {
    cublasStatus_t (*create)(cublasHandle_t *handle);
    cublasStatus_t (*destroy)(cublasHandle_t handle);
    cublasStatus_t (*set_stream)(cublasHandle_t handle, cudaStream_t stream);
    cublasStatus_t (*set_math_mode)(cublasHandle_t handle, cublasMath_t mode);
    cublasStatus_t (*set_workspace)(cublasHandle_t handle, void *ws, size_t ws_bytes);
    cublasStatus_t (*gemm_ex)(cublasHandle_t handle, cublasOperation_t ta, cublasOperation_t tb,
                              int m, int n, int k, const void *alpha, const void *a,
                              cudaDataType at, int lda, const void *b, cudaDataType bt, int ldb,
                              const void *beta, void *c, cudaDataType ct, int ldc,
                              cublasComputeType_t compute, cublasGemmAlgo_t algo);
    const char *(*status_string)(cublasStatus_t s); /* optional */
    int version;    /* cublasGetProperty: 13 * 10000 + minor * 100 + patch, 0 when unknown */
    char path[160]; /* the file opened ("libcublas.so.13") */
} asr_cublas_t;

/* Opens cuBLAS once ($ASRD_CUBLAS, libcublas.so.13, then .so.12, then libcublas.so): its entry
 * points, or NULL with a one-line reason in why. Thread-safe; never closed. */
const asr_cublas_t *asr__cublas_get(char *why, size_t why_len);
/* A cuBLAS status as text ("CUBLAS_STATUS_NOT_SUPPORTED"). */
const char *asr__cublas_status(cublasStatus_t s);

#endif
