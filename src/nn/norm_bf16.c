/* nn: layer norm with bfloat16 output (nn.h, asr_nn_layer_norm_bf16): the encoder's norms feed
 * bfloat16 GEMMs (gemm_dnnl.c with ASR_NN_DNNL_SRC_BF16), so the normed rows are written once, as
 * bfloat16, instead of float32 that the GEMM then converts. The same formula as
 * asr_nn_layer_norm (mean, then the mean of squared deviations, 1/sqrt(var + eps)); on AVX-512
 * the sums are float32 in 16 lanes (the result is rounded to bfloat16's 2^-9 anyway), elsewhere
 * double as asr_nn_layer_norm's. */
#include <math.h>
#include <stdint.h>

#include "nn/isa.h"
#include "nn/nn.h"

typedef struct {
    const float *x;
    uint16_t *out;
    int n_rows, d;
    const float *gamma, *beta;
    float eps;
} ln_job_t;

static void ln_row_scalar(const ln_job_t *j, int r) {
    const float *x = j->x + (size_t)r * j->d;
    uint16_t *o = j->out + (size_t)r * j->d;
    double sum = 0.0, var = 0.0;
    for (int i = 0; i < j->d; i++)
        sum += x[i];
    float mean = (float)(sum / j->d);
    for (int i = 0; i < j->d; i++) {
        float t = x[i] - mean;
        var += (double)t * t;
    }
    float inv = 1.0f / sqrtf((float)(var / j->d) + j->eps);
    for (int i = 0; i < j->d; i++)
        o[i] = asr_nn_f32_to_bf16((x[i] - mean) * inv * j->gamma[i] + j->beta[i]);
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define TGT __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,fma")))

static inline __mmask16 mask16(int n) {
    return n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1u);
}

TGT static void ln_row_avx512(const ln_job_t *j, int r) {
    const int d = j->d;
    const float *x = j->x + (size_t)r * d;
    uint16_t *o = j->out + (size_t)r * d;
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
    if (t->level >= ASR_ISA_AVX512 && t->avx512_bf16) {
        for (int r = r0; r < r1; r++)
            ln_row_avx512(j, r);
        return;
    }
#endif
    for (int r = r0; r < r1; r++)
        ln_row_scalar(j, r);
}

void asr_nn_layer_norm_bf16(asr_pool_t *pool, const float *x, uint16_t *out, int n_rows, int d,
                            const float *gamma, const float *beta, float eps) {
    ln_job_t j = {x, out, n_rows, d, gamma, beta, eps};
    int nt = asr_pool_n_threads(pool);
    asr_pool_run(pool, n_rows < nt ? (n_rows < 1 ? 1 : n_rows) : nt, ln_task, &j);
}
