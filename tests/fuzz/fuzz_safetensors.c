/* Fuzz target: the safetensors front. Each input is parsed as one safetensors image (every
 * tensor that enters the table must lie inside the input), then built into a Whisper table as a
 * one-file checkpoint with config.json's heads (fused tensors in owned memory, the rest inside
 * the input: each is decoded whole, so a wrong size or offset reads out of bounds under ASan). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "engine/safetensors.h"

/* Decodes every float tensor of f whole (at most 1 M elements each, to bound the time). */
static void touch(const asr_wfile_t *f) {
    float *buf = malloc((1 << 20) * sizeof *buf);
    char err[256];
    for (int i = 0; buf && i < f->n_vars; i++) {
        const asr_wvar_t *v = &f->vars[i];
        ASR_ASSERT(v->n_bytes == (size_t)v->n_elems * asr_wdtype_size(v->dtype));
        if (v->dtype == ASR_WD_I32 || v->n_elems > (1 << 20) || v->n_elems == 0)
            continue;
        int64_t cols = v->rank ? v->n_elems / (v->dims[0] ? v->dims[0] : 1) : 1;
        ASR_ASSERT(asr_wfile_decode_f32(f, v, v->name, cols, 0, v->n_elems, buf, err, sizeof err) ==
                   0);
    }
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    asr_wfile_t f = {0};
    char err[512];
    if (asr_safetensors_parse(data, size, &f, err, sizeof err) == ASR_OK) {
        for (int i = 0; i < f.n_vars; i++) {
            const asr_wvar_t *v = &f.vars[i];
            ASR_ASSERT(v->data >= data && v->data + v->n_bytes <= data + size);
            ASR_ASSERT(asr_wfile_find(&f, v->name) != NULL);
        }
        touch(&f);
    } else {
        ASR_ASSERT(err[0] && !strchr(err, '\n'));
    }
    asr_wfile_free(&f);
    asr_wfile_t w = {0};
    if (asr__safetensors_whisper(data, size, 2, 2, &w, err, sizeof err) == ASR_OK)
        touch(&w);
    else
        ASR_ASSERT(err[0] && !strchr(err, '\n'));
    asr_wfile_free(&w);
    return 0;
}
