/* store validation: the rules a backend config must meet before it is written, with messages of
 * the form "field: reason" that the HTTP layer passes on in a 400. Pure functions, no database. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/core.h"
#include "store/store_int.h"

#define API_KEY_MAX 4096
#define MODEL_NAME_MAX 256
#define ALIASES_MAX 2048
#define TIMEOUT_MIN_MS 100
#define TIMEOUT_MAX_MS 3600000
#define PARALLEL_MAX 1024

void asr_store_config_input_init(asr_store_config_input_t *in) {
    memset(in, 0, sizeof *in);
    in->is_active = in->is_default = in->priority = in->timeout_ms = in->max_parallel =
        in->allow_model_substitution = ASR_STORE_UNSET;
}

/* NULL when s is valid UTF-8 without control characters (C0, DEL, C1); else the reason. */
const char *asr__store_check_text(const char *s) {
    const uint8_t *p = (const uint8_t *)s;
    size_t n = strlen(s);
    while (n) {
        uint32_t cp;
        int k = asr_utf8_next(p, n, &cp);
        if (k < 0)
            return "is not valid UTF-8";
        if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f))
            return "contains control characters";
        p += k;
        n -= (size_t)k;
    }
    return NULL;
}

/* NULL when u is an absolute http(s) URL with a host; else the reason. */
const char *asr__store_check_url(const char *u) {
    size_t skip;
    if (strncasecmp(u, "http://", 7) == 0)
        skip = 7;
    else if (strncasecmp(u, "https://", 8) == 0)
        skip = 8;
    else
        return "must be an http:// or https:// URL";
    for (const unsigned char *p = (const unsigned char *)u; *p; p++)
        if (*p <= 0x20 || *p >= 0x7f)
            return "must not contain spaces, control or non-ASCII characters (percent-encode them)";
    const char *h = u + skip;
    size_t alen = strcspn(h, "/?#");
    if (alen == 0)
        return "has no host";
    if (memchr(h, '@', alen))
        return "must not contain credentials (use api_key)";
    const char *port = NULL;
    if (*h == '[') {
        const char *close = memchr(h, ']', alen);
        if (!close || close == h + 1)
            return "has an invalid IPv6 host";
        for (const char *q = h + 1; q < close; q++)
            if (!strchr("0123456789abcdefABCDEF:.", *q))
                return "has an invalid IPv6 host";
        if (close + 1 < h + alen) {
            if (close[1] != ':')
                return "has an invalid host";
            port = close + 2;
        }
    } else {
        const char *colon = memchr(h, ':', alen);
        size_t hlen = colon ? (size_t)(colon - h) : alen;
        if (hlen == 0)
            return "has no host";
        for (size_t i = 0; i < hlen; i++)
            if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_", h[i]))
                return "has an invalid host";
        if (h[0] == '.' || h[0] == '-')
            return "has an invalid host";
        if (colon)
            port = colon + 1;
    }
    if (port) {
        size_t pl = (size_t)(h + alen - port);
        long v = 0;
        if (pl == 0 || pl > 5)
            return "has an invalid port";
        for (size_t i = 0; i < pl; i++) {
            if (port[i] < '0' || port[i] > '9')
                return "has an invalid port";
            v = v * 10 + (port[i] - '0');
        }
        if (v < 1 || v > 65535)
            return "has an invalid port";
    }
    return NULL;
}

static bool in_range(int v, int lo, int hi) { return v == ASR_STORE_UNSET || (v >= lo && v <= hi); }

asr_err_t asr_store_config_validate(const asr_store_config_input_t *in, char *err, size_t errlen) {
    const char *why;
#define BAD(...)                                                                                   \
    do {                                                                                           \
        asr_errf(err, errlen, __VA_ARGS__);                                                        \
        return ASR_ERR_INVALID;                                                                    \
    } while (0)
    if (!in->name || !*in->name)
        BAD("name: must not be empty");
    if (strlen(in->name) > ASR_STORE_NAME_MAX)
        BAD("name: longer than %d bytes", ASR_STORE_NAME_MAX);
    if ((why = asr__store_check_text(in->name)))
        BAD("name: %s", why);
    const char *kind = in->kind ? in->kind : "local";
    bool local = strcmp(kind, "local") == 0;
    if (!local && strcmp(kind, "openai") != 0 && strcmp(kind, "whisper.cpp") != 0)
        BAD("kind: must be local, openai or whisper.cpp");
    if (!in->api_url || !*in->api_url) {
        if (!local)
            BAD("api_url: required for kind %s", kind);
    } else {
        if (strlen(in->api_url) > ASR_STORE_URL_MAX)
            BAD("api_url: longer than %d bytes", ASR_STORE_URL_MAX);
        if ((why = asr__store_check_url(in->api_url)))
            BAD("api_url: %s", why);
    }
    if (in->api_key) {
        if (strlen(in->api_key) > API_KEY_MAX)
            BAD("api_key: longer than %d bytes", API_KEY_MAX);
        if ((why = asr__store_check_text(in->api_key)))
            BAD("api_key: %s", why);
    }
    if (in->model_name) {
        if (strlen(in->model_name) > MODEL_NAME_MAX)
            BAD("model_name: longer than %d bytes", MODEL_NAME_MAX);
        if ((why = asr__store_check_text(in->model_name)))
            BAD("model_name: %s", why);
    }
    if (in->aliases) {
        if (strlen(in->aliases) > ALIASES_MAX)
            BAD("aliases: longer than %d bytes", ALIASES_MAX);
        if ((why = asr__store_check_text(in->aliases)))
            BAD("aliases: %s", why);
    }
    if (!in_range(in->is_active, 0, 1))
        BAD("is_active: must be 0 or 1");
    if (!in_range(in->allow_model_substitution, 0, 1))
        BAD("allow_model_substitution: must be 0 or 1");
    if (!in_range(in->is_default, 0, 1))
        BAD("is_default: must be 0 or 1");
    if (!in_range(in->priority, 0, ASR_STORE_PRIORITY_MAX))
        BAD("priority: must be between 0 and %d", ASR_STORE_PRIORITY_MAX);
    if (!in_range(in->timeout_ms, TIMEOUT_MIN_MS, TIMEOUT_MAX_MS))
        BAD("timeout_ms: must be between %d and %d", TIMEOUT_MIN_MS, TIMEOUT_MAX_MS);
    if (!in_range(in->max_parallel, 1, PARALLEL_MAX))
        BAD("max_parallel: must be between 1 and %d", PARALLEL_MAX);
#undef BAD
    return ASR_OK;
}
