/* engine: Chinese script conversion (see zhscript.h). OpenCC converts phrase by phrase (its
 * dictionaries map words, not only characters), so whole segment texts convert better than
 * characters one at a time. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/zhscript.h"

#ifdef ASR_HAVE_OPENCC
#include <opencc.h>
#endif

struct asr_zhscript {
#ifdef ASR_HAVE_OPENCC
    opencc_t cc;
#endif
    asr_zh_script_t to;
};

static atomic_int g_n_open; /* converters open now: what a test checks for leaks */

int asr__zhscript_n_open(void) { return atomic_load(&g_n_open); }

bool asr__zhscript_available(void) {
#ifdef ASR_HAVE_OPENCC
    return true;
#else
    return false;
#endif
}

bool asr_zh_script_available(void) { return asr__zhscript_available(); }

asr_err_t asr__zhscript_open(asr_zh_script_t to, asr_zhscript_t **out, char *err, size_t err_len) {
    *out = NULL;
    if (to != ASR_ZH_SCRIPT_SIMPLIFIED && to != ASR_ZH_SCRIPT_TRADITIONAL) {
        if (err)
            snprintf(err, err_len, "no Chinese script to convert to");
        return ASR_ERR_INVALID;
    }
#ifdef ASR_HAVE_OPENCC
    const char *config = to == ASR_ZH_SCRIPT_SIMPLIFIED ? "t2s.json" : "s2t.json";
    opencc_t cc = opencc_open(config);
    if (cc == (opencc_t)-1) {
        if (err)
            snprintf(err, err_len, "cannot open OpenCC config %s: %s", config, opencc_error());
        return ASR_ERR_NOT_FOUND;
    }
    asr_zhscript_t *z = asr_xcalloc(1, sizeof *z);
    z->cc = cc;
    z->to = to;
    atomic_fetch_add(&g_n_open, 1);
    *out = z;
    return ASR_OK;
#else
    if (err)
        snprintf(err, err_len,
                 "Chinese script conversion is unavailable: asrd was built without "
                 "OpenCC (libopencc-dev)");
    return ASR_ERR_UNSUPPORTED;
#endif
}

void asr__zhscript_close(asr_zhscript_t *z) {
    if (!z)
        return;
#ifdef ASR_HAVE_OPENCC
    opencc_close(z->cc);
#endif
    atomic_fetch_sub(&g_n_open, 1);
    free(z);
}

asr_err_t asr__zhscript_convert(asr_zhscript_t *z, const char *text, size_t len, asr_buf_t *out) {
#ifdef ASR_HAVE_OPENCC
    if (len == 0) {
        asr_buf_append(out, "", 0);
        return ASR_OK;
    }
    char *conv = opencc_convert_utf8(z->cc, text, len);
    if (conv) {
        asr_buf_puts(out, conv);
        opencc_convert_utf8_free(conv);
        return ASR_OK;
    }
#else
    (void)z;
#endif
    asr_buf_append(out, text, len);
    return ASR_ERR_INVALID;
}
