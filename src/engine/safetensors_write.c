/* engine: the Hugging Face transformers writer (wwrite.h): model.safetensors under
 * WhisperForConditionalGeneration's names, with the JSON files transformers reads beside it.
 *
 * Tensors: the name mapping is the reader's (asr__safetensors_pieces) run backwards: CTranslate2's
 * fused q|k|v and k|v matrices are split back into row blocks. HF's k_proj has no bias, so the
 * fused bias's k block is dropped: a key bias adds q.b_k to every score of a query alike, which
 * softmax cancels, so dropping it changes no output even where it is not zero. Every tensor is
 * written float16 (as HF's Whisper checkpoints are) or float32: a float16 source copies bit for
 * bit, anything else decodes through asr_wfile_decode_f32. The header follows the reference
 * library: compact JSON with "__metadata__": {"format": "pt"}, padded with spaces so the data
 * starts at a multiple of 8, tensors contiguous in header order. */
#include <errno.h>
#include <jansson.h>
#include <string.h>
#include <unistd.h>

#include "core/core.h"
#include "engine/safetensors.h"
#include "engine/wwrite.h"
#include "nn/nn.h"

typedef struct {
    char name[200];      /* HF name */
    char src[200];       /* the CT2 tensor it comes from (int8 scales are found by this name) */
    const asr_wvar_t *v; /* that tensor */
    int64_t e0, e1;      /* its elements [e0, e1) */
    int64_t cols;        /* v's row length */
    int rank;
    int64_t dims[ASR_W_MAX_RANK];
} out_tensor_t;

typedef struct {
    const asr_wwrite_src_t *s;
    out_tensor_t *t;
    int n, cap;
    char *err;
    size_t el;
} plan_t;

/* Adds HF tensor `hf` as block `part` of `n_parts` row blocks of CT2 tensor `ct2` (n_parts 0: all
 * of it). -1 with a reason when the source lacks it. */
static int plan_add(plan_t *P, const char *hf, const char *ct2, int part, int n_parts) {
    const asr_wvar_t *v = asr_wfile_find(P->s->f, ct2);
    if (!v || (n_parts && (v->rank < 1 || v->rank > 2 || v->dims[0] % n_parts))) {
        asr_errf(P->err, P->el, "safetensors writer: the source model %s %s",
                 v ? "cannot split" : "lacks", ct2);
        return -1;
    }
    if (P->n == P->cap) {
        P->cap = P->cap ? 2 * P->cap : 256;
        P->t = asr_xrealloc(P->t, (size_t)P->cap * sizeof *P->t);
    }
    out_tensor_t *t = &P->t[P->n++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", hf);
    snprintf(t->src, sizeof t->src, "%s", ct2);
    t->v = v;
    t->cols = v->rank ? v->n_elems / (v->dims[0] ? v->dims[0] : 1) : 1;
    t->rank = v->rank;
    memcpy(t->dims, v->dims, sizeof t->dims);
    t->e1 = v->n_elems;
    if (n_parts) {
        t->dims[0] = v->dims[0] / n_parts;
        t->e0 = part * t->dims[0] * t->cols;
        t->e1 = t->e0 + t->dims[0] * t->cols;
    }
    return 0;
}

/* One piece of the model: its weight (gamma), and its bias (beta) unless HF has none. */
static int plan_piece(void *ctx, const asr_st_piece_t *p, const char *hfp, const char *ctp) {
    plan_t *P = ctx;
    char hf[200], ct[200], hb[200], cb[200];
    snprintf(hf, sizeof hf, "%s%s%s", hfp, p->hf, p->kind == ASR_ST_TENSOR ? "" : ".weight");
    snprintf(ct, sizeof ct, "%s%s%s", ctp, p->ct2,
             p->kind == ASR_ST_TENSOR ? ""
             : p->kind == ASR_ST_NORM ? "/gamma"
                                      : "/weight");
    snprintf(hb, sizeof hb, "%s%s.bias", hfp, p->hf);
    snprintf(cb, sizeof cb, "%s%s%s", ctp, p->ct2, p->kind == ASR_ST_NORM ? "/beta" : "/bias");
    if (plan_add(P, hf, ct, p->part, p->n_parts))
        return -1;
    if (p->kind != ASR_ST_TENSOR && !p->no_bias && plan_add(P, hb, cb, p->part, p->n_parts))
        return -1;
    return 0;
}

/* ---- model.safetensors ---- */

/* The safetensors header of the plan: compact JSON, padded with spaces to a multiple of 8 bytes
 * after its u64 length; NULL when out of memory. *len receives the bytes including the length. */
static char *header(const plan_t *P, bool f16, size_t *len) {
    json_t *root = json_object();
    json_object_set_new(root, "__metadata__", json_pack("{s:s}", "format", "pt"));
    uint64_t off = 0;
    for (int i = 0; i < P->n; i++) {
        const out_tensor_t *t = &P->t[i];
        json_t *shape = json_array();
        for (int d = 0; d < t->rank; d++)
            json_array_append_new(shape, json_integer(t->dims[d]));
        uint64_t end = off + (uint64_t)(t->e1 - t->e0) * (f16 ? 2 : 4);
        json_object_set_new(root, t->name,
                            json_pack("{s:s,s:o,s:[I,I]}", "dtype", f16 ? "F16" : "F32", "shape",
                                      shape, "data_offsets", (json_int_t)off, (json_int_t)end));
        off = end;
    }
    char *text = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (!text)
        return NULL;
    size_t n = strlen(text), padded = (n + 7) / 8 * 8;
    char *h = malloc(8 + padded);
    if (h) {
        for (int i = 0; i < 8; i++)
            h[i] = (char)(((uint64_t)padded >> (8 * i)) & 0xff);
        memcpy(h + 8, text, n);
        memset(h + 8 + n, ' ', padded - n);
        *len = 8 + padded;
    }
    free(text);
    return h;
}

#define CHUNK 65536 /* elements converted at a time */

/* One tensor's elements as float16 or float32 into fp; a float16 source to float16 (or float32
 * to float32) is copied as it is. -1 with a reason when the source does not decode, -2 when
 * writing fails (errno). */
static int write_tensor(const plan_t *P, const out_tensor_t *t, bool f16, FILE *fp, float *fb,
                        uint16_t *hb) {
    const asr_wvar_t *v = t->v;
    size_t es = f16 ? 2 : 4;
    if (v->dtype == (f16 ? ASR_WD_F16 : ASR_WD_F32)) {
        size_t n = (size_t)(t->e1 - t->e0);
        return fwrite(v->data + (size_t)t->e0 * es, es, n, fp) == n ? 0 : -2;
    }
    for (int64_t i = t->e0; i < t->e1; i += CHUNK) {
        int64_t j = t->e1 - i < CHUNK ? t->e1 : i + CHUNK;
        if (asr_wfile_decode_f32(P->s->f, v, t->src, t->cols, i, j, fb, P->err, P->el))
            return -1;
        if (f16)
            asr_nn_f2h_n(fb, hb, (size_t)(j - i));
        if (fwrite(f16 ? (const void *)hb : (const void *)fb, es, (size_t)(j - i), fp) !=
            (size_t)(j - i))
            return -2;
    }
    return 0;
}

static asr_err_t write_tensors(const plan_t *P, const char *dir, bool f16) {
    char path[4400];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    size_t hl = 0;
    char *h = header(P, f16, &hl);
    float *fb = malloc(CHUNK * sizeof *fb);
    uint16_t *hb = malloc(CHUNK * sizeof *hb);
    FILE *fp = h && fb && hb ? fopen(path, "wbe") : NULL;
    asr_err_t rc = ASR_OK;
    if (!h || !fb || !hb) {
        asr_errf(P->err, P->el, "out of memory writing %s", path);
        rc = ASR_ERR_NOMEM;
    } else if (!fp) {
        asr_errf(P->err, P->el, "cannot create %s: %s", path, strerror(errno));
        rc = ASR_ERR_IO;
    } else {
        int w = fwrite(h, 1, hl, fp) == hl ? 0 : -2;
        for (int i = 0; i < P->n && w == 0; i++)
            w = write_tensor(P, &P->t[i], f16, fp, fb, hb);
        if (w == 0 && (fflush(fp) != 0 || fsync(fileno(fp)) != 0))
            w = -2;
        int saved = errno;
        if (fclose(fp) != 0 && w == 0) {
            w = -2;
            saved = errno;
        }
        if (w == -2)
            asr_errf(P->err, P->el, "cannot write %s: %s", path, strerror(saved));
        rc = w == 0 ? ASR_OK : w == -1 ? ASR_ERR_MODEL : ASR_ERR_IO;
    }
    free(h);
    free(fb);
    free(hb);
    return rc;
}

/* ---- the JSON files ---- */

/* The FFN width of a stack, from its first layer. */
static int ffn_dim(const asr_wfile_t *f, const char *stack) {
    char name[96];
    snprintf(name, sizeof name, "%s/layer_0/ffn/linear_0/weight", stack);
    const asr_wvar_t *v = asr_wfile_find(f, name);
    return v && v->rank == 2 ? (int)v->dims[0] : 0;
}

/* config.json: a WhisperConfig (WhisperForConditionalGeneration, tied output projection). */
static json_t *config_json(const asr_wwrite_src_t *s, json_t *suppress, json_t *begin) {
    const asr_model_info_t *in = &s->info;
    const asr_special_tokens_t *sp = asr_tokenizer_special(s->tok);
    json_t *j = json_pack(
        "{s:s, s:[s], s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i}",
        "model_type", "whisper", "architectures", "WhisperForConditionalGeneration",
        "activation_function", "gelu", "d_model", in->d_model, "encoder_layers", in->n_audio_layer,
        "decoder_layers", in->n_text_layer, "encoder_attention_heads", in->n_audio_head,
        "decoder_attention_heads", in->n_text_head, "encoder_ffn_dim", ffn_dim(s->f, "encoder"),
        "decoder_ffn_dim", ffn_dim(s->f, "decoder"), "num_hidden_layers", in->n_audio_layer,
        "num_mel_bins", in->n_mels, "vocab_size", in->n_vocab, "max_source_positions",
        in->n_audio_ctx, "max_target_positions", in->n_text_ctx);
    json_t *k = json_pack(
        "{s:i, s:i, s:i, s:i, s:b, s:b, s:b, s:b, s:f, s:f, s:f, s:f, s:f, s:f, s:s, s:o, s:o}",
        "decoder_start_token_id", sp->sot, "bos_token_id", sp->eot, "eos_token_id", sp->eot,
        "pad_token_id", sp->eot, "scale_embedding", 0, "tie_word_embeddings", 1,
        "is_encoder_decoder", 1, "use_cache", 1, "dropout", 0.0, "attention_dropout", 0.0,
        "activation_dropout", 0.0, "encoder_layerdrop", 0.0, "decoder_layerdrop", 0.0, "init_std",
        0.02, "torch_dtype", s->type == ASR_WW_FLOAT32 ? "float32" : "float16", "suppress_tokens",
        json_incref(suppress), "begin_suppress_tokens", json_incref(begin));
    if (!j || !k || json_object_update(j, k)) {
        json_decref(j);
        j = NULL;
    }
    json_decref(k);
    return j;
}

/* generation_config.json: what transformers' generate() and CTranslate2's converter read. */
static json_t *generation_json(const asr_wwrite_src_t *s, json_t *suppress, json_t *begin) {
    const asr_special_tokens_t *sp = asr_tokenizer_special(s->tok);
    json_t *heads = json_array();
    for (int i = 0; i < s->n_alignment_heads; i++)
        json_array_append_new(
            heads, json_pack("[i,i]", s->alignment_heads[i][0], s->alignment_heads[i][1]));
    json_t *j =
        json_pack("{s:o, s:o, s:o, s:i, s:i, s:i, s:i, s:b, s:i, s:i, s:i, s:i, s:b}",
                  "alignment_heads", heads, "suppress_tokens", json_incref(suppress),
                  "begin_suppress_tokens", json_incref(begin), "decoder_start_token_id", sp->sot,
                  "bos_token_id", sp->eot, "eos_token_id", sp->eot, "pad_token_id", sp->eot,
                  "is_multilingual", sp->multilingual, "no_timestamps_token_id", sp->no_timestamps,
                  "prev_sot_token_id", sp->sot_prev, "max_initial_timestamp_index", 50,
                  "max_length", s->info.n_text_ctx, "return_timestamps", 0);
    if (j && sp->multilingual) {
        json_t *langs = json_object();
        for (int i = 0; i < sp->n_languages; i++) {
            const char *code = asr_tokenizer_lang_code(s->tok, sp->lang_begin + i);
            char key[32];
            snprintf(key, sizeof key, "<|%s|>", code ? code : "?");
            if (code)
                json_object_set_new(langs, key, json_integer(sp->lang_begin + i));
        }
        json_object_set_new(j, "lang_to_id", langs);
        json_object_set_new(
            j, "task_to_id",
            json_pack("{s:i, s:i}", "transcribe", sp->transcribe, "translate", sp->translate));
    }
    return j;
}

static asr_err_t write_configs(const asr_wwrite_src_t *s, const char *dir, char *err, size_t el) {
    const asr_special_tokens_t *sp = asr_tokenizer_special(s->tok);
    int32_t ids[1024];
    int n = asr_tokenizer_suppress_tokens(s->tok, ids, 1024);
    json_t *suppress = asr__wwrite_int_array(ids, n < 1024 ? n : 1024);
    /* generate() keeps a blank (" ", GPT-2's "Ġ") and end of text out of the first sample */
    int32_t blank = asr_tokenizer_token_to_id(s->tok, "\xc4\xa0", 2);
    int32_t first[2] = {blank, sp->eot};
    json_t *begin =
        blank >= 0 ? asr__wwrite_int_array(first, 2) : asr__wwrite_int_array(first + 1, 1);
    asr_err_t rc = asr__wwrite_json(dir, "config.json", config_json(s, suppress, begin), err, el);
    if (rc == ASR_OK)
        rc = asr__wwrite_json(dir, "generation_config.json", generation_json(s, suppress, begin),
                              err, el);
    if (rc == ASR_OK)
        rc = asr__wwrite_preprocessor(s, dir, err, el);
    json_decref(suppress);
    json_decref(begin);
    return rc;
}

asr_err_t asr_safetensors_write(const asr_wwrite_src_t *s, const char *dir, char *errbuf,
                                size_t errbuf_len) {
    if (s->type == ASR_WW_INT8) {
        asr_errf(errbuf, errbuf_len, "safetensors has no int8 layout; use --compute-type float16");
        return ASR_ERR_INVALID;
    }
    if (!s->f || !s->tok) {
        asr_errf(errbuf, errbuf_len, "safetensors writer: no tensors or no tokenizer");
        return ASR_ERR_INVALID;
    }
    plan_t P = {.s = s, .err = errbuf, .el = errbuf_len};
    asr_err_t rc = ASR_OK;
    for (int st = 0; st < 2 && rc == ASR_OK; st++) {
        int layers = st ? s->info.n_text_layer : s->info.n_audio_layer;
        for (int l = -1; l < layers && rc == ASR_OK; l++)
            if (asr__safetensors_each_piece(st, l, "model.", plan_piece, &P))
                rc = ASR_ERR_MODEL;
    }
    if (rc == ASR_OK)
        rc = write_tensors(&P, dir, s->type == ASR_WW_FLOAT16);
    free(P.t);
    if (rc == ASR_OK)
        rc = write_configs(s, dir, errbuf, errbuf_len);
    /* the tokenizer both ways transformers reads it: the fast tokenizer.json and the slow files */
    static const struct {
        const char *name;
        asr_wwrite_tok_fn fn;
    } toks[4] = {{"tokenizer.json", asr_tokenizer_write_tokenizer_json},
                 {"vocab.json", asr_tokenizer_write_vocab_json},
                 {"merges.txt", asr_tokenizer_write_merges_txt},
                 {"added_tokens.json", asr_tokenizer_write_added_tokens_json}};
    for (int i = 0; i < 4 && rc == ASR_OK; i++)
        rc = asr__wwrite_tokenizer_file(s, dir, toks[i].name, toks[i].fn, errbuf, errbuf_len);
    if (rc == ASR_OK)
        asr__wwrite_sync_dir(dir);
    return rc;
}
