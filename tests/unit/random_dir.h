/* Unit tests: a random-weight model (engine/random_model.h, seed 7) written as a CTranslate2
 * directory into a fresh temporary directory, and the directory's removal. Header-only: each test
 * program includes it once. */
#ifndef ASR_TEST_RANDOM_DIR_H
#define ASR_TEST_RANDOM_DIR_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "engine/random_model.h"
#include "engine/wsource.h"
#include "engine/wwrite.h"

/* dir: a mkdtemp template ("/tmp/name_XXXXXX"), made into the directory; false with the reason
 * in err. */
static inline bool asr_test_random_dir(const char *shape, char *dir, char *err, size_t err_len) {
    if (!mkdtemp(dir)) {
        snprintf(err, err_len, "mkdtemp %s failed", dir);
        return false;
    }
    asr_wsource_t *ws = NULL;
    bool ok = asr_random_model_create(shape, 7, &ws, err, err_len) == ASR_OK &&
              asr_ct2_write(&ws->src, dir, err, err_len) == ASR_OK;
    asr_wsource_close(ws);
    return ok;
}

static inline bool asr_test_remove_dir(const char *dir) {
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0;
}

#endif
