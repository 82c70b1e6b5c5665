/* api: job routes (get, list, cancel, retry, server-sent progress events), a recording's
 * transcript rendered from its newest finished job's stored result (txt, json, srt, vtt), and the
 * nodes sharing the queue. Job JSON is built by api_recordings.c (asr__api_job_json).
 *
 * Progress events read the store (the job may run on another node): a stream polls its job every
 * 250 ms and sends an event when the state or the progress changed, until the job ends. */
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api/api_int.h"
#include "api/format.h"
#include "jobs/jobs.h"

static bool path_id(asr_http_req_t *req, int64_t *id) {
    const char *s = asr_http_req_path_arg(req);
    char *end;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || v <= 0) {
        asr_http_respond_error(req, 404, "id", "not_found", "'%.40s' is not an id", s);
        return false;
    }
    *id = v;
    return true;
}

static void store_error(asr_http_req_t *req, asr_api_t *api, asr_err_t e) {
    const char *msg = asr_store_errmsg(api->store);
    if (e == ASR_ERR_NOT_FOUND)
        asr_http_respond_error(req, 404, "id", "not_found", "%s", msg);
    else if (e == ASR_ERR_INVALID)
        asr_http_respond_error(req, 409, "state", "invalid_state", "%s", msg);
    else
        asr_http_respond_error(req, 503, NULL, "database_unavailable", "database: %s", msg);
}

static void respond_job(asr_http_req_t *req, asr_api_t *api, int64_t id, int status) {
    asr_store_job_t job;
    asr_err_t e = asr_store_job_get(api->store, id, &job);
    if (e != ASR_OK) {
        store_error(req, api, e);
        return;
    }
    json_t *o = asr__api_job_json(&job);
    asr_store_job_clear(&job);
    asr__api_respond_json(req, status, o);
}

static int parse_state(const char *s) {
    for (int i = 0; i < ASR_STORE_JOB_N_STATES; i++)
        if (!strcmp(s, asr_store_job_state_name((asr_store_job_state_t)i)))
            return i;
    return -2;
}

void asr__api_job_get(asr_http_req_t *req, void *ud) {
    int64_t id;
    if (path_id(req, &id))
        respond_job(req, ud, id, 200);
}

void asr__api_jobs_list(asr_http_req_t *req, void *ud) {
    asr_api_t *api = ud;
    const char *st = asr_http_req_query(req, "state");
    int state = st ? parse_state(st) : -1;
    if (state == -2) {
        asr_http_respond_error(req, 400, "state", "invalid_value",
                               "state must be queued, running, done, failed or cancelled");
        return;
    }
    const char *names[] = {"limit", "offset", "recording_id"};
    long vals[] = {50, 0, 0}, his[] = {500, 1L << 30, 1L << 62};
    for (int i = 0; i < 3; i++) {
        const char *v = asr_http_req_query(req, names[i]);
        if (!v)
            continue;
        char *end;
        long x = strtol(v, &end, 10);
        if (!*v || *end || x < (i == 0) || x > his[i]) {
            asr_http_respond_error(req, 400, names[i], "invalid_value",
                                   "%s must be an integer from %d to %ld", names[i], i == 0,
                                   his[i]);
            return;
        }
        vals[i] = x;
    }
    asr_store_job_t *v = NULL;
    size_t n = 0;
    int64_t counts[ASR_STORE_JOB_N_STATES];
    asr_err_t e =
        asr_store_job_list(api->store, vals[2], state, (int)vals[1], (int)vals[0], &v, &n);
    if (e == ASR_OK)
        e = asr_store_job_counts(api->store, counts);
    if (e != ASR_OK) {
        asr_store_jobs_free(v, n);
        store_error(req, api, e);
        return;
    }
    json_t *data = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(data, asr__api_job_json(&v[i]));
    asr_store_jobs_free(v, n);
    json_t *c = json_object();
    for (int i = 0; i < ASR_STORE_JOB_N_STATES; i++)
        json_object_set_new(c, asr_store_job_state_name((asr_store_job_state_t)i),
                            json_integer(counts[i]));
    json_t *root = json_object();
    json_object_set_new(root, "object", json_string("list"));
    json_object_set_new(root, "data", data);
    json_object_set_new(root, "counts", c);
    json_object_set_new(root, "limit", json_integer(vals[0]));
    json_object_set_new(root, "offset", json_integer(vals[1]));
    asr__api_respond_json(req, 200, root);
}

void asr__api_job_cancel(asr_http_req_t *req, void *ud) {
    asr_api_t *api = ud;
    int64_t id;
    if (!path_id(req, &id))
        return;
    asr_err_t e = asr_store_job_cancel(api->store, id);
    if (e != ASR_OK) {
        store_error(req, api, e);
        return;
    }
    asr_jobs_cancel_local(atomic_load(&api->jobs), id);
    asr_store_job_t job;
    if (asr_store_job_get(api->store, id, &job) == ASR_OK) {
        asr_store_recording_set_status(api->store, job.recording_id, "cancelled");
        asr_store_job_clear(&job);
    }
    respond_job(req, api, id, 200);
}

void asr__api_job_retry(asr_http_req_t *req, void *ud) {
    asr_api_t *api = ud;
    int64_t id;
    if (!path_id(req, &id))
        return;
    asr_err_t e = asr_store_job_retry(api->store, id);
    if (e != ASR_OK) {
        store_error(req, api, e);
        return;
    }
    asr_store_job_t job;
    if (asr_store_job_get(api->store, id, &job) == ASR_OK) {
        asr_store_recording_set_status(api->store, job.recording_id, "queued");
        asr_store_job_clear(&job);
    }
    asr_jobs_wake(atomic_load(&api->jobs));
    respond_job(req, api, id, 200);
}

/* ---- GET /api/jobs/{id}/events ---- */

typedef struct {
    asr_api_t *api;
    asr_http_req_t *req;
    int64_t id;
    int state;       /* last sent; -1 none */
    double progress; /* last sent */
    int attempts;
    bool ended;
    asr_buf_t out;
    size_t off;
} sse_t;

static void sse_event(sse_t *s, const char *event, json_t *data) {
    char *js = json_dumps(data, JSON_COMPACT | JSON_PRESERVE_ORDER);
    asr_buf_printf(&s->out, "event: %s\ndata: %s\n\n", event, js ? js : "{}");
    free(js);
}

/* Reads the job and queues the events its change calls for. */
static void sse_poll(sse_t *s) {
    asr_store_job_t j;
    asr_err_t e = asr_store_job_get(s->api->store, s->id, &j);
    if (e == ASR_ERR_NOT_FOUND) {
        json_t *o = json_object();
        json_object_set_new(o, "id", json_integer(s->id));
        json_object_set_new(o, "message", json_string("the job no longer exists"));
        sse_event(s, "error", o);
        json_decref(o);
        s->ended = true;
        return;
    }
    if (e != ASR_OK)
        return; /* the database hiccuped: try again at the next poll */
    json_t *o = asr__api_job_json(&j);
    if ((int)j.state != s->state || j.attempts != s->attempts) {
        sse_event(s, "state", o);
        s->state = (int)j.state;
        s->attempts = j.attempts;
        s->progress = j.progress;
    } else if (fabs(j.progress - s->progress) > 1e-9) {
        sse_event(s, "progress", o);
        s->progress = j.progress;
    }
    if (j.state == ASR_STORE_JOB_DONE || j.state == ASR_STORE_JOB_FAILED ||
        j.state == ASR_STORE_JOB_CANCELLED) {
        sse_event(s, "end", o);
        s->ended = true;
    }
    json_decref(o);
    asr_store_job_clear(&j);
}

static ssize_t sse_read(void *ud, char *buf, size_t max) {
    sse_t *s = ud;
    double idle_since = asr_now_s();
    for (;;) {
        if (s->off < s->out.len) {
            size_t n = s->out.len - s->off;
            n = n < max ? n : max;
            memcpy(buf, s->out.data + s->off, n);
            s->off += n;
            if (s->off == s->out.len)
                s->out.len = s->off = 0;
            return (ssize_t)n;
        }
        if (s->ended)
            return 0;
        if (asr_http_client_gone(s->req) || asr_http_draining(s->api->srv))
            return -1;
        if (asr_now_s() - idle_since > 10.0) { /* keeps proxies from timing out */
            asr_buf_puts(&s->out, ": keep-alive\n\n");
            continue;
        }
        usleep(250 * 1000);
        sse_poll(s);
    }
}

static void sse_free(void *ud) {
    sse_t *s = ud;
    asr_buf_free(&s->out);
    free(s);
}

void asr__api_job_events(asr_http_req_t *req, void *ud) {
    asr_api_t *api = ud;
    int64_t id;
    if (!path_id(req, &id))
        return;
    asr_store_job_t j;
    asr_err_t e = asr_store_job_get(api->store, id, &j);
    if (e != ASR_OK) {
        store_error(req, api, e);
        return;
    }
    asr_store_job_clear(&j);
    sse_t *s = asr_xcalloc(1, sizeof *s);
    s->api = api;
    s->req = req;
    s->id = id;
    s->state = -1;
    asr_buf_init(&s->out);
    sse_poll(s); /* the current state first */
    asr_http_respond_stream(req, 200, "text/event-stream", sse_read, s, sse_free);
}

/* ---- GET /api/recordings/{id}/transcript ---- */

/* Words (or whole segments) of a stored verbose_json for asr_subtitle_cues. */
static int collect_pieces(json_t *segs, bool per_word, asr_sub_word_t **out) {
    int n = 0, cap = 16;
    asr_sub_word_t *w = asr_xmalloc((size_t)cap * sizeof *w);
    for (size_t i = 0; i < json_array_size(segs); i++) {
        json_t *g = json_array_get(segs, i);
        json_t *words = per_word ? json_object_get(g, "words") : NULL;
        size_t nw = json_array_size(words);
        if (n + (int)nw + 1 > cap) {
            cap = (n + (int)nw + 1) * 2;
            w = asr_xrealloc(w, (size_t)cap * sizeof *w);
        }
        if (nw == 0) {
            const char *t = json_string_value(json_object_get(g, "text"));
            w[n++] = (asr_sub_word_t){t ? t : "", json_number_value(json_object_get(g, "start")),
                                      json_number_value(json_object_get(g, "end")), (int)i};
        }
        for (size_t k = 0; k < nw; k++) {
            json_t *x = json_array_get(words, k);
            const char *t = json_string_value(json_object_get(x, "word"));
            w[n++] = (asr_sub_word_t){t ? t : "", json_number_value(json_object_get(x, "start")),
                                      json_number_value(json_object_get(x, "end")), (int)i};
        }
    }
    *out = w;
    return n;
}

static void strip_append(asr_buf_t *out, const char *t) {
    size_t n = strlen(t);
    while (n && (*t == ' ' || *t == '\n'))
        t++, n--;
    while (n && (t[n - 1] == ' ' || t[n - 1] == '\n'))
        n--;
    asr_buf_append(out, t, n);
}

/* Renders the stored result `doc` as fmt into out. */
static void render(json_t *doc, const char *stored, asr_format_t fmt,
                   const asr_subtitle_opts_t *subs, asr_buf_t *out) {
    json_t *segs = json_object_get(doc, "segments");
    if (fmt == ASR_FMT_JSON || fmt == ASR_FMT_VERBOSE_JSON) {
        asr_buf_puts(out, stored);
        asr_buf_puts(out, "\n");
    } else if (fmt == ASR_FMT_TXT) {
        for (size_t i = 0; i < json_array_size(segs); i++) {
            const char *t = json_string_value(json_object_get(json_array_get(segs, i), "text"));
            strip_append(out, t ? t : "");
            asr_buf_puts(out, "\n");
        }
    } else {
        bool per_word = asr_subtitle_opts_active(subs);
        asr_sub_word_t *w = NULL;
        int n = collect_pieces(segs, per_word, &w);
        asr_cue_t *cues = NULL;
        int n_cues = asr_subtitle_cues(w, n, per_word ? subs : NULL, &cues);
        asr_subtitle_write(cues, n_cues, fmt, out);
        asr_subtitle_cues_free(cues, n_cues);
        free(w);
    }
}

static bool parse_subs(asr_http_req_t *req, asr_subtitle_opts_t *subs) {
    static const char *names[] = {"max_line_width", "max_line_count", "max_words_per_line"};
    int *dst[] = {&subs->max_line_width, &subs->max_line_count, &subs->max_words_per_line};
    for (int i = 0; i < 3; i++) {
        const char *v = asr_http_req_query(req, names[i]);
        if (!v)
            continue;
        char *end;
        long x = strtol(v, &end, 10);
        if (!*v || *end || x < 1 || x > 10000) {
            asr_http_respond_error(req, 400, names[i], "invalid_value",
                                   "%s must be an integer from 1 to 10000", names[i]);
            return false;
        }
        *dst[i] = (int)x;
    }
    return true;
}

void asr__api_recording_transcript(asr_http_req_t *req, void *ud) {
    asr_api_t *api = ud;
    int64_t rec_id;
    if (!path_id(req, &rec_id))
        return;
    const char *f = asr_http_req_query(req, "format");
    int fmt = f ? asr_format_parse(f) : ASR_FMT_TXT;
    if (fmt < 0 || fmt == ASR_FMT_VERBOSE_JSON) {
        asr_http_respond_error(req, 400, "format", "invalid_value",
                               "format must be txt, json, srt or vtt, not '%.40s'", f);
        return;
    }
    asr_subtitle_opts_t subs = {0};
    if (!parse_subs(req, &subs))
        return;
    asr_store_recording_t rec;
    asr_err_t e = asr_store_recording_get(api->store, rec_id, &rec);
    if (e != ASR_OK) {
        store_error(req, api, e);
        return;
    }
    asr_store_recording_clear(&rec);
    asr_store_job_t *v = NULL, job = {0};
    size_t n = 0;
    e = asr_store_job_list(api->store, rec_id, ASR_STORE_JOB_DONE, 0, 1, &v, &n);
    if (e == ASR_OK && n == 1)
        e = asr_store_job_get(api->store, v[0].id, &job);
    asr_store_jobs_free(v, n);
    if (e != ASR_OK) {
        store_error(req, api, e);
        return;
    }
    json_t *doc = job.result_json ? json_loads(job.result_json, 0, NULL) : NULL;
    if (!doc) {
        asr_store_job_clear(&job);
        asr_http_respond_error(req, 404, "id", "transcript_not_ready",
                               "recording %lld has no finished transcription yet",
                               (long long)rec_id);
        return;
    }
    static const char *ctypes[] = {[ASR_FMT_TXT] = "text/plain; charset=utf-8",
                                   [ASR_FMT_JSON] = "application/json",
                                   [ASR_FMT_VERBOSE_JSON] = "application/json",
                                   [ASR_FMT_SRT] = "text/plain; charset=utf-8",
                                   [ASR_FMT_VTT] = "text/vtt; charset=utf-8"};
    asr_buf_t b;
    asr_buf_init(&b);
    render(doc, job.result_json, (asr_format_t)fmt, &subs, &b);
    json_decref(doc);
    char jid[32];
    snprintf(jid, sizeof jid, "%lld", (long long)job.id);
    asr_http_set_header(req, "X-Asrd-Job", jid);
    if (job.model_used)
        asr_http_set_header(req, "X-Asrd-Model", job.model_used);
    asr_store_job_clear(&job);
    asr_http_respond(req, 200, ctypes[fmt], b.data ? b.data : "", b.len);
    asr_buf_free(&b);
}

/* ---- GET /api/nodes ---- */

void asr__api_nodes(asr_http_req_t *req, void *ud) {
    asr_api_t *api = ud;
    asr_store_node_t *v = NULL;
    size_t n = 0;
    int64_t now = 0;
    asr_err_t e = asr_store_node_list(api->store, &v, &n);
    if (e == ASR_OK)
        e = asr_store_now_ms(api->store, &now);
    if (e != ASR_OK) {
        asr_store_nodes_free(v, n);
        store_error(req, api, e);
        return;
    }
    asr_jobs_t *jobs = atomic_load(&api->jobs);
    double stale = 3.0 * api->cfg->heartbeat_seconds;
    json_t *data = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_object();
        double age = (double)(now - v[i].heartbeat_at) / 1e3;
        json_object_set_new(o, "id", json_string(v[i].id));
        json_object_set_new(o, "heartbeat_at", json_integer(v[i].heartbeat_at));
        json_object_set_new(o, "age_s", json_real(round(age * 1000) / 1000));
        json_object_set_new(o, "alive", json_boolean(age < stale));
        json_object_set_new(o, "capacity", json_integer(v[i].capacity));
        json_t *info = v[i].info_json ? json_loads(v[i].info_json, 0, NULL) : NULL;
        if (json_is_object(info))
            json_object_update_missing(o, info);
        json_decref(info);
        json_object_set_new(o, "self",
                            json_boolean(jobs && !strcmp(v[i].id, asr_jobs_node_id(jobs))));
        json_array_append_new(data, o);
    }
    asr_store_nodes_free(v, n);
    json_t *root = json_object();
    json_object_set_new(root, "object", json_string("list"));
    json_object_set_new(root, "data", data);
    asr__api_respond_json(req, 200, root);
}
