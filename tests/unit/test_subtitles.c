/* Unit tests of srt/vtt cues cut per word (src/format/subtitles.c: asr_subtitle_cues,
 * asr_subtitle_write): cue times are their first and last words' times, line width, line count and
 * words-per-line limits hold, segment boundaries stay cue boundaries unless width and line count
 * are both given, highlighting, and the srt/vtt syntax. Model-free. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "format/format.h"

/* Two segments of JFK's sentence with word times, and a Chinese segment (no spaces). */
static const asr_sub_word_t WORDS[] = {
    {" And", 0.00, 0.30, 0},     {" so", 0.30, 0.60, 0},         {" my", 0.60, 0.90, 0},
    {" fellow", 0.90, 1.40, 0},  {" Americans,", 1.40, 2.20, 0}, {" ask", 3.00, 3.40, 0},
    {" not", 3.40, 4.00, 0},     {" what", 4.50, 4.80, 1},       {" your", 4.80, 5.10, 1},
    {" country", 5.10, 5.60, 1}, {" can", 5.60, 5.90, 1},        {" do", 5.90, 6.10, 1},
    {" for", 6.10, 6.40, 1},     {" you.", 6.40, 7.00, 1},
};
#define N_WORDS ((int)(sizeof WORDS / sizeof WORDS[0]))

static const asr_sub_word_t ZH[] = {
    {"广", 0.0, 0.2, 0}, {"州", 0.2, 0.4, 0}, {"市", 0.4, 0.6, 0}, {" 房", 0.8, 1.0, 0},
    {"地", 1.0, 1.2, 0}, {"产", 1.2, 1.4, 0}, {"中", 1.4, 1.6, 0}, {"介", 1.6, 1.8, 0},
};

static int utf8_len(const char *s, size_t n) {
    int k = 0;
    for (size_t i = 0; i < n; i++)
        k += ((unsigned char)s[i] & 0xc0) != 0x80;
    return k;
}

/* Checks the invariants every cut must keep and returns the largest line width, line count and
 * words per line seen. Words are matched to cues in order by their stripped text. */
static void check_cues(const asr_sub_word_t *w, int n, const asr_cue_t *c, int n_cues,
                       int *max_width, int *max_lines, int *max_words, bool *spans_segments) {
    int wi = 0;
    *max_width = *max_lines = *max_words = 0;
    *spans_segments = false;
    for (int k = 0; k < n_cues; k++) {
        assert_non_null(c[k].text);
        assert_true(c[k].text[0] != ' ' && c[k].text[0] != '\n');
        int first = wi, lines = 0;
        const char *line = c[k].text;
        for (;;) {
            const char *nl = strchr(line, '\n');
            size_t len = nl ? (size_t)(nl - line) : strlen(line);
            int width = utf8_len(line, len), words = 0;
            if (width > *max_width)
                *max_width = width;
            lines++;
            /* count and consume the words of this line */
            size_t pos = 0;
            while (pos < len && wi < n) {
                const char *t = w[wi].text;
                while (*t == ' ')
                    t++;
                while (pos < len && line[pos] == ' ')
                    pos++;
                size_t tl = strlen(t);
                if (pos + tl > len || memcmp(line + pos, t, tl))
                    break;
                pos += tl;
                words++;
                wi++;
            }
            assert_int_equal(pos, len); /* the line is exactly its words */
            if (words > *max_words)
                *max_words = words;
            if (!nl)
                break;
            line = nl + 1;
        }
        if (lines > *max_lines)
            *max_lines = lines;
        assert_true(wi > first);
        assert_true(c[k].start == w[first].start); /* first word's start */
        assert_true(c[k].end == w[wi - 1].end);    /* last word's end */
        if (w[first].seg != w[wi - 1].seg)
            *spans_segments = true;
    }
    assert_int_equal(wi, n); /* every word in exactly one cue, in order */
}

static void test_per_segment(void **state) {
    (void)state;
    asr_cue_t *c = NULL;
    int n = asr_subtitle_cues(WORDS, N_WORDS, NULL, &c);
    assert_int_equal(n, 2);
    assert_string_equal(c[0].text, "And so my fellow Americans, ask not");
    assert_string_equal(c[1].text, "what your country can do for you.");
    assert_true(c[0].start == 0.0 && c[0].end == 4.0 && c[1].start == 4.5 && c[1].end == 7.0);
    asr_subtitle_cues_free(c, n);
}

static void test_max_line_width(void **state) {
    (void)state;
    for (int width = 6; width <= 40; width += 2) {
        asr_subtitle_opts_t o = {.max_line_width = width};
        asr_cue_t *c = NULL;
        int n = asr_subtitle_cues(WORDS, N_WORDS, &o, &c);
        int mw, ml, mwords;
        bool spans;
        check_cues(WORDS, N_WORDS, c, n, &mw, &ml, &mwords, &spans);
        /* a word longer than the width ("Americans,": 10) stands alone on its line */
        assert_true(mw <= (width > 10 ? width : 10));
        assert_false(spans);    /* segments stay cues */
        assert_int_equal(n, 2); /* lines wrap inside a segment's cue */
        asr_subtitle_cues_free(c, n);
    }
    asr_subtitle_opts_t o = {.max_line_width = 20};
    asr_cue_t *c = NULL;
    int n = asr_subtitle_cues(WORDS, N_WORDS, &o, &c);
    assert_string_equal(c[0].text, "And so my fellow\nAmericans, ask not");
    asr_subtitle_cues_free(c, n);
}

static void test_width_and_line_count(void **state) {
    (void)state;
    asr_subtitle_opts_t o = {.max_line_width = 12, .max_line_count = 2};
    asr_cue_t *c = NULL;
    int n = asr_subtitle_cues(WORDS, N_WORDS, &o, &c);
    int mw, ml, mwords;
    bool spans;
    check_cues(WORDS, N_WORDS, c, n, &mw, &ml, &mwords, &spans);
    assert_true(mw <= 12);
    assert_true(ml <= 2);
    assert_true(n >= 4);
    /* lines flow across segments: "not" (segment 0) and "what" (segment 1) share a cue */
    assert_true(spans);
    asr_subtitle_cues_free(c, n);

    /* a pause over 3 s starts a new cue even with room left */
    asr_sub_word_t w[3] = {{" a", 0, 1, 0}, {" b", 1, 2, 0}, {" c", 5.5, 6, 0}};
    asr_subtitle_opts_t o2 = {.max_line_width = 40, .max_line_count = 3};
    n = asr_subtitle_cues(w, 3, &o2, &c);
    assert_int_equal(n, 2);
    assert_string_equal(c[0].text, "a b");
    assert_string_equal(c[1].text, "c");
    asr_subtitle_cues_free(c, n);
}

static void test_max_words_per_line(void **state) {
    (void)state;
    asr_subtitle_opts_t o = {.max_words_per_line = 3};
    asr_cue_t *c = NULL;
    int n = asr_subtitle_cues(WORDS, N_WORDS, &o, &c);
    int mw, ml, mwords;
    bool spans;
    check_cues(WORDS, N_WORDS, c, n, &mw, &ml, &mwords, &spans);
    assert_int_equal(mwords, 3);
    assert_int_equal(ml, 1); /* one line per cue */
    assert_false(spans);
    assert_int_equal(n, 3 + 3); /* each segment's 7 words: 3 + 3 + 1 */
    asr_subtitle_cues_free(c, n);

    asr_subtitle_opts_t o2 = {.max_words_per_line = 2, .max_line_count = 2};
    n = asr_subtitle_cues(WORDS, N_WORDS, &o2, &c);
    check_cues(WORDS, N_WORDS, c, n, &mw, &ml, &mwords, &spans);
    assert_int_equal(mwords, 2);
    assert_int_equal(ml, 2);
    assert_false(spans); /* without a width, segments stay cue boundaries */
    assert_string_equal(c[0].text, "And so\nmy fellow");
    asr_subtitle_cues_free(c, n);
}

static void test_cjk_width(void **state) {
    (void)state;
    asr_subtitle_opts_t o = {.max_line_width = 4};
    asr_cue_t *c = NULL;
    int n = asr_subtitle_cues(ZH, 8, &o, &c);
    assert_int_equal(n, 1);
    /* characters, not bytes; the space Whisper put before 房 is kept inside a line */
    assert_string_equal(c[0].text, "广州市\n房地产中\n介");
    asr_subtitle_cues_free(c, n);
}

static void test_highlight(void **state) {
    (void)state;
    asr_subtitle_opts_t o = {.max_words_per_line = 7, .highlight_words = true};
    asr_cue_t *c = NULL;
    int n = asr_subtitle_cues(WORDS, 7, &o, &c);
    /* 7 word cues plus the gap 2.2 .. 3.0 before "ask" */
    assert_int_equal(n, 8);
    assert_string_equal(c[0].text, "<u>And</u> so my fellow Americans, ask not");
    assert_string_equal(c[4].text, "And so my fellow <u>Americans,</u> ask not");
    assert_string_equal(c[5].text, "And so my fellow Americans, ask not");
    assert_true(c[5].start == 2.2 && c[5].end == 3.0);
    assert_string_equal(c[6].text, "And so my fellow Americans, <u>ask</u> not");
    assert_true(c[6].start == 3.0 && c[6].end == 3.4);
    asr_subtitle_cues_free(c, n);
}

static void test_empty_words_and_opts(void **state) {
    (void)state;
    asr_sub_word_t w[3] = {{"", 0, 1, 0}, {" ", 1, 2, 0}, {" x", 2, 3, 0}};
    asr_cue_t *c = NULL;
    int n = asr_subtitle_cues(w, 3, NULL, &c);
    assert_int_equal(n, 1);
    assert_true(c[0].start == 2.0);
    asr_subtitle_cues_free(c, n);
    n = asr_subtitle_cues(w, 0, NULL, &c);
    assert_int_equal(n, 0);
    asr_subtitle_cues_free(c, n);
    asr_subtitle_opts_t o = {0};
    assert_false(asr_subtitle_opts_active(NULL));
    assert_false(asr_subtitle_opts_active(&o));
    o.max_line_count = 1;
    assert_true(asr_subtitle_opts_active(&o));
}

static void test_srt_vtt_syntax(void **state) {
    (void)state;
    char a[] = "first line\nsecond", b[] = "b";
    asr_cue_t c[2] = {{0.0, 1.5, a}, {3661.2344, 3662.0006, b}};
    asr_buf_t out;
    asr_buf_init(&out);
    asr_subtitle_write(c, 2, ASR_FMT_SRT, &out);
    assert_string_equal(out.data, "1\n00:00:00,000 --> 00:00:01,500\nfirst line\nsecond\n\n"
                                  "2\n01:01:01,234 --> 01:01:02,001\nb\n\n");
    out.len = 0;
    asr_subtitle_write(c, 2, ASR_FMT_VTT, &out);
    assert_string_equal(out.data, "WEBVTT\n\n00:00:00.000 --> 00:00:01.500\nfirst line\nsecond\n\n"
                                  "01:01:01.234 --> 01:01:02.001\nb\n\n");
    asr_buf_free(&out);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_per_segment),
        cmocka_unit_test(test_max_line_width),
        cmocka_unit_test(test_width_and_line_count),
        cmocka_unit_test(test_max_words_per_line),
        cmocka_unit_test(test_cjk_width),
        cmocka_unit_test(test_highlight),
        cmocka_unit_test(test_empty_words_and_opts),
        cmocka_unit_test(test_srt_vtt_syntax),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
