/* gpu: the device object every kind shares: opening by kind, the sticky error (recoverable or
 * context lost), arenas and the device bytes they hold, fault injection, and the operations
 * dispatched to the kind's table.
 *
 * Invariants: every allocation (asr_dev_malloc, asr_dev_host_malloc) and every operation
 * (asr_dev_h2d ... asr_dev_attn_cross_scores, asr_dev_sync) that reaches a kind passes through
 * here first, where it is counted for fault injection; nothing reaches the kind of a lost device
 * except frees and closing. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "gpu/dev_int.h"

size_t asr_dtype_size(asr_dtype_t t) {
    switch (t) {
    case ASR_DT_F32:
        return 4;
    case ASR_DT_F16:
    case ASR_DT_BF16:
        return 2;
    case ASR_DT_I8:
        return 1;
    }
    return 0;
}

const char *asr_dtype_name(asr_dtype_t t) {
    static const char *const names[] = {"float32", "float16", "bfloat16", "int8"};
    return (unsigned)t < sizeof names / sizeof *names ? names[t] : "?";
}

void asr__dev_fail(asr_dev_t *d, const char *fmt, ...) {
    if (d->err != ASR_OK)
        return;
    d->err = ASR_ERR_GPU;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->errmsg, sizeof d->errmsg, fmt, ap);
    va_end(ap);
}

void asr__dev_fail_lost(asr_dev_t *d, const char *fmt, ...) {
    if (d->lost)
        return;
    d->lost = true;
    d->err = ASR_ERR_GPU;
    char why[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    snprintf(d->errmsg, sizeof d->errmsg, "device context lost: %s", why);
    ASR_LOG(ASR_LOG_ERROR, "msg=gpu_context_lost device=%s:%d reason=\"%s\"",
            d->info.kind == ASR_DEV_CUDA ? "cuda" : "host", d->info.index, why);
}

/* ---- fault injection and accounting ---- */
#define MAX_ORDINALS 64

static _Atomic uint64_t n_events[2]; /* allocations, operations */
static _Atomic uint64_t armed[3];    /* by fault kind: the event number that fails, 0: none */
static _Atomic int64_t held[2][MAX_ORDINALS]; /* by device kind and ordinal: bytes */

static int event_of(asr_dev_fault_kind_t k) { return k == ASR_DEV_FAULT_ALLOC ? 0 : 1; }

void asr_dev_fault_set(asr_dev_fault_kind_t kind, long nth) {
    if ((unsigned)kind > ASR_DEV_FAULT_LOST)
        return;
    if (nth <= 0)
        atomic_store(&armed[kind], 0);
    else
        atomic_store(&armed[kind], atomic_load(&n_events[event_of(kind)]) + (uint64_t)nth);
}

uint64_t asr_dev_fault_count(asr_dev_fault_kind_t kind) {
    if ((unsigned)kind > ASR_DEV_FAULT_LOST)
        return 0;
    return atomic_load(&n_events[event_of(kind)]);
}

/* Whether event number c is the armed one of kind k (then disarmed: it fails once). */
static bool fault_hit(asr_dev_fault_kind_t k, uint64_t c) {
    uint64_t a = atomic_load(&armed[k]);
    return a == c && atomic_compare_exchange_strong(&armed[k], &a, 0);
}

/* Counts an operation; false when it must not reach the kind: the device is lost, or the
 * injected fault of this operation has just been recorded. */
static bool op_begin(asr_dev_t *d, const char *op) {
    uint64_t c = atomic_fetch_add(&n_events[1], 1) + 1;
    if (d->lost)
        return false;
    if (fault_hit(ASR_DEV_FAULT_LOST, c)) {
        asr__dev_fail_lost(d, "%s: injected fault (operation %" PRIu64 ")", op, c);
        return false;
    }
    if (fault_hit(ASR_DEV_FAULT_OP, c)) {
        asr__dev_fail(d, "%s: injected fault (operation %" PRIu64 ")", op, c);
        return false;
    }
    return true;
}

/* Counts an allocation; false when it fails (lost device, or the injected fault). */
static bool alloc_begin(asr_dev_t *d, size_t bytes, const char *what) {
    uint64_t c = atomic_fetch_add(&n_events[0], 1) + 1;
    if (d->lost)
        return false;
    if (fault_hit(ASR_DEV_FAULT_ALLOC, c)) {
        ASR_LOG(ASR_LOG_WARN,
                "msg=gpu_alloc_failed what=%s bytes=%zu reason=\"injected fault "
                "(allocation %" PRIu64 ")\"",
                what, bytes, c);
        return false;
    }
    return true;
}

void asr__dev_account(asr_dev_kind_t kind, int index, int64_t delta) {
    if ((unsigned)kind <= ASR_DEV_CUDA && index >= 0 && index < MAX_ORDINALS)
        atomic_fetch_add(&held[kind][index], delta);
}

uint64_t asr_dev_allocated_bytes(asr_dev_kind_t kind, int index) {
    if ((unsigned)kind > ASR_DEV_CUDA || index < 0 || index >= MAX_ORDINALS)
        return 0;
    int64_t v = atomic_load(&held[kind][index]);
    return v > 0 ? (uint64_t)v : 0;
}

bool asr_dev_error_clear(asr_dev_t *d) {
    if (d->lost)
        return false;
    if (d->ops->clear && !d->ops->clear(d))
        return false;
    d->err = ASR_OK;
    d->errmsg[0] = 0;
    return true;
}

bool asr_dev_lost(const asr_dev_t *d) { return d->lost; }

asr_err_t asr_dev_open(asr_dev_kind_t kind, int index, asr_dev_t **out, char *err, size_t err_len) {
    *out = NULL;
    asr_dev_t *d = calloc(1, sizeof *d);
    if (!d)
        return ASR_ERR_NOMEM;
    asr_err_t rc = kind == ASR_DEV_CUDA ? asr__dev_cuda_open(d, index, err, err_len)
                                        : asr__dev_host_open(d, err, err_len);
    if (rc != ASR_OK) {
        free(d);
        return rc;
    }
    *out = d;
    return ASR_OK;
}

void asr_dev_close(asr_dev_t *d) {
    if (!d)
        return;
    d->ops->close(d);
    free(d);
}

const asr_dev_info_t *asr_dev_info(const asr_dev_t *d) { return &d->info; }
asr_err_t asr_dev_bind(asr_dev_t *d) { return d->ops->bind(d); }
asr_err_t asr_dev_mem_info(asr_dev_t *d, size_t *free_bytes, size_t *total_bytes) {
    return d->ops->mem_info(d, free_bytes, total_bytes);
}

void *asr_dev_malloc(asr_dev_t *d, size_t bytes) {
    return alloc_begin(d, bytes, "device") ? d->ops->malloc(d, bytes) : NULL;
}
void asr_dev_free(asr_dev_t *d, void *p) {
    if (p)
        d->ops->free(d, p);
}
void *asr_dev_host_malloc(asr_dev_t *d, size_t bytes) {
    return alloc_begin(d, bytes, "pinned_host") ? d->ops->host_malloc(d, bytes) : NULL;
}
void asr_dev_host_free(asr_dev_t *d, void *p) {
    if (p)
        d->ops->host_free(d, p);
}
void asr_dev_h2d(asr_dev_t *d, void *dst, const void *src, size_t bytes) {
    if (bytes && op_begin(d, "copy to device"))
        d->ops->h2d(d, dst, src, bytes);
}
void asr_dev_d2h(asr_dev_t *d, void *dst, const void *src, size_t bytes) {
    if (bytes && op_begin(d, "copy to host"))
        d->ops->d2h(d, dst, src, bytes);
}
void asr_dev_d2d(asr_dev_t *d, void *dst, const void *src, size_t bytes) {
    if (bytes && op_begin(d, "device copy"))
        d->ops->d2d(d, dst, src, bytes);
}
void asr_dev_memset0(asr_dev_t *d, void *dst, size_t bytes) {
    if (bytes && op_begin(d, "memset"))
        d->ops->memset0(d, dst, bytes);
}

asr_err_t asr_dev_error(const asr_dev_t *d, char *err, size_t err_len) {
    if (d->err != ASR_OK && err && err_len)
        snprintf(err, err_len, "%s", d->errmsg);
    return d->err;
}

asr_err_t asr_dev_sync(asr_dev_t *d, char *err, size_t err_len) {
    if (op_begin(d, "sync"))
        d->ops->sync(d);
    return asr_dev_error(d, err, err_len);
}

/* ---- arenas ---- */
#define ARENA_ALIGN 256

size_t asr_dev_arena_round(size_t bytes) {
    return (bytes + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
}

asr_err_t asr_dev_arena_init(asr_dev_t *d, asr_dev_arena_t *a, size_t bytes) {
    a->base = NULL;
    a->size = a->used = 0;
    if (!bytes)
        return ASR_OK;
    a->base = asr_dev_malloc(d, bytes);
    if (!a->base)
        return d->lost ? ASR_ERR_GPU : ASR_ERR_NOMEM;
    a->size = bytes;
    asr__dev_account(d->info.kind, d->info.index, (int64_t)bytes);
    return ASR_OK;
}

void asr_dev_arena_release(asr_dev_t *d, asr_dev_arena_t *a) {
    if (a->base)
        asr__dev_account(d->info.kind, d->info.index, -(int64_t)a->size);
    asr_dev_free(d, a->base);
    a->base = NULL;
    a->size = a->used = 0;
}

void *asr_dev_arena_take(asr_dev_arena_t *a, size_t bytes) {
    size_t n = asr_dev_arena_round(bytes);
    if (!a->base || n > a->size - a->used)
        return NULL;
    void *p = a->base + a->used;
    a->used += n;
    return p;
}

/* ---- operations ---- */
void asr_dev_set_scratch(asr_dev_t *d, void *p, size_t bytes) {
    d->scratch = p;
    d->scratch_bytes = bytes;
}

void asr_dev_linear(asr_dev_t *d, asr_dtype_t at, const void *a, int lda, const asr_dev_w_t *w,
                    const float *bias, asr_dtype_t ct, void *c, int ldc, int m, int n, int k,
                    int flags) {
    if (m <= 0 || n <= 0)
        return;
    if ((flags & ASR_LIN_GELU) && (flags & ASR_LIN_ACCUM)) {
        asr__dev_fail(d, "linear: GELU and ACCUM together");
        return;
    }
    if (w->type == ASR_DT_I8 && d->scratch_bytes < (size_t)n * k * 2) {
        asr__dev_fail(d, "linear: int8 weights %dx%d need %zu bytes of scratch, %zu set", n, k,
                      (size_t)n * k * 2, d->scratch_bytes);
        return;
    }
    if (op_begin(d, "linear"))
        d->ops->linear(d, at, a, lda, w, bias, ct, c, ldc, m, n, k, flags);
}

void asr_dev_layer_norm(asr_dev_t *d, asr_dtype_t t, const void *x, void *out, int rows, int dim,
                        const float *gamma, const float *beta, float eps) {
    if (rows > 0 && op_begin(d, "layer_norm"))
        d->ops->layer_norm(d, t, x, out, rows, dim, gamma, beta, eps);
}
void asr_dev_add(asr_dev_t *d, asr_dtype_t t, void *x, const void *y, size_t n) {
    if (n && op_begin(d, "add"))
        d->ops->add(d, t, x, y, n);
}
void asr_dev_add_pos(asr_dev_t *d, asr_dtype_t t, void *x, const float *pos, int B, size_t n) {
    if (B > 0 && n && op_begin(d, "add_pos"))
        d->ops->add_pos(d, t, x, pos, B, n);
}
void asr_dev_convert(asr_dev_t *d, asr_dtype_t st, const void *src, asr_dtype_t dt, void *dst,
                     size_t n) {
    if (n && op_begin(d, "convert"))
        d->ops->convert(d, st, src, dt, dst, n);
}
void asr_dev_im2col_mel(asr_dev_t *d, asr_dtype_t t, const float *mel, int B, int n_mels, int T,
                        void *cols) {
    if (B > 0 && op_begin(d, "im2col_mel"))
        d->ops->im2col_mel(d, t, mel, B, n_mels, T, cols);
}
void asr_dev_im2col_s2(asr_dev_t *d, asr_dtype_t t, const void *x, int B, int T_in, int C,
                       void *cols) {
    if (B > 0 && op_begin(d, "im2col_s2"))
        d->ops->im2col_s2(d, t, x, B, T_in, C, cols);
}
void asr_dev_embed(asr_dev_t *d, asr_dtype_t t, const asr_dev_w_t *emb, const float *pos,
                   const int32_t *tokens, const int32_t *positions, int n, int dim, void *x) {
    if (n > 0 && op_begin(d, "embed"))
        d->ops->embed(d, t, emb, pos, tokens, positions, n, dim, x);
}
void asr_dev_attn_full(asr_dev_t *d, asr_dtype_t t, const void *qkv, void *out, int B, int T, int H,
                       int dh, float scale) {
    if (B > 0 && op_begin(d, "attn_full"))
        d->ops->attn_full(d, t, qkv, out, B, T, H, dh, scale);
}
void asr_dev_kv_append(asr_dev_t *d, asr_dtype_t t, const void *qkv, int ldqkv,
                       const asr_dev_row_t *rows, int n, int dim, size_t layer_off) {
    if (n > 0 && op_begin(d, "kv_append"))
        d->ops->kv_append(d, t, qkv, ldqkv, rows, n, dim, layer_off);
}
void asr_dev_attn_self(asr_dev_t *d, asr_dtype_t t, const void *q, int ldq,
                       const asr_dev_row_t *rows, int n, int H, int dh, size_t layer_off,
                       float scale, void *out, int ldo) {
    if (n > 0 && op_begin(d, "attn_self"))
        d->ops->attn_self(d, t, q, ldq, rows, n, H, dh, layer_off, scale, out, ldo);
}
void asr_dev_attn_cross(asr_dev_t *d, asr_dtype_t t, const void *q, int ldq,
                        const asr_dev_row_t *rows, int n, int H, int dh, int n_audio, int ldx,
                        size_t layer_off, float scale, void *out, int ldo) {
    if (n > 0 && op_begin(d, "attn_cross"))
        d->ops->attn_cross(d, t, q, ldq, rows, n, H, dh, n_audio, ldx, layer_off, scale, out, ldo);
}
void asr_dev_attn_cross_scores(asr_dev_t *d, asr_dtype_t t, const void *q, int ldq,
                               const asr_dev_row_t *rows, int n, int h, int dh, int n_audio,
                               int ldx, size_t layer_off, float scale, float *out) {
    if (n > 0 && op_begin(d, "attn_cross_scores"))
        d->ops->attn_cross_scores(d, t, q, ldq, rows, n, h, dh, n_audio, ldx, layer_off, scale,
                                  out);
}
