/* cli: `asrd bench --streams N`: N threads, each with its own stream on ONE shared model, each
 * encoding W 30-s log-mel windows and decoding exactly T tokens after each with B beams
 * (asr_stream_bench_window: end-of-text suppressed, so every window costs the same). On a GPU
 * model the streams' encoder passes and decoder steps are batched together; on the CPU they run
 * side by side. This is the measurement behind docs/GPU.md's speed table (bench/gpu_bench.py).
 *
 * Reported: RTFx = 30 s x windows decoded / wall seconds of the timed part, windows/s, tokens/s
 * (T per window; x B for sequence steps), per-window latency, the model's batching counters over
 * the timed part (asr_model_batch_stats), host peak RSS (VmHWM) and peak device memory: NVML's
 * used bytes sampled every 5 ms during load and run, minus the used bytes before the model
 * loaded (other processes' changes would count too; the source is named in the output).
 *
 * Timing: every stream creates its slot and runs `warmup` windows first (cuBLAS and kernel
 * start-up, first batch shapes); all streams then start the timed windows together (a barrier)
 * and the wall time runs until the last one ends. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "asr/engine.h"
#include "audio/audio.h"
#include "cli/cli.h"
#include "core/core.h"
#include "gpu/nvml.h"

#define N_RANDOM_WINDOWS 8 /* distinct random windows, shared round robin by the streams */
#define WINDOW_FRAMES 3000

typedef struct {
    int index;
    const asr_cli_bench_streams_t *o;
    const asr_model_t *m;
    const float *windows; /* [n_windows][n_mels][3000] */
    int n_windows, n_mels;
    pthread_barrier_t *bar;
    double *lat; /* [o->windows] seconds */
    double t_end;
    asr_err_t err;
    char msg[256];
} worker_t;

static void *worker_main(void *arg) {
    worker_t *w = arg;
    const asr_cli_bench_streams_t *o = w->o;
    asr_stream_t *s = NULL;
    size_t win = (size_t)w->n_mels * WINDOW_FRAMES;
    w->err = asr_stream_create_slot(w->m, o->beam, &s);
    if (w->err != ASR_OK)
        snprintf(w->msg, sizeof w->msg, "creating a stream of %d sequences: %s", o->beam,
                 asr_strerror(w->err));
    pthread_barrier_wait(w->bar); /* 1: every stream exists */
    for (int i = 0; i < o->warmup && w->err == ASR_OK; i++) {
        const float *mel = w->windows + (size_t)((w->index + i) % w->n_windows) * win;
        w->err = asr_stream_bench_window(s, mel, o->beam, o->tokens);
    }
    pthread_barrier_wait(w->bar); /* 2: warm-up done (the main thread reads the counters) */
    pthread_barrier_wait(w->bar); /* 3: go */
    for (int i = 0; i < o->windows && w->err == ASR_OK; i++) {
        const float *mel = w->windows + (size_t)((w->index + o->warmup + i) % w->n_windows) * win;
        double t0 = asr_now_s();
        w->err = asr_stream_bench_window(s, mel, o->beam, o->tokens);
        w->lat[i] = asr_now_s() - t0;
    }
    w->t_end = asr_now_s();
    if (w->err != ASR_OK && !w->msg[0]) {
        const char *em = s ? asr_stream_errmsg(s) : "";
        snprintf(w->msg, sizeof w->msg, "%s", em && em[0] ? em : asr_strerror(w->err));
    }
    asr_stream_destroy(s);
    return NULL;
}

/* ---- device memory: NVML sampled on a thread ---- */

typedef struct {
    int cuda_index;
    pthread_t thread;
    pthread_mutex_t mu;
    int stop;
    uint64_t base_used, peak_used, total;
    uint64_t peak_process; /* 0: NVML does not list this process (containers) */
    int ok;
    char why[256];
} devmem_t;

static void *devmem_main(void *arg) {
    devmem_t *d = arg;
    for (;;) {
        uint64_t used = 0, proc = 0;
        int got = asr_nvml_mem(d->cuda_index, &used, NULL, NULL, NULL, 0) == ASR_OK;
        int got_proc =
            asr_nvml_process_mem(d->cuda_index, (unsigned)getpid(), &proc, NULL, 0) == ASR_OK;
        pthread_mutex_lock(&d->mu);
        if (got && used > d->peak_used)
            d->peak_used = used;
        if (got_proc && proc > d->peak_process)
            d->peak_process = proc;
        int stop = d->stop;
        pthread_mutex_unlock(&d->mu);
        if (stop)
            return NULL;
        usleep(5000);
    }
}

/* Starts a new peak: from the used bytes now. */
static void devmem_reset(devmem_t *d) {
    uint64_t used = 0;
    if (!d->ok || asr_nvml_mem(d->cuda_index, &used, NULL, NULL, NULL, 0) != ASR_OK)
        return;
    pthread_mutex_lock(&d->mu);
    d->peak_used = used;
    d->peak_process = 0;
    pthread_mutex_unlock(&d->mu);
}

/* Starts sampling when dev is a CUDA device and NVML answers (d->ok), else says why not. */
static void devmem_start(devmem_t *d, const asr_cli_device_t *dev) {
    memset(d, 0, sizeof *d);
    pthread_mutex_init(&d->mu, NULL);
    if (dev->spec.kind != ASR_DEVSPEC_CUDA) {
        snprintf(d->why, sizeof d->why, "not a CUDA device");
        return;
    }
    d->cuda_index = dev->spec.index;
    if (asr_nvml_mem(d->cuda_index, &d->base_used, NULL, &d->total, d->why, sizeof d->why) !=
        ASR_OK)
        return;
    d->peak_used = d->base_used;
    d->ok = pthread_create(&d->thread, NULL, devmem_main, d) == 0;
    if (!d->ok)
        snprintf(d->why, sizeof d->why, "cannot start the sampling thread");
}

static void devmem_stop(devmem_t *d) {
    if (d->ok) {
        pthread_mutex_lock(&d->mu);
        d->stop = 1;
        pthread_mutex_unlock(&d->mu);
        pthread_join(d->thread, NULL);
    }
    pthread_mutex_destroy(&d->mu);
}

/* Resets the host peak resident set to the current one (Linux: clear_refs 5). */
static void reset_peak_rss(void) {
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (f) {
        fputs("5", f);
        fclose(f);
    }
}

/* Host peak resident set (VmHWM), bytes; 0 when unknown. */
static uint64_t peak_rss(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    uint64_t kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6))
            kb = strtoull(line + 6, NULL, 10);
    if (f)
        fclose(f);
    return kb * 1024;
}

/* ---- the windows ---- */

/* Deterministic log-mel-like windows: a per-channel level plus noise, within Whisper's normalised
 * range ([-1, 1.5]). */
static float *random_windows(int n_mels, int n) {
    size_t win = (size_t)n_mels * WINDOW_FRAMES;
    float *w = asr_xmalloc(win * (size_t)n * sizeof(float));
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (int k = 0; k < n; k++)
        for (int c = 0; c < n_mels; c++) {
            float level = 0.6f - 1.2f * (float)c / (float)n_mels;
            for (int t = 0; t < WINDOW_FRAMES; t++) {
                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                float u = (float)(x >> 40) / (float)(1u << 24); /* [0, 1) */
                w[(size_t)k * win + (size_t)c * WINDOW_FRAMES + t] = level + 0.5f * (u - 0.5f);
            }
        }
    return w;
}

/* The file's log-mel cut into 30-s windows (the last padded with the file's lowest value). */
static float *audio_windows(const asr_model_t *m, const char *path, int n_mels, int *n_out,
                            char *err, size_t err_len) {
    float *pcm = NULL, *mel = NULL;
    size_t n = 0;
    int frames = 0;
    if (asr_audio_load(path, &pcm, &n, err, err_len) != ASR_OK)
        return NULL;
    asr_err_t rc = asr_engine_log_mel(m, pcm, n, &mel, &frames);
    free(pcm);
    if (rc != ASR_OK || frames < 1) {
        snprintf(err, err_len, "%s: log-mel failed", path);
        free(mel);
        return NULL;
    }
    int k = (frames + WINDOW_FRAMES - 1) / WINDOW_FRAMES;
    size_t win = (size_t)n_mels * WINDOW_FRAMES;
    float lo = mel[0];
    for (size_t i = 0; i < (size_t)n_mels * frames; i++)
        lo = mel[i] < lo ? mel[i] : lo;
    float *w = asr_xmalloc(win * (size_t)k * sizeof(float));
    for (int j = 0; j < k; j++)
        for (int c = 0; c < n_mels; c++)
            for (int t = 0; t < WINDOW_FRAMES; t++) {
                int f = j * WINDOW_FRAMES + t;
                w[(size_t)j * win + (size_t)c * WINDOW_FRAMES + t] =
                    f < frames ? mel[(size_t)c * frames + f] : lo;
            }
    free(mel);
    *n_out = k;
    return w;
}

/* s as a JSON string */
static void json_str(asr_buf_t *b, const char *s) {
    asr_buf_puts(b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            asr_buf_printf(b, "\\%c", *p);
        else if (*p < 0x20)
            asr_buf_printf(b, "\\u%04x", *p);
        else
            asr_buf_append(b, (const char *)p, 1);
    }
    asr_buf_puts(b, "\"");
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double ratio(long a, long b) { return b > 0 ? (double)a / (double)b : 0.0; }

/* ---- the run ---- */

typedef struct {
    double load_s, wall_s, audio_s;
    long n_windows;
    double p50, p90, pmax; /* window latency, seconds */
    asr_batch_stats_t bs;
    uint64_t rss;
} result_t;

static void print_text(const asr_cli_bench_streams_t *o, const asr_model_t *m, const result_t *r,
                       const devmem_t *dm) {
    const asr_batch_stats_t *b = &r->bs;
    double n_tok = (double)r->n_windows * o->tokens;
    printf("model %s, device %s (load %.2f s)\n", o->model, asr_model_device_line(m), r->load_s);
    printf("  device: --device %s: %s\n", o->dev->asked, o->dev->why);
    printf("  %d streams, beam %d, %d tokens per window, %d windows per stream (%s log-mel), "
           "warm-up %d\n",
           o->streams, o->beam, o->tokens, o->windows, o->audio ? o->audio : "random", o->warmup);
    printf("  %.3f s for %ld windows = %.0f s of audio: RTFx %.1f\n", r->wall_s, r->n_windows,
           r->audio_s, r->audio_s / r->wall_s);
    printf("  %.2f windows/s, %.0f tokens/s (%.0f sequence steps/s)\n", r->n_windows / r->wall_s,
           n_tok / r->wall_s, n_tok * o->beam / r->wall_s);
    printf("  window latency p50 %.1f ms, p90 %.1f ms, max %.1f ms\n", 1e3 * r->p50, 1e3 * r->p90,
           1e3 * r->pmax);
    printf("  batching: encoder %ld passes, %.2f windows/pass (max %d); decoder %ld steps, "
           "%.2f rows/step, %.2f streams/step (max %d streams, %d rows)\n",
           b->enc_batches, ratio(b->enc_windows, b->enc_batches), b->max_enc_batch, b->dec_batches,
           ratio(b->dec_rows, b->dec_batches), ratio(b->dec_streams, b->dec_batches),
           b->max_dec_streams, b->max_dec_rows);
    printf("  memory: host peak RSS %.1f MiB; ", r->rss / 1048576.0);
    if (dm->ok)
        printf("device peak %.1f MiB over the %.1f MiB used before loading (NVML, sampled every "
               "5 ms)%s",
               (dm->peak_used - dm->base_used) / 1048576.0, dm->base_used / 1048576.0,
               dm->peak_process ? "" : "\n");
    else
        printf("device memory not measured (%s)\n", dm->why);
    if (dm->ok && dm->peak_process)
        printf(", this process %.1f MiB\n", dm->peak_process / 1048576.0);
}

static void print_json(const asr_cli_bench_streams_t *o, const asr_model_t *m, const result_t *r,
                       const devmem_t *dm) {
    const asr_batch_stats_t *b = &r->bs;
    double n_tok = (double)r->n_windows * o->tokens;
    asr_buf_t j;
    asr_buf_init(&j);
    asr_buf_printf(&j, "{\"mode\":\"streams\",\"model\":");
    json_str(&j, o->model);
    asr_buf_printf(&j, ",\"device\":\"%s\",\"device_line\":", asr_model_device(m));
    json_str(&j, asr_model_device_line(m));
    asr_buf_printf(&j, ",\"device_asked\":");
    json_str(&j, o->dev->asked);
    asr_buf_printf(&j, ",\"device_why\":");
    json_str(&j, o->dev->why);
    asr_buf_printf(&j,
                   ",\"compute_type\":\"%s\",\"streams\":%d,\"beam_size\":%d,\"tokens\":%d,"
                   "\"windows_per_stream\":%d,\"warmup\":%d,\"mel\":",
                   asr_model_compute_type(m), o->streams, o->beam, o->tokens, o->windows,
                   o->warmup);
    json_str(&j, o->audio ? o->audio : "random");
    asr_buf_printf(&j,
                   ",\"max_batch\":%d,\"load_s\":%.3f,\"wall_s\":%.4f,\"windows\":%ld,"
                   "\"audio_s\":%.1f,\"rtfx\":%.2f,\"windows_per_s\":%.3f,\"tokens_per_s\":%.1f,"
                   "\"sequence_steps_per_s\":%.1f,\"latency_ms\":{\"p50\":%.2f,\"p90\":%.2f,"
                   "\"max\":%.2f}",
                   o->max_batch, r->load_s, r->wall_s, r->n_windows, r->audio_s,
                   r->audio_s / r->wall_s, r->n_windows / r->wall_s, n_tok / r->wall_s,
                   n_tok * o->beam / r->wall_s, 1e3 * r->p50, 1e3 * r->p90, 1e3 * r->pmax);
    asr_buf_printf(&j,
                   ",\"batch\":{\"enc_batches\":%ld,\"enc_windows\":%ld,\"dec_batches\":%ld,"
                   "\"dec_rows\":%ld,\"dec_streams\":%ld,\"max_enc_batch\":%d,"
                   "\"max_dec_streams\":%d,\"max_dec_rows\":%d,\"mean_enc_batch\":%.3f,"
                   "\"mean_dec_rows\":%.3f,\"mean_dec_streams\":%.3f}",
                   b->enc_batches, b->enc_windows, b->dec_batches, b->dec_rows, b->dec_streams,
                   b->max_enc_batch, b->max_dec_streams, b->max_dec_rows,
                   ratio(b->enc_windows, b->enc_batches), ratio(b->dec_rows, b->dec_batches),
                   ratio(b->dec_streams, b->dec_batches));
    asr_buf_printf(&j, ",\"host_peak_rss_bytes\":%llu,\"device_memory\":{",
                   (unsigned long long)r->rss);
    if (dm->ok)
        asr_buf_printf(&j,
                       "\"source\":\"nvml\",\"before_load_used_bytes\":%llu,"
                       "\"peak_used_bytes\":%llu,\"peak_over_before_bytes\":%llu,"
                       "\"process_peak_bytes\":%llu,\"total_bytes\":%llu}",
                       (unsigned long long)dm->base_used, (unsigned long long)dm->peak_used,
                       (unsigned long long)(dm->peak_used - dm->base_used),
                       (unsigned long long)dm->peak_process, (unsigned long long)dm->total);
    else {
        asr_buf_printf(&j, "\"source\":\"none\",\"why\":");
        json_str(&j, dm->why);
        asr_buf_printf(&j, "}");
    }
    asr_buf_printf(&j, "}\n");
    fwrite(j.data, 1, j.len, stdout);
    asr_buf_free(&j);
}

/* Runs the streams; fills r. Returns 0, or 1 after printing why. */
static int run_streams(const asr_cli_bench_streams_t *o, const asr_model_t *m, const float *wins,
                       int n_wins, result_t *r) {
    int n = o->streams;
    const asr_model_info_t *in = asr_model_info(m);
    worker_t *w = asr_xcalloc((size_t)n, sizeof *w);
    pthread_t *th = asr_xcalloc((size_t)n, sizeof *th);
    double *lat = asr_xcalloc((size_t)n * o->windows, sizeof *lat);
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, (unsigned)n + 1);
    int started = 0, rc = 0;
    for (int i = 0; i < n; i++) {
        w[i] = (worker_t){.index = i,
                          .o = o,
                          .m = m,
                          .windows = wins,
                          .n_windows = n_wins,
                          .n_mels = in->n_mels,
                          .bar = &bar,
                          .lat = lat + (size_t)i * o->windows};
        if (pthread_create(&th[i], NULL, worker_main, &w[i]) != 0)
            break;
        started++;
    }
    if (started < n) {
        /* cannot happen short of thread limits; the barrier counts n + 1, so give up loudly */
        fprintf(stderr, "asrd: bench: could not start %d threads\n", n);
        exit(1);
    }
    asr_batch_stats_t b0;
    pthread_barrier_wait(&bar); /* 1 */
    pthread_barrier_wait(&bar); /* 2 */
    asr_model_batch_stats(m, &b0);
    pthread_barrier_wait(&bar); /* 3 */
    double t0 = asr_now_s(), t1 = t0;
    for (int i = 0; i < n; i++) {
        pthread_join(th[i], NULL);
        t1 = w[i].t_end > t1 ? w[i].t_end : t1;
        if (w[i].err != ASR_OK && !rc) {
            fprintf(stderr, "asrd: bench: stream %d: %s\n", i, w[i].msg);
            rc = 1;
        }
    }
    asr_model_batch_stats(m, &r->bs);
    r->bs.enc_batches -= b0.enc_batches;
    r->bs.enc_windows -= b0.enc_windows;
    r->bs.dec_batches -= b0.dec_batches;
    r->bs.dec_rows -= b0.dec_rows;
    r->bs.dec_streams -= b0.dec_streams;
    r->wall_s = t1 - t0 > 1e-9 ? t1 - t0 : 1e-9;
    r->n_windows = (long)n * o->windows;
    r->audio_s = 30.0 * (double)r->n_windows;
    qsort(lat, (size_t)r->n_windows, sizeof *lat, cmp_d);
    r->p50 = lat[r->n_windows / 2];
    r->p90 = lat[r->n_windows * 9 / 10];
    r->pmax = lat[r->n_windows - 1];
    pthread_barrier_destroy(&bar);
    free(lat);
    free(th);
    free(w);
    return rc;
}

int asr__cli_bench_streams(const asr_cli_bench_streams_t *o) {
    asr_model_params_t mp = asr_model_default_params();
    mp.compute_type = o->compute_type;
    mp.n_threads = o->threads;
    mp.device = o->dev->name;
    mp.max_batch = o->max_batch;
    devmem_t dm;
    devmem_start(&dm, o->dev);
    asr_model_t *m = NULL;
    float *wins = NULL;
    char err[512] = "";
    int rc = 1, n_wins = 0;
    result_t r;
    memset(&r, 0, sizeof r);
    double t = asr_now_s();
    if (asr_model_load(o->dir, &mp, &m, err, sizeof err) != ASR_OK) {
        fprintf(stderr, "asrd: bench: cannot load model %s: %s\n", o->dir, err);
        goto done;
    }
    r.load_s = asr_now_s() - t;
    int n_mels = asr_model_info(m)->n_mels;
    if (o->audio)
        wins = audio_windows(m, o->audio, n_mels, &n_wins, err, sizeof err);
    else
        wins = random_windows(n_mels, n_wins = N_RANDOM_WINDOWS);
    if (!wins) {
        fprintf(stderr, "asrd: bench: %s\n", err);
        goto done;
    }
    /* every beam size x stream count on the one model; the peaks are per point (the device's
     * from the bytes used when the point starts, reported over those used before loading) */
    rc = 0;
    for (int bi = 0; bi < o->n_beams && rc == 0; bi++)
        for (int si = 0; si < o->n_streams && rc == 0; si++) {
            asr_cli_bench_streams_t p = *o;
            p.beam = o->beam_list[bi];
            p.streams = o->stream_list[si];
            if (bi || si) {
                devmem_reset(&dm);
                reset_peak_rss();
            }
            rc = run_streams(&p, m, wins, n_wins, &r);
            r.rss = peak_rss();
            if (rc == 0) {
                pthread_mutex_lock(&dm.mu);
                devmem_t snap = dm;
                pthread_mutex_unlock(&dm.mu);
                if (p.json)
                    print_json(&p, m, &r, &snap);
                else
                    print_text(&p, m, &r, &snap);
                fflush(stdout);
            }
        }
done:
    devmem_stop(&dm);
    free(wins);
    asr_model_destroy(m);
    return rc;
}
