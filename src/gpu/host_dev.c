/* gpu: the host reference device. Every operation of dev.h on the CPU in float32 with the nn
 * kernels (BLAS GEMMs split over one thread pool per device, layer norm, GELU, softmax), so that
 * the GPU kernels' tests have an oracle and the GPU engine's orchestration runs where no GPU
 * exists.
 *
 * Invariants: "device" pointers are host pointers (256-byte aligned blocks); operations run at
 * once on the calling thread (and the pool), so sync has nothing to wait for. Activations are
 * float32 only (t != ASR_DT_F32 is a sticky error), except asr_dev_convert, which converts between
 * float32, float16 and bfloat16 either way. Weights may be F32, F16, BF16 or I8; I8 follows the
 * GPU's semantics (w = scale[j] * q, dequantized, activations not quantized, float32 arithmetic),
 * not the CPU engine's int8 GEMM. Scratch (converted weight blocks, attention scores) grows
 * rarely and is kept on the device; no operation allocates once it has seen its largest shape.
 * Decoder rows with len 0 are padding: kv_append skips them and attn_self writes zeros (as the
 * GPU kernels do). After the first failure every compute operation is skipped (its outputs are
 * undefined, as they would be on a GPU whose stream has failed). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/core.h"
#include "gpu/dev_int.h"
#include "nn/nn.h"

#define HOST_ALIGN 256
/* weight rows converted to float32 per block of a linear layer's task */
#define LIN_NB 64
/* query rows per block of encoder attention; decoder rows per block of cross-attention */
#define ATT_QB 64
#define CROSS_RB 32

typedef struct {
    asr_pool_t *pool;
    int n_threads;
    float *scr; /* scratch, floats */
    size_t scr_len;
    int *items; /* cross-attention row blocks: (first row, rows) pairs */
    size_t items_len;
} host_t;

static host_t *H(asr_dev_t *d) { return d->impl; }

/* ---- helpers ---- */
static float *scratch(asr_dev_t *d, size_t n) {
    host_t *h = H(d);
    if (n > h->scr_len) {
        size_t want = n + n / 4;
        float *p = NULL;
        if (posix_memalign((void **)&p, HOST_ALIGN, want * sizeof(float)) != 0) {
            asr__dev_fail(d, "host device: out of memory for %zu bytes of scratch",
                          want * sizeof(float));
            return NULL;
        }
        free(h->scr);
        h->scr = p;
        h->scr_len = want;
    }
    return h->scr;
}

static bool f32_only(asr_dev_t *d, asr_dtype_t t, const char *op) {
    if (d->err != ASR_OK)
        return false;
    if (t == ASR_DT_F32)
        return true;
    asr__dev_fail(d,
                  "host device: %s: %s activations are not supported (the host reference "
                  "computes in float32 only)",
                  op, asr_dtype_name(t));
    return false;
}

/* w as nn's weight matrix (the same element types, in the same order) */
static asr_wmat_t wmat(const asr_dev_w_t *w) {
    static const asr_wtype_t types[] = {[ASR_DT_F32] = ASR_W_F32,
                                        [ASR_DT_F16] = ASR_W_F16,
                                        [ASR_DT_BF16] = ASR_W_BF16,
                                        [ASR_DT_I8] = ASR_W_I8};
    return (asr_wmat_t){types[w->type], w->data, w->type == ASR_DT_I8 ? w->scale : NULL, w->ld};
}

/* a·b over n floats: eight independent lanes, so the compiler vectorises it without reordering
 * a single sum */
static float dot(const float *a, const float *b, int n) {
    float acc[8] = {0};
    int t = 0;
    for (; t + 8 <= n; t += 8)
        for (int l = 0; l < 8; l++)
            acc[l] += a[t + l] * b[t + l];
    float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; t < n; t++)
        s += a[t] * b[t];
    return s;
}

/* ---- device ---- */
static void read_meminfo(size_t *avail, size_t *total) {
    *avail = *total = 0;
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f)
        return;
    char line[128];
    while (fgets(line, sizeof line, f)) {
        unsigned long long kb;
        if (sscanf(line, "MemTotal: %llu kB", &kb) == 1)
            *total = (size_t)kb * 1024;
        else if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1)
            *avail = (size_t)kb * 1024;
    }
    fclose(f);
}

static void host_close(asr_dev_t *d) {
    host_t *h = H(d);
    if (!h)
        return;
    asr_pool_destroy(h->pool);
    free(h->scr);
    free(h->items);
    free(h);
    d->impl = NULL;
}

static asr_err_t host_bind(asr_dev_t *d) {
    (void)d;
    return ASR_OK;
}

static asr_err_t host_mem_info(asr_dev_t *d, size_t *free_bytes, size_t *total_bytes) {
    size_t a, t;
    read_meminfo(&a, &t);
    d->info.free_bytes = a;
    if (free_bytes)
        *free_bytes = a;
    if (total_bytes)
        *total_bytes = t;
    return t ? ASR_OK : ASR_ERR_IO;
}

/* a failed allocation is not sticky (dev.h): the caller reports it */
static void *host_malloc(asr_dev_t *d, size_t bytes) {
    (void)d;
    void *p = NULL;
    if (posix_memalign(&p, HOST_ALIGN, bytes ? bytes : 1) != 0) {
        ASR_LOG(ASR_LOG_WARN, "msg=gpu_alloc_failed device=host bytes=%zu", bytes);
        return NULL;
    }
    return p;
}

static void host_free(asr_dev_t *d, void *p) {
    (void)d;
    free(p);
}

static void host_copy(asr_dev_t *d, void *dst, const void *src, size_t bytes) {
    (void)d;
    memmove(dst, src, bytes);
}

static void host_memset0(asr_dev_t *d, void *dst, size_t bytes) {
    (void)d;
    memset(dst, 0, bytes);
}

static void host_sync(asr_dev_t *d) { (void)d; }

/* ---- linear ---- */
typedef struct {
    const float *a;
    asr_wmat_t w;
    const float *bias;
    float *c, *wbuf; /* wbuf: LIN_NB*k floats per task */
    int lda, ldc, m, n, k;
} lin_job_t;

/* columns [j0, j1) of c for all m rows, LIN_NB weight rows at a time (converted to float32 unless
 * they are float32 already) */
static void lin_task(void *ctx, int task, int n_tasks) {
    lin_job_t *j = ctx;
    int j0 = (int)((long)j->n * task / n_tasks), j1 = (int)((long)j->n * (task + 1) / n_tasks);
    float *wb = j->wbuf + (size_t)task * LIN_NB * j->k;
    for (int c0 = j0; c0 < j1; c0 += LIN_NB) {
        int nb = j1 - c0 < LIN_NB ? j1 - c0 : LIN_NB;
        const float *wp = wb;
        int ldw = j->k;
        if (j->w.type == ASR_W_F32) {
            wp = (const float *)j->w.data + (size_t)c0 * j->w.ld;
            ldw = j->w.ld;
        } else {
            for (int r = 0; r < nb; r++)
                asr_nn_weight_row(&j->w, c0 + r, j->k, wb + (size_t)r * j->k);
        }
        asr_nn_linear(j->a, j->lda, wp, ldw, j->bias ? j->bias + c0 : NULL, j->c + c0, j->ldc, j->m,
                      nb, j->k);
    }
}

static void host_linear(asr_dev_t *d, asr_dtype_t at, const void *a, int lda, const asr_dev_w_t *w,
                        const float *bias, asr_dtype_t ct, void *c, int ldc, int m, int n, int k,
                        int flags) {
    if (!f32_only(d, at, "linear") || !f32_only(d, ct, "linear (output)"))
        return;
    if (w->type == ASR_DT_I8 && !w->scale) {
        asr__dev_fail(d, "host device: linear: int8 weights without scales");
        return;
    }
    host_t *h = H(d);
    int tasks = h->n_threads;
    /* the ACCUM result goes to a temporary first: m*n floats after the weight blocks */
    size_t wfl = w->type == ASR_DT_F32 ? 0 : (size_t)tasks * LIN_NB * k;
    size_t tfl = flags & ASR_LIN_ACCUM ? (size_t)m * n : 0;
    float *s = scratch(d, wfl + tfl + 1);
    if (!s)
        return;
    float *dst = c;
    int ldd = ldc;
    if (flags & ASR_LIN_ACCUM)
        dst = s + wfl, ldd = n;
    asr_wmat_t wm = wmat(w);
    if (w->type != ASR_DT_I8 && m <= ASR_NN_SMALL_M) {
        /* decoder rows: nn's kernels read F32/F16/BF16 weights directly, once per row block */
        asr_nn_linear_w(h->pool, a, lda, &wm, bias, dst, ldd, m, n, k);
    } else if (w->type == ASR_DT_F32 && m >= 64) {
        asr_nn_linear_mt(h->pool, a, lda, w->data, w->ld, bias, dst, ldd, m, n, k);
    } else {
        lin_job_t j = {a, wm, bias, dst, s, lda, ldd, m, n, k};
        int nt = (n + LIN_NB - 1) / LIN_NB;
        asr_pool_run(h->pool, nt < tasks ? nt : tasks, lin_task, &j);
    }
    if (flags & ASR_LIN_GELU) {
        if (ldd == n)
            asr_nn_gelu(h->pool, dst, (size_t)m * n);
        else
            for (int i = 0; i < m; i++)
                asr_nn_gelu(NULL, dst + (size_t)i * ldd, (size_t)n);
    }
    if (flags & ASR_LIN_ACCUM)
        for (int i = 0; i < m; i++)
            asr_nn_add((float *)c + (size_t)i * ldc, dst + (size_t)i * ldd, (size_t)n);
}

/* ---- element-wise ---- */
static void host_layer_norm(asr_dev_t *d, asr_dtype_t t, const void *x, void *out, int rows,
                            int dim, const float *gamma, const float *beta, float eps) {
    if (f32_only(d, t, "layer_norm"))
        asr_nn_layer_norm(H(d)->pool, x, out, rows, dim, gamma, beta, eps);
}

static void host_add(asr_dev_t *d, asr_dtype_t t, void *x, const void *y, size_t n) {
    if (f32_only(d, t, "add"))
        asr_nn_add(x, y, n);
}

static void host_add_pos(asr_dev_t *d, asr_dtype_t t, void *x, const float *pos, int B, size_t n) {
    if (!f32_only(d, t, "add_pos"))
        return;
    for (int b = 0; b < B; b++)
        asr_nn_add((float *)x + (size_t)b * n, pos, n);
}

static void host_convert(asr_dev_t *d, asr_dtype_t st, const void *src, asr_dtype_t dt, void *dst,
                         size_t n) {
    if (d->err != ASR_OK)
        return;
    if (st == ASR_DT_I8 || dt == ASR_DT_I8 || (unsigned)st > ASR_DT_I8 ||
        (unsigned)dt > ASR_DT_I8) {
        asr__dev_fail(d, "host device: convert: %s to %s is not supported", asr_dtype_name(st),
                      asr_dtype_name(dt));
        return;
    }
    if (st == dt) {
        memmove(dst, src, n * asr_dtype_size(st));
        return;
    }
    /* through float32 in blocks (float16 <-> bfloat16 has no direct path) */
    float buf[1024];
    for (size_t i = 0; i < n; i += 1024) {
        size_t b = n - i < 1024 ? n - i : 1024;
        const float *f = buf;
        if (st == ASR_DT_F32)
            f = (const float *)src + i;
        else if (st == ASR_DT_F16)
            asr_nn_h2f_n((const uint16_t *)src + i, buf, b);
        else
            for (size_t e = 0; e < b; e++)
                buf[e] = asr_nn_bf16_to_f32(((const uint16_t *)src)[i + e]);
        if (dt == ASR_DT_F32)
            memcpy((float *)dst + i, f, b * sizeof(float));
        else if (dt == ASR_DT_F16)
            asr_nn_f2h_n(f, (uint16_t *)dst + i, b);
        else
            for (size_t e = 0; e < b; e++)
                ((uint16_t *)dst)[i + e] = asr_nn_f32_to_bf16(f[e]);
    }
}

static void host_im2col_mel(asr_dev_t *d, asr_dtype_t t, const float *mel, int B, int n_mels, int T,
                            void *cols) {
    if (!f32_only(d, t, "im2col_mel"))
        return;
    float *o = cols;
    int w = n_mels * 3;
    for (int b = 0; b < B; b++) {
        const float *m = mel + (size_t)b * n_mels * T;
        for (int tt = 0; tt < T; tt++) {
            float *r = o + ((size_t)b * T + tt) * w;
            for (int c = 0; c < n_mels; c++)
                for (int k = 0; k < 3; k++) {
                    int s = tt + k - 1;
                    r[c * 3 + k] = s >= 0 && s < T ? m[(size_t)c * T + s] : 0.0f;
                }
        }
    }
}

static void host_im2col_s2(asr_dev_t *d, asr_dtype_t t, const void *x, int B, int T_in, int C,
                           void *cols) {
    if (!f32_only(d, t, "im2col_s2"))
        return;
    const float *in = x;
    float *o = cols;
    int T_out = T_in / 2, w = C * 3;
    for (int b = 0; b < B; b++)
        for (int tt = 0; tt < T_out; tt++) {
            float *r = o + ((size_t)b * T_out + tt) * w;
            for (int k = 0; k < 3; k++) {
                int s = 2 * tt + k - 1;
                const float *src = s >= 0 && s < T_in ? in + ((size_t)b * T_in + s) * C : NULL;
                for (int c = 0; c < C; c++)
                    r[c * 3 + k] = src ? src[c] : 0.0f;
            }
        }
}

static void host_embed(asr_dev_t *d, asr_dtype_t t, const asr_dev_w_t *emb, const float *pos,
                       const int32_t *tokens, const int32_t *positions, int n, int dim, void *x) {
    if (!f32_only(d, t, "embed"))
        return;
    if (emb->type == ASR_DT_I8 && !emb->scale) {
        asr__dev_fail(d, "host device: embed: int8 embeddings without scales");
        return;
    }
    asr_wmat_t wm = wmat(emb);
    float *o = x;
    for (int i = 0; i < n; i++) {
        float *r = o + (size_t)i * dim;
        asr_nn_weight_row(&wm, tokens[i], dim, r);
        asr_nn_add(r, pos + (size_t)positions[i] * dim, (size_t)dim);
    }
}

/* ---- attention ---- */
typedef struct {
    const float *qkv;
    float *out, *scr; /* scr: ATT_QB*T floats per task */
    int B, T, H, dh;
    float scale;
} full_job_t;

static void full_task(void *ctx, int task, int n_tasks) {
    full_job_t *j = ctx;
    int dim = j->H * j->dh, ld = 3 * dim, nqb = (j->T + ATT_QB - 1) / ATT_QB;
    long total = (long)j->B * j->H * nqb;
    float *s = j->scr + (size_t)task * ATT_QB * j->T;
    for (long it = task; it < total; it += n_tasks) {
        int qb = (int)(it % nqb), hh = (int)(it / nqb % j->H), b = (int)(it / nqb / j->H);
        int q0 = qb * ATT_QB, nq = j->T - q0 < ATT_QB ? j->T - q0 : ATT_QB;
        const float *base = j->qkv + (size_t)b * j->T * ld + (size_t)hh * j->dh;
        asr_nn_gemm_nt(base + (size_t)q0 * ld, ld, base + dim, ld, s, j->T, nq, j->T, j->dh,
                       j->scale);
        for (int r = 0; r < nq; r++)
            asr_nn_softmax_row_fast(s + (size_t)r * j->T, j->T, 1.0f);
        asr_nn_gemm_nn(s, j->T, base + 2 * dim, ld,
                       j->out + ((size_t)b * j->T + q0) * dim + (size_t)hh * j->dh, dim, nq, j->dh,
                       j->T);
    }
}

static void host_attn_full(asr_dev_t *d, asr_dtype_t t, const void *qkv, void *out, int B, int T,
                           int Hh, int dh, float scale) {
    if (!f32_only(d, t, "attn_full") || T <= 0)
        return;
    host_t *h = H(d);
    float *s = scratch(d, (size_t)h->n_threads * ATT_QB * T);
    if (!s)
        return;
    full_job_t j = {qkv, out, s, B, T, Hh, dh, scale};
    long total = (long)B * Hh * ((T + ATT_QB - 1) / ATT_QB);
    asr_pool_run(h->pool, total < h->n_threads ? (int)total : h->n_threads, full_task, &j);
}

static void host_kv_append(asr_dev_t *d, asr_dtype_t t, const void *qkv, int ldqkv,
                           const asr_dev_row_t *rows, int n, int dim, size_t layer_off) {
    if (!f32_only(d, t, "kv_append"))
        return;
    for (int i = 0; i < n; i++) {
        const asr_dev_row_t *r = &rows[i];
        if (r->len < 1) /* a padding row (as on the GPU) */
            continue;
        const float *src = (const float *)qkv + (size_t)i * ldqkv;
        size_t o = layer_off + (size_t)(r->len - 1) * dim;
        memcpy((float *)r->k + o, src + dim, (size_t)dim * sizeof(float));
        memcpy((float *)r->v + o, src + 2 * dim, (size_t)dim * sizeof(float));
    }
}

typedef struct {
    const float *q;
    const asr_dev_row_t *rows;
    float *out, *scr; /* scr: max_len floats per task */
    int ldq, ldo, n, H, dh, max_len;
    size_t off;
    float scale;
} self_job_t;

static void self_task(void *ctx, int task, int n_tasks) {
    self_job_t *j = ctx;
    int dim = j->H * j->dh;
    float *s = j->scr + (size_t)task * j->max_len;
    for (long it = task; it < (long)j->n * j->H; it += n_tasks) {
        int i = (int)(it / j->H), hh = (int)(it % j->H);
        const asr_dev_row_t *r = &j->rows[i];
        const float *q = j->q + (size_t)i * j->ldq + (size_t)hh * j->dh;
        const float *K[2] = {r->ks, r->k}, *V[2] = {r->vs, r->v};
        size_t o = j->off + (size_t)hh * j->dh;
        float *y = j->out + (size_t)i * j->ldo + (size_t)hh * j->dh;
        memset(y, 0, (size_t)j->dh * sizeof(float));
        if (r->len < 1) /* a padding row: zeros (as on the GPU) */
            continue;
        for (int p = 0; p < r->len; p++)
            s[p] = dot(q, K[p >= r->shared] + o + (size_t)p * dim, j->dh);
        asr_nn_softmax_row_fast(s, r->len, j->scale);
        for (int p = 0; p < r->len; p++) {
            const float *v = V[p >= r->shared] + o + (size_t)p * dim;
            float w = s[p];
            for (int c = 0; c < j->dh; c++)
                y[c] += w * v[c];
        }
    }
}

static void host_attn_self(asr_dev_t *d, asr_dtype_t t, const void *q, int ldq,
                           const asr_dev_row_t *rows, int n, int Hh, int dh, size_t layer_off,
                           float scale, void *out, int ldo) {
    if (!f32_only(d, t, "attn_self"))
        return;
    int max_len = 1;
    for (int i = 0; i < n; i++) {
        const asr_dev_row_t *r = &rows[i];
        if (r->shared < 0 || (r->shared > 0 && r->len > 0 && (!r->ks || !r->vs))) {
            asr__dev_fail(d, "host device: attn_self: row %d has len %d, shared %d", i, (int)r->len,
                          (int)r->shared);
            return;
        }
        max_len = r->len > max_len ? r->len : max_len;
    }
    host_t *h = H(d);
    float *s = scratch(d, (size_t)h->n_threads * max_len);
    if (!s)
        return;
    self_job_t j = {q, rows, out, s, ldq, ldo, n, Hh, dh, max_len, layer_off, scale};
    long total = (long)n * Hh;
    asr_pool_run(h->pool, total < h->n_threads ? (int)total : h->n_threads, self_task, &j);
}

/* Blocks of consecutive rows that read the same cross K/V (one stream), CROSS_RB rows at most:
 * each block is one GEMM per head. Returns the number of blocks (pairs in h->items), -1 on
 * failure. */
static int cross_blocks(asr_dev_t *d, const asr_dev_row_t *rows, int n) {
    host_t *h = H(d);
    if ((size_t)n * 2 > h->items_len) {
        int *p = realloc(h->items, (size_t)n * 2 * sizeof(int));
        if (!p) {
            asr__dev_fail(d, "host device: out of memory");
            return -1;
        }
        h->items = p;
        h->items_len = (size_t)n * 2;
    }
    int nb = 0;
    for (int i = 0; i < n;) {
        int e = i + 1;
        while (e < n && e - i < CROSS_RB && rows[e].xk == rows[i].xk && rows[e].xv == rows[i].xv)
            e++;
        h->items[2 * nb] = i;
        h->items[2 * nb + 1] = e - i;
        nb++;
        i = e;
    }
    return nb;
}

typedef struct {
    const float *q;
    const asr_dev_row_t *rows;
    const int *blocks;
    float *out, *scr; /* scr: CROSS_RB*n_audio floats per task */
    int ldq, ldo, nb, H, h0, dh, n_audio, ldx;
    size_t off;
    float scale;
    bool scores; /* raw scores of head h0 into out [n][n_audio] */
} cross_job_t;

static void cross_task(void *ctx, int task, int n_tasks) {
    cross_job_t *j = ctx;
    float *s = j->scr + (size_t)task * CROSS_RB * j->n_audio;
    for (long it = task; it < (long)j->nb * j->H; it += n_tasks) {
        int b = (int)(it / j->H), hh = j->h0 + (int)(it % j->H);
        int i0 = j->blocks[2 * b], m = j->blocks[2 * b + 1];
        const asr_dev_row_t *r = &j->rows[i0];
        size_t o = j->off + (size_t)hh * j->dh;
        const float *q = j->q + (size_t)i0 * j->ldq + (size_t)hh * j->dh;
        if (j->scores) {
            asr_nn_gemm_nt(q, j->ldq, (const float *)r->xk + o, j->ldx,
                           j->out + (size_t)i0 * j->n_audio, j->n_audio, m, j->n_audio, j->dh,
                           j->scale);
            continue;
        }
        asr_nn_gemm_nt(q, j->ldq, (const float *)r->xk + o, j->ldx, s, j->n_audio, m, j->n_audio,
                       j->dh, j->scale);
        for (int e = 0; e < m; e++)
            asr_nn_softmax_row_fast(s + (size_t)e * j->n_audio, j->n_audio, 1.0f);
        asr_nn_gemm_nn(s, j->n_audio, (const float *)r->xv + o, j->ldx,
                       j->out + (size_t)i0 * j->ldo + (size_t)hh * j->dh, j->ldo, m, j->dh,
                       j->n_audio);
    }
}

/* attn_cross (all H heads from h0 = 0, softmax, into out with stride ldo) or attn_cross_scores
 * (head h0 only, raw scores into out [n][n_audio]) */
static void cross_run(asr_dev_t *d, asr_dtype_t t, const char *op, const void *q, int ldq,
                      const asr_dev_row_t *rows, int n, int Hh, int h0, int dh, int n_audio,
                      int ldx, size_t layer_off, float scale, float *out, int ldo, bool scores) {
    if (!f32_only(d, t, op))
        return;
    host_t *h = H(d);
    if (n_audio <= 0) { /* nothing to attend to: zeros (as on the GPU) */
        for (int i = 0; !scores && i < n; i++)
            for (int hh = 0; hh < Hh; hh++)
                memset(out + (size_t)i * ldo + (size_t)hh * dh, 0, (size_t)dh * sizeof(float));
        return;
    }
    int nb = cross_blocks(d, rows, n);
    float *s = nb < 0 ? NULL : scratch(d, (size_t)h->n_threads * CROSS_RB * n_audio);
    if (!s)
        return;
    cross_job_t j = {q,  rows, h->items, out,     s,   ldq,       ldo,   nb,
                     Hh, h0,   dh,       n_audio, ldx, layer_off, scale, scores};
    long total = (long)nb * Hh;
    asr_pool_run(h->pool, total < h->n_threads ? (int)total : h->n_threads, cross_task, &j);
}

static void host_attn_cross(asr_dev_t *d, asr_dtype_t t, const void *q, int ldq,
                            const asr_dev_row_t *rows, int n, int Hh, int dh, int n_audio, int ldx,
                            size_t layer_off, float scale, void *out, int ldo) {
    cross_run(d, t, "attn_cross", q, ldq, rows, n, Hh, 0, dh, n_audio, ldx, layer_off, scale, out,
              ldo, false);
}

static void host_attn_cross_scores(asr_dev_t *d, asr_dtype_t t, const void *q, int ldq,
                                   const asr_dev_row_t *rows, int n, int hh, int dh, int n_audio,
                                   int ldx, size_t layer_off, float scale, float *out) {
    cross_run(d, t, "attn_cross_scores", q, ldq, rows, n, 1, hh, dh, n_audio, ldx, layer_off, scale,
              out, n_audio, true);
}

static const asr_dev_ops_t host_ops = {
    .close = host_close,
    .bind = host_bind,
    .mem_info = host_mem_info,
    .malloc = host_malloc,
    .free = host_free,
    .host_malloc = host_malloc,
    .host_free = host_free,
    .h2d = host_copy,
    .d2h = host_copy,
    .d2d = host_copy,
    .memset0 = host_memset0,
    .sync = host_sync,
    .linear = host_linear,
    .layer_norm = host_layer_norm,
    .add = host_add,
    .add_pos = host_add_pos,
    .convert = host_convert,
    .im2col_mel = host_im2col_mel,
    .im2col_s2 = host_im2col_s2,
    .embed = host_embed,
    .attn_full = host_attn_full,
    .kv_append = host_kv_append,
    .attn_self = host_attn_self,
    .attn_cross = host_attn_cross,
    .attn_cross_scores = host_attn_cross_scores,
};

asr_err_t asr__dev_host_open(asr_dev_t *d, char *err, size_t err_len) {
    host_t *h = calloc(1, sizeof *h);
    if (!h) {
        asr_errf(err, err_len, "host device: out of memory");
        return ASR_ERR_NOMEM;
    }
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    h->n_threads = cores < 1 ? 1 : cores > 64 ? 64 : (int)cores;
    h->pool = asr_pool_create(h->n_threads);
    d->ops = &host_ops;
    d->impl = h;
    memset(&d->info, 0, sizeof d->info);
    d->info.kind = ASR_DEV_HOST;
    d->info.index = 0;
    snprintf(d->info.name, sizeof d->info.name, "host reference");
    d->info.n_sm = h->n_threads;
    read_meminfo(&d->info.free_bytes, &d->info.total_bytes);
    return ASR_OK;
}
