/* web: serves the embedded UI assets (see web.h). Security headers: the page runs only its own
 * scripts and styles (a strict Content-Security-Policy, no inline code), may not be framed, and
 * sends no Referer; media may come from blob: URLs (audio fetched with an API key). */
#include <stdio.h>
#include <string.h>

#include "web/web.h"

#define WEB_CSP                                                                                    \
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "              \
    "media-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "             \
    "frame-ancestors 'none'; form-action 'self'"

const asr_web_asset_t *asr_web_asset_find(const char *name) {
    for (int i = 0; i < asr__web_n_assets; i++)
        if (!strcmp(asr__web_assets[i].name, name))
            return &asr__web_assets[i];
    return NULL;
}

/* True when an If-None-Match value ("*", one tag or a comma list, weak or strong) names `etag`. */
static bool etag_matches(const char *inm, const char *etag) {
    size_t n = strlen(etag);
    for (const char *p = inm; *p;) {
        while (*p == ' ' || *p == ',')
            p++;
        if (*p == '*')
            return true;
        if (!strncmp(p, "W/", 2))
            p += 2;
        if (!strncmp(p, etag, n) && (p[n] == 0 || p[n] == ',' || p[n] == ' '))
            return true;
        while (*p && *p != ',')
            p++;
    }
    return false;
}

static void serve(asr_http_req_t *req, const char *name) {
    const asr_web_asset_t *a = asr_web_asset_find(name);
    if (!a) {
        asr_http_respond_error(req, 404, NULL, "not_found", "no such UI file: %.100s", name);
        return;
    }
    asr_http_set_header(req, "ETag", a->etag);
    asr_http_set_header(req, "Cache-Control", "no-cache");
    asr_http_set_header(req, "X-Content-Type-Options", "nosniff");
    if (!strcmp(name, "index.html")) {
        asr_http_set_header(req, "Content-Security-Policy", WEB_CSP);
        asr_http_set_header(req, "X-Frame-Options", "DENY");
        asr_http_set_header(req, "Referrer-Policy", "no-referrer");
    }
    const char *inm = asr_http_req_header(req, "If-None-Match");
    if (inm && etag_matches(inm, a->etag)) {
        asr_http_respond(req, 304, NULL, "", 0);
        return;
    }
    asr_http_respond(req, 200, a->content_type, (const char *)a->data, a->len);
}

void asr_web_index(asr_http_req_t *req, void *user_data) {
    (void)user_data;
    serve(req, "index.html");
}

void asr_web_file(asr_http_req_t *req, void *user_data) {
    (void)user_data;
    serve(req, asr_http_req_path_arg(req));
}

void asr_web_i18n(asr_http_req_t *req, void *user_data) {
    (void)user_data;
    char name[128];
    snprintf(name, sizeof name, "i18n/%.100s", asr_http_req_path_arg(req));
    serve(req, name);
}
