/* api: the request helpers every route file of the api shares, so each answer has one shape: the
 * id in a path, an integer query argument, a failed store call, a JSON answer (one writing of
 * numbers and text for every route), and the decode probe of an uploaded audio file. */
#include <stdlib.h>
#include <string.h>

#include "api/api_int.h"
#include "audio/audio.h"

bool asr__api_path_id(asr_http_req_t *req, int bad_status, int64_t *id) {
    const char *s = asr_http_req_path_arg(req);
    char *end;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || v <= 0) {
        asr_http_respond_error(req, bad_status, "id",
                               bad_status == 404 ? "not_found" : "invalid_value",
                               "the id must be a positive integer, not '%.40s'", s);
        return false;
    }
    *id = v;
    return true;
}

bool asr__api_query_int(asr_http_req_t *req, const char *name, long def, long lo, long hi,
                        long *out) {
    const char *v = asr_http_req_query(req, name);
    *out = def;
    if (!v)
        return true;
    char *end;
    long x = strtol(v, &end, 10);
    if (!*v || *end || x < lo || x > hi) {
        asr_http_respond_error(req, 400, name, "invalid_value",
                               "%s must be an integer from %ld to %ld, not '%.40s'", name, lo, hi,
                               v);
        return false;
    }
    *out = x;
    return true;
}

void asr__api_store_error(asr_http_req_t *req, const asr_api_t *api, asr_err_t e,
                          const char *param) {
    const char *msg = asr_store_errmsg(api->store);
    if (e == ASR_ERR_NOT_FOUND) {
        asr_http_respond_error(req, 404, param, "not_found", "%s", msg[0] ? msg : "not found");
    } else if (e == ASR_ERR_INVALID) {
        /* the store's messages start with the field at fault: "state: job 3 is running" */
        char field[64] = "";
        size_t n = strcspn(msg, ":");
        if (msg[n] == ':' && n < sizeof field && strspn(msg, "abcdefghijklmnopqrstuvwxyz_") == n)
            memcpy(field, msg, n), field[n] = 0;
        bool state = !strcmp(field, "state");
        asr_http_respond_error(req, state ? 409 : 400, field[0] ? field : NULL,
                               state ? "invalid_state" : "invalid_value", "%s", msg);
    } else {
        asr_http_respond_error(req, 503, NULL, "database_unavailable", "database: %s",
                               msg[0] ? msg : asr_strerror(e));
    }
}

char *asr__api_json_dumps(const json_t *root, size_t flags) {
    return json_dumps(root, flags | JSON_REAL_PRECISION(ASR__API_REAL_DIGITS));
}

void asr__api_respond_json(asr_http_req_t *req, int status, json_t *root) {
    char *js = asr__api_json_dumps(root, JSON_PRESERVE_ORDER | JSON_INDENT(2));
    json_decref(root);
    asr_buf_t b;
    asr_buf_init(&b);
    asr_buf_puts(&b, js ? js : "{}");
    asr_buf_puts(&b, "\n");
    free(js);
    asr_http_respond(req, status, "application/json", b.data, b.len);
    asr_buf_free(&b);
}

bool asr__api_probe_upload(asr_http_req_t *req, const asr_api_t *api, double *dur) {
    const asr_http_upload_t *up = asr_http_upload(req);
    *dur = -1;
    if (!up || up->size == 0) {
        asr_http_respond_error(req, 400, "file", up ? "empty_file" : "missing_file",
                               up ? "the uploaded file is empty"
                                  : "you must provide a 'file' part (multipart/form-data)");
        return false;
    }
    char err[256] = "";
    asr_audio_reader_t *r = NULL;
    asr_err_t rc = asr_audio_open(up->path, &r, err, sizeof err);
    float buf[4096];
    size_t n = 0;
    if (rc == ASR_OK) {
        rc = asr_audio_read(r, buf, 4096, &n);
        if (rc != ASR_OK)
            snprintf(err, sizeof err, "%s", asr_audio_errmsg(r));
        else if (n == 0)
            snprintf(err, sizeof err, "the file holds no audio samples");
        *dur = asr_audio_duration(r);
    }
    asr_audio_close(r);
    if (rc == ASR_ERR_NOMEM) {
        asr_http_set_header(req, "Retry-After", "1");
        asr_http_respond_error(req, 503, NULL, "server_is_overloaded",
                               "out of memory while reading the audio file; retry later");
        return false;
    }
    if (rc != ASR_OK || n == 0) {
        /* the reader's messages start with the file's path: the temp path means nothing here */
        const char *m = err[0] ? err : asr_strerror(rc);
        size_t pl = strlen(up->path);
        if (!strncmp(m, up->path, pl) && m[pl] == ':')
            m += pl + 1 + (m[pl + 1] == ' ');
        asr_http_respond_error(req, 400, "file", "invalid_audio",
                               "could not decode the audio file%s%.200s: %s",
                               up->filename[0] ? " " : "", up->filename, m);
        return false;
    }
    if (*dur > api->cfg->max_audio_seconds) {
        asr_http_respond_error(req, 413, "file", "audio_too_long",
                               "audio of %.0f s is longer than the server's limit of %d s", *dur,
                               api->cfg->max_audio_seconds);
        return false;
    }
    return true;
}
