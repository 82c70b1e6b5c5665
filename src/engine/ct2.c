/* engine: CTranslate2 model.bin parser. Layout (little-endian, no padding):
 *   u32 version; [v>=2] str spec_name, u32 spec_revision; u32 n_vars;
 *   n_vars × { str name; u8 rank; u32 dims[rank]; [v>=4] u8 dtype, u32 n_bytes | [v<4] u8 item
 *   size, u32 n_elems; bytes } ; [v>=3] u32 n_aliases × { str alias; str target }
 * where str = u16 length (counting the trailing NUL) + bytes. */
#include <string.h>

#include "core/core.h"
#include "engine/ct2.h"

typedef struct {
    const uint8_t *p, *end;
    int bad;
} cursor_t;

/* The next n bytes, or NULL (and the cursor marked bad, not moved) when fewer remain. */
static const uint8_t *take(cursor_t *c, size_t n) {
    if ((size_t)(c->end - c->p) < n) {
        c->bad = 1;
        return NULL;
    }
    const uint8_t *q = c->p;
    c->p += n;
    return q;
}
static uint32_t rd_u32(cursor_t *c) {
    const uint8_t *q = take(c, 4);
    return q ? (uint32_t)q[0] | (uint32_t)q[1] << 8 | (uint32_t)q[2] << 16 | (uint32_t)q[3] << 24
             : 0;
}
static unsigned rd_u16(cursor_t *c) {
    const uint8_t *q = take(c, 2);
    return q ? (unsigned)q[0] | (unsigned)q[1] << 8 : 0;
}
static unsigned rd_u8(cursor_t *c) {
    const uint8_t *q = take(c, 1);
    return q ? *q : 0;
}
static const char *rd_str(cursor_t *c) {
    unsigned n = rd_u16(c);
    if (c->bad || n == 0 || (size_t)(c->end - c->p) < n || c->p[n - 1] != 0) {
        c->bad = 1;
        return NULL;
    }
    const char *s = (const char *)c->p;
    if (strlen(s) != n - 1) {
        c->bad = 1;
        return NULL;
    }
    c->p += n;
    return s;
}

asr_err_t asr_ct2_parse(const uint8_t *data, size_t len, asr_wfile_t *out, char *errbuf,
                        size_t errbuf_len) {
    out->format = ASR_WFMT_CT2;
    cursor_t c = {data, data + len, 0};
    out->version = rd_u32(&c);
    if (c.bad) {
        asr_errf(errbuf, errbuf_len, "model.bin is truncated (%zu bytes)", len);
        return ASR_ERR_MODEL;
    }
    if (out->version < 1 || out->version > 6) {
        asr_errf(errbuf, errbuf_len, "model.bin: unsupported CTranslate2 binary version %u",
                 out->version);
        return ASR_ERR_MODEL;
    }
    out->spec_name = "";
    if (out->version >= 2) {
        out->spec_name = rd_str(&c);
        out->spec_revision = rd_u32(&c);
    }
    uint32_t n_vars = rd_u32(&c);
    if (c.bad) {
        asr_errf(errbuf, errbuf_len, "model.bin: truncated or corrupt header");
        return ASR_ERR_MODEL;
    }
    /* each variable needs at least 3+1+1+4 bytes: reject absurd counts before allocating */
    if (n_vars > (size_t)(c.end - c.p) / 9) {
        asr_errf(errbuf, errbuf_len, "model.bin: corrupt header (%u variables)", n_vars);
        return ASR_ERR_MODEL;
    }
    out->vars = asr_calloc(n_vars ? n_vars : 1, sizeof *out->vars);
    out->cap_vars = (int)n_vars;
    if (!out->vars)
        return ASR_ERR_NOMEM;
    for (uint32_t i = 0; i < n_vars; i++) {
        asr_wvar_t *v = &out->vars[i];
        v->name = rd_str(&c);
        v->rank = (int)rd_u8(&c);
        if (c.bad)
            goto truncated;
        if (v->rank > ASR_W_MAX_RANK) {
            asr_errf(errbuf, errbuf_len, "model.bin: variable %s has rank %d", v->name, v->rank);
            goto fail;
        }
        v->n_elems = 1;
        for (int d = 0; d < v->rank; d++) {
            v->dims[d] = rd_u32(&c);
            if (v->dims[d] > ((int64_t)1 << 40) / (v->n_elems ? v->n_elems : 1)) {
                asr_errf(errbuf, errbuf_len, "model.bin: variable %s is too large",
                         v->name ? v->name : "?");
                goto fail;
            }
            v->n_elems *= v->dims[d];
        }
        if (out->version >= 4) {
            unsigned dt = rd_u8(&c);
            if (dt > 5) {
                asr_errf(errbuf, errbuf_len, "model.bin: variable %s has unknown dtype %u",
                         v->name ? v->name : "?", dt);
                goto fail;
            }
            v->dtype = (asr_wdtype_t)dt;
            v->n_bytes = rd_u32(&c);
        } else {
            unsigned item = rd_u8(&c);
            uint32_t count = rd_u32(&c);
            v->dtype = item == 4 ? ASR_WD_F32 : item == 2 ? ASR_WD_I16 : ASR_WD_I8;
            if (item != 4 && item != 2 && item != 1) {
                asr_errf(errbuf, errbuf_len, "model.bin: variable %s has item size %u", v->name,
                         item);
                goto fail;
            }
            v->n_bytes = (size_t)count * item;
        }
        if (c.bad)
            goto truncated;
        if (v->n_bytes != (size_t)v->n_elems * asr_wdtype_size(v->dtype)) {
            asr_errf(errbuf, errbuf_len, "model.bin: variable %s: %zu bytes for %lld elements",
                     v->name, v->n_bytes, (long long)v->n_elems);
            goto fail;
        }
        if ((size_t)(c.end - c.p) < v->n_bytes) {
            asr_errf(errbuf, errbuf_len,
                     "model.bin is truncated: variable %u/%u (%s) needs %zu bytes, %zu left", i + 1,
                     n_vars, v->name, v->n_bytes, (size_t)(c.end - c.p));
            goto fail;
        }
        v->data = c.p;
        c.p += v->n_bytes;
        out->n_vars = (int)i + 1;
    }
    if (out->version >= 3) {
        uint32_t n_alias = rd_u32(&c);
        if (c.bad)
            goto truncated;
        if (n_alias > (size_t)(c.end - c.p) / 6) {
            asr_errf(errbuf, errbuf_len, "model.bin: corrupt alias table");
            goto fail;
        }
        out->aliases = asr_calloc(n_alias ? n_alias : 1, sizeof *out->aliases);
        if (!out->aliases)
            goto nomem;
        for (uint32_t i = 0; i < n_alias; i++) {
            out->aliases[i].alias = rd_str(&c);
            out->aliases[i].target = rd_str(&c);
            if (c.bad)
                goto truncated;
            out->n_aliases = (int)i + 1;
        }
    }
    if (c.p != c.end) {
        asr_errf(errbuf, errbuf_len, "model.bin: %zu unexpected trailing bytes",
                 (size_t)(c.end - c.p));
        goto fail;
    }
    return ASR_OK;
truncated:
    asr_errf(errbuf, errbuf_len, "model.bin is truncated or corrupt (at byte %zu of %zu)",
             (size_t)(c.p - data), len);
fail:
    return ASR_ERR_MODEL;
nomem:
    return ASR_ERR_NOMEM;
}
