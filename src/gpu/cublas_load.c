/* gpu: cuBLAS opened at run time (cublas_load.h says why).
 *
 * Invariants: the library is dlopen'ed once (pthread_once) and never closed; every required entry
 * point is resolved before the table is published, so a caller holding the table can call any
 * non-optional member. */
#ifdef ASR_HAVE_CUDA
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "gpu/cublas_load.h"

/* The table's members have the prototypes of this toolkit's cublas_api.h (a mismatch would be a
 * silent ABI break through dlsym). */
#define SAME_TYPE(member, fn)                                                                      \
    _Static_assert(                                                                                \
        __builtin_types_compatible_p(__typeof__(((asr_cublas_t *)0)->member), __typeof__(&fn)),    \
        #fn)
SAME_TYPE(create, cublasCreate_v2);
SAME_TYPE(destroy, cublasDestroy_v2);
SAME_TYPE(set_stream, cublasSetStream_v2);
SAME_TYPE(set_math_mode, cublasSetMathMode);
SAME_TYPE(set_workspace, cublasSetWorkspace_v2);
SAME_TYPE(gemm_ex, cublasGemmEx);
SAME_TYPE(status_string, cublasGetStatusString);

static asr_cublas_t cb;
static const asr_cublas_t *cb_ok;
static char cb_why[256];
static pthread_once_t cb_once = PTHREAD_ONCE_INIT;

static void cb_open(void) {
    /* $ASRD_CUBLAS (a path) when set, and nothing else then; else the soname of the major version
     * asrd is built against, where the loader finds it and where the toolkit installs it; the
     * previous major; the unversioned name last (a development install) */
    const char *names[] = {getenv("ASRD_CUBLAS"), "libcublas.so.13",
                           "/usr/local/cuda/lib64/libcublas.so.13", "libcublas.so.12",
                           "libcublas.so"};
    void *h = NULL;
    char errbuf[160] = "";
    size_t n_names = sizeof names / sizeof *names;
    if (names[0] && names[0][0])
        n_names = 1; /* asked for that file: no other */
    for (size_t i = 0; i < n_names && !h; i++) {
        if (!names[i] || !names[i][0])
            continue;
        h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
        const char *e = h ? NULL : dlerror();
        if (h)
            snprintf(cb.path, sizeof cb.path, "%s", names[i]);
        else if (!errbuf[0] && e)
            snprintf(errbuf, sizeof errbuf, "%s", e);
    }
    if (!h) {
        snprintf(cb_why, sizeof cb_why,
                 "cuBLAS not found (%s); install the CUDA 13 libraries or set ASRD_CUBLAS",
                 errbuf[0] ? errbuf : "libcublas.so.13");
        return;
    }
    static const struct {
        const char *sym;
        size_t off;
        int required;
    } syms[] = {
        {"cublasCreate_v2", offsetof(asr_cublas_t, create), 1},
        {"cublasDestroy_v2", offsetof(asr_cublas_t, destroy), 1},
        {"cublasSetStream_v2", offsetof(asr_cublas_t, set_stream), 1},
        {"cublasSetMathMode", offsetof(asr_cublas_t, set_math_mode), 1},
        {"cublasSetWorkspace_v2", offsetof(asr_cublas_t, set_workspace), 1},
        {"cublasGemmEx", offsetof(asr_cublas_t, gemm_ex), 1},
        {"cublasGetStatusString", offsetof(asr_cublas_t, status_string), 0},
    };
    for (size_t i = 0; i < sizeof syms / sizeof *syms; i++) {
        void *fn = dlsym(h, syms[i].sym);
        if (!fn && syms[i].required) {
            snprintf(cb_why, sizeof cb_why, "cuBLAS too old: %s has no %s", cb.path, syms[i].sym);
            dlclose(h);
            return;
        }
        memcpy((char *)&cb + syms[i].off, &fn, sizeof fn);
    }
    cublasStatus_t (*get_property)(libraryPropertyType, int *) = NULL;
    void *gp = dlsym(h, "cublasGetProperty");
    memcpy(&get_property, &gp, sizeof gp);
    int major = 0, minor = 0, patch = 0;
    if (get_property && get_property(MAJOR_VERSION, &major) == CUBLAS_STATUS_SUCCESS &&
        get_property(MINOR_VERSION, &minor) == CUBLAS_STATUS_SUCCESS &&
        get_property(PATCH_LEVEL, &patch) == CUBLAS_STATUS_SUCCESS)
        cb.version = major * 10000 + minor * 100 + patch;
    cb_ok = &cb;
}

const asr_cublas_t *asr__cublas_get(char *why, size_t why_len) {
    pthread_once(&cb_once, cb_open);
    if (!cb_ok)
        asr_errf(why, why_len, "%s", cb_why);
    return cb_ok;
}

const char *asr__cublas_status(cublasStatus_t s) {
    if (cb_ok && cb.status_string) {
        const char *t = cb.status_string(s);
        if (t)
            return t;
    }
    switch (s) {
    case CUBLAS_STATUS_SUCCESS:
        return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED:
        return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED:
        return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE:
        return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH:
        return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_EXECUTION_FAILED:
        return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_NOT_SUPPORTED:
        return "CUBLAS_STATUS_NOT_SUPPORTED";
    default:
        return "cuBLAS error";
    }
}
#else
typedef int asr_cublas_load_unused; /* built without CUDA */
#endif
