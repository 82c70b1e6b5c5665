/* api: POST /v1/audio/transcriptions and /v1/audio/translations (OpenAI's contract, see
 * docs/API.md): the form's HTTP fields (response_format, stream, timestamp_granularities, the
 * subtitle cut), a cheap decode probe, then the local-transcription service (svc), which
 * validates the decoding options and runs them on the scheduler; or the router, when other
 * backends are active. The connection thread waits for the call (polling its socket: a client
 * that hangs up cancels it), or streams the SSE events the service's segment callback produces.
 * This file also holds the router's local runner (Test connection, and remote-style file runs).
 *
 * A tx_t is shared by the connection thread and the service's worker (its hooks): refcounted (the
 * request's reference, and the stream response's), its results guarded by tx->mu. The worker
 * never touches the http request. */
#include <ctype.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <strings.h>

#include "api/api_int.h"
#include "format/format.h"
#include "audio/audio.h"
#include "route/route.h"

typedef struct {
    atomic_int refs;
    asr_api_t *api;
    asr_http_req_t *req; /* connection thread only; NULL for file runs */
    asr_svc_request_t rq;
    char *path;
    /* the HTTP answer's shape */
    bool stream, segments, words;
    asr_format_t fmt;
    asr_subtitle_opts_t subs; /* srt/vtt cut per word */
    asr_svc_call_t *call;     /* a stream's call */
    /* results, under mu */
    pthread_mutex_t mu;
    bool ended, client_gone, logged;
    int status; /* 0 until decided */
    asr_svc_error_t err;
    asr_buf_t body;
    asr_buf_t sse;
    size_t sse_off;
    asr_buf_t text;     /* concatenated deltas */
    const char *served; /* the model that served (static) */
    const char *device; /* where it ran: "cuda:0", "host", "cpu" (static; X-Asrd-Device) */
    double audio_s, proc_s;
} tx_t;

static tx_t *tx_new(asr_api_t *api, asr_http_req_t *req) {
    tx_t *tx = asr_xcalloc(1, sizeof *tx);
    atomic_store(&tx->refs, 1);
    tx->api = api;
    tx->req = req;
    asr_svc_request_init(api->svc, &tx->rq);
    tx->fmt = ASR_FMT_JSON;
    pthread_mutex_init(&tx->mu, NULL);
    asr_buf_init(&tx->body);
    asr_buf_init(&tx->sse);
    asr_buf_init(&tx->text);
    return tx;
}

static void tx_release(void *p) {
    tx_t *tx = p;
    if (atomic_fetch_sub(&tx->refs, 1) != 1)
        return;
    asr_svc_call_release(tx->call);
    pthread_mutex_destroy(&tx->mu);
    asr_buf_free(&tx->body);
    asr_buf_free(&tx->sse);
    asr_buf_free(&tx->text);
    asr_svc_request_clear(&tx->rq);
    free(tx->path);
    free(tx);
}

/* Records the service's failure as the answer (under mu, or before any worker). */
static void tx_fail(tx_t *tx, const asr_svc_error_t *e) {
    tx->status = asr_svc_err_http_status(e->code);
    tx->err = *e;
}

void asr__api_respond_svc_error(asr_http_req_t *req, const asr_svc_error_t *e) {
    int st = asr_svc_err_http_status(e->code);
    if (st == 503) {
        char ra[16];
        snprintf(ra, sizeof ra, "%d", e->retry_after > 0 ? e->retry_after : 1);
        asr_http_set_header(req, "Retry-After", ra);
    }
    asr_http_respond_error(req, st, e->param[0] ? e->param : NULL, asr_svc_err_code(e->code), "%s",
                           e->message);
}

/* ---- form validation (connection thread) ---- */

static bool parse_bool_field(const char *v, bool *out) {
    if (!strcasecmp(v, "true") || !strcmp(v, "1")) {
        *out = true;
        return true;
    }
    if (!strcasecmp(v, "false") || !strcmp(v, "0")) {
        *out = false;
        return true;
    }
    return false;
}

#define BAD(param, ...)                                                                            \
    do {                                                                                           \
        asr_http_respond_error(req, 400, param, "invalid_value", __VA_ARGS__);                     \
        return false;                                                                              \
    } while (0)

static bool check_duplicates(asr_http_req_t *req) {
    static const char *scalars[] = {"model",           "language",       "prompt",
                                    "response_format", "temperature",    "stream",
                                    "beam_size",       "vad_filter",     "hotwords",
                                    "max_line_width",  "max_line_count", "max_words_per_line",
                                    "chinese_script",  "keep_alive",     "fallback"};
    for (size_t i = 0; i < sizeof scalars / sizeof scalars[0]; i++)
        if (asr_http_form_count(req, scalars[i]) > 1)
            BAD(scalars[i], "field '%s' is given more than once", scalars[i]);
    return true;
}

static bool parse_granularities(asr_http_req_t *req, tx_t *tx) {
    static const char *names[] = {"timestamp_granularities[]", "timestamp_granularities"};
    int given = 0;
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < asr_http_form_count(req, names[k]); i++) {
            const char *v = asr_http_form_nth(req, names[k], i);
            given++;
            if (!strcmp(v, "word"))
                tx->words = true;
            else if (!strcmp(v, "segment"))
                tx->segments = true;
            else
                BAD("timestamp_granularities",
                    "timestamp_granularities: '%.40s' is not 'word' or "
                    "'segment'",
                    v);
        }
    if (!given) {
        tx->segments = true; /* OpenAI's default */
        return true;
    }
    if (tx->fmt != ASR_FMT_VERBOSE_JSON)
        BAD("timestamp_granularities",
            "timestamp_granularities requires response_format=verbose_json");
    return true;
}

/* srt/vtt cut per word (max_line_width, max_line_count, max_words_per_line). */
static bool parse_subtitle_fields(asr_http_req_t *req, tx_t *tx) {
    static const char *names[] = {"max_line_width", "max_line_count", "max_words_per_line"};
    int *dst[] = {&tx->subs.max_line_width, &tx->subs.max_line_count, &tx->subs.max_words_per_line};
    for (int i = 0; i < 3; i++) {
        const char *v = asr_http_form_value(req, names[i]);
        if (!v)
            continue;
        char *end;
        long x = strtol(v, &end, 10);
        if (!*v || *end || x < 1 || x > 10000)
            BAD(names[i], "%s must be an integer from 1 to 10000, not '%.40s'", names[i], v);
        if (tx->fmt != ASR_FMT_SRT && tx->fmt != ASR_FMT_VTT)
            BAD(names[i], "%s requires response_format=srt or vtt", names[i]);
        *dst[i] = (int)x;
    }
    return true;
}

/* The decoding options, through the service's one validation. Translations take no language. */
static bool parse_svc_fields(asr_http_req_t *req, tx_t *tx) {
    static const char *names[] = {"model",       "language",      "prompt",     "hotwords",
                                  "temperature", "beam_size",     "vad_filter", "fallback",
                                  "keep_alive",  "chinese_script"};
    asr_svc_error_t e;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *v = asr_http_form_value(req, names[i]);
        if (!v || (tx->rq.translate && !strcmp(names[i], "language")))
            continue;
        if (asr_svc_option(&tx->rq, names[i], v, NULL, &e) != ASR_OK) {
            asr__api_respond_svc_error(req, &e);
            return false;
        }
    }
    return true;
}

/* What the local backend runs for the client's `model` (docs/API.md, "Model names"): *buf gets
 * the model that replaces the client's ("" when it stands): the local row's model_name, or the
 * engine's default model for one of the row's aliases. False when the local backend does not
 * serve `model`. */
static bool local_model_for(const asr_api_t *api, const char *model, char *buf, size_t len) {
    buf[0] = 0;
    return !api->router || asr_route_local_run_model(api->router, model, buf, len);
}

/* Whether a request goes through the router (else this server's engine serves it). */
static bool is_routed(const tx_t *tx) {
    return tx->api->router && !tx->stream && !asr_route_local_only(tx->api->router, NULL, 0);
}

static bool parse_form(asr_http_req_t *req, tx_t *tx) {
    if (!check_duplicates(req) || !parse_svc_fields(req, tx))
        return false;
    const char *v = asr_http_form_value(req, "response_format");
    if (v) {
        int f = asr_format_parse_api(v);
        if (f < 0)
            BAD("response_format",
                "response_format must be json, text, srt, verbose_json or vtt, not '%.40s'", v);
        tx->fmt = (asr_format_t)f;
    }
    if (!parse_granularities(req, tx) || !parse_subtitle_fields(req, tx))
        return false;
    if ((v = asr_http_form_value(req, "stream")) && !parse_bool_field(v, &tx->stream))
        BAD("stream", "stream must be true or false, not '%.40s'", v);
    tx->rq.word_timestamps = tx->words || asr_subtitle_opts_active(&tx->subs);
    char override[ASR_STORE_NAME_MAX * 2 + 1];
    /* a model the local backend does not serve is the router's to place (or to 404) */
    if (!local_model_for(tx->api, tx->rq.model_name, override, sizeof override) && is_routed(tx))
        return true;
    asr_svc_error_t e;
    if (asr_svc_request_finish(tx->api->svc, &tx->rq, override, &e) != ASR_OK) {
        asr__api_respond_svc_error(req, &e);
        return false;
    }
    return true;
}

/* Opens the upload and decodes its first samples: bad, empty or too long audio is a 400/413
 * before the job takes a worker (asr__api_probe_upload, as for recordings). */
static bool probe_audio(asr_http_req_t *req, tx_t *tx) {
    double dur;
    if (!asr__api_probe_upload(req, tx->api, &dur))
        return false;
    tx->path = asr_xstrdup(asr_http_upload(req)->path);
    return true;
}

/* ---- the service's hooks (worker thread) ---- */

static void on_segment(const asr_segment_t *seg, void *ud) {
    tx_t *tx = ud;
    if (!tx->stream)
        return;
    const char *t = seg->text;
    size_t n = strlen(t);
    pthread_mutex_lock(&tx->mu);
    if (tx->text.len == 0)
        while (n && isspace((unsigned char)*t))
            t++, n--;
    while (n && isspace((unsigned char)t[n - 1]))
        n--;
    if (n) {
        asr_buf_append(&tx->text, t, n);
        asr_format_sse_delta(&tx->sse, t, n);
    }
    pthread_mutex_unlock(&tx->mu);
}

static void on_result(const asr_svc_result_t *res, void *ud) {
    tx_t *tx = ud;
    pthread_mutex_lock(&tx->mu);
    tx->status = 200;
    tx->served = res->model;
    tx->device = res->device;
    tx->audio_s = res->duration_s;
    tx->proc_s = res->proc_s;
    if (tx->stream) {
        asr_format_sse_done(&tx->sse, tx->text.data ? tx->text.data : "", tx->text.len,
                            res->duration_s, res->model);
    } else {
        asr_format_api_opts_t o = {.task = tx->rq.translate ? "translate" : "transcribe",
                                   .segments = tx->segments,
                                   .words = tx->words,
                                   .usage = true,
                                   .subtitles = &tx->subs,
                                   .model = res->model};
        asr_format_write_api(res->stream, tx->fmt, &o, &tx->body);
    }
    pthread_mutex_unlock(&tx->mu);
    if (tx->api->srv)
        asr_http_observe_transcription(tx->api->srv, res->model, res->duration_s, res->proc_s);
}

/* The hooks hold a reference to tx until the call's done_cb: a stream whose client left frees
 * its response while the worker may still be in a hook. */
static asr_svc_hooks_t hooks_of(tx_t *tx) {
    atomic_fetch_add(&tx->refs, 1);
    return (asr_svc_hooks_t){
        .segment_cb = on_segment, .result_cb = on_result, .done_cb = tx_release, .user_data = tx};
}

/* ---- connection thread ---- */

static void log_result(tx_t *tx) {
    if (tx->logged || !tx->req)
        return;
    tx->logged = true;
    asr_http_log_field(tx->req, "model=%s", tx->served ? tx->served : tx->rq.model_id);
    if (tx->device)
        asr_http_log_field(tx->req, "device=%s", tx->device);
    if (tx->audio_s > 0)
        asr_http_log_field(tx->req, "audio_s=%.2f proc_s=%.2f rtf=%.3f", tx->audio_s, tx->proc_s,
                           tx->proc_s / tx->audio_s);
}

/* Runs tx's request on the service and waits; the outcome is in tx. An HTTP client that hangs up
 * cancels the call. */
static void run_local(tx_t *tx) {
    asr_svc_hooks_t h = hooks_of(tx);
    asr_svc_call_t *c;
    asr_svc_error_t e;
    if (asr_svc_start(tx->api->svc, &tx->rq, tx->path, &h, &c, &e) != ASR_OK) {
        atomic_fetch_sub(&tx->refs, 1); /* no hook will run */
        tx_fail(tx, &e);
        return;
    }
    bool cancelled = false;
    while (!asr_svc_call_wait(c, 0.2))
        if (!cancelled && tx->req && asr_http_client_gone(tx->req)) {
            cancelled = true;
            tx->client_gone = true;
            asr_svc_call_cancel(c);
        }
    if (asr_svc_call_outcome(c, &e) != ASR_OK)
        tx_fail(tx, &e);
    asr_svc_call_release(c);
}

static void respond_result(asr_http_req_t *req, tx_t *tx) {
    log_result(tx);
    asr_http_set_header(req, "X-Asrd-Model", tx->served ? tx->served : tx->rq.model_id);
    if (tx->status == 200 && tx->device) /* the GPU, or the CPU after a fallback */
        asr_http_set_header(req, "X-Asrd-Device", tx->device);
    if (tx->status == 200)
        asr_http_respond(req, 200, asr_format_content_type(tx->fmt),
                         tx->body.data ? tx->body.data : "", tx->body.len);
    else
        asr__api_respond_svc_error(req, &tx->err);
}

static ssize_t sse_read(void *ud, char *buf, size_t max) {
    tx_t *tx = ud;
    double idle_since = asr_now_s();
    for (;;) {
        pthread_mutex_lock(&tx->mu);
        size_t n = asr_http_stream_take(&tx->sse, &tx->sse_off, buf, max);
        if (n) {
            pthread_mutex_unlock(&tx->mu);
            return (ssize_t)n;
        }
        if (tx->ended || tx->client_gone) {
            bool gone = tx->client_gone;
            log_result(tx);
            pthread_mutex_unlock(&tx->mu);
            return gone ? -1 : 0;
        }
        pthread_mutex_unlock(&tx->mu);
        if (asr_now_s() - idle_since > 10.0) { /* an SSE comment keeps proxies from timing out */
            static const char ping[] = ": keep-alive\n\n";
            size_t n = sizeof ping - 1 < max ? sizeof ping - 1 : max;
            memcpy(buf, ping, n);
            return (ssize_t)n;
        }
        if (asr_svc_call_wait(tx->call, 0.2)) {
            asr_svc_error_t e;
            asr_err_t rc = asr_svc_call_outcome(tx->call, &e);
            pthread_mutex_lock(&tx->mu);
            if (rc != ASR_OK && rc != ASR_ERR_CANCELLED) { /* the 200 is sent: say it in an event */
                tx_fail(tx, &e);
                asr_format_sse_error(&tx->sse, tx->status, e.param[0] ? e.param : NULL,
                                     asr_svc_err_code(e.code), e.message);
            }
            tx->ended = true;
            pthread_mutex_unlock(&tx->mu);
        } else if (tx->req && asr_http_client_gone(tx->req)) {
            pthread_mutex_lock(&tx->mu);
            tx->client_gone = true;
            pthread_mutex_unlock(&tx->mu);
            asr_svc_call_cancel(tx->call);
        }
    }
}

/* The local engine only (the path when routing cannot leave this server, and for streaming). */
static void handle_local(asr_http_req_t *req, tx_t *tx) {
    if (!tx->stream) {
        run_local(tx);
        respond_result(req, tx);
        tx_release(tx);
        return;
    }
    asr_svc_hooks_t h = hooks_of(tx);
    asr_svc_error_t e;
    if (asr_svc_start(tx->api->svc, &tx->rq, tx->path, &h, &tx->call, &e) != ASR_OK) {
        atomic_fetch_sub(&tx->refs, 1); /* no hook will run */
        asr__api_respond_svc_error(req, &e);
        tx_release(tx);
        return;
    }
    /* the requested model: a fallback may serve instead, which the `done` event says */
    asr_http_set_header(req, "X-Asrd-Model", tx->rq.model_id);
    asr_http_respond_stream(req, 200, "text/event-stream", sse_read, tx, tx_release);
}

/* A local attempt of the router (asr_route_local_cb) for an HTTP request: the local row's
 * model_name replaces the client's model, as for the file runs below; the answer stays in tx for
 * respond_result. */
static asr_err_t local_attempt(void *ud, const asr_route_opts_t *o, const char *model_name,
                               asr_route_result_t *out) {
    (void)o;
    tx_t *tx = ud;
    if (tx->status == 0) { /* once per request, even if two local rows are active */
        asr_svc_error_t e;
        if (asr_svc_request_finish(tx->api->svc, &tx->rq, model_name, &e) != ASR_OK)
            tx_fail(tx, &e);
        else
            run_local(tx);
    }
    out->status = tx->status;
    out->overloaded = tx->status == 503;
    out->retry_after = tx->status == 200 ? 0 : tx->err.retry_after;
    snprintf(out->error, sizeof out->error, "%s", tx->status == 200 ? "" : tx->err.message);
    out->model = asr_xstrdup(tx->served ? tx->served : tx->rq.model_id);
    return ASR_OK;
}

static bool req_gone_cb(void *ud) { return asr_http_client_gone(ud); }

/* Routes the request over the ASR backends (route module) and relays the answer. */
static void handle_routed(asr_http_req_t *req, tx_t *tx) {
    const char *gran[16];
    int n_gran = 0;
    static const char *gnames[] = {"timestamp_granularities[]", "timestamp_granularities"};
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < asr_http_form_count(req, gnames[k]) && n_gran < 16; i++)
            gran[n_gran++] = asr_http_form_nth(req, gnames[k], i);
    const asr_http_upload_t *up = asr_http_upload(req);
    asr_route_opts_t o = {.path = tx->path,
                          .filename = up && up->filename[0] ? up->filename : NULL,
                          .translate = tx->rq.translate,
                          .model = asr_http_form_value(req, "model"),
                          .response_format = asr_http_form_value(req, "response_format"),
                          .language =
                              tx->rq.translate ? NULL : asr_http_form_value(req, "language"),
                          .prompt = asr_http_form_value(req, "prompt"),
                          .temperature = asr_http_form_value(req, "temperature"),
                          .granularities = gran,
                          .n_granularities = n_gran,
                          .req_id = asr_http_req_id(req),
                          .cancel_cb = req_gone_cb,
                          .cancel_user_data = req};
    asr_route_result_t res;
    asr_err_t rc = asr_route_transcribe(tx->api->router, &o, local_attempt, tx, &res);
    if (res.backend)
        asr_http_set_header(req, "X-Asrd-Backend", res.backend);
    if (res.n_attempts) /* every backend tried, in order, also when none answered */
        asr_http_log_field(req, "backend=\"%s\" attempts=%d backends=\"%s\"",
                           res.backend ? res.backend : "-", res.n_attempts, res.backends);
    char ra[16];
    snprintf(ra, sizeof ra, "%d", res.retry_after > 0 ? res.retry_after : 1);
    if (res.local || (rc == ASR_ERR_AGAIN && tx->status != 0 && tx->status != 200)) {
        respond_result(req, tx); /* the local engine answered, or was the last word */
    } else if (rc == ASR_OK) {
        asr_http_log_field(req, "model=%s", res.model ? res.model : "-");
        if (res.model)
            asr_http_set_header(req, "X-Asrd-Model", res.model);
        if (res.retry_after > 0)
            asr_http_set_header(req, "Retry-After", ra);
        asr_http_respond(req, res.status, res.content_type ? res.content_type : "application/json",
                         res.body ? res.body : "", res.body_len);
    } else if (rc == ASR_ERR_CANCELLED) {
        asr_http_respond_error(req, 499, NULL, NULL, "client closed the request");
    } else if (rc == ASR_ERR_NOT_FOUND) { /* no active backend serves the model */
        asr_http_respond_error(req, 404, "model", "model_not_found", "%s", res.error);
    } else {
        asr_http_set_header(req, "Retry-After", ra);
        asr_http_respond_error(req, 503, NULL, "backends_unavailable", "%s", res.error);
    }
    asr_route_result_clear(&res);
    tx_release(tx);
}

static void handle(asr_http_req_t *req, asr_api_t *api, bool translate) {
    tx_t *tx = tx_new(api, req);
    tx->rq.translate = translate;
    if (!parse_form(req, tx) || !probe_audio(req, tx)) {
        tx_release(tx);
        return;
    }
    char local[ASR_STORE_NAME_MAX + 1] = "";
    /* Streaming is served by this server's engine whatever the routing (documented). The local
     * backend's name is read first: a stream's X-Asrd-Backend sent it uninitialized before. */
    bool local_only = api->router && asr_route_local_only(api->router, local, sizeof local);
    if (!api->router || tx->stream || local_only) {
        if (api->router)
            asr_http_set_header(req, "X-Asrd-Backend", local);
        handle_local(req, tx);
        return;
    }
    handle_routed(req, tx);
}

/* ---- file runs: the router's local runner for Test connection ---- */

/* The router's options as the service's request (the same validation as a form's fields). */
static bool file_request(tx_t *tx, const asr_route_opts_t *o, const char *model_name) {
    asr_svc_error_t e;
    const char *names[] = {"model", "language", "prompt", "temperature"};
    const char *vals[] = {o->model, o->translate ? NULL : o->language, o->prompt, o->temperature};
    asr_err_t rc = ASR_OK;
    for (int i = 0; i < 4 && rc == ASR_OK; i++)
        if (vals[i])
            rc = asr_svc_option(&tx->rq, names[i], vals[i], NULL, &e);
    if (rc == ASR_OK && o->response_format) {
        int f = asr_format_parse_api(o->response_format);
        if (f < 0)
            rc = asr_svc_fail(&e, ASR_ERR_INVALID, "response_format",
                              "response_format must be json, text, srt, verbose_json or vtt");
        else
            tx->fmt = (asr_format_t)f;
    }
    tx->segments = true;
    for (int i = 0; i < o->n_granularities; i++)
        tx->words |= !strcmp(o->granularities[i], "word");
    tx->rq.word_timestamps = tx->words;
    if (rc == ASR_OK)
        rc = asr_svc_request_finish(tx->api->svc, &tx->rq, model_name, &e);
    if (rc != ASR_OK)
        tx_fail(tx, &e);
    return rc == ASR_OK;
}

asr_err_t asr__api_local_file(void *ud, const asr_route_opts_t *o, const char *model_name,
                              asr_route_result_t *out) {
    asr_api_t *api = ud;
    tx_t *tx = tx_new(api, NULL);
    tx->rq.translate = o->translate;
    tx->path = asr_xstrdup(o->path);
    if (file_request(tx, o, model_name))
        run_local(tx);
    out->status = tx->status;
    out->overloaded = tx->status == 503;
    out->model = asr_xstrdup(tx->served ? tx->served : tx->rq.model_id ? tx->rq.model_id : "");
    if (tx->status == 200) {
        out->body_len = tx->body.len;
        out->body = asr_xstrdup(tx->body.data ? tx->body.data : "");
        out->content_type = asr_xstrdup(asr_format_content_type(tx->fmt));
    } else {
        const asr_svc_error_t *e = &tx->err;
        out->retry_after = e->retry_after;
        snprintf(out->error, sizeof out->error, "%s", e->message);
        asr_buf_t b;
        asr_buf_init(&b);
        asr_format_error_write(&b, tx->status, e->param[0] ? e->param : NULL,
                               asr_svc_err_code(e->code), e->message);
        out->body_len = b.len;
        out->body = asr_buf_steal(&b);
        out->content_type = asr_xstrdup("application/json");
    }
    tx_release(tx);
    return ASR_OK;
}

void asr__api_transcriptions(asr_http_req_t *req, void *ud) { handle(req, ud, false); }
void asr__api_translations(asr_http_req_t *req, void *ud) { handle(req, ud, true); }
