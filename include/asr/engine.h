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
    /* "auto" (default: float32 on the CPU, float16 on a GPU), "float32", "bfloat16", "int8"
     * (the CPU's "auto" is the fastest that keeps float32's accuracy on this CPU): the storage
     * of the decoder's matrices (int8: per-row scales,
     * activations quantized per row; the token embedding, also the output projection, stays
     * float16); the encoder computes in float32. Borrowed. */
    const char *compute_type;
    int n_threads; /* threads for kernels; 0 = all cores */
    /* Where the model runs: "cpu" (NULL/"" too), "cuda", "cuda:N", "auto" (CUDA device 0 when
     * one is usable, else the CPU) or "host" (the GPU engine on the host reference device:
     * tests). On a GPU the compute types are "float16" (default; "auto" too), "bfloat16",
     * "int8_float16" ("int8" too) and "float32". Borrowed. */
    const char *device;
    /* GPU: the most windows one batched encoder pass takes and the most streams one batched
     * decoder step takes (their sequences together); 0 = the default (16). */
    int max_batch;
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
    int n_alignment_heads; /* cross-attention heads used for word timestamps */
    /* the file's matrices are float32, int8 or bfloat16, made float32 in memory (false: float16
     * files, whose matrices stay float16: what the official sizes assume) */
    bool f32_matrices;
    /* the file's matrices are quantized blocks (ggml q4_0..q8_0), dequantized to float16 when the
     * file is opened: loading peaks at the float16 size of every matrix */
    bool dequantized;
    char format[16]; /* "ctranslate2", "ggml", "safetensors" ("" for an official size) */
    char note[160];  /* what loading does to the file's tensors, e.g. dequantization ("" none) */
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

/* Script of Chinese output text. Conversion (OpenCC) applies to segment and word texts when the
 * transcript's language is Chinese (zh, yue) and the task is transcribe. */
typedef enum {
    ASR_ZH_SCRIPT_AUTO = 0,    /* as the language tag implies (zh-CN, zh-Hans, zh-SG: simplified;
                                  zh-TW, zh-HK, zh-MO, zh-Hant: traditional), else as decoded */
    ASR_ZH_SCRIPT_SIMPLIFIED,  /* Traditional characters converted to Simplified (t2s) */
    ASR_ZH_SCRIPT_TRADITIONAL, /* Simplified characters converted to Traditional (s2t) */
} asr_zh_script_t;

/* Decoding parameters (by value; start from asr_transcribe_default_params(), whose values equal
 * faster-whisper's transcribe() defaults). */
typedef struct {
    asr_task_t task;
    /* Chinese script of the output: AUTO (default); an explicit script wins over the one a
     * regional language tag implies. Language tags: see asr_lang_code_normalize. */
    asr_zh_script_t chinese_script;
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
/* Where the model runs: "cpu", "cuda:0", "host"; static for the model's life. */
ASR_API const char *asr_model_device(const asr_model_t *model);
/* One line on the device for logs: "cuda:0 NVIDIA H100 80GB HBM3 (sm_90, 79.1 GiB free), float16,
 * max batch 16" or "cpu (avx2+fma+f16c), float32". */
ASR_API const char *asr_model_device_line(const asr_model_t *model);
/* Bytes of weights held in memory (a GPU model: in device memory, the host keeps no copy). */
ASR_API size_t asr_model_weight_bytes(const asr_model_t *model);

/* ---- memory plan ----
 * The exact bytes a model needs, computed from its dimensions before anything is allocated. A
 * "slot" is the state of one transcription in flight (asr_stream_t): it is one arena of
 * `slot - align` bytes, touched at creation so the memory is really there, plus the word-timestamp
 * alignment buffers when those are asked for. */
typedef struct {
    /* inputs */
    int n_seq;                /* sequences decoded in parallel: max(beam_size, best_of) */
    bool word_timestamps;     /* reserve the alignment buffers */
    const char *compute_type; /* canonical ("float32", "bfloat16", "int8"); static */
    /* bytes */
    size_t weights;  /* weights: encoder float32, decoder matrices in the compute type's storage */
    size_t encoder;  /* encoder activations and attention scores of one 30-s window */
    size_t cross_kv; /* cross-attention K/V: 1500 frames x decoder layers */
    size_t self_kv;  /* self-attention K/V (n_text_ctx x n_seq, K and V) beyond the encoder's
                        buffers, which they reuse once a window's cross K/V are computed */
    size_t decoder;  /* decoder activations for a block of n_text_ctx tokens */
    size_t logits;   /* logits and log-probabilities: n_seq x n_vocab */
    size_t frontend; /* audio ring and mel windows */
    size_t align;    /* alignment capture and DTW matrices (word_timestamps only) */
    size_t slot;     /* encoder + cross_kv + self_kv + decoder + logits + frontend + align */
    size_t overhead; /* fixed process overhead: code, libraries, BLAS and I/O buffers, results */
    size_t total;    /* weights + slot + overhead: peak memory of one transcription */
} asr_plan_t;

/* Sequences a default stream's slot holds (faster-whisper's beam_size and best_of). */
#define ASR_DEFAULT_N_SEQ 5
/* Parallel sequences a transcription with these parameters needs (1..8): the largest beam_size
 * (temperature 0) or best_of (temperature > 0) of its temperature schedule. */
ASR_API int asr_transcribe_n_seq(const asr_transcribe_params_t *params);

/* Fixed process overhead the plan counts (bytes): code, libraries, allocator and I/O buffers. */
#define ASR_PLAN_OVERHEAD ((size_t)26 << 20)
/* What FFmpeg's libraries add once an input needs them (anything but 16 kHz mono 16-bit WAV;
 * asrd serve opens them at start). */
#define ASR_PLAN_FFMPEG ((size_t)23 << 20)
#define ASR_PLAN_SERVER_OVERHEAD (ASR_PLAN_OVERHEAD + ASR_PLAN_FFMPEG)

/* Plan for a model of dimensions `dims` decoding n_seq sequences. compute_type: "float32" (or
 * NULL/"auto"/"default"). Returns ASR_ERR_INVALID for impossible dimensions. */
ASR_API asr_err_t asr_plan_compute(const asr_model_info_t *dims, const char *compute_type,
                                   int n_seq, bool word_timestamps, asr_plan_t *out);
/* ---- device memory plan (the GPU memory contract, docs/GPU.md) ----
 * The bytes a model on a device (CUDA, or the host reference device) allocates, from the same
 * layout the GPU engine sizes its arenas with (src/engine/gpu_model.c): a model holds its weights
 * arena, one scratch arena sized from max_batch (the encoder activations of max_batch windows and
 * the decoder activations of max(n_text_ctx, 8 * max_batch) rows share one region; plus the int8
 * dequantization buffer) and, on CUDA, its cuBLAS workspace; each stream (one request in flight)
 * holds one slot arena: cross K/V of 1500 frames, self K/V of its n_seq sequences, the last
 * prompt block's rows. The CUDA context is once per process and device. */
#define ASR_PLAN_GPU_WORKSPACE ((size_t)32 << 20) /* cuBLAS workspace of a CUDA device handle */
#define ASR_PLAN_GPU_CONTEXT                                                                       \
    ((size_t)512 << 20) /* CUDA context and module images, estimated                               \
                           (scripts/device-check.sh measures it) */
typedef struct {
    /* inputs */
    const char *device;       /* "cuda" or "host"; static */
    const char *compute_type; /* canonical GPU compute type ("float16", "bfloat16",
                                 "int8_float16", "float32"); static */
    int max_batch;            /* windows per encoder pass, streams per decoder step */
    int n_seq;                /* sequences of one slot */
    /* device bytes of a model */
    size_t weights;   /* the weights arena */
    size_t encoder;   /* encoder activations of max_batch windows (scratch) */
    size_t decoder;   /* decoder activations, logits rows, alignment scores (scratch) */
    size_t dequant;   /* int8 dequantization buffer (scratch; 0 unless int8) */
    size_t scratch;   /* the scratch arena: max(encoder, decoder) + dequant */
    size_t workspace; /* cuBLAS workspace (CUDA: ASR_PLAN_GPU_WORKSPACE; host: 0) */
    size_t model;     /* weights + scratch + workspace: what loading the model adds */
    /* device bytes of one slot (one stream) */
    size_t cross_kv; /* cross K/V: n_text_layer x 1500 frames x 2 d */
    size_t self_kv;  /* self K/V of n_seq sequences: 2 x n_seq x n_text_layer x n_text_ctx x d */
    size_t last;     /* the last prompt block's rows: n_text_ctx x d */
    size_t slot;     /* the slot arena: cross_kv + self_kv + last (rounded as allocated) */
    /* once per process and device */
    size_t context; /* CUDA: ASR_PLAN_GPU_CONTEXT; host: 0 */
    /* host bytes that stay on the host: pinned staging of the model, per-slot pinned logits
     * and the CPU-side stream state */
    size_t host_model;
    size_t host_slot;
} asr_plan_gpu_t;
/* Plan of a model of dimensions `dims` on a device ("cuda" or "host"; NULL = "cuda") with compute
 * type `compute_type` (a GPU compute type; NULL/"auto": float16 on CUDA, float32 on the host),
 * max_batch (<= 0: the engine's default, 16) and slots of n_seq (1..8) sequences. Total device
 * bytes of k slots: context + model + k * slot. ASR_ERR_INVALID for impossible dimensions or an
 * unknown type. */
ASR_API asr_err_t asr_plan_gpu_compute(const asr_model_info_t *dims, const char *device,
                                       const char *compute_type, int max_batch, int n_seq,
                                       asr_plan_gpu_t *out);
/* A model on a device whose context was lost (a sticky CUDA error, or an injected one): every
 * later call fails with ASR_ERR_GPU until the model is destroyed and loaded again (destroying the
 * last model of a lost device resets the device). False for CPU models. */
ASR_API bool asr_model_device_lost(const asr_model_t *model);

/* Reads the dimensions of a model directory without loading its weights. */
ASR_API asr_err_t asr_model_probe(const char *dir, asr_model_info_t *out, char *errbuf,
                                  size_t errbuf_len);
/* Dimensions of an official Whisper size by name ("tiny", "base.en", "large-v3", "turbo"...), or
 * NULL. Static. */
ASR_API const asr_model_info_t *asr_model_dims_named(const char *name);
/* Names of the official sizes, NULL-terminated. Static. */
ASR_API const char *const *asr_model_named_sizes(void);
/* The canonical name ("float32", "bfloat16", "int8") of a compute type name (auto resolved), or
 * NULL for an unknown one. Static. */
ASR_API const char *asr_compute_type_name(const char *name);
/* The compute type a model was loaded with (canonical name). */
ASR_API const char *asr_model_compute_type(const asr_model_t *model);

/* Creates per-stream state for `model` (borrowed: must outlive the stream), one slot of one
 * sequence. */
ASR_API asr_err_t asr_stream_create(const asr_model_t *model, asr_stream_t **out);
/* Creates a stream whose slot holds n_seq parallel sequences (beam size / best_of): its arena is
 * exactly the plan's slot bytes (without align), allocated and touched here. A transcription that
 * asks for more sequences than the slot holds fails with ASR_ERR_INVALID. */
ASR_API asr_err_t asr_stream_create_slot(const asr_model_t *model, int n_seq, asr_stream_t **out);
/* The stream's arena bytes and the sequences its slot holds. */
ASR_API size_t asr_stream_arena_bytes(const asr_stream_t *stream);
ASR_API int asr_stream_n_seq(const asr_stream_t *stream);
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

/* A language and its probability; `code` is a static string. */
typedef struct {
    const char *code;
    float prob;
} asr_lang_prob_t;

/* The language probabilities of the last detection on this stream (by asr_stream_transcribe* with
 * no language given, or asr_stream_detect_language), most probable first: writes up to `max_out`
 * entries to `out` (caller's array) and returns their number. Returns 0 when the last transcription
 * had its language forced or the model is English-only (nothing was detected). */
ASR_API int asr_stream_language_probs(const asr_stream_t *stream, asr_lang_prob_t *out,
                                      int max_out);

/* Detects the spoken language of 16 kHz mono float PCM without transcribing: one encoder pass and
 * one decoder step over the first 30-s window (samples past 30 s are ignored; the log-mel is
 * normalised over the samples used). `pcm` is borrowed during the call. Writes the top
 * min(max_out, languages) languages, most probable first, to `out` (caller's array; may be NULL
 * when max_out is 0) and their number to *n_out. Afterwards asr_stream_language(),
 * asr_stream_language_prob() and asr_stream_language_probs() describe the detection and previous
 * results of the stream are discarded. An English-only model gives {"en", 1.0}. Returns
 * ASR_ERR_INVALID for an empty input, ASR_ERR_NOMEM. Same threading rule as transcribe. */
ASR_API asr_err_t asr_stream_detect_language(asr_stream_t *stream, const float *pcm,
                                             size_t n_samples, asr_lang_prob_t *out, int max_out,
                                             int *n_out);
/* Where the last transcription's time went: wall seconds summed over its windows. */
typedef struct {
    double total_s;    /* the whole call */
    double scan_s;     /* reading the audio, log-mel, the silence guard's VAD */
    double encode_s;   /* encoder passes (language detection's included) */
    double cross_kv_s; /* cross-attention keys and values of each window */
    double decode_s;   /* decoding: decoder steps, beam search, temperature fallback */
    int n_encodes;     /* encoder passes */
    int n_steps;       /* decoder forward passes (one pass serves every beam) */
} asr_timings_t;
ASR_API void asr_stream_timings(const asr_stream_t *stream, asr_timings_t *out);
/* Audio duration in seconds of the last transcription. */
ASR_API double asr_stream_duration(const asr_stream_t *stream);
/* One-line reason for the last failure on this stream. */
ASR_API const char *asr_stream_errmsg(const asr_stream_t *stream);

/* English name of a language code ("zh" -> "chinese"), or NULL if unknown. Static string. */
ASR_API const char *asr_lang_name(const char *code);
/* Canonical Whisper code (static string) of a language tag: an ISO-639-1 code ("en", "ZH"), an
 * English name or openai's alias ("chinese", "Mandarin"), or a regional/script form of a code
 * (BCP-47 style, '-' or '_': "zh-CN", "zh_TW", "en-US", "pt-BR", "zh-Hant-HK"), all
 * case-insensitive. NULL if unknown or malformed. Thread-safe. */
ASR_API const char *asr_lang_code_normalize(const char *tag);
/* The Chinese script a language tag implies: SIMPLIFIED for zh/yue with CN, SG, MY or Hans;
 * TRADITIONAL for TW, HK, MO or Hant (a script subtag wins over a region); AUTO otherwise.
 * Thread-safe. */
ASR_API asr_zh_script_t asr_lang_zh_script(const char *tag);
/* Whether Chinese script conversion is built in (OpenCC); without it, asking for a script fails
 * the transcription. */
ASR_API bool asr_zh_script_available(void);

/* Debug/test hooks: log-mel of the whole input [n_mels][*n_frames] (caller frees with free()),
 * and the encoder output for one 30-s window of mel [1500][d_model]. */
ASR_API asr_err_t asr_engine_log_mel(const asr_model_t *model, const float *pcm, size_t n_samples,
                                     float **out_mel, int *out_n_frames);
ASR_API asr_err_t asr_stream_encode(asr_stream_t *stream, const float *mel_window,
                                    const float **out_enc);
/* Benchmark hook: after asr_stream_encode, runs n_steps decoder steps of n_seq sequences (their
 * logits included) and reports the mean milliseconds per step. */
ASR_API asr_err_t asr_stream_bench_decoder(asr_stream_t *stream, int n_seq, int n_steps,
                                           double *ms_per_step);

/* Benchmark hook (asrd bench --streams): encodes one 30-s mel window ([n_mels][3000]) and decodes
 * exactly n_tokens tokens after the start-of-transcript prompt with beam_size beams (1: greedy),
 * end-of-text suppressed: the work of one window of a fixed decode length. Streams of a GPU model
 * called from several threads at once are batched together (encoder passes and decoder steps). */
ASR_API asr_err_t asr_stream_bench_window(asr_stream_t *stream, const float *mel_window,
                                          int beam_size, int n_tokens);
/* Benchmark hook (asrd bench): how a CPU model's encoder runs its linear layers (conv2, QKV, out,
 * FFN) under its compute type on this CPU: nn/nn.h's ASR_NN_DNNL_BF16 or ASR_NN_DNNL_I8 (oneDNN,
 * weights packed at load) with the kernel oneDNN chose in *kernel (borrowed for the model's
 * lifetime; may be NULL), or -1 (float32 through sgemm: OpenBLAS or asrd's own kernels). */
ASR_API int asr_model_encoder_gemm(const asr_model_t *model, const char **kernel);
/* GPU batching counters of a model (zeros on the CPU): batched passes and the rows they took. */
typedef struct {
    long enc_batches, enc_windows; /* batched encoder passes, windows they encoded */
    long dec_batches, dec_rows;    /* batched decoder steps, sequence rows they ran */
    long dec_streams;              /* streams summed over decoder steps */
    int max_enc_batch, max_dec_streams, max_dec_rows;
} asr_batch_stats_t;
ASR_API void asr_model_batch_stats(const asr_model_t *model, asr_batch_stats_t *out);

#ifdef __cplusplus
}
#endif
#endif
