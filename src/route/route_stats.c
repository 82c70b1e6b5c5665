/* route: what the router records of its attempts, for an operator: per backend the attempts, the
 * failed ones by class (asr_route_fail_class), the last error and the failovers away from it in
 * the last hour; per pair of backends the failovers from one to the other; the most recent
 * failovers with the backend's message and what asrd did instead. Exposed as Prometheus metrics
 * (GET /metrics) and as JSON for the status page (GET /api/ps).
 *
 * Invariants: every counter lives under the router's mu; per-backend records travel with the
 * backend across reloads (route.c copies them by config id); label sets stay bounded (backends
 * are the table's rows, at most ASR__ROUTE_PAIRS_MAX from -> to pairs). A failover is counted
 * once per failed attempt of a request, to the backend that finally served it ("none" when no
 * backend did). */
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "route/route_int.h"

static int64_t wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The monotonic minute number: the per-minute failover counts age out with it. */
static int64_t minute_now(void) { return (int64_t)(asr_now_s() / 60.0); }

void asr__route_note_failure(asr__route_backend_t *b, const asr__route_failed_t *f) {
    asr__route_stats_t *st = &b->st;
    if ((unsigned)f->cls < ASR_ROUTE_FAIL_N)
        st->n_fail[f->cls]++;
    st->last_at_ms = wall_ms();
    st->last_class = f->cls;
    st->last_status = f->status;
    snprintf(st->last_msg, sizeof st->last_msg, "%s", f->msg);
}

static void count_pair(asr__route_failovers_t *fo, const char *from, const char *to) {
    int i = 0;
    while (i < fo->n_pairs && (strcmp(fo->pairs[i].from, from) || strcmp(fo->pairs[i].to, to)))
        i++;
    if (i == fo->n_pairs) {
        if (fo->n_pairs == ASR__ROUTE_PAIRS_MAX)
            return; /* bounded label set: a 65th pair is not counted */
        fo->n_pairs++;
        snprintf(fo->pairs[i].from, sizeof fo->pairs[i].from, "%s", from);
        snprintf(fo->pairs[i].to, sizeof fo->pairs[i].to, "%s", to);
        fo->pairs[i].n = 0;
    }
    fo->pairs[i].n++;
}

static void count_minute(asr__route_stats_t *st, int64_t minute) {
    int k = (int)(minute % 60);
    if (st->fo_minute[k] != minute) {
        st->fo_minute[k] = minute;
        st->fo_count[k] = 0;
    }
    st->fo_count[k]++;
}

void asr__route_note_failovers(asr_router_t *r, const asr__route_failed_t *f, int n,
                               const char *to) {
    if (n <= 0)
        return;
    int64_t at = wall_ms(), minute = minute_now();
    pthread_mutex_lock(&r->mu);
    for (int i = 0; i < n; i++) {
        count_pair(&r->fo, f[i].name, to ? to : "none");
        for (int k = 0; k < r->n; k++)
            if (r->b[k].t.id == f[i].id)
                count_minute(&r->b[k].st, minute);
        asr__route_event_t *e = &r->fo.events[r->fo.next_event];
        r->fo.next_event = (r->fo.next_event + 1) % ASR__ROUTE_EVENTS_MAX;
        if (r->fo.n_events < ASR__ROUTE_EVENTS_MAX)
            r->fo.n_events++;
        e->at_ms = at;
        snprintf(e->from, sizeof e->from, "%s", f[i].name);
        snprintf(e->to, sizeof e->to, "%s", to ? to : "");
        e->cls = f[i].cls;
        e->status = f[i].status;
        snprintf(e->msg, sizeof e->msg, "%s", f[i].msg);
    }
    pthread_mutex_unlock(&r->mu);
}

static unsigned failovers_last_hour(const asr__route_stats_t *st, int64_t minute) {
    unsigned n = 0;
    for (int k = 0; k < 60; k++)
        if (st->fo_minute[k] > minute - 60 && st->fo_minute[k] <= minute)
            n += st->fo_count[k];
    return n;
}

/* A label value as the text format wants it: backslash, double quote and new line escaped. */
static void put_label(asr_buf_t *out, const char *v) {
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            asr_buf_printf(out, "\\%c", *v);
        else if (*v == '\n')
            asr_buf_puts(out, "\\n");
        else
            asr_buf_append(out, v, 1);
    }
}

/* One sample line `name{backend="…"<extra>} value`. */
static void backend_sample(asr_buf_t *out, const char *name, const char *backend, const char *extra,
                           uint64_t v) {
    asr_buf_printf(out, "%s{backend=\"", name);
    put_label(out, backend);
    asr_buf_printf(out, "\"%s} %llu\n", extra, (unsigned long long)v);
}

static int breaker_gauge(asr_route_breaker_state_t s) {
    return s == ASR_ROUTE_BREAKER_OPEN ? 2 : s == ASR_ROUTE_BREAKER_HALF_OPEN ? 1 : 0;
}

void asr_route_metrics_write(asr_router_t *r, asr_buf_t *out) {
    pthread_mutex_lock(&r->mu);
    double now = asr_now_s();
    asr_buf_puts(out, "# HELP asrd_backend_requests_total Attempts sent to each ASR backend.\n"
                      "# TYPE asrd_backend_requests_total counter\n");
    for (int k = 0; k < r->n; k++)
        backend_sample(out, "asrd_backend_requests_total", r->b[k].t.name, "", r->b[k].n_requests);
    asr_buf_puts(out, "# HELP asrd_backend_failures_total Attempts on each ASR backend that "
                      "failed over, by class.\n"
                      "# TYPE asrd_backend_failures_total counter\n");
    for (int k = 0; k < r->n; k++)
        for (int c = 0; c < ASR_ROUTE_FAIL_N; c++) {
            char extra[64];
            snprintf(extra, sizeof extra, ",class=\"%s\"", asr_route_fail_name(c));
            backend_sample(out, "asrd_backend_failures_total", r->b[k].t.name, extra,
                           r->b[k].st.n_fail[c]);
        }
    asr_buf_puts(out, "# HELP asrd_backend_failovers_total Requests that failed on one backend "
                      "and went on to another (to=\"none\": no backend served them).\n"
                      "# TYPE asrd_backend_failovers_total counter\n");
    for (int i = 0; i < r->fo.n_pairs; i++) {
        asr_buf_puts(out, "asrd_backend_failovers_total{from=\"");
        put_label(out, r->fo.pairs[i].from);
        asr_buf_puts(out, "\",to=\"");
        put_label(out, r->fo.pairs[i].to);
        asr_buf_printf(out, "\"} %llu\n", (unsigned long long)r->fo.pairs[i].n);
    }
    asr_buf_puts(out, "# HELP asrd_backend_breaker_state Breaker of each ASR backend: 0 closed, "
                      "1 half-open, 2 open.\n"
                      "# TYPE asrd_backend_breaker_state gauge\n");
    for (int k = 0; k < r->n; k++)
        backend_sample(out, "asrd_backend_breaker_state", r->b[k].t.name, "",
                       (uint64_t)breaker_gauge(asr_route_breaker_state(&r->b[k].br, now)));
    asr_buf_puts(out, "# HELP asrd_backend_breaker_opens_total Times each backend's breaker "
                      "opened.\n"
                      "# TYPE asrd_backend_breaker_opens_total counter\n");
    for (int k = 0; k < r->n; k++)
        backend_sample(out, "asrd_backend_breaker_opens_total", r->b[k].t.name, "",
                       r->b[k].br.n_opened);
    pthread_mutex_unlock(&r->mu);
}

static json_t *backend_json(const asr__route_backend_t *b, double now, int64_t minute) {
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer((json_int_t)b->t.id));
    json_object_set_new(o, "name", json_string(b->t.name));
    json_object_set_new(o, "kind", json_string(b->t.kind));
    json_object_set_new(
        o, "breaker",
        json_string(asr_route_breaker_state_name(asr_route_breaker_state(&b->br, now))));
    json_object_set_new(o, "consecutive_failures", json_integer(b->br.failures));
    json_object_set_new(o, "outstanding", json_integer(b->outstanding));
    json_object_set_new(o, "requests", json_integer((json_int_t)b->n_requests));
    uint64_t failed = 0;
    for (int c = 0; c < ASR_ROUTE_FAIL_N; c++)
        failed += b->st.n_fail[c];
    json_object_set_new(o, "failures", json_integer((json_int_t)failed));
    json_object_set_new(o, "breaker_opens", json_integer((json_int_t)b->br.n_opened));
    json_object_set_new(o, "failovers_last_hour",
                        json_integer(failovers_last_hour(&b->st, minute)));
    json_t *le = json_null();
    if (b->st.last_at_ms) {
        le = json_object();
        json_object_set_new(le, "at", json_integer((json_int_t)b->st.last_at_ms));
        json_object_set_new(le, "class", json_string(asr_route_fail_name(b->st.last_class)));
        json_object_set_new(le, "status", json_integer(b->st.last_status));
        json_object_set_new(le, "message", json_string(b->st.last_msg));
    }
    json_object_set_new(o, "last_error", le);
    return o;
}

static json_t *event_json(const asr__route_event_t *e) {
    json_t *o = json_object();
    json_object_set_new(o, "at", json_integer((json_int_t)e->at_ms));
    json_object_set_new(o, "from", json_string(e->from));
    json_object_set_new(o, "to", e->to[0] ? json_string(e->to) : json_null());
    json_object_set_new(o, "class", json_string(asr_route_fail_name(e->cls)));
    json_object_set_new(o, "status", json_integer(e->status));
    json_object_set_new(o, "message", json_string(e->msg));
    return o;
}

json_t *asr_route_status_json(asr_router_t *r) {
    json_t *bs = json_array(), *evs = json_array();
    pthread_mutex_lock(&r->mu);
    double now = asr_now_s();
    int64_t minute = minute_now();
    for (int k = 0; k < r->n; k++)
        json_array_append_new(bs, backend_json(&r->b[k], now, minute));
    for (int i = 1; i <= r->fo.n_events; i++) { /* newest first */
        int at = (r->fo.next_event - i + ASR__ROUTE_EVENTS_MAX) % ASR__ROUTE_EVENTS_MAX;
        json_array_append_new(evs, event_json(&r->fo.events[at]));
    }
    pthread_mutex_unlock(&r->mu);
    json_t *o = json_object();
    json_object_set_new(o, "backends", bs);
    json_object_set_new(o, "failovers", evs);
    return o;
}
