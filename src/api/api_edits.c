/* api: corrections of a recording's transcript and batch export (docs/API.md, "Recordings and
 * jobs"): GET/PATCH/DELETE /api/recordings/{id}/edits and POST /api/recordings/export.
 *
 * A correction is kept beside the transcript it corrects (the store's segment_edits, keyed by the
 * transcript's job and segment index); the job's stored result is never rewritten. Every rendering
 * of a recording's transcript (GET …/transcript in any format, the export archive) goes through
 * asr__api_transcript_doc, so what is downloaded is what the editor shows; after each change the
 * recording's searchable text is that document's text, so search finds the corrected words. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_int.h"
#include "format/format.h"

#define EXPORT_MAX_IDS 500

asr_err_t asr__api_transcript_doc(asr_api_t *api, int64_t rec_id, bool original,
                                  asr_store_job_t *job, char **doc) {
    asr_store_job_t *v = NULL;
    size_t n = 0;
    *doc = NULL;
    memset(job, 0, sizeof *job);
    asr_err_t e = asr_store_job_list(api->store, rec_id, ASR_STORE_JOB_DONE, 0, 1, &v, &n);
    if (e == ASR_OK && n == 0)
        e = ASR_ERR_NOT_FOUND;
    if (e == ASR_OK)
        e = asr_store_job_get(api->store, v[0].id, job);
    asr_store_jobs_free(v, n);
    if (e == ASR_OK && !job->result_json)
        e = ASR_ERR_NOT_FOUND;
    asr_store_segment_edit_t *ed = NULL;
    size_t n_ed = 0;
    if (e == ASR_OK && !original)
        e = asr_store_segment_edits_list(api->store, job->id, &ed, &n_ed);
    if (e == ASR_OK && n_ed == 0)
        *doc = asr_xstrdup(job->result_json);
    else if (e == ASR_OK) {
        asr_format_edit_t *fe = asr_xcalloc(n_ed, sizeof *fe);
        for (size_t i = 0; i < n_ed; i++)
            fe[i] = (asr_format_edit_t){ed[i].segment, ed[i].text};
        e = asr_format_apply_edits(job->result_json, fe, (int)n_ed, doc);
        free(fe);
        if (e == ASR_ERR_INVALID)
            e = ASR_ERR_NOT_FOUND; /* a result that is no document: nothing to serve */
    }
    asr_store_segment_edits_free(ed, n_ed);
    return e;
}

/* The recording's transcript document as served (edits applied) and its job; answers and returns
 * false when there is no such recording (404 id) or no finished transcript yet (404
 * transcript_not_ready). */
static bool load_doc(asr_http_req_t *req, asr_api_t *api, int64_t *rec_id, asr_store_job_t *job,
                     json_t **doc) {
    asr_store_recording_t r;
    asr_err_t e;
    if (!asr__api_path_id(req, 404, rec_id))
        return false;
    if ((e = asr_store_recording_get(api->store, *rec_id, &r)) != ASR_OK) {
        asr__api_store_error(req, api, e, "id");
        return false;
    }
    asr_store_recording_clear(&r);
    char *text = NULL;
    e = asr__api_transcript_doc(api, *rec_id, false, job, &text);
    *doc = e == ASR_OK ? json_loads(text, 0, NULL) : NULL;
    free(text);
    if (e == ASR_OK && *doc)
        return true;
    asr_store_job_clear(job);
    if (e == ASR_OK || e == ASR_ERR_NOT_FOUND)
        asr_http_respond_error(req, 404, "id", "transcript_not_ready",
                               "recording %lld has no finished transcription yet",
                               (long long)*rec_id);
    else
        asr__api_store_error(req, api, e, NULL);
    return false;
}

/* One segment's edit state as the API shows it. */
static json_t *edit_json(int64_t job_id, int idx, json_t *seg) {
    json_t *o = json_object();
    bool edited = json_is_true(json_object_get(seg, "edited"));
    json_t *orig = json_object_get(seg, edited ? "original_text" : "text");
    orig = json_is_string(orig) ? orig : NULL;
    json_object_set_new(o, "object", json_string("segment_edit"));
    json_object_set_new(o, "job_id", json_integer(job_id));
    json_object_set_new(o, "segment", json_integer(idx));
    const char *text = json_string_value(json_object_get(seg, "text"));
    json_object_set_new(o, "text", json_string(text ? text : ""));
    json_object_set_new(o, "original_text", json_string(orig ? json_string_value(orig) : ""));
    json_object_set_new(o, "edited", json_boolean(edited));
    return o;
}

static bool blank(int c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* a and b equal but for leading and trailing blanks */
static bool same_trimmed(const char *a, const char *b) {
    while (blank(*a))
        a++;
    while (blank(*b))
        b++;
    size_t na = strlen(a), nb = strlen(b);
    while (na && blank(a[na - 1]))
        na--;
    while (nb && blank(b[nb - 1]))
        nb--;
    return na == nb && !memcmp(a, b, na);
}

/* GET /api/recordings/{id}/edits: the edited segments of the recording's transcript. */
void asr__api_recording_edits(asr_http_req_t *req, void *ud) {
    asr_api_t *api = ud;
    int64_t rec_id;
    asr_store_job_t job;
    json_t *doc;
    if (!load_doc(req, api, &rec_id, &job, &doc))
        return;
    json_t *data = json_array();
    size_t i;
    json_t *seg;
    json_array_foreach(json_object_get(doc, "segments"), i, seg) {
        if (json_is_true(json_object_get(seg, "edited")))
            json_array_append_new(data, edit_json(job.id, (int)i, seg));
    }
    json_t *root = json_object();
    json_object_set_new(root, "object", json_string("list"));
    json_object_set_new(root, "recording_id", json_integer(rec_id));
    json_object_set_new(root, "job_id", json_integer(job.id));
    json_object_set_new(root, "data", data);
    json_decref(doc);
    asr_store_job_clear(&job);
    asr__api_respond_json(req, 200, root);
}

/* PATCH {"segment": N, "text": "…" | null, "job_id"?: J} and DELETE ?segment=N: save or clear one
 * segment's correction. A text equal to the original (blanks aside) clears it. */
static void edit_segment(asr_http_req_t *req, asr_api_t *api, bool clear) {
    int64_t rec_id;
    asr_store_job_t job;
    json_t *doc, *body = NULL;
    if (!load_doc(req, api, &rec_id, &job, &doc))
        return;
    json_t *segs = json_object_get(doc, "segments");
    long idx = -1;
    const char *text = NULL;
    if (clear) {
        if (!asr__api_query_int(req, "segment", -1, 0, 1L << 30, &idx))
            goto done;
    } else {
        size_t len;
        const char *raw = asr_http_req_body(req, &len);
        json_error_t je;
        body = json_loadb(raw, len, 0, &je);
        if (!json_is_object(body)) {
            asr_http_respond_error(req, 400, NULL, "invalid_json",
                                   "the body must be a JSON object: %s", je.text);
            goto done;
        }
        json_t *s = json_object_get(body, "segment"), *t = json_object_get(body, "text");
        json_t *j = json_object_get(body, "job_id");
        idx = json_is_integer(s) ? (long)json_integer_value(s) : -2;
        if (t && !json_is_null(t) && !json_is_string(t)) {
            asr_http_respond_error(req, 400, "text", "invalid_value",
                                   "text must be a string, or null to clear the edit");
            goto done;
        }
        if (j && !json_is_null(j) && json_integer_value(j) != job.id) {
            asr_http_respond_error(req, 409, "job_id", "invalid_state",
                                   "the transcript changed: job %lld is the newest finished one",
                                   (long long)job.id);
            goto done;
        }
        text = json_string_value(t);
    }
    if (idx < 0 || (size_t)idx >= json_array_size(segs)) {
        asr_http_respond_error(req, 400, "segment", "invalid_value",
                               "segment must be an integer from 0 to %zu (the transcript's "
                               "segments)",
                               json_array_size(segs) ? json_array_size(segs) - 1 : 0);
        goto done;
    }
    json_t *seg = json_array_get(segs, (size_t)idx);
    bool was = json_is_true(json_object_get(seg, "edited"));
    const char *orig = json_string_value(json_object_get(seg, was ? "original_text" : "text"));
    if (text && same_trimmed(text, orig ? orig : ""))
        text = NULL;
    asr_err_t e = asr_store_segment_edit_set(api->store, job.id, (int)idx, text);
    if (e != ASR_OK) {
        asr__api_store_error(req, api, e, NULL);
        goto done;
    }
    json_decref(doc);
    asr_store_job_clear(&job);
    char *fresh = NULL;
    e = asr__api_transcript_doc(api, rec_id, false, &job, &fresh);
    /* search finds what the transcript says now */
    if (e == ASR_OK && asr_store_search_reindex(api->store, job.id, fresh) != ASR_OK)
        ASR_LOG(ASR_LOG_WARN, "msg=search_reindex_failed req=%s recording=%lld err=\"%s\"",
                asr_http_req_id(req), (long long)rec_id, asr_store_errmsg(api->store));
    doc = e == ASR_OK ? json_loads(fresh, 0, NULL) : NULL;
    free(fresh);
    if (!doc) {
        asr__api_store_error(req, api, e == ASR_OK ? ASR_ERR_DB : e, NULL);
        goto done;
    }
    asr_http_log_field(req, "recording=%lld segment=%ld edited=%d", (long long)rec_id, idx,
                       text != NULL);
    asr__api_respond_json(
        req, 200,
        edit_json(job.id, (int)idx, json_array_get(json_object_get(doc, "segments"), idx)));
done:
    json_decref(body);
    json_decref(doc);
    asr_store_job_clear(&job);
}

void asr__api_recording_edit_save(asr_http_req_t *req, void *ud) { edit_segment(req, ud, false); }
void asr__api_recording_edit_delete(asr_http_req_t *req, void *ud) { edit_segment(req, ud, true); }

/* ---- POST /api/recordings/export ---- */

/* A member name from a recording's name: its extension dropped, characters that mean something
 * to file systems replaced, at most 120 bytes (cut on a UTF-8 boundary), then ".fmt". */
static void member_name(const char *name, const char *fmt, char *out, size_t len) {
    char stem[128];
    size_t n = 0;
    const char *dot = strrchr(name, '.');
    size_t end = dot && dot != name ? (size_t)(dot - name) : strlen(name);
    for (size_t i = 0; i < end && n < 120; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c < 0x20 || c == 0x7f || strchr("/\\:*?\"<>|", c) || (n == 0 && c == '.'))
            c = '_';
        stem[n++] = (char)c;
    }
    while (n > 0 && ((unsigned char)stem[n - 1] & 0xC0) == 0x80) /* a cut sequence */
        n--;
    if (n > 0 && ((unsigned char)stem[n - 1] & 0xC0) == 0xC0)
        n--;
    stem[n] = 0;
    snprintf(out, len, "%s.%s", n ? stem : "recording", fmt);
}

static bool parse_export(asr_http_req_t *req, json_t **body, int *fmt, const char **fmt_name) {
    size_t len;
    const char *raw = asr_http_req_body(req, &len);
    json_error_t je;
    *body = json_loadb(raw, len, 0, &je);
    if (!json_is_object(*body)) {
        asr_http_respond_error(req, 400, NULL, "invalid_json", "the body must be a JSON object: %s",
                               je.text);
        return false;
    }
    json_t *ids = json_object_get(*body, "ids");
    bool ok =
        json_is_array(ids) && json_array_size(ids) >= 1 && json_array_size(ids) <= EXPORT_MAX_IDS;
    size_t i;
    json_t *v;
    json_array_foreach(ids, i, v) ok = ok && json_is_integer(v) && json_integer_value(v) > 0;
    if (!ok) {
        asr_http_respond_error(req, 400, "ids", "invalid_value",
                               "ids must be an array of 1 to %d recording ids", EXPORT_MAX_IDS);
        return false;
    }
    const char *f = json_string_value(json_object_get(*body, "format"));
    *fmt_name = f ? f : "txt";
    *fmt = asr_format_parse(*fmt_name);
    if (*fmt < 0 || *fmt == ASR_FMT_VERBOSE_JSON || !strcmp(*fmt_name, "text")) {
        asr_http_respond_error(req, 400, "format", "invalid_value",
                               "format must be txt, json, srt or vtt, not '%.40s'", *fmt_name);
        return false;
    }
    return true;
}

/* Adds recording `id`'s transcript to the archive; *skipped when it has none yet. */
static asr_err_t export_one(asr_api_t *api, int64_t id, int fmt, const char *fmt_name,
                            asr_format_zip_t *z, json_t *names, bool *skipped) {
    asr_store_recording_t r;
    asr_store_job_t job;
    char *doc = NULL;
    *skipped = false;
    asr_err_t e = asr_store_recording_get(api->store, id, &r);
    if (e != ASR_OK)
        return e;
    e = asr__api_transcript_doc(api, id, false, &job, &doc);
    asr_buf_t b;
    asr_buf_init(&b);
    if (e == ASR_OK && asr_format_write_stored(doc, (asr_format_t)fmt, NULL, &b) != ASR_OK)
        e = ASR_ERR_NOT_FOUND;
    if (e == ASR_ERR_NOT_FOUND) {
        *skipped = true;
        e = ASR_OK;
    } else if (e == ASR_OK) {
        char base[160], name[192];
        member_name(r.name, fmt_name, base, sizeof base);
        if (json_object_get(names, base)) /* two recordings of one name: both kept */
            snprintf(name, sizeof name, "%lld-%s", (long long)id, base);
        else
            snprintf(name, sizeof name, "%s", base);
        json_object_set_new(names, name, json_true());
        e = asr_format_zip_add(z, name, b.data ? b.data : "", b.len);
    }
    asr_buf_free(&b);
    free(doc);
    asr_store_job_clear(&job);
    asr_store_recording_clear(&r);
    return e;
}

/* Body {"ids": [..], "format": "txt"|"json"|"srt"|"vtt"}: a zip of the recordings' transcripts
 * (edits applied), one member per recording; those without a finished transcript are left out
 * and listed in X-Asrd-Skipped. 404 naming ids when an id names no recording, or when none has a
 * transcript. */
void asr__api_recordings_export(asr_http_req_t *req, void *ud) {
    asr_api_t *api = ud;
    json_t *body = NULL, *names = json_object();
    int fmt;
    const char *fmt_name;
    asr_buf_t zip, skipped;
    asr_buf_init(&zip);
    asr_buf_init(&skipped);
    asr_format_zip_t z;
    asr_format_zip_init(&z, &zip);
    if (!parse_export(req, &body, &fmt, &fmt_name))
        goto done;
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(body, "ids"), i, v) {
        int64_t id = json_integer_value(v);
        bool skip = false;
        asr_err_t e = export_one(api, id, fmt, fmt_name, &z, names, &skip);
        if (e == ASR_ERR_NOT_FOUND) {
            asr_http_respond_error(req, 404, "ids", "not_found", "recording %lld does not exist",
                                   (long long)id);
            goto done;
        } else if (e == ASR_ERR_INVALID) {
            asr_http_respond_error(req, 413, "ids", "too_large",
                                   "the archive would outgrow a zip file: export fewer");
            goto done;
        } else if (e != ASR_OK) {
            asr__api_store_error(req, api, e, NULL);
            goto done;
        }
        if (skip)
            asr_buf_printf(&skipped, "%s%lld", skipped.len ? "," : "", (long long)id);
    }
    if (z.n_entries == 0) {
        asr_http_respond_error(req, 404, "ids", "transcript_not_ready",
                               "none of these recordings has a finished transcription yet");
        goto done;
    }
    asr_format_zip_finish(&z);
    char disp[96];
    snprintf(disp, sizeof disp, "attachment; filename=\"transcripts-%s.zip\"", fmt_name);
    asr_http_set_header(req, "Content-Disposition", disp);
    if (skipped.len)
        asr_http_set_header(req, "X-Asrd-Skipped", skipped.data);
    asr_http_log_field(req, "export=%zu skipped=%s", z.n_entries, skipped.len ? skipped.data : "");
    asr_http_respond(req, 200, "application/zip", zip.data, zip.len);
done:
    asr_buf_free(&z.central);
    asr_buf_free(&zip);
    asr_buf_free(&skipped);
    json_decref(names);
    json_decref(body);
}
