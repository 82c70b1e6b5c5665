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

/* ---- launcher ---- */
extern "C" void asr__cu_attn_full(asr_dev_t *d, asr_dtype_t t, const void *qkv, void *out, int B,
                                  int T, int H, int dh, float scale) {
    if (B <= 0 || T <= 0)
        return;
    if (dh <= 0 || dh > 128 || H <= 0 || H > 65535 || B > 65535) {
        asr__dev_fail(d, "attn_full: unsupported shape (B %d, heads %d, head dim %d)", B, H, dh);
        return;
    }
    ASR_CU_DISPATCH(d, t, "attn_full", TT,
                    attn_full_simt<TT>(d, (const TT *)qkv, (TT *)out, B, T, H, dh, scale));
    cu_check(d, "attn_full");
}
