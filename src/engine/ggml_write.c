/* engine: the whisper.cpp ggml writer (wwrite.h, asr_ggml_write): the file layout ggml.c reads
 * and src/whisper.cpp whisper_model_load loads, laid out as whisper.cpp's
 * models/convert-pt-to-ggml.py writes it (f32, f16) and its examples/quantize tool rewrites it
 * (q8_0).
 *
 * What goes where, from the table's CTranslate2 names (wfile.h):
 *   - hparams from s->info; ftype 0 (f32), 1 (f16) or 2007 (GGML_FTYPE_MOSTLY_Q8_0 = 7 plus
 *     GGML_QNT_VERSION 2 x 1000, what the quantize tool writes);
 *   - the mel filterbank asrd computes (mel.h), n_mels x 201 float32;
 *   - the tokenizer's raw token bytes for ids [0, eot) (the converter writes the tiktoken ranks,
 *     the special tokens are not stored);
 *   - the tensors under openai's names in openai's state_dict order, q|k|v split again (the
 *     key's zero bias dropped). Types are whisper_model_load's: 2-D matrices (projections, the
 *     MLP, the token embedding) f32/f16/q8_0, conv weights f16 (f32 in an f32 file), and the
 *     positional embeddings, biases, norms and conv biases (stored [1, d]) always f32.
 * q8_0 is ggml-quants.c's quantize_row_q8_0_ref: per 32 consecutive elements of a row,
 * d = max|x| / 127 (stored as f16), q = roundf(x / d). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/core.h"
#include "engine/ggml.h"
#include "engine/mel.h"
#include "engine/wwrite.h"
#include "nn/nn.h"

#define GGML_MAGIC 0x67676d6cu
#define QK8 32
#define CHUNK (64 * 1024) /* floats decoded at a time */

enum { T_F32 = 0, T_F16 = 1, T_Q8_0 = 8 }; /* ggml_type ids */
typedef enum { K_SMALL, K_CONV, K_MATRIX } kind_t;

typedef struct {
    const asr_wwrite_src_t *s;
    FILE *fp;
    float *buf;   /* CHUNK floats */
    uint8_t *out; /* CHUNK elements encoded (at most 4 bytes each) */
    char *err;
    size_t err_len;
    asr_err_t rc;
} writer_t;

static void put_i32(writer_t *w, int32_t v) {
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    fwrite(b, 1, 4, w->fp);
}

/* 32 floats as one q8_0 block (34 bytes) at q. */
static void q8_0_block(const float *x, uint8_t *q) {
    float amax = 0.0f;
    for (int j = 0; j < QK8; j++)
        amax = fabsf(x[j]) > amax ? fabsf(x[j]) : amax;
    float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    uint16_t h = asr_nn_f32_to_f16(d);
    q[0] = (uint8_t)h;
    q[1] = (uint8_t)(h >> 8);
    for (int j = 0; j < QK8; j++)
        q[2 + j] = (uint8_t)(int8_t)roundf(x[j] * id);
}

/* The ggml type a tensor of this kind gets; cols: its row length (q8_0 needs whole blocks). */
static int type_of(const writer_t *w, kind_t k, int64_t cols) {
    if (k == K_SMALL || w->s->type == ASR_WW_FLOAT32)
        return T_F32;
    if (k == K_MATRIX && w->s->type == ASR_WW_INT8 && cols % QK8 == 0)
        return T_Q8_0;
    return T_F16;
}

/* Writes tensor `gname` (ggml shape ne[0..n_dims)) from rows [row0, row0 + n_rows) of table
 * variable `ct2`, whose rows have `cols` elements and which must hold exactly `total_rows` of
 * them. 0, or -1 with the reason set. */
static int tensor(writer_t *w, const char *gname, const char *ct2, int64_t total_rows, int64_t row0,
                  int64_t n_rows, int64_t cols, int n_dims, const int64_t *ne, kind_t kind) {
    const asr_wvar_t *v = asr_wfile_find(w->s->f, ct2);
    if (!v || v->n_elems != total_rows * cols) {
        asr_errf(w->err, w->err_len, "%s: variable %s %s (expected %lld elements)", "ggml writer",
                 ct2, v ? "has the wrong size" : "is missing", (long long)(total_rows * cols));
        w->rc = ASR_ERR_MODEL;
        return -1;
    }
    int type = type_of(w, kind, cols);
    size_t name_len = strlen(gname);
    put_i32(w, n_dims);
    put_i32(w, (int32_t)name_len);
    put_i32(w, type);
    for (int i = 0; i < n_dims; i++)
        put_i32(w, (int32_t)ne[i]);
    fwrite(gname, 1, name_len, w->fp);
    /* whole rows at a time (a q8_0 block never spans two rows) */
    int64_t rows_per = cols >= CHUNK ? 1 : CHUNK / cols;
    for (int64_t r = row0; r < row0 + n_rows; r += rows_per) {
        int64_t nr = row0 + n_rows - r < rows_per ? row0 + n_rows - r : rows_per;
        for (int64_t e = 0; e < nr * cols; e += CHUNK) { /* pieces of a row longer than CHUNK */
            int64_t n = nr * cols - e < CHUNK ? nr * cols - e : CHUNK;
            int64_t e0 = r * cols + e;
            if (asr_wfile_decode_f32(w->s->f, v, ct2, cols, e0, e0 + n, w->buf, w->err,
                                     w->err_len)) {
                w->rc = ASR_ERR_MODEL;
                return -1;
            }
            size_t bytes;
            if (type == T_F32) {
                fwrite(w->buf, 4, (size_t)n, w->fp); /* little-endian host */
                continue;
            } else if (type == T_F16) {
                asr_nn_f2h_n(w->buf, (uint16_t *)(void *)w->out, (size_t)n);
                bytes = 2 * (size_t)n;
            } else {
                for (int64_t i = 0; i < n; i += QK8)
                    q8_0_block(w->buf + i, w->out + (size_t)(i / QK8) * (2 + QK8));
                bytes = (size_t)(n / QK8) * (2 + QK8);
            }
            fwrite(w->out, 1, bytes, w->fp);
        }
    }
    return 0;
}

/* Layer norm `g`.{weight,bias} from `c`/{gamma,beta}. */
static int norm(writer_t *w, const char *g, const char *c) {
    int64_t d = w->s->info.d_model;
    char gn[160], cn[160];
    for (int i = 0; i < 2; i++) {
        snprintf(gn, sizeof gn, "%s.%s", g, i ? "bias" : "weight");
        snprintf(cn, sizeof cn, "%s/%s", c, i ? "beta" : "gamma");
        if (tensor(w, gn, cn, 1, 0, 1, d, 1, &d, K_SMALL))
            return -1;
    }
    return 0;
}

/* Linear layer `g` (weight ggml [n_in, n_out], bias [n_out] unless !bias) from part `part` of
 * the n_parts fused in table layer `c` (rows [part * n_out, (part + 1) * n_out)). */
static int linear(writer_t *w, const char *g, const char *c, int part, int n_parts, int64_t n_in,
                  int64_t n_out, bool bias) {
    char gn[160], cn[160];
    int64_t ne[2] = {n_in, n_out};
    snprintf(gn, sizeof gn, "%s.weight", g);
    snprintf(cn, sizeof cn, "%s/weight", c);
    if (tensor(w, gn, cn, n_parts * n_out, part * n_out, n_out, n_in, 2, ne, K_MATRIX))
        return -1;
    if (!bias)
        return 0;
    snprintf(gn, sizeof gn, "%s.bias", g);
    snprintf(cn, sizeof cn, "%s/bias", c);
    return tensor(w, gn, cn, n_parts, part, 1, n_out, 1, &ne[1], K_SMALL);
}

/* One residual block in openai's order (ggml.h's asr_ggml_block_parts), q|k|v split again. */
static int block(writer_t *w, const char *stack, int l, bool cross) {
    int64_t d = w->s->info.d_model;
    for (int i = 0; i < asr_ggml_n_block_parts; i++) {
        const asr_ggml_part_t *p = &asr_ggml_block_parts[i];
        if (p->cross && !cross)
            continue;
        char g[128], c[128];
        snprintf(c, sizeof c, "%s/layer_%d/%s", stack, l, p->ct2);
        for (int j = 0; j < p->n; j++) {
            snprintf(g, sizeof g, "%s.blocks.%d.%s", stack, l, p->ggml[j]);
            if (p->in_mul ? linear(w, g, c, j, p->n, p->in_mul * d, p->out_mul * d,
                                   !(p->no_bias >> j & 1))
                          : norm(w, g, c))
                return -1;
        }
    }
    return 0;
}

/* Conv layer n (1 or 2) of the encoder: weight ggml [3, in, d], bias [1, d]. */
static int conv(writer_t *w, int n, int64_t in) {
    int64_t d = w->s->info.d_model;
    int64_t ne_w[3] = {3, in, d}, ne_b[2] = {1, d};
    char g[64], c[64];
    snprintf(g, sizeof g, "encoder.conv%d.weight", n);
    snprintf(c, sizeof c, "encoder/conv%d/weight", n);
    if (tensor(w, g, c, d, 0, d, 3 * in, 3, ne_w, K_CONV))
        return -1;
    snprintf(g, sizeof g, "encoder.conv%d.bias", n);
    snprintf(c, sizeof c, "encoder/conv%d/bias", n);
    return tensor(w, g, c, 1, 0, 1, d, 2, ne_b, K_SMALL);
}

static int header(writer_t *w) {
    const asr_model_info_t *in = &w->s->info;
    int32_t ftype = w->s->type == ASR_WW_FLOAT32 ? 0 : w->s->type == ASR_WW_FLOAT16 ? 1 : 2007;
    const int32_t hp[] = {in->n_vocab,       in->n_audio_ctx, in->d_model, in->n_audio_head,
                          in->n_audio_layer, in->n_text_ctx,  in->d_model, in->n_text_head,
                          in->n_text_layer,  in->n_mels,      ftype};
    put_i32(w, (int32_t)GGML_MAGIC);
    for (size_t i = 0; i < sizeof hp / sizeof *hp; i++)
        put_i32(w, hp[i]);
    asr_mel_t *mel;
    if (asr_mel_create(in->n_mels, &mel) != ASR_OK) {
        asr_errf(w->err, w->err_len, "ggml writer: no mel filterbank for %d bins", in->n_mels);
        w->rc = ASR_ERR_INVALID;
        return -1;
    }
    float *filters = asr_malloc((size_t)in->n_mels * ASR_MEL_N_BINS * sizeof(float));
    if (!filters) {
        asr_mel_destroy(mel);
        w->rc = ASR_ERR_NOMEM;
        return -1;
    }
    asr_mel_filters(mel, filters);
    asr_mel_destroy(mel);
    put_i32(w, in->n_mels);
    put_i32(w, ASR_MEL_N_BINS);
    fwrite(filters, sizeof(float), (size_t)in->n_mels * ASR_MEL_N_BINS, w->fp);
    free(filters);
    /* the text tokens: ids below <|endoftext|>, raw bytes */
    int32_t eot = asr_tokenizer_special(w->s->tok)->eot;
    put_i32(w, eot);
    for (int32_t id = 0; id < eot; id++) {
        size_t len = 0;
        const char *b = asr_tokenizer_token_bytes(w->s->tok, id, &len);
        put_i32(w, (int32_t)len);
        if (len)
            fwrite(b, 1, len, w->fp);
    }
    return 0;
}

static int body(writer_t *w) {
    const asr_model_info_t *in = &w->s->info;
    int64_t d = in->d_model;
    int64_t ne_ae[2] = {d, in->n_audio_ctx}, ne_te[2] = {d, in->n_text_ctx};
    int64_t ne_tok[2] = {d, in->n_vocab};
    if (header(w) || conv(w, 1, in->n_mels) || conv(w, 2, d) ||
        tensor(w, "encoder.positional_embedding", "encoder/position_encodings/encodings",
               in->n_audio_ctx, 0, in->n_audio_ctx, d, 2, ne_ae, K_SMALL))
        return -1;
    for (int l = 0; l < in->n_audio_layer; l++)
        if (block(w, "encoder", l, false))
            return -1;
    if (norm(w, "encoder.ln_post", "encoder/layer_norm") ||
        tensor(w, "decoder.token_embedding.weight", "decoder/embeddings/weight", in->n_vocab, 0,
               in->n_vocab, d, 2, ne_tok, K_MATRIX) ||
        tensor(w, "decoder.positional_embedding", "decoder/position_encodings/encodings",
               in->n_text_ctx, 0, in->n_text_ctx, d, 2, ne_te, K_SMALL))
        return -1;
    for (int l = 0; l < in->n_text_layer; l++)
        if (block(w, "decoder", l, true))
            return -1;
    return norm(w, "decoder.ln", "decoder/layer_norm");
}

asr_err_t asr_ggml_write(const asr_wwrite_src_t *s, const char *path, char *errbuf,
                         size_t errbuf_len) {
    if (!s || !s->f || !s->tok || !path || s->info.d_model <= 0) {
        asr_errf(errbuf, errbuf_len, "ggml writer: no model to write");
        return ASR_ERR_INVALID;
    }
    writer_t w = {.s = s, .err = errbuf, .err_len = errbuf_len};
    w.fp = fopen(path, "wb");
    if (!w.fp) {
        asr_errf(errbuf, errbuf_len, "cannot create %s: %s", path, strerror(errno));
        return ASR_ERR_IO;
    }
    setvbuf(w.fp, NULL, _IOFBF, 1 << 20);
    w.buf = asr_malloc(CHUNK * sizeof(float));
    w.out = asr_malloc(CHUNK * sizeof(float));
    if (!w.buf || !w.out)
        w.rc = ASR_ERR_NOMEM;
    else if (body(&w) == 0 && (ferror(w.fp) || fflush(w.fp) || fsync(fileno(w.fp)))) {
        asr_errf(errbuf, errbuf_len, "cannot write %s: %s", path, strerror(errno));
        w.rc = ASR_ERR_IO;
    }
    if (fclose(w.fp) && w.rc == ASR_OK) {
        asr_errf(errbuf, errbuf_len, "cannot write %s: %s", path, strerror(errno));
        w.rc = ASR_ERR_IO;
    }
    free(w.buf);
    free(w.out);
    return w.rc;
}
