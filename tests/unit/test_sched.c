/* Unit tests for src/sched (the memory-contract scheduler), driven by an injected run callback
 * (the job's run_cb decides what each attempt returns, and can hold a slot until the test
 * releases it) and by the core's allocation fault injection (asr_alloc_fail_set). The models are
 * the real tiny.en and base directories: the scheduler probes them and loads their weights, but
 * no audio is transcribed. The budget is set through memory_limit from the models' own plans, so
 * every expectation is derived from asr_plan_compute, not hard-coded.
 *
 * Covered: the budget (exact accounting of weights and slots, a model that never fits), the queue
 * (max_queue -> BUSY at submit, max_wait -> BUSY while waiting for memory or for a worker), LRU
 * eviction,
 * keep-alive expiry, the fallback chain, the out-of-memory policy (one sequence, then the fallback
 * chain, then ASR_ERR_NOMEM; from run_cb and from an injected allocation failure), cancel, drain,
 * and a concurrent mix. Invariants asserted throughout: done_cb exactly once per submitted job
 * (never for a rejected submit), used bytes never above the budget (checked inside every run_cb),
 * at most max_parallel run_cbs at once, a slot that holds the job's sequences, and at rest used
 * bytes equal the weights of the loaded models plus their cached slots.
 *
 * Invariant checks that run on worker threads only count violations (cmocka's asserts must stay
 * on the test thread); each test asserts the count is zero.
 *
 * Models: $ASRD_MODELS/{tiny.en,base}, else ~/.cache/asrd/models, else /tmp/devmodels. Without
 * them the program exits 77 (a failure under CI=true: scripts/ctest-run.sh). */
#include "sched_harness.h"

/* test_injected_load_failures tries every allocation site of a model load; under ThreadSanitizer
 * every 4th (the same code path, and each load's shadow memory costs seconds there). */
#if defined(__SANITIZE_THREAD__)
#define SITE_STRIDE 4
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SITE_STRIDE 4
#endif
#endif
#ifndef SITE_STRIDE
#define SITE_STRIDE 1
#endif

/* ---- models and plans ---- */

static asr_plan_t plan_of(const asr_model_info_t *info, int n_seq) {
    asr_plan_t p;
    assert_int_equal(asr_plan_compute(info, NULL, n_seq, false, &p), ASR_OK);
    return p;
}
static uint64_t w_tiny(void) { return plan_of(&g_tiny_info, 1).weights; }
static uint64_t s_tiny(int n) { return plan_of(&g_tiny_info, n).slot; }
static uint64_t w_base(void) { return plan_of(&g_base_info, 1).weights; }
static uint64_t s_base(int n) { return plan_of(&g_base_info, n).slot; }

/* ---- jobs with scripted attempts (sched_harness.h: RUN_OK, RUN_GATE) ---- */

enum {
    RUN_NOMEM = RUN_N_SHARED, /* every attempt runs out of memory */
    RUN_NOMEM_MULTI,          /* out of memory with more than one sequence */
    RUN_UNTIL_CANCEL,         /* runs until cancelled, returns ASR_ERR_CANCELLED */
    RUN_FAIL_MODEL,           /* a final error that is not retried */
};

static void check_budget(const char *where) {
    asr_sched_stats_t st;
    asr_sched_stats(g.s, &st);
    if (st.used_bytes > st.budget_bytes)
        violation("%s: used %llu > budget %llu", where, (unsigned long long)st.used_bytes,
                  (unsigned long long)st.budget_bytes);
}

/* Each attempt: the job's attempt count, the model and sequences it was served with, the budget. */
static void tjob_attempt(tjob_t *t) {
    asr_sched_job_t *job = &t->job;
    if (job->attempts != t->n_att + 1)
        violation("attempts %d after %d run_cb calls", job->attempts, t->n_att);
    if (t->n_att < MAX_ATT) {
        t->att_model[t->n_att] = job->served_model;
        t->att_nseq[t->n_att] = job->n_seq;
    }
    t->n_att++;
    check_budget("run_cb");
}

static asr_err_t tjob_run_mode(tjob_t *t, asr_stream_t *stream) {
    (void)stream;
    asr_sched_job_t *job = &t->job;
    double deadline = asr_now_s() + WAIT_S;
    switch (t->mode) {
    case RUN_NOMEM:
        return ASR_ERR_NOMEM;
    case RUN_NOMEM_MULTI:
        return job->n_seq > 1 ? ASR_ERR_NOMEM : ASR_OK;
    case RUN_UNTIL_CANCEL:
        while (!asr_sched_job_cancelled(job) && asr_now_s() < deadline) {
            asr_sched_job_beat(job);
            nap_ms(2);
        }
        return asr_sched_job_cancelled(job) ? ASR_ERR_CANCELLED : ASR_OK;
    case RUN_FAIL_MODEL:
        return ASR_ERR_MODEL;
    default:
        return ASR_OK;
    }
}

static void model_status(const char *id, asr_sched_model_status_t *st) {
    int i = asr_sched_model_find(g.s, id);
    assert_true(i >= 0);
    asr_sched_model_status(g.s, i, st);
}

/* At rest (nothing running or queued): used == weights of loaded models + their cached slots. */
static void assert_accounting(void) {
    asr_sched_stats_t st;
    asr_sched_stats(g.s, &st);
    assert_int_equal(st.n_busy, 0);
    assert_int_equal(st.queue_depth, 0);
    uint64_t sum = 0;
    for (int i = 0; i < asr_sched_n_models(g.s); i++) {
        asr_sched_model_status_t ms;
        asr_sched_model_status(g.s, i, &ms);
        assert_int_equal(ms.slots_in_use, 0);
        if (!strcmp(ms.state, "loaded"))
            sum += ms.weights_bytes;
        else
            assert_int_equal(ms.slots_bytes, 0);
        sum += ms.slots_bytes;
    }
    assert_int_equal(st.used_bytes, sum);
    assert_true(st.used_bytes <= st.budget_bytes);
}

/* A scheduler: models (mspec_t), a budget of `budget` bytes for weights and slots, and the other
 * parameters from `cfg` (zero: defaults). */
typedef struct {
    uint64_t budget;
    int max_parallel; /* default 1 */
    int max_queue;    /* default 8 */
    double max_wait_s;
    double keep_alive_s; /* default -1 (never); set keep_alive_set to use 0 */
    const char *fallback;
} cfg_t;

static void start(const mspec_t *ms, int n, cfg_t c) {
    asr_sched_model_spec_t specs[4];
    model_specs(ms, n, specs);
    asr_sched_params_t p = {
        .models = specs,
        .n_models = n,
        .max_parallel = c.max_parallel ? c.max_parallel : 1,
        .max_queue = c.max_queue ? c.max_queue : 8,
        .max_wait_s = c.max_wait_s ? c.max_wait_s : 300,
        .keep_alive_s = c.keep_alive_s ? c.keep_alive_s : -1,
        .memory_limit = c.budget + ASR_PLAN_SERVER_OVERHEAD,
        .n_threads = 2,
        .fallback = c.fallback,
    };
    sched_create_checked(&p);
    asr_sched_stats_t st;
    asr_sched_stats(g.s, &st);
    assert_int_equal(st.budget_bytes, c.budget);
}

static void stop(void) {
    asr_sched_destroy(g.s);
    g.s = NULL;
    check_violations();
}

static void assert_once(const tjob_t *t) { assert_int_equal(atomic_load(&t->n_done), 1); }

/* ---- tests ---- */

/* One job loads its model and leaves the slot cached; a second reuses both. Exact accounting. */
static void test_run_and_cache(void **state) {
    (void)state;
    start(ONE_TINY, 1, (cfg_t){.budget = w_tiny() + s_tiny(5)});
    tjob_t a, b;
    tjob_init(&a, 0, 5, RUN_OK);
    submit_ok(&a);
    assert_int_equal(wait_done(&a), ASR_OK);
    asr_sched_stats_t st;
    asr_sched_stats(g.s, &st);
    assert_int_equal(st.n_loads, 1);
    assert_int_equal(st.used_bytes, w_tiny() + s_tiny(5));
    asr_sched_model_status_t ms;
    model_status("tiny.en", &ms);
    assert_string_equal(ms.state, "loaded");
    assert_int_equal(ms.slots_cached, 1);
    assert_true(ms.expires_in_s < 0); /* keep_alive -1: never */

    tjob_init(&b, 0, 3, RUN_OK); /* fits the cached 5-sequence slot */
    submit_ok(&b);
    assert_int_equal(wait_done(&b), ASR_OK);
    asr_sched_stats(g.s, &st);
    assert_int_equal(st.n_loads, 1);
    assert_int_equal(st.n_done, 2);
    assert_int_equal(a.job.attempts, 1);
    assert_int_equal(b.job.served_model, 0);
    assert_accounting();
    stop();
    assert_once(&a);
    assert_once(&b);
}

/* Bad submits are refused at once and never reach done_cb. */
static void test_invalid_submit(void **state) {
    (void)state;
    start(ONE_TINY, 1, (cfg_t){.budget = w_tiny() + s_tiny(5)});
    tjob_t t;
    int bad[3][2] = {{0, 9}, {1, 1}, {0, 0}}; /* {model, n_seq} */
    for (int i = 0; i < 3; i++) {
        tjob_init(&t, bad[i][0], bad[i][1], RUN_OK);
        assert_int_equal(asr_sched_submit(g.s, &t.job), ASR_ERR_INVALID);
    }
    stop();
    assert_int_equal(atomic_load(&t.n_done), 0);
}

/* max_queue: with the only worker busy and the queue full, a submit is BUSY at once. */
static void test_queue_full(void **state) {
    (void)state;
    start(ONE_TINY, 1, (cfg_t){.budget = w_tiny() + 2 * s_tiny(1), .max_queue = 1});
    tjob_t a, b, c;
    tjob_init(&a, 0, 1, RUN_GATE);
    tjob_init(&b, 0, 1, RUN_OK);
    tjob_init(&c, 0, 1, RUN_OK);
    submit_ok(&a);
    wait_started(&a);
    submit_ok(&b); /* waits: the one worker is busy */
    assert_int_equal(asr_sched_submit(g.s, &c.job), ASR_ERR_BUSY);
    assert_non_null(strstr(c.job.errmsg, "queue is full"));
    asr_sched_stats_t st;
    asr_sched_stats(g.s, &st);
    assert_int_equal(st.queue_depth, 1);
    assert_int_equal(st.n_rejected, 1);
    assert_int_equal(atomic_load(&b.n_done), 0);
    atomic_store(&g.gate_open, 1);
    assert_int_equal(wait_done(&a), ASR_OK);
    assert_int_equal(wait_done(&b), ASR_OK);
    assert_accounting();
    stop();
    assert_once(&a);
    assert_once(&b);
    assert_int_equal(atomic_load(&c.n_done), 0);
}

/* A (holding its slot until the gate opens) runs; B, submitted behind it, must end BUSY once it
 * has waited max_wait (0.3 s) while A still runs, never reaching run_cb. */
static void check_max_wait(cfg_t c) {
    c.max_wait_s = 0.3;
    start(ONE_TINY, 1, c);
    tjob_t a, b;
    tjob_init(&a, 0, 1, RUN_GATE);
    tjob_init(&b, 0, 1, RUN_OK);
    submit_ok(&a);
    wait_started(&a);
    double t0 = asr_now_s();
    submit_ok(&b);
    assert_int_equal(wait_done(&b), ASR_ERR_BUSY);
    assert_true(asr_now_s() - t0 >= 0.3);
    assert_non_null(strstr(b.job.errmsg, "waited"));
    assert_int_equal(atomic_load(&a.n_done), 0); /* a still runs */
    assert_int_equal(b.job.attempts, 0);
    atomic_store(&g.gate_open, 1);
    assert_int_equal(wait_done(&a), ASR_OK);
    assert_accounting();
    stop();
    assert_once(&a);
    assert_once(&b);
}

/* max_wait while waiting for memory: a worker is free, but there is no room for a second slot. */
static void test_max_wait(void **state) {
    (void)state;
    uint64_t budget = w_tiny() + s_tiny(1) + s_tiny(1) / 2; /* one slot of one sequence */
    check_max_wait((cfg_t){.budget = budget, .max_parallel = 2});
}

/* max_wait with every worker busy: no worker is free to look at the queue; the running job's
 * heartbeat rejects the waiting one (before, it waited as long as the running job). */
static void test_max_wait_all_busy(void **state) {
    (void)state;
    check_max_wait((cfg_t){.budget = w_tiny() + 2 * s_tiny(1), .max_parallel = 1});
}

/* LRU eviction: room for two tiny models and one slot. a, b, then a again; c must evict b (the
 * least recently used), not a. */
static void test_lru_eviction(void **state) {
    (void)state;
    static const mspec_t abc[] = {{"a", false}, {"b", false}, {"c", false}};
    start(abc, 3, (cfg_t){.budget = 2 * w_tiny() + s_tiny(1) + s_tiny(1) / 2});
    const int order[] = {0, 1, 0, 2};
    tjob_t t[4];
    for (int i = 0; i < 4; i++) {
        tjob_init(&t[i], order[i], 1, RUN_OK);
        submit_ok(&t[i]);
        assert_int_equal(wait_done(&t[i]), ASR_OK);
        assert_accounting();
    }
    asr_sched_model_status_t ms;
    model_status("a", &ms);
    assert_string_equal(ms.state, "loaded");
    model_status("b", &ms);
    assert_string_equal(ms.state, "unloaded");
    model_status("c", &ms);
    assert_string_equal(ms.state, "loaded");
    asr_sched_stats_t st;
    asr_sched_stats(g.s, &st);
    assert_int_equal(st.n_evictions, 1);
    assert_int_equal(st.n_loads, 3);
    stop();
    for (int i = 0; i < 4; i++)
        assert_once(&t[i]);
}

/* Keep-alive: a model used with a 0.2 s keep-alive is unloaded once idle that long; one used
 * with the server's default (-1: never) stays. */
static void test_keep_alive(void **state) {
    (void)state;
    static const mspec_t ab[] = {{"a", false}, {"b", false}};
    start(ab, 2, (cfg_t){.budget = 2 * (w_tiny() + s_tiny(1))});
    tjob_t a, b;
    tjob_init(&a, 0, 1, RUN_OK);
    tjob_init(&b, 1, 1, RUN_OK);
    b.job.keep_alive_s = 0.2;
    submit_ok(&a);
    submit_ok(&b);
    assert_int_equal(wait_done(&a), ASR_OK);
    assert_int_equal(wait_done(&b), ASR_OK);
    asr_sched_model_status_t ms;
    model_status("b", &ms);
    assert_true(ms.expires_in_s <= 0.2);
    double deadline = asr_now_s() + WAIT_S;
    do {
        nap_ms(10);
        model_status("b", &ms);
    } while (strcmp(ms.state, "unloaded") && asr_now_s() < deadline);
    assert_string_equal(ms.state, "unloaded");
    model_status("a", &ms);
    assert_string_equal(ms.state, "loaded");
    assert_true(ms.expires_in_s < 0);
    assert_accounting();
    asr_sched_stats_t st;
    asr_sched_stats(g.s, &st);
    assert_int_equal(st.used_bytes, w_tiny() + s_tiny(1)); /* a and its cached slot */
    stop();
    assert_once(&a);
    assert_once(&b);
}

/* A model that can never fit the budget is served by its fallback when the job allows it, and
 * refused at submit (NOMEM, with the sizes, no done_cb) when it does not. */
static void test_fallback_never_fits(void **state) {
    (void)state;
    uint64_t budget = w_tiny() + s_tiny(5);
    assert_true(w_base() + s_base(1) > budget); /* the premise: base never fits */
    start(BASE_TINY, 2, (cfg_t){.budget = budget, .fallback = "base>tiny.en"});
    tjob_t a, b, c;
    tjob_init(&a, 0, 5, RUN_OK);
    a.job.allow_fallback = true;
    submit_ok(&a);
    assert_int_equal(wait_done(&a), ASR_OK);
    assert_int_equal(a.job.served_model, 1);
    assert_int_equal(a.att_model[0], 1);

    tjob_init(&b, 0, 1, RUN_OK); /* no fallback allowed */
    assert_int_equal(asr_sched_submit(g.s, &b.job), ASR_ERR_NOMEM);
    assert_non_null(strstr(b.job.errmsg, "base"));
    assert_non_null(strstr(b.job.errmsg, "MiB"));

    tjob_init(&c, 1, 8, RUN_OK); /* tiny.en itself with 8 sequences: no chain */
    assert_true(w_tiny() + s_tiny(8) > budget);
    assert_int_equal(asr_sched_submit(g.s, &c.job), ASR_ERR_NOMEM);

    asr_sched_stats_t st;
    asr_sched_stats(g.s, &st);
    assert_int_equal(st.n_fallbacks, 1);
    assert_int_equal(st.n_rejected, 2);
    assert_accounting();
    stop();
    assert_once(&a);
    assert_int_equal(atomic_load(&b.n_done), 0);
    assert_int_equal(atomic_load(&c.n_done), 0);
}

/* The out-of-memory policy for run_cb's NOMEM: one sequence, then the fallback chain, then
 * ASR_ERR_NOMEM; without a fallback it stops after one sequence; a success with one sequence
 * ends the retries; any other error is final at once. */
static void test_oom_retry_policy(void **state) {
    (void)state;
    uint64_t budget = w_base() + s_base(5) + w_tiny() + s_tiny(5);
    start(BASE_TINY, 2, (cfg_t){.budget = budget, .fallback = "base>tiny.en"});
    tjob_t t;
    asr_sched_stats_t st;

    tjob_init(&t, 0, 5, RUN_NOMEM);
    t.job.allow_fallback = true;
    submit_ok(&t);
    assert_int_equal(wait_done(&t), ASR_ERR_NOMEM);
    assert_int_equal(t.n_att, 3);
    const int want_model[] = {0, 0, 1}, want_nseq[] = {5, 1, 1};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(t.att_model[i], want_model[i]);
        assert_int_equal(t.att_nseq[i], want_nseq[i]);
    }
    assert_non_null(strstr(t.job.errmsg, "no smaller setting or fallback left"));
    asr_sched_stats(g.s, &st);
    assert_int_equal(st.n_oom_retries, 3);
    assert_int_equal(st.n_fallbacks, 1);
    assert_accounting(); /* the failed attempts' slots were freed */
    assert_once(&t);

    tjob_init(&t, 0, 5, RUN_NOMEM); /* no fallback allowed */
    submit_ok(&t);
    assert_int_equal(wait_done(&t), ASR_ERR_NOMEM);
    assert_int_equal(t.n_att, 2);
    assert_int_equal(t.att_nseq[1], 1);
    assert_int_equal(t.att_model[1], 0);
    assert_once(&t);

    tjob_init(&t, 0, 4, RUN_NOMEM_MULTI);
    t.job.allow_fallback = true;
    submit_ok(&t);
    assert_int_equal(wait_done(&t), ASR_OK);
    assert_int_equal(t.n_att, 2);
    assert_int_equal(t.att_model[1], 0); /* one sequence on the same model, no fallback */
    assert_int_equal(t.job.n_seq, 1);
    assert_once(&t);

    asr_sched_stats(g.s, &st);
    uint64_t retries = st.n_oom_retries;
    tjob_init(&t, 0, 5, RUN_FAIL_MODEL);
    t.job.allow_fallback = true;
    submit_ok(&t);
    assert_int_equal(wait_done(&t), ASR_ERR_MODEL);
    assert_int_equal(t.n_att, 1);
    asr_sched_stats(g.s, &st);
    assert_int_equal(st.n_oom_retries, retries);
    assert_accounting();
    stop();
    assert_once(&t);
}

/* Injected allocation failure of a slot's arena: the attempt fails before run_cb, the job is
 * retried with one sequence (which fits the cached slot) and succeeds; nothing leaks. */
static void test_injected_slot_failure(void **state) {
    (void)state;
    start(ONE_TINY, 1, (cfg_t){.budget = w_tiny() + s_tiny(5) + s_tiny(1)});
    tjob_t a, b;
    tjob_init(&a, 0, 1, RUN_OK); /* loads the model, leaves a 1-sequence slot cached */
    submit_ok(&a);
    assert_int_equal(wait_done(&a), ASR_OK);
    /* fail any checked allocation larger than a 1-sequence slot: the 5-sequence arena */
    asr_alloc_fail_set(0, (size_t)(s_tiny(1) + (s_tiny(5) - s_tiny(1)) / 2));
    tjob_init(&b, 0, 5, RUN_OK);
    submit_ok(&b);
    asr_err_t rc = wait_done(&b);
    asr_alloc_fail_set(0, 0);
    assert_int_equal(rc, ASR_OK);
    asr_sched_stats_t st;
    asr_sched_stats(g.s, &st);
    assert_int_equal(st.n_oom_retries, 1); /* the injected failure fired */
    assert_int_equal(b.n_att, 1);
    assert_int_equal(b.att_nseq[0], 1);
    assert_accounting();
    stop();
    assert_once(&a);
    assert_once(&b);
}

/* Injected allocation failures while a job loads its model and creates its slot: for the first
 * checked allocation of every distinct allocation site on that path, that one allocation fails.
 * Each time the failure must cost only that attempt: the job is retried (one sequence) and
 * succeeds, the model ends loaded once, and the accounting is exact (the half-loaded model's
 * reservation is released). */
static void test_injected_load_failures(void **state) {
    (void)state;
    cfg_t c = {.budget = w_tiny() + s_tiny(5)};
    /* a clean run records the allocation sites */
    start(ONE_TINY, 1, c);
    tjob_t t;
    tjob_init(&t, 0, 5, RUN_OK);
    unsigned long base = asr_alloc_checked_count();
    asr_alloc_trace(true);
    submit_ok(&t);
    assert_int_equal(wait_done(&t), ASR_OK);
    asr_alloc_trace(false);
    unsigned long first[64];
    int n_sites = asr_alloc_trace_sites(first, 64);
    unsigned long n_allocs = asr_alloc_checked_count() - base;
    stop();
    assert_true(n_sites > 0);
    assert_true(n_allocs >= (unsigned long)n_sites);
    int n_absorbed = 0;
    for (int k = 0; k < n_sites; k += SITE_STRIDE) {
        start(ONE_TINY, 1, c);
        tjob_init(&t, 0, 5, RUN_OK);
        unsigned long before = asr_alloc_checked_count();
        asr_alloc_fail_set((long)first[k], 0);
        submit_ok(&t);
        asr_err_t rc = wait_done(&t);
        asr_alloc_fail_set(0, 0);
        asr_sched_stats_t st;
        asr_sched_stats(g.s, &st);
        /* the nth allocation happened, so the injected failure fired */
        assert_true(asr_alloc_checked_count() - before >= first[k]);
        if (rc != ASR_OK || t.job.attempts != 1 || st.n_oom_retries > 1)
            fail_msg("allocation %lu (site %d of %d) failed: the job ended %s after %d "
                     "attempt(s) and %llu retries (%s)",
                     first[k], k + 1, n_sites, asr_strerror(rc), t.job.attempts,
                     (unsigned long long)st.n_oom_retries, t.job.errmsg);
        n_absorbed += st.n_oom_retries == 0;
        asr_sched_model_status_t ms;
        model_status("tiny.en", &ms);
        assert_string_equal(ms.state, "loaded");
        assert_accounting();
        stop();
        assert_once(&t);
    }
    /* one allocation may fail without failing the load: the weights' single arena, whose absence
     * gives every tensor its own buffer (engine/model.c); every other one costs a retry */
    assert_true(n_absorbed <= 1);
}

/* Cancel: a queued job ends CANCELLED at once from the cancelling thread; a running one is
 * flagged, stops, and ends CANCELLED; cancelling a finished job changes nothing. */
static void test_cancel(void **state) {
    (void)state;
    start(ONE_TINY, 1, (cfg_t){.budget = w_tiny() + s_tiny(1)});
    tjob_t a, b;
    tjob_init(&a, 0, 1, RUN_UNTIL_CANCEL);
    tjob_init(&b, 0, 1, RUN_OK);
    submit_ok(&a);
    wait_started(&a);
    submit_ok(&b);
    assert_true(asr_sched_cancel(g.s, &b.job));
    assert_int_equal(atomic_load(&b.n_done), 1);
    assert_int_equal(atomic_load(&b.status), ASR_ERR_CANCELLED);
    assert_int_equal(b.n_att, 0);
    assert_false(asr_sched_cancel(g.s, &a.job));
    assert_int_equal(wait_done(&a), ASR_ERR_CANCELLED);
    assert_false(asr_sched_cancel(g.s, &a.job));
    assert_false(asr_sched_cancel(g.s, &b.job));
    assert_accounting();
    stop();
    assert_once(&a);
    assert_once(&b);
}

/* Drain past its deadline: queued jobs end AGAIN, running ones are cancelled and waited for;
 * afterwards submits are refused with AGAIN. */
static void test_drain(void **state) {
    (void)state;
    start(ONE_TINY, 1, (cfg_t){.budget = w_tiny() + s_tiny(1)});
    tjob_t a, b, c;
    tjob_init(&a, 0, 1, RUN_UNTIL_CANCEL);
    tjob_init(&b, 0, 1, RUN_OK);
    tjob_init(&c, 0, 1, RUN_OK);
    submit_ok(&a);
    wait_started(&a);
    submit_ok(&b);
    asr_sched_drain(g.s, 0.2);
    assert_int_equal(atomic_load(&a.n_done), 1);
    assert_int_equal(atomic_load(&a.status), ASR_ERR_CANCELLED);
    assert_int_equal(atomic_load(&b.n_done), 1);
    assert_int_equal(atomic_load(&b.status), ASR_ERR_AGAIN);
    assert_int_equal(asr_sched_submit(g.s, &c.job), ASR_ERR_AGAIN);
    assert_accounting();
    stop();
    assert_once(&a);
    assert_once(&b);
    assert_int_equal(atomic_load(&c.n_done), 0);
}

/* A concurrent mix: two workers, three models that do not all fit (loads, evictions, waits for
 * memory), jobs that succeed, run out of memory with several sequences, always run out of
 * memory, or run until cancelled (some cancelled while queued, some while running). Every job
 * ends exactly once with the status its script implies; the invariants hold throughout. */
static void test_concurrent_mix(void **state) {
    (void)state;
    static const mspec_t abc[] = {{"a", false}, {"b", false}, {"c", false}};
    enum { N = 24 };
    start(abc, 3,
          (cfg_t){.budget = 2 * w_tiny() + s_tiny(5) + s_tiny(1),
                  .max_parallel = 2,
                  .max_queue = N,
                  .fallback = "a>b"});
    static tjob_t t[N];
    const int modes[4] = {RUN_OK, RUN_NOMEM_MULTI, RUN_NOMEM, RUN_UNTIL_CANCEL};
    for (int i = 0; i < N; i++) {
        tjob_init(&t[i], i % 3, 1 + i % 5, modes[i % 4]);
        t[i].job.allow_fallback = i % 2 == 0;
        submit_ok(&t[i]);
        if (t[i].mode == RUN_UNTIL_CANCEL && i % 8 == 3)
            asr_sched_cancel(g.s, &t[i].job); /* most likely still queued */
    }
    for (int i = 0; i < N; i++) {
        if (t[i].mode != RUN_UNTIL_CANCEL)
            continue;
        if (i % 8 != 3)
            wait_started(&t[i]); /* cancel it while it runs */
        asr_sched_cancel(g.s, &t[i].job);
    }
    for (int i = 0; i < N; i++) {
        asr_err_t rc = wait_done(&t[i]);
        asr_err_t want = t[i].mode == RUN_NOMEM          ? ASR_ERR_NOMEM
                         : t[i].mode == RUN_UNTIL_CANCEL ? ASR_ERR_CANCELLED
                                                         : ASR_OK;
        if (rc != want)
            fail_msg("job %d (mode %d, model %d) ended %s, expected %s: %s", i, t[i].mode,
                     t[i].job.model, asr_strerror(rc), asr_strerror(want), t[i].job.errmsg);
    }
    assert_accounting();
    stop();
    for (int i = 0; i < N; i++)
        assert_once(&t[i]);
}

int main(void) {
    if (!find_models()) {
        fprintf(stderr, "tiny.en and base not found ($ASRD_MODELS, ~/.cache/asrd/models or "
                        "/tmp/devmodels): run `make models`; skipping\n");
        return 77;
    }
    asr_log_set_level(ASR_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_run_and_cache),
        cmocka_unit_test(test_invalid_submit),
        cmocka_unit_test(test_queue_full),
        cmocka_unit_test(test_max_wait),
        cmocka_unit_test(test_max_wait_all_busy),
        cmocka_unit_test(test_lru_eviction),
        cmocka_unit_test(test_keep_alive),
        cmocka_unit_test(test_fallback_never_fits),
        cmocka_unit_test(test_oom_retry_policy),
        cmocka_unit_test(test_injected_slot_failure),
        cmocka_unit_test(test_injected_load_failures),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_drain),
        cmocka_unit_test(test_concurrent_mix),
    };
    return cmocka_run_group_tests_name("sched", tests, NULL, NULL);
}
