/* http: private structures shared by server.c, server_route.c, server_response.c, upload.c and
 * metrics.c. Nothing outside src/http includes this. */
#ifndef ASR_HTTP_INT_H
#define ASR_HTTP_INT_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>

#include "http/http.h"
#include "http/multipart.h"

#define ASR_HTTP_FORM_SLACK (64 * 1024) /* body bytes allowed beyond max_upload (other fields) */
#define ASR_HTTP_MAX_PARTS 64
#define ASR_HTTP_MAX_HEADER_BYTES (32 * 1024)
#define ASR_HTTP_MAX_EXTRA_HEADERS 8

/* ---- metrics ---- */
#define ASR_METRICS_MAX_ROUTES 64
#define ASR_METRICS_MAX_MODELS 16
#define ASR_METRICS_N_LAT 15
#define ASR_METRICS_N_RTF 12

typedef struct {
    atomic_uint_fast64_t counts[ASR_METRICS_N_LAT + 1]; /* last = +Inf */
    atomic_uint_fast64_t sum_us;                        /* sum of observations, microseconds */
} asr__histo_t;

typedef struct {
    int n_routes; /* + 1 for "other" */
    const char *route_labels[ASR_METRICS_MAX_ROUTES + 1];
    /* the slot a route counts in: the first route of the same label (GET and POST /api/recordings
     * are one series; two would be duplicate samples, which Prometheus rejects) */
    int route_slot[ASR_METRICS_MAX_ROUTES + 1];
    atomic_uint_fast64_t by_status[ASR_METRICS_MAX_ROUTES + 1][600];
    asr__histo_t latency[ASR_METRICS_MAX_ROUTES + 1];
    pthread_mutex_t model_mu;
    int n_models;
    char *models[ASR_METRICS_MAX_MODELS];
    asr__histo_t rtf[ASR_METRICS_MAX_MODELS];
    atomic_uint_fast64_t audio_ms[ASR_METRICS_MAX_MODELS];
    atomic_uint_fast64_t proc_ms[ASR_METRICS_MAX_MODELS];
    double t_start; /* wall clock */
} asr__metrics_t;

void asr__metrics_init(asr__metrics_t *m, const asr_http_route_t *routes, int n_routes);
void asr__metrics_deinit(asr__metrics_t *m);
/* route = index into routes, or n_routes for unmatched requests. */
void asr__metrics_request(asr__metrics_t *m, int route, int status, double seconds);

/* ---- server and request ---- */
struct asr_http_server {
    struct MHD_Daemon *daemon;
    int listen_fd;
    char url[128];
    asr_http_params_t p;
    char *host, *upload_dir;
    char **api_keys;
    int n_api_keys;
    char **cors;
    int n_cors;
    const asr_http_route_t *routes;
    int n_routes;
    atomic_int draining;
    atomic_int active;
    atomic_uint_fast64_t next_id;
    uint64_t id_salt;
    char token_secret[65]; /* signs event tokens when no API key is configured (token.c) */
    asr__metrics_t metrics;
};

typedef struct {
    char *name;
    char *value;
} asr__field_t;

struct asr_http_req {
    asr_http_server_t *srv;
    struct MHD_Connection *conn;
    char id[48];
    char method[16];
    char *uri; /* as received (path and query) */
    const char *path_arg;
    char path_arg_buf[128]; /* the segment a '*' route matched */
    const asr_http_route_t *route;
    int route_index; /* metrics; srv->n_routes = none */
    double t_start;
    bool started, responded, body_done;
    int status;
    uint64_t bytes_in, bytes_out;
    bool close_after; /* Connection: close */
    /* an error found while the body arrived, answered once it has (MHD cannot answer earlier) */
    int pend_status;
    char pend_param[64];
    char pend_msg[256];
    /* multipart intake (upload.c) */
    asr_multipart_t *mp;
    int part_kind; /* 0 none, 1 file, 2 field, 3 skipped */
    int n_parts;
    int fd;
    char *tmp_path;
    bool has_file;
    asr_http_upload_t upload;
    char *file_name, *file_ctype;
    asr__field_t *fields;
    int n_fields;
    asr_buf_t cur; /* value of the field being received */
    size_t fields_bytes;
    /* response */
    char *hdr_names[ASR_HTTP_MAX_EXTRA_HEADERS], *hdr_values[ASR_HTTP_MAX_EXTRA_HEADERS];
    int n_hdrs;
    asr_buf_t log_extra;
    asr_buf_t body; /* ROUTE_BODY */
};

/* The file-size limit of the request's route (max_upload, or max_upload_large for LARGE). */
int64_t asr__http_max_upload(const asr_http_req_t *req);

/* token.c */
/* Fills srv->token_secret with random bytes (hex). */
void asr__http_token_init(asr_http_server_t *srv);
/* a == b in time independent of their contents (secrets: API keys, tokens). */
bool asr__http_secret_equal(const char *a, const char *b);
/* True when `token` opens an event stream on this server now. */
bool asr__http_token_ok(const asr_http_server_t *srv, const char *token);
/* Rewrites the value of each `token=` query argument of `uri` to "-", in place (the access log). */
void asr__http_redact_token(char *uri);

/* server_route.c */
/* Headers are in: routes, authorizes and checks the limits; answers a refused request at once,
 * else prepares the body intake. */
enum MHD_Result asr__http_begin(asr_http_req_t *req, const char *url, const char *method);
/* Adds the CORS headers of an answer to an allowed Origin (none for others). */
void asr__http_add_cors(asr_http_req_t *req, struct MHD_Response *r);

/* server_response.c */
/* Queues `r` (destroyed here) as the answer with `status`: the request id, the extra headers,
 * Retry-After on a 503, CORS, Connection: close when needed. A second answer is logged and
 * dropped. */
void asr__http_queue(asr_http_req_t *req, int status, struct MHD_Response *r);

/* upload.c */
/* Prepares multipart intake from the Content-Type header; on failure answers the request. */
bool asr__upload_begin(asr_http_req_t *req, const char *content_type);
/* Feeds body bytes (after the body limit checks). Records a pending error on bad input. */
void asr__upload_feed(asr_http_req_t *req, const char *data, size_t len);
/* Completes intake: false (with a pending error) when the body was malformed or truncated. */
bool asr__upload_finish(asr_http_req_t *req);
void asr__upload_free(asr_http_req_t *req);
/* Records an error to answer once the body has been read (the first one wins). */
void asr__req_pend(asr_http_req_t *req, int status, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
