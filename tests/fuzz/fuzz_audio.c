/* fuzz_audio: feeds arbitrary bytes to the audio decoder (asr_audio_open_memory + asr_audio_read).
 *
 * Invariants checked beyond "no crash, no leak, no UB": every returned sample is finite and within
 * [-1, 1], and a reader never returns more samples than asked. Decoding stops after ten minutes of
 * output so that a tiny input declaring a long silence cannot stall the fuzzer. */
#include <stdint.h>
#include <stdlib.h>

#include "audio/audio.h"

#define FUZZ_MAX_SAMPLES ((size_t)600 * ASR_AUDIO_RATE)
#define FUZZ_CHUNK 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    asr_audio_reader_t *r = NULL;
    char err[256];
    if (asr_audio_open_memory(data, size, &r, err, sizeof err) != ASR_OK)
        return 0;
    (void)asr_audio_duration(r);
    static float buf[FUZZ_CHUNK];
    size_t total = 0;
    while (total < FUZZ_MAX_SAMPLES) {
        size_t got = 0;
        if (asr_audio_read(r, buf, FUZZ_CHUNK, &got) != ASR_OK || got == 0)
            break;
        if (got > FUZZ_CHUNK)
            abort();
        for (size_t i = 0; i < got; i++)
            if (!(buf[i] >= -1.0f && buf[i] <= 1.0f)) /* also catches NaN */
                abort();
        total += got;
    }
    (void)asr_audio_errmsg(r);
    asr_audio_close(r);
    return 0;
}
