/* gpu: NVML opened at run time (nvml.h of this folder says what for). nvml.h of the CUDA toolkit
 * is not needed: the few types and entry points used are declared here from NVIDIA's public API
 * documentation (the _v2/_v3 symbols, stable since driver R470).
 *
 * Invariants: the library is dlopen'ed and nvmlInit_v2 called once (pthread_once); a failure is
 * remembered with its reason and every later call reports it. Never dlclose'd, never shut down:
 * the handles stay valid until exit. */
#include <dlfcn.h>
#include <stdbool.h>
#include <stddef.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "gpu/nvml.h"

#ifdef ASR_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

typedef int nvml_ret_t; /* nvmlReturn_t */
typedef struct nvml_device *nvml_device_t;
enum { NVML_OK = 0, NVML_ERR_INSUFFICIENT_SIZE = 7 };
typedef struct {
    unsigned long long total, free, used; /* nvmlMemory_t (v1) */
} nvml_memory_t;
/* nvmlProcessInfo_t: pid at offset 0 and usedGpuMemory at 8 in every version; the first version
 * (nvmlDeviceGet*RunningProcesses) is 16 bytes a process, _v2 and _v3 add gpuInstanceId and
 * computeInstanceId (24 bytes). The list is read through these offsets with the version's
 * stride. */
typedef struct {
    unsigned int pid;
    unsigned long long used_gpu_memory; /* NVML_VALUE_NOT_AVAILABLE (~0ULL) when unknown */
    unsigned int gpu_instance_id;
    unsigned int compute_instance_id;
} nvml_process_info_t;
typedef struct {
    unsigned int pid;
    unsigned long long used_gpu_memory;
} nvml_process_info_v1_t;
typedef nvml_ret_t (*nvml_procs_fn)(nvml_device_t, unsigned int *, void *);
#define NVML_VALUE_NOT_AVAILABLE (~0ULL)

static struct {
    nvml_ret_t (*init)(void);
    const char *(*error_string)(nvml_ret_t);
    nvml_ret_t (*by_index)(unsigned int, nvml_device_t *);
    nvml_ret_t (*by_pci)(const char *, nvml_device_t *);
    nvml_ret_t (*memory)(nvml_device_t, nvml_memory_t *);
    nvml_ret_t (*name)(nvml_device_t, char *, unsigned int);
    nvml_procs_fn compute[3]; /* _v3, _v2, first version (any may be missing) */
    nvml_procs_fn graphics[3];
    nvml_ret_t (*process_name)(unsigned int, char *, unsigned int);
    nvml_ret_t (*driver_version)(char *, unsigned int);
} nv;
/* the stride of each version's entries: [0] _v3, [1] _v2, [2] first */
static const size_t proc_stride[3] = {sizeof(nvml_process_info_t), sizeof(nvml_process_info_t),
                                      sizeof(nvml_process_info_v1_t)};
static pthread_once_t nv_once = PTHREAD_ONCE_INIT;
static asr_err_t nv_rc = ASR_ERR_UNSUPPORTED;
static char nv_why[200];

static const char *ret_str(nvml_ret_t r) {
    const char *s = nv.error_string ? nv.error_string(r) : NULL;
    return s ? s : "unknown NVML error";
}

static void nv_open(void) {
    void *h = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *e = dlerror();
        snprintf(nv_why, sizeof nv_why, "NVML not found (%s): no NVIDIA driver installed",
                 e ? e : "libnvidia-ml.so.1");
        return;
    }
    static const struct {
        const char *sym;
        void **fn;
        int required;
    } syms[] = {
        {"nvmlInit_v2", (void **)&nv.init, 1},
        {"nvmlErrorString", (void **)&nv.error_string, 1},
        {"nvmlDeviceGetHandleByIndex_v2", (void **)&nv.by_index, 1},
        {"nvmlDeviceGetHandleByPciBusId_v2", (void **)&nv.by_pci, 1},
        {"nvmlDeviceGetMemoryInfo", (void **)&nv.memory, 1},
        {"nvmlDeviceGetName", (void **)&nv.name, 1},
        {"nvmlDeviceGetComputeRunningProcesses_v3", (void **)&nv.compute[0], 0},
        {"nvmlDeviceGetComputeRunningProcesses_v2", (void **)&nv.compute[1], 0},
        {"nvmlDeviceGetComputeRunningProcesses", (void **)&nv.compute[2], 0},
        {"nvmlDeviceGetGraphicsRunningProcesses_v3", (void **)&nv.graphics[0], 0},
        {"nvmlDeviceGetGraphicsRunningProcesses_v2", (void **)&nv.graphics[1], 0},
        {"nvmlDeviceGetGraphicsRunningProcesses", (void **)&nv.graphics[2], 0},
        {"nvmlSystemGetProcessName", (void **)&nv.process_name, 0},
        {"nvmlSystemGetDriverVersion", (void **)&nv.driver_version, 0},
    };
    for (size_t i = 0; i < sizeof syms / sizeof *syms; i++) {
        *syms[i].fn = dlsym(h, syms[i].sym);
        if (!*syms[i].fn && syms[i].required) {
            snprintf(nv_why, sizeof nv_why, "NVML too old: no %s in libnvidia-ml.so.1",
                     syms[i].sym);
            memset(&nv, 0, sizeof nv);
            return;
        }
    }
    nvml_ret_t r = nv.init();
    if (r != NVML_OK) {
        snprintf(nv_why, sizeof nv_why, "nvmlInit: %s", ret_str(r));
        memset(&nv, 0, sizeof nv);
        return;
    }
    nv_rc = ASR_OK;
}

asr_err_t asr_nvml_init(char *err, size_t err_len) {
    pthread_once(&nv_once, nv_open);
    if (nv_rc != ASR_OK)
        asr_errf(err, err_len, "%s", nv_why);
    return nv_rc;
}

/* The NVML handle of CUDA device cuda_index. */
static asr_err_t device(int cuda_index, nvml_device_t *dev, char *err, size_t err_len) {
    asr_err_t rc = asr_nvml_init(err, err_len);
    if (rc != ASR_OK)
        return rc;
    if (cuda_index < 0) {
        asr_errf(err, err_len, "NVML: negative device index");
        return ASR_ERR_INVALID;
    }
    nvml_ret_t r;
#ifdef ASR_HAVE_CUDA
    char bus[32];
    cudaError_t e = cudaDeviceGetPCIBusId(bus, (int)sizeof bus, cuda_index);
    if (e != cudaSuccess) {
        cudaGetLastError();
        asr_errf(err, err_len, "NVML: no PCI bus id for the CUDA device (%s)",
                 cudaGetErrorString(e));
        return ASR_ERR_UNSUPPORTED;
    }
    r = nv.by_pci(bus, dev);
    if (r != NVML_OK) {
        asr_errf(err, err_len, "NVML: device %s: %s", bus, ret_str(r));
        return ASR_ERR_UNSUPPORTED;
    }
#else
    r = nv.by_index((unsigned)cuda_index, dev);
    if (r != NVML_OK) {
        asr_errf(err, err_len, "NVML: device index: %s", ret_str(r));
        return ASR_ERR_UNSUPPORTED;
    }
#endif
    return ASR_OK;
}

asr_err_t asr_nvml_mem(int cuda_index, uint64_t *used, uint64_t *free_bytes, uint64_t *total,
                       char *err, size_t err_len) {
    nvml_device_t dev;
    asr_err_t rc = device(cuda_index, &dev, err, err_len);
    if (rc != ASR_OK)
        return rc;
    nvml_memory_t m;
    nvml_ret_t r = nv.memory(dev, &m);
    if (r != NVML_OK) {
        asr_errf(err, err_len, "nvmlDeviceGetMemoryInfo: %s", ret_str(r));
        return ASR_ERR_UNSUPPORTED;
    }
    if (used)
        *used = m.used;
    if (free_bytes)
        *free_bytes = m.free;
    if (total)
        *total = m.total;
    return ASR_OK;
}

/* One list (compute or graphics) of dev, merged into out[0.. *n) by pid. The list can grow
 * between the size query and the fill: retried a few times with room to spare. */
static asr_err_t list_merge(nvml_device_t dev, const nvml_procs_fn fns[3], bool graphics,
                            asr_nvml_proc_t **out, int *n, int *cap, char *err, size_t err_len) {
    int v = 0;
    while (v < 3 && !fns[v])
        v++;
    if (v == 3) {
        if (graphics)
            return ASR_OK; /* optional */
        asr_errf(err, err_len, "NVML too old: no nvmlDeviceGetComputeRunningProcesses");
        return ASR_ERR_UNSUPPORTED;
    }
    size_t stride = proc_stride[v];
    unsigned room = 32, got = 0;
    unsigned char *buf = NULL;
    nvml_ret_t r = NVML_ERR_INSUFFICIENT_SIZE;
    for (int tries = 0; tries < 4 && r == NVML_ERR_INSUFFICIENT_SIZE; tries++) {
        unsigned char *q = realloc(buf, room * stride);
        if (!q) {
            free(buf);
            return ASR_ERR_NOMEM;
        }
        buf = q;
        got = room;
        r = fns[v](dev, &got, buf);
        if (r == NVML_ERR_INSUFFICIENT_SIZE)
            room = got + 16 > room * 2 ? got + 16 : room * 2;
    }
    if (r != NVML_OK) {
        free(buf);
        asr_errf(err, err_len, "nvmlDeviceGet%sRunningProcesses: %s",
                 graphics ? "Graphics" : "Compute", ret_str(r));
        return ASR_ERR_UNSUPPORTED;
    }
    for (unsigned i = 0; i < got && i < room; i++) {
        unsigned pid;
        unsigned long long used;
        memcpy(&pid, buf + i * stride + offsetof(nvml_process_info_t, pid), sizeof pid);
        memcpy(&used, buf + i * stride + offsetof(nvml_process_info_t, used_gpu_memory),
               sizeof used);
        int j = 0;
        while (j < *n && (*out)[j].pid != pid)
            j++;
        if (j == *n) {
            if (*n == *cap) {
                int c = *cap ? *cap * 2 : 16;
                asr_nvml_proc_t *q = realloc(*out, (size_t)c * sizeof **out);
                if (!q) {
                    free(buf);
                    return ASR_ERR_NOMEM;
                }
                *out = q;
                *cap = c;
            }
            memset(&(*out)[j], 0, sizeof **out);
            (*out)[j].pid = pid;
            (*out)[j].bytes_known = true;
            (*n)++;
        }
        asr_nvml_proc_t *p = &(*out)[j];
        bool seen = graphics ? p->graphics : p->compute;
        if (used == NVML_VALUE_NOT_AVAILABLE) {
            p->bytes_known = false;
            p->bytes = 0;
        } else if (p->bytes_known) {
            /* MIG: one entry per instance, summed; the same pid in both lists holds one
             * allocation seen twice: the larger */
            if (seen)
                p->bytes += used;
            else if (used > p->bytes)
                p->bytes = used;
        }
        if (graphics)
            p->graphics = true;
        else
            p->compute = true;
    }
    free(buf);
    return ASR_OK;
}

asr_err_t asr_nvml_processes(int cuda_index, asr_nvml_proc_t *out, int cap, int *n_out, char *err,
                             size_t err_len) {
    *n_out = 0;
    nvml_device_t dev;
    asr_err_t rc = device(cuda_index, &dev, err, err_len);
    if (rc != ASR_OK)
        return rc;
    asr_nvml_proc_t *all = NULL;
    int n = 0, all_cap = 0;
    rc = list_merge(dev, nv.compute, false, &all, &n, &all_cap, err, err_len);
    if (rc == ASR_OK && list_merge(dev, nv.graphics, true, &all, &n, &all_cap, NULL, 0) != ASR_OK)
        rc = ASR_OK; /* the graphics list is a bonus: a failure keeps the compute list */
    if (rc == ASR_OK) {
        for (int i = 0; i < n && i < cap; i++)
            out[i] = all[i];
        *n_out = n;
    }
    free(all);
    return rc;
}

void asr_nvml_process_name(unsigned pid, char *name, size_t name_len) {
    if (!name_len)
        return;
    name[0] = 0;
    char buf[256] = "";
    if (asr_nvml_init(NULL, 0) == ASR_OK && nv.process_name &&
        nv.process_name(pid, buf, sizeof buf) == NVML_OK && buf[0]) {
        /* NVML gives the executable's path: its last part, as nvidia-smi shows it */
        const char *base = strrchr(buf, '/');
        snprintf(name, name_len, "%s", base && base[1] ? base + 1 : buf);
        return;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/%u/comm", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    if (fgets(buf, sizeof buf, f)) {
        buf[strcspn(buf, "\n")] = 0;
        snprintf(name, name_len, "%s", buf);
    }
    fclose(f);
}

asr_err_t asr_nvml_process_mem(int cuda_index, unsigned pid, uint64_t *bytes, char *err,
                               size_t err_len) {
    *bytes = 0;
    asr_nvml_proc_t procs[64];
    int n = 0;
    asr_err_t rc = asr_nvml_processes(cuda_index, procs, 64, &n, err, err_len);
    if (rc != ASR_OK)
        return rc;
    for (int i = 0; i < n && i < 64; i++) {
        if (procs[i].pid != pid)
            continue;
        if (!procs[i].bytes_known) {
            asr_errf(err, err_len, "NVML does not report per-process memory on this device");
            return ASR_ERR_UNSUPPORTED;
        }
        *bytes = procs[i].bytes;
        return ASR_OK;
    }
    asr_errf(err, err_len,
             "pid %u is not among the %d processes NVML lists on the device (no context "
             "there, or a container: NVML lists host pids)",
             pid, n);
    return ASR_ERR_NOT_FOUND;
}

asr_err_t asr_nvml_name(int cuda_index, char *name, size_t name_len, char *err, size_t err_len) {
    nvml_device_t dev;
    asr_err_t rc = device(cuda_index, &dev, err, err_len);
    if (rc != ASR_OK)
        return rc;
    char buf[96] = "";
    nvml_ret_t r = nv.name(dev, buf, sizeof buf);
    if (r != NVML_OK) {
        asr_errf(err, err_len, "nvmlDeviceGetName: %s", ret_str(r));
        return ASR_ERR_UNSUPPORTED;
    }
    snprintf(name, name_len, "%s", buf);
    return ASR_OK;
}

asr_err_t asr_nvml_driver_version(char *buf, size_t len, char *err, size_t err_len) {
    asr_err_t rc = asr_nvml_init(err, err_len);
    if (rc != ASR_OK)
        return rc;
    char v[96] = "";
    nvml_ret_t r = nv.driver_version ? nv.driver_version(v, sizeof v) : -1;
    if (r != NVML_OK) {
        asr_errf(err, err_len, "nvmlSystemGetDriverVersion: %s",
                 nv.driver_version ? ret_str(r) : "missing");
        return ASR_ERR_UNSUPPORTED;
    }
    snprintf(buf, len, "%s", v);
    return ASR_OK;
}
