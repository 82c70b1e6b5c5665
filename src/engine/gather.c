/* engine: the batchers' gather rule (gather.h). */
#include <stdlib.h>

#include "core/core.h"
#include "engine/gather.h"

#define GATHER_MULT 4
#define GATHER_MIN_S 50e-6

void asr__gather_init(asr_gather_t *g, double max_s, const char *env) {
    *g = (asr_gather_t){.max_s = max_s, .gap_ema = max_s / GATHER_MULT};
    const char *fixed = getenv(env);
    g->fixed = fixed && atof(fixed) > 0 ? atof(fixed) * 1e-6 : 0;
}

void asr__gather_round(asr_gather_t *g) {
    if (++g->gen == 0)
        g->gen = 1; /* 0 is "never ran" */
    g->missing = 0;
}

void asr__gather_ran(asr_gather_t *g, uint64_t *mark) {
    if (*mark != g->gen) {
        *mark = g->gen;
        g->missing++;
    }
}

void asr__gather_pass_end(asr_gather_t *g) { g->done_at = asr_now_s(); }

void asr__gather_back(asr_gather_t *g, uint64_t *mark, bool measure) {
    if (!*mark || *mark != g->gen)
        return;
    *mark = 0;
    if (g->missing > 0)
        g->missing--;
    if (measure)
        g->gap_ema += (asr_now_s() - g->done_at - g->gap_ema) / 8;
}

void asr__gather_wait(asr_gather_t *g, pthread_cond_t *cv, pthread_mutex_t *mu, const bool *stop) {
    if (g->missing <= 0)
        return;
    double wait = GATHER_MULT * g->gap_ema;
    wait = wait < GATHER_MIN_S ? GATHER_MIN_S : wait > g->max_s ? g->max_s : wait;
    if (g->fixed > 0)
        wait = g->fixed;
    const double deadline = g->done_at + wait;
    while (g->missing > 0 && !*stop)
        if (asr_cond_wait_until(cv, mu, deadline) != 0)
            break;
    g->missing = 0;
}
