/* fft: mixed-radix (2/3/4/5) self-sorting complex FFT and a real FFT built on it.
 *
 * Complex stage formulation (decimation in time, Stockham). With m = p_1 * ... * p_S, after
 * stage t (L = p_1..p_t, r = m / L) buffer Y holds, for every residue s < r, the L-point DFT of
 * the subsequence z[s + r*u] (u < L) at Y[s + r*k]. Stage t+1 with radix p, L' = L, r' = r / p
 * combines p such DFTs:
 *     Y'[s + r'*(k + L*q)] = sum_j w_p^(j*q) * (w_(p*L)^(j*k) * Y[s + r'*(j + p*k)])
 * for k < L, q < p, s < r'. The innermost loop runs over s with unit stride on both sides and
 * needs no bit reversal; after the last stage (r = 1) Y is the DFT in natural order.
 *
 * Real FFT of length n = 2m: z[u] = x[2u] + i*x[2u+1], Z = DFT_m(z); then with
 * E = (Z[k] + conj(Z[m-k]))/2 (DFT of the evens) and O = -i*(Z[k] - conj(Z[m-k]))/2 (odds),
 * X[k] = E + exp(-2*pi*i*k/n) * O for k = 0..m.
 *
 * Every value below is a vector V holding the same quantity for ASR__FFT_LANES independent
 * signals. Twiddles are stored already broadcast to all lanes, so the hot loops only do vector
 * loads (broadcasting a scalar per use made the compiler bounce values through the stack).
 */
#include "engine/fft.h"

#include <math.h>
#include <stdlib.h>
#include "core/core.h"

#define FFT_MAX_STAGES 32

typedef asr__fftv V;

/* All lanes = x. */
#define SPLAT(x) ((V){0} + (double)(x))

struct asr__fft {
    int n;                      /* real length */
    int m;                      /* complex length n/2 */
    int n_stages;               /* number of radix stages */
    int radix[FFT_MAX_STAGES];  /* radix of each stage, in execution order */
    int tw_off[FFT_MAX_STAGES]; /* offset of each stage's twiddles in tw */
    V *tw;                      /* per stage [L][p-1][re, im]: w_(pL)^(j*k), j = 1..p-1; aligned */
    V *post;                    /* [m+1][re, im]: exp(-2*pi*i*k/n); aligned */
};

/* exp(-2*pi*i*num/den) in double; num is reduced mod den first so the angle stays exact. */
static void unit_root(long num, long den, V *re, V *im) {
    long k = num % den;
    double a = -2.0 * M_PI * (double)k / (double)den;
    *re = SPLAT(cos(a));
    *im = SPLAT(sin(a));
}

asr_err_t asr__fft_create(int n, asr__fft_t **out) {
    *out = NULL;
    if (n < 2 || (n & 1) || n > (1 << 24))
        return ASR_ERR_INVALID;
    asr__fft_t *f = asr_calloc(1, sizeof *f);
    if (!f)
        return ASR_ERR_NOMEM;
    f->n = n;
    f->m = n / 2;

    /* Factor m: radix 4 first (cheapest per point), then 2, 3, 5. */
    int rest = f->m;
    while (rest > 1) {
        int p = rest % 4 == 0 ? 4 : rest % 2 == 0 ? 2 : rest % 3 == 0 ? 3 : rest % 5 == 0 ? 5 : 0;
        if (!p || f->n_stages == FFT_MAX_STAGES) {
            asr__fft_destroy(f);
            return ASR_ERR_INVALID;
        }
        f->radix[f->n_stages++] = p;
        rest /= p;
    }

    size_t n_tw = 0;
    int len = 1;
    for (int t = 0; t < f->n_stages; t++) {
        f->tw_off[t] = (int)n_tw;
        n_tw += 2 * (size_t)len * (size_t)(f->radix[t] - 1);
        len *= f->radix[t];
    }
    f->tw = asr_malloc_aligned((n_tw ? n_tw : 1) * sizeof(V));
    f->post = asr_malloc_aligned(2 * (size_t)(f->m + 1) * sizeof(V));
    if (!f->tw || !f->post) {
        asr__fft_destroy(f);
        return ASR_ERR_NOMEM;
    }

    len = 1;
    for (int t = 0; t < f->n_stages; t++) {
        const int p = f->radix[t];
        V *w = f->tw + f->tw_off[t];
        for (int k = 0; k < len; k++)
            for (int j = 1; j < p; j++) {
                V *dst = w + 2 * (k * (p - 1) + j - 1);
                unit_root((long)j * k, (long)p * len, &dst[0], &dst[1]);
            }
        len *= p;
    }
    for (int k = 0; k <= f->m; k++)
        unit_root(k, n, &f->post[2 * k], &f->post[2 * k + 1]);
    *out = f;
    return ASR_OK;
}

void asr__fft_destroy(asr__fft_t *f) {
    if (!f)
        return;
    asr_free_aligned(f->tw);
    asr_free_aligned(f->post);
    free(f);
}

int asr__fft_len(const asr__fft_t *f) { return f->n; }

/* (ar, ai) = (br, bi) * (wr, wi), complex. */
#define CMUL(ar, ai, br, bi, wr, wi)                                                               \
    do {                                                                                           \
        const V cm_br_ = (br), cm_bi_ = (bi);                                                      \
        ar = cm_br_ * (wr)-cm_bi_ * (wi);                                                          \
        ai = cm_br_ * (wi) + cm_bi_ * (wr);                                                        \
    } while (0)

/* The butterflies: a[0..p) are one butterfly's inputs, the first as is and the others already
 * times their twiddles; output q goes to y[q * rl]. */
#define INLINE static inline __attribute__((always_inline))

INLINE void bfly2(const V *ar, const V *ai, V *yr, V *yi, int rl) {
    yr[0] = ar[0] + ar[1];
    yi[0] = ai[0] + ai[1];
    yr[rl] = ar[0] - ar[1];
    yi[rl] = ai[0] - ai[1];
}

INLINE void bfly3(const V *ar, const V *ai, V *yr, V *yi, int rl) {
    const V h = SPLAT(0.866025403784438646763723); /* sin(2*pi/3) */
    const V half = SPLAT(0.5);
    const V sr = ar[1] + ar[2], si = ai[1] + ai[2], dr = ar[1] - ar[2], di = ai[1] - ai[2];
    const V mr = ar[0] - half * sr, mi = ai[0] - half * si;
    yr[0] = ar[0] + sr;
    yi[0] = ai[0] + si;
    /* y1 = m - i*h*d, y2 = m + i*h*d */
    yr[rl] = mr + h * di;
    yi[rl] = mi - h * dr;
    yr[2 * rl] = mr - h * di;
    yi[2 * rl] = mi + h * dr;
}

INLINE void bfly4(const V *ar, const V *ai, V *yr, V *yi, int rl) {
    const V t0r = ar[0] + ar[2], t0i = ai[0] + ai[2], t1r = ar[0] - ar[2], t1i = ai[0] - ai[2];
    const V t2r = ar[1] + ar[3], t2i = ai[1] + ai[3], t3r = ar[1] - ar[3], t3i = ai[1] - ai[3];
    /* w_4 = -i: y1 = t1 - i*t3, y3 = t1 + i*t3 */
    yr[0] = t0r + t2r;
    yi[0] = t0i + t2i;
    yr[rl] = t1r + t3i;
    yi[rl] = t1i - t3r;
    yr[2 * rl] = t0r - t2r;
    yi[2 * rl] = t0i - t2i;
    yr[3 * rl] = t1r - t3i;
    yi[3 * rl] = t1i + t3r;
}

INLINE void bfly5(const V *ar, const V *ai, V *yr, V *yi, int rl) {
    const V c1 = SPLAT(0.309016994374947424102293);  /* cos(2*pi/5) */
    const V c2 = SPLAT(-0.809016994374947424102293); /* cos(4*pi/5) */
    const V s1 = SPLAT(0.951056516295153572116439);  /* sin(2*pi/5) */
    const V s2 = SPLAT(0.587785252292473129168706);  /* sin(4*pi/5) */
    const V a0r = ar[0], a0i = ai[0];
    const V p1r = ar[1] + ar[4], p1i = ai[1] + ai[4], d1r = ar[1] - ar[4], d1i = ai[1] - ai[4];
    const V p2r = ar[2] + ar[3], p2i = ai[2] + ai[3], d2r = ar[2] - ar[3], d2i = ai[2] - ai[3];
    const V m1r = a0r + c1 * p1r + c2 * p2r, m1i = a0i + c1 * p1i + c2 * p2i;
    const V m2r = a0r + c2 * p1r + c1 * p2r, m2i = a0i + c2 * p1i + c1 * p2i;
    /* u1 = s1*d1 + s2*d2, u2 = s2*d1 - s1*d2; y1,4 = m1 -/+ i*u1, y2,3 = m2 -/+ i*u2 */
    const V u1r = s1 * d1r + s2 * d2r, u1i = s1 * d1i + s2 * d2i;
    const V u2r = s2 * d1r - s1 * d2r, u2i = s2 * d1i - s1 * d2i;
    yr[0] = a0r + p1r + p2r;
    yi[0] = a0i + p1i + p2i;
    yr[rl] = m1r + u1i;
    yi[rl] = m1i - u1r;
    yr[4 * rl] = m1r - u1i;
    yi[4 * rl] = m1i + u1r;
    yr[2 * rl] = m2r + u2i;
    yi[2 * rl] = m2i - u2r;
    yr[3 * rl] = m2r - u2i;
    yi[3 * rl] = m2i + u2r;
}

/* One stage of radix p (a constant once inlined, so the twiddle loop unrolls and the switch
 * goes). len = L (points already combined), r = r' (residues left after this stage), tw = this
 * stage's twiddles, x = input at x[s + r*(j + p*k)], y = output at y[s + r*(k + len*q)]. */
INLINE void stage(const int p, int len, int r, const V *tw, const V *restrict xr,
                  const V *restrict xi, V *restrict yr, V *restrict yi) {
    const int rl = r * len;
    for (int k = 0; k < len; k++) {
        const V *w = tw + 2 * (p - 1) * k;
        const V *x0r = xr + r * p * k, *x0i = xi + r * p * k;
        V *y0r = yr + r * k, *y0i = yi + r * k;
        for (int s = 0; s < r; s++) {
            V ar[5], ai[5];
            ar[0] = x0r[s], ai[0] = x0i[s];
#pragma GCC unroll 4
            for (int j = 1; j < p; j++)
                CMUL(ar[j], ai[j], x0r[s + j * r], x0i[s + j * r], w[2 * j - 2], w[2 * j - 1]);
            switch (p) {
            case 2:
                bfly2(ar, ai, y0r + s, y0i + s, rl);
                break;
            case 3:
                bfly3(ar, ai, y0r + s, y0i + s, rl);
                break;
            case 4:
                bfly4(ar, ai, y0r + s, y0i + s, rl);
                break;
            default:
                bfly5(ar, ai, y0r + s, y0i + s, rl);
                break;
            }
        }
    }
}

void asr__fft_rfftv(const asr__fft_t *f, const V *in, V *out_re, V *out_im, V *work) {
    const int m = f->m;
    V *ar = work, *ai = work + m, *br = work + 2 * m, *bi = work + 3 * m;
    for (int u = 0; u < m; u++) {
        ar[u] = in[2 * u];
        ai[u] = in[2 * u + 1];
    }

    int len = 1;
    for (int t = 0; t < f->n_stages; t++) {
        const int p = f->radix[t];
        const int r = m / (len * p);
        const V *tw = f->tw + f->tw_off[t];
        switch (p) {
        case 2:
            stage(2, len, r, tw, ar, ai, br, bi);
            break;
        case 3:
            stage(3, len, r, tw, ar, ai, br, bi);
            break;
        case 4:
            stage(4, len, r, tw, ar, ai, br, bi);
            break;
        default:
            stage(5, len, r, tw, ar, ai, br, bi);
            break;
        }
        V *tr = ar, *ti = ai;
        ar = br;
        ai = bi;
        br = tr;
        bi = ti;
        len *= p;
    }

    /* Split step; Z = (ar, ai). k = 0 and k = m use Z[0] only. */
    const V half = SPLAT(0.5);
    out_re[0] = ar[0] + ai[0];
    out_im[0] = SPLAT(0.0);
    out_re[m] = ar[0] - ai[0];
    out_im[m] = SPLAT(0.0);
    for (int k = 1; k < m; k++) {
        const V zr = ar[k], zi = ai[k], cr = ar[m - k], ci = ai[m - k];
        const V er = half * (zr + cr), ei = half * (zi - ci);
        /* O = -i*(Z[k] - conj(Z[m-k]))/2 */
        const V orr = half * (zi + ci), oi = half * (cr - zr);
        V tr, ti;
        CMUL(tr, ti, orr, oi, f->post[2 * k], f->post[2 * k + 1]);
        out_re[k] = er + tr;
        out_im[k] = ei + ti;
    }
}
