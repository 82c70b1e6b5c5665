/* gpu: the compute devices the engine runs on besides its CPU path.
 *
 * Two kinds of device implement the same operations:
 *   CUDA  an NVIDIA GPU (when built with ASR_CUDA): cuBLAS/cuBLASLt GEMMs (opened at run time, so
 *         the binary runs where no CUDA library or driver exists) and the kernels of kernels*.cu;
 *   HOST  the reference device: the same operations in float32 on the CPU with the nn kernels.
 *         The GPU kernels' unit tests compare against it, and the GPU engine's orchestration
 *         (batching, caches, arenas) is tested on it where no GPU exists.
 *
 * Rules: operations are queued on the device's one stream, in order, and return nothing; the first
 * failure is kept (sticky until asr_dev_error_clear, below) and reported by asr_dev_sync /
 * asr_dev_error. A device is driven by one
 * thread at a time, the one that called asr_dev_bind. Pointers named d_* (and every pointer an
 * operation takes, unless it says host) are device memory. Device memory comes from arenas sized
 * by a plan (asr_dev_arena_*): asr_dev_malloc is for creating arenas, never per request. Only
 * asr_dev_linear reads weights; every other operation takes activations of type t (ASR_DT_F32,
 * F16 or BF16; the host device supports F32 only) and float32 parameters (bias, gamma, beta,
 * positional embeddings), with float32 arithmetic inside. */
#ifndef ASR_GPU_DEV_H
#define ASR_GPU_DEV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "asr/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { ASR_DT_F32 = 0, ASR_DT_F16, ASR_DT_BF16, ASR_DT_I8 } asr_dtype_t;
size_t asr_dtype_size(asr_dtype_t t);
const char *asr_dtype_name(asr_dtype_t t); /* "float32", "float16", "bfloat16", "int8" */

typedef enum { ASR_DEV_HOST = 0, ASR_DEV_CUDA = 1 } asr_dev_kind_t;

typedef struct {
    asr_dev_kind_t kind;
    int index;     /* CUDA ordinal (0 for the host device) */
    char name[96]; /* "NVIDIA H100 80GB HBM3", "host reference" */
    int cc_major;  /* compute capability (CUDA) */
    int cc_minor;
    int n_sm; /* multiprocessors (CUDA), cores (host) */
    size_t total_bytes;
    size_t free_bytes; /* when opened / asked (asr_dev_mem_info) */
    char driver[32];   /* "13.0" (CUDA driver version), "" for the host */
} asr_dev_info_t;

/* ---- discovery ---- */
/* Whether the CUDA backend is compiled in (ASR_CUDA). */
bool asr_gpu_cuda_built(void);
/* CUDA devices usable now (>= 1), or 0 with a one-line reason in why (built without CUDA, no
 * driver or too old a driver, no device, cuBLAS missing). Cheap after the first call. */
int asr_gpu_cuda_count(char *why, size_t why_len);
/* Facts of CUDA device index (no context kept). */
asr_err_t asr_gpu_cuda_info(int index, asr_dev_info_t *out, char *err, size_t err_len);

/* A --device / config "device" value: "cpu", "cuda", "cuda:N", "auto", or "host" (the reference
 * device: tests). */
typedef enum {
    ASR_DEVSPEC_CPU = 0,
    ASR_DEVSPEC_CUDA,
    ASR_DEVSPEC_AUTO,
    ASR_DEVSPEC_HOST
} asr_devspec_kind_t;
typedef struct {
    asr_devspec_kind_t kind;
    int index; /* cuda:N (0 for "cuda") */
} asr_devspec_t;
/* ASR_ERR_INVALID for anything else (NULL and "" are "cpu"). */
asr_err_t asr_devspec_parse(const char *s, asr_devspec_t *out);
/* What a spec runs on: CPU, CUDA device N or HOST; auto picks CUDA device 0 when one is usable,
 * else the CPU. why: one line for the log ("cuda:0 NVIDIA H100 80GB HBM3, 79.1 GiB free" or
 * "cpu: no CUDA device (driver not found)"). CUDA asked for but not usable (or N out of range):
 * ASR_ERR_UNSUPPORTED with the reason in why. */
asr_err_t asr_devspec_resolve(const asr_devspec_t *in, asr_devspec_t *out, char *why,
                              size_t why_len);
/* "cpu", "cuda:0", "host" */
void asr_devspec_format(const asr_devspec_t *s, char *buf, size_t len);

/* ---- a device ---- */
typedef struct asr_dev asr_dev_t;
/* Opens a device (CUDA: creates its stream, cuBLAS handles; the calling thread is bound). */
asr_err_t asr_dev_open(asr_dev_kind_t kind, int index, asr_dev_t **out, char *err, size_t err_len);
void asr_dev_close(asr_dev_t *d);
const asr_dev_info_t *asr_dev_info(const asr_dev_t *d);
/* Makes d current on the calling thread (CUDA: cudaSetDevice); the thread that runs operations
 * calls it once. */
asr_err_t asr_dev_bind(asr_dev_t *d);
/* Free and total device memory now (host device: MemAvailable and MemTotal). */
asr_err_t asr_dev_mem_info(asr_dev_t *d, size_t *free_bytes, size_t *total_bytes);

/* ---- memory ---- */
void *asr_dev_malloc(asr_dev_t *d, size_t bytes); /* NULL on failure (not sticky) */
void asr_dev_free(asr_dev_t *d, void *p);
/* Page-locked host memory (CUDA: cudaMallocHost) for transfers; plain memory on the host
 * device. */
void *asr_dev_host_malloc(asr_dev_t *d, size_t bytes);
void asr_dev_host_free(asr_dev_t *d, void *p);
/* Copies, queued (host memory must stay valid until the next asr_dev_sync). */
void asr_dev_h2d(asr_dev_t *d, void *dst, const void *host_src, size_t bytes);
void asr_dev_d2h(asr_dev_t *d, void *host_dst, const void *src, size_t bytes);
void asr_dev_d2d(asr_dev_t *d, void *dst, const void *src, size_t bytes);
void asr_dev_memset0(asr_dev_t *d, void *dst, size_t bytes);
/* Waits for every queued operation; returns the sticky error (ASR_ERR_GPU, reason in err). */
asr_err_t asr_dev_sync(asr_dev_t *d, char *err, size_t err_len);
/* The sticky error without waiting (ASR_OK when none). */
asr_err_t asr_dev_error(const asr_dev_t *d, char *err, size_t err_len);

/* ---- failures: one attempt, or the whole context (the GPU memory contract, docs/GPU.md) ----
 * A failed allocation (asr_dev_malloc, asr_dev_host_malloc) returns NULL and is NOT sticky: the
 * caller reports ASR_ERR_NOMEM and the device stays usable. An error of an operation is sticky
 * until asr_dev_error_clear: recoverable (the operation failed, the context lives: cleared, the
 * device is usable again) or context-lost (CUDA's sticky errors: illegal address, launch
 * failure...; asr_dev_lost is true from then on, and only closing every device of that ordinal
 * and resetting it recovers). */
/* On a lost device no operation or allocation reaches the device any more: operations are
 * skipped, allocations return NULL (asr_dev_arena_init: ASR_ERR_GPU), asr_dev_sync returns the
 * error at once; frees and asr_dev_close still work. CUDA: closing the last open device of a lost
 * ordinal calls cudaDeviceReset, and no device of that ordinal opens before (ASR_ERR_GPU), so every
 * model on that device must be closed first (the scheduler unloads them); then a new
 * asr_dev_open gets a fresh context. The host device has no context: a lost flag belongs to its
 * asr_dev_t alone. */
/* Clears a recoverable sticky error (CUDA: waits for the queue and clears the runtime's last
 * error; a sticky error found then loses the context); returns false (and clears nothing) when
 * the context is lost. The driving thread only. */
bool asr_dev_error_clear(asr_dev_t *d);
/* Whether the context is lost. The driving thread only (others keep their own flag: the GPU
 * engine's asr_model_device_lost). */
bool asr_dev_lost(const asr_dev_t *d);
/* Device bytes held now by every open device of this kind and ordinal: the arenas
 * (asr_dev_arena_init until asr_dev_arena_release: weights, scratch, slots) plus what the kind
 * allocates itself (CUDA: the cuBLAS workspace, from open to close). A bare asr_dev_malloc (only
 * the device tests use one) and pinned host memory are not counted. Cheap, thread-safe. */
uint64_t asr_dev_allocated_bytes(asr_dev_kind_t kind, int index);

/* Fault injection (tests and POST /debug/gpu-fault, with debug_faults): every device of every
 * kind counts, in one process-wide sequence each, its allocations (asr_dev_malloc and
 * asr_dev_host_malloc: a request's pinned host buffers are allocation sites of it too, and fail
 * the same way) and its operations (each asr_dev_* operation call that reaches the device: the
 * copies, asr_dev_memset0, the compute operations, and asr_dev_sync; zero-sized calls, frees,
 * asr_dev_set_scratch, asr_dev_bind and asr_dev_mem_info are not operations); from the call on,
 * the nth one (1 = the next) of `kind` fails once:
 *   ASR_DEV_FAULT_ALLOC  that allocation returns NULL (not sticky, as a real failure);
 *   ASR_DEV_FAULT_OP     that operation sets a recoverable sticky error;
 *   ASR_DEV_FAULT_LOST   that operation loses the context (asr_dev_lost).
 * nth <= 0 disarms the kind. Thread-safe. asr_dev_fault_count returns how many of `kind`'s events
 * (allocations, or operations for OP and LOST) have happened since the process started: a test
 * enumerates every allocation site of a request by arming nth = 1 .. (count after - count
 * before). */
typedef enum { ASR_DEV_FAULT_ALLOC = 0, ASR_DEV_FAULT_OP, ASR_DEV_FAULT_LOST } asr_dev_fault_kind_t;
void asr_dev_fault_set(asr_dev_fault_kind_t kind, long nth);
uint64_t asr_dev_fault_count(asr_dev_fault_kind_t kind);

/* An arena: one asr_dev_malloc'd block handed out in 256-byte aligned pieces. */
typedef struct {
    unsigned char *base;
    size_t size, used;
} asr_dev_arena_t;
asr_err_t asr_dev_arena_init(asr_dev_t *d, asr_dev_arena_t *a, size_t bytes);
void asr_dev_arena_release(asr_dev_t *d, asr_dev_arena_t *a);
/* The next piece, or NULL when the arena is too small (a planning error: callers assert). */
void *asr_dev_arena_take(asr_dev_arena_t *a, size_t bytes);
/* What asr_dev_arena_take will use for `bytes` (rounded up to 256): for plans. */
size_t asr_dev_arena_round(size_t bytes);

/* ---- operations ---- */
/* Weights of a linear layer on the device: [n][ld] elements of type (F32, F16, BF16; I8 with one
 * float32 scale per row: w[j][t] = scale[j] * q[j][t]). */
typedef struct {
    asr_dtype_t type;
    const void *data;
    const float *scale; /* I8 only: [n] */
    int ld;
} asr_dev_w_t;

enum {
    ASR_LIN_GELU = 1,  /* c = gelu(a·wᵀ + bias) (exact erf GELU) */
    ASR_LIN_ACCUM = 2, /* c += a·wᵀ + bias (residual connections); not with GELU */
};
/* c[m][n] (type ct: t, or F32 for logits) = a[m][k] (type at) · w[n][k]ᵀ + bias[n] (float32,
 * NULL: none), float32 accumulation (CUDA: cuBLAS GEMM on tensor cores). I8 weights are
 * dequantized to float16 into the scratch set by asr_dev_set_scratch (n*k*2 bytes) first. */
void asr_dev_linear(asr_dev_t *d, asr_dtype_t at, const void *a, int lda, const asr_dev_w_t *w,
                    const float *bias, asr_dtype_t ct, void *c, int ldc, int m, int n, int k,
                    int flags);
/* Device scratch for I8 dequantization (from the caller's arena). */
void asr_dev_set_scratch(asr_dev_t *d, void *p, size_t bytes);

/* out[r] = (x[r] - mean) / sqrt(var + eps) * gamma + beta over rows of dim; out may be x. */
void asr_dev_layer_norm(asr_dev_t *d, asr_dtype_t t, const void *x, void *out, int rows, int dim,
                        const float *gamma, const float *beta, float eps);
/* x[i] += y[i] */
void asr_dev_add(asr_dev_t *d, asr_dtype_t t, void *x, const void *y, size_t n);
/* x[b*n + i] += pos[i] for b < B, i < n (pos float32) */
void asr_dev_add_pos(asr_dev_t *d, asr_dtype_t t, void *x, const float *pos, int B, size_t n);
/* dst (dt) = src (st), n elements; F32/F16/BF16 either way (round to nearest even). */
void asr_dev_convert(asr_dev_t *d, asr_dtype_t st, const void *src, asr_dtype_t dt, void *dst,
                     size_t n);
/* Encoder front end, as im2col rows for asr_dev_linear:
 * mel float32 [B][n_mels][T] -> cols [B][T][n_mels*3], cols[b][t][c*3+k] = mel[b][c][t+k-1]
 * (0 outside [0, T)). */
void asr_dev_im2col_mel(asr_dev_t *d, asr_dtype_t t, const float *mel, int B, int n_mels, int T,
                        void *cols);
/* x [B][T_in][C] -> cols [B][T_in/2][C*3], cols[b][t][c*3+k] = x[b][2t+k-1][c] (0 outside). */
void asr_dev_im2col_s2(asr_dev_t *d, asr_dtype_t t, const void *x, int B, int T_in, int C,
                       void *cols);
/* x[i][:] = emb[tokens[i]][:] + pos[positions[i]][:] (tokens, positions: device int32 [n]; emb:
 * F32/F16/BF16 weights [n_vocab][dim], pos float32 [n_ctx][dim]) */
void asr_dev_embed(asr_dev_t *d, asr_dtype_t t, const asr_dev_w_t *emb, const float *pos,
                   const int32_t *tokens, const int32_t *positions, int n, int dim, void *x);
/* Encoder self-attention without mask: qkv [B][T][3*dim] (q, k, v at columns 0, dim, 2*dim of
 * each row), H heads of dh (dim = H*dh), out [B][T][dim] = softmax(scale·q·kᵀ)·v per head. */
void asr_dev_attn_full(asr_dev_t *d, asr_dtype_t t, const void *qkv, void *out, int B, int T, int H,
                       int dh, float scale);

/* Decoder rows: one per token being decoded (a step of several sequences of several streams, or
 * the tokens of a prompt block). Pointers are to layer 0; layer l adds l * the layer stride the
 * operation is given (elements). The array itself lives in device memory. */
typedef struct {
    void *k, *v;         /* the row's sequence's self-attention caches [n_text_ctx][dim] */
    const void *ks, *vs; /* positions [0, shared) are read here instead (the prompt every
                            sequence of a stream shares); NULL when shared == 0 */
    const void *xk;      /* cross-attention K and V of the row's stream: [n_audio][ldx] each, */
    const void *xv;      /* rows of frames (K unscaled) */
    int32_t shared;
    int32_t len; /* attends to positions [0, len); its own K/V go to position len-1 */
    int32_t pad[2];
} asr_dev_row_t;

/* Writes row i's k = qkv[i][dim, 2dim) and v = qkv[i][2dim, 3dim) at position len-1 of its caches
 * (layer offset layer_off elements). */
void asr_dev_kv_append(asr_dev_t *d, asr_dtype_t t, const void *qkv, int ldqkv,
                       const asr_dev_row_t *rows, int n, int dim, size_t layer_off);
/* Self-attention over the caches: out[i][h*dh + c] = Σ_j softmax_j(scale·q_i,h·k_j,h) v_j,h[c]
 * for j < len_i (k_j from ks below shared, from k above). q [n][ldq] (head h at h*dh). */
void asr_dev_attn_self(asr_dev_t *d, asr_dtype_t t, const void *q, int ldq,
                       const asr_dev_row_t *rows, int n, int H, int dh, size_t layer_off,
                       float scale, void *out, int ldo);
/* Cross-attention over n_audio frames of xk/xv (leading dimension ldx, layer offset
 * layer_off). */
void asr_dev_attn_cross(asr_dev_t *d, asr_dtype_t t, const void *q, int ldq,
                        const asr_dev_row_t *rows, int n, int H, int dh, int n_audio, int ldx,
                        size_t layer_off, float scale, void *out, int ldo);
/* Raw cross-attention scores of head h (before softmax, scale applied): out float32
 * [n][n_audio] (word-timestamp alignment). */
void asr_dev_attn_cross_scores(asr_dev_t *d, asr_dtype_t t, const void *q, int ldq,
                               const asr_dev_row_t *rows, int n, int h, int dh, int n_audio,
                               int ldx, size_t layer_off, float scale, float *out);

#ifdef __cplusplus
}
#endif
#endif
