/* gpu: the CUDA device (dev.h): discovery, memory, copies and the GEMMs (cuBLAS, opened at run
 * time by cublas_load.c); the other operations are the kernels of kernels*.cu.
 *
 * Invariants: one non-blocking stream per device, everything queued on it in order; the cuBLAS
 * handle is bound to that stream and given a workspace allocated once at open (cuBLAS then never
 * allocates on its own during a GEMM). Device memory is plain cudaMalloc (never managed memory),
 * host transfer buffers are cudaMallocHost. A failed CUDA call becomes the device's sticky error
 * and the runtime's own last-error state is cleared, so that a later kernel launch check does not
 * report an old failure as its own. Failures are classified (cu_fail): CUDA's sticky errors
 * (illegal address, launch failure, ..., and any error cudaGetLastError cannot clear) lose the
 * context (asr__dev_fail_lost); the others (out of memory, an invalid value, a cuBLAS status
 * without a sticky CUDA error) are recoverable (asr__dev_fail, cleared by asr_dev_error_clear).
 * A failed cudaMalloc/cudaMallocHost is not an error of the device at all: NULL, logged. The
 * devices open per ordinal are counted: closing the last one of an ordinal that lost its context
 * calls cudaDeviceReset (every model on it must be closed first: the scheduler unloads them), and
 * no new device opens on a lost ordinal before that. The CUDA runtime is linked statically; with
 * no driver every call fails cleanly (asr_gpu_cuda_count says why). */
#ifdef ASR_HAVE_CUDA
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include "core/core.h"
#include "gpu/cublas_load.h"
#include "gpu/gpu_build.h"
#include "gpu/kernels.h"
#include "gpu/nvml.h"

/* cuBLAS's workspace (NVIDIA recommends 32 MiB on Hopper, 4 MiB before it): one per device */
#define CUBLAS_WS_BYTES (32u << 20)

typedef struct {
    cudaStream_t stream;
    bool counted; /* in ord_open */
    cublasHandle_t blas;
    const asr_cublas_t *cb;
    void *ws; /* cuBLAS workspace [CUBLAS_WS_BYTES] */
    int index;
} cuda_impl_t;

#define IMPL(d) ((cuda_impl_t *)(d)->impl)

bool asr_gpu_cuda_built(void) { return true; }

/* ---- discovery ---- */
static pthread_once_t probe_once = PTHREAD_ONCE_INIT;
static int probe_count;
static char probe_why[256];

static void version_str(int v, char *buf, size_t len) {
    snprintf(buf, len, "%d.%d", v / 1000, (v % 1000) / 10);
}

static void probe(void) {
    int drv = 0, rt = 0, n = 0;
    char dv[16], rv[16];
    cudaDriverGetVersion(&drv); /* 0: no driver */
    cudaRuntimeGetVersion(&rt);
    version_str(drv, dv, sizeof dv);
    version_str(rt, rv, sizeof rv);
    cudaError_t e = cudaGetDeviceCount(&n);
    cudaGetLastError();
    const char *vis = getenv("CUDA_VISIBLE_DEVICES");
    if (e != cudaSuccess || n <= 0) {
        n = 0;
        if (drv == 0)
            snprintf(probe_why, sizeof probe_why,
                     "CUDA driver not found: libcuda.so.1 is not installed");
        else if (e == cudaErrorInsufficientDriver)
            snprintf(probe_why, sizeof probe_why,
                     "CUDA driver too old: it supports CUDA %s, asrd needs %s or newer", dv, rv);
        else if (e == cudaErrorNoDevice || e == cudaSuccess)
            snprintf(probe_why, sizeof probe_why, "no CUDA device found; driver for CUDA %s%s%s%s",
                     dv, vis ? ", CUDA_VISIBLE_DEVICES='" : "", vis ? vis : "", vis ? "'" : "");
        else
            snprintf(probe_why, sizeof probe_why, "CUDA unavailable: %s, %s", cudaGetErrorName(e),
                     cudaGetErrorString(e));
    } else if (!asr__cublas_get(probe_why, sizeof probe_why)) {
        n = 0; /* the GEMMs need it: a device without cuBLAS is no device */
    }
    probe_count = n;
}

int asr_gpu_cuda_count(char *why, size_t why_len) {
    pthread_once(&probe_once, probe);
    asr_errf(why, why_len, "%s", probe_count > 0 ? "" : probe_why);
    return probe_count;
}

asr_err_t asr_gpu_cuda_info(int index, asr_dev_info_t *out, char *err, size_t err_len) {
    int n = asr_gpu_cuda_count(err, err_len);
    if (n <= 0)
        return ASR_ERR_UNSUPPORTED;
    if (index < 0 || index >= n) {
        asr_errf(err, err_len, "cuda:%d: no such device (%d CUDA device%s)", index, n,
                 n == 1 ? "" : "s");
        return ASR_ERR_UNSUPPORTED;
    }
    struct cudaDeviceProp p;
    cudaError_t e = cudaGetDeviceProperties(&p, index);
    if (e != cudaSuccess) {
        cudaGetLastError();
        asr_errf(err, err_len, "cuda:%d: cudaGetDeviceProperties: %s", index,
                 cudaGetErrorString(e));
        return ASR_ERR_GPU;
    }
    memset(out, 0, sizeof *out);
    out->kind = ASR_DEV_CUDA;
    out->index = index;
    size_t name_len = strnlen(p.name, sizeof p.name);
    if (name_len >= sizeof out->name)
        name_len = sizeof out->name - 1;
    memcpy(out->name, p.name, name_len);
    out->cc_major = p.major;
    out->cc_minor = p.minor;
    out->n_sm = p.multiProcessorCount;
    out->total_bytes = p.totalGlobalMem;
    int drv = 0;
    cudaDriverGetVersion(&drv);
    version_str(drv, out->driver, sizeof out->driver);
    /* free memory without creating a context: NVML; else the runtime (which creates the
     * device's primary context, kept for the process: the engine would create it anyway) */
    uint64_t nv_free = 0, nv_total = 0;
    if (asr_nvml_mem(index, NULL, &nv_free, &nv_total, NULL, 0) == ASR_OK) {
        out->free_bytes = nv_free;
    } else {
        int prev = 0;
        size_t fr = 0, tot = 0;
        cudaGetDevice(&prev);
        if (cudaSetDevice(index) == cudaSuccess && cudaMemGetInfo(&fr, &tot) == cudaSuccess)
            out->free_bytes = fr;
        cudaGetLastError();
        cudaSetDevice(prev);
    }
    return ASR_OK;
}

/* ---- failures ---- */
/* CUDA's errors that leave the context unusable (every later call of the process on it fails) */
static bool cu_sticky(cudaError_t e) {
    switch (e) {
    case cudaErrorIllegalAddress:
    case cudaErrorLaunchFailure:
    case cudaErrorIllegalInstruction:
    case cudaErrorMisalignedAddress:
    case cudaErrorInvalidAddressSpace:
    case cudaErrorInvalidPc:
    case cudaErrorHardwareStackError:
    case cudaErrorAssert:
    case cudaErrorECCUncorrectable:
    case cudaErrorLaunchTimeout:
    case cudaErrorContextIsDestroyed:
        return true;
    default:
        return false;
    }
}

/* Clears the runtime's last error; true when the context is lost: e (or the error found) is one
 * of the sticky ones, or cudaGetLastError could not clear it. */
static bool cu_clear_lost(cudaError_t e) {
    cudaError_t last = cudaGetLastError();
    cudaError_t still = cudaPeekAtLastError();
    return cu_sticky(e) || cu_sticky(last) || still != cudaSuccess;
}

/* Records a failed runtime call on d (the first one sticks), classified. */
static void cu_fail(asr_dev_t *d, cudaError_t e, const char *what) {
    if (cu_clear_lost(e))
        asr__dev_fail_lost(d, "cuda:%d: %s: %s (%s)", d->info.index, what, cudaGetErrorString(e),
                           cudaGetErrorName(e));
    else
        asr__dev_fail(d, "cuda:%d: %s: %s (%s)", d->info.index, what, cudaGetErrorString(e),
                      cudaGetErrorName(e));
}

static bool cu_ok(asr_dev_t *d, cudaError_t e, const char *what) {
    if (e == cudaSuccess)
        return true;
    cu_fail(d, e, what);
    return false;
}

/* ---- devices open per ordinal (the reset of a lost context) ---- */
#define CU_MAX_ORDINALS 64
static pthread_mutex_t ord_mu = PTHREAD_MUTEX_INITIALIZER;
static int ord_open[CU_MAX_ORDINALS];
static bool ord_lost[CU_MAX_ORDINALS];

/* ---- the operations ---- */

void *asr__cu_stream(asr_dev_t *d) { return IMPL(d)->stream; }

static void cu_close(asr_dev_t *d) {
    cuda_impl_t *c = IMPL(d);
    if (!c)
        return;
    cudaSetDevice(c->index);
    if (c->stream && !d->lost && cu_clear_lost(cudaStreamSynchronize(c->stream)))
        d->lost = true;
    if (c->blas)
        c->cb->destroy(c->blas);
    if (c->ws) {
        cudaFree(c->ws);
        asr__dev_account(ASR_DEV_CUDA, c->index, -(int64_t)CUBLAS_WS_BYTES);
    }
    if (c->stream)
        cudaStreamDestroy(c->stream);
    cudaGetLastError();
    if (c->counted) {
        pthread_mutex_lock(&ord_mu);
        ord_lost[c->index] |= d->lost;
        if (--ord_open[c->index] == 0 && ord_lost[c->index]) {
            /* the last device of a lost context: a fresh one for the next open */
            cudaError_t e = cudaDeviceReset();
            cudaGetLastError();
            ord_lost[c->index] = false;
            ASR_LOG(e == cudaSuccess ? ASR_LOG_WARN : ASR_LOG_ERROR,
                    "msg=gpu_context_reset device=cuda:%d result=\"%s\"", c->index,
                    cudaGetErrorString(e));
        }
        pthread_mutex_unlock(&ord_mu);
    }
    free(c);
    d->impl = NULL;
}

static asr_err_t cu_bind(asr_dev_t *d) {
    return cu_ok(d, cudaSetDevice(IMPL(d)->index), "cudaSetDevice") ? ASR_OK : ASR_ERR_GPU;
}

static asr_err_t cu_mem_info(asr_dev_t *d, size_t *free_bytes, size_t *total_bytes) {
    size_t fr = 0, tot = 0;
    cudaError_t e = cudaSetDevice(IMPL(d)->index);
    if (e == cudaSuccess)
        e = cudaMemGetInfo(&fr, &tot);
    if (e != cudaSuccess) {
        cudaGetLastError();
        return ASR_ERR_GPU; /* a query: not the device's failure */
    }
    if (free_bytes)
        *free_bytes = fr;
    if (total_bytes)
        *total_bytes = tot;
    return ASR_OK;
}

/* A failed allocation: not the device's error (dev.h), unless the context is lost. */
static void *cu_alloc_failed(asr_dev_t *d, cudaError_t e, const char *what, size_t bytes) {
    if (cu_clear_lost(e)) {
        asr__dev_fail_lost(d, "cuda:%d: %s(%zu bytes): %s (%s)", d->info.index, what, bytes,
                           cudaGetErrorString(e), cudaGetErrorName(e));
        return NULL;
    }
    size_t fr = 0, tot = 0;
    cudaMemGetInfo(&fr, &tot);
    cudaGetLastError();
    ASR_LOG(ASR_LOG_WARN,
            "msg=gpu_alloc_failed device=cuda:%d what=%s bytes=%zu reason=\"%s\" free_gib=%.2f "
            "total_gib=%.2f",
            d->info.index, what, bytes, cudaGetErrorString(e), fr / 1073741824.0,
            tot / 1073741824.0);
    return NULL;
}

static void *cu_malloc(asr_dev_t *d, size_t bytes) {
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, bytes ? bytes : 1);
    return e == cudaSuccess ? p : cu_alloc_failed(d, e, "cudaMalloc", bytes);
}

static void cu_free(asr_dev_t *d, void *p) { cu_ok(d, cudaFree(p), "cudaFree"); }

static void *cu_host_malloc(asr_dev_t *d, size_t bytes) {
    void *p = NULL;
    cudaError_t e = cudaMallocHost(&p, bytes ? bytes : 1);
    return e == cudaSuccess ? p : cu_alloc_failed(d, e, "cudaMallocHost", bytes);
}

static void cu_host_free(asr_dev_t *d, void *p) { cu_ok(d, cudaFreeHost(p), "cudaFreeHost"); }

static void cu_h2d(asr_dev_t *d, void *dst, const void *src, size_t bytes) {
    cu_ok(d, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, IMPL(d)->stream),
          "copy to device");
}
static void cu_d2h(asr_dev_t *d, void *dst, const void *src, size_t bytes) {
    cu_ok(d, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, IMPL(d)->stream),
          "copy to host");
}
static void cu_d2d(asr_dev_t *d, void *dst, const void *src, size_t bytes) {
    cu_ok(d, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, IMPL(d)->stream),
          "device copy");
}
static void cu_memset0(asr_dev_t *d, void *dst, size_t bytes) {
    cu_ok(d, cudaMemsetAsync(dst, 0, bytes, IMPL(d)->stream), "cudaMemsetAsync");
}

static void cu_sync(asr_dev_t *d) { cu_ok(d, cudaStreamSynchronize(IMPL(d)->stream), "stream"); }

/* Before a recoverable error is cleared: what was queued has finished (or failed), and the
 * runtime's error is gone; a sticky one found here loses the context. */
static bool cu_clear(asr_dev_t *d) {
    cudaError_t e = cudaStreamSynchronize(IMPL(d)->stream);
    if (cu_clear_lost(e)) {
        asr__dev_fail_lost(d, "cuda:%d: stream: %s (%s)", d->info.index, cudaGetErrorString(e),
                           cudaGetErrorName(e));
        return false;
    }
    return true;
}

static cudaDataType cu_type(asr_dtype_t t) {
    switch (t) {
    case ASR_DT_F16:
        return CUDA_R_16F;
    case ASR_DT_BF16:
        return CUDA_R_16BF;
    case ASR_DT_I8:
        return CUDA_R_8I;
    case ASR_DT_F32:
        break;
    }
    return CUDA_R_32F;
}

/* Row-major c[m][n] = a[m][k]·w[n][k]ᵀ is, in cuBLAS's column-major terms, cᵀ (n×m, ldc) =
 * wᵀ-as-stored (op T of the k×n column-major view of w, ld) · aᵀ-as-stored (the k×m column-major
 * view of a, lda): one GemmEx with (OP_T, OP_N, n, m, k). */
static void cu_linear(asr_dev_t *d, asr_dtype_t at, const void *a, int lda, const asr_dev_w_t *w,
                      const float *bias, asr_dtype_t ct, void *c, int ldc, int m, int n, int k,
                      int flags) {
    cuda_impl_t *ci = IMPL(d);
    asr_dtype_t wt = w->type;
    const void *wd = w->data;
    int ldw = w->ld;
    if (wt == ASR_DT_I8) {
        if (at != ASR_DT_F16) {
            asr__dev_fail(d, "linear: int8 weights need float16 activations, got %s",
                          asr_dtype_name(at));
            return;
        }
        asr__cu_dequant_i8(d, (const int8_t *)w->data, w->scale, n, k, w->ld, d->scratch);
        wt = ASR_DT_F16;
        wd = d->scratch;
        ldw = k;
    }
    if (at != wt || (ct != at && ct != ASR_DT_F32)) {
        asr__dev_fail(d, "linear: unsupported types (activations %s, weights %s, output %s)",
                      asr_dtype_name(at), asr_dtype_name(w->type), asr_dtype_name(ct));
        return;
    }
    const float alpha = 1.0f, beta = (flags & ASR_LIN_ACCUM) ? 1.0f : 0.0f;
    cublasStatus_t s = ci->cb->gemm_ex(ci->blas, CUBLAS_OP_T, CUBLAS_OP_N, n, m, k, &alpha, wd,
                                       cu_type(wt), ldw, a, cu_type(at), lda, &beta, c, cu_type(ct),
                                       ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    if (s != CUBLAS_STATUS_SUCCESS) { /* recoverable unless CUDA itself reports a sticky error */
        cudaError_t e = cudaPeekAtLastError();
        char why[200];
        snprintf(why, sizeof why, "cuda:%d: cublasGemmEx (m=%d n=%d k=%d, %s x %s -> %s): %s%s%s",
                 d->info.index, m, n, k, asr_dtype_name(at), asr_dtype_name(wt), asr_dtype_name(ct),
                 asr__cublas_status(s), e != cudaSuccess ? ", " : "",
                 e != cudaSuccess ? cudaGetErrorName(e) : "");
        if (cu_clear_lost(e))
            asr__dev_fail_lost(d, "%s", why);
        else
            asr__dev_fail(d, "%s", why);
        return;
    }
    if (bias || (flags & ASR_LIN_GELU))
        asr__cu_bias_act(d, ct, c, ldc, m, n, bias, (flags & ASR_LIN_GELU) != 0);
}

static const asr_dev_ops_t cuda_ops = {
    .close = cu_close,
    .bind = cu_bind,
    .mem_info = cu_mem_info,
    .malloc = cu_malloc,
    .free = cu_free,
    .host_malloc = cu_host_malloc,
    .host_free = cu_host_free,
    .h2d = cu_h2d,
    .d2h = cu_d2h,
    .d2d = cu_d2d,
    .memset0 = cu_memset0,
    .sync = cu_sync,
    .clear = cu_clear,
    .linear = cu_linear,
    .layer_norm = asr__cu_layer_norm,
    .add = asr__cu_add,
    .add_pos = asr__cu_add_pos,
    .convert = asr__cu_convert,
    .im2col_mel = asr__cu_im2col_mel,
    .im2col_s2 = asr__cu_im2col_s2,
    .embed = asr__cu_embed,
    .attn_full = asr__cu_attn_full,
    .kv_append = asr__cu_kv_append,
    .attn_self = asr__cu_attn_self,
    .attn_cross = asr__cu_attn_cross,
    .attn_cross_scores = asr__cu_attn_cross_scores,
};

/* Fails the open with a reason; what was created is released by the caller (cu_close). */
static asr_err_t open_fail(char *err, size_t err_len, int index, const char *what, cudaError_t e) {
    cudaGetLastError();
    asr_errf(err, err_len, "cuda:%d: %s: %s", index, what, cudaGetErrorString(e));
    return ASR_ERR_GPU;
}

static asr_err_t open_blas(cuda_impl_t *c, char *err, size_t err_len) {
    const asr_cublas_t *cb = c->cb;
    const char *what = NULL;
    cublasStatus_t s;
    /* tensor cores for float16/bfloat16; float32 stays exact float32 (no TF32), and split-K
     * reductions stay in float32 even when the output is float16. The workspace is set after
     * the stream: setting a stream resets it to cuBLAS's own. */
    cublasMath_t mode = CUBLAS_DEFAULT_MATH | CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION;
    if ((s = cb->create(&c->blas)) != CUBLAS_STATUS_SUCCESS) {
        c->blas = NULL;
        what = "cublasCreate";
    } else if ((s = cb->set_stream(c->blas, c->stream)) != CUBLAS_STATUS_SUCCESS) {
        what = "cublasSetStream";
    } else if ((s = cb->set_math_mode(c->blas, mode)) != CUBLAS_STATUS_SUCCESS) {
        what = "cublasSetMathMode";
    } else if ((s = cb->set_workspace(c->blas, c->ws, CUBLAS_WS_BYTES)) != CUBLAS_STATUS_SUCCESS) {
        what = "cublasSetWorkspace";
    }
    if (what) {
        asr_errf(err, err_len, "cuda:%d: %s: %s", c->index, what, asr__cublas_status(s));
        return ASR_ERR_GPU;
    }
    return ASR_OK;
}

asr_err_t asr__dev_cuda_open(asr_dev_t *d, int index, char *err, size_t err_len) {
    asr_err_t rc = asr_gpu_cuda_info(index, &d->info, err, err_len);
    if (rc != ASR_OK)
        return rc;
    if (d->info.cc_major < ASR_CUDA_MIN_CC_MAJOR) {
        asr_errf(err, err_len,
                 "cuda:%d %s has compute capability %d.%d; asrd's CUDA kernels need %d.0 or "
                 "newer",
                 index, d->info.name, d->info.cc_major, d->info.cc_minor, ASR_CUDA_MIN_CC_MAJOR);
        return ASR_ERR_UNSUPPORTED;
    }
    if (index >= CU_MAX_ORDINALS) {
        asr_errf(err, err_len, "cuda:%d: asrd handles ordinals below %d", index, CU_MAX_ORDINALS);
        return ASR_ERR_UNSUPPORTED;
    }
    cuda_impl_t *c = calloc(1, sizeof *c);
    if (!c)
        return ASR_ERR_NOMEM;
    pthread_mutex_lock(&ord_mu);
    bool lost = ord_lost[index] && ord_open[index] > 0;
    if (!lost)
        ord_open[index]++;
    pthread_mutex_unlock(&ord_mu);
    if (lost) {
        free(c);
        asr_errf(err, err_len,
                 "cuda:%d: the device's context was lost; it is reset when every model on it "
                 "has been closed",
                 index);
        return ASR_ERR_GPU;
    }
    c->counted = true;
    c->index = index;
    c->cb = asr__cublas_get(err, err_len);
    d->impl = c;
    d->ops = &cuda_ops;
    cudaError_t e;
    if (!c->cb) {
        rc = ASR_ERR_UNSUPPORTED;
    } else if ((e = cudaSetDevice(index)) != cudaSuccess) {
        rc = open_fail(err, err_len, index, "cudaSetDevice", e);
    } else if ((e = cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking)) != cudaSuccess) {
        rc = open_fail(err, err_len, index, "cudaStreamCreate", e);
    } else if ((e = cudaMalloc(&c->ws, CUBLAS_WS_BYTES)) != cudaSuccess) {
        c->ws = NULL;
        rc = open_fail(err, err_len, index, "cudaMalloc (cuBLAS workspace)", e);
        if (e == cudaErrorMemoryAllocation)
            rc = ASR_ERR_NOMEM;
    } else {
        asr__dev_account(ASR_DEV_CUDA, index, (int64_t)CUBLAS_WS_BYTES);
        rc = open_blas(c, err, err_len);
    }
    if (rc != ASR_OK) {
        cu_close(d);
        d->ops = NULL;
        return rc;
    }
    size_t fr = 0, tot = 0;
    if (cudaMemGetInfo(&fr, &tot) == cudaSuccess) {
        d->info.free_bytes = fr;
        d->info.total_bytes = tot;
    }
    cudaGetLastError();
    return ASR_OK;
}

asr_err_t asr__dev_cuda_mem_get_info(int index, uint64_t *free_bytes, uint64_t *total_bytes,
                                     char *err, size_t err_len) {
    *free_bytes = *total_bytes = 0;
    int prev = -1;
    if (cudaGetDevice(&prev) != cudaSuccess)
        prev = -1;
    size_t fr = 0, tot = 0;
    cudaError_t e = cudaSetDevice(index);
    if (e == cudaSuccess)
        e = cudaMemGetInfo(&fr, &tot);
    cudaGetLastError();
    /* back to the thread's device, unless that would create a context nobody asked for */
    if (prev >= 0 && prev != index && asr_dev_allocated_bytes(ASR_DEV_CUDA, prev) > 0) {
        cudaSetDevice(prev);
        cudaGetLastError();
    }
    if (e != cudaSuccess) {
        asr_errf(err, err_len, "cuda:%d: cudaMemGetInfo: %s", index, cudaGetErrorString(e));
        return ASR_ERR_UNSUPPORTED;
    }
    *free_bytes = fr;
    *total_bytes = tot;
    return ASR_OK;
}
#else
typedef int asr_cuda_dev_unused; /* built without CUDA: cuda_none.c */
#endif
