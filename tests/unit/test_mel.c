/* Unit tests for src/engine/mel.c and src/engine/fft.c.
 *
 * - The (double-precision) FFT against a naive DFT on random input, n = 400 and other sizes.
 * - asr_mel_compute against faster-whisper 1.2.1 goldens (tests/golden/make_mel_golden.py):
 *   max abs error <= 1e-4 over all bins, n_frames equal; every golden is also run with 3 threads
 *   and must be bit-identical to the single-threaded result.
 * - asr_mel_window / asr_mel_window_n padding, empty and 1-sample input, bad arguments, OOM.
 * - Streaming: asr_mel_frames_need against a naive numpy-reflect emulation (exact hull of the
 *   samples read, every length up to 1300), and the engine's two passes emulated with
 *   asr_mel_log_frames + asr_mel_normalize (pass 1 in 4096-sample reads with a small tail, pass 2
 *   from exactly the needed samples at regular and irregular seeks) on en_jfk, en_ldc93s1, a 95-s
 *   chirp and short lengths (0..8393 samples): every value must equal asr_mel_compute's exactly.
 * - Timing of 30 s of audio on one thread (printed, not asserted: sanitizer builds are slow).
 *
 * Paths: ASR_SOURCE (repo root: the goldens and tests/data/audio's WAVs). Exits 77 (skip) when it
 * is missing.
 */
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "core/core.h"
#include "engine/fft.h"
#include "engine/mel.h"

static const char *g_source;

/* ---- helpers ---- */

static uint32_t rng_state = 12345u;
static float frand(void) { /* xorshift32 -> [-1, 1) */
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return (float)((double)rng_state / 2147483648.0 - 1.0);
}

static uint32_t rd32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint16_t rd16(const unsigned char *p) { return (uint16_t)(p[0] | p[1] << 8); }

/* Reads a 16 kHz mono s16 WAV into float samples (int16 / 32768). Walks the RIFF chunks. */
static float *read_wav(const char *path, size_t *n_out) {
    char *buf = NULL;
    size_t len = 0;
    assert_int_equal(asr_read_file(path, &buf, &len), ASR_OK);
    const unsigned char *d = (const unsigned char *)buf;
    assert_true(len >= 12 && !memcmp(d, "RIFF", 4) && !memcmp(d + 8, "WAVE", 4));
    size_t pos = 12;
    int fmt_ok = 0;
    float *pcm = NULL;
    while (pos + 8 <= len) {
        uint32_t sz = rd32(d + pos + 4);
        const unsigned char *body = d + pos + 8;
        assert_true(sz <= len - pos - 8);
        if (!memcmp(d + pos, "fmt ", 4)) {
            assert_true(sz >= 16);
            assert_int_equal(rd16(body), 1);     /* PCM */
            assert_int_equal(rd16(body + 2), 1); /* mono */
            assert_int_equal(rd32(body + 4), 16000);
            assert_int_equal(rd16(body + 14), 16); /* s16 */
            fmt_ok = 1;
        } else if (!memcmp(d + pos, "data", 4)) {
            assert_true(fmt_ok);
            size_t n = sz / 2;
            pcm = malloc((n ? n : 1) * sizeof(float));
            assert_non_null(pcm);
            for (size_t i = 0; i < n; i++)
                pcm[i] = (float)(int16_t)rd16(body + 2 * i) / 32768.0f;
            *n_out = n;
            break;
        }
        pos += 8 + (size_t)sz + (sz & 1);
    }
    free(buf);
    assert_non_null(pcm);
    return pcm;
}

/* Integer field "key": N from the golden's JSON sidecar. */
static long json_int(const char *json, const char *key) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(json, pat);
    assert_non_null(p);
    return strtol(p + strlen(pat), NULL, 10);
}

/* String field "key": "value" from the golden's JSON sidecar (no escapes in our sidecars). */
static void json_str(const char *json, const char *key, char *dst, size_t dst_len) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\": \"", key);
    const char *p = strstr(json, pat);
    assert_non_null(p);
    p += strlen(pat);
    const char *e = strchr(p, '"');
    assert_non_null(e);
    assert_true((size_t)(e - p) < dst_len);
    memcpy(dst, p, (size_t)(e - p));
    dst[e - p] = 0;
}

/* ---- FFT ---- */

/* Independent random input in every lane; each lane checked against a naive double DFT. */
static void check_fft(int n) {
    asr__fft_t *f = NULL;
    assert_int_equal(asr__fft_create(n, &f), ASR_OK);
    assert_int_equal(asr__fft_len(f), n);
    asr__fftv *in = asr_malloc_aligned((size_t)n * sizeof(asr__fftv));
    asr__fftv *re = asr_malloc_aligned((size_t)(n / 2 + 1) * sizeof(asr__fftv));
    asr__fftv *im = asr_malloc_aligned((size_t)(n / 2 + 1) * sizeof(asr__fftv));
    asr__fftv *work = asr_malloc_aligned((size_t)2 * n * sizeof(asr__fftv));
    assert_true(in && re && im && work);
    for (int t = 0; t < n; t++)
        for (int l = 0; l < ASR__FFT_LANES; l++)
            in[t][l] = frand();
    asr__fft_rfftv(f, in, re, im, work);

    for (int l = 0; l < ASR__FFT_LANES; l++) {
        double err2 = 0.0, ref2 = 0.0;
        for (int k = 0; k <= n / 2; k++) {
            double sr = 0.0, si = 0.0;
            for (int t = 0; t < n; t++) {
                double a = -2.0 * M_PI * (double)(((long)t * k) % n) / n;
                sr += in[t][l] * cos(a);
                si += in[t][l] * sin(a);
            }
            err2 += (re[k][l] - sr) * (re[k][l] - sr) + (im[k][l] - si) * (im[k][l] - si);
            ref2 += sr * sr + si * si;
        }
        double rel = sqrt(err2 / ref2);
        if (n == 400)
            printf("fft n=400 lane %d: relative l2 error vs naive DFT %.3g\n", l, rel);
        assert_true(rel < 1e-12); /* double precision; the brief asks < 1e-5 */
    }
    asr_free_aligned(in);
    asr_free_aligned(re);
    asr_free_aligned(im);
    asr_free_aligned(work);
    asr__fft_destroy(f);
}

static void test_fft_vs_dft(void **state) {
    (void)state;
    static const int sizes[] = {400, 2,  4,  6,  8,   10,  12,  16,  18,
                                30,  50, 64, 90, 250, 320, 512, 1000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        check_fft(sizes[i]);
}

static void test_fft_invalid(void **state) {
    (void)state;
    static const int bad[] = {0, 1, 3, -4, 14, 22, 401};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        asr__fft_t *f = NULL;
        assert_int_equal(asr__fft_create(bad[i], &f), ASR_ERR_INVALID);
        assert_null(f);
    }
    asr__fft_destroy(NULL);
}

/* ---- goldens ---- */

static void check_golden(const asr_mel_t *m80, const asr_mel_t *m128, const char *name) {
    char path[1024];
    char *json = NULL, *gold = NULL;
    size_t json_len = 0, gold_len = 0;
    snprintf(path, sizeof path, "%s/tests/golden/data/mel/%s.json", g_source, name);
    assert_int_equal(asr_read_file(path, &json, &json_len), ASR_OK);
    snprintf(path, sizeof path, "%s/tests/golden/data/mel/%s.f32", g_source, name);
    assert_int_equal(asr_read_file(path, &gold, &gold_len), ASR_OK);
    const int n_mels = (int)json_int(json, "n_mels");
    const int gold_frames = (int)json_int(json, "n_frames");
    const long offset = json_int(json, "offset");
    const long n_samples = json_int(json, "n_samples");
    assert_int_equal(gold_len, (size_t)n_mels * gold_frames * sizeof(float));

    char clip[256];
    json_str(json, "clip", clip, sizeof clip);
    snprintf(path, sizeof path, "%s/tests/data/audio/%s.wav", g_source, clip);
    size_t n_pcm = 0;
    float *pcm = read_wav(path, &n_pcm);
    assert_true((size_t)(offset + n_samples) <= n_pcm);

    const asr_mel_t *m = n_mels == 80 ? m80 : m128;
    assert_int_equal(asr_mel_n_mels(m), n_mels);
    float *mel = NULL, *mel3 = NULL;
    int nf = 0, nf3 = 0;
    assert_int_equal(asr_mel_compute(m, pcm + offset, (size_t)n_samples, 1, &mel, &nf), ASR_OK);
    assert_int_equal(nf, gold_frames);
    assert_int_equal((size_t)nf, asr_mel_n_frames((size_t)n_samples));

    const float *g = (const float *)gold;
    double max_err = 0.0;
    for (size_t i = 0; i < (size_t)n_mels * nf; i++) {
        double e = fabs((double)mel[i] - (double)g[i]);
        if (!(e <= max_err))
            max_err = e;
    }
    printf("mel golden %-40s frames=%5d max_abs_err=%.3g\n", name, nf, max_err);
    assert_true(max_err <= 1e-4);

    assert_int_equal(asr_mel_compute(m, pcm + offset, (size_t)n_samples, 3, &mel3, &nf3), ASR_OK);
    assert_int_equal(nf3, nf);
    assert_memory_equal(mel, mel3, (size_t)n_mels * nf * sizeof(float));

    free(mel);
    free(mel3);
    free(pcm);
    free(json);
    free(gold);
}

static void test_mel_goldens(void **state) {
    (void)state;
    static const char *names[] = {
        "en_jfk.80",
        "en_ldc93s1.80",
        "zh_aishell_bac009s0724w0121.80",
        "en_jfk.128",
        "en_jfk_s48000_n1.80",
        "en_jfk_s48000_n2.80",
        "en_jfk_s48000_n40.80",
        "en_jfk_s48000_n41.80",
        "en_jfk_s48000_n160.80",
        "en_jfk_s48000_n161.80",
        "en_jfk_s48000_n401.80",
    };
    asr_mel_t *m80 = NULL, *m128 = NULL;
    assert_int_equal(asr_mel_create(80, &m80), ASR_OK);
    assert_int_equal(asr_mel_create(128, &m128), ASR_OK);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        check_golden(m80, m128, names[i]);
    asr_mel_destroy(m80);
    asr_mel_destroy(m128);
}

/* ---- edge cases ---- */

static void test_mel_empty_and_tiny(void **state) {
    (void)state;
    asr_mel_t *m = NULL;
    assert_int_equal(asr_mel_create(80, &m), ASR_OK);
    float *mel = NULL;
    int nf = -1;

    /* 0 samples: one frame, every bin -1.5 (faster-whisper gives the same). */
    assert_int_equal(asr_mel_compute(m, NULL, 0, 1, &mel, &nf), ASR_OK);
    assert_int_equal(nf, 1);
    for (int b = 0; b < 80; b++)
        assert_true(mel[b] == -1.5f);
    free(mel);

    /* 1..450 samples of noise: no crash, finite output, right frame count, within [max-2, max]. */
    float pcm[450];
    for (int i = 0; i < 450; i++)
        pcm[i] = 0.3f * frand();
    for (size_t n = 1; n <= 450; n += (n < 50 ? 1 : 37)) {
        assert_int_equal(asr_mel_compute(m, pcm, n, 2, &mel, &nf), ASR_OK);
        assert_int_equal(nf, (int)(n / 160 + 1));
        float hi = -INFINITY;
        for (int i = 0; i < 80 * nf; i++) {
            assert_true(isfinite(mel[i]));
            hi = mel[i] > hi ? mel[i] : hi;
        }
        for (int i = 0; i < 80 * nf; i++)
            assert_true(mel[i] >= hi - 2.0f);
        free(mel);
    }

    /* Bad arguments. */
    mel = (float *)pcm;
    assert_int_equal(asr_mel_compute(m, NULL, 10, 1, &mel, &nf), ASR_ERR_INVALID);
    assert_null(mel);
    assert_int_equal(asr_mel_compute(NULL, pcm, 10, 1, &mel, &nf), ASR_ERR_INVALID);
    assert_int_equal(asr_mel_compute(m, pcm, 10, 1, NULL, &nf), ASR_ERR_INVALID);
    assert_int_equal(asr_mel_compute(m, pcm, 10, 1, &mel, NULL), ASR_ERR_INVALID);
    asr_mel_destroy(m);

    asr_mel_t *bad = NULL;
    assert_int_equal(asr_mel_create(0, &bad), ASR_ERR_INVALID);
    assert_null(bad);
    assert_int_equal(asr_mel_create(513, &bad), ASR_ERR_INVALID);
    assert_int_equal(asr_mel_create(80, NULL), ASR_ERR_INVALID);
    asr_mel_destroy(NULL);
}

static void test_mel_window(void **state) {
    (void)state;
    const int n_mels = 3, n_frames = 3500, W = ASR_MEL_WINDOW_FRAMES;
    float *mel = malloc((size_t)n_mels * n_frames * sizeof(float));
    float *win = malloc((size_t)n_mels * W * sizeof(float));
    assert_true(mel && win);
    for (int b = 0; b < n_mels; b++)
        for (int f = 0; f < n_frames; f++)
            mel[b * n_frames + f] = (float)(b * 10000 + f) + 0.5f;

    /* Full window in the middle. */
    asr_mel_window(mel, n_mels, n_frames, 100, win);
    for (int b = 0; b < n_mels; b++)
        for (int i = 0; i < W; i++)
            assert_true(win[b * W + i] == mel[b * n_frames + 100 + i]);

    /* Tail: 3500 - 2000 = 1500 frames, then zeros. */
    asr_mel_window(mel, n_mels, n_frames, 2000, win);
    for (int b = 0; b < n_mels; b++)
        for (int i = 0; i < W; i++)
            assert_true(win[b * W + i] == (i < 1500 ? mel[b * n_frames + 2000 + i] : 0.0f));

    /* Past the end, and the last frame alone. */
    asr_mel_window(mel, n_mels, n_frames, n_frames, win);
    for (int i = 0; i < n_mels * W; i++)
        assert_true(win[i] == 0.0f);
    asr_mel_window(mel, n_mels, n_frames, n_frames - 1, win);
    for (int b = 0; b < n_mels; b++)
        for (int i = 0; i < W; i++)
            assert_true(win[b * W + i] == (i == 0 ? mel[b * n_frames + n_frames - 1] : 0.0f));

    /* faster-whisper transcription window: segment_size = content_frames - seek frames. */
    const int content = n_frames - 1, seek = 1000;
    asr_mel_window_n(mel, n_mels, n_frames, seek, content - seek, win);
    for (int b = 0; b < n_mels; b++)
        for (int i = 0; i < W; i++)
            assert_true(win[b * W + i] ==
                        (i < content - seek ? mel[b * n_frames + seek + i] : 0.0f));
    asr_mel_window_n(mel, n_mels, n_frames, 0, 0, win);
    for (int i = 0; i < n_mels * W; i++)
        assert_true(win[i] == 0.0f);

    free(mel);
    free(win);
}

/* ---- streaming (asr_mel_frames_need / asr_mel_log_frames / asr_mel_normalize) ---- */

#define HUGE_TOTAL ((size_t)1 << 60) /* "end not known yet" placeholder, as the engine uses */

/* Sample of x that padded-signal position p (0 = first of the 200 reflected samples) holds, by
 * numpy's reflect padding done the naive way (mirror repeatedly until inside y = x ++ 0*160);
 * -1 when it is one of the 160 appended zeros. Independent of mel.c's modular version. */
static long long naive_source(long long p, long long n) {
    const long long ly = n + 160;
    long long i = p - 200;
    while (i < 0 || i >= ly) {
        if (i < 0)
            i = -i;
        if (i >= ly)
            i = 2 * (ly - 1) - i;
    }
    return i < n ? i : -1;
}

static void need(size_t n, int f0, int f1, size_t *lo, size_t *hi) {
    *lo = *hi = (size_t)-7; /* must be overwritten */
    asr_mel_frames_need(n, f0, f1, lo, hi);
}

static void test_mel_frames_need(void **state) {
    (void)state;
    size_t lo, hi;
    /* Edge values, by the rule in mel.h. */
    need(0, 0, 1, &lo, &hi);
    assert_true(lo == 0 && hi == 0);
    need(1, 0, 1, &lo, &hi);
    assert_true(lo == 0 && hi == 1);
    need(40, 0, 1, &lo, &hi);
    assert_true(lo == 0 && hi == 40);
    need(200, 0, 1, &lo, &hi);
    assert_true(lo == 0 && hi == 200);
    need(201, 0, 1, &lo, &hi);
    assert_true(lo == 0 && hi == 201); /* frame 0 reads x[200] through the reflection */
    need(HUGE_TOTAL, 0, 1, &lo, &hi);
    assert_true(lo == 0 && hi == 201);
    need(HUGE_TOTAL, 0, 2, &lo, &hi);
    assert_true(lo == 0 && hi == 360);
    need(HUGE_TOTAL, 1, 2, &lo, &hi);
    assert_true(lo == 0 && hi == 360);
    need(HUGE_TOTAL, 2, 3, &lo, &hi);
    assert_true(lo == 120 && hi == 520);
    need(HUGE_TOTAL, 100, 3100, &lo, &hi);
    assert_true(lo == 15800 && hi == 160 * 3099 + 200);
    need(1000, 6, 7, &lo, &hi); /* last frame of 1000 samples */
    assert_true(lo == 760 && hi == 1000);
    need(1000, 0, 7, &lo, &hi);
    assert_true(lo == 0 && hi == 1000);
    need(HUGE_TOTAL, 5, 5, &lo, &hi); /* empty */
    assert_true(lo == 600 && hi == 600);
    need(HUGE_TOTAL, 1, 0, &lo, &hi);
    assert_true(lo == 0 && hi == 0);
    need(500, 9, 9, &lo, &hi);
    assert_true(lo == 500 && hi == 500);
    need(HUGE_TOTAL, -3, 1, &lo, &hi); /* f0 < 0 counts as 0 */
    assert_true(lo == 0 && hi == 201);
    need(HUGE_TOTAL, INT_MAX - 1, INT_MAX, &lo, &hi);
    assert_true(lo == (size_t)(INT_MAX - 1) * 160 - 200 && hi == (size_t)(INT_MAX - 1) * 160 + 200);
    asr_mel_frames_need(1000, 0, 3, NULL, NULL);

    /* Exhaustively for short signals: [lo, hi) is exactly the hull of the x samples the frames
     * read (with naive reflect padding), and each frame's reads are contiguous and overlap the
     * next frame's, so every sample of [lo, hi) is read. */
    for (long long n = 0; n <= 1300; n++) {
        const int nf = (int)asr_mel_n_frames((size_t)n);
        long long fmin[16], fmax[16]; /* per frame; fmax = -1 when it reads no x sample */
        assert_true(nf <= 16);
        for (int f = 0; f < nf; f++) {
            unsigned char seen[1400] = {0};
            fmin[f] = LLONG_MAX;
            fmax[f] = -1;
            for (long long p = 160LL * f; p < 160LL * f + 400; p++) {
                long long s = naive_source(p, n);
                if (s < 0)
                    continue;
                seen[s] = 1;
                fmin[f] = s < fmin[f] ? s : fmin[f];
                fmax[f] = s > fmax[f] ? s : fmax[f];
            }
            for (long long s = fmin[f]; s <= fmax[f]; s++)
                assert_true(seen[s]);
            if (f > 0 && fmax[f] >= 0)
                assert_true(fmin[f] <= fmax[f - 1] + 1);
        }
        for (int f0 = 0; f0 < nf; f0++)
            for (int f1 = f0 + 1; f1 <= nf; f1++) {
                long long a = LLONG_MAX, b = -1;
                for (int f = f0; f < f1; f++) {
                    a = fmin[f] < a ? fmin[f] : a;
                    b = fmax[f] > b ? fmax[f] : b;
                }
                need((size_t)n, f0, f1, &lo, &hi);
                if (b < 0) {
                    assert_true(n == 0 && lo == 0 && hi == 0);
                } else {
                    assert_true(lo == (size_t)a && hi == (size_t)b + 1);
                }
            }
    }
}

/* frames [f0, f1) of x (n samples) from a copy of just asr_mel_frames_need's range, normalised
 * with gmax, must equal whole[n_mels][nf] bit for bit. Odd `mode`: the copy is a separate
 * allocation of exactly that size (ASan catches any read outside it); even: it sits in a larger
 * buffer whose other samples are NaN (any read of them would show in the output). */
static void check_window(const asr_mel_t *m, const float *x, size_t n, const float *whole, int nf,
                         int f0, int f1, float gmax, float *win, int mode) {
    const int M = asr_mel_n_mels(m);
    size_t lo, hi;
    asr_mel_frames_need(n, f0, f1, &lo, &hi);
    assert_true(lo <= hi && hi <= n);
    const size_t len = hi - lo, guard = mode & 1 ? 0 : 64;
    float *buf = malloc((len + 2 * guard ? len + 2 * guard : 1) * sizeof(float));
    assert_non_null(buf);
    for (size_t i = 0; i < len + 2 * guard; i++)
        buf[i] = NAN;
    if (len)
        memcpy(buf + guard, x + lo, len * sizeof(float));
    /* chunk_start may sit before lo as long as the chunk covers [lo, hi). */
    const size_t before = guard && lo >= guard ? guard : 0;
    float mx = 0.0f;
    for (int i = 0; i < M * ASR_MEL_WINDOW_FRAMES; i++)
        win[i] = 12345.0f;
    assert_int_equal(asr_mel_log_frames(m, len ? buf + guard - before : NULL, lo - before,
                                        len + before, n, f0, f1, win, ASR_MEL_WINDOW_FRAMES, &mx),
                     ASR_OK);
    assert_true(mx <= gmax);
    asr_mel_normalize(win, M, f1 - f0, ASR_MEL_WINDOW_FRAMES, gmax);
    for (int b = 0; b < M; b++) {
        const float *w = win + (size_t)b * ASR_MEL_WINDOW_FRAMES;
        assert_memory_equal(w, whole + (size_t)b * nf + f0, (size_t)(f1 - f0) * sizeof(float));
        for (int i = f1 - f0; i < ASR_MEL_WINDOW_FRAMES; i++)
            assert_true(w[i] == 12345.0f); /* columns past f1 - f0 untouched */
    }
    free(buf);
}

/* Emulates the engine's two streamed passes over x and checks them against asr_mel_compute. */
static void check_stream(const asr_mel_t *m, const float *x, size_t n, const char *what) {
    const int M = asr_mel_n_mels(m);
    float *whole = NULL;
    int nf = 0;
    assert_int_equal(asr_mel_compute(m, x, n, 2, &whole, &nf), ASR_OK);

    /* Pass 1: 4096-sample reads, each frame computed as soon as its samples are in, only a small
     * tail kept. Interior frames are computed before the end is known, passing as n_total the
     * samples read so far or (alternately) a huge placeholder. `raw1` keeps every raw frame only
     * to check pass 1's values as well; the emulation itself does not use it. */
    enum { READ = 4096, TAIL_CAP = READ + 1024 };
    float tail[TAIL_CAP];
    size_t t_start = 0, t_len = 0, seen = 0, max_tail = 0;
    float *raw1 = malloc((size_t)M * (size_t)nf * sizeof(float));
    float *scratch = malloc((size_t)M * READ * sizeof(float));
    assert_true(raw1 && scratch);
    float gmax = -INFINITY, mx;
    int next = 0, n_reads = 0;
    for (;;) {
        const size_t got = n - seen < READ ? n - seen : READ;
        if (got == 0)
            break;
        assert_true(t_len + got <= TAIL_CAP);
        memcpy(tail + t_len, x + seen, got * sizeof(float));
        t_len += got;
        seen += got;
        max_tail = t_len > max_tail ? t_len : max_tail;
        const size_t provisional = n_reads++ % 2 ? HUGE_TOTAL : seen;
        int last = next;
        for (;;) {
            size_t lo, hi;
            asr_mel_frames_need(HUGE_TOTAL, last, last + 1, &lo, &hi);
            if (hi > seen)
                break;
            last++;
        }
        if (last > next) {
            assert_int_equal(asr_mel_log_frames(m, tail, t_start, t_len, provisional, next, last,
                                                scratch, READ, &mx),
                             ASR_OK);
            gmax = mx > gmax ? mx : gmax;
            for (int b = 0; b < M; b++)
                memcpy(raw1 + (size_t)b * nf + next, scratch + (size_t)b * READ,
                       (size_t)(last - next) * sizeof(float));
            next = last;
        }
        size_t keep, unused;
        asr_mel_frames_need(HUGE_TOTAL, next, next + 1, &keep, &unused);
        assert_true(keep >= t_start);
        memmove(tail, tail + (keep - t_start), (t_len - (keep - t_start)) * sizeof(float));
        t_len -= keep - t_start;
        t_start = keep;
    }
    /* End of input: n_total is known; the remaining (at most a few) frames. */
    assert_int_equal((int)asr_mel_n_frames(seen), nf);
    assert_true(nf - next <= 3);
    size_t lo, hi;
    asr_mel_frames_need(seen, next, nf, &lo, &hi);
    assert_true(t_start <= lo && t_start + t_len >= hi);
    assert_int_equal(asr_mel_log_frames(m, t_len ? tail : NULL, t_start, t_len, seen, next, nf,
                                        scratch, READ, &mx),
                     ASR_OK);
    gmax = mx > gmax ? mx : gmax;
    for (int b = 0; b < M; b++)
        memcpy(raw1 + (size_t)b * nf + next, scratch + (size_t)b * READ,
               (size_t)(nf - next) * sizeof(float));
    asr_mel_normalize(raw1, M, nf, nf, gmax);
    assert_memory_equal(raw1, whole, (size_t)M * nf * sizeof(float));

    /* Pass 2: regular windows at 0, 3000, ..., irregular seeks, and the last frame alone. */
    float *win = malloc((size_t)M * ASR_MEL_WINDOW_FRAMES * sizeof(float));
    assert_non_null(win);
    int n_win = 0, mode = 0;
    for (int seek = 0; seek < nf; seek += ASR_MEL_WINDOW_FRAMES, n_win++) {
        int end = seek + ASR_MEL_WINDOW_FRAMES < nf ? seek + ASR_MEL_WINDOW_FRAMES : nf;
        check_window(m, x, n, whole, nf, seek, end, gmax, win, mode++);
    }
    static const int fixed[] = {0, 1371, 4222, 4223, 5000, 7777, 8999, 9400};
    uint32_t r = 777u;
    for (size_t k = 0; k < sizeof fixed / sizeof fixed[0] + 6; k++, n_win++) {
        int seek;
        if (k < sizeof fixed / sizeof fixed[0]) {
            seek = fixed[k];
        } else {
            r = r * 1103515245u + 12345u;
            seek = (int)((r >> 8) % (uint32_t)nf);
        }
        if (seek >= nf)
            seek = seek % nf;
        int end = seek + ASR_MEL_WINDOW_FRAMES < nf ? seek + ASR_MEL_WINDOW_FRAMES : nf;
        check_window(m, x, n, whole, nf, seek, end, gmax, win, mode++);
    }
    for (int f = nf - 3 > 0 ? nf - 3 : 0; f < nf; f++, n_win++) /* each of the last frames */
        check_window(m, x, n, whole, nf, f, f + 1, gmax, win, mode++);
    check_window(m, x, n, whole, nf, 0, 1, gmax, win, mode++);
    printf("mel stream %-26s n=%8zu frames=%5d gmax=%.6f tail<=%zu windows=%d: bit-identical\n",
           what, n, nf, (double)gmax, max_tail, n_win);
    free(win);
    free(raw1);
    free(scratch);
    free(whole);
}

static void test_mel_stream(void **state) {
    (void)state;
    asr_mel_t *m80 = NULL, *m128 = NULL;
    assert_int_equal(asr_mel_create(80, &m80), ASR_OK);
    assert_int_equal(asr_mel_create(128, &m128), ASR_OK);
    char path[1024];
    static const char *clips[] = {"en_jfk", "en_ldc93s1"};
    for (size_t c = 0; c < sizeof clips / sizeof clips[0]; c++) {
        size_t n = 0;
        snprintf(path, sizeof path, "%s/tests/data/audio/%s.wav", g_source, clips[c]);
        float *pcm = read_wav(path, &n);
        check_stream(m80, pcm, n, clips[c]);
        if (c == 0)
            check_stream(m128, pcm, n, "en_jfk (128 mels)");
        free(pcm);
    }

    /* 95 s: a chirp (100 Hz -> 7 kHz) plus noise and a quiet stretch, 4 windows of 3000. */
    const size_t n = 95 * 16000 + 123;
    float *x = malloc(n * sizeof(float));
    assert_non_null(x);
    for (size_t i = 0; i < n; i++) {
        const double t = (double)i / 16000.0;
        const double ph = 2.0 * M_PI * (100.0 * t + (6900.0 / (2.0 * 95.0)) * t * t);
        const double amp = t > 40.0 && t < 45.0 ? 0.001 : 0.4;
        x[i] = (float)(amp * sin(ph)) + 0.02f * frand();
    }
    check_stream(m80, x, n, "chirp+noise 95 s");

    /* Short and boundary lengths: reflection wrap (<= 40), frame 0's x[200], the final frame. */
    static const size_t lens[] = {0,   1,    2,    39,   40,   41,   159,  160,  161, 199,
                                  200, 201,  202,  359,  360,  361,  399,  400,  401, 520,
                                  521, 4095, 4096, 4097, 4296, 4297, 8192, 8392, 8393};
    for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++)
        check_stream(m80, x + 16000, lens[k], "chirp prefix");
    free(x);
    asr_mel_destroy(m80);
    asr_mel_destroy(m128);
}

static void test_mel_log_frames_invalid(void **state) {
    (void)state;
    asr_mel_t *m = NULL;
    assert_int_equal(asr_mel_create(80, &m), ASR_OK);
    float x[2000], out[80 * 16], mx = 0.0f;
    for (int i = 0; i < 2000; i++)
        x[i] = 0.1f * frand();
    /* 2000 samples: 13 frames; frames [2, 5) need x[120, 840). */
    assert_int_equal(asr_mel_log_frames(m, x + 120, 120, 720, 2000, 2, 5, out, 3, &mx), ASR_OK);
    assert_true(isfinite(mx));
    assert_int_equal(asr_mel_log_frames(m, x + 120, 120, 720, 2000, 2, 5, out, 3, NULL), ASR_OK);
    /* Chunk starts one sample late / ends one sample early / NULL. */
    assert_int_equal(asr_mel_log_frames(m, x + 121, 121, 719, 2000, 2, 5, out, 3, &mx),
                     ASR_ERR_INVALID);
    assert_true(mx == -INFINITY);
    assert_int_equal(asr_mel_log_frames(m, x + 120, 120, 719, 2000, 2, 5, out, 3, &mx),
                     ASR_ERR_INVALID);
    assert_int_equal(asr_mel_log_frames(m, NULL, 120, 720, 2000, 2, 5, out, 3, &mx),
                     ASR_ERR_INVALID);
    assert_int_equal(asr_mel_log_frames(m, x, 0, SIZE_MAX, 2000, 2, 5, out, 3, &mx), ASR_OK);
    assert_int_equal(asr_mel_log_frames(m, x + 1, 1, SIZE_MAX, 2000, 2, 5, out, 3, &mx),
                     ASR_ERR_INVALID); /* chunk_start + chunk_len overflows */
    /* Frame range, ld, m, n_total. */
    assert_int_equal(asr_mel_log_frames(NULL, x, 0, 2000, 2000, 0, 1, out, 1, &mx),
                     ASR_ERR_INVALID);
    assert_int_equal(asr_mel_log_frames(m, x, 0, 2000, 2000, -1, 1, out, 2, &mx), ASR_ERR_INVALID);
    assert_int_equal(asr_mel_log_frames(m, x, 0, 2000, 2000, 3, 2, out, 2, &mx), ASR_ERR_INVALID);
    assert_int_equal(asr_mel_log_frames(m, x, 0, 2000, 2000, 12, 14, out, 2, &mx), ASR_ERR_INVALID);
    assert_int_equal(asr_mel_log_frames(m, x, 0, 2000, 2000, 12, 13, out, 1, &mx), ASR_OK);
    assert_int_equal(asr_mel_log_frames(m, x, 0, 2000, 2000, 2, 5, out, 2, &mx), ASR_ERR_INVALID);
    assert_int_equal(asr_mel_log_frames(m, x, 0, 2000, 2000, 2, 5, NULL, 3, &mx), ASR_ERR_INVALID);
    assert_int_equal(asr_mel_log_frames(m, x, 0, 2000, SIZE_MAX, 2, 5, out, 3, &mx),
                     ASR_ERR_INVALID);
    /* Empty ranges: OK, -inf, nothing read or written. */
    mx = 0.0f;
    assert_int_equal(asr_mel_log_frames(m, NULL, 0, 0, 2000, 7, 7, NULL, 0, &mx), ASR_OK);
    assert_true(mx == -INFINITY);
    /* Empty signal: one frame, no samples needed, every raw value log10(1e-10) = -10. */
    assert_int_equal(asr_mel_log_frames(m, NULL, 0, 0, 0, 0, 1, out, 1, &mx), ASR_OK);
    assert_true(mx == -10.0f);
    for (int b = 0; b < 80; b++)
        assert_true(out[b] == -10.0f);
    asr_mel_normalize(out, 80, 1, 1, mx);
    for (int b = 0; b < 80; b++)
        assert_true(out[b] == -1.5f);
    asr_mel_destroy(m);
}

static void test_mel_oom(void **state) {
    (void)state;
    /* Fail each checked allocation of create in turn; each must fail cleanly (leak-free). */
    for (long nth = 1; nth < 50; nth++) {
        asr_mel_t *m = NULL;
        asr_alloc_fail_set(nth, 0);
        asr_err_t err = asr_mel_create(80, &m);
        asr_alloc_fail_set(0, 0);
        if (err == ASR_OK) {
            asr_mel_destroy(m);
            break;
        }
        assert_int_equal(err, ASR_ERR_NOMEM);
        assert_null(m);
    }
    asr_mel_t *m = NULL;
    assert_int_equal(asr_mel_create(80, &m), ASR_OK);
    float pcm[1000] = {0};
    float *mel = NULL;
    int nf = 0;
    asr_alloc_fail_set(1, 0);
    assert_int_equal(asr_mel_compute(m, pcm, 1000, 1, &mel, &nf), ASR_ERR_NOMEM);
    asr_alloc_fail_set(0, 0);
    assert_null(mel);
    asr_mel_destroy(m);
}

static double thread_cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Prints (does not assert) the time for 30 s of audio: wall time with 1 and 2 threads, and the
 * calling thread's CPU time with 1 thread (less sensitive to a busy machine). */
static void test_mel_timing(void **state) {
    (void)state;
    const size_t n = 30 * 16000;
    float *pcm = malloc(n * sizeof(float));
    assert_non_null(pcm);
    for (size_t i = 0; i < n; i++)
        pcm[i] = 0.3f * sinf((float)i * 0.05f) + 0.05f * frand();
    asr_mel_t *m = NULL;
    assert_int_equal(asr_mel_create(80, &m), ASR_OK);
    for (int threads = 1; threads <= 2; threads++) {
        double best = 1e9, best_cpu = 1e9;
        for (int rep = 0; rep < 10; rep++) {
            float *mel = NULL;
            int nf = 0;
            double t0 = asr_now_s(), c0 = thread_cpu_s();
            assert_int_equal(asr_mel_compute(m, pcm, n, threads, &mel, &nf), ASR_OK);
            double dt = asr_now_s() - t0, dc = thread_cpu_s() - c0;
            best = dt < best ? dt : best;
            best_cpu = dc < best_cpu ? dc : best_cpu;
            assert_int_equal(nf, 3001);
            free(mel);
        }
        if (threads == 1)
            printf("mel timing: 30 s of audio, 80 mels, 1 thread: %.2f ms wall, %.2f ms cpu (best "
                   "of 10)\n",
                   best * 1e3, best_cpu * 1e3);
        else
            printf("mel timing: 30 s of audio, 80 mels, %d threads: %.2f ms wall (best of 10)\n",
                   threads, best * 1e3);
    }
    asr_mel_destroy(m);
    free(pcm);
}

int main(void) {
    g_source = getenv("ASR_SOURCE");
    if (!g_source) {
        fprintf(stderr, "test_mel: ASR_SOURCE must be set; skipping\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fft_vs_dft),  cmocka_unit_test(test_fft_invalid),
        cmocka_unit_test(test_mel_goldens), cmocka_unit_test(test_mel_empty_and_tiny),
        cmocka_unit_test(test_mel_window),  cmocka_unit_test(test_mel_frames_need),
        cmocka_unit_test(test_mel_stream),  cmocka_unit_test(test_mel_log_frames_invalid),
        cmocka_unit_test(test_mel_oom),     cmocka_unit_test(test_mel_timing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
