/* engine: one in-memory table of a Whisper model's tensors, whatever file held them.
 *
 * Every format front (ct2.c: CTranslate2 model.bin, ggml.c: whisper.cpp ggml files,
 * safetensors.c: Hugging Face transformers directories) parses its file into this table, with the
 * tensors named and shaped as CTranslate2's WhisperSpec names them (the names model.c loads):
 *   encoder/conv1/weight [d][n_mels][3], encoder/conv1/bias [d], encoder/conv2/...,
 *   encoder/position_encodings/encodings [1500][d], encoder/num_heads (int scalar),
 *   encoder/layer_N/self_attention/{layer_norm/gamma,beta; linear_0 = q|k|v fused [3d][d] with
 *   bias q_b|0|v_b; linear_1 = out}, encoder/layer_N/ffn/{layer_norm; linear_0 [ff][d];
 *   linear_1 [d][ff]}, encoder/layer_norm/{gamma,beta},
 *   decoder/embeddings/weight [n_vocab][d], decoder/position_encodings/encodings [448][d],
 *   decoder/num_heads, decoder/layer_N/self_attention/... (as the encoder's),
 *   decoder/layer_N/attention/{layer_norm; linear_0 = q [d][d]; linear_1 = k|v fused [2d][d]
 *   with bias 0|v_b; linear_2 = out}, decoder/layer_N/ffn/..., decoder/layer_norm/...
 * A quantized integer tensor (int8/int16) has a float32 companion NAME_scale (per row or one).
 *
 * Memory: a tensor's data points into a mapped file of the table (maps[]) or into memory the
 * table owns (asr_wfile_own: fused q/k/v, dequantized ggml blocks, synthesized scalars); both
 * live until asr_wfile_free. Owned memory is anonymous mmap: a loader may madvise(DONTNEED) the
 * pages of a tensor it has converted and will not read again. */
#ifndef ASR_ENGINE_WFILE_H
#define ASR_ENGINE_WFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "asr/common.h"

typedef enum {
    ASR_WD_F32 = 0,
    ASR_WD_I8 = 1,
    ASR_WD_I16 = 2,
    ASR_WD_I32 = 3,
    ASR_WD_F16 = 4,
    ASR_WD_BF16 = 5
} asr_wdtype_t;

#define ASR_W_MAX_RANK 4
#define ASR_WFILE_MAX_MAPS 64

typedef struct {
    const char *name; /* NUL-terminated; in the file's image or owned by the table */
    int rank;
    int64_t dims[ASR_W_MAX_RANK]; /* outermost first (row-major) */
    int64_t n_elems;
    asr_wdtype_t dtype;
    const uint8_t *data; /* little-endian, at any alignment */
    size_t n_bytes;
} asr_wvar_t;

typedef struct {
    const char *alias;
    const char *target;
} asr_walias_t;

typedef enum { ASR_WFMT_UNKNOWN = 0, ASR_WFMT_CT2, ASR_WFMT_GGML, ASR_WFMT_SAFETENSORS } asr_wfmt_t;

typedef struct {
    asr_wfmt_t format;
    /* CTranslate2 only */
    uint32_t version;
    const char *spec_name; /* "" for version < 2 */
    uint32_t spec_revision;
    /* the tensors */
    int n_vars, cap_vars;
    asr_wvar_t *vars; /* owned array */
    int n_aliases;
    asr_walias_t *aliases; /* owned array */
    /* what the front did to the file's tensors, for `asrd plan` and errors: e.g. "ggml q5_0:
     * 130 matrices dequantized to float16 at load" ("" when nothing) */
    char note[160];
    /* set by asr_wfile_open_shapes: a front may leave the tensors it would convert (fused,
     * dequantized) without data (data NULL, n_bytes as converted): names, shapes, dtypes and
     * scalars only, what asr_model_probe reads, without the work and memory of converting */
    bool shapes_only;
    /* ggml only: the vocabulary written in the file (raw token bytes, u32 length + bytes each),
     * borrowed from the map; n_ggml_tokens entries */
    const uint8_t *ggml_vocab;
    size_t ggml_vocab_len;
    int n_ggml_tokens;
    /* mapped files and owned memory (released by asr_wfile_free) */
    void *maps[ASR_WFILE_MAX_MAPS];
    size_t map_lens[ASR_WFILE_MAX_MAPS];
    int n_maps;
    void **owned;
    size_t *owned_lens;
    int n_owned;
    unsigned char *small; /* the owned chunk names and scalars are carved from */
    size_t small_left;
} asr_wfile_t;

/* Frees what the table owns (vars, aliases, owned memory) and unmaps its maps; NULL-safe. */
void asr_wfile_free(asr_wfile_t *f);
/* Finds a variable by name, following aliases (and the _scale companions of aliases). */
const asr_wvar_t *asr_wfile_find(const asr_wfile_t *f, const char *name);
size_t asr_wdtype_size(asr_wdtype_t t);

/* ---- building a table (the fronts) ---- */

/* Memory owned by the table, zeroed, 64-byte aligned; NULL when out of memory. */
void *asr_wfile_own(asr_wfile_t *f, size_t bytes);

/* Releases the whole pages inside [data, data + len) of a table's mapped file or owned memory,
 * for a tensor a loader has converted and will not read again: loading then peaks at the
 * converted weights plus one tensor, not plus the file. A mapped file's pages come back from the
 * file if touched (the mapping is private and never written); owned pages come back zeroed.
 * Never for memory of another kind (a caller's buffer: asr_ggml_parse's). */
void asr_wfile_drop_pages(const void *data, size_t len);
/* A copy of s owned by the table. */
const char *asr_wfile_own_str(asr_wfile_t *f, const char *s);
/* Appends a variable (name copied into owned memory; data borrowed: the map's or owned); NULL
 * when out of memory. n_elems and n_bytes are computed from dims and dtype. */
asr_wvar_t *asr_wfile_add(asr_wfile_t *f, const char *name, asr_wdtype_t dtype, int rank,
                          const int64_t *dims, const void *data);
/* Appends an int32 scalar variable (e.g. encoder/num_heads). */
asr_wvar_t *asr_wfile_add_i32(asr_wfile_t *f, const char *name, int32_t value);
/* Maps `path` read-only into the table (kept until asr_wfile_free); its bytes and length in
 * *data, *len. ASR_ERR_MODEL (unreadable, empty: reason naming the path), ASR_ERR_IO. */
asr_err_t asr_wfile_map(asr_wfile_t *f, const char *path, const uint8_t **data, size_t *len,
                        char *errbuf, size_t errbuf_len);

/* ---- reading a table ---- */

/* Decodes elements [e0, e1) of v, a tensor of rows of `cols` elements, to float32 in out
 * (int8/int16 through NAME_scale, looked up by `name`). -1 with a reason in err. */
int asr_wfile_decode_f32(const asr_wfile_t *f, const asr_wvar_t *v, const char *name, int64_t cols,
                         int64_t e0, int64_t e1, float *out, char *err, size_t err_len);

/* ---- opening a model: directory or file, format detected from content ---- */

/* The format of a file from its first bytes (n >= 16 gives a sure answer), or ASR_WFMT_UNKNOWN. */
asr_wfmt_t asr_wfile_sniff(const uint8_t *head, size_t n);
const char *asr_wfmt_name(asr_wfmt_t f); /* "ctranslate2", "ggml", "safetensors", "unknown" */

/* Opens the model at `path`: a directory (CTranslate2: model.bin; Hugging Face: model.safetensors
 * or model.safetensors.index.json with its shards; or a directory holding one ggml file) or a
 * file (a ggml .bin, a .safetensors, a CTranslate2 model.bin). Every file's format is detected
 * from its content. *f receives the table; dir_out (>= 4096 bytes, may be NULL) the directory its
 * side files (config.json, tokenizer files) are read from. ASR_ERR_NOT_FOUND (no such path),
 * ASR_ERR_MODEL (unknown, truncated or corrupt: a one-line reason naming the file), ASR_ERR_IO,
 * ASR_ERR_NOMEM. */
asr_err_t asr_wfile_open(const char *path, asr_wfile_t *f, char *dir_out, char *errbuf,
                         size_t errbuf_len);
/* asr_wfile_open with f->shapes_only set (see there): for the probe, never for reading weights. */
asr_err_t asr_wfile_open_shapes(const char *path, asr_wfile_t *f, char *dir_out, char *errbuf,
                                size_t errbuf_len);

#endif
