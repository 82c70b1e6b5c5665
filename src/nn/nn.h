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
/* tasks for n items of row work: the pool's threads, fewer for fewer items (at least 1) */
int asr_pool_n_tasks(const asr_pool_t *pool, int n);
void asr_pool_run(asr_pool_t *pool, int n_tasks, asr_pool_fn fn, void *ctx);

/* Keeps the GEMM library single-threaded: parallel GEMMs split their rows over a pool instead
 * (asr_pool_create calls it). */
void asr_nn_blas_single_threaded(void);
/* OpenBLAS's own thread count (asrd bench's peak measurement only). */
void asr_nn_blas_threads(int n);

/* ---- GEMM ----
 * C[m][n] = A[m][k] · B[n][k]ᵀ (+ bias[n] if non-NULL), row-major with leading dimensions. This is
 * the "linear layer" shape: B is a weight stored [out][in]. */
void asr_nn_linear(const float *a, int lda, const float *w, int ldw, const float *bias, float *c,
                   int ldc, int m, int n, int k);
/* asr_nn_linear and asr_nn_gemm_nt with the rows of C split over the pool. */
void asr_nn_linear_mt(asr_pool_t *pool, const float *a, int lda, const float *w, int ldw,
                      const float *bias, float *c, int ldc, int m, int n, int k);
void asr_nn_gemm_nt_mt(asr_pool_t *pool, const float *a, int lda, const float *b, int ldb, float *c,
                       int ldc, int m, int n, int k, float alpha);
/* C[m][n] = alpha · A[m][k] · B[n][k]ᵀ */
void asr_nn_gemm_nt(const float *a, int lda, const float *b, int ldb, float *c, int ldc, int m,
                    int n, int k, float alpha);
/* C[m][n] = A[m][k] · B[k][n] */
void asr_nn_gemm_nn(const float *a, int lda, const float *b, int ldb, float *c, int ldc, int m,
                    int n, int k);

/* Weights of a linear layer in one of the storage types the kernels read directly: float32,
 * float16 or bfloat16 (converted to float32 as they are read; the arithmetic is float32), or int8
 * with one float scale per output row (w[j][t] = scale[j] * q[j][t]; the activations are then
 * quantized per row the same way, products summed in int32: CTranslate2's scheme). */
typedef enum { ASR_W_F32 = 0, ASR_W_F16, ASR_W_BF16, ASR_W_I8 } asr_wtype_t;
typedef struct {
    asr_wtype_t type;
    const void *data;   /* [n][ld] elements of type */
    const float *scale; /* ASR_W_I8: [n] row scales; otherwise NULL */
    int ld;
} asr_wmat_t;

/* The decoder's linear layers: C[m][n] = A[m][k] · Wᵀ (+ bias). Rows are processed
 * ASR_NN_SMALL_M at a time by kernels that read each weight row once per block (BLAS would pack
 * the whole matrix on every call), split over the pool by output columns when pool != NULL.
 * float32 weights with m > ASR_NN_SMALL_M go to BLAS. */
#define ASR_NN_SMALL_M 8
void asr_nn_linear_w(asr_pool_t *pool, const float *a, int lda, const asr_wmat_t *w,
                     const float *bias, float *c, int ldc, int m, int n, int k);
/* The same for any number of rows in one pass over the weights (the decoder steps of several
 * streams batched together, engine/cpu_batch.c): row blocks of ASR_NN_SMALL_M inside each block of
 * columns, never BLAS, so each row's result is the one asr_nn_linear_w gives it in a call of at
 * most ASR_NN_SMALL_M rows. int8 weights quantize the activations into qbuf (caller's, at least
 * asr_nn_linear_w_qbytes(m, k) bytes, 4-byte aligned; unused for other types). */
size_t asr_nn_linear_w_qbytes(int m, int k);
void asr_nn_linear_w_many(asr_pool_t *pool, const float *a, int lda, const asr_wmat_t *w,
                          const float *bias, float *c, int ldc, int m, int n, int k, void *qbuf);
/* The scalar reference (double accumulation; int8: the same quantization, exact integer sums). */
void asr_nn_linear_w_ref(const float *a, int lda, const asr_wmat_t *w, const float *bias, float *c,
                         int ldc, int m, int n, int k);
/* One thread's part: float32 weights, m <= ASR_NN_SMALL_M rows, columns [j0, j1). */
void asr__nn_linear_rows(const float *a, int lda, const float *w, int ldw, const float *bias,
                         float *c, int ldc, int m, int j0, int j1, int k);

/* int8 activations: row i of a quantized as q[i][t] = round(a[i][t] / s[i]), s[i] = max|a[i]|/127
 * (|q| also kept: the AVX2 kernel multiplies unsigned |q| by sign-adjusted weights). */
typedef struct {
    int8_t *q;
    uint8_t *qabs;
    float *s;
    int ld;
} asr_qact_t;
void asr__nn_quantize_rows(const float *a, int lda, int m, int k, asr_qact_t *out);
/* Per-thread kernels of any weight type (q: the quantized rows, for ASR_W_I8). */
void asr__nn_linear_rows_w(const float *a, int lda, const asr_qact_t *q, const asr_wmat_t *w,
                           const float *bias, float *c, int ldc, int m, int j0, int j1, int k);
/* Row j (k elements) of w as float32. */
void asr_nn_weight_row(const asr_wmat_t *w, int j, int k, float *out);
/* Converts float32 rows to ASR_W_F32, ASR_W_BF16 or ASR_W_I8 (bfloat16: round to nearest even;
 * int8: per-row scales). dst holds n*k elements of the type; scale n floats (int8 only). */
void asr_nn_convert_rows(const float *src, int n, int k, asr_wtype_t type, void *dst, float *scale);
void asr_nn_h2f_n(const uint16_t *src, float *dst, size_t n);
/* The same, split over the pool. */
void asr_nn_h2f_n_mt(asr_pool_t *pool, const void *src, float *dst, size_t n);
/* The kernel set chosen at run time ("avx512+vnni+bf16", "avx512", "avx2+fma+f16c+avx_vnni",
 * "avx2+fma+f16c" or "portable": asr_isa()'s level, which ASRD_ISA and ASRD_NO_SIMD force). */
const char *asr_nn_simd_name(void);
/* C[m][n] = P[m][ctx] · V[ctx][n] (row-major, leading dimensions), single-threaded; any m (rows
 * are taken a few at a time, each row of V read once per block). _h: V in float16. */
void asr_nn_gemm_nn_small(const float *p, int ldp, const float *v, int ldv, float *c, int ldc,
                          int m, int n, int ctx);
void asr_nn_gemm_nn_small_h(const float *p, int ldp, const uint16_t *v, int ldv, float *c, int ldc,
                            int m, int n, int ctx);

/* ---- element-wise / row kernels (parallel over rows when pool != NULL) ---- */
/* out[r] = (x[r] - mean) / sqrt(var + eps) * gamma + beta over rows of length d; out may alias x.
 */
void asr_nn_layer_norm(asr_pool_t *pool, const float *x, float *out, int n_rows, int d,
                       const float *gamma, const float *beta, float eps);
/* The same with bfloat16 output (round to nearest even): out [n_rows][d]. (layer_norm.c) */
void asr_nn_layer_norm_bf16(asr_pool_t *pool, const float *x, uint16_t *out, int n_rows, int d,
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
/* log(sum_i exp(x[i])) (vectorised; -inf when every x[i] is -inf) */
float asr_nn_logsumexp(const float *x, int n);
/* x[i] += y[i] */
void asr_nn_add(float *x, const float *y, size_t n);

/* ---- conversion ---- */
float asr_nn_f16_to_f32(uint16_t h);
float asr_nn_bf16_to_f32(uint16_t h);
/* float32 to bfloat16, round to nearest even (NaN stays a quiet NaN). */
uint16_t asr_nn_f32_to_bf16(float f);
/* float32 to float16, round to nearest even (overflow to inf); _n: arrays (vectorised), _ref:
 * the scalar loop. */
uint16_t asr_nn_f32_to_f16(float f);
void asr_nn_f2h_n(const float *src, uint16_t *dst, size_t n);
void asr_nn_f2h_n_ref(const float *src, uint16_t *dst, size_t n);

/* ---- oneDNN GEMMs (gemm_dnnl.c): C[m][n] = A[m][k]·W[n][k]ᵀ + bias for the encoder's shapes ----
 * W is packed once (asr_nn_dnnl_pack, at model load) into the layout the kernel oneDNN picks for
 * (m, n, k, type) reads; the primitive is created then and cached per shape. A run converts A
 * (float32) to the type (bfloat16; int8 with a scale per row, W with a scale per column) into the
 * caller's scratch (asr_nn_dnnl_scratch_bytes, 64-byte aligned) over the pool, and oneDNN uses at
 * most the pool's thread count. The kernel level follows asr_isa() (ASRD_ISA caps oneDNN's ISA).
 * Handles are immutable after pack and may run concurrently with distinct scratch. */
enum { ASR_NN_DNNL_F32 = 0, ASR_NN_DNNL_BF16 = 1, ASR_NN_DNNL_I8 = 2 };
typedef struct asr_nn_dnnl asr_nn_dnnl_t;
/* w: float32 [n][k] (borrowed for the call), bias [n] or NULL (copied); n_threads: the size of
 * the pool that will run it (oneDNN fixes its thread split at creation: a pool of another size
 * still runs it, with that many oneDNN threads); *out owned by the caller (asr_nn_dnnl_destroy).
 * ASR_ERR_INVALID when oneDNN has no kernel for the shape/type. */
asr_err_t asr_nn_dnnl_pack(int type, const float *w, const float *bias, int m, int n, int k,
                           int n_threads, asr_nn_dnnl_t **out);
/* The same with flags: ASR_NN_DNNL_GELU, C = GELU(A·Wᵀ + bias) (exact erf GELU); ASR_NN_DNNL_ACC,
 * C += A·Wᵀ + bias (the residual add). Fused into oneDNN's kernel (bfloat16, float32) or into the
 * int8 results' conversion. The bfloat16 type only (else ASR_ERR_INVALID): ASR_NN_DNNL_SRC_BF16, A
 * is bfloat16 already (lda == k; no conversion), ASR_NN_DNNL_DST_BF16, C is written as bfloat16
 * (round to nearest even): both need asr_nn_dnnl_run_ex. */
enum {
    ASR_NN_DNNL_GELU = 1,
    ASR_NN_DNNL_ACC = 2,
    ASR_NN_DNNL_SRC_BF16 = 4,
    ASR_NN_DNNL_DST_BF16 = 8
};
asr_err_t asr_nn_dnnl_pack_ex(int type, int flags, const float *w, const float *bias, int m, int n,
                              int k, int n_threads, asr_nn_dnnl_t **out);
int asr_nn_dnnl_flags(const asr_nn_dnnl_t *g);
void asr_nn_dnnl_destroy(asr_nn_dnnl_t *g);
/* a: [m][lda] float32; c: [m][ldc] (ldc == n and, for float32, lda == k). Converted rows may
 * overlap (lda < k: a stride-2 convolution's input read in place). */
asr_err_t asr_nn_dnnl_run(asr_pool_t *pool, const asr_nn_dnnl_t *g, const float *a, int lda,
                          float *c, int ldc, void *scratch);
/* a: float32 or bfloat16 (SRC_BF16), c: float32 or bfloat16 (DST_BF16) as the flags say */
asr_err_t asr_nn_dnnl_run_ex(asr_pool_t *pool, const asr_nn_dnnl_t *g, const void *a, int lda,
                             void *c, int ldc, void *scratch);
size_t asr_nn_dnnl_scratch_bytes(const asr_nn_dnnl_t *g);
/* the packed weights', bias's and scales' bytes */
size_t asr_nn_dnnl_weight_bytes(const asr_nn_dnnl_t *g);
/* the kernel oneDNN chose ("brg:avx512_core_amx_bf16") */
const char *asr_nn_dnnl_impl(const asr_nn_dnnl_t *g);
/* the int8 weights' largest magnitude: 127 where the CPU sums int8 products exactly (VNNI:
 * asr_isa_int8_dot), else 63 (oneDNN's AVX2/AVX-512 int8 kernels add pairs of u8·s8 products in
 * saturating 16 bits: 2·255·63 < 2^15, 2·255·127 is not) */
int asr_nn_dnnl_weight_max(void);
/* how a run splits over the pool: parts of the columns (1: bfloat16 A, k ≥ 4n) or of the rows (0)
 */
int asr_nn_dnnl_splits_columns(const asr_nn_dnnl_t *g);

/* ---- self-attention in bfloat16 on AMX (attn_amx.c): the encoder's under bfloat16/int8 ----
 * out[t][h·dh + j] = Σ_s softmax_s(scale · q_h[t]·k_h[s]) · v_h[s][j], q/k/v of head h at columns
 * h·dh, d + h·dh and 2d + h·dh of qkv [T][ldqkv] (float32, or bfloat16 when qkv_bf16; d = H·dh);
 * out [T][ldo] float32, or bfloat16 (round to nearest even) when out_bf16.
 * Inputs rounded to bfloat16, products summed in float32 on the tiles, softmax in float32 (P
 * rounded to bfloat16 for P·V). _ok(dh): 1 when the kernel runs here (dh 64, asr_isa() at the AMX
 * level with AMX-BF16 and the tile permission), else 0 (the caller keeps its float32 path).
 * packed: _packed_bytes(T, d), the bfloat16 copies; scratch: scratch_len bytes (64-aligned), at
 * least _task_bytes(T), one such part per pool task (fewer tasks when it holds fewer). Runs over
 * the pool (NULL: the calling thread); never allocates. */
int asr_nn_attn_bf16_ok(int dh);
/* The encoder's choice, for its plan and its pass alike: _packed_bytes(T, d) where the compute
 * type is bfloat16 or int8 and _ok(d / H), else 0 (the float32 attention runs). */
size_t asr_nn_attn_bf16_bytes(asr_wtype_t compute, int T, int d, int H);
size_t asr_nn_attn_bf16_packed_bytes(int T, int d);
size_t asr_nn_attn_bf16_task_bytes(int T);
void asr_nn_attn_bf16(asr_pool_t *pool, const void *qkv, int ldqkv, int qkv_bf16, int T, int H,
                      float scale, void *packed, void *scratch, size_t scratch_len, void *out,
                      int ldo, int out_bf16);

#endif
