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
    if (rc != ASR_OK)
        snprintf(fs->errmsg, sizeof fs->errmsg, "%s", asr_audio_errmsg(fs->r));
    return rc;
}

asr_err_t asr_audio_file_source_rewind(void *user_data) {
    asr_audio_file_source_t *fs = user_data;
    asr_audio_close(fs->r);
    fs->r = NULL;
    return asr_audio_open(fs->path, &fs->r, fs->errmsg, sizeof fs->errmsg);
}

void asr_audio_file_source_close(asr_audio_file_source_t *fs) {
    if (!fs)
        return;
    asr_audio_close(fs->r);
    free(fs->path);
    memset(fs, 0, sizeof *fs);
}
