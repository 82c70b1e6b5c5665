/* gpu: the CUDA backend's build facts (gpu_build.h). ASR_CUDA_ARCHS comes from CMake
 * (CMAKE_CUDA_ARCHITECTURES, e.g. "80-real;89-real;90": "-real" is machine code only, a bare
 * number is machine code plus PTX for it, which newer GPUs compile at load time). */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "gpu/gpu_build.h"
#ifdef ASR_HAVE_CUDA
#include "gpu/cublas_load.h"
#endif

#if defined(ASR_HAVE_CUDA) && defined(ASR_CUDA_ARCHS)
static char archs[160];
static pthread_once_t archs_once = PTHREAD_ONCE_INIT;

static void archs_format(void) {
    char list[128], sass[96] = "", ptx[64] = "";
    snprintf(list, sizeof list, "%s", ASR_CUDA_ARCHS);
    char *save = NULL;
    for (char *t = strtok_r(list, ";, ", &save); t; t = strtok_r(NULL, ";, ", &save)) {
        char num[16];
        size_t n = strspn(t, "0123456789");
        if (!n || n >= sizeof num)
            continue;
        memcpy(num, t, n);
        num[n] = 0;
        const char *suffix = t + n;
        size_t sl = strlen(sass), pl = strlen(ptx);
        if (strcmp(suffix, "-virtual"))
            snprintf(sass + sl, sizeof sass - sl, "%ssm_%s", sl ? " " : "", num);
        if (strcmp(suffix, "-real"))
            snprintf(ptx + pl, sizeof ptx - pl, "%scompute_%s", pl ? " " : "", num);
    }
    snprintf(archs, sizeof archs, "%s%s%s", sass, ptx[0] ? " + PTX " : "", ptx);
}
#endif

const char *asr_gpu_cuda_archs(void) {
#if defined(ASR_HAVE_CUDA) && defined(ASR_CUDA_ARCHS)
    pthread_once(&archs_once, archs_format);
    return archs;
#elif defined(ASR_HAVE_CUDA)
    return "the toolkit's default architectures";
#else
    return "";
#endif
}

void asr_gpu_cuda_libs(char *buf, size_t len) {
#ifdef ASR_HAVE_CUDA
    char why[256] = "";
    const asr_cublas_t *cb = asr__cublas_get(why, sizeof why);
    if (!cb)
        snprintf(buf, len, "%s", why);
    else if (cb->version)
        snprintf(buf, len, "%s %d.%d.%d", cb->path, cb->version / 10000, cb->version / 100 % 100,
                 cb->version % 100);
    else
        snprintf(buf, len, "%s", cb->path);
#else
    snprintf(buf, len, "not built");
#endif
}
