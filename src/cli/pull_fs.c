/* cli/pull: filesystem helpers for `asrd pull` — rm -rf, fsync, SHA-256 of files and
 * the SHA256SUMS file that marks a model directory as complete.
 *
 * SHA256SUMS uses the exact `sha256sum` text format ("<64 hex>  <name>\n", binary mode marker
 * omitted), so `sha256sum -c SHA256SUMS` inside the directory verifies it. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "cli/pull_int.h"

char *asr__cli_pull_join(const char *a, const char *b) {
    asr_buf_t buf;
    asr_buf_init(&buf);
    size_t n = strlen(a);
    asr_buf_printf(&buf, "%s%s%s", a, (n && a[n - 1] == '/') ? "" : "/", b);
    return asr_buf_steal(&buf);
}

static int rmtree_errno;

static int rmtree_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    if (remove(path) != 0 && errno != ENOENT && !rmtree_errno)
        rmtree_errno = errno;
    return 0;
}

int asr__cli_pull_rmtree(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0)
        return errno == ENOENT ? 0 : -1;
    rmtree_errno = 0;
    if (nftw(path, rmtree_cb, 16, FTW_DEPTH | FTW_PHYS) != 0 && !rmtree_errno)
        rmtree_errno = errno;
    if (rmtree_errno) {
        errno = rmtree_errno;
        return -1;
    }
    return 0;
}

int asr__cli_pull_write_all(int fd, const void *buf, size_t n) {
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

asr_err_t asr__cli_pull_fsync_path(const char *path, char *err, size_t err_len) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        asr_errf(err, err_len, "cannot open %s: %s", path, strerror(errno));
        return ASR_ERR_IO;
    }
    /* Some filesystems refuse fsync on directories (EINVAL); durability there is best effort. */
    if (fsync(fd) != 0 && errno != EINVAL) {
        asr_errf(err, err_len, "fsync %s: %s", path, strerror(errno));
        close(fd);
        return ASR_ERR_IO;
    }
    close(fd);
    return ASR_OK;
}

asr_err_t asr__cli_pull_sha256_file(const char *path, unsigned char out[32], char *err,
                                    size_t err_len) {
    enum { CHUNK = 1 << 20 };
    asr_err_t rc = ASR_ERR_IO;
    unsigned char *buf = NULL;
    EVP_MD_CTX *md = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        asr_errf(err, err_len, "cannot open %s: %s", path, strerror(errno));
        return ASR_ERR_IO;
    }
    buf = asr_xmalloc(CHUNK);
    md = EVP_MD_CTX_new();
    if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        asr_errf(err, err_len, "sha256: cannot initialise OpenSSL digest");
        goto done;
    }
    for (;;) {
        ssize_t r = read(fd, buf, CHUNK);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            asr_errf(err, err_len, "read %s: %s", path, strerror(errno));
            goto done;
        }
        if (r == 0)
            break;
        EVP_DigestUpdate(md, buf, (size_t)r);
    }
    unsigned int n = 0;
    if (EVP_DigestFinal_ex(md, out, &n) != 1 || n != 32) {
        asr_errf(err, err_len, "sha256: digest failed");
        goto done;
    }
    rc = ASR_OK;
done:
    EVP_MD_CTX_free(md);
    free(buf);
    close(fd);
    return rc;
}

void asr__cli_pull_hex(const unsigned char *d, size_t n, char *out) {
    static const char hexd[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hexd[d[i] >> 4];
        out[2 * i + 1] = hexd[d[i] & 15];
    }
    out[2 * n] = '\0';
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Names of the regular files of dir that go into SHA256SUMS, sorted (malloc'd array of malloc'd
 * strings). */
static asr_err_t list_payload(const char *dir, char ***out, int *n_out, char *err, size_t err_len) {
    DIR *d = opendir(dir);
    if (!d) {
        asr_errf(err, err_len, "cannot open directory %s: %s", dir, strerror(errno));
        return ASR_ERR_IO;
    }
    char **names = NULL;
    int n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.' || !strcmp(de->d_name, "SHA256SUMS"))
            continue;
        struct stat st;
        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            names = asr_xrealloc(names, (size_t)cap * sizeof(*names));
        }
        names[n++] = asr_xstrdup(de->d_name);
    }
    closedir(d);
    if (n > 1)
        qsort(names, (size_t)n, sizeof(*names), cmp_str);
    *out = names;
    *n_out = n;
    return ASR_OK;
}

asr_err_t asr__cli_pull_write_sums(const char *dir, int *n_files, uint64_t *total_len, char *err,
                                   size_t err_len) {
    char **names = NULL;
    int n = 0;
    uint64_t total = 0;
    asr_buf_t text;
    asr_buf_init(&text);
    char *sums = asr__cli_pull_join(dir, "SHA256SUMS");
    asr_err_t rc = list_payload(dir, &names, &n, err, err_len);
    if (rc != ASR_OK)
        goto done;
    for (int i = 0; i < n; i++) {
        if (strchr(names[i], '\n') || strchr(names[i], '\\')) {
            /* sha256sum escapes such names; the model files never have them. */
            asr_errf(err, err_len, "unexpected file name in %s: %s", dir, names[i]);
            rc = ASR_ERR_INVALID;
            goto done;
        }
        char *path = asr__cli_pull_join(dir, names[i]);
        unsigned char d[32];
        char hex[65];
        struct stat st;
        rc = asr__cli_pull_sha256_file(path, d, err, err_len);
        if (rc == ASR_OK && stat(path, &st) == 0)
            total += (uint64_t)st.st_size;
        free(path);
        if (rc != ASR_OK)
            goto done;
        asr__cli_pull_hex(d, 32, hex);
        asr_buf_printf(&text, "%s  %s\n", hex, names[i]);
    }
    int fd = open(sums, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || asr__cli_pull_write_all(fd, text.data ? text.data : "", text.len) != 0 ||
        fsync(fd) != 0) {
        asr_errf(err, err_len, "cannot write %s: %s", sums, strerror(errno));
        rc = ASR_ERR_IO;
    }
    if (fd >= 0)
        close(fd);
done:
    if (n_files)
        *n_files = n;
    if (total_len)
        *total_len = total;
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
    free(sums);
    asr_buf_free(&text);
    return rc;
}

bool asr__cli_pull_is_complete(const char *dir) {
    char *sums = asr__cli_pull_join(dir, "SHA256SUMS");
    char *text = NULL;
    size_t len = 0;
    bool ok = asr_read_file(sums, &text, &len) == ASR_OK;
    int n_listed = 0;
    for (char *line = text; ok && line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        /* "<64 hex>  <name>" (or " *<name>" in binary mode). */
        if (strlen(line) < 67 || line[64] != ' ') {
            ok = false;
            break;
        }
        const char *name = line + 66;
        char *path = asr__cli_pull_join(dir, name);
        struct stat st;
        ok = stat(path, &st) == 0 && S_ISREG(st.st_mode);
        free(path);
        n_listed++;
        line = nl ? nl + 1 : NULL;
    }
    free(text);
    free(sums);
    return ok && n_listed > 0;
}
