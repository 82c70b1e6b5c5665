/* http: multipart intake. The "file" part streams to a temp file under the upload dir as it
 * arrives (memory stays bounded whatever the upload size); other parts are small form fields kept
 * in memory (ASR_HTTP_MAX_FIELD bytes each, ASR_HTTP_FORM_SLACK in all). Parts with a file name
 * other than "file" are discarded.
 *
 * Errors found mid-body are recorded with asr__req_pend and answered when the body ends, because
 * libmicrohttpd lets a handler answer only before the body or after it. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#include "http/http_int.h"

enum { PART_NONE = 0, PART_FILE, PART_FIELD, PART_SKIP };
enum { STOP = 1 }; /* callback stop code: the pending error says why */

void asr__req_pend(asr_http_req_t *req, int status, const char *param, const char *fmt, ...) {
    if (req->pend_status)
        return;
    req->pend_status = status;
    snprintf(req->pend_param, sizeof req->pend_param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(req->pend_msg, sizeof req->pend_msg, fmt, ap);
    va_end(ap);
}

static void drop_file(asr_http_req_t *req) {
    if (req->fd >= 0) {
        close(req->fd);
        req->fd = -1;
    }
    if (req->tmp_path) {
        unlink(req->tmp_path);
        free(req->tmp_path);
        req->tmp_path = NULL;
    }
}

static int open_file(asr_http_req_t *req) {
    asr_buf_t b;
    asr_buf_init(&b);
    asr_buf_printf(&b, "%s/upload-%s-XXXXXX", req->srv->upload_dir, req->id);
    char *path = asr_buf_steal(&b);
    int fd = mkostemp(path, O_CLOEXEC);
    if (fd < 0) {
        ASR_LOG(ASR_LOG_ERROR, "msg=upload_open_failed req=%s dir=%s err=\"%s\"", req->id,
                req->srv->upload_dir, strerror(errno));
        free(path);
        asr__req_pend(req, 503, NULL, "cannot store the upload (data directory not writable)");
        return STOP;
    }
    req->fd = fd;
    req->tmp_path = path;
    return 0;
}

static int on_begin(const char *name, const char *filename, const char *ctype, void *ud) {
    asr_http_req_t *req = ud;
    if (++req->n_parts > ASR_HTTP_MAX_PARTS) {
        asr__req_pend(req, 400, NULL, "too many form parts (at most %d)", ASR_HTTP_MAX_PARTS);
        return STOP;
    }
    if (!strcmp(name, "file")) {
        if (req->has_file) {
            asr__req_pend(req, 400, "file", "more than one 'file' part");
            return STOP;
        }
        req->has_file = true;
        req->part_kind = PART_FILE;
        free(req->file_name);
        free(req->file_ctype);
        req->file_name = asr_xstrdup(filename ? filename : "");
        req->file_ctype = asr_xstrdup(ctype);
        req->upload.size = 0;
        return open_file(req);
    }
    if (filename) {
        req->part_kind = PART_SKIP;
        return 0;
    }
    req->part_kind = PART_FIELD;
    req->cur.len = 0;
    asr_buf_puts(&req->cur, name);
    asr_buf_append(&req->cur, "", 1); /* name\0value */
    return 0;
}

static int write_all(int fd, const char *d, size_t n) {
    while (n) {
        ssize_t w = write(fd, d, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        d += w;
        n -= (size_t)w;
    }
    return 0;
}

static int on_data(const char *d, size_t n, void *ud) {
    asr_http_req_t *req = ud;
    if (req->part_kind == PART_FILE) {
        if (req->upload.size + (int64_t)n > asr__http_max_upload(req)) {
            drop_file(req);
            asr__req_pend(req, 413, "file", "file is larger than the server's limit of %lld bytes",
                          (long long)asr__http_max_upload(req));
            return STOP;
        }
        if (write_all(req->fd, d, n) != 0) {
            ASR_LOG(ASR_LOG_ERROR, "msg=upload_write_failed req=%s err=\"%s\"", req->id,
                    strerror(errno));
            drop_file(req);
            asr__req_pend(req, 503, NULL, "cannot store the upload (data directory full?)");
            return STOP;
        }
        req->upload.size += (int64_t)n;
    } else if (req->part_kind == PART_FIELD) {
        const char *name = req->cur.data;
        size_t vlen = req->cur.len - strlen(name) - 1;
        req->fields_bytes += n;
        if (vlen + n > ASR_HTTP_MAX_FIELD || req->fields_bytes > ASR_HTTP_FORM_SLACK) {
            asr__req_pend(req, 400, name, "field '%s' is longer than %d bytes", name,
                          ASR_HTTP_MAX_FIELD);
            return STOP;
        }
        asr_buf_append(&req->cur, d, n);
    }
    return 0;
}

static int on_end(void *ud) {
    asr_http_req_t *req = ud;
    if (req->part_kind == PART_FIELD) {
        const char *name = req->cur.data;
        size_t nl = strlen(name);
        const char *val = req->cur.data + nl + 1;
        size_t vlen = req->cur.len - nl - 1;
        if (memchr(val, 0, vlen)) {
            asr__req_pend(req, 400, name, "field '%s' contains a NUL byte", name);
            return STOP;
        }
        req->fields = asr_xrealloc(req->fields, (size_t)(req->n_fields + 1) * sizeof *req->fields);
        asr__field_t *f = &req->fields[req->n_fields++];
        f->name = asr_xstrdup(name);
        f->value = asr_xmalloc(vlen + 1);
        memcpy(f->value, val, vlen);
        f->value[vlen] = 0;
    }
    req->part_kind = PART_NONE;
    return 0;
}

static const asr_multipart_cbs_t g_cbs = {on_begin, on_data, on_end};

bool asr__upload_begin(asr_http_req_t *req, const char *content_type) {
    char boundary[ASR_MP_MAX_BOUNDARY + 1];
    if (!content_type || !*content_type) {
        asr_http_respond_error(req, 415, NULL, "unsupported_media_type",
                               "Content-Type must be multipart/form-data");
        return false;
    }
    asr_err_t rc = asr_multipart_boundary(content_type, boundary, sizeof boundary);
    if (rc == ASR_ERR_UNSUPPORTED) {
        asr_http_respond_error(req, 415, NULL, "unsupported_media_type",
                               "Content-Type must be multipart/form-data, not '%.80s'",
                               content_type);
        return false;
    }
    if (rc != ASR_OK) {
        asr_http_respond_error(req, 400, NULL, "invalid_multipart",
                               "multipart/form-data Content-Type without a valid boundary");
        return false;
    }
    req->mp = asr_multipart_create(boundary, &g_cbs, req);
    asr_buf_init(&req->cur);
    return req->mp != NULL;
}

void asr__upload_feed(asr_http_req_t *req, const char *data, size_t len) {
    if (req->pend_status || !req->mp)
        return;
    int rc = asr_multipart_feed(req->mp, data, len);
    if (rc < 0)
        asr__req_pend(req, 400, "file", "%s", asr_multipart_errmsg(req->mp));
}

bool asr__upload_finish(asr_http_req_t *req) {
    if (req->pend_status)
        return false;
    if (asr_multipart_finish(req->mp) != 0) {
        asr__req_pend(req, 400, "file", "%s", asr_multipart_errmsg(req->mp));
        return false;
    }
    if (req->has_file) {
        req->upload.path = req->tmp_path;
        req->upload.filename = req->file_name;
        req->upload.content_type = req->file_ctype;
    }
    if (req->fd >= 0) {
        close(req->fd);
        req->fd = -1;
    }
    return true;
}

void asr__upload_free(asr_http_req_t *req) {
    drop_file(req);
    asr_multipart_destroy(req->mp);
    req->mp = NULL;
    for (int i = 0; i < req->n_fields; i++) {
        free(req->fields[i].name);
        free(req->fields[i].value);
    }
    free(req->fields);
    req->fields = NULL;
    req->n_fields = 0;
    free(req->file_name);
    free(req->file_ctype);
    asr_buf_free(&req->cur);
}

int asr_http_form_count(const asr_http_req_t *req, const char *name) {
    int n = 0;
    for (int i = 0; i < req->n_fields; i++)
        n += !strcmp(req->fields[i].name, name);
    return n;
}

const char *asr_http_form_nth(const asr_http_req_t *req, const char *name, int k) {
    for (int i = 0; i < req->n_fields; i++)
        if (!strcmp(req->fields[i].name, name) && k-- == 0)
            return req->fields[i].value;
    return NULL;
}

const char *asr_http_form_value(const asr_http_req_t *req, const char *name) {
    return asr_http_form_nth(req, name, 0);
}

const asr_http_upload_t *asr_http_upload(const asr_http_req_t *req) {
    return req->has_file && req->upload.path ? &req->upload : NULL;
}
