/* jobs: the transcriber that goes through the router (issue 6), so jobs fail over between ASR
 * backends like API requests do. Local attempts run asr_jobs_local_transcribe (progress, abort
 * and crash points intact); remote ones post the stored file as verbose_json. When every active
 * backend is local, it calls the local transcriber directly. */
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "jobs/jobs.h"
#include "svc/svc.h"

typedef struct {
    const asr_jobs_task_t *task;
    asr_jobs_local_t *local;
    asr_jobs_outcome_t local_out; /* of the last local attempt */
    asr_err_t local_rc;
} attempt_t;

/* A local attempt, in the router's terms: 200 with the verbose_json, else the status the service
 * maps the failure to (503 overloaded: fail over; 400 bad audio; 500 a model that will not load).
 */
static asr_err_t local_attempt(void *ud, const asr_route_opts_t *opts, const char *model_name,
                               asr_route_result_t *out) {
    (void)opts;
    attempt_t *a = ud;
    asr_jobs_task_t t = *a->task;
    if (model_name && *model_name)
        t.model = model_name;
    free(a->local_out.result_json);
    free(a->local_out.backend);
    free(a->local_out.model_used);
    memset(&a->local_out, 0, sizeof a->local_out);
    a->local_rc = asr_jobs_local_transcribe(&t, &a->local_out, a->local);
    if (a->local_rc == ASR_ERR_CANCELLED)
        return ASR_ERR_CANCELLED;
    if (a->local_rc == ASR_OK) {
        out->status = 200;
        out->body = a->local_out.result_json;
        out->body_len = strlen(out->body);
        a->local_out.result_json = NULL;
        out->content_type = asr_xstrdup("application/json");
        if (a->local_out.model_used)
            out->model = asr_xstrdup(a->local_out.model_used);
    } else {
        out->status = asr_svc_err_http_status(a->local_rc); /* the service's one mapping */
        out->overloaded = a->local_out.retryable;
        snprintf(out->error, sizeof out->error, "%.500s", a->local_out.error);
    }
    return ASR_OK;
}

/* The error message of an error body (asr_route_error_message), else the body's start. */
static void body_error(const asr_route_result_t *r, char *dst, size_t n) {
    char msg[384];
    if (asr_route_error_message(r->body, r->body_len, msg, sizeof msg))
        snprintf(dst, n, "HTTP %d from %s: %s", r->status, r->backend ? r->backend : "?", msg);
    else
        snprintf(dst, n, "HTTP %d from %s: %.200s", r->status, r->backend ? r->backend : "?",
                 r->body ? r->body : r->error);
}

asr_err_t asr_jobs_route_transcribe(const asr_jobs_task_t *task, asr_jobs_outcome_t *out,
                                    void *user_data) {
    asr_jobs_router_t *jr = user_data;
    if (asr_route_local_only(jr->router, NULL, 0)) {
        char model[256]; /* what the local row runs for it, as in a routed attempt */
        asr_route_local_run_model(jr->router, task->model, model, sizeof model);
        asr_jobs_task_t t = *task;
        if (model[0])
            t.model = model;
        return asr_jobs_local_transcribe(&t, out, jr->local);
    }
    static const char *const gran[] = {"word", "segment"};
    asr_route_opts_t o = {0};
    o.path = task->path;
    o.model = task->model && *task->model ? task->model : NULL;
    o.language = task->language;
    o.response_format = "verbose_json";
    o.granularities = gran;
    o.n_granularities = 2;
    o.cancel_cb = task->abort_cb;
    o.cancel_user_data = task->user_data;
    attempt_t a = {.task = task, .local = jr->local};
    asr_route_result_t r;
    memset(&r, 0, sizeof r);
    asr_err_t rc = asr_route_transcribe(jr->router, &o, local_attempt, &a, &r);
    if (rc == ASR_OK && r.status == 200) {
        out->result_json = r.body;
        r.body = NULL;
        out->backend = asr_xstrdup(r.backend ? r.backend : "local");
        out->model_used = asr_xstrdup(r.model ? r.model : (task->model ? task->model : ""));
    } else if (rc == ASR_OK) { /* an input error no backend will fix */
        if (r.local)
            snprintf(out->error, sizeof out->error, "%.500s", a.local_out.error);
        else
            body_error(&r, out->error, sizeof out->error);
        out->retryable = false;
        out->not_served = r.local && a.local_out.not_served; /* the model is not loaded here */
        rc = ASR_ERR_AUDIO;
    } else if (rc == ASR_ERR_NOT_FOUND) { /* no active backend serves the model */
        snprintf(out->error, sizeof out->error, "%.500s", r.error);
        out->not_served = true; /* another node's engine may have it */
        rc = ASR_ERR_AUDIO;
    } else if (rc != ASR_ERR_CANCELLED) {
        snprintf(out->error, sizeof out->error, "no backend could transcribe: %.400s",
                 r.error[0] ? r.error : asr_strerror(rc));
        out->retryable = true;
        rc = ASR_ERR_AGAIN;
    }
    free(a.local_out.result_json);
    free(a.local_out.backend);
    free(a.local_out.model_used);
    asr_route_result_clear(&r);
    return rc;
}
