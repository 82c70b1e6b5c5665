/* Unit tests for the scheduler's device pool (the GPU memory contract, src/sched/sched_device.c),
 * on the host reference device ("host") with injected device-memory readings (asr_devmem_inject:
 * the card's total and the other processes; free = total - the others - what asrd allocated) and
 * the device fault injection (asr_dev_fault_set). The models are the real tiny.en and base
 * directories; every size is derived from their own asr_plan_gpu_compute numbers, nothing is
 * hard-coded.
 *
 * Covered: admission exact to the byte (two slots fit, the third job waits, n_waits); the budget
 * = total - other processes - reserve; free memory falling (another process grows: cached slots
 * dropped and idle models unloaded, n_shrinks; new jobs on the CPU twin, served_device "cpu") and
 * rising (back on the device within one refresh); the fallback chain on the device; max_wait on
 * the device, then the CPU twin (or BUSY with no fallback); NVML absent and a failing reading;
 * injected device allocation failures at every allocation site of a model load and of a slot
 * (retried: a smaller slot, then the CPU twin, or NOMEM with no fallback; device bytes back to
 * their level); a lost device context while a job really transcribes (the job retried on the CPU,
 * the model reloaded, later jobs on the device again). Invariants checked in every run_cb (counted
 * on the worker, asserted on the test thread): device used <= the device budget, at most
 * max_parallel run_cbs, the slot holds the job's sequences.
 *
 * Models: $ASRD_MODELS/{tiny.en,base}, else ~/.cache/asrd/models, else /tmp/devmodels; audio:
 * $ASR_SOURCE/tests/data/audio/en_ldc93s1.wav (else the relative path). Without them exit 77. */
#include "sched_harness.h"
#include "audio/audio.h"
#include "gpu/dev.h"
#include "gpu/devmem.h"

#define REFRESH_S 0.05
#define RESERVE ((uint64_t)64 << 20)
#define OTHERS ((uint64_t)3 << 30) /* another process holds 3 GiB of the card */

static float *g_pcm;
static size_t g_n_pcm;

static bool load_clip(void) {
    const char *src = getenv("ASR_SOURCE");
    char p[600];
    snprintf(p, sizeof p, "%s%stests/data/audio/en_ldc93s1.wav", src && *src ? src : "",
             src && *src ? "/" : "");
    char err[256];
    return asr_audio_load(p, &g_pcm, &g_n_pcm, err, sizeof err) == ASR_OK;
}

static asr_plan_gpu_t gplan(const asr_model_info_t *info, int n_seq) {
    asr_plan_gpu_t p;
    assert_int_equal(asr_plan_gpu_compute(info, "host", NULL, 0, n_seq, &p), ASR_OK);
    return p;
}
static uint64_t m_tiny(void) { return gplan(&g_tiny_info, 1).model; }
static uint64_t s_tiny(int n) { return gplan(&g_tiny_info, n).slot; }
static uint64_t ctx(void) { return gplan(&g_tiny_info, 1).context; }

/* Injects a card whose budget (total - others - reserve) is `budget`. */
static void inject_budget(uint64_t budget, const char *extra) {
    char spec[256], err[256];
    snprintf(spec, sizeof spec, "total=%llu,proc=2886328:python:%llu%s%s",
             (unsigned long long)(budget + RESERVE + OTHERS), (unsigned long long)OTHERS,
             extra ? "," : "", extra ? extra : "");
    if (asr_devmem_inject(spec, err, sizeof err) != ASR_OK)
        fail_msg("inject %s: %s", spec, err);
}

/* ---- jobs (sched_harness.h: RUN_OK, RUN_GATE) ---- */

enum {
    RUN_TRANSCRIBE = RUN_N_SHARED, /* transcribes the clip, returns what the engine returns */
};

static void check_device(const char *where) {
    if (atomic_load(&g.pressure))
        return;
    asr_sched_device_status_t d;
    asr_sched_device_status(g.s, &d);
    if (d.present && d.used > d.budget)
        violation("%s: device used %llu > budget %llu", where, (unsigned long long)d.used,
                  (unsigned long long)d.budget);
}

/* Each attempt: the device it was served on (kept in t->device), the device budget. */
static void tjob_attempt(tjob_t *t) {
    if (!t->job.served_device)
        violation("run_cb without served_device");
    t->device = t->job.served_device;
    check_device("run_cb");
}

static asr_err_t tjob_run_mode(tjob_t *t, asr_stream_t *stream) {
    if (t->mode != RUN_TRANSCRIBE)
        return ASR_OK;
    asr_transcribe_params_t tp = asr_transcribe_default_params();
    tp.beam_size = tp.best_of = 1;
    tp.language = "en";
    tp.n_threads = asr_sched_job_threads(&t->job);
    return asr_stream_transcribe(stream, g_pcm, g_n_pcm, &tp);
}

static void dev_status(asr_sched_device_status_t *d) { asr_sched_device_status(g.s, d); }

/* Polls until the device budget is `want` (a new reading is taken every REFRESH_S). */
static void wait_budget(uint64_t want) {
    asr_sched_device_status_t d;
    double deadline = asr_now_s() + WAIT_S;
    do {
        dev_status(&d);
        if (d.budget == want)
            return;
        nap_ms(5);
    } while (asr_now_s() < deadline);
    fail_msg("device budget %llu, expected %llu", (unsigned long long)d.budget,
             (unsigned long long)want);
}

/* At rest: device used == context (if a model is resident) + fixed bytes of the loaded models +
 * their cached slots, and what the device really holds (asr_dev_allocated_bytes) is what the plan
 * says, context aside (the host device has none). */
static void assert_device_rest(void) {
    asr_sched_stats_t st;
    asr_sched_stats(g.s, &st);
    assert_int_equal(st.n_busy, 0);
    assert_int_equal(st.queue_depth, 0);
    asr_sched_device_status_t d;
    dev_status(&d);
    assert_true(d.present);
    assert_int_equal(d.slots_bytes, 0);
    assert_int_equal(d.batch, 0);
    assert_int_equal(d.used, d.context_bytes + d.weights_bytes + d.cache_bytes);
    uint64_t sum = 0;
    for (int i = 0; i < asr_sched_n_models(g.s); i++) {
        asr_sched_model_status_t ms;
        asr_sched_model_status(g.s, i, &ms);
        assert_string_equal(ms.device, "host");
        if (!strcmp(ms.state, "loaded"))
            sum += ms.weights_bytes;
        sum += ms.slots_bytes;
    }
    assert_int_equal(d.used - d.context_bytes, sum);
    assert_int_equal(asr_dev_allocated_bytes(ASR_DEV_HOST, 0), d.used - d.context_bytes);
}

typedef struct {
    uint64_t limit; /* gpu_memory_limit */
    int max_parallel;
    double max_wait_s;
    const char *fallback;
    const char *gpu_fallback; /* default "cpu" */
} cfg_t;

static void start(const mspec_t *ms, int n, cfg_t c) {
    asr_sched_model_spec_t specs[4];
    model_specs(ms, n, specs);
    asr_sched_params_t p = {
        .models = specs,
        .n_models = n,
        .max_parallel = c.max_parallel ? c.max_parallel : 1,
        .max_queue = 8,
        .max_wait_s = c.max_wait_s ? c.max_wait_s : 300,
        .keep_alive_s = -1,
        .memory_limit = ((uint64_t)64 << 30) + ASR_PLAN_SERVER_OVERHEAD,
        .n_threads = 2,
        .fallback = c.fallback,
        .device = "host",
        .gpu_memory_limit = c.limit,
        .gpu_memory_reserve = RESERVE,
        .gpu_fallback = c.gpu_fallback ? c.gpu_fallback : "cpu",
        .gpu_refresh_s = REFRESH_S,
    };
    sched_create_checked(&p);
    asr_sched_device_status_t d;
    dev_status(&d);
    assert_true(d.present);
    assert_string_equal(d.device, "host");
}

static void stop(void) {
    asr_sched_destroy(g.s);
    g.s = NULL;
    asr_dev_fault_set(ASR_DEV_FAULT_ALLOC, 0);
    asr_dev_fault_set(ASR_DEV_FAULT_LOST, 0);
    assert_int_equal(asr_dev_allocated_bytes(ASR_DEV_HOST, 0), 0);
    check_violations();
}

/* ---- tests ---- */

/* The budget is total - others - reserve, exactly; two one-sequence slots fit beside the model,
 * the third job waits for one of them (n_waits), and runs when it is released. */
static void test_admission_exact(void **state) {
    (void)state;
    uint64_t budget = ctx() + m_tiny() + 2 * s_tiny(1);
    inject_budget(budget, NULL);
    start(ONE_TINY, 1, (cfg_t){.max_parallel = 3, .gpu_fallback = "none"});
    asr_sched_device_status_t d;
    dev_status(&d);
    assert_int_equal(d.budget, budget);
    assert_true(d.mem.ok);
    assert_int_equal(d.mem.n_procs >= 1, 1);
    assert_int_equal(d.used, 0);
    asr_sched_model_status_t ms;
    asr_sched_model_status(g.s, 0, &ms);
    assert_int_equal(ms.weights_bytes, m_tiny());
    assert_int_equal(ms.slot_bytes, s_tiny(ASR_DEFAULT_N_SEQ));
    assert_null(ms.cpu_state); /* gpu_fallback none: no twin */

    tjob_t t[3];
    for (int i = 0; i < 3; i++) {
        tjob_init(&t[i], 0, 1, RUN_GATE);
        submit_ok(&t[i]);
    }
    wait_started(&t[0]);
    wait_started(&t[1]);
    double deadline = asr_now_s() + WAIT_S;
    do {
        dev_status(&d);
        if (d.n_waits >= 1)
            break;
        nap_ms(2);
    } while (asr_now_s() < deadline);
    assert_int_equal(d.n_waits, 1);
    assert_int_equal(atomic_load(&t[2].started), 0);
    assert_int_equal(d.used, budget); /* to the byte */
    assert_int_equal(d.batch, 2);
    assert_int_equal(d.slots_bytes, 2 * s_tiny(1));
    assert_int_equal(d.weights_bytes, m_tiny());
    assert_int_equal(d.batch_max, (int)((budget - ctx() - m_tiny()) / s_tiny(5)));
    atomic_store(&g.gate_open, 1);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(wait_done(&t[i]), ASR_OK);
        assert_string_equal(t[i].device, "host");
        assert_string_equal(t[i].job.served_device, "host");
    }
    assert_device_rest();
    dev_status(&d);
    assert_int_equal(d.n_fallbacks_cpu, 0);
    assert_false(d.serving_on_cpu);
    stop();
}

/* Another process grows: the cached slot goes, then the idle model; a new job runs on the CPU
 * twin. It shrinks back: the next job runs on the device again, within one refresh. A job running
 * when the budget falls finishes. */
static void test_pressure_fall_and_rise(void **state) {
    (void)state;
    uint64_t full = ctx() + m_tiny() + 2 * s_tiny(1);
    inject_budget(full, NULL);
    start(ONE_TINY, 1, (cfg_t){.max_parallel = 2});
    tjob_t a, b, c, e;
    tjob_init(&a, 0, 1, RUN_GATE);
    submit_ok(&a);
    wait_started(&a);
    assert_string_equal(a.device, "host");

    /* the card fills up while a runs: it finishes, then its cached slot and the model go */
    atomic_store(&g.pressure, 1);
    inject_budget(m_tiny() / 2, NULL);
    wait_budget(m_tiny() / 2);
    atomic_store(&g.gate_open, 1);
    assert_int_equal(wait_done(&a), ASR_OK);
    asr_sched_device_status_t d;
    double deadline = asr_now_s() + WAIT_S;
    do {
        dev_status(&d);
        if (d.used == 0)
            break;
        nap_ms(5);
    } while (asr_now_s() < deadline);
    assert_int_equal(d.used, 0);
    assert_int_equal(d.n_shrinks, 2); /* the slot, then the model */
    assert_int_equal(asr_dev_allocated_bytes(ASR_DEV_HOST, 0), 0);
    atomic_store(&g.pressure, 0);

    tjob_init(&b, 0, 1, RUN_OK);
    submit_ok(&b);
    assert_int_equal(wait_done(&b), ASR_OK);
    assert_string_equal(b.job.served_device, "cpu");
    assert_int_equal(b.job.served_model, 0);
    dev_status(&d);
    assert_true(d.serving_on_cpu);
    assert_int_equal(d.n_fallbacks_cpu, 1);
    asr_sched_model_status_t ms;
    asr_sched_model_status(g.s, 0, &ms);
    assert_string_equal(ms.state, "unloaded");
    assert_string_equal(ms.cpu_state, "loaded");
    assert_true(ms.cpu_weights_bytes > 0);

    /* the other process frees: back on the device once the reading shows it */
    inject_budget(full, NULL);
    double t0 = asr_now_s();
    wait_budget(full);
    assert_true(asr_now_s() - t0 < WAIT_S);
    tjob_init(&c, 0, 1, RUN_OK);
    submit_ok(&c);
    assert_int_equal(wait_done(&c), ASR_OK);
    assert_string_equal(c.job.served_device, "host");
    dev_status(&d);
    assert_false(d.serving_on_cpu);

    /* within one refresh: fall, rise, and the reading that shows it comes within the period */
    inject_budget(m_tiny() / 2, NULL);
    wait_budget(m_tiny() / 2);
    inject_budget(full, NULL);
    t0 = asr_now_s();
    wait_budget(full);
    assert_true(asr_now_s() - t0 < REFRESH_S + 1.0); /* 1 s of slack for a loaded machine */
    tjob_init(&e, 0, 1, RUN_OK);
    submit_ok(&e);
    assert_int_equal(wait_done(&e), ASR_OK);
    assert_string_equal(e.job.served_device, "host");
    assert_device_rest();
    stop();
}

/* The fallback chain on the device: base never fits the device now, tiny.en does. */
static void test_fallback_model_on_device(void **state) {
    (void)state;
    uint64_t budget = ctx() + m_tiny() + s_tiny(1);
    inject_budget(budget, NULL);
    start(BASE_TINY, 2, (cfg_t){.fallback = "base>tiny.en", .gpu_fallback = "none"});
    tjob_t a, b;
    tjob_init(&a, 0, 1, RUN_OK);
    a.job.allow_fallback = true;
    submit_ok(&a);
    assert_int_equal(wait_done(&a), ASR_OK);
    assert_int_equal(a.job.served_model, 1);
    assert_string_equal(a.job.served_device, "host");
    asr_sched_device_status_t d;
    dev_status(&d);
    assert_int_equal(d.n_fallbacks_model, 1);
    tjob_init(&b, 0, 1, RUN_OK); /* no fallback allowed: refused with the sizes */
    assert_int_equal(asr_sched_submit(g.s, &b.job), ASR_ERR_NOMEM);
    assert_non_null(strstr(b.job.errmsg, "of device memory on host"));
    assert_non_null(strstr(b.job.errmsg, "process 2886328 (python) holds 3.0 GiB"));
    assert_device_rest();
    stop();
    assert_int_equal(atomic_load(&b.n_done), 0);
}

/* The model fits the device in principle but asrd's own job holds it: the second job waits
 * max_wait, then runs on the CPU twin (with gpu_fallback none: BUSY). */
static void check_wait_then(const char *gpu_fallback) {
    uint64_t budget = ctx() + m_tiny() + s_tiny(1);
    inject_budget(budget, NULL);
    start(ONE_TINY, 1, (cfg_t){.max_parallel = 2, .max_wait_s = 0.3, .gpu_fallback = gpu_fallback});
    tjob_t a, b;
    tjob_init(&a, 0, 1, RUN_GATE);
    submit_ok(&a);
    wait_started(&a);
    tjob_init(&b, 0, 1, RUN_OK);
    double t0 = asr_now_s();
    submit_ok(&b);
    asr_err_t rc = wait_done(&b);
    assert_true(asr_now_s() - t0 >= 0.3);
    assert_int_equal(atomic_load(&a.n_done), 0); /* a still runs */
    asr_sched_device_status_t d;
    dev_status(&d);
    assert_int_equal(d.n_waits, 1);
    if (!strcmp(gpu_fallback, "cpu")) {
        assert_int_equal(rc, ASR_OK);
        assert_string_equal(b.job.served_device, "cpu");
        assert_int_equal(d.n_fallbacks_cpu, 1);
    } else {
        assert_int_equal(rc, ASR_ERR_BUSY);
        assert_non_null(strstr(b.job.errmsg, "waited"));
        assert_non_null(strstr(b.job.errmsg, "device memory"));
    }
    atomic_store(&g.gate_open, 1);
    assert_int_equal(wait_done(&a), ASR_OK);
    assert_device_rest();
    stop();
}
static void test_wait_then_cpu(void **state) {
    (void)state;
    check_wait_then("cpu");
}
static void test_wait_then_busy(void **state) {
    (void)state;
    check_wait_then("none");
}

/* NVML absent: the others still count toward free, the list is unknown. A failing reading: the
 * budget is gpu_memory_limit - reserve. */
static void test_readings_absent_and_failing(void **state) {
    (void)state;
    uint64_t budget = ctx() + m_tiny() + 2 * s_tiny(1);
    inject_budget(budget, "nvml=absent");
    uint64_t limit = budget + RESERVE - s_tiny(1); /* one slot less than the card */
    start(ONE_TINY, 1, (cfg_t){.limit = limit});
    asr_sched_device_status_t d;
    dev_status(&d);
    assert_true(d.mem.ok);
    assert_false(d.mem.procs_known);
    assert_int_equal(d.budget, limit - RESERVE); /* the limit is the smaller */
    assert_int_equal(d.limit, limit);
    tjob_t a, b;
    tjob_init(&a, 0, 1, RUN_OK);
    submit_ok(&a);
    assert_int_equal(wait_done(&a), ASR_OK);
    assert_string_equal(a.job.served_device, "host");

    char err[256];
    assert_int_equal(asr_devmem_inject("total=1GiB,read=fail", err, sizeof err), ASR_OK);
    double deadline = asr_now_s() + WAIT_S;
    do {
        dev_status(&d);
        if (!d.mem.ok)
            break;
        nap_ms(5);
    } while (asr_now_s() < deadline);
    assert_false(d.mem.ok);
    assert_true(d.mem.why[0] != 0);
    assert_int_equal(d.budget, limit - RESERVE);
    tjob_init(&b, 0, 1, RUN_OK);
    submit_ok(&b);
    assert_int_equal(wait_done(&b), ASR_OK);
    assert_string_equal(b.job.served_device, "host");
    assert_device_rest();
    stop();
}

/* Every allocation site of a model load and of a slot fails once in turn: the job is retried (a
 * smaller slot on the device, then the CPU twin) and succeeds; with no fallback it ends NOMEM.
 * Never a crash, and the device's bytes come back to their level. */
static void test_injected_alloc_failures(void **state) {
    (void)state;
    uint64_t budget = ctx() + m_tiny() + 2 * s_tiny(5);
    inject_budget(budget, NULL);
    /* how many allocations a load and a first slot make */
    start(ONE_TINY, 1, (cfg_t){0});
    uint64_t a0 = asr_dev_fault_count(ASR_DEV_FAULT_ALLOC);
    tjob_t t;
    tjob_init(&t, 0, 1, RUN_OK);
    submit_ok(&t);
    assert_int_equal(wait_done(&t), ASR_OK);
    assert_string_equal(t.job.served_device, "host");
    long n_sites = (long)(asr_dev_fault_count(ASR_DEV_FAULT_ALLOC) - a0);
    assert_true(n_sites >= 2); /* the model's arenas and the slot */
    fprintf(stderr, "allocation sites of a load and a slot: %ld\n", n_sites);
    stop();

    for (int fb = 0; fb < 2; fb++) {
        start(ONE_TINY, 1, (cfg_t){.gpu_fallback = fb ? "cpu" : "none"});
        for (long nth = 1; nth <= n_sites; nth++) {
            /* unload the model between tries so that every site is reached: a new scheduler is
             * slow, so let the budget fall to nothing for a moment instead */
            atomic_store(&g.pressure, 1);
            inject_budget(0, NULL);
            wait_budget(0);
            double deadline = asr_now_s() + WAIT_S;
            asr_sched_device_status_t d;
            do {
                dev_status(&d);
                if (d.used == 0)
                    break;
                nap_ms(5);
            } while (asr_now_s() < deadline);
            assert_int_equal(d.used, 0);
            assert_int_equal(asr_dev_allocated_bytes(ASR_DEV_HOST, 0), 0);
            inject_budget(budget, NULL);
            wait_budget(budget);
            atomic_store(&g.pressure, 0);
            asr_dev_fault_set(ASR_DEV_FAULT_ALLOC, nth);
            tjob_init(&t, 0, 1, RUN_OK);
            submit_ok(&t);
            asr_err_t rc = wait_done(&t);
            asr_dev_fault_set(ASR_DEV_FAULT_ALLOC, 0);
            if (fb) {
                if (rc != ASR_OK)
                    fail_msg("site %ld: %s (%s)", nth, asr_strerror(rc), t.job.errmsg);
                assert_string_equal(t.job.served_device, "cpu");
            } else {
                if (rc != ASR_ERR_NOMEM)
                    fail_msg("site %ld: %s, expected NOMEM", nth, asr_strerror(rc));
                assert_true(t.job.errmsg[0] != 0);
            }
            dev_status(&d);
            assert_int_equal(d.n_oom_retries, (uint64_t)nth);
            assert_device_rest();
            /* the device serves again */
            tjob_init(&t, 0, 1, RUN_OK);
            submit_ok(&t);
            assert_int_equal(wait_done(&t), ASR_OK);
            assert_string_equal(t.job.served_device, "host");
        }
        stop();
    }

    /* a slot of 5 sequences fails on a loaded model: retried with one sequence on the device */
    start(ONE_TINY, 1, (cfg_t){.gpu_fallback = "none"});
    tjob_init(&t, 0, 1, RUN_OK);
    submit_ok(&t);
    assert_int_equal(wait_done(&t), ASR_OK);
    asr_dev_fault_set(ASR_DEV_FAULT_ALLOC, 1);
    tjob_init(&t, 0, 5, RUN_OK);
    submit_ok(&t);
    assert_int_equal(wait_done(&t), ASR_OK);
    assert_int_equal(t.job.n_seq, 1);
    assert_string_equal(t.job.served_device, "host");
    assert_int_equal(t.job.attempts, 1);
    assert_device_rest();
    stop();
}

/* The device's context is lost while a job transcribes: the job is retried on the CPU twin, the
 * model is unloaded and loaded again, and later jobs run on the device. */
static void test_device_lost(void **state) {
    (void)state;
    uint64_t budget = ctx() + m_tiny() + 2 * s_tiny(1);
    inject_budget(budget, NULL);
    start(ONE_TINY, 1, (cfg_t){0});
    tjob_t a, b, c;
    tjob_init(&a, 0, 1, RUN_TRANSCRIBE);
    submit_ok(&a);
    assert_int_equal(wait_done(&a), ASR_OK);
    assert_string_equal(a.job.served_device, "host");

    asr_dev_fault_set(ASR_DEV_FAULT_LOST, 3);
    tjob_init(&b, 0, 1, RUN_TRANSCRIBE);
    submit_ok(&b);
    asr_err_t rc = wait_done(&b);
    asr_dev_fault_set(ASR_DEV_FAULT_LOST, 0);
    if (rc != ASR_OK)
        fail_msg("job b: %s (%s)", asr_strerror(rc), b.job.errmsg);
    assert_string_equal(b.job.served_device, "cpu");
    assert_int_equal(b.job.attempts, 2);
    asr_sched_device_status_t d;
    double deadline = asr_now_s() + WAIT_S;
    asr_sched_model_status_t ms;
    do { /* the model comes back on its own */
        dev_status(&d);
        asr_sched_model_status(g.s, 0, &ms);
        if (!d.lost && !strcmp(ms.state, "loaded"))
            break;
        nap_ms(5);
    } while (asr_now_s() < deadline);
    assert_false(d.lost);
    assert_string_equal(ms.state, "loaded");
    assert_int_equal(d.n_resets, 1);
    assert_true(d.n_oom_retries >= 1);
    assert_true(d.last_error[0] != 0);
    assert_true(d.last_error_age_s >= 0);

    tjob_init(&c, 0, 1, RUN_TRANSCRIBE);
    submit_ok(&c);
    assert_int_equal(wait_done(&c), ASR_OK);
    assert_string_equal(c.job.served_device, "host");
    assert_int_equal(c.job.attempts, 1);
    asr_sched_stats_t st;
    asr_sched_stats(g.s, &st);
    assert_int_equal(st.n_done, 3);
    assert_device_rest();
    stop();
}

int main(void) {
    if (!find_models() || !load_clip()) {
        fprintf(stderr, "tiny.en and base or the clip tests/data/audio/en_ldc93s1.wav not found "
                        "($ASRD_MODELS, ~/.cache/asrd/models, /tmp/devmodels; $ASR_SOURCE); "
                        "skipping\n");
        return 77;
    }
    asr_plan_gpu_t p;
    if (asr_plan_gpu_compute(&g_tiny_info, "host", NULL, 0, 1, &p) != ASR_OK) {
        fprintf(stderr, "asr_plan_gpu_compute is not available\n");
        return 1;
    }
    asr_log_set_level(ASR_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_admission_exact),
        cmocka_unit_test(test_pressure_fall_and_rise),
        cmocka_unit_test(test_fallback_model_on_device),
        cmocka_unit_test(test_wait_then_cpu),
        cmocka_unit_test(test_wait_then_busy),
        cmocka_unit_test(test_readings_absent_and_failing),
        cmocka_unit_test(test_injected_alloc_failures),
        cmocka_unit_test(test_device_lost),
    };
    int rc = cmocka_run_group_tests_name("sched_gpu", tests, NULL, NULL);
    char err[64];
    asr_devmem_inject("off", err, sizeof err);
    free(g_pcm);
    return rc;
}
