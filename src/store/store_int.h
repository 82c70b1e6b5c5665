/* store internals: the backend vtable, typed statement parameters, text result rows, the SQL
 * dialect rewrite, transactions, migrations and the secret key. Nothing outside src/store and its
 * tests includes this.
 *
 * Statements are written once, in a common SQL with `?` placeholders and a few {TOKENS} that
 * asr__store_sql() rewrites per dialect ($n placeholders for PostgreSQL; {NOW}, {FOR_UPDATE},
 * {SKIP_LOCKED}, {ID} …). Results come back as text cells (NULL for SQL NULL) which the typed
 * functions parse. Callers hold s->mu around every statement and transaction. */
#ifndef ASR_STORE_INT_H
#define ASR_STORE_INT_H

#include <pthread.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include "store/store.h"

/* Passphrase keys: PBKDF2-HMAC-SHA256 iterations (OWASP's 2023 figure), salt size, cache size. */
#define ASR__STORE_KDF_ITER 600000
#define ASR__STORE_SALT_LEN 16
#define ASR__STORE_KDF_CACHE 8

typedef enum { ASR__STORE_SQLITE = 0, ASR__STORE_PG = 1 } asr__store_dialect_t;

typedef enum { ASR__P_NULL, ASR__P_INT, ASR__P_REAL, ASR__P_TEXT } asr__ptype_t;

typedef struct {
    asr__ptype_t t;
    int64_t i;
    double d;
    const char *s;
} asr__param_t;

#define PI64(x) ((asr__param_t){.t = ASR__P_INT, .i = (int64_t)(x)})
#define PREAL(x) ((asr__param_t){.t = ASR__P_REAL, .d = (double)(x)})
/* NULL string → SQL NULL */
#define PTEXT(x) ((asr__param_t){.t = (x) ? ASR__P_TEXT : ASR__P_NULL, .s = (x)})
#define PNULL ((asr__param_t){.t = ASR__P_NULL})

/* Rows of text cells; cells[r * n_cols + c], NULL for SQL NULL. */
typedef struct {
    size_t n_rows;
    int n_cols;
    char **cells;
    int64_t changes; /* rows changed by INSERT/UPDATE/DELETE */
} asr__rows_t;

/* Why a statement failed, beyond asr_err_t (for constraint-to-field mapping). */
typedef enum {
    ASR__FAIL_OTHER = 0,
    ASR__FAIL_UNIQUE,
    ASR__FAIL_FOREIGN_KEY,
    ASR__FAIL_CHECK
} asr__fail_t;

typedef struct {
    /* Runs one statement (already rewritten for the dialect). rows may be NULL. */
    asr_err_t (*exec)(asr_store_t *s, const char *sql, const asr__param_t *p, int n_p,
                      asr__rows_t *rows);
    /* Runs several statements without parameters (migrations). */
    asr_err_t (*exec_script)(asr_store_t *s, const char *sql);
    void (*close)(asr_store_t *s);
} asr__store_ops_t;

struct asr_store {
    asr__store_dialect_t dialect;
    const asr__store_ops_t *ops;
    void *conn; /* sqlite3 * or PGconn * */
    pthread_mutex_t mu;
    bool in_txn;
    asr__fail_t last_fail; /* set by exec on failure */
    bool have_key;
    unsigned char key[32]; /* AES-256-GCM key for api_key (raw-key mode) */
    /* passphrase mode (ASRD_SECRET_KEY is not 64 hex digits); see store_secret.c */
    char *passphrase;             /* NULL in raw-key mode; wiped at close */
    unsigned char legacy_key[32]; /* SHA-256(passphrase): reads values written the old way */
    pthread_mutex_t key_mu;       /* guards the cache and the write salt */
    struct {
        unsigned char salt[ASR__STORE_SALT_LEN];
        unsigned char key[32];
    } kdf[ASR__STORE_KDF_CACHE]; /* derived keys, most recent first */
    int n_kdf;
    bool have_write_salt;
    unsigned char write_salt[ASR__STORE_SALT_LEN];
};

/* One migration: SQL run in one transaction (tokens rewritten per dialect), then `after` (may be
 * NULL) in the same transaction, for what one SQL text cannot say (per-dialect DDL, backfills). */
typedef struct {
    int version;
    const char *name;
    const char *sql;
    asr_err_t (*after)(asr_store_t *s);
} asr__store_migration_t;

extern const asr__store_migration_t asr__store_migrations[];
extern const int asr__store_n_migrations;

/* Opens like asr_store_open with an explicit migration list (tests use it to simulate upgrades).
 */
asr_err_t asr__store_open_ex(const char *url_or_path, const char *data_dir,
                             const asr__store_migration_t *migs, int n_migs, asr_store_t **out,
                             char *err, size_t errlen);

/* Backends: fill s->conn and s->ops, or write err. */
asr_err_t asr__store_sqlite_open(asr_store_t *s, const char *path, char *err, size_t errlen);
asr_err_t asr__store_pg_open(asr_store_t *s, const char *url, char *err, size_t errlen);

/* Rewrites common SQL for the dialect; returns a malloc'd string (aborts on OOM). */
char *asr__store_sql(asr__store_dialect_t d, const char *sql);

/* Rewrites and runs one statement; rows may be NULL (then results are dropped). */
asr_err_t asr__store_exec(asr_store_t *s, const char *sql, const asr__param_t *p, int n_p,
                          asr__rows_t *rows);
void asr__store_rows_free(asr__rows_t *r);
const char *asr__store_cell(const asr__rows_t *r, size_t row, int col);
int64_t asr__store_cell_i64(const asr__rows_t *r, size_t row, int col);
double asr__store_cell_real(const asr__rows_t *r, size_t row, int col, double if_null);
char *asr__store_cell_dup(const asr__rows_t *r, size_t row, int col);

/* Rows to structs (store_rows.c): a table of fields in SELECT order maps a row onto a struct.
 * A NULL number takes if_null; a NULL string stays NULL; SKIP leaves the field to the caller. */
typedef enum {
    ASR__F_SKIP,
    ASR__F_STR,  /* char * (malloc'd) */
    ASR__F_I64,  /* int64_t */
    ASR__F_INT,  /* int */
    ASR__F_BOOL, /* bool (cell != 0) */
    ASR__F_REAL, /* double */
    ASR__F_FN    /* parse(cell, &field): the cell (may be NULL) parsed by the table's function */
} asr__ftype_t;

typedef struct {
    asr__ftype_t t;
    size_t off;
    double if_null;
    void (*parse)(const char *cell, void *field); /* ASR__F_FN only */
} asr__field_t;

#define ASR__FIELD(type, kind, member)                                                             \
    { ASR__F_##kind, offsetof(type, member), 0, NULL }
#define ASR__FIELD_OR(type, kind, member, if_null)                                                 \
    { ASR__F_##kind, offsetof(type, member), if_null, NULL }
#define ASR__FIELD_FN(type, member, fn)                                                            \
    { ASR__F_FN, offsetof(type, member), 0, fn }
#define ASR__N_FIELDS(tab) ((int)(sizeof(tab) / sizeof((tab)[0])))

void asr__store_map_row(const asr__field_t *f, int n_f, const asr__rows_t *r, size_t row,
                        void *obj);
/* Runs a query expected to return one row (caller holds the lock) and maps it onto obj (zeroed
 * first). ASR_ERR_NOT_FOUND with not_found as the message when there is no row. */
asr_err_t asr__store_get_row(asr_store_t *s, const char *sql, const asr__param_t *p, int n_p,
                             const asr__field_t *f, int n_f, void *obj, size_t size,
                             const char *not_found);
/* Runs a query (takes the lock) and returns its rows as a calloc'd array of structs in *out
 * (NULL when none) and their count in *n. */
asr_err_t asr__store_list(asr_store_t *s, const char *sql, const asr__param_t *p, int n_p,
                          const asr__field_t *f, int n_f, size_t size, void *out, size_t *n);
/* All rows as a calloc'd array of structs of `size` bytes (NULL when there are none). */
void *asr__store_map_rows(const asr__field_t *f, int n_f, const asr__rows_t *r, size_t size);
/* Frees the struct's strings and zeroes it (NULL-safe). */
void asr__store_map_clear(const asr__field_t *f, int n_f, void *obj, size_t size);
/* asr__store_map_clear on each of n structs, then free(v). */
void asr__store_map_free(const asr__field_t *f, int n_f, void *v, size_t n, size_t size);
/* Defines a struct's public clear(one) and free_all(array, n) from its field table. */
#define ASR__STORE_FREE_FNS(type, tab, clear, free_all)                                            \
    void clear(type *o) { asr__store_map_clear(tab, ASR__N_FIELDS(tab), o, sizeof *o); }           \
    void free_all(type *v, size_t n) {                                                             \
        asr__store_map_free(tab, ASR__N_FIELDS(tab), v, n, sizeof *v);                             \
    }

/* Transactions. write=true takes the write lock up front (SQLite BEGIN IMMEDIATE). lock_table,
 * when non-NULL, serialises writers of that table on PostgreSQL (LOCK TABLE … SHARE ROW
 * EXCLUSIVE); SQLite's IMMEDIATE already does. */
asr_err_t asr__store_begin(asr_store_t *s, bool write, const char *lock_table);
asr_err_t asr__store_commit(asr_store_t *s);
void asr__store_rollback(asr_store_t *s);
/* Runs body(s, ctx) in one write transaction under the lock (lock_table as asr__store_begin):
 * commits when it returns ASR_OK, rolls back otherwise, and returns its (or the commit's) error.
 * The body runs statements only: it never begins, commits or takes the lock. */
asr_err_t asr__store_write(asr_store_t *s, const char *lock_table,
                           asr_err_t (*body)(asr_store_t *s, void *ctx), void *ctx);

#define LOCK(s) pthread_mutex_lock(&(s)->mu)
#define UNLOCK(s) pthread_mutex_unlock(&(s)->mu)

/* NULL when u is an absolute http(s) URL with a host; else the reason (static string). */
const char *asr__store_check_url(const char *u);
/* NULL when s is valid UTF-8 without control characters; else the reason (static string). */
const char *asr__store_check_text(const char *s);

/* Sets the calling thread's error message; returns err. */
asr_err_t asr__store_fail(asr_err_t err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Transcript search (store_search.c). Version 3's `after`: the dialect's text index (SQLite: an
 * FTS5 trigram table kept in step with recording_texts by triggers; PostgreSQL: a pg_trgm GIN
 * index when the extension can be created, else none, ILIKE still answers) and the texts of the
 * transcripts already stored. */
asr_err_t asr__store_search_migrate(asr_store_t *s);
/* Indexes the text of job `job_id`'s result (JSON with "text") as its recording's transcript
 * text, unless a newer job of the recording is indexed already. Caller in a transaction. */
asr_err_t asr__store_search_index(asr_store_t *s, int64_t job_id, const char *result_json);
/* The condition "the recording's name or transcript text contains q", for a WHERE clause over
 * recordings, with its two parameters (heap strings). */
typedef struct {
    const char *sql;
    char *name_arg, *text_arg;
} asr__store_search_t;
asr_err_t asr__store_search_prepare(const asr_store_t *s, const char *q, asr__store_search_t *out);
void asr__store_search_clear(asr__store_search_t *q);

/* Runs pending migrations; fails if the database is newer than the list. */
asr_err_t asr__store_migrate(asr_store_t *s, const asr__store_migration_t *migs, int n_migs,
                             char *err, size_t errlen);

/* Secret key: from ASRD_SECRET_KEY or <data_dir>/secret.key (created 0600). Without either,
 * s->have_key stays false and storing an api key fails. */
asr_err_t asr__store_key_load(asr_store_t *s, const char *data_dir, char *err, size_t errlen);
/* Wipes the key material (asr_store_close). */
void asr__store_key_clear(asr_store_t *s);
/* "v1:" (raw key) or "v2:" (passphrase, with its PBKDF2 salt) + base64(…). *out malloc'd.
 * Thread-safe; a passphrase's first use of a salt costs one key derivation. */
asr_err_t asr__store_encrypt(asr_store_t *s, const char *plain, char **out);
/* Reads both forms; under a passphrase a "v1:" value is taken as the old single-SHA-256 key's. */
asr_err_t asr__store_decrypt(asr_store_t *s, const char *enc, char **out);
/* Set once a value of the old derivation was read (it is logged once per process). */
extern atomic_bool asr__store_legacy_logged;
/* Under a passphrase, re-encrypts the api keys still in the old form (called at open). */
asr_err_t asr__store_secret_upgrade(asr_store_t *s);

#endif
