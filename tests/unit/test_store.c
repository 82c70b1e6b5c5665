/* Unit tests for src/store: the same test functions run against SQLite (a temp data directory per
 * test) and, when ASRD_TEST_PG_URL names a PostgreSQL database, against it (a fresh schema per
 * test, selected through the URL's search_path option). ASRD_TEST_STORE_BACKENDS=sqlite|pg|
 * sqlite,pg picks the backends (default: sqlite, plus pg when the URL is set); asking for pg
 * without a URL exits 77 (skip). scripts/pg-temp.sh run starts a throwaway server for ctest's
 * test_store_pg.
 *
 * Covered: migrations from empty, re-open, upgrade from an older schema, refusal of a newer one;
 * config CRUD and validation with the field named; duplicate names; SQL metacharacters stored
 * verbatim; exactly one default through create/update/set-default/delete; api_key encrypted at
 * rest, never in list/get, round trip through the explicit getter, wrong key detected; health
 * history order and pruning; recordings; jobs: idempotent submit, lifecycle, backoff, cancel,
 * retry, lease expiry and fencing (stale complete refused), exhausted attempts, and claim
 * exclusivity with 4 threads over 50 jobs, on 4 handles and on one shared handle; node heartbeats.
 */
#include <ftw.h>
#include <libpq-fe.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <jansson.h>

#include "core/core.h"
#include "store/store.h"
#include "store/store_int.h"

static bool g_pg;            /* current group's backend */
static const char *g_pg_url; /* base URL of the PostgreSQL database */
static PGconn *g_admin;      /* creates and drops the per-test schemas */
static int g_seq;

typedef struct {
    char dir[256];
    char url[1200]; /* "" for SQLite (the data dir's asrd.db) */
    char schema[64];
    asr_store_t *s;
} fx_t;

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static void admin_sql(const char *sql) {
    PGresult *r = PQexec(g_admin, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        fail_msg("admin: %s: %s", sql, PQerrorMessage(g_admin));
    PQclear(r);
}

static asr_err_t open_fx(fx_t *f, asr_store_t **out) {
    char err[512] = "";
    asr_err_t e = asr_store_open(f->url[0] ? f->url : NULL, f->dir, out, err, sizeof err);
    if (e != ASR_OK)
        print_message("open: %s\n", err);
    return e;
}

static int setup(void **state) {
    fx_t *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/asrd-store-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    if (g_pg) {
        snprintf(f->schema, sizeof f->schema, "t_%ld_%d", (long)getpid(), ++g_seq);
        char q[256];
        snprintf(q, sizeof q, "DROP SCHEMA IF EXISTS %s CASCADE; CREATE SCHEMA %s", f->schema,
                 f->schema);
        admin_sql(q);
        snprintf(f->url, sizeof f->url, "%s%soptions=-csearch_path%%3D%s", g_pg_url,
                 strchr(g_pg_url, '?') ? "&" : "?", f->schema);
    }
    if (open_fx(f, &f->s) != ASR_OK)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fx_t *f = *state;
    asr_store_close(f->s);
    if (g_pg) {
        char q[128];
        snprintf(q, sizeof q, "DROP SCHEMA IF EXISTS %s CASCADE", f->schema);
        admin_sql(q);
    }
    nftw(f->dir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

#define ERRMSG asr_store_errmsg(NULL)
#define assert_err(call, code, needle)                                                             \
    do {                                                                                           \
        asr_err_t e_ = (call);                                                                     \
        if (e_ != (code) || !strstr(ERRMSG, (needle)))                                             \
            fail_msg("%s: got %d \"%s\", want %d \"%s\"", #call, e_, ERRMSG, (code), (needle));    \
    } while (0)
#define assert_ok(call)                                                                            \
    do {                                                                                           \
        asr_err_t e_ = (call);                                                                     \
        if (e_ != ASR_OK)                                                                          \
            fail_msg("%s: %d %s", #call, e_, ERRMSG);                                              \
    } while (0)

/* Claims a job for owner, polling until one is due (a lease expired, a retry delay passed) or 10 s
 * went by: waits on the store's clock instead of sleeping a guessed time, so a loaded machine
 * only makes it slower. Returns the claim's result. */
static asr_err_t claim_when_due(asr_store_t *s, const char *owner, int lease_ms,
                                asr_store_lease_t *l, asr_store_job_t *j) {
    double deadline = asr_now_s() + 10.0;
    for (;;) {
        asr_err_t rc = asr_store_job_claim(s, owner, lease_ms, l, j);
        if (rc != ASR_ERR_NOT_FOUND || asr_now_s() > deadline)
            return rc;
        sleep_ms(10);
    }
}

/* Polls job id until it is in state st (10 s at most), running a claim by owner each round (a
 * claim is what notices expired leases). */
static void wait_job_state(asr_store_t *s, const char *owner, int64_t id, int st) {
    double deadline = asr_now_s() + 10.0;
    for (;;) {
        asr_store_lease_t l;
        asr_err_t rc = asr_store_job_claim(s, owner, 30000, &l, NULL);
        assert_int_equal(rc, ASR_ERR_NOT_FOUND); /* nothing else may be claimable */
        asr_store_job_t j;
        assert_ok(asr_store_job_get(s, id, &j));
        int cur = j.state;
        asr_store_job_clear(&j);
        if (cur == st)
            return;
        assert_true(asr_now_s() < deadline);
        sleep_ms(10);
    }
}

static int64_t mkcfg(asr_store_t *s, const char *name, const char *kind, const char *url,
                     int priority) {
    asr_store_config_input_t in;
    asr_store_config_input_init(&in);
    in.name = name;
    in.kind = kind;
    in.api_url = url;
    in.priority = priority;
    int64_t id = 0;
    assert_ok(asr_store_config_create(s, &in, &id));
    assert_true(id > 0);
    return id;
}

static int n_configs(asr_store_t *s, int *n_default, int64_t *default_id) {
    asr_store_config_t *v;
    size_t n;
    assert_ok(asr_store_config_list(s, false, &v, &n));
    *n_default = 0;
    for (size_t i = 0; i < n; i++)
        if (v[i].is_default) {
            ++*n_default;
            if (default_id)
                *default_id = v[i].id;
        }
    asr_store_configs_free(v, n);
    return (int)n;
}

/* ---- migrations ---- */

static void test_migrate_fresh_reopen(void **state) {
    fx_t *f = *state;
    int v = 0;
    assert_ok(asr_store_schema_version(f->s, &v));
    assert_int_equal(v, asr_store_schema_latest());
    assert_string_equal(asr_store_backend(f->s), g_pg ? "postgres" : "sqlite");
    mkcfg(f->s, "one", "local", NULL, 1);
    asr_store_close(f->s);
    f->s = NULL;
    assert_ok(open_fx(f, &f->s));
    assert_ok(asr_store_schema_version(f->s, &v));
    assert_int_equal(v, asr_store_schema_latest());
    int nd;
    assert_int_equal(n_configs(f->s, &nd, NULL), 1);
    if (!g_pg) {
        struct stat st;
        char p[300];
        snprintf(p, sizeof p, "%s/asrd.db-wal", f->dir);
        assert_int_equal(stat(p, &st), 0); /* WAL mode */
        snprintf(p, sizeof p, "%s/secret.key", f->dir);
        assert_int_equal(stat(p, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);
    }
}

static void test_migrate_upgrade_and_newer(void **state) {
    fx_t *f = *state;
    int64_t id = mkcfg(f->s, "kept", "local", NULL, 1);
    asr_store_close(f->s);
    f->s = NULL;
    /* a binary with one version more opens the current database and migrates it */
    int latest = asr_store_schema_latest(), n_migs = asr__store_n_migrations + 1;
    assert_int_equal(latest, asr__store_migrations[asr__store_n_migrations - 1].version);
    asr__store_migration_t migs[16];
    assert_true(n_migs <= 16);
    memcpy(migs, asr__store_migrations, (size_t)asr__store_n_migrations * sizeof migs[0]);
    migs[n_migs - 1] = (asr__store_migration_t){
        latest + 1, "test: extra table",
        "CREATE TABLE t_extra (id {ID}, note TEXT NOT NULL DEFAULT 'it''s ? {NOW}');"
        "INSERT INTO t_extra (note) VALUES ('x');",
        NULL};
    char err[512] = "";
    asr_store_t *s2 = NULL;
    assert_int_equal(
        asr__store_open_ex(f->url[0] ? f->url : NULL, f->dir, migs, n_migs, &s2, err, sizeof err),
        ASR_OK);
    int v = 0;
    assert_ok(asr_store_schema_version(s2, &v));
    assert_int_equal(v, latest + 1);
    asr_store_config_t c;
    assert_ok(asr_store_config_get(s2, id, &c)); /* data survived */
    assert_string_equal(c.name, "kept");
    asr_store_config_clear(&c);
    asr__rows_t r;
    pthread_mutex_lock(&s2->mu);
    assert_int_equal(asr__store_exec(s2, "SELECT note FROM t_extra", NULL, 0, &r), ASR_OK);
    pthread_mutex_unlock(&s2->mu);
    assert_string_equal(asr__store_cell(&r, 0, 0), "x");
    asr__store_rows_free(&r);
    asr_store_close(s2);
    /* this binary knows up to `latest` only: a newer database is refused, clearly */
    asr_store_t *s3 = NULL;
    assert_int_equal(asr_store_open(f->url[0] ? f->url : NULL, f->dir, &s3, err, sizeof err),
                     ASR_ERR_UNSUPPORTED);
    assert_null(s3);
    char want[64];
    snprintf(want, sizeof want, "schema version %d is newer", latest + 1);
    assert_non_null(strstr(err, want));
    assert_ok(asr__store_open_ex(f->url[0] ? f->url : NULL, f->dir, migs, n_migs, &f->s, err,
                                 sizeof err));
}

/* Every write of the configs raises configs_version, seen by another handle (another node) on the
 * same database; reads and health writes leave it. A version-1 database gains the counter. */
static void test_configs_version(void **state) {
    fx_t *f = *state;
    asr_store_t *other = NULL;
    assert_ok(open_fx(f, &other));
    int64_t v0 = -1, v = -1, w = -1;
    assert_ok(asr_store_configs_version(other, &v0));
    int64_t id = mkcfg(f->s, "a", "local", NULL, 1);
    assert_ok(asr_store_configs_version(other, &v));
    assert_true(v > v0);
    asr_store_config_input_t in;
    asr_store_config_input_init(&in);
    in.priority = 7;
    assert_ok(asr_store_config_update(f->s, id, &in));
    assert_ok(asr_store_configs_version(other, &w));
    assert_true(w > v);
    int64_t id2 = mkcfg(f->s, "b", "local", NULL, 2);
    assert_ok(asr_store_configs_version(other, &v));
    assert_ok(asr_store_config_set_default(f->s, id2));
    assert_ok(asr_store_configs_version(other, &w));
    assert_true(w > v);
    assert_ok(asr_store_health_add(f->s, id, true, 5, NULL)); /* not a config change */
    asr_store_config_t c;
    assert_ok(asr_store_config_get(f->s, id, &c));
    asr_store_config_clear(&c);
    assert_ok(asr_store_configs_version(other, &v));
    assert_int_equal(v, w);
    assert_ok(asr_store_config_delete(f->s, id));
    assert_ok(asr_store_configs_version(other, &w));
    assert_true(w > v);
    /* a failed write (duplicate name) changes nothing */
    asr_store_config_input_init(&in);
    in.name = "b";
    in.kind = "local";
    assert_err(asr_store_config_create(f->s, &in, NULL), ASR_ERR_INVALID, "name:");
    assert_ok(asr_store_configs_version(other, &v));
    assert_int_equal(v, w);
    asr_store_close(other);

    /* a database left at schema 1 (before the counter) migrates and counts from there */
    asr_store_close(f->s);
    f->s = NULL;
    if (g_pg) {
        char q[256];
        snprintf(q, sizeof q, "DROP SCHEMA IF EXISTS %s CASCADE; CREATE SCHEMA %s", f->schema,
                 f->schema);
        admin_sql(q);
    } else {
        static const char *const files[] = {"asrd.db", "asrd.db-wal", "asrd.db-shm"};
        for (int i = 0; i < 3; i++) {
            char p[300];
            snprintf(p, sizeof p, "%s/%s", f->dir, files[i]);
            unlink(p);
        }
    }
    char err[512] = "";
    assert_ok(asr__store_open_ex(f->url[0] ? f->url : NULL, f->dir, asr__store_migrations, 1, &f->s,
                                 err, sizeof err));
    asr_store_close(f->s);
    f->s = NULL;
    assert_ok(open_fx(f, &f->s));
    assert_ok(asr_store_configs_version(f->s, &v));
    mkcfg(f->s, "after-upgrade", "local", NULL, 1);
    assert_ok(asr_store_configs_version(f->s, &w));
    assert_true(w > v);
}

static void test_sql_rewrite(void **state) {
    (void)state;
    char *q = asr__store_sql(ASR__STORE_PG, "SELECT ? , '?', {NOW} WHERE a = ? {SKIP_LOCKED}");
    assert_non_null(strstr(q, "$1 , '?', CAST(EXTRACT"));
    assert_non_null(strstr(q, "a = $2 FOR UPDATE SKIP LOCKED"));
    free(q);
    q = asr__store_sql(ASR__STORE_SQLITE, "SELECT ? WHERE x = '{NOW}' {FOR_UPDATE}");
    assert_string_equal(q, "SELECT ? WHERE x = '{NOW}' ");
    free(q);
}

/* ---- configs ---- */

static void test_config_crud(void **state) {
    fx_t *f = *state;
    asr_store_config_input_t in;
    asr_store_config_input_init(&in);
    in.name = "remote-a";
    in.kind = "openai";
    in.api_url = "https://api.example.com/v1";
    in.model_name = "whisper-1";
    in.api_key = "sk-secret-123";
    in.priority = 5;
    in.timeout_ms = 30000;
    in.max_parallel = 2;
    int64_t id;
    assert_ok(asr_store_config_create(f->s, &in, &id));
    asr_store_config_t c;
    assert_ok(asr_store_config_get(f->s, id, &c));
    assert_string_equal(c.name, "remote-a");
    assert_string_equal(c.kind, "openai");
    assert_string_equal(c.api_url, "https://api.example.com/v1");
    assert_string_equal(c.model_name, "whisper-1");
    assert_true(c.has_api_key && c.is_active && c.is_default); /* first → default */
    assert_int_equal(c.priority, 5);
    assert_int_equal(c.timeout_ms, 30000);
    assert_int_equal(c.max_parallel, 2);
    assert_true(c.created_at > 1600000000000LL && c.updated_at >= c.created_at);
    asr_store_config_clear(&c);

    int64_t id2 = mkcfg(f->s, "local", "local", NULL, 1);
    asr_store_config_input_init(&in);
    in.priority = 50;
    in.is_active = 0;
    in.model_name = "base";
    assert_ok(asr_store_config_update(f->s, id2, &in));
    assert_ok(asr_store_config_get(f->s, id2, &c));
    assert_int_equal(c.priority, 50);
    assert_false(c.is_active);
    assert_string_equal(c.model_name, "base");
    assert_string_equal(c.kind, "local"); /* unset fields kept */
    assert_false(c.has_api_key);
    asr_store_config_clear(&c);

    asr_store_config_t *v;
    size_t n;
    assert_ok(asr_store_config_list(f->s, true, &v, &n));
    assert_int_equal(n, 1); /* the inactive one is skipped */
    assert_int_equal(v[0].id, id);
    asr_store_configs_free(v, n);

    assert_ok(asr_store_config_get_by_name(f->s, "local", &c));
    assert_int_equal(c.id, id2);
    asr_store_config_clear(&c);
    assert_ok(asr_store_config_delete(f->s, id2));
    assert_err(asr_store_config_get(f->s, id2, &c), ASR_ERR_NOT_FOUND, "id:");
    assert_err(asr_store_config_delete(f->s, id2), ASR_ERR_NOT_FOUND, "id:");
    asr_store_config_input_init(&in);
    in.priority = 1;
    assert_err(asr_store_config_update(f->s, 9999, &in), ASR_ERR_NOT_FOUND, "id:");
    assert_err(asr_store_config_set_default(f->s, 9999), ASR_ERR_NOT_FOUND, "id:");
}

/* aliases and allow_model_substitution (schema 4): defaults, create, partial update, checks. */
static void test_config_model_names(void **state) {
    fx_t *f = *state;
    int64_t plain = mkcfg(f->s, "local", "local", NULL, 1);
    asr_store_config_t c;
    assert_ok(asr_store_config_get(f->s, plain, &c));
    assert_string_equal(c.aliases, "");
    assert_true(c.allow_model_substitution); /* the default: as before the setting */
    asr_store_config_clear(&c);

    asr_store_config_input_t in;
    asr_store_config_input_init(&in);
    in.name = "gpu";
    in.kind = "openai";
    in.api_url = "http://gpu.test/v1";
    in.api_key = "sk-gpu";
    in.model_name = "whisper-large-v3";
    in.aliases = "large-v3, openai/whisper-large-v3";
    in.allow_model_substitution = 0;
    int64_t id;
    assert_ok(asr_store_config_create(f->s, &in, &id));
    assert_ok(asr_store_config_get(f->s, id, &c));
    assert_string_equal(c.aliases, "large-v3, openai/whisper-large-v3");
    assert_false(c.allow_model_substitution);
    asr_store_config_clear(&c);

    asr_store_config_input_init(&in); /* a partial update keeps the other field, and the key */
    in.aliases = "v3";
    assert_ok(asr_store_config_update(f->s, id, &in));
    assert_ok(asr_store_config_get(f->s, id, &c));
    assert_string_equal(c.aliases, "v3");
    assert_false(c.allow_model_substitution);
    assert_true(c.has_api_key);
    asr_store_config_clear(&c);
    char *key = NULL;
    assert_ok(asr_store_config_get_api_key(f->s, id, &key));
    assert_string_equal(key, "sk-gpu");
    asr_store_free(key);
    asr_store_config_input_init(&in);
    in.allow_model_substitution = 1;
    assert_ok(asr_store_config_update(f->s, id, &in));
    assert_ok(asr_store_config_get(f->s, id, &c));
    assert_true(c.allow_model_substitution);
    assert_string_equal(c.aliases, "v3");
    asr_store_config_clear(&c);

    asr_store_config_input_init(&in);
    in.aliases = "a\nb";
    assert_err(asr_store_config_update(f->s, id, &in), ASR_ERR_INVALID, "aliases:");
    asr_store_config_input_init(&in);
    in.allow_model_substitution = 2;
    assert_err(asr_store_config_update(f->s, id, &in), ASR_ERR_INVALID,
               "allow_model_substitution:");
}

static void test_config_validation(void **state) {
    fx_t *f = *state;
    struct {
        const char *name, *kind, *url;
        int priority, timeout_ms;
        const char *field;
    } bad[] = {
        {"", "local", NULL, 1, ASR_STORE_UNSET, "name: must not be empty"},
        {NULL, "local", NULL, 1, ASR_STORE_UNSET, "name: must not be empty"},
        {"a\nb", "local", NULL, 1, ASR_STORE_UNSET, "name: contains control characters"},
        {"a\x7f", "local", NULL, 1, ASR_STORE_UNSET, "name: contains control characters"},
        {"\xc3\x28", "local", NULL, 1, ASR_STORE_UNSET, "name: is not valid UTF-8"},
        {"x", "grpc", NULL, 1, ASR_STORE_UNSET, "kind: must be local, openai or whisper.cpp"},
        {"x", "openai", NULL, 1, ASR_STORE_UNSET, "api_url: required"},
        {"x", "openai", "ftp://h/x", 1, ASR_STORE_UNSET, "api_url: must be an http"},
        {"x", "openai", "http://", 1, ASR_STORE_UNSET, "api_url: has no host"},
        {"x", "openai", "http://a b/", 1, ASR_STORE_UNSET, "api_url: must not contain spaces"},
        {"x", "openai", "http://h:99999/", 1, ASR_STORE_UNSET, "api_url: has an invalid port"},
        {"x", "openai", "http://h:/", 1, ASR_STORE_UNSET, "api_url: has an invalid port"},
        {"x", "openai", "http://u:p@h/", 1, ASR_STORE_UNSET, "api_url: must not contain cred"},
        {"x", "whisper.cpp", "javascript:alert(1)", 1, ASR_STORE_UNSET, "api_url:"},
        {"x", "local", NULL, -1, ASR_STORE_UNSET, "priority: must be between 0 and 10000"},
        {"x", "local", NULL, 10001, ASR_STORE_UNSET, "priority:"},
        {"x", "local", NULL, 1, 5, "timeout_ms:"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        asr_store_config_input_t in;
        asr_store_config_input_init(&in);
        in.name = bad[i].name;
        in.kind = bad[i].kind;
        in.api_url = bad[i].url;
        in.priority = bad[i].priority;
        in.timeout_ms = bad[i].timeout_ms;
        char err[256];
        assert_int_equal(asr_store_config_validate(&in, err, sizeof err), ASR_ERR_INVALID);
        assert_err(asr_store_config_create(f->s, &in, NULL), ASR_ERR_INVALID, bad[i].field);
    }
    const char *good[] = {"http://localhost:8080/v1", "https://[::1]:9000/inference",
                          "HTTPS://api.openai.com", "http://10.0.0.2/v1/audio?x=1#y"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        asr_store_config_input_t in;
        asr_store_config_input_init(&in);
        in.name = good[i];
        in.kind = "openai";
        in.api_url = good[i];
        char err[256] = "";
        if (asr_store_config_validate(&in, err, sizeof err) != ASR_OK)
            fail_msg("%s: %s", good[i], err);
    }
    int nd;
    assert_int_equal(n_configs(f->s, &nd, NULL), 0); /* nothing half-written */
    /* an update that would make the row invalid leaves it untouched */
    int64_t id = mkcfg(f->s, "r", "openai", "http://h:1/", 3);
    asr_store_config_input_t in;
    asr_store_config_input_init(&in);
    in.priority = 7;
    in.api_url = "not a url";
    assert_err(asr_store_config_update(f->s, id, &in), ASR_ERR_INVALID, "api_url:");
    asr_store_config_t c;
    assert_ok(asr_store_config_get(f->s, id, &c));
    assert_int_equal(c.priority, 3);
    asr_store_config_clear(&c);
}

static void test_config_duplicate_and_metachars(void **state) {
    fx_t *f = *state;
    const char *evil = "x'); DROP TABLE asr_configs;--";
    int64_t a = mkcfg(f->s, evil, "local", NULL, 1);
    int64_t b = mkcfg(f->s, "语音 \"quoted\" \\ back%slash_?", "local", NULL, 2);
    asr_store_config_t c;
    assert_ok(asr_store_config_get(f->s, a, &c));
    assert_string_equal(c.name, evil);
    asr_store_config_clear(&c);
    assert_ok(asr_store_config_get_by_name(f->s, "语音 \"quoted\" \\ back%slash_?", &c));
    assert_int_equal(c.id, b);
    asr_store_config_clear(&c);
    assert_err(asr_store_config_get_by_name(f->s, "x", &c), ASR_ERR_NOT_FOUND, "name:");

    asr_store_config_input_t in;
    asr_store_config_input_init(&in);
    in.name = evil;
    assert_err(asr_store_config_create(f->s, &in, NULL), ASR_ERR_INVALID, "name: already exists");
    assert_err(asr_store_config_update(f->s, b, &in), ASR_ERR_INVALID, "name: already exists");
    int nd;
    assert_int_equal(n_configs(f->s, &nd, NULL), 2); /* the table is still there */
    in.name = "renamed";
    assert_ok(asr_store_config_update(f->s, a, &in));
    in.name = "renamed"; /* renaming to its own name is fine */
    assert_ok(asr_store_config_update(f->s, a, &in));
}

static void test_config_one_default(void **state) {
    fx_t *f = *state;
    int nd;
    int64_t def = 0;
    int64_t a = mkcfg(f->s, "a", "local", NULL, 10);
    int64_t b = mkcfg(f->s, "b", "openai", "http://b/", 20);
    assert_int_equal(n_configs(f->s, &nd, &def), 2);
    assert_int_equal(nd, 1);
    assert_int_equal(def, a); /* the first one */

    asr_store_config_input_t in;
    asr_store_config_input_init(&in);
    in.name = "c";
    in.kind = "whisper.cpp";
    in.api_url = "http://c:8080";
    in.priority = 5;
    in.is_default = 1;
    int64_t c;
    assert_ok(asr_store_config_create(f->s, &in, &c));
    n_configs(f->s, &nd, &def);
    assert_int_equal(nd, 1);
    assert_int_equal(def, c);

    assert_ok(asr_store_config_set_default(f->s, b));
    assert_ok(asr_store_config_set_default(f->s, b)); /* idempotent */
    n_configs(f->s, &nd, &def);
    assert_int_equal(nd, 1);
    assert_int_equal(def, b);

    asr_store_config_input_init(&in);
    in.is_default = 0;
    assert_err(asr_store_config_update(f->s, b, &in), ASR_ERR_INVALID, "is_default:");
    in.is_default = 1;
    assert_ok(asr_store_config_update(f->s, a, &in));
    n_configs(f->s, &nd, &def);
    assert_int_equal(nd, 1);
    assert_int_equal(def, a);

    /* the partial unique index backs the rule even against a direct write */
    asr__param_t p = PI64(b);
    pthread_mutex_lock(&f->s->mu);
    assert_int_equal(
        asr__store_exec(f->s, "UPDATE asr_configs SET is_default = 1 WHERE id = ?", &p, 1, NULL),
        ASR_ERR_DB);
    pthread_mutex_unlock(&f->s->mu);

    /* deleting the default promotes the next by priority (c: 5) */
    assert_ok(asr_store_config_delete(f->s, a));
    n_configs(f->s, &nd, &def);
    assert_int_equal(nd, 1);
    assert_int_equal(def, c);
    assert_ok(asr_store_config_delete(f->s, c));
    assert_ok(asr_store_config_delete(f->s, b));
    assert_int_equal(n_configs(f->s, &nd, &def), 0);
    mkcfg(f->s, "again", "local", NULL, 1);
    n_configs(f->s, &nd, &def);
    assert_int_equal(nd, 1);
}

/* The api_key column of config `id` as stored (malloc'd; NULL for SQL NULL). */
static char *stored_api_key(asr_store_t *s, int64_t id) {
    asr__rows_t r;
    asr__param_t p = PI64(id);
    pthread_mutex_lock(&s->mu);
    assert_int_equal(asr__store_exec(s, "SELECT api_key FROM asr_configs WHERE id = ?", &p, 1, &r),
                     ASR_OK);
    pthread_mutex_unlock(&s->mu);
    char *v = asr__store_cell_dup(&r, 0, 0);
    asr__store_rows_free(&r);
    return v;
}

static void test_config_api_key(void **state) {
    fx_t *f = *state;
    const char *key = "sk-live-0123456789abcdef\"'; --";
    asr_store_config_input_t in;
    asr_store_config_input_init(&in);
    in.name = "k";
    in.kind = "openai";
    in.api_url = "https://api.openai.com/v1";
    in.api_key = key;
    int64_t id;
    assert_ok(asr_store_config_create(f->s, &in, &id));
    int64_t id2 = mkcfg(f->s, "nokey", "local", NULL, 1);

    /* at rest: ciphertext, never the plaintext */
    char *stored = stored_api_key(f->s, id);
    assert_non_null(stored);
    assert_memory_equal(stored, "v1:", 3);
    assert_null(strstr(stored, "sk-live"));
    free(stored);

    asr_store_config_t *v;
    size_t n;
    assert_ok(asr_store_config_list(f->s, false, &v, &n));
    assert_int_equal(n, 2);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(v[i].has_api_key, v[i].id == id);
    asr_store_configs_free(v, n);

    char *got = NULL;
    assert_ok(asr_store_config_get_api_key(f->s, id, &got));
    assert_string_equal(got, key);
    asr_store_free(got);
    assert_ok(asr_store_config_get_api_key(f->s, id2, &got));
    assert_null(got);
    assert_err(asr_store_config_get_api_key(f->s, 9999, &got), ASR_ERR_NOT_FOUND, "id:");

    /* another secret key cannot read it, and says why */
    setenv("ASRD_SECRET_KEY", "a passphrase that is not the key file", 1);
    char err[512], path[300];
    snprintf(path, sizeof path, "%s/asrd.db", f->dir);
    asr_store_t *other = NULL;
    assert_int_equal(asr_store_open(g_pg ? f->url : path, NULL, &other, err, sizeof err), ASR_OK);
    unsetenv("ASRD_SECRET_KEY");
    assert_err(asr_store_config_get_api_key(other, id, &got), ASR_ERR_INVALID,
               "api_key: cannot be decrypted");
    asr_store_close(other);

    /* update keeps the key when unset, replaces it, clears it with "" */
    asr_store_config_input_init(&in);
    in.priority = 3;
    assert_ok(asr_store_config_update(f->s, id, &in));
    assert_ok(asr_store_config_get_api_key(f->s, id, &got));
    assert_string_equal(got, key);
    asr_store_free(got);
    in.api_key = "sk-new";
    assert_ok(asr_store_config_update(f->s, id, &in));
    assert_ok(asr_store_config_get_api_key(f->s, id, &got));
    assert_string_equal(got, "sk-new");
    asr_store_free(got);
    in.api_key = "";
    assert_ok(asr_store_config_update(f->s, id, &in));
    assert_ok(asr_store_config_get_api_key(f->s, id, &got));
    assert_null(got);
    asr_store_config_t c;
    assert_ok(asr_store_config_get(f->s, id, &c));
    assert_false(c.has_api_key);
    asr_store_config_clear(&c);
}

/* ---- health ---- */

static int g_legacy_logs;
static void count_legacy_log(asr_log_level_t level, const char *line, void *ud) {
    (void)level;
    (void)ud;
    if (strstr(line, "msg=api_key_legacy_encryption"))
        g_legacy_logs++;
}

/* A 32-byte key as the 64 hex digits ASRD_SECRET_KEY takes. */
static void to_hex(const unsigned char key[32], char hex[65]) {
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", key[i]);
}

/* Opens the fixture's database (not its data dir: the key comes from ASRD_SECRET_KEY = key). */
static asr_store_t *open_with_key(fx_t *f, const char *key) {
    char err[512] = "", path[300];
    snprintf(path, sizeof path, "%s/asrd.db", f->dir);
    setenv("ASRD_SECRET_KEY", key, 1);
    asr_store_t *s = NULL;
    asr_err_t e = asr_store_open(g_pg ? f->url : path, NULL, &s, err, sizeof err);
    unsetenv("ASRD_SECRET_KEY");
    if (e != ASR_OK)
        fail_msg("open: %s", err);
    return s;
}

/* A passphrase key is PBKDF2-HMAC-SHA256 with a salt kept in the value ("v2:"); values written
 * under the old derivation (one SHA-256 of the passphrase, "v1:") still read, are re-encrypted at
 * open, and the old key no longer opens what is written now. */
static void test_secret_passphrase_kdf(void **state) {
    fx_t *f = *state;
    const char *pass = "correct horse battery staple";
    unsigned char old_key[32];
    SHA256((const unsigned char *)pass, strlen(pass), old_key);
    char old_hex[65];
    to_hex(old_key, old_hex);
    /* what an older asrd wrote under this passphrase: "v1:" under SHA-256(passphrase) */
    asr_store_t *old = open_with_key(f, old_hex);
    asr_store_config_input_t in;
    asr_store_config_input_init(&in);
    in.name = "legacy";
    in.kind = "openai";
    in.api_url = "https://api.openai.com/v1";
    in.api_key = "sk-written-long-ago";
    int64_t id_old;
    assert_ok(asr_store_config_create(old, &in, &id_old));
    char *v1 = stored_api_key(old, id_old);
    assert_memory_equal(v1, "v1:", 3);

    g_legacy_logs = 0;
    atomic_store(&asr__store_legacy_logged, false);
    asr_log_set(count_legacy_log, NULL);
    asr_store_t *s = open_with_key(f, pass);
    /* the old form still decrypts under the passphrase (logged once, however often it is met) */
    char *got = NULL;
    assert_ok(asr__store_decrypt(s, v1, &got));
    assert_string_equal(got, "sk-written-long-ago");
    free(got);
    assert_ok(asr__store_decrypt(s, v1, &got));
    free(got);
    asr_log_set(NULL, NULL);
    assert_int_equal(g_legacy_logs, 1);
    /* opening re-encrypted the row with the KDF: same secret, new form */
    char *up = stored_api_key(s, id_old);
    assert_memory_equal(up, "v2:", 3);
    assert_ok(asr_store_config_get_api_key(s, id_old, &got));
    assert_string_equal(got, "sk-written-long-ago");
    asr_store_free(got);
    assert_err(asr__store_decrypt(old, up, &got), ASR_ERR_INVALID, "cannot be decrypted");
    free(up);

    /* a new write: "v2:" + salt; two writes share the per-process salt, each has its own nonce */
    in.name = "fresh";
    in.api_key = "sk-new";
    int64_t id_new;
    assert_ok(asr_store_config_create(s, &in, &id_new));
    char *v2 = stored_api_key(s, id_new);
    assert_memory_equal(v2, "v2:", 3);
    char *again = NULL;
    assert_ok(asr__store_encrypt(s, "sk-new", &again));
    assert_string_not_equal(again, v2);
    unsigned char raw_a[64], raw_b[64];
    assert_true(EVP_DecodeBlock(raw_a, (const unsigned char *)v2 + 3, 24) > 16);
    assert_true(EVP_DecodeBlock(raw_b, (const unsigned char *)again + 3, 24) > 16);
    assert_memory_equal(raw_a, raw_b, 16);
    free(again);
    /* the old single-SHA-256 key cannot open it; the key is PBKDF2 with that salt */
    assert_err(asr__store_decrypt(old, v2, &got), ASR_ERR_INVALID, "cannot be decrypted");
    unsigned char kdf_key[32];
    assert_int_equal(
        PKCS5_PBKDF2_HMAC(pass, (int)strlen(pass), raw_a, 16, 600000, EVP_sha256(), 32, kdf_key),
        1);
    char kdf_hex[65];
    to_hex(kdf_key, kdf_hex);
    asr_store_t *raw = open_with_key(f, kdf_hex); /* a raw-key store with exactly that key */
    char *v1_like = NULL; /* the same bytes without the salt, as a raw-key "v1:" value */
    unsigned char all[128];
    int n = EVP_DecodeBlock(all, (const unsigned char *)v2 + 3, (int)strlen(v2 + 3));
    n -= (v2[strlen(v2) - 1] == '=') + (v2[strlen(v2) - 2] == '=');
    char b64[200] = "v1:";
    EVP_EncodeBlock((unsigned char *)b64 + 3, all + 16, n - 16);
    assert_ok(asr__store_decrypt(raw, b64, &v1_like));
    assert_string_equal(v1_like, "sk-new");
    free(v1_like);
    free(v2);
    /* another process with the passphrase (empty cache) reads both */
    asr_store_t *other = open_with_key(f, pass);
    assert_ok(asr_store_config_get_api_key(other, id_new, &got));
    assert_string_equal(got, "sk-new");
    asr_store_free(got);
    assert_ok(asr_store_config_get_api_key(other, id_old, &got));
    assert_string_equal(got, "sk-written-long-ago");
    asr_store_free(got);
    free(v1);
    asr_store_close(other);
    asr_store_close(raw);
    asr_store_close(s);
    asr_store_close(old);
}

static void test_health_history(void **state) {
    fx_t *f = *state;
    int64_t a = mkcfg(f->s, "a", "local", NULL, 1);
    int64_t b = mkcfg(f->s, "b", "local", NULL, 2);
    for (int i = 0; i < 5; i++) {
        char msg[32];
        snprintf(msg, sizeof msg, "err %d", i);
        assert_ok(asr_store_health_add(f->s, a, i % 2 == 0, 100 + i, i % 2 ? msg : NULL));
        sleep_ms(2);
    }
    assert_ok(asr_store_health_add(f->s, b, true, -1, NULL));
    assert_err(asr_store_health_add(f->s, 9999, true, 1, NULL), ASR_ERR_NOT_FOUND, "config_id:");
    asr_store_health_t *h;
    size_t n;
    assert_ok(asr_store_health_list(f->s, a, 3, &h, &n));
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; i++) { /* newest first: 4, 3, 2 */
        assert_int_equal(h[i].latency_ms, 104 - (int)i);
        assert_int_equal(h[i].ok, (4 - i) % 2 == 0);
        assert_int_equal(h[i].config_id, a);
        if (i > 0)
            assert_true(h[i].checked_at <= h[i - 1].checked_at);
    }
    assert_null(h[0].error);
    assert_string_equal(h[1].error, "err 3");
    asr_store_health_free(h, n);
    assert_ok(asr_store_health_list(f->s, b, 10, &h, &n));
    assert_int_equal(n, 1);
    assert_int_equal(h[0].latency_ms, -1);
    asr_store_health_free(h, n);

    assert_ok(asr_store_health_prune(f->s, 2));
    assert_ok(asr_store_health_list(f->s, a, 10, &h, &n));
    assert_int_equal(n, 2);
    assert_int_equal(h[0].latency_ms, 104);
    asr_store_health_free(h, n);
    assert_ok(asr_store_config_delete(f->s, a)); /* cascades */
    assert_ok(asr_store_health_list(f->s, a, 10, &h, &n));
    assert_int_equal(n, 0);
    asr_store_health_free(h, n);
}

/* ---- recordings and jobs ---- */

static int64_t mkrec(asr_store_t *s, const char *name) {
    asr_store_recording_t r = {.name = (char *)name,
                               .path = "/data/rec/x.wav",
                               .size_bytes = 1234,
                               .duration_s = 12.5,
                               .language_hint = "en"};
    int64_t id = 0;
    assert_ok(asr_store_recording_create(s, &r, &id));
    return id;
}

static int64_t mkjob(asr_store_t *s, int64_t rec, int max_attempts) {
    asr_store_job_input_t in = {
        .recording_id = rec, .model = "tiny.en", .max_attempts = max_attempts};
    int64_t id = 0;
    bool created = false;
    assert_ok(asr_store_job_submit(s, &in, &id, &created));
    assert_true(created);
    return id;
}

static void test_recordings(void **state) {
    fx_t *f = *state;
    int64_t a = mkrec(f->s, "talk 'one'.mp3");
    int64_t b = mkrec(f->s, "two.wav");
    asr_store_recording_t r;
    assert_ok(asr_store_recording_get(f->s, a, &r));
    assert_string_equal(r.name, "talk 'one'.mp3");
    assert_string_equal(r.status, "uploaded");
    assert_string_equal(r.language_hint, "en");
    assert_int_equal(r.size_bytes, 1234);
    assert_true(r.duration_s > 12.49 && r.duration_s < 12.51);
    asr_store_recording_clear(&r);
    assert_ok(asr_store_recording_set_status(f->s, b, "done"));
    assert_err(asr_store_recording_set_status(f->s, 9999, "done"), ASR_ERR_NOT_FOUND, "id:");
    asr_store_recording_t *v;
    size_t n;
    int64_t total;
    assert_ok(asr_store_recording_list(f->s, NULL, 0, 10, &v, &n, &total));
    assert_int_equal(n, 2);
    assert_int_equal(total, 2);
    assert_int_equal(v[0].id, b); /* newest first */
    asr_store_recordings_free(v, n);
    assert_ok(asr_store_recording_list(f->s, "done", 0, 10, &v, &n, &total));
    assert_int_equal(n, 1);
    assert_int_equal(total, 1);
    asr_store_recordings_free(v, n);
    assert_ok(asr_store_recording_list(f->s, NULL, 1, 10, &v, &n, &total));
    assert_int_equal(n, 1);
    assert_int_equal(v[0].id, a);
    asr_store_recordings_free(v, n);
    asr_store_recording_t bad = {.name = "", .path = "/x"};
    assert_err(asr_store_recording_create(f->s, &bad, NULL), ASR_ERR_INVALID, "name:");

    int64_t j = mkjob(f->s, a, 3);
    assert_ok(asr_store_recording_delete(f->s, a)); /* and its jobs */
    asr_store_job_t job;
    assert_err(asr_store_job_get(f->s, j, &job), ASR_ERR_NOT_FOUND, "id:");
    assert_err(asr_store_recording_delete(f->s, a), ASR_ERR_NOT_FOUND, "id:");
}

/* Runs one job of `rec` to its end: done with {"text": text} when text is non-NULL, else failed. */
static void finish_job(asr_store_t *s, int64_t rec, const char *text) {
    int64_t id = mkjob(s, rec, 1);
    asr_store_lease_t l;
    assert_ok(asr_store_job_claim(s, "node-a/w1", 30000, &l, NULL));
    assert_int_equal(l.job_id, id);
    if (text) {
        json_t *o = json_pack("{s:s}", "text", text);
        char *js = json_dumps(o, JSON_COMPACT);
        assert_ok(asr_store_job_complete(s, &l, js, "local", "tiny.en", "done"));
        free(js);
        json_decref(o);
    } else
        assert_ok(asr_store_job_fail(s, &l, "boom", false, 0, "failed", NULL));
}

static void search_ids(asr_store_t *s, const char *q, char *out, size_t cap);

/* A recording is renamed in place; an edit is kept beside its job's result (never changing it),
 * replaced, cleared, refused when out of range or not text, and goes with its job's recording. */
static void test_rename_and_segment_edits(void **state) {
    fx_t *f = *state;
    int64_t a = mkrec(f->s, "old name.wav");
    assert_ok(asr_store_recording_rename(f->s, a, "周会 — renamed"));
    asr_store_recording_t r;
    assert_ok(asr_store_recording_get(f->s, a, &r));
    assert_string_equal(r.name, "周会 — renamed");
    asr_store_recording_clear(&r);
    assert_err(asr_store_recording_rename(f->s, a, ""), ASR_ERR_INVALID, "name:");
    assert_err(asr_store_recording_rename(f->s, a, "tab\there"), ASR_ERR_INVALID, "name:");
    assert_err(asr_store_recording_rename(f->s, 9999, "x"), ASR_ERR_NOT_FOUND, "id:");

    finish_job(f->s, a, "hello world");
    asr_store_job_t *jobs;
    size_t nj;
    assert_ok(asr_store_job_list(f->s, a, ASR_STORE_JOB_DONE, 0, 1, &jobs, &nj));
    assert_int_equal(nj, 1);
    int64_t j = jobs[0].id;
    asr_store_jobs_free(jobs, nj);
    asr_store_segment_edit_t *v;
    size_t n;
    assert_ok(asr_store_segment_edits_list(f->s, j, &v, &n));
    assert_int_equal(n, 0);
    assert_ok(asr_store_segment_edit_set(f->s, j, 2, "second fix"));
    assert_ok(asr_store_segment_edit_set(f->s, j, 0, "first"));
    assert_ok(asr_store_segment_edit_set(f->s, j, 0, "first, again")); /* replaces */
    assert_ok(asr_store_segment_edit_set(f->s, j, 1, ""));             /* says nothing */
    assert_ok(asr_store_segment_edits_list(f->s, j, &v, &n));
    assert_int_equal(n, 3);
    assert_int_equal(v[0].segment, 0);
    assert_string_equal(v[0].text, "first, again");
    assert_int_equal(v[0].job_id, j);
    assert_true(v[0].updated_at > 0);
    assert_string_equal(v[1].text, "");
    assert_int_equal(v[2].segment, 2);
    asr_store_segment_edits_free(v, n);
    asr_store_job_t job; /* the stored result is untouched */
    assert_ok(asr_store_job_get(f->s, j, &job));
    assert_string_equal(job.result_json, "{\"text\":\"hello world\"}");
    asr_store_job_clear(&job);
    /* search follows the text as served, corrections applied */
    assert_ok(asr_store_search_reindex(f->s, j, "{\"text\":\"hello zebracorn\"}"));
    char ids[64], want[32];
    snprintf(want, sizeof want, "%lld", (long long)a);
    search_ids(f->s, "zebracorn", ids, sizeof ids);
    assert_string_equal(ids, want);
    assert_ok(asr_store_search_reindex(f->s, j, "{\"text\":\"hello world\"}"));
    search_ids(f->s, "zebracorn", ids, sizeof ids);
    assert_string_equal(ids, "");
    assert_ok(asr_store_segment_edit_set(f->s, j, 1, NULL)); /* cleared */
    assert_ok(asr_store_segment_edit_set(f->s, j, 7, NULL)); /* clearing nothing */
    assert_ok(asr_store_segment_edits_list(f->s, j, &v, &n));
    assert_int_equal(n, 2);
    asr_store_segment_edits_free(v, n);
    assert_err(asr_store_segment_edit_set(f->s, j, -1, "x"), ASR_ERR_INVALID, "segment:");
    assert_err(asr_store_segment_edit_set(f->s, j, 0, "a\x01b"), ASR_ERR_INVALID, "text:");
    assert_err(asr_store_segment_edit_set(f->s, j, 0, "\xff\xfe"), ASR_ERR_INVALID, "text:");
    char *big = malloc(ASR_STORE_EDIT_MAX + 2);
    memset(big, 'x', ASR_STORE_EDIT_MAX + 1);
    big[ASR_STORE_EDIT_MAX + 1] = 0;
    assert_err(asr_store_segment_edit_set(f->s, j, 0, big), ASR_ERR_INVALID, "text:");
    free(big);
    assert_err(asr_store_segment_edit_set(f->s, 99999, 0, "x"), ASR_ERR_NOT_FOUND, "job_id:");
    assert_ok(asr_store_recording_delete(f->s, a)); /* its jobs, and their edits, go too */
    assert_ok(asr_store_segment_edits_list(f->s, j, &v, &n));
    assert_int_equal(n, 0);
}

/* The ids search finds for q, newest first, as "3,1"; its total must match the count. */
static void search_ids(asr_store_t *s, const char *q, char *out, size_t cap) {
    asr_store_recording_t *v;
    size_t n;
    int64_t total = -1;
    assert_ok(asr_store_recording_search(s, q, NULL, 0, 50, &v, &n, &total));
    assert_int_equal(total, (int64_t)n);
    out[0] = 0;
    for (size_t i = 0; i < n; i++)
        snprintf(out + strlen(out), cap - strlen(out), "%s%lld", i ? "," : "", (long long)v[i].id);
    asr_store_recordings_free(v, n);
}

/* Search matches names and transcript texts (Chinese substrings of any length, ASCII
 * case-insensitively); a failed re-run keeps the last good text searchable; the text follows a
 * newer good transcript; a deleted recording's text is gone; bad queries are refused. */
static void test_recording_search(void **state) {
    fx_t *f = *state;
    int64_t a = mkrec(f->s, "周会.wav");
    int64_t b = mkrec(f->s, "standup.wav");
    int64_t c = mkrec(f->s, "100%_done.wav");
    finish_job(f->s, a, "今天我们讨论广州的房地产市场。");
    finish_job(f->s, b, "The Quarterly budget review");
    char ids[128], want[128];
    if (g_pg) { /* pg_trgm is installed where the tests run: the index exists */
        asr__rows_t r;
        pthread_mutex_lock(&f->s->mu);
        assert_int_equal(asr__store_exec(f->s,
                                         "SELECT COUNT(*) FROM pg_indexes WHERE indexname = "
                                         "'recording_texts_trgm'",
                                         NULL, 0, &r),
                         ASR_OK);
        pthread_mutex_unlock(&f->s->mu);
        assert_int_equal(asr__store_cell_i64(&r, 0, 0), 1);
        asr__store_rows_free(&r);
    }
    search_ids(f->s, "房地产", ids, sizeof ids); /* only in a's transcript */
    snprintf(want, sizeof want, "%lld", (long long)a);
    assert_string_equal(ids, want);
    search_ids(f->s, "广州", ids, sizeof ids); /* 2 characters: no trigram */
    assert_string_equal(ids, want);
    search_ids(f->s, "市", ids, sizeof ids);
    assert_string_equal(ids, want);
    search_ids(f->s, "周会", ids, sizeof ids); /* by name */
    assert_string_equal(ids, want);
    search_ids(f->s, "quarterly BUDGET", ids, sizeof ids);
    snprintf(want, sizeof want, "%lld", (long long)b);
    assert_string_equal(ids, want);
    search_ids(f->s, "%_", ids, sizeof ids); /* wildcards are literal */
    snprintf(want, sizeof want, "%lld", (long long)c);
    assert_string_equal(ids, want);
    search_ids(f->s, "\"", ids, sizeof ids); /* FTS5 syntax is literal too */
    assert_string_equal(ids, "");
    search_ids(f->s, "say \"hi\" OR *", ids, sizeof ids);
    assert_string_equal(ids, "");
    search_ids(f->s, "nowhere at all", ids, sizeof ids);
    assert_string_equal(ids, "");
    search_ids(f->s, ".wav", ids, sizeof ids);
    snprintf(want, sizeof want, "%lld,%lld,%lld", (long long)c, (long long)b, (long long)a);
    assert_string_equal(ids, want);
    /* with a status filter: only b's and a's are done */
    asr_store_recording_t *v;
    size_t n;
    int64_t total;
    assert_ok(asr_store_recording_search(f->s, ".wav", "done", 1, 1, &v, &n, &total));
    assert_int_equal(n, 1);
    assert_int_equal(total, 2);
    assert_int_equal(v[0].id, a);
    asr_store_recordings_free(v, n);

    finish_job(f->s, b, NULL); /* a failed re-run: the good text stays */
    search_ids(f->s, "budget", ids, sizeof ids);
    snprintf(want, sizeof want, "%lld", (long long)b);
    assert_string_equal(ids, want);
    finish_job(f->s, b, "sprint planning"); /* a newer good one replaces it */
    search_ids(f->s, "budget", ids, sizeof ids);
    assert_string_equal(ids, "");
    search_ids(f->s, "PLANNING", ids, sizeof ids);
    assert_string_equal(ids, want);

    assert_ok(asr_store_recording_delete(f->s, a));
    search_ids(f->s, "房地产", ids, sizeof ids);
    assert_string_equal(ids, "");
    search_ids(f->s, "广州", ids, sizeof ids);
    assert_string_equal(ids, "");

    assert_err(asr_store_recording_search(f->s, "", NULL, 0, 10, &v, &n, NULL), ASR_ERR_INVALID,
               "q:");
    assert_err(asr_store_recording_search(f->s, "\xff\xfe", NULL, 0, 10, &v, &n, NULL),
               ASR_ERR_INVALID, "q:");
    char longq[ASR_STORE_SEARCH_MAX + 2];
    memset(longq, 'x', sizeof longq - 1);
    longq[sizeof longq - 1] = 0;
    assert_err(asr_store_recording_search(f->s, longq, NULL, 0, 10, &v, &n, NULL), ASR_ERR_INVALID,
               "q:");
}

/* A job finished before version 3 (written as that version did: no text index). */
static void finish_job_v2(asr_store_t *s, int64_t rec) {
    asr__param_t p = PI64(rec);
    pthread_mutex_lock(&s->mu);
    assert_int_equal(
        asr__store_exec(s,
                        "INSERT INTO jobs (recording_id, state, result_json, "
                        "created_at) VALUES (?, 'done', '{\"text\": \"本次会议记录如下\"}', 0)",
                        &p, 1, NULL),
        ASR_OK);
    pthread_mutex_unlock(&s->mu);
}

/* A database of version 2 with a finished job gains its transcript text in the search at
 * upgrade. */
static void test_search_backfill(void **state) {
    fx_t *f = *state;
    asr_store_close(f->s); /* a new, empty database, migrated to version 2 only */
    f->s = NULL;
    if (g_pg) {
        char q[256];
        snprintf(q, sizeof q, "DROP SCHEMA %s CASCADE; CREATE SCHEMA %s", f->schema, f->schema);
        admin_sql(q);
    } else
        for (int i = 0; i < 3; i++) {
            char p[300];
            snprintf(p, sizeof p, "%s/asrd.db%s", f->dir, (const char *[]){"", "-wal", "-shm"}[i]);
            unlink(p);
        }
    char err[512] = "";
    const char *url = f->url[0] ? f->url : NULL;
    assert_ok(asr__store_open_ex(url, f->dir, asr__store_migrations, 2, &f->s, err, sizeof err));
    int v = 0;
    assert_ok(asr_store_schema_version(f->s, &v));
    assert_int_equal(v, 2);
    int64_t a = mkrec(f->s, "old.wav");
    finish_job_v2(f->s, a);
    asr_store_close(f->s);
    f->s = NULL;
    assert_ok(asr_store_open(url, f->dir, &f->s, err, sizeof err));
    char ids[64], want[64];
    search_ids(f->s, "会议记录", ids, sizeof ids);
    snprintf(want, sizeof want, "%lld", (long long)a);
    assert_string_equal(ids, want);
}

/* A node that does not serve a job's model passes over it (claim_except) or, having claimed it,
 * releases it without spending an attempt; a node that serves the model then claims it. */
static void test_job_model_not_served(void **state) {
    fx_t *f = *state;
    int64_t j_base = 0, j_any = 0;
    asr_store_job_input_t in = {.recording_id = mkrec(f->s, "a.wav"), .model = "base"};
    assert_ok(asr_store_job_submit(f->s, &in, &j_base, NULL));
    asr_store_job_input_t in2 = {.recording_id = mkrec(f->s, "b.wav")}; /* the default model */
    assert_ok(asr_store_job_submit(f->s, &in2, &j_any, NULL));
    const char *skip[] = {"base", "small"};
    asr_store_lease_t l;
    asr_store_job_t j;
    /* the tiny.en node passes over the base job and takes the next one */
    assert_ok(asr_store_job_claim_except(f->s, "tiny-node/w1", 30000, skip, 2, &l, &j));
    assert_int_equal(j.id, j_any);
    asr_store_job_clear(&j);
    assert_err(asr_store_job_claim_except(f->s, "tiny-node/w1", 30000, skip, 2, &l, NULL),
               ASR_ERR_NOT_FOUND, "no job");
    assert_err(
        asr_store_job_claim_except(f->s, "x", 30000, skip, ASR_STORE_CLAIM_MAX_SKIP + 1, &l, NULL),
        ASR_ERR_INVALID, "skip_models");
    /* one that claimed it before knowing gives it back: queued, no attempt spent */
    assert_ok(asr_store_job_claim(f->s, "tiny-node/w2", 30000, &l, &j));
    assert_int_equal(j.id, j_base);
    assert_int_equal(j.attempts, 1);
    asr_store_job_clear(&j);
    asr_store_lease_t stale = l;
    assert_ok(asr_store_job_release(f->s, &l, "model 'base' is not served on tiny-node"));
    assert_ok(asr_store_job_get(f->s, j_base, &j));
    assert_int_equal(j.state, ASR_STORE_JOB_QUEUED);
    assert_int_equal(j.attempts, 0);
    assert_null(j.lease_owner);
    assert_int_equal(j.started_at, 0);
    assert_non_null(strstr(j.last_error, "not served"));
    asr_store_job_clear(&j);
    /* the release is fenced like every lease write */
    assert_err(asr_store_job_release(f->s, &stale, "again"), ASR_ERR_BUSY, "");
    /* a node serving base claims it right away (no backoff) */
    assert_ok(asr_store_job_claim_except(f->s, "base-node/w1", 30000, NULL, 0, &l, &j));
    assert_int_equal(j.id, j_base);
    assert_int_equal(j.attempts, 1);
    asr_store_job_clear(&j);
}

static void test_job_submit_idempotent(void **state) {
    fx_t *f = *state;
    int64_t rec = mkrec(f->s, "r");
    asr_store_job_input_t in = {.recording_id = rec,
                                .model = "base",
                                .language = "de",
                                .options_json = "{\"beam_size\":5}",
                                .webhook_url = "http://hook.local/done"};
    int64_t id1, id2;
    bool created;
    assert_ok(asr_store_job_submit(f->s, &in, &id1, &created));
    assert_true(created);
    assert_ok(asr_store_job_submit(f->s, &in, &id2, &created));
    assert_false(created);
    assert_int_equal(id1, id2);
    asr_store_job_t j;
    assert_ok(asr_store_job_get(f->s, id1, &j));
    assert_int_equal(j.state, ASR_STORE_JOB_QUEUED);
    assert_string_equal(j.model, "base");
    assert_string_equal(j.language, "de");
    assert_string_equal(j.options_json, "{\"beam_size\":5}");
    assert_string_equal(j.webhook_url, "http://hook.local/done");
    assert_int_equal(j.max_attempts, 3);
    assert_int_equal(j.attempts, 0);
    assert_null(j.result_json);
    asr_store_job_clear(&j);
    in.recording_id = 9999;
    assert_err(asr_store_job_submit(f->s, &in, &id2, &created), ASR_ERR_NOT_FOUND, "recording_id:");
    in.recording_id = rec;
    in.webhook_url = "file:///etc/passwd";
    assert_err(asr_store_job_submit(f->s, &in, &id2, &created), ASR_ERR_INVALID, "webhook_url:");
}

static void test_job_lifecycle(void **state) {
    fx_t *f = *state;
    int64_t rec = mkrec(f->s, "r");
    int64_t id = mkjob(f->s, rec, 3);
    asr_store_lease_t l;
    asr_store_job_t j;
    assert_ok(asr_store_job_claim(f->s, "node-a/w1", 30000, &l, &j));
    assert_int_equal(l.job_id, id);
    assert_int_equal(l.attempt, 1);
    assert_int_equal(j.state, ASR_STORE_JOB_RUNNING);
    assert_string_equal(j.lease_owner, "node-a/w1");
    assert_true(j.started_at > 0 && j.lease_expires_at > j.started_at);
    asr_store_job_clear(&j);
    assert_err(asr_store_job_claim(f->s, "node-a/w2", 30000, &l, NULL), ASR_ERR_NOT_FOUND,
               "no job");
    asr_store_lease_t l2 = l;
    assert_ok(asr_store_job_renew(f->s, &l, 60000, 0.25));
    assert_true(l.expires_at > l2.expires_at);
    assert_ok(asr_store_job_renew(f->s, &l, 60000, -1));
    assert_ok(asr_store_job_get(f->s, id, &j));
    assert_true(j.progress > 0.24 && j.progress < 0.26);
    asr_store_job_clear(&j);
    int64_t counts[ASR_STORE_JOB_N_STATES];
    assert_ok(asr_store_job_counts(f->s, counts));
    assert_int_equal(counts[ASR_STORE_JOB_RUNNING], 1);

    assert_ok(asr_store_job_complete(f->s, &l, "{\"text\":\"hello\"}", "local", "tiny.en",
                                     "transcribed"));
    assert_ok(asr_store_job_get(f->s, id, &j));
    assert_int_equal(j.state, ASR_STORE_JOB_DONE);
    assert_string_equal(j.result_json, "{\"text\":\"hello\"}");
    assert_string_equal(j.backend, "local");
    assert_string_equal(j.model_used, "tiny.en");
    assert_true(j.progress > 0.99 && j.finished_at > 0);
    asr_store_job_clear(&j);
    asr_store_recording_t r;
    assert_ok(asr_store_recording_get(f->s, rec, &r));
    assert_string_equal(r.status, "transcribed");
    asr_store_recording_clear(&r);
    /* written once: a second complete (a retried commit) is refused and changes nothing */
    assert_err(asr_store_job_complete(f->s, &l, "{\"text\":\"other\"}", "x", "y", NULL),
               ASR_ERR_BUSY, "lease lost");
    assert_err(asr_store_job_renew(f->s, &l, 1000, 0.5), ASR_ERR_BUSY, "lease lost");
    assert_ok(asr_store_job_get(f->s, id, &j));
    assert_string_equal(j.result_json, "{\"text\":\"hello\"}");
    asr_store_job_clear(&j);
    /* a finished recording can get a new job */
    mkjob(f->s, rec, 3);
    asr_store_job_t *v;
    size_t n;
    assert_ok(asr_store_job_list(f->s, rec, -1, 0, 10, &v, &n));
    assert_int_equal(n, 2);
    assert_null(v[1].result_json); /* lists leave results out */
    asr_store_jobs_free(v, n);
    assert_ok(asr_store_job_list(f->s, 0, ASR_STORE_JOB_DONE, 0, 10, &v, &n));
    assert_int_equal(n, 1);
    assert_int_equal(v[0].id, id);
    asr_store_jobs_free(v, n);
}

static void test_job_fail_backoff_retry(void **state) {
    fx_t *f = *state;
    int64_t rec = mkrec(f->s, "r");
    int64_t id = mkjob(f->s, rec, 2);
    asr_store_lease_t l;
    bool again;
    assert_ok(asr_store_job_claim(f->s, "w", 30000, &l, NULL));
    assert_ok(asr_store_job_fail(f->s, &l, "backend down", true, 1000, "failed", &again));
    assert_true(again);
    asr_store_job_t j;
    assert_ok(asr_store_job_get(f->s, id, &j));
    assert_int_equal(j.state, ASR_STORE_JOB_QUEUED);
    assert_string_equal(j.last_error, "backend down");
    int64_t now;
    assert_ok(asr_store_now_ms(f->s, &now));
    assert_true(j.not_before > now + 100);
    asr_store_job_clear(&j);
    assert_err(asr_store_job_claim(f->s, "w", 30000, &l, NULL), ASR_ERR_NOT_FOUND, "no job");
    assert_ok(claim_when_due(f->s, "w", 30000, &l, &j));
    assert_ok(asr_store_now_ms(f->s, &now));
    assert_true(now >= j.not_before); /* claimed only once the retry delay had passed */
    asr_store_job_clear(&j);
    assert_int_equal(l.attempt, 2);
    assert_ok(asr_store_job_fail(f->s, &l, "backend down again", true, 10, "failed", &again));
    assert_false(again); /* attempts used up */
    assert_ok(asr_store_job_get(f->s, id, &j));
    assert_int_equal(j.state, ASR_STORE_JOB_FAILED);
    assert_true(j.finished_at > 0);
    asr_store_job_clear(&j);
    asr_store_recording_t r;
    assert_ok(asr_store_recording_get(f->s, rec, &r));
    assert_string_equal(r.status, "failed");
    asr_store_recording_clear(&r);

    assert_ok(asr_store_job_retry(f->s, id));
    assert_ok(asr_store_job_get(f->s, id, &j));
    assert_int_equal(j.state, ASR_STORE_JOB_QUEUED);
    assert_int_equal(j.attempts, 0);
    asr_store_job_clear(&j);
    assert_err(asr_store_job_retry(f->s, id), ASR_ERR_INVALID, "state:");
    assert_ok(asr_store_job_claim(f->s, "w", 30000, &l, NULL));
    assert_ok(asr_store_job_fail(f->s, &l, "not audio", false, 0, NULL, &again));
    assert_false(again); /* not retryable: at once */
    assert_int_equal(asr_store_backoff_ms(1, 1000, 60000), 1000);
    assert_int_equal(asr_store_backoff_ms(3, 1000, 60000), 4000);
    assert_int_equal(asr_store_backoff_ms(40, 1000, 60000), 60000);
}

static void test_job_cancel(void **state) {
    fx_t *f = *state;
    int64_t r1 = mkrec(f->s, "r1"), r2 = mkrec(f->s, "r2");
    int64_t a = mkjob(f->s, r1, 3);
    assert_ok(asr_store_job_cancel(f->s, a));
    assert_err(asr_store_job_cancel(f->s, a), ASR_ERR_INVALID, "state: job");
    assert_err(asr_store_job_cancel(f->s, 9999), ASR_ERR_NOT_FOUND, "id:");
    int64_t b = mkjob(f->s, r2, 3);
    asr_store_lease_t l;
    assert_ok(asr_store_job_claim(f->s, "w", 30000, &l, NULL));
    assert_int_equal(l.job_id, b); /* the cancelled one is not claimable */
    assert_ok(asr_store_job_cancel(f->s, b));
    assert_err(asr_store_job_renew(f->s, &l, 1000, 0.5), ASR_ERR_CANCELLED, "cancelled");
    assert_err(asr_store_job_complete(f->s, &l, "{}", "x", "y", NULL), ASR_ERR_CANCELLED,
               "cancelled");
    assert_ok(asr_store_job_retry(f->s, a)); /* a cancelled job can be retried */
    /* but not while another job of the same recording is active */
    assert_ok(asr_store_job_cancel(f->s, a));
    mkjob(f->s, r1, 3);
    assert_err(asr_store_job_retry(f->s, a), ASR_ERR_INVALID, "state:");
}

static void test_job_lease_expiry(void **state) {
    fx_t *f = *state;
    asr_store_t *other;
    assert_ok(open_fx(f, &other));
    int64_t rec = mkrec(f->s, "r");
    int64_t id = mkjob(f->s, rec, 3);
    asr_store_lease_t la, lb;
    /* a 1-s lease: a margin that holds on a loaded 2-core machine for the claim just after */
    assert_ok(asr_store_job_claim(f->s, "node-a", 1000, &la, NULL));
    assert_err(asr_store_job_claim(other, "node-b", 1000, &lb, NULL), ASR_ERR_NOT_FOUND, "no job");
    /* node-a "crashed": node-b gets the job once the lease has expired, not before */
    asr_store_job_t j;
    assert_ok(claim_when_due(other, "node-b", 30000, &lb, &j));
    int64_t now;
    assert_ok(asr_store_now_ms(f->s, &now));
    assert_true(now >= la.expires_at);
    assert_int_equal(lb.job_id, id);
    assert_int_equal(lb.attempt, 2);
    assert_string_equal(j.lease_owner, "node-b");
    asr_store_job_clear(&j);
    /* node-a comes back: every write with its stale lease is refused */
    assert_err(asr_store_job_renew(f->s, &la, 1000, 0.9), ASR_ERR_BUSY, "lease lost");
    assert_err(asr_store_job_complete(f->s, &la, "{\"by\":\"a\"}", "a", "a", NULL), ASR_ERR_BUSY,
               "lease lost");
    bool again;
    assert_err(asr_store_job_fail(f->s, &la, "x", true, 0, NULL, &again), ASR_ERR_BUSY,
               "lease lost");
    assert_ok(asr_store_job_complete(other, &lb, "{\"by\":\"b\"}", "b", "b", NULL));
    assert_ok(asr_store_job_get(f->s, id, &j));
    assert_string_equal(j.result_json, "{\"by\":\"b\"}");
    assert_int_equal(j.attempts, 2);
    asr_store_job_clear(&j);

    /* a job whose lease expires on its last attempt is failed, not claimed forever */
    int64_t rec2 = mkrec(f->s, "r2");
    int64_t id2 = mkjob(f->s, rec2, 1);
    assert_ok(asr_store_job_claim(f->s, "node-a", 50, &la, NULL));
    assert_int_equal(la.job_id, id2);
    wait_job_state(other, "node-b", id2, ASR_STORE_JOB_FAILED);
    assert_ok(asr_store_job_get(f->s, id2, &j));
    assert_int_equal(j.state, ASR_STORE_JOB_FAILED);
    assert_non_null(strstr(j.last_error, "lease expired"));
    asr_store_job_clear(&j);
    asr_store_close(other);
}

#define N_JOBS 50
#define N_THREADS 4

typedef struct {
    fx_t *f;
    asr_store_t *shared; /* NULL: open an own handle */
    int idx;
    int64_t first_id;
    int *claims; /* per job, incremented under g_claims_mu */
    int n_claimed;
    int n_busy;
    asr_err_t err;
    char msg[256];
} claimer_t;

static pthread_mutex_t g_claims_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_barrier_t g_start; /* all handles open before anyone claims */

static void *claimer(void *arg) {
    claimer_t *c = arg;
    asr_store_t *s = c->shared;
    if (!s)
        c->err = open_fx(c->f, &s);
    pthread_barrier_wait(&g_start);
    if (c->err != ASR_OK)
        return NULL;
    char owner[32];
    snprintf(owner, sizeof owner, "worker-%d", c->idx);
    for (;;) {
        asr_store_lease_t l;
        asr_err_t e = asr_store_job_claim(s, owner, 60000, &l, NULL);
        if (e == ASR_ERR_NOT_FOUND)
            break;
        if (e == ASR_ERR_BUSY) {
            c->n_busy++;
            continue;
        }
        if (e == ASR_OK) {
            pthread_mutex_lock(&g_claims_mu);
            c->claims[l.job_id - c->first_id]++;
            pthread_mutex_unlock(&g_claims_mu);
            c->n_claimed++;
            sleep_ms(2); /* "work", outside any transaction: lets the others in */
            char res[64];
            snprintf(res, sizeof res, "{\"worker\":%d}", c->idx);
            e = asr_store_job_complete(s, &l, res, "local", "tiny.en", NULL);
        }
        if (e != ASR_OK) {
            c->err = e;
            snprintf(c->msg, sizeof c->msg, "%s", asr_store_errmsg(s));
            break;
        }
    }
    if (!c->shared)
        asr_store_close(s);
    return NULL;
}

/* 4 threads claim and complete 50 jobs, on 4 handles or sharing one (its mutex serialises). */
static void claim_race(fx_t *f, bool shared) {
    int64_t first = 0, last = 0;
    for (int i = 0; i < N_JOBS; i++) {
        char name[16];
        snprintf(name, sizeof name, "r%d", i);
        int64_t id = mkjob(f->s, mkrec(f->s, name), 3);
        if (i == 0)
            first = id;
        last = id;
    }
    assert_int_equal(last - first, N_JOBS - 1);
    int claims[N_JOBS] = {0};
    claimer_t c[N_THREADS];
    pthread_t th[N_THREADS];
    double t0 = asr_now_s();
    pthread_barrier_init(&g_start, NULL, N_THREADS);
    for (int i = 0; i < N_THREADS; i++) {
        c[i] = (claimer_t){
            .f = f, .shared = shared ? f->s : NULL, .idx = i, .first_id = first, .claims = claims};
        pthread_create(&th[i], NULL, claimer, &c[i]);
    }
    int total = 0;
    for (int i = 0; i < N_THREADS; i++) {
        pthread_join(th[i], NULL);
        if (c[i].err != ASR_OK)
            fail_msg("worker %d: %d %s", i, c[i].err, c[i].msg);
        total += c[i].n_claimed;
    }
    pthread_barrier_destroy(&g_start);
    print_message(
        "  %s: %d jobs claimed+completed by %d threads on %s in %.2f s (per worker: %d %d %d "
        "%d; busy retries %d)\n",
        g_pg ? "postgres" : "sqlite", total, N_THREADS,
        shared ? "one shared handle" : "own handles", asr_now_s() - t0, c[0].n_claimed,
        c[1].n_claimed, c[2].n_claimed, c[3].n_claimed,
        c[0].n_busy + c[1].n_busy + c[2].n_busy + c[3].n_busy);
    assert_int_equal(total, N_JOBS);
    for (int i = 0; i < N_JOBS; i++)
        if (claims[i] != 1)
            fail_msg("job %lld claimed %d times", (long long)(first + i), claims[i]);
    int64_t counts[ASR_STORE_JOB_N_STATES];
    assert_ok(asr_store_job_counts(f->s, counts));
    assert_int_equal(counts[ASR_STORE_JOB_DONE], N_JOBS);
}

static void test_job_claim_concurrency(void **state) { claim_race(*state, false); }
static void test_job_claim_shared_handle(void **state) { claim_race(*state, true); }

static void test_nodes(void **state) {
    fx_t *f = *state;
    assert_ok(asr_store_node_heartbeat(f->s, "node-a", 2, "{\"gpu\":false}"));
    assert_ok(asr_store_node_heartbeat(f->s, "node-b", 1, NULL));
    sleep_ms(5);
    assert_ok(asr_store_node_heartbeat(f->s, "node-a", 4, "{\"gpu\":true}"));
    asr_store_node_t *v;
    size_t n;
    assert_ok(asr_store_node_list(f->s, &v, &n));
    assert_int_equal(n, 2);
    assert_string_equal(v[0].id, "node-a"); /* most recent heartbeat first */
    assert_int_equal(v[0].capacity, 4);
    assert_string_equal(v[0].info_json, "{\"gpu\":true}");
    assert_null(v[1].info_json);
    int64_t now;
    assert_ok(asr_store_now_ms(f->s, &now));
    assert_true(v[0].heartbeat_at <= now && v[0].heartbeat_at > now - 60000);
    asr_store_nodes_free(v, n);
    assert_err(asr_store_node_heartbeat(f->s, "", 1, NULL), ASR_ERR_INVALID, "id:");
}

static void test_open_errors(void **state) {
    (void)state;
    char err[512];
    asr_store_t *s = NULL;
    assert_int_equal(asr_store_open(NULL, NULL, &s, err, sizeof err), ASR_ERR_INVALID);
    assert_int_equal(asr_store_open("/nonexistent-dir/x/asrd.db", NULL, &s, err, sizeof err),
                     ASR_ERR_DB);
    assert_null(s);
    assert_int_equal(asr_store_open("postgres://nobody@127.0.0.1:1/none?connect_timeout=2", NULL,
                                    &s, err, sizeof err),
                     ASR_ERR_DB);
    assert_non_null(strstr(err, "cannot connect to PostgreSQL"));
    setenv("ASRD_SECRET_KEY", "short", 1);
    assert_int_equal(asr_store_open(":memory:", NULL, &s, err, sizeof err), ASR_ERR_INVALID);
    assert_non_null(strstr(err, "ASRD_SECRET_KEY"));
    setenv("ASRD_SECRET_KEY", "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
           1);
    assert_int_equal(asr_store_open(":memory:", NULL, &s, err, sizeof err), ASR_OK);
    unsetenv("ASRD_SECRET_KEY");
    asr_store_close(s);
}

static const struct CMUnitTest k_tests[] = {
    cmocka_unit_test_setup_teardown(test_migrate_fresh_reopen, setup, teardown),
    cmocka_unit_test_setup_teardown(test_migrate_upgrade_and_newer, setup, teardown),
    cmocka_unit_test_setup_teardown(test_config_crud, setup, teardown),
    cmocka_unit_test_setup_teardown(test_config_validation, setup, teardown),
    cmocka_unit_test_setup_teardown(test_config_model_names, setup, teardown),
    cmocka_unit_test_setup_teardown(test_config_duplicate_and_metachars, setup, teardown),
    cmocka_unit_test_setup_teardown(test_config_one_default, setup, teardown),
    cmocka_unit_test_setup_teardown(test_configs_version, setup, teardown),
    cmocka_unit_test_setup_teardown(test_config_api_key, setup, teardown),
    cmocka_unit_test_setup_teardown(test_secret_passphrase_kdf, setup, teardown),
    cmocka_unit_test_setup_teardown(test_health_history, setup, teardown),
    cmocka_unit_test_setup_teardown(test_recordings, setup, teardown),
    cmocka_unit_test_setup_teardown(test_recording_search, setup, teardown),
    cmocka_unit_test_setup_teardown(test_rename_and_segment_edits, setup, teardown),
    cmocka_unit_test_setup_teardown(test_search_backfill, setup, teardown),
    cmocka_unit_test_setup_teardown(test_job_submit_idempotent, setup, teardown),
    cmocka_unit_test_setup_teardown(test_job_model_not_served, setup, teardown),
    cmocka_unit_test_setup_teardown(test_job_lifecycle, setup, teardown),
    cmocka_unit_test_setup_teardown(test_job_fail_backoff_retry, setup, teardown),
    cmocka_unit_test_setup_teardown(test_job_cancel, setup, teardown),
    cmocka_unit_test_setup_teardown(test_job_lease_expiry, setup, teardown),
    cmocka_unit_test_setup_teardown(test_job_claim_concurrency, setup, teardown),
    cmocka_unit_test_setup_teardown(test_job_claim_shared_handle, setup, teardown),
    cmocka_unit_test_setup_teardown(test_nodes, setup, teardown),
};

static const struct CMUnitTest k_plain_tests[] = {
    cmocka_unit_test(test_sql_rewrite),
    cmocka_unit_test(test_open_errors),
};

int main(void) {
    unsetenv("ASRD_SECRET_KEY");
    asr_log_set_level(ASR_LOG_WARN);
    const char *want = getenv("ASRD_TEST_STORE_BACKENDS");
    g_pg_url = getenv("ASRD_TEST_PG_URL");
    if (g_pg_url && !*g_pg_url)
        g_pg_url = NULL;
    bool run_sqlite = !want || strstr(want, "sqlite");
    bool run_pg = want ? strstr(want, "pg") != NULL : g_pg_url != NULL;
    if (run_pg && !g_pg_url) {
        fprintf(stderr, "test_store: ASRD_TEST_PG_URL is not set; skipping PostgreSQL\n");
        if (!run_sqlite)
            return 77;
        run_pg = false;
    }
    int failed = 0;
    if (run_sqlite) {
        g_pg = false;
        failed += cmocka_run_group_tests_name("store_plain", k_plain_tests, NULL, NULL);
        failed += cmocka_run_group_tests_name("store_sqlite", k_tests, NULL, NULL);
    }
    if (run_pg) {
        g_admin = PQconnectdb(g_pg_url);
        if (PQstatus(g_admin) != CONNECTION_OK) {
            fprintf(stderr, "test_store: cannot connect to %s: %s", g_pg_url,
                    PQerrorMessage(g_admin));
            PQfinish(g_admin);
            return failed ? 1 : 77;
        }
        PQclear(PQexec(g_admin, "SET client_min_messages = warning"));
        g_pg = true;
        failed += cmocka_run_group_tests_name("store_postgres", k_tests, NULL, NULL);
        PQfinish(g_admin);
    }
    return failed ? 1 : 0;
}
