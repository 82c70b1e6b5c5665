/* engine: a CPU model's batcher of decoder steps across concurrent streams (issue #21). A large
 * model's decoder step is memory-bound: each stream stepping alone reads every weight (hundreds
 * of MB for large-v3-turbo and large-v3) once per step. With the batcher (ASRD_CPU_BATCH=N at
 * load, N >= 1: the threads of its pool), a stream's asr__dec_step submits the step and waits on
 * a condition variable (no polling, no sleeps); the batcher thread takes every pending step and
 * runs them as one pass (asr__dec_step_many: one read of the weights for all their rows, each
 * stream's attention on its own caches), up to MAX_ROWS rows and ASR_CPU_BATCH_MAX_STREAMS
 * streams a pass, on its own pool of N threads. Encoder passes, prompts and alignment passes
 * stay on the streams' own threads and pools.
 *
 * The gather rule (as gpu_batch.c's): after a pass, its streams wake, run their search and
 * resubmit at slightly different times; running whatever had arrived would split the batch. So
 * the batcher waits until each stream of the last round has submitted again, or until a
 * deadline: GATHER_MULT times an EMA (weight 1/8) of the time from a pass's end to each of its
 * streams' next step, within [50 us, GATHER_MAX_S] (gather.h) (a beam search's choice of a large
 * vocabulary's candidates takes about a millisecond on a loaded core; a stream that left costs the
 * others at most the deadline, once). ASRD_CPU_BATCH_GATHER_US=N fixes it at N us.
 *
 * Memory: nothing is allocated per step; the batched rows live in the leader's (the first
 * stream's) slot buffers, sized for n_text_ctx rows (decoder.c), so the plan stays exact.
 * Invariants: a stream has at most one step in flight (it waits for it); the batcher reads a
 * stream only between taking its step and marking it done, and writes its mark before that. */
#include <stdlib.h>
#include <string.h>

#include "engine/engine_int.h"
#include "engine/gather.h"

#define GATHER_MAX_S 5e-3
#define MAX_ROWS 64
#define MAX_ROUND 64 /* steps taken in one round (the rest wait for the next) */

struct asr__cpu_batch {
    pthread_mutex_t mu;
    pthread_cond_t cv_work; /* asr_cond_init: the gather's timed wait */
    pthread_cond_t cv_done;
    pthread_t thread;
    bool started, stop;
    asr_pool_t *pool;
    asr_stream_t *head, *tail; /* pending steps, linked by cb.next */
    asr_gather_t gather;       /* the gather rule's state; a stream's cb.mark */
    asr_batch_stats_t stats;
};

/* Runs round[0..n) in passes of at most MAX_ROWS rows; marks each pass's streams done. */
static void run_round(struct asr__cpu_batch *b, asr_stream_t **round, int n) {
    for (int i0 = 0, k; i0 < n; i0 += k) {
        int rows = 0;
        for (k = 0; i0 + k < n && k < ASR_CPU_BATCH_MAX_STREAMS; k++) {
            if (k > 0 && rows + round[i0 + k]->cb.n > MAX_ROWS)
                break;
            rows += round[i0 + k]->cb.n;
        }
        asr__dec_step_many(round + i0, k, b->pool);
        pthread_mutex_lock(&b->mu);
        for (int i = 0; i < k; i++) {
            asr_stream_t *s = round[i0 + i];
            asr__gather_ran(&b->gather, &s->cb.mark);
            s->cb.done = true; /* its owner may run on once mu is released: nothing read after */
        }
        asr__gather_pass_end(&b->gather);
        asr_batch_stats_t *st = &b->stats;
        st->dec_batches++, st->dec_rows += rows, st->dec_streams += k;
        st->max_dec_streams = k > st->max_dec_streams ? k : st->max_dec_streams;
        st->max_dec_rows = rows > st->max_dec_rows ? rows : st->max_dec_rows;
        pthread_cond_broadcast(&b->cv_done);
        pthread_mutex_unlock(&b->mu);
    }
}

static void *batcher_main(void *arg) {
    struct asr__cpu_batch *b = arg;
    asr_stream_t *round[MAX_ROUND];
    pthread_mutex_lock(&b->mu);
    for (;;) {
        while (!b->head && !b->stop)
            pthread_cond_wait(&b->cv_work, &b->mu);
        if (b->stop && !b->head)
            break;
        asr__gather_wait(&b->gather, &b->cv_work, &b->mu, &b->stop);
        int n = 0;
        while (b->head && n < MAX_ROUND) {
            round[n++] = b->head;
            b->head = b->head->cb.next;
        }
        if (!b->head)
            b->tail = NULL;
        asr__gather_round(&b->gather);
        pthread_mutex_unlock(&b->mu);
        run_round(b, round, n);
        pthread_mutex_lock(&b->mu);
    }
    pthread_mutex_unlock(&b->mu);
    return NULL;
}

asr_err_t asr__cpu_batch_start(asr_model_t *m, int n_threads) {
    struct asr__cpu_batch *b = asr_xcalloc(1, sizeof *b);
    pthread_mutex_init(&b->mu, NULL);
    asr_cond_init(&b->cv_work);
    pthread_cond_init(&b->cv_done, NULL);
    asr__gather_init(&b->gather, GATHER_MAX_S, "ASRD_CPU_BATCH_GATHER_US");
    b->pool = asr_pool_create(n_threads);
    if (pthread_create(&b->thread, NULL, batcher_main, b) != 0) {
        asr_pool_destroy(b->pool);
        pthread_mutex_destroy(&b->mu);
        pthread_cond_destroy(&b->cv_work);
        pthread_cond_destroy(&b->cv_done);
        free(b);
        return ASR_ERR_NOMEM;
    }
    b->started = true;
    m->cb = b;
    return ASR_OK;
}

void asr__cpu_batch_stop(asr_model_t *m) {
    struct asr__cpu_batch *b = m ? m->cb : NULL;
    if (!b)
        return;
    pthread_mutex_lock(&b->mu);
    b->stop = true;
    pthread_cond_broadcast(&b->cv_work);
    pthread_mutex_unlock(&b->mu);
    pthread_join(b->thread, NULL);
    asr_pool_destroy(b->pool);
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->cv_work);
    pthread_cond_destroy(&b->cv_done);
    free(b);
    m->cb = NULL;
}

bool asr__cpu_batch_step(asr_stream_t *s, const int32_t *tokens, int n_seq, int pos) {
    struct asr__cpu_batch *b = s->m->cb;
    pthread_mutex_lock(&b->mu);
    if (b->stop) {
        pthread_mutex_unlock(&b->mu);
        return false;
    }
    s->cb.tokens = tokens, s->cb.n = n_seq, s->cb.pos = pos;
    s->cb.done = false, s->cb.next = NULL;
    asr__gather_back(&b->gather, &s->cb.mark, true); /* back from the last round */
    if (b->tail)
        b->tail->cb.next = s;
    else
        b->head = s;
    b->tail = s;
    pthread_cond_signal(&b->cv_work);
    while (!s->cb.done)
        pthread_cond_wait(&b->cv_done, &b->mu);
    pthread_mutex_unlock(&b->mu);
    return true;
}

void asr__cpu_batch_stats(const asr_model_t *m, asr_batch_stats_t *out) {
    struct asr__cpu_batch *b = m->cb;
    pthread_mutex_lock(&b->mu);
    *out = b->stats;
    pthread_mutex_unlock(&b->mu);
}
