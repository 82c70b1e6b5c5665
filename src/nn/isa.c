/* nn: CPU feature detection (isa.h).
 *
 * CPUID says what the core implements; XGETBV (XCR0) says which register state the OS saves on a
 * context switch: a feature counts only with both (YMM for AVX2, opmask+ZMM for AVX-512, tile
 * config+data for AMX). Linux also hands out the AMX tile data state per process on request
 * (arch_prctl ARCH_REQ_XCOMP_PERM), confirmed with ARCH_GET_XCOMP_PERM. Detection runs once; the
 * first caller's answer is published with release/acquire (a race only runs it twice with the same
 * result). */
#include "nn/isa.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#define ISA_X86 1
#endif
#if defined(ISA_X86) && defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#define ISA_LINUX_AMX 1
#endif

static asr_isa_t g_isa;
static int g_done;

#ifdef ISA_X86
static void cpuid2(unsigned leaf, unsigned sub, unsigned r[4]) {
    r[0] = r[1] = r[2] = r[3] = 0;
    __cpuid_count(leaf, sub, r[0], r[1], r[2], r[3]);
}

static uint64_t xgetbv0(void) {
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

/* Linux: ask for the AMX tile data state (XFEATURE_XTILEDATA = 18), then read the permitted set
 * back: the request can succeed on a kernel that later refuses, so only the read-back counts. */
static bool amx_permission(void) {
#ifdef ISA_LINUX_AMX
    enum { GET_XCOMP_PERM = 0x1022, REQ_XCOMP_PERM = 0x1023, XTILEDATA = 18 };
    syscall(SYS_arch_prctl, REQ_XCOMP_PERM, XTILEDATA);
    unsigned long mask = 0;
    if (syscall(SYS_arch_prctl, GET_XCOMP_PERM, &mask) != 0)
        return false;
    return (mask >> XTILEDATA) & 1;
#else
    return false;
#endif
}

static void detect_x86(asr_isa_t *t) {
    unsigned r[4], max;
    cpuid2(0, 0, r);
    max = r[0];
    if (max < 1)
        return;
    cpuid2(1, 0, r);
    bool osxsave = (r[2] >> 27) & 1, avx = (r[2] >> 28) & 1;
    bool fma = (r[2] >> 12) & 1, f16c = (r[2] >> 29) & 1;
    uint64_t xcr0 = osxsave ? xgetbv0() : 0;
    bool os_ymm = (xcr0 & 0x6) == 0x6;             /* SSE + AVX state */
    bool os_zmm = os_ymm && (xcr0 & 0xe0) == 0xe0; /* opmask, ZMM_Hi256, Hi16_ZMM */
    bool os_tile = (xcr0 & 0x60000) == 0x60000;    /* XTILECFG (17), XTILEDATA (18) */
    unsigned b7 = 0, c7 = 0, d7 = 0, a71 = 0;
    if (max >= 7) {
        cpuid2(7, 0, r);
        b7 = r[1], c7 = r[2], d7 = r[3];
        unsigned n_sub = r[0];
        if (n_sub >= 1) {
            cpuid2(7, 1, r);
            a71 = r[0];
        }
    }
    bool sup_tile = false; /* leaf 0xD: the CPU's XSAVE supports the tile components */
    if (max >= 0xd) {
        cpuid2(0xd, 0, r);
        sup_tile = (r[0] & 0x60000) == 0x60000;
    }
    t->avx2 = avx && os_ymm && ((b7 >> 5) & 1);
    t->fma = avx && os_ymm && fma;
    t->f16c = avx && os_ymm && f16c;
    t->avx512f = os_zmm && ((b7 >> 16) & 1);
    t->avx512dq = t->avx512f && ((b7 >> 17) & 1);
    t->avx512bw = t->avx512f && ((b7 >> 30) & 1);
    t->avx512vl = t->avx512f && ((b7 >> 31) & 1);
    t->avx512_vnni = t->avx512f && ((c7 >> 11) & 1);
    t->avx_vnni = os_ymm && ((a71 >> 4) & 1);
    t->avx512_bf16 = t->avx512f && ((a71 >> 5) & 1);
    t->avx512_fp16 = t->avx512f && ((d7 >> 23) & 1);
    t->amx_tile = os_tile && sup_tile && ((d7 >> 24) & 1);
    t->amx_bf16 = t->amx_tile && ((d7 >> 22) & 1);
    t->amx_int8 = t->amx_tile && ((d7 >> 25) & 1);
    if (t->amx_tile)
        t->amx_permitted = amx_permission();
    unsigned brand[12];
    cpuid2(0x80000000u, 0, r);
    if (r[0] >= 0x80000004u) {
        for (unsigned i = 0; i < 3; i++)
            cpuid2(0x80000002u + i, 0, brand + 4 * i);
        char s[49];
        memcpy(s, brand, 48);
        s[48] = 0;
        const char *p = s;
        while (*p == ' ')
            p++;
        snprintf(t->cpu, sizeof t->cpu, "%s", p);
        for (size_t n = strlen(t->cpu); n && t->cpu[n - 1] == ' '; n--)
            t->cpu[n - 1] = 0;
    }
}
#endif

/* The best level and why it stops there (the first feature missing for the next level up). */
static asr_isa_level_t best_level(const asr_isa_t *t, char *why, size_t len) {
    if (!(t->avx2 && t->fma && t->f16c)) {
#ifdef ISA_X86
        snprintf(why, len, "no %s", !t->avx2 ? "AVX2" : !t->fma ? "FMA" : "F16C");
#else
        snprintf(why, len, "not an x86-64 build");
#endif
        return ASR_ISA_PORTABLE;
    }
    if (!(t->avx512f && t->avx512bw && t->avx512vl && t->avx512dq)) {
        snprintf(why, len, "AVX2+FMA+F16C, no AVX-512%s",
                 !t->avx512f    ? "F"
                 : !t->avx512bw ? "BW"
                 : !t->avx512vl ? "VL"
                                : "DQ");
        return ASR_ISA_AVX2;
    }
    if (!(t->amx_tile && t->amx_bf16 && t->amx_int8)) {
        snprintf(why, len, "AVX-512F/BW/VL/DQ%s%s, no AMX", t->avx512_vnni ? "/VNNI" : "",
                 t->avx512_bf16 ? "/BF16" : "");
        return ASR_ISA_AVX512;
    }
    if (!t->amx_permitted) {
        snprintf(why, len, "AVX-512 and AMX, but Linux refused the AMX tile state");
        return ASR_ISA_AVX512;
    }
    snprintf(why, len, "AMX-BF16/INT8 with tile permission");
    return ASR_ISA_AMX;
}

void asr__isa_detect(asr_isa_t *out, const char *isa_env, const char *no_simd_env) {
    asr_isa_t t;
    memset(&t, 0, sizeof t);
    snprintf(t.cpu, sizeof t.cpu, "unknown CPU");
#ifdef ISA_X86
    detect_x86(&t);
#endif
    char why[96];
    t.best = best_level(&t, why, sizeof why);
    t.level = t.best;
    if (no_simd_env) {
        t.level = ASR_ISA_PORTABLE;
        snprintf(t.why, sizeof t.why, "portable: ASRD_NO_SIMD (best %s: %s)",
                 asr_isa_level_name(t.best), why);
    } else if (isa_env && *isa_env) {
        /* LEVEL, or LEVEL,-vnni: the VNNI instructions taken as missing too (an AVX2 CPU without
         * AVX-VNNI, such as AMD Zen 2/3, stood in for by one that has it) */
        char lv[16];
        const char *comma = strchr(isa_env, ',');
        size_t ln = comma ? (size_t)(comma - isa_env) : strlen(isa_env);
        int no_vnni = comma && !strcmp(comma, ",-vnni"), want = -1;
        snprintf(lv, sizeof lv, "%.*s", (int)(ln < sizeof lv ? ln : sizeof lv - 1), isa_env);
        for (int l = ASR_ISA_PORTABLE; l <= ASR_ISA_AMX && (!comma || no_vnni); l++)
            if (!strcmp(lv, asr_isa_level_name((asr_isa_level_t)l)))
                want = l;
        if (want >= 0 && want <= (int)t.best && no_vnni)
            t.avx_vnni = t.avx512_vnni = false;
        if (want < 0)
            snprintf(t.why, sizeof t.why,
                     "%s: ASRD_ISA=%.16s is not portable|avx2|avx512|amx[,-vnni], ignored (%s)",
                     asr_isa_level_name(t.best), isa_env, why);
        else if (want > (int)t.best)
            snprintf(t.why, sizeof t.why, "%s: ASRD_ISA=%.14s refused, this CPU's best is %s (%s)",
                     asr_isa_level_name(t.best), isa_env, asr_isa_level_name(t.best), why);
        else {
            t.level = (asr_isa_level_t)want;
            snprintf(t.why, sizeof t.why, "%s: ASRD_ISA=%s (best %s: %s)",
                     asr_isa_level_name(t.level), isa_env, asr_isa_level_name(t.best), why);
        }
    } else
        snprintf(t.why, sizeof t.why, "%s: %s", asr_isa_level_name(t.best), why);
    *out = t;
}

const asr_isa_t *asr_isa(void) {
    if (!__atomic_load_n(&g_done, __ATOMIC_ACQUIRE)) {
        asr_isa_t t;
        asr__isa_detect(&t, getenv("ASRD_ISA"), getenv("ASRD_NO_SIMD"));
        g_isa = t;
        __atomic_store_n(&g_done, 1, __ATOMIC_RELEASE);
    }
    return &g_isa;
}

const char *asr_isa_level_name(asr_isa_level_t level) {
    static const char *const n[] = {"portable", "avx2", "avx512", "amx"};
    return (unsigned)level < 4 ? n[level] : "?";
}

bool asr_isa_int8_dot(void) {
    const asr_isa_t *t = asr_isa();
    return (t->level >= ASR_ISA_AMX && t->amx_int8) ||
           (t->level >= ASR_ISA_AVX512 && t->avx512_vnni) ||
           (t->level >= ASR_ISA_AVX2 && t->avx_vnni);
}

const char *asr_isa_features(char *buf, int len) {
    const asr_isa_t *t = asr_isa();
    const struct {
        bool on;
        const char *name;
    } f[] = {{t->avx2, "avx2"},
             {t->fma, "fma"},
             {t->f16c, "f16c"},
             {t->avx512f, "avx512f"},
             {t->avx512bw, "avx512bw"},
             {t->avx512vl, "avx512vl"},
             {t->avx512dq, "avx512dq"},
             {t->avx512_vnni, "avx512_vnni"},
             {t->avx_vnni, "avx_vnni"},
             {t->avx512_bf16, "avx512_bf16"},
             {t->avx512_fp16, "avx512_fp16"},
             {t->amx_tile, "amx_tile"},
             {t->amx_bf16, "amx_bf16"},
             {t->amx_int8, "amx_int8"}};
    int o = 0;
    if (len > 0)
        buf[0] = 0;
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        if (!f[i].on || o >= len)
            continue;
        int w = snprintf(buf + o, (size_t)(len - o), "%s%s", o ? " " : "", f[i].name);
        o += w > 0 ? w : 0;
    }
    if (t->amx_tile && o < len)
        snprintf(buf + o, (size_t)(len - o), " (AMX tiles %s)",
                 t->amx_permitted ? "permitted" : "not permitted");
    if (len > 0 && !buf[0])
        snprintf(buf, (size_t)len, "none beyond x86-64 baseline");
    return buf;
}
