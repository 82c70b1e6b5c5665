/* Shared public definitions: export macro and the error enum.
 * One X-macro list generates both asr_err_t and asr_strerror(). */
#ifndef ASR_COMMON_H
#define ASR_COMMON_H

#include <stddef.h>
#include <stdbool.h>

#if defined(__GNUC__)
#define ASR_API __attribute__((visibility("default")))
#else
#define ASR_API
#endif

#define ASR_ERR_LIST(X)                                                                            \
    X(OK, 0, "ok")                                                                                 \
    X(NOMEM, -1, "out of memory")                                                                  \
    X(INVALID, -2, "invalid argument")                                                             \
    X(IO, -3, "i/o error")                                                                         \
    X(NOT_FOUND, -4, "not found")                                                                  \
    X(BUSY, -5, "busy")                                                                            \
    X(AGAIN, -6, "try again")                                                                      \
    X(TIMEOUT, -7, "timed out")                                                                    \
    X(MODEL, -8, "bad model")                                                                      \
    X(DB, -9, "database error")                                                                    \
    X(GPU, -10, "gpu error")                                                                       \
    X(CANCELLED, -11, "cancelled")                                                                 \
    X(AUDIO, -12, "bad audio")                                                                     \
    X(UNSUPPORTED, -13, "unsupported")

typedef enum {
#define ASR_X_ENUM(name, val, msg) ASR_ERR_##name = val,
    ASR_ERR_LIST(ASR_X_ENUM)
#undef ASR_X_ENUM
} asr_err_t;

#define ASR_OK ASR_ERR_OK

/* Returns a static, human-readable string for an error code. Thread-safe. */
ASR_API const char *asr_strerror(asr_err_t err);

#endif
