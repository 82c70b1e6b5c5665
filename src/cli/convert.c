/* cli: `asrd convert SRC DST`: writes a model in any format asrd reads (CTranslate2 directory,
 * whisper.cpp ggml file, Hugging Face safetensors directory) from any of them, and the atomic
 * output step `asrd debug random-model` shares (asr__cli_write_model).
 *
 * Atomicity: the writer fills DST.tmp-<pid> (a directory, or a file for ggml), which is fsynced
 * and then renamed onto DST (with --force over an existing DST: exchanged with it atomically, the
 * old one then removed), and the parent directory fsynced. A reader sees no DST or a whole one;
 * on any failure the temporary is removed and DST is as it was; a temporary a killed run left is
 * removed by the next run for the same DST. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <dirent.h>

#include "cli/cli.h"
#include "cli/pull_int.h"
#include "engine/wsource.h"

#define USAGE                                                                                      \
    "usage: asrd convert SRC DST [--format ct2|ggml|safetensors]\n"                                \
    "                    [--compute-type float16|float32|int8] [--force]\n"                        \
    "  Writes the model SRC (a model name, a directory or a model file of any format) as DST:\n"   \
    "  ct2 (default: a CTranslate2 directory faster-whisper loads), ggml (one whisper.cpp\n"       \
    "  file) or safetensors (a Hugging Face directory). --compute-type: the weights' storage\n"    \
    "  (default float16; int8: CTranslate2's int8_float16, ggml q8_0; safetensors has none).\n"    \
    "  An existing DST is refused unless --force.\n"

typedef asr_err_t (*writer_fn)(const asr_wwrite_src_t *, const char *, char *, size_t);

static const struct {
    const char *name;
    bool dir; /* the output is a directory (else one file) */
    writer_fn write;
    const char *label;
} FORMATS[] = {
    {"ct2", true, asr_ct2_write, "ctranslate2"},
    {"ggml", false, asr_ggml_write, "ggml"},
    {"safetensors", true, asr_safetensors_write, "safetensors"},
};

int asr__cli_model_type(const char *name, asr_ww_type_t *out) {
    static const struct {
        const char *name;
        asr_ww_type_t t;
    } T[] = {{"float16", ASR_WW_FLOAT16}, {"float32", ASR_WW_FLOAT32}, {"int8", ASR_WW_INT8}};
    for (size_t i = 0; i < sizeof T / sizeof *T; i++)
        if (!strcmp(name, T[i].name)) {
            *out = T[i].t;
            return 0;
        }
    return -1;
}

int asr__cli_model_format(const char *name) {
    for (size_t i = 0; i < sizeof FORMATS / sizeof *FORMATS; i++)
        if (!strcmp(name, FORMATS[i].name) || !strcmp(name, FORMATS[i].label))
            return (int)i;
    return -1;
}

/* Bytes and regular files under path (a file: itself). */
static void tally(const char *path, unsigned long long *bytes, int *files) {
    struct stat st;
    if (lstat(path, &st) != 0)
        return;
    if (S_ISREG(st.st_mode)) {
        *bytes += (unsigned long long)st.st_size;
        (*files)++;
        return;
    }
    if (!S_ISDIR(st.st_mode))
        return;
    DIR *d = opendir(path);
    for (struct dirent *e; d && (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char *p = asr__cli_pull_join(path, e->d_name);
        tally(p, bytes, files);
        free(p);
    }
    if (d)
        closedir(d);
}

/* The directory holding path (for its fsync after the rename). */
static char *parent_of(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash)
        return asr_xstrdup(".");
    char *p = asr_xstrdup(path);
    p[slash == path ? 1 : slash - path] = '\0';
    return p;
}

/* Moves tmp onto dst: a rename, or an exchange with an existing dst whose old content then goes.
 * 0, or -1 with the reason set. */
static int put_in_place(const char *tmp, const char *dst, bool exists, char *err, size_t err_len) {
    if (!exists) {
        if (rename(tmp, dst) != 0) {
            asr_errf(err, err_len, "cannot rename %s to %s: %s", tmp, dst, strerror(errno));
            return -1;
        }
        return 0;
    }
    if (renameat2(AT_FDCWD, tmp, AT_FDCWD, dst, RENAME_EXCHANGE) != 0) {
        if (errno != EINVAL && errno != ENOSYS) {
            asr_errf(err, err_len, "cannot replace %s: %s", dst, strerror(errno));
            return -1;
        }
        /* a filesystem without the exchange: the old one aside, the new one in, then the old
         * one goes (a reader may find no dst for that instant, never a partial one) */
        asr_buf_t b;
        asr_buf_init(&b);
        asr_buf_printf(&b, "%s.old-%ld", dst, (long)getpid());
        char *old = asr_buf_steal(&b);
        int rc = 0;
        if (rename(dst, old) != 0 || rename(tmp, dst) != 0) {
            asr_errf(err, err_len, "cannot replace %s: %s", dst, strerror(errno));
            rename(old, dst); /* undo the first step when only the second failed */
            rc = -1;
        } else if (asr__cli_pull_rmtree(old) != 0) {
            fprintf(stderr, "asrd: warning: cannot remove the old model %s: %s\n", old,
                    strerror(errno));
        }
        free(old);
        return rc;
    }
    if (asr__cli_pull_rmtree(tmp) != 0) /* the old model, now under the temporary name */
        fprintf(stderr, "asrd: warning: cannot remove the old model (now %s): %s\n", tmp,
                strerror(errno));
    return 0;
}

/* Removes what an earlier run writing dst left when it died (Ctrl-C, a kill, a crash: a model's
 * worth of gigabytes): dst.tmp-PID whose process is gone. A live writer's is left alone. */
static void sweep_stale(const char *dst) {
    char *parent = parent_of(dst);
    const char *base = strrchr(dst, '/') ? strrchr(dst, '/') + 1 : dst;
    size_t bl = strlen(base);
    DIR *d = opendir(parent);
    for (struct dirent *e; d && (e = readdir(d));) {
        const char *tail = e->d_name + bl;
        if (strncmp(e->d_name, base, bl) || strncmp(tail, ".tmp-", 5))
            continue;
        char *end;
        long pid = strtol(tail + 5, &end, 10);
        if (*end || pid <= 0 || pid == (long)getpid() || kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue;
        char *p = asr__cli_pull_join(parent, e->d_name);
        if (asr__cli_pull_rmtree(p) == 0)
            fprintf(stderr, "asrd: removed %s, left by an interrupted run\n", p);
        free(p);
    }
    if (d)
        closedir(d);
    free(parent);
}

int asr__cli_write_model(const asr_wwrite_src_t *src, int format, const char *dst,
                         const char *file_in_dir, bool force, const char *what) {
    char err[1024] = "";
    sweep_stale(dst);
    struct stat st;
    bool exists = lstat(dst, &st) == 0;
    if (exists && !force) {
        fprintf(stderr, "asrd: %s: %s already exists (--force replaces it)\n", what, dst);
        return 1;
    }
    char *tmp = NULL;
    asr_buf_t b;
    asr_buf_init(&b);
    asr_buf_printf(&b, "%s.tmp-%ld", dst, (long)getpid());
    tmp = asr_buf_steal(&b);
    int rc = 1;
    bool in_dir = !FORMATS[format].dir && file_in_dir;
    if ((FORMATS[format].dir || in_dir) && mkdir(tmp, 0755) != 0) {
        asr_errf(err, sizeof err, "cannot create %s: %s", tmp, strerror(errno));
        free(tmp);
        fprintf(stderr, "asrd: %s: %s\n", what, err);
        return 1;
    }
    char *target = in_dir ? asr__cli_pull_join(tmp, file_in_dir) : asr_xstrdup(tmp);
    asr_err_t e = FORMATS[format].write(src, target, err, sizeof err);
    free(target);
    if (e != ASR_OK) {
        if (!err[0])
            asr_errf(err, sizeof err, "%s", asr_strerror(e));
        goto fail;
    }
    if (asr__cli_pull_fsync_path(tmp, err, sizeof err) != ASR_OK ||
        put_in_place(tmp, dst, exists, err, sizeof err) != 0)
        goto fail;
    char *parent = parent_of(dst);
    asr__cli_pull_fsync_path(parent, err, sizeof err); /* best effort: the rename is done */
    free(parent);
    unsigned long long bytes = 0;
    int files = 0;
    tally(dst, &bytes, &files);
    static const char *const TYPES[] = {"float16", "float32", "int8"};
    printf("%s: %s %s, %d file%s, %.1f MB\n", dst, FORMATS[format].label, TYPES[src->type], files,
           files == 1 ? "" : "s", (double)bytes / 1e6);
    free(tmp);
    return 0;
fail:
    asr__cli_pull_rmtree(tmp);
    fprintf(stderr, "asrd: %s: %s\n", what, err);
    free(tmp);
    return rc;
}

/* A model argument: an existing path as it is, else a name under the models directory. */
static char *source_path(const char *arg) {
    struct stat st;
    if (stat(arg, &st) == 0)
        return asr_xstrdup(arg);
    return asr_cli_model_dir(arg);
}

int asr_cli_convert(int argc, char **argv) {
    static const struct option opts[] = {{"format", required_argument, 0, 'f'},
                                         {"compute-type", required_argument, 0, 'c'},
                                         {"force", no_argument, 0, 'F'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *fmt = "ct2", *ct = "float16";
    bool force = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "f:c:Fh", opts, NULL)) != -1) {
        switch (c) {
        case 'f':
            fmt = optarg;
            break;
        case 'c':
            ct = optarg;
            break;
        case 'F':
            force = true;
            break;
        case 'h':
            fputs(USAGE, stdout);
            return 0;
        default:
            fputs(USAGE, stderr);
            return 2;
        }
    }
    int format = asr__cli_model_format(fmt);
    asr_ww_type_t type;
    if (format < 0 || asr__cli_model_type(ct, &type) != 0 || argc - optind != 2) {
        if (format < 0)
            fprintf(stderr, "asrd: convert: unknown format '%s' (use ct2, ggml or safetensors)\n",
                    fmt);
        else if (argc - optind == 2)
            fprintf(stderr,
                    "asrd: convert: unknown compute type '%s' (use float16, float32 or int8)\n",
                    ct);
        else
            fputs(USAGE, stderr);
        return 2;
    }
    char *path = source_path(argv[optind]);
    char *dst = asr_xstrdup(argv[optind + 1]);
    for (size_t n = strlen(dst); n > 1 && dst[n - 1] == '/'; n--)
        dst[n - 1] = '\0'; /* "out/": the temporary is "out.tmp-PID", beside it */
    char err[1024] = "";
    asr_wsource_t *s = NULL;
    int rc = 1;
    if (asr_wsource_open(path, &s, err, sizeof err) != ASR_OK) {
        fprintf(stderr, "asrd: convert: %s\n", err);
        goto done;
    }
    s->src.type = type;
    rc = asr__cli_write_model(&s->src, format, dst, NULL, force, "convert");
done:
    asr_wsource_close(s);
    free(path);
    free(dst);
    return rc;
}
