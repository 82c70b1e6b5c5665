/* engine: word-level timestamps from the cross-attention of the alignment heads (config.json),
 * following faster-whisper/CTranslate2: teacher-force the window's text, softmax the raw scores of
 * each alignment head over the window's frames, z-score along tokens, median filter (width 7)
 * along time, average the heads, DTW on the negated matrix, and cut words at the jumps. */
#ifndef ASR_ENGINE_ALIGN_H
#define ASR_ENGINE_ALIGN_H

#include "engine/engine_int.h"

typedef struct {
    char *word;   /* malloc'd UTF-8; "" once merged into a neighbour */
    int n_tokens; /* text tokens of this word */
    double start; /* seconds from the window start */
    double end;
    float probability;
} asr_word_timing_t;

/* Aligns text tokens (< eot) of one window whose cross-attention K/V are in the stream.
 * `sot_seq` is the start sequence (SOT [lang task]); `num_frames` the window's mel frames; `lang`
 * the language code (word splitting differs for zh/ja/th/lo/my/yue). On success *out holds *n_out
 * words, with punctuation merged; free with asr__words_free. */
asr_err_t asr__align_words(asr_stream_t *s, const int32_t *sot_seq, int n_sot, const int32_t *text,
                           int n_text, int num_frames, const char *lang, asr_word_timing_t **out,
                           int *n_out, double *median_duration, double *max_duration);
void asr__words_free(asr_word_timing_t *w, int n);

#endif
