/* route: the router: the table of active backends (a copy of asr_configs), their breakers and
 * outstanding counts, the order a request tries them in, and the attempt loop with its log lines.
 * Remote attempts are in route_http.c, the policy (classifier, breaker) in route_policy.c, Test
 * connection and the health thread in route_health.c.
 *
 * Locking: r->mu guards the table (b, n) and every backend's counters and breaker. An attempt
 * works on a heap copy of its target taken under the lock and reports back by config id, so a
 * reload during an attempt is harmless. */
#include <curl/curl.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "route/route_int.h"

static pthread_once_t g_curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

/* The owned strings of each struct, by offset: freeing, copying and clearing walk one list, so
 * a string field added later is added once. */
static const size_t TARGET_STRS[] = {
    offsetof(asr__route_target_t, name),       offsetof(asr__route_target_t, kind),
    offsetof(asr__route_target_t, api_url),    offsetof(asr__route_target_t, api_key),
    offsetof(asr__route_target_t, model_name), offsetof(asr__route_target_t, aliases)};
static const size_t RESULT_STRS[] = {
    offsetof(asr_route_result_t, body), offsetof(asr_route_result_t, content_type),
    offsetof(asr_route_result_t, backend), offsetof(asr_route_result_t, kind),
    offsetof(asr_route_result_t, model)};
#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

static char **str_at(void *obj, size_t off) { return (char **)((char *)obj + off); }

/* Frees the strings at `offs` of `obj` and zeroes the whole struct (`size` bytes). */
static void clear_strings(void *obj, size_t size, const size_t *offs, size_t n) {
    for (size_t i = 0; i < n; i++)
        free(*str_at(obj, offs[i]));
    memset(obj, 0, size);
}

void asr__route_target_free(asr__route_target_t *t) {
    clear_strings(t, sizeof *t, TARGET_STRS, N_OF(TARGET_STRS));
}

void asr__route_target_copy(asr__route_target_t *dst, const asr__route_target_t *src) {
    *dst = *src;
    for (size_t i = 0; i < N_OF(TARGET_STRS); i++) {
        char **f = str_at(dst, TARGET_STRS[i]);
        *f = *f ? asr_xstrdup(*f) : NULL;
    }
}

void asr_route_result_clear(asr_route_result_t *r) {
    clear_strings(r, sizeof *r, RESULT_STRS, N_OF(RESULT_STRS));
}

/* A target from a stored config (and its key). */
asr_err_t asr__route_target_from_config(asr_store_t *s, const asr_store_config_t *c,
                                        asr__route_target_t *t) {
    memset(t, 0, sizeof *t);
    char *key = NULL;
    if (c->has_api_key) {
        asr_err_t e = asr_store_config_get_api_key(s, c->id, &key);
        if (e != ASR_OK)
            ASR_LOG(ASR_LOG_WARN, "msg=route_api_key_unreadable backend=\"%s\" error=\"%s\"",
                    c->name, asr_store_errmsg(s));
    }
    t->id = c->id;
    t->name = asr_xstrdup(c->name);
    t->kind = asr_xstrdup(c->kind);
    t->api_url = asr_xstrdup(c->api_url ? c->api_url : "");
    t->api_key = key ? asr_xstrdup(key) : NULL;
    t->model_name = asr_xstrdup(c->model_name ? c->model_name : "");
    t->aliases = asr_xstrdup(c->aliases ? c->aliases : "");
    t->allow_substitution = c->allow_model_substitution;
    t->timeout_ms = c->timeout_ms;
    t->priority = c->priority;
    t->max_parallel = c->max_parallel;
    t->is_default = c->is_default;
    asr_store_free(key);
    return ASR_OK;
}

asr_err_t asr_route_reload(asr_router_t *r) {
    asr_store_config_t *cs = NULL;
    size_t n = 0;
    int64_t version = -1; /* read first: a change during the list triggers one more reload */
    if (asr_store_configs_version(r->store, &version) != ASR_OK)
        version = -1;
    asr_err_t e = asr_store_config_list(r->store, true, &cs, &n);
    if (e != ASR_OK) {
        ASR_LOG(ASR_LOG_ERROR, "msg=route_reload_failed error=\"%s\"", asr_store_errmsg(r->store));
        return e;
    }
    asr__route_backend_t *nb = asr_xcalloc(n + 1, sizeof *nb);
    for (size_t i = 0; i < n; i++) {
        asr__route_target_from_config(r->store, &cs[i], &nb[i].t);
        asr_route_breaker_init(&nb[i].br, r->p.breaker_threshold, r->p.breaker_cooldown_s);
    }
    asr_store_configs_free(cs, n);
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < r->n; k++) {
            asr__route_backend_t *o = &r->b[k];
            if (o->t.id != nb[i].t.id)
                continue;
            nb[i].outstanding = o->outstanding;
            nb[i].n_requests = o->n_requests;
            nb[i].n_failures = o->n_failures;
            nb[i].st = o->st;
            if (!strcmp(o->t.kind, nb[i].t.kind) && !strcmp(o->t.api_url, nb[i].t.api_url))
                nb[i].br = o->br; /* same service: its history still holds */
        }
    asr__route_backend_t *old = r->b;
    int old_n = r->n;
    r->b = nb;
    r->n = (int)n;
    r->configs_version = version;
    pthread_mutex_unlock(&r->mu);
    for (int k = 0; k < old_n; k++)
        asr__route_target_free(&old[k].t);
    free(old);
    ASR_LOG(ASR_LOG_INFO, "msg=route_reload backends=%zu", n);
    return ASR_OK;
}

void asr__route_watch(asr_router_t *r) {
    int64_t v;
    if (asr_store_configs_version(r->store, &v) != ASR_OK)
        return;
    pthread_mutex_lock(&r->mu);
    bool moved = v != r->configs_version;
    pthread_mutex_unlock(&r->mu);
    if (moved) {
        ASR_LOG(ASR_LOG_INFO, "msg=route_configs_changed version=%lld", (long long)v);
        asr_route_reload(r);
    }
}

/* Creates the `local` config when the table is empty. Two nodes racing on one PostgreSQL: the
 * loser's insert fails on the unique name, which is fine. */
static asr_err_t ensure_local(asr_store_t *s) {
    asr_store_config_t *cs = NULL;
    size_t n = 0;
    asr_err_t e = asr_store_config_list(s, false, &cs, &n);
    asr_store_configs_free(cs, n);
    if (e != ASR_OK || n > 0)
        return e;
    asr_store_config_input_t in;
    asr_store_config_input_init(&in);
    in.name = "local";
    in.kind = "local";
    in.is_default = 1;
    in.is_active = 1;
    e = asr_store_config_create(s, &in, NULL);
    if (e == ASR_ERR_INVALID)
        return ASR_OK;
    if (e == ASR_OK)
        ASR_LOG(ASR_LOG_INFO, "msg=route_local_backend_created name=local");
    return e;
}

asr_err_t asr_route_create(const asr_route_params_t *p, asr_store_t *store, asr_router_t **out,
                           char *err, size_t errlen) {
    *out = NULL;
    pthread_once(&g_curl_once, curl_init_once);
    asr_router_t *r = asr_xcalloc(1, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
    asr_cond_init(&r->cv);
    r->store = store;
    r->p = *p;
    if (r->p.breaker_threshold < 1)
        r->p.breaker_threshold = 1;
    if (r->p.breaker_cooldown_s < 0)
        r->p.breaker_cooldown_s = 0;
    r->tmp_dir = asr_xstrdup(p->tmp_dir ? p->tmp_dir : "/tmp");
    r->p.tmp_dir = r->tmp_dir;
    asr_err_t e = ensure_local(store);
    if (e == ASR_OK)
        e = asr_route_reload(r);
    if (e != ASR_OK) {
        asr_errf(err, errlen, "asr backends: %s", asr_store_errmsg(store));
        asr_route_destroy(r);
        return e;
    }
    asr__route_health_start(r); /* health checks (when an interval is set) and the config watch */
    *out = r;
    return ASR_OK;
}

void asr_route_destroy(asr_router_t *r) {
    if (!r)
        return;
    asr__route_health_stop(r);
    for (int k = 0; k < r->n; k++)
        asr__route_target_free(&r->b[k].t);
    free(r->b);
    free(r->tmp_dir);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r);
}

void asr_route_set_local(asr_router_t *r, asr_route_local_cb cb, void *user_data) {
    pthread_mutex_lock(&r->mu);
    r->local_cb = cb;
    r->local_ud = user_data;
    pthread_mutex_unlock(&r->mu);
}

void asr_route_set_local_models(asr_router_t *r, asr_route_local_models_cb cb, void *user_data) {
    pthread_mutex_lock(&r->mu);
    r->local_models = cb;
    r->local_models_ud = user_data;
    pthread_mutex_unlock(&r->mu);
}

/* Whether the local engine has `model` (under r->mu; the callback is pure). */
static bool local_has(const asr_router_t *r, const char *model) {
    return !r->local_models || !model || !*model || r->local_models(r->local_models_ud, model);
}

/* What local row `t` runs for a request for `model` (under r->mu): its model_name; else the
 * client's model ("") when the engine has it; else (one of the row's aliases, or a substitution)
 * the engine's default model. */
static void local_run(const asr_router_t *r, const asr__route_target_t *t, const char *model,
                      char *run, size_t run_len) {
    const char *def = NULL;
    if (t->model_name && *t->model_name)
        def = t->model_name;
    else if (!local_has(r, model))
        def = r->local_models(r->local_models_ud, NULL);
    snprintf(run, run_len, "%s", def ? def : "");
}

/* The local backend requests use: the default local row, else the first (under r->mu); NULL when
 * none is active. *only: whether every active backend is local. */
static const asr__route_target_t *local_row(const asr_router_t *r, bool *only) {
    const asr__route_target_t *local = NULL;
    *only = true;
    for (int k = 0; k < r->n; k++) {
        if (strcmp(r->b[k].t.kind, "local"))
            *only = false;
        else if (!local || r->b[k].t.is_default)
            local = &r->b[k].t;
    }
    return local;
}

bool asr_route_local_only(asr_router_t *r, char *name, size_t name_len) {
    pthread_mutex_lock(&r->mu);
    bool only;
    const asr__route_target_t *local = local_row(r, &only);
    if (name && name_len)
        snprintf(name, name_len, "%s", local ? local->name : "local");
    pthread_mutex_unlock(&r->mu);
    return only;
}

bool asr_route_local_run_model(asr_router_t *r, const char *model, char *run, size_t run_len) {
    pthread_mutex_lock(&r->mu);
    bool only;
    const asr__route_target_t *local = local_row(r, &only);
    bool serves =
        !r->n || (local && asr_route_row_serves(local->kind, local->model_name, local->aliases,
                                                model, local_has(r, model)));
    run[0] = 0;
    if (local && serves)
        local_run(r, local, model, run, run_len);
    pthread_mutex_unlock(&r->mu);
    return serves;
}

bool asr_route_serves(asr_router_t *r, const char *model) {
    pthread_mutex_lock(&r->mu);
    bool serves = !r->n;
    for (int k = 0; k < r->n && !serves; k++) {
        const asr__route_target_t *t = &r->b[k].t;
        serves = asr_route_row_serves(t->kind, t->model_name, t->aliases, model,
                                      !strcmp(t->kind, "local") && local_has(r, model));
    }
    pthread_mutex_unlock(&r->mu);
    return serves;
}

/* Calls fn for `name` unless `seen` ("\n"-separated) has it, and adds it. */
static void model_once(asr_buf_t *seen, const char *name, size_t len, const char *backend,
                       void (*fn)(void *, const char *, const char *), void *ud) {
    if (!len || len > 512)
        return;
    char key[520];
    snprintf(key, sizeof key, "\n%.*s\n", (int)len, name);
    if (strstr(seen->data, key))
        return;
    asr_buf_printf(seen, "%s", key + 1);
    key[len + 1] = 0;
    fn(ud, key + 1, backend);
}

void asr_route_each_model(asr_router_t *r,
                          void (*fn)(void *ud, const char *model, const char *backend), void *ud) {
    pthread_mutex_lock(&r->mu);
    asr__route_target_t *v = asr_xcalloc((size_t)r->n + 1, sizeof *v);
    int n = r->n;
    for (int k = 0; k < n; k++)
        asr__route_target_copy(&v[k], &r->b[k].t); /* fn runs without the lock */
    pthread_mutex_unlock(&r->mu);
    asr_buf_t seen;
    asr_buf_init(&seen);
    asr_buf_append(&seen, "\n", 1);
    for (int i = 0; i < n; i++) {
        model_once(&seen, v[i].model_name, strlen(v[i].model_name), v[i].name, fn, ud);
        for (const char *p = v[i].aliases; *p;) {
            const char *comma = strchr(p, ',');
            size_t len = comma ? (size_t)(comma - p) : strlen(p);
            const char *a = p;
            while (len && (*a == ' ' || *a == '\t')) {
                a++;
                len--;
            }
            while (len && (a[len - 1] == ' ' || a[len - 1] == '\t'))
                len--;
            model_once(&seen, a, len, v[i].name, fn, ud);
            p = comma ? comma + 1 : p + strlen(p);
        }
    }
    asr_buf_free(&seen);
    for (int i = 0; i < n; i++)
        asr__route_target_free(&v[i]);
    free(v);
}

static asr__route_backend_t *find(asr_router_t *r, int64_t id) {
    for (int k = 0; k < r->n; k++)
        if (r->b[k].t.id == id)
            return &r->b[k];
    return NULL;
}

/* The order of a request for `model`: default first, then by priority, then fewest outstanding,
 * then id; the backends that serve the model before those that may substitute theirs, the others
 * left out (asr_route_model_order). Copies of the targets (owned by the caller); a local copy's
 * model_name is what it runs (local_run). An empty table routes to an implicit local.
 * *n_serving: how many of them serve the model. */
static void candidates(asr_router_t *r, const char *model, asr__route_target_t **out, int *n,
                       int *n_serving) {
    pthread_mutex_lock(&r->mu);
    int *idx = asr_xcalloc((size_t)r->n + 1, sizeof *idx);
    for (int k = 0; k < r->n; k++)
        idx[k] = k;
    for (int i = 1; i < r->n; i++) /* insertion sort: tables are small */
        for (int j = i; j > 0; j--) {
            const asr__route_backend_t *a = &r->b[idx[j - 1]], *b = &r->b[idx[j]];
            int c = (int)b->t.is_default - (int)a->t.is_default;
            if (!c)
                c = a->t.priority - b->t.priority;
            if (!c)
                c = a->outstanding - b->outstanding;
            if (!c)
                c = a->t.id < b->t.id ? -1 : 1;
            if (c <= 0)
                break;
            int tmp = idx[j];
            idx[j] = idx[j - 1];
            idx[j - 1] = tmp;
        }
    bool *serves = asr_xcalloc((size_t)r->n + 1, sizeof *serves);
    bool *subst = asr_xcalloc((size_t)r->n + 1, sizeof *subst);
    int *order = asr_xcalloc((size_t)r->n + 1, sizeof *order);
    for (int k = 0; k < r->n; k++) {
        const asr__route_target_t *t = &r->b[idx[k]].t;
        serves[k] = asr_route_row_serves(t->kind, t->model_name, t->aliases, model,
                                         !strcmp(t->kind, "local") && local_has(r, model));
        subst[k] = t->allow_substitution;
    }
    int m = asr_route_model_order(serves, subst, r->n, order, n_serving);
    *n = r->n ? m : 1;
    *out = asr_xcalloc((size_t)*n + 1, sizeof **out);
    if (!r->n) {
        *n_serving = 1;
        (*out)[0] = (asr__route_target_t){.name = asr_xstrdup("local"),
                                          .kind = asr_xstrdup("local"),
                                          .api_url = asr_xstrdup(""),
                                          .model_name = asr_xstrdup(""),
                                          .is_default = true};
    }
    for (int k = 0; r->n && k < m; k++) {
        asr__route_target_t *t = &(*out)[k];
        asr__route_target_copy(t, &r->b[idx[order[k]]].t);
        if (!strcmp(t->kind, "local")) {
            char run[ASR_STORE_NAME_MAX * 2 + 1];
            local_run(r, t, model, run, sizeof run);
            free(t->model_name);
            t->model_name = asr_xstrdup(run);
        }
    }
    free(idx);
    free(serves);
    free(subst);
    free(order);
    pthread_mutex_unlock(&r->mu);
}

static void free_targets(asr__route_target_t *v, int n) {
    for (int i = 0; i < n; i++)
        asr__route_target_free(&v[i]);
    free(v);
}

/* One attempt on `t` (no breaker): fills `out` when the attempt answered (OK or FINAL), else
 * writes why it failed to `why` (the backend's own message, readable as is) and its class to
 * *cls. *hint gets a Retry-After hint (seconds), *counts whether the failure speaks of the
 * backend's health (a local capacity refusal does not). */
static asr_route_outcome_t run_attempt(const asr__route_target_t *t, const asr_route_opts_t *o,
                                       asr_route_local_cb lcb, void *lud, asr_route_result_t *out,
                                       char *why, size_t why_len, int *hint, bool *counts,
                                       asr_route_fail_t *cls) {
    double t0 = asr_now_s();
    asr_route_outcome_t oc;
    *hint = 0;
    *counts = true;
    int status = 0;
    const char *net = "ok";
    if (!strcmp(t->kind, "local")) {
        asr_route_result_t lr = {0};
        asr_err_t e = lcb ? lcb(lud, o, t->model_name && *t->model_name ? t->model_name : NULL, &lr)
                          : ASR_ERR_UNSUPPORTED;
        status = lr.status;
        if (e != ASR_OK) {
            oc = ASR_ROUTE_OUTCOME_FAILOVER;
            *cls = ASR_ROUTE_FAIL_UNAVAILABLE;
            snprintf(why, why_len, "the local engine is not available (%s)", asr_strerror(e));
        } else {
            oc = asr_route_classify(ASR_ROUTE_NET_OK, lr.status, lr.body, lr.body_len);
            *counts = !lr.overloaded;
            *hint = lr.retry_after;
            *cls = lr.overloaded ? ASR_ROUTE_FAIL_BUSY
                                 : asr_route_fail_class(ASR_ROUTE_NET_OK, lr.status, lr.error,
                                                        strlen(lr.error));
            if (oc == ASR_ROUTE_OUTCOME_FAILOVER)
                snprintf(why, why_len, "HTTP %d%s%.300s", lr.status, lr.error[0] ? ": " : "",
                         lr.error);
        }
        if (oc != ASR_ROUTE_OUTCOME_FAILOVER) {
            asr_route_result_clear(out);
            *out = lr;
            out->local = true;
            if (!out->model && t->model_name && *t->model_name)
                out->model = asr_xstrdup(t->model_name);
        } else {
            asr_route_result_clear(&lr);
            out->status = status; /* for Test connection, as for remote backends */
        }
    } else {
        asr__route_reply_t rep;
        asr__route_remote(t, o, &rep);
        status = rep.status;
        net = asr_route_net_name(rep.net);
        oc = asr_route_classify(rep.net, rep.status, rep.body.data, rep.body.len);
        if (rep.status == 429 || rep.status == 503)
            *hint = rep.retry_after;
        if (oc == ASR_ROUTE_OUTCOME_FAILOVER) {
            *cls = asr_route_fail_class(rep.net, rep.status, rep.body.data, rep.body.len);
            char msg[300];
            asr_route_error_message(rep.body.data, rep.body.len, msg, sizeof msg);
            if (rep.net != ASR_ROUTE_NET_OK)
                snprintf(why, why_len, "%s: %s", net, rep.neterr);
            else
                snprintf(why, why_len, "HTTP %d%s: %s", rep.status,
                         *cls == ASR_ROUTE_FAIL_OOM ? " (out of memory)" : "", msg);
            out->status = status; /* for Test connection; the loop's verdict replaces it */
        } else {
            asr_route_result_clear(out);
            out->status = rep.net == ASR_ROUTE_NET_CANCELLED ? 499 : rep.status;
            out->body_len = rep.body.len;
            out->body = asr_buf_steal(&rep.body);
            out->content_type = rep.ctype[0] ? asr_xstrdup(rep.ctype) : NULL;
            out->model = asr_xstrdup(rep.model_hdr[0]                  ? rep.model_hdr
                                     : t->model_name && *t->model_name ? t->model_name
                                     : o->model && *o->model           ? o->model
                                                                       : "whisper-1");
            out->retry_after = *hint;
        }
        asr__route_reply_free(&rep);
    }
    double ms = (asr_now_s() - t0) * 1000.0;
    char logwhy[ASR__ROUTE_MSG_MAX]; /* the message in a quoted log field: no quote, no line */
    snprintf(logwhy, sizeof logwhy, "%s", oc == ASR_ROUTE_OUTCOME_FAILOVER ? why : "");
    for (char *p = logwhy; *p; p++)
        if (*p == '\n' || *p == '\r' || *p == '"')
            *p = *p == '"' ? '\'' : ' ';
    if (oc != ASR_ROUTE_OUTCOME_FAILOVER) {
        free(out->backend);
        free(out->kind);
        out->backend = asr_xstrdup(t->name);
        out->kind = asr_xstrdup(t->kind);
        out->config_id = t->id;
        out->latency_ms = ms;
    }
    ASR_LOG(oc == ASR_ROUTE_OUTCOME_FAILOVER ? ASR_LOG_WARN : ASR_LOG_INFO,
            "msg=route_attempt req=%s backend=\"%s\" kind=%s outcome=%s status=%d net=%s "
            "ms=%.0f%s%s%s",
            o->req_id ? o->req_id : "-", t->name, t->kind,
            oc == ASR_ROUTE_OUTCOME_OK      ? "ok"
            : oc == ASR_ROUTE_OUTCOME_FINAL ? "final"
                                            : "failover",
            status, net, ms, oc == ASR_ROUTE_OUTCOME_FAILOVER ? " error=\"" : "", logwhy,
            oc == ASR_ROUTE_OUTCOME_FAILOVER ? "\"" : "");
    return oc;
}

asr_err_t asr__route_attempt_one(asr_router_t *r, const asr__route_target_t *t,
                                 const asr_route_opts_t *o, asr_route_result_t *out) {
    pthread_mutex_lock(&r->mu);
    asr_route_local_cb lcb = r->local_cb;
    void *lud = r->local_ud;
    pthread_mutex_unlock(&r->mu);
    char why[ASR__ROUTE_MSG_MAX] = "";
    int hint;
    bool counts;
    asr_route_fail_t cls;
    memset(out, 0, sizeof *out);
    asr_route_outcome_t oc =
        run_attempt(t, o, lcb, lud, out, why, sizeof why, &hint, &counts, &cls);
    out->n_attempts = 1;
    if (oc == ASR_ROUTE_OUTCOME_FAILOVER) {
        snprintf(out->error, sizeof out->error, "%s", why);
        return ASR_ERR_AGAIN;
    }
    return ASR_OK;
}

/* Takes the breaker of config `id` for an attempt (or not); always true for `force`. */
static bool acquire(asr_router_t *r, int64_t id, bool force, bool *probe) {
    pthread_mutex_lock(&r->mu);
    asr__route_backend_t *b = find(r, id);
    /* a backend at its max_parallel is skipped like an open breaker (tried last if need be) */
    bool ok = force || !b ||
              ((b->t.max_parallel <= 0 || b->outstanding < b->t.max_parallel) &&
               asr_route_breaker_acquire(&b->br, asr_now_s(), probe));
    if (ok && b) {
        b->outstanding++;
        b->n_requests++;
    }
    pthread_mutex_unlock(&r->mu);
    return ok;
}

/* Ends an attempt on config `id`: its breaker, and (failed: f != NULL) what route_stats.c
 * records of failures. */
static void release(asr_router_t *r, int64_t id, asr_route_outcome_t oc, bool counts, int hint,
                    bool probe, const asr__route_failed_t *f) {
    pthread_mutex_lock(&r->mu);
    asr__route_backend_t *b = find(r, id);
    if (b) {
        double now = asr_now_s();
        b->outstanding--;
        int res = oc == ASR_ROUTE_OUTCOME_OK      ? 1
                  : oc == ASR_ROUTE_OUTCOME_FINAL ? 0
                  : counts                        ? -1
                                                  : 0;
        if (res < 0)
            b->n_failures++;
        if (f)
            asr__route_note_failure(b, f);
        asr_route_breaker_state_t before = b->br.state;
        asr_route_breaker_release(&b->br, now, res, probe);
        if (hint > 0)
            asr_route_breaker_hint(&b->br, now, hint);
        if (b->br.state != before)
            ASR_LOG(ASR_LOG_WARN, "msg=route_breaker backend=\"%s\" state=%s failures=%d",
                    b->t.name, asr_route_breaker_state_name(b->br.state), b->br.failures);
    }
    pthread_mutex_unlock(&r->mu);
}

static bool cancelled(const asr_route_opts_t *o) {
    return o->cancel_cb && o->cancel_cb(o->cancel_user_data);
}

asr_err_t asr_route_transcribe(asr_router_t *r, const asr_route_opts_t *o,
                               asr_route_local_cb local_cb, void *local_ud,
                               asr_route_result_t *out) {
    memset(out, 0, sizeof *out);
    if (!local_cb) {
        pthread_mutex_lock(&r->mu);
        local_cb = r->local_cb;
        local_ud = r->local_ud;
        pthread_mutex_unlock(&r->mu);
    }
    asr__route_target_t *cand;
    int n, n_serving;
    candidates(r, o->model, &cand, &n, &n_serving);
    if (n_serving == 0) {
        out->status = 404;
        snprintf(out->error, sizeof out->error,
                 "The model '%.100s' is not served by any active ASR backend (see GET /v1/models).",
                 o->model);
        free_targets(cand, n);
        return ASR_ERR_NOT_FOUND;
    }
    bool *skipped = asr_xcalloc((size_t)n, sizeof *skipped);
    asr__route_failed_t *failed = asr_xcalloc((size_t)n, sizeof *failed); /* one try each */
    int n_failed = 0, n_tried = 0;
    char tried[sizeof out->backends] = ""; /* a local answer replaces *out: kept aside */
    asr_buf_t errs;
    asr_buf_init(&errs);
    asr_err_t rc = ASR_ERR_AGAIN;
    int min_hint = 0;
    /* pass 0: breakers decide; pass 1: whatever they kept aside, when nothing else answered */
    for (int pass = 0; pass < 2 && rc == ASR_ERR_AGAIN; pass++) {
        for (int i = 0; i < n && rc == ASR_ERR_AGAIN; i++) {
            if (pass == 1 && !skipped[i])
                continue;
            if (cancelled(o)) {
                rc = ASR_ERR_CANCELLED;
                out->status = 499;
                break;
            }
            bool probe = false;
            if (!acquire(r, cand[i].id, pass == 1, &probe)) {
                skipped[i] = true;
                continue;
            }
            if (i >= n_serving)
                ASR_LOG(ASR_LOG_INFO,
                        "msg=route_model_substituted req=%s backend=\"%s\" requested=\"%s\"",
                        o->req_id ? o->req_id : "-", cand[i].name, o->model ? o->model : "");
            asr__route_failed_t *f = &failed[n_failed];
            int hint;
            bool counts;
            asr_route_outcome_t oc = run_attempt(&cand[i], o, local_cb, local_ud, out, f->msg,
                                                 sizeof f->msg, &hint, &counts, &f->cls);
            size_t tl = strlen(tried);
            snprintf(tried + tl, sizeof tried - tl, "%s%s", n_tried++ ? "," : "", cand[i].name);
            bool failover = oc == ASR_ROUTE_OUTCOME_FAILOVER;
            if (failover) {
                f->id = cand[i].id;
                f->name = cand[i].name;
                f->status = out->status;
                n_failed++;
            }
            release(r, cand[i].id, oc, counts, hint, probe, failover ? f : NULL);
            if (failover) {
                const char *why = f->msg;
                asr_buf_printf(&errs, "%s%s: %s", errs.len ? "; " : "", cand[i].name, why);
                if (hint > 0 && (!min_hint || hint < min_hint))
                    min_hint = hint;
                continue;
            }
            rc = out->status == 499 ? ASR_ERR_CANCELLED : ASR_OK;
        }
    }
    out->n_attempts = n_tried;
    snprintf(out->backends, sizeof out->backends, "%s", tried);
    if (rc != ASR_ERR_CANCELLED)
        asr__route_note_failovers(r, failed, n_failed, rc == ASR_OK ? out->backend : NULL);
    free(failed);
    if (rc == ASR_ERR_AGAIN) {
        out->status = 503;
        out->retry_after = min_hint > 0 ? min_hint : 1;
        snprintf(out->error, sizeof out->error, "no ASR backend could serve the request (%s)",
                 errs.len ? errs.data : "none is active");
    }
    asr_buf_free(&errs);
    free(skipped);
    free_targets(cand, n);
    return rc;
}

asr_err_t asr_route_transcribe_file(asr_router_t *r, const char *path, const asr_route_opts_t *opts,
                                    asr_route_result_t *out) {
    asr_route_opts_t o = {0};
    if (opts)
        o = *opts;
    o.path = path;
    o.response_format = "verbose_json";
    return asr_route_transcribe(r, &o, NULL, NULL, out);
}

void asr_route_backend_status(asr_router_t *r, int64_t id, asr_route_backend_status_t *out) {
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&r->mu);
    asr__route_backend_t *b = find(r, id);
    if (b) {
        out->loaded = true;
        out->breaker = asr_route_breaker_state(&b->br, asr_now_s());
        out->consecutive_failures = b->br.failures;
        out->outstanding = b->outstanding;
        out->n_requests = b->n_requests;
        out->n_failures = b->n_failures;
        out->n_opened = b->br.n_opened;
    }
    pthread_mutex_unlock(&r->mu);
}

/* ---- for route_health.c ---- */

void asr__route_remote_targets(asr_router_t *r, asr__route_target_t **out, int *n) {
    pthread_mutex_lock(&r->mu);
    *out = asr_xcalloc((size_t)r->n + 1, sizeof **out);
    *n = 0;
    for (int k = 0; k < r->n; k++)
        if (strcmp(r->b[k].t.kind, "local"))
            asr__route_target_copy(&(*out)[(*n)++], &r->b[k].t);
    pthread_mutex_unlock(&r->mu);
}

void asr__route_note_health(asr_router_t *r, int64_t id, bool ok) {
    pthread_mutex_lock(&r->mu);
    asr__route_backend_t *b = find(r, id);
    if (b) {
        asr_route_breaker_state_t before = b->br.state;
        if (ok || b->br.state == ASR_ROUTE_BREAKER_CLOSED)
            asr_route_breaker_release(&b->br, asr_now_s(), ok ? 1 : -1, false);
        if (b->br.state != before)
            ASR_LOG(ASR_LOG_WARN, "msg=route_breaker backend=\"%s\" state=%s source=health",
                    b->t.name, asr_route_breaker_state_name(b->br.state));
    }
    pthread_mutex_unlock(&r->mu);
}
