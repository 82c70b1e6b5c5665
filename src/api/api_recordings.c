/* api: recordings and their durable transcription jobs (docs/API.md, "Recordings and jobs"):
 * upload (probed, kept durable before its row commits), list/get/rename/delete, audio with range
 * requests, transcribe (idempotent while a job is active), jobs (get, list, cancel, retry, SSE
 * progress), transcripts rendered from the stored result, and the nodes sharing the queue.
 *
 * Every handler talks to api->store (one handle, serialised by the store); the work itself is
 * done by the jobs module's workers, on this node or another one. */
#include <ctype.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "api/api_int.h"
#include "audio/audio.h"
#include "jobs/jobs.h"

static void store_error(asr_http_req_t *req, asr_api_t *api, asr_err_t e, const char *param) {
    asr__api_store_error(req, api, e, param);
}

/* A recording id in the path names nothing when it is not a number: 404. */
static bool path_id(asr_http_req_t *req, int64_t *id) { return asr__api_path_id(req, 404, id); }

static json_t *str_or_null(const char *s) { return s ? json_string(s) : json_null(); }

static json_t *ms_or_null(int64_t ms) { return ms > 0 ? json_integer(ms) : json_null(); }

/* Seconds rounded to milliseconds, so JSON shows 2.925 rather than 2.9248129999999999. */
static json_t *secs(double s) { return json_real(round(s * 1000) / 1000); }

json_t *asr__api_job_json(const asr_store_job_t *j) {
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer(j->id));
    json_object_set_new(o, "object", json_string("job"));
    json_object_set_new(o, "recording_id", json_integer(j->recording_id));
    json_object_set_new(o, "state", json_string(asr_store_job_state_name(j->state)));
    json_object_set_new(o, "progress", json_real(round(j->progress * 1000) / 1000));
    json_object_set_new(o, "attempts", json_integer(j->attempts));
    json_object_set_new(o, "max_attempts", json_integer(j->max_attempts));
    json_object_set_new(o, "last_error", str_or_null(j->last_error));
    json_object_set_new(o, "model", str_or_null(j->model));
    json_object_set_new(o, "language", str_or_null(j->language));
    json_t *opts = j->options_json ? json_loads(j->options_json, 0, NULL) : NULL;
    json_object_set_new(o, "options", opts ? opts : json_object());
    json_object_set_new(o, "backend", str_or_null(j->backend));
    json_object_set_new(o, "model_used", str_or_null(j->model_used));
    json_object_set_new(o, "worker",
                        str_or_null(j->state == ASR_STORE_JOB_RUNNING ? j->lease_owner : NULL));
    json_object_set_new(o, "webhook_url", str_or_null(j->webhook_url));
    json_object_set_new(o, "created_at", json_integer(j->created_at));
    json_object_set_new(o, "started_at", ms_or_null(j->started_at));
    json_object_set_new(o, "finished_at", ms_or_null(j->finished_at));
    json_object_set_new(o, "not_before", ms_or_null(j->not_before));
    json_t *t = json_object();
    json_object_set_new(t, "wait_s",
                        j->started_at > 0 ? secs((double)(j->started_at - j->created_at) / 1e3)
                                          : json_null());
    json_object_set_new(t, "run_s",
                        j->finished_at > 0 && j->started_at > 0
                            ? secs((double)(j->finished_at - j->started_at) / 1e3)
                            : json_null());
    json_object_set_new(o, "timings", t);
    return o;
}

static json_t *recording_json(const asr_store_recording_t *r) {
    json_t *o = json_object();
    char url[96];
    json_object_set_new(o, "id", json_integer(r->id));
    json_object_set_new(o, "object", json_string("recording"));
    json_object_set_new(o, "name", json_string(r->name));
    json_object_set_new(o, "status", json_string(r->status ? r->status : "uploaded"));
    json_object_set_new(o, "size_bytes", json_integer(r->size_bytes));
    json_object_set_new(o, "duration_s", r->duration_s >= 0 ? secs(r->duration_s) : json_null());
    json_object_set_new(o, "language", str_or_null(r->language_hint));
    json_object_set_new(o, "created_at", json_integer(r->created_at));
    snprintf(url, sizeof url, "/api/recordings/%lld/audio", (long long)r->id);
    json_object_set_new(o, "audio_url", json_string(url));
    /* retention_keep_transcripts deleted the audio: the url answers 404 audio_deleted */
    json_object_set_new(o, "audio_deleted", json_boolean(!r->path || !r->path[0]));
    snprintf(url, sizeof url, "/api/recordings/%lld/transcript", (long long)r->id);
    json_object_set_new(o, "transcript_url", json_string(url));
    return o;
}

/* The recording's newest job, of any state (state < 0) or of one (JSON null when none). */
static json_t *newest_job(asr_api_t *api, int64_t rec_id, int state) {
    asr_store_job_t *v = NULL;
    size_t n = 0;
    if (asr_store_job_list(api->store, rec_id, state, 0, 1, &v, &n) != ASR_OK || n == 0) {
        asr_store_jobs_free(v, n);
        return json_null();
    }
    json_t *o = asr__api_job_json(&v[0]);
    asr_store_jobs_free(v, n);
    return o;
}

/* A recording's jobs as its JSON shows them: latest_job (the newest, whatever its state; it sets
 * the status) and transcript_job (the newest done one, whose result GET …/transcript serves): a
 * failed re-run leaves the last good transcript readable, and says so. */
static void add_jobs(asr_api_t *api, json_t *o, int64_t rec_id) {
    json_object_set_new(o, "latest_job", newest_job(api, rec_id, -1));
    json_object_set_new(o, "transcript_job", newest_job(api, rec_id, ASR_STORE_JOB_DONE));
}

/* ---- POST /api/recordings ---- */

static void recording_create(asr_http_req_t *req, void *ud) {
    asr_api_t *api = ud;
    const asr_http_upload_t *up = asr_http_upload(req);
    double dur;
    if (!asr__api_probe_upload(req, api, &dur)) /* missing, empty, not audio or too long */
        return;
    const char *name = asr_http_form_value(req, "name");
    if (!name || !*name)
        name = up->filename[0] ? up->filename : "recording";
    if (strlen(name) > 1024) {
        asr_http_respond_error(req, 400, "name", "invalid_value", "name is longer than 1024 bytes");
        return;
    }
    const char *lang = asr_http_form_value(req, "language");
    if (lang && *lang && !asr_lang_code_normalize(lang)) {
        asr_http_respond_error(req, 400, "language", "invalid_value",
                               "language '%.40s' is not supported: use an ISO-639-1 code (zh), an "
                               "English name (chinese) or a regional form (zh-CN)",
                               lang);
        return;
    }
    asr_jobs_crash_point("upload_received", 0);
    char err[256] = "", *stored = NULL;
    if (asr_jobs_recording_keep(api->recordings_dir, up->path, up->filename, &stored, err,
                                sizeof err) != ASR_OK) {
        ASR_LOG(ASR_LOG_ERROR, "msg=recording_keep_failed req=%s err=\"%s\"", asr_http_req_id(req),
                err);
        asr_http_respond_error(req, 503, NULL, "storage_unavailable", "%s", err);
        return;
    }
    asr_jobs_crash_point("upload_stored", 0);
    asr_store_recording_t in = {.name = (char *)name,
                                .path = stored,
                                .size_bytes = up->size,
                                .duration_s = dur,
                                .language_hint = lang && *lang ? (char *)lang : NULL};
    int64_t id = 0;
    asr_err_t e = asr_store_recording_create(api->store, &in, &id);
    if (e != ASR_OK) {
        char *path = asr_jobs_recording_path(api->recordings_dir, stored);
        unlink(path);
        free(path);
        free(stored);
        store_error(req, api, e, NULL);
        return;
    }
    asr_jobs_crash_point("upload_committed", 0);
    free(stored);
    asr_store_recording_t rec;
    if ((e = asr_store_recording_get(api->store, id, &rec)) != ASR_OK) {
        store_error(req, api, e, "id");
        return;
    }
    asr_http_log_field(req, "recording=%lld bytes=%lld", (long long)id, (long long)up->size);
    json_t *o = recording_json(&rec);
    add_jobs(api, o, rec.id); /* none yet: both null, as GET shows them */
    asr_store_recording_clear(&rec);
    asr__api_respond_json(req, 201, o);
}

/* ---- GET /api/recordings ---- */

static void recording_list(asr_http_req_t *req, void *ud) {
    asr_api_t *api = ud;
    long limit, offset;
    if (!asr__api_query_int(req, "limit", 50, 1, 500, &limit) ||
        !asr__api_query_int(req, "offset", 0, 0, 1L << 30, &offset))
        return;
    const char *status = asr_http_req_query(req, "status");
    const char *q = asr_http_req_query(req, "q");
    if (status && (!*status || strlen(status) > 32)) {
        asr_http_respond_error(req, 400, "status", "invalid_value", "status must be 1..32 bytes");
        return;
    }
    json_t *data = json_array();
    int64_t total = 0;
    asr_store_recording_t *v = NULL;
    size_t n = 0;
    asr_err_t e = q && *q ? asr_store_recording_search(api->store, q, status, (int)offset,
                                                       (int)limit, &v, &n, &total)
                          : asr_store_recording_list(api->store, status, (int)offset, (int)limit,
                                                     &v, &n, &total);
    for (size_t i = 0; e == ASR_OK && i < n; i++) {
        json_t *o = recording_json(&v[i]);
        add_jobs(api, o, v[i].id);
        json_array_append_new(data, o);
    }
    asr_store_recordings_free(v, n);
    if (e != ASR_OK) {
        json_decref(data);
        store_error(req, api, e, NULL);
        return;
    }
    json_t *root = json_object();
    json_object_set_new(root, "object", json_string("list"));
    json_object_set_new(root, "data", data);
    json_object_set_new(root, "total", json_integer(total));
    json_object_set_new(root, "limit", json_integer(limit));
    json_object_set_new(root, "offset", json_integer(offset));
    asr__api_respond_json(req, 200, root);
}

/* ---- GET/DELETE /api/recordings/{id}, audio ---- */

static bool get_recording(asr_http_req_t *req, asr_api_t *api, asr_store_recording_t *rec) {
    int64_t id;
    if (!path_id(req, &id))
        return false;
    asr_err_t e = asr_store_recording_get(api->store, id, rec);
    if (e != ASR_OK) {
        store_error(req, api, e, "id");
        return false;
    }
    return true;
}

static void recording_get(asr_http_req_t *req, void *ud) {
    asr_api_t *api = ud;
    asr_store_recording_t rec;
    if (!get_recording(req, api, &rec))
        return;
    json_t *o = recording_json(&rec);
    add_jobs(api, o, rec.id);
    asr_store_recording_clear(&rec);
    asr__api_respond_json(req, 200, o);
}

static void recording_delete(asr_http_req_t *req, void *ud) {
    asr_api_t *api = ud;
    asr_store_recording_t rec;
    if (!get_recording(req, api, &rec))
        return;
    /* cancel its active job first, so a worker stops instead of writing a result */
    for (int st = ASR_STORE_JOB_QUEUED; st <= ASR_STORE_JOB_RUNNING; st++) {
        asr_store_job_t *v = NULL;
        size_t n = 0;
        if (asr_store_job_list(api->store, rec.id, st, 0, 10, &v, &n) == ASR_OK)
            for (size_t i = 0; i < n; i++) {
                asr_store_job_cancel(api->store, v[i].id);
                asr_jobs_cancel_local(atomic_load(&api->jobs), v[i].id);
            }
        asr_store_jobs_free(v, n);
    }
    asr_err_t e = asr_store_recording_delete(api->store, rec.id);
    if (e != ASR_OK) {
        asr_store_recording_clear(&rec);
        store_error(req, api, e, "id");
        return;
    }
    char *path = asr_jobs_recording_path(api->recordings_dir, rec.path);
    unlink(path);
    free(path);
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer(rec.id));
    json_object_set_new(o, "object", json_string("recording"));
    json_object_set_new(o, "deleted", json_true());
    asr_store_recording_clear(&rec);
    asr__api_respond_json(req, 200, o);
}

/* PATCH {"name": "…"}: renames the recording (the only field that may change). */
static void recording_patch(asr_http_req_t *req, void *ud) {
    asr_api_t *api = ud;
    int64_t id;
    if (!path_id(req, &id))
        return;
    size_t len;
    const char *text = asr_http_req_body(req, &len);
    json_error_t je;
    json_t *body = json_loadb(text, len, 0, &je);
    if (!json_is_object(body)) {
        json_decref(body);
        asr_http_respond_error(req, 400, NULL, "invalid_json", "the body must be a JSON object: %s",
                               je.text);
        return;
    }
    json_t *name = json_object_get(body, "name");
    const char *k;
    json_t *v;
    json_object_foreach(body, k, v) {
        if (strcmp(k, "name")) {
            asr_http_respond_error(req, 400, k, "invalid_value",
                                   "only a recording's name can be changed, not '%.40s'", k);
            json_decref(body);
            return;
        }
    }
    if (!json_is_string(name)) {
        json_decref(body);
        asr_http_respond_error(req, 400, "name", "invalid_value", "name must be a string");
        return;
    }
    asr_err_t e = asr_store_recording_rename(api->store, id, json_string_value(name));
    json_decref(body);
    asr_store_recording_t rec;
    if (e == ASR_OK)
        e = asr_store_recording_get(api->store, id, &rec);
    if (e != ASR_OK) {
        store_error(req, api, e, "id");
        return;
    }
    json_t *o = recording_json(&rec);
    add_jobs(api, o, rec.id);
    asr_store_recording_clear(&rec);
    asr__api_respond_json(req, 200, o);
}

static const char *audio_ctype(const char *path) {
    static const char *map[][2] = {
        {"wav", "audio/wav"},  {"mp3", "audio/mpeg"}, {"flac", "audio/flac"}, {"ogg", "audio/ogg"},
        {"opus", "audio/ogg"}, {"oga", "audio/ogg"},  {"m4a", "audio/mp4"},   {"mp4", "audio/mp4"},
        {"aac", "audio/aac"},  {"webm", "audio/webm"}};
    const char *dot = strrchr(path, '.');
    for (size_t i = 0; dot && i < sizeof map / sizeof map[0]; i++)
        if (!strcasecmp(dot + 1, map[i][0]))
            return map[i][1];
    return "application/octet-stream";
}

static void recording_audio(asr_http_req_t *req, void *ud) {
    asr_api_t *api = ud;
    asr_store_recording_t rec;
    if (!get_recording(req, api, &rec))
        return;
    if (!rec.path || !rec.path[0]) { /* retention_keep_transcripts deleted it */
        asr_http_respond_error(req, 404, "id", "audio_deleted",
                               "recording %lld's audio was deleted by retention (its transcripts "
                               "are kept)",
                               (long long)rec.id);
        asr_store_recording_clear(&rec);
        return;
    }
    char *path = asr_jobs_recording_path(api->recordings_dir, rec.path);
    asr_http_respond_file(req, path, audio_ctype(path), "id");
    free(path);
    asr_store_recording_clear(&rec);
}

/* ---- POST /api/recordings/{id}/transcribe ---- */

typedef struct {
    const char *model, *language, *webhook;
    json_t *opts; /* the options kept with the job, validated */
} submit_t;

/* The options go through the service's one validation, as a form's fields and the job's run do:
 * a value out of range is a 400 here, never clamped later. */
static bool parse_submit(asr_http_req_t *req, asr_api_t *api, json_t *body, submit_t *s) {
    static const char *const extra[] = {"webhook_url", NULL};
    asr_svc_request_t rq;
    asr_svc_request_init(api->svc, &rq);
    asr_svc_error_t e;
    asr_err_t rc = asr_svc_options_json(&rq, body, extra, &e);
    if (rc == ASR_OK)
        rc = asr_svc_request_finish(api->svc, &rq, NULL, &e);
    /* the model as the client named it (NULL: the default), which routing matches against the
     * backends' names ("Model names"); one only another backend serves is accepted too */
    const char *given = json_string_value(json_object_get(body, "model"));
    s->model = given && *given ? given : NULL;
    if (rc == ASR_ERR_NOT_FOUND && !strcmp(e.param, "model") && api->router && s->model &&
        asr_route_serves(api->router, s->model))
        rc = ASR_OK;
    asr_svc_request_clear(&rq);
    if (rc != ASR_OK) {
        asr__api_respond_svc_error(req, &e);
        return false;
    }
    const char *k;
    json_t *v;
    json_object_foreach(body, k, v) {
        if (!json_is_null(v) && strcmp(k, "model") && strcmp(k, "language") &&
            strcmp(k, "webhook_url"))
            json_object_set(s->opts, k, v);
    }
    const char *l = json_string_value(json_object_get(body, "language"));
    s->language = l && *l ? l : NULL;
    v = json_object_get(body, "webhook_url");
    if (v && !json_is_null(v)) {
        const char *u = json_string_value(v);
        if (!u || (strncmp(u, "http://", 7) && strncmp(u, "https://", 8))) {
            asr_http_respond_error(req, 400, "webhook_url", "invalid_value",
                                   "webhook_url must be an http:// or https:// URL");
            return false;
        }
        s->webhook = u;
    }
    return true;
}

static void transcribe(asr_http_req_t *req, void *ud) {
    asr_api_t *api = ud;
    int64_t rec_id;
    if (!path_id(req, &rec_id))
        return;
    size_t len;
    const char *text = asr_http_req_body(req, &len);
    json_t *body = NULL;
    if (len > 0) {
        json_error_t je;
        body = json_loadb(text, len, 0, &je);
        if (!body || !json_is_object(body)) {
            json_decref(body);
            asr_http_respond_error(req, 400, NULL, "invalid_json",
                                   "the body must be a JSON object: %s", je.text);
            return;
        }
    } else
        body = json_object();
    submit_t s = {.opts = json_object()};
    if (!parse_submit(req, api, body, &s)) {
        json_decref(s.opts);
        json_decref(body);
        return;
    }
    char *opts = json_dumps(s.opts, JSON_COMPACT | JSON_SORT_KEYS);
    asr_store_job_input_t in = {.recording_id = rec_id,
                                .model = s.model,
                                .language = s.language,
                                .options_json = opts,
                                .webhook_url = s.webhook,
                                .max_attempts = api->cfg->job_max_attempts};
    int64_t id = 0;
    bool created = false;
    asr_err_t e = asr_store_job_submit(api->store, &in, &id, &created);
    free(opts);
    json_decref(s.opts);
    json_decref(body);
    if (e != ASR_OK) {
        store_error(req, api, e, e == ASR_ERR_NOT_FOUND ? "id" : NULL);
        return;
    }
    asr_jobs_crash_point("submitted", 0);
    if (created) {
        asr_store_recording_set_status(api->store, rec_id, "queued");
        asr_jobs_wake(atomic_load(&api->jobs));
    }
    asr_store_job_t job;
    if ((e = asr_store_job_get(api->store, id, &job)) != ASR_OK) {
        store_error(req, api, e, "id");
        return;
    }
    asr_http_log_field(req, "job=%lld created=%d", (long long)id, created);
    json_t *o = asr__api_job_json(&job);
    json_object_set_new(o, "created", json_boolean(created));
    asr_store_job_clear(&job);
    asr__api_respond_json(req, created ? 201 : 200, o);
}

/* ---- route table entries ---- */

void asr__api_recordings_create(asr_http_req_t *req, void *ud) { recording_create(req, ud); }
void asr__api_recordings_list(asr_http_req_t *req, void *ud) { recording_list(req, ud); }
void asr__api_recording_get(asr_http_req_t *req, void *ud) { recording_get(req, ud); }
void asr__api_recording_delete(asr_http_req_t *req, void *ud) { recording_delete(req, ud); }
void asr__api_recording_patch(asr_http_req_t *req, void *ud) { recording_patch(req, ud); }
void asr__api_recording_audio(asr_http_req_t *req, void *ud) { recording_audio(req, ud); }
void asr__api_recording_transcribe(asr_http_req_t *req, void *ud) { transcribe(req, ud); }
