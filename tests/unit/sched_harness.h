/* Unit tests of the scheduler (test_sched.c, test_sched_gpu.c): the shared job harness. A test job
 * (tjob_t) is an asr_sched_job_t whose run_cb does what its mode says: RUN_OK succeeds, RUN_GATE
 * holds its slot (beating) until g.gate_open, and the modes from RUN_N_SHARED on are the
 * including test's own (tjob_run_mode). Header-only, included once by each test program, which
 * must define the two hooks declared below.
 *
 * Invariants checked in every run_cb, on the worker thread: at most max_parallel run_cbs at once
 * and a slot that holds the job's sequences, plus the test's own checks (tjob_attempt). They only
 * count violations (cmocka's asserts must stay on the test thread); check_violations() fails the
 * test on the test thread when there were any. Polls have a deadline of WAIT_S. */
#ifndef ASR_TEST_SCHED_HARNESS_H
#define ASR_TEST_SCHED_HARNESS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/core.h"
#include "sched/sched.h"
#include "models_dir.h"

#define WAIT_S 120.0 /* deadline of every poll: generous for sanitizer builds on a loaded host */

/* ---- models ---- */

static char g_tiny[512], g_base[512];
static asr_model_info_t g_tiny_info, g_base_info;

/* tiny.en and base found (models_dir.h) and probed into g_tiny*, g_base*. */
static bool find_models(void) {
    char err[256];
    return asr_test_model_dir("tiny.en", g_tiny, sizeof g_tiny) &&
           asr_test_model_dir("base", g_base, sizeof g_base) &&
           asr_model_probe(g_tiny, &g_tiny_info, err, sizeof err) == ASR_OK &&
           asr_model_probe(g_base, &g_base_info, err, sizeof err) == ASR_OK;
}

/* A scheduler's models: each a tiny.en or base directory under its own id. */
typedef struct {
    const char *id;
    bool base;
} mspec_t;

/* specs[0..n) for ms[0..n): the model directories under their ids; n <= 4. */
static void model_specs(const mspec_t *ms, int n, asr_sched_model_spec_t specs[4]) {
    assert_true(n <= 4);
    for (int i = 0; i < n; i++)
        specs[i] = (asr_sched_model_spec_t){ms[i].id, ms[i].base ? g_base : g_tiny};
}

static const mspec_t ONE_TINY[] = {{"tiny.en", false}};
static const mspec_t BASE_TINY[] = {{"base", true}, {"tiny.en", false}};

/* ---- jobs with scripted attempts ---- */

enum {
    RUN_OK,       /* succeeds */
    RUN_GATE,     /* holds its slot until gate_open, then succeeds */
    RUN_N_SHARED, /* the including test's own modes start here */
};

#define MAX_ATT 8

typedef struct {
    asr_sched_job_t job; /* first: run_cb/done_cb get back to the test job from it */
    int mode;
    atomic_int started;
    atomic_int n_done;
    atomic_int status;
    int n_att;                                 /* run_cb calls (test_sched.c records them) */
    int att_model[MAX_ATT], att_nseq[MAX_ATT]; /* served model and n_seq of each attempt */
    const char *device;                        /* served_device seen in the last run_cb */
} tjob_t;

static struct {
    asr_sched_t *s;
    int max_parallel;
    atomic_int gate_open;
    atomic_int running;
    atomic_int violations;
    atomic_int pressure; /* the test shrinks the budget: used may exceed it for a while */
    char why[256];
} g;

/* Defined by the including test. tjob_attempt: its own checks of an attempt (violation() only),
 * and what it records, before the job counts as started. tjob_run_mode: what an attempt of one of
 * its own modes (RUN_N_SHARED on) does and returns. Both run on a worker thread. */
static void tjob_attempt(tjob_t *t);
static asr_err_t tjob_run_mode(tjob_t *t, asr_stream_t *stream);

static void violation(const char *fmt, ...) {
    if (atomic_fetch_add(&g.violations, 1) == 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(g.why, sizeof g.why, fmt, ap);
        va_end(ap);
    }
}

static void nap_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static asr_err_t run_cb(asr_sched_job_t *job, asr_stream_t *stream) {
    tjob_t *t = (tjob_t *)job;
    int now = atomic_fetch_add(&g.running, 1) + 1;
    if (now > g.max_parallel)
        violation("%d run_cbs at once, max_parallel %d", now, g.max_parallel);
    if (!stream || asr_stream_n_seq(stream) < job->n_seq)
        violation("slot holds %d sequences, job needs %d", stream ? asr_stream_n_seq(stream) : -1,
                  job->n_seq);
    tjob_attempt(t);
    atomic_store(&t->started, 1);
    asr_err_t rc = ASR_OK;
    if (t->mode == RUN_GATE) { /* beats like a transcription does */
        double deadline = asr_now_s() + WAIT_S;
        while (!atomic_load(&g.gate_open) && asr_now_s() < deadline) {
            asr_sched_job_beat(job);
            nap_ms(2);
        }
    } else if (t->mode != RUN_OK) {
        rc = tjob_run_mode(t, stream);
    }
    atomic_fetch_sub(&g.running, 1);
    return rc;
}

static void done_cb(asr_sched_job_t *job, asr_err_t status) {
    tjob_t *t = (tjob_t *)job;
    atomic_store(&t->status, status);
    atomic_fetch_add(&t->n_done, 1);
}

static void tjob_init(tjob_t *t, int model, int n_seq, int mode) {
    memset(t, 0, sizeof *t);
    t->mode = mode;
    t->job.model = model;
    t->job.n_seq = n_seq;
    t->job.keep_alive_s = ASR_SCHED_KEEP_ALIVE_DEFAULT;
    t->job.run_cb = run_cb;
    t->job.done_cb = done_cb;
    atomic_store(&t->status, 1); /* not an asr_err_t: "no status yet" */
}

static void submit_ok(tjob_t *t) {
    asr_err_t rc = asr_sched_submit(g.s, &t->job);
    if (rc != ASR_OK)
        fail_msg("submit: %s (%s)", asr_strerror(rc), t->job.errmsg);
}

/* Polls until `t` is done; returns its status. Fails the test past the deadline. */
static asr_err_t wait_done(tjob_t *t) {
    double deadline = asr_now_s() + WAIT_S;
    while (!atomic_load(&t->n_done) && asr_now_s() < deadline)
        nap_ms(2);
    if (!atomic_load(&t->n_done))
        fail_msg("job not done within %.0f s", WAIT_S);
    return (asr_err_t)atomic_load(&t->status);
}

static void wait_started(tjob_t *t) {
    double deadline = asr_now_s() + WAIT_S;
    while (!atomic_load(&t->started) && asr_now_s() < deadline)
        nap_ms(2);
    assert_true(atomic_load(&t->started));
}

/* ---- the scheduler ---- */

/* g.s = a scheduler made from `p`, with the harness's state reset (gate closed, nothing running,
 * no violations, no pressure) and max_parallel taken from p. Fails the test when creation fails. */
static void sched_create_checked(const asr_sched_params_t *p) {
    atomic_store(&g.gate_open, 0);
    atomic_store(&g.running, 0);
    atomic_store(&g.violations, 0);
    atomic_store(&g.pressure, 0);
    g.why[0] = 0;
    g.max_parallel = p->max_parallel;
    char err[512] = "";
    asr_err_t rc = asr_sched_create(p, &g.s, err, sizeof err);
    if (rc != ASR_OK)
        fail_msg("asr_sched_create: %s: %s", asr_strerror(rc), err);
}

/* Fails the test if any run_cb counted an invariant violation (on the test thread, once the
 * scheduler is destroyed). */
static void check_violations(void) {
    if (atomic_load(&g.violations))
        fail_msg("%d invariant violation(s), first: %s", atomic_load(&g.violations), g.why);
}

#endif
