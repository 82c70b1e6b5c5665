/* gpu: the encoder's self-attention without mask (attn_full): out[b][t][h*dh + c] =
 * Σ_j softmax_j(scale·q_t·k_j) v_j[c] per head, with q, k, v at columns 0, dim, 2·dim of
 * qkv [B][T][3·dim] (dim = H·dh). Flash-attention style: the T×T scores never exist in memory;
 * each block owns a tile of queries of one (window, head) and walks the keys in tiles with an
 * online softmax in float32 (running row max m and sum l; the output is rescaled by
 * exp(m_old - m_new) when a row's max grows). Tails (T = 1500 is no multiple of 64) are handled by
 * zero-filling the tiles and masking keys >= T with -inf; queries >= T are computed on zeros and
 * never stored.
 *
 * Two kernels:
 *   simt   any type, any dh <= 128 (float32 compute type, and odd head sizes): 32 queries × 16
 *          keys per step, 128 threads; 4 threads share a query row (scores of 4 keys each, the
 *          row's max and sum by 2 shuffles) and split its output channels (c = q4 + 4 i).
 *          Q (pre-scaled), K, V and P tiles in shared memory, rows padded against bank conflicts.
 *   wmma   float16 / bfloat16 with dh == 64 and 16-byte aligned qkv / out (every Whisper model):
 *          tensor cores through the wmma API (16×16×16, float32 accumulators). 64 queries × 64
 *          keys per step, 4 warps each owning 16 query rows. Per key tile: the block stages K
 *          and V (16-byte loads); each warp computes S = Q·Kᵀ (16 MMAs) into shared memory as
 *          float32, runs the online softmax on its 16 rows in SIMT (2 lanes per row), writes P
 *          in the input type and rescales its float32 output rows in shared memory by alpha,
 *          then accumulates O += P·V (16 MMAs, O loaded from and stored back to shared memory,
 *          since a wmma fragment's element layout is unspecified). Only warp-level barriers
 *          between a warp's own steps; block barriers around the K/V staging. The scale is
 *          applied to S in float32 (Q is staged unscaled: no extra rounding of q).
 * Shared memory: simt <= 35 KB (static limit), wmma 70 KB dynamic (opted in once per process). */
#include <math.h>
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

/* Copies 64 rows × 64 elements of a 16-bit type from global (row r at src + r*ld, rows >= nrows
 * zero) to a shared tile of FW_LDH, 16 bytes per thread-step. */
template <typename T>
__device__ __forceinline__ void fw_stage(T *dst, const T *src, size_t ld, int nrows) {
    for (int e = threadIdx.x; e < FW_BM * (FW_D / 8); e += FW_THREADS) {
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

    fw_stage(Qs, base + (size_t)t0 * ld, ld, Tn - t0);
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
        fw_stage(Ks, base + (size_t)j0 * ld + dim, ld, Tn - j0);
        fw_stage(Vs, base + (size_t)j0 * ld + 2 * dim, ld, Tn - j0);
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

template <typename T>
static bool attn_full_wmma(asr_dev_t *d, const T *qkv, T *out, int B, int Tn, int H, int dh,
                           float scale) {
    if (dh != FW_D || d->info.cc_major < 8 || ((uintptr_t)qkv & 15) || ((uintptr_t)out & 15))
        return false;
    if (fw_opt_in<T>(d)) {
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
        if (attn_full_wmma<__half>(d, (const __half *)qkv, (__half *)out, B, T, H, dh, scale))
            break;
        attn_full_simt<__half>(d, (const __half *)qkv, (__half *)out, B, T, H, dh, scale);
        break;
    case ASR_DT_BF16:
        if (attn_full_wmma<bf16_t>(d, (const bf16_t *)qkv, (bf16_t *)out, B, T, H, dh, scale))
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
