/* engine: random-weight models of the real Whisper shapes (random_model.h).
 *
 * Every tensor is generated on its own from a stream seeded by (seed, tensor name) (splitmix64),
 * so the order tensors are made in does not matter, and written straight as float16 into memory
 * the table owns: large-v3 is 3.1 GB that way, never 6.2 GB of float32. A weight is an
 * Irwin-Hall sum of four 16-bit uniforms (one 64-bit draw), a bell-shaped N(0, 1) stand-in in
 * [-3.46, 3.46], scaled: integer arithmetic and one multiplication, the same on every machine. */
#include <math.h>
#include <string.h>

#include "core/core.h"
#include "engine/random_model.h"
#include "nn/nn.h"

static const asr_random_shape_t SHAPES[] = {
    {"tiny", 384, 4, 4, 6, 80, 51865},          {"base", 512, 6, 6, 8, 80, 51865},
    {"small", 768, 12, 12, 12, 80, 51865},      {"medium", 1024, 24, 24, 16, 80, 51865},
    {"large-v3", 1280, 32, 32, 20, 128, 51866}, {"large-v3-turbo", 1280, 32, 4, 20, 128, 51866},
};
#define N_SHAPES (sizeof SHAPES / sizeof *SHAPES)

#define N_AUDIO_CTX 1500
#define N_TEXT_CTX 448
#define W_STD 0.02f       /* attention and FFN matrices, biases, norms' spread */
#define LOGIT_STD 3.0f    /* spread of a logit: token embeddings' std is LOGIT_STD / sqrt(d) */
#define DEC_POS_MUL 1.0f  /* decoder positions' std, in token embeddings' stds */
#define SPECIAL_MUL 0.02f /* rows eot.. of the embedding, relative to the text tokens' */

const asr_random_shape_t *asr_random_shape(const char *name) {
    for (size_t i = 0; name && i < N_SHAPES; i++)
        if (!strcmp(SHAPES[i].name, name))
            return &SHAPES[i];
    return NULL;
}

const char *asr_random_shape_names(void) {
    return "tiny|base|small|medium|large-v3|large-v3-turbo";
}

static uint64_t splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* The stream of tensor `name`: FNV-1a of the name mixed with the seed. */
static uint64_t stream_of(uint64_t seed, const char *name) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * 0x100000001b3ull;
    uint64_t st = seed ^ h;
    return splitmix64(&st);
}

/* One bell-shaped draw, mean 0, standard deviation 1. */
static float draw(uint64_t *st) {
    uint64_t r = splitmix64(st);
    int32_t sum = (int32_t)(r & 0xffff) + (int32_t)(r >> 16 & 0xffff) +
                  (int32_t)(r >> 32 & 0xffff) + (int32_t)(r >> 48 & 0xffff);
    return (float)(sum - 131070) * (1.0f / 37837.23f); /* 4 * 65535/2; 65536 / sqrt(3) */
}

typedef struct {
    asr_wsource_t *s;
    uint64_t seed;
    bool failed;
} gen_t;

/* A float16 tensor of the table: n elements, each mean + std * draw(); NULL (failed set) when out
 * of memory. */
static uint16_t *tensor(gen_t *g, const char *name, int rank, const int64_t *dims, float mean,
                        float std) {
    if (g->failed)
        return NULL;
    int64_t n = 1;
    for (int i = 0; i < rank; i++)
        n *= dims[i];
    uint16_t *h = asr_wfile_own(&g->s->f, (size_t)n * sizeof *h);
    if (!h || !asr_wfile_add(&g->s->f, name, ASR_WD_F16, rank, dims, h)) {
        g->failed = true;
        return NULL;
    }
    uint64_t st = stream_of(g->seed, name);
    float buf[1024];
    for (int64_t i = 0; i < n; i += 1024) {
        int64_t m = n - i < 1024 ? n - i : 1024;
        for (int64_t j = 0; j < m; j++)
            buf[j] = mean + std * draw(&st);
        asr_nn_f2h_n(buf, h + i, (size_t)m);
    }
    return h;
}

static void vec(gen_t *g, const char *name, int64_t n, float mean, float std) {
    tensor(g, name, 1, &n, mean, std);
}

/* A linear layer [n_out][n_in] with its bias; rows [zero0, zero1) of the bias zero (the key
 * projection's part of a fused matrix). */
static void linear(gen_t *g, const char *prefix, int64_t n_out, int64_t n_in, int64_t zero0,
                   int64_t zero1) {
    char name[160];
    int64_t dims[2] = {n_out, n_in};
    snprintf(name, sizeof name, "%s/weight", prefix);
    tensor(g, name, 2, dims, 0.0f, W_STD);
    snprintf(name, sizeof name, "%s/bias", prefix);
    uint16_t *b = tensor(g, name, 1, &n_out, 0.0f, W_STD);
    if (b && zero1 > zero0)
        memset(b + zero0, 0, (size_t)(zero1 - zero0) * sizeof *b);
}

static void norm(gen_t *g, const char *prefix, int64_t d) {
    char name[160];
    snprintf(name, sizeof name, "%s/gamma", prefix);
    vec(g, name, d, 1.0f, W_STD);
    snprintf(name, sizeof name, "%s/beta", prefix);
    vec(g, name, d, 0.0f, W_STD);
}

static void layer(gen_t *g, const char *stack, int l, int64_t d, bool cross) {
    char pre[160];
    snprintf(pre, sizeof pre, "%s/layer_%d/self_attention/layer_norm", stack, l);
    norm(g, pre, d);
    snprintf(pre, sizeof pre, "%s/layer_%d/self_attention/linear_0", stack, l);
    linear(g, pre, 3 * d, d, d, 2 * d); /* q | k | v: no key bias */
    snprintf(pre, sizeof pre, "%s/layer_%d/self_attention/linear_1", stack, l);
    linear(g, pre, d, d, 0, 0);
    if (cross) {
        snprintf(pre, sizeof pre, "%s/layer_%d/attention/layer_norm", stack, l);
        norm(g, pre, d);
        snprintf(pre, sizeof pre, "%s/layer_%d/attention/linear_0", stack, l);
        linear(g, pre, d, d, 0, 0);
        snprintf(pre, sizeof pre, "%s/layer_%d/attention/linear_1", stack, l);
        linear(g, pre, 2 * d, d, 0, d); /* k | v: no key bias */
        snprintf(pre, sizeof pre, "%s/layer_%d/attention/linear_2", stack, l);
        linear(g, pre, d, d, 0, 0);
    }
    snprintf(pre, sizeof pre, "%s/layer_%d/ffn/layer_norm", stack, l);
    norm(g, pre, d);
    snprintf(pre, sizeof pre, "%s/layer_%d/ffn/linear_0", stack, l);
    linear(g, pre, 4 * d, d, 0, 0);
    snprintf(pre, sizeof pre, "%s/layer_%d/ffn/linear_1", stack, l);
    linear(g, pre, d, 4 * d, 0, 0);
}

/* Whisper's encoder positions: sin then cos of t / 10000^(i / (d/2 - 1)). */
static void sinusoids(gen_t *g, int64_t d) {
    int64_t dims[2] = {N_AUDIO_CTX, d};
    uint16_t *h = asr_wfile_own(&g->s->f, (size_t)(N_AUDIO_CTX * d) * sizeof *h);
    if (!h ||
        !asr_wfile_add(&g->s->f, "encoder/position_encodings/encodings", ASR_WD_F16, 2, dims, h)) {
        g->failed = true;
        return;
    }
    float *row = asr_xmalloc((size_t)d * sizeof *row);
    double inc = log(10000.0) / (double)(d / 2 - 1);
    for (int64_t t = 0; t < N_AUDIO_CTX; t++) {
        for (int64_t i = 0; i < d / 2; i++) {
            double a = (double)t * exp(-inc * (double)i);
            row[i] = (float)sin(a);
            row[d / 2 + i] = (float)cos(a);
        }
        asr_nn_f2h_n(row, h + t * d, (size_t)d);
    }
    free(row);
}

static void generate(gen_t *g, const asr_random_shape_t *sh, int32_t eot) {
    int64_t d = sh->d_model, mels = sh->n_mels;
    int64_t c1[3] = {d, mels, 3}, c2[3] = {d, d, 3};
    tensor(g, "encoder/conv1/weight", 3, c1, 0.0f, 1.0f / sqrtf((float)(3 * mels)));
    vec(g, "encoder/conv1/bias", d, 0.0f, W_STD);
    tensor(g, "encoder/conv2/weight", 3, c2, 0.0f, 1.0f / sqrtf((float)(3 * d)));
    vec(g, "encoder/conv2/bias", d, 0.0f, W_STD);
    sinusoids(g, d);
    for (int l = 0; l < sh->n_audio_layer; l++)
        layer(g, "encoder", l, d, false);
    norm(g, "encoder/layer_norm", d);
    float emb_std = LOGIT_STD / sqrtf((float)d);
    int64_t emb[2] = {sh->n_vocab, d}, dpos[2] = {N_TEXT_CTX, d};
    uint16_t *e = tensor(g, "decoder/embeddings/weight", 2, emb, 0.0f, emb_std);
    if (e) { /* the special tokens' rows, made small (random_model.h) */
        float *row = asr_xmalloc((size_t)d * sizeof *row);
        for (int64_t r = eot; r < sh->n_vocab; r++) {
            asr_nn_h2f_n(e + r * d, row, (size_t)d);
            for (int64_t i = 0; i < d; i++)
                row[i] *= SPECIAL_MUL;
            asr_nn_f2h_n(row, e + r * d, (size_t)d);
        }
        free(row);
    }
    tensor(g, "decoder/position_encodings/encodings", 2, dpos, 0.0f, DEC_POS_MUL * emb_std);
    for (int l = 0; l < sh->n_text_layer; l++)
        layer(g, "decoder", l, d, true);
    norm(g, "decoder/layer_norm", d);
    const asr_wvar_t *gv = asr_wfile_find(&g->s->f, "decoder/layer_norm/gamma");
    if (gv) { /* random signs: the input token's own embedding no longer predicts itself */
        uint16_t *gh = (uint16_t *)(uintptr_t)gv->data;
        uint64_t st = stream_of(g->seed, "decoder/layer_norm/gamma/sign");
        for (int64_t i = 0; i < d; i++)
            if (splitmix64(&st) >> 63)
                gh[i] ^= 0x8000; /* float16 sign bit */
    }
    if (!g->failed && (!asr_wfile_add_i32(&g->s->f, "encoder/num_heads", sh->n_head) ||
                       !asr_wfile_add_i32(&g->s->f, "decoder/num_heads", sh->n_head)))
        g->failed = true;
}

asr_err_t asr_random_model_create(const char *shape, uint64_t seed, asr_wsource_t **out,
                                  char *errbuf, size_t errbuf_len) {
    *out = NULL;
    const asr_random_shape_t *sh = asr_random_shape(shape);
    if (!sh) {
        asr_errf(errbuf, errbuf_len, "unknown shape '%s' (use %s)", shape ? shape : "",
                 asr_random_shape_names());
        return ASR_ERR_INVALID;
    }
    asr_wsource_t *s = asr_wsource_new();
    if (!s)
        return ASR_ERR_NOMEM;
    asr_err_t rc = asr_tokenizer_builtin(sh->n_vocab, &s->tok, errbuf, errbuf_len);
    if (rc != ASR_OK) {
        asr_wsource_close(s);
        return rc;
    }
    s->f.format = ASR_WFMT_CT2;
    s->f.spec_name = "WhisperSpec";
    gen_t g = {s, seed, false};
    generate(&g, sh, asr_tokenizer_special(s->tok)->eot);
    if (g.failed) {
        asr_errf(errbuf, errbuf_len, "out of memory making a random %s model", sh->name);
        asr_wsource_close(s);
        return ASR_ERR_NOMEM;
    }
    if (asr_wsource_finish(s, errbuf, errbuf_len) != 0) {
        asr_wsource_close(s);
        return ASR_ERR_MODEL;
    }
    *out = s;
    return ASR_OK;
}
