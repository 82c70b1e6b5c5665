/* engine: opening a model as a writer's source (wsource.h). The same steps asr_model_load takes
 * before it converts any weight: the table, the spec check, the dimensions, the tokenizer and the
 * alignment heads, through the same functions (model.c), so a converter reads exactly what the
 * loader would. */
#include <string.h>

#include "engine/engine_int.h"
#include "engine/wsource.h"

asr_wsource_t *asr_wsource_new(void) {
    asr_wsource_t *s = calloc(1, sizeof *s);
    if (s)
        s->src.type = ASR_WW_FLOAT16;
    return s;
}

void asr_wsource_close(asr_wsource_t *s) {
    if (!s)
        return;
    asr_wfile_free(&s->f);
    asr_tokenizer_destroy(s->tok);
    free(s);
}

int asr_wsource_finish(asr_wsource_t *s, char *errbuf, size_t errbuf_len) {
    asr_wwrite_src_t *w = &s->src;
    w->f = &s->f;
    w->tok = s->tok;
    if (asr__model_dims(&s->f, &w->info, errbuf, errbuf_len) != 0)
        return -1;
    w->n_alignment_heads =
        asr__model_alignment_heads(s->dir[0] ? s->dir : NULL, &w->info, w->alignment_heads);
    return 0;
}

asr_err_t asr_wsource_open(const char *path, asr_wsource_t **out, char *errbuf, size_t errbuf_len) {
    *out = NULL;
    asr_wsource_t *s = asr_wsource_new();
    if (!s)
        return ASR_ERR_NOMEM;
    asr_err_t rc = asr_wfile_open(path, &s->f, s->dir, errbuf, errbuf_len);
    if (rc != ASR_OK) {
        free(s);
        return rc;
    }
    rc = ASR_ERR_MODEL;
    if (s->f.format == ASR_WFMT_CT2 && s->f.version >= 2 &&
        strcmp(s->f.spec_name, "WhisperSpec") != 0) {
        asr_errf(errbuf, errbuf_len, "%s: model.bin holds a %s, not a WhisperSpec", path,
                 s->f.spec_name);
        goto fail;
    }
    char derr[512] = "";
    asr_model_info_t in;
    if (asr__model_dims(&s->f, &in, derr, sizeof derr) != 0) {
        asr_errf(errbuf, errbuf_len, "%s: %s", path, derr);
        goto fail;
    }
    rc = asr__model_load_tokenizer(&s->f, s->dir, in.n_vocab, &s->tok, errbuf, errbuf_len);
    if (rc != ASR_OK)
        goto fail;
    if (asr_wsource_finish(s, errbuf, errbuf_len) != 0) {
        rc = ASR_ERR_MODEL;
        goto fail;
    }
    *out = s;
    return ASR_OK;
fail:
    asr_wsource_close(s);
    return rc;
}
