/* nn: a fixed-size thread pool. Workers sleep on a condition variable between jobs; the calling
 * thread takes part in the work, so a pool of N threads has N-1 workers. */
#include <pthread.h>
#include <stdlib.h>

#include "core/core.h"
#include "nn/nn.h"

struct asr_pool {
    int n_threads;
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t cv_work;
    pthread_cond_t cv_done;
    asr_pool_fn fn;
    void *ctx;
    int n_tasks;
    int next_task;
    int n_running;
    unsigned long generation;
    int stop;
};

static void run_tasks(asr_pool_t *p) {
    for (;;) {
        pthread_mutex_lock(&p->mu);
        int t = p->next_task < p->n_tasks ? p->next_task++ : -1;
        pthread_mutex_unlock(&p->mu);
        if (t < 0)
            return;
        p->fn(p->ctx, t, p->n_tasks);
    }
}

static void *worker(void *arg) {
    asr_pool_t *p = arg;
    unsigned long seen = 0;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (!p->stop && p->generation == seen)
            pthread_cond_wait(&p->cv_work, &p->mu);
        if (p->stop) {
            pthread_mutex_unlock(&p->mu);
            return NULL;
        }
        seen = p->generation;
        p->n_running++;
        pthread_mutex_unlock(&p->mu);
        run_tasks(p);
        pthread_mutex_lock(&p->mu);
        if (--p->n_running == 0)
            pthread_cond_signal(&p->cv_done);
        pthread_mutex_unlock(&p->mu);
    }
}

asr_pool_t *asr_pool_create(int n_threads) {
    asr_pool_t *p = asr_xcalloc(1, sizeof *p);
    p->n_threads = n_threads < 1 ? 1 : n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv_work, NULL);
    pthread_cond_init(&p->cv_done, NULL);
    p->threads = asr_xcalloc((size_t)p->n_threads, sizeof(pthread_t));
    for (int i = 1; i < p->n_threads; i++)
        pthread_create(&p->threads[i], NULL, worker, p);
    return p;
}

void asr_pool_destroy(asr_pool_t *p) {
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->cv_work);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n_threads; i++)
        pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv_work);
    pthread_cond_destroy(&p->cv_done);
    free(p->threads);
    free(p);
}

int asr_pool_n_threads(const asr_pool_t *p) { return p ? p->n_threads : 1; }

void asr_pool_run(asr_pool_t *p, int n_tasks, asr_pool_fn fn, void *ctx) {
    if (!p || p->n_threads == 1 || n_tasks <= 1) {
        for (int i = 0; i < n_tasks; i++)
            fn(ctx, i, n_tasks);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->ctx = ctx;
    p->n_tasks = n_tasks;
    p->next_task = 0;
    p->generation++;
    pthread_cond_broadcast(&p->cv_work);
    pthread_mutex_unlock(&p->mu);
    run_tasks(p);
    pthread_mutex_lock(&p->mu);
    while (p->n_running > 0 || p->next_task < p->n_tasks)
        pthread_cond_wait(&p->cv_done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}
