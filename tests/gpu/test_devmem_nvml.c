/* Unit test: device memory readings through NVML (src/gpu/devmem.c, src/gpu/nvml.c) against a
 * fake libnvidia-ml.so.1 (fake_nvml.c, found through LD_LIBRARY_PATH), where no driver exists:
 * the per-process list like nvidia-smi's (largest first, this process marked self, names from
 * NVML or /proc/PID/comm), MIG entries of one pid summed, the graphics list merged by pid (argv[1]
 * "v3": the _v3 entry points with 24-byte entries and both lists; "v1": the first version's
 * 16-byte compute list alone), a list that grew between NVML's size query and the fill, and a
 * process without a memory figure (procs_known false, with why). devmem.c, nvml.c and
 * cuda_none.c are compiled into this test without the CUDA backend, so NVML is asked by index in
 * every build. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "gpu/devmem.h"
#include "gpu/nvml.h"

#define GIB (1ull << 30)

static int v3;
static uint64_t allocated = 5 << 20; /* what asr_dev_allocated_bytes says asrd holds */

uint64_t asr_dev_allocated_bytes(asr_dev_kind_t kind, int index) {
    (void)kind;
    (void)index;
    return allocated;
}

static const asr_devmem_proc_t *find(const asr_devmem_t *m, unsigned pid) {
    for (int i = 0; i < m->n_procs; i++)
        if (m->procs[i].pid == pid)
            return &m->procs[i];
    return NULL;
}

static void test_list(void **state) {
    (void)state;
    asr_devmem_t m;
    assert_int_equal(asr_devmem_read(ASR_DEV_CUDA, 0, &m), ASR_OK);
    assert_true(m.ok);
    assert_string_equal(m.source, "nvml");
    assert_string_equal(m.name, "Fake GPU 80GB");
    assert_int_equal(m.total, 80 * GIB);
    assert_int_equal(m.free, 50 * GIB);
    assert_int_equal(m.used, 30 * GIB);
    assert_int_equal(m.self, GIB); /* NVML's entry for this pid, not asr_dev_allocated_bytes */
    assert_int_equal(m.n_procs, v3 ? 5 : 4);
    for (int i = 1; i < m.n_procs; i++)
        assert_true(m.procs[i - 1].bytes >= m.procs[i].bytes);
    const asr_devmem_proc_t *p = find(&m, 2886328);
    assert_non_null(p);
    assert_int_equal(p->bytes, 21 * GIB); /* in both lists: one allocation, not two */
    assert_string_equal(p->name, "python3.12");
    assert_false(p->self);
    assert_int_equal(m.procs[0].pid, 2886328);
    p = find(&m, 777);
    assert_non_null(p);
    assert_int_equal(p->bytes, 3 * GIB); /* two MIG instances */
    p = find(&m, (unsigned)getpid());
    assert_non_null(p);
    assert_true(p->self);
    char comm[64] = "";
    FILE *f = fopen("/proc/self/comm", "r");
    if (f && fgets(comm, sizeof comm, f))
        comm[strcspn(comm, "\n")] = 0;
    if (f)
        fclose(f);
    assert_string_equal(p->name, comm);
    p = find(&m, 4242);
    if (v3) {
        assert_non_null(p);
        assert_int_equal(p->bytes, 100 << 20);
    } else {
        assert_null(p); /* no graphics list in the first version */
    }
    /* 778 has no memory figure: the list is not complete in bytes, and why says so */
    assert_false(m.procs_known);
    assert_non_null(strstr(m.why, "per-process"));

    uint64_t b = 0;
    char err[256] = "";
    assert_int_equal(asr_nvml_process_mem(0, 2886328, &b, err, sizeof err), ASR_OK);
    assert_int_equal(b, 21 * GIB);
    assert_int_equal(asr_nvml_process_mem(0, 31337, &b, err, sizeof err), ASR_ERR_NOT_FOUND);
    assert_non_null(strstr(err, "31337"));
    assert_int_equal(asr_nvml_process_mem(0, 778, &b, err, sizeof err), ASR_ERR_UNSUPPORTED);
}

static void test_no_such_device(void **state) {
    (void)state;
    asr_devmem_t m;
    allocated = 0;
    assert_int_equal(asr_devmem_read(ASR_DEV_CUDA, 1, &m), ASR_ERR_UNSUPPORTED);
    assert_false(m.ok);
    assert_non_null(strstr(m.why, "NVML"));
    assert_non_null(strstr(m.why, "not asked")); /* no context there: cudaMemGetInfo not tried */
    allocated = 5 << 20;
}

static void test_injected_first(void **state) {
    (void)state;
    char err[256];
    assert_int_equal(asr_devmem_inject("total=8G,proc=1:x:1G", err, sizeof err), ASR_OK);
    asr_devmem_t m;
    assert_int_equal(asr_devmem_read(ASR_DEV_CUDA, 0, &m), ASR_OK);
    assert_string_equal(m.source, "injected");
    assert_int_equal(m.free, 7 * GIB - allocated);
    assert_int_equal(asr_devmem_inject("off", err, sizeof err), ASR_OK);
    assert_int_equal(asr_devmem_read(ASR_DEV_CUDA, 0, &m), ASR_OK);
    assert_string_equal(m.source, "nvml");
}

int main(int argc, char **argv) {
    v3 = argc > 1 && !strcmp(argv[1], "v3");
    char err[256] = "";
    if (asr_nvml_init(err, sizeof err) != ASR_OK) {
        fprintf(stderr, "the fake libnvidia-ml.so.1 did not load (LD_LIBRARY_PATH?): %s\n", err);
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list),
        cmocka_unit_test(test_no_such_device),
        cmocka_unit_test(test_injected_first),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
