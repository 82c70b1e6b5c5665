/* api: live job events for pages that show many jobs, and the tokens that open event streams.
 *
 * GET /api/events is one server-sent-event stream of every job's changes (the API keys carry no
 * user, so "every job" is what one key sees): a page listing many recordings holds one
 * connection, not one per job (a browser allows 6 per origin over HTTP/1.1), and sees jobs that
 * others start. Like GET /api/jobs/{id}/events it reads the store every 250 ms (a job may run on
 * another node) and writes `event: state` (a job seen for the first time, or its state or
 * attempts changed; the first events are the jobs queued or running when the stream opens),
 * `event: progress` (its progress changed) and `event: deleted` ({"id", "object": "job"}: the
 * job was removed with its recording); each data: is the job. It never ends by itself.
 *
 * A poll: (1) jobs newer than the newest seen (ids grow), whatever their state, oldest first:
 * that catches jobs that started and ended between two polls; (2) the queued and running jobs:
 * a change of one already known, or a known job made active again (retry); (3) the jobs active
 * at the last poll that are no longer: their end. Jobs newer than the newest seen in (1) are
 * left to the next poll's (1), so none is reported out of order or twice.
 *
 * POST /api/events/token trades the request's API key for a short-lived token
 * (asr_http_token_issue): EventSource cannot send the Authorization header, so the UI opens
 * /api/events?token=… (ASR_HTTP_ROUTE_TOKEN routes only). */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_int.h"

#define TOKEN_TTL_S 60 /* long enough to open a stream; an open stream outlives it */
#define ACTIVE_MAX 500 /* queued or running jobs followed per state */
#define PAGE 100

typedef struct {
    int64_t id;
    int state, attempts;
    double progress;
} seen_t;

typedef struct {
    asr_api_sse_t sse; /* first */
    int64_t max_id;    /* the newest job id reported */
    seen_t *known;     /* jobs active at the last poll, as last reported */
    size_t n_known;
} evs_t;

static void emit_job(evs_t *s, const char *event, const asr_store_job_t *j) {
    json_t *o = asr__api_job_json(j);
    asr__api_sse_event(&s->sse, event, o);
    json_decref(o);
}

static bool active(int state) {
    return state == ASR_STORE_JOB_QUEUED || state == ASR_STORE_JOB_RUNNING;
}

static seen_t *find(seen_t *v, size_t n, int64_t id) {
    for (size_t i = 0; i < n; i++)
        if (v[i].id == id)
            return &v[i];
    return NULL;
}

static void push(seen_t **v, size_t *n, size_t *cap, const asr_store_job_t *j) {
    if (*n == *cap) {
        *cap = *cap ? 2 * *cap : 16;
        *v = asr_xrealloc(*v, *cap * sizeof **v);
    }
    (*v)[(*n)++] = (seen_t){j->id, (int)j->state, j->attempts, j->progress};
}

/* Reports j against what was last reported of it (`was`, NULL: never). */
static void report(evs_t *s, const asr_store_job_t *j, const seen_t *was) {
    if (!was || was->state != (int)j->state || was->attempts != j->attempts)
        emit_job(s, "state", j);
    else if (fabs(was->progress - j->progress) > 1e-9)
        emit_job(s, "progress", j);
}

/* (1) Jobs newer than max_id, oldest first; the active ones join `cand`. False: the store failed
 * (nothing changed: the next poll tries again). */
static bool poll_new(evs_t *s, seen_t **cand, size_t *n_cand, size_t *cap, bool first) {
    asr_store_job_t *all = NULL;
    size_t n_all = 0;
    for (int off = 0;; off += PAGE) {
        asr_store_job_t *v = NULL;
        size_t n = 0;
        if (asr_store_job_list(s->sse.api->store, 0, -1, off, first ? 1 : PAGE, &v, &n) != ASR_OK) {
            asr_store_jobs_free(all, n_all);
            return false;
        }
        size_t keep = 0;
        while (keep < n && v[keep].id > s->max_id)
            keep++;
        all = asr_xrealloc(all, (n_all + keep) * sizeof *all + 1);
        memcpy(all + n_all, v, keep * sizeof *v);
        n_all += keep;
        for (size_t i = keep; i < n; i++)
            asr_store_job_clear(&v[i]);
        free(v);
        if (first || keep < n || n < PAGE)
            break;
    }
    if (first) { /* the stream starts from now: what is active is reported by (2) */
        if (n_all)
            s->max_id = all[0].id;
        asr_store_jobs_free(all, n_all);
        return true;
    }
    for (size_t i = n_all; i-- > 0;) {
        emit_job(s, "state", &all[i]);
        if (active((int)all[i].state))
            push(cand, n_cand, cap, &all[i]);
    }
    if (n_all)
        s->max_id = all[0].id;
    asr_store_jobs_free(all, n_all);
    return true;
}

/* (3) A job active when last reported and not active now: its end, or its removal. */
static void report_gone(evs_t *s, const seen_t *was) {
    asr_store_job_t j;
    asr_err_t e = asr_store_job_get(s->sse.api->store, was->id, &j);
    if (e == ASR_ERR_NOT_FOUND) {
        json_t *o = json_object();
        json_object_set_new(o, "id", json_integer(was->id));
        json_object_set_new(o, "object", json_string("job"));
        asr__api_sse_event(&s->sse, "deleted", o);
        json_decref(o);
    } else if (e == ASR_OK) {
        report(s, &j, was);
        asr_store_job_clear(&j);
    }
}

static void events_poll(evs_t *s, bool first) {
    seen_t *cand = NULL; /* known jobs, then the new active ones */
    size_t n_cand = s->n_known, cap = s->n_known;
    if (n_cand) {
        cand = asr_xmalloc(n_cand * sizeof *cand);
        memcpy(cand, s->known, n_cand * sizeof *cand);
    }
    if (!poll_new(s, &cand, &n_cand, &cap, first)) {
        free(cand);
        return;
    }
    /* (2) the active jobs now */
    seen_t *now = NULL;
    size_t n_now = 0, cap_now = 0;
    static const int states[] = {ASR_STORE_JOB_QUEUED, ASR_STORE_JOB_RUNNING};
    for (int k = 0; k < 2; k++) {
        asr_store_job_t *v = NULL;
        size_t n = 0;
        if (asr_store_job_list(s->sse.api->store, 0, states[k], 0, ACTIVE_MAX, &v, &n) != ASR_OK) {
            free(cand);
            free(now);
            return;
        }
        for (size_t i = n; i-- > 0;) {
            if (v[i].id > s->max_id || find(now, n_now, v[i].id))
                continue; /* newer than (1) saw: the next poll; or moved between the lists */
            report(s, &v[i], find(cand, n_cand, v[i].id));
            push(&now, &n_now, &cap_now, &v[i]);
        }
        asr_store_jobs_free(v, n);
    }
    for (size_t i = 0; i < n_cand; i++)
        if (!find(now, n_now, cand[i].id))
            report_gone(s, &cand[i]);
    free(cand);
    free(s->known);
    s->known = now;
    s->n_known = n_now;
}

static void events_poll_next(asr_api_sse_t *sse) { events_poll((evs_t *)sse, false); }

static void events_release(asr_api_sse_t *sse) { free(((evs_t *)sse)->known); }

void asr__api_events(asr_http_req_t *req, void *ud) {
    asr_api_t *api = ud;
    evs_t *s = asr_xcalloc(1, sizeof *s);
    asr__api_sse_init(&s->sse, api, req, events_poll_next, events_release);
    /* a comment first, so the client sees the stream open at once even with nothing active */
    asr_buf_puts(&s->sse.out, ": asrd job events\n\n");
    events_poll(s, true);
    asr__api_sse_respond(&s->sse);
}

void asr__api_events_token(asr_http_req_t *req, void *ud) {
    (void)ud;
    char tok[ASR_HTTP_TOKEN_MAX];
    int64_t exp = 0;
    if (asr_http_token_issue(req, TOKEN_TTL_S, tok, &exp) != ASR_OK) {
        asr_http_respond_error(req, 503, NULL, "token_unavailable",
                               "could not make an event token");
        return;
    }
    json_t *o = json_object();
    json_object_set_new(o, "object", json_string("events_token"));
    json_object_set_new(o, "token", json_string(tok));
    json_object_set_new(o, "expires_at", json_integer(exp));
    json_object_set_new(o, "expires_in", json_integer(TOKEN_TTL_S));
    asr_http_set_header(req, "Cache-Control", "no-store");
    asr__api_respond_json(req, 200, o);
}
