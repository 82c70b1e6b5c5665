/* format: private helpers shared by format.c and format_json.c. Nothing outside src/format
 * includes this. */
#ifndef ASR_FORMAT_INT_H
#define ASR_FORMAT_INT_H

#include "format/format.h"

/* Appends `t` without its leading and trailing spaces and newlines. */
void asr__format_append_stripped(asr_buf_t *out, const char *t);
/* Appends the whole text of `t` (its segments' texts joined, then stripped). */
void asr__format_full_text(const asr_transcript_t *t, asr_buf_t *out);
/* json and verbose_json in whisper's CLI shape (asr_transcript_write). */
void asr__format_json_cli(const asr_transcript_t *t, bool verbose, const char *task,
                          asr_buf_t *out);
/* json and verbose_json in OpenAI's shape (asr_transcript_write_api). */
void asr__format_json_api(const asr_transcript_t *t, bool verbose, const asr_format_api_opts_t *o,
                          asr_buf_t *out);

#endif
