/* engine: VAD-filtered transcription (see vadfilter.h). */
#include <math.h>
#include <pthread.h>
#include <string.h>

#include "core/embed.h"
#include "engine/vadfilter.h"

/* The Silero VAD weights (assets/vad), embedded at build time: CMake always defines
 * ASR_VAD_WEIGHTS_FILE. */
ASR_EMBED_FILE(asr__vad_weights, ASR_VAD_WEIGHTS_FILE);

static pthread_once_t g_vad_once = PTHREAD_ONCE_INIT;
static asr_vad_t *g_vad;
static asr_err_t g_vad_rc = ASR_ERR_NOT_FOUND;
static char g_vad_err[256];

static void load_vad(void) {
    const char *path = getenv("ASRD_VAD_MODEL");
    if (path && *path) {
        g_vad_rc = asr_vad_load(path, &g_vad, g_vad_err, sizeof g_vad_err);
        return;
    }
    g_vad_rc = asr_vad_load_memory(asr__vad_weights_start,
                                   (size_t)(asr__vad_weights_stop - asr__vad_weights_start), &g_vad,
                                   g_vad_err, sizeof g_vad_err);
}

asr_err_t asr__vad_weights(const asr_vad_t **out, char *errbuf, size_t errbuf_len) {
    pthread_once(&g_vad_once, load_vad);
    *out = g_vad;
    if (g_vad_rc != ASR_OK)
        asr_errf(errbuf, errbuf_len, "%s", g_vad_err);
    return g_vad_rc;
}

#define VW 512
#define VCTX 64

#define ACC_WINDOWS 64 /* windows buffered per batch */

asr_err_t asr__vadacc_init(asr_vadacc_t *a, const asr_vad_t *v) {
    memset(a, 0, sizeof *a);
    a->cap = 1024;
    a->probs = asr_malloc(a->cap * sizeof(float));
    a->buf = asr_malloc(ACC_WINDOWS * VW * sizeof(float));
    a->rc = a->probs && a->buf ? asr_vad_state_create(v, &a->st) : ASR_ERR_NOMEM;
    if (a->rc != ASR_OK)
        asr__vadacc_free(a);
    return a->rc;
}

/* Probabilities of the nw windows at pcm. */
static void acc_push(asr_vadacc_t *a, const float *pcm, size_t nw) {
    while (a->n + nw > a->cap) {
        float *p = asr_realloc(a->probs, 2 * a->cap * sizeof(float));
        if (!p) {
            a->rc = ASR_ERR_NOMEM;
            return;
        }
        a->probs = p, a->cap *= 2;
    }
    asr_vad_process_n(a->st, pcm, nw, a->probs + a->n);
    a->n += nw;
}

void asr__vadacc_feed(asr_vadacc_t *a, const float *x, size_t n) {
    if (a->rc != ASR_OK)
        return;
    a->n_samples += n;
    while (n > 0) { /* full windows go in batches of ACC_WINDOWS */
        size_t k = ACC_WINDOWS * VW - a->have < n ? ACC_WINDOWS * VW - a->have : n;
        for (size_t i = 0; i < k; i++)
            a->buf[a->have + i] = isfinite(x[i]) ? x[i] : 0.0f;
        a->have += k, x += k, n -= k;
        if (a->have == ACC_WINDOWS * VW) {
            acc_push(a, a->buf, ACC_WINDOWS);
            a->have = 0;
        }
    }
}

asr_err_t asr__vadacc_finish(asr_vadacc_t *a) {
    if (a->rc != ASR_OK)
        return a->rc;
    size_t full = a->have / VW;
    if (full)
        acc_push(a, a->buf, full);
    /* the final window: the remaining (< 512) samples, zero-padded, its last 64 zeroed */
    float last[VW] = {0};
    size_t left = a->have - full * VW;
    size_t rem = left > VW - VCTX ? VW - VCTX : left;
    memcpy(last, a->buf + full * VW, rem * sizeof(float));
    if (a->rc == ASR_OK)
        acc_push(a, last, 1);
    return a->rc;
}

void asr__vadacc_free(asr_vadacc_t *a) {
    asr_vad_state_destroy(a->st);
    free(a->probs);
    free(a->buf);
    a->st = NULL;
    a->probs = NULL;
    a->buf = NULL;
}

/* Window probabilities over the streamed source. */
static asr_err_t stream_probs(const asr_vad_t *v, const asr_pcm_source_t *src, float **out,
                              size_t *n_out, size_t *n_samples) {
    asr_vadacc_t a;
    asr_err_t rc = asr__vadacc_init(&a, v);
    if (rc != ASR_OK)
        return rc;
    float buf[4096];
    rc = src->rewind(src->user_data);
    while (rc == ASR_OK) {
        size_t got = 0;
        rc = src->read(src->user_data, buf, sizeof buf / sizeof *buf, &got);
        if (rc != ASR_OK || got == 0)
            break;
        asr__vadacc_feed(&a, buf, got);
    }
    if (rc == ASR_OK)
        rc = asr__vadacc_finish(&a);
    if (rc != ASR_OK) {
        asr__vadacc_free(&a);
        return rc;
    }
    *out = a.probs;
    *n_out = a.n;
    *n_samples = a.n_samples;
    a.probs = NULL;
    asr__vadacc_free(&a);
    return ASR_OK;
}

asr_err_t asr__vadfilter_init(asr_vadfilter_t *vf, const asr_pcm_source_t *inner,
                              const asr_vad_params_t *p, char *errbuf, size_t errbuf_len) {
    memset(vf, 0, sizeof *vf);
    vf->inner = inner;
    const asr_vad_t *v;
    asr_err_t rc = asr__vad_weights(&v, errbuf, errbuf_len);
    if (rc != ASR_OK)
        return rc;
    float *probs = NULL;
    size_t n_probs = 0, n_samples = 0;
    rc = stream_probs(v, inner, &probs, &n_probs, &n_samples);
    if (rc != ASR_OK) {
        asr_errf(errbuf, errbuf_len, "voice activity detection failed: %s", asr_strerror(rc));
        return rc;
    }
    asr_vad_opts_t o = asr_vad_default_opts();
    o.threshold = p->threshold;
    o.min_speech_ms = p->min_speech_ms;
    o.max_speech_s = p->max_speech_s > 0 ? p->max_speech_s : INFINITY;
    o.min_silence_ms = p->min_silence_ms;
    o.speech_pad_ms = p->speech_pad_ms;
    vf->n_total = n_samples;
    rc = asr_vad_spans_from_probs(probs, n_probs, n_samples, &o, &vf->spans, &vf->n_spans);
    free(probs);
    if (rc != ASR_OK) {
        asr_errf(errbuf, errbuf_len, "invalid VAD parameters");
        return rc;
    }
    vf->skip = asr_malloc(4096 * sizeof(float));
    vf->chunk_end_sample = asr_malloc(((size_t)vf->n_spans + 1) * sizeof(int64_t));
    vf->silence_before = asr_malloc(((size_t)vf->n_spans + 1) * sizeof(double));
    if (!vf->skip || !vf->chunk_end_sample || !vf->silence_before) {
        asr__vadfilter_free(vf);
        return ASR_ERR_NOMEM;
    }
    int64_t prev_end = 0, silent = 0;
    for (int i = 0; i < vf->n_spans; i++) {
        silent += vf->spans[i].start - prev_end;
        prev_end = vf->spans[i].end;
        vf->chunk_end_sample[i] = vf->spans[i].end - silent;
        vf->silence_before[i] = (double)silent / 16000.0;
    }
    return inner->rewind(inner->user_data);
}

void asr__vadfilter_free(asr_vadfilter_t *vf) {
    free(vf->spans);
    free(vf->skip);
    free(vf->chunk_end_sample);
    free(vf->silence_before);
    memset(vf, 0, sizeof *vf);
}

asr_err_t asr__vadfilter_read(void *user_data, float *buf, size_t n, size_t *n_read) {
    asr_vadfilter_t *vf = user_data;
    *n_read = 0;
    while (*n_read < n && vf->cur < vf->n_spans) {
        const asr_vad_span_t *sp = &vf->spans[vf->cur];
        size_t got = 0;
        asr_err_t rc;
        if ((int64_t)vf->pos < sp->start) { /* skip non-speech */
            size_t k = (size_t)(sp->start - (int64_t)vf->pos);
            rc = vf->inner->read(vf->inner->user_data, vf->skip, k < 4096 ? k : 4096, &got);
        } else if ((int64_t)vf->pos < sp->end) {
            size_t k = (size_t)(sp->end - (int64_t)vf->pos);
            size_t want = n - *n_read < k ? n - *n_read : k;
            rc = vf->inner->read(vf->inner->user_data, buf + *n_read, want, &got);
            *n_read += got;
        } else {
            vf->cur++;
            continue;
        }
        if (rc != ASR_OK)
            return rc;
        if (got == 0) { /* the source ended early */
            vf->cur = vf->n_spans;
            break;
        }
        vf->pos += got;
    }
    return ASR_OK;
}

asr_err_t asr__vadfilter_rewind(void *user_data) {
    asr_vadfilter_t *vf = user_data;
    vf->cur = 0;
    vf->pos = 0;
    return vf->inner->rewind(vf->inner->user_data);
}

int asr__vadfilter_chunk(const asr_vadfilter_t *vf, double t, int is_end) {
    if (vf->n_spans == 0)
        return -1;
    int64_t sample = (int64_t)(t * 16000.0);
    if (is_end)
        for (int i = 0; i < vf->n_spans; i++)
            if (vf->chunk_end_sample[i] == sample)
                return i;
    int lo = 0, hi = vf->n_spans; /* bisect_right */
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (sample < vf->chunk_end_sample[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo < vf->n_spans - 1 ? lo : vf->n_spans - 1;
}

double asr__vadfilter_time(const asr_vadfilter_t *vf, double t, int chunk) {
    if (chunk < 0)
        return t;
    return round((vf->silence_before[chunk] + t) * 100.0) / 100.0;
}
