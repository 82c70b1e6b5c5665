/* tokenizer_bpe: text -> token ids. The GPT-2 pre-split regex
 *     's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * is implemented as a hand-written scanner (the alternatives are tried in order at each position,
 * as a backtracking regex engine does), then each piece is merged with byte-level BPE.
 *
 * Character classes are those of Oniguruma, which Hugging Face tokenizers (and so faster-whisper)
 * uses, measured on it by scripts/gen_unicode_tables.py into unicode_tables.c: \p{L} / \p{N} are
 * the general categories of Unicode 16.0 (newer than Python 3.11's unicodedata), \s is the
 * White_Space property (so U+001C..U+001F are not spaces, unlike Python's str.isspace, and U+0085,
 * U+00A0 and U+3000 are).
 *
 * Complexity: the scanner is linear; BPE of a piece of m bytes is O(m log m) (a heap of candidate
 * merges ordered by (rank, position), stale entries skipped when popped), so the worst input (64 KB
 * of one letter class) stays fast. */
#include <string.h>
#include "engine/tokenizer_int.h"

/* ---- unicode ---- */

static bool in_ranges(const uint32_t (*r)[2], int n, uint32_t cp) {
    int lo = 0, hi = n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (cp < r[mid][0])
            hi = mid - 1;
        else if (cp > r[mid][1])
            lo = mid + 1;
        else
            return true;
    }
    return false;
}

bool asr__unicode_is_letter(uint32_t cp) {
    if (cp < 0x80)
        return (cp | 0x20) >= 'a' && (cp | 0x20) <= 'z';
    return in_ranges(asr__unicode_letter_ranges, asr__unicode_letter_n, cp);
}

bool asr__unicode_is_number(uint32_t cp) {
    if (cp < 0x80)
        return cp >= '0' && cp <= '9';
    return in_ranges(asr__unicode_number_ranges, asr__unicode_number_n, cp);
}

bool asr__unicode_is_space(uint32_t cp) {
    if (cp < 0x80)
        return cp == ' ' || (cp >= 0x09 && cp <= 0x0D);
    return in_ranges(asr__unicode_space_ranges, asr__unicode_space_n, cp);
}

/* ---- pre-split ---- */

enum { CL_SPACE, CL_LETTER, CL_NUMBER, CL_OTHER };

/* Class of the character at s[i] (i < n); *len receives its byte length. */
static int char_class(const uint8_t *s, size_t n, size_t i, size_t *len) {
    uint32_t cp;
    int k = asr_utf8_next(s + i, n - i, &cp);
    if (k < 0) {
        *len = 1; /* each invalid byte is one "other" character */
        return CL_OTHER;
    }
    *len = (size_t)k;
    if (asr__unicode_is_space(cp))
        return CL_SPACE;
    if (asr__unicode_is_letter(cp))
        return CL_LETTER;
    if (asr__unicode_is_number(cp))
        return CL_NUMBER;
    return CL_OTHER;
}

/* End of the piece that starts at s[i]. */
static size_t piece_end(const uint8_t *s, size_t n, size_t i) {
    /* 's 't 're 've 'm 'll 'd (case-sensitive) */
    if (s[i] == '\'' && i + 1 < n) {
        uint8_t a = s[i + 1], b = i + 2 < n ? s[i + 2] : 0;
        if (a == 's' || a == 't' || a == 'm' || a == 'd')
            return i + 2;
        if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l'))
            return i + 3;
    }
    /* ' ?\p{L}+', ' ?\p{N}+', ' ?[^\s\p{L}\p{N}]+': an optional U+0020, then a run of one class */
    size_t k = s[i] == ' ' && i + 1 < n ? i + 1 : i, len;
    int cls = char_class(s, n, k, &len);
    if (cls == CL_SPACE && k != i)
        cls = char_class(s, n, i, &len), k = i; /* the space cannot be a prefix: retry without */
    if (cls != CL_SPACE) {
        size_t j = k + len;
        while (j < n && char_class(s, n, j, &len) == cls)
            j += len;
        return j;
    }
    /* '\s+(?!\S)' then '\s+': a whitespace run ending the text is taken whole; otherwise the last
     * whitespace character is left to prefix the next piece, unless it is the only one */
    size_t j = i, last = i;
    while (j < n && char_class(s, n, j, &len) == CL_SPACE)
        last = j, j += len;
    if (j == n || last == i)
        return j;
    return last;
}

asr_err_t asr__tok_presplit(const char *text, size_t len, asr__tok_piece_cb cb, void *user_data) {
    const uint8_t *s = (const uint8_t *)text;
    for (size_t i = 0; i < len;) {
        size_t e = piece_end(s, len, i);
        asr_err_t err = cb(i, e, user_data);
        if (err)
            return err;
        i = e;
    }
    return ASR_OK;
}

/* ---- BPE ---- */

typedef struct {
    int32_t rank, pos, right, left_id, right_id, merged;
} cand_t; /* a possible merge of symbols pos and right */

typedef struct {
    const asr_tokenizer_t *t;
    const uint8_t *text;
    int32_t *out; /* [len] result ids */
    int n_out;
    int32_t *sym, *next, *prev; /* [len] per-byte symbols: id (-1 once merged away), links */
    cand_t *heap;               /* [3 * len] */
    int n_heap;
} bpe_t;

static bool cand_less(const cand_t *a, const cand_t *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static void heap_push(bpe_t *b, int32_t pos, int32_t right) {
    const asr__tok_merge_t *m = asr__tok_merge_find(b->t, b->sym[pos], b->sym[right]);
    if (!m)
        return;
    cand_t c = {m->rank, pos, right, b->sym[pos], b->sym[right], m->merged};
    int i = b->n_heap++;
    while (i > 0 && cand_less(&c, &b->heap[(i - 1) / 2])) {
        b->heap[i] = b->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    b->heap[i] = c;
}

static cand_t heap_pop(bpe_t *b) {
    cand_t top = b->heap[0], last = b->heap[--b->n_heap];
    int i = 0, n = b->n_heap;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && cand_less(&b->heap[c + 1], &b->heap[c]))
            c++;
        if (!cand_less(&b->heap[c], &last))
            break;
        b->heap[i] = b->heap[c];
        i = c;
    }
    if (n)
        b->heap[i] = last;
    return top;
}

/* Merges the piece text[start, end) and appends its ids to b->out. Positions are relative to the
 * piece so the per-byte arrays are reused. Stale candidates (either symbol changed since the push)
 * are skipped; symbol ids only grow by merging, so (left id, link, right id) identifies a state. */
static asr_err_t bpe_piece(size_t start, size_t end, void *user_data) {
    bpe_t *b = user_data;
    int32_t m = (int32_t)(end - start);
    for (int32_t i = 0; i < m; i++) {
        b->sym[i] = b->t->byte_id[b->text[start + (size_t)i]];
        b->prev[i] = i - 1;
        b->next[i] = i + 1 < m ? i + 1 : -1;
    }
    b->n_heap = 0;
    for (int32_t i = 0; i + 1 < m; i++)
        heap_push(b, i, i + 1);
    while (b->n_heap > 0) {
        cand_t c = heap_pop(b);
        if (b->sym[c.pos] != c.left_id || b->next[c.pos] != c.right ||
            b->sym[c.right] != c.right_id)
            continue;
        b->sym[c.pos] = c.merged;
        b->sym[c.right] = -1;
        int32_t nx = b->next[c.right];
        b->next[c.pos] = nx;
        if (nx >= 0)
            b->prev[nx] = c.pos;
        if (b->prev[c.pos] >= 0)
            heap_push(b, b->prev[c.pos], c.pos);
        if (nx >= 0)
            heap_push(b, c.pos, nx);
    }
    for (int32_t i = 0; i >= 0; i = b->next[i])
        b->out[b->n_out++] = b->sym[i];
    return ASR_OK;
}

asr_err_t asr_tokenizer_encode(const asr_tokenizer_t *t, const char *text, int32_t **ids, int *n) {
    *ids = NULL;
    *n = 0;
    if (!t || !text)
        return ASR_ERR_INVALID;
    size_t len = strnlen(text, ASR_TOKENIZER_MAX_TEXT + 1);
    if (len > ASR_TOKENIZER_MAX_TEXT)
        return ASR_ERR_INVALID;
    if (len == 0)
        return ASR_OK;
    bpe_t b = {.t = t, .text = (const uint8_t *)text};
    /* every array is sized for the whole text (<= 64 KB), so one allocation serves all pieces; a
     * piece of m bytes pushes at most (m - 1) + 2 (m - 1) candidates */
    b.out = asr_malloc(len * sizeof *b.out);
    int32_t *links = asr_malloc(3 * len * sizeof *links);
    b.heap = asr_malloc(3 * len * sizeof *b.heap);
    asr_err_t err = ASR_ERR_NOMEM;
    if (!b.out || !links || !b.heap)
        goto done;
    b.sym = links, b.next = links + len, b.prev = links + 2 * len;
    err = asr__tok_presplit(text, len, bpe_piece, &b);
done:
    free(links);
    free(b.heap);
    if (err) {
        free(b.out);
        return err;
    }
    *ids = b.out;
    *n = b.n_out;
    return ASR_OK;
}
