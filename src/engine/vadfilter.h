/* engine: the vad_filter option, as faster-whisper's transcribe(vad_filter=True): Silero VAD finds
 * the speech spans, only those samples are transcribed (concatenated), and segment and word times
 * are mapped back to the original timeline. Streaming: the VAD reads the source once, and the
 * filtered source skips non-speech on the fly. */
#ifndef ASR_ENGINE_VADFILTER_H
#define ASR_ENGINE_VADFILTER_H

#include "engine/engine_int.h"
#include "engine/vad.h"

typedef struct {
    const asr_pcm_source_t *inner;
    asr_vad_span_t *spans;
    int n_spans;
    int cur;
    size_t pos;
    size_t n_total; /* samples of the unfiltered source */
    float *skip;
    /* SpeechTimestampsMap */
    int64_t *chunk_end_sample;
    double *silence_before;
} asr_vadfilter_t;

/* The process-wide VAD weights: $ASRD_VAD_MODEL if set, else the copy embedded at build time. */
asr_err_t asr__vad_weights(const asr_vad_t **out, char *errbuf, size_t errbuf_len);

/* Streaming accumulation of VAD window probabilities (faster-whisper's padding). */
typedef struct {
    asr_vad_state_t *st;
    float *probs;
    size_t n, cap, n_samples;
    float *buf; /* samples of the windows not yet processed */
    size_t have;
    asr_err_t rc;
} asr_vadacc_t;
asr_err_t asr__vadacc_init(asr_vadacc_t *a, const asr_vad_t *v);
void asr__vadacc_feed(asr_vadacc_t *a, const float *x, size_t n);
/* Processes the final window; on success a->probs holds a->n probabilities. */
asr_err_t asr__vadacc_finish(asr_vadacc_t *a);
void asr__vadacc_free(asr_vadacc_t *a);

/* Runs the VAD over `inner` (rewinding it) and prepares the filtered source. */
asr_err_t asr__vadfilter_init(asr_vadfilter_t *vf, const asr_pcm_source_t *inner,
                              const asr_vad_params_t *p, char *errbuf, size_t errbuf_len);
void asr__vadfilter_free(asr_vadfilter_t *vf);
/* Source callbacks; user_data is the asr_vadfilter_t. */
asr_err_t asr__vadfilter_read(void *user_data, float *buf, size_t n, size_t *n_read);
asr_err_t asr__vadfilter_rewind(void *user_data);
/* Maps filtered-timeline seconds back to the original timeline. chunk < 0: chosen from t. */
int asr__vadfilter_chunk(const asr_vadfilter_t *vf, double t, int is_end);
double asr__vadfilter_time(const asr_vadfilter_t *vf, double t, int chunk);

#endif
