/* nn: the bodies of the vectorised kernels (vmath.c includes this once per instruction set;
 * KFN(name) and H(name) give each copy its own names). Not a header of its own: no guard. */

INLINE vf H(splat)(float x) { return (vf){0} + x; }

/* m ? a : b per lane (m from a vector comparison: all ones or zero) */
INLINE vf H(vsel)(vi m, vf a, vf b) {
    vi ia, ib;
    memcpy(&ia, &a, sizeof ia);
    memcpy(&ib, &b, sizeof ib);
    vi r = (m & ia) | (~m & ib);
    vf out;
    memcpy(&out, &r, sizeof out);
    return out;
}
INLINE vf H(vmax)(vf a, vf b) { return H(vsel)(a > b, a, b); }
INLINE vf H(vmin)(vf a, vf b) { return H(vsel)(a < b, a, b); }

INLINE vf H(vexp)(vf x) {
    x = H(vmin)(H(vmax)(x, H(splat)(-87.3f)), H(splat)(88.7f));
    const vf magic = H(splat)(12582912.0f); /* 1.5·2^23: adding it rounds to an integer */
    vf n = (x * H(splat)(1.44269504088896341f) + magic) - magic;
    vf r = x - n * H(splat)(0.693359375f) - n * H(splat)(-2.12194440e-4f);
    vf p = H(splat)(1.9875691500e-4f);
    p = p * r + H(splat)(1.3981999507e-3f);
    p = p * r + H(splat)(8.3334519073e-3f);
    p = p * r + H(splat)(4.1665795894e-2f);
    p = p * r + H(splat)(1.6666665459e-1f);
    p = p * r + H(splat)(5.0000001201e-1f);
    vf e = p * r * r + r + H(splat)(1.0f);
    vi k = __builtin_convertvector(n, vi);
    vi bits;
    memcpy(&bits, &e, sizeof bits);
    bits += k << 23;
    memcpy(&e, &bits, sizeof e);
    return e;
}

INLINE vf H(verf)(vf x) {
    vi bits, sign;
    memcpy(&bits, &x, sizeof bits);
    sign = bits & ((vi){0} + (int32_t)0x80000000);
    vf a = H(vsel)(x < H(splat)(0.0f), -x, x);
    vf t = H(splat)(1.0f) / (H(splat)(1.0f) + H(splat)(0.3275911f) * a);
    vf p = H(splat)(1.061405429f);
    p = p * t + H(splat)(-1.453152027f);
    p = p * t + H(splat)(1.421413741f);
    p = p * t + H(splat)(-0.284496736f);
    p = p * t + H(splat)(0.254829592f);
    vf y = H(splat)(1.0f) - p * t * H(vexp)(-a * a);
    memcpy(&bits, &y, sizeof bits);
    bits |= sign;
    memcpy(&y, &bits, sizeof y);
    return y;
}

INLINE vf H(load)(const float *p) {
    vf v;
    memcpy(&v, p, sizeof v);
    return v;
}
INLINE void H(store)(float *p, vf v) { memcpy(p, &v, sizeof v); }

#ifndef VMATH_SERVED_BY_INTRINSICS
INLINE float H(row_max)(const float *x, int n) {
    int i = 0;
    vf mv = H(splat)(-INFINITY);
    for (; i + W <= n; i += W)
        mv = H(vmax)(mv, H(load)(x + i));
    float mx = -INFINITY;
    for (int k = 0; k < W; k++)
        mx = mv[k] > mx ? mv[k] : mx;
    for (; i < n; i++)
        mx = x[i] > mx ? x[i] : mx;
    return mx;
}

static void KFN(asr_nn_softmax_row_fast)(float *x, int n, float scale) {
    int i;
    float mx = H(row_max)(x, n);
    vf sv = H(splat)(0.0f), m = H(splat)(mx * scale), s = H(splat)(scale);
    for (i = 0; i + W <= n; i += W) {
        vf e = H(vexp)(H(load)(x + i) * s - m);
        H(store)(x + i, e);
        sv += e;
    }
    float sum = 0.0f;
    for (int k = 0; k < W; k++)
        sum += sv[k];
    for (; i < n; i++) {
        float e = H(vexp)(H(splat)(x[i] * scale - mx * scale))[0];
        x[i] = e;
        sum += e;
    }
    vf inv = H(splat)(1.0f / sum);
    for (i = 0; i + W <= n; i += W)
        H(store)(x + i, H(load)(x + i) * inv);
    for (; i < n; i++)
        x[i] *= inv[0];
}
#endif

static void KFN(asr_nn_gelu_fast)(float *x, size_t n) {
    size_t i = 0;
    const vf half = H(splat)(0.5f), one = H(splat)(1.0f), rs2 = H(splat)(0.70710678118654752f);
    for (; i + W <= n; i += W) {
        vf v = H(load)(x + i);
        H(store)(x + i, half * v * (one + H(verf)(v * rs2)));
    }
    if (i < n) {
        float tail[W] = {0};
        memcpy(tail, x + i, (n - i) * sizeof(float));
        vf v = H(load)(tail);
        H(store)(tail, half * v * (one + H(verf)(v * rs2)));
        memcpy(x + i, tail, (n - i) * sizeof(float));
    }
}

#ifndef VMATH_SERVED_BY_INTRINSICS
static float KFN(asr_nn_logsumexp)(const float *x, int n) {
    int i;
    float mx = H(row_max)(x, n);
    if (mx == -INFINITY)
        return mx;
    vf sv = H(splat)(0.0f), m = H(splat)(mx);
    for (i = 0; i + W <= n; i += W)
        sv += H(vexp)(H(load)(x + i) - m);
    float sum = 0.0f;
    for (int k = 0; k < W; k++)
        sum += sv[k];
    for (; i < n; i++)
        sum += H(vexp)(H(splat)(x[i] - mx))[0];
    return mx + logf(sum);
}
#endif

static void KFN(asr_nn_exp_fast)(const float *x, float *y, size_t n) {
    size_t i = 0;
    for (; i + W <= n; i += W)
        H(store)(y + i, H(vexp)(H(load)(x + i)));
    for (; i < n; i++)
        y[i] = H(vexp)(H(splat)(x[i]))[0];
}

/* ---- small-m GEMM: the decoder's shapes (1..8 rows), memory-bound on the weights ---- */

INLINE float H(hsum)(vf v) {
    float s = 0.0f;
    for (int i = 0; i < W; i++)
        s += v[i];
    return s;
}

/* ---- float16 weights (the decoder's): converted to float32 as they are read ---- */

#if ASR_HAVE_FLOAT16
INLINE vf H(load_h)(const uint16_t *p) {
    vh h;
    memcpy(&h, p, sizeof h);
    return __builtin_convertvector(h, vf);
}

INLINE float H(h2f)(uint16_t x) {
    _Float16 h;
    memcpy(&h, &x, sizeof h);
    return (float)h;
}
#else /* compilers without _Float16 (clang < 15 on x86): the scalar conversion */
INLINE float H(h2f)(uint16_t x) { return asr_nn_f16_to_f32(x); }

INLINE vf H(load_h)(const uint16_t *p) {
    vf v;
    for (int i = 0; i < W; i++)
        v[i] = asr_nn_f16_to_f32(p[i]);
    return v;
}
#endif

INLINE float H(bf2f)(uint16_t x) { return asr_nn_bf16_to_f32(x); }

INLINE vf H(load_bf)(const uint16_t *p) {
    vi v;
    for (int i = 0; i < W; i++)
        v[i] = (int32_t)((uint32_t)p[i] << 16);
    vf f;
    memcpy(&f, &v, sizeof f);
    return f;
}

#ifndef VMATH_SERVED_BY_INTRINSICS
/* c[i][:] = sum_j p[i][j] · v[j][:] for i < m, n columns, ctx rows of v (float32, or float16
 * when half). */
INLINE void H(gemm_nn_any)(const float *p, int ldp, const void *v, const int half, int ldv,
                           float *c, int ldc, int m, int n, int ctx) {
    const int nv = n / W * W;
    const float *vf32 = v;
    const uint16_t *vh = v;
    for (int i = 0; i < m; i++) {
        const float *pi = p + (size_t)i * ldp;
        float *ci = c + (size_t)i * ldc;
        for (int t = 0; t < nv; t += W) {
            vf acc = H(splat)(0.0f);
            for (int j = 0; j < ctx; j++)
                acc += H(splat)(pi[j]) * (half ? H(load_h)(vh + (size_t)j * ldv + t)
                                               : H(load)(vf32 + (size_t)j * ldv + t));
            H(store)(ci + t, acc);
        }
        for (int t = nv; t < n; t++) {
            float acc = 0.0f;
            for (int j = 0; j < ctx; j++)
                acc += pi[j] * (half ? H(h2f)(vh[(size_t)j * ldv + t]) : vf32[(size_t)j * ldv + t]);
            ci[t] = acc;
        }
    }
}

static void KFN(asr_nn_gemm_nn_small)(const float *p, int ldp, const float *v, int ldv, float *c,
                                      int ldc, int m, int n, int ctx) {
    H(gemm_nn_any)(p, ldp, v, 0, ldv, c, ldc, m, n, ctx);
}

static void KFN(asr_nn_gemm_nn_small_h)(const float *p, int ldp, const uint16_t *v, int ldv,
                                        float *c, int ldc, int m, int n, int ctx) {
    H(gemm_nn_any)(p, ldp, v, 1, ldv, c, ldc, m, n, ctx);
}
#endif

/* c[i][j] = a[i]·w[j] (+ bias[j]) for j in [j0, j1), i < m <= ASR_NN_SMALL_M, with float32,
 * float16 or bfloat16 weights (type, a constant after inlining); each weight row is read once
 * for all m rows. */
INLINE void H(linear_rows_any)(const float *a, int lda, const void *w, const int type, int ldw,
                               const float *bias, float *c, int ldc, int m, int j0, int j1, int k) {
    const int kv = k / W * W;
    const float *wf = w;
    const uint16_t *wh = w;
    for (int j = j0; j < j1; j++) {
        size_t row = (size_t)j * ldw;
        vf acc[ASR_NN_SMALL_M];
        for (int i = 0; i < m; i++)
            acc[i] = H(splat)(0.0f);
        for (int t = 0; t < kv; t += W) {
            vf wv = type == ASR_W_F16    ? H(load_h)(wh + row + t)
                    : type == ASR_W_BF16 ? H(load_bf)(wh + row + t)
                                         : H(load)(wf + row + t);
            for (int i = 0; i < m; i++)
                acc[i] += wv * H(load)(a + (size_t)i * lda + t);
        }
        for (int i = 0; i < m; i++) {
            float sum = H(hsum)(acc[i]);
            const float *ai = a + (size_t)i * lda;
            for (int t = kv; t < k; t++)
                sum += ai[t] * (type == ASR_W_F16    ? H(h2f)(wh[row + t])
                                : type == ASR_W_BF16 ? H(bf2f)(wh[row + t])
                                                     : wf[row + t]);
            c[(size_t)i * ldc + j] = sum + (bias ? bias[j] : 0.0f);
        }
    }
}

#ifndef VMATH_SERVED_BY_INTRINSICS
static void KFN(asr__nn_linear_rows_w)(const float *a, int lda, const asr_wmat_t *w,
                                       const float *bias, float *c, int ldc, int m, int j0, int j1,
                                       int k) {
    switch (w->type) {
    case ASR_W_F16:
        H(linear_rows_any)(a, lda, w->data, ASR_W_F16, w->ld, bias, c, ldc, m, j0, j1, k);
        break;
    case ASR_W_BF16:
        H(linear_rows_any)(a, lda, w->data, ASR_W_BF16, w->ld, bias, c, ldc, m, j0, j1, k);
        break;
    default:
        H(linear_rows_any)(a, lda, w->data, ASR_W_F32, w->ld, bias, c, ldc, m, j0, j1, k);
        break;
    }
}
#endif

#ifndef VMATH_SERVED_BY_INTRINSICS
static void KFN(asr_nn_h2f_n)(const uint16_t *src, float *dst, size_t n) {
    size_t i = 0;
    for (; i + W <= n; i += W)
        H(store)(dst + i, H(load_h)(src + i));
    for (; i < n; i++)
        dst[i] = H(h2f)(src[i]);
}
#endif
