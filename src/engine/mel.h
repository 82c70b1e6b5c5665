/* mel: Whisper's log-mel spectrogram front end, numerically matching faster-whisper 1.2.1
 * (faster_whisper/feature_extractor.py, FeatureExtractor.__call__ with its defaults) to within
 * 1e-4 absolute on every bin (tests/unit/test_mel.c against tests/golden/data/mel/; measured
 * max abs error 1.2e-7 to 2.4e-7, i.e. 1-2 float32 ulps of the output).
 *
 * What faster-whisper computes, for L input samples x (float32, s16 / 32768):
 *   1. y = x followed by 160 zero samples (padding=160), Ly = L + 160.
 *   2. Centre padding: 200 samples reflected on each side (numpy "reflect", i.e. mirrored about
 *      the end samples without repeating them, and periodic with period 2*(Ly-1) when the pad is
 *      longer than the signal, which happens for L <= 40).
 *   3. Frames of 400 samples every 160; frame f covers padded[160f, 160f + 400). The STFT has
 *      1 + Ly/160 frames (integer division); the last is dropped, so n_frames = L/160 + 1.
 *   4. Each frame times a periodic Hann window np.hanning(401)[:-1] cast to float32 (the product
 *      is rounded to float32), then np.fft.rfft (201 bins). With numpy 2.x the float32 input
 *      gives exactly the float64 FFT rounded to complex64, so the FFT here is double precision;
 *      a float32 FFT would differ by up to ~3e-5 in weak bins. Then power = |X|^2 in float32.
 *   5. Slaney mel filterbank [n_mels][201], computed in float64 exactly as get_mel_filters does
 *      (mel points evenly spaced on [0, 45.245640471924965], linear below 1 kHz, log step
 *      ln(6.4)/27 above, FFT bin k at 40k Hz, triangles scaled by 2/(f[i+2] - f[i])), then cast
 *      to float32; mel = filters @ power in float32.
 *   6. v = log10(max(mel, 1e-10)); v = max(v, max over the WHOLE spectrogram - 8); (v + 4) / 4,
 *      all in float32.
 * The remaining differences are float32 rounding order (mel sums, |X|^2, log10).
 *
 * How faster-whisper's WhisperModel.transcribe consumes the features (transcribe.py, 1.2.1):
 *   - features = feature_extractor(audio, chunk_length=None): the whole (post-VAD, if enabled)
 *     signal at once, so the clamp uses the global maximum of the whole file.
 *   - content_frames = n_frames - 1: the final frame (which mostly sees the 160 padding zeros)
 *     is never part of a transcription window.
 *   - For each window at frame `seek`: segment_size = min(3000, content_frames - seek,
 *     clip_end - seek); segment = features[:, seek : seek + segment_size], then pad_or_trim
 *     to 3000 frames by appending ZEROS to the normalised features (not by padding audio as
 *     openai-whisper does). Use asr_mel_window_n(..., seek, segment_size, ...) for that.
 *   - Language detection (detect_language(features=features[..., seek:])) takes
 *     features[:, seek : seek + 3000] INCLUDING the final frame when it falls inside, padded
 *     with zeros to 3000: that is asr_mel_window(..., seek, ...).
 */
#ifndef ASR_ENGINE_MEL_H
#define ASR_ENGINE_MEL_H

#include <stddef.h>
#include "asr/common.h"

#define ASR_MEL_SAMPLE_RATE 16000
#define ASR_MEL_N_FFT 400
#define ASR_MEL_HOP 160
#define ASR_MEL_N_BINS (ASR_MEL_N_FFT / 2 + 1) /* 201 */
#define ASR_MEL_WINDOW_FRAMES 3000             /* 30 s at 100 frames/s */

/* Precomputed filterbank, window, FFT twiddles for n_mels (80 or 128). Immutable, thread-safe to
 * share. */
typedef struct asr_mel asr_mel_t;

/* Builds the front end for n_mels bands. Any n_mels in [1, 512] is accepted (Whisper uses 80,
 * or 128 for large-v3/turbo). Returns ASR_ERR_INVALID for other values, ASR_ERR_NOMEM on
 * allocation failure. *out is owned by the caller; free with asr_mel_destroy. */
asr_err_t asr_mel_create(int n_mels, asr_mel_t **out);

/* NULL-safe. */
void asr_mel_destroy(asr_mel_t *m);

/* Number of mel bands of m. */
int asr_mel_n_mels(const asr_mel_t *m);

/* The filterbank as a dense float32 matrix out[n_mels][ASR_MEL_N_BINS] (caller's buffer), the
 * matrix whisper.cpp's ggml files carry beside the weights. Thread-safe: m is only read. */
void asr_mel_filters(const asr_mel_t *m, float *out);

/* Frames asr_mel_compute produces for n_samples samples: n_samples / 160 + 1 (including the final
 * frame that faster-whisper's content_frames excludes). */
size_t asr_mel_n_frames(size_t n_samples);

/* Log-mel of a whole signal exactly as faster-whisper's FeatureExtractor.__call__ with its defaults
 * as used by WhisperModel.transcribe (padding=160 zero samples appended, center/reflect padding,
 * periodic Hann 400, hop 160, power spectrum, Slaney mel filters computed like faster-whisper
 * get_mel_filters, log10(max(x,1e-10)), clamp to global max - 8, (x+4)/4; last STFT frame
 * dropped).
 *   pcm        [n_samples] mono 16 kHz float samples, borrowed during the call; may be NULL when
 *              n_samples is 0.
 *   n_threads  <= 1: compute on the calling thread; > 1: split frames across that many pthreads
 *              (falls back to the calling thread if a thread cannot be started).
 *   out        *out [n_mels][*n_frames] row-major, owned by the caller, free with free().
 *   n_frames   n_samples / 160 + 1.
 * Empty input (n_samples == 0) is valid and, like faster-whisper, yields one frame whose every
 * bin is -1.5 (all-zero power: log10(1e-10) = -10, (-10 + 4) / 4). Any short input works.
 * Samples must be finite (NaN/inf give unspecified values, never a crash).
 * Returns ASR_OK; ASR_ERR_INVALID for NULL arguments or more frames than fit an int;
 * ASR_ERR_NOMEM if the output cannot be allocated (checked allocation). On error *out is NULL.
 * Speed: ~5 ms of CPU for 30 s of audio on one x86-64 core (SSE2 baseline build).
 * Each worker (the caller included) uses about 42 KB of stack; nothing else is allocated.
 * The whole signal must be in memory; to stream it, see asr_mel_log_frames below, which gives
 * the same values. Thread-safe: m is only read. */
asr_err_t asr_mel_compute(const asr_mel_t *m, const float *pcm, size_t n_samples, int n_threads,
                          float **out, int *n_frames);

/* ---- Streaming: the same frames from a bounded window of samples ----
 *
 * asr_mel_compute = asr_mel_log_frames over all frames, then asr_mel_normalize with the global
 * maximum. A caller that cannot hold the whole signal streams it twice: pass 1 computes every
 * frame's raw values once (in any grouping) to get gmax = the maximum of all *max_out and
 * n_total; pass 2 recomputes any frame range from just the samples asr_mel_frames_need names and
 * normalises it with gmax. Every value equals asr_mel_compute's bit for bit (same code, same
 * float32 operations; each frame is computed independently of the frames computed with it).
 *
 * Sample-range rule. Frame f reads padded[160f, 160f + 400), i.e. y[160f - 200, 160f + 200) with
 * y = x ++ zeros(160). Hence frames [f0, f1), f0 < f1, read exactly the original samples
 *     lo = max(0, 160*f0 - 200)
 *     hi = 160*(f1 - 1) + 200, except 201 when f0 == 0 and f1 == 1
 * both then clipped to n_total (lo = min(lo, n_total), hi = min(hi, n_total)); every sample of
 * [lo, hi) is read by some frame. Why:
 *   - Start: positions y[-200..-1] (frames 0 and 1 only) reflect to y[200..1], i.e. x[1..200]
 *     for frame 0 and x[1..40] for frame 1. These lie inside the frames' direct reads except
 *     x[200] for frame 0 alone, hence the 201.
 *   - End: positions past the end of y (frames with 160f + 200 > n_total + 160) reflect to
 *     y[n_total + 119 .. n_total + 158], all inside the zero padding: no original sample beyond
 *     the direct reads, which are clipped at n_total.
 *   - n_total <= 40 (pad longer than y, reflection wraps around y repeatedly): frame 0 is the
 *     only frame and the range is [0, n_total), the whole signal, which the formula gives too.
 * Dependence on n_total: frame f's values are the same for every n_total >= 160f + 200 (>= 201
 * for f = 0), i.e. >= asr_mel_frames_need(SIZE_MAX, f, f + 1, ...)'s hi, because it then reads
 * only x samples. So pass 1 may compute such frames before the end of the input is known by
 * passing any n_total >= the samples read so far (e.g. a huge placeholder); only the last
 * couple of frames have to wait for the true n_total. */

/* Which original samples frames [f0, f1) read: [*lo, *hi), by the rule above (clipped to
 * [0, n_total]). f0 < 0 is treated as 0. For f1 <= f0 the range is empty: *lo = *hi =
 * min(max(0, 160*f0 - 200), n_total). lo and hi may be NULL. Pure function, thread-safe. */
void asr_mel_frames_need(size_t n_total, int f0, int f1, size_t *lo, size_t *hi);

/* Raw log10(max(mel, 1e-10)) (before the global clamp and (x+4)/4) of frames [f0, f1) of a signal
 * of n_total samples, exactly as asr_mel_compute computes them before normalising.
 *   chunk        original samples x[chunk_start, chunk_start + chunk_len), borrowed during the
 *                call. Must cover asr_mel_frames_need(n_total, f0, f1)'s [lo, hi), i.e.
 *                chunk_start <= lo and chunk_start + chunk_len >= hi; samples outside [lo, hi)
 *                are not read. May be NULL when that range is empty (n_total == 0 or f0 == f1).
 *   n_total      length of the whole signal (fixes the end padding); see "Dependence on n_total"
 *                above for computing interior frames before it is known. <= LLONG_MAX/2 - 160.
 *   f0, f1       0 <= f0 <= f1 <= asr_mel_n_frames(n_total).
 *   out          out[b * ld + (f - f0)] for band b < n_mels, f in [f0, f1); caller's buffer,
 *                nothing else in it is touched. ld >= f1 - f0. May be NULL when f0 == f1.
 *   max_out      if not NULL: the maximum value written, -inf when f0 == f1 (also on error).
 * Returns ASR_OK, or ASR_ERR_INVALID (nothing written) for a NULL m, a bad frame range or ld, or
 * a chunk that does not cover the needed samples. Samples must be finite, as for
 * asr_mel_compute. Runs on the calling thread with about 42 KB of stack; no allocation.
 * Thread-safe: m is only read. */
asr_err_t asr_mel_log_frames(const asr_mel_t *m, const float *chunk, size_t chunk_start,
                             size_t chunk_len, size_t n_total, int f0, int f1, float *out, int ld,
                             float *max_out);

/* In place, for each of n_mels rows of n columns at row stride ld (x[b * ld + i]):
 * v = max(v, gmax - 8); v = (v + 4) / 4 in float32, the same operations asr_mel_compute applies
 * (gmax = the maximum raw value over the whole signal). x is the caller's; thread-safe. */
void asr_mel_normalize(float *x, int n_mels, int n, int ld, float gmax);

/* Copies frames [start, start+3000) of mel (n_frames total) into window[n_mels][3000],
 * zero-filling past the end, as faster-whisper pads each segment (pad_or_trim with zeros).
 *   mel     [n_mels][n_frames], borrowed; window [n_mels][3000], written.
 * start must be >= 0; start >= n_frames gives an all-zero window. */
void asr_mel_window(const float *mel, int n_mels, int n_frames, int start, float *window);

/* Like asr_mel_window but copies at most n_copy frames (and never past n_frames), zero-filling
 * the rest of the 3000. With n_copy = min(3000, content_frames - seek, clip_end - seek) and
 * content_frames = n_frames - 1 this is exactly faster-whisper's transcription window. */
void asr_mel_window_n(const float *mel, int n_mels, int n_frames, int start, int n_copy,
                      float *window);

#endif
