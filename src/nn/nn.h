/* nn: tensor kernels for the engine (float32): GEMM through CBLAS (OpenBLAS), layer norm, GELU,
 * softmax, fp16/bf16 conversion, and a small thread pool for the non-GEMM kernels.
 * All kernels are pure functions of their inputs; none allocate. */
#ifndef ASR_NN_H
#define ASR_NN_H

#include <stddef.h>
#include <stdint.h>
#include "asr/common.h"

/* ---- thread pool ----
 * A fixed set of worker threads; asr_pool_run runs fn(ctx, i, n_tasks) for i in [0, n_tasks) and
 * returns when all are done. One caller at a time per pool. */
typedef struct asr_pool asr_pool_t;
typedef void (*asr_pool_fn)(void *ctx, int task, int n_tasks);
asr_pool_t *asr_pool_create(int n_threads);
void asr_pool_destroy(asr_pool_t *pool);
int asr_pool_n_threads(const asr_pool_t *pool);
void asr_pool_run(asr_pool_t *pool, int n_tasks, asr_pool_fn fn, void *ctx);

/* Sets the thread count of the GEMM library for the calling context. */
void asr_nn_set_gemm_threads(int n);

/* ---- GEMM ----
 * C[m][n] = A[m][k] · B[n][k]ᵀ (+ bias[n] if non-NULL), row-major with leading dimensions. This is
 * the "linear layer" shape: B is a weight stored [out][in]. */
void asr_nn_linear(const float *a, int lda, const float *w, int ldw, const float *bias, float *c,
                   int ldc, int m, int n, int k);
/* C[m][n] = alpha · A[m][k] · B[n][k]ᵀ */
void asr_nn_gemm_nt(const float *a, int lda, const float *b, int ldb, float *c, int ldc, int m,
                    int n, int k, float alpha);
/* C[m][n] = A[m][k] · B[k][n] */
void asr_nn_gemm_nn(const float *a, int lda, const float *b, int ldb, float *c, int ldc, int m,
                    int n, int k);

/* The decoder's small GEMMs (m <= ASR_NN_SMALL_M rows): own kernels that read each weight row
 * once for all rows (BLAS would pack the whole weight matrix on every call), split over the pool
 * by output columns when pool != NULL. asr_nn_linear_p falls back to asr_nn_linear for larger m.
 * asr__nn_linear_rows is the per-thread part (columns [j0, j1)). */
#define ASR_NN_SMALL_M 8
void asr_nn_linear_p(asr_pool_t *pool, const float *a, int lda, const float *w, int ldw,
                     const float *bias, float *c, int ldc, int m, int n, int k);
void asr__nn_linear_rows(const float *a, int lda, const float *w, int ldw, const float *bias,
                         float *c, int ldc, int m, int j0, int j1, int k);
/* The same with float16 weights [n][k] (any m: rows are processed ASR_NN_SMALL_M at a time, each
 * weight row read once per block), parallel over output columns. */
void asr_nn_linear_h(asr_pool_t *pool, const float *a, int lda, const uint16_t *w, int ldw,
                     const float *bias, float *c, int ldc, int m, int n, int k);
void asr__nn_linear_rows_h(const float *a, int lda, const uint16_t *w, int ldw, const float *bias,
                           float *c, int ldc, int m, int j0, int j1, int k);
void asr_nn_h2f_n(const uint16_t *src, float *dst, size_t n);
/* The kernel set chosen at run time ("avx2+fma+f16c" or "portable"; ASRD_NO_SIMD forces the
 * latter). */
const char *asr_nn_simd_name(void);
/* C[m][n] = P[m][ctx] · V[ctx][n] (row-major, leading dimensions), single-threaded. */
void asr_nn_gemm_nn_small(const float *p, int ldp, const float *v, int ldv, float *c, int ldc,
                          int m, int n, int ctx);

/* ---- element-wise / row kernels (parallel over rows when pool != NULL) ---- */
/* out[r] = (x[r] - mean) / sqrt(var + eps) * gamma + beta over rows of length d; out may alias x.
 */
void asr_nn_layer_norm(asr_pool_t *pool, const float *x, float *out, int n_rows, int d,
                       const float *gamma, const float *beta, float eps);
/* Exact (erf) GELU in place. */
void asr_nn_gelu(asr_pool_t *pool, float *x, size_t n);
/* Row-wise softmax in place over rows of length n_cols with stride ld. */
void asr_nn_softmax_rows(asr_pool_t *pool, float *x, int n_rows, int n_cols, int ld);
/* The same kernels on one row/array: the vectorised versions (vmath.c: branch-free exp and erf;
 * softmax of scale·x) and the scalar libm references they are tested against. */
void asr_nn_softmax_row_fast(float *x, int n, float scale);
void asr_nn_softmax_row_ref(float *x, int n);
void asr_nn_gelu_fast(float *x, size_t n);
void asr_nn_gelu_ref(float *x, size_t n);
void asr_nn_exp_fast(const float *x, float *y, size_t n);
/* x[i] += y[i] */
void asr_nn_add(float *x, const float *y, size_t n);

/* ---- conversion ---- */
float asr_nn_f16_to_f32(uint16_t h);
float asr_nn_bf16_to_f32(uint16_t h);
void asr_nn_f16_to_f32_n(const uint16_t *src, float *dst, size_t n);

#endif
