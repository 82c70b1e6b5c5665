/* jobs: the default transcriber, on this node's scheduler (as the OpenAI routes run): a job's
 * options become engine parameters, the recording is streamed from disk (flat memory), progress
 * and aborts flow through the engine's callbacks, and the result is the CLI's verbose_json
 * (segments with their words). The worker thread waits for the scheduler's done_cb; while the job
 * still waits for a slot, an abort takes it out of the scheduler's queue. */
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "format/format.h"
#include "audio/audio.h"
#include "core/core.h"
#include "jobs/jobs.h"

typedef struct {
    asr_sched_job_t job; /* job.user_data = this */
    const asr_jobs_task_t *task;
    const asr_jobs_local_t *lc;
    asr_jobs_outcome_t *out;
    /* options */
    int beam_size;
    float temperature;
    bool words, vad, translate;
    const char *prompt, *hotwords; /* borrowed from opts */
    json_t *opts;
    /* outcome, under mu */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool finished;
    asr_err_t status;
    asr_err_t rc; /* run_cb's verdict */
    int n_segments;
} ljob_t;

static bool opt_bool(json_t *o, const char *k, bool def) {
    json_t *v = json_object_get(o, k);
    return json_is_boolean(v) ? json_is_true(v) : def;
}

static const char *opt_str(json_t *o, const char *k) {
    json_t *v = json_object_get(o, k);
    return json_is_string(v) && json_string_length(v) ? json_string_value(v) : NULL;
}

static void parse_options(ljob_t *lj) {
    lj->opts = lj->task->options_json ? json_loads(lj->task->options_json, 0, NULL) : NULL;
    json_t *o = lj->opts;
    json_t *b = json_object_get(o, "beam_size");
    lj->beam_size = json_is_integer(b) ? (int)json_integer_value(b) : lj->lc->beam_size;
    if (lj->beam_size < 1 || lj->beam_size > 8)
        lj->beam_size = lj->beam_size < 1 ? 1 : 8;
    json_t *t = json_object_get(o, "temperature");
    lj->temperature = json_is_number(t) ? (float)json_number_value(t) : 0.0f;
    lj->words = opt_bool(o, "word_timestamps", true);
    lj->vad = opt_bool(o, "vad_filter", lj->lc->vad);
    const char *task = opt_str(o, "task");
    lj->translate = task && !strcmp(task, "translate");
    lj->prompt = opt_str(o, "prompt");
    lj->hotwords = opt_str(o, "hotwords");
}

static void on_progress(double f, void *ud) {
    ljob_t *lj = ud;
    asr_sched_job_beat(&lj->job);
    lj->task->progress_cb(f, lj->task->user_data);
}

static bool on_abort(void *ud) {
    ljob_t *lj = ud;
    asr_sched_job_beat(&lj->job);
    return asr_sched_job_cancelled(&lj->job) || lj->task->abort_cb(lj->task->user_data);
}

static void on_segment(const asr_segment_t *seg, void *ud) {
    (void)seg;
    ljob_t *lj = ud;
    asr_sched_job_beat(&lj->job);
    if (lj->task->segment_cb)
        lj->task->segment_cb(++lj->n_segments, lj->task->user_data);
}

static asr_transcribe_params_t make_params(ljob_t *lj) {
    asr_transcribe_params_t tp = asr_transcribe_default_params();
    tp.task = lj->translate ? ASR_TASK_TRANSLATE : ASR_TASK_TRANSCRIBE;
    tp.language = lj->task->language;
    tp.initial_prompt = lj->prompt;
    tp.hotwords = lj->hotwords;
    tp.beam_size = lj->beam_size;
    if (lj->temperature > 0.0f) {
        tp.temperatures[0] = lj->temperature;
        tp.n_temperatures = 1;
    }
    tp.vad_filter = lj->vad;
    tp.word_timestamps = lj->words;
    tp.progress_cb = on_progress;
    tp.progress_cb_user_data = lj;
    tp.abort_cb = on_abort;
    tp.abort_cb_user_data = lj;
    tp.segment_cb = on_segment;
    tp.segment_cb_user_data = lj;
    return tp;
}

/* The file's errors start with its path: the client knows which recording it is. */
static const char *no_path(const char *err, const char *path) {
    size_t n = strlen(path);
    if (!strncmp(err, path, n) && err[n] == ':')
        return err + n + 1 + (err[n + 1] == ' ');
    return err;
}

static asr_err_t run_cb(asr_sched_job_t *job, asr_stream_t *stream) {
    ljob_t *lj = job->user_data;
    asr_jobs_outcome_t *out = lj->out;
    char err[512] = "";
    asr_audio_file_source_t fs;
    asr_err_t rc = asr_audio_file_source_open(&fs, lj->task->path, err, sizeof err);
    if (rc == ASR_OK) {
        asr_pcm_source_t ps = {asr_audio_file_source_read, asr_audio_file_source_rewind, &fs};
        asr_transcribe_params_t tp = make_params(lj);
        tp.n_threads = asr_sched_job_threads(job);
        if (job->n_seq < asr_transcribe_n_seq(&tp)) /* retried in a smaller slot */
            tp.beam_size = tp.best_of = job->n_seq;
        lj->n_segments = 0;
        rc = asr_stream_transcribe_source(stream, &ps, &tp);
        if (rc != ASR_OK && fs.errmsg[0])
            snprintf(err, sizeof err, "%s", fs.errmsg);
        asr_audio_file_source_close(&fs);
    }
    if (rc == ASR_ERR_NOMEM)
        return rc; /* the scheduler retries (one sequence, fallback model) or ends the job */
    pthread_mutex_lock(&lj->mu);
    lj->rc = rc;
    if (rc == ASR_OK) {
        asr_buf_t b;
        asr_buf_init(&b);
        asr_format_write(stream, ASR_FMT_VERBOSE_JSON, lj->translate ? "translate" : "transcribe",
                         &b);
        out->result_json = asr_buf_steal(&b);
        out->model_used = asr_xstrdup(asr_sched_model_id(lj->lc->sched, job->served_model));
    } else if (rc != ASR_ERR_CANCELLED) {
        /* the audio, or the request: another attempt would fail the same way */
        if (err[0])
            snprintf(out->error, sizeof out->error, "could not decode the audio file: %s",
                     no_path(err, lj->task->path));
        else
            snprintf(out->error, sizeof out->error, "transcription failed: %s",
                     asr_stream_errmsg(stream)[0] ? asr_stream_errmsg(stream) : asr_strerror(rc));
        out->retryable = false;
    }
    pthread_mutex_unlock(&lj->mu);
    return ASR_OK; /* the outcome is in lj */
}

static void done_cb(asr_sched_job_t *job, asr_err_t status) {
    ljob_t *lj = job->user_data;
    pthread_mutex_lock(&lj->mu);
    lj->status = status;
    lj->finished = true;
    pthread_cond_broadcast(&lj->cv);
    pthread_mutex_unlock(&lj->mu);
}

/* Fills out->error/retryable for a job the scheduler ended (or refused) with `st`. */
static asr_err_t sched_failure(ljob_t *lj, asr_err_t st) {
    asr_jobs_outcome_t *out = lj->out;
    switch (st) {
    case ASR_ERR_CANCELLED:
        return st;
    case ASR_ERR_BUSY:
    case ASR_ERR_NOMEM:
        out->retryable = true;
        snprintf(out->error, sizeof out->error, "%s: %s",
                 st == ASR_ERR_BUSY ? "server is overloaded" : "out of memory",
                 lj->job.errmsg[0] ? lj->job.errmsg : asr_strerror(st));
        return st;
    case ASR_ERR_AGAIN:
        out->retryable = true;
        snprintf(out->error, sizeof out->error, "the node is shutting down");
        return ASR_ERR_CANCELLED;
    case ASR_ERR_MODEL:
        out->retryable = true;
        snprintf(out->error, sizeof out->error, "model failed to load: %s", lj->job.errmsg);
        return st;
    default:
        out->retryable = false;
        snprintf(out->error, sizeof out->error, "transcription failed: %s",
                 lj->job.errmsg[0] ? lj->job.errmsg : asr_strerror(st));
        return st;
    }
}

static void wait_done(ljob_t *lj) {
    pthread_mutex_lock(&lj->mu);
    bool cancelled = false;
    while (!lj->finished) {
        asr_cond_timedwait_s(&lj->cv, &lj->mu, 0.2);
        if (!lj->finished && !cancelled && lj->task->abort_cb(lj->task->user_data)) {
            cancelled = true; /* a queued job leaves the queue; a running one stops at on_abort */
            pthread_mutex_unlock(&lj->mu);
            asr_sched_cancel(lj->lc->sched, &lj->job); /* may call done_cb: no lock held */
            pthread_mutex_lock(&lj->mu);
        }
    }
    pthread_mutex_unlock(&lj->mu);
}

asr_err_t asr_jobs_local_transcribe(const asr_jobs_task_t *task, asr_jobs_outcome_t *out,
                                    void *user_data) {
    const asr_jobs_local_t *lc = user_data;
    ljob_t *lj = asr_xcalloc(1, sizeof *lj);
    lj->task = task;
    lj->lc = lc;
    lj->out = out;
    out->backend = asr_xstrdup("local");
    pthread_mutex_init(&lj->mu, NULL);
    asr_cond_init(&lj->cv);
    parse_options(lj);
    asr_err_t rc = ASR_OK;
    int m = task->model && *task->model ? asr_sched_model_find(lc->sched, task->model) : 0;
    if (m < 0) {
        out->retryable = false;
        out->not_served = true; /* left for a node that serves it */
        snprintf(out->error, sizeof out->error, "model '%.100s' is not loaded on this node",
                 task->model);
        rc = ASR_ERR_NOT_FOUND;
        goto done;
    }
    lj->job.model = m;
    lj->job.allow_fallback = true;
    lj->job.keep_alive_s = ASR_SCHED_KEEP_ALIVE_DEFAULT;
    asr_transcribe_params_t tp0 = make_params(lj);
    lj->job.n_seq = asr_transcribe_n_seq(&tp0);
    lj->job.word_timestamps = tp0.word_timestamps;
    lj->job.run_cb = run_cb;
    lj->job.done_cb = done_cb;
    lj->job.user_data = lj;
    asr_err_t st = asr_sched_submit(lc->sched, &lj->job);
    if (st != ASR_OK) {
        rc = sched_failure(lj, st);
        goto done;
    }
    wait_done(lj);
    if (lj->status != ASR_OK)
        rc = sched_failure(lj, lj->status);
    else
        rc = lj->rc;
    if (rc == ASR_ERR_CANCELLED) {
        free(out->result_json);
        out->result_json = NULL;
    }
done:
    json_decref(lj->opts);
    pthread_mutex_destroy(&lj->mu);
    pthread_cond_destroy(&lj->cv);
    free(lj);
    return rc;
}
