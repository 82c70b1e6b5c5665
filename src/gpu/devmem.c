/* gpu: device memory readings (devmem.h): injected, NVML, cudaMemGetInfo, /proc/meminfo.
 *
 * Invariants: the injected spec is one struct under one mutex, copied out whole by each reading
 * (a reading never sees half of an injection); asr_devmem_inject replaces it only after the new
 * spec parsed. Every source that fails leaves a one-line reason in why and ok false; nothing here
 * aborts, and no CUDA context is created just to read (cudaMemGetInfo only where this process
 * already holds device memory). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/core.h"
#include "gpu/dev_int.h"
#include "gpu/devmem.h"
#include "gpu/nvml.h"

static pthread_mutex_t inj_mu = PTHREAD_MUTEX_INITIALIZER;
static bool inj_on;
static asr_devmem_spec_t inj;

/* ---- the spec ---- */

/* SIZE: digits, an optional fraction, an optional unit (B, K/KB/KiB, M.., G.., T..; any case).
 * A fraction needs a unit larger than a byte; the result is rounded down to a byte and must fit
 * an int64 (JSON numbers). */
static bool parse_size(const char *s, size_t len, uint64_t *out) {
    size_t i = 0;
    uint64_t v = 0;
    if (i == len || s[i] < '0' || s[i] > '9')
        return false;
    for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    uint64_t frac = 0, frac_den = 1;
    bool has_frac = false;
    if (i < len && s[i] == '.') {
        has_frac = true;
        i++;
        size_t start = i;
        for (; i < len && s[i] >= '0' && s[i] <= '9'; i++)
            if (frac_den < 1000000000ull) { /* digits past the ninth change nothing that counts */
                frac = frac * 10 + (uint64_t)(s[i] - '0');
                frac_den *= 10;
            }
        if (i == start)
            return false;
    }
    const char *u = s + i;
    size_t ulen = len - i;
    int shift = -1;
    if (ulen == 0 || (ulen == 1 && (u[0] == 'b' || u[0] == 'B')))
        shift = 0;
    else {
        static const char units[] = "kmgt";
        const char *p = memchr(units, u[0] | 0x20, 4);
        if (p && (ulen == 1 || (ulen == 2 && (u[1] | 0x20) == 'b') ||
                  (ulen == 3 && (u[1] | 0x20) == 'i' && (u[2] | 0x20) == 'b')))
            shift = 10 * (int)(p - units + 1);
    }
    if (shift < 0 || (has_frac && shift == 0))
        return false;
    if (v > ((uint64_t)INT64_MAX >> shift))
        return false;
    v <<= shift;
    if (has_frac) {
        /* frac / frac_den < 1 and frac_den <= 1e9: the product stays below 2^40 * 1e9 < 2^70 in
         * double, exact to far below a byte for the sizes that matter */
        uint64_t add = (uint64_t)((double)frac / (double)frac_den * (double)(1ull << shift));
        if (add > (uint64_t)INT64_MAX - v)
            return false;
        v += add;
    }
    *out = v;
    return true;
}

/* Up to 40 bytes of s for a reason, control and non-ASCII bytes as '?': the reason stays one
 * printable line whatever the spec holds. */
typedef struct {
    char s[48];
} shown_t;
static shown_t show(const char *s, size_t len) {
    shown_t o;
    size_t n = len > 40 ? 40 : len;
    for (size_t i = 0; i < n; i++)
        o.s[i] = (unsigned char)s[i] < 0x20 || (unsigned char)s[i] >= 0x7f ? '?' : s[i];
    if (len > 40)
        memcpy(o.s + n, "...", 3), n += 3;
    o.s[n] = 0;
    return o;
}

static bool item_is(const char *it, size_t len, const char *word) {
    return strlen(word) == len && !memcmp(it, word, len);
}

/* proc=PID:NAME:SIZE; NAME is what lies between the first and the last colon. */
static asr_err_t parse_proc(const char *v, size_t len, asr_devmem_spec_t *out, char *err,
                            size_t err_len) {
    const char *c1 = memchr(v, ':', len);
    const char *c2 = NULL;
    for (size_t i = len; i > 0; i--)
        if (v[i - 1] == ':') {
            c2 = v + i - 1;
            break;
        }
    if (!c1 || c1 == c2) {
        asr_errf(err, err_len, "proc=%s: expected PID:NAME:SIZE", show(v, len).s);
        return ASR_ERR_INVALID;
    }
    uint64_t pid = 0;
    if (c1 == v) {
        asr_errf(err, err_len, "proc: empty pid");
        return ASR_ERR_INVALID;
    }
    for (const char *p = v; p < c1; p++) {
        if (*p < '0' || *p > '9' || pid > 0xffffffffull / 10) {
            asr_errf(err, err_len, "proc: bad pid '%s'", show(v, (size_t)(c1 - v)).s);
            return ASR_ERR_INVALID;
        }
        pid = pid * 10 + (uint64_t)(*p - '0');
    }
    if (pid == 0 || pid > 0xffffffffull) {
        asr_errf(err, err_len, "proc: pid out of range");
        return ASR_ERR_INVALID;
    }
    size_t name_len = (size_t)(c2 - c1 - 1);
    if (name_len == 0) {
        asr_errf(err, err_len, "proc %u: empty name", (unsigned)pid);
        return ASR_ERR_INVALID;
    }
    if (name_len >= sizeof out->procs[0].name) {
        asr_errf(err, err_len, "proc %u: name longer than %zu bytes", (unsigned)pid,
                 sizeof out->procs[0].name - 1);
        return ASR_ERR_INVALID;
    }
    for (size_t i = 0; i < name_len; i++)
        if ((unsigned char)c1[1 + i] < 0x20 || (unsigned char)c1[1 + i] >= 0x7f) {
            asr_errf(err, err_len, "proc %u: name has a control or non-ASCII byte", (unsigned)pid);
            return ASR_ERR_INVALID;
        }
    uint64_t bytes;
    if (!parse_size(c2 + 1, (size_t)(v + len - c2 - 1), &bytes)) {
        asr_errf(err, err_len, "proc %u: bad size '%s' (bytes, or 1.5GiB: B, K, M, G, T)",
                 (unsigned)pid, show(c2 + 1, (size_t)(v + len - c2 - 1)).s);
        return ASR_ERR_INVALID;
    }
    for (int i = 0; i < out->n_procs; i++)
        if (out->procs[i].pid == pid) {
            asr_errf(err, err_len, "proc %u listed twice", (unsigned)pid);
            return ASR_ERR_INVALID;
        }
    if (out->n_procs >= ASR_DEVMEM_MAX_PROCS) {
        asr_errf(err, err_len, "more than %d processes", ASR_DEVMEM_MAX_PROCS);
        return ASR_ERR_INVALID;
    }
    asr_devmem_proc_t *p = &out->procs[out->n_procs++];
    p->pid = (unsigned)pid;
    memcpy(p->name, c1 + 1, name_len);
    p->name[name_len] = 0;
    p->bytes = bytes;
    return ASR_OK;
}

static asr_err_t parse_item(const char *it, size_t len, asr_devmem_spec_t *out, bool *have_total,
                            bool *have_nvml, bool *have_read, char *err, size_t err_len) {
    const char *eq = memchr(it, '=', len);
    if (!eq) {
        asr_errf(err, err_len, "'%s': expected key=value (total, proc, nvml, read) or off",
                 show(it, len).s);
        return ASR_ERR_INVALID;
    }
    size_t klen = (size_t)(eq - it), vlen = len - klen - 1;
    const char *v = eq + 1;
    if (item_is(it, klen, "total")) {
        if (*have_total) {
            asr_errf(err, err_len, "total given twice");
            return ASR_ERR_INVALID;
        }
        *have_total = true;
        if (!parse_size(v, vlen, &out->total) || out->total == 0) {
            asr_errf(err, err_len, "total: bad size '%s' (bytes > 0, or 24GiB: B, K, M, G, T)",
                     show(v, vlen).s);
            return ASR_ERR_INVALID;
        }
        return ASR_OK;
    }
    if (item_is(it, klen, "proc"))
        return parse_proc(v, vlen, out, err, err_len);
    if (item_is(it, klen, "nvml") && item_is(v, vlen, "absent") && !*have_nvml) {
        *have_nvml = out->nvml_absent = true;
        return ASR_OK;
    }
    if (item_is(it, klen, "read") && item_is(v, vlen, "fail") && !*have_read) {
        *have_read = out->read_fail = true;
        return ASR_OK;
    }
    asr_errf(err, err_len,
             "'%s': unknown or repeated item (total=SIZE, proc=PID:NAME:SIZE, "
             "nvml=absent, read=fail, off)",
             show(it, len).s);
    return ASR_ERR_INVALID;
}

asr_err_t asr_devmem_parse_spec(const char *spec, asr_devmem_spec_t *out, char *err,
                                size_t err_len) {
    memset(out, 0, sizeof *out);
    if (!spec || !*spec) {
        asr_errf(err, err_len, "empty spec: total=SIZE[,proc=PID:NAME:SIZE...] or off");
        return ASR_ERR_INVALID;
    }
    size_t n = strlen(spec);
    /* surrounding blanks of the whole spec and of each item are ignored */
    while (n && (spec[n - 1] == ' ' || spec[n - 1] == '\t' || spec[n - 1] == '\n' ||
                 spec[n - 1] == '\r'))
        n--;
    while (n && (*spec == ' ' || *spec == '\t')) {
        spec++;
        n--;
    }
    if (item_is(spec, n, "off")) {
        out->off = true;
        return ASR_OK;
    }
    bool have_total = false, have_nvml = false, have_read = false;
    asr_err_t rc = ASR_OK;
    for (size_t i = 0; i <= n && rc == ASR_OK;) {
        const char *c = memchr(spec + i, ',', n - i);
        size_t end = c ? (size_t)(c - spec) : n;
        size_t a = i, b = end;
        while (a < b && (spec[a] == ' ' || spec[a] == '\t'))
            a++;
        while (b > a && (spec[b - 1] == ' ' || spec[b - 1] == '\t'))
            b--;
        if (a == b) {
            asr_errf(err, err_len, "empty item at byte %zu", i);
            rc = ASR_ERR_INVALID;
        } else if (item_is(spec + a, b - a, "off")) {
            asr_errf(err, err_len, "off stands alone");
            rc = ASR_ERR_INVALID;
        } else {
            rc =
                parse_item(spec + a, b - a, out, &have_total, &have_nvml, &have_read, err, err_len);
        }
        i = end + 1;
    }
    if (rc == ASR_OK && !have_total) {
        asr_errf(err, err_len, "total=SIZE is required");
        rc = ASR_ERR_INVALID;
    }
    if (rc == ASR_OK) {
        uint64_t sum = 0;
        for (int i = 0; i < out->n_procs; i++)
            sum += out->procs[i].bytes; /* each <= INT64_MAX, at most 32: no wrap */
        if (sum > out->total) {
            asr_errf(err, err_len, "the processes hold %llu bytes, more than total %llu",
                     (unsigned long long)sum, (unsigned long long)out->total);
            rc = ASR_ERR_INVALID;
        }
    }
    if (rc != ASR_OK)
        memset(out, 0, sizeof *out);
    return rc;
}

asr_err_t asr_devmem_inject(const char *spec, char *err, size_t err_len) {
    asr_devmem_spec_t s;
    asr_err_t rc = asr_devmem_parse_spec(spec, &s, err, err_len);
    if (rc != ASR_OK)
        return rc;
    pthread_mutex_lock(&inj_mu);
    inj_on = !s.off;
    inj = s;
    pthread_mutex_unlock(&inj_mu);
    return ASR_OK;
}

bool asr_devmem_injected(void) {
    pthread_mutex_lock(&inj_mu);
    bool on = inj_on;
    pthread_mutex_unlock(&inj_mu);
    return on;
}

/* ---- readings ---- */

static int by_bytes_desc(const void *a, const void *b) {
    const asr_devmem_proc_t *x = a, *y = b;
    return x->bytes < y->bytes   ? 1
           : x->bytes > y->bytes ? -1
                                 : (x->pid > y->pid) - (x->pid < y->pid);
}

static void self_name(char *name, size_t len) {
    asr_nvml_process_name((unsigned)getpid(), name, len);
}

static void finish(asr_devmem_t *out) {
    out->used = out->total - out->free;
    qsort(out->procs, (size_t)out->n_procs, sizeof out->procs[0], by_bytes_desc);
}

static asr_err_t read_injected(const asr_devmem_spec_t *s, asr_devmem_t *out) {
    snprintf(out->source, sizeof out->source, "injected");
    if (s->read_fail) {
        asr_errf(out->why, sizeof out->why, "injected: reading failed");
        return ASR_ERR_UNSUPPORTED;
    }
    snprintf(out->name, sizeof out->name, "injected %s:%d",
             out->kind == ASR_DEV_CUDA ? "cuda" : "host", out->index);
    uint64_t others = 0;
    for (int i = 0; i < s->n_procs; i++)
        others += s->procs[i].bytes;
    uint64_t self = asr_dev_allocated_bytes(out->kind, out->index);
    out->total = s->total;
    out->self = self;
    out->free = others + self >= s->total ? 0 : s->total - others - self;
    out->ok = true;
    if (s->nvml_absent) {
        out->procs_known = false;
        asr_errf(out->why, sizeof out->why, "injected: NVML absent (no per-process list)");
    } else {
        out->procs_known = true;
        for (int i = 0; i < s->n_procs; i++)
            out->procs[out->n_procs++] = s->procs[i];
        /* asrd shows up on the card as it would in NVML's list; when the list is full, in
         * place of the smallest other */
        if (self > 0) {
            if (out->n_procs == ASR_DEVMEM_MAX_PROCS) {
                qsort(out->procs, (size_t)out->n_procs, sizeof out->procs[0], by_bytes_desc);
                out->n_procs--;
            }
            asr_devmem_proc_t *p = &out->procs[out->n_procs++];
            memset(p, 0, sizeof *p);
            p->pid = (unsigned)getpid();
            p->self = true;
            p->bytes = self;
            self_name(p->name, sizeof p->name);
        }
    }
    finish(out);
    return ASR_OK;
}

/* NVML's list into out->procs (largest first when more than fit); out->self from our entry. */
static void read_nvml_procs(asr_devmem_t *out) {
    asr_nvml_proc_t list[128];
    int n = 0;
    char why[160];
    if (asr_nvml_processes(out->index, list, 128, &n, why, sizeof why) != ASR_OK) {
        asr_errf(out->why, sizeof out->why, "%s", why);
        return;
    }
    if (n > 128)
        n = 128; /* the rest are not seen: the list is incomplete */
    unsigned me = (unsigned)getpid();
    bool all_bytes = true;
    asr_devmem_proc_t tmp[128];
    for (int i = 0; i < n; i++) {
        memset(&tmp[i], 0, sizeof tmp[i]);
        tmp[i].pid = list[i].pid;
        tmp[i].bytes = list[i].bytes;
        tmp[i].self = list[i].pid == me;
        all_bytes = all_bytes && list[i].bytes_known;
        if (tmp[i].self)
            out->self = list[i].bytes;
    }
    qsort(tmp, (size_t)n, sizeof tmp[0], by_bytes_desc);
    out->n_procs = n < ASR_DEVMEM_MAX_PROCS ? n : ASR_DEVMEM_MAX_PROCS;
    for (int i = 0; i < out->n_procs; i++) {
        out->procs[i] = tmp[i];
        asr_nvml_process_name(tmp[i].pid, out->procs[i].name, sizeof out->procs[i].name);
    }
    out->procs_known = all_bytes && n <= ASR_DEVMEM_MAX_PROCS;
    if (!all_bytes)
        asr_errf(out->why, sizeof out->why,
                 "NVML does not report per-process memory on this device");
    else if (n > ASR_DEVMEM_MAX_PROCS)
        asr_errf(out->why, sizeof out->why, "%d processes on the device: the %d largest listed", n,
                 ASR_DEVMEM_MAX_PROCS);
}

static asr_err_t read_cuda(asr_devmem_t *out) {
    uint64_t self = asr_dev_allocated_bytes(ASR_DEV_CUDA, out->index);
    out->self = self; /* NVML's entry for our pid replaces it when listed */
    uint64_t used = 0, fr = 0, tot = 0;
    char nv_why[160];
    if (asr_nvml_mem(out->index, &used, &fr, &tot, nv_why, sizeof nv_why) == ASR_OK) {
        snprintf(out->source, sizeof out->source, "nvml");
        if (asr_nvml_name(out->index, out->name, sizeof out->name, NULL, 0) != ASR_OK)
            out->name[0] = 0;
        out->total = tot;
        out->free = fr > tot ? tot : fr;
        out->ok = true;
        read_nvml_procs(out);
        finish(out);
        return ASR_OK;
    }
    if (self == 0) {
        asr_errf(out->why, sizeof out->why, "%s; cudaMemGetInfo not asked: no context on cuda:%d",
                 nv_why, out->index);
        return ASR_ERR_UNSUPPORTED;
    }
    char cu_why[120];
    if (asr__dev_cuda_mem_get_info(out->index, &fr, &tot, cu_why, sizeof cu_why) != ASR_OK) {
        asr_errf(out->why, sizeof out->why, "%s; %s", nv_why, cu_why);
        return ASR_ERR_UNSUPPORTED;
    }
    snprintf(out->source, sizeof out->source, "cuda");
    asr_dev_info_t info;
    if (asr_gpu_cuda_info(out->index, &info, NULL, 0) == ASR_OK)
        snprintf(out->name, sizeof out->name, "%s", info.name);
    out->total = tot;
    out->free = fr > tot ? tot : fr;
    out->ok = true;
    asr_errf(out->why, sizeof out->why, "no per-process list: %s", nv_why);
    finish(out);
    return ASR_OK;
}

static asr_err_t read_host(asr_devmem_t *out) {
    out->self = asr_dev_allocated_bytes(ASR_DEV_HOST, out->index);
    snprintf(out->source, sizeof out->source, "host");
    snprintf(out->name, sizeof out->name, "host reference");
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) {
        asr_errf(out->why, sizeof out->why, "host device: /proc/meminfo unreadable");
        return ASR_ERR_UNSUPPORTED;
    }
    unsigned long long total_kb = 0, avail_kb = 0, kb;
    bool have_total = false, have_avail = false;
    char line[256];
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "MemTotal: %llu kB", &kb) == 1)
            total_kb = kb, have_total = true;
        else if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1)
            avail_kb = kb, have_avail = true;
    }
    fclose(f);
    if (!have_total || !have_avail || total_kb == 0) {
        asr_errf(out->why, sizeof out->why,
                 "host device: no MemTotal/MemAvailable in /proc/meminfo");
        return ASR_ERR_UNSUPPORTED;
    }
    out->total = (uint64_t)total_kb << 10;
    out->free = avail_kb > total_kb ? out->total : (uint64_t)avail_kb << 10;
    out->ok = true;
    asr_errf(out->why, sizeof out->why, "host device: no per-process list");
    finish(out);
    return ASR_OK;
}

asr_err_t asr_devmem_read(asr_dev_kind_t kind, int index, asr_devmem_t *out) {
    memset(out, 0, sizeof *out);
    out->kind = kind;
    out->index = index;
    pthread_mutex_lock(&inj_mu);
    bool on = inj_on;
    asr_devmem_spec_t s;
    if (on)
        s = inj;
    pthread_mutex_unlock(&inj_mu);
    if (on)
        return read_injected(&s, out);
    if (index < 0) {
        asr_errf(out->why, sizeof out->why, "negative device index %d", index);
        return ASR_ERR_UNSUPPORTED;
    }
    if (kind == ASR_DEV_CUDA)
        return read_cuda(out);
    if (kind == ASR_DEV_HOST)
        return read_host(out);
    asr_errf(out->why, sizeof out->why, "unknown device kind %d", (int)kind);
    return ASR_ERR_UNSUPPORTED;
}

uint64_t asr_devmem_budget(const asr_devmem_t *m, uint64_t limit, uint64_t reserve,
                           uint64_t context, uint64_t total_fallback) {
    uint64_t avail = limit ? limit : total_fallback;
    if (m->ok) {
        bool injected = !strcmp(m->source, "injected"), listed = false;
        for (int i = 0; i < m->n_procs; i++)
            listed |= m->procs[i].self;
        avail = m->free + m->self + (listed || injected ? 0 : context);
        if (m->procs_known && (listed || injected)) { /* a reading whose free saturated at 0
                                                         still says what the others hold */
            uint64_t others = 0;
            for (int i = 0; i < m->n_procs; i++)
                others += m->procs[i].self ? 0 : m->procs[i].bytes;
            uint64_t room = m->total > others ? m->total - others : 0;
            avail = room < avail ? room : avail;
        }
        if (limit && limit < avail)
            avail = limit;
    }
    return avail > reserve ? avail - reserve : 0;
}
