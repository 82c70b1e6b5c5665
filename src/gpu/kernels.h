/* gpu: the CUDA kernels' launchers (kernels*.cu), called by cuda_dev.c's operation table. Each
 * queues its kernel on the device's stream (asr__cu_stream) and records a launch failure with
 * asr__dev_fail. Signatures are dev.h's operations'. Built only with ASR_CUDA. */
#ifndef ASR_GPU_KERNELS_H
#define ASR_GPU_KERNELS_H

#include "gpu/dev_int.h"

#ifdef __cplusplus
extern "C" {
#endif

/* cuda_dev.c: the device's stream (a cudaStream_t) */
void *asr__cu_stream(asr_dev_t *d);

void asr__cu_layer_norm(asr_dev_t *d, asr_dtype_t t, const void *x, void *out, int rows, int dim,
                        const float *gamma, const float *beta, float eps);
void asr__cu_add(asr_dev_t *d, asr_dtype_t t, void *x, const void *y, size_t n);
void asr__cu_add_pos(asr_dev_t *d, asr_dtype_t t, void *x, const float *pos, int B, size_t n);
void asr__cu_convert(asr_dev_t *d, asr_dtype_t st, const void *src, asr_dtype_t dt, void *dst,
                     size_t n);
void asr__cu_im2col_mel(asr_dev_t *d, asr_dtype_t t, const float *mel, int B, int n_mels, int T,
                        void *cols);
void asr__cu_im2col_s2(asr_dev_t *d, asr_dtype_t t, const void *x, int B, int T_in, int C,
                       void *cols);
void asr__cu_embed(asr_dev_t *d, asr_dtype_t t, const asr_dev_w_t *emb, const float *pos,
                   const int32_t *tokens, const int32_t *positions, int n, int dim, void *x);
void asr__cu_attn_full(asr_dev_t *d, asr_dtype_t t, const void *qkv, void *out, int B, int T, int H,
                       int dh, float scale);
void asr__cu_kv_append(asr_dev_t *d, asr_dtype_t t, const void *qkv, int ldqkv,
                       const asr_dev_row_t *rows, int n, int dim, size_t layer_off);
void asr__cu_attn_self(asr_dev_t *d, asr_dtype_t t, const void *q, int ldq,
                       const asr_dev_row_t *rows, int n, int H, int dh, size_t layer_off,
                       float scale, void *out, int ldo);
void asr__cu_attn_cross(asr_dev_t *d, asr_dtype_t t, const void *q, int ldq,
                        const asr_dev_row_t *rows, int n, int H, int dh, int n_audio, int ldx,
                        size_t layer_off, float scale, void *out, int ldo);
void asr__cu_attn_cross_scores(asr_dev_t *d, asr_dtype_t t, const void *q, int ldq,
                               const asr_dev_row_t *rows, int n, int h, int dh, int n_audio,
                               int ldx, size_t layer_off, float scale, float *out);
/* The GEMM's epilogue: c[i][j] = act(c[i][j] + bias[j]) over m rows of n (ldc), c of type ct;
 * gelu: exact erf GELU. */
void asr__cu_bias_act(asr_dev_t *d, asr_dtype_t ct, void *c, int ldc, int m, int n,
                      const float *bias, bool gelu);
/* int8 weights with row scales to float16: out[j][t] = scale[j] * q[j*ld + t], [n][k] dense. */
void asr__cu_dequant_i8(asr_dev_t *d, const int8_t *q, const float *scale, int n, int k, int ld,
                        uint16_t *out);

#ifdef __cplusplus
}
#endif
#endif
