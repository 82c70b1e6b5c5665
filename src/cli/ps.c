/* cli: `asrd ps`: what a running server holds in memory (GET /api/ps), like `ollama ps`. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/core.h"

#define USAGE "usage: asrd ps [--url http://127.0.0.1:8080] [--api-key KEY] [--json]\n"

static double mib(json_int_t b) { return (double)b / (1024.0 * 1024.0); }

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
    printf("%-16s %-8s %10s %10s %7s %8s %s\n", "NAME", "STATE", "WEIGHTS", "SLOTS", "IN USE",
           "QUEUED", "UNTIL");
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
        printf("%-16s %-8s %6.0f MiB %6.0f MiB %3lld/%-3lld %8lld %s\n",
               json_string_value(json_object_get(m, "id")), state ? state : "?",
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
    rc = 0;
done:
    json_decref(root);
    asr_buf_free(&body);
    return rc;
}
