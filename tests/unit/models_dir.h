/* Unit tests: where the real models are. $ASRD_MODELS, else ~/.cache/asrd/models (make models),
 * else /tmp/devmodels. Header-only: each test program includes it once. */
#ifndef ASR_TEST_MODELS_DIR_H
#define ASR_TEST_MODELS_DIR_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* out = ROOT/name for the first root that holds name/model.bin; false when none does. */
static inline bool asr_test_model_dir(const char *name, char *out, size_t len) {
    const char *env = getenv("ASRD_MODELS"), *home = getenv("HOME");
    char cache[512] = "", p[1200];
    if (home)
        snprintf(cache, sizeof cache, "%s/.cache/asrd/models", home);
    const char *roots[3] = {env && *env ? env : NULL, cache[0] ? cache : NULL, "/tmp/devmodels"};
    for (int i = 0; i < 3; i++) {
        if (!roots[i])
            continue;
        snprintf(p, sizeof p, "%s/%s/model.bin", roots[i], name);
        if (access(p, R_OK) == 0) {
            snprintf(out, len, "%s/%s", roots[i], name);
            return true;
        }
    }
    return false;
}

#endif
