/* api: private declarations shared by the api module's files (api.c, api_common.c,
 * api_audio.c, api_recordings.c, api_jobs.c, api_events.c, api_configs.c). Nothing outside
 * src/api includes this. */
#ifndef ASR_API_INT_H
#define ASR_API_INT_H

#include <jansson.h>
#include <stdatomic.h>
#include <time.h>

#include "api/api.h"
#include "route/route.h"
#include "store/store.h"
#include "svc/svc.h"

struct asr_api {
    const asr_config_t *cfg;
    asr_sched_t *sched;
    asr_store_t *store;   /* borrowed; set before the server starts serving */
    asr_router_t *router; /* borrowed; NULL = the local engine only */
    asr_http_server_t *srv;
    char *upload_dir;
    asr_svc_t *svc;       /* the local-transcription service (models, aliases, validation); owned */
    time_t created;       /* "created" of /v1/models entries: when the models were loaded */
    char *recordings_dir; /* set before the server starts */
    struct asr_jobs *_Atomic jobs; /* this node's workers; NULL until started (or none) */
    char gpu_fallback[16];         /* the gpu_fallback setting ("" when none or not built) */
};

/* Resolves a model id or alias to a scheduler model index; -1 when unknown. */
int asr__api_resolve_model(const asr_api_t *api, const char *name);

/* ---- request helpers shared by the route files (api_common.c) ---- */
/* Answers `root` (takes ownership) as indented JSON with `status`. */
void asr__api_respond_json(asr_http_req_t *req, int status, json_t *root);
/* The api's one JSON writing (answers and event streams alike): UTF-8 as it is (never
 * JSON_ENSURE_ASCII) and reals with ASR__API_REAL_DIGITS significant digits, so a value rounded
 * for display (9.079 s) is written as such on every route, not as its binary expansion
 * (9.0790000000000006). json_dumps with `flags`; free() the result. */
#define ASR__API_REAL_DIGITS 15
char *asr__api_json_dumps(const json_t *root, size_t flags);
/* Checks the upload of an UPLOAD route and decodes its first samples. Answers and returns false
 * for a missing or empty file (400), one that is not audio (400 invalid_audio), out of memory
 * (503) or audio longer than max_audio_seconds (413); *dur = its duration in seconds. */
bool asr__api_probe_upload(asr_http_req_t *req, const asr_api_t *api, double *dur);
/* The {id} of a '*' route, a positive integer; otherwise answers `bad_status` (404 not_found:
 * the path names nothing; 400 invalid_value where documented) naming "id" and returns false. */
bool asr__api_path_id(asr_http_req_t *req, int bad_status, int64_t *id);
/* Reads the integer query argument `name` into *out (`def` when absent); when it is not an
 * integer within [lo, hi], answers 400 naming it and returns false. */
bool asr__api_query_int(asr_http_req_t *req, const char *name, long def, long lo, long hi,
                        long *out);
/* Answers a failed store call: NOT_FOUND 404 naming `param` (may be NULL); INVALID 400 naming
 * the field the store's "field: reason" message starts with, or 409 invalid_state when that
 * field is "state"; anything else 503 (the database). */
void asr__api_store_error(asr_http_req_t *req, const asr_api_t *api, asr_err_t e,
                          const char *param);

/* ---- the device (api_device.c) and diagnose (api_diagnose.c) ---- */
/* Bytes as "21.2 GiB" (>= 0.1 GiB) or "11 MiB". */
void asr__api_fmt_bytes(uint64_t b, char *out, size_t n);
/* "GPU 0" for "cuda:0", "host device" for "host". */
void asr__api_device_label(const char *device, char *out, size_t n);
/* "ok", "serving_on_cpu" or "resetting" (the context is lost). */
const char *asr__api_device_state(const asr_sched_device_status_t *d);
/* The device object of /api/ps (docs/API.md) with its one-line "summary" (new reference).
 * gpu_fallback: the policy ("cpu", or NULL/"none"). */
json_t *asr__api_device_json(const asr_sched_device_status_t *d, const char *gpu_fallback);
/* ---- server-sent-event streams (api_sse.c) ----
 * A stream's struct starts with an asr_api_sse_t, is calloc'd, and is freed by the stream when it
 * closes (`release` first frees what the struct owns besides). `poll` queues the events of what
 * changed since the last poll with asr__api_sse_event, and sets `ended` when nothing more will. */
typedef struct asr_api_sse asr_api_sse_t;
struct asr_api_sse {
    asr_api_t *api;
    asr_http_req_t *req;
    asr_buf_t out; /* queued bytes, sent from `off` */
    size_t off;
    bool ended; /* the stream ends once `out` is sent */
    void (*poll)(asr_api_sse_t *s);
    void (*release)(asr_api_sse_t *s); /* may be NULL */
};
void asr__api_sse_init(asr_api_sse_t *s, asr_api_t *api, asr_http_req_t *req,
                       void (*poll)(asr_api_sse_t *), void (*release)(asr_api_sse_t *));
/* Queues `event: EVENT\ndata: JSON\n\n`. */
void asr__api_sse_event(asr_api_sse_t *s, const char *event, json_t *data);
/* Answers the request with the stream (200 text/event-stream). */
void asr__api_sse_respond(asr_api_sse_t *s);

/* Appends the asrd_gpu_* metrics of a present device in Prometheus text format. */
void asr__api_device_metrics(const asr_sched_device_status_t *d, asr_buf_t *b);
/* The gpu_fallback policy in force ("cpu" or NULL). */
#define ASR__API_GPU_FALLBACK(api) ((api)->gpu_fallback[0] ? (api)->gpu_fallback : NULL)
/* The body of GET /api/ps (new reference). */
json_t *asr__api_ps_json(asr_api_t *api);
/* The admin role's check of /api/asr-configs and /api/diagnose: true, or answers 403. */
bool asr__api_admin_ok(asr_http_req_t *req, const asr_api_t *api);
/* GET /api/diagnose (admin). */
void asr__api_diagnose(asr_http_req_t *req, void *user_data);

/* ---- routes ---- */
/* Fault injection (api_debug.c; 404 unless debug_faults): POST /debug/alloc-fail,
 * /debug/gpu-memory (device memory readings) and /debug/gpu-fault (device failures). */
void asr__api_debug_alloc_fail(asr_http_req_t *req, void *user_data);
void asr__api_debug_gpu_memory(asr_http_req_t *req, void *user_data);
void asr__api_debug_gpu_fault(asr_http_req_t *req, void *user_data);
/* Answers a failure of the local-transcription service in OpenAI's shape: the status, code and
 * retryability of svc's one mapping (Retry-After on 503s). */
void asr__api_respond_svc_error(asr_http_req_t *req, const asr_svc_error_t *e);
/* POST /v1/audio/transcriptions and /v1/audio/translations. */
void asr__api_transcriptions(asr_http_req_t *req, void *user_data);
void asr__api_translations(asr_http_req_t *req, void *user_data);
/* Recordings and jobs (api_recordings.c, api_jobs.c). */
void asr__api_recordings_create(asr_http_req_t *req, void *user_data);
void asr__api_recordings_list(asr_http_req_t *req, void *user_data);
void asr__api_recording_get(asr_http_req_t *req, void *user_data);
void asr__api_recording_delete(asr_http_req_t *req, void *user_data);
void asr__api_recording_audio(asr_http_req_t *req, void *user_data);
void asr__api_recording_transcribe(asr_http_req_t *req, void *user_data);
void asr__api_recording_transcript(asr_http_req_t *req, void *user_data);
/* PATCH /api/recordings/{id} {"name"}: rename (api_recordings.c). */
void asr__api_recording_patch(asr_http_req_t *req, void *user_data);
/* Transcript corrections and batch export (api_edits.c): GET/PATCH/DELETE …/{id}/edits, POST
 * /api/recordings/export. */
void asr__api_recording_edits(asr_http_req_t *req, void *user_data);
void asr__api_recording_edit_save(asr_http_req_t *req, void *user_data);
void asr__api_recording_edit_delete(asr_http_req_t *req, void *user_data);
void asr__api_recordings_export(asr_http_req_t *req, void *user_data);
/* Recording rec_id's transcript as served: its newest done job (*job, cleared by the caller
 * whatever the result) and that job's stored result with the team's edits applied, or as stored
 * when `original` (*doc, malloc'd, owned by the caller). ASR_ERR_NOT_FOUND when it has no
 * finished transcript; other errors from the store. */
asr_err_t asr__api_transcript_doc(asr_api_t *api, int64_t rec_id, bool original,
                                  asr_store_job_t *job, char **doc);
void asr__api_jobs_list(asr_http_req_t *req, void *user_data);
void asr__api_job_get(asr_http_req_t *req, void *user_data);
void asr__api_job_cancel(asr_http_req_t *req, void *user_data);
void asr__api_job_retry(asr_http_req_t *req, void *user_data);
void asr__api_job_events(asr_http_req_t *req, void *user_data);
void asr__api_nodes(asr_http_req_t *req, void *user_data);
/* GET /api/events (every job's changes) and POST /api/events/token (api_events.c). */
void asr__api_events(asr_http_req_t *req, void *user_data);
void asr__api_events_token(asr_http_req_t *req, void *user_data);
/* A job as the API shows it (new reference). */
json_t *asr__api_job_json(const asr_store_job_t *j);
/* The router's local runner (asr_route_local_cb; user_data = the api): a stored file through the
 * scheduler, the answer in out (body, status, model). For jobs and Test connection. */
asr_err_t asr__api_local_file(void *user_data, const asr_route_opts_t *opts, const char *model_name,
                              asr_route_result_t *out);
/* /api/asr-configs… (api_configs.c): the admin API over the ASR backends. */
void asr__api_configs_list(asr_http_req_t *req, void *user_data);
void asr__api_configs_create(asr_http_req_t *req, void *user_data);
void asr__api_config_get(asr_http_req_t *req, void *user_data);
void asr__api_config_update(asr_http_req_t *req, void *user_data);
void asr__api_config_delete(asr_http_req_t *req, void *user_data);
void asr__api_config_default(asr_http_req_t *req, void *user_data);
void asr__api_config_test(asr_http_req_t *req, void *user_data);
void asr__api_config_health(asr_http_req_t *req, void *user_data);

#endif
