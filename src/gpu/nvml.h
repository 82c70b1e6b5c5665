/* gpu: NVIDIA's management library (NVML, libnvidia-ml.so.1, installed with the driver), opened
 * at run time: device memory (used, free, total) as the driver sees it, other processes
 * included, and the memory one process holds. `asrd bench` reports its peak device memory with
 * it, and the GPU memory contract accounts for the other processes on a card with it.
 *
 * Devices are named by CUDA ordinal: NVML's own indices can differ from CUDA's
 * (CUDA_VISIBLE_DEVICES, CUDA_DEVICE_ORDER), so each call maps the ordinal to its NVML handle
 * through the PCI bus id when the CUDA backend is built (by NVML index otherwise).
 *
 * Every function returns ASR_OK, or ASR_ERR_UNSUPPORTED with a one-line reason in err (no library,
 * no driver, not supported on this device) and never crashes. Thread-safe: the library is opened
 * and initialised once and kept until exit. */
#ifndef ASR_GPU_NVML_H
#define ASR_GPU_NVML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "asr/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Opens and initialises NVML (once; later calls return the first result). */
asr_err_t asr_nvml_init(char *err, size_t err_len);
/* Device memory of CUDA device cuda_index: used (every process, plus the driver's reserve), free
 * and total, in bytes (any out-param may be NULL). */
asr_err_t asr_nvml_mem(int cuda_index, uint64_t *used, uint64_t *free_bytes, uint64_t *total,
                       char *err, size_t err_len);
/* Device memory process pid holds on CUDA device cuda_index. ASR_ERR_NOT_FOUND (reason in err)
 * when NVML does not list pid there: the process has no context on the device, or runs in a
 * container (NVML lists the host's process ids, not the container's getpid()); callers that know
 * they hold a context fall back to asr_nvml_mem's used bytes. */
asr_err_t asr_nvml_process_mem(int cuda_index, unsigned pid, uint64_t *bytes, char *err,
                               size_t err_len);
/* One process holding memory on a device, as nvidia-smi lists it. */
typedef struct {
    unsigned pid;     /* as NVML sees it: the host's pid namespace */
    uint64_t bytes;   /* 0 when bytes_known is false */
    bool bytes_known; /* NVML reports its memory (not on every platform or permission) */
    bool compute;     /* listed among the compute processes (CUDA contexts) */
    bool graphics;    /* listed among the graphics processes */
} asr_nvml_proc_t;
/* The processes holding memory on CUDA device cuda_index, compute and graphics merged by pid
 * (MIG instances of one pid summed), in NVML's order: up to cap of them go to out, *n_out gets
 * how many there are (may exceed cap). Uses nvmlDeviceGet{Compute,Graphics}RunningProcesses,
 * the _v3 symbol, else _v2, else the first version; the graphics list is skipped when its entry
 * point is missing. */
asr_err_t asr_nvml_processes(int cuda_index, asr_nvml_proc_t *out, int cap, int *n_out, char *err,
                             size_t err_len);
/* A process's name: nvmlSystemGetProcessName, else /proc/PID/comm; "" when neither answers (a pid
 * of another namespace). */
void asr_nvml_process_name(unsigned pid, char *name, size_t name_len);
/* The device's name ("NVIDIA H100 80GB HBM3"). */
asr_err_t asr_nvml_name(int cuda_index, char *name, size_t name_len, char *err, size_t err_len);
/* The driver version string ("580.65.06"). */
asr_err_t asr_nvml_driver_version(char *buf, size_t len, char *err, size_t err_len);

#ifdef __cplusplus
}
#endif
#endif
