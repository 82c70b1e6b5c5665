/* engine: streamed log-mel features for the transcription loop. Pass 1 (asr__frames_scan) reads
 * the source once to count samples and find the global log-mel maximum; pass 2
 * (asr__frames_window) computes any window's frames from a bounded sample buffer, so memory is
 * flat in the audio's length while every value equals the whole-file front end's. Windows must be
 * requested at non-decreasing start frames after each rewind. */
#ifndef ASR_ENGINE_FRAMES_H
#define ASR_ENGINE_FRAMES_H

#include "engine/engine_int.h"

typedef struct {
    const asr_mel_t *mel;
    const asr_pcm_source_t *src;
    int n_mels;
    size_t n_total; /* samples, after the scan */
    int n_frames;   /* n_total / 160 + 1 */
    float gmax;     /* global maximum of log10(mel) */
    float *buf;     /* samples [buf_start, buf_start + buf_len) */
    size_t buf_start, buf_len, buf_cap;
    int eof;
    float *raw; /* [n_mels][3000] scratch */
    /* optional: sees every sample once during the scan (pass 1) */
    void (*on_samples)(void *user_data, const float *x, size_t n);
    void *on_samples_ud;
} asr_frames_t;

/* buf [ASR_FRAMES_BUF_CAP] and raw [n_mels][3000] are borrowed (the stream's arena). */
void asr__frames_init(asr_frames_t *fr, const asr_mel_t *mel, const asr_pcm_source_t *src,
                      float *buf, float *raw);
/* Pass 1: reads the whole source once. */
asr_err_t asr__frames_scan(asr_frames_t *fr);
/* Rewinds for a new pass 2. */
asr_err_t asr__frames_rewind(asr_frames_t *fr);
/* Normalised frames [start, start + n_copy) into win[n_mels][3000], zero-filled after. */
asr_err_t asr__frames_window(asr_frames_t *fr, int start, int n_copy, float *win);

#endif
