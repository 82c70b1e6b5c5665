/* audio: the RIFF/WAVE chunk walk of the readers (audio_native.c): the native PCM path and the
 * facts behind asr_audio_wav_truncated. */
#ifndef ASR_AUDIO_WAV_H
#define ASR_AUDIO_WAV_H

#include <stddef.h>
#include <stdint.h>

/* Reads up to n bytes at offset off; returns the count (short at end of input), -1 on error. */
typedef int64_t (*asr_wav_read_fn)(void *ctx, int64_t off, uint8_t *buf, size_t n);

typedef struct {
    uint16_t format, channels, block_align, bits; /* from the fmt chunk (0 when none came first) */
    uint32_t rate;
    int64_t data_off;   /* first byte of the data chunk's samples */
    uint32_t data_size; /* as declared (0 or 0xFFFFFFFF: a streaming writer's placeholder) */
    int odd_chunk;      /* a chunk of odd size (padded to even) came before the data */
} asr_wav_hdr_t;

/* Walks the chunks of a RIFF/WAVE input (at most 64 before the data chunk). 1 when the data
 * chunk was found (h filled), 0 when the input is not RIFF/WAVE or has no data chunk. */
int asr_wav_scan(asr_wav_read_fn rd, void *ctx, asr_wav_hdr_t *h);

/* The data chunk's samples are 16 kHz mono 16-bit PCM with a real declared size, the one layout
 * read without FFmpeg. */
int asr_wav_is_native(const asr_wav_hdr_t *h);
#endif
