/* sched: the device pool of the GPU memory contract (sched.h, docs/GPU.md).
 *
 * When the scheduler's device is a device (cuda:N, or host, the reference device of the tests),
 * every served model is planned in device bytes (asr_plan_gpu_compute: its fixed bytes, a slot
 * per job, the CUDA context once while any model is resident) and gets a CPU twin when
 * gpu_fallback is cpu. The budget is min(gpu_memory_limit, free + what asrd holds there) -
 * gpu_memory_reserve, re-read every gpu_refresh_s from asr_devmem_read; asrd's share comes from
 * the reading itself (its `self`: NVML's entry for this process, else what asrd allocated), so a
 * reservation not allocated yet is never counted twice; with the per-process list known, no more
 * than total - the others' bytes. A reading that fails budgets from the limit, else the device's
 * total (minus the reserve in both cases).
 *
 * A budget that falls below what asrd holds marks a shrink: the next dispatch drops cached device
 * slots, then idle device models, until asrd fits (running jobs finish). A device whose context
 * was lost (asr_model_device_lost after ASR_ERR_GPU) is marked lost: no job starts there, every
 * model loaded on it goes once its running jobs are done (the last one's destruction resets the
 * device), and an idle worker reloads them (asr__dev_reload_step); the first successful load
 * clears lost. Everything here runs under the scheduler's mutex. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sched/sched_int.h"

/* The compute type the device plan takes for the scheduler's (the engine maps int8 the same). */
static const char *plan_type(const char *ct) {
    if (!ct || !*ct || !strcmp(ct, "auto") || !strcmp(ct, "default"))
        return NULL;
    if (!strcmp(ct, "int8"))
        return "int8_float16";
    return ct;
}

static uint64_t meminfo_total(void) {
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f)
        return 0;
    char line[256];
    uint64_t v = 0;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "MemTotal:", 9)) {
            v = strtoull(line + 9, NULL, 10) * 1024;
            break;
        }
    fclose(f);
    return v;
}

asr_err_t asr__dev_init(asr_sched_t *s, const asr_sched_params_t *p, char *errbuf, size_t len) {
    (void)errbuf, (void)len;
    devpool_t *d = &s->dev;
    asr_devspec_t spec, r;
    char why[256] = "";
    if (!s->device || asr_devspec_parse(s->device, &spec) != ASR_OK)
        return ASR_OK; /* the CPU, or a bad device the first load reports */
    if (spec.kind == ASR_DEVSPEC_AUTO) {
        if (asr_devspec_resolve(&spec, &r, why, sizeof why) != ASR_OK)
            return ASR_OK;
        spec = r;
    }
    if (spec.kind != ASR_DEVSPEC_CUDA && spec.kind != ASR_DEVSPEC_HOST)
        return ASR_OK;
    d->kind = spec.kind == ASR_DEVSPEC_CUDA ? ASR_DEV_CUDA : ASR_DEV_HOST;
    d->index = spec.index;
    asr_devspec_format(&spec, d->name, sizeof d->name);
    d->plan_dev = d->kind == ASR_DEV_CUDA ? "cuda" : "host";
    d->plan_type = plan_type(s->compute_type);
    size_t *dw = asr_xcalloc((size_t)s->n_models, sizeof *dw),
           *hw = asr_xcalloc((size_t)s->n_models, sizeof *hw);
    for (int i = 0; i < s->n_models; i++) {
        asr_plan_gpu_t g;
        asr_err_t rc = asr_plan_gpu_compute(&s->models[i].info, d->plan_dev, d->plan_type,
                                            s->max_batch, 1, &g);
        if (rc != ASR_OK) { /* no device plan: the host contract alone, as before */
            ASR_LOG(ASR_LOG_WARN,
                    "msg=device_plan_unavailable model=%s device=%s compute_type=%s err=%s "
                    "note=\"device memory is not admitted by plan\"",
                    s->models[i].id, d->name, d->plan_type ? d->plan_type : "auto",
                    asr_strerror(rc));
            free(dw);
            free(hw);
            return ASR_OK;
        }
        dw[i] = g.model;
        hw[i] = g.host_model;
        d->context = g.context;
    }
    d->present = true;
    d->limit = p->gpu_memory_limit;
    d->reserve = p->gpu_memory_reserve;
    d->refresh_s = p->gpu_refresh_s > 0 ? p->gpu_refresh_s : 1.0;
    d->fallback_cpu = p->gpu_fallback && !strcmp(p->gpu_fallback, "cpu");
    if (d->kind == ASR_DEV_CUDA) {
        asr_dev_info_t info;
        if (asr_gpu_cuda_info(d->index, &info, why, sizeof why) == ASR_OK)
            d->total_info = info.total_bytes;
    } else {
        d->total_info = meminfo_total();
    }
    for (int i = 0; i < s->n_models; i++) {
        model_t *m = &s->models[i];
        m->on_dev = true;
        m->dweights = dw[i];
        m->weights = hw[i];
    }
    free(dw);
    free(hw);
    if (d->fallback_cpu) {
        const char *ct = asr_compute_type_name(s->compute_type);
        s->cpu_type = asr_xstrdup(ct ? ct : "float32");
        for (int i = 0; i < s->n_models; i++) {
            model_t *m = &s->models[i], *t = &s->models[s->n_models + i];
            t->id = asr_xstrdup(m->id);
            t->dir = asr_xstrdup(m->dir);
            t->compute_type = t->plan_type = s->cpu_type;
            t->load_device = "cpu";
            t->twin_of = i;
            t->twin = -1;
            t->info = m->info;
            t->keep_alive = m->keep_alive;
            t->cache = asr_xcalloc((size_t)s->max_parallel, sizeof *t->cache);
            asr_plan_t plan;
            t->weights = asr_plan_compute(&t->info, t->plan_type, 1, false, &plan) == ASR_OK
                             ? plan.weights
                             : SIZE_MAX / 4;
            m->twin = s->n_models + i;
        }
        s->n_all = 2 * s->n_models;
    }
    pthread_mutex_lock(&s->mu);
    uint64_t b = asr__dev_budget(s);
    pthread_mutex_unlock(&s->mu);
    ASR_LOG(ASR_LOG_INFO,
            "msg=device_pool device=%s compute_type=%s budget_mib=%.0f limit_mib=%.0f "
            "reserve_mib=%.0f context_mib=%.0f reading=\"%s\" gpu_fallback=%s cpu_type=%s",
            d->name, d->plan_type ? d->plan_type : "auto", MIB(b), MIB(d->limit), MIB(d->reserve),
            MIB(d->context), d->mem.ok ? d->mem.source : d->mem.why,
            d->fallback_cpu ? "cpu" : "none", s->cpu_type ? s->cpu_type : "-");
    return ASR_OK;
}

uint64_t asr__dev_budget(asr_sched_t *s) {
    devpool_t *d = &s->dev;
    if (!d->present)
        return 0;
    double now = asr_now_s();
    if (d->mem_at != 0 && now - d->mem_at < d->refresh_s)
        return d->budget;
    asr_devmem_read(d->kind, d->index, &d->mem);
    d->mem_at = now;
    uint64_t b = asr_devmem_budget(&d->mem, d->limit, d->reserve,
                                   d->n_resident > 0 ? d->context : 0, d->total_info);
    if (b != d->budget && d->budget_logged != b) {
        ASR_LOG(b < d->used ? ASR_LOG_WARN : ASR_LOG_DEBUG,
                "msg=device_budget device=%s budget_mib=%.0f used_mib=%.0f free_mib=%.0f "
                "self_mib=%.0f reading=\"%s\"",
                d->name, MIB(b), MIB(d->used), MIB(d->mem.free), MIB(d->mem.self),
                d->mem.ok ? d->mem.source : d->mem.why);
        d->budget_logged = b;
    }
    d->budget = b;
    if (d->used > b)
        d->shrink = true;
    return b;
}

size_t asr__dev_slot_bytes(const asr_sched_t *s, const model_t *m, int n_seq, size_t *host) {
    asr_plan_gpu_t g;
    if (asr_plan_gpu_compute(&m->info, s->dev.plan_dev, s->dev.plan_type, s->max_batch, n_seq,
                             &g) != ASR_OK) {
        *host = SIZE_MAX / 4;
        return SIZE_MAX / 4;
    }
    *host = g.host_slot;
    return g.slot;
}

void asr__dev_model_in(asr_sched_t *s, model_t *m) {
    devpool_t *d = &s->dev;
    if (d->n_resident++ == 0)
        d->used += d->context;
    d->used += m->dweights;
}

void asr__dev_model_out(asr_sched_t *s, model_t *m) {
    devpool_t *d = &s->dev;
    d->used -= m->dweights;
    if (--d->n_resident == 0)
        d->used -= d->context;
}

void asr__dev_shrink(asr_sched_t *s) {
    devpool_t *d = &s->dev;
    d->shrink = false;
    int dropped = 0, unloaded = 0;
    for (int i = 0; i < s->n_all && d->used > d->budget; i++) {
        model_t *m = &s->models[i];
        while (m->on_dev && m->n_cache > 0 && d->used > d->budget) {
            asr__sched_free_slot(s, &m->cache[--m->n_cache]);
            dropped++;
        }
    }
    while (d->used > d->budget) {
        model_t *lru = NULL;
        for (int i = 0; i < s->n_all; i++) {
            model_t *m = &s->models[i];
            if (m->on_dev && m->state == M_LOADED && m->running == 0 &&
                (!lru || m->last_used < lru->last_used))
                lru = m;
        }
        if (!lru)
            break; /* running jobs hold the rest: nothing new starts until they end */
        asr__sched_unload(s, lru, "device_budget");
        unloaded++;
    }
    d->n_shrinks += (uint64_t)(dropped + unloaded);
    if (dropped || unloaded)
        ASR_LOG(ASR_LOG_WARN,
                "msg=device_shrink device=%s slots_dropped=%d models_unloaded=%d used_mib=%.0f "
                "budget_mib=%.0f",
                d->name, dropped, unloaded, MIB(d->used), MIB(d->budget));
}

void asr__dev_error(asr_sched_t *s, const char *why) {
    devpool_t *d = &s->dev;
    snprintf(d->last_error, sizeof d->last_error, "%s", why && *why ? why : "device failure");
    d->last_error_at = asr_now_s();
}

void asr__dev_mark_lost(asr_sched_t *s, const char *why) {
    devpool_t *d = &s->dev;
    if (!d->lost) {
        d->lost = true;
        d->n_resets++;
        ASR_LOG(ASR_LOG_WARN, "msg=device_lost device=%s reason=\"%s\"", d->name, why);
    }
    asr__dev_error(s, why);
    for (int i = 0; i < s->n_all; i++) {
        model_t *m = &s->models[i];
        if (!m->on_dev || m->state != M_LOADED)
            continue;
        m->reload = true;
        asr__sched_drop_cache(s, m);
        if (m->running == 0)
            asr__sched_unload(s, m, "device_lost");
    }
}

bool asr__dev_reload_step(asr_sched_t *s) {
    devpool_t *d = &s->dev;
    if (!d->present || d->reloading || s->stop)
        return false;
    model_t *r = NULL;
    bool stale = false;
    for (int i = 0; i < s->n_all; i++) {
        model_t *m = &s->models[i];
        if (!m->on_dev || !m->reload)
            continue;
        if (m->state != M_UNLOADED)
            stale = true;
        else if (!r)
            r = m;
    }
    if (d->lost && (stale || d->n_resident > 0))
        return false; /* the old models go first (the last one's destruction resets the device) */
    if (!r) {
        if (d->lost) { /* nothing to reload: the device is reset, new loads may come */
            d->lost = false;
            ASR_LOG(ASR_LOG_INFO, "msg=device_recovered device=%s reloaded=none", d->name);
            pthread_cond_broadcast(&s->work_cv);
        }
        return false;
    }
    double now = asr_now_s();
    if (now < d->reload_at)
        return false;
    if (!asr__sched_make_room(s, r->weights, r->dweights, true, r)) {
        r->reload = false; /* no room now: it loads on first use */
        return true;
    }
    r->state = M_LOADING;
    s->used += r->weights;
    asr__dev_model_in(s, r);
    d->reloading = true;
    pthread_mutex_unlock(&s->mu);
    char err[512] = "";
    asr_err_t rc = asr__sched_load_model(s, r, err, sizeof err);
    pthread_mutex_lock(&s->mu);
    d->reloading = false;
    if (rc == ASR_OK) {
        r->state = M_LOADED;
        r->reload = false;
        r->last_used = asr_now_s();
        s->n_loads++;
        if (d->lost) {
            d->lost = false;
            ASR_LOG(ASR_LOG_INFO, "msg=device_recovered device=%s reloaded=%s", d->name, r->id);
        }
    } else {
        r->model = NULL;
        r->state = M_UNLOADED;
        s->used -= r->weights;
        asr__dev_model_out(s, r);
        d->reload_at = asr_now_s() + 1.0;
        asr__dev_error(s, err[0] ? err : asr_strerror(rc));
        ASR_LOG(ASR_LOG_WARN, "msg=device_reload_failed device=%s model=%s reason=\"%s\"", d->name,
                r->id, d->last_error);
    }
    pthread_cond_broadcast(&s->work_cv);
    return true;
}

void asr__dev_need_msg(asr_sched_t *s, const model_t *m, int n_seq, const char *lead, char *out,
                       size_t len) {
    devpool_t *d = &s->dev;
    size_t h, slot = asr__dev_slot_bytes(s, m, n_seq, &h);
    bool load = m->state == M_UNLOADED;
    size_t ctx = load && d->n_resident == 0 ? d->context : 0;
    size_t need = slot + (load ? m->dweights : 0) + ctx;
    uint64_t b = asr__dev_budget(s), avail = b > d->used ? b - d->used : 0;
    char who[160] = "";
    if (!d->mem.ok) {
        snprintf(who, sizeof who, " (device reading failed: %.100s)", d->mem.why);
    } else {
        for (int i = 0; i < d->mem.n_procs; i++)
            if (!d->mem.procs[i].self) {
                snprintf(who, sizeof who, ": process %u (%.40s) holds %.1f GiB",
                         d->mem.procs[i].pid, d->mem.procs[i].name[0] ? d->mem.procs[i].name : "?",
                         GIB(d->mem.procs[i].bytes));
                break;
            }
        if (!who[0] && d->mem.total > d->mem.free + d->mem.self)
            snprintf(who, sizeof who, ": other processes hold %.1f GiB",
                     GIB(d->mem.total - d->mem.free - d->mem.self));
    }
    char parts[96];
    if (load)
        snprintf(parts, sizeof parts, "weights %.2f GiB + one request %.2f GiB%s", GIB(m->dweights),
                 GIB(slot), ctx ? " + context" : "");
    else
        snprintf(parts, sizeof parts, "one request; weights loaded");
    snprintf(out, len,
             "%smodel %s needs %.2f GiB of device memory on %s (%s); %.2f GiB of the budget free%s",
             lead, m->id, GIB(need), d->name, parts, GIB(avail), who);
}

void asr_sched_device_status(asr_sched_t *s, asr_sched_device_status_t *out) {
    memset(out, 0, sizeof *out);
    out->last_error_age_s = -1;
    pthread_mutex_lock(&s->mu);
    devpool_t *d = &s->dev;
    if (!d->present) {
        pthread_mutex_unlock(&s->mu);
        return;
    }
    double now = asr_now_s();
    out->present = true;
    snprintf(out->device, sizeof out->device, "%s", d->name);
    out->budget = asr__dev_budget(s);
    out->mem = d->mem;
    out->mem_age_s = now - d->mem_at;
    out->limit = d->limit;
    out->reserve = d->reserve;
    out->used = d->used;
    out->context_bytes = d->n_resident > 0 ? d->context : 0;
    for (int i = 0; i < s->n_all; i++) {
        const model_t *m = &s->models[i];
        if (!m->on_dev)
            continue;
        if (m->state != M_UNLOADED)
            out->weights_bytes += m->dweights;
        out->slots_bytes += m->busy_dbytes;
        for (int k = 0; k < m->n_cache; k++)
            out->cache_bytes += m->cache[k].dbytes;
        out->batch += m->running;
    }
    const model_t *m0 = &s->models[0];
    size_t h, slot0 = asr__dev_slot_bytes(s, m0, ASR_DEFAULT_N_SEQ, &h);
    uint64_t fixed = out->context_bytes + out->weights_bytes;
    if (m0->state == M_UNLOADED)
        fixed += m0->dweights + (d->n_resident == 0 ? d->context : 0);
    out->batch_max = out->budget > fixed && slot0 ? (int)((out->budget - fixed) / slot0) : 0;
    out->serving_on_cpu = d->serving_on_cpu;
    out->lost = d->lost;
    snprintf(out->last_error, sizeof out->last_error, "%s", d->last_error);
    out->last_error_age_s = d->last_error[0] ? now - d->last_error_at : -1;
    out->n_waits = d->n_waits;
    out->n_fallbacks_cpu = d->n_fallbacks_cpu;
    out->n_fallbacks_model = d->n_fallbacks_model;
    out->n_oom_retries = d->n_oom_retries;
    out->n_resets = d->n_resets;
    out->n_shrinks = d->n_shrinks;
    pthread_mutex_unlock(&s->mu);
}
