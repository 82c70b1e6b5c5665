/* The device memory plan (asr_plan_gpu_compute, src/engine/plan_gpu.c) against what the GPU
 * engine allocates:
 *  - large-v3 and large-v3-turbo dimensions on "cuda" float16: the weights within 1% of 2 bytes
 *    per parameter, the parameters counted here by an independent formula (itself within 2% of
 *    the published 1.55e9 and 0.81e9); the slot as cross K/V + self K/V + last rows computed
 *    here; the model and total sums; context and workspace; the other CUDA compute types;
 *    refusals (unknown device or type, float16 on the host device, n_seq out of range);
 *  - the real tiny.en ($ASRD_MODELS, else ~/.cache/asrd/models; exit 77 when absent) loaded on
 *    the host reference device with each host compute type at max_batch 1 and 32: the plan's
 *    weights, scratch and slot (n_seq 1 and 5) equal the engine's arena sizes byte for byte, and
 *    its host_slot equals the stream's host arena plus its pinned logits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "asr/engine.h"
#include "cli/cli.h"
#include "core/core.h"
#include "engine/gpu_int.h"

static size_t round256(size_t n) { return (n + 255) / 256 * 256; }

/* Whisper's parameters (every linear layer with a bias, as the engine stores them). */
static double whisper_params(const asr_model_info_t *in) {
    double d = in->d_model, mels = in->n_mels, V = in->n_vocab, C = in->n_text_ctx;
    double attn = 4 * d * d + 4 * d, mlp = d * 4 * d + 4 * d + 4 * d * d + d, ln = 2 * d;
    double enc = (d * mels * 3 + d) + (d * d * 3 + d) + 1500 * d +
                 in->n_audio_layer * (attn + mlp + 2 * ln) + ln;
    double dec = V * d + C * d + in->n_text_layer * (2 * attn + mlp + 3 * ln) + ln;
    return enc + dec;
}

static void check_large(const char *name, double published) {
    const asr_model_info_t *in = asr_model_dims_named(name);
    assert_non_null(in);
    double params = whisper_params(in);
    printf("%s: %.4g parameters (published %.3g)\n", name, params, published);
    assert_true(fabs(params - published) / published < 0.02);
    for (int ns = 1; ns <= 5; ns += 4) {
        asr_plan_gpu_t p;
        assert_int_equal(asr_plan_gpu_compute(in, "cuda", "float16", 32, ns, &p), ASR_OK);
        assert_string_equal(p.device, "cuda");
        assert_string_equal(p.compute_type, "float16");
        assert_int_equal(p.max_batch, 32);
        assert_int_equal(p.n_seq, ns);
        double rel = fabs((double)p.weights - 2 * params) / (2 * params);
        printf("  n_seq %d: weights %zu (%.3f%% off 2 B/param), scratch %zu (encoder %zu, decoder "
               "%zu), slot %zu\n",
               ns, p.weights, 100 * rel, p.scratch, p.encoder, p.decoder, p.slot);
        assert_true(rel < 0.01);
        const size_t d = (size_t)in->d_model, nl = (size_t)in->n_text_layer;
        assert_int_equal(p.cross_kv, round256(nl * 1500 * 2 * d * 2));
        assert_int_equal(p.self_kv, 2 * round256((size_t)ns * nl * 448 * d * 2));
        assert_int_equal(p.last, round256(448 * d * 2));
        assert_int_equal(p.slot, p.cross_kv + p.self_kv + p.last);
        assert_int_equal(p.dequant, 0);
        assert_int_equal(p.scratch, (p.encoder > p.decoder ? p.encoder : p.decoder));
        assert_int_equal(p.workspace, ASR_PLAN_GPU_WORKSPACE);
        assert_int_equal(p.context, ASR_PLAN_GPU_CONTEXT);
        assert_int_equal(p.model, p.weights + p.scratch + p.workspace);
        /* 32 windows of encoder activations: at least 32 x (x, h, 4d-wide) of float16 */
        assert_true(p.encoder >= 32 * 1500 * d * 2 * 6);
        assert_true(p.host_model > 0 && p.host_slot >= (size_t)ns * in->n_vocab * 4);
    }
    /* the other CUDA types: bfloat16 the same bytes, float32 twice the matrices, int8 about half
     * (its embedding float16) with a dequantization buffer */
    asr_plan_gpu_t f16, bf16, f32, i8, dflt;
    assert_int_equal(asr_plan_gpu_compute(in, "cuda", "float16", 0, 1, &f16), ASR_OK);
    assert_int_equal(asr_plan_gpu_compute(in, NULL, NULL, 0, 1, &dflt), ASR_OK);
    assert_int_equal(asr_plan_gpu_compute(in, "cuda", "bfloat16", 0, 1, &bf16), ASR_OK);
    assert_int_equal(asr_plan_gpu_compute(in, "cuda", "float32", 0, 1, &f32), ASR_OK);
    assert_int_equal(asr_plan_gpu_compute(in, "cuda", "int8_float16", 0, 1, &i8), ASR_OK);
    assert_int_equal(f16.max_batch, 16);
    assert_int_equal(dflt.model, f16.model);
    assert_string_equal(dflt.compute_type, "float16");
    assert_int_equal(bf16.weights, f16.weights);
    assert_true(fabs((double)f32.weights - 4 * params) / (4 * params) < 0.01);
    assert_int_equal(f32.slot, 2 * f16.slot);
    assert_true(i8.weights < f16.weights * 0.6 && i8.weights > f16.weights * 0.5);
    assert_true(i8.dequant > 0 && i8.scratch == f16.scratch + i8.dequant);
    assert_int_equal(i8.slot, f16.slot);
}

static void test_large(void **state) {
    (void)state;
    check_large("large-v3", 1.55e9);
    check_large("large-v3-turbo", 0.809e9);
}

static void test_refusals(void **state) {
    (void)state;
    const asr_model_info_t *in = asr_model_dims_named("tiny.en");
    asr_plan_gpu_t p;
    assert_int_equal(asr_plan_gpu_compute(in, "tpu", "float16", 1, 1, &p), ASR_ERR_INVALID);
    assert_int_equal(asr_plan_gpu_compute(in, "cuda", "float8", 1, 1, &p), ASR_ERR_INVALID);
    assert_int_equal(asr_plan_gpu_compute(in, "cuda", "host-f16w", 1, 1, &p), ASR_ERR_INVALID);
    assert_int_equal(asr_plan_gpu_compute(in, "host", "float16", 1, 1, &p), ASR_ERR_INVALID);
    assert_int_equal(asr_plan_gpu_compute(in, "cuda", "float16", 1, 0, &p), ASR_ERR_INVALID);
    assert_int_equal(asr_plan_gpu_compute(in, "cuda", "float16", 1, 9, &p), ASR_ERR_INVALID);
    asr_model_info_t bad = *in;
    bad.d_model = 0;
    assert_int_equal(asr_plan_gpu_compute(&bad, "cuda", "float16", 1, 1, &p), ASR_ERR_INVALID);
    assert_int_equal(asr_plan_gpu_compute(in, "host", NULL, 1000, 1, &p), ASR_OK);
    assert_string_equal(p.compute_type, "float32");
    assert_int_equal(p.max_batch, 256);
    assert_int_equal(p.context, 0);
    assert_int_equal(p.workspace, 0);
    assert_int_equal(p.model, p.weights + p.scratch);
}

/* ---- the real tiny.en on the host device ---- */

static char g_tiny[4096];

static bool find_tiny(void) {
    char *d = asr_cli_model_dir("tiny.en");
    snprintf(g_tiny, sizeof g_tiny, "%s", d);
    free(d);
    char p[4200];
    snprintf(p, sizeof p, "%s/model.bin", g_tiny);
    return access(p, R_OK) == 0;
}

static void test_tiny_en_host(void **state) {
    (void)state;
    static const char *const types[] = {NULL, "float32", "host-f16w", "host-bf16w", "host-int8w"};
    static const int batches[] = {1, 32};
    asr_model_info_t in;
    char err[512] = "";
    assert_int_equal(asr_model_probe(g_tiny, &in, err, sizeof err), ASR_OK);
    for (size_t t = 0; t < sizeof types / sizeof *types; t++)
        for (int b = 0; b < 2; b++) {
            if (!types[t] && b) /* the default once */
                continue;
            asr_model_params_t mp = asr_model_default_params();
            mp.device = "host";
            mp.compute_type = types[t];
            mp.max_batch = batches[b];
            mp.n_threads = 2;
            asr_model_t *m = NULL;
            if (asr_model_load(g_tiny, &mp, &m, err, sizeof err) != ASR_OK)
                fail_msg("load tiny.en on host (%s, batch %d): %s", types[t] ? types[t] : "default",
                         batches[b], err);
            assert_non_null(m->g);
            for (int ns = 1; ns <= 5; ns += 4) {
                asr_plan_gpu_t p;
                assert_int_equal(asr_plan_gpu_compute(&in, "host", types[t], batches[b], ns, &p),
                                 ASR_OK);
                printf("tiny.en host %-10s batch %2d n_seq %d: weights %zu scratch %zu slot %zu "
                       "host_slot %zu\n",
                       p.compute_type, batches[b], ns, p.weights, p.scratch, p.slot, p.host_slot);
                assert_int_equal(p.weights, m->g->warena.size);
                assert_int_equal(p.weights, m->g->warena.used);
                assert_int_equal(p.scratch, m->g->scratch.size);
                assert_int_equal(p.max_batch, m->g->max_batch);
                assert_string_equal(p.compute_type, m->g->ctype);
                assert_int_equal(p.model, p.weights + p.scratch);
                assert_int_equal(p.context, 0);
                asr_stream_t *s = NULL;
                assert_int_equal(asr_stream_create_slot(m, ns, &s), ASR_OK);
                assert_non_null(s->g);
                assert_int_equal(p.slot, s->g->arena.size);
                assert_int_equal(p.slot, s->g->arena.used);
                size_t logits = (size_t)ns * (size_t)in.n_vocab * sizeof(float);
                assert_int_equal(p.host_slot, asr_stream_arena_bytes(s) + logits);
                asr_stream_destroy(s);
            }
            asr_model_destroy(m);
        }
}

int main(void) {
    asr_log_set_level(ASR_LOG_ERROR);
    const struct CMUnitTest dims[] = {
        cmocka_unit_test(test_large),
        cmocka_unit_test(test_refusals),
    };
    int failed = cmocka_run_group_tests_name("plan_gpu_dims", dims, NULL, NULL);
    if (!find_tiny()) {
        fprintf(stderr, "tiny.en not found ($ASRD_MODELS or ~/.cache/asrd/models):"
                        " run `make models`; skipping the tiny.en tests\n");
        return failed ? failed : 77;
    }
    const struct CMUnitTest tiny[] = {cmocka_unit_test(test_tiny_en_host)};
    return failed | cmocka_run_group_tests_name("plan_gpu_tiny_en", tiny, NULL, NULL);
}
