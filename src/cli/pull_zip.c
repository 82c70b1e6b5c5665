/* cli/pull: a minimal zip reader for Python wheels.
 *
 * Reads the central directory (zip64 included), then streams single members through zlib's raw
 * inflate (window bits -15) or copies stored ones, checking the uncompressed size and CRC-32 of
 * every member and hashing it with SHA-256 on the way. Members are never held whole in memory, and
 * an archive is trusted for nothing: every offset and length is bounds-checked against the file,
 * and output beyond the declared size is refused (no zip bombs). Encrypted members, multi-disk
 * archives and methods other than stored (0) and deflate (8) are refused. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <zlib.h>

#include "cli/pull_int.h"

#define SIG_LOCAL 0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_EOCD 0x06054b50u
#define SIG_EOCD64 0x06064b50u
#define SIG_EOCD64_LOC 0x07064b50u
#define EOCD_LEN 22
#define CHUNK (1u << 20)

typedef struct {
    char *name;
    uint16_t flags;
    uint16_t method;
    uint32_t crc;
    uint64_t csize;
    uint64_t usize;
    uint64_t local_off;
} entry_t;

struct asr__cli_zip {
    int fd;                   /* the archive file, or -1 when it is in memory */
    const unsigned char *mem; /* the archive in memory (borrowed), or NULL */
    char *path;               /* the archive's file name, for messages */
    uint64_t file_len;
    entry_t *entries;
    size_t n_entries;
};

static uint16_t rd16(const unsigned char *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t rd32(const unsigned char *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static uint64_t rd64(const unsigned char *p) { return rd32(p) | ((uint64_t)rd32(p + 4) << 32); }

/* Reads exactly n bytes at off. */
static int pread_all(int fd, void *buf, size_t n, uint64_t off) {
    char *p = buf;
    while (n > 0) {
        ssize_t r = pread(fd, p, n, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        p += r;
        n -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

/* Reads exactly n bytes of the archive at off: 0, or -1 past its end or on a read error. */
static int read_at(const asr__cli_zip_t *z, void *buf, size_t n, uint64_t off) {
    if (!z->mem)
        return pread_all(z->fd, buf, n, off);
    if (off > z->file_len || n > z->file_len - off)
        return -1;
    memcpy(buf, z->mem + off, n);
    return 0;
}

/* Locates the central directory: offset, size and entry count, from the (zip64) end record. */
static asr_err_t find_cd(asr__cli_zip_t *z, uint64_t *cd_off, uint64_t *cd_len, uint64_t *n_ent,
                         char *err, size_t err_len) {
    uint64_t tail_len = z->file_len < 65535 + EOCD_LEN ? z->file_len : 65535 + EOCD_LEN;
    if (tail_len < EOCD_LEN)
        goto bad;
    unsigned char *tail = asr_xmalloc((size_t)tail_len);
    uint64_t tail_off = z->file_len - tail_len;
    if (read_at(z, tail, (size_t)tail_len, tail_off) != 0) {
        free(tail);
        goto bad;
    }
    /* The last signature whose comment length reaches exactly the end of the file. */
    int64_t eocd = -1;
    for (int64_t i = (int64_t)tail_len - EOCD_LEN; i >= 0; i--) {
        const unsigned char *p = tail + i;
        if (rd32(p) == SIG_EOCD && (uint64_t)i + EOCD_LEN + rd16(p + 20) == tail_len) {
            eocd = i;
            break;
        }
    }
    if (eocd < 0) {
        free(tail);
        goto bad;
    }
    const unsigned char *e = tail + eocd;
    uint16_t disk = rd16(e + 4), cd_disk = rd16(e + 6);
    *n_ent = rd16(e + 10);
    *cd_len = rd32(e + 12);
    *cd_off = rd32(e + 16);
    bool zip64 = *n_ent == 0xffff || *cd_len == 0xffffffffu || *cd_off == 0xffffffffu;
    unsigned char loc[20], e64[56];
    uint64_t eocd_abs = tail_off + (uint64_t)eocd;
    free(tail);
    if (zip64) {
        if (eocd_abs < 20 || read_at(z, loc, 20, eocd_abs - 20) != 0 || rd32(loc) != SIG_EOCD64_LOC)
            goto bad;
        uint64_t off64 = rd64(loc + 8);
        if (off64 + 56 > z->file_len || read_at(z, e64, 56, off64) != 0 || rd32(e64) != SIG_EOCD64)
            goto bad;
        disk = (uint16_t)rd32(e64 + 16);
        cd_disk = (uint16_t)rd32(e64 + 20);
        *n_ent = rd64(e64 + 32);
        *cd_len = rd64(e64 + 40);
        *cd_off = rd64(e64 + 48);
    }
    if (disk != 0 || cd_disk != 0) {
        asr_errf(err, err_len, "%s: multi-disk zip archives are not supported", z->path);
        return ASR_ERR_UNSUPPORTED;
    }
    if (*cd_off > z->file_len || *cd_len > z->file_len - *cd_off || *cd_len > (64u << 20))
        goto bad;
    return ASR_OK;
bad:
    asr_errf(err, err_len, "%s: not a zip archive (no valid end of central directory)", z->path);
    return ASR_ERR_INVALID;
}

/* Applies the zip64 extended-information extra field to fields saturated at 0xffffffff. */
static int apply_zip64_extra(entry_t *en, const unsigned char *x, size_t x_len) {
    while (x_len >= 4) {
        uint16_t id = rd16(x), len = rd16(x + 2);
        if ((size_t)len + 4 > x_len)
            return -1;
        if (id == 0x0001) {
            const unsigned char *p = x + 4, *end = x + 4 + len;
            uint64_t *fields[3] = {&en->usize, &en->csize, &en->local_off};
            for (int i = 0; i < 3; i++) {
                if (*fields[i] != 0xffffffffu)
                    continue;
                if (p + 8 > end)
                    return -1;
                *fields[i] = rd64(p);
                p += 8;
            }
            return 0;
        }
        x += 4 + len;
        x_len -= 4 + (size_t)len;
    }
    return 0;
}

static asr_err_t parse_cd(asr__cli_zip_t *z, const unsigned char *cd, uint64_t cd_len,
                          uint64_t n_ent, char *err, size_t err_len) {
    if (n_ent > cd_len / 46)
        goto bad;
    z->entries = asr_xcalloc(n_ent ? (size_t)n_ent : 1, sizeof(entry_t));
    uint64_t pos = 0;
    for (uint64_t i = 0; i < n_ent; i++) {
        if (pos + 46 > cd_len || rd32(cd + pos) != SIG_CENTRAL)
            goto bad;
        const unsigned char *h = cd + pos;
        uint16_t name_len = rd16(h + 28), extra_len = rd16(h + 30), comment_len = rd16(h + 32);
        if (pos + 46 + name_len + extra_len + comment_len > cd_len || name_len == 0)
            goto bad;
        entry_t *en = &z->entries[z->n_entries];
        en->flags = rd16(h + 8);
        en->method = rd16(h + 10);
        en->crc = rd32(h + 16);
        en->csize = rd32(h + 20);
        en->usize = rd32(h + 24);
        en->local_off = rd32(h + 42);
        if (memchr(h + 46, '\0', name_len))
            goto bad;
        en->name = asr_xmalloc((size_t)name_len + 1);
        memcpy(en->name, h + 46, name_len);
        en->name[name_len] = '\0';
        z->n_entries++;
        if (apply_zip64_extra(en, h + 46 + name_len, extra_len) != 0)
            goto bad;
        pos += 46u + name_len + extra_len + comment_len;
    }
    return ASR_OK;
bad:
    asr_errf(err, err_len, "%s: corrupt zip central directory", z->path);
    return ASR_ERR_INVALID;
}

/* Reads and parses the central directory of an archive whose byte source and length are set:
 * *out = z, or z closed on failure. */
static asr_err_t load_cd(asr__cli_zip_t *z, const char *what, asr__cli_zip_t **out, char *err,
                         size_t err_len) {
    uint64_t cd_off, cd_len, n_ent;
    asr_err_t rc = find_cd(z, &cd_off, &cd_len, &n_ent, err, err_len);
    if (rc == ASR_OK) {
        unsigned char *cd = asr_xmalloc(cd_len ? (size_t)cd_len : 1);
        if (read_at(z, cd, (size_t)cd_len, cd_off) != 0) {
            asr_errf(err, err_len, "%s: cannot read the central directory", what);
            rc = ASR_ERR_IO;
        } else {
            rc = parse_cd(z, cd, cd_len, n_ent, err, err_len);
        }
        free(cd);
    }
    if (rc != ASR_OK) {
        asr__cli_zip_close(z);
        return rc;
    }
    *out = z;
    return ASR_OK;
}

static asr__cli_zip_t *zip_new(const char *path) {
    asr__cli_zip_t *z = asr_xcalloc(1, sizeof(*z));
    const char *slash = strrchr(path, '/');
    z->path = asr_xstrdup(slash ? slash + 1 : path);
    z->fd = -1;
    return z;
}

asr_err_t asr__cli_zip_open(const char *path, asr__cli_zip_t **out, char *err, size_t err_len) {
    *out = NULL;
    asr__cli_zip_t *z = zip_new(path);
    struct stat st;
    z->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (z->fd < 0 || fstat(z->fd, &st) != 0) {
        asr_errf(err, err_len, "cannot open %s: %s", path, strerror(errno));
        asr__cli_zip_close(z);
        return ASR_ERR_IO;
    }
    z->file_len = (uint64_t)st.st_size;
    return load_cd(z, path, out, err, err_len);
}

asr_err_t asr__cli_zip_open_memory(const void *data, size_t len, const char *name,
                                   asr__cli_zip_t **out, char *err, size_t err_len) {
    *out = NULL;
    asr__cli_zip_t *z = zip_new(name);
    z->mem = data ? data : (const unsigned char *)"";
    z->file_len = data ? (uint64_t)len : 0;
    return load_cd(z, name, out, err, err_len);
}

void asr__cli_zip_close(asr__cli_zip_t *z) {
    if (!z)
        return;
    if (z->fd >= 0)
        close(z->fd);
    for (size_t i = 0; i < z->n_entries; i++)
        free(z->entries[i].name);
    free(z->entries);
    free(z->path);
    free(z);
}

static const entry_t *find(const asr__cli_zip_t *z, const char *name) {
    for (size_t i = 0; i < z->n_entries; i++)
        if (!strcmp(z->entries[i].name, name))
            return &z->entries[i];
    return NULL;
}

const char *asr__cli_zip_find_suffix(const asr__cli_zip_t *z, const char *suffix, int n_slashes) {
    size_t sl = strlen(suffix);
    for (size_t i = 0; i < z->n_entries; i++) {
        const char *nm = z->entries[i].name;
        size_t nl = strlen(nm);
        if (nl < sl || strcmp(nm + nl - sl, suffix))
            continue;
        int n = 0;
        for (const char *p = nm; *p; p++)
            n += *p == '/';
        if (n == n_slashes)
            return nm;
    }
    return NULL;
}

size_t asr__cli_zip_count(const asr__cli_zip_t *z) { return z->n_entries; }

const char *asr__cli_zip_name(const asr__cli_zip_t *z, size_t i) {
    return i < z->n_entries ? z->entries[i].name : NULL;
}

int64_t asr__cli_zip_size(const asr__cli_zip_t *z, const char *name) {
    const entry_t *en = find(z, name);
    return en ? (int64_t)en->usize : -1;
}

/* Offset of a member's data, from its local header (whose name/extra lengths may differ from the
 * central directory's). */
static asr_err_t data_offset(asr__cli_zip_t *z, const entry_t *en, uint64_t *off, char *err,
                             size_t err_len) {
    unsigned char lh[30];
    if (en->local_off > z->file_len || z->file_len - en->local_off < 30 ||
        read_at(z, lh, 30, en->local_off) != 0 || rd32(lh) != SIG_LOCAL)
        goto bad;
    *off = en->local_off + 30 + rd16(lh + 26) + rd16(lh + 28);
    if (*off > z->file_len || en->csize > z->file_len - *off)
        goto bad;
    return ASR_OK;
bad:
    asr_errf(err, err_len, "%s: corrupt local header for %s", z->path, en->name);
    return ASR_ERR_INVALID;
}

typedef struct {
    int fd;
    uLong crc;
    uint64_t n_out;
    uint64_t limit;
    EVP_MD_CTX *md;
} sink_t;

static int sink_put(sink_t *s, const unsigned char *p, size_t n) {
    if (n > s->limit - s->n_out)
        return -2; /* more output than the declared size */
    s->crc = crc32_z(s->crc, p, n);
    EVP_DigestUpdate(s->md, p, n);
    s->n_out += n;
    return asr__cli_pull_write_all(s->fd, p, n);
}

/* Streams csize bytes at off through inflate (or a copy) into the sink. */
static asr_err_t pump(asr__cli_zip_t *z, const entry_t *en, uint64_t off, sink_t *s, char *err,
                      size_t err_len) {
    asr_err_t rc = ASR_ERR_INVALID;
    unsigned char *in = asr_xmalloc(CHUNK), *outb = asr_xmalloc(CHUNK);
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    bool deflate = en->method == 8, ended = !deflate;
    if (deflate && inflateInit2(&zs, -15) != Z_OK) {
        asr_errf(err, err_len, "zlib: inflateInit2 failed");
        goto done;
    }
    for (uint64_t left = en->csize; left > 0 || (deflate && !ended);) {
        size_t n = left < CHUNK ? (size_t)left : CHUNK;
        if (n == 0 || read_at(z, in, n, off) != 0) {
            asr_errf(err, err_len, "%s: %s is cut short", z->path, en->name);
            goto done;
        }
        off += n;
        left -= n;
        int w = 0;
        if (!deflate) {
            w = sink_put(s, in, n);
        } else {
            zs.next_in = in;
            zs.avail_in = (uInt)n;
            while (!ended && w == 0 && (zs.avail_in > 0 || zs.avail_out == 0)) {
                zs.next_out = outb;
                zs.avail_out = CHUNK;
                int zr = inflate(&zs, Z_NO_FLUSH);
                if (zr != Z_OK && zr != Z_STREAM_END && zr != Z_BUF_ERROR) {
                    asr_errf(err, err_len, "%s: %s: corrupt deflate data (%s)", z->path, en->name,
                             zs.msg ? zs.msg : "inflate error");
                    goto done;
                }
                w = sink_put(s, outb, CHUNK - zs.avail_out);
                ended = zr == Z_STREAM_END;
                if (zr == Z_BUF_ERROR && zs.avail_in == 0)
                    break;
            }
        }
        if (w == -2) {
            asr_errf(err, err_len, "%s: %s inflates past its declared size of %llu bytes", z->path,
                     en->name, (unsigned long long)en->usize);
            goto done;
        }
        if (w != 0) {
            asr_errf(err, err_len, "write failed: %s", strerror(errno));
            rc = ASR_ERR_IO;
            goto done;
        }
    }
    rc = ASR_OK;
done:
    if (deflate)
        inflateEnd(&zs);
    free(in);
    free(outb);
    return rc;
}

asr_err_t asr__cli_zip_extract(asr__cli_zip_t *z, const char *name, int fd,
                               unsigned char sha_out[32], char *err, size_t err_len) {
    const entry_t *en = find(z, name);
    if (!en) {
        asr_errf(err, err_len, "%s has no member %s", z->path, name);
        return ASR_ERR_NOT_FOUND;
    }
    if (en->flags & 1) {
        asr_errf(err, err_len, "%s: %s is encrypted", z->path, name);
        return ASR_ERR_UNSUPPORTED;
    }
    if (en->method != 0 && en->method != 8) {
        asr_errf(err, err_len, "%s: %s uses unsupported compression method %u", z->path, name,
                 en->method);
        return ASR_ERR_UNSUPPORTED;
    }
    if (en->method == 0 && en->csize != en->usize) {
        asr_errf(err, err_len, "%s: stored member %s has mismatched sizes", z->path, name);
        return ASR_ERR_INVALID;
    }
    uint64_t off;
    asr_err_t rc = data_offset(z, en, &off, err, err_len);
    if (rc != ASR_OK)
        return rc;
    sink_t s = {.fd = fd, .crc = crc32_z(0, NULL, 0), .limit = en->usize, .md = EVP_MD_CTX_new()};
    if (!s.md || EVP_DigestInit_ex(s.md, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(s.md);
        asr_errf(err, err_len, "sha256: cannot initialise OpenSSL digest");
        return ASR_ERR_IO;
    }
    rc = pump(z, en, off, &s, err, err_len);
    if (rc == ASR_OK && s.n_out != en->usize) {
        asr_errf(err, err_len, "%s: %s: got %llu bytes, the archive declares %llu", z->path, name,
                 (unsigned long long)s.n_out, (unsigned long long)en->usize);
        rc = ASR_ERR_INVALID;
    }
    if (rc == ASR_OK && (uint32_t)s.crc != en->crc) {
        asr_errf(err, err_len, "%s: %s: CRC-32 mismatch (got %08x, expected %08x)", z->path, name,
                 (unsigned)s.crc, (unsigned)en->crc);
        rc = ASR_ERR_INVALID;
    }
    unsigned int md_len = 0;
    if (EVP_DigestFinal_ex(s.md, sha_out, &md_len) != 1 && rc == ASR_OK) {
        asr_errf(err, err_len, "sha256: digest failed");
        rc = ASR_ERR_IO;
    }
    EVP_MD_CTX_free(s.md);
    return rc;
}

/* A write end that fills a memory buffer: small members go through the same checked path. */
asr_err_t asr__cli_zip_read(asr__cli_zip_t *z, const char *name, size_t max_len, char **out,
                            size_t *out_len, char *err, size_t err_len) {
    *out = NULL;
    const entry_t *en = find(z, name);
    if (!en) {
        asr_errf(err, err_len, "%s has no member %s", z->path, name);
        return ASR_ERR_NOT_FOUND;
    }
    if (en->usize > max_len) {
        asr_errf(err, err_len, "%s: %s is too large (%llu bytes)", z->path, name,
                 (unsigned long long)en->usize);
        return ASR_ERR_INVALID;
    }
    /* memfd keeps one extraction path (with its CRC and size checks) for files and memory. */
    int fd = memfd_create("asrd-zip", MFD_CLOEXEC);
    if (fd < 0) {
        asr_errf(err, err_len, "memfd_create: %s", strerror(errno));
        return ASR_ERR_IO;
    }
    unsigned char sha[32];
    asr_err_t rc = asr__cli_zip_extract(z, name, fd, sha, err, err_len);
    if (rc == ASR_OK) {
        char *buf = asr_xmalloc((size_t)en->usize + 1);
        if (pread_all(fd, buf, (size_t)en->usize, 0) != 0) {
            free(buf);
            asr_errf(err, err_len, "memfd read: %s", strerror(errno));
            rc = ASR_ERR_IO;
        } else {
            buf[en->usize] = '\0';
            *out = buf;
            if (out_len)
                *out_len = (size_t)en->usize;
        }
    }
    close(fd);
    return rc;
}
