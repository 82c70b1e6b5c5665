/* Fuzz target: the file listings asrd pull reads from the Hugging Face hub (an array of
 * {type, path, size, oid, lfs}) and from ModelScope ({Code, Success, Data: {Files: [...]}}).
 * The first byte picks the layout (even: hub, odd: ModelScope); the rest is the body. A listing
 * either parses into files whose names a pull accepts, or fails with a reason. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli/pull_int.h"
#include "core/core.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1 || size > (1u << 20))
        return 0;
    asr__cli_remote_kind_t kind = data[0] % 2 ? ASR__CLI_REMOTE_MODELSCOPE : ASR__CLI_REMOTE_HUB;
    char *text = malloc(size);
    ASR_ASSERT(text != NULL);
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    char err[256] = "";
    int n = asr__cli_remote_parse_check(kind, text, err, sizeof err);
    ASR_ASSERT(n >= -1);
    ASR_ASSERT(n >= 0 || err[0] != '\0');
    free(text);
    return 0;
}
