/* gpu: what a device's memory looks like now, with the other processes on it: the reading the
 * GPU memory contract (sched.c) budgets from, `asrd ps`/`asrd diagnose` show, and tests inject.
 *
 * Sources, first that answers: an injected reading (tests, POST /debug/gpu-memory); NVML
 * (nvml.h: used/free/total and the per-process list, like nvidia-smi, with no CUDA context
 * needed); cudaMemGetInfo (free/total) only when this process already holds a context on the
 * device (a model is loaded there: asking otherwise would create a ~0.5 GiB context); for the host
 * reference device, MemAvailable and MemTotal. A device nothing can read gives ok = false and the
 * reason in why: callers budget from their configured limit then.
 *
 * An injected reading describes the card, not a frozen number: total bytes and the other
 * processes (pid, name, bytes); free = total - the others - what asrd allocated on that device
 * (asr_dev_allocated_bytes), so asrd's own allocations show up as they would on a real card.
 *
 * Thread-safe. */
#ifndef ASR_GPU_DEVMEM_H
#define ASR_GPU_DEVMEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "asr/common.h"
#include "gpu/dev.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ASR_DEVMEM_MAX_PROCS 32

typedef struct {
    unsigned pid;
    bool self;     /* this process */
    char name[64]; /* process name ("python"), "" when unknown */
    uint64_t bytes;
} asr_devmem_proc_t;

typedef struct {
    asr_dev_kind_t kind;
    int index;        /* CUDA ordinal (0 for the host device) */
    bool ok;          /* total and free are known */
    char source[16];  /* "injected", "nvml", "cuda", "host", "" */
    char name[96];    /* "NVIDIA H100 80GB HBM3", "host reference" */
    uint64_t total;   /* bytes */
    uint64_t free;    /* bytes */
    uint64_t used;    /* total - free */
    uint64_t self;    /* bytes this process holds there: NVML's entry for our pid when listed,
                         else asr_dev_allocated_bytes */
    bool procs_known; /* the per-process list below is complete (NVML answered) */
    int n_procs;      /* processes holding memory, this one included when listed */
    asr_devmem_proc_t procs[ASR_DEVMEM_MAX_PROCS]; /* largest first */
    char why[200]; /* !ok, or !procs_known: why ("NVML not found: libnvidia-ml.so.1") */
} asr_devmem_t;

/* Reads device (kind, index) now. Returns ASR_OK with out->ok set, or ASR_ERR_UNSUPPORTED with
 * out->ok false and out->why filled; never crashes. Costs a few NVML calls (< 1 ms). */
asr_err_t asr_devmem_read(asr_dev_kind_t kind, int index, asr_devmem_t *out);

/* What asrd may hold on the device by reading m (the GPU memory contract's budget): min(limit
 * (0 = none), free + what asrd holds there, total - the other processes' bytes) - reserve. What
 * asrd holds is m->self, plus `context` when NVML did not list this process (self is then what
 * asrd allocated, without its CUDA context; pass 0 when no context is held); total - the others
 * applies only when the list is complete and names this process (or is injected): in a container
 * NVML lists host pids, and asrd's own entry would count among the others. A failed reading:
 * limit, else `total_fallback`, minus reserve. */
uint64_t asr_devmem_budget(const asr_devmem_t *m, uint64_t limit, uint64_t reserve,
                           uint64_t context, uint64_t total_fallback);

/* Injects readings for every device (tests). spec: comma-separated key=value items:
 *   total=SIZE          the card's total (required unless off)
 *   proc=PID:NAME:SIZE  another process holding SIZE (repeatable, up to ASR_DEVMEM_MAX_PROCS)
 *   nvml=absent         no per-process list (procs_known false; procs still count toward free)
 *   read=fail           the reading fails (ok false, why "injected: reading failed")
 *   off                 (alone) back to the real sources
 * SIZE: bytes with an optional unit (B, K/KiB, M/MiB, G/GiB, T/TiB; fractions allowed: 21.2GiB).
 * Returns ASR_ERR_INVALID with a one-line reason in err for a bad spec (nothing changed). */
asr_err_t asr_devmem_inject(const char *spec, char *err, size_t err_len);
/* The parser of inject's spec alone (fuzzed): fills *out's total and procs, read_fail,
 * nvml_absent; off set for "off". */
typedef struct {
    bool off, read_fail, nvml_absent;
    uint64_t total;
    int n_procs;
    asr_devmem_proc_t procs[ASR_DEVMEM_MAX_PROCS];
} asr_devmem_spec_t;
asr_err_t asr_devmem_parse_spec(const char *spec, asr_devmem_spec_t *out, char *err,
                                size_t err_len);
/* Whether readings are injected now. */
bool asr_devmem_injected(void);

#ifdef __cplusplus
}
#endif
#endif
