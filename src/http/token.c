/* http: event tokens. The browser's EventSource cannot send an Authorization header, so a page
 * that holds an API key trades it (POST /api/events/token, with the header) for a short-lived
 * token that it puts in the stream's address (?token=). A token opens only the routes marked
 * ASR_HTTP_ROUTE_TOKEN (the event streams) and only until it expires; it is checked once, when
 * the stream opens.
 *
 * Format: "evt1.<expires_at_ms>.<nonce: 16 hex>.<mac: 64 hex>", mac = HMAC-SHA256 keyed with the
 * API key that asked for it, over a purpose string, the expiry and the nonce. Nothing is stored:
 * a node verifies by recomputing the mac with each configured key, so every node sharing the
 * keys accepts it, and removing a key revokes its tokens. The expiry is inside the mac (no one
 * extends a token) and bounded (ASR_HTTP_TOKEN_MAX_TTL_S) even for a key holder. A server
 * without keys signs with a random secret of its own (the routes are open anyway).
 *
 * Invariants: macs are compared in constant time; tokens are never logged (the access log
 * writes `token=-`, server.c). */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include "http/http_int.h"

#define PURPOSE "asrd event stream token v1\n"
#define PREFIX "evt1."

static int64_t wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void asr_http_token_make(const char *key, int64_t expires_at_ms, uint64_t nonce,
                         char out[ASR_HTTP_TOKEN_MAX]) {
    char msg[96];
    int n = snprintf(msg, sizeof msg, PURPOSE "%lld.%016llx", (long long)expires_at_ms,
                     (unsigned long long)nonce);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    HMAC(EVP_sha256(), key, (int)strlen(key), (const unsigned char *)msg, (size_t)n, mac, &mac_len);
    int k = snprintf(out, ASR_HTTP_TOKEN_MAX, PREFIX "%lld.%016llx.", (long long)expires_at_ms,
                     (unsigned long long)nonce);
    for (unsigned i = 0; i < mac_len && k + 3 <= ASR_HTTP_TOKEN_MAX; i++)
        k += snprintf(out + k, 3, "%02x", mac[i]);
}

/* Constant time in the strings' contents (their lengths are public: a token's format fixes it);
 * the one compare of secrets in the http layer (API keys too: server_route.c). */
bool asr__http_secret_equal(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    unsigned char d = la != lb;
    for (size_t i = 0; i < la && i < lb; i++)
        d |= (unsigned char)(a[i] ^ b[i]);
    return d == 0;
}

/* Reads the expiry and nonce of a well-formed token; false for anything else. */
static bool parse(const char *tok, int64_t *exp, uint64_t *nonce) {
    size_t n = strlen(tok);
    if (n >= ASR_HTTP_TOKEN_MAX || strncmp(tok, PREFIX, strlen(PREFIX)))
        return false;
    const char *p = tok + strlen(PREFIX);
    size_t nd = strspn(p, "0123456789");
    if (nd < 1 || nd > 15 || p[nd] != '.')
        return false;
    *exp = strtoll(p, NULL, 10);
    p += nd + 1;
    if (strspn(p, "0123456789abcdef") != 16 || p[16] != '.')
        return false;
    *nonce = strtoull(p, NULL, 16);
    p += 17;
    return strspn(p, "0123456789abcdef") == 64 && !p[64];
}

bool asr_http_token_verify(char *const *keys, int n_keys, const char *token, int64_t now_ms) {
    int64_t exp;
    uint64_t nonce;
    if (!token || !parse(token, &exp, &nonce))
        return false;
    if (exp <= now_ms || exp > now_ms + (int64_t)ASR_HTTP_TOKEN_MAX_TTL_S * 1000)
        return false;
    bool ok = false;
    for (int i = 0; i < n_keys; i++) {
        char want[ASR_HTTP_TOKEN_MAX];
        asr_http_token_make(keys[i], exp, nonce, want);
        ok |= asr__http_secret_equal(token, want);
    }
    return ok;
}

bool asr__http_token_ok(const asr_http_server_t *srv, const char *token) {
    return asr_http_token_verify(srv->api_keys, srv->n_api_keys, token, wall_ms());
}

asr_err_t asr_http_token_issue(asr_http_req_t *req, int ttl_s, char out[ASR_HTTP_TOKEN_MAX],
                               int64_t *expires_at_ms) {
    const asr_http_server_t *srv = req->srv;
    out[0] = 0;
    if (ttl_s < 1 || ttl_s > ASR_HTTP_TOKEN_MAX_TTL_S)
        return ASR_ERR_INVALID;
    /* the key that authorized this request (the route is not public: admission checked it) */
    const char *key = srv->token_secret;
    if (srv->n_api_keys) {
        const char *h = asr_http_req_header(req, MHD_HTTP_HEADER_AUTHORIZATION);
        if (!h || strncasecmp(h, "Bearer ", 7))
            return ASR_ERR_INVALID;
        key = h + 7;
        while (*key == ' ')
            key++;
    }
    uint64_t nonce = 0;
    if (getrandom(&nonce, sizeof nonce, 0) != (ssize_t)sizeof nonce)
        return ASR_ERR_IO;
    *expires_at_ms = wall_ms() + (int64_t)ttl_s * 1000;
    asr_http_token_make(key, *expires_at_ms, nonce, out);
    return ASR_OK;
}

void asr__http_token_init(asr_http_server_t *srv) {
    unsigned char b[32];
    if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b) { /* never on Linux >= 3.17 */
        uint64_t x = srv->id_salt ^ (uint64_t)wall_ms();
        memcpy(b, &x, sizeof x);
        memset(b + sizeof x, 0x5a, sizeof b - sizeof x);
    }
    for (size_t i = 0; i < sizeof b; i++)
        snprintf(srv->token_secret + 2 * i, 3, "%02x", b[i]);
}

/* Rewrites the value of every `token` query argument in `uri` (in place) to "-". */
void asr__http_redact_token(char *uri) {
    char *q = strchr(uri, '?');
    while (q) {
        char *arg = q + 1;
        char *next = strchr(arg, '&');
        if (!strncmp(arg, "token=", 6) && arg[6] && arg + 6 != next) { /* a value to hide */
            char *v = arg + 6;
            size_t rest = next ? strlen(next) : 0;
            v[0] = '-';
            if (next)
                memmove(v + 1, next, rest + 1);
            else
                v[1] = 0;
            next = strchr(v, '&');
        }
        q = next;
    }
}
