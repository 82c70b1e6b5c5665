/* engine: asr_stream_bench_window, the work of one window of a fixed decode length (asrd bench
 * --streams): one encoder pass, the start-of-transcript prompt, then exactly n_tokens decoder
 * steps of beam_size sequences with end-of-text suppressed (greedy: the argmax; beams: the
 * beam_size best continuations by cumulative log-probability, caches reordered as the search
 * does). The same code drives CPU and GPU streams; on a GPU model, calls from several threads
 * are batched by the model's batcher like any transcription. asr_model_encoder_gemm: which GEMM
 * path the encoder's linear layers take (asrd bench measures that unit's peak). */
#include <math.h>
#include <string.h>

#include "engine/engine_int.h"
#include "engine/gpu_int.h"
#include "engine/search.h"

/* One step's choice: the next tokens of nb beams (cur, score, seq updated; src: the beam each
 * new one continues). Returns the new number of beams. */
static int choose(asr_stream_t *s, int beam_size, int nb, int step, int n_tokens, int32_t *cur,
                  double *score, int32_t *seq, int32_t *seq2, int *src) {
    const asr_model_t *m = s->m;
    const int V = m->info.n_vocab;
    asr_cand_t cand[ASR_SLOT_MAX_SEQ];
    int n_cand = 0;
    for (int b = 0; b < nb; b++) {
        float *lg = s->logits + (size_t)b * V;
        lg[m->sp.eot] = -INFINITY;
        if (beam_size == 1) { /* greedy: the argmax */
            int best = 0;
            for (int t = 1; t < V; t++)
                if (lg[t] > lg[best])
                    best = t;
            cand[0] = (asr_cand_t){0.0, 0, best};
            n_cand = 1;
            break;
        }
        float lse = asr_nn_logsumexp(lg, V);
        for (int t = 0; t < V; t++)
            asr__cand_push(cand, &n_cand, beam_size, (asr_cand_t){score[b] + (lg[t] - lse), b, t});
    }
    for (int k = 0; k < n_cand; k++) {
        memcpy(seq2 + (size_t)k * n_tokens, seq + (size_t)cand[k].beam * n_tokens,
               (size_t)step * sizeof(int32_t));
        seq2[(size_t)k * n_tokens + step] = cand[k].tok;
        score[k] = cand[k].score; /* cand holds the old scores it needs */
        src[k] = cand[k].beam;
        cur[k] = cand[k].tok;
    }
    return n_cand;
}

asr_err_t asr_stream_bench_window(asr_stream_t *s, const float *mel_window, int beam_size,
                                  int n_tokens) {
    const asr_model_t *m = s->m;
    int32_t prompt[3];
    int np = 0;
    prompt[np++] = m->sp.sot;
    if (m->sp.multilingual) {
        prompt[np++] = m->sp.lang_begin; /* English */
        prompt[np++] = m->sp.transcribe;
    }
    const int start = np - 1;
    if (beam_size < 1 || beam_size > s->n_seq_cap || n_tokens < 1 ||
        start + n_tokens > m->info.n_text_ctx)
        return ASR_ERR_INVALID;
    int32_t *seq = asr_malloc((size_t)2 * ASR_SLOT_MAX_SEQ * n_tokens * sizeof(int32_t));
    if (!seq)
        return ASR_ERR_NOMEM;
    int32_t *seq2 = seq + (size_t)ASR_SLOT_MAX_SEQ * n_tokens;
    if (s->g)
        s->g->err = ASR_OK;
    asr__encode(s, mel_window);
    asr__dec_cross_kv(s);
    asr__dec_reset(s, 0);
    if (np > 1)
        asr__dec_forward(s, prompt, np - 1, 0, -1);
    int32_t cur[ASR_SLOT_MAX_SEQ] = {prompt[start]};
    double score[ASR_SLOT_MAX_SEQ] = {0};
    int src[ASR_SLOT_MAX_SEQ], nb = 1;
    for (int step = 0; step < n_tokens; step++) {
        asr__dec_step(s, cur, nb, start + step);
        nb = choose(s, beam_size, nb, step, n_tokens, cur, score, seq, seq2, src);
        int32_t *t = seq;
        seq = seq2, seq2 = t;
        if (beam_size > 1 && step + 1 < n_tokens) /* the prompt is shared: [start, ...) moves */
            asr__dec_reorder(s, src, nb, start, start + step + 1);
    }
    free(s->bench_tokens);
    s->bench_tokens = asr_xmalloc((size_t)n_tokens * sizeof(int32_t));
    memcpy(s->bench_tokens, seq, (size_t)n_tokens * sizeof(int32_t));
    s->n_bench_tokens = n_tokens;
    free(seq < seq2 ? seq : seq2); /* the one allocation */
    return s->g ? s->g->err : ASR_OK;
}

int asr_model_encoder_gemm(const asr_model_t *m, const char **kernel) {
    if (kernel)
        *kernel = NULL;
    /* what the loader packed, not only what it would ask for: a shape oneDNN refused stays
     * float32 (pack_encoder leaves dn NULL then) */
    if (!m || m->info.n_audio_layer < 1 || !m->enc[0].qkv.dn)
        return -1;
    if (kernel)
        *kernel = asr_nn_dnnl_impl(m->enc[0].qkv.dn);
    return asr__enc_dnnl_type(m->wtype);
}
