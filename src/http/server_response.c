/* http: responses. Extra headers, plain answers, OpenAI-shaped errors (the document itself comes
 * from the format module), streamed answers of unknown length, and files with byte ranges. Every
 * answer goes out through asr__http_queue, which adds the request id, the extra headers,
 * Retry-After on 503s, CORS headers and Connection: close while draining, and refuses a second
 * answer to the same request. (HTTP statuses of library errors: svc's one table,
 * asr_svc_err_http_status.) */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "format/format.h"
#include "http/http_int.h"

/* ---- extra headers ---- */

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

/* ---- answers ---- */

void asr__http_queue(asr_http_req_t *req, int status, struct MHD_Response *r) {
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
    asr__http_add_cors(req, r);
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
    asr__http_queue(req, status, r);
}

void asr_http_respond_error(asr_http_req_t *req, int status, const char *param, const char *code,
                            const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    asr_buf_t b;
    asr_buf_init(&b);
    asr_format_error_write(&b, status, param, code, msg);
    asr_http_log_field(req, "error=\"%.120s\"", msg);
    asr_http_respond(req, status, "application/json", b.data, b.len);
    asr_buf_free(&b);
}

/* ---- streams and files ---- */

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
    asr__http_queue(req, status,
                    r); /* the idle timeout stays off: the reader blocks between events */
}

size_t asr_http_stream_take(asr_buf_t *pending, size_t *off, char *buf, size_t max) {
    if (*off >= pending->len)
        return 0;
    size_t n = pending->len - *off;
    n = n < max ? n : max;
    memcpy(buf, pending->data + *off, n);
    *off += n;
    if (*off == pending->len)
        pending->len = *off = 0;
    return n;
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
    asr__http_queue(req, rr > 0 ? 206 : 200, r);
}
