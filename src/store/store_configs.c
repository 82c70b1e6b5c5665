/* store: ASR backend configs and their health history.
 *
 * Every write of asr_configs is one transaction that holds the table's write lock (SQLite BEGIN
 * IMMEDIATE; PostgreSQL LOCK TABLE … SHARE ROW EXCLUSIVE), so "exactly one default" and "names are
 * unique" are checked and kept without races between nodes; the unique indexes are the backstop.
 * The api_key column is read only by asr_store_config_get_api_key; every other read reports
 * has_api_key instead. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "store/store_int.h"

#define CFG_COLS                                                                                   \
    "id, name, kind, api_url, model_name, aliases, CASE WHEN api_key IS NULL THEN 0 ELSE 1 END, "  \
    "is_active, is_default, priority, timeout_ms, max_parallel, allow_model_substitution, "        \
    "created_at, updated_at"

/* CFG_COLS, in order. */
#define CF(kind, member) ASR__FIELD(asr_store_config_t, kind, member)
static const asr__field_t k_cfg[] = {CF(I64, id),
                                     CF(STR, name),
                                     CF(STR, kind),
                                     CF(STR, api_url),
                                     CF(STR, model_name),
                                     CF(STR, aliases),
                                     CF(BOOL, has_api_key),
                                     CF(BOOL, is_active),
                                     CF(BOOL, is_default),
                                     CF(INT, priority),
                                     CF(INT, timeout_ms),
                                     CF(INT, max_parallel),
                                     CF(BOOL, allow_model_substitution),
                                     CF(I64, created_at),
                                     CF(I64, updated_at)};
#undef CF

ASR__STORE_FREE_FNS(asr_store_config_t, k_cfg, asr_store_config_clear, asr_store_configs_free)

asr_err_t asr_store_config_list(asr_store_t *s, bool active_only, asr_store_config_t **out,
                                size_t *n) {
    return asr__store_list(s,
                           active_only ? "SELECT " CFG_COLS " FROM asr_configs WHERE "
                                         "is_active = 1 ORDER BY is_default DESC, priority, id"
                                       : "SELECT " CFG_COLS " FROM asr_configs ORDER BY "
                                         "is_default DESC, priority, id",
                           NULL, 0, k_cfg, ASR__N_FIELDS(k_cfg), sizeof **out, out, n);
}

/* Runs a one-row config query with one parameter; caller holds the lock. */
static asr_err_t get_where(asr_store_t *s, const char *sql, asr__param_t p,
                           asr_store_config_t *out) {
    return asr__store_get_row(s, sql, &p, 1, k_cfg, ASR__N_FIELDS(k_cfg), out, sizeof *out,
                              "id: no such config");
}

asr_err_t asr_store_config_get(asr_store_t *s, int64_t id, asr_store_config_t *out) {
    LOCK(s);
    asr_err_t e = get_where(s, "SELECT " CFG_COLS " FROM asr_configs WHERE id = ?", PI64(id), out);
    UNLOCK(s);
    return e;
}

asr_err_t asr_store_config_get_by_name(asr_store_t *s, const char *name, asr_store_config_t *out) {
    LOCK(s);
    asr_err_t e =
        get_where(s, "SELECT " CFG_COLS " FROM asr_configs WHERE name = ?", PTEXT(name), out);
    UNLOCK(s);
    if (e == ASR_ERR_NOT_FOUND)
        asr__store_fail(e, "name: no such config");
    return e;
}

/* Caller holds the lock, inside a transaction. ASR_ERR_INVALID when `name` belongs to a config
 * other than `self` (0 = none). */
static asr_err_t check_name_free(asr_store_t *s, const char *name, int64_t self) {
    asr__param_t p[2] = {PTEXT(name), PI64(self)};
    asr__rows_t r;
    asr_err_t e =
        asr__store_exec(s, "SELECT id FROM asr_configs WHERE name = ? AND id <> ?", p, 2, &r);
    if (e != ASR_OK)
        return e;
    if (r.n_rows)
        e = asr__store_fail(ASR_ERR_INVALID, "name: already exists");
    asr__store_rows_free(&r);
    return e;
}

/* Translates a constraint failure of a config write into the field it is about. */
static asr_err_t field_error(asr_store_t *s, asr_err_t e) {
    if (e == ASR_ERR_DB && s->last_fail == ASR__FAIL_UNIQUE) {
        const char *m = asr_store_errmsg(s);
        if (strstr(m, "default"))
            return asr__store_fail(ASR_ERR_INVALID, "is_default: another config is the default");
        return asr__store_fail(ASR_ERR_INVALID, "name: already exists");
    }
    if (e == ASR_ERR_DB && s->last_fail == ASR__FAIL_CHECK)
        return asr__store_fail(ASR_ERR_INVALID, "kind: must be local, openai or whisper.cpp");
    return e;
}

static asr_err_t clear_default(asr_store_t *s) {
    return asr__store_exec(s, "UPDATE asr_configs SET is_default = 0 WHERE is_default = 1", NULL, 0,
                           NULL);
}

static int or_default(int v, int def) { return v == ASR_STORE_UNSET ? def : v; }

/* Runs a config write: `fn` in one write transaction holding asr_configs' write lock, then
 * configs_version is raised in the same transaction (what other nodes poll). A constraint failure
 * is reported as the field it is about. */
typedef asr_err_t (*cfg_write_fn)(asr_store_t *s, void *ctx);
typedef struct {
    cfg_write_fn fn;
    void *ctx;
} cfg_write_t;

static asr_err_t write_and_bump(asr_store_t *s, void *arg) {
    cfg_write_t *w = arg;
    asr_err_t e = w->fn(s, w->ctx);
    if (e == ASR_OK)
        e = asr__store_exec(s,
                            "UPDATE asr_meta SET value = value + 1 WHERE name = 'configs_version'",
                            NULL, 0, NULL);
    return e;
}

static asr_err_t config_write(asr_store_t *s, cfg_write_fn fn, void *ctx) {
    cfg_write_t w = {fn, ctx};
    return field_error(s, asr__store_write(s, "asr_configs", write_and_bump, &w));
}

asr_err_t asr_store_configs_version(asr_store_t *s, int64_t *out) {
    asr__rows_t r;
    LOCK(s);
    asr_err_t e = asr__store_exec(s, "SELECT value FROM asr_meta WHERE name = 'configs_version'",
                                  NULL, 0, &r);
    UNLOCK(s);
    if (e != ASR_OK)
        return e;
    *out = asr__store_cell_i64(&r, 0, 0);
    asr__store_rows_free(&r);
    return ASR_OK;
}

typedef struct {
    const asr_store_config_input_t *m; /* validated, defaults filled */
    const char *enc;                   /* the encrypted api key or NULL */
    int64_t id;                        /* create: out; update/delete/default: in */
    const asr_store_config_input_t *in;
} cfg_op_t;

static asr_err_t create_body(asr_store_t *s, void *arg) {
    cfg_op_t *o = arg;
    const asr_store_config_input_t *m = o->m;
    asr__rows_t r;
    asr_err_t e = check_name_free(s, m->name, 0);
    if (e == ASR_OK)
        e = asr__store_exec(s, "SELECT COUNT(*) FROM asr_configs WHERE is_default = 1", NULL, 0,
                            &r);
    if (e != ASR_OK)
        return e;
    bool make_default = asr__store_cell_i64(&r, 0, 0) == 0 || m->is_default == 1;
    asr__store_rows_free(&r);
    if (make_default && (e = clear_default(s)) != ASR_OK)
        return e;
    asr__param_t p[12] = {
        PTEXT(m->name),      PTEXT(m->kind),        PTEXT(m->api_url),
        PTEXT(o->enc),       PTEXT(m->model_name),  PTEXT(m->aliases),
        PI64(m->is_active),  PI64(make_default),    PI64(m->priority),
        PI64(m->timeout_ms), PI64(m->max_parallel), PI64(m->allow_model_substitution)};
    e = asr__store_exec(s,
                        "INSERT INTO asr_configs (name, kind, api_url, api_key, model_name, "
                        "aliases, is_active, is_default, priority, timeout_ms, max_parallel, "
                        "allow_model_substitution, created_at, updated_at) VALUES (?, ?, ?, ?, "
                        "?, ?, ?, ?, ?, ?, ?, ?, {NOW}, {NOW}) RETURNING id",
                        p, 12, &r);
    if (e != ASR_OK)
        return field_error(s, e);
    o->id = asr__store_cell_i64(&r, 0, 0);
    asr__store_rows_free(&r);
    return ASR_OK;
}

asr_err_t asr_store_config_create(asr_store_t *s, const asr_store_config_input_t *in,
                                  int64_t *out_id) {
    char msg[256];
    asr_store_config_input_t m = *in;
    m.kind = in->kind ? in->kind : "local";
    m.api_url = in->api_url ? in->api_url : "";
    m.model_name = in->model_name ? in->model_name : "";
    m.aliases = in->aliases ? in->aliases : "";
    m.is_active = or_default(in->is_active, 1);
    m.allow_model_substitution = or_default(in->allow_model_substitution, 1);
    m.priority = or_default(in->priority, 100);
    m.timeout_ms = or_default(in->timeout_ms, 60000);
    m.max_parallel = or_default(in->max_parallel, 4);
    if (asr_store_config_validate(&m, msg, sizeof msg) != ASR_OK)
        return asr__store_fail(ASR_ERR_INVALID, "%s", msg);
    char *enc = NULL;
    asr_err_t e;
    if (m.api_key && *m.api_key && (e = asr__store_encrypt(s, m.api_key, &enc)) != ASR_OK)
        return e;
    cfg_op_t o = {.m = &m, .enc = enc};
    e = config_write(s, create_body, &o);
    if (e == ASR_OK && out_id)
        *out_id = o.id;
    free(enc);
    return e;
}

/* Reads the row to update (with its encrypted key) into cur/enc; caller holds the lock. */
static asr_err_t load_for_update(asr_store_t *s, int64_t id, asr_store_config_t *cur, char **enc) {
    asr__rows_t r;
    asr__param_t p = PI64(id);
    asr_err_t e = asr__store_exec(
        s, "SELECT " CFG_COLS ", api_key FROM asr_configs WHERE id = ? {FOR_UPDATE}", &p, 1, &r);
    if (e != ASR_OK)
        return e;
    if (r.n_rows == 0)
        e = asr__store_fail(ASR_ERR_NOT_FOUND, "id: no such config");
    else {
        asr__store_map_row(k_cfg, ASR__N_FIELDS(k_cfg), &r, 0, cur);
        *enc = asr__store_cell_dup(&r, 0, ASR__N_FIELDS(k_cfg)); /* after CFG_COLS */
    }
    asr__store_rows_free(&r);
    return e;
}

/* The update's new row: the input over the current one, validated. */
static asr_err_t merge_update(const asr_store_config_t *cur, const asr_store_config_input_t *in,
                              asr_store_config_input_t *m) {
    char msg[256];
    *m = *in;
    m->name = in->name ? in->name : cur->name;
    m->kind = in->kind ? in->kind : cur->kind;
    m->api_url = in->api_url ? in->api_url : cur->api_url;
    m->model_name = in->model_name ? in->model_name : cur->model_name;
    m->aliases = in->aliases ? in->aliases : cur->aliases;
    m->is_active = or_default(in->is_active, cur->is_active);
    m->allow_model_substitution =
        or_default(in->allow_model_substitution, cur->allow_model_substitution);
    m->is_default = or_default(in->is_default, cur->is_default);
    m->priority = or_default(in->priority, cur->priority);
    m->timeout_ms = or_default(in->timeout_ms, cur->timeout_ms);
    m->max_parallel = or_default(in->max_parallel, cur->max_parallel);
    if (asr_store_config_validate(m, msg, sizeof msg) != ASR_OK)
        return asr__store_fail(ASR_ERR_INVALID, "%s", msg);
    if (cur->is_default && m->is_default == 0)
        return asr__store_fail(ASR_ERR_INVALID, "is_default: there must be one default; set "
                                                "another config as the default instead");
    return ASR_OK;
}

static asr_err_t update_body(asr_store_t *s, void *arg) {
    cfg_op_t *o = arg;
    const asr_store_config_input_t *in = o->in;
    asr_store_config_t cur = {0};
    asr_store_config_input_t m = {0};
    char *enc = NULL;
    asr_err_t e = load_for_update(s, o->id, &cur, &enc);
    if (e == ASR_OK)
        e = merge_update(&cur, in, &m);
    if (e == ASR_OK)
        e = check_name_free(s, m.name, o->id);
    if (e == ASR_OK && in->api_key) { /* "" clears the key */
        free(enc);
        enc = NULL;
        if (*in->api_key)
            e = asr__store_encrypt(s, in->api_key, &enc);
    }
    if (e == ASR_OK && m.is_default && !cur.is_default)
        e = clear_default(s);
    if (e == ASR_OK) {
        asr__param_t p[13] = {
            PTEXT(m.name),      PTEXT(m.kind),        PTEXT(m.api_url),
            PTEXT(enc),         PTEXT(m.model_name),  PTEXT(m.aliases),
            PI64(m.is_active),  PI64(m.is_default),   PI64(m.priority),
            PI64(m.timeout_ms), PI64(m.max_parallel), PI64(m.allow_model_substitution),
            PI64(o->id)};
        e = field_error(s, asr__store_exec(s,
                                           "UPDATE asr_configs SET name = ?, kind = ?, api_url "
                                           "= ?, api_key = ?, model_name = ?, aliases = ?, "
                                           "is_active = ?, is_default = ?, priority = ?, "
                                           "timeout_ms = ?, max_parallel = ?, "
                                           "allow_model_substitution = ?, updated_at = {NOW} "
                                           "WHERE id = ?",
                                           p, 13, NULL));
    }
    asr_store_config_clear(&cur);
    free(enc);
    return e;
}

asr_err_t asr_store_config_update(asr_store_t *s, int64_t id, const asr_store_config_input_t *in) {
    cfg_op_t o = {.id = id, .in = in};
    return config_write(s, update_body, &o);
}

static asr_err_t delete_body(asr_store_t *s, void *arg) {
    cfg_op_t *o = arg;
    asr_store_config_t cur = {0};
    char *enc = NULL;
    asr__rows_t r = {0};
    asr__param_t p = PI64(o->id);
    asr_err_t e = load_for_update(s, o->id, &cur, &enc);
    if (e == ASR_OK)
        e = asr__store_exec(s, "DELETE FROM asr_configs WHERE id = ?", &p, 1, NULL);
    if (e == ASR_OK && cur.is_default) /* the next one (active first) becomes the default */
        e = asr__store_exec(s,
                            "SELECT id FROM asr_configs ORDER BY is_active DESC, priority, id "
                            "LIMIT 1",
                            NULL, 0, &r);
    if (e == ASR_OK && r.n_rows) {
        asr__param_t q = PI64(asr__store_cell_i64(&r, 0, 0));
        e = asr__store_exec(s, "UPDATE asr_configs SET is_default = 1 WHERE id = ?", &q, 1, NULL);
    }
    asr__store_rows_free(&r);
    asr_store_config_clear(&cur);
    free(enc);
    return e;
}

asr_err_t asr_store_config_delete(asr_store_t *s, int64_t id) {
    cfg_op_t o = {.id = id};
    return config_write(s, delete_body, &o);
}

static asr_err_t default_body(asr_store_t *s, void *arg) {
    cfg_op_t *o = arg;
    asr__param_t p = PI64(o->id);
    asr__rows_t r = {0};
    asr_err_t e = asr__store_exec(
        s, "UPDATE asr_configs SET is_default = 0 WHERE is_default = 1 AND id <> ?", &p, 1, NULL);
    if (e == ASR_OK)
        e = asr__store_exec(
            s, "UPDATE asr_configs SET is_default = 1, updated_at = {NOW} WHERE id = ?", &p, 1, &r);
    if (e == ASR_OK && r.changes == 0)
        e = asr__store_fail(ASR_ERR_NOT_FOUND, "id: no such config");
    asr__store_rows_free(&r);
    return e;
}

asr_err_t asr_store_config_set_default(asr_store_t *s, int64_t id) {
    cfg_op_t o = {.id = id};
    return config_write(s, default_body, &o);
}

asr_err_t asr_store_config_get_api_key(asr_store_t *s, int64_t id, char **out) {
    *out = NULL;
    asr__rows_t r;
    asr__param_t p = PI64(id);
    LOCK(s);
    asr_err_t e = asr__store_exec(s, "SELECT api_key FROM asr_configs WHERE id = ?", &p, 1, &r);
    UNLOCK(s);
    if (e != ASR_OK)
        return e;
    if (r.n_rows == 0)
        e = asr__store_fail(ASR_ERR_NOT_FOUND, "id: no such config");
    else if (asr__store_cell(&r, 0, 0))
        e = asr__store_decrypt(s, asr__store_cell(&r, 0, 0), out);
    asr__store_rows_free(&r);
    return e;
}

/* ---- health ---- */

/* id, config_id, checked_at, ok, latency_ms (NULL = -1), error */
#define HF(kind, member) ASR__FIELD(asr_store_health_t, kind, member)
#define HFO(kind, member, v) ASR__FIELD_OR(asr_store_health_t, kind, member, v)
static const asr__field_t k_health[] = {HF(I64, id),  HF(I64, config_id),       HF(I64, checked_at),
                                        HF(BOOL, ok), HFO(INT, latency_ms, -1), HF(STR, error)};
#undef HF
#undef HFO

asr_err_t asr_store_health_add(asr_store_t *s, int64_t config_id, bool ok, int latency_ms,
                               const char *error) {
    asr__param_t p[4] = {PI64(config_id), PI64(ok ? 1 : 0),
                         latency_ms >= 0 ? PI64(latency_ms) : PNULL, PTEXT(error)};
    LOCK(s);
    asr_err_t e = asr__store_exec(s,
                                  "INSERT INTO asr_health (config_id, checked_at, ok, latency_ms, "
                                  "error) VALUES (?, {NOW}, ?, ?, ?)",
                                  p, 4, NULL);
    if (e == ASR_ERR_DB && s->last_fail == ASR__FAIL_FOREIGN_KEY)
        e = asr__store_fail(ASR_ERR_NOT_FOUND, "config_id: no such config");
    UNLOCK(s);
    return e;
}

asr_err_t asr_store_health_list(asr_store_t *s, int64_t config_id, int limit,
                                asr_store_health_t **out, size_t *n) {
    asr__param_t p[2] = {PI64(config_id), PI64(limit > 0 ? limit : 100)};
    return asr__store_list(s,
                           "SELECT id, config_id, checked_at, ok, latency_ms, error FROM "
                           "asr_health WHERE config_id = ? ORDER BY checked_at DESC, id "
                           "DESC LIMIT ?",
                           p, 2, k_health, ASR__N_FIELDS(k_health), sizeof **out, out, n);
}

asr_err_t asr_store_health_prune(asr_store_t *s, int keep) {
    asr__param_t p = PI64(keep > 0 ? keep : 0);
    LOCK(s);
    asr_err_t e = asr__store_exec(
        s,
        "DELETE FROM asr_health WHERE id IN (SELECT id FROM (SELECT id, ROW_NUMBER() OVER "
        "(PARTITION BY config_id ORDER BY checked_at DESC, id DESC) AS rn FROM asr_health) t "
        "WHERE rn > ?)",
        &p, 1, NULL);
    UNLOCK(s);
    return e;
}

void asr_store_health_free(asr_store_health_t *v, size_t n) {
    asr__store_map_free(k_health, ASR__N_FIELDS(k_health), v, n, sizeof *v);
}
