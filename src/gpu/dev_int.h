/* gpu: what a device kind implements (dev.c dispatches asr_dev_* to it). Nothing outside src/gpu
 * includes this. */
#ifndef ASR_GPU_DEV_INT_H
#define ASR_GPU_DEV_INT_H

#include <stdio.h>

#include "gpu/dev.h"

#ifdef __cplusplus
extern "C" { /* the kernels (kernels*.cu, C++) call asr__dev_fail */
#endif

typedef struct {
    void (*close)(asr_dev_t *d);
    asr_err_t (*bind)(asr_dev_t *d);
    asr_err_t (*mem_info)(asr_dev_t *d, size_t *free_bytes, size_t *total_bytes);
    void *(*malloc)(asr_dev_t *d, size_t bytes);
    void (*free)(asr_dev_t *d, void *p);
    void *(*host_malloc)(asr_dev_t *d, size_t bytes);
    void (*host_free)(asr_dev_t *d, void *p);
    void (*h2d)(asr_dev_t *d, void *dst, const void *src, size_t bytes);
    void (*d2h)(asr_dev_t *d, void *dst, const void *src, size_t bytes);
    void (*d2d)(asr_dev_t *d, void *dst, const void *src, size_t bytes);
    void (*memset0)(asr_dev_t *d, void *dst, size_t bytes);
    void (*sync)(asr_dev_t *d); /* waits; failures go to asr__dev_fail */
    /* Optional (NULL: nothing to do): before a recoverable error is cleared, drains the queue and
     * clears the kind's own error state; returns false when that finds the context lost (it has
     * called asr__dev_fail_lost). */
    bool (*clear)(asr_dev_t *d);
    void (*linear)(asr_dev_t *d, asr_dtype_t at, const void *a, int lda, const asr_dev_w_t *w,
                   const float *bias, asr_dtype_t ct, void *c, int ldc, int m, int n, int k,
                   int flags);
    void (*layer_norm)(asr_dev_t *d, asr_dtype_t t, const void *x, void *out, int rows, int dim,
                       const float *gamma, const float *beta, float eps);
    void (*add)(asr_dev_t *d, asr_dtype_t t, void *x, const void *y, size_t n);
    void (*add_pos)(asr_dev_t *d, asr_dtype_t t, void *x, const float *pos, int B, size_t n);
    void (*convert)(asr_dev_t *d, asr_dtype_t st, const void *src, asr_dtype_t dt, void *dst,
                    size_t n);
    void (*im2col_mel)(asr_dev_t *d, asr_dtype_t t, const float *mel, int B, int n_mels, int T,
                       void *cols);
    void (*im2col_s2)(asr_dev_t *d, asr_dtype_t t, const void *x, int B, int T_in, int C,
                      void *cols);
    void (*embed)(asr_dev_t *d, asr_dtype_t t, const asr_dev_w_t *emb, const float *pos,
                  const int32_t *tokens, const int32_t *positions, int n, int dim, void *x);
    void (*attn_full)(asr_dev_t *d, asr_dtype_t t, const void *qkv, void *out, int B, int T, int H,
                      int dh, float scale);
    void (*kv_append)(asr_dev_t *d, asr_dtype_t t, const void *qkv, int ldqkv,
                      const asr_dev_row_t *rows, int n, int dim, size_t layer_off);
    void (*attn_self)(asr_dev_t *d, asr_dtype_t t, const void *q, int ldq,
                      const asr_dev_row_t *rows, int n, int H, int dh, size_t layer_off,
                      float scale, void *out, int ldo);
    void (*attn_cross)(asr_dev_t *d, asr_dtype_t t, const void *q, int ldq,
                       const asr_dev_row_t *rows, int n, int H, int dh, int n_audio, int ldx,
                       size_t layer_off, float scale, void *out, int ldo);
    void (*attn_cross_scores)(asr_dev_t *d, asr_dtype_t t, const void *q, int ldq,
                              const asr_dev_row_t *rows, int n, int h, int dh, int n_audio, int ldx,
                              size_t layer_off, float scale, float *out);
} asr_dev_ops_t;

struct asr_dev {
    const asr_dev_ops_t *ops;
    asr_dev_info_t info;
    asr_err_t err; /* sticky: the first failure, until asr_dev_error_clear */
    bool lost;     /* the context is lost (asr__dev_fail_lost): only closing is left. Read and
                      written by the thread driving the device. */
    char errmsg[256];
    void *scratch; /* I8 dequantization scratch (asr_dev_set_scratch) */
    size_t scratch_bytes;
    void *impl; /* the kind's own state */
};

/* Records a recoverable failure of an operation (the first one sticks until asr_dev_error_clear).
 * printf-style reason. */
void asr__dev_fail(asr_dev_t *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Records the loss of the context (CUDA's sticky errors): d->lost from then on, the reason
 * replaces a recoverable one. */
void asr__dev_fail_lost(asr_dev_t *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Adds delta bytes to what asr_dev_allocated_bytes reports for (kind, index): arenas (dev.c) and
 * the kind's own device allocations (the cuBLAS workspace). */
void asr__dev_account(asr_dev_kind_t kind, int index, int64_t delta);

/* The kinds: each fills *d (ops, info, impl) or returns an error with a reason. */
asr_err_t asr__dev_host_open(asr_dev_t *d, char *err, size_t err_len);
asr_err_t asr__dev_cuda_open(asr_dev_t *d, int index, char *err, size_t err_len);
/* cudaMemGetInfo of CUDA device index (free and total bytes) for devmem.c. It creates the
 * device's primary context when there is none: callers ask only when this process already holds
 * memory there. Restores the calling thread's current device. ASR_ERR_UNSUPPORTED with a reason
 * when built without CUDA or the call fails. */
asr_err_t asr__dev_cuda_mem_get_info(int index, uint64_t *free_bytes, uint64_t *total_bytes,
                                     char *err, size_t err_len);

#ifdef __cplusplus
}
#endif
#endif
