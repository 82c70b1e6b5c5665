/* audio: RIFF/WAVE chunk walk. Little-endian fields; chunks are padded to even sizes. */
#include "audio/wav.h"

#include <string.h>

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

int asr_wav_scan(asr_wav_read_fn rd, void *ctx, asr_wav_hdr_t *h) {
    memset(h, 0, sizeof *h);
    uint8_t b[24];
    if (rd(ctx, 0, b, 12) != 12 || memcmp(b, "RIFF", 4) || memcmp(b + 8, "WAVE", 4))
        return 0;
    int64_t pos = 12;
    for (int guard = 0; guard < 64; guard++) {
        if (rd(ctx, pos, b, 8) != 8)
            return 0;
        uint32_t size = le32(b + 4);
        if (!memcmp(b, "data", 4)) {
            h->data_off = pos + 8;
            h->data_size = size;
            return 1;
        }
        if (!memcmp(b, "fmt ", 4) && size >= 16 && !h->format) {
            if (rd(ctx, pos + 8, b + 8, 16) != 16)
                return 0;
            h->format = le16(b + 8);
            h->channels = le16(b + 10);
            h->rate = le32(b + 12);
            h->block_align = le16(b + 20);
            h->bits = le16(b + 22);
        }
        h->odd_chunk |= (int)(size & 1);
        pos += 8 + (int64_t)size + (int64_t)(size & 1);
    }
    return 0;
}

int asr_wav_is_native(const asr_wav_hdr_t *h) {
    return h->format == 1 && h->channels == 1 && h->rate == 16000 && h->bits == 16 &&
           h->block_align == 2 && !h->odd_chunk && h->data_size != 0 && h->data_size != 0xFFFFFFFFu;
}
