/* gpu: the element-wise and row-wise kernels (everything but attention): layer norm, add, add_pos,
 * convert, the encoder front end's im2col, token embedding, the GEMM epilogue (bias + GELU) and
 * int8 dequantization. Semantics are dev.h's / kernels.h's; every kernel reads activations of type
 * T (float, __half, __nv_bfloat16) as float32, computes in float32, and rounds to nearest when it
 * stores.
 *
 * Design (all memory-bound; the aim is coalesced 16-byte accesses and enough blocks):
 *   layer_norm  one warp per row (4 rows per 128-thread block). Vector path (dim a multiple of
 *               16 bytes of T, dim <= 1280, x and out 16-byte aligned): the row is read once into
 *               registers as 16-byte vectors, then mean, variance (two-pass: no cancellation)
 *               and the normalised write come from registers. Otherwise lanes stride the row
 *               element by element and read it three times (L1/L2 hits). out may be x: each
 *               element is read and written by the same lane, the write after both reads.
 *   add, bias_act, dequant_i8
 *               16 bytes per thread-step when sizes and pointers allow (n, ldc multiples of 16
 *               bytes of T, 16-byte aligned), element-wise grid-stride loops otherwise; size_t
 *               indices (encoder activations of a large batch pass 2^31 elements).
 *   add_pos, convert
 *               element-wise grid-stride loops; 2-D ones put columns on x (coalesced) and rows
 *               on y, looping when rows exceed the grid's y limit.
 *   im2col_mel, im2col_s2
 *               one thread per output element (writes coalesced; reads gathered, cached).
 *   embed       one block per token, threads over dim.
 * Tails: every index is bounds-checked; no kernel assumes a size multiple of anything. */
#include "gpu/kernels_int.cuh"

#define EW_THREADS 256
#define EW_BLOCKS_CAP 65535u * 8u

/* ---- layer norm ---- */
template <typename T>
__global__ void k_layer_norm(const T *x, T *out, int rows, int dim, const float *gamma,
                             const float *beta, float eps) {
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    size_t row = (size_t)blockIdx.x * (blockDim.x >> 5) + warp;
    if (row >= (size_t)rows)
        return;
    const T *xr = x + row * dim;
    T *yr = out + row * dim;
    float s = 0.f;
    for (int c = lane; c < dim; c += 32)
        s += ld_f(xr + c);
    float mean = warp_sum(s) / (float)dim;
    float v = 0.f;
    for (int c = lane; c < dim; c += 32) {
        float dlt = ld_f(xr + c) - mean;
        v += dlt * dlt;
    }
    float rstd = rsqrtf(warp_sum(v) / (float)dim + eps);
    for (int c = lane; c < dim; c += 32) {
        float y = (ld_f(xr + c) - mean) * rstd;
        y = y * (gamma ? gamma[c] : 1.f) + (beta ? beta[c] : 0.f);
        st_f(yr + c, y);
    }
}

/* The same with the row held in registers (one read of x): dim a multiple of V (16 bytes of T),
 * dim / V <= 32 * MAXV, x and out 16-byte aligned. */
template <typename T, int MAXV>
__global__ void k_layer_norm_v(const T *x, T *out, int rows, int dim, const float *gamma,
                               const float *beta, float eps) {
    const int ve = Vec16<T>::n;
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    size_t row = (size_t)blockIdx.x * (blockDim.x >> 5) + warp;
    if (row >= (size_t)rows)
        return;
    const T *xr = x + row * dim;
    T *yr = out + row * dim;
    const int nv = dim / ve;
    float v[MAXV][Vec16<T>::n];
    float s = 0.f;
#pragma unroll
    for (int k = 0; k < MAXV; k++) {
        int iv = lane + 32 * k;
        if (iv < nv) {
            ld16_f(xr + (size_t)iv * ve, v[k]);
#pragma unroll
            for (int e = 0; e < ve; e++)
                s += v[k][e];
        }
    }
    float mean = warp_sum(s) / (float)dim;
    float q = 0.f;
#pragma unroll
    for (int k = 0; k < MAXV; k++) {
        if (lane + 32 * k < nv) {
#pragma unroll
            for (int e = 0; e < ve; e++) {
                float dlt = v[k][e] - mean;
                q += dlt * dlt;
            }
        }
    }
    float rstd = rsqrtf(warp_sum(q) / (float)dim + eps);
#pragma unroll
    for (int k = 0; k < MAXV; k++) {
        int iv = lane + 32 * k;
        if (iv < nv) {
#pragma unroll
            for (int e = 0; e < ve; e++) {
                int c = iv * ve + e;
                v[k][e] =
                    (v[k][e] - mean) * rstd * (gamma ? gamma[c] : 1.f) + (beta ? beta[c] : 0.f);
            }
            st16_f(yr + (size_t)iv * ve, v[k]);
        }
    }
}

/* Row length the register-resident layer norm holds: 1280 (Whisper's largest dim). */
#define LN_MAX_DIM 1280

template <typename T>
static void layer_norm_launch(asr_dev_t *d, const T *x, T *out, int rows, int dim,
                              const float *gamma, const float *beta, float eps) {
    const int rows_per_block = 4, ve = Vec16<T>::n;
    constexpr int maxv = (LN_MAX_DIM + 32 * Vec16<T>::n - 1) / (32 * Vec16<T>::n);
    unsigned blocks = (unsigned)((rows + rows_per_block - 1) / rows_per_block);
    cudaStream_t st = cu_stream(d);
    if (dim % ve == 0 && dim / ve <= 32 * maxv && !((uintptr_t)x & 15) && !((uintptr_t)out & 15))
        k_layer_norm_v<T, maxv>
            <<<blocks, 32 * rows_per_block, 0, st>>>(x, out, rows, dim, gamma, beta, eps);
    else
        k_layer_norm<T>
            <<<blocks, 32 * rows_per_block, 0, st>>>(x, out, rows, dim, gamma, beta, eps);
}

extern "C" void asr__cu_layer_norm(asr_dev_t *d, asr_dtype_t t, const void *x, void *out, int rows,
                                   int dim, const float *gamma, const float *beta, float eps) {
    if (rows <= 0 || dim <= 0)
        return;
    ASR_CU_DISPATCH(d, t, "layer_norm", T,
                    layer_norm_launch<T>(d, (const T *)x, (T *)out, rows, dim, gamma, beta, eps));
    cu_check(d, "layer_norm");
}

/* ---- add, add_pos ---- */
template <typename T> __global__ void k_add(T *x, const T *y, size_t n) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        st_f(x + i, ld_f(x + i) + ld_f(y + i));
}

/* 16 bytes per thread-step: n a multiple of V, x and y 16-byte aligned. */
template <typename T> __global__ void k_add_v(T *x, const T *y, size_t nv) {
    const int ve = Vec16<T>::n;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < nv;
         i += (size_t)gridDim.x * blockDim.x) {
        float a[Vec16<T>::n], b[Vec16<T>::n];
        ld16_f(x + i * ve, a);
        ld16_f(y + i * ve, b);
#pragma unroll
        for (int e = 0; e < ve; e++)
            a[e] += b[e];
        st16_f(x + i * ve, a);
    }
}

template <typename T> static void add_launch(asr_dev_t *d, T *x, const T *y, size_t n) {
    const size_t ve = Vec16<T>::n;
    if (n % ve == 0 && !((uintptr_t)x & 15) && !((uintptr_t)y & 15))
        k_add_v<T><<<cu_blocks(n / ve, EW_THREADS, EW_BLOCKS_CAP), EW_THREADS, 0, cu_stream(d)>>>(
            x, y, n / ve);
    else
        k_add<T><<<cu_blocks(n, EW_THREADS, EW_BLOCKS_CAP), EW_THREADS, 0, cu_stream(d)>>>(x, y, n);
}

extern "C" void asr__cu_add(asr_dev_t *d, asr_dtype_t t, void *x, const void *y, size_t n) {
    if (!n)
        return;
    ASR_CU_DISPATCH(d, t, "add", T, add_launch<T>(d, (T *)x, (const T *)y, n));
    cu_check(d, "add");
}

/* x[b*n + i] += pos[i]: blockIdx.y strides over b, x over i. */
template <typename T> __global__ void k_add_pos(T *x, const float *pos, int B, size_t n) {
    for (int b = blockIdx.y; b < B; b += gridDim.y) {
        T *xb = x + (size_t)b * n;
        for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
             i += (size_t)gridDim.x * blockDim.x)
            st_f(xb + i, ld_f(xb + i) + pos[i]);
    }
}

extern "C" void asr__cu_add_pos(asr_dev_t *d, asr_dtype_t t, void *x, const float *pos, int B,
                                size_t n) {
    if (B <= 0 || !n)
        return;
    dim3 grid(cu_blocks(n, EW_THREADS, 65535u * 4u), (unsigned)(B < 65535 ? B : 65535));
    ASR_CU_DISPATCH(d, t, "add_pos", T,
                    k_add_pos<T><<<grid, EW_THREADS, 0, cu_stream(d)>>>((T *)x, pos, B, n));
    cu_check(d, "add_pos");
}

/* ---- convert ---- */
template <typename S, typename D> __global__ void k_convert(const S *src, D *dst, size_t n) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        st_f(dst + i, ld_f(src + i));
}

template <typename S>
static void convert_from(asr_dev_t *d, const S *src, asr_dtype_t dt, void *dst, size_t n) {
    unsigned blocks = cu_blocks(n, EW_THREADS, EW_BLOCKS_CAP);
    ASR_CU_DISPATCH(d, dt, "convert (destination)", D,
                    k_convert<S, D><<<blocks, EW_THREADS, 0, cu_stream(d)>>>(src, (D *)dst, n));
}

extern "C" void asr__cu_convert(asr_dev_t *d, asr_dtype_t st, const void *src, asr_dtype_t dt,
                                void *dst, size_t n) {
    if (!n)
        return;
    ASR_CU_DISPATCH(d, st, "convert (source)", S, convert_from<S>(d, (const S *)src, dt, dst, n));
    cu_check(d, "convert");
}

/* ---- im2col ---- */
/* cols[b][t][c*3+k] = mel[b][c][t+k-1] (0 outside [0, T)); one thread per output element. */
template <typename T>
__global__ void k_im2col_mel(const float *mel, int B, int n_mels, int Tn, T *cols) {
    size_t w = (size_t)n_mels * 3, total = (size_t)B * Tn * w;
    for (size_t o = (size_t)blockIdx.x * blockDim.x + threadIdx.x; o < total;
         o += (size_t)gridDim.x * blockDim.x) {
        size_t r = o / w;
        int j = (int)(o - r * w);
        int b = (int)(r / (size_t)Tn), t = (int)(r - (size_t)b * Tn);
        int c = j / 3, k = j - c * 3, ts = t + k - 1;
        float v = (ts >= 0 && ts < Tn) ? mel[((size_t)b * n_mels + c) * Tn + ts] : 0.f;
        st_f(cols + o, v);
    }
}

extern "C" void asr__cu_im2col_mel(asr_dev_t *d, asr_dtype_t t, const float *mel, int B, int n_mels,
                                   int T, void *cols) {
    if (B <= 0 || n_mels <= 0 || T <= 0)
        return;
    unsigned blocks = cu_blocks((size_t)B * T * n_mels * 3, EW_THREADS, EW_BLOCKS_CAP);
    ASR_CU_DISPATCH(d, t, "im2col_mel", TT,
                    k_im2col_mel<TT>
                    <<<blocks, EW_THREADS, 0, cu_stream(d)>>>(mel, B, n_mels, T, (TT *)cols));
    cu_check(d, "im2col_mel");
}

/* cols[b][t][c*3+k] = x[b][2t+k-1][c] (0 outside [0, T_in)), t < T_in/2. */
template <typename T> __global__ void k_im2col_s2(const T *x, int B, int T_in, int C, T *cols) {
    int T_out = T_in / 2;
    size_t w = (size_t)C * 3, total = (size_t)B * T_out * w;
    for (size_t o = (size_t)blockIdx.x * blockDim.x + threadIdx.x; o < total;
         o += (size_t)gridDim.x * blockDim.x) {
        size_t r = o / w;
        int j = (int)(o - r * w);
        int b = (int)(r / (size_t)T_out), t = (int)(r - (size_t)b * T_out);
        int c = j / 3, k = j - c * 3, ts = 2 * t + k - 1;
        float v = (ts >= 0 && ts < T_in) ? ld_f(x + ((size_t)b * T_in + ts) * C + c) : 0.f;
        st_f(cols + o, v);
    }
}

extern "C" void asr__cu_im2col_s2(asr_dev_t *d, asr_dtype_t t, const void *x, int B, int T_in,
                                  int C, void *cols) {
    if (B <= 0 || T_in < 2 || C <= 0)
        return;
    unsigned blocks = cu_blocks((size_t)B * (T_in / 2) * C * 3, EW_THREADS, EW_BLOCKS_CAP);
    ASR_CU_DISPATCH(d, t, "im2col_s2", TT,
                    k_im2col_s2<TT><<<blocks, EW_THREADS, 0, cu_stream(d)>>>((const TT *)x, B, T_in,
                                                                             C, (TT *)cols));
    cu_check(d, "im2col_s2");
}

/* ---- embed ---- */
/* x[i][c] = emb[tokens[i]][c] + pos[positions[i]][c]; one block per token (y strides). */
template <typename E, typename T>
__global__ void k_embed(const E *emb, int ld, const float *pos, const int32_t *tokens,
                        const int32_t *positions, int n, int dim, T *x) {
    for (int i = blockIdx.x; i < n; i += gridDim.x) {
        const E *er = emb + (size_t)tokens[i] * ld;
        const float *pr = pos + (size_t)positions[i] * dim;
        T *xr = x + (size_t)i * dim;
        for (int c = threadIdx.x; c < dim; c += blockDim.x)
            st_f(xr + c, ld_f(er + c) + pr[c]);
    }
}

template <typename T>
static void embed_to(asr_dev_t *d, const asr_dev_w_t *emb, const float *pos, const int32_t *tokens,
                     const int32_t *positions, int n, int dim, T *x) {
    unsigned blocks = (unsigned)(n < 65535 ? n : 65535);
    ASR_CU_DISPATCH(d, emb->type, "embed (table)", E,
                    k_embed<E, T><<<blocks, 256, 0, cu_stream(d)>>>(
                        (const E *)emb->data, emb->ld, pos, tokens, positions, n, dim, x));
}

extern "C" void asr__cu_embed(asr_dev_t *d, asr_dtype_t t, const asr_dev_w_t *emb, const float *pos,
                              const int32_t *tokens, const int32_t *positions, int n, int dim,
                              void *x) {
    if (n <= 0 || dim <= 0)
        return;
    ASR_CU_DISPATCH(d, t, "embed", T, embed_to<T>(d, emb, pos, tokens, positions, n, dim, (T *)x));
    cu_check(d, "embed");
}

/* ---- the GEMM epilogue, int8 dequantization ---- */
__device__ __forceinline__ float gelu_erf(float x) {
    return 0.5f * x * (1.f + erff(x * 0.70710678118654752440f));
}

template <typename T>
__global__ void k_bias_act(T *c, int ldc, int m, int n, const float *bias, bool gelu) {
    for (int i = blockIdx.y; i < m; i += gridDim.y) {
        T *cr = c + (size_t)i * ldc;
        for (int j = blockIdx.x * blockDim.x + threadIdx.x; j < n; j += gridDim.x * blockDim.x) {
            float v = ld_f(cr + j) + (bias ? bias[j] : 0.f);
            st_f(cr + j, gelu ? gelu_erf(v) : v);
        }
    }
}

/* 16 bytes per thread-step over the m × n/V vectors: n and ldc multiples of V, c 16-byte
 * aligned. */
template <typename T>
__global__ void k_bias_act_v(T *c, int ldc, int m, int n, const float *bias, bool gelu) {
    const int ve = Vec16<T>::n;
    const size_t nv = (size_t)(n / ve), total = (size_t)m * nv;
    for (size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x; idx < total;
         idx += (size_t)gridDim.x * blockDim.x) {
        size_t i = idx / nv;
        int j = (int)(idx - i * nv) * ve;
        T *p = c + i * ldc + j;
        float v[Vec16<T>::n];
        ld16_f(p, v);
#pragma unroll
        for (int e = 0; e < ve; e++) {
            float a = v[e] + (bias ? bias[j + e] : 0.f);
            v[e] = gelu ? gelu_erf(a) : a;
        }
        st16_f(p, v);
    }
}

template <typename T>
static void bias_act_launch(asr_dev_t *d, T *c, int ldc, int m, int n, const float *bias,
                            bool gelu) {
    const int ve = Vec16<T>::n;
    cudaStream_t st = cu_stream(d);
    if (n % ve == 0 && ldc % ve == 0 && !((uintptr_t)c & 15)) {
        unsigned blocks = cu_blocks((size_t)m * (n / ve), EW_THREADS, EW_BLOCKS_CAP);
        k_bias_act_v<T><<<blocks, EW_THREADS, 0, st>>>(c, ldc, m, n, bias, gelu);
    } else {
        dim3 grid(cu_blocks((size_t)n, EW_THREADS, 1024), (unsigned)(m < 65535 ? m : 65535));
        k_bias_act<T><<<grid, EW_THREADS, 0, st>>>(c, ldc, m, n, bias, gelu);
    }
}

extern "C" void asr__cu_bias_act(asr_dev_t *d, asr_dtype_t ct, void *c, int ldc, int m, int n,
                                 const float *bias, bool gelu) {
    if (m <= 0 || n <= 0 || (!bias && !gelu))
        return;
    ASR_CU_DISPATCH(d, ct, "bias_act", T, bias_act_launch<T>(d, (T *)c, ldc, m, n, bias, gelu));
    cu_check(d, "bias_act");
}

__global__ void k_dequant_i8(const int8_t *q, const float *scale, int n, int k, int ld,
                             __half *out) {
    for (int j = blockIdx.y; j < n; j += gridDim.y) {
        const int8_t *qr = q + (size_t)j * ld;
        __half *orow = out + (size_t)j * k;
        float s = scale[j];
        for (int t = blockIdx.x * blockDim.x + threadIdx.x; t < k; t += gridDim.x * blockDim.x)
            orow[t] = __float2half_rn(s * (float)qr[t]);
    }
}

/* 16 weights per thread-step (16 bytes in, 32 out): k and ld multiples of 16, q and out 16-byte
 * aligned. */
__global__ void k_dequant_i8_v(const int8_t *q, const float *scale, int n, int k, int ld,
                               __half *out) {
    const size_t kv = (size_t)(k / 16), total = (size_t)n * kv;
    for (size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x; idx < total;
         idx += (size_t)gridDim.x * blockDim.x) {
        size_t j = idx / kv;
        int t = (int)(idx - j * kv) * 16;
        uint4 u = *reinterpret_cast<const uint4 *>(q + j * ld + t);
        const int8_t *e = reinterpret_cast<const int8_t *>(&u);
        float s = scale[j];
        uint4 o[2];
        __half *oh = reinterpret_cast<__half *>(o);
#pragma unroll
        for (int i = 0; i < 16; i++)
            oh[i] = __float2half_rn(s * (float)e[i]);
        uint4 *dst = reinterpret_cast<uint4 *>(out + j * k + t);
        dst[0] = o[0];
        dst[1] = o[1];
    }
}

extern "C" void asr__cu_dequant_i8(asr_dev_t *d, const int8_t *q, const float *scale, int n, int k,
                                   int ld, uint16_t *out) {
    if (n <= 0 || k <= 0)
        return;
    if (k % 16 == 0 && ld % 16 == 0 && !((uintptr_t)q & 15) && !((uintptr_t)out & 15)) {
        unsigned blocks = cu_blocks((size_t)n * (k / 16), EW_THREADS, EW_BLOCKS_CAP);
        k_dequant_i8_v<<<blocks, EW_THREADS, 0, cu_stream(d)>>>(q, scale, n, k, ld, (__half *)out);
    } else {
        dim3 grid(cu_blocks((size_t)k, EW_THREADS, 1024), (unsigned)(n < 65535 ? n : 65535));
        k_dequant_i8<<<grid, EW_THREADS, 0, cu_stream(d)>>>(q, scale, n, k, ld, (__half *)out);
    }
    cu_check(d, "dequant_i8");
}
