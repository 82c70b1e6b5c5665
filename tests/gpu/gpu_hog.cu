/* gpu_hog: another process on the card, for the GPU memory contract's tests (the incident of
 * issue #20: an LLM held 21.2 of 23.6 GiB and every transcription failed). It takes all but
 * --leave of a GPU's memory with plain cudaMalloc (never managed memory, so the memory is really
 * the card's and NVML lists it against this pid), prints what it holds, and obeys one command a
 * line on stdin, answering each with one line a test can wait for instead of sleeping:
 *
 *   gpu_hog [--device N] [--leave SIZE] [--chunk SIZE]
 *   stdout, first:  "pid=P device=N held=B free=B total=B" then "ready ..." (or "error ...", exit
 * 1; exit 76 when no CUDA device is usable: the tests' "cannot run here") commands:       free
 * [SIZE]   release memory until it holds at most SIZE (no SIZE: all) grow [SIZE]   take memory
 * again until SIZE is left free (no SIZE: --leave) hold SIZE     hold about SIZE: free or take
 *                   status        nothing
 *                   exit          release everything and exit 0 (also at the end of stdin)
 *   answers:        "ok CMD held=B free=B total=B" or "error CMD: reason"
 * SIZE: bytes, or a number with K, M, G or T (binary; fractions allowed: 2.5G).
 *
 * Memory is taken in chunks (--chunk, default 256 MiB, then halving down to 2 MiB near the
 * target) and released newest first; each chunk is zeroed once so its pages are the card's. Plain
 * C style in CUDA C++: nothing here launches a kernel. */
#include <cuda_runtime_api.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MIN_CHUNK (2ull << 20)

static struct {
    void **p;
    size_t *bytes;
    int n, cap;
    size_t held;
} g;

static bool parse_size(const char *s, size_t *out) {
    char *end = NULL;
    if (!s || !isdigit((unsigned char)*s))
        return false;
    double v = strtod(s, &end);
    double mul = 1;
    switch (tolower((unsigned char)*end)) {
    case 0:
        break;
    case 'k':
        mul = 1024.0;
        break;
    case 'm':
        mul = 1048576.0;
        break;
    case 'g':
        mul = 1073741824.0;
        break;
    case 't':
        mul = 1099511627776.0;
        break;
    default:
        return false;
    }
    if (*end) {
        end++;
        if (*end == 'i' || *end == 'I')
            end++;
        if (*end == 'b' || *end == 'B')
            end++;
        if (*end)
            return false;
    }
    v *= mul;
    if (!(v >= 0) || v > 1e15)
        return false;
    *out = (size_t)v;
    return true;
}

static bool mem(size_t *fr, size_t *tot) {
    if (cudaMemGetInfo(fr, tot) != cudaSuccess) {
        cudaGetLastError();
        return false;
    }
    return true;
}

static void release_to(size_t keep) {
    while (g.n > 0 && g.held > keep) {
        g.n--;
        cudaFree(g.p[g.n]);
        g.held -= g.bytes[g.n];
    }
    cudaGetLastError();
}

/* Takes memory until `leave` bytes are free (or the card refuses even MIN_CHUNK). */
static bool grow_to_leave(size_t leave, size_t chunk) {
    size_t fr = 0, tot = 0;
    while (mem(&fr, &tot) && fr > leave + MIN_CHUNK / 2) {
        size_t want = fr - leave;
        size_t c = chunk;
        while (c > want && c > MIN_CHUNK)
            c /= 2;
        if (c > want)
            break; /* less than a minimum chunk to take */
        if (g.n == g.cap) {
            int cap = g.cap ? g.cap * 2 : 256;
            void **p = (void **)realloc(g.p, (size_t)cap * sizeof *p);
            size_t *b = p ? (size_t *)realloc(g.bytes, (size_t)cap * sizeof *b) : NULL;
            if (!p || !b) {
                if (p)
                    g.p = p;
                return false;
            }
            g.p = p;
            g.bytes = b;
            g.cap = cap;
        }
        void *ptr = NULL;
        if (cudaMalloc(&ptr, c) != cudaSuccess) {
            cudaGetLastError();
            if (c <= MIN_CHUNK)
                break; /* fragmentation or the driver's reserve: as close as it gets */
            chunk = c / 2;
            continue;
        }
        cudaMemset(ptr, 0, c);
        g.p[g.n] = ptr;
        g.bytes[g.n++] = c;
        g.held += c;
    }
    cudaDeviceSynchronize();
    cudaGetLastError();
    return true;
}

/* Holds about `target` bytes: frees down to it, or takes until it holds it. */
static bool hold(size_t target, size_t chunk) {
    if (g.held >= target) {
        release_to(target);
        return true;
    }
    size_t fr = 0, tot = 0;
    if (!mem(&fr, &tot))
        return false;
    size_t more = target - g.held;
    return grow_to_leave(fr > more ? fr - more : 0, chunk);
}

static void report(const char *what) {
    size_t fr = 0, tot = 0;
    mem(&fr, &tot);
    printf("%s held=%zu free=%zu total=%zu\n", what, g.held, fr, tot);
    fflush(stdout);
}

int main(int argc, char **argv) {
    int dev = 0;
    size_t leave = 3ull << 30, chunk = 256ull << 20;
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(argv[i], "--device") && v) {
            dev = atoi(v);
            i++;
        } else if (!strcmp(argv[i], "--leave") && parse_size(v, &leave)) {
            i++;
        } else if (!strcmp(argv[i], "--chunk") && parse_size(v, &chunk) && chunk >= MIN_CHUNK) {
            i++;
        } else {
            fprintf(stderr, "usage: %s [--device N] [--leave SIZE] [--chunk SIZE]\n", argv[0]);
            return 2;
        }
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n <= dev || dev < 0) {
        printf("error no usable CUDA device %d: %s\n", dev,
               e != cudaSuccess ? cudaGetErrorString(e) : "no such ordinal");
        return 76;
    }
    if ((e = cudaSetDevice(dev)) != cudaSuccess || (e = cudaFree(0)) != cudaSuccess) {
        printf("error cuda:%d: %s\n", dev, cudaGetErrorString(e));
        return 1;
    }
    grow_to_leave(leave, chunk);
    size_t fr = 0, tot = 0;
    mem(&fr, &tot);
    printf("pid=%d device=%d held=%zu free=%zu total=%zu\n", (int)getpid(), dev, g.held, fr, tot);
    report("ready");
    char line[256];
    while (fgets(line, sizeof line, stdin)) {
        char cmd[32] = "", arg[64] = "";
        int k = sscanf(line, "%31s %63s", cmd, arg);
        if (k <= 0)
            continue;
        size_t sz = 0;
        bool has = k == 2;
        if (has && !parse_size(arg, &sz)) {
            printf("error %s: bad size '%s'\n", cmd, arg);
            continue;
        }
        char what[64];
        snprintf(what, sizeof what, "ok %s", cmd);
        if (!strcmp(cmd, "free")) {
            release_to(has ? sz : 0);
        } else if (!strcmp(cmd, "grow")) {
            if (!grow_to_leave(has ? sz : leave, chunk)) {
                printf("error grow: out of host memory\n");
                continue;
            }
        } else if (!strcmp(cmd, "hold") && has) {
            if (!hold(sz, chunk)) {
                printf("error hold: cudaMemGetInfo failed\n");
                continue;
            }
        } else if (!strcmp(cmd, "status")) {
        } else if (!strcmp(cmd, "exit")) {
            break;
        } else {
            printf("error %s: unknown command (free [SIZE], grow [SIZE], hold SIZE, status, "
                   "exit)\n",
                   cmd);
            continue;
        }
        report(what);
    }
    release_to(0);
    report("ok exit");
    return 0;
}
