/* store: asrd's durable state behind one C interface, with two implementations chosen at open:
 * SQLite (the embedded default: <data_dir>/asrd.db, WAL, busy timeout, foreign keys on) and
 * PostgreSQL (libpq, from a postgres:// URL, shared by several nodes).
 *
 * Tables: asr_configs (ASR backends), asr_health (their health history), recordings, jobs (a
 * durable queue with leases), nodes (heartbeats), recording_texts (each recording's transcript
 * text, indexed for search: store_search.c) and segment_edits (corrected segment texts, kept
 * beside the transcript they correct: store_edits.c). Versioned migrations run
 * at open, one transaction per version; a database newer than this binary is refused.
 *
 * Invariants the store enforces, whatever the caller does:
 * - among asr_configs rows exactly one is the default as soon as one row exists (set-default is one
 *   transaction, and a partial unique index backs it);
 * - api_key is stored encrypted (AES-256-GCM; key in <data_dir>/secret.key or ASRD_SECRET_KEY) and
 *   is returned in plaintext only by asr_store_config_get_api_key();
 * - a job's result is written once: complete/fail/renew act only for the holder of the current
 *   lease (owner + attempt number, a fencing token); a job whose lease expired is claimable again;
 * - at most one queued or running job per recording (asr_store_job_submit is idempotent).
 * All SQL is parameterised; no statement is built from caller strings.
 *
 * Errors: every function returns asr_err_t. ASR_ERR_INVALID means the input was refused and the
 * message (asr_store_errmsg) starts with the field name, e.g. "name: already exists", so the HTTP
 * layer can answer 400 naming the field. ASR_ERR_NOT_FOUND: no such row. ASR_ERR_DB: the database
 * failed (message from the server). ASR_ERR_BUSY: SQLite stayed locked past the busy timeout, or a
 * job lease is held by someone else.
 *
 * Times are milliseconds since the Unix epoch, taken from the database's clock (so several nodes
 * sharing PostgreSQL agree on lease expiry).
 *
 * Thread-safety: an asr_store_t holds one connection and a mutex; every function may be called from
 * any thread, and calls on one handle are serialised. For parallelism open one handle per thread
 * (workers do). Strings in returned structs are heap copies owned by the caller.
 */
#ifndef ASR_STORE_H
#define ASR_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "asr/common.h"

typedef struct asr_store asr_store_t;

/* ---- open / close ---- */

/* Opens (creating and migrating as needed) the database named by `url_or_path`:
 *   "postgres://…" or "postgresql://…"  PostgreSQL (libpq URI, e.g. postgres://u:p@host:5432/db);
 *   "sqlite:PATH" or a plain path         SQLite file;
 *   NULL or ""                            SQLite at <data_dir>/asrd.db.
 * `data_dir` (may be NULL when ASRD_SECRET_KEY is set and url_or_path is given) holds asrd.db and
 * secret.key (created 0600 when missing). ASRD_SECRET_KEY, when set, overrides the file: 64 hex
 * digits (the raw 32-byte key) or any passphrase of at least 16 characters (each value's key is
 * PBKDF2-HMAC-SHA256 of it, 600,000 iterations, with a salt stored in the value; values written by
 * older versions under one SHA-256 of the passphrase still read, and are re-encrypted at open).
 * Nodes sharing one PostgreSQL must share the key to read each other's api keys.
 * Fails with ASR_ERR_UNSUPPORTED "database schema version N is newer than this asrd (knows up to
 * M)…" on a database migrated by a newer binary; ASR_ERR_DB when it cannot connect or migrate. On
 * failure writes a one-line reason to err (no password in it). *out is owned by the caller
 * (asr_store_close). */
asr_err_t asr_store_open(const char *url_or_path, const char *data_dir, asr_store_t **out,
                         char *err, size_t errlen);
/* What asr_store_sqlite_backup found in its copy. */
typedef struct {
    int schema_version;
    int64_t n_recordings, n_jobs, n_configs;
    char **paths; /* each recording row's stored path ("" when its audio is gone), n_recordings */
} asr_store_backup_info_t;
/* Frees info's paths. NULL-safe. */
void asr_store_backup_info_clear(asr_store_backup_info_t *info);
/* Copies the SQLite database at src_path (which must exist; a server may be using it) to the new
 * file dst_path through SQLite's online backup API: one consistent snapshot, taken while writers
 * go on (WAL). The copy is fsync'd; info gets its schema version and row counts. ASR_ERR_INVALID
 * when src_path is not an asrd database. Thread-safe (own connections). */
asr_err_t asr_store_sqlite_backup(const char *src_path, const char *dst_path,
                                  asr_store_backup_info_t *info, char *err, size_t errlen);
/* Closes the connection. NULL-safe. */
void asr_store_close(asr_store_t *s);
/* "sqlite" or "postgres". Static string. */
const char *asr_store_backend(const asr_store_t *s);
/* Highest applied migration version. */
asr_err_t asr_store_schema_version(asr_store_t *s, int *out);
/* Highest schema version this binary knows. */
int asr_store_schema_latest(void);
/* The calling thread's message for its last failed store call (static per thread, valid until that
 * thread's next store call). `s` may be NULL. */
const char *asr_store_errmsg(const asr_store_t *s);
/* Frees a string returned by the store (free()). */
void asr_store_free(void *p);

/* ---- ASR backend configs ---- */

#define ASR_STORE_UNSET INT32_MIN /* an int input field left unset */
#define ASR_STORE_PRIORITY_MAX 10000
#define ASR_STORE_NAME_MAX 128
#define ASR_STORE_URL_MAX 2048

/* A config as stored. `has_api_key` replaces the key itself. */
typedef struct {
    int64_t id;
    char *name;
    char *kind;       /* "local", "openai" or "whisper.cpp" */
    char *api_url;    /* "" when none (local) */
    char *model_name; /* "" when none */
    char *aliases;    /* other names of the row's model, comma-separated ("" when none) */
    bool has_api_key;
    bool is_active;
    bool is_default;
    int priority; /* 0..ASR_STORE_PRIORITY_MAX; lower is tried first */
    int timeout_ms;
    int max_parallel;
    bool allow_model_substitution; /* may serve a request for a model it does not serve */
    int64_t created_at;            /* ms */
    int64_t updated_at;            /* ms */
} asr_store_config_t;

/* Input for create and update. Pointers are borrowed for the call. NULL strings and
 * ASR_STORE_UNSET ints are "unset": create uses defaults (kind local, active, priority 100,
 * timeout_ms 60000, max_parallel 4), update keeps the current value. api_key "" clears the key.
 * is_default 1 makes the row the default; 0 on the current default is refused (set another one). */
typedef struct {
    const char *name;
    const char *kind;
    const char *api_url;
    const char *api_key;
    const char *model_name;
    const char *aliases; /* comma-separated; "" clears */
    int is_active;
    int is_default;
    int priority;
    int timeout_ms;
    int max_parallel;
    int allow_model_substitution; /* 0/1; unset on create: 1 */
} asr_store_config_input_t;

/* Sets every field of *in to unset. */
void asr_store_config_input_init(asr_store_config_input_t *in);
/* Checks a complete config (after defaults/merge) without touching the database: name non-empty,
 * at most ASR_STORE_NAME_MAX bytes, UTF-8 without control characters; kind one of the three;
 * api_url an http:// or https:// URL with a host (required unless kind is local); priority,
 * timeout_ms (100..3600000), max_parallel (1..1024) in range; no control characters anywhere.
 * Returns ASR_ERR_INVALID with "field: reason" in err. Thread-safe. */
asr_err_t asr_store_config_validate(const asr_store_config_input_t *in, char *err, size_t errlen);

/* Lists configs ordered by default first, then priority, then id. active_only skips inactive
 * rows. *out (array of *n, may be NULL when 0) is owned by the caller: asr_store_configs_free. */
asr_err_t asr_store_config_list(asr_store_t *s, bool active_only, asr_store_config_t **out,
                                size_t *n);
/* Fetches one config (ASR_ERR_NOT_FOUND when absent). Free *out's strings with
 * asr_store_config_clear. */
asr_err_t asr_store_config_get(asr_store_t *s, int64_t id, asr_store_config_t *out);
/* Finds a config by exact name. */
asr_err_t asr_store_config_get_by_name(asr_store_t *s, const char *name, asr_store_config_t *out);
/* Creates a config after validation; the first config becomes the default. *out_id may be NULL. */
asr_err_t asr_store_config_create(asr_store_t *s, const asr_store_config_input_t *in,
                                  int64_t *out_id);
/* Updates the set fields of config `id` (validated after merging), in one transaction. */
asr_err_t asr_store_config_update(asr_store_t *s, int64_t id, const asr_store_config_input_t *in);
/* Deletes a config and its health history. Deleting the default promotes the next config by
 * (active first, priority, id) in the same transaction. */
asr_err_t asr_store_config_delete(asr_store_t *s, int64_t id);
/* Makes `id` the only default, in one transaction. */
asr_err_t asr_store_config_set_default(asr_store_t *s, int64_t id);
/* The one function that returns the plaintext api key (for the router). *out is NULL when the
 * config has no key; otherwise owned by the caller (asr_store_free). ASR_ERR_INVALID "api_key:
 * cannot be decrypted…" when the secret key differs from the one that encrypted it. */
asr_err_t asr_store_config_get_api_key(asr_store_t *s, int64_t id, char **out);
void asr_store_config_clear(asr_store_config_t *c);
void asr_store_configs_free(asr_store_config_t *v, size_t n);
/* A counter that every write of the configs (create, update, delete, set default) raises in its
 * own transaction, whichever node made it: poll it (one indexed row) and reload when it moved. */
asr_err_t asr_store_configs_version(asr_store_t *s, int64_t *out);

/* ---- health history ---- */

typedef struct {
    int64_t id;
    int64_t config_id;
    int64_t checked_at; /* ms */
    bool ok;
    int latency_ms; /* -1 when unknown */
    char *error;    /* NULL when ok */
} asr_store_health_t;

/* Records one check; `error` may be NULL. */
asr_err_t asr_store_health_add(asr_store_t *s, int64_t config_id, bool ok, int latency_ms,
                               const char *error);
/* The last `limit` checks of a config, newest first. Free with asr_store_health_free. */
asr_err_t asr_store_health_list(asr_store_t *s, int64_t config_id, int limit,
                                asr_store_health_t **out, size_t *n);
/* Keeps only the newest `keep` rows per config. */
asr_err_t asr_store_health_prune(asr_store_t *s, int keep);
void asr_store_health_free(asr_store_health_t *v, size_t n);

/* ---- recordings ---- */

typedef struct {
    int64_t id;
    char *name;
    char *path;
    int64_t size_bytes;
    double duration_s;   /* < 0 when unknown */
    char *language_hint; /* NULL when none */
    char *status;        /* free-form, set by the jobs module; "uploaded" at creation */
    int64_t created_at;
} asr_store_recording_t;

/* Inserts a recording (name and path required; status NULL = "uploaded"; duration_s < 0 =
 * unknown). Strings borrowed. */
asr_err_t asr_store_recording_create(asr_store_t *s, const asr_store_recording_t *in,
                                     int64_t *out_id);
asr_err_t asr_store_recording_get(asr_store_t *s, int64_t id, asr_store_recording_t *out);
/* Newest first; status NULL = any; *total (may be NULL) gets the count matching the filter. */
asr_err_t asr_store_recording_list(asr_store_t *s, const char *status, int offset, int limit,
                                   asr_store_recording_t **out, size_t *n, int64_t *total);
/* As list, only the recordings whose name or transcript text (the newest done job's "text")
 * contains q, case-insensitively (ASCII letters on SQLite, all on PostgreSQL); any substring,
 * Chinese included. ASR_ERR_INVALID "q: …" for an empty q, one longer than
 * ASR_STORE_SEARCH_MAX bytes, or one that is not UTF-8 text. */
#define ASR_STORE_SEARCH_MAX 256
asr_err_t asr_store_recording_search(asr_store_t *s, const char *q, const char *status, int offset,
                                     int limit, asr_store_recording_t **out, size_t *n,
                                     int64_t *total);
asr_err_t asr_store_recording_set_status(asr_store_t *s, int64_t id, const char *status);
/* Deletes the row and its jobs (the caller removes the file). */
asr_err_t asr_store_recording_delete(asr_store_t *s, int64_t id);
/* Renames a recording: name is 1..ASR_STORE_RECORDING_NAME_MAX bytes of UTF-8 text without
 * control characters (else ASR_ERR_INVALID "name: …"); ASR_ERR_NOT_FOUND "id: …". (store_edits.c)
 */
#define ASR_STORE_RECORDING_NAME_MAX 1024
asr_err_t asr_store_recording_rename(asr_store_t *s, int64_t id, const char *name);
/* Retention (store_backup.c): up to `limit` (<= 0: 100) recordings created before before_ms,
 * oldest first, with id, name, path, size_bytes and created_at filled; with_audio_only skips the
 * ones whose audio is already gone (path ""). Free with asr_store_recordings_free. */
asr_err_t asr_store_recordings_older(asr_store_t *s, int64_t before_ms, bool with_audio_only,
                                     int limit, asr_store_recording_t **out, size_t *n);
/* Marks a recording's audio as deleted (path "", size_bytes 0; the caller removes the file): the
 * row, its jobs and transcripts stay. ASR_ERR_NOT_FOUND when no such row still has audio. */
asr_err_t asr_store_recording_drop_audio(asr_store_t *s, int64_t id);
void asr_store_recording_clear(asr_store_recording_t *r);
void asr_store_recordings_free(asr_store_recording_t *v, size_t n);

/* ---- transcript edits (store_edits.c) ---- */

/* A segment's corrected text, kept beside the transcript of job `job_id` (whose stored result is
 * never changed). `segment` is the index in the result's "segments". */
typedef struct {
    int64_t job_id;
    int segment;
    char *text;
    int64_t updated_at; /* ms */
} asr_store_segment_edit_t;

#define ASR_STORE_EDIT_MAX 8192 /* bytes of one segment's edited text */
/* Saves (text non-NULL, replacing an earlier edit) or clears (text NULL; clearing nothing is not
 * an error) the edit of segment `segment` (>= 0) of job `job_id`'s transcript. text may be ""
 * (the segment says nothing), at most ASR_STORE_EDIT_MAX bytes of UTF-8 without control
 * characters. ASR_ERR_INVALID "segment: …" / "text: …"; ASR_ERR_NOT_FOUND "job_id: …". Strings
 * borrowed. Whether the job is done and has that segment is the caller's to check. */
asr_err_t asr_store_segment_edit_set(asr_store_t *s, int64_t job_id, int segment, const char *text);
/* The edits of job `job_id`, by segment. *out (NULL when none) is owned by the caller:
 * asr_store_segment_edits_free. */
asr_err_t asr_store_segment_edits_list(asr_store_t *s, int64_t job_id,
                                       asr_store_segment_edit_t **out, size_t *n);
/* Makes `doc_json` (the transcript of job `job_id` as served: its corrections applied) what
 * search matches for the job's recording: its "text" replaces the searchable text, unless a newer
 * job's text is there already. Borrowed. */
asr_err_t asr_store_search_reindex(asr_store_t *s, int64_t job_id, const char *doc_json);
void asr_store_segment_edit_clear(asr_store_segment_edit_t *e);
void asr_store_segment_edits_free(asr_store_segment_edit_t *v, size_t n);

/* ---- jobs ---- */

typedef enum {
    ASR_STORE_JOB_QUEUED = 0,
    ASR_STORE_JOB_RUNNING,
    ASR_STORE_JOB_DONE,
    ASR_STORE_JOB_FAILED,
    ASR_STORE_JOB_CANCELLED,
    ASR_STORE_JOB_N_STATES
} asr_store_job_state_t;

/* "queued", "running", … Static string. */
const char *asr_store_job_state_name(asr_store_job_state_t st);

typedef struct {
    int64_t id;
    int64_t recording_id;
    asr_store_job_state_t state;
    char *model;        /* requested; NULL = default */
    char *language;     /* NULL = detect */
    char *options_json; /* NULL or a JSON object as text */
    int attempts;       /* claims so far; also the lease's fencing number */
    int max_attempts;
    char *last_error;
    char *backend;    /* which backend served */
    char *model_used; /* which model served */
    double progress;  /* 0..1 */
    char *lease_owner;
    int64_t lease_expires_at;                    /* 0 when none */
    int64_t not_before;                          /* not claimable before this time (backoff) */
    int64_t created_at, started_at, finished_at; /* 0 when not yet */
    char *result_json;
    char *webhook_url;
} asr_store_job_t;

/* What a worker holds after a claim; pass it back to renew/complete/fail. */
typedef struct {
    int64_t job_id;
    int attempt;     /* fencing number: the job's attempts at claim time */
    char owner[128]; /* the claimer's id, e.g. "node-a/worker-2" */
    int64_t expires_at;
} asr_store_lease_t;

/* Input for asr_store_job_submit; strings borrowed, NULL = unset. max_attempts <= 0 = 3. */
typedef struct {
    int64_t recording_id;
    const char *model;
    const char *language;
    const char *options_json;
    const char *webhook_url;
    int max_attempts;
} asr_store_job_input_t;

/* Queues a job for a recording, or returns the one already queued or running for it (idempotent):
 * *created tells which (may be NULL). ASR_ERR_NOT_FOUND "recording_id: …" for a missing recording.
 */
asr_err_t asr_store_job_submit(asr_store_t *s, const asr_store_job_input_t *in, int64_t *out_id,
                               bool *created);
asr_err_t asr_store_job_get(asr_store_t *s, int64_t id, asr_store_job_t *out);
/* Jobs newest first; recording_id 0 = all; state < 0 = any. result_json is left NULL in lists. */
asr_err_t asr_store_job_list(asr_store_t *s, int64_t recording_id, int state, int offset, int limit,
                             asr_store_job_t **out, size_t *n);
/* Number of jobs in each state (counts[ASR_STORE_JOB_N_STATES]). */
asr_err_t asr_store_job_counts(asr_store_t *s, int64_t counts[ASR_STORE_JOB_N_STATES]);
/* Claims the oldest claimable job: queued with not_before passed, or running with an expired
 * lease. The job becomes running, attempts += 1, lease = owner until now + lease_ms. A job whose
 * lease expired after its last allowed attempt is failed instead ("lease expired …"). SQLite: one
 * IMMEDIATE transaction; PostgreSQL: SELECT … FOR UPDATE SKIP LOCKED. Returns ASR_ERR_NOT_FOUND
 * when nothing is claimable. *job (may be NULL) gets the claimed row (asr_store_job_clear). */
asr_err_t asr_store_job_claim(asr_store_t *s, const char *owner, int lease_ms,
                              asr_store_lease_t *lease, asr_store_job_t *job);
/* The same, passing over jobs whose model is one of skip_models[0..n_skip) (at most
 * ASR_STORE_CLAIM_MAX_SKIP; borrowed): a node leaves jobs for models it does not serve to the nodes
 * that do. Jobs without a model (the default) are never passed over. */
#define ASR_STORE_CLAIM_MAX_SKIP 16
asr_err_t asr_store_job_claim_except(asr_store_t *s, const char *owner, int lease_ms,
                                     const char *const *skip_models, int n_skip,
                                     asr_store_lease_t *lease, asr_store_job_t *job);
/* Gives a claimed job back untouched: queued again at once, the claim not counted as an attempt
 * (the node could not serve it, e.g. its model is not loaded there; another node will). `why`
 * (borrowed) goes to last_error. Only for the current lease; errors as renew. */
asr_err_t asr_store_job_release(asr_store_t *s, const asr_store_lease_t *lease, const char *why);
/* Extends the lease to now + lease_ms and records progress (< 0 keeps it). ASR_ERR_CANCELLED if the
 * job was cancelled, ASR_ERR_BUSY if the lease was lost (someone else claimed it, or it ended). */
asr_err_t asr_store_job_renew(asr_store_t *s, asr_store_lease_t *lease, int lease_ms,
                              double progress);
/* Marks the job done with its result, backend and model, and (when recording_status is non-NULL)
 * sets the recording's status, in one transaction, only if `lease` is still current; so a
 * result is written once. Errors as renew. Strings borrowed. */
asr_err_t asr_store_job_complete(asr_store_t *s, const asr_store_lease_t *lease,
                                 const char *result_json, const char *backend,
                                 const char *model_used, const char *recording_status);
/* Records a failed attempt. If `retryable` and attempts remain, the job is queued again with
 * not_before = now + retry_delay_ms (see asr_store_backoff_ms); otherwise it is failed (and the
 * recording gets recording_status when non-NULL). *requeued (may be NULL) tells which. Only for the
 * current lease; errors as renew. */
asr_err_t asr_store_job_fail(asr_store_t *s, const asr_store_lease_t *lease, const char *error,
                             bool retryable, int64_t retry_delay_ms, const char *recording_status,
                             bool *requeued);
/* Cancels a queued or running job (a running worker learns it at its next renew). ASR_ERR_INVALID
 * "state: …" when it already ended. */
asr_err_t asr_store_job_cancel(asr_store_t *s, int64_t id);
/* Queues a failed or cancelled job again with fresh attempts. ASR_ERR_INVALID when it is not
 * failed/cancelled or another job of its recording is active. */
asr_err_t asr_store_job_retry(asr_store_t *s, int64_t id);
void asr_store_job_clear(asr_store_job_t *j);
void asr_store_jobs_free(asr_store_job_t *v, size_t n);
/* Exponential backoff: base_ms * 2^(attempt-1), capped at max_ms. Pure. */
int64_t asr_store_backoff_ms(int attempt, int64_t base_ms, int64_t max_ms);

/* ---- nodes ---- */

typedef struct {
    char *id;
    int64_t heartbeat_at;
    int capacity;
    char *info_json; /* NULL or JSON text */
} asr_store_node_t;

/* Inserts or refreshes a node's heartbeat (heartbeat_at = now). Strings borrowed. */
asr_err_t asr_store_node_heartbeat(asr_store_t *s, const char *id, int capacity,
                                   const char *info_json);
/* All nodes, most recent heartbeat first. Free with asr_store_nodes_free. */
asr_err_t asr_store_node_list(asr_store_t *s, asr_store_node_t **out, size_t *n);
/* Current database time in ms (what heartbeat_at and leases compare against). */
asr_err_t asr_store_now_ms(asr_store_t *s, int64_t *out);
void asr_store_nodes_free(asr_store_node_t *v, size_t n);

#endif
