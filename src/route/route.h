/* route: ASR backends and failover. A backend is a row of asr_configs (store module): `local`
 * (this server's engine, run through a callback the api module registers), `openai` (any
 * OpenAI-compatible POST …/v1/audio/transcriptions, multipart over libcurl, HTTPS included) or
 * `whisper.cpp` (its POST /inference).
 *
 * A request tries the default active backend first, then the other active ones by priority
 * (ties: fewest outstanding requests first), those that serve its model before those that only
 * allow model substitution, and no other (route_models.c; a model no active backend serves is a
 * 404 without any attempt); a backend with max_parallel attempts in flight is
 * passed over like one whose breaker is open. It moves on to the next one on a transport failure
 * (connection refused or reset, TLS, timeout), HTTP 5xx, 429, 401/403/404 of the backend, or an
 * error answer that says out of memory (never a transcript that does); an error caused by the
 * input (400, 413, 415, 422) is the answer
 * and is never retried. Each backend has a breaker: it opens after `breaker_threshold`
 * consecutive failures, stays open `breaker_cooldown_s`, then lets exactly one probe through
 * (half-open); the probe's success closes it, its failure opens it again. A 429/503 with
 * Retry-After also keeps the backend aside for that long (capped at 300 s). When every backend is
 * kept aside, they are tried anyway in order: the breaker steers traffic, it never refuses it.
 *
 * Invariants: the backend table is a copy of the store's active rows, replaced whole by
 * asr_route_reload (breaker state survives a reload for a row whose kind and URL did not change);
 * api keys are held in memory in plaintext and never leave this module except in the
 * Authorization header of a request to that backend.
 *
 * Thread-safety: every function may be called from any thread; the table and the breakers are
 * guarded by one mutex that is never held during I/O. */
#ifndef ASR_ROUTE_H
#define ASR_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/core.h"

struct asr_store;
typedef struct asr_router asr_router_t;

/* ---- the failure classifier (pure) ---- */

typedef enum {
    ASR_ROUTE_NET_OK = 0,    /* an HTTP response arrived */
    ASR_ROUTE_NET_CONNECT,   /* refused, unreachable, DNS */
    ASR_ROUTE_NET_TLS,       /* handshake, certificate */
    ASR_ROUTE_NET_TIMEOUT,   /* the backend's timeout_ms passed */
    ASR_ROUTE_NET_BROKEN,    /* reset, closed without an answer, malformed answer */
    ASR_ROUTE_NET_CANCELLED, /* our client went away */
} asr_route_net_t;

typedef enum {
    ASR_ROUTE_OUTCOME_OK = 0,  /* 2xx: the answer */
    ASR_ROUTE_OUTCOME_FINAL,   /* the input is at fault (or the client left): the answer */
    ASR_ROUTE_OUTCOME_FAILOVER /* the backend is at fault: try the next one */
} asr_route_outcome_t;

/* Classifies one attempt: `net` is how the transport ended, `status` the HTTP status (when net is
 * OK), `body` (may be NULL) the response body. An out-of-memory error answer (see
 * asr_route_answer_is_oom) is FAILOVER whatever its status; a 2xx transcript is OK whatever it
 * says. */
asr_route_outcome_t asr_route_classify(asr_route_net_t net, int status, const char *body,
                                       size_t len);
/* True when `body` says out of memory ("out of memory", "CUDA out of memory", "OutOfMemory",
 * case-insensitive; only the first 64 KiB are read). Says nothing of what the body is. */
bool asr_route_body_says_oom(const char *body, size_t len);
/* True when the answer is an error answer (status >= 400, or a JSON object with an "error"
 * member, which some backends send with 200) whose body says out of memory. A transcript that
 * says it is not. */
bool asr_route_answer_is_oom(int status, const char *body, size_t len);
/* "connect", "tls", "timeout", "broken", … Static string. */
const char *asr_route_net_name(asr_route_net_t net);

/* Why an attempt failed over, for metrics and the status page (one class per failed attempt). */
typedef enum {
    ASR_ROUTE_FAIL_REFUSED = 0, /* connection refused, unreachable, DNS */
    ASR_ROUTE_FAIL_TIMEOUT,     /* the backend's timeout_ms passed */
    ASR_ROUTE_FAIL_TLS,         /* handshake, certificate */
    ASR_ROUTE_FAIL_BROKEN,      /* reset, closed without an answer, malformed answer */
    ASR_ROUTE_FAIL_5XX,         /* HTTP 5xx other than 503 */
    ASR_ROUTE_FAIL_OOM,         /* an error answer that says out of memory (any status) */
    ASR_ROUTE_FAIL_BUSY,        /* 429 or 503, or the local engine's capacity refusal */
    ASR_ROUTE_FAIL_REJECTED,    /* another 4xx of the backend (401, 403, 404) */
    ASR_ROUTE_FAIL_UNAVAILABLE, /* the local engine could not run at all */
    ASR_ROUTE_FAIL_N
} asr_route_fail_t;

/* The class of a failed attempt (as for asr_route_classify). */
asr_route_fail_t asr_route_fail_class(asr_route_net_t net, int status, const char *body,
                                      size_t len);
/* "refused", "timeout", "tls", "broken", "5xx", "out_of_memory", "busy", "rejected",
 * "unavailable". Static string. */
const char *asr_route_fail_name(asr_route_fail_t c);
/* The message of an error answer as a person should read it: a JSON body's error.message,
 * error (a string), detail or message member, else the body itself; runs of white space (new
 * lines included) become one space. Always NUL-terminates `out` ("" for an empty body). Returns
 * true when the message came from a JSON member, false when it is the body itself. */
bool asr_route_error_message(const char *body, size_t len, char *out, size_t out_len);

/* ---- the breaker (pure; caller-allocated; not thread-safe by itself) ---- */

typedef enum {
    ASR_ROUTE_BREAKER_CLOSED = 0,
    ASR_ROUTE_BREAKER_OPEN,
    ASR_ROUTE_BREAKER_HALF_OPEN /* cooldown over; one probe allowed (or in flight) */
} asr_route_breaker_state_t;

typedef struct {
    asr_route_breaker_state_t state;
    int failures;         /* consecutive */
    int threshold;        /* failures that open it (>= 1) */
    double cooldown_s;    /* open time before the probe */
    double opened_at;     /* seconds (caller's clock) */
    double skip_until;    /* Retry-After hint: not before this time */
    bool probe_in_flight; /* half-open and its one probe is out */
    uint64_t n_opened;    /* times it opened */
    uint64_t n_probes;    /* probes let through */
} asr_route_breaker_t;

void asr_route_breaker_init(asr_route_breaker_t *b, int threshold, double cooldown_s);
/* May a request go to this backend at time `now`? Closed: yes (unless a Retry-After hint holds);
 * open: no, until the cooldown has passed, then yes for exactly one caller, which gets *probe =
 * true and must report with asr_route_breaker_release(…, probe = true). */
bool asr_route_breaker_acquire(asr_route_breaker_t *b, double now, bool *probe);
/* Reports an attempt: result > 0 success (closes), < 0 failure (counts; opens at the threshold;
 * a failed probe reopens at once), 0 neutral (neither: e.g. the client left). */
void asr_route_breaker_release(asr_route_breaker_t *b, double now, int result, bool probe);
/* A Retry-After hint of `seconds` (capped at 300). */
void asr_route_breaker_hint(asr_route_breaker_t *b, double now, double seconds);
/* The state as seen at `now` (open past its cooldown reads as half-open). */
asr_route_breaker_state_t asr_route_breaker_state(const asr_route_breaker_t *b, double now);
const char *asr_route_breaker_state_name(asr_route_breaker_state_t s);

/* ---- model names (pure; route_models.c; docs/API.md "Model names") ---- */

/* True when `model` (non-empty) is `model_name` or one of the comma-separated `aliases` (spaces
 * around each ignored); exact, case-sensitive. NULL strings are empty. */
bool asr_route_names_model(const char *model_name, const char *aliases, const char *model);
/* True when a backend row serves a request for `model`: no model asked (NULL or ""); the row names
 * it (asr_route_names_model); a `local` row whose engine has it (`local_has`, ignored for other
 * kinds); a remote row with neither model_name nor aliases (it passes the client's model on). */
bool asr_route_row_serves(const char *kind, const char *model_name, const char *aliases,
                          const char *model, bool local_has);
/* The rows a request tries, given rows 0..n-1 in the table's order (default first, then
 * priority): those that serve the model, in that order, then those that do not but allow model
 * substitution. Fills order[] (room for n) with row indexes and returns how many; *n_serving
 * gets the number of serving rows (0: no active backend serves the model, a 404). */
int asr_route_model_order(const bool *serves, const bool *allow_substitution, int n, int *order,
                          int *n_serving);

/* ---- requests ---- */

/* One transcription to route. Strings are borrowed for the call; NULL = unset (not sent). */
typedef struct {
    const char *path;     /* the audio file (required) */
    const char *filename; /* name sent to remote backends; NULL = base name of path */
    bool translate;       /* /v1/audio/translations */
    const char *model; /* the client's model: it selects the backends ("Model names"); a backend's
                          model_name replaces it */
    const char *response_format; /* json (NULL), text, srt, verbose_json, vtt */
    const char *language;
    const char *prompt;
    const char *temperature;          /* as the client wrote it */
    const char *const *granularities; /* timestamp_granularities[] values */
    int n_granularities;
    const char *req_id;                 /* for log lines; may be NULL */
    bool (*cancel_cb)(void *user_data); /* polled during remote attempts; true = give up */
    void *cancel_user_data;
    int64_t only_config_id; /* > 0: that backend only, breaker ignored (Test connection) */
} asr_route_opts_t;

/* What served a request. Strings are owned by the struct (asr_route_result_clear). */
typedef struct {
    int status; /* HTTP status of the answer */
    char *body; /* the answer (remote, or a local run through asr_route_transcribe_file) */
    size_t body_len;
    char *content_type; /* of body; NULL when none */
    char *backend;      /* name of the backend that answered; NULL when none did */
    char *kind;         /* its kind */
    char *model;        /* the model that served (X-Asrd-Model); NULL when unknown */
    int64_t config_id;  /* its asr_configs id; 0 when none */
    bool local;         /* the local backend answered (through the local runner) */
    bool overloaded;    /* local runner: a capacity refusal (fail over, breaker untouched) */
    int retry_after;    /* seconds, for 429/503 answers; 0 = none */
    int n_attempts;     /* backends tried */
    char backends[256]; /* their names in the order tried, comma-separated */
    double latency_ms;  /* of the attempt that answered */
    char error[512];    /* when no backend answered (or the answer is an error): why */
} asr_route_result_t;

void asr_route_result_clear(asr_route_result_t *r);

/* Runs one attempt on the local engine. `model_name` is the model to run instead of the client's
 * (NULL when the client's stands): the local row's model_name, or, when the request reached the
 * row through one of its aliases or a model substitution, the engine's default model. Fills
 * out->status (and, for asr_route_transcribe_file, body/content_type/model); sets out->overloaded
 * for a capacity refusal. Returns ASR_OK when it produced an answer (whatever its status). Runs on
 * the caller's thread and may block until the transcription ends. */
typedef asr_err_t (*asr_route_local_cb)(void *user_data, const asr_route_opts_t *opts,
                                        const char *model_name, asr_route_result_t *out);

/* ---- the router ---- */

typedef struct {
    int breaker_threshold;  /* consecutive failures that open a breaker (>= 1) */
    int breaker_cooldown_s; /* seconds open before the probe (>= 1) */
    int health_interval_s;  /* background checks of remote backends; 0 = off */
    const char *tmp_dir;    /* where the built-in clip is written for local runs (borrowed) */
} asr_route_params_t;

/* Creates the router over `store` (borrowed; must outlive it): makes sure a `local` config exists
 * when the table is empty ("local", default, active), loads the table, and starts the health
 * thread when health_interval_s > 0. *out is owned by the caller (asr_route_destroy). */
asr_err_t asr_route_create(const asr_route_params_t *p, struct asr_store *store, asr_router_t **out,
                           char *err, size_t errlen);
/* Stops the health thread and frees the router. NULL-safe. */
void asr_route_destroy(asr_router_t *r);
/* Registers the runner of local attempts (the api module's scheduler path). */
void asr_route_set_local(asr_router_t *r, asr_route_local_cb cb, void *user_data);
/* The local engine's models, for routing by model name: returns the engine's id for `model`
 * (its id or one of the server's model_aliases; the default model for NULL or ""), NULL when the
 * engine has no such model. Static strings. Without one, a local row serves any model. */
typedef const char *(*asr_route_local_models_cb)(void *user_data, const char *model);
void asr_route_set_local_models(asr_router_t *r, asr_route_local_models_cb cb, void *user_data);
/* Reloads the table from the store (call after every admin change). */
asr_err_t asr_route_reload(asr_router_t *r);
/* True when routing cannot leave this server: every active backend is local (or none is
 * active). *name (may be NULL) gets the local backend's name (static until the next reload; copy
 * it) or "local". */
bool asr_route_local_only(asr_router_t *r, char *name, size_t name_len);
/* What the local backend runs for a request for `model` (may be NULL): *run gets the model to run
 * instead of the client's ("" when the client's stands): its model_name, else the engine's default
 * model when `model` is one of the row's aliases but not the engine's. Returns false when the
 * local backend does not serve `model` (nor is there one). */
bool asr_route_local_run_model(asr_router_t *r, const char *model, char *run, size_t run_len);
/* True when an active backend serves `model` (asr_route_row_serves; always for NULL or ""). */
bool asr_route_serves(asr_router_t *r, const char *model);
/* Calls fn once per distinct model name that an active backend serves by name (its model_name and
 * aliases; the local engine's own models are not included), with the backend's name. */
void asr_route_each_model(asr_router_t *r,
                          void (*fn)(void *ud, const char *model, const char *backend), void *ud);

/* Routes one transcription (see the file comment). Local attempts run through `local_cb`
 * (NULL = the registered runner) with `local_user_data`. Returns ASR_OK when a backend answered
 * (out->status is 2xx, or an input error that is not retried; out->local tells whether the local
 * runner did); ASR_ERR_AGAIN when every backend failed (out->status 503, out->error says why,
 * out->retry_after a hint); ASR_ERR_CANCELLED when opts->cancel_cb said so; ASR_ERR_NOT_FOUND
 * (out->status 404, nothing tried) when no active backend serves opts->model. Only the backends
 * that serve opts->model are tried, then those that allow model substitution
 * (asr_route_model_order). `out` is filled in every case and must be cleared by the caller. */
asr_err_t asr_route_transcribe(asr_router_t *r, const asr_route_opts_t *opts,
                               asr_route_local_cb local_cb, void *local_user_data,
                               asr_route_result_t *out);
/* For the jobs module: transcribes the stored file `path` with the same failover, always as
 * response_format=verbose_json (opts may be NULL; its path and response_format are ignored).
 * On ASR_OK, out->body is the verbose_json text when out->status is 200, out->backend and
 * out->model say what served. Same returns as asr_route_transcribe. Blocking; thread-safe. */
asr_err_t asr_route_transcribe_file(asr_router_t *r, const char *path, const asr_route_opts_t *opts,
                                    asr_route_result_t *out);

/* ---- Test connection and health ---- */

typedef struct {
    bool ok;
    int status;     /* HTTP status of the backend's answer; 0 when none arrived */
    int latency_ms; /* wall time of the attempt */
    char text[1024];
    char error[512];
    char model[128];
} asr_route_test_result_t;

/* Sends the built-in speech clip (assets/clips/en_ldc93s1.wav, embedded at build time), or the
 * WAV file $ASRD_TEST_CLIP names, to config `id` (active or not) and records the outcome in
 * asr_health. ASR_ERR_NOT_FOUND for an unknown id; otherwise ASR_OK with the outcome in *out. */
asr_err_t asr_route_test(asr_router_t *r, int64_t id, asr_route_test_result_t *out);

typedef struct {
    asr_route_breaker_state_t breaker;
    int consecutive_failures;
    int outstanding;
    uint64_t n_requests, n_failures, n_opened;
    bool loaded; /* false: not in the routing table (inactive or unknown) */
} asr_route_backend_status_t;

/* Live state of config `id`. */
void asr_route_backend_status(asr_router_t *r, int64_t id, asr_route_backend_status_t *out);

/* ---- what the router records (route_stats.c) ---- */

/* Appends the per-backend metrics in Prometheus text format (docs/API.md, "Metrics"):
 * asrd_backend_requests_total, asrd_backend_failures_total{class}, asrd_backend_failovers_total
 * {from,to}, asrd_backend_breaker_state (0 closed, 1 half-open, 2 open) and
 * asrd_backend_breaker_opens_total. */
void asr_route_metrics_write(asr_router_t *r, asr_buf_t *out);
/* The backends as the status page shows them: {"backends": [{id, name, kind, breaker,
 * consecutive_failures, outstanding, requests, failures, breaker_opens, failovers_last_hour,
 * last_error: null | {at, class, status, message}}], "failovers": [{at, from, to, class, status,
 * message}] (newest first, at most 20; to is null when no backend served)}. Times are
 * milliseconds since the epoch. Returns a new reference (owned by the caller). */
struct json_t *asr_route_status_json(asr_router_t *r);

/* ---- internals shared by route*.c ---- */

/* The built-in clip (embedded WAV bytes, or read from the fallback path); *data is static or
 * cached for the process. ASR_ERR_NOT_FOUND when neither is available. */
asr_err_t asr__route_clip(const unsigned char **data, size_t *len);

#endif
