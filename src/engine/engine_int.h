/* engine: private structures shared by the engine's files. Nothing outside src/engine includes
 * this. */
#ifndef ASR_ENGINE_INT_H
#define ASR_ENGINE_INT_H

#include "asr/engine.h"
#include "core/core.h"
#include "nn/nn.h"
#include "engine/tokenizer.h"
#include "engine/mel.h"
#include "engine/wfile.h"

#define ASR_N_SAMPLES_30S 480000
#define ASR_N_FRAMES_30S 3000
#define ASR_SLOT_MAX_SEQ 8 /* parallel sequences (beams/samples) a slot may hold */
#define ASR_FRAMES_BUF_CAP ((size_t)3000 * 160 + 1024 + 16384) /* frames.c sample ring */

/* Buffers of a slot arena, in layout order (plan.c). */
enum {
    ASR_SLOT_ENC_X,
    ASR_SLOT_ENC_H,
    ASR_SLOT_ENC_BIG,
    ASR_SLOT_ENC_BIG2,
    ASR_SLOT_ENC_SCORES,
    ASR_SLOT_ENC_OUT,
    ASR_SLOT_ENC_W,
    ASR_SLOT_CROSS_KV,
    ASR_SLOT_SELF_K,
    ASR_SLOT_SELF_V,
    ASR_SLOT_DX,
    ASR_SLOT_DH,
    ASR_SLOT_DQKV,
    ASR_SLOT_DATTN,
    ASR_SLOT_DFFN,
    ASR_SLOT_DSCORES,
    ASR_SLOT_LOGITS,
    ASR_SLOT_LOGPROBS,
    ASR_SLOT_WIN,
    ASR_SLOT_FRAMES_RAW,
    ASR_SLOT_FRAMES_BUF,
    ASR_SLOT_N
};
enum {
    ASR_PLAN_PART_ENCODER,
    ASR_PLAN_PART_CROSS_KV,
    ASR_PLAN_PART_SELF_KV,
    ASR_PLAN_PART_DECODER,
    ASR_PLAN_PART_LOGITS,
    ASR_PLAN_PART_FRONTEND,
    ASR_PLAN_PART_ALIGN,
    ASR_PLAN_PART_N
};
typedef struct {
    size_t off[ASR_SLOT_N];       /* byte offsets in the arena (64-byte aligned) */
    size_t part[ASR_PLAN_PART_N]; /* bytes per plan part */
    size_t arena_bytes;
} asr__slot_layout_t;
/* wtype: the compute type's storage; cross K/V are float16 under all but float32. gpu: the slot
 * of a stream of a GPU model, whose encoder, caches and decoder scratch are on the device (the host
 * arena keeps the logits and the front end only; the other buffers have no bytes). */
void asr__slot_layout(const asr_model_info_t *in, int n_seq, asr_wtype_t wtype, bool gpu,
                      asr__slot_layout_t *L);
/* The encoder's GEMMs through oneDNN (nn/gemm_dnnl.c) under a compute type: ASR_NN_DNNL_BF16 or
 * _I8 where this CPU's kernel level runs them (bfloat16: AMX; int8: AVX-512 VNNI),
 * else -1 (float32 compute, or an AVX2 CPU: the float32 path of today). The plan, the slot layout
 * and the loader all ask this. */
int asr__enc_dnnl_type(asr_wtype_t wtype);
/* the bytes a slot's ENC_W buffer gives oneDNN's runs under that type (conversions of A, int8's
 * int32 results, and an allowance for oneDNN's own scratchpad, checked against each primitive's
 * at load) */
size_t asr__enc_dnnl_scratch(const asr_model_info_t *in, int type);

typedef struct {
    float *w;          /* float32 [n_out][n_in] (encoder, cross K/V), or NULL */
    const void *h;     /* or float16 [n_out][n_in] (encoder, cross K/V of a float16 file): the
                          mapped file's little-endian bytes, at any alignment, made float32 per
                          use by asr__lin_f32 */
    asr_wmat_t wm;     /* decoder matrices only: the weights as the kernels read them, in the
                        * compute type's storage (float16 files stay float16 under float32) */
    asr_nn_dnnl_t *dn; /* encoder matrices under bfloat16/int8 where oneDNN has a kernel
                        * (asr__enc_dnnl_type): packed for it at load (h then NULL), or NULL */
    float *b;          /* [n_out] or NULL */
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
    float *conv1_w;          /* [d][n_mels*3] */
    float *conv1_b;          /* [d] */
    float *conv2_w;          /* [d][d*3] */
    asr_nn_dnnl_t *conv1_dn; /* conv1_w packed like the layers' (asr_linear_t.dn), or NULL */
    asr_nn_dnnl_t *conv2_dn; /* conv2_w so */
    float *conv2_b;
    float *enc_pos;       /* [1500][d] */
    asr_enc_layer_t *enc; /* [n_audio_layer] */
    asr_norm_t enc_ln;
    /* decoder */
    asr_wmat_t tok_emb;   /* [n_vocab][d], also the output projection (compute type storage) */
    asr_wmat_t tok_res;   /* int8 and bfloat16: the second int8 level of the embedding (model.c
                             load_embedding: row j = tok_emb's + tok_res's); data NULL otherwise */
    asr_wtype_t wtype;    /* the decoder matrices' storage: the compute type */
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
    /* the weights, in one huge-page region (asr_malloc_huge), and the buffers outside it */
    unsigned char *warena;
    size_t warena_len, warena_used;
    /* the weights file's table, its files mapped read-only: the float16 matrices read once per
     * window (encoder, cross K/V) are used in place, no copy of their own */
    asr_wfile_t wf;
    void **allocs;
    int n_allocs;
    /* where it runs (asr_model_device, asr_model_device_line) */
    char device[16];
    char device_line[256];
    /* the GPU engine (gpu_int.h) when the model runs on a device, else NULL */
    struct asr__gpu_model *g;
    /* a CPU model's batcher of decoder steps across streams (cpu_batch.c), or NULL (off) */
    struct asr__cpu_batch *cb;
};

/* Per-stream buffers, sized at creation from the model's dimensions. */
typedef struct {
    float *x;      /* [1500][d] residual stream */
    float *h;      /* [1500][d] normed */
    float *big;    /* [1500][max(4d, 3d, 3*d conv im2col, 3*n_mels)] and conv1 [3000][d] */
    float *big2;   /* [3000][max(d*?)] conv1 output / im2col */
    float *scores; /* [n_threads][1500][1500] attention scores */
    float *out;    /* [1500][d] encoder output */
    float *w;      /* [4d*d]: a float16 matrix made float32 for one GEMM (asr__lin_f32) */
    size_t w_cap;  /* its floats */
} asr_enc_buf_t;

struct asr_stream {
    const asr_model_t *m;
    unsigned char *arena; /* [arena_bytes], every buffer below that the plan counts */
    size_t arena_bytes;
    float *win; /* [n_mels][3000] mel window */
    float *frames_raw, *frames_buf;
    asr_pool_t *pool;
    int n_threads;
    asr_enc_buf_t eb;
    /* decoder state */
    float *cross_kv;               /* [n_text_layer][1500][2d] */
    int n_seq_cap;                 /* sequences (beams/samples) the caches hold */
    float *self_k;                 /* [n_seq_cap][n_text_layer][448][d], by cache slot */
    float *self_v;                 /* [n_seq_cap][n_text_layer][448][d] */
    int slot_of[ASR_SLOT_MAX_SEQ]; /* the cache slot of each sequence (beam reordering moves
                                      sequences between slots instead of copying caches) */
    float *dx, *dh, *dqkv, *dattn, *dffn, *dscores; /* decoder scratch, sized for 448 rows */
    float *logits;                                  /* [n_seq_cap][n_vocab] */
    float *align_capture; /* when set: raw cross-attention scores of the alignment heads,
                             [n_alignment_heads][align_rows][align_frames] */
    int align_rows, align_frames;
    /* self-attention cache positions [0, self_shared) hold the prompt, the same for every
     * sequence: decoding steps read them from sequence 0 only (set by the search) */
    int self_shared;
    /* the self-attention K/V share the encoder's buffers (plan.c): eb.out holds the last encoder
     * pass only until a decoder pass writes them; cross K/V are computed from it before that */
    bool enc_out_live, xkv_live;
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
    asr_timings_t timings; /* of the last transcription */
    char errmsg[256];
    /* language.c: probabilities of the last detection, Chinese script conversion */
    float lang_probs[ASR_TOKENIZER_MAX_LANGUAGES]; /* [n_lang_probs], language token order */
    int n_lang_probs;                              /* 0: the language was not detected */
    struct asr_zhscript *zh[2];  /* converters to simplified, traditional; opened on first use */
    struct asr_zhscript *zh_out; /* the running transcription's converter, or NULL */
    /* the stream's device state (gpu_int.h) on a GPU model, else NULL */
    struct asr__gpu_stream *g;
    /* its decoder step while submitted to the model's CPU batcher (cpu_batch.c): the tokens
     * (borrowed from the waiting caller), rows, position; done and next under the batcher's
     * mutex; mark: the batcher's round that last ran it (the gather rule) */
    struct {
        const int32_t *tokens;
        int n, pos;
        bool done;
        uint64_t mark;
        struct asr_stream *next;
    } cb;
    /* asr_stream_bench_window: the tokens of its best sequence (tests compare them) */
    int32_t *bench_tokens;
    int n_bench_tokens;
};

/* model.c: dimensions from a parsed model file (0 or -1 with errbuf), alignment heads of a
 * model directory (config.json, else all heads of the upper half of the decoder) */
/* A compute type's name ("float32", "bfloat16", "int8", "auto"; NULL, "" and "default" mean
 * float32) to the decoder matrices' storage type; -1 for an unknown name. */
int asr__compute_type(const char *name, asr_wtype_t *out);
/* What "auto" picks: the compute type measured fastest end to end here (bench/compare.sh, issue
 * 9's closing note): float32. int8 halves the bytes of a decoding step and its steps are faster,
 * but its quantization is paid at every load and its transcripts of noisy audio fall back to
 * sampling more often, so whole transcriptions were slower (and its mean WER 0.5 point higher). */
#define ASR_AUTO_COMPUTE_TYPE ASR_W_F32
int asr__model_dims(const asr_wfile_t *f, asr_model_info_t *in, char *errbuf, size_t errbuf_len);
int asr__model_count_alignment_heads(const char *dir, const asr_model_info_t *in);
/* The alignment heads themselves ([layer, head] pairs into heads; returns their number): those
 * config.json of dir lists, else (or dir NULL) the default set above. */
int asr__model_alignment_heads(const char *dir, const asr_model_info_t *in, int heads[64][2]);
/* The tokenizer of an opened model: a ggml file's own vocabulary, else the tokenizer files of its
 * directory dir (asr_tokenizer_load). *out owned by caller. */
asr_err_t asr__model_load_tokenizer(const asr_wfile_t *f, const char *dir, int n_vocab,
                                    asr_tokenizer_t **out, char *err, size_t err_len);
/* mel_window [n_mels][3000] -> s->eb.out [1500][d] */
void asr__encode(asr_stream_t *s, const float *mel_window);

/* stream.c: the results store. results_reset empties it (and the language, the error message);
 * add_segment appends a segment (text converted by the Chinese script converter when one is
 * active); add_word appends a word to the last segment; fix_pointers makes segment i's text and
 * tokens point into the pools (which move as they grow). */
void asr__stream_results_reset(asr_stream_t *s);
void asr__stream_add_segment(asr_stream_t *s, int seek, double start, double end,
                             const int32_t *toks, int n_toks, const char *text, size_t text_len,
                             float temperature, float avg_logprob, float cr, float nsp);
void asr__stream_add_word(asr_stream_t *s, const char *word, double start, double end, float prob);
void asr__stream_fix_pointers(asr_stream_t *s, int i);

/* transcribe.c: float PCM in memory as a restartable source (ms must outlive the source) */
typedef struct {
    const float *pcm;
    size_t n, pos;
} asr__mem_source_t;
asr_pcm_source_t asr__mem_source(asr__mem_source_t *ms, const float *pcm, size_t n);

/* logits.c: logits [rows][V] (ld ldo) of normed hidden rows h [rows][d] on pool from tok_emb;
 * under int8 and bfloat16 (two levels) from its first level, then the ASR_LOGITS_EXACT highest of
 * each row again from both. qbuf NULL: asr_nn_linear_w; else asr_nn_linear_w_many with that
 * activation buffer (at least asr_nn_linear_w_qbytes(rows, d) bytes). */
#define ASR_LOGITS_EXACT 64
void asr__logits(const asr_model_t *m, asr_pool_t *pool, const float *h, int rows, float *out,
                 int ldo, void *qbuf);
/* Row `token` of the embedding as float32 (both levels where there are two) into out [d]. */
void asr__embed_row(const asr_model_t *m, int token, float *out);
/* The indices of the k (at most ASR_LOGITS_EXACT and n) highest of x[0..n) into idx, in no
 * order; returns their number. */
int asr__logits_top(const float *x, int n, int k, int *idx);

/* decoder.c */
/* Computes cross-attention K/V from s->eb.out. */
void asr__dec_cross_kv(asr_stream_t *s);
/* Runs tokens[0..n) of sequence 0 at positions pos0.. through the decoder, appending to its
 * self-attention cache. If logits_row >= 0, computes the logits of that row into s->logits. */
void asr__dec_forward(asr_stream_t *s, const int32_t *tokens, int n, int pos0, int logits_row);
/* Logits of row `row` of the last asr__dec_forward block into s->logits. */
void asr__dec_logits_row(asr_stream_t *s, int row);
/* One step for n_seq sequences: token[i] of sequence i at position pos; logits of sequence i go to
 * s->logits + i*n_vocab. */
void asr__dec_step(asr_stream_t *s, const int32_t *tokens, int n_seq, int pos);
/* The decoder steps of k streams of one CPU model (ss[i]->cb: tokens, n, pos; n <= ASR_NN_SMALL_M,
 * no alignment capture) in one pass over the weights, on pool; each stream's logits, caches and
 * counters as asr__dec_step would leave them. The streams' owners wait meanwhile. */
#define ASR_CPU_BATCH_MAX_STREAMS 16
void asr__dec_step_many(asr_stream_t *const *ss, int k, asr_pool_t *pool);
/* cpu_batch.c: the model's batcher, started at load when ASRD_CPU_BATCH=N (N >= 1: the threads of
 * its batched steps) asks for it; stop is NULL-safe. batch_step submits a stream's step and waits
 * for it (false: the batcher is stopping, the caller runs the step itself). */
asr_err_t asr__cpu_batch_start(asr_model_t *m, int n_threads);
void asr__cpu_batch_stop(asr_model_t *m);
bool asr__cpu_batch_step(asr_stream_t *s, const int32_t *tokens, int n_seq, int pos);
/* The batcher's counters (m->cb non-NULL). */
void asr__cpu_batch_stats(const asr_model_t *m, asr_batch_stats_t *out);
/* Reorders sequence caches: new sequence i takes positions [from, len) of old src[i]. */
/* lin's weights as float32: lin->w, or lin->h converted (over the pool) into s->eb.w, valid until
 * the next call. */
const float *asr__lin_f32(asr_stream_t *s, const asr_linear_t *lin);
void asr__dec_reorder(asr_stream_t *s, const int *src, int n_seq, int from, int len);
/* Sequences back in their own cache slots; positions [0, shared) of slot 0 are the prompt every
 * sequence reads (asr__dec_forward from position 0 calls it with its n). */
void asr__dec_reset(asr_stream_t *s, int shared);

/* transcribe.c: the transcription loop; detect_only stops after the language is set. */
asr_err_t asr__transcribe_run(asr_stream_t *s, const asr_pcm_source_t *src,
                              const asr_transcribe_params_t *params, bool detect_only);

/* language.c */
/* Picks the converter of a transcription once its language is known (s->language): the script
 * asked for, or the one p->language implies, for Chinese transcripts. */
asr_err_t asr__zh_begin(asr_stream_t *s, const asr_transcribe_params_t *p);
/* Appends text[0..len) to dst, converted when a converter is active. */
void asr__zh_append(asr_stream_t *s, asr_buf_t *dst, const char *text, size_t len);
/* Closes the stream's converters. */
void asr__zh_free(asr_stream_t *s);

#endif
