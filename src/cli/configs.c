/* cli: `asrd configs`: the ASR backends of a running server, through its admin API
 * (/api/asr-configs, docs/API.md): list, add, update, rm, default, test. A backend is named by
 * its name or its id. Errors are one line on stderr (the server's message), exit status 1; bad
 * usage exits 2. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli/cli.h"
#include "core/core.h"

#define USAGE                                                                                      \
    "usage: asrd configs [--url URL] [--api-key ADMIN_KEY] [--json] COMMAND\n"                     \
    "  list                          the backends, default first\n"                                \
    "  add NAME [--kind local|openai|whisper.cpp] [--api-url URL] [--backend-key KEY]\n"           \
    "      [--model NAME] [--priority N] [--timeout-ms N] [--max-parallel N] [--default]\n"        \
    "      [--inactive] [--aliases A,B] [--no-substitution|--substitution]\n"                      \
    "  update NAME|ID [the options of add, and --active]\n"                                        \
    "  rm NAME|ID                    delete a backend\n"                                           \
    "  default NAME|ID               make it the default\n"                                        \
    "  test NAME|ID                  send the built-in speech clip; report latency and text\n"     \
    "--kind defaults to openai with --api-url, else local; --default makes the backend the\n"      \
    "default in the same change. URL defaults to $ASRD_URL or http://127.0.0.1:8080, ADMIN_KEY\n"  \
    "to $ASRD_API_KEY.\n"

typedef struct {
    const char *url, *key;
    bool json;
} conn_t;

/* One request; *root gets the parsed JSON answer (may be NULL). Returns the HTTP status, or 0
 * with a message printed when the server cannot be reached. */
static long request(const conn_t *c, const char *method, const char *path, json_t *body,
                    json_t **root) {
    asr_buf_t out;
    asr_buf_init(&out);
    char *js = body ? json_dumps(body, JSON_COMPACT) : NULL;
    char err[512];
    /* a test may wait for a slow backend */
    long status =
        asr__cli_api_request(c->url, c->key, method, path, js, 660L, &out, err, sizeof err);
    free(js);
    json_error_t je;
    *root = status ? json_loadb(out.data ? out.data : "", out.len, 0, &je) : NULL;
    if (!status)
        fprintf(stderr, "asrd: configs: %s\n", err);
    asr_buf_free(&out);
    return status;
}

/* Prints the server's error message for a non-2xx answer, with what to do in this CLI's terms
 * when the key is at fault (the server's own words are for HTTP clients). */
static int fail_with(long status, json_t *root) {
    if (status == 0)
        return 1;
    json_t *e = json_object_get(root, "error");
    const char *m = json_string_value(json_object_get(e, "message"));
    const char *code = json_string_value(json_object_get(e, "code"));
    const char *hint = "";
    if (status == 401) /* its message tells of an Authorization header */
        m = "no valid API key";
    if (status == 401 || (code && !strcmp(code, "admin_required")))
        hint = "; pass an admin key with --api-key or $ASRD_API_KEY";
    fprintf(stderr, "asrd: configs: %s%s (HTTP %ld)\n", m ? m : "unexpected answer", hint, status);
    return 1;
}

static void print_json(json_t *root) {
    char *js = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    printf("%s\n", js ? js : "null");
    free(js);
}

/* The id of the backend named `ref` (a name or an id); 0 when not found (message printed). */
static long long resolve(const conn_t *c, const char *ref) {
    char *end;
    long long id = strtoll(ref, &end, 10);
    if (*ref && !*end && id > 0)
        return id;
    json_t *root;
    long st = request(c, "GET", "/api/asr-configs", NULL, &root);
    id = 0;
    if (st != 200)
        fail_with(st, root);
    else {
        size_t i;
        json_t *v;
        json_array_foreach(json_object_get(root, "data"), i, v) {
            const char *name = json_string_value(json_object_get(v, "name"));
            if (name && !strcmp(name, ref))
                id = json_integer_value(json_object_get(v, "id"));
        }
        if (!id)
            fprintf(stderr, "asrd: configs: no backend named '%s' (see asrd configs list)\n", ref);
    }
    json_decref(root);
    return id;
}

static int cmd_list(const conn_t *c) {
    json_t *root;
    long st = request(c, "GET", "/api/asr-configs", NULL, &root);
    int rc = 0;
    if (st != 200)
        rc = fail_with(st, root);
    else if (c->json)
        print_json(root);
    else {
        printf("%-4s %-20s %-12s %-7s %-6s %-8s %-10s %s\n", "ID", "NAME", "KIND", "DEFAULT",
               "ACTIVE", "PRIORITY", "BREAKER", "URL");
        size_t i;
        json_t *v;
        json_array_foreach(json_object_get(root, "data"), i, v) {
            const char *br =
                json_string_value(json_object_get(json_object_get(v, "status"), "breaker"));
            printf("%-4lld %-20s %-12s %-7s %-6s %-8lld %-10s %s\n",
                   (long long)json_integer_value(json_object_get(v, "id")),
                   json_string_value(json_object_get(v, "name")),
                   json_string_value(json_object_get(v, "kind")),
                   json_is_true(json_object_get(v, "is_default")) ? "yes" : "",
                   json_is_true(json_object_get(v, "is_active")) ? "yes" : "no",
                   (long long)json_integer_value(json_object_get(v, "priority")),
                   json_is_true(json_object_get(json_object_get(v, "status"), "in_rotation"))
                       ? (br ? br : "?")
                       : "-",
                   json_string_value(json_object_get(v, "api_url")));
        }
    }
    json_decref(root);
    return rc;
}

/* POST/PUT and print the resulting config. */
static int cmd_write(const conn_t *c, const char *method, const char *path, json_t *body,
                     const char *verb) {
    json_t *root;
    long st = request(c, method, path, body, &root);
    int rc = 0;
    if (st < 200 || st >= 300)
        rc = fail_with(st, root);
    else if (c->json)
        print_json(root);
    else
        printf("%s %s (id %lld)\n", verb, json_string_value(json_object_get(root, "name")),
               (long long)json_integer_value(json_object_get(root, "id")));
    json_decref(root);
    return rc;
}

static int cmd_test(const conn_t *c, long long id) {
    char path[96];
    snprintf(path, sizeof path, "/api/asr-configs/%lld/test", id);
    json_t *root;
    long st = request(c, "POST", path, NULL, &root);
    int rc = 0;
    if (st != 200)
        rc = fail_with(st, root);
    else if (c->json) {
        print_json(root);
        rc = json_is_true(json_object_get(root, "ok")) ? 0 : 1;
    } else if (json_is_true(json_object_get(root, "ok")))
        printf("ok: %s answered in %lld ms: %s\n",
               json_string_value(json_object_get(root, "backend")),
               (long long)json_integer_value(json_object_get(root, "latency_ms")),
               json_string_value(json_object_get(root, "text")));
    else {
        fprintf(stderr, "asrd: configs: test of %s failed after %lld ms: %s\n",
                json_string_value(json_object_get(root, "backend")),
                (long long)json_integer_value(json_object_get(root, "latency_ms")),
                json_string_value(json_object_get(root, "error")));
        rc = 1;
    }
    json_decref(root);
    return rc;
}

/* The options that set a field of the backend sent by add/update: its JSON key and type
 * (s: string, i: integer, t/f: true/false). */
static const struct {
    int code;
    const char *key;
    char type;
} FIELDS[] = {
    {'K', "kind", 's'},
    {'U', "api_url", 's'},
    {'B', "api_key", 's'},
    {'m', "model_name", 's'},
    {'p', "priority", 'i'},
    {'t', "timeout_ms", 'i'},
    {'P', "max_parallel", 'i'},
    {'d', "is_default", 't'},
    {'i', "is_active", 'f'},
    {'a', "is_active", 't'},
    {'A', "aliases", 's'},
    {'s', "allow_model_substitution", 't'},
    {'S', "allow_model_substitution", 'f'},
};

/* Option ch with argument v when it sets a field: 1 (set in o), -1 when an integer field's
 * argument is not one (message printed); 0 when ch is another option. */
static int set_field(json_t *o, int ch, const char *v) {
    for (size_t i = 0; i < sizeof FIELDS / sizeof *FIELDS; i++) {
        if (FIELDS[i].code != ch)
            continue;
        const char *key = FIELDS[i].key;
        if (FIELDS[i].type == 's') {
            json_object_set_new(o, key, json_string(v));
        } else if (FIELDS[i].type == 'i') {
            char *end;
            long long x = strtoll(v, &end, 10);
            if (!*v || *end) {
                fprintf(stderr, "asrd: configs: --%s needs an integer, not '%s'\n", key, v);
                return -1;
            }
            json_object_set_new(o, key, json_integer(x));
        } else {
            json_object_set_new(o, key, json_boolean(FIELDS[i].type == 't'));
        }
        return 1;
    }
    return 0;
}

/* add: --api-url without --kind is an OpenAI-compatible server when it is an http(s) URL (a
 * local row would silently ignore the URL); anything else is refused (message printed, false). */
static bool infer_kind(json_t *fields) {
    const char *url = json_string_value(json_object_get(fields, "api_url"));
    if (!url || json_object_get(fields, "kind"))
        return true;
    if (!strncasecmp(url, "http://", 7) || !strncasecmp(url, "https://", 8)) {
        json_object_set_new(fields, "kind", json_string("openai"));
        return true;
    }
    fprintf(stderr,
            "asrd: configs: --api-url '%.200s' is not an http:// or https:// URL; give --kind "
            "openai or whisper.cpp with the server's URL\n",
            url);
    return false;
}

int asr_cli_configs(int argc, char **argv) {
    static const struct option opts[] = {{"url", required_argument, 0, 'u'},
                                         {"api-key", required_argument, 0, 'k'},
                                         {"json", no_argument, 0, 'j'},
                                         {"kind", required_argument, 0, 'K'},
                                         {"api-url", required_argument, 0, 'U'},
                                         {"backend-key", required_argument, 0, 'B'},
                                         {"model", required_argument, 0, 'm'},
                                         {"priority", required_argument, 0, 'p'},
                                         {"timeout-ms", required_argument, 0, 't'},
                                         {"max-parallel", required_argument, 0, 'P'},
                                         {"default", no_argument, 0, 'd'},
                                         {"inactive", no_argument, 0, 'i'},
                                         {"active", no_argument, 0, 'a'},
                                         {"aliases", required_argument, 0, 'A'},
                                         {"substitution", no_argument, 0, 's'},
                                         {"no-substitution", no_argument, 0, 'S'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    conn_t c = {getenv("ASRD_URL"), getenv("ASRD_API_KEY"), false};
    if (!c.url || !*c.url)
        c.url = "http://127.0.0.1:8080";
    json_t *fields = json_object();
    int rc = 2, ch;
    bool ok = true;
    optind = 1;
    while (ok && (ch = getopt_long(argc, argv, "u:k:jh", opts, NULL)) != -1) {
        int k = set_field(fields, ch, optarg);
        if (k) {
            ok = k > 0;
            continue;
        }
        switch (ch) {
        case 'u':
            c.url = optarg;
            break;
        case 'k':
            c.key = optarg;
            break;
        case 'j':
            c.json = true;
            break;
        case 'h':
            fputs(USAGE, stdout);
            json_decref(fields);
            return 0;
        default:
            ok = false;
        }
    }
    const char *cmd = optind < argc ? argv[optind] : NULL;
    const char *arg = optind + 1 < argc ? argv[optind + 1] : NULL;
    static const char *cmds[] = {"list", "add", "update", "rm", "default", "test"};
    bool known = false;
    for (size_t i = 0; cmd && i < sizeof cmds / sizeof cmds[0]; i++)
        known |= !strcmp(cmd, cmds[i]);
    int need = cmd && strcmp(cmd, "list") ? 2 : 1;
    if (!ok || !known || argc - optind != need) {
        if (cmd && !known)
            fprintf(stderr, "asrd: configs: unknown command '%s'\n", cmd);
        fputs(USAGE, stderr);
        goto done;
    }
    if (!strcmp(cmd, "add") && !infer_kind(fields))
        goto done;
    /* --default moves the default in the write's own transaction (?default=1), not in a second
     * request that could fail after the first */
    const char *as_default =
        json_is_true(json_object_get(fields, "is_default")) ? "?default=1" : "";
    json_object_del(fields, "is_default");
    rc = 1;
    char path[96];
    if (!strcmp(cmd, "list"))
        rc = cmd_list(&c);
    else if (!strcmp(cmd, "add")) {
        json_object_set_new(fields, "name", json_string(arg));
        snprintf(path, sizeof path, "/api/asr-configs%s", as_default);
        rc = cmd_write(&c, "POST", path, fields, "added");
    } else {
        long long id = resolve(&c, arg);
        if (!id)
            goto done;
        snprintf(path, sizeof path, "/api/asr-configs/%lld", id);
        if (!strcmp(cmd, "update")) {
            strncat(path, as_default, sizeof path - strlen(path) - 1);
            rc = cmd_write(&c, "PATCH", path, fields, "updated");
        } else if (!strcmp(cmd, "default")) {
            strncat(path, "/default", sizeof path - strlen(path) - 1);
            rc = cmd_write(&c, "POST", path, NULL, "default is now");
        } else if (!strcmp(cmd, "rm")) {
            json_t *root;
            long st = request(&c, "DELETE", path, NULL, &root);
            rc = st == 200 ? 0 : fail_with(st, root);
            if (!rc)
                printf("removed %s (id %lld)\n", arg, id);
            json_decref(root);
        } else
            rc = cmd_test(&c, id);
    }
done:
    json_decref(fields);
    return rc;
}
