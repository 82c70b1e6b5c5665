/* sched: the scheduler's state, shared by sched.c (queue, dispatch, host pool, workers) and
 * sched_device.c (the device pool: readings, budget, shrink, lost device, status). Everything here
 * is guarded by asr_sched_t.mu unless it says otherwise. */
#ifndef ASR_SCHED_INT_H
#define ASR_SCHED_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "core/core.h"
#include "gpu/dev.h"
#include "gpu/devmem.h"
#include "sched/sched.h"

enum { JOB_NEW = 0, JOB_QUEUED, JOB_RUNNING, JOB_FINISHED };
enum { M_UNLOADED = 0, M_LOADING, M_LOADED };

#define MAX_CHAIN 8
#define MIB(b) ((double)(b) / (1024.0 * 1024.0))
#define GIB(b) ((double)(b) / (1024.0 * 1024.0 * 1024.0))

typedef struct {
    asr_stream_t *st;
    int n_seq;
    bool words;
    size_t bytes;  /* host */
    size_t dbytes; /* device (0 for a CPU model) */
} slot_t;

typedef struct {
    char *id, *dir;
    const char *compute_type; /* what it loads with (NULL: float32) */
    const char *plan_type;    /* the host plan's (CPU models): compute_type, or NULL (float32) */
    const char *load_device;  /* asr_model_params_t.device: the scheduler's, or "cpu" (twin) */
    bool on_dev;              /* planned in device bytes (the device pool) */
    int twin_of;              /* a CPU twin: the visible model it serves; -1 otherwise */
    int twin;                 /* this model's CPU twin, or -1 */
    asr_model_info_t info;
    size_t weights;  /* host bytes when loaded (plan) */
    size_t dweights; /* device bytes when loaded (plan: weights, scratch, workspace) */
    int state;
    asr_model_t *model;
    int running;
    slot_t *cache; /* idle slots [n_cache], at most max_parallel */
    int n_cache;
    size_t busy_bytes;    /* host bytes of slots of running jobs */
    size_t busy_dbytes;   /* device bytes of them */
    double last_used;     /* monotonic seconds; 0 = never */
    double keep_alive;    /* < 0: forever */
    int chain[MAX_CHAIN]; /* fallback model indices after this one */
    int n_chain;
    bool reload; /* the device was lost while it was loaded: this copy goes once idle (no new job
                    starts on it) and a new one loads once the device is reset */
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

/* The device pool. */
typedef struct {
    bool present;
    asr_dev_kind_t kind;
    int index;
    char name[16];        /* "cuda:0", "host": job->served_device points here */
    const char *plan_dev; /* asr_plan_gpu_compute's device: "cuda" or "host" */
    const char *plan_type;
    uint64_t limit, reserve;
    bool fallback_cpu;
    double refresh_s;
    asr_devmem_t mem;    /* the last reading */
    double mem_at;       /* when (0: never) */
    uint64_t total_info; /* the device's total from its info (readings failing) */
    uint64_t budget;
    uint64_t budget_logged;
    size_t used;
    size_t context; /* the plan's context bytes */
    int n_resident; /* device models LOADING or LOADED (the context is held while > 0) */
    bool shrink;    /* a reading put the budget below used: drop things at the next dispatch */
    bool lost;
    bool reloading;
    double reload_at; /* no reload attempt before (after a failed one) */
    char last_error[256];
    double last_error_at;
    bool serving_on_cpu;
    uint64_t n_waits, n_fallbacks_cpu, n_fallbacks_model, n_oom_retries, n_resets, n_shrinks;
} devpool_t;

struct asr_sched {
    model_t *models; /* [n_all]: the n_models served, then their CPU twins */
    int n_models, n_all;
    int max_parallel, max_queue, threads_per_job;
    double max_wait_s, keep_alive_s, refresh_s;
    char *compute_type;
    char *cpu_type; /* the twins' compute type */
    char *device;   /* NULL: the CPU */
    int max_batch;
    uint64_t limit, reserve;
    worker_t *workers;
    devpool_t dev;

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

/* ---- sched.c (under mu) ---- */
void asr__sched_free_slot(asr_sched_t *s, slot_t *sl);
void asr__sched_drop_cache(asr_sched_t *s, model_t *m);
void asr__sched_unload(asr_sched_t *s, model_t *m, const char *why);
bool asr__sched_make_room(asr_sched_t *s, size_t need, size_t dneed, bool dctx,
                          const model_t *keep);
asr_err_t asr__sched_load_model(asr_sched_t *s, model_t *m, char *err, size_t errlen);

/* ---- sched_device.c ---- */
/* Sets up the device pool from params (s->device parsed); plans the device models. Before the
 * workers start. Returns ASR_OK, or an error with errbuf. */
asr_err_t asr__dev_init(asr_sched_t *s, const asr_sched_params_t *p, char *errbuf, size_t len);
/* The device budget, re-read every refresh_s (under mu). */
uint64_t asr__dev_budget(asr_sched_t *s);
/* Device bytes of a slot of n_seq sequences of device model m, and its host part. */
size_t asr__dev_slot_bytes(const asr_sched_t *s, const model_t *m, int n_seq, size_t *host);
/* A device model enters LOADING (context charged with the first) / leaves the pool. */
void asr__dev_model_in(asr_sched_t *s, model_t *m);
void asr__dev_model_out(asr_sched_t *s, model_t *m);
/* Drops cached device slots, then idle device models, while used > budget (under mu). */
void asr__dev_shrink(asr_sched_t *s);
/* A device error lost the context of the device (under mu). */
void asr__dev_mark_lost(asr_sched_t *s, const char *why);
/* Records a device failure (under mu). */
void asr__dev_error(asr_sched_t *s, const char *why);
/* Idle worker: reloads a model after a lost device (under mu; unlocks around the load). Returns
 * true when it did something. */
bool asr__dev_reload_step(asr_sched_t *s);
/* "model M needs X GiB of device memory on D (...); Y GiB of the budget free: ..." */
void asr__dev_need_msg(asr_sched_t *s, const model_t *m, int n_seq, const char *lead, char *out,
                       size_t len);

#endif
