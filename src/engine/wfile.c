/* engine: the tensor table every model format is read into (wfile.h), and the front door that
 * finds a model's weights file in a path and hands it to the front of its format. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/core.h"
#include "engine/ct2.h"
#include "engine/ggml.h"
#include "engine/safetensors.h"
#include "engine/wfile.h"
#include "nn/nn.h"

size_t asr_wdtype_size(asr_wdtype_t t) {
    switch (t) {
    case ASR_WD_F32:
    case ASR_WD_I32:
        return 4;
    case ASR_WD_I16:
    case ASR_WD_F16:
    case ASR_WD_BF16:
        return 2;
    case ASR_WD_I8:
        return 1;
    }
    return 0;
}

void asr_wfile_free(asr_wfile_t *f) {
    if (!f)
        return;
    free(f->vars);
    free(f->aliases);
    for (int i = 0; i < f->n_maps; i++)
        munmap(f->maps[i], f->map_lens[i]);
    for (int i = 0; i < f->n_owned; i++)
        munmap(f->owned[i], f->owned_lens[i]);
    free(f->owned);
    free(f->owned_lens);
    memset(f, 0, sizeof *f);
}

static const asr_wvar_t *find_exact(const asr_wfile_t *f, const char *name) {
    for (int i = 0; i < f->n_vars; i++)
        if (!strcmp(f->vars[i].name, name))
            return &f->vars[i];
    return NULL;
}

const asr_wvar_t *asr_wfile_find(const asr_wfile_t *f, const char *name) {
    const asr_wvar_t *v = find_exact(f, name);
    if (v)
        return v;
    size_t n = strlen(name);
    for (int i = 0; i < f->n_aliases; i++) {
        const char *a = f->aliases[i].alias;
        size_t an = strlen(a);
        if (!strcmp(a, name))
            return find_exact(f, f->aliases[i].target);
        /* A_scale -> T_scale, A_zero -> T_zero */
        if (n > an && !strncmp(name, a, an) &&
            (!strcmp(name + an, "_scale") || !strcmp(name + an, "_zero"))) {
            char buf[512];
            snprintf(buf, sizeof buf, "%s%s", f->aliases[i].target, name + an);
            return find_exact(f, buf);
        }
    }
    return NULL;
}

/* ---- building ---- */

void asr_wfile_drop_pages(const void *data, size_t len) {
    static long page;
    if (!page)
        page = sysconf(_SC_PAGESIZE);
    uintptr_t pg = (uintptr_t)page, a = (uintptr_t)data;
    uintptr_t lo = (a + pg - 1) / pg * pg, hi = (a + len) / pg * pg;
    if (hi > lo)
        madvise((void *)lo, hi - lo, MADV_DONTNEED);
}

void *asr_wfile_own(asr_wfile_t *f, size_t bytes) {
    if (bytes == 0)
        bytes = 1;
    /* anonymous pages: zeroed, page-aligned, and safe to madvise(DONTNEED) once converted */
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    void **o = realloc(f->owned, (size_t)(f->n_owned + 1) * sizeof *o);
    size_t *ol = o ? realloc(f->owned_lens, (size_t)(f->n_owned + 1) * sizeof *ol) : NULL;
    if (o)
        f->owned = o;
    if (!o || !ol) {
        munmap(p, bytes);
        return NULL;
    }
    f->owned_lens = ol;
    f->owned[f->n_owned] = p;
    f->owned_lens[f->n_owned++] = bytes;
    return p;
}

/* Small owned pieces (names, scalars), 8-byte aligned, carved from 64-KiB chunks: one mapping
 * per tensor name would cost a page and a kernel mapping each. */
static void *own_small(asr_wfile_t *f, size_t bytes) {
    bytes = (bytes + 7) & ~(size_t)7;
    if (bytes > 4096)
        return asr_wfile_own(f, bytes);
    if (f->small_left < bytes) {
        f->small = asr_wfile_own(f, 65536);
        f->small_left = f->small ? 65536 : 0;
        if (!f->small)
            return NULL;
    }
    void *p = f->small;
    f->small += bytes;
    f->small_left -= bytes;
    return p;
}

const char *asr_wfile_own_str(asr_wfile_t *f, const char *s) {
    size_t n = strlen(s) + 1;
    char *d = own_small(f, n);
    if (d)
        memcpy(d, s, n);
    return d;
}

asr_wvar_t *asr_wfile_add(asr_wfile_t *f, const char *name, asr_wdtype_t dtype, int rank,
                          const int64_t *dims, const void *data) {
    if (rank < 0 || rank > ASR_W_MAX_RANK)
        return NULL;
    if (f->n_vars == f->cap_vars) {
        int cap = f->cap_vars ? 2 * f->cap_vars : 64;
        asr_wvar_t *v = realloc(f->vars, (size_t)cap * sizeof *v);
        if (!v)
            return NULL;
        f->vars = v;
        f->cap_vars = cap;
    }
    const char *nm = asr_wfile_own_str(f, name);
    if (!nm)
        return NULL;
    asr_wvar_t *v = &f->vars[f->n_vars++];
    memset(v, 0, sizeof *v);
    v->name = nm;
    v->rank = rank;
    v->n_elems = 1;
    for (int i = 0; i < rank; i++) {
        v->dims[i] = dims[i];
        v->n_elems *= dims[i];
    }
    v->dtype = dtype;
    v->data = data;
    v->n_bytes = (size_t)v->n_elems * asr_wdtype_size(dtype);
    return v;
}

asr_wvar_t *asr_wfile_add_i32(asr_wfile_t *f, const char *name, int32_t value) {
    int32_t *p = own_small(f, sizeof value);
    if (!p)
        return NULL;
    *p = value;
    return asr_wfile_add(f, name, ASR_WD_I32, 0, NULL, p);
}

asr_err_t asr_wfile_map(asr_wfile_t *f, const char *path, const uint8_t **data, size_t *len,
                        char *errbuf, size_t errbuf_len) {
    if (f->n_maps == ASR_WFILE_MAX_MAPS) {
        asr_errf(errbuf, errbuf_len, "%s: too many files in one model", path);
        return ASR_ERR_MODEL;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        asr_errf(errbuf, errbuf_len, "%s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return ASR_ERR_MODEL;
    }
    if (st.st_size == 0) {
        close(fd);
        asr_errf(errbuf, errbuf_len, "%s is empty", path);
        return ASR_ERR_MODEL;
    }
    void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) {
        asr_errf(errbuf, errbuf_len, "%s: cannot map: %s", path, strerror(errno));
        return ASR_ERR_IO;
    }
    f->maps[f->n_maps] = map;
    f->map_lens[f->n_maps++] = (size_t)st.st_size;
    *data = map;
    *len = (size_t)st.st_size;
    return ASR_OK;
}

/* ---- reading ---- */

int asr_wfile_decode_f32(const asr_wfile_t *f, const asr_wvar_t *v, const char *name, int64_t cols,
                         int64_t e0, int64_t e1, float *out, char *err, size_t err_len) {
    const uint8_t *p = v->data;
    switch (v->dtype) {
    case ASR_WD_F32:
        memcpy(out, p + 4 * e0, (size_t)(e1 - e0) * 4);
        return 0;
    case ASR_WD_F16: /* little-endian file, little-endian host (x86-64, arm64) */
        if ((uintptr_t)p % 2 == 0) {
            asr_nn_h2f_n((const uint16_t *)(const void *)p + e0, out, (size_t)(e1 - e0));
        } else { /* a tensor at an odd offset: through an aligned bounce buffer */
            uint16_t bounce[2048];
            for (int64_t i = e0; i < e1; i += 2048) {
                size_t n = (size_t)(e1 - i < 2048 ? e1 - i : 2048);
                memcpy(bounce, p + 2 * i, 2 * n);
                asr_nn_h2f_n(bounce, out + (i - e0), n);
            }
        }
        return 0;
    case ASR_WD_BF16:
        for (int64_t i = e0; i < e1; i++)
            out[i - e0] = asr_nn_bf16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
        return 0;
    case ASR_WD_I8:
    case ASR_WD_I16: {
        char sname[512];
        snprintf(sname, sizeof sname, "%s_scale", name);
        const asr_wvar_t *sv = asr_wfile_find(f, sname);
        if (!sv || sv->dtype != ASR_WD_F32) {
            asr_errf(err, err_len, "quantized %s has no float32 scale", name);
            return -1;
        }
        int64_t rows = v->dtype == ASR_WD_I16 ? 1 : v->n_elems / cols;
        if (v->dtype == ASR_WD_I16)
            cols = v->n_elems;
        if (sv->n_elems != rows && sv->n_elems != 1) {
            asr_errf(err, err_len, "%s has %lld scales for %lld rows", sname,
                     (long long)sv->n_elems, (long long)rows);
            return -1;
        }
        for (int64_t i = e0; i < e1; i++) {
            float sc;
            memcpy(&sc, sv->data + 4 * (sv->n_elems == 1 ? 0 : i / cols), 4);
            float inv = sc != 0.0f ? 1.0f / sc : 0.0f;
            float q = v->dtype == ASR_WD_I8 ? (float)(int8_t)p[i]
                                            : (float)(int16_t)(p[2 * i] | p[2 * i + 1] << 8);
            out[i - e0] = q * inv;
        }
        return 0;
    }
    default:
        asr_errf(err, err_len, "%s has unsupported dtype %d", name, v->dtype);
        return -1;
    }
}

/* ---- opening ---- */

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

asr_wfmt_t asr_wfile_sniff(const uint8_t *h, size_t n) {
    if (n >= 4 && le32(h) == 0x67676d6cu) /* "lmgg": whisper.cpp's ggml magic, little-endian */
        return ASR_WFMT_GGML;
    if (n >= 9) { /* u64 header length, then the JSON header */
        uint64_t hl = (uint64_t)le32(h) | (uint64_t)le32(h + 4) << 32;
        if (hl >= 2 && hl < ((uint64_t)1 << 30) && h[8] == '{')
            return ASR_WFMT_SAFETENSORS;
    }
    if (n >= 4) {
        uint32_t v = le32(h);
        if (v == 1)
            return ASR_WFMT_CT2;
        /* version 2..6: a length-prefixed spec name follows (u16 incl. its NUL), then text */
        if (v >= 2 && v <= 6 && n >= 7) {
            unsigned sl = (unsigned)h[4] | (unsigned)h[5] << 8;
            if (sl >= 2 && sl < 256 && h[6] >= 0x20 && h[6] < 0x7f)
                return ASR_WFMT_CT2;
        }
    }
    return ASR_WFMT_UNKNOWN;
}

const char *asr_wfmt_name(asr_wfmt_t f) {
    switch (f) {
    case ASR_WFMT_CT2:
        return "ctranslate2";
    case ASR_WFMT_GGML:
        return "ggml";
    case ASR_WFMT_SAFETENSORS:
        return "safetensors";
    default:
        return "unknown";
    }
}

/* The format of the file at path by its first bytes; ASR_WFMT_UNKNOWN when unreadable. */
static asr_wfmt_t sniff_path(const char *path) {
    uint8_t h[16];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ASR_WFMT_UNKNOWN;
    ssize_t n = read(fd, h, sizeof h);
    close(fd);
    return n > 0 ? asr_wfile_sniff(h, (size_t)n) : ASR_WFMT_UNKNOWN;
}

static bool is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* In a directory: the file that holds the weights (path >= 4096 bytes), by preference
 * model.bin, model.safetensors, model.safetensors.index.json, then the one regular file whose
 * content is a model (a directory holding ggml-base.bin). 0, or -1 with a reason. */
static int weights_in_dir(const char *dir, char *path, char *err, size_t err_len) {
    static const char *const names[] = {"model.bin", "model.safetensors",
                                        "model.safetensors.index.json"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        snprintf(path, 4096, "%s/%s", dir, names[i]);
        if (is_file(path))
            return 0;
    }
    DIR *d = opendir(dir);
    int found = 0;
    char first[4096] = "";
    for (struct dirent *e; d && (e = readdir(d));) {
        char p[4096];
        if (e->d_name[0] == '.' || snprintf(p, sizeof p, "%s/%s", dir, e->d_name) >= (int)sizeof p)
            continue;
        if (is_file(p) && sniff_path(p) != ASR_WFMT_UNKNOWN && found++ == 0)
            snprintf(first, sizeof first, "%s", p);
    }
    if (d)
        closedir(d);
    if (found == 1) {
        snprintf(path, 4096, "%s", first);
        return 0;
    }
    if (found > 1)
        asr_errf(err, err_len, "%s holds %d model files; name the one to use", dir, found);
    else
        asr_errf(err, err_len,
                 "%s holds no model (expected model.bin, model.safetensors or a ggml file)", dir);
    return -1;
}

static asr_err_t open_table(const char *path, asr_wfile_t *f, char *dir_out, char *errbuf,
                            size_t errbuf_len, bool shapes_only) {
    memset(f, 0, sizeof *f);
    f->shapes_only = shapes_only;
    struct stat st;
    if (stat(path, &st) != 0) {
        asr_errf(errbuf, errbuf_len, "model %s not found", path);
        return ASR_ERR_NOT_FOUND;
    }
    char file[4096], dir[4096];
    if (S_ISDIR(st.st_mode)) {
        snprintf(dir, sizeof dir, "%s", path);
        if (weights_in_dir(path, file, errbuf, errbuf_len))
            return ASR_ERR_MODEL;
    } else {
        snprintf(file, sizeof file, "%s", path);
        const char *slash = strrchr(path, '/');
        if (slash)
            snprintf(dir, sizeof dir, "%.*s", (int)(slash != path ? slash - path : 1), path);
        else
            snprintf(dir, sizeof dir, ".");
    }
    if (dir_out)
        snprintf(dir_out, 4096, "%s", dir);
    size_t fl = strlen(file);
    bool index = fl > 5 && !strcmp(file + fl - 5, ".json") &&
                 strstr(file, ".index"); /* model.safetensors.index.json, .index.fp32.json */
    asr_wfmt_t fmt = index ? ASR_WFMT_SAFETENSORS : sniff_path(file);
    asr_err_t rc;
    switch (fmt) {
    case ASR_WFMT_CT2: {
        const uint8_t *data;
        size_t len;
        rc = asr_wfile_map(f, file, &data, &len, errbuf, errbuf_len);
        if (rc == ASR_OK)
            rc = asr_ct2_parse(data, len, f, errbuf, errbuf_len);
        break;
    }
    case ASR_WFMT_GGML:
        rc = asr_ggml_open(file, f, errbuf, errbuf_len);
        break;
    case ASR_WFMT_SAFETENSORS:
        rc = asr_safetensors_open(file, f, errbuf, errbuf_len);
        break;
    default:
        asr_errf(errbuf, errbuf_len,
                 "%s: not a Whisper model file (expected CTranslate2 model.bin, whisper.cpp ggml "
                 "or safetensors)",
                 file);
        rc = ASR_ERR_MODEL;
    }
    if (rc != ASR_OK) {
        /* every reason names the file: the fronts' bare ones ("model.bin is truncated...") get
         * the path in front */
        if (errbuf && errbuf_len && !strstr(errbuf, file)) {
            char tmp[1024];
            const char *r = errbuf;
            if (!strncmp(r, "model.bin: ", 11))
                r += 11;
            snprintf(tmp, sizeof tmp, "%s", r);
            asr_errf(errbuf, errbuf_len, "%s: %s", file, tmp);
        }
        asr_wfile_free(f);
    }
    return rc;
}

asr_err_t asr_wfile_open(const char *path, asr_wfile_t *f, char *dir_out, char *errbuf,
                         size_t errbuf_len) {
    return open_table(path, f, dir_out, errbuf, errbuf_len, false);
}

asr_err_t asr_wfile_open_shapes(const char *path, asr_wfile_t *f, char *dir_out, char *errbuf,
                                size_t errbuf_len) {
    return open_table(path, f, dir_out, errbuf, errbuf_len, true);
}
