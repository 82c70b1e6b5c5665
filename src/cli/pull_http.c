/* cli/pull: downloads from the Hugging Face hub (or any server with its /resolve/ layout).
 *
 * One libcurl easy handle per file, streaming straight to disk while hashing with SHA-256, so a
 * model never sits whole in memory. Redirects are followed (the hub sends LFS files to a CDN);
 * libcurl drops the Authorization header when a redirect changes host, so HF_TOKEN does not leak to
 * the CDN. For LFS files the hub's first response carries X-Linked-Etag: "<sha256>", which is
 * checked after the transfer; a plain ETag is checked only when it, too, is 64 hex digits (a
 * git blob id or an S3 MD5 is not a SHA-256). */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/evp.h>

#include "cli/pull_int.h"

#define CONNECT_TIMEOUT_S 30L
#define STALL_BYTES_PER_S 1024L
#define STALL_TIME_S 60L

typedef struct {
    int fd;
    EVP_MD_CTX *md;
    uint64_t n;
    int write_errno;
    char linked_etag[160]; /* X-Linked-Etag from any response of the redirect chain */
    char etag[160];        /* ETag of the latest response */
    bool progress;
    const char *label;
    double t0, last_draw;
} dl_t;

asr_err_t asr__cli_hub_global_init(char *err, size_t err_len) {
    CURLcode c = curl_global_init(CURL_GLOBAL_DEFAULT);
    if (c != CURLE_OK) {
        asr_errf(err, err_len, "libcurl init failed: %s", curl_easy_strerror(c));
        return ASR_ERR_IO;
    }
    return ASR_OK;
}

void asr__cli_hub_global_cleanup(void) { curl_global_cleanup(); }

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

static size_t on_header(char *buf, size_t size, size_t nitems, void *user_data) {
    dl_t *d = user_data;
    size_t len = size * nitems;
    if (len >= 5 && strncasecmp(buf, "HTTP/", 5) == 0)
        d->etag[0] = '\0'; /* a new response of the redirect chain */
    else if (!header_value(buf, len, "x-linked-etag:", d->linked_etag, sizeof(d->linked_etag)))
        header_value(buf, len, "etag:", d->etag, sizeof(d->etag));
    return len;
}

static size_t on_data(char *p, size_t size, size_t nmemb, void *user_data) {
    dl_t *d = user_data;
    size_t len = size * nmemb;
    if (asr__cli_pull_write_all(d->fd, p, len) != 0) {
        d->write_errno = errno;
        return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
    }
    EVP_DigestUpdate(d->md, p, len);
    d->n += len;
    return len;
}

static void draw(dl_t *d, curl_off_t total, bool final) {
    double mb = (double)d->n / 1e6, secs = asr_now_s() - d->t0;
    double rate = secs > 0 ? mb / secs : 0;
    if (total > 0)
        fprintf(stderr, "\r  %-26s %8.1f / %.1f MB %3d%%  %6.1f MB/s", d->label, mb,
                (double)total / 1e6, (int)(100.0 * (double)d->n / (double)total), rate);
    else
        fprintf(stderr, "\r  %-26s %8.1f MB  %6.1f MB/s", d->label, mb, rate);
    if (final)
        fputc('\n', stderr);
    fflush(stderr);
}

static int on_progress(void *user_data, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow) {
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    dl_t *d = user_data;
    double now = asr_now_s();
    if (d->n > 0 && now - d->last_draw >= 0.25) { /* nothing for 404s and redirects */
        d->last_draw = now;
        draw(d, dltotal, false);
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

static CURL *make_handle(const char *url, dl_t *d, struct curl_slist *hdrs, char *curl_err) {
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
    curl_easy_setopt(c, CURLOPT_USERAGENT, "asrd-pull/0.1");
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#endif
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, curl_err);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, d);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, d);
    if (hdrs)
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    if (d->progress) {
        curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(c, CURLOPT_XFERINFODATA, d);
    }
    return c;
}

/* Maps a finished transfer to asr_err_t and a message. */
static asr_err_t transfer_result(CURL *c, CURLcode cc, const dl_t *d, const char *url,
                                 const char *dest, const char *curl_err, char *err,
                                 size_t err_len) {
    if (cc == CURLE_OK)
        return ASR_OK;
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    if (cc == CURLE_HTTP_RETURNED_ERROR) {
        asr_errf(err, err_len, "HTTP %ld for %s%s", status, url,
                 status == 401 || status == 403 ? " (gated or private? set HF_TOKEN)" : "");
        return status == 404 ? ASR_ERR_NOT_FOUND : ASR_ERR_IO;
    }
    if (cc == CURLE_WRITE_ERROR && d->write_errno) {
        asr_errf(err, err_len, "write %s: %s", dest, strerror(d->write_errno));
        return ASR_ERR_IO;
    }
    asr_errf(err, err_len, "download of %s failed: %s", url,
             curl_err[0] ? curl_err : curl_easy_strerror(cc));
    return cc == CURLE_OPERATION_TIMEDOUT ? ASR_ERR_TIMEOUT : ASR_ERR_IO;
}

/* Checks the digest against the server's sha256 ETag, if it named one. */
static asr_err_t verify_etag(const dl_t *d, const unsigned char sha[32], const char *url, char *err,
                             size_t err_len) {
    char want[65], got[65];
    if (!etag_sha256(d->linked_etag, want) &&
        !(d->linked_etag[0] == '\0' && etag_sha256(d->etag, want)))
        return ASR_OK;
    asr__cli_pull_hex(sha, 32, got);
    if (strcmp(got, want) == 0)
        return ASR_OK;
    asr_errf(err, err_len, "sha256 of %s is %s, but the server says %s", url, got, want);
    return ASR_ERR_IO;
}

asr_err_t asr__cli_hub_get(const char *url, const char *dest_path, const char *label, bool progress,
                           uint64_t *n_bytes, char *err, size_t err_len) {
    asr_err_t rc = ASR_ERR_IO;
    char curl_err[CURL_ERROR_SIZE] = "";
    struct curl_slist *hdrs = NULL;
    CURL *c = NULL;
    dl_t d = {.progress = progress, .label = label, .t0 = asr_now_s()};
    d.fd = open(dest_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (d.fd < 0) {
        asr_errf(err, err_len, "cannot create %s: %s", dest_path, strerror(errno));
        return ASR_ERR_IO;
    }
    d.md = EVP_MD_CTX_new();
    if (!d.md || EVP_DigestInit_ex(d.md, EVP_sha256(), NULL) != 1) {
        asr_errf(err, err_len, "sha256: cannot initialise OpenSSL digest");
        goto done;
    }
    const char *token = getenv("HF_TOKEN");
    if (token && *token) {
        asr_buf_t h;
        asr_buf_init(&h);
        asr_buf_printf(&h, "Authorization: Bearer %s", token);
        hdrs = curl_slist_append(NULL, h.data);
        asr_buf_free(&h);
    }
    c = make_handle(url, &d, hdrs, curl_err);
    if (!c) {
        asr_errf(err, err_len, "libcurl: cannot create a handle");
        goto done;
    }
    CURLcode cc = curl_easy_perform(c);
    if (progress && cc == CURLE_OK)
        draw(&d, (curl_off_t)d.n, true);
    else if (progress && d.last_draw > 0)
        fputs("\r\033[K", stderr); /* clear the partial progress line */
    rc = transfer_result(c, cc, &d, url, dest_path, curl_err, err, err_len);
    if (rc != ASR_OK)
        goto done;
    unsigned char sha[32];
    unsigned int md_len = 0;
    if (EVP_DigestFinal_ex(d.md, sha, &md_len) != 1) {
        asr_errf(err, err_len, "sha256: digest failed");
        rc = ASR_ERR_IO;
        goto done;
    }
    rc = verify_etag(&d, sha, url, err, err_len);
    if (rc == ASR_OK && fsync(d.fd) != 0) {
        asr_errf(err, err_len, "fsync %s: %s", dest_path, strerror(errno));
        rc = ASR_ERR_IO;
    }
done:
    if (close(d.fd) != 0 && rc == ASR_OK) {
        asr_errf(err, err_len, "close %s: %s", dest_path, strerror(errno));
        rc = ASR_ERR_IO;
    }
    if (rc != ASR_OK)
        unlink(dest_path);
    else if (n_bytes)
        *n_bytes = d.n;
    curl_easy_cleanup(c);
    curl_slist_free_all(hdrs);
    EVP_MD_CTX_free(d.md);
    return rc;
}
