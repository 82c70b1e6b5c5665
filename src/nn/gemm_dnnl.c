/* nn: encoder-shaped GEMMs through oneDNN's matmul (nn.h, asr_nn_dnnl_*).
 *
 * C[m][n] = A[m][k]·W[n][k]ᵀ + bias (then GELU, or added to C: flags), A float32 activations made
 * bfloat16 (or int8 with a scale per row) per call, W packed once (asr_nn_dnnl_pack) into the
 * layout oneDNN's chosen kernel reads (bfloat16, or int8 with a scale per output column: 8-bit
 * where the CPU sums int8 products exactly, 7-bit elsewhere, asr_nn_dnnl_weight_max).
 *
 * Threads: the rows are split into one part per pool thread, and each pool task converts its
 * part's rows and runs a single-threaded primitive on them (oneDNN's parallel() runs a one-thread
 * split inline; bfloat16 A with k ≥ 4n splits the columns instead: pick_prims), so oneDNN never
 * starts OpenMP threads beside asrd's pool: Debian's oneDNN threads with libgomp, whose idle
 * threads spin (GOMP_SPINCOUNT) on the cores the pool's next kernels need
 * (OMP_WAIT_POLICY=passive was measured 342 -> 318 ms per base window for that reason alone). Where
 * the parts' primitives would want differently packed weights, one single-threaded primitive runs
 * all m rows (OpenMP teams are not used at all: see pick_prims).
 *
 * Primitives are cached per (m, n, k, type, flags, threads), created at pack time and shared by
 * every handle of that shape (a small locked cache; executing a primitive is thread-safe). The
 * scratchpads are the caller's (user mode), one per part: asr_nn_dnnl_scratch_bytes says how much.
 * The kernel set follows asr_isa()'s level (ASRD_ISA): oneDNN's max ISA is capped to it once,
 * before the first primitive. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <oneapi/dnnl/dnnl.h>

#include "nn/isa.h"
#include "nn/kern.h"
#include "nn/nn.h"

/* libgomp: oneDNN's runtime on Debian. A primitive sizes its thread split when it is created
 * (omp_get_max_threads then), so creation and each run set the calling thread's team size. */
void omp_set_num_threads(int n);
int omp_get_max_threads(void);

#define CACHE_N 128

typedef struct {
    int m, n, k, type, flags, n_threads;
    dnnl_primitive_t prim;
    const_dnnl_primitive_desc_t pd;
    dnnl_memory_desc_t amd, wmd, bmd, cmd, smd; /* src, packed weights, bias, dst, scratchpad */
    size_t scratch_bytes;                       /* oneDNN's scratchpad */
    char impl[64];
} prim_t;

struct asr_nn_dnnl {
    const prim_t *p, *p_last; /* a part's primitive, the last part's (may be p) */
    int m, n, k, type, flags;
    int n_parts, rows;    /* parts of `rows` rows, the last one m - (n_parts - 1)·rows */
    int cols;             /* or, where > 0, parts of `cols` columns (each all m rows: pick_prims) */
    void *w;              /* packed weights (64-byte aligned; column parts one after another) */
    size_t w_len, w_part; /* its bytes, a column part's */
    float *bias;          /* [n] (zeros if none) */
    float *wscale;        /* int8: [n] the column scales */
};

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static dnnl_engine_t g_eng;
static prim_t g_cache[CACHE_N];
static int g_n;

static asr_err_t engine_init(void) {
    if (g_eng)
        return ASR_OK;
    const asr_isa_t *t = asr_isa();
    /* the level, and its VNNI only where asr_isa() has it (ASRD_ISA=LEVEL,-vnni takes it away) */
    dnnl_cpu_isa_t cap =
        t->level >= ASR_ISA_AMX      ? dnnl_cpu_isa_all
        : t->level >= ASR_ISA_AVX512 ? (!t->avx512_vnni  ? dnnl_cpu_isa_avx512_core
                                        : t->avx512_bf16 ? dnnl_cpu_isa_avx512_core_bf16
                                                         : dnnl_cpu_isa_avx512_core_vnni)
        : t->level >= ASR_ISA_AVX2   ? (t->avx_vnni ? dnnl_cpu_isa_avx2_vnni : dnnl_cpu_isa_avx2)
                                     : dnnl_cpu_isa_sse41;
    dnnl_set_max_cpu_isa(cap); /* fails harmlessly once a primitive exists */
    dnnl_set_verbose(0);
    return dnnl_engine_create(&g_eng, dnnl_cpu, 0) == dnnl_success ? ASR_OK : ASR_ERR_INVALID;
}

static dnnl_data_type_t src_dt(int type) {
    return type == ASR_NN_DNNL_BF16 ? dnnl_bf16 : type == ASR_NN_DNNL_I8 ? dnnl_s8 : dnnl_f32;
}

/* int8 results are int32 sums that the conversion scales: its flags apply there, not in oneDNN;
 * bfloat16 in or out is for the bfloat16 type only */
static int prim_flags(int type, int flags) {
    if (type != ASR_NN_DNNL_BF16)
        flags &= ~(ASR_NN_DNNL_SRC_BF16 | ASR_NN_DNNL_DST_BF16);
    return type == ASR_NN_DNNL_I8 ? 0 : flags;
}

/* the cached primitive for a shape, created on first use (g_mu held) */
static const prim_t *prim_get(int m, int n, int k, int type, int flags, int n_threads) {
    flags = prim_flags(type, flags);
    for (int i = 0; i < g_n; i++)
        if (g_cache[i].m == m && g_cache[i].n == n && g_cache[i].k == k &&
            g_cache[i].type == type && g_cache[i].flags == flags &&
            g_cache[i].n_threads == n_threads)
            return &g_cache[i];
    if (g_n == CACHE_N || engine_init() != ASR_OK)
        return NULL;
    prim_t *p = &g_cache[g_n];
    memset(p, 0, sizeof *p);
    dnnl_memory_desc_t w;
    dnnl_dims_t da = {m, k}, dw = {k, n}, db = {1, n}, dc = {m, n};
    int i8 = type == ASR_NN_DNNL_I8;
    dnnl_memory_desc_init_by_tag(&p->amd, 2, da, src_dt(type), dnnl_ab);
    dnnl_memory_desc_init_by_tag(&w, 2, dw, src_dt(type), dnnl_format_tag_any);
    dnnl_memory_desc_init_by_tag(&p->bmd, 2, db, dnnl_f32, dnnl_ab);
    dnnl_memory_desc_init_by_tag(&p->cmd, 2, dc,
                                 i8                             ? dnnl_s32
                                 : flags & ASR_NN_DNNL_DST_BF16 ? dnnl_bf16
                                                                : dnnl_f32,
                                 dnnl_ab);
    dnnl_matmul_desc_t md;
    if (dnnl_matmul_desc_init(&md, &p->amd, &w, i8 ? NULL : &p->bmd, &p->cmd) != dnnl_success)
        return NULL;
    dnnl_primitive_attr_t attr;
    dnnl_post_ops_t po;
    dnnl_primitive_attr_create(&attr);
    dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    dnnl_post_ops_create(&po);
    if (flags & ASR_NN_DNNL_ACC)
        dnnl_post_ops_append_sum(po, 1.0f);
    if (flags & ASR_NN_DNNL_GELU)
        dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_gelu_erf, 0.0f, 0.0f);
    dnnl_primitive_attr_set_post_ops(attr, po);
    dnnl_post_ops_destroy(po);
    dnnl_primitive_desc_t pd = NULL;
    int was = omp_get_max_threads();
    omp_set_num_threads(n_threads);
    dnnl_status_t st = dnnl_primitive_desc_create(&pd, &md, attr, g_eng, NULL);
    omp_set_num_threads(was);
    dnnl_primitive_attr_destroy(attr);
    if (st != dnnl_success)
        return NULL;
    if (dnnl_primitive_create(&p->prim, pd) != dnnl_success) {
        dnnl_primitive_desc_destroy(pd);
        return NULL;
    }
    dnnl_primitive_get_primitive_desc(p->prim, &p->pd);
    dnnl_primitive_desc_destroy(pd);
    p->wmd = *dnnl_primitive_desc_query_md(p->pd, dnnl_query_weights_md, 0);
    p->smd = *dnnl_primitive_desc_query_md(p->pd, dnnl_query_scratchpad_md, 0);
    p->scratch_bytes = dnnl_memory_desc_get_size(&p->smd);
    const char *impl = NULL;
    dnnl_primitive_desc_query(p->pd, dnnl_query_impl_info_str, 0, &impl);
    snprintf(p->impl, sizeof p->impl, "%s", impl ? impl : "?");
    p->m = m, p->n = n, p->k = k, p->type = type, p->flags = flags, p->n_threads = n_threads;
    g_n++;
    return p;
}

/* dst (any layout of md) from a float32 or int8 (dt) [n][k] matrix (oneDNN's reorder) */
static asr_err_t reorder_in(const void *wf, dnnl_data_type_t dt, int n, int k,
                            const dnnl_memory_desc_t *md, void *dst) {
    dnnl_memory_desc_t user;
    dnnl_dims_t dw = {k, n};
    dnnl_memory_desc_init_by_tag(&user, 2, dw, dt, dnnl_ba);
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
    /* on the calling thread: an OpenMP team would spin on the cores after it (gemm_dnnl.c's top) */
    int was = omp_get_max_threads();
    omp_set_num_threads(1);
    if (dnnl_primitive_execute(r, s, 2, args) == dnnl_success &&
        dnnl_stream_wait(s) == dnnl_success)
        e = ASR_OK;
    omp_set_num_threads(was);
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

/* the rows of each part: one part per thread, at least 16 rows each */
static void split_rows(int m, int n_threads, int *n_parts, int *rows) {
    int parts = n_threads < 1 ? 1 : n_threads;
    if (parts > (m + 15) / 16)
        parts = (m + 15) / 16;
    if (parts < 1)
        parts = 1;
    *rows = (m + parts - 1) / parts;
    *n_parts = (m + *rows - 1) / *rows;
}

/* the handle's primitives (g_mu held): single-threaded ones per part (parts of unequal rows whose
 * primitives would pack the weights differently: one part) */
static int pick_prims(asr_nn_dnnl_t *g, int n_threads) {
    /* bfloat16 A as is, k ≥ 4n (ffn2): one part of the columns per thread, every row, each with
     * its share of W (n/threads × k: L2-sized for base, where a part of the rows reads all of W)
     * into a dense m × cols result of its own (oneDNN 2.6 has no AMX kernel for C's rows wider
     * than n), then copied or added (ASR_NN_DNNL_ACC) into C's columns: base's ffn2 on 2 threads
     * (AMX) 2.0-2.1 -> 1.6 ms, the copy included; k = 3n gained 5%, k ≤ n nothing */
    const int acc = (g->flags & ASR_NN_DNNL_ACC) != 0, hc = (g->flags & ASR_NN_DNNL_DST_BF16) != 0;
    if (g->type == ASR_NN_DNNL_BF16 && (g->flags & ASR_NN_DNNL_SRC_BF16) && !(acc && hc) &&
        n_threads > 1 && g->k >= 4 * g->n && g->n % (16 * n_threads) == 0 && g->m >= 16) {
        g->n_parts = n_threads, g->rows = g->m, g->cols = g->n / n_threads;
        g->p = g->p_last = prim_get(g->m, g->cols, g->k, g->type, g->flags & ~ASR_NN_DNNL_ACC, 1);
        if (g->p)
            return 1;
        g->cols = 0;
    }
    split_rows(g->m, n_threads, &g->n_parts, &g->rows);
    if (g->n_parts > 1) {
        int last = g->m - (g->n_parts - 1) * g->rows;
        g->p = prim_get(g->rows, g->n, g->k, g->type, g->flags, 1);
        g->p_last = last == g->rows ? g->p : prim_get(last, g->n, g->k, g->type, g->flags, 1);
        if (g->p && g->p_last && dnnl_memory_desc_equal(&g->p->wmd, &g->p_last->wmd))
            return 1;
    }
    /* one part, one thread: a primitive run on OpenMP threads (the older way, oneDNN's team of
     * the pool's size) gave wrong results now and then in test_gemm_dnnl (m = 10, 2 threads:
     * rows left unwritten), cause not found; a few rows (m < 32) lose nothing on one thread */
    (void)n_threads;
    g->n_parts = 1, g->rows = g->m;
    g->p = g->p_last = prim_get(g->m, g->n, g->k, g->type, g->flags, 1);
    return g->p != NULL;
}

int asr_nn_dnnl_weight_max(void) { return asr_isa_int8_dot() ? 127 : 63; }

/* int8 weights, symmetric per column (a row of w [n][k]): max|w| ↦ qmax */
static void quantize_w(const float *w, int n, int k, int qmax, int8_t *q, float *scale) {
    if (qmax == 127) {
        asr_nn_convert_rows(w, n, k, ASR_W_I8, q, scale);
        return;
    }
    for (int j = 0; j < n; j++)
        scale[j] = asr__nn_quantize_row_max(w + (size_t)j * k, k, qmax, q + (size_t)j * k, NULL);
}

asr_err_t asr_nn_dnnl_pack_ex(int type, int flags, const float *w, const float *bias, int m, int n,
                              int k, int n_threads, asr_nn_dnnl_t **out) {
    *out = NULL;
    const asr_isa_t *isa = asr_isa();
    /* int8 below AVX2: not measured; bfloat16 below AVX-512: no matmul in oneDNN 2.6 */
    if ((type == ASR_NN_DNNL_I8 && isa->level < ASR_ISA_AVX2) ||
        (type == ASR_NN_DNNL_BF16 && isa->level < ASR_ISA_AVX512) || m < 1 || n < 1 || k < 1 ||
        (type != ASR_NN_DNNL_BF16 && (flags & (ASR_NN_DNNL_SRC_BF16 | ASR_NN_DNNL_DST_BF16))))
        return ASR_ERR_INVALID;
    asr_nn_dnnl_t *g = calloc(1, sizeof *g);
    int8_t *wq = NULL;
    if (!g)
        return ASR_ERR_NOMEM;
    g->m = m, g->n = n, g->k = k, g->type = type, g->flags = flags;
    pthread_mutex_lock(&g_mu);
    int ok = pick_prims(g, n_threads > 0 ? n_threads : 1);
    pthread_mutex_unlock(&g_mu);
    asr_err_t e = ASR_ERR_INVALID;
    if (!ok)
        goto fail;
    g->w_part = dnnl_memory_desc_get_size(&g->p->wmd);
    g->w_len = g->cols ? g->w_part * (size_t)g->n_parts : g->w_part;
    e = ASR_ERR_NOMEM;
    if (posix_memalign(&g->w, 64, g->w_len ? g->w_len : 64))
        goto fail;
    if (!(g->bias = calloc((size_t)n, sizeof(float)))) /* zeros if none */
        goto fail;
    if (bias)
        memcpy(g->bias, bias, sizeof(float) * n);
    if (type == ASR_NN_DNNL_I8) {
        if (!(g->wscale = malloc(sizeof(float) * n)) || !(wq = malloc((size_t)n * k)))
            goto fail;
        quantize_w(w, n, k, asr_nn_dnnl_weight_max(), wq, g->wscale);
        e = reorder_in(wq, dnnl_s8, n, k, &g->p->wmd, g->w);
    } else if (g->cols) { /* rows [c·cols, (c+1)·cols) of w: column part c */
        e = ASR_OK;
        for (int c = 0; c < g->n_parts && e == ASR_OK; c++)
            e = reorder_in(w + (size_t)c * g->cols * k, dnnl_f32, g->cols, k, &g->p->wmd,
                           (char *)g->w + (size_t)c * g->w_part);
    } else {
        e = reorder_in(w, dnnl_f32, n, k, &g->p->wmd, g->w);
    }
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

asr_err_t asr_nn_dnnl_pack(int type, const float *w, const float *bias, int m, int n, int k,
                           int n_threads, asr_nn_dnnl_t **out) {
    return asr_nn_dnnl_pack_ex(type, 0, w, bias, m, n, k, n_threads, out);
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
    return g->w_len + (g->bias ? sizeof(float) * g->n : 0) + (g->wscale ? sizeof(float) * g->n : 0);
}

static size_t al64(size_t x) { return (x + 63) / 64 * 64; }

/* the scratch's parts: converted A, int8's row scales and int32 sums, then a scratchpad per part */
typedef struct {
    size_t a, scale, acc, pad, pad_each, part_c, part_c_each, total;
} layout_t;

static layout_t scratch_layout(const asr_nn_dnnl_t *g) {
    layout_t L = {0};
    size_t mk = (size_t)g->m * g->k, cur = 0;
    L.a = cur;
    if (g->type == ASR_NN_DNNL_BF16 && !(g->flags & ASR_NN_DNNL_SRC_BF16))
        cur += al64(mk * 2);
    else if (g->type == ASR_NN_DNNL_I8)
        cur += al64(mk);
    L.scale = cur;
    L.acc = cur += g->type == ASR_NN_DNNL_I8 ? al64(sizeof(float) * g->m) : 0;
    L.pad = cur += g->type == ASR_NN_DNNL_I8 ? al64(sizeof(int32_t) * g->m * g->n) : 0;
    L.pad_each = al64(g->p->scratch_bytes > g->p_last->scratch_bytes ? g->p->scratch_bytes
                                                                     : g->p_last->scratch_bytes);
    L.part_c = cur += L.pad_each * (size_t)g->n_parts;
    L.part_c_each =
        g->cols
            ? al64((size_t)g->m * g->cols * ((g->flags & ASR_NN_DNNL_DST_BF16) ? 2 : sizeof(float)))
            : 0;
    L.total = cur + L.part_c_each * (size_t)g->n_parts;
    return L;
}

size_t asr_nn_dnnl_scratch_bytes(const asr_nn_dnnl_t *g) { return scratch_layout(g).total; }

const char *asr_nn_dnnl_impl(const asr_nn_dnnl_t *g) { return g->p->impl; }

int asr_nn_dnnl_flags(const asr_nn_dnnl_t *g) { return g->flags; }

int asr_nn_dnnl_splits_columns(const asr_nn_dnnl_t *g) { return g->cols > 0; }

static inline uint16_t to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    u += 0x7fff + ((u >> 16) & 1); /* round to nearest even (activations are finite) */
    return (uint16_t)(u >> 16);
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
/* the same rounding (VCVTNE2PS2BF16: nearest even) */
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) static void
row_bf16_avx512(const float *x, int k, uint16_t *h) {
    int t = 0;
    for (; t + 32 <= k; t += 32)
        _mm512_storeu_si512(h + t, (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(x + t + 16),
                                                                _mm512_loadu_ps(x + t)));
    for (; t < k; t += 16) {
        __mmask16 mk = k - t >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (k - t)) - 1u);
        _mm256_mask_storeu_epi16(h + t, mk,
                                 (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(mk, x + t)));
    }
}
#define HAVE_X86_SIMD 1
#endif

static void row_bf16(const float *x, int k, uint16_t *h) {
#ifdef HAVE_X86_SIMD
    const asr_isa_t *t = asr_isa();
    if (t->level >= ASR_ISA_AVX512 && t->avx512_bf16) {
        row_bf16_avx512(x, k, h);
        return;
    }
#endif
    for (int i = 0; i < k; i++)
        h[i] = to_bf16(x[i]);
}

typedef struct {
    const asr_nn_dnnl_t *g;
    const void *a; /* float32, or bfloat16 (ASR_NN_DNNL_SRC_BF16) */
    int lda, ldc;
    void *c; /* float32, bfloat16 (ASR_NN_DNNL_DST_BF16) */
    unsigned char *scratch;
    layout_t L;
    atomic_int failed;
} run_job_t;

/* rows [i0, i1) of A into the scratch's converted copy */
static void convert_in(run_job_t *j, int i0, int i1) {
    const asr_nn_dnnl_t *g = j->g;
    const int k = g->k;
    if (g->flags & ASR_NN_DNNL_SRC_BF16)
        return;
    for (int i = i0; i < i1; i++) {
        const float *x = (const float *)j->a + (size_t)i * j->lda;
        if (g->type == ASR_NN_DNNL_BF16) {
            row_bf16(x, k, (uint16_t *)(j->scratch + j->L.a) + (size_t)i * k);
        } else if (g->type == ASR_NN_DNNL_I8) {
            asr_qact_t q = {(int8_t *)(j->scratch + j->L.a) + (size_t)i * k, NULL,
                            (float *)(j->scratch + j->L.scale) + i, k};
            asr__nn_quantize_rows(x, j->lda, 1, k, &q);
        }
    }
}

#ifdef HAVE_X86_SIMD
/* out_row 16 at a time (the same operations in the same order) */
__attribute__((target("avx512f"))) static void out_row_avx512(const int32_t *acc, float as,
                                                              const float *ws, const float *b,
                                                              float *c, int n, int accum) {
    const __m512 av = _mm512_set1_ps(as);
    for (int t = 0; t < n; t += 16) {
        __mmask16 mk = n - t >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - t)) - 1u);
        __m512 x = _mm512_cvtepi32_ps(_mm512_maskz_loadu_epi32(mk, acc + t));
        x = _mm512_mul_ps(_mm512_mul_ps(x, av), _mm512_maskz_loadu_ps(mk, ws + t));
        x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(mk, b + t));
        if (accum)
            x = _mm512_add_ps(_mm512_maskz_loadu_ps(mk, c + t), x);
        _mm512_mask_storeu_ps(c + t, mk, x);
    }
}

/* 8 at a time (int8 at the AVX2 level runs on AVX-VNNI CPUs), the same operations; returns where
 * out_row's scalar tail starts */
__attribute__((target("avx2"))) static int out_row_avx2(const int32_t *acc, float as,
                                                        const float *ws, const float *b, float *c,
                                                        int n, int accum) {
    const __m256 av = _mm256_set1_ps(as);
    int t = 0;
    for (; t + 8 <= n; t += 8) {
        __m256 x = _mm256_cvtepi32_ps(_mm256_loadu_si256((const __m256i *)(const void *)(acc + t)));
        x = _mm256_mul_ps(_mm256_mul_ps(x, av), _mm256_loadu_ps(ws + t));
        x = _mm256_add_ps(x, _mm256_loadu_ps(b + t));
        if (accum)
            x = _mm256_add_ps(_mm256_loadu_ps(c + t), x);
        _mm256_storeu_ps(c + t, x);
    }
    return t;
}
#endif

/* c[t] (+)= acc[t]·as·ws[t] + b[t] for one row of n */
static void out_row(const int32_t *acc, float as, const float *ws, const float *b, float *c, int n,
                    int accum) {
    int t = 0;
#ifdef HAVE_X86_SIMD
    if (asr_isa()->level >= ASR_ISA_AVX512) {
        out_row_avx512(acc, as, ws, b, c, n, accum);
        return;
    }
    if (asr_isa()->level >= ASR_ISA_AVX2)
        t = out_row_avx2(acc, as, ws, b, c, n, accum);
#endif
    if (accum)
        for (; t < n; t++)
            c[t] += (float)acc[t] * as * ws[t] + b[t];
    else
        for (; t < n; t++)
            c[t] = (float)acc[t] * as * ws[t] + b[t];
}

/* int8: rows [i0, i1) of C from the int32 sums (scales, bias, then the flags) */
static void convert_out(run_job_t *j, int i0, int i1) {
    const asr_nn_dnnl_t *g = j->g;
    const int n = g->n, accum = (g->flags & ASR_NN_DNNL_ACC) != 0;
    for (int i = i0; i < i1; i++) {
        const int32_t *acc = (const int32_t *)(j->scratch + j->L.acc) + (size_t)i * n;
        float *c = (float *)j->c + (size_t)i * j->ldc;
        float as = ((const float *)(j->scratch + j->L.scale))[i];
        out_row(acc, as, g->wscale, g->bias, c, n, accum);
        if (g->flags & ASR_NN_DNNL_GELU)
            asr_nn_gelu_fast(c, (size_t)n);
    }
}

/* one primitive on rows [i0, i0 + p->m) (of column part `part` where the handle splits columns) */
static int exec_part(run_job_t *j, const prim_t *p, int i0, int part) {
    const asr_nn_dnnl_t *g = j->g;
    const int j0 = g->cols ? part * g->cols : 0; /* its first column */
    const void *src;
    if (g->type == ASR_NN_DNNL_F32)
        src = (const float *)j->a + (size_t)i0 * j->lda;
    else if (g->flags & ASR_NN_DNNL_SRC_BF16)
        src = (const uint16_t *)j->a + (size_t)i0 * j->lda;
    else
        src = j->scratch + j->L.a + (size_t)i0 * g->k * (g->type == ASR_NN_DNNL_BF16 ? 2 : 1);
    void *dst;
    if (g->type == ASR_NN_DNNL_I8)
        dst = (int32_t *)(j->scratch + j->L.acc) + (size_t)i0 * g->n;
    else if (g->cols)
        dst = j->scratch + j->L.part_c + (size_t)part * j->L.part_c_each;
    else if (g->flags & ASR_NN_DNNL_DST_BF16)
        dst = (uint16_t *)j->c + (size_t)i0 * j->ldc;
    else
        dst = (float *)j->c + (size_t)i0 * j->ldc;
    void *w = (char *)g->w + (g->cols ? (size_t)part * g->w_part : 0); /* its weights */
    void *sp = j->scratch + j->L.pad + (size_t)part * j->L.pad_each;
    /* oneDNN's memory objects and stream per call (small allocations: a thread-local cache of
     * them pointed at each call's buffers was tried and gave wrong results now and then in
     * test_gemm_dnnl, cause not found) */
    dnnl_memory_t mem[5] = {0};
    dnnl_stream_t s = NULL;
    dnnl_exec_arg_t args[5];
    int na = 0, ok = 0;
    if (dnnl_memory_create(&mem[0], &p->amd, g_eng, (void *)src) != dnnl_success ||
        dnnl_memory_create(&mem[1], &p->wmd, g_eng, w) != dnnl_success ||
        dnnl_memory_create(&mem[2], &p->cmd, g_eng, dst) != dnnl_success ||
        dnnl_memory_create(&mem[3], &p->smd, g_eng, sp) != dnnl_success)
        goto done;
    args[na++] = (dnnl_exec_arg_t){DNNL_ARG_SRC, mem[0]};
    args[na++] = (dnnl_exec_arg_t){DNNL_ARG_WEIGHTS, mem[1]};
    args[na++] = (dnnl_exec_arg_t){DNNL_ARG_DST, mem[2]};
    args[na++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, mem[3]};
    if (g->type != ASR_NN_DNNL_I8) {
        if (dnnl_memory_create(&mem[4], &p->bmd, g_eng, g->bias + j0) != dnnl_success)
            goto done;
        args[na++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, mem[4]};
    }
    if (dnnl_stream_create(&s, g_eng, dnnl_stream_default_flags) != dnnl_success)
        goto done;
    omp_set_num_threads(p->n_threads); /* its split, on this thread */
    ok = dnnl_primitive_execute(p->prim, s, na, args) == dnnl_success &&
         dnnl_stream_wait(s) == dnnl_success;
done:
    if (s)
        dnnl_stream_destroy(s);
    for (int i = 0; i < 5; i++)
        if (mem[i])
            dnnl_memory_destroy(mem[i]);
    return ok;
}

/* a column part's dense result into C's columns [part·cols, (part + 1)·cols): copied, or added
 * (ASR_NN_DNNL_ACC; float32 C) */
static void place_cols(run_job_t *j, int part) {
    const asr_nn_dnnl_t *g = j->g;
    const int m = g->m, w = g->cols, j0 = part * w;
    const size_t es = (g->flags & ASR_NN_DNNL_DST_BF16) ? 2 : sizeof(float);
    const unsigned char *src = j->scratch + j->L.part_c + (size_t)part * j->L.part_c_each;
    for (int i = 0; i < m; i++) {
        unsigned char *c = (unsigned char *)j->c + ((size_t)i * j->ldc + j0) * es;
        const unsigned char *x = src + (size_t)i * w * es;
        if (g->flags & ASR_NN_DNNL_ACC)
            asr_nn_add((float *)(void *)c, (const float *)(const void *)x, (size_t)w);
        else
            memcpy(c, x, (size_t)w * es);
    }
}

/* part `task`: its rows converted, its primitive, its int8 results; or its columns (bfloat16 A:
 * nothing to convert) */
static void part_task(void *ctx, int task, int n_tasks) {
    (void)n_tasks;
    run_job_t *j = ctx;
    const asr_nn_dnnl_t *g = j->g;
    if (g->cols) {
        if (!exec_part(j, g->p, 0, task))
            atomic_store(&j->failed, 1);
        else
            place_cols(j, task);
        return;
    }
    int i0 = task * g->rows, i1 = task == g->n_parts - 1 ? g->m : i0 + g->rows;
    const prim_t *p = i1 - i0 == g->rows ? g->p : g->p_last;
    convert_in(j, i0, i1);
    if (!exec_part(j, p, i0, task))
        atomic_store(&j->failed, 1);
    else if (g->type == ASR_NN_DNNL_I8)
        convert_out(j, i0, i1);
}

/* the single-primitive way: conversions over the pool, oneDNN on OpenMP threads */
static void conv_in_task(void *ctx, int task, int n_tasks) {
    run_job_t *j = ctx;
    int m = j->g->m;
    convert_in(j, (int)((long)m * task / n_tasks), (int)((long)m * (task + 1) / n_tasks));
}

static void conv_out_task(void *ctx, int task, int n_tasks) {
    run_job_t *j = ctx;
    int m = j->g->m;
    convert_out(j, (int)((long)m * task / n_tasks), (int)((long)m * (task + 1) / n_tasks));
}

asr_err_t asr_nn_dnnl_run_ex(asr_pool_t *pool, const asr_nn_dnnl_t *g, const void *a, int lda,
                             void *c, int ldc, void *scratch) {
    if (((g->type == ASR_NN_DNNL_F32 || (g->flags & ASR_NN_DNNL_SRC_BF16)) && lda != g->k) ||
        (g->type != ASR_NN_DNNL_I8 && ldc != g->n))
        return ASR_ERR_INVALID;
    run_job_t j = {g, a, lda, ldc, c, scratch, scratch_layout(g), 0};
    if (g->n_parts > 1) {
        asr_pool_run(pool, g->n_parts, part_task, &j);
    } else {
        int nt = asr_pool_n_threads(pool);
        asr_pool_run(pool, nt, conv_in_task, &j);
        if (!exec_part(&j, g->p, 0, 0))
            return ASR_ERR_INVALID;
        if (g->type == ASR_NN_DNNL_I8)
            asr_pool_run(pool, nt, conv_out_task, &j);
    }
    return atomic_load(&j.failed) ? ASR_ERR_INVALID : ASR_OK;
}

asr_err_t asr_nn_dnnl_run(asr_pool_t *pool, const asr_nn_dnnl_t *g, const float *a, int lda,
                          float *c, int ldc, void *scratch) {
    if (g->flags & (ASR_NN_DNNL_SRC_BF16 | ASR_NN_DNNL_DST_BF16))
        return ASR_ERR_INVALID;
    return asr_nn_dnnl_run_ex(pool, g, a, lda, c, ldc, scratch);
}
