/* engine: the GPU engine, private to src/engine. A model loaded on a device (CUDA or the host
 * reference device, src/gpu/dev.h) keeps its host model (tokenizer, mel filters, the CPU search)
 * and adds an asr__gpu_model: the weights in one device arena, a scratch arena sized from
 * max_batch, and one batcher thread that owns the device. Streams (request threads) never call
 * the device: the decoder and encoder entry points (asr__encode, asr__dec_forward, asr__dec_step,
 * asr__dec_logits_row, asr__dec_reorder) submit jobs to the batcher and wait for them. The batcher
 * takes every pending job at once: all encoder jobs run as one batched encoder pass, all decoder
 * steps (and the prompt blocks of streams starting a window) as one batched decoder pass over the
 * rows of every stream (continuous batching: a stream joins at the next step and leaves when it
 * ends); the other jobs (logits rows, a prompt block with alignment capture, slots) run singly.
 * The host keeps no copy of the weights once they are on the device.
 *
 * Files: gpu_model.c (load: device, upload, arenas, stream slots), gpu_batch.c (the batcher:
 * queue, jobs, statistics), gpu_enc.c (the batched encoder and cross K/V), gpu_dec.c (decoder
 * steps, prompt blocks, logits rows, cache copies).
 *
 * Device memory comes from arenas only: the weights arena (sized exactly at load), the scratch
 * arena (sized from max_batch at load) and each stream's slot arena (sized from its sequences at
 * stream creation). Nothing is allocated per request.
 *
 * Failures (the GPU memory contract, docs/GPU.md): a failed device allocation (weights, scratch,
 * a slot) is ASR_ERR_NOMEM of that load or stream creation, with nothing left allocated and
 * nothing sticky. A recoverable device error fails the jobs of the group of the round it happened
 * in (their streams' transcriptions return ASR_ERR_GPU), is cleared, and the batcher serves on.
 * A lost context fails every pending and later job at once (no device call but frees follows);
 * asr_model_device_lost says so, and destroying the model (the CUDA context is reset when the
 * last device of its ordinal closes) and loading it again recovers. */
#ifndef ASR_ENGINE_GPU_INT_H
#define ASR_ENGINE_GPU_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "engine/engine_int.h"
#include "engine/gather.h"
#include "engine/gpu_layout.h"
#include "gpu/dev.h"

typedef struct {
    asr_dev_w_t w;
    const float *b; /* [n] or NULL */
    int n, k;
} asr__gpu_lin_t;

typedef struct {
    const float *g, *b; /* [d] */
} asr__gpu_norm_t;

typedef struct {
    asr__gpu_norm_t attn_ln, ffn_ln;
    asr__gpu_lin_t qkv, out, ffn1, ffn2;
} asr__gpu_enc_layer_t;

typedef struct {
    asr__gpu_norm_t attn_ln, cross_ln, ffn_ln;
    asr__gpu_lin_t qkv, out, cross_q, cross_kv, cross_out, ffn1, ffn2;
} asr__gpu_dec_layer_t;

/* The weights on the device. */
typedef struct {
    asr__gpu_lin_t conv1, conv2; /* [d][n_mels*3], [d][3d] (im2col order c*3+k) */
    const float *enc_pos;        /* [1500][d] */
    asr__gpu_enc_layer_t *enc;   /* [n_audio_layer] (host array of device pointers) */
    asr__gpu_norm_t enc_ln;
    asr_dev_w_t tok_emb;  /* [n_vocab][d]: the embedding and the output projection */
    const float *dec_pos; /* [n_text_ctx][d] */
    asr__gpu_dec_layer_t *dec;
    asr__gpu_norm_t dec_ln;
} asr__gpu_weights_t;

typedef enum {
    ASR_GPU_JOB_ENCODE = 0,
    ASR_GPU_JOB_STEP,
    ASR_GPU_JOB_FORWARD,
    ASR_GPU_JOB_LOGITS_ROW,
    ASR_GPU_JOB_SLOT_OPEN,
    ASR_GPU_JOB_SLOT_CLOSE,
} asr__gpu_job_kind_t;

/* A job a stream submits and waits for (it lives on the stream's stack). */
typedef struct asr__gpu_job {
    asr__gpu_job_kind_t kind;
    asr_stream_t *s;
    const int32_t *tokens; /* STEP: [n] (one per sequence); FORWARD: [n] */
    int n, pos, logits_row;
    const float *mel; /* ENCODE: [n_mels][3000] */
    float *enc_out;   /* ENCODE: host [1500][d] float32 copy of the encoder output, or NULL */
    asr_err_t rc;
    bool done;
    struct asr__gpu_job *next;
} asr__gpu_job_t;

/* A pending device-to-device cache copy of a stream (asr__dec_reorder): positions [from, len) of
 * every layer of physical slot src to slot dst. Applied by the batcher before the stream's next
 * job, in order. */
typedef struct {
    int8_t dst, src;
    int16_t from, len;
} asr__gpu_copy_t;
#define ASR_GPU_MAX_COPIES 64

/* A stream's device state: its slot arena. */
struct asr__gpu_stream {
    asr_dev_arena_t arena;
    void *xkv;    /* [n_text_layer][1500][2d] (type t): K at column 0, V at column d */
    void *self_k; /* [n_seq_cap][n_text_layer][n_text_ctx][d] */
    void *self_v;
    void *last;     /* [n_text_ctx][d]: the last prompt block's final residual rows */
    int last_rows;  /* rows of it that are valid */
    float *enc_out; /* host [1500][d]: asr_stream_encode's copy (allocated on first use) */
    float *logits;  /* pinned host [n_seq_cap][n_vocab]: s->logits, written by the device's copy */
    asr__gpu_copy_t copies[ASR_GPU_MAX_COPIES];
    int n_copies;
    asr_err_t err;        /* the first device failure this stream saw */
    uint64_t gather_mark; /* the gather round of its last decoder pass until its next submission */
};

struct asr__gpu_model {
    asr_model_t *m; /* the host model (dimensions, special tokens, alignment heads) */
    asr_devspec_t spec;
    asr_dev_t *dev;
    asr_dtype_t t;     /* activations */
    asr_dtype_t wt;    /* matrices */
    const char *ctype; /* "float32", "float16", "bfloat16", "int8_float16" */
    int max_batch;     /* windows per encoder pass, streams per decoder step */
    int max_rows;      /* decoder rows of the scratch: max(n_text_ctx, max_batch * 8) */
    asr__gpu_weights_t w;
    asr_dev_arena_t warena, scratch;
    size_t weight_bytes, scratch_bytes;
    /* scratch pieces: the encoder's and the decoder's share one region (the batcher runs one at a
     * time) */
    void *e_x, *e_h, *e_big, *e_big2; /* [B][1500][d], [B][1500][d], [B][max(3000*3*mels, 1500*4d,
                                         1500*3d)], [B][3000][d] */
    float *e_mel;                     /* [B][n_mels][3000] float32 */
    void *d_x, *d_h, *d_qkv, *d_att, *d_ffn; /* [R][d], [R][d], [R][3d], [R][d], [R][4d] */
    float *d_logits;                         /* [max_batch*8][n_vocab] float32 */
    float *d_align;                          /* [n_text_ctx][1500] float32 */
    asr_dev_row_t *d_rows;                   /* [R] */
    int32_t *d_tok, *d_pos;                  /* [R] */
    /* pinned host buffers */
    float *h_mel;   /* [max_batch][n_mels][3000] */
    float *h_align; /* [n_text_ctx][1500] */
    asr_dev_row_t *h_rows;
    int32_t *h_tok, *h_pos;
    /* the batcher */
    pthread_t thread;
    bool thread_started;
    pthread_mutex_t mu;
    pthread_cond_t cv_work, cv_done;
    asr__gpu_job_t *head, *tail;
    bool stop, ready;
    /* the gather rule (gpu_batch.c): the streams of the last decoder pass not back yet */
    asr_gather_t gather; /* the gather rule after decoder passes (gather.h; ASRD_GPU_GATHER_US) */
    asr__gpu_job_t **round; /* the batcher's arrays: [3 * round_cap] */
    int round_cap;
    asr_err_t init_rc;
    char err[256];    /* the last device failure (under mu) */
    atomic_bool lost; /* the device's context is lost: every job but a slot close fails */
    asr_batch_stats_t stats;
};

/* gpu_model.c */
/* A GPU compute type name to the matrices' and activations' types and the canonical name
 * (NULL/""/"default"/"auto": float16, float32 on the host device); -1 when unknown. The host
 * device also takes "host-f16w", "host-bf16w" and "host-int8w" (float32 activations, matrices
 * uploaded as float16, bfloat16 or int8: tests of the upload's conversions). */
int asr__gpu_compute_type(const char *name, bool host, asr_dtype_t *wt, asr_dtype_t *t,
                          const char **canon);
/* Opens the device of spec on the batcher thread it starts, uploads m's weights and sizes the
 * scratch (m->g set). compute_type: a GPU compute type name (NULL/""/"auto"/"default": float16
 * on CUDA, float32 on the host device). */
asr_err_t asr__gpu_model_open(asr_model_t *m, const asr_devspec_t *spec, const char *compute_type,
                              int max_batch, char *err, size_t err_len);
void asr__gpu_model_close(asr_model_t *m);
/* On the batcher thread: the device part of a stream's slot, and its release. */
asr_err_t asr__gpu_slot_open_dev(struct asr__gpu_model *g, asr_stream_t *s);
void asr__gpu_slot_close_dev(struct asr__gpu_model *g, asr_stream_t *s);
/* Elements of a dtype to bytes. */
static inline size_t asr__gpu_bytes(asr_dtype_t t, size_t n) { return n * asr_dtype_size(t); }

/* gpu_batch.c */
/* Starts the batcher thread: it opens the device, calls init(g) and then serves jobs; when it
 * stops (or init fails) it calls fini(g) and closes the device, on its thread. Returns init's
 * result (the thread is gone again on failure, the reason in g->err). */
asr_err_t asr__gpu_batcher_start(struct asr__gpu_model *g,
                                 asr_err_t (*init)(struct asr__gpu_model *),
                                 void (*fini)(struct asr__gpu_model *));
/* Stops and joins it. */
void asr__gpu_batcher_stop(struct asr__gpu_model *g);
/* Submits j and waits for it; returns its result. */
asr_err_t asr__gpu_submit(struct asr__gpu_model *g, asr__gpu_job_t *j);
/* After a group of jobs (batcher thread): the device's error (ASR_OK, or ASR_ERR_GPU with g->err
 * set), cleared when recoverable; a lost context sets g->lost and fails every queued job but slot
 * closes. */
asr_err_t asr__gpu_check(struct asr__gpu_model *g);
/* The last device failure's message into buf (any thread). */
void asr__gpu_errmsg(struct asr__gpu_model *g, char *buf, size_t len);

/* gpu_enc.c (batcher thread) */
/* The encoder pass of n ENCODE jobs (n <= max_batch) and each stream's cross K/V. */
void asr__gpu_run_encode(struct asr__gpu_model *g, asr__gpu_job_t **jobs, int n);

/* gpu_dec.c (batcher thread) */
/* One decoder pass over the rows of n STEP and FORWARD jobs (every sequence of a step, every
 * token of a prompt block; rows <= max_rows): each job's logits to its stream. */
void asr__gpu_run_decode(struct asr__gpu_model *g, asr__gpu_job_t **jobs, int n);
/* A prompt block alone: the one with word-timestamp alignment capture. */
void asr__gpu_run_forward(struct asr__gpu_model *g, asr__gpu_job_t *j);
void asr__gpu_run_logits_row(struct asr__gpu_model *g, asr__gpu_job_t *j);
/* A stream's pending cache copies, queued before its next job. */
void asr__gpu_apply_copies(struct asr__gpu_model *g, asr_stream_t *s);

/* gpu_dec.c (stream threads): the engine's entry points on a GPU stream */
/* want_out: copy the encoder output to s->g->enc_out (asr_stream_encode) */
void asr__gpu_encode(asr_stream_t *s, const float *mel_window, bool want_out);
void asr__gpu_forward(asr_stream_t *s, const int32_t *tokens, int n, int pos0, int logits_row);
void asr__gpu_step(asr_stream_t *s, const int32_t *tokens, int n_seq, int pos);
void asr__gpu_logits_row(asr_stream_t *s, int row);
/* Records the copy of positions [from, len) of physical slot src to dst. */
void asr__gpu_copy_seq(asr_stream_t *s, int dst, int src, int from, int len);
/* The stream's device slot (asr_stream_create_slot) and its release. */
asr_err_t asr__gpu_stream_open(asr_stream_t *s);
void asr__gpu_stream_close(asr_stream_t *s);

#endif
