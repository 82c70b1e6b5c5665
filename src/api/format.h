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

#endif
