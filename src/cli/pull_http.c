/* cli/pull: HTTP GET over libcurl for `asrd pull`: retries, resumable downloads, progress bar.
 *
 * One libcurl easy handle per attempt, streaming straight to disk, so a model never sits whole
 * in memory. Redirects are followed (the Hugging Face hub sends LFS files to a CDN, ModelScope to
 * object storage); libcurl drops the Authorization header when a redirect changes host, so a
 * token does not leak to the CDN.
 *
 * Resuming: a download appends to its .part file. When the file already holds N bytes the
 * request carries "Range: bytes=N-" (set by hand with CURLOPT_RANGE, not CURLOPT_RESUME_FROM,
 * which fails outright when a server ignores the range); a 206 whose Content-Range starts at N
 * continues the file, a 200 replaces it from byte 0, and a 416 or a 206 for another range
 * empties it for the next attempt. The caller checks the finished file's checksum, so a stale .part
 * can only cost a second download, never a wrong model.
 *
 * Retries: transient failures (HTTP 5xx, 408, 429; refused, reset or cut-short connections,
 * stalls) are retried up to ASR__CLI_HTTP_TRIES times, waiting 1, 2, 4, 8 s (base delay from
 * $ASRD_PULL_BACKOFF_MS, default 1000, so tests need not wait), or longer when the answer's
 * Retry-After asks for it (up to 30 s). 404 is asked twice (a CDN that
 * has not seen a fresh upload yet), other 4xx once: they will not change by asking again.
 *
 * The X-Linked-Etag of the hub's first (redirecting) response holds an LFS file's sha256 and is
 * handed back to the caller; a plain ETag counts only when it, too, is 64 hex digits (a git blob
 * id or an S3 MD5 is not a SHA-256). */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>

#include "cli/pull_int.h"

#define CONNECT_TIMEOUT_S 30L
#define STALL_BYTES_PER_S 1024L
#define STALL_TIME_S 60L
#define TRIES_404 2
#define BACKOFF_MAX_S 30.0
#define BAR_WIDTH 24

/* One attempt's state. Exactly one of fd (file) and mem (memory) is the sink. */
typedef struct {
    CURL *c;
    int fd;
    asr_buf_t *mem;
    size_t mem_max;
    bool mem_over;
    uint64_t start;    /* bytes the file held when the request went out (the Range asked) */
    uint64_t n;        /* bytes of the body written so far (to the file: counted from 0) */
    bool restarted;    /* the server sent the whole file: the sink was emptied */
    bool bad_range;    /* a 206 for another range than asked: the file was emptied, retry */
    bool body_started; /* the first body byte of the final response arrived */
    int write_errno;
    long status;           /* of the latest response */
    uint64_t range_start;  /* from Content-Range of the latest response; UINT64_MAX: none */
    char linked_etag[160]; /* X-Linked-Etag from any response of the redirect chain */
    char etag[160];        /* ETag of the latest response */
    double retry_after;    /* seconds a 429/503 asked us to wait (Retry-After), or 0 */
    char *next;            /* Link rel="next" of the latest response (malloc'd), or NULL */
    const asr__cli_http_opts_t *o;
    double t0, last_draw;
    bool drew;
} xfer_t;

asr_err_t asr__cli_http_global_init(char *err, size_t err_len) {
    CURLcode c = curl_global_init(CURL_GLOBAL_DEFAULT);
    if (c != CURLE_OK) {
        asr_errf(err, err_len, "libcurl init failed: %s", curl_easy_strerror(c));
        return ASR_ERR_IO;
    }
    return ASR_OK;
}

void asr__cli_http_global_cleanup(void) { curl_global_cleanup(); }

/* Copies the value of header line `line` (len bytes) if its name is `name` (with the colon). */
static bool header_value(const char *line, size_t len, const char *name, char *out,
                         size_t out_len) {
    size_t nl = strlen(name);
    if (len < nl || strncasecmp(line, name, nl) != 0)
        return false;
    const char *p = line + nl, *end = line + len;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    while (end > p && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
    size_t n = (size_t)(end - p) < out_len - 1 ? (size_t)(end - p) : out_len - 1;
    memcpy(out, p, n);
    out[n] = '\0';
    return true;
}

/* Takes the URL of the rel="next" entry of a Link header value ("<url>; rel=\"next\", ..."). */
static void link_next(xfer_t *x, const char *v, size_t len) {
    const char *end = v + len;
    while (v < end) {
        const char *lt = memchr(v, '<', (size_t)(end - v));
        const char *gt = lt ? memchr(lt, '>', (size_t)(end - lt)) : NULL;
        if (!gt)
            return;
        const char *comma = memchr(gt, ',', (size_t)(end - gt));
        const char *stop = comma ? comma : end;
        bool is_next = false;
        for (const char *p = gt; p + 10 <= stop && !is_next; p++)
            is_next = strncasecmp(p, "rel=\"next\"", 10) == 0 || strncasecmp(p, "rel=next", 8) == 0;
        if (is_next) {
            free(x->next);
            x->next = asr_xmalloc((size_t)(gt - lt));
            memcpy(x->next, lt + 1, (size_t)(gt - lt - 1));
            x->next[gt - lt - 1] = '\0';
            return;
        }
        v = stop + (comma ? 1 : 0);
    }
}

static size_t on_header(char *buf, size_t size, size_t nitems, void *user_data) {
    xfer_t *x = user_data;
    size_t len = size * nitems;
    char v[160];
    if (len >= 5 && strncasecmp(buf, "HTTP/", 5) == 0) {
        /* A new response of the redirect chain. */
        x->etag[0] = '\0';
        x->range_start = UINT64_MAX;
        free(x->next);
        x->next = NULL;
        const char *sp = memchr(buf, ' ', len);
        x->status = sp ? strtol(sp + 1, NULL, 10) : 0;
    } else if (len > 5 && strncasecmp(buf, "link:", 5) == 0) {
        link_next(x, buf + 5, len - 5);
    } else if (header_value(buf, len, "retry-after:", v, sizeof(v))) {
        x->retry_after = atof(v); /* the delta-seconds form; an HTTP date reads as 0 */
    } else if (header_value(buf, len, "content-range:", v, sizeof(v))) {
        unsigned long long a;
        if (sscanf(v, "bytes %llu-", &a) == 1)
            x->range_start = a;
    } else if (!header_value(buf, len, "x-linked-etag:", x->linked_etag, sizeof(x->linked_etag))) {
        header_value(buf, len, "etag:", x->etag, sizeof(x->etag));
    }
    return len;
}

/* Decides, at the first byte of the body, whether it continues the file or replaces it. */
static bool begin_body(xfer_t *x) {
    x->body_started = true;
    if (x->fd < 0 || x->start == 0)
        return true;
    if (x->status == 206 && x->range_start == x->start)
        return true;
    /* A whole file (200): start the file over with it. A range we did not ask for: start over
     * with the next attempt, which asks for the whole file. */
    if (ftruncate(x->fd, 0) != 0 || lseek(x->fd, 0, SEEK_SET) != 0) {
        x->write_errno = errno;
        return false;
    }
    x->start = 0;
    x->restarted = true;
    x->bad_range = x->status == 206;
    return !x->bad_range;
}

static size_t on_data(char *p, size_t size, size_t nmemb, void *user_data) {
    xfer_t *x = user_data;
    size_t len = size * nmemb;
    if (!x->body_started && !begin_body(x))
        return 0;
    if (x->mem) {
        if (x->mem->len + len > x->mem_max) {
            x->mem_over = true;
            return 0;
        }
        asr_buf_append(x->mem, p, len);
    } else if (asr__cli_pull_write_all(x->fd, p, len) != 0) {
        x->write_errno = errno;
        return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
    }
    x->n += len;
    return len;
}

static void human(double bytes, char *out, size_t out_len) {
    if (bytes >= 1e9)
        snprintf(out, out_len, "%.2f GB", bytes / 1e9);
    else
        snprintf(out, out_len, "%.1f MB", bytes / 1e6);
}

/* "  model.bin  [#########...............]  38%  28.7 MB / 75.5 MB  41.2 MB/s" */
static void draw(xfer_t *x, uint64_t total, bool final) {
    uint64_t done = x->start + x->n;
    double secs = asr_now_s() - x->t0;
    double rate = secs > 0 ? (double)x->n / 1e6 / secs : 0;
    char d[32], t[32], bar[BAR_WIDTH + 1];
    human((double)done, d, sizeof(d));
    if (total > 0 && done <= total) {
        int fill = (int)((double)BAR_WIDTH * (double)done / (double)total);
        for (int i = 0; i < BAR_WIDTH; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[BAR_WIDTH] = '\0';
        human((double)total, t, sizeof(t));
        fprintf(stderr, "\r\033[K  %-24s [%s] %3d%%  %s / %s  %.1f MB/s", x->o->label, bar,
                (int)(100.0 * (double)done / (double)total), d, t, rate);
    } else {
        fprintf(stderr, "\r\033[K  %-24s %s  %.1f MB/s", x->o->label, d, rate);
    }
    if (final)
        fputc('\n', stderr);
    fflush(stderr);
    x->drew = !final;
}

static int on_progress(void *user_data, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow) {
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    xfer_t *x = user_data;
    double now = asr_now_s();
    if (x->n > 0 && now - x->last_draw >= 0.2) { /* nothing for 404s and redirects */
        x->last_draw = now;
        draw(x, dltotal > 0 ? x->start + (uint64_t)dltotal : 0, false);
    }
    return 0;
}

/* The SHA-256 an ETag value names, lowercased, or false. Accepts W/ and quotes around it. */
static bool etag_sha256(const char *v, char out[65]) {
    if (!strncmp(v, "W/", 2))
        v += 2;
    if (*v == '"')
        v++;
    size_t n = 0;
    while (n < 64 && isxdigit((unsigned char)v[n])) {
        out[n] = (char)tolower((unsigned char)v[n]);
        n++;
    }
    out[n] = '\0';
    return n == 64 && (v[64] == '\0' || v[64] == '"');
}

static CURL *make_handle(const char *url, xfer_t *x, struct curl_slist *hdrs, char *curl_err) {
    CURL *c = curl_easy_init();
    if (!c)
        return NULL;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_S);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, STALL_BYTES_PER_S);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, STALL_TIME_S);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "asrd-pull/0.2");
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#endif
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, curl_err);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, x);
    if (hdrs)
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    if (x->start > 0) {
        char range[32];
        snprintf(range, sizeof(range), "%llu-", (unsigned long long)x->start);
        curl_easy_setopt(c, CURLOPT_RANGE, range); /* copied by libcurl */
    }
    if (x->o->tty && x->fd >= 0) {
        curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(c, CURLOPT_XFERINFODATA, x);
    }
    return c;
}

typedef enum { DONE, RETRY, FAIL } verdict_t;

/* Classifies a finished attempt and writes the message a final failure would carry. */
static verdict_t judge(CURLcode cc, const xfer_t *x, const char *url, const char *curl_err,
                       int attempt, asr_err_t *rc, char *err, size_t err_len) {
    *rc = ASR_ERR_IO;
    if (cc == CURLE_OK)
        return (*rc = ASR_OK), DONE;
    if (cc == CURLE_HTTP_RETURNED_ERROR) {
        long s = x->status;
        asr_errf(err, err_len, "HTTP %ld for %s%s", s, url,
                 s == 401 || s == 403 ? " (gated or private? set HF_TOKEN)" : "");
        if (s == 404) {
            *rc = ASR_ERR_NOT_FOUND;
            return attempt < TRIES_404 ? RETRY : FAIL;
        }
        if (s == 416) /* our range is past the end: the file was emptied, ask again */
            return RETRY;
        return s >= 500 || s == 408 || s == 429 ? RETRY : FAIL;
    }
    if (cc == CURLE_WRITE_ERROR && x->bad_range) {
        asr_errf(err, err_len, "%s: the server sent another range than the one asked for", url);
        return RETRY;
    }
    if (cc == CURLE_WRITE_ERROR && x->mem_over) {
        asr_errf(err, err_len, "%s: the answer is larger than %zu bytes", url, x->mem_max);
        return FAIL;
    }
    if (cc == CURLE_WRITE_ERROR && x->write_errno) {
        asr_errf(err, err_len, "write %s: %s", x->o->label, strerror(x->write_errno));
        return FAIL;
    }
    asr_errf(err, err_len, "download of %s failed: %s", url,
             curl_err[0] ? curl_err : curl_easy_strerror(cc));
    if (cc == CURLE_OPERATION_TIMEDOUT)
        *rc = ASR_ERR_TIMEOUT;
    switch (cc) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_PARTIAL_FILE:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        return RETRY;
    default:
        return FAIL;
    }
}

static double backoff_s(int attempt) {
    const char *env = getenv("ASRD_PULL_BACKOFF_MS");
    double base = env && *env ? atof(env) / 1000.0 : 1.0;
    double d = base;
    for (int i = 1; i < attempt && d < BACKOFF_MAX_S; i++)
        d *= 2;
    return d < BACKOFF_MAX_S ? d : BACKOFF_MAX_S;
}

/* Runs attempts until one succeeds or the failure is final. fd < 0: the body goes to mem. */
static asr_err_t fetch(const char *url, const asr__cli_http_opts_t *o, int fd, asr_buf_t *mem,
                       size_t mem_max, char linked_sha[65], char **next, char *err,
                       size_t err_len) {
    struct curl_slist *hdrs = NULL;
    if (o->bearer && *o->bearer) {
        asr_buf_t h;
        asr_buf_init(&h);
        asr_buf_printf(&h, "Authorization: Bearer %s", o->bearer);
        hdrs = curl_slist_append(NULL, h.data);
        asr_buf_free(&h);
    }
    asr_err_t rc = ASR_ERR_IO;
    int attempt = 0;
    for (;;) {
        attempt++;
        char curl_err[CURL_ERROR_SIZE] = "";
        xfer_t x = {.fd = fd, .mem = mem, .mem_max = mem_max, .o = o, .t0 = asr_now_s()};
        x.range_start = UINT64_MAX;
        if (mem)
            mem->len = 0;
        struct stat st;
        if (fd >= 0) {
            if (fstat(fd, &st) != 0 || lseek(fd, st.st_size, SEEK_SET) < 0) {
                asr_errf(err, err_len, "%s: %s", o->label, strerror(errno));
                break;
            }
            x.start = (uint64_t)st.st_size;
        }
        x.c = make_handle(url, &x, hdrs, curl_err);
        if (!x.c) {
            asr_errf(err, err_len, "libcurl: cannot create a handle");
            break;
        }
        CURLcode cc = curl_easy_perform(x.c);
        curl_easy_cleanup(x.c);
        if (cc == CURLE_OK && fd >= 0 && !x.body_started && x.start > 0 && x.status != 206) {
            /* An empty 2xx to a range request: the file is empty now, not what we held. */
            if (ftruncate(fd, 0) != 0)
                cc = CURLE_WRITE_ERROR, x.write_errno = errno;
        }
        if (o->tty && fd >= 0 && cc == CURLE_OK)
            draw(&x, x.start + x.n, true);
        else if (x.drew)
            fputs("\r\033[K", stderr); /* clear the unfinished bar */
        if (x.status == 416 && fd >= 0 && ftruncate(fd, 0) != 0) {
            asr_errf(err, err_len, "truncate %s: %s", o->label, strerror(errno));
            break;
        }
        verdict_t v = judge(cc, &x, url, curl_err, attempt, &rc, err, err_len);
        if (v == DONE && next) {
            *next = x.next;
            x.next = NULL;
        }
        free(x.next);
        if (v == DONE) {
            if (linked_sha) {
                char want[65];
                linked_sha[0] = '\0';
                if (etag_sha256(x.linked_etag, want) ||
                    (x.linked_etag[0] == '\0' && etag_sha256(x.etag, want)))
                    memcpy(linked_sha, want, 65);
            }
            break;
        }
        int limit = rc == ASR_ERR_NOT_FOUND ? TRIES_404 : ASR__CLI_HTTP_TRIES;
        if (v == FAIL || attempt >= limit) {
            if (attempt > 1) {
                size_t n = strlen(err);
                snprintf(err + n, err_len - n, " (%d attempts)", attempt);
            }
            break;
        }
        double wait = x.status == 416 ? 0 : backoff_s(attempt);
        if (x.retry_after > wait) /* the server's own estimate, within reason */
            wait = x.retry_after < BACKOFF_MAX_S ? x.retry_after : BACKOFF_MAX_S;
        if (o->tty)
            fprintf(stderr, "  %s: %s; retrying in %.1f s\n", o->label, err, wait);
        asr_sleep_s(wait);
    }
    curl_slist_free_all(hdrs);
    return rc;
}

asr_err_t asr__cli_http_get_mem(const char *url, const asr__cli_http_opts_t *o, size_t max_len,
                                char **out, size_t *out_len, char **next, char *err,
                                size_t err_len) {
    asr_buf_t b;
    asr_buf_init(&b);
    if (next)
        *next = NULL;
    asr_err_t rc = fetch(url, o, -1, &b, max_len, NULL, next, err, err_len);
    if (rc != ASR_OK) {
        asr_buf_free(&b);
        return rc;
    }
    if (out_len)
        *out_len = b.len;
    asr_buf_append(&b, "", 1); /* NUL */
    *out = asr_buf_steal(&b);
    return ASR_OK;
}

asr_err_t asr__cli_http_get_file(const char *url, const char *path, uint64_t expect_len,
                                 const asr__cli_http_opts_t *o, char linked_sha[65], char *err,
                                 size_t err_len) {
    if (linked_sha)
        linked_sha[0] = '\0';
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        asr_errf(err, err_len, "cannot open %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return ASR_ERR_IO;
    }
    asr_err_t rc = ASR_OK;
    if (expect_len > 0 && (uint64_t)st.st_size > expect_len && ftruncate(fd, 0) != 0) {
        asr_errf(err, err_len, "truncate %s: %s", path, strerror(errno));
        rc = ASR_ERR_IO;
    }
    if (rc == ASR_OK && !(expect_len > 0 && (uint64_t)st.st_size == expect_len))
        rc = fetch(url, o, fd, NULL, 0, linked_sha, NULL, err, err_len);
    /* Durable even on failure: what is on disk is what the next run resumes from. */
    if (fsync(fd) != 0 && rc == ASR_OK) {
        asr_errf(err, err_len, "fsync %s: %s", path, strerror(errno));
        rc = ASR_ERR_IO;
    }
    if (close(fd) != 0 && rc == ASR_OK) {
        asr_errf(err, err_len, "close %s: %s", path, strerror(errno));
        rc = ASR_ERR_IO;
    }
    return rc;
}
