/* core: implementation of logging, allocation helpers, growable buffers and file reading. */
#include "core/core.h"

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>

const char *asr_strerror(asr_err_t err) {
    switch (err) {
#define ASR_X_CASE(name, val, msg)                                                                 \
    case ASR_ERR_##name:                                                                           \
        return msg;
        ASR_ERR_LIST(ASR_X_CASE)
#undef ASR_X_CASE
    }
    return "unknown error";
}

int asr__log_level = ASR_LOG_WARN;
static asr_log_cb g_log_cb;
static void *g_log_ud;
static pthread_mutex_t g_log_mu = PTHREAD_MUTEX_INITIALIZER;

void asr_log_set(asr_log_cb cb, void *user_data) {
    pthread_mutex_lock(&g_log_mu);
    g_log_cb = cb;
    g_log_ud = user_data;
    pthread_mutex_unlock(&g_log_mu);
}

void asr_log_set_level(asr_log_level_t level) { asr__log_level = (int)level; }

void asr__log_write(asr_log_level_t level, const char *fmt, ...) {
    static const char *names[] = {"ERROR", "WARN", "INFO", "DEBUG", "TRACE"};
    char line[2048];
    int off = snprintf(line, sizeof line, "level=%s ", names[level]);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + off, sizeof line - (size_t)off, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&g_log_mu);
    if (g_log_cb)
        g_log_cb(level, line, g_log_ud);
    else
        fprintf(stderr, "%s\n", line);
    pthread_mutex_unlock(&g_log_mu);
}

void asr__assert_fail(const char *expr, const char *file, int line) {
    fprintf(stderr, "asrd: assertion failed: %s at %s:%d\n", expr, file, line);
    abort();
}

static _Atomic long g_fail_nth;
static _Atomic size_t g_fail_min_bytes;

void asr_alloc_fail_set(long nth, size_t min_bytes) {
    atomic_store(&g_fail_nth, nth);
    atomic_store(&g_fail_min_bytes, min_bytes);
}

static _Atomic unsigned long g_checked;

unsigned long asr_alloc_checked_count(void) { return atomic_load(&g_checked); }

void asr_malloc_configure(void) {
    /* Large buffers (weights, slot arenas, audio) always come from mmap and go back to the
     * system when freed, instead of glibc raising its threshold after the first free and
     * keeping them in the heap: memory returns to its baseline after a model or slot is freed. */
    mallopt(M_MMAP_THRESHOLD, 1 << 20);
    mallopt(M_TRIM_THRESHOLD, 4 << 20);
}

/* Allocation-site trace (tests): the caller address of each checked allocation while on. */
#define TRACE_CAP 8192
static _Atomic int g_trace_on;
static _Atomic unsigned long g_trace_n;
static uintptr_t g_trace[TRACE_CAP];

void asr_alloc_trace(bool on) {
    if (on)
        atomic_store(&g_trace_n, 0);
    atomic_store(&g_trace_on, on);
}

int asr_alloc_trace_sites(unsigned long *first, int max) {
    unsigned long n = atomic_load(&g_trace_n);
    if (n > TRACE_CAP)
        n = TRACE_CAP;
    int k = 0;
    for (unsigned long i = 0; i < n && k < max; i++) {
        bool seen = false;
        for (unsigned long j = 0; j < i && !seen; j++)
            seen = g_trace[j] == g_trace[i];
        if (!seen)
            first[k++] = i + 1;
    }
    return k;
}

static int should_fail_at(size_t n, uintptr_t site) {
    atomic_fetch_add(&g_checked, 1);
    if (atomic_load(&g_trace_on)) {
        unsigned long i = atomic_fetch_add(&g_trace_n, 1);
        if (i < TRACE_CAP)
            g_trace[i] = site;
    }
    size_t mb = atomic_load(&g_fail_min_bytes);
    if (mb && n >= mb)
        return 1;
    long nth = atomic_load(&g_fail_nth);
    if (nth > 0) {
        long left = atomic_fetch_sub(&g_fail_nth, 1);
        if (left == 1)
            return 1;
    }
    return 0;
}

static _Noreturn void oom(size_t n) {
    fprintf(stderr, "asrd: out of memory allocating %zu bytes\n", n);
    abort();
}

void *asr_xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p)
        oom(n);
    return p;
}
void *asr_xcalloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        oom(n * size);
    return p;
}
void *asr_xrealloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom(n);
    return q;
}
char *asr_xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = asr_xmalloc(n);
    memcpy(d, s, n);
    return d;
}
#define should_fail(n) should_fail_at((n), (uintptr_t)__builtin_return_address(0))

__attribute__((noinline)) void *asr_malloc(size_t n) {
    return should_fail(n) ? NULL : malloc(n ? n : 1);
}
__attribute__((noinline)) void *asr_calloc(size_t n, size_t size) {
    if (size && n > SIZE_MAX / size)
        return NULL;
    return should_fail(n * size) ? NULL : calloc(n ? n : 1, size ? size : 1);
}
__attribute__((noinline)) void *asr_realloc(void *p, size_t n) {
    return should_fail(n) ? NULL : realloc(p, n ? n : 1);
}
__attribute__((noinline)) void *asr_malloc_aligned(size_t n) {
    if (should_fail(n))
        return NULL;
    void *p = NULL;
    if (posix_memalign(&p, 64, n ? (n + 63) & ~(size_t)63 : 64) != 0)
        return NULL;
    return p;
}
void asr_free_aligned(void *p) { free(p); }

#define HUGE_ALIGN ((size_t)2 << 20)
#define HUGE_ADVISE_MIN ((size_t)1 << 30)
static size_t huge_round(size_t n) { return (n + HUGE_ALIGN - 1) & ~(HUGE_ALIGN - 1); }

__attribute__((noinline)) void *asr_malloc_huge(size_t n) {
    if (should_fail(n))
        return NULL;
    size_t len = huge_round(n ? n : 1);
    /* map one alignment unit more, then unmap the slack on both sides */
    unsigned char *raw = mmap(NULL, len + HUGE_ALIGN, PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (raw == MAP_FAILED)
        return NULL;
    uintptr_t start = ((uintptr_t)raw + HUGE_ALIGN - 1) & ~(uintptr_t)(HUGE_ALIGN - 1);
    size_t head = start - (uintptr_t)raw;
    if (head)
        munmap(raw, head);
    if (HUGE_ALIGN - head)
        munmap((unsigned char *)start + len, HUGE_ALIGN - head);
#ifdef MADV_HUGEPAGE
    /* Where the kernel defragments on demand for advised regions (the default, defrag=madvise), a
     * huge-page fault may first compact memory: measured 0.5-1 s of stalls loading base and its
     * slot (~0.45 GB of 2-MiB faults) after the page cache had filled memory, against 0.1 s with
     * 4-KiB pages and no slower compute. A large model's weights (GBs) load faster in huge pages
     * (turbo int8: 9 against 16 s) and step 5% faster: only regions of 1 GiB or more ask. */
    if (len >= HUGE_ADVISE_MIN)
        madvise((void *)start, len, MADV_HUGEPAGE);
#endif
    return (void *)start;
}
size_t asr_huge_trim(void *p, size_t n, size_t keep) {
    size_t len = huge_round(n ? n : 1), k = huge_round(keep ? keep : 1);
    if (p && k < len)
        munmap((unsigned char *)p + k, len - k);
    return k < len ? k : n;
}
void asr_free_huge(void *p, size_t n) {
    if (p)
        munmap(p, huge_round(n ? n : 1));
}

void asr_buf_init(asr_buf_t *b) { memset(b, 0, sizeof *b); }
void asr_buf_free(asr_buf_t *b) {
    free(b->data);
    asr_buf_init(b);
}
static void buf_reserve(asr_buf_t *b, size_t extra) {
    if (b->len + extra + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra + 1)
        cap *= 2;
    b->data = asr_xrealloc(b->data, cap);
    b->cap = cap;
}
void asr_buf_append(asr_buf_t *b, const void *data, size_t len) {
    buf_reserve(b, len);
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = 0;
}
void asr_buf_puts(asr_buf_t *b, const char *s) { asr_buf_append(b, s, strlen(s)); }
void asr_buf_printf(asr_buf_t *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    buf_reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}
char *asr_buf_steal(asr_buf_t *b) {
    if (!b->data)
        buf_reserve(b, 0), b->data[0] = 0;
    char *d = b->data;
    asr_buf_init(b);
    return d;
}

void asr_errf(char *errbuf, size_t errbuf_len, const char *fmt, ...) {
    if (!errbuf || !errbuf_len)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, errbuf_len, fmt, ap);
    va_end(ap);
}

asr_err_t asr_read_file(const char *path, char **out, size_t *out_len) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return errno == ENOENT ? ASR_ERR_NOT_FOUND : ASR_ERR_IO;
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return ASR_ERR_IO;
    }
    size_t n = (size_t)st.st_size;
    char *d = asr_malloc(n + 1);
    if (!d) {
        fclose(f);
        return ASR_ERR_NOMEM;
    }
    size_t got = fread(d, 1, n, f);
    fclose(f);
    if (got != n) {
        free(d);
        return ASR_ERR_IO;
    }
    d[n] = 0;
    *out = d;
    if (out_len)
        *out_len = n;
    return ASR_OK;
}

asr_err_t asr_read_file_msg(const char *path, const char *what, char **out, size_t *out_len,
                            char *errbuf, size_t errbuf_len) {
    asr_err_t rc = asr_read_file(path, out, out_len);
    if (rc != ASR_OK)
        asr_errf(errbuf, errbuf_len, "cannot read %s %s: %s", what, path,
                 rc == ASR_ERR_NOT_FOUND ? "no such file" : asr_strerror(rc));
    return rc;
}
