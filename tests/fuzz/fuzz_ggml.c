/* Fuzz target: the whisper.cpp ggml front (asr_ggml_parse: hparams, mel filters, vocabulary,
 * tensor records, quantized blocks, the fusion into CTranslate2's names). Every table variable
 * must lie inside the input or inside memory the table owns, and every byte of it is read; the
 * vocabulary must lie inside the input. */
#include <stdint.h>
#include <string.h>

#include "core/core.h"
#include "engine/ggml.h"

static bool inside(const uint8_t *p, size_t n, const uint8_t *lo, size_t len) {
    return p >= lo && n <= len && (size_t)(p - lo) <= len - n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    asr_wfile_t f = {0};
    char err[256];
    if (asr_ggml_parse(data, size, &f, err, sizeof err) != ASR_OK) {
        ASR_ASSERT(err[0] && !strchr(err, '\n'));
        asr_wfile_free(&f);
        return 0;
    }
    volatile uint32_t sink = 0;
    for (int i = 0; i < f.n_vars; i++) {
        const asr_wvar_t *v = &f.vars[i];
        bool ok = inside(v->data, v->n_bytes, data, size);
        for (int o = 0; !ok && o < f.n_owned; o++)
            ok = inside(v->data, v->n_bytes, f.owned[o], f.owned_lens[o]);
        ASR_ASSERT(ok);
        for (size_t b = 0; b < v->n_bytes; b++)
            sink += v->data[b];
        ASR_ASSERT(asr_wfile_find(&f, v->name) == v);
    }
    ASR_ASSERT(inside(f.ggml_vocab, f.ggml_vocab_len, data, size));
    ASR_ASSERT(asr_wfile_find(&f, "decoder/projection/weight") ==
               asr_wfile_find(&f, "decoder/embeddings/weight"));
    (void)sink;
    asr_wfile_free(&f);
    return 0;
}
