/* format: the transcript struct every writer renders, filled from a live engine result or from a
 * stored verbose_json document. Strings are borrowed (from the stream, or from the parsed
 * document the struct keeps); the segment and word arrays are the struct's own. */
#include <stdlib.h>
#include <string.h>

#include "format/format.h"

/* Sizes the arrays for n_segs segments and n_words words in all. */
static void alloc_arrays(asr_transcript_t *t, int n_segs, int n_words) {
    t->n_segs = n_segs;
    t->segs = asr_xcalloc((size_t)n_segs + 1, sizeof *t->segs);
    t->words_store = asr_xcalloc((size_t)n_words + 1, sizeof *t->words_store);
}

void asr_transcript_from_stream(asr_transcript_t *t, const asr_stream_t *s) {
    memset(t, 0, sizeof *t);
    t->language = asr_stream_language(s);
    t->language_prob = asr_stream_language_prob(s);
    t->n_top = asr_stream_language_probs(s, t->top, 5);
    if (t->n_top < 0)
        t->n_top = 0;
    t->duration = asr_stream_duration(s);
    int n_segs = asr_stream_n_segments(s), n_words = 0;
    for (int i = 0; i < n_segs; i++)
        n_words += asr_stream_n_words(s, i);
    alloc_arrays(t, n_segs, n_words);
    asr_word_t *w = t->words_store;
    for (int i = 0; i < n_segs; i++) {
        asr_transcript_seg_t *g = &t->segs[i];
        g->seg = *asr_stream_segment(s, i);
        g->words = w;
        g->n_words = asr_stream_n_words(s, i);
        for (int k = 0; k < g->n_words; k++)
            *w++ = *asr_stream_word(s, i, k);
    }
}

static double num(json_t *o, const char *k) { return json_number_value(json_object_get(o, k)); }

static const char *str(json_t *o, const char *k) {
    const char *v = json_string_value(json_object_get(o, k));
    return v ? v : "";
}

asr_err_t asr_transcript_from_json(asr_transcript_t *t, const char *json, size_t len) {
    memset(t, 0, sizeof *t);
    json_t *doc = json ? json_loadb(json, len, 0, NULL) : NULL;
    if (!json_is_object(doc)) {
        json_decref(doc);
        return ASR_ERR_INVALID;
    }
    t->doc = doc;
    t->language = str(doc, "language");
    json_t *p = json_object_get(doc, "language_probability");
    t->language_prob = p ? (float)json_number_value(p) : 1.0f;
    t->duration = num(doc, "duration");
    json_t *segs = json_object_get(doc, "segments");
    int n_segs = (int)json_array_size(segs), n_words = 0;
    for (int i = 0; i < n_segs; i++)
        n_words += (int)json_array_size(json_object_get(json_array_get(segs, (size_t)i), "words"));
    alloc_arrays(t, n_segs, n_words);
    asr_word_t *w = t->words_store;
    for (int i = 0; i < n_segs; i++) {
        json_t *o = json_array_get(segs, (size_t)i);
        asr_transcript_seg_t *g = &t->segs[i];
        g->seg = (asr_segment_t){.id = (int)json_integer_value(json_object_get(o, "id")),
                                 .seek = (int)json_integer_value(json_object_get(o, "seek")),
                                 .start = num(o, "start"),
                                 .end = num(o, "end"),
                                 .text = str(o, "text"),
                                 .temperature = (float)num(o, "temperature"),
                                 .avg_logprob = (float)num(o, "avg_logprob"),
                                 .compression_ratio = (float)num(o, "compression_ratio"),
                                 .no_speech_prob = (float)num(o, "no_speech_prob")};
        json_t *words = json_object_get(o, "words");
        g->words = w;
        g->n_words = (int)json_array_size(words);
        for (int k = 0; k < g->n_words; k++) {
            json_t *x = json_array_get(words, (size_t)k);
            json_t *pr = json_object_get(x, "probability");
            *w++ = (asr_word_t){str(x, "word"), num(x, "start"), num(x, "end"),
                                pr ? (float)json_number_value(pr) : 1.0f};
        }
    }
    return ASR_OK;
}

void asr_transcript_deinit(asr_transcript_t *t) {
    if (t) {
        json_decref(t->doc); /* the strings the segments borrow */
        free(t->segs);
        free(t->words_store);
        *t = (asr_transcript_t){0};
    }
}
