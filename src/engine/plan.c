/* engine: the memory plan (see engine.h). One layout function places every buffer of a slot in
 * its arena; the plan sums the same layout, so the plan and what a stream allocates cannot
 * disagree. Dimensions come from the model file header (asr_model_probe, no weights read) or from
 * the table of official sizes. */
#include <fcntl.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/ct2.h"
#include "engine/engine_int.h"
#include "engine/frames.h"
#include "nn/isa.h"

#define ALIGN 64

static size_t place(size_t *cursor, size_t bytes) {
    size_t off = *cursor;
    *cursor += (bytes + ALIGN - 1) / ALIGN * ALIGN;
    return off;
}

void asr__slot_layout(const asr_model_info_t *in, int n_seq, asr_wtype_t wtype, bool gpu,
                      asr__slot_layout_t *L) {
    size_t d = (size_t)in->d_model, ff = 4 * d, nl = (size_t)in->n_text_layer;
    size_t C = (size_t)in->n_text_ctx, F = (size_t)in->n_audio_ctx, V = (size_t)in->n_vocab;
    size_t mels = (size_t)in->n_mels, f = sizeof(float);
    size_t big = 3000 * 3 * mels;
    if (1500 * 3 * d > big)
        big = 1500 * 3 * d;
    if (1500 * ff > big)
        big = 1500 * ff;
    size_t cur = 0, kv = (size_t)n_seq * nl * C * d * f;
    memset(L, 0, sizeof *L);
    if (gpu) /* a GPU stream: the encoder, caches and decoder scratch live on the device */
        big = F = C = kv = ff = d = 0;
    L->off[ASR_SLOT_ENC_X] = place(&cur, F * d * f);
    L->off[ASR_SLOT_ENC_H] = place(&cur, F * d * f);
    L->off[ASR_SLOT_ENC_BIG] = place(&cur, big * f);
    /* conv1's output after a row of zeros: packed conv2 reads its input rows in place */
    L->off[ASR_SLOT_ENC_BIG2] = place(&cur, 3001 * d * f);
    L->off[ASR_SLOT_ENC_SCORES] = place(
        &cur,
        F * F * f + (gpu ? 0 : asr_nn_attn_bf16_bytes(wtype, (int)F, (int)d, in->n_audio_head)));
    L->off[ASR_SLOT_ENC_OUT] = place(&cur, F * d * f);
    size_t enc_w = ff * d * f, dn = gpu ? 0 : asr__enc_dnnl_scratch(in, asr__enc_dnnl_type(wtype));
    L->off[ASR_SLOT_ENC_W] = place(&cur, dn > enc_w ? dn : enc_w);
    L->part[ASR_PLAN_PART_ENCODER] = cur;
    /* the self-attention K/V reuse the encoder's buffers: a window's encoder pass is over (its
     * output made into cross K/V) before its decoding writes them, and the next pass starts a new
     * decoding; they take only the bytes beyond the encoder's (self_kv part) */
    size_t enc_end = cur;
    cur = 0;
    L->off[ASR_SLOT_SELF_K] = place(&cur, kv);
    L->off[ASR_SLOT_SELF_V] = place(&cur, kv);
    L->part[ASR_PLAN_PART_SELF_KV] = cur > enc_end ? cur - enc_end : 0;
    cur = cur > enc_end ? cur : enc_end;
    size_t mark = cur;
    L->off[ASR_SLOT_CROSS_KV] = place(&cur, nl * F * 2 * d * (wtype == ASR_W_F32 ? f : 2));
    L->part[ASR_PLAN_PART_CROSS_KV] = cur - mark, mark = cur;
    L->off[ASR_SLOT_DX] = place(&cur, C * d * f);
    L->off[ASR_SLOT_DH] = place(&cur, C * d * f);
    L->off[ASR_SLOT_DQKV] = place(&cur, C * 3 * d * f);
    L->off[ASR_SLOT_DATTN] = place(&cur, C * d * f);
    L->off[ASR_SLOT_DFFN] = place(&cur, C * ff * f);
    L->off[ASR_SLOT_DSCORES] = place(&cur, C * F * f);
    L->part[ASR_PLAN_PART_DECODER] = cur - mark, mark = cur;
    /* a GPU stream's logits are pinned memory the device copies into (gpu_model.c) */
    L->off[ASR_SLOT_LOGITS] = place(&cur, gpu ? 0 : (size_t)n_seq * V * f);
    L->off[ASR_SLOT_LOGPROBS] = place(&cur, (size_t)n_seq * V * f);
    L->part[ASR_PLAN_PART_LOGITS] = cur - mark, mark = cur;
    L->off[ASR_SLOT_WIN] = place(&cur, mels * 3000 * f);
    L->off[ASR_SLOT_FRAMES_RAW] = place(&cur, mels * 3000 * f);
    L->off[ASR_SLOT_FRAMES_BUF] = place(&cur, ASR_FRAMES_BUF_CAP * f);
    L->part[ASR_PLAN_PART_FRONTEND] = cur - mark;
    L->arena_bytes = cur;
    /* word timestamps (allocated per call, see align.c): capture [heads][C][F], weights [C][F],
     * DTW cost (float) and trace (byte) [(C+1)][(F+1)] */
    size_t heads = (size_t)(in->n_alignment_heads > 0 ? in->n_alignment_heads : 1);
    L->part[ASR_PLAN_PART_ALIGN] = heads * C * F * f + C * F * f + (C + 1) * (F + 1) * (f + 1);
}

int asr__enc_dnnl_type(asr_wtype_t wtype) {
    const asr_isa_t *t = asr_isa();
    /* measured (bench/gemm_isa, 1 thread, GFLOP per CPU-second, base's shapes): AMX bfloat16
     * 370-520 and AVX-512 VNNI int8 175-260 against OpenBLAS float32 125-145; AVX-512 BF16
     * without AMX (VDPBF16PS) 84-95 loses, so bfloat16 waits for AMX. int8 from AVX2 up (2
     * threads at ASRD_ISA=avx2, OpenBLAS held to AVX2 by OPENBLAS_CORETYPE=Haswell, sgemm
     * 206-230 GFLOP/s): oneDNN's avx2_vnni kernels 506-534 GOP/s; without VNNI (ASRD_ISA=
     * avx2,-vnni) its avx2 ones 311-351 with 7-bit weights (asr_nn_dnnl_weight_max) */
    if (wtype == ASR_W_BF16 && t->level >= ASR_ISA_AMX)
        return ASR_NN_DNNL_BF16;
    if (wtype == ASR_W_I8 && t->level >= ASR_ISA_AVX2)
        return ASR_NN_DNNL_I8;
    return -1;
}

size_t asr__enc_dnnl_scratch(const asr_model_info_t *in, int type) {
    if (type < 0)
        return 0;
    size_t d = (size_t)in->d_model, m = 1500, k = 4 * d, a64 = 64;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    /* oneDNN's own: measured 44 KB (2 threads, d 384) to 1.1 MB (16 threads, d 1280) */
    size_t own = ((size_t)2 << 20) + ((size_t)128 << 10) * (size_t)(cores > 0 ? cores : 1);
#define AL(x) (((x) + a64 - 1) / a64 * a64)
    /* bfloat16: A converted (m·k·2 bytes), or, for a GEMM that reads bfloat16 A as is and splits
     * the columns (ffn2: gemm_dnnl.c), the parts' float32 results (m·d·4, less) */
    if (type == ASR_NN_DNNL_BF16)
        return own + AL(m * k * 2);
    return own + AL(m * k) + AL(m * sizeof(float)) + AL(m * 4 * d * sizeof(int32_t));
#undef AL
}

int asr__compute_type(const char *name, asr_wtype_t *out) {
    if (!name || !*name || !strcmp(name, "default") || !strcmp(name, "float32"))
        *out = ASR_W_F32;
    else if (!strcmp(name, "bfloat16"))
        *out = ASR_W_BF16;
    else if (!strcmp(name, "int8"))
        *out = ASR_W_I8;
    else if (!strcmp(name, "auto"))
        *out = ASR_AUTO_COMPUTE_TYPE;
    else
        return -1;
    return 0;
}

const char *asr_compute_type_name(const char *name) {
    asr_wtype_t t;
    if (asr__compute_type(name, &t))
        return NULL;
    return t == ASR_W_I8 ? "int8" : t == ASR_W_BF16 ? "bfloat16" : "float32";
}

asr_err_t asr_plan_compute(const asr_model_info_t *in, const char *compute_type, int n_seq,
                           bool word_timestamps, asr_plan_t *out) {
    memset(out, 0, sizeof *out);
    asr_wtype_t wt;
    if (asr__compute_type(compute_type, &wt))
        return ASR_ERR_INVALID;
    if (n_seq < 1 || n_seq > ASR_SLOT_MAX_SEQ || in->d_model <= 0 || in->n_text_layer <= 0 ||
        in->n_audio_layer <= 0 || in->n_vocab <= 0 || in->n_mels <= 0 || in->n_text_ctx <= 0 ||
        in->n_audio_ctx <= 0)
        return ASR_ERR_INVALID;
    size_t d = (size_t)in->d_model, ff = 4 * d, mels = (size_t)in->n_mels, f = sizeof(float);
    /* float32 everywhere except the matrices: the encoder's and cross K/V's stay in the file's
     * float16 (made float32 per GEMM); the decoder's and the token embedding in the compute
     * type's storage */
    size_t lin = 0, h = 0, h_rows = 0, e16 = 0; /* float32 values, decoder matrix values and rows,
                                                   encoder-side float16 values */
#define LIN16(o, i) (e16 += (size_t)(o) * (i), lin += (o))
#define LINH(o, i) (h += (size_t)(o) * (i), lin += (o), h_rows += (o))
    size_t norm = 2 * d;
    LIN16(3 * d, d), LIN16(d, d), LIN16(ff, d), LIN16(d, ff);
    size_t enc_layer = lin + 2 * norm, enc_layer16 = e16;
    lin = 0, e16 = 0;
    LINH(3 * d, d), LINH(d, d), LINH(d, d), LIN16(2 * d, d), LINH(d, d), LINH(ff, d), LINH(d, ff);
    size_t dec_layer = lin + 3 * norm, dec_layer_h = h, dec_layer_rows = h_rows, dec_layer16 = e16;
#undef LIN16
#undef LINH
    size_t w = d * mels * 3 + d + d * d * 3 + d + (size_t)in->n_audio_ctx * d;
    w += (size_t)in->n_audio_layer * enc_layer + norm;
    w += (size_t)in->n_text_ctx * d;
    w += (size_t)in->n_text_layer * dec_layer + norm;
    /* the embedding: float16 under float32, two int8 levels with their scales under int8 and
     * bfloat16 (added below) */
    size_t emb = (size_t)in->n_vocab * d;
    /* a file whose matrices are not float16 has them made float32: the encoder's, and the
     * decoder's and the embedding's under float32 compute */
    size_t m16 = in->f32_matrices ? 4 : 2;
    size_t emb_b = wt == ASR_W_F32 ? m16 : 0;
    size_t wh = (size_t)in->n_text_layer * dec_layer_h;
    out->n_seq = n_seq;
    out->compute_type = wt == ASR_W_I8 ? "int8" : wt == ASR_W_BF16 ? "bfloat16" : "float32";
    out->word_timestamps = word_timestamps;
    /* the decoder matrices: float16 under float32 (the files are float16), bfloat16, or int8
     * with a float scale per row */
    size_t rows = (size_t)in->n_text_layer * dec_layer_rows;
    size_t w16 = (size_t)in->n_audio_layer * enc_layer16 + (size_t)in->n_text_layer * dec_layer16;
    out->weights = w * f + w16 * m16 + emb * emb_b +
                   (wt == ASR_W_I8 ? wh + rows * f : wh * (wt == ASR_W_BF16 ? 2 : m16));
    if (wt != ASR_W_F32)
        out->weights += 2 * (emb + (size_t)in->n_vocab * f);
    /* the encoder's matrices (and the convolutions', and the decoder's cross K/V projections)
     * packed for oneDNN: bfloat16 or int8 with a scale per column, each with its bias copied; they
     * replace the mapped float16 ones (a float32 file's stay: they are part of the weights' region)
     */
    int dt = asr__enc_dnnl_type(wt);
    if (dt >= 0) {
        size_t xkv16 = (size_t)in->n_text_layer * 2 * d * d;
        size_t enc16 = (size_t)in->n_audio_layer * enc_layer16 + xkv16;
        size_t vals = enc16 + 3 * d * d + 3 * mels * d;
        size_t outs = (size_t)in->n_audio_layer * 9 * d + 2 * d + (size_t)in->n_text_layer * 2 * d;
        out->weights += dt == ASR_NN_DNNL_BF16 ? 2 * vals + f * outs : vals + 2 * f * outs;
        /* int8 below AMX (brg:avx512_core_vnni): the packed weights carry 12 more bytes per
         * column (measured: `asrd debug weights` at ASRD_ISA=avx512) */
        if (dt == ASR_NN_DNNL_I8 && asr_isa()->level < ASR_ISA_AMX)
            out->weights += 12 * outs;
        if (!in->f32_matrices)
            out->weights -= enc16 * 2;
    }
    /* a quantized ggml file is dequantized to float16 when opened, before the decoder's
     * matrices are converted to the compute type: loading peaks at every matrix in float16 */
    if (in->dequantized)
        out->weights = out->weights > w * f + (w16 + emb + wh) * 2 ? out->weights
                                                                   : w * f + (w16 + emb + wh) * 2;
    asr__slot_layout_t L;
    asr__slot_layout(in, n_seq, wt, false, &L);
    out->encoder = L.part[ASR_PLAN_PART_ENCODER];
    out->cross_kv = L.part[ASR_PLAN_PART_CROSS_KV];
    out->self_kv = L.part[ASR_PLAN_PART_SELF_KV];
    out->decoder = L.part[ASR_PLAN_PART_DECODER];
    out->logits = L.part[ASR_PLAN_PART_LOGITS];
    out->frontend = L.part[ASR_PLAN_PART_FRONTEND];
    out->align = word_timestamps ? L.part[ASR_PLAN_PART_ALIGN] : 0;
    out->slot = L.arena_bytes + out->align;
    out->overhead = ASR_PLAN_OVERHEAD;
    out->total = out->weights + out->slot + out->overhead;
    return ASR_OK;
}

/* ---- official sizes ---- */

typedef struct {
    const char *name;
    asr_model_info_t dims;
} named_t;

#define DIMS(mels, vocab, d, la, lt, h, ml)                                                        \
    {                                                                                              \
        mels, vocab, d, la, lt, h, h, 1500, 448, ml, (ml) ? ((vocab) == 51866 ? 100 : 99) : 0,     \
            ((lt) - (lt) / 2) * (h), false, false, "", ""                                          \
    }

static const named_t NAMED[] = {
    {"tiny.en", DIMS(80, 51864, 384, 4, 4, 6, false)},
    {"tiny", DIMS(80, 51865, 384, 4, 4, 6, true)},
    {"base.en", DIMS(80, 51864, 512, 6, 6, 8, false)},
    {"base", DIMS(80, 51865, 512, 6, 6, 8, true)},
    {"small.en", DIMS(80, 51864, 768, 12, 12, 12, false)},
    {"small", DIMS(80, 51865, 768, 12, 12, 12, true)},
    {"medium.en", DIMS(80, 51864, 1024, 24, 24, 16, false)},
    {"medium", DIMS(80, 51865, 1024, 24, 24, 16, true)},
    {"large-v1", DIMS(80, 51865, 1280, 32, 32, 20, true)},
    {"large-v2", DIMS(80, 51865, 1280, 32, 32, 20, true)},
    {"large-v3", DIMS(128, 51866, 1280, 32, 32, 20, true)},
    {"large-v3-turbo", DIMS(128, 51866, 1280, 32, 4, 20, true)},
};

static const char *const NAMES[] = {"tiny.en",  "tiny",           "base.en", "base",     "small.en",
                                    "small",    "medium.en",      "medium",  "large-v1", "large-v2",
                                    "large-v3", "large-v3-turbo", NULL};

const char *const *asr_model_named_sizes(void) { return NAMES; }

const asr_model_info_t *asr_model_dims_named(const char *name) {
    if (!name)
        return NULL;
    if (!strcasecmp(name, "turbo") || !strcasecmp(name, "large-turbo"))
        name = "large-v3-turbo";
    if (!strcasecmp(name, "large"))
        name = "large-v3";
    for (size_t i = 0; i < sizeof NAMED / sizeof *NAMED; i++)
        if (!strcasecmp(NAMED[i].name, name))
            return &NAMED[i].dims;
    return NULL;
}

asr_err_t asr_model_probe(const char *dir, asr_model_info_t *out, char *errbuf, size_t errbuf_len) {
    memset(out, 0, sizeof *out);
    asr_wfile_t f;
    char mdir[4096];
    asr_err_t rc = asr_wfile_open_shapes(dir, &f, mdir, errbuf, errbuf_len);
    if (rc == ASR_OK) {
        rc = asr__model_dims(&f, out, errbuf, errbuf_len) == 0 ? ASR_OK : ASR_ERR_MODEL;
        asr_wfile_free(&f);
    }
    if (rc == ASR_OK) {
        out->multilingual = out->n_vocab >= 51865;
        out->n_languages = out->multilingual ? (out->n_vocab == 51866 ? 100 : 99) : 0;
        out->n_alignment_heads = asr__model_count_alignment_heads(mdir, out);
    }
    return rc;
}
