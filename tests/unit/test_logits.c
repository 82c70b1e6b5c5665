/* The output projection (src/engine/logits.c), on a random tiny model made here:
 *
 * 1. asr__logits_top returns exactly the k highest of random arrays (ties, k >= n, NaN skipped).
 * 2. int8 and bfloat16: the model holds the embedding in two int8 levels (tok_emb, tok_res), every
 * row within max|w|/64516 of the file's; asr__logits scores every token from the first and then the
 *    ASR_LOGITS_EXACT highest of each row from both: against the double-precision reference
 *    over the float32 model's embedding, the 16 highest are the
 *    reference's in the same order with its values (within 2e-4), most other tokens differ
 *    (the int8 values really are used) but within the quantisation's bound, and the CPU
 *    batcher's form (activation buffer given) gives the same bits.
 * 3. float32: no second level; the logits are the plain linear layer's, bit for bit. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "asr/engine.h"
#include "engine/engine_int.h"
#include "random_dir.h"

#define ROWS 3

static char g_dir[] = "/tmp/asrd-test-logits-XXXXXX";

static uint32_t g_rng = 12345;
static float frand(void) { /* uniform in [-1, 1) */
    g_rng = g_rng * 1664525u + 1013904223u;
    return (float)((g_rng >> 8) & 0xffffff) / 8388608.0f - 1.0f;
}

static int cmp_desc(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

static void test_top(void **state) {
    (void)state;
    const int ns[] = {1, 5, 63, 64, 65, 1000, 51866};
    float *x = malloc(51866 * sizeof *x), *sorted = malloc(51866 * sizeof *x);
    for (size_t c = 0; c < sizeof ns / sizeof *ns; c++) {
        int n = ns[c];
        for (int i = 0; i < n; i++)
            x[i] = (float)(int)(frand() * 200.0f); /* many ties */
        memcpy(sorted, x, (size_t)n * sizeof *x);
        qsort(sorted, (size_t)n, sizeof *x, cmp_desc);
        int idx[ASR_LOGITS_EXACT];
        int k = asr__logits_top(x, n, ASR_LOGITS_EXACT, idx);
        assert_int_equal(k, n < ASR_LOGITS_EXACT ? n : ASR_LOGITS_EXACT);
        float got[ASR_LOGITS_EXACT];
        for (int i = 0; i < k; i++) {
            for (int j = 0; j < i; j++)
                assert_int_not_equal(idx[i], idx[j]);
            got[i] = x[idx[i]];
        }
        qsort(got, (size_t)k, sizeof *got, cmp_desc);
        for (int i = 0; i < k; i++)
            assert_true(got[i] == sorted[i]);
    }
    for (int i = 0; i < 100; i++)
        x[i] = (i % 7) ? NAN : (float)i;
    int idx[ASR_LOGITS_EXACT];
    int k = asr__logits_top(x, 100, 5, idx);
    assert_int_equal(k, 5);
    for (int i = 0; i < k; i++)
        assert_true(idx[i] % 7 == 0 && idx[i] >= 70);
    free(x);
    free(sorted);
}

static asr_model_t *load(const char *ct) {
    asr_model_params_t p = asr_model_default_params();
    p.compute_type = ct;
    p.n_threads = 2;
    asr_model_t *m = NULL;
    char err[512] = "";
    if (asr_model_load(g_dir, &p, &m, err, sizeof err) != ASR_OK)
        print_message("load (%s): %s\n", ct, err);
    return m;
}

/* rows of layer-normed-like hidden states */
static float *hidden(int d) {
    float *h = malloc((size_t)ROWS * d * sizeof *h);
    for (int i = 0; i < ROWS * d; i++)
        h[i] = 2.0f * frand();
    return h;
}

static void two_levels(const char *ct) {
    asr_model_t *m = load(ct), *mf = load("float32");
    assert_non_null(m);
    assert_non_null(mf);
    assert_int_equal(m->tok_emb.type, ASR_W_I8);
    assert_int_equal(m->tok_res.type, ASR_W_I8);
    assert_non_null(m->tok_res.data);
    const int d = m->info.d_model, V = m->info.n_vocab;
    /* the two levels hold every row within max|w|/64516 of the file's values */
    float *row = malloc((size_t)d * sizeof *row), *frow = malloc((size_t)d * sizeof *frow);
    for (int j = 0; j < V; j += 97) {
        asr__embed_row(m, j, row);
        asr_nn_weight_row(&mf->tok_emb, j, d, frow);
        float mx = 0.0f, err = 0.0f;
        for (int t = 0; t < d; t++) {
            mx = fabsf(frow[t]) > mx ? fabsf(frow[t]) : mx;
            err = fabsf(row[t] - frow[t]) > err ? fabsf(row[t] - frow[t]) : err;
        }
        assert_true(err <= mx / 64516.0f * 1.01f + 1e-12f);
    }
    free(frow);
    free(row);
    float *h = hidden(d);
    float *out = malloc((size_t)ROWS * V * sizeof *out),
          *ref = malloc((size_t)ROWS * V * sizeof *ref);
    float *many = malloc((size_t)ROWS * V * sizeof *many);
    void *qbuf = malloc(asr_nn_linear_w_qbytes(ROWS, d));
    asr_pool_t *pool = asr_pool_create(2);
    asr__logits(m, pool, h, ROWS, out, V, NULL);
    asr__logits(m, pool, h, ROWS, many, V, qbuf);
    assert_memory_equal(out, many, (size_t)ROWS * V * sizeof *out);
    asr_nn_linear_w_ref(h, d, &mf->tok_emb, NULL, ref, V, ROWS, V, d);
    for (int r = 0; r < ROWS; r++) {
        const float *o = out + (size_t)r * V, *e = ref + (size_t)r * V;
        /* the 16 highest (what beams take, and more) in the reference's order, each with the
         * float embedding's value; each winner is knocked out of both for the next rank */
        for (int rank = 0; rank < 16; rank++) {
            int bo = 0, be = 0;
            for (int t = 1; t < V; t++) {
                bo = o[t] > o[bo] ? t : bo;
                be = e[t] > e[be] ? t : be;
            }
            assert_int_equal(bo, be);
            assert_true(fabsf(o[bo] - e[be]) <= 2e-4f * (1.0f + fabsf(e[be])));
            out[(size_t)r * V + bo] = -INFINITY;
            ref[(size_t)r * V + be] = -INFINITY;
        }
        float emax = 0.0f;
        /* the rest: int8 values, different but within the bound */
        int differ = 0;
        for (int t = 0; t < V; t++) {
            if (isinf(o[t]))
                continue;
            float err = fabsf(o[t] - e[t]);
            emax = err > emax ? err : emax;
            differ += err > 1e-4f * (1.0f + fabsf(e[t]));
        }
        print_message("%s row %d: %d of %d tokens from int8, max |error| %.4f\n", ct, r, differ, V,
                      emax);
        assert_true(differ > V / 2);
        assert_true(emax < 0.05f * sqrtf((float)d));
    }
    asr_pool_destroy(pool);
    free(qbuf);
    free(many);
    free(ref);
    free(out);
    free(h);
    asr_model_destroy(mf);
    asr_model_destroy(m);
}

static void test_int8(void **state) {
    (void)state;
    two_levels("int8");
}

static void test_bfloat16(void **state) {
    (void)state;
    two_levels("bfloat16");
}

static void test_float32(void **state) {
    (void)state;
    asr_model_t *m = load("float32");
    assert_non_null(m);
    assert_null(m->tok_res.data);
    const int d = m->info.d_model, V = m->info.n_vocab;
    float *h = hidden(d);
    float *out = malloc((size_t)ROWS * V * sizeof *out),
          *lin = malloc((size_t)ROWS * V * sizeof *lin);
    asr_pool_t *pool = asr_pool_create(2);
    asr__logits(m, pool, h, ROWS, out, V, NULL);
    asr_nn_linear_w(pool, h, d, &m->tok_emb, NULL, lin, V, ROWS, V, d);
    assert_memory_equal(out, lin, (size_t)ROWS * V * sizeof *out);
    asr_pool_destroy(pool);
    free(lin);
    free(out);
    free(h);
    asr_model_destroy(m);
}

static int make_random(void **state) {
    (void)state;
    char err[512] = "";
    if (!asr_test_random_dir("tiny", g_dir, err, sizeof err)) {
        print_message("random model: %s\n", err);
        return -1;
    }
    return 0;
}

static int remove_random(void **state) {
    (void)state;
    return asr_test_remove_dir(g_dir) ? 0 : -1;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_top),
        cmocka_unit_test(test_int8),
        cmocka_unit_test(test_bfloat16),
        cmocka_unit_test(test_float32),
    };
    return cmocka_run_group_tests(tests, make_random, remove_random);
}
