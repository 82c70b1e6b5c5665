/* nn: a fixed-size thread pool. The calling thread takes part in the work, so a pool of N threads
 * has N-1 workers. A decoding step runs dozens of short jobs a few microseconds apart, so workers
 * first spin (with pause) on the job counter for a while, and sleep on a condition variable only
 * when no job comes; the caller likewise spins until the last task of its job is done. Tasks are
 * claimed with one atomic increment each. Pool work runs with denormals flushed to zero (x86's
 * FTZ and DAZ): a value below 2^-126 is zero to a transcription, and the CPU's microcode assist for
 * each denormal cost base's bfloat16 encoder 3-4 ms a window (GELU and softmax tails); workers
 * set it once, the caller for the job's duration. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "core/core.h"
#include "nn/nn.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#elif defined(__aarch64__)
#define CPU_RELAX() __asm__ __volatile__("yield")
#else
#define CPU_RELAX() ((void)0)
#endif

#if defined(__x86_64__) || defined(__i386__)
#define DENORMALS_OFF 0x8040u /* MXCSR: FTZ (bit 15) | DAZ (bit 6) */
static unsigned denormals_off(void) {
    unsigned old = _mm_getcsr();
    if ((old & DENORMALS_OFF) != DENORMALS_OFF)
        _mm_setcsr(old | DENORMALS_OFF);
    return old;
}
static void denormals_restore(unsigned old) {
    if ((old & DENORMALS_OFF) != DENORMALS_OFF)
        _mm_setcsr(old);
}
#else
static unsigned denormals_off(void) { return 0; }
static void denormals_restore(unsigned old) { (void)old; }
#endif

/* spins before a worker sleeps (~100 µs of pause instructions) */
#define SPIN_ITERS 4000

struct asr_pool {
    int n_threads;
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t cv_work;
    /* the current job: written by the caller before it publishes the job's ticket */
    asr_pool_fn fn;
    void *ctx;
    /* the job's ticket: generation (32 bits) | n_tasks (16) | next task to claim (16) */
    _Atomic unsigned long long ticket;
    atomic_int done; /* tasks of the current job finished */
    atomic_int sleepers;
    atomic_int stop;
};

#define GEN(t) ((unsigned)((t) >> 32))
#define NTASKS(t) ((int)(((t) >> 16) & 0xffff))
#define NEXT(t) ((int)((t)&0xffff))
#define MAX_TASKS 0xffff

/* Claims and runs tasks of job `gen` until none is left. A claim succeeds only while the ticket
 * still names that job, so a worker late from an earlier job never runs a task twice; fn and ctx
 * are read after a successful claim (the job cannot end before that task is done). */
static void run_tasks(asr_pool_t *p, unsigned gen) {
    unsigned long long cur = atomic_load_explicit(&p->ticket, memory_order_acquire);
    for (;;) {
        if (GEN(cur) != gen || NEXT(cur) >= NTASKS(cur))
            return;
        if (!atomic_compare_exchange_weak_explicit(&p->ticket, &cur, cur + 1, memory_order_acq_rel,
                                                   memory_order_acquire))
            continue;
        p->fn(p->ctx, NEXT(cur), NTASKS(cur));
        atomic_fetch_add_explicit(&p->done, 1, memory_order_release);
        cur = atomic_load_explicit(&p->ticket, memory_order_acquire);
    }
}

static void *worker(void *arg) {
    asr_pool_t *p = arg;
    (void)denormals_off();
    unsigned seen = 0;
    for (;;) {
        unsigned g = seen;
        for (int i = 0; i < SPIN_ITERS && g == seen; i++) {
            if (atomic_load_explicit(&p->stop, memory_order_relaxed))
                return NULL;
            g = GEN(atomic_load_explicit(&p->ticket, memory_order_acquire));
            if (g == seen)
                CPU_RELAX();
        }
        if (g == seen) {
            pthread_mutex_lock(&p->mu);
            atomic_fetch_add(&p->sleepers, 1); /* seq_cst: pairs with the caller's check */
            while (!atomic_load(&p->stop) && (g = GEN(atomic_load(&p->ticket))) == seen)
                pthread_cond_wait(&p->cv_work, &p->mu);
            atomic_fetch_sub(&p->sleepers, 1);
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->stop))
            return NULL;
        seen = g;
        run_tasks(p, g);
    }
}

asr_pool_t *asr_pool_create(int n_threads) {
    asr_nn_blas_single_threaded();
    asr_pool_t *p = asr_xcalloc(1, sizeof *p);
    p->n_threads = n_threads < 1 ? 1 : n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv_work, NULL);
    atomic_init(&p->ticket, 0);
    atomic_init(&p->done, 0);
    atomic_init(&p->sleepers, 0);
    atomic_init(&p->stop, 0);
    p->threads = asr_xcalloc((size_t)p->n_threads, sizeof(pthread_t));
    for (int i = 1; i < p->n_threads; i++)
        pthread_create(&p->threads[i], NULL, worker, p);
    return p;
}

void asr_pool_destroy(asr_pool_t *p) {
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stop, 1);
    pthread_cond_broadcast(&p->cv_work);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n_threads; i++)
        pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv_work);
    free(p->threads);
    free(p);
}

int asr_pool_n_threads(const asr_pool_t *p) { return p ? p->n_threads : 1; }

int asr_pool_n_tasks(const asr_pool_t *p, int n) {
    int nt = asr_pool_n_threads(p);
    return n < nt ? (n < 1 ? 1 : n) : nt;
}

void asr_pool_run(asr_pool_t *p, int n_tasks, asr_pool_fn fn, void *ctx) {
    const unsigned csr = denormals_off();
    if (!p || p->n_threads == 1 || n_tasks <= 1 || n_tasks > MAX_TASKS) {
        for (int i = 0; i < n_tasks; i++) /* (jobs have at most a few hundred tasks) */
            fn(ctx, i, n_tasks);
        denormals_restore(csr);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    atomic_store_explicit(&p->done, 0, memory_order_relaxed);
    unsigned gen = GEN(atomic_load_explicit(&p->ticket, memory_order_relaxed)) + 1;
    atomic_store(&p->ticket, (unsigned long long)gen << 32 | (unsigned long long)n_tasks << 16);
    if (atomic_load(&p->sleepers) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->cv_work);
        pthread_mutex_unlock(&p->mu);
    }
    run_tasks(p, gen);
    while (atomic_load_explicit(&p->done, memory_order_acquire) < n_tasks)
        CPU_RELAX();
    denormals_restore(csr);
}
