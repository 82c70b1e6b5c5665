/* engine: reader for CTranslate2 model.bin (binary versions 1..6). Parses the variable table
 * from a memory image with full bounds checking; payloads stay in the image (unaligned). */
#ifndef ASR_ENGINE_CT2_H
#define ASR_ENGINE_CT2_H

#include <stddef.h>
#include <stdint.h>
#include "asr/common.h"

typedef enum {
    ASR_CT2_F32 = 0,
    ASR_CT2_I8 = 1,
    ASR_CT2_I16 = 2,
    ASR_CT2_I32 = 3,
    ASR_CT2_F16 = 4,
    ASR_CT2_BF16 = 5
} asr_ct2_dtype_t;

#define ASR_CT2_MAX_RANK 4

typedef struct {
    const char *name; /* points into the image, NUL-terminated */
    int rank;
    int64_t dims[ASR_CT2_MAX_RANK];
    int64_t n_elems;
    asr_ct2_dtype_t dtype;
    const uint8_t *data; /* into the image; unaligned */
    size_t n_bytes;
} asr_ct2_var_t;

typedef struct {
    const char *alias;
    const char *target;
} asr_ct2_alias_t;

typedef struct {
    uint32_t version;
    const char *spec_name; /* "" for version < 2 */
    uint32_t spec_revision;
    int n_vars;
    asr_ct2_var_t *vars; /* [n_vars] owned */
    int n_aliases;
    asr_ct2_alias_t *aliases; /* [n_aliases] owned */
} asr_ct2_file_t;

/* Parses `data` (borrowed; must outlive `out`). Errors: ASR_ERR_MODEL with a reason in errbuf
 * (truncated, unknown version or dtype, bad string), ASR_ERR_NOMEM. */
asr_err_t asr_ct2_parse(const uint8_t *data, size_t len, asr_ct2_file_t *out, char *errbuf,
                        size_t errbuf_len);
void asr_ct2_free(asr_ct2_file_t *f);
/* Finds a variable by name, following aliases (and the _scale companions of aliases). */
const asr_ct2_var_t *asr_ct2_find(const asr_ct2_file_t *f, const char *name);
size_t asr_ct2_dtype_size(asr_ct2_dtype_t t);

#endif
