/* engine: the output projection, the logits every search step ranks (one home for the decoder's
 * single-stream steps and the CPU batcher's shared passes), and the embedding rows it shares.
 *
 * Under float32 it is one linear layer over the float16 embedding. Under int8 and bfloat16 the
 * step of a large model is bound by memory bandwidth and the embedding is its largest matrix
 * (large-v3: 51866 x 1280, 133 MB in float16 against 92 MB for the four int8 layers of turbo),
 * so it is held in two int8 levels (model.c load_embedding): the first alone scores the whole
 * vocabulary (activations quantised per row, as every int8 layer does), then the
 * ASR_LOGITS_EXACT highest of each row are scored again from both levels against the float
 * activations. The tokens a beam can take, and those the timestamp rules and the fallback's
 * log-probabilities look at, get the float embedding's value; the others only enter the
 * normaliser, where an error of a few hundredths far below the top moves nothing. One int8 level
 * used alone cost base 20 WER points on the noisy 88-s clip (its beams ranked on int8 values). */
#include <math.h>

#include "engine/engine_int.h"

/* min-heap of (value, index) on value */
static void sift_down(float *v, int *ix, int n, int i) {
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && v[l] < v[m])
            m = l;
        if (r < n && v[r] < v[m])
            m = r;
        if (m == i)
            return;
        float tv = v[i];
        int ti = ix[i];
        v[i] = v[m], ix[i] = ix[m];
        v[m] = tv, ix[m] = ti;
        i = m;
    }
}

int asr__logits_top(const float *x, int n, int k, int *idx) {
    float v[ASR_LOGITS_EXACT];
    if (k > ASR_LOGITS_EXACT)
        k = ASR_LOGITS_EXACT;
    if (k > n)
        k = n;
    for (int i = 0; i < k; i++) /* NaN ranks lowest */
        v[i] = x[i] == x[i] ? x[i] : -INFINITY, idx[i] = i;
    for (int i = k / 2 - 1; i >= 0; i--)
        sift_down(v, idx, k, i);
    float floor = k ? v[0] : 0.0f;
    for (int i = k; i < n; i++) {
        if (!(x[i] > floor))
            continue;
        v[0] = x[i], idx[0] = i;
        sift_down(v, idx, k, 0);
        floor = v[0];
    }
    return k;
}

/* h · q for int8 q: 16 float lanes the compiler vectorises */
static float dot_i8(const float *h, const int8_t *q, int d) {
    float acc[16] = {0}, sum = 0.0f;
    int t = 0;
    for (; t + 16 <= d; t += 16)
        for (int i = 0; i < 16; i++)
            acc[i] += h[t + i] * (float)q[t + i];
    for (; t < d; t++)
        sum += h[t] * (float)q[t];
    for (int i = 0; i < 16; i++)
        sum += acc[i];
    return sum;
}

void asr__embed_row(const asr_model_t *m, int token, float *out) {
    const int d = m->info.d_model;
    asr_nn_weight_row(&m->tok_emb, token, d, out);
    if (!m->tok_res.data)
        return;
    const int8_t *r = (const int8_t *)m->tok_res.data + (size_t)token * d;
    const float s = m->tok_res.scale[token];
    for (int t = 0; t < d; t++)
        out[t] += s * (float)r[t];
}

void asr__logits(const asr_model_t *m, asr_pool_t *pool, const float *h, int rows, float *out,
                 int ldo, void *qbuf) {
    const int d = m->info.d_model, V = m->info.n_vocab;
    if (qbuf)
        asr_nn_linear_w_many(pool, h, d, &m->tok_emb, NULL, out, ldo, rows, V, d, qbuf);
    else
        asr_nn_linear_w(pool, h, d, &m->tok_emb, NULL, out, ldo, rows, V, d);
    if (!m->tok_res.data)
        return;
    const int8_t *q = m->tok_emb.data, *r = m->tok_res.data;
    const float *qs = m->tok_emb.scale, *rs = m->tok_res.scale;
    for (int i = 0; i < rows; i++) {
        int idx[ASR_LOGITS_EXACT];
        const float *hi = h + (size_t)i * d;
        float *o = out + (size_t)i * ldo;
        int k = asr__logits_top(o, V, ASR_LOGITS_EXACT, idx);
        for (int c = 0; c < k; c++) {
            size_t t = (size_t)idx[c];
            o[t] = qs[t] * dot_i8(hi, q + t * d, d) + rs[t] * dot_i8(hi, r + t * d, d);
        }
    }
}
