/* http: admission of a request once its headers are in: the route (path patterns, 404/405 with
 * Allow), CORS (allowed origins, preflights, the headers a browser may read), the API key, the
 * draining state and the size limits; then the body intake is prepared. Whatever is refused is
 * answered here, before the body is read.
 *
 * Invariants: API keys are compared in constant time; an event token (token.c) opens only the
 * routes marked ASR_HTTP_ROUTE_TOKEN; a route marked PUBLIC needs no key and is
 * still served while draining; every answer to an allowed origin carries
 * Access-Control-Expose-Headers (EXPOSED_HEADERS) so a browser client can read what
 * served it. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/http_int.h"

/* The response headers a browser script may read on a cross-origin answer: what served the
 * request (model, device, backend, job), its id, and the retry and range hints. */
#define EXPOSED_HEADERS                                                                            \
    "X-Request-Id, X-Asrd-Model, X-Asrd-Device, X-Asrd-Backend, X-Asrd-Job, Retry-After, "         \
    "Content-Range, Accept-Ranges"

/* ---- auth and CORS ---- */

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

void asr__http_add_cors(asr_http_req_t *req, struct MHD_Response *r) {
    const char *origin = asr_http_req_header(req, "Origin");
    bool wildcard;
    if (!origin || !origin_allowed(req->srv, origin, &wildcard))
        return;
    MHD_add_response_header(r, "Access-Control-Allow-Origin", wildcard ? "*" : origin);
    if (!wildcard)
        MHD_add_response_header(r, "Vary", "Origin");
    MHD_add_response_header(r, "Access-Control-Expose-Headers", EXPOSED_HEADERS);
}

/* ---- request ids ---- */

/* The client's X-Request-Id when it is short and plain, else a new one. */
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

/* ---- routing ---- */

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
        ok |= asr__http_secret_equal(key, srv->api_keys[i]);
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
    asr__http_queue(req, 204, r);
}

enum MHD_Result asr__http_begin(asr_http_req_t *req, const char *url, const char *method) {
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
    const char *token = req->route->flags & ASR_HTTP_ROUTE_TOKEN && srv->n_api_keys
                            ? asr_http_req_query(req, "token")
                            : NULL;
    if (token && !authorized(req) && !asr__http_token_ok(srv, token)) {
        asr_http_set_header(req, "WWW-Authenticate", "Bearer");
        asr_http_respond_error(req, 401, "token", "invalid_token",
                               "The event token is invalid or has expired: get a new one with "
                               "POST /api/events/token.");
        return MHD_YES;
    }
    if (!public_route && !token && !authorized(req)) {
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
