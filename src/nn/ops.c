/* nn: float32 kernels. GEMM goes to CBLAS; row kernels are plain C loops that the compiler
 * vectorises, split over the pool by row blocks. */
#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "nn/kern.h"

/* OpenBLAS runs single-threaded inside the pool's tasks: its own threads would spin (sched_yield)
 * after every call, taking cores from the decoder and from concurrent requests. They start when
 * the library loads and spin ~0.1 s beside the model load, so its (exported, not declared)
 * shutdown ends them at once; a later multi-threaded call (asrd bench's peak) starts them again. */
extern void blas_thread_shutdown_(void) __attribute__((weak));
static void blas_stop_threads(void) {
    openblas_set_num_threads(1);
    if (blas_thread_shutdown_)
        blas_thread_shutdown_();
}
/* openblas_set_num_threads starts the threads again after a shutdown: called only to undo a
 * multi-threaded setting (asrd bench) */
static atomic_int g_blas_multi;
void asr_nn_blas_single_threaded(void) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, blas_stop_threads);
    if (atomic_exchange(&g_blas_multi, 0))
        openblas_set_num_threads(1);
}
void asr_nn_blas_threads(int n) {
    if (n <= 1) {
        asr_nn_blas_single_threaded();
        return;
    }
    atomic_store(&g_blas_multi, 1);
    openblas_set_num_threads(n);
}

typedef struct {
    const float *a, *b, *bias;
    float *c;
    int lda, ldb, ldc, m, n, k, linear;
    float alpha;
} gemm_job_t;

static void gemm_task(void *ctx, int task, int n_tasks) {
    gemm_job_t *j = ctx;
    int r0 = (int)((long)j->m * task / n_tasks), r1 = (int)((long)j->m * (task + 1) / n_tasks);
    r0 = r0 / 8 * 8, r1 = task + 1 == n_tasks ? j->m : r1 / 8 * 8; /* whole micro-tiles */
    if (r1 <= r0)
        return;
    const float *a = j->a + (size_t)r0 * j->lda;
    float *c = j->c + (size_t)r0 * j->ldc;
    if (j->linear)
        asr_nn_linear(a, j->lda, j->b, j->ldb, j->bias, c, j->ldc, r1 - r0, j->n, j->k);
    else
        asr_nn_gemm_nt(a, j->lda, j->b, j->ldb, c, j->ldc, r1 - r0, j->n, j->k, j->alpha);
}

void asr_nn_linear_mt(asr_pool_t *pool, const float *a, int lda, const float *w, int ldw,
                      const float *bias, float *c, int ldc, int m, int n, int k) {
    gemm_job_t j = {a, w, bias, c, lda, ldw, ldc, m, n, k, 1, 1.0f};
    asr_pool_run(pool, m >= 64 ? asr_pool_n_threads(pool) : 1, gemm_task, &j);
}

void asr_nn_gemm_nt_mt(asr_pool_t *pool, const float *a, int lda, const float *b, int ldb, float *c,
                       int ldc, int m, int n, int k, float alpha) {
    gemm_job_t j = {a, b, NULL, c, lda, ldb, ldc, m, n, k, 0, alpha};
    asr_pool_run(pool, m >= 64 ? asr_pool_n_threads(pool) : 1, gemm_task, &j);
}

void asr_nn_linear(const float *a, int lda, const float *w, int ldw, const float *bias, float *c,
                   int ldc, int m, int n, int k) {
    if (bias) {
        for (int i = 0; i < m; i++)
            memcpy(c + (size_t)i * ldc, bias, (size_t)n * sizeof(float));
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, a, lda, w, ldw,
                bias ? 1.0f : 0.0f, c, ldc);
}

void asr_nn_gemm_nt(const float *a, int lda, const float *b, int ldb, float *c, int ldc, int m,
                    int n, int k, float alpha) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, alpha, a, lda, b, ldb, 0.0f, c,
                ldc);
}

void asr_nn_gemm_nn(const float *a, int lda, const float *b, int ldb, float *c, int ldc, int m,
                    int n, int k) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, a, lda, b, ldb, 0.0f, c,
                ldc);
}

typedef struct {
    const float *a, *bias;
    const asr_wmat_t *w;
    const asr_qact_t *q;
    float *c;
    int lda, ldc, m, n, k;
} lin_job_t;

static void linear_w_task(void *ctx, int task, int n_tasks) {
    lin_job_t *j = ctx;
    int j0 = (int)((long)j->n * task / n_tasks), j1 = (int)((long)j->n * (task + 1) / n_tasks);
    /* blocks of columns so that a block's weights stay in cache across the row blocks */
    for (int c0 = j0; c0 < j1; c0 += 64) {
        int c1 = c0 + 64 < j1 ? c0 + 64 : j1;
        for (int r = 0; r < j->m; r += ASR_NN_SMALL_M) {
            int mr = j->m - r < ASR_NN_SMALL_M ? j->m - r : ASR_NN_SMALL_M;
            asr_qact_t qr, *qp = NULL;
            if (j->q) {
                qr = (asr_qact_t){j->q->q + (size_t)r * j->q->ld, j->q->qabs + (size_t)r * j->q->ld,
                                  j->q->s + r, j->q->ld};
                qp = &qr;
            }
            asr__nn_linear_rows_w(j->a + (size_t)r * j->lda, j->lda, qp, j->w, j->bias,
                                  j->c + (size_t)r * j->ldc, j->ldc, mr, c0, c1, j->k);
        }
    }
}

/* int8 activations of one call live on the caller's stack: at most this many elements */
#define QACT_MAX (ASR_NN_SMALL_M * 5120)

void asr_nn_linear_w(asr_pool_t *pool, const float *a, int lda, const asr_wmat_t *w,
                     const float *bias, float *c, int ldc, int m, int n, int k) {
    if (w->type == ASR_W_F32 && m > ASR_NN_SMALL_M) {
        asr_nn_linear(a, lda, w->data, w->ld, bias, c, ldc, m, n, k);
        return;
    }
    if (w->type == ASR_W_I8 && k > QACT_MAX / ASR_NN_SMALL_M) { /* wider than any Whisper */
        asr_nn_linear_w_ref(a, lda, w, bias, c, ldc, m, n, k);
        return;
    }
    if (w->type == ASR_W_I8 && m > ASR_NN_SMALL_M) { /* blocks that fit the stack buffer */
        for (int r = 0; r < m; r += ASR_NN_SMALL_M)
            asr_nn_linear_w(pool, a + (size_t)r * lda, lda, w, bias, c + (size_t)r * ldc, ldc,
                            m - r < ASR_NN_SMALL_M ? m - r : ASR_NN_SMALL_M, n, k);
        return;
    }
    int8_t q8[w->type == ASR_W_I8 ? QACT_MAX : 1];
    uint8_t qabs[w->type == ASR_W_I8 ? QACT_MAX : 1];
    float qs[ASR_NN_SMALL_M];
    asr_qact_t qa = {q8, qabs, qs, k};
    if (w->type == ASR_W_I8)
        asr__nn_quantize_rows(a, lda, m, k, &qa);
    lin_job_t j = {a, bias, w, w->type == ASR_W_I8 ? &qa : NULL, c, lda, ldc, m, n, k};
    int tasks = pool && (size_t)n * k * (m > 1 ? m : 1) >= 65536 ? asr_pool_n_threads(pool) : 1;
    asr_pool_run(pool, tasks, linear_w_task, &j);
}

size_t asr_nn_linear_w_qbytes(int m, int k) {
    return ((size_t)m * k * 2 + 3) / 4 * 4 + (size_t)m * sizeof(float);
}

void asr_nn_linear_w_many(asr_pool_t *pool, const float *a, int lda, const asr_wmat_t *w,
                          const float *bias, float *c, int ldc, int m, int n, int k, void *qbuf) {
    asr_qact_t qa;
    if (w->type == ASR_W_I8) { /* q8 [m][k], qabs [m][k], then the m scales */
        qa = (asr_qact_t){qbuf, (uint8_t *)qbuf + (size_t)m * k,
                          (float *)((unsigned char *)qbuf + ((size_t)m * k * 2 + 3) / 4 * 4), k};
        asr__nn_quantize_rows(a, lda, m, k, &qa);
    }
    lin_job_t j = {a, bias, w, w->type == ASR_W_I8 ? &qa : NULL, c, lda, ldc, m, n, k};
    int tasks = pool && (size_t)n * k * (m > 1 ? m : 1) >= 65536 ? asr_pool_n_threads(pool) : 1;
    asr_pool_run(pool, tasks, linear_w_task, &j);
}

/* q[t] = round(x[t] / s), s = max|x| / 127 (|q| into qabs when non-NULL); returns s */
void asr__nn_quantize_span(const float *x, int t0, int k, float inv, int8_t *q, uint8_t *qabs) {
    for (int t = t0; t < k; t++) {
        long v = lrintf(x[t] * inv);
        v = v > 127 ? 127 : v < -127 ? -127 : v;
        q[t] = (int8_t)v;
        if (qabs)
            qabs[t] = (uint8_t)(v < 0 ? -v : v);
    }
}

float asr__nn_quantize_row_max(const float *x, int k, int qmax, int8_t *q, uint8_t *qabs) {
    float mx = 0.0f;
    for (int t = 0; t < k; t++)
        mx = fabsf(x[t]) > mx ? fabsf(x[t]) : mx;
    float s = mx > 0.0f ? mx / (float)qmax : 1.0f;
    asr__nn_quantize_span(x, 0, k, 1.0f / s, q, qabs);
    return s;
}

static float quantize_row_scalar(const float *x, int k, int8_t *q, uint8_t *qabs) {
    return asr__nn_quantize_row_max(x, k, 127, q, qabs);
}

static float quantize_row(const float *x, int k, int8_t *q, uint8_t *qabs) {
    return ASR_NN_PICK3(asr__k_quantize_row_avx512, asr__k_quantize_row_avx2, quantize_row_scalar,
                        x, k, q, qabs);
}

void asr__nn_quantize_rows(const float *a, int lda, int m, int k, asr_qact_t *out) {
    for (int i = 0; i < m; i++)
        out->s[i] = quantize_row(a + (size_t)i * lda, k, out->q + (size_t)i * out->ld,
                                 out->qabs + (size_t)i * out->ld);
}

void asr__k_linear_rows_i8(const asr_qact_t *qa, const asr_wmat_t *w, const float *bias, float *c,
                           int ldc, int m, int j0, int j1, int k) {
    const int8_t *wq = w->data;
    for (int i = 0; i < m; i++) {
        const int8_t *q = qa->q + (size_t)i * qa->ld;
        for (int j = j0; j < j1; j++) {
            const int8_t *wr = wq + (size_t)j * w->ld;
            int32_t s = 0;
            for (int t = 0; t < k; t++)
                s += (int32_t)q[t] * wr[t];
            c[(size_t)i * ldc + j] = (float)s * qa->s[i] * w->scale[j] + (bias ? bias[j] : 0.0f);
        }
    }
}

static double weight_at(const asr_wmat_t *w, int j, int t) {
    size_t o = (size_t)j * w->ld + t;
    switch (w->type) {
    case ASR_W_F16:
        return asr_nn_f16_to_f32(((const uint16_t *)w->data)[o]);
    case ASR_W_BF16:
        return asr_nn_bf16_to_f32(((const uint16_t *)w->data)[o]);
    default:
        return ((const float *)w->data)[o];
    }
}

void asr_nn_linear_w_ref(const float *a, int lda, const asr_wmat_t *w, const float *bias, float *c,
                         int ldc, int m, int n, int k) {
    if (w->type == ASR_W_I8) {
        for (int i = 0; i < m; i++) {
            int8_t q8[k > 0 ? k : 1];
            uint8_t qabs[k > 0 ? k : 1];
            float s;
            asr_qact_t qa = {q8, qabs, &s, k};
            s = quantize_row_scalar(a + (size_t)i * lda, k, q8, qabs); /* the oracle's own */
            asr__k_linear_rows_i8(&qa, w, bias, c + (size_t)i * ldc, ldc, 1, 0, n, k);
        }
        return;
    }
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double s = bias ? bias[j] : 0.0;
            for (int t = 0; t < k; t++)
                s += (double)a[(size_t)i * lda + t] * weight_at(w, j, t);
            c[(size_t)i * ldc + j] = (float)s;
        }
}

void asr_nn_weight_row(const asr_wmat_t *w, int j, int k, float *out) {
    size_t o = (size_t)j * w->ld;
    switch (w->type) {
    case ASR_W_F32:
        memcpy(out, (const float *)w->data + o, (size_t)k * sizeof(float));
        break;
    case ASR_W_F16:
        asr_nn_h2f_n((const uint16_t *)w->data + o, out, (size_t)k);
        break;
    case ASR_W_BF16:
        for (int t = 0; t < k; t++)
            out[t] = asr_nn_bf16_to_f32(((const uint16_t *)w->data)[o + t]);
        break;
    case ASR_W_I8:
        for (int t = 0; t < k; t++)
            out[t] = (float)((const int8_t *)w->data)[o + t] * w->scale[j];
        break;
    }
}

uint16_t asr_nn_f32_to_bf16(float f) {
    uint32_t b;
    memcpy(&b, &f, sizeof b);
    if ((b & 0x7fffffffu) > 0x7f800000u) /* NaN stays NaN */
        return (uint16_t)((b >> 16) | 0x40);
    b += 0x7fffu + ((b >> 16) & 1u); /* round to nearest even */
    return (uint16_t)(b >> 16);
}

void asr_nn_convert_rows(const float *src, int n, int k, asr_wtype_t type, void *dst,
                         float *scale) {
    for (int j = 0; j < n; j++) {
        const float *x = src + (size_t)j * k;
        if (type == ASR_W_F32) {
            memcpy((float *)dst + (size_t)j * k, x, (size_t)k * sizeof(float));
        } else if (type == ASR_W_BF16) {
            uint16_t *o = (uint16_t *)dst + (size_t)j * k;
            for (int t = 0; t < k; t++)
                o[t] = asr_nn_f32_to_bf16(x[t]);
        } else { /* ASR_W_I8 */
            scale[j] = quantize_row(x, k, (int8_t *)dst + (size_t)j * k, NULL);
        }
    }
}

typedef struct {
    const float *x;
    float *out;
    int n_rows, d, ld;
    const float *gamma, *beta;
    float eps;
    size_t n;
} row_job_t;

static void block_range(int task, int n_tasks, int total, int *lo, int *hi) {
    *lo = (int)((long)total * task / n_tasks);
    *hi = (int)((long)total * (task + 1) / n_tasks);
}

typedef struct {
    const unsigned char *src;
    float *dst;
    size_t n;
} h2f_job_t;

static void h2f_task(void *ctx, int task, int n_tasks) {
    const h2f_job_t *j = ctx;
    size_t lo = j->n * (size_t)task / (size_t)n_tasks / 64 * 64;
    size_t hi = task + 1 == n_tasks ? j->n : j->n * (size_t)(task + 1) / (size_t)n_tasks / 64 * 64;
    if ((uintptr_t)j->src % 2 == 0) {
        asr_nn_h2f_n((const uint16_t *)(const void *)j->src + lo, j->dst + lo, hi - lo);
        return;
    }
    uint16_t bounce[1024]; /* float16 at an odd address (a tensor of the mapped file) */
    for (size_t i = lo; i < hi; i += 1024) {
        size_t k = hi - i < 1024 ? hi - i : 1024;
        memcpy(bounce, j->src + 2 * i, 2 * k);
        asr_nn_h2f_n(bounce, j->dst + i, k);
    }
}

/* src: little-endian float16 values at any alignment */
void asr_nn_h2f_n_mt(asr_pool_t *pool, const void *src, float *dst, size_t n) {
    h2f_job_t j = {src, dst, n};
    asr_pool_run(pool, asr_pool_n_threads(pool), h2f_task, &j);
}

void asr_nn_gelu_ref(float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
}

static void gelu_task(void *ctx, int task, int n_tasks) {
    row_job_t *j = ctx;
    size_t lo = j->n * (size_t)task / (size_t)n_tasks, hi = j->n * (size_t)(task + 1) / n_tasks;
    asr_nn_gelu_fast(j->out + lo, hi - lo);
}

void asr_nn_gelu(asr_pool_t *pool, float *x, size_t n) {
    row_job_t j = {.out = x, .n = n};
    asr_pool_run(pool, n >= 65536 ? asr_pool_n_threads(pool) : 1, gelu_task, &j);
}

void asr_nn_softmax_row_ref(float *x, int n) {
    float mx = -INFINITY;
    for (int i = 0; i < n; i++)
        mx = x[i] > mx ? x[i] : mx;
    float sum = 0.0f;
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] - mx);
        sum += x[i];
    }
    float inv = 1.0f / sum;
    for (int i = 0; i < n; i++)
        x[i] *= inv;
}

static void softmax_task(void *ctx, int task, int n_tasks) {
    row_job_t *j = ctx;
    int lo, hi;
    block_range(task, n_tasks, j->n_rows, &lo, &hi);
    for (int r = lo; r < hi; r++)
        asr_nn_softmax_row_fast(j->out + (size_t)r * j->ld, j->d, 1.0f);
}

void asr_nn_softmax_rows(asr_pool_t *pool, float *x, int n_rows, int n_cols, int ld) {
    row_job_t j = {.out = x, .n_rows = n_rows, .d = n_cols, .ld = ld};
    asr_pool_run(pool, n_rows >= 16 ? asr_pool_n_tasks(pool, n_rows) : 1, softmax_task, &j);
}

static void add_scalar(float *x, const float *y, size_t n) {
    for (size_t i = 0; i < n; i++)
        x[i] += y[i];
}

void asr_nn_add(float *x, const float *y, size_t n) {
    ASR_NN_PICK3(asr__k_add_avx512, asr__k_add_avx2, add_scalar, x, y, n);
}

float asr_nn_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    uint32_t bits;
    if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else { /* subnormal: normalise */
            int e = -1;
            do {
                e++;
                mant <<= 1;
            } while (!(mant & 0x400));
            mant &= 0x3ff;
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | (mant << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (mant << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

uint16_t asr_nn_f32_to_f16(float f) {
    uint32_t b;
    memcpy(&b, &f, sizeof b);
    uint32_t sign = (b >> 16) & 0x8000, a = b & 0x7fffffffu;
    if (a >= 0x7f800000u) /* inf, NaN */
        return (uint16_t)(sign | 0x7c00 | (a > 0x7f800000u ? 0x200 : 0));
    if (a >= 0x477ff000u) /* rounds to >= 65520: overflow */
        return (uint16_t)(sign | 0x7c00);
    if (a < 0x38800000u) { /* subnormal half (or zero): a / 2^-24, rounded to nearest even */
        float v;
        memcpy(&v, &a, sizeof v);
        return (uint16_t)(sign | (uint32_t)lrintf(v * 16777216.0f));
    }
    uint32_t r = a - 0x38000000u; /* rebias the exponent: 127 - 15 = 112 */
    r = (r + 0x0fffu + ((r >> 13) & 1u)) >> 13;
    return (uint16_t)(sign | r);
}

void asr_nn_f2h_n_ref(const float *src, uint16_t *dst, size_t n) {
    for (size_t i = 0; i < n; i++)
        dst[i] = asr_nn_f32_to_f16(src[i]);
}

float asr_nn_bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}
