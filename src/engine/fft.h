/* fft: small real-input FFT used by the log-mel front end (mel.c).
 *
 * A real FFT of even length n is computed as an n/2-point complex FFT of the even/odd samples
 * packed as re/im, followed by the usual split step. The complex FFT is a self-sorting (Stockham)
 * mixed-radix transform over split re/im arrays, with radix-2/3/4/5 butterflies, so n/2 must
 * factor into 2, 3 and 5 (n = 400 gives 200 = 4*2*5*5).
 *
 * Precision is double throughout (twiddles and arithmetic): numpy 2.x's np.fft.rfft of float32
 * input, which faster-whisper uses, returns exactly the float64 transform rounded to complex64, and
 * a single-precision FFT would be off by ~1e-7 of the frame's energy, which shows up as ~3e-5 in
 * the log-mel of weak bins. In double the front end matches faster-whisper to ~1e-6.
 *
 * ASR__FFT_LANES independent signals are transformed at once, one per lane of a double vector
 * (GCC/Clang vector extensions, lowered to SSE2/AVX/NEON or scalar code as the target allows).
 * Every lane follows the same control flow, so SIMD needs no shuffles and no target-specific
 * intrinsics.
 *
 * The transform does not allocate and touches only the caller's buffers, so one plan may be used
 * by any number of threads. Internal to the engine: only src/engine and its tests include this.
 */
#ifndef ASR_ENGINE_FFT_H
#define ASR_ENGINE_FFT_H

#include "asr/common.h"

/* One double per signal ("lane"). */
#ifndef ASR__FFT_LANES
#define ASR__FFT_LANES 2
#endif
typedef double asr__fftv __attribute__((vector_size(8 * ASR__FFT_LANES)));

typedef struct asr__fft asr__fft_t;

/* Builds a plan for a forward real FFT of length n (n even, n/2 a product of 2, 3 and 5).
 * Returns ASR_ERR_INVALID for other lengths, ASR_ERR_NOMEM on allocation failure.
 * *out is owned by the caller; free with asr__fft_destroy. */
asr_err_t asr__fft_create(int n, asr__fft_t **out);

/* NULL-safe. */
void asr__fft_destroy(asr__fft_t *f);

/* Transform length n of the plan. */
int asr__fft_len(const asr__fft_t *f);

/* Forward real DFT without scaling of ASR__FFT_LANES signals, lane-interleaved:
 *   X_l[k] = sum_t in[t][l] * exp(-2*pi*i*t*k/n), k = 0..n/2, l = lane.
 *   in      [n]          borrowed during the call
 *   out_re  [n/2 + 1]    written
 *   out_im  [n/2 + 1]    written (out_im[0] and out_im[n/2] are 0)
 *   work    [2 * n]      scratch, contents undefined afterwards
 * Buffers must not overlap. Thread-safe for distinct buffers. */
void asr__fft_rfftv(const asr__fft_t *f, const asr__fftv *in, asr__fftv *out_re, asr__fftv *out_im,
                    asr__fftv *work);

#endif
