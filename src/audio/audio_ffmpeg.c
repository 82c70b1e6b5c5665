/* audio: the FFmpeg path of the readers (libavformat/libavcodec/libswresample), for every input
 * but the 16 kHz mono 16-bit WAV that audio_native.c reads.
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
 * - FFmpeg's libraries are opened on first need (ffmpeg_dl.c) and their logging silenced then.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "audio/audio_int.h"
#include "audio/ffmpeg_dl.h"
#include "core/core.h"

#define IO_BUF_SIZE 32768 /* AVIOContext buffer */
#define SLICE_OUT 16384   /* max output samples converted from one frame per step */
#define MAX_CHANNELS 64   /* swresample's limit */
#define MIN_RATE 1000     /* below this, resampling ratios become absurd */
#define MAX_RATE 768000   /* above this, the resampler's filter gets huge */

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
asr_err_t asr__audio_ff_open(asr_audio_reader_t *r, const char *url, char *errbuf,
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

asr_err_t asr_audio_preload_ffmpeg(char *errbuf, size_t errbuf_len) {
    return asr_ff_load(errbuf, errbuf_len) == 0 ? ASR_OK : ASR_ERR_AUDIO;
}

void asr__audio_ff_close(asr_audio_reader_t *r) {
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

double asr__audio_ff_duration(const asr_audio_reader_t *r) {
    if (!r || !r->fmt)
        return -1;
    if (r->fmt->duration != AV_NOPTS_VALUE && r->fmt->duration > 0)
        return (double)r->fmt->duration / AV_TIME_BASE;
    const AVStream *st = r->fmt->streams[r->stream];
    if (st->duration != AV_NOPTS_VALUE && st->duration > 0 && st->time_base.den > 0)
        return (double)st->duration * av_q2d(st->time_base);
    return -1;
}

/* ---- conversion ---- */

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
        return asr__audio_fail(r, ASR_ERR_NOMEM, "out of memory");
    float *p = asr_realloc(r->pend, cap * sizeof(float));
    if (!p)
        return asr__audio_fail(r, ASR_ERR_NOMEM, "out of memory");
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
            return asr__audio_fail(r, map_averr(got), "resampler error");
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
                return asr__audio_fail(r, ASR_ERR_NOMEM, "out of memory");
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
            return asr__audio_fail(r, ASR_ERR_AUDIO, "resampler error");
        asr_err_t err = pend_reserve(r, (size_t)room);
        if (err != ASR_OK)
            return err;
        uint8_t *outp = (uint8_t *)(r->pend + r->pend_len);
        int got = swr_convert(r->swr, &outp, room, in, n_in);
        if (got < 0)
            return asr__audio_fail(r, map_averr(got), "resampler error");
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
                asr__audio_fail(r, ASR_ERR_IO, "read error (%s)", strerror(r->io_errno));
                return;
            }
            if (ret != AVERROR_EOF)
                skip_bad(r, ret, NULL);
            avcodec_send_packet(r->dec, NULL);
            r->state = ASR_AUDIO_ST_FLUSHED;
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

/* Produces at least one sample into pend, or moves to ASR_AUDIO_ST_DONE / ASR_AUDIO_ST_FAILED. */
static asr_err_t produce(asr_audio_reader_t *r) {
    for (;;) {
        if (r->state == ASR_AUDIO_ST_FAILED)
            return r->failed;
        if (r->pend_len > r->pend_pos)
            return ASR_OK;
        if (r->have_frame) {
            asr_err_t err = convert_slice(r);
            if (err != ASR_OK)
                return err;
            continue;
        }
        if (r->state == ASR_AUDIO_ST_DONE)
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
                if (r->state == ASR_AUDIO_ST_FAILED)
                    return err;
                continue; /* skipped */
            }
            r->have_frame = 1;
            r->frame_off = 0;
        } else if (ret == AVERROR(EAGAIN) && r->state == ASR_AUDIO_ST_RUN) {
            feed_packet(r);
        } else if (ret == AVERROR_EOF || ret == AVERROR(EAGAIN)) {
            asr_err_t err = drain_swr(r);
            if (err != ASR_OK)
                return err;
            r->state = ASR_AUDIO_ST_DONE;
        } else {
            skip_bad(r, ret, NULL); /* damaged data inside the decoder: keep going */
            if (r->state == ASR_AUDIO_ST_FLUSHED &&
                ++r->n_drain_err > 1000) /* a decoder that never drains */
                r->state = ASR_AUDIO_ST_DONE;
        }
    }
}

/* The FFmpeg branch of asr_audio_read. */
asr_err_t asr__audio_ff_read(asr_audio_reader_t *r, float *buf, size_t n, size_t *n_read) {
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
            break; /* ASR_AUDIO_ST_DONE */
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
    if (got == 0 && n > 0 && r->state == ASR_AUDIO_ST_DONE && r->n_out == 0 && r->n_bad)
        return asr__audio_fail(r, ASR_ERR_AUDIO, "no audio could be decoded (%s)", r->why);
    return ASR_OK;
}
