/* engine: greedy, beam and sampling search over the decoder. See search.h. All sequences of a
 * window share one batched decoder step; the per-step work outside the decoder is O(n_seq·V). */
#include <math.h>
#include <string.h>

#include "engine/search.h"

#define MAX_SEQ 16

void asr__search_result_free(asr_search_result_t *r) {
    free(r->tokens);
    memset(r, 0, sizeof *r);
}

static void result_set(asr_search_result_t *r, const int32_t *t, int n) {
    if (n > r->cap_tokens) {
        r->cap_tokens = n < 256 ? 256 : n;
        r->tokens = asr_xrealloc(r->tokens, (size_t)r->cap_tokens * sizeof(int32_t));
    }
    if (n)
        memcpy(r->tokens, t, (size_t)n * sizeof(int32_t));
    r->n_tokens = n;
}

static float softmax_at(const float *logits, int n, int idx) {
    float mx = -INFINITY;
    for (int i = 0; i < n; i++)
        mx = logits[i] > mx ? logits[i] : mx;
    double sum = 0.0;
    for (int i = 0; i < n; i++)
        sum += exp((double)(logits[i] - mx));
    return (float)(exp((double)(logits[idx] - mx)) / sum);
}

static void log_softmax(const float *logits, float *out, int n) {
    float lse = asr_nn_logsumexp(logits, n);
    for (int i = 0; i < n; i++)
        out[i] = logits[i] - lse;
}

static void ban_range(float *logits, int lo, int hi) {
    for (int i = lo; i < hi; i++)
        logits[i] = -INFINITY;
}

/* Whisper's logit filters for one sequence whose generated tokens are toks[0..step). `scratch`
 * holds n_vocab floats. */
static void apply_filters(const asr_model_t *m, const asr_transcribe_params_t *p, float *lg,
                          float *scratch, int step, const int32_t *toks) {
    const asr_special_tokens_t *sp = &m->sp;
    const int V = m->info.n_vocab, tb = sp->timestamp_begin;
    for (int i = 0; i < m->n_suppress; i++)
        lg[m->suppress[i]] = -INFINITY;
    if (step == 0 && p->suppress_blank) {
        lg[220] = -INFINITY;
        lg[sp->eot] = -INFINITY;
    }
    if (p->without_timestamps)
        return;
    lg[sp->no_timestamps] = -INFINITY;
    int check = 0;
    if (step == 0) {
        ban_range(lg, 0, tb);
        int max_init = tb + (int)lroundf(p->max_initial_timestamp / 0.02f);
        if (max_init + 1 < V)
            ban_range(lg, max_init + 1, V);
    } else {
        int32_t last = toks[step - 1];
        if (last >= tb) {
            int32_t penult = step - 1 > 0 ? toks[step - 2] : last;
            if (penult >= tb) {
                ban_range(lg, tb, V);
            } else {
                ban_range(lg, 0, sp->eot);
                ban_range(lg, tb, last);
                check = 1;
            }
        } else {
            check = 1;
            for (int t = step - 1; t >= 0; t--)
                if (toks[t] >= tb) {
                    ban_range(lg, tb, toks[t] + 1);
                    break;
                }
        }
    }
    if (check) {
        log_softmax(lg, scratch, V);
        float max_text = -INFINITY;
        for (int i = 0; i < tb; i++)
            max_text = scratch[i] > max_text ? scratch[i] : max_text;
        if (asr_nn_logsumexp(scratch + tb, V - tb) > max_text)
            ban_range(lg, 0, tb);
    }
}

static uint64_t rng_next(uint64_t *x) { /* xorshift64* */
    *x ^= *x >> 12;
    *x ^= *x << 25;
    *x ^= *x >> 27;
    return *x * 0x2545F4914F6CDD1DULL;
}

static int sample_token(const float *lg, int V, float temperature, uint64_t *rng) {
    float mx = -INFINITY;
    for (int i = 0; i < V; i++)
        mx = lg[i] > mx ? lg[i] : mx;
    double sum = 0.0;
    for (int i = 0; i < V; i++)
        sum += lg[i] == -INFINITY ? 0.0 : exp((double)(lg[i] - mx) / temperature);
    double u = (double)(rng_next(rng) >> 11) * (1.0 / 9007199254740992.0) * sum, acc = 0.0;
    int last = 0;
    for (int i = 0; i < V; i++) {
        if (lg[i] == -INFINITY)
            continue;
        acc += exp((double)(lg[i] - mx) / temperature);
        last = i;
        if (acc >= u)
            return i;
    }
    return last;
}

typedef struct {
    int32_t tok[MAX_SEQ][448];
    double score[MAX_SEQ];
    int alive[MAX_SEQ];
} seqs_t;

/* Runs the prompt (all but its last token) on sequence 0 and returns the no-speech probability
 * when the start-of-transcript token is inside it (else -1). */
static float run_prompt(asr_stream_t *s, const int32_t *prompt, int n_prompt, int *sot_last) {
    const asr_model_t *m = s->m;
    int sot_index = 0;
    for (int i = 0; i < n_prompt; i++)
        if (prompt[i] == m->sp.sot) {
            sot_index = i;
            break;
        }
    *sot_last = sot_index == n_prompt - 1;
    float nsp = -1.0f;
    asr__dec_reset(s, 0); /* asr__dec_forward below shares the prompt's positions */
    if (n_prompt > 1) {
        asr__dec_forward(s, prompt, n_prompt - 1, 0, *sot_last ? -1 : sot_index);
        if (!*sot_last)
            nsp = softmax_at(s->logits, m->info.n_vocab, m->sp.no_speech);
    }
    return nsp;
}

static int max_steps(const asr_model_t *m, const asr_transcribe_params_t *p, int start) {
    int C = m->info.n_text_ctx;
    int n = C / 2 < C - start ? C / 2 : C - start;
    if (p->max_new_tokens > 0 && p->max_new_tokens < n)
        n = p->max_new_tokens;
    return n;
}

static asr_err_t search_sampling(asr_stream_t *s, const asr_transcribe_params_t *p,
                                 const int32_t *prompt, int n_prompt, float temperature, int n_seq,
                                 uint64_t *rng, asr_search_result_t *r) {
    const asr_model_t *m = s->m;
    const int V = m->info.n_vocab, eot = m->sp.eot;
    int sot_last;
    float nsp = run_prompt(s, prompt, n_prompt, &sot_last);
    const int start = n_prompt - 1, max_len = max_steps(m, p, start);
    seqs_t *q = asr_xcalloc(1, sizeof *q);
    int len[MAX_SEQ] = {0};
    int32_t cur[MAX_SEQ];
    for (int i = 0; i < n_seq; i++)
        cur[i] = prompt[n_prompt - 1], q->alive[i] = 1;
    int n_alive = n_seq;
    for (int step = 0; step < max_len && n_alive > 0; step++) {
        if (p->abort_cb && p->abort_cb(p->abort_cb_user_data)) {
            free(q);
            return ASR_ERR_CANCELLED;
        }
        asr__dec_step(s, cur, n_seq, start + step);
        if (step == 0 && sot_last)
            nsp = softmax_at(s->logits, V, m->sp.no_speech);
        for (int i = 0; i < n_seq; i++) {
            if (!q->alive[i]) {
                cur[i] = eot;
                continue;
            }
            float *lg = s->logits + (size_t)i * V, *lp = s->logprobs + (size_t)i * V;
            apply_filters(m, p, lg, lp, step, q->tok[i]);
            log_softmax(lg, lp, V);
            int best;
            if (temperature > 0.0f) {
                best = sample_token(lg, V, temperature, rng);
            } else {
                best = 0;
                for (int t = 1; t < V; t++)
                    if (lp[t] > lp[best])
                        best = t;
            }
            q->score[i] += lp[best];
            if (best == eot) {
                q->alive[i] = 0;
                n_alive--;
                cur[i] = eot;
            } else {
                q->tok[i][len[i]++] = best;
                cur[i] = best;
            }
        }
    }
    /* best by length-normalised score (length penalty applies as in CTranslate2) */
    int bi = 0;
    double bs = -INFINITY;
    for (int i = 0; i < n_seq; i++) {
        double sc = q->score[i] / pow(len[i] > 0 ? len[i] : 1, p->length_penalty);
        if (sc > bs)
            bs = sc, bi = i;
    }
    result_set(r, q->tok[bi], len[bi]);
    r->sum_logprob = q->score[bi];
    r->no_speech_prob = nsp < 0 ? 0.0f : nsp;
    free(q);
    return ASR_OK;
}

void asr__cand_push(asr_cand_t *a, int *n, int k, asr_cand_t c) {
    if (*n == k && c.score <= a[k - 1].score)
        return;
    int i = *n < k ? (*n)++ : k - 1;
    while (i > 0 && a[i - 1].score < c.score) {
        a[i] = a[i - 1];
        i--;
    }
    a[i] = c;
}

static asr_err_t search_beam(asr_stream_t *s, const asr_transcribe_params_t *p,
                             const int32_t *prompt, int n_prompt, asr_search_result_t *r) {
    const asr_model_t *m = s->m;
    const int V = m->info.n_vocab, eot = m->sp.eot;
    const int B = p->beam_size > MAX_SEQ / 2 ? MAX_SEQ / 2 : p->beam_size, K = 2 * B;
    int max_cand = (int)lroundf((float)B * p->patience);
    if (max_cand < 1)
        max_cand = 1;
    int sot_last;
    float nsp = run_prompt(s, prompt, n_prompt, &sot_last);
    const int start = n_prompt - 1, max_len = max_steps(m, p, start);
    seqs_t *q = asr_xcalloc(1, sizeof *q), *q2 = asr_xcalloc(1, sizeof *q2);
    /* finished hypotheses */
    int32_t(*hyp)[448] = asr_xcalloc((size_t)max_cand + K, sizeof *hyp);
    int *hyp_len = asr_xcalloc((size_t)max_cand + K, sizeof(int));
    double *hyp_score = asr_xcalloc((size_t)max_cand + K, sizeof(double));
    int n_hyp = 0, n_beams = 1;
    int32_t cur[MAX_SEQ];
    int src[MAX_SEQ];
    cur[0] = prompt[n_prompt - 1];
    q->score[0] = 0.0;
    asr_err_t rc = ASR_OK;
    for (int step = 0; step < max_len; step++) {
        if (p->abort_cb && p->abort_cb(p->abort_cb_user_data)) {
            rc = ASR_ERR_CANCELLED;
            break;
        }
        asr__dec_step(s, cur, n_beams, start + step);
        if (step == 0 && sot_last)
            nsp = softmax_at(s->logits, V, m->sp.no_speech);
        asr_cand_t cand[2 * MAX_SEQ];
        int n_cand = 0;
        for (int b = 0; b < n_beams; b++) {
            float *lg = s->logits + (size_t)b * V, *lp = s->logprobs + (size_t)b * V;
            apply_filters(m, p, lg, lp, step, q->tok[b]);
            log_softmax(lg, lp, V);
            for (int t = 0; t < V; t++) {
                if (lp[t] == -INFINITY)
                    continue;
                asr_cand_t c = {q->score[b] + lp[t], b, t};
                asr__cand_push(cand, &n_cand, K, c);
            }
        }
        int last_step = step == max_len - 1;
        int next = B, nb = 0;
        for (int k = 0; k < B && k < n_cand; k++) {
            asr_cand_t c = cand[k];
            if (c.tok == eot || last_step) {
                int hl = c.tok == eot ? step : step + 1;
                memcpy(hyp[n_hyp], q->tok[c.beam], (size_t)step * sizeof(int32_t));
                if (c.tok != eot)
                    hyp[n_hyp][step] = c.tok;
                hyp_len[n_hyp] = hl;
                hyp_score[n_hyp] = c.score;
                n_hyp++;
                c.tok = -1;
                for (; next < n_cand; next++)
                    if (cand[next].tok != eot) {
                        c = cand[next++];
                        break;
                    }
                if (c.tok < 0)
                    continue;
            }
            memcpy(q2->tok[nb], q->tok[c.beam], (size_t)step * sizeof(int32_t));
            q2->tok[nb][step] = c.tok;
            q2->score[nb] = c.score;
            src[nb] = c.beam;
            cur[nb] = c.tok;
            nb++;
        }
        if (last_step || n_hyp >= max_cand || nb == 0)
            break;
        /* the beams differ only after the prompt, which they all read from sequence 0 */
        asr__dec_reorder(s, src, nb, start, start + step + 1);
        seqs_t *t = q;
        q = q2, q2 = t;
        n_beams = nb;
    }
    if (rc == ASR_OK) {
        int bi = -1;
        double bs = -INFINITY;
        for (int i = 0; i < n_hyp; i++) {
            double sc = hyp_score[i] / pow(hyp_len[i] > 0 ? hyp_len[i] : 1, p->length_penalty);
            if (bi < 0 || sc > bs)
                bs = sc, bi = i;
        }
        if (bi >= 0) {
            result_set(r, hyp[bi], hyp_len[bi]);
            r->sum_logprob = hyp_score[bi];
        } else {
            result_set(r, NULL, 0);
            r->sum_logprob = 0.0;
        }
        r->no_speech_prob = nsp < 0 ? 0.0f : nsp;
    }
    free(q), free(q2), free(hyp), free(hyp_len), free(hyp_score);
    return rc;
}

asr_err_t asr__search(asr_stream_t *s, const asr_transcribe_params_t *p, const int32_t *prompt,
                      int n_prompt, float temperature, uint64_t *rng, asr_search_result_t *r) {
    int n_seq = temperature > 0.0f ? p->best_of : p->beam_size;
    if (n_seq < 1)
        n_seq = 1;
    if (n_seq > ASR_SLOT_MAX_SEQ)
        n_seq = ASR_SLOT_MAX_SEQ;
    if (n_seq > s->n_seq_cap) { /* asr_stream_transcribe_source checks this up front */
        snprintf(s->errmsg, sizeof s->errmsg, "%d parallel sequences exceed the slot's %d", n_seq,
                 s->n_seq_cap);
        return ASR_ERR_INVALID;
    }
    if (temperature == 0.0f && n_seq > 1)
        return search_beam(s, p, prompt, n_prompt, r);
    return search_sampling(s, p, prompt, n_prompt, temperature, n_seq, rng, r);
}
