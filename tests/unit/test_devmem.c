/* Unit tests: device memory readings (src/gpu/devmem.c): the injection spec's parser (what it
 * accepts and refuses), injected readings (free = total - the other processes - what asrd
 * allocated on the device, asrd listed as itself), the host reference device's reading, a CUDA
 * reading where no driver or no device exists (ok false with a reason, never a crash), and "off"
 * restoring the real sources. Runs on any machine; where a CUDA device is usable the CUDA reading
 * is checked for sanity instead of for its failure. */
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
#include "gpu/devmem.h"

#define GiB (1ull << 30)
#define MiB (1ull << 20)

static void inject_ok(const char *spec) {
    char err[256] = "";
    if (asr_devmem_inject(spec, err, sizeof err) != ASR_OK)
        fail_msg("inject '%s' refused: %s", spec, err);
}

static void test_parse_accepts(void **state) {
    (void)state;
    static const struct {
        const char *spec;
        uint64_t total;
        int n_procs;
        uint64_t proc0;
        bool nvml_absent, read_fail;
    } ok[] = {
        {"total=24GiB", 24 * GiB, 0, 0, false, false},
        {"total=24G", 24 * GiB, 0, 0, false, false},
        {"total=24gb", 24 * GiB, 0, 0, false, false},
        {"total=1024", 1024, 0, 0, false, false},
        {"total=1024B", 1024, 0, 0, false, false},
        {"total=3K", 3072, 0, 0, false, false},
        {"total=2MiB", 2 * MiB, 0, 0, false, false},
        {"total=1T", 1ull << 40, 0, 0, false, false},
        {"total=1.5KiB", 1536, 0, 0, false, false},
        {"total=0.5G", GiB / 2, 0, 0, false, false},
        {"total=23.57GiB,proc=2886328:python:21.22GiB", (uint64_t)(23.57 * GiB), 1,
         (uint64_t)(21.22 * GiB), false, false},
        {" total=8G , proc=7:a b:1G ,nvml=absent ", 8 * GiB, 1, GiB, true, false},
        {"read=fail,total=1G", GiB, 0, 0, false, true},
        {"proc=1:x:1M,proc=2:y:2M,total=1G", GiB, 2, MiB, false, false},
        {"total=1G,proc=4294967295:n:1", GiB, 1, 1, false, false},
        {"total=1G,proc=9:a:b:1M", GiB, 1, MiB, false, false}, /* name "a:b" */
        {"total=1G,proc=9:x:1G", GiB, 1, GiB, false, false},   /* all of it */
        {"total=9223372036854775807", 9223372036854775807ull, 0, 0, false, false},
    };
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        asr_devmem_spec_t s;
        char err[256] = "";
        if (asr_devmem_parse_spec(ok[i].spec, &s, err, sizeof err) != ASR_OK)
            fail_msg("'%s' refused: %s", ok[i].spec, err);
        assert_false(s.off);
        if (s.total != ok[i].total)
            fail_msg("'%s': total %llu, expected %llu", ok[i].spec, (unsigned long long)s.total,
                     (unsigned long long)ok[i].total);
        assert_int_equal(s.n_procs, ok[i].n_procs);
        if (ok[i].n_procs)
            assert_int_equal(s.procs[0].bytes, ok[i].proc0);
        assert_int_equal(s.nvml_absent, ok[i].nvml_absent);
        assert_int_equal(s.read_fail, ok[i].read_fail);
    }
    asr_devmem_spec_t s;
    char err[256];
    assert_int_equal(asr_devmem_parse_spec("off", &s, err, sizeof err), ASR_OK);
    assert_true(s.off);
    assert_int_equal(asr_devmem_parse_spec(" off\n", &s, err, sizeof err), ASR_OK);
    assert_true(s.off);
    assert_int_equal(asr_devmem_parse_spec("total=1G,proc=2886328:python:21M", &s, err, sizeof err),
                     ASR_OK);
    assert_int_equal(s.procs[0].pid, 2886328);
    assert_string_equal(s.procs[0].name, "python");
    /* ASR_DEVMEM_MAX_PROCS processes fit */
    char big[4096];
    int len = snprintf(big, sizeof big, "total=1T");
    for (int i = 0; i < ASR_DEVMEM_MAX_PROCS; i++)
        len += snprintf(big + len, sizeof big - (size_t)len, ",proc=%d:p%d:1G", 100 + i, i);
    assert_int_equal(asr_devmem_parse_spec(big, &s, err, sizeof err), ASR_OK);
    assert_int_equal(s.n_procs, ASR_DEVMEM_MAX_PROCS);
}

static void test_parse_rejects(void **state) {
    (void)state;
    char name64[80];
    memset(name64, 'n', 64);
    name64[64] = 0;
    char long_name[160];
    snprintf(long_name, sizeof long_name, "total=1G,proc=5:%s:1M", name64);
    char too_many[4096];
    int len = snprintf(too_many, sizeof too_many, "total=1T");
    for (int i = 0; i <= ASR_DEVMEM_MAX_PROCS; i++)
        len += snprintf(too_many + len, sizeof too_many - (size_t)len, ",proc=%d:p:1G", 100 + i);
    const char *const bad[] = {
        NULL,
        "",
        "   ",
        "total",
        "total=",
        "total=0",
        "total=G",
        "total=-1G",
        "total=+1G",
        "total=1X",
        "total=1GG",
        "total=1 G",
        "total=1GiBs",
        "total=1.5",  /* fractional bytes */
        "total=1.5B", /* fractional bytes */
        "total=1.G",
        "total=.5G",
        "total=1e9",
        "total=0x10",
        "total=18446744073709551616", /* 2^64: overflow */
        "total=9223372036854775808",  /* past int64 */
        "total=8589934592G",          /* 2^33 GiB: overflow */
        "total=9999999999999999999999T",
        "total=1G,total=1G", /* duplicate total */
        "total=1G,total=2G",
        "proc=1:x:1M", /* no total */
        "total=1G,",   /* empty item */
        ",total=1G",
        "total=1G,,proc=1:x:1M",
        "total=1G,proc=",
        "total=1G,proc=1",
        "total=1G,proc=1:x",
        "total=1G,proc=1::1M", /* empty name */
        "total=1G,proc=:x:1M", /* empty pid */
        "total=1G,proc=0:x:1M",
        "total=1G,proc=-1:x:1M",
        "total=1G,proc=4294967296:x:1M",
        "total=1G,proc=99999999999999999999:x:1M",
        "total=1G,proc=1x:x:1M",
        "total=1G,proc=1:x:",
        "total=1G,proc=1:x:1Q",
        "total=1G,proc=1:x\t:1M",
        "total=1G,proc=1:x\x01y:1M",
        "total=1G,proc=1:\xc3\xa9:1M",
        long_name,
        too_many,
        "total=1G,proc=1:x:1M,proc=1:y:1M", /* the same pid twice */
        "total=1G,proc=1:x:2G",             /* more than the card */
        "total=1G,proc=1:x:600M,proc=2:y:600M",
        "total=1G,nvml=present",
        "total=1G,nvml=absent,nvml=absent",
        "total=1G,read=ok",
        "total=1G,read=fail,read=fail",
        "total=1G,off",
        "off,total=1G",
        "off,off",
        "OFF",
        "total=1G,foo=bar",
        "Total=1G",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        asr_devmem_spec_t s;
        char err[256] = "";
        if (asr_devmem_parse_spec(bad[i], &s, err, sizeof err) != ASR_ERR_INVALID)
            fail_msg("'%s' accepted", bad[i] ? bad[i] : "(null)");
        if (!err[0] || strchr(err, '\n'))
            fail_msg("'%s': no one-line reason ('%s')", bad[i] ? bad[i] : "(null)", err);
        assert_int_equal(s.total, 0); /* nothing half-parsed */
        assert_int_equal(s.n_procs, 0);
    }
    /* a refused spec changes nothing */
    inject_ok("total=4G");
    char err[256];
    assert_int_equal(asr_devmem_inject("total=1G,total=2G", err, sizeof err), ASR_ERR_INVALID);
    asr_devmem_t m;
    assert_int_equal(asr_devmem_read(ASR_DEV_HOST, 0, &m), ASR_OK);
    assert_int_equal(m.total, 4 * GiB);
    inject_ok("off");
}

/* free = total - others - asr_dev_allocated_bytes, on the host device with a real arena */
static void test_injected_formula(void **state) {
    (void)state;
    inject_ok("total=24GiB,proc=2886328:python:21.22GiB,proc=77:llm:100MiB");
    assert_true(asr_devmem_injected());
    const uint64_t others = (uint64_t)(21.22 * GiB) + 100 * MiB;
    asr_devmem_t m;
    assert_int_equal(asr_devmem_read(ASR_DEV_HOST, 0, &m), ASR_OK);
    assert_true(m.ok);
    assert_string_equal(m.source, "injected");
    assert_true(m.procs_known);
    uint64_t self0 = asr_dev_allocated_bytes(ASR_DEV_HOST, 0);
    assert_int_equal(m.self, self0);
    assert_int_equal(m.total, 24 * GiB);
    assert_int_equal(m.free, 24 * GiB - others - self0);
    assert_int_equal(m.used, m.total - m.free);
    assert_true(m.n_procs >= 2);
    assert_int_equal(m.procs[0].pid, 2886328); /* largest first */
    assert_string_equal(m.procs[0].name, "python");
    assert_false(m.procs[0].self);

    asr_dev_t *d = NULL;
    char err[256] = "";
    if (asr_dev_open(ASR_DEV_HOST, 0, &d, err, sizeof err) != ASR_OK)
        fail_msg("host device: %s", err);
    asr_dev_arena_t a;
    const size_t arena = 48 * MiB;
    assert_int_equal(asr_dev_arena_init(d, &a, arena), ASR_OK);
    uint64_t self1 = asr_dev_allocated_bytes(ASR_DEV_HOST, 0);
    assert_int_equal(asr_devmem_read(ASR_DEV_HOST, 0, &m), ASR_OK);
    assert_int_equal(m.self, self1);
    assert_int_equal(m.free, 24 * GiB - others - self1);
    if (self1 == self0) {
        print_message("asr_dev_allocated_bytes does not count arenas yet: the formula was checked "
                      "with what it returns (%llu)\n",
                      (unsigned long long)self1);
    } else {
        assert_true(self1 >= self0 + arena); /* the arena shows up: free dropped by it */
        bool listed = false;
        for (int i = 0; i < m.n_procs; i++)
            if (m.procs[i].self) {
                listed = true;
                assert_int_equal(m.procs[i].pid, (unsigned)getpid());
                assert_int_equal(m.procs[i].bytes, self1);
            }
        assert_true(listed);
        for (int i = 1; i < m.n_procs; i++)
            assert_true(m.procs[i - 1].bytes >= m.procs[i].bytes);
    }
    asr_dev_arena_release(d, &a);
    assert_int_equal(asr_dev_allocated_bytes(ASR_DEV_HOST, 0), self0);
    assert_int_equal(asr_devmem_read(ASR_DEV_HOST, 0, &m), ASR_OK);
    assert_int_equal(m.free, 24 * GiB - others - self0);
    asr_dev_close(d);

    /* the same card for every device, CUDA included */
    assert_int_equal(asr_devmem_read(ASR_DEV_CUDA, 3, &m), ASR_OK);
    assert_int_equal(m.index, 3);
    assert_int_equal(m.kind, ASR_DEV_CUDA);
    assert_int_equal(m.total, 24 * GiB);

    /* no per-process list: the others still count toward free */
    inject_ok("total=8G,proc=5:x:3G,nvml=absent");
    assert_int_equal(asr_devmem_read(ASR_DEV_HOST, 0, &m), ASR_OK);
    assert_false(m.procs_known);
    assert_int_equal(m.n_procs, 0);
    assert_true(m.why[0]);
    assert_int_equal(m.free, 5 * GiB - asr_dev_allocated_bytes(ASR_DEV_HOST, 0));

    /* a card the others hold entirely: free is 0, not a wrapped number */
    inject_ok("total=1G,proc=5:x:1G");
    assert_int_equal(asr_devmem_read(ASR_DEV_HOST, 0, &m), ASR_OK);
    assert_int_equal(m.free, 0);
    assert_int_equal(m.used, GiB);

    inject_ok("total=8G,read=fail");
    assert_int_equal(asr_devmem_read(ASR_DEV_HOST, 0, &m), ASR_ERR_UNSUPPORTED);
    assert_false(m.ok);
    assert_string_equal(m.why, "injected: reading failed");
    inject_ok("off");
    assert_false(asr_devmem_injected());
}

static void test_host_reading(void **state) {
    (void)state;
    inject_ok("off");
    asr_devmem_t m;
    assert_int_equal(asr_devmem_read(ASR_DEV_HOST, 0, &m), ASR_OK);
    assert_true(m.ok);
    assert_string_equal(m.source, "host");
    assert_true(m.total > 64 * MiB);
    assert_true(m.free > 0 && m.free <= m.total);
    assert_int_equal(m.used, m.total - m.free);
    assert_false(m.procs_known);
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages > 0 && page > 0) {
        uint64_t phys = (uint64_t)pages * (uint64_t)page;
        assert_true(m.total <= phys + phys / 50 && m.total + m.total / 50 >= phys);
    }
}

static void test_cuda_reading(void **state) {
    (void)state;
    inject_ok("off");
    char why[256] = "";
    int n = asr_gpu_cuda_count(why, sizeof why);
    asr_devmem_t m;
    asr_err_t rc = asr_devmem_read(ASR_DEV_CUDA, 0, &m);
    assert_int_equal(m.kind, ASR_DEV_CUDA);
    if (n <= 0) {
        /* no usable device; NVML may still answer on a machine with a driver but no usable GPU,
         * so either it answered sanely or the reading failed with a reason */
        print_message("no CUDA device (%s): reading rc %d, why '%s'\n", why, rc, m.why);
        if (rc != ASR_OK) {
            assert_false(m.ok);
            assert_true(m.why[0] != 0);
            assert_null(strchr(m.why, '\n'));
            assert_int_equal(m.total, 0);
        }
    } else {
        assert_int_equal(rc, ASR_OK);
        print_message("cuda:0 via %s: %s, %.2f of %.2f GiB free, %d processes\n", m.source, m.name,
                      m.free / (double)GiB, m.total / (double)GiB, m.n_procs);
        assert_true(m.ok);
        assert_true(m.total > 0 && m.free <= m.total);
    }
    assert_int_equal(asr_devmem_read(ASR_DEV_CUDA, -1, &m), ASR_ERR_UNSUPPORTED);
    assert_false(m.ok);
    assert_true(m.why[0]);
    assert_int_equal(asr_devmem_read(ASR_DEV_CUDA, 999, &m), ASR_ERR_UNSUPPORTED);
    assert_false(m.ok);
    assert_true(m.why[0]);
}

/* The budget of a reading (asr_devmem_budget): each case's figure is worked out by hand from
 * the rule in devmem.h. */
static void test_budget(void **state) {
    (void)state;
    const uint64_t G = 1ull << 30, M = 1ull << 20;
    asr_devmem_t m;
    memset(&m, 0, sizeof m);
    /* NVML lists asrd (self) and another process: min(free + self, total - others) - reserve */
    m.ok = true;
    snprintf(m.source, sizeof m.source, "nvml");
    m.total = 24 * G, m.free = 2 * G, m.self = 1 * G, m.procs_known = true, m.n_procs = 2;
    m.procs[0] = (asr_devmem_proc_t){.pid = 2886328, .bytes = 21 * G};
    m.procs[1] = (asr_devmem_proc_t){.pid = 1, .self = true, .bytes = 1 * G};
    assert_int_equal(asr_devmem_budget(&m, 0, 512 * M, 512 * M, 0), 3 * G - 512 * M);
    /* a limit below that wins */
    assert_int_equal(asr_devmem_budget(&m, 2 * G, 512 * M, 512 * M, 0), 2 * G - 512 * M);
    /* total - others caps free + self (others grew past what free shows) */
    m.procs[0].bytes = 22 * G;
    assert_int_equal(asr_devmem_budget(&m, 0, 0, 0, 0), 2 * G);
    /* a container: NVML lists asrd under a host pid it cannot recognise (no self entry): no
     * total - others cap (asrd would count twice), and the context asrd holds is added to the
     * allocated bytes self stands for */
    m.procs[1].self = false;
    m.procs[0].bytes = 21 * G;
    assert_int_equal(asr_devmem_budget(&m, 0, 0, 512 * M, 0), 3 * G + 512 * M);
    /* injected readings: no self entry, the cap applies, no context added */
    snprintf(m.source, sizeof m.source, "injected");
    m.n_procs = 1;
    m.free = 0;
    m.self = 4 * G; /* others 21 + asrd 4 > 24: free saturated at 0 */
    assert_int_equal(asr_devmem_budget(&m, 0, 0, 512 * M, 0), 3 * G);
    /* a failed reading: the limit, else the fallback total, minus the reserve */
    m.ok = false;
    assert_int_equal(asr_devmem_budget(&m, 4 * G, 1 * G, 0, 80 * G), 3 * G);
    assert_int_equal(asr_devmem_budget(&m, 0, 1 * G, 0, 80 * G), 79 * G);
    assert_int_equal(asr_devmem_budget(&m, 0, 1 * G, 0, 0), 0);
}

static void test_off_restores(void **state) {
    (void)state;
    inject_ok("off");
    asr_devmem_t real;
    assert_int_equal(asr_devmem_read(ASR_DEV_HOST, 0, &real), ASR_OK);
    inject_ok("total=3G,proc=1:x:1G");
    asr_devmem_t m;
    assert_int_equal(asr_devmem_read(ASR_DEV_HOST, 0, &m), ASR_OK);
    assert_int_equal(m.total, 3 * GiB);
    inject_ok("off");
    assert_false(asr_devmem_injected());
    assert_int_equal(asr_devmem_read(ASR_DEV_HOST, 0, &m), ASR_OK);
    assert_string_equal(m.source, "host");
    assert_int_equal(m.total, real.total);
    inject_ok("off"); /* off twice is fine */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_accepts),    cmocka_unit_test(test_parse_rejects),
        cmocka_unit_test(test_injected_formula), cmocka_unit_test(test_host_reading),
        cmocka_unit_test(test_cuda_reading),     cmocka_unit_test(test_off_restores),
        cmocka_unit_test(test_budget),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
