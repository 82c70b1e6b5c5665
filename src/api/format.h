/* api: transcript output formats (txt, json, verbose_json, srt, vtt) from engine segments. The
 * same writers serve the HTTP API later. */
#ifndef ASR_API_FORMAT_H
#define ASR_API_FORMAT_H

#include "asr/engine.h"
#include "core/core.h"

typedef enum {
    ASR_FMT_TXT,
    ASR_FMT_JSON,
    ASR_FMT_VERBOSE_JSON,
    ASR_FMT_SRT,
    ASR_FMT_VTT
} asr_format_t;

/* Parses "txt"|"text"|"json"|"verbose_json"|"srt"|"vtt"; returns -1 if unknown. */
int asr_format_parse(const char *s);
/* Appends the transcript of `stream` (after a successful transcribe) in `fmt` to `out`.
 * `task` is "transcribe" or "translate". */
void asr_format_write(const asr_stream_t *stream, asr_format_t fmt, const char *task,
                      asr_buf_t *out);

/* ---- subtitles cut per word (srt, vtt) ---- */

/* Limits for cutting srt/vtt cues from word timestamps, as whisper's CLI options; 0 = no limit.
 * Lines wrap before a word that would make them longer than max_line_width characters (code
 * points, the word's leading space included) or give them more than max_words_per_line words. A
 * cue holds at most max_line_count lines; without it, a cue holds a segment's lines (with
 * max_line_width) or one line (with only max_words_per_line). Cues never span segments, except
 * with max_line_width and max_line_count together, where lines flow across segments and a pause
 * over 3 s between words starts a new cue (whisper's writer). */
typedef struct {
    int max_line_width;
    int max_line_count;
    int max_words_per_line;
    bool highlight_words; /* each word's span becomes a cue with that word underlined (<u>) */
} asr_subtitle_opts_t;

/* One word for asr_subtitle_cues. */
typedef struct {
    const char *text; /* with Whisper's leading space (none for CJK); borrowed */
    double start, end;
    int seg; /* index of its segment */
} asr_sub_word_t;

/* One cue: times in seconds, lines joined by '\n'. */
typedef struct {
    double start, end;
    char *text; /* owned by the array (asr_subtitle_cues_free) */
} asr_cue_t;

/* True when `o` is non-NULL and sets any limit or highlighting (word timestamps are needed). */
bool asr_subtitle_opts_active(const asr_subtitle_opts_t *o);
/* Cuts words[0..n) (borrowed) into cues under `o`: a cue starts at its first word's start and
 * ends at its last word's end. Words with empty text are skipped. Returns the number of cues and
 * sets *out to a malloc'd array owned by the caller (asr_subtitle_cues_free), NULL when 0. */
int asr_subtitle_cues(const asr_sub_word_t *words, int n, const asr_subtitle_opts_t *o,
                      asr_cue_t **out);
void asr_subtitle_cues_free(asr_cue_t *cues, int n);
/* Appends cues as `fmt` (ASR_FMT_SRT or ASR_FMT_VTT; "WEBVTT" header included). Times are
 * rounded to milliseconds. */
void asr_subtitle_write(const asr_cue_t *cues, int n, asr_format_t fmt, asr_buf_t *out);
/* Appends the transcript of `stream` as srt/vtt cut per word under `o` (segments without words
 * stay whole cues). With o inactive this is asr_format_write's srt/vtt. */
void asr_format_write_subtitles(const asr_stream_t *stream, asr_format_t fmt,
                                const asr_subtitle_opts_t *o, asr_buf_t *out);

/* ---- OpenAI API responses (added for the HTTP server; the CLI keeps asr_format_write) ---- */

typedef struct {
    const char *task; /* "transcribe" or "translate" (verbose "language" is then "english") */
    bool segments;    /* verbose_json: include "segments" */
    bool words;       /* verbose_json: include "words" ({word, start, end}, flattened) */
    bool usage;       /* json, verbose_json: include "usage" {type: "duration", seconds} */
    const asr_subtitle_opts_t *subtitles; /* srt, vtt: cut per word (NULL: per segment) */
    const char *model; /* verbose_json: "model", the model that served (NULL: omitted) */
} asr_format_api_opts_t;

/* Appends the transcript of `stream` as OpenAI's API returns it: json = {"text", "usage"},
 * verbose_json = {"task", "language", "language_probability"?, "language_probs"?, "duration",
 * "text", "segments"?, "words"?, "usage"} (the probabilities for transcriptions only;
 * language_probs, the top 5 code -> probability, only when the language was detected),
 * text = the whole text and a newline, srt and vtt as asr_format_write. Invalid UTF-8 in model
 * output is replaced by U+FFFD. */
void asr_format_write_api(const asr_stream_t *stream, asr_format_t fmt,
                          const asr_format_api_opts_t *opts, asr_buf_t *out);
/* Billed seconds of `duration` (OpenAI's usage.seconds): rounded up to a whole second. */
long asr_format_usage_seconds(double duration);
/* Appends the SSE event `data: {"type":"transcript.text.delta","delta":TEXT}` (and a blank
 * line). `text` need not be NUL-terminated. */
void asr_format_sse_delta(asr_buf_t *out, const char *text, size_t len);
/* Appends `data: {"type":"transcript.text.done","text":TEXT,"usage":{...}}`. */
void asr_format_sse_done(asr_buf_t *out, const char *text, size_t len, double duration);
/* Copies `s` into `out` with every invalid UTF-8 sequence replaced by U+FFFD. */
void asr_format_utf8_sanitize(const char *s, size_t len, asr_buf_t *out);

#endif
