/* Unit tests: CPU feature detection (nn/isa.h): the levels' consistency, ASRD_ISA / ASRD_NO_SIMD
 * forcing (through the detection function run afresh), and agreement with the kernel's view of
 * the CPU (/proc/cpuinfo flags, Linux only). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/isa.h"

static void check_consistent(const asr_isa_t *t) {
    assert_true(t->level <= t->best);
    if (t->best >= ASR_ISA_AVX2)
        assert_true(t->avx2 && t->fma && t->f16c);
    if (t->best >= ASR_ISA_AVX512)
        assert_true(t->avx512f && t->avx512bw && t->avx512vl && t->avx512dq);
    if (t->best >= ASR_ISA_AMX)
        assert_true(t->amx_tile && t->amx_bf16 && t->amx_int8 && t->amx_permitted);
    /* features imply their bases */
    if (t->avx512f)
        assert_true(t->avx2);
    if (t->avx512_vnni || t->avx512_bf16 || t->avx512bw || t->avx512vl || t->avx512_fp16)
        assert_true(t->avx512f);
    if (t->amx_bf16 || t->amx_int8 || t->amx_permitted)
        assert_true(t->amx_tile);
    assert_true(t->why[0] != 0);
    assert_true(t->cpu[0] != 0);
}

static void test_consistent(void **state) {
    (void)state;
    const asr_isa_t *t = asr_isa();
    check_consistent(t);
    assert_ptr_equal(t, asr_isa()); /* detected once */
    char f[320];
    printf("cpu: %s\nfeatures: %s\nlevel: %s (%s)\n", t->cpu, asr_isa_features(f, sizeof f),
           asr_isa_level_name(t->level), t->why);
    assert_string_equal(asr_isa_level_name(ASR_ISA_AMX), "amx");
    assert_string_equal(asr_isa_level_name(ASR_ISA_PORTABLE), "portable");
}

static void test_forcing(void **state) {
    (void)state;
    asr_isa_t t;
    asr__isa_detect(&t, NULL, NULL);
    check_consistent(&t);
    assert_int_equal(t.level, t.best);
    asr_isa_level_t best = t.best;
    for (int l = ASR_ISA_PORTABLE; l <= ASR_ISA_AMX; l++) {
        const char *name = asr_isa_level_name((asr_isa_level_t)l);
        asr__isa_detect(&t, name, NULL);
        check_consistent(&t);
        assert_int_equal(t.best, best);
        if (l <= (int)best) {
            assert_int_equal(t.level, l);
            assert_non_null(strstr(t.why, "ASRD_ISA="));
        } else { /* refused: the best runs, and why says so */
            assert_int_equal(t.level, best);
            assert_non_null(strstr(t.why, "refused"));
        }
    }
    asr__isa_detect(&t, "sse9", NULL);
    assert_int_equal(t.level, best);
    assert_non_null(strstr(t.why, "ignored"));
    /* LEVEL,-vnni: the level, with the VNNI features taken as missing and no other changed */
    asr_isa_t full;
    asr__isa_detect(&full, NULL, NULL);
    for (int l = ASR_ISA_PORTABLE; l <= (int)best; l++) {
        char env[32];
        snprintf(env, sizeof env, "%s,-vnni", asr_isa_level_name((asr_isa_level_t)l));
        asr__isa_detect(&t, env, NULL);
        check_consistent(&t);
        assert_int_equal(t.level, l);
        assert_false(t.avx_vnni || t.avx512_vnni);
        assert_int_equal(t.avx512_bf16, full.avx512_bf16);
        assert_int_equal(t.amx_int8, full.amx_int8);
        assert_non_null(strstr(t.why, env));
    }
    asr__isa_detect(&t, "avx2,-avx", NULL); /* no other modifier */
    assert_int_equal(t.level, best);
    assert_int_equal(t.avx_vnni, full.avx_vnni);
    assert_non_null(strstr(t.why, "ignored"));
    asr__isa_detect(&t, "amx", "1"); /* ASRD_NO_SIMD wins */
    assert_int_equal(t.level, ASR_ISA_PORTABLE);
    assert_non_null(strstr(t.why, "ASRD_NO_SIMD"));
    /* the process's answer follows the environment it started with */
    const char *env = getenv("ASRD_ISA");
    if (getenv("ASRD_NO_SIMD"))
        assert_int_equal(asr_isa()->level, ASR_ISA_PORTABLE);
    else if (!env)
        assert_int_equal(asr_isa()->level, best);
}

/* Every feature /proc/cpuinfo lists is found (when the OS saves its state it lists it). */
static void test_cpuinfo(void **state) {
    (void)state;
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) {
        print_message("no /proc/cpuinfo: skipped\n");
        return;
    }
    char line[8192], flags[8192] = "";
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "flags", 5)) {
            snprintf(flags, sizeof flags, " %s ", strchr(line, ':') ? strchr(line, ':') + 1 : "");
            break;
        }
    fclose(f);
    for (char *p = flags; *p; p++)
        if (*p == '\n' || *p == '\t')
            *p = ' ';
    const asr_isa_t *t = asr_isa();
    const struct {
        const char *flag;
        bool have;
    } want[] = {{"avx2", t->avx2},
                {"fma", t->fma},
                {"f16c", t->f16c},
                {"avx512f", t->avx512f},
                {"avx512bw", t->avx512bw},
                {"avx512vl", t->avx512vl},
                {"avx512dq", t->avx512dq},
                {"avx512_vnni", t->avx512_vnni},
                {"avx_vnni", t->avx_vnni},
                {"avx512_bf16", t->avx512_bf16},
                {"avx512_fp16", t->avx512_fp16},
                {"amx_tile", t->amx_tile},
                {"amx_bf16", t->amx_bf16},
                {"amx_int8", t->amx_int8}};
    int n_listed = 0;
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        char key[40];
        snprintf(key, sizeof key, " %s ", want[i].flag);
        bool listed = strstr(flags, key) != NULL;
        n_listed += listed;
        if (listed != want[i].have)
            fail_msg("%s: /proc/cpuinfo %s it, asr_isa %s it", want[i].flag,
                     listed ? "lists" : "lacks", want[i].have ? "found" : "did not find");
    }
    printf("%d of the checked features listed by /proc/cpuinfo, all found\n", n_listed);
    if (t->amx_tile && t->best < ASR_ISA_AMX)
        printf("AMX listed but not usable: %s\n", t->why);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_consistent),
        cmocka_unit_test(test_forcing),
        cmocka_unit_test(test_cpuinfo),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
