/* api: job routes (get, list, cancel, retry, server-sent progress events), a recording's
 * transcript rendered from its newest finished job's stored result with the team's corrections
 * applied (txt, json, srt, vtt; by the format module; ?original=1 without them), and the nodes
 * sharing the queue. Job JSON is built by api_recordings.c (asr__api_job_json).
 *
 * Progress events read the store (the job may run on another node): a stream polls its job every
 * 250 ms and sends an event when the state or the progress changed, until the job ends. */
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/api_int.h"
#include "format/format.h"
#include "jobs/jobs.h"

/* Job ids and recording ids in paths name nothing when they are not numbers: 404. */
static bool path_id(asr_http_req_t *req, int64_t *id) { return asr__api_path_id(req, 404, id); }

static void store_error(asr_http_req_t *req, asr_api_t *api, asr_err_t e) {
    asr__api_store_error(req, api, e, "id");
}

/* True when job `id` (a recording's, for `recording`) exists; else answers why not. */
static bool exists(asr_http_req_t *req, asr_api_t *api, int64_t id, bool recording) {
    asr_store_job_t j;
    asr_store_recording_t r;
    asr_err_t e = recording ? asr_store_recording_get(api->store, id, &r)
                            : asr_store_job_get(api->store, id, &j);
    if (e != ASR_OK) {
        store_error(req, api, e);
        return false;
    }
    if (recording)
        asr_store_recording_clear(&r);
    else
        asr_store_job_clear(&j);
    return true;
}

static void respond_job(asr_http_req_t *req, asr_api_t *api, int64_t id, int status) {
    asr_store_job_t job;
    asr_err_t e = asr_store_job_get(api->store, id, &job);
    if (e != ASR_OK) {
        store_error(req, api, e);
        return;
    }
    json_t *o = asr__api_job_json(&job);
    asr_store_job_clear(&job);
    asr__api_respond_json(req, status, o);
}

static int parse_state(const char *s) {
    for (int i = 0; i < ASR_STORE_JOB_N_STATES; i++)
        if (!strcmp(s, asr_store_job_state_name((asr_store_job_state_t)i)))
            return i;
    return -2;
}

void asr__api_job_get(asr_http_req_t *req, void *ud) {
    int64_t id;
    if (path_id(req, &id))
        respond_job(req, ud, id, 200);
}

void asr__api_jobs_list(asr_http_req_t *req, void *ud) {
    asr_api_t *api = ud;
    const char *st = asr_http_req_query(req, "state");
    int state = st ? parse_state(st) : -1;
    if (state == -2) {
        asr_http_respond_error(req, 400, "state", "invalid_value",
                               "state must be queued, running, done, failed or cancelled");
        return;
    }
    long limit, offset, rec_id;
    if (!asr__api_query_int(req, "limit", 50, 1, 500, &limit) ||
        !asr__api_query_int(req, "offset", 0, 0, 1L << 30, &offset) ||
        !asr__api_query_int(req, "recording_id", 0, 0, 1L << 62, &rec_id))
        return;
    asr_store_job_t *v = NULL;
    size_t n = 0;
    int64_t counts[ASR_STORE_JOB_N_STATES];
    asr_err_t e = asr_store_job_list(api->store, rec_id, state, (int)offset, (int)limit, &v, &n);
    if (e == ASR_OK)
        e = asr_store_job_counts(api->store, counts);
    if (e != ASR_OK) {
        asr_store_jobs_free(v, n);
        store_error(req, api, e);
        return;
    }
    json_t *data = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(data, asr__api_job_json(&v[i]));
    asr_store_jobs_free(v, n);
    json_t *c = json_object();
    for (int i = 0; i < ASR_STORE_JOB_N_STATES; i++)
        json_object_set_new(c, asr_store_job_state_name((asr_store_job_state_t)i),
                            json_integer(counts[i]));
    json_t *root = json_object();
    json_object_set_new(root, "object", json_string("list"));
    json_object_set_new(root, "data", data);
    json_object_set_new(root, "counts", c);
    json_object_set_new(root, "limit", json_integer(limit));
    json_object_set_new(root, "offset", json_integer(offset));
    asr__api_respond_json(req, 200, root);
}

/* POST /api/jobs/{id}/cancel and /retry: the store's transition, then the recording's status
 * follows and this node's workers hear of it. */
static void job_transition(asr_http_req_t *req, asr_api_t *api, bool cancel) {
    int64_t id;
    if (!path_id(req, &id))
        return;
    asr_err_t e =
        cancel ? asr_store_job_cancel(api->store, id) : asr_store_job_retry(api->store, id);
    if (e != ASR_OK) {
        store_error(req, api, e);
        return;
    }
    if (cancel)
        asr_jobs_cancel_local(atomic_load(&api->jobs), id);
    asr_store_job_t job;
    if (asr_store_job_get(api->store, id, &job) == ASR_OK) {
        asr_store_recording_set_status(api->store, job.recording_id,
                                       cancel ? "cancelled" : "queued");
        asr_store_job_clear(&job);
    }
    if (!cancel)
        asr_jobs_wake(atomic_load(&api->jobs));
    respond_job(req, api, id, 200);
}

void asr__api_job_cancel(asr_http_req_t *req, void *ud) { job_transition(req, ud, true); }
void asr__api_job_retry(asr_http_req_t *req, void *ud) { job_transition(req, ud, false); }

/* ---- GET /api/jobs/{id}/events ---- */

typedef struct {
    asr_api_sse_t sse; /* first */
    int64_t id;
    int state;       /* last sent; -1 none */
    double progress; /* last sent */
    int attempts;
} job_sse_t;

/* Reads the job and queues the events its change calls for. */
static void job_sse_poll(asr_api_sse_t *sse) {
    job_sse_t *s = (job_sse_t *)sse;
    asr_store_job_t j;
    asr_err_t e = asr_store_job_get(sse->api->store, s->id, &j);
    if (e == ASR_ERR_NOT_FOUND) {
        json_t *o = json_object();
        json_object_set_new(o, "id", json_integer(s->id));
        json_object_set_new(o, "message", json_string("the job no longer exists"));
        asr__api_sse_event(sse, "error", o);
        json_decref(o);
        sse->ended = true;
        return;
    }
    if (e != ASR_OK)
        return; /* the database hiccuped: try again at the next poll */
    json_t *o = asr__api_job_json(&j);
    if ((int)j.state != s->state || j.attempts != s->attempts) {
        asr__api_sse_event(sse, "state", o);
        s->state = (int)j.state;
        s->attempts = j.attempts;
        s->progress = j.progress;
    } else if (fabs(j.progress - s->progress) > 1e-9) {
        asr__api_sse_event(sse, "progress", o);
        s->progress = j.progress;
    }
    if (j.state == ASR_STORE_JOB_DONE || j.state == ASR_STORE_JOB_FAILED ||
        j.state == ASR_STORE_JOB_CANCELLED) {
        asr__api_sse_event(sse, "end", o);
        sse->ended = true;
    }
    json_decref(o);
    asr_store_job_clear(&j);
}

void asr__api_job_events(asr_http_req_t *req, void *ud) {
    asr_api_t *api = ud;
    int64_t id;
    if (!path_id(req, &id) || !exists(req, api, id, false))
        return;
    job_sse_t *s = asr_xcalloc(1, sizeof *s);
    asr__api_sse_init(&s->sse, api, req, job_sse_poll, NULL);
    s->id = id;
    s->state = -1;
    job_sse_poll(&s->sse); /* the current state first */
    asr__api_sse_respond(&s->sse);
}

/* ---- GET /api/recordings/{id}/transcript ---- */

static bool parse_subs(asr_http_req_t *req, asr_subtitle_opts_t *subs) {
    static const char *names[] = {"max_line_width", "max_line_count", "max_words_per_line"};
    int *dst[] = {&subs->max_line_width, &subs->max_line_count, &subs->max_words_per_line};
    for (int i = 0; i < 3; i++) {
        long x;
        if (!asr__api_query_int(req, names[i], 0, 1, 10000, &x))
            return false;
        *dst[i] = (int)x;
    }
    return true;
}

void asr__api_recording_transcript(asr_http_req_t *req, void *ud) {
    asr_api_t *api = ud;
    int64_t rec_id;
    if (!path_id(req, &rec_id))
        return;
    const char *f = asr_http_req_query(req, "format");
    int fmt = f ? asr_format_parse(f) : ASR_FMT_TXT;
    if (fmt < 0 || fmt == ASR_FMT_VERBOSE_JSON) {
        asr_http_respond_error(req, 400, "format", "invalid_value",
                               "format must be txt, json, srt or vtt, not '%.40s'", f);
        return;
    }
    asr_subtitle_opts_t subs = {0};
    if (!parse_subs(req, &subs))
        return;
    if (!exists(req, api, rec_id, true))
        return;
    const char *orig = asr_http_req_query(req, "original");
    bool original = orig && (!strcmp(orig, "1") || !strcmp(orig, "true"));
    asr_store_job_t job;
    char *doc = NULL;
    asr_err_t e = asr__api_transcript_doc(api, rec_id, original, &job, &doc);
    if (e != ASR_OK && e != ASR_ERR_NOT_FOUND) {
        asr_store_job_clear(&job);
        store_error(req, api, e);
        return;
    }
    asr_buf_t b;
    asr_buf_init(&b);
    if (e != ASR_OK || asr_format_write_stored(doc, (asr_format_t)fmt, &subs, &b) != ASR_OK) {
        free(doc);
        asr_buf_free(&b);
        asr_store_job_clear(&job);
        asr_http_respond_error(req, 404, "id", "transcript_not_ready",
                               "recording %lld has no finished transcription yet",
                               (long long)rec_id);
        return;
    }
    free(doc);
    char jid[32];
    snprintf(jid, sizeof jid, "%lld", (long long)job.id);
    asr_http_set_header(req, "X-Asrd-Job", jid);
    if (job.model_used)
        asr_http_set_header(req, "X-Asrd-Model", job.model_used);
    asr_store_job_clear(&job);
    asr_http_respond(req, 200, asr_format_content_type((asr_format_t)fmt), b.data ? b.data : "",
                     b.len);
    asr_buf_free(&b);
}

/* ---- GET /api/nodes ---- */

void asr__api_nodes(asr_http_req_t *req, void *ud) {
    asr_api_t *api = ud;
    asr_store_node_t *v = NULL;
    size_t n = 0;
    int64_t now = 0;
    asr_err_t e = asr_store_node_list(api->store, &v, &n);
    if (e == ASR_OK)
        e = asr_store_now_ms(api->store, &now);
    if (e != ASR_OK) {
        asr_store_nodes_free(v, n);
        store_error(req, api, e);
        return;
    }
    asr_jobs_t *jobs = atomic_load(&api->jobs);
    double stale = 3.0 * api->cfg->heartbeat_seconds;
    json_t *data = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_object();
        double age = (double)(now - v[i].heartbeat_at) / 1e3;
        json_object_set_new(o, "id", json_string(v[i].id));
        json_object_set_new(o, "heartbeat_at", json_integer(v[i].heartbeat_at));
        json_object_set_new(o, "age_s", json_real(round(age * 1000) / 1000));
        json_object_set_new(o, "alive", json_boolean(age < stale));
        json_object_set_new(o, "capacity", json_integer(v[i].capacity));
        json_t *info = v[i].info_json ? json_loads(v[i].info_json, 0, NULL) : NULL;
        if (json_is_object(info))
            json_object_update_missing(o, info);
        json_decref(info);
        json_object_set_new(o, "self",
                            json_boolean(jobs && !strcmp(v[i].id, asr_jobs_node_id(jobs))));
        json_array_append_new(data, o);
    }
    asr_store_nodes_free(v, n);
    json_t *root = json_object();
    json_object_set_new(root, "object", json_string("list"));
    json_object_set_new(root, "data", data);
    asr__api_respond_json(req, 200, root);
}
