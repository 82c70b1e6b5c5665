/* format: transcript output formats (txt, json, verbose_json, srt, vtt), their names and content
 * types, and the other JSON shapes of OpenAI's API (usage, SSE events, the error object). It sits
 * below api, jobs and cli, which all render through it.
 *
 * Every transcript is rendered from one struct, asr_transcript_t, filled either from a live
 * engine result (asr_transcript_from_stream) or from the verbose_json document a job stored
 * (asr_transcript_from_json), so a recording's stored transcript and an HTTP or CLI answer are
 * cut by the same writers. Two JSON shapes exist on purpose: whisper's CLI shape (the CLI, and
 * what jobs store: each segment's words with their probabilities) and OpenAI's API shape.
 *
 * Invariants: JSON is built with jansson, so escaping is always right; text from the model that is
 * not valid UTF-8 is replaced by U+FFFD in every API answer; srt/vtt times are rounded to
 * milliseconds. Nothing here holds state: every function is thread-safe on distinct outputs. */
#ifndef ASR_FORMAT_H
#define ASR_FORMAT_H

#include <jansson.h>

#include "asr/engine.h"
#include "core/core.h"

typedef enum {
    ASR_FMT_TXT,
    ASR_FMT_JSON,
    ASR_FMT_VERBOSE_JSON,
    ASR_FMT_SRT,
    ASR_FMT_VTT
} asr_format_t;

/* ---- names and content types ---- */

/* Parses the CLI's and the stored-transcript route's names: "txt"|"text"|"json"|"verbose_json"|
 * "srt"|"vtt"; returns -1 if unknown. */
int asr_format_parse(const char *s);
/* Parses OpenAI's response_format names: "json"|"text"|"srt"|"verbose_json"|"vtt" (not "txt");
 * returns -1 if unknown or NULL. */
int asr_format_parse_api(const char *s);
/* The Content-Type of an answer in `fmt` (a static string): application/json for json and
 * verbose_json, text/vtt for vtt, text/plain (UTF-8) for txt and srt, as OpenAI answers. */
const char *asr_format_content_type(asr_format_t fmt);

/* ---- the transcript ---- */

/* One segment and its words. */
typedef struct {
    asr_segment_t seg;       /* text and tokens borrowed from the source */
    const asr_word_t *words; /* [n_words], into the transcript's storage; strings borrowed */
    int n_words;
} asr_transcript_seg_t;

/* A transcript, from a live result or a stored document. Owned by the caller
 * (asr_transcript_deinit); its strings stay borrowed from the source (the stream, until its next
 * transcription, or the parsed document, kept inside). */
typedef struct {
    const char *language;   /* code ("en"); from a stored document, as stored (often a name) */
    float language_prob;    /* 1 when the language was given */
    asr_lang_prob_t top[5]; /* [n_top] most probable first, only when it was detected */
    int n_top;
    double duration;            /* seconds of audio */
    asr_transcript_seg_t *segs; /* [n_segs] */
    int n_segs;
    asr_word_t *words_store; /* every segment's words, back to back */
    json_t *doc;             /* the stored document the strings point into, or NULL */
} asr_transcript_t;

/* Fills `t` from `stream` after a successful transcription (`stream` borrowed meanwhile). */
void asr_transcript_from_stream(asr_transcript_t *t, const asr_stream_t *stream);
/* Fills `t` from a stored verbose_json document (either shape; a segment's words are its
 * "words" array when it has one). Returns ASR_ERR_INVALID (t then empty) when `json` is not a
 * JSON object. */
asr_err_t asr_transcript_from_json(asr_transcript_t *t, const char *json, size_t len);
/* Frees what `t` owns. NULL-safe; `t` is left empty. */
void asr_transcript_deinit(asr_transcript_t *t);

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
/* Appends `t` as srt/vtt cut per word under `o` (NULL or inactive: one cue per segment;
 * segments without words stay whole cues). */
void asr_transcript_write_subtitles(const asr_transcript_t *t, asr_format_t fmt,
                                    const asr_subtitle_opts_t *o, asr_buf_t *out);

/* ---- rendering ---- */

/* Appends `t` in `fmt` in whisper's CLI shapes: txt = one stripped line per segment; json =
 * {"text"}; verbose_json = {"task", "language" (name), "language_probability",
 * "language_probs"?, "duration", "text", "segments" (each with its "words" and their
 * "probability"), "words"?}; srt/vtt cut under `subs` (may be NULL). `task` is "transcribe" or
 * "translate". This is also what jobs store. */
void asr_transcript_write(const asr_transcript_t *t, asr_format_t fmt, const char *task,
                          const asr_subtitle_opts_t *subs, asr_buf_t *out);

typedef struct {
    const char *task; /* "transcribe" or "translate" (verbose "language" is then "english") */
    bool segments;    /* verbose_json: include "segments" */
    bool words;       /* verbose_json: include "words" ({word, start, end}, flattened) */
    bool usage;       /* json, verbose_json: include "usage" {type: "duration", seconds} */
    const asr_subtitle_opts_t *subtitles; /* srt, vtt: cut per word (NULL: per segment) */
    const char *model; /* verbose_json: "model", the model that served (NULL: omitted) */
} asr_format_api_opts_t;

/* Appends `t` as OpenAI's API returns it: json = {"text", "usage"?}, verbose_json = {"task",
 * "language", "language_probability"?, "language_probs"?, "duration", "model"?, "text",
 * "segments"?, "words"?, "usage"?} (the probabilities for transcriptions only; language_probs
 * only when the language was detected), text = the whole text and a newline, srt and vtt cut
 * under opts->subtitles. Invalid UTF-8 in model output is replaced by U+FFFD. */
void asr_transcript_write_api(const asr_transcript_t *t, asr_format_t fmt,
                              const asr_format_api_opts_t *opts, asr_buf_t *out);

/* The same for a live result: asr_transcript_from_stream, then the writer above. */
void asr_format_write(const asr_stream_t *stream, asr_format_t fmt, const char *task,
                      asr_buf_t *out);
void asr_format_write_api(const asr_stream_t *stream, asr_format_t fmt,
                          const asr_format_api_opts_t *opts, asr_buf_t *out);

/* Appends a stored transcript (a job's verbose_json, `json` borrowed) in `fmt`: json and
 * verbose_json give the document itself (a backend's own fields kept) and a newline; txt, srt and
 * vtt are rendered as asr_transcript_write renders them. Returns ASR_ERR_INVALID (nothing
 * appended) when `json` is not a JSON object. */
asr_err_t asr_format_write_stored(const char *json, asr_format_t fmt,
                                  const asr_subtitle_opts_t *subs, asr_buf_t *out);

/* ---- other OpenAI shapes ---- */

/* Billed seconds of `duration` (OpenAI's usage.seconds): rounded up to a whole second. */
long asr_format_usage_seconds(double duration);
/* Appends the SSE event `data: {"type":"transcript.text.delta","delta":TEXT}` (and a blank
 * line). `text` need not be NUL-terminated. */
void asr_format_sse_delta(asr_buf_t *out, const char *text, size_t len);
/* Appends `data: {"type":"transcript.text.done","text":TEXT,"usage":{...},"model":MODEL}`;
 * `model` (the model that served; NULL leaves it out) is named here because a stream's
 * X-Asrd-Model header goes out before a fallback may pick another model. */
void asr_format_sse_done(asr_buf_t *out, const char *text, size_t len, double duration,
                         const char *model);

/* OpenAI's error "type" for an HTTP status: invalid_request_error (4xx),
 * service_unavailable_error (503), server_error (other 5xx). */
const char *asr_format_error_type(int status);
/* OpenAI's error document {"error": {"message", "type", "param", "code"}} (a new reference):
 * the type follows `status`; `param` (NULL or "") and `code` (NULL) become JSON null; invalid
 * UTF-8 in `message` or `param` is replaced by U+FFFD. The one place this shape is built. */
json_t *asr_format_error_json(int status, const char *param, const char *code, const char *message);
/* Appends the error document as an HTTP answer's body (and a newline). */
void asr_format_error_write(asr_buf_t *out, int status, const char *param, const char *code,
                            const char *message);
/* Appends the error as an SSE event, `data: {"type":"error","error":{...}}` (and a blank line):
 * how a stream whose 200 is already sent reports a failure. */
void asr_format_sse_error(asr_buf_t *out, int status, const char *param, const char *code,
                          const char *message);

/* Copies `s` into `out` with every invalid UTF-8 sequence replaced by U+FFFD. */
void asr_format_utf8_sanitize(const char *s, size_t len, asr_buf_t *out);
/* A JSON string of s[0..len) with invalid UTF-8 replaced by U+FFFD (a new reference). */
json_t *asr_format_json_string(const char *s, size_t len);

/* ---- corrections and archives (edits.c) ---- */

/* One corrected segment: `segment` indexes the document's "segments"; text borrowed. */
typedef struct {
    int segment;
    const char *text;
} asr_format_edit_t;

/* A stored transcript (`json`, borrowed) with edits[0..n_edits) applied, as a new document in
 * *out (malloc'd, owned by the caller): each edited segment gets the new "text" (with the
 * original's leading space when the edit has none), "original_text" and "edited": true, and loses
 * its "words" (they timed the old text, so srt/vtt keep it as one cue); the top "text" is rebuilt
 * from the segments. Edits naming no segment are ignored. ASR_ERR_INVALID (*out NULL) when json
 * is not a JSON object. */
asr_err_t asr_format_apply_edits(const char *json, const asr_format_edit_t *edits, int n_edits,
                                 char **out);

/* A zip archive of stored (uncompressed) members, built in memory: init, add each member, finish.
 * Names are UTF-8 (flag bit 11) and dated now (UTC); no zip64, so an archive stays under 4 GiB
 * and 65535 members. */
typedef struct {
    asr_buf_t *out;    /* the archive (borrowed) */
    asr_buf_t central; /* central directory records, appended at finish */
    size_t n_entries;
    uint16_t dos_time, dos_date;
} asr_format_zip_t;

void asr_format_zip_init(asr_format_zip_t *z, asr_buf_t *out);
/* Appends a member `name` (1..65535 bytes, no checks on its characters: the caller picks safe
 * names) holding data[0..len). ASR_ERR_INVALID when the archive would outgrow the zip limits. */
asr_err_t asr_format_zip_add(asr_format_zip_t *z, const char *name, const void *data, size_t len);
/* Appends the central directory and its end record; frees z's own memory (z->central, which a
 * caller giving up before finish frees with asr_buf_free). */
void asr_format_zip_finish(asr_format_zip_t *z);

#endif
