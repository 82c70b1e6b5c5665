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

/* ---- OpenAI API responses (added for the HTTP server; the CLI keeps asr_format_write) ---- */

typedef struct {
    const char *task; /* "transcribe" or "translate" (verbose "language" is then "english") */
    bool segments;    /* verbose_json: include "segments" */
    bool words;       /* verbose_json: include "words" ({word, start, end}, flattened) */
    bool usage;       /* json, verbose_json: include "usage" {type: "duration", seconds} */
} asr_format_api_opts_t;

/* Appends the transcript of `stream` as OpenAI's API returns it: json = {"text", "usage"},
 * verbose_json = {"task", "language", "duration", "text", "segments"?, "words"?, "usage"},
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
