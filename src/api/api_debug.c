/* api: the fault-injection routes, for the out-of-memory and GPU memory contract tests. Every
 * one answers 404 unless the server runs with debug_faults (--debug-faults), as if it did not
 * exist; errors are in OpenAI's shape.
 *   POST /debug/alloc-fail   host allocations (core's checked allocator)
 *   POST /debug/gpu-memory   device memory readings (gpu/devmem.h's injection spec)
 *   POST /debug/gpu-fault    device failures (gpu/dev.h's asr_dev_fault_set) */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_int.h"
#include "gpu/dev.h"
#include "gpu/devmem.h"

static bool faults_on(asr_http_req_t *req, const asr_api_t *api) {
    if (api->cfg->debug_faults)
        return true;
    asr_http_respond_error(req, 404, NULL, "not_found",
                           "fault injection is off (start the server with --debug-faults)");
    return false;
}

/* POST /debug/alloc-fail: form fields nth (fail the nth checked allocation from now, 0 = off),
 * min_bytes (fail every checked allocation of at least that many bytes, 0 = off) and trace (1:
 * start recording allocation call sites; 0: stop and return "sites", the index of the first
 * allocation of each distinct site). */
void asr__api_debug_alloc_fail(asr_http_req_t *req, void *ud) {
    asr_api_t *api = ud;
    if (!faults_on(req, api))
        return;
    const char *nth = asr_http_form_value(req, "nth"), *mb = asr_http_form_value(req, "min_bytes");
    char *e1 = NULL, *e2 = NULL;
    long n = nth ? strtol(nth, &e1, 10) : 0;
    long long m = mb ? strtoll(mb, &e2, 10) : 0;
    if ((nth && (!*nth || *e1 || n < 0)) || (mb && (!*mb || *e2 || m < 0))) {
        asr_http_respond_error(req, 400, nth && (!*nth || *e1 || n < 0) ? "nth" : "min_bytes",
                               "invalid_value", "nth and min_bytes must be integers >= 0");
        return;
    }
    const char *tr = asr_http_form_value(req, "trace");
    json_t *o = json_object();
    if (tr && !strcmp(tr, "0")) { /* stop: the first allocation index of each call site */
        asr_alloc_trace(false);
        unsigned long first[512];
        int k = asr_alloc_trace_sites(first, 512);
        json_t *sites = json_array();
        for (int i = 0; i < k; i++)
            json_array_append_new(sites, json_integer((json_int_t)first[i]));
        json_object_set_new(o, "sites", sites);
    } else if (tr) {
        asr_alloc_trace(true);
    }
    asr_alloc_fail_set(n, (size_t)m);
    ASR_LOG(ASR_LOG_WARN, "msg=alloc_fail_set nth=%ld min_bytes=%lld trace=%s", n, m,
            tr ? tr : "-");
    json_object_set_new(o, "checked_allocations",
                        json_integer((json_int_t)asr_alloc_checked_count()));
    json_object_set_new(o, "nth", json_integer(n));
    json_object_set_new(o, "min_bytes", json_integer((json_int_t)m));
    asr__api_respond_json(req, 200, o);
}

/* The reading of the scheduler's device now, as the routes below answer it (new reference);
 * JSON null when the models run on the CPU only. */
static json_t *device_reading(asr_api_t *api) {
    asr_sched_device_status_t ds;
    memset(&ds, 0, sizeof ds);
    asr_sched_device_status(api->sched, &ds);
    asr_devspec_t spec;
    if (!ds.present || asr_devspec_parse(ds.device, &spec) != ASR_OK ||
        (spec.kind != ASR_DEVSPEC_CUDA && spec.kind != ASR_DEVSPEC_HOST))
        return json_null();
    asr_devmem_t m;
    asr_devmem_read(spec.kind == ASR_DEVSPEC_CUDA ? ASR_DEV_CUDA : ASR_DEV_HOST, spec.index, &m);
    json_t *o = json_object();
    json_object_set_new(o, "device", json_string(ds.device));
    json_object_set_new(o, "ok", json_boolean(m.ok));
    json_object_set_new(o, "source", json_string(m.source));
    json_object_set_new(o, "total", json_integer((json_int_t)m.total));
    json_object_set_new(o, "free", json_integer((json_int_t)m.free));
    json_object_set_new(o, "self", json_integer((json_int_t)m.self));
    json_object_set_new(o, "procs_known", json_boolean(m.procs_known));
    json_t *procs = json_array();
    for (int i = 0; i < m.n_procs; i++) {
        json_t *p = json_object();
        json_object_set_new(p, "pid", json_integer(m.procs[i].pid));
        json_object_set_new(p, "name", json_string(m.procs[i].name));
        json_object_set_new(p, "bytes", json_integer((json_int_t)m.procs[i].bytes));
        json_object_set_new(p, "self", json_boolean(m.procs[i].self));
        json_array_append_new(procs, p);
    }
    json_object_set_new(o, "processes", procs);
    if (m.why[0])
        json_object_set_new(o, "why", json_string(m.why));
    return o;
}

/* POST /debug/gpu-memory: form field spec, gpu/devmem.h's injection spec ("total=24GiB,
 * proc=2886328:python:21.2GiB", "nvml=absent", "read=fail", or "off"), applied to every device
 * from the next reading on (the scheduler re-reads every gpu_refresh_s). Answers {"injected",
 * "reading"}: the scheduler's device as read right after (null when it has none); 400 for a bad
 * spec (nothing changed). */
void asr__api_debug_gpu_memory(asr_http_req_t *req, void *ud) {
    asr_api_t *api = ud;
    if (!faults_on(req, api))
        return;
    const char *spec = asr_http_form_value(req, "spec");
    if (!spec || !*spec) {
        asr_http_respond_error(req, 400, "spec", "missing_value",
                               "spec is required: total=SIZE[,proc=PID:NAME:SIZE...][,nvml=absent]"
                               "[,read=fail], or off");
        return;
    }
    char err[256];
    if (asr_devmem_inject(spec, err, sizeof err) != ASR_OK) {
        asr_http_respond_error(req, 400, "spec", "invalid_value", "spec: %s", err);
        return;
    }
    asr_devmem_spec_t parsed;
    asr_devmem_parse_spec(spec, &parsed, NULL, 0); /* for the log: the spec is the client's text */
    ASR_LOG(ASR_LOG_WARN,
            "msg=gpu_memory_injected off=%d total=%llu procs=%d nvml_absent=%d "
            "read_fail=%d",
            parsed.off, (unsigned long long)parsed.total, parsed.n_procs, parsed.nvml_absent,
            parsed.read_fail);
    json_t *o = json_object();
    json_object_set_new(o, "injected", json_boolean(asr_devmem_injected()));
    json_object_set_new(o, "reading", device_reading(api));
    asr__api_respond_json(req, 200, o);
}

static const char *const fault_kinds[] = {"alloc", "op", "lost"}; /* asr_dev_fault_kind_t */

static json_t *fault_counts(void) {
    json_t *c = json_object();
    for (int k = 0; k < 3; k++)
        json_object_set_new(c, fault_kinds[k],
                            json_integer((json_int_t)asr_dev_fault_count((asr_dev_fault_kind_t)k)));
    return c;
}

/* POST /debug/gpu-fault: form fields kind (alloc: a device allocation returns NULL; op: an
 * operation fails, recoverable; lost: an operation loses the context) and nth (the nth event of
 * that kind from now fails once; 0 disarms). Without nth nothing is armed: the answer alone
 * (how a test counts a request's allocation sites). Answers {"kind", "nth", "counts"}: counts
 * are asr_dev_fault_count's events of each kind since the process started (allocations for
 * alloc, operations for op and lost). */
void asr__api_debug_gpu_fault(asr_http_req_t *req, void *ud) {
    asr_api_t *api = ud;
    if (!faults_on(req, api))
        return;
    const char *kind = asr_http_form_value(req, "kind"), *nth = asr_http_form_value(req, "nth");
    int k = -1;
    for (int i = 0; kind && i < 3; i++)
        if (!strcmp(kind, fault_kinds[i]))
            k = i;
    if ((kind || nth) && k < 0) {
        asr_http_respond_error(req, 400, "kind", kind ? "invalid_value" : "missing_value",
                               "kind must be alloc, op or lost");
        return;
    }
    char *end = NULL;
    long n = nth ? strtol(nth, &end, 10) : 0;
    if (nth && (!*nth || *end || n < 0)) {
        asr_http_respond_error(req, 400, "nth", "invalid_value",
                               "nth must be an integer >= 0 (0 disarms)");
        return;
    }
    if (nth) {
        asr_dev_fault_set((asr_dev_fault_kind_t)k, n);
        ASR_LOG(ASR_LOG_WARN, "msg=gpu_fault_set kind=%s nth=%ld", fault_kinds[k], n);
    }
    json_t *o = json_object();
    json_object_set_new(o, "kind", k >= 0 ? json_string(fault_kinds[k]) : json_null());
    json_object_set_new(o, "nth", nth ? json_integer(n) : json_null());
    json_object_set_new(o, "counts", fault_counts());
    asr__api_respond_json(req, 200, o);
}
