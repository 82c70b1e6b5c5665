/* store, SQLite backend: one sqlite3 connection per handle, WAL journal (readers never block the
 * writer), a busy timeout so that handles in other threads or processes wait for the write lock
 * instead of failing, and foreign keys on (recording → jobs, config → health cascade).
 * Durability: synchronous=FULL, so a committed job result survives power loss, not just kill -9. */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "store/store_int.h"

#define BUSY_TIMEOUT_MS 10000

static asr_err_t map_error(asr_store_t *s, int rc) {
    sqlite3 *db = s->conn;
    int ext = sqlite3_extended_errcode(db);
    const char *msg = sqlite3_errmsg(db);
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return asr__store_fail(ASR_ERR_BUSY, "database is locked: %s", msg);
    case SQLITE_CONSTRAINT:
        if (ext == SQLITE_CONSTRAINT_UNIQUE || ext == SQLITE_CONSTRAINT_PRIMARYKEY)
            s->last_fail = ASR__FAIL_UNIQUE;
        else if (ext == SQLITE_CONSTRAINT_FOREIGNKEY)
            s->last_fail = ASR__FAIL_FOREIGN_KEY;
        else if (ext == SQLITE_CONSTRAINT_CHECK)
            s->last_fail = ASR__FAIL_CHECK;
        return asr__store_fail(ASR_ERR_DB, "%s", msg);
    case SQLITE_NOMEM:
        return asr__store_fail(ASR_ERR_NOMEM, "sqlite: %s", msg);
    default:
        return asr__store_fail(ASR_ERR_DB, "sqlite: %s", msg);
    }
}

static int bind_all(sqlite3_stmt *st, const asr__param_t *p, int n_p) {
    for (int i = 0; i < n_p; i++) {
        int rc;
        switch (p[i].t) {
        case ASR__P_INT:
            rc = sqlite3_bind_int64(st, i + 1, p[i].i);
            break;
        case ASR__P_REAL:
            rc = sqlite3_bind_double(st, i + 1, p[i].d);
            break;
        case ASR__P_TEXT:
            rc = sqlite3_bind_text(st, i + 1, p[i].s, -1, SQLITE_STATIC);
            break;
        default:
            rc = sqlite3_bind_null(st, i + 1);
            break;
        }
        if (rc != SQLITE_OK)
            return rc;
    }
    return SQLITE_OK;
}

static void add_row(sqlite3_stmt *st, asr__rows_t *rows, size_t *cap) {
    size_t nc = (size_t)rows->n_cols;
    if (rows->n_rows == *cap) {
        *cap = *cap ? *cap * 2 : 8;
        rows->cells = asr_xrealloc(rows->cells, *cap * nc * sizeof(char *) + 1);
    }
    for (size_t c = 0; c < nc; c++) {
        const unsigned char *v = sqlite3_column_text(st, (int)c);
        rows->cells[rows->n_rows * nc + c] = v ? asr_xstrdup((const char *)v) : NULL;
    }
    rows->n_rows++;
}

static asr_err_t sq_exec(asr_store_t *s, const char *sql, const asr__param_t *p, int n_p,
                         asr__rows_t *rows) {
    sqlite3 *db = s->conn;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return map_error(s, rc);
    if ((rc = bind_all(st, p, n_p)) != SQLITE_OK) {
        asr_err_t e = map_error(s, rc);
        sqlite3_finalize(st);
        return e;
    }
    size_t cap = 0;
    if (rows)
        rows->n_cols = sqlite3_column_count(st);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (rows && rows->n_cols > 0)
            add_row(st, rows, &cap);
    }
    if (rc != SQLITE_DONE) {
        asr_err_t e = map_error(s, rc);
        sqlite3_finalize(st);
        return e;
    }
    if (rows)
        rows->changes = sqlite3_changes64(db);
    sqlite3_finalize(st);
    return ASR_OK;
}

static asr_err_t sq_exec_script(asr_store_t *s, const char *sql) {
    char *msg = NULL;
    int rc = sqlite3_exec(s->conn, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        asr_err_t e = asr__store_fail((rc & 0xff) == SQLITE_BUSY ? ASR_ERR_BUSY : ASR_ERR_DB,
                                      "sqlite: %s", msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        return e;
    }
    return ASR_OK;
}

static void sq_close(asr_store_t *s) {
    sqlite3_close_v2(s->conn);
    s->conn = NULL;
}

static const asr__store_ops_t k_sqlite_ops = {sq_exec, sq_exec_script, sq_close};

asr_err_t asr__store_sqlite_open(asr_store_t *s, const char *path, char *err, size_t errlen) {
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc != SQLITE_OK) {
        asr_errf(err, errlen, "cannot open database %s: %s", path,
                 db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close_v2(db);
        return ASR_ERR_DB;
    }
    s->conn = db;
    s->ops = &k_sqlite_ops;
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, BUSY_TIMEOUT_MS);
    asr__rows_t r;
    asr_err_t e = asr__store_exec(s, "PRAGMA journal_mode=WAL", NULL, 0, &r);
    if (e == ASR_OK) {
        const char *mode = asr__store_cell(&r, 0, 0);
        /* ":memory:" databases report "memory"; anything else is a file we want in WAL */
        if (!mode || (strcmp(mode, "wal") != 0 && strcmp(mode, "memory") != 0))
            e = asr__store_fail(ASR_ERR_DB, "journal_mode is %s, not wal", mode ? mode : "?");
        asr__store_rows_free(&r);
    }
    if (e == ASR_OK)
        e = sq_exec_script(s, "PRAGMA foreign_keys=ON; PRAGMA synchronous=FULL;");
    if (e != ASR_OK) {
        asr_errf(err, errlen, "cannot open database %s: %s", path, asr_store_errmsg(s));
        return e;
    }
    return ASR_OK;
}
