/* nn: what the CPU can run, found once at run time, and the kernel level asrd picks from it.
 *
 * Levels, lowest first: PORTABLE (plain C), AVX2 (AVX2+FMA+F16C: the kernels of kern_avx2.c),
 * AVX512 (AVX-512 F/BW/VL, with VNNI int8 and BF16 dot products where the CPU has them), AMX
 * (AVX512 plus AMX tiles for bfloat16/int8 GEMMs: the kernel must grant this process the tile data
 * state, arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA), which isa.c asks for). A feature
 * counts only when the OS saves its register state (XGETBV) too.
 *
 * ASRD_ISA=portable|avx2|avx512|amx forces a level (tests, comparisons): a level above what the CPU
 * can run is refused (the best one runs instead, and why says so). A ",-vnni" after the level
 * (ASRD_ISA=avx2,-vnni) takes AVX-VNNI and AVX-512 VNNI as missing as well: the paths of a CPU
 * without them (AMD Zen 2/3) on one that has them. ASRD_NO_SIMD (older) is
 * ASRD_ISA=portable. Thread-safe; the answer never changes during the process. */
#ifndef ASR_NN_ISA_H
#define ASR_NN_ISA_H

#include <stdbool.h>

typedef enum {
    ASR_ISA_PORTABLE = 0,
    ASR_ISA_AVX2 = 1,
    ASR_ISA_AVX512 = 2,
    ASR_ISA_AMX = 3
} asr_isa_level_t;

typedef struct {
    /* what the CPU and OS support */
    bool avx2, fma, f16c;
    bool avx512f, avx512bw, avx512vl, avx512dq;
    bool avx512_vnni; /* VPDPBUSD on zmm */
    bool avx_vnni;    /* VPDPBUSD on ymm (VEX) */
    bool avx512_bf16; /* VDPBF16PS */
    bool avx512_fp16;
    bool amx_tile, amx_bf16, amx_int8;
    bool amx_permitted;    /* Linux granted the tile data state */
    asr_isa_level_t best;  /* the highest level the CPU runs */
    asr_isa_level_t level; /* the level in use (best, or ASRD_ISA's) */
    char cpu[64];          /* the CPU's brand string ("Intel(R) Xeon(R) Processor") */
    char why[200];         /* how level was chosen ("amx: AMX-BF16/INT8 with tile permission",
                              "avx2: ASRD_ISA=avx2", "avx2: no AVX-512F") */
} asr_isa_t;

/* Detects once (first call) and returns the answer. */
const asr_isa_t *asr_isa(void);
/* Exact int8 dot products (u8·s8 products summed into int32, no int16 saturation) at the level in
 * use: AMX-INT8 at AMX, AVX-512 VNNI at AVX512 and above, AVX-VNNI (ymm) at AVX2. */
bool asr_isa_int8_dot(void);
/* "portable", "avx2", "avx512", "amx" */
const char *asr_isa_level_name(asr_isa_level_t level);
/* The features in one line: "avx2 fma f16c avx512f avx512bw avx512vl avx512_vnni avx512_bf16
 * amx_bf16 amx_int8" (buf, returned). */
const char *asr_isa_features(char *buf, int len);
/* Internal (tests): runs the detection afresh into *out as if ASRD_ISA were isa_env and
 * ASRD_NO_SIMD no_simd_env (NULL: unset), without touching asr_isa()'s answer. */
void asr__isa_detect(asr_isa_t *out, const char *isa_env, const char *no_simd_env);

#endif
