/* engine: token search for one 30-s window — greedy, beam search (CTranslate2's algorithm: 2×beam
 * candidates, finished hypotheses replaced by secondary candidates, patience, length penalty) and
 * temperature sampling with best_of — all under Whisper's logit filters (suppress tokens, suppress
 * blank, timestamp rules). Private to the engine. */
#ifndef ASR_ENGINE_SEARCH_H
#define ASR_ENGINE_SEARCH_H

#include "engine/engine_int.h"

typedef struct {
    int32_t *tokens; /* best hypothesis without EOT; owned by the result (grows, reused) */
    int n_tokens, cap_tokens;
    double sum_logprob; /* cumulative log-prob of tokens (+ EOT when it ended with EOT) */
    float no_speech_prob;
} asr_search_result_t;

void asr__search_result_free(asr_search_result_t *r);

/* A beam search candidate: the continuation tok of beam `beam`, its cumulative log-prob score. */
typedef struct {
    double score;
    int beam;
    int32_t tok;
} asr_cand_t;

/* Inserts c into a descending array a of at most k candidates (*n of them; a tie keeps the
 * earlier one first; one not better than the k-th of a full array is dropped). Beam search and
 * asr_stream_bench_window (bench.c) share it. */
void asr__cand_push(asr_cand_t *a, int *n, int k, asr_cand_t c);

/* Decodes one window whose cross-attention K/V are already in the stream. `temperature` 0 uses
 * beam search (beam_size > 1) or greedy; > 0 samples best_of sequences and keeps the best by
 * length-normalised log-prob. `rng` is advanced. Returns ASR_ERR_CANCELLED or ASR_ERR_NOMEM. */
asr_err_t asr__search(asr_stream_t *s, const asr_transcribe_params_t *p, const int32_t *prompt,
                      int n_prompt, float temperature, uint64_t *rng, asr_search_result_t *r);

#endif
