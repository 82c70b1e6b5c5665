/* engine: language detection results (probabilities of every language, top-k on request), the
 * detect-only entry point, and the Chinese script conversion of a stream's output text.
 *
 * Invariant: s->lang_probs[i] is the probability of language token lang_begin + i from the last
 * detection (softmax over the language tokens' logits at the first decoder step, as the reference
 * implementations do); n_lang_probs is 0 when the language was given or the model is English-only.
 */
#include <stdio.h>
#include <string.h>

#include "engine/engine_int.h"
#include "engine/zhscript.h"

int asr_stream_language_probs(const asr_stream_t *s, asr_lang_prob_t *out, int max_out) {
    int n = 0;
    if (!out || max_out <= 0)
        return 0;
    /* selection of the top max_out by repeated insertion: n_lang_probs is at most 100 */
    for (int i = 0; i < s->n_lang_probs; i++) {
        const char *code = asr_tokenizer_lang_code(s->m->tok, s->m->sp.lang_begin + i);
        float p = s->lang_probs[i];
        if (!code || (n == max_out && !(p > out[n - 1].prob)))
            continue;
        int k = n < max_out ? n++ : n - 1;
        while (k > 0 && out[k - 1].prob < p) {
            out[k] = out[k - 1];
            k--;
        }
        out[k].code = code;
        out[k].prob = p;
    }
    return n;
}

asr_err_t asr_stream_detect_language(asr_stream_t *s, const float *pcm, size_t n_samples,
                                     asr_lang_prob_t *out, int max_out, int *n_out) {
    *n_out = 0;
    if (!pcm || n_samples == 0) {
        snprintf(s->errmsg, sizeof s->errmsg, "no audio samples");
        return ASR_ERR_INVALID;
    }
    asr__mem_source_t d;
    asr_pcm_source_t src =
        asr__mem_source(&d, pcm, n_samples < ASR_N_SAMPLES_30S ? n_samples : ASR_N_SAMPLES_30S);
    asr_transcribe_params_t p = asr_transcribe_default_params();
    p.skip_silent_windows = false; /* the guard's VAD pass is of no use to detection */
    asr_err_t rc = asr__transcribe_run(s, &src, &p, true);
    if (rc != ASR_OK)
        return rc;
    if (s->n_lang_probs == 0) { /* English-only model */
        if (out && max_out > 0) {
            out[0].code = "en";
            out[0].prob = 1.0f;
            *n_out = 1;
        }
        return ASR_OK;
    }
    *n_out = asr_stream_language_probs(s, out, max_out);
    return ASR_OK;
}

/* ---- Chinese script ---- */

asr_err_t asr__zh_begin(asr_stream_t *s, const asr_transcribe_params_t *p) {
    s->zh_out = NULL;
    asr_zh_script_t want = p->chinese_script;
    bool explicit_script = want != ASR_ZH_SCRIPT_AUTO;
    if (!explicit_script && p->language)
        want = asr_lang_zh_script(p->language);
    if (want == ASR_ZH_SCRIPT_AUTO || p->task != ASR_TASK_TRANSCRIBE ||
        (strcmp(s->language, "zh") && strcmp(s->language, "yue")))
        return ASR_OK;
    if (!explicit_script && !asr__zhscript_available())
        return ASR_OK; /* implied by a tag such as zh-CN: the text stays as decoded */
    int k = want == ASR_ZH_SCRIPT_SIMPLIFIED ? 0 : 1;
    if (!s->zh[k]) {
        asr_err_t rc = asr__zhscript_open(want, &s->zh[k], s->errmsg, sizeof s->errmsg);
        if (rc != ASR_OK)
            return rc;
    }
    s->zh_out = s->zh[k];
    return ASR_OK;
}

void asr__zh_append(asr_stream_t *s, asr_buf_t *dst, const char *text, size_t len) {
    if (!s->zh_out || len == 0) {
        asr_buf_append(dst, text, len);
        return;
    }
    asr__zhscript_convert(s->zh_out, text, len, dst); /* unconvertible text is kept as is */
}

void asr__zh_free(asr_stream_t *s) {
    asr__zhscript_close(s->zh[0]);
    asr__zhscript_close(s->zh[1]);
    s->zh[0] = s->zh[1] = s->zh_out = NULL;
}
