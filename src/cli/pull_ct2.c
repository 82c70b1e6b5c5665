/* cli/pull: structural check of a CTranslate2 model.bin (docs: WHISPER-FACTS.md §1).
 *
 * Layout, little-endian, unaligned: uint32 binary_version; (v>=2) string spec_name, uint32
 * spec_revision; uint32 num_variables; per variable: string name, uint8 rank, uint32 dims[rank],
 * (v>=4) uint8 dtype + uint32 num_bytes, (v<4) uint8 item_size + uint32 num_elements; the bytes;
 * then (v>=3) uint32 num_aliases and pairs of strings. A string is a uint16 length that counts its
 * trailing NUL, then the bytes.
 *
 * Only headers are read; data is skipped with fseeko, so checking a 500 MB file reads a few KB.
 * A file that ends early is reported as truncated with the variable it ends in and a lower bound
 * on the full length, which is how a model split over several packages, with parts missing, is
 * told apart from a corrupt one. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/pull_int.h"

#define CT2_MAX_VERSION 6
#define CT2_MAX_RANK 8

typedef struct {
    FILE *f;
    uint64_t pos;
    uint64_t len;
} rd_t;

/* 0 ok, 1 the file ends first, -1 read error. */
static int rd(rd_t *r, void *p, size_t n) {
    if (n > r->len - r->pos)
        return 1;
    if (fread(p, 1, n, r->f) != n)
        return -1;
    r->pos += n;
    return 0;
}

static int rd_u8(rd_t *r, uint8_t *v) { return rd(r, v, 1); }
static int rd_u16(rd_t *r, uint16_t *v) {
    unsigned char b[2];
    int e = rd(r, b, 2);
    *v = (uint16_t)(b[0] | (b[1] << 8));
    return e;
}
static int rd_u32(rd_t *r, uint32_t *v) {
    unsigned char b[4];
    int e = rd(r, b, 4);
    *v = (uint32_t)b[0] | ((uint32_t)b[1] << 8) | ((uint32_t)b[2] << 16) | ((uint32_t)b[3] << 24);
    return e;
}

/* Reads a string into out (truncated to out_len-1 when longer). 2 = malformed. */
static int rd_str(rd_t *r, char *out, size_t out_len) {
    uint16_t n;
    int e = rd_u16(r, &n);
    if (e)
        return e;
    if (n == 0)
        return 2;
    char buf[65536];
    if ((e = rd(r, buf, n)) != 0)
        return e;
    if (buf[n - 1] != '\0' || memchr(buf, '\0', n - 1))
        return 2;
    size_t k = (size_t)n - 1 < out_len - 1 ? (size_t)n - 1 : out_len - 1;
    memcpy(out, buf, k);
    out[k] = '\0';
    return 0;
}

static const unsigned dtype_len[] = {4, 1, 2, 4, 2, 2}; /* f32 i8 i16 i32 f16 bf16 */

/* One variable header; on success *data_len is the byte count that follows. */
static int rd_var(rd_t *r, uint32_t version, char *name, size_t name_len, uint64_t *data_len,
                  char *why, size_t why_len) {
    uint8_t rank, kind;
    uint32_t dims[CT2_MAX_RANK], count;
    int e = rd_str(r, name, name_len);
    if (e == 2)
        snprintf(why, why_len, "bad variable name");
    if (e || (e = rd_u8(r, &rank)) != 0)
        return e;
    if (rank > CT2_MAX_RANK) {
        snprintf(why, why_len, "variable %s has rank %u", name, rank);
        return 2;
    }
    uint64_t n_elem = 1;
    for (unsigned i = 0; i < rank; i++) {
        if ((e = rd_u32(r, &dims[i])) != 0)
            return e;
        n_elem *= dims[i];
        if (n_elem > (1ull << 40)) {
            snprintf(why, why_len, "variable %s has an absurd shape", name);
            return 2;
        }
    }
    if ((e = rd_u8(r, &kind)) != 0 || (e = rd_u32(r, &count)) != 0)
        return e;
    if (version >= 4) {
        if (kind >= sizeof(dtype_len) / sizeof(dtype_len[0])) {
            snprintf(why, why_len, "variable %s has unknown dtype %u", name, kind);
            return 2;
        }
        *data_len = count;
        if (n_elem * dtype_len[kind] != count) {
            snprintf(why, why_len, "variable %s: %u bytes do not match its shape (%llu x %u)", name,
                     count, (unsigned long long)n_elem, dtype_len[kind]);
            return 2;
        }
    } else {
        if (kind != 1 && kind != 2 && kind != 4) {
            snprintf(why, why_len, "variable %s has item size %u", name, kind);
            return 2;
        }
        *data_len = (uint64_t)count * kind;
        if (count != n_elem) {
            snprintf(why, why_len, "variable %s: %u elements do not match its shape", name, count);
            return 2;
        }
    }
    return 0;
}

static asr_err_t truncated(const char *path, asr__cli_ct2_info_t *info, uint64_t need, char *err,
                           size_t err_len) {
    info->truncated = true;
    info->needed_len = need > info->file_len ? need : info->file_len + 1;
    char where[96];
    if (info->n_vars == 0)
        snprintf(where, sizeof(where), "inside the file header");
    else if (info->n_vars_complete == info->n_vars)
        snprintf(where, sizeof(where), "inside the alias table after all %u variables",
                 info->n_vars);
    else
        snprintf(where, sizeof(where), "inside the header of variable %u of %u",
                 info->n_vars_complete + 1, info->n_vars);
    if (info->cut_var[0])
        asr_errf(err, err_len,
                 "%s is truncated: it has %llu bytes, but variable %u of %u (%s) needs bytes up to "
                 "%llu",
                 path, (unsigned long long)info->file_len, info->n_vars_complete + 1, info->n_vars,
                 info->cut_var, (unsigned long long)info->needed_len);
    else
        asr_errf(err, err_len, "%s is truncated: it ends at byte %llu, %s", path,
                 (unsigned long long)info->file_len, where);
    return ASR_ERR_MODEL;
}

static asr_err_t parse(rd_t *r, const char *path, asr__cli_ct2_info_t *info, char *err,
                       size_t err_len) {
    char why[256] = "";
    int e = rd_u32(r, &info->version);
    if (e == 0 && (info->version == 0 || info->version > CT2_MAX_VERSION)) {
        asr_errf(err, err_len, "%s: unsupported CTranslate2 binary version %u (1..%d known)", path,
                 info->version, CT2_MAX_VERSION);
        return ASR_ERR_MODEL;
    }
    if (e == 0 && info->version >= 2) {
        e = rd_str(r, info->spec_name, sizeof(info->spec_name));
        if (e == 0)
            e = rd_u32(r, &info->spec_revision);
    }
    if (e == 0)
        e = rd_u32(r, &info->n_vars);
    for (uint32_t i = 0; e == 0 && i < info->n_vars; i++) {
        uint64_t data_len = 0;
        info->cut_var[0] = '\0';
        e = rd_var(r, info->version, info->cut_var, sizeof(info->cut_var), &data_len, why,
                   sizeof(why));
        if (e == 1)
            return truncated(path, info, r->pos + 1, err, err_len);
        if (e == 0 && data_len > r->len - r->pos)
            return truncated(path, info, r->pos + data_len, err, err_len);
        if (e == 0 && fseeko(r->f, (off_t)data_len, SEEK_CUR) != 0)
            e = -1;
        r->pos += e == 0 ? data_len : 0;
        info->n_vars_complete += e == 0;
    }
    info->cut_var[0] = '\0';
    if (e == 0 && info->version >= 3) {
        char a[160], b[160];
        e = rd_u32(r, &info->n_aliases);
        for (uint32_t i = 0; e == 0 && i < info->n_aliases; i++) {
            e = rd_str(r, a, sizeof(a));
            if (e == 0)
                e = rd_str(r, b, sizeof(b));
        }
        if (e == 2)
            snprintf(why, sizeof(why), "bad alias table");
    }
    if (e == 1)
        return truncated(path, info, r->pos + 1, err, err_len);
    if (e == -1) {
        asr_errf(err, err_len, "read %s: %s", path, strerror(errno));
        return ASR_ERR_IO;
    }
    if (e == 2) {
        asr_errf(err, err_len, "%s is not a valid CTranslate2 model: %s", path, why);
        return ASR_ERR_MODEL;
    }
    if (r->pos != r->len) {
        asr_errf(err, err_len,
                 "%s is not a valid CTranslate2 model: %llu unexpected bytes after "
                 "the alias table",
                 path, (unsigned long long)(r->len - r->pos));
        return ASR_ERR_MODEL;
    }
    return ASR_OK;
}

asr_err_t asr__cli_ct2_check(const char *path, const char *label, asr__cli_ct2_info_t *info,
                             char *err, size_t err_len) {
    memset(info, 0, sizeof(*info));
    FILE *f = fopen(path, "rb");
    struct stat st;
    if (!f || fstat(fileno(f), &st) != 0) {
        int saved = errno;
        asr_errf(err, err_len, "cannot open %s: %s", path, strerror(saved));
        if (f)
            fclose(f);
        return saved == ENOENT ? ASR_ERR_NOT_FOUND : ASR_ERR_IO;
    }
    info->file_len = (uint64_t)st.st_size;
    rd_t r = {.f = f, .pos = 0, .len = info->file_len};
    asr_err_t rc = parse(&r, label ? label : path, info, err, err_len);
    fclose(f);
    return rc;
}
