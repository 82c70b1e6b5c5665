/* Unit tests: device specs (src/gpu/devspec.c), CUDA discovery on a machine with or without a GPU
 * (cuda_dev.c, cuda_none.c), NVML opened at run time (nvml.c), the CUDA build facts
 * (gpu_build.c) and arena arithmetic. Every test here runs on any machine: where no CUDA device
 * is usable it checks that each entry point fails cleanly with a reason; where one is, that the
 * answers describe it. The CUDA operations themselves are test_gpu_cuda's (GPU only). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gpu/dev.h"
#include "gpu/gpu_build.h"
#include "gpu/nvml.h"

static void test_parse(void **state) {
    (void)state;
    static const struct {
        const char *s;
        asr_devspec_kind_t kind;
        int index;
    } ok[] = {
        {NULL, ASR_DEVSPEC_CPU, 0},        {"", ASR_DEVSPEC_CPU, 0},
        {"cpu", ASR_DEVSPEC_CPU, 0},       {"auto", ASR_DEVSPEC_AUTO, 0},
        {"host", ASR_DEVSPEC_HOST, 0},     {"cuda", ASR_DEVSPEC_CUDA, 0},
        {"cuda:0", ASR_DEVSPEC_CUDA, 0},   {"cuda:1", ASR_DEVSPEC_CUDA, 1},
        {"cuda:17", ASR_DEVSPEC_CUDA, 17}, {"cuda:1023", ASR_DEVSPEC_CUDA, 1023},
        {"cuda:007", ASR_DEVSPEC_CUDA, 7},
    };
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        asr_devspec_t s = {ASR_DEVSPEC_HOST, 99};
        if (asr_devspec_parse(ok[i].s, &s) != ASR_OK)
            fail_msg("'%s' refused", ok[i].s ? ok[i].s : "(null)");
        assert_int_equal(s.kind, ok[i].kind);
        assert_int_equal(s.index, ok[i].index);
    }
    static const char *const bad[] = {
        "gpu",      "CPU",     "Cuda",    "cuda:", "cuda:-1",   "cuda:+1",
        "cuda:x",   "cuda:0x", "cuda: 1", "cuda0", "cuda:1:2",  "cudas",
        " cpu",     "cpu ",    "autox",   "hostx", "cuda:1024", "cuda:99999999999999999999",
        "cuda:1.5", "nvidia",  "cuda:0 ",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        asr_devspec_t s;
        if (asr_devspec_parse(bad[i], &s) != ASR_ERR_INVALID)
            fail_msg("'%s' accepted", bad[i]);
    }
}

static void test_format(void **state) {
    (void)state;
    static const char *const specs[] = {"cpu", "auto", "host", "cuda:0", "cuda:3", "cuda:1023"};
    for (size_t i = 0; i < sizeof specs / sizeof *specs; i++) {
        asr_devspec_t s, t;
        char buf[32];
        assert_int_equal(asr_devspec_parse(specs[i], &s), ASR_OK);
        asr_devspec_format(&s, buf, sizeof buf);
        assert_string_equal(buf, specs[i]);
        assert_int_equal(asr_devspec_parse(buf, &t), ASR_OK);
        assert_int_equal(t.kind, s.kind);
        assert_int_equal(t.index, s.index);
    }
    asr_devspec_t s;
    char buf[32];
    assert_int_equal(asr_devspec_parse("cuda", &s), ASR_OK);
    asr_devspec_format(&s, buf, sizeof buf);
    assert_string_equal(buf, "cuda:0");
    char small[4];
    asr_devspec_parse("cuda:12", &s);
    asr_devspec_format(&s, small, sizeof small); /* truncated, terminated */
    assert_string_equal(small, "cud");
}

static void test_discovery(void **state) {
    (void)state;
    char why[256] = "x", why2[256] = "y";
    int n = asr_gpu_cuda_count(why, sizeof why);
    assert_true(n >= 0);
    assert_int_equal(asr_gpu_cuda_count(why2, sizeof why2), n); /* cached: the same answer */
    assert_int_equal(asr_gpu_cuda_count(NULL, 0), n);
    printf("cuda built: %s, devices: %d%s%s\n", asr_gpu_cuda_built() ? "yes" : "no", n,
           n ? "" : ", why: ", n ? "" : why);
    if (!asr_gpu_cuda_built())
        assert_int_equal(n, 0);
    asr_dev_info_t info;
    char err[256] = "";
    if (n == 0) {
        assert_true(strlen(why) > 10); /* a reason, not a blank */
        assert_string_equal(why, why2);
        assert_int_not_equal(asr_gpu_cuda_info(0, &info, err, sizeof err), ASR_OK);
        assert_true(err[0] != 0);
        asr_dev_t *d = (asr_dev_t *)1;
        err[0] = 0;
        assert_int_not_equal(asr_dev_open(ASR_DEV_CUDA, 0, &d, err, sizeof err), ASR_OK);
        assert_null(d);
        assert_true(err[0] != 0);
        printf("cuda open: %s\n", err);
        return;
    }
    for (int i = 0; i < n; i++) {
        assert_int_equal(asr_gpu_cuda_info(i, &info, err, sizeof err), ASR_OK);
        assert_int_equal(info.kind, ASR_DEV_CUDA);
        assert_int_equal(info.index, i);
        assert_true(info.name[0] != 0);
        assert_true(info.cc_major >= 3);
        assert_true(info.n_sm > 0);
        assert_true(info.total_bytes > ((size_t)1 << 30));
        assert_true(info.free_bytes <= info.total_bytes);
        printf("cuda:%d %s cc %d.%d, %d SMs, %zu MiB (%zu free), driver %s\n", i, info.name,
               info.cc_major, info.cc_minor, info.n_sm, info.total_bytes >> 20,
               info.free_bytes >> 20, info.driver);
    }
    assert_int_not_equal(asr_gpu_cuda_info(n, &info, err, sizeof err), ASR_OK);
    assert_int_not_equal(asr_gpu_cuda_info(-1, &info, err, sizeof err), ASR_OK);
}

static void test_resolve(void **state) {
    (void)state;
    char why[256], reason[256];
    int n = asr_gpu_cuda_count(reason, sizeof reason);
    asr_devspec_t in, out;

    asr_devspec_parse("cpu", &in);
    assert_int_equal(asr_devspec_resolve(&in, &out, why, sizeof why), ASR_OK);
    assert_int_equal(out.kind, ASR_DEVSPEC_CPU);
    assert_non_null(strstr(why, "cpu"));
    asr_devspec_parse("host", &in);
    assert_int_equal(asr_devspec_resolve(&in, &out, why, sizeof why), ASR_OK);
    assert_int_equal(out.kind, ASR_DEVSPEC_HOST);

    /* auto: never fails, never stays AUTO */
    asr_devspec_parse("auto", &in);
    assert_int_equal(asr_devspec_resolve(&in, &out, why, sizeof why), ASR_OK);
    assert_int_not_equal(out.kind, ASR_DEVSPEC_AUTO);
    assert_int_equal(asr_devspec_resolve(&in, &out, NULL, 0), ASR_OK); /* why optional */
    printf("auto: %s\n", why);
    if (n == 0) {
        assert_int_equal(out.kind, ASR_DEVSPEC_CPU);
        assert_non_null(strstr(why, "no usable CUDA device"));
        assert_non_null(strstr(why, reason)); /* the reason itself, not just "none" */
    } else if (out.kind == ASR_DEVSPEC_CUDA) {
        char name[32];
        asr_devspec_format(&out, name, sizeof name);
        assert_memory_equal(why, name, strlen(name)); /* "cuda:0 NVIDIA ..." */
        assert_non_null(strstr(why, "GiB free"));
    }

    /* cuda asked for */
    asr_devspec_parse("cuda", &in);
    asr_err_t rc = asr_devspec_resolve(&in, &out, why, sizeof why);
    printf("cuda: %s (%s)\n", why, asr_strerror(rc));
    assert_true(why[0] != 0);
    if (n == 0) {
        assert_int_equal(rc, ASR_ERR_UNSUPPORTED);
        assert_non_null(strstr(why, reason));
    } else if (rc == ASR_OK) {
        assert_int_equal(out.kind, ASR_DEVSPEC_CUDA);
        assert_int_equal(out.index, 0);
    }
    asr_devspec_parse("cuda:1000", &in);
    assert_int_equal(asr_devspec_resolve(&in, &out, why, sizeof why), ASR_ERR_UNSUPPORTED);
    assert_non_null(strstr(why, "cuda:1000"));
    asr_devspec_t junk = {(asr_devspec_kind_t)42, 0};
    assert_int_equal(asr_devspec_resolve(&junk, &out, why, sizeof why), ASR_ERR_INVALID);
}

static void test_nvml(void **state) {
    (void)state;
    char err[256] = "";
    asr_err_t rc = asr_nvml_init(err, sizeof err);
    uint64_t used = 0, fr = 0, total = 0, mine = 0;
    printf("nvml: %s\n", rc == ASR_OK ? "ok" : err);
    if (rc != ASR_OK) {
        assert_true(err[0] != 0);
        err[0] = 0;
        assert_int_not_equal(asr_nvml_mem(0, &used, &fr, &total, err, sizeof err), ASR_OK);
        assert_true(err[0] != 0);
        assert_int_not_equal(asr_nvml_process_mem(0, (unsigned)getpid(), &mine, err, sizeof err),
                             ASR_OK);
        assert_int_equal(mine, 0);
        char name[96];
        assert_int_not_equal(asr_nvml_name(0, name, sizeof name, NULL, 0), ASR_OK);
        assert_int_not_equal(asr_nvml_driver_version(name, sizeof name, NULL, 0), ASR_OK);
        return;
    }
    char ver[96] = "";
    if (asr_nvml_driver_version(ver, sizeof ver, err, sizeof err) == ASR_OK)
        printf("nvml driver %s\n", ver);
    if (asr_gpu_cuda_count(NULL, 0) == 0)
        return; /* a driver without a usable device: nothing more to ask */
    assert_int_equal(asr_nvml_mem(0, &used, &fr, &total, err, sizeof err), ASR_OK);
    assert_true(total > ((uint64_t)1 << 30));
    assert_true(used <= total && fr <= total);
    char name[96] = "";
    assert_int_equal(asr_nvml_name(0, name, sizeof name, err, sizeof err), ASR_OK);
    assert_true(name[0] != 0);
    printf("nvml cuda:0 %s: %llu MiB used of %llu\n", name, (unsigned long long)(used >> 20),
           (unsigned long long)(total >> 20));
    assert_int_not_equal(asr_nvml_mem(-1, &used, NULL, NULL, err, sizeof err), ASR_OK);
}

static void test_build_facts(void **state) {
    (void)state;
    const char *archs = asr_gpu_cuda_archs();
    char libs[256] = "";
    asr_gpu_cuda_libs(libs, sizeof libs);
    printf("cuda archs: '%s'; libs: %s\n", archs, libs);
    assert_true(libs[0] != 0);
    if (!asr_gpu_cuda_built()) {
        assert_string_equal(archs, "");
        return;
    }
    /* CMake's default (CMakeLists.txt) is machine code for 8.0, 8.9, 9.0 and PTX for 9.0:
     * "sm_80 sm_89 sm_90 + PTX compute_90"; a build may choose others (CMAKE_CUDA_ARCHITECTURES) */
    assert_memory_equal(archs, "sm_", 3);
    assert_null(strchr(archs, '-'));
    assert_null(strchr(archs, ';'));
    assert_ptr_equal(asr_gpu_cuda_archs(), archs); /* one static string */
}

static void test_arenas(void **state) {
    (void)state;
    assert_int_equal(asr_dev_arena_round(0), 0);
    assert_int_equal(asr_dev_arena_round(1), 256);
    assert_int_equal(asr_dev_arena_round(256), 256);
    assert_int_equal(asr_dev_arena_round(257), 512);
    asr_dev_t *d = NULL;
    char err[256] = "";
    if (asr_dev_open(ASR_DEV_HOST, 0, &d, err, sizeof err) != ASR_OK) {
        printf("host device not available (%s): arena allocation not checked here\n", err);
        return;
    }
    asr_dev_arena_t a;
    assert_int_equal(asr_dev_arena_init(d, &a, 1000), ASR_OK);
    unsigned char *p = asr_dev_arena_take(&a, 1);
    unsigned char *q = asr_dev_arena_take(&a, 300);
    assert_non_null(p);
    assert_ptr_equal(q, p + 256);
    assert_null(asr_dev_arena_take(&a, 1000 - 768 + 1)); /* 232 bytes left, rounds to 256 */
    assert_int_equal(a.used, 768);
    asr_dev_arena_release(d, &a);
    assert_null(a.base);
    assert_null(asr_dev_arena_take(&a, 1));
    assert_int_equal(asr_dev_arena_init(d, &a, 0), ASR_OK);
    assert_null(a.base);
    asr_dev_close(d);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),     cmocka_unit_test(test_format),
        cmocka_unit_test(test_discovery), cmocka_unit_test(test_resolve),
        cmocka_unit_test(test_nvml),      cmocka_unit_test(test_build_facts),
        cmocka_unit_test(test_arenas),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
