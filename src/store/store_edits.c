/* store: what a team changes on a recording after the fact: its name, and corrected texts of its
 * transcript's segments.
 *
 * An edit lives in segment_edits beside the transcript it corrects, keyed by (job_id, segment):
 * the job's stored result is never rewritten, so clearing an edit gives the original back, and a
 * new transcription (a new job) starts from its own text, while the old job's edits stay with it.
 * Rows go with their job (ON DELETE CASCADE), and so with their recording. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "store/store_int.h"

#define EF(kind, member) ASR__FIELD(asr_store_segment_edit_t, kind, member)
static const asr__field_t k_edit[] = {EF(I64, job_id), EF(INT, segment), EF(STR, text),
                                      EF(I64, updated_at)};
#undef EF

ASR__STORE_FREE_FNS(asr_store_segment_edit_t, k_edit, asr_store_segment_edit_clear,
                    asr_store_segment_edits_free)

/* NULL when `v` is 1..max bytes of text; else the reason (static string). */
static const char *check(const char *v, size_t max, bool empty_ok) {
    if (!v || (!*v && !empty_ok))
        return "must not be empty";
    if (strlen(v) > max)
        return "too long";
    return asr__store_check_text(v);
}

asr_err_t asr_store_recording_rename(asr_store_t *s, int64_t id, const char *name) {
    const char *why = check(name, ASR_STORE_RECORDING_NAME_MAX, false);
    if (why)
        return asr__store_fail(ASR_ERR_INVALID, "name: %s", why);
    asr__param_t p[2] = {PTEXT(name), PI64(id)};
    asr__rows_t r = {0};
    LOCK(s);
    asr_err_t e = asr__store_exec(s, "UPDATE recordings SET name = ? WHERE id = ?", p, 2, &r);
    UNLOCK(s);
    if (e == ASR_OK && r.changes == 0)
        e = asr__store_fail(ASR_ERR_NOT_FOUND, "id: no such recording");
    asr__store_rows_free(&r);
    return e;
}

asr_err_t asr_store_segment_edit_set(asr_store_t *s, int64_t job_id, int segment,
                                     const char *text) {
    const char *why;
    if (segment < 0)
        return asr__store_fail(ASR_ERR_INVALID, "segment: must not be negative");
    if (text && (why = check(text, ASR_STORE_EDIT_MAX, true)))
        return asr__store_fail(ASR_ERR_INVALID, "text: %s", why);
    asr__param_t p[3] = {PI64(job_id), PI64(segment), PTEXT(text)};
    asr__rows_t r = {0};
    LOCK(s);
    asr_err_t e = asr__store_exec(s, "SELECT id FROM jobs WHERE id = ?", p, 1, &r);
    if (e == ASR_OK && r.n_rows == 0)
        e = asr__store_fail(ASR_ERR_NOT_FOUND, "job_id: no such job");
    asr__store_rows_free(&r);
    if (e == ASR_OK && text)
        e = asr__store_exec(s,
                            "INSERT INTO segment_edits (job_id, segment, body, updated_at) VALUES "
                            "(?, ?, ?, {NOW}) ON CONFLICT (job_id, segment) DO UPDATE SET body = "
                            "excluded.body, updated_at = excluded.updated_at",
                            p, 3, NULL);
    else if (e == ASR_OK)
        e = asr__store_exec(s, "DELETE FROM segment_edits WHERE job_id = ? AND segment = ?", p, 2,
                            NULL);
    UNLOCK(s);
    return e;
}

asr_err_t asr_store_search_reindex(asr_store_t *s, int64_t job_id, const char *doc_json) {
    LOCK(s);
    asr_err_t e = asr__store_search_index(s, job_id, doc_json);
    UNLOCK(s);
    return e;
}

asr_err_t asr_store_segment_edits_list(asr_store_t *s, int64_t job_id,
                                       asr_store_segment_edit_t **out, size_t *n) {
    asr__param_t p = PI64(job_id);
    return asr__store_list(s,
                           "SELECT job_id, segment, body, updated_at FROM segment_edits WHERE "
                           "job_id = ? ORDER BY segment",
                           &p, 1, k_edit, ASR__N_FIELDS(k_edit), sizeof **out, out, n);
}
