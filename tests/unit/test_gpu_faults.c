/* Unit tests: device failures fail one attempt, not the model (issue #20, src/gpu/dev.h's
 * failures and fault injection, the GPU engine's batcher), on the host reference device with the
 * real tiny.en ($ASRD_MODELS, default ~/.cache/asrd/models; exit 77 when missing) and one clip
 * (tests/data/audio/en_jfk.wav), greedy:
 *
 *   (a) allocations: the device allocations of a load, a slot's creation and one transcription
 *       are counted, then each of them in turn is failed (ASR_DEV_FAULT_ALLOC nth = 1..count):
 *       the failing call returns ASR_ERR_NOMEM cleanly (a load: no model; a slot: no stream),
 *       asr_dev_allocated_bytes is back at its level before that call, nothing is sticky: the
 *       same model (or, after a failed load, a new one) transcribes the clip to the unfaulted
 *       run's text;
 *   (b) operations: an error in a load and in a slot's creation fails that call alone (nothing
 *       held after it); a recoverable error injected at a spread of operation counts of one
 *       transcription while a second stream transcribes concurrently: the transcription(s) whose
 *       jobs failed return ASR_ERR_GPU, the others the reference text, the model is not lost,
 *       and the next transcription on both streams gives the reference text again;
 *   (c) a lost context during a load: the load fails, nothing is held, the next load works; a
 *       lost context in the middle of two concurrent transcriptions: both return ASR_ERR_GPU,
 *       asr_model_device_lost is true, a later transcription and a slot's creation fail at once
 *       (within a bound), destroying the model brings the device bytes back to 0, and a model
 *       loaded again transcribes the clip to the reference text.
 *
 * Every check is against an injected fault having really happened (the event count passed its
 * number). ASan-clean: every path frees what it made.
 *
 *   test_gpu_faults [host|cuda]   (default host; cuda: the same on CUDA device 0 in its default
 *                                 compute type, exit 76 (Not Run) when no CUDA device is usable;
 *                                 the lost context there is injected, and its recovery goes through
 *                                 cudaDeviceReset when the model's device closes) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "asr/engine.h"
#include "audio/audio.h"
#include "core/core.h"
#include "gpu/dev.h"

#define MAX_BATCH 2
#define N_SEQ 1

static const char *g_device = "host";
static asr_dev_kind_t g_kind = ASR_DEV_HOST;
static char g_dir[4200];
static float *g_pcm;
static size_t g_n;
static char g_ref[2048]; /* the unfaulted transcript */

static uint64_t held(void) { return asr_dev_allocated_bytes(g_kind, 0); }

static asr_err_t load(asr_model_t **out, char *err, size_t err_len) {
    asr_model_params_t p = asr_model_default_params();
    p.device = g_device;
    p.max_batch = MAX_BATCH;
    return asr_model_load(g_dir, &p, out, err, err_len);
}

static asr_model_t *load_ok(void) {
    asr_model_t *m = NULL;
    char err[512] = "";
    asr_err_t rc = load(&m, err, sizeof err);
    if (rc != ASR_OK)
        print_error("load: %s: %s\n", asr_strerror(rc), err);
    assert_int_equal(rc, ASR_OK);
    return m;
}

/* Transcribes the clip greedy; the text into text (may be NULL). */
static asr_err_t transcribe(asr_stream_t *s, char *text, size_t len) {
    asr_transcribe_params_t p = asr_transcribe_default_params();
    p.beam_size = 1;
    p.best_of = 1;
    p.language = "en";
    asr_err_t rc = asr_stream_transcribe(s, g_pcm, g_n, &p);
    if (text && len) {
        text[0] = 0;
        for (int i = 0; rc == ASR_OK && i < asr_stream_n_segments(s); i++)
            strncat(text, asr_stream_segment(s, i)->text, len - strlen(text) - 1);
    }
    return rc;
}

static void expect_ref(asr_stream_t *s, const char *what) {
    char text[2048];
    asr_err_t rc = transcribe(s, text, sizeof text);
    if (rc != ASR_OK || strcmp(text, g_ref))
        print_error("%s: %s (%s): '%s'\n", what, asr_strerror(rc), asr_stream_errmsg(s), text);
    assert_int_equal(rc, ASR_OK);
    assert_string_equal(text, g_ref);
}

/* ---- (a) allocations ---- */
static void test_alloc_faults(void **state) {
    (void)state;
    const uint64_t base = held();
    const uint64_t a0 = asr_dev_fault_count(ASR_DEV_FAULT_ALLOC);
    asr_model_t *m = load_ok();
    const uint64_t a_load = asr_dev_fault_count(ASR_DEV_FAULT_ALLOC) - a0;
    const uint64_t loaded = held();
    assert_true(loaded > base);
    asr_stream_t *s = NULL;
    assert_int_equal(asr_stream_create_slot(m, N_SEQ, &s), ASR_OK);
    assert_true(held() > loaded);
    char text[2048];
    assert_int_equal(transcribe(s, text, sizeof text), ASR_OK);
    const uint64_t n_alloc = asr_dev_fault_count(ASR_DEV_FAULT_ALLOC) - a0;
    snprintf(g_ref, sizeof g_ref, "%s", text);
    print_message("unfaulted: %llu device allocations (%llu at load), %llu bytes held; '%s'\n",
                  (unsigned long long)n_alloc, (unsigned long long)a_load,
                  (unsigned long long)(held() - base), g_ref);
    assert_true(strstr(g_ref, "ask not what your country can do for you") != NULL);
    assert_true(a_load >= 3 && n_alloc > a_load); /* weights, scratch, pinned; the slot's */
    asr_stream_destroy(s);
    asr_model_destroy(m);
    assert_int_equal(held(), base);

    for (uint64_t nth = 1; nth <= n_alloc; nth++) {
        const uint64_t before = asr_dev_fault_count(ASR_DEV_FAULT_ALLOC);
        asr_dev_fault_set(ASR_DEV_FAULT_ALLOC, (long)nth);
        m = NULL;
        s = NULL;
        char err[512] = "";
        asr_err_t rc = load(&m, err, sizeof err);
        const char *where = "load";
        if (rc == ASR_OK) {
            const uint64_t level = held();
            rc = asr_stream_create_slot(m, N_SEQ, &s);
            where = "slot";
            if (rc != ASR_OK) {
                assert_null(s);
                assert_int_equal(held(), level);
                snprintf(err, sizeof err, "(stream creation)");
            } else {
                rc = transcribe(s, NULL, 0);
                where = "transcription";
            }
        } else {
            assert_null(m);
            assert_int_equal(held(), base);
        }
        asr_dev_fault_set(ASR_DEV_FAULT_ALLOC, 0);
        /* the fault happened, and was this call's */
        assert_true(asr_dev_fault_count(ASR_DEV_FAULT_ALLOC) - before >= nth);
        print_message("alloc fault %llu/%llu: %s: %s %s\n", (unsigned long long)nth,
                      (unsigned long long)n_alloc, where, asr_strerror(rc), err);
        assert_int_equal(rc, ASR_ERR_NOMEM);
        assert_true(!strcmp(where, "load") ? strstr(err, "MiB") != NULL : true);
        /* nothing sticky: the same model (or a new one) transcribes as before */
        if (!m)
            m = load_ok();
        assert_false(asr_model_device_lost(m));
        if (!s)
            assert_int_equal(asr_stream_create_slot(m, N_SEQ, &s), ASR_OK);
        expect_ref(s, "after an allocation fault");
        asr_stream_destroy(s);
        asr_model_destroy(m);
        assert_int_equal(held(), base);
    }
}

/* ---- (b), (c): two streams at once ---- */
typedef struct {
    asr_stream_t *s;
    asr_err_t rc;
    char text[2048];
    pthread_barrier_t *bar;
} job_t;

static void *job_main(void *arg) {
    job_t *j = arg;
    pthread_barrier_wait(j->bar);
    j->rc = transcribe(j->s, j->text, sizeof j->text);
    return NULL;
}

/* Both streams transcribe the clip at once. */
static void both(asr_stream_t *s1, asr_stream_t *s2, job_t out[2]) {
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, 2);
    pthread_t t[2];
    out[0] = (job_t){.s = s1, .bar = &bar};
    out[1] = (job_t){.s = s2, .bar = &bar};
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, job_main, &out[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&bar);
}

static void ensure_ref(void) {
    if (g_ref[0])
        return;
    asr_model_t *m = load_ok();
    asr_stream_t *s = NULL;
    assert_int_equal(asr_stream_create_slot(m, N_SEQ, &s), ASR_OK);
    assert_int_equal(transcribe(s, g_ref, sizeof g_ref), ASR_OK);
    asr_stream_destroy(s);
    asr_model_destroy(m);
}

static void test_op_faults(void **state) {
    (void)state;
    ensure_ref();
    /* an operation of a load (an upload's copy), and of a slot's creation (its memset): that
     * call fails, nothing stays allocated, the next one works */
    asr_model_t *m = NULL;
    char err[512] = "";
    asr_dev_fault_set(ASR_DEV_FAULT_OP, 5);
    assert_int_equal(load(&m, err, sizeof err), ASR_ERR_GPU);
    asr_dev_fault_set(ASR_DEV_FAULT_OP, 0);
    print_message("op fault in a load: %s\n", err);
    assert_null(m);
    assert_non_null(strstr(err, "injected"));
    assert_int_equal(held(), 0);
    m = load_ok();
    const uint64_t level = held();
    asr_stream_t *s1 = NULL, *s2 = NULL;
    asr_dev_fault_set(ASR_DEV_FAULT_OP, 1);
    assert_int_equal(asr_stream_create_slot(m, N_SEQ, &s1), ASR_ERR_GPU);
    asr_dev_fault_set(ASR_DEV_FAULT_OP, 0);
    assert_null(s1);
    assert_int_equal(held(), level);
    assert_int_equal(asr_stream_create_slot(m, N_SEQ, &s1), ASR_OK);
    assert_int_equal(asr_stream_create_slot(m, N_SEQ, &s2), ASR_OK);
    /* one transcription's operations: every fault below is reached by either stream's */
    uint64_t o0 = asr_dev_fault_count(ASR_DEV_FAULT_OP);
    expect_ref(s1, "unfaulted");
    const uint64_t n_ops = asr_dev_fault_count(ASR_DEV_FAULT_OP) - o0;
    print_message("one transcription: %llu device operations\n", (unsigned long long)n_ops);
    assert_true(n_ops > 100);
    const double at[] = {0.0, 0.02, 0.25, 0.5, 0.75, 0.95};
    for (size_t i = 0; i < sizeof at / sizeof *at; i++) {
        long nth = 1 + (long)(at[i] * (double)(n_ops - 1));
        o0 = asr_dev_fault_count(ASR_DEV_FAULT_OP);
        asr_dev_fault_set(ASR_DEV_FAULT_OP, nth);
        job_t j[2];
        both(s1, s2, j);
        asr_dev_fault_set(ASR_DEV_FAULT_OP, 0);
        assert_true(asr_dev_fault_count(ASR_DEV_FAULT_OP) - o0 >= (uint64_t)nth);
        int n_failed = 0;
        for (int k = 0; k < 2; k++) {
            print_message("op fault %ld: stream %d: %s %s\n", nth, k + 1, asr_strerror(j[k].rc),
                          j[k].rc == ASR_OK ? "" : asr_stream_errmsg(j[k].s));
            if (j[k].rc == ASR_OK) {
                assert_string_equal(j[k].text, g_ref);
            } else {
                assert_int_equal(j[k].rc, ASR_ERR_GPU);
                assert_non_null(strstr(asr_stream_errmsg(j[k].s), "injected"));
                n_failed++;
            }
        }
        assert_true(n_failed >= 1);
        assert_false(asr_model_device_lost(m));
        /* the model serves on: both streams, concurrently */
        both(s1, s2, j);
        for (int k = 0; k < 2; k++) {
            assert_int_equal(j[k].rc, ASR_OK);
            assert_string_equal(j[k].text, g_ref);
        }
    }
    asr_stream_destroy(s1);
    asr_stream_destroy(s2);
    asr_model_destroy(m);
    assert_int_equal(held(), 0);
}

static void test_lost(void **state) {
    (void)state;
    ensure_ref();
    /* lost during a load: no model, nothing held, the next load works */
    asr_model_t *m = NULL;
    char err[512] = "";
    asr_dev_fault_set(ASR_DEV_FAULT_LOST, 3);
    assert_int_equal(load(&m, err, sizeof err), ASR_ERR_GPU);
    asr_dev_fault_set(ASR_DEV_FAULT_LOST, 0);
    print_message("lost in a load: %s\n", err);
    assert_null(m);
    assert_non_null(strstr(err, "lost"));
    assert_int_equal(held(), 0);
    m = load_ok();
    asr_stream_t *s1 = NULL, *s2 = NULL;
    assert_int_equal(asr_stream_create_slot(m, N_SEQ, &s1), ASR_OK);
    assert_int_equal(asr_stream_create_slot(m, N_SEQ, &s2), ASR_OK);
    assert_false(asr_model_device_lost(m));
    /* lost in the middle of the decoding of both (an encoder pass is a few dozen operations) */
    const uint64_t o0 = asr_dev_fault_count(ASR_DEV_FAULT_OP);
    asr_dev_fault_set(ASR_DEV_FAULT_LOST, 400);
    job_t j[2];
    both(s1, s2, j);
    asr_dev_fault_set(ASR_DEV_FAULT_LOST, 0);
    assert_true(asr_dev_fault_count(ASR_DEV_FAULT_OP) - o0 >= 400);
    for (int k = 0; k < 2; k++) {
        print_message("lost: stream %d: %s %s\n", k + 1, asr_strerror(j[k].rc),
                      asr_stream_errmsg(j[k].s));
        assert_int_equal(j[k].rc, ASR_ERR_GPU);
    }
    assert_true(asr_model_device_lost(m));
    /* later calls fail at once, without the device */
    double t0 = asr_now_s();
    const uint64_t ops = asr_dev_fault_count(ASR_DEV_FAULT_OP);
    assert_int_equal(transcribe(s1, NULL, 0), ASR_ERR_GPU);
    asr_stream_t *s3 = NULL;
    assert_int_equal(asr_stream_create_slot(m, N_SEQ, &s3), ASR_ERR_GPU);
    assert_null(s3);
    double dt = asr_now_s() - t0;
    print_message("lost: a transcription and a slot refused in %.3f s\n", dt);
    assert_true(dt < 5.0);
    assert_int_equal(asr_dev_fault_count(ASR_DEV_FAULT_OP), ops);
    asr_stream_destroy(s1);
    asr_stream_destroy(s2);
    asr_model_destroy(m);
    assert_int_equal(held(), 0);
    /* loaded again: a working model */
    m = load_ok();
    assert_false(asr_model_device_lost(m));
    assert_int_equal(asr_stream_create_slot(m, N_SEQ, &s1), ASR_OK);
    expect_ref(s1, "reloaded after a lost context");
    asr_stream_destroy(s1);
    asr_model_destroy(m);
    assert_int_equal(held(), 0);
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "cuda")) {
        g_device = "cuda";
        g_kind = ASR_DEV_CUDA;
        char why[256] = "";
        if (asr_gpu_cuda_count(why, sizeof why) == 0) {
            printf("test_gpu_faults: no usable CUDA device: %s\n", why);
            return 76;
        }
    }
    const char *models = getenv("ASRD_MODELS");
    const char *home = getenv("HOME");
    if (models && *models)
        snprintf(g_dir, sizeof g_dir, "%.4000s/tiny.en", models);
    else
        snprintf(g_dir, sizeof g_dir, "%.4000s/.cache/asrd/models/tiny.en", home ? home : "");
    struct stat st;
    if (stat(g_dir, &st) != 0) {
        printf("tiny.en not found at %s (make models): Not Run\n", g_dir);
        return 77;
    }
    const char *src = getenv("ASR_SOURCE");
    char path[4200], err[512];
    snprintf(path, sizeof path, "%.4000s/tests/data/audio/en_jfk.wav", src ? src : ".");
    if (asr_audio_load(path, &g_pcm, &g_n, err, sizeof err) != ASR_OK) {
        printf("cannot read %s: %s\n", path, err);
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alloc_faults),
        cmocka_unit_test(test_op_faults),
        cmocka_unit_test(test_lost),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    free(g_pcm);
    return rc;
}
