/* Unit tests of the device's view and of diagnose's findings (api_device.c, api_diagnose.c) on the
 * incident's numbers, as a CUDA card would show them (the e2e tests see the host reference device
 * only): the one-line summary, the /api/ps device object, the asrd_gpu_* metrics, and the findings
 * of a state in /api/ps's shape (a model that does not fit, with and without the CPU fallback; a
 * lost context; no GPU at all). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "api/api_int.h"

#define GIB ((uint64_t)1 << 30)
#define MIB ((uint64_t)1 << 20)

/* The incident: another process holds 21.2 GiB of a 24.6 GiB card, asrd 3.1 GiB, 0.3 GiB free;
 * the budget (free + asrd's - 512 MiB reserve) leaves no room for large-v3. */
static void incident(asr_sched_device_status_t *d) {
    memset(d, 0, sizeof *d);
    d->present = true;
    snprintf(d->device, sizeof d->device, "cuda:0");
    asr_devmem_t *m = &d->mem;
    m->kind = ASR_DEV_CUDA;
    m->ok = true;
    snprintf(m->source, sizeof m->source, "nvml");
    snprintf(m->name, sizeof m->name, "NVIDIA H100 80GB HBM3");
    m->total = (uint64_t)(24.6 * GIB);
    m->self = (uint64_t)(3.1 * GIB);
    m->free = (uint64_t)(0.3 * GIB);
    m->used = m->total - m->free;
    m->procs_known = true;
    m->n_procs = 2;
    m->procs[0] = (asr_devmem_proc_t){.pid = 2886328, .bytes = (uint64_t)(21.2 * GIB)};
    snprintf(m->procs[0].name, sizeof m->procs[0].name, "python");
    m->procs[1] = (asr_devmem_proc_t){.pid = 4242, .self = true, .bytes = m->self};
    snprintf(m->procs[1].name, sizeof m->procs[1].name, "asrd");
    d->reserve = 512 * MIB;
    d->budget = m->free + m->self - d->reserve;
    d->used = m->self;
    d->context_bytes = 512 * MIB;
    d->weights_bytes = m->self - d->context_bytes;
    d->serving_on_cpu = true;
    d->n_fallbacks_cpu = 12;
    d->n_waits = 3;
    d->last_error_age_s = -1;
}

static const char *str(const json_t *o, const char *k) {
    return json_string_value(json_object_get(o, k));
}

static void test_summary_and_device_object(void **state) {
    (void)state;
    asr_sched_device_status_t d;
    incident(&d);
    json_t *o = asr__api_device_json(&d, "cpu");
    assert_string_equal(str(o, "summary"),
                        "GPU 0 (NVIDIA H100 80GB HBM3): 21.2 GiB held by process 2886328 (python), "
                        "asrd 3.1 GiB, 0.3 GiB free → serving on CPU");
    assert_string_equal(str(o, "state"), "serving_on_cpu");
    assert_string_equal(str(o, "gpu_fallback"), "cpu");
    assert_int_equal(json_integer_value(json_object_get(o, "other_bytes")),
                     (json_int_t)(uint64_t)(21.2 * GIB));
    assert_int_equal(json_array_size(json_object_get(o, "processes")), 2);
    assert_true(json_is_null(json_object_get(o, "last_error")));
    json_decref(o);
    /* an unknown process list: the others are what is used and not asrd's */
    d.mem.procs_known = false;
    d.serving_on_cpu = false;
    o = asr__api_device_json(&d, NULL);
    assert_string_equal(str(o, "summary"),
                        "GPU 0 (NVIDIA H100 80GB HBM3): 21.2 GiB held by other processes, asrd "
                        "3.1 GiB, 0.3 GiB free → serving on GPU");
    assert_string_equal(str(o, "gpu_fallback"), "none");
    json_decref(o);
    /* lost */
    d.lost = true;
    snprintf(d.last_error, sizeof d.last_error, "illegal memory access");
    o = asr__api_device_json(&d, NULL);
    assert_non_null(strstr(str(o, "summary"), "→ context lost, resetting"));
    assert_string_equal(str(o, "state"), "resetting");
    assert_string_equal(str(json_object_get(o, "last_error"), "message"), "illegal memory access");
    json_decref(o);
}

static void test_metrics(void **state) {
    (void)state;
    asr_sched_device_status_t d;
    incident(&d);
    snprintf(d.mem.procs[0].name, sizeof d.mem.procs[0].name, "py\"th\\on");
    asr_buf_t b;
    asr_buf_init(&b);
    asr__api_device_metrics(&d, &b);
    char want[200];
    snprintf(want, sizeof want, "asrd_gpu_memory_total_bytes{device=\"cuda:0\"} %llu\n",
             (unsigned long long)d.mem.total);
    assert_non_null(strstr(b.data, want));
    assert_non_null(strstr(b.data,
                           "asrd_gpu_process_memory_bytes{device=\"cuda:0\",pid=\"2886328\","
                           "name=\"py\\\"th\\\\on\"} "));
    assert_non_null(
        strstr(b.data, "asrd_gpu_memory_used_bytes{device=\"cuda:0\",holder=\"other\"}"));
    assert_non_null(strstr(b.data,
                           "asrd_gpu_events_total{device=\"cuda:0\",event=\"fallback_cpu\"} "
                           "12\n"));
    assert_non_null(strstr(b.data, "asrd_gpu_serving_on_cpu{device=\"cuda:0\"} 1\n"));
    assert_non_null(strstr(b.data, "asrd_gpu_lost{device=\"cuda:0\"} 0\n"));
    asr_buf_free(&b);
    /* no device: nothing */
    memset(&d, 0, sizeof d);
    asr_buf_init(&b);
    asr__api_device_metrics(&d, &b);
    assert_int_equal(b.len, 0);
    asr_buf_free(&b);
}

/* A state of /api/ps's shape: the incident's device and large-v3 unloaded there. */
static json_t *state_of(const char *gpu_fallback) {
    asr_sched_device_status_t d;
    incident(&d);
    d.used = d.context_bytes; /* large-v3 unloaded: asrd holds its context */
    d.mem.self = d.used;
    d.mem.procs[1].bytes = d.used;
    d.budget = d.mem.free + d.mem.self - d.reserve;
    json_t *st = json_object(), *devs = json_array(), *models = json_array(), *m = json_object();
    json_array_append_new(devs, asr__api_device_json(&d, gpu_fallback));
    json_object_set_new(m, "id", json_string("large-v3"));
    json_object_set_new(m, "state", json_string("unloaded"));
    json_object_set_new(m, "device", json_string("cuda:0"));
    json_object_set_new(m, "weights_bytes", json_integer((json_int_t)(3475 * MIB)));
    json_object_set_new(m, "slot_bytes", json_integer((json_int_t)(585 * MIB)));
    json_array_append_new(models, m);
    json_t *mem = json_object();
    json_object_set_new(mem, "budget_bytes", json_integer((json_int_t)(64 * GIB)));
    json_object_set_new(mem, "used_bytes", json_integer(0));
    json_object_set_new(mem, "free_bytes", json_integer((json_int_t)(64 * GIB)));
    json_object_set_new(st, "devices", devs);
    json_object_set_new(st, "models", models);
    json_object_set_new(st, "memory", mem);
    return st;
}

/* The first finding of `area` whose message starts with `prefix`; NULL if none. */
static const json_t *finding(const json_t *fs, const char *area, const char *prefix) {
    const json_t *f;
    size_t i;
    json_array_foreach(fs, i, f) {
        if (!strcmp(str(f, "area"), area) && !strncmp(str(f, "message"), prefix, strlen(prefix)))
            return f;
    }
    return NULL;
}

static void test_model_that_does_not_fit(void **state) {
    (void)state;
    json_t *st = state_of("cpu");
    json_t *fs = asr_api_diagnose_findings(st);
    const json_t *f = finding(fs, "model", "large-v3 needs ");
    assert_non_null(f);
    /* weights 3475 + slot 585 MiB = 4.0 GiB; the budget 0.3 + 0.5 - 0.5 GiB; none of it is free:
     * asrd holds its context */
    assert_string_equal(str(f, "message"),
                        "large-v3 needs 4.0 GiB on cuda:0, the budget is 0.3 GiB (asrd holds 0.5 "
                        "GiB): process 2886328 (python) holds 21.2 GiB of GPU 0; asrd serves "
                        "large-v3 on the CPU until 4.0 GiB more are free");
    assert_string_equal(str(f, "severity"), "warn");
    assert_non_null(strstr(str(f, "action"), "free 4.0 GiB on GPU 0"));
    f = finding(fs, "gpu", "process 2886328 (python) holds 21.2 GiB of GPU 0");
    assert_non_null(f);
    assert_string_equal(str(f, "severity"), "warn");
    f = finding(fs, "gpu", "GPU 0 (NVIDIA H100 80GB HBM3): ");
    assert_non_null(f);
    assert_string_equal(str(f, "severity"), "warn");
    assert_non_null(finding(fs, "gpu", "GPU 0 since start: 3 waits"));
    assert_non_null(finding(fs, "memory", "host memory: budget 64.0 GiB"));
    json_decref(fs);
    json_decref(st);

    st = state_of(NULL); /* no CPU fallback: 503s until the card frees up */
    fs = asr_api_diagnose_findings(st);
    f = finding(fs, "model", "large-v3 needs ");
    assert_string_equal(str(f, "severity"), "error");
    assert_non_null(strstr(str(f, "message"), "then get 503 with Retry-After, until 4.0 GiB"));
    assert_non_null(strstr(str(f, "action"), "--gpu-fallback cpu"));
    json_decref(fs);
    json_decref(st);
}

static void test_lost_and_no_gpu(void **state) {
    (void)state;
    json_t *st = state_of("cpu");
    json_t *dev = json_array_get(json_object_get(st, "devices"), 0), *le = json_object();
    json_object_set_new(dev, "lost", json_true());
    json_object_set_new(le, "message", json_string("illegal memory access"));
    json_object_set_new(le, "age_s", json_real(2));
    json_object_set_new(dev, "last_error", le);
    json_t *fs = asr_api_diagnose_findings(st);
    const json_t *f = finding(fs, "gpu", "the context of cuda:0 was lost (illegal memory access)");
    assert_non_null(f);
    assert_string_equal(str(f, "severity"), "error");
    json_decref(fs);
    json_decref(st);

    st = json_object();
    json_object_set_new(st, "devices", json_array());
    json_object_set_new(st, "gpu_note",
                        json_string("CUDA driver not found: libcuda.so.1 is not installed"));
    json_object_set_new(st, "server_note", json_string("no asrd answered at http://x"));
    fs = asr_api_diagnose_findings(st);
    f = finding(fs, "gpu", "no GPU: ");
    assert_string_equal(str(f, "message"), "no GPU: CUDA driver not found: libcuda.so.1 is not "
                                           "installed; models run on the CPU");
    assert_string_equal(str(f, "severity"), "info");
    assert_non_null(finding(fs, "backend", "no asrd answered at http://x"));
    json_decref(fs);
    json_decref(st);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_summary_and_device_object),
        cmocka_unit_test(test_metrics),
        cmocka_unit_test(test_model_that_does_not_fit),
        cmocka_unit_test(test_lost_and_no_gpu),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
