/* store migrations: the schema, one SQL text per version, and the runner.
 *
 * Each version's SQL is written once in the common dialect of store_int.h ({ID} for an
 * auto-increment primary key; BIGINT/INTEGER/TEXT/DOUBLE PRECISION mean the same in both) and is
 * applied in one transaction together with its schema_migrations row, so a crash leaves either the
 * old or the new version. On PostgreSQL an advisory lock serialises nodes that start together; on
 * SQLite BEGIN IMMEDIATE does. Rules for new versions: append, never edit an applied one; keep
 * booleans as INTEGER 0/1 and times as BIGINT milliseconds. */
#include <stdio.h>
#include <string.h>

#include "core/core.h"
#include "store/store_int.h"

static const char k_v1[] =
    "CREATE TABLE asr_configs ("
    " id {ID},"
    " name TEXT NOT NULL,"
    " kind TEXT NOT NULL CHECK (kind IN ('local', 'openai', 'whisper.cpp')),"
    " api_url TEXT NOT NULL DEFAULT '',"
    " api_key TEXT," /* AES-256-GCM ciphertext, "v1:" + base64 */
    " model_name TEXT NOT NULL DEFAULT '',"
    " is_active INTEGER NOT NULL DEFAULT 1 CHECK (is_active IN (0, 1)),"
    " is_default INTEGER NOT NULL DEFAULT 0 CHECK (is_default IN (0, 1)),"
    " priority INTEGER NOT NULL DEFAULT 100,"
    " timeout_ms INTEGER NOT NULL DEFAULT 60000,"
    " max_parallel INTEGER NOT NULL DEFAULT 4,"
    " created_at BIGINT NOT NULL,"
    " updated_at BIGINT NOT NULL,"
    " CONSTRAINT asr_configs_name_key UNIQUE (name));"
    "CREATE UNIQUE INDEX asr_configs_one_default ON asr_configs (is_default) WHERE is_default = 1;"
    "CREATE TABLE asr_health ("
    " id {ID},"
    " config_id BIGINT NOT NULL REFERENCES asr_configs (id) ON DELETE CASCADE,"
    " checked_at BIGINT NOT NULL,"
    " ok INTEGER NOT NULL CHECK (ok IN (0, 1)),"
    " latency_ms INTEGER,"
    " error TEXT);"
    "CREATE INDEX asr_health_by_config ON asr_health (config_id, checked_at, id);"
    "CREATE TABLE recordings ("
    " id {ID},"
    " name TEXT NOT NULL,"
    " path TEXT NOT NULL,"
    " size_bytes BIGINT NOT NULL DEFAULT 0,"
    " duration_s DOUBLE PRECISION,"
    " language_hint TEXT,"
    " status TEXT NOT NULL DEFAULT 'uploaded',"
    " created_at BIGINT NOT NULL);"
    "CREATE INDEX recordings_by_status ON recordings (status, id);"
    "CREATE TABLE jobs ("
    " id {ID},"
    " recording_id BIGINT NOT NULL REFERENCES recordings (id) ON DELETE CASCADE,"
    " state TEXT NOT NULL DEFAULT 'queued'"
    "  CHECK (state IN ('queued', 'running', 'done', 'failed', 'cancelled')),"
    " model TEXT,"
    " language TEXT,"
    " options_json TEXT,"
    " attempts INTEGER NOT NULL DEFAULT 0,"
    " max_attempts INTEGER NOT NULL DEFAULT 3,"
    " last_error TEXT,"
    " backend TEXT,"
    " model_used TEXT,"
    " progress DOUBLE PRECISION NOT NULL DEFAULT 0,"
    " lease_owner TEXT,"
    " lease_expires_at BIGINT,"
    " not_before BIGINT NOT NULL DEFAULT 0,"
    " created_at BIGINT NOT NULL,"
    " started_at BIGINT,"
    " finished_at BIGINT,"
    " result_json TEXT,"
    " webhook_url TEXT);"
    "CREATE INDEX jobs_claim ON jobs (state, not_before, id);"
    "CREATE INDEX jobs_by_recording ON jobs (recording_id, id);"
    "CREATE UNIQUE INDEX jobs_one_active ON jobs (recording_id)"
    " WHERE state IN ('queued', 'running');"
    "CREATE TABLE nodes ("
    " id TEXT PRIMARY KEY,"
    " heartbeat_at BIGINT NOT NULL,"
    " capacity INTEGER NOT NULL DEFAULT 0,"
    " info_json TEXT);";

/* A counter bumped by every write of asr_configs, in the same transaction: nodes sharing one
 * database poll it (cheap) to learn that another node changed the backends. */
static const char k_v2[] = "CREATE TABLE asr_meta ("
                           " name TEXT PRIMARY KEY,"
                           " value BIGINT NOT NULL DEFAULT 0);"
                           "INSERT INTO asr_meta (name, value) VALUES ('configs_version', 0);";

/* The text of each recording's transcript (its newest done job's), which search reads; job_id says
 * which job it came from. The per-dialect index over it comes from asr__store_search_migrate. */
static const char k_v3[] =
    "CREATE TABLE recording_texts ("
    " recording_id BIGINT PRIMARY KEY REFERENCES recordings (id) ON DELETE CASCADE,"
    " job_id BIGINT NOT NULL,"
    " body TEXT NOT NULL);";

/* The model names a backend answers to besides its model_name, and whether it may serve a request
 * for another model in a failover (docs/API.md, "Model names"). Existing rows keep today's
 * behaviour: no aliases, substitution allowed. */
static const char k_v4_models[] =
    "ALTER TABLE asr_configs ADD COLUMN aliases TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE asr_configs ADD COLUMN allow_model_substitution INTEGER NOT NULL DEFAULT 1"
    " CHECK (allow_model_substitution IN (0, 1));";

/* Corrected texts of a transcript's segments, beside the job's result (never rewritten): the
 * segment is the index in the result's "segments" (store_edits.c). */
static const char k_v5_edits[] = "CREATE TABLE segment_edits ("
                                 " job_id BIGINT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,"
                                 " segment INTEGER NOT NULL CHECK (segment >= 0),"
                                 " body TEXT NOT NULL,"
                                 " updated_at BIGINT NOT NULL,"
                                 " PRIMARY KEY (job_id, segment));";

const asr__store_migration_t asr__store_migrations[] = {
    {1, "asr_configs, asr_health, recordings, jobs, nodes", k_v1, NULL},
    {2, "asr_meta (configs_version)", k_v2, NULL},
    {3, "recording_texts (transcript search)", k_v3, asr__store_search_migrate},
    {4, "asr_configs.aliases, asr_configs.allow_model_substitution", k_v4_models, NULL},
    {5, "segment_edits (transcript corrections)", k_v5_edits, NULL},
};
const int asr__store_n_migrations =
    (int)(sizeof asr__store_migrations / sizeof asr__store_migrations[0]);

int asr_store_schema_latest(void) {
    return asr__store_migrations[asr__store_n_migrations - 1].version;
}

/* Any value: the key of the PostgreSQL advisory lock taken while migrating. */
#define MIGRATE_LOCK_KEY 0x61737264 /* "asrd" */

static asr_err_t current_version(asr_store_t *s, int *out) {
    asr__rows_t r;
    asr_err_t e =
        asr__store_exec(s, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations", NULL, 0, &r);
    if (e != ASR_OK)
        return e;
    *out = (int)asr__store_cell_i64(&r, 0, 0);
    asr__store_rows_free(&r);
    return ASR_OK;
}

typedef struct {
    const asr__store_migration_t *m;
    int latest;
    bool applied;
} apply_t;

/* Applies o->m unless already there (in the caller's transaction). ASR_ERR_UNSUPPORTED for a
 * database newer than o->latest. */
static asr_err_t apply_body(asr_store_t *s, void *arg) {
    apply_t *o = arg;
    asr_err_t e = ASR_OK;
    if (s->dialect == ASR__STORE_PG) {
        asr__param_t k = PI64(MIGRATE_LOCK_KEY);
        e = asr__store_exec(s, "SELECT pg_advisory_xact_lock(?)", &k, 1, NULL);
    }
    if (e == ASR_OK)
        e = asr__store_exec(s,
                            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY "
                            "KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
                            NULL, 0, NULL);
    int cur = 0;
    if (e == ASR_OK)
        e = current_version(s, &cur);
    if (e == ASR_OK && cur > o->latest)
        return asr__store_fail(ASR_ERR_UNSUPPORTED,
                               "database schema version %d is newer than this asrd (knows up to "
                               "%d); upgrade asrd",
                               cur, o->latest);
    if (e != ASR_OK || cur >= o->m->version)
        return e;
    char *sql = asr__store_sql(s->dialect, o->m->sql);
    e = s->ops->exec_script(s, sql);
    free(sql);
    if (e == ASR_OK && o->m->after)
        e = o->m->after(s);
    asr__param_t p[2] = {PI64(o->m->version), PTEXT(o->m->name)};
    if (e == ASR_OK)
        e = asr__store_exec(s,
                            "INSERT INTO schema_migrations (version, name, applied_at) "
                            "VALUES (?, ?, {NOW})",
                            p, 2, NULL);
    o->applied = e == ASR_OK;
    return e;
}

static asr_err_t apply_one(asr_store_t *s, const asr__store_migration_t *m, int latest) {
    apply_t o = {m, latest, false};
    asr_err_t e = asr__store_write(s, NULL, apply_body, &o);
    if (e == ASR_OK && o.applied)
        ASR_LOG(ASR_LOG_INFO, "msg=store_migrated version=%d name=\"%s\"", m->version, m->name);
    return e;
}

asr_err_t asr__store_migrate(asr_store_t *s, const asr__store_migration_t *migs, int n_migs,
                             char *err, size_t errlen) {
    int latest = n_migs > 0 ? migs[n_migs - 1].version : 0;
    for (int i = 0; i < n_migs; i++) {
        asr_err_t e = apply_one(s, &migs[i], latest);
        if (e != ASR_OK) {
            if (e == ASR_ERR_UNSUPPORTED)
                asr_errf(err, errlen, "%s", asr_store_errmsg(s));
            else
                asr_errf(err, errlen, "migration to schema version %d failed: %s", migs[i].version,
                         asr_store_errmsg(s));
            return e;
        }
    }
    return ASR_OK;
}

asr_err_t asr_store_schema_version(asr_store_t *s, int *out) {
    pthread_mutex_lock(&s->mu);
    asr_err_t e = current_version(s, out);
    pthread_mutex_unlock(&s->mu);
    return e;
}
