/* cli: which settings file `asrd serve` and `asrd diagnose` read. Precedence, first found wins:
 * --config FILE, then $ASRD_CONFIG (when set and not empty), then the installed default
 * (ASR_DEFAULT_CONFIG, /etc/asrd/asrd.conf unless CMake says otherwise) when that file exists,
 * else none. A default that exists but cannot be read is returned all the same, so that the load
 * fails with its reason rather than the server starting with settings nobody chose. */
#include <stdlib.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "config/config.h"

#ifndef ASR_DEFAULT_CONFIG
#define ASR_DEFAULT_CONFIG "/etc/asrd/asrd.conf"
#endif

const char *asr_cli_default_config(void) { return ASR_DEFAULT_CONFIG; }

const char *asr__cli_config_path_in(int argc, char **argv, const char *dflt) {
    const char *file = asr_config_file_arg(argc, argv);
    if (file)
        return file;
    const char *env = getenv("ASRD_CONFIG");
    if (env && *env)
        return env;
    struct stat st;
    if (dflt && *dflt && stat(dflt, &st) == 0)
        return dflt;
    return NULL;
}

const char *asr_cli_config_path(int argc, char **argv) {
    return asr__cli_config_path_in(argc, argv, ASR_DEFAULT_CONFIG);
}
