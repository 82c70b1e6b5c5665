/* cli: `asrd diagnose`: one report of what stands between asrd and a transcription, with the
 * action to take for each finding (docs/GPU.md, "Diagnose"). It asks a running server first
 * (GET /api/diagnose, like `asrd ps` asks GET /api/ps: --url, $ASRD_URL, default
 * http://127.0.0.1:8080; the admin key with --api-key or $ASRD_API_KEY); when none answers it
 * builds the report here, from the same settings `asrd serve` reads (--config, ASRD_*, flags):
 * this machine's devices (or why there is no GPU) and the configured models' plans against the
 * measured budgets. Both reports come from one builder (api_diagnose.c).
 *
 * Exit status: 0 when a report was printed (findings are facts, not failures); 1 when the server
 * answered with an error (a missing admin key; a 404 means no diagnose there: the local report);
 * 2 for bad usage. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "cli/cli.h"
#include "config/config.h"
#include "core/core.h"

#define USAGE                                                                                      \
    "usage: asrd diagnose [--url http://127.0.0.1:8080] [--api-key KEY] [--json] [--local]\n"      \
    "                     [serve settings: --config FILE, --models a,b, --device D, ...]\n"        \
    "  Asks the running server (GET /api/diagnose); when none answers, or with --local, checks\n"  \
    "  this machine with the settings `asrd serve` would use. Each finding has a severity\n"       \
    "  (ok, info, warn, error), an area (gpu, model, backend, queue, memory) and an action.\n"

static const char *str(const json_t *o, const char *key, const char *dflt) {
    const char *v = json_string_value(json_object_get(o, key));
    return v ? v : dflt;
}

static void print_report(const json_t *r, const char *where) {
    const json_t *st = json_object_get(r, "state"), *d, *f;
    size_t i;
    printf("asrd diagnose: %s\n", where);
    json_array_foreach(json_object_get(st, "devices"), i, d) {
        printf("  %s\n", str(d, "summary", str(d, "device", "?")));
    }
    printf("\n");
    json_array_foreach(json_object_get(r, "findings"), i, f) {
        char sev[8];
        snprintf(sev, sizeof sev, "%s", str(f, "severity", "?"));
        for (char *p = sev; *p; p++)
            *p = (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
        printf("%-5s  %-7s  %s\n", sev, str(f, "area", "?"), str(f, "message", ""));
        const char *act = str(f, "action", "");
        if (*act)
            printf("%16s→ %s\n", "", act);
    }
}

/* A GPU setting from the config's JSON (the settings of the GPU memory contract), or dflt. */
static uint64_t cfg_size(const json_t *cj, const char *key, uint64_t dflt) {
    const json_t *v = json_object_get(cj, key);
    if (json_is_integer(v))
        return (uint64_t)json_integer_value(v);
    int64_t b;
    if (json_is_string(v) && asr_config_parse_size(json_string_value(v), &b) == ASR_OK)
        return (uint64_t)b;
    return dflt;
}

/* The report built here: settings as `asrd serve` reads them, models as it resolves them. */
static int local_report(int argc, char **argv, const char *note, json_t **out) {
    asr_config_t cfg;
    asr_config_init(&cfg);
    char err[512] = "";
    const char *file = asr_cli_config_path(argc, argv);
    asr_cfg_action_t action;
    if ((file && asr_config_load_file(&cfg, file, err, sizeof err) != ASR_OK) ||
        asr_config_load_env(&cfg, err, sizeof err) != ASR_OK ||
        asr_config_parse_args(&cfg, argc, argv, &action, err, sizeof err) != ASR_OK) {
        fprintf(stderr, "asrd: diagnose: %s\n%s", err, USAGE);
        asr_config_deinit(&cfg);
        return 2;
    }
    asr_buf_t cb;
    asr_buf_init(&cb);
    asr_config_write_json(&cfg, &cb);
    json_t *cj = json_loadb(cb.data ? cb.data : "", cb.len, 0, NULL);
    asr_buf_free(&cb);
    char **items;
    int n;
    asr_config_list_split(cfg.models, &items, &n);
    char *root = asr_cli_expand_home(cfg.models_dir);
    const char **ids = asr_xcalloc((size_t)n + 1, sizeof *ids);
    char **dirs = asr_xcalloc((size_t)n + 1, sizeof *dirs);
    for (int i = 0; i < n; i++) {
        char *it = items[i];
        size_t len = strlen(it);
        while (len > 1 && it[len - 1] == '/')
            it[--len] = 0;
        const char *slash = strrchr(it, '/');
        asr_buf_t b;
        asr_buf_init(&b);
        if (slash)
            asr_buf_puts(&b, it);
        else
            asr_buf_printf(&b, "%s/%s", root, it);
        ids[i] = slash ? slash + 1 : it;
        dirs[i] = asr_buf_steal(&b);
    }
    const char *fb = str(cj, "gpu_fallback", NULL);
    asr_api_local_t in = {.cfg = &cfg,
                          .ids = ids,
                          .dirs = (const char *const *)dirs,
                          .n_models = n,
                          .gpu_memory_limit = cfg_size(cj, "gpu_memory_limit", 0),
                          .gpu_memory_reserve = cfg_size(cj, "gpu_memory_reserve", 512u << 20),
                          .gpu_fallback = fb,
                          .server_note = note};
    *out = asr_api_diagnose_local(&in);
    for (int i = 0; i < n; i++)
        free(dirs[i]);
    free(dirs);
    free(ids);
    free(root);
    asr_config_list_free(items, n);
    json_decref(cj);
    asr_config_deinit(&cfg);
    return 0;
}

int asr_cli_diagnose(int argc, char **argv) {
    const char *url = getenv("ASRD_URL"), *key = getenv("ASRD_API_KEY");
    int json = 0, local = 0;
    if (!url || !*url)
        url = "http://127.0.0.1:8080";
    /* diagnose's own flags; the rest are serve's settings for the local report */
    char **rest = asr_xcalloc((size_t)argc + 1, sizeof *rest);
    int n_rest = 0;
    rest[n_rest++] = argv[0];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **val = !strncmp(a, "--url", 5)       ? &url
                           : !strncmp(a, "--api-key", 9) ? &key
                                                         : NULL;
        size_t fl = val == &url ? 5 : 9;
        if (val && (a[fl] == '=' || !a[fl])) {
            if (a[fl] == '=')
                *val = a + fl + 1;
            else if (i + 1 < argc)
                *val = argv[++i];
            else {
                fprintf(stderr, "asrd: diagnose: %s needs a value\n%s", a, USAGE);
                free(rest);
                return 2;
            }
        } else if (!strcmp(a, "--json"))
            json = 1;
        else if (!strcmp(a, "--local"))
            local = 1;
        else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(USAGE, stdout);
            free(rest);
            return 0;
        } else
            rest[n_rest++] = argv[i];
    }
    asr_buf_t body;
    asr_buf_init(&body);
    char err[512] = "", where[800];
    long status = 0;
    if (!local)
        status = asr__cli_api_request(url, key, "GET", "/api/diagnose", NULL, 30L, &body, err,
                                      sizeof err);
    json_t *r = NULL;
    int rc = 0;
    if (status == 200) {
        r = json_loadb(body.data ? body.data : "", body.len, 0, NULL);
        if (!json_is_object(r)) {
            fprintf(stderr, "asrd: diagnose: unexpected answer from %s/api/diagnose\n", url);
            rc = 1;
        }
        snprintf(where, sizeof where, "the server at %s", url);
    } else if (status && status != 404) {
        json_t *e = json_loadb(body.data ? body.data : "", body.len, 0, NULL);
        const char *msg = str(json_object_get(e, "error"), "message", "");
        fprintf(stderr, "asrd: diagnose: %s/api/diagnose answered HTTP %ld%s%s%s\n", url, status,
                *msg ? ": " : "", msg,
                status == 401 || status == 403 ? " (pass the admin key: --api-key KEY)" : "");
        json_decref(e);
        rc = 1;
    } else {
        char note[600];
        if (local)
            snprintf(note, sizeof note, "--local: no server asked");
        else if (status == 404) /* something else listens there, or an asrd without diagnose */
            snprintf(note, sizeof note, "%.500s/api/diagnose answered 404", url);
        else
            snprintf(note, sizeof note, "no asrd answered at %.500s", url);
        rc = local_report(n_rest, rest, note, &r);
        snprintf(where, sizeof where, "%s; this machine checked with asrd serve's settings", note);
    }
    if (!rc && r) {
        if (json) {
            char *s = json_dumps(r, JSON_INDENT(2) | JSON_REAL_PRECISION(15));
            printf("%s\n", s ? s : "{}");
            free(s);
        } else {
            print_report(r, where);
        }
    }
    json_decref(r);
    asr_buf_free(&body);
    free(rest);
    return rc;
}
