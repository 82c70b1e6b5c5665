/* bench/cpu_batch: what batching the decoder steps of concurrent CPU streams is worth (issue #21):
 * N streams of ONE model, each with B sequences (1: greedy, 5: beam), decode S steps each.
 *
 *   separate: today's CPU path. N threads, each stepping its own stream (asr__dec_step of its B
 *             rows), each stream's pool max(1, T/N) threads (the scheduler's threads_per_job for
 *             max_parallel = N): every stream reads every weight once per step.
 *   batched:  the same N threads and streams with the model's CPU batcher (cpu_batch.c, as
 *             ASRD_CPU_BATCH=T starts it): their steps joined into one pass on T threads.
 *
 * No encoder pass: each stream's encoder output is random, its cross K/V computed from it (the
 * decoder reads the same bytes whatever their values). Prints per case the wall ms per round (one
 * step of every stream), aggregate sequence-steps per second and the ratio to N=1 separate; the
 * median of reps. Timings on shared cores are noisy: give `uptime` beside them.
 *
 *   build-X/cpu_batch --model DIR [--compute-type int8] [--threads 2] [--streams 1,2,4]
 *                     [--beam 1,5] [--steps 24] [--reps 3] */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine_int.h"

typedef struct {
    asr_stream_t *s;
    int n_seq, steps, pos0;
    pthread_barrier_t *bar;
} worker_t;

static void run_steps(asr_stream_t *s, int n_seq, int steps, int pos0) {
    int32_t tok[ASR_SLOT_MAX_SEQ];
    for (int st = 0; st < steps; st++) {
        for (int i = 0; i < n_seq; i++)
            tok[i] = (int32_t)(1000 + 37 * st + i);
        asr__dec_step(s, tok, n_seq, pos0 + st);
    }
}

static void *worker_main(void *arg) {
    worker_t *w = arg;
    pthread_barrier_wait(w->bar);
    run_steps(w->s, w->n_seq, w->steps, w->pos0);
    return NULL;
}

/* A stream ready to step: random encoder output, its cross K/V, a 3-token prompt. */
static asr_stream_t *ready_stream(const asr_model_t *m, int n_seq, int threads, unsigned seed) {
    asr_stream_t *s = NULL;
    if (asr_stream_create_slot(m, n_seq, &s) != ASR_OK)
        return NULL;
    asr_pool_destroy(s->pool);
    s->pool = asr_pool_create(threads);
    s->n_threads = threads;
    size_t n = (size_t)1500 * m->info.d_model;
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        s->eb.out[i] = (float)((seed >> 8) & 0xffff) / 65536.0f - 0.5f;
    }
    s->enc_out_live = true;
    asr__dec_cross_kv(s);
    int32_t prompt[3] = {m->sp.sot, m->sp.sot, m->sp.sot};
    asr__dec_forward(s, prompt, 3, 0, -1);
    return s;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return v[n / 2];
}

static int parse_list(const char *arg, int *out, int cap) {
    int n = 0;
    for (const char *p = arg; *p && n < cap;) {
        out[n++] = atoi(p);
        p = strchr(p, ',');
        if (!p)
            break;
        p++;
    }
    return n;
}

/* Median wall seconds of `reps` runs of N threads stepping their streams. */
static double time_separate(asr_stream_t **ss, int n, int n_seq, int steps, int reps) {
    double t[16];
    for (int r = 0; r < reps; r++) {
        pthread_barrier_t bar;
        pthread_barrier_init(&bar, NULL, (unsigned)n + 1);
        pthread_t th[16];
        worker_t w[16];
        for (int i = 0; i < n; i++) {
            w[i] = (worker_t){ss[i], n_seq, steps, 3, &bar};
            pthread_create(&th[i], NULL, worker_main, &w[i]);
        }
        pthread_barrier_wait(&bar);
        double t0 = asr_now_s();
        for (int i = 0; i < n; i++)
            pthread_join(th[i], NULL);
        t[r] = asr_now_s() - t0;
        pthread_barrier_destroy(&bar);
    }
    qsort(t, (size_t)reps, sizeof *t, cmp_d);
    return t[reps / 2];
}

int main(int argc, char **argv) {
    const char *dir = NULL, *ct = "int8";
    int threads = 2, steps = 24, reps = 3, streams[8] = {1, 2, 4}, n_streams = 3, beams[8] = {1, 5},
        n_beams = 2;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--model"))
            dir = argv[i + 1];
        else if (!strcmp(argv[i], "--compute-type"))
            ct = argv[i + 1];
        else if (!strcmp(argv[i], "--threads"))
            threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--streams"))
            n_streams = parse_list(argv[i + 1], streams, 8);
        else if (!strcmp(argv[i], "--beam"))
            n_beams = parse_list(argv[i + 1], beams, 8);
        else if (!strcmp(argv[i], "--steps"))
            steps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps"))
            reps = atoi(argv[i + 1]);
    }
    if (!dir || reps < 1 || reps > 16 || steps < 1 || steps > 400) {
        fprintf(stderr, "usage: cpu_batch --model DIR [--compute-type T] [--threads N] "
                        "[--streams 1,2,4] [--beam 1,5] [--steps S] [--reps R]\n");
        return 2;
    }
    asr_model_params_t mp = asr_model_default_params();
    mp.n_threads = threads;
    mp.compute_type = ct;
    asr_model_t *m = NULL;
    char err[512] = "";
    if (asr_model_load(dir, &mp, &m, err, sizeof err) != ASR_OK) {
        fprintf(stderr, "cpu_batch: %s\n", err);
        return 1;
    }
    printf("# model %s, %s, %d threads, %d steps, median of %d\n", dir, ct, threads, steps, reps);
    printf("%-9s %3s %3s %10s %14s %8s\n", "mode", "N", "B", "ms/round", "seq-steps/s", "vs N=1");
    for (int b = 0; b < n_beams; b++) {
        double base = 0;
        for (int k = 0; k < n_streams; k++) {
            int n = streams[k], B = beams[b];
            if (n < 1 || n > 16 || B < 1 || B > ASR_SLOT_MAX_SEQ)
                continue;
            int per = threads / n < 1 ? 1 : threads / n;
            asr_stream_t *ss[16] = {0};
            for (int i = 0; i < n; i++)
                ss[i] = ready_stream(m, B, per, 7u + (unsigned)i);
            /* interleaved: each rep runs separate, then batched (the batcher started for it),
             * so that both see the same load; medians of each and of the per-rep ratio */
            double ts[16], tb[16], ratio[16];
            asr_batch_stats_t st0 = {0}, st1 = {0};
            bool batched = true;
            for (int r = 0; r < reps; r++) {
                ts[r] = time_separate(ss, n, B, steps, 1);
                if (asr__cpu_batch_start(m, threads) != ASR_OK) {
                    batched = false;
                    break;
                }
                asr_model_batch_stats(m, &st0);
                tb[r] = time_separate(ss, n, B, steps, 1);
                asr_model_batch_stats(m, &st1);
                asr__cpu_batch_stop(m);
                ratio[r] = ts[r] / tb[r];
            }
            long passes = st1.dec_batches - st0.dec_batches;
            double sps = passes ? (double)(st1.dec_streams - st0.dec_streams) / passes : 0.0;
            double t = median(ts, reps), rate = (double)n * B * steps / t;
            if (n == 1)
                base = rate;
            printf("%-9s %3d %3d %10.2f %14.1f %8.2f\n", "separate", n, B, t * 1000 / steps, rate,
                   base > 0 ? rate / base : 0.0);
            if (batched) {
                double t2 = median(tb, reps), rb = (double)n * B * steps / t2;
                printf("%-9s %3d %3d %10.2f %14.1f %8.2f   %.2f streams/pass, batched/separate "
                       "x%.2f (median of per-rep ratios)\n",
                       "batched", n, B, t2 * 1000 / steps, rb, base > 0 ? rb / base : 0.0, sps,
                       median(ratio, reps));
            }
            for (int i = 0; i < n; i++)
                asr_stream_destroy(ss[i]);
            fflush(stdout);
        }
    }
    asr_model_destroy(m);
    return 0;
}
