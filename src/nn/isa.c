/* nn: CPU feature detection (isa.h). STUB (issue #21 in progress): AVX2 or portable only. */
#include "nn/isa.h"

#include <stdio.h>
#include <string.h>

static asr_isa_t g_isa;
static int g_done;

const asr_isa_t *asr_isa(void) {
    if (!__atomic_load_n(&g_done, __ATOMIC_ACQUIRE)) {
        asr_isa_t t;
        memset(&t, 0, sizeof t);
#if defined(__x86_64__)
        __builtin_cpu_init();
        t.avx2 = __builtin_cpu_supports("avx2");
        t.fma = __builtin_cpu_supports("fma");
        t.f16c = t.avx2; /* stub */
#endif
        t.best = t.avx2 && t.fma ? ASR_ISA_AVX2 : ASR_ISA_PORTABLE;
        t.level = t.best;
        snprintf(t.why, sizeof t.why, "%s (stub detection)", asr_isa_level_name(t.level));
        g_isa = t;
        __atomic_store_n(&g_done, 1, __ATOMIC_RELEASE);
    }
    return &g_isa;
}

const char *asr_isa_level_name(asr_isa_level_t level) {
    static const char *const n[] = {"portable", "avx2", "avx512", "amx"};
    return (unsigned)level < 4 ? n[level] : "?";
}

const char *asr_isa_features(char *buf, int len) {
    const asr_isa_t *t = asr_isa();
    snprintf(buf, (size_t)len, "%s%s", t->avx2 ? "avx2 " : "", t->fma ? "fma" : "");
    return buf;
}
