/* format: the JSON shapes. A transcript as json/verbose_json in whisper's CLI shape (what the CLI
 * prints and jobs store: each segment's words with their probabilities, no usage) or in OpenAI's
 * API shape; the usage object; the SSE events of a streamed transcription; and OpenAI's error
 * document, built here and nowhere else.
 *
 * Every string that came from the model goes through asr_format_json_string, so invalid UTF-8 is
 * replaced rather than making jansson refuse the string. Times are rounded to 10 ms and
 * probabilities to 1e-4, as OpenAI shows them. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "format/format_int.h"

static double round2(double x) { return round(x * 100.0) / 100.0; }

json_t *asr_format_json_string(const char *s, size_t len) {
    asr_buf_t b;
    asr_buf_init(&b);
    asr_format_utf8_sanitize(s ? s : "", s ? len : 0, &b);
    json_t *j = json_stringn(b.data, b.len);
    asr_buf_free(&b);
    return j;
}

static json_t *json_str(const char *s) { return asr_format_json_string(s, s ? strlen(s) : 0); }

/* Dumps `root` (taking it) onto out, then `end`. */
static void dump(asr_buf_t *out, json_t *root, size_t flags, const char *end) {
    char *js = json_dumps(root, flags);
    asr_buf_puts(out, js ? js : "{}");
    asr_buf_puts(out, end);
    free(js);
    json_decref(root);
}

/* verbose_json: the language's probability (1 when it was given) and, when it was detected, the
 * top 5 languages, code -> probability, most probable first. */
static void language_probs_json(json_t *root, const asr_transcript_t *t) {
    json_object_set_new(root, "language_probability",
                        json_real(round(t->language_prob * 1e4) / 1e4));
    if (t->n_top <= 0)
        return;
    json_t *o = json_object();
    for (int i = 0; i < t->n_top; i++)
        json_object_set_new(o, t->top[i].code, json_real(round(t->top[i].prob * 1e4) / 1e4));
    json_object_set_new(root, "language_probs", o);
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
        asr__format_append_stripped(&t, w->word ? w->word : "");
    json_t *o = json_object();
    json_object_set_new(o, "word", asr_format_json_string(t.data, t.len));
    json_object_set_new(o, "start", json_real(round2(w->start)));
    json_object_set_new(o, "end", json_real(round2(w->end)));
    if (detail)
        json_object_set_new(o, "probability", json_real(w->probability));
    asr_buf_free(&t);
    return o;
}

/* Segments in OpenAI's shape; detail adds each segment's words. */
static json_t *segments_json(const asr_transcript_t *t, bool detail) {
    json_t *segs = json_array();
    for (int i = 0; i < t->n_segs; i++) {
        const asr_segment_t *g = &t->segs[i].seg;
        json_t *o = json_object();
        json_object_set_new(o, "id", json_integer(g->id));
        json_object_set_new(o, "seek", json_integer(g->seek));
        json_object_set_new(o, "start", json_real(round2(g->start)));
        json_object_set_new(o, "end", json_real(round2(g->end)));
        json_object_set_new(o, "text", json_str(g->text));
        json_t *toks = json_array();
        for (int k = 0; k < g->n_tokens; k++)
            json_array_append_new(toks, json_integer(g->tokens[k]));
        json_object_set_new(o, "tokens", toks);
        json_object_set_new(o, "temperature", json_real(g->temperature));
        json_object_set_new(o, "avg_logprob", json_real(g->avg_logprob));
        json_object_set_new(o, "compression_ratio", json_real(g->compression_ratio));
        json_object_set_new(o, "no_speech_prob", json_real(g->no_speech_prob));
        int nw = detail ? t->segs[i].n_words : 0;
        if (nw > 0) {
            json_t *ws = json_array();
            for (int k = 0; k < nw; k++)
                json_array_append_new(ws, word_json(&t->segs[i].words[k], true));
            json_object_set_new(o, "words", ws);
        }
        json_array_append_new(segs, o);
    }
    return segs;
}

/* All words, flattened across segments. */
static json_t *words_json(const asr_transcript_t *t, bool detail) {
    json_t *words = json_array();
    for (int i = 0; i < t->n_segs; i++)
        for (int k = 0; k < t->segs[i].n_words; k++)
            json_array_append_new(words, word_json(&t->segs[i].words[k], detail));
    return words;
}

/* "text": the whole text. */
static void text_field(json_t *root, const asr_transcript_t *t) {
    asr_buf_t text;
    asr_buf_init(&text);
    asr__format_full_text(t, &text);
    json_object_set_new(root, "text", asr_format_json_string(text.data, text.len));
    asr_buf_free(&text);
}

void asr__format_json_cli(const asr_transcript_t *t, bool verbose, const char *task,
                          asr_buf_t *out) {
    json_t *root = json_object();
    if (verbose) {
        const char *name = asr_lang_name(t->language);
        json_object_set_new(root, "task", json_string(task));
        json_object_set_new(root, "language", json_str(name ? name : t->language));
        language_probs_json(root, t);
        json_object_set_new(root, "duration", json_real(round2(t->duration)));
    }
    text_field(root, t);
    if (verbose) {
        json_object_set_new(root, "segments", segments_json(t, true));
        json_t *words = words_json(t, true);
        if (json_array_size(words) > 0)
            json_object_set_new(root, "words", words);
        else
            json_decref(words);
    }
    dump(out, root, JSON_REAL_PRECISION(8), "\n");
}

void asr__format_json_api(const asr_transcript_t *t, bool verbose, const asr_format_api_opts_t *o,
                          asr_buf_t *out) {
    json_t *root = json_object();
    bool translate = o->task && !strcmp(o->task, "translate");
    if (verbose) {
        const char *name = translate ? "english" : asr_lang_name(t->language);
        json_object_set_new(root, "task", json_string(translate ? "translate" : "transcribe"));
        json_object_set_new(root, "language", json_str(name ? name : t->language));
        if (!translate)
            language_probs_json(root, t);
        json_object_set_new(root, "duration", json_real(round2(t->duration)));
        if (o->model)
            json_object_set_new(root, "model", json_string(o->model));
    }
    text_field(root, t);
    if (verbose && o->segments)
        json_object_set_new(root, "segments", segments_json(t, false));
    if (verbose && o->words)
        json_object_set_new(root, "words", words_json(t, false));
    if (o->usage)
        json_object_set_new(root, "usage", usage_json(t->duration));
    dump(out, root, JSON_REAL_PRECISION(8) | JSON_PRESERVE_ORDER, "\n");
}

/* ---- SSE events ---- */

static void sse_event(asr_buf_t *out, json_t *ev) {
    asr_buf_puts(out, "data: ");
    dump(out, ev, JSON_PRESERVE_ORDER | JSON_COMPACT, "\n\n");
}

void asr_format_sse_delta(asr_buf_t *out, const char *text, size_t len) {
    json_t *ev = json_object();
    json_object_set_new(ev, "type", json_string("transcript.text.delta"));
    json_object_set_new(ev, "delta", asr_format_json_string(text, len));
    sse_event(out, ev);
}

void asr_format_sse_done(asr_buf_t *out, const char *text, size_t len, double duration,
                         const char *model) {
    json_t *ev = json_object();
    json_object_set_new(ev, "type", json_string("transcript.text.done"));
    json_object_set_new(ev, "text", asr_format_json_string(text, len));
    json_object_set_new(ev, "usage", usage_json(duration));
    if (model)
        json_object_set_new(ev, "model", json_str(model));
    sse_event(out, ev);
}

/* ---- errors ---- */

const char *asr_format_error_type(int status) {
    if (status == 503)
        return "service_unavailable_error";
    if (status >= 500)
        return "server_error";
    return "invalid_request_error";
}

json_t *asr_format_error_json(int status, const char *param, const char *code,
                              const char *message) {
    json_t *err = json_object();
    json_object_set_new(err, "message", json_str(message));
    json_object_set_new(err, "type", json_string(asr_format_error_type(status)));
    json_object_set_new(err, "param", param && *param ? json_str(param) : json_null());
    json_object_set_new(err, "code", code ? json_str(code) : json_null());
    json_t *root = json_object();
    json_object_set_new(root, "error", err);
    return root;
}

void asr_format_error_write(asr_buf_t *out, int status, const char *param, const char *code,
                            const char *message) {
    dump(out, asr_format_error_json(status, param, code, message), JSON_PRESERVE_ORDER, "\n");
}

void asr_format_sse_error(asr_buf_t *out, int status, const char *param, const char *code,
                          const char *message) {
    json_t *doc = asr_format_error_json(status, param, code, message);
    json_t *ev = json_object();
    json_object_set_new(ev, "type", json_string("error"));
    json_object_set(ev, "error", json_object_get(doc, "error"));
    json_decref(doc);
    sse_event(out, ev);
}
