/* cli: `asrd ps`: what a running server holds in memory (GET /api/ps), like `ollama ps`, the GPU
 * it serves on (who holds the card's memory, asrd's share, the budget, the batch in force, the
 * counters), and its ASR backends: breaker, failovers in the last hour, last error, and the recent
 * failovers with what asrd did instead. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "core/core.h"

#define USAGE "usage: asrd ps [--url http://127.0.0.1:8080] [--api-key KEY] [--json]\n"

static double mib(json_int_t b) { return (double)b / (1024.0 * 1024.0); }

static const char *str_or(json_t *o, const char *key, const char *dflt) {
    const char *v = json_string_value(json_object_get(o, key));
    return v ? v : dflt;
}

/* Milliseconds since the epoch as local "YYYY-MM-DD HH:MM:SS". */
static void fmt_ms(json_t *ms, char *out, size_t n) {
    time_t s = (time_t)(json_integer_value(ms) / 1000);
    struct tm tm;
    if (!json_is_integer(ms) || !localtime_r(&s, &tm) || !strftime(out, n, "%F %T", &tm))
        snprintf(out, n, "-");
}

static double gib(json_int_t b) { return (double)b / (1024.0 * 1024.0 * 1024.0); }
static json_int_t num(json_t *o, const char *key) {
    return json_integer_value(json_object_get(o, key));
}

/* The devices of /api/ps (docs/GPU.md, "Visibility"): the sentence, the memory split, the budget,
 * the batch in force, the other processes and the counters. */
static void print_devices(json_t *root) {
    json_t *ds = json_object_get(root, "devices"), *d, *p;
    size_t i, k;
    json_array_foreach(ds, i, d) {
        json_t *a = json_object_get(d, "asrd"), *ev = json_object_get(d, "events");
        printf("\n%s\n", str_or(d, "summary", str_or(d, "device", "?")));
        printf("  budget %.1f GiB (limit %s, reserve %.1f GiB), asrd %.2f GiB: context %.2f, "
               "weights %.2f, slots %.2f, cache %.2f GiB\n",
               gib(num(d, "budget_bytes")), num(d, "limit_bytes") ? "set" : "none",
               gib(num(d, "reserve_bytes")), gib(num(a, "bytes")), gib(num(a, "context_bytes")),
               gib(num(a, "weights_bytes")), gib(num(a, "slots_bytes")),
               gib(num(a, "cache_bytes")));
        if (num(d, "limit_bytes"))
            printf("  limit %.1f GiB\n", gib(num(d, "limit_bytes")));
        printf(
            "  batch %lld in force of %lld that fit; gpu fallback %s; reading %s, %.1f s old%s%s\n",
            (long long)num(d, "batch"), (long long)num(d, "batch_max"),
            str_or(d, "gpu_fallback", "none"), str_or(d, "source", "?"),
            json_number_value(json_object_get(d, "reading_age_s")),
            json_is_string(json_object_get(d, "reading_error")) ? ": " : "",
            str_or(d, "reading_error", ""));
        if (json_array_size(json_object_get(d, "processes")))
            printf("  %-10s %-24s %10s\n", "PID", "PROCESS", "MEMORY");
        json_array_foreach(json_object_get(d, "processes"), k, p) {
            printf("  %-10lld %-24s %6.1f GiB%s\n", (long long)num(p, "pid"),
                   str_or(p, "name", "?"), gib(num(p, "bytes")),
                   json_is_true(json_object_get(p, "self")) ? "  (asrd)" : "");
        }
        printf("  waits %lld, served on CPU %lld, fallback model %lld, OOM retries %lld, resets "
               "%lld, shrinks %lld\n",
               (long long)num(ev, "waits"), (long long)num(ev, "fallbacks_cpu"),
               (long long)num(ev, "fallbacks_model"), (long long)num(ev, "oom_retries"),
               (long long)num(ev, "resets"), (long long)num(ev, "shrinks"));
        json_t *le = json_object_get(d, "last_error");
        if (json_is_object(le))
            printf("  last error (%.0f s ago): %s\n",
                   json_number_value(json_object_get(le, "age_s")), str_or(le, "message", ""));
    }
}

/* The backends and the recent failovers of /api/ps (absent on a server without a router). */
static void print_backends(json_t *root) {
    json_t *bs = json_object_get(root, "backends"), *b, *fo = json_object_get(root, "failovers");
    size_t i;
    if (!json_is_array(bs))
        return;
    printf("\n%-16s %-11s %-9s %8s %8s %7s  %s\n", "BACKEND", "KIND", "BREAKER", "REQUESTS",
           "FAILURES", "FO/1H", "LAST ERROR");
    json_array_foreach(bs, i, b) {
        json_t *le = json_object_get(b, "last_error");
        char at[32] = "", last[600] = "-";
        if (json_is_object(le)) {
            fmt_ms(json_object_get(le, "at"), at, sizeof at);
            snprintf(last, sizeof last, "%s [%s] %s", at, str_or(le, "class", "?"),
                     str_or(le, "message", ""));
        }
        printf("%-16s %-11s %-9s %8lld %8lld %7lld  %s\n", str_or(b, "name", "?"),
               str_or(b, "kind", "?"), str_or(b, "breaker", "?"),
               (long long)json_integer_value(json_object_get(b, "requests")),
               (long long)json_integer_value(json_object_get(b, "failures")),
               (long long)json_integer_value(json_object_get(b, "failovers_last_hour")), last);
    }
    if (!json_array_size(fo))
        return;
    printf("\nrecent failovers:\n");
    json_array_foreach(fo, i, b) {
        char at[32];
        fmt_ms(json_object_get(b, "at"), at, sizeof at);
        const char *to = str_or(b, "to", NULL);
        char action[200];
        if (to)
            snprintf(action, sizeof action, "served by %s instead", to);
        else
            snprintf(action, sizeof action, "no backend could serve it");
        printf("  %s  %s [%s] %s: %s\n", at, str_or(b, "from", "?"), str_or(b, "class", "?"),
               str_or(b, "message", ""), action);
    }
}

int asr_cli_ps(int argc, char **argv) {
    static const struct option opts[] = {{"url", required_argument, 0, 'u'},
                                         {"api-key", required_argument, 0, 'k'},
                                         {"json", no_argument, 0, 'j'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *url = getenv("ASRD_URL"), *key = getenv("ASRD_API_KEY");
    int json = 0, c;
    if (!url || !*url)
        url = "http://127.0.0.1:8080";
    optind = 1;
    while ((c = getopt_long(argc, argv, "u:k:jh", opts, NULL)) != -1) {
        if (c == 'u')
            url = optarg;
        else if (c == 'k')
            key = optarg;
        else if (c == 'j')
            json = 1;
        else if (c == 'h') {
            fputs(USAGE, stdout);
            return 0;
        } else {
            fputs(USAGE, stderr);
            return 2;
        }
    }
    asr_buf_t body;
    asr_buf_init(&body);
    char err[512];
    long status =
        asr__cli_api_request(url, key, "GET", "/api/ps", NULL, 10L, &body, err, sizeof err);
    int rc = 1;
    json_t *root = NULL;
    if (!status) {
        fprintf(stderr, "asrd: ps: %s\n", err);
        goto done;
    }
    if (status != 200) {
        fprintf(stderr, "asrd: ps: %s/api/ps answered HTTP %ld\n", url, status);
        goto done;
    }
    if (json) {
        fwrite(body.data, 1, body.len, stdout);
        printf("\n");
        rc = 0;
        goto done;
    }
    json_error_t je;
    root = json_loadb(body.data ? body.data : "", body.len, 0, &je);
    json_t *models = json_object_get(root, "models");
    if (!json_is_array(models)) {
        fprintf(stderr, "asrd: ps: unexpected answer from %s/api/ps\n", url);
        goto done;
    }
    printf("%-16s %-8s %-7s %10s %10s %7s %8s %s\n", "NAME", "STATE", "DEVICE", "WEIGHTS", "SLOTS",
           "IN USE", "QUEUED", "UNTIL");
    size_t i;
    json_t *m;
    json_array_foreach(models, i, m) {
        const char *state = json_string_value(json_object_get(m, "state"));
        json_t *exp = json_object_get(m, "expires_in_s");
        char until[64] = "-";
        if (json_is_number(exp))
            snprintf(until, sizeof until, "%.0f s", json_number_value(exp));
        else if (json_is_true(json_object_get(m, "pinned")))
            snprintf(until, sizeof until, "forever");
        json_t *tw = json_object_get(m, "cpu_twin");
        if (json_is_object(tw)) /* the CPU twin of a device model (gpu_fallback cpu) */
            snprintf(until + strlen(until), sizeof until - strlen(until), "; cpu twin %s",
                     str_or(tw, "state", "?"));
        printf("%-16s %-8s %-7s %6.0f MiB %6.0f MiB %3lld/%-3lld %8lld %s\n",
               json_string_value(json_object_get(m, "id")), state ? state : "?",
               str_or(m, "device", "cpu"),
               mib(json_integer_value(json_object_get(m, "weights_bytes"))),
               mib(json_integer_value(json_object_get(m, "slots_bytes"))),
               (long long)json_integer_value(json_object_get(m, "slots_in_use")),
               (long long)json_integer_value(json_object_get(m, "max_parallel")),
               (long long)json_integer_value(json_object_get(m, "queued")), until);
    }
    json_t *b = json_object_get(root, "memory");
    if (json_is_object(b))
        printf("memory: budget %.0f MiB, used %.0f MiB, free %.0f MiB\n",
               mib(json_integer_value(json_object_get(b, "budget_bytes"))),
               mib(json_integer_value(json_object_get(b, "used_bytes"))),
               mib(json_integer_value(json_object_get(b, "free_bytes"))));
    print_devices(root);
    print_backends(root);
    rc = 0;
done:
    json_decref(root);
    asr_buf_free(&body);
    return rc;
}
