/* sched: the memory contract (DESIGN.md) for host memory. Every model has a plan (weights, and the
 * bytes of one slot for a number of parallel sequences); the host has a budget (configured, or
 * measured from cgroup v2 memory.max and MemAvailable minus a reserve, re-read periodically). A job
 * runs only in a slot of a resident model that fits in the budget: models load on first use, stay
 * resident for a keep-alive, and idle ones are evicted least-recently-used when another needs the
 * room. A job that cannot run waits in a bounded queue (max_queue, max_wait); a model that can
 * never fit is replaced by the next model of its fallback chain that does, when the job allows it.
 * An allocation that fails at run time fails only that attempt: the slot is freed, and the job is
 * retried with one sequence (greedy), then on the fallback chain, before it ends ASR_ERR_NOMEM.
 *
 * On a device (device cuda:N, or host, the reference device of the tests), the same contract holds
 * for device memory (sched_device.c): models and slots are planned in device bytes
 * (asr_plan_gpu_compute), the budget is min(gpu_memory_limit, free + asrd's) - gpu_memory_reserve
 * re-read every gpu_refresh_s, and a job's targets are, in order, its model on the device, its
 * fallback chain there, and (gpu_fallback cpu) its model on the CPU engine; a device error
 * (ASR_ERR_GPU) is retried like an allocation failure, and a lost device context is reset by
 * unloading and reloading its models.
 *
 * Compute threads: at most max_parallel jobs run at once, each with threads / max_parallel
 * threads, so running slots never oversubscribe the cores.
 *
 * Job lifecycle: submit -> queued -> running (run_cb on a worker, possibly more than once when
 * retried) -> done_cb(status). done_cb is called exactly once: ASR_OK (run_cb succeeded),
 * ASR_ERR_CANCELLED, ASR_ERR_BUSY (waited past max_wait), ASR_ERR_NOMEM (out of memory after the
 * retries), ASR_ERR_AGAIN (shutdown), or the error run_cb returned. After it the scheduler never
 * touches the job again. For BUSY and NOMEM, job->errmsg says why with the sizes.
 *
 * Thread-safety: every function is thread-safe unless noted. */
#ifndef ASR_SCHED_H
#define ASR_SCHED_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "asr/engine.h"
#include "gpu/devmem.h"

typedef struct asr_sched asr_sched_t;
typedef struct asr_sched_job asr_sched_job_t;

/* Runs the job on a worker thread with a stream (slot) of model job->served_model holding
 * job->n_seq sequences (borrowed for the call). Returns ASR_OK, ASR_ERR_NOMEM or ASR_ERR_GPU
 * (retried per policy: one sequence, then the next target) or another error (final). It should call
 * asr_sched_job_beat() regularly and stop early when asr_sched_job_cancelled() says so. */
typedef asr_err_t (*asr_sched_run_cb)(asr_sched_job_t *job, asr_stream_t *stream);
/* Called exactly once when the job is over (see the lifecycle above). */
typedef void (*asr_sched_done_cb)(asr_sched_job_t *job, asr_err_t status);

#define ASR_SCHED_KEEP_ALIVE_DEFAULT (-2.0) /* job->keep_alive_s: use the server's */

/* A job, embedded in the caller's request object (intrusive: no allocation by the scheduler).
 * The caller fills the first block and keeps the memory valid until done_cb. */
struct asr_sched_job {
    int model;            /* requested model index, see asr_sched_model_find */
    int n_seq;            /* parallel sequences the job needs (asr_transcribe_n_seq), 1..8 */
    bool allow_fallback;  /* may be served by the model's fallback chain */
    bool word_timestamps; /* the slot also reserves the alignment buffers */
    double keep_alive_s;  /* idle time the model stays loaded after this job; <0: forever;
                             ASR_SCHED_KEEP_ALIVE_DEFAULT: the server's */
    asr_sched_run_cb run_cb;
    asr_sched_done_cb done_cb;
    void *user_data;
    /* set by the scheduler, read by run_cb and done_cb */
    int served_model;          /* the model that runs (or ran) the job */
    const char *served_device; /* where: "cuda:0", "host" or "cpu" (static; NULL before) */
    int attempts;              /* run_cb calls so far */
    char errmsg[256];          /* why it ended BUSY/NOMEM */
    /* private to the scheduler */
    asr_sched_job_t *priv_next;
    atomic_int priv_state;
    atomic_int priv_cancelled;
    int priv_worker;
    int priv_fallback_pos; /* position in the chain of `model` tried so far */
    asr_sched_t *priv_sched;
    double priv_t_submit;
    double priv_t_wait; /* start of the current wait (max_wait counts from it) */
    int priv_flags;
};

typedef struct {
    const char *id;  /* model id clients use ("base"); borrowed during create */
    const char *dir; /* model directory; borrowed during create */
} asr_sched_model_spec_t;

typedef struct {
    const asr_sched_model_spec_t *models; /* [n_models], the first is the default */
    int n_models;
    int max_parallel;         /* jobs running at once over all models (>= 1) */
    int max_queue;            /* jobs waiting beyond the running ones; 0 = no waiting */
    double max_wait_s;        /* longest wait in the queue before ASR_ERR_BUSY */
    double keep_alive_s;      /* default idle time before unloading; < 0 = never */
    uint64_t memory_limit;    /* whole-process bytes; 0 = measured */
    uint64_t memory_reserve;  /* bytes left to others when measured */
    int n_threads;            /* compute threads in all; 0 = cores */
    const char *fallback;     /* chains "a>b>c,d>e" over model ids; NULL/"" = none */
    const char *compute_type; /* models' compute type (asr_model_params_t); NULL = float32 */
    const char *device;       /* where models run (asr_model_params_t: "cpu", "cuda:0", ...);
                                 NULL = the CPU; borrowed during create */
    int max_batch;            /* GPU batch bound (asr_model_params_t); 0 = the engine's */
    bool preload;             /* load the default model at create (it stays evictable) */
    double budget_refresh_s;  /* how often the measured budget is re-read; 0 = 2 s */
    /* the GPU memory contract (device: cuda:N, or host, the reference device of the tests) */
    uint64_t gpu_memory_limit;   /* device bytes asrd may hold; 0 = no limit but what is free */
    uint64_t gpu_memory_reserve; /* device bytes left to other processes */
    const char *gpu_fallback;    /* "cpu": a job its model cannot serve on the device now is
                                    served by the same model on the CPU engine (within the host
                                    budget); NULL, "" or "none": no such fallback */
    double gpu_refresh_s;        /* how often the device is re-read; 0 = 1 s */
} asr_sched_params_t;

typedef struct {
    int max_parallel;
    int n_busy;
    int queue_depth;
    int max_queue;
    double stalled_s; /* longest time a busy worker has not beaten, 0 if none busy */
    uint64_t n_done;
    uint64_t n_rejected;
    uint64_t n_evictions;
    uint64_t n_loads;
    uint64_t n_fallbacks;
    uint64_t n_oom_retries;
    uint64_t budget_bytes; /* for models and slots (process overhead excluded) */
    uint64_t used_bytes;   /* weights of resident models + slots */
} asr_sched_stats_t;

/* One model's state, for /v1/models, /api/ps and `asrd ps`. */
typedef struct {
    const char *id;         /* borrowed until destroy */
    const char *state;      /* "unloaded", "loading", "loaded" (static) */
    uint64_t weights_bytes; /* plan weights (whether loaded or not) */
    uint64_t slot_bytes;    /* plan bytes of one default slot (5 sequences) */
    uint64_t slots_bytes;   /* bytes of the slots it holds now (in use and cached) */
    int slots_in_use;
    int slots_cached;
    int queued;
    double expires_in_s; /* seconds until unloaded when idle; < 0: never or not loaded */
    double last_used_s;  /* seconds ago; < 0: never */
    const char *device;  /* where it loads: "cuda:0", "host" or "cpu" (static) */
    /* weights_bytes and slot_bytes above are device bytes for a model on a device (the model's
     * fixed bytes: weights, scratch, workspace; one default slot) */
    const char *cpu_state;      /* its CPU twin (gpu_fallback cpu): "unloaded", "loading", "loaded";
                                   NULL when there is none */
    uint64_t cpu_weights_bytes; /* the twin's host plan */
    int cpu_slots_in_use;
} asr_sched_model_status_t;

/* The device the scheduler serves models on (besides the CPU), for /api/ps, /metrics, the Status
 * page and diagnose. */
typedef struct {
    bool present;           /* false: the models run on the CPU only (the rest is zero) */
    char device[16];        /* "cuda:0", "host" */
    asr_devmem_t mem;       /* the last reading: total, free, every process (asrd included when NVML
                               lists it), or why it failed */
    double mem_age_s;       /* seconds since that reading */
    uint64_t limit;         /* gpu_memory_limit (0 = none) */
    uint64_t reserve;       /* gpu_memory_reserve */
    uint64_t budget;        /* min(limit, free + used) - reserve: what asrd may hold now */
    uint64_t used;          /* what asrd holds by plan: context + models + slots */
    uint64_t context_bytes; /* the CUDA context (0 when no model is loaded there) */
    uint64_t weights_bytes; /* models' fixed bytes: weights, scratch, workspaces */
    uint64_t slots_bytes;   /* slots of running jobs */
    uint64_t cache_bytes;   /* idle slots kept for the next job */
    int batch;              /* jobs running on the device now */
    int batch_max;          /* jobs of the default model (default slot) that fit the budget now, the
                               loaded ones included: the batch size in force */
    bool serving_on_cpu;    /* the last job that asked for the device was served elsewhere */
    bool lost;              /* the context was lost: resetting and reloading (not ready) */
    char last_error[256];   /* the last device failure ("" = none) */
    double last_error_age_s;    /* seconds since it; < 0: none */
    uint64_t n_waits;           /* jobs that waited for device memory */
    uint64_t n_fallbacks_cpu;   /* jobs served by the CPU twin */
    uint64_t n_fallbacks_model; /* jobs served by another model of the fallback chain */
    uint64_t n_oom_retries;     /* attempts that failed on device memory or a device error */
    uint64_t n_resets;          /* context resets */
    uint64_t n_shrinks;         /* cached slots or idle models dropped because the budget fell */
} asr_sched_device_status_t;
void asr_sched_device_status(asr_sched_t *s, asr_sched_device_status_t *out);

/* Probes every model (dimensions and plan, no weights), optionally loads the default, and starts
 * the workers. On failure returns the error and writes a one-line reason naming the model to
 * errbuf. *out is owned by the caller (asr_sched_destroy). */
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
/* Dimensions read from the model file at create (valid whether loaded or not). */
const asr_model_info_t *asr_sched_model_info(const asr_sched_t *s, int i);
void asr_sched_model_status(asr_sched_t *s, int i, asr_sched_model_status_t *out);

/* Queues `job`. Returns ASR_ERR_BUSY when the queue is full, ASR_ERR_NOMEM when neither the model
 * nor (if allowed) its fallbacks can ever fit the budget, ASR_ERR_AGAIN when draining for
 * shutdown, ASR_ERR_INVALID for a bad model index or n_seq; in those cases done_cb is not called
 * and job->errmsg says why (with sizes). */
asr_err_t asr_sched_submit(asr_sched_t *s, asr_sched_job_t *job);
/* Cancels `job`: a queued job is removed and done_cb(ASR_ERR_CANCELLED) is called from this
 * thread; a running job is flagged (asr_sched_job_cancelled). Returns true if it was removed
 * from the queue. No effect on a finished job. */
bool asr_sched_cancel(asr_sched_t *s, asr_sched_job_t *job);
bool asr_sched_job_cancelled(const asr_sched_job_t *job);
/* Records progress of the worker running `job` (the liveness heartbeat). Cheap. */
void asr_sched_job_beat(asr_sched_job_t *job);
/* Compute threads a running job should use. */
int asr_sched_job_threads(const asr_sched_job_t *job);

void asr_sched_stats(asr_sched_t *s, asr_sched_stats_t *out);
/* Suggested Retry-After in seconds for a rejected request (>= 1). */
int asr_sched_retry_after(asr_sched_t *s);
/* Stops accepting jobs, then waits until queued and running jobs are done or `deadline_s`
 * seconds have passed; past it, queued jobs end with ASR_ERR_AGAIN and running ones are
 * cancelled and waited for. When it returns, every done_cb of those jobs has returned. */
void asr_sched_drain(asr_sched_t *s, double deadline_s);

/* Budget helpers (exposed for tests): bytes from cgroup v2 memory.max of this process (0 if
 * unlimited or unknown) and MemAvailable (0 if unknown). */
uint64_t asr_sched_cgroup_limit(void);
uint64_t asr_sched_mem_available(void);

#endif
