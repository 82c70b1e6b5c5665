/* core: filesystem helpers every module shares (mkdir -p). One home, so that the recordings
 * directory, the server's data directory and `asrd pull`'s model folders are created the same way
 * and fail with the same message. */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "core/core.h"

asr_err_t asr_mkdir_p(const char *path, unsigned mode, char *err, size_t errlen) {
    if (!path || !*path) {
        asr_errf(err, errlen, "cannot create a directory with an empty name");
        return ASR_ERR_INVALID;
    }
    char *p = asr_xstrdup(path);
    asr_err_t rc = ASR_OK;
    for (char *s = p + 1;; s++) {
        if (*s != '/' && *s != '\0')
            continue;
        char saved = *s;
        *s = '\0';
        if (mkdir(p, (mode_t)mode) != 0 && errno != EEXIST) {
            asr_errf(err, errlen, "cannot create directory %s: %s", p, strerror(errno));
            rc = ASR_ERR_IO;
            break;
        }
        *s = saved;
        if (saved == '\0')
            break;
    }
    struct stat st;
    if (rc == ASR_OK && (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))) {
        asr_errf(err, errlen, "%s is not a directory", path);
        rc = ASR_ERR_IO;
    }
    free(p);
    return rc;
}
