/* sched: the memory-contract scheduler (see sched.h).
 *
 * One mutex guards everything below. Workers (max_parallel threads) pick work with dispatch(): the
 * first queued job that can start now, with its memory reserved in the same critical section
 * (a slot's bytes, plus the weights when its model must be loaded first), so the sum of
 * reservations never exceeds the budget. Loading a model and creating a slot happen outside the
 * lock, on the worker that reserved them.
 *
 * Two pools: host memory (every model's host bytes) and, when the scheduler's device is a device
 * (cuda:N, or host, the reference device), device memory (sched_device.c: the models' fixed device
 * bytes, their slots, the CUDA context once while any model is loaded there). A model on the device
 * is charged to both (its device plan to the device, the plan's host part to the host); its CPU
 * twin (gpu_fallback cpu: the same id and directory loaded on the CPU) to the host only. A job
 * tries its targets in order (the requested model on the device, its fallback chain there, the
 * CPU twin), re-evaluated at every dispatch.
 *
 * Invariants (under mu): used = host bytes of LOADING/LOADED models + host bytes of every slot
 * (running or cached) <= budget, and dev.used = context (while a device model is resident) +
 * device bytes of LOADING/LOADED device models + their slots <= the device budget, except
 * transiently after a measured budget shrinks (then nothing new starts until enough is released);
 * a job is in the queue iff its state is QUEUED; n_busy counts jobs RUNNING; done_cb is called
 * outside the mutex, after the last access. */
#include "sched/sched_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int64_t now_ms(void) { return (int64_t)(asr_now_s() * 1000.0); }

/* ---- budget ---- */

static uint64_t read_u64_file(const char *path, const char *key) {
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char line[256];
    uint64_t v = 0;
    while (fgets(line, sizeof line, f)) {
        if (!key) {
            if (!strncmp(line, "max", 3))
                v = 0;
            else
                v = strtoull(line, NULL, 10);
            break;
        }
        size_t kl = strlen(key);
        if (!strncmp(line, key, kl) && line[kl] == ':') {
            v = strtoull(line + kl + 1, NULL, 10) * 1024; /* kB */
            break;
        }
    }
    fclose(f);
    return v;
}

uint64_t asr_sched_cgroup_limit(void) {
    FILE *f = fopen("/proc/self/cgroup", "r");
    if (!f)
        return 0;
    char line[1024], path[1200] = "";
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "0::", 3)) {
            line[strcspn(line, "\n")] = 0;
            snprintf(path, sizeof path, "/sys/fs/cgroup%s/memory.max", line + 3);
            break;
        }
    fclose(f);
    return path[0] ? read_u64_file(path, NULL) : 0;
}

uint64_t asr_sched_mem_available(void) { return read_u64_file("/proc/meminfo", "MemAvailable"); }

/* Budget for weights and slots (under mu). */
static uint64_t budget(asr_sched_t *s) {
    if (s->limit)
        return s->limit > ASR_PLAN_SERVER_OVERHEAD ? s->limit - ASR_PLAN_SERVER_OVERHEAD : 0;
    double now = asr_now_s();
    if (s->budget_at == 0 || now - s->budget_at >= s->refresh_s) {
        uint64_t avail = asr_sched_mem_available(), cg = asr_sched_cgroup_limit();
        uint64_t b = s->used + avail;
        b = b > s->reserve ? b - s->reserve : 0;
        if (cg) {
            uint64_t c = cg > ASR_PLAN_SERVER_OVERHEAD + s->reserve
                             ? cg - ASR_PLAN_SERVER_OVERHEAD - s->reserve
                             : 0;
            if (c < b)
                b = c;
        }
        s->budget = b;
        s->budget_at = now;
    }
    return s->budget;
}

/* Host bytes of a slot of model m (and its device bytes in *dbytes). */
static size_t slot_bytes(const asr_sched_t *s, const model_t *m, int n_seq, bool words,
                         size_t *dbytes) {
    *dbytes = 0;
    if (m->on_dev) {
        size_t host = 0;
        *dbytes = asr__dev_slot_bytes(s, m, n_seq, &host);
        return host;
    }
    asr_plan_t p;
    if (asr_plan_compute(&m->info, m->plan_type, n_seq, words, &p) != ASR_OK)
        return SIZE_MAX / 4;
    return p.slot;
}

/* ---- model residency (under mu) ---- */

void asr__sched_free_slot(asr_sched_t *s, slot_t *sl) {
    asr_stream_destroy(sl->st);
    s->used -= sl->bytes;
    s->dev.used -= sl->dbytes;
    memset(sl, 0, sizeof *sl);
}

void asr__sched_drop_cache(asr_sched_t *s, model_t *m) {
    for (int i = 0; i < m->n_cache; i++)
        asr__sched_free_slot(s, &m->cache[i]);
    m->n_cache = 0;
}

void asr__sched_unload(asr_sched_t *s, model_t *m, const char *why) {
    asr__sched_drop_cache(s, m);
    asr_model_destroy(m->model);
    m->model = NULL;
    m->state = M_UNLOADED;
    s->used -= m->weights;
    if (m->on_dev)
        asr__dev_model_out(s, m);
    ASR_LOG(ASR_LOG_INFO, "msg=model_unloaded model=%s device=%s reason=%s used_mib=%.0f%s%.0f",
            m->id, m->load_device ? m->load_device : "cpu", why, MIB(s->used),
            s->dev.present ? " device_used_mib=" : "", s->dev.present ? MIB(s->dev.used) : 0.0);
}

/* Whether `need` more host bytes and `dneed` more device bytes (plus the context when dctx and no
 * device model is resident) fit now. */
static bool fits_now(asr_sched_t *s, size_t need, size_t dneed, bool dctx, uint64_t b,
                     uint64_t db) {
    if (s->used + need > b)
        return false;
    if (!dneed && !dctx)
        return true;
    size_t ctx = dctx && s->dev.n_resident == 0 ? s->dev.context : 0;
    return s->dev.used + dneed + ctx <= db;
}

/* Frees cached slots (other models first), then idle models least recently used, until `need`
 * more host bytes and `dneed` more device bytes fit (dctx: plus the context if none is held).
 * `keep` is never evicted. Only what helps is evicted: for device bytes alone, device models.
 * Returns true when they fit. */
bool asr__sched_make_room(asr_sched_t *s, size_t need, size_t dneed, bool dctx,
                          const model_t *keep) {
    uint64_t b = budget(s), db = (dneed || dctx) ? asr__dev_budget(s) : 0;
#define HOST_SHORT (s->used + need > b)
    for (int pass = 0; pass < 2 && !fits_now(s, need, dneed, dctx, b, db); pass++)
        for (int i = 0; i < s->n_all && !fits_now(s, need, dneed, dctx, b, db); i++) {
            model_t *m = &s->models[i];
            if ((pass == 0) == (m == keep) || (!HOST_SHORT && !m->on_dev))
                continue;
            asr__sched_drop_cache(s, m);
        }
    while (!fits_now(s, need, dneed, dctx, b, db)) {
        model_t *lru = NULL;
        bool host_short = HOST_SHORT;
        for (int i = 0; i < s->n_all; i++) {
            model_t *m = &s->models[i];
            if (m == keep || m->state != M_LOADED || m->running > 0 || (!host_short && !m->on_dev))
                continue;
            if (!lru || m->last_used < lru->last_used)
                lru = m;
        }
        if (!lru)
            return false;
        asr__sched_unload(s, lru, "evicted");
        s->n_evictions++;
    }
#undef HOST_SHORT
    return true;
}

/* Could model m ever run a job of n_seq sequences within the budgets (everything of asrd's
 * evicted)? For a device model: against the device budget now (another process may hold it). */
static bool ever_fits(asr_sched_t *s, const model_t *m, int n_seq, bool words) {
    size_t d = 0, h = slot_bytes(s, m, n_seq, words, &d);
    if (m->weights + h > budget(s))
        return false;
    return !m->on_dev || m->dweights + d + s->dev.context <= asr__dev_budget(s);
}

/* ---- queue ---- */

static void enqueue(asr_sched_t *s, asr_sched_job_t *job, bool front) {
    atomic_store(&job->priv_state, JOB_QUEUED);
    job->priv_next = NULL;
    if (front) {
        job->priv_next = s->head;
        s->head = job;
        if (!s->tail)
            s->tail = job;
    } else {
        if (s->tail)
            s->tail->priv_next = job;
        else
            s->head = job;
        s->tail = job;
    }
    s->depth++;
    int64_t due = (int64_t)((job->priv_t_wait + s->max_wait_s) * 1000.0) + 1;
    if (due < atomic_load(&s->expiry_ms))
        atomic_store(&s->expiry_ms, due);
}

static void unlink_job(asr_sched_t *s, asr_sched_job_t *job) {
    asr_sched_job_t **pp = &s->head, *prev = NULL;
    while (*pp && *pp != job) {
        prev = *pp;
        pp = &(*pp)->priv_next;
    }
    ASR_ASSERT(*pp == job);
    *pp = job->priv_next;
    if (s->tail == job)
        s->tail = prev;
    job->priv_next = NULL;
    s->depth--;
}

/* The targets of `job`, in order: its model (on the device when there is one), the models of its
 * fallback chain (when allowed), then its model's CPU twin (gpu_fallback cpu). Returns how many. */
static int targets(const asr_sched_t *s, const asr_sched_job_t *job, int *out) {
    const model_t *req = &s->models[job->model];
    int n = 0;
    out[n++] = job->model;
    for (int k = 0; job->allow_fallback && k < req->n_chain; k++)
        out[n++] = req->chain[k];
    if (req->twin >= 0)
        out[n++] = req->twin;
    return n;
}

/* The first target from priv_fallback_pos on that can ever serve the job (a lost device counts:
 * it comes back); -1 if none. */
static int first_target(asr_sched_t *s, asr_sched_job_t *job) {
    int t[MAX_CHAIN + 2], n = targets(s, job, t);
    for (int k = job->priv_fallback_pos; k < n; k++) {
        const model_t *m = &s->models[t[k]];
        if ((m->on_dev && s->dev.lost) || ever_fits(s, m, job->n_seq, job->word_timestamps))
            return t[k];
    }
    return -1;
}

static void never_fits_msg(asr_sched_t *s, asr_sched_job_t *job) {
    const model_t *m = &s->models[job->model];
    const char *tail = m->n_chain && job->allow_fallback
                           ? " and no model of its fallback chain fits"
                           : " and it has no fallback that fits";
    if (m->on_dev) {
        char lead[200];
        asr__dev_need_msg(s, m, job->n_seq, "", lead, sizeof lead);
        snprintf(job->errmsg, sizeof job->errmsg, "%.180s%s%s", lead, tail,
                 m->twin >= 0 ? ", nor does it on the CPU" : "");
        return;
    }
    size_t d;
    snprintf(job->errmsg, sizeof job->errmsg,
             "model %s needs %.0f MiB of weights and %.0f MiB per request; the memory budget is "
             "%.0f MiB%s",
             m->id, MIB(m->weights), MIB(slot_bytes(s, m, job->n_seq, job->word_timestamps, &d)),
             MIB(budget(s)), tail);
}

static void busy_msg(asr_sched_t *s, asr_sched_job_t *job, const char *lead) {
    const model_t *m = &s->models[job->served_model >= 0 ? job->served_model : job->model];
    if (m->on_dev) {
        asr__dev_need_msg(s, m, job->n_seq, lead, job->errmsg, sizeof job->errmsg);
        return;
    }
    size_t d, need = slot_bytes(s, m, job->n_seq, job->word_timestamps, &d) +
                     (m->state == M_UNLOADED ? m->weights : 0);
    uint64_t b = budget(s);
    snprintf(job->errmsg, sizeof job->errmsg,
             "%smodel %s needs %.0f MiB per request; %.0f MiB free; %d request%s waiting", lead,
             m->id, MIB(need), MIB(b > s->used ? b - s->used : 0), s->depth,
             s->depth == 1 ? "" : "s");
}

/* ---- dispatch (under mu) ---- */

typedef struct {
    asr_sched_job_t *job;
    model_t *m;
    int k;       /* its position in the job's targets */
    bool load;   /* load the model first (weights reserved) */
    slot_t slot; /* reused cached slot (st != NULL) or bytes reserved for a new one */
} pick_t;

/* Jobs that ended inside the lock, to be finished outside it. */
typedef struct {
    asr_sched_job_t *jobs[64];
    asr_err_t rc[64];
    int n;
} ended_t;

static void end_later(asr_sched_t *s, ended_t *e, asr_sched_job_t *job, asr_err_t rc) {
    atomic_store(&job->priv_state, JOB_FINISHED);
    if (e->n < 64) {
        e->jobs[e->n] = job;
        e->rc[e->n++] = rc;
        s->n_ending++;
    } else { /* cannot happen with 64 > workers; keep the job queued-finished semantics */
        pthread_mutex_unlock(&s->mu);
        job->done_cb(job, rc);
        pthread_mutex_lock(&s->mu);
    }
}

/* Calls the done_cbs of the jobs in `e` (under mu: unlocks around them, returns under it). */
static void finish_ended(asr_sched_t *s, ended_t *e) {
    int n = e->n;
    pthread_mutex_unlock(&s->mu);
    for (int i = 0; i < n; i++)
        e->jobs[i]->done_cb(e->jobs[i], e->rc[i]);
    e->n = 0;
    pthread_mutex_lock(&s->mu);
    s->n_ending -= n;
    pthread_cond_broadcast(&s->idle_cv);
}

/* Ends a queued job that waited past max_wait with ASR_ERR_BUSY (under mu). */
static void reject_overdue(asr_sched_t *s, asr_sched_job_t *job, double now, ended_t *ended) {
    unlink_job(s, job);
    char lead[96];
    snprintf(lead, sizeof lead, "the server is busy: waited %.0f s for a slot; ",
             now - job->priv_t_submit);
    busy_msg(s, job, lead);
    s->n_rejected++;
    end_later(s, ended, job, ASR_ERR_BUSY);
}

/* A job past max_wait at a device target with a target after it goes on to that target (and
 * waits up to max_wait again there); returns false when there is none (then it is rejected). */
static bool overdue_advance(asr_sched_t *s, asr_sched_job_t *job, double now) {
    int t[MAX_CHAIN + 2], n = targets(s, job, t);
    if (job->priv_fallback_pos + 1 >= n || !s->models[t[job->priv_fallback_pos]].on_dev)
        return false;
    job->priv_fallback_pos++;
    job->priv_t_wait = now;
    ASR_LOG(ASR_LOG_INFO, "msg=device_wait_over model=%s next=%s waited_s=%.1f",
            s->models[job->model].id, s->models[t[job->priv_fallback_pos]].id,
            now - job->priv_t_submit);
    return true;
}

/* Rejects (or moves on, overdue_advance) every queued job past max_wait and sets expiry_ms to the
 * next deadline (under mu). Called from asr_sched_job_beat: with every worker running a job, no
 * idle worker's dispatch looks at the queue, and a waiting request would otherwise wait as long
 * as the running ones. */
static void reject_all_overdue(asr_sched_t *s) {
    ended_t ended = {.n = 0};
    double now = asr_now_s(), first = INFINITY;
    for (asr_sched_job_t *job = s->head, *next; job; job = next) {
        next = job->priv_next;
        if (now - job->priv_t_wait > s->max_wait_s && !overdue_advance(s, job, now))
            reject_overdue(s, job, now, &ended);
        else if (job->priv_t_wait < first)
            first = job->priv_t_wait;
    }
    atomic_store(&s->expiry_ms,
                 isinf(first) ? INT64_MAX : (int64_t)((first + s->max_wait_s) * 1000.0) + 1);
    if (ended.n)
        finish_ended(s, &ended);
}

enum { T_ADMIT, T_WAIT, T_WAIT_MEM, T_SKIP };

/* Tries to start `job` on model m now: reserves a cached slot or the bytes of a new one (and the
 * model's when it must load). T_SKIP: m can never hold it now; T_WAIT: later (T_WAIT_MEM: when
 * asrd's own jobs release memory). */
static int try_target(asr_sched_t *s, asr_sched_job_t *job, model_t *m, pick_t *pk) {
    if (m->on_dev && (s->dev.lost || (m->reload && m->state != M_UNLOADED)))
        return T_WAIT; /* the device is being reset, or this model's copy is going */
    if (!ever_fits(s, m, job->n_seq, job->word_timestamps))
        return T_SKIP;
    if (m->state == M_LOADING || (m->state == M_LOADED && m->running >= s->max_parallel))
        return T_WAIT;
    memset(pk, 0, sizeof *pk);
    if (m->state == M_LOADED) {
        int best = -1; /* smallest cached slot that holds the job */
        for (int i = 0; i < m->n_cache; i++)
            if (m->cache[i].n_seq >= job->n_seq && (m->cache[i].words || !job->word_timestamps) &&
                (best < 0 || m->cache[i].bytes + m->cache[i].dbytes <
                                 m->cache[best].bytes + m->cache[best].dbytes))
                best = i;
        if (best >= 0) {
            pk->slot = m->cache[best];
            m->cache[best] = m->cache[--m->n_cache];
        }
    }
    if (!pk->slot.st) {
        size_t dneed = 0, need = slot_bytes(s, m, job->n_seq, job->word_timestamps, &dneed);
        bool load = m->state == M_UNLOADED;
        if (!asr__sched_make_room(s, need + (load ? m->weights : 0),
                                  dneed + (load ? m->dweights : 0), load && m->on_dev, m))
            return T_WAIT_MEM; /* waits until memory is released */
        pk->slot.n_seq = job->n_seq;
        pk->slot.words = job->word_timestamps;
        pk->slot.bytes = need;
        pk->slot.dbytes = dneed;
        s->used += need;
        s->dev.used += dneed;
        if (load) {
            m->state = M_LOADING;
            s->used += m->weights;
            if (m->on_dev)
                asr__dev_model_in(s, m);
            pk->load = true;
        }
    }
    return T_ADMIT;
}

static bool dispatch(asr_sched_t *s, pick_t *pk, ended_t *ended) {
    double now = asr_now_s();
    if (s->dev.present) {
        asr__dev_budget(s); /* re-read when due */
        if (s->dev.shrink)
            asr__dev_shrink(s);
    }
    for (asr_sched_job_t *job = s->head, *next; job; job = next) {
        next = job->priv_next;
        if (now - job->priv_t_wait > s->max_wait_s && !overdue_advance(s, job, now)) {
            reject_overdue(s, job, now, ended);
            continue;
        }
        if (s->n_busy >= s->max_parallel)
            return false;
        int t[MAX_CHAIN + 2], n = targets(s, job, t), k, r = T_SKIP;
        bool waiting = false;
        for (k = job->priv_fallback_pos; k < n; k++) {
            model_t *m = &s->models[t[k]];
            r = try_target(s, job, m, pk);
            if (r == T_ADMIT)
                break;
            if (r == T_SKIP)
                continue;
            waiting = true;
            if (r == T_WAIT_MEM && m->on_dev && !(job->priv_flags & 1)) {
                job->priv_flags |= 1; /* counted once per job */
                s->dev.n_waits++;
            }
            if (!(m->on_dev && s->dev.lost))
                break; /* waits for this target (a lost device: the next ones may serve) */
        }
        if (r != T_ADMIT) {
            if (!waiting) {
                unlink_job(s, job);
                never_fits_msg(s, job);
                end_later(s, ended, job, ASR_ERR_NOMEM);
            }
            continue;
        }
        model_t *m = &s->models[t[k]];
        pk->job = job;
        pk->m = m;
        pk->k = k;
        m->busy_bytes += pk->slot.bytes;
        m->busy_dbytes += pk->slot.dbytes;
        m->running++;
        unlink_job(s, job);
        job->served_model = m->twin_of >= 0 ? m->twin_of : t[k];
        job->served_device = m->on_dev ? s->dev.name : "cpu";
        if (job->served_model != job->model) {
            s->n_fallbacks++;
            if (m->on_dev)
                s->dev.n_fallbacks_model++;
        }
        if (s->dev.present && s->models[job->model].on_dev) {
            s->dev.serving_on_cpu = !m->on_dev;
            if (m->twin_of >= 0)
                s->dev.n_fallbacks_cpu++;
        }
        atomic_store(&job->priv_state, JOB_RUNNING);
        s->n_busy++;
        return true;
    }
    return false;
}

/* Unloads models idle past their keep-alive (under mu). */
static void expire(asr_sched_t *s) {
    double now = asr_now_s();
    for (int i = 0; i < s->n_all; i++) {
        model_t *m = &s->models[i];
        if (m->state == M_LOADED && m->running == 0 && m->keep_alive >= 0 &&
            now - m->last_used > m->keep_alive)
            asr__sched_unload(s, m, "keep_alive");
    }
}

/* ---- running a pick (outside mu, then back under it) ---- */

asr_err_t asr__sched_load_model(asr_sched_t *s, model_t *m, char *err, size_t errlen) {
    asr_model_params_t mp = asr_model_default_params();
    mp.n_threads = s->threads_per_job;
    mp.compute_type = m->compute_type;
    mp.device = m->load_device;
    mp.max_batch = s->max_batch;
    double t0 = asr_now_s();
    asr_model_t *mod = NULL;
    asr_err_t rc = asr_model_load(m->dir, &mp, &mod, err, errlen);
    if (rc == ASR_OK) {
        m->model = mod; /* published under mu by the caller */
        ASR_LOG(ASR_LOG_INFO,
                "msg=model_loaded model=%s weight_bytes=%zu plan_bytes=%zu device_plan_bytes=%zu "
                "load_s=%.2f device=%s device_line=\"%s\"",
                m->id, asr_model_weight_bytes(mod), m->weights, m->dweights, asr_now_s() - t0,
                asr_model_device(mod), asr_model_device_line(mod));
    }
    return rc;
}

/* A failure the policy retries (a smaller slot, then the next target): out of memory, and a
 * device's failure. */
static bool retryable(asr_err_t rc) { return rc == ASR_ERR_NOMEM || rc == ASR_ERR_GPU; }

static void run_pick(worker_t *wk, pick_t *pk, ended_t *ended) {
    asr_sched_t *s = wk->s;
    asr_sched_job_t *job = pk->job;
    model_t *m = pk->m;
    char err[512] = "";
    asr_err_t rc = ASR_OK;
    job->priv_worker = wk->index;
    atomic_store(&wk->beat_ms, now_ms());
    atomic_store(&wk->busy, 1);
    pthread_mutex_unlock(&s->mu);

    asr_model_t *loaded = NULL;
    if (pk->load) {
        rc = asr__sched_load_model(s, m, err, sizeof err);
        loaded = rc == ASR_OK ? m->model : NULL;
        if (rc != ASR_OK && !err[0])
            snprintf(err, sizeof err, "loading model %s failed: %s", m->id, asr_strerror(rc));
    }
    if (rc == ASR_OK && !pk->slot.st) {
        const asr_model_t *mod = pk->load ? loaded : m->model;
        rc = asr_stream_create_slot(mod, pk->slot.n_seq, &pk->slot.st);
        if (rc != ASR_OK)
            snprintf(err, sizeof err, "%s creating a slot of %.0f MiB%s for model %s",
                     rc == ASR_ERR_GPU ? "device error" : "out of memory",
                     MIB(pk->slot.bytes + pk->slot.dbytes), m->on_dev ? " (device)" : "", m->id);
    }
    double t0 = asr_now_s();
    if (rc == ASR_OK) {
        if (pk->load) { /* publish the model before running, so status shows it */
            pthread_mutex_lock(&s->mu);
            m->state = M_LOADED;
            m->reload = false;
            s->n_loads++;
            pthread_mutex_unlock(&s->mu);
        }
        job->attempts++;
        rc = job->run_cb(job, pk->slot.st);
        if (rc == ASR_ERR_NOMEM)
            snprintf(err, sizeof err, "out of memory while transcribing with model %s%s%s", m->id,
                     m->on_dev ? " on " : "", m->on_dev ? s->dev.name : "");
        else if (rc == ASR_ERR_GPU)
            snprintf(err, sizeof err, "device error while transcribing with model %s on %s: %s",
                     m->id, s->dev.name, pk->slot.st ? asr_stream_errmsg(pk->slot.st) : "");
    }
    /* a device error that lost the context (the model answers; it is ours while running) */
    bool lost = rc == ASR_ERR_GPU && m->on_dev && m->model && asr_model_device_lost(m->model);
    double dt = asr_now_s() - t0;
    atomic_store(&wk->busy, 0);
    atomic_store(&wk->beat_ms, now_ms());

    pthread_mutex_lock(&s->mu);
    m->running--;
    m->busy_bytes -= pk->slot.bytes;
    m->busy_dbytes -= pk->slot.dbytes;
    m->last_used = asr_now_s();
    m->keep_alive =
        job->keep_alive_s != ASR_SCHED_KEEP_ALIVE_DEFAULT ? job->keep_alive_s : s->keep_alive_s;
    s->n_busy--;
    if (m->on_dev && retryable(rc)) {
        s->dev.n_oom_retries++;
        asr__dev_error(s, err);
    }
    bool keep_slot = rc == ASR_OK && pk->slot.st && m->n_cache < s->max_parallel &&
                     m->state == M_LOADED && !(m->on_dev && (lost || m->reload));
    if (keep_slot) {
        m->cache[m->n_cache++] = pk->slot; /* keeps its bytes reserved */
    } else if (pk->slot.st) {
        asr__sched_free_slot(s, &pk->slot); /* before its model may go below */
    } else {
        s->used -= pk->slot.bytes;
        s->dev.used -= pk->slot.dbytes;
    }
    if (pk->load && m->state == M_LOADING) { /* load or first slot failed */
        if (loaded) {
            asr_model_destroy(loaded);
            m->model = NULL;
        }
        m->state = M_UNLOADED;
        s->used -= m->weights;
        if (m->on_dev)
            asr__dev_model_out(s, m);
    }
    if (lost)
        asr__dev_mark_lost(s, err);
    if (m->on_dev && m->reload && m->running == 0 && m->state == M_LOADED)
        asr__sched_unload(s, m, "device_lost"); /* its jobs are done: reloaded once reset */
    if (rc == ASR_OK) {
        s->n_done++;
        s->avg_job_s = 0.8 * s->avg_job_s + 0.2 * dt;
        end_later(s, ended, job, ASR_OK);
    } else if (retryable(rc) && !atomic_load(&job->priv_cancelled)) {
        /* policy: one sequence first, then the next target (the fallback chain on the device,
         * the CPU twin), then give up */
        int t[MAX_CHAIN + 2], n = targets(s, job, t);
        ASR_LOG(ASR_LOG_WARN, "msg=oom_retry model=%s device=%s n_seq=%d reason=\"%s\"", m->id,
                m->on_dev ? s->dev.name : "cpu", job->n_seq, err);
        s->n_oom_retries++;
        if (job->n_seq > 1) {
            job->n_seq = 1;
            enqueue(s, job, true);
        } else if (pk->k + 1 < n) {
            job->priv_fallback_pos = pk->k + 1;
            enqueue(s, job, true);
        } else {
            snprintf(job->errmsg, sizeof job->errmsg, "%.200s; no smaller setting or fallback left",
                     err);
            end_later(s, ended, job, ASR_ERR_NOMEM);
        }
    } else {
        if (err[0])
            snprintf(job->errmsg, sizeof job->errmsg, "%.250s", err);
        end_later(s, ended, job, retryable(rc) ? ASR_ERR_CANCELLED : rc);
    }
    pthread_cond_broadcast(&s->work_cv);
    pthread_cond_broadcast(&s->idle_cv);
}

static void *worker_main(void *arg) {
    worker_t *wk = arg;
    asr_sched_t *s = wk->s;
    ended_t ended = {.n = 0};
    pthread_mutex_lock(&s->mu);
    while (!s->stop) {
        pick_t pk;
        bool got = dispatch(s, &pk, &ended);
        if (got) {
            wk->current = pk.job;
            run_pick(wk, &pk, &ended); /* returns under mu */
            wk->current = NULL;
        }
        if (ended.n) {
            finish_ended(s, &ended);
            continue;
        }
        if (got || asr__dev_reload_step(s))
            continue;
        expire(s);
        asr_cond_timedwait_s(&s->work_cv, &s->mu, 0.25);
        atomic_store(&wk->beat_ms, now_ms());
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ---- create / destroy ---- */

static int parse_chains(asr_sched_t *s, const char *spec, char *errbuf, size_t errbuf_len) {
    if (!spec || !*spec)
        return 0;
    char *copy = asr_xstrdup(spec), *save = NULL;
    int rc = 0;
    for (char *item = strtok_r(copy, ",", &save); item && !rc; item = strtok_r(NULL, ",", &save)) {
        int idx[MAX_CHAIN + 1], n = 0;
        char *save2 = NULL;
        for (char *name = strtok_r(item, ">", &save2); name; name = strtok_r(NULL, ">", &save2)) {
            while (*name == ' ')
                name++;
            size_t l = strlen(name);
            while (l && name[l - 1] == ' ')
                name[--l] = 0;
            int i = asr_sched_model_find(s, name);
            if (i < 0) {
                asr_errf(errbuf, errbuf_len, "fallback: model '%s' is not served (see --models)",
                         name);
                rc = -1;
                break;
            }
            if (n > MAX_CHAIN) {
                asr_errf(errbuf, errbuf_len, "fallback: chain longer than %d models", MAX_CHAIN);
                rc = -1;
                break;
            }
            idx[n++] = i;
        }
        if (!rc && n < 2) {
            asr_errf(errbuf, errbuf_len, "fallback: '%s' needs at least two models (a>b)", item);
            rc = -1;
        }
        if (!rc) {
            model_t *m = &s->models[idx[0]];
            m->n_chain = n - 1;
            for (int k = 1; k < n; k++)
                m->chain[k - 1] = idx[k];
        }
    }
    free(copy);
    return rc;
}

asr_err_t asr_sched_create(const asr_sched_params_t *p, asr_sched_t **out, char *errbuf,
                           size_t errbuf_len) {
    *out = NULL;
    if (p->n_models < 1 || p->max_parallel < 1 || p->max_queue < 0) {
        asr_errf(errbuf, errbuf_len, "scheduler needs at least one model and one slot");
        return ASR_ERR_INVALID;
    }
    asr_sched_t *s = asr_xcalloc(1, sizeof *s);
    s->n_models = s->n_all = p->n_models;
    s->models = asr_xcalloc(2 * (size_t)p->n_models, sizeof *s->models); /* room for twins */
    s->max_parallel = p->max_parallel;
    s->max_queue = p->max_queue;
    s->compute_type = p->compute_type ? asr_xstrdup(p->compute_type) : NULL;
    s->device = p->device ? asr_xstrdup(p->device) : NULL;
    s->max_batch = p->max_batch;
    s->max_wait_s = p->max_wait_s > 0 ? p->max_wait_s : 300.0;
    s->keep_alive_s = p->keep_alive_s;
    s->refresh_s = p->budget_refresh_s > 0 ? p->budget_refresh_s : 2.0;
    s->limit = p->memory_limit;
    s->reserve = p->memory_reserve;
    s->accepting = true;
    atomic_store(&s->expiry_ms, INT64_MAX);
    s->avg_job_s = 5.0;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int threads = p->n_threads > 0 ? p->n_threads : (int)(cores > 0 ? cores : 1);
    s->threads_per_job = threads / p->max_parallel < 1 ? 1 : threads / p->max_parallel;
    pthread_mutex_init(&s->mu, NULL);
    asr_cond_init(&s->work_cv);
    asr_cond_init(&s->idle_cv);
    asr_err_t rc = ASR_OK;
    for (int i = 0; i < p->n_models && rc == ASR_OK; i++) {
        model_t *m = &s->models[i];
        m->id = asr_xstrdup(p->models[i].id);
        m->dir = asr_xstrdup(p->models[i].dir);
        m->compute_type = s->compute_type;
        m->plan_type = asr_compute_type_name(s->compute_type) ? s->compute_type : NULL;
        m->load_device = s->device;
        m->twin_of = m->twin = -1;
        m->keep_alive = p->keep_alive_s;
        m->cache = asr_xcalloc((size_t)p->max_parallel, sizeof *m->cache);
        char err[512] = "";
        rc = asr_model_probe(m->dir, &m->info, err, sizeof err);
        asr_plan_t plan;
        if (rc == ASR_OK && asr_plan_compute(&m->info, m->plan_type, 1, false, &plan) == ASR_OK)
            m->weights = plan.weights;
        if (rc != ASR_OK)
            asr_errf(errbuf, errbuf_len, "cannot load model '%s' from %s: %s", m->id, m->dir,
                     err[0] ? err : asr_strerror(rc));
    }
    if (rc == ASR_OK)
        rc = asr__dev_init(s, p, errbuf, errbuf_len);
    if (rc == ASR_OK && parse_chains(s, p->fallback, errbuf, errbuf_len) != 0)
        rc = ASR_ERR_INVALID;
    if (rc == ASR_OK && p->preload) {
        model_t *m = &s->models[0];
        pthread_mutex_lock(&s->mu);
        bool fits = asr__sched_make_room(s, m->weights, m->dweights, m->on_dev, m);
        if (fits) {
            m->state = M_LOADING;
            s->used += m->weights;
            if (m->on_dev)
                asr__dev_model_in(s, m);
        }
        pthread_mutex_unlock(&s->mu);
        if (fits) {
            char err[512] = "";
            asr_err_t lrc = asr__sched_load_model(s, m, err, sizeof err);
            pthread_mutex_lock(&s->mu);
            if (lrc == ASR_OK) {
                m->state = M_LOADED;
                m->last_used = asr_now_s();
                s->n_loads++;
            } else {
                m->state = M_UNLOADED;
                s->used -= m->weights;
                if (m->on_dev)
                    asr__dev_model_out(s, m);
            }
            pthread_mutex_unlock(&s->mu);
            if (lrc != ASR_OK && m->on_dev && (lrc == ASR_ERR_NOMEM || lrc == ASR_ERR_GPU)) {
                /* the device is short now: the model loads on first use (or serves elsewhere) */
                ASR_LOG(ASR_LOG_WARN, "msg=preload_failed model=%s device=%s reason=\"%s\"", m->id,
                        s->dev.name, err);
            } else if (lrc != ASR_OK) {
                rc = lrc;
                asr_errf(errbuf, errbuf_len, "cannot load model '%s' from %s: %s", m->id, m->dir,
                         err[0] ? err : asr_strerror(lrc));
            }
        } else {
            ASR_LOG(ASR_LOG_WARN,
                    "msg=preload_skipped model=%s weights_mib=%.0f budget_mib=%.0f "
                    "device_weights_mib=%.0f device_budget_mib=%.0f",
                    m->id, MIB(m->weights), MIB(s->budget), MIB(m->dweights), MIB(s->dev.budget));
        }
    }
    s->workers = asr_xcalloc((size_t)p->max_parallel, sizeof *s->workers);
    for (int w = 0; w < p->max_parallel && rc == ASR_OK; w++) {
        worker_t *wk = &s->workers[w];
        wk->s = s;
        wk->index = w;
        atomic_store(&wk->beat_ms, now_ms());
        if (pthread_create(&wk->thread, NULL, worker_main, wk) != 0) {
            asr_errf(errbuf, errbuf_len, "cannot start worker thread");
            rc = ASR_ERR_NOMEM;
        } else {
            wk->started = true;
        }
    }
    if (rc != ASR_OK) {
        asr_sched_destroy(s);
        return rc;
    }
    pthread_mutex_lock(&s->mu);
    uint64_t b = budget(s);
    pthread_mutex_unlock(&s->mu);
    ASR_LOG(ASR_LOG_INFO,
            "msg=sched_ready max_parallel=%d threads_per_job=%d max_queue=%d budget_mib=%.0f "
            "limit=%s device=%s device_budget_mib=%.0f gpu_fallback=%s",
            s->max_parallel, s->threads_per_job, s->max_queue, MIB(b),
            s->limit ? "configured" : "measured", s->dev.present ? s->dev.name : "cpu",
            MIB(s->dev.budget), s->dev.fallback_cpu ? "cpu" : "none");
    *out = s;
    return ASR_OK;
}

void asr_sched_destroy(asr_sched_t *s) {
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    s->accepting = false;
    pthread_cond_broadcast(&s->work_cv);
    pthread_mutex_unlock(&s->mu);
    for (int w = 0; s->workers && w < s->max_parallel; w++)
        if (s->workers[w].started)
            pthread_join(s->workers[w].thread, NULL);
    asr_sched_job_t *j;
    while ((j = s->head)) {
        unlink_job(s, j);
        atomic_store(&j->priv_state, JOB_FINISHED);
        j->done_cb(j, ASR_ERR_AGAIN);
    }
    for (int i = 0; i < s->n_all; i++) { /* twins first would not matter: separate models */
        model_t *m = &s->models[i];
        if (m->state != M_UNLOADED)
            asr__sched_unload(s, m, "shutdown");
        free(m->cache);
        free(m->id);
        free(m->dir);
    }
    free(s->models);
    free(s->compute_type);
    free(s->cpu_type);
    free(s->device);
    free(s->workers);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->work_cv);
    pthread_cond_destroy(&s->idle_cv);
    free(s);
}

/* ---- queries ---- */

int asr_sched_n_models(const asr_sched_t *s) { return s->n_models; }

int asr_sched_model_find(const asr_sched_t *s, const char *id) {
    for (int i = 0; i < s->n_models; i++)
        if (!strcmp(s->models[i].id, id))
            return i;
    return -1;
}

const char *asr_sched_model_id(const asr_sched_t *s, int i) { return s->models[i].id; }
const char *asr_sched_model_dir(const asr_sched_t *s, int i) { return s->models[i].dir; }
const asr_model_info_t *asr_sched_model_info(const asr_sched_t *s, int i) {
    return &s->models[i].info;
}

void asr_sched_model_status(asr_sched_t *s, int i, asr_sched_model_status_t *o) {
    memset(o, 0, sizeof *o);
    pthread_mutex_lock(&s->mu);
    model_t *m = &s->models[i];
    double now = asr_now_s();
    o->id = m->id;
    o->state = m->state == M_LOADED ? "loaded" : m->state == M_LOADING ? "loading" : "unloaded";
    size_t d = 0, h = slot_bytes(s, m, ASR_DEFAULT_N_SEQ, false, &d);
    o->weights_bytes = m->on_dev ? m->dweights : m->weights;
    o->slot_bytes = m->on_dev ? d : h;
    o->slots_bytes = m->on_dev ? m->busy_dbytes : m->busy_bytes;
    for (int k = 0; k < m->n_cache; k++)
        o->slots_bytes += m->on_dev ? m->cache[k].dbytes : m->cache[k].bytes;
    o->device = m->on_dev ? s->dev.name : "cpu";
    if (m->twin >= 0) {
        const model_t *t = &s->models[m->twin];
        o->cpu_state = t->state == M_LOADED    ? "loaded"
                       : t->state == M_LOADING ? "loading"
                                               : "unloaded";
        o->cpu_weights_bytes = t->weights;
        o->cpu_slots_in_use = t->running;
    }
    o->slots_in_use = m->running;
    o->slots_cached = m->n_cache;
    for (asr_sched_job_t *j = s->head; j; j = j->priv_next)
        o->queued += j->model == i;
    o->expires_in_s = -1;
    if (m->state == M_LOADED && m->keep_alive >= 0) {
        double left = m->running ? m->keep_alive : m->keep_alive - (now - m->last_used);
        o->expires_in_s = left > 0 ? left : 0;
    }
    o->last_used_s = m->last_used > 0 ? now - m->last_used : -1;
    pthread_mutex_unlock(&s->mu);
}

/* ---- jobs ---- */

asr_err_t asr_sched_submit(asr_sched_t *s, asr_sched_job_t *job) {
    job->errmsg[0] = 0;
    if (job->model < 0 || job->model >= s->n_models || !job->run_cb || !job->done_cb ||
        job->n_seq < 1 || job->n_seq > 8)
        return ASR_ERR_INVALID;
    job->priv_next = NULL;
    job->priv_sched = s;
    job->priv_worker = -1;
    job->priv_fallback_pos = 0;
    job->served_model = -1;
    job->attempts = 0;
    atomic_store(&job->priv_cancelled, 0);
    job->priv_t_submit = asr_now_s();
    job->priv_t_wait = job->priv_t_submit;
    job->priv_flags = 0;
    job->served_device = NULL;
    pthread_mutex_lock(&s->mu);
    asr_err_t rc = ASR_OK;
    int free_slots = s->max_parallel - s->n_busy;
    if (!s->accepting) {
        rc = ASR_ERR_AGAIN;
    } else if (first_target(s, job) < 0) {
        never_fits_msg(s, job);
        rc = ASR_ERR_NOMEM;
    } else if (s->depth - (free_slots > 0 ? free_slots : 0) >= s->max_queue) {
        job->served_model = job->model;
        busy_msg(s, job, "the server is busy, its queue is full: ");
        job->served_model = -1;
        rc = ASR_ERR_BUSY;
    }
    if (rc == ASR_OK) {
        enqueue(s, job, false);
        pthread_cond_broadcast(&s->work_cv);
    } else {
        s->n_rejected++;
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

bool asr_sched_cancel(asr_sched_t *s, asr_sched_job_t *job) {
    bool removed = false;
    pthread_mutex_lock(&s->mu);
    atomic_store(&job->priv_cancelled, 1);
    if (atomic_load(&job->priv_state) == JOB_QUEUED) {
        unlink_job(s, job);
        atomic_store(&job->priv_state, JOB_FINISHED);
        removed = true;
        pthread_cond_broadcast(&s->idle_cv);
    }
    pthread_mutex_unlock(&s->mu);
    if (removed)
        job->done_cb(job, ASR_ERR_CANCELLED);
    return removed;
}

bool asr_sched_job_cancelled(const asr_sched_job_t *job) {
    return atomic_load(&job->priv_cancelled) != 0;
}

void asr_sched_job_beat(asr_sched_job_t *job) {
    asr_sched_t *s = job->priv_sched;
    if (!s || job->priv_worker < 0)
        return;
    int64_t now = now_ms();
    atomic_store(&s->workers[job->priv_worker].beat_ms, now);
    if (now >= atomic_load(&s->expiry_ms)) { /* a queued job may be past max_wait */
        pthread_mutex_lock(&s->mu);
        reject_all_overdue(s);
        pthread_mutex_unlock(&s->mu);
    }
}

int asr_sched_job_threads(const asr_sched_job_t *job) {
    return job->priv_sched ? job->priv_sched->threads_per_job : 1;
}

void asr_sched_stats(asr_sched_t *s, asr_sched_stats_t *out) {
    memset(out, 0, sizeof *out);
    int64_t now = now_ms();
    pthread_mutex_lock(&s->mu);
    out->max_parallel = s->max_parallel;
    out->n_busy = s->n_busy;
    out->queue_depth = s->depth;
    out->max_queue = s->max_queue;
    out->n_done = s->n_done;
    out->n_rejected = s->n_rejected;
    out->n_evictions = s->n_evictions;
    out->n_loads = s->n_loads;
    out->n_fallbacks = s->n_fallbacks;
    out->n_oom_retries = s->n_oom_retries;
    out->budget_bytes = budget(s);
    out->used_bytes = s->used;
    pthread_mutex_unlock(&s->mu);
    for (int w = 0; w < s->max_parallel; w++) {
        if (!atomic_load(&s->workers[w].busy))
            continue;
        double age = (double)(now - atomic_load(&s->workers[w].beat_ms)) / 1000.0;
        if (age > out->stalled_s)
            out->stalled_s = age;
    }
}

int asr_sched_retry_after(asr_sched_t *s) {
    pthread_mutex_lock(&s->mu);
    double est = s->avg_job_s * (double)(s->depth + 1) / (double)s->max_parallel;
    pthread_mutex_unlock(&s->mu);
    int secs = (int)ceil(est);
    return secs < 1 ? 1 : secs > 120 ? 120 : secs;
}

/* Until nothing is queued or running and every ended job's done_cb has returned (drain's
 * "waited for": its caller may free what done_cb uses once it returns). */
static bool wait_idle(asr_sched_t *s, double until) {
    while (s->depth > 0 || s->n_busy > 0 || s->n_ending > 0) {
        double left = until - asr_now_s();
        if (left <= 0)
            return false;
        asr_cond_timedwait_s(&s->idle_cv, &s->mu, left < 0.2 ? left : 0.2);
    }
    return true;
}

void asr_sched_drain(asr_sched_t *s, double deadline_s) {
    pthread_mutex_lock(&s->mu);
    s->accepting = false;
    bool idle = wait_idle(s, asr_now_s() + deadline_s);
    asr_sched_job_t *dropped = NULL;
    if (!idle) {
        ASR_LOG(ASR_LOG_WARN, "msg=shutdown_deadline queued=%d running=%d", s->depth, s->n_busy);
        asr_sched_job_t *j;
        while ((j = s->head)) {
            unlink_job(s, j);
            atomic_store(&j->priv_state, JOB_FINISHED);
            j->priv_next = dropped;
            dropped = j;
        }
    }
    pthread_mutex_unlock(&s->mu);
    while (dropped) {
        asr_sched_job_t *next = dropped->priv_next;
        dropped->done_cb(dropped, ASR_ERR_AGAIN);
        dropped = next;
    }
    if (idle)
        return;
    pthread_mutex_lock(&s->mu);
    for (int w = 0; w < s->max_parallel; w++)
        if (s->workers[w].current)
            atomic_store(&s->workers[w].current->priv_cancelled, 1);
    wait_idle(s, INFINITY);
    pthread_mutex_unlock(&s->mu);
}
