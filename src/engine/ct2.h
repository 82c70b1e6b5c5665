/* engine: reader for CTranslate2 model.bin (binary versions 1..6). Parses the variable table
 * from a memory image with full bounds checking; payloads stay in the image (unaligned). */
#ifndef ASR_ENGINE_CT2_H
#define ASR_ENGINE_CT2_H

#include <stddef.h>
#include <stdint.h>
#include "asr/common.h"
#include "engine/wfile.h"

/* Parses `data` (borrowed; must outlive `out`) into `out`, a zeroed table or one that holds
 * only maps (asr_wfile_map); on failure the caller still frees it with asr_wfile_free. Errors:
 * ASR_ERR_MODEL with a reason in errbuf (truncated, unknown version or dtype, bad string),
 * ASR_ERR_NOMEM. */
asr_err_t asr_ct2_parse(const uint8_t *data, size_t len, asr_wfile_t *out, char *errbuf,
                        size_t errbuf_len);

#endif
