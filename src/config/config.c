/* config: the settings table of `asrd serve` and everything derived from it (see config.h).
 *
 * Invariants: every table default passes its own validation (asr_config_init asserts it); a string
 * field of asr_config_t is always a heap string, never NULL after init; LIST values are stored
 * normalised (items trimmed, joined by ',' without spaces). */
#include "config/config.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>

#define OFF(f) offsetof(asr_config_t, f)
#define KIB ((int64_t)1024)
#define GIB (KIB * KIB * KIB)

static const asr_cfg_setting_t g_table[] = {
    {"host", ASR_CFG_STR, "127.0.0.1", 0, 0, NULL, "ASRD_HOST", OFF(host), false, false,
     "address to listen on (IPv4, IPv6 or a host name)"},
    {"port", ASR_CFG_INT, "8080", 0, 65535, NULL, "ASRD_PORT", OFF(port), false, false,
     "TCP port; 0 picks a free one (the URL is printed as the first line of stdout)"},
    {"data", ASR_CFG_STR, "~/.local/share/asrd", 0, 0, NULL, "ASRD_DATA", OFF(data), false, false,
     "data directory; uploads are spooled to DATA/tmp while they arrive"},
    {"database", ASR_CFG_STR, "sqlite", 0, 0, NULL, "ASRD_DATABASE", OFF(database), false, true,
     "sqlite (DATA/asrd.db), sqlite:PATH, or a postgres://user:pass@host:5432/db URL shared by "
     "several nodes"},
    {"models_dir", ASR_CFG_STR, "~/.cache/asrd/models", 0, 0, NULL, "ASRD_MODELS", OFF(models_dir),
     false, false, "where `asrd pull` puts models (model NAME is models_dir/NAME)"},
    {"models", ASR_CFG_LIST, "base", 0, 0, NULL, "ASRD_SERVE_MODELS", OFF(models), false, false,
     "models loaded at startup, by name or directory; the first is the default"},
    {"model_aliases", ASR_CFG_LIST, "whisper-1", 0, 0, NULL, "ASRD_MODEL_ALIASES",
     OFF(model_aliases), true, false,
     "extra model ids: ALIAS=MODEL, or ALIAS alone for the default model"},
    {"max_upload", ASR_CFG_SIZE, "25MiB", 1 * KIB, 64 * GIB, NULL, "ASRD_MAX_UPLOAD",
     OFF(max_upload), true, false, "largest accepted audio file (413 above it)"},
    {"max_audio_seconds", ASR_CFG_INT, "7200", 1, 86400, NULL, "ASRD_MAX_AUDIO_SECONDS",
     OFF(max_audio_seconds), true, false, "longest accepted audio, in seconds (413 above it)"},
    {"api_keys", ASR_CFG_LIST, "", 0, 0, NULL, "ASRD_API_KEYS", OFF(api_keys), true, true,
     "accepted `Authorization: Bearer` keys; empty = no authentication"},
    {"admin_keys", ASR_CFG_LIST, "", 0, 0, NULL, "ASRD_ADMIN_KEYS", OFF(admin_keys), true, true,
     "Bearer keys of the admin role (/api/asr-configs); when api_keys or admin_keys are set, "
     "the admin API needs one of these"},
    {"cors_origins", ASR_CFG_LIST, "", 0, 0, NULL, "ASRD_CORS_ORIGINS", OFF(cors_origins), true,
     false, "origins allowed by CORS (http(s)://host[:port], or *); empty = no CORS headers"},
    {"max_parallel", ASR_CFG_INT, "1", 1, 64, NULL, "ASRD_MAX_PARALLEL", OFF(max_parallel), false,
     false, "transcriptions run at once (slots), over all models; cores are shared among them"},
    {"max_queue", ASR_CFG_INT, "16", 0, 4096, NULL, "ASRD_MAX_QUEUE", OFF(max_queue), false, false,
     "requests waiting for a slot; beyond it 503 with Retry-After"},
    {"max_wait", ASR_CFG_INT, "300", 1, 86400, NULL, "ASRD_MAX_WAIT", OFF(max_wait), false, false,
     "seconds a request may wait for a slot before it gets 503 with Retry-After"},
    {"memory_limit", ASR_CFG_SIZE, "0", 0, (int64_t)1 << 50, NULL, "ASRD_MEMORY_LIMIT",
     OFF(memory_limit), false, false,
     "host memory asrd may use in all (weights, slots, overhead); 0 = measured (cgroup "
     "memory.max, MemAvailable) minus memory_reserve"},
    {"memory_reserve", ASR_CFG_SIZE, "256MiB", 0, (int64_t)1 << 50, NULL, "ASRD_MEMORY_RESERVE",
     OFF(memory_reserve), false, false,
     "memory left to other processes when the budget is measured"},
    {"keep_alive", ASR_CFG_INT, "300", -1, 31536000, NULL, "ASRD_KEEP_ALIVE", OFF(keep_alive),
     false, false,
     "seconds an idle model stays loaded (-1 = until evicted for room); requests may set "
     "keep_alive"},
    {"preload", ASR_CFG_BOOL, "true", 0, 0, NULL, "ASRD_PRELOAD", OFF(preload), false, false,
     "load the default model at startup (others load on first use)"},
    {"fallback", ASR_CFG_LIST, "", 0, 0, NULL, "ASRD_FALLBACK", OFF(fallback), false, false,
     "fallback chains, e.g. large-v3>small>base: a request for a model that cannot fit is "
     "served by the next one that does"},
    {"compute_type", ASR_CFG_ENUM, "auto", 0, 0, "auto|float32|bfloat16|int8|float16|int8_float16",
     "ASRD_COMPUTE_TYPE", OFF(compute_type), false, false,
     "storage and arithmetic of the weights (int8: per-row scales); auto = the type measured "
     "fastest end to end: float32 on the CPU, float16 on a GPU (float16 and int8_float16: GPU "
     "only)"},
    {"device", ASR_CFG_STR, "auto", 0, 0, NULL, "ASRD_DEVICE", OFF(device), false, false,
     "where models run: cpu, cuda (device 0), cuda:N, or auto (a usable CUDA device, else the "
     "CPU; the log says which and why)"},
    {"max_batch", ASR_CFG_INT, "0", 0, 1024, NULL, "ASRD_MAX_BATCH", OFF(max_batch), false, false,
     "GPU: the most windows one batched encoder pass and the most streams one batched decoder "
     "step take; 0 = the engine's default (16)"},
    {"gpu_memory_limit", ASR_CFG_SIZE, "0", 0, (int64_t)1 << 50, NULL, "ASRD_GPU_MEMORY_LIMIT",
     OFF(gpu_memory_limit), false, false,
     "GPU: device memory asrd may hold (context, weights, slots); 0 = what is free on the card "
     "(other processes' usage counted) minus gpu_memory_reserve, re-read every second"},
    {"gpu_memory_reserve", ASR_CFG_SIZE, "512MiB", 0, (int64_t)1 << 50, NULL,
     "ASRD_GPU_MEMORY_RESERVE", OFF(gpu_memory_reserve), false, false,
     "GPU: device memory always left to other processes"},
    {"gpu_fallback", ASR_CFG_ENUM, "cpu", 0, 0, "none|cpu", "ASRD_GPU_FALLBACK", OFF(gpu_fallback),
     false, false,
     "GPU: a request its model cannot serve on the device now (after max_wait, or at once when "
     "other processes hold the card) runs on the CPU engine with the same model (cpu), after the "
     "fallback chain's models on the device; none = 503 with Retry-After"},
    {"debug_faults", ASR_CFG_BOOL, "false", 0, 0, NULL, "ASRD_DEBUG_FAULTS", OFF(debug_faults),
     false, false,
     "enable POST /debug/alloc-fail (allocation-failure injection), POST /debug/gpu-memory and "
     "/debug/gpu-fault (device memory readings and device failures) and ASRD_TEST_CRASH_AT "
     "crash points, for tests"},
    {"max_connections", ASR_CFG_INT, "64", 4, 4096, NULL, "ASRD_MAX_CONNECTIONS",
     OFF(max_connections), false, false, "open HTTP connections (one thread each)"},
    {"threads", ASR_CFG_INT, "0", 0, 256, NULL, "ASRD_THREADS", OFF(threads), false, false,
     "compute threads per transcription; 0 = cores / max_parallel"},
    {"beam_size", ASR_CFG_INT, "5", 1, 16, NULL, "ASRD_BEAM_SIZE", OFF(beam_size), true, false,
     "beam width of requests that do not set beam_size"},
    {"vad", ASR_CFG_BOOL, "true", 0, 0, NULL, "ASRD_VAD", OFF(vad), true, false,
     "voice activity filter for requests that do not set vad_filter"},
    {"chinese_script", ASR_CFG_ENUM, "simplified", 0, 0, "auto|simplified|traditional",
     "ASRD_CHINESE_SCRIPT", OFF(chinese_script), true, false,
     "script of Chinese transcripts (zh given or detected) when a request names none (its "
     "chinese_script or a regional language such as zh-TW wins); auto = as the model writes"},
    {"idle_timeout", ASR_CFG_INT, "30", 1, 3600, NULL, "ASRD_IDLE_TIMEOUT", OFF(idle_timeout),
     false, false, "seconds a connection may stay silent before it is closed"},
    {"upload_timeout", ASR_CFG_INT, "300", 1, 86400, NULL, "ASRD_UPLOAD_TIMEOUT",
     OFF(upload_timeout), false, false, "seconds to receive a whole request body (slow clients)"},
    {"stall_timeout", ASR_CFG_INT, "120", 1, 86400, NULL, "ASRD_STALL_TIMEOUT", OFF(stall_timeout),
     false, false,
     "GET /health fails (503) when a busy worker shows no progress for this many seconds"},
    {"shutdown_deadline", ASR_CFG_INT, "30", 0, 3600, NULL, "ASRD_SHUTDOWN_DEADLINE",
     OFF(shutdown_deadline), false, false,
     "on SIGTERM/SIGINT, seconds to finish accepted requests before cancelling them"},
    {"recordings_dir", ASR_CFG_STR, "auto", 0, 0, NULL, "ASRD_RECORDINGS_DIR", OFF(recordings_dir),
     false, false,
     "where uploaded recordings are kept (fsync'd); auto = DATA/recordings. Nodes sharing one "
     "PostgreSQL must see the same files here"},
    {"max_recording", ASR_CFG_SIZE, "2GiB", 1 * KIB, 1024 * GIB, NULL, "ASRD_MAX_RECORDING",
     OFF(max_recording), true, false, "largest accepted recording upload (413 above it)"},
    {"retention_days", ASR_CFG_INT, "0", 0, 36500, NULL, "ASRD_RETENTION_DAYS", OFF(retention_days),
     false, false,
     "recordings older than this many days are deleted by the server (checked hourly); 0 = keep "
     "forever"},
    {"retention_keep_transcripts", ASR_CFG_BOOL, "false", 0, 0, NULL,
     "ASRD_RETENTION_KEEP_TRANSCRIPTS", OFF(retention_keep_transcripts), false, false,
     "with retention_days: delete only the audio of old recordings, keeping their rows and "
     "transcripts"},
    {"job_workers", ASR_CFG_INT, "1", 0, 64, NULL, "ASRD_JOB_WORKERS", OFF(job_workers), false,
     false, "transcription job workers on this node; 0 = this node runs no jobs (API only)"},
    {"lease_seconds", ASR_CFG_INT, "30", 1, 3600, NULL, "ASRD_LEASE_SECONDS", OFF(lease_seconds),
     false, false,
     "a worker's lease on a job; renewed while it works, and once expired (node died) the job "
     "runs elsewhere"},
    {"job_max_attempts", ASR_CFG_INT, "10", 1, 100, NULL, "ASRD_JOB_MAX_ATTEMPTS",
     OFF(job_max_attempts), true, false,
     "attempts of a job before it fails with its last error (retryable failures: busy, out of "
     "memory, no backend answering); between attempts the job is queued"},
    {"job_backoff_ms", ASR_CFG_INT, "5000", 0, 3600000, NULL, "ASRD_JOB_BACKOFF_MS",
     OFF(job_backoff_ms), true, false,
     "delay before a job's second attempt; it doubles per attempt, up to job_retry_max_delay"},
    {"job_retry_max_delay", ASR_CFG_INT, "300", 1, 86400, NULL, "ASRD_JOB_RETRY_MAX_DELAY",
     OFF(job_retry_max_delay), true, false,
     "longest delay between a job's attempts, in seconds (the defaults wait 5 s, 10 s, ... 300 s: "
     "about 20 minutes in all for a GPU held by another program)"},
    {"node_id", ASR_CFG_STR, "auto", 0, 0, NULL, "ASRD_NODE_ID", OFF(node_id), false, false,
     "this node's name in GET /api/nodes and job leases; auto = HOST:PORT"},
    {"node_url", ASR_CFG_STR, "auto", 0, 0, NULL, "ASRD_NODE_URL", OFF(node_url), false, false,
     "the URL other nodes reach this one at; auto = the bound URL"},
    {"heartbeat_seconds", ASR_CFG_INT, "5", 1, 3600, NULL, "ASRD_HEARTBEAT_SECONDS",
     OFF(heartbeat_seconds), false, false, "how often this node records its heartbeat"},
    {"health_interval", ASR_CFG_INT, "60", 0, 86400, NULL, "ASRD_HEALTH_INTERVAL",
     OFF(health_interval), false, false,
     "seconds between background health checks of remote ASR backends; 0 = off"},
    {"breaker_threshold", ASR_CFG_INT, "3", 1, 1000, NULL, "ASRD_BREAKER_THRESHOLD",
     OFF(breaker_threshold), false, false,
     "consecutive failures after which an ASR backend's breaker opens (requests skip it)"},
    {"breaker_cooldown", ASR_CFG_INT, "30", 1, 86400, NULL, "ASRD_BREAKER_COOLDOWN",
     OFF(breaker_cooldown), false, false,
     "seconds an open breaker waits before one probe request tries the backend again"},
    {"log_level", ASR_CFG_ENUM, "info", 0, 0, "error|warn|info|debug|trace", "ASRD_LOG_LEVEL",
     OFF(log_level), true, false,
     "log verbosity; access lines are info, the web UI's polling (GETs of status and lists) debug"},
    {"log_format", ASR_CFG_ENUM, "text", 0, 0, "text|json", "ASRD_LOG_FORMAT", OFF(log_format),
     false, false,
     "text = key=value lines; json = one JSON object a line (ts, level, msg and the fields)"},
};

#define N_SETTINGS ((int)(sizeof g_table / sizeof g_table[0]))

const asr_cfg_setting_t *asr_config_table(int *n) {
    *n = N_SETTINGS;
    return g_table;
}

static bool name_eq(const char *a, const char *b) {
    for (; *a && *b; a++, b++) {
        char x = *a == '-' ? '_' : *a, y = *b == '-' ? '_' : *b;
        if (x != y)
            return false;
    }
    return !*a && !*b;
}

const asr_cfg_setting_t *asr_config_find(const char *name) {
    for (int i = 0; i < N_SETTINGS; i++)
        if (name_eq(g_table[i].name, name))
            return &g_table[i];
    return NULL;
}

static void *field(asr_config_t *cfg, const asr_cfg_setting_t *s) {
    return (char *)cfg + s->offset;
}
static const void *cfield(const asr_config_t *cfg, const asr_cfg_setting_t *s) {
    return (const char *)cfg + s->offset;
}

/* ---- value parsers ---- */

static bool parse_i64(const char *s, int64_t *out) {
    if (!*s)
        return false;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno || *end)
        return false;
    *out = v;
    return true;
}

asr_err_t asr_config_parse_size(const char *s, int64_t *out) {
    errno = 0;
    char *end;
    if (!isdigit((unsigned char)*s))
        return ASR_ERR_INVALID;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno)
        return ASR_ERR_INVALID;
    while (*end == ' ')
        end++;
    int shift = 0;
    switch (tolower((unsigned char)*end)) {
    case 0:
        break;
    case 'k':
        shift = 10;
        break;
    case 'm':
        shift = 20;
        break;
    case 'g':
        shift = 30;
        break;
    case 't':
        shift = 40;
        break;
    case 'b':
        if (end[1])
            return ASR_ERR_INVALID;
        end++;
        break;
    default:
        return ASR_ERR_INVALID;
    }
    if (shift) {
        end++;
        if (!strcasecmp(end, "ib") || !strcasecmp(end, "b") || !*end)
            ; /* 25M, 25MB and 25MiB all mean 25 * 2^20 */
        else
            return ASR_ERR_INVALID;
    }
    if (v > ((unsigned long long)INT64_MAX >> shift))
        return ASR_ERR_INVALID;
    *out = (int64_t)(v << shift);
    return ASR_OK;
}

static int parse_bool(const char *s) {
    static const char *yes[] = {"true", "yes", "on", "1"}, *no[] = {"false", "no", "off", "0"};
    for (int i = 0; i < 4; i++) {
        if (!strcasecmp(s, yes[i]))
            return 1;
        if (!strcasecmp(s, no[i]))
            return 0;
    }
    return -1;
}

static bool enum_has(const char *choices, const char *v) {
    size_t n = strlen(v);
    const char *p = choices;
    while (n && *p) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && !strncasecmp(p, v, n))
            return true;
        p = bar ? bar + 1 : p + len;
    }
    return false;
}

/* Normalises a LIST value into `out`: items trimmed, no empty items. */
static asr_err_t normalise_list(const char *v, asr_buf_t *out) {
    const char *p = v;
    int n = 0;
    while (*p) {
        const char *comma = strchr(p, ',');
        const char *e = comma ? comma : p + strlen(p);
        const char *a = p;
        while (a < e && isspace((unsigned char)*a))
            a++;
        const char *b = e;
        while (b > a && isspace((unsigned char)b[-1]))
            b--;
        if (a == b) {
            if (comma || n)
                return ASR_ERR_INVALID; /* "a,,b" or "a," */
        } else {
            if (n++)
                asr_buf_puts(out, ",");
            asr_buf_append(out, a, (size_t)(b - a));
        }
        p = comma ? comma + 1 : e;
    }
    if (!out->data)
        asr_buf_puts(out, "");
    return ASR_OK;
}

static bool has_ctl(const char *v) {
    for (const unsigned char *p = (const unsigned char *)v; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return true;
    return false;
}

/* Setting-specific checks beyond the type. */
static asr_err_t check_list_items(const asr_cfg_setting_t *s, const char *list, char *errbuf,
                                  size_t errbuf_len) {
    char **items;
    int n;
    asr_err_t rc = ASR_OK;
    asr_config_list_split(list, &items, &n);
    for (int i = 0; i < n && rc == ASR_OK; i++) {
        const char *it = items[i];
        if (!strcmp(s->name, "cors_origins") && strcmp(it, "*") && strncmp(it, "http://", 7) &&
            strncmp(it, "https://", 8)) {
            asr_errf(errbuf, errbuf_len, "cors_origins: '%s' is not * or an http(s):// origin", it);
            rc = ASR_ERR_INVALID;
        } else if (!strcmp(s->name, "model_aliases")) {
            const char *eq = strchr(it, '=');
            if (eq == it || (eq && (!eq[1] || strchr(eq + 1, '=')))) {
                asr_errf(errbuf, errbuf_len, "model_aliases: '%s' is not ALIAS=MODEL or ALIAS", it);
                rc = ASR_ERR_INVALID;
            }
        } else if ((!strcmp(s->name, "api_keys") || !strcmp(s->name, "admin_keys")) &&
                   strpbrk(it, " \t")) {
            asr_errf(errbuf, errbuf_len, "%s: a key contains white space", s->name);
            rc = ASR_ERR_INVALID;
        }
    }
    asr_config_list_free(items, n);
    return rc;
}

/* The syntax of a device value (gpu's asr_devspec_parse decides what it means; config sits below
 * the gpu layer): cpu, auto, host (the reference device: tests), cuda, or cuda:N with N decimal
 * digits below 1024. */
static bool device_syntax_ok(const char *v) {
    if (!strcmp(v, "cpu") || !strcmp(v, "auto") || !strcmp(v, "host") || !strcmp(v, "cuda"))
        return true;
    if (strncmp(v, "cuda:", 5) || !v[5] || strlen(v + 5) > 4)
        return false;
    for (const char *p = v + 5; *p; p++)
        if (!isdigit((unsigned char)*p))
            return false;
    return atoi(v + 5) < 1024;
}

static void set_str(char **slot, const char *v) {
    free(*slot);
    *slot = asr_xstrdup(v);
}

static asr_err_t set_value(asr_config_t *cfg, const asr_cfg_setting_t *s, const char *v,
                           char *errbuf, size_t errbuf_len) {
    int64_t i64;
    if (has_ctl(v)) {
        asr_errf(errbuf, errbuf_len, "%s: value contains control characters", s->name);
        return ASR_ERR_INVALID;
    }
    switch (s->type) {
    case ASR_CFG_STR:
        if (!*v) {
            asr_errf(errbuf, errbuf_len, "%s: must not be empty", s->name);
            return ASR_ERR_INVALID;
        }
        if (s->offset == OFF(device) && !device_syntax_ok(v)) {
            asr_errf(errbuf, errbuf_len, "%s: '%s' is not cpu, cuda, cuda:N or auto", s->name, v);
            return ASR_ERR_INVALID;
        }
        set_str(field(cfg, s), v);
        return ASR_OK;
    case ASR_CFG_INT:
        if (!parse_i64(v, &i64) || i64 < s->min || i64 > s->max) {
            asr_errf(errbuf, errbuf_len, "%s: '%s' is not an integer from %lld to %lld", s->name, v,
                     (long long)s->min, (long long)s->max);
            return ASR_ERR_INVALID;
        }
        *(int *)field(cfg, s) = (int)i64;
        return ASR_OK;
    case ASR_CFG_SIZE:
        if (asr_config_parse_size(v, &i64) != ASR_OK || i64 < s->min || i64 > s->max) {
            asr_errf(errbuf, errbuf_len,
                     "%s: '%s' is not a size from %lld to %lld bytes (suffixes K, M, G)", s->name,
                     v, (long long)s->min, (long long)s->max);
            return ASR_ERR_INVALID;
        }
        *(int64_t *)field(cfg, s) = i64;
        return ASR_OK;
    case ASR_CFG_BOOL: {
        int b = parse_bool(v);
        if (b < 0) {
            asr_errf(errbuf, errbuf_len, "%s: '%s' is not a boolean (true/false)", s->name, v);
            return ASR_ERR_INVALID;
        }
        *(bool *)field(cfg, s) = b;
        return ASR_OK;
    }
    case ASR_CFG_ENUM:
        if (!enum_has(s->choices, v)) {
            asr_errf(errbuf, errbuf_len, "%s: '%s' is not one of %s", s->name, v, s->choices);
            return ASR_ERR_INVALID;
        }
        set_str(field(cfg, s), v);
        for (char *p = *(char **)field(cfg, s); *p; p++)
            *p = (char)tolower((unsigned char)*p);
        return ASR_OK;
    case ASR_CFG_LIST: {
        asr_buf_t b;
        asr_buf_init(&b);
        asr_err_t rc = normalise_list(v, &b);
        if (rc != ASR_OK)
            asr_errf(errbuf, errbuf_len, "%s: empty item in list '%s'", s->name, v);
        else
            rc = check_list_items(s, b.data, errbuf, errbuf_len);
        if (rc == ASR_OK) {
            free(*(char **)field(cfg, s));
            *(char **)field(cfg, s) = asr_buf_steal(&b);
        }
        asr_buf_free(&b);
        return rc;
    }
    }
    return ASR_ERR_INVALID;
}

asr_err_t asr_config_set(asr_config_t *cfg, const char *name, const char *value, char *errbuf,
                         size_t errbuf_len) {
    const asr_cfg_setting_t *s = asr_config_find(name);
    if (!s) {
        asr_errf(errbuf, errbuf_len, "unknown setting '%s'", name);
        return ASR_ERR_NOT_FOUND;
    }
    return set_value(cfg, s, value, errbuf, errbuf_len);
}

void asr_config_init(asr_config_t *cfg) {
    memset(cfg, 0, sizeof *cfg);
    for (int i = 0; i < N_SETTINGS; i++) {
        asr_err_t rc = set_value(cfg, &g_table[i], g_table[i].def, NULL, 0);
        ASR_ASSERT(rc == ASR_OK);
    }
}

void asr_config_deinit(asr_config_t *cfg) {
    if (!cfg)
        return;
    for (int i = 0; i < N_SETTINGS; i++) {
        asr_cfg_type_t t = g_table[i].type;
        if (t == ASR_CFG_STR || t == ASR_CFG_LIST || t == ASR_CFG_ENUM) {
            char **p = field(cfg, &g_table[i]);
            free(*p);
            *p = NULL;
        }
    }
}

void asr_config_list_split(const char *list, char ***out_items, int *out_n) {
    int cap = 1;
    for (const char *p = list; *p; p++)
        cap += *p == ',';
    char **items = asr_xcalloc((size_t)cap, sizeof *items);
    int n = 0;
    const char *p = list;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        while (len && isspace((unsigned char)*p))
            p++, len--;
        while (len && isspace((unsigned char)p[len - 1]))
            len--;
        if (len) {
            items[n] = asr_xmalloc(len + 1);
            memcpy(items[n], p, len);
            items[n++][len] = 0;
        }
        if (!e)
            break;
        p = e + 1;
    }
    *out_items = items;
    *out_n = n;
}

void asr_config_list_free(char **items, int n) {
    for (int i = 0; i < n; i++)
        free(items[i]);
    free(items);
}

/* ---- config file ---- */

static const char *trim(char *s, size_t *len) {
    while (*len && isspace((unsigned char)*s))
        s++, (*len)--;
    while (*len && isspace((unsigned char)s[*len - 1]))
        (*len)--;
    return s;
}

/* Parses one non-blank, non-comment line `key = value`. `line` is modified. */
static asr_err_t parse_line(asr_config_t *cfg, char *line, size_t len, const char *source,
                            int lineno, unsigned char *seen, char *errbuf, size_t errbuf_len) {
    char *eq = memchr(line, '=', len);
    if (!eq) {
        asr_errf(errbuf, errbuf_len, "%s:%d: expected `key = value`", source, lineno);
        return ASR_ERR_INVALID;
    }
    size_t klen = (size_t)(eq - line), vlen = len - klen - 1;
    char *key = (char *)trim(line, &klen);
    char *val = (char *)trim(eq + 1, &vlen);
    key[klen] = 0;
    if (vlen >= 2 && val[0] == '"' && val[vlen - 1] == '"')
        val++, vlen -= 2;
    val[vlen] = 0;
    const asr_cfg_setting_t *s = asr_config_find(key);
    if (!s) {
        asr_errf(errbuf, errbuf_len, "%s:%d: unknown setting '%s'", source, lineno, key);
        return ASR_ERR_INVALID;
    }
    if (seen[s - g_table]++) {
        asr_errf(errbuf, errbuf_len, "%s:%d: '%s' is set twice", source, lineno, s->name);
        return ASR_ERR_INVALID;
    }
    char msg[256];
    if (set_value(cfg, s, val, msg, sizeof msg) != ASR_OK) {
        asr_errf(errbuf, errbuf_len, "%s:%d: %s", source, lineno, msg);
        return ASR_ERR_INVALID;
    }
    return ASR_OK;
}

asr_err_t asr_config_parse_text(asr_config_t *cfg, const char *text, size_t len, const char *source,
                                char *errbuf, size_t errbuf_len) {
    unsigned char seen[N_SETTINGS] = {0};
    enum { MAX_LINE = 8192 };
    char *line = asr_xmalloc(MAX_LINE + 1);
    asr_err_t rc = ASR_OK;
    int lineno = 0;
    size_t pos = 0;
    while (pos < len && rc == ASR_OK) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t l = nl ? (size_t)(nl - (text + pos)) : len - pos;
        lineno++;
        if (l > MAX_LINE) {
            asr_errf(errbuf, errbuf_len, "%s:%d: line longer than %d bytes", source, lineno,
                     MAX_LINE);
            rc = ASR_ERR_INVALID;
            break;
        }
        memcpy(line, text + pos, l);
        line[l] = 0;
        pos += l + (nl ? 1 : 0);
        if (memchr(line, 0, l)) {
            asr_errf(errbuf, errbuf_len, "%s:%d: NUL byte in line", source, lineno);
            rc = ASR_ERR_INVALID;
            break;
        }
        size_t tl = l;
        char *t = (char *)trim(line, &tl);
        if (!tl || *t == '#' || *t == ';')
            continue;
        t[tl] = 0;
        rc = parse_line(cfg, t, tl, source, lineno, seen, errbuf, errbuf_len);
    }
    free(line);
    return rc;
}

asr_err_t asr_config_load_file(asr_config_t *cfg, const char *path, char *errbuf,
                               size_t errbuf_len) {
    char *text = NULL;
    size_t len = 0;
    asr_err_t rc = asr_read_file_msg(path, "config file", &text, &len, errbuf, errbuf_len);
    if (rc != ASR_OK)
        return rc;
    rc = asr_config_parse_text(cfg, text, len, path, errbuf, errbuf_len);
    free(text);
    return rc;
}

asr_err_t asr_config_load_env(asr_config_t *cfg, char *errbuf, size_t errbuf_len) {
    for (int i = 0; i < N_SETTINGS; i++) {
        const char *v = getenv(g_table[i].env);
        if (!v || !*v)
            continue;
        char msg[256];
        if (set_value(cfg, &g_table[i], v, msg, sizeof msg) != ASR_OK) {
            asr_errf(errbuf, errbuf_len, "%s: %s", g_table[i].env, msg);
            return ASR_ERR_INVALID;
        }
    }
    return ASR_OK;
}

/* ---- flags ---- */

const char *asr_config_file_arg(int argc, char **argv) {
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--config") && i + 1 < argc)
            path = argv[++i];
        else if (!strncmp(argv[i], "--config=", 9))
            path = argv[i] + 9;
    }
    return path;
}

static int flag_action(const char *a, asr_cfg_action_t *action) {
    if (!strcmp(a, "--help") || !strcmp(a, "-h"))
        *action = ASR_CFG_ACTION_HELP;
    else if (!strcmp(a, "--print-config"))
        *action = ASR_CFG_ACTION_PRINT;
    else if (!strcmp(a, "--print-config-example"))
        *action = ASR_CFG_ACTION_PRINT_EXAMPLE;
    else
        return 0;
    return 1;
}

asr_err_t asr_config_parse_args(asr_config_t *cfg, int argc, char **argv, asr_cfg_action_t *action,
                                char *errbuf, size_t errbuf_len) {
    *action = ASR_CFG_ACTION_RUN;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (flag_action(a, action))
            continue;
        if (strncmp(a, "--", 2) || !a[2]) {
            asr_errf(errbuf, errbuf_len, "unexpected argument '%s'", a);
            return ASR_ERR_INVALID;
        }
        char name[64];
        const char *eq = strchr(a, '=');
        size_t nlen = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
        if (nlen >= sizeof name) {
            asr_errf(errbuf, errbuf_len, "unknown option '%s'", a);
            return ASR_ERR_INVALID;
        }
        memcpy(name, a + 2, nlen);
        name[nlen] = 0;
        if (!strcmp(name, "config")) {
            i += eq ? 0 : 1;
            continue;
        }
        const asr_cfg_setting_t *s = asr_config_find(name);
        const char *val = eq ? eq + 1 : NULL;
        if (!s && !eq && !strncmp(name, "no-", 3) && (s = asr_config_find(name + 3)) &&
            s->type == ASR_CFG_BOOL)
            val = "false";
        else if (!s || (!strncmp(name, "no-", 3) && s->type != ASR_CFG_BOOL)) {
            asr_errf(errbuf, errbuf_len, "unknown option '--%s'", name);
            return ASR_ERR_INVALID;
        } else if (!val && s->type == ASR_CFG_BOOL)
            val = "true";
        else if (!val) {
            if (i + 1 >= argc) {
                asr_errf(errbuf, errbuf_len, "option '--%s' needs a value", name);
                return ASR_ERR_INVALID;
            }
            val = argv[++i];
        }
        if (set_value(cfg, s, val, errbuf, errbuf_len) != ASR_OK)
            return ASR_ERR_INVALID;
    }
    return ASR_OK;
}

/* ---- generated text ---- */

static const char *type_name(const asr_cfg_setting_t *s) {
    switch (s->type) {
    case ASR_CFG_STR:
        return "TEXT";
    case ASR_CFG_INT:
        return "N";
    case ASR_CFG_SIZE:
        return "SIZE";
    case ASR_CFG_BOOL:
        return "BOOL";
    case ASR_CFG_LIST:
        return "A,B";
    case ASR_CFG_ENUM:
        return "LEVEL";
    }
    return "?";
}

static void flag_name(const asr_cfg_setting_t *s, char *out, size_t len) {
    snprintf(out, len, "--%s", s->name);
    for (char *p = out + 2; *p; p++)
        if (*p == '_')
            *p = '-';
}

static void write_range(const asr_cfg_setting_t *s, asr_buf_t *out) {
    if (s->type == ASR_CFG_INT || s->type == ASR_CFG_SIZE)
        asr_buf_printf(out, "%lld..%lld", (long long)s->min, (long long)s->max);
    else if (s->type == ASR_CFG_ENUM)
        asr_buf_puts(out, s->choices);
    else if (s->type == ASR_CFG_BOOL)
        asr_buf_puts(out, "true|false");
}

void asr_config_write_help(asr_buf_t *out, const char *usage) {
    asr_buf_printf(out, "%s\n\n", usage);
    asr_buf_puts(out, "Settings come from the table defaults, then --config FILE (`key = value`\n"
                      "lines), then the environment, then these flags.\n\n");
    asr_buf_puts(out, "  --config FILE                 read settings from FILE (env ASRD_CONFIG)\n"
                      "  --print-config                print the effective settings and exit\n"
                      "  --print-config-example        print asrd.conf.example and exit\n"
                      "  --help                        this help\n\n");
    for (int i = 0; i < N_SETTINGS; i++) {
        const asr_cfg_setting_t *s = &g_table[i];
        char flag[80];
        flag_name(s, flag, sizeof flag);
        char left[200];
        if (s->type == ASR_CFG_BOOL)
            snprintf(left, sizeof left, "%s, --no-%s", flag, flag + 2);
        else
            snprintf(left, sizeof left, "%s %s", flag, type_name(s));
        asr_buf_printf(out, "  %-29s %s\n", left, s->help);
        asr_buf_printf(out, "  %-29s default: %s; env %s", "", *s->def ? s->def : "(empty)",
                       s->env);
        if (s->type == ASR_CFG_INT || s->type == ASR_CFG_SIZE || s->type == ASR_CFG_ENUM) {
            asr_buf_puts(out, "; ");
            write_range(s, out);
        }
        asr_buf_puts(out, "\n");
    }
}

void asr_config_write_example(asr_buf_t *out) {
    asr_buf_puts(out, "# asrd.conf.example: every setting of `asrd serve` at its default.\n"
                      "# Generated by `asrd serve --print-config-example` from the settings table\n"
                      "# (src/config/config.c); a test checks that this file matches it.\n"
                      "# Use: asrd serve --config FILE. Precedence: defaults < this file <\n"
                      "# environment (ASRD_*) < flags. Unknown keys are errors.\n");
    for (int i = 0; i < N_SETTINGS; i++) {
        const asr_cfg_setting_t *s = &g_table[i];
        char flag[80];
        flag_name(s, flag, sizeof flag);
        asr_buf_printf(out, "\n# %s\n# type %s", s->help, type_name(s));
        if (s->type != ASR_CFG_STR && s->type != ASR_CFG_LIST) {
            asr_buf_puts(out, " (");
            write_range(s, out);
            asr_buf_puts(out, ")");
        }
        asr_buf_printf(out, "; env %s; flag %s%s\n", s->env, flag, s->secret ? "; secret" : "");
        asr_buf_printf(out, "#%s = %s\n", s->name, s->def);
    }
}

void asr_config_write_effective(const asr_config_t *cfg, asr_buf_t *out) {
    for (int i = 0; i < N_SETTINGS; i++) {
        const asr_cfg_setting_t *s = &g_table[i];
        const void *f = cfield(cfg, s);
        asr_buf_printf(out, "%s = ", s->name);
        if (s->secret) {
            const char *v = *(char *const *)f;
            asr_buf_puts(out, *v ? "<redacted>" : "");
        } else if (s->type == ASR_CFG_INT)
            asr_buf_printf(out, "%d", *(const int *)f);
        else if (s->type == ASR_CFG_SIZE)
            asr_buf_printf(out, "%lld", (long long)*(const int64_t *)f);
        else if (s->type == ASR_CFG_BOOL)
            asr_buf_puts(out, *(const bool *)f ? "true" : "false");
        else {
            const char *v = *(char *const *)f;
            size_t n = strlen(v);
            bool quote = n && (v[0] == '"' || v[0] == ' ' || v[n - 1] == '"' || v[n - 1] == ' ');
            asr_buf_printf(out, quote ? "\"%s\"" : "%s", v); /* parses back to itself */
        }
        asr_buf_puts(out, "\n");
    }
}

void asr_config_write_json(const asr_config_t *cfg, asr_buf_t *out) {
    json_t *o = json_object();
    for (int i = 0; i < N_SETTINGS; i++) {
        const asr_cfg_setting_t *s = &g_table[i];
        const void *f = cfield(cfg, s);
        json_t *v = NULL;
        if (s->secret)
            continue;
        if (s->type == ASR_CFG_INT)
            v = json_integer(*(const int *)f);
        else if (s->type == ASR_CFG_SIZE)
            v = json_integer(*(const int64_t *)f);
        else if (s->type == ASR_CFG_BOOL)
            v = json_boolean(*(const bool *)f);
        else if (s->type == ASR_CFG_LIST) {
            char **items;
            int n;
            asr_config_list_split(*(char *const *)f, &items, &n);
            v = json_array();
            for (int k = 0; k < n; k++)
                json_array_append_new(v, json_string(items[k]));
            asr_config_list_free(items, n);
        } else
            v = json_string(*(char *const *)f);
        json_object_set_new(o, s->name, v);
    }
    char *js = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    asr_buf_puts(out, js);
    asr_buf_puts(out, "\n");
    free(js);
    json_decref(o);
}
