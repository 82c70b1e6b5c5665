/* store: recordings, the durable job queue, and node heartbeats.
 *
 * Leases: a claim sets state=running, lease_owner and lease_expires_at, and increments attempts;
 * (owner, attempts) is the lease's fencing token. Every later write by the worker (renew,
 * complete, fail) is one UPDATE guarded by state='running' AND that token, so once another worker
 * has reclaimed an expired job, or the job was cancelled, the first worker's writes change nothing
 * and it learns why (ASR_ERR_BUSY / ASR_ERR_CANCELLED). A result is therefore written at most once,
 * and a job is never lost: an expired lease makes it claimable again until max_attempts. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "store/store_int.h"

static const char *const k_states[ASR_STORE_JOB_N_STATES] = {"queued", "running", "done", "failed",
                                                             "cancelled"};

const char *asr_store_job_state_name(asr_store_job_state_t st) {
    return (unsigned)st < ASR_STORE_JOB_N_STATES ? k_states[st] : "unknown";
}

static asr_store_job_state_t parse_state(const char *v) {
    for (int i = 0; v && i < ASR_STORE_JOB_N_STATES; i++)
        if (strcmp(v, k_states[i]) == 0)
            return (asr_store_job_state_t)i;
    return ASR_STORE_JOB_FAILED;
}

static void state_cell(const char *v, void *field) {
    *(asr_store_job_state_t *)field = parse_state(v);
}

int64_t asr_store_backoff_ms(int attempt, int64_t base_ms, int64_t max_ms) {
    int64_t d = base_ms > 0 ? base_ms : 0;
    for (int i = 1; i < attempt && d < max_ms; i++)
        d *= 2;
    return d < max_ms ? d : max_ms;
}

/* Optional short text: NULL or valid, at most `max` bytes. */
static asr_err_t check_opt(const char *field, const char *v, size_t max) {
    const char *why;
    if (!v)
        return ASR_OK;
    if (strlen(v) > max)
        return asr__store_fail(ASR_ERR_INVALID, "%s: longer than %zu bytes", field, max);
    if ((why = asr__store_check_text(v)))
        return asr__store_fail(ASR_ERR_INVALID, "%s: %s", field, why);
    return ASR_OK;
}

/* ---- recordings ---- */

#define REC_COLS "id, name, path, size_bytes, duration_s, language_hint, status, created_at"

/* REC_COLS, in order. */
#define RF(kind, member) ASR__FIELD(asr_store_recording_t, kind, member)
#define RFO(kind, member, v) ASR__FIELD_OR(asr_store_recording_t, kind, member, v)
static const asr__field_t k_rec[] = {RF(I64, id),
                                     RF(STR, name),
                                     RF(STR, path),
                                     RF(I64, size_bytes),
                                     RFO(REAL, duration_s, -1.0),
                                     RF(STR, language_hint),
                                     RF(STR, status),
                                     RF(I64, created_at)};
#undef RF
#undef RFO

ASR__STORE_FREE_FNS(asr_store_recording_t, k_rec, asr_store_recording_clear,
                    asr_store_recordings_free)

asr_err_t asr_store_recording_create(asr_store_t *s, const asr_store_recording_t *in,
                                     int64_t *out_id) {
    asr_err_t e;
    if (!in->name || !*in->name)
        return asr__store_fail(ASR_ERR_INVALID, "name: must not be empty");
    if (!in->path || !*in->path)
        return asr__store_fail(ASR_ERR_INVALID, "path: must not be empty");
    if ((e = check_opt("name", in->name, 1024)) != ASR_OK ||
        (e = check_opt("path", in->path, 4096)) != ASR_OK ||
        (e = check_opt("language_hint", in->language_hint, 32)) != ASR_OK ||
        (e = check_opt("status", in->status, 32)) != ASR_OK)
        return e;
    if (in->size_bytes < 0)
        return asr__store_fail(ASR_ERR_INVALID, "size_bytes: must not be negative");
    asr__param_t p[6] = {
        PTEXT(in->name),          PTEXT(in->path),
        PI64(in->size_bytes),     in->duration_s >= 0 ? PREAL(in->duration_s) : PNULL,
        PTEXT(in->language_hint), PTEXT(in->status ? in->status : "uploaded")};
    asr__rows_t r;
    LOCK(s);
    e = asr__store_exec(s,
                        "INSERT INTO recordings (name, path, size_bytes, duration_s, "
                        "language_hint, status, created_at) VALUES (?, ?, ?, ?, ?, ?, {NOW}) "
                        "RETURNING id",
                        p, 6, &r);
    UNLOCK(s);
    if (e != ASR_OK)
        return e;
    if (out_id)
        *out_id = asr__store_cell_i64(&r, 0, 0);
    asr__store_rows_free(&r);
    return ASR_OK;
}

asr_err_t asr_store_recording_get(asr_store_t *s, int64_t id, asr_store_recording_t *out) {
    asr__param_t p = PI64(id);
    LOCK(s);
    asr_err_t e =
        asr__store_get_row(s, "SELECT " REC_COLS " FROM recordings WHERE id = ?", &p, 1, k_rec,
                           ASR__N_FIELDS(k_rec), out, sizeof *out, "id: no such recording");
    UNLOCK(s);
    return e;
}

/* Recordings newest first, filtered by status and, when q is non-NULL, by its search condition. */
static asr_err_t list_recordings(asr_store_t *s, const char *status, const asr__store_search_t *q,
                                 int offset, int limit, asr_store_recording_t **out, size_t *n,
                                 int64_t *total) {
    *out = NULL;
    *n = 0;
    const char *st = status ? status : "";
    asr__param_t p[6] = {PTEXT(st), PTEXT(st)};
    int np = 2;
    if (q) {
        p[np++] = PTEXT(q->name_arg);
        p[np++] = PTEXT(q->text_arg);
    }
    char where[512];
    snprintf(where, sizeof where, " FROM recordings WHERE (? = '' OR status = ?)%s%s",
             q ? " AND " : "", q ? q->sql : "");
    char sel[768], cnt[640];
    snprintf(sel, sizeof sel, "SELECT " REC_COLS "%s ORDER BY id DESC LIMIT ? OFFSET ?", where);
    snprintf(cnt, sizeof cnt, "SELECT COUNT(*)%s", where);
    p[np] = PI64(limit > 0 ? limit : 100);
    p[np + 1] = PI64(offset > 0 ? offset : 0);
    asr__rows_t r, c = {0};
    LOCK(s);
    asr_err_t e = asr__store_exec(s, sel, p, np + 2, &r);
    if (e == ASR_OK && total) {
        e = asr__store_exec(s, cnt, p, np, &c);
        if (e != ASR_OK)
            asr__store_rows_free(&r);
    }
    UNLOCK(s);
    if (e != ASR_OK)
        return e;
    if (total)
        *total = asr__store_cell_i64(&c, 0, 0);
    *out = asr__store_map_rows(k_rec, ASR__N_FIELDS(k_rec), &r, sizeof **out);
    *n = r.n_rows;
    asr__store_rows_free(&r);
    asr__store_rows_free(&c);
    return ASR_OK;
}

asr_err_t asr_store_recording_list(asr_store_t *s, const char *status, int offset, int limit,
                                   asr_store_recording_t **out, size_t *n, int64_t *total) {
    return list_recordings(s, status, NULL, offset, limit, out, n, total);
}

asr_err_t asr_store_recording_search(asr_store_t *s, const char *q, const char *status, int offset,
                                     int limit, asr_store_recording_t **out, size_t *n,
                                     int64_t *total) {
    asr__store_search_t sq;
    *out = NULL;
    *n = 0;
    asr_err_t e = asr__store_search_prepare(s, q, &sq);
    if (e == ASR_OK)
        e = list_recordings(s, status, &sq, offset, limit, out, n, total);
    asr__store_search_clear(&sq);
    return e;
}

asr_err_t asr_store_recording_set_status(asr_store_t *s, int64_t id, const char *status) {
    asr_err_t e;
    if (!status || !*status)
        return asr__store_fail(ASR_ERR_INVALID, "status: must not be empty");
    if ((e = check_opt("status", status, 32)) != ASR_OK)
        return e;
    asr__param_t p[2] = {PTEXT(status), PI64(id)};
    asr__rows_t r;
    LOCK(s);
    e = asr__store_exec(s, "UPDATE recordings SET status = ? WHERE id = ?", p, 2, &r);
    UNLOCK(s);
    if (e == ASR_OK && r.changes == 0)
        e = asr__store_fail(ASR_ERR_NOT_FOUND, "id: no such recording");
    asr__store_rows_free(&r);
    return e;
}

asr_err_t asr_store_recording_delete(asr_store_t *s, int64_t id) {
    asr__param_t p = PI64(id);
    asr__rows_t r;
    LOCK(s);
    asr_err_t e = asr__store_exec(s, "DELETE FROM recordings WHERE id = ?", &p, 1, &r);
    UNLOCK(s);
    if (e == ASR_OK && r.changes == 0)
        e = asr__store_fail(ASR_ERR_NOT_FOUND, "id: no such recording");
    asr__store_rows_free(&r);
    return e;
}

/* ---- jobs ---- */

#define JOB_COLS_BASE                                                                              \
    "id, recording_id, state, model, language, options_json, attempts, max_attempts, last_error, " \
    "backend, model_used, progress, lease_owner, lease_expires_at, not_before, created_at, "       \
    "started_at, finished_at, "
#define JOB_COLS JOB_COLS_BASE "result_json, webhook_url"
#define JOB_COLS_LIST JOB_COLS_BASE "NULL, webhook_url"

/* The guard every lease holder's write carries: still running, same owner, same attempt. */
#define LEASE_GUARD "id = ? AND state = 'running' AND lease_owner = ? AND attempts = ?"
#define LEASE_PARAMS(l) PI64((l)->job_id), PTEXT((l)->owner), PI64((l)->attempt)

/* JOB_COLS, in order; the state (text) is parsed by job_from_row. */
#define JF(kind, member) ASR__FIELD(asr_store_job_t, kind, member)
static const asr__field_t k_job[] = {JF(I64, id),
                                     JF(I64, recording_id),
                                     ASR__FIELD_FN(asr_store_job_t, state, state_cell),
                                     JF(STR, model),
                                     JF(STR, language),
                                     JF(STR, options_json),
                                     JF(INT, attempts),
                                     JF(INT, max_attempts),
                                     JF(STR, last_error),
                                     JF(STR, backend),
                                     JF(STR, model_used),
                                     JF(REAL, progress),
                                     JF(STR, lease_owner),
                                     JF(I64, lease_expires_at),
                                     JF(I64, not_before),
                                     JF(I64, created_at),
                                     JF(I64, started_at),
                                     JF(I64, finished_at),
                                     JF(STR, result_json),
                                     JF(STR, webhook_url)};
#undef JF

ASR__STORE_FREE_FNS(asr_store_job_t, k_job, asr_store_job_clear, asr_store_jobs_free)

/* Reads one job; caller holds the lock. */
static asr_err_t job_get_locked(asr_store_t *s, int64_t id, asr_store_job_t *out) {
    asr__param_t p = PI64(id);
    return asr__store_get_row(s, "SELECT " JOB_COLS " FROM jobs WHERE id = ?", &p, 1, k_job,
                              ASR__N_FIELDS(k_job), out, sizeof *out, "id: no such job");
}

asr_err_t asr_store_job_get(asr_store_t *s, int64_t id, asr_store_job_t *out) {
    LOCK(s);
    asr_err_t e = job_get_locked(s, id, out);
    UNLOCK(s);
    return e;
}

typedef struct {
    const asr_store_job_input_t *in;
    int64_t id;
    bool created;
} submit_t;

static asr_err_t submit_body(asr_store_t *s, void *arg) {
    submit_t *o = arg;
    const asr_store_job_input_t *in = o->in;
    asr__param_t rid = PI64(in->recording_id);
    asr__rows_t r = {0};
    /* locks the recording row on PostgreSQL: concurrent submits for it queue up here */
    asr_err_t e =
        asr__store_exec(s, "SELECT id FROM recordings WHERE id = ? {FOR_UPDATE}", &rid, 1, &r);
    if (e == ASR_OK && r.n_rows == 0)
        e = asr__store_fail(ASR_ERR_NOT_FOUND, "recording_id: no such recording");
    asr__store_rows_free(&r);
    if (e == ASR_OK)
        e = asr__store_exec(s,
                            "SELECT id FROM jobs WHERE recording_id = ? AND state IN ('queued', "
                            "'running')",
                            &rid, 1, &r);
    if (e == ASR_OK && r.n_rows == 0) { /* none active: a new one */
        asr__param_t p[6] = {rid,
                             PTEXT(in->model),
                             PTEXT(in->language),
                             PTEXT(in->options_json),
                             PI64(in->max_attempts > 0 ? in->max_attempts : 3),
                             PTEXT(in->webhook_url && *in->webhook_url ? in->webhook_url : NULL)};
        asr__store_rows_free(&r);
        e = asr__store_exec(s,
                            "INSERT INTO jobs (recording_id, state, model, language, options_json, "
                            "max_attempts, webhook_url, created_at) VALUES (?, 'queued', ?, ?, ?, "
                            "?, ?, {NOW}) RETURNING id",
                            p, 6, &r);
        o->created = e == ASR_OK;
    }
    if (e == ASR_OK)
        o->id = asr__store_cell_i64(&r, 0, 0);
    asr__store_rows_free(&r);
    return e;
}

asr_err_t asr_store_job_submit(asr_store_t *s, const asr_store_job_input_t *in, int64_t *out_id,
                               bool *created) {
    asr_err_t e;
    const char *why;
    if ((e = check_opt("model", in->model, 256)) != ASR_OK ||
        (e = check_opt("language", in->language, 32)) != ASR_OK ||
        (e = check_opt("webhook_url", in->webhook_url, ASR_STORE_URL_MAX)) != ASR_OK)
        return e;
    if (in->webhook_url && *in->webhook_url && (why = asr__store_check_url(in->webhook_url)))
        return asr__store_fail(ASR_ERR_INVALID, "webhook_url: %s", why);
    submit_t o = {.in = in};
    e = asr__store_write(s, NULL, submit_body, &o);
    if (created)
        *created = e == ASR_OK && o.created;
    if (e == ASR_OK && out_id)
        *out_id = o.id;
    return e;
}

asr_err_t asr_store_job_list(asr_store_t *s, int64_t recording_id, int state, int offset, int limit,
                             asr_store_job_t **out, size_t *n) {
    const char *st = (state >= 0 && state < ASR_STORE_JOB_N_STATES) ? k_states[state] : "";
    asr__param_t p[6] = {PI64(recording_id),
                         PI64(recording_id),
                         PTEXT(st),
                         PTEXT(st),
                         PI64(limit > 0 ? limit : 100),
                         PI64(offset > 0 ? offset : 0)};
    return asr__store_list(s,
                           "SELECT " JOB_COLS_LIST " FROM jobs WHERE (? = 0 OR recording_id "
                           "= ?) AND (? = '' OR state = ?) ORDER BY id DESC LIMIT ? OFFSET ?",
                           p, 6, k_job, ASR__N_FIELDS(k_job), sizeof **out, out, n);
}

asr_err_t asr_store_job_counts(asr_store_t *s, int64_t counts[ASR_STORE_JOB_N_STATES]) {
    asr__rows_t r;
    memset(counts, 0, sizeof(int64_t) * ASR_STORE_JOB_N_STATES);
    LOCK(s);
    asr_err_t e =
        asr__store_exec(s, "SELECT state, COUNT(*) FROM jobs GROUP BY state", NULL, 0, &r);
    UNLOCK(s);
    if (e != ASR_OK)
        return e;
    for (size_t i = 0; i < r.n_rows; i++)
        counts[parse_state(asr__store_cell(&r, i, 0))] += asr__store_cell_i64(&r, i, 1);
    asr__store_rows_free(&r);
    return ASR_OK;
}

/* Fails jobs whose lease expired on their last allowed attempt, so they are not claimed again:
 * a job that kills its worker every time must not loop forever. Caller is in a transaction. */
static asr_err_t fail_exhausted(asr_store_t *s) {
    asr__rows_t r;
    asr_err_t e = asr__store_exec(
        s,
        "UPDATE jobs SET state = 'failed', finished_at = {NOW}, lease_expires_at = NULL, "
        "last_error = 'lease expired on the last allowed attempt (worker ' || "
        "COALESCE(lease_owner, '?') || ' stopped renewing it)' WHERE state = 'running' AND "
        "lease_expires_at < {NOW} AND attempts >= max_attempts",
        NULL, 0, &r);
    if (e == ASR_OK && r.changes > 0)
        ASR_LOG(ASR_LOG_WARN, "msg=jobs_lease_expired_failed n=%lld", (long long)r.changes);
    asr__store_rows_free(&r);
    return e;
}

asr_err_t asr_store_job_claim(asr_store_t *s, const char *owner, int lease_ms,
                              asr_store_lease_t *lease, asr_store_job_t *job) {
    return asr_store_job_claim_except(s, owner, lease_ms, NULL, 0, lease, job);
}

/* The claim query, passing over jobs for the n_skip models (bound as parameters). Malloc'd. */
static char *claim_sql(int n_skip) {
    asr_buf_t b;
    asr_buf_init(&b);
    asr_buf_puts(&b, "SELECT id FROM jobs WHERE ((state = 'queued' AND not_before <= {NOW}) OR "
                     "(state = 'running' AND lease_expires_at < {NOW}))");
    for (int i = 0; i < n_skip; i++)
        asr_buf_puts(&b, i == 0 ? " AND (model IS NULL OR model NOT IN (?" : ", ?");
    asr_buf_puts(&b, n_skip ? ")) ORDER BY id LIMIT 1 {SKIP_LOCKED}"
                            : " ORDER BY id LIMIT 1 {SKIP_LOCKED}");
    return asr_buf_steal(&b);
}

typedef struct {
    const char *owner;
    int lease_ms;
    const char *const *skip_models;
    int n_skip;
    asr_store_lease_t *lease;
    asr_store_job_t *job;
    bool found;
} claim_t;

static asr_err_t claim_body(asr_store_t *s, void *arg) {
    claim_t *o = arg;
    asr__rows_t r = {0};
    asr_err_t e = fail_exhausted(s); /* committed even when nothing is claimable */
    asr__param_t skip[ASR_STORE_CLAIM_MAX_SKIP];
    for (int i = 0; i < o->n_skip; i++)
        skip[i] = PTEXT(o->skip_models[i]);
    if (e == ASR_OK) {
        char *sql = claim_sql(o->n_skip);
        e = asr__store_exec(s, sql, skip, o->n_skip, &r);
        free(sql);
    }
    if (e != ASR_OK || r.n_rows == 0) {
        asr__store_rows_free(&r);
        return e;
    }
    int64_t id = asr__store_cell_i64(&r, 0, 0);
    asr__store_rows_free(&r);
    asr__param_t p[3] = {PTEXT(o->owner), PI64(o->lease_ms), PI64(id)};
    e = asr__store_exec(s,
                        "UPDATE jobs SET state = 'running', lease_owner = ?, lease_expires_at = "
                        "{NOW} + ?, attempts = attempts + 1, progress = 0, started_at = "
                        "COALESCE(started_at, {NOW}) WHERE id = ? RETURNING attempts, "
                        "lease_expires_at",
                        p, 3, &r);
    if (e != ASR_OK)
        return e;
    o->found = true;
    o->lease->job_id = id;
    o->lease->attempt = (int)asr__store_cell_i64(&r, 0, 0);
    o->lease->expires_at = asr__store_cell_i64(&r, 0, 1);
    snprintf(o->lease->owner, sizeof o->lease->owner, "%s", o->owner);
    asr__store_rows_free(&r);
    return o->job ? job_get_locked(s, id, o->job) : ASR_OK;
}

asr_err_t asr_store_job_claim_except(asr_store_t *s, const char *owner, int lease_ms,
                                     const char *const *skip_models, int n_skip,
                                     asr_store_lease_t *lease, asr_store_job_t *job) {
    if (n_skip < 0 || n_skip > ASR_STORE_CLAIM_MAX_SKIP)
        return asr__store_fail(ASR_ERR_INVALID, "skip_models: at most %d",
                               ASR_STORE_CLAIM_MAX_SKIP);
    if (!owner || !*owner || strlen(owner) >= sizeof lease->owner)
        return asr__store_fail(ASR_ERR_INVALID, "owner: must be 1..%zu bytes",
                               sizeof lease->owner - 1);
    if (lease_ms <= 0)
        return asr__store_fail(ASR_ERR_INVALID, "lease_ms: must be positive");
    if (job)
        memset(job, 0, sizeof *job);
    claim_t o = {owner, lease_ms, skip_models, n_skip, lease, job, false};
    asr_err_t e = asr__store_write(s, NULL, claim_body, &o);
    if (e != ASR_OK && job)
        asr_store_job_clear(job);
    if (e == ASR_OK && !o.found)
        e = asr__store_fail(ASR_ERR_NOT_FOUND, "no job to claim");
    return e;
}

/* Why a lease-guarded write changed nothing; caller holds the lock. */
static asr_err_t lease_lost(asr_store_t *s, const asr_store_lease_t *l) {
    asr_store_job_t j;
    asr_err_t e = job_get_locked(s, l->job_id, &j);
    if (e != ASR_OK)
        return e;
    if (j.state == ASR_STORE_JOB_CANCELLED)
        e = asr__store_fail(ASR_ERR_CANCELLED, "job %lld was cancelled", (long long)l->job_id);
    else
        e = asr__store_fail(ASR_ERR_BUSY,
                            "lease lost: job %lld is %s, attempt %d by %s (this lease: attempt %d "
                            "by %s)",
                            (long long)l->job_id, k_states[j.state], j.attempts,
                            j.lease_owner ? j.lease_owner : "-", l->attempt, l->owner);
    asr_store_job_clear(&j);
    return e;
}

asr_err_t asr_store_job_release(asr_store_t *s, const asr_store_lease_t *lease, const char *why) {
    asr__param_t p[4] = {PTEXT(why), LEASE_PARAMS(lease)};
    asr__rows_t r = {0};
    LOCK(s);
    asr_err_t e = asr__store_exec(
        s,
        "UPDATE jobs SET state = 'queued', attempts = attempts - 1, lease_owner = NULL, "
        "lease_expires_at = NULL, progress = 0, started_at = CASE WHEN attempts <= 1 THEN NULL "
        "ELSE started_at END, last_error = ? WHERE " LEASE_GUARD,
        p, 4, &r);
    if (e == ASR_OK && r.changes == 0)
        e = lease_lost(s, lease);
    UNLOCK(s);
    asr__store_rows_free(&r);
    return e;
}

asr_err_t asr_store_job_renew(asr_store_t *s, asr_store_lease_t *lease, int lease_ms,
                              double progress) {
    if (lease_ms <= 0)
        return asr__store_fail(ASR_ERR_INVALID, "lease_ms: must be positive");
    asr__param_t keep[4] = {PI64(lease_ms), LEASE_PARAMS(lease)};
    asr__param_t set[5] = {PI64(lease_ms), PREAL(progress > 1 ? 1 : progress), LEASE_PARAMS(lease)};
    asr__rows_t r;
    LOCK(s);
    asr_err_t e =
        progress < 0
            ? asr__store_exec(s,
                              "UPDATE jobs SET lease_expires_at = {NOW} + ? WHERE " LEASE_GUARD
                              " RETURNING lease_expires_at",
                              keep, 4, &r)
            : asr__store_exec(s,
                              "UPDATE jobs SET lease_expires_at = {NOW} + ?, progress = ? "
                              "WHERE " LEASE_GUARD " RETURNING lease_expires_at",
                              set, 5, &r);
    if (e == ASR_OK) {
        if (r.n_rows == 0)
            e = lease_lost(s, lease);
        else
            lease->expires_at = asr__store_cell_i64(&r, 0, 0);
        asr__store_rows_free(&r);
    }
    UNLOCK(s);
    return e;
}

/* Sets the status of the job's recording; caller is in a transaction. */
static asr_err_t set_rec_status(asr_store_t *s, int64_t job_id, const char *status) {
    asr__param_t p[2] = {PTEXT(status), PI64(job_id)};
    return asr__store_exec(s,
                           "UPDATE recordings SET status = ? WHERE id = (SELECT recording_id FROM "
                           "jobs WHERE id = ?)",
                           p, 2, NULL);
}

typedef struct {
    const asr_store_lease_t *lease;
    const asr__param_t *p; /* the statement's parameters */
    const char *recording_status;
    bool requeued; /* job_fail: queued again */
} end_t;

static asr_err_t complete_body(asr_store_t *s, void *arg) {
    end_t *o = arg;
    asr__rows_t r = {0};
    asr_err_t e = asr__store_exec(s,
                                  "UPDATE jobs SET state = 'done', result_json = ?, backend = ?, "
                                  "model_used = ?, progress = 1, finished_at = {NOW}, "
                                  "lease_expires_at = NULL WHERE " LEASE_GUARD,
                                  o->p, 6, &r);
    if (e == ASR_OK && r.changes == 0)
        e = lease_lost(s, o->lease);
    asr__store_rows_free(&r);
    if (e == ASR_OK) /* the text search finds, in the same transaction */
        e = asr__store_search_index(s, o->lease->job_id, o->p[0].s);
    if (e == ASR_OK && o->recording_status)
        e = set_rec_status(s, o->lease->job_id, o->recording_status);
    return e;
}

asr_err_t asr_store_job_complete(asr_store_t *s, const asr_store_lease_t *lease,
                                 const char *result_json, const char *backend,
                                 const char *model_used, const char *recording_status) {
    asr_err_t e;
    if (recording_status && (e = check_opt("status", recording_status, 32)) != ASR_OK)
        return e;
    asr__param_t p[6] = {PTEXT(result_json), PTEXT(backend), PTEXT(model_used),
                         LEASE_PARAMS(lease)};
    end_t o = {.lease = lease, .p = p, .recording_status = recording_status};
    return asr__store_write(s, NULL, complete_body, &o);
}

static asr_err_t fail_body(asr_store_t *s, void *arg) {
    end_t *o = arg;
    asr__rows_t r = {0};
    asr_err_t e = asr__store_exec(
        s,
        "UPDATE jobs SET state = CASE WHEN ? = 1 AND attempts < max_attempts THEN 'queued' ELSE "
        "'failed' END, not_before = {NOW} + ?, finished_at = CASE WHEN ? = 1 AND attempts < "
        "max_attempts THEN NULL ELSE {NOW} END, last_error = ?, lease_expires_at = NULL "
        "WHERE " LEASE_GUARD " RETURNING state",
        o->p, 7, &r);
    if (e == ASR_OK && r.n_rows == 0)
        e = lease_lost(s, o->lease);
    if (e == ASR_OK)
        o->requeued = strcmp(asr__store_cell(&r, 0, 0), "queued") == 0;
    asr__store_rows_free(&r);
    if (e == ASR_OK && !o->requeued && o->recording_status)
        e = set_rec_status(s, o->lease->job_id, o->recording_status);
    return e;
}

asr_err_t asr_store_job_fail(asr_store_t *s, const asr_store_lease_t *lease, const char *error,
                             bool retryable, int64_t retry_delay_ms, const char *recording_status,
                             bool *requeued) {
    asr_err_t e;
    if (recording_status && (e = check_opt("status", recording_status, 32)) != ASR_OK)
        return e;
    if (requeued)
        *requeued = false;
    asr__param_t p[7] = {PI64(retryable ? 1 : 0), PI64(retry_delay_ms > 0 ? retry_delay_ms : 0),
                         PI64(retryable ? 1 : 0), PTEXT(error ? error : "failed"),
                         LEASE_PARAMS(lease)};
    end_t o = {.lease = lease, .p = p, .recording_status = recording_status};
    e = asr__store_write(s, NULL, fail_body, &o);
    if (e == ASR_OK && requeued)
        *requeued = o.requeued;
    return e;
}

/* After a guarded state change on job `id` changed nothing: NOT_FOUND, or INVALID naming the state.
 * Caller holds the lock. */
static asr_err_t state_refusal(asr_store_t *s, int64_t id, const char *what) {
    asr_store_job_t j;
    asr_err_t e = job_get_locked(s, id, &j);
    if (e != ASR_OK)
        return e;
    e = asr__store_fail(ASR_ERR_INVALID, "state: job %lld is %s; %s", (long long)id,
                        k_states[j.state], what);
    asr_store_job_clear(&j);
    return e;
}

/* Runs a state change on job `id` guarded by its current state: when it changes nothing, says
 * why (state_refusal with `refusal`); a second active job of its recording is named as such. */
static asr_err_t state_change(asr_store_t *s, int64_t id, const char *sql, const char *refusal) {
    asr__param_t p = PI64(id);
    asr__rows_t r;
    LOCK(s);
    asr_err_t e = asr__store_exec(s, sql, &p, 1, &r);
    if (e == ASR_ERR_DB && s->last_fail == ASR__FAIL_UNIQUE)
        e = asr__store_fail(ASR_ERR_INVALID,
                            "state: another job of this recording is queued or running");
    else if (e == ASR_OK && r.changes == 0)
        e = state_refusal(s, id, refusal);
    asr__store_rows_free(&r);
    UNLOCK(s);
    return e;
}

asr_err_t asr_store_job_cancel(asr_store_t *s, int64_t id) {
    return state_change(s, id,
                        "UPDATE jobs SET state = 'cancelled', finished_at = {NOW}, "
                        "lease_expires_at = NULL WHERE id = ? AND state IN ('queued', 'running')",
                        "only queued or running jobs can be cancelled");
}

asr_err_t asr_store_job_retry(asr_store_t *s, int64_t id) {
    return state_change(s, id,
                        "UPDATE jobs SET state = 'queued', attempts = 0, not_before = 0, "
                        "progress = 0, started_at = NULL, finished_at = NULL, lease_owner = NULL, "
                        "lease_expires_at = NULL, result_json = NULL WHERE id = ? AND state IN "
                        "('failed', 'cancelled')",
                        "only failed or cancelled jobs can be retried");
}

/* ---- nodes ---- */

asr_err_t asr_store_node_heartbeat(asr_store_t *s, const char *id, int capacity,
                                   const char *info_json) {
    asr_err_t e;
    if (!id || !*id)
        return asr__store_fail(ASR_ERR_INVALID, "id: must not be empty");
    if ((e = check_opt("id", id, 256)) != ASR_OK)
        return e;
    asr__param_t p[3] = {PTEXT(id), PI64(capacity), PTEXT(info_json)};
    LOCK(s);
    e = asr__store_exec(s,
                        "INSERT INTO nodes (id, heartbeat_at, capacity, info_json) VALUES (?, "
                        "{NOW}, ?, ?) ON CONFLICT (id) DO UPDATE SET heartbeat_at = "
                        "excluded.heartbeat_at, capacity = excluded.capacity, info_json = "
                        "excluded.info_json",
                        p, 3, NULL);
    UNLOCK(s);
    return e;
}

/* id, heartbeat_at, capacity, info_json */
#define NF(kind, member) ASR__FIELD(asr_store_node_t, kind, member)
static const asr__field_t k_node[] = {NF(STR, id), NF(I64, heartbeat_at), NF(INT, capacity),
                                      NF(STR, info_json)};
#undef NF

asr_err_t asr_store_node_list(asr_store_t *s, asr_store_node_t **out, size_t *n) {
    return asr__store_list(
        s, "SELECT id, heartbeat_at, capacity, info_json FROM nodes ORDER BY heartbeat_at DESC, id",
        NULL, 0, k_node, ASR__N_FIELDS(k_node), sizeof **out, out, n);
}

void asr_store_nodes_free(asr_store_node_t *v, size_t n) {
    asr__store_map_free(k_node, ASR__N_FIELDS(k_node), v, n, sizeof *v);
}
