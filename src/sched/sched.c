/* sched: the memory-contract scheduler (see sched.h).
 *
 * One mutex guards everything below. Workers (max_parallel threads) pick work with dispatch(): the
 * first queued job that can start now, with its memory reserved in the same critical section
 * (a slot's bytes, plus the weights when its model must be loaded first), so the sum of
 * reservations never exceeds the budget. Loading a model and creating a slot happen outside the
 * lock, on the worker that reserved them.
 *
 * Invariants (under mu): used = sum of weights of LOADING/LOADED models + bytes of every slot
 * (running or cached) <= budget, except transiently after the measured budget shrinks (then
 * nothing new starts until enough is released); a job is in the queue iff its state is QUEUED;
 * n_busy counts jobs RUNNING; done_cb is called outside the mutex, after the last access. */
#include "sched/sched.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/core.h"

enum { JOB_NEW = 0, JOB_QUEUED, JOB_RUNNING, JOB_FINISHED };
enum { M_UNLOADED = 0, M_LOADING, M_LOADED };

#define MAX_CHAIN 8
#define MIB(b) ((double)(b) / (1024.0 * 1024.0))

typedef struct {
    asr_stream_t *st;
    int n_seq;
    bool words;
    size_t bytes;
} slot_t;

typedef struct {
    char *id, *dir;
    const char *compute_type; /* the scheduler's (NULL: float32) */
    const char *plan_type;    /* the host plan's: compute_type, or NULL (float32) for a GPU-only
                                 type (float16, int8_float16), whose weights live on the device:
                                 the CPU's float32 plan overestimates the host bytes until the GPU
                                 memory contract plans device memory */
    asr_model_info_t info;
    size_t weights; /* plan */
    int state;
    asr_model_t *model;
    int running;
    slot_t *cache; /* idle slots [n_cache], at most max_parallel */
    int n_cache;
    size_t busy_bytes;    /* slots of running jobs */
    double last_used;     /* monotonic seconds; 0 = never */
    double keep_alive;    /* < 0: forever */
    int chain[MAX_CHAIN]; /* fallback model indices after this one */
    int n_chain;
} model_t;

typedef struct {
    asr_sched_t *s;
    int index;
    pthread_t thread;
    bool started;
    _Atomic int64_t beat_ms;
    atomic_int busy;
    asr_sched_job_t *current; /* RUNNING job, under mu */
} worker_t;

struct asr_sched {
    model_t *models;
    int n_models;
    int max_parallel, max_queue, threads_per_job;
    double max_wait_s, keep_alive_s, refresh_s;
    char *compute_type;
    char *device; /* NULL: the CPU */
    int max_batch;
    uint64_t limit, reserve;
    worker_t *workers;

    pthread_mutex_t mu;
    pthread_cond_t work_cv;
    pthread_cond_t idle_cv;
    asr_sched_job_t *head, *tail;
    int depth, n_busy;
    int n_ending; /* jobs ended under mu whose done_cb has not returned yet (end_later) */
    _Atomic int64_t expiry_ms; /* no queued job is past max_wait before this (INT64_MAX: none) */
    bool accepting, stop;
    size_t used;
    uint64_t budget;
    double budget_at;
    uint64_t n_done, n_rejected, n_evictions, n_loads, n_fallbacks, n_oom_retries;
    double avg_job_s;
};

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

static size_t slot_bytes(const model_t *m, int n_seq, bool words) {
    asr_plan_t p;
    if (asr_plan_compute(&m->info, m->plan_type, n_seq, words, &p) != ASR_OK)
        return SIZE_MAX / 4;
    return p.slot;
}

/* ---- model residency (under mu) ---- */

static void free_slot(asr_sched_t *s, slot_t *sl) {
    asr_stream_destroy(sl->st);
    s->used -= sl->bytes;
    memset(sl, 0, sizeof *sl);
}

static void drop_cache(asr_sched_t *s, model_t *m) {
    for (int i = 0; i < m->n_cache; i++)
        free_slot(s, &m->cache[i]);
    m->n_cache = 0;
}

static void unload(asr_sched_t *s, model_t *m, const char *why) {
    drop_cache(s, m);
    asr_model_destroy(m->model);
    m->model = NULL;
    m->state = M_UNLOADED;
    s->used -= m->weights;
    ASR_LOG(ASR_LOG_INFO, "msg=model_unloaded model=%s reason=%s used_mib=%.0f", m->id, why,
            MIB(s->used));
}

/* Frees cached slots (other models first), then idle models least recently used, until `need`
 * more bytes fit. `keep` is never evicted. Returns true when they fit. */
static bool make_room(asr_sched_t *s, size_t need, const model_t *keep) {
    uint64_t b = budget(s);
    for (int pass = 0; pass < 2 && s->used + need > b; pass++)
        for (int i = 0; i < s->n_models && s->used + need > b; i++) {
            model_t *m = &s->models[i];
            if ((pass == 0) == (m == keep))
                continue;
            drop_cache(s, m);
        }
    while (s->used + need > b) {
        model_t *lru = NULL;
        for (int i = 0; i < s->n_models; i++) {
            model_t *m = &s->models[i];
            if (m == keep || m->state != M_LOADED || m->running > 0)
                continue;
            if (!lru || m->last_used < lru->last_used)
                lru = m;
        }
        if (!lru)
            return false;
        unload(s, lru, "evicted");
        s->n_evictions++;
    }
    return true;
}

/* Could model m ever run a job of n_seq sequences within the budget (everything else evicted)? */
static bool ever_fits(asr_sched_t *s, const model_t *m, int n_seq, bool words) {
    return m->weights + slot_bytes(m, n_seq, words) <= budget(s);
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
    int64_t due = (int64_t)((job->priv_t_submit + s->max_wait_s) * 1000.0) + 1;
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

/* The model that should serve `job` now: its requested model or the first model of the chain
 * from priv_fallback_pos on that can ever fit; -1 if none. */
static int target(asr_sched_t *s, asr_sched_job_t *job) {
    const model_t *req = &s->models[job->model];
    for (int pos = job->priv_fallback_pos; pos <= req->n_chain; pos++) {
        if (pos > 0 && !job->allow_fallback)
            break;
        int c = pos == 0 ? job->model : req->chain[pos - 1];
        if (ever_fits(s, &s->models[c], job->n_seq, job->word_timestamps)) {
            job->priv_fallback_pos = pos;
            return c;
        }
    }
    return -1;
}

static void never_fits_msg(asr_sched_t *s, asr_sched_job_t *job) {
    const model_t *m = &s->models[job->model];
    snprintf(job->errmsg, sizeof job->errmsg,
             "model %s needs %.0f MiB of weights and %.0f MiB per request; the memory budget is "
             "%.0f MiB%s",
             m->id, MIB(m->weights), MIB(slot_bytes(m, job->n_seq, job->word_timestamps)),
             MIB(budget(s)),
             m->n_chain && job->allow_fallback ? " and no model of its fallback chain fits"
                                               : " and it has no fallback that fits");
}

static void busy_msg(asr_sched_t *s, asr_sched_job_t *job, const char *lead) {
    const model_t *m = &s->models[job->served_model >= 0 ? job->served_model : job->model];
    size_t need =
        slot_bytes(m, job->n_seq, job->word_timestamps) + (m->state == M_UNLOADED ? m->weights : 0);
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

/* Rejects every queued job past max_wait and sets expiry_ms to the next deadline (under mu).
 * Called from asr_sched_job_beat: with every worker running a job, no idle worker's dispatch
 * looks at the queue, and a waiting request would otherwise wait as long as the running ones. */
static void reject_all_overdue(asr_sched_t *s) {
    ended_t ended = {.n = 0};
    double now = asr_now_s(), first = INFINITY;
    for (asr_sched_job_t *job = s->head, *next; job; job = next) {
        next = job->priv_next;
        if (now - job->priv_t_submit > s->max_wait_s)
            reject_overdue(s, job, now, &ended);
        else if (job->priv_t_submit < first)
            first = job->priv_t_submit;
    }
    atomic_store(&s->expiry_ms,
                 isinf(first) ? INT64_MAX : (int64_t)((first + s->max_wait_s) * 1000.0) + 1);
    if (ended.n)
        finish_ended(s, &ended);
}

static bool dispatch(asr_sched_t *s, pick_t *pk, ended_t *ended) {
    double now = asr_now_s();
    for (asr_sched_job_t *job = s->head, *next; job; job = next) {
        next = job->priv_next;
        if (now - job->priv_t_submit > s->max_wait_s) {
            reject_overdue(s, job, now, ended);
            continue;
        }
        if (s->n_busy >= s->max_parallel)
            return false;
        int c = target(s, job);
        if (c < 0) {
            unlink_job(s, job);
            never_fits_msg(s, job);
            end_later(s, ended, job, ASR_ERR_NOMEM);
            continue;
        }
        model_t *m = &s->models[c];
        if (m->state == M_LOADING || (m->state == M_LOADED && m->running >= s->max_parallel))
            continue;
        memset(pk, 0, sizeof *pk);
        pk->job = job;
        pk->m = m;
        if (m->state == M_LOADED) {
            int best = -1; /* smallest cached slot that holds the job */
            for (int i = 0; i < m->n_cache; i++)
                if (m->cache[i].n_seq >= job->n_seq &&
                    (m->cache[i].words || !job->word_timestamps) &&
                    (best < 0 || m->cache[i].bytes < m->cache[best].bytes))
                    best = i;
            if (best >= 0) {
                pk->slot = m->cache[best];
                m->cache[best] = m->cache[--m->n_cache];
            }
        }
        if (!pk->slot.st) {
            size_t need = slot_bytes(m, job->n_seq, job->word_timestamps);
            size_t total = need + (m->state == M_UNLOADED ? m->weights : 0);
            if (!make_room(s, total, m))
                continue; /* waits until memory is released */
            pk->slot.n_seq = job->n_seq;
            pk->slot.words = job->word_timestamps;
            pk->slot.bytes = need;
            s->used += need;
            if (m->state == M_UNLOADED) {
                m->state = M_LOADING;
                s->used += m->weights;
                pk->load = true;
            }
        }
        m->busy_bytes += pk->slot.bytes;
        m->running++;
        unlink_job(s, job);
        job->served_model = c;
        job->served_device = "cpu";
        if (c != job->model)
            s->n_fallbacks++;
        atomic_store(&job->priv_state, JOB_RUNNING);
        s->n_busy++;
        return true;
    }
    return false;
}

/* Unloads models idle past their keep-alive (under mu). */
static void expire(asr_sched_t *s) {
    double now = asr_now_s();
    for (int i = 0; i < s->n_models; i++) {
        model_t *m = &s->models[i];
        if (m->state == M_LOADED && m->running == 0 && m->keep_alive >= 0 &&
            now - m->last_used > m->keep_alive)
            unload(s, m, "keep_alive");
    }
}

/* ---- running a pick (outside mu, then back under it) ---- */

static asr_err_t load_model(asr_sched_t *s, model_t *m, char *err, size_t errlen) {
    asr_model_params_t mp = asr_model_default_params();
    mp.n_threads = s->threads_per_job;
    mp.compute_type = m->compute_type;
    mp.device = s->device;
    mp.max_batch = s->max_batch;
    double t0 = asr_now_s();
    asr_model_t *mod = NULL;
    asr_err_t rc = asr_model_load(m->dir, &mp, &mod, err, errlen);
    if (rc == ASR_OK) {
        m->model = mod; /* published under mu by the caller */
        ASR_LOG(ASR_LOG_INFO,
                "msg=model_loaded model=%s weight_bytes=%zu plan_bytes=%zu load_s=%.2f device=%s "
                "device_line=\"%s\"",
                m->id, asr_model_weight_bytes(mod), m->weights, asr_now_s() - t0,
                asr_model_device(mod), asr_model_device_line(mod));
    }
    return rc;
}

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
        rc = load_model(s, m, err, sizeof err);
        loaded = rc == ASR_OK ? m->model : NULL;
    }
    if (rc == ASR_OK && !pk->slot.st) {
        const asr_model_t *mod = pk->load ? loaded : m->model;
        rc = asr_stream_create_slot(mod, pk->slot.n_seq, &pk->slot.st);
        if (rc != ASR_OK)
            snprintf(err, sizeof err, "out of memory creating a slot of %.0f MiB for model %s",
                     MIB(pk->slot.bytes), m->id);
    }
    double t0 = asr_now_s();
    if (rc == ASR_OK) {
        if (pk->load) { /* publish the model before running, so status shows it */
            pthread_mutex_lock(&s->mu);
            m->state = M_LOADED;
            s->n_loads++;
            pthread_mutex_unlock(&s->mu);
        }
        job->attempts++;
        rc = job->run_cb(job, pk->slot.st);
        if (rc == ASR_ERR_NOMEM)
            snprintf(err, sizeof err, "out of memory while transcribing with model %s", m->id);
    }
    double dt = asr_now_s() - t0;
    atomic_store(&wk->busy, 0);
    atomic_store(&wk->beat_ms, now_ms());

    pthread_mutex_lock(&s->mu);
    m->running--;
    m->busy_bytes -= pk->slot.bytes;
    m->last_used = asr_now_s();
    m->keep_alive =
        job->keep_alive_s != ASR_SCHED_KEEP_ALIVE_DEFAULT ? job->keep_alive_s : s->keep_alive_s;
    s->n_busy--;
    if (pk->load && m->state == M_LOADING) { /* load or first slot failed */
        if (loaded) {
            asr_model_destroy(loaded);
            m->model = NULL;
        }
        m->state = M_UNLOADED;
        s->used -= m->weights;
    }
    if (rc == ASR_OK && pk->slot.st && m->n_cache < s->max_parallel && m->state == M_LOADED) {
        m->cache[m->n_cache++] = pk->slot; /* keeps its bytes reserved */
    } else if (pk->slot.st) {
        free_slot(s, &pk->slot);
    } else {
        s->used -= pk->slot.bytes;
    }
    if (rc == ASR_OK) {
        s->n_done++;
        s->avg_job_s = 0.8 * s->avg_job_s + 0.2 * dt;
        end_later(s, ended, job, ASR_OK);
    } else if (rc == ASR_ERR_NOMEM && !atomic_load(&job->priv_cancelled)) {
        /* policy: one sequence first, then the fallback chain, then give up */
        const model_t *req = &s->models[job->model];
        ASR_LOG(ASR_LOG_WARN, "msg=oom_retry model=%s n_seq=%d reason=\"%s\"", m->id, job->n_seq,
                err);
        s->n_oom_retries++;
        if (job->n_seq > 1) {
            job->n_seq = 1;
            enqueue(s, job, true);
        } else if (job->allow_fallback && job->priv_fallback_pos < req->n_chain) {
            job->priv_fallback_pos++;
            enqueue(s, job, true);
        } else {
            snprintf(job->errmsg, sizeof job->errmsg, "%.200s; no smaller setting or fallback left",
                     err);
            end_later(s, ended, job, ASR_ERR_NOMEM);
        }
    } else {
        if (err[0])
            snprintf(job->errmsg, sizeof job->errmsg, "%.250s", err);
        end_later(s, ended, job, rc == ASR_ERR_NOMEM ? ASR_ERR_CANCELLED : rc);
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
        if (got)
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
    s->n_models = p->n_models;
    s->models = asr_xcalloc((size_t)p->n_models, sizeof *s->models);
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
    if (rc == ASR_OK && parse_chains(s, p->fallback, errbuf, errbuf_len) != 0)
        rc = ASR_ERR_INVALID;
    if (rc == ASR_OK && p->preload) {
        model_t *m = &s->models[0];
        pthread_mutex_lock(&s->mu);
        bool fits = make_room(s, m->weights, m);
        pthread_mutex_unlock(&s->mu);
        if (fits) {
            char err[512] = "";
            rc = load_model(s, m, err, sizeof err);
            if (rc != ASR_OK) {
                asr_errf(errbuf, errbuf_len, "cannot load model '%s' from %s: %s", m->id, m->dir,
                         err[0] ? err : asr_strerror(rc));
            } else {
                m->state = M_LOADED;
                m->last_used = asr_now_s();
                s->used += m->weights;
                s->n_loads++;
            }
        } else {
            ASR_LOG(ASR_LOG_WARN, "msg=preload_skipped model=%s weights_mib=%.0f budget_mib=%.0f",
                    m->id, MIB(m->weights), MIB(s->budget));
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
            "limit=%s",
            s->max_parallel, s->threads_per_job, s->max_queue, MIB(b),
            s->limit ? "configured" : "measured");
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
    for (int i = 0; i < s->n_models; i++) {
        model_t *m = &s->models[i];
        if (m->state != M_UNLOADED)
            unload(s, m, "shutdown");
        free(m->cache);
        free(m->id);
        free(m->dir);
    }
    free(s->models);
    free(s->compute_type);
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
    o->weights_bytes = m->weights;
    o->slot_bytes = slot_bytes(m, ASR_DEFAULT_N_SEQ, false);
    o->slots_bytes = m->busy_bytes;
    for (int k = 0; k < m->n_cache; k++)
        o->slots_bytes += m->cache[k].bytes;
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
    pthread_mutex_lock(&s->mu);
    asr_err_t rc = ASR_OK;
    int free_slots = s->max_parallel - s->n_busy;
    if (!s->accepting) {
        rc = ASR_ERR_AGAIN;
    } else if (target(s, job) < 0) {
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

void asr_sched_device_status(asr_sched_t *s, asr_sched_device_status_t *out) {
    (void)s; /* STUB: issue #20 in progress */
    memset(out, 0, sizeof *out);
    out->last_error_age_s = -1;
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
