/* jobs: durable transcription jobs. A node runs N worker threads, each with its own store handle,
 * that claim jobs from the shared queue with a lease, run the transcription through one function
 * pointer (transcribe_cb: the local scheduler by default, the router later), and commit result and
 * state in one transaction that only the lease holder can make (so a result is written once). A
 * keeper thread renews the leases of the jobs running here (recording their progress) and records
 * the node's heartbeat. A job whose node died becomes claimable again when its lease expires.
 *
 * Failures: the transcriber says whether a failure is retryable (backend down, 503, out of
 * memory): the job is queued again (state queued, its last_error and not_before telling why and
 * when) after an exponential backoff (asr_jobs_retry_delay_ms), until max_attempts; otherwise
 * (bad audio, a file broken mid-stream) it fails at once with the transcriber's message. A GPU
 * another program holds for minutes is a retryable failure that lasts: the server's defaults
 * (job_max_attempts, job_backoff_ms, job_retry_max_delay) wait about 20 minutes before failing.
 * A job cancelled (or deleted) while it runs is aborted at the keeper's next renew, or at once
 * when asr_jobs_cancel_local is told.
 *
 * Webhooks: a job with a webhook_url gets one POST (JSON: the job, without its result) when it
 * ends done or failed, tried 3 times with 1 s and 2 s pauses; the outcome is logged.
 *
 * Crash points (tests): with debug_faults on, ASRD_TEST_CRASH_AT=POINT[:N] makes the process
 * _exit(137) at that point (see asr_jobs_crash_point).
 *
 * Thread-safety: every function is thread-safe. */
#ifndef ASR_JOBS_H
#define ASR_JOBS_H

#include <stdbool.h>
#include <stdint.h>

#include "asr/common.h"
#include "route/route.h"
#include "sched/sched.h"

typedef struct asr_jobs asr_jobs_t;

/* What a worker hands the transcriber. Everything is borrowed for the call. */
typedef struct {
    int64_t job_id;
    int attempt;
    const char *path;         /* the recording's audio file */
    const char *model;        /* model id; NULL or "" = the default */
    const char *language;     /* NULL = detect */
    const char *options_json; /* NULL or a JSON object (see docs/API.md, transcribe options) */
    double duration_s;        /* < 0 when unknown */
    /* Progress (fraction of audio done, 0..1); cheap, call it from any thread. */
    void (*progress_cb)(double fraction, void *user_data);
    /* True when the transcription should stop now (cancelled, lease lost, shutting down). */
    bool (*abort_cb)(void *user_data);
    /* A new segment is final (count so far); for crash-point tests. May be NULL. */
    void (*segment_cb)(int n_segments, void *user_data);
    void *user_data;
} asr_jobs_task_t;

/* What the transcriber hands back. Strings are malloc'd; the worker frees them. */
typedef struct {
    char *result_json; /* on ASR_OK: verbose_json with segments (and their words) */
    char *backend;     /* which backend served, e.g. "local" */
    char *model_used;  /* which model served */
    bool retryable;    /* on failure: worth another attempt (after a backoff) */
    bool not_served;   /* on failure: this node does not serve the model; another node may */
    char error[512];   /* on failure: why, for the job's last_error */
} asr_jobs_outcome_t;

/* Transcribes task->path. Returns ASR_OK with out->result_json, ASR_ERR_CANCELLED when abort_cb
 * said so, or another error with out->error and out->retryable. Called on a worker thread;
 * blocks until done. */
typedef asr_err_t (*asr_jobs_transcribe_cb)(const asr_jobs_task_t *task, asr_jobs_outcome_t *out,
                                            void *user_data);

typedef struct {
    const char *database;       /* as asr_store_open: each worker opens its own handle */
    const char *data_dir;       /* as asr_store_open */
    const char *recordings_dir; /* relative recording paths resolve against it */
    const char *node_id;        /* leases are "NODE/wN"; the nodes table row */
    const char *node_url;       /* advertised in the heartbeat */
    const char *version;        /* advertised in the heartbeat */
    const char *models;         /* comma list, advertised in the heartbeat */
    int n_workers;              /* 0 = no workers (the heartbeat still runs) */
    int lease_ms;
    int heartbeat_ms;
    int64_t backoff_ms;         /* first retry delay; doubles per attempt … */
    int64_t retry_max_delay_ms; /* … up to this (<= 0: 64 x backoff_ms) */
    asr_jobs_transcribe_cb transcribe_cb;
    void *transcribe_user_data;
    const char *transcriber;         /* its name in the heartbeat: "local", "router" */
    int retention_days;              /* recordings older than this are deleted; 0 = never */
    bool retention_keep_transcripts; /* delete only their audio */
    int retention_interval_ms;       /* between retention runs (<= 0: one hour); first at start */
} asr_jobs_params_t;

/* The pause after attempt `attempt` (1-based) failed retryably: p->backoff_ms doubled per attempt
 * after the first, capped at p->retry_max_delay_ms (<= 0: 64 x backoff_ms). Pure. */
int64_t asr_jobs_retry_delay_ms(const asr_jobs_params_t *p, int attempt);

/* Opens the store handles and starts the workers and the keeper. Strings are copied. On failure
 * writes a one-line reason to err. *out is owned by the caller (asr_jobs_stop). */
asr_err_t asr_jobs_start(const asr_jobs_params_t *p, asr_jobs_t **out, char *err, size_t errlen);
/* A job was queued: idle workers look now instead of at their next poll. NULL-safe. */
void asr_jobs_wake(asr_jobs_t *j);
/* Aborts job `id` if it runs on this node (after the store marked it cancelled or deleted it).
 * Returns whether it ran here. NULL-safe. */
bool asr_jobs_cancel_local(asr_jobs_t *j, int64_t id);
/* Stops claiming new jobs; running ones go on. NULL-safe. */
void asr_jobs_quiesce(asr_jobs_t *j);
/* Aborts running jobs (queued again at once unless on their last attempt), joins the threads,
 * closes the handles, frees. NULL-safe. */
void asr_jobs_stop(asr_jobs_t *j);
/* This node's id (borrowed until stop). */
const char *asr_jobs_node_id(const asr_jobs_t *j);
/* Jobs running on this node now. */
int asr_jobs_running(const asr_jobs_t *j);

/* Resolves a recording's stored path: absolute paths as they are, others under recordings_dir.
 * Returns a malloc'd string. */
char *asr_jobs_recording_path(const char *recordings_dir, const char *stored);

/* Moves the spooled upload `tmp_path` into recordings_dir (created if needed) as a new file
 * rec-<time>-<random>.<ext> (ext from `filename`, else "bin"), copying when a rename cannot, and
 * fsyncs the file and the directory: when this returns ASR_OK the bytes are durable. *out_name
 * (malloc'd) is the file's name relative to recordings_dir. */
asr_err_t asr_jobs_recording_keep(const char *recordings_dir, const char *tmp_path,
                                  const char *filename, char **out_name, char *err, size_t errlen);

struct asr_store;
/* Removes the orphan files of recordings_dir: a file asr_jobs_recording_keep named that no
 * recording row of `s` names, left by a crash between the file's save and its row's commit. Each
 * removal is logged (msg=recording_orphan_removed). Only files at least `min_age_s` old (mtime)
 * go: 0 when no upload can be under way (this node alone uses the store, and it is not serving
 * yet); with a database other nodes share, one of them may be between the two steps. Call at
 * start, before uploads are served. *n_removed (may be NULL) gets the count. ASR_ERR_DB (nothing
 * removed) when the rows cannot be listed. */
asr_err_t asr_jobs_recordings_sweep(struct asr_store *s, const char *recordings_dir,
                                    double min_age_s, int *n_removed);

/* Retention (retention.c): deletes the recordings created more than `days` days ago (database
 * clock): row, jobs and transcripts, then the file; with keep_transcripts only the audio (the row
 * stays with path ""). Each deletion is logged (msg=retention_deleted). days <= 0 does nothing.
 * The keeper runs it; exposed for tests. *n_deleted and *bytes_freed get what went. */
asr_err_t asr_jobs_retention_run(struct asr_store *s, const char *recordings_dir, int days,
                                 bool keep_transcripts, int *n_deleted, int64_t *bytes_freed);

/* What the retention of this node did: its settings, the last run's time (ms, database clock; 0
 * before the first) and counts. */
typedef struct {
    int days;
    bool keep_transcripts;
    int64_t last_run_at;
    int last_deleted;
    int64_t total_deleted;
    int64_t total_bytes;
} asr_jobs_retention_t;
void asr_jobs_retention_status(const asr_jobs_t *j, asr_jobs_retention_t *out);

/* ---- the default transcriber: the local scheduler ---- */

typedef struct {
    struct asr_svc *svc; /* the local-transcription service (borrowed): defaults, validation */
} asr_jobs_local_t;

/* An asr_jobs_transcribe_cb; user_data is an asr_jobs_local_t. The options JSON is the
 * service's options (asr_svc_options_json: beam_size, temperature, word_timestamps, vad_filter,
 * prompt, hotwords, task, …), validated as an HTTP form's fields are: a stored value out of range
 * fails the job (not retried), never clamped. The result is the CLI's verbose_json: language,
 * duration, text, segments with their words, and words flattened. Retryable or not is
 * asr_svc_err_retryable's answer (queue full, out of memory: yes; bad audio, a model that cannot
 * be loaded: no). */
asr_err_t asr_jobs_local_transcribe(const asr_jobs_task_t *task, asr_jobs_outcome_t *out,
                                    void *user_data);

/* ---- the transcriber through the router (failover between ASR backends) ---- */

typedef struct {
    asr_router_t *router;    /* borrowed */
    asr_jobs_local_t *local; /* for local attempts; borrowed */
} asr_jobs_router_t;

/* An asr_jobs_transcribe_cb; user_data is an asr_jobs_router_t. Routes like the API does (default
 * backend first, then by priority, breakers, failover on connection errors, 5xx, 429/503 and
 * out-of-memory answers); local attempts run asr_jobs_local_transcribe. No backend answering is
 * retryable; an input error (4xx) is not. */
asr_err_t asr_jobs_route_transcribe(const asr_jobs_task_t *task, asr_jobs_outcome_t *out,
                                    void *user_data);

/* ---- crash points (tests) ---- */

/* Arms crash points when `enabled` (the debug_faults setting) and ASRD_TEST_CRASH_AT is set:
 * "POINT" or "POINT:N". Call once at startup. */
void asr_jobs_crash_init(bool enabled);
/* _exit(137) when the armed point is `point` and `value` >= its N (N defaults to 0). Points:
 * upload_received, upload_stored, upload_committed, submitted, claimed, renewed, segment (value:
 * segments so far), progress (value: fraction), transcribed, committed. Cheap when unarmed. */
void asr_jobs_crash_point(const char *point, double value);

#endif
