/* vad_spans: faster-whisper 1.2.1's get_speech_timestamps (faster_whisper/vad.py) over Silero
 * window probabilities, statement by statement.
 *
 * Python mixes ints (sample positions) with floats (thresholds in samples, computed as
 * 16000 * ms / 1000 and 16000 * s - 512 - 2 * pad); here positions are int64 and the float
 * quantities doubles, compared the same way, so the output is identical for the same
 * probabilities. float32 probabilities are compared with double thresholds, as numpy does. The
 * Python truthiness tests on temp_end / prev_end (0 = unset) are kept: a real position 0 can never
 * reach them, because the window that starts speech always `continue`s.
 */
#include "engine/vad.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>

#include "core/core.h"

asr_vad_opts_t asr_vad_default_opts(void) {
    asr_vad_opts_t o = {
        .threshold = 0.5f,
        .min_speech_ms = 0,
        .max_speech_s = INFINITY,
        .min_silence_ms = 2000,
        .speech_pad_ms = 400,
    };
    return o;
}

/* Python's int(x) for the non-negative doubles that occur here (truncation). */
static int64_t py_int(double x) { return (int64_t)x; }

/* Python's a // b for b > 0. */
static int64_t floor_div(int64_t a, int64_t b) {
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* Padding pass of get_speech_timestamps (the `for i, speech in enumerate(speeches)` loop). */
static void pad_spans(asr_vad_span_t *sp, int n, double pad, int64_t audio_len) {
    for (int i = 0; i < n; i++) {
        if (i == 0)
            sp[i].start = py_int(fmax(0.0, (double)sp[i].start - pad));
        if (i != n - 1) {
            int64_t silence = sp[i + 1].start - sp[i].end;
            if ((double)silence < 2.0 * pad) {
                sp[i].end += floor_div(silence, 2);
                int64_t s = sp[i + 1].start - floor_div(silence, 2);
                sp[i + 1].start = s > 0 ? s : 0;
            } else {
                sp[i].end = py_int(fmin((double)audio_len, (double)sp[i].end + pad));
                sp[i + 1].start = py_int(fmax(0.0, (double)sp[i + 1].start - pad));
            }
        } else {
            sp[i].end = py_int(fmin((double)audio_len, (double)sp[i].end + pad));
        }
    }
}

asr_err_t asr_vad_spans_from_probs(const float *probs, size_t n_probs, size_t n_samples,
                                   const asr_vad_opts_t *o, asr_vad_span_t **out, int *n_out) {
    if (!out || !n_out)
        return ASR_ERR_INVALID;
    *out = NULL;
    *n_out = 0;
    asr_vad_opts_t def = asr_vad_default_opts();
    if (!o)
        o = &def;
    if ((!probs && n_probs) || isnan(o->threshold) || o->min_speech_ms < 0 ||
        o->min_silence_ms < 0 || o->speech_pad_ms < 0 || !(o->max_speech_s > 0.0f) ||
        n_probs > ((size_t)INT32_MAX - 1) / 2 || n_samples > (size_t)INT64_MAX / 2)
        return ASR_ERR_INVALID;

    const int64_t win = ASR_VAD_WINDOW, sr = ASR_VAD_SAMPLE_RATE;
    const double threshold = o->threshold;
    const double neg_threshold = fmax(threshold - 0.15, 0.01);
    const double min_speech = (double)sr * o->min_speech_ms / 1000.0;
    const double pad = (double)sr * o->speech_pad_ms / 1000.0;
    const double max_speech = (double)sr * (double)o->max_speech_s - (double)win - 2.0 * pad;
    const double min_silence = (double)sr * o->min_silence_ms / 1000.0;
    const double min_silence_at_max = (double)sr * 98 / 1000.0;
    const int64_t audio_len = (int64_t)n_samples;

    /* A window appends at most twice (a max-speech split, then with min_silence 0 a silence
     * end), plus one span after the loop. */
    const size_t cap = 2 * n_probs + 1;
    asr_vad_span_t *sp = asr_malloc(cap * sizeof *sp);
    if (!sp)
        return ASR_ERR_NOMEM;
    int n = 0;
    bool triggered = false;
    int64_t cur_start = 0, temp_end = 0, prev_end = 0, next_start = 0;

    for (size_t i = 0; i < n_probs; i++) {
        const double p = probs[i];
        const int64_t pos = win * (int64_t)i;
        if (p >= threshold && temp_end) {
            temp_end = 0;
            if (next_start < prev_end)
                next_start = pos;
        }
        if (p >= threshold && !triggered) {
            triggered = true;
            cur_start = pos;
            continue;
        }
        if (triggered && (double)(pos - cur_start) > max_speech) {
            if (prev_end) {
                sp[n++] = (asr_vad_span_t){cur_start, prev_end};
                if (next_start < prev_end) /* silence reached before, still not speech */
                    triggered = false;
                else
                    cur_start = next_start;
                prev_end = next_start = temp_end = 0;
            } else {
                sp[n++] = (asr_vad_span_t){cur_start, pos};
                prev_end = next_start = temp_end = 0;
                triggered = false;
                continue;
            }
        }
        if (p < neg_threshold && triggered) {
            if (!temp_end)
                temp_end = pos;
            if ((double)(pos - temp_end) > min_silence_at_max)
                prev_end = temp_end;
            if ((double)(pos - temp_end) < min_silence)
                continue;
            if ((double)(temp_end - cur_start) > min_speech)
                sp[n++] = (asr_vad_span_t){cur_start, temp_end};
            prev_end = next_start = temp_end = 0;
            triggered = false;
            continue;
        }
    }
    if (triggered && (double)(audio_len - cur_start) > min_speech)
        sp[n++] = (asr_vad_span_t){cur_start, audio_len};
    ASR_ASSERT((size_t)n <= cap);

    pad_spans(sp, n, pad, audio_len);
    if (n == 0) {
        free(sp);
        sp = NULL;
    }
    *out = sp;
    *n_out = n;
    return ASR_OK;
}
