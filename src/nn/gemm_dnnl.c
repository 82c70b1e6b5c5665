/* nn: encoder-shaped GEMMs through oneDNN's matmul (nn.h, asr_nn_dnnl_*).
 *
 * C[m][n] = A[m][k]·W[n][k]ᵀ + bias, A float32 activations made bfloat16 (or int8 with a scale per
 * row) per call, W packed once (asr_nn_dnnl_pack) into the layout oneDNN's chosen kernel reads
 * (bfloat16, or int8 with a scale per output column). One primitive per (m, n, k, type), created
 * at pack time and shared by every handle of that shape (a small locked cache; executing a
 * primitive is thread-safe). The scratchpad is the caller's (user mode): asr_nn_dnnl_scratch_bytes
 * says how much, sized at pack time. oneDNN (Debian's build) threads with OpenMP: each run sets the
 * calling thread's OpenMP team size to the caller's thread count, so the library never runs more
 * threads than asrd's pool would. The kernel set follows asr_isa()'s level (ASRD_ISA): oneDNN's
 * max ISA is capped to it once, before the first primitive. */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <oneapi/dnnl/dnnl.h>

#include "nn/isa.h"
#include "nn/nn.h"

/* libgomp: oneDNN's runtime on Debian. A primitive sizes its thread split when it is created
 * (omp_get_max_threads then) and runs that many threads, so both creation and each run set the
 * calling thread's team size to the caller's count. */
void omp_set_num_threads(int n);
int omp_get_max_threads(void);

#define CACHE_N 64

typedef struct {
    int m, n, k, type, n_threads;
    dnnl_primitive_t prim;
    const_dnnl_primitive_desc_t pd;
    dnnl_memory_desc_t wmd; /* the packed weights' layout */
    size_t scratch_bytes;   /* oneDNN's scratchpad */
    char impl[64];
} prim_t;

struct asr_nn_dnnl {
    const prim_t *p;
    void *w;       /* packed weights (64-byte aligned) */
    size_t w_len;  /* its bytes */
    float *bias;   /* [n] or NULL */
    float *wscale; /* int8: [n] the column scales */
};

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static dnnl_engine_t g_eng;
static prim_t g_cache[CACHE_N];
static int g_n;

static asr_err_t engine_init(void) {
    if (g_eng)
        return ASR_OK;
    const asr_isa_t *t = asr_isa();
    dnnl_cpu_isa_t cap = t->level >= ASR_ISA_AMX      ? dnnl_cpu_isa_all
                         : t->level >= ASR_ISA_AVX512 ? dnnl_cpu_isa_avx512_core_bf16
                         : t->level >= ASR_ISA_AVX2   ? dnnl_cpu_isa_avx2
                                                      : dnnl_cpu_isa_sse41;
    dnnl_set_max_cpu_isa(cap); /* fails harmlessly once a primitive exists */
    dnnl_set_verbose(0);
    return dnnl_engine_create(&g_eng, dnnl_cpu, 0) == dnnl_success ? ASR_OK : ASR_ERR_INVALID;
}

static dnnl_data_type_t src_dt(int type) {
    return type == ASR_NN_DNNL_BF16 ? dnnl_bf16 : type == ASR_NN_DNNL_I8 ? dnnl_s8 : dnnl_f32;
}

/* the cached primitive for a shape, created on first use (g_mu held) */
static const prim_t *prim_get(int m, int n, int k, int type, int n_threads) {
    for (int i = 0; i < g_n; i++)
        if (g_cache[i].m == m && g_cache[i].n == n && g_cache[i].k == k &&
            g_cache[i].type == type && g_cache[i].n_threads == n_threads)
            return &g_cache[i];
    if (g_n == CACHE_N || engine_init() != ASR_OK)
        return NULL;
    dnnl_memory_desc_t a, w, b, c;
    dnnl_dims_t da = {m, k}, dw = {k, n}, db = {1, n}, dc = {m, n};
    int i8 = type == ASR_NN_DNNL_I8;
    dnnl_memory_desc_init_by_tag(&a, 2, da, src_dt(type), dnnl_ab);
    dnnl_memory_desc_init_by_tag(&w, 2, dw, src_dt(type), dnnl_format_tag_any);
    dnnl_memory_desc_init_by_tag(&b, 2, db, dnnl_f32, dnnl_ab);
    dnnl_memory_desc_init_by_tag(&c, 2, dc, i8 ? dnnl_s32 : dnnl_f32, dnnl_ab);
    dnnl_matmul_desc_t md;
    if (dnnl_matmul_desc_init(&md, &a, &w, i8 ? NULL : &b, &c) != dnnl_success)
        return NULL;
    dnnl_primitive_attr_t attr;
    dnnl_primitive_attr_create(&attr);
    dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    dnnl_primitive_desc_t pd = NULL;
    int was = omp_get_max_threads();
    omp_set_num_threads(n_threads);
    dnnl_status_t st = dnnl_primitive_desc_create(&pd, &md, attr, g_eng, NULL);
    omp_set_num_threads(was);
    dnnl_primitive_attr_destroy(attr);
    if (st != dnnl_success)
        return NULL;
    prim_t *p = &g_cache[g_n];
    memset(p, 0, sizeof *p);
    if (dnnl_primitive_create(&p->prim, pd) != dnnl_success) {
        dnnl_primitive_desc_destroy(pd);
        return NULL;
    }
    dnnl_primitive_get_primitive_desc(p->prim, &p->pd);
    dnnl_primitive_desc_destroy(pd);
    p->wmd = *dnnl_primitive_desc_query_md(p->pd, dnnl_query_weights_md, 0);
    p->scratch_bytes =
        dnnl_memory_desc_get_size(dnnl_primitive_desc_query_md(p->pd, dnnl_query_scratchpad_md, 0));
    const char *impl = NULL;
    dnnl_primitive_desc_query(p->pd, dnnl_query_impl_info_str, 0, &impl);
    snprintf(p->impl, sizeof p->impl, "%s", impl ? impl : "?");
    p->m = m, p->n = n, p->k = k, p->type = type, p->n_threads = n_threads;
    g_n++;
    return p;
}

/* dst (any layout of md) from a float32 [n][k] matrix (oneDNN's reorder) */
static asr_err_t reorder_in(const float *wf, int n, int k, const dnnl_memory_desc_t *md,
                            void *dst) {
    dnnl_memory_desc_t user;
    dnnl_dims_t dw = {k, n};
    dnnl_memory_desc_init_by_tag(&user, 2, dw, dnnl_f32, dnnl_ba);
    dnnl_primitive_desc_t rpd = NULL;
    dnnl_primitive_t r = NULL;
    dnnl_memory_t ms = NULL, md_ = NULL;
    dnnl_stream_t s = NULL;
    asr_err_t e = ASR_ERR_INVALID;
    if (dnnl_reorder_primitive_desc_create(&rpd, &user, g_eng, md, g_eng, NULL) != dnnl_success ||
        dnnl_primitive_create(&r, rpd) != dnnl_success ||
        dnnl_memory_create(&ms, &user, g_eng, (void *)wf) != dnnl_success ||
        dnnl_memory_create(&md_, md, g_eng, dst) != dnnl_success ||
        dnnl_stream_create(&s, g_eng, dnnl_stream_default_flags) != dnnl_success)
        goto done;
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, ms}, {DNNL_ARG_TO, md_}};
    if (dnnl_primitive_execute(r, s, 2, args) == dnnl_success &&
        dnnl_stream_wait(s) == dnnl_success)
        e = ASR_OK;
done:
    if (s)
        dnnl_stream_destroy(s);
    if (ms)
        dnnl_memory_destroy(ms);
    if (md_)
        dnnl_memory_destroy(md_);
    if (r)
        dnnl_primitive_destroy(r);
    if (rpd)
        dnnl_primitive_desc_destroy(rpd);
    return e;
}

asr_err_t asr_nn_dnnl_pack(int type, const float *w, const float *bias, int m, int n, int k,
                           int n_threads, asr_nn_dnnl_t **out) {
    *out = NULL;
    const asr_isa_t *isa = asr_isa();
    /* int8 below AVX-512 VNNI: oneDNN's s8·s8 kernels sum pairs in saturating int16 (vpmaddubsw),
     * 24% error measured at ASRD_ISA=avx2; bfloat16 below AVX-512: no matmul in oneDNN 2.6 */
    if ((type == ASR_NN_DNNL_I8 && (isa->level < ASR_ISA_AVX512 || !isa->avx512_vnni)) ||
        (type == ASR_NN_DNNL_BF16 && isa->level < ASR_ISA_AVX512))
        return ASR_ERR_INVALID;
    asr_nn_dnnl_t *g = calloc(1, sizeof *g);
    float *wq = NULL;
    if (!g)
        return ASR_ERR_NOMEM;
    pthread_mutex_lock(&g_mu);
    g->p = prim_get(m, n, k, type, n_threads > 0 ? n_threads : 1);
    pthread_mutex_unlock(&g_mu);
    asr_err_t e = ASR_ERR_INVALID;
    if (!g->p)
        goto fail;
    g->w_len = dnnl_memory_desc_get_size(&g->p->wmd);
    e = ASR_ERR_NOMEM;
    if (posix_memalign(&g->w, 64, g->w_len ? g->w_len : 64))
        goto fail;
    if (!(g->bias = calloc((size_t)n, sizeof(float)))) /* zeros if none */
        goto fail;
    if (bias)
        memcpy(g->bias, bias, sizeof(float) * n);
    const float *src = w;
    if (type ==
        ASR_NN_DNNL_I8) { /* symmetric per column: round(w·127/max|w|) as float, reordered */
        if (!(g->wscale = malloc(sizeof(float) * n)) || !(wq = malloc(sizeof(float) * n * k)))
            goto fail;
        for (int j = 0; j < n; j++) {
            float mx = 0;
            for (int t = 0; t < k; t++)
                mx = fmaxf(mx, fabsf(w[(size_t)j * k + t]));
            float inv = mx > 0 ? 127.0f / mx : 0;
            g->wscale[j] = mx > 0 ? mx / 127.0f : 0;
            for (int t = 0; t < k; t++)
                wq[(size_t)j * k + t] = nearbyintf(w[(size_t)j * k + t] * inv);
        }
        src = wq;
    }
    e = reorder_in(src, n, k, &g->p->wmd, g->w);
    if (e != ASR_OK)
        goto fail;
    free(wq);
    *out = g;
    return ASR_OK;
fail:
    free(wq);
    asr_nn_dnnl_destroy(g);
    return e;
}

void asr_nn_dnnl_destroy(asr_nn_dnnl_t *g) {
    if (!g)
        return;
    free(g->w);
    free(g->bias);
    free(g->wscale);
    free(g);
}

size_t asr_nn_dnnl_weight_bytes(const asr_nn_dnnl_t *g) {
    return g->w_len + (g->bias ? sizeof(float) * g->p->n : 0) +
           (g->wscale ? sizeof(float) * g->p->n : 0);
}

static size_t al64(size_t x) { return (x + 63) / 64 * 64; }

size_t asr_nn_dnnl_scratch_bytes(const asr_nn_dnnl_t *g) {
    const prim_t *p = g->p;
    size_t a = (size_t)p->m * p->k, b = al64(p->scratch_bytes);
    if (p->type == ASR_NN_DNNL_BF16)
        return b + al64(a * 2);
    if (p->type == ASR_NN_DNNL_I8)
        return b + al64(a) + al64(sizeof(float) * p->m) + al64(sizeof(int32_t) * p->m * p->n);
    return b;
}

const char *asr_nn_dnnl_impl(const asr_nn_dnnl_t *g) { return g->p->impl; }

static inline uint16_t to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    u += 0x7fff + ((u >> 16) & 1); /* round to nearest even (activations are finite) */
    return (uint16_t)(u >> 16);
}

/* the per-call conversions, split by rows over the pool */
typedef struct {
    const asr_nn_dnnl_t *g;
    const float *a;
    int lda, ldc, phase; /* 0: A in, 1: int8 result out */
    void *src;
    float *ascale, *c;
    const int32_t *acc;
} conv_job_t;

static void conv_task(void *ctx, int task, int n_tasks) {
    conv_job_t *j = ctx;
    const prim_t *p = j->g->p;
    const int m = p->m, n = p->n, k = p->k;
    int i0 = (int)((long)m * task / n_tasks), i1 = (int)((long)m * (task + 1) / n_tasks);
    for (int i = i0; i < i1; i++) {
        const float *x = j->a + (size_t)i * j->lda;
        if (j->phase == 1) {
            const int32_t *acc = j->acc + (size_t)i * n;
            float *c = j->c + (size_t)i * j->ldc, as = j->ascale[i];
            const float *ws = j->g->wscale, *b = j->g->bias;
            if (b)
                for (int t = 0; t < n; t++)
                    c[t] = (float)acc[t] * as * ws[t] + b[t];
            else
                for (int t = 0; t < n; t++)
                    c[t] = (float)acc[t] * as * ws[t];
        } else if (p->type == ASR_NN_DNNL_BF16) {
            uint16_t *h = (uint16_t *)j->src + (size_t)i * k;
            for (int t = 0; t < k; t++)
                h[t] = to_bf16(x[t]);
        } else {
            int8_t *q = (int8_t *)j->src + (size_t)i * k;
            float mx = 0;
            for (int t = 0; t < k; t++)
                mx = fmaxf(mx, fabsf(x[t]));
            float inv = mx > 0 ? 127.0f / mx : 0;
            j->ascale[i] = mx / 127.0f;
            for (int t = 0; t < k; t++)
                q[t] = (int8_t)nearbyintf(x[t] * inv);
        }
    }
}

asr_err_t asr_nn_dnnl_run(asr_pool_t *pool, const asr_nn_dnnl_t *g, const float *a, int lda,
                          float *c, int ldc, void *scratch) {
    const prim_t *p = g->p;
    const int m = p->m, n = p->n, k = p->k;
    int n_threads = asr_pool_n_threads(pool);
    char *sp = scratch, *cur = sp + al64(p->scratch_bytes);
    conv_job_t cj = {g, a, lda, ldc, 0, (void *)a, NULL, c, NULL};
    if (p->type == ASR_NN_DNNL_BF16) {
        cj.src = cur;
        asr_pool_run(pool, n_threads, conv_task, &cj);
    } else if (p->type == ASR_NN_DNNL_I8) {
        cj.src = cur;
        cj.ascale = (float *)(cur + al64((size_t)m * k));
        cj.acc = (int32_t *)((char *)cj.ascale + al64(sizeof(float) * m));
        asr_pool_run(pool, n_threads, conv_task, &cj);
    } else if (lda != k)
        return ASR_ERR_INVALID;
    if (p->type != ASR_NN_DNNL_I8 && ldc != n)
        return ASR_ERR_INVALID;
    void *src = cj.src;
    int32_t *acc = (int32_t *)cj.acc;
    dnnl_memory_desc_t amd, cmd, bmd;
    dnnl_dims_t da = {m, k}, dc = {m, n}, db = {1, n};
    dnnl_memory_desc_init_by_tag(&amd, 2, da, src_dt(p->type), dnnl_ab);
    dnnl_memory_desc_init_by_tag(&cmd, 2, dc, acc ? dnnl_s32 : dnnl_f32, dnnl_ab);
    dnnl_memory_desc_init_by_tag(&bmd, 2, db, dnnl_f32, dnnl_ab);
    const dnnl_memory_desc_t *smd =
        dnnl_primitive_desc_query_md(p->pd, dnnl_query_scratchpad_md, 0);
    dnnl_memory_t mem[5] = {0};
    dnnl_stream_t s = NULL;
    asr_err_t e = ASR_ERR_INVALID;
    int na = 0;
    dnnl_exec_arg_t args[5];
    if (dnnl_memory_create(&mem[0], &amd, g_eng, src) != dnnl_success ||
        dnnl_memory_create(&mem[1], &p->wmd, g_eng, g->w) != dnnl_success ||
        dnnl_memory_create(&mem[2], &cmd, g_eng, acc ? (void *)acc : (void *)c) != dnnl_success ||
        dnnl_memory_create(&mem[3], smd, g_eng, sp) != dnnl_success)
        goto done;
    args[na++] = (dnnl_exec_arg_t){DNNL_ARG_SRC, mem[0]};
    args[na++] = (dnnl_exec_arg_t){DNNL_ARG_WEIGHTS, mem[1]};
    args[na++] = (dnnl_exec_arg_t){DNNL_ARG_DST, mem[2]};
    args[na++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, mem[3]};
    if (!acc) {
        if (dnnl_memory_create(&mem[4], &bmd, g_eng, g->bias) != dnnl_success)
            goto done;
        args[na++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, mem[4]};
    }
    if (dnnl_stream_create(&s, g_eng, dnnl_stream_default_flags) != dnnl_success)
        goto done;
    omp_set_num_threads(p->n_threads); /* its split (a pool of another size: a per-call override) */
    if (dnnl_primitive_execute(p->prim, s, na, args) != dnnl_success ||
        dnnl_stream_wait(s) != dnnl_success)
        goto done;
    if (acc) {
        cj.phase = 1;
        asr_pool_run(pool, n_threads, conv_task, &cj);
    }
    e = ASR_OK;
done:
    if (s)
        dnnl_stream_destroy(s);
    for (int i = 0; i < 5; i++)
        if (mem[i])
            dnnl_memory_destroy(mem[i]);
    return e;
}
