/* http: the libmicrohttpd server: listen socket, request lifecycle, routing, auth, CORS, limits,
 * responses, the access log.
 *
 * Threading model: MHD_USE_THREAD_PER_CONNECTION. A transcription handler blocks for seconds to
 * minutes waiting for a worker, and an SSE response blocks between segments. In MHD's
 * internal-select mode a blocking handler stalls every other connection; suspend/resume avoids
 * that but suspended connections are not polled, so a client that hangs up would go unnoticed,
 * and content-reader callbacks may not block there (returning 0 busy-loops). With a thread per
 * connection, handlers are straight-line code that blocks, polls its own socket to notice a
 * disconnect and cancel the work, and streams SSE by blocking in the reader. The cost is bounded:
 * at most max_connections threads, mostly idle stacks; the compute itself is bounded separately
 * by the scheduler's worker pool and queue.
 *
 * Request lifecycle: MHD calls uri_log (request line read: req allocated, clock starts), then
 * on_access once the headers are in (routing, auth, limits: may answer at once without reading
 * the body), then on_access for each body chunk (multipart intake), then on_access with no data
 * (the handler runs), then on_completed (access log, metrics, free). */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config/config.h"
#include "http/http_int.h"

/* ---- status table ---- */

int asr_http_status_for(asr_err_t err) {
    switch (err) {
    case ASR_OK:
        return 200;
    case ASR_ERR_INVALID:
    case ASR_ERR_AUDIO:
    case ASR_ERR_UNSUPPORTED:
        return 400;
    case ASR_ERR_NOT_FOUND:
        return 404;
    case ASR_ERR_TIMEOUT:
        return 408;
    case ASR_ERR_NOMEM:
    case ASR_ERR_BUSY:
    case ASR_ERR_AGAIN:
    case ASR_ERR_GPU:
    case ASR_ERR_CANCELLED:
        return 503;
    case ASR_ERR_IO:
    case ASR_ERR_MODEL:
    case ASR_ERR_DB:
        return 500;
    }
    return 500;
}

static const char *type_for(int status) {
    if (status == 503)
        return "service_unavailable_error";
    if (status >= 500)
        return "server_error";
    return "invalid_request_error";
}

/* ---- small helpers ---- */

static bool ct_equal(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    unsigned char d = la != lb;
    for (size_t i = 0; i < la && i < lb; i++)
        d |= (unsigned char)(a[i] ^ b[i]);
    return d == 0;
}

const char *asr_http_req_header(const asr_http_req_t *req, const char *name) {
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *asr_http_req_id(const asr_http_req_t *req) { return req->id; }
const char *asr_http_req_path_arg(const asr_http_req_t *req) { return req->path_arg; }

int64_t asr__http_max_upload(const asr_http_req_t *req) {
    const asr_http_params_t *p = &req->srv->p;
    if (req->route && (req->route->flags & ASR_HTTP_ROUTE_LARGE) && p->max_upload_large > 0)
        return p->max_upload_large;
    return p->max_upload;
}
asr_http_server_t *asr_http_req_server(const asr_http_req_t *req) { return req->srv; }
const char *asr_http_url(const asr_http_server_t *srv) { return srv->url; }
int asr_http_active(const asr_http_server_t *srv) { return atomic_load(&srv->active); }
bool asr_http_draining(const asr_http_server_t *srv) { return atomic_load(&srv->draining); }

void asr_http_set_header(asr_http_req_t *req, const char *name, const char *value) {
    for (int i = 0; i < req->n_hdrs; i++)
        if (!strcasecmp(req->hdr_names[i], name)) {
            free(req->hdr_values[i]);
            req->hdr_values[i] = asr_xstrdup(value);
            return;
        }
    if (req->n_hdrs == ASR_HTTP_MAX_EXTRA_HEADERS)
        return;
    req->hdr_names[req->n_hdrs] = asr_xstrdup(name);
    req->hdr_values[req->n_hdrs++] = asr_xstrdup(value);
}

static const char *extra_header(const asr_http_req_t *req, const char *name) {
    for (int i = 0; i < req->n_hdrs; i++)
        if (!strcasecmp(req->hdr_names[i], name))
            return req->hdr_values[i];
    return NULL;
}

void asr_http_log_field(asr_http_req_t *req, const char *fmt, ...) {
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    asr_buf_puts(&req->log_extra, " ");
    asr_buf_puts(&req->log_extra, tmp);
}

bool asr_http_client_gone(asr_http_req_t *req) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci)
        return false;
    struct pollfd pfd = {.fd = ci->connect_fd, .events = POLLIN | POLLRDHUP};
    if (poll(&pfd, 1, 0) <= 0)
        return false;
    if (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL))
        return true;
    if (pfd.revents & POLLIN) {
        char c;
        ssize_t n = recv(ci->connect_fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
        return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
    }
    return false;
}

/* ---- responses ---- */

static bool origin_allowed(const asr_http_server_t *srv, const char *origin, bool *wildcard) {
    *wildcard = false;
    for (int i = 0; origin && i < srv->n_cors; i++) {
        if (!strcmp(srv->cors[i], "*")) {
            *wildcard = true;
            return true;
        }
        if (!strcasecmp(srv->cors[i], origin))
            return true;
    }
    return false;
}

static void add_cors(asr_http_req_t *req, struct MHD_Response *r) {
    const char *origin = asr_http_req_header(req, "Origin");
    bool wildcard;
    if (!origin || !origin_allowed(req->srv, origin, &wildcard))
        return;
    MHD_add_response_header(r, "Access-Control-Allow-Origin", wildcard ? "*" : origin);
    if (!wildcard)
        MHD_add_response_header(r, "Vary", "Origin");
    MHD_add_response_header(
        r, "Access-Control-Expose-Headers",
        "X-Request-Id, X-Asrd-Model, Retry-After, Content-Range, Accept-Ranges");
}

static void queue(asr_http_req_t *req, int status, struct MHD_Response *r) {
    if (req->responded) {
        ASR_LOG(ASR_LOG_ERROR, "msg=double_response req=%s status=%d", req->id, status);
        MHD_destroy_response(r);
        return;
    }
    MHD_add_response_header(r, "X-Request-Id", req->id);
    for (int i = 0; i < req->n_hdrs; i++)
        MHD_add_response_header(r, req->hdr_names[i], req->hdr_values[i]);
    if (status == 503 && !extra_header(req, "Retry-After"))
        MHD_add_response_header(r, "Retry-After", "1");
    add_cors(req, r);
    if (req->close_after || atomic_load(&req->srv->draining))
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    req->responded = true;
    req->status = status;
    if (MHD_queue_response(req->conn, (unsigned)status, r) != MHD_YES)
        ASR_LOG(ASR_LOG_ERROR, "msg=queue_response_failed req=%s status=%d", req->id, status);
    MHD_destroy_response(r);
}

void asr_http_respond(asr_http_req_t *req, int status, const char *content_type, const char *body,
                      size_t len) {
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return;
    if (content_type)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    req->bytes_out = len;
    /* Restarts the idle clock after a handler that blocked (see finish_request). */
    MHD_set_connection_option(req->conn, MHD_CONNECTION_OPTION_TIMEOUT,
                              (unsigned)req->srv->p.idle_timeout_s);
    queue(req, status, r);
}

static json_t *json_text(const char *s) {
    json_t *j = json_string(s);
    if (j)
        return j;
    char *copy = asr_xstrdup(s); /* not UTF-8: keep ASCII, mask the rest */
    for (char *p = copy; *p; p++)
        if ((unsigned char)*p >= 0x80)
            *p = '?';
    j = json_string(copy);
    free(copy);
    return j;
}

void asr_http_respond_error(asr_http_req_t *req, int status, const char *param, const char *code,
                            const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_t *err = json_object();
    json_object_set_new(err, "message", json_text(msg));
    json_object_set_new(err, "type", json_string(type_for(status)));
    json_object_set_new(err, "param", param && *param ? json_text(param) : json_null());
    json_object_set_new(err, "code", code ? json_string(code) : json_null());
    json_t *root = json_object();
    json_object_set_new(root, "error", err);
    char *body = json_dumps(root, JSON_PRESERVE_ORDER);
    json_decref(root);
    asr_buf_t b;
    asr_buf_init(&b);
    asr_buf_puts(&b, body);
    asr_buf_puts(&b, "\n");
    free(body);
    asr_http_log_field(req, "error=\"%.120s\"", msg);
    asr_http_respond(req, status, "application/json", b.data, b.len);
    asr_buf_free(&b);
}

typedef struct {
    asr_http_req_t *req;
    asr_http_read_cb read_cb;
    void *ud;
    void (*free_cb)(void *);
} stream_ctx_t;

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    stream_ctx_t *s = cls;
    ssize_t n = s->read_cb(s->ud, buf, max);
    if (n > 0) {
        s->req->bytes_out += (uint64_t)n;
        return n;
    }
    return n == 0 ? MHD_CONTENT_READER_END_OF_STREAM : MHD_CONTENT_READER_END_WITH_ERROR;
}

static void stream_free(void *cls) {
    stream_ctx_t *s = cls;
    if (s->free_cb)
        s->free_cb(s->ud);
    free(s);
}

void asr_http_respond_stream(asr_http_req_t *req, int status, const char *content_type,
                             asr_http_read_cb read_cb, void *user_data, void (*free_cb)(void *)) {
    stream_ctx_t *s = asr_xcalloc(1, sizeof *s);
    *s = (stream_ctx_t){req, read_cb, user_data, free_cb};
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024,
                                                               stream_reader, s, stream_free);
    if (!r) {
        stream_free(s);
        return;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_add_response_header(r, "X-Accel-Buffering", "no");
    queue(req, status, r); /* the idle timeout stays off: the reader blocks between events */
}

/* Parses a single `bytes=` range against a file of `size` bytes. Returns 1 with [*lo, *hi]
 * (inclusive) for a satisfiable range, 0 for a header to ignore (not bytes, several ranges,
 * malformed), -1 for an unsatisfiable one. */
static int parse_range(const char *h, int64_t size, int64_t *lo, int64_t *hi) {
    while (*h == ' ')
        h++;
    if (strncasecmp(h, "bytes=", 6) || strchr(h, ','))
        return 0;
    h += 6;
    char *end;
    if (*h == '-') { /* the last n bytes */
        if (!isdigit((unsigned char)h[1]))
            return 0;
        long long n = strtoll(h + 1, &end, 10);
        if (*end)
            return 0;
        if (n <= 0 || size == 0)
            return -1;
        *lo = n >= size ? 0 : size - n;
        *hi = size - 1;
        return 1;
    }
    if (!isdigit((unsigned char)*h))
        return 0;
    long long a = strtoll(h, &end, 10), b = -1;
    if (*end != '-')
        return 0;
    h = end + 1;
    if (*h) {
        if (!isdigit((unsigned char)*h))
            return 0;
        b = strtoll(h, &end, 10);
        if (*end || b < a)
            return 0;
    }
    if (a >= size)
        return -1;
    *lo = a;
    *hi = b < 0 || b >= size ? size - 1 : b;
    return 1;
}

void asr_http_respond_file(asr_http_req_t *req, const char *path, const char *content_type,
                           const char *param) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        if (fd >= 0)
            close(fd);
        asr_http_respond_error(req, 404, param, "not_found", "the file is not available: %s",
                               fd < 0 ? strerror(errno) : "not a regular file");
        return;
    }
    int64_t size = st.st_size, lo = 0, hi = size - 1;
    const char *range = asr_http_req_header(req, "Range");
    int rr = range ? parse_range(range, size, &lo, &hi) : 0;
    char buf[96];
    if (rr < 0) {
        close(fd);
        snprintf(buf, sizeof buf, "bytes */%lld", (long long)size);
        asr_http_set_header(req, "Content-Range", buf);
        asr_http_respond_error(req, 416, "Range", "range_not_satisfiable",
                               "range '%.60s' is outside the file's %lld bytes", range,
                               (long long)size);
        return;
    }
    if (rr == 0) {
        lo = 0;
        hi = size - 1;
    }
    uint64_t len = size > 0 ? (uint64_t)(hi - lo + 1) : 0;
    struct MHD_Response *r =
        len > 0 ? MHD_create_response_from_fd_at_offset64(len, fd, (uint64_t)lo)
                : MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (len == 0)
        close(fd);
    if (!r) {
        if (len > 0)
            close(fd);
        asr_http_respond_error(req, 500, NULL, NULL, "cannot send the file");
        return;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                            content_type ? content_type : "application/octet-stream");
    MHD_add_response_header(r, "Accept-Ranges", "bytes");
    if (rr > 0) {
        snprintf(buf, sizeof buf, "bytes %lld-%lld/%lld", (long long)lo, (long long)hi,
                 (long long)size);
        MHD_add_response_header(r, "Content-Range", buf);
    }
    req->bytes_out = len;
    MHD_set_connection_option(req->conn, MHD_CONNECTION_OPTION_TIMEOUT,
                              (unsigned)req->srv->p.idle_timeout_s);
    queue(req, rr > 0 ? 206 : 200, r);
}

/* ---- request lifecycle ---- */

static void make_id(asr_http_server_t *srv, asr_http_req_t *req) {
    const char *in = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "X-Request-Id");
    if (in) {
        size_t n = strlen(in);
        bool ok = n >= 1 && n < sizeof req->id;
        for (size_t i = 0; ok && i < n; i++)
            ok = isalnum((unsigned char)in[i]) || strchr("._:-", in[i]);
        if (ok) {
            memcpy(req->id, in, n + 1);
            return;
        }
    }
    uint64_t k = atomic_fetch_add(&srv->next_id, 1);
    snprintf(req->id, sizeof req->id, "%08x%08llx", (unsigned)(srv->id_salt & 0xffffffffu),
             (unsigned long long)k);
}

static void *uri_log(void *cls, const char *uri, struct MHD_Connection *c) {
    asr_http_server_t *srv = cls;
    asr_http_req_t *req = asr_xcalloc(1, sizeof *req);
    req->srv = srv;
    req->conn = c;
    req->uri = asr_xstrdup(uri ? uri : "");
    req->t_start = asr_now_s();
    req->fd = -1;
    req->route_index = srv->n_routes;
    asr_buf_init(&req->log_extra);
    atomic_fetch_add(&srv->active, 1);
    return req;
}

static void req_free(asr_http_req_t *req) {
    asr__upload_free(req);
    for (int i = 0; i < req->n_hdrs; i++) {
        free(req->hdr_names[i]);
        free(req->hdr_values[i]);
    }
    asr_buf_free(&req->log_extra);
    asr_buf_free(&req->body);
    free(req->uri);
    free(req);
}

static const char *remote_addr(struct MHD_Connection *c, char *buf, size_t len) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    snprintf(buf, len, "-");
    if (!ci || !ci->client_addr)
        return buf;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, buf, (socklen_t)len);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, buf, (socklen_t)len);
    return buf;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    asr_http_server_t *srv = cls;
    asr_http_req_t *req = *con_cls;
    if (!req)
        return;
    *con_cls = NULL;
    /* A streamed response ran with the idle timeout off: the connection may now sit idle. */
    MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, (unsigned)srv->p.idle_timeout_s);
    static const char *terms[] = {"ok",       "error",      "timeout",
                                  "shutdown", "read_error", "client_abort"};
    const char *term = (unsigned)toe < 6 ? terms[toe] : "?";
    int status = req->status; /* may be set without a response: 408/413 mid-body closes */
    if (!status && toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED)
        status = 408;
    else if (!status && toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
        status = 499; /* closed before an answer (nginx's convention) */
    double dt = asr_now_s() - req->t_start;
    if (req->started || status)
        asr__metrics_request(&srv->metrics, req->route_index, status, dt);
    char addr[64];
    char path[256];
    snprintf(path, sizeof path, "%s", req->uri);
    for (char *p = path; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == '"' || (unsigned char)*p >= 0x7f)
            *p = '?';
    ASR_LOG(ASR_LOG_INFO,
            "msg=access req=%s remote=%s method=%s path=%s status=%d in=%llu out=%llu ms=%.1f "
            "term=%s%s",
            req->id[0] ? req->id : "-", remote_addr(c, addr, sizeof addr),
            req->method[0] ? req->method : "-", path, status, (unsigned long long)req->bytes_in,
            (unsigned long long)req->bytes_out, dt * 1000.0, term,
            req->log_extra.data ? req->log_extra.data : "");
    atomic_fetch_sub(&srv->active, 1);
    req_free(req);
}

/* Matches `path` against a route path whose '*' segments each match one non-empty segment; the
 * first one's text goes to buf. */
static bool match_pattern(const char *pat, const char *path, char *buf, size_t buf_len) {
    bool captured = false;
    while (*pat && *path) {
        if (*pat == '*') {
            const char *end = strchr(path, '/');
            size_t n = end ? (size_t)(end - path) : strlen(path);
            if (n == 0 || (!captured && n >= buf_len))
                return false;
            if (!captured) {
                memcpy(buf, path, n);
                buf[n] = 0;
                captured = true;
            }
            pat++;
            path += n;
        } else if (*pat++ != *path++)
            return false;
    }
    return !*pat && !*path;
}

/* Finds the route for path+method. Returns its index, -1 when no route has the path, -2 when
 * the path exists with other methods (their names in `allow`). */
static int find_route(asr_http_server_t *srv, const char *path, const char *method,
                      const char **arg, char *arg_buf, size_t arg_buf_len, char *allow,
                      size_t allow_len) {
    bool path_found = false;
    allow[0] = 0;
    for (int i = 0; i < srv->n_routes; i++) {
        const asr_http_route_t *r = &srv->routes[i];
        size_t n = strlen(r->path);
        const char *rest = NULL;
        if (strchr(r->path, '*')) {
            if (match_pattern(r->path, path, arg_buf, arg_buf_len))
                rest = arg_buf;
        } else if (r->flags & ASR_HTTP_ROUTE_PREFIX) {
            if (!strncmp(path, r->path, n) && path[n] && !strchr(path + n, '/'))
                rest = path + n;
        } else if (!strcmp(path, r->path))
            rest = "";
        if (!rest)
            continue;
        path_found = true;
        bool m =
            !strcmp(method, r->method) || (!strcmp(method, "HEAD") && !strcmp(r->method, "GET"));
        if (m) {
            *arg = rest;
            return i;
        }
        if (!strstr(allow, r->method)) {
            if (allow[0])
                strncat(allow, ", ", allow_len - strlen(allow) - 1);
            strncat(allow, r->method, allow_len - strlen(allow) - 1);
        }
    }
    return path_found ? -2 : -1;
}

static enum MHD_Result sum_header(void *cls, enum MHD_ValueKind kind, const char *k,
                                  const char *v) {
    (void)kind;
    *(size_t *)cls += strlen(k) + (v ? strlen(v) : 0) + 4;
    return MHD_YES;
}

static bool authorized(asr_http_req_t *req) {
    asr_http_server_t *srv = req->srv;
    if (!srv->n_api_keys)
        return true;
    const char *h = asr_http_req_header(req, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h || strncasecmp(h, "Bearer ", 7))
        return false;
    const char *key = h + 7;
    while (*key == ' ')
        key++;
    bool ok = false;
    for (int i = 0; i < srv->n_api_keys; i++)
        ok |= ct_equal(key, srv->api_keys[i]);
    return ok;
}

static void preflight(asr_http_req_t *req, const char *allow) {
    struct MHD_Response *r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    char methods[64];
    snprintf(methods, sizeof methods, "%s, OPTIONS", allow);
    MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, methods);
    const char *origin = asr_http_req_header(req, "Origin");
    bool wildcard;
    if (origin && origin_allowed(req->srv, origin, &wildcard)) {
        MHD_add_response_header(r, "Access-Control-Allow-Methods", methods);
        const char *want = asr_http_req_header(req, "Access-Control-Request-Headers");
        bool sane = want && strlen(want) < 512;
        for (const char *p = want; sane && *p; p++)
            sane = isalnum((unsigned char)*p) || strchr("-_, ", *p);
        MHD_add_response_header(r, "Access-Control-Allow-Headers",
                                sane ? want : "Authorization, Content-Type, X-Request-Id");
        MHD_add_response_header(r, "Access-Control-Max-Age", "600");
    }
    queue(req, 204, r);
}

/* Headers are in: route, check, and either answer now or get ready for the body. */
static enum MHD_Result begin_request(asr_http_req_t *req, const char *url, const char *method) {
    asr_http_server_t *srv = req->srv;
    snprintf(req->method, sizeof req->method, "%s", method);
    make_id(srv, req);
    char allow[64];
    const char *arg = "";
    bool options = !strcmp(method, "OPTIONS");
    int ri = find_route(srv, url, options ? "\x01" : method, &arg, req->path_arg_buf,
                        sizeof req->path_arg_buf, allow, sizeof allow);
    bool has_body = asr_http_req_header(req, MHD_HTTP_HEADER_CONTENT_LENGTH) ||
                    asr_http_req_header(req, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    req->close_after = has_body; /* answering before the body: the connection cannot be reused */
    if (ri == -1) {
        asr_http_respond_error(req, 404, NULL, "not_found", "no route %s %.100s", method, url);
        return MHD_YES;
    }
    if (options) {
        preflight(req, allow);
        return MHD_YES;
    }
    if (ri == -2) {
        asr_http_set_header(req, MHD_HTTP_HEADER_ALLOW, allow);
        asr_http_respond_error(req, 405, NULL, "method_not_allowed",
                               "method %s is not allowed on %.100s (allowed: %s)", method, url,
                               allow);
        return MHD_YES;
    }
    req->route = &srv->routes[ri];
    req->route_index = ri < ASR_METRICS_MAX_ROUTES ? ri : srv->n_routes;
    req->path_arg = arg;
    bool public_route = req->route->flags & ASR_HTTP_ROUTE_PUBLIC;
    if (atomic_load(&srv->draining) && !public_route) {
        asr_http_respond_error(req, 503, NULL, "shutting_down", "the server is shutting down");
        return MHD_YES;
    }
    if (!public_route && !authorized(req)) {
        asr_http_set_header(req, "WWW-Authenticate", "Bearer");
        bool given = asr_http_req_header(req, MHD_HTTP_HEADER_AUTHORIZATION) != NULL;
        asr_http_respond_error(req, 401, NULL, "invalid_api_key",
                               given ? "Incorrect API key provided."
                                     : "You didn't provide an API key. Send it as "
                                       "'Authorization: Bearer KEY'.");
        return MHD_YES;
    }
    size_t hdr_bytes = 0;
    MHD_get_connection_values(req->conn, MHD_HEADER_KIND, sum_header, &hdr_bytes);
    if (hdr_bytes > ASR_HTTP_MAX_HEADER_BYTES) {
        asr_http_respond_error(req, 431, NULL, "headers_too_large",
                               "request headers are larger than %d bytes",
                               ASR_HTTP_MAX_HEADER_BYTES);
        return MHD_YES;
    }
    if (req->route->flags & ASR_HTTP_ROUTE_BODY) {
        const char *bl = asr_http_req_header(req, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (bl && strtoull(bl, NULL, 10) > ASR_HTTP_MAX_BODY) {
            asr_http_respond_error(req, 413, NULL, "body_too_large",
                                   "request body of %s bytes is larger than %d bytes", bl,
                                   ASR_HTTP_MAX_BODY);
            return MHD_YES;
        }
    }
    if (!(req->route->flags & ASR_HTTP_ROUTE_UPLOAD)) {
        /* Answered in the final call: MHD closes connections answered in the first one. */
        req->close_after = false;
        return MHD_YES;
    }
    const char *cl = asr_http_req_header(req, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl && strtoull(cl, NULL, 10) >
                  (unsigned long long)(asr__http_max_upload(req) + ASR_HTTP_FORM_SLACK)) {
        asr_http_respond_error(req, 413, "file", "file_too_large",
                               "request body of %s bytes is larger than the server's limit of "
                               "%lld bytes",
                               cl, (long long)asr__http_max_upload(req));
        return MHD_YES;
    }
    if (!asr__upload_begin(req, asr_http_req_header(req, MHD_HTTP_HEADER_CONTENT_TYPE)))
        return MHD_YES;
    req->close_after = false;
    return MHD_YES;
}

static enum MHD_Result body_chunk(asr_http_req_t *req, const char *data, size_t n) {
    asr_http_server_t *srv = req->srv;
    req->bytes_in += n;
    if (asr_now_s() - req->t_start > srv->p.upload_timeout_s) {
        req->status = 408;
        asr_http_log_field(req, "error=\"upload took longer than %d s\"", srv->p.upload_timeout_s);
        return MHD_NO; /* MHD cannot answer mid-body: close */
    }
    if (req->bytes_in > (uint64_t)(asr__http_max_upload(req) + ASR_HTTP_FORM_SLACK)) {
        req->status = 413;
        asr_http_log_field(req, "error=\"body over the limit\"");
        return MHD_NO; /* chunked body past the limit: stop reading */
    }
    if (req->route && (req->route->flags & ASR_HTTP_ROUTE_UPLOAD) && !req->responded)
        asr__upload_feed(req, data, n);
    if (req->route && (req->route->flags & ASR_HTTP_ROUTE_BODY) && !req->responded &&
        !req->pend_status) {
        if (req->body.len + n > ASR_HTTP_MAX_BODY) {
            req->pend_status = 413;
            snprintf(req->pend_msg, sizeof req->pend_msg, "request body is larger than %d bytes",
                     ASR_HTTP_MAX_BODY);
        } else {
            asr_buf_append(&req->body, data, n);
        }
    }
    return MHD_YES;
}

const char *asr_http_req_query(const asr_http_req_t *req, const char *name) {
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *asr_http_req_body(const asr_http_req_t *req, size_t *len) {
    if (len)
        *len = req->body.len;
    return req->body.data ? req->body.data : "";
}

static enum MHD_Result finish_request(asr_http_req_t *req) {
    if (req->responded || !req->route)
        return MHD_YES;
    if (req->route->flags & ASR_HTTP_ROUTE_UPLOAD)
        asr__upload_finish(req);
    if (req->pend_status) {
        const char *code = req->pend_status != 413                     ? NULL
                           : (req->route->flags & ASR_HTTP_ROUTE_BODY) ? "body_too_large"
                                                                       : "file_too_large";
        asr_http_respond_error(req, req->pend_status, req->pend_param, code, "%s", req->pend_msg);
        return MHD_YES;
    }
    /* The handler may block for a long time: no idle timeout meanwhile (asr_http_respond
     * restores it, which also restarts its clock). */
    MHD_set_connection_option(req->conn, MHD_CONNECTION_OPTION_TIMEOUT, 0u);
    req->route->handler(req, req->srv->p.user_data);
    if (!req->responded) {
        ASR_LOG(ASR_LOG_ERROR, "msg=handler_without_response req=%s", req->id);
        asr_http_respond_error(req, 500, NULL, NULL, "internal error: no response");
    }
    return MHD_YES;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *c, const char *url,
                                 const char *method, const char *version, const char *data,
                                 size_t *data_size, void **con_cls) {
    (void)version;
    asr_http_req_t *req = *con_cls;
    if (!req)
        req = *con_cls = uri_log(cls, url, c);
    req->conn = c;
    if (!req->started) {
        req->started = true;
        return begin_request(req, url, method);
    }
    if (*data_size) {
        size_t n = *data_size;
        *data_size = 0;
        return body_chunk(req, data, n);
    }
    return finish_request(req);
}

/* ---- start / stop ---- */

static void mhd_log(void *cls, const char *fmt, va_list ap) {
    (void)cls;
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = 0;
    ASR_LOG(ASR_LOG_DEBUG, "msg=mhd text=\"%s\"", line);
}

/* Binds host:port (port 0 = any) and fills srv->url with the bound address. */
static int open_listener(asr_http_server_t *srv, const char *host, int port, int *family,
                         char *errbuf, size_t errbuf_len) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    int gai = getaddrinfo(host, ps, &hints, &res);
    if (gai != 0) {
        asr_errf(errbuf, errbuf_len, "cannot resolve host '%s': %s", host, gai_strerror(gai));
        return -1;
    }
    int fd = -1, err = 0;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 128) != 0) {
            err = errno;
            close(fd);
            fd = -1;
            continue;
        }
        *family = ai->ai_family;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        asr_errf(errbuf, errbuf_len, "cannot listen on %s:%d: %s", host, port, strerror(err));
        return -1;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char num[INET6_ADDRSTRLEN] = "?", serv[16] = "0";
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
        getnameinfo((struct sockaddr *)&ss, sl, num, sizeof num, serv, sizeof serv,
                    NI_NUMERICHOST | NI_NUMERICSERV);
    snprintf(srv->url, sizeof srv->url, *family == AF_INET6 ? "http://[%s]:%s" : "http://%s:%s",
             num, serv);
    return fd;
}

asr_err_t asr_http_start(const asr_http_params_t *p, asr_http_server_t **out, char *errbuf,
                         size_t errbuf_len) {
    *out = NULL;
    asr_http_server_t *srv = asr_xcalloc(1, sizeof *srv);
    srv->p = *p;
    srv->host = asr_xstrdup(p->host);
    srv->upload_dir = asr_xstrdup(p->upload_dir);
    srv->p.host = srv->host;
    srv->p.upload_dir = srv->upload_dir;
    srv->routes = p->routes;
    srv->n_routes = p->n_routes;
    srv->listen_fd = -1;
    asr_config_list_split(p->api_keys ? p->api_keys : "", &srv->api_keys, &srv->n_api_keys);
    asr_config_list_split(p->cors_origins ? p->cors_origins : "", &srv->cors, &srv->n_cors);
    srv->id_salt = (uint64_t)time(NULL) * 2654435761u ^ (uint64_t)getpid() << 16;
    asr__metrics_init(&srv->metrics, p->routes, p->n_routes);
    int family = AF_INET;
    srv->listen_fd = open_listener(srv, p->host, p->port, &family, errbuf, errbuf_len);
    if (srv->listen_fd < 0) {
        asr_http_stop(srv);
        return ASR_ERR_IO;
    }
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_POLL | MHD_USE_ITC | MHD_USE_ERROR_LOG;
    if (family == AF_INET6)
        flags |= MHD_USE_IPv6;
    srv->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_access, srv, MHD_OPTION_LISTEN_SOCKET, srv->listen_fd,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)p->max_connections, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)p->idle_timeout_s, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(128 * 1024),
        MHD_OPTION_URI_LOG_CALLBACK, uri_log, srv, MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, srv, MHD_OPTION_END);
    if (!srv->daemon) {
        asr_errf(errbuf, errbuf_len, "cannot start the HTTP server (libmicrohttpd)");
        asr_http_stop(srv);
        return ASR_ERR_IO;
    }
    *out = srv;
    return ASR_OK;
}

void asr_http_quiesce(asr_http_server_t *srv) {
    if (atomic_exchange(&srv->draining, 1))
        return;
    if (srv->daemon) {
        MHD_socket fd = MHD_quiesce_daemon(srv->daemon);
        if (fd != MHD_INVALID_SOCKET)
            close(fd);
        srv->listen_fd = -1;
    }
}

void asr_http_stop(asr_http_server_t *srv) {
    if (!srv)
        return;
    if (srv->daemon)
        MHD_stop_daemon(srv->daemon);
    else if (srv->listen_fd >= 0)
        close(srv->listen_fd);
    asr_config_list_free(srv->api_keys, srv->n_api_keys);
    asr_config_list_free(srv->cors, srv->n_cors);
    asr__metrics_deinit(&srv->metrics);
    free(srv->host);
    free(srv->upload_dir);
    free(srv);
}
