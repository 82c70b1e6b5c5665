/* audio_int: the reader's state, shared by audio.c (opening, the common calls), audio_native.c
 * (16 kHz mono 16-bit WAV without FFmpeg) and audio_ffmpeg.c (every other input). Nothing outside
 * src/audio includes this header.
 *
 * Invariants: a reader is native (r->native) or uses FFmpeg (r->ff), never both; FFmpeg's objects
 * are named by their struct tags only, so the files that do not call FFmpeg need not include its
 * headers (nor ffmpeg_dl.h's redirections). */
#ifndef ASR_AUDIO_INT_H
#define ASR_AUDIO_INT_H

#include <stddef.h>
#include <stdint.h>

#include "audio/audio.h"

struct AVIOContext;
struct AVFormatContext;
struct AVCodecContext;
struct AVPacket;
struct AVFrame;
struct SwrContext;

/* reader states: decoding, decoder flushed at the end of the input, all delivered, failed */
enum { ASR_AUDIO_ST_RUN, ASR_AUDIO_ST_FLUSHED, ASR_AUDIO_ST_DONE, ASR_AUDIO_ST_FAILED };

struct asr_audio_reader {
    /* byte source: fd >= 0 for files, else mem[0, size) (borrowed) */
    int fd;
    const uint8_t *mem;
    int64_t size; /* bytes, -1 if unknown (pipe) */
    int64_t pos;
    int io_errno; /* last read(2) failure, reported as ASR_ERR_IO */

    /* native 16 kHz mono 16-bit WAV: samples are bytes [pos, data_end) of the source */
    int native;
    int64_t data_end;
    uint8_t *nbuf; /* NATIVE_BUF bytes read from a file, converted from here */
    /* any RIFF/WAVE input: its data chunk's declared size (0: none seen) and the bytes after it */
    uint32_t wav_declared;
    int64_t wav_avail;
    int ff; /* FFmpeg's objects below are in use */

    struct AVIOContext *avio;
    struct AVFormatContext *fmt;
    struct AVCodecContext *dec;
    struct AVPacket *pkt;
    struct AVFrame *frame; /* current decoded frame, valid while have_frame */
    int have_frame;
    int frame_off; /* input samples of `frame` already converted */
    int stream;

    /* conversion currently configured (from the last frame's parameters) */
    int cfg_valid, cfg_fmt, cfg_rate, cfg_nch;
    struct SwrContext *swr; /* NULL = passthrough (source is 16 kHz mono) */

    float *pend; /* converted samples not yet returned: [pend_pos, pend_len) */
    size_t pend_len, pend_pos, pend_cap;

    int state;
    int64_t n_out;    /* samples produced so far */
    int n_bad;        /* packets, frames or reads that failed and were skipped */
    int n_drain_err;  /* errors while draining the decoder at the end */
    char why[160];    /* reason of the last such failure, for "no audio could be decoded" */
    asr_err_t failed; /* sticky error once state == ASR_AUDIO_ST_FAILED */
    char *name;       /* path or "<memory>", for messages */
    char errmsg[512];
};

/* audio.c: records a sticky failure ("<name>: <reason>" in r->errmsg) and returns err. */
asr_err_t asr__audio_fail(asr_audio_reader_t *r, asr_err_t err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* audio_native.c: 16 kHz mono 16-bit PCM WAV (a seekable source) is read without FFmpeg, sample
 * for sample what FFmpeg's path gives (s / 32768). Open: ASR_OK; ASR_ERR_UNSUPPORTED when the
 * input is anything else (FFmpeg's then), ASR_ERR_NOMEM without memory for the read buffer. Any
 * RIFF/WAVE input gets r->wav_declared and r->wav_avail filled. */
asr_err_t asr__audio_native_open(asr_audio_reader_t *r, char *errbuf, size_t errbuf_len);
asr_err_t asr__audio_native_read(asr_audio_reader_t *r, float *buf, size_t n, size_t *n_read);

/* audio_ffmpeg.c: demuxer + decoder setup over the reader's byte source (r->name and the byte
 * source are set), reads through them, the container's duration (-1 if unknown) and teardown of
 * FFmpeg's objects (NULL-safe parts, the reader itself stays). */
asr_err_t asr__audio_ff_open(asr_audio_reader_t *r, const char *url, char *errbuf,
                             size_t errbuf_len);
asr_err_t asr__audio_ff_read(asr_audio_reader_t *r, float *buf, size_t n, size_t *n_read);
double asr__audio_ff_duration(const asr_audio_reader_t *r);
void asr__audio_ff_close(asr_audio_reader_t *r);
#endif
