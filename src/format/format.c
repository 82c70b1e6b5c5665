/* format: format names and content types, the plain-text renderings, the dispatch from a format
 * to its writer for live and stored transcripts, and UTF-8 repair of model output.
 *
 * A live result and a stored document both become an asr_transcript_t first, so txt, srt and vtt
 * of a recording's stored transcript are cut exactly as the CLI cuts them. */
#include <string.h>

#include "format/format_int.h"

/* ---- names and content types ---- */

int asr_format_parse(const char *s) {
    if (!strcmp(s, "txt"))
        return ASR_FMT_TXT;
    return asr_format_parse_api(s);
}

int asr_format_parse_api(const char *s) {
    static const char *names[] = {[ASR_FMT_TXT] = "text",
                                  [ASR_FMT_JSON] = "json",
                                  [ASR_FMT_VERBOSE_JSON] = "verbose_json",
                                  [ASR_FMT_SRT] = "srt",
                                  [ASR_FMT_VTT] = "vtt"};
    for (int i = 0; s && i < (int)(sizeof names / sizeof names[0]); i++)
        if (!strcmp(s, names[i]))
            return i;
    return -1;
}

const char *asr_format_content_type(asr_format_t fmt) {
    switch (fmt) {
    case ASR_FMT_JSON:
    case ASR_FMT_VERBOSE_JSON:
        return "application/json";
    case ASR_FMT_VTT:
        return "text/vtt; charset=utf-8";
    case ASR_FMT_TXT:
    case ASR_FMT_SRT:
        break;
    }
    return "text/plain; charset=utf-8";
}

/* ---- text ---- */

void asr__format_append_stripped(asr_buf_t *out, const char *t) {
    size_t n = strlen(t);
    while (n && (*t == ' ' || *t == '\n'))
        t++, n--;
    while (n && (t[n - 1] == ' ' || t[n - 1] == '\n'))
        n--;
    asr_buf_append(out, t, n);
}

void asr__format_full_text(const asr_transcript_t *t, asr_buf_t *out) {
    asr_buf_t raw;
    asr_buf_init(&raw);
    for (int i = 0; i < t->n_segs; i++)
        asr_buf_puts(&raw, t->segs[i].seg.text ? t->segs[i].seg.text : "");
    asr__format_append_stripped(out, raw.data ? raw.data : "");
    asr_buf_free(&raw);
}

/* ---- UTF-8 repair ---- */

/* Length of the valid UTF-8 sequence at s[0..n), or 0 if it is not one. */
static size_t utf8_seq(const unsigned char *s, size_t n) {
    uint32_t cp;
    int k = asr_utf8_next(s, n, &cp);
    return k > 0 ? (size_t)k : 0;
}

void asr_format_utf8_sanitize(const char *s, size_t len, asr_buf_t *out) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, run = 0;
    while (i < len) {
        size_t k = p[i] ? utf8_seq(p + i, len - i) : 0;
        if (k) {
            i += k;
            run += k;
            continue;
        }
        asr_buf_append(out, s + i - run, run);
        asr_buf_puts(out, "\xef\xbf\xbd");
        run = 0;
        i++;
    }
    asr_buf_append(out, s + i - run, run);
    if (!out->data)
        asr_buf_puts(out, "");
}

/* ---- dispatch ---- */

void asr_transcript_write(const asr_transcript_t *t, asr_format_t fmt, const char *task,
                          const asr_subtitle_opts_t *subs, asr_buf_t *out) {
    switch (fmt) {
    case ASR_FMT_TXT:
        for (int i = 0; i < t->n_segs; i++) {
            asr__format_append_stripped(out, t->segs[i].seg.text ? t->segs[i].seg.text : "");
            asr_buf_puts(out, "\n");
        }
        break;
    case ASR_FMT_JSON:
    case ASR_FMT_VERBOSE_JSON:
        asr__format_json_cli(t, fmt == ASR_FMT_VERBOSE_JSON, task, out);
        break;
    case ASR_FMT_SRT:
    case ASR_FMT_VTT:
        asr_transcript_write_subtitles(t, fmt, subs, out);
        break;
    }
}

void asr_transcript_write_api(const asr_transcript_t *t, asr_format_t fmt,
                              const asr_format_api_opts_t *o, asr_buf_t *out) {
    if (fmt == ASR_FMT_JSON || fmt == ASR_FMT_VERBOSE_JSON) {
        asr__format_json_api(t, fmt == ASR_FMT_VERBOSE_JSON, o, out);
        return;
    }
    asr_buf_t raw;
    asr_buf_init(&raw);
    if (fmt == ASR_FMT_TXT)
        asr__format_full_text(t, &raw);
    else
        asr_transcript_write_subtitles(t, fmt, o->subtitles, &raw);
    asr_format_utf8_sanitize(raw.data ? raw.data : "", raw.len, out);
    if (fmt == ASR_FMT_TXT)
        asr_buf_puts(out, "\n");
    asr_buf_free(&raw);
}

void asr_format_write(const asr_stream_t *s, asr_format_t fmt, const char *task, asr_buf_t *out) {
    asr_transcript_t t;
    asr_transcript_from_stream(&t, s);
    asr_transcript_write(&t, fmt, task, NULL, out);
    asr_transcript_deinit(&t);
}

void asr_format_write_api(const asr_stream_t *s, asr_format_t fmt, const asr_format_api_opts_t *o,
                          asr_buf_t *out) {
    asr_transcript_t t;
    asr_transcript_from_stream(&t, s);
    asr_transcript_write_api(&t, fmt, o, out);
    asr_transcript_deinit(&t);
}

asr_err_t asr_format_write_stored(const char *json, asr_format_t fmt,
                                  const asr_subtitle_opts_t *subs, asr_buf_t *out) {
    asr_transcript_t t;
    asr_err_t rc = asr_transcript_from_json(&t, json, json ? strlen(json) : 0);
    if (rc != ASR_OK)
        return rc;
    if (fmt == ASR_FMT_JSON || fmt == ASR_FMT_VERBOSE_JSON) {
        asr_buf_puts(out, json);
        asr_buf_puts(out, "\n");
    } else {
        asr_transcript_write(&t, fmt, NULL, subs, out);
    }
    asr_transcript_deinit(&t);
    return ASR_OK;
}
