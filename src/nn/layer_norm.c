/* nn: layer norm over rows (nn.h, asr_nn_layer_norm and asr_nn_layer_norm_bf16): out[r] =
 * (x[r] - mean) / sqrt(var + eps) · gamma + beta, the mean first, then the mean of squared
 * deviations.
 * - float32 out: the sums in double. On AVX-512 in 16 double lanes: a float's value and square are
 *   exact in double and their sums stay exact while the row's exponents span under 29 bits, so the
 *   lanes give the one-lane row's mean and variance in practice (base's encoder outputs on jfk are
 *   bit-identical); the rest keeps the scalar row's roundings (no FMA).
 * - bfloat16 out (round to nearest even): the encoder's norms feed bfloat16 GEMMs (gemm_dnnl.c
 *   with ASR_NN_DNNL_SRC_BF16), so the normed rows are written once, as bfloat16, instead of
 *   float32 that the GEMM then converts; on AVX-512 (with BF16) the sums are float32 in 16 lanes
 *   (the result is rounded to bfloat16's 2^-9 anyway), elsewhere double as above. */
#include <math.h>
#include <stdint.h>

#include "nn/isa.h"
#include "nn/nn.h"

typedef struct {
    const float *x;
    void *out; /* float32, or bfloat16 (bf16) */
    int bf16, n_rows, d;
    const float *gamma, *beta;
    float eps;
} ln_job_t;

static void ln_row_scalar(const ln_job_t *j, int r) {
    const float *x = j->x + (size_t)r * j->d;
    double sum = 0.0, var = 0.0;
    for (int i = 0; i < j->d; i++)
        sum += x[i];
    float mean = (float)(sum / j->d);
    for (int i = 0; i < j->d; i++) {
        float t = x[i] - mean;
        var += (double)t * t;
    }
    float inv = 1.0f / sqrtf((float)(var / j->d) + j->eps);
    if (j->bf16) {
        uint16_t *o = (uint16_t *)j->out + (size_t)r * j->d;
        for (int i = 0; i < j->d; i++)
            o[i] = asr_nn_f32_to_bf16((x[i] - mean) * inv * j->gamma[i] + j->beta[i]);
    } else { /* (out may be x) */
        float *o = (float *)j->out + (size_t)r * j->d;
        for (int i = 0; i < j->d; i++)
            o[i] = (x[i] - mean) * inv * j->gamma[i] + j->beta[i];
    }
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define TGT __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,fma")))

static inline __mmask16 mask16(int n) {
    return n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1u);
}

/* float32 out, the double sums in 16 lanes */
__attribute__((target("avx512f"))) static void ln_row_f32_avx512(const ln_job_t *j, int r) {
    const int d = j->d;
    const float *x = j->x + (size_t)r * d;
    float *o = (float *)j->out + (size_t)r * d;
    __m512d s0 = _mm512_setzero_pd(), s1 = s0;
    int i = 0;
    for (; i + 16 <= d; i += 16) {
        __m512 v = _mm512_loadu_ps(x + i);
        s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm512_castps512_ps256(v)));
        s1 = _mm512_add_pd(
            s1, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1))));
    }
    double sum = _mm512_reduce_add_pd(_mm512_add_pd(s0, s1));
    for (; i < d; i++)
        sum += x[i];
    const float mean = (float)(sum / d);
    const __m512 mv = _mm512_set1_ps(mean);
    s0 = _mm512_setzero_pd(), s1 = s0;
    for (i = 0; i + 16 <= d; i += 16) {
        __m512 t = _mm512_sub_ps(_mm512_loadu_ps(x + i), mv);
        __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(t));
        __m512d hi =
            _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(t), 1)));
        s0 = _mm512_add_pd(s0, _mm512_mul_pd(lo, lo));
        s1 = _mm512_add_pd(s1, _mm512_mul_pd(hi, hi));
    }
    double var = _mm512_reduce_add_pd(_mm512_add_pd(s0, s1));
    for (; i < d; i++) {
        float t = x[i] - mean;
        var += (double)t * t;
    }
    const float inv = 1.0f / sqrtf((float)(var / d) + j->eps);
    const __m512 iv = _mm512_set1_ps(inv);
    for (i = 0; i + 16 <= d; i += 16) {
        __m512 t = _mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(x + i), mv), iv);
        t = _mm512_add_ps(_mm512_mul_ps(t, _mm512_loadu_ps(j->gamma + i)),
                          _mm512_loadu_ps(j->beta + i));
        _mm512_storeu_ps(o + i, t);
    }
    for (; i < d; i++)
        o[i] = (x[i] - mean) * inv * j->gamma[i] + j->beta[i];
}

/* bfloat16 out, float32 sums in 16 lanes */
TGT static void ln_row_bf16_avx512(const ln_job_t *j, int r) {
    const int d = j->d;
    const float *x = j->x + (size_t)r * d;
    uint16_t *o = (uint16_t *)j->out + (size_t)r * d;
    __m512 s = _mm512_setzero_ps();
    for (int i = 0; i < d; i += 16)
        s = _mm512_add_ps(s, _mm512_maskz_loadu_ps(mask16(d - i), x + i));
    const float mean = _mm512_reduce_add_ps(s) / (float)d;
    const __m512 mv = _mm512_set1_ps(mean);
    __m512 v = _mm512_setzero_ps();
    for (int i = 0; i < d; i += 16) {
        __mmask16 mk = mask16(d - i);
        __m512 t = _mm512_maskz_sub_ps(mk, _mm512_maskz_loadu_ps(mk, x + i), mv);
        v = _mm512_fmadd_ps(t, t, v);
    }
    const __m512 inv = _mm512_set1_ps(1.0f / sqrtf(_mm512_reduce_add_ps(v) / (float)d + j->eps));
    for (int i = 0; i < d; i += 16) {
        __mmask16 mk = mask16(d - i);
        __m512 t = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(mk, x + i), mv), inv);
        t = _mm512_fmadd_ps(t, _mm512_maskz_loadu_ps(mk, j->gamma + i),
                            _mm512_maskz_loadu_ps(mk, j->beta + i));
        _mm256_mask_storeu_epi16(o + i, mk, (__m256i)_mm512_cvtneps_pbh(t));
    }
}
#define HAVE_AVX512 1
#endif

static void ln_task(void *ctx, int task, int n_tasks) {
    const ln_job_t *j = ctx;
    int r0 = (int)((long)j->n_rows * task / n_tasks),
        r1 = (int)((long)j->n_rows * (task + 1) / n_tasks);
#ifdef HAVE_AVX512
    const asr_isa_t *t = asr_isa();
    if (t->level >= ASR_ISA_AVX512 && (!j->bf16 || t->avx512_bf16)) {
        for (int r = r0; r < r1; r++) {
            if (j->bf16)
                ln_row_bf16_avx512(j, r);
            else
                ln_row_f32_avx512(j, r);
        }
        return;
    }
#endif
    for (int r = r0; r < r1; r++)
        ln_row_scalar(j, r);
}

void asr_nn_layer_norm(asr_pool_t *pool, const float *x, float *out, int n_rows, int d,
                       const float *gamma, const float *beta, float eps) {
    ln_job_t j = {x, out, 0, n_rows, d, gamma, beta, eps};
    /* a decoder step's few rows on the calling thread */
    asr_pool_run(pool, n_rows >= 64 ? asr_pool_n_tasks(pool, n_rows) : 1, ln_task, &j);
}

void asr_nn_layer_norm_bf16(asr_pool_t *pool, const float *x, uint16_t *out, int n_rows, int d,
                            const float *gamma, const float *beta, float eps) {
    ln_job_t j = {x, out, 1, n_rows, d, gamma, beta, eps};
    asr_pool_run(pool, asr_pool_n_tasks(pool, n_rows), ln_task, &j);
}
