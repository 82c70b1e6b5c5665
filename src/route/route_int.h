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
    int timeout_ms;
    int priority;
    int max_parallel; /* attempts in flight at once before requests prefer the next backend */
    bool is_default;
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

/* One backend of the routing table. */
typedef struct {
    asr__route_target_t t;
    asr_route_breaker_t br;
    int outstanding;
    uint64_t n_requests, n_failures;
} asr__route_backend_t;

struct asr_router {
    pthread_mutex_t mu; /* guards b, n, local_cb/ud and every backend's counters and breaker */
    asr_store_t *store;
    asr_route_params_t p;
    char *tmp_dir;
    asr__route_backend_t *b;
    int n;
    asr_route_local_cb local_cb;
    void *local_ud;
    /* the health thread (route_health.c) sleeps on cv under mu until stop */
    int64_t configs_version; /* the store's configs_version at the last reload (under mu) */
    pthread_t health;
    bool health_running, stop;
    pthread_cond_t cv;
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

#endif
