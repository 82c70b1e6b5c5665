/* engine: a stream's lifecycle and results: the default transcription parameters, slot creation
 * (one arena sized by the plan, plan.c), destruction, the results store (segments, tokens, words)
 * with its getters, and the debug entry points that drive one stream's encoder or decoder. The
 * long-form loop that fills the results is transcribe.c's.
 *
 * Invariants: every buffer the plan counts lies in the stream's arena, allocated and touched at
 * creation, so a transcription allocates only its results; segment and word pointers are fixed
 * up from offsets when handed out (the pools move as they grow) and stay valid until the next
 * transcription or destroy. */
#include <string.h>

#include "engine/engine_int.h"
#include "engine/gpu_int.h"

asr_transcribe_params_t asr_transcribe_default_params(void) {
    asr_transcribe_params_t p;
    memset(&p, 0, sizeof p);
    p.task = ASR_TASK_TRANSCRIBE;
    p.beam_size = 5;
    p.best_of = 5;
    p.patience = 1.0f;
    p.length_penalty = 1.0f;
    static const float temps[] = {0.0f, 0.2f, 0.4f, 0.6f, 0.8f, 1.0f};
    memcpy(p.temperatures, temps, sizeof temps);
    p.n_temperatures = 6;
    p.prompt_reset_on_temperature = 0.5f;
    p.condition_on_previous_text = true;
    p.vad.threshold = 0.5f;
    p.vad.min_speech_ms = 250;
    p.vad.max_speech_s = 30.0f;
    p.vad.min_silence_ms = 2000;
    p.vad.speech_pad_ms = 400;
    p.seed = 0x5eed;
    p.skip_silent_windows = true;
    p.suppress_blank = true;
    p.no_speech_threshold = 0.6f;
    p.logprob_threshold = -1.0f;
    p.compression_ratio_threshold = 2.4f;
    p.max_initial_timestamp = 1.0f;
    return p;
}

int asr_transcribe_n_seq(const asr_transcribe_params_t *p) {
    int need = 1;
    int n_t = p->n_temperatures < 1 ? 1 : p->n_temperatures;
    for (int i = 0; i < n_t; i++) {
        float t = p->n_temperatures < 1 ? 0.0f : p->temperatures[i];
        int n = t > 0.0f ? p->best_of : p->beam_size;
        if (n > need)
            need = n;
    }
    return need > ASR_SLOT_MAX_SEQ ? ASR_SLOT_MAX_SEQ : need;
}

asr_err_t asr_stream_create_slot(const asr_model_t *m, int n_seq, asr_stream_t **out) {
    *out = NULL;
    if (n_seq < 1 || n_seq > ASR_SLOT_MAX_SEQ)
        return ASR_ERR_INVALID;
    asr__slot_layout_t L;
    asr__slot_layout(&m->info, n_seq, m->wtype, m->g != NULL, &L);
    unsigned char *a = asr_malloc_huge(L.arena_bytes);
    if (!a)
        return ASR_ERR_NOMEM;
    memset(a, 0, L.arena_bytes); /* touch every page: the slot's memory is really there */
    asr_stream_t *s = asr_xcalloc(1, sizeof *s);
    s->m = m;
    s->arena = a;
    s->arena_bytes = L.arena_bytes;
    s->n_seq_cap = n_seq;
    asr__dec_reset(s, 0);
#define BUF(id) ((float *)(a + L.off[id]))
    s->eb.x = BUF(ASR_SLOT_ENC_X), s->eb.h = BUF(ASR_SLOT_ENC_H);
    s->eb.big = BUF(ASR_SLOT_ENC_BIG), s->eb.big2 = BUF(ASR_SLOT_ENC_BIG2);
    s->eb.scores = BUF(ASR_SLOT_ENC_SCORES), s->eb.out = BUF(ASR_SLOT_ENC_OUT);
    s->eb.w = BUF(ASR_SLOT_ENC_W), s->eb.w_cap = (size_t)4 * m->info.d_model * m->info.d_model;
    s->cross_kv = BUF(ASR_SLOT_CROSS_KV);
    s->self_k = BUF(ASR_SLOT_SELF_K), s->self_v = BUF(ASR_SLOT_SELF_V);
    s->dx = BUF(ASR_SLOT_DX), s->dh = BUF(ASR_SLOT_DH), s->dqkv = BUF(ASR_SLOT_DQKV);
    s->dattn = BUF(ASR_SLOT_DATTN), s->dffn = BUF(ASR_SLOT_DFFN);
    s->dscores = BUF(ASR_SLOT_DSCORES);
    s->logits = BUF(ASR_SLOT_LOGITS), s->logprobs = BUF(ASR_SLOT_LOGPROBS);
    s->win = BUF(ASR_SLOT_WIN), s->frames_raw = BUF(ASR_SLOT_FRAMES_RAW);
    s->frames_buf = BUF(ASR_SLOT_FRAMES_BUF);
#undef BUF
    s->n_threads = m->g ? 1 : m->n_threads; /* a GPU stream's host work is the search */
    s->pool = asr_pool_create(s->n_threads);
    if (m->g) { /* the encoder, caches and decoder scratch are on the device */
        memset(&s->eb, 0, sizeof s->eb);
        s->cross_kv = s->self_k = s->self_v = NULL;
        s->dx = s->dh = s->dqkv = s->dattn = s->dffn = s->dscores = NULL;
        asr_err_t rc = asr__gpu_stream_open(s);
        if (rc != ASR_OK) {
            asr_stream_destroy(s);
            return rc;
        }
    }
    asr_buf_init(&s->text_pool);
    ASR_LOG(ASR_LOG_DEBUG, "msg=slot_created n_seq=%d arena_bytes=%zu", n_seq, L.arena_bytes);
    *out = s;
    return ASR_OK;
}

asr_err_t asr_stream_create(const asr_model_t *m, asr_stream_t **out) {
    return asr_stream_create_slot(m, ASR_DEFAULT_N_SEQ, out);
}

size_t asr_stream_arena_bytes(const asr_stream_t *s) { return s->arena_bytes; }
int asr_stream_n_seq(const asr_stream_t *s) { return s->n_seq_cap; }

void asr_stream_destroy(asr_stream_t *s) {
    if (!s)
        return;
    asr__gpu_stream_close(s);
    free(s->bench_tokens);
    asr_free_huge(s->arena, s->arena_bytes);
    asr_pool_destroy(s->pool);
    asr__zh_free(s);
    free(s->segs);
    free(s->seg_text_off);
    free(s->seg_tok_off);
    free(s->words);
    free(s->word_text_off);
    free(s->seg_word_first);
    free(s->seg_n_words);
    asr_buf_free(&s->word_text);
    free(s->tok_pool);
    asr_buf_free(&s->text_pool);
    free(s);
}

void asr__stream_results_reset(asr_stream_t *s) {
    s->n_segs = 0;
    s->text_pool.len = 0;
    s->n_tok_pool = 0;
    s->n_words = 0;
    s->word_text.len = 0;
    s->language[0] = 0;
    s->language_prob = 0.0f;
    s->errmsg[0] = 0;
}

/* ---- results ---- */

void asr__stream_add_segment(asr_stream_t *s, int seek, double start, double end,
                             const int32_t *toks, int n_toks, const char *text, size_t text_len,
                             float temperature, float avg_logprob, float cr, float nsp) {
    if (s->n_segs == s->cap_segs) {
        s->cap_segs = s->cap_segs ? s->cap_segs * 2 : 64;
        s->segs = asr_xrealloc(s->segs, (size_t)s->cap_segs * sizeof *s->segs);
        s->seg_text_off = asr_xrealloc(s->seg_text_off, (size_t)s->cap_segs * sizeof(size_t));
        s->seg_tok_off = asr_xrealloc(s->seg_tok_off, (size_t)s->cap_segs * sizeof(size_t));
        s->seg_word_first = asr_xrealloc(s->seg_word_first, (size_t)s->cap_segs * sizeof(int));
        s->seg_n_words = asr_xrealloc(s->seg_n_words, (size_t)s->cap_segs * sizeof(int));
    }
    if (s->n_tok_pool + (size_t)n_toks > s->cap_tok_pool) {
        while (s->n_tok_pool + (size_t)n_toks > s->cap_tok_pool)
            s->cap_tok_pool = s->cap_tok_pool ? s->cap_tok_pool * 2 : 1024;
        s->tok_pool = asr_xrealloc(s->tok_pool, s->cap_tok_pool * sizeof(int32_t));
    }
    int i = s->n_segs++;
    s->seg_text_off[i] = s->text_pool.len;
    asr__zh_append(s, &s->text_pool, text, text_len);
    asr_buf_append(&s->text_pool, "", 1); /* keep the NUL inside the pool */
    s->seg_tok_off[i] = s->n_tok_pool;
    s->seg_word_first[i] = s->n_words;
    s->seg_n_words[i] = 0;
    memcpy(s->tok_pool + s->n_tok_pool, toks, (size_t)n_toks * sizeof(int32_t));
    s->n_tok_pool += (size_t)n_toks;
    asr_segment_t *g = &s->segs[i];
    g->id = i;
    g->seek = seek;
    g->start = start;
    g->end = end;
    g->n_tokens = n_toks;
    g->temperature = temperature;
    g->avg_logprob = avg_logprob;
    g->compression_ratio = cr;
    g->no_speech_prob = nsp;
    g->text = NULL;
    g->tokens = NULL;
}

void asr__stream_fix_pointers(asr_stream_t *s, int i) {
    s->segs[i].text = s->text_pool.data + s->seg_text_off[i];
    s->segs[i].tokens = s->tok_pool + s->seg_tok_off[i];
}

int asr_stream_n_segments(const asr_stream_t *s) { return s->n_segs; }
const asr_segment_t *asr_stream_segment(const asr_stream_t *s, int i) {
    if (i < 0 || i >= s->n_segs)
        return NULL;
    asr__stream_fix_pointers((asr_stream_t *)s, i);
    return &s->segs[i];
}
int asr_stream_n_words(const asr_stream_t *s, int seg) {
    return seg >= 0 && seg < s->n_segs ? s->seg_n_words[seg] : 0;
}
const asr_word_t *asr_stream_word(const asr_stream_t *s, int seg, int i) {
    if (seg < 0 || seg >= s->n_segs || i < 0 || i >= s->seg_n_words[seg])
        return NULL;
    asr_stream_t *w = (asr_stream_t *)s;
    int k = s->seg_word_first[seg] + i;
    w->words[k].word = s->word_text.data + s->word_text_off[k];
    return &s->words[k];
}

/* Appends a word to the last segment. */
void asr__stream_add_word(asr_stream_t *s, const char *word, double start, double end, float prob) {
    if (s->n_words == s->cap_words) {
        s->cap_words = s->cap_words ? s->cap_words * 2 : 256;
        s->words = asr_xrealloc(s->words, (size_t)s->cap_words * sizeof *s->words);
        s->word_text_off = asr_xrealloc(s->word_text_off, (size_t)s->cap_words * sizeof(size_t));
    }
    int k = s->n_words++;
    s->word_text_off[k] = s->word_text.len;
    asr__zh_append(s, &s->word_text, word, strlen(word));
    asr_buf_append(&s->word_text, "", 1);
    s->words[k].word = NULL;
    s->words[k].start = start;
    s->words[k].end = end;
    s->words[k].probability = prob;
    s->seg_n_words[s->n_segs - 1]++;
}
const char *asr_stream_language(const asr_stream_t *s) { return s->language; }
float asr_stream_language_prob(const asr_stream_t *s) { return s->language_prob; }
double asr_stream_duration(const asr_stream_t *s) { return s->duration; }
void asr_stream_timings(const asr_stream_t *s, asr_timings_t *out) { *out = s->timings; }
const char *asr_stream_errmsg(const asr_stream_t *s) { return s->errmsg; }

/* ---- debug hooks ---- */

asr_err_t asr_engine_log_mel(const asr_model_t *m, const float *pcm, size_t n_samples,
                             float **out_mel, int *out_n_frames) {
    return asr_mel_compute(m->mel, pcm, n_samples, m->n_threads, out_mel, out_n_frames);
}

asr_err_t asr_stream_encode(asr_stream_t *s, const float *mel_window, const float **out_enc) {
    if (s->g) { /* the device's output, copied back as float32; one attempt of its own */
        s->g->err = ASR_OK;
        asr__gpu_encode(s, mel_window, true);
        s->enc_out_live = true, s->xkv_live = true;
        *out_enc = s->g->enc_out;
        return s->g->err;
    }
    asr__encode(s, mel_window);
    *out_enc = s->eb.out;
    return ASR_OK;
}

asr_err_t asr_stream_bench_decoder(asr_stream_t *s, int n_seq, int n_steps, double *ms_per_step) {
    const asr_model_t *m = s->m;
    if (n_seq < 1 || n_seq > s->n_seq_cap || n_steps < 1 || n_steps + 4 > m->info.n_text_ctx)
        return ASR_ERR_INVALID;
    if (!s->xkv_live) /* a second call after one encoder pass: its cross K/V are still there */
        asr__dec_cross_kv(s);
    int32_t prompt[3] = {m->sp.sot, m->sp.sot, m->sp.sot};
    asr__dec_forward(s, prompt, 3, 0, -1);
    int32_t tok[ASR_SLOT_MAX_SEQ];
    double t0 = asr_now_s();
    for (int step = 0; step < n_steps; step++) {
        for (int i = 0; i < n_seq; i++)
            tok[i] = (int32_t)(1000 + 37 * step + i); /* ordinary text tokens */
        asr__dec_step(s, tok, n_seq, 3 + step);
    }
    *ms_per_step = (asr_now_s() - t0) * 1000.0 / n_steps;
    return ASR_OK;
}
