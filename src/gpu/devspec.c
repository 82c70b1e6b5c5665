/* gpu: device specs, the --device / config "device" values ("cpu", "cuda", "cuda:N", "auto",
 * "host"), and what each resolves to on this machine.
 *
 * Invariants: parsing never looks at the hardware; resolving asks asr_gpu_cuda_count (cached) and
 * asr_gpu_cuda_info only for CUDA specs, so "cpu" and "host" cost nothing. A CUDA device below
 * compute capability ASR_CUDA_MIN_CC_MAJOR (the oldest architecture the kernels are built for) is
 * never picked: auto skips it, cuda:N refuses it with the reason. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "gpu/dev_int.h"
#include "gpu/gpu_build.h"

asr_err_t asr_devspec_parse(const char *s, asr_devspec_t *out) {
    out->kind = ASR_DEVSPEC_CPU;
    out->index = 0;
    if (!s || !*s || !strcmp(s, "cpu"))
        return ASR_OK;
    if (!strcmp(s, "auto")) {
        out->kind = ASR_DEVSPEC_AUTO;
        return ASR_OK;
    }
    if (!strcmp(s, "host")) {
        out->kind = ASR_DEVSPEC_HOST;
        return ASR_OK;
    }
    if (strncmp(s, "cuda", 4))
        return ASR_ERR_INVALID;
    if (!s[4]) {
        out->kind = ASR_DEVSPEC_CUDA;
        return ASR_OK;
    }
    /* "cuda:N": N decimal digits only (no sign, no spaces), below 1024 */
    const char *p = s + 5;
    if (s[4] != ':' || *p < '0' || *p > '9')
        return ASR_ERR_INVALID;
    errno = 0;
    char *end = NULL;
    long n = strtol(p, &end, 10);
    if (errno || *end || n < 0 || n >= 1024)
        return ASR_ERR_INVALID;
    out->kind = ASR_DEVSPEC_CUDA;
    out->index = (int)n;
    return ASR_OK;
}

void asr_devspec_format(const asr_devspec_t *s, char *buf, size_t len) {
    if (!buf || !len)
        return;
    switch (s->kind) {
    case ASR_DEVSPEC_CUDA:
        snprintf(buf, len, "cuda:%d", s->index);
        return;
    case ASR_DEVSPEC_AUTO:
        snprintf(buf, len, "auto");
        return;
    case ASR_DEVSPEC_HOST:
        snprintf(buf, len, "host");
        return;
    case ASR_DEVSPEC_CPU:
        break;
    }
    snprintf(buf, len, "cpu");
}

/* Whether CUDA device i can run asrd's kernels; a one-line description (or the reason it
 * cannot) in line. */
static bool cuda_usable(int i, char *line, size_t len) {
    asr_dev_info_t info;
    char err[192] = "";
    if (asr_gpu_cuda_info(i, &info, err, sizeof err) != ASR_OK) {
        snprintf(line, len, "cuda:%d: %s", i, err[0] ? err : "device query failed");
        return false;
    }
    if (info.cc_major < ASR_CUDA_MIN_CC_MAJOR) {
        snprintf(line, len,
                 "cuda:%d %s has compute capability %d.%d; asrd's CUDA kernels need %d.0 or newer",
                 i, info.name, info.cc_major, info.cc_minor, ASR_CUDA_MIN_CC_MAJOR);
        return false;
    }
    snprintf(line, len, "cuda:%d %s (compute capability %d.%d), %.1f GiB free of %.1f GiB", i,
             info.name, info.cc_major, info.cc_minor, info.free_bytes / 1073741824.0,
             info.total_bytes / 1073741824.0);
    return true;
}

asr_err_t asr_devspec_resolve(const asr_devspec_t *in, asr_devspec_t *out, char *why,
                              size_t why_len) {
    char tmp[256] = "", line[256] = "";
    if (!why || !why_len) {
        why = tmp;
        why_len = sizeof tmp;
    }
    *out = *in;
    switch (in->kind) {
    case ASR_DEVSPEC_CPU:
        snprintf(why, why_len, "cpu: asked for");
        return ASR_OK;
    case ASR_DEVSPEC_HOST:
        snprintf(why, why_len, "host: the reference device, asked for");
        return ASR_OK;
    case ASR_DEVSPEC_AUTO: {
        char reason[256] = "";
        int n = asr_gpu_cuda_count(reason, sizeof reason);
        for (int i = 0; i < n; i++) {
            if (cuda_usable(i, line, sizeof line)) {
                out->kind = ASR_DEVSPEC_CUDA;
                out->index = i;
                snprintf(why, why_len, "%s", line);
                return ASR_OK;
            }
            if (i == 0) /* the first device's reason speaks for all */
                snprintf(reason, sizeof reason, "%s", line);
        }
        out->kind = ASR_DEVSPEC_CPU;
        out->index = 0;
        snprintf(why, why_len, "cpu: no usable CUDA device (%s)",
                 reason[0] ? reason : "unknown reason");
        return ASR_OK;
    }
    case ASR_DEVSPEC_CUDA: {
        char reason[256] = "";
        int n = asr_gpu_cuda_count(reason, sizeof reason);
        if (n <= 0) {
            snprintf(why, why_len, "cuda:%d: no usable CUDA device (%s)", in->index,
                     reason[0] ? reason : "unknown reason");
            return ASR_ERR_UNSUPPORTED;
        }
        if (in->index < 0 || in->index >= n) {
            if (n == 1)
                snprintf(why, why_len, "cuda:%d: no such device (1 CUDA device: cuda:0)",
                         in->index);
            else
                snprintf(why, why_len, "cuda:%d: no such device (%d CUDA devices: cuda:0..%d)",
                         in->index, n, n - 1);
            return ASR_ERR_UNSUPPORTED;
        }
        bool ok = cuda_usable(in->index, line, sizeof line);
        snprintf(why, why_len, "%s", line);
        return ok ? ASR_OK : ASR_ERR_UNSUPPORTED;
    }
    }
    snprintf(why, why_len, "unknown device kind %d", (int)in->kind);
    return ASR_ERR_INVALID;
}
