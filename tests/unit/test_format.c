/* Unit tests of the format module (src/format): format names and content types; a transcript
 * rendered live and rendered again from the verbose_json a job stores gives the same txt, srt and
 * vtt (one struct, one set of writers); stored json comes back verbatim; OpenAI's API shapes
 * (text, json with usage, verbose_json options); OpenAI's error document and its SSE event; UTF-8
 * repair; billed seconds. Model-free: transcripts are built by hand. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "format/format.h"

/* Two segments of JFK's sentence, the first with word times. */
static const int32_t TOKS[] = {50364, 400, 370, 50464};
static const asr_word_t W0[] = {{" And", 0.00, 0.30, 0.9f},
                                {" so", 0.30, 0.60, 0.8f},
                                {" my", 0.60, 0.90, 0.7f},
                                {" fellow", 0.90, 1.40, 0.95f},
                                {" Americans,", 1.40, 2.20, 0.6f}};

static void jfk(asr_transcript_t *t, asr_transcript_seg_t segs[2]) {
    memset(t, 0, sizeof *t);
    segs[0] = (asr_transcript_seg_t){
        .seg = {0, 0, 0.0, 2.2, " And so my fellow Americans,", TOKS, 4, 0.0f, -0.2f, 1.1f, 0.01f},
        .words = W0,
        .n_words = 5};
    segs[1] =
        (asr_transcript_seg_t){.seg = {1, 0, 3.0, 7.0, " ask not what your country can do for you.",
                                       NULL, 0, 0.0f, -0.3f, 1.2f, 0.02f}};
    t->language = "en";
    t->language_prob = 1.0f;
    t->duration = 11.0;
    t->segs = segs;
    t->n_segs = 2;
}

static char *render(const asr_transcript_t *t, asr_format_t fmt, const asr_subtitle_opts_t *o) {
    asr_buf_t b;
    asr_buf_init(&b);
    asr_transcript_write(t, fmt, "transcribe", o, &b);
    asr_buf_puts(&b, "");
    return asr_buf_steal(&b);
}

static void test_names(void **state) {
    (void)state;
    assert_int_equal(asr_format_parse("txt"), ASR_FMT_TXT);
    assert_int_equal(asr_format_parse("text"), ASR_FMT_TXT);
    assert_int_equal(asr_format_parse("verbose_json"), ASR_FMT_VERBOSE_JSON);
    assert_int_equal(asr_format_parse("vtt"), ASR_FMT_VTT);
    assert_int_equal(asr_format_parse("xml"), -1);
    assert_int_equal(asr_format_parse_api("text"), ASR_FMT_TXT);
    assert_int_equal(asr_format_parse_api("srt"), ASR_FMT_SRT);
    assert_int_equal(asr_format_parse_api("txt"), -1); /* not one of OpenAI's names */
    assert_int_equal(asr_format_parse_api(NULL), -1);
    assert_string_equal(asr_format_content_type(ASR_FMT_JSON), "application/json");
    assert_string_equal(asr_format_content_type(ASR_FMT_VERBOSE_JSON), "application/json");
    assert_string_equal(asr_format_content_type(ASR_FMT_VTT), "text/vtt; charset=utf-8");
    assert_string_equal(asr_format_content_type(ASR_FMT_SRT), "text/plain; charset=utf-8");
    assert_string_equal(asr_format_content_type(ASR_FMT_TXT), "text/plain; charset=utf-8");
}

static void test_live_renderings(void **state) {
    (void)state;
    asr_transcript_t t;
    asr_transcript_seg_t segs[2];
    jfk(&t, segs);
    char *txt = render(&t, ASR_FMT_TXT, NULL);
    assert_string_equal(txt,
                        "And so my fellow Americans,\nask not what your country can do for you.\n");
    char *srt = render(&t, ASR_FMT_SRT, NULL);
    assert_string_equal(srt, "1\n00:00:00,000 --> 00:00:02,200\nAnd so my fellow Americans,\n\n"
                             "2\n00:00:03,000 --> 00:00:07,000\nask not what your country can do "
                             "for you.\n\n");
    asr_subtitle_opts_t two = {.max_words_per_line = 2};
    char *vtt = render(&t, ASR_FMT_VTT, &two);
    /* the first segment is cut per word (2 words a cue), the second has no words: one cue */
    assert_string_equal(vtt, "WEBVTT\n\n00:00:00.000 --> 00:00:00.600\nAnd so\n\n"
                             "00:00:00.600 --> 00:00:01.400\nmy fellow\n\n"
                             "00:00:01.400 --> 00:00:02.200\nAmericans,\n\n"
                             "00:00:03.000 --> 00:00:07.000\nask not what your country can do "
                             "for you.\n\n");
    free(txt);
    free(srt);
    free(vtt);
}

/* What a job stores (the CLI's verbose_json) renders to the same txt/srt/vtt as the live result,
 * and its json is given back as stored. */
static void test_stored_equals_live(void **state) {
    (void)state;
    asr_transcript_t t;
    asr_transcript_seg_t segs[2];
    jfk(&t, segs);
    char *stored = render(&t, ASR_FMT_VERBOSE_JSON, NULL);
    json_t *doc = json_loads(stored, 0, NULL);
    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(doc, "language")), "english");
    assert_int_equal(json_array_size(json_object_get(doc, "words")), 5);
    json_t *s0 = json_array_get(json_object_get(doc, "segments"), 0);
    assert_int_equal(json_array_size(json_object_get(s0, "words")), 5);
    assert_int_equal(json_array_size(json_object_get(s0, "tokens")), 4);
    json_decref(doc);

    asr_subtitle_opts_t opts[] = {
        {0}, {.max_words_per_line = 2}, {.max_line_width = 12}, {.highlight_words = true}};
    asr_format_t fmts[] = {ASR_FMT_TXT, ASR_FMT_SRT, ASR_FMT_VTT};
    for (size_t f = 0; f < 3; f++)
        for (size_t k = 0; k < sizeof opts / sizeof opts[0]; k++) {
            char *live = render(&t, fmts[f], &opts[k]);
            asr_buf_t b;
            asr_buf_init(&b);
            assert_int_equal(asr_format_write_stored(stored, fmts[f], &opts[k], &b), ASR_OK);
            asr_buf_puts(&b, "");
            assert_string_equal(b.data, live);
            asr_buf_free(&b);
            free(live);
        }
    asr_buf_t b;
    asr_buf_init(&b);
    assert_int_equal(asr_format_write_stored(stored, ASR_FMT_JSON, NULL, &b), ASR_OK);
    assert_int_equal(b.len, strlen(stored) + 1);
    assert_memory_equal(b.data, stored, strlen(stored));
    b.len = 0;
    assert_int_equal(asr_format_write_stored("not json", ASR_FMT_TXT, NULL, &b), ASR_ERR_INVALID);
    assert_int_equal(asr_format_write_stored(NULL, ASR_FMT_TXT, NULL, &b), ASR_ERR_INVALID);
    assert_int_equal(asr_format_write_stored("[1]", ASR_FMT_SRT, NULL, &b), ASR_ERR_INVALID);
    assert_int_equal(b.len, 0);
    asr_buf_free(&b);
    free(stored);
}

/* A remote backend's stored answer (OpenAI's verbose_json: words only at the top level). */
static void test_stored_openai_shape(void **state) {
    (void)state;
    const char *doc = "{\"task\":\"transcribe\",\"language\":\"english\",\"duration\":2.5,"
                      "\"text\":\"Hi there.\",\"segments\":[{\"id\":0,\"start\":0.5,\"end\":2.25,"
                      "\"text\":\" Hi there.\"}],\"words\":[{\"word\":\"Hi\",\"start\":0.5,"
                      "\"end\":1.0}],\"x_backend_field\":1}";
    asr_transcript_t t;
    assert_int_equal(asr_transcript_from_json(&t, doc, strlen(doc)), ASR_OK);
    assert_int_equal(t.n_segs, 1);
    assert_int_equal(t.segs[0].n_words, 0);
    assert_true(t.duration == 2.5);
    asr_transcript_deinit(&t);
    assert_null(t.segs);
    asr_buf_t b;
    asr_buf_init(&b);
    asr_subtitle_opts_t o = {.max_words_per_line = 1};
    assert_int_equal(asr_format_write_stored(doc, ASR_FMT_SRT, &o, &b), ASR_OK);
    asr_buf_puts(&b, "");
    assert_string_equal(b.data, "1\n00:00:00,500 --> 00:00:02,250\nHi there.\n\n");
    b.len = 0;
    assert_int_equal(asr_format_write_stored(doc, ASR_FMT_JSON, NULL, &b), ASR_OK);
    asr_buf_puts(&b, "");
    assert_non_null(strstr(b.data, "x_backend_field"));
    asr_buf_free(&b);
}

static void test_api_shapes(void **state) {
    (void)state;
    asr_transcript_t t;
    asr_transcript_seg_t segs[2];
    jfk(&t, segs);
    asr_buf_t b;
    asr_buf_init(&b);
    asr_format_api_opts_t o = {.task = "transcribe", .usage = true};
    asr_transcript_write_api(&t, ASR_FMT_TXT, &o, &b);
    asr_buf_puts(&b, "");
    assert_string_equal(b.data,
                        "And so my fellow Americans, ask not what your country can do for you.\n");
    b.len = 0;
    asr_transcript_write_api(&t, ASR_FMT_JSON, &o, &b);
    json_t *j = json_loadb(b.data, b.len, 0, NULL);
    assert_non_null(j);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "usage"), "seconds")),
                     11);
    assert_null(json_object_get(j, "segments"));
    json_decref(j);
    b.len = 0;
    o = (asr_format_api_opts_t){
        .task = "translate", .segments = true, .words = true, .model = "base"};
    asr_transcript_write_api(&t, ASR_FMT_VERBOSE_JSON, &o, &b);
    j = json_loadb(b.data, b.len, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "task")), "translate");
    assert_string_equal(json_string_value(json_object_get(j, "model")), "base");
    assert_null(json_object_get(j, "language_probability")); /* transcriptions only */
    assert_null(json_object_get(j, "usage"));
    json_t *w0 = json_array_get(json_object_get(j, "words"), 0);
    assert_string_equal(json_string_value(json_object_get(w0, "word")), "And"); /* stripped */
    assert_null(json_object_get(w0, "probability"));
    assert_null(json_object_get(json_array_get(json_object_get(j, "segments"), 0), "words"));
    json_decref(j);
    asr_buf_free(&b);
}

static json_t *error_of(json_t *doc) {
    json_t *e = json_object_get(doc, "error");
    assert_true(json_is_object(e));
    assert_int_equal(json_object_size(e), 4);
    return e;
}

static void test_error_document(void **state) {
    (void)state;
    json_t *doc = asr_format_error_json(400, "file", "invalid_value", "bad \xff file");
    json_t *e = error_of(doc);
    assert_string_equal(json_string_value(json_object_get(e, "type")), "invalid_request_error");
    assert_string_equal(json_string_value(json_object_get(e, "param")), "file");
    assert_string_equal(json_string_value(json_object_get(e, "code")), "invalid_value");
    assert_string_equal(json_string_value(json_object_get(e, "message")), "bad \xef\xbf\xbd file");
    json_decref(doc);
    doc = asr_format_error_json(503, "", NULL, "busy");
    e = error_of(doc);
    assert_string_equal(json_string_value(json_object_get(e, "type")), "service_unavailable_error");
    assert_true(json_is_null(json_object_get(e, "param")));
    assert_true(json_is_null(json_object_get(e, "code")));
    json_decref(doc);
    assert_string_equal(asr_format_error_type(500), "server_error");
    assert_string_equal(asr_format_error_type(404), "invalid_request_error");

    asr_buf_t b;
    asr_buf_init(&b);
    asr_format_error_write(&b, 404, "model", "model_not_found", "no model");
    assert_true(b.len > 0 && b.data[b.len - 1] == '\n');
    doc = json_loadb(b.data, b.len, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(error_of(doc), "code")),
                        "model_not_found");
    json_decref(doc);
    b.len = 0;
    asr_format_sse_error(&b, 500, NULL, "model_load_failed", "cannot load");
    asr_buf_puts(&b, "");
    assert_true(!strncmp(b.data, "data: ", 6) && b.len > 8 && !strcmp(b.data + b.len - 2, "\n\n"));
    doc = json_loadb(b.data + 6, b.len - 8, 0, NULL);
    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(doc, "type")), "error");
    assert_string_equal(json_string_value(json_object_get(error_of(doc), "type")), "server_error");
    json_decref(doc);
    asr_buf_free(&b);
}

static void test_utf8_and_usage(void **state) {
    (void)state;
    asr_buf_t b;
    asr_buf_init(&b);
    const char in[] = "ok \xe4\xb8\xad \xe4\xb8 \xc0\xaf \xed\xa0\x80 end";
    asr_format_utf8_sanitize(in, sizeof in - 1, &b);
    asr_buf_puts(&b, "");
    /* a truncated sequence, an overlong one and a surrogate each become U+FFFD per bad byte */
    assert_string_equal(b.data, "ok \xe4\xb8\xad \xef\xbf\xbd\xef\xbf\xbd \xef\xbf\xbd\xef\xbf\xbd"
                                " \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd end");
    asr_buf_free(&b);
    assert_int_equal(asr_format_usage_seconds(0.0), 0);
    assert_int_equal(asr_format_usage_seconds(-1.0), 0);
    assert_int_equal(asr_format_usage_seconds(10.0), 10);
    assert_int_equal(asr_format_usage_seconds(10.2), 11);
}

/* Edits replace a segment's text (its leading space kept, its words dropped), the whole text
 * follows, and the stored document is untouched; a stored zip's records name each member with
 * its CRC-32 and sizes, and its end record counts them. */
static void test_edits_and_zip(void **state) {
    (void)state;
    const char *doc = "{\"text\":\"Hello wrold. Bye.\",\"segments\":[{\"id\":0,\"start\":0,"
                      "\"end\":1,\"text\":\" Hello wrold.\",\"words\":[{\"word\":\" Hello\","
                      "\"start\":0,\"end\":0.5}]},{\"id\":1,\"start\":1,\"end\":2,\"text\":\""
                      " Bye.\"}]}";
    asr_format_edit_t ed[] = {{0, "Hello world."}, {5, "no such segment"}};
    char *out = NULL;
    assert_int_equal(asr_format_apply_edits(doc, ed, 2, &out), ASR_OK);
    json_t *o = json_loads(out, 0, NULL);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "text")), "Hello world. Bye.");
    json_t *g = json_array_get(json_object_get(o, "segments"), 0);
    assert_string_equal(json_string_value(json_object_get(g, "text")), " Hello world.");
    assert_string_equal(json_string_value(json_object_get(g, "original_text")), " Hello wrold.");
    assert_true(json_is_true(json_object_get(g, "edited")));
    assert_null(json_object_get(g, "words"));
    assert_null(json_object_get(json_array_get(json_object_get(o, "segments"), 1), "edited"));
    json_decref(o);
    asr_buf_t b;
    asr_buf_init(&b);
    assert_int_equal(asr_format_write_stored(out, ASR_FMT_SRT, NULL, &b), ASR_OK);
    assert_non_null(strstr(b.data, "Hello world."));
    assert_null(strstr(b.data, "wrold"));
    asr_buf_free(&b);
    free(out);
    assert_int_equal(asr_format_apply_edits("[1]", ed, 1, &out), ASR_ERR_INVALID);
    assert_null(out);

    asr_buf_t zip;
    asr_buf_init(&zip);
    asr_format_zip_t z;
    asr_format_zip_init(&z, &zip);
    assert_int_equal(asr_format_zip_add(&z, "a.txt", "hello\n", 6), ASR_OK);
    assert_int_equal(asr_format_zip_add(&z, "会议.srt", "", 0), ASR_OK);
    assert_int_equal(asr_format_zip_add(&z, "", "x", 1), ASR_ERR_INVALID);
    asr_format_zip_finish(&z);
    const unsigned char *p = (const unsigned char *)zip.data;
    assert_memory_equal(p, "PK\x03\x04", 4);
    uint32_t crc =
        (uint32_t)p[14] | (uint32_t)p[15] << 8 | (uint32_t)p[16] << 16 | (uint32_t)p[17] << 24;
    assert_int_equal(crc, 0x363a3020u); /* CRC-32 of "hello\n" */
    assert_memory_equal(p + 30, "a.txt", 5);
    assert_memory_equal(p + 35, "hello\n", 6);
    const unsigned char *end = p + zip.len - 22;
    assert_memory_equal(end, "PK\x05\x06", 4);
    assert_int_equal(end[10] | end[11] << 8, 2); /* members */
    asr_buf_free(&zip);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_live_renderings),
        cmocka_unit_test(test_stored_equals_live),
        cmocka_unit_test(test_stored_openai_shape),
        cmocka_unit_test(test_api_shapes),
        cmocka_unit_test(test_error_document),
        cmocka_unit_test(test_utf8_and_usage),
        cmocka_unit_test(test_edits_and_zip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
