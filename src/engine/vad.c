/* vad: Silero VAD weights loader and forward pass (see vad.h for the maths).
 *
 * Invariants: every weight matrix is float32, row-major, with rows zero-padded to a multiple of 8
 * floats so the dot-product kernel needs no tail loop; the scratch buffers of a state are sized
 * for the fixed Silero shapes, so asr_vad_process never allocates. The loader accepts exactly the
 * Silero 16 kHz architecture (shapes are checked one by one), in any tensor order, f16 or f32 per
 * tensor, and rejects non-finite weights, unknown, duplicate, missing or truncated tensors and
 * trailing bytes.
 */
#include "engine/vad.h"

#include <assert.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "nn/nn.h"

/* ---- fixed Silero 16 kHz shapes ---- */
#define N_FILT 258     /* STFT filters: 129 real then 129 imaginary */
#define N_BINS 129     /* frequency bins */
#define FILT_LEN 256   /* taps per STFT filter */
#define HOP 128        /* STFT hop */
#define N_FRAMES 4     /* (576 + 64 - 256) / 128 + 1 */
#define XP_LEN 640     /* context + window + right reflection padding */
#define N_HID 128      /* LSTM input and hidden size */
#define N_GATE 512     /* 4 gates x 128 */
#define N_LAYERS 4     /* encoder conv layers */
#define KSIZE 3        /* encoder kernel size */
#define STFT_LD 264    /* N_FILT rounded up to 8: row stride of the STFT output */
#define MAG_LD 136     /* N_BINS rounded up to 8 */
#define LSTM_LD 256    /* [x | h] */
#define MAX_COL_LD 392 /* round8(129 * 3) */

#define ROUND8(x) (((x) + 7) & ~7)

static const int k_in[N_LAYERS] = {129, 128, 64, 64};
static const int k_out[N_LAYERS] = {128, 64, 64, 128};
static const int k_stride[N_LAYERS] = {1, 2, 2, 1};
static const int k_len_in[N_LAYERS] = {4, 4, 2, 1};
static const int k_len_out[N_LAYERS] = {4, 2, 1, 1};

struct asr_vad {
    float *mem;             /* one aligned block holding every tensor below */
    float *stft;            /* [258][256] */
    float *enc_w[N_LAYERS]; /* [out][round8(in * 3)], element (o, c, k) at o * ld + c * 3 + k */
    float *enc_b[N_LAYERS]; /* [out] */
    float *lstm_w;          /* [512][256]: row g = W_ih[g] (128) then W_hh[g] (128) */
    float *lstm_b;          /* [512]: b_ih + b_hh */
    float *lstm_bhh;        /* [512]: b_hh until load sums it into lstm_b */
    float *out_w;           /* [128] */
    float *out_b;           /* [1] */
    char type[32];          /* e.g. "silero-16k" */
    int version[3];
};

/* Windows per batch: the STFT, the convolutions and the LSTM's input projection of VB windows run
 * as GEMMs (the windows are independent until the LSTM); only W_hh·h stays sequential. */
#define VB 32
#define VB_ROWS (VB * N_FRAMES)

struct asr_vad_state {
    const asr_vad_t *v;
    float h[N_HID], c[N_HID];        /* LSTM state */
    float ctx[ASR_VAD_CONTEXT];      /* last 64 samples of the previous window */
    float frames[VB_ROWS][FILT_LEN]; /* STFT input frames, 4 per window */
    float spec[VB_ROWS][STFT_LD];    /* STFT filter outputs per frame */
    float mag[VB_ROWS][MAG_LD];      /* magnitudes per frame */
    float col[VB_ROWS][MAX_COL_LD];  /* im2col columns of the current conv layer */
    float act_a[VB_ROWS][N_HID];     /* conv activations, ping */
    float act_b[VB_ROWS][N_HID];     /* conv activations, pong */
    float gx[VB][N_GATE];            /* W_ih·x + biases per window */
    float gates[N_GATE];
} __attribute__((aligned(64)));

/* ---- forward pass ---- */

static inline float sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }

/* Encoder layer i over nb windows: in [nb * len_in][in_ld] -> ReLU(conv) into
 * out [nb * len_out][N_HID]. */
static void conv_layer(asr_vad_state_t *s, int i, int nb, const float *in, int in_ld, float *out) {
    const asr_vad_t *v = s->v;
    const int c_in = k_in[i], ld = ROUND8(c_in * KSIZE);
    const int l_in = k_len_in[i], l_out = k_len_out[i], st = k_stride[i];
    for (int b = 0; b < nb; b++)
        for (int t = 0; t < l_out; t++) {
            float *col = s->col[b * l_out + t];
            for (int k = 0; k < KSIZE; k++) {
                int pos = t * st + k - 1; /* padding 1 */
                const float *src = (pos >= 0 && pos < l_in) ? in + (b * l_in + pos) * in_ld : NULL;
                for (int c = 0; c < c_in; c++)
                    col[c * KSIZE + k] = src ? src[c] : 0.0f;
            }
            for (int c = c_in * KSIZE; c < ld; c++)
                col[c] = 0.0f;
        }
    asr_nn_linear(&s->col[0][0], MAX_COL_LD, v->enc_w[i], ld, v->enc_b[i], out, N_HID, nb * l_out,
                  k_out[i], ld);
    for (int r = 0; r < nb * l_out; r++)
        for (int o = 0; o < k_out[i]; o++)
            out[r * N_HID + o] = out[r * N_HID + o] > 0.0f ? out[r * N_HID + o] : 0.0f;
}

/* nb (<= VB) consecutive windows: everything up to the LSTM's input projection. */
static void encode_batch(asr_vad_state_t *s, const float *pcm, int nb) {
    const asr_vad_t *v = s->v;
    float xp[XP_LEN];
    const int n_x = ASR_VAD_CONTEXT + ASR_VAD_WINDOW;
    for (int b = 0; b < nb; b++) {
        const float *w = pcm + (size_t)b * ASR_VAD_WINDOW;
        memcpy(xp, s->ctx, sizeof s->ctx);
        memcpy(xp + ASR_VAD_CONTEXT, w, ASR_VAD_WINDOW * sizeof(float));
        for (int j = 0; j < XP_LEN - n_x; j++) /* right reflection padding */
            xp[n_x + j] = xp[n_x - 2 - j];
        memcpy(s->ctx, w + ASR_VAD_WINDOW - ASR_VAD_CONTEXT, sizeof s->ctx);
        for (int t = 0; t < N_FRAMES; t++)
            memcpy(s->frames[b * N_FRAMES + t], xp + t * HOP, FILT_LEN * sizeof(float));
    }
    /* STFT: frames are the rows, the 258 filters the columns */
    const int rows = nb * N_FRAMES;
    asr_nn_linear(&s->frames[0][0], FILT_LEN, v->stft, FILT_LEN, NULL, &s->spec[0][0], STFT_LD,
                  rows, N_FILT, FILT_LEN);
    for (int r = 0; r < rows; r++)
        for (int f = 0; f < N_BINS; f++) {
            float re = s->spec[r][f], im = s->spec[r][N_BINS + f];
            s->mag[r][f] = sqrtf(re * re + im * im);
        }
    conv_layer(s, 0, nb, &s->mag[0][0], MAG_LD, &s->act_a[0][0]);
    conv_layer(s, 1, nb, &s->act_a[0][0], N_HID, &s->act_b[0][0]);
    conv_layer(s, 2, nb, &s->act_b[0][0], N_HID, &s->act_a[0][0]);
    conv_layer(s, 3, nb, &s->act_a[0][0], N_HID, &s->act_b[0][0]);
    /* W_ih·x + b_ih + b_hh for every window: the first N_HID columns of the [x | h] weights */
    asr_nn_linear(&s->act_b[0][0], N_HID, v->lstm_w, LSTM_LD, v->lstm_b, &s->gx[0][0], N_GATE, nb,
                  N_GATE, N_HID);
}

/* The LSTM cell for one window, from its input projection gx; returns the speech probability. */
static float lstm_step(asr_vad_state_t *s, const float *gx) {
    const asr_vad_t *v = s->v;
    /* W_hh·h: the last N_HID columns of the [x | h] weights (the decoder's one-row kernel) */
    asr__nn_linear_rows(s->h, N_HID, v->lstm_w + N_HID, LSTM_LD, NULL, s->gates, N_GATE, 1, 0,
                        N_GATE, N_HID);
    float logit = v->out_b[0];
    for (int j = 0; j < N_HID; j++) {
        float ig = sigmoidf(gx[j] + s->gates[j]);
        float fg = sigmoidf(gx[N_HID + j] + s->gates[N_HID + j]);
        float gg = tanhf(gx[2 * N_HID + j] + s->gates[2 * N_HID + j]);
        float og = sigmoidf(gx[3 * N_HID + j] + s->gates[3 * N_HID + j]);
        s->c[j] = fg * s->c[j] + ig * gg;
        s->h[j] = og * tanhf(s->c[j]);
        logit += v->out_w[j] * (s->h[j] > 0.0f ? s->h[j] : 0.0f);
    }
    return sigmoidf(logit);
}

void asr_vad_process_n(asr_vad_state_t *s, const float *pcm, size_t n, float *probs) {
    assert(s && (pcm || !n) && (probs || !n));
    for (size_t i = 0; i < n; i += VB) {
        int nb = n - i < VB ? (int)(n - i) : VB;
        encode_batch(s, pcm + i * ASR_VAD_WINDOW, nb);
        for (int b = 0; b < nb; b++)
            probs[i + (size_t)b] = lstm_step(s, s->gx[b]);
    }
}

float asr_vad_process(asr_vad_state_t *s, const float *window512) {
    assert(s && window512);
    float p;
    asr_vad_process_n(s, window512, 1, &p);
    return p;
}

/* ---- state ---- */

asr_err_t asr_vad_state_create(const asr_vad_t *v, asr_vad_state_t **out) {
    if (!out)
        return ASR_ERR_INVALID;
    *out = NULL;
    if (!v)
        return ASR_ERR_INVALID;
    asr_vad_state_t *s = asr_malloc_aligned(sizeof *s);
    if (!s)
        return ASR_ERR_NOMEM;
    memset(s, 0, sizeof *s); /* also the zero tails of the im2col columns */
    s->v = v;
    *out = s;
    return ASR_OK;
}

void asr_vad_state_reset(asr_vad_state_t *s) {
    if (!s)
        return;
    memset(s->h, 0, sizeof s->h);
    memset(s->c, 0, sizeof s->c);
    memset(s->ctx, 0, sizeof s->ctx);
}

void asr_vad_state_destroy(asr_vad_state_t *s) { asr_free_aligned(s); }

/* ---- whole signals ---- */

asr_err_t asr_vad_probs(const asr_vad_t *v, const float *pcm, size_t n, float **out,
                        size_t *n_out) {
    if (!out || !n_out)
        return ASR_ERR_INVALID;
    *out = NULL;
    *n_out = 0;
    if (!v || (!pcm && n))
        return ASR_ERR_INVALID;
    const size_t n_win = n / ASR_VAD_WINDOW + 1; /* np.pad(audio, (0, 512 - n % 512)) */
    float *probs = asr_malloc(n_win * sizeof(float));
    asr_vad_state_t *s = NULL;
    asr_err_t err = probs ? asr_vad_state_create(v, &s) : ASR_ERR_NOMEM;
    if (err != ASR_OK) {
        free(probs);
        return err;
    }
    asr_vad_process_n(s, pcm, n_win - 1, probs);
    /* The last window: the remaining samples, zeros, and (faster-whisper's quirk) its last 64
     * samples zeroed even where they were audio. */
    float last[ASR_VAD_WINDOW] = {0};
    size_t rem = n - (n_win - 1) * ASR_VAD_WINDOW;
    if (rem > ASR_VAD_WINDOW - ASR_VAD_CONTEXT)
        rem = ASR_VAD_WINDOW - ASR_VAD_CONTEXT;
    if (rem)
        memcpy(last, pcm + (n_win - 1) * ASR_VAD_WINDOW, rem * sizeof(float));
    probs[n_win - 1] = asr_vad_process(s, last);
    asr_vad_state_destroy(s);
    *out = probs;
    *n_out = n_win;
    return ASR_OK;
}

asr_err_t asr_vad_speech_spans(const asr_vad_t *v, const float *pcm, size_t n,
                               const asr_vad_opts_t *o, asr_vad_span_t **out, int *n_out) {
    if (!out || !n_out)
        return ASR_ERR_INVALID;
    *out = NULL;
    *n_out = 0;
    float *probs = NULL;
    size_t n_probs = 0;
    asr_err_t err = asr_vad_probs(v, pcm, n, &probs, &n_probs);
    if (err == ASR_OK)
        err = asr_vad_spans_from_probs(probs, n_probs, n, o, out, n_out);
    free(probs);
    return err;
}

/* ---- loader ---- */

typedef struct {
    const uint8_t *p;
    size_t len, pos;
} rd_t;

static bool rd_i32(rd_t *r, int32_t *v) {
    if (r->len - r->pos < 4)
        return false;
    const uint8_t *b = r->p + r->pos;
    *v = (int32_t)((uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
                   (uint32_t)b[3] << 24);
    r->pos += 4;
    return true;
}

typedef struct {
    const char *name;
    int32_t ne[4]; /* innermost first, padded with 1 */
    float *dst;    /* where row r of row_len floats goes: dst + r * ld */
    int row_len, ld;
    bool seen;
} tensor_slot_t;

#define N_TENSORS (1 + 2 * N_LAYERS + 4 + 2)

static void slots_init(asr_vad_t *v, tensor_slot_t *t) {
    static const char *const enc_w[N_LAYERS] = {
        "_model.encoder.0.reparam_conv.weight", "_model.encoder.1.reparam_conv.weight",
        "_model.encoder.2.reparam_conv.weight", "_model.encoder.3.reparam_conv.weight"};
    static const char *const enc_b[N_LAYERS] = {
        "_model.encoder.0.reparam_conv.bias", "_model.encoder.1.reparam_conv.bias",
        "_model.encoder.2.reparam_conv.bias", "_model.encoder.3.reparam_conv.bias"};
    int n = 0;
    t[n++] = (tensor_slot_t){"_model.stft.forward_basis_buffer",
                             {FILT_LEN, 1, N_FILT, 1},
                             v->stft,
                             FILT_LEN,
                             FILT_LEN,
                             false};
    for (int i = 0; i < N_LAYERS; i++) {
        int row = k_in[i] * KSIZE;
        t[n++] = (tensor_slot_t){
            enc_w[i], {KSIZE, k_in[i], k_out[i], 1}, v->enc_w[i], row, ROUND8(row), false};
        t[n++] =
            (tensor_slot_t){enc_b[i], {k_out[i], 1, 1, 1}, v->enc_b[i], k_out[i], k_out[i], false};
    }
    t[n++] = (tensor_slot_t){
        "_model.decoder.rnn.weight_ih", {N_HID, N_GATE, 1, 1}, v->lstm_w, N_HID, LSTM_LD, false};
    t[n++] = (tensor_slot_t){"_model.decoder.rnn.weight_hh",
                             {N_HID, N_GATE, 1, 1},
                             v->lstm_w + N_HID,
                             N_HID,
                             LSTM_LD,
                             false};
    t[n++] = (tensor_slot_t){
        "_model.decoder.rnn.bias_ih", {N_GATE, 1, 1, 1}, v->lstm_b, N_GATE, N_GATE, false};
    t[n++] = (tensor_slot_t){
        "_model.decoder.rnn.bias_hh", {N_GATE, 1, 1, 1}, v->lstm_bhh, N_GATE, N_GATE, false};
    t[n++] = (tensor_slot_t){
        "_model.decoder.decoder.2.weight", {N_HID, 1, 1, 1}, v->out_w, N_HID, N_HID, false};
    t[n++] = (tensor_slot_t){"_model.decoder.decoder.2.bias", {1, 1, 1, 1}, v->out_b, 1, 1, false};
    ASR_ASSERT(n == N_TENSORS);
}

/* Carves the tensors out of one zeroed aligned block (padding columns stay zero). */
static asr_err_t alloc_tensors(asr_vad_t *v) {
    size_t sizes[N_TENSORS], total = 0;
    int n = 0;
    sizes[n++] = (size_t)N_FILT * FILT_LEN;
    for (int i = 0; i < N_LAYERS; i++) {
        sizes[n++] = (size_t)k_out[i] * (size_t)ROUND8(k_in[i] * KSIZE);
        sizes[n++] = (size_t)ROUND8(k_out[i]);
    }
    sizes[n++] = (size_t)N_GATE * LSTM_LD;
    sizes[n++] = N_GATE;
    sizes[n++] = N_GATE;
    sizes[n++] = N_HID;
    sizes[n++] = 8;
    for (int i = 0; i < n; i++)
        total += sizes[i];
    v->mem = asr_malloc_aligned(total * sizeof(float));
    if (!v->mem)
        return ASR_ERR_NOMEM;
    memset(v->mem, 0, total * sizeof(float));
    float *p = v->mem;
    n = 0;
    v->stft = p, p += sizes[n++];
    for (int i = 0; i < N_LAYERS; i++) {
        v->enc_w[i] = p, p += sizes[n++];
        v->enc_b[i] = p, p += sizes[n++];
    }
    v->lstm_w = p, p += sizes[n++];
    v->lstm_b = p, p += sizes[n++];
    v->lstm_bhh = p, p += sizes[n++];
    v->out_w = p, p += sizes[n++];
    v->out_b = p;
    return ASR_OK;
}

/* name[0 .. len) as a printable C string in dst (control and non-ASCII bytes become '?'), so
 * error messages stay on one line whatever the file holds. */
static const char *printable(char *dst, size_t dst_len, const char *name, size_t len) {
    size_t n = len < dst_len - 1 ? len : dst_len - 1;
    for (size_t i = 0; i < n; i++)
        dst[i] = (name[i] >= 0x20 && name[i] < 0x7f) ? name[i] : '?';
    dst[n] = 0;
    return dst;
}

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        asr_errf(errbuf, errbuf_len, "vad: " __VA_ARGS__);                                         \
        return ASR_ERR_MODEL;                                                                      \
    } while (0)

static asr_err_t parse_header(asr_vad_t *v, rd_t *r, char *errbuf, size_t errbuf_len) {
    int32_t magic, type_len;
    if (r->len == 0)
        FAIL("empty model file");
    if (!rd_i32(r, &magic))
        FAIL("file too short for a header (%zu bytes)", r->len);
    if ((uint32_t)magic != 0x67676d6cu)
        FAIL("bad magic 0x%08x (expected 0x67676d6c, a ggml Silero VAD file)", (unsigned)magic);
    if (!rd_i32(r, &type_len) || type_len < 0 || type_len >= (int32_t)sizeof v->type ||
        r->len - r->pos < (size_t)type_len)
        FAIL("truncated or bad model type string");
    printable(v->type, sizeof v->type, (const char *)r->p + r->pos, (size_t)type_len);
    r->pos += (size_t)type_len;
    int32_t hp[3 + 2 + 1 + 3 * N_LAYERS + 4];
    for (size_t i = 0; i < sizeof hp / sizeof hp[0]; i++) {
        if (!rd_i32(r, &hp[i]))
            FAIL("truncated header");
        if (i == 5 && hp[5] != N_LAYERS)
            FAIL("unsupported model: %d encoder layers (expected %d)", hp[5], N_LAYERS);
    }
    for (int i = 0; i < 3; i++)
        v->version[i] = hp[i];
    if (hp[3] != ASR_VAD_WINDOW || hp[4] != ASR_VAD_CONTEXT)
        FAIL("unsupported model: window %d, context %d (expected 512, 64: Silero 16 kHz)", hp[3],
             hp[4]);
    for (int i = 0; i < N_LAYERS; i++) {
        const int32_t *l = hp + 6 + 3 * i;
        if (l[0] != k_in[i] || l[1] != k_out[i] || l[2] != KSIZE)
            FAIL("unsupported model: encoder layer %d is (%d, %d, %d), expected (%d, %d, %d)", i,
                 l[0], l[1], l[2], k_in[i], k_out[i], KSIZE);
    }
    const int32_t *t = hp + 6 + 3 * N_LAYERS;
    if (t[0] != N_HID || t[1] != N_HID || t[2] != N_HID || t[3] != 1)
        FAIL("unsupported model: lstm (%d, %d), final conv (%d, %d); expected (128, 128), "
             "(128, 1)",
             t[0], t[1], t[2], t[3]);
    return ASR_OK;
}

/* Reads one tensor record at r into its slot. */
static asr_err_t parse_tensor(rd_t *r, tensor_slot_t *slots, char *errbuf, size_t errbuf_len) {
    int32_t n_dims, name_len, type, ne[4] = {1, 1, 1, 1};
    size_t at = r->pos;
    if (!rd_i32(r, &n_dims) || !rd_i32(r, &name_len) || !rd_i32(r, &type))
        FAIL("truncated tensor header at byte %zu", at);
    if (n_dims < 0 || n_dims > 4)
        FAIL("bad tensor header at byte %zu: n_dims %d", at, n_dims);
    if (name_len <= 0 || name_len > 128)
        FAIL("bad tensor header at byte %zu: name length %d", at, name_len);
    if (type != 0 && type != 1)
        FAIL("bad tensor header at byte %zu: type %d (only f32 and f16)", at, type);
    for (int i = 0; i < n_dims; i++)
        if (!rd_i32(r, &ne[i]))
            FAIL("truncated tensor header at byte %zu", at);
    if (r->len - r->pos < (size_t)name_len)
        FAIL("truncated tensor name at byte %zu", at);
    const char *name = (const char *)r->p + r->pos;
    r->pos += (size_t)name_len;
    tensor_slot_t *s = NULL;
    for (int i = 0; i < N_TENSORS && !s; i++)
        if (strlen(slots[i].name) == (size_t)name_len && !memcmp(slots[i].name, name, name_len))
            s = &slots[i];
    char shown[80];
    if (!s)
        FAIL("unknown tensor '%s'", printable(shown, sizeof shown, name, (size_t)name_len));
    if (s->seen)
        FAIL("duplicate tensor '%s'", s->name);
    if (memcmp(ne, s->ne, sizeof ne) != 0)
        FAIL("tensor '%s' has shape [%d, %d, %d, %d], expected [%d, %d, %d, %d]", s->name, ne[0],
             ne[1], ne[2], ne[3], s->ne[0], s->ne[1], s->ne[2], s->ne[3]);
    const size_t count = (size_t)ne[0] * (size_t)ne[1] * (size_t)ne[2] * (size_t)ne[3];
    const size_t esz = type == 1 ? 2 : 4;
    if ((r->len - r->pos) / esz < count)
        FAIL("truncated data of tensor '%s' (%zu bytes, need %zu)", s->name, r->len - r->pos,
             count * esz);
    const uint8_t *d = r->p + r->pos;
    const size_t n_rows = count / (size_t)s->row_len;
    for (size_t row = 0; row < n_rows; row++) {
        float *dst = s->dst + row * (size_t)s->ld;
        for (int i = 0; i < s->row_len; i++) {
            const uint8_t *e = d + (row * (size_t)s->row_len + (size_t)i) * esz;
            float f;
            if (type == 1) {
                f = asr_nn_f16_to_f32((uint16_t)(e[0] | e[1] << 8));
            } else {
                uint32_t u = (uint32_t)e[0] | (uint32_t)e[1] << 8 | (uint32_t)e[2] << 16 |
                             (uint32_t)e[3] << 24;
                memcpy(&f, &u, sizeof f);
            }
            if (!isfinite(f))
                FAIL("tensor '%s' has a non-finite value", s->name);
            dst[i] = f;
        }
    }
    r->pos += count * esz;
    s->seen = true;
    return ASR_OK;
}

asr_err_t asr_vad_load_memory(const uint8_t *data, size_t len, asr_vad_t **out, char *errbuf,
                              size_t errbuf_len) {
    if (!out || (!data && len))
        return ASR_ERR_INVALID;
    *out = NULL;
    if (errbuf && errbuf_len)
        errbuf[0] = 0;
    asr_vad_t *v = asr_malloc(sizeof *v);
    if (!v)
        return ASR_ERR_NOMEM;
    memset(v, 0, sizeof *v);
    rd_t r = {data, len, 0};
    tensor_slot_t slots[N_TENSORS];
    asr_err_t err = parse_header(v, &r, errbuf, errbuf_len);
    if (err == ASR_OK)
        err = alloc_tensors(v);
    if (err != ASR_OK)
        goto fail;
    slots_init(v, slots);
    while (r.pos < r.len)
        if ((err = parse_tensor(&r, slots, errbuf, errbuf_len)) != ASR_OK)
            goto fail;
    for (int i = 0; i < N_TENSORS; i++)
        if (!slots[i].seen) {
            asr_errf(errbuf, errbuf_len, "vad: missing tensor '%s'", slots[i].name);
            err = ASR_ERR_MODEL;
            goto fail;
        }
    for (int i = 0; i < N_GATE; i++)
        v->lstm_b[i] += v->lstm_bhh[i];
    ASR_LOG(ASR_LOG_INFO, "msg=vad_loaded type=%s version=%d.%d.%d bytes=%zu state_bytes=%zu",
            v->type, v->version[0], v->version[1], v->version[2], len, sizeof(asr_vad_state_t));
    *out = v;
    return ASR_OK;
fail:
    if (err == ASR_ERR_NOMEM)
        asr_errf(errbuf, errbuf_len, "vad: out of memory");
    asr_vad_destroy(v);
    return err;
}

asr_err_t asr_vad_load(const char *path, asr_vad_t **out, char *errbuf, size_t errbuf_len) {
    if (!path || !out)
        return ASR_ERR_INVALID;
    *out = NULL;
    char *buf = NULL;
    size_t len = 0;
    asr_err_t err = asr_read_file_msg(path, "VAD weights", &buf, &len, errbuf, errbuf_len);
    if (err != ASR_OK)
        return err;
    err = asr_vad_load_memory((const uint8_t *)buf, len, out, errbuf, errbuf_len);
    free(buf);
    return err;
}

void asr_vad_destroy(asr_vad_t *v) {
    if (!v)
        return;
    asr_free_aligned(v->mem);
    free(v);
}
