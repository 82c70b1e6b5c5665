/* nn: vectorised row kernels (softmax, GELU) with a branch-free exp and erf, written with GCC
 * vector types so one source compiles to AVX-512, AVX2 or SSE2 (chosen at run time through
 * target_clones on x86-64) and to NEON or scalar code elsewhere. The scalar references in ops.c
 * (libm expf/erff) are the oracles of tests/unit/test_nn.c.
 *
 * exp: x = n·ln2 + r with |r| <= ln2/2, 2^n built in the exponent bits, e^r from Cephes' degree-6
 * polynomial for expf (relative error about 2e-7 over the float range). erf: Abramowitz & Stegun
 * 7.1.26 (absolute error below 1.5e-7). */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "nn/nn.h"

#define W 16
typedef float vf __attribute__((vector_size(W * 4)));
typedef int32_t vi __attribute__((vector_size(W * 4)));

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define CLONES __attribute__((target_clones("arch=skylake-avx512", "arch=haswell", "default")))
#else
#define CLONES
#endif
#define INLINE static inline __attribute__((always_inline))

/* The helpers are always inlined: their vector ABI never shows. */
#pragma GCC diagnostic ignored "-Wpsabi"

INLINE vf splat(float x) { return (vf){0} + x; }

/* m ? a : b per lane (m from a vector comparison: all ones or zero) */
INLINE vf vsel(vi m, vf a, vf b) {
    vi ia, ib;
    memcpy(&ia, &a, sizeof ia);
    memcpy(&ib, &b, sizeof ib);
    vi r = (m & ia) | (~m & ib);
    vf out;
    memcpy(&out, &r, sizeof out);
    return out;
}
INLINE vf vmax(vf a, vf b) { return vsel(a > b, a, b); }
INLINE vf vmin(vf a, vf b) { return vsel(a < b, a, b); }

INLINE vf vexp(vf x) {
    x = vmin(vmax(x, splat(-87.3f)), splat(88.7f));
    const vf magic = splat(12582912.0f); /* 1.5·2^23: adding it rounds to an integer */
    vf n = (x * splat(1.44269504088896341f) + magic) - magic;
    vf r = x - n * splat(0.693359375f) - n * splat(-2.12194440e-4f);
    vf p = splat(1.9875691500e-4f);
    p = p * r + splat(1.3981999507e-3f);
    p = p * r + splat(8.3334519073e-3f);
    p = p * r + splat(4.1665795894e-2f);
    p = p * r + splat(1.6666665459e-1f);
    p = p * r + splat(5.0000001201e-1f);
    vf e = p * r * r + r + splat(1.0f);
    vi k = __builtin_convertvector(n, vi);
    vi bits;
    memcpy(&bits, &e, sizeof bits);
    bits += k << 23;
    memcpy(&e, &bits, sizeof e);
    return e;
}

INLINE vf verf(vf x) {
    vi bits, sign;
    memcpy(&bits, &x, sizeof bits);
    sign = bits & ((vi){0} + (int32_t)0x80000000);
    vf a = vsel(x < splat(0.0f), -x, x);
    vf t = splat(1.0f) / (splat(1.0f) + splat(0.3275911f) * a);
    vf p = splat(1.061405429f);
    p = p * t + splat(-1.453152027f);
    p = p * t + splat(1.421413741f);
    p = p * t + splat(-0.284496736f);
    p = p * t + splat(0.254829592f);
    vf y = splat(1.0f) - p * t * vexp(-a * a);
    memcpy(&bits, &y, sizeof bits);
    bits |= sign;
    memcpy(&y, &bits, sizeof y);
    return y;
}

INLINE vf load(const float *p) {
    vf v;
    memcpy(&v, p, sizeof v);
    return v;
}
INLINE void store(float *p, vf v) { memcpy(p, &v, sizeof v); }

CLONES void asr_nn_softmax_row_fast(float *x, int n, float scale) {
    int i = 0;
    vf mv = splat(-INFINITY);
    for (; i + W <= n; i += W)
        mv = vmax(mv, load(x + i));
    float mx = -INFINITY;
    for (int k = 0; k < W; k++)
        mx = mv[k] > mx ? mv[k] : mx;
    for (; i < n; i++)
        mx = x[i] > mx ? x[i] : mx;
    vf sv = splat(0.0f), m = splat(mx * scale), s = splat(scale);
    for (i = 0; i + W <= n; i += W) {
        vf e = vexp(load(x + i) * s - m);
        store(x + i, e);
        sv += e;
    }
    float sum = 0.0f;
    for (int k = 0; k < W; k++)
        sum += sv[k];
    for (; i < n; i++) {
        float e = vexp(splat(x[i] * scale - mx * scale))[0];
        x[i] = e;
        sum += e;
    }
    vf inv = splat(1.0f / sum);
    for (i = 0; i + W <= n; i += W)
        store(x + i, load(x + i) * inv);
    for (; i < n; i++)
        x[i] *= inv[0];
}

CLONES void asr_nn_gelu_fast(float *x, size_t n) {
    size_t i = 0;
    const vf half = splat(0.5f), one = splat(1.0f), rs2 = splat(0.70710678118654752f);
    for (; i + W <= n; i += W) {
        vf v = load(x + i);
        store(x + i, half * v * (one + verf(v * rs2)));
    }
    if (i < n) {
        float tail[W] = {0};
        memcpy(tail, x + i, (n - i) * sizeof(float));
        vf v = load(tail);
        store(tail, half * v * (one + verf(v * rs2)));
        memcpy(x + i, tail, (n - i) * sizeof(float));
    }
}

CLONES void asr_nn_exp_fast(const float *x, float *y, size_t n) {
    size_t i = 0;
    for (; i + W <= n; i += W)
        store(y + i, vexp(load(x + i)));
    for (; i < n; i++)
        y[i] = vexp(splat(x[i]))[0];
}

/* ---- small-m GEMM: the decoder's shapes (1..8 rows), memory-bound on the weights ---- */

INLINE float hsum(vf v) {
    float s = 0.0f;
    for (int i = 0; i < W; i++)
        s += v[i];
    return s;
}

/* c[i][j] = a[i]·w[j] (+ bias[j]) for j in [j0, j1), i < m <= ASR_NN_SMALL_M. Each weight row is
 * read once for all m rows. */
CLONES void asr__nn_linear_rows(const float *a, int lda, const float *w, int ldw,
                                const float *bias, float *c, int ldc, int m, int j0, int j1,
                                int k) {
    const int kv = k / W * W;
    for (int j = j0; j < j1; j++) {
        const float *wj = w + (size_t)j * ldw;
        vf acc[ASR_NN_SMALL_M];
        for (int i = 0; i < m; i++)
            acc[i] = splat(0.0f);
        for (int t = 0; t < kv; t += W) {
            vf wv = load(wj + t);
            for (int i = 0; i < m; i++)
                acc[i] += wv * load(a + (size_t)i * lda + t);
        }
        for (int i = 0; i < m; i++) {
            float sum = hsum(acc[i]);
            const float *ai = a + (size_t)i * lda;
            for (int t = kv; t < k; t++)
                sum += ai[t] * wj[t];
            c[(size_t)i * ldc + j] = sum + (bias ? bias[j] : 0.0f);
        }
    }
}

/* c[i][:] = sum_j p[i][j] · v[j][:] for i < m, n columns, ctx rows of v. */
CLONES void asr_nn_gemm_nn_small(const float *p, int ldp, const float *v, int ldv, float *c,
                                 int ldc, int m, int n, int ctx) {
    const int nv = n / W * W;
    for (int i = 0; i < m; i++) {
        const float *pi = p + (size_t)i * ldp;
        float *ci = c + (size_t)i * ldc;
        for (int t = 0; t < nv; t += W) {
            vf acc = splat(0.0f);
            for (int j = 0; j < ctx; j++)
                acc += splat(pi[j]) * load(v + (size_t)j * ldv + t);
            store(ci + t, acc);
        }
        for (int t = nv; t < n; t++) {
            float acc = 0.0f;
            for (int j = 0; j < ctx; j++)
                acc += pi[j] * v[(size_t)j * ldv + t];
            ci[t] = acc;
        }
    }
}
