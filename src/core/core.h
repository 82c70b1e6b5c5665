/* core: errors, logging, checked allocation, small string helpers, timing.
 * Everything here is thread-safe unless noted. */
#ifndef ASR_CORE_H
#define ASR_CORE_H

#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include "asr/common.h"

/* ---- logging ---- */
typedef enum {
    ASR_LOG_ERROR = 0,
    ASR_LOG_WARN = 1,
    ASR_LOG_INFO = 2,
    ASR_LOG_DEBUG = 3,
    ASR_LOG_TRACE = 4
} asr_log_level_t;

typedef void (*asr_log_cb)(asr_log_level_t level, const char *line, void *user_data);

extern int asr__log_level; /* current level; read without locking (racy reads are benign) */

/* Installs the log sink (NULL = stderr). */
void asr_log_set(asr_log_cb cb, void *user_data);
void asr_log_set_level(asr_log_level_t level);
void asr__log_write(asr_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Arguments are not evaluated when the level is disabled. */
#define ASR_LOG(level, ...)                                                                        \
    do {                                                                                           \
        if ((int)(level) <= asr__log_level)                                                        \
            asr__log_write((level), __VA_ARGS__);                                                  \
    } while (0)

/* The log line `line` (key=value pairs, as the sink receives it) as one JSON object on one line,
 * appended to out: {"ts": ts, "level": …, "msg": …, other keys in order}; numbers and true/false
 * as such, other values as strings, free text in "text" (logfmt.c). */
struct asr_buf;
void asr_log_line_json(const char *ts, const char *line, struct asr_buf *out);

/* Always-on invariant check: logs file:line and aborts. */
#define ASR_ASSERT(cond)                                                                           \
    do {                                                                                           \
        if (!(cond))                                                                               \
            asr__assert_fail(#cond, __FILE__, __LINE__);                                           \
    } while (0)
_Noreturn void asr__assert_fail(const char *expr, const char *file, int line);

/* ---- allocation ----
 * asr_xmalloc & co abort on failure (small fixed allocations only).
 * asr_malloc & co return NULL on failure (input-sized allocations) and honour the fault-injection
 * hook used by tests. */
void *asr_xmalloc(size_t n);
void *asr_xcalloc(size_t n, size_t size);
void *asr_xrealloc(void *p, size_t n);
char *asr_xstrdup(const char *s);
void *asr_malloc(size_t n);
void *asr_calloc(size_t n, size_t size);
void *asr_realloc(void *p, size_t n);
/* 64-byte aligned, checked; free with asr_free_aligned. */
void *asr_malloc_aligned(size_t n);
void asr_free_aligned(void *p);
/* A large zeroed region on 2-MiB boundaries, advised to use transparent huge pages when it is
 * 1 GiB or more (a large model's weights): first touch costs one fault per 2 MiB instead of per
 * 4 KiB, but may wait for the kernel to compact memory, which smaller regions skip. Checked
 * like the others; free with asr_free_huge and the same n. asr_huge_trim gives back the pages past
 * `keep` bytes and returns the size to free with from then on. */
void *asr_malloc_huge(size_t n);
size_t asr_huge_trim(void *p, size_t n, size_t keep);
void asr_free_huge(void *p, size_t n);

/* Fault injection: fail the nth checked allocation from now (1-based), or any checked allocation of
 * at least `min_bytes` (0 = disabled). Process-wide. */
void asr_alloc_fail_set(long nth, size_t min_bytes);
/* Allocation-site tracing for tests: asr_alloc_trace(true) starts recording the call site of each
 * checked allocation (from 1); asr_alloc_trace_sites writes, for each distinct site in order of
 * first use, the index of its first allocation, and returns how many (at most max). */
void asr_alloc_trace(bool on);
int asr_alloc_trace_sites(unsigned long *first, int max);
/* Checked allocations made so far (all threads). */
unsigned long asr_alloc_checked_count(void);
/* Process-wide malloc tuning for long-running use (call once at startup). */
void asr_malloc_configure(void);

/* ---- strings ---- */
/* printf into a growable buffer. */
typedef struct asr_buf {
    char *data;
    size_t len;
    size_t cap;
} asr_buf_t;
void asr_buf_init(asr_buf_t *b);
void asr_buf_free(asr_buf_t *b);
void asr_buf_append(asr_buf_t *b, const void *data, size_t len);
void asr_buf_puts(asr_buf_t *b, const char *s);
void asr_buf_printf(asr_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Takes ownership of the data (NUL-terminated); the buffer is reset. */
char *asr_buf_steal(asr_buf_t *b);

/* UTF-8 (utf8.c), strict: decodes the sequence at s[0..n) (n >= 1). Returns its length (1-4) and
 * sets *cp when valid; otherwise returns -k, k >= 1 the length of the maximal invalid subpart (the
 * bytes one U+FFFD replaces; a sequence cut short by n counts as invalid), *cp unspecified. */
int asr_utf8_next(const uint8_t *s, size_t n, uint32_t *cp);

/* snprintf into errbuf if non-NULL. */
void asr_errf(char *errbuf, size_t errbuf_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* mkdir -p (fs.c): creates path and its missing parents with `mode`; fails (ASR_ERR_IO, reason in
 * err) when a part cannot be made or the path is not a directory. */
asr_err_t asr_mkdir_p(const char *path, unsigned mode, char *err, size_t errlen);
/* Reads a whole file (NUL-terminated; checked allocation). */
asr_err_t asr_read_file(const char *path, char **out, size_t *out_len);
/* The same, and on failure writes "cannot read <what> <path>: <reason>" to errbuf. */
asr_err_t asr_read_file_msg(const char *path, const char *what, char **out, size_t *out_len,
                            char *errbuf, size_t errbuf_len);

/* ---- time (clock.c) ---- */
double asr_now_s(void); /* monotonic seconds (CLOCK_MONOTONIC): the clock of every deadline */
/* Initialises a condition variable whose timed waits run on the monotonic clock; every condition
 * variable waited on with a timeout is made here (a wall-clock jump must not stretch or cut a
 * wait). Aborts on failure (a programming error). Destroy with pthread_cond_destroy. */
void asr_cond_init(pthread_cond_t *cv);
/* Waits on cv (made by asr_cond_init; caller holds mu) until signalled or until the asr_now_s()
 * time deadline_s. Returns 0 when woken (maybe spuriously: re-check the predicate) or ETIMEDOUT. */
int asr_cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, double deadline_s);
/* The same for at most `seconds` from now (<= 0: returns at once unless already signalled). */
int asr_cond_timedwait_s(pthread_cond_t *cv, pthread_mutex_t *mu, double seconds);
/* Sleeps `seconds` (monotonic; resumed after signals). For pacing, never for synchronisation. */
void asr_sleep_s(double seconds);

#endif
