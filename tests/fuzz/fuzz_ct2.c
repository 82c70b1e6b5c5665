/* Fuzz target: the CTranslate2 model.bin parser (header, variable table, aliases). Every parsed
 * variable must lie inside the input, and lookups through aliases must stay in bounds. */
#include <stdint.h>
#include <string.h>

#include "core/core.h"
#include "engine/ct2.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    asr_wfile_t f = {0};
    char err[256];
    if (asr_ct2_parse(data, size, &f, err, sizeof err) != ASR_OK) {
        asr_wfile_free(&f);
        return 0;
    }
    volatile uint32_t sink = 0;
    for (int i = 0; i < f.n_vars; i++) {
        const asr_wvar_t *v = &f.vars[i];
        ASR_ASSERT(v->data >= data && v->data + v->n_bytes <= data + size);
        if (v->n_bytes)
            sink += v->data[v->n_bytes - 1];
        const asr_wvar_t *w = asr_wfile_find(&f, v->name);
        ASR_ASSERT(w != NULL);
    }
    for (int i = 0; i < f.n_aliases; i++) {
        const asr_wvar_t *w = asr_wfile_find(&f, f.aliases[i].alias);
        if (w)
            sink += (uint32_t)w->n_bytes;
        char name[600];
        snprintf(name, sizeof name, "%s_scale", f.aliases[i].alias);
        (void)asr_wfile_find(&f, name);
    }
    (void)sink;
    asr_wfile_free(&f);
    return 0;
}
