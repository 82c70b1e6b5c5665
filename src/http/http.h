/* http: the HTTP server (libmicrohttpd) under the API: routing, API-key auth, CORS, limits,
 * multipart intake to a temp file while the body arrives, request ids, the access log, metrics
 * and OpenAI-shaped errors. It knows nothing of transcription: the api module registers routes
 * and answers requests through the functions below.
 *
 * Files: server.c (lifecycle, start/stop), server_route.c (routing, auth, CORS, limits),
 * server_response.c (answers, streams, files), upload.c (multipart intake), metrics.c.
 *
 * Threading: one thread per connection (see server.c for why). A route handler runs on its
 * connection's thread once the whole request has arrived and may block (waiting for a worker);
 * it must answer exactly once with one of the asr_http_respond* functions. */
#ifndef ASR_HTTP_H
#define ASR_HTTP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/core.h"

typedef struct asr_http_server asr_http_server_t;
typedef struct asr_http_req asr_http_req_t;

/* Handles a request; `user_data` is asr_http_params_t.user_data. */
typedef void (*asr_http_handler_cb)(asr_http_req_t *req, void *user_data);

enum {
    ASR_HTTP_ROUTE_PUBLIC = 1, /* no API key needed */
    ASR_HTTP_ROUTE_UPLOAD = 2, /* multipart/form-data body, spooled (see asr_http_upload) */
    ASR_HTTP_ROUTE_PREFIX = 4, /* `path` is a prefix; the rest is asr_http_req_path_arg */
    ASR_HTTP_ROUTE_BODY = 8,   /* a small body (JSON) kept in memory: asr_http_req_body */
    ASR_HTTP_ROUTE_LARGE = 16, /* an UPLOAD whose file may reach max_upload_large */
    ASR_HTTP_ROUTE_TOKEN = 32  /* an event stream: an event token in ?token= (asr_http_token_issue)
                                  authorizes it as well as the Bearer key does */
};

#define ASR_HTTP_MAX_BODY (1 << 20) /* ROUTE_BODY bodies above this get 413 */

typedef struct {
    const char *method; /* "GET" (HEAD is answered by it too), "POST", "PUT", "PATCH", "DELETE" */
    const char *path;   /* "/v1/models", or a prefix "/v1/models/" with ASR_HTTP_ROUTE_PREFIX, or a
                           pattern "/api/jobs/x/cancel" with '*' for x: each '*' matches one
                           non-empty segment, and the first one is asr_http_req_path_arg */
    int flags;
    const char *label; /* metrics label; NULL = path */
    asr_http_handler_cb handler;
} asr_http_route_t;

typedef struct {
    const char *host; /* borrowed during start */
    int port;         /* 0 = any free port */
    const char *upload_dir;
    int64_t max_upload;       /* bytes of the file part */
    int64_t max_upload_large; /* bytes of the file part on ASR_HTTP_ROUTE_LARGE routes; 0 =
                                 max_upload */
    const char *api_keys;     /* comma list, empty = no auth */
    const char *cors_origins; /* comma list */
    int max_connections;
    int idle_timeout_s;
    int upload_timeout_s;
    const asr_http_route_t *routes; /* borrowed until stop */
    int n_routes;
    void *user_data; /* passed to handlers */
} asr_http_params_t;

/* Binds and starts serving. errbuf gets a one-line reason on failure. *out is owned by the caller
 * (asr_http_stop). */
asr_err_t asr_http_start(const asr_http_params_t *p, asr_http_server_t **out, char *errbuf,
                         size_t errbuf_len);
/* "http://127.0.0.1:8080" (the bound port). Borrowed until stop. */
const char *asr_http_url(const asr_http_server_t *srv);
/* Stops accepting connections; requests that still arrive on open connections get 503. */
void asr_http_quiesce(asr_http_server_t *srv);
/* Requests between their first byte and their completion. */
int asr_http_active(const asr_http_server_t *srv);
/* Stops the server (closes connections, joins their threads) and frees it. NULL-safe. */
void asr_http_stop(asr_http_server_t *srv);
bool asr_http_draining(const asr_http_server_t *srv);

/* ---- request accessors (valid during the handler, on its thread) ---- */
const char *asr_http_req_id(const asr_http_req_t *req);
/* The part of the path after a PREFIX route's prefix, URL-decoded by MHD. */
const char *asr_http_req_path_arg(const asr_http_req_t *req);
const char *asr_http_req_header(const asr_http_req_t *req, const char *name);
/* A query-string argument (URL-decoded), or NULL. */
const char *asr_http_req_query(const asr_http_req_t *req, const char *name);
/* The body of a ROUTE_BODY request, NUL-terminated (len excludes the NUL); "" when empty. */
const char *asr_http_req_body(const asr_http_req_t *req, size_t *len);
asr_http_server_t *asr_http_req_server(const asr_http_req_t *req);

/* Form fields of an UPLOAD route (every part except "file"). Values are NUL-terminated, at most
 * ASR_HTTP_MAX_FIELD bytes. */
#define ASR_HTTP_MAX_FIELD 16384
int asr_http_form_count(const asr_http_req_t *req, const char *name);
const char *asr_http_form_nth(const asr_http_req_t *req, const char *name, int i);
/* First value of `name`, or NULL. */
const char *asr_http_form_value(const asr_http_req_t *req, const char *name);

typedef struct {
    const char *path;         /* temp file under upload_dir, removed when the request ends */
    int64_t size;             /* bytes */
    const char *filename;     /* "" if none */
    const char *content_type; /* "" if none */
} asr_http_upload_t;
/* The "file" part, or NULL when the request had none. */
const asr_http_upload_t *asr_http_upload(const asr_http_req_t *req);

/* Polls the connection: true once the client has closed it. Cheap; never blocks. */
bool asr_http_client_gone(asr_http_req_t *req);
/* Adds a response header (copied) to the response sent next. */
void asr_http_set_header(asr_http_req_t *req, const char *name, const char *value);
/* Appends ` key=value` fields to the access log line (printf-style). */
void asr_http_log_field(asr_http_req_t *req, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ---- responses: exactly one per request ---- */
/* `body` is copied. */
void asr_http_respond(asr_http_req_t *req, int status, const char *content_type, const char *body,
                      size_t len);
/* OpenAI's error shape {"error": {"message", "type", "param", "code"}} (the document is
 * asr_format_error_json's); the type follows the status. `param` and `code` may be NULL (JSON
 * null). 503 responses carry Retry-After when asr_http_set_header set one, else 1. */
void asr_http_respond_error(asr_http_req_t *req, int status, const char *param, const char *code,
                            const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* For a stream's read_cb that queues its output in `pending`: copies up to `max` bytes from
 * *off into buf and advances *off, emptying `pending` once all of it is sent. Returns the bytes
 * copied, 0 when nothing is pending. */
size_t asr_http_stream_take(asr_buf_t *pending, size_t *off, char *buf, size_t max);
/* Streams a body of unknown length (chunked). `read_cb` blocks until it has bytes (returns how
 * many, <= max), returns 0 at the end, or -1 to abort the connection. `free_cb(user_data)` runs
 * when the response is released. Both run on the connection's thread. */
typedef ssize_t (*asr_http_read_cb)(void *user_data, char *buf, size_t max);
void asr_http_respond_stream(asr_http_req_t *req, int status, const char *content_type,
                             asr_http_read_cb read_cb, void *user_data, void (*free_cb)(void *));

/* Sends the file at `path` (opened now; NULL content_type = application/octet-stream) with
 * Accept-Ranges: a `Range: bytes=a-b` (or a-, or -n) header gets 206 with Content-Range, an
 * unsatisfiable one 416 with `Content-Range: bytes * /SIZE`; several ranges get the whole file.
 * A file that cannot be opened is a 404 naming `param`. */
void asr_http_respond_file(asr_http_req_t *req, const char *path, const char *content_type,
                           const char *param);

/* ---- event tokens (token.c) ----
 * EventSource cannot send headers: a page trades its API key for a short-lived token that opens
 * the ASR_HTTP_ROUTE_TOKEN routes only (?token=), checked when the request arrives. Stateless:
 * an HMAC-SHA256 under the key that asked for it, over a fixed purpose, the expiry and a nonce. A
 * missing, malformed, expired or foreign token on such a route is a 401 `invalid_token` (param
 * "token"); on any other route the query argument means nothing. Tokens never reach the log. */
#define ASR_HTTP_TOKEN_MAX 128        /* bytes of a token with its NUL */
#define ASR_HTTP_TOKEN_MAX_TTL_S 3600 /* no token lives longer (verification refuses it) */
/* A token for the key that authorized `req` (the server's own random secret when no keys are
 * configured), valid for ttl_s (1..ASR_HTTP_TOKEN_MAX_TTL_S) seconds; *expires_at_ms is the wall
 * clock's ms since the epoch. ASR_ERR_INVALID for a bad ttl or a request without its key. */
asr_err_t asr_http_token_issue(asr_http_req_t *req, int ttl_s, char out[ASR_HTTP_TOKEN_MAX],
                               int64_t *expires_at_ms);
/* The token `key` signs for (expires_at_ms, nonce): what issue makes (for tests). */
void asr_http_token_make(const char *key, int64_t expires_at_ms, uint64_t nonce,
                         char out[ASR_HTTP_TOKEN_MAX]);
/* True when `token` is well formed, unexpired at now_ms, expires within
 * ASR_HTTP_TOKEN_MAX_TTL_S, and was signed by one of keys[0..n_keys). Constant time per key. */
bool asr_http_token_verify(char *const *keys, int n_keys, const char *token, int64_t now_ms);

/* ---- metrics ---- */
/* Records a finished transcription for the real-time-factor histogram and audio counters. */
void asr_http_observe_transcription(asr_http_server_t *srv, const char *model, double audio_s,
                                    double proc_s);
/* Appends the server's metrics in Prometheus text format. */
void asr_http_metrics_write(asr_http_server_t *srv, asr_buf_t *out);

#endif
