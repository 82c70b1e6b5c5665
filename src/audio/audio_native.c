/* audio: the native reader of 16 kHz mono 16-bit PCM WAV, the common upload, read without
 * FFmpeg (whose libraries then stay unloaded): sample for sample what FFmpeg's path gives
 * (s / 32768). The RIFF chunk walk is audio/wav.c's; it also gives every RIFF/WAVE input the
 * facts behind asr_audio_wav_truncated.
 *
 * Invariants: samples are bytes [pos, data_end) of the byte source, data_end never past its end;
 * a file is read through a NATIVE_BUF heap buffer (asr_malloc, so running out of memory fails
 * the open as FFmpeg's path would), memory is read in place. */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "audio/audio_int.h"
#include "audio/wav.h"
#include "core/core.h"

#define NATIVE_BUF 32768 /* bytes per read of a native WAV file */

/* The byte source at an offset, for the WAV chunk walk (does not move r->pos). */
static int64_t src_read_at(void *ctx, int64_t off, uint8_t *buf, size_t n) {
    asr_audio_reader_t *r = ctx;
    if (off < 0 || (r->size >= 0 && off >= r->size))
        return 0;
    if (r->size >= 0 && (int64_t)n > r->size - off)
        n = (size_t)(r->size - off);
    if (r->mem) {
        memcpy(buf, r->mem + off, n);
        return (int64_t)n;
    }
    size_t got = 0;
    while (got < n) {
        ssize_t k = pread(r->fd, buf + got, n - got, (off_t)(off + (int64_t)got));
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            r->io_errno = errno;
            return -1;
        }
        if (k == 0)
            break;
        got += (size_t)k;
    }
    return (int64_t)got;
}

/* 16 kHz mono 16-bit PCM WAV (a seekable source) is read here, sample for sample what FFmpeg's
 * path gives (s / 32768): ASR_OK; ASR_ERR_UNSUPPORTED when the input is anything else (FFmpeg's
 * then), ASR_ERR_NOMEM without memory for the read buffer. */
asr_err_t asr__audio_native_open(asr_audio_reader_t *r, char *errbuf, size_t errbuf_len) {
    asr_wav_hdr_t h;
    if (r->size < 0 || !asr_wav_scan(src_read_at, r, &h))
        return ASR_ERR_UNSUPPORTED;
    int64_t avail = r->size > h.data_off ? r->size - h.data_off : 0;
    r->wav_declared = h.data_size;
    r->wav_avail = avail;
    if (!asr_wav_is_native(&h))
        return ASR_ERR_UNSUPPORTED;
    if (!r->mem && !(r->nbuf = asr_malloc(NATIVE_BUF))) {
        asr_errf(errbuf, errbuf_len, "%s: out of memory", r->name);
        return ASR_ERR_NOMEM;
    }
    r->native = 1;
    r->pos = h.data_off;
    r->data_end = h.data_off + ((int64_t)h.data_size < avail ? (int64_t)h.data_size : avail);
    return ASR_OK;
}

/* Native WAV: up to n samples from [pos, data_end); a trailing odd byte is not a sample. */
asr_err_t asr__audio_native_read(asr_audio_reader_t *r, float *buf, size_t n, size_t *n_read) {
    if (r->state == ASR_AUDIO_ST_FAILED)
        return r->failed;
    size_t got = 0;
    while (got < n && r->data_end - r->pos >= 2) {
        size_t want = (size_t)((r->data_end - r->pos) / 2);
        want = want < n - got ? want : n - got;
        want = r->mem || want < NATIVE_BUF / 2 ? want : NATIVE_BUF / 2;
        const uint8_t *src = r->mem ? r->mem + r->pos : r->nbuf;
        int64_t k = r->mem ? (int64_t)(2 * want) : src_read_at(r, r->pos, r->nbuf, 2 * want);
        if (k < 0) {
            if (got)
                break;
            return asr__audio_fail(r, ASR_ERR_IO, "read error (%s)", strerror(r->io_errno));
        }
        size_t ns = (size_t)k / 2;
        if (ns == 0) { /* the file shrank under us: it ends here */
            r->data_end = r->pos;
            break;
        }
        for (size_t i = 0; i < ns; i++) {
            int16_t v;
            memcpy(&v, src + 2 * i, 2);
            buf[got + i] = v / 32768.0f;
        }
        got += ns;
        r->pos += 2 * (int64_t)ns;
    }
    r->n_out += (int64_t)got;
    *n_read = got;
    return ASR_OK;
}
