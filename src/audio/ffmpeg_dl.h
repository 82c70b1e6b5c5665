/* audio: FFmpeg's libraries, loaded when the first input needs them (dlopen), not when asrd
 * starts: linking them pulls ~110 shared libraries into every process (~60 ms of start-up for a
 * one-file `asrd transcribe`), while 16 kHz mono 16-bit WAV, the common case, is read natively.
 *
 * Include after FFmpeg's headers: every FFmpeg function audio_ffmpeg.c calls is redirected to a
 * pointer of the same type in asr_ff, filled by asr_ff_load. */
#ifndef ASR_AUDIO_FFMPEG_DL_H
#define ASR_AUDIO_FFMPEG_DL_H

#include <stddef.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/channel_layout.h>
#include <libavutil/dict.h>
#include <libavutil/error.h>
#include <libavutil/mem.h>
#include <libavutil/samplefmt.h>
#include <libswresample/swresample.h>

/* X(library, function) for every FFmpeg function audio_ffmpeg.c calls */
#define ASR_FF_FUNCS(X)                                                                            \
    X(avutil, av_log_set_level)                                                                    \
    X(avutil, av_strerror)                                                                         \
    X(avutil, av_malloc)                                                                           \
    X(avutil, av_free)                                                                             \
    X(avutil, av_freep)                                                                            \
    X(avutil, av_dict_set)                                                                         \
    X(avutil, av_dict_free)                                                                        \
    X(avutil, av_frame_alloc)                                                                      \
    X(avutil, av_frame_free)                                                                       \
    X(avutil, av_frame_unref)                                                                      \
    X(avutil, av_get_bytes_per_sample)                                                             \
    X(avutil, av_get_packed_sample_fmt)                                                            \
    X(avutil, av_sample_fmt_is_planar)                                                             \
    X(avutil, av_channel_layout_default)                                                           \
    X(avutil, av_channel_layout_uninit)                                                            \
    X(avcodec, avcodec_alloc_context3)                                                             \
    X(avcodec, avcodec_free_context)                                                               \
    X(avcodec, avcodec_parameters_to_context)                                                      \
    X(avcodec, avcodec_open2)                                                                      \
    X(avcodec, avcodec_get_name)                                                                   \
    X(avcodec, avcodec_send_packet)                                                                \
    X(avcodec, avcodec_receive_frame)                                                              \
    X(avcodec, av_packet_alloc)                                                                    \
    X(avcodec, av_packet_free)                                                                     \
    X(avcodec, av_packet_unref)                                                                    \
    X(avformat, avio_alloc_context)                                                                \
    X(avformat, avio_context_free)                                                                 \
    X(avformat, avformat_alloc_context)                                                            \
    X(avformat, avformat_open_input)                                                               \
    X(avformat, avformat_find_stream_info)                                                         \
    X(avformat, avformat_close_input)                                                              \
    X(avformat, av_find_best_stream)                                                               \
    X(avformat, av_read_frame)                                                                     \
    X(swresample, swr_alloc_set_opts2)                                                             \
    X(swresample, swr_set_matrix)                                                                  \
    X(swresample, swr_init)                                                                        \
    X(swresample, swr_free)                                                                        \
    X(swresample, swr_get_out_samples)                                                             \
    X(swresample, swr_convert)

#define ASR_FF_PTR(lib, fn) __typeof__(fn) *fn;
typedef struct {
    ASR_FF_FUNCS(ASR_FF_PTR)
} asr_ff_api_t;
#undef ASR_FF_PTR

extern asr_ff_api_t asr_ff;

/* Loads the libraries once per process (thread-safe); 0, or -1 with a one-line reason in err
 * (the same reason on every later call). */
int asr_ff_load(char *err, size_t err_len);

#ifndef ASR_FF_NO_REDIRECT
#define av_log_set_level asr_ff.av_log_set_level
#define av_strerror asr_ff.av_strerror
#define av_malloc asr_ff.av_malloc
#define av_free asr_ff.av_free
#define av_freep asr_ff.av_freep
#define av_dict_set asr_ff.av_dict_set
#define av_dict_free asr_ff.av_dict_free
#define av_frame_alloc asr_ff.av_frame_alloc
#define av_frame_free asr_ff.av_frame_free
#define av_frame_unref asr_ff.av_frame_unref
#define av_get_bytes_per_sample asr_ff.av_get_bytes_per_sample
#define av_get_packed_sample_fmt asr_ff.av_get_packed_sample_fmt
#define av_sample_fmt_is_planar asr_ff.av_sample_fmt_is_planar
#define av_channel_layout_default asr_ff.av_channel_layout_default
#define av_channel_layout_uninit asr_ff.av_channel_layout_uninit
#define avcodec_alloc_context3 asr_ff.avcodec_alloc_context3
#define avcodec_free_context asr_ff.avcodec_free_context
#define avcodec_parameters_to_context asr_ff.avcodec_parameters_to_context
#define avcodec_open2 asr_ff.avcodec_open2
#define avcodec_get_name asr_ff.avcodec_get_name
#define avcodec_send_packet asr_ff.avcodec_send_packet
#define avcodec_receive_frame asr_ff.avcodec_receive_frame
#define av_packet_alloc asr_ff.av_packet_alloc
#define av_packet_free asr_ff.av_packet_free
#define av_packet_unref asr_ff.av_packet_unref
#define avio_alloc_context asr_ff.avio_alloc_context
#define avio_context_free asr_ff.avio_context_free
#define avformat_alloc_context asr_ff.avformat_alloc_context
#define avformat_open_input asr_ff.avformat_open_input
#define avformat_find_stream_info asr_ff.avformat_find_stream_info
#define avformat_close_input asr_ff.avformat_close_input
#define av_find_best_stream asr_ff.av_find_best_stream
#define av_read_frame asr_ff.av_read_frame
#define swr_alloc_set_opts2 asr_ff.swr_alloc_set_opts2
#define swr_set_matrix asr_ff.swr_set_matrix
#define swr_init asr_ff.swr_init
#define swr_free asr_ff.swr_free
#define swr_get_out_samples asr_ff.swr_get_out_samples
#define swr_convert asr_ff.swr_convert
#endif
#endif
