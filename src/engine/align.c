/* engine: word alignment (see align.h). */
#include <math.h>
#include <string.h>

#include "engine/align.h"

void asr__words_free(asr_word_timing_t *w, int n) {
    if (!w)
        return;
    for (int i = 0; i < n; i++)
        free(w[i].word);
    free(w);
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Median filter of width 7 along each row, reflecting at the edges (CTranslate2's MedianFilter). */
static void median_rows(float *x, int rows, int cols, float *tmp_row) {
    const int w = 7, r = w / 2;
    if (cols <= r)
        return;
    for (int i = 0; i < rows; i++) {
        float *row = x + (size_t)i * cols;
        memcpy(tmp_row, row, (size_t)cols * sizeof(float));
        for (int j = 0; j < cols; j++) {
            float win[7];
            for (int k = -r; k <= r; k++) {
                int rd = abs(j + k);
                if (rd >= cols)
                    rd = cols - (rd - cols) - 2;
                win[k + r] = tmp_row[rd];
            }
            qsort(win, w, sizeof(float), cmp_float);
            row[j] = win[r];
        }
    }
}

/* DTW on -x[n][m]; fills path text index per step into (pi, pj); returns the path length. Ties go
 * to the left move (CTranslate2's negative_dtw). */
static int negative_dtw(const float *x, int n, int m, int *pi, int *pj) {
    float *cost = asr_xmalloc((size_t)(n + 1) * (m + 1) * sizeof(float));
    unsigned char *trace = asr_xmalloc((size_t)(n + 1) * (m + 1));
#define C(i, j) cost[(size_t)(i) * (m + 1) + (j)]
#define T(i, j) trace[(size_t)(i) * (m + 1) + (j)]
    for (int i = 0; i <= n; i++)
        for (int j = 0; j <= m; j++)
            C(i, j) = INFINITY, T(i, j) = 3;
    C(0, 0) = 0.0f;
    for (int j = 1; j <= m; j++)
        for (int i = 1; i <= n; i++) {
            float c0 = C(i - 1, j - 1), c1 = C(i - 1, j), c2 = C(i, j - 1), c;
            int t;
            if (c0 < c1 && c0 < c2)
                c = c0, t = 0;
            else if (c1 < c0 && c1 < c2)
                c = c1, t = 1;
            else
                c = c2, t = 2;
            C(i, j) = -x[(size_t)(i - 1) * m + (j - 1)] + c;
            T(i, j) = (unsigned char)t;
        }
    for (int k = 0; k <= m; k++)
        T(0, k) = 2;
    for (int k = 0; k <= n; k++)
        T(k, 0) = 1;
    int i = n, j = m, len = 0;
    while (i > 0 || j > 0) {
        pi[len] = i - 1, pj[len] = j - 1, len++;
        int t = T(i, j);
        if (t == 0)
            i--, j--;
        else if (t == 1)
            i--;
        else
            j--;
    }
    for (int a = 0, b = len - 1; a < b; a++, b--) {
        int t = pi[a];
        pi[a] = pi[b], pi[b] = t;
        t = pj[a];
        pj[a] = pj[b], pj[b] = t;
    }
#undef C
#undef T
    free(cost);
    free(trace);
    return len;
}

/* Whether bytes b[0..n) are complete UTF-8 (1), end inside a sequence that started well (0: more
 * tokens may complete it), or hold an invalid sequence (-1); core's strict decoder decides. */
static int utf8_state(const unsigned char *b, size_t n) {
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        int l = asr_utf8_next(b + i, n - i, &cp);
        if (l > 0) {
            i += (size_t)l;
            continue;
        }
        /* the decoder ran out of bytes (not into a bad one) after a lead byte that starts a
         * sequence */
        return (size_t)-l == n - i && b[i] >= 0xC2 && b[i] <= 0xF4 ? 0 : -1;
    }
    return 1;
}

static int is_punct_ascii(const char *w) {
    /* Python's string.punctuation, applied to the stripped subword */
    static const char *P = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
    while (*w == ' ')
        w++;
    size_t n = strlen(w);
    while (n && w[n - 1] == ' ')
        n--;
    if (n == 0)
        return 1; /* "" in string.punctuation is True */
    if (n != 1)
        return 0;
    return strchr(P, w[0]) != NULL;
}

typedef struct {
    asr_buf_t text;
    int first_token, n_tokens;
} piece_t;

/* Splits text tokens + EOT into words (faster-whisper split_to_word_tokens). */
static int split_words(const asr_model_t *m, const int32_t *toks, int n, const char *lang,
                       piece_t *out) {
    int n_out = 0, cur_first = 0, cur_n = 0;
    asr_buf_t cur;
    asr_buf_init(&cur);
    int by_unicode_only =
        lang && (!strcmp(lang, "zh") || !strcmp(lang, "ja") || !strcmp(lang, "th") ||
                 !strcmp(lang, "lo") || !strcmp(lang, "my") || !strcmp(lang, "yue"));
    for (int i = 0; i < n; i++) {
        if (cur_n == 0)
            cur_first = i;
        cur_n++;
        int special = toks[i] >= m->sp.eot;
        if (special) {
            asr_buf_puts(&cur, "<|endoftext|>");
        } else {
            size_t len;
            const char *b = asr_tokenizer_token_bytes(m->tok, toks[i], &len);
            if (b)
                asr_buf_append(&cur, b, len);
        }
        int st =
            special ? 1 : utf8_state((const unsigned char *)(cur.data ? cur.data : ""), cur.len);
        if (st == 0 && i + 1 < n)
            continue; /* incomplete character: wait for the next token */
        asr_buf_t text;
        asr_buf_init(&text);
        if (st < 0) { /* invalid: decode with replacement */
            asr_tokenizer_decode(m->tok, toks + cur_first, cur_n, &text);
        } else {
            asr_buf_append(&text, cur.data ? cur.data : "", cur.len);
        }
        const char *w = text.data ? text.data : "";
        int starts_new =
            by_unicode_only || special || w[0] == ' ' || is_punct_ascii(w) || n_out == 0;
        if (starts_new) {
            out[n_out].text = text;
            out[n_out].first_token = cur_first;
            out[n_out].n_tokens = cur_n;
            n_out++;
        } else {
            asr_buf_append(&out[n_out - 1].text, text.data, text.len);
            out[n_out - 1].n_tokens += cur_n;
            asr_buf_free(&text);
        }
        cur.len = 0;
        cur_n = 0;
    }
    asr_buf_free(&cur);
    return n_out;
}

static int in_set(const char *w, const char *set) {
    size_t n = strlen(w);
    if (n == 0)
        return 0;
    /* membership of w as a substring of set, like Python's `in` on strings */
    return strstr(set, w) != NULL;
}

/* first's text then second's become `into`'s (one of the two), with both words' tokens; the other
 * is left empty (no text, no tokens), as faster-whisper's merge_punctuations leaves it. */
static void merge_words(asr_word_timing_t *first, asr_word_timing_t *second,
                        asr_word_timing_t *into) {
    asr_word_timing_t *other = into == first ? second : first;
    size_t l1 = strlen(first->word), l2 = strlen(second->word);
    char *m = asr_xmalloc(l1 + l2 + 1);
    memcpy(m, first->word, l1);
    memcpy(m + l1, second->word, l2 + 1);
    free(into->word);
    into->word = m;
    into->n_tokens += other->n_tokens;
    other->word[0] = 0;
    other->n_tokens = 0;
}

static void merge_punctuations(asr_word_timing_t *a, int n) {
    static const char *pre = "\"'\xe2\x80\x9c\xc2\xbf([{-";
    static const char *app = "\"'.\xe3\x80\x82,\xef\xbc\x8c!\xef\xbc\x81?\xef\xbc\x9f:\xef\xbc\x9a"
                             "\xe2\x80\x9d)]}\xe3\x80\x81";
    for (int i = n - 2, j = n - 1; i >= 0; i--) {
        const char *w = a[i].word;
        char stripped[64];
        size_t len = strlen(w);
        const char *p = w;
        while (*p == ' ')
            p++, len--;
        while (len && p[len - 1] == ' ')
            len--;
        int ok = w[0] == ' ' && len < sizeof stripped;
        if (ok) {
            memcpy(stripped, p, len);
            stripped[len] = 0;
        }
        if (ok && (len == 0 || in_set(stripped, pre))) {
            merge_words(&a[i], &a[j], &a[j]);
        } else {
            j = i;
        }
    }
    for (int i = 0, j = 1; j < n; j++) {
        size_t l1 = strlen(a[i].word);
        int ends_space = l1 > 0 && a[i].word[l1 - 1] == ' ';
        if (!ends_space && (a[j].word[0] == 0 || in_set(a[j].word, app))) {
            merge_words(&a[i], &a[j], &a[i]);
        } else {
            i = j;
        }
    }
}

static void postprocess_heads(asr_stream_t *s, int rows, int frames, float *weights) {
    const asr_model_t *m = s->m;
    const int H = m->n_alignment_heads;
    float *tmp = asr_xmalloc((size_t)frames * sizeof(float));
    memset(weights, 0, (size_t)rows * frames * sizeof(float));
    for (int k = 0; k < H; k++) {
        float *a = s->align_capture + (size_t)k * s->align_rows * frames;
        asr_nn_softmax_rows(NULL, a, rows, frames, frames);
        for (int c = 0; c < frames; c++) { /* z-score along tokens (LayerNorm over axis -2) */
            double mean = 0.0, var = 0.0;
            for (int r = 0; r < rows; r++)
                mean += a[(size_t)r * frames + c];
            mean /= rows;
            for (int r = 0; r < rows; r++) {
                double t = a[(size_t)r * frames + c] - mean;
                var += t * t;
            }
            float inv = (float)(1.0 / sqrt(var / rows));
            for (int r = 0; r < rows; r++)
                a[(size_t)r * frames + c] = (float)(a[(size_t)r * frames + c] - mean) * inv;
        }
        median_rows(a, rows, frames, tmp);
        for (size_t i = 0; i < (size_t)rows * frames; i++)
            weights[i] += a[i] / (float)H;
    }
    free(tmp);
}

asr_err_t asr__align_words(asr_stream_t *s, const int32_t *sot_seq, int n_sot, const int32_t *text,
                           int n_text, int num_frames, const char *lang, asr_word_timing_t **out,
                           int *n_out, double *median_duration, double *max_duration) {
    const asr_model_t *m = s->m;
    *out = NULL;
    *n_out = 0;
    *median_duration = 0.0;
    *max_duration = 0.0;
    int frames = num_frames / 2;
    if (n_text == 0 || frames == 0 || m->n_alignment_heads == 0)
        return ASR_OK;
    int n = n_sot + 1 + n_text + 1;
    if (n > m->info.n_text_ctx)
        return ASR_ERR_INVALID;
    int32_t *in = asr_xmalloc((size_t)n * sizeof(int32_t));
    memcpy(in, sot_seq, (size_t)n_sot * sizeof(int32_t));
    in[n_sot] = m->sp.no_timestamps;
    memcpy(in + n_sot + 1, text, (size_t)n_text * sizeof(int32_t));
    in[n - 1] = m->sp.eot;
    s->align_rows = n;
    s->align_frames = frames;
    s->align_capture = asr_malloc((size_t)m->n_alignment_heads * n * frames * sizeof(float));
    float *weights = asr_malloc((size_t)n * frames * sizeof(float));
    float *probs = asr_xmalloc((size_t)(n_text + 1) * sizeof(float));
    int *pi = asr_xmalloc((size_t)(n + frames + 2) * sizeof(int));
    int *pj = asr_xmalloc((size_t)(n + frames + 2) * sizeof(int));
    piece_t *pieces = asr_xcalloc((size_t)n_text + 1, sizeof(piece_t));
    asr_err_t rc = ASR_OK;
    if (!s->align_capture || !weights) {
        rc = ASR_ERR_NOMEM;
        goto done;
    }
    asr__dec_forward(s, in, n, 0, -1);
    float *capture = s->align_capture;
    s->align_capture = NULL;
    for (int t = 0; t < n_text; t++) { /* probabilities of the text tokens over ids < eot */
        asr__dec_logits_row(s, n_sot + t);
        const float *lg = s->logits;
        float mx = -INFINITY;
        for (int i = 0; i < m->sp.eot; i++)
            mx = lg[i] > mx ? lg[i] : mx;
        double sum = 0.0;
        for (int i = 0; i < m->sp.eot; i++)
            sum += exp((double)(lg[i] - mx));
        probs[t] = (float)(exp((double)(lg[text[t]] - mx)) / sum);
    }
    s->align_capture = capture;
    postprocess_heads(s, n, frames, weights);
    /* the text rows: from the no-timestamps position, n_text + 1 rows */
    int plen = negative_dtw(weights + (size_t)n_sot * frames, n_text + 1, frames, pi, pj);
    double *jump_times = asr_xmalloc((size_t)(plen + 1) * sizeof(double));
    int n_jumps = 0;
    for (int k = 0; k < plen; k++)
        if (k == 0 || pi[k] != pi[k - 1])
            jump_times[n_jumps++] = pj[k] / 50.0;
    int32_t *tw = asr_xmalloc((size_t)(n_text + 1) * sizeof(int32_t));
    memcpy(tw, text, (size_t)n_text * sizeof(int32_t));
    tw[n_text] = m->sp.eot;
    int n_pieces = split_words(m, tw, n_text + 1, lang, pieces);
    free(tw);
    if (n_pieces > 1) {
        asr_word_timing_t *w = asr_xcalloc((size_t)n_pieces, sizeof *w);
        int nw = 0, boundary = 0;
        for (int k = 0; k < n_pieces - 1; k++) { /* the last piece is EOT */
            int b0 = boundary, b1 = boundary + pieces[k].n_tokens;
            w[nw].word = asr_xstrdup(pieces[k].text.data ? pieces[k].text.data : "");
            w[nw].n_tokens = pieces[k].n_tokens;
            w[nw].start = b0 < n_jumps ? jump_times[b0] : 0.0;
            w[nw].end = b1 < n_jumps ? jump_times[b1] : w[nw].start;
            double pr = 0.0;
            for (int t = b0; t < b1 && t < n_text; t++)
                pr += probs[t];
            w[nw].probability = b1 > b0 ? (float)(pr / (b1 - b0)) : 0.0f;
            nw++;
            boundary = b1;
        }
        /* truncate long words at sentence boundaries (twice the median duration, at most 1.4 s) */
        float *dur = asr_xmalloc((size_t)nw * sizeof(float));
        int nd = 0;
        for (int k = 0; k < nw; k++)
            if (w[k].end - w[k].start != 0.0)
                dur[nd++] = (float)(w[k].end - w[k].start);
        if (nd > 0) {
            qsort(dur, (size_t)nd, sizeof(float), cmp_float);
            double med = nd % 2 ? dur[nd / 2] : 0.5 * (dur[nd / 2 - 1] + dur[nd / 2]);
            med = med < 0.7 ? med : 0.7;
            double maxd = med * 2;
            *median_duration = med;
            *max_duration = maxd;
            static const char *ends = ".\xe3\x80\x82!\xef\xbc\x81?\xef\xbc\x9f";
            for (int k = 1; k < nw; k++)
                if (w[k].end - w[k].start > maxd) {
                    if (in_set(w[k].word, ends))
                        w[k].end = w[k].start + maxd;
                    else if (in_set(w[k - 1].word, ends))
                        w[k].start = w[k].end - maxd;
                }
        }
        free(dur);
        merge_punctuations(w, nw);
        *out = w;
        *n_out = nw;
    }
    free(jump_times);
    for (int k = 0; k < n_text + 1; k++)
        asr_buf_free(&pieces[k].text);
done:
    free(s->align_capture);
    s->align_capture = NULL;
    free(weights);
    free(probs);
    free(pi);
    free(pj);
    free(pieces);
    free(in);
    return rc;
}
