/* tokenizer_json: a small, strict, streaming JSON reader for the shapes the tokenizer loads:
 * vocabulary.json (a top-level array of strings), tokenizer.json's model.merges (CTranslate2
 * directories: the rest is skipped) or model.vocab + model.merges + added_tokens (Hugging Face
 * directories), and the {string: id} objects vocab.json and added_tokens.json.
 *
 * Why not jansson: it builds every node, and tokenizer.json (2-4 MB: a 50k-key vocab object, 50k
 * merges, 1.6k added-token objects) takes ~150 ms to parse that way; this reader skips what it does
 * not need and decodes strings into one scratch buffer, ~10x faster.
 *
 * Invariants: input is untrusted (fuzzed). Strings must be valid UTF-8 without NUL (raw or \u0000)
 * and without unpaired surrogates, as jansson requires; nesting is limited to JSON_MAX_DEPTH; the
 * whole input must be one value plus whitespace. Every failure returns ASR_ERR_MODEL with a
 * one-line reason and byte offset. */
#include <string.h>
#include "engine/tokenizer_int.h"

#define JSON_MAX_DEPTH 64

typedef struct {
    const char *start, *p, *end;
    char *errbuf;
    size_t errbuf_len;
    char *s; /* decoded string scratch; capacity >= input length + 1, so it never overflows */
    size_t s_len;
    char *s2; /* second scratch (first string of a ["a", "b"] merge) */
    size_t s2_len;
} jr_t;

static asr_err_t jr_fail(jr_t *r, const char *what) {
    asr_errf(r->errbuf, r->errbuf_len, "%s at byte %zu", what, (size_t)(r->p - r->start));
    return ASR_ERR_MODEL;
}

static int jr_peek(jr_t *r) {
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
        r->p++;
    return r->p < r->end ? (unsigned char)*r->p : -1;
}

static bool jr_eat(jr_t *r, char c) {
    if (jr_peek(r) != (unsigned char)c)
        return false;
    r->p++;
    return true;
}

static int hex4(const char *p) {
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

static size_t put_utf8(char *o, uint32_t cp) {
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Decodes a \uXXXX escape (p at the backslash, 6 bytes available checked by caller) and a following
 * low surrogate if needed. */
static asr_err_t jr_unicode_escape(jr_t *r, uint32_t *cp) {
    int hi = r->end - r->p >= 6 ? hex4(r->p + 2) : -1;
    if (hi < 0)
        return jr_fail(r, "bad \\u escape");
    r->p += 6;
    if (hi >= 0xDC00 && hi <= 0xDFFF)
        return jr_fail(r, "unpaired surrogate");
    if (hi >= 0xD800 && hi <= 0xDBFF) {
        int lo = r->end - r->p >= 6 && r->p[0] == '\\' && r->p[1] == 'u' ? hex4(r->p + 2) : -1;
        if (lo < 0xDC00 || lo > 0xDFFF)
            return jr_fail(r, "unpaired surrogate");
        r->p += 6;
        *cp = 0x10000 + (((uint32_t)hi - 0xD800) << 10) + ((uint32_t)lo - 0xDC00);
        return ASR_OK;
    }
    if (hi == 0)
        return jr_fail(r, "NUL in string");
    *cp = (uint32_t)hi;
    return ASR_OK;
}

/* Parses the string at r->p (after whitespace) into r->s / r->s_len. */
static asr_err_t jr_string(jr_t *r) {
    if (jr_peek(r) != '"')
        return jr_fail(r, "expected string");
    r->p++;
    size_t o = 0;
    for (;;) {
        if (r->p >= r->end)
            return jr_fail(r, "unterminated string");
        unsigned char c = (unsigned char)*r->p;
        if (c == '"') {
            r->p++;
            break;
        }
        if (c < 0x20)
            return jr_fail(r, c ? "control character in string" : "NUL in string");
        if (c == '\\') {
            if (r->end - r->p < 2)
                return jr_fail(r, "unterminated string");
            char e = r->p[1], v = 0;
            switch (e) {
            case '"':
                v = '"';
                break;
            case '\\':
                v = '\\';
                break;
            case '/':
                v = '/';
                break;
            case 'b':
                v = '\b';
                break;
            case 'f':
                v = '\f';
                break;
            case 'n':
                v = '\n';
                break;
            case 'r':
                v = '\r';
                break;
            case 't':
                v = '\t';
                break;
            case 'u': {
                uint32_t cp = 0;
                asr_err_t err = jr_unicode_escape(r, &cp);
                if (err)
                    return err;
                o += put_utf8(r->s + o, cp);
                continue;
            }
            default:
                return jr_fail(r, "bad escape");
            }
            r->s[o++] = v;
            r->p += 2;
            continue;
        }
        if (c < 0x80) {
            r->s[o++] = (char)c;
            r->p++;
            continue;
        }
        uint32_t cp;
        int k = asr_utf8_next((const uint8_t *)r->p, (size_t)(r->end - r->p), &cp);
        if (k < 0)
            return jr_fail(r, "invalid UTF-8 in string");
        memcpy(r->s + o, r->p, (size_t)k);
        o += (size_t)k;
        r->p += k;
    }
    r->s[o] = 0;
    r->s_len = o;
    return ASR_OK;
}

static asr_err_t jr_literal(jr_t *r, const char *lit) {
    size_t n = strlen(lit);
    if ((size_t)(r->end - r->p) < n || memcmp(r->p, lit, n) != 0)
        return jr_fail(r, "invalid literal");
    r->p += n;
    return ASR_OK;
}

static asr_err_t jr_number(jr_t *r) {
    const char *q = r->p;
    if (q < r->end && *q == '-')
        q++;
    int digits = 0;
    while (q < r->end && ((*q >= '0' && *q <= '9') || *q == '.' || *q == 'e' || *q == 'E' ||
                          *q == '+' || *q == '-')) {
        digits += *q >= '0' && *q <= '9';
        q++;
    }
    if (!digits)
        return jr_fail(r, "unexpected character");
    r->p = q;
    return ASR_OK;
}

/* A non-negative integer id (no fraction or exponent) below 2^31. */
static asr_err_t jr_int(jr_t *r, int64_t *v) {
    if (jr_peek(r) < '0' || jr_peek(r) > '9')
        return jr_fail(r, "expected a non-negative integer id");
    int64_t x = 0;
    while (r->p < r->end && *r->p >= '0' && *r->p <= '9') {
        x = x * 10 + (*r->p++ - '0');
        if (x > INT32_MAX)
            return jr_fail(r, "id too large");
    }
    if (r->p < r->end && (*r->p == '.' || *r->p == 'e' || *r->p == 'E'))
        return jr_fail(r, "expected an integer id");
    *v = x;
    return ASR_OK;
}

static asr_err_t jr_skip(jr_t *r, int depth);

/* Reads one item of a container (an array's element, an object's value: its key is in r->s). */
typedef asr_err_t (*jr_item_fn)(jr_t *r, void *ctx);

/* Walks an array or an object: its opening bracket must come next (else the error not_open), then
 * items separated by ',' up to the closing bracket (else bad_sep, or the generic message). For an
 * object each key (into r->s) and its ':' are read before item() reads the value. */
static asr_err_t jr_each(jr_t *r, bool object, const char *not_open, const char *bad_sep,
                         jr_item_fn item, void *ctx) {
    char close = object ? '}' : ']';
    if (!jr_eat(r, object ? '{' : '['))
        return jr_fail(r, not_open);
    if (jr_eat(r, close))
        return ASR_OK;
    for (;;) {
        asr_err_t err;
        if (object) {
            if ((err = jr_string(r)))
                return err;
            if (!jr_eat(r, ':'))
                return jr_fail(r, "expected ':'");
        }
        if ((err = item(r, ctx)))
            return err;
        if (jr_eat(r, ','))
            continue;
        if (jr_eat(r, close))
            return ASR_OK;
        return jr_fail(r, bad_sep  ? bad_sep
                          : object ? "expected ',' or '}'"
                                   : "expected ',' or ']'");
    }
}

static asr_err_t jr_skip_item(jr_t *r, void *depth) { return jr_skip(r, *(int *)depth + 1); }

/* Skips (and validates) one value. */
static asr_err_t jr_skip(jr_t *r, int depth) {
    if (depth > JSON_MAX_DEPTH)
        return jr_fail(r, "nesting too deep");
    switch (jr_peek(r)) {
    case '"':
        return jr_string(r);
    case '{':
    case '[':
        return jr_each(r, jr_peek(r) == '{', NULL, NULL, jr_skip_item, &depth);
    case 't':
        return jr_literal(r, "true");
    case 'f':
        return jr_literal(r, "false");
    case 'n':
        return jr_literal(r, "null");
    case -1:
        return jr_fail(r, "unexpected end of input");
    default:
        return jr_number(r);
    }
}

static asr_err_t jr_end(jr_t *r) {
    return jr_peek(r) == -1 ? ASR_OK : jr_fail(r, "trailing data after JSON value");
}

static asr_err_t jr_open(jr_t *r, const char *buf, size_t len, bool two, char *errbuf,
                         size_t errbuf_len) {
    memset(r, 0, sizeof *r);
    r->start = r->p = buf;
    r->end = buf + len;
    r->errbuf = errbuf;
    r->errbuf_len = errbuf_len;
    r->s = asr_malloc(len + 1);
    r->s2 = two ? asr_malloc(len + 1) : NULL;
    if (!r->s || (two && !r->s2)) {
        asr_errf(errbuf, errbuf_len, "out of memory reading JSON");
        return ASR_ERR_NOMEM;
    }
    return ASR_OK;
}

static void jr_close(jr_t *r) {
    free(r->s);
    free(r->s2);
}

typedef struct {
    asr__json_str_cb cb;
    void *user_data;
} str_item_t;

static asr_err_t jr_str_item(jr_t *r, void *ctx) {
    str_item_t *c = ctx;
    asr_err_t err = jr_string(r);
    return err ? err : c->cb(r->s, r->s_len, c->user_data);
}

asr_err_t asr__json_string_array(const char *buf, size_t len, asr__json_str_cb cb, void *user_data,
                                 char *errbuf, size_t errbuf_len) {
    jr_t r;
    str_item_t c = {cb, user_data};
    asr_err_t err = jr_open(&r, buf, len, false, errbuf, errbuf_len);
    if (!err)
        err = jr_each(&r, false, "expected a JSON array of strings", NULL, jr_str_item, &c);
    if (!err)
        err = jr_end(&r);
    jr_close(&r);
    return err;
}

/* One merge: "a b" or ["a", "b"]. */
static asr_err_t jr_merge(jr_t *r, asr__json_merge_cb cb, void *user_data) {
    asr_err_t err;
    if (jr_peek(r) == '[') {
        r->p++;
        if ((err = jr_string(r)))
            return err;
        char *tmp = r->s2;
        r->s2 = r->s, r->s = tmp;
        r->s2_len = r->s_len;
        if (!jr_eat(r, ','))
            return jr_fail(r, "merge pair must have two strings");
        if ((err = jr_string(r)))
            return err;
        if (!jr_eat(r, ']'))
            return jr_fail(r, "merge pair must have two strings");
        return cb(r->s2, r->s2_len, r->s, r->s_len, user_data);
    }
    if ((err = jr_string(r)))
        return err;
    const char *sp = memchr(r->s, ' ', r->s_len);
    if (!sp || memchr(sp + 1, ' ', r->s_len - (size_t)(sp + 1 - r->s)))
        return jr_fail(r, "merge string must be \"a b\"");
    size_t a_len = (size_t)(sp - r->s);
    return cb(r->s, a_len, sp + 1, r->s_len - a_len - 1, user_data);
}

typedef struct {
    asr__json_merge_cb cb;
    void *user_data;
    bool have_model, have_merges, have_vocab, have_added;
    asr__json_entry_cb vocab_cb, added_cb; /* NULL: skipped (asr__json_merges) */
    int64_t added_id;                      /* the added token being read, -1 = no "id" yet */
    bool added_content;                    /* its "content" is in r->s2 */
} merges_ctx_t;

/* A member {string: id} of an object: the key is in r->s. */
static asr_err_t jr_entry_item(jr_t *r, void *ctx) {
    merges_ctx_t *c = ctx;
    int64_t id;
    asr_err_t err = jr_int(r, &id);
    return err ? err : c->vocab_cb(r->s, r->s_len, id, c->user_data);
}

/* A member of an added token object: "id" and "content" are kept, the rest skipped. */
static asr_err_t jr_added_member(jr_t *r, void *ctx) {
    merges_ctx_t *c = ctx;
    if (!strcmp(r->s, "id"))
        return jr_int(r, &c->added_id);
    if (!strcmp(r->s, "content")) {
        asr_err_t err = jr_string(r);
        if (err)
            return err;
        char *tmp = r->s2;
        r->s2 = r->s, r->s = tmp;
        r->s2_len = r->s_len;
        c->added_content = true;
        return ASR_OK;
    }
    return jr_skip(r, 3);
}

static asr_err_t jr_added_item(jr_t *r, void *ctx) {
    merges_ctx_t *c = ctx;
    c->added_id = -1, c->added_content = false;
    asr_err_t err = jr_each(r, true, "an added token must be an object", NULL, jr_added_member, c);
    if (err)
        return err;
    if (c->added_id < 0 || !c->added_content)
        return jr_fail(r, "an added token lacks \"id\" or \"content\"");
    return c->added_cb(r->s2, r->s2_len, c->added_id, c->user_data);
}

static asr_err_t jr_merge_item(jr_t *r, void *ctx) {
    merges_ctx_t *c = ctx;
    return jr_merge(r, c->cb, c->user_data);
}

/* A member of the "model" object: checks type == "BPE" (if present) and reads merges (first
 * occurrence). */
static asr_err_t jr_model_item(jr_t *r, void *ctx) {
    merges_ctx_t *c = ctx;
    asr_err_t err;
    if (!strcmp(r->s, "merges") && !c->have_merges) {
        if ((err = jr_each(r, false, "model.merges must be an array",
                           "expected ',' or ']' in merges", jr_merge_item, c)))
            return err;
        c->have_merges = true;
        return ASR_OK;
    }
    if (!strcmp(r->s, "vocab") && c->vocab_cb && !c->have_vocab) {
        c->have_vocab = true;
        return jr_each(r, true, "model.vocab must be an object", NULL, jr_entry_item, c);
    }
    if (!strcmp(r->s, "type")) {
        if ((err = jr_string(r)))
            return err;
        return strcmp(r->s, "BPE") != 0 ? jr_fail(r, "model.type is not BPE") : ASR_OK;
    }
    return jr_skip(r, 2);
}

/* A member of the top-level object: "model" (first occurrence) is read, the rest skipped. */
static asr_err_t jr_top_item(jr_t *r, void *ctx) {
    merges_ctx_t *c = ctx;
    if (!strcmp(r->s, "model") && !c->have_model) {
        c->have_model = true;
        return jr_each(r, true, "model must be an object", NULL, jr_model_item, c);
    }
    if (!strcmp(r->s, "added_tokens") && c->added_cb && !c->have_added) {
        c->have_added = true;
        return jr_each(r, false, "added_tokens must be an array", NULL, jr_added_item, c);
    }
    return jr_skip(r, 1);
}

asr_err_t asr__json_merges(const char *buf, size_t len, asr__json_merge_cb cb, void *user_data,
                           char *errbuf, size_t errbuf_len) {
    jr_t r;
    merges_ctx_t c = {.cb = cb, .user_data = user_data};
    asr_err_t err = jr_open(&r, buf, len, true, errbuf, errbuf_len);
    if (!err)
        err = jr_each(&r, true, "expected a JSON object", NULL, jr_top_item, &c);
    if (!err)
        err = jr_end(&r);
    if (!err && !c.have_merges) {
        asr_errf(errbuf, errbuf_len, "no model.merges");
        err = ASR_ERR_MODEL;
    }
    jr_close(&r);
    return err;
}

asr_err_t asr__json_hf_tokenizer(const char *buf, size_t len, asr__json_entry_cb vocab_cb,
                                 asr__json_merge_cb merge_cb, asr__json_entry_cb added_cb,
                                 void *user_data, char *errbuf, size_t errbuf_len) {
    jr_t r;
    merges_ctx_t c = {
        .cb = merge_cb, .user_data = user_data, .vocab_cb = vocab_cb, .added_cb = added_cb};
    asr_err_t err = jr_open(&r, buf, len, true, errbuf, errbuf_len);
    if (!err)
        err = jr_each(&r, true, "expected a JSON object", NULL, jr_top_item, &c);
    if (!err)
        err = jr_end(&r);
    if (!err && (!c.have_merges || !c.have_vocab)) {
        asr_errf(errbuf, errbuf_len, "no model.%s", c.have_vocab ? "merges" : "vocab");
        err = ASR_ERR_MODEL;
    }
    jr_close(&r);
    return err;
}

asr_err_t asr__json_str_int_object(const char *buf, size_t len, asr__json_entry_cb cb,
                                   void *user_data, char *errbuf, size_t errbuf_len) {
    jr_t r;
    merges_ctx_t c = {.user_data = user_data, .vocab_cb = cb};
    asr_err_t err = jr_open(&r, buf, len, false, errbuf, errbuf_len);
    if (!err)
        err = jr_each(&r, true, "expected a JSON object {string: id}", NULL, jr_entry_item, &c);
    if (!err)
        err = jr_end(&r);
    jr_close(&r);
    return err;
}
