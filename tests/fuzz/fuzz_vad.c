/* Fuzz target: the Silero VAD weights loader (asr_vad_load_memory). Any input must either load or
 * fail cleanly with a one-line "vad: " reason; an input that loads runs a few windows of a signal
 * derived from the input through asr_vad_process and asr_vad_speech_spans.
 *
 * The real weights file is 885 KB and the smallest loadable one is still over 130 KB (the f16
 * STFT basis alone), so the seed corpus (tests/fuzz/corpus/vad/, under 20 KB each) exercises the
 * header and tensor-record parser; the inference path is reached by fuzzing with a corpus that
 * includes a real weights file (e.g. shared/models/silero-vad-v6.2.0-ggml.bin and -max_len=900000).
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "core/core.h"
#include "engine/vad.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    asr_vad_t *v = NULL;
    char err[256] = "";
    asr_err_t rc = asr_vad_load_memory(data, size, &v, err, sizeof err);
    if (rc != ASR_OK) {
        ASR_ASSERT(v == NULL);
        ASR_ASSERT(rc != ASR_ERR_MODEL || (!strncmp(err, "vad: ", 5) && !strchr(err, '\n')));
        return 0;
    }
    /* A signal from the input bytes: 3 windows and a partial one. */
    enum { N = 3 * ASR_VAD_WINDOW + 100 };
    static float pcm[N];
    for (size_t i = 0; i < N; i++)
        pcm[i] = size ? ((float)data[(i * 7919u) % size] - 128.0f) / 128.0f : 0.0f;
    asr_vad_state_t *s = NULL;
    if (asr_vad_state_create(v, &s) == ASR_OK) {
        volatile float sink = 0;
        for (int w = 0; w < 3; w++) {
            float p = asr_vad_process(s, pcm + w * ASR_VAD_WINDOW);
            ASR_ASSERT(isnan(p) || (p >= 0.0f && p <= 1.0f));
            sink += p;
        }
        asr_vad_state_reset(s);
        (void)sink;
        asr_vad_state_destroy(s);
    }
    asr_vad_span_t *spans = NULL;
    int n_spans = 0;
    if (asr_vad_speech_spans(v, pcm, N, NULL, &spans, &n_spans) == ASR_OK) {
        for (int i = 0; i < n_spans; i++)
            ASR_ASSERT(spans[i].start >= 0 && spans[i].start <= spans[i].end && spans[i].end <= N);
        free(spans);
    }
    asr_vad_destroy(v);
    return 0;
}
