/* cli/pull: a model's files from a file-hosting hub, in the Hugging Face or the ModelScope layout.
 *
 * The two layouts (their real API shapes):
 *   Hugging Face  GET {ep}/api/models/{repo}/tree/{rev}  -> JSON array of entries
 *                   {"type":"file","path":"model.bin","size":N,"oid":"<git blob sha1>",
 *                    "lfs":{"oid":"<sha256>","size":N,"pointerSize":N}}   (lfs only for LFS files)
 *                 GET {ep}/{repo}/resolve/{rev}/{file}  -> the bytes (LFS: 302 to a CDN, with
 *                   X-Linked-Etag: "<sha256>")
 *                 (huggingface_hub / huggingface.js listFiles; a long listing comes in pages,
 *                 each naming the next in a Link: <url>; rel="next" header, followed here)
 *   ModelScope    GET {ep}/api/v1/models/{repo}/repo/files?Revision={rev}&Recursive=true
 *                   -> {"Code":200,"Success":true,"Data":{"Files":[{"Name":"model.bin",
 *                       "Path":"model.bin","Type":"blob","Size":N,"Sha256":"<sha256>",...}]}}
 *                 GET {ep}/api/v1/models/{repo}/repo?Revision={rev}&FilePath={file} -> the bytes
 *                 (modelscope's hub/api.py get_model_files and file_download.py
 *                 get_file_download_url)
 *
 * Invariants: a file appears in the model dir under its own name only after its size and
 * checksum matched the listing (or, without a listing, the server's X-Linked-Etag); until then it
 * is <file>.part, which a later run resumes. A checksum mismatch deletes the .part: a file that
 * hashes wrong is never resumed, and is retried from byte 0 once when it was a resumed one (its
 * start may be a stale leftover of another revision). */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "cli/pull_int.h"

#define LISTING_MAX (8u << 20)
#define LISTING_PAGES 32 /* pages followed at most (the hub pages by 1000 entries) */

typedef struct {
    char *name;        /* file name in the model dir */
    uint64_t size;     /* 0: unknown */
    char sha256[65];   /* "": unknown */
    char git_sha1[41]; /* git blob id of a non-LFS hub file; "": unknown */
    bool optional;     /* a 404 skips it (fixed-name fallback only) */
} rfile_t;

typedef struct {
    rfile_t *v;
    size_t n;
    bool listed; /* from the source's listing, not the fixed-name fallback */
} rlist_t;

const char *asr__cli_remote_title(asr__cli_remote_kind_t kind) {
    return kind == ASR__CLI_REMOTE_HUB ? "the Hugging Face hub" : "ModelScope";
}

static void list_free(rlist_t *l) {
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i].name);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

/* The files faster-whisper fetches (its download_model allow_patterns), with plain names only:
 * the name becomes a path in the model dir and part of a URL. */
static bool wanted(const char *name) {
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '_' || *p == '-'))
            return false;
    return !strcmp(name, "config.json") || !strcmp(name, "preprocessor_config.json") ||
           !strcmp(name, "model.bin") || !strcmp(name, "tokenizer.json") ||
           !strncmp(name, "vocabulary.", 11);
}

static void copy_hex(char *dst, size_t n_hex, const char *src) {
    dst[0] = '\0';
    if (!src || strlen(src) != n_hex)
        return;
    for (size_t i = 0; i < n_hex; i++) {
        char c = src[i];
        if (c >= 'A' && c <= 'F')
            c = (char)(c - 'A' + 'a');
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            dst[0] = '\0';
            return;
        }
        dst[i] = c;
    }
    dst[n_hex] = '\0';
}

static void list_add(rlist_t *l, const char *name, uint64_t size, const char *sha256,
                     const char *git_sha1, bool optional) {
    l->v = asr_xrealloc(l->v, (l->n + 1) * sizeof(*l->v));
    rfile_t *f = &l->v[l->n++];
    memset(f, 0, sizeof(*f));
    f->name = asr_xstrdup(name);
    f->size = size;
    f->optional = optional;
    copy_hex(f->sha256, 64, sha256);
    copy_hex(f->git_sha1, 40, git_sha1);
}

static uint64_t json_u64(json_t *v) {
    return json_is_integer(v) && json_integer_value(v) > 0 ? (uint64_t)json_integer_value(v) : 0;
}

/* Parses a listing of either layout into l (wanted files only). */
static asr_err_t parse_listing(asr__cli_remote_kind_t kind, const char *text, const char *url,
                               rlist_t *l, char *err, size_t err_len) {
    json_error_t je;
    json_t *root = json_loads(text, 0, &je), *files = root;
    asr_err_t rc = ASR_OK;
    if (root && kind == ASR__CLI_REMOTE_MODELSCOPE) {
        json_t *code = json_object_get(root, "Code"), *ok = json_object_get(root, "Success");
        if ((code && json_integer_value(code) != 200) || (ok && json_is_false(ok))) {
            const char *msg = json_string_value(json_object_get(root, "Message"));
            asr_errf(err, err_len, "%s refused the listing: %s", url, msg ? msg : "(no message)");
            rc = ASR_ERR_NOT_FOUND;
            goto done;
        }
        files = json_object_get(json_object_get(root, "Data"), "Files");
    }
    if (!json_is_array(files)) {
        asr_errf(err, err_len, "%s: not a file listing%s%s", url, root ? "" : ": ",
                 root ? "" : je.text);
        rc = ASR_ERR_IO;
        goto done;
    }
    size_t i;
    json_t *e;
    json_array_foreach(files, i, e) {
        bool hub = kind == ASR__CLI_REMOTE_HUB;
        const char *type = json_string_value(json_object_get(e, hub ? "type" : "Type"));
        const char *path = json_string_value(json_object_get(e, hub ? "path" : "Path"));
        if (!type || strcmp(type, hub ? "file" : "blob") || !path || !wanted(path))
            continue;
        json_t *lfs = hub ? json_object_get(e, "lfs") : NULL;
        const char *sha = hub ? json_string_value(json_object_get(lfs, "oid"))
                              : json_string_value(json_object_get(e, "Sha256"));
        const char *blob = hub && !lfs ? json_string_value(json_object_get(e, "oid")) : NULL;
        list_add(l, path, json_u64(json_object_get(e, hub ? "size" : "Size")), sha, blob, false);
    }
    l->listed = true;
done:
    json_decref(root);
    return rc;
}

int asr__cli_remote_parse_check(asr__cli_remote_kind_t kind, const char *text, char *err,
                                size_t err_len) {
    rlist_t l = {0};
    asr_err_t rc = parse_listing(kind, text, "listing", &l, err, err_len);
    int n = rc == ASR_OK ? (int)l.n : -1;
    for (size_t i = 0; i < l.n; i++) /* every kept name is one wanted() accepts */
        if (!wanted(l.v[i].name))
            n = -2;
    list_free(&l);
    return n;
}

static void base_url(asr_buf_t *b, const char *endpoint) {
    size_t n = strlen(endpoint);
    while (n > 0 && endpoint[n - 1] == '/')
        n--;
    asr_buf_printf(b, "%.*s", (int)n, endpoint);
}

/* URL of the listing, or of one file (file != NULL). */
static char *make_url(const asr__cli_remote_t *r, const char *file) {
    asr_buf_t b;
    asr_buf_init(&b);
    base_url(&b, r->endpoint);
    char *rev = curl_easy_escape(NULL, r->revision, 0);
    char *f = file ? curl_easy_escape(NULL, file, 0) : NULL;
    if (r->kind == ASR__CLI_REMOTE_HUB && file)
        asr_buf_printf(&b, "/%s/resolve/%s/%s", r->repo, rev, f);
    else if (r->kind == ASR__CLI_REMOTE_HUB)
        asr_buf_printf(&b, "/api/models/%s/tree/%s", r->repo, rev);
    else if (file)
        asr_buf_printf(&b, "/api/v1/models/%s/repo?Revision=%s&FilePath=%s", r->repo, rev, f);
    else
        asr_buf_printf(&b, "/api/v1/models/%s/repo/files?Revision=%s&Recursive=true", r->repo, rev);
    curl_free(rev);
    curl_free(f);
    return asr_buf_steal(&b);
}

static const char *bearer(const asr__cli_remote_t *r) {
    return r->kind == ASR__CLI_REMOTE_HUB ? getenv("HF_TOKEN") : NULL;
}

/* The model's files: from the listing, or, for a hub mirror that serves only /resolve/, the
 * fixed names faster-whisper conversions use. */
static asr_err_t get_listing(const asr__cli_remote_t *r, rlist_t *l, char *err, size_t err_len) {
    char *url = make_url(r, NULL), *text = NULL, *page = NULL, *next = NULL;
    asr__cli_http_opts_t o = {.label = "file listing", .tty = r->tty, .bearer = bearer(r)};
    asr_err_t rc = asr__cli_http_get_mem(url, &o, LISTING_MAX, &text, NULL, &next, err, err_len);
    if (rc == ASR_OK)
        rc = parse_listing(r->kind, text, url, l, err, err_len);
    for (int k = 1; rc == ASR_OK && next && k < LISTING_PAGES; k++) {
        free(text);
        free(page);
        page = next;
        next = NULL;
        text = NULL;
        rc = asr__cli_http_get_mem(page, &o, LISTING_MAX, &text, NULL, &next, err, err_len);
        if (rc == ASR_OK)
            rc = parse_listing(r->kind, text, page, l, err, err_len);
    }
    free(page);
    free(next);
    if (rc == ASR_ERR_NOT_FOUND && r->kind == ASR__CLI_REMOTE_HUB && !l->listed) {
        list_add(l, "config.json", 0, NULL, NULL, false);
        list_add(l, "tokenizer.json", 0, NULL, NULL, false);
        list_add(l, "vocabulary.json", 0, NULL, NULL, true);
        list_add(l, "vocabulary.txt", 0, NULL, NULL, true);
        list_add(l, "preprocessor_config.json", 0, NULL, NULL, true);
        list_add(l, "model.bin", 0, NULL, NULL, false);
        rc = ASR_OK;
    } else if (rc == ASR_OK && l->n == 0) {
        asr_errf(err, err_len, "%s lists no model files (model.bin, config.json, ...)", url);
        rc = ASR_ERR_NOT_FOUND;
    } else if (rc == ASR_ERR_NOT_FOUND && r->kind == ASR__CLI_REMOTE_MODELSCOPE) {
        size_t n = strlen(err);
        snprintf(err + n, err_len - n, " (no repository %s on %s?)", r->repo, r->endpoint);
    }
    free(text);
    free(url);
    return rc;
}

static int cmp_files(const void *a, const void *b) {
    /* Small files first, so a wrong repo or endpoint fails before the big download. */
    const rfile_t *x = a, *y = b;
    bool bx = !strcmp(x->name, "model.bin"), by = !strcmp(y->name, "model.bin");
    return bx != by ? (bx ? 1 : -1) : strcmp(x->name, y->name);
}

static uint64_t file_len(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0;
}

/* Removes what an earlier run (of another source or revision) left in dir that this listing does
 * not name, so that the model holds exactly the listed files. */
static void prune(const rlist_t *l, const char *dir) {
    DIR *d = opendir(dir);
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        size_t n = strlen(de->d_name);
        if (n > 5 && !strcmp(de->d_name + n - 5, ".part"))
            n -= 5;
        bool listed = false;
        for (size_t i = 0; i < l->n && !listed; i++)
            listed = strlen(l->v[i].name) == n && !strncmp(l->v[i].name, de->d_name, n);
        if (!listed)
            unlinkat(dirfd(d), de->d_name, 0);
    }
    if (d)
        closedir(d);
}

/* Refuses before any download when dir's filesystem lacks room for what is still missing. */
static asr_err_t check_space(const rlist_t *l, const char *dir, char *err, size_t err_len) {
    uint64_t need = 0;
    for (size_t i = 0; i < l->n; i++) {
        char *path = asr__cli_pull_join(dir, l->v[i].name);
        asr_buf_t part;
        asr_buf_init(&part);
        asr_buf_printf(&part, "%s.part", path);
        uint64_t have = file_len(path) == l->v[i].size ? l->v[i].size : file_len(part.data);
        if (l->v[i].size > have)
            need += l->v[i].size - have;
        asr_buf_free(&part);
        free(path);
    }
    struct statvfs vfs;
    if (statvfs(dir, &vfs) != 0) {
        asr_errf(err, err_len, "statvfs %s: %s", dir, strerror(errno));
        return ASR_ERR_IO;
    }
    uint64_t avail = (uint64_t)vfs.f_bavail * (uint64_t)vfs.f_frsize;
    if (need <= avail)
        return ASR_OK;
    asr_errf(err, err_len,
             "not enough disk space: the model needs %llu more bytes (%.1f MB) in %s, which has "
             "%llu bytes (%.1f MB) free",
             (unsigned long long)need, (double)need / 1e6, dir, (unsigned long long)avail,
             (double)avail / 1e6);
    return ASR_ERR_NOMEM;
}

/* Hashes a file: SHA-256, or git's blob SHA-1 ("blob <len>\0" + bytes) when git is set. */
static asr_err_t digest_file(const char *path, bool git, char *hex, char *err, size_t err_len) {
    if (!git) {
        unsigned char d[32];
        asr_err_t rc = asr__cli_pull_sha256_file(path, d, err, err_len);
        if (rc == ASR_OK)
            asr__cli_pull_hex(d, 32, hex);
        return rc;
    }
    char *text = NULL;
    size_t len = 0;
    if (asr_read_file(path, &text, &len) != ASR_OK) {
        asr_errf(err, err_len, "cannot read %s", path);
        return ASR_ERR_IO;
    }
    char head[48];
    int hn = snprintf(head, sizeof(head), "blob %zu", len) + 1; /* with the NUL */
    unsigned char d[20];
    unsigned int dn = 0;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    bool ok = md && EVP_DigestInit_ex(md, EVP_sha1(), NULL) == 1 &&
              EVP_DigestUpdate(md, head, (size_t)hn) == 1 && EVP_DigestUpdate(md, text, len) == 1 &&
              EVP_DigestFinal_ex(md, d, &dn) == 1;
    EVP_MD_CTX_free(md);
    free(text);
    if (!ok) {
        asr_errf(err, err_len, "sha1: digest failed");
        return ASR_ERR_IO;
    }
    asr__cli_pull_hex(d, 20, hex);
    return ASR_OK;
}

/* Checks path against what the source publishes for f (or the server's linked sha256).
 * ASR_ERR_MODEL on a mismatch, with the message naming both values. */
static asr_err_t verify(const rfile_t *f, const char *path, const char *linked, char *err,
                        size_t err_len) {
    uint64_t len = file_len(path);
    if (f->size > 0 && len != f->size) {
        asr_errf(err, err_len, "%s has %llu bytes, but the source lists %llu", f->name,
                 (unsigned long long)len, (unsigned long long)f->size);
        return ASR_ERR_MODEL;
    }
    const char *want = f->sha256[0] ? f->sha256 : linked && linked[0] ? linked : NULL;
    bool git = !want && f->git_sha1[0];
    if (git)
        want = f->git_sha1;
    if (!want)
        return ASR_OK; /* nothing published to check against (fixed-name fallback) */
    char got[65];
    asr_err_t rc = digest_file(path, git, got, err, err_len);
    if (rc == ASR_OK && strcmp(got, want) != 0) {
        asr_errf(err, err_len, "%s of %s is %s, but the source publishes %s",
                 git ? "git blob sha1" : "sha256", f->name, got, want);
        rc = ASR_ERR_MODEL;
    }
    return rc;
}

/* Brings one file into dir, verified. */
static asr_err_t fetch_file(const asr__cli_remote_t *r, const rfile_t *f, const char *dir,
                            char *err, size_t err_len) {
    char *path = asr__cli_pull_join(dir, f->name), *url = make_url(r, f->name);
    asr_buf_t part;
    asr_buf_init(&part);
    asr_buf_printf(&part, "%s.part", path);
    asr_err_t rc = ASR_OK;
    if (file_len(path) > 0 && (f->sha256[0] || f->git_sha1[0]) &&
        verify(f, path, NULL, err, err_len) == ASR_OK)
        goto done; /* complete from an earlier run */
    unlink(path);
    asr__cli_http_opts_t o = {.label = f->name, .tty = r->tty, .bearer = bearer(r)};
    for (int round = 0; round < 2; round++) {
        bool resumed = file_len(part.data) > 0;
        char linked[65];
        rc = asr__cli_http_get_file(url, part.data, f->size, &o, linked, err, err_len);
        if (rc == ASR_OK)
            rc = verify(f, part.data, linked, err, err_len);
        if (rc != ASR_ERR_MODEL)
            break;
        unlink(part.data); /* wrong bytes are never resumed */
        if (!resumed)
            break;
        if (r->tty)
            fprintf(stderr, "  %s: %s; downloading it again from the start\n", f->name, err);
    }
    if (rc == ASR_OK && rename(part.data, path) != 0) {
        asr_errf(err, err_len, "cannot rename %s: %s", part.data, strerror(errno));
        rc = ASR_ERR_IO;
    }
    if (rc != ASR_OK && file_len(part.data) == 0)
        unlink(part.data); /* nothing to resume from */
    if (rc == ASR_ERR_NOT_FOUND && f->optional)
        rc = ASR_OK;
done:
    asr_buf_free(&part);
    free(url);
    free(path);
    return rc;
}

asr_err_t asr__cli_remote_fill(const asr__cli_remote_t *r, const char *dir, char *err,
                               size_t err_len) {
    rlist_t l = {0};
    asr_err_t rc = get_listing(r, &l, err, err_len);
    if (rc == ASR_OK)
        prune(&l, dir);
    if (rc == ASR_OK)
        rc = check_space(&l, dir, err, err_len);
    if (rc == ASR_OK && l.n > 1)
        qsort(l.v, l.n, sizeof(*l.v), cmp_files);
    for (size_t i = 0; rc == ASR_OK && i < l.n; i++)
        rc = fetch_file(r, &l.v[i], dir, err, err_len);
    if (rc == ASR_ERR_NOT_FOUND && !l.listed) {
        size_t n = strlen(err);
        snprintf(err + n, err_len - n, "; %s has no file listing for %s either: is it the repo?",
                 r->endpoint, r->repo);
    }
    list_free(&l);
    return rc;
}
