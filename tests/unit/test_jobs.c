/* Unit tests for src/jobs with SQLite in a temp data directory and a fake transcriber (no model):
 * keeping an upload (moved, durable, unique names, extension kept), path resolution, and the
 * workers: 20 jobs over 3 workers each done exactly once with progress; a retryable failure backs
 * off and succeeds on the next attempt; a non-retryable one fails at once; a job cancelled while
 * it runs is aborted and never completed; and a deleted recording takes its jobs with it (the
 * store's contract: asr_store_recording_delete deletes the row and its jobs): a queued job is
 * never run and its row is gone, a running one is aborted and leaves no row, and the workers go
 * on. A job that keeps failing retryably (a busy GPU) stays queued between attempts and fails
 * only when they are used up; the server's default retry schedule is patient (issue 17). Waits
 * poll with a deadline (30 s: sanitizer builds on a loaded machine). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "config/config.h"
#include "core/core.h"
#include "jobs/jobs.h"
#include "store/store.h"

typedef struct {
    char dir[256];
    asr_store_t *store;
} fx_t;

static int setup(void **state) {
    fx_t *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/asrd-test-jobs-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    char err[256];
    assert_int_equal(asr_store_open(NULL, f->dir, &f->store, err, sizeof err), ASR_OK);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fx_t *f = *state;
    asr_store_close(f->store);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static void write_file(const char *path, const char *text) {
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static void test_keep_and_path(void **state) {
    fx_t *f = *state;
    char tmp[300], recs[300], err[256];
    snprintf(tmp, sizeof tmp, "%s/upload-1", f->dir);
    snprintf(recs, sizeof recs, "%s/a/recordings", f->dir);
    write_file(tmp, "RIFF....");
    char *name = NULL, *name2 = NULL;
    assert_int_equal(asr_jobs_recording_keep(recs, tmp, "Talk.MP3", &name, err, sizeof err),
                     ASR_OK);
    assert_true(!strncmp(name, "rec-", 4));
    assert_string_equal(strrchr(name, '.'), ".mp3");
    assert_int_equal(access(tmp, F_OK), -1); /* moved, not copied */
    char *path = asr_jobs_recording_path(recs, name);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, 8);
    write_file(tmp, "x");
    assert_int_equal(asr_jobs_recording_keep(recs, tmp, "no extension", &name2, err, sizeof err),
                     ASR_OK);
    assert_string_equal(strrchr(name2, '.'), ".bin");
    assert_string_not_equal(name, name2);
    free(name2);
    name2 = NULL;
    char *abs = asr_jobs_recording_path(recs, "/x/y.wav");
    assert_string_equal(abs, "/x/y.wav");
    assert_int_not_equal(
        asr_jobs_recording_keep(recs, "/nonexistent/upload", "a.wav", &name2, err, sizeof err),
        ASR_OK);
    free(abs);
    free(path);
    free(name);
    free(name2);
}

/* ---- the fake transcriber ---- */

#define WAIT_S 30.0

typedef struct {
    atomic_int calls;
    _Atomic int64_t ran[64];   /* job ids, in call order */
    atomic_int fail_retryable; /* fail this many calls, retryably */
    atomic_int fail_hard;      /* fail the next call for good */
    atomic_int block;          /* run until aborted */
    atomic_int aborted;
} fake_t;

static asr_err_t fake_cb(const asr_jobs_task_t *task, asr_jobs_outcome_t *out, void *ud) {
    fake_t *fk = ud;
    int k = atomic_fetch_add(&fk->calls, 1);
    if (k < 64)
        atomic_store(&fk->ran[k], task->job_id);
    task->progress_cb(0.5, task->user_data);
    if (atomic_load(&fk->block)) {
        while (!task->abort_cb(task->user_data))
            usleep(10000);
        atomic_fetch_add(&fk->aborted, 1);
        return ASR_ERR_CANCELLED;
    }
    usleep(20000);
    if (atomic_load(&fk->fail_hard) > 0) {
        atomic_fetch_sub(&fk->fail_hard, 1);
        snprintf(out->error, sizeof out->error, "could not decode the audio file: truncated");
        out->retryable = false;
        return ASR_ERR_AUDIO;
    }
    if (atomic_load(&fk->fail_retryable) > 0) {
        atomic_fetch_sub(&fk->fail_retryable, 1);
        snprintf(out->error, sizeof out->error, "backend down");
        out->retryable = true;
        return ASR_ERR_BUSY;
    }
    char buf[128];
    snprintf(buf, sizeof buf, "{\"text\": \"job %lld\", \"segments\": []}",
             (long long)task->job_id);
    out->result_json = asr_xstrdup(buf);
    out->backend = asr_xstrdup("fake");
    out->model_used = asr_xstrdup("tiny.en");
    return ASR_OK;
}

/* Workers whose retry delays start at backoff_ms and double up to max_delay_ms (0: 64x). */
static asr_jobs_t *start_backoff(fx_t *f, fake_t *fk, int workers, int64_t backoff_ms,
                                 int64_t max_delay_ms) {
    asr_jobs_params_t p = {.data_dir = f->dir,
                           .recordings_dir = f->dir,
                           .node_id = "unit",
                           .n_workers = workers,
                           .lease_ms = 2000,
                           .heartbeat_ms = 1000,
                           .backoff_ms = backoff_ms,
                           .retry_max_delay_ms = max_delay_ms,
                           .transcribe_cb = fake_cb,
                           .transcribe_user_data = fk};
    asr_jobs_t *j = NULL;
    char err[256] = "";
    assert_int_equal(asr_jobs_start(&p, &j, err, sizeof err), ASR_OK);
    return j;
}

static asr_jobs_t *start(fx_t *f, fake_t *fk, int workers) {
    return start_backoff(f, fk, workers, 100, 0);
}

static int64_t add_job_attempts(fx_t *f, int max_attempts) {
    asr_store_recording_t r = {.name = "r", .path = "r.wav", .duration_s = 1};
    int64_t rid, jid;
    assert_int_equal(asr_store_recording_create(f->store, &r, &rid), ASR_OK);
    asr_store_job_input_t in = {.recording_id = rid, .max_attempts = max_attempts};
    assert_int_equal(asr_store_job_submit(f->store, &in, &jid, NULL), ASR_OK);
    return jid;
}

static int64_t add_job(fx_t *f) { return add_job_attempts(f, 3); }

/* Waits until job `id` reaches `st` (WAIT_S at most). */
static void wait_state(fx_t *f, int64_t id, asr_store_job_state_t st, asr_store_job_t *out) {
    double deadline = asr_now_s() + WAIT_S;
    do {
        assert_int_equal(asr_store_job_get(f->store, id, out), ASR_OK);
        if (out->state == st)
            return;
        asr_store_job_clear(out);
        usleep(10000);
    } while (asr_now_s() < deadline);
    fail_msg("job %lld did not become %s", (long long)id, asr_store_job_state_name(st));
}

/* Waits until *v >= want (WAIT_S at most). */
static void wait_count(atomic_int *v, int want, const char *what) {
    double deadline = asr_now_s() + WAIT_S;
    while (atomic_load(v) < want && asr_now_s() < deadline)
        usleep(10000);
    if (atomic_load(v) < want)
        fail_msg("%s: %d, expected %d", what, atomic_load(v), want);
}

static bool ran(fake_t *fk, int64_t id) {
    int n = atomic_load(&fk->calls);
    for (int i = 0; i < n && i < 64; i++)
        if (atomic_load(&fk->ran[i]) == id)
            return true;
    return false;
}

static int64_t recording_of(fx_t *f, int64_t job_id) {
    asr_store_job_t job;
    assert_int_equal(asr_store_job_get(f->store, job_id, &job), ASR_OK);
    int64_t rid = job.recording_id;
    asr_store_job_clear(&job);
    return rid;
}

static void test_workers_exactly_once(void **state) {
    fx_t *f = *state;
    fake_t fk = {0};
    asr_jobs_t *j = start(f, &fk, 3);
    int64_t ids[20];
    for (int i = 0; i < 20; i++)
        ids[i] = add_job(f);
    asr_jobs_wake(j);
    for (int i = 0; i < 20; i++) {
        asr_store_job_t job;
        wait_state(f, ids[i], ASR_STORE_JOB_DONE, &job);
        assert_int_equal(job.attempts, 1);
        assert_string_equal(job.backend, "fake");
        assert_non_null(strstr(job.result_json, "job "));
        assert_true(job.progress == 1.0);
        asr_store_job_clear(&job);
    }
    assert_int_equal(atomic_load(&fk.calls), 20);
    asr_store_node_t *nodes;
    size_t n;
    assert_int_equal(asr_store_node_list(f->store, &nodes, &n), ASR_OK);
    assert_int_equal(n, 1);
    assert_string_equal(nodes[0].id, "unit");
    assert_int_equal(nodes[0].capacity, 3);
    asr_store_nodes_free(nodes, n);
    asr_jobs_stop(j);
}

static void test_retry_and_hard_failure(void **state) {
    fx_t *f = *state;
    fake_t fk = {0};
    atomic_store(&fk.fail_retryable, 1);
    asr_jobs_t *j = start(f, &fk, 1);
    int64_t a = add_job(f);
    asr_store_job_t job;
    wait_state(f, a, ASR_STORE_JOB_DONE, &job);
    assert_int_equal(job.attempts, 2);
    assert_string_equal(job.last_error, "backend down");
    assert_true(job.not_before > 0);
    asr_store_job_clear(&job);
    atomic_store(&fk.fail_hard, 1);
    int64_t b = add_job(f), c = add_job(f);
    asr_jobs_wake(j);
    wait_state(f, b, ASR_STORE_JOB_FAILED, &job);
    assert_int_equal(job.attempts, 1);
    assert_non_null(strstr(job.last_error, "truncated"));
    asr_store_job_clear(&job);
    wait_state(f, c, ASR_STORE_JOB_DONE, &job); /* the queue goes on */
    asr_store_job_clear(&job);
    asr_jobs_stop(j);
}

/* The server's defaults are patient (issue 17: a GPU another program holds for minutes must not
 * fail a meeting's job in 15 s): at least 8 attempts, the pause doubling from job_backoff_ms up to
 * job_retry_max_delay, which is at least 5 minutes and is reached, so the job waits 15 minutes or
 * more before it fails. The delays follow the rule for other settings too. */
static void test_retry_schedule_and_defaults(void **state) {
    (void)state;
    asr_config_t cfg;
    asr_config_init(&cfg);
    assert_true(cfg.job_max_attempts >= 8);
    assert_true(cfg.job_retry_max_delay >= 300);
    asr_jobs_params_t p = {.backoff_ms = cfg.job_backoff_ms,
                           .retry_max_delay_ms = (int64_t)cfg.job_retry_max_delay * 1000};
    int64_t cap = p.retry_max_delay_ms, prev = 0, total = 0;
    for (int a = 1; a < cfg.job_max_attempts; a++) {
        int64_t d = asr_jobs_retry_delay_ms(&p, a);
        int64_t want = a == 1 ? p.backoff_ms : (prev * 2 < cap ? prev * 2 : cap);
        if (d != want)
            fail_msg("attempt %d: delay %lld ms, expected %lld", a, (long long)d, (long long)want);
        prev = d;
        total += d;
    }
    assert_int_equal(prev, cap); /* the backoff grows to its cap before the attempts run out */
    assert_true(total >= 15 * 60 * 1000);
    asr_config_deinit(&cfg);
    /* small settings, as the e2e test uses: 300 ms doubling, capped at 1 s */
    asr_jobs_params_t q = {.backoff_ms = 300, .retry_max_delay_ms = 1000};
    static const int64_t want[] = {300, 600, 1000, 1000, 1000};
    for (int a = 1; a <= 5; a++)
        assert_int_equal(asr_jobs_retry_delay_ms(&q, a), want[a - 1]);
    /* no cap given: 64 times the first delay */
    asr_jobs_params_t r = {.backoff_ms = 100};
    assert_int_equal(asr_jobs_retry_delay_ms(&r, 40), 6400);
}

/* A job that keeps meeting a busy backend (retryable every time) waits in state queued, with its
 * last error and its next attempt's time, and fails only when its attempts are used up. */
static void test_busy_job_queued_until_attempts_used(void **state) {
    fx_t *f = *state;
    fake_t fk = {0};
    atomic_store(&fk.fail_retryable, 1000);
    asr_jobs_t *j = start_backoff(f, &fk, 1, 200, 300); /* pauses 200, 300, 300 ms */
    int64_t id = add_job_attempts(f, 4);
    asr_jobs_wake(j);
    int n_queued_seen = 0;
    asr_store_job_t job;
    double deadline = asr_now_s() + WAIT_S;
    for (;;) {
        assert_int_equal(asr_store_job_get(f->store, id, &job), ASR_OK);
        if (job.state == ASR_STORE_JOB_FAILED || asr_now_s() > deadline)
            break;
        if (job.state == ASR_STORE_JOB_QUEUED && job.attempts > 0) {
            n_queued_seen++;
            assert_true(job.attempts < 4);
            assert_string_equal(job.last_error, "backend down");
            assert_true(job.not_before > 0);
            assert_int_equal(job.finished_at, 0);
        }
        asr_store_job_clear(&job);
        usleep(5000);
    }
    assert_int_equal(job.state, ASR_STORE_JOB_FAILED);
    assert_int_equal(job.attempts, 4);
    assert_string_equal(job.last_error, "backend down");
    asr_store_job_clear(&job);
    assert_true(n_queued_seen > 0);
    assert_int_equal(atomic_load(&fk.calls), 4);
    asr_jobs_stop(j);
}

static void test_cancel_running_and_deleted(void **state) {
    fx_t *f = *state;
    fake_t fk = {0};
    atomic_store(&fk.block, 1);
    asr_jobs_t *j = start(f, &fk, 1);
    int64_t a = add_job(f);
    asr_store_job_t job;
    wait_state(f, a, ASR_STORE_JOB_RUNNING, &job);
    asr_store_job_clear(&job);
    assert_int_equal(asr_store_job_cancel(f->store, a), ASR_OK); /* the keeper notices */
    wait_count(&fk.aborted, 1, "aborted runs");
    assert_int_equal(atomic_load(&fk.aborted), 1);
    wait_state(f, a, ASR_STORE_JOB_CANCELLED, &job);
    assert_null(job.result_json);
    asr_store_job_clear(&job);

    /* a recording deleted while its job runs: the keeper finds the row gone and aborts the run
     * (it never completes), and no row comes back */
    int64_t d = add_job(f);
    asr_jobs_wake(j);
    wait_state(f, d, ASR_STORE_JOB_RUNNING, &job);
    asr_store_job_clear(&job);
    assert_int_equal(asr_store_recording_delete(f->store, recording_of(f, d)), ASR_OK);
    wait_count(&fk.aborted, 2, "aborted runs");
    assert_int_equal(asr_store_job_get(f->store, d, &job), ASR_ERR_NOT_FOUND);

    /* a recording deleted before its job runs: the job row goes with it and is never run; the
     * queue goes on with the next job */
    atomic_store(&fk.block, 0);
    int64_t b = add_job(f);
    assert_int_equal(asr_store_recording_delete(f->store, recording_of(f, b)), ASR_OK);
    assert_int_equal(asr_store_job_get(f->store, b, &job), ASR_ERR_NOT_FOUND);
    int64_t c = add_job(f);
    asr_jobs_wake(j);
    wait_state(f, c, ASR_STORE_JOB_DONE, &job);
    asr_store_job_clear(&job);
    assert_false(ran(&fk, b));
    assert_int_equal(asr_store_job_get(f->store, d, &job), ASR_ERR_NOT_FOUND);
    assert_int_equal(atomic_load(&fk.calls), 3); /* a, d, c */
    assert_int_equal(asr_jobs_cancel_local(j, 999), false);
    asr_jobs_stop(j);
}

int main(void) {
    asr_jobs_crash_init(false);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_keep_and_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_workers_exactly_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_and_hard_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_running_and_deleted, setup, teardown),
        cmocka_unit_test(test_retry_schedule_and_defaults),
        cmocka_unit_test_setup_teardown(test_busy_job_queued_until_attempts_used, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
