/* svc: the service object (models and their aliases) and the request: every option's one
 * validation, whether it came as a form field's text or as a JSON value, and the checks that
 * depend on the model that will serve. Values out of range are refused, never clamped: the same
 * request is accepted or refused the same way over HTTP, in a job and by Test connection.
 *
 * Invariant: a finished request (asr_svc_request_finish) holds only values the engine accepts, so
 * the scheduler never refuses it as invalid. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/config.h"
#include "svc/svc_int.h"

#define MAX_TEXT_OPT 16384 /* prompt, hotwords: bytes */

asr_err_t asr_svc_fail(asr_svc_error_t *err, asr_err_t code, const char *param, const char *fmt,
                       ...) {
    err->code = code;
    snprintf(err->param, sizeof err->param, "%s", param ? param : "");
    err->retry_after = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return code;
}

/* ---- the service and its models ---- */

static asr_err_t parse_aliases(asr_svc_t *svc, const char *list, char *errbuf, size_t errbuf_len) {
    char **items;
    int n;
    asr_config_list_split(list ? list : "", &items, &n);
    svc->alias_names = asr_xcalloc((size_t)n + 1, sizeof *svc->alias_names);
    svc->alias_targets = asr_xcalloc((size_t)n + 1, sizeof *svc->alias_targets);
    asr_err_t rc = ASR_OK;
    for (int i = 0; i < n && rc == ASR_OK; i++) {
        char *eq = strchr(items[i], '=');
        int target = 0; /* ALIAS alone: the default model */
        if (eq) {
            *eq = 0;
            target = asr_sched_model_find(svc->sched, eq + 1);
            if (target < 0) {
                asr_errf(errbuf, errbuf_len,
                         "model alias '%s' names model '%s', which is not in --models", items[i],
                         eq + 1);
                rc = ASR_ERR_INVALID;
                break;
            }
        }
        if (asr_sched_model_find(svc->sched, items[i]) >= 0) {
            asr_errf(errbuf, errbuf_len, "model alias '%s' is also a model id", items[i]);
            rc = ASR_ERR_INVALID;
            break;
        }
        svc->alias_names[svc->n_aliases] = asr_xstrdup(items[i]);
        svc->alias_targets[svc->n_aliases++] = target;
    }
    asr_config_list_free(items, n);
    return rc;
}

asr_err_t asr_svc_create(const asr_svc_params_t *p, asr_svc_t **out, char *errbuf,
                         size_t errbuf_len) {
    *out = NULL;
    asr_svc_t *svc = asr_xcalloc(1, sizeof *svc);
    svc->sched = p->sched;
    svc->beam_size = p->beam_size < 1 ? 1 : p->beam_size > 8 ? 8 : p->beam_size; /* engine max */
    svc->vad = p->vad;
    svc->max_audio_seconds = p->max_audio_seconds;
    svc->chinese_script = p->chinese_script;
    asr_err_t rc = parse_aliases(svc, p->model_aliases, errbuf, errbuf_len);
    if (rc != ASR_OK) {
        asr_svc_destroy(svc);
        return rc;
    }
    *out = svc;
    return ASR_OK;
}

void asr_svc_destroy(asr_svc_t *svc) {
    if (!svc)
        return;
    for (int i = 0; i < svc->n_aliases; i++)
        free(svc->alias_names[i]);
    free(svc->alias_names);
    free(svc->alias_targets);
    free(svc);
}

asr_sched_t *asr_svc_sched(const asr_svc_t *svc) { return svc->sched; }

int asr_svc_resolve_model(const asr_svc_t *svc, const char *name) {
    if (!name || !*name)
        return 0;
    int i = asr_sched_model_find(svc->sched, name);
    if (i >= 0)
        return i;
    for (int k = 0; k < svc->n_aliases; k++)
        if (!strcmp(svc->alias_names[k], name))
            return svc->alias_targets[k];
    return -1;
}

int asr_svc_n_aliases(const asr_svc_t *svc) { return svc->n_aliases; }

const char *asr_svc_alias(const asr_svc_t *svc, int k, int *target) {
    *target = svc->alias_targets[k];
    return svc->alias_names[k];
}

/* ---- the request ---- */

void asr_svc_request_init(const asr_svc_t *svc, asr_svc_request_t *rq) {
    memset(rq, 0, sizeof *rq);
    rq->beam_size = svc->beam_size;
    rq->vad = svc->vad;
    rq->word_timestamps = true;
    rq->keep_alive_s = ASR_SCHED_KEEP_ALIVE_DEFAULT;
    rq->allow_fallback = true;
    rq->max_audio_seconds = svc->max_audio_seconds;
}

void asr_svc_request_clear(asr_svc_request_t *rq) {
    free(rq->model_name);
    free(rq->language);
    free(rq->prompt);
    free(rq->hotwords);
    memset(rq, 0, sizeof *rq);
}

/* One option's value, as a form gave it (text) or a JSON document did (json). */
typedef struct {
    const char *name;
    const char *text;
    const json_t *json;
    char shown[48]; /* the value quoted in messages */
} val_t;

#define BAD(v, what)                                                                               \
    asr_svc_fail(err, ASR_ERR_INVALID, (v)->name, "%s must be %s, not %s", (v)->name, what,        \
                 (v)->shown)

static bool parse_bool(const val_t *v, bool *out) {
    if (v->json) {
        if (!json_is_boolean(v->json))
            return false;
        *out = json_is_true(v->json);
        return true;
    }
    if (!strcasecmp(v->text, "true") || !strcmp(v->text, "1"))
        *out = true;
    else if (!strcasecmp(v->text, "false") || !strcmp(v->text, "0"))
        *out = false;
    else
        return false;
    return true;
}

static bool parse_long(const val_t *v, long *out) {
    if (v->json) {
        if (!json_is_integer(v->json))
            return false;
        *out = (long)json_integer_value(v->json);
        return true;
    }
    char *end;
    errno = 0;
    *out = strtol(v->text, &end, 10);
    return *v->text && !*end && errno == 0;
}

static bool parse_double(const val_t *v, double *out) {
    if (v->json) {
        if (!json_is_number(v->json))
            return false;
        *out = json_number_value(v->json);
        return true;
    }
    char *end;
    *out = strtod(v->text, &end);
    return *v->text && !*end && isfinite(*out);
}

/* A string option: NULL (unset) for "", else a copy. */
static bool parse_string(const val_t *v, char **dst) {
    const char *s = v->json ? json_string_value(v->json) : v->text;
    if (!s || strlen(s) > MAX_TEXT_OPT)
        return false;
    free(*dst);
    *dst = *s ? asr_xstrdup(s) : NULL;
    return true;
}

/* keep_alive: seconds (or 30s / 5m / 1h), -1 = until evicted, 0 = unload when idle. */
static bool parse_keep_alive(const val_t *v, double *out) {
    double k;
    const char *unit = "";
    char *end = NULL;
    if (v->json && json_is_number(v->json)) {
        k = json_number_value(v->json);
    } else {
        const char *s = v->json ? json_string_value(v->json) : v->text;
        if (!s || !*s)
            return false;
        k = strtod(s, &end);
        if (end == s)
            return false;
        unit = end;
    }
    double mul = !strcmp(unit, "") || !strcmp(unit, "s") ? 1
                 : !strcmp(unit, "m")                    ? 60
                 : !strcmp(unit, "h")                    ? 3600
                                                         : 0;
    if (!isfinite(k) || mul == 0 || k < -1 || k * mul > 31536000)
        return false;
    *out = k < 0 ? -1.0 : k * mul;
    return true;
}

/* One of `choices` (NULL-terminated): *out = its index + 1; "" leaves *out 0 (unset). */
static asr_err_t set_choice(const val_t *v, const char *const *choices, const char *what, int *out,
                            asr_svc_error_t *err) {
    const char *s = v->json ? json_string_value(v->json) : v->text;
    if (!s)
        return BAD(v, what);
    if (!*s)
        return ASR_OK; /* unset */
    for (int i = 0; choices[i]; i++)
        if (!strcmp(s, choices[i])) {
            *out = i + 1;
            return ASR_OK;
        }
    return BAD(v, what);
}

int asr_svc_zh_script_parse(const char *s) {
    static const char *const names[] = {"auto", "simplified", "traditional"};
    for (int i = 0; s && i < 3; i++)
        if (!strcmp(s, names[i]))
            return i; /* the order of asr_zh_script_t */
    return -1;
}

asr_zh_script_t asr_svc_chinese_script(bool set, asr_zh_script_t asked, const char *language,
                                       asr_zh_script_t dflt) {
    if (set)
        return asked;
    if (language && asr_lang_zh_script(language) != ASR_ZH_SCRIPT_AUTO)
        return ASR_ZH_SCRIPT_AUTO; /* the engine reads the tag's script */
    return asr_zh_script_available() ? dflt : ASR_ZH_SCRIPT_AUTO;
}

static asr_err_t set_language(asr_svc_request_t *rq, const val_t *v, asr_svc_error_t *err) {
    const char *s = v->json ? json_string_value(v->json) : v->text;
    if (s && !*s) {
        free(rq->language);
        rq->language = NULL; /* detect */
        return ASR_OK;
    }
    if (!s || !asr_lang_code_normalize(s)) /* accepts "EN", "chinese", "zh-TW" */
        return asr_svc_fail(err, ASR_ERR_INVALID, "language",
                            "language %s is not supported: use an ISO-639-1 code (zh), an "
                            "English name (chinese) or a regional form (zh-CN)",
                            v->shown);
    free(rq->language);
    rq->language = asr_xstrdup(s); /* the engine reads the script a region implies */
    return ASR_OK;
}

/* Numbers: temperature, beam_size, keep_alive. */
static asr_err_t set_number(asr_svc_request_t *rq, const val_t *v, asr_svc_error_t *err) {
    if (!strcmp(v->name, "temperature")) {
        double t;
        if (!parse_double(v, &t) || t < 0.0 || t > 1.0)
            return BAD(v, "a number from 0 to 1");
        rq->temperature = (float)t;
    } else if (!strcmp(v->name, "beam_size")) {
        long b;
        if (!parse_long(v, &b) || b < 1 || b > 8)
            return BAD(v, "an integer from 1 to 8");
        rq->beam_size = (int)b;
    } else {
        if (!parse_keep_alive(v, &rq->keep_alive_s))
            return BAD(v, "seconds (or 30s, 5m, 1h; -1 = forever)");
    }
    return ASR_OK;
}

asr_err_t asr_svc_option(asr_svc_request_t *rq, const char *name, const char *text,
                         const json_t *json, asr_svc_error_t *err) {
    static const char *const names[] = {
        "model",     "language",   "task",       "prompt",   "hotwords",        "temperature",
        "beam_size", "keep_alive", "vad_filter", "fallback", "word_timestamps", "chinese_script"};
    size_t k = 0;
    while (k < sizeof names / sizeof names[0] && strcmp(name, names[k]))
        k++;
    if (k == sizeof names / sizeof names[0])
        return ASR_ERR_NOT_FOUND;
    if (json && json_is_null(json))
        return ASR_OK;
    val_t v = {.name = names[k], .text = json ? NULL : (text ? text : ""), .json = json};
    if (json_is_string(json)) { /* quoted alike, whichever door the value came through */
        snprintf(v.shown, sizeof v.shown, "'%.40s'", json_string_value(json));
    } else if (json) {
        char *js = json_dumps(json, JSON_ENCODE_ANY | JSON_COMPACT | JSON_REAL_PRECISION(10));
        snprintf(v.shown, sizeof v.shown, "'%.40s'", js ? js : "?");
        free(js);
    } else
        snprintf(v.shown, sizeof v.shown, "'%.40s'", v.text);
    int choice = 0;
    switch (k) {
    case 0:
        return parse_string(&v, &rq->model_name) ? ASR_OK : BAD(&v, "a model id (string)");
    case 1:
        return set_language(rq, &v, err);
    case 2:
        if (set_choice(&v, (const char *const[]){"transcribe", "translate", NULL},
                       "transcribe or translate", &choice, err) != ASR_OK)
            return err->code;
        if (choice)
            rq->translate = choice == 2;
        return ASR_OK;
    case 3:
        return parse_string(&v, &rq->prompt) ? ASR_OK : BAD(&v, "a string of at most 16384 bytes");
    case 4:
        return parse_string(&v, &rq->hotwords) ? ASR_OK
                                               : BAD(&v, "a string of at most 16384 bytes");
    case 5:
    case 6:
    case 7:
        return set_number(rq, &v, err);
    case 8:
        return parse_bool(&v, &rq->vad) ? ASR_OK : BAD(&v, "true or false");
    case 9:
        return parse_bool(&v, &rq->allow_fallback) ? ASR_OK : BAD(&v, "true or false");
    case 10:
        return parse_bool(&v, &rq->word_timestamps) ? ASR_OK : BAD(&v, "true or false");
    default:
        if (set_choice(&v, (const char *const[]){"auto", "simplified", "traditional", NULL},
                       "auto, simplified or traditional", &choice, err) != ASR_OK)
            return err->code;
        rq->chinese_script_set = choice != 0; /* "": the server's setting */
        rq->chinese_script =
            choice ? (asr_zh_script_t)(choice - 1) : ASR_ZH_SCRIPT_AUTO; /* enum order */
        return ASR_OK;
    }
}

asr_err_t asr_svc_options_json(asr_svc_request_t *rq, const json_t *opts, const char *const *extra,
                               asr_svc_error_t *err) {
    if (!opts)
        return ASR_OK;
    if (!json_is_object(opts))
        return asr_svc_fail(err, ASR_ERR_INVALID, NULL, "the options must be a JSON object");
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)opts, k, v) {
        asr_err_t rc = asr_svc_option(rq, k, NULL, v, err);
        if (rc == ASR_ERR_NOT_FOUND) {
            bool known = false;
            for (int i = 0; extra && extra[i] && !known; i++)
                known = !strcmp(extra[i], k);
            if (known)
                continue;
            return asr_svc_fail(err, ASR_ERR_INVALID, k, "unknown field '%.40s'", k);
        }
        if (rc != ASR_OK)
            return rc;
    }
    return ASR_OK;
}

asr_err_t asr_svc_request_finish(const asr_svc_t *svc, asr_svc_request_t *rq, const char *override,
                                 asr_svc_error_t *err) {
    const char *want = override && *override ? override : rq->model_name;
    int m = asr_svc_resolve_model(svc, want);
    if (m < 0)
        return asr_svc_fail(err, ASR_ERR_NOT_FOUND, "model",
                            "The model '%.100s' does not exist or is not loaded (see GET "
                            "/v1/models).",
                            want);
    rq->model = m;
    rq->model_id = asr_sched_model_id(svc->sched, m);
    asr_err_t rc = asr_svc_check_model_language(rq->model_id,
                                                asr_sched_model_info(svc->sched, m)->multilingual,
                                                rq->translate, rq->language, err);
    if (rc != ASR_OK)
        return rc;
    /* settled from what the client gave each time: finishing twice gives the same script */
    rq->chinese_script = asr_svc_chinese_script(rq->chinese_script_set, rq->chinese_script,
                                                rq->language, svc->chinese_script);
    rq->finished = true;
    return ASR_OK;
}

asr_err_t asr_svc_check_model_language(const char *model_id, bool multilingual, bool translate,
                                       const char *language, asr_svc_error_t *err) {
    if (multilingual)
        return ASR_OK;
    if (translate)
        return asr_svc_fail(err, ASR_ERR_INVALID, "model",
                            "model '%s' is English-only and cannot translate", model_id);
    const char *code = language && *language ? asr_lang_code_normalize(language) : NULL;
    if (code && strcmp(code, "en"))
        return asr_svc_fail(err, ASR_ERR_INVALID, "language",
                            "model '%s' is English-only; language '%s' is not supported (use a "
                            "multilingual model such as base)",
                            model_id, code);
    return ASR_OK;
}
