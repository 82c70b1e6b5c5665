/* http: streaming multipart/form-data parser (see multipart.h).
 *
 * The body is treated as if preceded by CRLF, so every delimiter, the first included, is
 * "\r\n--" BOUNDARY. A boundary never contains CR (validated), so CR occurs in the delimiter only
 * at its first byte: after a mismatch at position k > 0 no suffix of the matched prefix can start
 * a new match, and the held bytes are exactly delim[0..k), which is why no look-behind buffer is
 * needed: they are re-emitted from the delimiter itself. */
#include "http/multipart.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/core.h"

typedef enum {
    MP_PREAMBLE, /* before the first delimiter: discarded */
    MP_AFTER,    /* just after a delimiter: "--" (close), padding then CRLF */
    MP_DASH,     /* saw one '-' after a delimiter */
    MP_PAD,      /* transport padding (SP/HT) before CRLF */
    MP_CR,       /* saw CR after a delimiter (and padding) */
    MP_HEADERS,  /* a part's header block */
    MP_BODY,     /* a part's content */
    MP_DONE,     /* after the close delimiter: epilogue, ignored */
    MP_STOPPED   /* error or callback stop */
} mp_state_t;

struct asr_multipart {
    asr_multipart_cbs_t cbs;
    void *ud;
    char delim[ASR_MP_MAX_BOUNDARY + 5]; /* "\r\n--" boundary */
    size_t dlen;
    size_t match; /* delimiter bytes matched and held back */
    mp_state_t state;
    int n_pad;
    size_t hlen;
    char hdr[ASR_MP_MAX_HEADERS + 1];
    int stop_code;
    char err[160];
};

static bool boundary_ok(const char *b, size_t n) {
    if (n < 1 || n > ASR_MP_MAX_BOUNDARY || b[n - 1] == ' ')
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)b[i];
        if (c < 0x20 || c >= 0x7f)
            return false;
    }
    return true;
}

/* Reads a parameter value (token or quoted-string) at *p into out; advances *p. */
static bool read_value(const char **p, char *out, size_t out_len) {
    const char *s = *p;
    size_t n = 0;
    if (*s == '"') {
        s++;
        while (*s && *s != '"') {
            if (*s == '\\' && (s[1] == '"' || s[1] == '\\'))
                s++;
            if (n + 1 >= out_len)
                return false;
            out[n++] = *s++;
        }
        if (*s != '"')
            return false;
        s++;
    } else {
        while (*s && *s != ';' && *s != ' ' && *s != '\t') {
            if (n + 1 >= out_len)
                return false;
            out[n++] = *s++;
        }
    }
    out[n] = 0;
    *p = s;
    return true;
}

/* Iterates `; key=value` parameters of a header value after its first token. Calls fn for each;
 * returns false on malformed input or when fn returns false. */
typedef bool (*param_fn)(const char *key, const char *value, void *ctx);
static bool each_param(const char *s, param_fn fn, void *ctx) {
    char key[64], val[ASR_MP_MAX_NAME * 3 + 1];
    for (;;) {
        while (*s == ' ' || *s == '\t')
            s++;
        if (!*s)
            return true;
        if (*s != ';')
            return false;
        s++;
        while (*s == ' ' || *s == '\t')
            s++;
        if (!*s)
            return true; /* trailing ';' */
        size_t k = 0;
        while (*s && *s != '=' && *s != ';' && *s != ' ' && *s != '\t') {
            if (k + 1 >= sizeof key)
                return false;
            key[k++] = *s++;
        }
        key[k] = 0;
        while (*s == ' ' || *s == '\t')
            s++;
        if (*s != '=' || !k)
            return false;
        s++;
        while (*s == ' ' || *s == '\t')
            s++;
        if (!read_value(&s, val, sizeof val) || !fn(key, val, ctx))
            return false;
    }
}

static bool boundary_param(const char *key, const char *value, void *ctx) {
    char **out = ctx;
    if (!strcasecmp(key, "boundary")) {
        if (*out[0]) /* two boundary parameters */
            return false;
        size_t n = strlen(value);
        if (!boundary_ok(value, n))
            return false;
        memcpy(out[0], value, n + 1);
    }
    return true;
}

asr_err_t asr_multipart_boundary(const char *ct, char *out, size_t out_len) {
    static const char type[] = "multipart/form-data";
    if (out_len < ASR_MP_MAX_BOUNDARY + 1)
        return ASR_ERR_INVALID;
    out[0] = 0;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    if (strncasecmp(ct, type, sizeof type - 1))
        return ASR_ERR_UNSUPPORTED;
    ct += sizeof type - 1;
    if (*ct && *ct != ';' && *ct != ' ' && *ct != '\t')
        return ASR_ERR_UNSUPPORTED; /* multipart/form-dataX */
    char *slot[1] = {out};
    if (!each_param(ct, boundary_param, slot) || !out[0]) {
        out[0] = 0;
        return ASR_ERR_INVALID;
    }
    return ASR_OK;
}

asr_multipart_t *asr_multipart_create(const char *boundary, const asr_multipart_cbs_t *cbs,
                                      void *user_data) {
    size_t n = strlen(boundary);
    if (!boundary_ok(boundary, n))
        return NULL;
    asr_multipart_t *mp = asr_xcalloc(1, sizeof *mp);
    mp->cbs = *cbs;
    mp->ud = user_data;
    memcpy(mp->delim, "\r\n--", 4);
    memcpy(mp->delim + 4, boundary, n);
    mp->dlen = n + 4;
    mp->match = 2; /* the virtual CRLF before the body */
    mp->state = MP_PREAMBLE;
    return mp;
}

void asr_multipart_destroy(asr_multipart_t *mp) { free(mp); }

const char *asr_multipart_errmsg(const asr_multipart_t *mp) { return mp->err; }

static int fail(asr_multipart_t *mp, const char *msg) {
    snprintf(mp->err, sizeof mp->err, "malformed multipart body: %s", msg);
    mp->state = MP_STOPPED;
    mp->stop_code = -1;
    return -1;
}

static int stop(asr_multipart_t *mp, int code) {
    if (code) {
        mp->state = MP_STOPPED;
        mp->stop_code = code;
    }
    return code;
}

/* Emits content bytes of the current part (discarded outside a body). */
static int emit(asr_multipart_t *mp, const char *d, size_t n) {
    if (mp->state != MP_BODY || !n || !mp->cbs.part_data_cb)
        return 0;
    return stop(mp, mp->cbs.part_data_cb(d, n, mp->ud));
}

/* ---- part headers ---- */

typedef struct {
    char name[ASR_MP_MAX_NAME + 1];
    char filename[ASR_MP_MAX_NAME + 1];
    bool has_name, has_filename, has_filename_ext;
    char ctype[ASR_MP_MAX_NAME + 1];
    bool bad;
} part_hdr_t;

static bool copy_bounded(char *dst, const char *src) {
    size_t n = strlen(src);
    if (n > ASR_MP_MAX_NAME)
        return false;
    memcpy(dst, src, n + 1);
    return true;
}

/* RFC 5987 ext-value: charset'lang'pct-encoded; only UTF-8 (and ASCII) are decoded. */
static bool decode_ext(const char *v, char *out) {
    const char *q1 = strchr(v, '\''), *q2 = q1 ? strchr(q1 + 1, '\'') : NULL;
    if (!q2 || (strncasecmp(v, "utf-8'", 6) && strncasecmp(v, "us-ascii'", 9)))
        return false;
    size_t n = 0;
    for (const char *s = q2 + 1; *s; s++) {
        int c = (unsigned char)*s;
        if (c == '%') {
            if (!isxdigit((unsigned char)s[1]) || !isxdigit((unsigned char)s[2]))
                return false;
            char hex[3] = {s[1], s[2], 0};
            c = (int)strtol(hex, NULL, 16);
            s += 2;
        }
        if (n >= ASR_MP_MAX_NAME || c == 0)
            return false;
        out[n++] = (char)c;
    }
    out[n] = 0;
    return true;
}

static bool disposition_param(const char *key, const char *value, void *ctx) {
    part_hdr_t *h = ctx;
    if (!strcasecmp(key, "name")) {
        if (h->has_name || !copy_bounded(h->name, value))
            return false;
        h->has_name = true;
    } else if (!strcasecmp(key, "filename*")) {
        if (!decode_ext(value, h->filename))
            return false;
        h->has_filename = h->has_filename_ext = true;
    } else if (!strcasecmp(key, "filename") && !h->has_filename_ext) {
        if (!copy_bounded(h->filename, value))
            return false;
        h->has_filename = true;
    }
    return true;
}

static int parse_header_line(asr_multipart_t *mp, char *line, part_hdr_t *h) {
    char *colon = strchr(line, ':');
    if (!colon || colon == line)
        return fail(mp, "part header line without a name");
    *colon = 0;
    char *v = colon + 1;
    while (*v == ' ' || *v == '\t')
        v++;
    size_t vl = strlen(v);
    while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
        v[--vl] = 0;
    if (!strcasecmp(line, "content-disposition")) {
        static const char fd[] = "form-data";
        if (strncasecmp(v, fd, sizeof fd - 1) ||
            (v[sizeof fd - 1] && v[sizeof fd - 1] != ';' && v[sizeof fd - 1] != ' '))
            return fail(mp, "part disposition is not form-data");
        if (!each_param(v + sizeof fd - 1, disposition_param, h))
            return fail(mp, "bad Content-Disposition parameters");
    } else if (!strcasecmp(line, "content-type")) {
        if (!copy_bounded(h->ctype, v))
            return fail(mp, "part Content-Type too long");
    }
    return 0;
}

/* Parses the complete header block mp->hdr[0..hlen) and starts the part. */
static int begin_part(asr_multipart_t *mp) {
    part_hdr_t h;
    memset(&h, 0, sizeof h);
    mp->hdr[mp->hlen] = 0;
    if (memchr(mp->hdr, 0, mp->hlen))
        return fail(mp, "NUL byte in part headers");
    /* unfold obsolete continuation lines, drop CRs */
    char *src = mp->hdr, *dst = mp->hdr;
    for (; *src; src++) {
        if (*src == '\r')
            continue;
        if (*src == '\n' && (src[1] == ' ' || src[1] == '\t')) {
            *dst++ = ' ';
            continue;
        }
        *dst++ = *src;
    }
    *dst = 0;
    for (char *line = mp->hdr; *line;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = 0;
        if (*line && parse_header_line(mp, line, &h) < 0)
            return -1;
        if (!nl)
            break;
        line = nl + 1;
    }
    if (!h.has_name)
        return fail(mp, "a part has no Content-Disposition name");
    mp->state = MP_BODY;
    mp->match = 0;
    if (!mp->cbs.part_begin_cb)
        return 0;
    return stop(mp,
                mp->cbs.part_begin_cb(h.name, h.has_filename ? h.filename : NULL, h.ctype, mp->ud));
}

static bool headers_complete(const asr_multipart_t *mp) {
    const char *h = mp->hdr;
    size_t n = mp->hlen;
    if (n == 0 || h[n - 1] != '\n')
        return false;
    if ((n == 1) || (n == 2 && h[0] == '\r'))
        return true; /* empty header block */
    return h[n - 2] == '\n' || (n >= 3 && h[n - 2] == '\r' && h[n - 3] == '\n');
}

/* ---- the state machine ---- */

/* Scans for the delimiter in PREAMBLE/BODY from data[*i]. Returns 0 (or a stop code) and leaves
 * *i after the delimiter when found (state MP_AFTER), or at len. */
static int scan(asr_multipart_t *mp, const char *data, size_t len, size_t *i) {
    while (*i < len) {
        if (mp->match == 0) {
            const char *cr = memchr(data + *i, '\r', len - *i);
            size_t end = cr ? (size_t)(cr - data) : len;
            int rc = emit(mp, data + *i, end - *i);
            *i = end;
            if (rc || !cr)
                return rc;
            mp->match = 1;
            (*i)++;
            continue;
        }
        if (data[*i] == mp->delim[mp->match]) {
            (*i)++;
            if (++mp->match == mp->dlen) {
                mp->match = 0;
                int rc = 0;
                if (mp->state == MP_BODY && mp->cbs.part_end_cb)
                    rc = stop(mp, mp->cbs.part_end_cb(mp->ud));
                if (!rc)
                    mp->state = MP_AFTER;
                return rc;
            }
            continue;
        }
        size_t held = mp->match; /* mismatch: the held prefix was content */
        mp->match = 0;
        int rc = emit(mp, mp->delim, held);
        if (rc)
            return rc;
    }
    return 0;
}

/* One byte of the delimiter line or the header block. */
static int step(asr_multipart_t *mp, char c) {
    switch (mp->state) {
    case MP_AFTER:
        if (c == '-')
            mp->state = MP_DASH;
        else if (c == ' ' || c == '\t')
            mp->state = MP_PAD, mp->n_pad = 1;
        else if (c == '\r')
            mp->state = MP_CR;
        else if (c == '\n')
            mp->state = MP_HEADERS, mp->hlen = 0;
        else
            return fail(mp, "boundary not followed by CRLF");
        return 0;
    case MP_DASH:
        if (c != '-')
            return fail(mp, "boundary followed by a single '-'");
        mp->state = MP_DONE;
        return 0;
    case MP_PAD:
        if (c == '\r')
            mp->state = MP_CR;
        else if ((c != ' ' && c != '\t') || ++mp->n_pad > 256)
            return fail(mp, "bad padding after boundary");
        return 0;
    case MP_CR:
        if (c != '\n')
            return fail(mp, "boundary line ends in CR without LF");
        mp->state = MP_HEADERS;
        mp->hlen = 0;
        return 0;
    case MP_HEADERS:
        if (mp->hlen >= ASR_MP_MAX_HEADERS)
            return fail(mp, "part headers longer than 8 KiB");
        mp->hdr[mp->hlen++] = c;
        return headers_complete(mp) ? begin_part(mp) : 0;
    default:
        return 0;
    }
}

int asr_multipart_feed(asr_multipart_t *mp, const char *data, size_t len) {
    size_t i = 0;
    while (i < len) {
        switch (mp->state) {
        case MP_STOPPED:
            return mp->stop_code;
        case MP_DONE:
            return 0; /* epilogue */
        case MP_PREAMBLE:
        case MP_BODY: {
            int rc = scan(mp, data, len, &i);
            if (rc)
                return rc;
            break;
        }
        default: {
            int rc = step(mp, data[i++]);
            if (rc)
                return rc;
        }
        }
    }
    return mp->state == MP_STOPPED ? mp->stop_code : 0;
}

int asr_multipart_finish(asr_multipart_t *mp) {
    if (mp->state == MP_STOPPED)
        return mp->stop_code;
    if (mp->state != MP_DONE)
        return fail(mp, mp->state == MP_PREAMBLE ? "no boundary found in the body"
                                                 : "truncated body (no closing boundary)");
    return 0;
}
