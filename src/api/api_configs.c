/* api: the admin API over the ASR backends (docs/API.md, "ASR backends"):
 *   GET/POST /api/asr-configs, GET/PUT/PATCH/DELETE /api/asr-configs/{id},
 *   POST /api/asr-configs/{id}/default, POST /api/asr-configs/{id}/test,
 *   GET /api/asr-configs/{id}/health.
 * JSON in and out; validation is the store's (one transaction per change, so a refused change
 * writes nothing), and its "field: reason" messages become 400s naming the field. The api key of
 * a backend is write-only: responses say has_api_key. Every change reloads the router.
 *
 * The admin role: when admin_keys or api_keys are configured, these routes need
 * `Authorization: Bearer <one of admin_keys>` (403 otherwise; the http layer has already
 * answered 401 to a request without any valid key). With no keys at all they are open, as the
 * rest of the API is (the default listens on loopback only). */
#include <jansson.h>
#include <limits.h>
#include <string.h>
#include <strings.h>

#include "api/api_int.h"

/* Constant-time membership of `key` in a comma list. */
static bool key_in(const char *key, const char *list) {
    bool found = false;
    size_t kn = strlen(key);
    const char *p = list;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        unsigned char d = (unsigned char)(n != kn);
        for (size_t i = 0; i < n; i++)
            d |= (unsigned char)(p[i] ^ key[i < kn ? i : 0]);
        found |= d == 0 && n > 0;
        p += n + (e != NULL);
    }
    return found;
}

bool asr__api_admin_ok(asr_http_req_t *req, const asr_api_t *api) {
    const char *admin = api->cfg->admin_keys, *keys = api->cfg->api_keys;
    if (!admin[0] && !keys[0])
        return true;
    const char *h = asr_http_req_header(req, "Authorization");
    const char *key = h && !strncasecmp(h, "Bearer ", 7) ? h + 7 : "";
    while (*key == ' ')
        key++;
    if (admin[0] && *key && key_in(key, admin))
        return true;
    asr_http_respond_error(req, 403, NULL, "admin_required",
                           admin[0] ? "this endpoint needs an admin key (one of admin_keys)"
                                    : "this endpoint needs an admin key: set admin_keys");
    return false;
}

static void store_error(asr_http_req_t *req, asr_api_t *api, asr_err_t e) {
    asr__api_store_error(req, api, e, "id");
}

static json_t *config_json(asr_api_t *api, const asr_store_config_t *c) {
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer((json_int_t)c->id));
    json_object_set_new(o, "object", json_string("asr_config"));
    json_object_set_new(o, "name", json_string(c->name));
    json_object_set_new(o, "kind", json_string(c->kind));
    json_object_set_new(o, "api_url", json_string(c->api_url ? c->api_url : ""));
    json_object_set_new(o, "model_name", json_string(c->model_name ? c->model_name : ""));
    json_object_set_new(o, "aliases", json_string(c->aliases ? c->aliases : ""));
    json_object_set_new(o, "allow_model_substitution", json_boolean(c->allow_model_substitution));
    json_object_set_new(o, "has_api_key", json_boolean(c->has_api_key));
    json_object_set_new(o, "is_active", json_boolean(c->is_active));
    json_object_set_new(o, "is_default", json_boolean(c->is_default));
    json_object_set_new(o, "priority", json_integer(c->priority));
    json_object_set_new(o, "timeout_ms", json_integer(c->timeout_ms));
    json_object_set_new(o, "max_parallel", json_integer(c->max_parallel));
    json_object_set_new(o, "created_at", json_integer((json_int_t)c->created_at));
    json_object_set_new(o, "updated_at", json_integer((json_int_t)c->updated_at));
    json_t *st = json_object();
    asr_route_backend_status_t bs = {0};
    if (api->router)
        asr_route_backend_status(api->router, c->id, &bs);
    json_object_set_new(st, "in_rotation", json_boolean(bs.loaded));
    json_object_set_new(st, "breaker", json_string(asr_route_breaker_state_name(bs.breaker)));
    json_object_set_new(st, "consecutive_failures", json_integer(bs.consecutive_failures));
    json_object_set_new(st, "outstanding", json_integer(bs.outstanding));
    json_object_set_new(st, "requests", json_integer((json_int_t)bs.n_requests));
    json_object_set_new(st, "failures", json_integer((json_int_t)bs.n_failures));
    json_object_set_new(st, "breaker_opened", json_integer((json_int_t)bs.n_opened));
    asr_store_health_t *h = NULL;
    size_t nh = 0;
    if (asr_store_health_list(api->store, c->id, 1, &h, &nh) == ASR_OK && nh) {
        json_t *lc = json_object();
        json_object_set_new(lc, "checked_at", json_integer((json_int_t)h[0].checked_at));
        json_object_set_new(lc, "ok", json_boolean(h[0].ok));
        json_object_set_new(lc, "latency_ms", json_integer(h[0].latency_ms));
        json_object_set_new(lc, "error", h[0].error ? json_string(h[0].error) : json_null());
        json_object_set_new(st, "last_check", lc);
    }
    asr_store_health_free(h, nh);
    json_object_set_new(o, "status", st);
    return o;
}

/* A config id that is not a positive integer is a 400 (docs/API.md). */
static bool path_id(asr_http_req_t *req, int64_t *id) { return asr__api_path_id(req, 400, id); }

/* The admin check, then the {id} of the path. */
static bool admin_id(asr_http_req_t *req, const asr_api_t *api, int64_t *id) {
    return asr__api_admin_ok(req, api) && path_id(req, id);
}

static void respond_config(asr_http_req_t *req, asr_api_t *api, int64_t id, int status) {
    asr_store_config_t c = {0};
    asr_err_t e = asr_store_config_get(api->store, id, &c);
    if (e != ASR_OK) {
        store_error(req, api, e);
        return;
    }
    asr__api_respond_json(req, status, config_json(api, &c));
    asr_store_config_clear(&c);
}

#define BAD(field, ...)                                                                            \
    do {                                                                                           \
        asr_http_respond_error(req, 400, field, "invalid_value", __VA_ARGS__);                     \
        goto fail;                                                                                 \
    } while (0)

/* Parses a create/update body into *in (strings borrowed from *root, which the caller frees).
 * Answers 400 naming the field and returns false on bad input. */
static bool parse_input(asr_http_req_t *req, json_t **root, asr_store_config_input_t *in) {
    static const char *strs[] = {"name", "kind", "api_url", "api_key", "model_name", "aliases"};
    static const char *bools[] = {"is_active", "is_default", "allow_model_substitution"};
    static const char *ints[] = {"priority", "timeout_ms", "max_parallel"};
    static const char *readonly[] = {"id",         "object",     "has_api_key",
                                     "created_at", "updated_at", "status"};
    const char **sdst[] = {&in->name,    &in->kind,       &in->api_url,
                           &in->api_key, &in->model_name, &in->aliases};
    int *bdst[] = {&in->is_active, &in->is_default, &in->allow_model_substitution};
    int *idst[] = {&in->priority, &in->timeout_ms, &in->max_parallel};
    size_t len;
    const char *body = asr_http_req_body(req, &len);
    json_error_t je;
    asr_store_config_input_init(in);
    *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (!json_is_object(*root))
        BAD(NULL, "the body must be a JSON object%s%s", *root ? "" : ": ", *root ? "" : je.text);
    const char *key;
    json_t *v;
    json_object_foreach(*root, key, v) {
        bool known = false;
        for (size_t i = 0; i < 6 && !known; i++)
            if (!strcmp(key, strs[i])) {
                known = true;
                if (json_is_null(v) && i >= 3)
                    *sdst[i] = ""; /* api_key/model_name/aliases null: clear */
                else if (!json_is_string(v))
                    BAD(key, "%s must be a string", key);
                else if (strlen(json_string_value(v)) != json_string_length(v))
                    BAD(key, "%s must not contain NUL characters", key);
                else
                    *sdst[i] = json_string_value(v);
            }
        for (size_t i = 0; i < 3 && !known; i++)
            if (!strcmp(key, bools[i])) {
                known = true;
                if (!json_is_boolean(v))
                    BAD(key, "%s must be true or false", key);
                *bdst[i] = json_is_true(v);
            }
        for (size_t i = 0; i < 3 && !known; i++)
            if (!strcmp(key, ints[i])) {
                known = true;
                if (!json_is_integer(v) || json_integer_value(v) < INT_MIN + 1 ||
                    json_integer_value(v) > INT_MAX)
                    BAD(key, "%s must be an integer", key);
                *idst[i] = (int)json_integer_value(v);
            }
        for (size_t i = 0; i < sizeof readonly / sizeof *readonly && !known; i++)
            known = !strcmp(key, readonly[i]); /* a GET object sent back: ignored */
        if (!known)
            BAD(key, "unknown field '%.60s'", key);
    }
    return true;
fail:
    json_decref(*root);
    *root = NULL;
    return false;
}

/* Moving the default is its own action (POST …/default, or ?default=1 on a create or an update):
 * a second default in a body alone is refused, so a stray flag cannot silently reroute all
 * traffic. */
static bool default_conflict(asr_http_req_t *req, asr_api_t *api, int64_t id) {
    asr_store_config_t *cs = NULL;
    size_t n = 0;
    bool conflict = false;
    if (asr_store_config_list(api->store, false, &cs, &n) == ASR_OK)
        for (size_t i = 0; i < n; i++)
            conflict |= cs[i].is_default && cs[i].id != id;
    asr_store_configs_free(cs, n);
    if (conflict)
        asr_http_respond_error(req, 400, "is_default", "invalid_value",
                               "is_default: another config is the default; make this one the "
                               "default with POST /api/asr-configs/{id}/default, or send this "
                               "request with ?default=1");
    return conflict;
}

/* After a store change `e` to config `id`: answers the error and returns false, or reloads the
 * router, logs msg=asr_config_<what> and returns true (the caller answers). */
static bool changed(asr_http_req_t *req, asr_api_t *api, asr_err_t e, int64_t id,
                    const char *what) {
    if (e != ASR_OK) {
        store_error(req, api, e);
        return false;
    }
    if (api->router)
        asr_route_reload(api->router);
    ASR_LOG(ASR_LOG_INFO, "msg=asr_config_%s id=%lld req=%s", what, (long long)id,
            asr_http_req_id(req));
    return true;
}

void asr__api_configs_list(asr_http_req_t *req, void *ud) {
    asr_api_t *api = ud;
    if (!asr__api_admin_ok(req, api))
        return;
    asr_store_config_t *cs = NULL;
    size_t n = 0;
    asr_err_t e = asr_store_config_list(api->store, false, &cs, &n);
    if (e != ASR_OK) {
        store_error(req, api, e);
        return;
    }
    json_t *data = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(data, config_json(api, &cs[i]));
    asr_store_configs_free(cs, n);
    json_t *root = json_object();
    json_object_set_new(root, "object", json_string("list"));
    json_object_set_new(root, "data", data);
    asr__api_respond_json(req, 200, root);
}

/* POST /api/asr-configs (create) and PUT/PATCH /api/asr-configs/{id} (update). ?default=1 makes
 * the row the default: the store takes the default from the old one in the same transaction. */
static void config_write(asr_http_req_t *req, asr_api_t *api, bool create) {
    asr_store_config_input_t in;
    json_t *root = NULL;
    int64_t id = 0;
    long make_default = 0;
    if (!asr__api_admin_ok(req, api) || (!create && !path_id(req, &id)) ||
        !asr__api_query_int(req, "default", 0, 0, 1, &make_default) ||
        !parse_input(req, &root, &in))
        return;
    if (make_default)
        in.is_default = 1;
    if (create && !in.name) {
        asr_http_respond_error(req, 400, "name", "invalid_value", "name: required");
    } else if (make_default || in.is_default != 1 || !default_conflict(req, api, id)) {
        asr_err_t e = create ? asr_store_config_create(api->store, &in, &id)
                             : asr_store_config_update(api->store, id, &in);
        if (changed(req, api, e, id, create ? "created" : "updated"))
            respond_config(req, api, id, create ? 201 : 200);
    }
    json_decref(root);
}

void asr__api_configs_create(asr_http_req_t *req, void *ud) { config_write(req, ud, true); }
void asr__api_config_update(asr_http_req_t *req, void *ud) { config_write(req, ud, false); }

void asr__api_config_get(asr_http_req_t *req, void *ud) {
    asr_api_t *api = ud;
    int64_t id;
    if (admin_id(req, api, &id))
        respond_config(req, api, id, 200);
}

/* DELETE /api/asr-configs/{id} and POST /api/asr-configs/{id}/default. */
static void config_action(asr_http_req_t *req, asr_api_t *api, bool del) {
    int64_t id;
    if (!admin_id(req, api, &id))
        return;
    asr_err_t e = del ? asr_store_config_delete(api->store, id)
                      : asr_store_config_set_default(api->store, id);
    if (!changed(req, api, e, id, del ? "deleted" : "default"))
        return;
    if (!del) {
        respond_config(req, api, id, 200);
        return;
    }
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer((json_int_t)id));
    json_object_set_new(o, "object", json_string("asr_config.deleted"));
    json_object_set_new(o, "deleted", json_true());
    asr__api_respond_json(req, 200, o);
}

void asr__api_config_delete(asr_http_req_t *req, void *ud) { config_action(req, ud, true); }
void asr__api_config_default(asr_http_req_t *req, void *ud) { config_action(req, ud, false); }

void asr__api_config_test(asr_http_req_t *req, void *ud) {
    asr_api_t *api = ud;
    int64_t id;
    if (!admin_id(req, api, &id))
        return;
    if (!api->router) {
        asr_http_respond_error(req, 503, NULL, "not_ready", "the router is not running");
        return;
    }
    asr_route_test_result_t t;
    asr_err_t e = asr_route_test(api->router, id, &t);
    if (e != ASR_OK) {
        store_error(req, api, e);
        return;
    }
    asr_store_config_t c = {0};
    bool have = asr_store_config_get(api->store, id, &c) == ASR_OK;
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer((json_int_t)id));
    json_object_set_new(o, "backend", have ? json_string(c.name) : json_null());
    json_object_set_new(o, "ok", json_boolean(t.ok));
    json_object_set_new(o, "status", t.status ? json_integer(t.status) : json_null());
    json_object_set_new(o, "latency_ms", json_integer(t.latency_ms));
    json_object_set_new(o, "text", t.ok ? json_string(t.text) : json_null());
    json_object_set_new(o, "model", t.model[0] ? json_string(t.model) : json_null());
    json_object_set_new(o, "error", t.ok ? json_null() : json_string(t.error));
    asr_store_config_clear(&c);
    asr__api_respond_json(req, 200, o);
}

void asr__api_config_health(asr_http_req_t *req, void *ud) {
    asr_api_t *api = ud;
    int64_t id;
    if (!admin_id(req, api, &id))
        return;
    long limit;
    if (!asr__api_query_int(req, "limit", 50, 1, 1000, &limit))
        return;
    asr_store_config_t c = {0};
    asr_err_t e = asr_store_config_get(api->store, id, &c);
    asr_store_config_clear(&c);
    asr_store_health_t *h = NULL;
    size_t n = 0;
    if (e == ASR_OK)
        e = asr_store_health_list(api->store, id, (int)limit, &h, &n);
    if (e != ASR_OK) {
        store_error(req, api, e);
        return;
    }
    json_t *data = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_object();
        json_object_set_new(o, "checked_at", json_integer((json_int_t)h[i].checked_at));
        json_object_set_new(o, "ok", json_boolean(h[i].ok));
        json_object_set_new(o, "latency_ms", json_integer(h[i].latency_ms));
        json_object_set_new(o, "error", h[i].error ? json_string(h[i].error) : json_null());
        json_array_append_new(data, o);
    }
    asr_store_health_free(h, n);
    json_t *root = json_object();
    json_object_set_new(root, "object", json_string("list"));
    json_object_set_new(root, "config_id", json_integer((json_int_t)id));
    json_object_set_new(root, "data", data);
    asr__api_respond_json(req, 200, root);
}
