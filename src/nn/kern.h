/* nn: the per-instruction-set kernels behind nn.h's dispatching entry points (internal). */
#ifndef ASR_NN_KERN_H
#define ASR_NN_KERN_H

#include "nn/isa.h"
#include "nn/nn.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define ASR_NN_HAVE_AVX2_KERNELS 1
void asr__k_linear_rows_avx2(const float *a, int lda, const asr_qact_t *qa, const asr_wmat_t *w,
                             const float *bias, float *c, int ldc, int m, int j0, int j1, int k);
void asr__k_gemm_nn_small_f32_avx2(const float *p, int ldp, const void *v, int ldv, float *c,
                                   int ldc, int m, int n, int ctx);
void asr__k_gemm_nn_small_f16_avx2(const float *p, int ldp, const void *v, int ldv, float *c,
                                   int ldc, int m, int n, int ctx);
void asr__k_f2h_n_avx2(const float *src, uint16_t *dst, size_t n);
void asr__k_h2f_n_avx2(const uint16_t *src, float *dst, size_t n);
void asr__k_softmax_row_avx2(float *x, int n, float scale);
float asr__k_logsumexp_avx2(const float *x, int n);
float asr__k_quantize_row_avx2(const float *x, int k, int8_t *q, uint8_t *qabs);
void asr__k_add_avx2(float *x, const float *y, size_t n);
/* kern_avx512.c (AVX-512 F/BW/VL/DQ; _bf16dp also AVX512-BF16, _i8_avx512vnni AVX512-VNNI) */
void asr__k_linear_rows_avx512(const float *a, int lda, const asr_qact_t *qa, const asr_wmat_t *w,
                               const float *bias, float *c, int ldc, int m, int j0, int j1, int k);
void asr__k_linear_rows_bf16dp_avx512(const float *a, int lda, const asr_qact_t *qa,
                                      const asr_wmat_t *w, const float *bias, float *c, int ldc,
                                      int m, int j0, int j1, int k);
void asr__k_linear_rows_i8_avx512vnni(const asr_qact_t *qa, const asr_wmat_t *w, const float *bias,
                                      float *c, int ldc, int m, int j0, int j1, int k);
/* AVX2 + AVX-VNNI (VEX): int8 as _i8_avx512vnni on ymm */
void asr__k_linear_rows_i8_avxvnni(const asr_qact_t *qa, const asr_wmat_t *w, const float *bias,
                                   float *c, int ldc, int m, int j0, int j1, int k);
void asr__k_f2h_n_avx512(const float *src, uint16_t *dst, size_t n);
void asr__k_h2f_n_avx512(const uint16_t *src, float *dst, size_t n);
void asr__k_softmax_row_avx512(float *x, int n, float scale);
float asr__k_logsumexp_avx512(const float *x, int n);
float asr__k_quantize_row_avx512(const float *x, int k, int8_t *q, uint8_t *qabs);
void asr__k_add_avx512(float *x, const float *y, size_t n);
#endif
int asr__nn_use_avx2(void);
/* The AVX-512 kernels in use (asr_isa()'s level is AVX512 or above, and the CPU has AVX-512
 * F/BW/VL/DQ): 0, or ASR_NN_AVX512 | ASR_NN_AVX512_VNNI (int8) | ASR_NN_AVX512_BF16 */
enum { ASR_NN_AVX512 = 1, ASR_NN_AVX512_VNNI = 2, ASR_NN_AVX512_BF16 = 4 };
int asr__nn_use_avx512(void);
/* avx2(args) when the CPU runs the AVX2 kernels, else other(args) */
#ifdef ASR_NN_HAVE_AVX2_KERNELS
#define ASR_NN_PICK(avx2, other, ...) (asr__nn_use_avx2() ? avx2(__VA_ARGS__) : other(__VA_ARGS__))
#else
#define ASR_NN_PICK(avx2, other, ...) other(__VA_ARGS__)
#endif
/* avx512(args) when the AVX-512 kernels are in use, else as ASR_NN_PICK */
#ifdef ASR_NN_HAVE_AVX2_KERNELS
#define ASR_NN_PICK3(avx512, avx2, other, ...)                                                     \
    (asr__nn_use_avx512() ? avx512(__VA_ARGS__) : ASR_NN_PICK(avx2, other, __VA_ARGS__))
#else
#define ASR_NN_PICK3(avx512, avx2, other, ...) other(__VA_ARGS__)
#endif
/* q[t] = round(x[t]·inv) clamped to ±127 for t in [t0, k) (|q| into qabs if non-NULL) */
void asr__nn_quantize_span(const float *x, int t0, int k, float inv, int8_t *q, uint8_t *qabs);
/* one row to q[t] = round(x[t]·qmax/max|x|) without SIMD; returns the scale max|x|/qmax (1 for a
 * zero row) */
float asr__nn_quantize_row_max(const float *x, int k, int qmax, int8_t *q, uint8_t *qabs);
/* int8 rows without SIMD (the portable path and the reference share it) */
void asr__k_linear_rows_i8(const asr_qact_t *qa, const asr_wmat_t *w, const float *bias, float *c,
                           int ldc, int m, int j0, int j1, int k);

#endif
