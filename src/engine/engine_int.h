/* engine: private structures shared by the engine's files. Nothing outside src/engine includes
 * this. */
#ifndef ASR_ENGINE_INT_H
#define ASR_ENGINE_INT_H

#include "asr/engine.h"
#include "core/core.h"
#include "nn/nn.h"
#include "engine/tokenizer.h"
#include "engine/mel.h"

#define ASR_N_SAMPLES_30S 480000
#define ASR_N_FRAMES_30S 3000

typedef struct {
    float *w; /* [n_out][n_in] */
    float *b; /* [n_out] or NULL */
    int n_out, n_in;
} asr_linear_t;

typedef struct {
    float *gamma, *beta; /* [d] */
} asr_norm_t;

typedef struct {
    asr_norm_t attn_ln;
    asr_linear_t qkv; /* [3d][d] */
    asr_linear_t out; /* [d][d] */
    asr_norm_t ffn_ln;
    asr_linear_t ffn1; /* [4d][d] */
    asr_linear_t ffn2; /* [d][4d] */
} asr_enc_layer_t;

typedef struct {
    asr_norm_t attn_ln;
    asr_linear_t qkv; /* [3d][d] */
    asr_linear_t out;
    asr_norm_t cross_ln;
    asr_linear_t cross_q;  /* [d][d] */
    asr_linear_t cross_kv; /* [2d][d] applied to encoder output */
    asr_linear_t cross_out;
    asr_norm_t ffn_ln;
    asr_linear_t ffn1, ffn2;
} asr_dec_layer_t;

struct asr_model {
    asr_model_info_t info;
    int n_threads;
    size_t weight_bytes;
    /* encoder */
    float *conv1_w; /* [d][n_mels*3] */
    float *conv1_b; /* [d] */
    float *conv2_w; /* [d][d*3] */
    float *conv2_b;
    float *enc_pos;       /* [1500][d] */
    asr_enc_layer_t *enc; /* [n_audio_layer] */
    asr_norm_t enc_ln;
    /* decoder */
    float *tok_emb;       /* [n_vocab][d], also the output projection */
    float *dec_pos;       /* [448][d] */
    asr_dec_layer_t *dec; /* [n_text_layer] */
    asr_norm_t dec_ln;
    /* tokens */
    asr_tokenizer_t *tok;
    asr_special_tokens_t sp;
    int32_t *suppress; /* sorted ids suppressed at every step */
    int n_suppress;
    int alignment_heads[64][2];
    int n_alignment_heads;
    asr_mel_t *mel;
    /* all weight buffers, for freeing */
    void **allocs;
    int n_allocs;
};

/* Per-stream buffers, sized at creation from the model's dimensions. */
typedef struct {
    float *x;      /* [1500][d] residual stream */
    float *h;      /* [1500][d] normed */
    float *big;    /* [1500][max(4d, 3d, 3*d conv im2col, 3*n_mels)] and conv1 [3000][d] */
    float *big2;   /* [3000][max(d*?)] conv1 output / im2col */
    float *scores; /* [n_threads][1500][1500] attention scores */
    float *out;    /* [1500][d] encoder output */
} asr_enc_buf_t;

struct asr_stream {
    const asr_model_t *m;
    asr_pool_t *pool;
    int n_threads;
    asr_enc_buf_t eb;
    /* decoder state */
    float *cross_kv; /* [n_text_layer][1500][2d] */
    int n_seq_cap;   /* sequences (beams/samples) the caches hold */
    float *self_k;   /* [n_seq_cap][n_text_layer][448][d] */
    float *self_v;   /* [n_seq_cap][n_text_layer][448][d] */
    float *self_k2;  /* same shape: target of beam reordering (ping-pong) */
    float *self_v2;
    float *dx, *dh, *dqkv, *dattn, *dffn, *dscores; /* decoder scratch, sized for 448 rows */
    float *logits;                                  /* [n_seq_cap][n_vocab] */
    float *align_capture; /* when set: raw cross-attention scores of the alignment heads,
                             [n_alignment_heads][align_rows][align_frames] */
    int align_rows, align_frames;
    float *logprobs; /* [n_seq_cap][n_vocab] */
    /* results */
    asr_segment_t *segs;
    int n_segs, cap_segs;
    asr_buf_t text_pool; /* segment texts; offsets in seg_text_off */
    size_t *seg_text_off;
    int32_t *tok_pool;
    size_t n_tok_pool, cap_tok_pool;
    size_t *seg_tok_off;
    asr_word_t *words; /* all words; text pointers fixed up lazily from word_text */
    size_t *word_text_off;
    int n_words, cap_words;
    asr_buf_t word_text;
    int *seg_word_first, *seg_n_words; /* [cap_segs] */
    char language[16];
    float language_prob;
    double duration;
    char errmsg[256];
};

/* encoder.c */
asr_err_t asr__enc_buf_init(asr_enc_buf_t *b, const asr_model_t *m, int n_threads);
void asr__enc_buf_free(asr_enc_buf_t *b);
/* mel_window [n_mels][3000] -> s->eb.out [1500][d] */
void asr__encode(asr_stream_t *s, const float *mel_window);

/* decoder.c */
asr_err_t asr__dec_init(asr_stream_t *s);
void asr__dec_free(asr_stream_t *s);
/* Computes cross-attention K/V from s->eb.out. */
void asr__dec_cross_kv(asr_stream_t *s);
/* Ensures caches for n_seq parallel sequences (beams or samples). Allocates only when growing. */
asr_err_t asr__dec_reserve(asr_stream_t *s, int n_seq);
/* Runs tokens[0..n) of sequence 0 at positions pos0.. through the decoder, appending to its
 * self-attention cache. If logits_row >= 0, computes the logits of that row into s->logits. */
void asr__dec_forward(asr_stream_t *s, const int32_t *tokens, int n, int pos0, int logits_row);
/* Logits of row `row` of the last asr__dec_forward block into s->logits. */
void asr__dec_logits_row(asr_stream_t *s, int row);
/* One step for n_seq sequences: token[i] of sequence i at position pos; logits of sequence i go to
 * s->logits + i*n_vocab. */
void asr__dec_step(asr_stream_t *s, const int32_t *tokens, int n_seq, int pos);
/* Reorders sequence caches: new sequence i takes the first `len` positions of old src[i]. */
void asr__dec_reorder(asr_stream_t *s, const int *src, int n_seq, int len);

#endif
