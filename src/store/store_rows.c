/* store: rows to structs. Each result struct (config, recording, job, health check, node) is
 * described once by a table of fields in SELECT order; the same table maps a row, a list of rows,
 * and frees the strings. So a column added to a SELECT is added in one place next to it, and no
 * function repeats the cell-by-cell copy.
 *
 * Cells are text (store_int.h): integers and reals are parsed, strings duplicated (NULL stays
 * NULL), and a NULL number takes the field's if_null value. */
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "store/store_int.h"

void asr__store_map_row(const asr__field_t *f, int n_f, const asr__rows_t *r, size_t row,
                        void *obj) {
    char *base = obj;
    for (int c = 0; c < n_f; c++) {
        void *dst = base + f[c].off;
        const char *v = asr__store_cell(r, row, c);
        switch (f[c].t) {
        case ASR__F_SKIP:
            break;
        case ASR__F_STR:
            *(char **)dst = v ? asr_xstrdup(v) : NULL;
            break;
        case ASR__F_I64:
            *(int64_t *)dst = v ? strtoll(v, NULL, 10) : (int64_t)f[c].if_null;
            break;
        case ASR__F_INT:
            *(int *)dst = v ? (int)strtoll(v, NULL, 10) : (int)f[c].if_null;
            break;
        case ASR__F_BOOL:
            *(bool *)dst = v ? strtoll(v, NULL, 10) != 0 : f[c].if_null != 0;
            break;
        case ASR__F_REAL:
            *(double *)dst = v ? strtod(v, NULL) : f[c].if_null;
            break;
        case ASR__F_FN:
            f[c].parse(v, dst);
            break;
        }
    }
}

asr_err_t asr__store_get_row(asr_store_t *s, const char *sql, const asr__param_t *p, int n_p,
                             const asr__field_t *f, int n_f, void *obj, size_t size,
                             const char *not_found) {
    asr__rows_t r;
    memset(obj, 0, size);
    asr_err_t e = asr__store_exec(s, sql, p, n_p, &r);
    if (e != ASR_OK)
        return e;
    if (r.n_rows == 0)
        e = asr__store_fail(ASR_ERR_NOT_FOUND, "%s", not_found);
    else
        asr__store_map_row(f, n_f, &r, 0, obj);
    asr__store_rows_free(&r);
    return e;
}

asr_err_t asr__store_list(asr_store_t *s, const char *sql, const asr__param_t *p, int n_p,
                          const asr__field_t *f, int n_f, size_t size, void *out, size_t *n) {
    *(void **)out = NULL;
    *n = 0;
    asr__rows_t r;
    LOCK(s);
    asr_err_t e = asr__store_exec(s, sql, p, n_p, &r);
    UNLOCK(s);
    if (e != ASR_OK)
        return e;
    *(void **)out = asr__store_map_rows(f, n_f, &r, size);
    *n = r.n_rows;
    asr__store_rows_free(&r);
    return ASR_OK;
}

void *asr__store_map_rows(const asr__field_t *f, int n_f, const asr__rows_t *r, size_t size) {
    if (!r->n_rows)
        return NULL;
    char *v = asr_xcalloc(r->n_rows, size);
    for (size_t i = 0; i < r->n_rows; i++)
        asr__store_map_row(f, n_f, r, i, v + i * size);
    return v;
}

void asr__store_map_clear(const asr__field_t *f, int n_f, void *obj, size_t size) {
    if (!obj)
        return;
    for (int c = 0; c < n_f; c++)
        if (f[c].t == ASR__F_STR)
            free(*(char **)((char *)obj + f[c].off));
    memset(obj, 0, size);
}

void asr__store_map_free(const asr__field_t *f, int n_f, void *v, size_t n, size_t size) {
    for (size_t i = 0; v && i < n; i++)
        asr__store_map_clear(f, n_f, (char *)v + i * size, size);
    free(v);
}
