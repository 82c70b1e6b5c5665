/* gpu: the encoder's self-attention without mask (attn_full): out[b][t][h*dh + c] =
 * Σ_j softmax_j(scale·q_t·k_j) v_j[c] per head, with q, k, v at columns 0, dim, 2·dim of
 * qkv [B][T][3·dim] (dim = H·dh). Flash-attention style: the T×T scores never exist in memory;
 * each block owns a tile of queries of one (window, head) and walks the keys in tiles with an
 * online softmax in float32 (running row max m and sum l; the output is rescaled by
 * exp(m_old - m_new) when a row's max grows). Tails (T = 1500 is no multiple of 64) are handled by
 * zero-filling the tiles and masking keys >= T with -inf; queries >= T are computed on zeros and
 * never stored.
 *
 * Three kernels:
 *   mma    float16 / bfloat16 with dh == 64 and 16-byte aligned qkv / out (every Whisper model;
 *          the default): tensor cores through mma.sync.m16n8k16 (float32 accumulators), the
 *          softmax in registers. 128 queries × 64 keys per step, 8 warps each owning 16 query
 *          rows. Per key tile the block stages K and V in shared memory (16-byte loads, rows
 *          padded to 72 elements so ldmatrix reads are free of bank conflicts); each warp loads
 *          its Q and K fragments with ldmatrix (V's with ldmatrix.trans, which gives the
 *          [key][channel] tile as the column-major B operand), computes S = Q·Kᵀ (32 MMAs),
 *          masks, takes the row max across the 4 lanes of a row (2 shuffles), rescales its
 *          output by alpha, rounds P = exp2(S·scale·log2e - m) to the input type and feeds it
 *          straight back as the A operand of O += P·V (32 MMAs): the C layout of two key tiles
 *          is the A layout of 16 keys. l sums the rounded P (what P·V multiplies); each lane
 *          keeps its share, added across the row's 4 lanes at the end. Warps whose rows are all
 *          past T only stage. 128 registers (2 blocks per multiprocessor), no spills on sm_80
 *          and sm_90 (a few bytes on sm_89).
 *   wmma   the same on the wmma API (64 queries, 4 warps; S, P and O through shared memory,
 *          since a wmma fragment's element layout is unspecified): slower, kept as a second
 *          tensor-core implementation to check the first against (ASRD_CUDA_ATTN_FULL=wmma).
 *   simt   any type, any dh <= 128 (float32 compute type, odd head sizes; and
 *          ASRD_CUDA_ATTN_FULL=simt): 32 queries × 16 keys per step, 128 threads; 4 threads
 *          share a query row (scores of 4 keys each, the row's max and sum by 2 shuffles) and
 *          split its output channels (c = q4 + 4 i). Q (pre-scaled), K, V and P tiles in shared
 *          memory, rows padded against bank conflicts.
 * out must not overlap qkv (other blocks still read K and V of rows a block has written).
 * Shared memory: mma 36 KB, simt <= 35 KB (static), wmma 70 KB dynamic (opted in once per
 * process and device). The float32 path is exact float32 arithmetic; the 16-bit paths round P to
 * the input type, as any tensor-core flash attention does. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <mma.h>

#include "gpu/kernels_int.cuh"

/* ---- simt ---- */
#define FS_BM 32 /* queries per block */
#define FS_BN 16 /* keys per step */
#define FS_THREADS 128

/* NC: output channels per thread (dh <= 4·NC). */
template <typename T, int NC>
__global__ void __launch_bounds__(FS_THREADS)
    k_attn_full_simt(const T *qkv, T *out, int Tn, int H, int dh, float scale) {
    extern __shared__ float fs_smem[];
    const int ldq = dh + 1;       /* padded rows */
    float *Qs = fs_smem;          /* [FS_BM][dh+1], scaled */
    float *Ks = Qs + FS_BM * ldq; /* [FS_BN][dh+1] */
    float *Vs = Ks + FS_BN * ldq; /* [FS_BN][dh] */
    float *Ps = Vs + FS_BN * dh;  /* [FS_BM][FS_BN+1] */
    const int tid = threadIdx.x, r = tid >> 2, q4 = tid & 3;
    const int t0 = blockIdx.x * FS_BM, h = blockIdx.y, b = blockIdx.z;
    const int dim = H * dh;
    const size_t ld = (size_t)3 * dim;
    const T *base = qkv + (size_t)b * Tn * ld + (size_t)h * dh;

    for (int e = tid; e < FS_BM * dh; e += FS_THREADS) {
        int rr = e / dh, c = e - rr * dh, t = t0 + rr;
        Qs[rr * ldq + c] = t < Tn ? scale * ld_f(base + (size_t)t * ld + c) : 0.f;
    }
    float m = -INFINITY, l = 0.f, acc[NC];
#pragma unroll
    for (int i = 0; i < NC; i++)
        acc[i] = 0.f;

    for (int j0 = 0; j0 < Tn; j0 += FS_BN) {
        __syncthreads(); /* previous step done with Ks/Vs (and Qs written, first time) */
        for (int e = tid; e < FS_BN * dh; e += FS_THREADS) {
            int jj = e / dh, c = e - jj * dh, j = j0 + jj;
            bool in = j < Tn;
            const T *row = base + (size_t)j * ld;
            Ks[jj * ldq + c] = in ? ld_f(row + dim + c) : 0.f;
            Vs[jj * dh + c] = in ? ld_f(row + 2 * dim + c) : 0.f;
        }
        __syncthreads();
        float s[FS_BN / 4], mx = -INFINITY;
#pragma unroll
        for (int i = 0; i < FS_BN / 4; i++) {
            int jj = q4 + 4 * i;
            float a = 0.f;
            for (int c = 0; c < dh; c++)
                a += Qs[r * ldq + c] * Ks[jj * ldq + c];
            s[i] = j0 + jj < Tn ? a : -INFINITY;
            mx = fmaxf(mx, s[i]);
        }
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        float m_new = fmaxf(m, mx), sum = 0.f;
#pragma unroll
        for (int i = 0; i < FS_BN / 4; i++) {
            float p = expf(s[i] - m_new);
            Ps[r * (FS_BN + 1) + q4 + 4 * i] = p;
            sum += p;
        }
        sum += __shfl_xor_sync(0xffffffffu, sum, 1);
        sum += __shfl_xor_sync(0xffffffffu, sum, 2);
        float alpha = expf(m - m_new);
        l = l * alpha + sum;
        m = m_new;
        __syncwarp(); /* the row's P comes from the 4 lanes of this warp */
#pragma unroll
        for (int i = 0; i < NC; i++) {
            int c = q4 + 4 * i;
            if (c < dh) {
                float a = acc[i] * alpha;
#pragma unroll
                for (int jj = 0; jj < FS_BN; jj++)
                    a += Ps[r * (FS_BN + 1) + jj] * Vs[jj * dh + c];
                acc[i] = a;
            }
        }
    }
    int t = t0 + r;
    if (t < Tn) {
        T *orow = out + ((size_t)b * Tn + t) * dim + (size_t)h * dh;
        float inv = l > 0.f ? 1.f / l : 0.f;
#pragma unroll
        for (int i = 0; i < NC; i++) {
            int c = q4 + 4 * i;
            if (c < dh)
                st_f(orow + c, acc[i] * inv);
        }
    }
}

template <typename T>
static void attn_full_simt(asr_dev_t *d, const T *qkv, T *out, int B, int Tn, int H, int dh,
                           float scale) {
    size_t smem = sizeof(float) * ((size_t)FS_BM * (dh + 1) + (size_t)FS_BN * (dh + 1) +
                                   (size_t)FS_BN * dh + (size_t)FS_BM * (FS_BN + 1));
    dim3 grid((unsigned)((Tn + FS_BM - 1) / FS_BM), (unsigned)H, (unsigned)B);
    if (dh <= 64)
        k_attn_full_simt<T, 16>
            <<<grid, FS_THREADS, smem, cu_stream(d)>>>(qkv, out, Tn, H, dh, scale);
    else
        k_attn_full_simt<T, 32>
            <<<grid, FS_THREADS, smem, cu_stream(d)>>>(qkv, out, Tn, H, dh, scale);
}

/* ---- wmma (float16 / bfloat16, dh == 64) ---- */
#define FW_BM 64 /* queries per block: 16 per warp */
#define FW_BN 64 /* keys per step */
#define FW_D 64  /* head size */
#define FW_THREADS 128
#define FW_LDH (FW_D + 8)  /* 16-bit tile rows: 144 bytes (ldm multiple of 8, 32-byte steps) */
#define FW_LDF (FW_BN + 4) /* float32 tile rows: 272 bytes */
/* bytes: Q, K, V tiles (16-bit), then per warp S (float32), P (16-bit), O (float32) */
#define FW_TILE_H (FW_BM * FW_LDH * 2)
#define FW_WARP_S (16 * FW_LDF * 4)
#define FW_WARP_P (16 * FW_LDH * 2)
#define FW_SMEM (3 * FW_TILE_H + 4 * (2 * FW_WARP_S + FW_WARP_P))

/* Copies ROWS rows × 64 elements of a 16-bit type from global (row r at src + r*ld, rows >= nrows
 * zero) to a shared tile with rows of FW_LDH elements, 16 bytes per thread-step (NT threads). */
template <typename T, int ROWS, int NT>
__device__ __forceinline__ void stage64(T *dst, const T *src, size_t ld, int nrows) {
    for (int e = threadIdx.x; e < ROWS * (FW_D / 8); e += NT) {
        int r = e >> 3, c = (e & 7) * 8;
        uint4 v = make_uint4(0, 0, 0, 0);
        if (r < nrows)
            v = *reinterpret_cast<const uint4 *>(src + (size_t)r * ld + c);
        *reinterpret_cast<uint4 *>(dst + r * FW_LDH + c) = v;
    }
}

template <typename T>
__global__ void __launch_bounds__(FW_THREADS)
    k_attn_full_wmma(const T *qkv, T *out, int Tn, int H, float scale) {
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
    using namespace nvcuda;
    extern __shared__ __align__(128) unsigned char fw_smem[];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int t0 = blockIdx.x * FW_BM, h = blockIdx.y, b = blockIdx.z;
    const int dim = H * FW_D;
    const size_t ld = (size_t)3 * dim;
    const T *base = qkv + (size_t)b * Tn * ld + (size_t)h * FW_D;
    T *Qs = reinterpret_cast<T *>(fw_smem);
    T *Ks = reinterpret_cast<T *>(fw_smem + FW_TILE_H);
    T *Vs = reinterpret_cast<T *>(fw_smem + 2 * FW_TILE_H);
    unsigned char *wbase = fw_smem + 3 * FW_TILE_H + warp * (2 * FW_WARP_S + FW_WARP_P);
    float *Sw = reinterpret_cast<float *>(wbase);             /* [16][FW_LDF] */
    float *Ow = reinterpret_cast<float *>(wbase + FW_WARP_S); /* [16][FW_LDF] */
    T *Pw = reinterpret_cast<T *>(wbase + 2 * FW_WARP_S);     /* [16][FW_LDH] */

    stage64<T, FW_BM, FW_THREADS>(Qs, base + (size_t)t0 * ld, ld, Tn - t0);
    /* this lane's half row of the warp's 16 rows: row rr, columns c0 .. c0+31 */
    const int rr = lane >> 1, c0 = (lane & 1) * 32;
    for (int c = 0; c < 32; c++)
        Ow[rr * FW_LDF + c0 + c] = 0.f;
    __syncthreads();
    wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> qf[FW_D / 16];
#pragma unroll
    for (int k = 0; k < FW_D / 16; k++)
        wmma::load_matrix_sync(qf[k], Qs + warp * 16 * FW_LDH + k * 16, FW_LDH);
    float m = -INFINITY, l = 0.f;

    for (int j0 = 0; j0 < Tn; j0 += FW_BN) {
        __syncthreads(); /* every warp is done with the previous K/V tile */
        stage64<T, FW_BN, FW_THREADS>(Ks, base + (size_t)j0 * ld + dim, ld, Tn - j0);
        stage64<T, FW_BN, FW_THREADS>(Vs, base + (size_t)j0 * ld + 2 * dim, ld, Tn - j0);
        __syncthreads();
        /* S = Q·Kᵀ: Kᵀ read column-major from the [key][c] tile */
#pragma unroll
        for (int n = 0; n < FW_BN / 16; n++) {
            wmma::fragment<wmma::accumulator, 16, 16, 16, float> sf;
            wmma::fill_fragment(sf, 0.f);
#pragma unroll
            for (int k = 0; k < FW_D / 16; k++) {
                wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> kf;
                wmma::load_matrix_sync(kf, Ks + n * 16 * FW_LDH + k * 16, FW_LDH);
                wmma::mma_sync(sf, qf[k], kf, sf);
            }
            wmma::store_matrix_sync(Sw + n * 16, sf, FW_LDF, wmma::mem_row_major);
        }
        __syncwarp();
        /* online softmax of the lane's half row (2 lanes per row) */
        const int kend = Tn - j0; /* keys c >= kend are past the end */
        float sv[32], mx = -INFINITY;
#pragma unroll
        for (int c = 0; c < 32; c++) {
            sv[c] = c0 + c < kend ? Sw[rr * FW_LDF + c0 + c] * scale : -INFINITY;
            mx = fmaxf(mx, sv[c]);
        }
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        float m_new = fmaxf(m, mx), sum = 0.f; /* finite: the tile has a key */
#pragma unroll
        for (int c = 0; c < 32; c++) {
            T p = from_f<T>(__expf(sv[c] - m_new));
            Pw[rr * FW_LDH + c0 + c] = p;
            sum += to_f(p); /* the sum of what P·V multiplies */
        }
        sum += __shfl_xor_sync(0xffffffffu, sum, 1);
        float alpha = __expf(m - m_new);
        l = l * alpha + sum;
        m = m_new;
#pragma unroll
        for (int c = 0; c < 32; c++)
            Ow[rr * FW_LDF + c0 + c] *= alpha;
        __syncwarp();
        /* O += P·V */
#pragma unroll
        for (int n = 0; n < FW_D / 16; n++) {
            wmma::fragment<wmma::accumulator, 16, 16, 16, float> of;
            wmma::load_matrix_sync(of, Ow + n * 16, FW_LDF, wmma::mem_row_major);
#pragma unroll
            for (int k = 0; k < FW_BN / 16; k++) {
                wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> pf;
                wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major> vf;
                wmma::load_matrix_sync(pf, Pw + k * 16, FW_LDH);
                wmma::load_matrix_sync(vf, Vs + k * 16 * FW_LDH + n * 16, FW_LDH);
                wmma::mma_sync(of, pf, vf, of);
            }
            wmma::store_matrix_sync(Ow + n * 16, of, FW_LDF, wmma::mem_row_major);
        }
        __syncwarp();
    }
    /* out = O / l: the lane's 32 channels of its row, 4 × 16-byte stores */
    int t = t0 + warp * 16 + rr;
    if (t < Tn) {
        T *orow = out + ((size_t)b * Tn + t) * dim + (size_t)h * FW_D + c0;
        float inv = l > 0.f ? 1.f / l : 0.f;
#pragma unroll
        for (int c = 0; c < 32; c += 8) {
            float v[8];
#pragma unroll
            for (int i = 0; i < 8; i++)
                v[i] = Ow[rr * FW_LDF + c0 + c + i] * inv;
            st16_f(orow + c, v);
        }
    }
#else
    (void)qkv;
    (void)out;
    (void)Tn;
    (void)H;
    (void)scale;
    __trap(); /* the launcher never picks this kernel below compute capability 8.0 */
#endif
}

/* ---- mma (float16 / bfloat16, dh == 64): registers-resident flash attention ---- */
#define FM_BM 128 /* queries per block: 16 per warp */
#define FM_BN 64  /* keys per step */
#define FM_THREADS 256

/* lo, hi rounded to T and packed (lo in the low half); rlo, rhi: the rounded values. */
template <typename T> __device__ uint32_t round_pack2(float lo, float hi, float &rlo, float &rhi);
template <>
__device__ __forceinline__ uint32_t round_pack2<__half>(float lo, float hi, float &rlo,
                                                        float &rhi) {
    __half2 h = __floats2half2_rn(lo, hi);
    rlo = __low2float(h);
    rhi = __high2float(h);
    return *reinterpret_cast<uint32_t *>(&h);
}
template <>
__device__ __forceinline__ uint32_t round_pack2<bf16_t>(float lo, float hi, float &rlo,
                                                        float &rhi) {
    __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
    rlo = __low2float(h);
    rhi = __high2float(h);
    return *reinterpret_cast<uint32_t *>(&h);
}
__device__ __forceinline__ uint32_t bits16(__half v) { return __half_as_ushort(v); }
__device__ __forceinline__ uint32_t bits16(bf16_t v) { return __bfloat16_as_ushort(v); }
/* Two 16-bit elements in one register, the lower column in the low half (PTX fragment order). */
template <typename T> __device__ __forceinline__ uint32_t pack2(T lo, T hi) {
    return bits16(lo) | (bits16(hi) << 16);
}
/* ldmatrix .x4 (a: shared-space address): lanes 8m..8m+7 give the row addresses of 8×8 matrix m
 * (16-byte aligned rows);
 * r[m] gets the lane's pair of it: (row lane/4, cols 2(lane%4), +1), or with .trans (rows
 * 2(lane%4), +1, col lane/4). */
__device__ __forceinline__ void ldsm4(uint32_t *r, unsigned a) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a));
}
__device__ __forceinline__ void ldsm4_t(uint32_t *r, unsigned a) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a));
}

/* c (16×8 float32) += a (16×16, row) · b (16×8, col): mma.sync m16n8k16 */
__device__ __forceinline__ void mma16816(float *c, const uint32_t *a, const uint32_t *b, __half) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
__device__ __forceinline__ void mma16816(float *c, const uint32_t *a, const uint32_t *b, bf16_t) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

/* Fragment layouts (PTX ISA, mma.m16n8k16, 16-bit inputs; g = lane / 4, q = lane % 4):
 *   A (16×16): reg0 = (row g, cols 2q, 2q+1), reg1 = (row g+8, same cols), reg2 = (row g,
 *              cols 2q+8, 2q+9), reg3 = (row g+8, cols 2q+8, 2q+9);
 *   B (16×8):  reg0 = (rows 2q, 2q+1, col g), reg1 = (rows 2q+8, 2q+9, col g);
 *   C (16×8):  c0, c1 = (row g, cols 2q, 2q+1), c2, c3 = (row g+8, same cols).
 * So the S accumulators of key tiles 2k and 2k+1 are, packed in pairs, exactly the A fragment of
 * P for the k-th 16 keys of P·V: the probabilities never leave registers. */
template <typename T>
__global__ void __launch_bounds__(FM_THREADS, 2)
    k_attn_full_mma(const T *qkv, T *out, int Tn, int H, float scale_log2) {
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
    __shared__ __align__(16) T Qs[FM_BM * FW_LDH];
    __shared__ __align__(16) T Ks[FM_BN * FW_LDH];
    __shared__ __align__(16) T Vs[FM_BN * FW_LDH];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, q = lane & 3;
    const int lr = lane & 7, lm = lane >> 3; /* ldmatrix: the row and matrix this lane addresses */
    /* this lane's ldmatrix row in K (key lr, channel (lm/2)·16 + (lm%2)·8) and in V (key
     * (lm%2)·8 + lr, channel (lm/2)·8), as shared-space byte addresses */
    const unsigned k_addr =
        (unsigned)__cvta_generic_to_shared(Ks) + 2u * (lr * FW_LDH + (lm >> 1) * 16 + (lm & 1) * 8);
    const unsigned v_addr = (unsigned)__cvta_generic_to_shared(Vs) +
                            2u * (((lm & 1) * 8 + lr) * FW_LDH + (lm >> 1) * 8);
    const int t0 = blockIdx.x * FM_BM, h = blockIdx.y, b = blockIdx.z;
    const int dim = H * FW_D;
    const size_t ld = (size_t)3 * dim;
    const T *base = qkv + (size_t)b * Tn * ld + (size_t)h * FW_D;
    const bool active = t0 + warp * 16 < Tn; /* a warp of rows past the end only stages */

    stage64<T, FM_BM, FM_THREADS>(Qs, base + (size_t)t0 * ld, ld, Tn - t0);
    __syncthreads();
    /* Q's A fragments are read from shared memory per key tile (ldmatrix: matrices rows +0, +8
     * × channels +0, +8), not kept in registers: that leaves room for S, P and O */
    const unsigned q_addr = (unsigned)__cvta_generic_to_shared(Qs + warp * 16 * FW_LDH) +
                            2u * (((lm & 1) * 8 + lr) * FW_LDH + (lm >> 1) * 8);
    float o[FW_D / 8][4];
#pragma unroll
    for (int nt = 0; nt < FW_D / 8; nt++)
        o[nt][0] = o[nt][1] = o[nt][2] = o[nt][3] = 0.f;
    /* rows g and g+8: running max (log2 domain) and this lane's share of the sum */
    float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.f, l1 = 0.f;

    for (int j0 = 0; j0 < Tn; j0 += FM_BN) {
        __syncthreads(); /* every warp is done with the previous K/V tile */
        stage64<T, FM_BN, FM_THREADS>(Ks, base + (size_t)j0 * ld + dim, ld, Tn - j0);
        stage64<T, FM_BN, FM_THREADS>(Vs, base + (size_t)j0 * ld + 2 * dim, ld, Tn - j0);
        __syncthreads();
        if (!active)
            continue;
        /* S = Q·Kᵀ: key tile nt holds keys nt*8 .. nt*8+7; one ldmatrix gives the B fragments
         * of two 16-channel steps (matrices: channels +0, +8, +16, +24 of 8 keys) */
        uint32_t qf[FW_D / 16][4];
#pragma unroll
        for (int kk = 0; kk < FW_D / 16; kk++)
            ldsm4(qf[kk], q_addr + 2 * (kk * 16));
        float s[FM_BN / 8][4];
#pragma unroll
        for (int nt = 0; nt < FM_BN / 8; nt++) {
            s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.f;
#pragma unroll
            for (int kk = 0; kk < FW_D / 16; kk += 2) {
                uint32_t r[4];
                ldsm4(r, k_addr + 2 * (nt * 8 * FW_LDH + kk * 16));
                mma16816(s[nt], qf[kk], r, T());
                mma16816(s[nt], qf[kk + 1], r + 2, T());
            }
        }
        /* online softmax in the log2 domain; keys past the end are -inf */
        const int kend = Tn - j0;
        float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
        for (int nt = 0; nt < FM_BN / 8; nt++) {
#pragma unroll
            for (int e = 0; e < 2; e++) {
                bool valid = nt * 8 + 2 * q + e < kend;
                s[nt][e] = valid ? s[nt][e] * scale_log2 : -INFINITY;
                s[nt][2 + e] = valid ? s[nt][2 + e] * scale_log2 : -INFINITY;
                mx0 = fmaxf(mx0, s[nt][e]);
                mx1 = fmaxf(mx1, s[nt][2 + e]);
            }
        }
        mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
        mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
        mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
        mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
        const float mn0 = fmaxf(m0, mx0), mn1 = fmaxf(m1, mx1); /* finite: key j0 is valid */
        const float a0 = exp2f(m0 - mn0), a1 = exp2f(m1 - mn1); /* 0 on the first tile */
        m0 = mn0;
        m1 = mn1;
        l0 *= a0;
        l1 *= a1;
#pragma unroll
        for (int nt = 0; nt < FW_D / 8; nt++) {
            o[nt][0] *= a0;
            o[nt][1] *= a0;
            o[nt][2] *= a1;
            o[nt][3] *= a1;
        }
        uint32_t pa[FM_BN / 16][4];
#pragma unroll
        for (int nt = 0; nt < FM_BN / 8; nt++) {
            float r0, r1, r2, r3; /* the rounded values: l sums what P·V multiplies */
            pa[nt / 2][2 * (nt & 1)] =
                round_pack2<T>(exp2f(s[nt][0] - mn0), exp2f(s[nt][1] - mn0), r0, r1);
            pa[nt / 2][2 * (nt & 1) + 1] =
                round_pack2<T>(exp2f(s[nt][2] - mn1), exp2f(s[nt][3] - mn1), r2, r3);
            l0 += r0 + r1;
            l1 += r2 + r3;
        }
        /* O += P·V: channel tile nt holds channels nt*8 .. nt*8+7; one transposing ldmatrix
         * gives the B fragments of two channel tiles (matrices: keys +0, +8 × channels +0, +8) */
#pragma unroll
        for (int kk = 0; kk < FM_BN / 16; kk++) {
#pragma unroll
            for (int nt = 0; nt < FW_D / 8; nt += 2) {
                uint32_t r[4];
                ldsm4_t(r, v_addr + 2 * (kk * 16 * FW_LDH + nt * 8));
                mma16816(o[nt], pa[kk], r, T());
                mma16816(o[nt + 1], pa[kk], r + 2, T());
            }
        }
    }
    if (!active)
        return;
    l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
    l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
    const float inv0 = l0 > 0.f ? 1.f / l0 : 0.f, inv1 = l1 > 0.f ? 1.f / l1 : 0.f;
    const int r0 = t0 + warp * 16 + g, r1 = r0 + 8;
    T *o0 = out + ((size_t)b * Tn + r0) * dim + (size_t)h * FW_D + 2 * q;
    T *o1 = o0 + (size_t)8 * dim;
#pragma unroll
    for (int nt = 0; nt < FW_D / 8; nt++) {
        if (r0 < Tn)
            *reinterpret_cast<uint32_t *>(o0 + nt * 8) =
                pack2(from_f<T>(o[nt][0] * inv0), from_f<T>(o[nt][1] * inv0));
        if (r1 < Tn)
            *reinterpret_cast<uint32_t *>(o1 + nt * 8) =
                pack2(from_f<T>(o[nt][2] * inv1), from_f<T>(o[nt][3] * inv1));
    }
#else
    (void)qkv;
    (void)out;
    (void)Tn;
    (void)H;
    (void)scale_log2;
    __trap(); /* the launcher never picks this kernel below compute capability 8.0 */
#endif
}

/* The opt-in to FW_SMEM bytes of dynamic shared memory, once per kernel and device ordinal. */
template <typename T> static bool fw_opt_in(asr_dev_t *d) {
    static unsigned long long done; /* bit per device ordinal < 64 */
    int idx = d->info.index;
    unsigned long long bit = idx >= 0 && idx < 64 ? 1ull << idx : 0;
    if (bit && (__atomic_load_n(&done, __ATOMIC_ACQUIRE) & bit))
        return true;
    cudaError_t e = cudaFuncSetAttribute(k_attn_full_wmma<T>,
                                         cudaFuncAttributeMaxDynamicSharedMemorySize, FW_SMEM);
    if (e != cudaSuccess) {
        asr__dev_fail(d, "attn_full: shared memory opt-in: %s", cudaGetErrorString(e));
        return false;
    }
    if (bit)
        __atomic_fetch_or(&done, bit, __ATOMIC_RELEASE);
    return true;
}

/* Which kernel runs float16 / bfloat16 attention with dh 64: ASRD_CUDA_ATTN_FULL = mma (the
 * default), wmma or simt, so the GPU tests can check each against the reference. */
static int attn_full_kind(void) {
    const char *e = getenv("ASRD_CUDA_ATTN_FULL");
    if (e && !strcmp(e, "simt"))
        return 0;
    if (e && !strcmp(e, "wmma"))
        return 1;
    return 2;
}

/* The tensor-core kernels; false when they do not apply (then the SIMT kernel runs). */
template <typename T>
static bool attn_full_tc(asr_dev_t *d, const T *qkv, T *out, int B, int Tn, int H, int dh,
                         float scale) {
    int kind = attn_full_kind();
    if (kind == 0 || dh != FW_D || d->info.cc_major < 8 || ((uintptr_t)qkv & 15) ||
        ((uintptr_t)out & 15))
        return false;
    if (kind == 2) {
        dim3 grid((unsigned)((Tn + FM_BM - 1) / FM_BM), (unsigned)H, (unsigned)B);
        k_attn_full_mma<T>
            <<<grid, FM_THREADS, 0, cu_stream(d)>>>(qkv, out, Tn, H, scale * 1.4426950408889634f);
    } else if (fw_opt_in<T>(d)) {
        dim3 grid((unsigned)((Tn + FW_BM - 1) / FW_BM), (unsigned)H, (unsigned)B);
        k_attn_full_wmma<T><<<grid, FW_THREADS, FW_SMEM, cu_stream(d)>>>(qkv, out, Tn, H, scale);
    }
    return true;
}

/* ---- launcher ---- */
extern "C" void asr__cu_attn_full(asr_dev_t *d, asr_dtype_t t, const void *qkv, void *out, int B,
                                  int T, int H, int dh, float scale) {
    if (B <= 0 || T <= 0)
        return;
    if (dh <= 0 || dh > 128 || H <= 0 || H > 65535 || B > 65535) {
        asr__dev_fail(d, "attn_full: unsupported shape (B %d, heads %d, head dim %d)", B, H, dh);
        return;
    }
    switch (t) {
    case ASR_DT_F16:
        if (attn_full_tc<__half>(d, (const __half *)qkv, (__half *)out, B, T, H, dh, scale))
            break;
        attn_full_simt<__half>(d, (const __half *)qkv, (__half *)out, B, T, H, dh, scale);
        break;
    case ASR_DT_BF16:
        if (attn_full_tc<bf16_t>(d, (const bf16_t *)qkv, (bf16_t *)out, B, T, H, dh, scale))
            break;
        attn_full_simt<bf16_t>(d, (const bf16_t *)qkv, (bf16_t *)out, B, T, H, dh, scale);
        break;
    case ASR_DT_F32:
        attn_full_simt<float>(d, (const float *)qkv, (float *)out, B, T, H, dh, scale);
        break;
    default:
        asr__dev_fail(d, "attn_full: unsupported type %s", asr_dtype_name(t));
        return;
    }
    cu_check(d, "attn_full");
}
