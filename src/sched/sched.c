/* sched: the simple scheduler (see sched.h): resident models, a fixed worker pool, one bounded
 * FIFO queue under one mutex.
 *
 * Invariants (under s->mu): a job is in the queue iff its state is QUEUED; n_busy counts workers
 * whose job is RUNNING; done_cb is called outside the mutex and after the last access to the
 * job. Heartbeats are atomics written by workers and read by anyone. */
#include "sched/sched.h"

#include <math.h>
#include <pthread.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/core.h"

enum { JOB_NEW = 0, JOB_QUEUED, JOB_RUNNING, JOB_FINISHED };

typedef struct {
    asr_sched_t *s;
    int index;
    pthread_t thread;
    bool started;
    asr_stream_t **streams;  /* [n_models] */
    _Atomic int64_t beat_ms; /* last heartbeat, monotonic ms */
    atomic_int busy;
    asr_sched_job_t *current; /* the RUNNING job, under s->mu */
} worker_t;

struct asr_sched {
    int n_models;
    char **ids, **dirs;
    asr_model_t **models;
    int n_workers;
    worker_t *workers;
    int max_queue;

    pthread_mutex_t mu;
    pthread_cond_t work_cv; /* queue became non-empty, or stop */
    pthread_cond_t idle_cv; /* a job finished (drain waits on it) */
    asr_sched_job_t *head, *tail;
    int depth;
    int n_busy;
    bool accepting;
    bool stop;
    uint64_t n_done, n_rejected;
    double avg_job_s; /* EWMA of run times, for Retry-After */
};

static int64_t now_ms(void) { return (int64_t)(asr_now_s() * 1000.0); }

static void *worker_main(void *arg);

static asr_err_t load_models(asr_sched_t *s, const asr_sched_params_t *p, int n_threads,
                             char *errbuf, size_t errbuf_len) {
    for (int i = 0; i < p->n_models; i++) {
        s->ids[i] = asr_xstrdup(p->models[i].id);
        s->dirs[i] = asr_xstrdup(p->models[i].dir);
        asr_model_params_t mp = asr_model_default_params();
        mp.n_threads = n_threads;
        char err[512] = "";
        double t0 = asr_now_s();
        asr_err_t rc = asr_model_load(p->models[i].dir, &mp, &s->models[i], err, sizeof err);
        if (rc != ASR_OK) {
            asr_errf(errbuf, errbuf_len, "cannot load model '%s' from %s: %s", p->models[i].id,
                     p->models[i].dir, err[0] ? err : asr_strerror(rc));
            return rc;
        }
        ASR_LOG(ASR_LOG_INFO, "msg=model_loaded model=%s dir=%s weight_bytes=%zu load_s=%.2f",
                s->ids[i], s->dirs[i], asr_model_weight_bytes(s->models[i]), asr_now_s() - t0);
    }
    return ASR_OK;
}

static asr_err_t start_workers(asr_sched_t *s, char *errbuf, size_t errbuf_len) {
    for (int w = 0; w < s->n_workers; w++) {
        worker_t *wk = &s->workers[w];
        wk->s = s;
        wk->index = w;
        wk->streams = asr_xcalloc((size_t)s->n_models, sizeof *wk->streams);
        atomic_store(&wk->beat_ms, now_ms());
        for (int m = 0; m < s->n_models; m++) {
            if (asr_stream_create(s->models[m], &wk->streams[m]) != ASR_OK) {
                asr_errf(errbuf, errbuf_len, "out of memory creating a stream for model '%s'",
                         s->ids[m]);
                return ASR_ERR_NOMEM;
            }
        }
        if (pthread_create(&wk->thread, NULL, worker_main, wk) != 0) {
            asr_errf(errbuf, errbuf_len, "cannot start worker thread");
            return ASR_ERR_NOMEM;
        }
        wk->started = true;
    }
    return ASR_OK;
}

asr_err_t asr_sched_create(const asr_sched_params_t *p, asr_sched_t **out, char *errbuf,
                           size_t errbuf_len) {
    *out = NULL;
    if (p->n_models < 1 || p->n_workers < 1 || p->max_queue < 0) {
        asr_errf(errbuf, errbuf_len, "scheduler needs at least one model and one worker");
        return ASR_ERR_INVALID;
    }
    asr_sched_t *s = asr_xcalloc(1, sizeof *s);
    s->n_models = p->n_models;
    s->ids = asr_xcalloc((size_t)p->n_models, sizeof *s->ids);
    s->dirs = asr_xcalloc((size_t)p->n_models, sizeof *s->dirs);
    s->models = asr_xcalloc((size_t)p->n_models, sizeof *s->models);
    s->n_workers = p->n_workers;
    s->workers = asr_xcalloc((size_t)p->n_workers, sizeof *s->workers);
    s->max_queue = p->max_queue;
    s->accepting = true;
    s->avg_job_s = 5.0;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->work_cv, NULL);
    pthread_cond_init(&s->idle_cv, NULL);
    int n_threads = p->n_threads;
    if (n_threads <= 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = (int)(cores > 0 ? cores : 1) / p->n_workers;
        n_threads = n_threads < 1 ? 1 : n_threads;
    }
    asr_err_t rc = load_models(s, p, n_threads, errbuf, errbuf_len);
    if (rc == ASR_OK)
        rc = start_workers(s, errbuf, errbuf_len);
    if (rc != ASR_OK) {
        asr_sched_destroy(s);
        return rc;
    }
    ASR_LOG(ASR_LOG_INFO, "msg=sched_ready workers=%d threads_per_worker=%d max_queue=%d",
            s->n_workers, n_threads, s->max_queue);
    *out = s;
    return ASR_OK;
}

/* Pops the queue head (under mu). */
static asr_sched_job_t *pop(asr_sched_t *s) {
    asr_sched_job_t *j = s->head;
    if (j) {
        s->head = j->priv_next;
        if (!s->head)
            s->tail = NULL;
        j->priv_next = NULL;
        s->depth--;
    }
    return j;
}

static void run_one(worker_t *wk, asr_sched_job_t *job) {
    asr_sched_t *s = wk->s;
    double t0 = asr_now_s();
    atomic_store(&wk->beat_ms, now_ms());
    atomic_store(&wk->busy, 1);
    job->run_cb(job, wk->streams[job->model]);
    atomic_store(&wk->busy, 0);
    atomic_store(&wk->beat_ms, now_ms());
    double dt = asr_now_s() - t0;
    pthread_mutex_lock(&s->mu);
    atomic_store(&job->priv_state, JOB_FINISHED);
    wk->current = NULL;
    s->n_busy--;
    s->n_done++;
    s->avg_job_s = 0.8 * s->avg_job_s + 0.2 * dt;
    pthread_cond_broadcast(&s->idle_cv);
    pthread_mutex_unlock(&s->mu);
    job->done_cb(job, ASR_OK);
}

static void *worker_main(void *arg) {
    worker_t *wk = arg;
    asr_sched_t *s = wk->s;
    pthread_mutex_lock(&s->mu);
    while (!s->stop) {
        asr_sched_job_t *job = pop(s);
        if (!job) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += 1;
            pthread_cond_timedwait(&s->work_cv, &s->mu, &ts);
            atomic_store(&wk->beat_ms, now_ms()); /* idle and alive */
            continue;
        }
        job->priv_worker = wk->index;
        wk->current = job;
        atomic_store(&job->priv_state, JOB_RUNNING);
        s->n_busy++;
        pthread_mutex_unlock(&s->mu);
        run_one(wk, job);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

int asr_sched_n_models(const asr_sched_t *s) { return s->n_models; }

int asr_sched_model_find(const asr_sched_t *s, const char *id) {
    for (int i = 0; i < s->n_models; i++)
        if (!strcmp(s->ids[i], id))
            return i;
    return -1;
}

const char *asr_sched_model_id(const asr_sched_t *s, int i) { return s->ids[i]; }
const char *asr_sched_model_dir(const asr_sched_t *s, int i) { return s->dirs[i]; }
const asr_model_t *asr_sched_model(const asr_sched_t *s, int i) { return s->models[i]; }

asr_err_t asr_sched_submit(asr_sched_t *s, asr_sched_job_t *job) {
    if (job->model < 0 || job->model >= s->n_models || !job->run_cb || !job->done_cb)
        return ASR_ERR_INVALID;
    job->priv_next = NULL;
    job->priv_sched = s;
    job->priv_worker = -1;
    atomic_store(&job->priv_cancelled, 0);
    job->priv_t_submit = asr_now_s();
    pthread_mutex_lock(&s->mu);
    asr_err_t rc = ASR_OK;
    int waiting = s->depth - (s->n_workers - s->n_busy); /* jobs no free worker will take */
    if (!s->accepting)
        rc = ASR_ERR_AGAIN;
    else if (waiting >= s->max_queue)
        rc = ASR_ERR_BUSY;
    if (rc == ASR_OK) {
        atomic_store(&job->priv_state, JOB_QUEUED);
        if (s->tail)
            s->tail->priv_next = job;
        else
            s->head = job;
        s->tail = job;
        s->depth++;
        pthread_cond_signal(&s->work_cv);
    } else {
        s->n_rejected++;
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* Unlinks a queued job (under mu). */
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
    if (s && job->priv_worker >= 0)
        atomic_store(&s->workers[job->priv_worker].beat_ms, now_ms());
}

void asr_sched_stats(asr_sched_t *s, asr_sched_stats_t *out) {
    memset(out, 0, sizeof *out);
    int64_t now = now_ms();
    pthread_mutex_lock(&s->mu);
    out->n_workers = s->n_workers;
    out->n_busy = s->n_busy;
    out->queue_depth = s->depth;
    out->max_queue = s->max_queue;
    out->n_done = s->n_done;
    out->n_rejected = s->n_rejected;
    pthread_mutex_unlock(&s->mu);
    for (int w = 0; w < s->n_workers; w++) {
        if (!atomic_load(&s->workers[w].busy))
            continue;
        double age = (double)(now - atomic_load(&s->workers[w].beat_ms)) / 1000.0;
        if (age > out->stalled_s)
            out->stalled_s = age;
    }
}

int asr_sched_retry_after(asr_sched_t *s) {
    pthread_mutex_lock(&s->mu);
    double est = s->avg_job_s * (double)(s->depth + 1) / (double)s->n_workers;
    pthread_mutex_unlock(&s->mu);
    int secs = (int)ceil(est);
    return secs < 1 ? 1 : secs > 120 ? 120 : secs;
}

/* Waits on idle_cv until nothing is queued or running, or until `until` (monotonic seconds);
 * returns true when idle. Called under mu. */
static bool wait_idle(asr_sched_t *s, double until) {
    while (s->depth > 0 || s->n_busy > 0) {
        double left = until - asr_now_s();
        if (left <= 0)
            return false;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        double step = left < 0.2 ? left : 0.2;
        long ns = ts.tv_nsec + (long)(step * 1e9);
        ts.tv_sec += ns / 1000000000L;
        ts.tv_nsec = ns % 1000000000L;
        pthread_cond_timedwait(&s->idle_cv, &s->mu, &ts);
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
        while ((j = pop(s))) {
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
    /* Running jobs: flag them; the engine's abort callback stops them within one decoding step.
     * A RUNNING job stays valid while mu is held (done_cb runs only after it is FINISHED). */
    pthread_mutex_lock(&s->mu);
    for (int w = 0; w < s->n_workers; w++)
        if (s->workers[w].current)
            atomic_store(&s->workers[w].current->priv_cancelled, 1);
    wait_idle(s, INFINITY);
    pthread_mutex_unlock(&s->mu);
}

void asr_sched_destroy(asr_sched_t *s) {
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    s->accepting = false;
    pthread_cond_broadcast(&s->work_cv);
    pthread_mutex_unlock(&s->mu);
    for (int w = 0; w < s->n_workers; w++) {
        worker_t *wk = &s->workers[w];
        if (wk->started)
            pthread_join(wk->thread, NULL);
        for (int m = 0; wk->streams && m < s->n_models; m++)
            asr_stream_destroy(wk->streams[m]);
        free(wk->streams);
    }
    /* Jobs still queued (destroy without drain) end as AGAIN so their owners can finish. */
    asr_sched_job_t *j;
    while ((j = pop(s))) {
        atomic_store(&j->priv_state, JOB_FINISHED);
        j->done_cb(j, ASR_ERR_AGAIN);
    }
    for (int i = 0; i < s->n_models; i++) {
        asr_model_destroy(s->models[i]);
        free(s->ids[i]);
        free(s->dirs[i]);
    }
    free(s->models);
    free(s->ids);
    free(s->dirs);
    free(s->workers);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->work_cv);
    pthread_cond_destroy(&s->idle_cv);
    free(s);
}
