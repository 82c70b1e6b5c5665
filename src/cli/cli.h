/* cli: asrd subcommands. Each returns the process exit code: 0 success, 1 failure, 2 bad usage. */
#ifndef ASR_CLI_H
#define ASR_CLI_H

#include <stddef.h>

#include "core/core.h"
#include "engine/wwrite.h"
#include "gpu/dev.h"

int asr_cli_transcribe(int argc, char **argv);
int asr_cli_pull(int argc, char **argv);
int asr_cli_debug(int argc, char **argv);
int asr_cli_serve(int argc, char **argv);
int asr_cli_plan(int argc, char **argv);
int asr_cli_bench(int argc, char **argv);
int asr_cli_ps(int argc, char **argv);
int asr_cli_diagnose(int argc, char **argv);
int asr_cli_configs(int argc, char **argv);
int asr_cli_convert(int argc, char **argv);
/* backup.c: `asrd backup DEST` and `asrd restore SRC` (see the file). */
int asr_cli_backup(int argc, char **argv);
int asr_cli_restore(int argc, char **argv);
/* `asrd debug random-model ...` (argv[0] is "random-model") */
int asr_cli_debug_random_model(int argc, char **argv);

/* convert.c: the output formats ("ct2" or "ctranslate2", "ggml", "safetensors": an index, -1 when
 * unknown) and storage types ("float16", "float32", "int8": 0, -1 when unknown) of model writers,
 * and their atomic output: writes src as `format` to dst through dst.tmp-<pid>, refusing an
 * existing dst unless force (file_in_dir: a one-file format is written as that file inside the
 * directory dst, e.g. "ggml-tiny.bin"; NULL: dst is the file); prints where it went and its size,
 * or a one-line "asrd: WHAT: ..." error (no temporary left). Returns the exit code (0 or 1). */
int asr__cli_model_format(const char *name);
int asr__cli_model_type(const char *name, asr_ww_type_t *out);
int asr__cli_write_model(const asr_wwrite_src_t *src, int format, const char *dst,
                         const char *file_in_dir, bool force, const char *what);

/* Resolves a model argument (a name such as "base" or a directory) to a directory path.
 * Names map to $ASRD_MODELS/NAME (default ~/.cache/asrd/models/NAME). Returns a malloc'd string. */
char *asr_cli_model_dir(const char *name_or_dir);
/* The models root: $ASRD_MODELS or ~/.cache/asrd/models (malloc'd). */
char *asr_cli_models_root(void);
/* A configured path with a leading ~ made $HOME (malloc'd). */
char *asr_cli_expand_home(const char *path);

/* config_path.c: the settings file of `asrd serve` and `asrd diagnose`: --config FILE, else
 * $ASRD_CONFIG when set and not empty, else the installed default (asr_cli_default_config(),
 * /etc/asrd/asrd.conf) when it exists, else NULL (no file: defaults < env < flags). Borrowed from
 * argv, the environment or a static string. _in takes the default path (tests). */
const char *asr_cli_config_path(int argc, char **argv);
const char *asr__cli_config_path_in(int argc, char **argv, const char *dflt);
const char *asr_cli_default_config(void);

/* device.c: a --device value (or the `device` setting) resolved on this machine. */
typedef struct {
    char asked[64];     /* the value as given ("auto") */
    asr_devspec_t spec; /* what it resolved to (never AUTO) */
    char name[32];      /* spec formatted: "cpu", "cuda:0", "host": what asr_model_load gets */
    char why[256];      /* asr_devspec_resolve's one line: which device and why */
} asr_cli_device_t;
/* Parses and resolves value (NULL: "auto"); what names it in messages ("--device", "device").
 * Returns 0, or 2 after printing one line on stderr: a value that is not cpu|cuda|cuda:N|auto|host,
 * or a CUDA device asked for that is not usable here (the reason). */
int asr__cli_device_resolve(const char *value, const char *what, asr_cli_device_t *out);
/* $ASRD_DEVICE when set and not empty, else NULL: the default of --device. */
const char *asr__cli_device_env(void);
bool asr__cli_device_is_cpu(const asr_cli_device_t *d);
/* `asrd version`: the version, backends built in, CUDA devices found and what auto picks. */
int asr__cli_version(const char *version);
/* Prints "cpu: BRAND\ncpu features: ...\ncpu kernels: LEVEL (why)\n" with prefix before each line
 * (version, bench). */
void asr__cli_print_isa(const char *prefix);

/* bench_streams.c: `asrd bench --streams N` (concurrent streams on one model; see the file). */
typedef struct {
    const char *model; /* as named (printed) */
    const char *dir;   /* its directory */
    const char *compute_type;
    const asr_cli_device_t *dev;
    int threads, max_batch;
    const int *stream_list; /* [n_streams] points: every beam size x every stream count */
    int n_streams;
    const int *beam_list; /* [n_beams] */
    int n_beams;
    int streams, beam; /* the point being run (set by asr__cli_bench_streams) */
    int tokens, windows, warmup;
    const char *audio; /* log-mel windows of this file; NULL: random windows */
    int json;
} asr_cli_bench_streams_t;
/* Returns the exit code (0, or 1 after a one-line reason on stderr). */
int asr__cli_bench_streams(const asr_cli_bench_streams_t *o);

/* api_client.c: sends `method` base_url+path to a running server (json_body: posted with its
 * content type, or NULL; key: sent as a bearer token when set), waiting at most timeout_s, and
 * appends the answer's bytes to *out (caller's buffer). Returns the HTTP status, or 0 with the
 * reason in err when the server could not be reached. */
long asr__cli_api_request(const char *base_url, const char *key, const char *method,
                          const char *path, const char *json_body, long timeout_s, asr_buf_t *out,
                          char *err, size_t err_len);

#endif
