/* engine: a model opened as the source of a writer (wwrite.h), without loading it for inference:
 * its tensor table (any format, asr_wfile_open), its tokenizer (as asr_model_load finds it), its
 * dimensions and its alignment heads. `asrd convert` opens one from a path; random_model.h makes
 * one from nothing.
 *
 * The source owns the table and the tokenizer; src.f and src.tok point into it, so the struct is
 * heap-allocated and never moves. */
#ifndef ASR_ENGINE_WSOURCE_H
#define ASR_ENGINE_WSOURCE_H

#include "engine/wwrite.h"

typedef struct {
    asr_wfile_t f;        /* the tensors (CTranslate2 names) */
    asr_tokenizer_t *tok; /* owned */
    asr_wwrite_src_t src; /* what a writer takes: src.f = &f, src.tok = tok, dims, alignment
                             heads; src.type ASR_WW_FLOAT16 until the caller sets it */
    char dir[4096];       /* the directory its side files came from ("" when made in memory) */
} asr_wsource_t;

/* Opens the model at `path` (what asr_wfile_open accepts). *out: owned by caller
 * (asr_wsource_close). ASR_ERR_NOT_FOUND, ASR_ERR_MODEL (unreadable, not Whisper, no tokenizer:
 * a one-line reason naming the file), ASR_ERR_NOMEM, ASR_ERR_IO. */
asr_err_t asr_wsource_open(const char *path, asr_wsource_t **out, char *errbuf, size_t errbuf_len);

/* An empty source whose table the caller fills (random_model.c); NULL when out of memory. */
asr_wsource_t *asr_wsource_new(void);

/* Fills src from the table and the tokenizer the caller put in s: dimensions (asr__model_dims)
 * and alignment heads (config.json of s->dir when set, else the default set). -1 with a reason
 * when the table is not a Whisper model. */
int asr_wsource_finish(asr_wsource_t *s, char *errbuf, size_t errbuf_len);

/* Frees the table and the tokenizer; NULL-safe. */
void asr_wsource_close(asr_wsource_t *s);

#endif
