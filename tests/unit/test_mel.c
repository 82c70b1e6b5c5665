/* Unit tests for src/engine/mel.c and src/engine/fft.c.
 *
 * - The (double-precision) FFT against a naive DFT on random input, n = 400 and other sizes.
 * - asr_mel_compute against faster-whisper 1.2.1 goldens (tests/golden/make_mel_golden.py):
 *   max abs error <= 1e-4 over all bins, n_frames equal; every golden is also run with 3 threads
 *   and must be bit-identical to the single-threaded result.
 * - asr_mel_window / asr_mel_window_n padding, empty and 1-sample input, bad arguments, OOM.
 * - Timing of 30 s of audio on one thread (printed, not asserted: sanitizer builds are slow).
 *
 * Paths: ASR_SOURCE (repo root, for the goldens) and ASR_SHARED (for the WAVs). Exits 77 (skip)
 * when either is missing.
 */
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

static const char *g_source, *g_shared;

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
    snprintf(path, sizeof path, "%s/audio/%s.wav", g_shared, clip);
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
    g_shared = getenv("ASR_SHARED");
    if (!g_source || !g_shared) {
        fprintf(stderr, "test_mel: ASR_SOURCE and ASR_SHARED must be set; skipping\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fft_vs_dft),  cmocka_unit_test(test_fft_invalid),
        cmocka_unit_test(test_mel_goldens), cmocka_unit_test(test_mel_empty_and_tiny),
        cmocka_unit_test(test_mel_window),  cmocka_unit_test(test_mel_oom),
        cmocka_unit_test(test_mel_timing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
