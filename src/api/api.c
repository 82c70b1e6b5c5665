/* api: route table, model ids and aliases, and the small routes: /v1/models, /v1/config,
 * /health, /ready, /metrics, /api/ps. The audio routes live in api_audio.c; the device's objects
 * and metrics in api_device.c, GET /api/diagnose in api_diagnose.c. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <string.h>
#include <unistd.h>

#include "api/api_int.h"
#include "jobs/jobs.h"
#include "web/web.h"

static void models_list(asr_http_req_t *req, void *ud);
static void model_get(asr_http_req_t *req, void *ud);
static void config_get(asr_http_req_t *req, void *ud);
static void health(asr_http_req_t *req, void *ud);
static void ready(asr_http_req_t *req, void *ud);
static void metrics(asr_http_req_t *req, void *ud);
static void ps(asr_http_req_t *req, void *ud);

static const asr_http_route_t g_routes[] = {
    {"POST", "/v1/audio/transcriptions", ASR_HTTP_ROUTE_UPLOAD, NULL, asr__api_transcriptions},
    {"POST", "/v1/audio/translations", ASR_HTTP_ROUTE_UPLOAD, NULL, asr__api_translations},
    {"GET", "/v1/models", 0, NULL, models_list},
    {"GET", "/v1/models/", ASR_HTTP_ROUTE_PREFIX, "/v1/models/{id}", model_get},
    {"GET", "/v1/config", 0, NULL, config_get},
    {"GET", "/health", ASR_HTTP_ROUTE_PUBLIC, NULL, health},
    {"GET", "/ready", ASR_HTTP_ROUTE_PUBLIC, NULL, ready},
    {"GET", "/metrics", 0, NULL, metrics},
    {"GET", "/api/ps", 0, NULL, ps},
    {"GET", "/api/diagnose", 0, NULL, asr__api_diagnose},
    /* fault injection, with debug_faults only (api_debug.c) */
    {"POST", "/debug/alloc-fail", ASR_HTTP_ROUTE_UPLOAD, NULL, asr__api_debug_alloc_fail},
    {"POST", "/debug/gpu-memory", ASR_HTTP_ROUTE_UPLOAD, NULL, asr__api_debug_gpu_memory},
    {"POST", "/debug/gpu-fault", ASR_HTTP_ROUTE_UPLOAD, NULL, asr__api_debug_gpu_fault},
    /* recordings and jobs (api_recordings.c, api_jobs.c) */
    {"POST", "/api/recordings", ASR_HTTP_ROUTE_UPLOAD | ASR_HTTP_ROUTE_LARGE, NULL,
     asr__api_recordings_create},
    {"GET", "/api/recordings", 0, NULL, asr__api_recordings_list},
    {"POST", "/api/recordings/export", ASR_HTTP_ROUTE_BODY, NULL, asr__api_recordings_export},
    {"GET", "/api/recordings/*", 0, NULL, asr__api_recording_get},
    {"PATCH", "/api/recordings/*", ASR_HTTP_ROUTE_BODY, NULL, asr__api_recording_patch},
    {"DELETE", "/api/recordings/*", 0, NULL, asr__api_recording_delete},
    {"GET", "/api/recordings/*/edits", 0, NULL, asr__api_recording_edits},
    {"PATCH", "/api/recordings/*/edits", ASR_HTTP_ROUTE_BODY, NULL, asr__api_recording_edit_save},
    {"DELETE", "/api/recordings/*/edits", 0, NULL, asr__api_recording_edit_delete},
    {"GET", "/api/recordings/*/audio", 0, NULL, asr__api_recording_audio},
    {"GET", "/api/recordings/*/transcript", 0, NULL, asr__api_recording_transcript},
    {"POST", "/api/recordings/*/transcribe", ASR_HTTP_ROUTE_BODY, NULL,
     asr__api_recording_transcribe},
    {"GET", "/api/jobs", 0, NULL, asr__api_jobs_list},
    {"GET", "/api/jobs/*", 0, NULL, asr__api_job_get},
    {"POST", "/api/jobs/*/cancel", ASR_HTTP_ROUTE_BODY, NULL, asr__api_job_cancel},
    {"POST", "/api/jobs/*/retry", ASR_HTTP_ROUTE_BODY, NULL, asr__api_job_retry},
    {"GET", "/api/jobs/*/events", ASR_HTTP_ROUTE_TOKEN, NULL, asr__api_job_events},
    /* every job's events, and the tokens that open event streams (api_events.c) */
    {"GET", "/api/events", ASR_HTTP_ROUTE_TOKEN, NULL, asr__api_events},
    {"POST", "/api/events/token", ASR_HTTP_ROUTE_BODY, NULL, asr__api_events_token},
    {"GET", "/api/nodes", 0, NULL, asr__api_nodes},
    /* ASR backends (api_configs.c): the admin role */
    {"GET", "/api/asr-configs", 0, NULL, asr__api_configs_list},
    {"POST", "/api/asr-configs", ASR_HTTP_ROUTE_BODY, NULL, asr__api_configs_create},
    {"GET", "/api/asr-configs/*", 0, NULL, asr__api_config_get},
    {"PUT", "/api/asr-configs/*", ASR_HTTP_ROUTE_BODY, NULL, asr__api_config_update},
    {"PATCH", "/api/asr-configs/*", ASR_HTTP_ROUTE_BODY, NULL, asr__api_config_update},
    {"DELETE", "/api/asr-configs/*", 0, NULL, asr__api_config_delete},
    {"POST", "/api/asr-configs/*/default", ASR_HTTP_ROUTE_BODY, NULL, asr__api_config_default},
    {"POST", "/api/asr-configs/*/test", ASR_HTTP_ROUTE_BODY, NULL, asr__api_config_test},
    {"GET", "/api/asr-configs/*/health", 0, NULL, asr__api_config_health},
    /* the web UI (src/web): public, so the page can load before it asks for an API key */
    {"GET", "/", ASR_HTTP_ROUTE_PUBLIC, NULL, asr_web_index},
    {"GET", "/ui/", ASR_HTTP_ROUTE_PUBLIC | ASR_HTTP_ROUTE_PREFIX, "/ui/{file}", asr_web_file},
    {"GET", "/ui/i18n/", ASR_HTTP_ROUTE_PUBLIC | ASR_HTTP_ROUTE_PREFIX, "/ui/i18n/{file}",
     asr_web_i18n},
};

const asr_http_route_t *asr_api_routes(int *n) {
    *n = (int)(sizeof g_routes / sizeof g_routes[0]);
    return g_routes;
}

asr_err_t asr_api_create(const asr_config_t *cfg, asr_sched_t *sched, const char *upload_dir,
                         asr_api_t **out, char *errbuf, size_t errbuf_len) {
    *out = NULL;
    asr_api_t *api = asr_xcalloc(1, sizeof *api);
    api->cfg = cfg;
    api->sched = sched;
    api->upload_dir = asr_xstrdup(upload_dir);
    api->created = time(NULL);
    /* the GPU fallback policy, read by name: the setting belongs to the GPU memory contract */
    asr_buf_t cb;
    asr_buf_init(&cb);
    asr_config_write_json(cfg, &cb);
    json_t *cj = json_loadb(cb.data ? cb.data : "", cb.len, 0, NULL);
    const char *gf = json_string_value(json_object_get(cj, "gpu_fallback"));
    if (gf && strcmp(gf, "none"))
        snprintf(api->gpu_fallback, sizeof api->gpu_fallback, "%s", gf);
    json_decref(cj);
    asr_buf_free(&cb);
    asr_svc_params_t sp = {.sched = sched,
                           .beam_size = cfg->beam_size,
                           .vad = cfg->vad,
                           .max_audio_seconds = cfg->max_audio_seconds,
                           .model_aliases = cfg->model_aliases,
                           .chinese_script = asr_svc_zh_script_parse(cfg->chinese_script)};
    asr_err_t rc = asr_svc_create(&sp, &api->svc, errbuf, errbuf_len);
    if (rc == ASR_OK)
        *out = api;
    else
        asr_api_destroy(api);
    return rc;
}

void asr_api_destroy(asr_api_t *api) {
    if (!api)
        return;
    asr_svc_destroy(api->svc);
    free(api->upload_dir);
    free(api->recordings_dir);
    free(api);
}

void asr_api_set_server(asr_api_t *api, asr_http_server_t *srv) { api->srv = srv; }
asr_svc_t *asr_api_svc(const asr_api_t *api) { return api->svc; }
void asr_api_set_store(asr_api_t *api, asr_store_t *store) { api->store = store; }
void asr_api_set_recordings_dir(asr_api_t *api, const char *dir) {
    free(api->recordings_dir);
    api->recordings_dir = asr_xstrdup(dir);
}
void asr_api_set_jobs(asr_api_t *api, struct asr_jobs *jobs) { atomic_store(&api->jobs, jobs); }
/* The router's view of the local engine's models (asr_route_local_models_cb). */
static const char *local_models(void *ud, const char *model) {
    const asr_api_t *api = ud;
    int m = model && *model ? asr__api_resolve_model(api, model) : 0;
    return m >= 0 ? asr_sched_model_id(api->sched, m) : NULL;
}

void asr_api_set_router(asr_api_t *api, asr_router_t *router) {
    api->router = router;
    if (router) {
        asr_route_set_local(router, asr__api_local_file, api);
        asr_route_set_local_models(router, local_models, api);
    }
}

int asr__api_resolve_model(const asr_api_t *api, const char *name) {
    return name && *name ? asr_svc_resolve_model(api->svc, name) : -1;
}

/* Residency and memory of model i (/v1/models entries, /api/ps). */
static void model_status_fields(const asr_api_t *api, int i, json_t *o) {
    asr_sched_model_status_t st;
    asr_sched_model_status(api->sched, i, &st);
    json_object_set_new(o, "state", json_string(st.state));
    json_object_set_new(o, "weights_bytes", json_integer((json_int_t)st.weights_bytes));
    json_object_set_new(o, "slot_bytes", json_integer((json_int_t)st.slot_bytes));
    json_object_set_new(o, "slots_bytes", json_integer((json_int_t)st.slots_bytes));
    json_object_set_new(o, "slots_in_use", json_integer(st.slots_in_use));
    json_object_set_new(o, "slots_cached", json_integer(st.slots_cached));
    json_object_set_new(o, "max_parallel", json_integer(api->cfg->max_parallel));
    json_object_set_new(o, "queued", json_integer(st.queued));
    json_object_set_new(o, "device", json_string(st.device ? st.device : "cpu"));
    if (st.cpu_state) { /* the CPU twin of a device model (gpu_fallback cpu) */
        json_t *tw = json_object();
        json_object_set_new(tw, "state", json_string(st.cpu_state));
        json_object_set_new(tw, "weights_bytes", json_integer((json_int_t)st.cpu_weights_bytes));
        json_object_set_new(tw, "slots_in_use", json_integer(st.cpu_slots_in_use));
        json_object_set_new(o, "cpu_twin", tw);
    } else {
        json_object_set_new(o, "cpu_twin", json_null());
    }
    json_object_set_new(o, "expires_in_s",
                        st.expires_in_s >= 0 ? json_real(st.expires_in_s) : json_null());
    json_object_set_new(o, "pinned",
                        json_boolean(!strcmp(st.state, "loaded") && st.expires_in_s < 0));
    if (st.expires_in_s >= 0) {
        time_t at = time(NULL) + (time_t)st.expires_in_s;
        struct tm tm;
        char buf[32];
        gmtime_r(&at, &tm);
        strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
        json_object_set_new(o, "expires_at", json_string(buf));
    }
}

/* A model entry; `owner` is "asrd" for the local engine's, a backend's name for the models the
 * ASR backends serve by name (target < 0: no local fields). */
static json_t *model_obj(const asr_api_t *api, const char *id, int target, bool alias,
                         const char *owner) {
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(id));
    json_object_set_new(o, "object", json_string("model"));
    json_object_set_new(o, "created", json_integer((json_int_t)api->created));
    json_object_set_new(o, "owned_by", json_string(owner));
    if (target < 0)
        return o;
    if (alias)
        json_object_set_new(o, "root", json_string(asr_sched_model_id(api->sched, target)));
    else {
        const asr_model_info_t *info = asr_sched_model_info(api->sched, target);
        json_object_set_new(o, "multilingual", json_boolean(info->multilingual));
        json_object_set_new(o, "default", json_boolean(target == 0));
        model_status_fields(api, target, o);
    }
    return o;
}

typedef struct {
    const asr_api_t *api;
    json_t *data;     /* models_list: entries appended */
    const char *want; /* model_get: the id asked for */
    json_t *found;    /* model_get: its entry */
} backend_models_t;

/* A model an ASR backend serves by name (asr_route_each_model): listed unless the local engine
 * lists it already. */
static void backend_model(void *ud, const char *model, const char *backend) {
    backend_models_t *bm = ud;
    if (asr__api_resolve_model(bm->api, model) >= 0)
        return;
    if (bm->data)
        json_array_append_new(bm->data, model_obj(bm->api, model, -1, false, backend));
    else if (!bm->found && !strcmp(model, bm->want))
        bm->found = model_obj(bm->api, model, -1, false, backend);
}

static void models_list(asr_http_req_t *req, void *ud) {
    asr_api_t *api = ud;
    json_t *data = json_array();
    for (int i = 0; i < asr_sched_n_models(api->sched); i++)
        json_array_append_new(data,
                              model_obj(api, asr_sched_model_id(api->sched, i), i, false, "asrd"));
    for (int k = 0; k < asr_svc_n_aliases(api->svc); k++) {
        int target;
        const char *alias = asr_svc_alias(api->svc, k, &target);
        json_array_append_new(data, model_obj(api, alias, target, true, "asrd"));
    }
    backend_models_t bm = {.api = api, .data = data};
    if (api->router)
        asr_route_each_model(api->router, backend_model, &bm);
    json_t *root = json_object();
    json_object_set_new(root, "object", json_string("list"));
    json_object_set_new(root, "data", data);
    asr__api_respond_json(req, 200, root);
}

static void model_get(asr_http_req_t *req, void *ud) {
    asr_api_t *api = ud;
    const char *id = asr_http_req_path_arg(req);
    int m = asr_sched_model_find(api->sched, id);
    if (m >= 0) {
        asr__api_respond_json(req, 200, model_obj(api, id, m, false, "asrd"));
        return;
    }
    m = asr__api_resolve_model(api, id);
    if (m >= 0) {
        asr__api_respond_json(req, 200, model_obj(api, id, m, true, "asrd"));
        return;
    }
    backend_models_t bm = {.api = api, .want = id};
    if (api->router)
        asr_route_each_model(api->router, backend_model, &bm);
    if (bm.found) {
        asr__api_respond_json(req, 200, bm.found);
        return;
    }
    asr_http_respond_error(req, 404, "model", "model_not_found",
                           "The model '%.100s' does not exist or is not loaded.", id);
}

static void config_get(asr_http_req_t *req, void *ud) {
    asr_api_t *api = ud;
    asr_buf_t b;
    asr_buf_init(&b);
    asr_config_write_json(api->cfg, &b);
    asr_http_respond(req, 200, "application/json", b.data, b.len);
    asr_buf_free(&b);
}

static void health(asr_http_req_t *req, void *ud) {
    asr_api_t *api = ud;
    asr_sched_stats_t st;
    asr_sched_stats(api->sched, &st);
    if (st.stalled_s > api->cfg->stall_timeout) {
        asr_http_respond_error(req, 503, NULL, "worker_stalled",
                               "a worker has shown no progress for %.0f s (limit %d s)",
                               st.stalled_s, api->cfg->stall_timeout);
        return;
    }
    json_t *o = json_object();
    json_object_set_new(o, "status", json_string("ok"));
    json_object_set_new(o, "workers", json_integer(st.max_parallel));
    json_object_set_new(o, "busy", json_integer(st.n_busy));
    json_object_set_new(o, "queued", json_integer(st.queue_depth));
    asr_sched_device_status_t ds;
    asr_sched_device_status(api->sched, &ds);
    if (ds.present) { /* a lost device is not a dead server: it resets and /ready says so */
        json_t *g = json_object();
        json_object_set_new(g, "device", json_string(ds.device));
        json_object_set_new(g, "state", json_string(asr__api_device_state(&ds)));
        json_object_set_new(g, "lost", json_boolean(ds.lost));
        json_object_set_new(g, "serving_on_cpu", json_boolean(ds.serving_on_cpu));
        json_object_set_new(g, "last_error",
                            ds.last_error[0] ? json_string(ds.last_error) : json_null());
        json_object_set_new(o, "gpu", g);
    }
    asr__api_respond_json(req, 200, o);
}

/* True when a file can be created in the upload directory. */
static bool dir_writable(const char *dir, char *why, size_t why_len) {
    char path[4096];
    snprintf(path, sizeof path, "%s/.ready-XXXXXX", dir);
    int fd = mkstemp(path);
    if (fd < 0) {
        snprintf(why, why_len, "data directory %s is not writable: %s", dir, strerror(errno));
        return false;
    }
    bool ok = write(fd, "ok", 2) == 2;
    if (!ok)
        snprintf(why, why_len, "cannot write to data directory %s: %s", dir, strerror(errno));
    close(fd);
    unlink(path);
    return ok;
}

static void ready(asr_http_req_t *req, void *ud) {
    asr_api_t *api = ud;
    char why[512];
    if (asr_http_draining(api->srv)) {
        asr_http_respond_error(req, 503, NULL, "shutting_down", "the server is shutting down");
        return;
    }
    if (!dir_writable(api->upload_dir, why, sizeof why)) {
        asr_http_respond_error(req, 503, NULL, "not_ready", "%s", why);
        return;
    }
    asr_sched_device_status_t ds;
    asr_sched_device_status(api->sched, &ds);
    if (ds.present && ds.lost) {
        asr_http_set_header(req, "Retry-After", "5");
        asr_http_respond_error(req, 503, NULL, "gpu_resetting",
                               "the context of %s was lost (%s); asrd is resetting it and "
                               "reloading its models",
                               ds.device, ds.last_error[0] ? ds.last_error : "device error");
        return;
    }
    json_t *o = json_object();
    json_t *models = json_array();
    for (int i = 0; i < asr_sched_n_models(api->sched); i++)
        json_array_append_new(models, json_string(asr_sched_model_id(api->sched, i)));
    json_object_set_new(o, "status", json_string("ready"));
    json_object_set_new(o, "models", models);
    asr__api_respond_json(req, 200, o);
}

static void metrics(asr_http_req_t *req, void *ud) {
    asr_api_t *api = ud;
    asr_sched_stats_t st;
    asr_sched_stats(api->sched, &st);
    asr_buf_t b;
    asr_buf_init(&b);
    asr_http_metrics_write(asr_http_req_server(req), &b);
    asr_buf_printf(&b,
                   "# HELP asrd_queue_depth Transcriptions waiting for a worker.\n"
                   "# TYPE asrd_queue_depth gauge\n"
                   "asrd_queue_depth %d\n"
                   "# HELP asrd_queue_capacity Most transcriptions that may wait.\n"
                   "# TYPE asrd_queue_capacity gauge\n"
                   "asrd_queue_capacity %d\n"
                   "# HELP asrd_workers Transcription workers by state.\n"
                   "# TYPE asrd_workers gauge\n"
                   "asrd_workers{state=\"busy\"} %d\n"
                   "asrd_workers{state=\"idle\"} %d\n"
                   "# HELP asrd_worker_stalled_seconds Longest time a busy worker has shown no "
                   "progress.\n"
                   "# TYPE asrd_worker_stalled_seconds gauge\n"
                   "asrd_worker_stalled_seconds %.3f\n"
                   "# HELP asrd_jobs_total Transcription jobs by outcome at the scheduler.\n"
                   "# TYPE asrd_jobs_total counter\n"
                   "asrd_jobs_total{outcome=\"run\"} %llu\n"
                   "asrd_jobs_total{outcome=\"rejected\"} %llu\n"
                   "# HELP asrd_model_weight_bytes Bytes of weights of each loaded model.\n"
                   "# TYPE asrd_model_weight_bytes gauge\n",
                   st.queue_depth, st.max_queue, st.n_busy, st.max_parallel - st.n_busy,
                   st.stalled_s, (unsigned long long)st.n_done, (unsigned long long)st.n_rejected);
    for (int i = 0; i < asr_sched_n_models(api->sched); i++) {
        asr_sched_model_status_t ms;
        asr_sched_model_status(api->sched, i, &ms);
        if (strcmp(ms.state, "unloaded"))
            asr_buf_printf(&b, "asrd_model_weight_bytes{model=\"%s\"} %llu\n", ms.id,
                           (unsigned long long)ms.weights_bytes);
    }
    asr_buf_printf(&b,
                   "# HELP asrd_memory_budget_bytes Host memory for weights and slots.\n"
                   "# TYPE asrd_memory_budget_bytes gauge\n"
                   "asrd_memory_budget_bytes %llu\n"
                   "# HELP asrd_memory_used_bytes Host memory reserved by weights and slots.\n"
                   "# TYPE asrd_memory_used_bytes gauge\n"
                   "asrd_memory_used_bytes %llu\n"
                   "# HELP asrd_sched_events_total Residency and memory events.\n"
                   "# TYPE asrd_sched_events_total counter\n"
                   "asrd_sched_events_total{event=\"load\"} %llu\n"
                   "asrd_sched_events_total{event=\"evict\"} %llu\n"
                   "asrd_sched_events_total{event=\"fallback\"} %llu\n"
                   "asrd_sched_events_total{event=\"oom_retry\"} %llu\n",
                   (unsigned long long)st.budget_bytes, (unsigned long long)st.used_bytes,
                   (unsigned long long)st.n_loads, (unsigned long long)st.n_evictions,
                   (unsigned long long)st.n_fallbacks, (unsigned long long)st.n_oom_retries);
    asr_sched_device_status_t ds;
    asr_sched_device_status(api->sched, &ds);
    asr__api_device_metrics(&ds, &b);
    if (api->router)
        asr_route_metrics_write(api->router, &b);
    asr_http_respond(req, 200, "text/plain; version=0.0.4; charset=utf-8", b.data, b.len);
    asr_buf_free(&b);
}

/* GET /api/ps: loaded models, their memory, slots and expiry, the host budget and the device. */
json_t *asr__api_ps_json(asr_api_t *api) {
    json_t *models = json_array();
    for (int i = 0; i < asr_sched_n_models(api->sched); i++) {
        json_t *o = json_object();
        json_object_set_new(o, "id", json_string(asr_sched_model_id(api->sched, i)));
        model_status_fields(api, i, o);
        json_array_append_new(models, o);
    }
    asr_sched_stats_t st;
    asr_sched_stats(api->sched, &st);
    json_t *mem = json_object();
    json_object_set_new(mem, "device", json_string("cpu"));
    json_object_set_new(mem, "budget_bytes", json_integer((json_int_t)st.budget_bytes));
    json_object_set_new(mem, "used_bytes", json_integer((json_int_t)st.used_bytes));
    json_object_set_new(mem, "free_bytes",
                        json_integer(st.budget_bytes > st.used_bytes
                                         ? (json_int_t)(st.budget_bytes - st.used_bytes)
                                         : 0));
    json_object_set_new(mem, "overhead_bytes", json_integer((json_int_t)ASR_PLAN_SERVER_OVERHEAD));
    json_object_set_new(mem, "limit",
                        json_string(api->cfg->memory_limit ? "configured" : "measured"));
    json_t *q = json_object();
    json_object_set_new(q, "running", json_integer(st.n_busy));
    json_object_set_new(q, "max_parallel", json_integer(st.max_parallel));
    json_object_set_new(q, "waiting", json_integer(st.queue_depth));
    json_object_set_new(q, "max_queue", json_integer(st.max_queue));
    json_t *ev = json_object();
    json_object_set_new(ev, "loads", json_integer((json_int_t)st.n_loads));
    json_object_set_new(ev, "evictions", json_integer((json_int_t)st.n_evictions));
    json_object_set_new(ev, "fallbacks", json_integer((json_int_t)st.n_fallbacks));
    json_object_set_new(ev, "oom_retries", json_integer((json_int_t)st.n_oom_retries));
    json_object_set_new(ev, "done", json_integer((json_int_t)st.n_done));
    json_object_set_new(ev, "rejected", json_integer((json_int_t)st.n_rejected));
    json_t *root = json_object();
    json_object_set_new(root, "models", models);
    json_object_set_new(root, "memory", mem);
    json_object_set_new(root, "queue", q);
    json_object_set_new(root, "events", ev);
    if (api->router) { /* the ASR backends: breakers, last errors, recent failovers */
        json_t *rs = asr_route_status_json(api->router);
        json_object_update(root, rs);
        json_decref(rs);
    }
    json_t *devices = json_array();
    asr_sched_device_status_t ds;
    asr_sched_device_status(api->sched, &ds);
    if (ds.present)
        json_array_append_new(devices, asr__api_device_json(&ds, ASR__API_GPU_FALLBACK(api)));
    json_object_set_new(root, "devices", devices);
    /* retention (the jobs keeper applies it): settings and what the last run did */
    asr_jobs_retention_t rt = {.days = api->cfg->retention_days,
                               .keep_transcripts = api->cfg->retention_keep_transcripts};
    if (api->jobs)
        asr_jobs_retention_status(api->jobs, &rt);
    json_t *ret = json_object();
    json_object_set_new(ret, "days", json_integer(rt.days));
    json_object_set_new(ret, "keep_transcripts", json_boolean(rt.keep_transcripts));
    json_object_set_new(ret, "last_run_at",
                        rt.last_run_at ? json_integer((json_int_t)rt.last_run_at) : json_null());
    json_object_set_new(ret, "last_deleted", json_integer(rt.last_deleted));
    json_object_set_new(ret, "deleted_total", json_integer((json_int_t)rt.total_deleted));
    json_object_set_new(ret, "bytes_freed_total", json_integer((json_int_t)rt.total_bytes));
    json_object_set_new(root, "retention", ret);
    return root;
}

static void ps(asr_http_req_t *req, void *ud) {
    asr__api_respond_json(req, 200, asr__api_ps_json(ud));
}
