/* audio: the readers' common part: opening a file or a memory buffer as a byte source, the
 * choice between the native WAV reader (audio_native.c) and FFmpeg's (audio_ffmpeg.c), the calls
 * both answer (read, duration, truncation, errors, close) and the whole-file convenience.
 *
 * Invariants:
 * - A reader reads through its byte source only: a file descriptor (pread when the file is
 *   regular, read for pipes) or a borrowed memory buffer; never the whole file at once.
 * - An input that is 16 kHz mono 16-bit PCM WAV from a seekable source never needs FFmpeg's
 *   libraries; every other one goes to FFmpeg's demuxers and decoders.
 * - Failures are sticky: after one, every read returns the same error with r->errmsg.
 */
#include "audio/audio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audio/audio_int.h"
#include "core/core.h"

#define LOAD_CHUNK 65536 /* samples per read in asr_audio_load */

asr_err_t asr__audio_fail(asr_audio_reader_t *r, asr_err_t err, const char *fmt, ...) {
    int off = snprintf(r->errmsg, sizeof r->errmsg, "%s: ", r->name);
    if (off < 0 || (size_t)off >= sizeof r->errmsg)
        off = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->errmsg + off, sizeof r->errmsg - (size_t)off, fmt, ap);
    va_end(ap);
    r->state = ASR_AUDIO_ST_FAILED;
    r->failed = err;
    return err;
}

/* The native reader, else FFmpeg's demuxer and decoder. */
static asr_err_t open_any(asr_audio_reader_t *r, const char *url, char *errbuf, size_t errbuf_len) {
    asr_err_t err = asr__audio_native_open(r, errbuf, errbuf_len);
    return err == ASR_ERR_UNSUPPORTED ? asr__audio_ff_open(r, url, errbuf, errbuf_len) : err;
}

/* Opens the reader whose byte source is set (the native reader, else FFmpeg's): *out = r, or r
 * closed on failure. */
static asr_err_t finish_open(asr_audio_reader_t *r, const char *url, asr_audio_reader_t **out,
                             char *errbuf, size_t errbuf_len) {
    asr_err_t err = open_any(r, url, errbuf, errbuf_len);
    if (err != ASR_OK) {
        asr_audio_close(r);
        return err;
    }
    *out = r;
    return ASR_OK;
}

static asr_audio_reader_t *reader_new(const char *name) {
    asr_audio_reader_t *r = asr_xcalloc(1, sizeof *r);
    r->fd = -1;
    r->size = -1;
    r->name = asr_xstrdup(name);
    r->state = ASR_AUDIO_ST_RUN;
    return r;
}

asr_err_t asr_audio_open(const char *path, asr_audio_reader_t **out, char *errbuf,
                         size_t errbuf_len) {
    *out = NULL;
    if (!path) {
        asr_errf(errbuf, errbuf_len, "no audio path given");
        return ASR_ERR_INVALID;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int err = errno;
        asr_errf(errbuf, errbuf_len, "cannot open %s: %s", path, strerror(err));
        return err == ENOENT || err == ENOTDIR ? ASR_ERR_NOT_FOUND : ASR_ERR_IO;
    }
    struct stat st;
    int serr = fstat(fd, &st) != 0 ? errno : S_ISDIR(st.st_mode) ? EISDIR : 0;
    if (serr) {
        asr_errf(errbuf, errbuf_len, "cannot open %s: %s", path, strerror(serr));
        close(fd);
        return ASR_ERR_IO;
    }
    if (S_ISREG(st.st_mode) && st.st_size == 0) {
        asr_errf(errbuf, errbuf_len, "%s: not an audio file (empty file)", path);
        close(fd);
        return ASR_ERR_AUDIO;
    }
    asr_audio_reader_t *r = reader_new(path);
    r->fd = fd;
    r->size = S_ISREG(st.st_mode) ? (int64_t)st.st_size : -1; /* pipes: no seeking */
    return finish_open(r, path, out, errbuf, errbuf_len);
}

asr_err_t asr_audio_open_memory(const uint8_t *data, size_t len, asr_audio_reader_t **out,
                                char *errbuf, size_t errbuf_len) {
    *out = NULL;
    if (!data || len == 0) {
        asr_errf(errbuf, errbuf_len, "<memory>: not an audio file (empty input)");
        return ASR_ERR_AUDIO;
    }
    if (len > (size_t)INT64_MAX) {
        asr_errf(errbuf, errbuf_len, "<memory>: input too large");
        return ASR_ERR_INVALID;
    }
    asr_audio_reader_t *r = reader_new("<memory>");
    r->mem = data;
    r->size = (int64_t)len;
    return finish_open(r, "", out, errbuf, errbuf_len);
}

void asr_audio_close(asr_audio_reader_t *r) {
    if (!r)
        return;
    if (r->ff)
        asr__audio_ff_close(r);
    if (r->fd >= 0)
        close(r->fd);
    free(r->pend);
    free(r->nbuf);
    free(r->name);
    free(r);
}

int asr_audio_wav_truncated(const asr_audio_reader_t *r, unsigned long long *declared,
                            unsigned long long *have) {
    uint32_t d = r->wav_declared;
    if (d == 0 || d == 0xFFFFFFFFu || (int64_t)d <= r->wav_avail)
        return 0;
    *declared = d;
    *have = (unsigned long long)r->wav_avail;
    return 1;
}

double asr_audio_duration(const asr_audio_reader_t *r) {
    if (r && r->native)
        return (double)((r->data_end - r->pos) / 2 + r->n_out) / ASR_AUDIO_RATE;
    return r ? asr__audio_ff_duration(r) : -1;
}

const char *asr_audio_errmsg(const asr_audio_reader_t *r) { return r ? r->errmsg : ""; }

asr_err_t asr_audio_read(asr_audio_reader_t *r, float *buf, size_t n, size_t *n_read) {
    *n_read = 0;
    if (!r || (!buf && n))
        return ASR_ERR_INVALID;
    if (r->native)
        return asr__audio_native_read(r, buf, n, n_read);
    return asr__audio_ff_read(r, buf, n, n_read);
}

/* ---- whole-file convenience ---- */

asr_err_t asr_audio_load(const char *path, float **out_pcm, size_t *out_n, char *errbuf,
                         size_t errbuf_len) {
    *out_pcm = NULL;
    *out_n = 0;
    asr_audio_reader_t *r = NULL;
    asr_err_t err = asr_audio_open(path, &r, errbuf, errbuf_len);
    if (err != ASR_OK)
        return err;
    float *pcm = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (cap - n < LOAD_CHUNK) {
            size_t ncap = cap ? cap * 2 : (size_t)4 * LOAD_CHUNK;
            float *p =
                ncap <= SIZE_MAX / sizeof(float) ? asr_realloc(pcm, ncap * sizeof(float)) : NULL;
            if (!p) {
                asr_errf(errbuf, errbuf_len, "%s: out of memory", path);
                err = ASR_ERR_NOMEM;
                goto fail;
            }
            pcm = p;
            cap = ncap;
        }
        size_t got = 0;
        err = asr_audio_read(r, pcm + n, cap - n, &got);
        if (err != ASR_OK) {
            asr_errf(errbuf, errbuf_len, "%s", asr_audio_errmsg(r));
            goto fail;
        }
        if (got == 0)
            break;
        n += got;
    }
    if (n == 0) {
        asr_errf(errbuf, errbuf_len, "%s: no audio samples", path);
        err = ASR_ERR_AUDIO;
        goto fail;
    }
    float *shrunk = realloc(pcm, n * sizeof(float)); /* shrinking: failure keeps the old block */
    *out_pcm = shrunk ? shrunk : pcm;
    *out_n = n;
    asr_audio_close(r);
    return ASR_OK;
fail:
    free(pcm);
    asr_audio_close(r);
    return err;
}