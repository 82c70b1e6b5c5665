/* fuzz_multipart: the streaming multipart/form-data parser (src/http/multipart.c).
 *
 * Input: the first line is a Content-Type header value, the rest is the body. Beyond "no crash,
 * no leak, no UB", a differential check: the body fed whole, byte by byte, and in chunks of
 * pseudo-random sizes must give the same events (part starts with their names, the concatenated
 * part data, part ends) and the same result. Seeds: tests/fuzz/corpus/multipart/. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "http/multipart.h"

static int on_begin(const char *name, const char *filename, const char *ctype, void *ud) {
    asr_buf_t *t = ud;
    if (strlen(name) > ASR_MP_MAX_NAME || (filename && strlen(filename) > ASR_MP_MAX_NAME) ||
        strlen(ctype) > ASR_MP_MAX_NAME)
        abort();
    asr_buf_printf(t,
                   "\x01"
                   "B%s\x02%s\x02%s\x01",
                   name, filename ? filename : "\x03", ctype);
    return 0;
}

static int on_data(const char *d, size_t n, void *ud) {
    if (n == 0)
        abort(); /* the parser promises non-empty chunks */
    asr_buf_append(ud, d, n);
    return 0;
}

static int on_end(void *ud) {
    asr_buf_puts(ud, "\x01"
                     "E\x01");
    return 0;
}

static const asr_multipart_cbs_t g_cbs = {on_begin, on_data, on_end};

/* Parses body in chunks: step 0 = whole, else sizes from a xorshift seeded by `seed`. */
static int run(const char *boundary, const uint8_t *body, size_t len, uint32_t seed, int step,
               asr_buf_t *t) {
    asr_multipart_t *mp = asr_multipart_create(boundary, &g_cbs, t);
    if (!mp)
        abort(); /* asr_multipart_boundary accepted it */
    int rc = 0;
    size_t off = 0;
    while (off < len && rc == 0) {
        size_t n = len - off;
        if (step == 1)
            n = 1;
        else if (step > 1) {
            seed ^= seed << 13, seed ^= seed >> 17, seed ^= seed << 5;
            size_t k = 1 + seed % 97;
            n = k < n ? k : n;
        }
        rc = asr_multipart_feed(mp, (const char *)body + off, n);
        off += n;
    }
    if (rc == 0)
        rc = asr_multipart_finish(mp);
    asr_buf_printf(t,
                   "\x01"
                   "R%d",
                   rc);
    (void)asr_multipart_errmsg(mp);
    asr_multipart_destroy(mp);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *nl = memchr(data, '\n', size);
    if (!nl || nl - data > 1024)
        return 0;
    size_t hl = (size_t)(nl - data);
    char *ct = malloc(hl + 1);
    memcpy(ct, data, hl);
    ct[hl] = 0;
    if (hl && ct[hl - 1] == '\r')
        ct[hl - 1] = 0;
    char boundary[ASR_MP_MAX_BOUNDARY + 1];
    if (asr_multipart_boundary(ct, boundary, sizeof boundary) == ASR_OK) {
        const uint8_t *body = nl + 1;
        size_t len = size - hl - 1;
        asr_buf_t a, b, c;
        asr_buf_init(&a);
        asr_buf_init(&b);
        asr_buf_init(&c);
        run(boundary, body, len, 0, 0, &a);
        run(boundary, body, len, 0, 1, &b);
        run(boundary, body, len, 0x9e3779b9u ^ (uint32_t)len, 2, &c);
        if (a.len != b.len || a.len != c.len || memcmp(a.data, b.data, a.len) ||
            memcmp(a.data, c.data, a.len))
            abort();
        asr_buf_free(&a);
        asr_buf_free(&b);
        asr_buf_free(&c);
    }
    free(ct);
    return 0;
}
