/* jobs: the workers of one node, the keeper (lease renewal, progress, node heartbeat), webhooks
 * and crash points. See jobs.h for the contract.
 *
 * Invariants:
 * - a worker writes a job's end (complete/fail) only through its lease, so whatever happens to the
 *   node (crash, lost lease, cancel), at most one result is committed per job;
 * - a slot is `active` exactly while its worker runs a transcription; the keeper renews only
 *   active slots, and the worker reads the abort reason the keeper set when the slot goes idle;
 * - every store handle is used by one thread only (workers: their own; keeper: its own), so
 *   workers never wait on each other's database round trips;
 * - a job for a model this node does not serve is given back (asr_store_job_release: no attempt
 *   spent) and its model is passed over by this node's claims for UNSERVED_RECHECK_S, so nodes
 *   that serve it take it at once and it never fails for being claimed by the wrong node. */
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/core.h"
#include "jobs/jobs.h"
#include "store/store.h"

enum { ABORT_NONE = 0, ABORT_CANCELLED, ABORT_LOST, ABORT_SHUTDOWN };

/* How long claims pass over a model found not served here before trying it again (the node's
 * backends may have changed meanwhile). */
#define UNSERVED_RECHECK_S 10.0

typedef struct {
    asr_jobs_t *jobs;
    int index;
    pthread_t thread;
    bool started;
    asr_store_t *store;
    char owner[128];
    /* the running job, under jobs->mu */
    bool active;
    asr_store_lease_t lease;
    double progress, progress_sent;
    double last_renew; /* asr_now_s() */
    atomic_int abort;
} worker_t;

struct asr_jobs {
    asr_jobs_params_t p;
    char *database, *data_dir, *recordings_dir, *node_id, *node_url, *version, *models,
        *transcriber;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* workers wait here for work (wake) or stop */
    unsigned wake_seq;
    atomic_bool quiesced, stopping;
    worker_t *w;
    int n;
    asr_store_t *kstore;
    pthread_t keeper;
    bool keeper_started;
    struct {
        char model[128];
        double until;                     /* asr_now_s() */
    } unserved[ASR_STORE_CLAIM_MAX_SKIP]; /* under mu: models this node passes over */
    int n_unserved;
    asr_jobs_retention_t retention; /* under mu */
};

/* ---- crash points ---- */

static char g_crash_point[64];
static double g_crash_value;
static atomic_bool g_crash_armed;

void asr_jobs_crash_init(bool enabled) {
    const char *v = getenv("ASRD_TEST_CRASH_AT");
    if (!enabled || !v || !*v)
        return;
    snprintf(g_crash_point, sizeof g_crash_point, "%s", v);
    char *colon = strchr(g_crash_point, ':');
    g_crash_value = 0;
    if (colon) {
        *colon = 0;
        g_crash_value = strtod(colon + 1, NULL);
    }
    ASR_LOG(ASR_LOG_WARN, "msg=crash_point_armed point=%s value=%g", g_crash_point, g_crash_value);
    atomic_store(&g_crash_armed, true);
}

void asr_jobs_crash_point(const char *point, double value) {
    if (!atomic_load(&g_crash_armed) || strcmp(point, g_crash_point) || value < g_crash_value)
        return;
    fprintf(stderr, "asrd: crash point %s (%g): _exit(137)\n", point, value);
    _exit(137);
}

/* ---- helpers ---- */

char *asr_jobs_recording_path(const char *recordings_dir, const char *stored) {
    asr_buf_t b;
    asr_buf_init(&b);
    if (stored[0] == '/' || !recordings_dir || !*recordings_dir)
        asr_buf_puts(&b, stored);
    else
        asr_buf_printf(&b, "%s/%s", recordings_dir, stored);
    return asr_buf_steal(&b);
}

int64_t asr_jobs_retry_delay_ms(const asr_jobs_params_t *p, int attempt) {
    int64_t cap = p->retry_max_delay_ms > 0 ? p->retry_max_delay_ms : p->backoff_ms * 64;
    return asr_store_backoff_ms(attempt, p->backoff_ms, cap);
}

/* Waits on j->cv until woken, stopped, or `s` seconds pass. Caller holds j->mu. */
static void timed_wait(asr_jobs_t *j, double s) { asr_cond_timedwait_s(&j->cv, &j->mu, s); }

/* ---- webhooks ---- */

typedef struct {
    char *url, *body;
    int64_t job_id;
} hook_t;

static size_t discard(char *p, size_t sz, size_t n, void *ud) {
    (void)p;
    (void)ud;
    return sz * n;
}

static void *hook_main(void *arg) {
    hook_t *h = arg;
    long status = 0;
    char err[CURL_ERROR_SIZE] = "";
    for (int attempt = 1; attempt <= 3; attempt++) {
        CURL *c = curl_easy_init();
        if (!c)
            break;
        struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
        curl_easy_setopt(c, CURLOPT_URL, h->url);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, h->body);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
        curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
        curl_easy_setopt(c, CURLOPT_ERRORBUFFER, err);
        err[0] = 0;
        CURLcode rc = curl_easy_perform(c);
        status = 0;
        if (rc == CURLE_OK)
            curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        curl_slist_free_all(hdr);
        curl_easy_cleanup(c);
        if (rc == CURLE_OK && status >= 200 && status < 300) {
            ASR_LOG(ASR_LOG_INFO, "msg=webhook_sent job=%lld attempt=%d status=%ld",
                    (long long)h->job_id, attempt, status);
            goto done;
        }
        ASR_LOG(ASR_LOG_WARN, "msg=webhook_failed job=%lld attempt=%d status=%ld err=\"%s\"",
                (long long)h->job_id, attempt, status,
                rc != CURLE_OK ? (err[0] ? err : curl_easy_strerror(rc)) : "HTTP status");
        if (attempt < 3)
            asr_sleep_s(attempt); /* 1 s, then 2 s */
    }
    ASR_LOG(ASR_LOG_ERROR, "msg=webhook_gave_up job=%lld url=\"%.200s\"", (long long)h->job_id,
            h->url);
done:
    free(h->url);
    free(h->body);
    free(h);
    return NULL;
}

/* Sends the job's webhook (if it has one) from a detached thread. */
static void send_webhook(worker_t *w, int64_t job_id, const char *event) {
    asr_store_job_t job;
    if (asr_store_job_get(w->store, job_id, &job) != ASR_OK)
        return;
    if (!job.webhook_url || !*job.webhook_url) {
        asr_store_job_clear(&job);
        return;
    }
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer(job.id));
    json_object_set_new(o, "recording_id", json_integer(job.recording_id));
    json_object_set_new(o, "state", json_string(asr_store_job_state_name(job.state)));
    json_object_set_new(o, "attempts", json_integer(job.attempts));
    json_object_set_new(o, "last_error",
                        job.last_error ? json_string(job.last_error) : json_null());
    json_object_set_new(o, "backend", job.backend ? json_string(job.backend) : json_null());
    json_object_set_new(o, "model_used",
                        job.model_used ? json_string(job.model_used) : json_null());
    json_object_set_new(o, "finished_at", json_integer(job.finished_at));
    json_t *root = json_object();
    json_object_set_new(root, "event", json_string(event));
    json_object_set_new(root, "node", json_string(w->jobs->node_id));
    json_object_set_new(root, "job", o);
    hook_t *h = asr_xcalloc(1, sizeof *h);
    h->url = asr_xstrdup(job.webhook_url);
    h->body = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    h->job_id = job.id;
    json_decref(root);
    asr_store_job_clear(&job);
    pthread_t t;
    if (!h->body || pthread_create(&t, NULL, hook_main, h) != 0) {
        free(h->url);
        free(h->body);
        free(h);
        return;
    }
    pthread_detach(t);
}

/* ---- the transcriber's callbacks ---- */

static void task_progress(double f, void *ud) {
    worker_t *w = ud;
    pthread_mutex_lock(&w->jobs->mu);
    if (f > w->progress)
        w->progress = f > 1 ? 1 : f;
    pthread_mutex_unlock(&w->jobs->mu);
    asr_jobs_crash_point("progress", f);
}

static bool task_abort(void *ud) {
    worker_t *w = ud;
    return atomic_load(&w->abort) != ABORT_NONE;
}

static void task_segment(int n, void *ud) {
    (void)ud;
    asr_jobs_crash_point("segment", n);
}

/* ---- one job ---- */

static void slot_set(worker_t *w, const asr_store_lease_t *lease, bool active) {
    pthread_mutex_lock(&w->jobs->mu);
    w->active = active;
    if (active) {
        w->lease = *lease;
        w->progress = w->progress_sent = 0;
        w->last_renew = asr_now_s();
        atomic_store(&w->abort, atomic_load(&w->jobs->stopping) ? ABORT_SHUTDOWN : ABORT_NONE);
    }
    pthread_mutex_unlock(&w->jobs->mu);
}

/* Remembers that this node does not serve `model` (claims pass over it for a while). */
static void note_unserved(asr_jobs_t *j, const char *model) {
    double now = asr_now_s();
    pthread_mutex_lock(&j->mu);
    int k = -1, first = 0;
    for (int i = 0; i < j->n_unserved && k < 0; i++) {
        if (!strcmp(j->unserved[i].model, model))
            k = i;
        else if (j->unserved[i].until < j->unserved[first].until)
            first = i;
    }
    if (k < 0) /* a new entry; when full, the one that expires first makes room */
        k = j->n_unserved < ASR_STORE_CLAIM_MAX_SKIP ? j->n_unserved++ : first;
    snprintf(j->unserved[k].model, sizeof j->unserved[k].model, "%s", model);
    j->unserved[k].until = now + UNSERVED_RECHECK_S;
    pthread_mutex_unlock(&j->mu);
}

/* The models claims pass over now: pointers into names[] (n returned). */
static int unserved_now(asr_jobs_t *j, char names[][128], const char **skip) {
    double now = asr_now_s();
    int n = 0;
    pthread_mutex_lock(&j->mu);
    for (int i = 0; i < j->n_unserved; i++)
        if (j->unserved[i].until > now) {
            memcpy(names[n], j->unserved[i].model, sizeof names[n]);
            skip[n] = names[n];
            n++;
        }
    pthread_mutex_unlock(&j->mu);
    return n;
}

/* Gives back a job whose model this node does not serve: queued again, no attempt spent. */
static void job_left(worker_t *w, const asr_store_lease_t *lease, const asr_store_job_t *job,
                     const char *why) {
    char msg[600];
    snprintf(msg, sizeof msg, "left for another node: %s (node %s)", why, w->jobs->node_id);
    asr_err_t e = asr_store_job_release(w->store, lease, msg);
    if (job->model && *job->model)
        note_unserved(w->jobs, job->model);
    if (e != ASR_OK) {
        ASR_LOG(ASR_LOG_WARN, "msg=job_release_failed job=%lld attempt=%d err=\"%s\"",
                (long long)lease->job_id, lease->attempt, asr_store_errmsg(w->store));
        return;
    }
    asr_store_recording_set_status(w->store, job->recording_id, "queued");
    ASR_LOG(ASR_LOG_INFO, "msg=job_left job=%lld model=%s node=%s reason=\"%.300s\"",
            (long long)lease->job_id, job->model ? job->model : "-", w->jobs->node_id, why);
}

/* Records a failed attempt; logs and sends the webhook when the job is over. */
static void job_failed(worker_t *w, const asr_store_lease_t *lease, const asr_store_job_t *job,
                       const char *error, bool retryable, int64_t delay_ms) {
    bool requeued = false;
    asr_err_t e =
        asr_store_job_fail(w->store, lease, error, retryable, delay_ms, "failed", &requeued);
    if (e != ASR_OK) {
        ASR_LOG(ASR_LOG_WARN, "msg=job_fail_not_recorded job=%lld attempt=%d err=\"%s\"",
                (long long)lease->job_id, lease->attempt, asr_store_errmsg(w->store));
        return;
    }
    if (requeued) {
        asr_store_recording_set_status(w->store, job->recording_id, "queued");
        ASR_LOG(ASR_LOG_WARN,
                "msg=job_retry job=%lld attempt=%d max_attempts=%d delay_ms=%lld error=\"%.300s\"",
                (long long)lease->job_id, lease->attempt, job->max_attempts, (long long)delay_ms,
                error);
        return;
    }
    ASR_LOG(ASR_LOG_WARN, "msg=job_failed job=%lld attempt=%d retryable=%d error=\"%.300s\"",
            (long long)lease->job_id, lease->attempt, retryable, error);
    send_webhook(w, lease->job_id, "job.failed");
}

static void job_commit(worker_t *w, const asr_store_lease_t *lease, asr_jobs_outcome_t *out,
                       double audio_s, double proc_s) {
    asr_jobs_crash_point("transcribed", 0);
    asr_err_t e = ASR_ERR_DB;
    for (int tries = 0; tries < 5; tries++) { /* a database hiccup must not lose the work */
        e = asr_store_job_complete(w->store, lease, out->result_json,
                                   out->backend ? out->backend : "local", out->model_used, "done");
        if (e != ASR_ERR_DB)
            break;
        asr_sleep_s(0.5 * (tries + 1));
    }
    if (e != ASR_OK) {
        ASR_LOG(ASR_LOG_WARN, "msg=job_result_dropped job=%lld attempt=%d reason=\"%s\"",
                (long long)lease->job_id, lease->attempt, asr_store_errmsg(w->store));
        return;
    }
    ASR_LOG(ASR_LOG_INFO,
            "msg=job_done job=%lld attempt=%d owner=%s backend=%s model=%s audio_s=%.2f "
            "proc_s=%.2f",
            (long long)lease->job_id, lease->attempt, lease->owner,
            out->backend ? out->backend : "local", out->model_used ? out->model_used : "-", audio_s,
            proc_s);
    asr_jobs_crash_point("committed", 0);
    send_webhook(w, lease->job_id, "job.done");
}

static void run_job(worker_t *w, const asr_store_lease_t *lease, const asr_store_job_t *job) {
    asr_jobs_t *j = w->jobs;
    ASR_LOG(ASR_LOG_INFO, "msg=job_claimed job=%lld attempt=%d owner=%s recording=%lld",
            (long long)job->id, lease->attempt, lease->owner, (long long)job->recording_id);
    asr_jobs_crash_point("claimed", 0);
    asr_store_recording_t rec;
    asr_err_t e = asr_store_recording_get(w->store, job->recording_id, &rec);
    if (e != ASR_OK) {
        bool gone = e == ASR_ERR_NOT_FOUND;
        job_failed(w, lease, job, gone ? "the recording was deleted" : asr_store_errmsg(w->store),
                   !gone, asr_jobs_retry_delay_ms(&j->p, lease->attempt));
        return;
    }
    asr_store_recording_set_status(w->store, rec.id, "running");
    char *path = asr_jobs_recording_path(j->recordings_dir, rec.path);
    asr_jobs_task_t task = {.job_id = job->id,
                            .attempt = lease->attempt,
                            .path = path,
                            .model = job->model,
                            .language = job->language,
                            .options_json = job->options_json,
                            .duration_s = rec.duration_s,
                            .progress_cb = task_progress,
                            .abort_cb = task_abort,
                            .segment_cb = task_segment,
                            .user_data = w};
    asr_jobs_outcome_t out = {0};
    slot_set(w, lease, true);
    double t0 = asr_now_s();
    e = j->p.transcribe_cb(&task, &out, j->p.transcribe_user_data);
    double dt = asr_now_s() - t0;
    slot_set(w, lease, false);
    int why = atomic_load(&w->abort);
    if (why == ABORT_CANCELLED || why == ABORT_LOST) {
        ASR_LOG(ASR_LOG_INFO, "msg=job_aborted job=%lld attempt=%d reason=%s", (long long)job->id,
                lease->attempt, why == ABORT_CANCELLED ? "cancelled_or_deleted" : "lease_lost");
    } else if (e == ASR_OK) {
        job_commit(w, lease, &out, rec.duration_s, dt);
    } else if (why == ABORT_SHUTDOWN || e == ASR_ERR_CANCELLED) {
        /* interrupted here, not the job's fault: hand it to another worker now (the attempt was
         * counted at claim; on the last one the lease is left to expire, as for a crash) */
        if (lease->attempt < job->max_attempts)
            job_failed(w, lease, job, "interrupted: the node shut down", true, 0);
        ASR_LOG(ASR_LOG_INFO, "msg=job_interrupted job=%lld attempt=%d", (long long)job->id,
                lease->attempt);
    } else if (out.not_served) {
        job_left(w, lease, job, out.error[0] ? out.error : asr_strerror(e));
    } else {
        const char *msg = out.error[0] ? out.error : asr_strerror(e);
        job_failed(w, lease, job, msg, out.retryable,
                   asr_jobs_retry_delay_ms(&j->p, lease->attempt));
    }
    free(out.result_json);
    free(out.backend);
    free(out.model_used);
    free(path);
    asr_store_recording_clear(&rec);
}

static void *worker_main(void *arg) {
    worker_t *w = arg;
    asr_jobs_t *j = w->jobs;
    while (!atomic_load(&j->stopping)) {
        if (atomic_load(&j->quiesced)) {
            pthread_mutex_lock(&j->mu);
            if (!atomic_load(&j->stopping))
                timed_wait(j, 0.5);
            pthread_mutex_unlock(&j->mu);
            continue;
        }
        pthread_mutex_lock(&j->mu);
        unsigned seq = j->wake_seq;
        pthread_mutex_unlock(&j->mu);
        asr_store_lease_t lease;
        asr_store_job_t job;
        char names[ASR_STORE_CLAIM_MAX_SKIP][128];
        const char *skip[ASR_STORE_CLAIM_MAX_SKIP];
        int n_skip = unserved_now(j, names, skip);
        asr_err_t e = asr_store_job_claim_except(w->store, w->owner, j->p.lease_ms, skip, n_skip,
                                                 &lease, &job);
        if (e == ASR_OK) {
            run_job(w, &lease, &job);
            asr_store_job_clear(&job);
            continue;
        }
        if (e != ASR_ERR_NOT_FOUND)
            ASR_LOG(ASR_LOG_WARN, "msg=job_claim_failed owner=%s err=\"%s\"", w->owner,
                    asr_store_errmsg(w->store));
        pthread_mutex_lock(&j->mu);
        if (seq == j->wake_seq && !atomic_load(&j->stopping)) /* nothing new meanwhile */
            timed_wait(j, e == ASR_ERR_NOT_FOUND ? 0.5 : 2.0);
        pthread_mutex_unlock(&j->mu);
    }
    return NULL;
}

/* ---- the keeper: leases and heartbeat ---- */

static void renew_slot(asr_jobs_t *j, worker_t *w, double now) {
    pthread_mutex_lock(&j->mu);
    bool due = w->active && atomic_load(&w->abort) == ABORT_NONE &&
               (now - w->last_renew >= j->p.lease_ms / 3000.0 ||
                (w->progress != w->progress_sent && now - w->last_renew >= 0.5));
    asr_store_lease_t lease = w->lease;
    double progress = w->progress;
    pthread_mutex_unlock(&j->mu);
    if (!due)
        return;
    asr_err_t e = asr_store_job_renew(j->kstore, &lease, j->p.lease_ms, progress);
    pthread_mutex_lock(&j->mu);
    if (w->active && w->lease.job_id == lease.job_id && w->lease.attempt == lease.attempt) {
        w->last_renew = now;
        if (e == ASR_OK) {
            w->lease.expires_at = lease.expires_at;
            w->progress_sent = progress;
        } else if (e == ASR_ERR_CANCELLED || e == ASR_ERR_NOT_FOUND) {
            atomic_store(&w->abort, ABORT_CANCELLED);
        } else if (e == ASR_ERR_BUSY) {
            atomic_store(&w->abort, ABORT_LOST);
        }
    }
    pthread_mutex_unlock(&j->mu);
    if (e == ASR_OK)
        asr_jobs_crash_point("renewed", 0);
    else
        ASR_LOG(e == ASR_ERR_CANCELLED ? ASR_LOG_INFO : ASR_LOG_WARN,
                "msg=job_renew_failed job=%lld attempt=%d err=\"%s\"", (long long)lease.job_id,
                lease.attempt, asr_store_errmsg(j->kstore));
}

static void heartbeat(asr_jobs_t *j) {
    json_t *o = json_object();
    json_object_set_new(o, "url", json_string(j->node_url));
    json_object_set_new(o, "version", json_string(j->version));
    json_t *models = json_array();
    char *m = asr_xstrdup(j->models), *save = NULL;
    for (char *t = strtok_r(m, ",", &save); t; t = strtok_r(NULL, ",", &save))
        json_array_append_new(models, json_string(t));
    free(m);
    json_object_set_new(o, "models", models);
    json_object_set_new(o, "workers", json_integer(j->n));
    json_object_set_new(o, "transcriber", json_string(j->transcriber));
    json_object_set_new(o, "running", json_integer(asr_jobs_running(j)));
    json_object_set_new(o, "pid", json_integer(getpid()));
    char *js = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (asr_store_node_heartbeat(j->kstore, j->node_id, j->n, js) != ASR_OK)
        ASR_LOG(ASR_LOG_WARN, "msg=heartbeat_failed node=%s err=\"%s\"", j->node_id,
                asr_store_errmsg(j->kstore));
    free(js);
}

/* One retention run on the keeper's handle, its outcome kept for asr_jobs_retention_status. */
static void retention(asr_jobs_t *j) {
    int n = 0;
    int64_t bytes = 0, at = 0;
    asr_err_t e = asr_jobs_retention_run(j->kstore, j->recordings_dir, j->p.retention_days,
                                         j->p.retention_keep_transcripts, &n, &bytes);
    if (e != ASR_OK)
        ASR_LOG(ASR_LOG_WARN, "msg=retention_failed deleted=%d err=\"%s\"", n,
                asr_store_errmsg(j->kstore));
    else if (n)
        ASR_LOG(ASR_LOG_INFO, "msg=retention_run deleted=%d bytes=%lld days=%d what=%s", n,
                (long long)bytes, j->p.retention_days,
                j->p.retention_keep_transcripts ? "audio" : "recording");
    asr_store_now_ms(j->kstore, &at);
    pthread_mutex_lock(&j->mu);
    j->retention.last_run_at = at;
    j->retention.last_deleted = n;
    j->retention.total_deleted += n;
    j->retention.total_bytes += bytes;
    pthread_mutex_unlock(&j->mu);
}

void asr_jobs_retention_status(const asr_jobs_t *j, asr_jobs_retention_t *out) {
    memset(out, 0, sizeof *out);
    if (!j)
        return;
    asr_jobs_t *m = (asr_jobs_t *)j;
    pthread_mutex_lock(&m->mu);
    *out = j->retention;
    pthread_mutex_unlock(&m->mu);
    out->days = j->p.retention_days;
    out->keep_transcripts = j->p.retention_keep_transcripts;
}

static void *keeper_main(void *arg) {
    asr_jobs_t *j = arg;
    double last_beat = 0, last_retention = -1e18;
    while (!atomic_load(&j->stopping)) {
        double now = asr_now_s();
        if (j->p.retention_days > 0 &&
            now - last_retention >= j->p.retention_interval_ms / 1000.0) {
            retention(j);
            last_retention = now;
        }
        for (int i = 0; i < j->n; i++)
            renew_slot(j, &j->w[i], now);
        if (now - last_beat >= j->p.heartbeat_ms / 1000.0) {
            heartbeat(j);
            last_beat = now;
        }
        asr_sleep_s(0.2);
    }
    return NULL;
}

/* ---- lifecycle ---- */

asr_err_t asr_jobs_start(const asr_jobs_params_t *p, asr_jobs_t **out, char *err, size_t errlen) {
    *out = NULL;
    asr_jobs_t *j = asr_xcalloc(1, sizeof *j);
    j->p = *p;
    j->database = asr_xstrdup(p->database ? p->database : "");
    j->data_dir = asr_xstrdup(p->data_dir ? p->data_dir : "");
    j->recordings_dir = asr_xstrdup(p->recordings_dir ? p->recordings_dir : "");
    j->node_id = asr_xstrdup(p->node_id);
    j->node_url = asr_xstrdup(p->node_url ? p->node_url : "");
    j->version = asr_xstrdup(p->version ? p->version : "");
    j->models = asr_xstrdup(p->models ? p->models : "");
    j->transcriber = asr_xstrdup(p->transcriber ? p->transcriber : "local");
    if (j->p.lease_ms <= 0)
        j->p.lease_ms = 30000;
    if (j->p.heartbeat_ms <= 0)
        j->p.heartbeat_ms = 5000;
    if (j->p.retention_interval_ms <= 0)
        j->p.retention_interval_ms = 3600 * 1000;
    pthread_mutex_init(&j->mu, NULL);
    asr_cond_init(&j->cv);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const char *db = j->database[0] ? j->database : NULL;
    asr_err_t e = asr_store_open(db, j->data_dir, &j->kstore, err, errlen);
    j->n = p->n_workers > 0 ? p->n_workers : 0;
    j->w = asr_xcalloc((size_t)j->n + 1, sizeof *j->w);
    for (int i = 0; i < j->n && e == ASR_OK; i++) {
        worker_t *w = &j->w[i];
        w->jobs = j;
        w->index = i;
        snprintf(w->owner, sizeof w->owner, "%.100s/w%d", j->node_id, i);
        e = asr_store_open(db, j->data_dir, &w->store, err, errlen);
    }
    for (int i = 0; i < j->n && e == ASR_OK; i++) {
        if (pthread_create(&j->w[i].thread, NULL, worker_main, &j->w[i]) != 0) {
            asr_errf(err, errlen, "cannot start job worker %d", i);
            e = ASR_ERR_NOMEM;
        } else
            j->w[i].started = true;
    }
    if (e == ASR_OK) {
        heartbeat(j); /* listed in /api/nodes from the start */
        if (pthread_create(&j->keeper, NULL, keeper_main, j) != 0) {
            asr_errf(err, errlen, "cannot start the job keeper thread");
            e = ASR_ERR_NOMEM;
        } else
            j->keeper_started = true;
    }
    if (e != ASR_OK) {
        asr_jobs_stop(j);
        return e;
    }
    ASR_LOG(ASR_LOG_INFO, "msg=jobs_started node=%s workers=%d lease_ms=%d recordings=%s",
            j->node_id, j->n, j->p.lease_ms, j->recordings_dir);
    *out = j;
    return ASR_OK;
}

void asr_jobs_wake(asr_jobs_t *j) {
    if (!j)
        return;
    pthread_mutex_lock(&j->mu);
    j->wake_seq++;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
}

bool asr_jobs_cancel_local(asr_jobs_t *j, int64_t id) {
    if (!j)
        return false;
    bool found = false;
    pthread_mutex_lock(&j->mu);
    for (int i = 0; i < j->n; i++)
        if (j->w[i].active && j->w[i].lease.job_id == id) {
            atomic_store(&j->w[i].abort, ABORT_CANCELLED);
            found = true;
        }
    pthread_mutex_unlock(&j->mu);
    return found;
}

void asr_jobs_quiesce(asr_jobs_t *j) {
    if (j)
        atomic_store(&j->quiesced, true);
}

int asr_jobs_running(const asr_jobs_t *j) {
    int n = 0;
    asr_jobs_t *m = (asr_jobs_t *)j;
    pthread_mutex_lock(&m->mu);
    for (int i = 0; i < j->n; i++)
        n += j->w[i].active;
    pthread_mutex_unlock(&m->mu);
    return n;
}

const char *asr_jobs_node_id(const asr_jobs_t *j) { return j->node_id; }

void asr_jobs_stop(asr_jobs_t *j) {
    if (!j)
        return;
    pthread_mutex_lock(&j->mu);
    atomic_store(&j->stopping, true);
    for (int i = 0; i < j->n; i++)
        if (j->w[i].active)
            atomic_store(&j->w[i].abort, ABORT_SHUTDOWN);
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
    for (int i = 0; i < j->n; i++)
        if (j->w[i].started)
            pthread_join(j->w[i].thread, NULL);
    if (j->keeper_started)
        pthread_join(j->keeper, NULL);
    for (int i = 0; i < j->n; i++)
        asr_store_close(j->w[i].store);
    asr_store_close(j->kstore);
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cv);
    free(j->w);
    free(j->database);
    free(j->data_dir);
    free(j->recordings_dir);
    free(j->node_id);
    free(j->node_url);
    free(j->version);
    free(j->models);
    free(j->transcriber);
    free(j);
}
