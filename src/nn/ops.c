/* nn: float32 kernels. GEMM goes to CBLAS; row kernels are plain C loops that the compiler
 * vectorises, split over the pool by row blocks. */
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "nn/nn.h"

void asr_nn_set_gemm_threads(int n) { openblas_set_num_threads(n < 1 ? 1 : n); }

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
    const float *a, *w, *bias;
    float *c;
    int lda, ldw, ldc, m, n, k;
    const uint16_t *wh;
} lin_job_t;

static void linear_h_task(void *ctx, int task, int n_tasks) {
    lin_job_t *j = ctx;
    int j0 = (int)((long)j->n * task / n_tasks), j1 = (int)((long)j->n * (task + 1) / n_tasks);
    /* blocks of columns so that a block's weights stay in cache across the row blocks */
    for (int c0 = j0; c0 < j1; c0 += 64) {
        int c1 = c0 + 64 < j1 ? c0 + 64 : j1;
        for (int r = 0; r < j->m; r += ASR_NN_SMALL_M) {
            int mr = j->m - r < ASR_NN_SMALL_M ? j->m - r : ASR_NN_SMALL_M;
            asr__nn_linear_rows_h(j->a + (size_t)r * j->lda, j->lda, j->wh, j->ldw, j->bias,
                                  j->c + (size_t)r * j->ldc, j->ldc, mr, c0, c1, j->k);
        }
    }
}

void asr_nn_linear_h(asr_pool_t *pool, const float *a, int lda, const uint16_t *w, int ldw,
                     const float *bias, float *c, int ldc, int m, int n, int k) {
    lin_job_t j = {a, NULL, bias, c, lda, ldw, ldc, m, n, k, w};
    int tasks = pool && (size_t)n * k * (m > 1 ? m : 1) >= 65536 ? asr_pool_n_threads(pool) : 1;
    asr_pool_run(pool, tasks, linear_h_task, &j);
}

static void linear_task(void *ctx, int task, int n_tasks) {
    lin_job_t *j = ctx;
    int j0 = (int)((long)j->n * task / n_tasks), j1 = (int)((long)j->n * (task + 1) / n_tasks);
    asr__nn_linear_rows(j->a, j->lda, j->w, j->ldw, j->bias, j->c, j->ldc, j->m, j0, j1, j->k);
}

void asr_nn_linear_p(asr_pool_t *pool, const float *a, int lda, const float *w, int ldw,
                     const float *bias, float *c, int ldc, int m, int n, int k) {
    if (m > ASR_NN_SMALL_M) {
        asr_nn_linear(a, lda, w, ldw, bias, c, ldc, m, n, k);
        return;
    }
    lin_job_t j = {a, w, bias, c, lda, ldw, ldc, m, n, k, NULL};
    int tasks = pool && (size_t)n * k >= 65536 ? asr_pool_n_threads(pool) : 1;
    asr_pool_run(pool, tasks, linear_task, &j);
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

static void layer_norm_task(void *ctx, int task, int n_tasks) {
    row_job_t *j = ctx;
    int lo, hi;
    block_range(task, n_tasks, j->n_rows, &lo, &hi);
    for (int r = lo; r < hi; r++) {
        const float *x = j->x + (size_t)r * j->d;
        float *o = j->out + (size_t)r * j->d;
        double sum = 0.0;
        for (int i = 0; i < j->d; i++)
            sum += x[i];
        float mean = (float)(sum / j->d);
        double var = 0.0;
        for (int i = 0; i < j->d; i++) {
            float t = x[i] - mean;
            var += (double)t * t;
        }
        float inv = 1.0f / sqrtf((float)(var / j->d) + j->eps);
        for (int i = 0; i < j->d; i++)
            o[i] = (x[i] - mean) * inv * j->gamma[i] + j->beta[i];
    }
}

static int n_tasks_for(asr_pool_t *pool, int rows) {
    int n = asr_pool_n_threads(pool);
    return rows < n ? (rows < 1 ? 1 : rows) : n;
}

void asr_nn_layer_norm(asr_pool_t *pool, const float *x, float *out, int n_rows, int d,
                       const float *gamma, const float *beta, float eps) {
    row_job_t j = {
        .x = x, .out = out, .n_rows = n_rows, .d = d, .gamma = gamma, .beta = beta, .eps = eps};
    asr_pool_run(pool, n_rows >= 64 ? n_tasks_for(pool, n_rows) : 1, layer_norm_task, &j);
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
    asr_pool_run(pool, n_rows >= 16 ? n_tasks_for(pool, n_rows) : 1, softmax_task, &j);
}

void asr_nn_add(float *x, const float *y, size_t n) {
    for (size_t i = 0; i < n; i++)
        x[i] += y[i];
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

float asr_nn_bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

void asr_nn_f16_to_f32_n(const uint16_t *src, float *dst, size_t n) {
    for (size_t i = 0; i < n; i++)
        dst[i] = asr_nn_f16_to_f32(src[i]);
}
