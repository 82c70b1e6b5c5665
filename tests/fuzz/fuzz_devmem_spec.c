/* fuzz_devmem_spec: the device memory injection spec (asr_devmem_parse_spec, src/gpu/devmem.c),
 * which POST /debug/gpu-memory passes through from a form field.
 *
 * Input: spec text. Whatever it holds, parsing must not crash; a refused spec leaves a one-line
 * reason and an all-zero result; an accepted one has a total (unless off), at most
 * ASR_DEVMEM_MAX_PROCS processes with distinct non-zero pids and printable names, holding no more
 * than the total together; written back out in bytes it parses to the same spec; and injected,
 * the reading's free memory is total - the processes - what this process holds there.
 * Seeds: tests/fuzz/corpus/devmem_spec/. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpu/dev.h"
#include "gpu/devmem.h"

static void check_ok(const asr_devmem_spec_t *s) {
    if (s->off)
        return;
    if (s->total == 0 || s->total > (uint64_t)INT64_MAX || s->n_procs < 0 ||
        s->n_procs > ASR_DEVMEM_MAX_PROCS)
        abort();
    uint64_t sum = 0;
    for (int i = 0; i < s->n_procs; i++) {
        const asr_devmem_proc_t *p = &s->procs[i];
        size_t n = strnlen(p->name, sizeof p->name);
        if (p->pid == 0 || n == 0 || n >= sizeof p->name)
            abort();
        for (size_t k = 0; k < n; k++)
            if ((unsigned char)p->name[k] < 0x20 || (unsigned char)p->name[k] >= 0x7f)
                abort();
        for (int j = 0; j < i; j++)
            if (s->procs[j].pid == p->pid)
                abort();
        sum += p->bytes;
    }
    if (sum > s->total)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *spec = malloc(size + 1);
    if (!spec)
        return 0;
    memcpy(spec, data, size);
    spec[size] = 0;
    asr_devmem_spec_t s;
    char err[256];
    err[0] = 0;
    asr_err_t rc = asr_devmem_parse_spec(spec, &s, err, sizeof err);
    if (rc != ASR_OK) {
        static const asr_devmem_spec_t zero;
        if (rc != ASR_ERR_INVALID || !err[0] || strchr(err, '\n') || memcmp(&s, &zero, sizeof s))
            abort();
        free(spec);
        return 0;
    }
    check_ok(&s);
    if (!s.off) {
        /* written back in bytes, it parses to the same spec */
        size_t cap = 64 + (size_t)s.n_procs * 128;
        char *again = malloc(cap);
        if (!again)
            abort();
        int len = snprintf(again, cap, "total=%llu", (unsigned long long)s.total);
        for (int i = 0; i < s.n_procs; i++)
            len += snprintf(again + len, cap - (size_t)len, ",proc=%u:%s:%llu", s.procs[i].pid,
                            s.procs[i].name, (unsigned long long)s.procs[i].bytes);
        if (s.nvml_absent)
            len += snprintf(again + len, cap - (size_t)len, ",nvml=absent");
        if (s.read_fail)
            snprintf(again + len, cap - (size_t)len, ",read=fail");
        asr_devmem_spec_t t;
        if (asr_devmem_parse_spec(again, &t, err, sizeof err) != ASR_OK || memcmp(&s, &t, sizeof s))
            abort();
        free(again);
        /* injected, the reading follows the formula */
        if (asr_devmem_inject(spec, err, sizeof err) != ASR_OK)
            abort();
        asr_devmem_t m;
        asr_err_t r = asr_devmem_read(ASR_DEV_HOST, 0, &m);
        if (s.read_fail) {
            if (r == ASR_OK || m.ok)
                abort();
        } else {
            uint64_t others = 0;
            for (int i = 0; i < s.n_procs; i++)
                others += s.procs[i].bytes;
            uint64_t self = asr_dev_allocated_bytes(ASR_DEV_HOST, 0);
            uint64_t want = others + self >= s.total ? 0 : s.total - others - self;
            if (r != ASR_OK || !m.ok || m.total != s.total || m.free != want ||
                m.used != m.total - m.free || m.procs_known == s.nvml_absent)
                abort();
        }
        if (asr_devmem_inject("off", err, sizeof err) != ASR_OK || asr_devmem_injected())
            abort();
    }
    free(spec);
    return 0;
}
