/* jobs: retention. Recordings older than retention_days are deleted by the keeper thread (at
 * start, then every retention interval): the row with its jobs and transcripts, then the audio
 * file; or, with keep_transcripts, only the audio (the row's path becomes "", its transcripts
 * stay). Ages are measured on the database's clock (created_at is written by it), so nodes
 * sharing PostgreSQL agree; deleting a row another node deleted first is not an error. Each
 * deletion is logged (msg=retention_deleted). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/core.h"
#include "jobs/jobs.h"
#include "store/store.h"

#define BATCH 100
#define DAY_MS (24LL * 3600 * 1000)

static void log_quoted(char *out, size_t len, const char *s) {
    size_t k = 0;
    for (; s && *s && k + 1 < len; s++)
        out[k++] = (*s == '"' || (unsigned char)*s < 0x20) ? '?' : *s;
    out[k] = 0;
}

asr_err_t asr_jobs_retention_run(struct asr_store *s, const char *recordings_dir, int days,
                                 bool keep_transcripts, int *n_deleted, int64_t *bytes_freed) {
    *n_deleted = 0;
    *bytes_freed = 0;
    if (days <= 0)
        return ASR_OK;
    int64_t now = 0;
    asr_err_t e = asr_store_now_ms(s, &now);
    if (e != ASR_OK)
        return e;
    int64_t before = now - (int64_t)days * DAY_MS;
    for (;;) {
        asr_store_recording_t *v = NULL;
        size_t n = 0;
        e = asr_store_recordings_older(s, before, keep_transcripts, BATCH, &v, &n);
        if (e != ASR_OK)
            return e;
        int done_here = 0;
        for (size_t i = 0; i < n; i++) {
            asr_err_t d = keep_transcripts ? asr_store_recording_drop_audio(s, v[i].id)
                                           : asr_store_recording_delete(s, v[i].id);
            if (d == ASR_ERR_NOT_FOUND)
                continue; /* another node (or a user) was first */
            if (d != ASR_OK) {
                e = d;
                break;
            }
            bool file_gone = true;
            if (v[i].path && v[i].path[0]) {
                char *path = asr_jobs_recording_path(recordings_dir, v[i].path);
                file_gone = unlink(path) == 0 || errno == ENOENT;
                free(path);
            }
            char name[160];
            log_quoted(name, sizeof name, v[i].name);
            ASR_LOG(ASR_LOG_INFO,
                    "msg=retention_deleted recording=%lld name=\"%s\" what=%s bytes=%lld "
                    "age_days=%.1f days=%d file_removed=%s",
                    (long long)v[i].id, name, keep_transcripts ? "audio" : "recording",
                    (long long)v[i].size_bytes, (double)(now - v[i].created_at) / DAY_MS, days,
                    file_gone ? "true" : "false");
            (*n_deleted)++;
            *bytes_freed += v[i].size_bytes;
            done_here++;
        }
        asr_store_recordings_free(v, n);
        if (e != ASR_OK || n < BATCH || done_here == 0)
            return e;
    }
}
