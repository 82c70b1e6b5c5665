/* A fake NVIDIA management library (libnvidia-ml.so.1) for test_devmem_nvml: one 80 GiB device
 * with known processes, so that src/gpu/nvml.c's per-process list (both entry layouts, the
 * compute and graphics lists merged, MIG entries summed, a list that grows between the size query
 * and the fill) is checked where no driver exists. FAKE_NVML_V3 builds the _v3 entry points
 * (24-byte entries, compute and graphics); without it, only the first version of the compute
 * list (16-byte entries), as an old driver has. The types are declared from NVIDIA's public API
 * documentation. Not part of asrd. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define GIB (1ull << 30)

typedef struct {
    unsigned pid;
    unsigned long long used;
    unsigned gi, ci;
} info_v2_t;
typedef struct {
    unsigned pid;
    unsigned long long used;
} info_v1_t;
typedef struct {
    unsigned long long total, free, used;
} mem_t;

static int the_device;
static int calls; /* the first fill of the compute list reports one more process than asked */

int nvmlInit_v2(void) { return 0; }
const char *nvmlErrorString(int r) { return r == 7 ? "Insufficient Size" : "Invalid Argument"; }
int nvmlDeviceGetHandleByIndex_v2(unsigned i, void **d) {
    if (i != 0)
        return 2;
    *d = &the_device;
    return 0;
}
int nvmlDeviceGetHandleByPciBusId_v2(const char *bus, void **d) {
    (void)bus;
    *d = &the_device;
    return 0;
}
int nvmlDeviceGetMemoryInfo(void *d, mem_t *m) {
    (void)d;
    m->total = 80 * GIB;
    m->used = 30 * GIB;
    m->free = 50 * GIB;
    return 0;
}
int nvmlDeviceGetName(void *d, char *n, unsigned len) {
    (void)d;
    snprintf(n, len, "Fake GPU 80GB");
    return 0;
}
int nvmlSystemGetProcessName(unsigned pid, char *name, unsigned len) {
    if (pid != 2886328)
        return 3; /* not found: the library falls back to /proc/PID/comm */
    snprintf(name, len, "/usr/bin/python3.12");
    return 0;
}

/* compute: this process 1 GiB, 2886328 21 GiB, 777 on two MIG instances (1 + 2 GiB), 778 with
 * no memory figure; graphics: 2886328 again (the same memory), 4242 100 MiB */
static int fill(void *p, unsigned *n, int v3, int graphics) {
    info_v2_t c[] = {{(unsigned)getpid(), GIB, 0, 0},
                     {2886328, 21 * GIB, 0, 0},
                     {777, GIB, 1, 0},
                     {777, 2 * GIB, 2, 0},
                     {778, ~0ull, 0, 0}};
    info_v2_t g[] = {{2886328, 21 * GIB, 0, 0}, {4242, 100ull << 20, 0, 0}};
    info_v2_t *src = graphics ? g : c;
    unsigned k = graphics ? 2 : 5;
    if (!graphics && calls++ == 0 && *n >= k) { /* grew between the calls */
        *n = k + 1;
        return 7;
    }
    if (*n < k) {
        *n = k;
        return 7;
    }
    for (unsigned i = 0; i < k; i++) {
        if (v3) {
            ((info_v2_t *)p)[i] = src[i];
        } else {
            ((info_v1_t *)p)[i].pid = src[i].pid;
            ((info_v1_t *)p)[i].used = src[i].used;
        }
    }
    *n = k;
    return 0;
}
#ifdef FAKE_NVML_V3
int nvmlDeviceGetComputeRunningProcesses_v3(void *d, unsigned *n, info_v2_t *p) {
    (void)d;
    return fill(p, n, 1, 0);
}
int nvmlDeviceGetGraphicsRunningProcesses_v3(void *d, unsigned *n, info_v2_t *p) {
    (void)d;
    return fill(p, n, 1, 1);
}
#else
int nvmlDeviceGetComputeRunningProcesses(void *d, unsigned *n, info_v1_t *p) {
    (void)d;
    return fill(p, n, 0, 0);
}
#endif
