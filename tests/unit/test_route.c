/* Unit tests of the route module's policy: the failure classifier (what moves a request to the
 * next backend) and the breaker state machine (closed → open → half-open with one probe). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "route/route.h"

static const char OOM_BODY[] =
    "Model actor is out of memory, model id: whisper-0\nCUDA out of memory. Tried to allocate "
    "1.34 GiB. GPU 0 has a total capacity of 23.57 GiB of which 11.44 MiB is free. Process "
    "2886328 has 21.22 GiB memory in use.";

static asr_route_outcome_t cls(int status, const char *body) {
    return asr_route_classify(ASR_ROUTE_NET_OK, status, body, body ? strlen(body) : 0);
}

static void test_transport_failures_fail_over(void **state) {
    (void)state;
    asr_route_net_t nets[] = {ASR_ROUTE_NET_CONNECT, ASR_ROUTE_NET_TLS, ASR_ROUTE_NET_TIMEOUT,
                              ASR_ROUTE_NET_BROKEN};
    for (size_t i = 0; i < sizeof nets / sizeof nets[0]; i++)
        assert_int_equal(asr_route_classify(nets[i], 0, NULL, 0), ASR_ROUTE_OUTCOME_FAILOVER);
    /* our own client leaving is not the backend's fault, and ends the request */
    assert_int_equal(asr_route_classify(ASR_ROUTE_NET_CANCELLED, 0, NULL, 0),
                     ASR_ROUTE_OUTCOME_FINAL);
}

static void test_statuses(void **state) {
    (void)state;
    assert_int_equal(cls(200, "{\"text\":\"hello\"}"), ASR_ROUTE_OUTCOME_OK);
    assert_int_equal(cls(201, ""), ASR_ROUTE_OUTCOME_OK);
    int input[] = {400, 413, 415, 422};
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(cls(input[i], "{\"error\":{\"message\":\"bad audio\"}}"),
                         ASR_ROUTE_OUTCOME_FINAL);
    int backend[] = {500, 502, 503, 504, 429, 401, 403, 404, 405, 408, 301, 100};
    for (size_t i = 0; i < sizeof backend / sizeof backend[0]; i++)
        assert_int_equal(cls(backend[i], "{}"), ASR_ROUTE_OUTCOME_FAILOVER);
    assert_int_equal(cls(499, NULL), ASR_ROUTE_OUTCOME_FINAL);
}

static void test_out_of_memory_bodies(void **state) {
    (void)state;
    assert_true(asr_route_body_says_oom(OOM_BODY, strlen(OOM_BODY)));
    assert_int_equal(cls(500, OOM_BODY), ASR_ROUTE_OUTCOME_FAILOVER);
    /* an error answer that is really an out-of-memory report fails over: a 2xx carrying an error
     * object, a 4xx that blames the input for the server's memory */
    assert_int_equal(cls(200, "{\"error\": \"CUDA out of memory\"}"), ASR_ROUTE_OUTCOME_FAILOVER);
    assert_int_equal(cls(200, "{\"code\": 1, \"error\": {\"message\": \"out of memory\"}}"),
                     ASR_ROUTE_OUTCOME_FAILOVER);
    assert_int_equal(cls(400, "java.lang.OutOfMemoryError: Java heap space"),
                     ASR_ROUTE_OUTCOME_FAILOVER);
    assert_int_equal(cls(422, "{\"error\": {\"code\": \"out_of_memory\"}}"),
                     ASR_ROUTE_OUTCOME_FAILOVER);
    assert_true(asr_route_answer_is_oom(503, OOM_BODY, strlen(OOM_BODY)));
    assert_true(asr_route_body_says_oom("OUT OF MEMORY", 13));
    assert_true(asr_route_body_says_oom("code: out_of_memory", 19));
    assert_false(asr_route_body_says_oom("out of mem", 10));
    assert_false(asr_route_body_says_oom("{\"text\":\"she had your dark suit\"}", 33));
    assert_false(asr_route_body_says_oom(NULL, 0));
    /* the length bounds the scan: no read past it */
    assert_false(asr_route_body_says_oom(OOM_BODY, 10));
}

/* A transcript is what the speaker said: words about memory are not an error (issue 16). */
static void test_transcript_saying_oom_is_an_answer(void **state) {
    (void)state;
    static const char *said[] = {
        "{\"text\":\"the server ran out of memory\"}",
        "the server ran out of memory\n",                             /* response_format=text */
        "1\n00:00:00,000 --> 00:00:02,000\nOut of memory again.\n\n", /* srt */
        "{\"task\":\"transcribe\",\"text\":\"OutOfMemoryError\",\"segments\":[{\"id\":0,"
        "\"text\":\"OutOfMemoryError\"}]}",
        "{\"text\":\"the error: out of memory\"}", /* "error" in the text, not a member */
        "{\"text\":\"out of memory\",\"error\":null}",
    };
    for (size_t i = 0; i < sizeof said / sizeof said[0]; i++) {
        assert_true(asr_route_body_says_oom(said[i], strlen(said[i])));
        assert_false(asr_route_answer_is_oom(200, said[i], strlen(said[i])));
        assert_int_equal(cls(200, said[i]), ASR_ROUTE_OUTCOME_OK);
        assert_int_equal(cls(201, said[i]), ASR_ROUTE_OUTCOME_OK);
    }
    /* a 2xx error object without the phrase is not an out-of-memory report either */
    assert_false(asr_route_answer_is_oom(200, "{\"error\":\"bad\"}", 15));
}

static void test_breaker_opens_after_threshold(void **state) {
    (void)state;
    asr_route_breaker_t b;
    asr_route_breaker_init(&b, 3, 30.0);
    bool probe;
    for (int i = 0; i < 2; i++) {
        assert_true(asr_route_breaker_acquire(&b, 1.0 + i, &probe));
        assert_false(probe);
        asr_route_breaker_release(&b, 1.0 + i, -1, probe);
        assert_int_equal(b.state, ASR_ROUTE_BREAKER_CLOSED);
    }
    /* a success in between resets the count */
    assert_true(asr_route_breaker_acquire(&b, 3.0, &probe));
    asr_route_breaker_release(&b, 3.0, 1, probe);
    assert_int_equal(b.failures, 0);
    for (int i = 0; i < 3; i++) {
        assert_true(asr_route_breaker_acquire(&b, 4.0 + i, &probe));
        asr_route_breaker_release(&b, 4.0 + i, -1, probe);
    }
    assert_int_equal(b.state, ASR_ROUTE_BREAKER_OPEN);
    assert_int_equal(b.n_opened, 1);
    assert_false(asr_route_breaker_acquire(&b, 6.0, &probe));
    assert_false(asr_route_breaker_acquire(&b, 6.0 + 29.9, &probe));
    assert_int_equal(asr_route_breaker_state(&b, 20.0), ASR_ROUTE_BREAKER_OPEN);
    assert_int_equal(asr_route_breaker_state(&b, 36.0), ASR_ROUTE_BREAKER_HALF_OPEN);
}

static void test_breaker_half_open_one_probe(void **state) {
    (void)state;
    asr_route_breaker_t b;
    asr_route_breaker_init(&b, 1, 10.0);
    bool probe;
    assert_true(asr_route_breaker_acquire(&b, 0.0, &probe));
    asr_route_breaker_release(&b, 0.0, -1, probe);
    assert_int_equal(b.state, ASR_ROUTE_BREAKER_OPEN);
    /* after the cooldown: exactly one caller probes, the others are kept out */
    assert_true(asr_route_breaker_acquire(&b, 10.0, &probe));
    assert_true(probe);
    bool p2;
    assert_false(asr_route_breaker_acquire(&b, 10.1, &p2));
    assert_false(asr_route_breaker_acquire(&b, 50.0, &p2));
    /* the probe fails: open again, for a fresh cooldown */
    asr_route_breaker_release(&b, 11.0, -1, true);
    assert_int_equal(b.state, ASR_ROUTE_BREAKER_OPEN);
    assert_int_equal(b.n_opened, 2);
    assert_false(asr_route_breaker_acquire(&b, 20.0, &p2));
    /* the next probe succeeds: closed, everyone in */
    assert_true(asr_route_breaker_acquire(&b, 21.0, &probe));
    assert_true(probe);
    asr_route_breaker_release(&b, 21.5, 1, true);
    assert_int_equal(b.state, ASR_ROUTE_BREAKER_CLOSED);
    assert_true(asr_route_breaker_acquire(&b, 21.6, &p2));
    assert_false(p2);
    assert_true(asr_route_breaker_acquire(&b, 21.6, &p2));
    assert_int_equal(b.n_probes, 2);
}

static void test_breaker_neutral_probe(void **state) {
    (void)state;
    asr_route_breaker_t b;
    asr_route_breaker_init(&b, 1, 5.0);
    bool probe;
    asr_route_breaker_acquire(&b, 0.0, &probe);
    asr_route_breaker_release(&b, 0.0, -1, probe);
    assert_true(asr_route_breaker_acquire(&b, 5.0, &probe));
    assert_true(probe);
    /* the probe's client went away (neutral): still half-open, the next caller probes */
    asr_route_breaker_release(&b, 5.5, 0, true);
    assert_int_equal(b.state, ASR_ROUTE_BREAKER_HALF_OPEN);
    assert_true(asr_route_breaker_acquire(&b, 5.6, &probe));
    assert_true(probe);
}

static void test_breaker_retry_after_hint(void **state) {
    (void)state;
    asr_route_breaker_t b;
    asr_route_breaker_init(&b, 5, 30.0);
    bool probe;
    asr_route_breaker_hint(&b, 100.0, 2.0);
    assert_false(asr_route_breaker_acquire(&b, 101.9, &probe));
    assert_true(asr_route_breaker_acquire(&b, 102.0, &probe));
    asr_route_breaker_hint(&b, 0.0, 1e9); /* capped at 300 s */
    assert_true(b.skip_until <= 300.0 + 1e-9 || b.skip_until == 102.0);
    asr_route_breaker_hint(&b, 200.0, -1); /* ignored */
    assert_true(b.skip_until <= 300.0);
}

static void test_names(void **state) {
    (void)state;
    assert_string_equal(asr_route_net_name(ASR_ROUTE_NET_TIMEOUT), "timeout");
    assert_string_equal(asr_route_breaker_state_name(ASR_ROUTE_BREAKER_HALF_OPEN), "half_open");
}

/* Model names: a row names a model by its model_name or an alias (trimmed, exact). */
static void test_names_model(void **state) {
    (void)state;
    const char *al = " large-v3 ,openai/whisper-large-v3,, v3 ";
    assert_true(asr_route_names_model("whisper-large-v3", al, "whisper-large-v3"));
    assert_true(asr_route_names_model("whisper-large-v3", al, "large-v3"));
    assert_true(asr_route_names_model("whisper-large-v3", al, "openai/whisper-large-v3"));
    assert_true(asr_route_names_model("", al, "v3"));
    assert_false(asr_route_names_model("whisper-large-v3", al, "Large-V3")); /* exact */
    assert_false(asr_route_names_model("whisper-large-v3", al, "large"));    /* whole names */
    assert_false(asr_route_names_model("whisper-large-v3", al, ""));
    assert_false(asr_route_names_model(NULL, NULL, "x"));
}

/* Which rows serve a request's model. */
static void test_row_serves(void **state) {
    (void)state;
    /* no model asked: every row */
    assert_true(asr_route_row_serves("openai", "whisper-large-v3", "", NULL, false));
    assert_true(asr_route_row_serves("openai", "whisper-large-v3", "", "", false));
    /* a remote row: by its names only */
    assert_true(asr_route_row_serves("openai", "whisper-large-v3", "large-v3", "large-v3", false));
    assert_false(asr_route_row_serves("openai", "whisper-large-v3", "large-v3", "tiny.en", true));
    /* a remote row that names no model passes the client's on: it serves any */
    assert_true(asr_route_row_serves("openai", "", "", "anything", false));
    assert_true(asr_route_row_serves("whisper.cpp", "", " , ", "anything", false));
    assert_false(asr_route_row_serves("openai", "", "large-v3", "anything", false));
    /* the local row: its names and whatever its engine has */
    assert_true(asr_route_row_serves("local", "", "", "tiny.en", true));
    assert_true(asr_route_row_serves("local", "base", "", "tiny.en", true));
    assert_false(asr_route_row_serves("local", "", "", "whisper-large-v3", false));
    assert_true(asr_route_row_serves("local", "", "large-v3", "large-v3", false));
}

/* The order a request tries: serving rows first (table order), then substitutes. */
static void test_model_order(void **state) {
    (void)state;
    /* table order: gpu (default), local, other; the model is served by gpu and other */
    bool serves[] = {true, false, true}, subst[] = {true, true, false};
    int order[3], n_serving = -1;
    int n = asr_route_model_order(serves, subst, 3, order, &n_serving);
    assert_int_equal(n, 3);
    assert_int_equal(n_serving, 2);
    assert_int_equal(order[0], 0);
    assert_int_equal(order[1], 2);
    assert_int_equal(order[2], 1); /* local stands in last */
    /* local forbids substitution: it is left out */
    subst[1] = false;
    assert_int_equal(asr_route_model_order(serves, subst, 3, order, &n_serving), 2);
    assert_int_equal(order[0], 0);
    assert_int_equal(order[1], 2);
    /* nobody serves it: a 404 even though rows allow substitution */
    bool none[] = {false, false, false}, all[] = {true, true, true};
    assert_int_equal(asr_route_model_order(none, all, 3, order, &n_serving), 3);
    assert_int_equal(n_serving, 0);
}

/* The class each kind of failed attempt counts under in /metrics. */
static void test_fail_classes(void **state) {
    (void)state;
    const char *oom = "{\"detail\": \"CUDA out of memory. Tried to allocate 1.3 GiB\"}";
    assert_int_equal(asr_route_fail_class(ASR_ROUTE_NET_CONNECT, 0, NULL, 0),
                     ASR_ROUTE_FAIL_REFUSED);
    assert_int_equal(asr_route_fail_class(ASR_ROUTE_NET_TIMEOUT, 0, NULL, 0),
                     ASR_ROUTE_FAIL_TIMEOUT);
    assert_int_equal(asr_route_fail_class(ASR_ROUTE_NET_BROKEN, 0, NULL, 0), ASR_ROUTE_FAIL_BROKEN);
    assert_int_equal(asr_route_fail_class(ASR_ROUTE_NET_OK, 500, "boom", 4), ASR_ROUTE_FAIL_5XX);
    /* out of memory wins over the status it came with */
    assert_int_equal(asr_route_fail_class(ASR_ROUTE_NET_OK, 500, oom, strlen(oom)),
                     ASR_ROUTE_FAIL_OOM);
    assert_int_equal(asr_route_fail_class(ASR_ROUTE_NET_OK, 503, oom, strlen(oom)),
                     ASR_ROUTE_FAIL_OOM);
    assert_int_equal(asr_route_fail_class(ASR_ROUTE_NET_OK, 503, "", 0), ASR_ROUTE_FAIL_BUSY);
    assert_int_equal(asr_route_fail_class(ASR_ROUTE_NET_OK, 429, "", 0), ASR_ROUTE_FAIL_BUSY);
    assert_int_equal(asr_route_fail_class(ASR_ROUTE_NET_OK, 401, "", 0), ASR_ROUTE_FAIL_REJECTED);
    assert_string_equal(asr_route_fail_name(ASR_ROUTE_FAIL_OOM), "out_of_memory");
    assert_string_equal(asr_route_fail_name(ASR_ROUTE_FAIL_5XX), "5xx");
}

/* A backend's message as the status page shows it: parsed from its JSON, quotes kept, one line. */
static void test_error_message(void **state) {
    (void)state;
    char m[128];
    const char *fastapi = "{\"detail\": \"model id: \\\"whisper-0\\\"\\nCUDA out of memory\"}";
    asr_route_error_message(fastapi, strlen(fastapi), m, sizeof m);
    assert_string_equal(m, "model id: \"whisper-0\" CUDA out of memory");
    const char *openai =
        "{\"error\": {\"message\": \"the server is overloaded\", \"type\": \"x\"}}";
    asr_route_error_message(openai, strlen(openai), m, sizeof m);
    assert_string_equal(m, "the server is overloaded");
    const char *wcpp = "{\"error\": \"failed to read audio\"}";
    asr_route_error_message(wcpp, strlen(wcpp), m, sizeof m);
    assert_string_equal(m, "failed to read audio");
    const char *plain = "  Bad\r\n  Gateway\n";
    asr_route_error_message(plain, strlen(plain), m, sizeof m);
    assert_string_equal(m, "Bad Gateway");
    asr_route_error_message(NULL, 0, m, sizeof m);
    assert_string_equal(m, "");
    /* a cut never splits a UTF-8 character: 显 is 3 bytes, 4 bytes of room hold one */
    char small[5];
    asr_route_error_message("显存不足", strlen("显存不足"), small, sizeof small);
    assert_string_equal(small, "显");
    /* Latin-1 bytes are not UTF-8: replaced, so the message can go into JSON */
    asr_route_error_message("caf\xe9 \xff", 6, m, sizeof m);
    assert_string_equal(m, "caf? ?");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_transport_failures_fail_over),
        cmocka_unit_test(test_statuses),
        cmocka_unit_test(test_out_of_memory_bodies),
        cmocka_unit_test(test_transcript_saying_oom_is_an_answer),
        cmocka_unit_test(test_breaker_opens_after_threshold),
        cmocka_unit_test(test_breaker_half_open_one_probe),
        cmocka_unit_test(test_breaker_neutral_probe),
        cmocka_unit_test(test_breaker_retry_after_hint),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_names_model),
        cmocka_unit_test(test_row_serves),
        cmocka_unit_test(test_model_order),
        cmocka_unit_test(test_fail_classes),
        cmocka_unit_test(test_error_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
