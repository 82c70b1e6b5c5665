/* api: diagnose, one report of what stands between this server and a transcription, with the
 * action to take for each finding: GET /api/diagnose (admin role), `asrd diagnose` and the Status
 * page's Diagnose button (docs/GPU.md, "Diagnose").
 *
 * One builder (findings_of) reads a state in the shape of GET /api/ps (devices, models, memory,
 * queue, events, backends, plus "server" and "gpu_note"): a running server hands it its own
 * /api/ps; `asrd diagnose` without a server builds the same shape from this machine (the device
 * reading, the configured models' plans, the measured host budget). So both say the same thing
 * about the same numbers.
 *
 * A finding is {severity: ok|info|warn|error, area: gpu|model|backend|queue|memory, message,
 * action}; findings are facts, not failures: the report itself always succeeds. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "api/api_int.h"
#include "gpu/dev.h"

/* ---- reading the state ---- */

static uint64_t u64(const json_t *o, const char *key) {
    json_int_t v = json_integer_value(json_object_get(o, key));
    return v > 0 ? (uint64_t)v : 0;
}
static const char *str(const json_t *o, const char *key, const char *dflt) {
    const char *v = json_string_value(json_object_get(o, key));
    return v ? v : dflt;
}

static void add(json_t *out, const char *severity, const char *area, const char *action,
                const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void add(json_t *out, const char *severity, const char *area, const char *action,
                const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_t *f = json_object();
    json_object_set_new(f, "severity", json_string(severity));
    json_object_set_new(f, "area", json_string(area));
    json_object_set_new(f, "message", json_string(msg));
    json_object_set_new(f, "action", json_string(action ? action : ""));
    json_array_append_new(out, f);
}

#define B(var, v)                                                                                  \
    char var[32];                                                                                  \
    asr__api_fmt_bytes((v), var, sizeof var)

/* The largest other process on device dev: its pid, name, bytes; NULL when none is listed. */
static const json_t *top_process(const json_t *dev) {
    const json_t *p, *best = NULL;
    size_t i;
    json_array_foreach(json_object_get(dev, "processes"), i, p) {
        if (json_is_true(json_object_get(p, "self")))
            continue;
        if (!best || u64(p, "bytes") > u64(best, "bytes"))
            best = p;
    }
    return best;
}

/* ", process 2886328 (python) holds 21.2 GiB of GPU 0" or "" */
static void holder_clause(const json_t *dev, char *out, size_t n) {
    const json_t *p = top_process(dev);
    char label[32];
    asr__api_device_label(str(dev, "device", "?"), label, sizeof label);
    out[0] = 0;
    if (p) {
        B(x, u64(p, "bytes"));
        const char *name = str(p, "name", "");
        snprintf(out, n, ": process %" PRIu64 "%s%s%s holds %s of %s", u64(p, "pid"),
                 *name ? " (" : "", name, *name ? ")" : "", x, label);
    } else if (u64(dev, "other_bytes")) {
        B(x, u64(dev, "other_bytes"));
        snprintf(out, n, ": other processes hold %s of %s", x, label);
    }
}

/* ---- the findings, area by area ---- */

static void gpu_findings(const json_t *st, json_t *out) {
    const json_t *devs = json_object_get(st, "devices"), *d;
    size_t i;
    if (json_is_string(json_object_get(st, "gpu_error"))) {
        add(out, "error", "gpu",
            "start with --device auto (a usable GPU, else the CPU) or --device cpu, or install "
            "the NVIDIA driver",
            "the device setting asks for a GPU that is not usable here: %s; asrd serve would "
            "refuse to start",
            str(st, "gpu_error", ""));
        return;
    }
    if (!json_array_size(devs)) {
        const char *note = str(st, "gpu_note", "no GPU device is configured");
        add(out, "info", "gpu",
            "none needed; to use a GPU, install the NVIDIA driver and start asrd with "
            "--device cuda",
            "no GPU: %s; models run on the CPU", note);
        return;
    }
    json_array_foreach(devs, i, d) {
        const char *dev = str(d, "device", "?");
        char label[32];
        asr__api_device_label(dev, label, sizeof label);
        add(out,
            json_is_true(json_object_get(d, "lost"))             ? "error"
            : json_is_true(json_object_get(d, "serving_on_cpu")) ? "warn"
                                                                 : "ok",
            "gpu", "", "%s", str(d, "summary", dev));
        if (!json_is_true(json_object_get(d, "reading_ok")))
            add(out, "warn", "gpu",
                "asrd budgets from --gpu-memory-limit alone: set it to what asrd may use, or "
                "make NVML readable (libnvidia-ml.so.1, from the NVIDIA driver)",
                "the memory of %s cannot be read: %s", label,
                str(d, "reading_error", "unknown reason"));
        else if (!json_is_true(json_object_get(d, "processes_known")) && !strncmp(dev, "cuda:", 5))
            add(out, "info", "gpu",
                "install the NVIDIA driver's NVML (libnvidia-ml.so.1) to see which process "
                "holds the memory",
                "%s: the processes holding its memory are not known (%s)", label,
                str(d, "reading_error", "no per-process list"));
        if (json_is_true(json_object_get(d, "lost"))) {
            const json_t *le = json_object_get(d, "last_error");
            add(out, "error", "gpu",
                "requests wait or fall back meanwhile; if it repeats, check the driver "
                "(nvidia-smi, Xid errors in dmesg)",
                "the context of %s was lost (%s): asrd is resetting it and reloading the models",
                dev, str(le, "message", "device error"));
        } else if (json_is_object(json_object_get(d, "last_error"))) {
            const json_t *le = json_object_get(d, "last_error");
            add(out, "warn", "gpu",
                "the attempt was retried or fell back; none needed unless it repeats",
                "last device failure on %s (%.0f s ago): %s", dev,
                json_number_value(json_object_get(le, "age_s")), str(le, "message", ""));
        }
        /* other processes: information unless they crowd asrd out */
        uint64_t total = u64(d, "total_bytes");
        bool squeezed = json_is_true(json_object_get(d, "serving_on_cpu"));
        const json_t *p;
        size_t k;
        json_array_foreach(json_object_get(d, "processes"), k, p) {
            uint64_t b = u64(p, "bytes");
            if (json_is_true(json_object_get(p, "self")) || b < ((uint64_t)256 << 20))
                continue;
            B(x, b);
            B(t, total);
            const char *name = str(p, "name", "");
            add(out, squeezed ? "warn" : "info", "gpu",
                squeezed ? "free that memory (stop the process or cap its memory) so that asrd "
                           "can serve on the GPU again"
                         : "none: the budget leaves room for asrd's models",
                "process %" PRIu64 "%s%s%s holds %s of %s (%s in all)", u64(p, "pid"),
                *name ? " (" : "", name, *name ? ")" : "", x, label, t);
        }
        const json_t *ev = json_object_get(d, "events");
        uint64_t w = u64(ev, "waits"), fc = u64(ev, "fallbacks_cpu"),
                 fm = u64(ev, "fallbacks_model"), oom = u64(ev, "oom_retries"),
                 rs = u64(ev, "resets"), sh = u64(ev, "shrinks");
        if (w + fc + fm + oom + rs + sh)
            add(out, rs || oom ? "warn" : "info", "gpu",
                "these count since start; if they keep rising, free device memory or lower "
                "--max-batch",
                "%s since start: %" PRIu64 " waits for device memory, %" PRIu64
                " served on the CPU, %" PRIu64 " by a fallback model, %" PRIu64
                " device OOM retries, %" PRIu64 " context resets, %" PRIu64 " shrinks",
                label, w, fc, fm, oom, rs, sh);
    }
}

/* The device object of device name dev, or NULL. */
static const json_t *device_of(const json_t *st, const char *dev) {
    const json_t *d;
    size_t i;
    json_array_foreach(json_object_get(st, "devices"), i, d) {
        if (!strcmp(str(d, "device", ""), dev))
            return d;
    }
    return NULL;
}

/* Host bytes the CPU twin of model m still needs (its weights unless loaded, one slot), and the
 * host budget's free bytes; false when unknown. */
static bool twin_need(const json_t *st, const json_t *m, uint64_t *need, uint64_t *room) {
    const json_t *tw = json_object_get(m, "cpu_twin"), *mem = json_object_get(st, "memory");
    if (!json_object_get(m, "host_slot_bytes") || !json_is_object(mem))
        return false;
    bool loaded = json_is_object(tw) && !strcmp(str(tw, "state", ""), "loaded");
    *need = (loaded ? 0 : u64(m, "host_weights_bytes")) + u64(m, "host_slot_bytes");
    *room = u64(mem, "free_bytes");
    return true;
}

static void device_model(const json_t *st, const json_t *m, const json_t *d, json_t *out) {
    const char *id = str(m, "id", "?"), *dev = str(d, "device", "?");
    bool loaded = !strcmp(str(m, "state", ""), "loaded");
    const json_t *a = json_object_get(d, "asrd");
    uint64_t need = (loaded ? 0 : u64(m, "weights_bytes")) + u64(m, "slot_bytes");
    if (!u64(a, "context_bytes"))
        need += u64(m, "context_bytes");
    uint64_t budget = u64(d, "budget_bytes"), held = u64(a, "bytes");
    uint64_t room = budget > held ? budget - held : 0;
    B(nb, need);
    B(bb, budget);
    B(rb, room);
    if (need <= room) {
        add(out, "ok", "model", "",
            "%s fits on %s: it needs %s more (%s), %s of the budget %s are free", id, dev, nb,
            loaded ? "one slot" : "weights and one slot", rb, bb);
        return;
    }
    char holder[200], label[32];
    holder_clause(d, holder, sizeof holder);
    asr__api_device_label(dev, label, sizeof label);
    B(short_b, need - room);
    char used[64] = "";
    if (held) {
        B(hb, held);
        snprintf(used, sizeof used, " (asrd holds %s)", hb);
    }
    char action[400], then[300];
    bool cpu = !strcmp(str(d, "gpu_fallback", "none"), "cpu");
    uint64_t tneed, troom;
    if (cpu && twin_need(st, m, &tneed, &troom) && tneed > troom) {
        B(tn, tneed);
        B(tr, troom);
        snprintf(then, sizeof then,
                 "nor does it fit on the CPU (%s of host memory, %s free): its requests wait, "
                 "then get 503 with Retry-After",
                 tn, tr);
        snprintf(action, sizeof action,
                 "free %s on %s, or host memory for the CPU fallback (--memory-limit, "
                 "keep_alive), or set a --fallback chain with a smaller model",
                 short_b, label);
        add(out, "error", "model", action, "%s needs %s on %s, the budget is %s%s%s; %s", id, nb,
            dev, bb, used, holder, then);
        return;
    }
    if (cpu) {
        snprintf(then, sizeof then, "asrd serves %s on the CPU until %s more are free", id,
                 short_b);
        snprintf(action, sizeof action,
                 "free %s on %s (stop or cap the process holding it), or lower "
                 "--gpu-memory-reserve or --max-batch",
                 short_b, label);
    } else {
        snprintf(then, sizeof then,
                 "requests for %s wait (--max-wait), then get 503 with Retry-After, until %s "
                 "more are free",
                 id, short_b);
        snprintf(action, sizeof action,
                 "free %s on %s, or set --gpu-fallback cpu or a --fallback chain to serve them "
                 "meanwhile",
                 short_b, label);
    }
    add(out, cpu ? "warn" : "error", "model", action, "%s needs %s on %s, the budget is %s%s%s; %s",
        id, nb, dev, bb, used, holder, then);
}

static void host_model(const json_t *m, const json_t *mem, json_t *out) {
    const char *id = str(m, "id", "?");
    bool loaded = !strcmp(str(m, "state", ""), "loaded");
    uint64_t w =
        u64(m, json_object_get(m, "host_weights_bytes") ? "host_weights_bytes" : "weights_bytes");
    uint64_t s = u64(m, json_object_get(m, "host_slot_bytes") ? "host_slot_bytes" : "slot_bytes");
    uint64_t need = (loaded ? 0 : w) + s, room = u64(mem, "free_bytes");
    B(nb, need);
    B(rb, room);
    B(bb, u64(mem, "budget_bytes"));
    if (need <= room)
        add(out, "ok", "model", "",
            "%s fits in host memory: it needs %s more, %s of the budget %s "
            "are free",
            id, nb, rb, bb);
    else
        add(out, "error", "model",
            "free host memory, raise --memory-limit, unload other models (keep_alive) or use a "
            "smaller model or compute type (int8)",
            "%s needs %s of host memory, %s of the budget %s are free: its requests wait, fall "
            "back (--fallback) or get 503",
            id, nb, rb, bb);
}

static void model_findings(const json_t *st, json_t *out) {
    const json_t *m, *mem = json_object_get(st, "memory");
    size_t i;
    json_array_foreach(json_object_get(st, "models"), i, m) {
        const char *err = str(m, "error", NULL);
        if (err) {
            add(out, "error", "model", str(m, "error_action", "check the model's directory"),
                "%s: %s", str(m, "id", "?"), err);
            continue;
        }
        const char *dev = str(m, "device", "cpu");
        const json_t *d = strcmp(dev, "cpu") ? device_of(st, dev) : NULL;
        if (d)
            device_model(st, m, d, out);
        else if (json_is_object(mem))
            host_model(m, mem, out);
        const json_t *tw = json_object_get(m, "cpu_twin");
        if (json_is_object(tw) && strcmp(str(tw, "state", ""), "unloaded")) {
            B(tb, u64(tw, "weights_bytes"));
            add(out, "info", "model", "",
                "%s's CPU twin is %s (%s of host memory, %" PRIu64 " slots in use)",
                str(m, "id", "?"), str(tw, "state", "?"), tb, u64(tw, "slots_in_use"));
        }
        if (json_is_string(json_object_get(m, "device_plan_error")))
            add(out, "info", "model", "", "%s: no device plan (%s)", str(m, "id", "?"),
                str(m, "device_plan_error", ""));
    }
}

static void backend_findings(const json_t *st, json_t *out) {
    const json_t *bs = json_object_get(st, "backends"), *b;
    size_t i;
    if (json_is_string(json_object_get(st, "server_note"))) {
        add(out, "info", "backend", "start it (asrd serve) or pass --url to check a running one",
            "%s: the ASR backends, the queue and recent failures are not checked",
            str(st, "server_note", ""));
        return;
    }
    if (!json_array_size(bs)) {
        add(out, "ok", "backend", "",
            "the local engine serves every request (no ASR backends "
            "configured)");
        return;
    }
    json_array_foreach(bs, i, b) {
        const char *name = str(b, "name", "?"), *br = str(b, "breaker", "closed");
        const json_t *le = json_object_get(b, "last_error");
        char action[200];
        snprintf(action, sizeof action,
                 "check it with `asrd configs test %" PRIu64 "` (Settings → Speech-to-text → "
                 "Test connection); requests go to the next backend meanwhile",
                 u64(b, "id"));
        if (!strcmp(br, "open") || !strcmp(br, "half_open"))
            add(out, !strcmp(br, "open") ? "error" : "warn", "backend", action,
                "backend %s: breaker %s after %" PRIu64 " failures; last error: %s", name, br,
                u64(b, "consecutive_failures"), str(le, "message", "none"));
        else if (json_is_object(le))
            add(out, u64(b, "failovers_last_hour") ? "warn" : "info", "backend",
                u64(b, "failovers_last_hour") ? action : "none needed while it answers",
                "backend %s answers (breaker closed); %" PRIu64
                " failovers in the last hour; last error: %s",
                name, u64(b, "failovers_last_hour"), str(le, "message", ""));
        else
            add(out, "ok", "backend", "", "backend %s answers (breaker closed, no errors)", name);
    }
}

static void queue_findings(const json_t *st, json_t *out) {
    const json_t *q = json_object_get(st, "queue"), *srv = json_object_get(st, "server");
    if (!json_is_object(q))
        return;
    uint64_t run = u64(q, "running"), par = u64(q, "max_parallel"), wait = u64(q, "waiting"),
             mq = u64(q, "max_queue");
    double stalled = json_number_value(json_object_get(srv, "stalled_s"));
    double limit = json_number_value(json_object_get(srv, "stall_timeout"));
    if (limit > 0 && stalled > limit)
        add(out, "error", "queue",
            "a worker shows no progress: look at the log for its request, then restart asrd",
            "a worker has shown no progress for %.0f s (limit %.0f s): /health answers 503",
            stalled, limit);
    if (mq && wait >= mq)
        add(out, "warn", "queue",
            "new requests get 503 with Retry-After: raise --max-queue or --max-parallel, or add "
            "a node",
            "the queue is full: %" PRIu64 " waiting of %" PRIu64 ", %" PRIu64
            " running of %" PRIu64,
            wait, mq, run, par);
    else
        add(out, "ok", "queue", "",
            "%" PRIu64 " running of %" PRIu64 ", %" PRIu64 " waiting of %" PRIu64, run, par, wait,
            mq);
}

static void memory_findings(const json_t *st, json_t *out) {
    const json_t *mem = json_object_get(st, "memory"), *ev = json_object_get(st, "events");
    if (!json_is_object(mem))
        return;
    B(bb, u64(mem, "budget_bytes"));
    B(ub, u64(mem, "used_bytes"));
    B(fb, u64(mem, "free_bytes"));
    add(out, "ok", "memory", "",
        "host memory: budget %s (%s), %s reserved by weights and slots, %s "
        "free",
        bb, str(mem, "limit", "measured"), ub, fb);
    if (!json_is_object(ev))
        return;
    uint64_t rej = u64(ev, "rejected"), oom = u64(ev, "oom_retries"), fb2 = u64(ev, "fallbacks");
    if (rej)
        add(out, "warn", "memory",
            "requests were refused (503 with Retry-After): see the queue and memory findings",
            "%" PRIu64 " requests rejected since start", rej);
    if (oom || fb2)
        add(out, "info", "memory", "none needed unless they keep rising",
            "since start: %" PRIu64 " host allocation retries, %" PRIu64
            " requests served by a fallback model",
            oom, fb2);
}

json_t *asr_api_diagnose_findings(const json_t *state) {
    json_t *out = json_array();
    gpu_findings(state, out);
    model_findings(state, out);
    backend_findings(state, out);
    queue_findings(state, out);
    memory_findings(state, out);
    return out;
}

/* Why no GPU serves: "CUDA driver not found: ..." or the setting. */
static void gpu_note(const char *configured, char *out, size_t n) {
    char why[256] = "";
    int count = asr_gpu_cuda_count(why, sizeof why);
    if (configured && !strcmp(configured, "cpu"))
        snprintf(out, n, "the device setting is cpu%s%s%s", count > 0 ? "" : " (",
                 count > 0 ? "" : why, count > 0 ? "" : ")");
    else if (count <= 0)
        snprintf(out, n, "%s", why[0] ? why : "no CUDA device found");
    else
        snprintf(out, n, "%d CUDA device%s found, none in use", count, count > 1 ? "s" : "");
}

static json_t *report(const char *source, json_t *state) {
    json_t *r = json_object();
    json_object_set_new(r, "object", json_string("diagnose"));
    json_object_set_new(r, "source", json_string(source));
    json_object_set_new(r, "findings", asr_api_diagnose_findings(state));
    json_object_set_new(r, "state", state);
    return r;
}

json_t *asr_api_diagnose(asr_api_t *api) {
    json_t *st = asr__api_ps_json(api), *m;
    size_t i;
    json_array_foreach(json_object_get(st, "models"), i, m) {
        if (!strncmp(str(m, "device", ""), "cuda:", 5)) /* a CUDA context comes back too */
            json_object_set_new(m, "context_bytes", json_integer((json_int_t)ASR_PLAN_GPU_CONTEXT));
        const json_t *tw = json_object_get(m, "cpu_twin");
        asr_plan_t hp;
        asr_transcribe_params_t tp = asr_transcribe_default_params();
        tp.beam_size = api->cfg->beam_size;
        const char *ct = api->cfg->compute_type;
        if (!strcmp(ct, "float16") || !strcmp(ct, "int8_float16")) /* GPU only: the twin's auto */
            ct = "auto";
        if (json_is_object(tw) && asr_plan_compute(asr_sched_model_info(api->sched, (int)i), ct,
                                                   asr_transcribe_n_seq(&tp), false,
                                                   &hp) == ASR_OK) { /* the CPU twin's host plan */
            json_object_set_new(
                m, "host_weights_bytes",
                json_integer(json_integer_value(json_object_get(tw, "weights_bytes"))));
            json_object_set_new(m, "host_slot_bytes", json_integer((json_int_t)hp.slot));
        }
    }
    asr_sched_stats_t ss;
    asr_sched_stats(api->sched, &ss);
    json_t *srv = json_object();
    json_object_set_new(srv, "stalled_s", json_real(ss.stalled_s));
    json_object_set_new(srv, "stall_timeout", json_integer(api->cfg->stall_timeout));
    json_object_set_new(st, "server", srv);
    char note[300];
    gpu_note(api->cfg->device, note, sizeof note);
    json_object_set_new(st, "gpu_note", json_string(note));
    return report("server", st);
}

void asr__api_diagnose(asr_http_req_t *req, void *ud) {
    asr_api_t *api = ud;
    if (!asr__api_admin_ok(req, api))
        return;
    asr__api_respond_json(req, 200, asr_api_diagnose(api));
}

/* ---- without a server: this machine's readings and the configured models' plans ---- */

/* A configured model as /api/ps would show it before it loads: its device plan when it goes to a
 * device (context included: nothing is loaded there yet), its host plan otherwise. */
static json_t *local_model(const asr_api_local_t *in, int i, const char *device, bool on_dev) {
    const asr_config_t *cfg = in->cfg;
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(in->ids[i]));
    json_object_set_new(o, "state", json_string("unloaded"));
    json_object_set_new(o, "device", json_string(on_dev ? device : "cpu"));
    asr_model_info_t dims;
    char err[512] = "";
    if (asr_model_probe(in->dirs[i], &dims, err, sizeof err) != ASR_OK) {
        json_object_set_new(o, "error", json_string(err));
        char act[300];
        snprintf(act, sizeof act, "pull it (asrd pull %s) or fix the path in --models", in->ids[i]);
        json_object_set_new(o, "error_action", json_string(act));
        return o;
    }
    asr_transcribe_params_t tp = asr_transcribe_default_params();
    tp.beam_size = cfg->beam_size;
    int n_seq = asr_transcribe_n_seq(&tp);
    bool gpu_type =
        !strcmp(cfg->compute_type, "float16") || !strcmp(cfg->compute_type, "int8_float16");
    asr_plan_t hp;
    if (asr_plan_compute(&dims, gpu_type ? "auto" : cfg->compute_type, n_seq, false, &hp) ==
        ASR_OK) {
        json_object_set_new(o, "host_weights_bytes", json_integer((json_int_t)hp.weights));
        json_object_set_new(o, "host_slot_bytes", json_integer((json_int_t)hp.slot));
    }
    if (!on_dev) {
        json_object_set_new(o, "weights_bytes", json_integer((json_int_t)hp.weights));
        json_object_set_new(o, "slot_bytes", json_integer((json_int_t)hp.slot));
        return o;
    }
    asr_plan_gpu_t gp;
    const char *ct = strcmp(cfg->compute_type, "auto") ? cfg->compute_type : NULL;
    asr_err_t rc = asr_plan_gpu_compute(&dims, strncmp(device, "cuda", 4) ? "host" : "cuda", ct,
                                        cfg->max_batch, n_seq, &gp);
    if (rc != ASR_OK) {
        json_object_set_new(o, "device_plan_error", json_string(asr_strerror(rc)));
        json_object_set_new(o, "device", json_string("cpu"));
        json_object_set_new(o, "weights_bytes", json_integer((json_int_t)hp.weights));
        json_object_set_new(o, "slot_bytes", json_integer((json_int_t)hp.slot));
        return o;
    }
    json_object_set_new(o, "weights_bytes", json_integer((json_int_t)gp.model));
    json_object_set_new(o, "slot_bytes", json_integer((json_int_t)gp.slot));
    json_object_set_new(o, "context_bytes", json_integer((json_int_t)gp.context));
    return o;
}

/* The host budget as the scheduler measures it at start (sched.c's budget()). */
static json_t *local_memory(const asr_config_t *cfg) {
    uint64_t b, reserve = (uint64_t)cfg->memory_reserve;
    if (cfg->memory_limit)
        b = (uint64_t)cfg->memory_limit > ASR_PLAN_SERVER_OVERHEAD
                ? (uint64_t)cfg->memory_limit - ASR_PLAN_SERVER_OVERHEAD
                : 0;
    else {
        uint64_t avail = asr_sched_mem_available(), cg = asr_sched_cgroup_limit();
        b = avail > reserve ? avail - reserve : 0;
        if (cg) {
            uint64_t c = cg > ASR_PLAN_SERVER_OVERHEAD + reserve
                             ? cg - ASR_PLAN_SERVER_OVERHEAD - reserve
                             : 0;
            b = c < b ? c : b;
        }
    }
    json_t *mem = json_object();
    json_object_set_new(mem, "device", json_string("cpu"));
    json_object_set_new(mem, "budget_bytes", json_integer((json_int_t)b));
    json_object_set_new(mem, "used_bytes", json_integer(0));
    json_object_set_new(mem, "free_bytes", json_integer((json_int_t)b));
    json_object_set_new(mem, "limit", json_string(cfg->memory_limit ? "configured" : "measured"));
    return mem;
}

json_t *asr_api_diagnose_local(const asr_api_local_t *in) {
    const asr_config_t *cfg = in->cfg;
    json_t *st = json_object(), *devices = json_array(), *models = json_array();
    asr_devspec_t spec = {ASR_DEVSPEC_CPU, 0}, res = {ASR_DEVSPEC_CPU, 0};
    char why[256] = "", device[16] = "cpu";
    if (asr_devspec_parse(cfg->device, &spec) == ASR_OK) {
        if (asr_devspec_resolve(&spec, &res, why, sizeof why) == ASR_OK)
            asr_devspec_format(&res, device, sizeof device);
        else {
            json_object_set_new(st, "gpu_error", json_string(why));
            res = (asr_devspec_t){ASR_DEVSPEC_CPU, 0};
        }
    }
    bool on_dev = res.kind == ASR_DEVSPEC_CUDA || res.kind == ASR_DEVSPEC_HOST;
    if (on_dev) {
        asr_sched_device_status_t d;
        memset(&d, 0, sizeof d);
        d.present = true;
        snprintf(d.device, sizeof d.device, "%s", device);
        asr_devmem_read(res.kind == ASR_DEVSPEC_CUDA ? ASR_DEV_CUDA : ASR_DEV_HOST, res.index,
                        &d.mem);
        d.limit = in->gpu_memory_limit;
        d.reserve = in->gpu_memory_reserve;
        d.budget = asr_devmem_budget(&d.mem, d.limit, d.reserve, 0, d.mem.total);
        d.last_error_age_s = -1;
        json_array_append_new(devices, asr__api_device_json(&d, in->gpu_fallback));
    } else {
        char note[300];
        gpu_note(cfg->device, note, sizeof note);
        json_object_set_new(st, "gpu_note", json_string(note));
    }
    for (int i = 0; i < in->n_models; i++)
        json_array_append_new(models, local_model(in, i, device, on_dev));
    json_object_set_new(st, "devices", devices);
    json_object_set_new(st, "models", models);
    json_object_set_new(st, "memory", local_memory(cfg));
    if (in->server_note)
        json_object_set_new(st, "server_note", json_string(in->server_note));
    return report("local", st);
}
