/* cli: `asrd serve`: settings (config module), models loaded into the scheduler, the HTTP server,
 * and graceful shutdown on SIGTERM/SIGINT: stop accepting, let accepted requests finish up to
 * shutdown_deadline seconds, cancel what is left, exit 0. A second signal exits at once (130).
 *
 * The first line on stdout is the bound URL (`http://127.0.0.1:8080`), printed once the models
 * are loaded and the port is listening: scripts and tests wait for it (useful with --port 0).
 * Logs go to stderr as key=value lines. Exit codes: 0 clean shutdown, 1 startup failure, 2 bad
 * settings. */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "api/api.h"
#include "cli/cli.h"
#include "config/config.h"
#include "audio/audio.h"
#include "core/core.h"
#include "http/http.h"
#include "jobs/jobs.h"
#include "route/route.h"
#include "sched/sched.h"
#include "store/store.h"

#define SERVE_USAGE                                                                                \
    "usage: asrd serve [--host 127.0.0.1] [--port 8080] [--data DIR] [--models tiny.en,base]\n"    \
    "                  [--device cpu|cuda|cuda:N|auto] [--config FILE] [more settings below]\n"    \
    "settings: defaults < the file (--config FILE, else $ASRD_CONFIG, else /etc/asrd/asrd.conf\n"  \
    "          when it exists) < environment (ASRD_*) < flags"

static bool g_log_json; /* log_format = json: set before the sink is installed */

static void log_sink(asr_log_level_t level, const char *line, void *ud) {
    (void)level;
    (void)ud;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[96];
    snprintf(when, sizeof when, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
    if (!g_log_json) {
        fprintf(stderr, "ts=%s %s\n", when, line);
        return;
    }
    asr_buf_t b;
    asr_buf_init(&b);
    asr_log_line_json(when, line, &b);
    fprintf(stderr, "%s\n", b.data);
    asr_buf_free(&b);
}

static asr_log_level_t level_of(const char *s) {
    static const char *names[] = {"error", "warn", "info", "debug", "trace"};
    for (int i = 0; i < 5; i++)
        if (!strcmp(s, names[i]))
            return (asr_log_level_t)i;
    return ASR_LOG_INFO;
}

/* Removes uploads left behind by a previous run that died. */
static void clean_uploads(const char *dir) {
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, "upload-", 7) && strncmp(e->d_name, ".ready-", 7))
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        n += unlink(path) == 0;
    }
    closedir(d);
    if (n)
        ASR_LOG(ASR_LOG_INFO, "msg=stale_uploads_removed n=%d dir=%s", n, dir);
}

/* Loads settings: defaults < file (asr_cli_config_path) < env < flags. Returns -1 to go on, else an
 * exit code. */
static int load_settings(asr_config_t *cfg, int argc, char **argv) {
    char err[512] = "";
    const char *file = asr_cli_config_path(argc, argv);
    asr_cfg_action_t action = ASR_CFG_ACTION_RUN;
    if ((file && asr_config_load_file(cfg, file, err, sizeof err) != ASR_OK) ||
        asr_config_load_env(cfg, err, sizeof err) != ASR_OK ||
        asr_config_parse_args(cfg, argc, argv, &action, err, sizeof err) != ASR_OK) {
        fprintf(stderr, "asrd: serve: %s\n(see asrd serve --help)\n", err);
        return 2;
    }
    asr_buf_t b;
    asr_buf_init(&b);
    if (action == ASR_CFG_ACTION_HELP)
        asr_config_write_help(&b, SERVE_USAGE);
    else if (action == ASR_CFG_ACTION_PRINT)
        asr_config_write_effective(cfg, &b);
    else if (action == ASR_CFG_ACTION_PRINT_EXAMPLE)
        asr_config_write_example(&b);
    if (b.len)
        fwrite(b.data, 1, b.len, stdout);
    asr_buf_free(&b);
    return action == ASR_CFG_ACTION_RUN ? -1 : 0;
}

typedef struct {
    char **ids, **dirs;
    int n;
} model_specs_t;

static void specs_free(model_specs_t *m) {
    for (int i = 0; i < m->n; i++) {
        free(m->ids[i]);
        free(m->dirs[i]);
    }
    free(m->ids);
    free(m->dirs);
}

/* Resolves --models entries: a name is models_dir/NAME; an entry with '/' is a directory whose
 * base name is the id. */
static int resolve_models(const asr_config_t *cfg, model_specs_t *out) {
    char **items;
    int n;
    asr_config_list_split(cfg->models, &items, &n);
    char *root = asr_cli_expand_home(cfg->models_dir);
    out->ids = asr_xcalloc((size_t)n + 1, sizeof *out->ids);
    out->dirs = asr_xcalloc((size_t)n + 1, sizeof *out->dirs);
    out->n = 0;
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        char *it = items[i];
        size_t len = strlen(it);
        while (len > 1 && it[len - 1] == '/')
            it[--len] = 0;
        const char *slash = strrchr(it, '/');
        const char *id = slash ? slash + 1 : it;
        asr_buf_t b;
        asr_buf_init(&b);
        if (slash)
            asr_buf_puts(&b, it);
        else
            asr_buf_printf(&b, "%s/%s", root, it);
        for (int k = 0; k < out->n; k++)
            if (!strcmp(out->ids[k], id)) {
                fprintf(stderr, "asrd: serve: model '%s' is listed twice in --models\n", id);
                rc = 2;
            }
        out->ids[out->n] = asr_xstrdup(id);
        out->dirs[out->n++] = asr_buf_steal(&b);
    }
    if (n == 0) {
        fprintf(stderr, "asrd: serve: --models is empty: name at least one model\n");
        rc = 2;
    }
    free(root);
    asr_config_list_free(items, n);
    return rc;
}

static asr_sched_t *start_sched(const asr_config_t *cfg, const model_specs_t *ms,
                                const char *device) {
    asr_sched_model_spec_t *specs = asr_xcalloc((size_t)ms->n, sizeof *specs);
    for (int i = 0; i < ms->n; i++)
        specs[i] = (asr_sched_model_spec_t){ms->ids[i], ms->dirs[i]};
    asr_sched_params_t sp = {.models = specs,
                             .n_models = ms->n,
                             .max_parallel = cfg->max_parallel,
                             .max_queue = cfg->max_queue,
                             .max_wait_s = cfg->max_wait,
                             .keep_alive_s = cfg->keep_alive,
                             .memory_limit = (uint64_t)cfg->memory_limit,
                             .memory_reserve = (uint64_t)cfg->memory_reserve,
                             .n_threads = cfg->threads * cfg->max_parallel,
                             .fallback = cfg->fallback,
                             .compute_type = cfg->compute_type,
                             .device = device,
                             .max_batch = cfg->max_batch,
                             .preload = cfg->preload,
                             .gpu_memory_limit = (uint64_t)cfg->gpu_memory_limit,
                             .gpu_memory_reserve = (uint64_t)cfg->gpu_memory_reserve,
                             .gpu_fallback = cfg->gpu_fallback};
    asr_sched_t *sched = NULL;
    char err[1024] = "";
    if (asr_sched_create(&sp, &sched, err, sizeof err) != ASR_OK) {
        fprintf(stderr, "asrd: serve: %s\n", err);
        for (int i = 0; i < ms->n; i++) {
            struct stat st;
            if (stat(ms->dirs[i], &st) != 0 && !strchr(ms->ids[i], '/'))
                fprintf(stderr, "asrd: serve: model '%s' is not in %s (run: asrd pull %s)\n",
                        ms->ids[i], ms->dirs[i], ms->ids[i]);
        }
    }
    free(specs);
    return sched;
}

#ifndef ASRD_VERSION
#define ASRD_VERSION "0.1.0" /* as cli/main.c */
#endif

/* Starts this node's job workers and heartbeat (jobs module) once the URL is known. */
static asr_jobs_t *start_jobs(const asr_config_t *cfg, const char *data, const char *recdir,
                              const char *url, asr_jobs_router_t *routed) {
    char node[256], err[512] = "";
    const char *hp = strstr(url, "://");
    snprintf(node, sizeof node, "%s", strcmp(cfg->node_id, "auto") ? cfg->node_id : "");
    if (!node[0]) {
        char host[200] = "localhost";
        gethostname(host, sizeof host - 1);
        const char *colon = hp ? strrchr(hp + 3, ':') : NULL;
        snprintf(node, sizeof node, "%s:%s", host, colon ? colon + 1 : "0");
    }
    asr_jobs_params_t jp = {.database = strcmp(cfg->database, "sqlite") ? cfg->database : NULL,
                            .data_dir = data,
                            .recordings_dir = recdir,
                            .node_id = node,
                            .node_url = strcmp(cfg->node_url, "auto") ? cfg->node_url : url,
                            .version = ASRD_VERSION,
                            .models = cfg->models,
                            .n_workers = cfg->job_workers,
                            .lease_ms = cfg->lease_seconds * 1000,
                            .heartbeat_ms = cfg->heartbeat_seconds * 1000,
                            .backoff_ms = cfg->job_backoff_ms,
                            .retry_max_delay_ms = (int64_t)cfg->job_retry_max_delay * 1000,
                            .transcribe_cb = asr_jobs_route_transcribe,
                            .transcribe_user_data = routed,
                            .transcriber = "router",
                            .retention_days = cfg->retention_days,
                            .retention_keep_transcripts = cfg->retention_keep_transcripts};
    asr_jobs_t *jobs = NULL;
    if (asr_jobs_start(&jp, &jobs, err, sizeof err) != ASR_OK)
        fprintf(stderr, "asrd: serve: job workers: %s\n", err);
    return jobs;
}

static void *force_exit_main(void *arg) {
    sigset_t *set = arg;
    int sig = 0;
    sigwait(set, &sig);
    fprintf(stderr, "asrd: second signal: exiting without waiting\n");
    _exit(130);
}

/* Runs until SIGTERM/SIGINT, then shuts down gracefully. */
static void serve_until_signal(const asr_config_t *cfg, asr_http_server_t *srv, asr_sched_t *s,
                               asr_jobs_t *jobs, sigset_t *set) {
    int sig = 0;
    sigwait(set, &sig);
    ASR_LOG(ASR_LOG_INFO, "msg=shutdown signal=%d deadline_s=%d active=%d", sig,
            cfg->shutdown_deadline, asr_http_active(srv));
    pthread_t t;
    if (pthread_create(&t, NULL, force_exit_main, set) == 0)
        pthread_detach(t);
    asr_http_quiesce(srv);
    asr_jobs_quiesce(jobs); /* running jobs finish (and commit) while the scheduler drains */
    double t0 = asr_now_s();
    asr_sched_drain(s, cfg->shutdown_deadline);
    /* Let connection threads send the answers of the jobs that just ended (a cancelled job may
     * have taken a while to stop: the grace period starts now). */
    double t1 = asr_now_s();
    while (asr_http_active(srv) > 0 && asr_now_s() - t1 < 5.0)
        usleep(20 * 1000);
    ASR_LOG(ASR_LOG_INFO, "msg=stopped after_s=%.2f unfinished=%d", asr_now_s() - t0,
            asr_http_active(srv));
}

int asr_cli_serve(int argc, char **argv) {
    asr_config_t cfg;
    asr_config_init(&cfg);
    model_specs_t ms = {0};
    asr_sched_t *sched = NULL;
    asr_api_t *api = NULL;
    asr_store_t *store = NULL;
    asr_router_t *router = NULL;
    asr_http_server_t *srv = NULL;
    asr_jobs_t *jobs = NULL;
    char *recdir = NULL;
    char *data = NULL, *tmp = NULL, *keys = NULL;
    int rc = load_settings(&cfg, argc, argv);
    if (rc >= 0)
        goto done;
    g_log_json = !strcmp(cfg.log_format, "json");
    asr_log_set(log_sink, NULL);
    asr_log_set_level(level_of(cfg.log_level));
    rc = 1;
    data = asr_cli_expand_home(cfg.data);
    asr_buf_t b;
    asr_buf_init(&b);
    asr_buf_printf(&b, "%s/tmp", data);
    tmp = asr_buf_steal(&b);
    char why[512];
    if (asr_mkdir_p(tmp, 0755, why, sizeof why) != ASR_OK) {
        fprintf(stderr, "asrd: serve: data directory: %s\n", why);
        goto done;
    }
    clean_uploads(tmp);
    asr_jobs_crash_init(cfg.debug_faults);
    asr_buf_init(&b);
    if (strcmp(cfg.recordings_dir, "auto"))
        asr_buf_puts(&b, cfg.recordings_dir);
    else
        asr_buf_printf(&b, "%s/recordings", data);
    recdir = asr_buf_steal(&b);
    if ((rc = resolve_models(&cfg, &ms)) != 0)
        goto done;
    /* the device before anything loads: cuda without a usable one is a usage error (exit 2) */
    asr_cli_device_t dev;
    if ((rc = asr__cli_device_resolve(cfg.device, "serve: device", &dev)) != 0)
        goto done;
    ASR_LOG(ASR_LOG_INFO, "msg=device device=%s asked=%s why=\"%s\"", dev.name, dev.asked, dev.why);
    rc = 1;
    /* Signals are taken synchronously by sigwait: block them before any thread starts. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    char err[512] = "";
    if (asr_store_open(strcmp(cfg.database, "sqlite") ? cfg.database : NULL, data, &store, err,
                       sizeof err) != ASR_OK) {
        fprintf(stderr, "asrd: serve: database: %s\n", err);
        goto done;
    }
    /* Before any upload is served: files a crash left between their save and their row's commit.
     * Other nodes sharing a database may be between the two steps: only old files go then. */
    asr_jobs_recordings_sweep(store, recdir, strcmp(cfg.database, "sqlite") ? 3600.0 : 0.0, NULL);
    if (!(sched = start_sched(&cfg, &ms, dev.name)))
        goto done;
    if (asr_api_create(&cfg, sched, tmp, &api, err, sizeof err) != ASR_OK) {
        fprintf(stderr, "asrd: serve: %s\n", err);
        rc = 2;
        goto done;
    }
    asr_api_set_store(api, store);
    asr_api_set_recordings_dir(api, recdir);
    asr_route_params_t rp = {.breaker_threshold = cfg.breaker_threshold,
                             .breaker_cooldown_s = cfg.breaker_cooldown,
                             .health_interval_s = cfg.health_interval,
                             .tmp_dir = tmp};
    if (asr_route_create(&rp, store, &router, err, sizeof err) != ASR_OK) {
        fprintf(stderr, "asrd: serve: %s\n", err);
        goto done;
    }
    asr_api_set_router(api, router);
    /* With api_keys set, admin keys authenticate too (the admin routes check the role). */
    asr_buf_init(&b);
    asr_buf_printf(&b, "%s%s%s", cfg.api_keys, cfg.api_keys[0] && cfg.admin_keys[0] ? "," : "",
                   cfg.api_keys[0] ? cfg.admin_keys : "");
    keys = asr_buf_steal(&b);
    int n_routes;
    const asr_http_route_t *routes = asr_api_routes(&n_routes);
    asr_http_params_t hp = {.host = cfg.host,
                            .port = cfg.port,
                            .upload_dir = tmp,
                            .max_upload = cfg.max_upload,
                            .max_upload_large = cfg.max_recording,
                            .api_keys = keys,
                            .cors_origins = cfg.cors_origins,
                            .max_connections = cfg.max_connections,
                            .idle_timeout_s = cfg.idle_timeout,
                            .upload_timeout_s = cfg.upload_timeout,
                            .routes = routes,
                            .n_routes = n_routes,
                            .user_data = api};
    if (asr_http_start(&hp, &srv, err, sizeof err) != ASR_OK) {
        fprintf(stderr, "asrd: serve: %s\n", err);
        goto done;
    }
    asr_api_set_server(api, srv);
    asr_jobs_local_t local = {.svc = asr_api_svc(api)}; /* one service for HTTP and jobs */
    asr_jobs_router_t routed = {.router = router, .local = &local};
    if (!(jobs = start_jobs(&cfg, data, recdir, asr_http_url(srv), &routed)))
        goto done;
    asr_api_set_jobs(api, jobs);
    char fferr[256]; /* FFmpeg now, not in the first request that needs it */
    if (asr_audio_preload_ffmpeg(fferr, sizeof fferr) != ASR_OK)
        ASR_LOG(ASR_LOG_WARN, "msg=ffmpeg_unavailable reason=\"%s\"", fferr);
    printf("%s\n", asr_http_url(srv));
    fflush(stdout);
    ASR_LOG(ASR_LOG_INFO, "msg=listening url=%s models=%s data=%s auth=%s", asr_http_url(srv),
            cfg.models, data, cfg.api_keys[0] ? "on" : "off");
    serve_until_signal(&cfg, srv, sched, jobs, &set);
    rc = 0;
done:
    asr_http_stop(srv);
    asr_jobs_stop(jobs); /* after the handlers that wake it, before the scheduler it runs on */
    asr_route_destroy(router); /* stops health checks before the api and store go */
    asr_api_destroy(api);
    asr_sched_destroy(sched);
    asr_store_close(store);
    specs_free(&ms);
    free(data);
    free(tmp);
    free(recdir);
    free(keys);
    asr_config_deinit(&cfg);
    return rc;
}
