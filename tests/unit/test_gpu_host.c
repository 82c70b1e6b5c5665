/* Unit tests: the host reference device (src/gpu/host_dev.c) against naive loops written here
 * with double accumulation, on shapes with tails (rows 1, 3, 17, 70; widths not multiples of 8;
 * T = 37 and more than one 64-row query block), every weight type, the linear flags, decoder rows
 * of several streams with shared prompts and layer offsets; the arenas; the sticky error.
 *
 * Tolerances (absolute, float32 arithmetic against double):
 *   linear            2e-5·(1 + Σ|a·w|): float32 sums of k products; GELU adds the vectorised
 *                     erf's 2e-6·(1+|x|) (test_nn)
 *   layer norm        1e-4 (outputs O(|gamma|·3), variances from double sums)
 *   attention         2e-5: outputs are convex combinations of values in [-1, 1]; the scores
 *                     are float32 dot products of dh terms and the exp is the vectorised one
 *                     (relative 1e-6)
 *   cross scores      1e-5·(1 + Σ|q·k|·scale)
 *   add, add_pos, im2col, kv_append, embed, conversions: exact. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpu/dev.h"
#include "nn/nn.h"

static float frand(unsigned *seed) {
    *seed = *seed * 1103515245u + 12345u;
    return ((float)((*seed >> 8) & 0xffff) / 32768.0f) - 1.0f;
}

static float *frand_n(unsigned *seed, size_t n, float mul) {
    float *p = malloc(n * sizeof(float) + 1);
    for (size_t i = 0; i < n; i++)
        p[i] = frand(seed) * mul;
    return p;
}

static asr_dev_t *open_host(void) {
    asr_dev_t *d = NULL;
    char err[256] = "";
    assert_int_equal(asr_dev_open(ASR_DEV_HOST, 0, &d, err, sizeof err), ASR_OK);
    assert_non_null(d);
    return d;
}

static void expect_ok(asr_dev_t *d) {
    char err[256] = "";
    asr_err_t rc = asr_dev_sync(d, err, sizeof err);
    if (rc != ASR_OK)
        fail_msg("device error: %s", err);
}

static uint16_t bf16_round(float f) { /* round to nearest even (no NaN here) */
    uint32_t b;
    memcpy(&b, &f, sizeof b);
    uint32_t lsb = (b >> 16) & 1u;
    return (uint16_t)((b + 0x7fffu + lsb) >> 16);
}

/* weights [n][ld] of type from float32 values; *deq: the float32 values the type holds */
typedef struct {
    asr_dev_w_t w;
    void *data;
    float *scale, *deq; /* deq: [n][k] */
} tw_t;

static tw_t make_w(unsigned *seed, asr_dtype_t type, int n, int k, int ld) {
    tw_t t = {0};
    t.deq = malloc(sizeof(float) * n * k);
    t.data = malloc((size_t)n * ld * 4);
    if (type == ASR_DT_I8)
        t.scale = malloc(sizeof(float) * n);
    for (int j = 0; j < n; j++) {
        if (t.scale)
            t.scale[j] = (0.5f + 0.5f * frand(seed)) / 127.0f;
        for (int c = 0; c < ld; c++) {
            float v = frand(seed);
            float dq = 0;
            size_t o = (size_t)j * ld + c;
            switch (type) {
            case ASR_DT_F32:
                ((float *)t.data)[o] = v, dq = v;
                break;
            case ASR_DT_F16:
                ((uint16_t *)t.data)[o] = asr_nn_f32_to_f16(v);
                dq = asr_nn_f16_to_f32(((uint16_t *)t.data)[o]);
                break;
            case ASR_DT_BF16:
                ((uint16_t *)t.data)[o] = bf16_round(v);
                dq = asr_nn_bf16_to_f32(((uint16_t *)t.data)[o]);
                break;
            case ASR_DT_I8: {
                int q = (int)lrintf(v * 127.0f);
                ((int8_t *)t.data)[o] = (int8_t)q;
                dq = t.scale[j] * (float)q;
                break;
            }
            }
            if (c < k)
                t.deq[(size_t)j * k + c] = dq;
        }
    }
    t.w = (asr_dev_w_t){type, t.data, t.scale, ld};
    return t;
}

static void free_w(tw_t *t) { free(t->data), free(t->scale), free(t->deq); }

/* ---- linear ---- */
static void check_linear(asr_dev_t *d, unsigned *seed, asr_dtype_t wt, int m, int n, int k,
                         int flags, bool bias_on) {
    int lda = k + 3, ldc = n + 5, ldw = k + (wt == ASR_DT_F32 ? 0 : 2);
    float *a = frand_n(seed, (size_t)m * lda, 1.0f);
    float *bias = bias_on ? frand_n(seed, (size_t)n, 1.0f) : NULL;
    float *c = frand_n(seed, (size_t)m * ldc, 1.0f), *c0 = malloc(sizeof(float) * m * ldc);
    memcpy(c0, c, sizeof(float) * m * ldc);
    tw_t w = make_w(seed, wt, n, k, ldw);
    size_t scr_bytes = (size_t)n * k * 2;
    void *scr = asr_dev_malloc(d, scr_bytes);
    asr_dev_set_scratch(d, scr, scr_bytes);
    asr_dev_linear(d, ASR_DT_F32, a, lda, &w.w, bias, ASR_DT_F32, c, ldc, m, n, k, flags);
    expect_ok(d);
    double max_err = 0;
    for (int i = 0; i < m; i++) {
        for (int j = 0; j < ldc; j++) {
            float got = c[(size_t)i * ldc + j];
            if (j >= n) { /* padding untouched */
                assert_true(got == c0[(size_t)i * ldc + j]);
                continue;
            }
            double ref = bias ? bias[j] : 0.0, mag = 1.0;
            for (int t = 0; t < k; t++) {
                double p = (double)a[(size_t)i * lda + t] * w.deq[(size_t)j * k + t];
                ref += p, mag += fabs(p);
            }
            if (flags & ASR_LIN_GELU)
                ref = 0.5 * ref * (1.0 + erf(ref / sqrt(2.0)));
            if (flags & ASR_LIN_ACCUM)
                ref += c0[(size_t)i * ldc + j];
            double e = fabs(ref - got), tol = 2e-5 * mag;
            if (e > tol)
                fail_msg("linear %s m=%d n=%d k=%d flags=%d: c[%d][%d]=%g, expected %g",
                         asr_dtype_name(wt), m, n, k, flags, i, j, got, ref);
            max_err = fmax(max_err, e);
        }
    }
    asr_dev_set_scratch(d, NULL, 0);
    asr_dev_free(d, scr);
    free_w(&w);
    free(a), free(bias), free(c), free(c0);
}

static void test_linear(void **state) {
    (void)state;
    asr_dev_t *d = open_host();
    unsigned seed = 11;
    /* 1, 3, 8: nn's small-row kernels; 17: column blocks; 70: the row-split BLAS path (F32) and
     * more than one weight block (n > 64) */
    static const int shapes[][3] = {{1, 29, 53},   {3, 70, 37},  {8, 9, 16},
                                    {17, 131, 67}, {70, 45, 83}, {1, 200, 8}};
    asr_dtype_t types[] = {ASR_DT_F32, ASR_DT_F16, ASR_DT_BF16, ASR_DT_I8};
    for (int ti = 0; ti < 4; ti++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            for (int f = 0; f < 3; f++) {
                int flags = f == 0 ? 0 : f == 1 ? ASR_LIN_GELU : ASR_LIN_ACCUM;
                check_linear(d, &seed, types[ti], shapes[s][0], shapes[s][1], shapes[s][2], flags,
                             (s + f) % 2 == 0);
            }
    asr_dev_close(d);
}

/* ---- element-wise ---- */
static void test_layer_norm_add(void **state) {
    (void)state;
    asr_dev_t *d = open_host();
    unsigned seed = 5;
    static const int shapes[][2] = {{1, 37}, {3, 384}, {70, 45}};
    for (int s = 0; s < 3; s++) {
        int rows = shapes[s][0], dim = shapes[s][1];
        float *x = frand_n(&seed, (size_t)rows * dim, 3.0f),
              *o = malloc(sizeof(float) * rows * dim);
        float *g = frand_n(&seed, (size_t)dim, 1.0f), *b = frand_n(&seed, (size_t)dim, 1.0f);
        for (int i = 0; i < rows * dim; i++)
            x[i] += 0.5f;
        for (int inplace = 0; inplace < 2; inplace++) {
            float *xx = malloc(sizeof(float) * rows * dim);
            memcpy(xx, x, sizeof(float) * rows * dim);
            float *dst = inplace ? xx : o;
            asr_dev_layer_norm(d, ASR_DT_F32, xx, dst, rows, dim, g, b, 1e-5f);
            expect_ok(d);
            for (int r = 0; r < rows; r++) {
                double mean = 0, var = 0;
                for (int i = 0; i < dim; i++)
                    mean += x[r * dim + i];
                mean /= dim;
                for (int i = 0; i < dim; i++)
                    var += (x[r * dim + i] - mean) * (x[r * dim + i] - mean);
                var /= dim;
                for (int i = 0; i < dim; i++) {
                    double ref = (x[r * dim + i] - mean) / sqrt(var + 1e-5) * g[i] + b[i];
                    assert_true(fabs(ref - dst[r * dim + i]) < 1e-4);
                }
            }
            free(xx);
        }
        /* add and add_pos: exact float sums */
        float *y = frand_n(&seed, (size_t)rows * dim, 1.0f),
              *z = malloc(sizeof(float) * rows * dim);
        memcpy(z, x, sizeof(float) * rows * dim);
        asr_dev_add(d, ASR_DT_F32, z, y, (size_t)rows * dim);
        expect_ok(d);
        for (int i = 0; i < rows * dim; i++)
            assert_true(z[i] == x[i] + y[i]);
        memcpy(z, x, sizeof(float) * rows * dim);
        asr_dev_add_pos(d, ASR_DT_F32, z, g, rows, (size_t)dim);
        expect_ok(d);
        for (int r = 0; r < rows; r++)
            for (int i = 0; i < dim; i++)
                assert_true(z[r * dim + i] == x[r * dim + i] + g[i]);
        free(x), free(o), free(g), free(b), free(y), free(z);
    }
    asr_dev_close(d);
}

static void test_convert(void **state) {
    (void)state;
    asr_dev_t *d = open_host();
    unsigned seed = 9;
    const size_t n = 2500; /* more than one 1024-element block, with a tail */
    float *x = frand_n(&seed, n, 100.0f);
    /* edge values: ties for bfloat16 (1 + 2^-8 rounds to 1; 1 + 3·2^-8 rounds up to even),
     * float16 overflow, subnormals, signed zero, infinity */
    uint32_t bits[] = {0x3f808000u, 0x3f818000u, 0x477ff000u, 0x33800000u,
                       0x80000000u, 0x7f800000u, 0xc77fe000u, 0x387fc000u};
    for (size_t i = 0; i < sizeof bits / sizeof bits[0]; i++)
        memcpy(&x[i], &bits[i], 4);
    uint16_t *h = malloc(2 * n), *b = malloc(2 * n), *h2 = malloc(2 * n), *b2 = malloc(2 * n);
    float *y = malloc(4 * n), *y2 = malloc(4 * n);
    asr_dev_convert(d, ASR_DT_F32, x, ASR_DT_F16, h, n);
    asr_dev_convert(d, ASR_DT_F32, x, ASR_DT_BF16, b, n);
    asr_dev_convert(d, ASR_DT_F16, h, ASR_DT_F32, y, n);
    asr_dev_convert(d, ASR_DT_BF16, b, ASR_DT_F32, y2, n);
    asr_dev_convert(d, ASR_DT_F16, h, ASR_DT_BF16, b2, n);
    asr_dev_convert(d, ASR_DT_BF16, b, ASR_DT_F16, h2, n);
    expect_ok(d);
    assert_int_equal(b[0], 0x3f80);
    assert_int_equal(b[1], 0x3f82);
    assert_int_equal(h[2], 0x7c00); /* rounds to 65520: overflow to inf */
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(h[i], asr_nn_f32_to_f16(x[i]));
        if (i >= 2)
            assert_int_equal(b[i], bf16_round(x[i]));
        float fh = asr_nn_f16_to_f32(h[i]), fb = asr_nn_bf16_to_f32(b[i]);
        assert_memory_equal(&y[i], &fh, 4);
        assert_memory_equal(&y2[i], &fb, 4);
        assert_int_equal(b2[i], bf16_round(fh));
        assert_int_equal(h2[i], asr_nn_f32_to_f16(fb));
    }
    /* same type: a copy */
    asr_dev_convert(d, ASR_DT_F16, h, ASR_DT_F16, h2, n);
    expect_ok(d);
    assert_memory_equal(h, h2, 2 * n);
    /* int8 is not an activation type */
    asr_dev_convert(d, ASR_DT_F32, x, ASR_DT_I8, h2, n);
    char err[256] = "";
    assert_int_equal(asr_dev_sync(d, err, sizeof err), ASR_ERR_GPU);
    assert_non_null(strstr(err, "int8"));
    free(x), free(h), free(b), free(h2), free(b2), free(y), free(y2);
    asr_dev_close(d);
}

static void test_im2col_embed(void **state) {
    (void)state;
    asr_dev_t *d = open_host();
    unsigned seed = 3;
    const int B = 2, nm = 5, T = 7;
    float *mel = frand_n(&seed, (size_t)B * nm * T, 1.0f),
          *cols = malloc(sizeof(float) * B * T * nm * 3);
    asr_dev_im2col_mel(d, ASR_DT_F32, mel, B, nm, T, cols);
    expect_ok(d);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int c = 0; c < nm; c++)
                for (int k = 0; k < 3; k++) {
                    int s = t + k - 1;
                    float ref = s < 0 || s >= T ? 0.0f : mel[((size_t)b * nm + c) * T + s];
                    assert_true(cols[(((size_t)b * T + t) * nm + c) * 3 + k] == ref);
                }
    for (int T_in = 8; T_in <= 9; T_in++) { /* even and odd: T_in/2 output rows */
        const int C = 6, To = T_in / 2;
        float *x = frand_n(&seed, (size_t)B * T_in * C, 1.0f);
        float *o = malloc(sizeof(float) * (B * To * C * 3 + 1));
        o[B * To * C * 3] = 42.0f; /* nothing past T_in/2 rows */
        asr_dev_im2col_s2(d, ASR_DT_F32, x, B, T_in, C, o);
        expect_ok(d);
        for (int b = 0; b < B; b++)
            for (int t = 0; t < To; t++)
                for (int c = 0; c < C; c++)
                    for (int k = 0; k < 3; k++) {
                        int s = 2 * t + k - 1;
                        float ref = s < 0 || s >= T_in ? 0.0f : x[((size_t)b * T_in + s) * C + c];
                        assert_true(o[(((size_t)b * To + t) * C + c) * 3 + k] == ref);
                    }
        assert_true(o[B * To * C * 3] == 42.0f);
        free(x), free(o);
    }
    /* embed: every embedding type, ld > dim */
    const int n_vocab = 23, dim = 19, n_ctx = 11, n = 9;
    float *pos = frand_n(&seed, (size_t)n_ctx * dim, 1.0f);
    int32_t tok[9], posi[9];
    for (int i = 0; i < n; i++)
        tok[i] = (i * 7 + 3) % n_vocab, posi[i] = (i * 5 + 1) % n_ctx;
    asr_dtype_t types[] = {ASR_DT_F32, ASR_DT_F16, ASR_DT_BF16};
    for (int ti = 0; ti < 3; ti++) {
        tw_t w = make_w(&seed, types[ti], n_vocab, dim, dim + 4);
        float *x = malloc(sizeof(float) * n * dim);
        asr_dev_embed(d, ASR_DT_F32, &w.w, pos, tok, posi, n, dim, x);
        expect_ok(d);
        for (int i = 0; i < n; i++)
            for (int c = 0; c < dim; c++)
                assert_true(x[i * dim + c] ==
                            w.deq[(size_t)tok[i] * dim + c] + pos[(size_t)posi[i] * dim + c]);
        free(x);
        free_w(&w);
    }
    free(pos), free(mel), free(cols);
    asr_dev_close(d);
}

/* ---- attention ---- */
/* softmax(scale·q·k_j) weighted sum of v_j in double, over cnt positions whose k/v rows are
 * given by the callback-free arrays kp[j], vp[j] */
static void ref_attn(const float *q, const float *const *kp, const float *const *vp, int cnt,
                     int dh, float scale, double *out) {
    double *s = malloc(sizeof(double) * cnt), mx = -INFINITY, sum = 0;
    for (int j = 0; j < cnt; j++) {
        double acc = 0;
        for (int c = 0; c < dh; c++)
            acc += (double)q[c] * kp[j][c];
        s[j] = acc * scale;
        mx = fmax(mx, s[j]);
    }
    for (int j = 0; j < cnt; j++)
        sum += (s[j] = exp(s[j] - mx));
    for (int c = 0; c < dh; c++) {
        double acc = 0;
        for (int j = 0; j < cnt; j++)
            acc += s[j] / sum * vp[j][c];
        out[c] = acc;
    }
    free(s);
}

static void check_attn_full(asr_dev_t *d, unsigned *seed, int B, int T, int Hh, int dh) {
    int dim = Hh * dh;
    float scale = 1.0f / sqrtf((float)dh) * 2.0f; /* sharper than uniform */
    float *qkv = frand_n(seed, (size_t)B * T * 3 * dim, 1.0f);
    float *out = malloc(sizeof(float) * B * T * dim);
    asr_dev_attn_full(d, ASR_DT_F32, qkv, out, B, T, Hh, dh, scale);
    expect_ok(d);
    const float **kp = malloc(sizeof(float *) * T), **vp = malloc(sizeof(float *) * T);
    double *ref = malloc(sizeof(double) * dh), max_err = 0;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < Hh; h++) {
            const float *base = qkv + (size_t)b * T * 3 * dim + h * dh;
            for (int j = 0; j < T; j++)
                kp[j] = base + (size_t)j * 3 * dim + dim,
                vp[j] = base + (size_t)j * 3 * dim + 2 * dim;
            for (int i = 0; i < T; i++) {
                ref_attn(base + (size_t)i * 3 * dim, kp, vp, T, dh, scale, ref);
                for (int c = 0; c < dh; c++)
                    max_err =
                        fmax(max_err, fabs(ref[c] - out[((size_t)b * T + i) * dim + h * dh + c]));
            }
        }
    if (max_err > 2e-5)
        fail_msg("attn_full B=%d T=%d H=%d dh=%d: max error %g", B, T, Hh, dh, max_err);
    free(kp), free(vp), free(ref), free(qkv), free(out);
}

static void test_attn_full(void **state) {
    (void)state;
    asr_dev_t *d = open_host();
    unsigned seed = 21;
    check_attn_full(d, &seed, 2, 37, 3, 20);
    check_attn_full(d, &seed, 1, 1, 2, 8);
    check_attn_full(d, &seed, 1, 130, 2, 64); /* three query blocks, the last of 2 rows */
    asr_dev_close(d);
}

/* Three streams (prompts of 0, 5 and 13 positions), two sequences each, two layers: rows point to
 * their sequence's caches and their stream's prompt; kv_append then attn_self at layer 0 and 1. */
typedef struct {
    float *ks, *vs; /* [L][n_ctx][dim] shared prompt */
    float *xk, *xv; /* [L][n_audio][ldx] */
} stream_t;

static void test_decoder_self(void **state) {
    (void)state;
    asr_dev_t *d = open_host();
    unsigned seed = 33;
    const int Hh = 3, dh = 12, dim = Hh * dh, n_ctx = 48, L = 2, n = 8;
    const size_t lstride = (size_t)n_ctx * dim;
    const int shared_of[3] = {0, 5, 13};
    stream_t st[3];
    for (int s = 0; s < 3; s++) {
        st[s].ks = frand_n(&seed, L * lstride, 1.0f);
        st[s].vs = frand_n(&seed, L * lstride, 1.0f);
    }
    float *kc[6], *vc[6];
    for (int q = 0; q < 6; q++) {
        kc[q] = frand_n(&seed, L * lstride, 1.0f);
        vc[q] = frand_n(&seed, L * lstride, 1.0f);
        /* positions a row reads from its prompt: poison them in its own cache */
        int sh = shared_of[q / 2];
        for (int l = 0; l < L; l++)
            for (size_t e = 0; e < (size_t)sh * dim; e++)
                kc[q][l * lstride + e] = 50.0f, vc[q][l * lstride + e] = 1e3f;
    }
    /* row -> sequence; lens: 1 (no prompt), prompt+1, long ones, the whole context */
    const int seq_of[8] = {0, 2, 3, 1, 4, 5, 4, 1};
    const int len_of[8] = {1, 6, 14, 37, 20, 48, 15, 0}; /* 0: a padding row */
    asr_dev_row_t rows[8];
    for (int i = 0; i < n; i++) {
        int q = seq_of[i], s = q / 2;
        int sh = shared_of[s] < len_of[i] ? shared_of[s] : 0;
        rows[i] = (asr_dev_row_t){.k = kc[q],
                                  .v = vc[q],
                                  .ks = sh ? st[s].ks : NULL,
                                  .vs = sh ? st[s].vs : NULL,
                                  .shared = sh,
                                  .len = len_of[i]};
    }
    /* rows 4 and 6 are the same sequence at different lengths (a prompt block's tokens) */
    const int ldq = 3 * dim + 5;
    float *qkv = frand_n(&seed, (size_t)n * ldq, 1.0f),
          *out = malloc(sizeof(float) * n * (dim + 3));
    const int ldo = dim + 3;
    const float scale = 0.4f;
    for (int l = 0; l < L; l++) {
        size_t off = l * lstride;
        float *kexp[6], *vexp[6];
        for (int q = 0; q < 6; q++) {
            kexp[q] = malloc(sizeof(float) * L * lstride),
            vexp[q] = malloc(sizeof(float) * L * lstride);
            memcpy(kexp[q], kc[q], sizeof(float) * L * lstride);
            memcpy(vexp[q], vc[q], sizeof(float) * L * lstride);
        }
        for (int i = 0; i < n && len_of[i] > 0; i++) {
            size_t o = off + (size_t)(len_of[i] - 1) * dim;
            memcpy(kexp[seq_of[i]] + o, qkv + (size_t)i * ldq + dim, sizeof(float) * dim);
            memcpy(vexp[seq_of[i]] + o, qkv + (size_t)i * ldq + 2 * dim, sizeof(float) * dim);
        }
        asr_dev_kv_append(d, ASR_DT_F32, qkv, ldq, rows, n, dim, off);
        expect_ok(d);
        for (int q = 0; q < 6; q++) {
            assert_memory_equal(kc[q], kexp[q], sizeof(float) * L * lstride);
            assert_memory_equal(vc[q], vexp[q], sizeof(float) * L * lstride);
            free(kexp[q]), free(vexp[q]);
        }
        for (int e = 0; e < n * ldo; e++)
            out[e] = 7.0f; /* the padding row must come back as zeros */
        asr_dev_attn_self(d, ASR_DT_F32, qkv, ldq, rows, n, Hh, dh, off, scale, out, ldo);
        expect_ok(d);
        double max_err = 0, ref[12];
        const float *kp[48], *vp[48];
        for (int i = 0; i < n; i++)
            for (int h = 0; h < Hh; h++) {
                const asr_dev_row_t *r = &rows[i];
                for (int j = 0; j < r->len; j++) {
                    const float *kb = j < r->shared ? r->ks : r->k,
                                *vb = j < r->shared ? r->vs : r->v;
                    kp[j] = kb + off + (size_t)j * dim + h * dh;
                    vp[j] = vb + off + (size_t)j * dim + h * dh;
                }
                ref_attn(qkv + (size_t)i * ldq + h * dh, kp, vp, r->len, dh, scale, ref);
                for (int c = 0; c < dh; c++)
                    max_err = fmax(max_err, fabs(ref[c] - out[(size_t)i * ldo + h * dh + c]));
            }
        if (max_err > 2e-5)
            fail_msg("attn_self layer %d: max error %g", l, max_err);
    }
    for (int s = 0; s < 3; s++)
        free(st[s].ks), free(st[s].vs);
    for (int q = 0; q < 6; q++)
        free(kc[q]), free(vc[q]);
    free(qkv), free(out);
    asr_dev_close(d);
}

/* Cross-attention: rows of three streams interleaved, and a run of 35 rows of one stream (more
 * than one 32-row block); K/V rows of ldx > dim at a layer offset. */
static void check_cross(asr_dev_t *d, unsigned *seed, int n_audio) {
    const int Hh = 2, dh = 24, dim = Hh * dh, L = 2, ldx = 2 * dim + 7, n = 42;
    const size_t lstride = (size_t)n_audio * ldx;
    stream_t st[3];
    for (int s = 0; s < 3; s++) {
        st[s].xk = frand_n(seed, L * lstride, 1.0f);
        st[s].xv = frand_n(seed, L * lstride, 1.0f);
    }
    asr_dev_row_t rows[42];
    int str[42];
    for (int i = 0; i < n; i++) {
        str[i] = i < 7 ? (int[]){0, 0, 1, 0, 2, 2, 1}[i] : 2;
        rows[i] = (asr_dev_row_t){.xk = st[str[i]].xk, .xv = st[str[i]].xv, .len = 1};
    }
    const int ldq = dim + 9, ldo = dim + 1;
    const float scale = 0.3f;
    float *q = frand_n(seed, (size_t)n * ldq, 1.0f), *out = malloc(sizeof(float) * n * ldo);
    float *sc = malloc(sizeof(float) * n * n_audio);
    const float **kp = malloc(sizeof(float *) * n_audio), **vp = malloc(sizeof(float *) * n_audio);
    double ref[24];
    for (int l = 0; l < L; l++) {
        size_t off = l * lstride;
        asr_dev_attn_cross(d, ASR_DT_F32, q, ldq, rows, n, Hh, dh, n_audio, ldx, off, scale, out,
                           ldo);
        expect_ok(d);
        double max_err = 0, max_serr = 0;
        for (int i = 0; i < n; i++)
            for (int h = 0; h < Hh; h++) {
                for (int j = 0; j < n_audio; j++) {
                    kp[j] = st[str[i]].xk + off + (size_t)j * ldx + h * dh;
                    vp[j] = st[str[i]].xv + off + (size_t)j * ldx + h * dh;
                }
                ref_attn(q + (size_t)i * ldq + h * dh, kp, vp, n_audio, dh, scale, ref);
                for (int c = 0; c < dh; c++)
                    max_err = fmax(max_err, fabs(ref[c] - out[(size_t)i * ldo + h * dh + c]));
            }
        if (max_err > 2e-5)
            fail_msg("attn_cross n_audio=%d layer %d: max error %g", n_audio, l, max_err);
        const int h = 1;
        asr_dev_attn_cross_scores(d, ASR_DT_F32, q, ldq, rows, n, h, dh, n_audio, ldx, off, scale,
                                  sc);
        expect_ok(d);
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n_audio; j++) {
                const float *k = st[str[i]].xk + off + (size_t)j * ldx + h * dh;
                double acc = 0, mag = 0;
                for (int c = 0; c < dh; c++) {
                    double p = (double)q[(size_t)i * ldq + h * dh + c] * k[c];
                    acc += p, mag += fabs(p);
                }
                double e = fabs(acc * scale - sc[(size_t)i * n_audio + j]);
                if (e > 1e-5 * (1 + mag * scale))
                    fail_msg("cross_scores [%d][%d]: %g, expected %g", i, j,
                             sc[(size_t)i * n_audio + j], acc * scale);
                max_serr = fmax(max_serr, e);
            }
    }
    for (int s = 0; s < 3; s++)
        free(st[s].xk), free(st[s].xv);
    free(q), free(out), free(sc), free(kp), free(vp);
}

static void test_decoder_cross(void **state) {
    (void)state;
    asr_dev_t *d = open_host();
    unsigned seed = 44;
    check_cross(d, &seed, 37);
    check_cross(d, &seed, 1500);
    asr_dev_close(d);
}

/* ---- device, memory, arenas, errors ---- */
static void test_device_memory(void **state) {
    (void)state;
    asr_dev_t *d = open_host();
    const asr_dev_info_t *info = asr_dev_info(d);
    assert_int_equal(info->kind, ASR_DEV_HOST);
    assert_string_equal(info->name, "host reference");
    assert_true(info->n_sm >= 1);
    size_t fr = 0, tot = 0;
    assert_int_equal(asr_dev_mem_info(d, &fr, &tot), ASR_OK);
    assert_true(tot > 0 && fr > 0 && fr <= tot);
    assert_int_equal(asr_dev_bind(d), ASR_OK);
    unsigned char *p = asr_dev_malloc(d, 1000), *q = asr_dev_malloc(d, 1000);
    unsigned char *hb = asr_dev_host_malloc(d, 1000);
    assert_non_null(p);
    assert_non_null(hb);
    assert_int_equal((uintptr_t)p % 256, 0);
    for (int i = 0; i < 1000; i++)
        hb[i] = (unsigned char)(i * 7);
    asr_dev_h2d(d, p, hb, 1000);
    asr_dev_d2d(d, q, p, 1000);
    asr_dev_memset0(d, p + 10, 20);
    memset(hb, 0xee, 1000);
    asr_dev_d2h(d, hb, q, 1000);
    expect_ok(d);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(hb[i], (unsigned char)(i * 7));
    asr_dev_d2h(d, hb, p, 1000);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(hb[i], i >= 10 && i < 30 ? 0 : (unsigned char)(i * 7));
    asr_dev_free(d, p), asr_dev_free(d, q), asr_dev_host_free(d, hb);
    asr_dev_free(d, NULL);

    /* arenas */
    assert_int_equal(asr_dev_arena_round(0), 0);
    assert_int_equal(asr_dev_arena_round(1), 256);
    assert_int_equal(asr_dev_arena_round(256), 256);
    assert_int_equal(asr_dev_arena_round(257), 512);
    asr_dev_arena_t a;
    assert_int_equal(asr_dev_arena_init(d, &a, 1024), ASR_OK);
    unsigned char *a1 = asr_dev_arena_take(&a, 10), *a2 = asr_dev_arena_take(&a, 300);
    assert_non_null(a1);
    assert_ptr_equal(a2, a1 + 256);
    assert_int_equal((uintptr_t)a2 % 256, 0);
    assert_int_equal(a.used, 768);
    assert_null(asr_dev_arena_take(&a, 257)); /* 512 > 256 left */
    unsigned char *a3 = asr_dev_arena_take(&a, 256);
    assert_ptr_equal(a3, a1 + 768);
    assert_null(asr_dev_arena_take(&a, 1));
    memset(a1, 1, 1024); /* the whole block is usable */
    asr_dev_arena_release(d, &a);
    assert_null(a.base);
    assert_int_equal(a.size, 0);
    assert_int_equal(asr_dev_arena_init(d, &a, 0), ASR_OK);
    assert_null(asr_dev_arena_take(&a, 1));
    asr_dev_arena_release(d, &a);
    expect_ok(d);
    asr_dev_close(d);
}

static void test_sticky_error(void **state) {
    (void)state;
    asr_dev_t *d = open_host();
    char err[256] = "";
    float x[16] = {1, 2, 3}, g[16] = {1}, b[16] = {0};
    assert_int_equal(asr_dev_error(d, err, sizeof err), ASR_OK);
    asr_dev_layer_norm(d, ASR_DT_F16, x, x, 1, 16, g, b, 1e-5f);
    assert_int_equal(asr_dev_error(d, err, sizeof err), ASR_ERR_GPU);
    /* the first failure sticks: a later one does not replace the message */
    asr_dev_add(d, ASR_DT_BF16, x, x, 16);
    memset(err, 0, sizeof err);
    assert_int_equal(asr_dev_sync(d, err, sizeof err), ASR_ERR_GPU);
    assert_non_null(strstr(err, "float16"));
    assert_non_null(strstr(err, "layer_norm"));
    assert_null(strstr(err, "bfloat16"));
    assert_true(x[0] == 1.0f); /* nothing ran */
    asr_dev_close(d);

    /* linear: GELU with ACCUM, int8 without scratch, float16 activations */
    unsigned seed = 1;
    tw_t w = make_w(&seed, ASR_DT_I8, 4, 4, 4);
    float a[16] = {0}, c[16] = {0};
    d = open_host();
    asr_dev_linear(d, ASR_DT_F32, a, 4, &w.w, NULL, ASR_DT_F32, c, 4, 4, 4, 4,
                   ASR_LIN_GELU | ASR_LIN_ACCUM);
    assert_int_equal(asr_dev_sync(d, err, sizeof err), ASR_ERR_GPU);
    assert_non_null(strstr(err, "GELU"));
    asr_dev_close(d);
    d = open_host();
    asr_dev_linear(d, ASR_DT_F32, a, 4, &w.w, NULL, ASR_DT_F32, c, 4, 4, 4, 4, 0);
    assert_int_equal(asr_dev_sync(d, err, sizeof err), ASR_ERR_GPU);
    assert_non_null(strstr(err, "scratch"));
    asr_dev_close(d);
    d = open_host();
    tw_t wf = make_w(&seed, ASR_DT_F32, 4, 4, 4);
    asr_dev_linear(d, ASR_DT_F16, a, 4, &wf.w, NULL, ASR_DT_F16, c, 4, 4, 4, 4, 0);
    assert_int_equal(asr_dev_sync(d, err, sizeof err), ASR_ERR_GPU);
    assert_non_null(strstr(err, "float16"));
    asr_dev_close(d);
    free_w(&w), free_w(&wf);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_linear),        cmocka_unit_test(test_layer_norm_add),
        cmocka_unit_test(test_convert),       cmocka_unit_test(test_im2col_embed),
        cmocka_unit_test(test_attn_full),     cmocka_unit_test(test_decoder_self),
        cmocka_unit_test(test_decoder_cross), cmocka_unit_test(test_device_memory),
        cmocka_unit_test(test_sticky_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
