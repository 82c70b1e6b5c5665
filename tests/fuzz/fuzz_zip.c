/* Fuzz target: the zip reader of `asrd pull` (src/cli/pull_zip.c), which parses archives
 * downloaded from the network (Python wheels). Every input is opened from memory; each member
 * that declares a modest size is extracted through the checked path (inflate or copy, size and
 * CRC-32 checks, SHA-256) and read back whole, and the suffix lookup the wheel code uses runs on
 * every name. Invariants asserted: every listed member has a name and a size, and a member read
 * back holds exactly its declared size. */
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/pull_int.h"
#include "core/core.h"

#define MAX_MEMBER (1u << 20) /* bigger members are skipped: inflating them only costs time */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int devnull = -1;
    if (devnull < 0)
        devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    asr__cli_zip_t *z = NULL;
    char err[512];
    if (asr__cli_zip_open_memory(data, size, "fuzz.whl", &z, err, sizeof err) != ASR_OK) {
        ASR_ASSERT(z == NULL);
        return 0;
    }
    size_t n = asr__cli_zip_count(z);
    ASR_ASSERT(asr__cli_zip_name(z, n) == NULL);
    for (size_t i = 0; i < n && i < 64; i++) {
        const char *name = asr__cli_zip_name(z, i);
        ASR_ASSERT(name != NULL && name[0] != '\0');
        int64_t usize = asr__cli_zip_size(z, name);
        ASR_ASSERT(usize >= 0);
        (void)asr__cli_zip_find_suffix(z, "/RECORD", 1);
        (void)asr__cli_zip_find_suffix(z, name, 0);
        if ((uint64_t)usize > MAX_MEMBER)
            continue;
        unsigned char sha[32];
        (void)asr__cli_zip_extract(z, name, devnull, sha, err, sizeof err);
        char *buf = NULL;
        size_t len = 0;
        if (asr__cli_zip_read(z, name, MAX_MEMBER, &buf, &len, err, sizeof err) == ASR_OK) {
            ASR_ASSERT(buf != NULL && buf[len] == '\0');
            /* the first member of this name is the one read: its declared size */
            ASR_ASSERT(len == (size_t)asr__cli_zip_size(z, name));
        }
        free(buf);
    }
    asr__cli_zip_close(z);
    return 0;
}
