/* jobs: the default transcriber, on this node's local-transcription service (svc), as the OpenAI
 * routes run: the job's options JSON goes through the service's one validation (a stored value
 * out of range fails the job, it is never clamped), the recording is streamed from disk (flat
 * memory), progress and aborts flow through the service's hooks, and the result is the CLI's
 * verbose_json (segments with their words). Whether a failure is worth another attempt is the
 * service's decision (asr_svc_err_retryable), the same one HTTP answers with its status. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format/format.h"
#include "core/core.h"
#include "jobs/jobs.h"
#include "svc/svc.h"

typedef struct {
    const asr_jobs_task_t *task;
    asr_jobs_outcome_t *out;
    bool translate;
    int n_segments;
} ljob_t;

static void on_progress(double f, void *ud) {
    ljob_t *lj = ud;
    lj->task->progress_cb(f, lj->task->user_data);
}

static bool on_cancel(void *ud) {
    ljob_t *lj = ud;
    return lj->task->abort_cb(lj->task->user_data);
}

static void on_segment(const asr_segment_t *seg, void *ud) {
    (void)seg;
    ljob_t *lj = ud;
    if (lj->task->segment_cb)
        lj->task->segment_cb(++lj->n_segments, lj->task->user_data);
}

static void on_result(const asr_svc_result_t *res, void *ud) {
    ljob_t *lj = ud;
    asr_buf_t b;
    asr_buf_init(&b);
    asr_format_write(res->stream, ASR_FMT_VERBOSE_JSON, lj->translate ? "translate" : "transcribe",
                     &b);
    free(lj->out->result_json);
    lj->out->result_json = asr_buf_steal(&b);
    free(lj->out->model_used);
    lj->out->model_used = asr_xstrdup(res->model);
}

/* The job's request: its model, language and stored options, validated by the service. */
static asr_err_t make_request(const asr_svc_t *svc, const asr_jobs_task_t *task,
                              asr_svc_request_t *rq, asr_svc_error_t *e) {
    asr_svc_request_init(svc, rq);
    rq->max_audio_seconds = 0; /* a recording's limit is its upload size (max_recording) */
    asr_err_t rc = ASR_OK;
    if (task->options_json) {
        json_error_t je;
        json_t *opts = json_loads(task->options_json, 0, &je);
        rc = opts ? asr_svc_options_json(rq, opts, NULL, e)
                  : asr_svc_fail(e, ASR_ERR_INVALID, "options",
                                 "the job's options are not JSON: %s", je.text);
        json_decref(opts);
    }
    if (rc == ASR_OK && task->language && *task->language)
        rc = asr_svc_option(rq, "language", task->language, NULL, e);
    if (rc == ASR_OK && task->model && *task->model)
        rc = asr_svc_option(rq, "model", task->model, NULL, e);
    if (rc == ASR_OK)
        rc = asr_svc_request_finish(svc, rq, NULL, e);
    return rc;
}

asr_err_t asr_jobs_local_transcribe(const asr_jobs_task_t *task, asr_jobs_outcome_t *out,
                                    void *user_data) {
    const asr_jobs_local_t *lc = user_data;
    out->backend = asr_xstrdup("local");
    asr_svc_request_t rq;
    asr_svc_error_t e;
    asr_err_t rc = make_request(lc->svc, task, &rq, &e);
    ljob_t lj = {.task = task, .out = out, .translate = rq.translate};
    if (rc == ASR_OK) {
        asr_svc_hooks_t h = {.segment_cb = on_segment,
                             .progress_cb = on_progress,
                             .result_cb = on_result,
                             .cancel_cb = on_cancel,
                             .user_data = &lj};
        rc = asr_svc_run(lc->svc, &rq, task->path, &h, &e);
    }
    asr_svc_request_clear(&rq);
    if (rc == ASR_OK)
        return ASR_OK;
    free(out->result_json);
    out->result_json = NULL;
    if (rc == ASR_ERR_CANCELLED)
        return rc;
    snprintf(out->error, sizeof out->error, "%s", e.message);
    out->retryable = asr_svc_err_retryable(rc);
    out->not_served = rc == ASR_ERR_NOT_FOUND && !strcmp(e.param, "model"); /* another node may */
    return rc == ASR_ERR_AGAIN ? ASR_ERR_CANCELLED : rc; /* shutting down: not the job's fault */
}
