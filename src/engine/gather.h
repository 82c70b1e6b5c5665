/* engine: the batchers' gather rule (gpu_batch.c and cpu_batch.c; gpu_batch.c's header explains
 * it): after a batched decoder pass, wait until each stream of that pass has submitted again, or
 * until a deadline of GATHER_MULT times an EMA (weight 1/8) of the time from a pass's end to a
 * stream's next step, within [50 us, max_s] (or a fixed one from the environment). Every call is
 * made under the batcher's mutex. A stream carries one mark: the round that last ran it (0:
 * none). */
#ifndef ASR_ENGINE_GATHER_H
#define ASR_ENGINE_GATHER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct {
    uint64_t gen;   /* rounds begun; a stream's mark names the last that ran it */
    int missing;    /* streams of the last round that have not submitted again */
    double done_at; /* when the last pass ended (asr_now_s) */
    double gap_ema; /* EMA of a pass's end to a stream's next step (seconds) */
    double fixed;   /* > 0: a fixed deadline instead (the environment variable: tests, tuning) */
    double max_s;
} asr_gather_t;

/* max_s: the longest deadline; env: the variable that fixes it in microseconds (read now). */
void asr__gather_init(asr_gather_t *g, double max_s, const char *env);
/* A new round: older marks no longer count. */
void asr__gather_round(asr_gather_t *g);
/* A pass ran the stream of `mark` (counted once per round). */
void asr__gather_ran(asr_gather_t *g, uint64_t *mark);
/* A pass ended now. */
void asr__gather_pass_end(asr_gather_t *g);
/* The stream of `mark` submits again; measure: its submission is a decoder step (the EMA's
 * sample). */
void asr__gather_back(asr_gather_t *g, uint64_t *mark, bool measure);
/* Waits (releasing mu) until every stream of the last round is back, the deadline passes or
 * *stop; then the round counts as gathered. */
void asr__gather_wait(asr_gather_t *g, pthread_cond_t *cv, pthread_mutex_t *mu, const bool *stop);

#endif
