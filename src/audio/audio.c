/* audio: streaming decoder built on FFmpeg (libavformat/libavcodec/libswresample), with a native
 * path for 16 kHz mono 16-bit WAV.
 *
 * Pipeline per reader: byte source (file descriptor or borrowed memory, always through our own
 * AVIOContext) -> demuxer -> decoder of the best audio stream -> conversion to 16 kHz mono float.
 * Conversion is a plain sample-format cast when the decoded frames are already 16 kHz mono (so a
 * 16 kHz mono s16 WAV yields exactly s/32768.0f); otherwise swresample does it, with a custom
 * matrix that averages all input channels (what `ffmpeg -ac 1` gives for stereo).
 *
 * Invariants:
 * - Memory is bounded whatever the input length: the reader holds at most one decoded frame plus
 *   one converted slice of it (SLICE_OUT samples, plus the resampler's delay), besides FFmpeg's
 *   own bounded probing buffers; never the file.
 * - Demuxers can never open other resources (io_open is denied and the protocol whitelist is
 *   empty), so a playlist, concat list or reference movie cannot make us read other files or
 *   URLs.
 * - Mid-stream damage is tolerated: bad packets are skipped and a truncated stream simply ends;
 *   it is an error only when the stream ends without a single decoded sample.
 * - Returned samples are finite and clamped to [-1, 1].
 * - FFmpeg's libraries are opened on first need (ffmpeg_dl.c) and their logging silenced then;
 *   16 kHz mono 16-bit PCM WAV from a file or memory never needs them (read_native).
 */
#include "audio/audio.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audio/ffmpeg_dl.h"
#include "audio/wav.h"
#include "core/core.h"

#define IO_BUF_SIZE 32768 /* AVIOContext buffer */
#define SLICE_OUT 16384   /* max output samples converted from one frame per step */
#define MAX_CHANNELS 64   /* swresample's limit */
#define MIN_RATE 1000     /* below this, resampling ratios become absurd */
#define MAX_RATE 768000   /* above this, the resampler's filter gets huge */
#define LOAD_CHUNK 65536  /* samples per read in asr_audio_load */
#define NATIVE_BUF 32768  /* bytes per read of a native WAV file */

enum { ST_RUN, ST_FLUSHED, ST_DONE, ST_FAILED };

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

    AVIOContext *avio;
    AVFormatContext *fmt;
    AVCodecContext *dec;
    AVPacket *pkt;
    AVFrame *frame; /* current decoded frame, valid while have_frame */
    int have_frame;
    int frame_off; /* input samples of `frame` already converted */
    int stream;

    /* conversion currently configured (from the last frame's parameters) */
    int cfg_valid, cfg_fmt, cfg_rate, cfg_nch;
    SwrContext *swr; /* NULL = passthrough (source is 16 kHz mono) */

    float *pend; /* converted samples not yet returned: [pend_pos, pend_len) */
    size_t pend_len, pend_pos, pend_cap;

    int state;
    int64_t n_out;    /* samples produced so far */
    int n_bad;        /* packets, frames or reads that failed and were skipped */
    int n_drain_err;  /* errors while draining the decoder at the end */
    char why[160];    /* reason of the last such failure, for "no audio could be decoded" */
    asr_err_t failed; /* sticky error once state == ST_FAILED */
    char *name;       /* path or "<memory>", for messages */
    char errmsg[512];
};

static const char *averr(int e, char *buf, size_t len) {
    if (av_strerror(e, buf, len) < 0)
        snprintf(buf, len, "error %d", e);
    return buf;
}

/* ---- byte source callbacks ---- */

static int io_read_cb(void *opaque, uint8_t *buf, int buf_size) {
    asr_audio_reader_t *r = opaque;
    if (buf_size <= 0)
        return AVERROR_EOF;
    if (r->mem) {
        if (r->pos >= r->size)
            return AVERROR_EOF;
        int64_t n = r->size - r->pos;
        if (n > buf_size)
            n = buf_size;
        memcpy(buf, r->mem + r->pos, (size_t)n);
        r->pos += n;
        return (int)n;
    }
    for (;;) {
        ssize_t n = r->size >= 0 ? pread(r->fd, buf, (size_t)buf_size, (off_t)r->pos)
                                 : read(r->fd, buf, (size_t)buf_size);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            r->io_errno = errno;
            return AVERROR(errno);
        }
        if (n == 0)
            return AVERROR_EOF;
        r->pos += n;
        return (int)n;
    }
}

static int64_t io_seek_cb(void *opaque, int64_t offset, int whence) {
    asr_audio_reader_t *r = opaque;
    whence &= ~AVSEEK_FORCE;
    if (whence == AVSEEK_SIZE)
        return r->size;
    int64_t base;
    switch (whence) {
    case SEEK_SET:
        base = 0;
        break;
    case SEEK_CUR:
        base = r->pos;
        break;
    case SEEK_END:
        base = r->size;
        break;
    default:
        return AVERROR(EINVAL);
    }
    if ((offset > 0 && base > INT64_MAX - offset) || base + offset < 0)
        return AVERROR(EINVAL);
    r->pos = base + offset; /* past the end is allowed; reads then hit EOF */
    return r->pos;
}

/* Demuxers that reference other resources (playlists, concat lists, mov data references) must not
 * reach the filesystem or network through us. */
static int deny_io_open(struct AVFormatContext *s, AVIOContext **pb, const char *url, int flags,
                        AVDictionary **options) {
    (void)s, (void)url, (void)flags, (void)options;
    *pb = NULL;
    return AVERROR(EPERM);
}

/* ---- open ---- */

/* FFmpeg's ENOMEM is not trustworthy as "out of memory" for demuxers and decoders: hostile input
 * produces it (absurd sizes beyond av_max_alloc, the hls demuxer on an unnamed input). So their
 * failures count as bad audio; only our own checked allocations and the resampler, whose sizes we
 * bound, report ASR_ERR_NOMEM. */
static asr_err_t map_averr(int e) { return e == AVERROR(ENOMEM) ? ASR_ERR_NOMEM : ASR_ERR_AUDIO; }

/* Demuxer + decoder setup, shared by both openers. r->name and the byte source are set. */
static asr_err_t open_streams(asr_audio_reader_t *r, const char *url, char *errbuf,
                              size_t errbuf_len) {
    char e[256];
    if (asr_ff_load(e, sizeof e) != 0) {
        asr_errf(errbuf, errbuf_len, "%s: %s", r->name, e);
        return ASR_ERR_AUDIO;
    }
    r->ff = 1;
    uint8_t *iobuf = av_malloc(IO_BUF_SIZE);
    if (iobuf)
        r->avio = avio_alloc_context(iobuf, IO_BUF_SIZE, 0, r, io_read_cb, NULL,
                                     r->size >= 0 ? io_seek_cb : NULL);
    if (!r->avio) {
        av_free(iobuf);
        asr_errf(errbuf, errbuf_len, "%s: out of memory", r->name);
        return ASR_ERR_NOMEM;
    }
    r->fmt = avformat_alloc_context();
    if (!r->fmt) {
        asr_errf(errbuf, errbuf_len, "%s: out of memory", r->name);
        return ASR_ERR_NOMEM;
    }
    r->fmt->pb = r->avio;
    r->fmt->flags |= AVFMT_FLAG_CUSTOM_IO;
    r->fmt->io_open = deny_io_open;
    /* Nested demuxers (concat) open their inputs with a fresh context that inherits only the
     * protocol whitelist, so that must allow nothing either. */
    AVDictionary *opts = NULL;
    av_dict_set(&opts, "protocol_whitelist", "none", 0);
    /* url only guides probing by extension: the bytes always come from r->avio */
    int ret = avformat_open_input(&r->fmt, url, NULL, &opts);
    av_dict_free(&opts);
    if (ret < 0) { /* r->fmt was freed and set to NULL */
        if (r->io_errno) {
            asr_errf(errbuf, errbuf_len, "%s: read error (%s)", r->name, strerror(r->io_errno));
            return ASR_ERR_IO;
        }
        asr_errf(errbuf, errbuf_len, "%s: not an audio file (%s)", r->name,
                 averr(ret, e, sizeof e));
        return ASR_ERR_AUDIO;
    }
    ret = avformat_find_stream_info(r->fmt, NULL);
    if (ret < 0 && r->io_errno) {
        asr_errf(errbuf, errbuf_len, "%s: read error (%s)", r->name, strerror(r->io_errno));
        return ASR_ERR_IO;
    }
    if (ret < 0) {
        asr_errf(errbuf, errbuf_len, "%s: corrupt or truncated header (%s)", r->name,
                 averr(ret, e, sizeof e));
        return ASR_ERR_AUDIO;
    }
    const AVCodec *codec = NULL;
    ret = av_find_best_stream(r->fmt, AVMEDIA_TYPE_AUDIO, -1, -1, &codec, 0);
    if (ret == AVERROR_STREAM_NOT_FOUND) {
        asr_errf(errbuf, errbuf_len, "%s: no audio stream", r->name);
        return ASR_ERR_AUDIO;
    }
    if (ret < 0 || !codec) {
        enum AVCodecID id = AV_CODEC_ID_NONE;
        for (unsigned i = 0; i < r->fmt->nb_streams; i++)
            if (r->fmt->streams[i]->codecpar->codec_type == AVMEDIA_TYPE_AUDIO)
                id = r->fmt->streams[i]->codecpar->codec_id;
        asr_errf(errbuf, errbuf_len, "%s: unsupported audio codec %s", r->name,
                 avcodec_get_name(id));
        return ASR_ERR_AUDIO;
    }
    r->stream = ret;
    for (unsigned i = 0; i < r->fmt->nb_streams; i++)
        if ((int)i != r->stream)
            r->fmt->streams[i]->discard = AVDISCARD_ALL;
    AVStream *st = r->fmt->streams[r->stream];
    r->dec = avcodec_alloc_context3(codec);
    r->pkt = av_packet_alloc();
    r->frame = av_frame_alloc();
    if (!r->dec || !r->pkt || !r->frame) {
        asr_errf(errbuf, errbuf_len, "%s: out of memory", r->name);
        return ASR_ERR_NOMEM;
    }
    ret = avcodec_parameters_to_context(r->dec, st->codecpar);
    if (ret >= 0) {
        r->dec->pkt_timebase = st->time_base;
        r->dec->thread_count = 1; /* workers already run in parallel; keep decode predictable */
        ret = avcodec_open2(r->dec, codec, NULL);
    }
    if (ret < 0) {
        asr_errf(errbuf, errbuf_len, "%s: cannot open %s decoder (%s)", r->name, codec->name,
                 averr(ret, e, sizeof e));
        return ASR_ERR_AUDIO;
    }
    return ASR_OK;
}

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
static asr_err_t open_native(asr_audio_reader_t *r, char *errbuf, size_t errbuf_len) {
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

/* The native reader, else FFmpeg's demuxer and decoder. */
static asr_err_t open_any(asr_audio_reader_t *r, const char *url, char *errbuf, size_t errbuf_len) {
    asr_err_t err = open_native(r, errbuf, errbuf_len);
    return err == ASR_ERR_UNSUPPORTED ? open_streams(r, url, errbuf, errbuf_len) : err;
}

asr_err_t asr_audio_preload_ffmpeg(char *errbuf, size_t errbuf_len) {
    return asr_ff_load(errbuf, errbuf_len) == 0 ? ASR_OK : ASR_ERR_AUDIO;
}

static asr_audio_reader_t *reader_new(const char *name) {
    asr_audio_reader_t *r = asr_xcalloc(1, sizeof *r);
    r->fd = -1;
    r->size = -1;
    r->name = asr_xstrdup(name);
    r->state = ST_RUN;
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
    asr_err_t err = open_any(r, path, errbuf, errbuf_len);
    if (err != ASR_OK) {
        asr_audio_close(r);
        return err;
    }
    *out = r;
    return ASR_OK;
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
    asr_err_t err = open_any(r, "", errbuf, errbuf_len);
    if (err != ASR_OK) {
        asr_audio_close(r);
        return err;
    }
    *out = r;
    return ASR_OK;
}

void asr_audio_close(asr_audio_reader_t *r) {
    if (!r)
        return;
    if (r->ff) {
        swr_free(&r->swr);
        av_frame_free(&r->frame);
        av_packet_free(&r->pkt);
        avcodec_free_context(&r->dec);
        avformat_close_input(&r->fmt); /* AVFMT_FLAG_CUSTOM_IO: leaves r->avio to us */
        if (r->avio) {
            av_freep(&r->avio->buffer);
            avio_context_free(&r->avio);
        }
    }
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
    if (!r || !r->fmt)
        return -1;
    if (r->fmt->duration != AV_NOPTS_VALUE && r->fmt->duration > 0)
        return (double)r->fmt->duration / AV_TIME_BASE;
    const AVStream *st = r->fmt->streams[r->stream];
    if (st->duration != AV_NOPTS_VALUE && st->duration > 0 && st->time_base.den > 0)
        return (double)st->duration * av_q2d(st->time_base);
    return -1;
}

const char *asr_audio_errmsg(const asr_audio_reader_t *r) { return r ? r->errmsg : ""; }

/* ---- conversion ---- */

static asr_err_t fail(asr_audio_reader_t *r, asr_err_t err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static asr_err_t fail(asr_audio_reader_t *r, asr_err_t err, const char *fmt, ...) {
    int off = snprintf(r->errmsg, sizeof r->errmsg, "%s: ", r->name);
    if (off < 0 || (size_t)off >= sizeof r->errmsg)
        off = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->errmsg + off, sizeof r->errmsg - (size_t)off, fmt, ap);
    va_end(ap);
    r->state = ST_FAILED;
    r->failed = err;
    return err;
}

/* Records a skipped packet or frame; the stream goes on. */
static void skip_bad(asr_audio_reader_t *r, int averr_code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void skip_bad(asr_audio_reader_t *r, int averr_code, const char *fmt, ...) {
    r->n_bad++;
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->why, sizeof r->why, fmt, ap);
        va_end(ap);
    } else {
        averr(averr_code, r->why, sizeof r->why);
    }
}

static asr_err_t pend_reserve(asr_audio_reader_t *r, size_t extra) {
    if (r->pend_len + extra <= r->pend_cap)
        return ASR_OK;
    size_t cap = r->pend_len + extra;
    if (cap < r->pend_cap * 2) /* the need is bounded (a slice plus the resampler's delay) */
        cap = r->pend_cap * 2;
    if (cap > SIZE_MAX / sizeof(float))
        return fail(r, ASR_ERR_NOMEM, "out of memory");
    float *p = asr_realloc(r->pend, cap * sizeof(float));
    if (!p)
        return fail(r, ASR_ERR_NOMEM, "out of memory");
    r->pend = p;
    r->pend_cap = cap;
    return ASR_OK;
}

/* Empties the resampler's delay line into pend (at EOF or before a format change). */
static asr_err_t drain_swr(asr_audio_reader_t *r) {
    if (!r->swr)
        return ASR_OK;
    for (;;) {
        int room = swr_get_out_samples(r->swr, 0);
        if (room <= 0)
            return ASR_OK;
        asr_err_t err = pend_reserve(r, (size_t)room);
        if (err != ASR_OK)
            return err;
        uint8_t *outp = (uint8_t *)(r->pend + r->pend_len);
        int got = swr_convert(r->swr, &outp, room, NULL, 0);
        if (got < 0)
            return fail(r, map_averr(got), "resampler error");
        if (got == 0)
            return ASR_OK;
        r->pend_len += (size_t)got;
    }
}

/* Makes the conversion match the frame's parameters; rebuilds it when they change mid-stream.
 * A frame we cannot convert returns ASR_ERR_AUDIO and is skipped; only running out of memory
 * fails the reader. */
static asr_err_t configure(asr_audio_reader_t *r, const AVFrame *f) {
    int fmt = f->format, rate = f->sample_rate, nch = f->ch_layout.nb_channels;
    if (r->cfg_valid && fmt == r->cfg_fmt && rate == r->cfg_rate && nch == r->cfg_nch)
        return ASR_OK;
    if (fmt < 0 || av_get_bytes_per_sample(fmt) <= 0) {
        skip_bad(r, 0, "unsupported sample format %d", fmt);
        return ASR_ERR_AUDIO;
    }
    if (nch < 1 || nch > MAX_CHANNELS) {
        skip_bad(r, 0, "unsupported channel count %d", nch);
        return ASR_ERR_AUDIO;
    }
    if (rate < MIN_RATE || rate > MAX_RATE) {
        skip_bad(r, 0, "unsupported sample rate %d Hz", rate);
        return ASR_ERR_AUDIO;
    }
    asr_err_t err = drain_swr(r);
    if (err != ASR_OK)
        return err;
    swr_free(&r->swr);
    r->cfg_valid = 0;
    if (rate != ASR_AUDIO_RATE || nch != 1) {
        AVChannelLayout in_layout, out_layout = AV_CHANNEL_LAYOUT_MONO;
        av_channel_layout_default(&in_layout, nch); /* semantics unused: our matrix averages */
        int ret = swr_alloc_set_opts2(&r->swr, &out_layout, AV_SAMPLE_FMT_FLT, ASR_AUDIO_RATE,
                                      &in_layout, fmt, rate, 0, NULL);
        av_channel_layout_uninit(&in_layout);
        if (ret >= 0) {
            double matrix[MAX_CHANNELS];
            for (int c = 0; c < nch; c++)
                matrix[c] = 1.0 / nch;
            ret = swr_set_matrix(r->swr, matrix, nch);
        }
        if (ret >= 0)
            ret = swr_init(r->swr);
        if (ret < 0) {
            swr_free(&r->swr);
            if (ret == AVERROR(ENOMEM))
                return fail(r, ASR_ERR_NOMEM, "out of memory");
            char e[128];
            skip_bad(r, 0, "cannot convert %d Hz %d-channel audio (%s)", rate, nch,
                     averr(ret, e, sizeof e));
            return ASR_ERR_AUDIO;
        }
    }
    r->cfg_valid = 1;
    r->cfg_fmt = fmt;
    r->cfg_rate = rate;
    r->cfg_nch = nch;
    return ASR_OK;
}

/* Mono 16 kHz frames: a plain cast (planar and packed are the same thing for one channel). */
static void cast_mono(float *dst, const uint8_t *src, int fmt, int n) {
    switch (av_get_packed_sample_fmt(fmt)) {
    case AV_SAMPLE_FMT_U8:
        for (int i = 0; i < n; i++)
            dst[i] = ((int)src[i] - 128) / 128.0f;
        break;
    case AV_SAMPLE_FMT_S16:
        for (int i = 0; i < n; i++) {
            int16_t v;
            memcpy(&v, src + 2 * i, 2);
            dst[i] = v / 32768.0f;
        }
        break;
    case AV_SAMPLE_FMT_S32:
        for (int i = 0; i < n; i++) {
            int32_t v;
            memcpy(&v, src + 4 * i, 4);
            dst[i] = (float)v / 2147483648.0f;
        }
        break;
    case AV_SAMPLE_FMT_S64:
        for (int i = 0; i < n; i++) {
            int64_t v;
            memcpy(&v, src + 8 * i, 8);
            dst[i] = (float)((double)v / 9223372036854775808.0);
        }
        break;
    case AV_SAMPLE_FMT_FLT:
        memcpy(dst, src, (size_t)n * sizeof(float));
        break;
    case AV_SAMPLE_FMT_DBL:
        for (int i = 0; i < n; i++) {
            double v;
            memcpy(&v, src + 8 * i, 8);
            dst[i] = (float)v;
        }
        break;
    default:
        memset(dst, 0, (size_t)n * sizeof(float)); /* configure() rejected anything else */
        break;
    }
}

/* Converts the next slice of the current frame into pend. Slicing bounds pend even for huge frames
 * or large upsampling ratios. */
static asr_err_t convert_slice(asr_audio_reader_t *r) {
    AVFrame *f = r->frame;
    int avail = f->nb_samples - r->frame_off;
    int max_in = (int)((int64_t)SLICE_OUT * r->cfg_rate / ASR_AUDIO_RATE);
    int n_in = avail < max_in ? avail : max_in;
    if (n_in < 1)
        n_in = avail < 1 ? 0 : 1;
    int bps = av_get_bytes_per_sample(f->format);
    if (!r->swr) {
        asr_err_t err = pend_reserve(r, (size_t)n_in);
        if (err != ASR_OK)
            return err;
        cast_mono(r->pend + r->pend_len, f->extended_data[0] + (size_t)r->frame_off * bps,
                  f->format, n_in);
        r->pend_len += (size_t)n_in;
    } else {
        const uint8_t *in[MAX_CHANNELS];
        int nch = r->cfg_nch;
        if (av_sample_fmt_is_planar(f->format)) {
            for (int c = 0; c < nch; c++)
                in[c] = f->extended_data[c] + (size_t)r->frame_off * bps;
        } else {
            in[0] = f->extended_data[0] + (size_t)r->frame_off * bps * nch;
        }
        int room = swr_get_out_samples(r->swr, n_in);
        if (room < 0)
            return fail(r, ASR_ERR_AUDIO, "resampler error");
        asr_err_t err = pend_reserve(r, (size_t)room);
        if (err != ASR_OK)
            return err;
        uint8_t *outp = (uint8_t *)(r->pend + r->pend_len);
        int got = swr_convert(r->swr, &outp, room, in, n_in);
        if (got < 0)
            return fail(r, map_averr(got), "resampler error");
        r->pend_len += (size_t)got;
    }
    r->frame_off += n_in;
    if (r->frame_off >= f->nb_samples) {
        av_frame_unref(f);
        r->have_frame = 0;
    }
    return ASR_OK;
}

/* ---- decode loop ---- */

/* Feeds the decoder one packet of our stream, or the flush packet at the end of the input. A
 * demuxer error past the header ends the data (a truncated upload still transcribes); an OS read
 * error fails the reader. */
static void feed_packet(asr_audio_reader_t *r) {
    for (;;) {
        int ret = av_read_frame(r->fmt, r->pkt);
        if (ret < 0) {
            if (r->io_errno) { /* the OS failed us, unlike a file that merely ends early */
                fail(r, ASR_ERR_IO, "read error (%s)", strerror(r->io_errno));
                return;
            }
            if (ret != AVERROR_EOF)
                skip_bad(r, ret, NULL);
            avcodec_send_packet(r->dec, NULL);
            r->state = ST_FLUSHED;
            return;
        }
        if (r->pkt->stream_index != r->stream) {
            av_packet_unref(r->pkt);
            continue;
        }
        ret = avcodec_send_packet(r->dec, r->pkt);
        av_packet_unref(r->pkt);
        if (ret < 0 && ret != AVERROR(EAGAIN))
            skip_bad(r, ret, NULL); /* a damaged packet */
        return;
    }
}

/* Produces at least one sample into pend, or moves to ST_DONE / ST_FAILED. */
static asr_err_t produce(asr_audio_reader_t *r) {
    for (;;) {
        if (r->state == ST_FAILED)
            return r->failed;
        if (r->pend_len > r->pend_pos)
            return ASR_OK;
        if (r->have_frame) {
            asr_err_t err = convert_slice(r);
            if (err != ASR_OK)
                return err;
            continue;
        }
        if (r->state == ST_DONE)
            return ASR_OK;
        int ret = avcodec_receive_frame(r->dec, r->frame);
        if (ret == 0) {
            if (r->frame->nb_samples <= 0) {
                av_frame_unref(r->frame);
                continue;
            }
            asr_err_t err = configure(r, r->frame);
            if (err != ASR_OK) {
                av_frame_unref(r->frame);
                if (r->state == ST_FAILED)
                    return err;
                continue; /* skipped */
            }
            r->have_frame = 1;
            r->frame_off = 0;
        } else if (ret == AVERROR(EAGAIN) && r->state == ST_RUN) {
            feed_packet(r);
        } else if (ret == AVERROR_EOF || ret == AVERROR(EAGAIN)) {
            asr_err_t err = drain_swr(r);
            if (err != ASR_OK)
                return err;
            r->state = ST_DONE;
        } else {
            skip_bad(r, ret, NULL); /* damaged data inside the decoder: keep going */
            if (r->state == ST_FLUSHED && ++r->n_drain_err > 1000) /* a decoder that never drains */
                r->state = ST_DONE;
        }
    }
}

/* Native WAV: up to n samples from [pos, data_end); a trailing odd byte is not a sample. */
static asr_err_t read_native(asr_audio_reader_t *r, float *buf, size_t n, size_t *n_read) {
    if (r->state == ST_FAILED)
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
            return fail(r, ASR_ERR_IO, "read error (%s)", strerror(r->io_errno));
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

asr_err_t asr_audio_read(asr_audio_reader_t *r, float *buf, size_t n, size_t *n_read) {
    *n_read = 0;
    if (!r || (!buf && n))
        return ASR_ERR_INVALID;
    if (r->native)
        return read_native(r, buf, n, n_read);
    size_t got = 0;
    while (got < n) {
        asr_err_t err = produce(r);
        if (err != ASR_OK) {
            if (got) /* deliver what we have; the sticky error comes on the next call */
                break;
            return err;
        }
        size_t avail = r->pend_len - r->pend_pos;
        if (avail == 0)
            break; /* ST_DONE */
        size_t k = avail < n - got ? avail : n - got;
        /* the finite [-1,1] contract, whatever the codec or the resampler's overshoot */
        for (size_t i = 0; i < k; i++) {
            float v = r->pend[r->pend_pos + i];
            buf[got + i] = v > 1.0f ? 1.0f : v < -1.0f ? -1.0f : v == v ? v : 0.0f;
        }
        got += k;
        r->pend_pos += k;
        if (r->pend_pos == r->pend_len)
            r->pend_pos = r->pend_len = 0;
    }
    r->n_out += (int64_t)got;
    *n_read = got;
    if (got == 0 && n > 0 && r->state == ST_DONE && r->n_out == 0 && r->n_bad)
        return fail(r, ASR_ERR_AUDIO, "no audio could be decoded (%s)", r->why);
    return ASR_OK;
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
