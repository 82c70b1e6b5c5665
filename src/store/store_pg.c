/* store, PostgreSQL backend: one libpq connection per handle, statements sent with PQexecParams
 * (parameters out of band, typed int8/float8/text), text results. A connection that broke is
 * reset before the next statement outside a transaction; a statement is never re-sent, since it
 * may have been applied. Server notices go to the DEBUG log, not to stderr. */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "store/store_int.h"

#define OID_INT8 20
#define OID_TEXT 25
#define OID_FLOAT8 701
#define MAX_PARAMS 32

static void notice_cb(void *arg, const char *message) {
    (void)arg;
    ASR_LOG(ASR_LOG_DEBUG, "msg=postgres_notice text=\"%s\"", message);
}

/* libpq messages end with a newline; keep one line. */
static void one_line(char *dst, size_t n, const char *src) {
    snprintf(dst, n, "%s", src ? src : "");
    for (char *p = dst; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = (p[1] ? ' ' : '\0');
}

static asr_err_t result_error(asr_store_t *s, PGresult *res) {
    PGconn *c = s->conn;
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *prim = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    char msg[400];
    one_line(msg, sizeof msg, prim ? prim : PQerrorMessage(c));
    if (PQstatus(c) != CONNECTION_OK)
        return asr__store_fail(ASR_ERR_DB, "postgres: connection lost: %s", msg);
    if (!state)
        return asr__store_fail(ASR_ERR_DB, "postgres: %s", msg);
    if (strcmp(state, "23505") == 0)
        s->last_fail = ASR__FAIL_UNIQUE;
    else if (strcmp(state, "23503") == 0)
        s->last_fail = ASR__FAIL_FOREIGN_KEY;
    else if (strcmp(state, "23514") == 0)
        s->last_fail = ASR__FAIL_CHECK;
    /* serialization failure, deadlock, lock not available: the caller may retry */
    if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0 || strcmp(state, "55P03") == 0)
        return asr__store_fail(ASR_ERR_BUSY, "postgres: %s", msg);
    return asr__store_fail(ASR_ERR_DB, "postgres: %s (%s)", msg, state);
}

static asr_err_t ensure_conn(asr_store_t *s) {
    PGconn *c = s->conn;
    if (PQstatus(c) == CONNECTION_OK)
        return ASR_OK;
    if (s->in_txn)
        return asr__store_fail(ASR_ERR_DB, "postgres: connection lost inside a transaction");
    PQreset(c);
    if (PQstatus(c) != CONNECTION_OK) {
        char msg[400];
        one_line(msg, sizeof msg, PQerrorMessage(c));
        return asr__store_fail(ASR_ERR_DB, "postgres: cannot reconnect: %s", msg);
    }
    ASR_LOG(ASR_LOG_WARN, "msg=postgres_reconnected");
    return ASR_OK;
}

static void copy_rows(PGresult *res, asr__rows_t *rows) {
    int nr = PQntuples(res), nc = PQnfields(res);
    rows->n_cols = nc;
    rows->n_rows = (size_t)nr;
    rows->cells = asr_xcalloc((size_t)nr * (size_t)nc + 1, sizeof(char *));
    for (int r = 0; r < nr; r++)
        for (int c = 0; c < nc; c++)
            if (!PQgetisnull(res, r, c))
                rows->cells[(size_t)r * (size_t)nc + (size_t)c] =
                    asr_xstrdup(PQgetvalue(res, r, c));
    const char *ct = PQcmdTuples(res);
    rows->changes = (ct && *ct) ? strtoll(ct, NULL, 10) : 0;
}

/* Takes a statement's result: its rows (when asked) or the error; clears it. */
static asr_err_t take_result(asr_store_t *s, PGresult *res, asr__rows_t *rows) {
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    asr_err_t e = ASR_OK;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        e = result_error(s, res);
    else if (rows)
        copy_rows(res, rows);
    PQclear(res);
    return e;
}

static asr_err_t pg_exec(asr_store_t *s, const char *sql, const asr__param_t *p, int n_p,
                         asr__rows_t *rows) {
    ASR_ASSERT(n_p <= MAX_PARAMS);
    asr_err_t e = ensure_conn(s);
    if (e != ASR_OK)
        return e;
    unsigned int types[MAX_PARAMS];
    const char *vals[MAX_PARAMS];
    char nums[MAX_PARAMS][32];
    for (int i = 0; i < n_p; i++) {
        switch (p[i].t) {
        case ASR__P_INT:
            types[i] = OID_INT8;
            snprintf(nums[i], sizeof nums[i], "%lld", (long long)p[i].i);
            vals[i] = nums[i];
            break;
        case ASR__P_REAL:
            types[i] = OID_FLOAT8;
            snprintf(nums[i], sizeof nums[i], "%.17g", p[i].d);
            vals[i] = nums[i];
            break;
        case ASR__P_TEXT:
            types[i] = OID_TEXT;
            vals[i] = p[i].s;
            break;
        default:
            types[i] = 0; /* inferred from context */
            vals[i] = NULL;
            break;
        }
    }
    return take_result(s, PQexecParams(s->conn, sql, n_p, types, vals, NULL, NULL, 0), rows);
}

static asr_err_t pg_exec_script(asr_store_t *s, const char *sql) {
    asr_err_t e = ensure_conn(s);
    return e == ASR_OK ? take_result(s, PQexec(s->conn, sql), NULL) : e;
}

static void pg_close(asr_store_t *s) {
    PQfinish(s->conn);
    s->conn = NULL;
}

static const asr__store_ops_t k_pg_ops = {pg_exec, pg_exec_script, pg_close};

asr_err_t asr__store_pg_open(asr_store_t *s, const char *url, char *err, size_t errlen) {
    PGconn *c = PQconnectdb(url);
    if (!c) {
        asr_errf(err, errlen, "cannot connect to PostgreSQL: out of memory");
        return ASR_ERR_NOMEM;
    }
    if (PQstatus(c) != CONNECTION_OK) {
        char msg[400];
        one_line(msg, sizeof msg, PQerrorMessage(c));
        asr_errf(err, errlen, "cannot connect to PostgreSQL: %s", msg);
        PQfinish(c);
        return ASR_ERR_DB;
    }
    PQsetNoticeProcessor(c, notice_cb, NULL);
    s->conn = c;
    s->ops = &k_pg_ops;
    return ASR_OK;
}
