/* Unit tests: the CUDA device itself (src/gpu/cuda_dev.c) on CUDA device 0: open and close
 * (repeatedly, without leaking device memory), memory queries against NVML, device and pinned
 * allocations, the queued copies and memset (exact round trips at odd sizes and offsets), the
 * GEMM's orientation (row-major a·wᵀ through cuBLAS's column-major call, leading dimensions
 * larger than the widths) on small integers, where float32, float16 and bfloat16 are all exact,
 * the sticky error of a refused operation, and binding from a second thread. The kernels' numerics
 * against the host device are test_gpu_kernels'.
 *
 * Without a usable CUDA device it prints why and exits 76 (ctest: Not Run, CI included); with
 * ASRD_EXPECT_GPU=1 (scripts/device-check.sh on the GPU machine) that is a failure instead, so a
 * GPU machine where the device cannot be used does not report Not Run. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gpu/dev.h"
#include "gpu/gpu_build.h"
#include "gpu/nvml.h"
#include "nn/nn.h"

static asr_dev_t *open0(void) {
    asr_dev_t *d = NULL;
    char err[256] = "";
    if (asr_dev_open(ASR_DEV_CUDA, 0, &d, err, sizeof err) != ASR_OK)
        fail_msg("open cuda:0: %s", err);
    return d;
}

static void sync_ok(asr_dev_t *d) {
    char err[256] = "";
    if (asr_dev_sync(d, err, sizeof err) != ASR_OK)
        fail_msg("sync: %s", err);
}

static void test_open_info(void **state) {
    (void)state;
    asr_dev_t *d = open0();
    const asr_dev_info_t *in = asr_dev_info(d);
    printf("cuda:0 %s cc %d.%d, %d SMs, %zu MiB, %zu MiB free, driver %s\n", in->name, in->cc_major,
           in->cc_minor, in->n_sm, in->total_bytes >> 20, in->free_bytes >> 20, in->driver);
    assert_int_equal(in->kind, ASR_DEV_CUDA);
    assert_true(in->cc_major >= 8);
    assert_true(in->free_bytes > 0 && in->free_bytes <= in->total_bytes);
    assert_int_equal(asr_dev_bind(d), ASR_OK);
    size_t fr = 0, tot = 0;
    assert_int_equal(asr_dev_mem_info(d, &fr, &tot), ASR_OK);
    assert_true(fr > 0 && fr <= tot);
    uint64_t nv_used = 0, nv_total = 0, mine = 0;
    char err[256] = "";
    if (asr_nvml_mem(0, &nv_used, NULL, &nv_total, err, sizeof err) == ASR_OK) {
        /* the same card: totals within 1 GiB (NVML counts some reserved memory) */
        assert_true(nv_total + (1u << 30) >= tot && tot + (1u << 30) >= nv_total);
        asr_err_t rc = asr_nvml_process_mem(0, (unsigned)getpid(), &mine, err, sizeof err);
        printf("nvml: %llu MiB used, this process %s %llu MiB (%s)\n",
               (unsigned long long)(nv_used >> 20),
               rc == ASR_OK ? "holds" : "not listed:", (unsigned long long)(mine >> 20),
               rc == ASR_OK ? "ok" : err);
        /* NOT_FOUND: a container (NVML lists host pids); UNSUPPORTED: NVML without per-process
         * memory here (no _v3 entry point, no permission, or NVML_VALUE_NOT_AVAILABLE) */
        assert_true(rc == ASR_OK || rc == ASR_ERR_NOT_FOUND || rc == ASR_ERR_UNSUPPORTED);
        if (rc == ASR_OK)
            assert_true(mine > 0); /* the context and the cuBLAS workspace at least */
    } else {
        printf("nvml unavailable: %s\n", err);
    }
    char libs[256];
    asr_gpu_cuda_libs(libs, sizeof libs);
    printf("built for %s; %s\n", asr_gpu_cuda_archs(), libs);
    asr_dev_close(d);
}

/* 20 opens and closes: device memory comes back (a leaked stream/handle/workspace would show) */
static void test_open_close_leak(void **state) {
    (void)state;
    asr_dev_t *d = open0();
    size_t fr0 = 0, fr1 = 0, tot = 0;
    asr_dev_mem_info(d, &fr0, &tot);
    for (int i = 0; i < 20; i++) {
        asr_dev_t *e = open0();
        void *p = asr_dev_malloc(e, 1 << 20);
        assert_non_null(p);
        asr_dev_free(e, p);
        asr_dev_close(e);
    }
    asr_dev_mem_info(d, &fr1, &tot);
    printf("free before %zu MiB, after 20 open/close %zu MiB\n", fr0 >> 20, fr1 >> 20);
    assert_true(fr1 + (64u << 20) >= fr0); /* 20 leaked 32 MiB workspaces would be 640 MiB */
    asr_dev_close(d);
}

static void test_copies(void **state) {
    (void)state;
    asr_dev_t *d = open0();
    const size_t n = 3 * 1000 * 1000 + 7; /* odd size */
    unsigned char *h = asr_dev_host_malloc(d, n), *back = asr_dev_host_malloc(d, n);
    unsigned char *plain = malloc(n);
    assert_non_null(h);
    assert_non_null(back);
    for (size_t i = 0; i < n; i++)
        h[i] = (unsigned char)(i * 131 + 7), plain[i] = (unsigned char)(i * 17 + 3);
    unsigned char *a = asr_dev_malloc(d, n), *b = asr_dev_malloc(d, n);
    assert_non_null(a);
    assert_non_null(b);
    asr_dev_h2d(d, a, h, n);           /* pinned source */
    asr_dev_d2d(d, b + 1, a, n - 1);   /* odd offset */
    asr_dev_memset0(d, b + 1000, 333); /* a hole */
    asr_dev_d2h(d, back, b, n);
    sync_ok(d);
    for (size_t i = 1; i < n; i++) {
        unsigned char want = (i >= 1000 && i < 1333) ? 0 : h[i - 1];
        if (back[i] != want)
            fail_msg("byte %zu: %u, want %u", i, back[i], want);
    }
    asr_dev_h2d(d, a, plain, n); /* pageable source */
    asr_dev_d2h(d, back, a, n);
    sync_ok(d);
    assert_memory_equal(back, plain, n);
    asr_dev_free(d, a);
    asr_dev_free(d, b);
    asr_dev_host_free(d, h);
    asr_dev_host_free(d, back);
    free(plain);
    asr_dev_close(d);
}

static uint16_t to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

static void put(asr_dtype_t t, void *p, size_t i, float v) {
    if (t == ASR_DT_F32)
        ((float *)p)[i] = v;
    else if (t == ASR_DT_F16)
        ((uint16_t *)p)[i] = asr_nn_f32_to_f16(v);
    else
        ((uint16_t *)p)[i] = to_bf16(v);
}

static float get(asr_dtype_t t, const void *p, size_t i) {
    if (t == ASR_DT_F32)
        return ((const float *)p)[i];
    if (t == ASR_DT_F16)
        return asr_nn_f16_to_f32(((const uint16_t *)p)[i]);
    return asr_nn_bf16_to_f32(((const uint16_t *)p)[i]);
}

/* c[m][n] = a[m][k]·w[n][k]ᵀ on small integers (|a|, |w| <= 3, k <= 40: |c| <= 360, exact in
 * bfloat16's 8 bits only below 256, so bfloat16 uses |a|, |w| <= 2: |c| <= 160) with lda, ldw,
 * ldc wider than the rows: any orientation or leading-dimension mistake changes the numbers. */
static void check_gemm(asr_dev_t *d, asr_dtype_t t, asr_dtype_t ct, bool i8, int m, int n, int k,
                       int flags) {
    const int lda = k + 3, ldw = k + 5, ldc = n + 2, lim = t == ASR_DT_BF16 ? 2 : 3;
    size_t es = asr_dtype_size(t), cs = asr_dtype_size(ct);
    void *a = calloc((size_t)m * lda, es), *c = calloc((size_t)m * ldc, cs);
    void *w = calloc((size_t)n * ldw, i8 ? 1 : es);
    float *ref = calloc((size_t)m * ldc, sizeof(float)), *scale = malloc(n * sizeof(float));
    for (int i = 0; i < m; i++)
        for (int j = 0; j < k; j++)
            put(t, a, (size_t)i * lda + j, (float)((i * 7 + j * 3) % (2 * lim + 1) - lim));
    for (int r = 0; r < n; r++) {
        scale[r] = r % 2 ? 1.0f : 0.5f; /* int8 values 2q with scale 0.5: the same integers */
        for (int j = 0; j < k; j++) {
            float v = (float)((r * 5 + j * 11) % (2 * lim + 1) - lim);
            if (i8)
                ((int8_t *)w)[(size_t)r * ldw + j] = (int8_t)(v / scale[r]);
            else
                put(t, w, (size_t)r * ldw + j, v);
        }
    }
    for (int i = 0; i < m; i++)
        for (int r = 0; r < ldc; r++) {
            float c0 = (flags & ASR_LIN_ACCUM) && r < n ? (float)((i + r) % 5 - 2) : 0.0f;
            put(ct, c, (size_t)i * ldc + r, r < n ? c0 : 99.0f); /* padding must stay 99 */
            ref[(size_t)i * ldc + r] = r < n ? c0 : 99.0f;
            if (r >= n)
                continue;
            for (int j = 0; j < k; j++)
                ref[(size_t)i * ldc + r] += get(t, a, (size_t)i * lda + j) *
                                            (float)((r * 5 + j * 11) % (2 * lim + 1) - lim);
        }
    size_t wbytes = (size_t)n * ldw * (i8 ? 1 : es);
    void *ga = asr_dev_malloc(d, (size_t)m * lda * es), *gw = asr_dev_malloc(d, wbytes);
    void *gc = asr_dev_malloc(d, (size_t)m * ldc * cs), *gs = asr_dev_malloc(d, n * 4);
    void *scratch = asr_dev_malloc(d, (size_t)n * k * 2);
    asr_dev_h2d(d, ga, a, (size_t)m * lda * es);
    asr_dev_h2d(d, gw, w, wbytes);
    asr_dev_h2d(d, gc, c, (size_t)m * ldc * cs);
    asr_dev_h2d(d, gs, scale, n * 4);
    asr_dev_set_scratch(d, scratch, (size_t)n * k * 2);
    asr_dev_w_t wd = {i8 ? ASR_DT_I8 : t, gw, i8 ? gs : NULL, ldw};
    asr_dev_linear(d, t, ga, lda, &wd, NULL, ct, gc, ldc, m, n, k, flags);
    asr_dev_d2h(d, c, gc, (size_t)m * ldc * cs);
    sync_ok(d);
    for (int i = 0; i < m; i++)
        for (int r = 0; r < ldc; r++)
            if (get(ct, c, (size_t)i * ldc + r) != ref[(size_t)i * ldc + r])
                fail_msg("%s%s->%s m=%d n=%d k=%d flags=%d: c[%d][%d] = %g, want %g",
                         asr_dtype_name(t), i8 ? "(int8 w)" : "", asr_dtype_name(ct), m, n, k,
                         flags, i, r, get(ct, c, (size_t)i * ldc + r), ref[(size_t)i * ldc + r]);
    asr_dev_set_scratch(d, NULL, 0);
    asr_dev_free(d, ga);
    asr_dev_free(d, gw);
    asr_dev_free(d, gc);
    asr_dev_free(d, gs);
    asr_dev_free(d, scratch);
    free(a);
    free(w);
    free(c);
    free(ref);
    free(scale);
}

static void test_gemm_orientation(void **state) {
    (void)state;
    asr_dev_t *d = open0();
    static const int shapes[][3] = {{1, 1, 1}, {3, 5, 7}, {17, 67, 40}, {64, 128, 32}};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        int m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
        for (int flags = 0; flags <= ASR_LIN_ACCUM; flags += ASR_LIN_ACCUM) {
            check_gemm(d, ASR_DT_F32, ASR_DT_F32, false, m, n, k, flags);
            check_gemm(d, ASR_DT_F16, ASR_DT_F16, false, m, n, k, flags);
            check_gemm(d, ASR_DT_F16, ASR_DT_F32, false, m, n, k, flags);
            check_gemm(d, ASR_DT_BF16, ASR_DT_BF16, false, m, n, k, flags);
            check_gemm(d, ASR_DT_BF16, ASR_DT_F32, false, m, n, k, flags);
            check_gemm(d, ASR_DT_F16, ASR_DT_F16, true, m, n, k, flags);
        }
    }
    asr_dev_close(d);
}

/* A refused operation is the device's sticky error, reported by sync with its reason. */
static void test_sticky(void **state) {
    (void)state;
    asr_dev_t *d = open0();
    void *buf = asr_dev_malloc(d, 4096);
    asr_dev_w_t w = {ASR_DT_F16, buf, NULL, 8};
    asr_dev_linear(d, ASR_DT_F32, buf, 8, &w, NULL, ASR_DT_F32, buf, 8, 2, 2, 8, 0);
    char err[256] = "";
    assert_int_equal(asr_dev_sync(d, err, sizeof err), ASR_ERR_GPU);
    printf("refused: %s\n", err);
    assert_non_null(strstr(err, "unsupported types"));
    asr_dev_free(d, buf);
    asr_dev_close(d);
    /* a huge allocation fails cleanly, with the free memory in the reason */
    d = open0();
    assert_null(asr_dev_malloc(d, (size_t)1 << 50));
    assert_int_equal(asr_dev_error(d, err, sizeof err), ASR_ERR_GPU);
    printf("huge: %s\n", err);
    assert_non_null(strstr(err, "GiB free"));
    asr_dev_close(d);
}

static void *bind_thread(void *arg) {
    asr_dev_t *d = arg;
    if (asr_dev_bind(d) != ASR_OK)
        return (void *)1;
    int *p = asr_dev_malloc(d, 64), v[16] = {0}, want[16];
    for (int i = 0; i < 16; i++)
        want[i] = i * i;
    asr_dev_h2d(d, p, want, sizeof want);
    asr_dev_d2h(d, v, p, sizeof v);
    asr_err_t rc = asr_dev_sync(d, NULL, 0);
    asr_dev_free(d, p);
    return rc == ASR_OK && !memcmp(v, want, sizeof v) ? NULL : (void *)2;
}

static void test_other_thread(void **state) {
    (void)state;
    asr_dev_t *d = open0();
    pthread_t th;
    void *res = (void *)3;
    assert_int_equal(pthread_create(&th, NULL, bind_thread, d), 0);
    pthread_join(th, &res);
    assert_null(res);
    asr_dev_close(d);
}

int main(void) {
    char why[256] = "";
    if (asr_gpu_cuda_count(why, sizeof why) == 0) {
        const char *expect = getenv("ASRD_EXPECT_GPU");
        fprintf(stderr, "test_gpu_cuda: no usable CUDA device: %s\n", why);
        return expect && !strcmp(expect, "1") ? 1 : 76;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_info), cmocka_unit_test(test_open_close_leak),
        cmocka_unit_test(test_copies),    cmocka_unit_test(test_gemm_orientation),
        cmocka_unit_test(test_sticky),    cmocka_unit_test(test_other_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
