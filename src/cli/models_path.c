/* cli: model name → directory resolution, and ~ in configured paths. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "core/core.h"

char *asr_cli_expand_home(const char *p) {
    const char *home = getenv("HOME");
    asr_buf_t b;
    asr_buf_init(&b);
    if (p[0] == '~' && (p[1] == '/' || !p[1]) && home && *home)
        asr_buf_printf(&b, "%s%s", home, p + 1);
    else
        asr_buf_puts(&b, p);
    return asr_buf_steal(&b);
}

char *asr_cli_models_root(void) {
    const char *env = getenv("ASRD_MODELS");
    if (env && *env)
        return asr_xstrdup(env);
    const char *home = getenv("HOME");
    asr_buf_t b;
    asr_buf_init(&b);
    asr_buf_printf(&b, "%s/.cache/asrd/models", home && *home ? home : ".");
    return asr_buf_steal(&b);
}

char *asr_cli_model_dir(const char *name_or_dir) {
    struct stat st;
    if (strchr(name_or_dir, '/') || (stat(name_or_dir, &st) == 0 && S_ISDIR(st.st_mode)))
        return asr_xstrdup(name_or_dir);
    char *root = asr_cli_models_root();
    asr_buf_t b;
    asr_buf_init(&b);
    asr_buf_printf(&b, "%s/%s", root, name_or_dir);
    free(root);
    return asr_buf_steal(&b);
}
