/* sched: runs transcription jobs on loaded models. This is the simple scheduler: every model is
 * loaded at startup and stays resident; a fixed pool of workers, each owning one asr_stream_t per
 * model (streams are single-threaded; models are shared read-only); one bounded FIFO queue.
 *
 * The interface is what the server needs and no more, so that the "memory contract" scheduler
 * (plans, per-device budgets, slots, residency with LRU eviction, fallback models) can replace the
 * implementation behind it: callers name a model, submit a job, may cancel it, and are told exactly
 * once when it is over.
 *
 * Job lifecycle: submit -> queued -> running (run_cb on a worker) -> done_cb(ASR_OK); or
 * queued -> done_cb(ASR_ERR_CANCELLED) when cancelled before it ran; or queued ->
 * done_cb(ASR_ERR_AGAIN) when the scheduler drains for shutdown past its deadline. done_cb is
 * called exactly once, after which the scheduler never touches the job again.
 *
 * Thread-safety: every function is thread-safe unless noted. */
#ifndef ASR_SCHED_H
#define ASR_SCHED_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "asr/engine.h"

typedef struct asr_sched asr_sched_t;
typedef struct asr_sched_job asr_sched_job_t;

/* Runs the job on a worker thread with that worker's stream for job->model (borrowed for the
 * call). It should call asr_sched_job_beat() regularly (e.g. from the engine's abort callback) and
 * stop early when asr_sched_job_cancelled() says so. */
typedef void (*asr_sched_run_cb)(asr_sched_job_t *job, asr_stream_t *stream);
/* Called exactly once when the job is over (see the lifecycle above). */
typedef void (*asr_sched_done_cb)(asr_sched_job_t *job, asr_err_t status);

/* A job, embedded in the caller's request object (intrusive: no allocation by the scheduler).
 * The caller fills the first block and keeps the memory valid until done_cb. */
struct asr_sched_job {
    int model; /* index, see asr_sched_model_find */
    asr_sched_run_cb run_cb;
    asr_sched_done_cb done_cb;
    void *user_data;
    /* private to the scheduler */
    asr_sched_job_t *priv_next;
    atomic_int priv_state;
    atomic_int priv_cancelled;
    int priv_worker;
    asr_sched_t *priv_sched;
    double priv_t_submit;
};

typedef struct {
    const char *id;  /* model id clients use ("base"); borrowed during create */
    const char *dir; /* model directory; borrowed during create */
} asr_sched_model_spec_t;

typedef struct {
    const asr_sched_model_spec_t *models; /* [n_models], the first is the default */
    int n_models;
    int n_workers; /* >= 1 */
    int max_queue; /* jobs waiting beyond the running ones; 0 = no waiting */
    int n_threads; /* compute threads per worker; 0 = cores / n_workers */
} asr_sched_params_t;

typedef struct {
    int n_workers;
    int n_busy;
    int queue_depth;
    int max_queue;
    double stalled_s; /* longest time a busy worker has not beaten, 0 if none busy */
    uint64_t n_done;
    uint64_t n_rejected;
} asr_sched_stats_t;

/* Loads every model and creates the workers and their streams. On failure returns the error and
 * writes a one-line reason naming the model to errbuf. *out is owned by the caller
 * (asr_sched_destroy). */
asr_err_t asr_sched_create(const asr_sched_params_t *p, asr_sched_t **out, char *errbuf,
                           size_t errbuf_len);
/* Cancels whatever is left, joins the workers, frees streams and models. NULL-safe. */
void asr_sched_destroy(asr_sched_t *s);

int asr_sched_n_models(const asr_sched_t *s);
/* Index of the model with id `id`, or -1. */
int asr_sched_model_find(const asr_sched_t *s, const char *id);
/* Borrowed until asr_sched_destroy. */
const char *asr_sched_model_id(const asr_sched_t *s, int i);
const char *asr_sched_model_dir(const asr_sched_t *s, int i);
const asr_model_t *asr_sched_model(const asr_sched_t *s, int i);

/* Queues `job` (fields model, run_cb, done_cb, user_data set). Returns ASR_ERR_BUSY when the queue
 * is full, ASR_ERR_AGAIN when draining for shutdown, ASR_ERR_INVALID for a bad model index; in
 * those cases done_cb is not called. */
asr_err_t asr_sched_submit(asr_sched_t *s, asr_sched_job_t *job);
/* Cancels `job`: a queued job is removed and done_cb(ASR_ERR_CANCELLED) is called from this
 * thread; a running job is flagged (asr_sched_job_cancelled). Returns true if it was removed
 * from the queue. No effect on a finished job. */
bool asr_sched_cancel(asr_sched_t *s, asr_sched_job_t *job);
bool asr_sched_job_cancelled(const asr_sched_job_t *job);
/* Records progress of the worker running `job` (the liveness heartbeat). Cheap. */
void asr_sched_job_beat(asr_sched_job_t *job);

void asr_sched_stats(asr_sched_t *s, asr_sched_stats_t *out);
/* Suggested Retry-After in seconds for a rejected request (>= 1). */
int asr_sched_retry_after(asr_sched_t *s);
/* Stops accepting jobs, then waits until queued and running jobs are done or `deadline_s`
 * seconds have passed; past it, queued jobs end with ASR_ERR_AGAIN and running ones are
 * cancelled and waited for. */
void asr_sched_drain(asr_sched_t *s, double deadline_s);

#endif
