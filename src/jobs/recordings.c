/* jobs: recording files. An upload arrives in DATA/tmp (streamed by the http module); keeping it
 * moves it into the recordings directory under a fresh unique name and makes it durable (fsync of
 * the file, then of the directory) before the caller commits the recording's row, so a row never
 * names bytes a crash could lose.
 *
 * The converse, a file no row names (a crash between the save and the row's commit, or between a
 * row's delete and its file's unlink), is swept at start: every rec-* file whose name no
 * recording row ends with is removed. Only names this module makes are touched. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/core.h"
#include "jobs/jobs.h"
#include "store/store.h"

#define REC_PREFIX "rec-" /* every name asr_jobs_recording_keep gives out */

/* The file name's extension, lower case, if it is 1..8 letters or digits; else "bin". */
static void extension(const char *filename, char *ext, size_t len) {
    const char *dot = filename ? strrchr(filename, '.') : NULL;
    size_t n = dot ? strlen(dot + 1) : 0;
    bool ok = n >= 1 && n <= 8 && n < len;
    for (size_t i = 0; ok && i < n; i++)
        ok = isalnum((unsigned char)dot[1 + i]);
    if (!ok) {
        snprintf(ext, len, "bin");
        return;
    }
    for (size_t i = 0; i < n; i++)
        ext[i] = (char)tolower((unsigned char)dot[1 + i]);
    ext[n] = 0;
}

static int copy_file(const char *from, const char *to) {
    int in = open(from, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return -1;
    int out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (out < 0) {
        close(in);
        return -1;
    }
    char buf[1 << 16];
    ssize_t n;
    int rc = 0;
    while ((n = read(in, buf, sizeof buf)) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -1;
            break;
        }
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(out, buf + off, (size_t)(n - off));
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                rc = -1;
                break;
            }
            off += w;
        }
        if (rc)
            break;
    }
    close(in);
    if (close(out) != 0)
        rc = -1;
    if (rc)
        unlink(to);
    return rc;
}

static int fsync_path(const char *path, int flags) {
    int fd = open(path, flags | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

asr_err_t asr_jobs_recording_keep(const char *recordings_dir, const char *tmp_path,
                                  const char *filename, char **out_name, char *err, size_t errlen) {
    *out_name = NULL;
    char why[512];
    if (asr_mkdir_p(recordings_dir, 0755, why, sizeof why) != ASR_OK) {
        asr_errf(err, errlen, "the recordings directory: %s", why);
        return ASR_ERR_IO;
    }
    char ext[16];
    extension(filename, ext, sizeof ext);
    uint64_t rnd = 0;
    if (getrandom(&rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
        rnd = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(asr_now_s() * 1e9);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    asr_buf_t b;
    asr_buf_init(&b);
    asr_buf_printf(&b, REC_PREFIX "%lld-%016llx.%s",
                   (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, (unsigned long long)rnd,
                   ext);
    char *name = asr_buf_steal(&b);
    char *dst = asr_jobs_recording_path(recordings_dir, name);
    int rc = rename(tmp_path, dst);
    if (rc != 0 && errno == EXDEV)
        rc = copy_file(tmp_path, dst);
    if (rc != 0) {
        asr_errf(err, errlen, "cannot store the recording: %s", strerror(errno));
        goto fail;
    }
    if (fsync_path(dst, O_RDONLY) != 0 || fsync_path(recordings_dir, O_RDONLY | O_DIRECTORY)) {
        asr_errf(err, errlen, "cannot make the recording durable (fsync): %s", strerror(errno));
        unlink(dst);
        goto fail;
    }
    free(dst);
    *out_name = name;
    return ASR_OK;
fail:
    free(dst);
    free(name);
    return ASR_ERR_IO;
}

static const char *base_name(const char *p) {
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The file names (last path components) of every recording row, sorted; NULL on a store error.
 * Matching by name alone keeps any file a row could name, whatever the spelling of its path.
 * One listing (no pages): a snapshot, so a row deleted meanwhile cannot hide another. */
static char **row_names(asr_store_t *s, size_t *n) {
    asr_store_recording_t *v = NULL;
    if (asr_store_recording_list(s, NULL, 0, INT_MAX, &v, n, NULL) != ASR_OK)
        return NULL;
    char **names = asr_xcalloc(*n + 1, sizeof *names);
    for (size_t i = 0; i < *n; i++)
        names[i] = asr_xstrdup(base_name(v[i].path ? v[i].path : ""));
    asr_store_recordings_free(v, *n);
    qsort(names, *n, sizeof *names, cmp_str);
    return names;
}

asr_err_t asr_jobs_recordings_sweep(asr_store_t *s, const char *recordings_dir, double min_age_s,
                                    int *n_removed) {
    if (n_removed)
        *n_removed = 0;
    DIR *d = opendir(recordings_dir);
    if (!d) /* none yet: nothing to sweep */
        return errno == ENOENT ? ASR_OK : ASR_ERR_IO;
    size_t n = 0;
    char **names = row_names(s, &n);
    if (!names) {
        closedir(d);
        ASR_LOG(ASR_LOG_WARN, "msg=recording_sweep_skipped error=\"%s\"", asr_store_errmsg(s));
        return ASR_ERR_DB;
    }
    /* file times are wall-clock times: age is measured on the same clock */
    time_t now = time(NULL);
    int removed = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        const char *name = de->d_name;
        if (strncmp(name, REC_PREFIX, strlen(REC_PREFIX)) ||
            bsearch(&name, names, n, sizeof *names, cmp_str))
            continue;
        char *path = asr_jobs_recording_path(recordings_dir, name);
        struct stat st;
        double age = 0;
        if (lstat(path, &st) == 0 && S_ISREG(st.st_mode) &&
            (age = difftime(now, st.st_mtime)) >= min_age_s && unlink(path) == 0) {
            removed++;
            ASR_LOG(ASR_LOG_WARN,
                    "msg=recording_orphan_removed file=%s bytes=%lld age_s=%.0f reason=\"no "
                    "recording row names it (a crash between its save and its commit)\"",
                    name, (long long)st.st_size, age);
        }
        free(path);
    }
    closedir(d);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    if (n_removed)
        *n_removed = removed;
    return ASR_OK;
}
