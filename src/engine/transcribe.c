/* engine: the long-form transcription loop, mirroring faster-whisper's transcribe() (the reference
 * behaviour): language detection on the first window, 30-s windows advanced by the last
 * timestamp, the temperature fallback, segments split at consecutive timestamps (with word
 * timestamps when asked), the no-speech skip, and conditioning on previous text. The stream and
 * its results store are stream.c's; the search (greedy, beam, sampling) is search.c's.
 *
 * Invariants: a run resets the stream's results first and leaves them complete up to the window
 * that failed, if one did; seek only moves forward, at least one frame per window. */
#include <math.h>
#include <string.h>
#include <zlib.h>

#include "engine/engine_int.h"
#include "engine/gpu_int.h"
#include "engine/search.h"
#include "engine/align.h"
#include "engine/frames.h"
#include "engine/vadfilter.h"

#define MAX_CTX_PROMPT 223 /* n_text_ctx/2 - 1 previous tokens */

/* ---- small helpers ---- */

typedef struct {
    int32_t *v;
    int n, cap;
} ivec_t;

static void ivec_push(ivec_t *a, int32_t x) {
    if (a->n == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 256;
        a->v = asr_xrealloc(a->v, (size_t)a->cap * sizeof(int32_t));
    }
    a->v[a->n++] = x;
}

static float compression_ratio(const char *text, size_t len) {
    if (len == 0)
        return 0.0f;
    uLongf out_len = compressBound((uLong)len);
    unsigned char *buf = asr_xmalloc(out_len);
    float r = 0.0f;
    if (compress2(buf, &out_len, (const Bytef *)text, (uLong)len, Z_DEFAULT_COMPRESSION) == Z_OK)
        r = (float)len / (float)out_len;
    free(buf);
    return r;
}

/* Strips leading/trailing ASCII whitespace; returns the start and sets *n. */
static const char *strip(const char *s, size_t len, size_t *n) {
    while (len && (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r'))
        s++, len--;
    while (len &&
           (s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == '\n' || s[len - 1] == '\r'))
        len--;
    *n = len;
    return s;
}
/* ---- language ---- */

static int32_t detect_language(asr_stream_t *s, const float *win) {
    const asr_model_t *m = s->m;
    asr__encode(s, win);
    asr__dec_cross_kv(s);
    int32_t sot = m->sp.sot;
    asr__dec_forward(s, &sot, 1, 0, 0);
    int lb = m->sp.lang_begin, nl = m->sp.n_languages;
    int best = lb;
    float mx = -INFINITY;
    for (int i = lb; i < lb + nl; i++)
        if (s->logits[i] > mx) {
            mx = s->logits[i];
            best = i;
        }
    double sum = 0.0;
    for (int i = lb; i < lb + nl; i++)
        sum += exp((double)(s->logits[i] - mx));
    s->language_prob = (float)(1.0 / sum);
    s->n_lang_probs = nl < ASR_TOKENIZER_MAX_LANGUAGES ? nl : ASR_TOKENIZER_MAX_LANGUAGES;
    for (int i = 0; i < s->n_lang_probs; i++)
        s->lang_probs[i] = (float)(exp((double)(s->logits[lb + i] - mx)) / sum);
    return best;
}

/* ---- the long-form loop ---- */

typedef struct {
    asr_stream_t *s;
    const asr_transcribe_params_t *p;
    asr_buf_t text;
    ivec_t all_tokens, prompt, hotwords;
    asr_search_result_t r, cand;
    float temperature;
    int prompt_reset_since;
    int32_t lang_tok;
    double last_speech;
    const asr_vadfilter_t *vf; /* non-NULL with vad_filter: maps times back */
    uint64_t rng;
} run_t;

typedef struct {
    int lo, hi;
    double start, end;
    int w_first, w_n; /* words of this subsegment in the window's word list */
} subseg_t;

static double round2(double x) { return round(x * 100.0) / 100.0; }

/* Word timestamps for the window's subsegments (faster-whisper add_word_timestamps). Returns the
 * words (owned by caller) and adjusts subsegment times. */
static asr_word_timing_t *window_words(run_t *R, subseg_t *segs, int n_segs, int seek,
                                       int segment_size, int *n_words_out) {
    asr_stream_t *s = R->s;
    const asr_model_t *m = s->m;
    const int32_t *t = R->r.tokens;
    int32_t *text = asr_xmalloc((size_t)(R->r.n_tokens + 1) * sizeof(int32_t));
    int n_text = 0;
    for (int k = 0; k < n_segs; k++)
        for (int i = segs[k].lo; i < segs[k].hi; i++)
            if (t[i] < m->sp.eot)
                text[n_text++] = t[i];
    int32_t sot_seq[3] = {m->sp.sot, R->lang_tok,
                          R->p->task == ASR_TASK_TRANSLATE ? m->sp.translate : m->sp.transcribe};
    asr_word_timing_t *w = NULL;
    int nw = 0;
    double med = 0, maxd = 0;
    asr__align_words(s, sot_seq, m->sp.multilingual ? 3 : 1, text, n_text, segment_size,
                     s->language, &w, &nw, &med, &maxd);
    free(text);
    double offset = seek * 0.01;
    int wi = 0;
    for (int k = 0; k < n_segs; k++) {
        int seg_text = 0, saved = 0;
        for (int i = segs[k].lo; i < segs[k].hi; i++)
            seg_text += t[i] < m->sp.eot;
        segs[k].w_first = wi;
        segs[k].w_n = 0;
        /* words keep their index in w; empty (merged) words are skipped when emitted */
        while (wi < nw && saved < seg_text) {
            w[wi].start = round2(offset + w[wi].start);
            w[wi].end = round2(offset + w[wi].end);
            saved += w[wi].n_tokens;
            wi++;
            segs[k].w_n++;
        }
        /* first/last non-empty words of the subsegment */
        int f = -1, l = -1;
        for (int i = segs[k].w_first; i < segs[k].w_first + segs[k].w_n; i++)
            if (w[i].word[0]) {
                if (f < 0)
                    f = i;
                l = i;
            }
        if (f < 0)
            continue;
        int f2 = -1;
        for (int i = f + 1; i <= l; i++)
            if (w[i].word[0]) {
                f2 = i;
                break;
            }
        if (w[f].end - R->last_speech > med * 4 &&
            (w[f].end - w[f].start > maxd || (f2 >= 0 && w[f2].end - w[f].start > maxd * 2))) {
            if (f2 >= 0 && w[f2].end - w[f2].start > maxd) {
                double boundary = fmax(w[f2].end / 2, w[f2].end - maxd);
                w[f].end = w[f2].start = boundary;
            }
            w[f].start = fmax(0, w[f].end - maxd);
        }
        if (segs[k].start < w[f].end && segs[k].start - 0.5 > w[f].start)
            w[f].start = fmax(0, fmin(w[f].end - med, segs[k].start));
        else
            segs[k].start = w[f].start;
        if (segs[k].end > w[l].start && segs[k].end + 0.5 < w[l].end)
            w[l].end = fmax(w[l].start + med, segs[k].end);
        else
            segs[k].end = w[l].end;
        R->last_speech = segs[k].end;
    }
    *n_words_out = nw;
    return w;
}

static void split_and_emit(run_t *R, int seek, int segment_size, float avg_lp, float cr,
                           int *next_seek) {
    asr_stream_t *s = R->s;
    const asr_model_t *m = s->m;
    const int32_t tb = m->sp.timestamp_begin;
    const int32_t *t = R->r.tokens;
    int n = R->r.n_tokens;
    double offset = seek * 0.01;
    int single_ts_end = n >= 2 && t[n - 2] < tb && t[n - 1] >= tb;
    int slices[512], n_slices = 0;
    for (int i = 1; i < n && n_slices < 511; i++)
        if (t[i] >= tb && t[i - 1] >= tb)
            slices[n_slices++] = i;
    subseg_t segs[512];
    int n_segs = 0;
    if (n_slices > 0) {
        if (single_ts_end)
            slices[n_slices++] = n;
        int last = 0;
        for (int k = 0; k < n_slices; k++) {
            int cur = slices[k];
            segs[n_segs].lo = last;
            segs[n_segs].hi = cur;
            segs[n_segs].start = offset + (t[last] - tb) * 0.02;
            segs[n_segs].end = offset + (t[cur - 1] - tb) * 0.02;
            n_segs++;
            last = cur;
        }
        if (single_ts_end)
            *next_seek = seek + segment_size;
        else
            *next_seek = seek + (t[last - 1] - tb) * 2;
    } else {
        double duration = segment_size * 0.01;
        int32_t last_ts = -1;
        for (int i = 0; i < n; i++)
            if (t[i] >= tb)
                last_ts = t[i];
        if (last_ts >= 0 && last_ts != tb)
            duration = (last_ts - tb) * 0.02;
        segs[0].lo = 0;
        segs[0].hi = n;
        segs[0].start = offset;
        segs[0].end = offset + duration;
        n_segs = 1;
        *next_seek = seek + segment_size;
    }
    asr_word_timing_t *w = NULL;
    int nw = 0;
    if (R->p->word_timestamps) {
        w = window_words(R, segs, n_segs, seek, segment_size, &nw);
        if (!single_ts_end) { /* seek to the end of the last word */
            double last_end = -1;
            for (int i = nw - 1; i >= 0; i--)
                if (w[i].word[0]) {
                    last_end = w[i].end;
                    break;
                }
            if (last_end > offset)
                *next_seek = (int)lround(last_end * 100.0);
        }
    }
    for (int k = 0; k < n_segs; k++) {
        R->text.len = 0;
        asr_tokenizer_decode(m->tok, t + segs[k].lo, segs[k].hi - segs[k].lo, &R->text);
        size_t sl;
        strip(R->text.data ? R->text.data : "", R->text.len, &sl);
        if (segs[k].start == segs[k].end || sl == 0)
            continue;
        for (int i = segs[k].lo; i < segs[k].hi; i++)
            ivec_push(&R->all_tokens, t[i]);
        double start = segs[k].start, end = segs[k].end;
        int any_word = 0;
        if (w && R->vf) { /* restore original times: each word within one speech chunk */
            for (int i = segs[k].w_first; i < segs[k].w_first + segs[k].w_n; i++) {
                if (!w[i].word[0])
                    continue;
                int c = asr__vadfilter_chunk(R->vf, (w[i].start + w[i].end) / 2, 0);
                w[i].start = asr__vadfilter_time(R->vf, w[i].start, c);
                w[i].end = asr__vadfilter_time(R->vf, w[i].end, c);
                if (!any_word)
                    start = w[i].start;
                end = w[i].end;
                any_word = 1;
            }
        }
        if (R->vf && !any_word) {
            start = asr__vadfilter_time(R->vf, start, asr__vadfilter_chunk(R->vf, start, 0));
            end = asr__vadfilter_time(R->vf, end, asr__vadfilter_chunk(R->vf, end, 1));
        }
        asr__stream_add_segment(s, seek, start, end, t + segs[k].lo, segs[k].hi - segs[k].lo,
                                R->text.data, R->text.len, R->temperature, avg_lp, cr,
                                R->r.no_speech_prob);
        if (w)
            for (int i = segs[k].w_first; i < segs[k].w_first + segs[k].w_n; i++)
                if (w[i].word[0])
                    asr__stream_add_word(s, w[i].word, w[i].start, w[i].end, w[i].probability);
        if (R->p->segment_cb) {
            asr__stream_fix_pointers(s, s->n_segs - 1);
            R->p->segment_cb(&s->segs[s->n_segs - 1], R->p->segment_cb_user_data);
        }
    }
    asr__words_free(w, nw);
}

static void build_prompt(run_t *R, int32_t lang_tok) {
    const asr_model_t *m = R->s->m;
    const asr_special_tokens_t *sp = &m->sp;
    R->prompt.n = 0;
    int n_prev = R->all_tokens.n - R->prompt_reset_since;
    if (n_prev > 0 || R->hotwords.n > 0) {
        ivec_push(&R->prompt, sp->sot_prev);
        int n_hot = R->hotwords.n < MAX_CTX_PROMPT ? R->hotwords.n : MAX_CTX_PROMPT;
        for (int i = 0; i < n_hot; i++)
            ivec_push(&R->prompt, R->hotwords.v[i]);
    }
    if (n_prev > 0) {
        int from =
            n_prev > MAX_CTX_PROMPT ? R->all_tokens.n - MAX_CTX_PROMPT : R->prompt_reset_since;
        for (int i = from; i < R->all_tokens.n; i++)
            ivec_push(&R->prompt, R->all_tokens.v[i]);
    }
    ivec_push(&R->prompt, sp->sot);
    if (sp->multilingual) {
        ivec_push(&R->prompt, lang_tok);
        ivec_push(&R->prompt, R->p->task == ASR_TASK_TRANSLATE ? sp->translate : sp->transcribe);
    }
    if (R->p->without_timestamps)
        ivec_push(&R->prompt, sp->no_timestamps);
}

/* One window with the temperature fallback of faster-whisper's generate_with_fallback: the first
 * result that is neither too repetitive (compression ratio) nor too improbable (avg log-prob), or
 * silence; otherwise the best avg log-prob among results under the compression threshold. */
static asr_err_t decode_with_fallback(run_t *R, float *avg_out, float *cr_out) {
    asr_stream_t *s = R->s;
    const asr_transcribe_params_t *p = R->p;
    float best_avg = -INFINITY, best_cr = 0.0f, best_t = 0.0f;
    int have_best = 0, best_below = 0;
    for (int ti = 0; ti < p->n_temperatures; ti++) {
        float t = p->temperatures[ti];
        asr_err_t rc = asr__search(s, p, R->prompt.v, R->prompt.n, t, &R->rng, &R->cand);
        if (rc != ASR_OK)
            return rc;
        int n = R->cand.n_tokens;
        float avg = (float)(R->cand.sum_logprob / (n + 1));
        R->text.len = 0;
        asr_tokenizer_decode(s->m->tok, R->cand.tokens, n, &R->text);
        size_t sl;
        const char *st = strip(R->text.data ? R->text.data : "", R->text.len, &sl);
        float cr = compression_ratio(st, sl);
        int below = !(cr > p->compression_ratio_threshold);
        int needs = !below || avg < p->logprob_threshold;
        if (R->cand.no_speech_prob > p->no_speech_threshold && avg < p->logprob_threshold)
            needs = 0; /* silence */
        R->temperature = t;
        /* keep the best candidate so far: prefer those under the compression threshold */
        if (!have_best || (below && !best_below) || (below == best_below && avg > best_avg)) {
            asr_search_result_t tmp = R->r;
            R->r = R->cand;
            R->cand = tmp;
            best_avg = avg, best_cr = cr, best_t = t, have_best = 1, best_below = below;
        }
        if (!needs) {
            if (best_t != t) { /* the passing result is in cand: take it */
                asr_search_result_t tmp = R->r;
                R->r = R->cand;
                R->cand = tmp;
            }
            *avg_out = avg;
            *cr_out = cr;
            return ASR_OK;
        }
    }
    *avg_out = best_avg;
    *cr_out = best_cr;
    return ASR_OK;
}

static asr_err_t mem_read(void *ud, float *buf, size_t n, size_t *n_read) {
    asr__mem_source_t *ms = ud;
    size_t k = ms->n - ms->pos < n ? ms->n - ms->pos : n;
    if (k)
        memcpy(buf, ms->pcm + ms->pos, k * sizeof(float));
    ms->pos += k;
    *n_read = k;
    return ASR_OK;
}

static asr_err_t mem_rewind(void *ud) {
    ((asr__mem_source_t *)ud)->pos = 0;
    return ASR_OK;
}

asr_pcm_source_t asr__mem_source(asr__mem_source_t *ms, const float *pcm, size_t n) {
    ms->pcm = pcm;
    ms->n = pcm ? n : 0;
    ms->pos = 0;
    return (asr_pcm_source_t){mem_read, mem_rewind, ms};
}

asr_err_t asr_stream_transcribe(asr_stream_t *s, const float *pcm, size_t n_samples,
                                const asr_transcribe_params_t *params) {
    asr__mem_source_t ms;
    asr_pcm_source_t src = asr__mem_source(&ms, pcm, n_samples);
    return asr_stream_transcribe_source(s, &src, params);
}

static asr_err_t set_language(asr_stream_t *s, const asr_transcribe_params_t *p, asr_frames_t *fr,
                              float *win, int32_t *lang_tok) {
    const asr_model_t *m = s->m;
    *lang_tok = -1;
    s->n_lang_probs = 0;
    if (!m->sp.multilingual) {
        snprintf(s->language, sizeof s->language, "en");
        s->language_prob = 1.0f;
    } else if (p->language && *p->language) {
        *lang_tok = asr_tokenizer_lang_token(m->tok, asr_lang_code_normalize(p->language));
        if (*lang_tok < 0) {
            snprintf(s->errmsg, sizeof s->errmsg, "unknown language '%s'", p->language);
            return ASR_ERR_INVALID;
        }
        snprintf(s->language, sizeof s->language, "%s", asr_tokenizer_lang_code(m->tok, *lang_tok));
        s->language_prob = 1.0f;
    } else {
        asr_err_t rc = asr__frames_window(fr, 0, 3000, win);
        if (rc != ASR_OK)
            return rc;
        *lang_tok = detect_language(s, win);
        const char *code = asr_tokenizer_lang_code(m->tok, *lang_tok);
        snprintf(s->language, sizeof s->language, "%s", code ? code : "en");
    }
    return ASR_OK;
}

static void encode_text(const asr_model_t *m, const char *text, ivec_t *out) {
    size_t n;
    const char *t = strip(text, strlen(text), &n);
    asr_buf_t b;
    asr_buf_init(&b);
    asr_buf_puts(&b, " ");
    asr_buf_append(&b, t, n);
    int32_t *ids = NULL;
    int n_ids = 0;
    if (asr_tokenizer_encode(m->tok, b.data, &ids, &n_ids) == ASR_OK)
        for (int i = 0; i < n_ids; i++)
            ivec_push(out, ids[i]);
    free(ids);
    asr_buf_free(&b);
}

static void guard_feed(void *ud, const float *x, size_t n) { asr__vadacc_feed(ud, x, n); }

asr_err_t asr_stream_transcribe_source(asr_stream_t *s, const asr_pcm_source_t *src,
                                       const asr_transcribe_params_t *params) {
    return asr__transcribe_run(s, src, params, false);
}

asr_err_t asr__transcribe_run(asr_stream_t *s, const asr_pcm_source_t *src,
                              const asr_transcribe_params_t *params, bool detect_only) {
    const asr_model_t *m = s->m;
    asr_transcribe_params_t p = params ? *params : asr_transcribe_default_params();
    asr__stream_results_reset(s);
    if (s->g) /* a failure of the device, seen by this transcription's jobs */
        s->g->err = ASR_OK;
    s->duration = 0.0;
    memset(&s->timings, 0, sizeof s->timings);
    double t_start = asr_now_s(), t0 = t_start;
    if (p.n_threads > 0 && p.n_threads != s->n_threads) {
        asr_pool_destroy(s->pool);
        s->pool = asr_pool_create(p.n_threads);
        s->n_threads = p.n_threads;
    }
    if (p.n_temperatures <= 0) {
        p.temperatures[0] = p.temperature;
        p.n_temperatures = 1;
    }
    if (p.n_temperatures > ASR_MAX_TEMPERATURES)
        p.n_temperatures = ASR_MAX_TEMPERATURES;
    if (asr_transcribe_n_seq(&p) > s->n_seq_cap) {
        snprintf(s->errmsg, sizeof s->errmsg,
                 "beam_size/best_of need %d parallel sequences; this slot holds %d",
                 asr_transcribe_n_seq(&p), s->n_seq_cap);
        return ASR_ERR_INVALID;
    }
    asr_vadfilter_t vf;
    asr_pcm_source_t filtered;
    if (p.vad_filter) {
        asr_err_t vrc = asr__vadfilter_init(&vf, src, &p.vad, s->errmsg, sizeof s->errmsg);
        if (vrc != ASR_OK)
            return vrc;
        filtered.read = asr__vadfilter_read;
        filtered.rewind = asr__vadfilter_rewind;
        filtered.user_data = &vf;
        src = &filtered;
    }
    asr_frames_t fr;
    float *win = s->win;
    asr__frames_init(&fr, m->mel, src, s->frames_buf, s->frames_raw);
    asr_err_t rc = ASR_OK;
    run_t R = {.s = s, .p = &p, .rng = p.seed ? p.seed : 0x5eed};
    R.vf = p.vad_filter ? &vf : NULL;
    asr_buf_init(&R.text);
    /* the silence guard: VAD probabilities gathered during the scan pass */
    asr_vadacc_t acc;
    asr_vad_span_t *guard = NULL;
    int n_guard = -1; /* -1: no guard */
    const asr_vad_t *vad = NULL;
    int use_guard = p.skip_silent_windows && !p.vad_filter &&
                    asr__vad_weights(&vad, NULL, 0) == ASR_OK &&
                    asr__vadacc_init(&acc, vad) == ASR_OK;
    if (use_guard) {
        fr.on_samples = guard_feed;
        fr.on_samples_ud = &acc;
    }
    rc = asr__frames_scan(&fr);
    if (use_guard) {
        if (rc == ASR_OK && asr__vadacc_finish(&acc) == ASR_OK) {
            asr_vad_opts_t o = asr_vad_default_opts();
            o.threshold = p.vad.threshold;
            if (asr_vad_spans_from_probs(acc.probs, acc.n, acc.n_samples, &o, &guard, &n_guard) !=
                ASR_OK)
                n_guard = -1;
        }
        asr__vadacc_free(&acc);
    }
    if (rc == ASR_OK)
        rc = asr__frames_rewind(&fr);
    s->timings.scan_s = asr_now_s() - t0;
    if (rc != ASR_OK) {
        snprintf(s->errmsg, sizeof s->errmsg, "reading audio failed: %s", asr_strerror(rc));
        goto done;
    }
    s->duration = (double)(p.vad_filter ? vf.n_total : fr.n_total) / 16000.0;
    int32_t lang_tok;
    rc = set_language(s, &p, &fr, win, &lang_tok);
    if (rc == ASR_OK && s->g)
        rc = s->g->err;
    if (rc == ASR_OK && !detect_only)
        rc = asr__zh_begin(s, &p);
    if (rc != ASR_OK || detect_only)
        goto done;
    R.lang_tok = lang_tok;
    if (p.initial_prompt && *p.initial_prompt)
        encode_text(m, p.initial_prompt, &R.all_tokens);
    if (p.hotwords && *p.hotwords)
        encode_text(m, p.hotwords, &R.hotwords);
    int content_frames = fr.n_frames - 1;
    int seek = 0;
    /* language detection encoded frames [0, 3000): with 30 s or more of content that is exactly
     * the first window, whose encoder output and cross K/V are then still in place (shorter
     * audio is zero-padded differently for decoding, as faster-whisper does) */
    bool first_encoded = s->n_lang_probs > 0 && content_frames >= 3000;
    while (seek < content_frames) {
        int segment_size = content_frames - seek < 3000 ? content_frames - seek : 3000;
        if (n_guard >= 0) { /* skip windows with no speech at all */
            int64_t lo = (int64_t)seek * 160, hi = (int64_t)(seek + segment_size) * 160;
            int speech = 0;
            for (int i = 0; i < n_guard && !speech; i++)
                speech = guard[i].start < hi && guard[i].end > lo;
            if (!speech) {
                seek += segment_size;
                continue;
            }
        }
        rc = asr__frames_window(&fr, seek, segment_size, win);
        if (rc != ASR_OK) {
            snprintf(s->errmsg, sizeof s->errmsg, "reading audio failed: %s", asr_strerror(rc));
            goto done;
        }
        if (!(seek == 0 && first_encoded)) {
            asr__encode(s, win);
            asr__dec_cross_kv(s);
        }
        first_encoded = false;
        build_prompt(&R, lang_tok);
        float avg_lp = 0.0f, cr = 0.0f;
        t0 = asr_now_s();
        rc = decode_with_fallback(&R, &avg_lp, &cr);
        s->timings.decode_s += asr_now_s() - t0;
        if (rc == ASR_OK && s->g && s->g->err != ASR_OK) { /* the device failed: errmsg says how */
            rc = s->g->err;
            goto done;
        }
        if (rc != ASR_OK) {
            snprintf(s->errmsg, sizeof s->errmsg, "%s",
                     rc == ASR_ERR_CANCELLED ? "cancelled" : "out of memory while decoding");
            goto done;
        }
        if (R.r.no_speech_prob > p.no_speech_threshold && !(avg_lp > p.logprob_threshold)) {
            seek += segment_size;
        } else {
            int next = seek;
            split_and_emit(&R, seek, segment_size, avg_lp, cr, &next);
            seek = next > seek ? next : seek + segment_size;
        }
        if (!p.condition_on_previous_text || R.temperature > p.prompt_reset_on_temperature)
            R.prompt_reset_since = R.all_tokens.n;
        if (p.progress_cb)
            p.progress_cb(content_frames > 0
                              ? (double)(seek < content_frames ? seek : content_frames) /
                                    content_frames
                              : 1.0,
                          p.progress_cb_user_data);
    }
    rc = s->g ? s->g->err : ASR_OK;
done:
    s->timings.total_s = asr_now_s() - t_start;
    free(guard);
    if (p.vad_filter)
        asr__vadfilter_free(&vf);
    free(R.all_tokens.v);
    free(R.hotwords.v);
    free(R.prompt.v);
    asr__search_result_free(&R.r);
    asr__search_result_free(&R.cand);
    asr_buf_free(&R.text);
    return rc;
}
