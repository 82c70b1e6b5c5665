/* http: the libmicrohttpd server: listen socket, start and stop, the request lifecycle (MHD's
 * callbacks, body intake, running the handler), request accessors and the access log. Admission
 * (routing, auth, CORS, limits) is server_route.c; answers are server_response.c.
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
 * on_access once the headers are in (asr__http_begin: routing, auth, limits; may answer at once
 * without reading the body), then on_access for each body chunk (multipart intake), then on_access
 * with no data (the handler runs), then on_completed (access log, metrics, free). */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "config/config.h"
#include "http/http_int.h"

/* ---- request accessors ---- */

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

/* ---- request lifecycle ---- */

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

/* The web UI's polling (status, lists, a recording or job it shows, health): answered GETs of
 * these are logged at DEBUG, so a browser left open does not fill the log at INFO. Failures, and
 * every other request, stay INFO. */
static bool is_poll(const char *method, const char *uri, int status) {
    static const char *const exact[] = {"/health",    "/api/ps",         "/api/jobs",
                                        "/api/nodes", "/api/recordings", "/api/asr-configs",
                                        "/v1/models"};
    static const char *const under[] = {"/api/jobs/", "/api/recordings/", "/api/asr-configs/"};
    if (strcmp(method, "GET") || status < 200 || status >= 400)
        return false;
    size_t n = strcspn(uri, "?");
    for (size_t i = 0; i < sizeof exact / sizeof *exact; i++)
        if (strlen(exact[i]) == n && !strncmp(uri, exact[i], n))
            return true;
    for (size_t i = 0; i < sizeof under / sizeof *under; i++) {
        size_t k = strlen(under[i]);
        if (n <= k || strncmp(uri, under[i], k))
            continue;
        /* ID, ID/health, ID/edits: the pages' own reads; not audio, transcripts or exports */
        const char *rest = uri + k, *slash = memchr(rest, '/', n - k);
        size_t tail = slash ? (size_t)(uri + n - slash) : 0;
        if (!slash || (tail == 7 && !strncmp(slash, "/health", 7)) ||
            (tail == 6 && !strncmp(slash, "/edits", 6)))
            return true;
    }
    return false;
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
    asr__http_redact_token(path); /* an event token opens streams: never written down */
    for (char *p = path; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == '"' || (unsigned char)*p >= 0x7f)
            *p = '?';
    ASR_LOG(is_poll(req->method, req->uri ? req->uri : "", status) ? ASR_LOG_DEBUG : ASR_LOG_INFO,
            "msg=access req=%s remote=%s method=%s path=%s status=%d in=%llu out=%llu ms=%.1f "
            "term=%s%s",
            req->id[0] ? req->id : "-", remote_addr(c, addr, sizeof addr),
            req->method[0] ? req->method : "-", path, status, (unsigned long long)req->bytes_in,
            (unsigned long long)req->bytes_out, dt * 1000.0, term,
            req->log_extra.data ? req->log_extra.data : "");
    atomic_fetch_sub(&srv->active, 1);
    req_free(req);
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
        return asr__http_begin(req, url, method);
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
    asr__http_token_init(srv);
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
