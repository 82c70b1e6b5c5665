/* api: POST /v1/audio/transcriptions and /v1/audio/translations (OpenAI's contract, see
 * docs/API.md): form validation, a cheap decode probe, then a job on the scheduler. The
 * connection thread waits for the job (polling its socket: a client that hangs up cancels the
 * job through the engine's abort callback), or streams SSE events the worker produces.
 *
 * A tx_t is shared by the connection thread and a worker: refcounted (one reference each), its
 * results guarded by tx->mu. The worker never touches the http request; the connection thread
 * never touches the engine stream. */
#include <ctype.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <strings.h>

#include "api/api_int.h"
#include "format/format.h"
#include "audio/audio.h"
#include "route/route.h"

typedef struct {
    asr_sched_job_t job; /* job.user_data = this */
    atomic_int refs;
    asr_api_t *api;
    asr_http_req_t *req; /* connection thread only */
    /* request */
    const char *model_id;
    bool translate, stream, words, segments, vad;
    asr_format_t fmt;
    char *language, *prompt, *hotwords, *path;
    float temperature;
    int beam_size;
    asr_subtitle_opts_t subs;  /* srt/vtt cut per word */
    asr_zh_script_t zh_script; /* chinese_script */
    /* results, under mu */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool finished, client_gone, logged;
    int status;
    char errmsg[400];
    const char *errparam, *errcode;
    asr_buf_t body;
    asr_buf_t sse;
    size_t sse_off;
    asr_buf_t text; /* concatenated deltas */
    double audio_s, proc_s;
    int retry_after; /* seconds, for a 503 decided by the scheduler */
} tx_t;

static tx_t *tx_new(asr_api_t *api, asr_http_req_t *req) {
    tx_t *tx = asr_xcalloc(1, sizeof *tx);
    atomic_store(&tx->refs, 1);
    tx->api = api;
    tx->req = req;
    pthread_mutex_init(&tx->mu, NULL);
    asr_cond_init(&tx->cv);
    asr_buf_init(&tx->body);
    asr_buf_init(&tx->sse);
    asr_buf_init(&tx->text);
    tx->job.user_data = tx;
    return tx;
}

static void tx_release(void *p) {
    tx_t *tx = p;
    if (atomic_fetch_sub(&tx->refs, 1) != 1)
        return;
    pthread_mutex_destroy(&tx->mu);
    pthread_cond_destroy(&tx->cv);
    asr_buf_free(&tx->body);
    asr_buf_free(&tx->sse);
    asr_buf_free(&tx->text);
    free(tx->language);
    free(tx->prompt);
    free(tx->hotwords);
    free(tx->path);
    free(tx);
}

/* Records a failure (under mu). */
static void tx_fail(tx_t *tx, int status, const char *param, const char *code, const char *msg) {
    tx->status = status;
    tx->errparam = param;
    tx->errcode = code;
    snprintf(tx->errmsg, sizeof tx->errmsg, "%s", msg);
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
                                    "chinese_script"};
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

static bool parse_model(asr_http_req_t *req, tx_t *tx) {
    asr_api_t *api = tx->api;
    const char *v = asr_http_form_value(req, "model");
    int m = (v && *v) ? asr__api_resolve_model(api, v) : 0;
    if (m < 0) {
        asr_http_respond_error(req, 404, "model", "model_not_found",
                               "The model '%.100s' does not exist or is not loaded (see GET "
                               "/v1/models).",
                               v);
        return false;
    }
    tx->job.model = m;
    tx->model_id = asr_sched_model_id(api->sched, m);
    bool multilingual = asr_sched_model_info(api->sched, m)->multilingual;
    if (tx->translate && !multilingual)
        BAD("model", "model '%s' is English-only and cannot translate", tx->model_id);
    const char *lang = asr_http_form_value(req, "language");
    if (lang && *lang && !tx->translate) {
        const char *code = asr_lang_code_normalize(lang); /* "EN", "chinese", "zh-TW" */
        if (!code)
            BAD("language",
                "language '%.40s' is not supported: use an ISO-639-1 code (zh), an English name "
                "(chinese) or a regional form (zh-CN)",
                lang);
        if (!multilingual && strcmp(code, "en"))
            BAD("language", "model '%s' is English-only; language '%s' is not supported",
                tx->model_id, code);
        tx->language = asr_xstrdup(lang); /* the engine reads the script a region implies */
    }
    return true;
}

static bool parse_numbers(asr_http_req_t *req, tx_t *tx) {
    const char *v = asr_http_form_value(req, "temperature");
    tx->temperature = 0.0f;
    if (v) {
        char *end;
        double t = strtod(v, &end);
        if (!*v || *end || !isfinite(t) || t < 0.0 || t > 1.0)
            BAD("temperature", "temperature must be a number from 0 to 1, not '%.40s'", v);
        tx->temperature = (float)t;
    }
    tx->beam_size = tx->api->cfg->beam_size;
    if ((v = asr_http_form_value(req, "beam_size"))) {
        char *end;
        long b = strtol(v, &end, 10);
        if (!*v || *end || b < 1 || b > 8)
            BAD("beam_size", "beam_size must be an integer from 1 to 8, not '%.40s'", v);
        tx->beam_size = (int)b;
    }
    /* keep_alive: seconds (or 30s / 5m / 1h), -1 = until evicted, 0 = unload when idle */
    tx->job.keep_alive_s = ASR_SCHED_KEEP_ALIVE_DEFAULT;
    if ((v = asr_http_form_value(req, "keep_alive"))) {
        char *end;
        double k = strtod(v, &end);
        double mul = !strcmp(end, "") || !strcmp(end, "s") ? 1
                     : !strcmp(end, "m")                   ? 60
                     : !strcmp(end, "h")                   ? 3600
                                                           : 0;
        if (!*v || !isfinite(k) || mul == 0 || k < -1 || k * mul > 31536000)
            BAD("keep_alive",
                "keep_alive must be seconds (or 30s, 5m, 1h; -1 = forever), not "
                "'%.40s'",
                v);
        tx->job.keep_alive_s = k < 0 ? -1.0 : k * mul;
    }
    tx->job.allow_fallback = true;
    if ((v = asr_http_form_value(req, "fallback")) && !parse_bool_field(v, &tx->job.allow_fallback))
        BAD("fallback", "fallback must be true or false, not '%.40s'", v);
    return true;
}

/* srt/vtt cut per word (max_line_width, max_line_count, max_words_per_line) and chinese_script. */
static bool parse_output_fields(asr_http_req_t *req, tx_t *tx) {
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
    const char *v = asr_http_form_value(req, "chinese_script");
    if (v && *v) {
        if (!strcmp(v, "simplified"))
            tx->zh_script = ASR_ZH_SCRIPT_SIMPLIFIED;
        else if (!strcmp(v, "traditional"))
            tx->zh_script = ASR_ZH_SCRIPT_TRADITIONAL;
        else
            BAD("chinese_script", "chinese_script must be simplified or traditional, not '%.40s'",
                v);
    }
    return true;
}

static bool parse_form(asr_http_req_t *req, tx_t *tx) {
    if (!check_duplicates(req) || !parse_model(req, tx))
        return false;
    const char *v = asr_http_form_value(req, "response_format");
    tx->fmt = ASR_FMT_JSON;
    if (v) {
        static const char *names[] = {"json", "text", "srt", "verbose_json", "vtt"};
        static const asr_format_t fmts[] = {ASR_FMT_JSON, ASR_FMT_TXT, ASR_FMT_SRT,
                                            ASR_FMT_VERBOSE_JSON, ASR_FMT_VTT};
        int k = 0;
        while (k < 5 && strcmp(v, names[k]))
            k++;
        if (k == 5)
            BAD("response_format",
                "response_format must be json, text, srt, verbose_json or vtt, not '%.40s'", v);
        tx->fmt = fmts[k];
    }
    if (!parse_granularities(req, tx) || !parse_numbers(req, tx) || !parse_output_fields(req, tx))
        return false;
    tx->stream = false;
    if ((v = asr_http_form_value(req, "stream")) && !parse_bool_field(v, &tx->stream))
        BAD("stream", "stream must be true or false, not '%.40s'", v);
    tx->vad = tx->api->cfg->vad;
    if ((v = asr_http_form_value(req, "vad_filter")) && !parse_bool_field(v, &tx->vad))
        BAD("vad_filter", "vad_filter must be true or false, not '%.40s'", v);
    if ((v = asr_http_form_value(req, "prompt")) && *v)
        tx->prompt = asr_xstrdup(v);
    if ((v = asr_http_form_value(req, "hotwords")) && *v)
        tx->hotwords = asr_xstrdup(v);
    return true;
}

/* Audio errors start with the file's path: the temp path means nothing to the client. */
static const char *no_path(const char *err, const char *path) {
    size_t n = strlen(path);
    if (!strncmp(err, path, n) && err[n] == ':')
        return err + n + 1 + (err[n + 1] == ' ');
    return err;
}

/* Opens the upload and decodes its first samples: bad, empty or too long audio is a 400/413
 * before the job takes a worker. */
static bool probe_audio(asr_http_req_t *req, tx_t *tx) {
    const asr_http_upload_t *up = asr_http_upload(req);
    if (!up) {
        asr_http_respond_error(req, 400, "file", "missing_file",
                               "you must provide a 'file' part (multipart/form-data)");
        return false;
    }
    if (up->size == 0) {
        asr_http_respond_error(req, 400, "file", "empty_file", "the uploaded file is empty");
        return false;
    }
    char err[256] = "";
    asr_audio_reader_t *r = NULL;
    asr_err_t rc = asr_audio_open(up->path, &r, err, sizeof err);
    float buf[4096];
    size_t n = 0;
    double dur = -1;
    if (rc == ASR_OK) {
        rc = asr_audio_read(r, buf, 4096, &n);
        if (rc != ASR_OK)
            snprintf(err, sizeof err, "%s", asr_audio_errmsg(r));
        else if (n == 0)
            snprintf(err, sizeof err, "the file holds no audio samples");
        dur = asr_audio_duration(r);
    }
    asr_audio_close(r);
    if (rc == ASR_ERR_NOMEM) {
        asr_http_set_header(req, "Retry-After", "1");
        asr_http_respond_error(req, 503, NULL, "server_is_overloaded",
                               "out of memory while reading the audio file; retry later");
        return false;
    }
    if (rc != ASR_OK || n == 0) {
        asr_http_respond_error(req, 400, "file", "invalid_audio",
                               "could not decode the audio file%s%s: %s",
                               up->filename[0] ? " " : "", up->filename,
                               err[0] ? no_path(err, up->path) : asr_strerror(rc));
        return false;
    }
    if (dur > tx->api->cfg->max_audio_seconds) {
        asr_http_respond_error(req, 413, "file", "audio_too_long",
                               "audio of %.0f s is longer than the server's limit of %d s", dur,
                               tx->api->cfg->max_audio_seconds);
        return false;
    }
    tx->path = asr_xstrdup(up->path);
    return true;
}

/* ---- the job (worker thread) ---- */

static bool abort_cb(void *ud) {
    tx_t *tx = ud;
    asr_sched_job_beat(&tx->job);
    return asr_sched_job_cancelled(&tx->job);
}

static void segment_cb(const asr_segment_t *seg, void *ud) {
    tx_t *tx = ud;
    asr_sched_job_beat(&tx->job);
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
        pthread_cond_broadcast(&tx->cv);
    }
    pthread_mutex_unlock(&tx->mu);
}

/* The upload as the engine's restartable PCM source (flat memory: the engine pulls ~30 s at a
 * time), cut off past max_audio_seconds. */
typedef struct {
    asr_audio_file_source_t fs;
    size_t n, max_n;
    bool too_long;
} capped_src_t;

static asr_err_t capped_read(void *ud, float *buf, size_t n, size_t *n_read) {
    capped_src_t *c = ud;
    asr_err_t rc = asr_audio_file_source_read(&c->fs, buf, n, n_read);
    if (rc == ASR_OK && (c->n += *n_read) > c->max_n) {
        c->too_long = true;
        return ASR_ERR_UNSUPPORTED;
    }
    return rc;
}

static asr_err_t capped_rewind(void *ud) {
    capped_src_t *c = ud;
    c->n = 0;
    return asr_audio_file_source_rewind(&c->fs);
}

static asr_transcribe_params_t make_params(tx_t *tx) {
    asr_transcribe_params_t tp = asr_transcribe_default_params();
    tp.task = tx->translate ? ASR_TASK_TRANSLATE : ASR_TASK_TRANSCRIBE;
    tp.language = tx->language;
    tp.initial_prompt = tx->prompt;
    tp.hotwords = tx->hotwords;
    tp.beam_size = tx->beam_size;
    if (tx->temperature > 0.0f) { /* > 0: that temperature only; 0: the fallback schedule */
        tp.temperatures[0] = tx->temperature;
        tp.n_temperatures = 1;
    }
    tp.vad_filter = tx->vad;
    tp.word_timestamps = tx->words || asr_subtitle_opts_active(&tx->subs);
    tp.chinese_script = tx->zh_script;
    tp.abort_cb = abort_cb;
    tp.abort_cb_user_data = tx;
    if (tx->stream) {
        tp.segment_cb = segment_cb;
        tp.segment_cb_user_data = tx;
    }
    return tp;
}

/* Stores the engine's outcome (under mu). */
static void finish_result(tx_t *tx, asr_stream_t *stream, asr_err_t rc) {
    if (rc == ASR_OK) {
        tx->status = 200;
        if (tx->stream) {
            asr_format_sse_done(&tx->sse, tx->text.data ? tx->text.data : "", tx->text.len,
                                asr_stream_duration(stream));
        } else {
            asr_format_api_opts_t o = {.task = tx->translate ? "translate" : "transcribe",
                                       .segments = tx->segments,
                                       .words = tx->words,
                                       .usage = true,
                                       .subtitles = &tx->subs,
                                       .model = tx->model_id};
            asr_format_write_api(stream, tx->fmt, &o, &tx->body);
        }
    } else if (rc == ASR_ERR_CANCELLED) {
        tx_fail(tx, tx->client_gone ? 499 : 503, NULL, tx->client_gone ? NULL : "shutting_down",
                tx->client_gone ? "client closed the request" : "the server is shutting down");
    } else if (rc == ASR_ERR_INVALID) {
        const char *m = asr_stream_errmsg(stream);
        tx_fail(tx, 400, strstr(m, "language") ? "language" : NULL, "invalid_value",
                m[0] ? m : "invalid request");
    } else {
        char msg[256];
        snprintf(msg, sizeof msg, "transcription failed: %s",
                 asr_stream_errmsg(stream)[0] ? asr_stream_errmsg(stream) : asr_strerror(rc));
        int st = asr_http_status_for(rc);
        tx_fail(tx, st, NULL, st == 503 ? "server_is_overloaded" : NULL, msg);
    }
}

static asr_err_t run_cb(asr_sched_job_t *job, asr_stream_t *stream) {
    tx_t *tx = job->user_data;
    double t0 = asr_now_s();
    tx->model_id = asr_sched_model_id(tx->api->sched, job->served_model);
    char err[512] = "";
    capped_src_t src = {.max_n = (size_t)tx->api->cfg->max_audio_seconds * ASR_AUDIO_RATE};
    asr_err_t rc = asr_audio_file_source_open(&src.fs, tx->path, err, sizeof err);
    if (rc == ASR_OK) {
        asr_pcm_source_t ps = {capped_read, capped_rewind, &src};
        asr_transcribe_params_t tp = make_params(tx);
        tp.n_threads = asr_sched_job_threads(job);
        if (job->n_seq < asr_transcribe_n_seq(&tp)) /* retried in a smaller slot */
            tp.beam_size = tp.best_of = job->n_seq;
        rc = asr_stream_transcribe_source(stream, &ps, &tp);
        if (rc != ASR_OK && src.fs.errmsg[0])
            snprintf(err, sizeof err, "%s", src.fs.errmsg);
        asr_audio_file_source_close(&src.fs);
    }
    double dt = asr_now_s() - t0;
    if (rc == ASR_ERR_NOMEM && !src.too_long)
        return rc; /* the scheduler retries (one sequence, fallback model) or ends the job */
    pthread_mutex_lock(&tx->mu);
    if (src.too_long)
        tx_fail(tx, 413, "file", "audio_too_long", "the audio is longer than the server's limit");
    else if (rc != ASR_OK && err[0] && rc != ASR_ERR_CANCELLED) {
        char msg[300];
        snprintf(msg, sizeof msg, "could not decode the audio file: %s", no_path(err, tx->path));
        tx_fail(tx, rc == ASR_ERR_NOMEM ? 503 : 400, rc == ASR_ERR_NOMEM ? NULL : "file",
                rc == ASR_ERR_NOMEM ? "server_is_overloaded" : "invalid_audio", msg);
    } else
        finish_result(tx, stream, rc);
    if (rc == ASR_OK) {
        tx->audio_s = asr_stream_duration(stream);
        tx->proc_s = dt;
    }
    pthread_mutex_unlock(&tx->mu);
    if (rc == ASR_OK && tx->api->srv)
        asr_http_observe_transcription(tx->api->srv, tx->model_id, tx->audio_s, dt);
    return ASR_OK; /* the outcome is in tx; other errors are final */
}

static void done_cb(asr_sched_job_t *job, asr_err_t status) {
    tx_t *tx = job->user_data;
    pthread_mutex_lock(&tx->mu);
    if (status == ASR_ERR_CANCELLED)
        tx_fail(tx, 499, NULL, NULL, "client closed the request");
    else if (status == ASR_ERR_BUSY || status == ASR_ERR_NOMEM) {
        tx_fail(tx, 503, NULL, "server_is_overloaded", job->errmsg);
        tx->retry_after = asr_sched_retry_after(tx->api->sched);
    } else if (status == ASR_ERR_MODEL)
        tx_fail(tx, 500, "model", "model_load_failed", job->errmsg);
    else if (status != ASR_OK)
        tx_fail(tx, 503, NULL, "shutting_down", "the server is shutting down");
    if (tx->stream && tx->status != 200) { /* the SSE body is already 200: say it in an event */
        json_t *e = json_object(), *root = json_object();
        json_object_set_new(e, "message", json_string(tx->errmsg));
        json_object_set_new(
            e, "type", json_string(tx->status >= 500 ? "server_error" : "invalid_request_error"));
        json_object_set_new(e, "param", tx->errparam ? json_string(tx->errparam) : json_null());
        json_object_set_new(e, "code", tx->errcode ? json_string(tx->errcode) : json_null());
        json_object_set_new(root, "type", json_string("error"));
        json_object_set_new(root, "error", e);
        char *js = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
        asr_buf_printf(&tx->sse, "data: %s\n\n", js ? js : "{}");
        free(js);
        json_decref(root);
    }
    tx->finished = true;
    pthread_cond_broadcast(&tx->cv);
    pthread_mutex_unlock(&tx->mu);
    tx_release(tx);
}

/* ---- connection thread ---- */

static void log_result(tx_t *tx) {
    if (tx->logged || !tx->req)
        return;
    tx->logged = true;
    asr_http_log_field(tx->req, "model=%s", tx->model_id);
    if (tx->audio_s > 0)
        asr_http_log_field(tx->req, "audio_s=%.2f proc_s=%.2f rtf=%.3f", tx->audio_s, tx->proc_s,
                           tx->proc_s / tx->audio_s);
}

/* Waits for the job (under mu), for at most `s` seconds; notices a client that hangs up. */
static void wait_step(tx_t *tx, double s) {
    asr_cond_timedwait_s(&tx->cv, &tx->mu, s);
    if (tx->finished || tx->client_gone)
        return;
    pthread_mutex_unlock(&tx->mu);
    bool gone = tx->req && asr_http_client_gone(tx->req); /* no request: a file run */
    pthread_mutex_lock(&tx->mu);
    if (gone && !tx->client_gone) {
        tx->client_gone = true;
        pthread_mutex_unlock(&tx->mu);
        asr_sched_cancel(tx->api->sched, &tx->job); /* may call done_cb here: no lock held */
        pthread_mutex_lock(&tx->mu);
    }
}

static ssize_t sse_read(void *ud, char *buf, size_t max) {
    tx_t *tx = ud;
    double idle_since = asr_now_s();
    pthread_mutex_lock(&tx->mu);
    for (;;) {
        if (tx->sse_off < tx->sse.len) {
            size_t n = tx->sse.len - tx->sse_off;
            n = n < max ? n : max;
            memcpy(buf, tx->sse.data + tx->sse_off, n);
            tx->sse_off += n;
            if (tx->sse_off == tx->sse.len)
                tx->sse.len = tx->sse_off = 0;
            pthread_mutex_unlock(&tx->mu);
            return (ssize_t)n;
        }
        if (tx->finished || tx->client_gone) {
            bool gone = tx->client_gone;
            log_result(tx);
            pthread_mutex_unlock(&tx->mu);
            return gone ? -1 : 0;
        }
        if (asr_now_s() - idle_since > 10.0) { /* an SSE comment keeps proxies from timing out */
            static const char ping[] = ": keep-alive\n\n";
            size_t n = sizeof ping - 1 < max ? sizeof ping - 1 : max;
            memcpy(buf, ping, n);
            pthread_mutex_unlock(&tx->mu);
            return (ssize_t)n;
        }
        wait_step(tx, 0.2);
    }
}

static void respond_result(asr_http_req_t *req, tx_t *tx) {
    static const char *ctypes[] = {[ASR_FMT_TXT] = "text/plain; charset=utf-8",
                                   [ASR_FMT_JSON] = "application/json",
                                   [ASR_FMT_VERBOSE_JSON] = "application/json",
                                   [ASR_FMT_SRT] = "text/plain; charset=utf-8",
                                   [ASR_FMT_VTT] = "text/vtt; charset=utf-8"};
    log_result(tx);
    asr_http_set_header(req, "X-Asrd-Model", tx->model_id);
    if (tx->retry_after > 0) {
        char ra[16];
        snprintf(ra, sizeof ra, "%d", tx->retry_after);
        asr_http_set_header(req, "Retry-After", ra);
    }
    if (tx->status == 200)
        asr_http_respond(req, 200, ctypes[tx->fmt], tx->body.data ? tx->body.data : "",
                         tx->body.len);
    else
        asr_http_respond_error(req, tx->status, tx->errparam, tx->errcode, "%s", tx->errmsg);
}

/* Submits tx's job to the scheduler. On refusal the outcome is in tx (under no lock: the job
 * never started) and false is returned. */
static bool submit(tx_t *tx) {
    asr_api_t *api = tx->api;
    tx->job.run_cb = run_cb;
    asr_transcribe_params_t tp0 = make_params(tx);
    tx->job.n_seq = asr_transcribe_n_seq(&tp0);
    tx->job.word_timestamps = tp0.word_timestamps;
    tx->job.done_cb = done_cb;
    atomic_fetch_add(&tx->refs, 1); /* the scheduler's reference, dropped by done_cb */
    asr_err_t rc = asr_sched_submit(api->sched, &tx->job);
    if (rc == ASR_OK)
        return true;
    atomic_fetch_sub(&tx->refs, 1);
    tx->retry_after = asr_sched_retry_after(api->sched);
    if (rc == ASR_ERR_BUSY || rc == ASR_ERR_NOMEM)
        tx_fail(tx, 503, NULL, "server_is_overloaded", tx->job.errmsg);
    else if (rc == ASR_ERR_INVALID)
        tx_fail(tx, 400, "beam_size", "invalid_value", "beam_size/best_of out of range");
    else
        tx_fail(tx, 503, NULL, "shutting_down", "the server is shutting down");
    return false;
}

static void wait_finished(tx_t *tx) {
    pthread_mutex_lock(&tx->mu);
    while (!tx->finished)
        wait_step(tx, 0.2);
    pthread_mutex_unlock(&tx->mu);
}

/* The local engine only (the path when routing cannot leave this server, and for streaming). */
static void handle_local(asr_http_req_t *req, tx_t *tx) {
    if (!submit(tx)) {
        char ra[16];
        snprintf(ra, sizeof ra, "%d", tx->retry_after);
        asr_http_set_header(req, "Retry-After", ra);
        asr_http_respond_error(req, tx->status, tx->errparam, tx->errcode, "%s", tx->errmsg);
        tx_release(tx);
        return;
    }
    if (tx->stream) { /* the response owns the connection's reference from here */
        asr_http_set_header(req, "X-Asrd-Model", tx->model_id); /* the requested model */
        asr_http_respond_stream(req, 200, "text/event-stream", sse_read, tx, tx_release);
        return;
    }
    wait_finished(tx);
    respond_result(req, tx);
    tx_release(tx);
}

/* A local attempt of the router (asr_route_local_cb) for an HTTP request: the same scheduler
 * job as handle_local; the answer stays in tx for respond_result. */
static asr_err_t local_attempt(void *ud, const asr_route_opts_t *o, const char *model_name,
                               asr_route_result_t *out) {
    (void)o, (void)model_name; /* the form was validated against the local models already */
    tx_t *tx = ud;
    if (tx->status == 0 && submit(tx)) /* once per request, even if two local rows are active */
        wait_finished(tx);
    out->status = tx->status;
    out->overloaded = tx->status == 503;
    out->retry_after = tx->retry_after;
    snprintf(out->error, sizeof out->error, "%s", tx->status == 200 ? "" : tx->errmsg);
    out->model = asr_xstrdup(tx->model_id);
    return ASR_OK;
}

static bool client_gone_cb(void *ud) { return asr_http_client_gone(ud); }

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
                          .translate = tx->translate,
                          .model = asr_http_form_value(req, "model"),
                          .response_format = asr_http_form_value(req, "response_format"),
                          .language = tx->translate ? NULL : asr_http_form_value(req, "language"),
                          .prompt = asr_http_form_value(req, "prompt"),
                          .temperature = asr_http_form_value(req, "temperature"),
                          .granularities = gran,
                          .n_granularities = n_gran,
                          .req_id = asr_http_req_id(req),
                          .cancel_cb = client_gone_cb,
                          .cancel_user_data = req};
    asr_route_result_t res;
    asr_err_t rc = asr_route_transcribe(tx->api->router, &o, local_attempt, tx, &res);
    if (res.backend)
        asr_http_set_header(req, "X-Asrd-Backend", res.backend);
    if (res.backend)
        asr_http_log_field(req, "backend=\"%s\" attempts=%d", res.backend, res.n_attempts);
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
    } else {
        asr_http_set_header(req, "Retry-After", ra);
        asr_http_respond_error(req, 503, NULL, "backends_unavailable", "%s", res.error);
    }
    asr_route_result_clear(&res);
    tx_release(tx);
}

static void handle(asr_http_req_t *req, asr_api_t *api, bool translate) {
    tx_t *tx = tx_new(api, req);
    tx->translate = translate;
    if (!parse_form(req, tx) || !probe_audio(req, tx)) {
        tx_release(tx);
        return;
    }
    char local[ASR_STORE_NAME_MAX + 1];
    /* Streaming is served by this server's engine whatever the routing (documented). */
    if (!api->router || tx->stream || asr_route_local_only(api->router, local, sizeof local)) {
        if (api->router)
            asr_http_set_header(req, "X-Asrd-Backend", local);
        handle_local(req, tx);
        return;
    }
    handle_routed(req, tx);
}

/* ---- file runs: the router's local runner for jobs and Test connection ---- */

static asr_format_t format_of(const char *v) {
    static const char *names[] = {"json", "text", "srt", "verbose_json", "vtt"};
    static const asr_format_t fmts[] = {ASR_FMT_JSON, ASR_FMT_TXT, ASR_FMT_SRT,
                                        ASR_FMT_VERBOSE_JSON, ASR_FMT_VTT};
    for (int k = 0; v && k < 5; k++)
        if (!strcmp(v, names[k]))
            return fmts[k];
    return ASR_FMT_JSON;
}

/* The answer of a finished file run, as an HTTP answer would carry it. */
static void file_result(tx_t *tx, asr_route_result_t *out) {
    out->status = tx->status;
    out->overloaded = tx->status == 503;
    out->retry_after = tx->retry_after;
    out->model = asr_xstrdup(tx->model_id ? tx->model_id : "");
    if (tx->status == 200) {
        out->body_len = tx->body.len;
        out->body = asr_xstrdup(tx->body.data ? tx->body.data : "");
        out->content_type = asr_xstrdup(tx->fmt == ASR_FMT_JSON || tx->fmt == ASR_FMT_VERBOSE_JSON
                                            ? "application/json"
                                            : "text/plain; charset=utf-8");
        return;
    }
    snprintf(out->error, sizeof out->error, "%s", tx->errmsg);
    json_t *e = json_object(), *root = json_object();
    json_object_set_new(e, "message", json_string(tx->errmsg));
    json_object_set_new(e, "type",
                        json_string(tx->status >= 500 ? "server_error" : "invalid_request_error"));
    json_object_set_new(e, "param", tx->errparam ? json_string(tx->errparam) : json_null());
    json_object_set_new(e, "code", tx->errcode ? json_string(tx->errcode) : json_null());
    json_object_set_new(root, "error", e);
    out->body = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    out->body_len = out->body ? strlen(out->body) : 0;
    out->content_type = asr_xstrdup("application/json");
    json_decref(root);
}

asr_err_t asr__api_local_file(void *ud, const asr_route_opts_t *o, const char *model_name,
                              asr_route_result_t *out) {
    asr_api_t *api = ud;
    tx_t *tx = tx_new(api, NULL);
    tx->translate = o->translate;
    const char *want = model_name ? model_name : o->model;
    int m = want && *want ? asr__api_resolve_model(api, want) : 0;
    tx->fmt = format_of(o->response_format);
    tx->segments = true;
    for (int i = 0; i < o->n_granularities; i++)
        tx->words |= !strcmp(o->granularities[i], "word");
    tx->beam_size = api->cfg->beam_size;
    tx->vad = api->cfg->vad;
    tx->job.keep_alive_s = ASR_SCHED_KEEP_ALIVE_DEFAULT;
    tx->job.allow_fallback = true;
    if (o->temperature)
        tx->temperature = strtof(o->temperature, NULL);
    if (o->language && *o->language && !o->translate)
        tx->language = asr_xstrdup(o->language);
    if (o->prompt && *o->prompt)
        tx->prompt = asr_xstrdup(o->prompt);
    tx->path = asr_xstrdup(o->path);
    if (m < 0) {
        tx->model_id = want;
        tx_fail(tx, 404, "model", "model_not_found", "the model is not loaded on this server");
    } else {
        tx->job.model = m;
        tx->model_id = asr_sched_model_id(api->sched, m);
        if (submit(tx))
            wait_finished(tx);
    }
    file_result(tx, out);
    tx_release(tx);
    return ASR_OK;
}

void asr__api_transcriptions(asr_http_req_t *req, void *ud) { handle(req, ud, false); }
void asr__api_translations(asr_http_req_t *req, void *ud) { handle(req, ud, true); }
