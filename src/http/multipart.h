/* http: streaming multipart/form-data parser (RFC 7578 / RFC 2046 section 5.1).
 *
 * The body is fed in chunks of any size (down to one byte); part data reaches the callbacks as it
 * arrives, so nothing is buffered beyond one part's header block (8 KiB at most). The parser
 * never allocates after create. It is fuzzed by tests/fuzz/fuzz_multipart.c, which also checks
 * that feeding byte by byte gives the same events as feeding the whole body.
 *
 * Thread-safety: one parser per request; not shared. */
#ifndef ASR_HTTP_MULTIPART_H
#define ASR_HTTP_MULTIPART_H

#include <stddef.h>

#include "asr/common.h"

#define ASR_MP_MAX_BOUNDARY 70
#define ASR_MP_MAX_HEADERS 8192 /* bytes of one part's header block */
#define ASR_MP_MAX_NAME 256     /* bytes of a field name, file name or part content type */

typedef struct asr_multipart asr_multipart_t;

/* Callbacks: each returns 0 to continue, or a positive code that stops parsing and is returned
 * by asr_multipart_feed. Strings are borrowed for the call. */
typedef struct {
    /* A part's headers are complete. `filename` is NULL when the part has none; `content_type`
     * is "" when absent. */
    int (*part_begin_cb)(const char *name, const char *filename, const char *content_type,
                         void *user_data);
    /* Some bytes of the current part (possibly 0 < len, never 0). */
    int (*part_data_cb)(const char *data, size_t len, void *user_data);
    /* The current part ended at a delimiter. */
    int (*part_end_cb)(void *user_data);
} asr_multipart_cbs_t;

/* Extracts the boundary of a `multipart/form-data; boundary=...` Content-Type value into `out`
 * (at least ASR_MP_MAX_BOUNDARY + 1 bytes). Returns ASR_ERR_UNSUPPORTED when the media type is
 * not multipart/form-data, ASR_ERR_INVALID when the boundary is missing or malformed. */
asr_err_t asr_multipart_boundary(const char *content_type, char *out, size_t out_len);

/* Creates a parser for `boundary` (validated as by asr_multipart_boundary; copied). `cbs` is
 * borrowed until destroy. Returns NULL for an invalid boundary. */
asr_multipart_t *asr_multipart_create(const char *boundary, const asr_multipart_cbs_t *cbs,
                                      void *user_data);
void asr_multipart_destroy(asr_multipart_t *mp);

/* Feeds body bytes. Returns 0, a callback's stop code (> 0), or -1 on malformed input (reason in
 * asr_multipart_errmsg). After a non-zero return the parser stays stopped. */
int asr_multipart_feed(asr_multipart_t *mp, const char *data, size_t len);
/* Ends the body: 0 when the closing delimiter was seen, else -1 (truncated body). */
int asr_multipart_finish(asr_multipart_t *mp);
/* One-line reason for the last -1; "" if none. Borrowed until destroy. */
const char *asr_multipart_errmsg(const asr_multipart_t *mp);

#endif
