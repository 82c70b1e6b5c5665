/* svc: running a finished request as a scheduler job, and the one table that maps an outcome to
 * an HTTP status and a retry decision.
 *
 * A call is shared by its caller's thread and a scheduler worker: refcounted (the caller's
 * reference, and the scheduler's until done_cb), its outcome guarded by c->mu. The worker reads
 * the audio file through a source capped at max_audio_seconds (flat memory: the engine pulls
 * ~30 s at a time); an out-of-memory failure or a device error (ASR_ERR_GPU) goes back to the
 * scheduler, which retries with one sequence, then on the next target (the fallback chain, the
 * CPU twin), before the call ends ASR_ERR_NOMEM. */
#include <ctype.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audio/audio.h"
#include "svc/svc_int.h"

/* ---- the one mapping ---- */

int asr_svc_err_http_status(asr_err_t code) {
    switch (code) {
    case ASR_OK:
        return 200;
    case ASR_ERR_INVALID:
    case ASR_ERR_AUDIO:
        return 400;
    case ASR_ERR_NOT_FOUND:
        return 404;
    case ASR_ERR_UNSUPPORTED:
        return 413;
    case ASR_ERR_CANCELLED:
        return 499;
    case ASR_ERR_BUSY:
    case ASR_ERR_NOMEM:
    case ASR_ERR_AGAIN:
    case ASR_ERR_GPU:
    case ASR_ERR_TIMEOUT:
        return 503;
    default: /* MODEL, IO, DB */
        return 500;
    }
}

bool asr_svc_err_retryable(asr_err_t code) { return asr_svc_err_http_status(code) == 503; }

const char *asr_svc_err_code(asr_err_t code) {
    switch (code) {
    case ASR_OK:
    case ASR_ERR_CANCELLED:
        return NULL;
    case ASR_ERR_INVALID:
        return "invalid_value";
    case ASR_ERR_AUDIO:
        return "invalid_audio";
    case ASR_ERR_NOT_FOUND:
        return "model_not_found";
    case ASR_ERR_UNSUPPORTED:
        return "audio_too_long";
    case ASR_ERR_AGAIN:
        return "shutting_down";
    case ASR_ERR_MODEL:
        return "model_load_failed";
    default:
        return asr_svc_err_retryable(code) ? "server_is_overloaded" : "transcription_failed";
    }
}

/* ---- a call ---- */

struct asr_svc_call {
    asr_sched_job_t job; /* job.user_data = this */
    atomic_int refs;
    asr_svc_t *svc;
    asr_svc_request_t rq; /* a copy */
    char *path;
    asr_svc_hooks_t hooks;
    atomic_bool cancel_asked; /* by asr_svc_call_cancel: CANCELLED is then the caller's doing */
    /* under mu */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool finished;
    unsigned events, seen; /* segments so far; those a waiter has seen */
    asr_err_t rc;
    asr_svc_error_t err;
};

static void call_release(asr_svc_call_t *c) {
    if (!c || atomic_fetch_sub(&c->refs, 1) != 1)
        return;
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    asr_svc_request_clear(&c->rq);
    free(c->path);
    free(c);
}

void asr_svc_call_release(asr_svc_call_t *c) { call_release(c); }

static bool abort_cb(void *ud) {
    asr_svc_call_t *c = ud;
    asr_sched_job_beat(&c->job);
    return asr_sched_job_cancelled(&c->job);
}

static void progress_cb(double f, void *ud) {
    asr_svc_call_t *c = ud;
    asr_sched_job_beat(&c->job);
    if (c->hooks.progress_cb)
        c->hooks.progress_cb(f, c->hooks.user_data);
}

static void segment_cb(const asr_segment_t *seg, void *ud) {
    asr_svc_call_t *c = ud;
    asr_sched_job_beat(&c->job);
    if (c->hooks.segment_cb)
        c->hooks.segment_cb(seg, c->hooks.user_data);
    pthread_mutex_lock(&c->mu);
    c->events++;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static asr_transcribe_params_t make_params(asr_svc_call_t *c) {
    const asr_svc_request_t *rq = &c->rq;
    asr_transcribe_params_t tp = asr_transcribe_default_params();
    tp.task = rq->translate ? ASR_TASK_TRANSLATE : ASR_TASK_TRANSCRIBE;
    tp.language = rq->language;
    tp.initial_prompt = rq->prompt;
    tp.hotwords = rq->hotwords;
    tp.beam_size = rq->beam_size;
    if (rq->temperature > 0.0f) { /* > 0: that temperature only; 0: the fallback schedule */
        tp.temperatures[0] = rq->temperature;
        tp.n_temperatures = 1;
    }
    tp.vad_filter = rq->vad;
    tp.word_timestamps = rq->word_timestamps;
    tp.chinese_script = rq->chinese_script;
    tp.abort_cb = abort_cb;
    tp.abort_cb_user_data = c;
    tp.progress_cb = progress_cb;
    tp.progress_cb_user_data = c;
    tp.segment_cb = segment_cb;
    tp.segment_cb_user_data = c;
    return tp;
}

/* The file as the engine's restartable PCM source, cut off past max_audio_seconds. */
typedef struct {
    asr_audio_file_source_t fs;
    size_t n, max_n; /* max_n 0: no limit */
    bool too_long;
} capped_src_t;

static asr_err_t capped_read(void *ud, float *buf, size_t n, size_t *n_read) {
    capped_src_t *s = ud;
    asr_err_t rc = asr_audio_file_source_read(&s->fs, buf, n, n_read);
    if (rc == ASR_OK && s->max_n && (s->n += *n_read) > s->max_n) {
        s->too_long = true;
        return ASR_ERR_UNSUPPORTED;
    }
    return rc;
}

static asr_err_t capped_rewind(void *ud) {
    capped_src_t *s = ud;
    s->n = 0;
    return asr_audio_file_source_rewind(&s->fs);
}

/* Audio errors start with the file's path: a temp path means nothing to the client. */
static const char *no_path(const char *err, const char *path) {
    size_t n = strlen(path);
    if (!strncmp(err, path, n) && err[n] == ':')
        return err + n + 1 + (err[n + 1] == ' ');
    return err;
}

/* The outcome of a transcription that ran (under mu). */
static void run_outcome(asr_svc_call_t *c, asr_stream_t *stream, asr_err_t rc,
                        const capped_src_t *src, const char *audio_err) {
    asr_svc_error_t *e = &c->err;
    const char *m = asr_stream_errmsg(stream);
    if (src->too_long)
        c->rc = asr_svc_fail(e, ASR_ERR_UNSUPPORTED, "file",
                             "the audio is longer than the server's limit of %d s",
                             c->rq.max_audio_seconds);
    else if (rc == ASR_ERR_CANCELLED)
        c->rc = atomic_load(&c->cancel_asked)
                    ? asr_svc_fail(e, ASR_ERR_CANCELLED, NULL, "the request was cancelled")
                    : asr_svc_fail(e, ASR_ERR_AGAIN, NULL, "the server is shutting down");
    else if (audio_err[0])
        c->rc = asr_svc_fail(e, rc == ASR_ERR_NOMEM ? ASR_ERR_NOMEM : ASR_ERR_AUDIO,
                             rc == ASR_ERR_NOMEM ? NULL : "file",
                             "could not decode the audio file: %s", no_path(audio_err, c->path));
    else if (rc == ASR_ERR_INVALID || rc == ASR_ERR_UNSUPPORTED)
        c->rc = asr_svc_fail(e, ASR_ERR_INVALID, strstr(m, "language") ? "language" : NULL, "%s",
                             m[0] ? m : "invalid request");
    else
        c->rc = asr_svc_fail(e, rc, NULL, "transcription failed: %s", m[0] ? m : asr_strerror(rc));
}

static asr_err_t run_cb(asr_sched_job_t *job, asr_stream_t *stream) {
    asr_svc_call_t *c = job->user_data;
    double t0 = asr_now_s();
    char err[512] = "";
    int max_s = c->rq.max_audio_seconds;
    capped_src_t src = {.max_n = max_s > 0 ? (size_t)max_s * ASR_AUDIO_RATE : 0};
    asr_err_t rc = asr_audio_file_source_open(&src.fs, c->path, err, sizeof err);
    if (rc == ASR_OK) {
        asr_pcm_source_t ps = {capped_read, capped_rewind, &src};
        asr_transcribe_params_t tp = make_params(c);
        tp.n_threads = asr_sched_job_threads(job);
        if (job->n_seq < asr_transcribe_n_seq(&tp)) /* retried in a smaller slot */
            tp.beam_size = tp.best_of = job->n_seq;
        rc = asr_stream_transcribe_source(stream, &ps, &tp);
        if (rc != ASR_OK && src.fs.errmsg[0])
            snprintf(err, sizeof err, "%s", src.fs.errmsg);
        asr_audio_file_source_close(&src.fs);
    }
    if ((rc == ASR_ERR_NOMEM || rc == ASR_ERR_GPU) && !src.too_long)
        return rc; /* the scheduler retries (one sequence, the next target) or ends the job */
    if (rc == ASR_OK) {
        asr_svc_result_t res = {.model = asr_sched_model_id(c->svc->sched, job->served_model),
                                .device = job->served_device ? job->served_device : "cpu",
                                .language = asr_stream_language(stream),
                                .duration_s = asr_stream_duration(stream),
                                .proc_s = asr_now_s() - t0,
                                .n_segments = asr_stream_n_segments(stream),
                                .stream = stream};
        if (c->hooks.result_cb)
            c->hooks.result_cb(&res, c->hooks.user_data);
    }
    pthread_mutex_lock(&c->mu);
    if (rc == ASR_OK)
        c->rc = ASR_OK;
    else
        run_outcome(c, stream, rc, &src, err);
    pthread_mutex_unlock(&c->mu);
    return ASR_OK; /* the outcome is in c; other errors are final */
}

/* The outcome of a job the scheduler ended or refused with `st` (under mu, or before start). */
static void sched_outcome(asr_svc_call_t *c, asr_err_t st) {
    asr_svc_error_t *e = &c->err;
    const char *why = c->job.errmsg[0] ? c->job.errmsg : asr_strerror(st);
    switch (st) {
    case ASR_ERR_CANCELLED:
        c->rc = asr_svc_fail(e, st, NULL, "the request was cancelled");
        break;
    case ASR_ERR_BUSY:
    case ASR_ERR_NOMEM:
        c->rc = asr_svc_fail(e, st, NULL, "%s: %s",
                             st == ASR_ERR_BUSY ? "server is overloaded" : "out of memory", why);
        e->retry_after = asr_sched_retry_after(c->svc->sched);
        break;
    case ASR_ERR_INVALID: /* a finished request never gets here */
        c->rc = asr_svc_fail(e, st, "beam_size", "beam_size/best_of out of range");
        break;
    case ASR_ERR_AGAIN:
        c->rc = asr_svc_fail(e, st, NULL, "the server is shutting down");
        e->retry_after = asr_sched_retry_after(c->svc->sched);
        break;
    default: /* run_cb keeps its own errors: the scheduler's others are the model's load */
        c->rc = asr_svc_fail(e, ASR_ERR_MODEL, "model", "model failed to load: %s", why);
    }
}

static void done_cb(asr_sched_job_t *job, asr_err_t status) {
    asr_svc_call_t *c = job->user_data;
    pthread_mutex_lock(&c->mu);
    if (status != ASR_OK)
        sched_outcome(c, status);
    c->finished = true;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    if (c->hooks.done_cb)
        c->hooks.done_cb(c->hooks.user_data);
    call_release(c); /* the scheduler's reference */
}

static char *dup_or_null(const char *s) { return s ? asr_xstrdup(s) : NULL; }

asr_err_t asr_svc_start(asr_svc_t *svc, const asr_svc_request_t *rq, const char *path,
                        const asr_svc_hooks_t *hooks, asr_svc_call_t **out, asr_svc_error_t *err) {
    *out = NULL;
    if (!rq->finished)
        return asr_svc_fail(err, ASR_ERR_INVALID, NULL, "the request was not validated");
    asr_svc_call_t *c = asr_xcalloc(1, sizeof *c);
    atomic_store(&c->refs, 2); /* the caller's and the scheduler's */
    c->svc = svc;
    c->rq = *rq;
    c->rq.model_name = dup_or_null(rq->model_name);
    c->rq.language = dup_or_null(rq->language);
    c->rq.prompt = dup_or_null(rq->prompt);
    c->rq.hotwords = dup_or_null(rq->hotwords);
    c->path = asr_xstrdup(path);
    if (hooks)
        c->hooks = *hooks;
    pthread_mutex_init(&c->mu, NULL);
    asr_cond_init(&c->cv);
    asr_transcribe_params_t tp = make_params(c);
    c->job.model = rq->model;
    c->job.n_seq = asr_transcribe_n_seq(&tp);
    c->job.word_timestamps = tp.word_timestamps;
    c->job.allow_fallback = rq->allow_fallback;
    c->job.keep_alive_s = rq->keep_alive_s;
    c->job.run_cb = run_cb;
    c->job.done_cb = done_cb;
    c->job.user_data = c;
    asr_err_t st = asr_sched_submit(svc->sched, &c->job);
    if (st != ASR_OK) {
        sched_outcome(c, st);
        *err = c->err;
        atomic_store(&c->refs, 1);
        call_release(c);
        return st;
    }
    *out = c;
    return ASR_OK;
}

bool asr_svc_call_wait(asr_svc_call_t *c, double seconds) {
    pthread_mutex_lock(&c->mu);
    if (!c->finished && c->events == c->seen)
        asr_cond_timedwait_s(&c->cv, &c->mu, seconds);
    c->seen = c->events;
    bool fin = c->finished;
    pthread_mutex_unlock(&c->mu);
    return fin;
}

void asr_svc_call_cancel(asr_svc_call_t *c) {
    atomic_store(&c->cancel_asked, true);
    asr_sched_cancel(c->svc->sched, &c->job); /* may call done_cb here: no lock held */
}

asr_err_t asr_svc_call_outcome(asr_svc_call_t *c, asr_svc_error_t *err) {
    pthread_mutex_lock(&c->mu);
    asr_err_t rc = c->finished ? c->rc : ASR_ERR_AGAIN;
    if (rc != ASR_OK)
        *err = c->err;
    pthread_mutex_unlock(&c->mu);
    return rc;
}

asr_err_t asr_svc_run(asr_svc_t *svc, const asr_svc_request_t *rq, const char *path,
                      const asr_svc_hooks_t *hooks, asr_svc_error_t *err) {
    asr_svc_call_t *c;
    asr_err_t rc = asr_svc_start(svc, rq, path, hooks, &c, err);
    if (rc != ASR_OK)
        return rc;
    bool cancelled = false;
    while (!asr_svc_call_wait(c, 0.2))
        if (!cancelled && hooks && hooks->cancel_cb && hooks->cancel_cb(hooks->user_data)) {
            cancelled = true; /* a queued job leaves the queue; a running one stops soon */
            asr_svc_call_cancel(c);
        }
    rc = asr_svc_call_outcome(c, err);
    call_release(c);
    return rc;
}
