/* The CPU batcher of decoder steps (src/engine/cpu_batch.c, ASRD_CPU_BATCH): N streams of one CPU
 * model decoding at once, their steps joined into shared passes, give each stream exactly what it
 * gets alone.
 *
 * 1. A random tiny model (made here), float32 and int8: 4 threads each run a fixed-length window
 *    (asr_stream_bench_window, 40 tokens; greedy on two, beam 5 on two) at once with the batcher;
 *    each one's tokens and its last step's logits (every row, bit for bit) equal the same window
 *    run alone without the batcher; the batcher's counters show passes of several streams.
 * 2. tiny.en ($ASRD_MODELS or ~/.cache/asrd/models; skipped without it): 4 clips of
 *    tests/data/audio transcribed at once (greedy and beam 5, alternately) with the batcher, each
 *    transcript's tokens and text equal to the clip's solo run without it.
 *
 * `test_cpu_batch random` runs part 1's int8 only, and without the encoder (its output is the
 * window's values, the steps' tokens fixed: asr_stream_bench_decoder; the logits compare): the
 * sanitizer builds, where ThreadSanitizer checks the batcher's hand-offs (ctest -L tsan).
 *
 * The gather deadline is fixed long (ASRD_CPU_BATCH_GATHER_US, 200 ms) so that streams descheduled
 * on a loaded machine still meet in a pass; the comparisons do not depend on it. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "asr/engine.h"
#include "audio/audio.h"
#include "engine/engine_int.h"
#include "models_dir.h"
#include "random_dir.h"

#define N_STREAMS 4
#define N_TOKENS 40

static bool g_random_only; /* `test_cpu_batch random`: sanitizer builds */

static asr_model_t *load(const char *dir, const char *ct) {
    asr_model_params_t p = asr_model_default_params();
    p.compute_type = ct;
    p.n_threads = 2;
    asr_model_t *m = NULL;
    char err[512] = "";
    if (asr_model_load(dir, &p, &m, err, sizeof err) != ASR_OK)
        print_message("load %s (%s): %s\n", dir, ct, err);
    return m;
}

/* ---- part 1: fixed-length windows of a random model ---- */
typedef struct {
    asr_model_t *m;
    const float *win;
    int beam;
    pthread_barrier_t *bar; /* NULL: solo */
    int32_t tok[N_TOKENS];
    float *logits; /* [beam][n_vocab] of the last step */
    asr_err_t rc;
} win_t;

static void *win_main(void *arg) {
    win_t *w = arg;
    asr_stream_t *s = NULL;
    w->rc = asr_stream_create_slot(w->m, 5, &s);
    if (w->bar)
        pthread_barrier_wait(w->bar);
    if (w->rc == ASR_OK && g_random_only) { /* no encoder pass (slow under sanitizers): its
                                                output is the window's values, the steps' tokens
                                                fixed; the logits compare */
        const size_t n_out = (size_t)1500 * w->m->info.d_model, n_win = w->m->info.n_mels * 3000;
        for (size_t i = 0; i < n_out; i++)
            s->eb.out[i] = w->win[i % n_win];
        s->enc_out_live = true;
        double ms = 0;
        w->rc = asr_stream_bench_decoder(s, w->beam, N_TOKENS, &ms);
        s->bench_tokens = calloc(N_TOKENS, sizeof(int32_t)); /* (freed with the stream) */
    } else if (w->rc == ASR_OK) {
        w->rc = asr_stream_bench_window(s, w->win, w->beam, N_TOKENS);
    }
    if (w->rc == ASR_OK) {
        size_t n = (size_t)w->beam * w->m->info.n_vocab;
        memcpy(w->tok, s->bench_tokens, sizeof w->tok);
        w->logits = malloc(n * sizeof(float));
        memcpy(w->logits, s->logits, n * sizeof(float));
    }
    asr_stream_destroy(s);
    return NULL;
}

static void windows_case(const char *dir, const char *ct) {
    asr_model_t *m = load(dir, ct);
    assert_non_null(m);
    const size_t win_n = (size_t)m->info.n_mels * 3000;
    float *wins = malloc(N_STREAMS * win_n * sizeof(float));
    unsigned seed = 11;
    for (size_t i = 0; i < N_STREAMS * win_n; i++) {
        seed = seed * 1103515245u + 12345u;
        wins[i] = (float)((seed >> 9) & 0xffff) / 65536.0f * 1.5f - 0.8f;
    }
    win_t solo[N_STREAMS], conc[N_STREAMS];
    for (int i = 0; i < N_STREAMS; i++) { /* alone, no batcher */
        solo[i] = (win_t){m, wins + i * win_n, i % 2 ? 5 : 1, NULL, {0}, NULL, ASR_OK};
        win_main(&solo[i]);
        assert_int_equal(solo[i].rc, ASR_OK);
    }
    assert_int_equal(asr__cpu_batch_start(m, 2), ASR_OK);
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, N_STREAMS);
    pthread_t th[N_STREAMS];
    for (int i = 0; i < N_STREAMS; i++) {
        conc[i] = (win_t){m, wins + i * win_n, i % 2 ? 5 : 1, &bar, {0}, NULL, ASR_OK};
        pthread_create(&th[i], NULL, win_main, &conc[i]);
    }
    for (int i = 0; i < N_STREAMS; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&bar);
    asr_batch_stats_t st;
    asr_model_batch_stats(m, &st);
    print_message("%s: %ld batched steps, %.2f streams a step (max %d streams, %d rows)\n", ct,
                  st.dec_batches, st.dec_batches ? (double)st.dec_streams / st.dec_batches : 0.0,
                  st.max_dec_streams, st.max_dec_rows);
    int same = 0;
    for (int i = 0; i < N_STREAMS; i++) {
        assert_int_equal(conc[i].rc, ASR_OK);
        size_t n = (size_t)conc[i].beam * m->info.n_vocab;
        bool eq_tok = !memcmp(conc[i].tok, solo[i].tok, sizeof solo[i].tok);
        bool eq_log = !memcmp(conc[i].logits, solo[i].logits, n * sizeof(float));
        if (!eq_tok || !eq_log)
            print_message("%s stream %d (beam %d): tokens %s, logits %s\n", ct, i, conc[i].beam,
                          eq_tok ? "same" : "DIFFER", eq_log ? "same" : "DIFFER");
        same += eq_tok && eq_log;
        free(conc[i].logits);
        free(solo[i].logits);
    }
    assert_int_equal(same, N_STREAMS);
    assert_true(st.max_dec_streams > 1);
    assert_true(st.dec_streams > st.dec_batches);
    free(wins);
    asr_model_destroy(m); /* stops the batcher */
}

static char g_random_dir[] = "/tmp/asr_cpu_batch_XXXXXX";

static void test_random_windows(void **state) {
    (void)state;
    if (!g_random_only) /* under sanitizers: int8 only (its activations' buffer is the batch's) */
        windows_case(g_random_dir, "float32");
    windows_case(g_random_dir, "int8");
}

/* ---- part 2: real transcriptions of tiny.en ---- */
typedef struct {
    asr_model_t *m;
    const float *pcm;
    size_t n;
    int beam;
    pthread_barrier_t *bar;
    int32_t *tok;
    int n_tok;
    char text[4096];
    asr_err_t rc;
} tr_t;

static void *tr_main(void *arg) {
    tr_t *t = arg;
    asr_stream_t *s = NULL;
    t->rc = asr_stream_create_slot(t->m, 5, &s);
    if (t->bar)
        pthread_barrier_wait(t->bar);
    if (t->rc != ASR_OK)
        return NULL;
    asr_transcribe_params_t p = asr_transcribe_default_params();
    p.beam_size = p.best_of = t->beam;
    p.language = "en";
    t->rc = asr_stream_transcribe(s, t->pcm, t->n, &p);
    int n = 0;
    for (int i = 0; i < asr_stream_n_segments(s); i++)
        n += asr_stream_segment(s, i)->n_tokens;
    t->tok = malloc(sizeof(int32_t) * (size_t)(n + 1));
    t->n_tok = 0;
    t->text[0] = 0;
    for (int i = 0; i < asr_stream_n_segments(s); i++) {
        const asr_segment_t *g = asr_stream_segment(s, i);
        memcpy(t->tok + t->n_tok, g->tokens, sizeof(int32_t) * (size_t)g->n_tokens);
        t->n_tok += g->n_tokens;
        strncat(t->text, g->text, sizeof t->text - strlen(t->text) - 1);
    }
    asr_stream_destroy(s);
    return NULL;
}

static void test_tiny_en_transcripts(void **state) {
    (void)state;
    char dir[1300];
    if (!asr_test_model_dir("tiny.en", dir, sizeof dir)) {
        print_message("tiny.en not found: part 2 skipped\n");
        skip();
    }
    const char *src = getenv("ASR_SOURCE");
    const char *names[N_STREAMS] = {"en_jfk.wav", "en_librispeech_1995-1837-0001.wav",
                                    "en_jfk.flac", "en_librispeech_1995-1837-0001.wav"};
    float *pcm[N_STREAMS] = {0};
    size_t n[N_STREAMS] = {0};
    for (int i = 0; i < N_STREAMS; i++) {
        char p[4400], err[512];
        snprintf(p, sizeof p, "%.4000s/tests/data/audio/%s", src ? src : ".", names[i]);
        assert_int_equal(asr_audio_load(p, &pcm[i], &n[i], err, sizeof err), ASR_OK);
    }
    asr_model_t *m = load(dir, NULL);
    assert_non_null(m);
    tr_t solo[N_STREAMS], conc[N_STREAMS];
    for (int i = 0; i < N_STREAMS; i++) {
        solo[i] = (tr_t){.m = m, .pcm = pcm[i], .n = n[i], .beam = i % 2 ? 5 : 1};
        tr_main(&solo[i]);
        assert_int_equal(solo[i].rc, ASR_OK);
    }
    assert_int_equal(asr__cpu_batch_start(m, 2), ASR_OK);
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, N_STREAMS);
    pthread_t th[N_STREAMS];
    for (int i = 0; i < N_STREAMS; i++) {
        conc[i] = (tr_t){.m = m, .pcm = pcm[i], .n = n[i], .beam = i % 2 ? 5 : 1, .bar = &bar};
        pthread_create(&th[i], NULL, tr_main, &conc[i]);
    }
    for (int i = 0; i < N_STREAMS; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&bar);
    asr_batch_stats_t st;
    asr_model_batch_stats(m, &st);
    print_message("tiny.en: %ld batched steps, %.2f streams a step (max %d streams, %d rows)\n",
                  st.dec_batches, st.dec_batches ? (double)st.dec_streams / st.dec_batches : 0.0,
                  st.max_dec_streams, st.max_dec_rows);
    int same = 0;
    for (int i = 0; i < N_STREAMS; i++) {
        bool eq = conc[i].rc == ASR_OK && conc[i].n_tok == solo[i].n_tok &&
                  !memcmp(conc[i].tok, solo[i].tok, sizeof(int32_t) * (size_t)solo[i].n_tok) &&
                  !strcmp(conc[i].text, solo[i].text);
        print_message("%s beam %d: %s the solo run (%d tokens)%s%s\n", names[i], conc[i].beam,
                      eq ? "identical to" : "DIFFERS from", conc[i].n_tok, eq ? "" : ": ",
                      eq ? "" : conc[i].text);
        same += eq;
        free(conc[i].tok);
        free(solo[i].tok);
    }
    for (int i = 0; i < N_STREAMS; i++)
        free(pcm[i]);
    asr_model_destroy(m);
    assert_int_equal(same, N_STREAMS);
    assert_true(st.max_dec_streams > 1);
}

static int make_random(void **state) {
    (void)state;
    char err[512] = "";
    if (!asr_test_random_dir("tiny", g_random_dir, err, sizeof err)) {
        print_message("random model: %s\n", err);
        return -1;
    }
    return 0;
}

static int remove_random(void **state) {
    (void)state;
    return asr_test_remove_dir(g_random_dir) ? 0 : -1;
}

int main(int argc, char **argv) {
    setenv("ASRD_CPU_BATCH_GATHER_US", "200000", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_windows),
        cmocka_unit_test(test_tiny_en_transcripts),
    };
    /* "random": part 1 only (sanitizer builds, many times slower) */
    g_random_only = argc > 1 && !strcmp(argv[1], "random");
    const size_t n = g_random_only ? 1 : 2;
    return _cmocka_run_group_tests("test_cpu_batch", tests, n, make_random, remove_random);
}
