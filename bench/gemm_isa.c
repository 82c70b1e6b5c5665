/* bench/gemm_isa: the encoder's GEMM shapes, C[m][n] = A[m][k]·W[n][k]ᵀ + bias, timed through
 * OpenBLAS sgemm (asrd's float32 path, asr_nn_linear_mt) and oneDNN's matmul in float32, bfloat16
 * and int8 (asr_nn_dnnl_*, including the per-call activation conversion), with the max error
 * against the float32 result. Usage: gemm_isa [d_model (512)] [threads (all)] [reps (5)]; the
 * kernel level follows ASRD_ISA. Prints one line per shape and type: wall ms, GFLOP/s by wall time,
 * GFLOP per CPU-second (the process's CPU time: robust on a shared machine), impl. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "nn/isa.h"
#include "nn/nn.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* CPU seconds of the whole process: on a shared machine, GFLOP per CPU-second is what the
 * kernels do per core (wall time counts other people's processes too) */
static double cpu_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static float frand(unsigned *s) {
    *s = *s * 1103515245u + 12345u;
    return ((float)((*s >> 8) & 0xffff) / 32768.0f) - 1.0f;
}

int main(int argc, char **argv) {
    int d = argc > 1 ? atoi(argv[1]) : 512;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int nt = argc > 2 ? atoi(argv[2]) : (int)cores, reps = argc > 3 ? atoi(argv[3]) : 5;
    const asr_isa_t *isa = asr_isa();
    char f[320];
    printf("cpu: %s\nfeatures: %s\nlevel: %s (%s)\nd_model %d, %d threads, best of %d\n", isa->cpu,
           asr_isa_features(f, sizeof f), asr_isa_level_name(isa->level), isa->why, d, nt, reps);
    struct {
        const char *name;
        int m, n, k;
    } sh[] = {{"conv2", 1500, d, 3 * d},
              {"qkv", 1500, 3 * d, d},
              {"out", 1500, d, d},
              {"ffn1", 1500, 4 * d, d},
              {"ffn2", 1500, d, 4 * d}};
    asr_pool_t *pool = asr_pool_create(nt);
    unsigned seed = 7;
    printf("%-6s %-5s %5s %5s %5s %9s %9s %9s %10s  %s\n", "shape", "type", "m", "n", "k", "ms",
           "GFLOP/s", "GF/cpu-s", "max|err|", "kernel");
    for (size_t s = 0; s < sizeof sh / sizeof sh[0]; s++) {
        int m = sh[s].m, n = sh[s].n, k = sh[s].k;
        float *a = malloc(sizeof(float) * m * k), *w = malloc(sizeof(float) * n * k);
        float *b = malloc(sizeof(float) * n), *ref = malloc(sizeof(float) * m * n);
        float *c = malloc(sizeof(float) * m * n);
        for (size_t i = 0; i < (size_t)m * k; i++)
            a[i] = frand(&seed);
        for (size_t i = 0; i < (size_t)n * k; i++)
            w[i] = frand(&seed) * 0.05f;
        for (int i = 0; i < n; i++)
            b[i] = frand(&seed);
        double gf = 2.0 * m * n * k / 1e9, best = 1e9, cbest = 1e9;
        for (int r = 0; r <= reps; r++) {
            double t0 = now(), c0 = cpu_now();
            asr_nn_linear_mt(pool, a, k, w, k, b, ref, n, m, n, k);
            if (r)
                best = fmin(best, now() - t0), cbest = fmin(cbest, cpu_now() - c0);
        }
        printf("%-6s %-5s %5d %5d %5d %9.2f %9.1f %9.1f %10s  %s\n", sh[s].name, "blas", m, n, k,
               best * 1e3, gf / best, gf / cbest, "-", "openblas sgemm");
        static const char *tn[] = {"f32", "bf16", "int8"};
        for (int type = 0; type < 3; type++) {
            asr_nn_dnnl_t *g = NULL;
            if (asr_nn_dnnl_pack(type, w, b, m, n, k, nt, &g) != ASR_OK) {
                printf("%-6s %-5s: no oneDNN kernel\n", sh[s].name, tn[type]);
                continue;
            }
            void *scr = NULL;
            if (posix_memalign(&scr, 64, asr_nn_dnnl_scratch_bytes(g) + 64))
                return 1;
            best = 1e9, cbest = 1e9;
            for (int r = 0; r <= reps; r++) {
                double t0 = now(), c0 = cpu_now();
                if (asr_nn_dnnl_run(pool, g, a, k, c, n, scr) != ASR_OK) {
                    printf("run failed\n");
                    return 1;
                }
                if (r)
                    best = fmin(best, now() - t0), cbest = fmin(cbest, cpu_now() - c0);
            }
            double err = 0, mag = 0;
            for (size_t i = 0; i < (size_t)m * n; i++)
                err = fmax(err, fabs(c[i] - ref[i])), mag = fmax(mag, fabs(ref[i]));
            printf("%-6s %-5s %5d %5d %5d %9.2f %9.1f %9.1f %10.2e  %s (max|c| %.1f)\n", sh[s].name,
                   tn[type], m, n, k, best * 1e3, gf / best, gf / cbest, err, asr_nn_dnnl_impl(g),
                   mag);
            free(scr);
            asr_nn_dnnl_destroy(g);
        }
        free(a), free(w), free(b), free(ref), free(c);
    }
    asr_pool_destroy(pool);
    return 0;
}
