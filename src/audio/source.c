/* audio: a restartable file source for the engine's two-pass streamed transcription. Rewinding
 * reopens the file, so nothing but the decoder's own buffers is held in memory. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audio/audio.h"
#include "audio/wav.h"
#include "core/core.h"

static int64_t fd_read_at(void *ctx, int64_t off, uint8_t *buf, size_t n) {
    size_t got = 0;
    while (got < n) {
        ssize_t k = pread(*(int *)ctx, buf + got, n - got, (off_t)(off + (int64_t)got));
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return -1;
        if (k == 0)
            break;
        got += (size_t)k;
    }
    return (int64_t)got;
}

/* A RIFF/WAVE file whose data chunk declares more bytes than the file holds was cut short (a
 * placeholder size of 0 or 0xFFFFFFFF, as streaming writers leave it, is not a declaration).
 * Returns 1 when truncated and writes the sizes. */
static int wav_truncated(const char *path, unsigned long long *declared, unsigned long long *have) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    struct stat st;
    asr_wav_hdr_t h;
    int truncated = 0;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && asr_wav_scan(fd_read_at, &fd, &h)) {
        unsigned long long avail =
            st.st_size > h.data_off ? (unsigned long long)(st.st_size - h.data_off) : 0;
        if (h.data_size != 0 && h.data_size != 0xFFFFFFFFu && h.data_size > avail) {
            *declared = h.data_size;
            *have = avail;
            truncated = 1;
        }
    }
    close(fd);
    return truncated;
}

asr_err_t asr_audio_file_source_open(asr_audio_file_source_t *fs, const char *path, char *errbuf,
                                     size_t errbuf_len) {
    memset(fs, 0, sizeof *fs);
    unsigned long long declared = 0, have = 0;
    if (wav_truncated(path, &declared, &have)) {
        asr_errf(errbuf, errbuf_len,
                 "%s: truncated WAV file: its data chunk declares %llu bytes, the file holds %llu",
                 path, declared, have);
        return ASR_ERR_AUDIO;
    }
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
