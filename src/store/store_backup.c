/* store backup: a consistent copy of a live SQLite database through SQLite's online backup API,
 * and the retention queries (recordings older than a cutoff).
 *
 * The backup opens its own connection to the database file (never creating it), and copies every
 * page in one backup step: the step holds a read transaction, so the copy is one snapshot, and in
 * WAL mode the server's writers go on meanwhile (readers never block the writer). The copy is
 * written to a new file and fsync'd; the caller renames it into place. */
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/core.h"
#include "store/store_int.h"

#define BACKUP_BUSY_MS 30000

static int fsync_file(const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* Fills info from the copy: schema version and row counts. */
static void copy_info(sqlite3 *db, asr_store_backup_info_t *info) {
    static const char *q[] = {
        "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
        "SELECT COUNT(*) FROM recordings",
        "SELECT COUNT(*) FROM jobs",
        "SELECT COUNT(*) FROM asr_configs",
    };
    int64_t *out[] = {NULL, &info->n_recordings, &info->n_jobs, &info->n_configs};
    for (int i = 0; i < 4; i++) {
        sqlite3_stmt *st = NULL;
        int64_t v = -1;
        if (sqlite3_prepare_v2(db, q[i], -1, &st, NULL) == SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW)
            v = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        if (i == 0)
            info->schema_version = (int)v;
        else
            *out[i] = v;
    }
    int64_t n = info->n_recordings > 0 ? info->n_recordings : 0, k = 0;
    info->paths = asr_xcalloc((size_t)n + 1, sizeof *info->paths);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "SELECT path FROM recordings ORDER BY id", -1, &st, NULL) ==
        SQLITE_OK)
        while (k < n && sqlite3_step(st) == SQLITE_ROW) {
            const unsigned char *t = sqlite3_column_text(st, 0);
            info->paths[k++] = asr_xstrdup(t ? (const char *)t : "");
        }
    sqlite3_finalize(st);
    info->n_recordings = k;
}

void asr_store_backup_info_clear(asr_store_backup_info_t *info) {
    if (!info)
        return;
    for (int64_t i = 0; info->paths && i < info->n_recordings; i++)
        free(info->paths[i]);
    free(info->paths);
    info->paths = NULL;
}

asr_err_t asr_store_sqlite_backup(const char *src_path, const char *dst_path,
                                  asr_store_backup_info_t *info, char *err, size_t errlen) {
    memset(info, 0, sizeof *info);
    sqlite3 *src = NULL, *dst = NULL;
    asr_err_t e = ASR_ERR_DB;
    if (access(src_path, R_OK) != 0) {
        asr_errf(err, errlen, "cannot read database %s", src_path);
        return ASR_ERR_NOT_FOUND;
    }
    /* read-write without CREATE: a WAL database's readers need its -shm; nothing is written */
    int rc = sqlite3_open_v2(src_path, &src, SQLITE_OPEN_READWRITE, NULL);
    if (rc != SQLITE_OK) {
        asr_errf(err, errlen, "cannot open database %s: %s", src_path,
                 src ? sqlite3_errmsg(src) : sqlite3_errstr(rc));
        goto done;
    }
    sqlite3_busy_timeout(src, BACKUP_BUSY_MS);
    rc = sqlite3_open_v2(dst_path, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc != SQLITE_OK) {
        asr_errf(err, errlen, "cannot create %s: %s", dst_path,
                 dst ? sqlite3_errmsg(dst) : sqlite3_errstr(rc));
        goto done;
    }
    sqlite3_backup *b = sqlite3_backup_init(dst, "main", src, "main");
    if (!b) {
        asr_errf(err, errlen, "backup of %s: %s", src_path, sqlite3_errmsg(dst));
        goto done;
    }
    /* all pages in one step: one read transaction, so one snapshot; BUSY/LOCKED are retried
     * (a checkpoint or a writer holding a lock for a moment) up to the deadline */
    double deadline = asr_now_s() + BACKUP_BUSY_MS / 1000.0;
    do {
        rc = sqlite3_backup_step(b, -1);
        if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
            sqlite3_sleep(50);
    } while ((rc == SQLITE_BUSY || rc == SQLITE_LOCKED) && asr_now_s() < deadline);
    sqlite3_backup_finish(b);
    if (rc != SQLITE_DONE) {
        asr_errf(err, errlen, "backup of %s: %s", src_path, sqlite3_errstr(rc));
        goto done;
    }
    copy_info(dst, info);
    if (info->schema_version <= 0) {
        asr_errf(err, errlen, "%s is not an asrd database (no schema_migrations)", src_path);
        e = ASR_ERR_INVALID;
        goto done;
    }
    e = ASR_OK;
done:
    sqlite3_close_v2(src);
    if (dst && sqlite3_close(dst) != SQLITE_OK && e == ASR_OK) {
        asr_errf(err, errlen, "cannot close %s", dst_path);
        e = ASR_ERR_IO;
    }
    if (e == ASR_OK && fsync_file(dst_path) != 0) {
        asr_errf(err, errlen, "cannot fsync %s", dst_path);
        e = ASR_ERR_IO;
    }
    return e;
}

/* ---- retention ---- */

asr_err_t asr_store_recordings_older(asr_store_t *s, int64_t before_ms, bool with_audio_only,
                                     int limit, asr_store_recording_t **out, size_t *n) {
    *out = NULL;
    *n = 0;
    asr__param_t p[2] = {PI64(before_ms), PI64(limit > 0 ? limit : 100)};
    asr__rows_t r;
    LOCK(s);
    asr_err_t e = asr__store_exec(
        s,
        with_audio_only
            ? "SELECT id, name, path, size_bytes, created_at FROM recordings WHERE created_at < ? "
              "AND path <> '' ORDER BY created_at, id LIMIT ?"
            : "SELECT id, name, path, size_bytes, created_at FROM recordings WHERE created_at < ? "
              "ORDER BY created_at, id LIMIT ?",
        p, 2, &r);
    UNLOCK(s);
    if (e != ASR_OK)
        return e;
    asr_store_recording_t *v = asr_xcalloc(r.n_rows + 1, sizeof *v);
    for (size_t i = 0; i < r.n_rows; i++) {
        v[i].id = asr__store_cell_i64(&r, i, 0);
        v[i].name = asr__store_cell_dup(&r, i, 1);
        v[i].path = asr__store_cell_dup(&r, i, 2);
        v[i].size_bytes = asr__store_cell_i64(&r, i, 3);
        v[i].duration_s = -1;
        v[i].created_at = asr__store_cell_i64(&r, i, 4);
    }
    *n = r.n_rows;
    *out = v;
    asr__store_rows_free(&r);
    return ASR_OK;
}

asr_err_t asr_store_recording_drop_audio(asr_store_t *s, int64_t id) {
    asr__param_t p[1] = {PI64(id)};
    asr__rows_t r;
    LOCK(s);
    asr_err_t e = asr__store_exec(
        s, "UPDATE recordings SET path = '', size_bytes = 0 WHERE id = ? AND path <> ''", p, 1, &r);
    UNLOCK(s);
    if (e != ASR_OK)
        return e;
    bool found = r.changes > 0;
    asr__store_rows_free(&r);
    return found ? ASR_OK : asr__store_fail(ASR_ERR_NOT_FOUND, "id: no recording with audio");
}
