/* api: the device the scheduler serves models on (a CUDA GPU, or the host reference device of the
 * tests) as /api/ps, /metrics, /health, /ready and diagnose show it: the last memory reading with
 * every process on the card, asrd's own bytes (context, weights, slots, cache), the budget, the
 * batch in force, the CPU fallback and the counters of the GPU memory contract (docs/GPU.md).
 *
 * One sentence says what the incident needed to see ("GPU 0 (NVIDIA H100 80GB HBM3): 21.2 GiB
 * held by process 2886328 (python), asrd 3.1 GiB, 0.3 GiB free → serving on CPU"); `asrd ps`
 * prints it and the Status page writes its own translation from the same fields. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "api/api_int.h"

void asr__api_fmt_bytes(uint64_t b, char *out, size_t n) {
    double gib = (double)b / (1024.0 * 1024.0 * 1024.0);
    if (b >= ((uint64_t)1 << 30) / 10 || b == 0)
        snprintf(out, n, "%.1f GiB", gib);
    else
        snprintf(out, n, "%.0f MiB", (double)b / (1024.0 * 1024.0));
}

/* "GPU 0" for cuda:0, "host device" for the host reference device. */
void asr__api_device_label(const char *device, char *out, size_t n) {
    if (!strncmp(device, "cuda:", 5))
        snprintf(out, n, "GPU %s", device + 5);
    else
        snprintf(out, n, "%s device", device);
}

/* Bytes held by the other processes on the device: the listed ones when NVML listed them, else
 * what is used and not asrd's. */
static uint64_t others_bytes(const asr_sched_device_status_t *d, uint64_t asrd) {
    if (!d->mem.ok)
        return 0;
    if (d->mem.procs_known) {
        uint64_t o = 0;
        for (int i = 0; i < d->mem.n_procs; i++)
            if (!d->mem.procs[i].self)
                o += d->mem.procs[i].bytes;
        return o;
    }
    return d->mem.used > asrd ? d->mem.used - asrd : 0;
}

/* asrd's bytes on the device: what the reading says this process holds, else the plan's. */
static uint64_t asrd_bytes(const asr_sched_device_status_t *d) {
    return d->mem.ok && d->mem.self ? d->mem.self : d->used;
}

const char *asr__api_device_state(const asr_sched_device_status_t *d) {
    if (d->lost)
        return "resetting";
    return d->serving_on_cpu ? "serving_on_cpu" : "ok";
}

static void sentence(const asr_sched_device_status_t *d, asr_buf_t *b) {
    char label[32], x[32], y[32];
    asr__api_device_label(d->device, label, sizeof label);
    asr_buf_puts(b, label);
    if (d->mem.name[0])
        asr_buf_printf(b, " (%s)", d->mem.name);
    asr_buf_puts(b, ": ");
    uint64_t asrd = asrd_bytes(d);
    if (!d->mem.ok) {
        asr_buf_printf(b, "memory not readable (%s)", d->mem.why[0] ? d->mem.why : "unknown");
    } else {
        int shown = 0, more = 0;
        for (int i = 0; i < d->mem.n_procs && d->mem.procs_known; i++) {
            const asr_devmem_proc_t *p = &d->mem.procs[i];
            if (p->self)
                continue;
            if (shown == 2) {
                more++;
                continue;
            }
            asr__api_fmt_bytes(p->bytes, x, sizeof x);
            asr_buf_printf(b, "%s%s held by process %u%s%s%s", shown ? ", " : "", x, p->pid,
                           p->name[0] ? " (" : "", p->name, p->name[0] ? ")" : "");
            shown++;
        }
        if (more)
            asr_buf_printf(b, " and %d more process%s", more, more > 1 ? "es" : "");
        uint64_t o = others_bytes(d, asrd);
        if (!shown && o) {
            asr__api_fmt_bytes(o, x, sizeof x);
            asr_buf_printf(b, "%s held by other processes", x);
            shown = 1;
        }
        if (!shown)
            asr_buf_puts(b, "no other process");
        asr__api_fmt_bytes(d->mem.free, y, sizeof y);
        asr__api_fmt_bytes(asrd, x, sizeof x);
        asr_buf_printf(b, ", asrd %s, %s free", x, y);
    }
    if (d->lost)
        asr_buf_puts(b, " → context lost, resetting");
    else if (d->serving_on_cpu)
        asr_buf_puts(b, " → serving on CPU");
    else
        asr_buf_printf(b, " → serving on %s",
                       strncmp(d->device, "cuda:", 5) ? "the device" : "GPU");
}

static json_t *bytes_or_null(bool known, uint64_t v) {
    return known ? json_integer((json_int_t)v) : json_null();
}

json_t *asr__api_device_json(const asr_sched_device_status_t *d, const char *gpu_fallback) {
    json_t *o = json_object();
    const asr_devmem_t *m = &d->mem;
    uint64_t asrd = asrd_bytes(d);
    json_object_set_new(o, "device", json_string(d->device));
    json_object_set_new(o, "index", json_integer(m->index));
    json_object_set_new(o, "name", json_string(m->name));
    json_object_set_new(o, "state", json_string(asr__api_device_state(d)));
    json_object_set_new(o, "reading_ok", json_boolean(m->ok));
    json_object_set_new(o, "source", json_string(m->source));
    json_object_set_new(o, "reading_age_s", json_real(d->mem_age_s > 0 ? d->mem_age_s : 0));
    json_object_set_new(o, "reading_error", m->why[0] ? json_string(m->why) : json_null());
    json_object_set_new(o, "total_bytes", bytes_or_null(m->ok, m->total));
    json_object_set_new(o, "free_bytes", bytes_or_null(m->ok, m->free));
    json_object_set_new(o, "used_bytes", bytes_or_null(m->ok, m->used));
    json_object_set_new(o, "other_bytes", bytes_or_null(m->ok, others_bytes(d, asrd)));
    json_t *a = json_object();
    json_object_set_new(a, "bytes", json_integer((json_int_t)asrd));
    json_object_set_new(a, "planned_bytes", json_integer((json_int_t)d->used));
    json_object_set_new(a, "measured_bytes", json_integer((json_int_t)m->self));
    json_object_set_new(a, "context_bytes", json_integer((json_int_t)d->context_bytes));
    json_object_set_new(a, "weights_bytes", json_integer((json_int_t)d->weights_bytes));
    json_object_set_new(a, "slots_bytes", json_integer((json_int_t)d->slots_bytes));
    json_object_set_new(a, "cache_bytes", json_integer((json_int_t)d->cache_bytes));
    json_object_set_new(o, "asrd", a);
    json_t *procs = json_array();
    for (int i = 0; i < m->n_procs; i++) {
        json_t *p = json_object();
        json_object_set_new(p, "pid", json_integer(m->procs[i].pid));
        json_object_set_new(p, "name", json_string(m->procs[i].name));
        json_object_set_new(p, "bytes", json_integer((json_int_t)m->procs[i].bytes));
        json_object_set_new(p, "self", json_boolean(m->procs[i].self));
        json_array_append_new(procs, p);
    }
    json_object_set_new(o, "processes", procs);
    json_object_set_new(o, "processes_known", json_boolean(m->procs_known));
    json_object_set_new(o, "budget_bytes", json_integer((json_int_t)d->budget));
    json_object_set_new(o, "limit_bytes", json_integer((json_int_t)d->limit));
    json_object_set_new(o, "reserve_bytes", json_integer((json_int_t)d->reserve));
    json_object_set_new(o, "batch", json_integer(d->batch));
    json_object_set_new(o, "batch_max", json_integer(d->batch_max));
    json_object_set_new(o, "serving_on_cpu", json_boolean(d->serving_on_cpu));
    json_object_set_new(o, "lost", json_boolean(d->lost));
    json_object_set_new(o, "gpu_fallback",
                        json_string(gpu_fallback && *gpu_fallback && strcmp(gpu_fallback, "none")
                                        ? gpu_fallback
                                        : "none"));
    if (d->last_error[0]) {
        json_t *e = json_object();
        json_object_set_new(e, "message", json_string(d->last_error));
        json_object_set_new(e, "age_s", json_real(d->last_error_age_s));
        json_object_set_new(o, "last_error", e);
    } else {
        json_object_set_new(o, "last_error", json_null());
    }
    json_t *ev = json_object();
    json_object_set_new(ev, "waits", json_integer((json_int_t)d->n_waits));
    json_object_set_new(ev, "fallbacks_cpu", json_integer((json_int_t)d->n_fallbacks_cpu));
    json_object_set_new(ev, "fallbacks_model", json_integer((json_int_t)d->n_fallbacks_model));
    json_object_set_new(ev, "oom_retries", json_integer((json_int_t)d->n_oom_retries));
    json_object_set_new(ev, "resets", json_integer((json_int_t)d->n_resets));
    json_object_set_new(ev, "shrinks", json_integer((json_int_t)d->n_shrinks));
    json_object_set_new(o, "events", ev);
    asr_buf_t b;
    asr_buf_init(&b);
    sentence(d, &b);
    json_object_set_new(o, "summary", json_string(b.data ? b.data : ""));
    asr_buf_free(&b);
    return o;
}

/* A Prometheus label value: backslash, double quote and newline escaped. */
static void label_value(asr_buf_t *b, const char *s) {
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            asr_buf_printf(b, "\\%c", *s);
        else if (*s == '\n')
            asr_buf_puts(b, "\\n");
        else
            asr_buf_append(b, s, 1);
    }
}

void asr__api_device_metrics(const asr_sched_device_status_t *d, asr_buf_t *b) {
    if (!d->present)
        return;
    const char *dev = d->device;
    const asr_devmem_t *m = &d->mem;
    uint64_t asrd = asrd_bytes(d);
    asr_buf_printf(b, "# HELP asrd_gpu_memory_total_bytes Memory of the device (last reading).\n"
                      "# TYPE asrd_gpu_memory_total_bytes gauge\n");
    if (m->ok)
        asr_buf_printf(b, "asrd_gpu_memory_total_bytes{device=\"%s\"} %" PRIu64 "\n", dev,
                       m->total);
    asr_buf_printf(b, "# HELP asrd_gpu_memory_free_bytes Free memory of the device (last "
                      "reading).\n"
                      "# TYPE asrd_gpu_memory_free_bytes gauge\n");
    if (m->ok)
        asr_buf_printf(b, "asrd_gpu_memory_free_bytes{device=\"%s\"} %" PRIu64 "\n", dev, m->free);
    asr_buf_printf(b,
                   "# HELP asrd_gpu_memory_used_bytes Device memory in use, by asrd and by the "
                   "other processes.\n"
                   "# TYPE asrd_gpu_memory_used_bytes gauge\n"
                   "asrd_gpu_memory_used_bytes{device=\"%s\",holder=\"asrd\"} %" PRIu64 "\n",
                   dev, asrd);
    if (m->ok)
        asr_buf_printf(b,
                       "asrd_gpu_memory_used_bytes{device=\"%s\",holder=\"other\"} %" PRIu64 "\n",
                       dev, others_bytes(d, asrd));
    asr_buf_printf(b, "# HELP asrd_gpu_process_memory_bytes Device memory held by each process "
                      "(NVML's list).\n"
                      "# TYPE asrd_gpu_process_memory_bytes gauge\n");
    for (int i = 0; i < m->n_procs; i++) {
        asr_buf_printf(b, "asrd_gpu_process_memory_bytes{device=\"%s\",pid=\"%u\",name=\"", dev,
                       m->procs[i].pid);
        label_value(b, m->procs[i].name);
        asr_buf_printf(b, "\"} %" PRIu64 "\n", m->procs[i].bytes);
    }
    asr_buf_printf(
        b,
        "# HELP asrd_gpu_budget_bytes Device bytes asrd may hold now: min(limit, free + asrd's) "
        "- reserve.\n"
        "# TYPE asrd_gpu_budget_bytes gauge\n"
        "asrd_gpu_budget_bytes{device=\"%s\"} %" PRIu64 "\n"
        "# HELP asrd_gpu_batch Jobs running on the device.\n"
        "# TYPE asrd_gpu_batch gauge\n"
        "asrd_gpu_batch{device=\"%s\"} %d\n"
        "# HELP asrd_gpu_batch_max Jobs of the default model that fit the budget now.\n"
        "# TYPE asrd_gpu_batch_max gauge\n"
        "asrd_gpu_batch_max{device=\"%s\"} %d\n"
        "# HELP asrd_gpu_lost 1 while the device context is lost (resetting).\n"
        "# TYPE asrd_gpu_lost gauge\n"
        "asrd_gpu_lost{device=\"%s\"} %d\n"
        "# HELP asrd_gpu_serving_on_cpu 1 while jobs for the device are served on the CPU.\n"
        "# TYPE asrd_gpu_serving_on_cpu gauge\n"
        "asrd_gpu_serving_on_cpu{device=\"%s\"} %d\n",
        dev, d->budget, dev, d->batch, dev, d->batch_max, dev, d->lost ? 1 : 0, dev,
        d->serving_on_cpu ? 1 : 0);
    const struct {
        const char *name;
        uint64_t v;
    } ev[] = {{"wait", d->n_waits},
              {"fallback_cpu", d->n_fallbacks_cpu},
              {"fallback_model", d->n_fallbacks_model},
              {"oom_retry", d->n_oom_retries},
              {"reset", d->n_resets},
              {"shrink", d->n_shrinks}};
    asr_buf_puts(b, "# HELP asrd_gpu_events_total Events of the GPU memory contract.\n"
                    "# TYPE asrd_gpu_events_total counter\n");
    for (size_t i = 0; i < sizeof ev / sizeof ev[0]; i++)
        asr_buf_printf(b, "asrd_gpu_events_total{device=\"%s\",event=\"%s\"} %" PRIu64 "\n", dev,
                       ev[i].name, ev[i].v);
}
