/* route: private declarations shared by route.c, route_http.c and route_health.c. */
#ifndef ASR_ROUTE_INT_H
#define ASR_ROUTE_INT_H

#include <pthread.h>

#include "route/route.h"
#include "store/store.h"

#define ASR__ROUTE_MAX_BODY (64 << 20) /* a bigger answer is a broken backend */

/* One backend as an attempt needs it: a heap copy taken under the router's lock. */
typedef struct {
    int64_t id;
    char *name, *kind, *api_url, *api_key, *model_name;
    char *aliases; /* comma-separated other names of its model ("" when none) */
    int timeout_ms;
    int priority;
    int max_parallel; /* attempts in flight at once before requests prefer the next backend */
    bool is_default;
    bool allow_substitution; /* may serve a request for a model it does not serve */
} asr__route_target_t;

/* How a remote attempt ended. */
typedef struct {
    asr_route_net_t net;
    char neterr[256]; /* curl's words when net != OK */
    int status;
    asr_buf_t body;
    char ctype[128];
    char model_hdr[128]; /* the backend's X-Asrd-Model, if it sent one */
    int retry_after;     /* seconds; 0 = none */
} asr__route_reply_t;

#define ASR__ROUTE_MSG_MAX 400   /* an attempt's error text ("HTTP 500: <message>") */
#define ASR__ROUTE_PAIRS_MAX 64  /* from -> to pairs counted (more are dropped) */
#define ASR__ROUTE_EVENTS_MAX 20 /* recent failovers kept for the status page */

/* What the router recorded of a backend's failed attempts (route_stats.c); survives reloads. */
typedef struct {
    uint64_t n_fail[ASR_ROUTE_FAIL_N]; /* failed attempts by class */
    int64_t last_at_ms;                /* wall clock of the last failure; 0 = none */
    asr_route_fail_t last_class;
    int last_status;
    char last_msg[ASR__ROUTE_MSG_MAX];
    int64_t fo_minute[60]; /* failovers away from it, per minute (monotonic minute number) */
    uint32_t fo_count[60];
} asr__route_stats_t;

/* One backend of the routing table. */
typedef struct {
    asr__route_target_t t;
    asr_route_breaker_t br;
    int outstanding;
    uint64_t n_requests, n_failures;
    asr__route_stats_t st;
} asr__route_backend_t;

/* A failed attempt of one request, recorded as a failover once the request has ended. */
typedef struct {
    int64_t id;
    const char *name; /* borrowed from the request's candidates */
    asr_route_fail_t cls;
    int status;
    char msg[ASR__ROUTE_MSG_MAX];
} asr__route_failed_t;

/* A failover as the status page lists it. */
typedef struct {
    int64_t at_ms;
    char from[ASR_STORE_NAME_MAX + 1], to[ASR_STORE_NAME_MAX + 1]; /* to "" = none served */
    asr_route_fail_t cls;
    int status;
    char msg[ASR__ROUTE_MSG_MAX];
} asr__route_event_t;

/* The failovers the router recorded (guarded by the router's mu). */
typedef struct {
    struct {
        char from[ASR_STORE_NAME_MAX + 1], to[ASR_STORE_NAME_MAX + 1];
        uint64_t n;
    } pairs[ASR__ROUTE_PAIRS_MAX];
    int n_pairs;
    asr__route_event_t events[ASR__ROUTE_EVENTS_MAX]; /* a ring */
    int n_events, next_event;
} asr__route_failovers_t;

struct asr_router {
    pthread_mutex_t mu; /* guards b, n, local_cb/ud and every backend's counters and breaker */
    asr_store_t *store;
    asr_route_params_t p;
    char *tmp_dir;
    asr__route_backend_t *b;
    int n;
    asr_route_local_cb local_cb;
    void *local_ud;
    asr_route_local_models_cb local_models; /* the engine's models; NULL: local serves any */
    void *local_models_ud;
    /* the health thread (route_health.c) sleeps on cv under mu until stop */
    int64_t configs_version; /* the store's configs_version at the last reload (under mu) */
    pthread_t health;
    bool health_running, stop;
    pthread_cond_t cv;
    asr__route_failovers_t fo; /* under mu */
};

/* A target from a stored config, with its plaintext key. Free with asr__route_target_free. */
asr_err_t asr__route_target_from_config(asr_store_t *s, const asr_store_config_t *c,
                                        asr__route_target_t *t);
void asr__route_target_free(asr__route_target_t *t);
void asr__route_target_copy(asr__route_target_t *dst, const asr__route_target_t *src);

/* Sends the transcription `o` to the remote backend `t` and fills *out (a reply or a transport
 * failure). whisper.cpp answers are converted to the requested response_format. Blocking. */
void asr__route_remote(const asr__route_target_t *t, const asr_route_opts_t *o,
                       asr__route_reply_t *out);
void asr__route_reply_free(asr__route_reply_t *r);

/* Runs `o` on backend `t` only (remote or local), for Test connection and health checks. */
asr_err_t asr__route_attempt_one(asr_router_t *r, const asr__route_target_t *t,
                                 const asr_route_opts_t *o, asr_route_result_t *out);

/* Reloads the backends when the store's configs_version moved since the last reload (another
 * node changed them); polled about every second by the health thread. */
void asr__route_watch(asr_router_t *r);

/* The health thread (route_health.c); it also runs asr__route_watch. */
void asr__route_health_start(asr_router_t *r);
void asr__route_health_stop(asr_router_t *r);
/* Copies of the active remote backends (for health checks). *out owned by the caller. */
void asr__route_remote_targets(asr_router_t *r, asr__route_target_t **out, int *n);
/* Feeds a health check's outcome to the backend's breaker (success closes it). */
void asr__route_note_health(asr_router_t *r, int64_t id, bool ok);

/* route_stats.c: records a failed attempt on backend `b` (caller holds r->mu). */
void asr__route_note_failure(asr__route_backend_t *b, const asr__route_failed_t *f);
/* Records the `n` failed attempts of one request as failovers to `to` (the backend that served;
 * NULL when none did). Takes r->mu. */
void asr__route_note_failovers(asr_router_t *r, const asr__route_failed_t *f, int n,
                               const char *to);

#endif
