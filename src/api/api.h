/* api: the OpenAI-compatible routes (transcriptions, translations, models) and the operational
 * ones (config, health, ready, metrics), served by the http module and run by the scheduler.
 *
 * Thread-safety: after create, handlers run concurrently on connection threads; the api object
 * is read-only then, except through the thread-safe http and sched interfaces. */
#ifndef ASR_API_H
#define ASR_API_H

#include <jansson.h>

#include "config/config.h"
#include "http/http.h"
#include "sched/sched.h"

typedef struct asr_api asr_api_t;

/* Creates the API over loaded models. `cfg` and `sched` are borrowed until destroy. Fails
 * (ASR_ERR_INVALID, reason in errbuf) when a model alias names a model that is not loaded. */
asr_err_t asr_api_create(const asr_config_t *cfg, asr_sched_t *sched, const char *upload_dir,
                         asr_api_t **out, char *errbuf, size_t errbuf_len);
void asr_api_destroy(asr_api_t *api);
/* The route table to pass to asr_http_start (borrowed until destroy); user_data is `api`. */
const asr_http_route_t *asr_api_routes(int *n);
/* The local-transcription service the API created (borrowed until destroy): the jobs' local
 * transcriber runs on the same one. */
struct asr_svc;
struct asr_svc *asr_api_svc(const asr_api_t *api);
/* Tells the API which server it runs on (for metrics and draining). */
void asr_api_set_server(asr_api_t *api, asr_http_server_t *srv);
/* The durable store (borrowed; must outlive the API). Set before the server starts. */
struct asr_store;
void asr_api_set_store(asr_api_t *api, struct asr_store *store);
/* Where recordings are kept (copied). Set before the server starts. */
void asr_api_set_recordings_dir(asr_api_t *api, const char *dir);
/* This node's job workers (borrowed; NULL = none), for waking them and cancelling locally. May be
 * set while the server runs. */
struct asr_jobs;
void asr_api_set_jobs(asr_api_t *api, struct asr_jobs *jobs);
/* The ASR backend router (borrowed; must outlive the API; NULL = local engine only). Registers
 * the API's scheduler path as the router's local runner. Set before the server starts. */
struct asr_router;
void asr_api_set_router(asr_api_t *api, struct asr_router *router);

/* ---- diagnose (api_diagnose.c; docs/GPU.md, "Diagnose") ----
 * A report {object: "diagnose", source: "server"|"local", findings: [{severity: ok|info|warn|
 * error, area: gpu|model|backend|queue|memory, message, action}], state: the /api/ps-shaped state
 * the findings were read from}. Every function returns a new reference (owned by the caller). */
/* The findings of a state in the shape of GET /api/ps (plus optional "server" {stalled_s,
 * stall_timeout}, "gpu_note" (why no device is in use) and "server_note" (no server checked)). */
json_t *asr_api_diagnose_findings(const json_t *state);
/* The running server's report (what GET /api/diagnose answers). Thread-safe. */
json_t *asr_api_diagnose(asr_api_t *api);
/* A report without a server (`asrd diagnose` when none answers): this machine's device reading
 * and the configured models' plans against the measured budgets. */
typedef struct {
    const asr_config_t *cfg; /* device, compute_type, beam_size, max_batch, memory_* */
    const char *const *ids;  /* [n_models] model names as configured */
    const char *const *dirs; /* [n_models] their directories */
    int n_models;
    uint64_t gpu_memory_limit; /* 0 = none */
    uint64_t gpu_memory_reserve;
    const char *gpu_fallback; /* "cpu" or NULL */
    const char *server_note;  /* why no server was asked ("no asrd answered at URL"), or NULL */
} asr_api_local_t;
json_t *asr_api_diagnose_local(const asr_api_local_t *in);

#endif
