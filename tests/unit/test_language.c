/* Unit tests of language tags and Chinese script conversion: asr_lang_code_normalize (codes,
 * English names, openai's aliases, regional and script forms, malformed tags), asr_lang_zh_script
 * (the script a tag implies), and the OpenCC converter of src/engine/zhscript.c (Traditional ->
 * Simplified and back), and that a stream closes its converters. Model-free; the conversion tests
 * are skipped when asrd was built without OpenCC. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "asr/engine.h"
#include "engine/engine_int.h"
#include "engine/zhscript.h"

static void test_normalize(void **state) {
    (void)state;
    static const char *const ok[][2] = {
        {"en", "en"},
        {"ZH", "zh"},
        {"chinese", "zh"},
        {"Chinese", "zh"},
        {"CHINESE", "zh"},
        {"mandarin", "zh"},
        {"zh-CN", "zh"},
        {"zh_TW", "zh"},
        {"en-US", "en"},
        {"pt-BR", "pt"},
        {"zh-Hans", "zh"},
        {"zh-Hant", "zh"},
        {"zh-hant-HK", "zh"},
        {"yue", "yue"},
        {"yue-HK", "yue"},
        {"haw", "haw"},
        {"haitian creole", "ht"},
        {"es-419", "es"},
        {"moldovan", "ro"},
        {"EN_gb", "en"},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        const char *got = asr_lang_code_normalize(ok[i][0]);
        if (!got || strcmp(got, ok[i][1]))
            fail_msg("asr_lang_code_normalize(\"%s\") = %s, expected %s", ok[i][0],
                     got ? got : "NULL", ok[i][1]);
    }
    static const char *const bad[] = {
        "",     "klingon", "xx",    "xx-CN",         "chinese-CN", "zh-",   "zh--CN", "-zh",
        "zh-C", "zh-CN-",  "zh CN", "zh-toolongtag", "e",          "zh-C!", NULL,
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *got = asr_lang_code_normalize(bad[i]);
        if (got)
            fail_msg("asr_lang_code_normalize(\"%s\") = %s, expected NULL",
                     bad[i] ? bad[i] : "(null)", got);
    }
    assert_string_equal(asr_lang_name(asr_lang_code_normalize("zh-TW")), "chinese");
}

static void test_zh_script(void **state) {
    (void)state;
    static const struct {
        const char *tag;
        asr_zh_script_t script;
    } cases[] = {
        {"zh-CN", ASR_ZH_SCRIPT_SIMPLIFIED},
        {"zh_cn", ASR_ZH_SCRIPT_SIMPLIFIED},
        {"zh-SG", ASR_ZH_SCRIPT_SIMPLIFIED},
        {"zh-Hans", ASR_ZH_SCRIPT_SIMPLIFIED},
        {"zh-TW", ASR_ZH_SCRIPT_TRADITIONAL},
        {"zh_TW", ASR_ZH_SCRIPT_TRADITIONAL},
        {"zh-HK", ASR_ZH_SCRIPT_TRADITIONAL},
        {"zh-MO", ASR_ZH_SCRIPT_TRADITIONAL},
        {"zh-Hant", ASR_ZH_SCRIPT_TRADITIONAL},
        {"yue-HK", ASR_ZH_SCRIPT_TRADITIONAL},
        {"zh-Hans-HK", ASR_ZH_SCRIPT_SIMPLIFIED}, /* the script subtag wins */
        {"zh-Hant-CN", ASR_ZH_SCRIPT_TRADITIONAL},
        {"zh", ASR_ZH_SCRIPT_AUTO},
        {"chinese", ASR_ZH_SCRIPT_AUTO},
        {"en-US", ASR_ZH_SCRIPT_AUTO},
        {"ja-TW", ASR_ZH_SCRIPT_AUTO},
        {"klingon-TW", ASR_ZH_SCRIPT_AUTO},
        {NULL, ASR_ZH_SCRIPT_AUTO},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (asr_lang_zh_script(cases[i].tag) != cases[i].script)
            fail_msg("asr_lang_zh_script(\"%s\") = %d, expected %d",
                     cases[i].tag ? cases[i].tag : "(null)", asr_lang_zh_script(cases[i].tag),
                     cases[i].script);
}

static void test_convert(void **state) {
    (void)state;
    if (!asr__zhscript_available())
        skip();
    static const char trad[] = "廣州市房地產中介協會分析，漢字轉換測試。OK 123";
    static const char simp[] = "广州市房地产中介协会分析，汉字转换测试。OK 123";
    asr_zhscript_t *t2s = NULL, *s2t = NULL;
    char err[256] = "";
    assert_int_equal(asr__zhscript_open(ASR_ZH_SCRIPT_SIMPLIFIED, &t2s, err, sizeof err), ASR_OK);
    assert_int_equal(asr__zhscript_open(ASR_ZH_SCRIPT_TRADITIONAL, &s2t, err, sizeof err), ASR_OK);
    asr_buf_t b;
    asr_buf_init(&b);
    assert_int_equal(asr__zhscript_convert(t2s, trad, strlen(trad), &b), ASR_OK);
    assert_string_equal(b.data, simp);
    b.len = 0;
    assert_int_equal(asr__zhscript_convert(s2t, simp, strlen(simp), &b), ASR_OK);
    assert_string_equal(b.data, trad);
    /* a length shorter than the string converts only that prefix (廣 is 3 bytes) */
    b.len = 0;
    assert_int_equal(asr__zhscript_convert(t2s, trad, 6, &b), ASR_OK);
    assert_string_equal(b.data, "广州");
    /* bytes OpenCC rejects (model output can hold partial UTF-8) pass through unchanged */
    b.len = 0;
    asr__zhscript_convert(t2s, "\xff\xfe", 2, &b);
    assert_int_equal(b.len, 2);
    assert_memory_equal(b.data, "\xff\xfe", 2);
    b.len = 0;
    assert_int_equal(asr__zhscript_convert(t2s, "", 0, &b), ASR_OK);
    assert_int_equal(b.len, 0);
    asr_buf_free(&b);
    asr__zhscript_close(t2s);
    asr__zhscript_close(s2t);
    asr__zhscript_close(NULL);
    assert_int_equal(asr__zhscript_open(ASR_ZH_SCRIPT_AUTO, &t2s, err, sizeof err),
                     ASR_ERR_INVALID);
    assert_null(t2s);
}

/* A stream's converters (opened on its first Chinese transcription, kept for the next) are closed
 * when the stream is destroyed. They once were not: each destroyed slot leaked an OpenCC
 * converter and its dictionaries. */
static void test_stream_closes_converters(void **state) {
    (void)state;
    if (!asr__zhscript_available())
        skip();
    asr_stream_t *s = calloc(1, sizeof *s); /* no model: only the script state is used */
    assert_non_null(s);
    snprintf(s->language, sizeof s->language, "zh");
    asr_transcribe_params_t p = asr_transcribe_default_params();
    p.chinese_script = ASR_ZH_SCRIPT_TRADITIONAL;
    int before = asr__zhscript_n_open();
    assert_int_equal(asr__zh_begin(s, &p), ASR_OK);
    assert_non_null(s->zh_out);
    p.chinese_script = ASR_ZH_SCRIPT_SIMPLIFIED;
    assert_int_equal(asr__zh_begin(s, &p), ASR_OK);
    assert_int_equal(asr__zhscript_n_open(), before + 2);
    asr_stream_destroy(s);
    assert_int_equal(asr__zhscript_n_open(), before);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_normalize),
        cmocka_unit_test(test_zh_script),
        cmocka_unit_test(test_convert),
        cmocka_unit_test(test_stream_closes_converters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
