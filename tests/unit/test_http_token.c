/* Unit tests of the event tokens (src/http/token.c): a token verifies under the key that made
 * it and only until it expires; another key, a changed expiry, nonce or mac, a lifetime past
 * ASR_HTTP_TOKEN_MAX_TTL_S and malformed strings are refused; the access log's redaction hides
 * every token= value and nothing else. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "http/http.h"
#include "http/http_int.h"

#define NOW 1800000000000LL /* ms since the epoch */

static char *g_keys[] = {"sk-one", "sk-two"};

static void test_roundtrip(void **state) {
    (void)state;
    char tok[ASR_HTTP_TOKEN_MAX];
    asr_http_token_make("sk-two", NOW + 60000, 0x0123456789abcdefULL, tok);
    assert_int_equal(strlen(tok), strlen("evt1.") + 13 + 1 + 16 + 1 + 64);
    assert_true(asr_http_token_verify(g_keys, 2, tok, NOW));
    assert_true(asr_http_token_verify(g_keys, 2, tok, NOW + 59999));
    /* the same inputs make the same token; another nonce another one */
    char again[ASR_HTTP_TOKEN_MAX], other[ASR_HTTP_TOKEN_MAX];
    asr_http_token_make("sk-two", NOW + 60000, 0x0123456789abcdefULL, again);
    asr_http_token_make("sk-two", NOW + 60000, 0x0123456789abcdeeULL, other);
    assert_string_equal(tok, again);
    assert_string_not_equal(tok, other);
}

static void test_expiry(void **state) {
    (void)state;
    char tok[ASR_HTTP_TOKEN_MAX];
    asr_http_token_make("sk-one", NOW + 60000, 7, tok);
    assert_false(asr_http_token_verify(g_keys, 2, tok, NOW + 60000)); /* expired at that ms */
    assert_false(asr_http_token_verify(g_keys, 2, tok, NOW + 3600000));
    /* a key holder cannot make a token that lives longer than the limit */
    asr_http_token_make("sk-one", NOW + (int64_t)ASR_HTTP_TOKEN_MAX_TTL_S * 1000 + 1, 7, tok);
    assert_false(asr_http_token_verify(g_keys, 2, tok, NOW));
    asr_http_token_make("sk-one", NOW + (int64_t)ASR_HTTP_TOKEN_MAX_TTL_S * 1000, 7, tok);
    assert_true(asr_http_token_verify(g_keys, 2, tok, NOW));
}

static void test_wrong_key_and_tampering(void **state) {
    (void)state;
    char tok[ASR_HTTP_TOKEN_MAX];
    asr_http_token_make("sk-three", NOW + 60000, 42, tok);
    assert_false(asr_http_token_verify(g_keys, 2, tok, NOW));
    assert_false(asr_http_token_verify(NULL, 0, tok, NOW)); /* no keys: nothing verifies */
    asr_http_token_make("sk-one", NOW + 60000, 42, tok);
    assert_true(asr_http_token_verify(g_keys, 2, tok, NOW));
    /* a later expiry with the old mac */
    char t2[ASR_HTTP_TOKEN_MAX + 2]; /* room for the suffix test below */
    snprintf(t2, sizeof t2, "%s", tok);
    char *dot = strchr(t2 + 5, '.');
    dot[-1] = dot[-1] == '9' ? '8' : (char)(dot[-1] + 1);
    assert_false(asr_http_token_verify(g_keys, 2, t2, NOW));
    /* each other character of the nonce and mac */
    size_t n = strlen(tok);
    for (size_t i = (size_t)(strchr(tok + 5, '.') - tok) + 1; i < n; i++) {
        if (tok[i] == '.')
            continue;
        snprintf(t2, sizeof t2, "%s", tok);
        t2[i] = tok[i] == 'a' ? 'b' : 'a';
        assert_false(asr_http_token_verify(g_keys, 2, t2, NOW));
    }
    /* a prefix, a suffix, an upper-case mac */
    snprintf(t2, sizeof t2, "%.*s", (int)n - 1, tok);
    assert_false(asr_http_token_verify(g_keys, 2, t2, NOW));
    snprintf(t2, sizeof t2, "%s0", tok);
    assert_false(asr_http_token_verify(g_keys, 2, t2, NOW));
    snprintf(t2, sizeof t2, "%s", tok);
    for (char *p = strrchr(t2, '.'); *p; p++)
        if (*p >= 'a' && *p <= 'f')
            *p = (char)(*p - 'a' + 'A');
    assert_false(asr_http_token_verify(g_keys, 2, t2, NOW));
}

static void test_malformed(void **state) {
    (void)state;
    static const char *bad[] = {
        "",
        "evt1.",
        "sk-one",
        "evt2.1800000060000.000000000000002a."
        "0000000000000000000000000000000000000000000000000000000000000000",
        "evt1.-1.000000000000002a.0000000000000000000000000000000000000000000000000000000000000000",
        "evt1.1800000060000.2a.0000000000000000000000000000000000000000000000000000000000000000",
        "evt1.1800000060000.000000000000002a.00",
        "evt1.99999999999999999999.000000000000002a."
        "0000000000000000000000000000000000000000000000000000000000000000",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_false(asr_http_token_verify(g_keys, 2, bad[i], NOW));
    assert_false(asr_http_token_verify(g_keys, 2, NULL, NOW));
}

static void redacted(const char *in, const char *want) {
    char buf[256];
    snprintf(buf, sizeof buf, "%s", in);
    asr__http_redact_token(buf);
    assert_string_equal(buf, want);
}

static void test_redact(void **state) {
    (void)state;
    redacted("/api/events?token=evt1.1.2.3", "/api/events?token=-");
    redacted("/api/events?a=1&token=evt1.x&b=2", "/api/events?a=1&token=-&b=2");
    redacted("/api/events?token=x&token=yy", "/api/events?token=-&token=-");
    redacted("/api/events?token=", "/api/events?token=");
    redacted("/api/events?token=&b=1", "/api/events?token=&b=1");
    redacted("/api/events?mytoken=abc", "/api/events?mytoken=abc");
    redacted("/api/events", "/api/events");
    redacted("/token=abc", "/token=abc"); /* the path is not a query */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_expiry),
        cmocka_unit_test(test_wrong_key_and_tampering),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_redact),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
