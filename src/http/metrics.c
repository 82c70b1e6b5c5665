/* http: Prometheus metrics. Counters and histograms are lock-free atomics updated on the request
 * path; the exposition (GET /metrics) reads them without stopping anyone, so a scrape may see a
 * histogram's count and sum from slightly different instants (Prometheus tolerates that).
 * Label sets are bounded: routes come from the route table (+ "other"), models from the few
 * the server loaded. Routes that share a label (one path, several methods) count in one series:
 * a label set appears once in the exposition. */
#include <inttypes.h>
#include <math.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "http/http_int.h"

static const double g_lat_bounds[ASR_METRICS_N_LAT] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                                                       2.5,   5,    10,    30,   60,  120,  300};
static const double g_rtf_bounds[ASR_METRICS_N_RTF] = {0.01, 0.02, 0.05, 0.1, 0.2, 0.3,
                                                       0.5,  0.75, 1,    1.5, 2,   5};

static double wall_now(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + tv.tv_usec / 1e6;
}

void asr__metrics_init(asr__metrics_t *m, const asr_http_route_t *routes, int n_routes) {
    memset(m, 0, sizeof *m);
    m->n_routes = n_routes < ASR_METRICS_MAX_ROUTES ? n_routes : ASR_METRICS_MAX_ROUTES;
    for (int i = 0; i <= m->n_routes; i++) {
        m->route_labels[i] = i == m->n_routes  ? "other"
                             : routes[i].label ? routes[i].label
                                               : routes[i].path;
        m->route_slot[i] = i;
        for (int k = 0; k < i; k++)
            if (!strcmp(m->route_labels[k], m->route_labels[i])) {
                m->route_slot[i] = k;
                break;
            }
    }
    pthread_mutex_init(&m->model_mu, NULL);
    m->t_start = wall_now();
}

void asr__metrics_deinit(asr__metrics_t *m) {
    for (int i = 0; i < m->n_models; i++)
        free(m->models[i]);
    pthread_mutex_destroy(&m->model_mu);
}

static void observe(asr__histo_t *h, const double *bounds, int n, double v) {
    int i = 0;
    while (i < n && v > bounds[i])
        i++;
    atomic_fetch_add(&h->counts[i], 1);
    if (v > 0 && v < 1e9)
        atomic_fetch_add(&h->sum_us, (uint_fast64_t)(v * 1e6));
}

void asr__metrics_request(asr__metrics_t *m, int route, int status, double seconds) {
    if (route < 0 || route > m->n_routes)
        route = m->n_routes;
    route = m->route_slot[route];
    if (status >= 100 && status < 600)
        atomic_fetch_add(&m->by_status[route][status], 1);
    observe(&m->latency[route], g_lat_bounds, ASR_METRICS_N_LAT, seconds);
}

static int model_slot(asr__metrics_t *m, const char *model) {
    pthread_mutex_lock(&m->model_mu);
    int i = 0;
    while (i < m->n_models && strcmp(m->models[i], model))
        i++;
    if (i == m->n_models) {
        if (m->n_models < ASR_METRICS_MAX_MODELS)
            m->models[m->n_models++] = asr_xstrdup(model);
        else
            i = -1;
    }
    pthread_mutex_unlock(&m->model_mu);
    return i;
}

void asr_http_observe_transcription(asr_http_server_t *srv, const char *model, double audio_s,
                                    double proc_s) {
    asr__metrics_t *m = &srv->metrics;
    int i = model_slot(m, model);
    if (i < 0)
        return;
    if (audio_s > 0)
        observe(&m->rtf[i], g_rtf_bounds, ASR_METRICS_N_RTF, proc_s / audio_s);
    if (audio_s > 0 && audio_s < 1e7)
        atomic_fetch_add(&m->audio_ms[i], (uint_fast64_t)(audio_s * 1000));
    if (proc_s > 0 && proc_s < 1e7)
        atomic_fetch_add(&m->proc_ms[i], (uint_fast64_t)(proc_s * 1000));
}

static void write_histo(asr_buf_t *out, const char *name, const char *label, const char *value,
                        const asr__histo_t *h, const double *bounds, int n) {
    uint64_t cum = 0;
    for (int i = 0; i <= n; i++) {
        cum += atomic_load(&h->counts[i]);
        if (i < n)
            asr_buf_printf(out, "%s_bucket{%s=\"%s\",le=\"%g\"} %" PRIu64 "\n", name, label, value,
                           bounds[i], cum);
        else
            asr_buf_printf(out, "%s_bucket{%s=\"%s\",le=\"+Inf\"} %" PRIu64 "\n", name, label,
                           value, cum);
    }
    asr_buf_printf(out, "%s_sum{%s=\"%s\"} %.6f\n", name, label, value,
                   (double)atomic_load(&h->sum_us) / 1e6);
    asr_buf_printf(out, "%s_count{%s=\"%s\"} %" PRIu64 "\n", name, label, value, cum);
}

static long rss_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, rss = 0;
    if (!f)
        return 0;
    if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
        rss = 0;
    fclose(f);
    return rss * sysconf(_SC_PAGESIZE);
}

static void write_requests(asr__metrics_t *m, asr_buf_t *out) {
    asr_buf_puts(out, "# HELP asrd_http_requests_total HTTP requests by route and status code.\n"
                      "# TYPE asrd_http_requests_total counter\n");
    for (int r = 0; r <= m->n_routes; r++)
        for (int s = 100; s < 600 && m->route_slot[r] == r; s++) {
            uint64_t v = atomic_load(&m->by_status[r][s]);
            if (v)
                asr_buf_printf(out,
                               "asrd_http_requests_total{route=\"%s\",code=\"%d\"} %" PRIu64 "\n",
                               m->route_labels[r], s, v);
        }
    asr_buf_puts(out, "# HELP asrd_http_request_duration_seconds Time from the request line to "
                      "the last response byte.\n"
                      "# TYPE asrd_http_request_duration_seconds histogram\n");
    for (int r = 0; r <= m->n_routes; r++) {
        uint64_t any = 0;
        for (int i = 0; i <= ASR_METRICS_N_LAT; i++)
            any += atomic_load(&m->latency[r].counts[i]);
        if (any)
            write_histo(out, "asrd_http_request_duration_seconds", "route", m->route_labels[r],
                        &m->latency[r], g_lat_bounds, ASR_METRICS_N_LAT);
    }
}

static void write_models(asr__metrics_t *m, asr_buf_t *out) {
    pthread_mutex_lock(&m->model_mu);
    int n = m->n_models;
    pthread_mutex_unlock(&m->model_mu);
    asr_buf_puts(out, "# HELP asrd_transcription_real_time_factor Processing time divided by "
                      "audio duration, per transcription.\n"
                      "# TYPE asrd_transcription_real_time_factor histogram\n");
    for (int i = 0; i < n; i++)
        write_histo(out, "asrd_transcription_real_time_factor", "model", m->models[i], &m->rtf[i],
                    g_rtf_bounds, ASR_METRICS_N_RTF);
    asr_buf_puts(out, "# HELP asrd_audio_seconds_total Seconds of audio transcribed.\n"
                      "# TYPE asrd_audio_seconds_total counter\n");
    for (int i = 0; i < n; i++)
        asr_buf_printf(out, "asrd_audio_seconds_total{model=\"%s\"} %.3f\n", m->models[i],
                       (double)atomic_load(&m->audio_ms[i]) / 1000.0);
    asr_buf_puts(out, "# HELP asrd_processing_seconds_total Seconds spent transcribing.\n"
                      "# TYPE asrd_processing_seconds_total counter\n");
    for (int i = 0; i < n; i++)
        asr_buf_printf(out, "asrd_processing_seconds_total{model=\"%s\"} %.3f\n", m->models[i],
                       (double)atomic_load(&m->proc_ms[i]) / 1000.0);
}

void asr_http_metrics_write(asr_http_server_t *srv, asr_buf_t *out) {
    asr__metrics_t *m = &srv->metrics;
    write_requests(m, out);
    write_models(m, out);
    asr_buf_printf(out,
                   "# HELP asrd_http_active_requests Requests in progress.\n"
                   "# TYPE asrd_http_active_requests gauge\n"
                   "asrd_http_active_requests %d\n"
                   "# HELP process_resident_memory_bytes Resident set size.\n"
                   "# TYPE process_resident_memory_bytes gauge\n"
                   "process_resident_memory_bytes %ld\n"
                   "# HELP process_start_time_seconds Start time, seconds since the epoch.\n"
                   "# TYPE process_start_time_seconds gauge\n"
                   "process_start_time_seconds %.3f\n",
                   atomic_load(&srv->active), rss_bytes(), m->t_start);
}
