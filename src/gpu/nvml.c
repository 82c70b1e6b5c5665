/* gpu: NVML opened at run time (nvml.h of this folder says what for). nvml.h of the CUDA toolkit
 * is not needed: the few types and entry points used are declared here from NVIDIA's public API
 * documentation (the _v2/_v3 symbols, stable since driver R470).
 *
 * Invariants: the library is dlopen'ed and nvmlInit_v2 called once (pthread_once); a failure is
 * remembered with its reason and every later call reports it. Never dlclose'd, never shut down:
 * the handles stay valid until exit. */
#include <dlfcn.h>
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
typedef struct {
    unsigned int pid; /* nvmlProcessInfo_v2_t / _v3: what _v3 of GetComputeRunningProcesses fills */
    unsigned long long used_gpu_memory; /* NVML_VALUE_NOT_AVAILABLE (~0ULL) when unknown */
    unsigned int gpu_instance_id;
    unsigned int compute_instance_id;
} nvml_process_info_t;
#define NVML_VALUE_NOT_AVAILABLE (~0ULL)

static struct {
    nvml_ret_t (*init)(void);
    const char *(*error_string)(nvml_ret_t);
    nvml_ret_t (*by_index)(unsigned int, nvml_device_t *);
    nvml_ret_t (*by_pci)(const char *, nvml_device_t *);
    nvml_ret_t (*memory)(nvml_device_t, nvml_memory_t *);
    nvml_ret_t (*name)(nvml_device_t, char *, unsigned int);
    nvml_ret_t (*processes)(nvml_device_t, unsigned int *, nvml_process_info_t *);
    nvml_ret_t (*driver_version)(char *, unsigned int);
} nv;
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
        {"nvmlDeviceGetComputeRunningProcesses_v3", (void **)&nv.processes, 0},
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

asr_err_t asr_nvml_process_mem(int cuda_index, unsigned pid, uint64_t *bytes, char *err,
                               size_t err_len) {
    *bytes = 0;
    nvml_device_t dev;
    asr_err_t rc = device(cuda_index, &dev, err, err_len);
    if (rc != ASR_OK)
        return rc;
    if (!nv.processes) {
        asr_errf(err, err_len, "NVML too old: no nvmlDeviceGetComputeRunningProcesses_v3");
        return ASR_ERR_UNSUPPORTED;
    }
    unsigned cap = 32, n = 0;
    nvml_process_info_t *p = NULL;
    nvml_ret_t r = NVML_ERR_INSUFFICIENT_SIZE;
    /* the list can grow between the calls: retry a few times with room to spare */
    for (int tries = 0; tries < 4 && r == NVML_ERR_INSUFFICIENT_SIZE; tries++) {
        nvml_process_info_t *q = realloc(p, cap * sizeof *p);
        if (!q) {
            free(p);
            return ASR_ERR_NOMEM;
        }
        p = q;
        n = cap;
        r = nv.processes(dev, &n, p);
        if (r == NVML_ERR_INSUFFICIENT_SIZE)
            cap = n + 16 > cap * 2 ? n + 16 : cap * 2;
    }
    if (r != NVML_OK) {
        free(p);
        asr_errf(err, err_len, "nvmlDeviceGetComputeRunningProcesses: %s", ret_str(r));
        return ASR_ERR_UNSUPPORTED;
    }
    rc = ASR_ERR_NOT_FOUND;
    for (unsigned i = 0; i < n; i++) {
        if (p[i].pid != pid)
            continue;
        if (p[i].used_gpu_memory == NVML_VALUE_NOT_AVAILABLE) {
            rc = ASR_ERR_UNSUPPORTED;
            break;
        }
        *bytes += p[i].used_gpu_memory; /* MIG: one entry per instance */
        rc = ASR_OK;
    }
    free(p);
    if (rc == ASR_ERR_UNSUPPORTED)
        asr_errf(err, err_len, "NVML does not report per-process memory on this device");
    else if (rc == ASR_ERR_NOT_FOUND)
        asr_errf(err, err_len,
                 "pid %u is not among the %u processes NVML lists on the device (no context "
                 "there, or a container: NVML lists host pids)",
                 pid, n);
    return rc;
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
