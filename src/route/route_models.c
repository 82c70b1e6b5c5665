/* route: which backends a request's model name selects (docs/API.md, "Model names"). Pure
 * functions: the router (route.c) feeds them its table, the unit tests their own rows.
 *
 * A row serves a model when the model is its model_name or one of its aliases; a local row also
 * serves every model the local engine loads (ids and the server's model_aliases); a remote row
 * with neither a model_name nor aliases passes the client's model through, so it serves any. A
 * request tries the rows that serve its model first (in the table's order), then, as a failover,
 * the rows that allow model substitution. No model asked: every row serves. */
#include <string.h>

#include "route/route.h"

/* `s`[0..n) without the spaces and tabs around it. */
static void trim(const char **s, size_t *n) {
    while (*n && (**s == ' ' || **s == '\t')) {
        (*s)++;
        (*n)--;
    }
    while (*n && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t'))
        (*n)--;
}

bool asr_route_names_model(const char *model_name, const char *aliases, const char *model) {
    if (!model || !*model)
        return false;
    if (model_name && !strcmp(model_name, model))
        return true;
    size_t mlen = strlen(model);
    for (const char *p = aliases ? aliases : ""; *p;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        const char *a = p;
        trim(&a, &n);
        if (n == mlen && !memcmp(a, model, n))
            return true;
        p = comma ? comma + 1 : p + strlen(p);
    }
    return false;
}

bool asr_route_row_serves(const char *kind, const char *model_name, const char *aliases,
                          const char *model, bool local_has) {
    if (!model || !*model)
        return true;
    if (asr_route_names_model(model_name, aliases, model))
        return true;
    if (kind && !strcmp(kind, "local"))
        return local_has;
    /* a remote row that names no model passes the client's through: the backend decides */
    return (!model_name || !*model_name) && (!aliases || !aliases[strspn(aliases, " ,\t")]);
}

int asr_route_model_order(const bool *serves, const bool *allow_substitution, int n, int *order,
                          int *n_serving) {
    int k = 0;
    for (int i = 0; i < n; i++)
        if (serves[i])
            order[k++] = i;
    *n_serving = k;
    for (int i = 0; i < n; i++)
        if (!serves[i] && allow_substitution[i])
            order[k++] = i;
    return k;
}
