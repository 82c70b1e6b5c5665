/* svc: the one local-transcription service. A request (model, task, language, decoding options)
 * is validated and normalized here, once, whatever carried it (an HTTP form, a job's options
 * JSON, Test connection); it runs as a job of the scheduler (sched.h) on an audio file, and ends
 * in a result (the engine's segments and words, the language, the duration, the model that
 * served) or in an error whose HTTP status and retryability come from one table
 * (asr_svc_err_http_status, asr_svc_err_retryable). The HTTP handler, the jobs' local transcriber
 * and the router's local runner all call this module; none of them talks to the scheduler.
 *
 * Rules it enforces (docs/API.md, "One service"):
 * - a value out of range is ASR_ERR_INVALID (HTTP 400) naming the option; nothing is clamped;
 * - a backend row's model_name replaces the client's model (asr_svc_request_finish's
 *   `override`), as remote backends do;
 * - busy, out of memory and shutting down are retryable (503); a model that cannot be loaded, bad
 *   audio and invalid requests are not.
 *
 * Thread-safety: asr_svc_t is immutable after create and may be shared by every thread. A call
 * (asr_svc_call_t) is used by one waiting thread while the scheduler's worker runs it; the hooks
 * run on that worker. */
#ifndef ASR_SVC_H
#define ASR_SVC_H

#include <jansson.h>
#include <stdbool.h>

#include "asr/engine.h"
#include "sched/sched.h"

typedef struct asr_svc asr_svc_t;
typedef struct asr_svc_call asr_svc_call_t;

/* ---- the service ---- */

typedef struct {
    asr_sched_t *sched;             /* borrowed; must outlive the service */
    int beam_size;                  /* default beam_size (1..8) */
    bool vad;                       /* default vad_filter */
    int max_audio_seconds;          /* longer audio ends the call with 413; <= 0: no limit */
    const char *model_aliases;      /* "alias=model,alias2" (config model_aliases); NULL = none */
    asr_zh_script_t chinese_script; /* config chinese_script: for requests that say no script */
} asr_svc_params_t;

/* Creates the service. Fails (ASR_ERR_INVALID, a reason in errbuf) when an alias names a model
 * that is not loaded, or is itself a model id. *out is owned by the caller (asr_svc_destroy). */
asr_err_t asr_svc_create(const asr_svc_params_t *p, asr_svc_t **out, char *errbuf,
                         size_t errbuf_len);
/* NULL-safe. Calls must be over. */
void asr_svc_destroy(asr_svc_t *svc);
asr_sched_t *asr_svc_sched(const asr_svc_t *svc);
/* A model id or alias -> scheduler index; NULL or "" -> 0 (the default model); -1 when unknown. */
int asr_svc_resolve_model(const asr_svc_t *svc, const char *name);
/* The aliases, for /v1/models: alias k's name (borrowed until destroy) and target index. */
int asr_svc_n_aliases(const asr_svc_t *svc);
const char *asr_svc_alias(const asr_svc_t *svc, int k, int *target);

/* ---- errors: one mapping ---- */

/* A failure. `code` says what kind (ASR_OK: none); the rest is for the answer. */
typedef struct {
    asr_err_t code;
    char param[48];  /* the option or part at fault ("beam_size", "file", "model"); "" = none */
    int retry_after; /* seconds, a hint for 503s the scheduler decided; 0 = none */
    char message[400];
} asr_svc_error_t;

/* The HTTP status of an error code: INVALID and AUDIO 400, NOT_FOUND 404, UNSUPPORTED 413 (audio
 * too long), CANCELLED 499, BUSY/NOMEM/AGAIN/GPU/TIMEOUT 503, MODEL and the rest 500; ASR_OK 200.
 */
int asr_svc_err_http_status(asr_err_t code);
/* Whether trying the same request again later may succeed: BUSY, NOMEM, AGAIN (shutting down),
 * GPU and TIMEOUT are; a model that fails to load, bad audio and bad requests are not. */
bool asr_svc_err_retryable(asr_err_t code);
/* OpenAI's error "code" string for it ("invalid_value", "model_not_found", "invalid_audio",
 * "audio_too_long", "server_is_overloaded", "shutting_down", "model_load_failed",
 * "transcription_failed"); NULL for ASR_OK and CANCELLED. Static. */
const char *asr_svc_err_code(asr_err_t code);

/* ---- the request ---- */

/* A validated request. Strings are owned (asr_svc_request_clear). Fill it with
 * asr_svc_request_init, then asr_svc_option (or asr_svc_options_json), then
 * asr_svc_request_finish; only a finished request may run. */
typedef struct {
    char *model_name;     /* as the client named it; NULL = the default model */
    int model;            /* scheduler index, set by asr_svc_request_finish */
    const char *model_id; /* its id (static until the service is destroyed) */
    bool translate;
    char *language;    /* as given (regional forms carry a script); NULL = detect */
    char *prompt;      /* initial prompt; NULL = none */
    char *hotwords;    /* NULL = none */
    float temperature; /* > 0: that temperature only; 0: the fallback schedule */
    int beam_size;     /* 1..8 */
    bool word_timestamps;
    bool vad;
    /* after finish: the script the engine gets (asr_svc_chinese_script) */
    asr_zh_script_t chinese_script;
    bool chinese_script_set; /* the request named one (auto included) */
    double keep_alive_s;     /* ASR_SCHED_KEEP_ALIVE_DEFAULT, -1 (forever) or seconds */
    bool allow_fallback;
    int max_audio_seconds; /* longer audio ends the call with 413; <= 0: no limit. Default: the
                              service's; recordings (jobs) have their own size limit instead */
    bool finished;         /* asr_svc_request_finish succeeded */
} asr_svc_request_t;

/* The server's defaults (beam_size, vad_filter; word timestamps on). */
void asr_svc_request_init(const asr_svc_t *svc, asr_svc_request_t *rq);
void asr_svc_request_clear(asr_svc_request_t *rq);

/* Sets option `name` from a form field's text (`text`, json NULL) or a JSON value (`json`, text
 * NULL; JSON null leaves the default). The one validation of every option: model, language, task
 * (transcribe|translate), prompt, hotwords (strings), temperature (0..1), beam_size (integer
 * 1..8), word_timestamps, vad_filter, fallback (booleans: true/false, 1/0 in forms),
 * chinese_script (auto|simplified|traditional), keep_alive (seconds, or 30s/5m/1h; -1 = forever).
 * Returns ASR_OK, ASR_ERR_NOT_FOUND when `name` is not an option (err untouched), or
 * ASR_ERR_INVALID with err filled (param = the option). */
asr_err_t asr_svc_option(asr_svc_request_t *rq, const char *name, const char *text,
                         const json_t *json, asr_svc_error_t *err);
/* Sets every member of `opts` (a JSON object; NULL = none) with asr_svc_option. A member that is
 * not an option is an error unless its name is in `extra` (NULL-terminated; may be NULL). */
asr_err_t asr_svc_options_json(asr_svc_request_t *rq, const json_t *opts, const char *const *extra,
                               asr_svc_error_t *err);
/* Resolves the model (`override`, a backend row's model_name, wins over rq->model_name when set),
 * checks what depends on it (asr_svc_check_model_language) and settles the Chinese script
 * (asr_svc_chinese_script, with the service's default). Returns ASR_OK, ASR_ERR_NOT_FOUND (404,
 * param "model") or ASR_ERR_INVALID. */
asr_err_t asr_svc_request_finish(const asr_svc_t *svc, asr_svc_request_t *rq, const char *override,
                                 asr_svc_error_t *err);

/* The rule for English-only models (`multilingual` false), the same for HTTP, jobs and the CLI:
 * they cannot translate (param "model") and transcribe no language but English (param
 * "language", the message naming the model and the language). `language` may be NULL (detect:
 * an English-only model always writes English). ASR_OK or ASR_ERR_INVALID with err filled. */
asr_err_t asr_svc_check_model_language(const char *model_id, bool multilingual, bool translate,
                                       const char *language, asr_svc_error_t *err);

/* "auto", "simplified" or "traditional" -> the script; -1 for anything else. */
int asr_svc_zh_script_parse(const char *s);

/* The Chinese script the engine is given, by precedence: the request's own chinese_script
 * (`set`: `asked`, auto included); else the script a regional language tag implies (zh-TW,
 * zh-HK, zh-MO, zh-Hant: traditional; zh-CN, zh-SG, zh-Hans: simplified; left to the engine as
 * AUTO); else `dflt`, the server's setting, which also covers a detected Chinese. `dflt` gives
 * way to AUTO when asrd was built without OpenCC, so that a default never fails a request. */
asr_zh_script_t asr_svc_chinese_script(bool set, asr_zh_script_t asked, const char *language,
                                       asr_zh_script_t dflt);

/* ---- running ---- */

/* What a successful call produced, for result_cb. */
typedef struct {
    const char *model;    /* id of the model that served (may differ after a fallback); static */
    const char *device;   /* where it ran: "cuda:0", "host" or "cpu" (X-Asrd-Device); static */
    const char *language; /* code of the language transcribed (detected or given) */
    double duration_s;    /* seconds of audio */
    double proc_s;        /* seconds the transcription took */
    int n_segments;
    const asr_stream_t *stream; /* segments and words: borrowed during result_cb only */
} asr_svc_result_t;

/* Callbacks of a call; each takes user_data. May be NULL. */
typedef struct {
    /* worker thread, once per final segment (streaming). */
    void (*segment_cb)(const asr_segment_t *seg, void *user_data);
    /* worker thread: fraction of the audio done. */
    void (*progress_cb)(double fraction, void *user_data);
    /* worker thread, once, on success, before the call is finished: render the result here. */
    void (*result_cb)(const asr_svc_result_t *res, void *user_data);
    /* asr_svc_run's waiting thread, every 0.2 s: true cancels the call. */
    bool (*cancel_cb)(void *user_data);
    /* any thread, once, after the call has ended (also when it was cancelled or the caller
     * released it): no hook runs after it; for dropping what the hooks' user_data holds. */
    void (*done_cb)(void *user_data);
    void *user_data;
} asr_svc_hooks_t;

/* Starts `rq` (finished; copied) on the audio file `path` (borrowed until the call ends). On
 * refusal (queue full, no memory, shutting down) returns the error with err filled and calls no
 * hook; otherwise *out is the call, owned by the caller (asr_svc_call_release). */
asr_err_t asr_svc_start(asr_svc_t *svc, const asr_svc_request_t *rq, const char *path,
                        const asr_svc_hooks_t *hooks, asr_svc_call_t **out, asr_svc_error_t *err);
/* Waits at most `seconds` for the call to end or for a new segment; true once it has ended. */
bool asr_svc_call_wait(asr_svc_call_t *c, double seconds);
/* Cancels the call (queued: removed; running: stopped at the engine's next check). The outcome is
 * then ASR_ERR_CANCELLED. */
void asr_svc_call_cancel(asr_svc_call_t *c);
/* The outcome of an ended call: ASR_OK, or the error (err filled). */
asr_err_t asr_svc_call_outcome(asr_svc_call_t *c, asr_svc_error_t *err);
/* Drops the caller's reference (a running call finishes on its own). NULL-safe. */
void asr_svc_call_release(asr_svc_call_t *c);

/* Runs `rq` on `path` and waits (polling hooks->cancel_cb): start, wait, outcome, release. */
asr_err_t asr_svc_run(asr_svc_t *svc, const asr_svc_request_t *rq, const char *path,
                      const asr_svc_hooks_t *hooks, asr_svc_error_t *err);

/* Sets err (code, param (NULL = none), printf message) and returns code. */
asr_err_t asr_svc_fail(asr_svc_error_t *err, asr_err_t code, const char *param, const char *fmt,
                       ...) __attribute__((format(printf, 4, 5)));

#endif
