/* engine: the device memory plan (engine.h, asr_plan_gpu_compute) and the GPU engine's layout
 * (gpu_layout.h). gpu_model.c sizes the weights, scratch and slot arenas and the pinned buffers
 * with the functions here, and the plan sums the same functions: what `asrd plan --device cuda`
 * prints is what the engine allocates, byte for byte (test_plan_gpu checks it against a loaded
 * model's arenas). The weights count follows walk_weights' order and rounding (each tensor its
 * own rounded piece); a linear layer without a bias in its file gets zeros on the device, so the
 * layout depends on the dimensions only. */
#include <string.h>

#include "engine/gpu_int.h"

int asr__gpu_max_batch(int max_batch) {
    if (max_batch <= 0)
        return ASR_GPU_DEFAULT_MAX_BATCH;
    return max_batch > ASR_GPU_MAX_MAX_BATCH ? ASR_GPU_MAX_MAX_BATCH : max_batch;
}

int asr__gpu_max_rows(const asr_model_info_t *in, int max_batch) {
    int b = asr__gpu_max_batch(max_batch);
    return b * ASR_SLOT_MAX_SEQ > in->n_text_ctx ? b * ASR_SLOT_MAX_SEQ : in->n_text_ctx;
}

/* ---- weights ---- */

static size_t f32v(size_t n) { return asr_dev_arena_round(n * sizeof(float)); }

/* A matrix [n][k] stored as type (int8: plus a float32 scale per row). */
static size_t mat(size_t n, size_t k, asr_dtype_t type) {
    size_t b = asr_dev_arena_round(n * k * asr_dtype_size(type));
    return type == ASR_DT_I8 ? b + f32v(n) : b;
}

static size_t lin(size_t n, size_t k, asr_dtype_t wt) { return mat(n, k, wt) + f32v(n); }

size_t asr__gpu_weights_bytes(const asr_model_info_t *in, asr_dtype_t wt) {
    const size_t d = (size_t)in->d_model, ff = 4 * d, mels = (size_t)in->n_mels;
    const size_t norm = 2 * f32v(d);
    size_t enc = norm + lin(3 * d, d, wt) + lin(d, d, wt) + norm + lin(ff, d, wt) + lin(d, ff, wt);
    size_t dec = norm + lin(3 * d, d, wt) + lin(d, d, wt) + norm + lin(d, d, wt) +
                 lin(2 * d, d, wt) + lin(d, d, wt) + norm + lin(ff, d, wt) + lin(d, ff, wt);
    size_t w = lin(d, mels * 3, wt) + lin(d, 3 * d, wt) + f32v(1500 * d);
    w += (size_t)in->n_audio_layer * enc + norm;
    w += mat((size_t)in->n_vocab, d, wt == ASR_DT_I8 ? ASR_DT_F16 : wt);
    w += f32v((size_t)in->n_text_ctx * d);
    w += (size_t)in->n_text_layer * dec + norm;
    return w;
}

/* ---- scratch ---- */

static size_t place(size_t *cursor, size_t bytes) {
    size_t off = *cursor;
    *cursor += asr_dev_arena_round(bytes);
    return off;
}

void asr__gpu_scratch_layout(const asr_model_info_t *in, asr_dtype_t t, asr_dtype_t wt,
                             int max_batch, asr__gpu_scratch_layout_t *L) {
    const size_t d = (size_t)in->d_model, B = (size_t)asr__gpu_max_batch(max_batch);
    const size_t R = (size_t)asr__gpu_max_rows(in, max_batch), ff = 4 * d;
    const size_t mels = (size_t)in->n_mels, V = (size_t)in->n_vocab, C = (size_t)in->n_text_ctx;
    const size_t ts = asr_dtype_size(t);
    size_t big = 3000 * 3 * mels;
    big = 1500 * ff > big ? 1500 * ff : big;
    big = 1500 * 3 * d > big ? 1500 * 3 * d : big;
    memset(L, 0, sizeof *L);
    size_t e = 0, c = 0;
    L->e_mel = place(&e, B * mels * 3000 * sizeof(float));
    L->e_x = place(&e, B * 1500 * d * ts);
    L->e_h = place(&e, B * 1500 * d * ts);
    L->e_big = place(&e, B * big * ts);
    L->e_big2 = place(&e, B * 3000 * d * ts);
    L->d_x = place(&c, R * d * ts);
    L->d_h = place(&c, R * d * ts);
    L->d_qkv = place(&c, R * 3 * d * ts);
    L->d_att = place(&c, R * d * ts);
    L->d_ffn = place(&c, R * ff * ts);
    L->d_logits = place(&c, B * ASR_SLOT_MAX_SEQ * V * sizeof(float));
    L->d_align = place(&c, C * 1500 * sizeof(float));
    L->d_rows = place(&c, R * sizeof(asr_dev_row_t));
    L->d_tok = place(&c, R * sizeof(int32_t));
    L->d_pos = place(&c, R * sizeof(int32_t));
    L->encoder = e;
    L->decoder = c;
    /* int8 matrices are dequantized to float16 per GEMM: the largest one's */
    if (wt == ASR_DT_I8) {
        size_t deq = ff * d > 3 * d * d ? ff * d : 3 * d * d;
        L->deq_bytes = 2 * (3 * mels * d > deq ? 3 * mels * d : deq);
        L->deq = e > c ? e : c;
        L->dequant = asr_dev_arena_round(L->deq_bytes);
    }
    L->bytes = (e > c ? e : c) + L->dequant;
}

/* ---- slot and pinned buffers ---- */

void asr__gpu_slot_layout(const asr_model_info_t *in, asr_dtype_t t, int n_seq,
                          asr__gpu_slot_layout_t *L) {
    const size_t d = (size_t)in->d_model, nl = (size_t)in->n_text_layer;
    const size_t C = (size_t)in->n_text_ctx, kv = (size_t)n_seq * nl * C * d;
    const size_t ts = asr_dtype_size(t);
    L->size[0] = nl * 1500 * 2 * d * ts;
    L->size[1] = L->size[2] = kv * ts;
    L->size[3] = C * d * ts;
    L->cross_kv = asr_dev_arena_round(L->size[0]);
    L->self_kv = asr_dev_arena_round(L->size[1]) + asr_dev_arena_round(L->size[2]);
    L->last = asr_dev_arena_round(L->size[3]);
    L->bytes = L->cross_kv + L->self_kv + L->last;
}

size_t asr__gpu_pinned_layout(const asr_model_info_t *in, int max_batch, size_t out[5]) {
    const size_t R = (size_t)asr__gpu_max_rows(in, max_batch), C = (size_t)in->n_text_ctx;
    out[0] = (size_t)asr__gpu_max_batch(max_batch) * (size_t)in->n_mels * 3000 * sizeof(float);
    out[1] = C * 1500 * sizeof(float);
    out[2] = R * sizeof(asr_dev_row_t);
    out[3] = R * sizeof(int32_t);
    out[4] = R * sizeof(int32_t);
    return out[0] + out[1] + out[2] + out[3] + out[4];
}

/* ---- the plan ---- */

asr_err_t asr_plan_gpu_compute(const asr_model_info_t *in, const char *device,
                               const char *compute_type, int max_batch, int n_seq,
                               asr_plan_gpu_t *out) {
    memset(out, 0, sizeof *out);
    bool host;
    if (!device || !strcmp(device, "cuda"))
        host = false;
    else if (!strcmp(device, "host"))
        host = true;
    else
        return ASR_ERR_INVALID;
    asr_dtype_t wt, t;
    const char *canon;
    if (asr__gpu_compute_type(compute_type, host, &wt, &t, &canon) || (host && t != ASR_DT_F32))
        return ASR_ERR_INVALID;
    if (n_seq < 1 || n_seq > ASR_SLOT_MAX_SEQ || in->d_model <= 0 || in->d_model > 8192 ||
        in->n_text_layer <= 0 || in->n_audio_layer <= 0 || in->n_vocab <= 0 || in->n_mels <= 0 ||
        in->n_text_ctx <= 0 || in->n_audio_ctx != 1500)
        return ASR_ERR_INVALID;
    out->device = host ? "host" : "cuda";
    out->compute_type = canon;
    out->max_batch = asr__gpu_max_batch(max_batch);
    out->n_seq = n_seq;
    out->weights = asr__gpu_weights_bytes(in, wt);
    asr__gpu_scratch_layout_t S;
    asr__gpu_scratch_layout(in, t, wt, max_batch, &S);
    out->encoder = S.encoder;
    out->decoder = S.decoder;
    out->dequant = S.dequant;
    out->scratch = S.bytes;
    out->workspace = host ? 0 : ASR_PLAN_GPU_WORKSPACE;
    out->model = out->weights + out->scratch + out->workspace;
    asr__gpu_slot_layout_t L;
    asr__gpu_slot_layout(in, t, n_seq, &L);
    out->cross_kv = L.cross_kv;
    out->self_kv = L.self_kv;
    out->last = L.last;
    out->slot = L.bytes;
    out->context = host ? 0 : ASR_PLAN_GPU_CONTEXT;
    /* the host side: the model's pinned buffers (the load adds ASR_GPU_STAGING_BYTES of pinned
     * staging and as many of conversion rows while it runs); a stream's pinned logits and its
     * CPU-side arena (the search's log-probabilities, the front end's window) */
    size_t pinned[5];
    out->host_model = asr__gpu_pinned_layout(in, max_batch, pinned);
    asr__slot_layout_t H;
    asr__slot_layout(in, n_seq, ASR_W_F32, true, &H);
    out->host_slot = (size_t)n_seq * (size_t)in->n_vocab * sizeof(float) + H.arena_bytes;
    return ASR_OK;
}
