/* mel: log-mel spectrogram matching faster-whisper 1.2.1's FeatureExtractor (see mel.h for the
 * exact recipe and how transcribe.py slices it).
 *
 * Invariants: an asr_mel_t is immutable after asr_mel_create; asr_mel_compute allocates only the
 * output (checked) and keeps every per-frame buffer on the worker's stack, so the per-frame path
 * never allocates. asr_mel_compute (whole signal, optionally threaded) and asr_mel_log_frames
 * (a range of frames from a chunk of samples, for streaming) run the same per-frame code
 * (mel_job_run) and the same normalisation (asr_mel_normalize), so streamed frames are
 * bit-identical to the whole-file result. The filterbank is stored sparsely (each Slaney triangle
 * spans a few bins), as one contiguous run of float32 weights per band; skipping the zero weights
 * of the dense matrix changes no float sum.
 */
#include "engine/mel.h"

#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "core/core.h"
#include "engine/fft.h"

#define MEL_MAX_BANDS 512
#define MEL_PAD (ASR_MEL_N_FFT / 2) /* centre padding on each side: 200 */
#define MEL_TAIL ASR_MEL_HOP        /* zero samples appended (padding=160) */
#define MEL_MAX_THREADS 64
#define MEL_MIN_FRAMES_PER_THREAD 256 /* below this a thread costs more than it saves */

/* LANES frames at once, one per vector lane: 4 x float32 for the window, mel and log stages
 * (one SSE/NEON register), split into groups of ASR__FFT_LANES x float64 for the FFT. */
#define LANES 4
#define FFT_GROUPS (LANES / ASR__FFT_LANES)
typedef float V __attribute__((vector_size(4 * LANES)));    /* float32 stages */
typedef int32_t VI __attribute__((vector_size(4 * LANES))); /* lane masks and float bits */
typedef asr__fftv VD;                                       /* float64 FFT */
_Static_assert(LANES % ASR__FFT_LANES == 0, "FFT lanes must divide mel lanes");
#define SPLATF(x) ((V){0} + (float)(x))

struct asr_mel {
    int n_mels;
    asr__fft_t *fft;             /* 400-point real FFT plan */
    float window[ASR_MEL_N_FFT]; /* float32(np.hanning(401)[:-1]) */
    int *band_lo;                /* [n_mels] first bin with a nonzero weight */
    int *band_len;               /* [n_mels] number of bins in the run (0 = empty band) */
    int *band_off;               /* [n_mels] offset of the run in weights */
    float *weights;              /* [sum band_len] float32 filter weights */
};

/* faster-whisper get_mel_filters in float64, cast to float32: dense [n_mels][201]. */
static void mel_filters_dense(int n_mels, float *dense) {
    const int nb = ASR_MEL_N_BINS;
    double fftfreqs[ASR_MEL_N_BINS];
    double mels[MEL_MAX_BANDS + 2], freqs[MEL_MAX_BANDS + 2];

    /* np.fft.rfftfreq(n, d=1/sr): k * (1 / (n * d)) */
    const double val = 1.0 / ((double)ASR_MEL_N_FFT * (1.0 / (double)ASR_MEL_SAMPLE_RATE));
    for (int k = 0; k < nb; k++)
        fftfreqs[k] = (double)k * val;

    /* np.linspace(0, max_mel, n_mels + 2): i * step + start, last point exactly max_mel. */
    const double min_mel = 0.0, max_mel = 45.245640471924965;
    const int n_pts = n_mels + 2;
    const double step = (max_mel - min_mel) / (double)(n_pts - 1);
    for (int i = 0; i < n_pts; i++)
        mels[i] = (double)i * step + min_mel;
    mels[n_pts - 1] = max_mel;

    const double f_min = 0.0, f_sp = 200.0 / 3;
    const double min_log_hz = 1000.0;
    const double min_log_mel = (min_log_hz - f_min) / f_sp;
    const double logstep = log(6.4) / 27.0;
    for (int i = 0; i < n_pts; i++) {
        freqs[i] = f_min + f_sp * mels[i];
        if (mels[i] >= min_log_mel)
            freqs[i] = min_log_hz * exp(logstep * (mels[i] - min_log_mel));
    }

    for (int i = 0; i < n_mels; i++) {
        const double fd_lo = freqs[i + 1] - freqs[i];
        const double fd_hi = freqs[i + 2] - freqs[i + 1];
        const double enorm = 2.0 / (freqs[i + 2] - freqs[i]);
        for (int k = 0; k < nb; k++) {
            double lower = -(freqs[i] - fftfreqs[k]) / fd_lo;
            double upper = (freqs[i + 2] - fftfreqs[k]) / fd_hi;
            double w = lower < upper ? lower : upper;
            if (!(w > 0.0))
                w = 0.0;
            dense[(size_t)i * nb + k] = (float)(w * enorm);
        }
    }
}

asr_err_t asr_mel_create(int n_mels, asr_mel_t **out) {
    asr_err_t err = ASR_ERR_NOMEM;
    float *dense = NULL;
    if (!out)
        return ASR_ERR_INVALID;
    *out = NULL;
    if (n_mels < 1 || n_mels > MEL_MAX_BANDS)
        return ASR_ERR_INVALID;

    asr_mel_t *m = asr_calloc(1, sizeof *m);
    if (!m)
        return ASR_ERR_NOMEM;
    m->n_mels = n_mels;
    err = asr__fft_create(ASR_MEL_N_FFT, &m->fft);
    if (err != ASR_OK)
        goto fail;
    err = ASR_ERR_NOMEM;

    /* np.hanning(M) = 0.5 + 0.5*cos(pi*t/(M-1)), t = 1-M, 3-M, ..., M-1; M = 401, drop last. */
    for (int n = 0; n < ASR_MEL_N_FFT; n++) {
        double t = (double)(2 * n - ASR_MEL_N_FFT);
        m->window[n] = (float)(0.5 + 0.5 * cos(M_PI * t / (double)ASR_MEL_N_FFT));
    }

    dense = asr_malloc((size_t)n_mels * ASR_MEL_N_BINS * sizeof(float));
    m->band_lo = asr_calloc((size_t)n_mels, sizeof(int));
    m->band_len = asr_calloc((size_t)n_mels, sizeof(int));
    m->band_off = asr_calloc((size_t)n_mels, sizeof(int));
    if (!dense || !m->band_lo || !m->band_len || !m->band_off)
        goto fail;
    mel_filters_dense(n_mels, dense);

    int total = 0;
    for (int b = 0; b < n_mels; b++) {
        const float *row = dense + (size_t)b * ASR_MEL_N_BINS;
        int lo = 0, hi = ASR_MEL_N_BINS - 1;
        while (lo < ASR_MEL_N_BINS && row[lo] == 0.0f)
            lo++;
        while (hi >= lo && row[hi] == 0.0f)
            hi--;
        m->band_lo[b] = lo < ASR_MEL_N_BINS ? lo : 0;
        m->band_len[b] = hi >= lo ? hi - lo + 1 : 0;
        m->band_off[b] = total;
        total += m->band_len[b];
    }
    m->weights = asr_malloc((size_t)(total ? total : 1) * sizeof(float));
    if (!m->weights)
        goto fail;
    for (int b = 0; b < n_mels; b++)
        memcpy(m->weights + m->band_off[b], dense + (size_t)b * ASR_MEL_N_BINS + m->band_lo[b],
               (size_t)m->band_len[b] * sizeof(float));
    free(dense);
    *out = m;
    return ASR_OK;

fail:
    free(dense);
    asr_mel_destroy(m);
    return err;
}

void asr_mel_destroy(asr_mel_t *m) {
    if (!m)
        return;
    asr__fft_destroy(m->fft);
    free(m->band_lo);
    free(m->band_len);
    free(m->band_off);
    free(m->weights);
    free(m);
}

int asr_mel_n_mels(const asr_mel_t *m) { return m->n_mels; }

void asr_mel_filters(const asr_mel_t *m, float *out) {
    memset(out, 0, (size_t)m->n_mels * ASR_MEL_N_BINS * sizeof(float));
    for (int b = 0; b < m->n_mels; b++)
        memcpy(out + (size_t)b * ASR_MEL_N_BINS + m->band_lo[b], m->weights + m->band_off[b],
               (size_t)m->band_len[b] * sizeof(float));
}

size_t asr_mel_n_frames(size_t n_samples) { return n_samples / ASR_MEL_HOP + 1; }

/* Frames [f0, f1) of one signal, computed from the samples x[x_start, x_end) the caller holds
 * (all of them for asr_mel_compute, a chunk for asr_mel_log_frames). Writes log10(max(mel, 1e-10))
 * of frame f to out[b * ld + (f - f0)] and the maximum value written to vmax. Both entry points
 * run this same code, so a frame's values do not depend on which call computed it nor on how
 * frames are grouped into vector lanes (every stage is lane-wise). */
typedef struct {
    const asr_mel_t *m;
    const float *x;      /* x[i] of the signal is x[i - x_start], for i in [x_start, x_end) */
    long long x_start;   /* first sample held */
    long long x_end;     /* one past the last sample held */
    long long n_samples; /* L: the whole signal's length, which fixes the end padding */
    int f0, f1;
    float *out; /* column of frame f0; rows n_mels at stride ld */
    size_t ld;
    float vmax;
} mel_job_t;

/* Index into y = x ++ zeros(160) (length ly) of padded-signal position i (relative to y[0]),
 * with numpy reflect padding, which is periodic with period 2*(ly-1). ly >= 160 here. */
static long long reflect_index(long long i, long long ly) {
    const long long period = 2 * (ly - 1);
    long long k = i % period;
    if (k < 0)
        k += period;
    return k < ly ? k : period - k;
}

/* Fills lane l of frame[] with frame f + l (l < n_lanes) times the window; other lanes are 0.
 * The product is rounded to float32, as numpy's frames * float32 window. Every x[i] read here
 * lies in asr_mel_frames_need's range, which the caller's samples cover. */
static void load_frames(const mel_job_t *j, int f, int n_lanes, V *frame) {
    const float *w = j->m->window;
    const long long L = j->n_samples, ly = L + MEL_TAIL;
    const long long i0 = (long long)f * ASR_MEL_HOP - MEL_PAD;
    if (n_lanes == LANES && i0 >= 0 && i0 + (LANES - 1) * ASR_MEL_HOP + ASR_MEL_N_FFT <= L) {
        /* Common case: every lane lies inside the signal. */
        const float *x = j->x + (i0 - j->x_start);
        for (int n = 0; n < ASR_MEL_N_FFT; n++) {
            const V v = {x[n], x[n + ASR_MEL_HOP], x[n + 2 * ASR_MEL_HOP], x[n + 3 * ASR_MEL_HOP]};
            frame[n] = v * w[n];
        }
        return;
    }
    for (int n = 0; n < ASR_MEL_N_FFT; n++)
        frame[n] = SPLATF(0.0f);
    for (int l = 0; l < n_lanes; l++) {
        const long long l0 = i0 + (long long)l * ASR_MEL_HOP;
        for (int n = 0; n < ASR_MEL_N_FFT; n++) {
            long long i = l0 + n;
            if (i < 0 || i >= ly)
                i = reflect_index(i, ly);
            float s = 0.0f;
            if (i < L) {
                ASR_ASSERT(i >= j->x_start && i < j->x_end);
                s = j->x[i - j->x_start];
            }
            frame[n][l] = s * w[n];
        }
    }
}

/* Lane-wise log10(max(*x, 1e-10)) for finite *x >= 0. With x = m * 2^e, m in [sqrt(1/2),
 * sqrt(2)): ln m = 2*atanh(t), t = (m-1)/(m+1), |t| <= 0.1716, by its series up to t^9
 * (truncation < 3e-10 relative). log10(2) is split so that e * LOG10_2_HI is exact and the result
 * is rounded once. Checked against double log10 for every float in [1e-10, 1e6]: max abs error
 * 5.2e-7 (about one float ulp for |result| >= 1, like log10f), i.e. 1.3e-7 after the final
 * (v + 4) / 4; log10(1e-10f) is exactly -10 as in numpy. Pointers, not values, so that wide
 * vectors do not hit ABI differences between targets. */
static inline void log10_clamped(const V *x, V *out) {
    const float log10_2_hi = 0.301025390625f;        /* 12 significant bits */
    const float log10_2_lo = 4.6050389811980175e-6f; /* log10(2) - hi */
    const float log10_e = 0.43429448190325182765f;
    const V eps = SPLATF(1e-10f);
    const VI gt = *x > eps;
    const VI bits = (((VI)*x & gt) | ((VI)eps & ~gt));
    VI e = ((bits >> 23) & 0xff) - 127;
    V mant = (V)((bits & 0x007fffff) | 0x3f800000); /* [1, 2) */
    const VI big = mant > SPLATF(1.41421356f);      /* -1 where true */
    mant = (V)(((VI)mant & ~big) | ((VI)(mant * 0.5f) & big));
    e -= big;
    const V t = (mant - 1.0f) / (mant + 1.0f);
    const V z = t * t;
    V poly = z * (1.0f / 9.0f) + 1.0f / 7.0f;
    poly = poly * z + 1.0f / 5.0f;
    poly = poly * z + 1.0f / 3.0f;
    poly = poly * z + 1.0f;
    const V ln_m = 2.0f * t * poly;
    const V ef = __builtin_convertvector(e, V);
    *out = ef * log10_2_hi + (ln_m * log10_e + ef * log10_2_lo);
}

static void *mel_job_run(void *arg) {
    mel_job_t *j = arg;
    const asr_mel_t *m = j->m;
    V frame[ASR_MEL_N_FFT], power[ASR_MEL_N_BINS];
    VD frame_d[ASR_MEL_N_FFT], re[FFT_GROUPS][ASR_MEL_N_BINS], im[FFT_GROUPS][ASR_MEL_N_BINS];
    VD work[2 * ASR_MEL_N_FFT];
    float vmax = -INFINITY;
    V vmaxv = SPLATF(-INFINITY);

    for (int f = j->f0; f < j->f1; f += LANES) {
        const int n_lanes = j->f1 - f < LANES ? j->f1 - f : LANES;
        load_frames(j, f, n_lanes, frame);
        /* numpy: float32 windowed frame -> float64 rfft -> complex64 -> float32 abs -> **2. */
        for (int g = 0; g < FFT_GROUPS; g++) {
            for (int n = 0; n < ASR_MEL_N_FFT; n++)
                for (int l = 0; l < ASR__FFT_LANES; l++)
                    frame_d[n][l] = frame[n][g * ASR__FFT_LANES + l];
            asr__fft_rfftv(m->fft, frame_d, re[g], im[g], work);
        }
        /* numpy rounds X to complex64 and squares a float32 hypot; |X|^2 in double rounded once
         * to float32 differs from that by about one float ulp (~1e-8 in the output). */
        for (int k = 0; k < ASR_MEL_N_BINS; k++) {
            for (int g = 0; g < FFT_GROUPS; g++) {
                const VD p = re[g][k] * re[g][k] + im[g][k] * im[g][k];
                for (int l = 0; l < ASR__FFT_LANES; l++)
                    power[k][g * ASR__FFT_LANES + l] = (float)p[l];
            }
        }
        float *col = j->out + (f - j->f0);
        for (int b = 0; b < m->n_mels; b++) {
            const float *wt = m->weights + m->band_off[b];
            const V *pw = power + m->band_lo[b];
            const int len = m->band_len[b];
            V acc = SPLATF(0.0f), v;
            for (int k = 0; k < len; k++)
                acc += wt[k] * pw[k];
            log10_clamped(&acc, &v);
            float *dst = col + (size_t)b * j->ld;
            if (n_lanes == LANES) {
                memcpy(dst, &v, sizeof v);
                const VI gt = v > vmaxv;
                vmaxv = (V)(((VI)v & gt) | ((VI)vmaxv & ~gt));
            } else {
                for (int l = 0; l < n_lanes; l++) {
                    dst[l] = v[l];
                    vmax = v[l] > vmax ? v[l] : vmax;
                }
            }
        }
    }
    for (int l = 0; l < LANES; l++)
        vmax = vmaxv[l] > vmax ? vmaxv[l] : vmax;
    j->vmax = vmax;
    return NULL;
}

/* Largest n_total accepted: reflect_index's period 2 * (L + 159) must fit a long long. */
#define MEL_MAX_SAMPLES ((size_t)LLONG_MAX / 2 - MEL_TAIL)

void asr_mel_frames_need(size_t n_total, int f0, int f1, size_t *lo, size_t *hi) {
    /* Frame f reads y[160f - 200, 160f + 200), y = x ++ zeros(160). Positions below 0 reflect to
     * y[1..200] (x[1..200] when n_total > 200; frame 0 reaches x[200], one past its direct
     * reads). Positions past the end of y reflect into y's zero tail, never into x (for
     * f <= n_total / 160 they land at y[>= n_total + 119]). For n_total <= 40 the reflection wraps
     * around y repeatedly, but then frame 0 is the only frame and it reads all of x directly. */
    unsigned long long a, b;
    if (f0 < 0)
        f0 = 0;
    a = (unsigned long long)f0 * ASR_MEL_HOP;
    a = a > MEL_PAD ? a - MEL_PAD : 0;
    if (f1 <= f0) {
        b = a;
    } else {
        b = (unsigned long long)(f1 - 1) * ASR_MEL_HOP + MEL_PAD;
        if (f0 == 0 && b < MEL_PAD + 1)
            b = MEL_PAD + 1;
    }
    if (a > n_total)
        a = n_total;
    if (b > n_total)
        b = n_total;
    if (lo)
        *lo = (size_t)a;
    if (hi)
        *hi = (size_t)b;
}

asr_err_t asr_mel_log_frames(const asr_mel_t *m, const float *chunk, size_t chunk_start,
                             size_t chunk_len, size_t n_total, int f0, int f1, float *out, int ld,
                             float *max_out) {
    if (max_out)
        *max_out = -INFINITY;
    if (!m || f0 < 0 || f1 < f0 || n_total > MEL_MAX_SAMPLES ||
        (size_t)f1 > asr_mel_n_frames(n_total))
        return ASR_ERR_INVALID;
    if (f0 == f1)
        return ASR_OK;
    if (!out || ld < f1 - f0)
        return ASR_ERR_INVALID;
    size_t lo, hi;
    asr_mel_frames_need(n_total, f0, f1, &lo, &hi);
    if (lo < hi && (!chunk || chunk_start > lo || chunk_len > SIZE_MAX - chunk_start ||
                    chunk_start + chunk_len < hi))
        return ASR_ERR_INVALID;
    mel_job_t job = {.m = m,
                     .x = chunk,
                     .x_start = (long long)lo,
                     .x_end = (long long)hi,
                     .n_samples = (long long)n_total,
                     .f0 = f0,
                     .f1 = f1,
                     .out = out,
                     .ld = (size_t)ld,
                     .vmax = -INFINITY};
    if (lo < hi)
        job.x = chunk + (lo - chunk_start); /* so x[i] is job.x[i - lo] */
    mel_job_run(&job);
    if (max_out)
        *max_out = job.vmax;
    return ASR_OK;
}

void asr_mel_normalize(float *x, int n_mels, int n, int ld, float gmax) {
    /* float32 like numpy: floor = max - 8.0, then (v + 4) / 4 (the division by 4 is exact). */
    const float floor_v = gmax - 8.0f;
    for (int b = 0; b < n_mels; b++) {
        float *row = x + (size_t)b * (size_t)ld;
        for (int i = 0; i < n; i++) {
            const float v = row[i] > floor_v ? row[i] : floor_v;
            row[i] = (v + 4.0f) * 0.25f;
        }
    }
}

asr_err_t asr_mel_compute(const asr_mel_t *m, const float *pcm, size_t n_samples, int n_threads,
                          float **out, int *n_frames) {
    if (out)
        *out = NULL;
    if (n_frames)
        *n_frames = 0;
    if (!m || !out || !n_frames || (!pcm && n_samples))
        return ASR_ERR_INVALID;
    const size_t nf = asr_mel_n_frames(n_samples);
    if (nf > (size_t)INT_MAX || n_samples > MEL_MAX_SAMPLES)
        return ASR_ERR_INVALID;
    if ((size_t)m->n_mels > SIZE_MAX / sizeof(float) / nf)
        return ASR_ERR_NOMEM;
    float *mel = asr_malloc((size_t)m->n_mels * nf * sizeof(float));
    if (!mel)
        return ASR_ERR_NOMEM;

    int n_jobs = n_threads > 1 ? n_threads : 1;
    if (n_jobs > MEL_MAX_THREADS)
        n_jobs = MEL_MAX_THREADS;
    if ((size_t)n_jobs > nf / MEL_MIN_FRAMES_PER_THREAD)
        n_jobs =
            (int)(nf / MEL_MIN_FRAMES_PER_THREAD) > 1 ? (int)(nf / MEL_MIN_FRAMES_PER_THREAD) : 1;

    /* Each job is what asr_mel_log_frames(m, pcm, 0, n_samples, n_samples, f0, f1, mel + f0, nf)
     * runs; the arguments are valid by construction, so it is called directly. */
    mel_job_t jobs[MEL_MAX_THREADS];
    pthread_t tids[MEL_MAX_THREADS];
    bool started[MEL_MAX_THREADS];
    for (int t = 0; t < n_jobs; t++) {
        const int f0 = (int)(nf * (size_t)t / (size_t)n_jobs);
        jobs[t] = (mel_job_t){.m = m,
                              .x = pcm,
                              .x_start = 0,
                              .x_end = (long long)n_samples,
                              .n_samples = (long long)n_samples,
                              .f0 = f0,
                              .f1 = (int)(nf * (size_t)(t + 1) / (size_t)n_jobs),
                              .out = mel + f0,
                              .ld = nf,
                              .vmax = -INFINITY};
        /* Job 0 runs on the calling thread; a thread that fails to start runs there too. */
        started[t] = t > 0 && pthread_create(&tids[t], NULL, mel_job_run, &jobs[t]) == 0;
    }
    float vmax = -INFINITY;
    for (int t = 0; t < n_jobs; t++) {
        if (!started[t])
            mel_job_run(&jobs[t]);
    }
    for (int t = 0; t < n_jobs; t++) {
        if (started[t])
            pthread_join(tids[t], NULL);
        if (jobs[t].vmax > vmax)
            vmax = jobs[t].vmax;
    }

    asr_mel_normalize(mel, m->n_mels, (int)nf, (int)nf, vmax);
    *out = mel;
    *n_frames = (int)nf;
    return ASR_OK;
}

void asr_mel_window_n(const float *mel, int n_mels, int n_frames, int start, int n_copy,
                      float *window) {
    const int W = ASR_MEL_WINDOW_FRAMES;
    int n = 0;
    if (start >= 0 && start < n_frames) {
        n = n_frames - start;
        if (n > W)
            n = W;
        if (n > n_copy)
            n = n_copy;
        if (n < 0)
            n = 0;
    }
    for (int b = 0; b < n_mels; b++) {
        float *dst = window + (size_t)b * W;
        if (n > 0)
            memcpy(dst, mel + (size_t)b * n_frames + start, (size_t)n * sizeof(float));
        memset(dst + n, 0, (size_t)(W - n) * sizeof(float));
    }
}

void asr_mel_window(const float *mel, int n_mels, int n_frames, int start, float *window) {
    asr_mel_window_n(mel, n_mels, n_frames, start, ASR_MEL_WINDOW_FRAMES, window);
}
