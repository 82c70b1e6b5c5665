/* asrd engine public C API: Whisper inference on CTranslate2 model directories.
 *
 * Objects:
 *   asr_model_t   immutable weights + tokenizer, shared read-only by any number of streams/threads.
 *   asr_stream_t  per-stream decoding state (scratch buffers, KV caches, results); one thread at a
 * time.
 *
 * Ownership: every pointer returned by a getter is borrowed and valid until the next mutating call
 * on the same object or its destroy. Every destroy function accepts NULL.
 */
#ifndef ASR_ENGINE_H
#define ASR_ENGINE_H

#include <stdint.h>
#include "asr/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct asr_model asr_model_t;
typedef struct asr_stream asr_stream_t;

typedef enum { ASR_TASK_TRANSCRIBE = 0, ASR_TASK_TRANSLATE = 1 } asr_task_t;

/* Model loading parameters (by value; start from asr_model_default_params()). */
typedef struct {
    const char *compute_type; /* "float32" (default) or "auto"; borrowed during the call */
    int n_threads;            /* threads for kernels; 0 = all cores */
} asr_model_params_t;

/* Model dimensions as read from the model file. */
typedef struct {
    int n_mels;        /* 80 or 128 */
    int n_vocab;       /* 51864 (.en), 51865, 51866 (v3) */
    int d_model;       /* width */
    int n_audio_layer; /* encoder layers */
    int n_text_layer;  /* decoder layers */
    int n_audio_head;  /* encoder heads */
    int n_text_head;   /* decoder heads */
    int n_audio_ctx;   /* 1500 */
    int n_text_ctx;    /* 448 */
    bool multilingual;
    int n_languages;
} asr_model_info_t;

/* One transcript segment. Strings and arrays are owned by the stream. */
typedef struct {
    int id;
    int seek;              /* mel frame (10 ms units) of the window start */
    double start, end;     /* seconds */
    const char *text;      /* UTF-8, leading space as Whisper emits it */
    const int32_t *tokens; /* [n_tokens] token ids including timestamps */
    int n_tokens;
    float temperature;
    float avg_logprob;
    float compression_ratio;
    float no_speech_prob;
} asr_segment_t;

/* Called for each new segment as soon as it is final. `seg` is borrowed for the call. */
typedef void (*asr_segment_cb)(const asr_segment_t *seg, void *user_data);
/* Called with the fraction of audio processed (0..1). */
typedef void (*asr_progress_cb)(double fraction, void *user_data);
/* Return true to abort decoding as soon as possible (result: ASR_ERR_CANCELLED). */
typedef bool (*asr_abort_cb)(void *user_data);

/* Voice activity detection parameters (Silero VAD, as faster-whisper's VadOptions). */
typedef struct {
    float threshold;    /* speech probability threshold, 0.5 */
    int min_speech_ms;  /* drop speech shorter than this, 250 */
    float max_speech_s; /* split speech longer than this, 30 (capped at 30) */
    int min_silence_ms; /* silence needed to end speech, 2000 (faster-whisper) */
    int speech_pad_ms;  /* padding added on each side, 400 */
} asr_vad_params_t;

#define ASR_MAX_TEMPERATURES 8

/* Decoding parameters (by value; start from asr_transcribe_default_params(), whose values equal
 * faster-whisper's transcribe() defaults). */
typedef struct {
    asr_task_t task;
    const char *language;       /* ISO-639-1 code, name or regional form; NULL/"" to detect;
                                   borrowed during the call */
    const char *initial_prompt; /* optional text; borrowed during the call */
    const char *hotwords;       /* optional text; borrowed during the call */
    int beam_size;              /* 5; 1 = greedy */
    int best_of;                /* 5: samples per temperature > 0 */
    float patience;             /* 1.0 */
    float length_penalty;       /* 1.0 */
    float temperatures[ASR_MAX_TEMPERATURES]; /* fallback schedule: 0, .2, .4, .6, .8, 1 */
    int n_temperatures;                       /* 6; 1 = no fallback */
    float temperature;                        /* deprecated alias: used when n_temperatures == 0 */
    float prompt_reset_on_temperature;        /* 0.5 */
    bool condition_on_previous_text;
    bool without_timestamps;
    bool word_timestamps;
    bool suppress_blank;
    float no_speech_threshold;         /* 0.6 */
    float logprob_threshold;           /* -1.0 */
    float compression_ratio_threshold; /* 2.4 */
    float max_initial_timestamp;       /* 1.0 s */
    int max_new_tokens;                /* 0 = up to the model's limit (224) */
    bool vad_filter;
    asr_vad_params_t vad;
    bool skip_silent_windows; /* true: 30-s windows where the VAD finds no speech at all are not
                                 decoded (no hallucinated text on silence, noise or tones) */
    uint64_t seed;            /* sampling seed for temperatures > 0 */
    int n_threads;            /* 0 = the model's default */
    asr_segment_cb segment_cb;
    void *segment_cb_user_data;
    asr_progress_cb progress_cb;
    void *progress_cb_user_data;
    asr_abort_cb abort_cb;
    void *abort_cb_user_data;
} asr_transcribe_params_t;

/* One word with its time span (word_timestamps). Strings are owned by the stream. */
typedef struct {
    const char *word; /* UTF-8, with its leading space as Whisper emits it */
    double start, end;
    float probability;
} asr_word_t;

ASR_API asr_model_params_t asr_model_default_params(void);
ASR_API asr_transcribe_params_t asr_transcribe_default_params(void);

/* Loads a CTranslate2 Whisper model directory. On failure returns an error and, if `errbuf` is
 * non-NULL, writes a one-line reason into it. *out is owned by the caller (asr_model_destroy). */
ASR_API asr_err_t asr_model_load(const char *dir, const asr_model_params_t *params,
                                 asr_model_t **out, char *errbuf, size_t errbuf_len);
ASR_API void asr_model_destroy(asr_model_t *model);
ASR_API const asr_model_info_t *asr_model_info(const asr_model_t *model);
/* Bytes of weights held in memory. */
ASR_API size_t asr_model_weight_bytes(const asr_model_t *model);

/* Creates per-stream state for `model` (borrowed: must outlive the stream). */
ASR_API asr_err_t asr_stream_create(const asr_model_t *model, asr_stream_t **out);
ASR_API void asr_stream_destroy(asr_stream_t *stream);

/* Transcribes 16 kHz mono float PCM in [-1, 1]. `pcm` is borrowed during the call. Previous
 * results of the stream are discarded. */
ASR_API asr_err_t asr_stream_transcribe(asr_stream_t *stream, const float *pcm, size_t n_samples,
                                        const asr_transcribe_params_t *params);

/* A pull source of 16 kHz mono float PCM that can restart from the beginning. The engine reads a
 * source more than once (a first pass finds the loudness maximum the front end normalises by, as
 * the reference implementation does over the whole file), and holds at most ~31 s of samples, so
 * memory does not grow with the audio's length. */
typedef struct {
    /* Reads up to n samples into buf; *n_read = 0 at the end. */
    asr_err_t (*read)(void *user_data, float *buf, size_t n, size_t *n_read);
    /* Restarts from the first sample. */
    asr_err_t (*rewind)(void *user_data);
    void *user_data;
} asr_pcm_source_t;

/* Transcribes a streamed source (borrowed during the call) in flat memory. */
ASR_API asr_err_t asr_stream_transcribe_source(asr_stream_t *stream, const asr_pcm_source_t *src,
                                               const asr_transcribe_params_t *params);

ASR_API int asr_stream_n_segments(const asr_stream_t *stream);
ASR_API const asr_segment_t *asr_stream_segment(const asr_stream_t *stream, int i);
/* Words of segment `seg` (only with params.word_timestamps; otherwise 0). */
ASR_API int asr_stream_n_words(const asr_stream_t *stream, int seg);
ASR_API const asr_word_t *asr_stream_word(const asr_stream_t *stream, int seg, int i);
/* Detected or forced language code ("en"), and its probability (1.0 when forced). */
ASR_API const char *asr_stream_language(const asr_stream_t *stream);
ASR_API float asr_stream_language_prob(const asr_stream_t *stream);
/* Audio duration in seconds of the last transcription. */
ASR_API double asr_stream_duration(const asr_stream_t *stream);
/* One-line reason for the last failure on this stream. */
ASR_API const char *asr_stream_errmsg(const asr_stream_t *stream);

/* English name of a language code ("zh" -> "chinese"), or NULL if unknown. Static string. */
ASR_API const char *asr_lang_name(const char *code);

/* Debug/test hooks: log-mel of the whole input [n_mels][*n_frames] (caller frees with free()),
 * and the encoder output for one 30-s window of mel [1500][d_model]. */
ASR_API asr_err_t asr_engine_log_mel(const asr_model_t *model, const float *pcm, size_t n_samples,
                                     float **out_mel, int *out_n_frames);
ASR_API asr_err_t asr_stream_encode(asr_stream_t *stream, const float *mel_window,
                                    const float **out_enc);

#ifdef __cplusplus
}
#endif
#endif
