/* audio: a restartable file source for the engine's two-pass streamed transcription. Rewinding
 * reopens the file, so nothing but the decoder's own buffers is held in memory. */
#include <string.h>

#include "audio/audio.h"
#include "core/core.h"

asr_err_t asr_audio_file_source_open(asr_audio_file_source_t *fs, const char *path, char *errbuf,
                                     size_t errbuf_len) {
    memset(fs, 0, sizeof *fs);
    asr_err_t rc = asr_audio_open(path, &fs->r, errbuf, errbuf_len);
    if (rc != ASR_OK)
        return rc;
    unsigned long long declared = 0, have = 0;
    if (asr_audio_wav_truncated(fs->r, &declared, &have)) {
        asr_errf(errbuf, errbuf_len,
                 "%s: truncated WAV file: its data chunk declares %llu bytes, the file holds %llu",
                 path, declared, have);
        asr_audio_close(fs->r);
        fs->r = NULL;
        return ASR_ERR_AUDIO;
    }
    /* probe: an audio stream that yields no samples at all is an error now, not later */
    float probe[1];
    size_t got = 0;
    rc = asr_audio_read(fs->r, probe, 1, &got);
    if (rc == ASR_OK && got == 0) {
        asr_errf(errbuf, errbuf_len, "%s: no audio samples", path);
        rc = ASR_ERR_AUDIO;
    } else if (rc != ASR_OK) {
        asr_errf(errbuf, errbuf_len, "%s", asr_audio_errmsg(fs->r));
    }
    if (rc != ASR_OK) {
        asr_audio_close(fs->r);
        fs->r = NULL;
        return rc;
    }
    fs->path = asr_xstrdup(path);
    return asr_audio_file_source_rewind(fs);
}

asr_err_t asr_audio_file_source_read(void *user_data, float *buf, size_t n, size_t *n_read) {
    asr_audio_file_source_t *fs = user_data;
    asr_err_t rc = asr_audio_read(fs->r, buf, n, n_read);
    if (rc != ASR_OK) {
        snprintf(fs->errmsg, sizeof fs->errmsg, "%s", asr_audio_errmsg(fs->r));
        return rc;
    }
    fs->n_read += *n_read;
    double declared = asr_audio_duration(fs->r);
    if (*n_read == 0 && declared > 0 && (double)fs->n_read < 0.5 * declared * ASR_AUDIO_RATE) {
        snprintf(fs->errmsg, sizeof fs->errmsg,
                 "%s: truncated audio: %.2f s decoded of %.2f s declared by the file", fs->path,
                 (double)fs->n_read / ASR_AUDIO_RATE, declared);
        return ASR_ERR_AUDIO;
    }
    return ASR_OK;
}

asr_err_t asr_audio_file_source_rewind(void *user_data) {
    asr_audio_file_source_t *fs = user_data;
    asr_audio_close(fs->r);
    fs->r = NULL;
    fs->n_read = 0;
    return asr_audio_open(fs->path, &fs->r, fs->errmsg, sizeof fs->errmsg);
}

void asr_audio_file_source_close(asr_audio_file_source_t *fs) {
    if (!fs)
        return;
    asr_audio_close(fs->r);
    free(fs->path);
    memset(fs, 0, sizeof *fs);
}
