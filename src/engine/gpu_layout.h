/* engine: the device memory layout of the GPU engine, private to src/engine. The one home of
 * every size the GPU engine allocates on a device: the weights arena (each tensor rounded by
 * asr_dev_arena_round, in walk_weights' order), the scratch arena (encoder and decoder regions
 * sharing memory, plus the int8 dequantization buffer), a stream's slot arena and the pinned host
 * buffers. gpu_model.c sizes its arenas with these functions and asr_plan_gpu_compute
 * (plan_gpu.c) reports them, so the plan and what the engine allocates cannot disagree. Inputs are
 * dimensions only (no weights read). */
#ifndef ASR_ENGINE_GPU_LAYOUT_H
#define ASR_ENGINE_GPU_LAYOUT_H

#include <stddef.h>

#include "asr/engine.h"
#include "gpu/dev.h"

#define ASR_GPU_DEFAULT_MAX_BATCH 16
#define ASR_GPU_MAX_MAX_BATCH 256
/* The pinned staging buffer of an upload, and its float32 conversion rows (host, load only). */
#define ASR_GPU_STAGING_BYTES ((size_t)8 << 20)

/* max_batch as the engine runs it: <= 0 the default, clamped to ASR_GPU_MAX_MAX_BATCH. */
int asr__gpu_max_batch(int max_batch);
/* Decoder rows of the scratch: max(n_text_ctx, max_batch * ASR_SLOT_MAX_SEQ). */
int asr__gpu_max_rows(const asr_model_info_t *in, int max_batch);

/* Bytes of the weights arena with matrices stored as wt (the token embedding float16 under int8;
 * biases, norms and positional embeddings float32; every linear layer with its bias). */
size_t asr__gpu_weights_bytes(const asr_model_info_t *in, asr_dtype_t wt);

/* The scratch arena: byte offsets of each piece from its base (shapes in gpu_int.h). */
typedef struct {
    size_t e_mel, e_x, e_h, e_big, e_big2;
    size_t d_x, d_h, d_qkv, d_att, d_ffn, d_logits, d_align, d_rows, d_tok, d_pos;
    size_t deq;       /* the int8 dequantization buffer (valid when dequant > 0) */
    size_t deq_bytes; /* its bytes as handed to asr_dev_set_scratch (0 unless int8) */
    size_t encoder;   /* the encoder region (rounded pieces) */
    size_t decoder;   /* the decoder region */
    size_t dequant;   /* the dequantization buffer, rounded */
    size_t bytes;     /* the arena: max(encoder, decoder) + dequant */
} asr__gpu_scratch_layout_t;
void asr__gpu_scratch_layout(const asr_model_info_t *in, asr_dtype_t t, asr_dtype_t wt,
                             int max_batch, asr__gpu_scratch_layout_t *L);

/* A stream's slot arena of n_seq sequences: sizes (unrounded, as asr_dev_arena_take is asked)
 * of xkv, self_k, self_v and last, in that order; bytes = the sum of their rounded sizes. */
typedef struct {
    size_t size[4];
    size_t cross_kv, self_kv, last; /* rounded: self_kv is self_k + self_v */
    size_t bytes;
} asr__gpu_slot_layout_t;
void asr__gpu_slot_layout(const asr_model_info_t *in, asr_dtype_t t, int n_seq,
                          asr__gpu_slot_layout_t *L);

/* The model's pinned host buffers: h_mel, h_align, h_rows, h_tok, h_pos (bytes, in that order);
 * returns their sum. */
size_t asr__gpu_pinned_layout(const asr_model_info_t *in, int max_batch, size_t out[5]);

#endif
