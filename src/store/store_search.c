/* store: transcript search. Each recording's transcript text (the "text" of its newest done
 * job's result) is kept in recording_texts, written in the transaction that completes the job and
 * deleted with the recording (ON DELETE CASCADE), so search never sees a text the transcript
 * route would not serve.
 *
 * The index is per dialect. SQLite: an FTS5 table with the trigram tokenizer (it finds any
 * substring of 3 or more characters, Chinese included, without word segmentation), kept equal to
 * recording_texts by triggers. PostgreSQL: a GIN index with pg_trgm's operator class, which
 * ILIKE uses; when the extension cannot be created (not installed, no privilege) the table has no
 * index and ILIKE scans it: the same answers, only slower.
 *
 * A query of fewer than 3 characters has no trigram: SQLite answers it with LIKE over
 * recording_texts instead of MATCH. Matching is case-insensitive (ASCII on SQLite). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "store/store_int.h"

static const char k_sqlite_fts[] =
    "CREATE VIRTUAL TABLE recording_texts_fts USING fts5(body, tokenize = 'trigram');"
    "CREATE TRIGGER recording_texts_ai AFTER INSERT ON recording_texts BEGIN"
    " INSERT INTO recording_texts_fts (rowid, body) VALUES (new.recording_id, new.body); END;"
    "CREATE TRIGGER recording_texts_ad AFTER DELETE ON recording_texts BEGIN"
    " DELETE FROM recording_texts_fts WHERE rowid = old.recording_id; END;"
    "CREATE TRIGGER recording_texts_au AFTER UPDATE ON recording_texts BEGIN"
    " DELETE FROM recording_texts_fts WHERE rowid = old.recording_id;"
    " INSERT INTO recording_texts_fts (rowid, body) VALUES (new.recording_id, new.body); END;";

static const char k_pg_trgm[] =
    "CREATE EXTENSION IF NOT EXISTS pg_trgm;"
    "CREATE INDEX recording_texts_trgm ON recording_texts USING gin (body gin_trgm_ops);";

/* Without pg_trgm the migration still succeeds: the savepoint undoes the failed attempt only. */
static asr_err_t pg_index(asr_store_t *s) {
    asr_err_t e = asr__store_exec(s, "SAVEPOINT asr_trgm", NULL, 0, NULL);
    if (e != ASR_OK)
        return e;
    if (s->ops->exec_script(s, k_pg_trgm) == ASR_OK)
        return asr__store_exec(s, "RELEASE SAVEPOINT asr_trgm", NULL, 0, NULL);
    ASR_LOG(ASR_LOG_WARN,
            "msg=search_no_trgm_index reason=\"%s\" effect=\"search scans the texts\"",
            asr_store_errmsg(s));
    return asr__store_exec(s, "ROLLBACK TO SAVEPOINT asr_trgm", NULL, 0, NULL);
}

/* The transcripts stored before this version: each recording's newest done job. */
static asr_err_t backfill(asr_store_t *s) {
    asr__rows_t r = {0};
    asr_err_t e = asr__store_exec(s,
                                  "SELECT j.id, j.result_json FROM jobs j WHERE j.state = 'done'"
                                  " AND j.id = (SELECT MAX(id) FROM jobs WHERE recording_id ="
                                  " j.recording_id AND state = 'done')",
                                  NULL, 0, &r);
    for (size_t i = 0; e == ASR_OK && i < r.n_rows; i++)
        e = asr__store_search_index(s, asr__store_cell_i64(&r, i, 0), asr__store_cell(&r, i, 1));
    asr__store_rows_free(&r);
    return e;
}

asr_err_t asr__store_search_migrate(asr_store_t *s) {
    asr_err_t e =
        s->dialect == ASR__STORE_SQLITE ? s->ops->exec_script(s, k_sqlite_fts) : pg_index(s);
    return e == ASR_OK ? backfill(s) : e;
}

asr_err_t asr__store_search_index(asr_store_t *s, int64_t job_id, const char *result_json) {
    json_t *root = result_json ? json_loads(result_json, 0, NULL) : NULL;
    const char *text = json_string_value(json_object_get(root, "text"));
    asr__param_t p[2] = {PTEXT(text ? text : ""), PI64(job_id)};
    asr_err_t e = asr__store_exec(
        s,
        "INSERT INTO recording_texts (recording_id, job_id, body) SELECT recording_id, id, ? FROM "
        "jobs WHERE id = ? ON CONFLICT (recording_id) DO UPDATE SET job_id = excluded.job_id, body "
        "= excluded.body WHERE excluded.job_id >= recording_texts.job_id",
        p, 2, NULL);
    json_decref(root);
    return e;
}

/* %q% with LIKE's wildcards in q escaped by '\'. */
static char *like_pattern(const char *q) {
    asr_buf_t b;
    asr_buf_init(&b);
    asr_buf_puts(&b, "%");
    for (const char *p = q; *p; p++) {
        if (*p == '%' || *p == '_' || *p == '\\')
            asr_buf_puts(&b, "\\");
        asr_buf_append(&b, p, 1);
    }
    asr_buf_puts(&b, "%");
    return b.data;
}

/* An FTS5 phrase: "q" with its double quotes doubled. */
static char *fts_phrase(const char *q) {
    asr_buf_t b;
    asr_buf_init(&b);
    asr_buf_puts(&b, "\"");
    for (const char *p = q; *p; p++)
        asr_buf_puts(&b, *p == '"' ? "\"\"" : (char[2]){*p, 0});
    asr_buf_puts(&b, "\"");
    return b.data;
}

static size_t utf8_chars(const char *q) {
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)q; *p; p++)
        n += (*p & 0xC0) != 0x80;
    return n;
}

asr_err_t asr__store_search_prepare(const asr_store_t *s, const char *q, asr__store_search_t *out) {
    const char *why;
    memset(out, 0, sizeof *out);
    if (!q || !*q)
        return asr__store_fail(ASR_ERR_INVALID, "q: must not be empty");
    if (strlen(q) > ASR_STORE_SEARCH_MAX)
        return asr__store_fail(ASR_ERR_INVALID, "q: longer than %d bytes", ASR_STORE_SEARCH_MAX);
    if ((why = asr__store_check_text(q)))
        return asr__store_fail(ASR_ERR_INVALID, "q: %s", why);
    out->name_arg = like_pattern(q);
    if (s->dialect == ASR__STORE_PG) {
        out->sql = "(name ILIKE ? ESCAPE '\\' OR id IN (SELECT recording_id FROM recording_texts "
                   "WHERE body ILIKE ? ESCAPE '\\'))";
        out->text_arg = like_pattern(q);
    } else if (utf8_chars(q) < 3) { /* no trigram to look up */
        out->sql = "(name LIKE ? ESCAPE '\\' OR id IN (SELECT recording_id FROM recording_texts "
                   "WHERE body LIKE ? ESCAPE '\\'))";
        out->text_arg = like_pattern(q);
    } else {
        out->sql = "(name LIKE ? ESCAPE '\\' OR id IN (SELECT rowid FROM recording_texts_fts "
                   "WHERE recording_texts_fts MATCH ?))";
        out->text_arg = fts_phrase(q);
    }
    return ASR_OK;
}

void asr__store_search_clear(asr__store_search_t *q) {
    free(q->name_arg);
    free(q->text_arg);
    memset(q, 0, sizeof *q);
}
