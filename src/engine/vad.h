/* vad: Silero VAD (v6.x, 16 kHz) voice activity detection in plain C, and faster-whisper 1.2.1's
 * get_speech_timestamps over its probabilities.
 *
 * Weights: the ggml-layout file whisper.cpp ships (shared/models/silero-vad-v6.2.0-ggml.bin, see
 * shared/models/README.md), converted to float32 at load and immutable afterwards.
 *
 * The forward pass for one 512-sample window w (what silero-vad's ONNX/JIT models and
 * faster-whisper's SileroVADModel compute; tests/unit/test_vad.c checks it against faster-whisper's
 * bundled ONNX graph run with these same weights, max abs difference ~1e-6):
 *   1. x = the previous window's last 64 samples (zeros after a reset) followed by w: 576 samples;
 *      reflection padding of 64 on the right (xp[576 + j] = x[574 - j], the edge sample not
 *      repeated): 640 samples.
 *   2. STFT as a conv1d: 258 filters of 256 taps (129 real, 129 imaginary), hop 128: 4 frames;
 *      magnitude sqrt(re^2 + im^2): [4][129].
 *   3. Four conv1d layers, kernel 3, padding 1, strides 1, 2, 2, 1, each + bias then ReLU:
 *      129 -> 128 (4 frames) -> 64 (2) -> 64 (1) -> 128 (1).
 *   4. One LSTM cell (input 128, hidden 128, PyTorch gate order i, f, g, o) whose h, c persist
 *      from window to window.
 *   5. ReLU(h), 1x1 conv 128 -> 1, sigmoid: the speech probability.
 * whisper.cpp's whisper_vad_* differs in step 1 (no context, reflection padding of 64 on both
 * sides of the bare window); on jfk that moves probabilities by up to ~0.25, and asrd follows
 * silero-vad / faster-whisper.
 *
 * Segmentation (asr_vad_spans_from_probs) is a line-by-line port of faster-whisper 1.2.1's
 * get_speech_timestamps (faster_whisper/vad.py), including its padding of the signal to
 * n / 512 + 1 windows (a whole extra zero window when n is a multiple of 512) and its quirk of
 * zeroing the last 64 samples of the final window (SileroVADModel.__call__ writes `context[-1] = 0`
 * through a view of the audio): asr_vad_probs reproduces both.
 *
 * Threads: an asr_vad_t is immutable after load and may be shared by any number of threads; an
 * asr_vad_state_t belongs to one thread at a time. asr_vad_process never allocates.
 */
#ifndef ASR_ENGINE_VAD_H
#define ASR_ENGINE_VAD_H

#include <stddef.h>
#include <stdint.h>
#include "asr/common.h"

#define ASR_VAD_SAMPLE_RATE 16000
#define ASR_VAD_WINDOW 512 /* samples per probability (32 ms) */
#define ASR_VAD_CONTEXT 64 /* samples carried over from the previous window */

typedef struct asr_vad asr_vad_t;             /* immutable weights, shareable across threads */
typedef struct asr_vad_state asr_vad_state_t; /* per-stream LSTM state + scratch, one thread */

/* Loads a Silero VAD ggml file. On success *out is owned by the caller (asr_vad_destroy).
 * Returns ASR_ERR_MODEL for a bad, truncated or unsupported file (a one-line reason in errbuf),
 * ASR_ERR_NOT_FOUND / ASR_ERR_IO when the file cannot be read, ASR_ERR_NOMEM. errbuf may be NULL.
 * Thread-safe. */
asr_err_t asr_vad_load(const char *path, asr_vad_t **out, char *errbuf, size_t errbuf_len);

/* As asr_vad_load, from `len` bytes at `data` (borrowed for the call only; any bytes are safe). */
asr_err_t asr_vad_load_memory(const uint8_t *data, size_t len, asr_vad_t **out, char *errbuf,
                              size_t errbuf_len);

/* Frees the weights. NULL-safe. Every state created from v must be destroyed first. */
void asr_vad_destroy(asr_vad_t *v);

/* Creates a stream state (zeroed LSTM state and context) for v, which must outlive it. *out is
 * owned by the caller (asr_vad_state_destroy). Returns ASR_ERR_INVALID or ASR_ERR_NOMEM. */
asr_err_t asr_vad_state_create(const asr_vad_t *v, asr_vad_state_t **out);

/* Forgets the stream: zero LSTM state and zero context, as for a new signal. */
void asr_vad_state_reset(asr_vad_state_t *s);

/* NULL-safe. */
void asr_vad_state_destroy(asr_vad_state_t *s);

/* Speech probability in [0, 1] of the next 512-sample (16 kHz) window of the stream, which is
 * borrowed for the call. Call repeatedly on consecutive windows; the LSTM state and the last 64
 * samples carry over. No allocation, no locking. Non-finite samples poison the state until reset.
 */
float asr_vad_process(asr_vad_state_t *s, const float *window512);
/* n consecutive windows at once (pcm holds n * 512 samples, probs n results): the same as n calls
 * of asr_vad_process up to float rounding, several times faster (the windows' STFT and
 * convolutions run as matrix products). */
void asr_vad_process_n(asr_vad_state_t *s, const float *pcm, size_t n, float *probs);

typedef struct {
    int64_t start, end; /* samples, [start, end) */
} asr_vad_span_t;

/* Mirrors asr_vad_params_t in include/asr/engine.h. */
typedef struct {
    float threshold;    /* speech if p >= threshold; silence ends speech below threshold - 0.15 */
    int min_speech_ms;  /* drop speech not longer than this */
    float max_speech_s; /* split speech longer than this (INFINITY: never) */
    int min_silence_ms; /* silence needed to end speech */
    int speech_pad_ms;  /* padding added on each side */
} asr_vad_opts_t;

/* faster-whisper 1.2.1 VadOptions() defaults: threshold 0.5, min_speech 0 ms, max_speech inf,
 * min_silence 2000 ms, speech_pad 400 ms; WhisperModel.transcribe(vad_filter=True) uses them as
 * they are. (BatchedInferencePipeline.transcribe instead uses max_speech = chunk_length, 30 s, and
 * min_silence 160 ms.) */
asr_vad_opts_t asr_vad_default_opts(void);

/* Window probabilities of a whole signal of n samples, padded exactly as faster-whisper's
 * get_speech_timestamps does: n / 512 + 1 windows, state starting from zero. On success *out
 * (owned by the caller, free(); never NULL) holds *n_out probabilities. pcm is borrowed (may be
 * NULL when n == 0). Thread-safe (uses a private state). ASR_ERR_INVALID / ASR_ERR_NOMEM. */
asr_err_t asr_vad_probs(const asr_vad_t *v, const float *pcm, size_t n, float **out, size_t *n_out);

/* faster-whisper's get_speech_timestamps over n_probs window probabilities of a signal of
 * n_samples samples (the unpadded length). o may be NULL (defaults). On success *out is owned by
 * the caller (free(); NULL when *n_out == 0). ASR_ERR_INVALID for NaN/negative options or
 * max_speech_s <= 0, ASR_ERR_NOMEM. Thread-safe. */
asr_err_t asr_vad_spans_from_probs(const float *probs, size_t n_probs, size_t n_samples,
                                   const asr_vad_opts_t *o, asr_vad_span_t **out, int *n_out);

/* asr_vad_probs, then asr_vad_spans_from_probs: faster-whisper's get_speech_timestamps(audio, o).
 * Same ownership and errors as those two. */
asr_err_t asr_vad_speech_spans(const asr_vad_t *v, const float *pcm, size_t n,
                               const asr_vad_opts_t *o, asr_vad_span_t **out, int *n_out);

#endif
