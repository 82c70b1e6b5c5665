/* gpu: the decoder's attention kernels: kv_append, attn_self (over each row's KV cache),
 * attn_cross (over its stream's encoder K/V) and attn_cross_scores (raw scores of one head).
 * Semantics are dev.h's. Rows (asr_dev_row_t, a device array) each carry their own cache pointers
 * and length, so one launch serves a step of many sequences of many streams (continuous batching)
 * or the tokens of a prompt block (rows sharing one cache with len = pos0+i+1) alike.
 *
 * Design. One 128-thread block per (row, head): grid (n, H). The block walks the row's keys in
 * chunks of 128 with an online softmax in float32 (running max m and sum l, the output rescaled by
 * exp(m_old - m_new) when the max grows), so a row of any length runs in fixed shared memory:
 *   1. scores: s_j = (scale·q)·k_j for the chunk's keys into shared memory (-inf past the end);
 *   2. block max and sum of exp(s_j - m_new) (exact expf), p_j kept in shared memory;
 *   3. values: each thread accumulates its channels of Σ p_j v_j over its share of the keys;
 *   at the end the per-group partial sums are added in shared memory and divided by l.
 * Two paths compute the same thing:
 *   fast     dh == 64 with 16-byte aligned K/V rows (base, layer offset and leading dimension):
 *            64/V lanes read a key's 64 elements as 16-byte vectors (V = 8 for 16-bit types, 4 for
 *            float32), so a warp reads whole 128-byte (256-byte) rows: fully coalesced; each lane
 *            keeps V channels of the output. Scores reduce over those lanes with 3-4 shuffles.
 *            This is the path every Whisper model takes (dh = 64); cross-attention reads the
 *            stream's whole K/V per step and is bandwidth-bound, so coalescing is what matters.
 *   generic  any dh <= 128 and any alignment: a warp per key, lanes over channels (c = lane +
 *            32 i), a 5-shuffle reduction per key; lanes keep 4 output channels.
 * The choice is made per block from the row's own pointers (uniform, no divergence). Keys past
 * the row's length are never read. len == 0 (or n_audio == 0) writes zeros.
 * Cross-attention of few rows (rows × heads < 2 blocks per multiprocessor: one stream, beam 1) on
 * sm_90 splits each (row, head) over a cluster of 2-8 blocks (frames in contiguous shares of at
 * least 128); each block leaves its partial (m, l, o) in shared memory and rank 0 merges them
 * through distributed shared memory. Elsewhere (sm_80/89, a failed cluster launch, or
 * ASRD_CUDA_ATTN_CROSS=single, for tests) one block per (row, head) runs as above.
 * attn_cross_scores runs the same scores phase with grid (chunks of 128 frames, n) and writes
 * them as float32. kv_append: one block per row, threads over the 2·dim elements. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cooperative_groups.h>

#include "gpu/kernels_int.cuh"

#define DEC_THREADS 128 /* == keys per chunk: the softmax gives each thread one key */
#define DEC_CHUNK 128
#define DEC_MAX_DH 128
static_assert(DEC_MAX_DH == DEC_THREADS, "the cluster merge gives each thread one channel");

/* Where key/value j of one (row, head) lives: positions below `split` in (k0, v0) (the shared
 * prompt), the rest in (k1, v1); ld elements between positions. Pointers include the layer and
 * head offsets. */
template <typename T> struct KvSrc {
    const T *k0, *v0, *k1, *v1;
    int split;
    size_t ld;
    __device__ __forceinline__ const T *key(int j) const {
        return (j < split ? k0 : k1) + (size_t)j * ld;
    }
    __device__ __forceinline__ const T *val(int j) const {
        return (j < split ? v0 : v1) + (size_t)j * ld;
    }
};

__device__ __forceinline__ bool aligned16(const void *p) { return ((uintptr_t)p & 15u) == 0; }

template <typename T> __device__ __forceinline__ bool kv_fast(const KvSrc<T> &s, int dh) {
    const int ve = Vec16<T>::n;
    return dh == 64 && s.ld % ve == 0 && aligned16(s.k1) && aligned16(s.v1) &&
           (s.split <= 0 || (aligned16(s.k0) && aligned16(s.v0)));
}

/* Phase 1: sp[jj] = sq·k_{c0+jj} for jj < DEC_CHUNK (-inf where c0+jj >= nk). Ends with a
 * barrier. */
template <typename T, bool FAST>
__device__ __forceinline__ void chunk_scores(const KvSrc<T> &s, const float *sq, int dh, int c0,
                                             int nk, float *sp) {
    if (FAST) {
        const int ve = Vec16<T>::n, lpk = 64 / ve, groups = DEC_THREADS / lpk;
        int sub = threadIdx.x % lpk, g = threadIdx.x / lpk;
        float qv[Vec16<T>::n]; /* this lane's channels of q, in registers */
#pragma unroll
        for (int i = 0; i < ve; i++)
            qv[i] = sq[sub * ve + i];
#pragma unroll 8
        for (int jj = g; jj < DEC_CHUNK; jj += groups) {
            int j = c0 + jj;
            float acc = 0.f;
            if (j < nk) {
                float e[Vec16<T>::n];
                ld16_f(s.key(j) + sub * ve, e);
#pragma unroll
                for (int i = 0; i < ve; i++)
                    acc += e[i] * qv[i];
            }
#pragma unroll
            for (int o = lpk / 2; o > 0; o >>= 1)
                acc += __shfl_xor_sync(0xffffffffu, acc, o);
            if (sub == 0)
                sp[jj] = j < nk ? acc : -INFINITY;
        }
    } else {
        int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
        for (int jj = warp; jj < DEC_CHUNK; jj += DEC_THREADS / 32) {
            int j = c0 + jj;
            float acc = 0.f;
            if (j < nk) {
                const T *kr = s.key(j);
                for (int c = lane; c < dh; c += 32)
                    acc += ld_f(kr + c) * sq[c];
            }
            acc = warp_sum(acc);
            if (lane == 0)
                sp[jj] = j < nk ? acc : -INFINITY;
        }
    }
    __syncthreads();
}

/* The shared memory of a decoder attention block (one instance per kernel, whichever path). */
struct DecSmem {
    float sq[DEC_MAX_DH]; /* scale·q */
    float sp[DEC_CHUNK];  /* the chunk's scores, then probabilities */
    float red_max[DEC_THREADS / 32], red_sum[DEC_THREADS / 32];
    float sacc[16][DEC_MAX_DH]; /* the groups' partial outputs (16 groups at most) */
    float o[DEC_MAX_DH];        /* the result: Σ_j exp(s_j - m) v_j (not divided by l) */
    float m, l;                 /* its max and sum of exp(s_j - m) (m = -inf, l = 0: no key) */
};

/* sq = scale · q[0..dh) (then a barrier). */
template <typename T>
__device__ __forceinline__ void load_q(const T *q, float scale, int dh, DecSmem &sm) {
    for (int c = threadIdx.x; c < dh; c += DEC_THREADS)
        sm.sq[c] = scale * ld_f(q + c);
    __syncthreads();
}

/* The unnormalised attention of sm.sq over keys [kb, ke) into sm.o, sm.m, sm.l (visible to the
 * whole block on return). Called by the whole block. */
template <typename T, bool FAST>
__device__ void attend_part(const KvSrc<T> &s, int dh, int kb, int ke, DecSmem &sm) {
    float *sq = sm.sq, *sp = sm.sp, *red_max = sm.red_max, *red_sum = sm.red_sum;
    float(*sacc)[DEC_MAX_DH] = sm.sacc;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int ve = Vec16<T>::n, lpk = 64 / ve, groups = DEC_THREADS / lpk;

    float m = -INFINITY, l = 0.f;
    float acc[FAST ? Vec16<T>::n : 4];
#pragma unroll
    for (int i = 0; i < (FAST ? ve : 4); i++)
        acc[i] = 0.f;

    for (int c0 = kb; c0 < ke; c0 += DEC_CHUNK) {
        chunk_scores<T, FAST>(s, sq, dh, c0, ke, sp);
        /* softmax bookkeeping: thread tid owns key c0+tid */
        float sv = sp[tid];
        float cm = warp_max(sv);
        if (lane == 0)
            red_max[warp] = cm;
        __syncthreads();
        cm = red_max[0];
#pragma unroll
        for (int w = 1; w < DEC_THREADS / 32; w++)
            cm = fmaxf(cm, red_max[w]);
        float m_new = fmaxf(m, cm); /* finite: the chunk has at least one key */
        float p = expf(sv - m_new); /* 0 past the end (sv = -inf) */
        sp[tid] = p;
        float cs = warp_sum(p);
        if (lane == 0)
            red_sum[warp] = cs;
        __syncthreads(); /* also publishes sp */
        cs = 0.f;
#pragma unroll
        for (int w = 0; w < DEC_THREADS / 32; w++)
            cs += red_sum[w];
        float alpha = expf(m - m_new); /* 0 on the first chunk */
        l = l * alpha + cs;
        m = m_new;
        int kend = min(DEC_CHUNK, ke - c0);
        if (FAST) {
            int sub = tid % lpk, g = tid / lpk;
#pragma unroll
            for (int i = 0; i < ve; i++)
                acc[i] *= alpha;
#pragma unroll 4
            for (int jj = g; jj < kend; jj += groups) {
                float e[Vec16<T>::n];
                ld16_f(s.val(c0 + jj) + sub * ve, e);
                float pj = sp[jj];
#pragma unroll
                for (int i = 0; i < ve; i++)
                    acc[i] += pj * e[i];
            }
        } else {
#pragma unroll
            for (int i = 0; i < 4; i++)
                acc[i] *= alpha;
            for (int jj = warp; jj < kend; jj += DEC_THREADS / 32) {
                const T *vr = s.val(c0 + jj);
                float pj = sp[jj];
#pragma unroll
                for (int i = 0; i < 4; i++) {
                    int c = lane + 32 * i;
                    if (c < dh)
                        acc[i] += pj * ld_f(vr + c);
                }
            }
        }
        __syncthreads(); /* sp and the reductions are rewritten by the next chunk */
    }

    /* add the groups' partial sums */
    int ngroups;
    if (FAST) {
        int sub = tid % lpk, g = tid / lpk;
#pragma unroll
        for (int i = 0; i < ve; i++)
            sacc[g][sub * ve + i] = acc[i];
        ngroups = groups;
    } else {
#pragma unroll
        for (int i = 0; i < 4; i++) {
            int c = lane + 32 * i;
            if (c < dh)
                sacc[warp][c] = acc[i];
        }
        ngroups = DEC_THREADS / 32;
    }
    __syncthreads();
    for (int c = tid; c < dh; c += DEC_THREADS) {
        float o = 0.f;
        for (int g = 0; g < ngroups; g++)
            o += sacc[g][c];
        sm.o[c] = o;
    }
    if (tid == 0) {
        sm.m = m;
        sm.l = l;
    }
    __syncthreads();
}

/* out[0..dh) = softmax(scale·q·k_j) · v_j over keys [kb, ke) (zeros when there are none). */
template <typename T>
__device__ __forceinline__ void attend(const KvSrc<T> &s, bool fast, const T *q, float scale,
                                       int dh, int kb, int ke, T *out, DecSmem &sm) {
    load_q(q, scale, dh, sm);
    if (fast)
        attend_part<T, true>(s, dh, kb, ke, sm);
    else
        attend_part<T, false>(s, dh, kb, ke, sm);
    float inv = sm.l > 0.f ? 1.f / sm.l : 0.f;
    for (int c = threadIdx.x; c < dh; c += DEC_THREADS)
        st_f(out + c, sm.o[c] * inv);
}

/* ---- kernels ---- */
template <typename T>
__global__ void __launch_bounds__(DEC_THREADS)
    k_attn_self(const T *q, int ldq, const asr_dev_row_t *rows, int dh, int dim, size_t layer_off,
                float scale, T *out, int ldo) {
    __shared__ DecSmem sm;
    const int i = blockIdx.x, h = blockIdx.y;
    const asr_dev_row_t r = rows[i];
    KvSrc<T> s;
    size_t off = layer_off + (size_t)h * dh;
    s.split = r.shared > 0 && r.ks ? r.shared : 0;
    s.k0 = s.split ? (const T *)r.ks + off : NULL;
    s.v0 = s.split ? (const T *)r.vs + off : NULL;
    s.k1 = (const T *)r.k + off;
    s.v1 = (const T *)r.v + off;
    s.ld = (size_t)dim;
    attend(s, kv_fast(s, dh), q + (size_t)i * ldq + (size_t)h * dh, scale, dh, 0,
           r.len > 0 ? r.len : 0, out + (size_t)i * ldo + (size_t)h * dh, sm);
}

template <typename T>
__device__ __forceinline__ KvSrc<T> cross_src(const asr_dev_row_t *r, int h, int dh, int ldx,
                                              size_t layer_off) {
    KvSrc<T> s;
    size_t off = layer_off + (size_t)h * dh;
    s.split = 0;
    s.k0 = s.v0 = NULL;
    s.k1 = (const T *)r->xk + off;
    s.v1 = (const T *)r->xv + off;
    s.ld = (size_t)ldx;
    return s;
}

template <typename T>
__global__ void __launch_bounds__(DEC_THREADS)
    k_attn_cross(const T *q, int ldq, const asr_dev_row_t *rows, int dh, int n_audio, int ldx,
                 size_t layer_off, float scale, T *out, int ldo) {
    __shared__ DecSmem sm;
    const int i = blockIdx.x, h = blockIdx.y;
    KvSrc<T> s = cross_src<T>(rows + i, h, dh, ldx, layer_off);
    attend(s, kv_fast(s, dh), q + (size_t)i * ldq + (size_t)h * dh, scale, dh, 0, n_audio,
           out + (size_t)i * ldo + (size_t)h * dh, sm);
}

/* Cross-attention split over a thread-block cluster (sm_90; grid (n·ncl, H), cluster (ncl, 1, 1)):
 * when rows × heads are too few to fill the GPU, the ncl blocks of a (row, head) each take a
 * contiguous share of the frames, and block rank 0 merges their partial (m, l, o) through
 * distributed shared memory: M = max m_r, out = Σ e^(m_r-M) o_r / Σ e^(m_r-M) l_r. */
template <typename T>
__global__ void __launch_bounds__(DEC_THREADS)
    k_attn_cross_cluster(const T *q, int ldq, const asr_dev_row_t *rows, int dh, int n_audio,
                         int ldx, size_t layer_off, float scale, T *out, int ldo) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    namespace cg = cooperative_groups;
    __shared__ DecSmem sm;
    cg::cluster_group cl = cg::this_cluster();
    const int ncl = (int)cl.num_blocks(), rank = (int)cl.block_rank();
    const int i = blockIdx.x / ncl, h = blockIdx.y;
    KvSrc<T> s = cross_src<T>(rows + i, h, dh, ldx, layer_off);
    int per = (n_audio + ncl - 1) / ncl;
    int kb = min(n_audio, rank * per), ke = min(n_audio, kb + per);
    load_q(q + (size_t)i * ldq + (size_t)h * dh, scale, dh, sm);
    if (kv_fast(s, dh))
        attend_part<T, true>(s, dh, kb, ke, sm);
    else
        attend_part<T, false>(s, dh, kb, ke, sm);
    cl.sync(); /* every block's partial is in its shared memory */
    if (rank == 0) {
        /* DEC_MAX_DH == DEC_THREADS: thread c merges channel c */
        float M = -INFINITY, L = 0.f, o = 0.f;
        for (int r = 0; r < ncl; r++)
            M = fmaxf(M, *cl.map_shared_rank(&sm.m, r));
        int c = threadIdx.x;
        if (M > -INFINITY) {
            for (int r = 0; r < ncl; r++) {
                float mr = *cl.map_shared_rank(&sm.m, r);
                float w = mr > -INFINITY ? expf(mr - M) : 0.f;
                L += w * *cl.map_shared_rank(&sm.l, r);
                if (c < dh)
                    o += w * cl.map_shared_rank(sm.o, r)[c];
            }
        }
        if (c < dh)
            st_f(out + (size_t)i * ldo + (size_t)h * dh + c, L > 0.f ? o / L : 0.f);
    }
    cl.sync(); /* the other blocks' shared memory stays until rank 0 has read it */
#else
    (void)q, (void)ldq, (void)rows, (void)dh, (void)n_audio, (void)ldx, (void)layer_off;
    (void)scale, (void)out, (void)ldo;
    __trap(); /* the launcher picks this kernel on compute capability 9.0 and above only */
#endif
}

/* grid (chunks of DEC_CHUNK frames, n) */
template <typename T>
__global__ void __launch_bounds__(DEC_THREADS)
    k_attn_cross_scores(const T *q, int ldq, const asr_dev_row_t *rows, int h, int dh, int n_audio,
                        int ldx, size_t layer_off, float scale, float *out) {
    __shared__ float sq[DEC_MAX_DH];
    __shared__ float sp[DEC_CHUNK];
    const int i = blockIdx.y, c0 = blockIdx.x * DEC_CHUNK;
    const asr_dev_row_t *r = rows + i;
    KvSrc<T> s;
    size_t off = layer_off + (size_t)h * dh;
    s.split = 0;
    s.k0 = s.v0 = NULL;
    s.k1 = (const T *)r->xk + off;
    s.v1 = (const T *)r->xv + off;
    s.ld = (size_t)ldx;
    const T *qi = q + (size_t)i * ldq + (size_t)h * dh;
    for (int c = threadIdx.x; c < dh; c += DEC_THREADS)
        sq[c] = scale * ld_f(qi + c);
    __syncthreads();
    const int ve = Vec16<T>::n;
    bool fast = dh == 64 && s.ld % ve == 0 && aligned16(s.k1);
    if (fast)
        chunk_scores<T, true>(s, sq, dh, c0, n_audio, sp);
    else
        chunk_scores<T, false>(s, sq, dh, c0, n_audio, sp);
    int j = c0 + threadIdx.x;
    if (j < n_audio)
        out[(size_t)i * n_audio + j] = sp[threadIdx.x];
}

/* k[len-1][c] = qkv[i][dim + c], v[len-1][c] = qkv[i][2 dim + c]; one block per row. */
template <typename T>
__global__ void k_kv_append(const T *qkv, int ldqkv, const asr_dev_row_t *rows, int dim,
                            size_t layer_off) {
    const int i = blockIdx.x;
    const asr_dev_row_t *r = rows + i;
    int len = r->len;
    if (len <= 0)
        return;
    size_t off = layer_off + (size_t)(len - 1) * dim;
    T *k = (T *)r->k + off, *v = (T *)r->v + off;
    const T *src = qkv + (size_t)i * ldqkv;
    for (int c = threadIdx.x; c < dim; c += blockDim.x) {
        k[c] = src[dim + c];
        v[c] = src[2 * dim + c];
    }
}

/* ---- launchers ---- */
static bool dec_shape_ok(asr_dev_t *d, const char *what, int n, int H, int dh) {
    if (dh <= 0 || dh > DEC_MAX_DH || H <= 0 || H > 65535) {
        asr__dev_fail(d, "%s: unsupported shape (n %d, heads %d, head dim %d; at most %d)", what, n,
                      H, dh, DEC_MAX_DH);
        return false;
    }
    return true;
}

extern "C" void asr__cu_kv_append(asr_dev_t *d, asr_dtype_t t, const void *qkv, int ldqkv,
                                  const asr_dev_row_t *rows, int n, int dim, size_t layer_off) {
    if (n <= 0 || dim <= 0)
        return;
    ASR_CU_DISPATCH(d, t, "kv_append", T,
                    k_kv_append<T><<<(unsigned)n, 128, 0, cu_stream(d)>>>((const T *)qkv, ldqkv,
                                                                          rows, dim, layer_off));
    cu_check(d, "kv_append");
}

extern "C" void asr__cu_attn_self(asr_dev_t *d, asr_dtype_t t, const void *q, int ldq,
                                  const asr_dev_row_t *rows, int n, int H, int dh, size_t layer_off,
                                  float scale, void *out, int ldo) {
    if (n <= 0)
        return;
    if (!dec_shape_ok(d, "attn_self", n, H, dh))
        return;
    dim3 grid((unsigned)n, (unsigned)H);
    ASR_CU_DISPATCH(d, t, "attn_self", T,
                    k_attn_self<T><<<grid, DEC_THREADS, 0, cu_stream(d)>>>(
                        (const T *)q, ldq, rows, dh, H * dh, layer_off, scale, (T *)out, ldo));
    cu_check(d, "attn_self");
}

/* Blocks per cluster for cross-attention: 1 (one block per (row, head)) unless the device has
 * clusters (sm_90) and rows × heads give fewer than 2 blocks per multiprocessor; then 2, 4 or 8,
 * enough for 2 per multiprocessor, while each block keeps at least one chunk of frames. */
static int cross_cluster_size(asr_dev_t *d, int n, int H, int n_audio) {
    long blocks = (long)n * H, want = 2L * (d->info.n_sm > 0 ? d->info.n_sm : 1);
    const char *env = getenv("ASRD_CUDA_ATTN_CROSS"); /* "single": never split (GPU tests) */
    if (d->info.cc_major < 9 || blocks >= want || (env && !strcmp(env, "single")))
        return 1;
    int ncl = 2;
    while (ncl < 8 && blocks * ncl < want)
        ncl *= 2;
    while (ncl > 1 && n_audio / ncl < DEC_CHUNK)
        ncl /= 2;
    return ncl;
}

template <typename T>
static void attn_cross_launch(asr_dev_t *d, const T *q, int ldq, const asr_dev_row_t *rows, int n,
                              int H, int dh, int n_audio, int ldx, size_t layer_off, float scale,
                              T *out, int ldo) {
    cudaStream_t st = cu_stream(d);
    int ncl = cross_cluster_size(d, n, H, n_audio);
    if (ncl > 1) {
        cudaLaunchAttribute at[1];
        at[0].id = cudaLaunchAttributeClusterDimension;
        at[0].val.clusterDim.x = (unsigned)ncl;
        at[0].val.clusterDim.y = 1;
        at[0].val.clusterDim.z = 1;
        cudaLaunchConfig_t cfg = {};
        cfg.gridDim = dim3((unsigned)(n * ncl), (unsigned)H, 1);
        cfg.blockDim = dim3(DEC_THREADS, 1, 1);
        cfg.dynamicSmemBytes = 0;
        cfg.stream = st;
        cfg.attrs = at;
        cfg.numAttrs = 1;
        if (cudaLaunchKernelEx(&cfg, k_attn_cross_cluster<T>, q, ldq, rows, dh, n_audio, ldx,
                               layer_off, scale, out, ldo) == cudaSuccess)
            return;
        (void)cudaGetLastError(); /* no cluster launch here: one block per (row, head) */
    }
    k_attn_cross<T><<<dim3((unsigned)n, (unsigned)H), DEC_THREADS, 0, st>>>(
        q, ldq, rows, dh, n_audio, ldx, layer_off, scale, out, ldo);
}

extern "C" void asr__cu_attn_cross(asr_dev_t *d, asr_dtype_t t, const void *q, int ldq,
                                   const asr_dev_row_t *rows, int n, int H, int dh, int n_audio,
                                   int ldx, size_t layer_off, float scale, void *out, int ldo) {
    if (n <= 0)
        return;
    if (!dec_shape_ok(d, "attn_cross", n, H, dh))
        return;
    ASR_CU_DISPATCH(d, t, "attn_cross", T,
                    attn_cross_launch<T>(d, (const T *)q, ldq, rows, n, H, dh,
                                         n_audio > 0 ? n_audio : 0, ldx, layer_off, scale, (T *)out,
                                         ldo));
    cu_check(d, "attn_cross");
}

extern "C" void asr__cu_attn_cross_scores(asr_dev_t *d, asr_dtype_t t, const void *q, int ldq,
                                          const asr_dev_row_t *rows, int n, int h, int dh,
                                          int n_audio, int ldx, size_t layer_off, float scale,
                                          float *out) {
    if (n <= 0 || n_audio <= 0)
        return;
    if (!dec_shape_ok(d, "attn_cross_scores", n, 1, dh))
        return;
    if (n > 65535) {
        asr__dev_fail(d, "attn_cross_scores: %d rows (at most 65535)", n);
        return;
    }
    dim3 grid((unsigned)((n_audio + DEC_CHUNK - 1) / DEC_CHUNK), (unsigned)n);
    ASR_CU_DISPATCH(d, t, "attn_cross_scores", T,
                    k_attn_cross_scores<T><<<grid, DEC_THREADS, 0, cu_stream(d)>>>(
                        (const T *)q, ldq, rows, h, dh, n_audio, ldx, layer_off, scale, out));
    cu_check(d, "attn_cross_scores");
}
