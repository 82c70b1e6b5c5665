/* cli: the --device value of transcribe and bench, and serve's `device` setting: parsed and
 * resolved on this machine before any model loads, so that a bad value or a CUDA device that is
 * not there is a one-line error (exit 2) instead of a failed load, and `auto` can say which device
 * it picked and why. The model is then loaded with the resolved spec ("cpu", "cuda:0", "host"),
 * not "auto", so that what the line says is what runs.
 *
 * Also `asrd version`: the version, the backends built in and the CUDA devices found. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "gpu/dev.h"
#include "gpu/gpu_build.h"
#include "nn/isa.h"

int asr__cli_device_resolve(const char *value, const char *what, asr_cli_device_t *out) {
    memset(out, 0, sizeof *out);
    asr_devspec_t in;
    if (!value)
        value = "auto";
    snprintf(out->asked, sizeof out->asked, "%s", value);
    if (asr_devspec_parse(value, &in) != ASR_OK) {
        fprintf(stderr, "asrd: %s must be cpu, cuda, cuda:N or auto (got '%s')\n", what, value);
        return 2;
    }
    if (asr_devspec_resolve(&in, &out->spec, out->why, sizeof out->why) != ASR_OK) {
        fprintf(stderr, "asrd: %s %s: %s\n", what, value, out->why);
        return 2;
    }
    asr_devspec_format(&out->spec, out->name, sizeof out->name);
    return 0;
}

const char *asr__cli_device_env(void) {
    const char *v = getenv("ASRD_DEVICE");
    return v && *v ? v : NULL;
}

bool asr__cli_device_is_cpu(const asr_cli_device_t *d) { return d->spec.kind == ASR_DEVSPEC_CPU; }

void asr__cli_print_isa(const char *prefix) {
    const asr_isa_t *t = asr_isa();
    char f[320];
    printf("%scpu: %s\n", prefix, t->cpu);
    printf("%scpu features: %s\n", prefix, asr_isa_features(f, sizeof f));
    printf("%scpu kernels: %s (%s)\n", prefix, asr_isa_level_name(t->level), t->why);
}

int asr__cli_version(const char *version) {
    printf("asrd %s\n", version);
    asr__cli_print_isa("");
    printf("backends: cpu, host (reference)%s\n",
           asr_gpu_cuda_built() ? ", cuda" : "; cuda not built in (ASR_CUDA=off or no nvcc)");
    if (asr_gpu_cuda_built()) {
        char libs[256] = "";
        asr_gpu_cuda_libs(libs, sizeof libs);
        printf("cuda kernels: %s; %s\n", asr_gpu_cuda_archs(), libs);
    }
    char why[256] = "";
    int n = asr_gpu_cuda_count(why, sizeof why);
    if (n <= 0)
        printf("cuda devices: none (%s)\n", why[0] ? why : "unknown reason");
    for (int i = 0; i < n; i++) {
        asr_dev_info_t info;
        char err[256] = "";
        if (asr_gpu_cuda_info(i, &info, err, sizeof err) != ASR_OK) {
            printf("cuda:%d: %s\n", i, err[0] ? err : "device query failed");
            continue;
        }
        printf("cuda:%d %s, compute capability %d.%d, %d SMs, %.1f GiB (%.1f GiB free), "
               "driver %s\n",
               i, info.name, info.cc_major, info.cc_minor, info.n_sm,
               info.total_bytes / 1073741824.0, info.free_bytes / 1073741824.0,
               info.driver[0] ? info.driver : "?");
    }
    asr_devspec_t a = {ASR_DEVSPEC_AUTO, 0}, r;
    asr_devspec_resolve(&a, &r, why, sizeof why);
    printf("auto: %s\n", why);
    return 0;
}
