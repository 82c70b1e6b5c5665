/* engine: the encoder on a device (gpu_int.h), mirroring encoder.c for B windows at once: the
 * mel windows of every ENCODE job the batcher took go through one pass whose linear layers see
 * M = B*1500 rows (B*3000 for the first convolution), then each window's encoder output becomes
 * its stream's cross-attention K/V (one GEMM per decoder layer, into the stream's slot: K at
 * column 0, V at column d of each frame's row, K unscaled; the attention kernels scale). Runs on
 * the batcher thread. */
#include <math.h>
#include <string.h>

#include "engine/gpu_int.h"

static void *el(const void *p, asr_dtype_t t, size_t n) {
    return (unsigned char *)p + n * asr_dtype_size(t);
}

static void lin(struct asr__gpu_model *g, const asr__gpu_lin_t *L, const void *a, int lda, void *c,
                int ldc, int m, int flags) {
    asr_dev_linear(g->dev, g->t, a, lda, &L->w, L->b, g->t, c, ldc, m, L->n, L->k, flags);
}

static void enc_layer(struct asr__gpu_model *g, const asr__gpu_enc_layer_t *L, int B) {
    asr_dev_t *dv = g->dev;
    const asr_model_info_t *in = &g->m->info;
    const int d = in->d_model, H = in->n_audio_head, dh = d / H, M = B * 1500, ff = L->ffn1.n;
    asr_dev_layer_norm(dv, g->t, g->e_x, g->e_h, M, d, L->attn_ln.g, L->attn_ln.b, 1e-5f);
    lin(g, &L->qkv, g->e_h, d, g->e_big, 3 * d, M, 0);
    asr_dev_attn_full(dv, g->t, g->e_big, g->e_big2, B, 1500, H, dh, 1.0f / sqrtf((float)dh));
    lin(g, &L->out, g->e_big2, d, g->e_x, d, M, ASR_LIN_ACCUM);
    asr_dev_layer_norm(dv, g->t, g->e_x, g->e_h, M, d, L->ffn_ln.g, L->ffn_ln.b, 1e-5f);
    lin(g, &L->ffn1, g->e_h, d, g->e_big, ff, M, ASR_LIN_GELU);
    lin(g, &L->ffn2, g->e_big, ff, g->e_x, d, M, ASR_LIN_ACCUM);
}

void asr__gpu_run_encode(struct asr__gpu_model *g, asr__gpu_job_t **jobs, int B) {
    asr_dev_t *dv = g->dev;
    const asr_model_info_t *in = &g->m->info;
    const int d = in->d_model, mels = in->n_mels;
    const size_t win = (size_t)mels * 3000;
    for (int b = 0; b < B; b++)
        memcpy(g->h_mel + (size_t)b * win, jobs[b]->mel, win * sizeof(float));
    asr_dev_h2d(dv, g->e_mel, g->h_mel, (size_t)B * win * sizeof(float));
    /* conv1 (k3, s1) and conv2 (k3, s2) as im2col + GEMM, GELU fused */
    asr_dev_im2col_mel(dv, g->t, g->e_mel, B, mels, 3000, g->e_big);
    lin(g, &g->w.conv1, g->e_big, 3 * mels, g->e_big2, d, B * 3000, ASR_LIN_GELU);
    asr_dev_im2col_s2(dv, g->t, g->e_big2, B, 3000, d, g->e_big);
    lin(g, &g->w.conv2, g->e_big, 3 * d, g->e_x, d, B * 1500, ASR_LIN_GELU);
    asr_dev_add_pos(dv, g->t, g->e_x, g->w.enc_pos, B, (size_t)1500 * d);
    for (int l = 0; l < in->n_audio_layer; l++)
        enc_layer(g, &g->w.enc[l], B);
    asr_dev_layer_norm(dv, g->t, g->e_x, g->e_h, B * 1500, d, g->w.enc_ln.g, g->w.enc_ln.b, 1e-5f);
    /* each window's cross K/V into its stream's slot */
    for (int b = 0; b < B; b++) {
        struct asr__gpu_stream *sg = jobs[b]->s->g;
        const void *out = el(g->e_h, g->t, (size_t)b * 1500 * d);
        for (int l = 0; l < in->n_text_layer; l++)
            lin(g, &g->w.dec[l].cross_kv, out, d, el(sg->xkv, g->t, (size_t)l * 1500 * 2 * d),
                2 * d, 1500, 0);
        if (jobs[b]->enc_out) { /* asr_stream_encode: the output as float32 on the host */
            const void *src = out;
            if (g->t != ASR_DT_F32) {
                asr_dev_convert(dv, g->t, out, ASR_DT_F32, g->e_big, (size_t)1500 * d);
                src = g->e_big;
            }
            asr_dev_d2h(dv, jobs[b]->enc_out, src, (size_t)1500 * d * sizeof(float));
            asr_dev_sync(dv, NULL, 0); /* e_big is reused by the next window's conversion */
        }
    }
    asr_dev_sync(dv, NULL, 0);
}
