/* format: a stored transcript with a team's corrections applied, and a stored (uncompressed) zip
 * archive to hand several rendered transcripts over in one download.
 *
 * Corrections never touch the stored document: asr_format_apply_edits returns a new one, which
 * every writer (txt, json, srt, vtt) then renders like any stored transcript, so an export shows
 * exactly what the editor shows. */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#include "format/format_int.h"

/* The edit's text as the segment holds it: Whisper's segments start with a space (none for
 * CJK); an edit typed without one gets the original's, so joined text keeps its word breaks. */
static json_t *segment_text(const char *orig, const char *edit) {
    bool lead = orig[0] == ' ' && edit[0] != ' ' && edit[0] != '\0';
    asr_buf_t b;
    asr_buf_init(&b);
    if (lead)
        asr_buf_puts(&b, " ");
    asr_buf_puts(&b, edit);
    json_t *j = asr_format_json_string(b.data ? b.data : "", b.len);
    asr_buf_free(&b);
    return j;
}

asr_err_t asr_format_apply_edits(const char *json, const asr_format_edit_t *edits, int n_edits,
                                 char **out) {
    *out = NULL;
    json_t *doc = json ? json_loads(json, 0, NULL) : NULL;
    if (!json_is_object(doc)) {
        json_decref(doc);
        return ASR_ERR_INVALID;
    }
    json_t *segs = json_object_get(doc, "segments");
    for (int i = 0; i < n_edits; i++) {
        json_t *o = json_array_get(segs, (size_t)edits[i].segment);
        if (!json_is_object(o) || !edits[i].text)
            continue;
        const char *orig = json_string_value(json_object_get(o, "text"));
        orig = orig ? orig : "";
        json_object_set_new(o, "original_text", json_string(orig));
        json_object_set_new(o, "text", segment_text(orig, edits[i].text));
        json_object_set_new(o, "edited", json_true());
        json_object_del(o, "words"); /* they timed the old text: the segment stays one cue */
    }
    if (n_edits > 0 && json_is_array(segs)) { /* the whole text follows its segments */
        asr_buf_t raw, text;
        asr_buf_init(&raw);
        asr_buf_init(&text);
        size_t k;
        json_t *o;
        json_array_foreach(segs, k, o) {
            const char *t = json_string_value(json_object_get(o, "text"));
            asr_buf_puts(&raw, t ? t : "");
        }
        asr__format_append_stripped(&text, raw.data ? raw.data : "");
        json_object_set_new(doc, "text", json_stringn(text.data ? text.data : "", text.len));
        asr_buf_free(&raw);
        asr_buf_free(&text);
    }
    *out = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    return *out ? ASR_OK : ASR_ERR_NOMEM;
}

/* ---- zip (stored) ---- */

static void put16(asr_buf_t *b, unsigned v) {
    unsigned char p[2] = {(unsigned char)v, (unsigned char)(v >> 8)};
    asr_buf_append(b, p, 2);
}
static void put32(asr_buf_t *b, uint32_t v) {
    unsigned char p[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 24)};
    asr_buf_append(b, p, 4);
}

void asr_format_zip_init(asr_format_zip_t *z, asr_buf_t *out) {
    memset(z, 0, sizeof *z);
    z->out = out;
    asr_buf_init(&z->central);
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    z->dos_time = (uint16_t)((tm.tm_hour << 11) | (tm.tm_min << 5) | (tm.tm_sec / 2));
    z->dos_date = (uint16_t)(((tm.tm_year - 80) << 9) | ((tm.tm_mon + 1) << 5) | tm.tm_mday);
}

asr_err_t asr_format_zip_add(asr_format_zip_t *z, const char *name, const void *data, size_t len) {
    size_t name_len = strlen(name);
    if (name_len == 0 || name_len > 0xFFFF || z->n_entries >= 0xFFFF ||
        z->out->len + len + name_len + 30 > 0xFFFFFFFFu - 1)
        return ASR_ERR_INVALID; /* beyond what a zip without zip64 can say */
    uint32_t crc = (uint32_t)crc32(0L, Z_NULL, 0);
    crc = (uint32_t)crc32(crc, data, (uInt)len);
    uint32_t off = (uint32_t)z->out->len;
    for (int pass = 0; pass < 2; pass++) { /* the local header, then its central record */
        asr_buf_t *b = pass == 0 ? z->out : &z->central;
        put32(b, pass == 0 ? 0x04034b50u : 0x02014b50u);
        if (pass == 1)
            put16(b, 20);   /* made by: 2.0, MS-DOS attributes */
        put16(b, 20);       /* needed to extract: 2.0 */
        put16(b, 1u << 11); /* the name is UTF-8 */
        put16(b, 0);        /* stored */
        put16(b, z->dos_time);
        put16(b, z->dos_date);
        put32(b, crc);
        put32(b, (uint32_t)len); /* compressed = uncompressed */
        put32(b, (uint32_t)len);
        put16(b, (unsigned)name_len);
        put16(b, 0); /* extra field length */
        if (pass == 1) {
            put16(b, 0); /* comment */
            put16(b, 0); /* disk */
            put16(b, 0); /* internal attributes */
            put32(b, 0); /* external attributes */
            put32(b, off);
        }
        asr_buf_append(b, name, name_len);
        if (pass == 0)
            asr_buf_append(b, data, len);
    }
    z->n_entries++;
    return ASR_OK;
}

void asr_format_zip_finish(asr_format_zip_t *z) {
    uint32_t cd_off = (uint32_t)z->out->len;
    asr_buf_append(z->out, z->central.data, z->central.len);
    put32(z->out, 0x06054b50u);
    put16(z->out, 0); /* this disk */
    put16(z->out, 0); /* the central directory's disk */
    put16(z->out, (unsigned)z->n_entries);
    put16(z->out, (unsigned)z->n_entries);
    put32(z->out, (uint32_t)z->central.len);
    put32(z->out, cd_off);
    put16(z->out, 0); /* comment length */
    asr_buf_free(&z->central);
    asr_buf_init(&z->central);
}
