/* cli: transcript writers. JSON is produced with jansson so escaping is always right; times in
 * srt/vtt are rounded to milliseconds. */
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <string.h>

#include "api/format.h"

int asr_format_parse(const char *s) {
    if (!strcmp(s, "txt") || !strcmp(s, "text"))
        return ASR_FMT_TXT;
    if (!strcmp(s, "json"))
        return ASR_FMT_JSON;
    if (!strcmp(s, "verbose_json"))
        return ASR_FMT_VERBOSE_JSON;
    if (!strcmp(s, "srt"))
        return ASR_FMT_SRT;
    if (!strcmp(s, "vtt"))
        return ASR_FMT_VTT;
    return -1;
}

static void append_stripped(asr_buf_t *out, const char *t) {
    size_t n = strlen(t);
    while (n && (*t == ' ' || *t == '\n'))
        t++, n--;
    while (n && (t[n - 1] == ' ' || t[n - 1] == '\n'))
        n--;
    asr_buf_append(out, t, n);
}

static void full_text(const asr_stream_t *s, asr_buf_t *out) {
    asr_buf_t raw;
    asr_buf_init(&raw);
    for (int i = 0; i < asr_stream_n_segments(s); i++)
        asr_buf_puts(&raw, asr_stream_segment(s, i)->text);
    append_stripped(out, raw.data ? raw.data : "");
    asr_buf_free(&raw);
}

static void timestamp(asr_buf_t *out, double t, char sep) {
    long ms = lround(t * 1000.0);
    if (ms < 0)
        ms = 0;
    asr_buf_printf(out, "%02ld:%02ld:%02ld%c%03ld", ms / 3600000, ms / 60000 % 60, ms / 1000 % 60,
                   sep, ms % 1000);
}

static double round2(double x) { return round(x * 100.0) / 100.0; }

static json_t *json_utf8(const char *s, size_t len);

/* verbose_json: the language's probability (1 when it was given) and, when it was detected, the
 * top 5 languages, code -> probability, most probable first. */
static void language_probs_json(json_t *root, const asr_stream_t *s) {
    json_object_set_new(root, "language_probability",
                        json_real(round(asr_stream_language_prob(s) * 1e4) / 1e4));
    asr_lang_prob_t top[5];
    int n = asr_stream_language_probs(s, top, 5);
    if (n <= 0)
        return;
    json_t *o = json_object();
    for (int i = 0; i < n; i++)
        json_object_set_new(o, top[i].code, json_real(round(top[i].prob * 1e4) / 1e4));
    json_object_set_new(root, "language_probs", o);
}
static json_t *segments_json(const asr_stream_t *s, bool detail);
static json_t *words_json(const asr_stream_t *s, bool detail);

/* The CLI's json/verbose_json: like the API's, with each segment's words and word probabilities
 * (whisper's CLI shape), and no usage. */
static void write_json(const asr_stream_t *s, int verbose, const char *task, asr_buf_t *out) {
    asr_buf_t text;
    asr_buf_init(&text);
    full_text(s, &text);
    json_t *root = json_object();
    if (verbose) {
        const char *name = asr_lang_name(asr_stream_language(s));
        json_object_set_new(root, "task", json_string(task));
        json_object_set_new(root, "language", json_string(name ? name : asr_stream_language(s)));
        language_probs_json(root, s);
        json_object_set_new(root, "duration", json_real(round2(asr_stream_duration(s))));
    }
    json_object_set_new(root, "text", json_utf8(text.data ? text.data : "", text.len));
    if (verbose) {
        json_object_set_new(root, "segments", segments_json(s, true));
        json_t *words = words_json(s, true);
        if (json_array_size(words) > 0)
            json_object_set_new(root, "words", words);
        else
            json_decref(words);
    }
    char *js = json_dumps(root, JSON_REAL_PRECISION(8));
    asr_buf_puts(out, js);
    asr_buf_puts(out, "\n");
    free(js);
    json_decref(root);
    asr_buf_free(&text);
}

void asr_format_write(const asr_stream_t *s, asr_format_t fmt, const char *task, asr_buf_t *out) {
    int n = asr_stream_n_segments(s);
    switch (fmt) {
    case ASR_FMT_TXT:
        for (int i = 0; i < n; i++) {
            append_stripped(out, asr_stream_segment(s, i)->text);
            asr_buf_puts(out, "\n");
        }
        break;
    case ASR_FMT_JSON:
    case ASR_FMT_VERBOSE_JSON:
        write_json(s, fmt == ASR_FMT_VERBOSE_JSON, task, out);
        break;
    case ASR_FMT_SRT:
    case ASR_FMT_VTT:
        asr_format_write_subtitles(s, fmt, NULL, out);
        break;
    }
}

/* ---- subtitles cut per word ---- */

bool asr_subtitle_opts_active(const asr_subtitle_opts_t *o) {
    return o && (o->max_line_width > 0 || o->max_line_count > 0 || o->max_words_per_line > 0 ||
                 o->highlight_words);
}

static int utf8_chars(const char *t) {
    int n = 0;
    for (; *t; t++)
        n += ((unsigned char)*t & 0xc0) != 0x80;
    return n;
}

static const char *skip_space(const char *t) {
    while (*t == ' ' || *t == '\n')
        t++;
    return t;
}

/* How a word is placed in its cue. */
enum { PLACE_CUE = 0, PLACE_LINE = 1, PLACE_CONT = 2 };

/* Text of the cue of words [lo, hi): a cue's or a line's first word without its leading space,
 * the others as Whisper wrote them; word `hl` (or none, -1) underlined. */
static char *cue_text(const asr_sub_word_t *w, const unsigned char *place, int lo, int hi, int hl) {
    asr_buf_t b;
    asr_buf_init(&b);
    for (int i = lo; i < hi; i++) {
        const char *t = w[i].text;
        if (place[i] == PLACE_LINE)
            asr_buf_puts(&b, "\n");
        if (place[i] != PLACE_CONT)
            t = skip_space(t);
        const char *body = skip_space(t);
        asr_buf_append(&b, t, (size_t)(body - t));
        size_t n = strlen(body);
        while (n && (body[n - 1] == ' ' || body[n - 1] == '\n'))
            n--;
        if (i == hl)
            asr_buf_puts(&b, "<u>");
        asr_buf_append(&b, body, n);
        if (i == hl)
            asr_buf_puts(&b, "</u>");
    }
    if (!b.data)
        asr_buf_puts(&b, "");
    return asr_buf_steal(&b);
}

typedef struct {
    asr_cue_t *v;
    int n, cap;
} cues_t;

static void cue_push(cues_t *c, double start, double end, char *text) {
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 32;
        c->v = asr_xrealloc(c->v, (size_t)c->cap * sizeof *c->v);
    }
    c->v[c->n++] = (asr_cue_t){start, end, text};
}

/* Emits the cue of words [lo, hi): whole, or with highlighting one cue per word (and a plain cue
 * over each gap before a word). */
static void cue_emit(cues_t *c, const asr_sub_word_t *w, const unsigned char *place, int lo, int hi,
                     bool highlight) {
    if (!highlight) {
        cue_push(c, w[lo].start, w[hi - 1].end, cue_text(w, place, lo, hi, -1));
        return;
    }
    double last = w[lo].start;
    for (int i = lo; i < hi; i++) {
        if (w[i].start > last)
            cue_push(c, last, w[i].start, cue_text(w, place, lo, hi, -1));
        cue_push(c, w[i].start, w[i].end, cue_text(w, place, lo, hi, i));
        last = w[i].end;
    }
}

int asr_subtitle_cues(const asr_sub_word_t *in, int n_in, const asr_subtitle_opts_t *o,
                      asr_cue_t **out) {
    asr_subtitle_opts_t none = {0};
    if (!o)
        o = &none;
    /* the words that have text */
    asr_sub_word_t *w = asr_xmalloc(((size_t)n_in + 1) * sizeof *w);
    unsigned char *place = asr_xmalloc((size_t)n_in + 1);
    int n = 0;
    for (int i = 0; i < n_in; i++)
        if (in[i].text && *skip_space(in[i].text))
            w[n++] = in[i];
    bool merge = o->max_line_width > 0 && o->max_line_count > 0;
    int max_lines = o->max_line_count > 0                             ? o->max_line_count
                    : o->max_words_per_line > 0 && !o->max_line_width ? 1
                                                                      : INT_MAX;
    int width = o->max_line_width > 0 ? o->max_line_width : INT_MAX;
    int per_line = o->max_words_per_line > 0 ? o->max_words_per_line : INT_MAX;
    cues_t c = {0};
    int first = 0, lines = 0, line_len = 0, line_words = 0;
    for (int i = 0; i < n; i++) {
        int len = utf8_chars(w[i].text), len_stripped = utf8_chars(skip_space(w[i].text));
        bool new_cue = i == 0;
        if (i > 0) {
            bool seg_break = !merge && w[i].seg != w[i - 1].seg;
            bool pause = merge && w[i].start - w[i - 1].end > 3.0;
            if (seg_break || pause) {
                new_cue = true;
            } else if (line_len <= width - len && line_words < per_line) {
                place[i] = PLACE_CONT;
                line_len += len;
                line_words++;
                continue;
            } else if (lines < max_lines) {
                place[i] = PLACE_LINE;
                lines++;
            } else {
                new_cue = true;
            }
        }
        if (new_cue) {
            if (i > first)
                cue_emit(&c, w, place, first, i, o->highlight_words);
            first = i;
            place[i] = PLACE_CUE;
            lines = 1;
        }
        line_len = len_stripped;
        line_words = 1;
    }
    if (n > first)
        cue_emit(&c, w, place, first, n, o->highlight_words);
    free(w);
    free(place);
    *out = c.v;
    return c.n;
}

void asr_subtitle_cues_free(asr_cue_t *cues, int n) {
    for (int i = 0; i < n; i++)
        free(cues[i].text);
    free(cues);
}

void asr_subtitle_write(const asr_cue_t *cues, int n, asr_format_t fmt, asr_buf_t *out) {
    char sep = fmt == ASR_FMT_SRT ? ',' : '.';
    if (fmt == ASR_FMT_VTT)
        asr_buf_puts(out, "WEBVTT\n\n");
    for (int i = 0; i < n; i++) {
        if (fmt == ASR_FMT_SRT)
            asr_buf_printf(out, "%d\n", i + 1);
        timestamp(out, cues[i].start, sep);
        asr_buf_puts(out, " --> ");
        timestamp(out, cues[i].end, sep);
        asr_buf_puts(out, "\n");
        asr_buf_puts(out, cues[i].text);
        asr_buf_puts(out, "\n\n");
    }
}

void asr_format_write_subtitles(const asr_stream_t *s, asr_format_t fmt,
                                const asr_subtitle_opts_t *o, asr_buf_t *out) {
    bool per_word = asr_subtitle_opts_active(o);
    int n_segs = asr_stream_n_segments(s), n = 0, cap = 0;
    asr_sub_word_t *w = NULL;
    for (int i = 0; i < n_segs; i++) {
        const asr_segment_t *g = asr_stream_segment(s, i);
        int nw = per_word ? asr_stream_n_words(s, i) : 0;
        if (n + nw + 1 > cap) {
            cap = (n + nw + 1) * 2;
            w = asr_xrealloc(w, (size_t)cap * sizeof *w);
        }
        if (nw == 0) /* the segment as one piece */
            w[n++] = (asr_sub_word_t){g->text, g->start, g->end, i};
        for (int k = 0; k < nw; k++) {
            const asr_word_t *x = asr_stream_word(s, i, k);
            w[n++] = (asr_sub_word_t){x->word, x->start, x->end, i};
        }
    }
    asr_cue_t *cues = NULL;
    int n_cues = asr_subtitle_cues(w, n, per_word ? o : NULL, &cues);
    asr_subtitle_write(cues, n_cues, fmt, out);
    asr_subtitle_cues_free(cues, n_cues);
    free(w);
}

/* ---- OpenAI API responses ---- */

/* Length of the valid UTF-8 sequence at s[0..n), or 0 if it is not one. */
static size_t utf8_seq(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    size_t len;
    unsigned min;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef)
        len = 3, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4)
        len = 4, min = 0x10000;
    else
        return 0;
    if (n < len)
        return 0;
    unsigned cp = c & (0x7f >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
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

static json_t *json_utf8(const char *s, size_t len) {
    asr_buf_t b;
    asr_buf_init(&b);
    asr_format_utf8_sanitize(s, len, &b);
    json_t *j = json_stringn(b.data, b.len);
    asr_buf_free(&b);
    return j;
}

long asr_format_usage_seconds(double duration) {
    if (!(duration > 0))
        return 0;
    return (long)ceil(duration - 1e-6);
}

static json_t *usage_json(double duration) {
    json_t *u = json_object();
    json_object_set_new(u, "type", json_string("duration"));
    json_object_set_new(u, "seconds", json_integer(asr_format_usage_seconds(duration)));
    return u;
}

/* One word: detail keeps Whisper's leading space and adds the probability (CLI); otherwise
 * OpenAI's {word, start, end} with the word stripped. */
static json_t *word_json(const asr_word_t *w, bool detail) {
    asr_buf_t t;
    asr_buf_init(&t);
    if (detail)
        asr_buf_puts(&t, w->word ? w->word : "");
    else
        append_stripped(&t, w->word ? w->word : "");
    json_t *o = json_object();
    json_object_set_new(o, "word", json_utf8(t.data ? t.data : "", t.len));
    json_object_set_new(o, "start", json_real(round2(w->start)));
    json_object_set_new(o, "end", json_real(round2(w->end)));
    if (detail)
        json_object_set_new(o, "probability", json_real(w->probability));
    asr_buf_free(&t);
    return o;
}

/* Segments in OpenAI's shape; detail adds each segment's words. */
static json_t *segments_json(const asr_stream_t *s, bool detail) {
    json_t *segs = json_array();
    for (int i = 0; i < asr_stream_n_segments(s); i++) {
        const asr_segment_t *g = asr_stream_segment(s, i);
        json_t *o = json_object();
        json_object_set_new(o, "id", json_integer(g->id));
        json_object_set_new(o, "seek", json_integer(g->seek));
        json_object_set_new(o, "start", json_real(round2(g->start)));
        json_object_set_new(o, "end", json_real(round2(g->end)));
        json_object_set_new(o, "text", json_utf8(g->text, strlen(g->text)));
        json_t *toks = json_array();
        for (int k = 0; k < g->n_tokens; k++)
            json_array_append_new(toks, json_integer(g->tokens[k]));
        json_object_set_new(o, "tokens", toks);
        json_object_set_new(o, "temperature", json_real(g->temperature));
        json_object_set_new(o, "avg_logprob", json_real(g->avg_logprob));
        json_object_set_new(o, "compression_ratio", json_real(g->compression_ratio));
        json_object_set_new(o, "no_speech_prob", json_real(g->no_speech_prob));
        int nw = detail ? asr_stream_n_words(s, i) : 0;
        if (nw > 0) {
            json_t *ws = json_array();
            for (int k = 0; k < nw; k++)
                json_array_append_new(ws, word_json(asr_stream_word(s, i, k), true));
            json_object_set_new(o, "words", ws);
        }
        json_array_append_new(segs, o);
    }
    return segs;
}

/* All words, flattened across segments. */
static json_t *words_json(const asr_stream_t *s, bool detail) {
    json_t *words = json_array();
    for (int i = 0; i < asr_stream_n_segments(s); i++)
        for (int k = 0; k < asr_stream_n_words(s, i); k++)
            json_array_append_new(words, word_json(asr_stream_word(s, i, k), detail));
    return words;
}

static void write_api_json(const asr_stream_t *s, bool verbose, const asr_format_api_opts_t *o,
                           asr_buf_t *out) {
    asr_buf_t text;
    asr_buf_init(&text);
    full_text(s, &text);
    json_t *root = json_object();
    bool translate = o->task && !strcmp(o->task, "translate");
    if (verbose) {
        const char *code = asr_stream_language(s);
        const char *name = translate ? "english" : asr_lang_name(code);
        json_object_set_new(root, "task", json_string(translate ? "translate" : "transcribe"));
        json_object_set_new(root, "language",
                            json_utf8(name ? name : code, strlen(name ? name : code)));
        if (!translate)
            language_probs_json(root, s);
        json_object_set_new(root, "duration", json_real(round2(asr_stream_duration(s))));
        if (o->model)
            json_object_set_new(root, "model", json_string(o->model));
    }
    json_object_set_new(root, "text", json_utf8(text.data ? text.data : "", text.len));
    if (verbose && o->segments)
        json_object_set_new(root, "segments", segments_json(s, false));
    if (verbose && o->words)
        json_object_set_new(root, "words", words_json(s, false));
    if (o->usage)
        json_object_set_new(root, "usage", usage_json(asr_stream_duration(s)));
    char *js = json_dumps(root, JSON_REAL_PRECISION(8) | JSON_PRESERVE_ORDER);
    asr_buf_puts(out, js);
    asr_buf_puts(out, "\n");
    free(js);
    json_decref(root);
    asr_buf_free(&text);
}

void asr_format_write_api(const asr_stream_t *s, asr_format_t fmt, const asr_format_api_opts_t *o,
                          asr_buf_t *out) {
    if (fmt == ASR_FMT_JSON || fmt == ASR_FMT_VERBOSE_JSON) {
        write_api_json(s, fmt == ASR_FMT_VERBOSE_JSON, o, out);
    } else if (fmt == ASR_FMT_TXT) {
        asr_buf_t text;
        asr_buf_init(&text);
        full_text(s, &text);
        asr_format_utf8_sanitize(text.data ? text.data : "", text.len, out);
        asr_buf_puts(out, "\n");
        asr_buf_free(&text);
    } else {
        asr_buf_t raw;
        asr_buf_init(&raw);
        if (fmt == ASR_FMT_SRT || fmt == ASR_FMT_VTT)
            asr_format_write_subtitles(s, fmt, o->subtitles, &raw);
        else
            asr_format_write(s, fmt, o->task, &raw);
        asr_format_utf8_sanitize(raw.data ? raw.data : "", raw.len, out);
        asr_buf_free(&raw);
    }
}

static void sse_event(asr_buf_t *out, json_t *ev) {
    char *js = json_dumps(ev, JSON_PRESERVE_ORDER | JSON_COMPACT);
    asr_buf_puts(out, "data: ");
    asr_buf_puts(out, js);
    asr_buf_puts(out, "\n\n");
    free(js);
    json_decref(ev);
}

void asr_format_sse_delta(asr_buf_t *out, const char *text, size_t len) {
    json_t *ev = json_object();
    json_object_set_new(ev, "type", json_string("transcript.text.delta"));
    json_object_set_new(ev, "delta", json_utf8(text, len));
    sse_event(out, ev);
}

void asr_format_sse_done(asr_buf_t *out, const char *text, size_t len, double duration) {
    json_t *ev = json_object();
    json_object_set_new(ev, "type", json_string("transcript.text.done"));
    json_object_set_new(ev, "text", json_utf8(text, len));
    json_object_set_new(ev, "usage", usage_json(duration));
    sse_event(out, ev);
}
