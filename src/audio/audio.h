/* audio: decode any container/codec with FFmpeg's libraries (16 kHz mono 16-bit WAV natively)
 * and resample to 16 kHz mono float.
 * Readers stream: memory stays bounded whatever the file length. */
#ifndef ASR_AUDIO_H
#define ASR_AUDIO_H

#include <stddef.h>
#include <stdint.h>
#include "asr/common.h"

#define ASR_AUDIO_RATE 16000

typedef struct asr_audio_reader asr_audio_reader_t;

/* Opens `path` for streaming decode. On failure writes a one-line reason to errbuf and returns
 * ASR_ERR_NOT_FOUND, ASR_ERR_IO or ASR_ERR_AUDIO (not audio / no audio stream / corrupt).
 * *out is owned by the caller (asr_audio_close). */
asr_err_t asr_audio_open(const char *path, asr_audio_reader_t **out, char *errbuf,
                         size_t errbuf_len);
/* Same, decoding from a memory buffer (borrowed until close). */
asr_err_t asr_audio_open_memory(const uint8_t *data, size_t len, asr_audio_reader_t **out,
                                char *errbuf, size_t errbuf_len);
/* Reads up to `n` samples (16 kHz mono float in [-1,1]) into buf; *n_read = 0 at end of stream.
 * A decode error mid-stream returns ASR_ERR_AUDIO with a reason from asr_audio_errmsg(). */
asr_err_t asr_audio_read(asr_audio_reader_t *r, float *buf, size_t n, size_t *n_read);
/* 1 when the input is a RIFF/WAVE whose data chunk declares more bytes than the input holds (a
 * placeholder size of 0 or 0xFFFFFFFF, as streaming writers leave it, is not a declaration),
 * with both sizes written; else 0. */
int asr_audio_wav_truncated(const asr_audio_reader_t *r, unsigned long long *declared,
                            unsigned long long *have);
/* Duration from the container in seconds, or -1 if unknown. */
double asr_audio_duration(const asr_audio_reader_t *r);
const char *asr_audio_errmsg(const asr_audio_reader_t *r);
void asr_audio_close(asr_audio_reader_t *r);

/* Opens FFmpeg's libraries now (they are otherwise opened by the first input that needs them:
 * anything but 16 kHz mono 16-bit WAV). ASR_ERR_AUDIO with the reason when they are missing. */
asr_err_t asr_audio_preload_ffmpeg(char *errbuf, size_t errbuf_len);

/* Convenience: decodes a whole file to PCM (*out_pcm owned by caller, free()). Empty audio (no
 * samples) is an ASR_ERR_AUDIO error. */
asr_err_t asr_audio_load(const char *path, float **out_pcm, size_t *out_n, char *errbuf,
                         size_t errbuf_len);

/* A restartable file source for the engine's streamed transcription (asr_pcm_source_t in
 * include/asr/engine.h): read and rewind callbacks over a reader that is reopened on rewind. */
typedef struct {
    char *path;
    asr_audio_reader_t *r;
    size_t n_read; /* samples delivered since the last rewind */
    char errmsg[512];
} asr_audio_file_source_t;

/* Opens `path` (probing it, so a bad file fails here with a one-line reason). */
asr_err_t asr_audio_file_source_open(asr_audio_file_source_t *fs, const char *path, char *errbuf,
                                     size_t errbuf_len);
/* Callbacks for asr_pcm_source_t; user_data is the asr_audio_file_source_t. A file that ends
 * before half of the duration its container declares is reported as truncated (ASR_ERR_AUDIO). */
asr_err_t asr_audio_file_source_read(void *user_data, float *buf, size_t n, size_t *n_read);
asr_err_t asr_audio_file_source_rewind(void *user_data);
void asr_audio_file_source_close(asr_audio_file_source_t *fs);
#endif
