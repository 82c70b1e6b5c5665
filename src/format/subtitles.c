/* format: srt/vtt cues cut per word (whisper's --max-line-width, --max-line-count,
 * --max-words-per-line, --highlight-words) or one per segment, and their srt/vtt syntax.
 *
 * Invariants: a cue starts at its first word's start and ends at its last word's end; a cue's and
 * a line's first word loses its leading space; cues never span segments unless width and line
 * count are both given (then a pause over 3 s starts a new cue). */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "format/format.h"

static void timestamp(asr_buf_t *out, double t, char sep) {
    long ms = lround(t * 1000.0);
    if (ms < 0)
        ms = 0;
    asr_buf_printf(out, "%02ld:%02ld:%02ld%c%03ld", ms / 3600000, ms / 60000 % 60, ms / 1000 % 60,
                   sep, ms % 1000);
}

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

void asr_transcript_write_subtitles(const asr_transcript_t *t, asr_format_t fmt,
                                    const asr_subtitle_opts_t *o, asr_buf_t *out) {
    bool per_word = asr_subtitle_opts_active(o);
    int n = 0, cap = 0;
    asr_sub_word_t *w = NULL;
    for (int i = 0; i < t->n_segs; i++) {
        const asr_transcript_seg_t *g = &t->segs[i];
        int nw = per_word ? g->n_words : 0;
        if (n + nw + 1 > cap) {
            cap = (n + nw + 1) * 2;
            w = asr_xrealloc(w, (size_t)cap * sizeof *w);
        }
        if (nw == 0) /* the segment as one piece */
            w[n++] = (asr_sub_word_t){g->seg.text, g->seg.start, g->seg.end, i};
        for (int k = 0; k < nw; k++)
            w[n++] = (asr_sub_word_t){g->words[k].word, g->words[k].start, g->words[k].end, i};
    }
    asr_cue_t *cues = NULL;
    int n_cues = asr_subtitle_cues(w, n, per_word ? o : NULL, &cues);
    asr_subtitle_write(cues, n_cues, fmt, out);
    asr_subtitle_cues_free(cues, n_cues);
    free(w);
}
