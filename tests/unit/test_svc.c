/* Unit tests of the svc module's two single points of truth: the option validation (the same
 * value gives the same verdict and the same message whether it came as a form field's text or as
 * a job's JSON; out of range is refused, never clamped) and the one mapping of failures to an
 * HTTP status, an OpenAI error code and a retry decision. The service's runs on the scheduler are
 * covered end to end by tests/e2e/test_svc_consistency.py with real models. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "svc/svc.h"

static asr_svc_t *make_svc(int beam_size, bool vad) {
    asr_svc_params_t p = {.beam_size = beam_size, .vad = vad}; /* no aliases: no scheduler use */
    asr_svc_t *svc = NULL;
    char err[128];
    assert_int_equal(asr_svc_create(&p, &svc, err, sizeof err), ASR_OK);
    return svc;
}

/* Sets `name` from form text and from a JSON document, and checks both verdicts agree. Returns
 * the verdict; fe and je get the errors. */
static asr_err_t both(asr_svc_t *svc, const char *name, const char *text, const char *json,
                      asr_svc_request_t *form, asr_svc_request_t *js, asr_svc_error_t *fe,
                      asr_svc_error_t *je) {
    asr_svc_request_init(svc, form);
    asr_svc_request_init(svc, js);
    json_error_t jerr;
    json_t *v = json_loads(json, JSON_DECODE_ANY, &jerr);
    assert_non_null(v);
    asr_err_t a = asr_svc_option(form, name, text, NULL, fe);
    asr_err_t b = asr_svc_option(js, name, NULL, v, je);
    json_decref(v);
    assert_int_equal(a, b);
    if (a != ASR_OK) {
        assert_string_equal(fe->message, je->message);
        assert_string_equal(fe->param, je->param);
        assert_string_equal(fe->param, name);
    }
    return a;
}

static void test_out_of_range_is_refused_not_clamped(void **state) {
    (void)state;
    asr_svc_t *svc = make_svc(5, true);
    asr_svc_request_t f, j;
    asr_svc_error_t fe, je;
    assert_int_equal(both(svc, "beam_size", "99", "99", &f, &j, &fe, &je), ASR_ERR_INVALID);
    assert_int_equal(fe.code, ASR_ERR_INVALID);
    assert_int_equal(asr_svc_err_http_status(fe.code), 400);
    assert_non_null(strstr(fe.message, "1 to 8"));
    assert_int_equal(f.beam_size, 5); /* untouched: not clamped to 8 */
    assert_int_equal(j.beam_size, 5);
    assert_int_equal(both(svc, "beam_size", "0", "0", &f, &j, &fe, &je), ASR_ERR_INVALID);
    assert_int_equal(both(svc, "temperature", "1.5", "1.5", &f, &j, &fe, &je), ASR_ERR_INVALID);
    assert_int_equal(both(svc, "temperature", "-0.1", "-0.1", &f, &j, &fe, &je), ASR_ERR_INVALID);
    assert_int_equal(both(svc, "keep_alive", "2y", "\"2y\"", &f, &j, &fe, &je), ASR_ERR_INVALID);
    assert_int_equal(both(svc, "task", "dance", "\"dance\"", &f, &j, &fe, &je), ASR_ERR_INVALID);
    assert_int_equal(both(svc, "chinese_script", "klingon", "\"klingon\"", &f, &j, &fe, &je),
                     ASR_ERR_INVALID);
    assert_int_equal(both(svc, "language", "xx-nope", "\"xx-nope\"", &f, &j, &fe, &je),
                     ASR_ERR_INVALID);
    assert_int_equal(both(svc, "vad_filter", "maybe", "\"maybe\"", &f, &j, &fe, &je),
                     ASR_ERR_INVALID);
    asr_svc_request_clear(&f);
    asr_svc_request_clear(&j);
    asr_svc_destroy(svc);
}

static void test_valid_values_agree(void **state) {
    (void)state;
    asr_svc_t *svc = make_svc(1, false);
    asr_svc_request_t f, j;
    asr_svc_error_t fe, je;
    assert_int_equal(both(svc, "beam_size", "8", "8", &f, &j, &fe, &je), ASR_OK);
    assert_int_equal(f.beam_size, 8);
    assert_int_equal(j.beam_size, 8);
    assert_int_equal(both(svc, "temperature", "0.4", "0.4", &f, &j, &fe, &je), ASR_OK);
    assert_true(f.temperature > 0.39f && f.temperature < 0.41f && f.temperature == j.temperature);
    assert_int_equal(both(svc, "keep_alive", "5m", "\"5m\"", &f, &j, &fe, &je), ASR_OK);
    assert_true(f.keep_alive_s == 300.0 && j.keep_alive_s == 300.0);
    assert_int_equal(both(svc, "keep_alive", "-1", "-1", &f, &j, &fe, &je), ASR_OK);
    assert_true(f.keep_alive_s == -1.0 && j.keep_alive_s == -1.0);
    assert_int_equal(both(svc, "vad_filter", "true", "true", &f, &j, &fe, &je), ASR_OK);
    assert_true(f.vad && j.vad);
    assert_int_equal(both(svc, "task", "translate", "\"translate\"", &f, &j, &fe, &je), ASR_OK);
    assert_true(f.translate && j.translate);
    assert_int_equal(both(svc, "language", "zh-TW", "\"zh-TW\"", &f, &j, &fe, &je), ASR_OK);
    assert_string_equal(f.language, "zh-TW");
    assert_string_equal(j.language, "zh-TW");
    asr_svc_request_clear(&f); /* both() initialises them again */
    asr_svc_request_clear(&j);
    assert_int_equal(both(svc, "chinese_script", "simplified", "\"simplified\"", &f, &j, &fe, &je),
                     ASR_OK);
    assert_int_equal(f.chinese_script, ASR_ZH_SCRIPT_SIMPLIFIED);
    assert_int_equal(j.chinese_script, ASR_ZH_SCRIPT_SIMPLIFIED);
    asr_svc_request_clear(&f);
    asr_svc_request_clear(&j);
    asr_svc_destroy(svc);
}

static void test_json_types_are_strict(void **state) {
    (void)state;
    asr_svc_t *svc = make_svc(5, true);
    asr_svc_request_t rq;
    asr_svc_request_init(svc, &rq);
    asr_svc_error_t e;
    const char *bad[] = {"{\"beam_size\": \"5\"}", "{\"word_timestamps\": \"yes\"}",
                         "{\"temperature\": \"0.2\"}", "{\"prompt\": 7}", "{\"bogus\": 1}"};
    const char *param[] = {"beam_size", "word_timestamps", "temperature", "prompt", "bogus"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *o = json_loads(bad[i], 0, NULL);
        assert_int_equal(asr_svc_options_json(&rq, o, NULL, &e), ASR_ERR_INVALID);
        assert_string_equal(e.param, param[i]);
        json_decref(o);
    }
    /* a name the caller handles itself, and JSON null (the default) */
    static const char *const extra[] = {"webhook_url", NULL};
    json_t *o = json_loads(
        "{\"webhook_url\": \"http://x\", \"beam_size\": null, \"prompt\": \"hi\"}", 0, NULL);
    assert_int_equal(asr_svc_options_json(&rq, o, extra, &e), ASR_OK);
    assert_int_equal(rq.beam_size, 5);
    assert_string_equal(rq.prompt, "hi");
    json_decref(o);
    /* not an option at all: the caller decides */
    assert_int_equal(asr_svc_option(&rq, "response_format", "json", NULL, &e), ASR_ERR_NOT_FOUND);
    asr_svc_request_clear(&rq);
    asr_svc_destroy(svc);
}

static void test_server_defaults(void **state) {
    (void)state;
    asr_svc_t *svc = make_svc(12, false); /* the engine decodes at most 8 sequences */
    asr_svc_request_t rq;
    asr_svc_request_init(svc, &rq);
    assert_int_equal(rq.beam_size, 8);
    assert_false(rq.vad);
    assert_true(rq.word_timestamps && rq.allow_fallback);
    assert_true(rq.keep_alive_s == ASR_SCHED_KEEP_ALIVE_DEFAULT);
    assert_false(rq.finished);
    asr_svc_request_clear(&rq);
    asr_svc_destroy(svc);
}

/* The one table: what HTTP answers and whether a job tries again agree by construction. */
static void test_error_mapping(void **state) {
    (void)state;
    struct {
        asr_err_t code;
        int status;
        bool retry;
        const char *name;
    } rows[] = {
        {ASR_OK, 200, false, NULL},
        {ASR_ERR_INVALID, 400, false, "invalid_value"},
        {ASR_ERR_AUDIO, 400, false, "invalid_audio"},
        {ASR_ERR_NOT_FOUND, 404, false, "model_not_found"},
        {ASR_ERR_UNSUPPORTED, 413, false, "audio_too_long"},
        {ASR_ERR_CANCELLED, 499, false, NULL},
        {ASR_ERR_MODEL, 500, false, "model_load_failed"}, /* a corrupt model stays corrupt */
        {ASR_ERR_IO, 500, false, "transcription_failed"},
        {ASR_ERR_BUSY, 503, true, "server_is_overloaded"},
        {ASR_ERR_NOMEM, 503, true, "server_is_overloaded"},
        {ASR_ERR_GPU, 503, true, "server_is_overloaded"},
        {ASR_ERR_AGAIN, 503, true, "shutting_down"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        assert_int_equal(asr_svc_err_http_status(rows[i].code), rows[i].status);
        assert_int_equal(asr_svc_err_retryable(rows[i].code), rows[i].retry);
        const char *c = asr_svc_err_code(rows[i].code);
        if (rows[i].name)
            assert_string_equal(c, rows[i].name);
        else
            assert_null(c);
    }
}

static void test_unfinished_request_does_not_run(void **state) {
    (void)state;
    asr_svc_t *svc = make_svc(5, true);
    asr_svc_request_t rq;
    asr_svc_request_init(svc, &rq);
    asr_svc_error_t e;
    asr_svc_call_t *c = (asr_svc_call_t *)&rq; /* must be reset to NULL */
    assert_int_equal(asr_svc_start(svc, &rq, "/nonexistent.wav", NULL, &c, &e), ASR_ERR_INVALID);
    assert_null(c);
    asr_svc_request_clear(&rq);
    asr_svc_destroy(svc);
}

/* The Chinese script's precedence: the request's own field (auto included), then a regional tag,
 * then the server's setting (which a detected zh, no language, also gets). */
static void test_chinese_script_precedence(void **state) {
    (void)state;
    const asr_zh_script_t A = ASR_ZH_SCRIPT_AUTO, S = ASR_ZH_SCRIPT_SIMPLIFIED,
                          T = ASR_ZH_SCRIPT_TRADITIONAL;
    if (!asr_zh_script_available())
        skip(); /* the setting gives way to AUTO without OpenCC */
    assert_int_equal(asr_svc_chinese_script(false, A, NULL, S), S);
    assert_int_equal(asr_svc_chinese_script(false, A, "zh", S), S);
    assert_int_equal(asr_svc_chinese_script(false, A, "zh", T), T);
    assert_int_equal(asr_svc_chinese_script(false, A, "zh-TW", S), A); /* the engine reads it */
    assert_int_equal(asr_svc_chinese_script(false, A, "zh-Hans", T), A);
    assert_int_equal(asr_svc_chinese_script(true, A, "zh", S), A);
    assert_int_equal(asr_svc_chinese_script(true, T, "zh-CN", S), T);
    assert_int_equal(asr_svc_zh_script_parse("auto"), A);
    assert_int_equal(asr_svc_zh_script_parse("traditional"), T);
    assert_int_equal(asr_svc_zh_script_parse("Simplified"), -1);
    /* "auto" is an accepted value that overrides the setting; "" means unset */
    asr_svc_params_t p = {.beam_size = 5, .chinese_script = S};
    asr_svc_t *svc = NULL;
    char err[128];
    assert_int_equal(asr_svc_create(&p, &svc, err, sizeof err), ASR_OK);
    asr_svc_request_t rq;
    asr_svc_error_t e;
    asr_svc_request_init(svc, &rq);
    assert_int_equal(asr_svc_option(&rq, "chinese_script", "auto", NULL, &e), ASR_OK);
    assert_true(rq.chinese_script_set);
    assert_int_equal(asr_svc_option(&rq, "chinese_script", "", NULL, &e), ASR_OK);
    assert_false(rq.chinese_script_set);
    asr_svc_request_clear(&rq);
    asr_svc_destroy(svc);
}

/* English-only models: translating is refused on "model", another language on "language", with
 * the model and the language named; English (any form) and detection pass. */
static void test_english_only_rule(void **state) {
    (void)state;
    asr_svc_error_t e;
    assert_int_equal(asr_svc_check_model_language("tiny.en", false, false, "zh-CN", &e),
                     ASR_ERR_INVALID);
    assert_string_equal(e.param, "language");
    assert_non_null(strstr(e.message, "'tiny.en'"));
    assert_non_null(strstr(e.message, "'zh'"));
    assert_int_equal(asr_svc_check_model_language("tiny.en", false, true, NULL, &e),
                     ASR_ERR_INVALID);
    assert_string_equal(e.param, "model");
    assert_int_equal(asr_svc_check_model_language("tiny.en", false, false, "en-US", &e), ASR_OK);
    assert_int_equal(asr_svc_check_model_language("tiny.en", false, false, NULL, &e), ASR_OK);
    assert_int_equal(asr_svc_check_model_language("base", true, true, "zh", &e), ASR_OK);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chinese_script_precedence),
        cmocka_unit_test(test_english_only_rule),
        cmocka_unit_test(test_out_of_range_is_refused_not_clamped),
        cmocka_unit_test(test_valid_values_agree),
        cmocka_unit_test(test_json_types_are_strict),
        cmocka_unit_test(test_server_defaults),
        cmocka_unit_test(test_error_mapping),
        cmocka_unit_test(test_unfinished_request_does_not_run),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
