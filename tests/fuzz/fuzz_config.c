/* fuzz_config: the config file parser and value validation (src/config/config.c).
 *
 * Input: config file text. Whatever it holds, parsing must not crash or leak, a failed parse
 * must leave a valid config behind, and a config that parsed must survive being written out
 * (--print-config, GET /v1/config) and parsed back to the same effective settings.
 * Seeds: tests/fuzz/corpus/config/. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    asr_config_t cfg;
    asr_config_init(&cfg);
    char err[256];
    asr_err_t rc = asr_config_parse_text(&cfg, (const char *)data, size, "fuzz", err, sizeof err);
    asr_buf_t eff, json;
    asr_buf_init(&eff);
    asr_buf_init(&json);
    asr_config_write_effective(&cfg, &eff);
    asr_config_write_json(&cfg, &json);
    if (rc == ASR_OK && !strstr(eff.data, "<redacted>")) {
        /* round trip: the effective settings parse back to themselves */
        asr_config_t again;
        asr_config_init(&again);
        if (asr_config_parse_text(&again, eff.data, eff.len, "again", err, sizeof err) != ASR_OK)
            abort();
        asr_buf_t eff2;
        asr_buf_init(&eff2);
        asr_config_write_effective(&again, &eff2);
        if (eff.len != eff2.len || memcmp(eff.data, eff2.data, eff.len))
            abort();
        asr_buf_free(&eff2);
        asr_config_deinit(&again);
    }
    int64_t sz;
    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = 0;
    (void)asr_config_parse_size(s, &sz);
    char **items;
    int n;
    asr_config_list_split(s, &items, &n);
    asr_config_list_free(items, n);
    free(s);
    asr_buf_free(&eff);
    asr_buf_free(&json);
    asr_config_deinit(&cfg);
    return 0;
}
