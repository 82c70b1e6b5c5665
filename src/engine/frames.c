/* engine: streamed features (see frames.h). */
#include <math.h>
#include <string.h>

#include "engine/frames.h"

#define READ_CHUNK 16384             /* ASR_FRAMES_BUF_CAP leaves room for one */
#define HUGE_TOTAL ((size_t)1 << 60) /* "end not known yet": only interior frames are computed */

void asr__frames_init(asr_frames_t *fr, const asr_mel_t *mel, const asr_pcm_source_t *src,
                      float *buf, float *raw) {
    memset(fr, 0, sizeof *fr);
    fr->mel = mel;
    fr->src = src;
    fr->n_mels = asr_mel_n_mels(mel);
    fr->buf_cap = ASR_FRAMES_BUF_CAP;
    fr->buf = buf;
    fr->raw = raw;
}

/* Drops samples before `keep_from` and appends up to READ_CHUNK more (sets eof at the end). */
static asr_err_t fill(asr_frames_t *fr, size_t keep_from) {
    if (keep_from > fr->buf_start) {
        size_t drop = keep_from - fr->buf_start;
        if (drop > fr->buf_len)
            drop = fr->buf_len;
        memmove(fr->buf, fr->buf + drop, (fr->buf_len - drop) * sizeof(float));
        fr->buf_len -= drop;
        fr->buf_start += drop;
    }
    if (fr->eof)
        return ASR_OK;
    size_t room = fr->buf_cap - fr->buf_len;
    if (room == 0)
        return ASR_ERR_INVALID;
    size_t got = 0;
    asr_err_t rc = fr->src->read(fr->src->user_data, fr->buf + fr->buf_len,
                                 room < READ_CHUNK ? room : READ_CHUNK, &got);
    if (rc != ASR_OK)
        return rc;
    if (got == 0)
        fr->eof = 1;
    for (size_t i = 0; i < got; i++) /* the front end needs finite samples */
        if (!isfinite(fr->buf[fr->buf_len + i]))
            fr->buf[fr->buf_len + i] = 0.0f;
    if (fr->on_samples && got)
        fr->on_samples(fr->on_samples_ud, fr->buf + fr->buf_len, got);
    fr->buf_len += got;
    return ASR_OK;
}

asr_err_t asr__frames_rewind(asr_frames_t *fr) {
    fr->buf_start = fr->buf_len = 0;
    fr->eof = 0;
    return fr->src->rewind ? fr->src->rewind(fr->src->user_data) : ASR_ERR_UNSUPPORTED;
}

asr_err_t asr__frames_scan(asr_frames_t *fr) {
    asr_err_t rc = asr__frames_rewind(fr);

    if (rc != ASR_OK)
        return rc;
    float gmax = -INFINITY, mx;
    int next = 0; /* next frame to compute */
    for (;;) {
        size_t lo, hi;
        asr_mel_frames_need(HUGE_TOTAL, next, next + 1, &lo, &hi);
        rc = fill(fr, lo);
        if (rc != ASR_OK)
            return rc;
        size_t end = fr->buf_start + fr->buf_len;
        if (fr->eof)
            break;
        /* frames whose samples are all present and that cannot touch the end of the file */
        int last = next;
        while (last - next < 3000) {
            asr_mel_frames_need(HUGE_TOTAL, last, last + 1, &lo, &hi);
            if (hi + 1 > end)
                break;
            last++;
        }
        if (last > next) {
            rc = asr_mel_log_frames(fr->mel, fr->buf, fr->buf_start, fr->buf_len, HUGE_TOTAL, next,
                                    last, fr->raw, 3000, &mx);
            if (rc != ASR_OK)
                return rc;
            gmax = mx > gmax ? mx : gmax;
            next = last;
        }
    }
    fr->n_total = fr->buf_start + fr->buf_len;
    fr->n_frames = (int)asr_mel_n_frames(fr->n_total);
    while (next < fr->n_frames) { /* the tail, now that the end is known */
        int last = next + 3000 < fr->n_frames ? next + 3000 : fr->n_frames;
        rc = asr_mel_log_frames(fr->mel, fr->buf, fr->buf_start, fr->buf_len, fr->n_total, next,
                                last, fr->raw, 3000, &mx);
        if (rc != ASR_OK)
            return rc;
        gmax = mx > gmax ? mx : gmax;
        next = last;
    }
    fr->gmax = gmax;
    fr->on_samples = NULL; /* pass 1 only */
    return ASR_OK;
}

asr_err_t asr__frames_window(asr_frames_t *fr, int start, int n_copy, float *win) {
    const int M = fr->n_mels;
    if (start + n_copy > fr->n_frames)
        n_copy = fr->n_frames - start;
    if (n_copy < 0)
        n_copy = 0;
    if (n_copy > 3000)
        n_copy = 3000;
    if (n_copy > 0) {
        size_t lo, hi;
        asr_mel_frames_need(fr->n_total, start, start + n_copy, &lo, &hi);
        if (lo < fr->buf_start)
            return ASR_ERR_INVALID; /* windows must move forward */
        do {
            asr_err_t rc = fill(fr, lo);
            if (rc != ASR_OK)
                return rc;
        } while (!fr->eof && fr->buf_start + fr->buf_len < hi);
        float mx;
        asr_err_t rc = asr_mel_log_frames(fr->mel, fr->buf, fr->buf_start, fr->buf_len, fr->n_total,
                                          start, start + n_copy, win, 3000, &mx);
        if (rc != ASR_OK)
            return rc;
        asr_mel_normalize(win, M, n_copy, 3000, fr->gmax);
    }
    for (int c = 0; c < M; c++)
        memset(win + (size_t)c * 3000 + n_copy, 0, (size_t)(3000 - n_copy) * sizeof(float));
    return ASR_OK;
}
